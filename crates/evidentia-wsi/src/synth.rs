//! Synthetic H&E whole-slide images: Aperio-SVS-style pyramidal JPEG TIFFs rendered tile by tile
//! from a procedural tissue model, with fake PHI (label, macro, tags) to exercise de-identification
//! and a ground-truth JSON of the tumour-immune phenotype computed from the lymphocytes placed.
//!
//! Model: a low-resolution layout (16 µm cells) holds smooth noise fields for tissue, tumour
//! epithelium nests and stroma fibre texture; per-pixel classes come from bilinear interpolation,
//! so every level renders directly at its scale. Nuclei are regenerated on demand per 128 µm
//! bucket from a hash of the bucket (no global list); lymphocytes are drawn once into a
//! bucketed list because the truth counts them. Tiles: 256×256 YCbCr 4:2:0 JFIF JPEGs, tagged
//! Photometric=YCbCr with YCbCrSubSampling 2,2 (readers that follow the tag get the colours right).
//!
//! Truth (`<name>.truth.json`, see [`SlideTruth`]): 1 mm² grid cells anchored at level-0 (0,0);
//! epithelium/stroma areas sampled every ~2 µm; lymphocytes counted by the compartment at their
//! centre; cell and slide classes by the thresholds in [`Thresholds`]. The tissue mask is stored
//! run-length encoded in the JSON at layout resolution (see [`TissueMask`]).

use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Context;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use serde::{Deserialize, Serialize};

use super::font;
use super::tiffwrite::{self, ImageSpec, Layout, TiffWriter};

/// Tumour-immune phenotype, of a grid cell or a slide (`Mixed` is only ever requested).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phenotype {
    Inflamed,
    Excluded,
    Desert,
    Mixed,
}

impl FromStr for Phenotype {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "inflamed" => Ok(Phenotype::Inflamed),
            "excluded" => Ok(Phenotype::Excluded),
            "desert" => Ok(Phenotype::Desert),
            "mixed" => Ok(Phenotype::Mixed),
            other => anyhow::bail!("unknown phenotype {other:?} (inflamed, excluded, desert or mixed)"),
        }
    }
}

impl fmt::Display for Phenotype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phenotype::Inflamed => "inflamed",
            Phenotype::Excluded => "excluded",
            Phenotype::Desert => "desert",
            Phenotype::Mixed => "mixed",
        })
    }
}

/// The phenotype rule's parameters.
impl From<evidentia_phenotype::CellClass> for Phenotype {
    fn from(c: evidentia_phenotype::CellClass) -> Self {
        use evidentia_phenotype::CellClass;
        match c {
            CellClass::Inflamed => Phenotype::Inflamed,
            CellClass::Excluded => Phenotype::Excluded,
            CellClass::Desert => Phenotype::Desert,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// A cell is inflamed at or above this many intra-epithelial lymphocytes per mm² of epithelium.
    pub itil_per_mm2: f64,
    /// Otherwise excluded at or above this many stromal lymphocytes per mm² of stroma.
    pub stil_per_mm2: f64,
    /// Cells with less epithelium than this are not scored.
    pub min_epithelium_mm2: f64,
    /// The slide takes the first class (inflamed, then excluded) whose share of scored cells
    /// reaches this; else desert.
    pub slide_share: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { itil_per_mm2: 106.0, stil_per_mm2: 357.0, min_epithelium_mm2: 0.05, slide_share: 1.0 / 3.0 }
    }
}

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthParams {
    pub width: u32,
    pub height: u32,
    /// Micrometres per level-0 pixel.
    pub mpp: f64,
    pub phenotype: Phenotype,
    pub seed: u64,
    /// Tile edge in pixels (multiple of 16).
    pub tile_size: u32,
    /// JPEG quality 1–100.
    pub quality: u8,
    pub thresholds: Thresholds,
}

impl SynthParams {
    /// Defaults: 256-pixel tiles, JPEG quality 80, default thresholds.
    pub fn new(width: u32, height: u32, mpp: f64, phenotype: Phenotype, seed: u64) -> Self {
        SynthParams {
            width,
            height,
            mpp,
            phenotype,
            seed,
            tile_size: 256,
            quality: 80,
            thresholds: Thresholds::default(),
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.width >= 16 && self.height >= 16, "slide must be at least 16×16 pixels");
        anyhow::ensure!(self.mpp.is_finite() && (0.05..=10.0).contains(&self.mpp), "mpp must be in 0.05..=10");
        anyhow::ensure!(
            self.tile_size >= 16 && self.tile_size.is_multiple_of(16),
            "tile size must be a multiple of 16"
        );
        anyhow::ensure!((1..=100).contains(&self.quality), "JPEG quality must be 1..=100");
        Ok(())
    }
}

/// A written slide.
#[derive(Clone, Debug)]
pub struct SynthSlide {
    pub path: PathBuf,
    pub truth_path: PathBuf,
    pub truth: SlideTruth,
    pub fake_patient_name: String,
    pub fake_accession: String,
}

/// The tissue compartment a lymphocyte sits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compartment {
    Epithelium,
    Stroma,
}

/// A lymphocyte centre in level-0 pixels.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LymphocyteTruth {
    pub x: f32,
    pub y: f32,
    pub compartment: Compartment,
}

/// One 1 mm² grid cell: column `col` covers level-0 x in [col·cell_px, (col+1)·cell_px).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GridCellTruth {
    pub col: u32,
    pub row: u32,
    pub epithelium_mm2: f64,
    pub stroma_mm2: f64,
    pub itil_count: u32,
    pub stil_count: u32,
    /// Per mm² of epithelium; null without epithelium.
    pub itil_density: Option<f64>,
    /// Per mm² of stroma; null without stroma.
    pub stil_density: Option<f64>,
    /// Null when not scored (epithelium below the minimum).
    pub class: Option<Phenotype>,
}

/// Low-resolution tissue map: `width`×`height` cells of `cell_px` level-0 pixels, row-major,
/// run-length encoded as `[value, run]` pairs; values 0 glass, 1 stroma, 2 epithelium (class at
/// the cell centre).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TissueMask {
    pub width: u32,
    pub height: u32,
    pub cell_px: f64,
    pub legend: Vec<String>,
    pub rle: Vec<[u32; 2]>,
}

impl TissueMask {
    /// The mask expanded to one byte per cell.
    pub fn decode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.width as usize * self.height as usize);
        for [v, n] in &self.rle {
            out.extend(std::iter::repeat_n(*v as u8, *n as usize));
        }
        out
    }
}

/// Counts of scored grid cells per class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassCounts {
    pub scored: u32,
    pub inflamed: u32,
    pub excluded: u32,
    pub desert: u32,
}

/// Ground truth of one synthetic slide (the `.truth.json` file).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlideTruth {
    pub format: String,
    /// The slide's file name (empty when the truth was computed without writing a slide).
    pub slide_file: String,
    pub width: u32,
    pub height: u32,
    pub mpp: f64,
    pub seed: u64,
    pub requested_phenotype: Phenotype,
    /// Computed from the generated lymphocytes and areas; null when no cell was scored.
    pub phenotype: Option<Phenotype>,
    pub thresholds: Thresholds,
    pub grid_mm: f64,
    /// Level-0 pixels per grid cell edge (1000 / mpp).
    pub grid_cell_px: f64,
    pub grid_cols: u32,
    pub grid_rows: u32,
    pub class_counts: ClassCounts,
    pub cells: Vec<GridCellTruth>,
    pub lymphocytes: Vec<LymphocyteTruth>,
    pub mask: TissueMask,
    /// Pyramid level sizes, level 0 first (downsamples 1, 4, 16, ...).
    pub levels: Vec<[u32; 2]>,
    pub fake_patient_name: String,
    pub fake_accession: String,
}

pub const TRUTH_FORMAT: &str = "evidentia-synth-truth/1";

