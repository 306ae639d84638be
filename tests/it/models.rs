//! The model registry and the inference engine through the CLI: both backends (ONNX Runtime and
//! tract, one per process) run the fixture model and agree with Python's onnxruntime; model cards
//! are checked on their own and against the model; registration is for administrators, audited,
//! and versions never change.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::helpers::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models").join(name)
}

/// What every new data dir's model store holds: the bundled demonstration model.
fn demo_only() -> Vec<String> {
    use sha2::Digest;
    let sha = hex::encode(sha2::Sha256::digest(evidentia::biomarker::registry::DEMO_ONNX));
    vec![evidentia::biomarker::registry::stored_key(&sha)]
}

fn model_check(app: &TestApp, backend: &str) -> Value {
    let mut cmd = app.command();
    cmd.args(["model", "check", fixture("tiny-fcn.onnx").to_str().unwrap(), "--card"])
        .arg(fixture("tiny-fcn.json"))
        .arg("--json")
        .env("EVIDENTIA_INFERENCE_BACKEND", backend)
        .env("RUST_LOG", "warn");
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{backend}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{backend}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test]
async fn both_backends_run_the_model_and_agree_with_python_onnxruntime() {
    assert!(
        evidentia::biomarker::engine::find_onnxruntime().is_some(),
        "ONNX Runtime not found: `pip install onnxruntime` or set EVIDENTIA_ORT_LIB (.ci/run does)"
    );
    let app = spawn_app();
    let reference: Value = serde_json::from_slice(&std::fs::read(fixture("tiny-fcn.reference.json")).unwrap()).unwrap();
    let ort = model_check(&app, "onnxruntime");
    let tract = model_check(&app, "tract");
    assert_eq!(ort["backend"]["kind"], "onnxruntime");
    assert_eq!(tract["backend"]["kind"], "tract");
    for (name, want) in reference["outputs"].as_object().unwrap() {
        for got in [&ort, &tract] {
            let out = &got["outputs"][name];
            assert_eq!(out["shape"], want["shape"], "{name}");
            let (s, w) = (out["sum"].as_f64().unwrap(), want["sum"].as_f64().unwrap());
            assert!((s - w).abs() <= 1e-5 * w.abs().max(1.0), "{name} sum {s} vs {w} ({})", got["backend"]["kind"]);
            for (g, r) in out["samples"].as_array().unwrap().iter().zip(want["samples"].as_array().unwrap()) {
                assert_eq!(g[0], r[0], "sample index");
                let (a, b) = (g[1].as_f64().unwrap(), r[1].as_f64().unwrap());
                assert!((a - b).abs() <= 1e-4, "{name}[{}]: {a} vs {b} ({})", g[0], got["backend"]["kind"]);
            }
        }
    }
}

