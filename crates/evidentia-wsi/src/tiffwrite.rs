//! A small streaming writer for tiled or stripped little-endian (Big)TIFF files whose chunks arrive
//! already compressed: de-identification copies source tiles byte for byte, the synthetic slide
//! generator feeds freshly encoded JPEG tiles. Plus helpers to encode and pad tiles.
//!
//! Layout of a written file: a 16-byte header area, then every image's chunk data in the order the
//! images were written, then all IFDs (each followed by its out-of-line tag values). Deferring the
//! IFDs to [`TiffWriter::finish`] keeps memory at one offset and one byte count per chunk (never a
//! level's pixels) and lets the writer choose classic TIFF or BigTIFF from the final file size:
//! chunk offsets are the same in both, only the header and the IFDs differ, and the header area is
//! large enough for either.

use std::io::{self, Seek, SeekFrom, Write};

/// TIFF field types used here and by `ndpiwrite`.
pub(crate) const BYTE_ASCII: u16 = 2;
pub(crate) const SHORT: u16 = 3;
pub(crate) const LONG: u16 = 4;
pub(crate) const RATIONAL: u16 = 5;
const UNDEFINED: u16 = 7;
pub(crate) const SLONG: u16 = 9;
pub(crate) const FLOAT: u16 = 11;
const LONG8: u16 = 16;

/// Bytes reserved at the start of the file: a BigTIFF header is 16 bytes, a classic one 8.
const HEADER_AREA: u64 = 16;

/// How an image's pixels are cut into chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Tiles in row-major order; sizes must be multiples of 16 (TIFF 6.0). Edge tiles are full
    /// size in the file (see [`pad_tile`]).
    Tiled { tile_width: u32, tile_height: u32 },
    /// Horizontal strips of `rows_per_strip` rows; the last strip may be shorter.
    Strips { rows_per_strip: u32 },
}

/// Everything the IFD of one image says, except where its chunks are (the writer knows that).
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSpec {
    pub width: u32,
    pub height: u32,
    pub layout: Layout,
    /// 1 none, 5 LZW, 7 JPEG, 8 deflate, ... Written as given: the chunks must already be compressed so.
    pub compression: u16,
    /// 1 BlackIsZero, 2 RGB, 6 YCbCr.
    pub photometric: u16,
    pub samples_per_pixel: u16,
    pub bits_per_sample: u16,
    /// 1 chunky (interleaved), 2 planar (one set of chunks per sample, sample after sample).
    pub planar_config: u16,
    pub predictor: Option<u16>,
    pub ycbcr_subsampling: Option<[u16; 2]>,
    pub jpeg_tables: Option<Vec<u8>>,
    /// 0 a full-resolution image or pyramid level, 1 reduced resolution (Aperio label), 9 (macro).
    pub new_subfile_type: u32,
    pub description: Option<String>,
    /// (x, y, unit): unit 1 none, 2 inch, 3 centimetre.
    pub resolution: Option<(f64, f64, u16)>,
    /// Further ASCII tags, e.g. DocumentName 269, Software 305, DateTime 306, Artist 315, HostComputer 316.
    pub extra_ascii: Vec<(u16, String)>,
}

impl ImageSpec {
    /// An 8-bit RGB image with JPEG tiles that are YCbCr-encoded JFIF streams (4:2:0), tagged
    /// Photometric=YCbCr so that readers apply the colour transform (OpenSlide decides by the tag).
    pub fn jpeg_tiled(width: u32, height: u32, tile: u32) -> Self {
        Self::rgb(width, height, Layout::Tiled { tile_width: tile, tile_height: tile }, 7, 6, Some([2, 2]))
    }

    /// An 8-bit RGB image with the given layout and compression; photometric RGB (2).
    pub fn rgb_plain(width: u32, height: u32, layout: Layout, compression: u16) -> Self {
        Self::rgb(width, height, layout, compression, 2, None)
    }

    /// An 8-bit, 3-sample, chunky image with the given layout, compression, photometric and
    /// YCbCr subsampling tag.
    pub fn rgb(w: u32, h: u32, layout: Layout, compression: u16, photometric: u16, sub: Option<[u16; 2]>) -> Self {
        ImageSpec {
            width: w,
            height: h,
            layout,
            compression,
            photometric,
            samples_per_pixel: 3,
            bits_per_sample: 8,
            planar_config: 1,
            predictor: None,
            ycbcr_subsampling: sub,
            jpeg_tables: None,
            new_subfile_type: 0,
            description: None,
            resolution: None,
            extra_ascii: Vec::new(),
        }
    }