/// Computes a slide's truth (tissue model, lymphocytes, grid, phenotype) without rendering it.
pub fn slide_truth(params: &SynthParams) -> anyhow::Result<SlideTruth> {
    params.validate()?;
    let model = Model::build(params);
    Ok(model.truth(params, &fake_phi(params.seed)))
}

/// `dir/name`, a mixed-phenotype synthetic slide of w × h px at 0.5 µm/px, drawn only when it
/// is missing (through a partial file, so an interrupted run draws it again): the big slides
/// the benchmarks run on, drawn once and kept. Progress goes to standard error.
pub fn kept_slide(dir: &Path, name: &str, w: u32, h: u32, seed: u64) -> anyhow::Result<PathBuf> {
    let slide = dir.join(name);
    if !slide.exists() {
        let t = std::time::Instant::now();
        let partial = dir.join(format!("partial-{name}"));
        write_slide(&partial, &SynthParams::new(w, h, 0.5, Phenotype::Mixed, seed), &mut |d, n| {
            if d % 500 == 0 || d == n {
                eprint!("\rgenerating the {w}x{h} slide: {d}/{n} tiles");
            }
        })?;
        std::fs::rename(&partial, &slide)?;
        eprintln!("\ngenerated in {:.1} s", t.elapsed().as_secs_f64());
    }
    Ok(slide)
}

/// Writes `path` (the slide) and `<path without extension>.truth.json`. `progress(done, total)`
/// is called after each tile.
pub fn write_slide(
    path: &Path,
    params: &SynthParams,
    progress: &mut dyn FnMut(u64, u64),
) -> anyhow::Result<SynthSlide> {
    params.validate()?;
    let phi = fake_phi(params.seed);
    let model = Model::build(params);
    let mut truth = model.truth(params, &phi);
    truth.slide_file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();

    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut tw = TiffWriter::new(BufWriter::with_capacity(1 << 20, file), false)?;
    let (w, h, t) = (params.width, params.height, params.tile_size);
    let levels = level_sizes(w, h);
    let total: u64 = levels.iter().map(|&(lw, lh)| u64::from(lw.div_ceil(t)) * u64::from(lh.div_ceil(t))).sum();
    let mut done = 0u64;
    let meta = aperio_metadata(params, &phi);
    let head = format!("Aperio Image Library v12.0.5 \n{w}x{h} [0,0 {w}x{h}] ({t}x{t})");
    let px_per_cm = 10_000.0 / params.mpp;

    for (k, &(lw, lh)) in levels.iter().enumerate() {
        let ds = 4f64.powi(k as i32);
        let mut spec = ImageSpec::jpeg_tiled(lw, lh, t);
        spec.resolution = Some((px_per_cm / ds, px_per_cm / ds, 3));
        spec.extra_ascii.push((305, "Evidentia synthetic slide generator".into()));
        if k == 0 {
            spec.description = Some(format!("{head} JPEG/RGB Q={}|{meta}", params.quality));
            spec.extra_ascii.extend([
                (269, format!("{}.svs", phi.accession)),
                (306, phi.tiff_datetime.clone()),
                (315, phi.name.clone()),
                (316, format!("SCANNER-{}", phi.scanner)),
            ]);
            spec.extra_ascii.sort_by_key(|(tag, _)| *tag);
        } else {
            spec.description = Some(format!("{head} -> {lw}x{lh} JPEG/RGB Q={}", params.quality));
        }
        let job = TileJob { model: &model, w: lw, h: lh, ds, tile: t, quality: params.quality };
        let chunks = LevelTiles::new(job, &mut done, total, progress);
        tw.write_image(&spec, chunks)?;

        if k == 0 {
            // Aperio puts the thumbnail second; OpenSlide calls IFD 1 "thumbnail" if stripped.
            let scale = (f64::from(w.max(h)) / 768.0).max(1.0);
            let (tw_, th_) =
                (((f64::from(w) / scale).round() as u32).max(1), ((f64::from(h) / scale).round() as u32).max(1));
            let img = model.render(0.0, 0.0, tw_, th_, scale);
            let mut spec = ImageSpec::rgb(tw_, th_, Layout::Strips { rows_per_strip: th_ }, 7, 6, Some([2, 2]));
            spec.description = Some(format!("Aperio Image Library v12.0.5 \n{w}x{h} -> {tw_}x{th_} - |{meta}"));
            let jpeg = tiffwrite::encode_jpeg_rgb(&img, u16_dim(tw_)?, u16_dim(th_)?, 90)?;
            tw.write_image(&spec, [Ok(jpeg)])?;
        }
    }

    // Label: LZW strips of plain RGB, as Aperio writes them.
    let (label_w, label_h) = (400u32, 300u32);
    let label = render_label(&phi, label_w, label_h);
    let mut spec = ImageSpec::rgb_plain(label_w, label_h, Layout::Strips { rows_per_strip: 16 }, 5);
    spec.new_subfile_type = 1;
    spec.description = Some(format!("Aperio Image Library v12.0.5\nlabel {label_w}x{label_h}"));
    let row = (label_w * 3) as usize;
    let strips: Vec<io::Result<Vec<u8>>> = label.chunks(row * 16).map(lzw).collect();
    tw.write_image(&spec, strips)?;

    // Macro: a photo of the whole glass, label included.
    let (macro_w, macro_h) = (1280u32, 431u32);
    let macro_img = render_macro(&model, &label, label_w, label_h, macro_w, macro_h);
    let mut spec = ImageSpec::rgb(macro_w, macro_h, Layout::Strips { rows_per_strip: macro_h }, 7, 6, Some([2, 2]));
    spec.new_subfile_type = 9;
    spec.description = Some(format!("Aperio Image Library v12.0.5\nmacro {macro_w}x{macro_h}"));
    let jpeg = tiffwrite::encode_jpeg_rgb(&macro_img, u16_dim(macro_w)?, u16_dim(macro_h)?, 90)?;
    tw.write_image(&spec, [Ok(jpeg)])?;
    tw.finish()?;

    let truth_path = truth_path_for(path);
    let json = serde_json::to_vec(&truth)?;
    std::fs::write(&truth_path, json).with_context(|| format!("writing {}", truth_path.display()))?;
    Ok(SynthSlide {
        path: path.to_path_buf(),
        truth_path,
        truth,
        fake_patient_name: phi.name,
        fake_accession: phi.accession,
    })
}

/// Writes `n` slides into `out_dir` (created if missing): slide `i` uses seed `base.seed + i` and
/// is named `synth-{seed}-{i:03}.svs`. `progress(slide_index, done_tiles, total_tiles)`.
pub fn write_slides(
    out_dir: &Path,
    n: usize,
    base: &SynthParams,
    progress: &mut dyn FnMut(usize, u64, u64),
) -> anyhow::Result<Vec<SynthSlide>> {
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let params = SynthParams { seed: base.seed.wrapping_add(i as u64), ..base.clone() };
        let path = out_dir.join(format!("synth-{}-{i:03}.svs", params.seed));
        out.push(write_slide(&path, &params, &mut |d, t| progress(i, d, t))?);
    }
    Ok(out)
}

/// The tissue class of every `step`-th level-0 pixel (sampled at the centre of each `step`×`step`
/// block): 0 glass, 1 stroma, 2 epithelium, as in [`TissueMask`]. Training labels for models.
pub fn class_map(params: &SynthParams, step: u32) -> anyhow::Result<(u32, u32, Vec<u8>)> {
    params.validate()?;
    anyhow::ensure!(step >= 1, "the class map step must be at least one pixel");
    let model = Model::build(params);
    let (w, h) = (params.width.div_ceil(step), params.height.div_ceil(step));
    let half = f64::from(step) / 2.0;
    let mut out = Vec::with_capacity(w as usize * h as usize);
    for y in 0..h {
        for x in 0..w {
            let (px, py) = (f64::from(x * step) + half, f64::from(y * step) + half);
            out.push(match model.class_at(px, py) {
                Class::Glass => 0,
                Class::Stroma => 1,
                Class::Epithelium => 2,
            });
        }
    }
    Ok((w, h, out))
}

