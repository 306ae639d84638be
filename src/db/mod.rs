//! The database: an r2d2 pool of SQLite connections with their PRAGMAs, the embedded
//! migrations, and the transaction helper every write goes through.

#[cfg(test)]
mod drift;
mod json;
pub mod paging;
pub mod schema;
mod text_enum;

pub use json::Json;
pub(crate) use text_enum::text_enum;

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

/// Runs a large write `f` on this connection: with a page cache of `kib` KiB (its pages then
/// stay in memory instead of spilling to the WAL and being read back), without the automatic
/// checkpoint at its COMMIT, and with the WAL synced at that COMMIT (`synchronous = FULL`; under
/// NORMAL only a checkpoint syncs it, and that now comes later). So the writer returns once the
/// transaction is durable in the WAL; copying it into the database file is left to
/// [`checkpoint`], which the server runs in the background. The usual settings are restored
/// afterwards, each on its own, whatever `f` returns, a panic included.
pub fn bulk_write<T>(conn: &mut Conn, kib: u32, f: impl FnOnce(&mut Conn) -> T) -> T {
    // A failed PRAGMA only changes speed (or, for `synchronous`, leaves NORMAL's durability).
    let _ =
        conn.batch_execute(&format!("{} PRAGMA wal_autocheckpoint = 0; PRAGMA synchronous = FULL;", cache_pragma(kib)));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)));
    for usual in [AUTOCHECKPOINT, SYNCHRONOUS, &cache_pragma(CACHE_KIB)] {
        let _ = conn.batch_execute(usual);
    }
    out.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Every connection checkpoints after a commit that leaves 1,000 pages in the WAL (SQLite's
/// default, set explicitly so that [`bulk_write`] restores what `on_acquire` set).
const AUTOCHECKPOINT: &str = "PRAGMA wal_autocheckpoint = 1000;";

/// In WAL mode, NORMAL loses no committed transaction on a process crash; a power loss may lose
/// the last ones before a checkpoint.
const SYNCHRONOUS: &str = "PRAGMA synchronous = NORMAL;";

/// What `PRAGMA wal_checkpoint` answers.
#[derive(diesel::QueryableByName)]
struct CheckpointResult {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    busy: i32,
    /// Frames in the WAL (-1 when the database is not in WAL mode).
    #[diesel(sql_type = diesel::sql_types::Integer)]
    log: i32,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    checkpointed: i32,
}

/// Copies the WAL into the database file as far as no reader still needs it (a PASSIVE
/// checkpoint: it waits for no one and blocks no one). After a [`bulk_write`]. Returns whether
/// every frame was copied; an open read transaction on an older snapshot can hold some back.
pub fn checkpoint(conn: &mut Conn) -> anyhow::Result<bool> {
    use diesel::RunQueryDsl;
    let r: CheckpointResult = diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)").get_result(conn)?;
    Ok(r.busy == 0 && r.checkpointed >= r.log)
}

