//! Demo slides: a synthetic H&E slide drawn for each of the first demo subjects' phenotype,
//! ingested through the same manifest path a site's slides take (label and PHI removed). The
//! first comes as a Hamamatsu scanner writes it (an NDPI file, re-encoded at ingest), the second
//! as a hospital PACS would give it: a DICOM whole-slide series naming the patient (its frames
//! are the drawn slide's tiles, so the pixels, and the AI's results, are the same).

use std::path::Path;

use crate::auth::permissions::study_access;
use crate::auth::Actor;
use crate::db::Conn;
use crate::error::Result;
use crate::slides::ingest::{self, SourceFile};
use crate::slides::synth::{self, Phenotype, SynthParams};

use super::truth::{self, DemoSubject};
use super::DemoStudy;

/// Slide size: 3 × 2 mm of tissue at 0.5 µm/px (six 1 mm² grid cells), small enough that two
/// dozen are drawn in about a minute with a release build.
const WIDTH: u32 = 6000;
const HEIGHT: u32 = 4000;
const MPP: f64 = 0.5;

fn phenotype(s: &DemoSubject) -> Phenotype {
    match s.phenotype {
        truth::Phenotype::Inflamed => Phenotype::Inflamed,
        truth::Phenotype::Excluded => Phenotype::Excluded,
        truth::Phenotype::Desert => Phenotype::Desert,
    }
}

/// Draws and ingests one H&E slide for each of the first `count` subjects (half per site).
/// Skipped when the study already has slides.
pub fn seed_slides(
    conn: &mut Conn,
    storage: &crate::storage::Storage,
    data_dir: &Path,
    demo: &DemoStudy,
    count: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<String>> {
    let actor = Actor::cli_operator();
    let access = study_access(conn, &actor, demo.code)?;
    if count == 0 || crate::slides::count(conn, access.study.id)? > 0 {
        return Ok(Vec::new());
    }
    let subjects = truth::subjects(demo.subjects, demo.seed);
    let picked: Vec<&DemoSubject> = ["SNUBH", "SMC"]
        .iter()
        .flat_map(|site| subjects.iter().filter(move |s| s.site == *site).take(count.div_ceil(2)))
        .take(count)
        .collect();
    let dir = data_dir.join("tmp").join("demo-slides");
    std::fs::create_dir_all(&dir).map_err(anyhow::Error::from)?;
    // The drawn originals carry fake identifiers in their names and labels: gone in every case.
    let result = draw_and_ingest(conn, (storage, data_dir), demo, (&access, &actor), &picked, &dir, progress);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn draw_and_ingest(
    conn: &mut Conn,
    (storage, data_dir): (&crate::storage::Storage, &Path),
    demo: &DemoStudy,
    (access, actor): (&crate::auth::permissions::StudyAccess, &Actor),
    picked: &[&DemoSubject],
    dir: &Path,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<String>> {
    let mut manifest = String::from("file,subject_id,site,stain,block,scanner\n");
    let mut files = Vec::new();
    for (i, s) in picked.iter().enumerate() {
        progress(i, picked.len());
        // Like a real site export, the file name carries the hospital's identifiers.
        let mut name = format!("{}_{}.svs", s.hospital_id, s.mrn);
        let mut path = dir.join(&name);
        let params = SynthParams::new(WIDTH, HEIGHT, MPP, phenotype(s), demo.seed + i as u64);
        synth::write_slide(&path, &params, &mut |_, _| {})?;
        let _ = std::fs::remove_file(synth::truth_path_for(&path));
        if i == 0 {
            name = format!("{}_{}.ndpi", s.hospital_id, s.mrn);
            path = as_hamamatsu_ndpi(&path, s, &dir.join(&name))?;
        } else if i == 1 {
            path = as_pacs_series(&path, s, &dir.join(format!("{}_pacs", s.hospital_id)), demo.seed)?;
            name = "level-0.dcm".into();
        }
        manifest.push_str(&format!("{name},{},{},H&E,A1,Synthetic ScanScope\n", s.hospital_id, s.site));
        files.push(SourceFile { name, path, uploaded: true });
    }
    let key = crate::cases::deid::study_key(conn, data_dir, demo.code)?;
    let scrubber = crate::cases::scrub::Scrubber::new(&[], &[]).map_err(|e| anyhow::anyhow!(e))?;
    let mut plan = ingest::plan(conn, access, &key, &scrubber, manifest.as_bytes(), &files, None)?;
    plan.upload_dir = Some(dir.to_path_buf());
    let report = ingest::ingest_now(conn, actor, access, storage, data_dir, &plan)?;
    progress(picked.len(), picked.len());
    if let Some(failed) = report.iter().find(|r| r.outcome == "failed") {
        return Err(anyhow::anyhow!("demo slide for {}: {}", failed.case, failed.message).into());
    }
    let from = match report.len() {
        0 => "",
        1 => " (from a Hamamatsu NDPI file)",
        _ => " (one from a Hamamatsu NDPI file, one from a DICOM series)",
    };
    Ok(vec![format!("{} synthetic slides in {}{from}", report.len(), demo.code)])
}

/// The drawn slide `svs` as a Hamamatsu scanner writes it (NDPI), with the patient's hospital
/// number as the slide's reference and barcode (for de-identification to remove).
fn as_hamamatsu_ndpi(svs: &Path, s: &DemoSubject, dest: &Path) -> Result<std::path::PathBuf> {
    use crate::slides::ndpiwrite::{self, NdpiIdentifiers};
    let slide = crate::slides::reader::open(svs).map_err(anyhow::Error::from)?;
    let ids = NdpiIdentifiers {
        reference: &format!("{} {}", s.hospital_id, s.mrn),
        barcode: &s.mrn,
        serial: "C13210-000123",
        date_time: "2024:06:15 10:30:00",
    };
    ndpiwrite::write_ndpi(slide.as_ref(), dest, 20.0, &ids)?;
    std::fs::remove_file(svs).map_err(anyhow::Error::from)?;
    Ok(dest.to_path_buf())
}

/// The drawn slide `svs` as the DICOM series a PACS would hold, with the patient's name and
/// hospital number in it (for de-identification to remove); returns its first instance.
fn as_pacs_series(svs: &Path, s: &DemoSubject, dir: &Path, seed: u64) -> Result<std::path::PathBuf> {
    use crate::slides::dicomwrite::{self, SeriesIds};
    let slide = crate::slides::reader::open(svs).map_err(anyhow::Error::from)?;
    let (name, levels) = (format!("{}^DEMO", s.hospital_id), slide.info().levels.len());
    let ids = SeriesIds::with_uids(
        (&name, &s.mrn),
        "PATH-2024",
        &format!("{}-A1", s.mrn),
        levels,
        ("20240615", "103000"),
        |what| dicomwrite::uid_of(&format!("demo/{seed}/{}/{what}", s.hospital_id)),
    );
    dicomwrite::write_series(slide.as_ref(), &ids, dir)?;
    std::fs::remove_file(svs).map_err(anyhow::Error::from)?;
    Ok(dir.join("level-0.dcm"))
}