/// Writes [`class_map`] as a binary PGM (`P5`) next to the slide: `slide.svs` → `slide.classes.pgm`.
pub fn write_class_map(slide: &Path, params: &SynthParams, step: u32) -> anyhow::Result<PathBuf> {
    let (w, h, data) = class_map(params, step)?;
    let path = slide.with_extension("classes.pgm");
    let mut bytes = format!("P5\n{w} {h}\n255\n").into_bytes();
    bytes.extend_from_slice(&data);
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// `slide.svs` → `slide.truth.json`.
pub fn truth_path_for(slide: &Path) -> PathBuf {
    slide.with_extension("truth.json")
}

/// Level sizes for downsamples 1, 4, 16, ... while the previous level is larger than 1024 px.
pub fn level_sizes(w: u32, h: u32) -> Vec<(u32, u32)> {
    let mut levels = vec![(w, h)];
    let mut ds = 1u64;
    while let Some(&(lw, lh)) = levels.last() {
        if lw.max(lh) <= 1024 || levels.len() >= 12 {
            break;
        }
        ds *= 4;
        levels.push(((u64::from(w).div_ceil(ds)) as u32, (u64::from(h).div_ceil(ds)) as u32));
    }
    levels
}

fn u16_dim(v: u32) -> io::Result<u16> {
    u16::try_from(v).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "image too large for one JPEG"))
}

fn lzw(data: &[u8]) -> io::Result<Vec<u8>> {
    use tiff::encoder::compression::{CompressionAlgorithm, Lzw};
    let mut out = Vec::with_capacity(data.len() / 2);
    Lzw.write_to(&mut out, data)?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Fake PHI

/// Fake identifiers, deterministic from the seed.
struct FakePhi {
    name: String,
    accession: String,
    /// `YYYY:MM:DD HH:MM:SS` (TIFF DateTime).
    tiff_datetime: String,
    date_us: String,
    time: String,
    user: String,
    scanner: String,
}

fn fake_phi(seed: u64) -> FakePhi {
    const FIRST: &[&str] = &[
        "JANE", "JOHN", "MARIA", "WEI", "AMINA", "OLIVER", "SOFIA", "HIROSHI", "FATIMA", "LUCAS", "INGRID", "RAVI",
        "CHLOE", "MATEO", "YUKI", "NORA",
    ];
    const LAST: &[&str] = &[
        "DOE",
        "ROE",
        "QUILLFEATHER",
        "FENWICK",
        "HARTLEY",
        "OKAFOR",
        "LINDQVIST",
        "MORENO",
        "TANAKA",
        "BRENNAN",
        "KOWALSKI",
        "ABERNATHY",
        "VANCE",
        "PEMBERTON",
        "EKSTROM",
        "MARLOWE",
    ];
    let mut rng = ChaCha12Rng::seed_from_u64(mix(seed ^ 0x5048_4921_fa4e_0001));
    let first = FIRST[rng.gen_range(0..FIRST.len())];
    let last = LAST[rng.gen_range(0..LAST.len())];
    let year = rng.gen_range(2019..=2024);
    let (month, day) = (rng.gen_range(1..=12u32), rng.gen_range(1..=28u32));
    let (hh, mm, ss) = (rng.gen_range(7..19u32), rng.gen_range(0..60u32), rng.gen_range(0..60u32));
    FakePhi {
        name: format!("{last}, {first}"),
        accession: format!("S{:02}-{:05}", year % 100, rng.gen_range(0..100_000u32)),
        tiff_datetime: format!("{year}:{month:02}:{day:02} {hh:02}:{mm:02}:{ss:02}"),
        date_us: format!("{month:02}/{day:02}/{:02}", year % 100),
        time: format!("{hh:02}:{mm:02}:{ss:02}"),
        user: format!("{}{}", &first[..1].to_ascii_lowercase(), last.to_ascii_lowercase()),
        scanner: format!("SS{:04}", rng.gen_range(1000..10_000u32)),
    }
}

/// The `|key = value` part of an Aperio ImageDescription, fake PHI included.
fn aperio_metadata(p: &SynthParams, phi: &FakePhi) -> String {
    let mag = (10.0 / p.mpp).round().max(1.0);
    format!(
        "AppMag = {mag}|MPP = {}|Filename = {}|Date = {}|Time = {}|User = {}|ScanScope ID = {}|Barcode = {}",
        p.mpp, phi.accession, phi.date_us, phi.time, phi.user, phi.scanner, phi.accession
    )
}

fn render_label(phi: &FakePhi, w: u32, h: u32) -> Vec<u8> {
    let mut img = vec![250u8; (w * h * 3) as usize];
    let ink = [20, 20, 30];
    font::draw_text(&mut img, w, 16, 16, 3, "SYNTHETIC", ink);
    font::draw_text(&mut img, w, 16, 56, 3, &phi.name, ink);
    font::draw_text(&mut img, w, 16, 96, 3, &phi.accession, ink);
    font::draw_text(&mut img, w, 16, 136, 2, &format!("H&E  {}", phi.date_us), ink);
    // A barcode-like strip: bars from the accession's bytes (decorative, not a real symbology).
    let mut x = 16u32;
    for b in phi.accession.bytes().chain(phi.name.bytes()) {
        for bit in 0..8 {
            let wide = 2 + ((b >> bit) & 1) as u32 * 2;
            if x + wide >= w - 16 {
                break;
            }
            for yy in 190..280u32 {
                for xx in x..x + wide {
                    let o = ((yy * w + xx) * 3) as usize;
                    if bit % 2 == 0 {
                        img[o..o + 3].copy_from_slice(&ink);
                    }
                }
            }
            x += wide;
        }
    }
    img
}

fn render_macro(model: &Model, label: &[u8], lw: u32, lh: u32, w: u32, h: u32) -> Vec<u8> {
    // Glass slide 75 × 25 mm: label area at the left, the tissue centred in the rest.
    let mut img = vec![0u8; (w * h * 3) as usize];
    for p in img.chunks_exact_mut(3) {
        p.copy_from_slice(&[214, 218, 222]);
    }
    let label_w = w / 4;
    for y in 0..h {
        for x in 0..label_w {
            let (sx, sy) = (x * lw / label_w, y * lh / h);
            let s = ((sy * lw + sx) * 3) as usize;
            let o = ((y * w + x) * 3) as usize;
            img[o..o + 3].copy_from_slice(&label[s..s + 3]);
        }
    }
    let (area_w, area_h) = (w - label_w - 20, h - 20);
    let scale = (f64::from(model.w) / f64::from(area_w)).max(f64::from(model.h) / f64::from(area_h));
    let (tw, th) = (((f64::from(model.w) / scale) as u32).max(1), ((f64::from(model.h) / scale) as u32).max(1));
    let tissue = model.render(0.0, 0.0, tw, th, scale);
    let (ox, oy) = (label_w + 10 + (area_w - tw.min(area_w)) / 2, 10 + (area_h - th.min(area_h)) / 2);
    for y in 0..th.min(area_h) {
        for x in 0..tw.min(area_w) {
            let s = ((y * tw + x) * 3) as usize;
            let o = (((oy + y) * w + ox + x) * 3) as usize;
            // Glass in the scan is a little darker than the macro camera's backlight.
            let px = &tissue[s..s + 3];
            let c = if px.iter().all(|&v| v > 232) { [214, 218, 222] } else { [px[0], px[1], px[2]] };
            img[o..o + 3].copy_from_slice(&c);
        }
    }
    img
}

// ---------------------------------------------------------------------------------------------
// Hashing and noise: everything procedural derives from (seed, position), so any region of any
// level renders the same way regardless of order or thread.

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn hash3(seed: u64, a: i64, b: i64, c: u64) -> u64 {
    mix(seed ^ mix((a as u64) ^ mix((b as u64) ^ mix(c))))
}

/// One mixing round for per-pixel noise (hash3 costs four).
#[inline]
fn pixel_hash(seed: u64, x: i64, y: i64) -> u64 {
    mix(seed ^ (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F))
}

/// Uniform in [0, 1).
fn unit(h: u64) -> f32 {
    (h >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
}

/// A tiny sequential generator for per-bucket procedural content.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }
    fn f(&mut self) -> f32 {
        unit(self.next())
    }
    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.f()
    }
}

