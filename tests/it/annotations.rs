//! Reader studies: campaigns with a reproducible per-reader order, blinding against direct URLs
//! and the API, drafts / submit / reopen with validation and audit, the washout of re-reads,
//! adjudication into the reference, the agreement view, and QuPath GeoJSON through the CLI.

use std::path::Path;

use diesel::prelude::*;
use serde_json::{json, Value};

use crate::helpers::*;
use evidentia::annotations::{adjudication, campaigns, geojson, order, reads, schema};
use evidentia::auth::permissions::study_access;
use evidentia::auth::Actor;
use evidentia::db::schema::{campaigns as campaigns_t, reads as reads_t, slides};

const STUDY: &str = "LUNG-IO-01";

/// Ingests three small fixture slides for the first three SNUBH subjects and saves the default
/// annotation schema; returns the slide labels.
pub fn reading_study(app: &TestApp) -> Vec<String> {
    use evidentia::slides::ingest::{self, SourceFile};
    let mut conn = app.conn();
    let actor = Actor::cli_operator();
    let access = study_access(&mut conn, &actor, STUDY).unwrap();
    let subjects = evidentia::demo::truth::subjects(evidentia::demo::DEMO_SUBJECTS, evidentia::demo::truth::SEED);
    let fixtures = ["aperio.svs", "libvips-ycbcr.tiff", "plain.png"];
    let mut manifest = String::from("file,subject_id,stain,site\n");
    let mut files = Vec::new();
    for (f, s) in fixtures.iter().zip(subjects.iter().filter(|s| s.site == "SNUBH")) {
        manifest.push_str(&format!("{f},{},H&E,SNUBH\n", s.hospital_id));
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/slides").join(f);
        files.push(SourceFile { name: f.to_string(), path, uploaded: false });
    }
    let key = evidentia::cases::deid::study_key(&mut conn, &app.data_dir, STUDY).unwrap();
    let plan = ingest::plan(&mut conn, &access, &key, &no_patterns(), manifest.as_bytes(), &files, None).unwrap();
    let report = ingest::ingest_now(&mut conn, &actor, &access, &app.config.storage, &app.data_dir, &plan).unwrap();
    assert!(report.iter().all(|r| r.outcome == "ingested"), "{report:?}");
    let def = schema::Definition::parse_text(schema::DEFAULT_TEXT).unwrap();
    schema::save(&mut conn, &actor, &access, &def, "").unwrap();
    slides::table.select(slides::label).order(slides::label).load(&mut conn).unwrap()
}

/// Creates a campaign through the web form as the manager; returns its id.
pub async fn create_campaign(manager: &Client, fields: &[(&str, &str)]) -> i32 {
    let r = manager.post(&format!("/studies/{STUDY}/campaigns"), fields).await;
    let loc = location(&r);
    assert_eq!(r.status(), 303, "campaign not created: {}", r.text().await.unwrap_or_default());
    loc.rsplit('/').next().and_then(|s| s.parse().ok()).unwrap()
}

pub fn read_id(app: &TestApp, campaign: i32, reader: &str, slide: &str) -> i32 {
    use evidentia::db::schema::users;
    reads_t::table
        .inner_join(users::table)
        .inner_join(slides::table)
        .filter(reads_t::campaign_id.eq(campaign))
        .filter(users::username.eq(reader))
        .filter(slides::label.eq(slide))
        .select(reads_t::id)
        .first(&mut app.conn())
        .unwrap()
}

