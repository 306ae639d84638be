//! Deep Zoom for the viewer: the `.dzi` descriptor, tiles read from the native level nearest
//! each zoom (resampled only when needed), thumbnails, and bounded in-memory caches of open
//! slides and encoded tiles.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::reader::{RgbImage, SlideError, SlideReader};
use super::tiffwrite::encode_jpeg_rgb;

/// Tile edge and overlap as OpenSlide's DeepZoomGenerator defaults (254 + 1 + 1 = 256).
pub const TILE_SIZE: u32 = 254;
pub const OVERLAP: u32 = 1;
const JPEG_QUALITY: u8 = 80;
const THUMBNAIL_EDGE: u32 = 256;
const OPEN_SLIDES: usize = 32;
/// Decoded pixels the open PNG/JPEG readers may hold together.
const OPEN_SLIDES_BYTES: usize = 512 * 1024 * 1024;

/// The Deep Zoom pyramid of a `width` × `height` image: level 0 is 1×1, each level doubles.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeepZoom {
    pub width: u64,
    pub height: u64,
}

impl DeepZoom {
    pub fn levels(&self) -> u32 {
        let max = self.width.max(self.height).max(1);
        64 - (max - 1).leading_zeros() + 1
    }
    /// How many level-0 pixels one pixel of Deep Zoom level `level` covers.
    pub fn scale(&self, level: u32) -> u64 {
        1u64 << (self.levels() - 1 - level)
    }
    pub fn level_size(&self, level: u32) -> (u64, u64) {
        let s = self.scale(level);
        (self.width.div_ceil(s), self.height.div_ceil(s))
    }
    pub fn tiles(&self, level: u32) -> (u64, u64) {
        let (w, h) = self.level_size(level);
        (w.div_ceil(TILE_SIZE as u64), h.div_ceil(TILE_SIZE as u64))
    }
    /// The tile's rectangle in level pixels, overlap included: (x, y, w, h); None outside.
    pub fn tile_rect(&self, level: u32, col: u64, row: u64) -> Option<(u64, u64, u32, u32)> {
        if level >= self.levels() {
            return None;
        }
        let (lw, lh) = self.level_size(level);
        let (cols, rows) = self.tiles(level);
        if col >= cols || row >= rows {
            return None;
        }
        let span = |i: u64, len: u64| {
            let start = (i * TILE_SIZE as u64).saturating_sub(if i > 0 { OVERLAP as u64 } else { 0 });
            let end = ((i + 1) * TILE_SIZE as u64 + OVERLAP as u64).min(len);
            (start, (end - start) as u32)
        };
        let (x, w) = span(col, lw);
        let (y, h) = span(row, lh);
        Some((x, y, w, h))
    }
    pub fn descriptor(&self) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Image xmlns=\"http://schemas.microsoft.com/deepzoom/2008\" \
             Format=\"jpeg\" Overlap=\"{OVERLAP}\" TileSize=\"{TILE_SIZE}\"><Size Width=\"{}\" Height=\"{}\"/></Image>\n",
            self.width, self.height
        )
    }
}

/// Reads one Deep Zoom tile from the slide as RGB.
pub fn render_tile(slide: &dyn SlideReader, level: u32, col: u64, row: u64) -> Result<RgbImage, SlideError> {
    let info = slide.info();
    let dz = DeepZoom { width: info.width, height: info.height };
    let (x, y, w, h) = dz
        .tile_rect(level, col, row)
        .ok_or_else(|| SlideError::OutOfBounds(format!("no tile {col}_{row} at level {level}")))?;
    let scale = dz.scale(level) as f64;
    let native = info.best_level_for_downsample(scale);
    let nds = info.levels[native].downsample;
    let (x0, y0) = ((x as f64 * scale) as i64, (y as f64 * scale) as i64);
    if (nds - scale).abs() < 1e-9 {
        return slide.read_region(native, x0, y0, w, h);
    }
    let rw = ((w as f64 * scale / nds).ceil() as u32).max(1);
    let rh = ((h as f64 * scale / nds).ceil() as u32).max(1);
    let region = slide.read_region(native, x0, y0, rw, rh)?;
    Ok(resize(&region, w, h))
}

/// [`resize`] by a whole factor `f`: each output pixel is the rounded mean of an f × f block
/// (the same numbers as the general path, with integer steps only).
fn shrink_by(src: &RgbImage, f: u32) -> RgbImage {
    if f == 2 {
        return halve(src);
    }
    let (w, h) = (src.width / f, src.height / f);
    let (f, sw) = (f as usize, src.width as usize * 3);
    let n = (f * f) as u32;
    let mut out = RgbImage::new(w, h, [255, 255, 255]);
    let mut acc = vec![0u32; w as usize * 3];
    for (oy, row_out) in out.data.chunks_exact_mut(w as usize * 3).enumerate() {
        acc.fill(0);
        for row in src.data[oy * f * sw..(oy + 1) * f * sw].chunks_exact(sw) {
            for (a, block) in acc.chunks_exact_mut(3).zip(row.chunks_exact(3 * f)) {
                for px in block.chunks_exact(3) {
                    a[0] += u32::from(px[0]);
                    a[1] += u32::from(px[1]);
                    a[2] += u32::from(px[2]);
                }
            }
        }
        for (o, a) in row_out.iter_mut().zip(&acc) {
            *o = ((a + n / 2) / n) as u8;
        }
    }
    out
}