    /// How many chunks the image has: tiles or strips, times samples for planar images.
    pub fn chunk_count(&self) -> u64 {
        let per_plane = match self.layout {
            Layout::Tiled { tile_width, tile_height } => {
                u64::from(self.width.div_ceil(tile_width)) * u64::from(self.height.div_ceil(tile_height))
            }
            Layout::Strips { rows_per_strip } => u64::from(self.height.div_ceil(rows_per_strip)),
        };
        if self.planar_config == 2 {
            per_plane * u64::from(self.samples_per_pixel)
        } else {
            per_plane
        }
    }

    fn validate(&self) -> io::Result<()> {
        let bad = |m: &str| Err(invalid(m));
        if self.width == 0 || self.height == 0 {
            return bad("image width and height must be positive");
        }
        match self.layout {
            Layout::Tiled { tile_width, tile_height } => {
                if tile_width == 0 || tile_height == 0 || tile_width % 16 != 0 || tile_height % 16 != 0 {
                    return bad("tile width and height must be positive multiples of 16");
                }
            }
            Layout::Strips { rows_per_strip: 0 } => return bad("rows per strip must be positive"),
            Layout::Strips { .. } => {}
        }
        if self.samples_per_pixel == 0 || self.bits_per_sample == 0 {
            return bad("samples per pixel and bits per sample must be positive");
        }
        if !matches!(self.planar_config, 1 | 2) {
            return bad("planar configuration must be 1 or 2");
        }
        if let Some((x, y, _)) = self.resolution {
            if !(x.is_finite() && y.is_finite() && x > 0.0 && y > 0.0) {
                return bad("resolution must be positive and finite");
            }
        }
        Ok(())
    }
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.to_string())
}

/// One image already streamed: its spec and where each chunk went.
struct Written {
    spec: ImageSpec,
    offsets: Vec<u64>,
    counts: Vec<u64>,
}

/// Streams images into a TIFF: chunk data as it comes, all IFDs at [`finish`](Self::finish).
pub struct TiffWriter<W: Write + Seek> {
    w: W,
    /// Where the next byte goes (kept ourselves: fewer seeks, and `W` may be a plain file).
    pos: u64,
    force_bigtiff: bool,
    images: Vec<Written>,
}

impl<W: Write + Seek> TiffWriter<W> {
    /// Starts a file at the writer's current position 0. `bigtiff` forces BigTIFF; otherwise the
    /// writer uses classic TIFF unless the finished file would need offsets beyond 4 GiB.
    pub fn new(mut w: W, bigtiff: bool) -> io::Result<Self> {
        w.seek(SeekFrom::Start(0))?;
        // The real header goes here at finish(); zeros keep a half-written file unreadable.
        w.write_all(&[0u8; HEADER_AREA as usize])?;
        Ok(TiffWriter { w, pos: HEADER_AREA, force_bigtiff: bigtiff, images: Vec::new() })
    }

    /// Writes one image's chunks (TIFF order: row-major tiles or top-down strips, plane after
    /// plane when planar), each already compressed per `spec.compression`. The count must match
    /// [`ImageSpec::chunk_count`]. The image becomes the next IFD of the file.
    pub fn write_image(
        &mut self,
        spec: &ImageSpec,
        chunks: impl IntoIterator<Item = io::Result<Vec<u8>>>,
    ) -> io::Result<()> {
        spec.validate()?;
        let mut seen = std::collections::HashSet::new();
        for (tag, _) in &spec.extra_ascii {
            if !seen.insert(*tag) || RESERVED_TAGS.contains(tag) {
                return Err(invalid("extra ASCII tag repeats or clashes with a tag the writer sets"));
            }
        }
        let expected = spec.chunk_count();
        let cap = usize::try_from(expected.min(1 << 20)).unwrap_or(0);
        let (mut offsets, mut counts) = (Vec::with_capacity(cap), Vec::with_capacity(cap));
        for chunk in chunks {
            let chunk = chunk?;
            if offsets.len() as u64 >= expected {
                return Err(invalid("more chunks than the image has tiles or strips"));
            }
            // Word-aligned chunk starts: not required, but some readers like it and it costs ≤ 1 byte.
            self.align(2)?;
            offsets.push(self.pos);
            counts.push(chunk.len() as u64);
            self.w.write_all(&chunk)?;
            self.pos += chunk.len() as u64;
        }
        if offsets.len() as u64 != expected {
            return Err(invalid("fewer chunks than the image has tiles or strips"));
        }
        self.images.push(Written { spec: spec.clone(), offsets, counts });
        Ok(())
    }