async fn save_draft(c: &Client, read: i32, body: Value) -> reqwest::Response {
    c.http
        .post(c.url(&format!("/studies/{STUDY}/reads/{read}/draft")))
        .header("X-CSRF-Token", &c.csrf)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn valid_values(phenotype: &str) -> Value {
    json!({"phenotype": phenotype, "til_density": "150", "tumour_present": "yes", "comment": ""})
}

pub async fn submit(c: &Client, read: i32, phenotype: &str, density: &str) -> reqwest::Response {
    c.post(
        &format!("/studies/{STUDY}/reads/{read}/submit"),
        &[("field.phenotype", phenotype), ("field.til_density", density), ("field.tumour_present", "yes")],
    )
    .await
}

fn read_status(app: &TestApp, read: i32) -> (String, i32) {
    reads_t::table.find(read).select((reads_t::status, reads_t::region_count)).first(&mut app.conn()).unwrap()
}

#[tokio::test]
async fn a_campaign_gives_each_reader_the_slides_in_an_order_reproducible_from_the_seed() {
    let app = spawn_app();
    let labels = reading_study(&app);
    let manager = app.login("manager").await;
    let id = create_campaign(
        &manager,
        &[
            ("name", "First read"),
            ("readers", "annotator1"),
            ("readers", "annotator2"),
            ("seed", "7"),
            ("blind_case_data", "on"),
        ],
    )
    .await;
    for reader in ["annotator1", "annotator2"] {
        let mut got: Vec<(i32, String)> = reads_t::table
            .inner_join(slides::table)
            .inner_join(evidentia::db::schema::users::table)
            .filter(reads_t::campaign_id.eq(id))
            .filter(evidentia::db::schema::users::username.eq(reader))
            .select((reads_t::position, slides::label))
            .load(&mut app.conn())
            .unwrap();
        got.sort();
        let order: Vec<String> = got.into_iter().map(|(_, l)| l).collect();
        assert_eq!(order, order::reading_order(7, reader, &labels), "{reader}'s order follows the seed");
    }
    let created = audit_events(&app, "create").into_iter().find(|e| e.entity.as_str() == "campaign").expect("audited");
    let new: Value = serde_json::from_str(created.new_value.as_deref().unwrap()).unwrap();
    assert_eq!((new["seed"].as_i64(), new["readers"].clone()), (Some(7), json!(["annotator1", "annotator2"])));

    // Bad input names the field and creates nothing.
    let r = manager
        .post(&format!("/studies/{STUDY}/campaigns"), &[("name", "First read"), ("readers", "statistician")])
        .await;
    assert_eq!(r.status(), 422);
    let body = r.text().await.unwrap();
    assert!(body.contains("statistician is not an annotator") && body.contains("exists already"), "{body}");
    let r = manager
        .post(&format!("/studies/{STUDY}/campaigns"), &[("name", "X"), ("readers", "annotator1"), ("seed", "-3")])
        .await;
    assert!(r.text().await.unwrap().contains("the seed is a whole number"));
    let n: i64 = campaigns_t::table.count().get_result(&mut app.conn()).unwrap();
    assert_eq!(n, 1);

    // Only managers create campaigns; annotators do not even see them.
    let stat = app.login("statistician").await;
    assert_eq!(stat.post(&format!("/studies/{STUDY}/campaigns"), &[("name", "Y")]).await.status(), 403);
    let a1 = app.login("annotator1").await;
    assert_eq!(a1.get(&format!("/studies/{STUDY}/campaigns/{id}")).await.status(), 404);
}

#[tokio::test]
async fn blinding_holds_against_direct_urls_and_the_api() {
    let app = spawn_app();
    let labels = reading_study(&app);
    let manager = app.login("manager").await;
    let id = create_campaign(
        &manager,
        &[("name", "R1"), ("readers", "annotator1"), ("readers", "annotator2"), ("blind_case_data", "on")],
    )
    .await;
    let mine = read_id(&app, id, "annotator1", &labels[0]);
    let theirs = read_id(&app, id, "annotator2", &labels[0]);
    let a1 = app.login("annotator1").await;

    let (status, page) = a1.get_text(&format!("/studies/{STUDY}/reads/{mine}")).await;
    assert_eq!(status, 200);
    assert!(
        !page.contains(&labels[0]) && !page.contains("SNUBH-0001"),
        "a blinded read shows no slide label or case id"
    );
    assert_eq!(a1.get(&format!("/studies/{STUDY}/reads/{mine}/dzi/slide.dzi")).await.status(), 200);
    assert_eq!(a1.get(&format!("/studies/{STUDY}/reads/{mine}/dzi/slide_files/0/0_0.jpeg")).await.status(), 200);

    let c = app.conn();
    drop(c);
    let case = "SNUBH-0001";
    for path in [
        format!("/studies/{STUDY}/reads/{theirs}"),
        format!("/studies/{STUDY}/reads/{theirs}/regions"),
        format!("/studies/{STUDY}/reads/{theirs}/regions.geojson"),
        format!("/studies/{STUDY}/reads/{theirs}/dzi/slide.dzi"),
        format!("/studies/{STUDY}/reads/{theirs}/dzi/slide_files/0/0_0.jpeg"),
        format!("/studies/{STUDY}/slides/{}", labels[0]),
        format!("/studies/{STUDY}/slides/{}/dzi/slide_files/0/0_0.jpeg", labels[0]),
        format!("/studies/{STUDY}/cases/{case}"),
        format!("/studies/{STUDY}/cases.csv"),
        format!("/studies/{STUDY}/campaigns/{id}"),
        format!("/studies/{STUDY}/campaigns/{id}/reads.csv"),
        format!("/studies/{STUDY}/campaigns/{id}/adjudication"),
        format!("/api/v1/studies/{STUDY}/reads/{theirs}"),
        format!("/api/v1/studies/{STUDY}/campaigns/{id}/reads"),
        format!("/api/v1/studies/{STUDY}/cases/{case}"),
        format!("/api/v1/studies/{STUDY}/slides/{}", labels[0]),
    ] {
        assert_eq!(a1.get(&path).await.status(), 404, "annotator1 must not find {path}");
    }
    // Nor may they write to another reader's read.
    assert_eq!(save_draft(&a1, theirs, json!({"values": {}, "regions": []})).await.status(), 404);
    // And the refusal comes before the body is read: a 100 MB draft announced, 1 KB sent.
    let path = format!("/studies/{STUDY}/reads/{theirs}/draft");
    let answer = post_with_unfinished_body(&app, "annotator1", &path, 100 << 20, &[b' '; 1024]).await;
    assert_eq!(answer.as_deref(), Some("HTTP/1.1 404 Not Found"), "answered without waiting for the body");

    // The API with a token: own read yes, the other's no.
    let token = {
        let r = a1.post("/account/tokens", &[("name", "t")]).await;
        assert_eq!(r.status(), 200, "token page");
        let page = r.text().await.unwrap();
        let start = page.find("evt_").unwrap();
        page[start..].split(|ch: char| !ch.is_ascii_alphanumeric() && ch != '_').next().unwrap().to_string()
    };
    let api = |path: String| a1.http.get(a1.url(&path)).bearer_auth(&token).send();
    let own = api(format!("/api/v1/studies/{STUDY}/reads/{mine}")).await.unwrap();
    assert_eq!(own.status(), 200);
    let own = own.text().await.unwrap();
    assert!(!own.contains(&labels[0]) && !own.contains("SNUBH-0"), "no slide label or case id for a reader: {own}");
    assert_eq!(api(format!("/api/v1/studies/{STUDY}/reads/{theirs}")).await.unwrap().status(), 404);
    let queue: Value = api(format!("/api/v1/studies/{STUDY}/reading")).await.unwrap().json().await.unwrap();
    assert_eq!(queue["items"].as_array().unwrap().len(), labels.len(), "only annotator1's own reads");
    assert!(queue["items"].as_array().unwrap().iter().all(|r| r["reader"] == "annotator1"));
    assert!(labels.iter().all(|l| !queue.to_string().contains(l.as_str())), "the queue shows no slide labels");

    // Reviewing roles see reads; someone outside the study sees nothing.
    let monitor = app.login("monitor").await;
    assert_eq!(monitor.get(&format!("/studies/{STUDY}/reads/{theirs}")).await.status(), 200);
    let outsider = app.login("outsider").await;
    assert_eq!(outsider.get(&format!("/studies/{STUDY}/reads/{mine}")).await.status(), 404);
}

#[tokio::test]
async fn drafts_submit_and_reopen_are_validated_and_audited() {
    let app = spawn_app();
    let labels = reading_study(&app);
    let manager = app.login("manager").await;
    let id = create_campaign(&manager, &[("name", "R1"), ("readers", "annotator1")]).await;
    let read = read_id(&app, id, "annotator1", &labels[0]);
    let a1 = app.login("annotator1").await;

    // Bad values and regions are refused by name, and nothing is stored.
    let r = save_draft(&a1, read, json!({"values": {"phenotype": "hot", "til_density": "-5"}, "regions": []})).await;
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("phenotype") && msg.contains("til_density: -5 is outside"), "{msg}");
    let outside = json!({"values": {}, "regions": [{"geometry": {"Point": [1.0e9, 5.0]}}]});
    let r = save_draft(&a1, read, outside).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("feature 1: coordinate"), "names the region");
    assert_eq!(read_status(&app, read), ("assigned".into(), 0));
    let misdrawn = json!({"values": {}, "regions": [{"class": {"name": "Lymphocyte", "color": [31, 119, 180]},
        "geometry": {"Polygon": [[[1.0, 1.0], [5.0, 1.0], [5.0, 5.0], [1.0, 1.0]]]}}]});
    let r = save_draft(&a1, read, misdrawn).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("region 1: class Lymphocyte is drawn as points, not as a Polygon"));
    let no_csrf =
        a1.http.post(a1.url(&format!("/studies/{STUDY}/reads/{read}/draft"))).json(&json!({})).send().await.unwrap();
    assert_eq!(no_csrf.status(), 403, "JSON saves need the CSRF header");

    // A bad body gets the API's JSON error; a large one (beyond actix's default 2 MiB) is taken.
    let r = a1
        .http
        .post(a1.url(&format!("/studies/{STUDY}/reads/{read}/draft")))
        .header("X-CSRF-Token", &a1.csrf)
        .header("Content-Type", "application/json")
        .body("{\"regions\": 5}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().starts_with("draft:"));
    let many: Vec<Value> =
        (0..40_000).map(|i| json!({"geometry": {"Point": [f64::from(i % 200), f64::from(i / 200 % 100)]}})).collect();
    let r = save_draft(&a1, read, json!({"values": {}, "regions": many})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(read_status(&app, read), ("draft".into(), 40_000));

    // A draft with a point and a polygon.
    let regions = json!([
        {"class": {"name": "Lymphocyte", "color": [31, 119, 180]}, "geometry": {"Point": [20.5, 30.0]}},
        {"class": {"name": "Tumor", "color": [200, 50, 50]}, "geometry": {"Polygon": [[[10.0, 10.0], [60.0, 10.0], [60.0, 50.0], [10.0, 10.0]]]}}
    ]);
    let r = save_draft(&a1, read, json!({"values": {"phenotype": "inflamed"}, "regions": regions})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["region_count"], 2);
    assert_eq!(read_status(&app, read), ("draft".into(), 2));
    let saved = audit_events(&app, "save_draft");
    assert_eq!(saved.len(), 2);
    assert!(saved[0].new_value.as_deref().unwrap().contains("\"region_count\":2"));
    // Saving the same draft again records nothing new.
    save_draft(&a1, read, json!({"values": {"phenotype": "inflamed"}, "regions": regions})).await;
    assert_eq!(audit_events(&app, "save_draft").len(), 2);

    // A save from a page loaded before another change is refused, not applied over it.
    let stale = json!({"values": {}, "regions": [], "base": "2000-01-01 00:00:00"});
    let r = save_draft(&a1, read, stale).await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("changed elsewhere"));
    assert_eq!(read_status(&app, read), ("draft".into(), 2));
    let (_, page) = a1.get_text(&format!("/studies/{STUDY}/reads/{read}")).await;
    let base = page.split("data-updated=\"").nth(1).and_then(|s| s.split('"').next()).unwrap().to_string();
    let r = save_draft(&a1, read, json!({"values": {"phenotype": "inflamed"}, "regions": regions, "base": base})).await;
    assert_eq!(r.status(), 200, "the page's own base is current");

    // Submit needs every required field.
    let r = submit(&a1, read, "inflamed", "").await;
    assert_eq!(r.status(), 303);
    assert_eq!(read_status(&app, read).0, "draft");
    let r = submit(&a1, read, "inflamed", "250").await;
    assert_eq!(r.status(), 303);
    assert_eq!(read_status(&app, read), ("submitted".into(), 2));
    let ev = audit_events(&app, "submit");
    assert_eq!(ev.len(), 1);
    assert!(ev[0].new_value.as_deref().unwrap().contains("\"til_density\":\"250\""));

    // A submitted read changes only after a reopen with a reason.
    assert_eq!(save_draft(&a1, read, json!({"values": {}, "regions": []})).await.status(), 409);
    a1.post(&format!("/studies/{STUDY}/reads/{read}/reopen"), &[("reason", "")]).await;
    assert_eq!(read_status(&app, read).0, "submitted");
    a1.post(&format!("/studies/{STUDY}/reads/{read}/reopen"), &[("reason", "missed a tumour focus")]).await;
    assert_eq!(read_status(&app, read).0, "draft");
    let reopened = audit_events(&app, "reopen");
    assert_eq!(reopened[0].reason.as_deref(), Some("missed a tumour focus"));

    // The reader's GeoJSON download is QuPath's format and reads back.
    let (status, body) = a1.get_text(&format!("/studies/{STUDY}/reads/{read}/regions.geojson")).await;
    assert_eq!(status, 200);
    let back = geojson::parse(body.as_bytes(), &geojson::Limits::for_slide(1e6, 1e6)).unwrap();
    assert_eq!(back.len(), 2);
    assert!(body.contains("\"classification\":{\"name\":\"Tumor\""), "{body}");
}

