//! DICOM whole-slide images (VL Whole Slide Microscopy Image, Supplement 145; PS3.3 A.32.8 and
//! C.8.12.4), read natively with dicom-rs: the instances of one series in a folder are one slide
//! (VOLUME instances its pyramid levels, LABEL, OVERVIEW and THUMBNAIL its associated images),
//! frames organised TILED_FULL (frame i at column i mod tiles-across, row i div tiles-across) or
//! TILED_SPARSE (positions from the Per-Frame Functional Groups), JPEG baseline frames decoded by
//! our JPEG path and uncompressed frames sliced. JPEG 2000 frames go to OpenSlide when it is
//! installed ([`super::openslide`]), otherwise they are refused by name.
//!
//! Instances are read whole into memory (frames as stored, not decoded), which suits ingest,
//! inspection and export of slides up to a few gigabytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dicom_core::dictionary::DataDictionary;
use dicom_core::value::Value as DicomValue;
use dicom_core::{Tag, VR};
use dicom_dictionary_std::{tags, StandardDataDictionary};
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions};

use super::jpeg;
use super::openslide::{self, OWN_BACKEND};
use super::reader::{Level, RgbImage, SlideError, SlideInfo, SlideReader, MAX_IMAGE_PIXELS};

/// VL Whole Slide Microscopy Image Storage.
pub const WSI_SOP_CLASS: &str = "1.2.840.10008.5.1.4.1.1.77.1.6";
/// JPEG Baseline (Process 1): the syntax frames are copied in and exported with.
pub const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const JPEG_2000: [&str; 2] = ["1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"];

/// How an instance's frames are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameCodec {
    Jpeg,
    Uncompressed,
}

/// One instance: a pyramid level or an associated image, its frames on a tile grid.
pub struct Instance {
    /// "VOLUME", "LABEL", "OVERVIEW" or "THUMBNAIL" (Image Type, value 3).
    pub role: String,
    pub width: u32,
    pub height: u32,
    pub tile_width: u32,
    pub tile_height: u32,
    pub codec: FrameCodec,
    /// Photometric Interpretation: "YBR_FULL_422", "RGB", …
    pub photometric: String,
    frames: Vec<Vec<u8>>,
    /// Tile (column + row × across) → frame index; None for a tile a sparse instance lacks.
    grid: Vec<Option<usize>>,
    pub mpp: Option<(f64, f64)>,
    pub objective_power: Option<f64>,
}

impl Instance {
    pub fn tiles_across(&self) -> u32 {
        self.width.div_ceil(self.tile_width)
    }

    pub fn tiles_down(&self) -> u32 {
        self.height.div_ceil(self.tile_height)
    }

    /// The stored bytes of tile (`col`, `row`): a complete JPEG stream, or raw RGB; None when
    /// a sparse instance has no frame there.
    pub fn frame_at(&self, col: u32, row: u32) -> Option<&[u8]> {
        let i = (row * self.tiles_across() + col) as usize;
        self.grid.get(i).copied().flatten().map(|f| self.frames[f].as_slice())
    }

    fn decode(&self, col: u32, row: u32) -> Result<Option<RgbImage>, SlideError> {
        let Some(bytes) = self.frame_at(col, row) else { return Ok(None) };
        let (w, h) = (self.tile_width, self.tile_height);
        match self.codec {
            FrameCodec::Jpeg => {
                let photometric = if self.photometric == "RGB" { 2 } else { 6 };
                jpeg::decode_rgb(bytes, None, Some(photometric), MAX_IMAGE_PIXELS).map(Some)
            }
            FrameCodec::Uncompressed => {
                let n = w as usize * h as usize * 3;
                let data = bytes.get(..n).ok_or_else(|| {
                    SlideError::Corrupt(format!(
                        "a frame holds {} bytes, not the {n} of {w} × {h} RGB pixels",
                        bytes.len()
                    ))
                })?;
                Ok(Some(RgbImage { width: w, height: h, data: data.to_vec() }))
            }
        }
    }

