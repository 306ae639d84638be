//! Running an installation: the server, job workers, migrations, backup and restore.

use std::path::Path;

use age::secrecy::ExposeSecret;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use evidentia::config::Config;
use evidentia::error::Error;
use evidentia::startup::{self, Application};
use evidentia::{backup as archive, demo, jobs};

use super::{CliResult, Failure};

/// Serves the data dir until stopped; `demo_password` prints the demo users.
pub fn serve(cfg: Config, demo_password: Option<&str>) -> CliResult {
    let bind = cfg.bind.clone();
    let data_dir = cfg.data_dir.clone();
    let sys = actix_web::rt::System::new();
    sys.block_on(async move {
        let app = Application::build(cfg)?;
        let host = bind.rsplit_once(':').map(|(h, _)| h).unwrap_or("127.0.0.1");
        println!("Evidentia is serving {} at http://{host}:{}/", data_dir.display(), app.port());
        if let Some(pw) = &app.initial_admin_password {
            println!("First start: created user 'admin' with password  {pw}  (shown once; change it under My account)");
        }
        if let Some(pw) = demo_password {
            println!("Demo users (password '{pw}'):");
            for (u, name, _, role) in demo::DEMO_USERS {
                println!("  {u:<17} {name:<22} {}", role.unwrap_or("administrator"));
            }
            for (u, name, site) in demo::DEMO_SITE_STAFF {
                println!("  {u:<17} {name:<22} site staff of {site}");
            }
        }
        app.run_until_stopped().await.map_err(|e| Failure::Other(e.to_string()))
    })
}

pub fn migrate(cfg: &Config) -> CliResult {
    startup::open_database(cfg)?;
    println!("database at {} is up to date", cfg.database()?);
    Ok(())
}

pub fn migrate_data(cfg: &Config, to: &str, to_storage: Option<&str>) -> CliResult {
    let source = cfg.database()?;
    if source.is_postgres() {
        return Err(Failure::Input(format!("the installation already uses PostgreSQL ({source})")));
    }
    let target = evidentia::db::DatabaseUrl::parse(Some(to), &cfg.data_dir)?;
    if !target.is_postgres() {
        return Err(Failure::Input(format!("--to {target}: give the PostgreSQL database as postgres://USER@HOST/DB")));
    }
    let storage = match to_storage {
        Some(url) => {
            let s = evidentia::storage::Storage::parse(Some(url), &cfg.data_dir)
                .map_err(|e| Failure::Input(format!("--to-storage: {e}")))?;
            if s.local_root().is_some() {
                return Err(Failure::Input(format!("--to-storage {url}: give the object store as s3://BUCKET/PREFIX")));
            }
            Some(s)
        }
        None => None,
    };
    let from_pool = startup::open_database(cfg)?;
    let to_pool = evidentia::db::open_pool(&target, 2)?;
    let mut to_conn = to_pool.get().map_err(Error::from)?;
    evidentia::db::run_migrations(&mut to_conn)?;
    let mut from_conn = from_pool.get().map_err(Error::from)?;
    // Both targets are checked empty before anything is copied into either.
    evidentia::db::copy::ensure_empty(&mut to_conn)?;
    if let Some(s) = &storage {
        let already = cfg.storage.check_copy_target(s).map_err(|e| Failure::Input(format!("--to-storage: {e}")))?;
        println!("copying the files of {} into {}", cfg.storage.describe(), s.describe());
        if !already.is_empty() {
            println!("  resuming a copy: {} files are there already (each is checked, not sent again)", already.len());
        }
        let files = cfg.storage.copy_all(s, &already, |key, size, sent| {
            println!("  {key} ({size} bytes{})", if sent { "" } else { ", there already" })
        })?;
        println!(
            "copied {} files ({}) and kept {} already there, each read back with the SHA-256 of its original",
            files.files,
            evidentia::slides::human_bytes(files.bytes as i64),
            files.kept
        );
    }
    println!("copying {source} into {target}");
    let report =
        evidentia::db::copy::copy(&mut from_conn, &mut to_conn, |table, n| println!("  {table:<20} {n:>9} rows"))?;
    println!(
        "copied {} rows; {} studies' data hash the same on both; on PostgreSQL {} audit chains ({} events) verify and {} current locks' snapshot hashes are the ones signed",
        report.rows.values().sum::<i64>(),
        report.studies,
        report.chains,
        report.events,
        report.locks
    );
    match &storage {
        Some(s) => println!(
            "set EVIDENTIA_DATABASE_URL to the URL given with --to and EVIDENTIA_STORAGE={} (with the same AWS_* settings), and start the installation (the data dir keeps its keys)",
            s.describe()
        ),
        None => println!("set EVIDENTIA_DATABASE_URL to the URL given with --to and start the installation (the data dir keeps its files and keys)"),
    }
    Ok(())
}

