//! The per-slide pipeline: tissue detection on a low-resolution level → a tile grid at the
//! model's microns per pixel over tissue only → batched inference (tiles decoded on another
//! thread while the model runs) → per output pixel tissue class and lymphocyte centres → 1 mm²
//! grid cells anchored at level-0 (0, 0) → iTIL / sTIL densities → cell classes and the slide's
//! phenotype with the rule of `phenotype.rs`, plus quality flags.

use std::sync::mpsc;

use ndarray::ArrayD;
use serde::Serialize;

use crate::card::ModelCard;
use crate::engine::Model;
pub use evidentia_phenotype::CellClass;
use evidentia_phenotype::Rule;
use evidentia_stats::median;
use evidentia_wsi::dzi::resize;
use evidentia_wsi::reader::{RgbImage, SlideReader};

/// Knobs of a run (recorded with it).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Options {
    pub batch_size: usize,
    /// A tile is analysed when at least this share of it is tissue.
    pub min_tissue_share: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options { batch_size: 8, min_tissue_share: 0.1 }
    }
}

/// One 1 mm² grid cell's measurements and class.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Cell {
    pub col: u32,
    pub row: u32,
    pub epithelium_mm2: f64,
    pub stroma_mm2: f64,
    pub itil: u32,
    pub stil: u32,
    pub class: Option<CellClass>,
}

impl Cell {
    pub fn itil_density(&self) -> Option<f64> {
        (self.epithelium_mm2 > 0.0).then(|| f64::from(self.itil) / self.epithelium_mm2)
    }
    pub fn stil_density(&self) -> Option<f64> {
        (self.stroma_mm2 > 0.0).then(|| f64::from(self.stil) / self.stroma_mm2)
    }
}

/// What a slide's analysis gives.
#[derive(Debug, Clone, Serialize)]
pub struct SlideResult {
    pub phenotype: Option<CellClass>,
    pub inflamed_share: f64,
    pub excluded_share: f64,
    pub desert_share: f64,
    pub itil_density_median: Option<f64>,
    pub stil_density_median: Option<f64>,
    pub grid_cells_scored: u32,
    pub tiles: u32,
    /// `too_little_tissue`, `too_little_tumour`.
    pub flags: Vec<String>,
    #[serde(skip)]
    pub cells: Vec<Cell>,
    /// Level-0 pixels per grid cell edge.
    #[serde(skip)]
    pub cell_px: f64,
}

impl SlideResult {
    /// The heatmap: the scored cells' classes on the grid (what the viewer overlays).
    pub fn heatmap(&self) -> serde_json::Value {
        let cells: Vec<serde_json::Value> =
            self.cells.iter().filter_map(|c| c.class.map(|k| serde_json::json!([c.col, c.row, k.as_str()]))).collect();
        serde_json::json!({"cell_px": self.cell_px, "cells": cells})
    }
}

/// Loads the sessions a slide runs on: on tract one single-threaded session per core (tract's
/// sessions do not spread one inference across cores); on ONNX Runtime two sessions (one on a
/// single core), each running its own batches on half the cores.
///
/// One ONNX Runtime session on every core waits, at each operator, for its slowest thread, and
/// the thread decoding tiles takes a core from one of them now and then: on 2 cores it reached
/// 0.76 of the model alone (issue 20, BENCHMARKS.md). Two sessions run whole batches side by
/// side and do not wait for each other. A third copy of a large model would cost memory for
/// little: the decoding thread keeps a third core busy only where decoding is slower than the
/// model.
pub fn sessions(path: &std::path::Path) -> Result<Vec<Model>, String> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    match crate::engine::backend()?.kind {
        crate::engine::BackendKind::Tract => (0..cores).map(|_| Model::load(path, 1)).collect(),
        crate::engine::BackendKind::OnnxRuntime => {
            let n = cores.min(2);
            (0..n).map(|_| Model::load(path, cores / n)).collect()
        }
    }
}

