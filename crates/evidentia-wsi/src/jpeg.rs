//! JPEG tiles and images to RGB8: JPEGTables merging, marker scan, and the colour-transform
//! decision (YCbCr or RGB), made the way libtiff/libjpeg make it so colours match OpenSlide.
//!
//! Decoded with `zune-jpeg`: single-threaded and SIMD (AVX2 where the CPU has it), so a slide's
//! many small tiles decode on the caller's thread without starting helper threads per tile, and
//! the caller (the AI pipeline's decoding thread, a tile server's workers) decides the threads.

use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use super::reader::{RgbImage, SlideError};

/// How a stream's components become RGB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorTransform {
    /// One component: grey.
    Grayscale,
    /// Three components that are R, G and B already.
    RGB,
    /// Three components coded as YCbCr (JFIF): converted.
    YCbCr,
    /// Four components coded as CMYK.
    CMYK,
    /// Four components coded as YCCK.
    YCCK,
    /// Any other component count.
    Unknown,
}

/// What a JPEG stream says about its own colour space, from the markers before the scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JpegMarkers {
    /// A JFIF APP0 segment is present.
    pub jfif: bool,
    /// The Adobe APP14 segment's transform byte, if that segment is present.
    pub adobe_transform: Option<u8>,
    /// Where that byte is in the stream.
    pub adobe_transform_at: Option<usize>,
    /// Component identifiers from the frame header (SOFn), in order.
    pub component_ids: Vec<u8>,
    /// The first component's horizontal and vertical sampling factors in the frame header:
    /// [2, 2] for 4:2:0, [2, 1] for 4:2:2, [1, 1] for 4:4:4 (what TIFF's YCbCrSubsampling says).
    pub sampling: Option<[u16; 2]>,
    /// The largest sampling factors of any component (an MCU is 8 × these, interleaved).
    pub max_sampling: [u16; 2],
    /// The frame header says baseline or extended sequential Huffman (SOF0, SOF1).
    pub sequential: bool,
    /// The frame's (width, height), and where its height field is in the stream.
    pub frame_size: Option<(u16, u16)>,
    pub frame_size_at: Option<usize>,
    /// The restart interval (DRI, in MCUs; None when 0 or absent), and where its segment starts.
    pub restart_interval: Option<u16>,
    pub restart_at: Option<usize>,
    /// Where the headers end: the first byte after the SOS segment (None if it is not there).
    pub header_len: Option<usize>,
    /// The stream starts with SOI and every segment up to SOS follows the last without stray
    /// bytes between them (a damaged header is read around, and says so here).
    pub well_formed: bool,
}

impl JpegMarkers {
    /// The MCU's size in pixels (8 × 8 for one component, whose scan is not interleaved).
    pub fn mcu(&self) -> (u32, u32) {
        if self.component_ids.len() == 1 {
            (8, 8)
        } else {
            (8 * u32::from(self.max_sampling[0].max(1)), 8 * u32::from(self.max_sampling[1].max(1)))
        }
    }
}

