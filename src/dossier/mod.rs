//! The evidence dossier of a locked, signed study: a zip written deterministically (fixed order,
//! fixed timestamps: the same study gives the same bytes) holding the datasets, the signed
//! analysis plan and the saved analyses, the model cards, the audit trail with the result of
//! verifying its hash chain, and for every saved number the `evidentia stats` command that
//! re-computes it from the datasets; `manifest.json` lists every file with its SHA-256 and size,
//! the study, the software version, the model SHA-256s, the data snapshot hash and the
//! signatures, and `manifest.sig` is the Ed25519 signature of the manifest by the installation's
//! signing key, so that re-computing the hashes after a change is not enough to forge a dossier.
//! `verify` checks all of it and re-computes every statistic.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub mod report;
pub mod xpt;

use crate::analyses::{self, dataset, saved, Request};
use crate::audit;
use crate::auth::permissions::{Permission, StudyAccess};
use crate::auth::Actor;
use crate::db::paging::PageRequest;
use crate::db::Conn;
use crate::error::{Error, Result};
use crate::studies::{self, lock};

/// The installation's signing key: 32 random bytes (hex, mode 0600) in `secrets/`, created on
/// first use, backed up with the data dir.
pub fn signing_key(data_dir: &Path) -> anyhow::Result<SigningKey> {
    let bytes = crate::secrets::load_or_create(&data_dir.join("secrets").join("dossier-signing.key"))?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// The public key, hex: printed in the report, served at `/api/v1/signing-key`.
pub fn public_key_hex(data_dir: &Path) -> anyhow::Result<String> {
    Ok(hex::encode(signing_key(data_dir)?.verifying_key().to_bytes()))
}

/// The files of a dossier, path → bytes, in the order they are written.
type Files = BTreeMap<String, Vec<u8>>;

fn csv_bytes(header: Vec<String>, rows: Vec<Vec<String>>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    crate::export::write_rows(&mut out, header, rows).map_err(Error::Internal)?;
    Ok(out)
}

/// The files of the dossier being written, and the datasets' descriptions for `define.xml`.
struct Out {
    files: Files,
    described: Vec<Described>,
    /// The codelist (code, label) of each coded column.
    coded: BTreeMap<String, Vec<(String, String)>>,
}

impl Out {
    /// Adds a dataset as `<stem>.csv`, as SAS XPORT `<stem>.xpt` (member `member`) and its
    /// description `<stem>.variables.csv` (column, XPORT name, label, type, length, values cut,
    /// codelist).
    fn add_dataset(
        &mut self,
        stem: &str,
        member: &str,
        label: &str,
        columns: Vec<(String, String)>,
        rows: Vec<Vec<String>>,
    ) -> Result<()> {
        let header: Vec<String> = columns.iter().map(|(c, _)| c.clone()).collect();
        let rows_len = rows.len();
        let mut xpt_bytes = Vec::new();
        let vars = xpt::write(&mut xpt_bytes, member, label, &columns, &rows).map_err(|e| Error::Internal(e.into()))?;
        let description = vars
            .iter()
            .map(|v| {
                vec![
                    v.column.clone(),
                    v.name.clone(),
                    v.label.clone(),
                    if v.numeric { "numeric".into() } else { "text".into() },
                    v.length.to_string(),
                    v.cut_values.to_string(),
                    self.coded.get(&v.column).map(|c| codes_text(c)).unwrap_or_default(),
                ]
            })
            .collect();
        let desc_header = ["column", "xpt_name", "label", "type", "length", "values_cut_at_200_bytes", "codelist"]
            .map(String::from)
            .to_vec();
        self.files.insert(format!("{stem}.csv"), csv_bytes(header, rows)?);
        self.files.insert(format!("{stem}.xpt"), xpt_bytes);
        self.files.insert(format!("{stem}.variables.csv"), csv_bytes(desc_header, description)?);
        self.described.push(Described {
            stem: stem.to_string(),
            member: member.to_string(),
            label: label.to_string(),
            rows: rows_len,
            vars,
        });
        Ok(())
    }
}

/// A dataset as `define.xml` describes it.
struct Described {
    stem: String,
    member: String,
    label: String,
    rows: usize,
    vars: Vec<xpt::Variable>,
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A Define-XML-like (CDISC ODM 1.3 / Define-XML 2.0 structure) description of the datasets:
/// one ItemGroupDef per dataset with its file, one ItemDef per variable (name, type, length,
/// label and the CSV column it comes from).
fn define_xml(
    study: &crate::studies::Study,
    described: &[Described],
    coded: &BTreeMap<String, Vec<(String, String)>>,
) -> Vec<u8> {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str(&format!(
        "<ODM xmlns=\"http://www.cdisc.org/ns/odm/v1.3\" xmlns:def=\"http://www.cdisc.org/ns/def/v2.0\" xmlns:xlink=\"http://www.w3.org/1999/xlink\" ODMVersion=\"1.3.2\" FileType=\"Snapshot\" FileOID=\"evidentia.{0}.define\" Originator=\"{1}\">\n<Study OID=\"{0}\">\n<GlobalVariables><StudyName>{0}</StudyName><StudyDescription>{2}</StudyDescription><ProtocolName>{3}</ProtocolName></GlobalVariables>\n<MetaDataVersion OID=\"MDV.{0}\" Name=\"Evidentia dossier datasets\" def:DefineVersion=\"2.0.0\">\n",
        xml(&study.code), xml(saved::SOFTWARE), xml(&study.title), xml(&study.protocol_version)
    ));
    for d in described {
        let file = d.stem.rsplit('/').next().unwrap_or(&d.stem);
        x.push_str(&format!(
            "<ItemGroupDef OID=\"IG.{m}\" Name=\"{m}\" SASDatasetName=\"{m}\" Repeating=\"Yes\" Purpose=\"Analysis\" def:Structure=\"{rows} records\">\n<Description><TranslatedText xml:lang=\"en\">{l}</TranslatedText></Description>\n",
            m = xml(&d.member), rows = d.rows, l = xml(&d.label)
        ));
        for (i, v) in d.vars.iter().enumerate() {
            x.push_str(&format!(
                "<ItemRef ItemOID=\"IT.{}.{}\" OrderNumber=\"{}\" Mandatory=\"No\"/>\n",
                xml(&d.member),
                xml(&v.name),
                i + 1
            ));
        }
        x.push_str(&format!("<def:leaf ID=\"LF.{m}\" xlink:href=\"{f}.xpt\"><def:title>{f}.xpt</def:title></def:leaf>\n</ItemGroupDef>\n", m = xml(&d.member), f = xml(file)));
    }
    for d in described {
        for v in &d.vars {
            let codelist_ref = if coded.contains_key(&v.column) {
                format!("<CodeListRef CodeListOID=\"CL.{}\"/>", xml(&v.column))
            } else {
                String::new()
            };
            x.push_str(&format!(
                "<ItemDef OID=\"IT.{m}.{n}\" Name=\"{n}\" SASFieldName=\"{n}\" DataType=\"{t}\" Length=\"{len}\"><Description><TranslatedText xml:lang=\"en\">{l}</TranslatedText></Description>{codelist_ref}<def:Origin Type=\"Derived\"><Description><TranslatedText xml:lang=\"en\">CSV column {c}{cut}</TranslatedText></Description></def:Origin></ItemDef>\n",
                m = xml(&d.member), n = xml(&v.name), t = if v.numeric { "float" } else { "text" }, len = v.length,
                l = xml(&v.label), c = xml(&v.column),
                cut = if v.cut_values > 0 { format!("; {} values longer than 200 bytes cut in the .xpt", v.cut_values) } else { String::new() }
            ));
        }
    }
    let used: std::collections::BTreeSet<&str> =
        described.iter().flat_map(|d| d.vars.iter().map(|v| v.column.as_str())).collect();
    for (name, codes) in coded.iter().filter(|(n, _)| used.contains(n.as_str())) {
        x.push_str(&format!("<CodeList OID=\"CL.{n}\" Name=\"{n}\" DataType=\"text\">\n", n = xml(name)));
        for (code, label) in codes {
            x.push_str(&format!(
                "<CodeListItem CodedValue=\"{}\"><Decode><TranslatedText xml:lang=\"en\">{}</TranslatedText></Decode></CodeListItem>\n",
                xml(code),
                xml(label)
            ));
        }
        x.push_str("</CodeList>\n");
    }
    x.push_str("</MetaDataVersion>\n</Study>\n</ODM>\n");
    x.into_bytes()
}

fn json_bytes(v: &Value) -> Vec<u8> {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s.into_bytes()
}

/// What `export` wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Exported {
    pub files: usize,
    pub bytes: u64,
    pub manifest_sha256: String,
    pub public_key: String,
}

/// Builds the dossier of a locked study whose required signatures are all there, and writes it
/// to `out` (through a temporary file: a failed export leaves nothing behind).
pub fn export(conn: &mut Conn, actor: &Actor, data_dir: &Path, access: &StudyAccess, out: &Path) -> Result<Exported> {
    access.require(Permission::ViewAnalyses)?;
    let study = studies::get_by_code(conn, &access.study.code)?;
    let state = lock::state(conn, study.id)?
        .ok_or_else(|| Error::Conflict(format!("{} is not locked: lock and sign it before exporting", study.code)))?;
    if !state.complete() {
        return Err(Error::Conflict(format!("{} is {}: the dossier needs every signature", study.code, state.label())));
    }
    let dict = crate::cases::dictionary::load(conn, study.id)?;
    let coded = dict.iter().map(|f| (f.name.clone(), codelist(f))).filter(|(_, c)| !c.is_empty()).collect();
    let mut out_files = Out { files: Files::new(), described: Vec::new(), coded };

    // Datasets: each distinct data source of a saved analysis, byte for byte what it hashed.
    let kept: Vec<saved::SavedRow> =
        saved::list(conn, study.id)?.into_iter().filter(|s| s.saved.status == "current").collect();
    let mut dataset_of: BTreeMap<String, String> = BTreeMap::new();
    let mut built: BTreeMap<String, dataset::Dataset> = BTreeMap::new();
    let mut endpoints: Vec<(String, String, String)> = Vec::new();
    let mut expected = Vec::new();
    let mut reported: Vec<report::Reported> = Vec::new();
    let mut commands =
        String::from("#!/bin/sh\n# Re-computes every saved analysis of the dossier from its datasets.\nset -e\n");
    for row in &kept {
        let s = &row.saved;
        let req = Request::parse(&s.query)?;
        let sources = req.sources();
        let key = serde_json::to_string(&sources).unwrap_or_default();
        if !dataset_of.contains_key(&key) {
            let mut name = String::from("datasets/analysis");
            for (k, v) in [("run", sources.run), ("campaign", sources.campaign), ("campaign", sources.campaign2)] {
                if let Some(v) = v {
                    name.push_str(&format!("-{k}{v}"));
                }
            }
            name.push_str(".csv");
            let data = dataset::build(conn, study.id, &sources)?;
            if data.sha256()? != s.input_sha256 {
                return Err(Error::Conflict(format!(
                    "saved analysis #{} was computed on other data than the study holds now: re-run and save it again",
                    s.id
                )));
            }
            let columns = data.columns.iter().map(|c| (c.name.clone(), c.description.clone())).collect();
            let member = format!("ANALYS{:02}", dataset_of.len() + 1);
            out_files.add_dataset(
                name.trim_end_matches(".csv"),
                &member,
                "Analysis dataset",
                columns,
                data.rows.clone(),
            )?;
            built.insert(key.clone(), data);
            dataset_of.insert(key.clone(), name);
        }
        let input = &dataset_of[&key];
        let analysis = req.analysis()?;
        if let crate::stats::analysis::Analysis::Survival { time, event, .. }
        | crate::stats::analysis::Analysis::Cox { time, event, .. } = &analysis
        {
            endpoints.push((key.clone(), time.clone(), event.clone()));
        }
        let level = req.level()?;
        let cmd = analyses::stats_command(&analysis, level, input);
        commands.push_str(&format!("# #{} {}\n{cmd}\n", s.id, s.title));
        expected.push(json!({
            "id": s.id, "title": s.title, "plan_item": s.plan_item, "input": input, "query": s.query,
            "analysis": analysis, "level": level, "command": cmd, "result": s.result(),
        }));
        reported.push(report::Reported { row: row.clone(), analysis, input: input.clone(), command: cmd });
    }
    if !endpoints.is_empty() {
        let (columns, rows) = adtte(&study.code, &endpoints, &built);
        out_files.add_dataset("datasets/adtte", "ADTTE", "Time-to-event (ADTTE style)", columns, rows)?;
    }

    // The subject-level dataset (ADSL spirit) and the study's slide results of every run used.
    // Every subject of the study, with the AI phenotype of their first slide in the primary run
    // (the run of the signed plan's primary analysis).
    let all_cases: Vec<crate::cases::Case> = {
        use crate::db::schema::{cases as cases_t, sites};
        use diesel::prelude::*;
        cases_t::table
            .inner_join(sites::table)
            .filter(cases_t::study_id.eq(study.id))
            .order(cases_t::display_id.asc())
            .select(crate::cases::Case::as_select())
            .load(conn)?
    };
    let primary_run = lock::checklist_sources(conn, study.id)?.run;
    let mut phenotype: BTreeMap<String, String> = BTreeMap::new();
    if let Some(run) = primary_run {
        let per_slide = dataset::build(conn, study.id, &dataset::Sources { run: Some(run), ..Default::default() })?;
        let subject = per_slide.columns.iter().position(|c| c.name == "subject_id");
        let ai = per_slide.columns.iter().position(|c| c.name == "ai_phenotype");
        if let (Some(s), Some(a)) = (subject, ai) {
            for r in &per_slide.rows {
                phenotype.entry(r[s].clone()).or_insert_with(|| r[a].clone());
            }
        }
    }
    let mut header = vec!["STUDYID".to_string(), "USUBJID".to_string()];
    header.extend(crate::cases::export::header(&dict));
    header.push("ai_phenotype".into());
    let rows: Vec<Vec<String>> = all_cases
        .iter()
        .map(|c| {
            let mut v = vec![study.code.clone(), format!("{}-{}", study.code, c.display_id)];
            v.extend(crate::cases::export::row(&dict, c, false));
            v.push(phenotype.get(&c.display_id).cloned().unwrap_or_default());
            v
        })
        .collect();
    let columns = header.into_iter().map(|h| (h.clone(), h)).collect();
    out_files.add_dataset("datasets/subjects", "SUBJECTS", "Subjects (one row per subject)", columns, rows)?;

    // Table 1 of the subjects: by AI phenotype, over the dictionary's numbers and categories.
    let table1 =
        subjects_table1(&dict, out_files.files.get("datasets/subjects.csv").map(Vec::as_slice).unwrap_or_default());
    if let Ok(result) = &table1.outcome {
        commands.push_str(&format!("# Table 1\n{}\n", table1.command));
        let (analysis, _) = table1_analysis(&dict);
        expected.push(json!({
            "id": "table1", "title": "Table 1", "plan_item": null, "input": "datasets/subjects.csv", "query": "",
            "analysis": analysis, "level": 0.95, "command": table1.command, "result": result,
        }));
    }
    out_files.files.insert("reproduce/commands.sh".into(), commands.into_bytes());
    out_files.files.insert("reproduce/expected.json".into(), json_bytes(&Value::Array(expected)));

    // Models of the runs used, and their slide-level results.
    let mut models = BTreeMap::new();
    let mut model_cards = Vec::new();
    for run_id in kept
        .iter()
        .filter_map(|r| Request::parse(&r.saved.query).ok().and_then(|q| q.run))
        .collect::<std::collections::BTreeSet<_>>()
    {
        let run = crate::biomarker::runs::get(conn, study.id, run_id)?;
        let results = crate::biomarker::runs::results(conn, run_id)?;
        use crate::export::CsvRecord;
        let columns =
            crate::biomarker::runs::SlideResultRow::HEADER.iter().map(|h| (h.to_string(), h.to_string())).collect();
        let rows = results.iter().map(CsvRecord::record).collect();
        out_files.add_dataset(
            &format!("datasets/slide_results-run{run_id}"),
            &format!("SLRES{run_id:03}"),
            "AI results per slide",
            columns,
            rows,
        )?;
        let model = crate::biomarker::registry::get(conn, &run.model())?;
        let card: Value = serde_json::from_str(&model.card).unwrap_or(Value::Null);
        out_files.files.insert(format!("model/{}.json", run.model()), json_bytes(&card));
        if !models.contains_key(&run.model()) {
            model_cards.push(card);
        }
        models.insert(run.model(), model.sha256.clone());
    }

    let Out { mut files, described, coded } = out_files;
    files.insert("datasets/define.xml".into(), define_xml(&study, &described, &coded));

    // The plan and the saved analyses.
    let plans = crate::analyses::plan::versions(conn, study.id)?;
    let plans_json: Vec<Value> = plans
        .iter()
        .map(|p| {
            json!({"version": p.version, "status": p.status, "signed_by": p.signed_name, "meaning": p.signed_meaning,
                        "signed_at": p.signed_at.map(|t| t.to_string()), "items": p.items()})
        })
        .collect();
    files.insert("analyses/plan.json".into(), json_bytes(&Value::Array(plans_json)));
    let saved_json: Vec<Value> = kept
        .iter()
        .map(|r| json!({"id": r.saved.id, "title": r.saved.title, "analysis": r.saved.analysis, "query": r.saved.query,
                        "plan_item": r.saved.plan_item, "criterion": r.criterion, "verdict": r.verdict.map(|v| v.as_str()),
                        "input_sha256": r.saved.input_sha256, "software": r.saved.software_version, "result": r.saved.result()}))
        .collect();
    files.insert("analyses/saved.json".into(), json_bytes(&Value::Array(saved_json)));

    // The audit trail, oldest first, and its verification.
    let events = audit::query::list(conn, Some(study.id), &audit::query::AuditFilter::default(), PageRequest::all())?;
    let mut bytes = Vec::new();
    crate::export::write_csv(&mut bytes, events.items.iter().rev()).map_err(Error::Internal)?;
    files.insert("audit/audit.csv".into(), bytes);
    let verification =
        serde_json::to_value(audit::verify::verify_chain(conn, &study.chain().name())?).unwrap_or(Value::Null);
    files.insert("audit/verification.json".into(), json_bytes(&verification));

    // The report, as HTML and PDF.
    let key = signing_key(data_dir).map_err(Error::Internal)?;
    let public_key = hex::encode(key.verifying_key().to_bytes());
    let document = report::build(
        conn,
        &report::Inputs {
            study: &study,
            state: &state,
            public_key: &public_key,
            analyses: &reported,
            table1: &table1,
            model_cards: &model_cards,
            audit_events: events.items.len(),
            audit_verification: &verification,
        },
    )?;
    files.insert("report/report.html".into(), crate::report::html::document(&document).into_bytes());
    files.insert("report/report.pdf".into(), crate::report::pdf::render(&document).map_err(Error::Internal)?);

    // The manifest and its signature.
    let manifest = json!({
        "format": "evidentia-dossier/1",
        "study": {"code": study.code, "title": study.title, "protocol_version": study.protocol_version},
        "software": saved::SOFTWARE,
        "snapshot_sha256": state.lock.snapshot_sha256,
        "signatures": state.signed.iter().map(|s| json!({
            "name": s.full_name, "username": s.username, "role": s.role, "meaning": s.meaning,
            "signed_at_utc": s.signed_at.to_string(), "snapshot_sha256": s.snapshot_sha256,
        })).collect::<Vec<_>>(),
        "models": models,
        "public_key": public_key,
        "files": files.iter().map(|(p, b)| json!({"path": p, "sha256": hex::encode(Sha256::digest(b)), "size": b.len()})).collect::<Vec<_>>(),
    });
    let manifest_bytes = json_bytes(&manifest);
    let signature = key.sign(&manifest_bytes);
    let manifest_sha256 = hex::encode(Sha256::digest(&manifest_bytes));
    let mut all_files: Vec<(String, Vec<u8>)> = vec![
        ("manifest.json".into(), manifest_bytes),
        ("manifest.sig".into(), format!("{}\n", hex::encode(signature.to_bytes())).into_bytes()),
    ];
    all_files.extend(files);

    let tmp = out.with_extension("zip.partial");
    let written = write_zip(&tmp, &all_files).and_then(|n| std::fs::rename(&tmp, out).map(|_| n).map_err(Into::into));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    let bytes = written.map_err(Error::Internal)?;
    // Exports are not changes to the study's data: they go to the system chain, so that the
    // study's own trail (and the next export of it) stays the same.
    crate::db::write_tx(conn, |conn| {
        audit::record(
            conn,
            audit::Change::new(audit::Chain::System, &actor.name, "export_dossier", "study", &study.code)
                .after(json!({"manifest_sha256": manifest_sha256, "files": all_files.len(), "bytes": bytes})),
        )
    })?;
    Ok(Exported { files: all_files.len(), bytes, manifest_sha256, public_key })
}

/// Table 1's parameters for the subjects dataset: grouped by AI phenotype; the dictionary's
/// numbers kept as they are (integer and number validation) as continuous, its choice fields as
/// categorical; with the codelists of the categorical ones.
fn table1_analysis(
    dict: &[crate::cases::dictionary::FieldDef],
) -> (crate::stats::analysis::Analysis, Vec<(String, String)>) {
    use crate::cases::dictionary::DeidAction;
    let kept = || dict.iter().skip(1).filter(|f| f.holds_data() && f.action == DeidAction::Keep);
    let continuous = kept()
        .filter(|f| f.field_type == "text" && matches!(f.validation.as_str(), "integer" | "number"))
        .map(|f| f.name.clone())
        .collect();
    let choice = || kept().filter(|f| matches!(f.field_type.as_str(), "dropdown" | "radio" | "yesno" | "truefalse"));
    let categorical = choice().map(|f| f.name.clone()).collect();
    let codelists = choice().map(|f| (f.name.clone(), codes_text(&codelist(f)))).collect();
    (crate::stats::analysis::Analysis::Table1 { group: "ai_phenotype".into(), continuous, categorical }, codelists)
}

/// The coded values of a choice field: its choices, or REDCap's codes for yes/no and true/false.
fn codelist(f: &crate::cases::dictionary::FieldDef) -> Vec<(String, String)> {
    match f.field_type.as_str() {
        "yesno" => vec![("1".into(), "Yes".into()), ("0".into(), "No".into())],
        "truefalse" => vec![("1".into(), "True".into()), ("0".into(), "False".into())],
        _ => f.choices().into_iter().map(|c| (c.code, c.label)).collect(),
    }
}

/// A codelist as one line: `1 = Male; 2 = Female`.
fn codes_text(codes: &[(String, String)]) -> String {
    codes.iter().map(|(c, l)| format!("{c} = {l}")).collect::<Vec<_>>().join("; ")
}

fn subjects_table1(dict: &[crate::cases::dictionary::FieldDef], subjects_csv: &[u8]) -> report::Table1 {
    let (analysis, codelists) = table1_analysis(dict);
    let command = analyses::stats_command(&analysis, 0.95, "datasets/subjects.csv");
    let outcome = crate::stats::frame::read_csv_bytes(subjects_csv.to_vec())
        .and_then(|frame| crate::stats::analysis::run(&frame, &analysis, 0.95))
        .map(|o| o.to_json())
        .map_err(|e| e.0);
    report::Table1 { outcome, command, codelists }
}

/// The time-to-event dataset in the spirit of CDISC ADTTE: one row per subject and endpoint of a
/// saved survival or Cox analysis — PARAMCD (the event column, 8 characters), PARAM, AVAL (the
/// time), CNSR (1 censored, 0 event, as ADTTE) — from the analysis dataset it ran on.
fn adtte(
    study: &str,
    endpoints: &[(String, String, String)],
    built: &BTreeMap<String, dataset::Dataset>,
) -> (Vec<(String, String)>, Vec<Vec<String>>) {
    let columns = [
        ("STUDYID", "Study identifier"),
        ("USUBJID", "Unique subject identifier"),
        ("PARAMCD", "Parameter code"),
        ("PARAM", "Parameter"),
        ("AVAL", "Analysis value (time)"),
        ("CNSR", "Censor (1 censored, 0 event)"),
    ]
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .to_vec();
    let mut seen = std::collections::BTreeSet::new();
    let mut rows = Vec::new();
    for (key, time, event) in endpoints {
        let Some(data) = built.get(key) else { continue };
        let col = |name: &str| data.columns.iter().position(|c| c.name == name);
        let (Some(s), Some(t), Some(e)) = (col("subject_id"), col(time), col(event)) else { continue };
        let paramcd: String = event.to_ascii_uppercase().chars().take(8).collect();
        for r in &data.rows {
            if r[t].trim().is_empty() || r[e].trim().is_empty() || !seen.insert((r[s].clone(), paramcd.clone())) {
                continue;
            }
            let censored = !matches!(r[e].trim().to_ascii_lowercase().as_str(), "1" | "true");
            rows.push(vec![
                study.to_string(),
                format!("{study}-{}", r[s]),
                paramcd.clone(),
                format!("{time} until {event}"),
                r[t].trim().to_string(),
                if censored { "1" } else { "0" }.to_string(),
            ]);
        }
    }
    (columns, rows)
}

/// A zip with every entry deflated, dated 1980-01-01 00:00, mode 0644, in the given order.
fn write_zip(path: &Path, files: &[(String, Vec<u8>)]) -> anyhow::Result<u64> {
    let file = std::fs::File::create(path)?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o644);
    for (name, bytes) in files {
        zip.start_file(name.as_str(), options)?;
        zip.write_all(bytes)?;
    }
    let mut inner = zip.finish()?;
    inner.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// One finding of `verify`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Problem {
    pub file: String,
    pub message: String,
}

