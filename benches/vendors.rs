//! Vendor-format benchmark (issue 24): an NDPI slide (read by our own code, by restart interval) and a
//! DICOM series (read by our own DICOM reader) against OpenSlide reading the same files in the
//! same run (openslide-python + openslide-bin, `tools/bench_openslide.py`):
//! 1. level 0 through `read_region` in 2048-px regions, Mpx/s;
//! 2. Deep Zoom tiles of the full-resolution level (254 px + 1 overlap, JPEG q80) rendered and
//!    encoded one after the other: cold (a freshly opened slide, no tile cache) and warm (ours:
//!    the server's tile cache; OpenSlide's: its own cache of decoded tiles), tiles/s.
//!
//! The files are made once under `target/bench-data/`: the NDPI by `tools/make_vendor_fixtures.py
//! --ndpi` (4096 × 3072 by default), the DICOM series by exporting a synthetic 20,000 × 15,000
//! slide with `dicomwrite` (its JPEG tiles become the frames).
//!
//! ```sh
//! EVIDENTIA_BENCH_PYTHON=/path/to/venv/bin/python cargo bench --bench vendors
//! ```
//! (the Python needs numpy, pillow, tifffile, openslide-python and openslide-bin; `tools/bench
//! vendors` makes that venv; EVIDENTIA_OPENSLIDE_LIB is taken from it when unset).

// Test and benchmark code: a failed unwrap is a failed run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use evidentia::slides::dicomwrite::{self, SeriesIds};
use evidentia::slides::dzi::{DeepZoom, TileServer};
use evidentia::slides::reader::{self, SlideReader};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn python() -> String {
    std::env::var("EVIDENTIA_BENCH_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&root)?;
    let ndpi = root.join("bench-4096x3072.ndpi");
    if !ndpi.exists() {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/make_vendor_fixtures.py");
        let out =
            Command::new(python()).arg(script).args(["--ndpi", ndpi.to_str().unwrap(), "4096", "3072"]).output()?;
        anyhow::ensure!(out.status.success(), "writing the NDPI: {}", String::from_utf8_lossy(&out.stderr));
    }
    let dicom = root.join("bench-dicom-20000x15000");
    if !dicom.join("level-0.dcm").exists() {
        let svs = evidentia::slides::synth::kept_slide(&root, "bench-20000x15000.svs", 20000, 15000, 2026)?;
        let slide = reader::open(&svs)?;
        let levels = slide.info().levels.len();
        let ids =
            SeriesIds::with_uids(("BENCH", "BENCH"), "BENCH", "BENCH-S01", levels, ("20261207", "000000"), |what| {
                dicomwrite::uid_of(&format!("bench/{what}"))
            });
        dicomwrite::write_series(slide.as_ref(), &ids, &dicom)?;
    }
    println!("(machine: {} cores)", std::thread::available_parallelism().map_or(1, |n| n.get()));
    for (what, path) in [
        ("NDPI, 4096 x 3072 (our own reader)", ndpi),
        ("DICOM, 20000 x 15000 (our DICOM reader)", dicom.join("level-0.dcm")),
    ] {
        let ours = measure(&path)?;
        let theirs = openslide_python(&path)?;
        println!("{what}:");
        println!("  {:<34} {:>10} {:>10} {:>8}", "", "Evidentia", "OpenSlide", "ratio");
        for (name, a, b) in [
            ("level 0 read_region, Mpx/s", ours.0, theirs["region_mpx_s"].as_f64().unwrap()),
            ("Deep Zoom tiles/s, cold", ours.1, theirs["dz_cold_tiles_s"].as_f64().unwrap()),
            ("Deep Zoom tiles/s, warm", ours.2, theirs["dz_warm_tiles_s"].as_f64().unwrap()),
        ] {
            println!("  {name:<34} {a:>10.1} {b:>10.1} {:>7.2}x", a / b);
        }
    }
    println!("(ratio: Evidentia's rate / OpenSlide's; above 1 is faster)");
    Ok(())
}

/// Our Mpx/s at level 0 and Deep Zoom tiles/s, cold then warm.
fn measure(path: &Path) -> anyhow::Result<(f64, f64, f64)> {
    let slide = reader::open(path)?;
    let (w, h) = (slide.info().width as u32, slide.info().height as u32);
    let t = Instant::now();
    for y in (0..h).step_by(2048) {
        for x in (0..w).step_by(2048) {
            std::hint::black_box(slide.read_region(0, i64::from(x), i64::from(y), 2048.min(w - x), 2048.min(h - y))?);
        }
    }
    let region = f64::from(w) * f64::from(h) / 1e6 / t.elapsed().as_secs_f64();
    drop(slide);
    // Deep Zoom as the server renders it: a fresh reader and an empty tile cache, then again.
    let server = TileServer::new(1 << 30);
    let open = || -> Result<Box<dyn SlideReader>, reader::SlideError> { reader::open(path) };
    let dz = DeepZoom { width: u64::from(w), height: u64::from(h) };
    let level = dz.levels() - 1;
    let (cols, rows) = dz.tiles(level);
    let mut rates = Vec::new();
    for _ in 0..2 {
        let t = Instant::now();
        for r in 0..rows {
            for c in 0..cols {
                std::hint::black_box(server.tile("bench", &open, level, c, r)?);
            }
        }
        rates.push((cols * rows) as f64 / t.elapsed().as_secs_f64());
    }
    Ok((region, rates[0], rates[1]))
}

fn openslide_python(path: &Path) -> anyhow::Result<serde_json::Value> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/bench_openslide.py");
    let out = Command::new(python()).arg(script).arg(path).output()?;
    anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Ok(serde_json::from_slice(&out.stdout)?)
}
