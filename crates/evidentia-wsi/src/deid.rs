//! De-identification of a slide file: a new file with the pyramid only (label, macro and
//! thumbnail left out), compressed tiles copied byte for byte, and PHI-bearing metadata dropped;
//! or, for a scanner vendor's format read through OpenSlide, the pyramid converted to our own
//! tiled TIFF with its tiles re-encoded (nothing but pixels and resolution carried over).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{bail, Context};

use super::dicom::{DicomSlide, FrameCodec};
use super::openslide::{self, VendorFormat, VENDOR_FORMATS};
use super::reader::{self, DirectoryRole, RgbImage, SlideInfo, SlideReader, TiffSlide};
use super::tiffwrite::{self, ImageSpec, Layout, TiffWriter};

/// JPEG quality of the tiles of a converted slide.
pub const CONVERSION_QUALITY: u8 = 90;
/// Tile edge of a converted slide.
const CONVERSION_TILE: u32 = 256;
/// The least PSNR (dB) a converted slide's sample regions may have against the original: JPEG
/// at quality 90 gives about 40 dB on tissue and near 30 dB on saturated detail at the smallest
/// levels; a tile out of place or a wrong colour transform gives under 20 dB.
const MIN_CONVERSION_PSNR_DB: f64 = 25.0;

/// Aperio `key = value` pairs that describe the scan, not the patient or the operator.
/// Everything else (Filename, Date, Time, User, ScanScope ID, Barcode, Title, …) is dropped.
const APERIO_KEPT_KEYS: [&str; 13] = [
    "AppMag",
    "MPP",
    "OriginalWidth",
    "OriginalHeight",
    "StripeWidth",
    "Exposure Time",
    "Exposure Scale",
    "Gamma",
    "Focus Offset",
    "Left",
    "Top",
    "LineCameraSkew",
    "LineAreaXOffset",
];

/// Aperio keys known to carry identifiers, dates or operators: reported by name when dropped.
/// Any other dropped text is reported as "(other)", since it may itself be an identifier.
const APERIO_DROPPED_KEYS: [&str; 16] = [
    "Filename",
    "Date",
    "Time",
    "Time Zone",
    "User",
    "ScanScope ID",
    "Barcode",
    "Title",
    "DSR ID",
    "ImageID",
    "Rack",
    "Slide",
    "Parmset",
    "SessonMode",
    "SessionMode",
    "Description",
];

/// What de-identification removed (names only, never values).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct DeidOutcome {
    /// Associated images left out: "label", "macro", "thumbnail".
    pub removed_images: Vec<String>,
    /// Metadata keys dropped, e.g. "aperio.Filename", "tiff.DateTime".
    pub removed_metadata: Vec<String>,
    /// Set when the pixels were re-encoded (a vendor format converted to our TIFF).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion: Option<Conversion>,
    /// DICOM: the confidentiality profile applied, its options, and what it kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dicom_profile: Option<DicomProfile>,
}

/// PS3.15 Annex E, as applied to a DICOM slide at ingest (and named again in its export).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct DicomProfile {
    /// "Basic Application Level Confidentiality Profile" (DCM 113100).
    pub profile: String,
    /// The options chosen: "Retain Device Identity Option" (DCM 113109).
    pub options: Vec<String>,
    /// What the options kept, by DICOM keyword: the device's identity.
    pub retained: BTreeMap<String, String>,
}

impl DicomProfile {
    /// "Basic Application Level Confidentiality Profile with the Retain Device Identity Option
    /// (kept: DeviceSerialNumber, Manufacturer)".
    pub fn summary(&self) -> String {
        let mut out = self.profile.clone();
        if !self.options.is_empty() {
            out = format!("{out} with the {}", self.options.join(", "));
        }
        if !self.retained.is_empty() {
            out = format!("{out} (kept: {})", self.retained.keys().cloned().collect::<Vec<_>>().join(", "));
        }
        out
    }
}

/// PS3.15 Annex E's profile and the option ingest applies to DICOM slides.
pub const BASIC_PROFILE: &str = "Basic Application Level Confidentiality Profile";
pub const RETAIN_DEVICE_IDENTITY: &str = "Retain Device Identity Option";

/// How a converted slide's pixels were made: re-encoded (with a quality and the PSNR measured),
/// or their compressed frames or tiles copied into our TIFF unchanged (DICOM, Philips TIFF,
/// Ventana BIF).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Conversion {
    /// The original's format, for people: "Hamamatsu NDPI".
    pub from: String,
    /// None when the frames were copied.
    pub jpeg_quality: Option<u8>,
    /// Peak signal-to-noise ratio of the whole level 0 against the original (dB, 2 decimals).
    pub psnr_db: Option<f64>,
}

