//! The snapshot of a study's data that a lock records and its signatures sign: a SHA-256 over
//! every row of the study's tables, computed in Rust from typed values so that it depends on
//! the data only — not on the database engine, its version or how it formats a number.
//!
//! Each row becomes an RFC 8785 canonical JSON object ([`crate::audit::canonical`]) of its
//! columns by their logical type (integer, boolean, double, text, date, timestamp), with NULL
//! columns left out (a column added later changes no earlier lock's hash until it holds a value).
//! The database only carries the values to Rust, losslessly: doubles as 17 significant digits,
//! which round-trip every `f64`; each value is then normalised by its kind (a boolean whether
//! stored as 0/1 or true/false, a timestamp to the microsecond whatever its separator), so that
//! another engine carrying the same data gives the same hash. Locks recorded before this form (version 1: SQLite's
//! `json_object` text) are re-hashed once at start ([`rehash_legacy_locks`]).

use std::collections::BTreeMap;

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};
use serde_json::{json, Map, Number, Value};
use sha2::{Digest, Sha256};

use crate::audit::{self, Action, Change, Entity};
use crate::db::schema::study_locks;
use crate::db::{is_postgres, write_tx, Conn};
use crate::error::{Error, Result};

/// The form of the snapshot hash a lock records: 2, this module's.
pub const VERSION: i32 = 2;

/// The tables of a study's data, how their rows belong to a study, and columns left out of the
/// snapshot (the study's lifecycle status, which locking itself changes, and access settings).
const TABLES: &[(&str, &str, &[&str])] = &[
    ("studies", "id = ?", &["status", "updated_at", "require_mfa"]),
    ("sites", "study_id = ?", &[]),
    ("dictionary_fields", "study_id = ?", &[]),
    ("cases", "study_id = ?", &[]),
    ("case_imports", "study_id = ?", &[]),
    ("slides", "study_id = ?", &[]),
    ("slide_ingests", "study_id = ?", &[]),
    ("annotation_schemas", "study_id = ?", &[]),
    ("campaigns", "study_id = ?", &[]),
    ("reads", "campaign_id IN (SELECT id FROM campaigns WHERE study_id = ?)", &[]),
    ("adjudications", "campaign_id IN (SELECT id FROM campaigns WHERE study_id = ?)", &[]),
    ("biomarker_runs", "study_id = ?", &[]),
    ("biomarker_results", "run_id IN (SELECT id FROM biomarker_runs WHERE study_id = ?)", &[]),
    ("analysis_plans", "study_id = ?", &[]),
    ("saved_analyses", "study_id = ?", &[]),
];

/// Tables added after version 2: each is hashed (name, rows) only when the study has rows in it,
/// so that a lock recorded before a table existed keeps its hash — as a column added later is
/// left out while NULL.
const LATER_TABLES: &[(&str, &str, &[&str])] =
    &[("study_designs", "study_id = ?", &[]), ("case_records", "study_id = ?", &[])];

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Whether the study has rows in `table`.
fn has_rows(conn: &mut Conn, table: &str, filter: &str, study_id: crate::studies::StudyId) -> Result<bool> {
    let sql = if is_postgres(conn) {
        format!("SELECT count(*) AS n FROM (SELECT 1 FROM {table} WHERE ({}) LIMIT 1) x", filter.replace('?', "$1"))
    } else {
        format!("SELECT count(*) AS n FROM (SELECT 1 FROM {table} WHERE ({filter}) LIMIT 1)")
    };
    let c: Count = diesel::sql_query(sql).bind::<Integer, _>(study_id).get_result(conn)?;
    Ok(c.n > 0)
}

/// Rows per query of the snapshot: a study of any size in bounded memory.
const PAGE: i64 = 5_000;

/// What a column holds, whatever the engine calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Integer,
    Boolean,
    Double,
    Text,
    Date,
    Timestamp,
}

