//! The schema drift check: `schema.rs` is written by hand, so a test builds the schema from the
//! migrations (in an in-memory SQLite) and compares the two — tables, columns in order, their
//! diesel types and nullability, primary keys and the `joinable!` foreign keys.

use std::collections::BTreeSet;

use diesel::connection::SimpleConnection;
use diesel::{Connection, RunQueryDsl};
use diesel_migrations::MigrationHarness;

use super::{Conn, MIGRATIONS};

#[derive(diesel::QueryableByName)]
struct TableName {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

#[derive(diesel::QueryableByName)]
struct ColumnInfo {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    r#type: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    notnull: i32,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pk: i32,
}

#[derive(diesel::QueryableByName)]
struct ForeignKey {
    #[diesel(sql_type = diesel::sql_types::Text)]
    table: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    from: String,
}

/// The diesel type `diesel print-schema` gives an SQLite declared type.
fn diesel_type(declared: &str) -> String {
    match declared.to_ascii_uppercase().as_str() {
        "INTEGER" | "INT" => "Integer",
        "BIGINT" => "BigInt",
        "TEXT" => "Text",
        "BOOLEAN" => "Bool",
        "TIMESTAMP" | "DATETIME" => "Timestamp",
        "DATE" => "Date",
        "DOUBLE" | "REAL" | "FLOAT" => "Double",
        "BLOB" => "Binary",
        other => return format!("unmapped SQL type {other}"),
    }
    .to_string()
}

/// The schema the migrations build, in `table!` form: one line per table and per column, and a
/// line per foreign key (`joinable!`).
pub fn from_migrations() -> anyhow::Result<Vec<String>> {
    let mut conn = Conn::establish(":memory:")?;
    conn.batch_execute("PRAGMA foreign_keys = ON")?;
    conn.run_pending_migrations(MIGRATIONS).map_err(|e| anyhow::anyhow!("migrations: {e}"))?;
    let tables: Vec<TableName> = diesel::sql_query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         AND name <> '__diesel_schema_migrations' ORDER BY name",
    )
    .load(&mut conn)?;
    let mut lines = Vec::new();
    let mut joins = BTreeSet::new();
    for t in &tables {
        let columns: Vec<ColumnInfo> =
            diesel::sql_query(format!("SELECT name, type, \"notnull\", pk FROM pragma_table_info('{}')", t.name))
                .load(&mut conn)?;
        let keys: Vec<&str> = columns.iter().filter(|c| c.pk > 0).map(|c| c.name.as_str()).collect();
        lines.push(format!("table {} ({})", t.name, keys.join(", ")));
        for c in &columns {
            let ty = diesel_type(&c.r#type);
            let ty = if c.notnull == 0 && c.pk == 0 { format!("Nullable<{ty}>") } else { ty };
            lines.push(format!("    {} -> {ty}", c.name));
        }
        let fks: Vec<ForeignKey> =
            diesel::sql_query(format!("SELECT \"table\", \"from\" FROM pragma_foreign_key_list('{}')", t.name))
                .load(&mut conn)?;
        // As `diesel print-schema`: no `joinable!` for a table referring to itself or to
        // another table through more than one column (the join would be ambiguous).
        for fk in &fks {
            let same_target = fks.iter().filter(|f| f.table == fk.table).count();
            if fk.table != t.name && same_target == 1 {
                joins.insert(format!("joinable {} -> {} ({})", t.name, fk.table, fk.from));
            }
        }
    }
    Ok(lines.into_iter().chain(joins).collect())
}

/// The same lines from `schema.rs`'s `diesel::table!` and `diesel::joinable!` macros.
pub fn from_schema_rs(source: &str) -> Vec<String> {
    let mut tables: Vec<Vec<String>> = Vec::new();
    let mut joins = BTreeSet::new();
    let mut in_table = false;
    for line in source.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("diesel::joinable!(") {
            // `a -> b (column));`
            let rest = rest.trim_end_matches(';').trim_end_matches(')');
            if let Some((from, to)) = rest.split_once(" -> ") {
                if let Some((target, column)) = to.split_once(" (") {
                    joins.insert(format!("joinable {} -> {} ({})", from.trim(), target.trim(), column.trim()));
                }
            }
        } else if line.starts_with("diesel::table!") {
            in_table = true;
        } else if in_table && line.ends_with('{') && line.contains('(') {
            // `name (key) {`
            let head = line.trim_end_matches('{').trim();
            if let Some((name, keys)) = head.split_once(" (") {
                tables.push(vec![format!("table {} ({}", name.trim(), keys.trim())]);
            }
        } else if in_table && line.contains(" -> ") {
            if let Some(t) = tables.last_mut() {
                t.push(format!("    {}", line.trim_end_matches(',')));
            }
        } else if line == "}" {
            // The columns' closing brace: no more columns until the next `table!`.
            in_table = false;
        }
    }
    tables.sort_by(|a, b| a[0].cmp(&b[0]));
    tables.into_iter().flatten().chain(joins).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_rs_matches_the_migrations() {
        let built = from_migrations().unwrap();
        let written = from_schema_rs(include_str!("schema.rs"));
        assert!(built.len() > 100, "the migrations build the schema: {} lines", built.len());
        if built != written {
            let only_built: Vec<&String> = built.iter().filter(|l| !written.contains(l)).collect();
            let only_written: Vec<&String> = written.iter().filter(|l| !built.contains(l)).collect();
            panic!(
                "src/db/schema.rs has drifted from migrations/sqlite/.\n\
                 In the migrations only: {only_built:#?}\nIn schema.rs only: {only_written:#?}\n\
                 (or the same lines in another order)"
            );
        }
    }

    #[test]
    fn the_check_notices_a_changed_type_a_missing_column_and_a_missing_join() {
        let source = include_str!("schema.rs");
        let built = from_migrations().unwrap();
        let changed = source.replacen("username -> Text,", "username -> Integer,", 1);
        assert_ne!(from_schema_rs(&changed), built);
        let missing = source.replacen("        ended_at -> Nullable<Timestamp>,\n", "", 1);
        assert_ne!(from_schema_rs(&missing), built);
        let nullable = source.replacen("full_name -> Text,", "full_name -> Nullable<Text>,", 1);
        assert_ne!(from_schema_rs(&nullable), built);
        let join = source.replacen("diesel::joinable!(study_locks -> studies (study_id));", "", 1);
        assert_ne!(from_schema_rs(&join), built);
    }
}
