//! Whole-slide reading: the `SlideReader` seam, and our own reader for Aperio SVS, generic tiled
//! pyramidal TIFF / OME-TIFF (directories via the `tiff` crate, tiles decoded here), PNG and JPEG.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tiff::decoder::ifd::Value;
use tiff::decoder::Decoder;
use tiff::tags::{IfdPointer, Tag};
use tiff::TiffError;

use super::jpeg;
use super::openslide::{self, VendorFormat};
use super::source::{self, ByteSource, FileSource};
use super::vendor::{self, VendorMeta};

/// Largest decoded tile or strip we accept (pixels): real tiles are at most a few megapixels.
pub(crate) const MAX_CHUNK_PIXELS: u64 = 1 << 25;
/// Largest region, associated image or PNG/JPEG file we decode at once (pixels, 3 bytes each).
pub(crate) const MAX_IMAGE_PIXELS: u64 = 1 << 26;
/// Most tiles/strips one directory may declare.
pub(crate) const MAX_CHUNKS: u64 = 10_000_000;
/// Most directories a file may hold (main chain plus SubIFDs).
const MAX_DIRECTORIES: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum SlideError {
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Corrupt(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    OutOfBounds(String),
    #[error("{0}")]
    NotFound(String),
    /// A scanner vendor's format, which [`open`] reads through OpenSlide (from a local file).
    #[error("{} slides are read through OpenSlide, from a file on this machine", .0.name)]
    Vendor(VendorFormat),
    #[error("could not read the slide file: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct Level {
    pub width: u64,
    pub height: u64,
    pub downsample: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SlideInfo {
    /// "aperio-svs" | "generic-tiff" | "ome-tiff" | "png" | "jpeg", or a vendor's format read
    /// through OpenSlide: "hamamatsu-ndpi" | "philips-tiff" | "leica-scn" | "ventana-bif" |
    /// "mirax" | "dicom"
    pub format: String,
    /// What reads it: "evidentia" (our own reader) or "openslide 4.0.1".
    pub backend: String,
    pub width: u64,
    pub height: u64,
    pub levels: Vec<Level>,
    pub mpp_x: Option<f64>,
    pub mpp_y: Option<f64>,
    pub objective_power: Option<f64>,
    /// e.g. ["thumbnail", "label", "macro"]
    pub associated: Vec<String>,
    /// Metadata as read, with OpenSlide-style names: "aperio.MPP", "tiff.ImageDescription", ...
    #[serde(skip)]
    pub properties: BTreeMap<String, String>,
}

impl SlideInfo {
    /// OpenSlide's rule: the largest level whose downsample is at most `ds`, else level 0.
    pub fn best_level_for_downsample(&self, ds: f64) -> usize {
        self.levels
            .iter()
            .enumerate()
            .filter(|(_, l)| l.downsample <= ds)
            .max_by(|a, b| a.1.downsample.total_cmp(&b.1.downsample))
            .map_or(0, |(i, _)| i)
    }
}

/// RGB8 pixels, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl RgbImage {
    pub fn new(width: u32, height: u32, fill: [u8; 3]) -> Self {
        let n = width as usize * height as usize;
        // One memset for a grey fill, else doubling copies (`repeat`), not a push per pixel.
        let data = if fill[0] == fill[1] && fill[1] == fill[2] { vec![fill[0]; n * 3] } else { fill.repeat(n) };
        RgbImage { width, height, data }
    }

    /// The pixel at (`x`, `y`); panics if that lies outside the image, like slice indexing.
    pub fn get(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    pub fn write_png(&self, w: impl std::io::Write) -> Result<(), SlideError> {
        let mut enc = png::Encoder::new(w, self.width, self.height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(png_write_error)?;
        writer.write_image_data(&self.data).map_err(png_write_error)?;
        writer.finish().map_err(png_write_error)
    }

    /// Copies `src` so that its (0, 0) lands at (`dx`, `dy`) here, clipping both sides.
    fn paste(&mut self, src: &RgbImage, dx: i64, dy: i64) {
        let x0 = dx.max(0);
        let x1 = (dx + i64::from(src.width)).min(i64::from(self.width));
        if x1 <= x0 {
            return;
        }
        let n = (x1 - x0) as usize * 3;
        for y in dy.max(0)..(dy + i64::from(src.height)).min(i64::from(self.height)) {
            let s = (((y - dy) * i64::from(src.width) + (x0 - dx)) * 3) as usize;
            let d = ((y * i64::from(self.width) + x0) * 3) as usize;
            self.data[d..d + n].copy_from_slice(&src.data[s..s + n]);
        }
    }
}

fn png_write_error(e: png::EncodingError) -> SlideError {
    match e {
        png::EncodingError::IoError(e) => SlideError::Io(e),
        other => SlideError::Io(std::io::Error::other(other)),
    }
}

pub trait SlideReader: Send + Sync {
    fn info(&self) -> &SlideInfo;
    /// x, y in level-0 pixels (as OpenSlide's read_region); w, h in pixels of `level`. Area outside the image is white (255,255,255).
    fn read_region(&self, level: usize, x: i64, y: i64, w: u32, h: u32) -> Result<RgbImage, SlideError>;
    fn associated_image(&self, name: &str) -> Result<RgbImage, SlideError>;
    /// For TIFF-based readers: the raw directory structure, so de-identification can rewrite the file copying compressed tiles unchanged. None for PNG/JPEG.
    fn tiff(&self) -> Option<&TiffSlide> {
        None
    }
    /// For DICOM slides: the instances and their stored frames (copied by de-identification).
    fn dicom(&self) -> Option<&super::dicom::DicomSlide> {
        None
    }
    /// Pixel memory the open reader holds (PNG/JPEG are decoded whole at open; TIFF readers
    /// decode per request and hold next to nothing), for caches of open readers.
    fn memory_bytes(&self) -> usize {
        0
    }
}

/// Opens a local slide file, choosing the reader from the file's first bytes (and a MIRAX
/// slide by its `.mrxs` name): our own for Aperio SVS, generic TIFF, PNG and JPEG; OpenSlide for
/// the scanner vendors' formats.
pub fn open(path: &Path) -> Result<Box<dyn SlideReader>, SlideError> {
    if is_mirax(path) {
        return Ok(Box::new(openslide::open(path, openslide::MIRAX)?));
    }
    let native = match open_source(Arc::new(FileSource::open(path)?)) {
        Err(SlideError::Vendor(openslide::DICOM)) => {
            super::dicom::open(path).map(|d| Box::new(d) as Box<dyn SlideReader>)
        }
        other => other,
    };
    match native {
        // Vendor formats, and DICOM frames our own path does not decode (JPEG 2000).
        Err(SlideError::Vendor(format)) => Ok(Box::new(openslide::open(path, format)?)),
        other => other,
    }
}

/// Every file the slide at `path` is made of, `path` first: a MIRAX slide's `.mrxs` file and
/// the files of its folder; the instances of a DICOM series; otherwise the file alone.
pub fn slide_files(path: &Path) -> Result<Vec<PathBuf>, SlideError> {
    if is_mirax(path) {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path.with_extension(""))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        files.insert(0, path.to_path_buf());
        return Ok(files);
    }
    let mut head = [0u8; 132];
    let n = source::read_at_most(&FileSource::open(path)?, &mut head, 0)?;
    if !is_dicom(&head[..n]) {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = super::dicom::series_files(path)?;
    files.retain(|f| f != path);
    files.insert(0, path.to_path_buf());
    Ok(files)
}

/// A MIRAX slide is named `*.mrxs`, its data in the folder beside it of the same stem.
pub fn is_mirax(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("mrxs"))
}

/// Which vendor format, if any, our own sniffing takes `dir0` (a TIFF's first directory) for,
/// by the marks OpenSlide 4 detects them by (openslide-vendor-*.c): NDPI's tag 65420, Philips'
/// Software and DPUfsImport XML, Leica's SCN namespace, Ventana's iScan XMLPacket.
fn tiff_vendor(dir0: &TiffDirectory) -> Option<VendorFormat> {
    let description = dir0.description.as_deref().unwrap_or("");
    if dir0.tag(65420).is_some() {
        Some(openslide::NDPI)
    } else if dir0.tag(305).is_some_and(|s| s.starts_with("Philips")) && description.contains("DPUfsImport") {
        Some(openslide::PHILIPS)
    } else if description.contains("http://www.leica-microsystems.com/scn/") {
        Some(openslide::LEICA)
    } else if dir0.tag(700).is_some_and(|x| x.contains("iScan")) {
        Some(openslide::VENTANA)
    } else {
        None
    }
}

/// Opens a slide from any byte source (a local file, an object store), choosing the reader
/// from its first bytes. TIFF readers read ranges on demand; PNG and JPEG are read whole.
pub fn open_source(src: Arc<dyn ByteSource>) -> Result<Box<dyn SlideReader>, SlideError> {
    let len = src.len();
    if len == 0 {
        return Err(SlideError::Corrupt("the file is empty (0 bytes)".into()));
    }
    let mut head = [0u8; 132];
    let n = source::read_at_most(src.as_ref(), &mut head, 0)?;
    let head = &head[..n];
    if is_tiff_magic(head) {
        Ok(Box::new(TiffReader::open(TiffSlide::open_source(src)?)?))
    } else if is_dicom(head) {
        Err(SlideError::Vendor(openslide::DICOM))
    } else if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Ok(Box::new(ImageReader::open_png(source::Cursor::new(src))?))
    } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Ok(Box::new(ImageReader::open_jpeg(source::Cursor::new(src), len)?))
    } else {
        Err(SlideError::Unsupported(format!(
            "{} — not a slide this server reads (Aperio SVS, pyramidal TIFF, PNG or JPEG)",
            what_file(head)
        )))
    }
}

