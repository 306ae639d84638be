//! The dossier's statistical report (`report/report.html`, `report/report.pdf`): title page,
//! signatures, study design, population and disposition with Table 1, the analysis plan with each
//! pre-specified result marked pass or fail, AI versus reference agreement, reader variability,
//! accuracy, survival by phenotype with plots, model cards, methods with citations, the audit
//! trail's verification, software versions and a summary of the third-party components' licences
//! (the full list is `report/third-party-components.csv` beside it).
//! Built once as a `report::Document` and rendered to both formats.

use std::collections::BTreeMap;

use diesel::prelude::*;
use serde_json::Value;

use crate::analyses::saved::SavedRow;
use crate::db::Conn;
use crate::error::Result;
use crate::report::{results, Block, Document, Table};
use crate::stats::analysis::Analysis;
use crate::studies::lock::SignatureState;
use crate::studies::Study;

/// A saved analysis as the report shows it: with the dataset file it re-computes from and the
/// command that does it.
pub struct Reported {
    pub row: SavedRow,
    pub analysis: Analysis,
    pub input: String,
    pub command: String,
}

/// An analysis of the subjects dataset: its parameters, its result (or why it could not be
/// computed) and the command that re-computes it.
pub struct Computed {
    pub analysis: Analysis,
    pub outcome: std::result::Result<Value, String>,
    pub command: String,
}

/// The subjects dataset's tables: disposition (status by site) and Table 1 (by AI phenotype),
/// with the codelists of Table 1's categorical variables.
pub struct SubjectTables {
    pub disposition: Computed,
    pub table1: Computed,
    pub codelists: Vec<(String, String)>,
    /// Table 1's variables and levels by their labels, in the dictionary's order.
    pub labels: BTreeMap<String, crate::report::results::VariableLabels>,
}

/// What the report is made of, gathered by the export.
pub struct Inputs<'a> {
    pub study: &'a Study,
    pub state: &'a SignatureState,
    pub public_key: &'a str,
    pub analyses: &'a [Reported],
    pub subjects: &'a SubjectTables,
    pub model_cards: &'a [Value],
    pub audit_events: usize,
    pub audit_verification: &'a Value,
    /// The signed analysis plan, and the sources of its primary analysis (the analysis set).
    pub signed_plan: Option<&'a crate::analyses::plan::Plan>,
    pub sources: &'a crate::analyses::Sources,
}

/// The chapter a saved analysis belongs in.
fn chapter(a: &Analysis) -> usize {
    let ai = |cols: &[&String]| cols.iter().any(|c| c.starts_with("ai_"));
    match a {
        Analysis::Kappa { a, b, .. } | Analysis::BlandAltman { a, b } if ai(&[a, b]) => 0,
        Analysis::Diagnostic { test, reference, .. } if ai(&[test, reference]) => 0,
        Analysis::Kappa { .. } | Analysis::BlandAltman { .. } => 1,
        Analysis::Fleiss { .. } | Analysis::Icc { .. } | Analysis::PairedAgreement { .. } => 1,
        Analysis::Diagnostic { .. } | Analysis::Roc { .. } | Analysis::RocCompare { .. } => 2,
        Analysis::Survival { .. } | Analysis::Cox { .. } => 3,
        Analysis::Table1 { .. } => 4,
    }
}

const CHAPTERS: [(&str, &str); 5] = [
    ("AI versus reference agreement", "Agreement of the AI biomarker with the reference read."),
    (
        "Reader variability",
        "Agreement between pathologists, and between unaided and AI-assisted reads where both exist.",
    ),
    ("Accuracy", "Diagnostic accuracy and discrimination against the reference."),
    ("Survival by AI phenotype", "Time-to-event endpoints by the AI phenotype."),
    ("Other analyses", "Further saved analyses."),
];

