//! Import benchmark (issue: cases). Generates an N-row × 30-column site export full of PHI and
//! imports it through the full path — decode, validate, de-identify (actions and free-text
//! scrubbing), insert, audit — into a fresh data dir; then loads the same CSV with
//! `sqlite3 .import` into a plain table (the floor) in the same run, and prints both.
//!
//!     cargo bench --bench import            # 100,000 rows
//!     cargo bench --bench import -- 20000   # another size

// Test and benchmark code: a failed unwrap is a failed run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use evidentia::auth::Actor;
use evidentia::cases::import;
use evidentia::config::Config;
use evidentia::db::paging::PageRequest;

/// The same allocator as the `evidentia` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "common/cases.rs"]
mod cases_data;
use cases_data::site_export;

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(100_000);
    let dir = tempfile::tempdir()?;
    // EVIDENTIA_BENCH_KEEP=DIR: the data dir is made there (DIR must not exist) and kept, for
    // the case list load test (tools/bench caselist).
    let keep = std::env::var_os("EVIDENTIA_BENCH_KEEP").map(std::path::PathBuf::from);
    let data_dir = keep.clone().unwrap_or_else(|| dir.path().join("data"));
    anyhow::ensure!(!(keep.is_some() && data_dir.exists()), "{} exists already", data_dir.display());
    let csv_path = dir.path().join("export.csv");
    let csv = site_export(n);
    std::fs::write(&csv_path, &csv)?;
    let columns = csv.lines().next().map(|l| l.split(',').count()).unwrap_or(0);
    let file_bytes = csv.len();
    eprintln!("generated {n} rows x {columns} columns ({} MB)", file_bytes / 1_000_000);
    drop(csv);

    // Evidentia: full path into a fresh data dir.
    let cfg = Config::from_env("127.0.0.1:0".into(), data_dir);
    let pool = evidentia::startup::open_database(&cfg)?;
    let mut conn = pool.get()?;
    let op = Actor::cli_operator();
    let (access, fields, site_list, key) = cases_data::study_with_dictionary(&mut conn, &cfg.data_dir, "BENCH-01")?;

    // The import's own memory: the peak resident size from here (reset), above what is resident now.
    let before = reset_peak_memory()?;
    let start = Instant::now();
    let bytes = std::fs::read(&csv_path)?;
    let prepared = import::prepare(
        access.study.id,
        &fields,
        &Default::default(),
        &site_list,
        &key,
        "export.csv",
        &bytes,
        &Default::default(),
    );
    let prepare_secs = start.elapsed().as_secs_f64();
    // As `evidentia cases import` does: the file is not needed once prepared.
    drop(bytes);
    let prepare_peak_bytes = memory_kb("VmHWM")?.saturating_sub(before) * 1024;
    if !prepared.ok() {
        anyhow::bail!("bench file refused: {:?}", &prepared.problems[..prepared.problems.len().min(5)]);
    }
    let summary = import::commit(&mut conn, &op, &access, &prepared)?;
    let evidentia_secs = start.elapsed().as_secs_f64();
    let peak_bytes = memory_kb("VmHWM")?.saturating_sub(before) * 1024;
    assert_eq!(summary.created, n);
    // What the server then does in the background: copy the WAL into the database file.
    let start = Instant::now();
    anyhow::ensure!(evidentia::db::checkpoint(&mut conn)?, "the checkpoint left frames in the WAL");
    let checkpoint_secs = start.elapsed().as_secs_f64();

    let db_file = cfg.data_dir.join(evidentia::db::DB_FILE);
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let db_bytes = size(&db_file) + size(&db_file.with_extension("db-wal"));
    let sizes;
    {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Sizes {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            data: i64,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            audit: i64,
        }
        let s: Sizes = diesel::sql_query(
            "SELECT (SELECT sum(length(data)) FROM cases) AS data, \
             (SELECT sum(length(new_value) + length(hash) * 2 + length(at) + length(chain)) FROM audit_events) AS audit",
        )
        .get_result(&mut conn)?;
        sizes = format!(
            "database and WAL {} MB (case values {} MB, audit events {} MB)",
            db_bytes / 1_000_000,
            s.data / 1_000_000,
            s.audit / 1_000_000
        );
    }

    // The case list at this size: a deep page with its count, and a filter on any field, each
    // first computed (an empty cache), then from the server's cache.
    let lists = evidentia::cases::ListCache::default();
    let mut list = |filter: &evidentia::cases::CaseFilter, page: PageRequest| {
        evidentia::cases::list(&mut conn, &lists, access.study.id, &access.sites, &fields, filter, page)
    };
    let t = Instant::now();
    let deep = list(&Default::default(), PageRequest::new(Some((n as i64 / 50).max(1)), None))?;
    let deep_ms = t.elapsed().as_secs_f64() * 1000.0;
    let t = Instant::now();
    let filter = evidentia::cases::CaseFilter { field: "stage".into(), value: "3".into(), ..Default::default() };
    let filtered = list(&filter, PageRequest::new(Some(1), None))?;
    let filter_ms = t.elapsed().as_secs_f64() * 1000.0;
    let t = Instant::now();
    list(&Default::default(), PageRequest::new(Some((n as i64 / 50).max(1) - 1), None))?;
    let cached_deep_ms = t.elapsed().as_secs_f64() * 1000.0;
    let t = Instant::now();
    list(&filter, PageRequest::new(Some(2), None))?;
    let cached_filter_ms = t.elapsed().as_secs_f64() * 1000.0;

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

    let (storage, storage_bytes) = storage_floor(&mut conn, dir.path(), access.study.id.get(), n)?;

    let storage_secs: f64 = storage.iter().sum();
    let rate = n as f64 / evidentia_secs;
    let floor_rate = n as f64 / floor_secs;
    println!("rows: {n}, columns: {columns}");
    println!(
        "evidentia import (decode+validate+de-identify+insert+audit): {evidentia_secs:.2} s = {rate:.0} rows/s (prepare {prepare_secs:.2} s, commit {:.2} s)",
        evidentia_secs - prepare_secs
    );
    println!(
        "then the checkpoint (WAL into the database file; in the background in the server): {checkpoint_secs:.2} s; \
         import and checkpoint {:.2} s = {:.0} rows/s",
        evidentia_secs + checkpoint_secs,
        n as f64 / (evidentia_secs + checkpoint_secs)
    );
    println!("sqlite3 .import (floor):                                     {floor_secs:.2} s = {floor_rate:.0} rows/s");
    println!(
        "ratio evidentia / floor: {:.2}x the floor's time ({:.0}% of its speed); with the checkpoint {:.2}x",
        evidentia_secs / floor_secs,
        100.0 * rate / floor_rate,
        (evidentia_secs + checkpoint_secs) / floor_secs
    );
    println!(
        "storage floor (the same rows and bytes generated inside sqlite3, to its COMMIT): {storage_secs:.2} s = {:.0} rows/s \
         (cases {:.2} s, audit events {:.2} s, COMMIT {:.2} s); evidentia / storage floor {:.2}x; \
         its database file {} MB, evidentia's {} MB",
        n as f64 / storage_secs,
        storage[1],
        storage[2],
        storage[3],
        evidentia_secs / storage_secs,
        storage_bytes / 1_000_000,
        size(&db_file) / 1_000_000
    );
    println!(
        "peak memory of the import: {} MB = {:.1}x the file ({} MB); {} MB by the end of preparing",
        peak_bytes / 1_000_000,
        peak_bytes as f64 / file_bytes as f64,
        file_bytes / 1_000_000,
        prepare_peak_bytes / 1_000_000
    );
    let floor_db_bytes = size(&floor_db);
    println!(
        "bytes per case: evidentia {} (database after its checkpoint), sqlite3 .import {}, storage floor {}",
        size(&db_file) / n as u64,
        floor_db_bytes / n as u64,
        storage_bytes / n as u64
    );
    println!("de-identified values: {}", prepared.report.total());
    println!("{sizes}");
    println!(
        "case list over {} cases: last page with count {deep_ms:.1} ms; filter stage=3 ({} matches) {filter_ms:.1} ms; \
         cached: another deep page {cached_deep_ms:.2} ms, the filter's second page {cached_filter_ms:.2} ms",
        deep.total, filtered.total
    );
    // For tools/bench.
    println!(
        "{}",
        serde_json::json!({
            "rows": n, "file_bytes": file_bytes, "evidentia": evidentia_secs, "prepare": prepare_secs,
            "commit": evidentia_secs - prepare_secs, "checkpoint": checkpoint_secs, "sqlite3_import": floor_secs,
            "storage_floor": storage_secs, "peak_bytes": peak_bytes, "prepare_peak_bytes": prepare_peak_bytes, "db_bytes": size(&db_file),
            "sqlite3_import_bytes": floor_db_bytes, "storage_floor_bytes": storage_bytes,
        })
    );
    Ok(())
}