/// What a file that is not a readable slide seems to be, from its first bytes, in words.
fn what_file(head: &[u8]) -> &'static str {
    if head.starts_with(b"%PDF") {
        "a PDF document"
    } else if head.starts_with(b"PK\x03\x04") {
        "a ZIP archive"
    } else if is_dicom(head) {
        "a DICOM file"
    } else if head.starts_with(b"GIF8") {
        "a GIF image"
    } else if head.starts_with(b"BM") {
        "a BMP image"
    } else if !head.is_empty() && head.iter().all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace()) {
        "a text file"
    } else {
        "a file of an unknown type"
    }
}

fn is_dicom(head: &[u8]) -> bool {
    head.get(128..132) == Some(b"DICM")
}

fn is_tiff_magic(head: &[u8]) -> bool {
    matches!(head.get(..4), Some(b"II*\0" | b"MM\0*" | b"II+\0" | b"MM\0+"))
}

// ---------------------------------------------------------------------------------------------
// TIFF directories

/// Every TIFF directory of the file in order (main chain, SubIFDs after their parent), classified.
pub struct TiffSlide {
    file: Arc<dyn ByteSource>,
    file_len: u64,
    bigtiff: bool,
    format: String,
    directories: Vec<TiffDirectory>,
    vendor: Option<(VendorFormat, VendorMeta)>,
    /// NDPI restart intervals decoded lately: a Deep Zoom tile or a conversion tile reads parts
    /// of intervals its neighbours read too (an interval is often wider than a tile).
    intervals: std::sync::Mutex<ChunkCache>,
}

/// Decoded chunks by (directory, index), the oldest dropped first past [`CHUNK_CACHE_BYTES`].
#[derive(Default)]
struct ChunkCache {
    chunks: HashMap<(usize, usize), Arc<RgbImage>>,
    order: std::collections::VecDeque<(usize, usize)>,
    bytes: usize,
}

/// What one open slide keeps of decoded NDPI intervals.
const CHUNK_CACHE_BYTES: usize = 16 << 20;

impl ChunkCache {
    fn get(&self, key: (usize, usize)) -> Option<Arc<RgbImage>> {
        self.chunks.get(&key).cloned()
    }