/// Tissue: not glass. A pixel is tissue when it is darker than glass or clearly coloured.
pub fn is_tissue(p: [u8; 3]) -> bool {
    let (lo, hi) = (p.iter().copied().min().unwrap_or(0), p.iter().copied().max().unwrap_or(0));
    lo < 215 || hi - lo > 25
}

/// The tissue mask on a low-resolution level: (mask, level-0 px per mask px).
fn tissue_mask(reader: &dyn SlideReader) -> Result<(RgbImage, f64), String> {
    let info = reader.info();
    let level = info.best_level_for_downsample(32.0);
    let l = &info.levels[level];
    let img = reader.read_region(level, 0, 0, l.width as u32, l.height as u32).map_err(|e| e.to_string())?;
    Ok((img, l.downsample))
}

/// Colours of the heatmap's classes (as `.heat-*` in the app's CSS), opaque: the viewer sets the
/// layer's opacity.
const HEAT_RGB: [(&str, [u8; 3]); 3] =
    [("inflamed", [0xd6, 0x27, 0x28]), ("excluded", [0xff, 0x7f, 0x0e]), ("desert", [0x1f, 0x77, 0xb4])];

/// The heatmap as an image over the slide: at the tissue mask's resolution (the level nearest a
/// 32× downsample, about 16 µm per pixel at 0.5 µm/px), each tissue pixel of a scored grid cell
/// in its class's colour, everything else — glass, and cells not scored — transparent. Returns
/// (width, height, RGBA bytes); `heatmap` is [`SlideResult::heatmap`]'s JSON.
pub fn heatmap_rgba(reader: &dyn SlideReader, heatmap: &serde_json::Value) -> Result<(u32, u32, Vec<u8>), String> {
    let cell_px = heatmap["cell_px"].as_f64().filter(|c| *c > 0.0).ok_or("the heatmap has no grid")?;
    let mut class_of = std::collections::HashMap::new();
    for c in heatmap["cells"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let (Some(col), Some(row), Some(rgb)) = (
            c[0].as_u64(),
            c[1].as_u64(),
            HEAT_RGB.iter().find(|(k, _)| Some(*k) == c[2].as_str()).map(|(_, rgb)| *rgb),
        ) else {
            continue;
        };
        class_of.insert((col, row), rgb);
    }
    let (mask, ds) = tissue_mask(reader)?;
    let mut out = vec![0u8; mask.width as usize * mask.height as usize * 4];
    for y in 0..mask.height {
        let row = ((f64::from(y) + 0.5) * ds / cell_px) as u64;
        for x in 0..mask.width {
            let col = ((f64::from(x) + 0.5) * ds / cell_px) as u64;
            let Some(rgb) = class_of.get(&(col, row)) else { continue };
            if is_tissue(mask.get(x, y)) {
                let i = (y as usize * mask.width as usize + x as usize) * 4;
                out[i..i + 3].copy_from_slice(rgb);
                out[i + 3] = 255;
            }
        }
    }
    Ok((mask.width, mask.height, out))
}

/// Tile origins (level-0 px) over tissue.
fn tile_grid(reader: &dyn SlideReader, tile_l0: f64, min_share: f64) -> Result<Vec<(i64, i64)>, String> {
    let info = reader.info();
    let (mask, ds) = tissue_mask(reader)?;
    let (cols, rows) = ((info.width as f64 / tile_l0).ceil() as i64, (info.height as f64 / tile_l0).ceil() as i64);
    let mut out = Vec::new();
    for r in 0..rows {
        for c in 0..cols {
            let (x0, y0) = (c as f64 * tile_l0 / ds, r as f64 * tile_l0 / ds);
            let (x1, y1) = (
                ((c + 1) as f64 * tile_l0 / ds).min(mask.width as f64),
                ((r + 1) as f64 * tile_l0 / ds).min(mask.height as f64),
            );
            let (mut tissue, mut all) = (0u32, 0u32);
            for y in (y0 as u32)..(y1.ceil() as u32).min(mask.height) {
                for x in (x0 as u32)..(x1.ceil() as u32).min(mask.width) {
                    all += 1;
                    tissue += u32::from(is_tissue(mask.get(x, y)));
                }
            }
            if all > 0 && f64::from(tissue) / f64::from(all) >= min_share {
                out.push(((c as f64 * tile_l0).round() as i64, (r as f64 * tile_l0).round() as i64));
            }
        }
    }
    Ok(out)
}