/// `shrink_by(src, 2)`, the common case (a model at twice the slide's microns per pixel, each
/// Deep Zoom level from the one below): each output pixel the rounded mean of a 2 × 2 block,
/// two source rows at a time.
fn halve(src: &RgbImage) -> RgbImage {
    let (w, h) = (src.width / 2, src.height / 2);
    let (sw, ow) = (src.width as usize * 3, w as usize * 3);
    let mut data = vec![0u8; ow * h as usize];
    for (oy, out) in data.chunks_exact_mut(ow).enumerate() {
        let (r0, r1) = (&src.data[2 * oy * sw..][..sw], &src.data[(2 * oy + 1) * sw..][..sw]);
        for ((o, a), b) in out.chunks_exact_mut(3).zip(r0.chunks_exact(6)).zip(r1.chunks_exact(6)) {
            for c in 0..3 {
                let sum = u16::from(a[c]) + u16::from(a[c + 3]) + u16::from(b[c]) + u16::from(b[c + 3]);
                o[c] = ((sum + 2) / 4) as u8;
            }
        }
    }
    RgbImage { width: w, height: h, data }
}

/// Area-average resampling (every source pixel counts once), nearest neighbour when enlarging.
pub fn resize(src: &RgbImage, w: u32, h: u32) -> RgbImage {
    if (src.width, src.height) == (w, h) {
        return src.clone();
    }
    if w > 0 && h > 0 && src.width.is_multiple_of(w) && src.height.is_multiple_of(h) && src.width / w == src.height / h
    {
        return shrink_by(src, src.width / w);
    }
    resize_area(src, w, h)
}

fn resize_area(src: &RgbImage, w: u32, h: u32) -> RgbImage {
    let mut out = RgbImage::new(w, h, [255, 255, 255]);
    let (rx, ry) = (src.width as f64 / w as f64, src.height as f64 / h as f64);
    for oy in 0..h {
        let sy0 = (oy as f64 * ry) as u32;
        let sy1 = (((oy + 1) as f64 * ry).ceil() as u32).clamp(sy0 + 1, src.height);
        for ox in 0..w {
            let sx0 = (ox as f64 * rx) as u32;
            let sx1 = (((ox + 1) as f64 * rx).ceil() as u32).clamp(sx0 + 1, src.width);
            let mut acc = [0u32; 3];
            for sy in sy0..sy1 {
                let row = (sy * src.width) as usize * 3;
                for sx in sx0..sx1 {
                    let p = row + sx as usize * 3;
                    acc[0] += src.data[p] as u32;
                    acc[1] += src.data[p + 1] as u32;
                    acc[2] += src.data[p + 2] as u32;
                }
            }
            let n = (sy1 - sy0) * (sx1 - sx0);
            let o = ((oy * w + ox) * 3) as usize;
            for (dst, sum) in out.data[o..o + 3].iter_mut().zip(acc) {
                *dst = ((sum + n / 2) / n) as u8;
            }
        }
    }
    out
}

/// A thumbnail at most 256 px on its longer side, from the smallest level.
pub fn render_thumbnail(slide: &dyn SlideReader) -> Result<RgbImage, SlideError> {
    let info = slide.info();
    let last = info.levels.len().saturating_sub(1);
    let level = &info.levels[last];
    let scale = (THUMBNAIL_EDGE as f64 / level.width.max(level.height).max(1) as f64).min(1.0);
    let (tw, th) =
        (((level.width as f64 * scale).round() as u32).max(1), ((level.height as f64 * scale).round() as u32).max(1));
    let whole = slide.read_region(last, 0, 0, level.width as u32, level.height as u32)?;
    Ok(resize(&whole, tw, th))
}

