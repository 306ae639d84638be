//! The scanner vendors' TIFF-based formats read by our own code: Hamamatsu NDPI, Philips TIFF
//! and Roche/Ventana BIF. Each is a TIFF whose pyramid levels, associated images and metadata
//! are laid out by the vendor's conventions, documented in OpenSlide's format notes
//! (openslide.org/formats/<vendor>/) and readers (src/openslide-vendor-*.c, v4.0.1), which this
//! module follows and which the fixtures check it against.
//!
//! What is not handled here goes to OpenSlide (`SlideError::Vendor`): an NDPI of 4 GiB or more
//! (its offsets' high halves sit outside the TIFF structure), an NDPI level without restart
//! markers too large to decode at once, a BIF whose tiles overlap, a Philips file whose XML does
//! not give every level's spacing, and Leica SCN and MIRAX always.

use std::collections::BTreeMap;

use regex::Regex;

use super::jpeg;
use super::openslide::{self, VendorFormat};
use super::reader::{DirectoryRole, SlideError, TiffDirectory, MAX_CHUNK_PIXELS};
use super::source::ByteSource;

/// Whether our own code reads this vendor's files (of `file_len` bytes).
pub(crate) fn native(vendor: VendorFormat, file_len: u64) -> bool {
    match vendor.format {
        "hamamatsu-ndpi" => file_len < 1 << 32,
        "philips-tiff" | "ventana-bif" => true,
        _ => false,
    }
}

/// What a vendor's metadata says about the slide as a whole.
#[derive(Debug, Default)]
pub(crate) struct VendorMeta {
    pub properties: BTreeMap<String, String>,
    pub mpp: Option<(f64, f64)>,
    pub objective_power: Option<f64>,
}

/// Assigns the directories' roles by the vendor's conventions (levels sorted largest first,
/// `Level(n)`) and adapts their layout where the vendor's differs from plain TIFF (NDPI's
/// restart intervals as tiles, Philips' padded level sizes). Returns the vendor's metadata.
pub(crate) fn classify(
    vendor: VendorFormat,
    dirs: &mut [TiffDirectory],
    file: &dyn ByteSource,
) -> Result<VendorMeta, SlideError> {
    match vendor.format {
        "hamamatsu-ndpi" => ndpi(dirs, file),
        "philips-tiff" => philips(dirs),
        "ventana-bif" => ventana(dirs),
        _ => Err(SlideError::Vendor(vendor)),
    }
}

fn tag_f64(d: &TiffDirectory, t: u16) -> Option<f64> {
    d.tag(t).and_then(|v| v.trim().parse().ok())
}

/// Numbers the levels largest first.
fn number_levels(dirs: &mut [TiffDirectory], mut levels: Vec<usize>) {
    levels.sort_by_key(|&i| std::cmp::Reverse((dirs[i].width, dirs[i].height)));
    for (n, &i) in levels.iter().enumerate() {
        dirs[i].role = DirectoryRole::Level(n);
    }
}

// ---------------------------------------------------------------------------------------------
// Hamamatsu NDPI (openslide-vendor-hamamatsu.c, hamamatsu_ndpi_open)

/// NDPI tags: SourceLens (objective; -1 macro, -2 map), Z offset (focal plane), McuStarts,
/// Reference, the scanner's `key=value` lines.
const NDPI_SOURCE_LENS: u16 = 65421;
const NDPI_Z_OFFSET: u16 = 65424;
pub(crate) const NDPI_MCU_STARTS: u16 = 65426;
const NDPI_REFERENCE: u16 = 65427;
const NDPI_PROPERTY_MAP: u16 = 65449;

