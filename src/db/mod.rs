//! The database: an r2d2 pool of connections to SQLite (the embedded default, one file in the
//! data dir, with its PRAGMAs) or PostgreSQL (`EVIDENTIA_DATABASE_URL=postgres://…`), the
//! embedded migrations of each, and the transaction helper every write goes through.
//!
//! Both engines are one connection type, [`Conn`] (diesel's `MultiConnection`): the domain code
//! is written once against the one schema; the few statements whose SQL differs between the
//! engines match on the variant.

pub mod copy;
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
use diesel::pg::PgConnection;
use diesel::r2d2::{CustomizeConnection, ManageConnection, Pool, PooledConnection, R2D2Connection};
use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

/// A connection to either engine. PostgreSQL comes first: `establish` tries the variants in
/// order and SQLite accepts any string as a file name (the pool does not use `establish`; it
/// opens the variant its [`DatabaseUrl`] names).
#[derive(diesel::MultiConnection)]
pub enum Conn {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

pub type DbPool = Pool<Manager>;
pub type PooledConn = PooledConnection<Manager>;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Where the database is: `sqlite://PATH` (or a bare path) or `postgres://…` /
/// `postgresql://…` (libpq's URI, credentials included or from `PGPASSWORD` / `~/.pgpass`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl DatabaseUrl {
    /// `url` as given by `--database-url` / `EVIDENTIA_DATABASE_URL`; `None` (not set) is the
    /// SQLite file [`DB_FILE`] in `data_dir`.
    pub fn parse(url: Option<&str>, data_dir: &Path) -> anyhow::Result<DatabaseUrl> {
        let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else {
            return Ok(DatabaseUrl::Sqlite(data_dir.join(DB_FILE)));
        };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(url.to_string()));
        }
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                anyhow::bail!(
                    "database URL {url}: sqlite:// names no file (e.g. sqlite:///srv/evidentia/evidentia.db)"
                );
            }
            return Ok(DatabaseUrl::Sqlite(path.into()));
        }
        if url.contains("://") {
            anyhow::bail!("database URL {}: only sqlite:// and postgres:// are supported", redact(url));
        }
        if url.contains('=') {
            // libpq's keyword/value form (host=… password=…): not a file name.
            anyhow::bail!("the database URL looks like libpq settings (key=value): give it as postgres://USER@HOST/DB");
        }
        Ok(DatabaseUrl::Sqlite(url.into()))
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, DatabaseUrl::Postgres(_))
    }

    /// Opens one connection (no pool, no PRAGMAs: for tools and tests).
    pub fn connect(&self) -> diesel::ConnectionResult<Conn> {
        match self {
            DatabaseUrl::Sqlite(path) => SqliteConnection::establish(&path.to_string_lossy()).map(Conn::Sqlite),
            DatabaseUrl::Postgres(url) => {
                let mut c = PgConnection::establish(url).map_err(|e| redact_error(e, url))?;
                // Times are written and read as UTC whatever the server's default; doubles are
                // printed exactly (the snapshot hash reads them as text) whatever a role or
                // database sets.
                c.batch_execute("SET TIME ZONE 'UTC'; SET extra_float_digits = 3;")
                    .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
                Ok(Conn::Postgres(c))
            }
        }
    }
}

/// How the URL is shown in messages and logs: without its password.
impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseUrl::Sqlite(path) => write!(f, "{}", path.display()),
            DatabaseUrl::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

/// `postgres://user:secret@host/db?password=x` → `postgres://user:***@host/db?password=***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let mut out = match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => format!("{scheme}://{rest}"),
        },
        None => format!("{scheme}://{rest}"),
    };
    if let Some(q) = query {
        let params: Vec<String> = q
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => p.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// libpq's message about a URL it could not use may quote the URL or its password: both go.
fn redact_error(e: diesel::ConnectionError, url: &str) -> diesel::ConnectionError {
    let mut text = e.to_string().replace(url, &redact(url));
    let secrets = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split('?').next()?.rsplit_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':').map(|(_, pw)| pw.to_string()))
        .into_iter()
        .chain(url.split_once('?').into_iter().flat_map(|(_, q)| {
            q.split('&')
                .filter_map(|p| p.split_once('=').filter(|(k, _)| k.eq_ignore_ascii_case("password")))
                .map(|(_, v)| v.to_string())
                .collect::<Vec<_>>()
        }));
    for secret in secrets.filter(|s| !s.is_empty()) {
        text = text.replace(&secret, "***");
    }
    diesel::ConnectionError::BadConnection(text)
}

