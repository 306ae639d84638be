//! Slides: de-identified ingest from the web and the CLI (label, macro and PHI metadata gone,
//! verified by re-reading the stored copy), manifest problems refused with nothing changed,
//! one bad file not stopping the others, the viewer's Deep Zoom endpoints, QC, access, audit.

use std::path::{Path, PathBuf};
use std::time::Duration;

use diesel::prelude::*;

use crate::helpers::*;
use evidentia::db::schema::{slide_ingests, slides};
use evidentia::slides::reader;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/slides").join(name)
}

/// What the SVS fixture carries about its "patient" (tools/make_slide_fixtures.py).
const SLIDE_PHI: [&str; 6] = ["DOE_JOHN", "S12-3456", "SS1234", "Jane Roe", "SCANNER-PC-DOE", "1b2c3d4e-0000"];
const UPLOAD_NAME: &str = "DOE_JOHN_S12-3456.svs";

/// The site subject id of the demo's first subject at SNUBH, and that case's display id.
fn first_subject() -> (String, String) {
    let subjects = evidentia::demo::truth::subjects(evidentia::demo::DEMO_SUBJECTS, evidentia::demo::truth::SEED);
    let s = subjects.iter().find(|s| s.site == "SNUBH").expect("a SNUBH subject");
    (s.hospital_id.clone(), "SNUBH-0001".to_string())
}

/// Block ids carry the accession number, as sites write them; the scanner's name may too.
fn manifest(rows: &[(&str, &str, &str)]) -> Vec<u8> {
    let mut m = String::from("file,subject_id,stain,site,block,scanner\n");
    for (file, subject, stain) in rows {
        m.push_str(&format!("{file},{subject},{stain},SNUBH,S12-3456 A1,GT450 for S12-3456\n"));
    }
    m.into_bytes()
}

async fn upload(c: &Client, manifest: Vec<u8>, files: &[(&str, Vec<u8>)]) -> reqwest::Response {
    let mut form = reqwest::multipart::Form::new()
        .part("manifest", reqwest::multipart::Part::bytes(manifest).file_name("manifest.csv"));
    for (name, bytes) in files {
        form = form.part("slides", reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.to_string()));
    }
    let path = format!("/studies/LUNG-IO-01/slides/ingest?csrf_token={}", c.csrf);
    c.http.post(c.url(&path)).multipart(form).send().await.expect("upload")
}

