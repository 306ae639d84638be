//! The analysis dataset of a study: one row per slide of an enrolled case that is not excluded,
//! with the subject's de-identified case data, an AI run's result for the slide, and a reading
//! campaign's reads (one column per reader and field) with the derived reader consensus; in a
//! longitudinal study, each subject's follow-up derived from its visits (`cases::derive`). The
//! same CSV is what the analysis page exports and what a saved analysis's SHA-256 is taken of,
//! so `evidentia stats` over the export re-computes every number.

use std::collections::BTreeMap;

use diesel::prelude::*;
use sha2::{Digest, Sha256};

use crate::annotations::{adjudication, campaigns, reads, schema};
use crate::biomarker::runs;
use crate::cases::{self, dictionary, CaseStatus};
use crate::db::schema::{cases as cases_t, sites, slides};
use crate::db::Conn;
use crate::error::Result;
use crate::slides::SlideStatus;
use crate::stats::analysis::Analysis;

/// Which AI run and which reading campaigns feed the dataset (each optional; a second campaign
/// to compare with the first, e.g. an AI-assisted re-read with the unaided first read).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Sources {
    pub run: Option<i32>,
    pub campaign: Option<i32>,
    pub campaign2: Option<i32>,
}

/// What a column holds, for the column pickers and the dataset description.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ColumnInfo {
    pub name: String,
    pub description: String,
    /// The order of a categorical column's values as the dictionary or the reading schema lists
    /// them (codes for dictionary choices); empty for other columns.
    #[serde(skip)]
    pub categories: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Dataset {
    pub columns: Vec<ColumnInfo>,
    pub rows: Vec<Vec<String>>,
}

impl Dataset {
    pub fn header(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.name.clone()).collect()
    }

    /// The CSV bytes (formula-like cells quoted, as every export).
    pub fn to_csv(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        crate::export::write_rows(&mut out, self.header(), self.rows.iter().cloned())
            .map_err(crate::error::Error::Internal)?;
        Ok(out)
    }

    /// SHA-256 of the CSV: the identity of the exact input of an analysis.
    pub fn sha256(&self) -> Result<String> {
        Ok(hex::encode(Sha256::digest(self.to_csv()?)))
    }

    /// The analysis with the category order of its columns where they have one and the analysis
    /// takes one: Cohen's kappa of two columns of the same scale (a schema's categories, the AI
    /// phenotypes, a dictionary field's codes) holding only that scale's values gets the scale's
    /// order — for its matrix, and for the positions of weighted kappa — instead of sorted.
    pub fn with_category_order(&self, analysis: Analysis) -> Analysis {
        match analysis {
            Analysis::Kappa { a, b, weights, categories } if categories.is_empty() => {
                let order = self.scale_of(&[&a, &b]).unwrap_or_default();
                Analysis::Kappa { a, b, weights, categories: order }
            }
            other => other,
        }
    }

    /// The shared order of `names`' categories, when every one has the same set of categories
    /// and every value they hold is one of them. A scale of numbers only has none: numbers sort
    /// numerically already (the contract's order).
    fn scale_of(&self, names: &[&str]) -> Option<Vec<String>> {
        let mut order: Option<&Vec<String>> = None;
        for name in names {
            let i = self.columns.iter().position(|c| c.name == *name)?;
            let cats = &self.columns[i].categories;
            let same = |o: &Vec<String>| o.len() == cats.len() && cats.iter().all(|c| o.contains(c));
            if cats.is_empty() || order.is_some_and(|o| !same(o)) {
                return None;
            }
            order = Some(cats);
            let in_scale = |v: &String| v.is_empty() || cats.contains(v);
            if !self.rows.iter().all(|r| r.get(i).is_none_or(in_scale)) {
                return None;
            }
        }
        order.filter(|o| !o.iter().all(|c| crate::stats::frame::parse_number(c).is_some())).cloned()
    }

    /// The data as a frame of text columns for the statistics engine, read back from the CSV
    /// bytes so that the app computes on exactly what the export holds.
    pub fn frame(&self) -> Result<polars::prelude::DataFrame> {
        crate::stats::frame::read_csv_bytes(self.to_csv()?)
            .map_err(|e| crate::error::Error::Internal(anyhow::anyhow!(e.0)))
    }
}