/// The pool's connection manager: opens the engine the URL names.
#[derive(Debug)]
pub struct Manager {
    url: DatabaseUrl,
}

impl ManageConnection for Manager {
    type Connection = Conn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<Conn, Self::Error> {
        self.url.connect().map_err(diesel::r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), Self::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

/// Runs `body` with `c` bound to the connection's own engine connection (a `PgConnection` or a
/// `SqliteConnection`; `body` is compiled for each): for the statements the connection enum
/// cannot express for both engines at once (a multi-row `INSERT`, `ON CONFLICT`, `RETURNING` a
/// whole row). Both engines run the same statement.
macro_rules! on_engine {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::Conn::Postgres($c) => $body,
            $crate::db::Conn::Sqlite($c) => $body,
        }
    };
}
pub(crate) use on_engine;

/// Which engine a connection talks to.
pub fn is_postgres(conn: &Conn) -> bool {
    matches!(conn, Conn::Postgres(_))
}

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
    if is_postgres(conn) {
        return f(conn); // PostgreSQL sizes its own buffers
    }
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

/// SQLite: copies the WAL into the database file as far as no reader still needs it (a PASSIVE
/// checkpoint: it waits for no one and blocks no one). After a [`bulk_write`]. Returns whether
/// every frame was copied; an open read transaction on an older snapshot can hold some back.
pub fn checkpoint(conn: &mut Conn) -> anyhow::Result<bool> {
    use diesel::RunQueryDsl;
    if is_postgres(conn) {
        return Ok(true); // PostgreSQL checkpoints by itself
    }
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
    let Conn::Sqlite(conn) = conn else { return false };
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
        if is_postgres(conn) {
            return Ok(()); // its session settings are made by `DatabaseUrl::connect`
        }
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

/// Opens the database `url` names (for SQLite creating the file and its folder if needed) and
/// returns a pool. A file that is not a readable SQLite database, or a PostgreSQL server that
/// does not answer, is named at once (the pool would retry for 15 s and then report only a
/// timeout).
pub fn open_pool(url: &DatabaseUrl, max_size: u32) -> anyhow::Result<DbPool> {
    match url {
        DatabaseUrl::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            if path.exists() {
                let readable = url
                    .connect()
                    .map_err(anyhow::Error::from)
                    .and_then(|mut c| c.batch_execute("PRAGMA schema_version;").map_err(anyhow::Error::from));
                if let Err(e) = readable {
                    anyhow::bail!("{}: not a readable database ({e}); {RESTORE_ADVICE}", path.display());
                }
            }
        }
        DatabaseUrl::Postgres(_) => {
            if let Err(e) = url.connect() {
                anyhow::bail!("{url}: cannot connect to PostgreSQL ({})", e.to_string().trim());
            }
        }
    }
    let manager = Manager { url: url.clone() };
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
    if is_postgres(conn) {
        // PostgreSQL checks its pages itself (checksums, WAL); `amcheck` is the DBA's tool.
        return Ok(());
    }
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

/// Applies every pending embedded migration of the connection's engine; returns the names of
/// those applied.
pub fn run_migrations(conn: &mut Conn) -> anyhow::Result<Vec<String>> {
    let applied = match conn {
        Conn::Sqlite(c) => c.run_pending_migrations(MIGRATIONS),
        Conn::Postgres(c) => c.run_pending_migrations(PG_MIGRATIONS),
    }
    .map_err(|e| anyhow::anyhow!("migration failed: {e}"))?;
    Ok(applied.iter().map(|m| m.to_string()).collect())
}

/// The key of the PostgreSQL advisory lock every write transaction holds (`'evidentia'` as
/// eight bytes).
const WRITE_LOCK_KEY: i64 = 0x6576_6964_656e_7469;

/// Runs `f` in a write transaction: one writer at a time, on both engines, so that what a
/// writer reads (the audit chain's head, a job's state, a version number) is still true when it
/// writes. On SQLite the transaction is `BEGIN IMMEDIATE` (two writers never both start reading
/// and then deadlock on the upgrade to a write lock); on PostgreSQL it takes a transaction-level
/// advisory lock first, which every server and worker process on the database shares and the
/// COMMIT or ROLLBACK releases, waiting for it at most 10 s (SQLite's `busy_timeout`). Readers
/// are never blocked on either engine. Inside another transaction it fails
/// (`AlreadyInTransaction`) on both.
pub fn write_tx<T, E, F>(conn: &mut Conn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut Conn) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    in_transaction(conn, true, f)
}

