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
use crate::audit::{self, Action, Entity};
use crate::auth::permissions::{Permission, StudyAccess};
use crate::auth::Actor;
use crate::db::Conn;
use crate::error::{Error, Result};
use crate::report::html::esc;
use crate::studies::{self, lock};

/// The installation's signing key: 32 random bytes (hex, mode 0600) in the keys' folder
/// ([`crate::secrets::dir`]), created on first use, checked against the database's record of it.
pub fn signing_key(conn: &mut Conn, data_dir: &Path) -> anyhow::Result<SigningKey> {
    Ok(SigningKey::from_bytes(&crate::secrets::load_checked(conn, data_dir, "dossier-signing")?))
}

/// The public key, hex: printed in the report, served at `/api/v1/signing-key`.
pub fn public_key_hex(conn: &mut Conn, data_dir: &Path) -> anyhow::Result<String> {
    Ok(hex::encode(signing_key(conn, data_dir)?.verifying_key().to_bytes()))
}

/// A writer that hashes and counts what passes through it.
struct Hashing<'a, W: Write> {
    inner: &'a mut W,
    sha: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn csv_bytes(header: Vec<String>, rows: Vec<Vec<String>>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    crate::export::write_rows(&mut out, header, rows).map_err(Error::Internal)?;
    Ok(out)
}

fn io_error(e: impl Into<anyhow::Error>) -> Error {
    Error::Internal(e.into())
}

/// The zip being written: each file goes in as soon as it is made (deflated, dated 1980-01-01
/// 00:00, mode 0644: the same study gives the same bytes), and only its path, SHA-256 and size
/// are kept, for the manifest.
struct ZipOut {
    zip: zip::ZipWriter<std::io::BufWriter<std::fs::File>>,
    listed: Vec<(String, String, u64)>,
}

impl ZipOut {
    fn create(path: &Path) -> Result<ZipOut> {
        let file = std::fs::File::create(path).map_err(io_error)?;
        Ok(ZipOut { zip: zip::ZipWriter::new(std::io::BufWriter::new(file)), listed: Vec::new() })
    }

    /// Adds a file whose bytes `f` writes.
    fn add_with(&mut self, path: &str, f: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(0o644);
        self.zip.start_file(path, options).map_err(io_error)?;
        let mut h = Hashing { inner: &mut self.zip, sha: Sha256::new(), bytes: 0 };
        f(&mut h)?;
        let (sha, bytes) = (hex::encode(h.sha.finalize()), h.bytes);
        self.listed.push((path.to_string(), sha, bytes));
        Ok(())
    }

    fn add(&mut self, path: &str, bytes: &[u8]) -> Result<()> {
        self.add_with(path, |w| w.write_all(bytes).map_err(io_error))
    }

    fn finish(self) -> Result<()> {
        let mut inner = self.zip.finish().map_err(io_error)?;
        inner.flush().map_err(io_error)
    }
}

/// Visits a dataset's rows (it may be called more than once: a streamed dataset is read once to
/// learn its columns' types and lengths, then again to write them).
type Scan<'a> = dyn FnMut(&mut dyn FnMut(&[String]) -> Result<()>) -> Result<()> + 'a;

/// The dossier being written, and the datasets' descriptions for `define.xml`.
struct Out {
    zip: ZipOut,
    described: Vec<Described>,
    /// The codelist (code, label) of each coded column.
    coded: BTreeMap<String, Vec<(String, String)>>,
}

impl Out {
    /// Adds a dataset as `<stem>.csv`, as SAS XPORT `<stem>.xpt` (member `member`) and its
    /// description `<stem>.variables.csv` (column, XPORT name, label, type, length, values cut,
    /// codelist), streaming its rows from `scan` twice: the CSV while learning each column's type
    /// and length (each row also goes to `tee`), then the XPORT.
    fn add_dataset(
        &mut self,
        stem: &str,
        member: &str,
        label: &str,
        columns: Vec<(String, String)>,
        scan: &mut Scan,
        tee: &mut dyn FnMut(&[String]) -> Result<()>,
    ) -> Result<()> {
        let mut describer = xpt::Describer::new(&columns);
        let mut rows = 0usize;
        self.zip.add_with(&format!("{stem}.csv"), |w| {
            let mut csv = csv::Writer::from_writer(w);
            csv.write_record(columns.iter().map(|(c, _)| c)).map_err(io_error)?;
            scan(&mut |r| {
                describer.push(r);
                rows += 1;
                tee(r)?;
                csv.write_record(r).map_err(io_error)
            })?;
            csv.flush().map_err(io_error)
        })?;
        let vars = describer.finish();
        self.zip.add_with(&format!("{stem}.xpt"), |mut w| {
            let mut x = xpt::Writer::start(&mut w, member, label, &vars).map_err(io_error)?;
            scan(&mut |r| x.row(r).map_err(io_error))?;
            x.finish().map_err(io_error)
        })?;
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
        self.zip.add(&format!("{stem}.variables.csv"), &csv_bytes(desc_header, description)?)?;
        self.described.push(Described {
            stem: stem.to_string(),
            member: member.to_string(),
            label: label.to_string(),
            rows,
            vars,
        });
        Ok(())
    }

