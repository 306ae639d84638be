//! A study's analyses: the dataset they run on (`dataset`), the parameters of one analysis as the
//! analysis page's query string (`Request`), running it through the statistics engine, the
//! statistical analysis plan (`plan`) and saved, frozen analyses (`saved`).

pub mod dataset;
pub mod plan;
pub mod saved;

use crate::db::Conn;
use crate::error::{Error, Result};
use crate::stats::agreement::Weights;
use crate::stats::analysis::{self, Analysis, Outcome};

pub use dataset::{Dataset, Sources};

/// The analyses a study's page offers, with what each is for.
pub const KINDS: &[(&str, &str)] = &[
    ("kappa", "Cohen's kappa — two raters, categorical (e.g. AI phenotype vs reader consensus)"),
    ("fleiss", "Fleiss' kappa — several raters, categorical"),
    ("diagnostic", "OPA / PPA / NPA, sensitivity, specificity — a test against a reference, at a cut-off"),
    ("paired-agreement", "Unaided vs AI-assisted — two paired reads against a reference"),
    ("icc", "Intraclass correlation — several raters, continuous"),
    ("bland-altman", "Bland–Altman, Lin's CCC, Pearson, Spearman — two continuous measures"),
    ("roc", "ROC curve, AUC (DeLong), Youden cut-off — a score against a reference"),
    ("roc-compare", "DeLong test of two paired AUCs"),
    ("survival", "Kaplan–Meier, log-rank, Cox by group (e.g. survival by AI phenotype)"),
    ("cox", "Cox proportional hazards with numeric covariates"),
    ("table1", "Table 1 — baseline characteristics by group"),
];

/// Every parameter an analysis can take, flat, as the analysis form and its query string carry
/// them (names as the CLI's flags with `_` for `-`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Request {
    pub run: Option<i32>,
    pub campaign: Option<i32>,
    pub campaign2: Option<i32>,
    pub analysis: String,
    pub a: String,
    pub b: String,
    pub weights: String,
    pub raters: String,
    pub test: String,
    pub reference: String,
    pub positive: String,
    pub test_cutoff: String,
    pub reference_cutoff: String,
    pub score: String,
    pub score_a: String,
    pub score_b: String,
    pub time: String,
    pub event: String,
    pub group: String,
    pub reference_group: String,
    pub covariates: String,
    pub continuous: String,
    pub categorical: String,
    pub level: String,
}

fn list(s: &str) -> Vec<String> {
    s.split(',').map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).collect()
}

