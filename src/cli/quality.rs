//! `evidentia quality`: a study's data quality rules — list them, add a custom rule, run them,
//! export the findings and the queries.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;

use evidentia::auth::permissions::Permission;
use evidentia::db::paging::PageRequest;
use evidentia::quality::queries::{self, QueryFilter};
use evidentia::quality::{self, FindingFilter, NewRule};

use super::{input, study, CliResult, Ctx};

#[derive(Subcommand)]
pub enum QualityCmd {
    /// List the built-in and custom rules with their open, excluded and resolved findings.
    Rules {
        #[arg(long)]
        study: String,
    },
    /// Add a custom rule: REDCap logic that holds where the data is wrong (e.g.
    /// "[os_months] < [pfs_months]"). It runs at once.
    AddRule {
        #[arg(long)]
        study: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        logic: String,
        /// error (blocks the lock while open) or warning.
        #[arg(long, default_value = "error")]
        severity: String,
    },
    /// Retire a custom rule, with a reason; its findings resolve.
    RetireRule {
        #[arg(long)]
        study: String,
        /// The rule's code (R1, R2, ...).
        rule: String,
        #[arg(long)]
        reason: String,
    },
    /// Run every rule on the study's data now.
    Run {
        #[arg(long)]
        study: String,
    },
    /// Export the queries as CSV (every status unless --status: open, answered, closed or
    /// unresolved).
    Queries {
        #[arg(long)]
        study: String,
        #[arg(long, default_value = "")]
        status: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Export the findings as CSV (every status unless --status).
    Findings {
        #[arg(long)]
        study: String,
        /// open, resolved or excluded.
        #[arg(long, default_value = "")]
        status: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn run(ctx: &Ctx, cmd: QualityCmd) -> CliResult {
    let (mut conn, actor) = ctx.open()?;
    match cmd {
        QualityCmd::Rules { study: code } => {
            let access = study(&mut conn, &actor, &code)?;
            access.require(Permission::ViewCases)?;
            println!("{:<8} {:<8} {:>6} {:>9} {:>9}  checks", "rule", "severity", "open", "excluded", "resolved");
            for r in quality::rules(&mut conn, access.study.id, &access.sites)? {
                let what = if r.logic.is_empty() { r.name.clone() } else { format!("{}: {}", r.name, r.logic) };
                let state = match (&r.retired, &r.problem) {
                    (Some(why), _) => format!(" (retired: {why})"),
                    (None, Some(p)) => format!(" (finds nothing: {p})"),
                    _ => String::new(),
                };
                println!(
                    "{:<8} {:<8} {:>6} {:>9} {:>9}  {what}{state}",
                    r.code, r.severity, r.open, r.excluded, r.resolved
                );
            }
            Ok(())
        }
        QualityCmd::AddRule { study: code, name, logic, severity } => {
            let access = study(&mut conn, &actor, &code)?;
            let rule =
                quality::create_rule(&mut conn, &actor, &access, &NewRule { name, logic, severity }, &deid(ctx)?)?;
            println!("rule {} added and run", rule.code);
            let (open, errors) = quality::open_counts(&mut conn, access.study.id)?;
            println!("{open} findings open ({errors} errors)");
            Ok(())
        }
        QualityCmd::RetireRule { study: code, rule, reason } => {
            let access = study(&mut conn, &actor, &code)?;
            quality::retire_rule(&mut conn, &actor, &access, &rule, &reason, &deid(ctx)?)?;
            println!("rule {rule} retired");
            Ok(())
        }
        QualityCmd::Run { study: code } => {
            let access = study(&mut conn, &actor, &code)?;
            let summary = quality::run(&mut conn, &actor, &access)?;
            println!("{}", summary.sentence());
            Ok(())
        }
        QualityCmd::Findings { study: code, status, out } => {
            let access = study(&mut conn, &actor, &code)?;
            access.require(Permission::ViewCases)?;
            let filter = FindingFilter { status, ..Default::default() };
            let page = quality::findings(&mut conn, access.study.id, &access.sites, &filter, PageRequest::all())?;
            write(out, &page.items, "findings")
        }
        QualityCmd::Queries { study: code, status, out } => {
            let access = study(&mut conn, &actor, &code)?;
            access.require(Permission::ViewCases)?;
            let filter = QueryFilter { status, ..Default::default() };
            let page = queries::list(&mut conn, access.study.id, &access.sites, &filter, PageRequest::all())?;
            write(out, &page.items, "queries")
        }
    }
}

/// Writes `items` as CSV to `out` (standard output when absent).
fn write<T: evidentia::export::CsvRecord>(out: Option<PathBuf>, items: &[T], what: &str) -> CliResult {
    let sink: Box<dyn Write> = match &out {
        Some(p) => Box::new(input::create(p)?),
        None => Box::new(std::io::stdout()),
    };
    evidentia::export::write_csv(sink, items)?;
    if let Some(p) = out {
        eprintln!("wrote {} {what} to {}", items.len(), p.display());
    }
    Ok(())
}

/// The scrubber of typed free text (rule names, reasons), with the installation's record-number
/// patterns.
fn deid(ctx: &Ctx) -> Result<evidentia::cases::deid::EditDeid, super::Failure> {
    let scrubber = evidentia::cases::scrub::Scrubber::new(&[], &ctx.cfg.mrn_patterns).map_err(super::Failure::Input)?;
    Ok(evidentia::cases::deid::EditDeid::new(std::sync::Arc::new(scrubber)))
}