/// The tiles a slide is analysed in: their level-0 origins over tissue and their edge in
/// level-0 pixels (the model's tile size at the model's resolution).
pub struct TilePlan {
    pub origins: Vec<(i64, i64)>,
    pub tile_l0: f64,
}

pub fn plan(reader: &dyn SlideReader, card: &ModelCard, opts: Options) -> Result<TilePlan, String> {
    let mpp = reader
        .info()
        .mpp_x
        .filter(|m| *m > 0.0)
        .ok_or("the slide has no resolution (microns per pixel): it cannot be measured")?;
    let tile_l0 = f64::from(card.tile_size) * card.mpp / mpp;
    Ok(TilePlan { origins: tile_grid(reader, tile_l0, opts.min_tissue_share)?, tile_l0 })
}

/// Reads and normalises the tiles at these origins: one batch of the model's input.
pub fn read_batch(
    reader: &dyn SlideReader,
    card: &ModelCard,
    origins: &[(i64, i64)],
    tile_l0: f64,
) -> Result<ArrayD<f32>, String> {
    let tiles: Vec<RgbImage> =
        origins.iter().map(|o| read_tile(reader, card, *o, tile_l0)).collect::<Result<_, _>>()?;
    Ok(to_batch(card, &tiles))
}

/// Reads one tile at the model's resolution.
fn read_tile(reader: &dyn SlideReader, card: &ModelCard, origin: (i64, i64), tile_l0: f64) -> Result<RgbImage, String> {
    let info = reader.info();
    let level = info.best_level_for_downsample(tile_l0 / f64::from(card.tile_size));
    let ds = info.levels[level].downsample;
    let size = (tile_l0 / ds).round().max(1.0) as u32;
    let img = reader.read_region(level, origin.0, origin.1, size, size).map_err(|e| e.to_string())?;
    Ok(resize(&img, card.tile_size, card.tile_size))
}

/// Tiles as the model's input: normalised with the card, NCHW (or NHWC). The normalisation is a
/// per-channel lookup table of the card's formula, written straight into the batch's buffer.
pub(crate) fn to_batch(card: &ModelCard, tiles: &[RgbImage]) -> ArrayD<f32> {
    let t = card.tile_size as usize;
    let plane = t * t;
    let n = &card.normalisation;
    let lut: [[f32; 256]; 3] =
        std::array::from_fn(|c| std::array::from_fn(|v| ((v as f64 * n.scale - n.mean[c]) / n.std[c]) as f32));
    let nhwc = card.input.layout == "NHWC";
    let mut data = vec![0f32; tiles.len() * 3 * plane];
    for (out, img) in data.chunks_exact_mut(3 * plane).zip(tiles) {
        let pixels = img.data.chunks_exact(3).take(plane);
        if nhwc {
            for (o, px) in out.chunks_exact_mut(3).zip(pixels) {
                for c in 0..3 {
                    o[c] = lut[c][px[c] as usize];
                }
            }
        } else {
            let (r, rest) = out.split_at_mut(plane);
            let (g, b) = rest.split_at_mut(plane);
            for (i, px) in pixels.enumerate() {
                r[i] = lut[0][px[0] as usize];
                g[i] = lut[1][px[1] as usize];
                b[i] = lut[2][px[2] as usize];
            }
        }
    }
    let shape = if nhwc { [tiles.len(), t, t, 3] } else { [tiles.len(), 3, t, t] };
    // The lengths match by construction; zeros only to keep a panic out of the server.
    ArrayD::from_shape_vec(ndarray::IxDyn(&shape), data).unwrap_or_else(|_| ArrayD::zeros(ndarray::IxDyn(&shape)))
}