async fn wait_ingest(app: &TestApp, id: i32) {
    for _ in 0..600 {
        let done: Option<chrono::NaiveDateTime> = slide_ingests::table
            .find(id)
            .select(slide_ingests::finished_at)
            .first(&mut app.conn())
            .expect("ingest row");
        if done.is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("ingest {id} did not finish");
}

/// The ingest `id` of the demo study, as its page shows it.
fn ingest_record(app: &TestApp, id: i32) -> evidentia::slides::ingest::IngestRecord {
    evidentia::slides::ingest::ingests(&mut app.conn(), demo_study(app))
        .unwrap()
        .into_iter()
        .find(|i| i.id == id)
        .unwrap()
}

/// Ingests one fixture file as the first subject's H&E slide (as `name`); its label.
async fn ingest_one(app: &TestApp, c: &Client, name: &str, fixture_file: &str) -> String {
    let (subject, case) = first_subject();
    let r =
        upload(c, manifest(&[(name, &subject, "H&E")]), &[(name, std::fs::read(fixture(fixture_file)).unwrap())]).await;
    wait_ingest(app, ingest_id_from(&location(&r))).await;
    format!("{case}-S01")
}

fn ingest_id_from(location: &str) -> i32 {
    location.rsplit('/').next().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no ingest id in {location}"))
}

/// The demo study's id, as the database gives it.
fn demo_study(app: &TestApp) -> evidentia::studies::StudyId {
    evidentia::studies::get_by_code(&mut app.conn(), "LUNG-IO-01").unwrap().id
}

fn stored_slides(app: &TestApp) -> Vec<(String, String, String)> {
    slides::table
        .select((slides::label, slides::sha256, slides::format))
        .order(slides::id)
        .load(&mut app.conn())
        .expect("slides")
}

#[tokio::test]
async fn web_ingest_stores_a_deidentified_copy_linked_to_the_case() {
    let app = spawn_app_with(|cfg| cfg.metrics_token = Some("scrape".into()));
    let c = app.login("manager").await;
    let (subject, case) = first_subject();
    let svs = std::fs::read(fixture("aperio.svs")).unwrap();
    let r = upload(&c, manifest(&[(UPLOAD_NAME, &subject, "H&E")]), &[(UPLOAD_NAME, svs)]).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap_or_default());
    let id = ingest_id_from(&location(&r));
    wait_ingest(&app, id).await;

    let stored = stored_slides(&app);
    assert_eq!(stored.len(), 1);
    let (label, sha, format) = &stored[0];
    assert_eq!(label, &format!("{case}-S01"));
    assert_eq!(format, "aperio-svs");
    // Content-addressed: the file is named by its own SHA-256.
    let format = evidentia::slides::SlideFormat::parse(format).unwrap();
    let stored = app.config.storage.read(&evidentia::slides::stored_key(sha, format)).unwrap();
    assert_eq!(&hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&stored)), sha);
    // Re-reading the stored copy: no label, no macro, no scrubbed key; same pyramid.
    let copy = evidentia::slides::open_stored(&app.config.storage, sha, format).expect("stored copy reads");
    let info = copy.info();
    assert!(info.associated.is_empty(), "{:?}", info.associated);
    assert_eq!((info.width, info.height), (1200, 960));
    assert_eq!(info.mpp_x, Some(0.499));
    for key in [
        "aperio.Filename",
        "aperio.Date",
        "aperio.Time",
        "aperio.User",
        "aperio.Barcode",
        "tiff.DateTime",
        "tiff.Artist",
        "tiff.HostComputer",
        "tiff.DocumentName",
    ] {
        assert!(!info.properties.contains_key(key), "{key} survived");
    }
    let original = reader::open(&fixture("aperio.svs")).unwrap();
    assert_eq!(original.read_region(0, 240, 240, 300, 200).unwrap(), copy.read_region(0, 240, 240, 300, 200).unwrap());
    // No PHI in any stored byte: the slide store, the database (and its WAL), the upload area.
    for (f, bytes) in app.every_file() {
        for phi in SLIDE_PHI {
            assert!(!bytes.windows(phi.len()).any(|w| w == phi.as_bytes()), "{phi} found in {f}");
        }
    }
    let leftovers: Vec<_> = files_under(&app.data_dir.join("tmp"))
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains("preview"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // Audited in the study's chain, with what was removed.
    let events = audit_events(&app, "ingest");
    let e = events.iter().find(|e| e.entity.as_str() == "slide").expect("ingest audited");
    assert_eq!(e.entity_id, *label);
    let new = e.new_value.clone().unwrap_or_default();
    assert!(new.contains("label") && new.contains("macro") && new.contains("aperio.Filename"), "{new}");

    // The pages and the viewer's endpoints.
    let (s, page) = c.get_text(&format!("/studies/LUNG-IO-01/slides/ingests/{id}")).await;
    assert_eq!(s, 200);
    assert!(page.contains(label.as_str()) && page.contains("ingested"));
    let (s, list) = c.get_text("/studies/LUNG-IO-01/slides").await;
    assert_eq!(s, 200);
    assert!(list.contains(label.as_str()) && (list.contains("H&amp;E") || list.contains("H&#38;E")), "{list}");
    let (s, show) = c.get_text(&format!("/studies/LUNG-IO-01/slides/{label}")).await;
    assert_eq!(s, 200);
    assert!(show.contains("slide-viewer") && show.contains("0.4990"), "{show}");
    // The block id is shown as its pseudonym, the scanner scrubbed (the PHI scan above covers
    // the database).
    let slide = evidentia::slides::get(&mut app.conn(), demo_study(&app), label).unwrap();
    let attributes = slide.attributes();
    let block = attributes["block"].as_str().unwrap();
    assert!(block.starts_with("PSN-") && show.contains(block), "{attributes:?}");
    assert!(attributes["scanner"].as_str().unwrap().starts_with("GT450 for [REDACTED"), "{attributes:?}");
    let (s, case_page) = c.get_text(&format!("/studies/LUNG-IO-01/cases/{case}")).await;
    assert_eq!(s, 200);
    assert!(case_page.contains(&format!("/slides/{label}/thumbnail.jpeg")));
    let (s, dzi) = c.get_text(&format!("/studies/LUNG-IO-01/slides/{label}/dzi/slide.dzi")).await;
    assert_eq!(s, 200);
    assert!(dzi.contains("<Size Width=\"1200\" Height=\"960\"/>"), "{dzi}");
    // Level 11 is full resolution (2^10 < 1200 <= 2^11); tile 1_1 covers 253..509.
    for tile in ["11/1_1", "10/0_0", "0/0_0", "5/0_0"] {
        let r = c.get(&format!("/studies/LUNG-IO-01/slides/{label}/dzi/slide_files/{tile}.jpeg")).await;
        assert_eq!(r.status(), 200, "{tile}");
        assert_eq!(r.headers()["content-type"], "image/jpeg");
        let bytes = r.bytes().await.unwrap();
        assert_eq!(&bytes[..2], &[0xFF, 0xD8]);
    }
    let r = c.get(&format!("/studies/LUNG-IO-01/slides/{label}/dzi/slide_files/11/99_0.jpeg")).await;
    assert_eq!(r.status(), 404);
    let r = c.get(&format!("/studies/LUNG-IO-01/slides/{label}/thumbnail.jpeg")).await;
    assert_eq!(r.status(), 200);
    // The same tile again comes from the cache.
    c.get(&format!("/studies/LUNG-IO-01/slides/{label}/dzi/slide_files/11/1_1.jpeg")).await;
    let metrics = c.http.get(c.url("/metrics")).bearer_auth("scrape").send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("evidentia_tile_cache_requests_total{result=\"hit\"} 1"), "{metrics}");
    // Four tiles, the thumbnail and the tile outside the pyramid were misses.
    assert!(metrics.contains("evidentia_tile_cache_requests_total{result=\"miss\"} 6"), "{metrics}");
    let csv = c.get("/studies/LUNG-IO-01/slides.csv").await.text().await.unwrap();
    assert!(csv.starts_with("label,case,site,stain") && csv.contains(label.as_str()));
    // The API.
    let api: serde_json::Value = c.get("/api/v1/studies/LUNG-IO-01/slides").await.json().await.unwrap();
    assert_eq!(api["total"], 1);
    assert_eq!(api["items"][0]["info"]["levels"].as_array().map(|l| l.len()), Some(2));

    // The same file again is recognised, not stored twice.
    let svs = std::fs::read(fixture("aperio.svs")).unwrap();
    let r = upload(&c, manifest(&[("again.svs", &subject, "H&E")]), &[("again.svs", svs)]).await;
    assert_eq!(r.status(), 303);
    wait_ingest(&app, ingest_id_from(&location(&r))).await;
    assert_eq!(stored_slides(&app).len(), 1);
}