    /// A dataset held in memory.
    fn add_rows(
        &mut self,
        stem: &str,
        member: &str,
        label: &str,
        columns: Vec<(String, String)>,
        rows: &[Vec<String>],
    ) -> Result<()> {
        self.add_dataset(stem, member, label, columns, &mut |emit| rows.iter().try_for_each(|r| emit(r)), &mut |_| {
            Ok(())
        })
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
        esc(&study.code), esc(saved::SOFTWARE), esc(&study.title), esc(&study.protocol_version)
    ));
    for d in described {
        let file = d.stem.rsplit('/').next().unwrap_or(&d.stem);
        x.push_str(&format!(
            "<ItemGroupDef OID=\"IG.{m}\" Name=\"{m}\" SASDatasetName=\"{m}\" Repeating=\"Yes\" Purpose=\"Analysis\" def:Structure=\"{rows} records\">\n<Description><TranslatedText xml:lang=\"en\">{l}</TranslatedText></Description>\n",
            m = esc(&d.member), rows = d.rows, l = esc(&d.label)
        ));
        for (i, v) in d.vars.iter().enumerate() {
            x.push_str(&format!(
                "<ItemRef ItemOID=\"IT.{}.{}\" OrderNumber=\"{}\" Mandatory=\"No\"/>\n",
                esc(&d.member),
                esc(&v.name),
                i + 1
            ));
        }
        x.push_str(&format!("<def:leaf ID=\"LF.{m}\" xlink:href=\"{f}.xpt\"><def:title>{f}.xpt</def:title></def:leaf>\n</ItemGroupDef>\n", m = esc(&d.member), f = esc(file)));
    }
    for d in described {
        for v in &d.vars {
            let codelist_ref = if coded.contains_key(&v.column) {
                format!("<CodeListRef CodeListOID=\"CL.{}\"/>", esc(&v.column))
            } else {
                String::new()
            };
            x.push_str(&format!(
                "<ItemDef OID=\"IT.{m}.{n}\" Name=\"{n}\" SASFieldName=\"{n}\" DataType=\"{t}\" Length=\"{len}\"><Description><TranslatedText xml:lang=\"en\">{l}</TranslatedText></Description>{codelist_ref}<def:Origin Type=\"Derived\"><Description><TranslatedText xml:lang=\"en\">CSV column {c}{cut}</TranslatedText></Description></def:Origin></ItemDef>\n",
                m = esc(&d.member), n = esc(&v.name), t = if v.numeric { "float" } else { "text" }, len = v.length,
                l = esc(&v.label), c = esc(&v.column),
                cut = if v.cut_values > 0 { format!("; {} values longer than 200 bytes cut in the .xpt", v.cut_values) } else { String::new() }
            ));
        }
    }
    let used: std::collections::BTreeSet<&str> =
        described.iter().flat_map(|d| d.vars.iter().map(|v| v.column.as_str())).collect();
    for (name, codes) in coded.iter().filter(|(n, _)| used.contains(n.as_str())) {
        x.push_str(&format!("<CodeList OID=\"CL.{n}\" Name=\"{n}\" DataType=\"text\">\n", n = esc(name)));
        for (code, label) in codes {
            x.push_str(&format!(
                "<CodeListItem CodedValue=\"{}\"><Decode><TranslatedText xml:lang=\"en\">{}</TranslatedText></Decode></CodeListItem>\n",
                esc(code),
                esc(label)
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

/// What `export` wrote (and what an export job gives).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Exported {
    pub files: usize,
    pub bytes: u64,
    pub manifest_sha256: String,
    pub public_key: String,
}

/// The export job's parameters: the study, and who asked (the export runs with their access).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct DossierParams {
    pub study: String,
    pub user: String,
}

impl crate::jobs::JobParams for DossierParams {
    const KIND: crate::jobs::JobKind = crate::jobs::JobKind::DossierExport;
    type Output = Exported;
}

/// The storage key of the dossier the export job `job_id` wrote (`exports/dossiers/…`: in the
/// data dir on file storage, in the bucket on object storage, so any web node serves it).
pub fn job_key(job_id: i32) -> String {
    format!("exports/dossiers/dossier-job{job_id}.zip")
}

/// The study's lock (its snapshot hash re-computed and compared), refused unless locked with
/// every signature: what a dossier stands for.
fn signed_lock(conn: &mut Conn, study: &studies::Study) -> Result<lock::SignatureState> {
    let state = lock::state(conn, study.id)?
        .ok_or_else(|| Error::Conflict(format!("{} is not locked: lock and sign it before exporting", study.code)))?;
    if !state.complete() {
        return Err(Error::Conflict(format!("{} is {}: the dossier needs every signature", study.code, state.label())));
    }
    Ok(state)
}

/// Queues the export of a locked study's dossier as a job, refused at once when the study is
/// not locked and signed (the job checks again).
pub fn start_export(conn: &mut Conn, actor: &Actor, access: &StudyAccess) -> Result<crate::jobs::Job> {
    access.require(Permission::ViewAnalyses)?;
    let study = studies::get_by_code(conn, &access.study.code)?;
    signed_lock(conn, &study)?;
    // Audited on the system chain, like the export itself (see `jobs::enqueue`).
    crate::jobs::enqueue(
        conn,
        actor,
        Some(&study),
        &DossierParams { study: study.code.clone(), user: actor.name.clone() },
    )
}

/// The study's latest dossier exports, newest first.
pub fn jobs(conn: &mut Conn, study_id: crate::studies::StudyId) -> Result<Vec<crate::jobs::Job>> {
    use crate::db::schema::jobs as jobs_t;
    use diesel::prelude::*;
    Ok(jobs_t::table
        .filter(jobs_t::study_id.eq(study_id))
        .filter(jobs_t::kind.eq(crate::jobs::JobKind::DossierExport))
        .order(jobs_t::id.desc())
        .limit(5)
        .select(crate::jobs::Job::as_select())
        .load(conn)?)
}

/// Exports a dossier as a job: the study and the user who asked are its parameters; progress is
/// reported per step; the zip stays in `exports/dossiers/` for download.
pub struct DossierJob;

impl crate::jobs::kinds::JobHandler for DossierJob {
    fn reads_only(&self) -> bool {
        true
    }

    fn run(&self, ctx: &crate::jobs::kinds::JobContext) -> anyhow::Result<Value> {
        let params: DossierParams = ctx.job.params()?;
        let (study, username) = (params.study.as_str(), params.user.as_str());
        let mut conn = ctx.conn()?;
        let actor = crate::auth::users::actor_for_username(&mut conn, username).map_err(|e| anyhow::anyhow!("{e}"))?;
        let access =
            crate::auth::permissions::study_access(&mut conn, &actor, study).map_err(|e| anyhow::anyhow!("{e}"))?;
        // Built on this node's disk, then stored whole (a half-written dossier is never stored).
        let tmp_dir = ctx.data_dir.join("tmp");
        crate::tmp::ensure_private(&tmp_dir)?;
        let out = tmp_dir.join(format!("dossier-job{}.zip", ctx.job.id));
        let mut cancelled = false;
        let exported = export(&mut conn, &actor, &ctx.data_dir, &access, &out, &mut |done, total, what| {
            let r = ctx.progress(done, total, what, None);
            cancelled = r.as_ref().is_err_and(|e| e.is::<crate::jobs::kinds::Cancelled>());
            r
        });
        let exported = exported.and_then(|e| {
            ctx.storage.put_file_moving(&job_key(ctx.job.id), &out).map_err(|e| Error::Internal(e.into()))?;
            Ok(e)
        });
        let _ = std::fs::remove_file(&out);
        match exported {
            Ok(e) => crate::jobs::output::<DossierParams>(&e),
            // The worker records a cancelled job as cancelled, not failed.
            Err(_) if cancelled => Err(crate::jobs::kinds::Cancelled.into()),
            Err(e) => Err(anyhow::anyhow!("{e}")),
        }
    }
}

/// Reports an export's progress: (steps done, steps in all, what is being written). An error
/// stops the export (a cancelled job).
pub type Progress<'a> = dyn FnMut(i64, i64, &str) -> anyhow::Result<()> + 'a;

/// Cases are read in pages of this many: the subject dataset streams, whatever the study's size.
const CASE_PAGE: i64 = 2_000;

/// Builds the dossier of a locked study whose required signatures are all there, and writes it
/// to `out` (through a temporary file: a failed export leaves nothing behind). Every file goes
/// into the zip as it is made; the large ones (subjects, audit trail) stream from the database
/// in pages, so memory stays bounded whatever the study's size.
pub fn export(
    conn: &mut Conn,
    actor: &Actor,
    data_dir: &Path,
    access: &StudyAccess,
    out: &Path,
    progress: &mut Progress,
) -> Result<Exported> {
    access.require(Permission::ViewAnalyses)?;
    let study = studies::get_by_code(conn, &access.study.code)?;
    // A temporary file next to `out`, removed on any failure (a panic too), renamed at the end.
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    remove_abandoned_partials(parent);
    let tmp = tempfile::Builder::new()
        .prefix(&format!("{PARTIAL_PREFIX}{}-", std::process::id()))
        .suffix(PARTIAL_SUFFIX)
        .tempfile_in(parent)
        .map_err(io_error)?;
    // One read transaction on one snapshot: the lock's state (its snapshot hash re-computed and
    // compared) and every file see the same data, so what is exported is what was signed.
    // The key first: its first use records its fingerprint, which the read-only snapshot cannot.
    let key = signing_key(conn, data_dir).map_err(Error::Internal)?;
    let (manifest_sha256, files, public_key) = crate::db::read_tx(conn, |conn| {
        let state = signed_lock(conn, &study)?;
        write_dossier(conn, data_dir, &key, &study, &state, tmp.path(), progress)
    })?;
    tmp.persist(out).map_err(|e| io_error(e.error))?;
    let bytes = std::fs::metadata(out).map_err(io_error)?.len();
    // Exports are not changes to the study's data: they go to the system chain, so that the
    // study's own trail (and the next export of it) stays the same.
    crate::db::write_tx(conn, |conn| {
        audit::record(
            conn,
            audit::Change::new(audit::Chain::System, &actor.name, Action::ExportDossier, Entity::Study, &study.code)
                .after(json!({"manifest_sha256": manifest_sha256, "files": files, "bytes": bytes})),
        )
    })?;
    Ok(Exported { files, bytes, manifest_sha256, public_key })
}

const PARTIAL_PREFIX: &str = ".dossier-";
const PARTIAL_SUFFIX: &str = ".partial";

/// Removes the temporary files of exports into `dir` whose process has gone (killed, or the
/// machine stopped): `.dossier-<pid>-….partial` where no process `<pid>` runs. A file whose
/// process cannot be told (another naming, no `/proc`) is left unless it is a day old.
fn remove_abandoned_partials(dir: &Path) {
    let running = |pid: u32| Path::new("/proc").join(pid.to_string()).exists();
    let have_proc = Path::new("/proc/self").exists();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(middle) = name.strip_prefix(PARTIAL_PREFIX).and_then(|n| n.strip_suffix(PARTIAL_SUFFIX)) else {
            continue;
        };
        let pid = middle.split('-').next().and_then(|p| p.parse::<u32>().ok());
        let abandoned = match pid {
            Some(pid) if have_proc => !running(pid),
            _ => entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > std::time::Duration::from_secs(24 * 3600)),
        };
        if abandoned && entry.file_type().is_ok_and(|t| t.is_file()) {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => tracing::info!(file = %name, "removed an interrupted dossier export"),
                Err(e) => tracing::warn!(file = %name, error = %e, "could not remove an interrupted dossier export"),
            }
        }
    }
}

