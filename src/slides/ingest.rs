//! Slide ingest: a manifest CSV (file, subject_id, stain, optional site/block/scanner) checked
//! up front, then a job that de-identifies each file into the content-addressed store and records
//! it on its case. One bad file is reported and does not stop the others.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use diesel::prelude::*;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::{deid, reader, stored_key, SlideFormat};
use crate::audit::{self, Action, Change, Entity};
use crate::auth::permissions::{Permission, StudyAccess};
use crate::auth::Actor;
use crate::cases::decode::{read_table, Limits};
use crate::cases::deid::StudyKey;
use crate::cases::scrub::Scrubber;
use crate::db::schema::{cases, slide_ingests, slides};
use crate::db::{now, write_tx, Conn};
use crate::error::{Error, FieldErrors, Result};
use crate::jobs::kinds::{JobContext, JobHandler};
use crate::jobs::{self, Job};
use crate::slides::SlideStatus;
use crate::storage::Storage;

/// The ingest job's parameters: the planned ingest it carries out.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct IngestParams {
    pub ingest: i32,
    /// Where the uploads and the plan wait in object storage ([`stage`]), for a worker on
    /// another host; `None`: on the disk of the node that received them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged: Option<String>,
}

/// Where an interrupted ingest resumes: the rows already done.
#[derive(serde::Deserialize)]
struct Resume {
    report: Vec<RowOutcome>,
}

/// What an ingest did: how many rows were ingested, skipped (already there) and failed, and
/// each row's outcome.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct IngestOutput {
    pub ingest: i32,
    pub ingested: i32,
    pub skipped: i32,
    pub failed: i32,
    pub rows: Vec<RowOutcome>,
}

impl jobs::JobParams for IngestParams {
    const KIND: crate::jobs::JobKind = crate::jobs::JobKind::SlideIngest;
    type Output = IngestOutput;
}

/// Largest side of the smallest pyramid level we accept: the thumbnail and the lowest Deep Zoom
/// levels decode that level whole (8192² px is the reader's region limit).
const MAX_SMALLEST_LEVEL_EDGE: u64 = 8192;
const REQUIRED: [&str; 3] = ["file", "subject_id", "stain"];
/// Optional columns kept with the slide. Any other column is refused: it could carry an
/// identifier (a record number, a name) into the database and the audit trail.
const OPTIONAL: [&str; 3] = ["site", "block", "scanner"];

/// A slide file offered for ingest: the name the manifest refers to it by, and where it is.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub name: String,
    pub path: PathBuf,
    /// Uploaded copies are removed after the ingest; files on the server are left alone.
    pub uploaded: bool,
}

/// One manifest row, resolved: which file, which case. Kept outside the database (the source
/// path may hold a patient's name) in a plan file that lives until the job ends.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PlanEntry {
    pub row: usize,
    pub source: PathBuf,
    pub uploaded: bool,
    pub case_id: i32,
    pub case_display_id: String,
    pub stain: String,
    pub attributes: Map<String, Value>,
    /// The uploaded file's key in object storage, when it was staged there ([`stage`]).
    #[serde(default)]
    pub staged: Option<String>,
    /// The other files of an uploaded slide of several (a MIRAX folder, a DICOM series), by
    /// their path relative to `source`'s folder: staged under the row's key beside it.
    #[serde(default)]
    pub companions: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    pub study_code: String,
    pub entries: Vec<PlanEntry>,
    /// The folder of uploaded files, removed at the end.
    pub upload_dir: Option<PathBuf>,
    /// The folder of the staged uploads and plan in object storage, removed at the end.
    #[serde(default)]
    pub staged: Option<String>,
}

impl RowOutcome {
    /// A row that failed, with why (the message names neither the source file nor a key).
    fn failed(entry: &PlanEntry, message: String) -> RowOutcome {
        RowOutcome {
            row: entry.row,
            case: entry.case_display_id.clone(),
            outcome: "failed".into(),
            slide: None,
            message,
            removed_images: vec![],
            removed_metadata: vec![],
        }
    }
}

/// What happened to one manifest row.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RowOutcome {
    pub row: usize,
    pub case: String,
    /// "ingested", "skipped" (the same file is already in the study) or "failed".
    pub outcome: String,
    pub slide: Option<String>,
    pub message: String,
    #[serde(default)]
    pub removed_images: Vec<String>,
    #[serde(default)]
    pub removed_metadata: Vec<String>,
}