#[tokio::test]
async fn models_register_with_a_checked_card_and_never_change() {
    let app = spawn_app();
    let p = |f: &str| fixture(f).to_str().unwrap().to_string();
    let register = |file: &str, card: &str| app.cli(&["model", "register", &p(file), "--card", &p(card)], None);

    // Bad cards and files: a clear message, exit 2, nothing stored.
    for (file, card, needle) in [
        (
            "tiny-fcn.onnx",
            "tiny-fcn-wrong-input.json",
            "tiny-fcn-wrong-input.json: input.shape: 3 channels of 512×512 px",
        ),
        ("tiny-fcn.onnx", "tiny-fcn-wrong-outputs.json", "the model has no output \"heatmap\""),
        ("not-onnx.onnx", "tiny-fcn.json", "not a model this backend can run"),
        // Weights read from another file (here another model's), which the SHA-256 would not cover.
        ("tiny-fcn-external.onnx", "tiny-fcn.json", "keeps its data in an external file"),
        ("tiny-fcn.onnx", "not-onnx.onnx", "not-onnx.onnx: card: expected"),
    ] {
        let out = register(file, card);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file} + {card}: {err}");
        assert!(err.contains(needle), "{file} + {card}: {err}");
    }
    assert_eq!(app.stored("models"), demo_only(), "nothing stored for a refused model");

    // Only administrators register.
    let out =
        app.cli(&["--as", "manager", "model", "register", &p("tiny-fcn.onnx"), "--card", &p("tiny-fcn.json")], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only administrators"));

    let out = register("tiny-fcn.onnx", "tiny-fcn.json");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(fixture("tiny-fcn.onnx")).unwrap()))
    };
    assert!(String::from_utf8_lossy(&out.stdout).contains(&sha));
    assert!(app.stored("models").contains(&evidentia::biomarker::registry::stored_key(&sha)));
    let ev = audit_events(&app, "register");
    assert_eq!((ev[0].chain.as_str(), ev[0].entity_id.as_str()), ("system", "tiny-fcn@0.1.0"));
    assert!(ev[0].new_value.as_deref().unwrap().contains(&sha));

    // A version never changes; retiring needs a reason; the list shows it.
    let out = register("tiny-fcn.onnx", "tiny-fcn.json");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("versions never change"));
    assert_eq!(app.cli(&["model", "retire", "tiny-fcn@0.1.0", "--reason", " "], None).status.code(), Some(2));
    assert!(app.cli(&["model", "retire", "tiny-fcn@0.1.0", "--reason", "superseded"], None).status.success());
    let list = String::from_utf8_lossy(&app.cli(&["model", "list"], None).stdout).to_string();
    assert!(list.contains("tiny-fcn@0.1.0") && list.contains("retired"), "{list}");

    // The admin page lists it; others may not see the registry page.
    let admin = app.login("admin").await;
    let (status, page) = admin.get_text("/admin/models").await;
    assert_eq!(status, 200);
    assert!(page.contains("tiny-fcn@0.1.0") && page.contains("superseded") && page.contains(&sha[..16]), "{page}");
    assert!(!page.contains("libonnxruntime") && !page.contains("site-packages"), "no server paths: {page}");
    let manager = app.login("manager").await;
    assert_eq!(manager.get("/admin/models").await.status(), 403);
}

