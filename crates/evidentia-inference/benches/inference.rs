//! Inference benchmark (issue: AI biomarker), on a 20,000 × 20,000 synthetic slide at 0.5 µm/px
//! (made once and kept under `target/bench-data/`) with the bundled demonstration model:
//! 1. Evidentia end to end with ONNX Runtime: `pipeline::analyse` — tissue detection, tile grid,
//!    tiles decoded on one thread while the model runs, outputs gathered on the 1 mm² grid;
//! 2. model only: the same batches, decoded beforehand, through the same session (the limit);
//! 3. the Python reference (`tools/bench_inference.py`): the same tiles decoded with tifffile and
//!    run through the onnxruntime Python package, same batch size and threads, in the same run;
//! 4. Evidentia end to end with tract (one single-threaded session per core), in a child
//!    process because the backend is chosen once per process.
//!
//! ```sh
//! cargo bench -p evidentia-inference --bench inference  # 20000x20000, batch 8
//! cargo bench -p evidentia-inference --bench inference -- 8000x8000 --batch 16 --model tests/fixtures/models/tiny-fcn
//! ```
//! Python: `EVIDENTIA_BENCH_PYTHON` (default `python3`) with numpy, tifffile, imagecodecs and
//! onnxruntime; ONNX Runtime for Evidentia as everywhere (`EVIDENTIA_ORT_LIB`, or the wheel).