/// Writes the zip; returns the manifest's SHA-256, the number of files and the public key.
fn write_dossier(
    conn: &mut Conn,
    data_dir: &Path,
    key: &SigningKey,
    study: &studies::Study,
    state: &lock::SignatureState,
    path: &Path,
    progress: &mut Progress,
) -> Result<(String, usize, String)> {
    let dict = crate::cases::dictionary::load(conn, study.id)?;
    let coded = dict.iter().map(|f| (f.name.clone(), codelist(f))).filter(|(_, c)| !c.is_empty()).collect();
    let mut out = Out { zip: ZipOut::create(path)?, described: Vec::new(), coded };
    let kept: Vec<saved::SavedRow> =
        saved::list(conn, study.id)?.into_iter().filter(|s| s.saved.status == saved::SavedStatus::Current).collect();
    let runs: std::collections::BTreeSet<i32> =
        kept.iter().filter_map(|r| Request::parse(&r.saved.query).ok().and_then(|q| q.run)).collect();
    let total = kept.len() as i64 + runs.len() as i64 + 6;
    // Each step reports the steps done before it; the end reports them all.
    let mut step = 0i64;
    let mut tick = |what: &str| -> Result<()> {
        let r = progress(step.min(total), total, what).map_err(Error::Internal);
        step += 1;
        r
    };

    // Datasets: each distinct data source of a saved analysis, byte for byte what it hashed.
    let mut dataset_of: BTreeMap<String, String> = BTreeMap::new();
    let mut built: BTreeMap<String, dataset::Dataset> = BTreeMap::new();
    let mut endpoints: Vec<(String, String, String)> = Vec::new();
    let mut expected = Vec::new();
    let mut reported: Vec<report::Reported> = Vec::new();
    let mut commands =
        String::from("#!/bin/sh\n# Re-computes every saved analysis of the dossier from its datasets.\nset -e\n");
    for row in &kept {
        let s = &row.saved;
        tick(&format!("analysis #{} {}", s.id, s.title))?;
        let req = Request::parse(&s.query)?;
        let sources = req.sources();
        let key = dataset_key(&sources);
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
                    "saved analysis #{} “{}” was computed on other data than the study holds now (cases, slides, AI \
                     results or reads changed after it was saved): re-run it on the Analyses page and save it again \
                     (the new save supersedes it), or retire it; a locked study must first be unlocked by an \
                     administrator",
                    s.id, s.title
                )));
            }
            let columns = data.columns.iter().map(|c| (c.name.clone(), c.description.clone())).collect();
            let member = format!("ANALYS{:02}", dataset_of.len() + 1);
            out.add_rows(name.trim_end_matches(".csv"), &member, "Analysis dataset", columns, &data.rows)?;
            built.insert(key.clone(), data);
            dataset_of.insert(key.clone(), name);
        }
        let input = &dataset_of[&key];
        let analysis = s.analysis()?;
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
            "criterion": row.criterion, "verdict": row.verdict.map(|v| v.as_str()),
        }));
        reported.push(report::Reported { row: row.clone(), analysis, input: input.clone(), command: cmd });
    }
    if !endpoints.is_empty() {
        let (columns, rows) = adtte(&study.code, &endpoints, &built);
        out.add_rows("datasets/adtte", "ADTTE", "Time-to-event (ADTTE style)", columns, &rows)?;
    }

    // The subject-level dataset (ADSL spirit): every subject of the study, with the AI phenotype
    // of their first slide in the primary run (the run of the signed plan's primary analysis),
    // read from the database a page at a time.
    tick("subjects")?;
    let signed_plan = crate::analyses::plan::signed(conn, study.id)?;
    let sources = lock::plan_sources(signed_plan.as_ref());
    let primary_run = sources.run;
    let phenotype = primary_phenotypes(conn, study.id, primary_run, &built)?;
    drop(built);
    let mut header = vec!["STUDYID".to_string(), "USUBJID".to_string()];
    header.extend(crate::cases::export::header(&dict));
    header.push("ai_phenotype".into());
    let labels: BTreeMap<&str, String> =
        dict.iter().map(|f| (f.name.as_str(), crate::report::html::strip_tags(&f.label))).collect();
    let columns: Vec<(String, String)> = header
        .into_iter()
        .map(|h| {
            let base = h.split("___").next().unwrap_or(&h);
            let label = labels.get(base).filter(|l| !l.is_empty()).cloned().unwrap_or_else(|| h.clone());
            (h, label)
        })
        .collect();
    let mut subjects_scan = |emit: &mut dyn FnMut(&[String]) -> Result<()>| -> Result<()> {
        let mut after = String::new();
        loop {
            let page = cases_after(conn, study.id, &after)?;
            let Some(last) = page.last() else { return Ok(()) };
            after = last.display_id.clone();
            for c in &page {
                let mut v = vec![study.code.clone(), format!("{}-{}", study.code, c.display_id)];
                v.extend(crate::cases::export::row(&dict, c, false));
                v.push(phenotype.get(&c.display_id).cloned().unwrap_or_default());
                emit(&v)?;
            }
        }
    };
    // Disposition and Table 1 are computed from the same rows, written (only the columns they
    // use) to a temporary CSV for the statistics engine while the dataset is.
    let tmp_dir = data_dir.join("tmp");
    std::fs::create_dir_all(&tmp_dir).map_err(io_error)?;
    let scratch = tempfile::NamedTempFile::new_in(&tmp_dir).map_err(io_error)?;
    let used: Vec<String> = match table1_analysis(&dict).0 {
        crate::stats::analysis::Analysis::Table1 { continuous, categorical, .. } => {
            continuous.into_iter().chain(categorical).collect()
        }
        _ => Vec::new(),
    };
    let wanted: Vec<usize> = (0..columns.len())
        .filter(|&k| {
            ["site", "status", "ai_phenotype"].contains(&columns[k].0.as_str()) || used.contains(&columns[k].0)
        })
        .collect();
    {
        let mut csv = csv::Writer::from_writer(std::io::BufWriter::new(scratch.as_file()));
        csv.write_record(wanted.iter().map(|&k| &columns[k].0)).map_err(io_error)?;
        out.add_dataset(
            "datasets/subjects",
            "SUBJECTS",
            "Subjects (one row per subject)",
            columns.clone(),
            &mut subjects_scan,
            &mut |r| csv.write_record(wanted.iter().map(|&k| &r[k])).map_err(io_error),
        )?;
        csv.flush().map_err(io_error)?;
    }
    let subject_tables = subjects_tables(&dict, scratch.path());
    drop(scratch);
    for (id, title, c) in
        [("disposition", "Disposition", &subject_tables.disposition), ("table1", "Table 1", &subject_tables.table1)]
    {
        if let Ok(result) = &c.outcome {
            commands.push_str(&format!("# {title}\n{}\n", c.command));
            expected.push(json!({
                "id": id, "title": title, "plan_item": null, "input": "datasets/subjects.csv", "query": "",
                "analysis": c.analysis, "level": 0.95, "command": c.command, "result": result,
            }));
        }
    }
    // Every read of the study (all campaigns), one row per read with the schema's fields.
    tick("reads")?;
    let def = crate::annotations::schema::current(conn, study.id)?.map(|s| s.definition()).unwrap_or_default();
    let all_reads = crate::annotations::reads::of_study(conn, study.id)?;
    if !all_reads.is_empty() {
        let (header, rows) = crate::annotations::export::csv_rows(&def, &all_reads);
        drop(all_reads);
        let columns = header.into_iter().map(|h| (h.clone(), h)).collect();
        out.add_rows("datasets/reads", "READS", "Reads (one row per read)", columns, &rows)?;
    }
    commands.push_str(
        "# Or all of them in one run, each dataset read once, against the numbers of this dossier:\n\
         # evidentia stats batch reproduce/expected.json\n",
    );
    out.zip.add("reproduce/commands.sh", commands.as_bytes())?;
    out.zip.add("reproduce/expected.json", &json_bytes(&Value::Array(expected)))?;

    // Models of the runs used, and their slide-level results.
    let mut models = BTreeMap::new();
    let mut model_cards = Vec::new();
    for run_id in runs {
        tick(&format!("AI results of run {run_id}"))?;
        let run = crate::biomarker::runs::get(conn, study.id, run_id)?;
        let results = crate::biomarker::runs::results(conn, run_id)?;
        use crate::export::CsvRecord;
        let columns =
            crate::biomarker::runs::SlideResultRow::HEADER.iter().map(|h| (h.to_string(), h.to_string())).collect();
        let rows: Vec<Vec<String>> = results.iter().map(CsvRecord::record).collect();
        drop(results);
        out.add_rows(
            &format!("datasets/slide_results-run{run_id}"),
            &format!("SLR{run_id:05}"),
            "AI results per slide",
            columns,
            &rows,
        )?;
        let model = crate::biomarker::registry::get(conn, &run.model())?;
        let card: Value = serde_json::from_str(&model.card).unwrap_or(Value::Null);
        if !models.contains_key(&run.model()) {
            out.zip.add(&format!("model/{}.json", run.model()), &json_bytes(&card))?;
            model_cards.push(card);
        }
        models.insert(run.model(), model.sha256.clone());
    }
    // A longitudinal study's records, every event's, as REDCap's flat export, and its design in
    // REDCap's files (the datasets above hold each subject's first-event values).
    let design = crate::cases::events::load(conn, study.id)?;
    if !design.is_empty() {
        let (flat, _) = crate::cases::export::redcap_flat(conn, study.id, &Default::default())?;
        out.zip.add("records/records.csv", &flat)?;
        for (name, write) in crate::cases::events::FILES {
            out.zip.add(&format!("records/design/{name}"), &write(&design).map_err(Error::Internal)?)?;
        }
    }
    let define = define_xml(study, &out.described, &out.coded);
    out.zip.add("datasets/define.xml", &define)?;

    // The plan and the saved analyses.
    tick("analysis plan")?;
    let plans = crate::analyses::plan::versions(conn, study.id)?;
    let plans_json: Vec<Value> = plans
        .iter()
        .map(|p| {
            json!({"version": p.version, "status": p.status, "signed_by": p.signed_name, "meaning": p.signed_meaning,
                        "signed_at": p.signed_at.map(|t| t.to_string()), "items": p.items()})
        })
        .collect();
    out.zip.add("analyses/plan.json", &json_bytes(&Value::Array(plans_json)))?;
    let saved_json: Vec<Value> = kept
        .iter()
        .map(|r| json!({"id": r.saved.id, "title": r.saved.title, "analysis": r.saved.analysis, "query": r.saved.query,
                        "plan_item": r.saved.plan_item, "criterion": r.criterion, "verdict": r.verdict.map(|v| v.as_str()),
                        "input_sha256": r.saved.input_sha256, "software": r.saved.software_version, "result": r.saved.result()}))
        .collect();
    out.zip.add("analyses/saved.json", &json_bytes(&Value::Array(saved_json)))?;

    // The audit trail, oldest first (pages read newest-last), and its verification.
    tick("audit trail")?;
    let audit_events = audit_csv(conn, study.id, &mut out.zip)?;
    let verification =
        serde_json::to_value(audit::verify::verify_chain(conn, &study.chain().name())?).unwrap_or(Value::Null);
    out.zip.add("audit/verification.json", &json_bytes(&verification))?;

    // The report, as HTML and PDF.
    tick("report")?;
    let public_key = hex::encode(key.verifying_key().to_bytes());
    let document = report::build(
        conn,
        &report::Inputs {
            study,
            state,
            public_key: &public_key,
            analyses: &reported,
            subjects: &subject_tables,
            model_cards: &model_cards,
            audit_events,
            audit_verification: &verification,
            signed_plan: signed_plan.as_ref(),
            sources: &sources,
        },
    )?;
    out.zip.add("report/report.html", crate::report::html::document(&document).as_bytes())?;
    out.zip.add("report/report.pdf", &crate::report::pdf::render(&document).map_err(Error::Internal)?)?;
    out.zip.add(report::THIRD_PARTY_FILE, &report::third_party_csv()?)?;

    // The manifest and its signature, last.
    tick("manifest")?;
    let mut manifest = json!({
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
        "files": out.zip.listed.iter().map(|(p, sha, n)| json!({"path": p, "sha256": sha, "size": n})).collect::<Vec<_>>(),
    });
    // A lock re-hashed from the first form: signatures made before carry its first hash.
    if let Some(legacy) = &state.lock.legacy_sha256 {
        manifest["legacy_snapshot_sha256"] = json!(legacy);
    }
    let manifest_bytes = json_bytes(&manifest);
    let signature = key.sign(&manifest_bytes);
    let files = out.zip.listed.len() + 2;
    out.zip.add("manifest.json", &manifest_bytes)?;
    out.zip.add("manifest.sig", format!("{}\n", hex::encode(signature.to_bytes())).as_bytes())?;
    out.zip.finish()?;
    progress(total, total, "done").map_err(Error::Internal)?;
    Ok((hex::encode(Sha256::digest(&manifest_bytes)), files, public_key))
}