/// Each method the report may use, with its source (the same sources the code cites).
const METHODS: &[(&str, &str, &str)] = &[
    ("kappa", "Cohen's kappa (unweighted, linear or quadratic weights) with the large-sample standard error and Wald confidence interval.", "Cohen J. Educ Psychol Meas 1960;20:37–46. Cohen J. Psychol Bull 1968;70:213–220. Fleiss JL, Cohen J, Everitt BS. Psychol Bull 1969;72:323–327."),
    ("fleiss", "Fleiss' kappa for several raters, with the standard error under the null hypothesis, z and p.", "Fleiss JL. Psychol Bull 1971;76:378–382. Fleiss JL, Nee JCM, Landis JR. Psychol Bull 1979;86:974–977."),
    ("icc", "Intraclass correlation in the six forms of Shrout and Fleiss, with F-distribution confidence intervals.", "Shrout PE, Fleiss JL. Psychol Bull 1979;86:420–428. McGraw KO, Wong SP. Psychol Methods 1996;1:30–46."),
    ("diagnostic", "Overall, positive and negative percent agreement; sensitivity, specificity, predictive values and accuracy with Wilson score and Clopper–Pearson exact intervals.", "Wilson EB. J Am Stat Assoc 1927;22:209–212. Clopper CJ, Pearson ES. Biometrika 1934;26:404–413. FDA, Statistical Guidance on Reporting Results from Studies Evaluating Diagnostic Tests, 2007."),
    ("roc", "Empirical ROC curve, AUC with the DeLong standard error (fast mid-rank algorithm), Youden-optimal cut-off.", "DeLong ER, DeLong DM, Clarke-Pearson DL. Biometrics 1988;44:837–845. Sun X, Xu W. IEEE Signal Process Lett 2014;21:1389–1393. Youden WJ. Cancer 1950;3:32–35."),
    ("roc-compare", "Paired comparison of two AUCs on the same subjects by DeLong's test.", "DeLong ER, DeLong DM, Clarke-Pearson DL. Biometrics 1988;44:837–845."),
    ("survival", "Kaplan–Meier estimates with log-log confidence intervals, median survival with its interval, numbers at risk, log-rank test.", "Kaplan EL, Meier P. J Am Stat Assoc 1958;53:457–481. Brookmeyer R, Crowley J. Biometrics 1982;38:29–41. Mantel N. Cancer Chemother Rep 1966;50:163–170."),
    ("cox", "Cox proportional hazards regression with Efron's method for ties (Newton–Raphson), hazard ratios with Wald intervals.", "Cox DR. J R Stat Soc B 1972;34:187–220. Efron B. J Am Stat Assoc 1977;72:557–565."),
    ("bland-altman", "Bland–Altman bias and 95% limits of agreement; Pearson and Spearman correlation; Lin's concordance correlation coefficient with its z-transform interval.", "Bland JM, Altman DG. Lancet 1986;i:307–310. Lin LI. Biometrics 1989;45:255–268."),
    ("table1", "Descriptive statistics by group: n, mean ± SD, median [IQR] (type 7 quantiles), counts and percentages, missing values.", "Hyndman RJ, Fan Y. Am Stat 1996;50:361–365."),
    ("paired-agreement", "Agreement of two reads with a reference on the same subjects: difference of paired proportions with Newcombe's hybrid score interval (method 10) and the exact McNemar test.", "Newcombe RG. Stat Med 1998;17:2635–2650. McNemar Q. Psychometrika 1947;12:153–157. Fagerland MW, Lydersen S, Laake P. Stat Med 2013;32:1393–1405."),
];

fn t(s: impl ToString) -> String {
    s.to_string()
}