    /// The region (`x`, `y`, `w` × `h`) of this instance's pixels; white outside and where a
    /// sparse instance has no frame.
    fn region(&self, x: i64, y: i64, w: u32, h: u32) -> Result<RgbImage, SlideError> {
        super::reader::compose_tiles(
            (x, y, w, h),
            (self.width, self.height),
            (self.tile_width, self.tile_height),
            |col, row| self.decode(col, row),
        )
    }
}

/// What de-identification keeps of a DICOM series: the device's identity, as PS3.15 Annex E's
/// Basic Application Level Confidentiality Profile with the **Retain Device Identity Option**
/// allows (Table E.1-1, column "Rtn. Dev. Id. Opt.": Device Serial Number, Device UID and
/// Station Name are "K"), and the device's make, model and software versions, which the table
/// does not list (the Basic Profile keeps what it does not list). Every other attribute is
/// removed, more than the profile asks: the stored copy is our TIFF, which needs none of them.
pub const DEVICE_IDENTITY: [(Tag, &str); 6] = [
    (tags::MANUFACTURER, "Manufacturer"),
    (tags::MANUFACTURER_MODEL_NAME, "ManufacturerModelName"),
    (tags::DEVICE_SERIAL_NUMBER, "DeviceSerialNumber"),
    (tags::DEVICE_UID, "DeviceUID"),
    (tags::STATION_NAME, "StationName"),
    (tags::SOFTWARE_VERSIONS, "SoftwareVersions"),
];

/// The device identity of `obj` ([`DEVICE_IDENTITY`]), by keyword: printable text, at most
/// 64 characters (LO's limit), empty values left out.
fn device_identity(obj: &InMemDicomObject) -> BTreeMap<String, String> {
    DEVICE_IDENTITY
        .iter()
        .filter_map(|(tag, keyword)| {
            let value: String = text(obj, *tag).chars().filter(|c| !c.is_control()).take(64).collect();
            let value = value.trim().to_string();
            (!value.is_empty()).then(|| (keyword.to_string(), value))
        })
        .collect()
}

/// A DICOM slide: its series' instances, read.
pub struct DicomSlide {
    /// Pyramid levels, largest first.
    pub levels: Vec<Instance>,
    /// ("label" | "macro" | "thumbnail", instance), as OpenSlide names them.
    pub associated: Vec<(String, Instance)>,
    /// Every file of the series (the hash of a slide covers them all).
    pub files: Vec<PathBuf>,
    /// The scanner's identity ([`DEVICE_IDENTITY`]), from the pyramid's first instance.
    pub device: BTreeMap<String, String>,
    info: SlideInfo,
}

