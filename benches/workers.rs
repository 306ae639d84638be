//! Work shared by many workers (issue 23): an AI run fans out into one work item per slide.
//!
//! 1. **Claim overhead**: 10,000 empty items of one job drained by 4 worker threads (each with
//!    its own database connection, as separate processes would have), and by 1, in items/s; on
//!    SQLite and, with `EVIDENTIA_BENCH_POSTGRES_URL` (`tools/bench workers` starts a throw-away
//!    cluster), on PostgreSQL.
//! 2. **AI run throughput**: a demo data dir with N synthetic slides (default 16 of 8,000 ×
//!    8,000 px) and the bundled demonstration model; one run drained by 1 `evidentia worker
//!    --threads 1` process, then another run over the same slides by 2 such processes — each
//!    pinned to its own core with `taskset` (two one-core machines), timed from the workers'
//!    start to the job's end (their start-up and model loading included).
//!
//! Run it with:
//!
//!     cargo bench --bench workers                 # 16 slides of 8,000 px
//!     cargo bench --bench workers -- 12 6000      # 12 slides of 6,000 px

// Test and benchmark code: a failed unwrap is a failed run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use evidentia::auth::Actor;
use evidentia::config::Config;
use evidentia::jobs::{self, items};

const ITEMS: i32 = 10_000;
const MODEL: &str = "evidentia-demo-til@1.0.0";