/// The report.
pub fn build(conn: &mut Conn, i: &Inputs) -> Result<Document> {
    let study = i.study;
    let lock = &i.state.lock;
    let mut d = Document {
        title: format!("{} — statistical report", study.title),
        subtitle: vec![
            format!("Study {} · protocol version {}", study.code, study.protocol_version),
            format!("{} · {} · {}", study.indication, study.biomarker, study.study_type),
            format!("Locked {} UTC by {}", lock.locked_at.format("%Y-%m-%d %H:%M:%S"), lock.locked_by),
            format!("Data snapshot SHA-256 {}", lock.snapshot_sha256),
            format!("{} signatures: {}", i.state.signed.len(), signers(i.state)),
            format!("Produced by {}", crate::analyses::saved::SOFTWARE),
            format!("Dossier signing key (Ed25519, hex) {}", i.public_key),
        ],
        footer: format!("{} · snapshot {} · {}", study.code, &lock.snapshot_sha256, crate::analyses::saved::SOFTWARE),
        creator: crate::analyses::saved::SOFTWARE.to_string(),
        date: Some({
            use chrono::{Datelike, Timelike};
            let t = lock.locked_at;
            (t.year() as u16, t.month() as u8, t.day() as u8, t.hour() as u8, t.minute() as u8, t.second() as u8)
        }),
        blocks: Vec::new(),
    };

    d.h1("Signatures");
    d.p("Electronic signatures (21 CFR Part 11 §11.50): each signer re-entered their password; the signature records the printed name, the date and time (UTC), the meaning, and the SHA-256 of the data snapshot it covers.");
    let mut sig = Table::new(&["Name", "Role", "Meaning", "Signed (UTC)", "Snapshot SHA-256"]);
    for s in &i.state.signed {
        sig.push([
            s.full_name.clone(),
            s.role.to_string(),
            s.meaning.to_string(),
            t(s.signed_at.format("%Y-%m-%d %H:%M:%S")),
            s.snapshot_sha256.clone(),
        ]);
    }
    d.table(sig);

    design(conn, &mut d, i)?;
    population(&mut d, i);
    plan(&mut d, i);
    for (k, (title, intro)) in CHAPTERS.iter().enumerate() {
        let here: Vec<&Reported> = i.analyses.iter().filter(|a| chapter(&a.analysis) == k).collect();
        if k == 4 && here.is_empty() {
            continue;
        }
        d.h1(*title);
        d.p(*intro);
        if here.is_empty() {
            d.note("No saved analysis of this kind.");
        }
        for a in here {
            analysis(&mut d, a);
        }
    }
    models(&mut d, i);
    methods(&mut d, i);
    d.h1("Audit trail");
    d.p(format!(
        "The study's audit trail ({} events) is in audit/audit.csv; its hash chain was verified when the dossier was written:",
        i.audit_events
    ));
    let v = i.audit_verification;
    match &v["broken"] {
        Value::Null => d.p(format!(
            "Result: the hash chain {} is intact — {} events verified.",
            v["chain"].as_str().unwrap_or(""),
            v["events"]
        )),
        broken => {
            d.blocks.push(Block::Badge("fail".into()));
            d.p(format!("Result: the hash chain {} is BROKEN: {broken}", v["chain"].as_str().unwrap_or("")));
        }
    }
    software(&mut d, i);
    Ok(d)
}

fn signers(s: &SignatureState) -> String {
    s.signed.iter().map(|x| format!("{} ({}, {})", x.full_name, x.role, x.meaning)).collect::<Vec<_>>().join("; ")
}

