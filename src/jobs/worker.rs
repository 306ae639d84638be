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

/// How long an idle worker waits before it looks for work again: a job, or items to help with
/// (a cheap indexed query).
const IDLE_POLL: Duration = Duration::from_millis(200);
const TICK: Duration = Duration::from_millis(50);

/// A worker name unique across hosts and processes: the host, the process, the thread, and a
/// random part (a process id is reused, and containers all have pid 1).
pub fn worker_name(n: usize) -> String {
    format!("{}-pid{}-w{n}-{}", host(), std::process::id(), &crate::auth::random_token()[..6])
}

/// This machine's name (for worker names and logs), or `host` when it has none.
pub fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.').collect::<String>())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into())
}

/// Runs `work` with a heartbeat beside it every `beat`: of job `job` (when this worker leads it)
/// and of every item `worker` holds.
fn with_heartbeat<T>(pool: &DbPool, beat: Duration, job: Option<i32>, worker: &str, work: impl FnOnce() -> T) -> T {
    let done = Arc::new(AtomicBool::new(false));
    std::thread::scope(|s| {
        let done2 = done.clone();
        let pool2 = pool.clone();
        s.spawn(move || {
            // Wakes often so that it ends promptly with the work; beats every `beat`.
            let mut since = Duration::ZERO;
            while !done2.load(Ordering::Relaxed) {
                std::thread::sleep(TICK);
                since += TICK;
                if since >= beat {
                    since = Duration::ZERO;
                    let beat = pool2.get().map_err(|e| e.to_string()).and_then(|mut c| {
                        if let Some(id) = job {
                            super::heartbeat(&mut c, id).map_err(|e| e.to_string())?;
                        }
                        super::items::heartbeat(&mut c, worker).map_err(|e| e.to_string())
                    });
                    if let Err(e) = beat {
                        tracing::warn!(worker, error = %e, "a heartbeat was not recorded");
                    }
                }
            }
        });
        // A panic in a job (a decoder meeting a hostile file) must not leave the heartbeat
        // thread beating for work nobody does.
        let out = work();
        done.store(true, Ordering::Relaxed);
        out
    })
}

fn beat_every(cfg: &Config) -> Duration {
    (cfg.job_stale_after / 4).max(Duration::from_millis(200))
}

/// Runs one claimed job to its end, heartbeating meanwhile.
pub fn run_job(pool: &DbPool, cfg: &Config, job: Job) {
    let id = job.id;
    let kind = job.kind;
    let worker = job.worker.clone().unwrap_or_default();
    let ctx = JobContext {
        pool: pool.clone(),
        data_dir: cfg.data_dir.clone(),
        storage: cfg.storage.clone(),
        job,
        worker: worker.clone(),
        stale_after: cfg.job_stale_after,
    };
    let outcome = with_heartbeat(pool, beat_every(cfg), Some(id), &worker, || {
        // A panic in a job fails that job.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| kind.handler().run(&ctx))) {
            Ok(Ok(v)) => Outcome::Succeeded(v),
            Ok(Err(e)) if e.is::<Cancelled>() => Outcome::Cancelled,
            Ok(Err(e)) => Outcome::Failed(format!("{e:#}")),
            Err(_) => Outcome::Failed("the job stopped on an internal error (a panic)".into()),
        }
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

/// Helps with the items of job `job_id` that another worker leads, starting with `first`
/// (claimed by `worker`), until none is left to claim. A failure is logged: the item it held
/// goes back to the queue when its heartbeat stops, or the lead sees it failed.
pub fn help_job(pool: &DbPool, cfg: &Config, worker: &str, first: super::items::Claimed) {
    let job = match pool.get().map_err(anyhow::Error::from).and_then(|mut c| Ok(super::get(&mut c, first.job_id)?)) {
        Ok(j) => j,
        Err(e) => {
            tracing::error!(job = first.job_id, error = %e, "could not load the job to help");
            return;
        }
    };
    let (id, kind) = (job.id, job.kind);
    let ctx = JobContext {
        pool: pool.clone(),
        data_dir: cfg.data_dir.clone(),
        storage: cfg.storage.clone(),
        job,
        worker: worker.to_string(),
        stale_after: cfg.job_stale_after,
    };
    let result = with_heartbeat(pool, beat_every(cfg), None, worker, || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| kind.handler().help(&ctx, first)))
    });
    match result {
        Ok(Ok(())) => tracing::info!(job = id, kind = %kind, worker, "helped with a job's items"),
        Ok(Err(e)) => tracing::warn!(job = id, kind = %kind, worker, error = %format!("{e:#}"), "helping failed"),
        Err(_) => tracing::error!(job = id, kind = %kind, worker, "helping stopped on an internal error (a panic)"),
    }
    // An item it still holds (it stopped part-way) goes back to the queue at once; its heartbeat
    // would otherwise keep it "running" while this worker does other work.
    match pool.get().map_err(anyhow::Error::from).and_then(|mut c| Ok(super::items::release(&mut c, id, worker)?)) {
        Ok(0) => {}
        Ok(n) => tracing::warn!(job = id, worker, items = n, "items given back to the queue"),
        Err(e) => tracing::error!(job = id, worker, error = %e, "could not give back the items it held"),
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
    let requeued = super::items::requeue_stale(&mut conn, cfg.job_stale_after)?;
    if requeued > 0 {
        tracing::warn!(requeued, "work items whose worker stopped were requeued");
    }
    if let Some(job) = super::claim_next(&mut conn, name)? {
        drop(conn);
        tracing::info!(job = job.id, kind = %job.kind, attempt = job.attempts, worker = name, "job started");
        run_job(pool, cfg, job);
        return Ok(true);
    }
    // No job waits: help with the items of one that runs elsewhere.
    match super::items::claim(&mut conn, None, name)? {
        Some(item) => {
            drop(conn);
            help_job(pool, cfg, name, item);
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