/// Runs [`checkpoint`] on a connection of its own in a background thread, so that the request
/// that wrote does not wait for it, retrying for about half a minute while readers hold frames
/// back. Best effort: what it leaves, the next commit's automatic checkpoint copies.
pub fn checkpoint_in_background(pool: &DbPool) {
    let pool = pool.clone();
    let spawned = std::thread::Builder::new().name("checkpoint".into()).spawn(move || {
        let mut wait = Duration::from_millis(100);
        for _ in 0..10 {
            match pool.get().map_err(anyhow::Error::from).and_then(|mut c| checkpoint(&mut c)) {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => tracing::warn!("background checkpoint: {e}"),
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(Duration::from_secs(5));
        }
        tracing::warn!("background checkpoint incomplete: readers kept part of the WAL");
    });
    if let Err(e) = spawned {
        tracing::warn!("background checkpoint not started: {e}");
    }
}

fn cache_pragma(kib: u32) -> String {
    format!("PRAGMA cache_size = -{kib};")
}

/// Turns SQLite's query planner stability guarantee (QPSG) on or off for `conn`, or with `None`
/// only reads it; returns whether it is on.
///
/// Without it, SQLite marks a statement whose plan may depend on a bound value (a `LIMIT ?`,
/// which diesel's `first()` binds; a bound `LIKE` pattern) to be prepared again whenever its
/// bindings are cleared, and diesel clears them after every run: each such cached statement was
/// parsed and planned again on every use, a quarter of the server's CPU time on the case list
/// under load (issue 20; `perf`, docs/benchmarks.md). With QPSG a statement's plan depends on
/// its SQL text alone, and the cache keeps it.
pub fn plan_stability(conn: &mut Conn, on: Option<bool>) -> bool {
    use std::ffi::c_int;
    let set: c_int = match on {
        Some(true) => 1,
        Some(false) => 0,
        None => -1,
    };
    let mut now: c_int = 0;
    // SAFETY: the handle is this connection's own and stays open for the call;
    // SQLITE_DBCONFIG_ENABLE_QPSG takes an int (-1: leave as is) and a pointer to an int that
    // receives the setting, as documented for sqlite3_db_config.
    let rc = unsafe {
        conn.with_raw_connection(|db| {
            libsqlite3_sys::sqlite3_db_config(
                db,
                libsqlite3_sys::SQLITE_DBCONFIG_ENABLE_QPSG,
                set,
                &mut now as *mut c_int,
            )
        })
    };
    rc == libsqlite3_sys::SQLITE_OK && now == 1
}

impl CustomizeConnection<Conn, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut Conn) -> Result<(), diesel::r2d2::Error> {
        if !plan_stability(conn, Some(true)) {
            tracing::warn!("SQLite's query planner stability guarantee could not be set: queries are slower");
        }
        // WAL lets readers run beside the one writer; busy_timeout makes writers queue
        // instead of failing with SQLITE_BUSY; foreign keys are off in SQLite by default.
        // A page cache of up to 64 MB per connection (SQLite's default is 2 MB; pages are
        // allocated only as used) keeps the indexes of a 100,000-case study in memory.
        conn.batch_execute(&format!(
            "PRAGMA journal_mode = WAL;
             {SYNCHRONOUS}
             {AUTOCHECKPOINT}
             PRAGMA foreign_keys = ON;
             PRAGMA busy_timeout = 10000;
             {}",
            cache_pragma(CACHE_KIB)
        ))
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Opens (creating if needed) `evidentia.db` in `data_dir` and returns a pool. A file that is
/// not a readable SQLite database is named at once (the pool would retry for 15 s and then
/// report only a timeout).
pub fn open_pool(data_dir: &Path, max_size: u32) -> anyhow::Result<DbPool> {
    std::fs::create_dir_all(data_dir)?;
    let url = data_dir.join(DB_FILE);
    if url.exists() {
        let readable = <Conn as diesel::Connection>::establish(&url.to_string_lossy())
            .map_err(anyhow::Error::from)
            .and_then(|mut c| c.batch_execute("PRAGMA schema_version;").map_err(anyhow::Error::from));
        if let Err(e) = readable {
            anyhow::bail!("{}: not a readable database ({e}); {RESTORE_ADVICE}", url.display());
        }
    }
    let manager = ConnectionManager::<Conn>::new(url.to_string_lossy().to_string());
    let pool = Pool::builder()
        .max_size(max_size)
        .connection_timeout(Duration::from_secs(15))
        .connection_customizer(Box::new(SqlitePragmas))
        .build(manager)?;
    Ok(pool)
}

/// What to do about a damaged database file.
pub const RESTORE_ADVICE: &str = "nothing was changed: restore the latest backup into a new data dir \
(evidentia restore FILE.tar.gz --data-dir DIR; see docs/operations.md, Backup and restore)";

/// SQLite's own consistency check: `PRAGMA quick_check` (every page and row, O(N); not the
/// indexes' contents) or, with `full`, `PRAGMA integrity_check`. `Err` lists the first problems.
pub fn check_integrity(conn: &mut Conn, full: bool) -> anyhow::Result<()> {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        #[diesel(column_name = "integrity_check")]
        result: String,
    }
    #[derive(diesel::QueryableByName)]
    struct QuickRow {
        #[diesel(sql_type = diesel::sql_types::Text)]
        #[diesel(column_name = "quick_check")]
        result: String,
    }
    let rows: Vec<String> = if full {
        diesel::sql_query("PRAGMA integrity_check").load::<Row>(conn)?.into_iter().map(|r| r.result).collect()
    } else {
        diesel::sql_query("PRAGMA quick_check").load::<QuickRow>(conn)?.into_iter().map(|r| r.result).collect()
    };
    match rows.as_slice() {
        [only] if only == "ok" => Ok(()),
        _ => anyhow::bail!("{}", rows.iter().take(5).cloned().collect::<Vec<_>>().join("; ")),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::RunQueryDsl;

    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        value: i64,
    }

    #[derive(diesel::QueryableByName)]
    struct Autocheckpoint {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        wal_autocheckpoint: i64,
    }

    #[derive(diesel::QueryableByName)]
    struct Synchronous {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        synchronous: i64,
    }