fn design(conn: &mut Conn, d: &mut Document, i: &Inputs) -> Result<()> {
    use crate::db::schema::{cases, sites};
    let study = i.study;
    d.h1("Study design");
    if !study.description.trim().is_empty() {
        d.p(study.description.clone());
    }
    d.fields(vec![
        (t("Study"), format!("{} — {}", study.code, study.title)),
        (t("Indication"), study.indication.clone()),
        (t("Biomarker"), study.biomarker.clone()),
        (t("Study type"), study.study_type.to_string()),
        (t("Protocol version"), study.protocol_version.clone()),
    ]);
    d.h2("Sites");
    let per_site: Vec<(String, String, String, i64)> = sites::table
        .left_join(cases::table)
        .filter(sites::study_id.eq(study.id))
        .group_by((sites::code, sites::name, sites::country))
        .select((sites::code, sites::name, sites::country, diesel::dsl::count(cases::id.nullable())))
        .order(sites::code.asc())
        .load(conn)?;
    let mut sites_t = Table::new(&["Site", "Name", "Country", "Subjects"]);
    for (code, name, country, n) in per_site {
        sites_t.push([code, name, country, n.to_string()]);
    }
    d.table(sites_t);

    d.h2("Reading campaigns");
    let mut camp = Table::new(&["Campaign", "Mode", "Readers", "Reads submitted", "Status"]);
    for c in crate::annotations::campaigns::list(conn, study.id)? {
        let reads = crate::annotations::reads::of_campaign(conn, study.id, c.id)?;
        let readers: std::collections::BTreeSet<&str> = reads.iter().map(|r| r.reader.as_str()).collect();
        let submitted = reads.iter().filter(|r| r.is_submitted()).count();
        let mode = match (c.ai_run_id, c.parent_id) {
            (Some(run), _) => format!("AI-assisted (run {run})"),
            (None, Some(_)) => format!("unaided re-read after {} days", c.washout_days),
            (None, None) => t("unaided"),
        };
        camp.push([
            c.name.clone(),
            mode,
            readers.len().to_string(),
            format!("{submitted} of {}", reads.len()),
            c.status.to_string(),
        ]);
    }
    d.table(camp);

    d.h2("AI biomarker runs");
    let mut runs_t = Table::new(&["Run", "Model", "Model SHA-256", "Backend", "Slides", "Started (UTC)"]);
    for r in crate::biomarker::runs::list(conn, study.id)? {
        runs_t.push([
            r.id.to_string(),
            r.model(),
            r.model_sha256.clone(),
            r.backend.map(|b| b.to_string()).unwrap_or_default(),
            r.slide_ids().len().to_string(),
            t(r.created_at.format("%Y-%m-%d %H:%M")),
        ]);
    }
    d.table(runs_t);

    d.h2("Analysis set");
    let sources = i.sources;
    let plan = i.signed_plan;
    let endpoints: Vec<String> = i
        .analyses
        .iter()
        .filter_map(|a| match &a.analysis {
            Analysis::Survival { time, event, .. } | Analysis::Cox { time, event, .. } => {
                Some(format!("{time} (time) / {event} (event)"))
            }
            _ => None,
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let campaign_name = match sources.campaign {
        Some(cid) => crate::annotations::campaigns::get(conn, study.id, cid).map(|c| c.name).unwrap_or_default(),
        None => String::new(),
    };
    d.fields(vec![
        (t("Primary AI run"), sources.run.map(|r| format!("run {r}")).unwrap_or_else(|| t("none"))),
        (
            t("Reference"),
            sources
                .campaign
                .map(|c| format!("campaign {c} “{campaign_name}”, reader majority"))
                .unwrap_or_else(|| t("none")),
        ),
        (t("Clinical endpoints"), if endpoints.is_empty() { t("none") } else { endpoints.join("; ") }),
        (
            t("Statistical analysis plan"),
            plan.map(|p| {
                format!(
                    "version {} signed by {} ({}) on {} UTC",
                    p.version,
                    p.signed_name.clone().unwrap_or_default(),
                    p.meaning(),
                    p.signed_at.map(|x| x.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default()
                )
            })
            .unwrap_or_else(|| t("none")),
        ),
    ]);
    Ok(())
}

fn computed(d: &mut Document, c: &Computed, what: &str, labels: &BTreeMap<String, results::VariableLabels>) {
    match &c.outcome {
        Ok(json) => d.table(results::table1_labelled(json, labels)),
        Err(e) => d.note(format!("{what} could not be computed: {e}")),
    }
    d.note("Re-computed by:");
    d.code(c.command.clone());
}

fn population(d: &mut Document, i: &Inputs) {
    d.h1("Population and disposition");
    d.h2("Disposition: subjects by site and status");
    d.p("Every subject of datasets/subjects.csv, by site (columns) and status.");
    computed(d, &i.subjects.disposition, "The disposition", &BTreeMap::new());
    d.h2("Table 1: characteristics by AI phenotype");
    d.p("Subjects of datasets/subjects.csv with an AI phenotype in the primary run; variables and their levels by their labels in the data dictionary (the datasets hold the codes: codelists below).");
    computed(d, &i.subjects.table1, "Table 1", &i.subjects.labels);
    if !i.subjects.codelists.is_empty() {
        let mut cl = Table::new(&["Variable", "Codes"]).caption("Codelists");
        for (name, codes) in &i.subjects.codelists {
            cl.push([name.clone(), codes.clone()]);
        }
        d.table(cl);
    }
}

fn plan(d: &mut Document, i: &Inputs) {
    d.h1("Statistical analysis plan and pre-specified results");
    let Some(plan) = i.signed_plan else {
        d.p("The study has no signed analysis plan: every saved analysis is exploratory.");
        return;
    };
    // Every item of the signed plan, with the saved analysis that answers it (or none).
    let items = plan.items();
    let saved_for = |key: &str, query: &str| {
        i.analyses.iter().find(|a| {
            a.row.saved.plan_id == Some(plan.id)
                && a.row.saved.plan_item.as_deref() == Some(key)
                && a.row.saved.query == query
        })
    };
    let met = items
        .iter()
        .filter_map(|it| saved_for(&it.key, &it.query))
        .filter(|a| a.row.verdict.is_some_and(|v| v.as_str() == "pass"))
        .count();
    let with_criterion = items.iter().filter(|it| it.criterion.is_some()).count();
    d.p(format!(
        "Version {} of the plan, signed by {} ({}), pre-specifies {} analyses; {met} of the {with_criterion} with an acceptance criterion met it. Saved analyses outside the plan are exploratory.",
        plan.version,
        plan.signed_name.clone().unwrap_or_default(),
        plan.meaning(),
        items.len()
    ));
    let mut tab = Table::new(&["Item", "Role", "Analysis", "Criterion", "Observed", "Result"]);
    for it in &items {
        let found = saved_for(&it.key, &it.query);
        tab.push([
            it.key.clone(),
            it.role.to_string(),
            it.title.clone(),
            it.criterion.as_ref().map(|c| c.label()).unwrap_or_default(),
            found.and_then(|a| a.row.observed).map(results::fmt4).unwrap_or_default(),
            match found {
                None => t("not saved"),
                Some(a) => a.row.verdict.map(|v| v.as_str().to_string()).unwrap_or_else(|| t("no criterion")),
            },
        ]);
    }
    d.table(tab);
}

fn analysis(d: &mut Document, a: &Reported) {
    let s = &a.row.saved;
    d.h2(format!("{}{}", s.plan_item.as_ref().map(|k| format!("{k}: ")).unwrap_or_default(), s.title));
    let verdict = match (&s.plan_item, a.row.verdict) {
        (None, _) => t("exploratory"),
        (Some(_), Some(v)) => v.as_str().to_string(),
        (Some(_), None) => t("pre-specified"),
    };
    d.blocks.push(Block::Badge(verdict));
    let mut f = vec![(t("Analysis"), s.analysis.to_string())];
    if a.row.criterion.is_some() {
        f.push((t("Criterion"), a.row.criterion_label()));
        f.push((t("Observed"), a.row.observed.map(results::fmt4).unwrap_or_else(|| t("undetermined"))));
    }
    f.push((t("Dataset"), format!("{} ({} rows, SHA-256 {})", a.input, s.input_rows, s.input_sha256)));
    f.push((
        t("Saved"),
        format!("{} UTC by {} with {}", s.created_at.format("%Y-%m-%d %H:%M"), s.created_by, s.software_version),
    ));
    d.fields(f);
    for table in results::tables(&s.result()) {
        d.table(table);
    }
    if !s.plot_svg.is_empty() {
        d.blocks.push(Block::Plot(s.plot_svg.clone()));
    }
    d.note("Re-computed by:");
    d.code(a.command.clone());
}

/// A JSON object's leaves as name–value pairs (`a.b` paths).
fn leaf_fields(v: &Value) -> Vec<(String, String)> {
    crate::analyses::leaves(v)
        .into_iter()
        .map(|(k, v)| {
            let text = match &v {
                Value::String(s) => s.clone(),
                Value::Null => t("—"),
                other => other.to_string(),
            };
            (k, text)
        })
        .collect()
}

/// A model card's technical fields as sentences a reviewer reads (not a flattened key dump).
fn card_fields(card: &Value) -> Vec<(String, String)> {
    let list = |v: &Value| {
        v.as_array().map(|a| a.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ")).unwrap_or_default()
    };
    let text = |v: &Value| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
    let mut f = Vec::new();
    if !card["tile_size"].is_null() {
        let input = &card["input"];
        f.push((
            t("Input"),
            format!(
                "tiles of {0} × {0} pixels at {1} µm per pixel; tensor “{2}”, {3}, {4}",
                card["tile_size"],
                text(&card["mpp"]),
                input["name"].as_str().unwrap_or(""),
                input["layout"].as_str().unwrap_or(""),
                input["dtype"].as_str().unwrap_or("")
            ),
        ));
    }
    let n = &card["normalisation"];
    if n.is_object() {
        f.push((
            t("Normalisation"),
            format!(
                "pixel values × {}, then (x − mean) / sd per channel, mean {}, sd {}",
                text(&n["scale"]),
                list(&n["mean"]),
                list(&n["std"])
            ),
        ));
    }
    if let Some(outputs) = card["outputs"].as_array() {
        let o: Vec<String> = outputs
            .iter()
            .map(|o| format!("{}: {}", o["name"].as_str().unwrap_or(""), o["meaning"].as_str().unwrap_or("")))
            .collect();
        f.push((t("Outputs"), o.join("; ")));
    }
    if let Some(th) = card["thresholds"].as_object() {
        let th: Vec<String> = th.iter().map(|(k, v)| format!("{} {}", results::label(k), text(v))).collect();
        f.push((t("Thresholds"), th.join("; ")));
    }
    if let Some(training) = card["training_data"].as_str() {
        f.push((t("Training data"), training.to_string()));
    }
    f
}

fn models(d: &mut Document, i: &Inputs) {
    d.h1("Model cards");
    if i.model_cards.is_empty() {
        d.note("No AI run is part of a saved analysis.");
    }
    for card in i.model_cards {
        let name = format!("{}@{}", card["name"].as_str().unwrap_or(""), card["version"].as_str().unwrap_or(""));
        d.h2(name);
        if let Some(u) = card["intended_use"].as_str() {
            d.p(u.to_string());
        }
        d.fields(card_fields(card));
        if card["validation"].is_object() {
            d.h3("Validation");
            d.fields(leaf_fields(&card["validation"]).into_iter().map(|(k, v)| (results::label(&k), v)).collect());
        }
    }
}

fn methods(d: &mut Document, i: &Inputs) {
    d.h1("Methods");
    d.p("Every number in this report is computed by the Evidentia statistics engine, whose methods are checked against reference implementations (statsmodels, SciPy, scikit-learn, lifelines, pingouin) and published examples in its test suite. Each analysis above lists the evidentia stats command that re-computes it from the files in datasets/; reproduce/commands.sh runs them all and `evidentia dossier verify` compares every number with reproduce/expected.json.");
    let mut used: Vec<&str> = i.analyses.iter().map(|a| a.analysis.name()).collect();
    used.push("table1");
    let mut tab = Table::new(&["Analysis", "Method", "References"]);
    for (name, what, refs) in METHODS {
        if used.contains(name) {
            tab.push([t(name), t(what), t(refs)]);
        }
    }
    d.table(tab);
    d.p("Confidence intervals are two-sided at the level given with each analysis (95% unless stated). Subject identifiers are pseudonymous; dates were shifted per subject at import (HIPAA Safe Harbor de-identification).");
}

fn software(d: &mut Document, i: &Inputs) {
    d.h1("Software and third-party components");
    let version_of = |name: &str| {
        THIRD_PARTY.lines().find_map(|l| l.strip_prefix(&format!("{name}\t"))?.split('\t').next().map(str::to_string))
    };
    d.fields(vec![
        (t("Evidentia"), crate::analyses::saved::SOFTWARE.to_string()),
        (t("Dossier signing key"), i.public_key.to_string()),
        (t("This PDF"), format!("PDF/A-2b, written by krilla {}", version_of("krilla").unwrap_or_default())),
    ]);
    // The full list (about 400 components) is an appendix file of the dossier, not pages here.
    let mut by_licence: BTreeMap<&str, usize> = BTreeMap::new();
    let components = THIRD_PARTY.lines().skip(1).filter_map(|l| l.split('\t').nth(2)).inspect(|l| {
        *by_licence.entry(l).or_default() += 1;
    });
    let n = components.count();
    d.p(format!(
        "{n} components are compiled into the Evidentia binary or served by it; each, with its version and licence, is \
         listed in {THIRD_PARTY_FILE} of this dossier. By licence:"
    ));
    let mut tab = Table::new(&["Licence", "Components"]);
    let mut counts: Vec<(&str, usize)> = by_licence.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    for (licence, count) in counts {
        tab.push([licence.to_string(), count.to_string()]);
    }
    d.table(tab);
}

/// Where the dossier lists every third-party component (the report summarises it).
pub const THIRD_PARTY_FILE: &str = "report/third-party-components.csv";

/// The third-party list as CSV (component, version, licence, kind), for the dossier.
pub fn third_party_csv() -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut lines = THIRD_PARTY.lines();
    let header: Vec<String> = lines.next().unwrap_or_default().split('\t').map(str::to_string).collect();
    crate::export::write_rows(&mut out, header, lines.map(|l| l.split('\t').map(str::to_string).collect::<Vec<_>>()))
        .map_err(crate::error::Error::Internal)?;
    Ok(out)
}

/// Every component with its version and licence (written by tools/third_party.sh).
pub const THIRD_PARTY: &str = include_str!("third_party.tsv");

#[cfg(test)]
mod tests {
    /// The demonstration model's card reads as sentences: no JSON, no key paths.
    #[test]
    fn a_model_card_reads_as_sentences() {
        let card: serde_json::Value =
            serde_json::from_str(include_str!("../../models/evidentia-demo-til.json")).unwrap();
        let fields = super::card_fields(&card);
        let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.clone()).unwrap_or_default();
        assert_eq!(get("Input"), "tiles of 256 × 256 pixels at 1.0 µm per pixel; tensor “tiles”, NCHW, float32");
        assert!(get("Normalisation").contains("mean 0.5, 0.5, 0.5"), "{fields:?}");
        assert!(get("Outputs").starts_with("tissue: tissue class probabilities"), "{fields:?}");
        assert!(get("Thresholds").contains("lymphocyte probability 0.5"), "{fields:?}");
        assert!(fields.iter().all(|(_, v)| !v.contains('{') && !v.contains('[')), "{fields:?}");
    }

    /// The third-party list is what `cargo tree` says the binary is built from now (re-write it
    /// with `sh tools/third_party.sh` after changing a dependency).
    #[test]
    fn third_party_list_matches_cargo_tree() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = std::process::Command::new(cargo)
            .args(["tree", "-p", "evidentia", "-e", "normal", "--prefix", "none", "-f", "{p}\t{l}", "--offline"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("cargo tree");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mut now: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            // The workspace's own crates (evidentia, evidentia-*) are not third party.
            .filter(|l| !l.starts_with("evidentia v") && !l.starts_with("evidentia-"))
            .filter_map(|l| {
                // cargo tree marks repeats "(*)" and proc-macros "(proc-macro)" after the format.
                let l = l.trim_end_matches(" (*)").trim_end_matches(" (proc-macro)");
                let (p, licence) = l.split_once('\t')?;
                let mut parts = p.split(' ');
                let (name, version) = (parts.next()?, parts.next()?.trim_start_matches('v'));
                Some(format!("{name}\t{version}\t{licence}"))
            })
            .collect();
        now.sort();
        now.dedup();
        let listed: Vec<String> = super::THIRD_PARTY
            .lines()
            .filter(|l| l.ends_with("\tRust crate"))
            .map(|l| l.trim_end_matches("\tRust crate").to_string())
            .collect();
        assert_eq!(listed, now, "src/dossier/third_party.tsv is out of date: run sh tools/third_party.sh");
    }
}
