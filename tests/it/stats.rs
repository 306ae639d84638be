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

/// `stats batch` gives the same numbers as the single commands: every reference case that
/// succeeds, in one process (each input read once), in the file's order.
#[test]
fn a_batch_runs_every_reference_case_in_one_process() {
    use clap::{FromArgMatches, Subcommand};
    use evidentia::stats::analysis::Analysis;
    let dir = fixtures();
    let cases: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).expect("cases.json")).expect("json");
    let ok: Vec<&Value> = cases.iter().filter(|c| c["exit"].as_i64().unwrap_or(0) == 0).collect();
    let mut entries = Vec::new();
    for case in &ok {
        let mut args: Vec<String> =
            case["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
        let mut level = 0.95;
        if let Some(i) = args.iter().position(|a| a == "--level") {
            level = args[i + 1].parse().unwrap();
            args.drain(i..i + 2);
        }
        let cmd = Analysis::augment_subcommands(clap::Command::new("stats"));
        let argv = ["stats", case["analysis"].as_str().unwrap()].into_iter().map(String::from).chain(args);
        let analysis = Analysis::from_arg_matches(&cmd.try_get_matches_from(argv).unwrap()).unwrap();
        entries.push(serde_json::json!({
            "id": case["name"], "input": case["input"], "analysis": analysis, "level": level,
        }));
    }
    let work = tempfile::tempdir().unwrap();
    let batch = work.path().join("batch.json");
    std::fs::write(&batch, serde_json::to_vec(&entries).unwrap()).unwrap();
    let run = |file: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_evidentia"))
            .args(["stats", "batch"])
            .arg(file)
            .arg("--root")
            .arg(&dir)
            .env_remove("EVIDENTIA_DATA_DIR")
            .output()
            .expect("run evidentia stats batch")
    };
    let out = run(&batch);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = got["results"].as_array().unwrap();
    assert_eq!(results.len(), ok.len());
    let mut failures = Vec::new();
    for (case, r) in ok.iter().zip(results) {
        assert_eq!(r["id"], case["name"]);
        compare(
            case["name"].as_str().unwrap(),
            &case["expected"],
            &r["result"],
            case["tolerance"].as_f64().unwrap_or(1e-6),
            &mut failures,
        );
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));

    // A missing input and an unknown column fail their own entries, named; the rest still run.
    let mut bad = entries[..2].to_vec();
    bad.push(serde_json::json!({"id": "gone", "input": "nope.csv", "analysis": entries[0]["analysis"]}));
    let mut wrong = entries[0].clone();
    wrong["id"] = "wrong".into();
    wrong["analysis"] = serde_json::json!({"analysis": "kappa", "a": "no_such_column", "b": "also_not"});
    bad.push(wrong);
    std::fs::write(&batch, serde_json::to_vec(&bad).unwrap()).unwrap();
    let out = run(&batch);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("2 of 4 analyses failed") && stderr.contains("nope.csv"), "{stderr}");
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(got["results"][0]["result"].is_object() && got["results"][1]["result"].is_object());
    assert!(got["results"][2]["error"].as_str().unwrap().contains("nope.csv"));
    assert!(got["results"][3]["error"].as_str().unwrap().contains("no_such_column"));
    // Not a batch at all: exit 2, the file named.
    std::fs::write(&batch, b"{\"not\": \"a list\"}").unwrap();
    let out = run(&batch);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("batch.json"));
}