// Test and benchmark code: a failed unwrap is a failed run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use evidentia_inference::card::ModelCard;
use evidentia_inference::engine::{self, BackendKind, Model};
use evidentia_inference::pipeline::{self, Options};
use evidentia_wsi::reader;
use evidentia_wsi::synth;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const MODEL: &str = "models/evidentia-demo-til";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let size = args
        .iter()
        .find(|a| a.contains('x') && a.chars().all(|c| c.is_ascii_digit() || c == 'x'))
        .cloned()
        .unwrap_or("20000x20000".into());
    let (w, h): (u32, u32) =
        size.split_once('x').and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?))).unwrap_or((20000, 20000));
    let batch: usize =
        args.iter().position(|a| a == "--batch").and_then(|i| args.get(i + 1)?.parse().ok()).unwrap_or(8);
    // The workspace root: the model, the Python reference and target/bench-data are there.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize()?;
    let data = root.join("target/bench-data");
    std::fs::create_dir_all(&data)?;
    let slide = synth::kept_slide(&data, &format!("infer-{w}x{h}.svs"), w, h, 2027)?;
    // `--model PREFIX`: PREFIX.onnx with its card PREFIX.json (default: the demonstration model).
    let model = args.iter().position(|a| a == "--model").and_then(|i| args.get(i + 1)).cloned().unwrap_or(MODEL.into());
    let (onnx, card_path) = (root.join(format!("{model}.onnx")), root.join(format!("{model}.json")));
    let card = ModelCard::parse(&std::fs::read(&card_path)?)?;
    let opts = Options { batch_size: batch, ..Default::default() };

    if std::env::var("EVIDENTIA_BENCH_CHILD").is_ok() {
        // The tract run: end to end only, one JSON line for the parent.
        let (tiles, secs) = end_to_end(&slide, &onnx, &card, opts)?;
        println!("{}", serde_json::json!({"tiles": tiles, "seconds": secs}));
        return Ok(());
    }
    let backend = engine::backend().map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        backend.kind == BackendKind::OnnxRuntime,
        "ONNX Runtime not found: pip install onnxruntime or set EVIDENTIA_ORT_LIB"
    );
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "slide {w}x{h} px at 0.5 µm/px, model {} ({}), batch {batch}, {threads} threads",
        card.key(),
        backend.kind.as_str()
    );

    // 1. Evidentia end to end (ONNX Runtime).
    let (tiles, e2e) = end_to_end(&slide, &onnx, &card, opts)?;
    println!("evidentia end to end (onnxruntime): {tiles} tiles in {e2e:.2} s = {:.1} tiles/s", tiles as f64 / e2e);

    // 2. Model only: the same batches decoded beforehand, through one session like the pipeline's.
    let r = reader::open(&slide)?;
    let plan = pipeline::plan(r.as_ref(), &card, opts).map_err(anyhow::Error::msg)?;
    let t = Instant::now();
    let batches: Vec<_> = plan
        .origins
        .chunks(batch)
        .map(|c| pipeline::read_batch(r.as_ref(), &card, c, plan.tile_l0))
        .collect::<Result<_, _>>()
        .map_err(anyhow::Error::msg)?;
    let decode = t.elapsed().as_secs_f64();
    println!("tile decoding alone (one thread): {decode:.2} s = {:.1} ms per tile", decode * 1000.0 / tiles as f64);
    let mut model = Model::load(&onnx, threads).map_err(anyhow::Error::msg)?;
    model.run(&card.input.name, batches[0].clone()).map_err(anyhow::Error::msg)?; // warm-up
    let t = Instant::now();
    for b in &batches {
        model.run(&card.input.name, b.clone()).map_err(anyhow::Error::msg)?;
    }
    let model_only = t.elapsed().as_secs_f64();
    drop(batches);
    println!("model only (same session, pre-decoded): {:.2} s = {:.1} tiles/s", model_only, tiles as f64 / model_only);

    // 3. The Python reference on the same tiles.
    let spec = data.join("inference-tiles.json");
    std::fs::write(
        &spec,
        serde_json::to_vec(&serde_json::json!({
            "slide": slide, "model": onnx, "origins": plan.origins, "tile_l0": plan.tile_l0.round() as i64,
            "tile_size": card.tile_size, "normalisation": card.normalisation, "batch": batch, "threads": threads,
        }))?,
    )?;
    let python = std::env::var("EVIDENTIA_BENCH_PYTHON").unwrap_or("python3".into());
    let out = Command::new(&python).arg(root.join("tools/bench_inference.py")).arg(&spec).output()?;
    anyhow::ensure!(out.status.success(), "{python}: {}", String::from_utf8_lossy(&out.stderr));
    let py: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let py_secs = py["seconds"].as_f64().unwrap_or(f64::NAN);
    println!(
        "python reference (tifffile + onnxruntime {}): {:.2} s = {:.1} tiles/s (decode {:.2} s, model {:.2} s; model only {:.2} s)",
        py["onnxruntime"].as_str().unwrap_or("?"),
        py_secs,
        tiles as f64 / py_secs,
        py["decode_seconds"].as_f64().unwrap_or(f64::NAN),
        py["infer_seconds"].as_f64().unwrap_or(f64::NAN),
        py["model_only_seconds"].as_f64().unwrap_or(f64::NAN),
    );

    // 4. tract, in a child process.
    let out = Command::new(std::env::current_exe()?)
        .args(&args)
        .env("EVIDENTIA_BENCH_CHILD", "tract")
        .env("EVIDENTIA_INFERENCE_BACKEND", "tract")
        .output()?;
    anyhow::ensure!(out.status.success(), "tract run: {}", String::from_utf8_lossy(&out.stderr));
    let tract: serde_json::Value =
        serde_json::from_slice(out.stdout.split(|b| *b == b'\n').find(|l| l.starts_with(b"{")).unwrap_or(b"{}"))?;
    let tract_secs = tract["seconds"].as_f64().unwrap_or(f64::NAN);
    println!(
        "evidentia end to end (tract, a session per core): {tract_secs:.2} s = {:.1} tiles/s",
        tiles as f64 / tract_secs
    );

    println!("\nratios: evidentia (onnxruntime) / python end to end = {:.2}x (target >= 1.2)", py_secs / e2e);
    println!("        evidentia end to end / model only throughput = {:.2} (target >= 0.8)", model_only / e2e);
    println!("        tract / onnxruntime end to end throughput    = {:.2}", e2e / tract_secs);
    // One line for tools/bench, which runs rounds and writes the table in BENCHMARKS.md.
    let per_s = |secs: f64| tiles as f64 / secs;
    println!(
        "{}",
        serde_json::json!({"bench": "inference", "tiles": tiles, "threads": threads,
            "evidentia_ort": per_s(e2e), "model_only": per_s(model_only), "python": per_s(py_secs),
            "evidentia_tract": per_s(tract_secs), "decode_ms_per_tile": decode * 1000.0 / tiles as f64})
    );
    Ok(())
}

/// One whole-slide analysis with fresh sessions (warmed up on one batch): tiles and seconds.
fn end_to_end(slide: &Path, onnx: &Path, card: &ModelCard, opts: Options) -> anyhow::Result<(u32, f64)> {
    let mut sessions = pipeline::sessions(onnx).map_err(anyhow::Error::msg)?;
    let r = reader::open(slide)?;
    let warm = engine::check_batch(card);
    for s in sessions.iter_mut() {
        s.run(&card.input.name, warm.clone()).map_err(anyhow::Error::msg)?;
    }
    let t = Instant::now();
    let result =
        pipeline::analyse(r.as_ref(), &mut sessions, card, opts, &mut |_, _| {}).map_err(anyhow::Error::msg)?;
    Ok((result.tiles, t.elapsed().as_secs_f64()))
}