#[tokio::test]
async fn a_reread_opens_only_after_the_washout() {
    let app = spawn_app();
    let labels = reading_study(&app);
    let manager = app.login("manager").await;
    let first = create_campaign(&manager, &[("name", "First"), ("readers", "annotator1")]).await;
    let a1 = app.login("annotator1").await;
    let r1 = read_id(&app, first, "annotator1", &labels[0]);
    save_draft(&a1, r1, json!({"values": valid_values("desert"), "regions": []})).await;
    assert_eq!(submit(&a1, r1, "desert", "20").await.status(), 303);

    let reread =
        create_campaign(&manager, &[("name", "Second"), ("parent", &first.to_string()), ("washout_days", "14")]).await;
    let (status, page) =
        a1.get_text(&format!("/studies/{STUDY}/reads/{}", read_id(&app, reread, "annotator1", &labels[0]))).await;
    assert_eq!(status, 409);
    let opens = (chrono::Utc::now() + chrono::Duration::days(14)).format("%Y-%m-%d").to_string();
    assert!(page.contains(&format!("washout: this re-read opens on {opens}")), "{page}");
    let not_read_yet = read_id(&app, reread, "annotator1", &labels[1]);
    let (status, page) = a1.get_text(&format!("/studies/{STUDY}/reads/{not_read_yet}")).await;
    assert_eq!(status, 409);
    assert!(page.contains("after you submit the same slide in the first read"), "{page}");
    assert_eq!(save_draft(&a1, not_read_yet, json!({"values": {}, "regions": []})).await.status(), 409);
    let (_, queue) = a1.get_text(&format!("/studies/{STUDY}/reading")).await;
    assert!(queue.contains(&format!("opens {opens}")), "the queue says when");
    // One count of what can be read now (here and on the study page), and what opens later.
    assert!(queue.contains("2 to read now · 3 open later"), "{queue}");
    let (_, overview) = a1.get_text(&format!("/studies/{STUDY}")).await;
    assert!(overview.contains("<strong>2</strong> slides to read"), "{overview}");
    // A reader (annotator in every study) lands on their queue when signing in.
    let r = app.client().try_login("annotator1", PASSWORD).await;
    assert_eq!(location(&r), format!("/studies/{STUDY}/reading"));
    let r = app.client().try_login("manager", PASSWORD).await;
    assert_eq!(location(&r), "/studies");

    // With no washout the re-read of a submitted slide opens at once, in its own order.
    let no_wait = create_campaign(
        &manager,
        &[("name", "Third"), ("parent", &first.to_string()), ("washout_days", "0"), ("seed", "99")],
    )
    .await;
    assert_eq!(
        a1.get(&format!("/studies/{STUDY}/reads/{}", read_id(&app, no_wait, "annotator1", &labels[0]))).await.status(),
        200
    );
    // While re-reading, the reader's own first read of the slide is out of reach: the queue
    // shows it as text, not as a link that would answer 404.
    assert_eq!(a1.get(&format!("/studies/{STUDY}/reads/{r1}")).await.status(), 404);
    let (_, queue) = a1.get_text(&format!("/studies/{STUDY}/reading")).await;
    assert!(!queue.contains(&format!("/reads/{r1}\"")), "{queue}");
    assert!(queue.contains("hidden while you re-read this slide"), "{queue}");
    assert_eq!(a1.get(&format!("/studies/{STUDY}/reads/{r1}/regions")).await.status(), 404);
    let r = manager
        .post(
            &format!("/studies/{STUDY}/campaigns"),
            &[("name", "Bad"), ("parent", &first.to_string()), ("washout_days", "400")],
        )
        .await;
    assert_eq!(r.status(), 422);
}