#[tokio::test]
async fn manifest_problems_are_listed_and_nothing_is_started() {
    let app = spawn_app();
    let c = app.login("manager").await;
    let (subject, _) = first_subject();
    let svs = std::fs::read(fixture("aperio.svs")).unwrap();
    let bad =
        manifest(&[("a.svs", "NO-SUCH-SUBJECT", "H&E"), ("missing.svs", &subject, ""), ("a.svs", &subject, "H&E")]);
    let r = upload(&c, bad, &[("a.svs", svs.clone()), ("extra.svs", svs.clone())]).await;
    assert_eq!(r.status(), 422);
    let page = r.text().await.unwrap();
    for expected in [
        "manifest row 1, column subject_id",
        "manifest row 2, column file",
        "manifest row 2, column stain",
        "manifest row 3, column file: the same file as row 1",
        "1 uploaded file(s) are not named in the manifest",
    ] {
        assert!(page.contains(expected), "missing {expected:?} in the page");
    }
    assert!(!page.contains("NO-SUCH-SUBJECT"), "subject ids are not echoed");
    // Columns that could carry identifiers are refused, not stored.
    let extra = format!("file,subject_id,stain,mrn\na.svs,{subject},H&E,MRN0099\n");
    let r = upload(&c, extra.into_bytes(), &[("a.svs", svs.clone())]).await;
    assert_eq!(r.status(), 422);
    let page = r.text().await.unwrap();
    assert!(page.contains("the column mrn is not accepted") && !page.contains("MRN0099"), "{page}");
    let missing_columns = upload(&c, b"name,stain\nx,H&E\n".to_vec(), &[("x", svs)]).await;
    assert_eq!(missing_columns.status(), 422);
    assert!(missing_columns.text().await.unwrap().contains("the column file is missing"));
    assert!(stored_slides(&app).is_empty());
    let ingests: i64 = slide_ingests::table.count().get_result(&mut app.conn()).unwrap();
    assert_eq!(ingests, 0);
    assert!(files_under(&app.data_dir.join("tmp")).is_empty(), "uploads removed after a refusal");
}

#[tokio::test]
async fn a_bad_file_fails_alone_with_a_reason() {
    let app = spawn_app();
    let c = app.login("manager").await;
    let subjects = evidentia::demo::truth::subjects(evidentia::demo::DEMO_SUBJECTS, evidentia::demo::truth::SEED);
    let snubh: Vec<_> = subjects.iter().filter(|s| s.site == "SNUBH").take(4).collect();
    let files = [
        ("good.tiff", std::fs::read(fixture("libvips-ycbcr.tiff")).unwrap()),
        ("cut.svs", std::fs::read(fixture("truncated.svs")).unwrap()),
        ("j2k.svs", std::fs::read(fixture("jpeg2000.svs")).unwrap()),
        ("notes.tiff", std::fs::read(fixture("not-a-slide.tiff")).unwrap()),
    ];
    let rows: Vec<(&str, &str, &str)> =
        files.iter().zip(&snubh).map(|((n, _), s)| (*n, s.hospital_id.as_str(), "PD-L1 22C3")).collect();
    let r = upload(&c, manifest(&rows), &files).await;
    assert_eq!(r.status(), 303);
    let id = ingest_id_from(&location(&r));
    wait_ingest(&app, id).await;
    let record = ingest_record(&app, id);
    assert_eq!((record.files_ingested, record.files_failed), (1, 3), "{:?}", record.report);
    let rows = record.rows();
    assert_eq!(rows[0].outcome, "ingested");
    assert!(rows[2].message.contains("JPEG 2000"), "{}", rows[2].message);
    for r in &rows[1..] {
        assert_eq!(r.outcome, "failed");
        assert!(
            !r.message.contains("cut.svs") && !r.message.contains("notes.tiff") && !r.message.contains("upload"),
            "{}",
            r.message
        );
    }
    assert_eq!(stored_slides(&app).len(), 1);
    // No half-written slide anywhere in the store.
    let store = app.stored("slides");
    assert_eq!(store.len(), 1, "{store:?}");
    assert!(files_under(&app.data_dir.join("slides/.partial")).is_empty(), "no partial copy left");

    // An ingest whose every file fails is a failed job, and says what the file is in words.
    let only = [("notes.tiff", std::fs::read(fixture("not-a-slide.tiff")).unwrap())];
    let r = upload(&c, manifest(&[("notes.tiff", snubh[3].hospital_id.as_str(), "H&E")]), &only).await;
    let id = ingest_id_from(&location(&r));
    wait_ingest(&app, id).await;
    let record = ingest_record(&app, id);
    assert!(record.rows()[0].message.starts_with("a PDF document — not a slide"), "{}", record.rows()[0].message);
    let job: evidentia::jobs::Job = {
        use evidentia::db::schema::jobs;
        let id: i32 = jobs::table.order(jobs::id.desc()).select(jobs::id).first(&mut app.conn()).unwrap();
        wait_finished(&app, id).await
    };
    assert_eq!(job.status.as_str(), "failed", "{job:?}");
}

