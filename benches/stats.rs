//! Statistics benchmark: every analysis of the statistics engine on a generated reader study of
//! 100,000 subjects (survival times in whole days, so tied as in real data), against the Python
//! reference stack (pandas + statsmodels + scikit-learn + lifelines + pingouin,
//! `tools/bench_stats.py`) doing the same analyses on the same file in the same run. Target
//! (issue 20): `evidentia stats batch` ≥ 10× faster than Python and under 0.5 s in total.
//!
//!     EVIDENTIA_BENCH_PYTHON=/path/to/venv/bin/python EVIDENTIA_BENCH_EXE=target/release/evidentia \
//!         cargo bench --bench stats
//!
//! Python: `EVIDENTIA_BENCH_PYTHON` (default `python3`) with pandas, numpy, scipy, statsmodels,
//! scikit-learn, lifelines and pingouin. Evidentia is timed twice: the whole `evidentia stats batch`
//! process (`EVIDENTIA_BENCH_EXE`, when set: start, read, every analysis, JSON out) and each analysis
//! in this process (the breakdown). Python's total excludes its imports. Every side reads the CSV
//! inside its timed work and takes the best of 3 repetitions. The run also checks that both
//! computed the same numbers, and ends with one JSON line for `tools/bench`.

// Test and benchmark code: a failed unwrap is a failed run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use evidentia::stats::agreement::Weights;
use evidentia::stats::analysis::{self, Analysis};
use evidentia::stats::frame;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use serde_json::{json, Value};

const SUBJECTS: usize = 100_000;
const REPEATS: usize = 3;
const DAYS_PER_MONTH: f64 = 365.25 / 12.0;

/// A reader study: three readers' phenotype class (0/1/2) near a true class, their consensus,
/// the AI's class and score, a binary reference, three readers' continuous measurement, survival
/// by AI group, and baseline age (2 % missing), sex and site.
fn generate(path: &Path) -> anyhow::Result<()> {
    use std::io::Write;
    let mut rng = ChaCha12Rng::seed_from_u64(7);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(
        out,
        "subject,site,age,sex,reader1,reader2,reader3,consensus,ai_class,reference,ai_positive,ai_score,alt_score,m1,m2,m3,time,event,ai_group"
    )?;
    let groups = ["desert", "excluded", "inflamed"];
    for i in 0..SUBJECTS {
        let truth: u8 = rng.gen_range(0..3);
        let read = |p: f64, rng: &mut ChaCha12Rng| if rng.gen_bool(p) { truth } else { rng.gen_range(0..3) };
        let (r1, r2, r3) = (read(0.75, &mut rng), read(0.7, &mut rng), read(0.8, &mut rng));
        let consensus = if r1 == r2 || r1 == r3 {
            r1
        } else if r2 == r3 {
            r2
        } else {
            r1
        };
        let ai = read(0.85, &mut rng);
        let reference = u8::from(truth == 2);
        let ai_score: f64 = f64::from(reference) * 1.2 + rng.gen::<f64>() * 2.0 + rng.gen::<f64>();
        let alt_score: f64 = f64::from(reference) * 0.8 + rng.gen::<f64>() * 2.0 + rng.gen::<f64>();
        let ai_positive = u8::from(ai_score > 1.9);
        let base: f64 = 50.0 + 100.0 * rng.gen::<f64>();
        let noise = |rng: &mut ChaCha12Rng| (rng.gen::<f64>() - 0.5) * 30.0;
        let (m1, m2, m3) = (base + noise(&mut rng), base + 5.0 + noise(&mut rng), base + noise(&mut rng));
        // Monthly hazards; times recorded in whole days, as follow-up data is.
        let rate = [0.05, 0.035, 0.02][ai as usize];
        let t_event = -(1.0 - rng.gen::<f64>()).ln() / rate;
        let t_censor = 12.0 + rng.gen::<f64>() * 60.0;
        let (months, event) = if t_event <= t_censor { (t_event, 1) } else { (t_censor, 0) };
        let time = (months * DAYS_PER_MONTH).round().max(1.0);
        let age = if rng.gen_bool(0.02) { String::new() } else { format!("{:.0}", 35.0 + rng.gen::<f64>() * 50.0) };
        let sex = if rng.gen_bool(0.5) { "F" } else { "M" };
        writeln!(
            out,
            "S{i:06},SITE{:02},{age},{sex},{r1},{r2},{r3},{consensus},{ai},{reference},{ai_positive},{ai_score:.4},{alt_score:.4},{m1:.2},{m2:.2},{m3:.2},{time},{event},{}",
            rng.gen_range(1..=10),
            groups[ai as usize]
        )?;
    }
    Ok(())
}