/// Levels: the directories at the nominal focal plane with a positive SourceLens. The macro
/// (SourceLens -1) is an associated image; the map (-2) and other focal planes are left out.
/// Each level is one JPEG: it is read in tiles of one restart interval (McuStarts gives where
/// each begins), or whole when it has no restart markers and is small.
fn ndpi(dirs: &mut [TiffDirectory], file: &dyn ByteSource) -> Result<VendorMeta, SlideError> {
    let mut levels = Vec::new();
    for (i, d) in dirs.iter_mut().enumerate() {
        let lens = tag_f64(d, NDPI_SOURCE_LENS);
        let z = tag_f64(d, NDPI_Z_OFFSET).unwrap_or(0.0);
        d.role = match lens {
            Some(l) if l > 0.0 && z == 0.0 && d.compression == 7 => {
                ndpi_tiles(d, file, i)?;
                levels.push(i);
                DirectoryRole::Level(0)
            }
            Some(l) if l == -1.0 && d.compression == 7 => DirectoryRole::Associated("macro".into()),
            _ => DirectoryRole::Other,
        };
    }
    if levels.is_empty() {
        return Err(SlideError::Corrupt("the NDPI file has no pyramid level".into()));
    }
    // What will be read is checked as any TIFF's (the tiled levels were, as they were cut).
    for (i, d) in dirs.iter().enumerate() {
        if d.jpeg_header.is_none() && d.role != DirectoryRole::Other {
            super::reader::check_layout(d, &format!("TIFF directory {i}"), file.len())?;
        }
    }
    number_levels(dirs, levels);
    let Some(base) = dirs.iter().find(|d| d.role == DirectoryRole::Level(0)) else {
        return Err(SlideError::Corrupt("the NDPI file has no pyramid level".into()));
    };
    let mut meta = VendorMeta { objective_power: tag_f64(base, NDPI_SOURCE_LENS), ..VendorMeta::default() };
    // OpenSlide's names: hamamatsu.<key> for the scanner's key=value lines, and the named tags.
    if let Some(map) = base.tag(NDPI_PROPERTY_MAP) {
        for line in map.lines() {
            if let Some((k, v)) = line.split_once('=') {
                meta.properties.insert(format!("hamamatsu.{}", k.trim()), v.trim().to_string());
            }
        }
    }
    for (t, name) in [
        (NDPI_REFERENCE, "Reference"),
        (NDPI_SOURCE_LENS, "SourceLens"),
        (65422, "XOffsetFromSlideCentre"),
        (65423, "YOffsetFromSlideCentre"),
        (NDPI_Z_OFFSET, "ZOffsetFromSlideCentre"),
    ] {
        if let Some(v) = base.tag(t) {
            meta.properties.insert(format!("hamamatsu.{name}"), v.to_string());
        }
    }
    Ok(meta)
}

/// Most bytes of a level's JPEG read to find its headers.
const JPEG_HEADER_MAX: u64 = 1 << 16;