#[tokio::test]
async fn slide_qc_needs_a_reason_is_audited_and_respects_the_lock() {
    let app = spawn_app();
    let c = app.login("manager").await;
    let label = ingest_one(&app, &c, "s.tiff", "bigtiff-lzw.tiff").await;
    let qc = format!("/studies/LUNG-IO-01/slides/{label}/qc");
    let r = c.post(&qc, &[("action", "exclude"), ("reason", "  ")]).await;
    assert_eq!(r.status(), 303);
    let status: String = slides::table.select(slides::status).first(&mut app.conn()).unwrap();
    assert_eq!(status, "available");
    c.post(&qc, &[("action", "exclude"), ("reason", "pen marks")]).await;
    let status: String = slides::table.select(slides::status).first(&mut app.conn()).unwrap();
    assert_eq!(status, "excluded");
    let e = audit_events(&app, "exclude").into_iter().find(|e| e.entity.as_str() == "slide").expect("audited");
    assert_eq!(e.reason.as_deref(), Some("pen marks"));
    // Excluded slides stay visible, marked.
    let (_, list) = c.get_text("/studies/LUNG-IO-01/slides?status=excluded").await;
    assert!(list.contains(&label) && list.contains("pen marks"));
    c.post(&qc, &[("action", "include"), ("reason", "pen outside tissue")]).await;
    let status: String = slides::table.select(slides::status).first(&mut app.conn()).unwrap();
    assert_eq!(status, "available");
    // A locked study cannot change.
    let admin = app.login("admin").await;
    admin.post("/studies/LUNG-IO-01/status", &[("to", "locked"), ("reason", "test: checklist waived")]).await;
    assert_eq!(evidentia::studies::get_by_code(&mut app.conn(), "LUNG-IO-01").unwrap().status.as_str(), "locked");
    c.post(&qc, &[("action", "exclude"), ("reason", "blur")]).await;
    let status: String = slides::table.select(slides::status).first(&mut app.conn()).unwrap();
    assert_eq!(status, "available");
}

#[tokio::test]
async fn slides_are_checked_in_every_route() {
    let app = spawn_app();
    let manager = app.login("manager").await;
    let label = ingest_one(&app, &manager, "p.png", "plain.png").await;
    let routes = [
        "/studies/LUNG-IO-01/slides".to_string(),
        "/studies/LUNG-IO-01/slides.csv".into(),
        format!("/studies/LUNG-IO-01/slides/{label}"),
        format!("/studies/LUNG-IO-01/slides/{label}/thumbnail.jpeg"),
        format!("/studies/LUNG-IO-01/slides/{label}/dzi/slide.dzi"),
        format!("/studies/LUNG-IO-01/slides/{label}/dzi/slide_files/0/0_0.jpeg"),
        format!("/api/v1/studies/LUNG-IO-01/slides/{label}"),
    ];
    let monitor = app.login("monitor").await;
    let annotator = app.login("annotator1").await;
    let outsider = app.login("outsider").await;
    let anonymous = app.client();
    for route in &routes {
        assert_eq!(monitor.get(route).await.status(), 200, "monitor {route}");
        // Annotators only see slides a reading campaign assigns them (through their reads).
        assert_eq!(annotator.get(route).await.status(), 404, "annotator {route}");
        assert_eq!(outsider.get(route).await.status(), 404, "outsider {route}");
        let s = anonymous.get(route).await.status();
        assert!(s == 303 || s == 401, "anonymous {route}: {s}");
    }
    // Another study's slide id in this study's URL is simply not found.
    let other = format!("/studies/{OTHER_STUDY}/slides/{label}");
    assert_eq!(app.login("admin").await.get(&other).await.status(), 404);
    // Only managers ingest and do QC.
    assert_eq!(monitor.get("/studies/LUNG-IO-01/slides/ingest").await.status(), 403);
    let (subject, _) = first_subject();
    let r = upload(&monitor, manifest(&[("p.png", &subject, "H&E")]), &[("p.png", vec![1, 2, 3])]).await;
    assert_eq!(r.status(), 403);
    let r = monitor
        .post(&format!("/studies/LUNG-IO-01/slides/{label}/qc"), &[("action", "exclude"), ("reason", "x")])
        .await;
    assert_eq!(r.status(), 403);
}