impl Conversion {
    /// "pixels re-encoded from Hamamatsu NDPI, JPEG quality 90 (PSNR 41.2 dB)", "frames copied
    /// byte for byte from DICOM" or "tiles copied byte for byte from Philips TIFF".
    pub fn summary(&self) -> String {
        match (self.jpeg_quality, self.psnr_db) {
            (Some(q), Some(p)) => format!("pixels re-encoded from {}, JPEG quality {q} (PSNR {p:.1} dB)", self.from),
            _ if self.from == openslide::DICOM.name => format!("frames copied byte for byte from {}", self.from),
            _ => format!("tiles copied byte for byte from {}", self.from),
        }
    }

    fn reencoded(&self) -> bool {
        self.jpeg_quality.is_some()
    }
}

/// Writes the de-identified copy of `src` to `dest` and checks it by reading it back; returns
/// what was removed and the copy's description as read back.
pub fn deidentify(src: &Path, dest: &Path) -> anyhow::Result<(DeidOutcome, SlideInfo)> {
    let slide = reader::open(src)?;
    let outcome = match (slide.tiff(), slide.info().format.as_str()) {
        // An NDPI level is one JPEG in restart intervals of a few MCUs: not tiles a TIFF can hold.
        (Some(tiff), _) if tiff.vendor() == Some(openslide::NDPI) => convert(slide.as_ref(), openslide::NDPI, dest)?,
        (Some(tiff), _) => {
            let info = slide.info();
            let mpp = tiff.vendor().and(info.mpp_x.zip(info.mpp_y));
            let mut outcome = rewrite_tiff(tiff, dest, mpp)?;
            if let Some(vendor) = tiff.vendor() {
                // Philips TIFF, Ventana BIF: the tiles copied, the vendor's metadata named.
                let mut names: BTreeSet<String> = outcome.removed_metadata.drain(..).collect();
                names.extend(removed_property_names(slide.info()));
                outcome.removed_metadata = names.into_iter().collect();
                outcome.conversion =
                    Some(Conversion { from: vendor.name.to_string(), jpeg_quality: None, psnr_db: None });
            }
            outcome
        }
        (None, "png") => {
            // Re-encoding PNG is lossless and leaves its text chunks (tEXt, iTXt, eXIf) behind.
            let img = slide.read_region(0, 0, 0, slide.info().width as u32, slide.info().height as u32)?;
            let mut out = BufWriter::new(File::create(dest)?);
            img.write_png(&mut out)?;
            out.flush()?;
            DeidOutcome { removed_metadata: vec!["png text chunks".into()], ..DeidOutcome::default() }
        }
        (None, "jpeg") => {
            let bytes = std::fs::read(src)?;
            let (clean, removed) = strip_jpeg_metadata(&bytes)?;
            std::fs::write(dest, clean)?;
            DeidOutcome { removed_metadata: removed, ..DeidOutcome::default() }
        }
        (None, _) if slide.dicom().is_some_and(copyable_frames) => {
            copy_dicom_frames(slide.dicom().unwrap_or_else(|| unreachable!("checked above")), dest)?
        }
        (None, other) => match VENDOR_FORMATS.iter().find(|v| v.format == other) {
            Some(vendor) => convert(slide.as_ref(), *vendor, dest)?,
            None => bail!("cannot de-identify a {other} file"),
        },
    };
    let mut info = verify(slide.as_ref(), dest, outcome.conversion.as_ref().is_some_and(Conversion::reencoded))?;
    if outcome.conversion.is_some() {
        // Our TIFF keeps the resolution; the objective power has no tag of its own.
        info.objective_power = slide.info().objective_power;
    }
    Ok((outcome, info))
}