/// Value noise on a unit lattice, in [-1, 1].
fn value_noise(seed: u64, x: f64, y: f64) -> f32 {
    let (ix, iy) = (x.floor(), y.floor());
    let (fx, fy) = ((x - ix) as f32, (y - iy) as f32);
    let (sx, sy) = (fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy));
    let (ix, iy) = (ix as i64, iy as i64);
    let v = |dx: i64, dy: i64| unit(hash3(seed, ix + dx, iy + dy, 0)) * 2.0 - 1.0;
    let top = v(0, 0) + (v(1, 0) - v(0, 0)) * sx;
    let bottom = v(0, 1) + (v(1, 1) - v(0, 1)) * sx;
    top + (bottom - top) * sy
}

/// Fractal value noise with features of about `scale` µm at (x, y) µm, roughly in [-1, 1].
fn fbm(seed: u64, x: f64, y: f64, scale: f64, octaves: u32) -> f32 {
    let (mut sum, mut norm, mut amp, mut freq) = (0.0f32, 0.0f32, 1.0f32, 1.0 / scale);
    for o in 0..octaves {
        sum += amp * value_noise(seed.wrapping_add(u64::from(o) * 7919), x * freq, y * freq);
        norm += amp;
        amp *= 0.5;
        freq *= 2.0;
    }
    sum / norm
}

// ---------------------------------------------------------------------------------------------
// The tissue model

/// Layout cell edge in µm.
const LAYOUT_UM: f64 = 16.0;
/// Nucleus and lymphocyte bucket edge in µm.
const BUCKET_UM: f64 = 128.0;
/// Spacing of the jittered grid of tumour cell nuclei, µm.
const EPI_SPACING_UM: f64 = 15.0;
/// Width of the pale retraction gap around nests, in epithelium-field units.
const HALO: f32 = 0.008;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Glass,
    Stroma,
    Epithelium,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Regime {
    Inflamed,
    Excluded,
    Desert,
}

