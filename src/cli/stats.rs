//! `evidentia stats`: the statistics contract of docs/statistics.md — one JSON object on stdout,
//! exit 0; bad input exits 2 with a one-line message naming the column and row.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use evidentia::stats::{analysis, frame};

use super::{CliResult, Failure};

#[derive(Args)]
pub struct StatsArgs {
    #[command(subcommand)]
    analysis: StatsCmd,
    /// The CSV file (header row; comma-separated); `-` for standard input.
    #[arg(long, global = true)]
    input: Option<PathBuf>,
    /// Confidence level of every interval, a proportion in (0, 1).
    #[arg(long, global = true, default_value_t = 0.95)]
    level: f64,
}

/// Column names separated by commas.
fn comma_list(s: &str) -> Vec<String> {
    s.split(',').map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).collect()
}

#[derive(Subcommand)]
pub enum StatsCmd {
    /// Cohen's kappa between two raters.
    Kappa {
        #[arg(long)]
        a: String,
        #[arg(long)]
        b: String,
        #[arg(long, value_enum, default_value = "none")]
        weights: WeightsArg,
    },
    /// Fleiss' kappa for several raters (one column per rater).
    Fleiss {
        /// Rater columns, separated by commas.
        #[arg(long)]
        raters: String,
    },
    /// The six Shrout & Fleiss intraclass correlations (one column per rater).
    Icc {
        /// Rater columns, separated by commas.
        #[arg(long)]
        raters: String,
    },
    /// Sensitivity, specificity, PPV, NPV, accuracy (and PPA/NPA/OPA) of a test against a reference.
    Diagnostic {
        #[arg(long)]
        test: String,
        #[arg(long)]
        reference: String,
        #[arg(long)]
        positive: Option<String>,
        /// The test is numeric and value >= X is positive.
        #[arg(long)]
        test_cutoff: Option<f64>,
        /// The reference is numeric and value >= X is positive.
        #[arg(long)]
        reference_cutoff: Option<f64>,
    },
    /// ROC curve: AUC with DeLong SE and CI, Youden cut-off.
    Roc {
        #[arg(long)]
        score: String,
        #[arg(long)]
        reference: String,
        #[arg(long)]
        positive: Option<String>,
    },
    /// DeLong's test of two paired AUCs.
    RocCompare {
        #[arg(long)]
        score_a: String,
        #[arg(long)]
        score_b: String,
        #[arg(long)]
        reference: String,
        #[arg(long)]
        positive: Option<String>,
    },
    /// Kaplan-Meier medians; with --group the log-rank test and Cox hazard ratios.
    Survival {
        #[arg(long)]
        time: String,
        #[arg(long)]
        event: String,
        #[arg(long)]
        group: Option<String>,
        #[arg(long)]
        reference_group: Option<String>,
    },
    /// Cox proportional hazards with numeric covariates (Efron ties).
    Cox {
        #[arg(long)]
        time: String,
        #[arg(long)]
        event: String,
        /// Numeric covariate columns, separated by commas.
        #[arg(long)]
        covariates: String,
    },
    /// Bland-Altman bias and limits, Pearson, Spearman, Lin's CCC.
    BlandAltman {
        #[arg(long)]
        a: String,
        #[arg(long)]
        b: String,
    },
    /// Baseline characteristics ("Table 1") by group.
    Table1 {
        #[arg(long)]
        group: String,
        /// Continuous variables, separated by commas.
        #[arg(long)]
        continuous: Option<String>,
        /// Categorical variables, separated by commas.
        #[arg(long)]
        categorical: Option<String>,
    },
    /// Agreement of two paired reads (e.g. unaided and AI-assisted) with a reference.
    PairedAgreement {
        #[arg(long)]
        reference: String,
        #[arg(long)]
        a: String,
        #[arg(long)]
        b: String,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum WeightsArg {
    None,
    Linear,
    Quadratic,
}

impl From<StatsCmd> for evidentia::stats::analysis::Analysis {
    fn from(cmd: StatsCmd) -> Self {
        use evidentia::stats::agreement::Weights;
        use evidentia::stats::analysis::Analysis as A;
        match cmd {
            StatsCmd::Kappa { a, b, weights } => A::Kappa {
                a,
                b,
                weights: match weights {
                    WeightsArg::None => Weights::None,
                    WeightsArg::Linear => Weights::Linear,
                    WeightsArg::Quadratic => Weights::Quadratic,
                },
            },
            StatsCmd::Fleiss { raters } => A::Fleiss { raters: comma_list(&raters) },
            StatsCmd::Icc { raters } => A::Icc { raters: comma_list(&raters) },
            StatsCmd::Diagnostic { test, reference, positive, test_cutoff, reference_cutoff } => {
                A::Diagnostic { test, reference, positive, test_cutoff, reference_cutoff }
            }
            StatsCmd::Roc { score, reference, positive } => A::Roc { score, reference, positive },
            StatsCmd::RocCompare { score_a, score_b, reference, positive } => {
                A::RocCompare { score_a, score_b, reference, positive }
            }
            StatsCmd::Survival { time, event, group, reference_group } => {
                A::Survival { time, event, group, reference_group }
            }
            StatsCmd::Cox { time, event, covariates } => A::Cox { time, event, covariates: comma_list(&covariates) },
            StatsCmd::BlandAltman { a, b } => A::BlandAltman { a, b },
            StatsCmd::Table1 { group, continuous, categorical } => A::Table1 {
                group,
                continuous: continuous.as_deref().map(comma_list).unwrap_or_default(),
                categorical: categorical.as_deref().map(comma_list).unwrap_or_default(),
            },
            StatsCmd::PairedAgreement { reference, a, b } => A::PairedAgreement { reference, a, b },
        }
    }
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
    let outcome = analysis::run(&df, &args.analysis.into(), level).map_err(|e| Failure::Input(e.0))?;
    println!("{}", serde_json::to_string_pretty(&outcome)?);
    Ok(())
}