/// Writes every level of `slide` as a tiled JPEG pyramid (the same level sizes; JPEG 4:4:4 at
/// [`CONVERSION_QUALITY`]), nothing but
/// pixels and resolution: no associated image, no description, no vendor metadata. Measures the
/// PSNR of level 0 against the original as it goes (each tile decoded back).
fn convert(slide: &dyn SlideReader, vendor: VendorFormat, dest: &Path) -> anyhow::Result<DeidOutcome> {
    let info = slide.info();
    let file = File::create(dest).with_context(|| format!("creating {}", dest.display()))?;
    let mut w = TiffWriter::new(BufWriter::new(file), false)?;
    let t = CONVERSION_TILE;
    let tiles: u64 = info.levels.iter().map(|l| l.width.div_ceil(u64::from(t)) * l.height.div_ceil(u64::from(t))).sum();
    if tiles > reader::MAX_CHUNKS {
        bail!("the slide declares {} × {} pixels, more than a slide can hold", info.width, info.height);
    }
    let (mut squared_error, mut samples) = (0f64, 0u64);
    for (l, level) in info.levels.iter().enumerate() {
        let (lw, lh) = (u32::try_from(level.width)?, u32::try_from(level.height)?);
        // 4:4:4: no chroma subsampling, so stain colours keep their full resolution.
        let mut spec = ImageSpec::rgb(lw, lh, Layout::Tiled { tile_width: t, tile_height: t }, 7, 6, Some([1, 1]));
        spec.new_subfile_type = if l == 0 { 0 } else { 1 };
        spec.resolution = info.mpp_x.zip(info.mpp_y).map(|(x, y)| {
            let per_cm = |mpp: f64| 10_000.0 / (mpp * level.downsample);
            (per_cm(x), per_cm(y), 3)
        });
        let tiles = (0..lw.div_ceil(t) * lh.div_ceil(t)).map(|i| -> std::io::Result<Vec<u8>> {
            let (region, jpeg) = reencoded_tile(slide, l, i, t, CONVERSION_QUALITY, [1, 1])?;
            let (cw, ch) = (region.width, region.height);
            if l == 0 {
                let back =
                    super::jpeg::decode_rgb(&jpeg, None, Some(6), u64::from(t * t)).map_err(std::io::Error::other)?;
                let back = crop(&back, cw, ch);
                squared_error += sum_squared_error(&region, &back);
                samples += region.data.len() as u64;
            }
            Ok(jpeg)
        });
        w.write_image(&spec, tiles)?;
    }
    let mut out = w.finish()?;
    out.flush()?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    let removed_metadata = removed_property_names(info);
    Ok(DeidOutcome {
        removed_images: info.associated.clone(),
        removed_metadata,
        conversion: Some(Conversion {
            from: vendor.name.to_string(),
            jpeg_quality: Some(CONVERSION_QUALITY),
            psnr_db: Some((psnr(squared_error, samples) * 100.0).round() / 100.0),
        }),
        dicom_profile: None,
    })
}

/// Whether every level's frames can go into a TIFF as they are: JPEG baseline, tiles a
/// multiple of 16 pixels (TIFF 6.0).
fn copyable_frames(d: &DicomSlide) -> bool {
    d.levels.iter().all(|l| l.codec == FrameCodec::Jpeg && l.tile_width % 16 == 0 && l.tile_height % 16 == 0)
}

/// A DICOM slide into our TIFF with its JPEG frames as the tiles, unchanged but for metadata
/// segments inside them (APPn other than JFIF/Adobe, comments), which are dropped and named. A
/// tile a sparse level lacks becomes a white tile. Of the DICOM attributes only the device's
/// identity is kept (PS3.15's Basic Profile with the Retain Device Identity Option, see
/// [`super::dicom::DEVICE_IDENTITY`]); the audit lists the others the file had (names only).
fn copy_dicom_frames(d: &DicomSlide, dest: &Path) -> anyhow::Result<DeidOutcome> {
    let file = File::create(dest).with_context(|| format!("creating {}", dest.display()))?;
    let mut w = TiffWriter::new(BufWriter::new(file), false)?;
    let info = d.info();
    let mut removed = BTreeSet::new();
    for (l, level) in d.levels.iter().enumerate() {
        let (tw, th) = (level.tile_width, level.tile_height);
        let first = (0..level.tiles_down())
            .flat_map(|r| (0..level.tiles_across()).map(move |c| (c, r)))
            .find_map(|(c, r)| level.frame_at(c, r))
            .context("a DICOM level has no frame")?;
        let sampling = super::jpeg::scan_markers(first)
            .sampling
            .context("a DICOM frame has no JPEG frame header to tell its chroma subsampling")?;
        let photometric = if level.photometric == "RGB" { 2 } else { 6 };
        let mut spec = ImageSpec::rgb(
            level.width,
            level.height,
            Layout::Tiled { tile_width: tw, tile_height: th },
            7,
            photometric,
            Some(sampling),
        );
        spec.new_subfile_type = if l == 0 { 0 } else { 1 };
        let downsample = info.levels[l].downsample;
        spec.resolution =
            info.mpp_x.zip(info.mpp_y).map(|(x, y)| (10_000.0 / (x * downsample), 10_000.0 / (y * downsample), 3));
        // The white tile for frames a sparse level lacks (the reader bounds tile sizes).
        let white = || {
            let pixels = vec![255; tw as usize * th as usize * 3];
            tiffwrite::encode_jpeg_rgb_sampled(&pixels, tw as u16, th as u16, 95, sampling)
        };
        let across = level.tiles_across();
        let tiles = (0..across * level.tiles_down()).map(|i| -> std::io::Result<Vec<u8>> {
            match level.frame_at(i % across, i / across) {
                None => white(),
                Some(frame) => {
                    let (clean, dropped) = strip_jpeg_metadata(frame).map_err(std::io::Error::other)?;
                    removed.extend(dropped);
                    Ok(clean)
                }
            }
        });
        w.write_image(&spec, tiles)?;
    }
    let mut out = w.finish()?;
    out.flush()?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    removed.extend(removed_property_names(info));
    // The device's identity is kept (Retain Device Identity), so it is not listed as removed.
    for keyword in d.device.keys() {
        removed.remove(&format!("dicom.{keyword}"));
    }
    Ok(DeidOutcome {
        removed_images: info.associated.clone(),
        removed_metadata: removed.into_iter().collect(),
        conversion: Some(Conversion { from: "DICOM".into(), jpeg_quality: None, psnr_db: None }),
        dicom_profile: Some(DicomProfile {
            profile: BASIC_PROFILE.into(),
            options: vec![RETAIN_DEVICE_IDENTITY.into()],
            retained: d.device.clone(),
        }),
    })
}