impl Regime {
    /// Lymphocytes per mm² of (epithelium, stroma): far from the default thresholds (106, 357)
    /// so per-cell Poisson noise rarely flips a cell.
    fn densities(self) -> (f64, f64) {
        match self {
            Regime::Inflamed => (450.0, 700.0),
            Regime::Excluded => (20.0, 1400.0),
            Regime::Desert => (10.0, 60.0),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Lymph {
    x: f32,
    y: f32,
    r: f32,
    class: Class,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Tumour,
    Spindle,
    Lymphocyte,
}

/// A nucleus in level-0 pixels: centre, semi-axes, orientation.
#[derive(Clone, Copy, Debug)]
struct Nucleus {
    x: f32,
    y: f32,
    a: f32,
    b: f32,
    cos: f32,
    sin: f32,
    kind: Kind,
    tone: f32,
    id: u32,
}

struct Model {
    seed: u64,
    w: u32,
    h: u32,
    mpp: f64,
    /// Level-0 pixels per layout cell.
    cell: f64,
    gw: usize,
    gh: usize,
    /// Per layout cell: tissue (> 0 tissue), epithelium (> 0 nest), fibre texture phase.
    fields: Vec<[f32; 3]>,
    /// Level-0 pixels per bucket.
    bucket: f64,
    bw: usize,
    bh: usize,
    lymph: Vec<Lymph>,
    /// `lymph[start[b]..start[b + 1]]` lie in bucket b.
    lymph_start: Vec<u32>,
}

impl Model {
    fn build(p: &SynthParams) -> Model {
        let cell = LAYOUT_UM / p.mpp;
        let gw = (f64::from(p.width) / cell).ceil() as usize + 1;
        let gh = (f64::from(p.height) / cell).ceil() as usize + 1;
        let (wu, hu) = (f64::from(p.width) * p.mpp, f64::from(p.height) * p.mpp);
        let tissue_scale = (wu.min(hu) / 3.0).clamp(400.0, 2500.0);
        let s = p.seed;
        let mut fields = Vec::with_capacity(gw * gh);
        for gy in 0..gh {
            for gx in 0..gw {
                // Layout values sit at cell centres; in µm:
                let (x, y) = ((gx as f64 + 0.5) * LAYOUT_UM, (gy as f64 + 0.5) * LAYOUT_UM);
                let (dx, dy) = ((x - wu / 2.0) / (0.46 * wu), (y - hu / 2.0) / (0.44 * hu));
                let tissue = 1.0 - (dx * dx + dy * dy) as f32 + 0.55 * fbm(s ^ 0x11, x, y, tissue_scale, 3);
                let epi = fbm(s ^ 0x22, x, y, 320.0, 4) - 0.02;
                let fib = fbm(s ^ 0x33, x, y, 90.0, 2);
                fields.push([tissue, epi, fib]);
            }
        }
        let bucket = BUCKET_UM / p.mpp;
        let bw = (f64::from(p.width) / bucket).ceil() as usize;
        let bh = (f64::from(p.height) / bucket).ceil() as usize;
        let mut m = Model {
            seed: s,
            w: p.width,
            h: p.height,
            mpp: p.mpp,
            cell,
            gw,
            gh,
            fields,
            bucket,
            bw,
            bh,
            lymph: Vec::new(),
            lymph_start: Vec::new(),
        };
        m.place_lymphocytes(p.phenotype);
        m
    }

    /// Interpolated fields at level-0 pixel coordinates.
    #[inline]
    fn fields_at(&self, x: f64, y: f64) -> [f32; 3] {
        let (iy, fy) = self.row_of(y);
        self.fields_in_row(x, iy, fy)
    }

    /// The layout row and weight for level-0 y (hoisted out of per-pixel loops).
    #[inline]
    fn row_of(&self, y: f64) -> (usize, f32) {
        let gy = (y / self.cell - 0.5).clamp(0.0, (self.gh - 1) as f64);
        let iy = (gy as usize).min(self.gh - 2);
        (iy, (gy - iy as f64) as f32)
    }

    #[inline]
    fn fields_in_row(&self, x: f64, iy: usize, fy: f32) -> [f32; 3] {
        let gx = (x / self.cell - 0.5).clamp(0.0, (self.gw - 1) as f64);
        let ix = (gx as usize).min(self.gw - 2);
        let fx = (gx - ix as f64) as f32;
        let i = iy * self.gw + ix;
        let (a, b, c, d) = (self.fields[i], self.fields[i + 1], self.fields[i + self.gw], self.fields[i + self.gw + 1]);
        let mut out = [0.0; 3];
        for k in 0..3 {
            let top = a[k] + (b[k] - a[k]) * fx;
            let bottom = c[k] + (d[k] - c[k]) * fx;
            out[k] = top + (bottom - top) * fy;
        }
        out
    }

    #[inline]
    fn class_of(f: [f32; 3]) -> Class {
        if f[0] <= 0.0 {
            Class::Glass
        } else if f[1] > 0.0 {
            Class::Epithelium
        } else {
            Class::Stroma
        }
    }

    fn class_at(&self, x: f64, y: f64) -> Class {
        Self::class_of(self.fields_at(x, y))
    }

    fn regime_at(&self, phenotype: Phenotype, x: f64, y: f64) -> Regime {
        match phenotype {
            Phenotype::Inflamed => Regime::Inflamed,
            Phenotype::Excluded => Regime::Excluded,
            Phenotype::Desert => Regime::Desert,
            Phenotype::Mixed => {
                let r = fbm(self.seed ^ 0x44, x * self.mpp, y * self.mpp, 2500.0, 2);
                if r > 0.12 {
                    Regime::Inflamed
                } else if r < -0.12 {
                    Regime::Desert
                } else {
                    Regime::Excluded
                }
            }
        }
    }

    /// Lymphocytes as an inhomogeneous Poisson process (thinning), bucket by bucket in row-major
    /// order so the list comes out sorted by bucket; patchiness from a ~100 µm noise factor.
    fn place_lymphocytes(&mut self, phenotype: Phenotype) {
        let mut rng = ChaCha12Rng::seed_from_u64(self.seed ^ 0x4c59_4d50_4800_0000);
        let max_density = 1400.0 * 1.6;
        let bucket_mm2 = (BUCKET_UM / 1000.0).powi(2);
        let r_px = 3.5 / self.mpp;
        let mut start = Vec::with_capacity(self.bw * self.bh + 1);
        let mut lymph = Vec::new();
        for by in 0..self.bh {
            for bx in 0..self.bw {
                start.push(lymph.len() as u32);
                let n = poisson(&mut rng, max_density * bucket_mm2);
                for _ in 0..n {
                    let x = (bx as f64 + rng.gen::<f64>()) * self.bucket;
                    let y = (by as f64 + rng.gen::<f64>()) * self.bucket;
                    let u: f64 = rng.gen();
                    let jitter: f32 = rng.gen_range(0.85..1.12);
                    if x >= f64::from(self.w) || y >= f64::from(self.h) {
                        continue;
                    }
                    let class = self.class_at(x, y);
                    let (de, ds) = self.regime_at(phenotype, x, y).densities();
                    let base = match class {
                        Class::Glass => continue,
                        Class::Epithelium => de,
                        Class::Stroma => ds,
                    };
                    let patch = 1.0 + 0.6 * f64::from(fbm(self.seed ^ 0x55, x * self.mpp, y * self.mpp, 100.0, 2));
                    if u * max_density < base * patch {
                        lymph.push(Lymph { x: x as f32, y: y as f32, r: r_px as f32 * jitter, class });
                    }
                }
            }
        }
        start.push(lymph.len() as u32);
        self.lymph = lymph;
        self.lymph_start = start;
    }

    /// Tumour and stromal nuclei of bucket (bx, by), regenerated from the bucket's hash.
    fn bucket_nuclei(&self, bx: usize, by: usize, out: &mut Vec<Nucleus>) {
        let mut rng = SplitMix(hash3(self.seed, bx as i64, by as i64, 0x4e55));
        let spacing = EPI_SPACING_UM / self.mpp;
        let n = (self.bucket / spacing).round().max(1.0) as usize;
        let step = self.bucket / n as f64;
        let um = (1.0 / self.mpp) as f32;
        for j in 0..n {
            for i in 0..n {
                let x = (bx as f64 * self.bucket) + (i as f64 + 0.5) * step + f64::from(rng.range(-0.42, 0.42)) * step;
                let y = (by as f64 * self.bucket) + (j as f64 + 0.5) * step + f64::from(rng.range(-0.42, 0.42)) * step;
                let (r1, r2, r3, r4) = (rng.f(), rng.f(), rng.f(), rng.next());
                let f = self.fields_at(x, y);
                let id = (r4 >> 32) as u32;
                match Self::class_of(f) {
                    Class::Glass => {}
                    Class::Epithelium => {
                        let a = (4.0 + 2.4 * r1 * r1 + 1.2 * r1) * um;
                        let angle = r3 * std::f32::consts::TAU;
                        out.push(Nucleus {
                            x: x as f32,
                            y: y as f32,
                            a,
                            b: a * (0.68 + 0.28 * r2),
                            cos: angle.cos(),
                            sin: angle.sin(),
                            kind: Kind::Tumour,
                            tone: r2,
                            id,
                        });
                    }
                    Class::Stroma => {
                        if r1 > 0.3 {
                            continue;
                        }
                        // Spindles lie along the fibres: perpendicular to the texture gradient.
                        let d = self.cell * 0.5;
                        let gx = self.fields_at(x + d, y)[2] - self.fields_at(x - d, y)[2];
                        let gy = self.fields_at(x, y + d)[2] - self.fields_at(x, y - d)[2];
                        let mut angle = gy.atan2(gx) + std::f32::consts::FRAC_PI_2 + (r3 - 0.5) * 0.5;
                        if gx == 0.0 && gy == 0.0 {
                            angle = r3 * std::f32::consts::TAU;
                        }
                        out.push(Nucleus {
                            x: x as f32,
                            y: y as f32,
                            a: (5.0 + 3.0 * r2) * um,
                            b: (1.2 + 0.6 * r3) * um,
                            cos: angle.cos(),
                            sin: angle.sin(),
                            kind: Kind::Spindle,
                            tone: r2,
                            id,
                        });
                    }
                }
            }
        }
    }

    /// Renders a `w`×`h` RGB8 region of the image downsampled by `ds`, whose top-left pixel is at
    /// (x0, y0) in downsampled pixels. Pixel (i, j) shows level-0 point ((x0+i+0.5)·ds, …).
    fn render(&self, x0: f64, y0: f64, w: u32, h: u32, ds: f64) -> Vec<u8> {
        let (wu, hu) = (w as usize, h as usize);
        let mut img = vec![0f32; wu * hu * 3];
        let fibre_amp = (1.0 / ds as f32).min(1.0);
        let noise_amp = 6.0 / (ds as f32).sqrt();
        for j in 0..hu {
            let y = (y0 + j as f64 + 0.5) * ds;
            let (iy, fy) = self.row_of(y);
            let pseed = self.seed ^ (ds as u64).wrapping_mul(0xA076_1D64_78BD_642F);
            let row = &mut img[j * wu * 3..(j + 1) * wu * 3];
            for i in 0..wu {
                let x = (x0 + i as f64 + 0.5) * ds;
                let f = self.fields_in_row(x, iy, fy);
                let n = (unit(pixel_hash(pseed, (x0 as i64) + i as i64, (y0 as i64) + j as i64)) - 0.5) * noise_amp;
                let c = base_colour(f, fibre_amp, n);
                row[i * 3..i * 3 + 3].copy_from_slice(&c);
            }
        }
        // Nuclei that may touch the region (largest semi-axis ≈ 9 µm).
        let margin = 10.0 / self.mpp;
        let (lx0, ly0) = (x0 * ds - margin, y0 * ds - margin);
        let (lx1, ly1) = ((x0 + w as f64) * ds + margin, (y0 + h as f64) * ds + margin);
        let bx0 = (lx0 / self.bucket).floor().max(0.0) as usize;
        let by0 = (ly0 / self.bucket).floor().max(0.0) as usize;
        let bx1 = ((lx1 / self.bucket).floor().max(0.0) as usize).min(self.bw.saturating_sub(1));
        let by1 = ((ly1 / self.bucket).floor().max(0.0) as usize).min(self.bh.saturating_sub(1));
        let mut nuclei = Vec::new();
        let mut canvas = Canvas { img: &mut img, w: wu, h: hu, x0, y0, ds };
        for by in by0..=by1 {
            for bx in bx0..=bx1 {
                nuclei.clear();
                self.bucket_nuclei(bx, by, &mut nuclei);
                for n in &nuclei {
                    canvas.stamp(n);
                }
            }
        }
        for by in by0..=by1 {
            for bx in bx0..=bx1 {
                let b = by * self.bw + bx;
                let (s, e) = (self.lymph_start[b] as usize, self.lymph_start[b + 1] as usize);
                for (k, l) in self.lymph[s..e].iter().enumerate() {
                    canvas.stamp(&Nucleus {
                        x: l.x,
                        y: l.y,
                        a: l.r,
                        b: l.r * 0.92,
                        cos: 1.0,
                        sin: 0.0,
                        kind: Kind::Lymphocyte,
                        tone: 0.5,
                        id: (s + k) as u32,
                    });
                }
            }
        }
        img.iter().map(|v| v.round().clamp(0.0, 255.0) as u8).collect()
    }

    fn truth(&self, p: &SynthParams, phi: &FakePhi) -> SlideTruth {
        let cell_px = 1000.0 / p.mpp;
        let cols = (f64::from(p.width) / cell_px).ceil() as usize;
        let rows = (f64::from(p.height) / cell_px).ceil() as usize;
        let mut epi = vec![0f64; cols * rows];
        let mut stroma = vec![0f64; cols * rows];
        // Area samples every ~2 µm; edge samples weighted by the part inside the image.
        let step = (2.0 / p.mpp).round().max(1.0);
        let px_mm2 = (p.mpp / 1000.0).powi(2);
        let (w, h) = (f64::from(p.width), f64::from(p.height));
        let mut y = 0.0;
        while y < h {
            let sh = step.min(h - y);
            let row = ((y + sh / 2.0) / cell_px) as usize;
            let mut x = 0.0;
            while x < w {
                let sw = step.min(w - x);
                let (cx, cy) = (x + sw / 2.0, y + sh / 2.0);
                let i = row.min(rows - 1) * cols + ((cx / cell_px) as usize).min(cols - 1);
                match self.class_at(cx, cy) {
                    Class::Epithelium => epi[i] += sw * sh * px_mm2,
                    Class::Stroma => stroma[i] += sw * sh * px_mm2,
                    Class::Glass => {}
                }
                x += step;
            }
            y += step;
        }
        let mut itil = vec![0u32; cols * rows];
        let mut stil = vec![0u32; cols * rows];
        let mut lymphocytes = Vec::with_capacity(self.lymph.len());
        for l in &self.lymph {
            let i = ((f64::from(l.y) / cell_px) as usize).min(rows - 1) * cols
                + ((f64::from(l.x) / cell_px) as usize).min(cols - 1);
            let compartment = if l.class == Class::Epithelium {
                itil[i] += 1;
                Compartment::Epithelium
            } else {
                stil[i] += 1;
                Compartment::Stroma
            };
            lymphocytes.push(LymphocyteTruth { x: l.x, y: l.y, compartment });
        }
        let t = p.thresholds;
        let rule = evidentia_phenotype::Rule {
            itil_per_mm2: t.itil_per_mm2,
            stil_per_mm2: t.stil_per_mm2,
            min_epithelium_mm2: t.min_epithelium_mm2,
            slide_share: t.slide_share,
        };
        let mut counts = ClassCounts::default();
        let mut cells = Vec::with_capacity(cols * rows);
        for r in 0..rows {
            for c in 0..cols {
                let i = r * cols + c;
                let itil_density = (epi[i] > 0.0).then(|| f64::from(itil[i]) / epi[i]);
                let stil_density = (stroma[i] > 0.0).then(|| f64::from(stil[i]) / stroma[i]);
                let class = rule.cell(epi[i], itil_density, stil_density).map(Phenotype::from);
                match class {
                    Some(Phenotype::Inflamed) => counts.inflamed += 1,
                    Some(Phenotype::Excluded) => counts.excluded += 1,
                    Some(_) => counts.desert += 1,
                    None => {}
                }
                counts.scored += u32::from(class.is_some());
                cells.push(GridCellTruth {
                    col: c as u32,
                    row: r as u32,
                    epithelium_mm2: epi[i],
                    stroma_mm2: stroma[i],
                    itil_count: itil[i],
                    stil_count: stil[i],
                    itil_density,
                    stil_density,
                    class,
                });
            }
        }
        let phenotype = rule.slide(counts.inflamed, counts.excluded, counts.desert).map(Phenotype::from);
        SlideTruth {
            format: TRUTH_FORMAT.into(),
            slide_file: String::new(),
            width: p.width,
            height: p.height,
            mpp: p.mpp,
            seed: p.seed,
            requested_phenotype: p.phenotype,
            phenotype,
            thresholds: t,
            grid_mm: 1.0,
            grid_cell_px: cell_px,
            grid_cols: cols as u32,
            grid_rows: rows as u32,
            class_counts: counts,
            cells,
            lymphocytes,
            mask: self.mask(),
            levels: level_sizes(p.width, p.height).into_iter().map(|(a, b)| [a, b]).collect(),
            fake_patient_name: phi.name.clone(),
            fake_accession: phi.accession.clone(),
        }
    }

    fn mask(&self) -> TissueMask {
        let mw = (f64::from(self.w) / self.cell).ceil() as u32;
        let mh = (f64::from(self.h) / self.cell).ceil() as u32;
        let mut rle: Vec<[u32; 2]> = Vec::new();
        for my in 0..mh {
            for mx in 0..mw {
                let v = match self.class_at((f64::from(mx) + 0.5) * self.cell, (f64::from(my) + 0.5) * self.cell) {
                    Class::Glass => 0,
                    Class::Stroma => 1,
                    Class::Epithelium => 2,
                };
                match rle.last_mut() {
                    Some(last) if last[0] == v => last[1] += 1,
                    _ => rle.push([v, 1]),
                }
            }
        }
        TissueMask {
            width: mw,
            height: mh,
            cell_px: self.cell,
            legend: vec!["glass".into(), "stroma".into(), "epithelium".into()],
            rle,
        }
    }
}

/// Knuth's method for small means, a rounded normal approximation above 30.
fn poisson(rng: &mut ChaCha12Rng, mean: f64) -> u32 {
    if mean > 30.0 {
        let (u1, u2): (f64, f64) = (rng.gen::<f64>().max(1e-12), rng.gen());
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        return (mean + z * mean.sqrt()).round().max(0.0) as u32;
    }
    let limit = (-mean).exp();
    let (mut k, mut prod) = (0u32, rng.gen::<f64>());
    while prod > limit {
        k += 1;
        prod *= rng.gen::<f64>();
    }
    k
}

// Colours (RGB) of the H&E palette.
const GLASS: [f32; 3] = [242.0, 242.0, 240.0];
const STROMA_LIGHT: [f32; 3] = [246.0, 204.0, 226.0];
const STROMA_DARK: [f32; 3] = [226.0, 150.0, 192.0];
const CYTOPLASM: [f32; 3] = [214.0, 158.0, 204.0];
const HALO_COLOUR: [f32; 3] = [247.0, 232.0, 240.0];
const TUMOUR_NUCLEUS: [f32; 3] = [150.0, 108.0, 182.0];
const TUMOUR_RIM: [f32; 3] = [104.0, 66.0, 148.0];
const SPINDLE: [f32; 3] = [112.0, 66.0, 150.0];
const LYMPHOCYTE: [f32; 3] = [56.0, 36.0, 110.0];

fn lerp3(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t]
}

/// Background colour of a point from its fields: glass, stroma with wavy fibres, cytoplasm, halo.
#[inline]
fn base_colour(f: [f32; 3], fibre_amp: f32, noise: f32) -> [f32; 3] {
    let [tissue, epi, fib] = f;
    let tissue_col = if epi > HALO {
        CYTOPLASM
    } else if epi > 0.0 {
        HALO_COLOUR
    } else {
        // Contour lines of a smooth field read as wavy collagen fibres: thin darker lines, a few
        // pale gaps, on a pink that drifts slowly with the same field.
        let wave = (fib * 120.0).cos();
        let line = ((wave - 0.55) / 0.45).clamp(0.0, 1.0);
        let gap = ((-wave - 0.8) / 0.2).clamp(0.0, 1.0);
        let base = lerp3(STROMA_LIGHT, STROMA_DARK, 0.45 + 0.5 * fib);
        let c = lerp3(base, STROMA_DARK, line * 0.4 * fibre_amp);
        lerp3(c, STROMA_LIGHT, gap * 0.6 * fibre_amp)
    };
    // Soft tissue edge over a thin band of the tissue field.
    let t = (tissue / 0.03).clamp(0.0, 1.0);
    let c = lerp3(GLASS, tissue_col, t);
    let n = noise * (0.4 + 0.6 * t);
    [c[0] + n, c[1] + n, c[2] + n]
}

/// A float RGB region being painted.
struct Canvas<'a> {
    img: &'a mut [f32],
    w: usize,
    h: usize,
    x0: f64,
    y0: f64,
    ds: f64,
}

impl Canvas<'_> {
    fn blend(&mut self, i: usize, j: usize, c: [f32; 3], alpha: f32) {
        let o = (j * self.w + i) * 3;
        for (px, c) in self.img[o..o + 3].iter_mut().zip(c) {
            *px += (c - *px) * alpha;
        }
    }

