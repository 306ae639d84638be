//! Long work in the terminal: a job run in this process with its progress bar on stderr.

use std::time::Duration;

use serde::de::DeserializeOwned;

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

/// Claims job `id` and runs it here, drawing its progress on stderr until it ends; its result.
pub fn run_job(pool: &DbPool, cfg: &Config, id: i32) -> Result<serde_json::Value, Failure> {
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
                jobs::JobStatus::Succeeded => match j.result.as_deref() {
                    Some(r) => serde_json::from_str(r)
                        .map_err(|e| Failure::Other(format!("job {id}: its result is not JSON: {e}"))),
                    None => Ok(serde_json::Value::Null),
                },
                s => Err(Failure::Other(format!("job {id} {s}: {}", j.error.unwrap_or_default()))),
            };
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Field `key` of a job's result, decoded; a result of another shape is an error, not an empty
/// table.
pub fn field<T: DeserializeOwned>(result: &serde_json::Value, key: &str) -> Result<T, Failure> {
    let value = result.get(key).ok_or_else(|| Failure::Other(format!("the job's result has no '{key}'")))?;
    T::deserialize(value).map_err(|e| Failure::Other(format!("the job's result '{key}' is not as expected: {e}")))
}