/// Turns a level's one JPEG strip into tiles of one restart interval each: the chunk offsets
/// and byte counts point at each interval's entropy-coded data, and `jpeg_header` holds the
/// JPEG's headers with the frame size set to one interval and the restart interval removed, so
/// header + interval + EOI is a JPEG of its own (OpenSlide's approach).
fn ndpi_tiles(d: &mut TiffDirectory, file: &dyn ByteSource, index: usize) -> Result<(), SlideError> {
    let what = format!("NDPI level in TIFF directory {index}");
    let (Some(&strip), Some(&strip_len)) = (d.chunk_offsets.first(), d.chunk_byte_counts.first()) else {
        return Err(SlideError::Corrupt(format!("{what} has no image data")));
    };
    if d.chunk_offsets.len() != 1 {
        return Err(SlideError::Vendor(openslide::NDPI));
    }
    let mut head = vec![0u8; strip_len.min(JPEG_HEADER_MAX) as usize];
    file.read_exact_at(&mut head, strip)?;
    let markers = jpeg::scan_markers(&head);
    let (Some(header_len), Some(size_at), Some((jw, jh)), true) =
        (markers.header_len, markers.frame_size_at, markers.frame_size, markers.sequential && markers.well_formed)
    else {
        return Err(SlideError::Corrupt(format!(
            "{what}: its JPEG headers are damaged, not baseline, or longer than {JPEG_HEADER_MAX} bytes"
        )));
    };
    // The JPEG's own size is the level's (0 where it would not fit the header, as NDPI writes).
    if (jw != 0 && u32::from(jw) != d.width) || (jh != 0 && u32::from(jh) != d.height) {
        return Err(SlideError::Corrupt(format!(
            "{what} is {}×{} pixels in TIFF but {jw}×{jh} in its JPEG",
            d.width, d.height
        )));
    }
    let (mcu_w, mcu_h) = markers.mcu();
    // Taken: once cut into chunks, the offsets hold what the starts said.
    let starts = std::mem::take(&mut d.ndpi_mcu_starts);
    let Some(interval) = markers.restart_interval.filter(|_| !starts.is_empty()) else {
        // No restart markers: the whole JPEG is one chunk, decoded at once if small enough.
        if u64::from(d.width) * u64::from(d.height) > MAX_CHUNK_PIXELS || jw == 0 || jh == 0 {
            return Err(SlideError::Vendor(openslide::NDPI));
        }
        return Ok(());
    };
    let mcus_across = d.width.div_ceil(mcu_w);
    let mcus_down = d.height.div_ceil(mcu_h);
    let interval = u32::from(interval);
    let tile_w = interval * mcu_w;
    // Intervals that wrap from one MCU row to the next are not rectangles; a frame header holds
    // 16 bits of width. OpenSlide reads those (it rescans the markers).
    let tiles = u64::from(mcus_across / interval) * u64::from(mcus_down);
    if mcus_across % interval != 0 || tile_w > u32::from(u16::MAX) || starts.len() as u64 != tiles {
        return Err(SlideError::Vendor(openslide::NDPI));
    }
    let mut offsets = Vec::with_capacity(starts.len());
    let mut counts = Vec::with_capacity(starts.len());
    for (k, &s) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(strip_len);
        if s < header_len as u64 || end <= s || end > strip_len {
            return Err(SlideError::Corrupt(format!("{what}: restart interval {k} lies outside its JPEG")));
        }
        offsets.push(strip + s);
        counts.push(end - s);
    }
    let mut jpeg_header = head[..header_len].to_vec();
    // The frame is one interval; no restart marker inside it.
    jpeg_header[size_at..size_at + 2].copy_from_slice(&(mcu_h as u16).to_be_bytes());
    jpeg_header[size_at + 2..size_at + 4].copy_from_slice(&(tile_w as u16).to_be_bytes());
    if let Some(at) = markers.restart_at {
        jpeg_header.drain(at..at + 6);
    }
    d.tiled = true;
    d.chunk_width = tile_w;
    d.chunk_height = mcu_h;
    d.chunk_offsets = offsets;
    d.chunk_byte_counts = counts;
    d.jpeg_header = Some(jpeg_header);
    super::reader::check_layout(d, &what, file.len())
}

/// Chunk `index` of `count` of an NDPI level as a JPEG of its own: the patched headers, the
/// interval's entropy-coded data, and EOI. The interval must end where the next begins: at its
/// restart marker (RSTn with n = index mod 8), the last at the JPEG's EOI; otherwise McuStarts
/// is wrong and the pixels would be too, so it is refused.
pub(crate) fn ndpi_tile_stream(
    header: &[u8],
    interval: &[u8],
    index: usize,
    count: usize,
) -> Result<Vec<u8>, SlideError> {
    let last = index + 1 == count;
    let expected = if last { 0xD9 } else { 0xD0 + (index % 8) as u8 };
    // The strip may be padded after the JPEG's end.
    let interval =
        if last { &interval[..interval.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1)] } else { interval };
    let data = match interval {
        [rest @ .., 0xFF, m] if *m == expected => rest,
        _ => {
            return Err(SlideError::Corrupt(format!(
                "restart interval {index} of an NDPI level does not end at its marker (the file's McuStarts is wrong)"
            )))
        }
    };
    let mut out = Vec::with_capacity(header.len() + data.len() + 2);
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    out.extend_from_slice(&[0xFF, 0xD9]);
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Philips TIFF (openslide-vendor-philips-tiff.c)

