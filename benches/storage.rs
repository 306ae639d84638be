//! Deep Zoom tiles from object storage against the same slide on the local disk (issue 23):
//! an 8,000 × 6,000 synthetic SVS stored both in a data dir and in a real S3-compatible server
//! (a throw-away Garage started with `tools/garage`, on this machine), every tile of the three
//! most detailed Deep Zoom levels rendered and JPEG-encoded from each (the server's tile cache
//! left out, so every tile is read and drawn):
//! - cold: a new storage handle (empty block cache) and a newly opened slide, each tile once;
//! - warm: the same tiles again through the same open slide (blocks in the cache).
//!
//! The local file is read through the operating system's page cache in both (it was just
//! written): the comparison is the object store's cost against no I/O cost at all.
//! Prints a report and ends with one JSON line.
//!
//! ```sh
//! cargo bench --bench storage              # 3 rounds; garage from tools/garage's search
//! cargo bench --bench storage -- 5         # rounds
//! ```

// Test and benchmark code: a failed unwrap is a failed run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use evidentia::slides::dzi::{self, DeepZoom};
use evidentia::storage::Storage;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const W: u32 = 8000;
const H: u32 = 6000;

fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(3);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&root)?;
    let slide = evidentia::slides::synth::kept_slide(&root, &format!("bench-{W}x{H}.svs"), W, H, 2026)?;
    let sha = evidentia::slides::ingest::sha256_file(&slide)?;
    let key = format!("slides/{sha}.svs");

    // The object store: a throw-away Garage, its settings read from what tools/garage prints.
    let s3_dir = tempfile::tempdir()?;
    let garage = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/garage");
    let out = Command::new(&garage).arg("start").arg(s3_dir.path()).output()?;
    anyhow::ensure!(out.status.success(), "tools/garage start: {}", String::from_utf8_lossy(&out.stderr));
    let _stop = Stop(garage.clone(), s3_dir.path().to_path_buf());
    let mut bucket = String::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some((name, value)) = line.strip_prefix("export ").and_then(|l| l.split_once('=')) {
            if name == "EVIDENTIA_TEST_STORAGE" {
                bucket = value.to_string();
            } else {
                // Read by the object store client; set before any thread that reads them starts.
                std::env::set_var(name, value);
            }
        }
    }
    let data_dir = tempfile::tempdir()?;
    let local = Storage::local(data_dir.path());
    local.put_file(&key, &slide)?;
    let s3_url = format!("{bucket}/bench");
    Storage::parse(Some(&s3_url), data_dir.path())?.put_file(&key, &slide)?;

    let dz = DeepZoom { width: u64::from(W), height: u64::from(H) };
    let top = dz.levels() - 1;
    let tiles: Vec<(u32, u64, u64)> = (top - 2..=top)
        .flat_map(|level| {
            let (cols, rows) = dz.tiles(level);
            (0..rows).flat_map(move |row| (0..cols).map(move |col| (level, col, row)))
        })
        .collect();
    println!("{} tiles (Deep Zoom levels {}–{top}) of an {W} × {H} SVS, {} rounds", tiles.len(), top - 2, rounds);

    let mut results: Vec<[f64; 4]> = Vec::new();
    for round in 0..rounds {
        let (local_cold, local_warm, _) = pass(&Storage::local(data_dir.path()), &key, &tiles)?;
        let s3 = Storage::parse(Some(&s3_url), data_dir.path())?;
        let (s3_cold, s3_warm, requests) = pass(&s3, &key, &tiles)?;
        println!(
            "round {}: tiles/s local cold {local_cold:.1}, warm {local_warm:.1}; object storage cold {s3_cold:.1} ({requests} blocks of 256 KiB fetched), warm {s3_warm:.1}; cold {:.2}x, warm {:.2}x slower",
            round + 1,
            local_cold / s3_cold,
            local_warm / s3_warm
        );
        results.push([local_cold, local_warm, s3_cold, s3_warm]);
    }
    let median = |i: usize| {
        let mut v: Vec<f64> = results.iter().map(|r| r[i]).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let ratio = |a: usize, b: usize| {
        let mut v: Vec<f64> = results.iter().map(|r| r[a] / r[b]).collect();
        v.sort_by(f64::total_cmp);
        (v[0], v[v.len() / 2], v[v.len() - 1])
    };
    let (cold_min, cold_med, cold_max) = ratio(0, 2);
    let (warm_min, warm_med, warm_max) = ratio(1, 3);
    println!(
        "object storage against the local file, min / median / max: cold {cold_min:.2} / {cold_med:.2} / {cold_max:.2}x (goal within 3x), warm {warm_min:.2} / {warm_med:.2} / {warm_max:.2}x (goal within 1.2x)"
    );
    println!(
        "{}",
        serde_json::json!({
            "tiles": tiles.len(), "rounds": rounds,
            "local_cold_rate": median(0), "local_warm_rate": median(1),
            "s3_cold_rate": median(2), "s3_warm_rate": median(3),
            "cold_ratio": cold_med, "warm_ratio": warm_med,
        })
    );
    Ok(())
}

/// (cold tiles/s, warm tiles/s, blocks fetched) through `storage`.
fn pass(storage: &Storage, key: &str, tiles: &[(u32, u64, u64)]) -> anyhow::Result<(f64, f64, u64)> {
    let t = Instant::now();
    let slide = evidentia::slides::reader::open_source(storage.open(key)?)?;
    for &(level, col, row) in tiles {
        std::hint::black_box(dzi::encode_jpeg(&dzi::render_tile(slide.as_ref(), level, col, row)?)?);
    }
    let cold = tiles.len() as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for &(level, col, row) in tiles {
        std::hint::black_box(dzi::encode_jpeg(&dzi::render_tile(slide.as_ref(), level, col, row)?)?);
    }
    let warm = tiles.len() as f64 / t.elapsed().as_secs_f64();
    Ok((cold, warm, storage.cache_stats().1))
}

/// Stops the Garage when the bench ends, however it ends.
struct Stop(PathBuf, PathBuf);

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = Command::new(&self.0).arg("stop").arg(&self.1).status();
    }
}