    fn put(&mut self, key: (usize, usize), img: Arc<RgbImage>) {
        if self.chunks.contains_key(&key) {
            return;
        }
        self.bytes += img.data.len();
        self.chunks.insert(key, img);
        self.order.push_back(key);
        while self.bytes > CHUNK_CACHE_BYTES {
            let Some(old) = self.order.pop_front() else { break };
            if let Some(img) = self.chunks.remove(&old) {
                self.bytes -= img.data.len();
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum DirectoryRole {
    Level(usize),
    /// "thumbnail" | "label" | "macro"
    Associated(String),
    Other,
}

#[derive(Debug, Clone)]
pub struct TiffDirectory {
    pub role: DirectoryRole,
    pub width: u32,
    pub height: u32,
    /// Tile size, or (width, rows_per_strip) for strips.
    pub tiled: bool,
    pub chunk_width: u32,
    pub chunk_height: u32,
    pub compression: u16,
    pub photometric: u16,
    pub samples_per_pixel: u16,
    pub bits_per_sample: u16,
    pub planar_config: u16,
    pub predictor: u16,
    pub new_subfile_type: u32,
    pub ycbcr_subsampling: Option<[u16; 2]>,
    pub jpeg_tables: Option<Vec<u8>>,
    pub description: Option<String>,
    pub x_resolution: Option<f64>,
    pub y_resolution: Option<f64>,
    pub resolution_unit: Option<u16>,
    pub chunk_offsets: Vec<u64>,
    pub chunk_byte_counts: Vec<u64>,
    /// NDPI: the level JPEG's headers, patched so that headers + one restart interval's data
    /// (a chunk) + EOI is a JPEG of its own (see `vendor`).
    pub jpeg_header: Option<Vec<u8>>,
    /// NDPI's McuStarts: where each restart interval begins in the level's JPEG.
    pub(crate) ndpi_mcu_starts: Vec<u64>,
    /// Every other tag present: number and a short text rendering (for metadata display and deid checks).
    pub tags: Vec<(u16, String)>,
}

/// Tags that have their own field in `TiffDirectory` (everything else goes to `tags`).
const FIELD_TAGS: &[u16] =
    &[254, 256, 257, 258, 259, 262, 270, 273, 277, 278, 279, 282, 283, 284, 296, 317, 322, 323, 324, 325, 347, 530];

impl TiffDirectory {
    /// The text rendering of tag `t`, if the directory has it (tags without a field of their own).
    pub(crate) fn tag(&self, t: u16) -> Option<&str> {
        self.tags.iter().find(|(n, _)| *n == t).map(|(_, v)| v.as_str())
    }

    fn chunks_across(&self) -> u32 {
        self.width.div_ceil(self.chunk_width)
    }

    /// "label" or "macro" when the description says so: Aperio's second line (`label 400x300`),
    /// or a description naming the image (Ventana `Label_Image`, `Label Image`, `Macro`).
    fn label_or_macro(&self) -> Option<&'static str> {
        let line = self.second_line_of_description().unwrap_or("").trim_start();
        let whole = self.description.as_deref().unwrap_or("").trim().to_ascii_lowercase();
        let names = |w: &str| ["label", "label_image", "label image", "slide label"].contains(&w);
        if line.starts_with("label ") || line == "label" || names(&whole) {
            Some("label")
        } else if line.starts_with("macro ")
            || line == "macro"
            || ["macro", "macro_image", "macro image", "overview"].contains(&whole.as_str())
        {
            Some("macro")
        } else {
            None
        }
    }

    /// Aperio puts "label 400x300" / "macro ..." on the description's second line.
    fn second_line_of_description(&self) -> Option<&str> {
        self.description.as_deref()?.split('\n').nth(1).map(|l| l.trim_end_matches('\r'))
    }
}

fn tiff_error(e: TiffError) -> SlideError {
    match e {
        TiffError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            SlideError::Corrupt("the TIFF structure runs past the end of the file (truncated?)".into())
        }
        TiffError::IoError(e) => SlideError::Io(e),
        TiffError::LimitsExceeded => SlideError::TooLarge(
            "a TIFF directory lists more values (tile offsets, ...) than can be read safely".into(),
        ),
        TiffError::UnsupportedError(e) => SlideError::Unsupported(format!("unsupported TIFF: {e}")),
        other => SlideError::Corrupt(format!("invalid TIFF: {other}")),
    }
}

fn value_u64(v: Value) -> Option<u64> {
    match v {
        Value::Byte(x) => Some(x.into()),
        Value::Short(x) => Some(x.into()),
        Value::Unsigned(x) | Value::Ifd(x) => Some(x.into()),
        Value::UnsignedBig(x) | Value::IfdBig(x) => Some(x),
        Value::List(mut l) if l.len() == 1 => l.pop().and_then(value_u64),
        _ => None,
    }
}

fn value_f64(v: Value) -> Option<f64> {
    match v {
        Value::Rational(n, d) if d != 0 => Some(f64::from(n) / f64::from(d)),
        Value::SRational(n, d) if d != 0 => Some(f64::from(n) / f64::from(d)),
        Value::Float(x) => Some(x.into()),
        Value::Double(x) => Some(x),
        Value::List(mut l) if l.len() == 1 => l.pop().and_then(value_f64),
        other => value_u64(other).map(|x| x as f64),
    }
}

/// A short rendering for display and de-identification checks: text as text, numbers joined,
/// long lists cut to their first 16 values.
fn render_value(v: &Value) -> String {
    match v {
        Value::Ascii(s) => s.trim_end_matches('\0').to_string(),
        Value::List(l) if !l.is_empty() && l.iter().all(|x| matches!(x, Value::Byte(_))) => {
            let bytes: Vec<u8> =
                l.iter().filter_map(|x| if let Value::Byte(b) = x { Some(*b) } else { None }).collect();
            let text = bytes.strip_suffix(&[0]).unwrap_or(&bytes);
            if text.iter().all(|&b| b == b'\t' || b == b'\n' || b == b'\r' || (0x20..0x7F).contains(&b)) {
                String::from_utf8_lossy(text).into_owned()
            } else {
                format!("{} bytes", bytes.len())
            }
        }
        Value::List(l) => {
            let mut parts: Vec<String> = l.iter().take(16).map(render_value).collect();
            if l.len() > 16 {
                parts.push(format!("… ({} values)", l.len()));
            }
            parts.join(" ")
        }
        Value::Rational(n, d) => format!("{n}/{d}"),
        Value::SRational(n, d) => format!("{n}/{d}"),
        Value::Byte(x) => x.to_string(),
        Value::Short(x) => x.to_string(),
        Value::SignedByte(x) => x.to_string(),
        Value::SignedShort(x) => x.to_string(),
        Value::Signed(x) => x.to_string(),
        Value::SignedBig(x) => x.to_string(),
        Value::Unsigned(x) | Value::Ifd(x) => x.to_string(),
        Value::UnsignedBig(x) | Value::IfdBig(x) => x.to_string(),
        Value::Float(x) => x.to_string(),
        Value::Double(x) => x.to_string(),
        other => format!("{other:?}"),
    }
}

type TiffDecoder = Decoder<BufReader<source::Cursor>>;

/// Reads one directory's tags into a `TiffDirectory` (role still `Other`), checking that its
/// declared sizes are sane and every chunk lies inside the file.
fn read_directory(
    dec: &mut TiffDecoder,
    ptr: IfdPointer,
    file_len: u64,
    index: usize,
) -> Result<TiffDirectory, SlideError> {
    let dir = dec.read_directory(ptr).map_err(tiff_error)?;
    let mut tags = dec.read_directory_tags(&dir);
    let mut num = |tag: u16| -> Result<Option<u64>, SlideError> {
        Ok(tags.find_tag(Tag::from_u16_exhaustive(tag)).map_err(tiff_error)?.and_then(value_u64))
    };
    let what = format!("TIFF directory {index}");
    let width = num(256)?.ok_or_else(|| SlideError::Corrupt(format!("{what} has no image width")))?;
    let height = num(257)?.ok_or_else(|| SlideError::Corrupt(format!("{what} has no image length")))?;
    let (Ok(width), Ok(height)) = (u32::try_from(width), u32::try_from(height)) else {
        return Err(SlideError::TooLarge(format!("{what} declares {width}×{height} pixels")));
    };
    if width == 0 || height == 0 {
        return Err(SlideError::Corrupt(format!("{what} declares an empty {width}×{height} image")));
    }
    let small = |v: Option<u64>, default: u16| v.map_or(Some(default), |v| u16::try_from(v).ok());
    let samples_per_pixel = small(num(277)?, 1).unwrap_or(0);
    let compression = small(num(259)?, 1).unwrap_or(0);
    let planar_config = small(num(284)?, 1).unwrap_or(0);
    let predictor = small(num(317)?, 1).unwrap_or(0);
    let photometric = small(num(262)?, if samples_per_pixel >= 3 { 2 } else { 1 }).unwrap_or(u16::MAX);
    let new_subfile_type = num(254)?.and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
    let resolution_unit = num(296)?.and_then(|v| u16::try_from(v).ok());
    let tiled = dir.contains(Tag::TileWidth) && dir.contains(Tag::TileOffsets);
    let (chunk_width, chunk_height) = if tiled {
        let tw = num(322)?.unwrap_or(0);
        let th = num(323)?.unwrap_or(0);
        (u32::try_from(tw).unwrap_or(u32::MAX), u32::try_from(th).unwrap_or(u32::MAX))
    } else {
        let rows = num(278)?.unwrap_or(u64::from(height)).min(u64::from(height));
        (width, rows as u32)
    };
    let mut tags = dec.read_directory_tags(&dir);
    let mut get = |tag: u16| tags.find_tag(Tag::from_u16_exhaustive(tag)).map_err(tiff_error);
    let bits_per_sample = match get(258)? {
        Some(Value::List(l)) => l.into_iter().next().and_then(value_u64),
        Some(v) => value_u64(v),
        None => Some(1),
    }
    .and_then(|v| u16::try_from(v).ok())
    .unwrap_or(0);
    let ycbcr_subsampling = match get(530)? {
        Some(Value::List(l)) if l.len() == 2 => {
            let v: Vec<u16> = l.into_iter().filter_map(value_u64).filter_map(|v| u16::try_from(v).ok()).collect();
            (v.len() == 2).then(|| [v[0], v[1]])
        }
        _ => None,
    };
    let jpeg_tables = get(347)?.map(|v| v.into_u8_vec()).transpose().map_err(tiff_error)?;
    let description = get(270)?.map(|v| render_value(&v));
    let x_resolution = get(282)?.and_then(value_f64);
    let y_resolution = get(283)?.and_then(value_f64);
    let (off_tag, count_tag) = if tiled { (324, 325) } else { (273, 279) };
    let chunk_offsets = get(off_tag)?.map(|v| v.into_u64_vec()).transpose().map_err(tiff_error)?.unwrap_or_default();
    let chunk_byte_counts =
        get(count_tag)?.map(|v| v.into_u64_vec()).transpose().map_err(tiff_error)?.unwrap_or_default();
    let ndpi = dir.contains(Tag::from_u16_exhaustive(65420));
    let ndpi_mcu_starts = if ndpi {
        get(vendor::NDPI_MCU_STARTS)?.map(|v| v.into_u64_vec()).transpose().map_err(tiff_error)?.unwrap_or_default()
    } else {
        vec![]
    };
    let mut other = Vec::new();
    let present: Vec<u16> = dir.iter().map(|(t, _)| t.to_u16()).filter(|t| !FIELD_TAGS.contains(t)).collect();
    for t in present {
        // A broken private tag should not make the slide unreadable, but de-identification must
        // still see that the tag is there.
        match get(t) {
            Ok(Some(v)) => other.push((t, render_value(&v))),
            Ok(None) => {}
            Err(_) => other.push((t, "(unreadable)".into())),
        }
    }
    let d = TiffDirectory {
        role: DirectoryRole::Other,
        width,
        height,
        tiled,
        chunk_width,
        chunk_height,
        compression,
        photometric,
        samples_per_pixel,
        bits_per_sample,
        planar_config,
        predictor,
        new_subfile_type,
        ycbcr_subsampling,
        jpeg_tables,
        description,
        x_resolution,
        y_resolution,
        resolution_unit,
        chunk_offsets,
        chunk_byte_counts,
        jpeg_header: None,
        ndpi_mcu_starts,
        tags: other,
    };
    // An NDPI level is one JPEG of the whole level: checked once it is cut into tiles.
    if !ndpi {
        check_layout(&d, &what, file_len)?;
    }
    Ok(d)
}

/// Declared sizes must be consistent and every chunk must lie inside the file, so later reads
/// never allocate more than the file holds.
pub(crate) fn check_layout(d: &TiffDirectory, what: &str, file_len: u64) -> Result<(), SlideError> {
    let kind = if d.tiled { "tile" } else { "strip" };
    if d.chunk_width == 0 || d.chunk_height == 0 {
        return Err(SlideError::Corrupt(format!(
            "{what} declares {kind}s of {}×{} pixels",
            d.chunk_width, d.chunk_height
        )));
    }
    let chunk_pixels = u64::from(d.chunk_width) * u64::from(d.chunk_height);
    if chunk_pixels > MAX_CHUNK_PIXELS {
        return Err(SlideError::TooLarge(format!(
            "{what} declares {kind}s of {}×{} pixels (limit {MAX_CHUNK_PIXELS} pixels)",
            d.chunk_width, d.chunk_height
        )));
    }
    let planes = if d.planar_config == 2 { u64::from(d.samples_per_pixel) } else { 1 };
    let expected = u64::from(d.width.div_ceil(d.chunk_width)) * u64::from(d.height.div_ceil(d.chunk_height)) * planes;
    if expected > MAX_CHUNKS {
        return Err(SlideError::TooLarge(format!("{what} declares {expected} {kind}s (limit {MAX_CHUNKS})")));
    }
    if d.chunk_offsets.len() as u64 != expected || d.chunk_byte_counts.len() as u64 != expected {
        return Err(SlideError::Corrupt(format!(
            "{what} is {}×{} in {}×{} {kind}s, so needs {expected} {kind}s, but lists {} offsets and {} byte counts",
            d.width,
            d.height,
            d.chunk_width,
            d.chunk_height,
            d.chunk_offsets.len(),
            d.chunk_byte_counts.len()
        )));
    }
    // A compressed chunk is never much larger than its pixels uncompressed (JPEG at quality 100
    // and deflate of noise stay well under twice): a larger claim is damage or an attack that
    // would make ingest read the whole file into memory at once.
    let raw_bytes = chunk_pixels * planes.max(u64::from(d.samples_per_pixel)) * u64::from(d.bits_per_sample.max(8)) / 8;
    let max_bytes = raw_bytes * 2 + (1 << 20);
    for (i, (&off, &n)) in d.chunk_offsets.iter().zip(&d.chunk_byte_counts).enumerate() {
        if n > max_bytes {
            return Err(SlideError::Corrupt(format!(
                "{kind} {i} of {what} claims {n} bytes, more than a {}×{} {kind} can hold ({max_bytes} bytes at most)",
                d.chunk_width, d.chunk_height
            )));
        }
        match off.checked_add(n) {
            Some(end) if end <= file_len => {}
            _ => {
                return Err(SlideError::Corrupt(format!(
                    "{kind} {i} of {what} ends past the end of the file ({} bytes at {off}, file is {file_len} bytes): truncated?",
                    n
                )))
            }
        }
    }
    Ok(())
}

/// Why a directory's pixels cannot be decoded here, if they cannot.
fn unsupported_reason(d: &TiffDirectory) -> Option<String> {
    match d.compression {
        1 | 5 | 7 | 8 | 32946 => {}
        6 => return Some("old-style JPEG compression (6) is not supported".into()),
        33003 | 33005 | 34712 => return Some(format!("JPEG 2000 compression ({}) is not supported", d.compression)),
        c => return Some(format!("TIFF compression {c} is not supported")),
    }
    if d.bits_per_sample != 8 {
        return Some(format!("{}-bit samples are not supported (only 8-bit)", d.bits_per_sample));
    }
    if d.planar_config == 2 && d.samples_per_pixel > 1 {
        return Some("separate colour planes (PlanarConfiguration 2) are not supported".into());
    }
    if !(1..=4).contains(&d.samples_per_pixel) {
        return Some(format!("{} samples per pixel are not supported", d.samples_per_pixel));
    }
    if d.predictor != 1 && d.predictor != 2 {
        return Some(format!("TIFF predictor {} is not supported", d.predictor));
    }
    match d.photometric {
        0..=2 => None,
        6 if d.compression == 7 => None,
        6 => Some("YCbCr pixels without JPEG compression are not supported".into()),
        p => Some(format!("TIFF photometric interpretation {p} is not supported")),
    }
}

impl TiffSlide {
    pub fn open(path: &Path) -> Result<TiffSlide, SlideError> {
        TiffSlide::open_source(Arc::new(FileSource::open(path)?))
    }

    pub fn open_source(file: Arc<dyn ByteSource>) -> Result<TiffSlide, SlideError> {
        let file_len = file.len();
        if file_len == 0 {
            return Err(SlideError::Corrupt("the file is empty (0 bytes)".into()));
        }
        let mut head = [0u8; 4];
        let n = source::read_at_most(file.as_ref(), &mut head, 0)?;
        if !is_tiff_magic(&head[..n]) {
            return Err(SlideError::Unsupported(format!("{}, not a TIFF file", what_file(&head[..n]))));
        }
        let bigtiff = head[2] == 43 || head[3] == 43;
        let mut dec = Decoder::new(BufReader::new(source::Cursor::new(file.clone()))).map_err(tiff_error)?;
        let first = dec.ifd_pointer().ok_or_else(|| SlideError::Corrupt("TIFF has no image directory".into()))?;

        // (directory, parent index in `main` for SubIFDs)
        let mut directories = Vec::new();
        let mut main_index: Vec<Option<usize>> = Vec::new();
        let mut seen = HashSet::new();
        let mut vendor = None;
        let mut next = Some(first);
        while let Some(ptr) = next {
            if !seen.insert(ptr.0) || directories.len() >= MAX_DIRECTORIES {
                return Err(SlideError::Corrupt("the TIFF directory chain loops or is implausibly long".into()));
            }
            let index = directories.len();
            let d = read_directory(&mut dec, ptr, file_len, index)?;
            if index == 0 {
                vendor = tiff_vendor(&d);
                if let Some(v) = vendor.filter(|&v| !vendor::native(v, file_len)) {
                    return Err(SlideError::Vendor(v));
                }
            }
            let dir = dec.read_directory(ptr).map_err(tiff_error)?;
            next = dir.next();
            let subs = dec
                .read_directory_tags(&dir)
                .find_tag(Tag::SubIfd)
                .map_err(tiff_error)?
                .map(|v| v.into_ifd_vec())
                .transpose()
                .map_err(tiff_error)?
                .unwrap_or_default();
            main_index.push(Some(main_index.iter().flatten().count()));
            directories.push(d);
            for sub in subs {
                if !seen.insert(sub.0) || directories.len() >= MAX_DIRECTORIES {
                    return Err(SlideError::Corrupt("the TIFF SubIFDs loop or are implausibly many".into()));
                }
                let d = read_directory(&mut dec, sub, file_len, directories.len())?;
                main_index.push(None);
                directories.push(d);
            }
        }
        // An NDPI whose first directory lacks the NDPI tag: OpenSlide's.
        if vendor != Some(openslide::NDPI) && directories.iter().any(|d| d.tags.iter().any(|(t, _)| *t == 65420)) {
            return Err(SlideError::Vendor(openslide::NDPI));
        }
        if let Some(v) = vendor {
            let meta = vendor::classify(v, &mut directories, file.as_ref())?;
            return Ok(TiffSlide {
                file,
                file_len,
                bigtiff,
                format: v.format.to_string(),
                directories,
                vendor: Some((v, meta)),
                intervals: Default::default(),
            });
        }
        let first_desc = directories.first().and_then(|d| d.description.clone()).unwrap_or_default();
        let format = if first_desc.starts_with("Aperio") {
            "aperio-svs"
        } else if first_desc.trim_start().starts_with("<?xml") && first_desc.contains("<OME") {
            "ome-tiff"
        } else {
            "generic-tiff"
        };
        classify(&mut directories, &main_index, format == "aperio-svs");
        Ok(TiffSlide {
            file,
            file_len,
            bigtiff,
            format: format.to_string(),
            directories,
            vendor: None,
            intervals: Default::default(),
        })
    }

    /// The scanner vendor's format this TIFF is in, if any (read by our own code, see `vendor`).
    pub fn vendor(&self) -> Option<VendorFormat> {
        self.vendor.as_ref().map(|(v, _)| *v)
    }

    pub fn bigtiff(&self) -> bool {
        self.bigtiff
    }

    pub fn directories(&self) -> &[TiffDirectory] {
        &self.directories
    }

    /// The compressed bytes of one tile/strip exactly as stored in the file.
    pub fn raw_chunk(&self, dir: usize, index: usize) -> Result<Vec<u8>, SlideError> {
        let d = self
            .directories
            .get(dir)
            .ok_or_else(|| SlideError::OutOfBounds(format!("TIFF directory {dir} does not exist")))?;
        let (Some(&off), Some(&n)) = (d.chunk_offsets.get(index), d.chunk_byte_counts.get(index)) else {
            return Err(SlideError::OutOfBounds(format!("TIFF directory {dir} has no chunk {index}")));
        };
        // Checked against the file length at open; re-checked in case the file shrank since.
        if off.checked_add(n).is_none_or(|end| end > self.file_len) {
            return Err(SlideError::Corrupt(format!(
                "chunk {index} of TIFF directory {dir} lies past the end of the file"
            )));
        }
        let mut buf = vec![0u8; usize::try_from(n).map_err(|_| SlideError::TooLarge("chunk too large".into()))?];
        self.file.read_exact_at(&mut buf, off)?;
        Ok(buf)
    }

    /// Decodes one tile/strip to a chunk-sized RGB image (strips: only the rows that exist).
    fn decode_chunk(&self, dir: usize, index: usize) -> Result<RgbImage, SlideError> {
        let d = &self.directories[dir];
        let (cw, ch) = (d.chunk_width, d.chunk_height);
        let rows = if d.tiled {
            ch
        } else {
            let row0 = (index as u64 * u64::from(ch)).min(u64::from(d.height)) as u32;
            ch.min(d.height - row0)
        };
        let raw = self.raw_chunk(dir, index)?;
        if raw.is_empty() {
            // Sparse files leave never-scanned tiles empty: show background.
            return Ok(RgbImage::new(cw, rows, [255, 255, 255]));
        }
        if d.compression == 7 {
            let img = match &d.jpeg_header {
                Some(header) => {
                    let stream = vendor::ndpi_tile_stream(header, &raw, index, d.chunk_offsets.len())?;
                    jpeg::decode_rgb(&stream, None, Some(d.photometric), MAX_CHUNK_PIXELS)?
                }
                None => jpeg::decode_rgb(&raw, d.jpeg_tables.as_deref(), Some(d.photometric), MAX_CHUNK_PIXELS)?,
            };
            if img.width == cw && img.height == rows {
                return Ok(img);
            }
            // Some writers code the last strip or edge tile at another size: place it at (0, 0).
            let mut out = RgbImage::new(cw, rows, [255, 255, 255]);
            out.paste(&img, 0, 0);
            return Ok(out);
        }
        let spp = usize::from(d.samples_per_pixel);
        let row_len = cw as usize * spp;
        let expected = row_len * rows as usize;
        let mut samples = vec![0u8; expected];
        let got = match d.compression {
            1 => {
                let n = raw.len().min(expected);
                samples[..n].copy_from_slice(&raw[..n]);
                n
            }
            5 => lzw_decode(&raw, &mut samples)?,
            _ => {
                let mut z = flate2::read::ZlibDecoder::new(&raw[..]);
                let mut n = 0;
                loop {
                    match z.read(&mut samples[n..]) {
                        Ok(0) => break,
                        Ok(k) => n += k,
                        Err(e) => return Err(SlideError::Corrupt(format!("deflate data could not be decoded: {e}"))),
                    }
                    if n == expected {
                        break;
                    }
                }
                n
            }
        };
        if got < expected {
            return Err(SlideError::Corrupt(format!(
                "chunk {index} of TIFF directory {dir} decoded to {got} bytes, expected {expected}"
            )));
        }
        if d.predictor == 2 {
            for row in samples.chunks_exact_mut(row_len) {
                for i in spp..row.len() {
                    row[i] = row[i].wrapping_add(row[i - spp]);
                }
            }
        }
        let mut data = Vec::with_capacity(cw as usize * rows as usize * 3);
        for px in samples.chunks_exact(spp) {
            match (spp, d.photometric) {
                (1 | 2, 0) => data.extend_from_slice(&[255 - px[0]; 3]),
                (1 | 2, _) => data.extend_from_slice(&[px[0]; 3]),
                // RGB, or RGBA whose alpha we drop (as a plain RGB conversion does).
                _ => data.extend_from_slice(&px[..3]),
            }
        }
        Ok(RgbImage { width: cw, height: rows, data })
    }

    /// Reads the rectangle (`x`, `y`, `w`, `h`) of directory `dir` in its own pixels.
    fn read_rect(&self, dir: usize, x: i64, y: i64, w: u32, h: u32) -> Result<RgbImage, SlideError> {
        let d = &self.directories[dir];
        let across = d.chunks_across();
        compose_tiles((x, y, w, h), (d.width, d.height), (d.chunk_width, d.chunk_height), |col, row| {
            let index = (row * across + col) as usize;
            if d.jpeg_header.is_none() {
                return self.decode_chunk(dir, index).map(Some);
            }
            let cached = self.intervals.lock().ok().and_then(|c| c.get((dir, index)));
            let img = match cached {
                Some(img) => img,
                None => {
                    let img = Arc::new(self.decode_chunk(dir, index)?);
                    if let Ok(mut c) = self.intervals.lock() {
                        c.put((dir, index), img.clone());
                    }
                    img
                }
            };
            Ok(Some(Arc::unwrap_or_clone(img)))
        })
    }
}

/// The region `(x, y, w, h)` of an image of `size` cut into tiles of `tile` pixels, from the
/// tiles it touches (`tile(col, row)`; None for a tile that is not there): white outside the
/// image and where a tile is missing.
pub(crate) fn compose_tiles(
    (x, y, w, h): (i64, i64, u32, u32),
    size: (u32, u32),
    tile: (u32, u32),
    mut decode: impl FnMut(u32, u32) -> Result<Option<RgbImage>, SlideError>,
) -> Result<RgbImage, SlideError> {
    if u64::from(w) * u64::from(h) > MAX_IMAGE_PIXELS {
        return Err(SlideError::TooLarge(format!(
            "a {w}×{h} region is larger than the {MAX_IMAGE_PIXELS}-pixel limit"
        )));
    }
    let mut out = RgbImage::new(w, h, [255, 255, 255]);
    let x0 = x.max(0);
    let y0 = y.max(0);
    let x1 = (x + i64::from(w)).min(i64::from(size.0));
    let y1 = (y + i64::from(h)).min(i64::from(size.1));
    if x1 <= x0 || y1 <= y0 {
        return Ok(out);
    }
    let (cw, ch) = (i64::from(tile.0), i64::from(tile.1));
    for row in y0 / ch..=(y1 - 1) / ch {
        for col in x0 / cw..=(x1 - 1) / cw {
            if let Some(chunk) = decode(col as u32, row as u32)? {
                out.paste(&chunk, col * cw - x, row * ch - y);
            }
        }
    }
    Ok(out)
}

/// TIFF-flavoured LZW (MSB first, early code-size switch) into a fixed buffer: output is bounded
/// by the chunk size, so a compression bomb cannot grow memory. Returns bytes written.
fn lzw_decode(raw: &[u8], out: &mut [u8]) -> Result<usize, SlideError> {
    let mut dec = weezl::decode::Decoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8);
    let (mut inp, mut written) = (0, 0);
    while written < out.len() {
        let r = dec.decode_bytes(&raw[inp..], &mut out[written..]);
        inp += r.consumed_in;
        written += r.consumed_out;
        match r.status {
            Ok(weezl::LzwStatus::Ok) if r.consumed_in > 0 || r.consumed_out > 0 => {}
            Ok(_) => break,
            Err(e) => return Err(SlideError::Corrupt(format!("LZW data could not be decoded: {e}"))),
        }
    }
    Ok(written)
}

/// Assigns roles: pyramid levels (sorted largest first) and associated images.
///
/// Aperio (as OpenSlide): tiled directories are levels; the untiled second directory is the
/// thumbnail; others are label/macro by the second line of their description. Generic and
/// OME-TIFF: the first directory, main-chain directories marked reduced-resolution
/// (NewSubfileType bit 0) and the first directory's tiled SubIFDs are levels.
fn classify(dirs: &mut [TiffDirectory], main_index: &[Option<usize>], aperio: bool) {
    let mut levels = Vec::new();
    let mut in_first_subifds = false;
    for (i, d) in dirs.iter_mut().enumerate() {
        let main = main_index[i];
        if main.is_some() {
            in_first_subifds = main == Some(0);
        }
        let usable = unsupported_reason(d).is_none();
        // A label or macro is never a level, whatever its layout (Ventana puts the label first;
        // some writers tile it): it would otherwise survive de-identification as a level.
        let named = d.label_or_macro();
        d.role = if let Some(name) = named {
            if usable {
                DirectoryRole::Associated(name.into())
            } else {
                DirectoryRole::Other
            }
        } else if aperio && main.is_some() {
            if main == Some(0) || d.tiled {
                DirectoryRole::Level(0)
            } else if !usable {
                DirectoryRole::Other
            } else if main == Some(1) {
                DirectoryRole::Associated("thumbnail".into())
            } else {
                DirectoryRole::Other
            }
        } else if main == Some(0)
            || (main.is_some() && d.tiled && d.new_subfile_type & 1 == 1)
            || (main.is_none() && in_first_subifds && d.tiled && !aperio)
        {
            DirectoryRole::Level(0)
        } else {
            DirectoryRole::Other
        };
        if matches!(d.role, DirectoryRole::Level(_)) {
            levels.push(i);
        }
    }
    levels.sort_by_key(|&i| std::cmp::Reverse((dirs[i].width, dirs[i].height)));
    // A "level" whose shape is not the base image's is some other picture (a macro of the whole
    // glass, an overview): left out of the pyramid, and so out of the de-identified copy.
    if let Some(&base) = levels.first() {
        let (bw, bh) = (f64::from(dirs[base].width), f64::from(dirs[base].height));
        levels.retain(|&i| {
            let (w, h) = (f64::from(dirs[i].width).max(1.0), f64::from(dirs[i].height).max(1.0));
            let (rx, ry) = (bw / w, bh / h);
            let same_shape = (rx - ry).abs() <= 0.05 * rx.max(ry) + 2.0 / w.min(h) * rx.max(ry);
            if !same_shape {
                dirs[i].role = DirectoryRole::Other;
            }
            same_shape
        });
    }
    for (n, &i) in levels.iter().enumerate() {
        dirs[i].role = DirectoryRole::Level(n);
    }
}

// ---------------------------------------------------------------------------------------------
// TIFF-based slides

struct TiffReader {
    slide: TiffSlide,
    info: SlideInfo,
    /// Directory index of each level.
    level_dirs: Vec<usize>,
}

impl TiffReader {
    fn open(slide: TiffSlide) -> Result<TiffReader, SlideError> {
        let mut level_dirs: Vec<(usize, usize)> = slide
            .directories
            .iter()
            .enumerate()
            .filter_map(|(i, d)| if let DirectoryRole::Level(n) = d.role { Some((n, i)) } else { None })
            .collect();
        level_dirs.sort();
        let level_dirs: Vec<usize> = level_dirs.into_iter().map(|(_, i)| i).collect();
        let base = level_dirs.first().map(|&i| &slide.directories[i]).ok_or_else(|| {
            SlideError::Unsupported("the TIFF has no image directory usable as a pyramid level".into())
        })?;
        for &i in &level_dirs {
            if let Some(reason) = unsupported_reason(&slide.directories[i]) {
                return Err(SlideError::Unsupported(reason));
            }
        }
        let (w0, h0) = (f64::from(base.width), f64::from(base.height));
        let levels = level_dirs
            .iter()
            .map(|&i| {
                let d = &slide.directories[i];
                // OpenSlide's downsample: the mean of the two axes' ratios.
                let downsample = (w0 / f64::from(d.width) + h0 / f64::from(d.height)) / 2.0;
                Level { width: d.width.into(), height: d.height.into(), downsample }
            })
            .collect();
        let mut associated: Vec<String> = Vec::new();
        for d in &slide.directories {
            if let DirectoryRole::Associated(name) = &d.role {
                if !associated.contains(name) {
                    associated.push(name.clone());
                }
            }
        }
        let mut properties = properties(&slide.directories[0], slide.format == "aperio-svs");
        let aperio_num = |k: &str| properties.get(k).and_then(|v| v.trim().parse::<f64>().ok()).filter(|v| *v > 0.0);
        let (mut mpp_x, mut mpp_y) = (aperio_num("aperio.MPP"), aperio_num("aperio.MPP"));
        let mut objective_power = aperio_num("aperio.AppMag");
        if let Some((_, meta)) = &slide.vendor {
            (mpp_x, mpp_y) = (meta.mpp.map(|m| m.0), meta.mpp.map(|m| m.1));
            objective_power = meta.objective_power;
            // Vendor XML is shown by its parts, as OpenSlide does.
            if slide.format != openslide::NDPI.format {
                properties.remove("tiff.ImageDescription");
            }
            properties.extend(meta.properties.clone());
        }
        if mpp_x.is_none() {
            let per_um = match base.resolution_unit {
                Some(2) => Some(25_400.0),
                Some(3) => Some(10_000.0),
                _ => None,
            };
            let mpp = |res: Option<f64>| Some(per_um? / res.filter(|r| r.is_finite() && *r > 0.0)?);
            mpp_x = mpp(base.x_resolution);
            mpp_y = mpp(base.y_resolution);
        }
        let info = SlideInfo {
            format: slide.format.clone(),
            backend: openslide::OWN_BACKEND.into(),
            width: base.width.into(),
            height: base.height.into(),
            levels,
            mpp_x,
            mpp_y,
            objective_power,
            associated,
            properties,
        };
        Ok(TiffReader { slide, info, level_dirs })
    }
}

/// OpenSlide-style properties from the first directory: `tiff.*` from the baseline text tags and
/// resolution, `aperio.*` from the `key = value` pairs after `|` in an Aperio description.
fn properties(d: &TiffDirectory, aperio: bool) -> BTreeMap<String, String> {
    let mut p = BTreeMap::new();
    let names = [
        (269, "DocumentName"),
        (271, "Make"),
        (272, "Model"),
        (285, "PageName"),
        (305, "Software"),
        (306, "DateTime"),
        (315, "Artist"),
        (316, "HostComputer"),
        (33432, "Copyright"),
    ];
    for (tag, text) in &d.tags {
        if let Some((_, name)) = names.iter().find(|(t, _)| t == tag) {
            p.insert(format!("tiff.{name}"), text.clone());
        }
    }
    if let Some(desc) = &d.description {
        p.insert("tiff.ImageDescription".into(), desc.clone());
        if aperio {
            for part in desc.split('|').skip(1) {
                if let Some((k, v)) = part.split_once(" = ") {
                    p.insert(format!("aperio.{}", k.trim()), v.trim().to_string());
                }
            }
        }
    }
    if let Some(x) = d.x_resolution {
        p.insert("tiff.XResolution".into(), x.to_string());
    }
    if let Some(y) = d.y_resolution {
        p.insert("tiff.YResolution".into(), y.to_string());
    }
    if let Some(u) = d.resolution_unit {
        let unit = match u {
            1 => "none".to_string(),
            2 => "inch".to_string(),
            3 => "centimeter".to_string(),
            other => other.to_string(),
        };
        p.insert("tiff.ResolutionUnit".into(), unit);
    }
    p
}

impl SlideReader for TiffReader {
    fn info(&self) -> &SlideInfo {
        &self.info
    }