/// Checks the manifest against the study and the offered files; every problem is reported by
/// row and column, and nothing is started unless there is none. Subject ids are pseudonymised
/// here, exactly as in case import, to find the case: they are never stored or shown. Block ids
/// (which usually carry the accession number) are stored as pseudonyms and the scanner's name is
/// scrubbed (`scrubber`: the installation's identifier patterns).
pub fn plan(
    conn: &mut Conn,
    access: &StudyAccess,
    key: &StudyKey,
    scrubber: &Scrubber,
    manifest: &[u8],
    files: &[SourceFile],
    default_site: Option<&str>,
) -> Result<Plan> {
    access.require(Permission::ManageSlides)?;
    access.study.ensure_editable()?;
    let table = read_table("manifest", manifest, None, &Limits { max_bytes: 16 * 1024 * 1024, ..Limits::default() })
        .map_err(|e| Error::invalid("manifest", e.to_string()))?;
    let mut errors = FieldErrors::default();
    for col in REQUIRED {
        if !table.header.iter().any(|h| h == col) {
            errors.add("manifest", format!("manifest: the column {col} is missing (needed: file, subject_id, stain)"));
        }
    }
    for h in &table.header {
        if !REQUIRED.contains(&h.as_str()) && !OPTIONAL.contains(&h.as_str()) {
            errors.add(
                "manifest",
                format!(
                    "manifest: the column {h} is not accepted (file, subject_id, stain; optional site, block, scanner)"
                ),
            );
        }
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    if table.rows.is_empty() {
        return Err(Error::invalid("manifest", "manifest: there are no rows"));
    }
    let col = |name: &str| table.header.iter().position(|h| h == name);
    let (c_file, c_subject, c_stain, c_site) = (col("file"), col("subject_id"), col("stain"), col("site"));
    let sites = crate::studies::sites::list(conn, access.study.id, false)?;
    let default_site = match default_site.filter(|s| !s.is_empty()) {
        Some(s) => Some(s.to_string()),
        None if sites.len() == 1 => Some(sites[0].code.clone()),
        None => None,
    };
    let case_keys: HashMap<String, (i32, String)> = cases::table
        .filter(cases::study_id.eq(access.study.id))
        .select((cases::subject_key, cases::id, cases::display_id))
        .load::<(String, i32, String)>(conn)?
        .into_iter()
        .map(|(k, id, d)| (k, (id, d)))
        .collect();
    let mut by_name: HashMap<&str, &SourceFile> = HashMap::new();
    for f in files {
        if by_name.insert(f.name.as_str(), f).is_some() {
            errors.add("files", "two offered files have the same name; give each slide file a distinct name");
        }
    }
    let mut used: HashMap<&str, usize> = HashMap::new();
    let mut entries = Vec::new();
    for (i, r) in table.rows.iter().enumerate() {
        let row = i + 1;
        let cell = |c: Option<usize>| c.map(|c| r.cell(c).trim()).unwrap_or_default();
        let mut problem = |column: &str, message: &str| {
            errors.add("manifest", format!("manifest row {row}, column {column}: {message}"));
        };
        let (name, subject, stain) = (cell(c_file), cell(c_subject), cell(c_stain));
        let site = match cell(c_site) {
            "" => default_site.clone().unwrap_or_default(),
            s => s.to_string(),
        };
        // File names and subject ids are not echoed: they may identify the patient.
        let source = match name {
            "" => {
                problem("file", "empty");
                None
            }
            n => match by_name.get(n) {
                None => {
                    problem("file", "no offered file has the name given in this row");
                    None
                }
                Some(f) => {
                    if let Some(first) = used.insert(f.name.as_str(), row) {
                        problem("file", &format!("the same file as row {first}"));
                    }
                    if reader::is_mirax(&f.path) && !f.path.with_extension("").is_dir() {
                        problem(
                            "file",
                            "a MIRAX slide is a .mrxs file and the folder of the same name beside it: \
                             choose the folder that holds both (the form's folder button)",
                        );
                    }
                    Some(*f)
                }
            },
        };
        if stain.is_empty() {
            problem("stain", "empty (e.g. H&E, PD-L1 22C3)");
        }
        let case = if subject.is_empty() {
            problem("subject_id", "empty");
            None
        } else if site.is_empty() {
            problem("site", "no site: add a site column or choose the site of the file");
            None
        } else if !sites.iter().any(|s| s.code == site) {
            problem("site", &format!("{site} is not an active site of this study"));
            None
        } else {
            match case_keys.get(&key.subject_key(&site, subject)) {
                Some(c) => Some(c.clone()),
                None => {
                    problem(
                        "subject_id",
                        &format!("no case of site {site} has this subject id; import the case first"),
                    );
                    None
                }
            }
        };
        let mut attributes = Map::new();
        for (c, h) in table.header.iter().enumerate() {
            let value = r.cell(c).trim();
            let stored = match h.as_str() {
                _ if value.is_empty() => continue,
                "block" => key.pseudonym("slide_block", value),
                "scanner" => scrubber.scrub(value).0,
                _ => continue,
            };
            attributes.insert(h.clone(), Value::String(stored));
        }
        // The other files of an uploaded slide of several go with it.
        let companions = match source.filter(|f| f.uploaded) {
            Some(f) => companions_of(&f.path).unwrap_or_default(),
            None => vec![],
        };
        if let (Some(f), Some((case_id, display))) = (source, case) {
            entries.push(PlanEntry {
                row,
                source: f.path.clone(),
                uploaded: f.uploaded,
                case_id,
                case_display_id: display,
                stain: stain.to_string(),
                attributes,
                staged: None,
                companions,
            });
        }
    }
    // A folder on the server may hold other files; every uploaded file must be in the manifest,
    // or be another instance of a DICOM series a row names.
    let in_series: HashSet<PathBuf> = entries
        .iter()
        .filter(|e| e.uploaded)
        .flat_map(|e| {
            let folder = e.source.parent().map(Path::to_path_buf).unwrap_or_default();
            e.companions.iter().map(move |c| folder.join(c))
        })
        .collect();
    let unused = files
        .iter()
        .filter(|f| f.uploaded && !used.contains_key(f.name.as_str()) && !in_series.contains(&f.path))
        .count();
    if unused > 0 {
        errors.add("files", format!("{unused} uploaded file(s) are not named in the manifest"));
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    Ok(Plan { study_code: access.study.code.clone(), entries, upload_dir: None, staged: None })
}

/// The files of the slide at `path` other than itself, relative to its folder (a MIRAX
/// folder's files as `x/Slidedat.ini`; a DICOM series' other instances).
fn companions_of(path: &Path) -> std::io::Result<Vec<String>> {
    let folder = path.parent().unwrap_or(Path::new(""));
    let files = reader::slide_files(path).map_err(std::io::Error::other)?;
    Ok(files
        .iter()
        .skip(1)
        .filter_map(|f| f.strip_prefix(folder).ok())
        .map(|f| f.to_string_lossy().to_string())
        .collect())
}

/// The parts of a relative path as sent (`/` or `\\` between them; `.` and empty parts
/// skipped), or None for one that climbs out (`..`), holds a NUL, a part over 255 bytes or more
/// than 16 levels.
fn relative_parts(name: &str) -> Option<Vec<&str>> {
    let parts: Vec<&str> = name.split(['/', '\\']).filter(|p| !p.is_empty() && *p != ".").collect();
    let bad =
        parts.is_empty() || parts.len() > 16 || parts.iter().any(|p| *p == ".." || p.contains('\0') || p.len() > 255);
    (!bad).then_some(parts)
}

/// What operating systems leave in folders: not slide files, dropped from a folder upload.
fn is_folder_litter(name: &str) -> bool {
    name.starts_with('.') || ["Thumbs.db", "desktop.ini", "DICOMDIR"].iter().any(|l| name.eq_ignore_ascii_case(l))
}

/// `name`'s extension, if it is a short run of letters and digits (`.ndpi`, `.dcm`).
fn plain_extension(name: &str) -> Option<&str> {
    let (_, ext) = name.rsplit_once('.')?;
    (!ext.is_empty() && ext.len() <= 8 && ext.chars().all(|c| c.is_ascii_alphanumeric())).then_some(ext)
}

/// Lays uploaded files out as their names say, under `dir/files/`: a browser sending a folder
/// names each file by its path in it (`scans/x.mrxs`, `scans/x/Data0000.dat`), and a MIRAX slide
/// or a DICOM series is read from its folder as on the server. On disk every folder and file
/// gets a name of ours (`d1/`, `u3.mrxs` with its folder `u3/`; the files inside a MIRAX folder
/// keep the names its `Slidedat.ini` refers to): the sender's names, which often name the
/// patient, stay in memory to match the manifest. Returns the files as the manifest names them
/// (by file name; a MIRAX slide's folder is part of its slide). A name with `..`, too deep, or
/// two files of the same path are refused, naming the field; `.DS_Store`, `Thumbs.db` and the
/// like are dropped.
pub fn arrange_uploads(dir: &Path, uploads: &[(String, PathBuf)]) -> Result<Vec<SourceFile>> {
    let root = dir.join("files");
    let mut parsed = Vec::new();
    for (name, saved) in uploads {
        let parts = relative_parts(name)
            .ok_or_else(|| Error::invalid("files", "a file's name or folder cannot be used (.., or too deep)"))?;
        if parts.last().is_some_and(|n| is_folder_litter(n)) {
            let _ = std::fs::remove_file(saved);
            continue;
        }
        parsed.push((parts, saved));
    }
    // A MIRAX slide's folder is named as its .mrxs file is, in ours as in the sender's.
    let mut folder_names: HashMap<Vec<&str>, String> = HashMap::new();
    for (n, (parts, _)) in parsed.iter().enumerate() {
        if let Some((file, folders)) = parts.split_last() {
            if reader::is_mirax(Path::new(file)) {
                let mut folder = folders.to_vec();
                folder.push(file.rsplit_once('.').map_or(*file, |(stem, _)| stem));
                folder_names.insert(folder, format!("u{n}"));
            }
        }
    }
    let mirax_folders: HashSet<Vec<&str>> = folder_names.keys().cloned().collect();
    let (mut placed, mut offered) = (HashSet::new(), Vec::new());
    for (n, (parts, saved)) in parsed.iter().enumerate() {
        let Some((file, folders)) = parts.split_last() else { continue };
        let mut dest = root.clone();
        for k in 1..=folders.len() {
            let next = folder_names.len();
            dest = dest.join(folder_names.entry(folders[..k].to_vec()).or_insert_with(|| format!("d{next}")));
        }
        let in_mirax_folder = mirax_folders.contains(folders);
        dest = dest.join(match plain_extension(file) {
            _ if in_mirax_folder => file.to_string(),
            Some(ext) => format!("u{n}.{ext}"),
            None => format!("u{n}"),
        });
        if !placed.insert(parts.clone()) {
            return Err(Error::invalid("files", "two uploaded files have the same name in the same folder"));
        }
        let io = |e: std::io::Error| Error::Internal(anyhow::anyhow!("arranging the upload: {e}"));
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::rename(saved, &dest).map_err(io)?;
        if !in_mirax_folder {
            offered.push(SourceFile { name: file.to_string(), path: dest, uploaded: true });
        }
    }
    Ok(offered)
}

fn plan_path(tmp_dir: &Path, ingest_id: i32) -> PathBuf {
    tmp_dir.join(format!("slide-ingest-{ingest_id}.json"))
}

fn create_record(conn: &mut Conn, actor: &Actor, access: &StudyAccess, files: usize) -> Result<i32> {
    access.require(Permission::ManageSlides)?;
    write_tx(conn, |conn| {
        diesel::insert_into(slide_ingests::table)
            .values((
                slide_ingests::study_id.eq(access.study.id),
                slide_ingests::actor.eq(&actor.name),
                slide_ingests::files_total.eq(files as i32),
                slide_ingests::files_ingested.eq(0),
                slide_ingests::files_skipped.eq(0),
                slide_ingests::files_failed.eq(0),
                slide_ingests::report.eq("[]"),
                slide_ingests::created_at.eq(now()),
            ))
            .returning(slide_ingests::id)
            .get_result::<i32>(conn)
            .map_err(Error::from)
    })
}

/// On object storage, moves a plan's uploaded files into the bucket (`uploads/<random>/row-N`),
/// so that a worker on any host can ingest them, and drops the node's copies: an upload stays on
/// the disk of the node that received it no longer than its request. On file storage the plan
/// is returned as it is. The staged files are the files as sent (with their labels): they go
/// when the ingest ends, like uploads on disk.
pub fn stage(storage: &Storage, mut plan: Plan) -> Result<Plan> {
    let Some(dir) = plan.upload_dir.clone() else { return Ok(plan) };
    if storage.local_root().is_some() {
        return Ok(plan);
    }
    let prefix = format!("uploads/{}", crate::auth::random_token());
    let io = |e: std::io::Error| Error::Internal(anyhow::anyhow!("staging the uploads: {e}"));
    plan.staged = Some(prefix.clone());
    for i in 0..plan.entries.len() {
        if !plan.entries[i].uploaded {
            continue;
        }
        let key = format!("{prefix}/row-{}", plan.entries[i].row);
        let entry = &plan.entries[i];
        let folder = entry.source.parent().map(Path::to_path_buf).unwrap_or_default();
        // The slide's other files beside it, under the row's key.
        let sent = storage.put_file(&key, &entry.source).and_then(|()| {
            entry
                .companions
                .iter()
                .enumerate()
                .try_for_each(|(n, c)| storage.put_file(&companion_key(&key, n), &folder.join(c)))
        });
        plan.entries[i].staged = Some(key);
        if let Err(e) = sent {
            // What was staged before goes again: nothing is left in the bucket.
            unstage(storage, &plan);
            return Err(io(e));
        }
    }
    plan.upload_dir = None;
    let _ = std::fs::remove_dir_all(dir);
    Ok(plan)
}

/// Removes a plan's staged uploads and plan from object storage (the files as sent: a failure is
/// logged, and the sweep of the node that received them tries again).
pub fn unstage(storage: &Storage, plan: &Plan) {
    let Some(prefix) = &plan.staged else { return };
    let keys = plan
        .entries
        .iter()
        .filter_map(|e| Some((e.staged.clone()?, &e.companions)))
        .flat_map(|(key, companions)| {
            let others: Vec<String> = (0..companions.len()).map(|n| companion_key(&key, n)).collect();
            std::iter::once(key).chain(others)
        })
        .chain([format!("{prefix}/plan.json")]);
    for key in keys {
        if let Err(e) = storage.delete(&key) {
            tracing::warn!(key = %key, error = %e, "a staged upload could not be removed from object storage");
        }
    }
}

/// Records the ingest, saves its plan beside the data (and, for staged uploads, beside them in
/// object storage) and queues the job.
pub fn start(
    conn: &mut Conn,
    actor: &Actor,
    access: &StudyAccess,
    storage: &Storage,
    tmp_dir: &Path,
    plan: &Plan,
    claimed_by: Option<&str>,
) -> Result<(i32, Job)> {
    let ingest_id = create_record(conn, actor, access, plan.entries.len())?;
    crate::tmp::ensure_private(tmp_dir).map_err(|e| Error::Internal(e.into()))?;
    let body = serde_json::to_vec(plan).map_err(|e| Error::Internal(e.into()))?;
    // The plan names the sender's files: private to the server's account.
    crate::tmp::create_private_file(&plan_path(tmp_dir, ingest_id))
        .and_then(|mut f| std::io::Write::write_all(&mut f, &body))
        .map_err(|e| Error::Internal(e.into()))?;
    if let Some(prefix) = &plan.staged {
        storage
            .put_bytes(&format!("{prefix}/plan.json"), body)
            .map_err(|e| Error::Internal(anyhow::anyhow!("staging the plan: {e}")))?;
    }
    let params = IngestParams { ingest: ingest_id, staged: plan.staged.clone() };
    let job = jobs::create(conn, actor, Some(&access.study), &params, claimed_by)?;
    diesel::update(slide_ingests::table.find(ingest_id)).set(slide_ingests::job_id.eq(job.id)).execute(conn)?;
    Ok((ingest_id, job))
}

/// Runs a plan here and now, without the job queue (the demo seeding a fresh install).
pub fn ingest_now(
    conn: &mut Conn,
    actor: &Actor,
    access: &StudyAccess,
    storage: &Storage,
    data_dir: &Path,
    plan: &Plan,
) -> anyhow::Result<Vec<RowOutcome>> {
    let ingest_id = create_record(conn, actor, access, plan.entries.len())?;
    let partial_dir = super::partial_dir(data_dir);
    std::fs::create_dir_all(&partial_dir)?;
    let mut report = Vec::new();
    for entry in &plan.entries {
        let partial = partial_dir.join(format!("now-{ingest_id}-row-{}.partial", entry.row));
        report.push(ingest_one(conn, storage, &plan.study_code, &actor.name, ingest_id, entry, &partial));
        let _ = std::fs::remove_file(&partial);
    }
    save_report(conn, ingest_id, &report, true)?;
    Ok(report)
}

#[derive(Debug, Clone, Queryable, serde::Serialize)]
pub struct IngestRecord {
    pub id: i32,
    pub actor: String,
    pub job_id: Option<i32>,
    pub files_total: i32,
    pub files_ingested: i32,
    pub files_skipped: i32,
    pub files_failed: i32,
    pub report: crate::db::Json<Vec<RowOutcome>>,
    pub created_at: chrono::NaiveDateTime,
    pub finished_at: Option<chrono::NaiveDateTime>,
}

impl IngestRecord {
    pub fn rows(&self) -> Vec<RowOutcome> {
        self.report.0.clone()
    }
}

/// The study's ingests, newest first.
pub fn ingests(conn: &mut Conn, study_id: crate::studies::StudyId) -> Result<Vec<IngestRecord>> {
    Ok(slide_ingests::table
        .filter(slide_ingests::study_id.eq(study_id))
        .order(slide_ingests::id.desc())
        .select((
            slide_ingests::id,
            slide_ingests::actor,
            slide_ingests::job_id,
            slide_ingests::files_total,
            slide_ingests::files_ingested,
            slide_ingests::files_skipped,
            slide_ingests::files_failed,
            slide_ingests::report,
            slide_ingests::created_at,
            slide_ingests::finished_at,
        ))
        .load(conn)?)
}

pub struct SlideIngestJob;

impl JobHandler for SlideIngestJob {
    fn run(&self, ctx: &JobContext) -> anyhow::Result<Value> {
        let params = ctx.job.params::<IngestParams>()?;
        let ingest_id = params.ingest;
        let tmp_dir = ctx.data_dir.join("tmp");
        // The plan on this node's disk, or (staged uploads, another node) beside them in storage.
        let plan_bytes = match (std::fs::read(plan_path(&tmp_dir, ingest_id)), &params.staged) {
            (Ok(bytes), _) => bytes,
            (Err(_), Some(prefix)) => {
                ctx.storage.read(&format!("{prefix}/plan.json")).context("the ingest's staged plan is gone")?
            }
            (Err(e), None) => return Err(anyhow::Error::from(e).context("the ingest's plan file is gone")),
        };
        let plan: Plan = serde_json::from_slice(&plan_bytes)?;
        sweep(&mut *ctx.conn()?, &ctx.storage, &ctx.data_dir);
        let partial_dir = super::partial_dir(&ctx.data_dir);
        std::fs::create_dir_all(&partial_dir)?;
        let mut report = ctx.checkpoint::<Resume>()?.map(|r| r.report).unwrap_or_default();
        let total = plan.entries.len() as i64;
        let result = (|| -> anyhow::Result<()> {
            for entry in plan.entries.iter().skip(report.len()) {
                let msg = format!("slide {} of {total} (manifest row {})", report.len() + 1, entry.row);
                ctx.progress(report.len() as i64, total, &msg, Some(&json!({"report": report})))?;
                let partial = partial_dir.join(format!("job-{}-row-{}.partial", ctx.job.id, entry.row));
                // A staged upload is fetched to this node for the length of its row, into a
                // folder of its own (with the slide's other files, as they were uploaded).
                let fetched = partial_dir.join(format!("job-{}-row-{}.upload", ctx.job.id, entry.row));
                let mut entry = entry.clone();
                let fetch = match &entry.staged {
                    Some(key) => fetch_staged(&ctx.storage, key, &entry, &fetched).map(|f| entry.source = f),
                    None => Ok(()),
                };
                let outcome = match fetch {
                    Ok(()) => ingest_one(
                        &mut *ctx.conn()?,
                        &ctx.storage,
                        &plan.study_code,
                        &ctx.job.owner,
                        ingest_id,
                        &entry,
                        &partial,
                    ),
                    // This row fails, the others go on (the message names no endpoint or key).
                    Err(e) => {
                        tracing::warn!(ingest = ingest_id, row = entry.row, error = %e, "a staged upload could not be fetched");
                        RowOutcome::failed(&entry, "the uploaded file could not be fetched from object storage (see the server log); upload it again".into())
                    }
                };
                let _ = std::fs::remove_file(&partial);
                let _ = std::fs::remove_dir_all(&fetched);
                report.push(outcome);
                save_report(&mut *ctx.conn()?, ingest_id, &report, false)?;
                // The resume point right after the row, so a crash now does not redo it.
                ctx.progress(report.len() as i64, total, &msg, Some(&json!({"report": report})))?;
            }
            Ok(())
        })();
        // Done, cancelled or failed: the job will not run again, so the uploads and the plan
        // (which names the source files) go now. Only a crash leaves them, for the resume.
        finish_ingest(&mut *ctx.conn()?, &ctx.storage, &tmp_dir, ingest_id, &plan, &report);
        result?;
        let (ok, skipped, failed) = counts(&report);
        ctx.progress(total, total, &format!("{ok} ingested, {skipped} already there, {failed} failed"), None)?;
        // A job whose every file failed did not do its work: it says so (failed), not "succeeded";
        // the ingest's page lists why, row by row.
        if failed > 0 && ok == 0 && skipped == 0 {
            anyhow::bail!("no slide ingested: {failed} of {total} files failed (ingest #{ingest_id} lists why)");
        }
        crate::jobs::output::<IngestParams>(&IngestOutput {
            ingest: ingest_id,
            ingested: ok,
            skipped,
            failed,
            rows: report,
        })
    }
}

/// Where the `n`th other file of a staged row's slide is kept (by number: file names may name
/// the patient).
fn companion_key(key: &str, n: usize) -> String {
    format!("{key}.files/{n}")
}

/// Downloads a staged row (and its slide's other files) into the folder `into`; returns the
/// path of the row's file there, `r<row>.<ext>` (a MIRAX slide's folder becomes `r<row>/`, so
/// the names on this node's disk say nothing of the patient, nor words a reader's message uses).
fn fetch_staged(storage: &Storage, key: &str, entry: &PlanEntry, into: &Path) -> std::io::Result<PathBuf> {
    let ext = entry.source.extension().map(|e| e.to_string_lossy().to_string()).unwrap_or_default();
    let stem = entry.source.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    let ours = format!("r{}", entry.row);
    let main = into.join(if ext.is_empty() { ours.clone() } else { format!("{ours}.{ext}") });
    std::fs::create_dir_all(into)?;
    storage.download(key, &main)?;
    for (n, c) in entry.companions.iter().enumerate() {
        let mut parts =
            relative_parts(c).ok_or_else(|| std::io::Error::other("a staged file's name leaves its folder"))?;
        let numbered = match plain_extension(c) {
            Some(ext) => format!("c{n}.{ext}"),
            None => format!("c{n}"),
        };
        if parts.len() > 1 && parts[0] == stem {
            // A MIRAX folder: named as the row's file, its files as Slidedat.ini names them.
            parts[0] = &ours;
        } else if parts.len() == 1 {
            // Another instance of a series: numbered, so it never meets the row's file.
            parts[0] = &numbered;
        }
        let dest = parts.iter().fold(into.to_path_buf(), |p, part| p.join(part));
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        storage.download(&companion_key(key, n), &dest)?;
    }
    Ok(main)
}

fn finish_ingest(
    conn: &mut Conn,
    storage: &Storage,
    tmp_dir: &Path,
    ingest_id: i32,
    plan: &Plan,
    report: &[RowOutcome],
) {
    if let Some(dir) = &plan.upload_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    unstage(storage, plan);
    let _ = std::fs::remove_file(plan_path(tmp_dir, ingest_id));
    if let Err(e) = save_report(conn, ingest_id, report, true) {
        tracing::warn!(ingest = ingest_id, error = %e, "could not record the end of a slide ingest");
    }
}

/// Ingests whose job ended without running to its end (cancelled while queued, given up after
/// a crash) leave their uploads and plan behind: removed here, at start-up and before each
/// ingest. Half-written copies older than a day go too.
pub fn sweep(conn: &mut Conn, storage: &Storage, data_dir: &Path) {
    let tmp_dir = data_dir.join("tmp");
    for entry in std::fs::read_dir(&tmp_dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(id) = name.strip_prefix("slide-ingest-").and_then(|r| r.strip_suffix(".json")) else { continue };
        let Ok(id) = id.parse::<i32>() else { continue };
        let job_id: Option<Option<i32>> =
            slide_ingests::table.find(id).select(slide_ingests::job_id).first(conn).optional().ok().flatten();
        let finished = match job_id {
            None => true,
            Some(None) => false,
            Some(Some(j)) => jobs::get(conn, j).map(|j| j.is_finished()).unwrap_or(true),
        };
        if finished {
            if let Ok(plan) = std::fs::read(entry.path())
                .map_err(anyhow::Error::from)
                .and_then(|b| Ok(serde_json::from_slice::<Plan>(&b)?))
            {
                let report: Vec<RowOutcome> = slide_ingests::table
                    .find(id)
                    .select(slide_ingests::report)
                    .first::<String>(conn)
                    .ok()
                    .and_then(|r| serde_json::from_str(&r).ok())
                    .unwrap_or_default();
                finish_ingest(conn, storage, &tmp_dir, id, &plan, &report);
            } else {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let day = std::time::Duration::from_secs(24 * 3600);
    for entry in std::fs::read_dir(super::partial_dir(data_dir)).into_iter().flatten().flatten() {
        let old = entry.metadata().and_then(|m| m.modified()).map(|t| t.elapsed().unwrap_or_default() > day);
        if old.unwrap_or(false) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The upload folders of the ingests whose plans are still waiting to run (after [`sweep`]:
/// those of ingests that ended are gone), which the sweep of `tmp/` must leave alone.
pub fn uploads_in_use(data_dir: &Path) -> Vec<PathBuf> {
    let tmp_dir = data_dir.join("tmp");
    std::fs::read_dir(&tmp_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("slide-ingest-"))
        .filter_map(|e| serde_json::from_slice::<Plan>(&std::fs::read(e.path()).ok()?).ok()?.upload_dir)
        .collect()
}

/// Everything interrupted work left behind: finished ingests' uploads and plans, then uploads
/// of requests that never finished, at least `min_age` old (`crate::tmp::sweep`).
pub fn sweep_all(conn: &mut Conn, storage: &Storage, data_dir: &Path, min_age: std::time::Duration) {
    sweep(conn, storage, data_dir);
    crate::tmp::sweep(&data_dir.join("tmp"), min_age, &uploads_in_use(data_dir));
}

/// (ingested, skipped, failed) rows of a report.
fn counts(report: &[RowOutcome]) -> (i32, i32, i32) {
    let count = |o: &str| report.iter().filter(|r| r.outcome == o).count() as i32;
    (count("ingested"), count("skipped"), count("failed"))
}

fn save_report(conn: &mut Conn, ingest_id: i32, report: &[RowOutcome], finished: bool) -> anyhow::Result<()> {
    let (ingested, skipped, failed) = counts(report);
    diesel::update(slide_ingests::table.find(ingest_id))
        .set((
            slide_ingests::files_ingested.eq(ingested),
            slide_ingests::files_skipped.eq(skipped),
            slide_ingests::files_failed.eq(failed),
            slide_ingests::report.eq(serde_json::to_string(report)?),
            slide_ingests::finished_at.eq(finished.then(now)),
        ))
        .execute(conn)?;
    Ok(())
}

/// Ingests one file; failures become the row's outcome (with the source's name taken out of
/// the message), so the next file goes on.
pub fn ingest_one(
    conn: &mut Conn,
    storage: &Storage,
    study_code: &str,
    actor: &str,
    ingest_id: i32,
    entry: &PlanEntry,
    partial: &Path,
) -> RowOutcome {
    let mut out = RowOutcome::failed(entry, String::new());
    // A decoder panicking on a hostile file fails this row only.
    let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        try_ingest(conn, storage, study_code, actor, ingest_id, entry, partial, &mut out)
    }))
    .unwrap_or_else(|_| Err(anyhow::anyhow!("the file could not be read (internal error while decoding it)")));
    match attempt {
        Ok(()) => {}
        Err(e) => {
            let mut msg = format!("{e:#}");
            // The path, the name and its stem (a MIRAX slide's folder has it; readers' messages
            // name files in it), longest first.
            let source = &entry.source;
            let mut secrets: Vec<String> = [Some(source.as_os_str()), source.file_name(), source.file_stem()]
                .into_iter()
                .flatten()
                .map(|s| s.to_string_lossy().to_string())
                .filter(|s| s.len() >= 4)
                .collect();
            secrets.insert(1, source.with_extension("").display().to_string());
            for secret in secrets {
                msg = msg.replace(&secret, "the file");
            }
            // Readers may name another file of the slide (a DICOM series, a MIRAX folder).
            if let Some(folder) = source.parent().map(|p| p.display().to_string()).filter(|p| p.len() > 1) {
                msg = msg.replace(&folder, "the slide's folder");
            }
            out.message = msg;
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn try_ingest(
    conn: &mut Conn,
    storage: &Storage,
    study_code: &str,
    actor: &str,
    ingest_id: i32,
    entry: &PlanEntry,
    partial: &Path,
    out: &mut RowOutcome,
) -> anyhow::Result<()> {
    let source_sha = source_sha256(&entry.source).context("the file could not be read")?;
    let study = crate::studies::get_by_code(conn, study_code)?;
    if already_ingested(conn, study.id, &source_sha, out)? {
        return Ok(());
    }
    let original = reader::open(&entry.source)?;
    if let Some(smallest) = original.info().levels.last() {
        if smallest.width.max(smallest.height) > MAX_SMALLEST_LEVEL_EDGE {
            anyhow::bail!(
                "the image is {}×{} without reduced levels; save it as a pyramidal TIFF first",
                smallest.width,
                smallest.height
            );
        }
    }
    drop(original);
    let (outcome, info) = deid::deidentify(&entry.source, partial)?;
    let sha = sha256_file(partial)?;
    let format = SlideFormat::parse(&info.format).ok_or_else(|| {
        anyhow::anyhow!("the reader named the format '{}', which this build does not store", info.format)
    })?;
    let size = std::fs::metadata(partial)?.len() as i64;
    // Into storage (streamed up in parts on object storage); the node's copy goes.
    let dest = stored_key(&sha, format);
    storage.put_file_moving(&dest, partial).context("the de-identified copy could not be stored")?;
    let metadata: BTreeMap<&String, &String> = info.properties.iter().collect();
    let info_json = json!({
        "format": info.format,
        "levels": info.levels,
        "mpp_x": info.mpp_x,
        "mpp_y": info.mpp_y,
        "objective_power": info.objective_power,
        "metadata": metadata,
        "deidentification": outcome,
    });
    let recorded = write_tx(conn, |conn| -> Result<String> {
        let study = crate::studies::get_by_code(conn, study_code)?;
        study.ensure_editable()?;
        // Under the writers' lock, like the removal below: a failed ingest of the same bytes on
        // another host may have removed the copy after this one stored it. Never a slide
        // without its file.
        if !storage.exists(&dest).map_err(|e| Error::Internal(e.into()))? {
            return Err(Error::Conflict(
                "the stored copy went while it was being recorded (a failed ingest of the same file elsewhere): \
                 ingest this file again"
                    .into(),
            ));
        }
        let taken: Vec<String> = slides::table
            .filter(slides::study_id.eq(study.id))
            .filter(slides::case_id.eq(entry.case_id))
            .select(slides::label)
            .load(conn)?;
        let label = (1..)
            .map(|n| format!("{}-S{n:02}", entry.case_display_id))
            .find(|l| !taken.contains(l))
            .unwrap_or_else(|| unreachable!("an unbounded range always yields a free label"));
        let at = now();
        diesel::insert_into(slides::table)
            .values((
                slides::study_id.eq(study.id),
                slides::case_id.eq(entry.case_id),
                slides::label.eq(&label),
                slides::stain.eq(&entry.stain),
                slides::attributes.eq(Value::Object(entry.attributes.clone()).to_string()),
                slides::sha256.eq(&sha),
                slides::source_sha256.eq(&source_sha),
                slides::file_size.eq(size),
                slides::format.eq(format),
                slides::width.eq(info.width as i64),
                slides::height.eq(info.height as i64),
                slides::info.eq(info_json.to_string()),
                slides::mpp_x.eq(info.mpp_x),
                slides::mpp_y.eq(info.mpp_y),
                slides::status.eq(SlideStatus::Available),
                slides::ingest_id.eq(ingest_id),
                slides::created_at.eq(at),
                slides::updated_at.eq(at),
            ))
            .execute(conn)?;
        audit::record(
            conn,
            Change::new(study.chain(), actor, Action::Ingest, Entity::Slide, &label).after(json!({
                "case": entry.case_display_id,
                "stain": entry.stain,
                "attributes": entry.attributes,
                "sha256": sha,
                "format": info.format,
                "width": info.width,
                "height": info.height,
                "removed_images": outcome.removed_images,
                "removed_metadata": outcome.removed_metadata,
                "conversion": outcome.conversion,
                "dicom_profile": outcome.dicom_profile,
            })),
        )?;
        Ok(label)
    });
    let label = match recorded {
        Ok(label) => label,
        Err(e) => {
            // Nothing recorded: no stored file without its slide. The same file committed
            // meanwhile by another ingest is that slide, not a failure. Checked and removed under
            // the writers' lock, so that an ingest of the same bytes recording its slide either
            // comes first (and the file stays) or finds the file gone (and fails its row).
            write_tx(conn, |conn| -> Result<()> {
                let referenced: i64 = slides::table.filter(slides::sha256.eq(&sha)).count().get_result(conn)?;
                if referenced == 0 {
                    if let Err(e) = storage.delete(&dest) {
                        tracing::warn!(key = %dest, error = %e, "an unrecorded slide copy could not be removed");
                    }
                }
                Ok(())
            })?;
            if already_ingested(conn, study.id, &source_sha, out)? {
                return Ok(());
            }
            return Err(e.into());
        }
    };
    out.outcome = "ingested".into();
    out.message = format!("{} {}×{}, {} levels", info.format, info.width, info.height, info.levels.len());
    if let Some(c) = &outcome.conversion {
        out.message = format!("{}; {}", out.message, c.summary());
    }
    if let Some(p) = &outcome.dicom_profile {
        out.message = format!("{}; {}", out.message, p.summary());
    }
    out.slide = Some(label);
    out.removed_images = outcome.removed_images;
    out.removed_metadata = outcome.removed_metadata;
    Ok(())
}

/// Marks the row "skipped" when the study already has a slide made from the same file.
fn already_ingested(
    conn: &mut Conn,
    study_id: crate::studies::StudyId,
    source_sha: &str,
    out: &mut RowOutcome,
) -> anyhow::Result<bool> {
    let existing: Option<String> = slides::table
        .filter(slides::study_id.eq(study_id))
        .filter(slides::source_sha256.eq(source_sha))
        .select(slides::label)
        .first(conn)
        .optional()?;
    Ok(match existing {
        Some(label) => {
            out.outcome = "skipped".into();
            out.message = format!("the same file is already slide {label}");
            out.slide = Some(label);
            true
        }
        None => false,
    })
}

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// What identifies a slide's original for "already ingested": the SHA-256 of its file, or for
/// a slide of several files (a MIRAX slide and its folder, a DICOM series) the SHA-256 over its
/// files' hashes, sorted: the same series named through another instance, or renamed, is the
/// same slide.
pub fn source_sha256(path: &Path) -> std::io::Result<String> {
    let files = reader::slide_files(path).map_err(std::io::Error::other)?;
    if files.len() == 1 {
        return sha256_file(path);
    }
    let mut hashes = files.iter().map(|f| sha256_file(f)).collect::<std::io::Result<Vec<_>>>()?;
    hashes.sort();
    let mut h = Sha256::new();
    for hash in hashes {
        h.update(hash.as_bytes());
    }
    Ok(hex::encode(h.finalize()))
}

/// The files of a folder (recursively) or the files given, named by their file name as the
/// manifest's `file` column refers to them. A MIRAX slide's folder (`x/` beside `x.mrxs`) is
/// part of that slide, not files of its own.
pub fn server_files(paths: &[PathBuf]) -> std::io::Result<Vec<SourceFile>> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = paths.to_vec();
    while let Some(p) = stack.pop() {
        let mirax_data = p.file_name().is_some_and(|n| {
            let mut companion = n.to_os_string();
            companion.push(".mrxs");
            p.with_file_name(companion).is_file()
        });
        if p.is_dir() && mirax_data && !paths.contains(&p) {
            continue;
        }
        if p.is_dir() {
            for e in std::fs::read_dir(&p)? {
                stack.push(e?.path());
            }
        } else if p.is_file() {
            let name = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            out.push(SourceFile { name, path: p, uploaded: false });
        } else {
            return Err(std::io::Error::new(std::io::ErrorKind::NotFound, format!("{} does not exist", p.display())));
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder upload is laid out under names of ours, a MIRAX folder beside its `.mrxs`, the
    /// files inside it as Slidedat.ini names them; the sender's names only match the manifest.
    #[test]
    fn uploads_are_laid_out_under_names_of_ours() {
        let dir = tempfile::tempdir().unwrap();
        let sent = [
            "scans/DOE_JANE.mrxs",
            "scans/DOE_JANE/Slidedat.ini",
            "scans/DOE_JANE/Data0000.dat",
            "DOE_pacs/DOE_1.dcm",
            "DOE_pacs/DOE_2.dcm",
            "DOE_pacs/.DS_Store",
            "DOE_single.ndpi",
        ];
        let uploads: Vec<(String, PathBuf)> = sent
            .iter()
            .enumerate()
            .map(|(n, name)| {
                let saved = dir.path().join(format!("{n:04}.upload"));
                std::fs::write(&saved, name.as_bytes()).unwrap();
                (name.to_string(), saved)
            })
            .collect();
        let offered = arrange_uploads(dir.path(), &uploads).unwrap();
        let mut names: Vec<&str> = offered.iter().map(|f| f.name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["DOE_1.dcm", "DOE_2.dcm", "DOE_JANE.mrxs", "DOE_single.ndpi"]);
        for f in &offered {
            assert!(!f.path.to_string_lossy().contains("DOE"), "{}", f.path.display());
            assert_eq!(std::fs::read_to_string(&f.path).unwrap().rsplit('/').next(), Some(f.name.as_str()));
        }
        let mrxs = &offered.iter().find(|f| f.name.ends_with(".mrxs")).unwrap().path;
        assert!(
            mrxs.with_extension("").join("Slidedat.ini").is_file()
                && mrxs.with_extension("").join("Data0000.dat").is_file()
        );
        let litter: Vec<_> = walk(&dir.path().join("files")).into_iter().filter(|p| p.ends_with(".DS_Store")).collect();
        assert!(litter.is_empty(), "{litter:?}");
        // Climbing out of the upload, or two files of one path: refused.
        for bad in [vec!["../x.ndpi"], vec!["a/../../x.ndpi"], vec!["a/x.ndpi", "a//x.ndpi"]] {
            let d = tempfile::tempdir().unwrap();
            let uploads: Vec<(String, PathBuf)> = bad
                .iter()
                .enumerate()
                .map(|(n, name)| {
                    let saved = d.path().join(format!("{n}.upload"));
                    std::fs::write(&saved, b"x").unwrap();
                    (name.to_string(), saved)
                })
                .collect();
            assert!(matches!(arrange_uploads(d.path(), &uploads), Err(Error::Invalid(_))), "{bad:?}");
        }
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }
}