/// Tile `i` (row-major, `t`-pixel tiles) of level `l` of `slide` read and JPEG-encoded at
/// `quality` with chroma `sampling` (TIFF's YCbCrSubsampling form), padded to a whole tile; and
/// the pixels read (the tile's part inside the level).
pub(crate) fn reencoded_tile(
    slide: &dyn SlideReader,
    l: usize,
    i: u32,
    t: u32,
    quality: u8,
    sampling: [u16; 2],
) -> std::io::Result<(RgbImage, Vec<u8>)> {
    let level = &slide.info().levels[l];
    let (lw, lh) = (level.width as u32, level.height as u32);
    let across = lw.div_ceil(t);
    let (tx, ty) = (i % across * t, i / across * t);
    let (cw, ch) = (t.min(lw - tx), t.min(lh - ty));
    let x0 = (f64::from(tx) * level.downsample).round() as i64;
    let y0 = (f64::from(ty) * level.downsample).round() as i64;
    let region = slide.read_region(l, x0, y0, cw, ch).map_err(std::io::Error::other)?;
    let padded = tiffwrite::pad_tile(&region.data, cw, ch, t, t, 3);
    let jpeg = tiffwrite::encode_jpeg_rgb_sampled(&padded, t as u16, t as u16, quality, sampling)?;
    Ok((region, jpeg))
}

/// The top-left `w`×`h` of `img`.
fn crop(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    let row = w as usize * 3;
    let data = (0..h as usize).flat_map(|y| {
        let s = y * img.width as usize * 3;
        img.data[s..s + row].iter().copied()
    });
    RgbImage { width: w, height: h, data: data.collect() }
}

fn sum_squared_error(a: &RgbImage, b: &RgbImage) -> f64 {
    a.data.iter().zip(&b.data).map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2)).sum()
}

/// PSNR = 10·log10(255² / MSE) over `samples` 8-bit values (infinite when identical; reported as
/// 99 dB, the convention of tools that print a number).
fn psnr(squared_error: f64, samples: u64) -> f64 {
    if squared_error == 0.0 || samples == 0 {
        return 99.0;
    }
    10.0 * (255.0f64.powi(2) / (squared_error / samples as f64)).log10()
}

/// The names (never the values) of the original's metadata, all dropped by conversion.
/// OpenSlide's own derived keys (`openslide.mpp-x`, level sizes, …) are not listed, except the
/// two that copy text from the file (barcode, comment). A name that is not a plain key
/// (`vendor.Some_Key[0]`) is reported as "(other)": names from key=value lists could themselves
/// be identifiers.
fn removed_property_names(info: &SlideInfo) -> Vec<String> {
    let plain = regex::Regex::new(r"^[a-z]+\.[A-Za-z_][A-Za-z0-9_.\-\[\] ]{0,63}$")
        .unwrap_or_else(|_| unreachable!("constant pattern"));
    let long_number = regex::Regex::new(r"\d{4,}").unwrap_or_else(|_| unreachable!("constant pattern"));
    let mut out = BTreeSet::new();
    for k in info.properties.keys() {
        if k.starts_with("openslide.") && k != "openslide.barcode" && k != "openslide.comment" {
            continue;
        }
        out.insert(if plain.is_match(k) && !long_number.is_match(k) { k.clone() } else { "(other)".into() });
    }
    out.into_iter().collect()
}