#[tokio::test]
async fn disagreements_are_adjudicated_into_the_reference_and_agreement_is_shown() {
    let app = spawn_app();
    let labels = reading_study(&app);
    let manager = app.login("manager").await;
    let id = create_campaign(
        &manager,
        &[
            ("name", "R1"),
            ("readers", "annotator1"),
            ("readers", "annotator2"),
            ("adjudicator", "annotator3"),
            ("tolerances", "til_density=50"),
        ],
    )
    .await;
    let a1 = app.login("annotator1").await;
    let a2 = app.login("annotator2").await;
    // Slide 0: phenotypes differ. Slide 1: densities 100 vs 140 (within 50). Slide 2: 100 vs 300.
    let plan = [
        ("inflamed", "100", "excluded", "100"),
        ("desert", "100", "desert", "140"),
        ("excluded", "100", "excluded", "300"),
    ];
    for (label, (p1, d1, p2, d2)) in labels.iter().zip(plan) {
        assert_eq!(submit(&a1, read_id(&app, id, "annotator1", label), p1, d1).await.status(), 303);
        assert_eq!(submit(&a2, read_id(&app, id, "annotator2", label), p2, d2).await.status(), 303);
    }
    let (status, page) = manager.get_text(&format!("/studies/{STUDY}/campaigns/{id}/adjudication")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains(&labels[0]) && page.contains(&labels[2]) && !page.contains(&labels[1]),
        "only real disagreements"
    );
    // The adjudicator (a pathologist who reads none of the slides) sees the readers' values as
    // Reader A / Reader B — no names — with a link to view the slide; the read opened from there
    // names no reader either.
    let adj = app.login("annotator3").await;
    let (status, page) = adj.get_text(&format!("/studies/{STUDY}/campaigns/{id}/adjudication")).await;
    assert_eq!(status, 200);
    assert!(page.contains("Reader A") && page.contains("Reader B"), "{page}");
    // Nor the slides' labels, which carry the case: slides are numbered.
    assert!(page.contains("Slide 1") && !page.contains(&labels[0]) && !page.contains(&labels[2]), "{page}");
    for name in ["annotator1", "annotator2", "Kim Minji", "Lee Seojun"] {
        assert!(!page.contains(name), "{name} shown to the adjudicator: {page}");
    }
    let r1 = read_id(&app, id, "annotator1", &labels[0]);
    assert!(page.contains(&format!("/reads/{r1}\"")) && page.contains("View slide"), "{page}");
    let (status, read_page) = adj.get_text(&format!("/studies/{STUDY}/reads/{r1}")).await;
    assert_eq!(status, 200);
    assert!(!read_page.contains("annotator1") && !read_page.contains("Kim Minji"), "{read_page}");
    // A manager cannot be made adjudicator: the adjudicator is a pathologist.
    let r = manager
        .post(
            &format!("/studies/{STUDY}/campaigns"),
            &[("name", "R9"), ("readers", "annotator1"), ("adjudicator", "manager")],
        )
        .await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("not a pathologist (annotator) of this study"));

    // Only the adjudicator adjudicates; values are checked; it is audited with both reads.
    let stat = app.login("statistician").await;
    let form = [("slide", labels[0].as_str()), ("field", "phenotype"), ("value", "inflamed"), ("note", "")];
    assert_eq!(stat.post(&format!("/studies/{STUDY}/campaigns/{id}/adjudication"), &form).await.status(), 403);
    assert_eq!(a1.post(&format!("/studies/{STUDY}/campaigns/{id}/adjudication"), &form).await.status(), 404);
    assert_eq!(manager.post(&format!("/studies/{STUDY}/campaigns/{id}/adjudication"), &form).await.status(), 403);
    adj.post(
        &format!("/studies/{STUDY}/campaigns/{id}/adjudication"),
        &[("slide", labels[0].as_str()), ("field", "phenotype"), ("value", "hot")],
    )
    .await;
    assert!(audit_events(&app, "adjudicate").is_empty());
    // What the page posts: the slide by one of its reads.
    let by_read = [("read", r1.to_string()), ("field", "phenotype".into()), ("value", "inflamed".into())];
    let by_read: Vec<(&str, &str)> = by_read.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(adj.post(&format!("/studies/{STUDY}/campaigns/{id}/adjudication"), &by_read).await.status(), 303);
    let ev = audit_events(&app, "adjudicate");
    assert_eq!(ev.len(), 1);
    assert!(
        ev[0].new_value.as_deref().unwrap().contains("\"annotator2\":\"excluded\""),
        "both reads kept in the record"
    );

    let mut conn = app.conn();
    let access = study_access(&mut conn, &Actor::cli_operator(), STUDY).unwrap();
    let campaign = campaigns::get(&mut conn, access.study.id, id).unwrap();
    let def = schema::require_current(&mut conn, access.study.id).unwrap().definition();
    let reference = adjudication::reference(&mut conn, access.study.id, &campaign, &def).unwrap();
    assert_eq!(reference[&labels[0]]["phenotype"], "inflamed", "adjudicated");
    assert_eq!(reference[&labels[1]]["til_density"], "120", "within tolerance: the median");
    assert!(!reference[&labels[2]].contains_key("til_density"), "not adjudicated yet: no reference");
    // Both reads are still as submitted.
    let r = reads::of_campaign(&mut conn, access.study.id, id).unwrap();
    assert_eq!(r.iter().filter(|r| r.value("phenotype") == "excluded").count(), 3);
    drop(conn);

    // The agreement view: managers and statisticians, after completion; not monitors.
    let (_, page) = stat.get_text(&format!("/studies/{STUDY}/campaigns/{id}")).await;
    assert!(
        page.contains("Agreement between readers") && page.contains("Cohen&#x27;s kappa")
            || page.contains("Cohen's kappa"),
        "{page}"
    );
    assert!(page.contains("66.7 %"), "phenotype agreement 2 of 3");
    let monitor = app.login("monitor").await;
    let (status, page) = monitor.get_text(&format!("/studies/{STUDY}/campaigns/{id}")).await;
    assert_eq!(status, 200);
    assert!(!page.contains("Agreement between readers"));
    let (status, reference) = stat.get_text(&format!("/studies/{STUDY}/campaigns/{id}/reference.csv")).await;
    assert_eq!(status, 200);
    assert!(reference.starts_with("slide,phenotype,til_density,tumour_present\n"), "{reference}");
    assert!(reference.contains(&format!("{},inflamed,100,yes", labels[0])), "{reference}");
    assert_eq!(a1.get(&format!("/studies/{STUDY}/campaigns/{id}/reference.csv")).await.status(), 404);
    let (status, csv) = stat.get_text(&format!("/studies/{STUDY}/campaigns/{id}/reads.csv")).await;
    assert_eq!(status, 200);
    assert!(csv.starts_with("campaign,slide,reader,assistance,position,status,schema_version,region_count,started_at,first_submitted_at,phenotype,til_density,tumour_present,comment"), "{csv}");
    assert_eq!(csv.lines().count(), 7);

    // A read that changes after adjudication (reopened, resubmitted) reopens the question.
    let r2 = read_id(&app, id, "annotator2", &labels[0]);
    a2.post(&format!("/studies/{STUDY}/reads/{r2}/reopen"), &[("reason", "second look")]).await;
    assert_eq!(submit(&a2, r2, "desert", "100").await.status(), 303);
    let (_, page) = manager.get_text(&format!("/studies/{STUDY}/campaigns/{id}/adjudication")).await;
    assert!(page.contains("earlier: inflamed (the reads changed since)"), "{page}");
    let (_, reference) = stat.get_text(&format!("/studies/{STUDY}/campaigns/{id}/reference.csv")).await;
    assert!(
        reference.contains(&format!("{},,100,yes", labels[0])),
        "no reference until adjudicated again: {reference}"
    );
    adj.post(
        &format!("/studies/{STUDY}/campaigns/{id}/adjudication"),
        &[("slide", labels[0].as_str()), ("field", "phenotype"), ("value", "desert")],
    )
    .await;
    let (_, reference) = stat.get_text(&format!("/studies/{STUDY}/campaigns/{id}/reference.csv")).await;
    assert!(reference.contains(&format!("{},desert,100,yes", labels[0])), "{reference}");
}

