//! One entry point for every analysis: its parameters (`Analysis`, stored with a saved analysis
//! and given by the CLI's flags) and its typed result (`Outcome`, serialised with the JSON keys of
//! the `evidentia stats` contract and its extensions, docs/statistics.md).

use polars::prelude::DataFrame;

use super::accuracy::{self, Positive};
use super::agreement::{self, Weights};
use super::frame::StatsResult;
use super::{continuous, survival, table1};

/// An analysis and its parameters: the one description of every analysis. From it come the
/// record stored with a saved analysis (serde), the `evidentia stats` subcommands with their
/// flags and help, and — through [`crate::describe`] — the web form (each field's label is its
/// help, its kind its value name: `COLUMN`, `COLUMNS`, a choice, or text), the parsing of a
/// form or query string, and the command line that re-computes it (`cli_args`), all with the
/// `cli` feature.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Subcommand))]
#[serde(tag = "analysis", rename_all = "kebab-case")]
pub enum Analysis {
    /// Cohen's kappa — two raters, categorical (e.g. AI phenotype vs reader consensus)
    Kappa {
        /// Rater A (rows)
        #[cfg_attr(feature = "cli", arg(long, value_name = "COLUMN"))]
        a: String,
        /// Rater B (columns)
        #[cfg_attr(feature = "cli", arg(long, value_name = "COLUMN"))]
        b: String,
        /// Weights
        #[serde(default)]
        #[cfg_attr(feature = "cli", arg(long, value_enum, default_value = "none"))]
        weights: Weights,
        /// Category order, e.g. an ordinal scale's (default: sorted; in the app, the schema's)
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        #[cfg_attr(feature = "cli", arg(long, value_name = "CATEGORIES", value_delimiter = ','))]
        categories: Vec<String>,
    },
    /// Fleiss' kappa — several raters, categorical
    Fleiss {
        /// Raters (one column each)
        #[cfg_attr(feature = "cli", arg(long, required = true, value_name = "COLUMNS", value_delimiter = ',', value_parser = column))]
        raters: Vec<String>,
    },
    /// Intraclass correlation — several raters, continuous (the six of Shrout & Fleiss)
    Icc {
        /// Raters (one column each)
        #[cfg_attr(feature = "cli", arg(long, required = true, value_name = "COLUMNS", value_delimiter = ',', value_parser = column))]
        raters: Vec<String>,
    },
    /// OPA / PPA / NPA, sensitivity, specificity — a test against a reference, at a cut-off
    Diagnostic {
        /// Test (e.g. AI)
        #[cfg_attr(feature = "cli", arg(long, value_name = "COLUMN"))]
        test: String,
        /// Reference
        #[cfg_attr(feature = "cli", arg(long, value_name = "COLUMN"))]
        reference: String,
        /// Positive value (default 1)
        #[serde(default)]
        #[cfg_attr(feature = "cli", arg(long))]
        positive: Option<String>,
        /// Test cut-off: numeric, value ≥ X is positive
        #[serde(default)]
        #[cfg_attr(feature = "cli", arg(long))]
        test_cutoff: Option<f64>,
        /// Reference cut-off: value ≥ X is positive
        #[serde(default)]
        #[cfg_attr(feature = "cli", arg(long))]
        reference_cutoff: Option<f64>,
    },
    /// ROC curve, AUC (DeLong), Youden cut-off — a score against a reference
    Roc {
        /// Score
        #[cfg_attr(feature = "cli", arg(long, value_name = "COLUMN"))]
        score: String,
        /// Reference
        #[cfg_attr(feature = "cli", arg(long, value_name = "COLUMN"))]
        reference: String,
        /// Positive reference value (default 1)
        #[serde(default)]
        #[cfg_attr(feature = "cli", arg(long))]
        positive: Option<String>,
    },
    /// DeLong test of two paired AUCs
    RocCompare {
        /// Score A
        #[cfg_attr(feature = "cli", arg(long, value_name = "COLUMN"))]
        score_a: String,
        /// Score B
        #[cfg_attr(feature = "cli", arg(long, value_name = "COLUMN"))]
        score_b: String,
        /// Reference
        #[cfg_attr(feature = "cli", arg(long, value_name = "COLUMN"))]
        reference: String,
        /// Positive reference value (default 1)
        #[serde(default)]
        #[cfg_attr(feature = "cli", arg(long))]
        positive: Option<String>,
    },
    /// Kaplan–Meier, log-rank, Cox by group (e.g. survival by AI phenotype)
    Survival {
        /// Time
        #[cfg_attr(feature = "cli", arg(long, value_name = "COLUMN"))]
        time: String,
        /// Event (1/0, yes = 1)
        #[cfg_attr(feature = "cli", arg(long, value_name = "COLUMN"))]
        event: String,
        /// Group (optional)
        #[serde(default)]
        #[cfg_attr(feature = "cli", arg(long, value_name = "COLUMN"))]
        group: Option<String>,
        /// Reference group (default: first)
        #[serde(default)]
        #[cfg_attr(feature = "cli", arg(long))]
        reference_group: Option<String>,
    },
    /// Cox proportional hazards with numeric covariates (Efron ties)
    Cox {
        /// Time
        #[cfg_attr(feature = "cli", arg(long, value_name = "COLUMN"))]
        time: String,
        /// Event
        #[cfg_attr(feature = "cli", arg(long, value_name = "COLUMN"))]
        event: String,
        /// Numeric covariates
        #[cfg_attr(feature = "cli", arg(long, required = true, value_name = "COLUMNS", value_delimiter = ',', value_parser = column))]
        covariates: Vec<String>,
    },
    /// Bland–Altman, Lin's CCC, Pearson, Spearman — two continuous measures
    BlandAltman {
        /// Measure A
        #[cfg_attr(feature = "cli", arg(long, value_name = "COLUMN"))]
        a: String,
        /// Measure B
        #[cfg_attr(feature = "cli", arg(long, value_name = "COLUMN"))]
        b: String,
    },
    /// Table 1 — baseline characteristics by group
    Table1 {
        /// Group
        #[cfg_attr(feature = "cli", arg(long, value_name = "COLUMN"))]
        group: String,
        /// Continuous variables
        #[serde(default)]
        #[cfg_attr(feature = "cli", arg(long, value_name = "COLUMNS", value_delimiter = ',', value_parser = column))]
        continuous: Vec<String>,
        /// Categorical variables
        #[serde(default)]
        #[cfg_attr(feature = "cli", arg(long, value_name = "COLUMNS", value_delimiter = ',', value_parser = column))]
        categorical: Vec<String>,
    },
    /// Unaided vs AI-assisted — two paired reads against a reference
    PairedAgreement {
        /// Reference
        #[cfg_attr(feature = "cli", arg(long, value_name = "COLUMN"))]
        reference: String,
        /// Read A (e.g. unaided)
        #[cfg_attr(feature = "cli", arg(long, value_name = "COLUMN"))]
        a: String,
        /// Read B (e.g. AI-assisted)
        #[cfg_attr(feature = "cli", arg(long, value_name = "COLUMN"))]
        b: String,
    },
}