fn columns(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The analyses, under the names tools/bench_stats.py gives them.
fn analyses() -> Vec<(&'static str, Analysis)> {
    let s = |v: &str| v.to_string();
    vec![
        (
            "kappa_unweighted",
            Analysis::Kappa { a: s("reader1"), b: s("reader2"), weights: Weights::None, categories: vec![] },
        ),
        (
            "kappa_quadratic",
            Analysis::Kappa { a: s("reader1"), b: s("reader2"), weights: Weights::Quadratic, categories: vec![] },
        ),
        (
            "kappa_ai_consensus",
            Analysis::Kappa { a: s("ai_class"), b: s("consensus"), weights: Weights::None, categories: vec![] },
        ),
        ("fleiss", Analysis::Fleiss { raters: columns(&["reader1", "reader2", "reader3"]) }),
        ("icc", Analysis::Icc { raters: columns(&["m1", "m2", "m3"]) }),
        (
            "diagnostic",
            Analysis::Diagnostic {
                test: s("ai_positive"),
                reference: s("reference"),
                positive: None,
                test_cutoff: None,
                reference_cutoff: None,
            },
        ),
        ("roc", Analysis::Roc { score: s("ai_score"), reference: s("reference"), positive: None }),
        (
            "roc_compare",
            Analysis::RocCompare {
                score_a: s("ai_score"),
                score_b: s("alt_score"),
                reference: s("reference"),
                positive: None,
            },
        ),
        (
            "survival",
            Analysis::Survival {
                time: s("time"),
                event: s("event"),
                group: Some(s("ai_group")),
                reference_group: None,
            },
        ),
        ("cox", Analysis::Cox { time: s("time"), event: s("event"), covariates: columns(&["age", "ai_score"]) }),
        ("bland_altman", Analysis::BlandAltman { a: s("m1"), b: s("m2") }),
        (
            "table1",
            Analysis::Table1 {
                group: s("ai_group"),
                continuous: columns(&["age", "m1"]),
                categorical: columns(&["sex", "site"]),
            },
        ),
        (
            "paired_agreement",
            Analysis::PairedAgreement { reference: s("consensus"), a: s("reader1"), b: s("ai_class") },
        ),
    ]
}

/// Differences between two results (numbers within 1e-6 relative), as JSON paths.
fn differences(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(f64::NAN));
            if (x - y).abs() > 1e-6 * x.abs().max(1.0) {
                out.push(format!("{path}: evidentia {x} vs python {y}"));
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                if let Some(w) = y.get(k) {
                    differences(&format!("{path}.{k}"), v, w, out);
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                differences(&format!("{path}[{i}]"), v, w, out);
            }
        }
        (x, y) if x == y => {}
        (x, y) => out.push(format!("{path}: evidentia {x} vs python {y}")),
    }
}

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("target/bench-data");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join(format!("stats-study-days-{SUBJECTS}.csv"));
    if !file.exists() {
        generate(&file)?;
    }
    println!("study: {} ({SUBJECTS} subjects, {:.1} MB)", file.display(), std::fs::metadata(&file)?.len() as f64 / 1e6);

    let plan = analyses();
    let mut best_total = f64::INFINITY;
    let mut best: Vec<(f64, Value)> = Vec::new();
    let mut best_read = 0.0;
    for _ in 0..REPEATS {
        let t = Instant::now();
        let df = frame::read_csv(&file).map_err(|e| anyhow::anyhow!("{e}"))?;
        let read = t.elapsed().as_secs_f64();
        let mut each = Vec::new();
        for (_, a) in &plan {
            let s = Instant::now();
            let out = analysis::run(&df, a, 0.95).map_err(|e| anyhow::anyhow!("{}: {e}", a.name()))?;
            each.push((s.elapsed().as_secs_f64(), out.to_json()));
        }
        let total = t.elapsed().as_secs_f64();
        if total < best_total {
            (best_total, best, best_read) = (total, each, read);
        }
    }

    let batch_seconds = match std::env::var_os("EVIDENTIA_BENCH_EXE") {
        Some(exe) => Some(time_batch(Path::new(&exe), &dir, &file, &plan, &best)?),
        None => None,
    };

    let python = std::env::var("EVIDENTIA_BENCH_PYTHON").unwrap_or("python3".into());
    let out = Command::new(&python)
        .arg(root.join("tools/bench_stats.py"))
        .arg(&file)
        .args(["--repeat", &REPEATS.to_string()])
        .output()?;
    anyhow::ensure!(out.status.success(), "{python}: {}", String::from_utf8_lossy(&out.stderr));
    let py: Value = serde_json::from_slice(&out.stdout)?;
    let py_total = py["total_seconds"].as_f64().unwrap_or(f64::NAN);

    println!("\n{:<20} {:>12} {:>12} {:>8}", "analysis", "evidentia s", "python s", "ratio");
    let read_py = py["read_csv_seconds"].as_f64().unwrap_or(f64::NAN);
    println!("{:<20} {:>12.4} {:>12.4} {:>7.1}x", "read CSV", best_read, read_py, read_py / best_read);
    let mut mismatches = Vec::new();
    let mut each = serde_json::Map::new();
    for ((name, _), (secs, result)) in plan.iter().zip(&best) {
        let p = py["analyses"][name].as_f64().unwrap_or(f64::NAN);
        println!("{name:<20} {secs:>12.4} {p:>12.4} {:>7.1}x", p / secs);
        differences(name, result, &py["results"][name], &mut mismatches);
        each.insert(name.to_string(), json!({"evidentia": secs, "python": p}));
    }
    println!("{:<20} {:>12.4} {:>12.4} {:>7.1}x", "total", best_total, py_total, py_total / best_total);
    if let Some(batch) = batch_seconds {
        println!(
            "`evidentia stats batch` (the whole process) {batch:.3} s: python / evidentia = {:.1}x (target >= 10; < 0.5 s)",
            py_total / batch
        );
    }
    println!("python stack: {}", py["versions"]);
    if mismatches.is_empty() {
        println!("every result agrees with the Python reference to 1e-6");
    } else {
        println!("{} numbers differ from the Python reference:", mismatches.len());
        for m in &mismatches {
            println!("  {m}");
        }
    }
    let summary = json!({
        "rows": SUBJECTS,
        "evidentia_batch": batch_seconds,
        "evidentia_in_process": best_total,
        "evidentia_read_csv": best_read,
        "python": py_total,
        "python_read_csv": read_py,
        "analyses": each,
        "mismatches": mismatches.len(),
        "python_versions": py["versions"],
    });
    println!("{summary}");
    Ok(())
}

