//! `evidentia stats`: the statistics contract of docs/statistics.md — one JSON object on stdout,
//! exit 0; bad input exits 2 with a one-line message naming the column and row. `stats batch`
//! runs many analyses in one process, reading each input once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use polars::prelude::DataFrame;
use serde_json::{json, Value};

use evidentia::stats::{analysis, frame};

use super::{CliResult, Failure};

#[derive(Args)]
pub struct StatsArgs {
    #[command(subcommand)]
    command: StatsCmd,
    /// The CSV file (header row; comma-separated); `-` for standard input.
    #[arg(long, global = true)]
    input: Option<PathBuf>,
    /// Confidence level of every interval, a proportion in (0, 1).
    #[arg(long, global = true, default_value_t = 0.95)]
    level: f64,
}

#[derive(Subcommand)]
enum StatsCmd {
    /// Many analyses in one run: FILE is a JSON array of {"id", "input", "analysis", "level"}
    /// (a dossier's reproduce/expected.json is one). Each input CSV is read once; the analyses
    /// run on every core; one JSON object on stdout, {"results": [{"id", "analysis", "result"}
    /// or {"id", "analysis", "error"}]} in FILE's order. Exits 2 when any analysis failed.
    Batch {
        /// The batch file; `-` for standard input.
        file: PathBuf,
        /// The folder the inputs' paths are relative to (default: the current folder).
        #[arg(long)]
        root: Option<PathBuf>,
    },
    #[command(flatten)]
    Analysis(analysis::Analysis),
}

pub fn run(args: StatsArgs) -> CliResult {
    let analysis = match args.command {
        StatsCmd::Batch { file, root } => return batch(&file, root.as_deref()),
        StatsCmd::Analysis(a) => a,
    };
    let input = args.input.ok_or_else(|| Failure::Input("--input FILE.csv is required".into()))?;
    let level = frame::check_level(args.level).map_err(|e| Failure::Input(e.0))?;
    let df = if input.as_os_str() == "-" {
        frame::read_csv_bytes(super::input::read(&input)?)
    } else {
        frame::read_csv(&input)
    }
    .map_err(|e| Failure::Input(e.0))?;
    let outcome = analysis::run(&df, &analysis, level).map_err(|e| Failure::Input(e.0))?;
    println!("{}", serde_json::to_string_pretty(&outcome)?);
    Ok(())
}

/// One entry of a batch file (other keys, as in a dossier's expected.json, are ignored).
#[derive(serde::Deserialize)]
struct Entry {
    #[serde(default)]
    id: Value,
    input: String,
    analysis: analysis::Analysis,
    #[serde(default = "default_level")]
    level: f64,
}

fn default_level() -> f64 {
    0.95
}

fn batch(file: &Path, root: Option<&Path>) -> CliResult {
    let text = super::input::read(file)?;
    let entries: Vec<Entry> = serde_json::from_slice(&text)
        .map_err(|e| Failure::Input(format!("{}: not a batch of analyses: {e}", super::input::name(file))))?;
    let root = root.unwrap_or(Path::new("."));
    // Every input once (polars reads each on all cores).
    let mut frames: HashMap<&str, Result<DataFrame, String>> = HashMap::new();
    for e in &entries {
        frames.entry(e.input.as_str()).or_insert_with(|| frame::read_csv(&root.join(&e.input)).map_err(|err| err.0));
    }
    // The analyses on every core, each result in its entry's place.
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(entries.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let finished: Vec<(usize, Result<Value, String>)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(e) = entries.get(i) else { break };
                        let result = match frames.get(e.input.as_str()) {
                            Some(Ok(df)) => frame::check_level(e.level)
                                .and_then(|level| analysis::run(df, &e.analysis, level))
                                .map(|o| o.to_json())
                                .map_err(|err| err.0),
                            Some(Err(err)) => Err(err.clone()),
                            None => Err(format!("{}: not read", e.input)),
                        };
                        done.push((i, result));
                    }
                    done
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap_or_default()).collect()
    });
    let mut results: Vec<Result<Value, String>> =
        entries.iter().map(|_| Err("the analysis stopped before it finished".to_string())).collect();
    for (i, r) in finished {
        results[i] = r;
    }
    let mut failed = Vec::new();
    let out: Vec<Value> = results
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let e = &entries[i];
            match r {
                Ok(result) => json!({"id": e.id, "analysis": e.analysis.name(), "result": result}),
                Err(error) => {
                    failed.push(format!("#{} ({}): {error}", i + 1, e.analysis.name()));
                    json!({"id": e.id, "analysis": e.analysis.name(), "error": error})
                }
            }
        })
        .collect();
    println!("{}", serde_json::to_string_pretty(&json!({ "results": out }))?);
    match failed.first() {
        None => Ok(()),
        Some(first) => Err(Failure::Input(format!("{} of {} analyses failed; first {first}", failed.len(), out.len()))),
    }
}
