//! Long work in the terminal: a job run in this process with its progress bar on stderr.

use std::time::Duration;

use evidentia::config::Config;
use evidentia::db::DbPool;
use evidentia::error::Error;
use evidentia::jobs;

use super::Failure;

const WIDTH: usize = 30;

/// `[#########                     ]  30%`.
pub fn bar(percent: u64) -> String {
    let filled = (percent.min(100) as usize * WIDTH) / 100;
    format!("[{}{}] {percent:>3}%", "#".repeat(filled), " ".repeat(WIDTH - filled))
}

/// Claims job `id` (of `P`'s kind) and runs it here, drawing its progress on stderr until it
/// ends; its result, as `P`'s output type (a result of another shape is an error). A job a
/// worker took first (a server's, or another host's) is followed to its end instead.
pub fn run_job<P: jobs::JobParams>(pool: &DbPool, cfg: &Config, id: i32) -> Result<P::Output, Failure> {
    match jobs::claim(&mut *pool.get().map_err(Error::from)?, id, &worker_name())? {
        Some(job) => run_claimed::<P>(pool, cfg, job),
        None => follow::<P>(pool, id, None),
    }
}

/// This command's name as a job's worker.
pub fn worker_name() -> String {
    format!("cli-{}-pid{}", jobs::worker::host(), std::process::id())
}

/// Runs a job this command has claimed, showing its progress, to its end.
pub fn run_claimed<P: jobs::JobParams>(pool: &DbPool, cfg: &Config, job: jobs::Job) -> Result<P::Output, Failure> {
    let id = job.id;
    let (pool2, cfg2) = (pool.clone(), cfg.clone());
    let handle = std::thread::spawn(move || jobs::worker::run_job(&pool2, &cfg2, job));
    follow::<P>(pool, id, Some(handle))
}

/// Draws job `id`'s progress until it ends (or `here`, the thread running it in this process,
/// does); its result.
fn follow<P: jobs::JobParams>(
    pool: &DbPool,
    id: i32,
    here: Option<std::thread::JoinHandle<()>>,
) -> Result<P::Output, Failure> {
    loop {
        let j = jobs::get(&mut *pool.get().map_err(Error::from)?, id)?;
        eprint!("\r{} {:<50}", bar(j.percent().max(0) as u64), j.message);
        if j.is_finished() || here.as_ref().is_some_and(|h| h.is_finished()) {
            if let Some(h) = here {
                let _ = h.join();
            }
            let j = jobs::get(&mut *pool.get().map_err(Error::from)?, id)?;
            eprintln!();
            return match j.status {
                jobs::JobStatus::Succeeded => j.output::<P>().map_err(|e| Failure::Other(format!("{e:#}"))),
                // The work ended but its end could not be written (a full disk, say).
                s if !j.is_finished() => Err(Failure::Other(format!(
                    "job {id} ended but could not record it (it is still {s}; is the disk full?): \
                     the next command that runs such jobs, a server or `evidentia worker` resumes it"
                ))),
                s => Err(Failure::Other(format!("job {id} {s}: {}", j.error.unwrap_or_default()))),
            };
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A job run to its end here: its id and what it produced.
pub type Ran<P> = (i32, Result<<P as jobs::JobParams>::Output, Failure>);

/// Jobs of `P`'s kind in `study` that an earlier command (or a server) left unfinished: those
/// whose worker died — a killed command, or one whose last status write failed on a full disk —
/// are queued again once their heartbeat is `EVIDENTIA_JOB_STALE_SECS` old, then run here to
/// their end, so that a command-line-only installation leaves nothing "running" for ever.
/// Returns what each resumed job produced, with its id.
pub fn resume_interrupted<P: jobs::JobParams>(
    pool: &DbPool,
    cfg: &Config,
    study: evidentia::studies::StudyId,
) -> Result<Vec<Ran<P>>, Failure> {
    let mut conn = pool.get().map_err(Error::from)?;
    jobs::requeue_stale(&mut conn, cfg.job_stale_after)?;
    let queued = jobs::interrupted_in_study(&mut conn, study, P::KIND)?;
    drop(conn);
    Ok(queued
        .into_iter()
        .map(|id| {
            eprintln!("resuming {} job {id}, interrupted earlier", P::KIND);
            (id, run_job::<P>(pool, cfg, id))
        })
        .collect())
}