    /// Writes all IFDs and the header, flushes, and hands the writer back.
    pub fn finish(mut self) -> io::Result<W> {
        if self.images.is_empty() {
            return Err(invalid("a TIFF needs at least one image"));
        }
        let big = self.force_bigtiff || {
            let start = self.pos.next_multiple_of(2);
            let size: u64 = self.images.iter().map(|im| ifd_block_len(im, false)).sum();
            start + size + 2 * self.images.len() as u64 > u64::from(u32::MAX)
        };
        let word = if big { 8 } else { 2 };
        self.align(word)?;
        let first_ifd = self.pos;
        let n = self.images.len();
        for i in 0..n {
            let base = self.pos;
            let mut block = build_ifd(&self.images[i], base, big)?;
            let next = if i + 1 < n { (base + block.len() as u64).next_multiple_of(word) } else { 0 };
            // The next-IFD pointer sits right after the entries; build_ifd left it zero.
            let at = next_pointer_position(&self.images[i], big);
            if big {
                block[at..at + 8].copy_from_slice(&next.to_le_bytes());
            } else {
                let next32 = u32::try_from(next).map_err(|_| invalid("offset beyond 4 GiB in classic TIFF"))?;
                block[at..at + 4].copy_from_slice(&next32.to_le_bytes());
            }
            self.w.write_all(&block)?;
            self.pos += block.len() as u64;
            if i + 1 < n {
                self.align(word)?;
            }
        }
        self.w.seek(SeekFrom::Start(0))?;
        if big {
            self.w.write_all(b"II")?;
            self.w.write_all(&43u16.to_le_bytes())?;
            self.w.write_all(&8u16.to_le_bytes())?;
            self.w.write_all(&0u16.to_le_bytes())?;
            self.w.write_all(&first_ifd.to_le_bytes())?;
        } else {
            let first = u32::try_from(first_ifd).map_err(|_| invalid("offset beyond 4 GiB in classic TIFF"))?;
            self.w.write_all(b"II")?;
            self.w.write_all(&42u16.to_le_bytes())?;
            self.w.write_all(&first.to_le_bytes())?;
        }
        self.w.seek(SeekFrom::Start(self.pos))?;
        self.w.flush()?;
        Ok(self.w)
    }

    fn align(&mut self, word: u64) -> io::Result<()> {
        let pad = self.pos.next_multiple_of(word) - self.pos;
        if pad > 0 {
            self.w.write_all(&[0u8; 8][..pad as usize])?;
            self.pos += pad;
        }
        Ok(())
    }
}

/// Tags the writer derives from the spec; extra ASCII tags may not repeat them.
const RESERVED_TAGS: &[u16] =
    &[254, 256, 257, 258, 259, 262, 270, 273, 277, 278, 279, 282, 283, 284, 296, 317, 322, 323, 324, 325, 347, 530];

/// A tag's value as it will be stored.
enum Value {
    Short(Vec<u16>),
    Long(Vec<u32>),
    /// Offsets and byte counts: LONG in classic TIFF (checked to fit), LONG8 in BigTIFF.
    Offsets(Vec<u64>),
    Rational(Vec<(u32, u32)>),
    Ascii(Vec<u8>),
    Undefined(Vec<u8>),
}

impl Value {
    fn field_type(&self, big: bool) -> u16 {
        match self {
            Value::Short(_) => SHORT,
            Value::Long(_) => LONG,
            Value::Offsets(_) if big => LONG8,
            Value::Offsets(_) => LONG,
            Value::Rational(_) => RATIONAL,
            Value::Ascii(_) => BYTE_ASCII,
            Value::Undefined(_) => UNDEFINED,
        }
    }

    fn count(&self) -> u64 {
        (match self {
            Value::Short(v) => v.len(),
            Value::Long(v) => v.len(),
            Value::Offsets(v) => v.len(),
            Value::Rational(v) => v.len(),
            Value::Ascii(v) | Value::Undefined(v) => v.len(),
        }) as u64
    }

    fn byte_len(&self, big: bool) -> u64 {
        let unit = match self {
            Value::Short(_) => 2,
            Value::Long(_) => 4,
            Value::Offsets(_) if big => 8,
            Value::Offsets(_) => 4,
            Value::Rational(_) => 8,
            Value::Ascii(_) | Value::Undefined(_) => 1,
        };
        unit * self.count()
    }