pub fn worker(cfg: Config, threads: usize) -> CliResult {
    startup::warn_if_keys_are_local(&cfg);
    let pool = startup::open_database(&cfg)?;
    startup::check_keys(&pool, &cfg)?;
    let stop = Arc::new(AtomicBool::new(false));
    println!("running {threads} job workers on {}; Ctrl-C to stop", cfg.data_dir.display());
    for h in jobs::worker::spawn(pool, cfg, threads, stop) {
        let _ = h.join();
    }
    Ok(())
}

pub fn backup(cfg: &Config, out: &Path, encrypt_to: &[String]) -> CliResult {
    let recipients = archive::parse_recipients(encrypt_to).map_err(|e| Failure::Input(format!("{e:#}")))?;
    if cfg.storage.local_root() != Some(cfg.data_dir.as_path()) {
        return Err(Failure::Input(format!(
            "the files are in {}, not in the data dir: a backup of the data dir would miss them; back up the \
             object store with its own tools (versioning, replication) and see docs/operations.md",
            cfg.storage.describe()
        )));
    }
    let keys = evidentia::secrets::dir(&cfg.data_dir);
    if !keys.starts_with(&cfg.data_dir) {
        return Err(Failure::Input(format!(
            "the keys are in {} (EVIDENTIA_SECRETS_DIR), not in the data dir: a backup of the data dir would miss them; \
             back that folder up with the secret store's own tools",
            keys.display()
        )));
    }
    let pool = startup::open_database(cfg)?;
    let n = archive::create(&pool, &cfg.data_dir, out, &recipients)?;
    let sealed =
        if recipients.is_empty() { String::new() } else { format!(", encrypted to {}", encrypt_to.join(", ")) };
    println!("backup written to {} ({n} files{sealed})", out.display());
    Ok(())
}

/// Writes a new age identity to `out` (0600, never over an existing file) and prints its
/// recipient.
pub fn backup_key(out: &Path) -> CliResult {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public();
    let mut file = evidentia::tmp::create_private_file(out).map_err(|e| {
        Failure::Input(format!("cannot create {} (an existing file is never replaced): {e}", out.display()))
    })?;
    let text = format!("# evidentia backup key; recipient: {recipient}\n{}\n", identity.to_string().expose_secret());
    std::io::Write::write_all(&mut file, text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(anyhow::Error::from)?;
    println!("{recipient}");
    eprintln!("identity written to {} (keep it apart from the backups: it decrypts them)", out.display());
    Ok(())
}

/// Restores into `data_dir`, which must be given (a new or empty directory).
pub fn restore(file: &Path, identity: Option<&Path>, data_dir: Option<&Path>) -> CliResult {
    let data_dir =
        data_dir.ok_or_else(|| Failure::Input("restore needs --data-dir DIR (a new or empty directory)".into()))?;
    let identities = match identity {
        Some(path) => archive::read_identities(path).map_err(|e| Failure::Input(format!("{e:#}")))?,
        None => Vec::new(),
    };
    let n = archive::restore(file, data_dir, &identities).map_err(|e| Failure::Input(format!("{e:#}")))?;
    println!("restored {n} files into {}", data_dir.display());
    Ok(())
}
