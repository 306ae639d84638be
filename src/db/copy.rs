//! Moving an installation from SQLite to PostgreSQL (`evidentia migrate-data --to postgres://…`):
//! every row of every table, as it is, into an empty PostgreSQL database with the same schema;
//! then the proof that nothing changed on the way — every audit chain verifies on the target and
//! every current lock's snapshot hash, computed again on the target, is the one its signatures
//! signed.
//!
//! Rows travel as JSON objects, one page of a table at a time: SQLite writes each row with
//! `json_object` (doubles as 17 significant digits, which round-trip every `f64`; timestamps cut
//! to the microsecond, which PostgreSQL keeps and the snapshot hashes), PostgreSQL reads the page
//! with `json_populate_recordset` into the table's own column types. Ids are kept, and each
//! identity column then continues after the largest.

use std::collections::BTreeMap;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::{is_postgres, write_tx, Conn};
use crate::error::{Error, Result};

/// Every table, parents before the tables whose foreign keys point to them.
pub const TABLES: &[&str] = &[
    "users",
    "sessions",
    "api_tokens",
    "studies",
    "sites",
    "study_members",
    "audit_events",
    "audit_heads",
    "jobs",
    "dictionary_fields",
    "cases",
    "case_imports",
    "slide_ingests",
    "annotation_schemas",
    "models",
    "biomarker_runs",
    "analysis_plans",
    "saved_analyses",
    "study_locks",
    "study_signatures",
    "case_versions",
    "recovery_codes",
    "login_locks",
    "job_items",
    "slides",
    "campaigns",
    "reads",
    "adjudications",
    "biomarker_results",
    "key_fingerprints",
    "quality_rules",
    "quality_findings",
    "queries",
    "query_messages",
    "verifications",
    "monitoring_plans",
    "study_designs",
    "case_records",
    "member_sites",
];

/// Rows per page.
const PAGE: i64 = 2_000;

#[derive(QueryableByName)]
struct SourceColumn {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    decl: String,
}

#[derive(QueryableByName)]
struct JsonRow {
    /// The row's rowid (named apart: SQLite calls an `INTEGER PRIMARY KEY`'s rowid by the key's name).
    #[diesel(sql_type = BigInt)]
    r: i64,
    #[diesel(sql_type = Text)]
    j: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// What a copy did and found.
#[derive(Debug, Default)]
pub struct Report {
    /// Rows copied per table.
    pub rows: BTreeMap<String, i64>,
    /// Audit chains verified on the target, and their events.
    pub chains: usize,
    pub events: usize,
    /// Studies whose data hashes the same on both sides.
    pub studies: usize,
    /// Current locks whose snapshot hash was computed again on the target and matched.
    pub locks: usize,
}

/// Refuses a target database that holds any row (migrate-data checks it before copying files).
pub fn ensure_empty(to: &mut Conn) -> Result<()> {
    let occupied: Vec<String> = TABLES
        .iter()
        .filter(|t| **t != "case_versions")
        .map(|t| Ok((t, count(to, t)?)))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(t, n)| format!("{t} ({n} rows)"))
        .collect();
    if !occupied.is_empty() {
        return Err(Error::invalid(
            "to",
            format!("the target database is not empty: {}; nothing was copied", occupied.join(", ")),
        ));
    }
    Ok(())
}

/// Copies every row of the SQLite database `from` into the PostgreSQL database `to`, whose schema
/// is up to date and which holds no row, and verifies the target (see the module) before the
/// copy commits: a copy that does not verify leaves the target as it was. Refuses a target that
/// holds any row. `progress` is told each table as
/// it is copied.
pub fn copy(from: &mut Conn, to: &mut Conn, mut progress: impl FnMut(&str, i64)) -> Result<Report> {
    if is_postgres(from) || !is_postgres(to) {
        return Err(Error::invalid("to", "migrate-data copies a SQLite installation into PostgreSQL"));
    }
    ensure_empty(to)?;
    let mut report = Report::default();
    // The source's write lock for the whole copy: a consistent snapshot, and a writer that
    // would change the source meanwhile waits (and then fails) instead of being lost.
    write_tx(from, |from| {
        write_tx(to, |to| -> Result<()> {
            // A row may point to one of its table copied later (`saved_analyses.superseded_by`):
            // the foreign keys are checked at COMMIT.
            diesel::sql_query("SET CONSTRAINTS ALL DEFERRED").execute(to)?;
            for table in TABLES {
                if *table == "case_versions" {
                    // The target's trigger counted the cases copied before; the source's counts replace them.
                    diesel::sql_query("DELETE FROM case_versions").execute(to)?;
                }
                let n = copy_table(from, to, table)?;
                progress(table, n);
                report.rows.insert(table.to_string(), n);
            }
            for table in TABLES {
                let has_identity: i64 = diesel::sql_query(format!(
                    "SELECT count(*) AS n FROM information_schema.columns WHERE table_schema = current_schema() \
                 AND table_name = '{table}' AND column_name = 'id' AND is_identity = 'YES'"
                ))
                .get_result::<Count>(to)?
                .n;
                if has_identity > 0 {
                    diesel::sql_query(format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 0) + 1, false) AS n FROM {table}"
                ))
                .execute(to)?;
                }
            }
            // Inside the transaction: a copy that does not verify leaves the target empty.
            verify(from, to, &mut report)
        })
    })?;
    Ok(report)
}