/// The best of `REPEATS` runs of the whole `evidentia stats batch` process over every analysis
/// of the plan; checks that its results are the ones computed in this process.
fn time_batch(
    exe: &Path,
    dir: &Path,
    file: &Path,
    plan: &[(&str, Analysis)],
    expected: &[(f64, Value)],
) -> anyhow::Result<f64> {
    let input = file.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let entries: Vec<Value> =
        plan.iter().map(|(name, a)| json!({"id": name, "input": input, "analysis": a, "level": 0.95})).collect();
    let batch_file = dir.join("stats-batch.json");
    std::fs::write(&batch_file, serde_json::to_vec(&entries)?)?;
    let mut best = f64::INFINITY;
    for _ in 0..REPEATS {
        let t = Instant::now();
        let out = Command::new(exe).args(["stats", "batch"]).arg(&batch_file).arg("--root").arg(dir).output()?;
        let secs = t.elapsed().as_secs_f64();
        anyhow::ensure!(out.status.success(), "stats batch: {}", String::from_utf8_lossy(&out.stderr));
        let got: Value = serde_json::from_slice(&out.stdout)?;
        for ((name, _), ((_, want), result)) in
            plan.iter().zip(expected.iter().zip(got["results"].as_array().into_iter().flatten()))
        {
            anyhow::ensure!(&result["result"] == want, "stats batch: {name} differs from the in-process result");
        }
        best = best.min(secs);
    }
    Ok(best)
}