fn col(name: impl Into<String>, description: impl Into<String>) -> ColumnInfo {
    ColumnInfo { name: name.into(), description: description.into(), categories: Vec::new() }
}

impl ColumnInfo {
    fn scale(mut self, categories: Vec<String>) -> Self {
        self.categories = categories;
        self
    }
}

/// Majority vote of readers' categories: the most frequent value, None on a tie for first.
pub fn majority(values: &[&str]) -> Option<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for v in values.iter().filter(|v| !v.is_empty()) {
        *counts.entry(v).or_default() += 1;
    }
    let top = counts.values().copied().max()?;
    let mut leaders = counts.iter().filter(|(_, c)| **c == top);
    let first = leaders.next()?;
    leaders.next().is_none().then(|| first.0.to_string())
}

/// Builds the dataset. Rows are in subject, then slide label order.
pub fn build(conn: &mut Conn, study_id: crate::studies::StudyId, sources: &Sources) -> Result<Dataset> {
    let dict = dictionary::load(conn, study_id)?;
    let case_header = cases::export::header(&dict);
    let all_cases: Vec<cases::Case> = cases_t::table
        .inner_join(sites::table)
        .filter(cases_t::study_id.eq(study_id))
        .select(cases::Case::as_select())
        .load(conn)?;
    let case_by_id: BTreeMap<i32, &cases::Case> = all_cases.iter().map(|c| (c.id, c)).collect();
    let slide_rows: Vec<(i32, String, i32)> = slides::table
        .inner_join(cases_t::table)
        .filter(slides::study_id.eq(study_id))
        .filter(slides::status.ne(SlideStatus::Excluded))
        .filter(cases_t::status.eq(CaseStatus::Enrolled))
        .select((slides::id, slides::label, slides::case_id))
        .load(conn)?;

    let mut columns: Vec<ColumnInfo> = Vec::new();
    for h in &case_header {
        let field = dict.iter().find(|f| &f.name == h || h.starts_with(&format!("{}___", f.name)));
        let label = field.map(|f| f.label.clone()).unwrap_or_else(|| format!("case {}", h.replace('_', " ")));
        // A single-choice field's column holds its codes, in the dictionary's order (numbers,
        // which sort so already; a code that is not a number keeps the dictionary's order).
        let codes = field
            .filter(|f| &f.name == h)
            .map(|f| f.choices().into_iter().map(|c| c.code).collect())
            .unwrap_or_default();
        columns.push(col(h, label).scale(codes));
    }
    // A longitudinal study's follow-up visits, one value per subject (`cases::derive`).
    let design = cases::events::load(conn, study_id)?;
    let derivation = cases::derive::Derivation::new(&dict, &design);
    let visits = match &derivation {
        Some(d) => {
            columns.extend(d.columns().into_iter().map(|(name, description)| col(name, description)));
            cases::records::of_study(conn, study_id)?
        }
        None => BTreeMap::new(),
    };
    columns.push(col("slide", "slide label"));

    // AI run: slide label → result.
    let mut ai: BTreeMap<String, runs::SlideResultRow> = BTreeMap::new();
    if let Some(run_id) = sources.run {
        let run = runs::get(conn, study_id, run_id)?;
        for r in runs::results(conn, run.id)? {
            ai.insert(r.slide.clone(), r);
        }
        let m = run.model();
        columns.extend([
            col("ai_phenotype", format!("AI phenotype (run {run_id}, {m})"))
                .scale(crate::biomarker::compare::PHENOTYPES.map(String::from).to_vec()),
            col("ai_itil", format!("AI median intratumoral TIL density /mm² (run {run_id})")),
            col("ai_stil", format!("AI median stromal TIL density /mm² (run {run_id})")),
            col("ai_inflamed_share", format!("AI share of inflamed cells (run {run_id})")),
            col("ai_excluded_share", format!("AI share of excluded cells (run {run_id})")),
            col("ai_desert_share", format!("AI share of desert cells (run {run_id})")),
        ]);
    }

    // Reading campaigns: the first's columns are `field__reader`, a second's (to compare, e.g.,
    // unaided with AI-assisted reads) `field__reader__c<id>`.
    let mut reading: Vec<CampaignColumns> = Vec::new();
    for (cid, suffix) in
        [(sources.campaign, String::new()), (sources.campaign2, format!("__c{}", sources.campaign2.unwrap_or(0)))]
    {
        if let Some(cid) = cid {
            let c = campaign_columns(conn, study_id, cid, suffix)?;
            columns.extend(c.columns.iter().cloned());
            reading.push(c);
        }
    }

    let mut seen = std::collections::BTreeSet::new();
    if let Some(dup) = columns.iter().find(|c| !seen.insert(c.name.as_str())) {
        return Err(crate::error::Error::Conflict(format!(
            "two columns of the dataset would be named \"{}\" (a reader's username or a dictionary field clashes with a \
             derived column): rename one to analyse this data",
            dup.name
        )));
    }
    let mut rows: Vec<(String, String, Vec<String>)> = Vec::new();
    for (_, label, case_id) in slide_rows {
        let Some(case) = case_by_id.get(&case_id) else { continue };
        let mut row = cases::export::row(&dict, case, false);
        if let Some(d) = &derivation {
            row.extend(d.row(&case.data.0, visits.get(&case_id).map(Vec::as_slice).unwrap_or_default()));
        }
        row.push(label.clone());
        if sources.run.is_some() {
            let r = ai.get(&label).filter(|r| r.status == crate::biomarker::runs::ResultStatus::Ok);
            let num = |v: Option<f64>| v.map(|x| format!("{x}")).unwrap_or_default();
            row.push(r.and_then(|r| r.phenotype).map(|p| p.to_string()).unwrap_or_default());
            row.push(num(r.and_then(|r| r.itil_density_median)));
            row.push(num(r.and_then(|r| r.stil_density_median)));
            row.push(num(r.and_then(|r| r.inflamed_share)));
            row.push(num(r.and_then(|r| r.excluded_share)));
            row.push(num(r.and_then(|r| r.desert_share)));
        }
        for c in &reading {
            c.extend_row(&label, &mut row);
        }
        rows.push((case.display_id.clone(), label, row));
    }
    rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    Ok(Dataset { columns, rows: rows.into_iter().map(|r| r.2).collect() })
}

