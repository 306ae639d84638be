//! Builds the application (database, migrations, first admin, workers, HTTP server) and runs
//! it until SIGTERM or Ctrl-C. Tests build it on port 0 with a temp data dir.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};

use crate::auth::{passwords, users, Actor};
use crate::config::Config;
use crate::db::{self, DbPool};
use crate::jobs::worker;
use crate::web::{self as webmod, metrics::Metrics, AppState};

pub struct Application {
    port: u16,
    server: Server,
    pub pool: DbPool,
    /// Set when the first start created `admin` with a random password: print it once.
    pub initial_admin_password: Option<String>,
    stop_workers: Arc<AtomicBool>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

/// Opens the data dir's database and brings its schema up to date.
pub fn open_database(config: &Config) -> anyhow::Result<DbPool> {
    std::fs::create_dir_all(&config.data_dir)?;
    std::fs::create_dir_all(config.exports_dir())?;
    let pool = db::open_pool(&config.database()?, config.db_pool_size)?;
    let mut conn = pool.get()?;
    let applied = db::run_migrations(&mut conn)?;
    if !applied.is_empty() {
        tracing::info!(count = applied.len(), "database migrations applied");
    }
    // Locks recorded with the first form of the snapshot hash move to the engine-independent one.
    let rehashed = crate::studies::snapshot::rehash_legacy_locks(&mut conn)?;
    if rehashed > 0 {
        tracing::info!(locks = rehashed, "lock snapshot hashes moved to version 2 (audited as rehash_lock)");
    }
    // A fresh install can run the biomarker at once: the bundled demonstration model.
    match crate::biomarker::registry::ensure_demo_model(&mut conn, &config.storage) {
        Ok(Some(key)) => {
            tracing::info!(model = %key, "registered the bundled demonstration model (not for clinical use)")
        }
        Ok(None) => {}
        Err(e) => tracing::warn!("the bundled demonstration model was not registered: {e}"),
    }
    Ok(pool)
}

/// Object storage is the shape of an installation on several hosts, whose keys must be one: a
/// server or worker whose keys are in its own data dir says so when it starts.
pub fn warn_if_keys_are_local(config: &Config) {
    if config.storage.local_root().is_none() && crate::secrets::dir(&config.data_dir).starts_with(&config.data_dir) {
        tracing::warn!(
            "files are in {} but the keys in this node's data dir: on several hosts, point \
             EVIDENTIA_SECRETS_DIR at one folder they all mount, or each host pseudonymises and signs with keys of its own",
            config.storage.describe()
        );
    }
}

/// A server or worker whose keys folder does not hold the keys the database was written with
/// (a host that does not mount the installation's shared keys) does not start. The first to
/// start makes the signing key and records it, so that a later node without it is refused.
pub fn check_keys(pool: &DbPool, config: &Config) -> anyhow::Result<()> {
    let conn = &mut *pool.get()?;
    crate::dossier::signing_key(conn, &config.data_dir)
        .and_then(|_| crate::secrets::check_recorded(conn, &config.data_dir))
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("{e:#}; this node did not start"))
}

/// With no user at all, creates `admin` with `EVIDENTIA_ADMIN_PASSWORD` or a random password,
/// which is returned (to print once) when it was generated.
pub fn bootstrap_admin(pool: &DbPool) -> anyhow::Result<Option<String>> {
    let mut conn = pool.get()?;
    if users::count(&mut conn)? > 0 {
        return Ok(None);
    }
    let (password, generated) = match std::env::var("EVIDENTIA_ADMIN_PASSWORD") {
        Ok(p) if !p.is_empty() => (p, false),
        _ => (passwords::generate(), true),
    };
    passwords::check_policy("EVIDENTIA_ADMIN_PASSWORD", &password, "admin")?;
    let input = users::NewUserInput { username: "admin".into(), full_name: "Administrator".into(), is_admin: true };
    users::create(&mut conn, &Actor::system(), &input, &passwords::hash(&password)?)?;
    tracing::info!("created the first administrator account 'admin'");
    Ok(generated.then_some(password))
}

