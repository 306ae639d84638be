//! Import benchmark (issue: cases). Generates an N-row × 30-column site export full of PHI and
//! imports it through the full path — decode, validate, de-identify (actions and free-text
//! scrubbing), insert, audit — into a fresh data dir; then loads the same CSV with
//! `sqlite3 .import` into a plain table (the floor) in the same run, and prints both.
//!
//!     cargo bench --bench import            # 100,000 rows
//!     cargo bench --bench import -- 20000   # another size

use std::time::Instant;

use evidentia::auth::{permissions, Actor};
use evidentia::cases::{deid::StudyKey, dictionary, import};
use evidentia::config::Config;
use evidentia::db::paging::PageRequest;
use evidentia::studies::{self, sites, StudyInput};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const LABS: usize = 14;

/// The same allocator as the `evidentia` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn dictionary_csv() -> String {
    let mut d = String::from(
        "Variable / Field Name,Form Name,Section Header,Field Type,Field Label,\"Choices, Calculations, OR Slider Labels\",Field Note,Text Validation Type OR Show Slider Number,Text Validation Min,Text Validation Max,Identifier?,Branching Logic (Show field only if...),Required Field?\n\
subject_id,f,,text,Subject,,,,,,y,,y\n\
patient_name,f,,text,Name,,,,,,y,,\n\
mrn,f,,text,MRN,,,,,,y,,\n\
birth_date,f,,text,Birth date,,,date_ymd,,,y,,\n\
phone,f,,text,Phone,,,phone,,,y,,\n\
email,f,,text,E-mail,,,email,,,y,,\n\
zip_code,f,,text,ZIP,,,,,,y,,\n\
age,f,,text,Age,,,integer,0,120,,,y\n\
sex,f,,radio,Sex,\"1, Male | 2, Female\",,,,,,,y\n\
stage,f,,dropdown,Stage,\"1, I | 2, II | 3, III | 4, IV\",,,,,,,\n\
smoking,f,,dropdown,Smoking,\"1, Never | 2, Former | 3, Current\",,,,,,,\n\
dx_date,f,,text,Diagnosis date,,,date_ymd,,,,,\n\
progression,f,,yesno,Progression,,,,,,,,\n\
pfs_months,f,,text,PFS,,,number,0,200,,,\n",
    );
    for i in 0..LABS {
        d.push_str(&format!("lab{i},f,,text,Lab {i},,,number,0,10000,,,\n"));
    }
    d.push_str("notes,f,,notes,Notes,,,,,,,,\n");
    d
}