/// Opens the series `path` belongs to: the instances in its folder with its Series Instance
/// UID (or, for a folder, the one series in it).
pub fn open(path: &Path) -> Result<DicomSlide, SlideError> {
    let files = series_files(path)?;
    let mut levels = Vec::new();
    let mut associated = Vec::new();
    let mut properties = BTreeMap::new();
    let mut device = BTreeMap::new();
    for f in &files {
        let obj = OpenFileOptions::new().open_file(f).map_err(|_| unreadable())?;
        let volume = role_of(&obj) == "VOLUME";
        let instance = match read_instance(&obj) {
            Ok(i) => i,
            // A label or overview that does not read is dropped at ingest anyway.
            Err(_) if !volume => continue,
            Err(e) => return Err(e),
        };
        if volume {
            // A label burned into the pyramid would be copied with its pixels.
            for tag in [tags::BURNED_IN_ANNOTATION, tags::SPECIMEN_LABEL_IN_IMAGE] {
                if text(&obj, tag) == "YES" {
                    return Err(SlideError::Unsupported(
                        "the DICOM pyramid says it shows the slide label or burned-in annotation: not ingested".into(),
                    ));
                }
            }
            if properties.is_empty() {
                properties = attribute_texts(&obj);
                device = device_identity(&obj);
            }
            levels.push(instance);
        } else {
            let name = match instance.role.as_str() {
                "LABEL" => "label",
                "OVERVIEW" => "macro",
                "THUMBNAIL" => "thumbnail",
                _ => continue,
            };
            associated.push((name.to_string(), instance));
        }
    }
    levels.sort_by_key(|l| std::cmp::Reverse(u64::from(l.width) * u64::from(l.height)));
    if levels.windows(2).any(|p| (p[0].width, p[0].height) == (p[1].width, p[1].height)) {
        return Err(SlideError::Unsupported(
            "two DICOM pyramid instances of the same size (a concatenation or several focal planes): not supported"
                .into(),
        ));
    }
    let Some(base) = levels.first() else {
        return Err(SlideError::Corrupt("the DICOM series has no VOLUME instance (no pyramid level)".into()));
    };
    let info = SlideInfo {
        format: openslide::DICOM.format.into(),
        backend: OWN_BACKEND.into(),
        width: base.width.into(),
        height: base.height.into(),
        levels: levels
            .iter()
            .map(|l| Level {
                width: l.width.into(),
                height: l.height.into(),
                downsample: f64::from(base.width) / f64::from(l.width),
            })
            .collect(),
        mpp_x: base.mpp.map(|m| m.0),
        mpp_y: base.mpp.map(|m| m.1),
        objective_power: base.objective_power,
        associated: associated.iter().map(|(n, _)| n.clone()).collect(),
        properties,
    };
    Ok(DicomSlide { levels, associated, files, device, info })
}

/// The files of the series `path` belongs to (or of the one series in folder `path`), in name
/// order.
pub fn series_files(path: &Path) -> Result<Vec<PathBuf>, SlideError> {
    let (folder, wanted) = if path.is_dir() {
        (path.to_path_buf(), None)
    } else {
        let head = read_header(path)?;
        (path.parent().unwrap_or(Path::new(".")).to_path_buf(), Some(text(&head, tags::SERIES_INSTANCE_UID)))
    };
    let mut series: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(&folder)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    names.sort();
    for p in names.into_iter().filter(|p| p.is_file()) {
        // Other files beside a series (a DICOMDIR, notes) are not part of it.
        let Ok(head) = read_header(&p) else { continue };
        if head.meta().media_storage_sop_class_uid().trim_end_matches('\0') == WSI_SOP_CLASS {
            series.entry(text(&head, tags::SERIES_INSTANCE_UID)).or_default().push(p);
        }
    }
    let files = match wanted {
        Some(uid) => series.remove(&uid).unwrap_or_default(),
        None if series.len() > 1 => {
            return Err(SlideError::Unsupported(format!(
                "the folder holds {} DICOM whole-slide series; name one of its files",
                series.len()
            )))
        }
        None => series.into_values().next().unwrap_or_default(),
    };
    if files.is_empty() {
        return Err(SlideError::Unsupported(
            "not a DICOM whole-slide image (VL Whole Slide Microscopy Image Storage)".into(),
        ));
    }
    Ok(files)
}

fn read_header(path: &Path) -> Result<DefaultDicomObject, SlideError> {
    OpenFileOptions::new().read_until(tags::PIXEL_DATA).open_file(path).map_err(|_| unreadable())
}

/// dicom-rs's read errors name the file, whose path may name the patient: the message says
/// what, not where.
fn unreadable() -> SlideError {
    SlideError::Corrupt("a file of the DICOM series could not be read (damaged, or not DICOM)".into())
}

