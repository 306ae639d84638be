//! Worker threads: claim a job, run it with a heartbeat beside it, record the outcome.
//! Run inside the server (`--job-workers`) or alone (`evidentia worker`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::kinds::{Cancelled, JobContext};
use super::{Job, Outcome};
use crate::config::Config;
use crate::db::DbPool;

const IDLE_POLL: Duration = Duration::from_millis(500);
const TICK: Duration = Duration::from_millis(50);

/// A unique worker name: host-less, process and thread based.
pub fn worker_name(n: usize) -> String {
    format!("pid{}-w{n}", std::process::id())
}

/// Runs one claimed job to its end, heartbeating every `beat` meanwhile.
pub fn run_job(pool: &DbPool, cfg: &Config, job: Job) {
    let id = job.id;
    let kind = job.kind;
    let beat = (cfg.job_stale_after / 4).max(Duration::from_millis(200));
    let done = Arc::new(AtomicBool::new(false));
    let outcome = std::thread::scope(|s| {
        let done2 = done.clone();
        let pool2 = pool.clone();
        s.spawn(move || {
            // Wakes often so that it ends promptly with the job; beats every `beat`.
            let mut since = Duration::ZERO;
            while !done2.load(Ordering::Relaxed) {
                std::thread::sleep(TICK);
                since += TICK;
                if since >= beat {
                    since = Duration::ZERO;
                    if let Ok(mut c) = pool2.get() {
                        let _ = super::heartbeat(&mut c, id);
                    }
                }
            }
        });
        let ctx = JobContext { pool: pool.clone(), data_dir: cfg.data_dir.clone(), job };
        // A panic in a job (a decoder meeting a hostile file) fails that job; it must not leave
        // the heartbeat thread beating for a job nobody runs.
        let outcome = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| kind.handler().run(&ctx))) {
            Ok(Ok(v)) => Outcome::Succeeded(v),
            Ok(Err(e)) if e.is::<Cancelled>() => Outcome::Cancelled,
            Ok(Err(e)) => Outcome::Failed(format!("{e:#}")),
            Err(_) => Outcome::Failed("the job stopped on an internal error (a panic)".into()),
        };
        done.store(true, Ordering::Relaxed);
        outcome
    });
    match &outcome {
        Outcome::Failed(e) => tracing::warn!(job = id, kind = %kind, error = %e, "job failed"),
        o => tracing::info!(job = id, kind = %kind, outcome = ?std::mem::discriminant(o), "job finished"),
    }
    match pool.get() {
        Ok(mut c) => {
            if let Err(e) = super::finish(&mut c, id, outcome) {
                tracing::error!(job = id, error = %e, "could not record job outcome");
            }
        }
        Err(e) => tracing::error!(job = id, error = %e, "could not record job outcome"),
    }
}

/// One pass: requeue jobs whose worker died, then run the next queued job if any.
/// Returns whether a job ran.
pub fn run_once(pool: &DbPool, cfg: &Config, name: &str) -> anyhow::Result<bool> {
    let mut conn = pool.get()?;
    let requeued = super::requeue_stale(&mut conn, cfg.job_stale_after)?;
    if requeued > 0 {
        tracing::warn!(requeued, "jobs whose worker stopped were requeued");
    }
    let job = super::claim_next(&mut conn, name)?;
    drop(conn);
    match job {
        Some(job) => {
            tracing::info!(job = job.id, kind = %job.kind, attempt = job.attempts, worker = name, "job started");
            run_job(pool, cfg, job);
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Starts `n` worker threads that run until `stop` is set.
pub fn spawn(pool: DbPool, cfg: Config, n: usize, stop: Arc<AtomicBool>) -> Vec<JoinHandle<()>> {
    (0..n)
        .map(|i| {
            let pool = pool.clone();
            let cfg = cfg.clone();
            let stop = stop.clone();
            let name = worker_name(i);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match run_once(&pool, &cfg, &name) {
                        Ok(true) => {}
                        Ok(false) => std::thread::sleep(IDLE_POLL),
                        Err(e) => {
                            tracing::error!(error = %e, worker = %name, "worker error");
                            std::thread::sleep(IDLE_POLL * 4);
                        }
                    }
                }
            })
        })
        .collect()
}