pub fn encode_jpeg(img: &RgbImage) -> Result<Vec<u8>, SlideError> {
    encode_jpeg_rgb(&img.data, img.width as u16, img.height as u16, JPEG_QUALITY)
        .map_err(|e| SlideError::Corrupt(format!("JPEG encoding failed: {e}")))
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum TileKey {
    Tile { sha: String, level: u32, col: u64, row: u64 },
    Thumbnail { sha: String },
}

struct Cached {
    bytes: Arc<Vec<u8>>,
    used: u64,
}

#[derive(Default)]
struct TileCache {
    entries: HashMap<TileKey, Cached>,
    bytes: usize,
    tick: u64,
    hits: u64,
    misses: u64,
}

/// Open slides and encoded tiles shared by every request; both bounded. Renders of missing
/// tiles run at most one per core at a time, so a burst of viewer requests queues instead of
/// decoding dozens of regions at once.
pub struct TileServer {
    budget: usize,
    tiles: Mutex<TileCache>,
    open: Mutex<OpenSlides>,
    renders: (Mutex<usize>, std::sync::Condvar),
    max_renders: usize,
}

/// Opens a stored slide's reader when the server has none open for it.
pub type Opener<'a> = &'a dyn Fn() -> Result<Box<dyn SlideReader>, SlideError>;

/// Open readers by SHA-256, and the order they were opened in (the oldest is closed first).
type OpenSlides = (HashMap<String, Arc<dyn SlideReader>>, VecDeque<String>);

impl TileServer {
    pub fn new(budget_bytes: usize) -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        TileServer {
            budget: budget_bytes,
            tiles: Mutex::default(),
            open: Mutex::default(),
            renders: (Mutex::new(0), std::sync::Condvar::new()),
            max_renders: cores,
        }
    }

    /// The open reader of a stored slide (`sha` names the file; `open` opens it where it is:
    /// a local file, an object store).
    pub fn reader(&self, sha: &str, open: Opener) -> Result<Arc<dyn SlideReader>, SlideError> {
        if let Some(r) = lock(&self.open).0.get(sha) {
            return Ok(r.clone());
        }
        let r: Arc<dyn SlideReader> = Arc::from(open()?);
        let mut open = lock(&self.open);
        let (map, order) = &mut *open;
        if !map.contains_key(sha) {
            order.push_back(sha.to_string());
            map.insert(sha.to_string(), r.clone());
            // Oldest first out, by count and by the pixels they hold (never the one just opened).
            let held =
                |map: &HashMap<String, Arc<dyn SlideReader>>| map.values().map(|r| r.memory_bytes()).sum::<usize>();
            while order.len() > 1 && (order.len() > OPEN_SLIDES || held(map) > OPEN_SLIDES_BYTES) {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
            }
        }
        Ok(r)
    }

    pub fn tile(&self, sha: &str, open: Opener, level: u32, col: u64, row: u64) -> Result<Arc<Vec<u8>>, SlideError> {
        let key = TileKey::Tile { sha: sha.to_string(), level, col, row };
        self.cached(key, || {
            let slide = self.reader(sha, open)?;
            encode_jpeg(&render_tile(slide.as_ref(), level, col, row)?)
        })
    }

    pub fn thumbnail(&self, sha: &str, open: Opener) -> Result<Arc<Vec<u8>>, SlideError> {
        self.cached(TileKey::Thumbnail { sha: sha.to_string() }, || {
            let slide = self.reader(sha, open)?;
            encode_jpeg(&render_thumbnail(slide.as_ref())?)
        })
    }

    /// (hits, misses, bytes held) for /metrics and the benchmark.
    pub fn stats(&self) -> (u64, u64, usize) {
        let c = lock(&self.tiles);
        (c.hits, c.misses, c.bytes)
    }

    fn cached(
        &self,
        key: TileKey,
        make: impl FnOnce() -> Result<Vec<u8>, SlideError>,
    ) -> Result<Arc<Vec<u8>>, SlideError> {
        {
            let mut c = lock(&self.tiles);
            c.tick += 1;
            let tick = c.tick;
            if let Some(e) = c.entries.get_mut(&key) {
                e.used = tick;
                let bytes = e.bytes.clone();
                c.hits += 1;
                return Ok(bytes);
            }
            c.misses += 1;
        }
        // Rendered outside the cache lock (cached tiles are served meanwhile), one per core.
        let bytes = {
            let (count, freed) = &self.renders;
            let mut n = lock(count);
            while *n >= self.max_renders {
                n = freed.wait(n).unwrap_or_else(|p| p.into_inner());
            }
            *n += 1;
            drop(n);
            let _permit = RenderPermit(&self.renders);
            Arc::new(make()?)
        };
        let mut c = lock(&self.tiles);
        c.bytes += bytes.len();
        let used = c.tick;
        if let Some(old) = c.entries.insert(key, Cached { bytes: bytes.clone(), used }) {
            c.bytes -= old.bytes.len();
        }
        if c.bytes > self.budget {
            evict(&mut c, self.budget / 10 * 9);
        }
        Ok(bytes)
    }
}

/// Gives the render slot back however the render ends (a panic included).
struct RenderPermit<'a>(&'a (Mutex<usize>, std::sync::Condvar));

impl Drop for RenderPermit<'_> {
    fn drop(&mut self) {
        *lock(&self.0 .0) -= 1;
        self.0 .1.notify_one();
    }
}