/// One page of the study's cases after display id `after`, in display-id order.
fn cases_after(conn: &mut Conn, study_id: crate::studies::StudyId, after: &str) -> Result<Vec<crate::cases::Case>> {
    use crate::db::schema::{cases as cases_t, sites};
    use diesel::prelude::*;
    Ok(cases_t::table
        .inner_join(sites::table)
        .filter(cases_t::study_id.eq(study_id))
        .filter(cases_t::display_id.gt(after))
        .order(cases_t::display_id.asc())
        .limit(CASE_PAGE)
        .select(crate::cases::Case::as_select())
        .load(conn)?)
}

/// The key of a data source's dataset among those already built.
fn dataset_key(sources: &dataset::Sources) -> String {
    serde_json::to_string(sources).unwrap_or_default()
}

/// Each subject's AI phenotype in `run` (their first slide's), from the run's per-slide dataset
/// (`built` when an analysis already used it, keyed as there).
fn primary_phenotypes(
    conn: &mut Conn,
    study_id: crate::studies::StudyId,
    run: Option<i32>,
    built: &BTreeMap<String, dataset::Dataset>,
) -> Result<BTreeMap<String, String>> {
    let mut phenotype = BTreeMap::new();
    if let Some(run) = run {
        let sources = dataset::Sources { run: Some(run), ..Default::default() };
        let fresh;
        let per_slide = match built.get(&dataset_key(&sources)) {
            Some(d) => d,
            None => {
                fresh = dataset::build(conn, study_id, &sources)?;
                &fresh
            }
        };
        let subject = per_slide.columns.iter().position(|c| c.name == "subject_id");
        let ai = per_slide.columns.iter().position(|c| c.name == "ai_phenotype");
        if let (Some(s), Some(a)) = (subject, ai) {
            for r in &per_slide.rows {
                phenotype.entry(r[s].clone()).or_insert_with(|| r[a].clone());
            }
        }
    }
    Ok(phenotype)
}