fn main() -> anyhow::Result<()> {
    let args: Vec<u32> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let n_slides = args.first().copied().unwrap_or(16) as usize;
    let size = args.get(1).copied().unwrap_or(8_000);
    let keep = std::env::var_os("EVIDENTIA_BENCH_DIR").map(std::path::PathBuf::from);
    let tmp = tempfile::tempdir()?;
    let root = keep.unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&root)?;

    // 1. Claim overhead, on SQLite and (with EVIDENTIA_BENCH_POSTGRES_URL, a server's URL whose
    // user may create databases) on PostgreSQL, where claims take `FOR UPDATE SKIP LOCKED`.
    let postgres = std::env::var("EVIDENTIA_BENCH_POSTGRES_URL").ok().filter(|u| !u.is_empty());
    let mut claim_rates = Vec::new();
    for (engine, threads) in [("SQLite", 1usize), ("SQLite", 4), ("PostgreSQL", 1), ("PostgreSQL", 4)] {
        let mut cfg = Config::from_env("127.0.0.1:0".into(), root.join(format!("claims-{engine}-{threads}")));
        if engine == "PostgreSQL" {
            let Some(server) = &postgres else { continue };
            let server = server.trim_end_matches('/');
            let name = format!("bench_claims_{}_{threads}", std::process::id());
            let mut admin = evidentia::db::DatabaseUrl::parse(Some(&format!("{server}/postgres")), &root)?.connect()?;
            diesel::RunQueryDsl::execute(diesel::sql_query(format!("CREATE DATABASE {name}")), &mut admin)?;
            cfg.database_url = Some(format!("{server}/{name}"));
        }
        let pool = evidentia::startup::open_database(&cfg)?;
        let job = {
            let mut conn = pool.get()?;
            let job =
                jobs::enqueue(&mut conn, &Actor::system(), None, &evidentia::audit::job::VerifyParams::default())?;
            jobs::claim(&mut conn, job.id, "bench-lead")?.expect("claimed");
            items::ensure(&mut conn, job.id, &(0..ITEMS).collect::<Vec<_>>())?;
            job
        };
        let t = Instant::now();
        let drained: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|w| {
                    let pool = pool.clone();
                    s.spawn(move || {
                        let mut conn = pool.get().unwrap();
                        let name = format!("bench-w{w}");
                        let mut n = 0usize;
                        while let Some(item) = items::claim(&mut conn, Some(job.id), &name).unwrap() {
                            assert!(items::finish(&mut conn, item, &name, None).unwrap());
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        let secs = t.elapsed().as_secs_f64();
        anyhow::ensure!(drained == ITEMS as usize, "drained {drained} of {ITEMS} items");
        let c = items::counts(&mut *pool.get()?, job.id)?;
        anyhow::ensure!(c.done == i64::from(ITEMS), "{c:?}");
        claim_rates.push((engine, threads, secs, f64::from(ITEMS) / secs));
    }

    // 2. AI run throughput.
    let exe = env!("CARGO_BIN_EXE_evidentia");
    let data = root.join("run");
    let ok = Command::new(exe)
        .arg("--data-dir")
        .arg(&data)
        .args(["demo", "--seed-only", "--slides", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    anyhow::ensure!(ok.success(), "demo --seed-only failed");
    let slides_dir = root.join("slides");
    std::fs::create_dir_all(&slides_dir)?;
    let subjects = evidentia::demo::truth::subjects(evidentia::demo::DEMO_SUBJECTS, evidentia::demo::truth::SEED);
    let mut manifest = String::from("file,subject_id,stain,site\n");
    for (i, s) in subjects.iter().filter(|s| s.site == "SNUBH").skip(30).take(n_slides).enumerate() {
        let name = format!("bench-{i}.svs");
        let phenotype = [
            evidentia::slides::synth::Phenotype::Inflamed,
            evidentia::slides::synth::Phenotype::Excluded,
            evidentia::slides::synth::Phenotype::Desert,
        ][i % 3];
        let params = evidentia::slides::synth::SynthParams::new(size, size, 0.5, phenotype, 700 + i as u64);
        evidentia::slides::synth::write_slide(&slides_dir.join(&name), &params, &mut |_, _| {})?;
        manifest.push_str(&format!("{name},{},H&E,SNUBH\n", s.hospital_id));
    }
    let manifest_path = slides_dir.join("manifest.csv");
    std::fs::write(&manifest_path, manifest)?;
    let out = Command::new(exe)
        .arg("--data-dir")
        .arg(&data)
        .args(["slides", "ingest", "--study", "LUNG-IO-01", "--manifest"])
        .arg(&manifest_path)
        .output()?;
    anyhow::ensure!(out.status.success(), "ingest: {}", String::from_utf8_lossy(&out.stderr));

    let cfg = Config::from_env("127.0.0.1:0".into(), data.clone());
    let pool = evidentia::startup::open_database(&cfg)?;
    let mut timings = Vec::new();
    for workers in [1usize, 2] {
        let (run, job) = {
            let mut conn = pool.get()?;
            let operator = Actor::cli_operator();
            let access = evidentia::auth::permissions::study_access(&mut conn, &operator, "LUNG-IO-01")?;
            evidentia::biomarker::runs::start(&mut conn, &operator, &access, MODEL, "SNUBH", "H&E")?
        };
        let t = Instant::now();
        let mut children: Vec<Child> = (0..workers).map(|core| worker(exe, &data, core)).collect::<Result<_, _>>()?;
        let finished = loop {
            let j = jobs::get(&mut *pool.get()?, job.id)?;
            if j.is_finished() {
                break j;
            }
            anyhow::ensure!(t.elapsed() < Duration::from_secs(3600), "the run did not finish");
            std::thread::sleep(Duration::from_millis(20));
        };
        let secs = t.elapsed().as_secs_f64();
        for c in &mut children {
            let _ = c.kill();
            let _ = c.wait();
        }
        anyhow::ensure!(finished.status == jobs::JobStatus::Succeeded, "run failed: {:?}", finished.error);
        let c = items::counts(&mut *pool.get()?, job.id)?;
        let slides = run.slide_ids().len();
        anyhow::ensure!(c.done as usize == slides, "{c:?}");
        timings.push((workers, slides, secs));
    }

    println!(
        "claim overhead: {ITEMS} empty work items of one job drained (claim + finish, each worker its own connection)"
    );
    for (engine, threads, secs, rate) in &claim_rates {
        println!(
            "  {engine}, {threads} worker{}: {secs:.2} s, {rate:.0} items/s",
            if *threads == 1 { "" } else { "s" }
        );
    }
    println!(
        "AI run: {} slides of {size} x {size} px, {MODEL}, `evidentia worker --threads 1` processes each pinned to one core",
        timings[0].1
    );
    for (workers, slides, secs) in &timings {
        println!(
            "  {workers} worker process{}: {secs:.2} s, {:.2} slides/s",
            if *workers == 1 { "" } else { "es" },
            *slides as f64 / secs
        );
    }
    println!("  2 workers / 1 worker: {:.2}x (goal >= 1.8x)", timings[0].2 / timings[1].2);
    Ok(())
}

/// An `evidentia worker --threads 1` process on its own core.
fn worker(exe: &str, data: &Path, core: usize) -> std::io::Result<Child> {
    Command::new("taskset")
        .args(["-c", &core.to_string(), exe])
        .arg("--data-dir")
        .arg(data)
        .args(["worker", "--threads", "1"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}