/// The grid the results are gathered on.
struct Grid {
    /// The slide's microns per level-0 pixel.
    mpp: f64,
    cell_px: f64,
    cols: u32,
    cells: Vec<Cell>,
}

impl Grid {
    fn new(width: u64, height: u64, mpp: f64) -> Grid {
        let cell_px = 1000.0 / mpp;
        let cols = (width as f64 / cell_px).ceil().max(1.0) as u32;
        let rows = (height as f64 / cell_px).ceil().max(1.0) as u32;
        let cells =
            (0..rows).flat_map(|row| (0..cols).map(move |col| Cell { col, row, ..Default::default() })).collect();
        Grid { mpp, cell_px, cols, cells }
    }
    fn at(&mut self, x: f64, y: f64) -> Option<&mut Cell> {
        if x < 0.0 || y < 0.0 {
            return None;
        }
        let (c, r) = ((x / self.cell_px) as u32, (y / self.cell_px) as u32);
        if c >= self.cols {
            return None;
        }
        self.cells.get_mut((r * self.cols + c) as usize)
    }
}

/// Adds one tile's model outputs to the grid: each output pixel's tissue class as area, and
/// lymphocyte centres (local maxima at or above the card's probability) by compartment.
fn accumulate(
    grid: &mut Grid,
    card: &ModelCard,
    tissue: &ArrayD<f32>,
    lymph: &ArrayD<f32>,
    b: usize,
    origin: (i64, i64),
    tile_l0: f64,
) {
    let (h, w) = (tissue.shape()[2], tissue.shape()[3]);
    let px = tile_l0 / w as f64; // level-0 px per output pixel
    let area_mm2 = (px * grid.mpp / 1000.0).powi(2);
    let class_at = |y: usize, x: usize| -> usize {
        (0..3).max_by(|&a, &c| tissue[[b, a, y, x]].total_cmp(&tissue[[b, c, y, x]])).unwrap_or(0)
    };
    let threshold = card.thresholds.lymphocyte_probability as f32;
    for y in 0..h {
        for x in 0..w {
            let (lx, ly) = (origin.0 as f64 + (x as f64 + 0.5) * px, origin.1 as f64 + (y as f64 + 0.5) * px);
            let class = class_at(y, x);
            let Some(cell) = grid.at(lx, ly) else { continue };
            match class {
                1 => cell.epithelium_mm2 += area_mm2,
                2 => cell.stroma_mm2 += area_mm2,
                _ => {}
            }
            let v = lymph[[b, 0, y, x]];
            if v < threshold {
                continue;
            }
            let peak = (y.saturating_sub(1)..(y + 2).min(h))
                .flat_map(|yy| (x.saturating_sub(1)..(x + 2).min(w)).map(move |xx| (yy, xx)))
                .all(|(yy, xx)| {
                    (yy, xx) == (y, x) || lymph[[b, 0, yy, xx]] < v || (lymph[[b, 0, yy, xx]] == v && (yy, xx) > (y, x))
                });
            if peak {
                match class {
                    1 => cell.itil += 1,
                    2 => cell.stil += 1,
                    _ => {}
                }
            }
        }
    }
}