/// Checks a dossier: the manifest's Ed25519 signature (with `public_key`, else the key the
/// manifest names — which proves integrity, not origin), every file's SHA-256 and size, no file
/// missing or added, every signature over the manifest's snapshot, and every saved statistic
/// re-computed from the datasets. Returns the problems (empty: the dossier holds).
pub fn verify(zip_path: &Path, public_key: Option<&str>) -> anyhow::Result<Vec<Problem>> {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(zip_path)?)?;
    let mut entries: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for i in 0..archive.len() {
        let mut f = archive.by_index(i)?;
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes)?;
        entries.insert(f.name().to_string(), bytes);
    }
    let mut problems = Vec::new();
    let problem = |file: &str, message: String| Problem { file: file.into(), message };
    let (Some(manifest_bytes), Some(sig_text)) = (entries.get("manifest.json"), entries.get("manifest.sig")) else {
        return Ok(vec![problem("manifest.json", "the dossier has no manifest.json or manifest.sig".into())]);
    };
    let manifest: Value = serde_json::from_slice(manifest_bytes)?;
    let key_hex = public_key
        .map(str::to_string)
        .or_else(|| manifest["public_key"].as_str().map(str::to_string))
        .unwrap_or_default();
    let key_ok = hex::decode(key_hex.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .and_then(|b| VerifyingKey::from_bytes(&b).ok());
    let sig = hex::decode(String::from_utf8_lossy(sig_text).trim())
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .map(|b| Signature::from_bytes(&b));
    match (key_ok, sig) {
        (Some(k), Some(s)) if k.verify(manifest_bytes, &s).is_ok() => {}
        (None, _) => problems.push(problem("manifest.sig", format!("'{key_hex}' is not an Ed25519 public key"))),
        _ => problems
            .push(problem("manifest.sig", "the manifest's signature does not verify with the public key".into())),
    }
    let listed: BTreeMap<String, (String, u64)> = manifest["files"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            (
                f["path"].as_str().unwrap_or("").to_string(),
                (f["sha256"].as_str().unwrap_or("").to_string(), f["size"].as_u64().unwrap_or(0)),
            )
        })
        .collect();
    for (path, (sha, size)) in &listed {
        match entries.get(path) {
            None => problems.push(problem(path, "listed in the manifest but missing".into())),
            Some(b) if hex::encode(Sha256::digest(b)) != *sha || b.len() as u64 != *size => {
                problems.push(problem(path, "its SHA-256 or size differs from the manifest".into()))
            }
            Some(_) => {}
        }
    }
    for path in entries.keys().filter(|p| *p != "manifest.json" && *p != "manifest.sig" && !listed.contains_key(*p)) {
        problems.push(problem(path, "not listed in the manifest".into()));
    }
    let snapshot = manifest["snapshot_sha256"].as_str().unwrap_or("");
    for s in manifest["signatures"].as_array().into_iter().flatten() {
        if s["snapshot_sha256"].as_str() != Some(snapshot) {
            problems.push(problem("manifest.json", format!("the signature of {} is over another snapshot", s["name"])));
        }
    }
    // Re-compute every saved statistic from the datasets in the dossier.
    let expected: Vec<Value> =
        entries.get("reproduce/expected.json").map(|b| serde_json::from_slice(b)).transpose()?.unwrap_or_default();
    for e in &expected {
        let input = e["input"].as_str().unwrap_or("");
        let Some(data) = entries.get(input) else {
            problems.push(problem(input, "the dataset of a saved analysis is missing".into()));
            continue;
        };
        let analysis: crate::stats::analysis::Analysis = serde_json::from_value(e["analysis"].clone())?;
        let level = e["level"].as_f64().unwrap_or(0.95);
        let frame = crate::stats::frame::read_csv_bytes(data.clone()).map_err(|e| anyhow::anyhow!(e.0))?;
        match crate::stats::analysis::run(&frame, &analysis, level) {
            Ok(o) => {
                let got = analyses::leaves(&o.to_json());
                for (path, want) in analyses::leaves(&e["result"]) {
                    let now = got.iter().find(|(p, _)| *p == path).map(|(_, v)| v.clone()).unwrap_or(Value::Null);
                    let same = match (want.as_f64(), now.as_f64()) {
                        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(1.0),
                        _ => want == now,
                    };
                    if !same {
                        problems.push(problem(
                            "reproduce/expected.json",
                            format!("analysis #{} {path}: the report says {want}, the data gives {now}", e["id"]),
                        ));
                    }
                }
            }
            Err(err) => problems.push(problem(input, format!("analysis #{} no longer computes: {}", e["id"], err.0))),
        }
    }
    Ok(problems)
}
