//! Dossier export benchmark (issue: lock, signatures, dossier). Builds a locked, signed study of
//! N subjects (default 100,000, imported through the de-identifying path from a generated site
//! export full of PHI) and S slides (default 20,000) with an AI run's result for each, a signed
//! plan and saved analyses (survival and Cox by AI phenotype over the slide dataset); then runs
//! `evidentia dossier export` (the release binary) as a child process and reports its wall time
//! and peak resident memory (the child's VmHWM), then `dossier verify`, next to the floor measured
//! in the same run: `sqlite3` writing the study's cases and slide results out as CSV.
//! `EVIDENTIA_BENCH_DIR=DIR` keeps the generated data dir under DIR.
//!
//!     cargo bench --bench dossier                   # 100,000 subjects, 20,000 slides
//!     cargo bench --bench dossier -- 20000 4000     # other sizes

// Test and benchmark code: a failed unwrap is a failed run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use evidentia::analyses::{plan, saved, Request};
use evidentia::auth::{permissions, users, Actor};
use evidentia::cases::import;
use evidentia::config::Config;
use evidentia::studies::{self, members};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "common/cases.rs"]
mod cases_data;

const STUDY: &str = "BENCH-DOSSIER";

/// Runs a command and returns (wall seconds, peak resident set in MB, success). The peak is the
/// child's own VmHWM (/proc/PID/status, which starts afresh at exec), read every 5 ms until it
/// exits: getrusage of the children would count this benchmark's own memory, which a forked
/// child holds until its exec.
fn run_measured(cmd: &mut std::process::Command) -> anyhow::Result<(f64, f64, bool)> {
    let t = Instant::now();
    let mut child = cmd.spawn()?;
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0u64;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            let hwm = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
            peak_kb = peak_kb.max(hwm.unwrap_or(0));
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    Ok((t.elapsed().as_secs_f64(), peak_kb as f64 / 1024.0, status.success()))
}