/// Slide images are cached by the browser (privately) and revalidated by an ETag that names the
/// file and the tile; the access check comes first; pages are never stored; only pages set the
/// CSRF cookie.
#[tokio::test]
async fn slide_images_are_cached_privately_and_revalidated() {
    let app = spawn_app();
    let manager = app.login("manager").await;
    let label = ingest_one(&app, &manager, "p.png", "plain.png").await;
    let sha: String =
        slides::table.filter(slides::label.eq(&label)).select(slides::sha256).first(&mut app.conn()).unwrap();
    let tile = format!("/studies/LUNG-IO-01/slides/{label}/dzi/slide_files/0/0_0.jpeg");
    let other_tile = format!("/studies/LUNG-IO-01/slides/{label}/dzi/slide_files/1/0_0.jpeg");
    let header = |r: &reqwest::Response, name: &str| {
        r.headers().get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
    };
    let with_etag = |c: &crate::helpers::Client, path: &str, etag: &str| {
        c.http.get(c.url(path)).header("if-none-match", etag.to_string()).send()
    };

    let first = manager.get(&tile).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "cache-control"), "private, max-age=86400");
    let etag = header(&first, "etag");
    assert_eq!(etag, format!("\"{sha}-0-0-0\""));
    assert!(first.headers().get("set-cookie").is_none(), "a tile sets no cookie");
    // Revalidated: 304, no body, nothing rendered.
    let again = with_etag(&manager, &tile, &etag).await.unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(header(&again, "etag"), etag);
    assert!(again.bytes().await.unwrap().is_empty());
    // The tag names the tile: another tile with it is sent in full.
    let r = with_etag(&manager, &other_tile, &etag).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "etag"), format!("\"{sha}-1-0-0\""));
    // The descriptor and the thumbnail too.
    for (path, what) in [("dzi/slide.dzi", "dzi"), ("thumbnail.jpeg", "thumbnail")] {
        let r = manager.get(&format!("/studies/LUNG-IO-01/slides/{label}/{path}")).await;
        assert_eq!((r.status().as_u16(), header(&r, "etag")), (200, format!("\"{sha}-{what}\"")), "{path}");
        assert_eq!(header(&r, "cache-control"), "private, max-age=86400", "{path}");
    }
    // Knowing the tag is not access: an outsider still gets 404.
    let outsider = app.login("outsider").await;
    assert_eq!(with_etag(&outsider, &tile, &etag).await.unwrap().status(), 404);
    // Pages hold changing study data: never stored.
    let page = manager.get("/studies/LUNG-IO-01/slides").await;
    assert_eq!(header(&page, "cache-control"), "no-store");
    // Only a page hands out the CSRF cookie to a browser that has none.
    let anonymous = app.client();
    for path in ["/healthz", "/static/css/app.css"] {
        let r = anonymous.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.headers().get("set-cookie").is_none(), "{path} sets no cookie");
    }
    let login = anonymous.get("/login").await;
    assert!(header(&login, "set-cookie").starts_with("ev_csrf="), "the sign-in page sets the CSRF cookie");
}

#[tokio::test]
async fn cli_inspects_reads_regions_ingests_and_lists() {
    let app = spawn_app();
    let out = app.cli(&["slides", "inspect", "--json", fixture("aperio.svs").to_str().unwrap()], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["format"], "aperio-svs");
    assert_eq!(info["levels"][1]["downsample"], 4.0);
    assert_eq!(info["objective_power"], 20.0);
    let names: Vec<&str> = info["associated"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert!(names.contains(&"label") && names.contains(&"macro"), "{names:?}");
    for bad in ["empty.tiff", "not-a-slide.tiff", "truncated.svs", "jpeg2000.svs", "absurd-dimensions.tiff"] {
        let out = app.cli(&["slides", "inspect", fixture(bad).to_str().unwrap()], None);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{bad}: {err}");
    }
    let png = app.scratch.join("region.png");
    let out = app.cli(
        &[
            "slides",
            "region",
            fixture("aperio.svs").to_str().unwrap(),
            "--level",
            "1",
            "--x",
            "400",
            "--y",
            "400",
            "--width",
            "64",
            "--height",
            "48",
            "--out",
            png.to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let decoded = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap())).read_info().unwrap();
    assert_eq!((decoded.info().width, decoded.info().height), (64, 48));

    // Ingest from a folder on the server, as a manager; the manifest sits in the folder.
    let dir = app.scratch.join("batch");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture("tifffile-jfif.tiff"), dir.join("KIM_MINJI_slide1.tiff")).unwrap();
    let (subject, case) = first_subject();
    std::fs::write(
        dir.join("manifest.csv"),
        format!("file,subject_id,stain,site\nKIM_MINJI_slide1.tiff,{subject},H&E,SNUBH\n"),
    )
    .unwrap();
    let m = dir.join("manifest.csv");
    let out = app.cli(
        &["--as", "annotator1", "slides", "ingest", "--study", "LUNG-IO-01", "--manifest", m.to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "annotators cannot ingest");
    let out = app.cli(
        &["--as", "manager", "slides", "ingest", "--study", "LUNG-IO-01", "--manifest", m.to_str().unwrap()],
        None,
    );
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("{case}-S01")) && stdout.contains("1 ingested"), "{stdout}");
    assert!(dir.join("KIM_MINJI_slide1.tiff").exists(), "files on the server are left alone");
    let out = app.cli(&["slides", "list", "--study", "LUNG-IO-01"], None);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{case}-S01")));
    for (f, bytes) in app.every_file() {
        assert!(!bytes.windows(9).any(|w| w == b"KIM_MINJI"), "source file name stored in {f}");
    }
    // A refused manifest: exit 2, the problems on stderr, nothing stored.
    std::fs::write(&m, "file,subject_id,stain\nnope.tiff,,\n").unwrap();
    let out = app.cli(&["slides", "ingest", "--study", "LUNG-IO-01", "--manifest", m.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("manifest row 1, column file") && err.contains("manifest row 1, column stain"), "{err}");
    assert_eq!(stored_slides(&app).len(), 1);
}