/// One campaign's part of the dataset: per field, each reader's value, their majority vote (or
/// median) and the campaign reference.
struct CampaignColumns {
    columns: Vec<ColumnInfo>,
    fields: Vec<schema::FieldDef>,
    readers: Vec<String>,
    by_reader: BTreeMap<String, BTreeMap<String, serde_json::Map<String, serde_json::Value>>>,
    reference: adjudication::Reference,
}

fn campaign_columns(
    conn: &mut Conn,
    study_id: crate::studies::StudyId,
    cid: i32,
    suffix: String,
) -> Result<CampaignColumns> {
    let campaign = campaigns::get(conn, study_id, cid)?;
    if campaign.is_training() {
        return Err(crate::error::Error::invalid(
            "campaign",
            format!("{} is a training campaign: training reads never feed the analysis set", campaign.name),
        ));
    }
    let def = schema::current(conn, study_id)?.map(|s| s.definition()).unwrap_or_default();
    let fields: Vec<schema::FieldDef> = def.fields.iter().filter(|f| !f.is_comment()).cloned().collect();
    let mut by_reader: BTreeMap<String, BTreeMap<String, serde_json::Map<String, serde_json::Value>>> = BTreeMap::new();
    // Every assigned reader has columns; only submitted reads give values.
    for r in reads::of_campaign(conn, study_id, cid)?.into_iter().filter(|r| !r.is_withdrawn()) {
        let slides = by_reader.entry(r.reader.clone()).or_default();
        if r.is_submitted() {
            slides.insert(r.slide.clone(), r.values());
        }
    }
    let readers: Vec<String> = by_reader.keys().cloned().collect();
    let reference = adjudication::reference(conn, study_id, &campaign, &def)?;
    let (name, mode) = (&campaign.name, campaign.assistance());
    let mut columns = Vec::new();
    for f in &fields {
        let n = &f.name;
        let scale = f.categories().unwrap_or_default();
        for r in &readers {
            columns.push(
                col(format!("{n}__{r}{suffix}"), format!("{n} read by {r} ({name}, {mode})")).scale(scale.clone()),
            );
        }
        if f.is_numeric() {
            columns.push(col(format!("{n}__median{suffix}"), format!("median of the readers' {n} ({name})")));
        } else {
            columns.push(
                col(
                    format!("{n}__majority{suffix}"),
                    format!("majority vote of the readers' {n}, empty on a tie ({name})"),
                )
                .scale(scale.clone()),
            );
        }
        columns.push(
            col(format!("{n}__reference{suffix}"), format!("{n}: the reference, agreed or adjudicated ({name})"))
                .scale(scale),
        );
    }
    Ok(CampaignColumns { columns, fields, readers, by_reader, reference })
}