/// Every minute, forgets sign-in budgets that are full again; every hour, sweeps `tmp/` of
/// uploads that interrupted requests left (a day old at least: a large upload may still be
/// arriving).
fn housekeeping(
    pool: DbPool,
    (storage, data_dir): (crate::storage::Storage, std::path::PathBuf),
    throttle: Arc<crate::auth::throttle::LoginThrottle>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut minutes = 0u64;
        while !stop.load(Ordering::Relaxed) {
            for _ in 0..60 {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            minutes += 1;
            throttle.forget_idle();
            if minutes.is_multiple_of(60) {
                if let Ok(mut conn) = pool.get() {
                    crate::slides::ingest::sweep_all(&mut conn, &storage, &data_dir, Duration::from_secs(24 * 3600));
                }
            }
        }
    })
}

impl Application {
    pub fn build(config: Config) -> anyhow::Result<Self> {
        warn_if_keys_are_local(&config);
        let pool = open_database(&config)?;
        // Damage inside a table would otherwise surface only when a page reads it: the server
        // does not start on a damaged file (`PRAGMA quick_check`, about a second per GB).
        db::check_integrity(&mut *pool.get()?, false).map_err(|e| {
            anyhow::anyhow!(
                "{} is damaged ({e}); the server did not start, {}",
                config.data_dir.join(db::DB_FILE).display(),
                db::RESTORE_ADVICE
            )
        })?;
        check_keys(&pool, &config)?;
        let initial_admin_password = bootstrap_admin(&pool)?;
        // Uploads and plans of slide ingests that ended without their job cleaning up, and
        // uploads of requests a crash or a shutdown cut short.
        crate::slides::ingest::sweep_all(&mut *pool.get()?, &config.storage, &config.data_dir, Duration::ZERO);
        let login_throttle = Arc::new(crate::auth::throttle::LoginThrottle::new(
            config.login_per_client_per_minute,
            config.login_per_username_per_minute,
        ));
        let listener =
            TcpListener::bind(&config.bind).map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.bind))?;
        let port = listener.local_addr()?.port();
        let edit_scrubber = Arc::new(
            crate::cases::scrub::Scrubber::new(&[], &config.mrn_patterns)
                .map_err(|e| anyhow::anyhow!("EVIDENTIA_MRN_PATTERNS: {e}"))?,
        );
        crate::audit::scrub_reasons_with(edit_scrubber.clone());
        let sso = match config.sso.clone() {
            Some(s) => Some(Arc::new(crate::auth::sso::Sso::new(s)?)),
            None => None,
        };
        let state = web::Data::new(AppState {
            sso,
            pool: pool.clone(),
            config: config.clone(),
            metrics: Arc::new(Metrics::default()),
            tiles: Arc::new(crate::slides::dzi::TileServer::new(config.tile_cache_bytes)),
            case_lists: Arc::new(crate::cases::ListCache::default()),
            snapshots: Arc::new(crate::studies::lock::SnapshotCache::default()),
            login_throttle: login_throttle.clone(),
            // Password hashing (argon2id) on at most all cores but one: sign-in floods cannot
            // take the core that serves everyone else.
            hashing: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1)),
            )),
            edit_scrubber: edit_scrubber.clone(),
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(web::FormConfig::default().limit(256 * 1024))
                .configure(webmod::configure)
                .wrap(from_fn(webmod::middleware::csrf_protect))
                .wrap(from_fn(webmod::middleware::observe))
                .wrap(from_fn(webmod::middleware::security_headers))
        })
        .shutdown_timeout(10)
        .listen(listener)?
        .run();
        let stop_workers = Arc::new(AtomicBool::new(false));
        let mut workers = worker::spawn(pool.clone(), config.clone(), config.job_workers, stop_workers.clone());
        workers.push(housekeeping(
            pool.clone(),
            (config.storage.clone(), config.data_dir.clone()),
            login_throttle,
            stop_workers.clone(),
        ));
        Ok(Application { port, server, pool, initial_admin_password, stop_workers, workers })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server from elsewhere (tests stop theirs when they end).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until the server stops (SIGTERM/Ctrl-C are handled by actix: in-flight requests
    /// finish), then stops the job workers; a job cut short resumes at the next start.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.stop_workers.store(true, Ordering::Relaxed);
        for w in self.workers {
            let _ = w.join();
        }
        tracing::info!("stopped");
        result
    }
}