/// Resets the process's peak resident size (Linux: `/proc/self/clear_refs`, 5) and returns the
/// resident size now, in kB.
fn reset_peak_memory() -> anyhow::Result<u64> {
    std::fs::write("/proc/self/clear_refs", "5")?;
    memory_kb("VmRSS")
}

/// A `/proc/self/status` figure in kB (`VmRSS`, `VmHWM`).
fn memory_kb(name: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().strip_suffix(" kB")?.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("/proc/self/status has no {name}"))
}

/// What SQLite alone takes to store what the import stored: into a fresh database with
/// Evidentia's schema and the import's settings (`db::bulk_write`), `n` cases and `n` audit
/// events of the same average sizes as the ones just written (random subject keys and hashes,
/// so the indexes are filled as at random), generated by SQL into temporary tables in memory and
/// then inserted in one transaction. Times the inserts and their COMMIT with the CLI's `.timer`;
/// returns those times (BEGIN, cases, audit events, COMMIT) and the size of the database file,
/// into which the CLI checkpoints its WAL as it closes.
fn storage_floor(
    conn: &mut evidentia::db::Conn,
    dir: &std::path::Path,
    study_id: i32,
    n: usize,
) -> anyhow::Result<([f64; 4], u64)> {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Shape {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        data: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        new_value: i64,
        #[diesel(sql_type = diesel::sql_types::Text)]
        created_at: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        at: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        actor: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        action: String,
    }
    let shape: Shape = diesel::sql_query(format!(
        "SELECT (SELECT CAST(avg(length(data)) AS INTEGER) FROM cases) AS data, \
           CAST(avg(length(new_value)) AS INTEGER) AS new_value, \
           (SELECT created_at FROM cases LIMIT 1) AS created_at, \
           max(at) AS at, max(actor) AS actor, max(action) AS action \
         FROM audit_events WHERE entity = 'case' AND study_id = {study_id}"
    ))
    .get_result(conn)?;
    let cfg = Config::from_env("127.0.0.1:0".into(), dir.join("storage-floor"));
    let study_id = {
        let pool = evidentia::startup::open_database(&cfg)?;
        let mut conn = pool.get()?;
        cases_data::study_with_dictionary(&mut conn, &cfg.data_dir, "FLOOR-01")?.0.study.id
    };
    let (Shape { data, new_value, created_at, at, actor, action }, q) = (shape, |s: &str| s.replace('\'', "''"));
    let (created_at, at, actor, action) = (q(&created_at), q(&at), q(&actor), q(&action));
    // The rows are staged in memory first, so that what is timed is only SQLite storing them.
    let script = format!(
        "PRAGMA foreign_keys = ON; PRAGMA cache_size = -262144; PRAGMA wal_autocheckpoint = 0; PRAGMA synchronous = FULL;
PRAGMA temp_store = MEMORY;
CREATE TEMP TABLE c AS WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < {n})
SELECT {study_id} AS study_id, (SELECT id FROM sites WHERE study_id = {study_id}) AS site_id,
  lower(hex(randomblob(32))) AS subject_key, printf('SNUBH-%04d', i) AS display_id, 'enrolled' AS status,
  NULL AS status_reason, NULL AS status_date, printf('%.*c', {data}, 'x') AS data,
  '{created_at}' AS created_at, '{created_at}' AS updated_at FROM k;
CREATE TEMP TABLE a AS WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < {n})
SELECT 'study:FLOOR-01' AS chain, 1000 + i AS seq, {study_id} AS study_id, '{at}' AS at, '{actor}' AS actor,
  '{action}' AS action, 'case' AS entity, CAST(i AS TEXT) AS entity_id, NULL AS old_value,
  printf('%.*c', {new_value}, 'x') AS new_value, NULL AS reason,
  lower(hex(randomblob(32))) AS prev_hash, lower(hex(randomblob(32))) AS hash FROM k;
.timer on
BEGIN;
INSERT INTO cases (study_id, site_id, subject_key, display_id, status, status_reason, status_date, data, created_at, updated_at)
SELECT * FROM c;
INSERT INTO audit_events (chain, seq, study_id, at, actor, action, entity, entity_id, old_value, new_value, reason, prev_hash, hash)
SELECT * FROM a;
COMMIT;
"
    );
    let db = cfg.data_dir.join(evidentia::db::DB_FILE);
    let mut child = std::process::Command::new("sqlite3")
        .arg(&db)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        stdin.write_all(script.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !out.stderr.is_empty() {
        anyhow::bail!("sqlite3 storage floor failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    // "Run Time: real 0.746 user 0.679325 sys 0.066498", one line per statement.
    let times: Vec<f64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("Run Time: real ")?.split_whitespace().next()?.parse().ok())
        .collect();
    let times: [f64; 4] = times
        .try_into()
        .map_err(|t: Vec<f64>| anyhow::anyhow!("sqlite3 printed {} timings, expected 4: {text}", t.len()))?;
    Ok((times, std::fs::metadata(&db)?.len()))
}