    fn stamp(&mut self, n: &Nucleus) {
        let ds = self.ds as f32;
        let cx = (f64::from(n.x) / self.ds - self.x0) as f32;
        let cy = (f64::from(n.y) / self.ds - self.y0) as f32;
        let (a, b) = (n.a / ds, n.b / ds);
        let mean = match n.kind {
            Kind::Tumour => lerp3(TUMOUR_NUCLEUS, TUMOUR_RIM, 0.35),
            Kind::Spindle => SPINDLE,
            Kind::Lymphocyte => LYMPHOCYTE,
        };
        if a < 0.9 {
            // Smaller than a pixel: blend by covered area, which is what averaging would give.
            let (i, j) = (cx.floor(), cy.floor());
            if i >= 0.0 && j >= 0.0 && (i as usize) < self.w && (j as usize) < self.h {
                let alpha = (std::f32::consts::PI * a * b).min(1.0) * 0.9;
                self.blend(i as usize, j as usize, mean, alpha);
            }
            return;
        }
        let r = a + 1.0;
        let i0 = (cx - r).floor().max(0.0) as usize;
        let j0 = (cy - r).floor().max(0.0) as usize;
        let i1 = ((cx + r).ceil().max(0.0) as usize).min(self.w);
        let j1 = ((cy + r).ceil().max(0.0) as usize).min(self.h);
        let lighten = (n.tone - 0.5) * 24.0;
        // Nucleolus offset for some tumour nuclei.
        let has_nucleolus = matches!(n.kind, Kind::Tumour) && !n.id.is_multiple_of(3);
        let (nx, ny) = (((n.id >> 8) % 7) as f32 / 7.0 - 0.5, ((n.id >> 12) % 7) as f32 / 7.0 - 0.5);
        for j in j0..j1 {
            for i in i0..i1 {
                let (dx, dy) = (i as f32 + 0.5 - cx, j as f32 + 0.5 - cy);
                let u = dx * n.cos + dy * n.sin;
                let v = -dx * n.sin + dy * n.cos;
                let d = ((u / a) * (u / a) + (v / b) * (v / b)).sqrt();
                let alpha = ((1.0 - d) * b + 0.5).clamp(0.0, 1.0);
                if alpha <= 0.0 {
                    continue;
                }
                let c = match n.kind {
                    Kind::Tumour => {
                        // Vesicular nucleus: pale centre, dark membrane, chromatin clumps.
                        let rim = ((d - 0.7) / 0.3).clamp(0.0, 1.0);
                        let mut c = lerp3(TUMOUR_NUCLEUS, TUMOUR_RIM, rim * rim);
                        let px = (f64::from(i as u32) + self.x0) as i64;
                        let py = (f64::from(j as u32) + self.y0) as i64;
                        let speck = unit(pixel_hash(u64::from(n.id), px, py));
                        if speck < 0.22 && self.ds < 2.0 {
                            c = lerp3(c, TUMOUR_RIM, 0.55);
                        }
                        if has_nucleolus {
                            let (ux, uy) = (u / a - nx * 0.6, v / b - ny * 0.6);
                            if ux * ux + uy * uy < 0.045 {
                                c = [78.0, 34.0, 112.0];
                            }
                        }
                        [c[0] + lighten, c[1] + lighten, c[2] + lighten * 0.5]
                    }
                    Kind::Spindle => [SPINDLE[0] + lighten, SPINDLE[1] + lighten, SPINDLE[2] + lighten],
                    Kind::Lymphocyte => {
                        let rim = (d - 0.8).max(0.0) * 2.0;
                        lerp3(LYMPHOCYTE, [90.0, 60.0, 140.0], rim)
                    }
                };
                self.blend(i, j, c, alpha);
            }
        }
    }
}