/// `vendor_mpp`: the resolution a vendor's metadata gives (µm per pixel of level 0), for levels
/// without resolution tags.
fn rewrite_tiff(tiff: &TiffSlide, dest: &Path, vendor_mpp: Option<(f64, f64)>) -> anyhow::Result<DeidOutcome> {
    let mut outcome = DeidOutcome::default();
    let dirs = tiff.directories();
    let mut levels: Vec<(usize, usize)> = dirs
        .iter()
        .enumerate()
        .filter_map(|(i, d)| match d.role {
            DirectoryRole::Level(l) => Some((l, i)),
            _ => None,
        })
        .collect();
    levels.sort();
    if levels.is_empty() {
        bail!("the file has no pyramid level to keep");
    }
    for d in dirs {
        match &d.role {
            DirectoryRole::Associated(name) => outcome.removed_images.push(name.clone()),
            DirectoryRole::Other => outcome.removed_images.push("other image".into()),
            DirectoryRole::Level(_) => {}
        }
    }
    let mut dropped_tags = BTreeSet::new();
    let file = File::create(dest).with_context(|| format!("creating {}", dest.display()))?;
    let mut w = TiffWriter::new(BufWriter::new(file), tiff.bigtiff())?;
    for (n, &(_, i)) in levels.iter().enumerate() {
        let d = &dirs[i];
        let description = match &d.description {
            Some(desc) if desc.starts_with("Aperio") => {
                let (kept, dropped) = scrub_aperio_description(desc);
                for k in dropped {
                    dropped_tags.insert(format!("aperio.{k}"));
                }
                Some(kept)
            }
            Some(_) => {
                // OME-XML, libvips and scanner descriptions carry names, dates and file names.
                dropped_tags.insert("tiff.ImageDescription".to_string());
                None
            }
            None => None,
        };
        for (tag, _) in &d.tags {
            dropped_tags.insert(format!("tiff.{}", tag_name(*tag)));
        }
        let spec = ImageSpec {
            width: d.width,
            height: d.height,
            layout: if d.tiled {
                Layout::Tiled { tile_width: d.chunk_width, tile_height: d.chunk_height }
            } else {
                Layout::Strips { rows_per_strip: d.chunk_height }
            },
            compression: d.compression,
            photometric: d.photometric,
            samples_per_pixel: d.samples_per_pixel,
            bits_per_sample: d.bits_per_sample,
            planar_config: d.planar_config,
            predictor: (d.predictor > 1).then_some(d.predictor),
            ycbcr_subsampling: d.ycbcr_subsampling,
            jpeg_tables: d.jpeg_tables.clone(),
            new_subfile_type: if n == 0 { 0 } else { 1 },
            description,
            resolution: match (vendor_mpp, d.x_resolution, d.y_resolution) {
                // A vendor's resolution (from its XML, as the reader shows it) before the tags.
                (Some((mx, my)), _, _) => {
                    let base = &dirs[levels[0].1];
                    let (dx, dy) =
                        (f64::from(base.width) / f64::from(d.width), f64::from(base.height) / f64::from(d.height));
                    Some((10_000.0 / (mx * dx), 10_000.0 / (my * dy), 3))
                }
                (None, Some(x), Some(y)) => Some((x, y, d.resolution_unit.unwrap_or(2))),
                _ => None,
            },
            extra_ascii: vec![],
        };
        // A vendor's JPEG tiles lose their metadata segments (APPn, COM), as DICOM frames do.
        let vendor_jpeg = tiff.vendor().is_some() && d.compression == 7;
        let chunks = (0..d.chunk_offsets.len()).map(|c| {
            let raw = tiff.raw_chunk(i, c).map_err(std::io::Error::other)?;
            if !vendor_jpeg || raw.is_empty() {
                return Ok(raw);
            }
            let (clean, dropped) = strip_jpeg_metadata(&raw).map_err(std::io::Error::other)?;
            dropped_tags.extend(dropped);
            Ok(clean)
        });
        w.write_image(&spec, chunks)?;
    }
    let mut out = w.finish()?;
    out.flush()?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    outcome.removed_metadata = dropped_tags.into_iter().collect();
    Ok(outcome)
}

