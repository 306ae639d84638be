//! Annotation benchmarks (issue: annotations and blinded reader studies).
//!
//! 1. Region interchange: a 100,000-point QuPath GeoJSON file (point detections with UUID, class
//!    and measurements, pretty-printed as QuPath writes them) parsed and written back in memory.
//! 2. The same file imported into a reader's read in a real data dir (parse, checks, the read's
//!    row and its audit event in one transaction) and exported again as a GeoJSON file.
//! 3. The workbench with 5,000 regions on the slide, from the real server over HTTP: the page and
//!    the regions it loads, as the annotator's browser asks for them (median of 20 loads), next to
//!    `/healthz` on the same server as the baseline of a request that does no work.
//!
//! ```sh
//! cargo bench --bench annotations            # 100,000 points
//! cargo bench --bench annotations -- 500000  # another count
//! ```

// Test and benchmark code: a failed unwrap is a failed run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use diesel::prelude::*;
use evidentia::annotations::geojson::{self, Limits};
use evidentia::annotations::{campaigns, export, reads, schema};
use evidentia::auth::permissions::study_access;
use evidentia::auth::{users, Actor};
use evidentia::db::schema::{cases, slides};
use evidentia::db::{now, Conn};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const STUDY: &str = evidentia::demo::DEMO_STUDY;

fn qupath_points(n: usize) -> (String, f64) {
    let mut file = String::from("{\n  \"type\": \"FeatureCollection\",\n  \"features\": [\n");
    for i in 0..n {
        let (x, y) = (100.0 + (i % 400) as f64 * 97.25, 100.0 + (i / 400) as f64 * 113.5);
        file.push_str(&format!(
            "    {{\n      \"type\": \"Feature\",\n      \"id\": \"{i:08x}-5b7d-4e0f-9a1b-2c3d4e5f6a7b\",\n      \
             \"geometry\": {{ \"type\": \"Point\", \"coordinates\": [{x}, {y}] }},\n      \"properties\": {{\n        \
             \"objectType\": \"detection\",\n        \"classification\": {{ \"name\": \"Lymphocyte\", \"color\": [255, 0, 0] }},\n        \
             \"measurements\": {{ \"Nucleus: Area\": 31.5, \"Nucleus: Circularity\": 0.91 }}\n      }}\n    }}{}\n",
            if i + 1 < n { "," } else { "" }
        ));
    }
    file.push_str("  ]\n}\n");
    (file, 100.0 + (n / 400 + 1) as f64 * 113.5)
}