/// Scans marker segments up to the first SOS (or the end). Never fails: a malformed stream just
/// yields fewer facts, and the decoder reports the real error.
pub fn scan_markers(stream: &[u8]) -> JpegMarkers {
    let mut m = JpegMarkers { well_formed: stream.starts_with(&[0xFF, 0xD8]), ..JpegMarkers::default() };
    let mut i = 0usize;
    while i + 1 < stream.len() {
        if stream[i] != 0xFF {
            m.well_formed = false;
            i += 1;
            continue;
        }
        let marker = stream[i + 1];
        // SOI, EOI, RSTn, TEM and fill bytes carry no length.
        if marker == 0xD8 || marker == 0xD9 || marker == 0xFF || marker == 0x01 || (0xD0..=0xD7).contains(&marker) {
            i += if marker == 0xFF { 1 } else { 2 };
            continue;
        }
        let Some(len_bytes) = stream.get(i + 2..i + 4) else {
            m.well_formed = false;
            break;
        };
        let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
        if marker == 0xDA {
            m.header_len = Some(i + 2 + len).filter(|&end| len >= 2 && end <= stream.len());
            break;
        }
        let Some(body) = stream.get(i + 4..(i + 2).saturating_add(len)) else {
            m.well_formed = false;
            break;
        };
        match marker {
            0xE0 if body.starts_with(b"JFIF\0") => m.jfif = true,
            0xEE if body.starts_with(b"Adobe") && body.len() >= 12 => {
                m.adobe_transform = Some(body[11]);
                m.adobe_transform_at = Some(i + 4 + 11);
            }
            // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
            0xC0..=0xCF if marker != 0xC4 && marker != 0xC8 && marker != 0xCC => {
                if let Some(&n) = body.get(5) {
                    m.component_ids = (0..usize::from(n)).filter_map(|c| body.get(6 + c * 3).copied()).collect();
                    for c in 0..usize::from(n) {
                        if let Some(hv) = body.get(7 + c * 3) {
                            m.max_sampling[0] = m.max_sampling[0].max(u16::from(hv >> 4));
                            m.max_sampling[1] = m.max_sampling[1].max(u16::from(hv & 0x0F));
                        }
                    }
                }
                m.sampling = body.get(7).map(|hv| [u16::from(hv >> 4), u16::from(hv & 0x0F)]);
                m.sequential = marker == 0xC0 || marker == 0xC1;
                if let Some(size) = body.get(1..5) {
                    m.frame_size =
                        Some((u16::from_be_bytes([size[2], size[3]]), u16::from_be_bytes([size[0], size[1]])));
                    m.frame_size_at = Some(i + 5);
                }
            }
            0xDD => {
                if let Some(r) = body.get(..2) {
                    m.restart_interval = Some(u16::from_be_bytes([r[0], r[1]])).filter(|&r| r > 0);
                    m.restart_at = Some(i);
                }
            }
            _ => {}
        }
        i = (i + 2).saturating_add(len);
    }
    m
}

/// libjpeg's `default_decompress_parms` rule for a standalone JPEG: JFIF means YCbCr; else an
/// Adobe marker decides (transform 0 = RGB); else component ids 'R','G','B' mean RGB; else YCbCr.
pub fn libjpeg_default_transform(m: &JpegMarkers) -> ColorTransform {
    match m.component_ids.len() {
        1 => ColorTransform::Grayscale,
        3 => {
            if m.jfif {
                ColorTransform::YCbCr
            } else if let Some(t) = m.adobe_transform {
                if t == 0 {
                    ColorTransform::RGB
                } else {
                    ColorTransform::YCbCr
                }
            } else if m.component_ids == b"RGB" {
                ColorTransform::RGB
            } else {
                ColorTransform::YCbCr
            }
        }
        4 => match m.adobe_transform {
            Some(2) => ColorTransform::YCCK,
            _ => ColorTransform::CMYK,
        },
        _ => ColorTransform::Unknown,
    }
}

/// The transform for a JPEG stream found in a TIFF with the given Photometric tag (`None` for a
/// standalone .jpg file), decided from the stream's own markers and the tag together:
/// `Photometric=YCbCr` is converted (libtiff's JPEGCOLORMODE_RGB); otherwise a JFIF marker or an
/// Adobe transform flag or 'R','G','B' component ids say how the stream was coded (libjpeg's
/// `default_decompress_parms`), and only a stream that says nothing is taken as the tag says.
///
/// Checked with tests/fixtures/slides: Aperio RGB tiles (Adobe transform 0) and libvips YCbCr
/// tiles match OpenSlide 4.0.1. For complete JFIF tiles tagged `Photometric=RGB` (tifffile and
/// several scanners write them) OpenSlide shows the raw Y/Cb/Cr values as R/G/B, because libtiff
/// decides from the tag alone; we show the colours the stream encodes, as libjpeg, PIL and
/// tifffile/imagecodecs do, so the AI and the readers see the tissue as scanned.
pub fn choose_transform(m: &JpegMarkers, photometric: Option<u16>) -> ColorTransform {
    let says_something = m.jfif || m.adobe_transform.is_some() || m.component_ids == b"RGB";
    match (photometric, m.component_ids.len()) {
        (_, 1) => ColorTransform::Grayscale,
        (Some(6), 3) => ColorTransform::YCbCr,
        (Some(_), 3) if !says_something => ColorTransform::RGB,
        _ => libjpeg_default_transform(m),
    }
}