/// What every tile of one level needs; shared with the render threads.
#[derive(Clone, Copy)]
struct TileJob<'a> {
    model: &'a Model,
    w: u32,
    h: u32,
    ds: f64,
    tile: u32,
    quality: u8,
}

impl TileJob<'_> {
    fn count(&self) -> u64 {
        u64::from(self.w.div_ceil(self.tile)) * u64::from(self.h.div_ceil(self.tile))
    }

    /// Renders, pads and encodes tile `index` (row-major).
    fn tile(&self, index: u64) -> io::Result<Vec<u8>> {
        let across = u64::from(self.w.div_ceil(self.tile));
        let (tx, ty) = ((index % across) as u32, (index / across) as u32);
        let (x0, y0) = (tx * self.tile, ty * self.tile);
        let (cw, ch) = ((self.w - x0).min(self.tile), (self.h - y0).min(self.tile));
        let px = self.model.render(f64::from(x0), f64::from(y0), cw, ch, self.ds);
        let full = if cw == self.tile && ch == self.tile {
            px
        } else {
            tiffwrite::pad_tile(&px, cw, ch, self.tile, self.tile, 3)
        };
        let t = u16_dim(self.tile)?;
        tiffwrite::encode_jpeg_rgb(&full, t, t, self.quality)
    }
}

/// The tiles of one level as JPEG chunks, rendered in batches across threads, yielded in order.
struct LevelTiles<'a> {
    job: TileJob<'a>,
    next: u64,
    ready: std::collections::VecDeque<io::Result<Vec<u8>>>,
    done: &'a mut u64,
    total: u64,
    progress: &'a mut dyn FnMut(u64, u64),
}

impl<'a> LevelTiles<'a> {
    fn new(job: TileJob<'a>, done: &'a mut u64, total: u64, progress: &'a mut dyn FnMut(u64, u64)) -> Self {
        LevelTiles { job, next: 0, ready: Default::default(), done, total, progress }
    }

    fn refill(&mut self) {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(8) as u64;
        let batch = (threads * 4).min(self.job.count() - self.next);
        let first = self.next;
        let job = self.job;
        let mut parts: Vec<Vec<io::Result<Vec<u8>>>> = Vec::new();
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    // Thread t takes tiles t, t+threads, ... of the batch.
                    s.spawn(move || (first + t..first + batch).step_by(threads as usize).map(|i| job.tile(i)).collect())
                })
                .collect();
            for h in handles {
                parts.push(h.join().unwrap_or_else(|_| vec![Err(io::Error::other("tile renderer panicked"))]));
            }
        });
        // Interleave back into tile order.
        let mut iters: Vec<_> = parts.into_iter().map(|p| p.into_iter()).collect();
        for k in 0..batch {
            let r = iters[(k % threads) as usize].next().unwrap_or_else(|| Err(io::Error::other("tile missing")));
            self.ready.push_back(r);
        }
        self.next += batch;
    }
}

