//! Hamamatsu NDPI files, written as a NanoZoomer writes them (for the demo: a site's slide
//! from a Hamamatsu scanner, with the identifiers such a file carries, for ingest to remove).
//!
//! The layout follows OpenSlide's NDPI notes and reader (openslide-vendor-hamamatsu.c) and
//! tools/make_vendor_fixtures.py, whose files OpenSlide 4 opens: a little-endian TIFF whose
//! directory-chain pointers are 64-bit and whose entries' offsets have their high halves in an
//! array after each directory (all zero here: the file stays under 4 GiB); each pyramid level one
//! baseline JPEG (4:2:2) with restart markers, whose intervals' starts are listed in McuStarts
//! (65426); SourceLens (65421) the level's magnification, -1 for the macro image.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};

use super::reader::SlideReader;
use super::tiffwrite::{encode_jpeg_rgb, encode_jpeg_rgb_restarts, BYTE_ASCII, FLOAT, LONG, RATIONAL, SHORT, SLONG};

/// What the scanner writes about the slide: every one of these identifies it or its patient.
pub struct NdpiIdentifiers<'a> {
    /// Reference (65427): the slide's name at the scanner, often the accession number.
    pub reference: &'a str,
    /// The barcode read from the label (65468).
    pub barcode: &'a str,
    /// The scanner's serial number (65442).
    pub serial: &'a str,
    /// DateTime, "YYYY:MM:DD HH:MM:SS".
    pub date_time: &'a str,
}

/// One directory entry: tag, type, count and the value's bytes (little-endian).
struct Entry(u16, u16, u32, Vec<u8>);