    /// The NDPI intervals it keeps decoded (bounded by `CHUNK_CACHE_BYTES`).
    fn memory_bytes(&self) -> usize {
        self.slide.intervals.lock().map(|c| c.bytes).unwrap_or(0)
    }

    fn read_region(&self, level: usize, x: i64, y: i64, w: u32, h: u32) -> Result<RgbImage, SlideError> {
        let (&dir, l) = self.level_dirs.iter().zip(&self.info.levels).nth(level).ok_or_else(|| {
            SlideError::OutOfBounds(format!("level {level} does not exist (the slide has {})", self.level_dirs.len()))
        })?;
        let lx = (x as f64 / l.downsample).floor() as i64;
        let ly = (y as f64 / l.downsample).floor() as i64;
        self.slide.read_rect(dir, lx, ly, w, h)
    }

    fn associated_image(&self, name: &str) -> Result<RgbImage, SlideError> {
        let dir = self
            .slide
            .directories
            .iter()
            .position(|d| matches!(&d.role, DirectoryRole::Associated(n) if n == name))
            .ok_or_else(|| SlideError::NotFound(format!("the slide has no associated image \"{name}\"")))?;
        let d = &self.slide.directories[dir];
        self.slide.read_rect(dir, 0, 0, d.width, d.height)
    }