/// Analyses one slide with loaded sessions of a model (see [`sessions`]) and its card.
/// `progress(done, total)` after each batch.
pub fn analyse(
    reader: &dyn SlideReader,
    models: &mut [Model],
    card: &ModelCard,
    opts: Options,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<SlideResult, String> {
    if card.outputs.len() < 2 {
        return Err("the pipeline reads two outputs: tissue classes first, then the lymphocyte map".into());
    }
    if models.is_empty() {
        return Err("no model session".into());
    }
    let info = reader.info();
    let TilePlan { origins, tile_l0 } = plan(reader, card, opts)?;
    let mpp = info.mpp_x.unwrap_or(1.0);
    let mut grid = Grid::new(info.width, info.height, mpp);
    let total = origins.len();
    let batch_size = opts.batch_size.max(1);
    // Tiles are decoded on one thread while the sessions run (see `sessions`), each taking the
    // next decoded batch. Outputs come back to this thread, which alone writes the grid.
    type Batch = (Vec<(i64, i64)>, ArrayD<f32>);
    type Outputs = (Vec<(i64, i64)>, Vec<(String, ArrayD<f32>)>);
    std::thread::scope(|s| -> Result<(), String> {
        // The workers share the batch receiver; when the last of them stops (done, or its
        // results are no longer wanted) the receiver goes and the decoder stops too.
        let (tx, rx) = mpsc::sync_channel::<Result<Batch, String>>(models.len());
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let (out_tx, out_rx) = mpsc::channel::<Result<Outputs, String>>();
        let origins_ref = &origins;
        s.spawn(move || {
            for chunk in origins_ref.chunks(batch_size) {
                let item = read_batch(reader, card, chunk, tile_l0).map(|b| (chunk.to_vec(), b));
                let failed = item.is_err();
                if tx.send(item).is_err() || failed {
                    break;
                }
            }
        });
        for model in models.iter_mut() {
            let (rx, out_tx) = (rx.clone(), out_tx.clone());
            s.spawn(move || loop {
                // The lock is held only to take the next batch; poisoning means a sibling died.
                let next = match rx.lock() {
                    Ok(guard) => guard.recv(),
                    Err(_) => break,
                };
                let Ok(item) = next else { break };
                let result = item.and_then(|(chunk, batch)| Ok((chunk, model.run(&card.input.name, batch)?)));
                let failed = result.is_err();
                if out_tx.send(result).is_err() || failed {
                    break;
                }
            });
        }
        drop((out_tx, rx));
        let (tissue_name, lymph_name) = (&card.outputs[0].name, &card.outputs[1].name);
        let mut done = 0;
        for item in out_rx {
            let (chunk, outputs) = item?;
            let find = |n: &str| {
                outputs
                    .iter()
                    .find(|(name, _)| name == n)
                    .map(|(_, a)| a)
                    .ok_or(format!("the model gave no output {n}"))
            };
            let (tissue, lymph) = (find(tissue_name)?, find(lymph_name)?);
            for (b, origin) in chunk.iter().enumerate() {
                accumulate(&mut grid, card, tissue, lymph, b, *origin, tile_l0);
            }
            done += chunk.len();
            progress(done, total);
        }
        Ok(())
    })?;

    let rule = Rule {
        itil_per_mm2: card.thresholds.itil_per_mm2,
        stil_per_mm2: card.thresholds.stil_per_mm2,
        min_epithelium_mm2: card.thresholds.min_tumour_mm2,
        slide_share: 1.0 / 3.0,
    };
    let (mut inflamed, mut excluded, mut desert) = (0u32, 0u32, 0u32);
    for cell in grid.cells.iter_mut() {
        cell.class = rule.cell(cell.epithelium_mm2, cell.itil_density(), cell.stil_density());
        match cell.class {
            Some(CellClass::Inflamed) => inflamed += 1,
            Some(CellClass::Excluded) => excluded += 1,
            Some(CellClass::Desert) => desert += 1,
            None => {}
        }
    }
    let scored = inflamed + excluded + desert;
    let share = |n: u32| if scored == 0 { 0.0 } else { f64::from(n) / f64::from(scored) };
    let mut flags = Vec::new();
    if total == 0 {
        flags.push("too_little_tissue".to_string());
    }
    if scored == 0 {
        flags.push("too_little_tumour".to_string());
    }
    let scored_cells: Vec<&Cell> = grid.cells.iter().filter(|c| c.class.is_some()).collect();
    Ok(SlideResult {
        phenotype: rule.slide(inflamed, excluded, desert),
        inflamed_share: share(inflamed),
        excluded_share: share(excluded),
        desert_share: share(desert),
        itil_density_median: median(scored_cells.iter().filter_map(|c| c.itil_density()).collect()),
        stil_density_median: median(scored_cells.iter().filter_map(|c| c.stil_density()).collect()),
        grid_cells_scored: scored,
        tiles: total as u32,
        flags,
        cells: grid.cells,
        cell_px: grid.cell_px,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card() -> ModelCard {
        ModelCard::parse(&crate::card::tests::fixture("tiny-fcn.json")).unwrap()
    }

    #[test]
    fn the_heatmap_image_colours_tissue_of_scored_cells_only() {
        // A 64×32 px image (one level, so the mask is the image itself): tissue (pink) on the
        // left half, glass on the right; grid cells of 16 px, the first two columns scored.
        let mut img = RgbImage::new(64, 32, [250, 250, 250]);
        for y in 0..32 {
            for x in 0..32 {
                let i = (y * 64 + x) * 3;
                img.data[i..i + 3].copy_from_slice(&[200, 120, 170]);
            }
        }
        let path = std::env::temp_dir().join(format!("evidentia-heat-{}.png", std::process::id()));
        img.write_png(std::fs::File::create(&path).unwrap()).unwrap();
        let reader = evidentia_wsi::reader::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let map =
            serde_json::json!({"cell_px": 16.0, "cells": [[0, 0, "inflamed"], [1, 1, "desert"], [3, 0, "excluded"]]});
        let (w, h, rgba) = heatmap_rgba(reader.as_ref(), &map).unwrap();
        assert_eq!((w, h), (64, 32));
        let px = |x: usize, y: usize| rgba[(y * 64 + x) * 4..(y * 64 + x) * 4 + 4].to_vec();
        assert_eq!(px(3, 3), [0xd6, 0x27, 0x28, 255], "tissue of an inflamed cell");
        assert_eq!(px(20, 20), [0x1f, 0x77, 0xb4, 255], "tissue of a desert cell");
        assert_eq!(px(20, 3)[3], 0, "tissue of a cell not scored");
        assert_eq!(px(50, 3)[3], 0, "glass of a scored cell (3, 0)");
    }

    #[test]
    fn outputs_become_areas_and_lymphocyte_centres_in_their_grid_cell() {
        let card = card();
        // One 64×64 output of a tile covering 512 level-0 px at 0.5 µm/px (256 µm): the left
        // half epithelium, the right half stroma; two lymphocyte peaks on the left, one on the
        // right, and a plateau of two equal neighbours counted once.
        let mut tissue = ArrayD::<f32>::zeros(ndarray::IxDyn(&[1, 3, 64, 64]));
        let mut lymph = ArrayD::<f32>::zeros(ndarray::IxDyn(&[1, 1, 64, 64]));
        for y in 0..64 {
            for x in 0..64 {
                tissue[[0, if x < 32 { 1 } else { 2 }, y, x]] = 0.9;
            }
        }
        for (y, x, v) in [(10, 10, 0.9), (20, 20, 0.8), (40, 50, 0.7), (50, 40, 0.6), (50, 41, 0.6), (5, 5, 0.3)] {
            lymph[[0, 0, y, x]] = v;
        }
        let mut grid = Grid::new(3000, 3000, 0.5); // cells of 2000 px: 2 × 2
        accumulate(&mut grid, &card, &tissue, &lymph, 0, (0, 0), 512.0);
        let c = &grid.cells[0];
        let half_mm2 = 0.256 * 0.256 / 2.0;
        assert!((c.epithelium_mm2 - half_mm2).abs() < 1e-9 && (c.stroma_mm2 - half_mm2).abs() < 1e-9, "{c:?}");
        assert_eq!((c.itil, c.stil), (2, 2), "peaks ≥ 0.5 only, a plateau once");
        assert!(grid.cells[1..].iter().all(|c| c.epithelium_mm2 == 0.0));
        // A tile straddling the first cell boundary puts its pixels in the cell they fall in.
        let mut grid = Grid::new(3000, 3000, 0.5);
        accumulate(&mut grid, &card, &tissue, &lymph, 0, (1744, 0), 512.0);
        assert!(grid.cells[0].epithelium_mm2 > 0.0 && grid.cells[1].stroma_mm2 > 0.0);
    }
}