fn shorts(v: &[u16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn longs(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn ascii(tag: u16, s: &str) -> Entry {
    let mut b = s.as_bytes().to_vec();
    b.push(0);
    Entry(tag, BYTE_ASCII, b.len() as u32, b)
}

/// Restart intervals' first entropy-coded bytes in `jpeg` (relative to its start).
fn mcu_starts(jpeg: &[u8]) -> Vec<u32> {
    let Some(first) = super::jpeg::scan_markers(jpeg).header_len else { return vec![] };
    let mut starts = vec![first as u32];
    let mut i = first;
    while i + 1 < jpeg.len() {
        if jpeg[i] == 0xFF && (0xD0..=0xD7).contains(&jpeg[i + 1]) {
            starts.push((i + 2) as u32);
            i += 2;
        } else {
            i += 1;
        }
    }
    starts
}

/// The largest divisor of `mcus` that makes an interval at most `max` MCUs wide.
fn interval_for(mcus: u32, max: u32) -> u32 {
    (1..=max.min(mcus)).rev().find(|d| mcus.is_multiple_of(*d)).unwrap_or(1)
}

/// One image of the file: its JPEG, width, height, SourceLens, McuStarts and µm per pixel.
struct NdpiImage {
    jpeg: Vec<u8>,
    width: u32,
    height: u32,
    lens: f32,
    mcu_starts: Vec<u32>,
    mpp: Option<f64>,
}

/// Writes every level of `slide` (and its macro image, if it has one) as an NDPI file at
/// `dest`, with `objective` as level 0's magnification.
pub fn write_ndpi(slide: &dyn SlideReader, dest: &Path, objective: f64, ids: &NdpiIdentifiers) -> anyhow::Result<()> {
    let info = slide.info();
    let mut images: Vec<NdpiImage> = Vec::new();
    for (l, level) in info.levels.iter().enumerate() {
        let (w, h) = (u32::try_from(level.width)?, u32::try_from(level.height)?);
        if w > 65_535 || h > 65_535 {
            bail!("level {l} is {w}×{h} pixels, more than one NDPI JPEG holds");
        }
        let pixels = slide.read_region(l, 0, 0, w, h)?;
        // 4:2:2, MCUs of 16 × 8 (OpenSlide 4.0.1 misreads NDPI intervals of 4:2:0 MCUs, taller
        // than 8 rows); intervals of up to 32 MCUs (512 pixels) across.
        let interval = interval_for(w.div_ceil(16), 32);
        let jpeg = encode_jpeg_rgb_restarts(&pixels.data, w as u16, h as u16, 90, interval as u16)?;
        let mut starts = mcu_starts(&jpeg);
        starts.truncate((w.div_ceil(16) / interval * h.div_ceil(8)) as usize);
        let lens = (objective / level.downsample) as f32;
        images.push(NdpiImage {
            jpeg,
            width: w,
            height: h,
            lens,
            mcu_starts: starts,
            mpp: info.mpp_x.map(|m| m * level.downsample),
        });
    }
    if info.associated.iter().any(|a| a == "macro") {
        let macro_image = slide.associated_image("macro")?;
        let (w, h) = (macro_image.width, macro_image.height);
        if w > 65_535 || h > 65_535 {
            bail!("the macro image is {w}×{h} pixels, more than one JPEG holds");
        }
        let jpeg = encode_jpeg_rgb(&macro_image.data, w as u16, h as u16, 90)?;
        images.push(NdpiImage { jpeg, width: w, height: h, lens: -1.0, mcu_starts: vec![], mpp: None });
    }

    let mut out: Vec<u8> = Vec::new();
    out.extend_from_slice(b"II*\0");
    out.extend_from_slice(&0u64.to_le_bytes());
    let mut next_pointer_at = 4usize;
    for NdpiImage { jpeg, width: w, height: h, lens, mcu_starts: starts, mpp } in &images {
        let strip = out.len() as u32;
        out.extend_from_slice(jpeg);
        if out.len() % 2 == 1 {
            out.push(0);
        }
        let mut entries = vec![
            Entry(256, LONG, 1, longs(&[*w])),
            Entry(257, LONG, 1, longs(&[*h])),
            Entry(258, SHORT, 3, shorts(&[8, 8, 8])),
            Entry(259, SHORT, 1, shorts(&[7])),
            Entry(262, SHORT, 1, shorts(&[6])),
            ascii(271, "Hamamatsu"),
            ascii(272, "C13210"),
            Entry(273, LONG, 1, longs(&[strip])),
            Entry(277, SHORT, 1, shorts(&[3])),
            Entry(278, LONG, 1, longs(&[*h])),
            Entry(279, LONG, 1, longs(&[jpeg.len() as u32])),
            Entry(296, SHORT, 1, shorts(&[3])),
            ascii(305, "NDP.scan 3.2.15"),
            ascii(306, ids.date_time),
            Entry(65420, LONG, 1, longs(&[1])),
            Entry(65421, FLOAT, 1, lens.to_le_bytes().to_vec()),
            Entry(65422, SLONG, 1, 0i32.to_le_bytes().to_vec()),
            Entry(65423, SLONG, 1, 0i32.to_le_bytes().to_vec()),
            Entry(65424, SLONG, 1, 0i32.to_le_bytes().to_vec()),
        ];
        if let Some(mpp) = mpp {
            // Pixels per centimetre.
            let per_cm = (10_000.0 / mpp).round() as u32;
            entries.push(Entry(282, RATIONAL, 1, longs(&[per_cm, 1])));
            entries.push(Entry(283, RATIONAL, 1, longs(&[per_cm, 1])));
        }
        if *lens > 0.0 {
            entries.push(Entry(65426, LONG, starts.len() as u32, longs(starts)));
            entries.push(ascii(65427, ids.reference));
            entries.push(ascii(65442, ids.serial));
            entries.push(ascii(65449, &format!("Barcode={}\r\nCreated={}\r\n", ids.barcode, ids.date_time)));
            entries.push(ascii(65468, ids.barcode));
        }
        entries.sort_by_key(|e| e.0);
        let ifd = out.len();
        if u32::try_from(ifd).is_err() {
            bail!("the NDPI file would be larger than 4 GiB");
        }
        out[next_pointer_at..next_pointer_at + 8].copy_from_slice(&(ifd as u64).to_le_bytes());
        // Count, entries, the 64-bit next pointer, the entries' high halves, then the values.
        let mut values_at = ifd + 2 + entries.len() * 12 + 8 + entries.len() * 4;
        let mut body = Vec::new();
        let mut values = Vec::new();
        body.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        for Entry(tag, typ, count, bytes) in &entries {
            body.extend_from_slice(&tag.to_le_bytes());
            body.extend_from_slice(&typ.to_le_bytes());
            body.extend_from_slice(&count.to_le_bytes());
            // Text always out of line, as NDPI writers do.
            if bytes.len() <= 4 && *typ != BYTE_ASCII {
                let mut inline = bytes.clone();
                inline.resize(4, 0);
                body.extend_from_slice(&inline);
            } else {
                body.extend_from_slice(&(values_at as u32).to_le_bytes());
                values.extend_from_slice(bytes);
                values_at += bytes.len();
                if values.len() % 2 == 1 {
                    values.push(0);
                    values_at += 1;
                }
            }
        }
        next_pointer_at = ifd + body.len();
        body.extend_from_slice(&0u64.to_le_bytes());
        body.extend(std::iter::repeat_n(0u8, entries.len() * 4));
        out.extend_from_slice(&body);
        out.extend_from_slice(&values);
    }
    let mut f = std::fs::File::create(dest).with_context(|| format!("creating {}", dest.display()))?;
    f.write_all(&out)?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader;

    #[test]
    fn an_ndpi_written_here_reads_back_as_ndpi_with_its_pixels() {
        let src = reader::open(&reader::tests::fixture("vendors/philips.tiff")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("slide.ndpi");
        let ids =
            NdpiIdentifiers { reference: "S24-1", barcode: "S24-1", serial: "SN-1", date_time: "2024:06:15 10:30:00" };
        write_ndpi(src.as_ref(), &dest, 40.0, &ids).unwrap();
        let ndpi = reader::open(&dest).unwrap();
        let info = ndpi.info();
        assert_eq!(info.format, "hamamatsu-ndpi");
        assert_eq!(info.levels.len(), src.info().levels.len());
        assert_eq!(info.objective_power, Some(40.0));
        assert!((info.mpp_x.unwrap() - 0.25).abs() < 1e-3, "{:?}", info.mpp_x);
        assert_eq!(info.associated, ["macro"]);
        assert_eq!(info.properties.get("hamamatsu.Reference").map(String::as_str), Some("S24-1"));
        // Read in restart intervals: the same picture as the source, within JPEG's loss.
        let (a, b) = (src.read_region(0, 0, 0, 1024, 768).unwrap(), ndpi.read_region(0, 0, 0, 1024, 768).unwrap());
        let mse: f64 = a.data.iter().zip(&b.data).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum::<f64>()
            / a.data.len() as f64;
        assert!(mse < 20.0, "mean squared error {mse}");
        // OpenSlide 4 (the test command installs it) takes it for an NDPI and sees the same.
        let os = crate::openslide::open(&dest, crate::openslide::NDPI).unwrap();
        assert_eq!(os.info().properties.get("openslide.vendor").map(String::as_str), Some("hamamatsu"));
        for (l, level) in info.levels.iter().enumerate() {
            assert_eq!((os.info().levels[l].width, os.info().levels[l].height), (level.width, level.height));
        }
        assert_eq!(os.info().objective_power, Some(40.0));
        let theirs = os.read_region(0, 300, 200, 256, 256).unwrap();
        let ours = ndpi.read_region(0, 300, 200, 256, 256).unwrap();
        let worst = theirs.data.iter().zip(&ours.data).map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs()).max();
        // Two JPEG decoders upsampling 4:2:2 chroma: within 3, as for our other JPEG fixtures.
        assert!(worst <= Some(3), "{worst:?}");
    }

    #[test]
    fn intervals_divide_the_mcu_row() {
        assert_eq!(interval_for(375, 32), 25);
        assert_eq!(interval_for(64, 32), 32);
        assert_eq!(interval_for(7, 32), 7);
        assert_eq!(interval_for(37, 32), 1);
    }
}