/// A QuPath 0.4-style export: an annotation polygon with a hole, a MultiPolygon, and detections.
fn qupath_file() -> String {
    json!({"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "6c1f1b5e-3a59-4a43-9d7b-0d2a53f0e0a1",
         "geometry": {"type": "Polygon", "coordinates": [[[10, 10], [200, 10], [200, 150], [10, 150], [10, 10]], [[50, 50], [80, 50], [80, 80], [50, 50]]]},
         "properties": {"objectType": "annotation", "classification": {"name": "Tumor", "color": [200, 50, 50]}, "isLocked": false}},
        {"type": "Feature", "id": "0a4c3a53-2b1e-4b5e-8c55-7b0b7d1c9e42",
         "geometry": {"type": "MultiPolygon", "coordinates": [[[[300, 10], [350, 10], [350, 60], [300, 10]]], [[[400, 100], [450, 100], [450, 150], [400, 100]]]]},
         "properties": {"objectType": "annotation", "classification": {"name": "Stroma", "color": [44, 160, 44]}}},
        {"type": "Feature", "id": "9f0e8a1b-1111-4c2d-9e3f-aaaaaaaaaaaa",
         "geometry": {"type": "Point", "coordinates": [120.5, 90.25]},
         "properties": {"objectType": "detection", "classification": {"name": "Lymphocyte", "color": [31, 119, 180]}, "measurements": {"Nucleus: Area": 31.5}}}
    ]})
    .to_string()
}

