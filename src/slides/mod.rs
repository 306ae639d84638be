//! Slides: whole-slide image reading, de-identified ingest, Deep Zoom tiles, synthetic slides.
//! This file holds the slide records: listing, lookup, QC exclusion and their audit.

pub mod export;
pub mod ingest;

// The engine: reading, writing, tiling, de-identifying and drawing slides (crates/evidentia-wsi).
pub use evidentia_wsi::{deid, dicom, dicomwrite, dzi, jpeg, ndpiwrite, openslide, reader, source, synth, tiffwrite};

use std::path::{Path, PathBuf};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::{json, Map, Value};

use crate::audit::{self, Action, Change, Entity};
use crate::auth::permissions::{Permission, StudyAccess};
use crate::auth::Actor;
use crate::cases::CaseStatus;
use crate::db::paging::{Page, PageRequest};
use crate::db::schema::{cases, sites, slides};
use crate::db::{now, write_tx, Conn};
use crate::error::{Error, OptionalExt, Result};

/// QC reasons offered in the exclusion form; any other text is accepted too.
pub const EXCLUSION_REASONS: [&str; 5] = ["blur", "folds", "pen marks", "wrong stain", "too little tumour"];

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = slides)]
pub struct Slide {
    pub id: i32,
    pub label: String,
    #[diesel(select_expression = cases::display_id)]
    pub case_display_id: String,
    #[diesel(select_expression = sites::code)]
    pub site_code: String,
    pub stain: String,
    #[serde(skip)]
    pub attributes: crate::db::Json<Map<String, Value>>,
    pub sha256: String,
    pub file_size: i64,
    pub format: SlideFormat,
    pub width: i64,
    pub height: i64,
    #[serde(skip)]
    pub info: String,
    pub mpp_x: Option<f64>,
    pub mpp_y: Option<f64>,
    pub status: SlideStatus,
    pub status_reason: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

crate::db::text_enum! {
    /// A study's slide: available for reading and AI runs, or excluded (slide QC, with a reason).
    pub enum SlideStatus {
        Available = "available",
        Excluded = "excluded",
    }
}

impl Slide {
    pub fn attributes(&self) -> Map<String, Value> {
        self.attributes.0.clone()
    }
    /// The stored slide description (levels, resolution, kept metadata).
    pub fn info(&self) -> Value {
        serde_json::from_str(&self.info).unwrap_or(Value::Null)
    }
    pub fn is_excluded(&self) -> bool {
        self.status == SlideStatus::Excluded
    }
    /// "1.2 GB"-style size for pages.
    pub fn size_label(&self) -> String {
        human_bytes(self.file_size)
    }
    pub fn short_sha(&self) -> &str {
        self.sha256.get(..16).unwrap_or(&self.sha256)
    }
    pub fn levels_label(&self) -> String {
        self.info()["levels"].as_array().map(|l| l.len()).unwrap_or(0).to_string()
    }
}

pub fn human_bytes(n: i64) -> String {
    let n = n as f64;
    match n {
        n if n >= 1e9 => format!("{:.1} GB", n / 1e9),
        n if n >= 1e6 => format!("{:.1} MB", n / 1e6),
        n if n >= 1e3 => format!("{:.0} kB", n / 1e3),
        n => format!("{n} B"),
    }
}

/// Where ingests write de-identified copies before they are stored: `<data dir>/slides/.partial`
/// (on the node's disk, for the length of one file's ingest).
pub fn partial_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("slides").join(".partial")
}

crate::db::text_enum! {
    /// The file format of a stored slide, as the reader names it (`SlideInfo::format`).
    pub enum SlideFormat {
        AperioSvs = "aperio-svs",
        GenericTiff = "generic-tiff",
        OmeTiff = "ome-tiff",
        Png = "png",
        Jpeg = "jpeg",
    }
}

impl SlideFormat {
    /// The stored file's extension.
    pub fn extension(self) -> &'static str {
        match self {
            SlideFormat::Png => "png",
            SlideFormat::Jpeg => "jpg",
            SlideFormat::AperioSvs => "svs",
            SlideFormat::GenericTiff | SlideFormat::OmeTiff => "tiff",
        }
    }
}

/// The storage key of a de-identified copy: `slides/<sha256>.<ext>` (in the data dir on file
/// storage, under the bucket's prefix on object storage).
pub fn stored_key(sha256: &str, format: SlideFormat) -> String {
    format!("slides/{sha256}.{}", format.extension())
}