/// Keeps the Aperio header lines (library version, dimensions) and the scan keys on the
/// allow-list; returns the new description and the names of the keys dropped.
pub fn scrub_aperio_description(desc: &str) -> (String, Vec<String>) {
    let mut parts = desc.split('|');
    let header = parts.next().unwrap_or_default();
    let mut lines = header.lines();
    let mut kept = lines.next().unwrap_or("Aperio").trim_end().to_string();
    let dims = regex::Regex::new(r"^\d+x\d+ \[").unwrap_or_else(|_| unreachable!("constant pattern"));
    if let Some(l2) = lines.next().filter(|l| dims.is_match(l.trim())) {
        kept.push_str("\r\n");
        kept.push_str(l2.trim());
    }
    let mut dropped = Vec::new();
    for pair in parts {
        let key = pair.split('=').next().unwrap_or_default().trim();
        let has_value = pair.contains('=');
        if has_value && APERIO_KEPT_KEYS.contains(&key) {
            kept.push('|');
            kept.push_str(pair.trim());
        } else if has_value && APERIO_DROPPED_KEYS.contains(&key) {
            dropped.push(key.to_string());
        } else if !pair.trim().is_empty() && !dropped.iter().any(|d| d == "(other)") {
            dropped.push("(other)".to_string());
        }
    }
    (kept, dropped)
}

fn tag_name(tag: u16) -> String {
    match tag {
        269 => "DocumentName".into(),
        270 => "ImageDescription".into(),
        271 => "Make".into(),
        272 => "Model".into(),
        285 => "PageName".into(),
        305 => "Software".into(),
        306 => "DateTime".into(),
        315 => "Artist".into(),
        316 => "HostComputer".into(),
        700 => "XMP".into(),
        33432 => "Copyright".into(),
        33723 => "IPTC".into(),
        34665 => "ExifIFD".into(),
        34675 => "ICCProfile".into(),
        t => format!("tag{t}"),
    }
}

/// JPEG segments other than the image itself and its colour markers (JFIF, Adobe): EXIF, XMP,
/// comments and vendor segments can all carry identifiers, anywhere in the stream (also between
/// the scans of a progressive JPEG). Everything after the end-of-image marker (a second image of
/// a phone's MPF file, appended trailers) is cut.
pub fn strip_jpeg_metadata(bytes: &[u8]) -> anyhow::Result<(Vec<u8>, Vec<String>)> {
    if bytes.len() < 4 || bytes[0] != 0xFF || bytes[1] != 0xD8 {
        bail!("not a JPEG file");
    }
    let mut out = vec![0xFF, 0xD8];
    let mut removed = BTreeSet::new();
    let mut i = 2;
    while i + 2 <= bytes.len() {
        if bytes[i] != 0xFF {
            bail!("JPEG structure broken at byte {i}");
        }
        let marker = bytes[i + 1];
        match marker {
            0xFF => {
                // Fill byte before a marker.
                i += 1;
                continue;
            }
            0xD9 => {
                out.extend_from_slice(&[0xFF, 0xD9]);
                if i + 2 < bytes.len() {
                    removed.insert("data after the image".to_string());
                }
                return Ok((out, removed.into_iter().collect()));
            }
            0xD0..=0xD7 | 0x01 => {
                out.extend_from_slice(&bytes[i..i + 2]);
                i += 2;
                continue;
            }
            _ => {}
        }
        if i + 4 > bytes.len() {
            break;
        }
        let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
        let end = i + 2 + len;
        if len < 2 || end > bytes.len() {
            bail!("JPEG segment at byte {i} runs past the end of the file");
        }
        let seg = &bytes[i..end];
        let keep = match marker {
            0xE0 => seg.get(4..9) == Some(b"JFIF\0"),
            0xEE => seg.get(4..9) == Some(b"Adobe"),
            0xE1..=0xEF | 0xFE => false,
            _ => true,
        };
        if keep {
            out.extend_from_slice(seg);
        } else {
            removed.insert(if marker == 0xFE { "jpeg.COM".to_string() } else { format!("jpeg.APP{}", marker - 0xE0) });
        }
        i = end;
        if marker == 0xDA {
            // Entropy-coded data runs to the next marker that is not a stuffed 0xFF00 or a
            // restart marker.
            let start = i;
            let is_marker = |i: usize| bytes[i] == 0xFF && !matches!(bytes[i + 1], 0x00 | 0xD0..=0xD7);
            while i + 1 < bytes.len() && !is_marker(i) {
                i += 1;
            }
            if i + 1 >= bytes.len() {
                bail!("JPEG file ends inside its image data");
            }
            out.extend_from_slice(&bytes[start..i]);
        }
    }
    bail!("JPEG file ends before its end-of-image marker")
}