/// Joins a TIFF JPEGTables stream (SOI, tables, EOI) with an abbreviated tile stream (SOI, ...)
/// into one interchange stream: tables without the trailing EOI, then the tile without its SOI.
pub fn merge_tables(tables: &[u8], tile: &[u8]) -> Vec<u8> {
    if tables.len() < 4 || !tables.starts_with(&[0xFF, 0xD8]) {
        return tile.to_vec();
    }
    let head = tables.strip_suffix(&[0xFF, 0xD9]).unwrap_or(tables);
    let body = tile.strip_prefix(&[0xFF, 0xD8]).unwrap_or(tile);
    let mut out = Vec::with_capacity(head.len() + body.len());
    out.extend_from_slice(head);
    out.extend_from_slice(body);
    out
}

/// Decodes one JPEG (tile, strip or file) to RGB8. `tables` is the TIFF JPEGTables value, if any;
/// `photometric` the TIFF Photometric tag (None outside TIFF). Images over `max_pixels` are
/// refused before any pixel buffer is allocated.
pub fn decode_rgb(
    stream: &[u8],
    tables: Option<&[u8]>,
    photometric: Option<u16>,
    max_pixels: u64,
) -> Result<RgbImage, SlideError> {
    let merged;
    let data = match tables {
        Some(t) => {
            merged = merge_tables(t, stream);
            &merged[..]
        }
        None => stream,
    };
    let markers = scan_markers(data);
    let want = choose_transform(&markers, photometric);
    match want {
        ColorTransform::RGB | ColorTransform::YCbCr | ColorTransform::Grayscale => {}
        other => return Err(SlideError::Unsupported(format!("JPEG colour space {other:?} is not supported"))),
    }
    // zune-jpeg reads an Adobe transform of 0 as CMYK and 2 as YCCK whatever the component count,
    // and refuses other values; libjpeg reads a three-component stream as RGB (0) or YCbCr (any
    // other). Such a stream's transform byte is set to 1 (YCbCr) in a copy: the decoder then
    // converts it or, when the decision is RGB, hands the components over unconverted.
    let patched;
    let data = match (markers.component_ids.len(), markers.adobe_transform, markers.adobe_transform_at) {
        (3, Some(t), Some(at)) if t != 1 && !(t == 0 && markers.component_ids == b"RGB") && at < data.len() => {
            let mut copy = data.to_vec();
            copy[at] = 1;
            patched = copy;
            &patched[..]
        }
        _ => data,
    };
    let limit = usize::from(u16::MAX);
    let options = DecoderOptions::default().set_max_width(limit).set_max_height(limit).set_strict_mode(false);
    let mut dec = JpegDecoder::new_with_options(ZCursor::new(data), options);
    dec.decode_headers().map_err(|e| SlideError::Corrupt(format!("JPEG data could not be read: {e}")))?;
    let info = dec.info().ok_or_else(|| SlideError::Corrupt("JPEG data has no frame header".into()))?;
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    if u64::from(w) * u64::from(h) > max_pixels {
        return Err(SlideError::TooLarge(format!(
            "JPEG image of {w}×{h} pixels is larger than the {max_pixels}-pixel limit"
        )));
    }
    let coded = dec.input_colorspace().unwrap_or(ColorSpace::Unknown);
    // What the decoder is asked for: its own conversion where it matches the decision, else the
    // components as coded (the same colour space in and out is a copy), converted here if needed.
    let (out, convert_here) = match (want, coded) {
        (ColorTransform::Grayscale, ColorSpace::Luma) => (ColorSpace::Luma, false),
        (ColorTransform::RGB, ColorSpace::RGB | ColorSpace::YCbCr) => (coded, false),
        (ColorTransform::YCbCr, ColorSpace::YCbCr) => (ColorSpace::RGB, false),
        (ColorTransform::YCbCr, ColorSpace::RGB) => (ColorSpace::RGB, true),
        _ => return Err(SlideError::Unsupported(format!("JPEG stream coded as {coded:?} cannot be read as {want:?}"))),
    };
    dec.set_options(options.jpeg_set_out_colorspace(out));
    let pixels = dec.decode().map_err(|e| SlideError::Corrupt(format!("JPEG data could not be decoded: {e}")))?;
    let n = w as usize * h as usize;
    let mut data = if out == ColorSpace::Luma { pixels.iter().flat_map(|&v| [v, v, v]).collect() } else { pixels };
    if data.len() < n * 3 {
        return Err(SlideError::Corrupt(format!("JPEG data decoded to {} bytes, expected {}", data.len(), n * 3)));
    }
    data.truncate(n * 3);
    if convert_here {
        ycbcr_to_rgb_in_place(&mut data);
    }
    Ok(RgbImage { width: w, height: h, data })
}