    fn tiff(&self) -> Option<&TiffSlide> {
        Some(&self.slide)
    }
}

// ---------------------------------------------------------------------------------------------
// PNG and JPEG: one level, decoded whole at open (they are small by definition here).

struct ImageReader {
    info: SlideInfo,
    image: RgbImage,
}

impl ImageReader {
    fn new(format: &str, image: RgbImage) -> ImageReader {
        let info = SlideInfo {
            format: format.into(),
            backend: openslide::OWN_BACKEND.into(),
            width: image.width.into(),
            height: image.height.into(),
            levels: vec![Level { width: image.width.into(), height: image.height.into(), downsample: 1.0 }],
            mpp_x: None,
            mpp_y: None,
            objective_power: None,
            associated: Vec::new(),
            properties: BTreeMap::new(),
        };
        ImageReader { info, image }
    }

    fn open_png(file: source::Cursor) -> Result<ImageReader, SlideError> {
        let bad = |e: png::DecodingError| match e {
            png::DecodingError::IoError(e) if e.kind() != std::io::ErrorKind::UnexpectedEof => SlideError::Io(e),
            other => SlideError::Corrupt(format!("PNG could not be decoded: {other}")),
        };
        let mut dec = png::Decoder::new(BufReader::new(file));
        dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = dec.read_info().map_err(bad)?;
        let (w, h) = (reader.info().width, reader.info().height);
        if u64::from(w) * u64::from(h) > MAX_IMAGE_PIXELS {
            return Err(SlideError::TooLarge(format!(
                "PNG of {w}×{h} pixels is larger than the {MAX_IMAGE_PIXELS}-pixel limit"
            )));
        }
        let size = reader.output_buffer_size().ok_or_else(|| SlideError::TooLarge("PNG frame too large".into()))?;
        let mut buf = vec![0u8; size];
        let frame = reader.next_frame(&mut buf).map_err(bad)?;
        let channels = match frame.color_type {
            png::ColorType::Grayscale => 1,
            png::ColorType::GrayscaleAlpha => 2,
            png::ColorType::Rgb => 3,
            png::ColorType::Rgba => 4,
            png::ColorType::Indexed => {
                return Err(SlideError::Unsupported("indexed PNG could not be expanded".into()));
            }
        };
        let mut data = Vec::with_capacity(w as usize * h as usize * 3);
        for row in buf.chunks_exact(frame.line_size).take(h as usize) {
            for px in row[..w as usize * channels].chunks_exact(channels) {
                if channels < 3 {
                    data.extend_from_slice(&[px[0]; 3]);
                } else {
                    data.extend_from_slice(&px[..3]);
                }
            }
        }
        Ok(ImageReader::new("png", RgbImage { width: w, height: h, data }))
    }