/// Runs `f` in a read-only transaction that sees one snapshot of the data throughout (an export
/// that must match what was signed): SQLite's deferred transaction (in WAL mode its first read
/// fixes the snapshot), PostgreSQL's `REPEATABLE READ READ ONLY` (its default, READ COMMITTED,
/// would let each statement see what others committed meanwhile).
pub fn read_tx<T, E, F>(conn: &mut Conn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut Conn) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    in_transaction(conn, false, f)
}

fn in_transaction<T, E, F>(conn: &mut Conn, write: bool, f: F) -> Result<T, E>
where
    F: FnOnce(&mut Conn) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    use diesel::result::Error;
    // `begin_transaction_sql` refuses to begin inside a transaction (`AlreadyInTransaction`).
    match (&mut *conn, write) {
        (Conn::Sqlite(c), true) => AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?,
        (Conn::Sqlite(c), false) => AnsiTransactionManager::begin_transaction_sql(c, "BEGIN")?,
        (Conn::Postgres(c), false) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?
        }
        (Conn::Postgres(c), true) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN")?;
            let locked = c.batch_execute(&format!(
                "SET LOCAL lock_timeout = '10s'; SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY});"
            ));
            if let Err(e) = locked {
                let _ = <Conn as Connection>::TransactionManager::rollback_transaction(conn);
                return Err(e.into());
            }
        }
    }
    // What diesel's `transaction` does after its BEGIN.
    match f(conn) {
        Ok(value) => {
            <Conn as Connection>::TransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(user_error) => match <Conn as Connection>::TransactionManager::rollback_transaction(conn) {
            Ok(()) | Err(Error::BrokenTransactionManager) => Err(user_error),
            Err(rollback_error) => Err(rollback_error.into()),
        },
    }
}

/// Writes a consistent copy of the live database to `dest` (SQLite `VACUUM INTO`, safe while
/// the server runs). A PostgreSQL database is backed up with PostgreSQL's own tools.
pub fn online_backup(conn: &mut Conn, dest: &Path) -> anyhow::Result<()> {
    if is_postgres(conn) {
        anyhow::bail!(
            "the database is PostgreSQL: back it up with pg_dump (or the server's continuous archiving) and the \
             data dir's files with your file backup; see docs/operations.md, PostgreSQL"
        );
    }
    let dest = dest.to_string_lossy().replace('\'', "''");
    conn.batch_execute(&format!("VACUUM INTO '{dest}'"))?;
    Ok(())
}

/// Checks the database answers (used by `/healthz`).
pub fn ping(conn: &mut Conn) -> bool {
    conn.batch_execute("SELECT 1").is_ok()
}

/// The time now, UTC, to the microsecond: what PostgreSQL's `timestamp` keeps (it would round
/// nanoseconds), so that a stored time reads back the same on both engines and a study moved
/// from one to the other keeps its snapshot hash.
pub fn now() -> chrono::NaiveDateTime {
    use chrono::SubsecRound;
    chrono::Utc::now().naive_utc().trunc_subsecs(6)
}

