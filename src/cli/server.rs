//! Running an installation: the server, job workers, migrations, backup and restore.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use evidentia::config::Config;
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
                println!("  {u:<13} {name:<22} {}", role.unwrap_or("administrator"));
            }
        }
        app.run_until_stopped().await.map_err(|e| Failure::Other(e.to_string()))
    })
}

pub fn migrate(cfg: &Config) -> CliResult {
    startup::open_database(cfg)?;
    println!("database at {} is up to date", cfg.data_dir.join(evidentia::db::DB_FILE).display());
    Ok(())
}

pub fn worker(cfg: Config, threads: usize) -> CliResult {
    let pool = startup::open_database(&cfg)?;
    let stop = Arc::new(AtomicBool::new(false));
    println!("running {threads} job workers on {}; Ctrl-C to stop", cfg.data_dir.display());
    for h in jobs::worker::spawn(pool, cfg, threads, stop) {
        let _ = h.join();
    }
    Ok(())
}

pub fn backup(cfg: &Config, out: &Path) -> CliResult {
    let pool = startup::open_database(cfg)?;
    let n = archive::create(&pool, &cfg.data_dir, out)?;
    println!("backup written to {} ({n} files)", out.display());
    Ok(())
}

/// Restores into `data_dir`, which must be given (a new or empty directory).
pub fn restore(file: &Path, data_dir: Option<&Path>) -> CliResult {
    let data_dir =
        data_dir.ok_or_else(|| Failure::Input("restore needs --data-dir DIR (a new or empty directory)".into()))?;
    let n = archive::restore(file, data_dir).map_err(|e| Failure::Input(format!("{e:#}")))?;
    println!("restored {n} files into {}", data_dir.display());
    Ok(())
}