impl Kind {
    /// The kind of a column declared as `decl` (SQLite's declared types); another is an error,
    /// so that a new type is handled deliberately rather than hashed by accident.
    fn of(table: &str, column: &str, decl: &str) -> Result<Kind> {
        Ok(match decl.to_ascii_lowercase().as_str() {
            "integer" | "bigint" | "smallint" => Kind::Integer,
            "boolean" => Kind::Boolean,
            "double" | "real" | "float" | "double precision" => Kind::Double,
            "text" => Kind::Text,
            "date" => Kind::Date,
            "timestamp" | "timestamp without time zone" => Kind::Timestamp,
            other => {
                return Err(Error::Internal(anyhow::anyhow!(
                    "the snapshot does not know the type {other:?} of {table}.{column}"
                )))
            }
        })
    }

    /// The column as the database should carry it in JSON: on SQLite doubles as text of 17
    /// significant digits (its JSON would round them to 15); PostgreSQL writes the shortest text
    /// that reads back as the same double.
    fn select(self, column: &str, postgres: bool) -> String {
        match self {
            Kind::Double if !postgres => {
                format!("CASE WHEN \"{column}\" IS NULL THEN NULL ELSE printf('%!.17g', \"{column}\") END")
            }
            _ => format!("\"{column}\""),
        }
    }

    /// The value as hashed, from what the database carried (`None`: NULL, left out).
    fn value(self, v: &Value) -> std::result::Result<Option<Value>, String> {
        if v.is_null() {
            return Ok(None);
        }
        let text = || v.as_str().ok_or_else(|| format!("expected text, found {v}"));
        Ok(Some(match self {
            Kind::Integer => json!(v.as_i64().ok_or_else(|| format!("expected an integer, found {v}"))?),
            Kind::Boolean => match v {
                Value::Bool(b) => json!(b),
                Value::Number(n) if n.as_i64() == Some(0) => json!(false),
                Value::Number(n) if n.as_i64() == Some(1) => json!(true),
                _ => return Err(format!("expected a boolean, found {v}")),
            },
            Kind::Double => {
                let f = match v {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.trim().parse::<f64>().ok(),
                    _ => None,
                };
                let f = f.ok_or_else(|| format!("expected a number, found {v}"))?;
                Value::Number(Number::from_f64(f).ok_or_else(|| format!("not a finite number: {v}"))?)
            }
            Kind::Text => json!(text()?),
            Kind::Date => {
                let d = NaiveDate::parse_from_str(text()?.get(..10).unwrap_or(""), "%Y-%m-%d")
                    .map_err(|_| format!("expected a date, found {v}"))?;
                json!(d.format("%Y-%m-%d").to_string())
            }
            // Microseconds: what both engines keep.
            Kind::Timestamp => {
                let t = text()?;
                let t = NaiveDateTime::parse_from_str(&t.replacen('T', " ", 1), "%Y-%m-%d %H:%M:%S%.f")
                    .map_err(|_| format!("expected a timestamp, found {v}"))?;
                json!(t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string())
            }
        }))
    }
}

#[derive(QueryableByName)]
struct Column {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    decl: String,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Integer)]
    id: i32,
    #[diesel(sql_type = Text)]
    j: String,
}

/// The columns of `table` (schema order) and their kinds, but those `excluded`.
fn columns(conn: &mut Conn, table: &str, excluded: &[&str]) -> Result<Vec<(String, Kind)>> {
    let sql = if is_postgres(conn) {
        format!(
            "SELECT column_name::text AS name, data_type::text AS decl FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = '{table}' ORDER BY ordinal_position"
        )
    } else {
        format!("SELECT name, type AS decl FROM pragma_table_info('{table}') ORDER BY cid")
    };
    let cols: Vec<Column> = diesel::sql_query(sql).load(conn)?;
    cols.into_iter()
        .filter(|c| !excluded.contains(&c.name.as_str()))
        .map(|c| Ok((c.name.clone(), Kind::of(table, &c.name, &c.decl)?)))
        .collect()
}