/// One column name of a comma-separated list, blanks around it ignored.
#[cfg(feature = "cli")]
fn column(s: &str) -> Result<String, String> {
    let name = s.trim();
    if name.is_empty() {
        Err("an empty column name (two commas in a row, or one at the end?)".into())
    } else {
        Ok(name.to_string())
    }
}

/// The result of an analysis; serialises as the result object itself (the CLI's JSON). One is
/// made per request, so the size of the largest variant does not matter.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
#[allow(clippy::large_enum_variant)]
pub enum Outcome {
    Kappa(agreement::KappaResult),
    Fleiss(agreement::Fleiss),
    Icc(continuous::Icc),
    Diagnostic(accuracy::Diagnostic),
    Roc(accuracy::Roc),
    RocCompare(accuracy::RocCompare),
    Survival(survival::Survival),
    Cox(survival::Cox),
    BlandAltman(continuous::BlandAltman),
    Table1(table1::Table1),
    PairedAgreement(agreement::PairedAgreement),
}

fn positive_value(p: &Option<String>) -> Positive {
    Positive::Value(p.clone().unwrap_or_else(|| "1".into()))
}

fn positive_rule(p: &Option<String>, cutoff: Option<f64>) -> Positive {
    cutoff.map(Positive::AtLeast).unwrap_or_else(|| positive_value(p))
}

impl Analysis {
    /// The contract's name of the analysis (`evidentia stats <name>`).
    pub fn name(&self) -> &'static str {
        match self {
            Analysis::Kappa { .. } => "kappa",
            Analysis::Fleiss { .. } => "fleiss",
            Analysis::Icc { .. } => "icc",
            Analysis::Diagnostic { .. } => "diagnostic",
            Analysis::Roc { .. } => "roc",
            Analysis::RocCompare { .. } => "roc-compare",
            Analysis::Survival { .. } => "survival",
            Analysis::Cox { .. } => "cox",
            Analysis::BlandAltman { .. } => "bland-altman",
            Analysis::Table1 { .. } => "table1",
            Analysis::PairedAgreement { .. } => "paired-agreement",
        }
    }
}

/// Runs an analysis on a frame of text columns at a confidence level.
pub fn run(df: &DataFrame, analysis: &Analysis, level: f64) -> StatsResult<Outcome> {
    Ok(match analysis {
        Analysis::Kappa { a, b, weights, categories } => {
            Outcome::Kappa(agreement::kappa(df, a, b, *weights, categories, level)?)
        }
        Analysis::Fleiss { raters } => Outcome::Fleiss(agreement::fleiss(df, raters, level)?),
        Analysis::Icc { raters } => Outcome::Icc(continuous::icc(df, raters, level)?),
        Analysis::Diagnostic { test, reference, positive, test_cutoff, reference_cutoff } => {
            Outcome::Diagnostic(accuracy::diagnostic(
                df,
                test,
                reference,
                &positive_rule(positive, *test_cutoff),
                &positive_rule(positive, *reference_cutoff),
                level,
            )?)
        }
        Analysis::Roc { score, reference, positive } => {
            Outcome::Roc(accuracy::roc(df, score, reference, &positive_value(positive), level)?)
        }
        Analysis::RocCompare { score_a, score_b, reference, positive } => Outcome::RocCompare(accuracy::roc_compare(
            df,
            score_a,
            score_b,
            reference,
            &positive_value(positive),
            level,
        )?),
        Analysis::Survival { time, event, group, reference_group } => {
            Outcome::Survival(survival::survival(df, time, event, group.as_deref(), reference_group.as_deref(), level)?)
        }
        Analysis::Cox { time, event, covariates } => Outcome::Cox(survival::cox(df, time, event, covariates, level)?),
        Analysis::BlandAltman { a, b } => Outcome::BlandAltman(continuous::bland_altman(df, a, b, level)?),
        Analysis::Table1 { group, continuous, categorical } => {
            Outcome::Table1(table1::table1(df, group, continuous, categorical)?)
        }
        Analysis::PairedAgreement { reference, a, b } => {
            Outcome::PairedAgreement(agreement::paired_agreement(df, reference, a, b, level)?)
        }
    })
}

impl Outcome {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}