/// libjpeg's YCbCr → RGB (jdcolor.c, JFIF / ITU-R BT.601 full range, rounded fixed point with
/// 16 fraction bits), in place.
fn ycbcr_to_rgb_in_place(px: &mut [u8]) {
    const ONE_HALF: i32 = 1 << 15;
    let fix = |x: f64| (x * 65536.0 + 0.5) as i32;
    let (cr_r, cb_b, cb_g, cr_g) = (fix(1.40200), fix(1.77200), fix(0.34414), fix(0.71414));
    for p in px.chunks_exact_mut(3) {
        let (y, cb, cr) = (i32::from(p[0]), i32::from(p[1]) - 128, i32::from(p[2]) - 128);
        let r = y + ((cr_r * cr + ONE_HALF) >> 16);
        let g = y + ((-cb_g * cb - cr_g * cr + ONE_HALF) >> 16);
        let b = y + ((cb_b * cb + ONE_HALF) >> 16);
        p[0] = r.clamp(0, 255) as u8;
        p[1] = g.clamp(0, 255) as u8;
        p[2] = b.clamp(0, 255) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A marker-only stream: SOI, optional APP0 JFIF, optional APP14 Adobe, SOF0 with the ids.
    fn stream(jfif: bool, adobe: Option<u8>, ids: &[u8]) -> Vec<u8> {
        let mut s = vec![0xFF, 0xD8];
        if jfif {
            s.extend_from_slice(&[0xFF, 0xE0, 0x00, 0x10]);
            s.extend_from_slice(b"JFIF\0\x01\x01\x00\x00\x01\x00\x01\x00\x00");
        }
        if let Some(t) = adobe {
            s.extend_from_slice(&[0xFF, 0xEE, 0x00, 0x0E]);
            s.extend_from_slice(b"Adobe\x00\x64\x00\x00\x00\x00");
            s.push(t);
        }
        let len = 8 + 3 * ids.len() as u16;
        s.extend_from_slice(&[0xFF, 0xC0]);
        s.extend_from_slice(&len.to_be_bytes());
        s.extend_from_slice(&[8, 0, 16, 0, 16, ids.len() as u8]);
        for &id in ids {
            s.extend_from_slice(&[id, 0x11, 0]);
        }
        s.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08]);
        s
    }

    fn decide(jfif: bool, adobe: Option<u8>, ids: &[u8], photometric: Option<u16>) -> ColorTransform {
        choose_transform(&scan_markers(&stream(jfif, adobe, ids)), photometric)
    }

    #[test]
    fn markers_are_found() {
        let m = scan_markers(&stream(true, Some(1), b"RGB"));
        assert!(m.jfif);
        assert_eq!(m.adobe_transform, Some(1));
        assert_eq!(m.component_ids, b"RGB");
        assert_eq!(scan_markers(&[0xFF, 0xD8, 0xFF, 0xE0, 0xFF]), JpegMarkers::default());
        assert_eq!(scan_markers(&[]), JpegMarkers::default());
        // The headers' shape: where they end, the frame and the restart interval.
        let jpeg = crate::tiffwrite::encode_jpeg_rgb_restarts(&[128; 64 * 16 * 3], 64, 16, 90, 2).unwrap();
        let m = scan_markers(&jpeg);
        assert!(m.well_formed && m.sequential);
        assert_eq!((m.frame_size, m.restart_interval, m.mcu()), (Some((64, 16)), Some(2), (16, 8)));
        assert_eq!(&jpeg[m.header_len.unwrap() - 14..m.header_len.unwrap() - 12], [0xFF, 0xDA]);
        let mut damaged = jpeg.clone();
        damaged[5] ^= 0x55;
        assert!(!scan_markers(&damaged).well_formed);
    }

    #[test]
    fn standalone_follows_libjpeg_defaults() {
        use ColorTransform::{Grayscale, YCbCr, RGB};
        assert!(matches!(decide(true, None, &[1, 2, 3], None), YCbCr));
        // JFIF wins over 'R','G','B' ids, as in libjpeg (jpeg-decoder alone would say RGB).
        assert!(matches!(decide(true, None, b"RGB", None), YCbCr));
        assert!(matches!(decide(false, Some(0), b"RGB", None), RGB));
        assert!(matches!(decide(false, Some(0), &[1, 2, 3], None), RGB));
        assert!(matches!(decide(false, Some(1), b"RGB", None), YCbCr));
        assert!(matches!(decide(false, None, b"RGB", None), RGB));
        assert!(matches!(decide(false, None, &[1, 2, 3], None), YCbCr));
        assert!(matches!(decide(false, None, &[7, 8, 9], None), YCbCr));
        assert!(matches!(decide(false, None, &[1], None), Grayscale));
    }

    #[test]
    fn tiff_tag_and_stream_markers_decide_together() {
        use ColorTransform::{Grayscale, YCbCr, RGB};
        // Photometric=YCbCr: converted, whatever the stream says (libvips abbreviated tiles).
        assert!(matches!(decide(false, None, &[1, 2, 3], Some(6)), YCbCr));
        assert!(matches!(decide(false, Some(0), b"RGB", Some(6)), YCbCr));
        // Photometric=RGB: Aperio tiles (Adobe 0, 'R','G','B') stay as they are...
        assert!(matches!(decide(false, Some(0), b"RGB", Some(2)), RGB));
        // ...JFIF tiles tagged RGB are YCbCr-coded and converted (OpenSlide would not: see
        // choose_transform)...
        assert!(matches!(decide(true, None, &[1, 2, 3], Some(2)), YCbCr));
        assert!(matches!(decide(false, Some(1), &[1, 2, 3], Some(2)), YCbCr));
        // ...and a stream that says nothing is taken as the tag says.
        assert!(matches!(decide(false, None, &[1, 2, 3], Some(2)), RGB));
        assert!(matches!(decide(false, None, &[1], Some(1)), Grayscale));
    }

    #[test]
    fn tables_merge_into_one_stream() {
        let tables = [0xFF, 0xD8, 0xFF, 0xDB, 0x00, 0x02, 0xFF, 0xD9];
        let tile = [0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x02, 0xFF, 0xD9];
        assert_eq!(
            merge_tables(&tables, &tile),
            [0xFF, 0xD8, 0xFF, 0xDB, 0x00, 0x02, 0xFF, 0xC0, 0x00, 0x02, 0xFF, 0xD9]
        );
        assert_eq!(merge_tables(&[], &tile), tile);
    }

    /// `stream` with its JFIF APP0 replaced by an Adobe APP14 of `transform`, and its component
    /// ids (frame and scan headers) set to `ids`.
    fn recoded(stream: &[u8], transform: u8, ids: [u8; 3]) -> Vec<u8> {
        let mut out = vec![0xFF, 0xD8, 0xFF, 0xEE, 0x00, 0x0E];
        out.extend_from_slice(b"Adobe\x00\x64\x00\x00\x00\x00");
        out.push(transform);
        let mut i = 2;
        while i + 4 <= stream.len() {
            let marker = stream[i + 1];
            let len = usize::from(u16::from_be_bytes([stream[i + 2], stream[i + 3]]));
            let mut seg = stream[i..i + 2 + len].to_vec();
            match marker {
                0xE0 => seg.clear(),
                0xC0 => (0..3).for_each(|c| seg[10 + c * 3] = ids[c]),
                0xDA => (0..3).for_each(|c| seg[5 + c * 2] = ids[c]),
                _ => {}
            }
            out.extend_from_slice(&seg);
            if marker == 0xDA {
                out.extend_from_slice(&stream[i + 2 + len..]);
                break;
            }
            i += 2 + len;
        }
        out
    }

    #[test]
    fn every_coding_decodes_as_decided() {
        // A saturated gradient, 4:4:4 so that upsampling plays no part.
        let (w, h) = (32u16, 16u16);
        let rgb: Vec<u8> = (0..usize::from(w) * usize::from(h))
            .flat_map(|i| [(i * 7 % 256) as u8, (255 - i * 3 % 256) as u8, (i * 13 % 256) as u8])
            .collect();
        let jfif = crate::tiffwrite::encode_jpeg_rgb_444(&rgb, w, h, 95).unwrap();
        assert_eq!(scan_markers(&jfif).component_ids, [0, 1, 2]);
        let converted = decode_rgb(&jfif, None, None, 1 << 20).unwrap().data;
        let close = |a: &[u8], b: &[u8]| a.iter().zip(b).all(|(x, y)| x.abs_diff(*y) <= 1);
        // Adobe 0, ids 1-2-3, tagged YCbCr (patched for the decoder, then converted by it).
        let adobe0 = recoded(&jfif, 0, [1, 2, 3]);
        assert_eq!(decode_rgb(&adobe0, None, Some(6), 1 << 20).unwrap().data, converted);
        // Adobe 0, ids R-G-B, tagged YCbCr (the decoder says RGB: converted here, libjpeg's way).
        let adobe0_rgb = recoded(&jfif, 0, *b"RGB");
        assert!(close(&decode_rgb(&adobe0_rgb, None, Some(6), 1 << 20).unwrap().data, &converted));
        // The same two read as RGB (not converted): the coded components, identical either way.
        let raw = decode_rgb(&adobe0_rgb, None, Some(2), 1 << 20).unwrap().data;
        assert_eq!(decode_rgb(&adobe0, None, Some(2), 1 << 20).unwrap().data, raw);
        assert_eq!(decode_rgb(&adobe0_rgb, None, None, 1 << 20).unwrap().data, raw);
        assert!(!close(&raw, &converted), "raw YCbCr differs from its RGB");
        // Adobe 2 (YCCK) on three components is YCbCr, as libjpeg reads it.
        assert_eq!(decode_rgb(&recoded(&jfif, 2, [1, 2, 3]), None, None, 1 << 20).unwrap().data, converted);
        // The pixel limit is checked from the header, before decoding.
        assert!(matches!(decode_rgb(&jfif, None, None, 100), Err(SlideError::TooLarge(_))));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [&b""[..], b"\xFF\xD8", b"\xFF\xD8\xFF\xC0\x00\x11\x08\xFF\xFF\xFF\xFF\x03", b"hello"] {
            assert!(decode_rgb(bad, None, None, 1 << 20).is_err());
        }
    }
}
