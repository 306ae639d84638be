//! DICOM whole-slide export: a slide as a VL Whole Slide Microscopy Image series (PS3.3 A.32.8;
//! one instance per pyramid level, TILED_FULL, JPEG baseline), with a new, minimal header that
//! names the subject only by its pseudonymous case id and says how it was de-identified
//! (Patient Identity Removed, De-identification Method and its code sequence, PS3.15 E.1.1 and
//! PS3.16 CID 7050). JPEG tiles are copied into the frames as they are (tables merged in when
//! the TIFF keeps them apart); tiles of any other compression are re-encoded at
//! [`EXPORT_QUALITY`]. The attribute set follows what wsidicomizer writes and dciodvfy accepts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use dicom_core::value::{DataSetSequence, PixelFragmentSequence};
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

use super::dicom::{JPEG_BASELINE, WSI_SOP_CLASS};
use super::jpeg;
use super::reader::{DirectoryRole, SlideReader};

/// JPEG quality of re-encoded tiles.
pub const EXPORT_QUALITY: u8 = 90;
/// Edge of re-encoded tiles.
const EXPORT_TILE: u32 = 256;

/// Who and what the series is: every identifier is the caller's (pseudonyms, mapped UIDs).
pub struct SeriesIds {
    pub patient_name: String,
    pub patient_id: String,
    /// Short study id (SH, at most 16 characters).
    pub study_id: String,
    /// The slide's label: Container Identifier and Specimen Identifier.
    pub container_id: String,
    pub study_uid: String,
    pub series_uid: String,
    pub frame_of_reference_uid: String,
    pub pyramid_uid: String,
    pub specimen_uid: String,
    pub dimension_organization_uid: String,
    /// One per level.
    pub instance_uids: Vec<String>,
    /// YYYYMMDD and HHMMSS of the content (the ingest, not the scan).
    pub content_date: String,
    pub content_time: String,
    /// "evidentia 0.1.0".
    pub software: String,
    /// The scanner's identity kept at ingest under the Retain Device Identity Option (DICOM
    /// keyword → value: `Manufacturer`, `DeviceSerialNumber`, …); empty for slides from other
    /// formats, whose identifying metadata was all removed.
    pub device: BTreeMap<String, String>,
}

impl SeriesIds {
    /// The identifiers of a series whose UIDs `uid` makes from each one's role: "study",
    /// "series", "frame-of-reference", "pyramid", "specimen", "dimension-organization",
    /// "level-N". `patient` is (name, id); `content` the (date, time) of the content.
    pub fn with_uids(
        patient: (&str, &str),
        study_id: &str,
        container_id: &str,
        levels: usize,
        content: (&str, &str),
        uid: impl Fn(&str) -> String,
    ) -> SeriesIds {
        SeriesIds {
            patient_name: patient.0.into(),
            patient_id: patient.1.into(),
            study_id: study_id.into(),
            container_id: container_id.into(),
            study_uid: uid("study"),
            series_uid: uid("series"),
            frame_of_reference_uid: uid("frame-of-reference"),
            pyramid_uid: uid("pyramid"),
            specimen_uid: uid("specimen"),
            dimension_organization_uid: uid("dimension-organization"),
            instance_uids: (0..levels).map(|l| uid(&format!("level-{l}"))).collect(),
            content_date: content.0.into(),
            content_time: content.1.into(),
            software: concat!("evidentia ", env!("CARGO_PKG_VERSION")).into(),
            device: BTreeMap::new(),
        }
    }
}

/// A UID that stands for `text` (its SHA-256, as [`uid_from`]): for series that need stable
/// UIDs but no secret (synthetic slides, tests).
pub fn uid_of(text: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(text.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uid_from(bytes)
}

/// How the export made its frames, per level.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LevelExport {
    pub file: PathBuf,
    pub frames: usize,
    /// "copied" or "re-encoded at quality 90".
    pub frames_from: String,
}