    /// The connection's page cache setting, automatic checkpoint threshold and sync level
    /// (1 NORMAL, 2 FULL).
    fn settings(conn: &mut Conn) -> (i64, i64, i64) {
        let cache = diesel::sql_query("SELECT cache_size AS value FROM pragma_cache_size").get_result::<Setting>(conn);
        let auto = diesel::sql_query("PRAGMA wal_autocheckpoint").get_result::<Autocheckpoint>(conn);
        let sync = diesel::sql_query("PRAGMA synchronous").get_result::<Synchronous>(conn);
        (cache.unwrap().value, auto.unwrap().wal_autocheckpoint, sync.unwrap().synchronous)
    }

    #[test]
    fn pooled_connections_keep_their_query_plans_whatever_is_bound() {
        let dir = tempfile::tempdir().unwrap();
        let pool = open_pool(dir.path(), 1).unwrap();
        let mut conn = pool.get().unwrap();
        assert!(plan_stability(&mut conn, None), "QPSG is on for every pooled connection");
        // The reading form reads: a fresh connection has it off (SQLite's default).
        let mut plain = <Conn as diesel::Connection>::establish(":memory:").unwrap();
        assert!(!plan_stability(&mut plain, None));
        assert!(plan_stability(&mut plain, Some(true)));
    }

    #[test]
    fn a_bulk_write_restores_the_cache_checkpoint_and_sync_settings_even_after_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let pool = open_pool(dir.path(), 1).unwrap();
        let mut conn = pool.get().unwrap();
        let usual = settings(&mut conn);
        assert_eq!(usual, (-i64::from(CACHE_KIB), 1000, 1));
        let inside = bulk_write(&mut conn, MAX_CACHE_KIB, settings);
        assert_eq!(inside, (-i64::from(MAX_CACHE_KIB), 0, 2));
        assert_eq!(settings(&mut conn), usual);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            bulk_write(&mut conn, MAX_CACHE_KIB, |_| panic!("inside the write"))
        }));
        assert!(panicked.is_err());
        assert_eq!(settings(&mut conn), usual);
    }

    #[test]
    fn a_bulk_write_waits_in_the_wal_until_the_checkpoint_copies_it() {
        let dir = tempfile::tempdir().unwrap();
        let pool = open_pool(dir.path(), 2).unwrap();
        let mut conn = pool.get().unwrap();
        conn.batch_execute("CREATE TABLE t (v TEXT NOT NULL)").unwrap();
        let db_size = || std::fs::metadata(dir.path().join(DB_FILE)).unwrap().len();
        let before = db_size();
        // About 8 MB: 2,000 pages, twice what triggers an automatic checkpoint.
        bulk_write(&mut conn, CACHE_KIB, |c| {
            write_tx(c, |c| {
                for _ in 0..2000 {
                    diesel::sql_query("INSERT INTO t VALUES (hex(randomblob(2000)))").execute(c)?;
                }
                Ok::<_, diesel::result::Error>(())
            })
        })
        .unwrap();
        assert!(db_size() < before + 1_000_000, "committed to the WAL only");
        // Another connection reads the committed rows meanwhile.
        let mut other = pool.get().unwrap();
        assert_eq!(count(&mut other), 2000);
        assert!(checkpoint(&mut conn).unwrap(), "every frame copied");
        assert!(db_size() > before + 7_000_000, "copied into the database file");
        assert_eq!(count(&mut other), 2000);
    }

    #[test]
    fn a_checkpoint_says_when_a_reader_holds_frames_back() {
        let dir = tempfile::tempdir().unwrap();
        let pool = open_pool(dir.path(), 2).unwrap();
        let (mut writer, mut reader) = (pool.get().unwrap(), pool.get().unwrap());
        writer.batch_execute("CREATE TABLE t (v TEXT NOT NULL); INSERT INTO t VALUES ('a');").unwrap();
        assert!(checkpoint(&mut writer).unwrap());
        // The reader's snapshot predates the next write, so its frames must stay in the WAL.
        reader.batch_execute("BEGIN; SELECT count(*) FROM t;").unwrap();
        writer.batch_execute("INSERT INTO t VALUES ('b')").unwrap();
        assert!(!checkpoint(&mut writer).unwrap(), "incomplete while the reader is open");
        reader.batch_execute("COMMIT").unwrap();
        assert!(checkpoint(&mut writer).unwrap());
    }

    fn count(conn: &mut Conn) -> i64 {
        diesel::sql_query("SELECT count(*) AS value FROM t").get_result::<Setting>(conn).map(|s| s.value).unwrap()
    }
}