#[tokio::test]
async fn an_ingest_cut_short_resumes_without_duplicates_or_half_written_slides() {
    use evidentia::jobs;
    use evidentia::slides::ingest::{self, Plan};
    let app = spawn_app_with(|cfg| {
        cfg.job_workers = 0;
        cfg.job_stale_after = Duration::from_secs(1);
    });
    let c = app.login("manager").await;
    let subjects = evidentia::demo::truth::subjects(evidentia::demo::DEMO_SUBJECTS, evidentia::demo::truth::SEED);
    let two: Vec<_> = subjects.iter().filter(|s| s.site == "SNUBH").take(2).collect();
    let files = [
        ("one.svs", std::fs::read(fixture("aperio.svs")).unwrap()),
        ("two.tiff", std::fs::read(fixture("libvips-ycbcr.tiff")).unwrap()),
    ];
    let rows = [("one.svs", two[0].hospital_id.as_str(), "H&E"), ("two.tiff", two[1].hospital_id.as_str(), "H&E")];
    let r = upload(&c, manifest(&rows), &files).await;
    assert_eq!(r.status(), 303);
    let ingest_id = ingest_id_from(&location(&r));
    let job_id: i32 = slide_ingests::table
        .find(ingest_id)
        .select(slide_ingests::job_id)
        .first::<Option<i32>>(&mut app.conn())
        .unwrap()
        .expect("queued as a job");

    // A worker takes the job, stores the first slide, dies before recording it, and leaves the
    // second one half written.
    let job = jobs::claim(&mut app.conn(), job_id, "doomed-worker").unwrap().unwrap();
    let plan: Plan = serde_json::from_slice(
        &std::fs::read(app.data_dir.join(format!("tmp/slide-ingest-{ingest_id}.json"))).unwrap(),
    )
    .unwrap();
    let partial_dir = app.data_dir.join("slides/.partial");
    std::fs::create_dir_all(&partial_dir).unwrap();
    // On object storage the upload waits in the bucket: the worker fetches it first.
    let mut entry = plan.entries[0].clone();
    if let Some(key) = &entry.staged {
        entry.source = app.scratch.join("fetched-row-1");
        app.config.storage.download(key, &entry.source).unwrap();
    }
    let first = ingest::ingest_one(
        &mut app.conn(),
        &app.config.storage,
        "LUNG-IO-01",
        "manager",
        ingest_id,
        &entry,
        &partial_dir.join(format!("job-{job_id}-row-1.partial")),
    );
    assert_eq!(first.outcome, "ingested");
    std::fs::write(partial_dir.join(format!("job-{job_id}-row-2.partial")), b"II*\0half a slide").unwrap();
    {
        use evidentia::db::schema::jobs::dsl;
        let old = chrono::Utc::now().naive_utc() - chrono::Duration::seconds(30);
        diesel::update(dsl::jobs.find(job.id)).set(dsl::heartbeat_at.eq(Some(old))).execute(&mut app.conn()).unwrap();
    }
    // The half-written copy is no slide.
    assert_eq!(stored_slides(&app).len(), 1);

    // Another worker picks it up: the first file is recognised, the second finished.
    assert!(evidentia::jobs::worker::run_once(&app.pool, &app.config, "rescuer").unwrap());
    let j = jobs::get(&mut app.conn(), job_id).unwrap();
    assert_eq!((j.status.as_str(), j.attempts), ("succeeded", 2));
    let record =
        ingest::ingests(&mut app.conn(), demo_study(&app)).unwrap().into_iter().find(|i| i.id == ingest_id).unwrap();
    let rows = record.rows();
    let outcomes: Vec<&str> = rows.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(outcomes, ["skipped", "ingested"]);
    assert!(record.finished_at.is_some());
    let stored = stored_slides(&app);
    assert_eq!(stored.len(), 2, "no duplicate: {stored:?}");
    let in_store = app.stored("slides");
    assert_eq!(in_store.len(), 2, "only the two complete copies: {in_store:?}");
    for (_, sha, format) in &stored {
        let format = evidentia::slides::SlideFormat::parse(format).unwrap();
        assert!(evidentia::slides::open_stored(&app.config.storage, sha, format).is_ok());
    }
    assert!(!app.data_dir.join(format!("tmp/slide-ingest-{ingest_id}.json")).exists(), "the plan is removed");
    assert!(files_under(&app.data_dir.join("tmp")).is_empty(), "the uploads are removed");
}

