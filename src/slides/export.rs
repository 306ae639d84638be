//! A study's slides out as DICOM whole-slide images (`evidentia slides export --format dicom`),
//! for a hospital PACS or a regulator's viewer: each slide a VL Whole Slide Microscopy Image
//! series in its own folder, named by the slide's label. The series' UIDs are mapped from the
//! study's key (the same at every export, linkable to nothing without it); the patient is
//! named by the pseudonymous case id. What the stored copy holds is all there is to export: it
//! was de-identified at ingest.

use std::path::{Path, PathBuf};

use super::dicomwrite::{self, LevelExport, SeriesIds};
use super::{open_stored, Slide};
use crate::audit::{self, Action, Entity};
use crate::auth::permissions::{Permission, StudyAccess};
use crate::auth::Actor;
use crate::cases::deid::StudyKey;
use crate::db::paging::PageRequest;
use crate::db::Conn;
use crate::error::{Error, Result};

/// One exported slide: its label, folder and levels.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportedSlide {
    pub label: String,
    pub dir: PathBuf,
    pub levels: Vec<LevelExport>,
}

/// The study's slides named by `labels` (all of them when empty) as DICOM series under `out`;
/// audited.
pub fn export_dicom(
    conn: &mut Conn,
    actor: &Actor,
    storage: &crate::storage::Storage,
    key: &StudyKey,
    access: &StudyAccess,
    labels: &[String],
    out: &Path,
) -> Result<Vec<ExportedSlide>> {
    access.require(Permission::ViewSlides)?;
    let all = super::list(conn, access.study.id, &Default::default(), PageRequest::all())?.items;
    let unknown: Vec<&String> = labels.iter().filter(|l| !all.iter().any(|s| &s.label == *l)).collect();
    if let Some(l) = unknown.first() {
        return Err(Error::invalid("slide", format!("--slide {l}: the study has no slide of that label")));
    }
    let chosen: Vec<&Slide> = all.iter().filter(|s| labels.is_empty() || labels.contains(&s.label)).collect();
    if chosen.is_empty() {
        return Err(Error::invalid("slide", "the study has no slides to export"));
    }
    let done: Vec<ExportedSlide> = chosen
        .into_iter()
        .map(|slide| export_slide(storage, key, &access.study.code, slide, out))
        .collect::<Result<_>>()?;
    record_export(conn, actor, &access.study.code, &done)?;
    Ok(done)
}

/// Exports are not changes to the study's data: like the dossier's, they go to the system chain
/// (the study's own trail stays as it was), one event per slide.
pub fn record_export(conn: &mut Conn, actor: &Actor, study_code: &str, done: &[ExportedSlide]) -> Result<()> {
    crate::db::write_tx(conn, |conn| {
        for s in done {
            let frames: usize = s.levels.iter().map(|l| l.frames).sum();
            let how: Vec<&str> = s.levels.iter().map(|l| l.frames_from.as_str()).collect();
            audit::record(
                conn,
                audit::Change::new(audit::Chain::System, &actor.name, Action::ExportSlides, Entity::Slide, &s.label)
                    .after(serde_json::json!({"study": study_code, "format": "dicom", "levels": s.levels.len(), "frames": frames, "frames_from": how})),
            )?;
        }
        Ok(())
    })
}

/// One slide as a DICOM series in `out/<label>/` (no database needed: the caller checked access).
fn export_slide(
    storage: &crate::storage::Storage,
    key: &StudyKey,
    study_code: &str,
    slide: &Slide,
    out: &Path,
) -> Result<ExportedSlide> {
    let reader = open_stored(storage, &slide.sha256, slide.format)
        .map_err(|e| Error::Internal(anyhow::anyhow!("slide {}: {e}", slide.label)))?;
    let mut ids = series_ids(key, study_code, slide, reader.info().levels.len());
    // A slide that came as DICOM keeps its scanner's identity (Retain Device Identity).
    if let Some(kept) = slide.info()["deidentification"]["dicom_profile"]["retained"].as_object() {
        ids.device = kept.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect();
    }
    let dir = out.join(&slide.label);
    let levels = dicomwrite::write_series(reader.as_ref(), &ids, &dir)
        .map_err(|e| Error::Internal(e.context(format!("exporting slide {}", slide.label))))?;
    Ok(ExportedSlide { label: slide.label.clone(), dir, levels })
}

/// The series' identifiers: pseudonymous names, UIDs mapped from the study's key (the study's
/// UID shared by all its slides, every other one the slide's own).
fn series_ids(key: &StudyKey, study_code: &str, slide: &Slide, levels: usize) -> SeriesIds {
    let content = (slide.created_at.format("%Y%m%d").to_string(), slide.created_at.format("%H%M%S").to_string());
    let uid = |what: &str| {
        let name = if what == "study" { "dicom/study".to_string() } else { format!("dicom/{what}/{}", slide.sha256) };
        dicomwrite::uid_from(key.identifier_bytes(&name))
    };
    let patient = (slide.case_display_id.as_str(), slide.case_display_id.as_str());
    SeriesIds::with_uids(patient, study_code, &slide.label, levels, (&content.0, &content.1), uid)
}

/// One slide's DICOM series zipped (`<label>-dicom.zip` in `dir`, its `level-N.dcm` files stored
/// uncompressed: the frames are JPEG already), for the slide page's download; the caller found
/// the slide in a study the user may view.
pub fn dicom_zip(
    storage: &crate::storage::Storage,
    key: &StudyKey,
    study_code: &str,
    slide: &Slide,
    dir: &Path,
) -> Result<(PathBuf, ExportedSlide)> {
    let exported = export_slide(storage, key, study_code, slide, &dir.join("series"))?;
    let path = dir.join(format!("{}-dicom.zip", slide.label));
    let io = |e: std::io::Error| Error::Internal(e.into());
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(std::fs::File::create(&path).map_err(io)?));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .last_modified_time(zip::DateTime::default())
        .large_file(true)
        .unix_permissions(0o644);
    for level in &exported.levels {
        let name = level.file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        zip.start_file(format!("{}/{name}", slide.label), options).map_err(|e| Error::Internal(e.into()))?;
        std::io::copy(&mut std::fs::File::open(&level.file).map_err(io)?, &mut zip).map_err(io)?;
    }
    let mut file = zip.finish().map_err(|e| Error::Internal(e.into()))?;
    std::io::Write::flush(&mut file).map_err(io)?;
    Ok((path, exported))
}