    fn bytes(&self, big: bool) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.byte_len(big) as usize);
        match self {
            Value::Short(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Value::Long(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Value::Offsets(v) if big => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Value::Offsets(v) => {
                for x in v {
                    let x = u32::try_from(*x).map_err(|_| invalid("offset beyond 4 GiB in classic TIFF"))?;
                    out.extend_from_slice(&x.to_le_bytes());
                }
            }
            Value::Rational(v) => v.iter().for_each(|(n, d)| {
                out.extend_from_slice(&n.to_le_bytes());
                out.extend_from_slice(&d.to_le_bytes());
            }),
            Value::Ascii(v) | Value::Undefined(v) => out.extend_from_slice(v),
        }
        Ok(out)
    }
}

/// An ASCII value: NUL-terminated, with any interior NUL dropped (it would end the string early).
fn ascii(s: &str) -> Value {
    let mut v: Vec<u8> = s.bytes().filter(|b| *b != 0).collect();
    v.push(0);
    Value::Ascii(v)
}

/// A positive float as a RATIONAL, exact enough for resolutions (pixels per cm or inch).
fn rational(x: f64) -> (u32, u32) {
    let mut den: u32 = 1;
    while den < 1_000_000 && (x * f64::from(den) * 10.0) < f64::from(u32::MAX) && (x * f64::from(den)).fract() != 0.0 {
        den *= 10;
    }
    ((x * f64::from(den)).round().min(f64::from(u32::MAX)) as u32, den)
}

/// The tags of one image, sorted by tag number.
fn tags(im: &Written) -> Vec<(u16, Value)> {
    let s = &im.spec;
    let mut t: Vec<(u16, Value)> = vec![
        (254, Value::Long(vec![s.new_subfile_type])),
        (256, Value::Long(vec![s.width])),
        (257, Value::Long(vec![s.height])),
        (258, Value::Short(vec![s.bits_per_sample; usize::from(s.samples_per_pixel)])),
        (259, Value::Short(vec![s.compression])),
        (262, Value::Short(vec![s.photometric])),
        (277, Value::Short(vec![s.samples_per_pixel])),
        (284, Value::Short(vec![s.planar_config])),
    ];
    if let Some(d) = &s.description {
        t.push((270, ascii(d)));
    }
    match s.layout {
        Layout::Tiled { tile_width, tile_height } => {
            t.push((322, Value::Long(vec![tile_width])));
            t.push((323, Value::Long(vec![tile_height])));
            t.push((324, Value::Offsets(im.offsets.clone())));
            t.push((325, Value::Offsets(im.counts.clone())));
        }
        Layout::Strips { rows_per_strip } => {
            t.push((273, Value::Offsets(im.offsets.clone())));
            t.push((278, Value::Long(vec![rows_per_strip.min(s.height)])));
            t.push((279, Value::Offsets(im.counts.clone())));
        }
    }
    if let Some((x, y, unit)) = s.resolution {
        t.push((282, Value::Rational(vec![rational(x)])));
        t.push((283, Value::Rational(vec![rational(y)])));
        t.push((296, Value::Short(vec![unit])));
    }
    if let Some(p) = s.predictor {
        t.push((317, Value::Short(vec![p])));
    }
    if let Some(tables) = &s.jpeg_tables {
        t.push((347, Value::Undefined(tables.clone())));
    }
    if let Some(sub) = s.ycbcr_subsampling {
        t.push((530, Value::Short(sub.to_vec())));
    }
    for (tag, text) in &s.extra_ascii {
        t.push((*tag, ascii(text)));
    }
    t.sort_by_key(|(tag, _)| *tag);
    t
}

fn entry_sizes(big: bool) -> (u64, u64, u64) {
    // (count field, one entry, next pointer)
    if big {
        (8, 20, 8)
    } else {
        (2, 12, 4)
    }
}

fn next_pointer_position(im: &Written, big: bool) -> usize {
    let (count, entry, _) = entry_sizes(big);
    (count + entry * tags(im).len() as u64) as usize
}

/// Bytes an image's IFD block takes: the directory plus its word-aligned out-of-line values.
fn ifd_block_len(im: &Written, big: bool) -> u64 {
    let (count, entry, next) = entry_sizes(big);
    let inline = if big { 8 } else { 4 };
    let tags = tags(im);
    let mut len = count + entry * tags.len() as u64 + next;
    for (_, v) in &tags {
        let n = v.byte_len(big);
        if n > inline {
            len = len.next_multiple_of(2) + n;
        }
    }
    len
}