/// Writes `audit/audit.csv`, oldest event first, a page at a time; returns how many events.
fn audit_csv(conn: &mut Conn, study_id: crate::studies::StudyId, zip: &mut ZipOut) -> Result<usize> {
    use crate::db::schema::audit_events;
    use crate::export::CsvRecord;
    use diesel::prelude::*;
    const PAGE: i64 = 5_000;
    let mut total = 0;
    zip.add_with("audit/audit.csv", |w| {
        let mut csv = csv::Writer::from_writer(w);
        csv.write_record(audit::AuditEvent::HEADER).map_err(io_error)?;
        // Oldest first, a page at a time after the last id written (no count, no offset scan).
        let mut after = 0;
        loop {
            let events: Vec<audit::AuditEvent> = audit_events::table
                .filter(audit_events::study_id.eq(study_id))
                .filter(audit_events::id.gt(after))
                .order(audit_events::id.asc())
                .limit(PAGE)
                .select(audit::AuditEvent::as_select())
                .load(conn)?;
            let Some(last) = events.last() else { break };
            after = last.id;
            total += events.len();
            for e in &events {
                let cells = e.record();
                csv.write_record(cells.iter().map(|c| crate::export::defuse_formula(c))).map_err(io_error)?;
            }
        }
        csv.flush().map_err(io_error)
    })?;
    Ok(total)
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
        .filter(|f| {
            f.field_type == crate::cases::dictionary::FieldType::Text
                && matches!(f.validation.as_str(), "integer" | "number")
        })
        .map(|f| f.name.clone())
        .collect();
    let choice = || kept().filter(|f| matches!(f.field_type.as_str(), "dropdown" | "radio" | "yesno" | "truefalse"));
    let categorical = choice().map(|f| f.name.clone()).collect();
    let codelists = choice().map(|f| (f.name.clone(), codes_text(&codelist(f)))).collect();
    (crate::stats::analysis::Analysis::Table1 { group: "ai_phenotype".into(), continuous, categorical }, codelists)
}