/// Reads the copy back: it opens, has no associated image and no dropped key, same geometry,
/// and the same pixels in a sample region of every level (for a converted slide: a PSNR of at
/// least [`MIN_CONVERSION_PSNR_DB`]).
fn verify(original: &dyn SlideReader, dest: &Path, converted: bool) -> anyhow::Result<SlideInfo> {
    let copy = reader::open(dest).context("the de-identified copy does not read back")?;
    let (a, b) = (original.info(), copy.info());
    if !b.associated.is_empty() {
        bail!("the de-identified copy still has associated images: {:?}", b.associated);
    }
    for key in b.properties.keys() {
        let k = key.as_str();
        let suspicious = ["tiff.DateTime", "tiff.Artist", "tiff.HostComputer", "tiff.DocumentName"].contains(&k)
            || (k.starts_with("aperio.") && !APERIO_KEPT_KEYS.iter().any(|kept| k == format!("aperio.{kept}")));
        if suspicious {
            bail!("the de-identified copy still has metadata {k}");
        }
    }
    if (a.width, a.height, a.levels.len()) != (b.width, b.height, b.levels.len()) {
        bail!("the de-identified copy has a different geometry");
    }
    for (l, level) in a.levels.iter().enumerate() {
        let (w, h) = (level.width.min(256) as u32, level.height.min(256) as u32);
        let x = ((level.width - w as u64) / 2) as f64 * level.downsample;
        let y = ((level.height - h as u64) / 2) as f64 * level.downsample;
        let (a, b) =
            (original.read_region(l, x as i64, y as i64, w, h)?, copy.read_region(l, x as i64, y as i64, w, h)?);
        if converted {
            let p = psnr(sum_squared_error(&a, &b), a.data.len() as u64);
            if p < MIN_CONVERSION_PSNR_DB {
                bail!("the converted copy's pixels differ from the original at level {l} (PSNR {p:.1} dB)");
            }
        } else if a != b {
            bail!("the de-identified copy's pixels differ at level {l}");
        }
    }
    Ok(b.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aperio_description_keeps_scan_keys_only() {
        let desc = "Aperio Image Library v12.0.5\r\n46000x32914 [0,100 46000x32814] (256x256) JPEG/RGB Q=70|AppMag = 20|StripeWidth = 2040|ScanScope ID = SS1234|Filename = DOE_JOHN|Date = 11/03/21|Time = 10:11:12|User = abc|MPP = 0.4990|Barcode = S12-3456";
        let (kept, dropped) = scrub_aperio_description(desc);
        assert_eq!(
            kept,
            "Aperio Image Library v12.0.5\r\n46000x32914 [0,100 46000x32814] (256x256) JPEG/RGB Q=70|AppMag = 20|StripeWidth = 2040|MPP = 0.4990"
        );
        assert_eq!(dropped, ["ScanScope ID", "Filename", "Date", "Time", "User", "Barcode"]);
        assert!(!kept.contains("DOE") && !kept.contains("S12-3456"));
    }

    #[test]
    fn aperio_header_line_that_is_not_dimensions_is_dropped() {
        let (kept, _) = scrub_aperio_description("Aperio Image Library v1\nPatient DOE JOHN|MPP = 0.25");
        assert_eq!(kept, "Aperio Image Library v1|MPP = 0.25");
    }

    #[test]
    fn unknown_aperio_text_is_dropped_without_being_named() {
        let (kept, dropped) = scrub_aperio_description(
            "Aperio Image Library v1|MPP = 0.25|DOE JOHN 1980-01-01|Barcode = S12|3456|Ward = 7",
        );
        assert_eq!(kept, "Aperio Image Library v1|MPP = 0.25");
        assert_eq!(dropped, ["(other)", "Barcode"]);
    }

    /// A generic pyramid whose label is tiled and flagged reduced-resolution (as some writers
    /// do) and which carries a reduced "level" of another shape (an overview of the glass).
    fn tricky_pyramid(path: &Path) {
        use crate::tiffwrite::{encode_jpeg_rgb, ImageSpec, TiffWriter};
        let tile = |c: [u8; 3]| {
            let px: Vec<u8> = (0..64 * 64).flat_map(|_| c).collect();
            encode_jpeg_rgb(&px, 64, 64, 90).map(|j| vec![j])
        };
        let mut w = TiffWriter::new(std::fs::File::create(path).unwrap(), false).unwrap();
        let mut base = ImageSpec::jpeg_tiled(128, 128, 64);
        base.description = Some("DOE JOHN scan".into());
        base.extra_ascii = vec![(306, "2021:11:03 10:11:12".into()), (315, "Dr. Jane Roe".into())];
        w.write_image(&base, (0..4).map(|_| tile([200, 120, 180]).map(|mut v| v.remove(0)))).unwrap();
        let mut level1 = ImageSpec::jpeg_tiled(64, 64, 64);
        level1.new_subfile_type = 1;
        w.write_image(&level1, [tile([190, 110, 170]).map(|mut v| v.remove(0))]).unwrap();
        let mut label = ImageSpec::jpeg_tiled(64, 64, 64);
        label.new_subfile_type = 1;
        label.description = Some("Slide\nlabel 64x64".into());
        w.write_image(&label, [tile([10, 10, 10]).map(|mut v| v.remove(0))]).unwrap();
        let mut overview = ImageSpec::jpeg_tiled(64, 16, 64);
        overview.new_subfile_type = 1;
        w.write_image(&overview, [tile([250, 250, 250]).map(|mut v| v.remove(0))]).unwrap();
        w.finish().unwrap();
    }

    #[test]
    fn tiled_labels_and_odd_shaped_levels_are_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dest) = (dir.path().join("in.tiff"), dir.path().join("out.tiff"));
        tricky_pyramid(&src);
        let original = reader::open(&src).unwrap();
        assert_eq!(original.info().levels.len(), 2, "{:?}", original.info().levels);
        assert_eq!(original.info().associated, ["label"]);
        let (outcome, _) = deidentify(&src, &dest).unwrap();
        assert!(outcome.removed_images.contains(&"label".to_string()) && outcome.removed_images.len() == 2);
        assert!(outcome.removed_metadata.contains(&"tiff.ImageDescription".to_string()));
        assert!(outcome.removed_metadata.contains(&"tiff.DateTime".to_string()));
        let copy = reader::open(&dest).unwrap();
        assert!(copy.info().associated.is_empty());
        assert_eq!(copy.tiff().unwrap().directories().len(), 2, "only the two pyramid levels");
        let bytes = std::fs::read(&dest).unwrap();
        for phi in [&b"DOE JOHN"[..], b"Jane Roe", b"2021:11:03"] {
            assert!(!bytes.windows(phi.len()).any(|w| w == phi));
        }
    }

    #[test]
    fn jpeg_metadata_segments_are_removed_and_image_kept() {
        let mut j = vec![0xFF, 0xD8];
        j.extend([0xFF, 0xE0, 0, 16]);
        j.extend(b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
        j.extend([0xFF, 0xE1, 0, 14]);
        j.extend(b"Exif\0\0DOE\0\0\0");
        j.extend([0xFF, 0xFE, 0, 8]);
        j.extend(b"KIM MJ");
        j.extend([0xFF, 0xDA, 0, 2, 1, 0xFF, 0x00, 2, 0xFF, 0xD0, 3]);
        // A comment between the scans of a progressive JPEG, then a second scan.
        j.extend([0xFF, 0xFE, 0, 5, b'D', b'O', b'E']);
        j.extend([0xFF, 0xDA, 0, 2, 9, 0xFF, 0xD9]);
        // A trailer after the end of the image (a phone's second image with its own Exif).
        j.extend(b"\xFF\xD8\xFF\xE1\x00\x05DOE");
        let (clean, removed) = strip_jpeg_metadata(&j).unwrap();
        assert_eq!(removed, ["data after the image", "jpeg.APP1", "jpeg.COM"]);
        assert!(!clean.windows(3).any(|w| w == b"DOE") && !clean.windows(6).any(|w| w == b"KIM MJ"));
        assert!(clean.ends_with(&[0xFF, 0xDA, 0, 2, 1, 0xFF, 0x00, 2, 0xFF, 0xD0, 3, 0xFF, 0xDA, 0, 2, 9, 0xFF, 0xD9]));
        assert!(strip_jpeg_metadata(&j[..20]).is_err());
        assert!(strip_jpeg_metadata(b"GIF89a").is_err());
    }
}