/// Serialises one IFD placed at file offset `base`, out-of-line values right after it; the
/// next-IFD pointer is left zero for the caller.
fn build_ifd(im: &Written, base: u64, big: bool) -> io::Result<Vec<u8>> {
    let (count_len, entry_len, next_len) = entry_sizes(big);
    let inline = if big { 8 } else { 4 };
    let tags = tags(im);
    let dir_len = count_len + entry_len * tags.len() as u64 + next_len;
    let mut dir = Vec::with_capacity(dir_len as usize);
    let mut extra: Vec<u8> = Vec::new();
    if big {
        dir.extend_from_slice(&(tags.len() as u64).to_le_bytes());
    } else {
        dir.extend_from_slice(&(tags.len() as u16).to_le_bytes());
    }
    for (tag, v) in &tags {
        let bytes = v.bytes(big)?;
        dir.extend_from_slice(&tag.to_le_bytes());
        dir.extend_from_slice(&v.field_type(big).to_le_bytes());
        if big {
            dir.extend_from_slice(&v.count().to_le_bytes());
        } else {
            let c = u32::try_from(v.count()).map_err(|_| invalid("too many values for a classic TIFF tag"))?;
            dir.extend_from_slice(&c.to_le_bytes());
        }
        let mut field = [0u8; 8];
        if bytes.len() as u64 <= inline {
            // Inline values are left-justified in the value field.
            field[..bytes.len()].copy_from_slice(&bytes);
        } else {
            if extra.len() % 2 == 1 {
                extra.push(0);
            }
            let at = base + dir_len + extra.len() as u64;
            extra.extend_from_slice(&bytes);
            if big {
                field = at.to_le_bytes();
            } else {
                let at = u32::try_from(at).map_err(|_| invalid("offset beyond 4 GiB in classic TIFF"))?;
                field[..4].copy_from_slice(&at.to_le_bytes());
            }
        }
        dir.extend_from_slice(&field[..inline as usize]);
    }
    dir.extend_from_slice(&[0u8; 8][..next_len as usize]);
    dir.extend_from_slice(&extra);
    Ok(dir)
}

/// Whether a file of about `estimated_bytes` should be BigTIFF from the start. The writer decides
/// by itself at finish; this is for callers that want to say so up front (e.g. copying a BigTIFF).
pub fn needs_bigtiff(estimated_bytes: u64) -> bool {
    // Margin for IFDs and alignment.
    estimated_bytes > u64::from(u32::MAX) - (64 << 20)
}

/// Encodes an RGB8 image (`width`×`height`, interleaved) as a complete baseline JFIF JPEG,
/// YCbCr with 4:2:0 chroma subsampling. `quality` 1–100.
pub fn encode_jpeg_rgb(data: &[u8], width: u16, height: u16, quality: u8) -> io::Result<Vec<u8>> {
    encode_jpeg(data, width, height, quality, jpeg_encoder::SamplingFactor::R_4_2_0, None)
}

/// As [`encode_jpeg_rgb`] without chroma subsampling (4:4:4): sharper text on label images.
pub fn encode_jpeg_rgb_444(data: &[u8], width: u16, height: u16, quality: u8) -> io::Result<Vec<u8>> {
    encode_jpeg(data, width, height, quality, jpeg_encoder::SamplingFactor::R_4_4_4, None)
}

/// As [`encode_jpeg_rgb`] with the chroma subsampling of a TIFF YCbCrSubsampling value:
/// [1, 1] 4:4:4, [2, 1] 4:2:2, anything else 4:2:0.
pub fn encode_jpeg_rgb_sampled(
    data: &[u8],
    width: u16,
    height: u16,
    quality: u8,
    sampling: [u16; 2],
) -> io::Result<Vec<u8>> {
    let factor = match sampling {
        [1, 1] => jpeg_encoder::SamplingFactor::R_4_4_4,
        [2, 1] => jpeg_encoder::SamplingFactor::R_4_2_2,
        _ => jpeg_encoder::SamplingFactor::R_4_2_0,
    };
    encode_jpeg(data, width, height, quality, factor, None)
}

/// A 4:2:2 JPEG (MCUs of 16 × 8 pixels) with a restart marker every `interval` MCUs.
pub fn encode_jpeg_rgb_restarts(
    data: &[u8],
    width: u16,
    height: u16,
    quality: u8,
    interval: u16,
) -> io::Result<Vec<u8>> {
    encode_jpeg(data, width, height, quality, jpeg_encoder::SamplingFactor::R_4_2_2, Some(interval))
}

fn encode_jpeg(
    data: &[u8],
    width: u16,
    height: u16,
    quality: u8,
    sampling: jpeg_encoder::SamplingFactor,
    restart_interval: Option<u16>,
) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(usize::from(width) * usize::from(height) / 4);
    let mut enc = jpeg_encoder::Encoder::new(&mut out, quality.clamp(1, 100));
    enc.set_sampling_factor(sampling);
    if let Some(interval) = restart_interval {
        enc.set_restart_interval(interval);
    }
    enc.encode(data, width, height, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    Ok(out)
}