/// The value of dictionary field `field` in `cases.data` (as text) matches the `LIKE` pattern,
/// ignoring case, for filtering cases by any field: SQLite's `json_extract`, PostgreSQL's
/// `->>` with `ILIKE`.
pub fn json_text_like<QS: 'static>(
    postgres: bool,
    field: &str,
    pattern: &str,
) -> Box<dyn diesel::BoxableExpression<QS, MultiBackend, SqlType = diesel::sql_types::Bool>> {
    use diesel::sql_types::{Bool, Text};
    let field = field.replace('"', "");
    if postgres {
        return Box::new(
            diesel::dsl::sql::<Bool>("(cases.data::jsonb ->> ")
                .bind::<Text, _>(field)
                .sql(") ILIKE ")
                .bind::<Text, _>(pattern.to_string()),
        );
    }
    Box::new(
        diesel::dsl::sql::<Bool>("CAST(json_extract(cases.data, ")
            .bind::<Text, _>(format!("$.\"{field}\""))
            .sql(") AS TEXT) LIKE ")
            .bind::<Text, _>(pattern.to_string()),
    )
}

diesel::define_sql_function! {
    /// SQL `lower()`: `lower(column).like(lower(pattern))` ignores (ASCII) case the same way on
    /// both engines (SQLite's `LIKE` ignores ASCII case, PostgreSQL's does not).
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::RunQueryDsl;

    #[test]
    fn database_urls_name_the_engine_and_hide_the_password() {
        let dir = Path::new("/srv/evidentia");
        assert_eq!(DatabaseUrl::parse(None, dir).unwrap(), DatabaseUrl::Sqlite(dir.join(DB_FILE)));
        assert_eq!(DatabaseUrl::parse(Some("  "), dir).unwrap(), DatabaseUrl::Sqlite(dir.join(DB_FILE)));
        assert_eq!(
            DatabaseUrl::parse(Some("sqlite:///var/lib/e.db"), dir).unwrap(),
            DatabaseUrl::Sqlite("/var/lib/e.db".into())
        );
        let pg = DatabaseUrl::parse(Some("postgres://ev:s3cret@db.hospital.org:5432/evidentia"), dir).unwrap();
        assert!(pg.is_postgres());
        assert_eq!(pg.to_string(), "postgres://ev:***@db.hospital.org:5432/evidentia");
        assert!(DatabaseUrl::parse(Some("postgresql://db/evidentia"), dir).unwrap().is_postgres());
        let e = DatabaseUrl::parse(Some("mysql://u:pw@h/d"), dir).unwrap_err().to_string();
        assert!(e.contains("only sqlite:// and postgres://") && !e.contains("pw"), "{e}");
        assert!(DatabaseUrl::parse(Some("sqlite://"), dir).is_err());
        let e = DatabaseUrl::parse(Some("host=db user=ev password=hunter2"), dir).unwrap_err().to_string();
        assert!(e.contains("postgres://") && !e.contains("hunter2"), "{e}");
        let q = DatabaseUrl::parse(Some("postgres://ev@db/e?sslmode=require&password=hunter2"), dir).unwrap();
        assert_eq!(q.to_string(), "postgres://ev@db/e?sslmode=require&password=***");
        let err = redact_error(
            diesel::ConnectionError::BadConnection(
                "invalid percent-encoded token: \"p%zz\" in postgres://ev:p%zz@db/e".into(),
            ),
            "postgres://ev:p%zz@db/e",
        )
        .to_string();
        assert!(!err.contains("p%zz"), "{err}");
    }

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
        let pool = open_pool(&DatabaseUrl::Sqlite(dir.path().join(DB_FILE)), 1).unwrap();
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
        let pool = open_pool(&DatabaseUrl::Sqlite(dir.path().join(DB_FILE)), 1).unwrap();
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
        let pool = open_pool(&DatabaseUrl::Sqlite(dir.path().join(DB_FILE)), 2).unwrap();
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
        let pool = open_pool(&DatabaseUrl::Sqlite(dir.path().join(DB_FILE)), 2).unwrap();
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
