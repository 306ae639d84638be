//! `evidentia stats` against reference values: every case in tests/fixtures/stats/cases.json
//! (inputs and expected outputs written by tools/stats_reference.py from statsmodels, scipy,
//! scikit-learn, lifelines, pingouin and published worked examples) runs the real binary and
//! compares each expected key, numbers within the case's tolerance.

use std::path::{Path, PathBuf};

use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stats")
}

/// Runs `evidentia stats <analysis> --input <file> <args…>`: (exit code, stdout, stderr).
pub fn stats(analysis: &str, input: &Path, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_evidentia"))
        .arg("stats")
        .arg(analysis)
        .arg("--input")
        .arg(input)
        .args(args)
        .env_remove("EVIDENTIA_DATA_DIR")
        .output()
        .expect("run evidentia stats");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Differences between an expected value and the actual one, with their JSON paths.
fn compare(path: &str, want: &Value, got: &Value, tol: f64, out: &mut Vec<String>) {
    match (want, got) {
        (Value::Number(w), Value::Number(g)) => {
            let (w, g) = (w.as_f64().unwrap_or(f64::NAN), g.as_f64().unwrap_or(f64::NAN));
            if (w - g).abs() > tol * w.abs().max(1.0) {
                out.push(format!("{path}: expected {w}, got {g} (diff {:e})", (w - g).abs()));
            }
        }
        (Value::Object(w), Value::Object(g)) => {
            for (k, v) in w {
                match g.get(k) {
                    Some(gv) => compare(&format!("{path}.{k}"), v, gv, tol, out),
                    None => out.push(format!("{path}.{k}: missing")),
                }
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            if w.len() != g.len() {
                out.push(format!("{path}: expected {} elements, got {}", w.len(), g.len()));
            } else {
                for (i, (a, b)) in w.iter().zip(g).enumerate() {
                    compare(&format!("{path}[{i}]"), a, b, tol, out);
                }
            }
        }
        (w, g) if w == g => {}
        (w, g) => out.push(format!("{path}: expected {w}, got {g}")),
    }
}

#[test]
fn every_reference_case_matches() {
    let dir = fixtures();
    let cases: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).expect("cases.json")).expect("json");
    assert!(cases.len() >= 40, "only {} reference cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap_or("?");
        let args: Vec<&str> =
            case["args"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        let input = dir.join(case["input"].as_str().unwrap_or(""));
        let (code, stdout, stderr) = stats(case["analysis"].as_str().unwrap_or(""), &input, &args);
        let want_exit = case["exit"].as_i64().unwrap_or(0) as i32;
        if code != want_exit {
            failures.push(format!("{name}: exit {code}, expected {want_exit}; stderr: {stderr}"));
            continue;
        }
        if want_exit != 0 {
            if stderr.trim().lines().count() != 1 {
                failures.push(format!("{name}: the error is not one line: {stderr:?}"));
            }
            for s in case["stderr_contains"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                if !stderr.contains(s) {
                    failures.push(format!("{name}: stderr lacks {s:?}: {stderr}"));
                }
            }
            continue;
        }
        let got: Value = match serde_json::from_str(&stdout) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{name}: stdout is not one JSON object ({e}): {stdout}"));
                continue;
            }
        };
        let mut diffs = Vec::new();
        compare("", &case["expected"], &got, case["tolerance"].as_f64().unwrap_or(1e-6), &mut diffs);
        failures.extend(diffs.into_iter().map(|d| format!("{name} ({}): {d}", case["source"].as_str().unwrap_or(""))));
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn missing_input_and_bad_level_are_input_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("d.csv");
    std::fs::write(&file, "a,b\n1,1\n2,1\n1,2\n").unwrap();
    let (code, _, err) = stats("kappa", &dir.path().join("nope.csv"), &["--a", "a", "--b", "b"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nope.csv"), "{err}");
    let (code, _, err) = stats("kappa", &file, &["--a", "a", "--b", "b", "--level", "95"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--level"), "{err}");
    let (code, out, _) = stats("kappa", &file, &["--a", "a", "--b", "b", "--level", "0.9"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["n"], 3);
}

#[test]
fn the_input_can_come_on_standard_input() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("d.csv");
    let csv = "a,b\n1,1\n2,1\n1,2\n2,2\n1,1\n";
    std::fs::write(&file, csv).unwrap();
    let (code, from_file, err) = stats("kappa", &file, &["--a", "a", "--b", "b"]);
    assert_eq!(code, 0, "{err}");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_evidentia"))
        .args(["stats", "kappa", "--input", "-", "--a", "a", "--b", "b"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(csv.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), from_file, "the same numbers from stdin");
}

#[test]
fn column_lists_are_trimmed_and_an_empty_name_is_an_input_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("d.csv");
    std::fs::write(&file, "a,b,c\n1,2,3\n2,2,3\n3,3,1\n1,1,2\n").unwrap();
    let (code, spaced, err) = stats("fleiss", &file, &["--raters", "a, b ,c"]);
    assert_eq!(code, 0, "{err}");
    let (_, plain, _) = stats("fleiss", &file, &["--raters", "a,b,c"]);
    assert_eq!(spaced, plain);
    let (code, _, err) = stats("fleiss", &file, &["--raters", "a,b,"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("empty column name"), "{err}");
}
