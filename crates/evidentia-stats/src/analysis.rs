//! One entry point for every analysis: its parameters (`Analysis`, stored with a saved analysis
//! and given by the CLI's flags) and its typed result (`Outcome`, serialised with the JSON keys of
//! the `evidentia stats` contract and its extensions, docs/statistics.md).

use polars::prelude::DataFrame;

use super::accuracy::{self, Positive};
use super::agreement::{self, Weights};
use super::frame::StatsResult;
use super::{continuous, survival, table1};

/// An analysis and its parameters. One description serves everywhere: stored with a saved
/// analysis (serde), and the `evidentia stats` subcommands with their flags and help (clap,
/// with the `cli` feature).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Subcommand))]
#[serde(tag = "analysis", rename_all = "kebab-case")]
pub enum Analysis {
    /// Cohen's kappa between two raters.
    Kappa {
        #[cfg_attr(feature = "cli", arg(long))]
        a: String,
        #[cfg_attr(feature = "cli", arg(long))]
        b: String,
        #[serde(default)]
        #[cfg_attr(feature = "cli", arg(long, value_enum, default_value = "none"))]
        weights: Weights,
    },
    /// Fleiss' kappa for several raters (one column per rater).
    Fleiss {
        /// Rater columns, separated by commas.
        #[cfg_attr(feature = "cli", arg(long, required = true, value_delimiter = ',', value_parser = column))]
        raters: Vec<String>,
    },
    /// The six Shrout & Fleiss intraclass correlations (one column per rater).
    Icc {
        /// Rater columns, separated by commas.
        #[cfg_attr(feature = "cli", arg(long, required = true, value_delimiter = ',', value_parser = column))]
        raters: Vec<String>,
    },
    /// Sensitivity, specificity, PPV, NPV, accuracy (and PPA/NPA/OPA) of a test against a reference.
    Diagnostic {
        #[cfg_attr(feature = "cli", arg(long))]
        test: String,
        #[cfg_attr(feature = "cli", arg(long))]
        reference: String,
        #[serde(default)]
        #[cfg_attr(feature = "cli", arg(long))]
        positive: Option<String>,
        /// The test is numeric and value >= X is positive.
        #[serde(default)]
        #[cfg_attr(feature = "cli", arg(long))]
        test_cutoff: Option<f64>,
        /// The reference is numeric and value >= X is positive.
        #[serde(default)]
        #[cfg_attr(feature = "cli", arg(long))]
        reference_cutoff: Option<f64>,
    },
    /// ROC curve: AUC with DeLong SE and CI, Youden cut-off.
    Roc {
        #[cfg_attr(feature = "cli", arg(long))]
        score: String,
        #[cfg_attr(feature = "cli", arg(long))]
        reference: String,
        #[serde(default)]
        #[cfg_attr(feature = "cli", arg(long))]
        positive: Option<String>,
    },
    /// DeLong's test of two paired AUCs.
    RocCompare {
        #[cfg_attr(feature = "cli", arg(long))]
        score_a: String,
        #[cfg_attr(feature = "cli", arg(long))]
        score_b: String,
        #[cfg_attr(feature = "cli", arg(long))]
        reference: String,
        #[serde(default)]
        #[cfg_attr(feature = "cli", arg(long))]
        positive: Option<String>,
    },
    /// Kaplan-Meier medians; with --group the log-rank test and Cox hazard ratios.
    Survival {
        #[cfg_attr(feature = "cli", arg(long))]
        time: String,
        #[cfg_attr(feature = "cli", arg(long))]
        event: String,
        #[serde(default)]
        #[cfg_attr(feature = "cli", arg(long))]
        group: Option<String>,
        #[serde(default)]
        #[cfg_attr(feature = "cli", arg(long))]
        reference_group: Option<String>,
    },
    /// Cox proportional hazards with numeric covariates (Efron ties).
    Cox {
        #[cfg_attr(feature = "cli", arg(long))]
        time: String,
        #[cfg_attr(feature = "cli", arg(long))]
        event: String,
        /// Numeric covariate columns, separated by commas.
        #[cfg_attr(feature = "cli", arg(long, required = true, value_delimiter = ',', value_parser = column))]
        covariates: Vec<String>,
    },
    /// Bland-Altman bias and limits, Pearson, Spearman, Lin's CCC.
    BlandAltman {
        #[cfg_attr(feature = "cli", arg(long))]
        a: String,
        #[cfg_attr(feature = "cli", arg(long))]
        b: String,
    },
    /// Baseline characteristics ("Table 1") by group.
    Table1 {
        #[cfg_attr(feature = "cli", arg(long))]
        group: String,
        /// Continuous variables, separated by commas.
        #[serde(default)]
        #[cfg_attr(feature = "cli", arg(long, value_delimiter = ',', value_parser = column))]
        continuous: Vec<String>,
        /// Categorical variables, separated by commas.
        #[serde(default)]
        #[cfg_attr(feature = "cli", arg(long, value_delimiter = ',', value_parser = column))]
        categorical: Vec<String>,
    },
    /// Agreement of two paired reads (e.g. unaided and AI-assisted) with a reference.
    PairedAgreement {
        #[cfg_attr(feature = "cli", arg(long))]
        reference: String,
        #[cfg_attr(feature = "cli", arg(long))]
        a: String,
        #[cfg_attr(feature = "cli", arg(long))]
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

    /// The flags that give this analysis on the command line (after `--input FILE`).
    pub fn cli_args(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        let mut flag = |f: &str, value: &str| {
            v.push(format!("--{f}"));
            v.push(value.to_string());
        };
        match self {
            Analysis::Kappa { a, b, weights } => {
                flag("a", a);
                flag("b", b);
                if *weights != Weights::None {
                    flag("weights", weights.as_str());
                }
            }
            Analysis::Fleiss { raters } | Analysis::Icc { raters } => flag("raters", &raters.join(",")),
            Analysis::Diagnostic { test, reference, positive, test_cutoff, reference_cutoff } => {
                flag("test", test);
                flag("reference", reference);
                if let Some(p) = positive {
                    flag("positive", p);
                }
                if let Some(c) = test_cutoff {
                    flag("test-cutoff", &c.to_string());
                }
                if let Some(c) = reference_cutoff {
                    flag("reference-cutoff", &c.to_string());
                }
            }
            Analysis::Roc { score, reference, positive } => {
                flag("score", score);
                flag("reference", reference);
                if let Some(p) = positive {
                    flag("positive", p);
                }
            }
            Analysis::RocCompare { score_a, score_b, reference, positive } => {
                flag("score-a", score_a);
                flag("score-b", score_b);
                flag("reference", reference);
                if let Some(p) = positive {
                    flag("positive", p);
                }
            }
            Analysis::Survival { time, event, group, reference_group } => {
                flag("time", time);
                flag("event", event);
                if let Some(g) = group {
                    flag("group", g);
                }
                if let Some(r) = reference_group {
                    flag("reference-group", r);
                }
            }
            Analysis::Cox { time, event, covariates } => {
                flag("time", time);
                flag("event", event);
                flag("covariates", &covariates.join(","));
            }
            Analysis::BlandAltman { a, b } => {
                flag("a", a);
                flag("b", b);
            }
            Analysis::Table1 { group, continuous, categorical } => {
                flag("group", group);
                if !continuous.is_empty() {
                    flag("continuous", &continuous.join(","));
                }
                if !categorical.is_empty() {
                    flag("categorical", &categorical.join(","));
                }
            }
            Analysis::PairedAgreement { reference, a, b } => {
                flag("reference", reference);
                flag("a", a);
                flag("b", b);
            }
        }
        v
    }
}

/// Runs an analysis on a frame of text columns at a confidence level.
pub fn run(df: &DataFrame, analysis: &Analysis, level: f64) -> StatsResult<Outcome> {
    Ok(match analysis {
        Analysis::Kappa { a, b, weights } => Outcome::Kappa(agreement::kappa(df, a, b, *weights, level)?),
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