    fn open_jpeg(mut file: source::Cursor, len: u64) -> Result<ImageReader, SlideError> {
        // Compressed size is at most a few bytes per pixel; refuse before reading a huge file.
        if len > MAX_IMAGE_PIXELS * 3 {
            return Err(SlideError::TooLarge(format!("JPEG file of {len} bytes is too large for a single image")));
        }
        let mut bytes = Vec::with_capacity(len as usize);
        file.read_to_end(&mut bytes)?;
        Ok(ImageReader::new("jpeg", jpeg::decode_rgb(&bytes, None, None, MAX_IMAGE_PIXELS)?))
    }
}

impl SlideReader for ImageReader {
    fn info(&self) -> &SlideInfo {
        &self.info
    }
    fn memory_bytes(&self) -> usize {
        self.image.data.len()
    }

    fn read_region(&self, level: usize, x: i64, y: i64, w: u32, h: u32) -> Result<RgbImage, SlideError> {
        if level != 0 {
            return Err(SlideError::OutOfBounds(format!("level {level} does not exist (the image has 1)")));
        }
        if u64::from(w) * u64::from(h) > MAX_IMAGE_PIXELS {
            return Err(SlideError::TooLarge(format!(
                "a {w}×{h} region is larger than the {MAX_IMAGE_PIXELS}-pixel limit"
            )));
        }
        let mut out = RgbImage::new(w, h, [255, 255, 255]);
        out.paste(&self.image, -x, -y);
        Ok(out)
    }