/// Drops the least recently used tiles until at most `target` bytes are held.
fn evict(c: &mut TileCache, target: usize) {
    let mut by_age: Vec<(u64, TileKey)> = c.entries.iter().map(|(k, v)| (v.used, k.clone())).collect();
    by_age.sort_by_key(|(used, _)| *used);
    for (_, k) in by_age {
        if c.bytes <= target {
            break;
        }
        if let Some(e) = c.entries.remove(&k) {
            c.bytes -= e.bytes.len();
        }
    }
}

/// A poisoned lock only means another request panicked mid-update of a cache; the cache's
/// contents are still valid entries, so carry on with them.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_zoom_geometry_matches_openslide() {
        // OpenSlide's DeepZoomGenerator for a 2000 x 1500 slide: 12 levels, level 11 is full size,
        // 8 x 6 tiles of 254 px; level 0 is 1 x 1.
        let dz = DeepZoom { width: 2000, height: 1500 };
        assert_eq!(dz.levels(), 12);
        assert_eq!(dz.level_size(11), (2000, 1500));
        assert_eq!(dz.level_size(10), (1000, 750));
        assert_eq!(dz.level_size(0), (1, 1));
        assert_eq!(dz.tiles(11), (8, 6));
        assert_eq!(dz.tile_rect(11, 0, 0), Some((0, 0, 255, 255)));
        assert_eq!(dz.tile_rect(11, 1, 0), Some((253, 0, 256, 255)));
        assert_eq!(dz.tile_rect(11, 7, 5), Some((1777, 1269, 223, 231)));
        assert_eq!(dz.tile_rect(11, 8, 0), None);
        assert_eq!(dz.tile_rect(12, 0, 0), None);
        assert_eq!(DeepZoom { width: 1, height: 1 }.levels(), 1);
        assert_eq!(DeepZoom { width: 256, height: 3 }.levels(), 9);
        assert_eq!(DeepZoom { width: 257, height: 3 }.levels(), 10);
    }

    #[test]
    fn descriptor_is_deep_zoom_xml() {
        let d = DeepZoom { width: 40000, height: 30000 }.descriptor();
        assert!(d.contains("TileSize=\"254\"") && d.contains("Overlap=\"1\""));
        assert!(d.contains("<Size Width=\"40000\" Height=\"30000\"/>"));
    }

    #[test]
    fn resize_averages_areas() {
        let mut src = RgbImage::new(4, 2, [0, 0, 0]);
        for x in 0..2 {
            for y in 0..2 {
                let o = ((y * 4 + x) * 3) as usize;
                src.data[o..o + 3].copy_from_slice(&[200, 100, 50]);
            }
        }
        let out = resize(&src, 2, 1);
        assert_eq!(out.get(0, 0), [200, 100, 50]);
        assert_eq!(out.get(1, 0), [0, 0, 0]);
        let up = resize(&out, 4, 2);
        assert_eq!(up.get(1, 1), [200, 100, 50]);
    }

    #[test]
    fn shrinking_by_a_whole_factor_gives_the_area_averages() {
        let mut src = RgbImage::new(512, 256, [0, 0, 0]);
        let mut x = 12345u32;
        for v in src.data.iter_mut() {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            *v = (x >> 16) as u8;
        }
        for f in [2, 4, 8] {
            assert_eq!(shrink_by(&src, f).data, resize_area(&src, 512 / f, 256 / f).data, "factor {f}");
        }
    }

    #[test]
    fn open_readers_are_bounded() {
        let png = crate::reader::tests::fixture("plain.png");
        let server = TileServer::new(1 << 20);
        for i in 0..(OPEN_SLIDES + 8) {
            let r = server.reader(&format!("sha{i}"), &|| crate::reader::open(&png)).unwrap();
            assert_eq!(r.memory_bytes(), 300 * 200 * 3);
        }
        let open = lock(&server.open);
        assert_eq!(open.0.len(), OPEN_SLIDES);
        assert!(!open.0.contains_key("sha0") && open.0.contains_key(&format!("sha{}", OPEN_SLIDES + 7)));
    }

    #[test]
    fn cache_stays_within_budget_and_counts_hits() {
        let server = TileServer::new(1000);
        for i in 0..20u64 {
            let got = server.cached(TileKey::Thumbnail { sha: i.to_string() }, || Ok(vec![0u8; 100])).unwrap();
            assert_eq!(got.len(), 100);
        }
        let (_, misses, bytes) = server.stats();
        assert_eq!(misses, 20);
        assert!(bytes <= 1000, "{bytes}");
        server.cached(TileKey::Thumbnail { sha: "19".into() }, || Ok(vec![1u8; 100])).unwrap();
        assert_eq!(server.stats().0, 1);
    }
}