impl Iterator for LevelTiles<'_> {
    type Item = io::Result<Vec<u8>>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.ready.is_empty() && self.next < self.job.count() {
            self.refill();
        }
        let item = self.ready.pop_front()?;
        *self.done += 1;
        (self.progress)(*self.done, self.total);
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use tiff::decoder::Decoder;
    use tiff::tags::Tag;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("evidentia-synth-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn computed_phenotype_matches_requested() {
        for ph in [Phenotype::Inflamed, Phenotype::Excluded, Phenotype::Desert] {
            for seed in 1..=4 {
                let t = slide_truth(&SynthParams::new(4000, 4000, 0.5, ph, seed)).unwrap();
                assert_eq!(t.phenotype, Some(ph), "seed {seed}: {:?}", t.class_counts);
                assert!(t.class_counts.scored >= 2, "{:?}", t.class_counts);
            }
        }
        let t = slide_truth(&SynthParams::new(12000, 8000, 0.5, Phenotype::Mixed, 3)).unwrap();
        assert!(t.phenotype.is_some());
    }

    #[test]
    fn grid_truth_is_consistent() {
        let p = SynthParams::new(5000, 3000, 0.5, Phenotype::Inflamed, 9);
        let t = slide_truth(&p).unwrap();
        assert_eq!((t.grid_cols, t.grid_rows), (3, 2));
        assert_eq!(t.cells.len(), 6);
        let lymph_total: u32 = t.cells.iter().map(|c| c.itil_count + c.stil_count).sum();
        assert_eq!(lymph_total as usize, t.lymphocytes.len());
        for c in &t.cells {
            let inside = |l: &&LymphocyteTruth| (l.x / 2000.0) as u32 == c.col && (l.y / 2000.0) as u32 == c.row;
            let epi = t.lymphocytes.iter().filter(inside).filter(|l| l.compartment == Compartment::Epithelium).count();
            assert_eq!(epi as u32, c.itil_count);
            assert!(c.epithelium_mm2 + c.stroma_mm2 <= 1.0 + 1e-9);
            if let Some(d) = c.itil_density {
                assert!((d - f64::from(c.itil_count) / c.epithelium_mm2).abs() < 1e-9);
            }
        }
        // Partial cells at the bottom edge are half height.
        let area: f64 = t.cells.iter().map(|c| c.epithelium_mm2 + c.stroma_mm2).sum();
        assert!(area > 0.5 * 2.5 * 1.5 && area < 2.5 * 1.5, "{area}");
        let mask = t.mask.decode();
        assert_eq!(mask.len(), (t.mask.width * t.mask.height) as usize);
        assert!(mask.contains(&2) && mask.contains(&1) && mask.contains(&0));
        // JSON round trip.
        let back: SlideTruth = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
        assert_eq!("Excluded".parse::<Phenotype>().unwrap(), Phenotype::Excluded);
        assert!("hot".parse::<Phenotype>().is_err());
    }

    #[test]
    fn writes_readable_deterministic_svs() {
        let dir = tmpdir("write");
        let p = SynthParams::new(1500, 1100, 0.5, Phenotype::Excluded, 5);
        let mut calls = 0;
        let a = write_slide(&dir.join("a.svs"), &p, &mut |d, t| {
            calls += 1;
            assert!(d <= t);
        })
        .unwrap();
        let b = write_slide(&dir.join("b.svs"), &p, &mut |_, _| {}).unwrap();
        let bytes = std::fs::read(&a.path).unwrap();
        assert_eq!(bytes, std::fs::read(&b.path).unwrap());
        assert_eq!(calls, 6 * 5 + 2 * 2);
        assert_eq!(a.fake_patient_name, b.fake_patient_name);
        assert!(a.truth_path.exists());

        // IFDs: level 0, thumbnail, level 1, label, macro.
        let mut dec = Decoder::new(Cursor::new(&bytes[..])).unwrap();
        let desc = dec.get_tag_ascii_string(Tag::ImageDescription).unwrap();
        assert!(desc.starts_with("Aperio Image Library"));
        assert!(desc.contains("MPP = 0.5") && desc.contains(&a.fake_accession));
        assert_eq!(dec.get_tag_ascii_string(Tag::Artist).unwrap(), a.fake_patient_name);
        let mut dims = vec![dec.dimensions().unwrap()];
        let mut subfile = vec![dec.get_tag_u32(Tag::NewSubfileType).unwrap()];
        while dec.more_images() {
            dec.next_image().unwrap();
            dims.push(dec.dimensions().unwrap());
            subfile.push(dec.get_tag_u32(Tag::NewSubfileType).unwrap());
        }
        assert_eq!(dims, vec![(1500, 1100), (768, 563), (375, 275), (400, 300), (1280, 431)]);
        assert_eq!(subfile, vec![0, 0, 0, 1, 9]);
        let label = dec_label(&bytes);
        assert!(label.iter().any(|&v| v < 100));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn write_slides_names_and_seeds() {
        let dir = tmpdir("many");
        let base = SynthParams::new(600, 400, 0.5, Phenotype::Desert, 40);
        let mut seen = Vec::new();
        let slides = write_slides(&dir, 2, &base, &mut |i, d, t| seen.push((i, d, t))).unwrap();
        assert_eq!(slides.len(), 2);
        assert_eq!(slides[1].path.file_name().unwrap(), "synth-41-001.svs");
        assert_eq!(slides[1].truth.seed, 41);
        assert_eq!(slides[1].truth.slide_file, "synth-41-001.svs");
        assert_eq!(seen.last(), Some(&(1, 6, 6)));
        let back: SlideTruth = serde_json::from_slice(&std::fs::read(&slides[0].truth_path).unwrap()).unwrap();
        assert_eq!(back, slides[0].truth);
        assert_ne!(slides[0].fake_accession, slides[1].fake_accession);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn dec_label(bytes: &[u8]) -> Vec<u8> {
        let mut dec = Decoder::new(Cursor::new(bytes)).unwrap();
        dec.seek_to_image(3).unwrap();
        match dec.read_image().unwrap() {
            tiff::decoder::DecodingResult::U8(v) => v,
            _ => panic!("label not u8"),
        }
    }

    #[test]
    fn rendered_tiles_look_like_he() {
        let p = SynthParams::new(6000, 6000, 0.5, Phenotype::Inflamed, 2);
        let m = Model::build(&p);
        // A tissue region near the centre.
        let img = m.render(2800.0, 2800.0, 256, 256, 1.0);
        let mean = |c: usize| img.iter().skip(c).step_by(3).map(|&v| f64::from(v)).sum::<f64>() / (256.0 * 256.0);
        let (r, g, b) = (mean(0), mean(1), mean(2));
        assert!(g < 215.0 && r > g && b > g, "mean {r} {g} {b}");
        // Lymphocyte centres are darker than the tile mean.
        let mut dark = 0;
        let mut n = 0;
        for l in m.lymph.iter().filter(|l| l.x > 2810.0 && l.x < 3046.0 && l.y > 2810.0 && l.y < 3046.0) {
            let o = (((l.y - 2800.0) as usize) * 256 + (l.x - 2800.0) as usize) * 3;
            n += 1;
            dark += usize::from(f64::from(img[o + 1]) < g - 60.0);
        }
        assert!(n > 0 && dark == n, "{dark}/{n}");
        // Glass in a corner.
        let corner = m.render(0.0, 0.0, 16, 16, 1.0);
        assert!(corner.iter().all(|&v| v > 225), "corner not glass");
        // Lower levels render at their own scale.
        let low = m.render(0.0, 0.0, 94, 94, 64.0);
        assert_eq!(low.len(), 94 * 94 * 3);
    }

    /// Synthetic slides are fixtures (tests, the demo, benchmarks): the same parameters must give
    /// the same bytes on every machine and after every dependency upgrade. A change of these
    /// checksums is a change of every fixture: make it deliberately.
    #[test]
    fn the_synthetic_slide_fixture_keeps_its_checksum() {
        use sha2::{Digest, Sha256};
        let dir = tmpdir("checksum");
        let p = SynthParams::new(1500, 1100, 0.5, Phenotype::Mixed, 5);
        let s = write_slide(&dir.join("fixture.svs"), &p, &mut |_, _| {}).unwrap();
        let slide = hex::encode(Sha256::digest(std::fs::read(&s.path).unwrap()));
        let truth = hex::encode(Sha256::digest(std::fs::read(&s.truth_path).unwrap()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            slide, "495bde8eb80627ea5b502d0f834ce70bf29313eaf5f93a5f1be8567c800db85a",
            "the synthetic slide's bytes changed"
        );
        assert_eq!(
            truth, "f75885cbec2bc0e9c50375462cd6ca01e044b18ef940947468ea306ebd3e2f11",
            "the synthetic slide's truth changed"
        );
    }
}