    fn associated_image(&self, name: &str) -> Result<RgbImage, SlideError> {
        Err(SlideError::NotFound(format!("the image has no associated image \"{name}\"")))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::Value as Json;

    const GOOD: &[&str] = &[
        "aperio.svs",
        "libvips-ycbcr.tiff",
        "tifffile-jfif.tiff",
        "bigtiff-lzw.tiff",
        "ome-pyramid.ome.tiff",
        "plain.png",
        "plain.jpg",
    ];

    /// A slide fixture. The crate's folder is read when the test runs (cargo sets it), so that a
    /// test binary built from another checkout of the same sources finds this one's fixtures.
    pub(crate) fn fixture(name: &str) -> std::path::PathBuf {
        let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into());
        Path::new(&crate_dir).join("../../tests/fixtures/slides").join(name)
    }

    fn reference() -> Json {
        let text = std::fs::read_to_string(fixture("reference.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// Per-channel tolerance against OpenSlide (libjpeg-turbo) or PIL. JPEG decoders may differ
    /// by a few levels: zune-jpeg and libjpeg-turbo use different IDCTs and chroma upsampling
    /// arithmetic (2 at most on these fixtures). Lossless formats must match exactly. A wrong colour transform is off by tens
    /// to hundreds on these saturated fixtures, far outside this.
    fn tolerance(name: &str) -> i32 {
        if name.ends_with(".png") || name.starts_with("bigtiff") || name.starts_with("ome") {
            0
        } else {
            3
        }
    }

    #[test]
    fn good_fixtures_match_openslide() {
        let reference = reference();
        for name in GOOD {
            let slide = open(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            let worst = matches_reference(name, slide.as_ref(), &reference[name], tolerance(name));
            eprintln!("{name}: worst channel difference from reference {worst}");
        }
    }

    /// Checks `slide` against what the fixture script recorded from OpenSlide (levels, mpp,
    /// objective, associated images, pixel samples within `tolerance` per channel); returns
    /// the largest channel difference seen.
    pub(crate) fn matches_reference(name: &str, slide: &dyn SlideReader, r: &Json, tolerance: i32) -> i32 {
        let info = slide.info();
        let levels = r["levels"].as_array().unwrap();
        assert_eq!(info.levels.len(), levels.len(), "{name}: level count");
        assert_eq!((info.width, info.height), (info.levels[0].width, info.levels[0].height));
        let opt = |v: &Json| v.as_f64();
        for (k, v) in [("mpp_x", info.mpp_x), ("mpp_y", info.mpp_y), ("objective_power", info.objective_power)] {
            match (opt(&r[k]), v) {
                (Some(a), Some(b)) => assert!((a - b).abs() < 1e-6, "{name}: {k} {a} vs {b}"),
                (a, b) => assert_eq!(a, b, "{name}: {k}"),
            }
        }
        let mut assoc = info.associated.clone();
        assoc.sort();
        let want: Vec<String> =
            r["associated"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
        assert_eq!(assoc, want, "{name}: associated images");
        let mut worst = 0;
        for (lv, (ours, theirs)) in info.levels.iter().zip(levels).enumerate() {
            assert_eq!(ours.width, theirs["width"].as_u64().unwrap(), "{name} level {lv} width");
            assert_eq!(ours.height, theirs["height"].as_u64().unwrap(), "{name} level {lv} height");
            assert!((ours.downsample - theirs["downsample"].as_f64().unwrap()).abs() < 1e-9);
            for s in theirs["samples"].as_array().unwrap() {
                let (x, y) = (s[0].as_i64().unwrap(), s[1].as_i64().unwrap());
                let px = slide.read_region(lv, x, y, 1, 1).unwrap().get(0, 0);
                for c in 0..3 {
                    let d = (i32::from(px[c]) - s[2][c].as_i64().unwrap() as i32).abs();
                    worst = worst.max(d);
                    assert!(d <= tolerance, "{name} level {lv} at ({x}, {y}): ours {px:?}, reference {}", s[2]);
                }
            }
        }
        worst
    }

    #[test]
    fn formats_are_recognised() {
        let formats: Vec<String> = GOOD.iter().map(|n| open(&fixture(n)).unwrap().info().format.clone()).collect();
        assert_eq!(formats, ["aperio-svs", "generic-tiff", "generic-tiff", "generic-tiff", "ome-tiff", "png", "jpeg"]);
    }

    #[test]
    fn reduced_level_matches_downsampled_base() {
        for name in
            ["libvips-ycbcr.tiff", "tifffile-jfif.tiff", "bigtiff-lzw.tiff", "aperio.svs", "ome-pyramid.ome.tiff"]
        {
            let slide = open(&fixture(name)).unwrap();
            let ds = slide.info().levels[1].downsample as u32;
            let small = slide.read_region(1, 0, 0, 64, 48).unwrap();
            let big = slide.read_region(0, 0, 0, 64 * ds, 48 * ds).unwrap();
            let mut total = 0u64;
            for y in 0..48 {
                for x in 0..64 {
                    for c in 0..3 {
                        let mut sum = 0u32;
                        for dy in 0..ds {
                            for dx in 0..ds {
                                sum += u32::from(big.get(x * ds + dx, y * ds + dy)[c]);
                            }
                        }
                        let mean = (sum / (ds * ds)) as i64;
                        total += (mean - i64::from(small.get(x, y)[c])).unsigned_abs();
                    }
                }
            }
            let mean_diff = total as f64 / (64.0 * 48.0 * 3.0);
            assert!(mean_diff < 6.0, "{name}: level 1 differs from downsampled level 0 by {mean_diff} on average");
        }
    }

    #[test]
    fn bad_fixtures_give_clear_errors() {
        let cases: &[(&str, &str)] = &[
            ("truncated.svs", "Corrupt"),
            ("empty.tiff", "Corrupt"),
            ("not-a-slide.tiff", "Unsupported"),
            ("absurd-dimensions.tiff", "TooLarge"),
            ("jpeg2000.svs", "Unsupported"),
        ];
        for (name, kind) in cases {
            let err = match open(&fixture(name)) {
                Ok(_) => panic!("{name} opened"),
                Err(e) => e,
            };
            let got = match err {
                SlideError::Unsupported(_) => "Unsupported",
                SlideError::Corrupt(_) => "Corrupt",
                SlideError::TooLarge(_) => "TooLarge",
                SlideError::OutOfBounds(_) => "OutOfBounds",
                SlideError::NotFound(_) => "NotFound",
                SlideError::Io(_) => "Io",
                SlideError::Vendor(_) => "Vendor",
            };
            eprintln!("{name}: {err}");
            assert_eq!(got, *kind, "{name}: {err}");
        }
        let msg = |n: &str| open(&fixture(n)).err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            msg("not-a-slide.tiff"),
            "a PDF document — not a slide this server reads (Aperio SVS, pyramidal TIFF, PNG or JPEG)"
        );
        assert_eq!(msg("jpeg2000.svs"), "JPEG 2000 compression (33003) is not supported");
        assert!(msg("empty.tiff").contains("empty"));
    }

    #[test]
    fn a_chunk_claiming_more_than_its_pixels_can_hold_is_refused() {
        let slide = TiffSlide::open(&fixture("aperio.svs")).unwrap();
        let mut d = slide.directories()[0].clone();
        let file_len = 1 << 40;
        check_layout(&d, "level 0", file_len).unwrap();
        d.chunk_byte_counts[0] = 1 << 32;
        let e = check_layout(&d, "level 0", file_len).unwrap_err().to_string();
        assert!(e.contains("tile 0 of level 0 claims 4294967296 bytes, more than a 240×240 tile can hold"), "{e}");
    }

    #[test]
    fn every_prefix_of_a_slide_fails_cleanly() {
        // Cut points all through the header, directories and tile data: no panic, no huge
        // allocation. Our own readers only (the vendor files' cuts never reach OpenSlide).
        let dir = tempfile::tempdir().unwrap();
        for name in ["libvips-ycbcr.tiff", "vendors/sample.ndpi", "vendors/philips.tiff", "vendors/ventana.bif"] {
            let data = std::fs::read(fixture(name)).unwrap();
            let path = dir.path().join("cut.tiff");
            for cut in (0..400).chain((400..data.len()).step_by(997)) {
                std::fs::write(&path, &data[..cut]).unwrap();
                if let Ok(slide) = open_source(Arc::new(FileSource::open(&path).unwrap())) {
                    let _ = slide.read_region(0, 0, 0, 300, 300);
                }
            }
        }
    }

    #[test]
    fn damaged_bytes_never_panic() {
        // Deterministic byte damage through directories and compressed tiles of each TIFF flavour.
        let dir = tempfile::tempdir().unwrap();
        let vendors = ["vendors/sample.ndpi", "vendors/philips.tiff", "vendors/ventana.bif"];
        for name in
            ["aperio.svs", "libvips-ycbcr.tiff", "bigtiff-lzw.tiff", "ome-pyramid.ome.tiff"].iter().chain(&vendors)
        {
            let data = std::fs::read(fixture(name)).unwrap();
            let path = dir.path().join(name.replace('/', "_"));
            let mut seed = 0x2545_f491_u64;
            for round in 0..24 {
                let mut damaged = data.clone();
                for _ in 0..8 {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    // Early rounds hit the header and first directory, later ones anywhere.
                    let span = if round < 12 { 600.min(damaged.len()) } else { damaged.len() };
                    let i = (seed % span as u64) as usize;
                    damaged[i] = (seed >> 32) as u8;
                }
                std::fs::write(&path, &damaged).unwrap();
                if let Ok(slide) = open_source(Arc::new(FileSource::open(&path).unwrap())) {
                    for level in 0..slide.info().levels.len() {
                        let _ = slide.read_region(level, 0, 0, 256, 256);
                    }
                    for a in slide.info().associated.clone() {
                        let _ = slide.associated_image(&a);
                    }
                }
            }
        }
    }

    #[test]
    fn outside_the_image_is_white() {
        for name in GOOD {
            let slide = open(&fixture(name)).unwrap();
            let (w, h) = (slide.info().width as i64, slide.info().height as i64);
            let img = slide.read_region(0, -100, -100, 50, 50).unwrap();
            assert!(img.data.iter().all(|&v| v == 255), "{name}");
            let img = slide.read_region(0, w - 10, h - 10, 20, 20).unwrap();
            assert_eq!(img.get(15, 15), [255, 255, 255], "{name}");
            assert_eq!(img.get(19, 2), [255, 255, 255], "{name}");
            assert_eq!(img.get(2, 19), [255, 255, 255], "{name}");
            let last = slide.info().levels.len();
            assert!(matches!(slide.read_region(last, 0, 0, 1, 1), Err(SlideError::OutOfBounds(_))));
            assert!(matches!(slide.read_region(0, 0, 0, 100_000, 100_000), Err(SlideError::TooLarge(_))));
        }
    }

    #[test]
    fn aperio_associated_images_and_metadata() {
        let reference = reference();
        let slide = open(&fixture("aperio.svs")).unwrap();
        for (name, size) in reference["aperio.svs"]["associated_sizes"].as_object().unwrap() {
            let img = slide.associated_image(name).unwrap();
            assert_eq!([img.width as u64, img.height as u64], [size[0].as_u64().unwrap(), size[1].as_u64().unwrap()]);
        }
        // Associated images' colours match OpenSlide's (JPEG thumbnail and macro, LZW label).
        for (name, samples) in reference["aperio.svs"]["associated_samples"].as_object().unwrap() {
            let img = slide.associated_image(name).unwrap();
            for s in samples.as_array().unwrap() {
                let px = img.get(s[0].as_u64().unwrap() as u32, s[1].as_u64().unwrap() as u32);
                for c in 0..3 {
                    let d = (i64::from(px[c]) - s[2][c].as_i64().unwrap()).abs();
                    assert!(d <= 3, "{name} at {s}: ours {px:?}");
                }
            }
        }
        // The label carries dark text (the fake name) on a light background.
        let label = slide.associated_image("label").unwrap();
        assert!(label.data.chunks(3).any(|p| p.iter().all(|&v| v < 60)));
        assert!(matches!(slide.associated_image("overview"), Err(SlideError::NotFound(_))));
        let p = &slide.info().properties;
        assert_eq!(p["aperio.MPP"], "0.4990");
        assert_eq!(p["aperio.Filename"], "DOE_JOHN_S12-3456");
        assert_eq!(p["tiff.DateTime"], "2021:11:03 10:11:12");
        assert_eq!(p["tiff.Artist"], "Dr. Jane Roe");
        assert_eq!(p["tiff.HostComputer"], "SCANNER-PC-DOE");
        assert_eq!(p["tiff.DocumentName"], "DOE_JOHN_S12-3456.svs");
        assert!(p["tiff.ImageDescription"].starts_with("Aperio Image Library"));

        let tiff = slide.tiff().unwrap();
        assert!(!tiff.bigtiff());
        let roles: Vec<String> = tiff
            .directories()
            .iter()
            .map(|d| match &d.role {
                DirectoryRole::Level(n) => format!("level {n}"),
                DirectoryRole::Associated(a) => a.clone(),
                DirectoryRole::Other => "other".into(),
            })
            .collect();
        assert_eq!(roles, ["level 0", "thumbnail", "level 1", "label", "macro"]);
        let d0 = &tiff.directories()[0];
        assert!(d0.tiled && d0.compression == 7 && d0.jpeg_tables.is_some());
        assert!(d0.tags.iter().any(|(t, v)| *t == 315 && v == "Dr. Jane Roe"));
        let raw = tiff.raw_chunk(0, 0).unwrap();
        assert_eq!(raw.len() as u64, d0.chunk_byte_counts[0]);
        assert_eq!(&raw[..2], &[0xFF, 0xD8]);
        assert!(tiff.raw_chunk(0, d0.chunk_offsets.len()).is_err());
    }

    #[test]
    fn other_formats_have_no_associated_images() {
        for name in &GOOD[1..] {
            let slide = open(&fixture(name)).unwrap();
            assert!(slide.info().associated.is_empty(), "{name}");
            assert!(matches!(slide.associated_image("label"), Err(SlideError::NotFound(_))));
            assert_eq!(slide.tiff().is_some(), name.contains(".tif"), "{name}");
        }
        assert!(open(&fixture("bigtiff-lzw.tiff")).unwrap().tiff().unwrap().bigtiff());
    }

    #[test]
    fn best_level_follows_openslide() {
        let slide = open(&fixture("libvips-ycbcr.tiff")).unwrap();
        let info = slide.info();
        assert_eq!(info.best_level_for_downsample(0.5), 0);
        assert_eq!(info.best_level_for_downsample(1.9), 0);
        assert_eq!(info.best_level_for_downsample(2.0), 1);
        assert_eq!(info.best_level_for_downsample(3.5), 1);
        assert_eq!(info.best_level_for_downsample(100.0), 2);
    }

    #[test]
    fn png_round_trip() {
        let mut img = RgbImage::new(3, 2, [10, 20, 30]);
        img.data[3..6].copy_from_slice(&[200, 100, 0]);
        let mut buf = Vec::new();
        img.write_png(&mut buf).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.png");
        std::fs::write(&path, &buf).unwrap();
        let back = open(&path).unwrap().read_region(0, 0, 0, 3, 2).unwrap();
        assert_eq!(back, img);
        assert_eq!(back.get(1, 0), [200, 100, 0]);
    }
}
