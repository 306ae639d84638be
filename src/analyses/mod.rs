//! A study's analyses: the dataset they run on (`dataset`), the parameters of one analysis as the
//! analysis page's query string (`Request`), running it through the statistics engine, the
//! statistical analysis plan (`plan`) and saved, frozen analyses (`saved`).

pub mod dataset;
pub mod plan;
pub mod saved;

use crate::db::Conn;
use crate::error::{Error, Result};
use crate::stats::analysis::{self, Analysis, Outcome};

pub use dataset::{Dataset, Sources};

/// The name of an analysis as a saved analysis stores it (`kappa`, `roc-compare`, …): one that
/// the statistics engine describes (`stats::describe`); any other stored name is an error when
/// the row is read, and migration 000012 refuses it when written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, diesel::expression::AsExpression, diesel::deserialize::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub struct AnalysisName(&'static str);

impl AnalysisName {
    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

impl std::fmt::Display for AnalysisName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.0)
    }
}

impl serde::Serialize for AnalysisName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl<DB> diesel::deserialize::FromSql<diesel::sql_types::Text, DB> for AnalysisName
where
    DB: diesel::backend::Backend,
    String: diesel::deserialize::FromSql<diesel::sql_types::Text, DB>,
{
    fn from_sql(value: <DB as diesel::backend::Backend>::RawValue<'_>) -> diesel::deserialize::Result<Self> {
        let text = <String as diesel::deserialize::FromSql<diesel::sql_types::Text, DB>>::from_sql(value)?;
        crate::stats::describe::form(&text)
            .map(|f| AnalysisName(f.name.as_str()))
            .ok_or_else(|| format!("the database holds '{text}', which is not an analysis").into())
    }
}

impl<DB> diesel::serialize::ToSql<diesel::sql_types::Text, DB> for AnalysisName
where
    DB: diesel::backend::Backend,
    str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
{
    fn to_sql<'b>(&'b self, out: &mut diesel::serialize::Output<'b, '_, DB>) -> diesel::serialize::Result {
        <str as diesel::serialize::ToSql<diesel::sql_types::Text, DB>>::to_sql(self.0, out)
    }
}

/// An analysis's name as people read it: its description's first words ("Cohen's kappa", "ROC
/// curve, AUC"), not the command's name (`kappa`, `roc`).
pub fn title_of(analysis: &str) -> String {
    crate::stats::describe::forms()
        .iter()
        .find(|f| f.name == analysis)
        .and_then(|f| f.about.split(" — ").next())
        .map(|t| t.split(['(', ':']).next().unwrap_or(t).trim().to_string())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| analysis.to_string())
}

/// A parameter of an analysis by its label ("Rater A (rows)"), not its field name (`a`).
pub fn param_label(analysis: &str, field: &str) -> String {
    crate::stats::describe::form(analysis)
        .and_then(|f| f.fields.iter().find(|x| x.name == field))
        .map_or_else(|| field.replace('_', " "), |x| x.label.clone())
}

/// An analysis's parameters as people read them: (label, value) in the form's order, lists
/// separated by ", " — what a result page shows instead of the command's flags.
pub fn labelled_params(analysis: &Analysis) -> Vec<(String, String)> {
    analysis
        .cli_args()
        .chunks(2)
        .map(|kv| {
            let field = kv[0].trim_start_matches("--").replace('-', "_");
            (param_label(analysis.name(), &field), kv[1].replace(',', ", "))
        })
        .collect()
}

/// An analysis as a form or a query string gives it: the data sources, the analysis's name, its
/// parameters by field name (what `stats::describe` says each analysis takes) and the level.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Request {
    pub run: Option<i32>,
    pub campaign: Option<i32>,
    pub campaign2: Option<i32>,
    pub analysis: String,
    pub level: String,
    /// The analysis's own parameters, by form field name, as given.
    pub params: Vec<(String, String)>,
}

