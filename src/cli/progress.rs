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
/// ends; its result, as `P`'s output type (a result of another shape is an error).
pub fn run_job<P: jobs::JobParams>(pool: &DbPool, cfg: &Config, id: i32) -> Result<P::Output, Failure> {
    let job = jobs::claim(&mut *pool.get().map_err(Error::from)?, id, "cli")?
        .ok_or_else(|| Failure::Other(format!("job {id} was taken by another worker")))?;
    let (pool2, cfg2) = (pool.clone(), cfg.clone());
    let handle = std::thread::spawn(move || jobs::worker::run_job(&pool2, &cfg2, job));
    loop {
        let j = jobs::get(&mut *pool.get().map_err(Error::from)?, id)?;
        eprint!("\r{} {:<50}", bar(j.percent().max(0) as u64), j.message);
        if j.is_finished() || handle.is_finished() {
            let _ = handle.join();
            let j = jobs::get(&mut *pool.get().map_err(Error::from)?, id)?;
            eprintln!();
            return match j.status {
                jobs::JobStatus::Succeeded => j.output::<P>().map_err(|e| Failure::Other(format!("{e:#}"))),
                s => Err(Failure::Other(format!("job {id} {s}: {}", j.error.unwrap_or_default()))),
            };
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
