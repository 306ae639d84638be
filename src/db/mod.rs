//! The database: an r2d2 pool of SQLite connections with their PRAGMAs, the embedded
//! migrations, and the transaction helper every write goes through.

pub mod paging;
pub mod schema;

use std::path::Path;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub type Conn = SqliteConnection;
pub type DbPool = Pool<ConnectionManager<Conn>>;
pub type PooledConn = PooledConnection<ConnectionManager<Conn>>;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// The database file inside a data dir.
pub const DB_FILE: &str = "evidentia.db";

#[derive(Debug)]
struct SqlitePragmas;

/// Every connection's page cache, in KiB.
pub const CACHE_KIB: u32 = 64 * 1024;

/// The most a large write may raise its connection's page cache to, in KiB (256 MB).
pub const MAX_CACHE_KIB: u32 = 256 * 1024;

/// Runs `f` with a page cache of `kib` KiB on this connection (a large write transaction whose
/// pages then stay in memory instead of spilling to the WAL and being read back), restoring the
/// usual size afterwards whatever `f` returns.
pub fn with_cache<T>(conn: &mut Conn, kib: u32, f: impl FnOnce(&mut Conn) -> T) -> T {
    // A failed PRAGMA only changes speed, not results.
    let _ = conn.batch_execute(&cache_pragma(kib));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)));
    let _ = conn.batch_execute(&cache_pragma(CACHE_KIB));
    out.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

fn cache_pragma(kib: u32) -> String {
    format!("PRAGMA cache_size = -{kib};")
}

impl CustomizeConnection<Conn, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut Conn) -> Result<(), diesel::r2d2::Error> {
        // WAL lets readers run beside the one writer; busy_timeout makes writers queue
        // instead of failing with SQLITE_BUSY; foreign keys are off in SQLite by default.
        // A page cache of up to 64 MB per connection (SQLite's default is 2 MB; pages are
        // allocated only as used) keeps the indexes of a 100,000-case study in memory.
        conn.batch_execute(&format!(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA foreign_keys = ON;
             PRAGMA busy_timeout = 10000;
             {}",
            cache_pragma(CACHE_KIB)
        ))
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Opens (creating if needed) `evidentia.db` in `data_dir` and returns a pool.
pub fn open_pool(data_dir: &Path, max_size: u32) -> anyhow::Result<DbPool> {
    std::fs::create_dir_all(data_dir)?;
    let url = data_dir.join(DB_FILE);
    let manager = ConnectionManager::<Conn>::new(url.to_string_lossy().to_string());
    let pool = Pool::builder()
        .max_size(max_size)
        .connection_timeout(Duration::from_secs(15))
        .connection_customizer(Box::new(SqlitePragmas))
        .build(manager)?;
    Ok(pool)
}

/// Applies every pending embedded migration; returns the names of those applied.
pub fn run_migrations(conn: &mut Conn) -> anyhow::Result<Vec<String>> {
    let applied = conn.run_pending_migrations(MIGRATIONS).map_err(|e| anyhow::anyhow!("migration failed: {e}"))?;
    Ok(applied.iter().map(|m| m.to_string()).collect())
}

/// Runs `f` in a write transaction. On SQLite the transaction is `BEGIN IMMEDIATE`, so that
/// two writers never both start reading and then deadlock on the upgrade to a write lock.
pub fn write_tx<T, E, F>(conn: &mut Conn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut Conn) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    conn.immediate_transaction(f)
}

/// Writes a consistent copy of the live database to `dest` (SQLite `VACUUM INTO`, safe while
/// the server runs).
pub fn online_backup(conn: &mut Conn, dest: &Path) -> anyhow::Result<()> {
    let dest = dest.to_string_lossy().replace('\'', "''");
    conn.batch_execute(&format!("VACUUM INTO '{dest}'"))?;
    Ok(())
}

/// Checks the database answers (used by `/healthz`).
pub fn ping(conn: &mut Conn) -> bool {
    conn.batch_execute("SELECT 1").is_ok()
}

pub fn now() -> chrono::NaiveDateTime {
    chrono::Utc::now().naive_utc()
}

/// `json_extract(cases.data, '$.<field>') LIKE pattern`, for filtering cases by any dictionary
/// field. SQLite's JSON1; the PostgreSQL form would be `data::jsonb ->> field`.
pub fn json_text_like<QS: 'static>(
    field: &str,
    pattern: &str,
) -> Box<dyn diesel::BoxableExpression<QS, diesel::sqlite::Sqlite, SqlType = diesel::sql_types::Bool>> {
    use diesel::sql_types::{Bool, Text};
    Box::new(
        diesel::dsl::sql::<Bool>("CAST(json_extract(cases.data, ")
            .bind::<Text, _>(format!("$.\"{}\"", field.replace('"', "")))
            .sql(") AS TEXT) LIKE ")
            .bind::<Text, _>(pattern.to_string()),
    )
}