/// A study slide record big enough for the points (the pixels are not needed to store regions).
fn slide_record(
    conn: &mut Conn,
    study_id: evidentia::studies::StudyId,
    label: &str,
    width: i64,
    height: i64,
) -> anyhow::Result<()> {
    let case_id: i32 = cases::table.filter(cases::study_id.eq(study_id)).select(cases::id).first(conn)?;
    diesel::insert_into(slides::table)
        .values((
            slides::study_id.eq(study_id),
            slides::case_id.eq(case_id),
            slides::label.eq(label),
            slides::stain.eq("H&E"),
            slides::attributes.eq("{}"),
            slides::sha256.eq(format!("{:064}", label.len())),
            slides::source_sha256.eq(format!("bench-{label}")),
            slides::file_size.eq(0i64),
            slides::format.eq("generic-tiff"),
            slides::width.eq(width),
            slides::height.eq(height),
            slides::info.eq("{}"),
            slides::status.eq("available"),
            slides::created_at.eq(now()),
            slides::updated_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(())
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(100_000);
    let (file, height) = qupath_points(n);
    let limits = Limits {
        max_vertices: n.max(2_000_000),
        max_features: n.max(1_000_000),
        ..Limits::for_slide(40_000.0, height)
    };

    // 1. In memory.
    let started = Instant::now();
    let regions = geojson::parse(file.as_bytes(), &limits)?;
    let parsed = started.elapsed();
    anyhow::ensure!(regions.len() == n, "parsed {} regions of {n}", regions.len());
    let started = Instant::now();
    let mut out = Vec::new();
    geojson::write(&regions, &mut out)?;
    let written = started.elapsed();
    anyhow::ensure!(geojson::parse(&out, &limits)? == regions, "the written file does not read back the same");

    // 2. Into and out of a read in a real data dir.
    let dir = tempfile::tempdir()?;
    let cfg = evidentia::config::Config::from_env("127.0.0.1:0".into(), dir.path().to_path_buf());
    let pool = evidentia::startup::open_database(&cfg)?;
    let mut conn = pool.get()?;
    evidentia::demo::seed(&mut conn, &cfg.data_dir)?;
    let operator = Actor::cli_operator();
    let access = study_access(&mut conn, &operator, STUDY)?;
    slide_record(&mut conn, access.study.id, "BENCH-POINTS", 40_000, height.ceil() as i64)?;
    slide_record(&mut conn, access.study.id, "BENCH-5000", 40_000, 30_000)?;
    schema::save(&mut conn, &operator, &access, &schema::Definition::parse_text(schema::DEFAULT_TEXT)?, "")?;
    let input =
        campaigns::CampaignInput { name: "Bench".into(), readers: vec!["annotator1".into()], ..Default::default() };
    let campaign = campaigns::create(&mut conn, &operator, &access, &input)?;
    let read_of = |conn: &mut Conn, label: &str| reads::find(conn, access.study.id, Some("Bench"), label, "annotator1");
    let points_read = read_of(&mut conn, "BENCH-POINTS")?;
    let reader = users::actor_for_username(&mut conn, "annotator1")?;
    let reader_access = study_access(&mut conn, &reader, STUDY)?;
    let started = Instant::now();
    let saved = reads::import_regions(&mut conn, &reader, &reader_access, points_read, file.as_bytes(), false)?;
    let imported = started.elapsed();
    anyhow::ensure!(saved.region_count == n);
    let out_dir = dir.path().join("export");
    let started = Instant::now();
    let files = export::export(&mut conn, access.study.id, "geojson", &out_dir)?;
    let exported = started.elapsed();
    anyhow::ensure!(files.len() == 1, "one read with regions");
    let exported_size = std::fs::metadata(&files[0])?.len();

    // 3. The workbench with 5,000 regions: 4,000 lymphocyte points and 1,000 20-vertex polygons.
    let five = reads::Draft {
        values: Default::default(),
        regions: (0..5000)
            .map(|i| {
                let (x, y) = (200.0 + (i % 100) as f64 * 390.0, 200.0 + (i / 100) as f64 * 590.0);
                let geometry = if i % 5 == 0 {
                    let mut ring: Vec<[f64; 2]> = (0..20)
                        .map(|k| {
                            let a = k as f64 / 20.0 * std::f64::consts::TAU;
                            [x + 150.0 * a.cos(), y + 150.0 * a.sin()]
                        })
                        .collect();
                    ring.push(ring[0]);
                    evidentia::annotations::Geometry::Polygon(vec![ring])
                } else {
                    evidentia::annotations::Geometry::Point([x, y])
                };
                evidentia::annotations::Region {
                    id: None,
                    class: None,
                    object_type: Default::default(),
                    geometry,
                    name: None,
                }
            })
            .collect(),
        base: None,
    };
    let five_read = read_of(&mut conn, "BENCH-5000")?;
    reads::save_draft(&mut conn, &reader, &reader_access, five_read, &five)?;
    drop(conn);
    let _ = campaign;

    let (tx, rx) = std::sync::mpsc::channel();
    let cfg2 = cfg.clone();
    std::thread::spawn(move || {
        let sys = actix_web::rt::System::new();
        sys.block_on(async move {
            let app = evidentia::startup::Application::build(cfg2).expect("build app");
            tx.send(app.port()).expect("send port");
            let _ = app.run_until_stopped().await;
        });
    });
    let port = rx.recv_timeout(Duration::from_secs(30))?;
    let base = format!("http://127.0.0.1:{port}");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let (page_ms, healthz_ms, regions_bytes) = rt.block_on(async {
        let http = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build()?;
        let login = http.get(format!("{base}/login")).send().await?.text().await?;
        let key = "name=\"csrf_token\" value=\"";
        let at = login.find(key).ok_or_else(|| anyhow::anyhow!("no csrf"))? + key.len();
        let csrf = login[at..at + 64].to_string();
        let form = [
            ("username", "annotator1"),
            ("password", evidentia::demo::DEMO_PASSWORD),
            ("next", ""),
            ("csrf_token", &csrf),
        ];
        http.post(format!("{base}/login")).form(&form).send().await?;
        let page_url = format!("{base}/studies/{STUDY}/reads/{five_read}");
        let regions_url = format!("{base}/studies/{STUDY}/reads/{five_read}/regions");
        let (mut page, mut health, mut bytes) = (Vec::new(), Vec::new(), 0);
        for _ in 0..20 {
            let t = Instant::now();
            let html = http.get(&page_url).send().await?;
            anyhow::ensure!(html.status() == 200, "workbench: {}", html.status());
            html.bytes().await?;
            let body = http.get(&regions_url).send().await?.bytes().await?;
            page.push(t.elapsed());
            bytes = body.len();
            let t = Instant::now();
            http.get(format!("{base}/healthz")).send().await?.bytes().await?;
            health.push(t.elapsed());
        }
        anyhow::Ok((median(page), median(health), bytes))
    })?;

    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!("{n} points, {:.1} MB of QuPath GeoJSON:", file.len() as f64 / 1e6);
    println!("  parse + validate (memory)       {:>8.3} s  {:>10.0} points/s", parsed.as_secs_f64(), rate(parsed));
    println!(
        "  write (memory)                  {:>8.3} s  {:>10.0} points/s  ({:.1} MB)",
        written.as_secs_f64(),
        rate(written),
        out.len() as f64 / 1e6
    );
    println!("  import into a read (SQLite)     {:>8.3} s  {:>10.0} points/s", imported.as_secs_f64(), rate(imported));
    println!(
        "  export to a file                {:>8.3} s  {:>10.0} points/s  ({:.1} MB)",
        exported.as_secs_f64(),
        rate(exported),
        exported_size as f64 / 1e6
    );
    println!(
        "workbench with 5,000 regions (page + regions JSON of {:.2} MB), median of 20:",
        regions_bytes as f64 / 1e6
    );
    println!(
        "  {:>7.1} ms   (/healthz on the same server: {:.2} ms; ratio {:.0}×)",
        page_ms.as_secs_f64() * 1e3,
        healthz_ms.as_secs_f64() * 1e3,
        page_ms.as_secs_f64() / healthz_ms.as_secs_f64()
    );
    Ok(())
}