/// Writes `slide` (one of our stored slides) as `dir/level-N.dcm`.
pub fn write_series(slide: &dyn SlideReader, ids: &SeriesIds, dir: &Path) -> anyhow::Result<Vec<LevelExport>> {
    let info = slide.info();
    if ids.instance_uids.len() != info.levels.len() {
        bail!("{} instance UIDs for {} levels", ids.instance_uids.len(), info.levels.len());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut out = Vec::new();
    for (l, level) in info.levels.iter().enumerate() {
        let (frames, tile, photometric, from) = match copyable_level(slide, l) {
            Some((dir_index, tile, photometric)) => {
                let tiff = slide.tiff().context("a copyable level is a TIFF level")?;
                let d = &tiff.directories()[dir_index];
                let frames = (0..d.chunk_offsets.len())
                    .map(|c| {
                        let raw = tiff.raw_chunk(dir_index, c)?;
                        Ok(match &d.jpeg_tables {
                            Some(t) => jpeg::merge_tables(t, &raw),
                            None => raw,
                        })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                (frames, tile, photometric, "copied".to_string())
            }
            None => {
                let t = EXPORT_TILE;
                let tiles = u32::try_from(level.width.div_ceil(u64::from(t)) * level.height.div_ceil(u64::from(t)))?;
                let frames = (0..tiles)
                    .map(|i| Ok(super::deid::reencoded_tile(slide, l, i, t, EXPORT_QUALITY, [2, 2])?.1))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                (frames, (t, t), "YBR_FULL_422", format!("re-encoded at quality {EXPORT_QUALITY}"))
            }
        };
        let file = dir.join(format!("level-{l}.dcm"));
        let n = frames.len();
        let object = instance(slide, ids, l, tile, photometric, frames)?;
        object.write_to_file(&file).with_context(|| format!("writing {}", file.display()))?;
        out.push(LevelExport { file, frames: n, frames_from: from });
    }
    Ok(out)
}

/// A level whose tiles can be frames as they are: JPEG-compressed, chunky 8-bit RGB/YCbCr,
/// tiled. Returns its directory, tile size and Photometric Interpretation.
fn copyable_level(slide: &dyn SlideReader, level: usize) -> Option<(usize, (u32, u32), &'static str)> {
    let tiff = slide.tiff()?;
    let (i, d) = tiff.directories().iter().enumerate().find(|(_, d)| d.role == DirectoryRole::Level(level))?;
    if d.compression != 7 || !d.tiled || d.samples_per_pixel != 3 || d.bits_per_sample != 8 || d.planar_config != 1 {
        return None;
    }
    let first = tiff.raw_chunk(i, 0).ok()?;
    let stream = match &d.jpeg_tables {
        Some(t) => jpeg::merge_tables(t, &first),
        None => first,
    };
    // Photometric RGB in DICOM means the JPEG's components are R, G, B (no colour transform):
    // what Aperio writes (Adobe transform 0). Everything else is YCbCr.
    let markers = jpeg::scan_markers(&stream);
    // YCbCr frames are labelled YBR_FULL_422 whatever their chroma subsampling: PS3.5 8.2.1 would
    // have YBR_FULL for 4:4:4 frames, but OpenSlide 4.0.1 refuses YBR_FULL with JPEG baseline
    // ("Unsupported photometric interpretation"), and the JPEG stream says its own sampling.
    let photometric = match jpeg::choose_transform(&markers, Some(d.photometric)) {
        jpeg::ColorTransform::RGB => "RGB",
        jpeg::ColorTransform::YCbCr => "YBR_FULL_422",
        _ => return None,
    };
    Some((i, (d.chunk_width, d.chunk_height), photometric))
}

fn put(obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: impl Into<PrimitiveValue>) {
    obj.put(DataElement::new(tag, vr, value.into()));
}

fn put_seq(obj: &mut InMemDicomObject, tag: Tag, items: Vec<InMemDicomObject>) {
    obj.put(DataElement::new(tag, VR::SQ, DataSetSequence::from(items)));
}

/// A code sequence item (Code Value, Coding Scheme Designator, Code Meaning).
fn code(value: &str, scheme: &str, meaning: &str) -> InMemDicomObject {
    let mut c = InMemDicomObject::new_empty();
    put(&mut c, tags::CODE_VALUE, VR::SH, value);
    put(&mut c, tags::CODING_SCHEME_DESIGNATOR, VR::SH, scheme);
    put(&mut c, tags::CODE_MEANING, VR::LO, meaning);
    c
}

fn decimal(v: f64) -> String {
    // DS: at most 16 characters.
    let s = format!("{v:.10}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.chars().take(16).collect()
}

fn instance(
    slide: &dyn SlideReader,
    ids: &SeriesIds,
    l: usize,
    (tw, th): (u32, u32),
    photometric: &str,
    mut frames: Vec<Vec<u8>>,
) -> anyhow::Result<dicom_object::DefaultDicomObject> {
    let info = slide.info();
    let level = &info.levels[l];
    let mut o = InMemDicomObject::new_empty();
    let image_type: &[&str] = if l == 0 {
        &["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    } else {
        &["DERIVED", "PRIMARY", "VOLUME", "RESAMPLED"]
    };
    let strings = |v: &[&str]| PrimitiveValue::Strs(v.iter().map(|s| s.to_string()).collect());
    put(&mut o, tags::IMAGE_TYPE, VR::CS, strings(image_type));
    put(&mut o, tags::SOP_CLASS_UID, VR::UI, WSI_SOP_CLASS);
    put(&mut o, tags::SOP_INSTANCE_UID, VR::UI, ids.instance_uids[l].as_str());
    put(&mut o, tags::PYRAMID_UID, VR::UI, ids.pyramid_uid.as_str());
    put(&mut o, tags::STUDY_DATE, VR::DA, "");
    put(&mut o, tags::CONTENT_DATE, VR::DA, ids.content_date.as_str());
    put(&mut o, tags::ACQUISITION_DATE_TIME, VR::DT, format!("{}{}", ids.content_date, ids.content_time));
    put(&mut o, tags::STUDY_TIME, VR::TM, "");
    put(&mut o, tags::CONTENT_TIME, VR::TM, ids.content_time.as_str());
    put(&mut o, tags::ACCESSION_NUMBER, VR::SH, "");
    put(&mut o, tags::MODALITY, VR::CS, "SM");
    let device = |k: &str| ids.device.get(k).map(String::as_str);
    put(&mut o, tags::MANUFACTURER, VR::LO, device("Manufacturer").unwrap_or("Evidentia"));
    put(&mut o, tags::REFERRING_PHYSICIAN_NAME, VR::PN, "");
    put(&mut o, tags::MANUFACTURER_MODEL_NAME, VR::LO, device("ManufacturerModelName").unwrap_or("Evidentia export"));
    put(&mut o, tags::VOLUMETRIC_PROPERTIES, VR::CS, "VOLUME");
    put(&mut o, tags::PATIENT_NAME, VR::PN, ids.patient_name.as_str());
    put(&mut o, tags::PATIENT_ID, VR::LO, ids.patient_id.as_str());
    put(&mut o, tags::PATIENT_BIRTH_DATE, VR::DA, "");
    put(&mut o, tags::PATIENT_SEX, VR::CS, "");
    put(&mut o, tags::PATIENT_IDENTITY_REMOVED, VR::CS, "YES");
    // PS3.15 Annex E: the profile, and the option when the scanner's identity was kept (CID 7050).
    let mut methods = vec![code("113100", "DCM", "Basic Application Confidentiality Profile")];
    if ids.device.is_empty() {
        put(&mut o, tags::DEIDENTIFICATION_METHOD, VR::LO, "Evidentia: Basic Profile; no source attribute kept");
    } else {
        put(&mut o, tags::DEIDENTIFICATION_METHOD, VR::LO, "Evidentia: Basic Profile; Retain Device Identity");
        methods.push(code("113109", "DCM", "Retain Device Identity Option"));
    }
    put_seq(&mut o, tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE, methods);
    put(&mut o, tags::DEVICE_SERIAL_NUMBER, VR::LO, device("DeviceSerialNumber").unwrap_or(""));
    if let Some(uid) =
        device("DeviceUID").filter(|u| u.len() <= 64 && u.chars().all(|c| c.is_ascii_digit() || c == '.'))
    {
        put(&mut o, tags::DEVICE_UID, VR::UI, uid);
    }
    if let Some(station) = device("StationName") {
        // SH: at most 16 characters.
        put(&mut o, tags::STATION_NAME, VR::SH, station.chars().take(16).collect::<String>());
    }
    // The scanner's software and ours, which wrote the export (LO, multi-valued).
    let software: Vec<&str> = device("SoftwareVersions").into_iter().chain([ids.software.as_str()]).collect();
    put(&mut o, tags::SOFTWARE_VERSIONS, VR::LO, strings(&software));
    put(&mut o, tags::STUDY_INSTANCE_UID, VR::UI, ids.study_uid.as_str());
    put(&mut o, tags::SERIES_INSTANCE_UID, VR::UI, ids.series_uid.as_str());
    put(&mut o, tags::STUDY_ID, VR::SH, ids.study_id.chars().take(16).collect::<String>());
    put(&mut o, tags::SERIES_NUMBER, VR::IS, "1");
    put(&mut o, tags::INSTANCE_NUMBER, VR::IS, (l + 1).to_string());
    put(&mut o, tags::FRAME_OF_REFERENCE_UID, VR::UI, ids.frame_of_reference_uid.as_str());
    put(&mut o, tags::POSITION_REFERENCE_INDICATOR, VR::LO, "SLIDE_CORNER");
    let mut dim = InMemDicomObject::new_empty();
    put(&mut dim, tags::DIMENSION_ORGANIZATION_UID, VR::UI, ids.dimension_organization_uid.as_str());
    put_seq(&mut o, tags::DIMENSION_ORGANIZATION_SEQUENCE, vec![dim]);
    put(&mut o, tags::DIMENSION_ORGANIZATION_TYPE, VR::CS, "TILED_FULL");
    put(&mut o, tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(3u16));
    put(&mut o, tags::PHOTOMETRIC_INTERPRETATION, VR::CS, photometric);
    put(&mut o, tags::PLANAR_CONFIGURATION, VR::US, PrimitiveValue::from(0u16));
    put(&mut o, tags::NUMBER_OF_FRAMES, VR::IS, frames.len().to_string());
    put(&mut o, tags::ROWS, VR::US, PrimitiveValue::from(u16::try_from(th)?));
    put(&mut o, tags::COLUMNS, VR::US, PrimitiveValue::from(u16::try_from(tw)?));
    put(&mut o, tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(8u16));
    put(&mut o, tags::BITS_STORED, VR::US, PrimitiveValue::from(8u16));
    put(&mut o, tags::HIGH_BIT, VR::US, PrimitiveValue::from(7u16));
    put(&mut o, tags::PIXEL_REPRESENTATION, VR::US, PrimitiveValue::from(0u16));
    put(&mut o, tags::BURNED_IN_ANNOTATION, VR::CS, "NO");
    put(&mut o, tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "01");
    put(&mut o, tags::LOSSY_IMAGE_COMPRESSION_METHOD, VR::CS, "ISO_10918_1");
    put(&mut o, tags::CONTAINER_IDENTIFIER, VR::LO, ids.container_id.as_str());
    put_seq(&mut o, tags::ISSUER_OF_THE_CONTAINER_IDENTIFIER_SEQUENCE, vec![]);
    put_seq(&mut o, tags::CONTAINER_TYPE_CODE_SEQUENCE, vec![code("433466003", "SCT", "Microscope slide")]);
    put_seq(&mut o, tags::ACQUISITION_CONTEXT_SEQUENCE, vec![]);
    let mut specimen = InMemDicomObject::new_empty();
    put(&mut specimen, tags::SPECIMEN_IDENTIFIER, VR::LO, ids.container_id.as_str());
    put(&mut specimen, tags::SPECIMEN_UID, VR::UI, ids.specimen_uid.as_str());
    put_seq(&mut specimen, tags::ISSUER_OF_THE_SPECIMEN_IDENTIFIER_SEQUENCE, vec![]);
    put_seq(&mut specimen, tags::SPECIMEN_PREPARATION_SEQUENCE, vec![]);
    put_seq(&mut o, tags::SPECIMEN_DESCRIPTION_SEQUENCE, vec![specimen]);
    // Pixel spacing in mm, (row, column) = (y, x); 1 µm when the slide does not say.
    let (mpp_x, mpp_y) = (info.mpp_x.unwrap_or(1.0) * level.downsample, info.mpp_y.unwrap_or(1.0) * level.downsample);
    put(&mut o, tags::IMAGED_VOLUME_WIDTH, VR::FL, PrimitiveValue::from(level.width as f32 * mpp_x as f32 / 1000.0));
    put(&mut o, tags::IMAGED_VOLUME_HEIGHT, VR::FL, PrimitiveValue::from(level.height as f32 * mpp_y as f32 / 1000.0));
    put(&mut o, tags::IMAGED_VOLUME_DEPTH, VR::FL, PrimitiveValue::from(0.001f32));
    put(&mut o, tags::TOTAL_PIXEL_MATRIX_COLUMNS, VR::UL, PrimitiveValue::from(u32::try_from(level.width)?));
    put(&mut o, tags::TOTAL_PIXEL_MATRIX_ROWS, VR::UL, PrimitiveValue::from(u32::try_from(level.height)?));
    let mut origin = InMemDicomObject::new_empty();
    put(&mut origin, tags::X_OFFSET_IN_SLIDE_COORDINATE_SYSTEM, VR::DS, "0");
    put(&mut origin, tags::Y_OFFSET_IN_SLIDE_COORDINATE_SYSTEM, VR::DS, "0");
    put_seq(&mut o, tags::TOTAL_PIXEL_MATRIX_ORIGIN_SEQUENCE, vec![origin]);
    put(&mut o, tags::SPECIMEN_LABEL_IN_IMAGE, VR::CS, "NO");
    put(&mut o, tags::FOCUS_METHOD, VR::CS, "AUTO");
    put(&mut o, tags::EXTENDED_DEPTH_OF_FIELD, VR::CS, "NO");
    put(&mut o, tags::IMAGE_ORIENTATION_SLIDE, VR::DS, strings(&["0", "-1", "0", "-1", "0", "0"]));
    let mut path = InMemDicomObject::new_empty();
    put_seq(&mut path, tags::ILLUMINATION_TYPE_CODE_SEQUENCE, vec![code("111744", "DCM", "Brightfield illumination")]);
    put(&mut path, tags::OPTICAL_PATH_IDENTIFIER, VR::SH, "1");
    put_seq(&mut path, tags::ILLUMINATION_COLOR_CODE_SEQUENCE, vec![code("414298005", "SCT", "Full Spectrum")]);
    if let Some(power) = info.objective_power {
        put(&mut path, tags::OBJECTIVE_LENS_POWER, VR::DS, decimal(power));
    }
    put_seq(&mut o, tags::OPTICAL_PATH_SEQUENCE, vec![path]);
    put(&mut o, tags::NUMBER_OF_OPTICAL_PATHS, VR::UL, PrimitiveValue::from(1u32));
    put(&mut o, tags::TOTAL_PIXEL_MATRIX_FOCAL_PLANES, VR::UL, PrimitiveValue::from(1u32));
    let mut measures = InMemDicomObject::new_empty();
    put(&mut measures, tags::PIXEL_SPACING, VR::DS, strings(&[&decimal(mpp_y / 1000.0), &decimal(mpp_x / 1000.0)]));
    put(&mut measures, tags::SLICE_THICKNESS, VR::DS, "0.001");
    let mut frame_type = InMemDicomObject::new_empty();
    put(&mut frame_type, tags::FRAME_TYPE, VR::CS, strings(image_type));
    let mut path_id = InMemDicomObject::new_empty();
    put(&mut path_id, tags::OPTICAL_PATH_IDENTIFIER, VR::SH, "1");
    let mut shared = InMemDicomObject::new_empty();
    put_seq(&mut shared, tags::PIXEL_MEASURES_SEQUENCE, vec![measures]);
    put_seq(&mut shared, tags::WHOLE_SLIDE_MICROSCOPY_IMAGE_FRAME_TYPE_SEQUENCE, vec![frame_type]);
    put_seq(&mut shared, tags::OPTICAL_PATH_IDENTIFICATION_SEQUENCE, vec![path_id]);
    put_seq(&mut o, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, vec![shared]);
    // Encapsulated frames: one fragment each (even length: a JPEG may end on an odd byte and
    // takes a padding 0 after its EOI), with a Basic Offset Table.
    let mut offsets = Vec::with_capacity(frames.len());
    let mut at = 0u32;
    for f in &mut frames {
        if f.len() % 2 == 1 {
            f.push(0);
        }
        offsets.push(at);
        at = at.checked_add(u32::try_from(f.len() + 8)?).context("the level's frames exceed 4 GiB")?;
    }
    o.put(DataElement::new(tags::PIXEL_DATA, VR::OB, PixelFragmentSequence::new(offsets, frames)));
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(WSI_SOP_CLASS)
        .media_storage_sop_instance_uid(ids.instance_uids[l].as_str())
        .transfer_syntax(JPEG_BASELINE)
        .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
        .implementation_version_name("EVIDENTIA");
    Ok(o.with_meta(meta)?)
}

/// Evidentia's implementation class UID: a UUID-derived UID (PS3.5 B.2), fixed.
const IMPLEMENTATION_CLASS_UID: &str = "2.25.160389719532848152916493407362829315941";

/// A UID from 16 bytes (PS3.5 B.2: "2.25." and the decimal of a 128-bit UUID), for UIDs mapped
/// from a study's key: the same inputs give the same UID, so a slide exported twice keeps them.
pub fn uid_from(bytes: [u8; 16]) -> String {
    format!("2.25.{}", u128::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::tests::fixture;

    fn ids(levels: usize) -> SeriesIds {
        let content = ("20261207", "120000");
        SeriesIds::with_uids(("SNUBH-0001", "SNUBH-0001"), "LUNG-IO-01", "SNUBH-0001-S01", levels, content, uid_of)
    }

    /// Our own reader and OpenSlide (when installed) read the export; returns the worst and the
    /// mean channel difference from `slide` at level 0 over the whole image.
    fn read_back(slide: &dyn SlideReader, dir: &Path) -> (i32, f64) {
        let exported = crate::dicom::open(&dir.join("level-0.dcm")).unwrap();
        assert_eq!(exported.info().levels.len(), slide.info().levels.len());
        assert_eq!(exported.info().mpp_x.map(|m| (m * 1e4).round()), slide.info().mpp_x.map(|m| (m * 1e4).round()));
        let (w, h) = (slide.info().width as u32, slide.info().height as u32);
        let a = slide.read_region(0, 0, 0, w, h).unwrap();
        let b = exported.read_region(0, 0, 0, w, h).unwrap();
        let diffs: Vec<i32> = a.data.iter().zip(&b.data).map(|(x, y)| (i32::from(*x) - i32::from(*y)).abs()).collect();
        let worst = diffs.iter().copied().max().unwrap();
        let mean = diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64;
        if crate::openslide::library().is_ok() {
            let os = crate::openslide::open(&dir.join("level-0.dcm"), crate::openslide::DICOM).unwrap();
            assert_eq!(os.info().levels.len(), slide.info().levels.len());
            let c = os.read_region(0, 0, 0, w, h).unwrap();
            let d = b.data.iter().zip(&c.data).map(|(x, y)| (i32::from(*x) - i32::from(*y)).abs()).max().unwrap();
            // Over every pixel, zune-jpeg's and libjpeg-turbo's chroma upsampling of 4:2:0 frames
            // differ by a few levels at colour edges.
            assert!(d <= 6, "{dir:?}: OpenSlide reads the export differently from us by {d}");
        }
        (worst, mean)
    }

    #[test]
    fn jpeg_tiles_become_frames_and_others_are_reencoded() {
        let dir = tempfile::tempdir().unwrap();
        // A DICOM slide's TIFF copy (YCbCr JPEG tiles), an Aperio slide (RGB JPEG with shared
        // tables), a BigTIFF of LZW and deflate tiles.
        let copy = dir.path().join("copy.tiff");
        crate::deid::deidentify(&fixture("vendors/dicom/level-0.dcm"), &copy).unwrap();
        // (slide, how its frames are made, worst and mean channel difference allowed)
        for (path, expect, tolerance, mean_tolerance) in [
            (copy.clone(), "copied", 0, 0.0),
            (fixture("aperio.svs"), "copied", 0, 0.0),
            (fixture("bigtiff-lzw.tiff"), "re-encoded at quality 90", 255, 2.0),
        ] {
            let slide = crate::reader::open(&path).unwrap();
            let out = dir.path().join(format!("{}.dicom", path.file_name().unwrap().to_string_lossy()));
            let levels = write_series(slide.as_ref(), &ids(slide.info().levels.len()), &out).unwrap();
            assert!(levels.iter().all(|l| l.frames_from == expect), "{path:?}: {levels:?}");
            let (worst, mean) = read_back(slide.as_ref(), &out);
            assert!(worst <= tolerance && mean <= mean_tolerance, "{path:?}: worst {worst}, mean {mean}");
        }
        // Exported twice, the same bytes.
        let slide = crate::reader::open(&copy).unwrap();
        let again = dir.path().join("again");
        write_series(slide.as_ref(), &ids(3), &again).unwrap();
        assert_eq!(
            std::fs::read(again.join("level-0.dcm")).unwrap(),
            std::fs::read(dir.path().join("copy.tiff.dicom/level-0.dcm")).unwrap()
        );
    }

    #[test]
    fn uids_are_decimal_uuids() {
        assert_eq!(uid_from([0; 16]), "2.25.0");
        assert_eq!(uid_from([0xFF; 16]), format!("2.25.{}", u128::MAX));
        assert!(uid_from([0xFF; 16]).len() <= 64);
    }
}