/// Opens a stored copy wherever the storage keeps it (by range requests on object storage).
pub fn open_stored(
    storage: &crate::storage::Storage,
    sha256: &str,
    format: SlideFormat,
) -> std::result::Result<Box<dyn reader::SlideReader>, reader::SlideError> {
    reader::open_source(storage.open(&stored_key(sha256, format))?)
}

impl Slide {
    pub fn key(&self) -> String {
        stored_key(&self.sha256, self.format)
    }

    /// Opens this slide's stored copy.
    pub fn open(
        &self,
        storage: &crate::storage::Storage,
    ) -> std::result::Result<Box<dyn reader::SlideReader>, reader::SlideError> {
        open_stored(storage, &self.sha256, self.format)
    }
}

/// Filters of the slide list; empty means any.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct SlideFilter {
    #[serde(default)]
    pub site: String,
    #[serde(default)]
    pub stain: String,
    #[serde(default)]
    pub status: String,
    /// Case display id or slide label, contains.
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub sort: String,
    #[serde(default)]
    pub dir: String,
    pub page: Option<i64>,
}

fn base_query<'a>(study_id: crate::studies::StudyId) -> slides::BoxedQuery<'a, crate::db::MultiBackend> {
    slides::table.filter(slides::study_id.eq(study_id)).into_boxed()
}

type WithCase = diesel::dsl::InnerJoin<slides::table, diesel::dsl::InnerJoin<cases::table, sites::table>>;

/// A study's slides joined to their case and site (what [`Slide`] selects).
fn with_case<'a>(
    study_id: crate::studies::StudyId,
) -> diesel::dsl::IntoBoxed<
    'a,
    diesel::dsl::Filter<WithCase, diesel::dsl::Eq<slides::study_id, i32>>,
    crate::db::MultiBackend,
> {
    slides::table.inner_join(cases::table.inner_join(sites::table)).filter(slides::study_id.eq(study_id)).into_boxed()
}

/// Slides of a study with filters, sort and paging.
pub fn list(
    conn: &mut Conn,
    study_id: crate::studies::StudyId,
    f: &SlideFilter,
    page: PageRequest,
) -> Result<Page<Slide>> {
    let build = || {
        let mut q = with_case(study_id);
        if !f.site.is_empty() {
            q = q.filter(sites::code.eq(f.site.clone()));
        }
        if !f.stain.is_empty() {
            q = q.filter(slides::stain.eq(f.stain.clone()));
        }
        if !f.status.is_empty() {
            q = q.filter(slides::status.eq(f.status.clone()));
        }
        let text = f.q.trim();
        if !text.is_empty() {
            use crate::db::lower;
            let pat = format!("%{text}%");
            q = q.filter(lower(slides::label).like(lower(pat.clone())).or(lower(cases::display_id).like(lower(pat))));
        }
        q
    };
    let total: i64 = build().count().get_result(conn)?;
    let desc = f.dir == "desc";
    let q = match (f.sort.as_str(), desc) {
        ("stain", false) => build().order((slides::stain.asc(), slides::label.asc())),
        ("stain", true) => build().order((slides::stain.desc(), slides::label.asc())),
        ("status", false) => build().order((slides::status.asc(), slides::label.asc())),
        ("status", true) => build().order((slides::status.desc(), slides::label.asc())),
        ("size", false) => build().order(slides::file_size.asc()),
        ("size", true) => build().order(slides::file_size.desc()),
        ("ingested", false) => build().order(slides::id.asc()),
        ("ingested", true) => build().order(slides::id.desc()),
        (_, true) => build().order(slides::label.desc()),
        _ => build().order(slides::label.asc()),
    };
    let items = q.select(Slide::as_select()).limit(page.per_page).offset(page.offset()).load(conn)?;
    Ok(Page { items, total, page: page.page, per_page: page.per_page })
}

pub fn get(conn: &mut Conn, study_id: crate::studies::StudyId, label: &str) -> Result<Slide> {
    with_case(study_id).filter(slides::label.eq(label)).select(Slide::as_select()).first(conn).or_not_found()
}

/// A study's slide by its id (reads and runs refer to slides by id).
pub fn get_by_id(conn: &mut Conn, study_id: crate::studies::StudyId, id: i32) -> Result<Slide> {
    with_case(study_id).filter(slides::id.eq(id)).select(Slide::as_select()).first(conn).or_not_found()
}

/// The slides of one case, in label order (the case page and next/previous on the viewer).
pub fn of_case(conn: &mut Conn, study_id: crate::studies::StudyId, case_display_id: &str) -> Result<Vec<Slide>> {
    Ok(with_case(study_id)
        .filter(cases::display_id.eq(case_display_id))
        .order(slides::label.asc())
        .select(Slide::as_select())
        .load(conn)?)
}