#[tokio::test]
async fn qupath_geojson_goes_in_and_out_through_the_cli() {
    let app = spawn_app();
    let labels = reading_study(&app);
    let manager = app.login("manager").await;
    let id = create_campaign(&manager, &[("name", "R1"), ("readers", "annotator1")]).await;
    let file = app.scratch.join("qupath.geojson");
    std::fs::write(&file, qupath_file()).unwrap();
    let args = |f: &Path| {
        vec![
            "annotations",
            "import",
            "--study",
            STUDY,
            "--slide",
            &labels[0],
            "--reader",
            "annotator1",
            f.to_str().unwrap(),
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>()
    };
    let run = |a: Vec<String>| app.cli(&a.iter().map(String::as_str).collect::<Vec<_>>(), None);
    let read = read_id(&app, id, "annotator1", &labels[0]);
    let mut dry = args(&file);
    dry.insert(2, "--dry-run".into());
    let out = run(dry);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("would have 3 regions (dry run: nothing changed)"));
    assert_eq!(read_status(&app, read), ("assigned".into(), 0));
    let out = run(args(&file));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(read_status(&app, read), ("draft".into(), 3));
    assert!(audit_events(&app, "import_regions")[0].actor.starts_with("cli:"));

    // Malformed files: a clear message naming the feature, exit 2, nothing changed.
    for (name, content, needle) in [
        ("outside.geojson", qupath_file().replace("[120.5, 90.25]", "[120.5, 9.0e7]").replace("[120.5,90.25]", "[120.5,90000000.0]"), "feature 3"),
        ("types.geojson", r#"{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Point","coordinates":"12,5"},"properties":{}}]}"#.to_string(), "feature 1"),
        ("notjson.geojson", "{\"type\": \"FeatureCollection\", \"features\": [".to_string(), "not JSON"),
    ] {
        let bad = app.scratch.join(name);
        std::fs::write(&bad, content).unwrap();
        let out = run(args(&bad));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(name) && err.contains(needle), "{name}: {err}");
    }
    assert_eq!(read_status(&app, read), ("draft".into(), 3));

    // Export: one GeoJSON per slide per reader, equal to what went in; CSV with every field.
    let out_dir = app.scratch.join("export");
    let out = app.cli(
        &["annotations", "export", "--study", STUDY, "--format", "geojson", "--out", out_dir.to_str().unwrap()],
        None,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let exported = out_dir.join("R1").join(&labels[0]).join("annotator1.geojson");
    let limits = geojson::Limits::for_slide(1e6, 1e6);
    let back = geojson::parse(&std::fs::read(&exported).unwrap(), &limits).unwrap();
    assert_eq!(
        back,
        geojson::parse(qupath_file().as_bytes(), &limits).unwrap(),
        "round trip: holes, MultiPolygon, ids, classes"
    );
    let out = app
        .cli(&["annotations", "export", "--study", STUDY, "--format", "csv", "--out", out_dir.to_str().unwrap()], None);
    assert!(out.status.success());
    let csv = std::fs::read_to_string(out_dir.join("reads.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + labels.len());
    assert!(csv.lines().next().unwrap().ends_with("phenotype,til_density,tumour_present,comment"));

    // An annotator acting through the CLI cannot export the others' reads.
    let out = app.cli(
        &[
            "--as",
            "annotator1",
            "annotations",
            "export",
            "--study",
            STUDY,
            "--format",
            "csv",
            "--out",
            out_dir.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn schema_changes_after_reading_started_need_a_reason() {
    let app = spawn_app();
    let labels = reading_study(&app);
    let manager = app.login("manager").await;
    let id = create_campaign(&manager, &[("name", "R1"), ("readers", "annotator1")]).await;
    let a1 = app.login("annotator1").await;
    save_draft(
        &a1,
        read_id(&app, id, "annotator1", &labels[0]),
        json!({"values": {"phenotype": "desert"}, "regions": []}),
    )
    .await;

    let text = format!("{}extra | yesno\n", schema::DEFAULT_TEXT);
    let r = manager.post(&format!("/studies/{STUDY}/annotations/schema"), &[("text", &text), ("reason", "")]).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("reading has started"));
    let dropped = schema::DEFAULT_TEXT
        .replace("phenotype (Tumour-immune phenotype) | categorical | inflamed, excluded, desert | required\n", "");
    assert_ne!(dropped, schema::DEFAULT_TEXT);
    let r = manager
        .post(&format!("/studies/{STUDY}/annotations/schema"), &[("text", &dropped), ("reason", "simplify")])
        .await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("reads hold values this schema would refuse (phenotype: 1 read)"));
    let r = manager
        .post(&format!("/studies/{STUDY}/annotations/schema"), &[("text", "bad line here"), ("reason", "x")])
        .await;
    assert!(r.text().await.unwrap().contains("line 1"));
    let r = manager
        .post(&format!("/studies/{STUDY}/annotations/schema"), &[("text", &text), ("reason", "adds the extra flag")])
        .await;
    assert_eq!(r.status(), 303);
    let ev = audit_events(&app, "update")
        .into_iter()
        .find(|e| e.entity.as_str() == "annotation_schema" && e.entity_id == "v2")
        .expect("audited");
    assert_eq!(ev.reason.as_deref(), Some("adds the extra flag"));
    assert_eq!(
        a1.post(&format!("/studies/{STUDY}/annotations/schema"), &[("text", &text), ("reason", "x")]).await.status(),
        403
    );
}

#[tokio::test]
async fn readers_and_adjudicators_stay_apart_and_the_adjudicator_sees_only_finished_slides() {
    let app = spawn_app();
    let labels = reading_study(&app);
    let manager = app.login("manager").await;
    let id =
        create_campaign(&manager, &[("name", "R1"), ("readers", "annotator1"), ("adjudicator", "annotator2")]).await;
    // The adjudicator of these slides cannot read them elsewhere, nor a reader adjudicate them.
    let r = manager.post(&format!("/studies/{STUDY}/campaigns"), &[("name", "R2"), ("readers", "annotator2")]).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("annotator2 adjudicates some of these slides"));
    let r = manager
        .post(
            &format!("/studies/{STUDY}/campaigns"),
            &[("name", "R3"), ("readers", "annotator2"), ("adjudicator", "annotator1")],
        )
        .await;
    assert!(r.text().await.unwrap().contains("annotator1 reads some of these slides"));
    // Administrators see everything: never blinded readers.
    let operator = Actor::cli_operator();
    let access = study_access(&mut app.conn(), &operator, STUDY).unwrap();
    evidentia::studies::members::add(&mut app.conn(), &operator, &access, "admin", "annotator").unwrap();
    let r = manager.post(&format!("/studies/{STUDY}/campaigns"), &[("name", "R4"), ("readers", "admin")]).await;
    assert!(r.text().await.unwrap().contains("admin is an administrator"));

    // The adjudicator opens a read only once every read of its slide is submitted.
    let read = read_id(&app, id, "annotator1", &labels[0]);
    let a1 = app.login("annotator1").await;
    let a2 = app.login("annotator2").await;
    save_draft(&a1, read, json!({"values": {"phenotype": "desert"}, "regions": []})).await;
    assert_eq!(a2.get(&format!("/studies/{STUDY}/reads/{read}")).await.status(), 404, "a draft stays hidden");
    assert_eq!(submit(&a1, read, "desert", "10").await.status(), 303);
    assert_eq!(a2.get(&format!("/studies/{STUDY}/reads/{read}")).await.status(), 200);
    let other = read_id(&app, id, "annotator1", &labels[1]);
    assert_eq!(a2.get(&format!("/studies/{STUDY}/reads/{other}")).await.status(), 404);
}

#[tokio::test]
async fn a_reader_or_a_slide_withdrawn_with_a_reason_stops_counting() {
    let app = spawn_app();
    let labels = reading_study(&app);
    let manager = app.login("manager").await;
    let id = create_campaign(&manager, &[("name", "R1"), ("readers", "annotator1"), ("readers", "annotator2")]).await;
    let a1 = app.login("annotator1").await;
    let a2_read = read_id(&app, id, "annotator2", &labels[0]);
    let url = format!("/studies/{STUDY}/campaigns/{id}/withdraw");

    // A reason is required; only managers withdraw.
    manager.post(&url, &[("reader", "annotator2"), ("reason", "")]).await;
    assert_eq!(read_status(&app, a2_read).0, "assigned");
    assert_eq!(a1.post(&url, &[("reader", "annotator2"), ("reason", "x")]).await.status(), 403);
    manager.post(&url, &[("reader", "annotator2"), ("reason", "left the hospital")]).await;
    assert_eq!(read_status(&app, a2_read).0, "withdrawn");
    let ev = audit_events(&app, "withdraw");
    assert_eq!(ev[0].reason.as_deref(), Some("left the hospital"));
    assert!(ev[0].new_value.as_deref().unwrap().contains("\"reads\":3"));
    // The withdrawn reader's queue is empty and their read no longer takes drafts.
    let a2 = app.login("annotator2").await;
    let (_, queue) = a2.get_text(&format!("/studies/{STUDY}/reading")).await;
    assert!(queue.contains("No slides are assigned to you"), "{queue}");
    assert_eq!(save_draft(&a2, a2_read, json!({"values": {}, "regions": []})).await.status(), 409);

    // A slide excluded at QC leaves too; the campaign completes with what is left.
    manager.post(&url, &[("slide", labels[2].as_str()), ("reason", "wrong stain")]).await;
    for label in &labels[..2] {
        assert_eq!(submit(&a1, read_id(&app, id, "annotator1", label), "desert", "20").await.status(), 303);
    }
    let (_, page) = manager.get_text(&format!("/studies/{STUDY}/campaigns/{id}")).await;
    assert!(page.contains("2 of 2</strong> reads submitted"), "progress counts only active reads");
    assert!(page.contains("Agreement between readers"), "complete without the withdrawn reads");
}

#[tokio::test]
async fn ai_assisted_readers_see_the_run_and_unaided_readers_stay_blind() {
    let app = spawn_app();
    let labels = reading_study(&app);
    let fixture = |f: &str| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models").join(f);
    let (onnx, card) = (fixture("tiny-fcn.onnx"), fixture("tiny-fcn.json"));
    let out = app.cli(&["model", "register", onnx.to_str().unwrap(), "--card", card.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = app.cli(&["biomarker", "run", "--study", STUDY, "--model", "tiny-fcn@0.1.0"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let run_id: i32 = {
        use evidentia::db::schema::biomarker_runs as runs;
        runs::table.select(runs::id).order(runs::id.desc()).first(&mut app.conn()).unwrap()
    };
    let run = run_id.to_string();
    let manager = app.login("manager").await;

    // The PNG has no resolution, so the run could not measure it: a campaign over it is refused,
    // naming the run and the count; an id that is not one of the study's runs is refused too.
    let r = manager
        .post(&format!("/studies/{STUDY}/campaigns"), &[("name", "Aided"), ("readers", "annotator2"), ("ai_run", &run)])
        .await;
    assert_eq!(r.status(), 422);
    let body = r.text().await.unwrap();
    assert!(body.contains(&format!("run {run_id} has no result for 1 of the 3 slides")), "{body}");
    let r = manager
        .post(
            &format!("/studies/{STUDY}/campaigns"),
            &[("name", "Aided"), ("readers", "annotator2"), ("ai_run", "999")],
        )
        .await;
    assert!(r.text().await.unwrap().contains("run 999 is not a biomarker run of this study"));
    assert!(audit_events(&app, "create").iter().all(|e| e.entity.as_str() != "campaign"), "nothing created");

    // Slide QC takes the unmeasurable slide out; then an unaided and an AI-assisted campaign.
    {
        let mut conn = app.conn();
        let access = study_access(&mut conn, &Actor::cli_operator(), STUDY).unwrap();
        let failed: String = {
            use evidentia::db::schema::biomarker_results as res;
            res::table
                .inner_join(slides::table)
                .filter(res::run_id.eq(run_id))
                .filter(res::status.eq("failed"))
                .select(slides::label)
                .first(&mut conn)
                .unwrap()
        };
        assert!(labels.contains(&failed));
        evidentia::slides::set_excluded(&mut conn, &Actor::cli_operator(), &access, &failed, true, "no resolution")
            .unwrap();
    }
    let unaided = create_campaign(&manager, &[("name", "Unaided"), ("readers", "annotator1")]).await;
    let aided = create_campaign(&manager, &[("name", "Aided"), ("readers", "annotator2"), ("ai_run", &run)]).await;
    let created = audit_events(&app, "create");
    let audit = created.iter().find(|e| e.entity_id == "Aided").expect("audited");
    assert!(
        audit.new_value.as_deref().unwrap_or("").contains("\"assistance\":\"ai_assisted\""),
        "{:?}",
        audit.new_value
    );

    let slide = {
        let ids: Vec<String> = reads_t::table
            .inner_join(slides::table)
            .filter(reads_t::campaign_id.eq(aided))
            .select(slides::label)
            .load(&mut app.conn())
            .unwrap();
        ids[0].clone()
    };
    let (a1, a2) = (app.login("annotator1").await, app.login("annotator2").await);
    let aided_read = read_id(&app, aided, "annotator2", &slide);
    let unaided_read = read_id(&app, unaided, "annotator1", &slide);
    // The AI-assisted reader sees the run's result and heatmap, without the slide's label.
    let (status, page) = a2.get_text(&format!("/studies/{STUDY}/reads/{aided_read}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("AI assistance") && page.contains("tiny-fcn@0.1.0") && page.contains("ai.json"), "{page}");
    let r = a2.get(&format!("/studies/{STUDY}/reads/{aided_read}/ai.json")).await;
    assert_eq!(r.status(), 200);
    let ai: Value = r.json().await.unwrap();
    assert_eq!(ai["run"], json!(run_id));
    assert_eq!(ai["ai"]["status"], "ok");
    assert!(ai["cells"].is_array() && ai["cell_px"].as_f64().unwrap() > 0.0, "{ai}");
    assert!(!ai.to_string().contains(&slide), "no slide label for readers: {ai}");
    // The unaided reader of the same slide stays blind; nobody reaches another reader's AI view.
    let (_, page) = a1.get_text(&format!("/studies/{STUDY}/reads/{unaided_read}")).await;
    assert!(!page.contains("AI assistance") && !page.contains("ai.json"));
    assert_eq!(a1.get(&format!("/studies/{STUDY}/reads/{unaided_read}/ai.json")).await.status(), 404);
    assert_eq!(a1.get(&format!("/studies/{STUDY}/reads/{aided_read}/ai.json")).await.status(), 404);
    assert_eq!(a1.get(&format!("/studies/{STUDY}/slides/{slide}/heatmap.json")).await.status(), 404);

    // Every read records its mode, and the reads CSV carries it for the statistics.
    let modes: Vec<(i32, String)> =
        reads_t::table.select((reads_t::campaign_id, reads_t::assistance)).load(&mut app.conn()).unwrap();
    assert!(modes.iter().all(|(c, m)| (*c == aided) == (m == "ai_assisted")), "{modes:?}");
    let (_, csv) = manager.get_text(&format!("/studies/{STUDY}/campaigns/{aided}/reads.csv")).await;
    assert!(csv.lines().skip(1).all(|l| l.split(',').nth(3) == Some("ai_assisted")), "{csv}");
    let (_, page) = manager.get_text(&format!("/studies/{STUDY}/campaigns/{aided}")).await;
    assert!(page.contains("AI-assisted"), "{page}");
}

/// Showing readers outcome fields needs an explicit confirmation, recorded in the audit trail;
/// a training campaign is marked as such and never feeds the analysis set.
#[tokio::test]
async fn outcome_fields_need_a_confirmation_and_training_campaigns_stay_out_of_the_analyses() {
    let app = spawn_app();
    let _labels = reading_study(&app);
    let manager = app.login("manager").await;
    let base =
        [("name", "Clinical"), ("readers", "annotator1"), ("case_fields", "histology"), ("case_fields", "progression")];
    let r = manager.post(&format!("/studies/{STUDY}/campaigns"), &base).await;
    assert_eq!(r.status(), 422);
    let page = r.text().await.unwrap();
    assert!(page.contains("progression is an outcome"), "{page}");
    assert!(audit_events(&app, "create").iter().all(|e| e.entity.as_str() != "campaign"), "nothing created");
    let mut confirmed = base.to_vec();
    confirmed.push(("confirm_outcomes", "on"));
    let r = manager.post(&format!("/studies/{STUDY}/campaigns"), &confirmed).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap_or_default());
    let created: Vec<_> =
        audit_events(&app, "create").into_iter().filter(|e| e.entity.as_str() == "campaign").collect();
    assert!(
        created[0].new_value.as_deref().unwrap().contains(r#""outcome_fields_shown_confirmed":["progression"]"#),
        "{:?}",
        created[0].new_value
    );

    let training =
        create_campaign(&manager, &[("name", "Calibration"), ("readers", "annotator2"), ("purpose", "training")]).await;
    let (_, list) = manager.get_text(&format!("/studies/{STUDY}/campaigns")).await;
    assert!(list.contains("training"), "{list}");
    let stat = app.login("statistician").await;
    let (_, page) = stat.get_text(&format!("/studies/{STUDY}/analyses")).await;
    assert!(!page.contains("Calibration"), "not offered as a source: {page}");
    let (status, page) =
        stat.get_text(&format!("/studies/{STUDY}/analyses/result?campaign={training}&analysis=kappa&a=x&b=y")).await;
    assert_eq!(status, 422);
    assert!(page.contains("training campaign"), "{page}");
    let r = manager
        .post(&format!("/studies/{STUDY}/campaigns"), &[("name", "X"), ("readers", "annotator1"), ("purpose", "fun")])
        .await;
    assert_eq!(r.status(), 422);
}