/// `<Attribute Name="X" ...>value</Attribute>` with no element inside.
fn philips_attributes(xml: &str) -> Vec<(String, String)> {
    let re = Regex::new(r#"<Attribute Name="([A-Za-z0-9_]+)"[^>]*>([^<]*)</Attribute>"#)
        .unwrap_or_else(|_| unreachable!("constant pattern"));
    re.captures_iter(xml).map(|c| (c[1].to_string(), xml_unescape(&c[2]))).collect()
}

fn xml_unescape(s: &str) -> String {
    s.replace("&quot;", "\"").replace("&apos;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

/// The XML of the one `DPScannedImage` whose `PIM_DP_IMAGE_TYPE` is `WSI` (None unless there is
/// exactly one, which OpenSlide requires too).
fn philips_wsi_image(xml: &str) -> Option<&str> {
    const OPEN: &str = r#"<DataObject ObjectType="DPScannedImage">"#;
    let images: Vec<&str> = xml
        .match_indices(OPEN)
        .map(|(at, _)| {
            let rest = &xml[at + OPEN.len()..];
            &rest[..rest.find(OPEN).unwrap_or(rest.len())]
        })
        .filter(|image| philips_attributes(image).iter().any(|(k, v)| k == "PIM_DP_IMAGE_TYPE" && v == "WSI"))
        .collect();
    match images[..] {
        [one] => Some(one),
        _ => None,
    }
}

/// A DICOM_PIXEL_SPACING value, `"row" "column"` in mm: (x, y) in µm.
fn philips_spacing(v: &str) -> Option<(f64, f64)> {
    let parts: Vec<f64> = v.split_whitespace().filter_map(|p| p.trim_matches('"').parse().ok()).collect();
    match parts[..] {
        [row, col] if row > 0.0 && col > 0.0 => Some((col * 1e3, row * 1e3)),
        _ => None,
    }
}

/// Levels: the tiled directories, in order; the "Label" and "Macro" strip images are
/// associated. The level sizes in the TIFF are padded to whole tiles: as OpenSlide does, each
/// reduced level's size is level 0's divided by its downsample from the XML's per-level pixel
/// spacing (which must give one spacing per level).
fn philips(dirs: &mut [TiffDirectory]) -> Result<VendorMeta, SlideError> {
    let xml = dirs.first().and_then(|d| d.description.clone()).unwrap_or_default();
    let mut meta = VendorMeta::default();
    // Properties as OpenSlide names them; the label and macro images' base64 are not properties.
    for (k, v) in philips_attributes(&xml) {
        if k != "PIM_DP_IMAGE_DATA" {
            meta.properties.entry(format!("philips.{k}")).or_insert(v);
        }
    }
    // The spacings of the one WSI image (OpenSlide's XPath): its own, then one per level in its
    // pixel data representations.
    let wsi = philips_wsi_image(&xml).ok_or(SlideError::Vendor(openslide::PHILIPS))?;
    let (own, representations) = wsi.split_once("PIIM_PIXEL_DATA_REPRESENTATION_SEQUENCE").unwrap_or((wsi, ""));
    let spacing_of = |part: &str| -> Vec<(f64, f64)> {
        philips_attributes(part)
            .iter()
            .filter(|(k, _)| k == "DICOM_PIXEL_SPACING")
            .filter_map(|(_, v)| philips_spacing(v))
            .collect()
    };
    meta.mpp = spacing_of(own).first().copied();
    let per_level = spacing_of(representations);
    let mut levels = Vec::new();
    for (i, d) in dirs.iter_mut().enumerate() {
        let described = d.description.as_deref().unwrap_or("");
        d.role = if d.tiled {
            levels.push(i);
            DirectoryRole::Level(levels.len() - 1)
        } else if described.starts_with("Label") {
            DirectoryRole::Associated("label".into())
        } else if described.starts_with("Macro") {
            DirectoryRole::Associated("macro".into())
        } else {
            DirectoryRole::Other
        };
    }
    if levels.is_empty() || per_level.len() != levels.len() {
        return Err(SlideError::Vendor(openslide::PHILIPS));
    }
    let (w0, h0) = (dirs[levels[0]].width, dirs[levels[0]].height);
    for (n, &i) in levels.iter().enumerate().skip(1) {
        let ds = ((per_level[n].0 / per_level[0].0 + per_level[n].1 / per_level[0].1) / 2.0).round();
        if !(1.0..=65536.0).contains(&ds) {
            return Err(SlideError::Corrupt(format!("Philips level {n} has an implausible pixel spacing")));
        }
        let d = &mut dirs[i];
        let (w, h) = ((f64::from(w0) / ds) as u32, (f64::from(h0) / ds) as u32);
        // Only padding is clipped: the tile grid stays the same.
        if w == 0
            || h == 0
            || w > d.width
            || h > d.height
            || w.div_ceil(d.chunk_width) != d.width.div_ceil(d.chunk_width)
            || h.div_ceil(d.chunk_height) != d.height.div_ceil(d.chunk_height)
        {
            return Err(SlideError::Vendor(openslide::PHILIPS));
        }
        (d.width, d.height) = (w, h);
    }
    // Levels must shrink in order, as OpenSlide requires.
    if levels.windows(2).any(|p| dirs[p[1]].width > dirs[p[0]].width || dirs[p[1]].height > dirs[p[0]].height) {
        return Err(SlideError::Corrupt("the Philips levels are not in decreasing size".into()));
    }
    // OpenSlide's objective power: the first of the derivation description's `levels=`, if ≤ 200.
    meta.objective_power = meta
        .properties
        .get("philips.DICOM_DERIVATION_DESCRIPTION")
        .and_then(|d| {
            d.split('-').take_while(|p| !p.starts_with("sourceFilename")).find_map(|p| p.strip_prefix("levels="))
        })
        .and_then(|l| l.split(',').next()?.parse::<u32>().ok())
        .filter(|&p| (1..=200).contains(&p))
        .map(f64::from);
    Ok(meta)
}

// ---------------------------------------------------------------------------------------------
// Roche/Ventana BIF (openslide-vendor-ventana.c)

const XMLPACKET: u16 = 700;

/// Levels: the directories described `level=N mag=M ...`; `Label_Image` (a photograph of the
/// whole slide, which OpenSlide calls the macro) and `Thumbnail` are associated. The level 0
/// tiles are read as a plain grid, which holds when the stitching information says no tile
/// overlaps its neighbour and the one area of interest and its tiles sit at 0; otherwise
/// OpenSlide places them.
fn ventana(dirs: &mut [TiffDirectory]) -> Result<VendorMeta, SlideError> {
    let attribute = Regex::new(r#"([A-Za-z0-9_-]+)="([^"]*)""#).unwrap_or_else(|_| unreachable!("constant pattern"));
    // Tile overlaps, and where the scanned area and its tiles sit (OpenSlide's create_bif_grid
    // places tiles by these): all must be 0 for a plain grid.
    let placement = Regex::new(r#"(?:Overlap[XY]|Pos-[XY]|Origin[XY])="([^"]*)""#)
        .unwrap_or_else(|_| unreachable!("constant pattern"));
    let mut meta = VendorMeta::default();
    let mut levels = Vec::new();
    for (i, d) in dirs.iter_mut().enumerate() {
        let described = d.description.clone().unwrap_or_default();
        d.role = if described.starts_with("level=") && d.tiled {
            levels.push(i);
            DirectoryRole::Level(0)
        } else if described.starts_with("Label_Image") || described.starts_with("Label Image") {
            DirectoryRole::Associated("macro".into())
        } else if described.starts_with("Thumbnail") {
            DirectoryRole::Associated("thumbnail".into())
        } else {
            DirectoryRole::Other
        };
        if let Some(xml) = d.tag(XMLPACKET) {
            if xml.contains("<iScan") {
                let start = xml.find("<iScan").unwrap_or(0);
                let element = &xml[start..start + xml[start..].find('>').unwrap_or(xml.len() - start)];
                for c in attribute.captures_iter(element) {
                    meta.properties.insert(format!("ventana.{}", &c[1]), xml_unescape(&c[2]));
                }
            }
            if xml.contains("<EncodeInfo") {
                let aois = xml.matches("<ImageInfo ").count();
                let off_grid = |c: regex::Captures| c[1].trim().parse::<f64>() != Ok(0.0);
                if aois > 1 || placement.captures_iter(xml).any(off_grid) {
                    return Err(SlideError::Vendor(openslide::VENTANA));
                }
            }
        }
    }
    if levels.is_empty() {
        return Err(SlideError::Vendor(openslide::VENTANA));
    }
    number_levels(dirs, levels);
    let num = |k: &str| meta.properties.get(k).and_then(|v| v.parse::<f64>().ok()).filter(|v| *v > 0.0);
    meta.mpp = num("ventana.ScanRes").map(|m| (m, m));
    meta.objective_power = num("ventana.Magnification");
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader;

    /// The vendors' fixtures read natively agree with what OpenSlide 4 read from them
    /// (tools/make_vendor_fixtures.py, reference.json): level sizes, resolution, objective,
    /// associated images and pixels within 2 per channel. OpenSlide adds levels to an NDPI by
    /// scaling its smallest JPEG; we show the levels the file holds.
    #[test]
    fn vendor_fixtures_read_natively_match_openslide() {
        let dir = reader::tests::fixture("vendors");
        let reference: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("reference.json")).unwrap()).unwrap();
        for (name, levels) in [("sample.ndpi", 3), ("philips.tiff", 3), ("ventana.bif", 3)] {
            let slide = reader::open(&dir.join(name)).unwrap();
            let (info, r) = (slide.info(), &reference[name]);
            assert_eq!(info.backend, openslide::OWN_BACKEND, "{name}");
            assert_eq!(info.levels.len(), levels, "{name}");
            for (l, level) in info.levels.iter().enumerate() {
                assert_eq!(level.width, r["levels"][l]["width"].as_u64().unwrap(), "{name} level {l}");
                assert_eq!(level.height, r["levels"][l]["height"].as_u64().unwrap(), "{name} level {l}");
                assert_eq!(level.downsample, r["levels"][l]["downsample"].as_f64().unwrap(), "{name} level {l}");
            }
            assert_eq!(info.mpp_x, r["mpp_x"].as_f64(), "{name}");
            assert_eq!(info.objective_power, r["objective_power"].as_f64(), "{name}");
            let mut associated = info.associated.clone();
            associated.sort();
            let expected: Vec<String> =
                r["associated"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
            assert_eq!(associated, expected, "{name}");
            for key in r["phi_properties"].as_array().unwrap() {
                let key = key.as_str().unwrap();
                assert!(
                    // openslide.barcode is OpenSlide's own copy of a vendor property we name.
                    key.starts_with("openslide.") || info.properties.contains_key(key),
                    "{name}: {key}"
                );
            }
            for l in 0..levels {
                let level = &info.levels[l];
                let all = slide.read_region(l, 0, 0, level.width as u32, level.height as u32).unwrap();
                // Again, from the decoded intervals the reader keeps (NDPI): the same pixels.
                assert_eq!(slide.read_region(l, 0, 0, level.width as u32, level.height as u32).unwrap(), all);
                for s in r["levels"][l]["samples"].as_array().unwrap() {
                    // Samples are in level-0 coordinates.
                    let ds = level.downsample;
                    let (x, y) = ((s[0].as_f64().unwrap() / ds) as u32, (s[1].as_f64().unwrap() / ds) as u32);
                    let got = all.get(x, y);
                    for c in 0..3 {
                        let d = (i64::from(got[c]) - s[2][c].as_i64().unwrap()).abs();
                        assert!(d <= 2, "{name} level {l} at ({x}, {y}): {got:?} vs {}", s[2]);
                    }
                }
            }
        }
    }

    #[test]
    fn an_ndpi_tile_is_a_jpeg_of_its_own_and_must_end_at_its_marker() {
        let header = [0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02];
        let tile = |data: &[u8], index, count| ndpi_tile_stream(&header, data, index, count);
        assert_eq!(tile(&[1, 2, 0xFF, 0xD3], 3, 9).unwrap(), [0xFF, 0xD8, 0xFF, 0xDA, 0, 2, 1, 2, 0xFF, 0xD9]);
        assert_eq!(tile(&[1, 2, 0xFF, 0xD1], 9, 12).unwrap().len(), 10);
        assert_eq!(tile(&[1, 2, 0xFF, 0xD9], 8, 9).unwrap().len(), 10);
        // A McuStarts entry a few bytes off: the interval ends elsewhere, or at another marker.
        assert!(tile(&[1, 2, 0xFF, 0x00], 3, 9).is_err());
        assert!(tile(&[1, 2, 0xFF, 0xD4], 3, 9).is_err());
        assert!(tile(&[1, 2, 0xFF, 0xD3], 8, 9).is_err());
    }

    #[test]
    fn philips_spacing_is_row_then_column_in_mm() {
        assert_eq!(philips_spacing("\"0.00025\" \"0.0005\""), Some((0.5, 0.25)));
        assert_eq!(philips_spacing("\"0.00025\""), None);
        assert_eq!(
            philips_attributes(r#"<Attribute Name="A" Group="0x0" PMSVR="IString">x &amp; y</Attribute>"#),
            vec![("A".to_string(), "x & y".to_string())]
        );
    }
}