fn site_export(n: usize) -> String {
    let mut rng = StdRng::seed_from_u64(42);
    let mut s = String::from("subject_id,site,patient_name,mrn,birth_date,phone,email,zip_code,age,sex,stage,smoking,dx_date,progression,pfs_months");
    for i in 0..LABS {
        s.push_str(&format!(",lab{i}"));
    }
    s.push_str(",notes\n");
    const SUR: [&str; 8] = ["Kim", "Lee", "Park", "Choi", "Jung", "Smith", "Garcia", "Nguyen"];
    for i in 0..n {
        let name = format!("{} Patient{i}", SUR[i % SUR.len()]);
        let phone = format!("010-{:04}-{:04}", rng.gen_range(1000..9999), rng.gen_range(1000..9999));
        s.push_str(&format!(
            "H{i:07},SNUBH,{name},MRN{:08},19{:02}-{:02}-{:02},{phone},p{i}@example.org,{:05},{},{},{},{},2023-{:02}-{:02},{},{:.1}",
            10_000_000 + i,
            rng.gen_range(30..99),
            rng.gen_range(1..13),
            rng.gen_range(1..29),
            rng.gen_range(10000..99999),
            rng.gen_range(30..95),
            rng.gen_range(1..3),
            rng.gen_range(1..5),
            rng.gen_range(1..4),
            rng.gen_range(1..13),
            rng.gen_range(1..29),
            rng.gen_range(0..2),
            rng.gen_range(0.5..40.0)
        ));
        for _ in 0..LABS {
            s.push_str(&format!(",{:.2}", rng.gen_range(0.0..500.0)));
        }
        s.push_str(&format!(",\"{name} seen 2023-05-02, call {phone}. Stable disease, ECOG 1.\"\n"));
    }
    s
}

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(100_000);
    let dir = tempfile::tempdir()?;
    let csv_path = dir.path().join("export.csv");
    let csv = site_export(n);
    std::fs::write(&csv_path, &csv)?;
    let columns = csv.lines().next().map(|l| l.split(',').count()).unwrap_or(0);
    eprintln!("generated {n} rows x {columns} columns ({} MB)", csv.len() / 1_000_000);

    // Evidentia: full path into a fresh data dir.
    let cfg = Config::from_env("127.0.0.1:0".into(), dir.path().join("data"));
    let pool = evidentia::startup::open_database(&cfg)?;
    let mut conn = pool.get()?;
    let op = Actor::cli_operator();
    studies::create(
        &mut conn,
        &op,
        &StudyInput { code: "BENCH-01".into(), title: "Bench".into(), ..Default::default() },
    )?;
    let access = permissions::study_access(&mut conn, &op, "BENCH-01")?;
    sites::add(
        &mut conn,
        &op,
        &access,
        &sites::SiteInput { code: "SNUBH".into(), name: "S".into(), ..Default::default() },
    )?;
    let parsed = dictionary::parse_redcap("bench dictionary", dictionary_csv().as_bytes())
        .map_err(|p| anyhow::anyhow!("{p:?}"))?;
    dictionary::replace(&mut conn, &op, &access, &parsed.fields, false, false)?;
    let fields = dictionary::load(&mut conn, access.study.id)?;
    let site_list = sites::list(&mut conn, access.study.id, false)?;
    let key = StudyKey::load_or_create(&cfg.data_dir, "BENCH-01")?;

    let start = Instant::now();
    let bytes = std::fs::read(&csv_path)?;
    let prepared =
        import::prepare(access.study.id, &fields, &site_list, &key, "export.csv", &bytes, &Default::default());
    let prepare_secs = start.elapsed().as_secs_f64();
    if !prepared.ok() {
        anyhow::bail!("bench file refused: {:?}", &prepared.problems[..prepared.problems.len().min(5)]);
    }
    let summary = import::commit(&mut conn, &op, &access, &prepared)?;
    let evidentia_secs = start.elapsed().as_secs_f64();
    assert_eq!(summary.created, n);

    // The case list at this size: a deep page with its count, and a filter on any field.
    let t = Instant::now();
    let deep = evidentia::cases::list(
        &mut conn,
        access.study.id,
        &fields,
        &Default::default(),
        PageRequest::new(Some((n as i64 / 50).max(1)), None),
    )?;
    let deep_ms = t.elapsed().as_secs_f64() * 1000.0;
    let t = Instant::now();
    let filter = evidentia::cases::CaseFilter { field: "stage".into(), value: "3".into(), ..Default::default() };
    let filtered =
        evidentia::cases::list(&mut conn, access.study.id, &fields, &filter, PageRequest::new(Some(1), None))?;
    let filter_ms = t.elapsed().as_secs_f64() * 1000.0;

    // The floor: sqlite3's own CSV import of the same file into an untyped table.
    let floor_db = dir.path().join("floor.db");
    let start = Instant::now();
    let out = std::process::Command::new("sqlite3")
        .arg(&floor_db)
        .arg(format!(".import --csv {} t", csv_path.display()))
        .output()
        .map_err(|e| anyhow::anyhow!("sqlite3 CLI (apt-get install sqlite3): {e}"))?;
    let floor_secs = start.elapsed().as_secs_f64();
    if !out.status.success() {
        anyhow::bail!("sqlite3 .import failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    let rate = n as f64 / evidentia_secs;
    let floor_rate = n as f64 / floor_secs;
    println!("rows: {n}, columns: {columns}");
    println!(
        "evidentia import (decode+validate+de-identify+insert+audit): {evidentia_secs:.2} s = {rate:.0} rows/s (prepare {prepare_secs:.2} s, commit {:.2} s)",
        evidentia_secs - prepare_secs
    );
    println!("sqlite3 .import (floor):                                     {floor_secs:.2} s = {floor_rate:.0} rows/s");
    println!(
        "ratio evidentia / floor: {:.2}x the floor's time ({:.0}% of its speed)",
        evidentia_secs / floor_secs,
        100.0 * rate / floor_rate
    );
    println!("de-identified values: {}", prepared.report.total());
    println!(
        "case list over {} cases: last page with count {deep_ms:.1} ms; filter stage=3 ({} matches) {filter_ms:.1} ms",
        deep.total, filtered.total
    );
    Ok(())
}