/// The stains used in a study, for the list's filter.
pub fn stains(conn: &mut Conn, study_id: crate::studies::StudyId) -> Result<Vec<String>> {
    Ok(base_query(study_id).select(slides::stain).distinct().order(slides::stain.asc()).load(conn)?)
}

/// Slides of enrolled cases that are not excluded (id, label), optionally of one site or stain:
/// what reading campaigns and biomarker runs work on.
pub fn enrolled_available(
    conn: &mut Conn,
    study_id: crate::studies::StudyId,
    site: &str,
    stain: &str,
) -> Result<Vec<(i32, String)>> {
    let mut q = slides::table
        .inner_join(cases::table.inner_join(sites::table))
        .filter(slides::study_id.eq(study_id))
        .filter(slides::status.ne(SlideStatus::Excluded))
        .filter(cases::status.eq(CaseStatus::Enrolled))
        .into_boxed();
    if !site.is_empty() {
        q = q.filter(sites::code.eq(site.to_string()));
    }
    if !stain.is_empty() {
        q = q.filter(slides::stain.eq(stain.to_string()));
    }
    Ok(q.order(slides::label.asc()).select((slides::id, slides::label)).load(conn)?)
}

pub fn count(conn: &mut Conn, study_id: crate::studies::StudyId) -> Result<i64> {
    Ok(base_query(study_id).count().get_result(conn)?)
}

/// Slide QC: excludes a slide from runs and analyses (it stays visible), or takes it back in.
/// Both need a reason and are audited; blocked while the study is locked.
pub fn set_excluded(
    conn: &mut Conn,
    actor: &Actor,
    access: &StudyAccess,
    label: &str,
    excluded: bool,
    reason: &str,
) -> Result<Slide> {
    access.require(Permission::ManageSlides)?;
    let reason = reason.trim();
    if reason.is_empty() {
        let what = if excluded { "excluded (blur, folds, pen marks, …)" } else { "included again" };
        return Err(Error::invalid("reason", format!("say why the slide is {what}")));
    }
    write_tx(conn, |conn| {
        let study = crate::studies::get_by_code(conn, &access.study.code)?;
        study.ensure_editable()?;
        let slide = get(conn, study.id, label)?;
        let status = if excluded { SlideStatus::Excluded } else { SlideStatus::Available };
        if slide.status == status {
            return Err(Error::Conflict(format!("slide {label} is already {status}")));
        }
        diesel::update(slides::table.find(slide.id))
            .set((slides::status.eq(status), slides::status_reason.eq(reason), slides::updated_at.eq(now())))
            .execute(conn)?;
        audit::record(
            conn,
            Change::new(
                study.chain(),
                &actor.name,
                if excluded { Action::Exclude } else { Action::Include },
                Entity::Slide,
                label,
            )
            .before(json!({"status": slide.status}))
            .after(json!({"status": status}))
            .because(reason),
        )?;
        get(conn, study.id, label)
    })
}

/// Audit events of one slide, newest first.
pub fn history(conn: &mut Conn, study_id: crate::studies::StudyId, label: &str) -> Result<Vec<audit::AuditEvent>> {
    use crate::db::schema::audit_events;
    Ok(audit_events::table
        .filter(audit_events::study_id.eq(study_id))
        .filter(audit_events::entity.eq(Entity::Slide))
        .filter(audit_events::entity_id.eq(label))
        .order(audit_events::id.desc())
        .select(audit::AuditEvent::as_select())
        .load(conn)?)
}

/// CSV rows of the slide list (the table a user would take to Excel).
impl crate::export::CsvRecord for Slide {
    const HEADER: &'static [&'static str] = &[
        "label",
        "case",
        "site",
        "stain",
        "status",
        "status_reason",
        "format",
        "width",
        "height",
        "mpp_x",
        "mpp_y",
        "file_size",
        "sha256",
        "ingested_at",
    ];
    fn record(&self) -> Vec<String> {
        let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
        vec![
            self.label.clone(),
            self.case_display_id.clone(),
            self.site_code.clone(),
            self.stain.clone(),
            self.status.to_string(),
            self.status_reason.clone().unwrap_or_default(),
            self.format.to_string(),
            self.width.to_string(),
            self.height.to_string(),
            opt(self.mpp_x),
            opt(self.mpp_y),
            self.file_size.to_string(),
            self.sha256.clone(),
            self.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
        ]
    }
}