fn number(field: &str, s: &str) -> Result<Option<f64>> {
    match s.trim() {
        "" => Ok(None),
        t => crate::stats::frame::parse_number(t)
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

    /// The value given for a parameter, or "".
    pub fn value(&self, field: &str) -> &str {
        self.params.iter().find(|(k, _)| k == field).map(|(_, v)| v.as_str()).unwrap_or("")
    }

    /// Gives a parameter a value unless it has one.
    pub fn set_default(&mut self, field: &str, value: String) {
        if self.value(field).trim().is_empty() && !value.is_empty() {
            self.params.retain(|(k, _)| k != field);
            self.params.push((field.to_string(), value));
        }
    }

    /// The analysis these parameters describe; a missing or malformed parameter names its field.
    pub fn analysis(&self) -> Result<Analysis> {
        Analysis::from_params(&self.analysis, &self.params).map_err(|e| Error::invalid(&e.field, e.message))
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

    /// The analysis as a person reads it, for lists (the plan, the checklist): what it is, its
    /// parameters by their labels, and its data sources — "Cohen's kappa: rater A phenotype__r1,
    /// rater B phenotype__r2 · campaign 2".
    pub fn summary(&self) -> String {
        let what = title_of(&self.analysis);
        let params: Vec<String> = self
            .params
            .iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(k, v)| format!("{} {v}", param_label(&self.analysis, k).to_lowercase()))
            .collect();
        let mut sources = Vec::new();
        if let Some(r) = self.run {
            sources.push(format!("AI run {r}"));
        }
        if let Some(c) = self.campaign {
            sources.push(format!("campaign {c}"));
        }
        if let Some(c) = self.campaign2 {
            sources.push(format!("compared with campaign {c}"));
        }
        let mut out = what;
        if !params.is_empty() {
            out.push_str(&format!(": {}", params.join(", ")));
        }
        if !sources.is_empty() {
            out.push_str(&format!(" · {}", sources.join(", ")));
        }
        if !self.level.trim().is_empty() && self.level.trim() != "0.95" {
            out.push_str(&format!(" · level {}", self.level.trim()));
        }
        out
    }

    pub fn parse(query: &str) -> Result<Request> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(query).map_err(|e| Error::invalid("query", e.to_string()))?;
        let id = |field: &str, v: &str| -> Result<Option<i32>> {
            match v.trim() {
                "" => Ok(None),
                t => t.parse().map(Some).map_err(|_| Error::invalid(field, format!("'{t}' is not an id"))),
            }
        };
        let mut req = Request::default();
        for (k, v) in pairs {
            match k.as_str() {
                "run" => req.run = id("run", &v)?,
                "campaign" => req.campaign = id("campaign", &v)?,
                "campaign2" => req.campaign2 = id("campaign2", &v)?,
                "analysis" => req.analysis = v,
                "level" => req.level = v,
                _ => req.params.push((k, v)),
            }
        }
        Ok(req)
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
pub fn compute(conn: &mut Conn, study_id: crate::studies::StudyId, req: &Request) -> Result<(Computed, Dataset)> {
    let analysis = req.analysis()?;
    let level = req.level()?;
    let sources = req.sources();
    let data = dataset::build(conn, study_id, &sources)?;
    let frame = data.frame()?;
    // The query is what was asked; the analysis kept (and re-computed by the dossier and the
    // shown command) carries the order of the columns' categories.
    let query = Request::canonical(&sources, &analysis, level);
    let analysis = data.with_category_order(analysis);
    let outcome = analysis::run(&frame, &analysis, level).map_err(|e| e.0);
    let computed = Computed {
        query,
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
        let req = Request::parse(
            "run=3&campaign=2&analysis=diagnostic&test=ai_phenotype&reference=phenotype__reference&positive=inflamed&a=ignored",
        )
        .unwrap();
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
        let req = Request::parse("analysis=kappa&a=x").unwrap();
        let e = req.analysis().unwrap_err().to_string();
        assert!(e.contains('b'), "{e}");
        let bad = Request::parse("analysis=roc&level=1.5").unwrap();
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