#[tokio::test]
async fn an_ingest_cancelled_before_it_ran_leaves_no_upload_behind() {
    let app = spawn_app_with(|cfg| cfg.job_workers = 0);
    let c = app.login("manager").await;
    let (subject, _) = first_subject();
    let r = upload(
        &c,
        manifest(&[("x.svs", &subject, "H&E")]),
        &[("x.svs", std::fs::read(fixture("aperio.svs")).unwrap())],
    )
    .await;
    assert_eq!(r.status(), 303);
    let ingest_id = ingest_id_from(&location(&r));
    assert!(!files_under(&app.data_dir.join("tmp")).is_empty(), "the upload waits for its job");
    // On object storage the upload waits in the bucket instead of on this node's disk.
    let plan: evidentia::slides::ingest::Plan = serde_json::from_slice(
        &std::fs::read(app.data_dir.join(format!("tmp/slide-ingest-{ingest_id}.json"))).unwrap(),
    )
    .unwrap();
    let staged: Vec<String> = plan.entries.iter().filter_map(|e| e.staged.clone()).collect();
    assert_eq!(staged.len(), usize::from(app.config.storage.local_root().is_none()), "{staged:?}");
    for key in &staged {
        assert!(app.config.storage.exists(key).unwrap());
        assert!(files_under(&app.data_dir.join("tmp")).iter().all(|p| !p.to_string_lossy().contains("slide-upload")));
    }
    let job_id: i32 = slide_ingests::table
        .find(ingest_id)
        .select(slide_ingests::job_id)
        .first::<Option<i32>>(&mut app.conn())
        .unwrap()
        .unwrap();
    let r = c.post(&format!("/studies/LUNG-IO-01/jobs/{job_id}/cancel"), &[]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(evidentia::jobs::get(&mut app.conn(), job_id).unwrap().status.as_str(), "cancelled");
    // The next start (or ingest) sweeps what the job never got to clean.
    evidentia::slides::ingest::sweep(&mut app.conn(), &app.config.storage, &app.data_dir);
    assert!(files_under(&app.data_dir.join("tmp")).is_empty(), "uploads and plan removed");
    for key in &staged {
        assert!(!app.config.storage.exists(key).unwrap(), "the staged upload {key} is removed");
    }
    let finished: Option<chrono::NaiveDateTime> =
        slide_ingests::table.find(ingest_id).select(slide_ingests::finished_at).first(&mut app.conn()).unwrap();
    assert!(finished.is_some());
    assert!(stored_slides(&app).is_empty());
}

#[tokio::test]
async fn an_upload_over_the_limit_is_refused_and_removed() {
    let app = spawn_app_with(|cfg| cfg.max_slide_upload_bytes = 100 * 1024);
    let c = app.login("manager").await;
    let (subject, _) = first_subject();
    let svs = std::fs::read(fixture("aperio.svs")).unwrap();
    let r = upload(&c, manifest(&[("big.svs", &subject, "H&E")]), &[("big.svs", svs)]).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("over the limit"));
    assert!(files_under(&app.data_dir.join("tmp")).is_empty(), "the partial upload is removed");
    let ingests: i64 = slide_ingests::table.count().get_result(&mut app.conn()).unwrap();
    assert_eq!(ingests, 0);
}