/// Image Type value 3: "VOLUME", "LABEL", "OVERVIEW", "THUMBNAIL".
fn role_of(obj: &InMemDicomObject) -> String {
    obj.get(tags::IMAGE_TYPE)
        .and_then(|e| e.to_multi_str().ok())
        .and_then(|v| v.get(2).cloned())
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn text(obj: &InMemDicomObject, tag: Tag) -> String {
    obj.get(tag).and_then(|e| e.to_str().ok()).map(|s| s.trim_end_matches(['\0', ' ']).to_string()).unwrap_or_default()
}

/// A positive dimension (Rows, Columns, Total Pixel Matrix …).
fn dimension(obj: &InMemDicomObject, tag: Tag, what: &str) -> Result<u32, SlideError> {
    obj.get(tag)
        .and_then(|e| e.to_int::<i64>().ok())
        .and_then(|v| u32::try_from(v).ok())
        .filter(|v| *v > 0)
        .ok_or_else(|| SlideError::Corrupt(format!("the DICOM instance lacks a usable {what}")))
}

/// The first item of sequence `tag` in `obj`.
fn item(obj: &InMemDicomObject, tag: Tag) -> Option<&InMemDicomObject> {
    obj.get(tag)?.items()?.first()
}

fn read_instance(obj: &DefaultDicomObject) -> Result<Instance, SlideError> {
    let syntax = obj.meta().transfer_syntax().trim_end_matches('\0').to_string();
    let codec = match syntax.as_str() {
        JPEG_BASELINE => FrameCodec::Jpeg,
        EXPLICIT_LE | IMPLICIT_LE => FrameCodec::Uncompressed,
        s if JPEG_2000.contains(&s) => return Err(SlideError::Vendor(openslide::DICOM)),
        other => {
            return Err(SlideError::Unsupported(format!(
                "DICOM frames in transfer syntax {other} are not supported (JPEG baseline, JPEG 2000 through OpenSlide, or uncompressed)"
            )))
        }
    };
    let role = role_of(obj);
    let planes = obj.get(tags::TOTAL_PIXEL_MATRIX_FOCAL_PLANES).and_then(|e| e.to_int::<i64>().ok()).unwrap_or(1);
    let paths = obj.get(tags::NUMBER_OF_OPTICAL_PATHS).and_then(|e| e.to_int::<i64>().ok()).unwrap_or(1);
    if planes > 1 || paths > 1 {
        return Err(SlideError::Unsupported(format!(
            "DICOM slides with {planes} focal planes and {paths} optical paths are not supported (one of each)"
        )));
    }
    let samples = obj.get(tags::SAMPLES_PER_PIXEL).and_then(|e| e.to_int::<i64>().ok()).unwrap_or(0);
    if samples != 3 {
        return Err(SlideError::Unsupported(format!(
            "DICOM frames with {samples} samples per pixel are not supported (RGB only)"
        )));
    }
    let tile_width = dimension(obj, tags::COLUMNS, "Columns")?;
    let tile_height = dimension(obj, tags::ROWS, "Rows")?;
    // A single-frame image (a label) may leave the total pixel matrix out.
    let width = obj
        .get(tags::TOTAL_PIXEL_MATRIX_COLUMNS)
        .map_or(Ok(tile_width), |_| dimension(obj, tags::TOTAL_PIXEL_MATRIX_COLUMNS, "Total Pixel Matrix Columns"))?;
    let height = obj
        .get(tags::TOTAL_PIXEL_MATRIX_ROWS)
        .map_or(Ok(tile_height), |_| dimension(obj, tags::TOTAL_PIXEL_MATRIX_ROWS, "Total Pixel Matrix Rows"))?;
    if u64::from(tile_width) * u64::from(tile_height) > super::reader::MAX_CHUNK_PIXELS {
        return Err(SlideError::TooLarge(format!("DICOM frames of {tile_width} × {tile_height} pixels")));
    }
    let n_frames = obj.get(tags::NUMBER_OF_FRAMES).and_then(|e| e.to_int::<i64>().ok()).unwrap_or(1);
    let frames = frames_of(obj, codec, n_frames, tile_width, tile_height)?;
    let across = width.div_ceil(tile_width);
    let tiles = u64::from(across) * u64::from(height.div_ceil(tile_height));
    if tiles > 10_000_000 {
        return Err(SlideError::TooLarge(format!(
            "a DICOM instance of {width} × {height} pixels in {tile_width} × {tile_height} tiles"
        )));
    }
    let mut grid = vec![None; tiles as usize];
    let organisation = text(obj, tags::DIMENSION_ORGANIZATION_TYPE);
    match obj.get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE).and_then(|e| e.items()) {
        Some(groups) if organisation != "TILED_FULL" => {
            for (f, group) in groups.iter().enumerate().take(frames.len()) {
                let position = item(group, tags::PLANE_POSITION_SLIDE_SEQUENCE).ok_or_else(|| {
                    SlideError::Corrupt(format!("frame {} of a TILED_SPARSE instance has no plane position", f + 1))
                })?;
                let at = |tag| position.get(tag).and_then(|e| e.to_int::<i64>().ok());
                let (Some(c), Some(r)) = (
                    at(tags::COLUMN_POSITION_IN_TOTAL_IMAGE_PIXEL_MATRIX),
                    at(tags::ROW_POSITION_IN_TOTAL_IMAGE_PIXEL_MATRIX),
                ) else {
                    return Err(SlideError::Corrupt(format!(
                        "frame {} has no position in the total pixel matrix",
                        f + 1
                    )));
                };
                let inside = (1..=i64::from(width)).contains(&c) && (1..=i64::from(height)).contains(&r);
                if !inside {
                    return Err(SlideError::Corrupt(format!("frame {} lies outside the image ({c}, {r})", f + 1)));
                }
                let (col, row) = ((c - 1) / i64::from(tile_width), (r - 1) / i64::from(tile_height));
                grid[(row * i64::from(across) + col) as usize] = Some(f);
            }
        }
        None if organisation == "TILED_SPARSE" => {
            return Err(SlideError::Corrupt("a TILED_SPARSE instance without frame positions".into()));
        }
        _ => {
            if organisation.is_empty() && frames.len() as u64 != tiles && tiles > 1 {
                return Err(SlideError::Corrupt(
                    "a tiled DICOM instance without frame positions holds fewer frames than tiles".into(),
                ));
            }
            for (t, slot) in grid.iter_mut().enumerate().take(frames.len()) {
                *slot = Some(t);
            }
        }
    }
    let shared = item(obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
    let spacing = shared
        .and_then(|s| item(s, tags::PIXEL_MEASURES_SEQUENCE))
        .and_then(|m| m.get(tags::PIXEL_SPACING))
        .and_then(|e| e.to_multi_float64().ok())
        .filter(|v| v.len() == 2 && v.iter().all(|x| x.is_finite() && *x > 0.0));
    // Pixel Spacing is (row spacing, column spacing) in mm: y then x.
    let mpp = spacing.map(|v| (v[1] * 1000.0, v[0] * 1000.0));
    let objective_power = item(obj, tags::OPTICAL_PATH_SEQUENCE)
        .and_then(|o| o.get(tags::OBJECTIVE_LENS_POWER))
        .and_then(|e| e.to_float64().ok())
        .filter(|p| p.is_finite() && *p > 0.0);
    Ok(Instance {
        role,
        width,
        height,
        tile_width,
        tile_height,
        codec,
        photometric: text(obj, tags::PHOTOMETRIC_INTERPRETATION),
        frames,
        grid,
        mpp,
        objective_power,
    })
}

/// The frames of the Pixel Data: one fragment per frame, or fragments grouped by the Basic
/// Offset Table; uncompressed pixel data cut into frame-sized pieces.
fn frames_of(obj: &DefaultDicomObject, codec: FrameCodec, n: i64, w: u32, h: u32) -> Result<Vec<Vec<u8>>, SlideError> {
    let pixel =
        obj.get(tags::PIXEL_DATA).ok_or_else(|| SlideError::Corrupt("the DICOM instance has no pixel data".into()))?;
    let n = usize::try_from(n).unwrap_or(0);
    match (codec, pixel.value()) {
        (FrameCodec::Jpeg, DicomValue::PixelSequence(seq)) => {
            let fragments = seq.fragments();
            if fragments.len() == n {
                return Ok(fragments.to_vec());
            }
            if n == 1 {
                // One frame in several fragments (PS3.5 A.4: allowed without an offset table).
                return Ok(vec![fragments.concat()]);
            }
            let table = seq.offset_table();
            if table.len() != n {
                return Err(SlideError::Corrupt(format!(
                    "{} fragments for {n} frames and no offset table to group them",
                    fragments.len()
                )));
            }
            // Offsets count from the first fragment's item header (8 bytes each).
            let mut starts = Vec::with_capacity(fragments.len());
            let mut at = 0u64;
            for f in fragments {
                starts.push(at);
                at += f.len() as u64 + 8;
            }
            let mut frames = vec![Vec::new(); n];
            for (f, start) in fragments.iter().zip(starts) {
                let frame = table.iter().rposition(|&o| u64::from(o) <= start).unwrap_or(0);
                frames[frame].extend_from_slice(f);
            }
            Ok(frames)
        }
        (FrameCodec::Uncompressed, DicomValue::Primitive(p)) => {
            let bytes = p.to_bytes();
            let size = w as usize * h as usize * 3;
            if size.checked_mul(n).is_none_or(|total| bytes.len() < total) {
                return Err(SlideError::Corrupt(format!(
                    "the pixel data holds {} bytes, not {n} frames of {size}",
                    bytes.len()
                )));
            }
            Ok(bytes.chunks(size).take(n).map(<[u8]>::to_vec).collect())
        }
        _ => Err(SlideError::Corrupt("the DICOM pixel data is not encoded as its transfer syntax says".into())),
    }
}

/// `dicom.<Keyword>` → value for the top-level text and number attributes (what the file says
/// about its patient, study and device; for the listing of what de-identification removed).
fn attribute_texts(obj: &InMemDicomObject) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in obj.iter() {
        let tag = e.header().tag;
        if tag == tags::PIXEL_DATA || matches!(e.vr(), VR::SQ | VR::OB | VR::OW | VR::UN | VR::OF | VR::OD | VR::OL) {
            continue;
        }
        let name = StandardDataDictionary
            .by_tag(tag)
            .map(|entry| entry.alias.to_string())
            .unwrap_or_else(|| format!("{:04X}{:04X}", tag.group(), tag.element()));
        if let Ok(v) = e.to_str() {
            out.insert(format!("dicom.{name}"), v.trim_end_matches(['\0', ' ']).to_string());
        }
    }
    out
}