#[tokio::test]
async fn run_file_analyses_a_slide_the_same_on_both_backends() {
    use evidentia::slides::synth::{self, Phenotype, SynthParams};
    let app = spawn_app();
    let p = |f: &str| fixture(f).to_str().unwrap().to_string();
    assert!(app.cli(&["model", "register", &p("tiny-fcn.onnx"), "--card", &p("tiny-fcn.json")], None).status.success());
    let slide = app.scratch.join("slide.svs");
    synth::write_slide(&slide, &SynthParams::new(2400, 2400, 0.5, Phenotype::Inflamed, 11), &mut |_, _| {}).unwrap();
    let run = |backend: &str| -> Value {
        let out = app
            .command()
            .args(["biomarker", "run-file", slide.to_str().unwrap(), "--model", "tiny-fcn@0.1.0", "--json"])
            .env("EVIDENTIA_INFERENCE_BACKEND", backend)
            // A GPU asked for on a machine without one: the CPU, with a log line that says so.
            .env("EVIDENTIA_ORT_PROVIDERS", "cuda,cpu")
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{backend}: {err}");
        if backend == "onnxruntime" {
            assert!(err.contains("the CUDA execution provider is not usable: falling back"), "{err}");
        }
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let (ort, tract) = (run("onnxruntime"), run("tract"));
    assert_eq!((ort["provider"].as_str(), tract["provider"].as_str()), (Some("cpu"), Some("cpu")));
    for key in [
        "phenotype",
        "inflamed_share",
        "excluded_share",
        "desert_share",
        "itil_density_median",
        "stil_density_median",
        "grid_cells_scored",
        "tiles",
        "backend",
        "model_sha256",
    ] {
        assert!(ort.get(key).is_some(), "{key} in {ort}");
    }
    assert_eq!((ort["backend"].as_str(), tract["backend"].as_str()), (Some("onnxruntime"), Some("tract")));
    assert!(ort["tiles"].as_u64().unwrap() > 0 && ort["grid_cells_scored"].as_u64().unwrap() > 0, "{ort}");
    for key in ["phenotype", "tiles", "grid_cells_scored", "model_sha256"] {
        assert_eq!(ort[key], tract[key], "{key}");
    }
    for key in ["inflamed_share", "itil_density_median", "stil_density_median"] {
        let (a, b) = (ort[key].as_f64().unwrap(), tract[key].as_f64().unwrap());
        assert!((a - b).abs() <= 1e-3 * a.abs().max(1.0), "{key}: {a} vs {b}");
    }
    // A retired model runs no more.
    assert!(app.cli(&["model", "retire", "tiny-fcn@0.1.0", "--reason", "test"], None).status.success());
    let out = app.cli(&["biomarker", "run-file", slide.to_str().unwrap(), "--model", "tiny-fcn@0.1.0"], None);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn the_bundled_demonstration_model_finds_the_generators_phenotype() {
    use evidentia::slides::synth::{self, Phenotype, SynthParams};
    let app = spawn_app();
    // Registered in every new data dir, marked as a demonstration.
    let out = app.cli(&["model", "list"], None);
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(list.contains("evidentia-demo-til@1.0.0"), "{list}");
    // One small slide per phenotype (seeds outside the model's training and validation sets).
    for (i, phenotype) in [Phenotype::Inflamed, Phenotype::Excluded, Phenotype::Desert].into_iter().enumerate() {
        let slide = app.scratch.join(format!("{phenotype}.svs"));
        let params = SynthParams::new(4000, 4000, 0.5, phenotype, 90_000 + i as u64);
        let truth = synth::write_slide(&slide, &params, &mut |_, _| {}).unwrap().truth;
        let out = app.cli(
            &["biomarker", "run-file", slide.to_str().unwrap(), "--model", "evidentia-demo-til@1.0.0", "--json"],
            None,
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let got: Value = serde_json::from_slice(&out.stdout).unwrap();
        let want = truth.phenotype.map(|p| p.to_string());
        assert_eq!(got["phenotype"].as_str().map(str::to_string), want, "{phenotype}: {got}");
    }
}

#[tokio::test]
async fn an_admin_registers_a_model_through_the_page() {
    let app = spawn_app();
    let admin = app.login("admin").await;
    let upload = |card: &str| {
        let form = reqwest::multipart::Form::new()
            .part(
                "model",
                reqwest::multipart::Part::bytes(std::fs::read(fixture("tiny-fcn.onnx")).unwrap())
                    .file_name("tiny-fcn.onnx"),
            )
            .part(
                "card",
                reqwest::multipart::Part::bytes(std::fs::read(fixture(card)).unwrap()).file_name(card.to_string()),
            );
        admin.http.post(admin.url(&format!("/admin/models?csrf_token={}", admin.csrf))).multipart(form).send()
    };
    let r = upload("tiny-fcn-wrong-outputs.json").await.unwrap();
    assert_eq!(r.status(), 422);
    let body = r.text().await.unwrap();
    assert!(body.contains("the model has no output") && body.contains("heatmap"), "{body}");
    assert_eq!(app.stored("models"), demo_only());
    assert!(
        files_under(&app.data_dir.join("tmp")).iter().all(|p| !p.to_string_lossy().contains("model-upload")),
        "uploads removed"
    );
    let r = upload("tiny-fcn.json").await.unwrap();
    assert_eq!(r.status(), 303);
    let (_, page) = admin.get_text("/admin/models").await;
    assert!(page.contains("tiny-fcn@0.1.0") && page.contains("Inference backend"), "{page}");
    let r = admin.post("/admin/models/tiny-fcn@0.1.0/retire", &[("reason", "")]).await;
    assert_eq!(r.status(), 303);
    assert!(audit_events(&app, "retire").is_empty(), "a reason is required");
    admin.post("/admin/models/tiny-fcn@0.1.0/retire", &[("reason", "superseded by 0.2.0")]).await;
    assert_eq!(audit_events(&app, "retire")[0].reason.as_deref(), Some("superseded by 0.2.0"));
}

#[tokio::test]
async fn a_study_run_resumes_without_duplicates_and_is_hidden_from_annotators() {
    use diesel::prelude::*;
    use evidentia::db::schema::biomarker_results as r;
    use evidentia::slides::synth;
    let app = spawn_app_with(|c| c.job_workers = 0);
    // Two small synthetic slides for two enrolled SNUBH cases.
    let (run, job) = run_over_synthetic_slides(&app, 2, 1200, |_| synth::Phenotype::Excluded, 20);
    let ids = run.slide_ids();
    assert_eq!(ids.len(), 2);
    // An earlier attempt finished the first slide before the worker died.
    diesel::insert_into(r::table)
        .values((
            r::run_id.eq(run.id),
            r::slide_id.eq(ids[0]),
            r::status.eq("ok"),
            r::phenotype.eq("desert"),
            r::flags.eq("[]"),
            r::cells.eq("{}"),
            r::seconds.eq(0.0),
            r::created_at.eq(evidentia::db::now()),
        ))
        .execute(&mut app.conn())
        .unwrap();
    let claimed = evidentia::jobs::claim(&mut app.conn(), job.id, "test").unwrap().unwrap();
    evidentia::jobs::worker::run_job(&app.pool, &app.config, claimed);
    let job = evidentia::jobs::get(&mut app.conn(), job.id).unwrap();
    assert_eq!(job.status.as_str(), "succeeded", "{:?}", job.error);
    let rows: Vec<(i32, String, Option<String>)> = r::table
        .filter(r::run_id.eq(run.id))
        .select((r::slide_id, r::status, r::phenotype))
        .order(r::slide_id)
        .load(&mut app.conn())
        .unwrap();
    assert_eq!(rows.len(), 2, "one result per slide, none duplicated");
    assert_eq!(rows[0].2.as_deref(), Some("desert"), "the finished slide was not recomputed");
    assert_eq!(rows[1].1, "ok");

    // Results for reviewing roles (page and CSV); annotators are blinded to the AI.
    let monitor = app.login("monitor").await;
    let (status, page) = monitor.get_text(&format!("/studies/LUNG-IO-01/runs/{}", run.id)).await;
    assert_eq!(status, 200);
    assert!(page.contains("tiny-fcn@0.1.0") && page.contains("2 of 2 slides done"), "{page}");
    let (status, csv) = monitor.get_text(&format!("/studies/LUNG-IO-01/runs/{}.csv", run.id)).await;
    assert_eq!(status, 200);
    assert_eq!(csv.lines().count(), 3);
    let annotator = app.login("annotator1").await;
    for path in [
        "/studies/LUNG-IO-01/runs".to_string(),
        format!("/studies/LUNG-IO-01/runs/{}", run.id),
        format!("/studies/LUNG-IO-01/runs/{}.csv", run.id),
    ] {
        assert_eq!(annotator.get(&path).await.status(), 404, "{path}");
    }
    assert_eq!(monitor.post("/studies/LUNG-IO-01/runs", &[("model", "tiny-fcn@0.1.0")]).await.status(), 403);
    // The heatmap of the slide this run computed, for the viewer's overlay; 404 for annotators.
    let (label, width): (String, i64) = evidentia::db::schema::slides::table
        .find(ids[1])
        .select((evidentia::db::schema::slides::label, evidentia::db::schema::slides::width))
        .first(&mut app.conn())
        .unwrap();
    let heat = format!("/studies/LUNG-IO-01/slides/{label}/heatmap.json");
    let map: Value = monitor.get(&heat).await.json().await.unwrap();
    assert_eq!(map["run"].as_i64(), Some(i64::from(run.id)));
    assert!(map["cell_px"].as_f64().unwrap() > 0.0 && map["cells"].is_array(), "{map}");
    // The heatmap as an image over the slide: class colours over tissue of scored cells only.
    let png = monitor.http.get(monitor.url(&heat.replace(".json", ".png"))).send().await.unwrap();
    assert_eq!(png.status(), 200);
    assert_eq!(png.headers()["content-type"], "image/png");
    let bytes = png.bytes().await.unwrap();
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes.to_vec())).read_info().unwrap();
    let mut rgba = vec![0; decoder.output_buffer_size().unwrap()];
    let frame = decoder.next_frame(&mut rgba).unwrap();
    assert_eq!(frame.color_type, png::ColorType::Rgba);
    let opaque = rgba.chunks(4).filter(|p| p[3] == 255).count();
    let colours: std::collections::BTreeSet<[u8; 3]> =
        rgba.chunks(4).filter(|p| p[3] == 255).map(|p| [p[0], p[1], p[2]]).collect();
    let scored = map["cells"].as_array().unwrap().len();
    let cell_px = map["cell_px"].as_f64().unwrap() * f64::from(frame.width) / width as f64;
    // Within the scored cells' area, and never all of it: glass at their edges stays clear.
    if scored == 0 {
        assert_eq!(opaque, 0, "nothing drawn without a scored cell");
    } else {
        assert!(opaque > 0 && (opaque as f64) < scored as f64 * cell_px * cell_px, "{opaque} px, {scored} cells");
    }
    assert!(colours.iter().all(|c| [[0xd6, 0x27, 0x28], [0xff, 0x7f, 0x0e], [0x1f, 0x77, 0xb4]].contains(c)));
    assert_eq!(rgba[3], 0, "the slide's corner is glass");
    assert_eq!(annotator.get(&heat.replace(".json", ".png")).await.status(), 404);
    assert_eq!(annotator.get(&heat).await.status(), 404);
    assert_eq!(audit_events(&app, "start_run").len(), 1);
    // The same from the command line: a second run, its progress in the terminal, CSV on stdout.
    let out = app.cli(&["biomarker", "run", "--study", "LUNG-IO-01", "--model", "tiny-fcn@0.1.0"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(csv.starts_with("slide,status,reason,phenotype") && csv.lines().count() == 3, "{csv}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 slides, 0 failed"));

    // Change control: the two runs compared, on the page, as CSV and on the command line. The
    // slide the first run "finished" as desert may differ; the other was computed the same way.
    let (a, b) = (run.id, run.id + 1);
    let (status, page) = monitor.get_text(&format!("/studies/LUNG-IO-01/runs/compare?a={a}&b={b}")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&format!("Run #{a} vs run #{b}")) && page.contains("Cohen"), "{page}");
    let (status, csv) = monitor.get_text(&format!("/studies/LUNG-IO-01/runs/compare.csv?a={a}&b={b}")).await;
    assert_eq!(status, 200);
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert_eq!(&rows[0][..6], ["slide", "status_a", "status_b", "phenotype_a", "phenotype_b", "changed"]);
    let first = rows.iter().find(|r| r[0] == label.as_str()).expect("the recomputed slide");
    assert_eq!((first[3], first[5]), (first[4], "no"), "same model, same slide: {csv}");
    assert!(rows.iter().any(|r| r[3] == "desert"), "{csv}");
    let out =
        app.cli(&["biomarker", "compare", "--study", "LUNG-IO-01", &a.to_string(), &b.to_string(), "--json"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let c: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(c["slides"].as_array().unwrap().len(), 2);
    assert_eq!(c["matrix"]["categories"], serde_json::json!(["inflamed", "excluded", "desert"]));
    // Bad input and access: the same run twice, a run that is not the study's, annotators.
    assert_eq!(monitor.get(&format!("/studies/LUNG-IO-01/runs/compare?a={a}&b={a}")).await.status(), 422);
    assert_eq!(monitor.get(&format!("/studies/LUNG-IO-01/runs/compare?a={a}&b=999")).await.status(), 404);
    assert_eq!(monitor.get("/studies/LUNG-IO-01/runs/compare?a=x&b=1").await.status(), 400);
    for path in [
        format!("/studies/LUNG-IO-01/runs/compare?a={a}&b={b}"),
        format!("/studies/LUNG-IO-01/runs/compare.csv?a={a}&b={b}"),
    ] {
        assert_eq!(annotator.get(&path).await.status(), 404, "{path}");
    }
    let out = app.cli(&["biomarker", "compare", "--study", "LUNG-IO-01", &a.to_string(), &a.to_string()], None);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("two different runs"));
}

/// An AI run is shared by every worker: two `evidentia worker` processes (one thread each) split
/// its slides; `kill -9` of the one that leads it mid-run → the other takes the job over after
/// the heartbeat expires, picks up the slide the dead one held, and finishes: every slide has
/// exactly one result, and the trail verifies.
#[tokio::test]
async fn two_worker_processes_share_a_run_and_one_killed_mid_run_loses_nothing() {
    use diesel::prelude::*;
    use evidentia::db::schema::{biomarker_results as r, job_items as ji};
    use evidentia::slides::synth;
    let app = spawn_app_with(|c| c.job_workers = 0);
    // Enough slides that the one who leads is still at it when the other joins (it polls every
    // fifth of a second).
    const SLIDES: usize = 24;
    ingest_synthetic_slides(&app, SLIDES, 2400, |_| synth::Phenotype::Inflamed, 40);
    let mut workers = two_workers(&app, &[("EVIDENTIA_ORT_PROVIDERS", "cuda,cpu")]);
    let (run, job) = start_run(&app);
    assert_eq!(run.slide_ids().len(), SLIDES);
    let (job, survivor) = kill_the_lead_mid_run(&app, &mut workers, job.id);
    assert_eq!(job.status.as_str(), "succeeded", "{:?}", job.error);
    assert!(is_worker(survivor, &job.worker), "the survivor took the job over: {:?}", job.worker);
    assert!(job.attempts >= 2, "claimed again after the kill");
    assert_eq!((job.progress_done, job.progress_total), (SLIDES as i64, SLIDES as i64));
    let mut slides: Vec<i32> = r::table.filter(r::run_id.eq(run.id)).select(r::slide_id).load(&mut app.conn()).unwrap();
    slides.sort();
    let mut expected = run.slide_ids();
    expected.sort();
    assert_eq!(slides, expected, "every slide exactly once");
    let statuses: Vec<String> = r::table.filter(r::run_id.eq(run.id)).select(r::status).load(&mut app.conn()).unwrap();
    assert!(statuses.iter().all(|s| s == "ok"), "{statuses:?}");
    let items: Vec<(String, Option<String>)> =
        ji::table.filter(ji::job_id.eq(job.id)).select((ji::status, ji::worker)).load(&mut app.conn()).unwrap();
    assert!(items.iter().all(|(s, _)| s == "done"), "{items:?}");
    let provider: Option<String> = evidentia::db::schema::biomarker_runs::table
        .find(run.id)
        .select(evidentia::db::schema::biomarker_runs::provider)
        .first(&mut app.conn())
        .unwrap();
    assert_eq!(provider.as_deref(), Some("cpu"), "no GPU here: the provider recorded is the CPU");
    let per_slide: Vec<Option<String>> =
        r::table.filter(r::run_id.eq(run.id)).select(r::provider).load(&mut app.conn()).unwrap();
    assert!(per_slide.iter().all(|p| p.as_deref() == Some("cpu")), "and with each slide's result: {per_slide:?}");
    assert!(app.cli(&["audit", "verify"], None).status.success());
}

/// Registers the tiny test model, ingests `n` synthetic slides of `size` px (phenotype by index,
/// seeds from `seed`) for enrolled SNUBH cases of LUNG-IO-01, and starts a run of the model over
/// them (queued, for a worker to take).
fn run_over_synthetic_slides(
    app: &TestApp,
    n: usize,
    size: u32,
    phenotype: impl Fn(usize) -> evidentia::slides::synth::Phenotype,
    seed: u64,
) -> (evidentia::biomarker::runs::Run, evidentia::jobs::Job) {
    ingest_synthetic_slides(app, n, size, phenotype, seed);
    start_run(app)
}

/// A run of the tiny test model over LUNG-IO-01's slides, queued.
/// Worker names carry the host, the process id and a random part: whether `name` is one of the
/// process `pid`'s.
fn is_worker(pid: u32, name: &Option<String>) -> bool {
    name.as_deref().is_some_and(|n| n.contains(&format!("-pid{pid}-w0-")))
}

/// Two `evidentia worker --threads 1` processes on the app's database and storage (a heartbeat
/// older than 2 s is stale), both ready — their database open — when this returns, so both take
/// part in what is queued next. Their logs go to the scratch dir.
fn two_workers(app: &TestApp, env: &[(&str, &str)]) -> [std::process::Child; 2] {
    let worker = |i: usize| {
        let mut cmd = app.command();
        cmd.args(["worker", "--threads", "1"]).env("EVIDENTIA_JOB_STALE_SECS", "2").env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(app.scratch.join(format!("worker-{i}.log"))).unwrap())
            .spawn()
            .unwrap();
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        assert!(lines.next().unwrap().unwrap().starts_with("running 1 job workers"));
        std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
        child
    };
    [worker(0), worker(1)]
}

/// Once both `workers` are at work on job `job_id` (one leads, the other helps), kills the one
/// leading it (`kill -9`), waits for the job to end and stops the other: the job as it ended, and
/// the survivor's process id.
fn kill_the_lead_mid_run(
    app: &TestApp,
    workers: &mut [std::process::Child; 2],
    job_id: i32,
) -> (evidentia::jobs::Job, u32) {
    use diesel::prelude::*;
    use evidentia::db::schema::{job_items as ji, jobs};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    let lead = loop {
        let mut conn = app.conn();
        let seen: Vec<Option<String>> =
            ji::table.filter(ji::job_id.eq(job_id)).select(ji::worker).distinct().load(&mut conn).unwrap();
        let lead: Option<String> = jobs::table.find(job_id).select(jobs::worker).first(&mut conn).unwrap();
        if workers.iter().all(|w| seen.iter().any(|n| is_worker(w.id(), n))) {
            break lead;
        }
        let finished = evidentia::jobs::get(&mut conn, job_id).unwrap().is_finished();
        if finished {
            for i in 0..2 {
                eprintln!("{}", std::fs::read_to_string(app.scratch.join(format!("worker-{i}.log"))).unwrap());
            }
        }
        assert!(!finished && std::time::Instant::now() < deadline, "both workers never took part: {seen:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let (killed, survivor) = if is_worker(workers[0].id(), &lead) { (0, 1) } else { (1, 0) };
    workers[killed].kill().unwrap();
    workers[killed].wait().unwrap();
    let job = loop {
        let j = evidentia::jobs::get(&mut app.conn(), job_id).unwrap();
        if j.is_finished() {
            break j;
        }
        assert!(std::time::Instant::now() < deadline, "the run did not finish: {j:?}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let pid = workers[survivor].id();
    let _ = workers[survivor].kill();
    let _ = workers[survivor].wait();
    (job, pid)
}

fn start_run(app: &TestApp) -> (evidentia::biomarker::runs::Run, evidentia::jobs::Job) {
    let operator = evidentia::auth::Actor::cli_operator();
    let mut conn = app.conn();
    let access = evidentia::auth::permissions::study_access(&mut conn, &operator, "LUNG-IO-01").unwrap();
    evidentia::biomarker::runs::start(&mut conn, &operator, &access, "tiny-fcn@0.1.0", "", "").unwrap()
}

fn ingest_synthetic_slides(
    app: &TestApp,
    n: usize,
    size: u32,
    phenotype: impl Fn(usize) -> evidentia::slides::synth::Phenotype,
    seed: u64,
) {
    use evidentia::auth::permissions::study_access;
    use evidentia::auth::Actor;
    use evidentia::slides::ingest::{self, SourceFile};
    use evidentia::slides::synth::{self, SynthParams};
    let p = |f: &str| fixture(f).to_str().unwrap().to_string();
    assert!(app.cli(&["model", "register", &p("tiny-fcn.onnx"), "--card", &p("tiny-fcn.json")], None).status.success());
    let subjects = evidentia::demo::truth::subjects(evidentia::demo::DEMO_SUBJECTS, evidentia::demo::truth::SEED);
    let mut manifest = String::from("file,subject_id,stain,site\n");
    let mut files = Vec::new();
    for (i, s) in subjects.iter().filter(|s| s.site == "SNUBH").take(n).enumerate() {
        let name = format!("s{i}.svs");
        let path = app.scratch.join(&name);
        let params = SynthParams::new(size, size, 0.5, phenotype(i), seed + i as u64);
        synth::write_slide(&path, &params, &mut |_, _| {}).unwrap();
        manifest.push_str(&format!("{name},{},H&E,SNUBH\n", s.hospital_id));
        files.push(SourceFile { name, path, uploaded: false });
    }
    let operator = Actor::cli_operator();
    let mut conn = app.conn();
    let access = study_access(&mut conn, &operator, "LUNG-IO-01").unwrap();
    let key = evidentia::cases::deid::study_key(&mut conn, &app.data_dir, "LUNG-IO-01").unwrap();
    let plan = ingest::plan(&mut conn, &access, &key, &no_patterns(), manifest.as_bytes(), &files, None).unwrap();
    ingest::ingest_now(&mut conn, &operator, &access, &app.config.storage, &app.data_dir, &plan).unwrap();
}

/// The shape of an installation on several machines (docs/operations.md): two `serve` and two
/// `worker` processes sharing one database and one storage — on the suite's PostgreSQL pass,
/// PostgreSQL and a real S3-compatible server (Garage). A user signs in on node A and continues
/// on node B; an AI run over 8 slides is split across both workers; `kill -9` of the worker
/// leading it mid-run → the other finishes it, every slide exactly once; both nodes serve the
/// same tiles, read from the storage; the trail verifies.
#[tokio::test]
async fn two_web_nodes_and_two_workers_share_one_database_and_one_storage() {
    use diesel::prelude::*;
    use evidentia::db::schema::biomarker_results as r;
    let app = spawn_app_with(|c| c.job_workers = 0);
    const SLIDES: usize = 8;
    ingest_synthetic_slides(&app, SLIDES, 2800, |_| evidentia::slides::synth::Phenotype::Inflamed, 80);
    let nodes = [crate::server::ServeProcess::start(&app), crate::server::ServeProcess::start(&app)];
    let mut workers = two_workers(&app, &[]);

    // Signed in on node A, at work on node B.
    let mut c = app.client();
    c.base = nodes[0].base.clone();
    assert_eq!(c.try_login("manager", PASSWORD).await.status(), 303);
    c.refresh_csrf().await;
    c.base = nodes[1].base.clone();
    let (status, page) = c.get_text("/studies/LUNG-IO-01/slides").await;
    assert_eq!(status, 200, "signed in on node B too");
    let label = evidentia::slides::list(
        &mut app.conn(),
        evidentia::studies::get_by_code(&mut app.conn(), "LUNG-IO-01").unwrap().id,
        &Default::default(),
        evidentia::db::paging::PageRequest::all(),
    )
    .unwrap()
    .items[0]
        .label
        .clone();
    assert!(page.contains(&label));

    // Both nodes serve the same tiles, from the storage.
    let mut tiles = Vec::new();
    for node in &nodes {
        c.base = node.base.clone();
        let r = c.get(&format!("/studies/LUNG-IO-01/slides/{label}/dzi/slide_files/11/1_1.jpeg")).await;
        assert_eq!(r.status(), 200);
        tiles.push(r.bytes().await.unwrap());
    }
    assert!(tiles[0].starts_with(&[0xFF, 0xD8]) && tiles[0] == tiles[1], "the same tile from both nodes");

    // The run, split across both workers; the one leading it is killed mid-run.
    let (run, job) = start_run(&app);
    assert_eq!(run.slide_ids().len(), SLIDES);
    let (job, _) = kill_the_lead_mid_run(&app, &mut workers, job.id);
    assert_eq!(job.status.as_str(), "succeeded", "{:?}", job.error);
    let mut done: Vec<i32> = r::table.filter(r::run_id.eq(run.id)).select(r::slide_id).load(&mut app.conn()).unwrap();
    done.sort();
    let mut expected = run.slide_ids();
    expected.sort();
    assert_eq!(done, expected, "every slide exactly once");

    // The run's results page on node A, and a clean trail.
    c.base = nodes[0].base.clone();
    assert_eq!(c.get(&format!("/studies/LUNG-IO-01/runs/{}", run.id)).await.status(), 200);
    assert!(app.cli(&["audit", "verify"], None).status.success());
}