/// A command-line ingest that dies — killed, or unable to record its end on a full disk — leaves
/// its job `running` with nobody to end it in an installation without a server. The next
/// `slides ingest` of the study takes it over once its heartbeat is stale, runs it to its end
/// (no duplicate, its plan file gone), then does its own work.
#[tokio::test]
async fn a_command_line_ingest_cut_short_is_finished_by_the_next_one() {
    use evidentia::jobs;
    use evidentia::slides::ingest;
    let app = spawn_app_with(|cfg| cfg.job_workers = 0);
    let dir = app.scratch.join("batch");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture("tifffile-jfif.tiff"), dir.join("slide1.tiff")).unwrap();
    let (subject, case) = first_subject();
    let m = dir.join("manifest.csv");
    std::fs::write(&m, format!("file,subject_id,stain,site\nslide1.tiff,{subject},H&E,SNUBH\n")).unwrap();

    // What `slides ingest` does up to running the job, then it "dies" holding the job.
    let mut conn = app.conn();
    let user = evidentia::auth::users::find_by_username(&mut conn, "manager").unwrap().unwrap();
    let actor = evidentia::auth::Actor::from_user(&user);
    let access = evidentia::auth::permissions::study_access(&mut conn, &actor, "LUNG-IO-01").unwrap();
    let key = evidentia::cases::deid::study_key(&mut conn, &app.data_dir, "LUNG-IO-01").unwrap();
    let scrubber = evidentia::cases::scrub::Scrubber::new(&[], &[]).unwrap();
    let files: Vec<_> =
        ingest::server_files(std::slice::from_ref(&dir)).unwrap().into_iter().filter(|f| f.path != m).collect();
    let plan = ingest::plan(&mut conn, &access, &key, &scrubber, &std::fs::read(&m).unwrap(), &files, None).unwrap();
    let storage = &app.config.storage;
    let (ingest_id, job) =
        ingest::start(&mut conn, &actor, &access, storage, &app.data_dir.join("tmp"), &plan, Some("cli")).unwrap();
    // Created claimed: no worker (of another host, which could not read the plan) takes it first.
    assert_eq!((job.status, job.worker.as_deref()), (jobs::JobStatus::Running, Some("cli")));
    assert!(jobs::claim_next(&mut conn, "another-host").unwrap().is_none());
    let plan_file = app.data_dir.join(format!("tmp/slide-ingest-{ingest_id}.json"));
    assert!(plan_file.exists());
    std::thread::sleep(Duration::from_millis(1500));

    let out = app
        .command()
        .args(["--as", "manager", "slides", "ingest", "--study", "LUNG-IO-01", "--manifest"])
        .arg(&m)
        .env("EVIDENTIA_JOB_STALE_SECS", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout
            .contains(&format!("ingest #{ingest_id} (job {}, resumed): 1 ingested, 0 already there, 0 failed", job.id)),
        "{stdout}"
    );
    assert!(stdout.contains("0 ingested, 1 already there, 0 failed"), "then its own: {stdout}");
    let job = jobs::get(&mut conn, job.id).unwrap();
    assert_eq!(job.status, jobs::JobStatus::Succeeded, "{job:?}");
    assert!(!plan_file.exists(), "the plan, which names the source files, is gone");
    let finished: Option<chrono::NaiveDateTime> =
        slide_ingests::table.find(ingest_id).select(slide_ingests::finished_at).first(&mut conn).unwrap();
    assert!(finished.is_some());
    let stored = stored_slides(&app);
    assert_eq!(stored.len(), 1, "no duplicate: {stored:?}");
    assert_eq!(stored[0].0, format!("{case}-S01"));
    assert!(app.cli(&["audit", "verify"], None).status.success());
}

/// On object storage, an upload received by one node is ingested by a worker on another host:
/// the worker has a data dir of its own (it never sees the receiving node's disk) and fetches
/// the staged files and the plan from the bucket; nothing of the upload is left on either node
/// or in the bucket. Object storage only (the suite's PostgreSQL pass).
#[tokio::test]
async fn an_upload_on_one_node_is_ingested_by_a_worker_on_another() {
    let app = spawn_app_with(|cfg| cfg.job_workers = 0);
    let Some(database) = app.database_url.clone().filter(|_| app.config.storage.local_root().is_none()) else {
        eprintln!("an upload ingested on another host: needs object storage (the suite's PostgreSQL pass)");
        return;
    };
    let c = app.login("manager").await;
    let (subject, case) = first_subject();
    let svs = std::fs::read(fixture("aperio.svs")).unwrap();
    let r = upload(&c, manifest(&[("x.svs", &subject, "H&E")]), &[("x.svs", svs)]).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap_or_default());
    let id = ingest_id_from(&location(&r));
    let other = tempfile::tempdir().unwrap();
    let mut worker = std::process::Command::new(env!("CARGO_BIN_EXE_evidentia"))
        .arg("--data-dir")
        .arg(other.path())
        .args(["worker", "--threads", "1"])
        .env("EVIDENTIA_DATABASE_URL", &database)
        .env("EVIDENTIA_STORAGE", app.config.storage.describe())
        .env("EVIDENTIA_SECRETS_DIR", app.data_dir.join("secrets"))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_ingest(&app, id).await;
    let _ = worker.kill();
    let _ = worker.wait();
    let stored = stored_slides(&app);
    assert_eq!(stored.len(), 1, "ingested by the other host's worker");
    assert_eq!(stored[0].0, format!("{case}-S01"));
    assert!(files_under(&other.path().join("tmp")).is_empty(), "nothing left on the worker's host");
    assert!(files_under(&other.path().join("slides")).is_empty());
    assert!(files_under(&app.data_dir.join("tmp")).iter().all(|p| !p.to_string_lossy().contains("slide-upload")));
    let plan: evidentia::slides::ingest::Plan =
        serde_json::from_slice(&std::fs::read(app.data_dir.join(format!("tmp/slide-ingest-{id}.json"))).unwrap())
            .unwrap();
    let staged = plan.entries[0].staged.clone().expect("staged in the bucket");
    assert!(!app.config.storage.exists(&staged).unwrap(), "the staged upload is gone from the bucket");
}