/// Table 1's variables as people read them: the dictionary's labels, and each choice field's
/// levels by label in the dictionary's order.
fn table1_labels(
    dict: &[crate::cases::dictionary::FieldDef],
) -> BTreeMap<String, crate::report::results::VariableLabels> {
    dict.iter()
        .filter(|f| f.holds_data())
        .map(|f| {
            let label = if f.label.trim().is_empty() { f.name.clone() } else { f.label.trim().to_string() };
            (f.name.clone(), crate::report::results::VariableLabels { label, levels: codelist(f) })
        })
        .collect()
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

/// Disposition (status by site) and Table 1 (by AI phenotype) of the subjects dataset, read
/// once from its CSV.
fn subjects_tables(dict: &[crate::cases::dictionary::FieldDef], subjects_csv: &Path) -> report::SubjectTables {
    use crate::stats::analysis::Analysis;
    let (table1, codelists) = table1_analysis(dict);
    let disposition =
        Analysis::Table1 { group: "site".into(), continuous: Vec::new(), categorical: vec!["status".into()] };
    let frame = crate::stats::frame::read_csv(subjects_csv).map_err(|e| e.0);
    let compute = |analysis: Analysis| {
        let outcome = frame
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|f| crate::stats::analysis::run(f, &analysis, 0.95).map(|o| o.to_json()).map_err(|e| e.0));
        let command = analyses::stats_command(&analysis, 0.95, "datasets/subjects.csv");
        report::Computed { analysis, outcome, command }
    };
    report::SubjectTables {
        disposition: compute(disposition),
        table1: compute(table1),
        codelists,
        labels: table1_labels(dict),
    }
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

/// The largest manifest, signature or expected-results file `verify` reads whole.
const MAX_METADATA_BYTES: u64 = 64 * 1024 * 1024;
/// The largest dataset `verify` reads whole to re-compute the statistics.
const MAX_DATASET_BYTES: u64 = 1024 * 1024 * 1024;

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
    // Every entry's SHA-256 and size, streamed (the zip is never held in memory).
    let mut entries: BTreeMap<String, (String, u64)> = BTreeMap::new();
    for i in 0..archive.len() {
        let mut f = archive.by_index(i)?;
        let name = f.name()?.to_string();
        let mut h = Hashing { inner: &mut std::io::sink(), sha: Sha256::new(), bytes: 0 };
        std::io::copy(&mut f, &mut h)?;
        entries.insert(name, (hex::encode(h.sha.finalize()), h.bytes));
    }
    // The few files read whole: the manifest, its signature, the expected results, one dataset
    // at a time; each only up to its bound, by its size as streamed above (never the size the
    // zip claims), so a zip bomb is refused before it is inflated in memory.
    let mut read = |name: &str| -> anyhow::Result<Option<Vec<u8>>> {
        let limit = if name.starts_with("datasets/") { MAX_DATASET_BYTES } else { MAX_METADATA_BYTES };
        if let Some((_, size)) = entries.get(name).filter(|(_, size)| *size > limit) {
            anyhow::bail!("{name}: {size} bytes uncompressed, over the limit of {limit} bytes for a file read whole");
        }
        match archive.by_name(name) {
            Ok(f) => {
                let mut bytes = Vec::new();
                f.take(limit + 1).read_to_end(&mut bytes)?;
                anyhow::ensure!(bytes.len() as u64 <= limit, "{name}: over the limit of {limit} bytes");
                Ok(Some(bytes))
            }
            Err(zip::result::ZipError::FileNotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    };
    let mut problems = Vec::new();
    let problem = |file: &str, message: String| Problem { file: file.into(), message };
    let (Some(manifest_bytes), Some(sig_text)) = (read("manifest.json")?, read("manifest.sig")?) else {
        return Ok(vec![problem("manifest.json", "the dossier has no manifest.json or manifest.sig".into())]);
    };
    let manifest_bytes = &manifest_bytes;
    let manifest: Value = serde_json::from_slice(manifest_bytes)?;
    let key_hex = public_key
        .map(str::to_string)
        .or_else(|| manifest["public_key"].as_str().map(str::to_string))
        .unwrap_or_default();
    let key_ok = hex::decode(key_hex.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .and_then(|b| VerifyingKey::from_bytes(&b).ok());
    let sig = hex::decode(String::from_utf8_lossy(&sig_text).trim())
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
            Some((got, n)) if got != sha || n != size => {
                problems.push(problem(path, "its SHA-256 or size differs from the manifest".into()))
            }
            Some(_) => {}
        }
    }
    for path in entries.keys().filter(|p| *p != "manifest.json" && *p != "manifest.sig" && !listed.contains_key(*p)) {
        problems.push(problem(path, "not listed in the manifest".into()));
    }
    let snapshot = manifest["snapshot_sha256"].as_str().unwrap_or("");
    let legacy = manifest["legacy_snapshot_sha256"].as_str();
    for s in manifest["signatures"].as_array().into_iter().flatten() {
        let signed = s["snapshot_sha256"].as_str();
        if signed != Some(snapshot) && (legacy.is_none() || signed != legacy) {
            problems.push(problem("manifest.json", format!("the signature of {} is over another snapshot", s["name"])));
        }
    }
    // Re-compute every saved statistic from the datasets in the dossier.
    let expected: Vec<Value> =
        read("reproduce/expected.json")?.map(|b| serde_json::from_slice(&b)).transpose()?.unwrap_or_default();
    // The dataset last read, as a frame (analyses of the same dataset follow one another).
    let mut frame_of: Option<(String, polars::prelude::DataFrame)> = None;
    for e in &expected {
        let input = e["input"].as_str().unwrap_or("");
        if frame_of.as_ref().map(|(n, _)| n.as_str()) != Some(input) {
            let Some(data) = read(input)? else {
                problems.push(problem(input, "the dataset of a saved analysis is missing".into()));
                continue;
            };
            let frame = crate::stats::frame::read_csv_bytes(data).map_err(|e| anyhow::anyhow!(e.0))?;
            frame_of = Some((input.to_string(), frame));
        }
        let Some((_, frame)) = &frame_of else { continue };
        let analysis: crate::stats::analysis::Analysis = serde_json::from_value(e["analysis"].clone())?;
        let level = e["level"].as_f64().unwrap_or(0.95);
        match crate::stats::analysis::run(frame, &analysis, level) {
            Ok(o) => {
                // A pre-specified criterion gives the same verdict on the re-computed result.
                if let Ok(c) = serde_json::from_value::<crate::analyses::plan::Criterion>(e["criterion"].clone()) {
                    let verdict = c.evaluate(&o.to_json()).1.as_str();
                    if e["verdict"].as_str() != Some(verdict) {
                        problems.push(problem(
                            "reproduce/expected.json",
                            format!(
                                "analysis #{}: the report says {}, the data gives {verdict}",
                                e["id"], e["verdict"]
                            ),
                        ));
                    }
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_partial_exports_of_gone_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join(".dossier-999999999-a1b2.partial");
        let ours = dir.path().join(format!(".dossier-{}-c3d4.partial", std::process::id()));
        let other = dir.path().join("dossier.zip");
        for f in [&gone, &ours, &other] {
            std::fs::write(f, b"x").unwrap();
        }
        remove_abandoned_partials(dir.path());
        assert!(!gone.exists(), "the export of a process that no longer runs is removed");
        assert!(ours.exists() && other.exists(), "a running export and other files stay");
    }

    #[test]
    fn verify_refuses_a_zip_bomb_before_inflating_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bomb.zip");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("manifest.json", opts).unwrap();
        let zeros = vec![b' '; 1024 * 1024];
        for _ in 0..65 {
            zip.write_all(&zeros).unwrap();
        }
        zip.start_file("manifest.sig", opts).unwrap();
        zip.write_all(b"00").unwrap();
        zip.finish().unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() < 1024 * 1024, "a small file");
        let e = verify(&path, None).unwrap_err().to_string();
        assert!(e.contains("manifest.json: 68157440 bytes uncompressed, over the limit"), "{e}");
    }
}