/// The snapshot of a study's data: SHA-256 over a version line, then every table of `TABLES`
/// (and of `LATER_TABLES` where the study has rows)
/// in order — its name, then each row (by id) as the canonical JSON object of its non-NULL
/// columns, one per line — and the number of rows per table. The same data gives the same hash
/// on any engine.
pub fn compute(conn: &mut Conn, study_id: crate::studies::StudyId) -> Result<(String, BTreeMap<String, usize>)> {
    let mut hasher = Sha256::new();
    hasher.update(format!("evidentia-snapshot-v{VERSION}\n").as_bytes());
    let mut counts = BTreeMap::new();
    let mut line = String::new();
    let postgres = is_postgres(conn);
    for (i, (table, filter, excluded)) in TABLES.iter().chain(LATER_TABLES).enumerate() {
        if i >= TABLES.len() && !has_rows(conn, table, filter, study_id)? {
            continue;
        }
        let cols = columns(conn, table, excluded)?;
        let carried: Vec<String> = cols.iter().map(|(name, kind)| kind.select(name, postgres)).collect();
        let sql = if postgres {
            format!(
                "SELECT id, json_build_array({})::text AS j FROM {table} WHERE ({}) AND id > $2 ORDER BY id LIMIT {PAGE}",
                carried.join(", "),
                filter.replace('?', "$1")
            )
        } else {
            format!(
                "SELECT id, json_array({}) AS j FROM {table} WHERE ({filter}) AND id > ? ORDER BY id LIMIT {PAGE}",
                carried.join(", ")
            )
        };
        hasher.update(table.as_bytes());
        hasher.update(b"\n");
        let n = each_row(conn, &sql, study_id, |r| {
            let values: Vec<Value> = serde_json::from_str(&r.j).map_err(|e| Error::Internal(e.into()))?;
            let mut object = Map::new();
            for ((name, kind), v) in cols.iter().zip(&values) {
                let v = kind
                    .value(v)
                    .map_err(|e| Error::Internal(anyhow::anyhow!("snapshot of {table} row {}: {name}: {e}", r.id)))?;
                if let Some(v) = v {
                    object.insert(name.clone(), v);
                }
            }
            line.clear();
            crate::audit::canonical::write(&mut line, &Value::Object(object));
            line.push('\n');
            hasher.update(line.as_bytes());
            Ok(())
        })?;
        counts.insert(table.to_string(), n);
    }
    Ok((hex::encode(hasher.finalize()), counts))
}

/// Runs `sql` (a study's rows of one table: binds the study id and the last id seen, orders by
/// id, `LIMIT PAGE`) page by page, calling `f` on each row in order; returns how many rows.
fn each_row(
    conn: &mut Conn,
    sql: &str,
    study_id: crate::studies::StudyId,
    mut f: impl FnMut(&Row) -> Result<()>,
) -> Result<usize> {
    let (mut after, mut n) = (i32::MIN, 0usize);
    loop {
        let rows: Vec<Row> =
            diesel::sql_query(sql).bind::<Integer, _>(study_id).bind::<Integer, _>(after).load(conn)?;
        for r in &rows {
            f(r)?;
        }
        n += rows.len();
        match rows.last() {
            Some(last) if rows.len() as i64 == PAGE => after = last.id,
            _ => return Ok(n),
        }
    }
}

/// The tables and columns of the version-1 snapshot, as it was: columns added after studies were
/// first locked were appended only when set.
const LEGACY_ADDED: &[(&str, &[&str])] = &[("campaigns", &["purpose"]), ("saved_analyses", &["superseded_by"])];

/// Columns that did not exist while locks were recorded in the version-1 form (added by
/// migration 000025 or later): left out of it, as the version that recorded them never saw
/// them. Every column a later migration adds to a snapshot table belongs here.
const LEGACY_UNKNOWN: &[(&str, &[&str])] = &[("biomarker_runs", &["provider"]), ("biomarker_results", &["provider"])];