fn opt(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

fn required(field: &str, s: &str) -> Result<String> {
    opt(s).ok_or_else(|| Error::invalid(field, "choose a column"))
}

fn number(field: &str, s: &str) -> Result<Option<f64>> {
    match opt(s) {
        None => Ok(None),
        Some(t) => crate::stats::frame::parse_number(&t)
            .map(Some)
            .ok_or_else(|| Error::invalid(field, format!("'{t}' is not a number"))),
    }
}

impl Request {
    pub fn sources(&self) -> Sources {
        Sources { run: self.run, campaign: self.campaign, campaign2: self.campaign2 }
    }

    /// The confidence level (default 0.95).
    pub fn level(&self) -> Result<f64> {
        let l = number("level", &self.level)?.unwrap_or(0.95);
        crate::stats::frame::check_level(l).map_err(|e| Error::invalid("level", e.0))
    }

    /// The analysis these parameters describe; a missing or malformed parameter names its field.
    pub fn analysis(&self) -> Result<Analysis> {
        let positive = opt(&self.positive);
        Ok(match self.analysis.as_str() {
            "kappa" => Analysis::Kappa {
                a: required("a", &self.a)?,
                b: required("b", &self.b)?,
                weights: match self.weights.as_str() {
                    "" | "none" => Weights::None,
                    "linear" => Weights::Linear,
                    "quadratic" => Weights::Quadratic,
                    w => return Err(Error::invalid("weights", format!("'{w}': none, linear or quadratic"))),
                },
            },
            "fleiss" => Analysis::Fleiss { raters: list(&self.raters) },
            "icc" => Analysis::Icc { raters: list(&self.raters) },
            "diagnostic" => Analysis::Diagnostic {
                test: required("test", &self.test)?,
                reference: required("reference", &self.reference)?,
                positive,
                test_cutoff: number("test_cutoff", &self.test_cutoff)?,
                reference_cutoff: number("reference_cutoff", &self.reference_cutoff)?,
            },
            "roc" => Analysis::Roc {
                score: required("score", &self.score)?,
                reference: required("reference", &self.reference)?,
                positive,
            },
            "roc-compare" => Analysis::RocCompare {
                score_a: required("score_a", &self.score_a)?,
                score_b: required("score_b", &self.score_b)?,
                reference: required("reference", &self.reference)?,
                positive,
            },
            "survival" => Analysis::Survival {
                time: required("time", &self.time)?,
                event: required("event", &self.event)?,
                group: opt(&self.group),
                reference_group: opt(&self.reference_group),
            },
            "cox" => Analysis::Cox {
                time: required("time", &self.time)?,
                event: required("event", &self.event)?,
                covariates: list(&self.covariates),
            },
            "bland-altman" => Analysis::BlandAltman { a: required("a", &self.a)?, b: required("b", &self.b)? },
            "table1" => Analysis::Table1 {
                group: required("group", &self.group)?,
                continuous: list(&self.continuous),
                categorical: list(&self.categorical),
            },
            "paired-agreement" => Analysis::PairedAgreement {
                reference: required("reference", &self.reference)?,
                a: required("a", &self.a)?,
                b: required("b", &self.b)?,
            },
            other => return Err(Error::invalid("analysis", format!("'{other}' is not an analysis"))),
        })
    }

    /// The canonical query string of a request: its sources, the analysis's own parameters in
    /// the CLI's order, and the level when it is not 0.95 — what links, saved analyses and plan
    /// items store and compare.
    pub fn canonical(sources: &Sources, analysis: &Analysis, level: f64) -> String {
        let mut pairs: Vec<(String, String)> = Vec::new();
        if let Some(r) = sources.run {
            pairs.push(("run".into(), r.to_string()));
        }
        if let Some(c) = sources.campaign {
            pairs.push(("campaign".into(), c.to_string()));
        }
        if let Some(c) = sources.campaign2 {
            pairs.push(("campaign2".into(), c.to_string()));
        }
        pairs.push(("analysis".into(), analysis.name().into()));
        let args = analysis.cli_args();
        for kv in args.chunks(2) {
            pairs.push((kv[0].trim_start_matches("--").replace('-', "_"), kv[1].clone()));
        }
        if (level - 0.95).abs() > 1e-12 {
            pairs.push(("level".into(), level.to_string()));
        }
        serde_urlencoded::to_string(&pairs).unwrap_or_default()
    }

    pub fn parse(query: &str) -> Result<Request> {
        serde_urlencoded::from_str(query).map_err(|e| Error::invalid("query", e.to_string()))
    }
}

/// An analysis run on the current data: its dataset identity and its result.
#[derive(Debug, Clone)]
pub struct Computed {
    pub sources: Sources,
    pub analysis: Analysis,
    pub level: f64,
    pub query: String,
    pub input_sha256: String,
    pub input_rows: usize,
    pub outcome: std::result::Result<Outcome, String>,
}

impl Computed {
    /// The `evidentia stats` command that re-computes it from the exported dataset.
    pub fn command(&self, dataset_file: &str) -> String {
        stats_command(&self.analysis, self.level, dataset_file)
    }
}

/// The `evidentia stats` command that runs `analysis` at `level` on `dataset_file`.
pub fn stats_command(analysis: &Analysis, level: f64, dataset_file: &str) -> String {
    let mut cmd = format!("evidentia stats {} --input {}", analysis.name(), shell_quote(dataset_file));
    // `--flag=value`, so that a value starting with '-' is not taken for a flag.
    for kv in analysis.cli_args().chunks(2) {
        cmd.push_str(&format!(" {}={}", kv[0], shell_quote(&kv[1])));
    }
    if (level - 0.95).abs() > 1e-12 {
        cmd.push_str(&format!(" --level {level}"));
    }
    cmd
}

/// A word for a POSIX shell: as is when it holds only safe characters, else single-quoted.
pub fn shell_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_.,/:=+-@%".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Builds the dataset of `sources` and runs the analysis on it. Bad parameters are field errors;
/// an analysis that cannot be computed on this data (a single category, no events…) is a
/// result whose outcome is the reason.
pub fn compute(conn: &mut Conn, study_id: i32, req: &Request) -> Result<(Computed, Dataset)> {
    let analysis = req.analysis()?;
    let level = req.level()?;
    let sources = req.sources();
    let data = dataset::build(conn, study_id, &sources)?;
    let frame = data.frame()?;
    let outcome = analysis::run(&frame, &analysis, level).map_err(|e| e.0);
    let computed = Computed {
        query: Request::canonical(&sources, &analysis, level),
        input_sha256: data.sha256()?,
        input_rows: data.rows.len(),
        sources,
        analysis,
        level,
        outcome,
    };
    Ok((computed, data))
}

/// The leaves of a result as (path, value) pairs, e.g. `opa.wilson_low` — for the result CSV,
/// the plan's criteria and the comparison of a re-run.
pub fn leaves(value: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, serde_json::Value)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    walk(&if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") }, x, out);
                }
            }
            serde_json::Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    // Named elements (groups, coefficients) are addressed by name.
                    let key = x
                        .get("name")
                        .or_else(|| x.get("group"))
                        .and_then(|n| n.as_str())
                        .map(str::to_string)
                        .unwrap_or_else(|| i.to_string());
                    walk(&format!("{prefix}[{key}]"), x, out);
                }
            }
            other => out.push((prefix.to_string(), other.clone())),
        }
    }
    let mut out = Vec::new();
    walk("", value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_through_their_canonical_query() {
        let req = Request {
            run: Some(3),
            campaign: Some(2),
            analysis: "diagnostic".into(),
            test: "ai_phenotype".into(),
            reference: "phenotype__reference".into(),
            positive: "inflamed".into(),
            a: "ignored".into(),
            ..Default::default()
        };
        let a = req.analysis().unwrap();
        let q = Request::canonical(&req.sources(), &a, 0.95);
        assert_eq!(
            q,
            "run=3&campaign=2&analysis=diagnostic&test=ai_phenotype&reference=phenotype__reference&positive=inflamed"
        );
        let back = Request::parse(&q).unwrap();
        assert_eq!(back.analysis().unwrap(), a);
        assert_eq!(back.sources(), req.sources());
    }

    #[test]
    fn missing_parameters_name_their_field() {
        let req = Request { analysis: "kappa".into(), a: "x".into(), ..Default::default() };
        let e = req.analysis().unwrap_err().to_string();
        assert!(e.contains('b'), "{e}");
        let bad = Request { analysis: "roc".into(), level: "1.5".into(), ..Default::default() };
        assert!(bad.level().is_err());
    }

    #[test]
    fn leaves_address_named_elements() {
        let v = serde_json::json!({"opa": {"estimate": 0.9}, "groups": [{"name": "inflamed", "median": null}]});
        let l = leaves(&v);
        assert!(l.contains(&("opa.estimate".into(), serde_json::json!(0.9))));
        assert!(l.contains(&("groups[inflamed].median".into(), serde_json::Value::Null)));
    }
}