fn count(conn: &mut Conn, table: &str) -> Result<i64> {
    Ok(diesel::sql_query(format!("SELECT count(*) AS n FROM {table}")).get_result::<Count>(conn)?.n)
}

/// One table, page by page in rowid order; returns the rows copied.
fn copy_table(from: &mut Conn, to: &mut Conn, table: &str) -> Result<i64> {
    let cols: Vec<SourceColumn> =
        diesel::sql_query(format!("SELECT name, type AS decl FROM pragma_table_info('{table}') ORDER BY cid"))
            .load(from)?;
    let fields: Vec<String> = cols
        .iter()
        .map(|c| {
            let col = format!("\"{}\"", c.name);
            let value = match c.decl.to_ascii_lowercase().as_str() {
                "double" | "real" | "float" => {
                    format!("CASE WHEN {col} IS NULL THEN NULL ELSE printf('%!.17g', {col}) END")
                }
                "timestamp" => format!("substr({col}, 1, 26)"),
                _ => col,
            };
            format!("'{}', {value}", c.name)
        })
        .collect();
    let select = format!(
        "SELECT rowid AS r, json_object({}) AS j FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT {PAGE}",
        fields.join(", ")
    );
    let insert = format!("INSERT INTO {table} SELECT * FROM json_populate_recordset(NULL::{table}, $1::json)");
    let (mut after, mut n) = (i64::MIN, 0i64);
    loop {
        let rows: Vec<JsonRow> = diesel::sql_query(&select).bind::<BigInt, _>(after).load(from)?;
        if rows.is_empty() {
            return Ok(n);
        }
        let page = format!("[{}]", rows.iter().map(|r| r.j.as_str()).collect::<Vec<_>>().join(","));
        let inserted = diesel::sql_query(&insert).bind::<Text, _>(&page).execute(to)?;
        if inserted != rows.len() {
            return Err(Error::Internal(anyhow::anyhow!("{table}: {} rows read, {inserted} written", rows.len())));
        }
        n += rows.len() as i64;
        after = rows.last().map_or(after, |row| row.r);
    }
}

/// Every table holds as many rows on both sides, every study's data hashes the same on both,
/// every audit chain verifies on the target, and every current lock's snapshot hash computed on
/// the target is the recorded one.
fn verify(from: &mut Conn, to: &mut Conn, report: &mut Report) -> Result<()> {
    for table in TABLES {
        let (a, b) = (count(from, table)?, count(to, table)?);
        if a != b {
            return Err(Error::Internal(anyhow::anyhow!("{table}: {a} rows in SQLite, {b} in PostgreSQL")));
        }
    }
    let chains = crate::audit::verify::verify_all(to)?;
    if let Some(broken) = chains.iter().find(|c| c.broken.is_some()) {
        return Err(Error::Internal(anyhow::anyhow!(
            "after the copy the audit chain {} does not verify",
            broken.chain
        )));
    }
    report.chains = chains.len();
    report.events = chains.iter().map(|c| c.events as usize).sum();
    // Every study's snapshot hash is the same computed on either side: every value of its
    // data arrived as it was (a locked study's is also its signed one, checked below).
    use crate::db::schema::{studies, study_locks};
    let ids: Vec<crate::studies::StudyId> = studies::table.select(studies::id).order(studies::id).load(from)?;
    for id in ids {
        let (a, b) = (crate::studies::snapshot::compute(from, id)?, crate::studies::snapshot::compute(to, id)?);
        if a != b {
            return Err(Error::Internal(anyhow::anyhow!(
                "study {id}: its data hashes to {} in SQLite but {} in PostgreSQL",
                a.0,
                b.0
            )));
        }
        report.studies += 1;
    }
    let locks: Vec<(i32, crate::studies::StudyId, String, i32)> = study_locks::table
        .filter(study_locks::unlocked_at.is_null())
        .select((study_locks::id, study_locks::study_id, study_locks::snapshot_sha256, study_locks::snapshot_version))
        .load(to)?;
    for (id, study, recorded, version) in locks {
        if version < crate::studies::snapshot::VERSION {
            return Err(Error::Internal(anyhow::anyhow!(
                "lock {id} still has a first-form snapshot hash (its data changed since it was signed)"
            )));
        }
        let (on_target, _) = crate::studies::snapshot::compute(to, study)?;
        if on_target != recorded {
            return Err(Error::Internal(anyhow::anyhow!(
                "lock {id}: the snapshot hash on PostgreSQL is {on_target}, not the recorded {recorded}"
            )));
        }
        report.locks += 1;
    }
    Ok(())
}