/// Copies a `width`×`height` region of `samples`-byte pixels into a `tile_width`×`tile_height`
/// buffer, replicating the last column and row into the padding (edge tiles of a tiled TIFF are
/// full size; replication keeps JPEG from ringing at the image edge).
pub fn pad_tile(src: &[u8], width: u32, height: u32, tile_width: u32, tile_height: u32, samples: usize) -> Vec<u8> {
    let (w, h, tw, th) = (width as usize, height as usize, tile_width as usize, tile_height as usize);
    let mut out = vec![0u8; tw * th * samples];
    if w == 0 || h == 0 {
        return out;
    }
    for y in 0..th {
        let sy = y.min(h - 1);
        let src_row = &src[sy * w * samples..(sy + 1) * w * samples];
        let dst_row = &mut out[y * tw * samples..(y + 1) * tw * samples];
        let copy = w.min(tw) * samples;
        dst_row[..copy].copy_from_slice(&src_row[..copy]);
        let last = &src_row[(w - 1) * samples..w * samples];
        for x in w.min(tw)..tw {
            dst_row[x * samples..(x + 1) * samples].copy_from_slice(last);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Read};
    use tiff::decoder::{Decoder, DecodingResult};
    use tiff::tags::Tag;

    fn lzw(data: &[u8]) -> Vec<u8> {
        use tiff::encoder::compression::{CompressionAlgorithm, Lzw};
        let mut out = Vec::new();
        Lzw.write_to(&mut out, data).unwrap();
        out
    }

    /// A w×h RGB test pattern.
    fn pattern(w: u32, h: u32) -> Vec<u8> {
        let mut v = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                v.extend_from_slice(&[(x * 7 % 256) as u8, (y * 13 % 256) as u8, ((x ^ y) % 256) as u8]);
            }
        }
        v
    }

    /// Cut an RGB image into padded row-major tiles.
    fn tiles(img: &[u8], w: u32, h: u32, t: u32) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for ty in 0..h.div_ceil(t) {
            for tx in 0..w.div_ceil(t) {
                let (x0, y0) = (tx * t, ty * t);
                let (cw, ch) = ((w - x0).min(t), (h - y0).min(t));
                let mut region = Vec::new();
                for y in y0..y0 + ch {
                    let s = ((y * w + x0) * 3) as usize;
                    region.extend_from_slice(&img[s..s + (cw * 3) as usize]);
                }
                out.push(pad_tile(&region, cw, ch, t, t, 3));
            }
        }
        out
    }

    fn write(images: &[(ImageSpec, Vec<Vec<u8>>)], big: bool) -> Vec<u8> {
        let mut w = TiffWriter::new(Cursor::new(Vec::new()), big).unwrap();
        for (spec, chunks) in images {
            w.write_image(spec, chunks.iter().cloned().map(Ok)).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn raw_chunks(file: &[u8], dec: &mut Decoder<Cursor<&[u8]>>, tiled: bool) -> Vec<Vec<u8>> {
        let (o, c) =
            if tiled { (Tag::TileOffsets, Tag::TileByteCounts) } else { (Tag::StripOffsets, Tag::StripByteCounts) };
        let offs = dec.get_tag_u64_vec(o).unwrap();
        let counts = dec.get_tag_u64_vec(c).unwrap();
        offs.iter().zip(&counts).map(|(&o, &c)| file[o as usize..(o + c) as usize].to_vec()).collect()
    }

    fn round_trip(big: bool) {
        let (w, h, t) = (100u32, 70u32, 32u32);
        let img = pattern(w, h);
        let raw_tiles = tiles(&img, w, h, t);
        let lzw_tiles: Vec<Vec<u8>> = raw_tiles.iter().map(|c| lzw(c)).collect();
        let mut tiled_lzw = ImageSpec::rgb_plain(w, h, Layout::Tiled { tile_width: t, tile_height: t }, 5);
        tiled_lzw.description = Some("Aperio Image Library v12.0.5 \n100x70 |MPP = 0.5".into());
        tiled_lzw.resolution = Some((20000.0, 20000.0, 3));
        tiled_lzw.extra_ascii = vec![
            (316, "HOST-1".into()),
            (306, "2024:01:02 03:04:05".into()),
            (315, "Doe, Jane".into()),
            (269, "doc".into()),
            (305, "Evidentia".into()),
        ];
        let strips = ImageSpec::rgb_plain(w, h, Layout::Strips { rows_per_strip: 16 }, 1);
        let strip_chunks: Vec<Vec<u8>> = img.chunks((w * 3 * 16) as usize).map(|c| c.to_vec()).collect();
        let mut gray = ImageSpec::rgb_plain(1, 1, Layout::Strips { rows_per_strip: 1 }, 1);
        gray.samples_per_pixel = 1;
        gray.photometric = 1;
        gray.new_subfile_type = 1;
        let file =
            write(&[(tiled_lzw, lzw_tiles.clone()), (strips, strip_chunks.clone()), (gray, vec![vec![77]])], big);
        assert_eq!(&file[..2], b"II");
        assert_eq!(u16::from_le_bytes([file[2], file[3]]), if big { 43 } else { 42 });

        let mut dec = Decoder::new(Cursor::new(&file[..])).unwrap();
        assert_eq!(dec.dimensions().unwrap(), (w, h));
        assert_eq!(dec.get_tag_u32(Tag::TileWidth).unwrap(), t);
        assert_eq!(dec.get_tag_u32(Tag::Compression).unwrap(), 5);
        assert_eq!(dec.get_tag_ascii_string(Tag::Artist).unwrap(), "Doe, Jane");
        assert_eq!(dec.get_tag_ascii_string(Tag::HostComputer).unwrap(), "HOST-1");
        assert_eq!(dec.get_tag_ascii_string(Tag::DateTime).unwrap(), "2024:01:02 03:04:05");
        assert!(dec.get_tag_ascii_string(Tag::ImageDescription).unwrap().starts_with("Aperio"));
        assert_eq!(dec.get_tag_u32(Tag::ResolutionUnit).unwrap(), 3);
        assert_eq!(dec.get_tag(Tag::XResolution).unwrap(), tiff::decoder::ifd::Value::Rational(20000, 1));
        assert_eq!(raw_chunks(&file, &mut dec, true), lzw_tiles);
        match dec.read_image().unwrap() {
            DecodingResult::U8(px) => assert_eq!(px, img),
            _ => panic!("not u8"),
        }
        // Tags sorted ascending, as TIFF requires.
        let tags: Vec<u16> = dec.tag_iter().map(|r| r.unwrap().0.to_u16()).collect();
        assert!(tags.windows(2).all(|p| p[0] < p[1]), "{tags:?}");

        dec.next_image().unwrap();
        assert_eq!(dec.dimensions().unwrap(), (w, h));
        assert_eq!(raw_chunks(&file, &mut dec, false), strip_chunks);
        match dec.read_image().unwrap() {
            DecodingResult::U8(px) => assert_eq!(px, img),
            _ => panic!("not u8"),
        }
        dec.next_image().unwrap();
        assert_eq!(dec.dimensions().unwrap(), (1, 1));
        assert_eq!(dec.get_tag_u32(Tag::NewSubfileType).unwrap(), 1);
        match dec.read_image().unwrap() {
            DecodingResult::U8(px) => assert_eq!(px, vec![77]),
            _ => panic!("not u8"),
        }
        assert!(!dec.more_images());
    }

    #[test]
    fn classic_round_trip() {
        round_trip(false);
    }

    #[test]
    fn bigtiff_round_trip() {
        round_trip(true);
    }

    #[test]
    fn jpeg_tiles_copied_byte_for_byte_with_tables_and_subsampling() {
        let (w, h) = (300u32, 200u32);
        let img = pattern(w, h);
        let jpegs: Vec<Vec<u8>> =
            tiles(&img, w, h, 256).iter().map(|t| encode_jpeg_rgb(t, 256, 256, 80).unwrap()).collect();
        assert_eq!(jpegs.len(), 2);
        assert_eq!(&jpegs[0][..2], &[0xFF, 0xD8]);
        let mut spec = ImageSpec::jpeg_tiled(w, h, 256);
        spec.jpeg_tables = Some(vec![0xFF, 0xD8, 0xFF, 0xD9]);
        let file = write(&[(spec, jpegs.clone())], false);
        let mut dec = Decoder::new(Cursor::new(&file[..])).unwrap();
        assert_eq!(dec.get_tag_u32(Tag::PhotometricInterpretation).unwrap(), 6);
        assert_eq!(dec.get_tag_u16_vec(Tag::Unknown(530)).unwrap(), vec![2, 2]);
        assert_eq!(dec.get_tag_u8_vec(Tag::JPEGTables).unwrap(), vec![0xFF, 0xD8, 0xFF, 0xD9]);
        assert_eq!(raw_chunks(&file, &mut dec, true), jpegs);
        // The tile decodes back to roughly the pattern's first pixel.
        let px = crate::jpeg::decode_rgb(&jpegs[1], None, Some(6), 1 << 20).unwrap();
        assert_eq!(px.data.len(), 256 * 256 * 3);
    }

    #[test]
    fn edge_cases_and_errors() {
        // 1×1 image in one 16×16 tile.
        let one = pad_tile(&[1, 2, 3], 1, 1, 16, 16, 3);
        assert!(one.chunks(3).all(|p| p == [1, 2, 3]));
        let spec = ImageSpec::rgb_plain(1, 1, Layout::Tiled { tile_width: 16, tile_height: 16 }, 1);
        let file = write(&[(spec.clone(), vec![one])], false);
        let mut dec = Decoder::new(Cursor::new(&file[..])).unwrap();
        assert_eq!(dec.dimensions().unwrap(), (1, 1));
        match dec.read_image().unwrap() {
            DecodingResult::U8(px) => assert_eq!(px, vec![1, 2, 3]),
            _ => panic!("not u8"),
        }
        // Wrong chunk counts, bad tiles, clashing tags are refused.
        let mut w = TiffWriter::new(Cursor::new(Vec::new()), false).unwrap();
        assert!(w.write_image(&spec, Vec::<io::Result<Vec<u8>>>::new()).is_err());
        assert!(w.write_image(&spec, vec![Ok(vec![0]), Ok(vec![0])]).is_err());
        let mut bad = spec.clone();
        bad.layout = Layout::Tiled { tile_width: 20, tile_height: 16 };
        assert!(w.write_image(&bad, vec![Ok(vec![0])]).is_err());
        let mut clash = spec.clone();
        clash.extra_ascii = vec![(270, "x".into())];
        assert!(w.write_image(&clash, vec![Ok(vec![0])]).is_err());
        assert!(TiffWriter::new(Cursor::new(Vec::new()), false).unwrap().finish().is_err());
        // A failing chunk source aborts the image.
        let err = w.write_image(&spec, vec![Err(io::Error::other("source"))]).unwrap_err();
        assert_eq!(err.to_string(), "source");
        // Edge padding replicates the last column and row.
        let p = pad_tile(&[1, 2, 3, 4], 2, 2, 16, 16, 1);
        assert_eq!(&p[..3], &[1, 2, 2]);
        assert_eq!(p[15 * 16 + 15], 4);
        assert_eq!(p[15 * 16], 3);
    }

    #[test]
    fn many_tags_and_planar() {
        let (w, h) = (40u32, 20u32);
        let mut spec = ImageSpec::rgb_plain(w, h, Layout::Tiled { tile_width: 16, tile_height: 16 }, 8);
        spec.planar_config = 2;
        spec.predictor = Some(1);
        spec.extra_ascii = (0..30).map(|i| (40000 + i, format!("value {i} {}", "x".repeat(i as usize)))).collect();
        assert_eq!(spec.chunk_count(), 3 * 2 * 3);
        let chunks: Vec<Vec<u8>> = (0..18u8).map(|i| vec![i; 1 + usize::from(i)]).collect();
        let file = write(&[(spec.clone(), chunks.clone())], false);
        let mut dec = Decoder::new(Cursor::new(&file[..])).unwrap();
        assert_eq!(raw_chunks(&file, &mut dec, true), chunks);
        assert_eq!(dec.get_tag_u32(Tag::PlanarConfiguration).unwrap(), 2);
        assert_eq!(dec.get_tag_ascii_string(Tag::Unknown(40029)).unwrap(), format!("value 29 {}", "x".repeat(29)));
        let n = dec.tag_iter().count();
        assert_eq!(n, 13 + 30);
        // Forced BigTIFF holds the same.
        let big = write(&[(spec, chunks.clone())], true);
        let mut dec = Decoder::new(Cursor::new(&big[..])).unwrap();
        assert_eq!(raw_chunks(&big, &mut dec, true), chunks);
        let mut hdr = [0u8; 8];
        Cursor::new(&big[..]).read_exact(&mut hdr).unwrap();
        assert_eq!(&hdr[..4], &[b'I', b'I', 43, 0]);
    }

    #[test]
    fn rational_is_exact_for_typical_resolutions() {
        assert_eq!(rational(20000.0), (20000, 1));
        assert_eq!(rational(0.5), (5, 10));
        assert!(needs_bigtiff(5 << 30));
        assert!(!needs_bigtiff(1 << 30));
    }
}