impl SlideReader for DicomSlide {
    fn info(&self) -> &SlideInfo {
        &self.info
    }

    fn read_region(&self, level: usize, x: i64, y: i64, w: u32, h: u32) -> Result<RgbImage, SlideError> {
        let l =
            self.levels.get(level).ok_or_else(|| SlideError::OutOfBounds(format!("level {level} does not exist")))?;
        let ds = self.info.levels[level].downsample;
        l.region((x as f64 / ds).floor() as i64, (y as f64 / ds).floor() as i64, w, h)
    }

    fn associated_image(&self, name: &str) -> Result<RgbImage, SlideError> {
        let (_, a) = self
            .associated
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| SlideError::NotFound(format!("the slide has no associated image '{name}'")))?;
        a.region(0, 0, a.width, a.height)
    }

    fn dicom(&self) -> Option<&DicomSlide> {
        Some(self)
    }

    fn memory_bytes(&self) -> usize {
        self.levels
            .iter()
            .chain(self.associated.iter().map(|(_, a)| a))
            .map(|i| i.frames.iter().map(Vec::len).sum::<usize>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::tests::{fixture, matches_reference};
    use serde_json::Value as Json;

    fn reference() -> Json {
        serde_json::from_str(&std::fs::read_to_string(fixture("vendors/reference.json")).unwrap()).unwrap()
    }

    #[test]
    fn full_and_sparse_series_read_as_openslide_does() {
        let reference = reference();
        for name in ["dicom/level-0.dcm", "dicom-sparse/level-0.dcm"] {
            let slide =
                crate::reader::open(&fixture(&format!("vendors/{name}"))).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!((slide.info().format.as_str(), slide.info().backend.as_str()), ("dicom", OWN_BACKEND));
            // Our JPEG decoder against libjpeg-turbo's (OpenSlide): within 3, as for SVS.
            let worst = matches_reference(name, slide.as_ref(), &reference[name], 3);
            eprintln!("{name}: worst channel difference from OpenSlide {worst}");
            let label = slide.associated_image("label").unwrap();
            assert_eq!((label.width, label.height), (300, 200));
            for key in reference[name]["phi_properties"].as_array().unwrap() {
                assert!(slide.info().properties.contains_key(key.as_str().unwrap()), "{name}: {key}");
            }
        }
        // The sparse series lacks tile 1 of level 0: white there, as wsidicom shows it.
        let sparse = crate::reader::open(&fixture("vendors/dicom-sparse/level-1.dcm")).unwrap();
        let d = sparse.dicom().unwrap();
        assert!(d.levels[0].frame_at(1, 0).is_none() && d.levels[0].frame_at(0, 0).is_some());
        let hole = sparse.read_region(0, 256 + 100, 100, 8, 8).unwrap();
        assert!(hole.data.iter().all(|&b| b == 255));
        // Any instance, or the folder, opens the whole series.
        let folder = open(&fixture("vendors/dicom")).unwrap();
        assert_eq!((folder.levels.len(), folder.associated.len(), folder.files.len()), (3, 2, 5));
    }

    #[test]
    fn frames_are_copied_into_the_tiff_and_only_the_device_identity_is_kept() {
        let reference = reference();
        let dir = tempfile::tempdir().unwrap();
        let mut planted: Vec<String> =
            reference["planted_phi"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
        planted.extend(reference["dicom_uids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()));
        for name in ["dicom/level-0.dcm", "dicom-sparse/level-0.dcm"] {
            let dest = dir.path().join("copy.tiff");
            let (outcome, info) = crate::deid::deidentify(&fixture(&format!("vendors/{name}")), &dest).unwrap();
            let conversion = outcome.conversion.clone().unwrap();
            assert_eq!(conversion.summary(), "frames copied byte for byte from DICOM");
            assert_eq!(outcome.removed_images, ["label", "macro"]);
            // PS3.15 Basic Profile with Retain Device Identity: the scanner's identity kept,
            // named as kept, and not as removed; the copy itself holds none of it.
            let profile = outcome.dicom_profile.clone().unwrap();
            assert_eq!(profile.options, [crate::deid::RETAIN_DEVICE_IDENTITY]);
            assert_eq!(profile.retained.get("DeviceSerialNumber").map(String::as_str), Some("UFS-DEVICE-4711"));
            assert_eq!(profile.retained.get("Manufacturer").map(String::as_str), Some("Philips"));
            assert!(profile.retained.keys().all(|k| DEVICE_IDENTITY.iter().any(|(_, d)| d == k)));
            assert!(!outcome.removed_metadata.iter().any(|k| k == "dicom.DeviceSerialNumber"));
            assert!(outcome.removed_metadata.iter().any(|k| k == "dicom.PatientName"));
            assert!(profile.summary().ends_with("with the Retain Device Identity Option (kept: DeviceSerialNumber, Manufacturer, ManufacturerModelName, SoftwareVersions)"), "{}", profile.summary());
            for key in reference[name]["phi_properties"].as_array().unwrap() {
                assert!(outcome.removed_metadata.iter().any(|k| k == key.as_str().unwrap()), "{name}: {key}");
            }
            assert_eq!(
                (info.format.as_str(), info.levels.len(), info.mpp_x.map(|m| (m * 1e6).round() / 1e6)),
                ("generic-tiff", 3, Some(0.25))
            );
            let bytes = std::fs::read(&dest).unwrap();
            for phi in &planted {
                assert!(!bytes.windows(phi.len()).any(|w| w == phi.as_bytes()), "{name}: {phi} in the copy");
            }
            // The tiles are the frames (their entropy-coded data unchanged).
            let original = open(&fixture(&format!("vendors/{name}"))).unwrap();
            let copy = crate::reader::open(&dest).unwrap();
            let frame = original.levels[0].frame_at(0, 0).unwrap();
            let tile = copy.tiff().unwrap().raw_chunk(0, 0).unwrap();
            let sos = |b: &[u8]| b.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
            assert_eq!(&frame[sos(frame)..], &tile[sos(&tile)..], "{name}");
        }
    }

    /// The fixture series copied into a temporary folder with level 0 changed by `change`.
    fn changed_series(change: impl FnOnce(&mut DefaultDicomObject)) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for e in std::fs::read_dir(fixture("vendors/dicom")).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
        }
        let path = dir.path().join("level-0.dcm");
        let mut obj = OpenFileOptions::new().open_file(&path).unwrap();
        change(&mut obj);
        obj.write_to_file(&path).unwrap();
        dir
    }

    #[test]
    fn what_cannot_be_read_right_is_refused_by_name() {
        use dicom_core::{DataElement, PrimitiveValue};
        let put = |tag: Tag, vr: VR, v: &'static str| {
            move |o: &mut DefaultDicomObject| {
                o.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
            }
        };
        let cases: [(tempfile::TempDir, &str); 3] = [
            (changed_series(put(tags::BURNED_IN_ANNOTATION, VR::CS, "YES")), "burned-in annotation"),
            (changed_series(put(tags::DIMENSION_ORGANIZATION_TYPE, VR::CS, "TILED_SPARSE")), "without frame positions"),
            (
                changed_series(|o| {
                    o.put(DataElement::new(tags::TOTAL_PIXEL_MATRIX_COLUMNS, VR::UL, PrimitiveValue::from(512u32)));
                    o.put(DataElement::new(tags::TOTAL_PIXEL_MATRIX_ROWS, VR::UL, PrimitiveValue::from(384u32)));
                }),
                "of the same size",
            ),
        ];
        for (dir, expect) in cases {
            let err =
                crate::reader::open(&dir.path().join("level-1.dcm")).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains(expect), "{expect}: {err}");
        }
        // Read errors never name the file (its path may name the patient).
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("DOE_JANE.dcm");
        let mut bytes = std::fs::read(fixture("vendors/dicom/level-0.dcm")).unwrap();
        bytes.truncate(600);
        std::fs::write(&bad, bytes).unwrap();
        let err = crate::reader::open(&bad).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(!err.is_empty() && !err.contains("DOE_JANE"), "{err}");
    }

    #[test]
    fn damaged_dicom_is_refused_without_panic() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = std::fs::read(fixture("vendors/dicom/level-0.dcm")).unwrap();
        for cut in [131, 132, 140, 400, bytes.len() / 2, bytes.len() - 10] {
            let p = dir.path().join(format!("cut-{cut}.dcm"));
            std::fs::write(&p, &bytes[..cut]).unwrap();
            if let Ok(slide) = crate::reader::open(&p) {
                let _ = slide.read_region(0, 0, 0, 512, 512);
            }
            std::fs::remove_file(&p).unwrap();
        }
        let mut damaged = bytes.clone();
        let n = damaged.len();
        damaged[n / 2..n / 2 + 64].fill(0x5A);
        let p = dir.path().join("damaged.dcm");
        std::fs::write(&p, &damaged).unwrap();
        if let Ok(slide) = crate::reader::open(&p) {
            for y in 0..3 {
                let _ = slide.read_region(0, 0, y * 256, 1024, 256);
            }
        }
    }
}
