//! `evidentia stats`: the statistics contract of docs/statistics.md — one JSON object on stdout,
//! exit 0; bad input exits 2 with a one-line message naming the column and row.

use std::path::PathBuf;

use clap::Args;

use evidentia::stats::{analysis, frame};

use super::{CliResult, Failure};

#[derive(Args)]
pub struct StatsArgs {
    #[command(subcommand)]
    analysis: analysis::Analysis,
    /// The CSV file (header row; comma-separated); `-` for standard input.
    #[arg(long, global = true)]
    input: Option<PathBuf>,
    /// Confidence level of every interval, a proportion in (0, 1).
    #[arg(long, global = true, default_value_t = 0.95)]
    level: f64,
}

pub fn run(args: StatsArgs) -> CliResult {
    let input = args.input.ok_or_else(|| Failure::Input("--input FILE.csv is required".into()))?;
    let level = frame::check_level(args.level).map_err(|e| Failure::Input(e.0))?;
    let df = if input.as_os_str() == "-" {
        frame::read_csv_bytes(super::input::read(&input)?)
    } else {
        frame::read_csv(&input)
    }
    .map_err(|e| Failure::Input(e.0))?;
    let outcome = analysis::run(&df, &args.analysis, level).map_err(|e| Failure::Input(e.0))?;
    println!("{}", serde_json::to_string_pretty(&outcome)?);
    Ok(())
}