#[derive(QueryableByName)]
struct ColumnName {
    #[diesel(sql_type = Text)]
    name: String,
}

/// The version-1 snapshot (SQLite's `json_object` text of each row in schema order), kept only
/// to check, once, that a lock recorded in that form still covers the data before it is
/// re-hashed ([`rehash_legacy_locks`]), and by its test to make such a lock.
pub fn legacy(conn: &mut Conn, study_id: crate::studies::StudyId) -> Result<(String, BTreeMap<String, usize>)> {
    if is_postgres(conn) {
        return Err(Error::Internal(anyhow::anyhow!(
            "a version-1 lock snapshot is SQLite's own: re-hash the lock on SQLite before moving the study"
        )));
    }
    let mut hasher = Sha256::new();
    let mut counts = BTreeMap::new();
    for (table, filter, excluded) in TABLES {
        let added = LEGACY_ADDED.iter().find(|(t, _)| t == table).map(|(_, a)| *a).unwrap_or(&[]);
        let unknown = LEGACY_UNKNOWN.iter().find(|(t, _)| t == table).map(|(_, a)| *a).unwrap_or(&[]);
        let cols: Vec<ColumnName> =
            diesel::sql_query(format!("SELECT name FROM pragma_table_info('{table}')")).load(conn)?;
        let cols: Vec<ColumnName> = cols.into_iter().filter(|c| !unknown.contains(&c.name.as_str())).collect();
        let fields: Vec<String> = cols
            .iter()
            .filter(|c| !excluded.contains(&c.name.as_str()) && !added.contains(&c.name.as_str()))
            .map(|c| format!("'{0}', \"{0}\"", c.name))
            .collect();
        let base = format!("json_object({})", fields.join(", "));
        let mut row = format!("substr({base}, 1, length({base}) - 1)");
        for col in added.iter().filter(|a| cols.iter().any(|c| c.name == **a)) {
            let pair = format!("json_object('{col}', \"{col}\")");
            row.push_str(&format!(
                " || CASE WHEN \"{col}\" IS NULL THEN '' ELSE ',' || substr({pair}, 2, length({pair}) - 2) END"
            ));
        }
        row.push_str(" || '}'");
        let sql = format!("SELECT id, {row} AS j FROM {table} WHERE ({filter}) AND id > ? ORDER BY id LIMIT {PAGE}");
        hasher.update(table.as_bytes());
        hasher.update(b"\n");
        let n = each_row(conn, &sql, study_id, |r| {
            hasher.update(r.j.as_bytes());
            hasher.update(b"\n");
            Ok(())
        })?;
        counts.insert(table.to_string(), n);
    }
    Ok((hex::encode(hasher.finalize()), counts))
}