impl CampaignColumns {
    fn extend_row(&self, label: &str, row: &mut Vec<String>) {
        for f in &self.fields {
            let values: Vec<String> = self
                .readers
                .iter()
                .map(|r| {
                    self.by_reader[r]
                        .get(label)
                        .and_then(|v| v.get(&f.name))
                        .and_then(|v| v.as_str())
                        .unwrap_or("")
                        .to_string()
                })
                .collect();
            let refs: Vec<&str> = values.iter().map(String::as_str).collect();
            let derived = if f.is_numeric() {
                crate::stats::median(refs.iter().filter_map(|v| v.trim().parse().ok()).collect())
                    .map(|m| format!("{m}"))
                    .unwrap_or_default()
            } else {
                majority(&refs).unwrap_or_default()
            };
            row.extend(values);
            row.push(derived);
            row.push(self.reference.get(label).and_then(|r| r.get(&f.name)).cloned().unwrap_or_default());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(columns: &[(&str, &[&str])], rows: &[&[&str]]) -> Dataset {
        Dataset {
            columns: columns
                .iter()
                .map(|(n, cats)| col(*n, "").scale(cats.iter().map(|c| c.to_string()).collect()))
                .collect(),
            rows: rows.iter().map(|r| r.iter().map(|v| v.to_string()).collect()).collect(),
        }
    }

    #[test]
    fn kappa_of_one_scale_takes_its_order() {
        const P: &[&str] = &["inflamed", "excluded", "desert"];
        let kappa = |a: &str, b: &str| Analysis::Kappa {
            a: a.into(),
            b: b.into(),
            weights: crate::stats::agreement::Weights::None,
            categories: vec![],
        };
        let order = |d: &Dataset, a, b| match d.with_category_order(kappa(a, b)) {
            Analysis::Kappa { categories, .. } => categories,
            _ => unreachable!(),
        };
        const CODES: &[&str] = &["3", "1", "2"];
        let d = dataset(
            &[("ai", P), ("r1", P), ("odd", P), ("site", &[]), ("g1", CODES), ("g2", CODES)],
            &[&["desert", "inflamed", "uninterpretable", "A", "1", "2"], &["", "excluded", "desert", "B", "3", "3"]],
        );
        assert_eq!(order(&d, "ai", "r1"), P);
        // Numbers sort numerically already.
        assert!(order(&d, "g1", "g2").is_empty());
        // A value outside the scale, a column without one, or a column not in the dataset:
        // the statistics' own order (sorted).
        assert!(order(&d, "ai", "odd").is_empty());
        assert!(order(&d, "ai", "site").is_empty());
        assert!(order(&d, "ai", "nope").is_empty());
        // An order given explicitly is kept.
        let given = Analysis::Kappa {
            a: "ai".into(),
            b: "r1".into(),
            weights: crate::stats::agreement::Weights::None,
            categories: vec!["desert".into(), "excluded".into(), "inflamed".into()],
        };
        assert_eq!(d.with_category_order(given.clone()), given);
    }

    #[test]
    fn majority_needs_a_single_leader() {
        assert_eq!(majority(&["a", "b", "a"]), Some("a".into()));
        assert_eq!(majority(&["a", "b"]), None);
        assert_eq!(majority(&["", "b", ""]), Some("b".into()));
        assert_eq!(majority(&[]), None);
    }
}
