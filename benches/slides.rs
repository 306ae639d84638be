//! Slide benchmark (issue: slides), on a 40,000 × 30,000 synthetic slide (made once and kept
//! under `target/bench-data/`):
//! 1. full-slide region read throughput at level 0 (2048-px regions through `read_region`)
//!    against simply decoding the same JPEG tiles in a loop (the floor), in megapixels/s;
//! 2. Deep Zoom tiles served per second by the release server in a second process, loaded by
//!    `wrk` (a third process, 64 connections) with a signed-in session: cold cache (every tile
//!    requested once) and warm (the same tiles again), with their p99 latency.
//!
//! Ends with one JSON line for `tools/bench slides`.
//!
//! ```sh
//! apt-get install wrk
//! cargo build --release --bin evidentia      # the server (EVIDENTIA_BENCH_EXE names another)
//! cargo bench --bench slides                 # 40000x30000
//! cargo bench --bench slides -- 8000x6000    # another size
//! ```

// Test and benchmark code: a failed unwrap is a failed run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use evidentia::slides::dzi::DeepZoom;
use evidentia::slides::reader::{self, DirectoryRole};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let size = std::env::args().skip(1).find(|a| a.contains('x')).unwrap_or_else(|| "40000x30000".into());
    let (w, h) =
        size.split_once('x').and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?))).unwrap_or((40000, 30000));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&root)?;
    let slide = evidentia::slides::synth::kept_slide(&root, &format!("bench-{w}x{h}.svs"), w, h, 2026)?;
    let (region, floor) = region_throughput(&slide)?;
    let (ingest, cold, warm) = tile_serving(&slide, &root)?;
    println!(
        "{}",
        serde_json::json!({
            "width": w, "height": h, "region_read": region, "tile_decode_floor": floor, "ingest": ingest,
            "cold_rate": cold.rate, "cold_p99_ms": cold.p99_ms, "cold_tiles": cold.requests,
            "warm_rate": warm.rate, "warm_p99_ms": warm.p99_ms,
        })
    );
    Ok(())
}

/// Seconds to read level 0 through `read_region`, and to only decode its tiles (the floor).
fn region_throughput(path: &Path) -> anyhow::Result<(f64, f64)> {
    let slide = reader::open(path)?;
    let tiff = slide.tiff().ok_or_else(|| anyhow::anyhow!("not a TIFF"))?;
    let (dir, d) = tiff
        .directories()
        .iter()
        .enumerate()
        .find(|(_, d)| matches!(d.role, DirectoryRole::Level(0)))
        .ok_or_else(|| anyhow::anyhow!("no level 0"))?;
    let mpx = (d.width as f64 * d.height as f64) / 1e6;

    // The floor: every level-0 tile read and decoded, nothing else.
    let t = Instant::now();
    for i in 0..d.chunk_offsets.len() {
        let raw = tiff.raw_chunk(dir, i)?;
        std::hint::black_box(evidentia::slides::jpeg::decode_rgb(
            &raw,
            d.jpeg_tables.as_deref(),
            Some(d.photometric),
            1 << 26,
        )?);
    }
    let floor = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let step = 2048u32;
    for y in (0..d.height).step_by(step as usize) {
        for x in (0..d.width).step_by(step as usize) {
            let (rw, rh) = (step.min(d.width - x), step.min(d.height - y));
            std::hint::black_box(slide.read_region(0, x as i64, y as i64, rw, rh)?);
        }
    }
    let ours = t.elapsed().as_secs_f64();
    println!("region read, level 0 of {}x{} ({mpx:.0} Mpx, {} JPEG tiles):", d.width, d.height, d.chunk_offsets.len());
    println!("  read_region 2048x2048  {ours:>7.2} s  {:>7.1} Mpx/s", mpx / ours);
    println!("  tile decode (floor)    {floor:>7.2} s  {:>7.1} Mpx/s", mpx / floor);
    println!("  read_region / floor    {:.2}x the floor's time", ours / floor);
    Ok((ours, floor))
}