fn main() -> anyhow::Result<()> {
    let sizes: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let n = sizes.first().copied().unwrap_or(100_000);
    let n_slides = sizes.get(1).copied().unwrap_or(20_000).min(n);
    // EVIDENTIA_BENCH_DIR keeps the generated study there (to look into it); else a temp dir.
    let mut temp = tempfile::Builder::new();
    temp.prefix("dossier-bench-");
    let guard = match std::env::var_os("EVIDENTIA_BENCH_DIR") {
        Some(d) => temp.tempdir_in(d)?.keep(),
        None => temp.tempdir()?.keep(),
    };
    let temp_dir = std::env::var_os("EVIDENTIA_BENCH_DIR").is_none().then(|| guard.clone());
    let dir = guard;
    // The temp dir (without EVIDENTIA_BENCH_DIR) is removed at the end.
    struct Remove(Option<std::path::PathBuf>);
    impl Drop for Remove {
        fn drop(&mut self) {
            if let Some(p) = &self.0 {
                let _ = std::fs::remove_dir_all(p);
            }
        }
    }
    let _remove = Remove(temp_dir);
    let cfg = Config::from_env("127.0.0.1:0".into(), dir.join("data"));
    let pool = evidentia::startup::open_database(&cfg)?;
    let mut conn = pool.get()?;
    let t = Instant::now();
    evidentia::demo::seed(&mut conn, &cfg.data_dir)?;
    let op = Actor::cli_operator();
    let (access, fields, site_list, key) = cases_data::study_with_dictionary(&mut conn, &cfg.data_dir, STUDY)?;
    let sid = access.study.id;
    for (u, role) in [("manager", "manager"), ("statistician", "statistician")] {
        members::add(&mut conn, &op, &access, u, role)?;
    }
    let export = cases_data::site_export(n);
    let prepared = import::prepare(
        sid,
        &fields,
        &Default::default(),
        &site_list,
        &key,
        "export.csv",
        export.as_bytes(),
        &Default::default(),
    );
    anyhow::ensure!(prepared.ok(), "bench file refused: {:?}", &prepared.problems[..prepared.problems.len().min(5)]);
    import::commit(&mut conn, &op, &access, &prepared)?;
    drop((export, prepared));
    studies::transition(&mut conn, &op, &access, "active", "")?;

    // Slides and an AI run's results, written straight into their tables (the benchmark is the
    // export, not ingest or inference).
    let case_ids: Vec<(i32, String)> = {
        use evidentia::db::schema::cases;
        cases::table
            .filter(cases::study_id.eq(sid))
            .order(cases::display_id.asc())
            .limit(n_slides as i64)
            .select((cases::id, cases::display_id))
            .load(&mut conn)?
    };
    let now = "2026-01-01 00:00:00";
    let mut rng = ChaCha12Rng::seed_from_u64(7);
    for chunk in case_ids.chunks(1_000) {
        let mut sql = String::from("BEGIN; INSERT INTO slides (study_id, case_id, label, stain, attributes, sha256, source_sha256, file_size, format, width, height, info, mpp_x, mpp_y, status, created_at, updated_at) VALUES ");
        let rows: Vec<String> = chunk
            .iter()
            .map(|(id, display)| {
                let sha: String = (0..64).map(|_| format!("{:x}", rng.gen_range(0..16))).collect();
                format!("({sid}, {id}, '{display}-S01', 'H&E', '{{}}', '{sha}', '{sha}', 1000000, 'generic-tiff', 40000, 30000, '{{}}', 0.25, 0.25, 'available', '{now}', '{now}')")
            })
            .collect();
        sql.push_str(&rows.join(","));
        sql.push_str("; COMMIT;");
        conn.batch_execute(&sql)?;
    }
    let slide_ids: Vec<i32> = {
        use evidentia::db::schema::slides;
        slides::table.filter(slides::study_id.eq(sid)).order(slides::id.asc()).select(slides::id).load(&mut conn)?
    };
    let (model_id, model_sha): (i32, String) = {
        use evidentia::db::schema::models;
        models::table.select((models::id, models::sha256)).first(&mut conn)?
    };
    conn.batch_execute(&format!(
        "INSERT INTO biomarker_runs (study_id, model_id, model_sha256, backend, params, slide_ids, created_by, created_at) VALUES ({sid}, {model_id}, '{model_sha}', 'onnxruntime', '{{}}', '{}', 'bench', '{now}')",
        serde_json::to_string(&slide_ids)?
    ))?;
    let run_id: i32 = {
        use evidentia::db::schema::biomarker_runs;
        biomarker_runs::table.select(biomarker_runs::id).order(biomarker_runs::id.desc()).first(&mut conn)?
    };
    for chunk in slide_ids.chunks(1_000) {
        let mut sql = String::from("BEGIN; INSERT INTO biomarker_results (run_id, slide_id, status, phenotype, inflamed_share, excluded_share, desert_share, itil_density_median, stil_density_median, grid_cells_scored, tiles, flags, cells, seconds, created_at) VALUES ");
        let rows: Vec<String> = chunk
            .iter()
            .map(|id| {
                let p = ["inflamed", "excluded", "desert"][rng.gen_range(0..3)];
                format!(
                    "({run_id}, {id}, 'ok', '{p}', 0.5, 0.3, 0.2, {:.1}, {:.1}, 1200, 1100, '[]', '[]', 1.5, '{now}')",
                    rng.gen_range(10.0..400.0),
                    rng.gen_range(50.0..900.0)
                )
            })
            .collect();
        sql.push_str(&rows.join(","));
        sql.push_str("; COMMIT;");
        conn.batch_execute(&sql)?;
    }

    // The statistician's signed plan and saved analyses; the admin locks; both sign.
    let stat = users::actor_for_username(&mut conn, "statistician")?;
    let stat_access = permissions::study_access(&mut conn, &stat, STUDY)?;
    let queries = [
        ("primary", "PFS by AI phenotype", format!("run={run_id}&analysis=survival&time=pfs_months&event=progression&group=ai_phenotype&reference_group=desert")),
        ("secondary", "Cox: PFS on iTIL density", format!("run={run_id}&analysis=cox&time=pfs_months&event=progression&covariates=ai_itil")),
    ];
    for (role, title, q) in &queries {
        let req = Request::parse(q)?;
        let canonical = Request::canonical(&req.sources(), &req.analysis()?, req.level()?);
        plan::add_item(&mut conn, &stat, &stat_access, role, title, &canonical, None)?;
    }
    plan::sign(&mut conn, &stat, &stat_access, evidentia::demo::demo_signing("approval"))?;
    for (_, title, q) in &queries {
        saved::save(&mut conn, &stat, &stat_access, &Request::parse(q)?, title)?;
    }
    let admin = users::actor_for_username(&mut conn, "admin")?;
    let admin_access = permissions::study_access(&mut conn, &admin, STUDY)?;
    studies::transition(&mut conn, &admin, &admin_access, "locked", "benchmark: no reading campaign")?;
    for (u, meaning) in [("statistician", "approval"), ("manager", "responsibility")] {
        let a = users::actor_for_username(&mut conn, u)?;
        let acc = permissions::study_access(&mut conn, &a, STUDY)?;
        studies::lock::sign(&mut conn, &a, &acc, evidentia::demo::demo_signing(meaning))?;
    }
    drop(conn);
    drop(pool);
    eprintln!(
        "built a locked, signed study of {n} subjects and {} slides in {:.1} s",
        slide_ids.len(),
        t.elapsed().as_secs_f64()
    );

    // The export, as a user runs it: the release binary, a child process of its own.
    let out = dir.join("dossier.zip");
    let (export_secs, peak_mb, ok) = run_measured(
        std::process::Command::new(env!("CARGO_BIN_EXE_evidentia"))
            .arg("--data-dir")
            .arg(&cfg.data_dir)
            .args(["dossier", "export", "--study", STUDY, "--out"])
            .arg(&out)
            .env("RUST_LOG", "warn"),
    )?;
    anyhow::ensure!(ok, "dossier export failed");
    let zip_mb = std::fs::metadata(&out)?.len() as f64 / 1e6;
    let (verify_secs, verify_peak_mb, ok) = run_measured(
        std::process::Command::new(env!("CARGO_BIN_EXE_evidentia")).args(["dossier", "verify"]).arg(&out),
    )?;
    anyhow::ensure!(ok, "dossier verify failed");

    // The floor: sqlite3 writing the same study's cases and slide results out as CSV.
    let db = cfg.data_dir.join("evidentia.db");
    let t = Instant::now();
    let floor = std::process::Command::new("sqlite3")
        .arg("-csv")
        .arg("-header")
        .arg(&db)
        .arg(format!(
            "SELECT * FROM cases WHERE study_id = {sid}; SELECT r.* FROM biomarker_results r JOIN biomarker_runs u ON u.id = r.run_id WHERE u.study_id = {sid};"
        ))
        .stdout(std::fs::File::create(dir.join("floor.csv"))?)
        .status()
        .map_err(|e| anyhow::anyhow!("sqlite3 CLI (apt-get install sqlite3): {e}"))?;
    let floor_secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(floor.success(), "sqlite3 failed");

    println!("subjects: {n}, slides: {}", slide_ids.len());
    println!("evidentia dossier export: {export_secs:.2} s, peak RSS {peak_mb:.0} MB, zip {zip_mb:.1} MB");
    println!("evidentia dossier verify: {verify_secs:.2} s, peak RSS {verify_peak_mb:.0} MB");
    println!("sqlite3 -csv of the cases and slide results (floor): {floor_secs:.2} s");
    println!("ratio export / floor: {:.1}x the floor's time", export_secs / floor_secs);
    Ok(())
}