/// Moves every current lock recorded in the version-1 form to this one, once (at start, after
/// the migrations). For each, in one transaction: the version-1 hash is computed again; if it is
/// still the lock's, the data is what was signed, and the new hash — computed over the same rows,
/// with the same counts — becomes the lock's, the old one kept beside it (`legacy_sha256`, which
/// the signatures made before still match). Both hashes and both row counts are recorded in the
/// study's audit trail (`rehash_lock`, by `system`). A lock whose data no longer matches its
/// hash keeps it, stays in the first form (a later start tries again) and is logged: its
/// signatures are invalid, as they already were. Several processes starting at once re-hash each
/// lock once: the check is repeated inside the write transaction. Returns how many locks were
/// re-hashed.
pub fn rehash_legacy_locks(conn: &mut Conn) -> Result<usize> {
    let pending: Vec<i32> = study_locks::table
        .filter(study_locks::snapshot_version.lt(VERSION))
        .filter(study_locks::unlocked_at.is_null())
        .select(study_locks::id)
        .load(conn)?;
    let mut rehashed = 0;
    for lock_id in &pending {
        let done = write_tx(conn, |conn| {
            let (study_id, old, version): (crate::studies::StudyId, String, i32) = study_locks::table
                .find(lock_id)
                .select((study_locks::study_id, study_locks::snapshot_sha256, study_locks::snapshot_version))
                .first(conn)?;
            if version >= VERSION {
                return Ok(false); // another process did it first
            }
            let study: crate::studies::Study = crate::db::schema::studies::table
                .find(study_id)
                .select(crate::studies::Study::as_select())
                .first(conn)?;
            let (v1, v1_rows) = legacy(conn, study_id)?;
            let (v2, v2_rows) = compute(conn, study_id)?;
            // The first form knew none of the tables added later.
            let mut v2_common = v2_rows.clone();
            v2_common.retain(|table, _| !LATER_TABLES.iter().any(|(t, _, _)| t == table));
            if v1 != old || v1_rows != v2_common {
                tracing::warn!(
                    study = %study.code,
                    lock = lock_id,
                    "the data no longer matches the lock's first-form hash: not re-hashed, its signatures stay invalid"
                );
                return Ok(false);
            }
            diesel::update(study_locks::table.find(lock_id))
                .set((
                    study_locks::snapshot_sha256.eq(&v2),
                    study_locks::legacy_sha256.eq(Some(&old)),
                    study_locks::snapshot_version.eq(VERSION),
                ))
                .execute(conn)?;
            audit::record(
                conn,
                Change::new(study.chain(), "system", Action::RehashLock, Entity::Study, &study.code)
                    .before(json!({"lock": lock_id, "snapshot_sha256": old, "snapshot_version": 1}))
                    .after(json!({
                        "lock": lock_id,
                        "snapshot_sha256": v2,
                        "snapshot_version": VERSION,
                        "legacy_sha256_recomputed": v1,
                        "rows_legacy": v1_rows,
                        "rows": v2_rows,
                    }))
                    .because(
                        "snapshot hash computed from typed rows (engine-independent); the old hash, recomputed over the same rows, still matched",
                    ),
            )?;
            Ok::<_, Error>(true)
        })?;
        rehashed += usize::from(done);
    }
    Ok(rehashed)
}

#[cfg(test)]
mod tests {
    use super::Kind;
    use serde_json::json;

    #[test]
    fn values_are_normalised_by_kind_whatever_the_engine_carried() {
        // SQLite's booleans are 0/1, PostgreSQL's true/false.
        assert_eq!(Kind::Boolean.value(&json!(1)).unwrap(), Some(json!(true)));
        assert_eq!(Kind::Boolean.value(&json!(true)).unwrap(), Some(json!(true)));
        assert!(Kind::Boolean.value(&json!(2)).is_err());
        // Doubles carried as 17 digits come back as the same f64 (0.1 is not 0.10000000000000001).
        assert_eq!(Kind::Double.value(&json!("0.10000000000000001")).unwrap(), Some(json!(0.1)));
        assert_eq!(Kind::Double.value(&json!(0.1)).unwrap(), Some(json!(0.1)));
        // Timestamps: SQLite's text with a space, PostgreSQL's with a T; microseconds.
        for t in ["2026-12-07 03:08:18.801385", "2026-12-07T03:08:18.801385", "2026-12-07 03:08:18.801385000"] {
            assert_eq!(Kind::Timestamp.value(&json!(t)).unwrap(), Some(json!("2026-12-07T03:08:18.801385")), "{t}");
        }
        assert_eq!(
            Kind::Timestamp.value(&json!("2026-12-07 03:08:18")).unwrap(),
            Some(json!("2026-12-07T03:08:18.000000"))
        );
        assert_eq!(Kind::Date.value(&json!("2025-01-10")).unwrap(), Some(json!("2025-01-10")));
        assert_eq!(Kind::Integer.value(&json!(null)).unwrap(), None, "NULL is left out");
        assert!(Kind::of("t", "c", "blob").is_err(), "an unknown type is refused");
    }
}