/// The release server: `EVIDENTIA_BENCH_EXE`, else `release/evidentia` in cargo's target folder.
fn bin() -> PathBuf {
    if let Some(exe) = std::env::var_os("EVIDENTIA_BENCH_EXE") {
        return PathBuf::from(exe);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("release/evidentia")
}

fn run(args: &[&str], data: &Path) -> anyhow::Result<String> {
    let out = Command::new(bin()).arg("--data-dir").arg(data).args(args).env("RUST_LOG", "warn").output()?;
    if !out.status.success() {
        anyhow::bail!("evidentia {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// The ingest's seconds, then wrk's figures cold and warm.
fn tile_serving(slide: &Path, root: &Path) -> anyhow::Result<(f64, WrkResult, WrkResult)> {
    if !bin().exists() {
        anyhow::bail!("build the server first: cargo build --release --bin evidentia ({} is missing)", bin().display());
    }
    // A demo data dir (no demo slides) with the bench slide ingested on the first demo case.
    let data = root.join("tiles-data");
    let _ = std::fs::remove_dir_all(&data);
    run(&["demo", "--seed-only", "--slides", "0"], &data)?;
    let subjects = evidentia::demo::truth::subjects(evidentia::demo::DEMO_SUBJECTS, evidentia::demo::truth::SEED);
    let s = subjects.iter().find(|s| s.site == "SNUBH").ok_or_else(|| anyhow::anyhow!("no subject"))?;
    let manifest = root.join("manifest.csv");
    let name = slide.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    std::fs::write(&manifest, format!("file,subject_id,site,stain\n{name},{},SNUBH,H&E\n", s.hospital_id))?;
    let t = Instant::now();
    run(
        &[
            "slides",
            "ingest",
            "--study",
            "LUNG-IO-01",
            "--manifest",
            manifest.to_str().unwrap_or_default(),
            slide.to_str().unwrap_or_default(),
        ],
        &data,
    )?;
    let ingest = t.elapsed().as_secs_f64();
    println!("ingest (de-identified copy) of {name}: {ingest:.1} s");

    let token = {
        let cfg = evidentia::config::Config::from_env("127.0.0.1:0".into(), data.clone());
        let pool = evidentia::startup::open_database(&cfg)?;
        let mut conn = pool.get()?;
        let actor = evidentia::auth::users::actor_for_username(&mut conn, "manager")?;
        // A browser's session (API tokens are for /api/ only, and tiles are for the viewer).
        let user_id = actor.user_id.ok_or_else(|| anyhow::anyhow!("manager has no account"))?;
        evidentia::auth::sessions::create(&mut conn, user_id)?
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut server = Command::new(bin())
        .args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", "warn")
        .env("EVIDENTIA_TILE_CACHE_MB", "4096")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let info = reader::open(slide)?.info().clone();
    let dz = DeepZoom { width: info.width, height: info.height };
    let top = dz.levels() - 1;
    let (cols, rows) = dz.tiles(top);
    // Full-resolution tiles in a shuffled but fixed order (a viewer panning about).
    let mut tiles: Vec<(u64, u64)> = (0..rows).flat_map(|r| (0..cols).map(move |c| (c, r))).collect();
    let mut state = 0x9E3779B97F4A7C15u64;
    for i in (1..tiles.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        tiles.swap(i, (state % (i as u64 + 1)) as usize);
    }
    let label = "SNUBH-0001-S01";
    let paths: Vec<String> = tiles
        .iter()
        .map(|(c, r)| format!("/studies/LUNG-IO-01/slides/{label}/dzi/slide_files/{top}/{c}_{r}.jpeg"))
        .collect();
    let result = (|| -> anyhow::Result<(f64, WrkResult, WrkResult)> {
        let cold = wrk(root, &base, &token, &paths, "cold", 10)?;
        let served = cold.requests.min(paths.len());
        let warm = wrk(root, &base, &token, &paths[..served], "warm", 10)?;
        println!("Deep Zoom tiles (254 px + overlap, JPEG q80) from level {top}, wrk -t2 -c64 from another process:");
        println!(
            "  cold cache  {:>8.0} tiles/s  (p99 {:.1} ms, {} distinct tiles)",
            cold.rate, cold.p99_ms, cold.requests
        );
        println!("  warm cache  {:>8.0} tiles/s  (p99 {:.1} ms, the same {served} tiles)", warm.rate, warm.p99_ms);
        Ok((ingest, cold, warm))
    })();
    let _ = server.kill();
    let _ = server.wait();
    result
}

struct WrkResult {
    rate: f64,
    requests: usize,
    p99_ms: f64,
}

/// Runs wrk with a script that walks `paths` once per thread slice (no tile asked twice while
/// cold), for `secs` seconds or until the list is done.
fn wrk(root: &Path, base: &str, token: &str, paths: &[String], name: &str, secs: u32) -> anyhow::Result<WrkResult> {
    let list = root.join(format!("{name}-paths.txt"));
    std::fs::write(&list, paths.join("\n"))?;
    let script = root.join(format!("{name}.lua"));
    let mut f = std::fs::File::create(&script)?;
    write!(
        f,
        r#"
local threads = {{}}
local counter = 0
function setup(thread) thread:set("id", counter); counter = counter + 1; table.insert(threads, thread) end
function init(args)
  paths = {{}}
  for line in io.lines("{list}") do table.insert(paths, line) end
  n = #paths; step = 2; i = id + 1; done = 0
end
function request()
  if i > n then i = ((i - 1) % step) + 1 end
  local p = paths[i]; i = i + step
  return wrk.format("GET", p, {{["Cookie"] = "ev_session={token}"}})
end
function response(status) if status ~= 200 then print("status " .. status) end end
"#,
        list = list.display()
    )?;
    drop(f);
    let out = Command::new("wrk")
        .args(["-t2", "-c64", &format!("-d{secs}s"), "--latency", "-s"])
        .arg(&script)
        .arg(base)
        .output()
        .map_err(|e| anyhow::anyhow!("wrk: {e} (apt-get install wrk)"))?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if text.contains("status ") {
        anyhow::bail!("some tile requests failed:\n{text}");
    }
    let rate = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("wrk printed no rate:\n{text}"))?;
    let requests = text
        .lines()
        .find_map(|l| l.split_once(" requests in ").map(|(n, _)| n.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    // "     99%   12.34ms" in the latency distribution.
    let p99_ms = text
        .lines()
        .find_map(|l| {
            let v = l.trim().strip_prefix("99%")?.trim();
            let (number, scale) = if let Some(us) = v.strip_suffix("us") {
                (us, 0.001)
            } else if let Some(ms) = v.strip_suffix("ms") {
                (ms, 1.0)
            } else {
                (v.strip_suffix('s')?, 1000.0)
            };
            number.parse::<f64>().ok().map(|n| n * scale)
        })
        .ok_or_else(|| anyhow::anyhow!("wrk printed no p99:\n{text}"))?;
    Ok(WrkResult { rate, requests, p99_ms })
}
