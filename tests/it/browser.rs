//! A real browser (headless Chromium through chromedriver) drives the real server: sign in,
//! create a study, add a site, find it in the list. Screenshots go to `$EVIDENTIA_SCREENSHOTS`
//! when that is set.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};

use crate::helpers::*;

struct Driver {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start_browser() -> (Driver, Client) {
    let port = free_port();
    let bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    let child = Command::new(&bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin} (install chromium-driver; .ci/run does): {e}"));
    let profile = tempfile::tempdir().unwrap();
    let driver = Driver { child, port, _profile: profile };
    let chrome = std::env::var("CHROME_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let caps: serde_json::Map<String, serde_json::Value> = serde_json::from_value(serde_json::json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chrome,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--window-size=1400,900", format!("--user-data-dir={}", driver._profile.path().display())]
        }
    }))
    .unwrap();
    let mut last_err = String::new();
    for _ in 0..50 {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
        {
            Ok(c) => return (driver, c),
            Err(e) => last_err = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("chromedriver did not accept a session: {last_err}");
}

async fn screenshot(c: &Client, name: &str) {
    if let Ok(dir) = std::env::var("EVIDENTIA_SCREENSHOTS") {
        let png = c.screenshot().await.unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(format!("{dir}/{name}.png"), png).unwrap();
    }
}

async fn fill(c: &Client, css: &str, value: &str) {
    let el = c.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
    el.clear().await.unwrap();
    el.send_keys(value).await.unwrap();
}

#[tokio::test]
async fn sign_in_create_a_study_add_a_site_and_see_it_listed() {
    let app = spawn_app();
    let (_driver, c) = start_browser().await;
    c.goto(&format!("{}/login", app.base)).await.unwrap();
    screenshot(&c, "01-login").await;
    fill(&c, "input[name=username]", "admin").await;
    fill(&c, "input[name=password]", PASSWORD).await;
    c.find(Locator::Css("#login-form button[type=submit]")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css("#studies-table")).await.unwrap();
    screenshot(&c, "02-studies").await;

    c.find(Locator::LinkText("New study")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css("input[name=code]")).await.unwrap();
    fill(&c, "input[name=code]", "BROWSER-01").await;
    fill(&c, "input[name=title]", "Created from a real browser").await;
    fill(&c, "input[name=indication]", "Gastric cancer").await;
    c.find(Locator::Css("form.form button[type=submit]")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css(".flash-ok")).await.unwrap();
    let flash = c.find(Locator::Css(".flash-ok")).await.unwrap().text().await.unwrap();
    assert!(flash.contains("Study BROWSER-01 created"), "{flash}");
    screenshot(&c, "03-study").await;

    c.goto(&format!("{}/studies/BROWSER-01/sites", app.base)).await.unwrap();
    fill(&c, "#add-site input[name=code]", "SNUBH").await;
    fill(&c, "#add-site input[name=name]", "Seoul National University Bundang Hospital").await;
    fill(&c, "#add-site input[name=country]", "KR").await;
    c.find(Locator::Css("#add-site button[type=submit]")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css("#sites-table")).await.unwrap();
    let table = c.find(Locator::Css("#sites-table")).await.unwrap().text().await.unwrap();
    assert!(table.contains("Seoul National University Bundang Hospital"), "{table}");
    screenshot(&c, "04-sites").await;

    c.goto(&format!("{}/studies?q=BROWSER", app.base)).await.unwrap();
    let list = c.find(Locator::Css("#studies-table")).await.unwrap().text().await.unwrap();
    assert!(list.contains("BROWSER-01") && list.contains("Created from a real browser"), "{list}");
    screenshot(&c, "05-list").await;

    // The page ran without CSP violations: htmx and app.js loaded from our own origin.
    let loaded = c.execute("return typeof window.htmx !== 'undefined';", vec![]).await.unwrap();
    assert_eq!(loaded, serde_json::Value::Bool(true));
    c.close().await.unwrap();
}

async fn sign_in(c: &Client, base: &str, username: &str) {
    c.goto(&format!("{base}/login")).await.unwrap();
    fill(c, "input[name=username]", username).await;
    fill(c, "input[name=password]", PASSWORD).await;
    c.find(Locator::Css("#login-form button[type=submit]")).await.unwrap().click().await.unwrap();
    // Signed in: the studies list, or a reader's queue.
    c.wait().for_element(Locator::Css("#studies-table, #queue-table, .empty")).await.unwrap();
}

#[tokio::test]
async fn a_job_started_in_the_browser_shows_live_progress_until_done() {
    let app = spawn_app();
    let (_driver, c) = start_browser().await;
    sign_in(&c, &app.base, "monitor").await;
    c.goto(&format!("{}/studies/LUNG-IO-01/audit?entity=member", app.base)).await.unwrap();
    let table = c.find(Locator::Css("#audit-table")).await.unwrap().text().await.unwrap();
    assert!(table.contains("add member") && table.contains("annotator1"), "{table}");
    screenshot(&c, "06-audit").await;
    // Start an integrity check; the jobs page polls the row (htmx) until the job is done.
    c.find(Locator::XPath("//button[text()='Verify hash chain']")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css("#jobs-table")).await.unwrap();
    let done = c
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("#jobs-table .job-succeeded"))
        .await
        .expect("the row updates itself to succeeded");
    assert_eq!(done.text().await.unwrap(), "succeeded");
    let row = c.find(Locator::Css("#jobs-table tbody tr")).await.unwrap().text().await.unwrap();
    assert!(row.contains("100%") && row.contains("0 broken"), "{row}");
    screenshot(&c, "07-jobs").await;
    c.close().await.unwrap();
}

#[tokio::test]
async fn an_admin_sees_users_and_the_account_page() {
    let app = spawn_app();
    let (_driver, c) = start_browser().await;
    sign_in(&c, &app.base, "admin").await;
    c.goto(&format!("{}/admin/users", app.base)).await.unwrap();
    let users = c.find(Locator::Css("#users-table")).await.unwrap().text().await.unwrap();
    assert!(users.contains("annotator1") && users.contains("Kim Minji, MD"), "{users}");
    screenshot(&c, "08-users").await;
    c.goto(&format!("{}/account", app.base)).await.unwrap();
    fill(&c, "input[name=name]", "nightly export").await;
    c.find(Locator::XPath("//button[text()='Create token']")).await.unwrap().click().await.unwrap();
    let secret = c.wait().for_element(Locator::Css("#secret")).await.unwrap().text().await.unwrap();
    assert!(secret.starts_with("evt_"));
    screenshot(&c, "09-token").await;
    c.close().await.unwrap();
}

/// An administrator of a server that requires two factors signs in, is sent to set up an
/// authenticator app, scans (reads) the key, types its code, keeps the recovery codes, and
/// signs in the next time with the password and a code.
#[tokio::test]
async fn an_admin_sets_up_two_factor_sign_in_and_signs_in_with_a_code() {
    let app = spawn_app_with(|c| c.admin_mfa = true);
    let (_driver, c) = start_browser().await;
    c.goto(&format!("{}/login", app.base)).await.unwrap();
    fill(&c, "input[name=username]", "admin").await;
    fill(&c, "input[name=password]", PASSWORD).await;
    c.find(Locator::Css("#login-form button[type=submit]")).await.unwrap().click().await.unwrap();
    let flash = c.wait().for_element(Locator::Css(".flash-error")).await.unwrap().text().await.unwrap();
    assert!(flash.contains("set up an authenticator app"), "{flash}");
    c.find(Locator::XPath("//button[text()='Set up an authenticator app']")).await.unwrap().click().await.unwrap();
    let secret = c.wait().for_element(Locator::Css("#totp-secret")).await.unwrap().text().await.unwrap();
    let size = c
        .execute(
            "const r = document.querySelector('.qr svg').getBoundingClientRect(); return [r.width, r.height];",
            vec![],
        )
        .await
        .unwrap();
    let (w, h) = (size[0].as_f64().unwrap(), size[1].as_f64().unwrap());
    assert!(w >= 200.0 && h >= 200.0, "the QR code is drawn large enough to scan: {w}×{h}");
    screenshot(&c, "30-mfa-setup").await;
    let step = crate::mfa::step_now();
    fill(&c, "input[name=code]", &crate::mfa::code_at(&secret, step)).await;
    c.find(Locator::XPath("//button[text()='Turn on']")).await.unwrap().click().await.unwrap();
    let codes = c.wait().for_element(Locator::Css("#recovery-codes")).await.unwrap().text().await.unwrap();
    assert_eq!(codes.lines().filter(|l| l.len() == 19).count(), 10, "{codes}");
    screenshot(&c, "31-recovery-codes").await;

    c.find(Locator::LinkText("Done")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css("#mfa")).await.unwrap();
    c.find(Locator::Css("form[action='/logout'] button")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css("#login-form")).await.unwrap();
    fill(&c, "input[name=username]", "admin").await;
    fill(&c, "input[name=password]", PASSWORD).await;
    c.find(Locator::Css("#login-form button[type=submit]")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css("#code-form")).await.unwrap();
    screenshot(&c, "32-sign-in-code").await;
    fill(&c, "#code-form input[name=code]", &crate::mfa::code_at(&secret, step + 1)).await;
    c.find(Locator::Css("#code-form button[type=submit]")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css("#studies-table")).await.unwrap();
    c.close().await.unwrap();
}

#[tokio::test]
async fn a_manager_imports_cases_through_the_preview_and_reviews_them() {
    let app = spawn_app();
    let (_driver, c) = start_browser().await;
    sign_in(&c, &app.base, "manager").await;
    c.goto(&format!("{}/studies/LUNG-IO-01/cases", app.base)).await.unwrap();
    let table = c.find(Locator::Css("#cases-table")).await.unwrap().text().await.unwrap();
    assert!(table.contains("SMC-0001") || table.contains("SNUBH-0001"), "{table}");
    screenshot(&c, "10-cases").await;
    c.goto(&format!("{}/studies/LUNG-IO-01/cases/SNUBH-0001", app.base)).await.unwrap();
    let page = c.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
    assert!(page.contains("[REDACTED:NAME]") && page.contains("History"), "{page}");
    screenshot(&c, "11-case").await;

    // Upload a new site file: a preview first, then the import.
    let file = app.scratch.join("new_cases.csv");
    std::fs::write(
        &file,
        "record_id,patient_name,age,sex,histology,stage,ici_start_date,progression,pfs_months,clinical_notes\n\
         B-999001,홍길동,67,1,1,3,2024-02-01,1,5.5,홍길동 responded partially\n",
    )
    .unwrap();
    c.goto(&format!("{}/studies/LUNG-IO-01/cases/import", app.base)).await.unwrap();
    c.find(Locator::Css("#case-upload input[type=file]"))
        .await
        .unwrap()
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
    c.find(Locator::Css("#case-upload select[name=site] option[value=SNUBH]")).await.unwrap().click().await.unwrap();
    c.find(Locator::Css("#case-upload button[type=submit]")).await.unwrap().click().await.unwrap();
    let preview = c.wait().for_element(Locator::Css("#import-preview")).await.unwrap().text().await.unwrap();
    assert!(preview.contains("1 cases ready"), "{preview}");
    assert!(!preview.contains("홍길동"));
    screenshot(&c, "12-preview").await;
    c.find(Locator::Css("#confirm-import")).await.unwrap().click().await.unwrap();
    let flash = c.wait().for_element(Locator::Css(".flash-ok")).await.unwrap().text().await.unwrap();
    assert!(flash.contains("1 new subject;"), "{flash}");
    c.goto(&format!("{}/studies/LUNG-IO-01/cases/SNUBH-0111", app.base)).await.unwrap();
    let page = c.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
    assert!(page.contains("[REDACTED:NAME] responded partially"), "{page}");

    // The page's own form saved unchanged records nothing; typed text is scrubbed as it is saved,
    // a line break included (browsers send CRLF), and a ticked box is stored.
    let updates = || {
        audit_events(&app, "update")
            .into_iter()
            .filter(|e| e.entity.as_str() == "case" && e.entity_id == "SNUBH-0111")
            .count()
    };
    let save = || async {
        // The previous flash goes first, so that the one waited for is the new page's.
        c.execute("document.querySelectorAll('.flash-ok').forEach(e => e.remove())", vec![]).await.unwrap();
        c.find(Locator::Css("#case-edit button[type=submit]")).await.unwrap().click().await.unwrap();
        c.wait().for_element(Locator::Css(".flash-ok")).await.unwrap().text().await.unwrap()
    };
    assert!(save().await.contains("Case saved."));
    assert_eq!(updates(), 0, "saving the page unchanged changes nothing");
    let notes = c.find(Locator::Css("textarea[name=clinical_notes]")).await.unwrap();
    notes.clear().await.unwrap();
    notes.send_keys("Partial response.\nCall back on 010-4444-5555.").await.unwrap();
    c.find(Locator::Css("input[type=checkbox][name=mets][value='2']")).await.unwrap().click().await.unwrap();
    // A change to saved values needs a reason: without one nothing is saved and the field says so.
    c.find(Locator::Css("#case-edit button[type=submit]")).await.unwrap().click().await.unwrap();
    let refused =
        c.wait().for_element(Locator::Css("#change-reason .field-error")).await.unwrap().text().await.unwrap();
    assert!(refused.contains("pick a reason"), "{refused}");
    assert_eq!(updates(), 0);
    let notes = c.find(Locator::Css("textarea[name=clinical_notes]")).await.unwrap();
    notes.clear().await.unwrap();
    notes.send_keys("Partial response.\nCall back on 010-4444-5555.").await.unwrap();
    c.find(Locator::Css("input[type=checkbox][name=mets][value='2']")).await.unwrap().click().await.unwrap();
    c.find(Locator::Css("select[name=_reason] option[value='Query answered by the site']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let flash = save().await;
    assert!(flash.contains("Identifiers redacted from free text: 1 in clinical_notes"), "{flash}");
    let sid = evidentia::studies::get_by_code(&mut app.conn(), "LUNG-IO-01").unwrap().id;
    let values = evidentia::cases::get(&mut app.conn(), sid, "SNUBH-0111").unwrap().values();
    assert_eq!(values["clinical_notes"], serde_json::json!("Partial response.\nCall back on [REDACTED:PHONE]."));
    assert_eq!(values["mets"], serde_json::json!(["2"]));
    assert_eq!(updates(), 1);
    // The history says what changed in the dictionary's words, old → new, who and why.
    let history = c.find(Locator::Css("#case-history")).await.unwrap().text().await.unwrap();
    assert!(history.contains("Metastatic sites:") && history.contains("→ Liver"), "{history}");
    assert!(history.contains("Query answered by the site"), "{history}");
    screenshot(&c, "13a-case-edited").await;
    assert!(save().await.contains("Case saved."));
    assert_eq!(updates(), 1, "the saved text, line break and all, is unchanged when saved again");
    c.goto(&format!("{}/studies/LUNG-IO-01/dictionary", app.base)).await.unwrap();
    let dict = c.find(Locator::Css("#dictionary-table")).await.unwrap().text().await.unwrap();
    assert!(dict.contains("patient_name") && dict.contains("drop") && dict.contains("shift-date"), "{dict}");
    screenshot(&c, "13-dictionary").await;
    c.close().await.unwrap();
}

#[tokio::test]
async fn a_manager_ingests_a_slide_and_pans_it_in_the_viewer() {
    use evidentia::slides::synth::{self, Phenotype, SynthParams};
    let app = spawn_app();
    // A synthetic H&E slide named as sites name them, and its manifest.
    let subjects = evidentia::demo::truth::subjects(evidentia::demo::DEMO_SUBJECTS, evidentia::demo::truth::SEED);
    let subject = subjects.iter().find(|s| s.site == "SNUBH").unwrap();
    let slide = app.scratch.join("HONG_GILDONG_B-1.svs");
    synth::write_slide(&slide, &SynthParams::new(3000, 2000, 0.5, Phenotype::Inflamed, 7), &mut |_, _| {}).unwrap();
    let manifest = app.scratch.join("manifest.csv");
    std::fs::write(
        &manifest,
        format!("file,subject_id,stain,block\nHONG_GILDONG_B-1.svs,{},H&E,A1\n", subject.hospital_id),
    )
    .unwrap();

    let (_driver, c) = start_browser().await;
    sign_in(&c, &app.base, "manager").await;
    c.goto(&format!("{}/studies/LUNG-IO-01/slides", app.base)).await.unwrap();
    let empty = c.find(Locator::Css(".empty")).await.unwrap().text().await.unwrap();
    assert!(empty.contains("No slides yet"), "{empty}");
    c.find(Locator::Css("a[data-key=i]")).await.unwrap().click().await.unwrap();
    let form = c.wait().for_element(Locator::Css("#slide-upload")).await.unwrap();
    form.find(Locator::Css("input[name=manifest]")).await.unwrap().send_keys(manifest.to_str().unwrap()).await.unwrap();
    form.find(Locator::Css("input[name=slides]")).await.unwrap().send_keys(slide.to_str().unwrap()).await.unwrap();
    form.find(Locator::Css("select[name=site] option[value=SNUBH]")).await.unwrap().click().await.unwrap();
    screenshot(&c, "14-slide-ingest").await;
    form.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    // The ingest page refreshes itself until the row is done.
    let done = c
        .wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::Css("#ingest-rows .ingest-ingested"))
        .await
        .expect("the ingest finishes");
    assert_eq!(done.text().await.unwrap(), "ingested");
    let rows = c.find(Locator::Css("#ingest-rows")).await.unwrap().text().await.unwrap();
    assert!(rows.contains("SNUBH-0001-S01") && rows.contains("label") && rows.contains("macro"), "{rows}");
    assert!(!rows.contains("HONG_GILDONG"), "the file name is never shown");
    screenshot(&c, "15-slide-ingested").await;

    c.find(Locator::LinkText("SNUBH-0001-S01")).await.unwrap().click().await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("#slide-viewer[data-tiles]"))
        .await
        .expect("OpenSeadragon loads tiles");
    let scale = c.find(Locator::Css("#scale-bar .label")).await.unwrap().text().await.unwrap();
    assert!(scale.ends_with("µm") || scale.ends_with("mm"), "scale bar: {scale:?}");
    // Zoom in: the scale bar follows.
    c.execute(
        "window.evidentiaViewer.viewport.zoomBy(8); window.evidentiaViewer.viewport.applyConstraints(true);",
        vec![],
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let zoomed = c.find(Locator::Css("#scale-bar .label")).await.unwrap().text().await.unwrap();
    assert_ne!(scale, zoomed, "the scale bar changes with the zoom");
    let side = c.find(Locator::Css(".viewer-side")).await.unwrap().text().await.unwrap();
    // The block id is shown as its pseudonym (block ids carry accession numbers).
    assert!(side.contains("0.5000 µm/px") && side.contains("H&E") && side.contains("PSN-"), "{side}");
    assert!(!side.contains("A1"), "{side}");
    screenshot(&c, "16-slide-viewer").await;
    // The study's slide list shows it with its thumbnail.
    c.goto(&format!("{}/studies/LUNG-IO-01/slides", app.base)).await.unwrap();
    let row = c.find(Locator::Css("#slides-table tbody tr")).await.unwrap().text().await.unwrap();
    assert!(row.contains("SNUBH-0001-S01") && row.contains("3000 × 2000") && row.contains("available"), "{row}");
    let mut loaded = serde_json::Value::Bool(false);
    for _ in 0..50 {
        loaded = c
            .execute("var i = document.querySelector('#slides-table td.thumb img'); return i.complete && i.naturalWidth > 0;", vec![])
            .await
            .unwrap();
        if loaded == serde_json::Value::Bool(true) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(loaded, serde_json::Value::Bool(true), "the thumbnail loads");
    screenshot(&c, "17-slides-list").await;
    c.close().await.unwrap();
}

/// One synthetic slide (3,000 × 2,000 px at 0.5 µm/px) of a SNUBH subject, the default schema
/// and a campaign with annotator1 as its only reader — AI-assisted by the demonstration model's
/// run when `ai`. Returns annotator1's read.
fn one_slide_campaign(app: &TestApp, ai: bool) -> i32 {
    use evidentia::annotations::{campaigns, reads, schema};
    use evidentia::auth::permissions::study_access;
    use evidentia::slides::ingest::{self, SourceFile};
    use evidentia::slides::synth::{self, Phenotype, SynthParams};
    let slide = app.scratch.join("KIM_B-7.svs");
    synth::write_slide(&slide, &SynthParams::new(3000, 2000, 0.5, Phenotype::Excluded, 3), &mut |_, _| {}).unwrap();
    let mut conn = app.conn();
    let actor = evidentia::auth::Actor::cli_operator();
    let access = study_access(&mut conn, &actor, "LUNG-IO-01").unwrap();
    let subjects = evidentia::demo::truth::subjects(evidentia::demo::DEMO_SUBJECTS, evidentia::demo::truth::SEED);
    let subject = subjects.iter().find(|s| s.site == "SNUBH").unwrap();
    let manifest = format!("file,subject_id,stain,site\nKIM_B-7.svs,{},H&E,SNUBH\n", subject.hospital_id);
    let key = evidentia::cases::deid::study_key(&mut conn, &app.data_dir, "LUNG-IO-01").unwrap();
    let files = [SourceFile { name: "KIM_B-7.svs".into(), path: slide.clone(), uploaded: false }];
    let plan = ingest::plan(&mut conn, &access, &key, &no_patterns(), manifest.as_bytes(), &files, None).unwrap();
    ingest::ingest_now(&mut conn, &actor, &access, &app.config.storage, &app.data_dir, &plan).unwrap();
    let def = schema::Definition::parse_text(schema::DEFAULT_TEXT).unwrap();
    schema::save(&mut conn, &actor, &access, &def, "").unwrap();
    let ai_run_id = ai.then(|| {
        let (run, job) =
            evidentia::biomarker::runs::start(&mut conn, &actor, &access, "evidentia-demo-til@1.0.0", "", "").unwrap();
        let claimed = evidentia::jobs::claim(&mut conn, job.id, "test").unwrap().unwrap();
        evidentia::jobs::worker::run_job(&app.pool, &app.config, claimed);
        run.id
    });
    let input = campaigns::CampaignInput {
        name: "Browser read".into(),
        readers: vec!["annotator1".into()],
        ai_run_id,
        ..Default::default()
    };
    let campaign = campaigns::create(&mut conn, &actor, &access, &input).unwrap();
    reads::of_campaign(&mut conn, access.study.id, campaign.id).unwrap()[0].id
}

#[tokio::test]
async fn an_annotator_completes_a_read_with_a_point_and_a_polygon() {
    use fantoccini::actions::{InputSource, MouseActions, PointerAction, MOUSE_BUTTON_LEFT};
    use fantoccini::key::Key;
    let app = spawn_app();
    let read_id = one_slide_campaign(&app, true);

    let (_driver, c) = start_browser().await;
    sign_in(&c, &app.base, "annotator1").await;
    c.goto(&format!("{}/studies/LUNG-IO-01/reading", app.base)).await.unwrap();
    screenshot(&c, "18-reading-queue").await;
    c.find(Locator::LinkText("Continue reading →")).await.unwrap().click().await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("#slide-viewer[data-ready]"))
        .await
        .expect("the workbench opens the slide and its regions");
    // OpenSeadragon ran without breaking the Content-Security-Policy (its style's hash is allowed).
    let violations = c.execute("return window.evidentiaCspViolations;", vec![]).await.unwrap();
    assert_eq!(violations, serde_json::json!([]), "CSP violations on the workbench");
    // The scale bar, shared with the viewer (js/slideview.js).
    let scale = c.find(Locator::Css("#scale-bar .label")).await.unwrap().text().await.unwrap();
    assert!(scale.ends_with("µm") || scale.ends_with("mm"), "the workbench's scale bar: {scale:?}");
    // The AI assistance beside the slide, and its heatmap over it (drawing still works through it).
    let panel = c.find(Locator::Css("#ai-assist")).await.unwrap().text().await.unwrap();
    assert!(panel.contains("evidentia-demo-til@1.0.0") && panel.contains("Phenotype"), "{panel}");
    c.wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css("#heatmap-toggle:not([hidden]) input.heatmap-on"))
        .await
        .expect("the run's heatmap can be shown")
        .click()
        .await
        .unwrap();
    // The heatmap image (tissue only: tests/it/models.rs checks its pixels) lies over the slide.
    c.wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css("#workbench[data-heatmap-shown='1']"))
        .await
        .expect("the heatmap is drawn over the slide");
    let items = c.execute("return window.evidentiaWorkbench.layers();", vec![]).await.unwrap();
    assert_eq!(items, serde_json::json!(2), "the slide and the heatmap");
    c.execute("document.activeElement.blur();", vec![]).await.unwrap(); // keys go to the workbench again
    let viewer = c.find(Locator::Css("#slide-viewer")).await.unwrap();
    // The 10× preset: 1 µm per screen pixel (10 µm is 1×); the ruler then measures a 200 px
    // drag as 200 µm (the slide's 0.5 µm per pixel), within 1 %, and saves nothing.
    c.find(Locator::Css("button[data-mag='10']")).await.unwrap().click().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await; // the zoom animation
    let mag = c.find(Locator::Css("#magnification")).await.unwrap().text().await.unwrap();
    assert_eq!(mag, "10×");
    c.active_element().await.unwrap().send_keys("m").await.unwrap();
    let drag = MouseActions::new("ruler".into())
        .then(PointerAction::MoveToElement { element: viewer.clone(), duration: None, x: -100.0, y: 30.0 })
        .then(PointerAction::Down { button: MOUSE_BUTTON_LEFT })
        .then(PointerAction::MoveToElement {
            element: viewer.clone(),
            duration: Some(Duration::from_millis(200)),
            x: 100.0,
            y: 30.0,
        })
        .then(PointerAction::Up { button: MOUSE_BUTTON_LEFT });
    c.perform_actions(drag).await.unwrap();
    let readout = c.find(Locator::Css("#measure-readout")).await.unwrap();
    let um: f64 = readout.attr("data-um").await.unwrap().expect("a measurement").parse().unwrap();
    assert!((um - 200.0).abs() <= 2.0, "the ruler measured {um} µm for 200 µm");
    assert!(readout.text().await.unwrap().starts_with("Length 200"), "{:?}", readout.text().await);
    let count = c.execute("return window.evidentiaWorkbench.count();", vec![]).await.unwrap();
    assert_eq!(count, serde_json::json!(0), "a measurement is not a region");
    c.active_element().await.unwrap().send_keys(&Key::Escape.to_string()).await.unwrap();
    let keys = |k: String| {
        let c = c.clone();
        async move { c.active_element().await.unwrap().send_keys(&k).await.unwrap() }
    };
    let click_at = |x: f64, y: f64| {
        MouseActions::new(format!("mouse-{x}-{y}"))
            .then(PointerAction::MoveToElement { element: viewer.clone(), duration: None, x, y })
            .then(PointerAction::Down { button: MOUSE_BUTTON_LEFT })
            .then(PointerAction::Up { button: MOUSE_BUTTON_LEFT })
    };
    // A lymphocyte: class 3, point tool, one click.
    keys("3".into()).await;
    keys("o".into()).await;
    c.perform_actions(click_at(-120.0, -60.0)).await.unwrap();
    // A tumour polygon: class 1, polygon tool, four vertices, Enter closes it.
    keys("1".into()).await;
    keys("g".into()).await;
    for (x, y) in [(20.0, 20.0), (160.0, 30.0), (150.0, 140.0), (40.0, 120.0)] {
        c.perform_actions(click_at(x, y)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(350)).await;
    }
    keys(Key::Enter.to_string()).await;
    let count = c.execute("return window.evidentiaWorkbench.count();", vec![]).await.unwrap();
    assert_eq!(count, serde_json::json!(2), "a point and a polygon drawn");
    let list = c.find(Locator::Css("#region-list")).await.unwrap().text().await.unwrap();
    assert!(list.contains("Lymphocyte · point") && list.contains("Tumor · polygon"), "{list}");
    // Submitting with required fields empty: refused in the browser before any confirmation,
    // every missing field named and highlighted.
    c.find(Locator::Css("#submit-read")).await.unwrap().click().await.unwrap();
    let missing = c.find(Locator::Css("#read-missing")).await.unwrap();
    let text = missing.text().await.unwrap();
    assert!(
        text.contains("Tumour-immune phenotype") && text.contains("TIL density") && text.contains("Tumour present"),
        "{text}"
    );
    let highlighted =
        c.execute("return document.querySelectorAll('#read-form.checked :invalid').length;", vec![]).await.unwrap();
    assert!(highlighted.as_u64().is_some_and(|n| n >= 3), "{highlighted:?}");
    screenshot(&c, "19a-workbench-incomplete").await;
    // The form: phenotype, TIL density, tumour present.
    c.find(Locator::Css("input[name='field.phenotype'][value=excluded]")).await.unwrap().click().await.unwrap();
    fill(&c, "input[name='field.til_density']", "180").await;
    c.find(Locator::Css("input[name='field.tumour_present'][value=yes]")).await.unwrap().click().await.unwrap();
    // The draft saves by itself.
    c.wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css("#workbench[data-saved='2']"))
        .await
        .expect("the draft is saved automatically");
    screenshot(&c, "19-workbench").await;
    c.find(Locator::Css("#submit-read")).await.unwrap().click().await.unwrap();
    let _ = c.accept_alert().await;
    c.wait().at_most(Duration::from_secs(15)).for_element(Locator::Css(".flash-ok")).await.expect("submitted");
    screenshot(&c, "20-read-submitted").await;
    c.close().await.unwrap();

    let mut conn = app.conn();
    use diesel::prelude::*;
    use evidentia::db::schema::reads as t;
    let (status, values, regions): (String, String, String) =
        t::table.find(read_id).select((t::status, t::field_values, t::regions)).first(&mut conn).unwrap();
    assert_eq!(status, "submitted");
    let values: serde_json::Value = serde_json::from_str(&values).unwrap();
    assert_eq!(values, serde_json::json!({"phenotype": "excluded", "til_density": "180", "tumour_present": "yes"}));
    let regions: Vec<evidentia::annotations::Region> = serde_json::from_str(&regions).unwrap();
    let kinds: Vec<(&str, &str)> =
        regions.iter().map(|r| (r.geometry.kind(), r.class.as_ref().map(|c| c.name.as_str()).unwrap_or(""))).collect();
    assert_eq!(kinds, [("Point", "Lymphocyte"), ("Polygon", "Tumor")]);
    let evidentia::annotations::Geometry::Polygon(rings) = &regions[1].geometry else { unreachable!() };
    assert_eq!(rings[0].len(), 5, "four vertices, closed");
    // Drawn in level-0 pixels on the slide.
    let [x0, y0, x1, y1] = regions[1].geometry.bounds().unwrap();
    assert!(x0 >= 0.0 && y0 >= 0.0 && x1 <= 3000.0 && y1 <= 2000.0 && x1 > x0 && y1 > y0, "{x0} {y0} {x1} {y1}");
}

/// Presses keys as a person does (down and up, modifiers held until the end) at whatever has the
/// keyboard focus.
async fn press(c: &Client, keys: &[char]) {
    use fantoccini::actions::{InputSource, KeyAction, KeyActions};
    let mut actions = KeyActions::new("keyboard".into());
    for &k in keys {
        actions = actions.then(KeyAction::Down { value: k });
    }
    for &k in keys.iter().rev() {
        actions = actions.then(KeyAction::Up { value: k });
    }
    c.perform_actions(actions).await.unwrap();
}

#[tokio::test]
async fn the_workbench_is_used_without_a_mouse_for_all_but_drawing() {
    use fantoccini::key::Key;
    let app = spawn_app();
    let read_id = one_slide_campaign(&app, false);
    let (_driver, c) = start_browser().await;
    sign_in(&c, &app.base, "annotator1").await;
    c.goto(&format!("{}/studies/LUNG-IO-01/reads/{read_id}", app.base)).await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("#slide-viewer[data-ready]"))
        .await
        .expect("the workbench opens the slide");
    // What has the focus, and whether its focus ring shows (WCAG 2.4.7).
    let focused = r#"var e = document.activeElement, s = getComputedStyle(e);
        var name = e.id || e.getAttribute('name') || e.getAttribute('data-tool') || (e.getAttribute('data-mag') ? 'mag' + e.getAttribute('data-mag') : '') || e.className || e.tagName;
        return [name + (e.type === 'radio' ? '=' + e.value : ''), s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0];"#;
    let tab_to = |target: &'static str| {
        let c = c.clone();
        async move {
            let mut seen = Vec::new();
            for _ in 0..80 {
                press(&c, &[Key::Tab.into()]).await;
                let v = c.execute(focused, vec![]).await.unwrap();
                let name = v[0].as_str().unwrap_or("").to_string();
                assert_eq!(v[1], serde_json::json!(true), "no visible focus on {name} (after {seen:?})");
                seen.push(name.clone());
                if name.starts_with(target) {
                    return seen;
                }
            }
            panic!("Tab never reached {target}: {seen:?}");
        }
    };
    // From the top of the page: the tools, the slide, the magnification presets, the form.
    c.execute("document.activeElement.blur(); window.scrollTo(0, 0);", vec![]).await.unwrap();
    let path = tab_to("openseadragon-canvas").await;
    assert!(path.iter().any(|n| n == "pan") && path.iter().any(|n| n == "measure"), "{path:?}");
    // The slide pans with the arrow keys and zooms with + and -.
    let view = || async { c.execute("return window.evidentiaWorkbench.view();", vec![]).await.unwrap() };
    let before = view().await;
    press(&c, &['+']).await;
    press(&c, &['+']).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let zoomed = view().await;
    assert!(zoomed[0].as_f64().unwrap() > before[0].as_f64().unwrap() * 1.05, "{before} → {zoomed}");
    press(&c, &[Key::Right.into()]).await;
    press(&c, &[Key::Down.into()]).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let panned = view().await;
    assert!(panned[1].as_f64().unwrap() > zoomed[1].as_f64().unwrap(), "right: {zoomed} → {panned}");
    assert!(panned[2].as_f64().unwrap() > zoomed[2].as_f64().unwrap(), "down: {zoomed} → {panned}");
    // A magnification preset with Enter.
    tab_to("mag20").await;
    press(&c, &[Key::Enter.into()]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(c.find(Locator::Css("#magnification")).await.unwrap().text().await.unwrap(), "20×");
    // The form: arrow keys pick a choice, numbers are typed; Ctrl+Enter submits, the
    // confirmation is answered (Enter on the dialog).
    tab_to("field.phenotype").await;
    press(&c, &[Key::Down.into()]).await; // the second choice: excluded
    tab_to("field.til_density").await;
    press(&c, &['1', '5', '0']).await;
    tab_to("field.tumour_present").await;
    press(&c, &[' ']).await; // the first choice, if none is checked
    let chosen = c.execute(focused, vec![]).await.unwrap();
    press(&c, &[Key::Control.into(), Key::Enter.into()]).await;
    c.accept_alert().await.expect("the submit confirmation");
    c.wait().at_most(Duration::from_secs(15)).for_element(Locator::Css(".flash-ok")).await.expect("submitted");
    c.close().await.unwrap();

    use diesel::prelude::*;
    use evidentia::db::schema::reads as t;
    let (status, values): (String, String) =
        t::table.find(read_id).select((t::status, t::field_values)).first(&mut app.conn()).unwrap();
    assert_eq!(status, "submitted");
    let values: serde_json::Value = serde_json::from_str(&values).unwrap();
    let tumour = chosen[0].as_str().unwrap().rsplit('=').next().unwrap().to_string();
    assert_eq!(values, serde_json::json!({"phenotype": "excluded", "til_density": "150", "tumour_present": tumour}));
    assert_eq!(audit_events(&app, "submit").len(), 1, "the submission is audited");
}

#[tokio::test]
async fn a_statistician_runs_an_analysis_sees_its_plot_and_saves_it() {
    let app = spawn_app();
    let (campaign, _) = crate::analyses::read_study(&app).await;
    let (_driver, c) = start_browser().await;
    sign_in(&c, &app.base, "statistician").await;
    c.goto(&format!("{}/studies/LUNG-IO-01/analyses", app.base)).await.unwrap();
    c.find(Locator::Css("#analysis-choose select[name=campaign]"))
        .await
        .unwrap()
        .select_by_value(&campaign.to_string())
        .await
        .unwrap();
    c.find(Locator::Css("#analysis-choose select[name=analysis]"))
        .await
        .unwrap()
        .select_by_value("kappa")
        .await
        .unwrap();
    c.find(Locator::Css("#analysis-choose button[type=submit]")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css("#analysis-params")).await.unwrap();
    for (name, value) in [("a", "phenotype__annotator1"), ("b", "phenotype__annotator2"), ("weights", "linear")] {
        let css = format!("#analysis-params select[name={name}]");
        c.find(Locator::Css(&css)).await.unwrap().select_by_value(value).await.unwrap();
    }
    screenshot(&c, "30-analysis-form").await;
    c.find(Locator::Css("#analysis-params button[type=submit]")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css("#result-plot svg")).await.unwrap();
    let tables = c.find(Locator::Css("#result-tables")).await.unwrap().text().await.unwrap();
    assert!(tables.contains("κ") && tables.contains("observed agreement"), "{tables}");
    let command = c.find(Locator::Css("#command")).await.unwrap().text().await.unwrap();
    assert!(command.contains("--weights=linear"), "{command}");
    screenshot(&c, "31-analysis-result").await;
    fill(&c, "#save-analysis input[name=title]", "Inter-reader kappa, linear weights").await;
    c.find(Locator::Css("#save-analysis button[type=submit]")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css(".flash-ok")).await.unwrap();
    let sha = c.find(Locator::Css("#input-sha")).await.unwrap().text().await.unwrap();
    assert_eq!(sha.len(), 64, "{sha}");
    screenshot(&c, "32-saved-analysis").await;
    assert_eq!(audit_events(&app, "save_analysis").len(), 1);
    c.close().await.unwrap();
}

/// Runs axe-core (WCAG 2.1 A and AA rules) on the page the browser shows; its violations as
/// "rule ×n: first element".
async fn axe_violations(c: &Client) -> Vec<String> {
    let path = std::env::var("EVIDENTIA_AXE_JS").expect("EVIDENTIA_AXE_JS: tools/test installs axe-core");
    let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    c.execute(&source, vec![]).await.expect("axe-core loads");
    let found = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})
                .then(r => done({passes: r.passes.length, violations: r.violations.map(v => v.id + ' x' + v.nodes.length + ': ' + v.nodes[0].target.join(' '))}))
                .catch(e => done({passes: 0, violations: ['axe failed: ' + e]}));",
            vec![],
        )
        .await
        .expect("axe runs");
    // A page axe found nothing to check on would pass vacuously.
    assert!(found["passes"].as_u64().is_some_and(|n| n > 5), "axe checked nothing: {found}");
    serde_json::from_value(found["violations"].clone()).expect("axe's violations")
}

/// Every page of the study, as every role sees it, passes axe-core's WCAG 2.1 AA rules.
#[tokio::test]
async fn every_page_passes_axe_core_for_every_role() {
    use diesel::prelude::*;
    let app = spawn_app();
    let (campaign, labels) = crate::analyses::read_study(&app).await;
    let stat = app.login("statistician").await;
    let q = format!("campaign={campaign}&analysis=kappa&a=phenotype__annotator1&b=phenotype__annotator2");
    let r = stat.post("/studies/LUNG-IO-01/analyses/saved", &[("query", &q), ("title", "Inter-reader kappa")]).await;
    let saved = location(&r);
    let case: String = evidentia::db::schema::cases::table
        .select(evidentia::db::schema::cases::display_id)
        .first(&mut app.conn())
        .unwrap();
    let read = crate::annotations::read_id(&app, campaign, "annotator1", &labels[0]);
    let s = "/studies/LUNG-IO-01";
    let study_pages = |extra: &[String]| {
        let mut pages: Vec<String> = [
            "",
            "/cases",
            "/slides",
            "/campaigns",
            "/members",
            "/sites",
            "/dictionary",
            "/runs",
            "/quality",
            "/queries",
            "/queries/1",
        ]
        .iter()
        .map(|p| format!("{s}{p}"))
        .collect();
        pages.push(format!("{s}/cases/{case}"));
        pages.push(format!("{s}/slides/{}", labels[0]));
        pages.push(format!("{s}/campaigns/{campaign}"));
        pages.extend(extra.iter().cloned());
        pages
    };
    let analyses = vec![
        format!("{s}/analyses"),
        format!("{s}/analyses/plan"),
        saved.clone(),
        format!("{s}/analyses/result?{q}"),
        format!("{s}/analyses/new?campaign={campaign}&analysis=kappa"),
    ];
    let mut roles: Vec<(&str, Vec<String>)> = vec![
        ("annotator1", vec![s.to_string(), format!("{s}/reading"), format!("{s}/reads/{read}")]),
        ("monitor", study_pages(&[format!("{s}/audit")])),
        ("statistician", study_pages(&analyses)),
        (
            "manager",
            study_pages(&[
                format!("{s}/audit"),
                format!("{s}/edit"),
                format!("{s}/cases/import"),
                format!("{s}/slides/ingest"),
                format!("{s}/campaigns/new"),
                format!("{s}/campaigns/{campaign}/adjudication"),
                format!("{s}/annotations/schema"),
            ]),
        ),
        (
            "admin",
            vec![
                "/admin/users".into(),
                "/admin/models".into(),
                "/admin/jobs".into(),
                "/admin/audit".into(),
                "/studies/new".into(),
            ],
        ),
    ];
    for (_, pages) in roles.iter_mut() {
        pages.extend(["/studies".to_string(), "/account".to_string(), "/studies/NOPE-404".to_string()]);
    }
    let (_driver, c) = start_browser().await;
    // The sweep sees a violation when there is one: an image without a text alternative.
    c.goto(&format!("{}/login", app.base)).await.unwrap();
    c.execute("document.querySelector('main').appendChild(document.createElement('img'));", vec![]).await.unwrap();
    let planted = axe_violations(&c).await;
    assert!(planted.iter().any(|v| v.starts_with("image-alt")), "{planted:?}");
    c.goto(&format!("{}/login", app.base)).await.unwrap();
    let mut problems = axe_violations(&c).await.into_iter().map(|v| format!("/login: {v}")).collect::<Vec<_>>();
    for (role, pages) in &roles {
        c.delete_all_cookies().await.unwrap();
        sign_in(&c, &app.base, role).await;
        for page in pages {
            c.goto(&format!("{}{page}", app.base)).await.unwrap();
            for v in axe_violations(&c).await {
                problems.push(format!("{role} {page}: {v}"));
            }
        }
    }
    c.close().await.unwrap();
    assert!(problems.is_empty(), "WCAG 2.1 AA violations (axe-core):\n{}", problems.join("\n"));
}

/// The stale-analysis flow as its users live it: the manager edits a case value (with a reason);
/// the study page's checklist says the plan's analysis was saved on older data and links to the
/// re-run; the statistician runs it again from the saved analysis's page and saves it (the old
/// one is superseded); the study locks and signs and its dossier exports; the locked study then
/// offers the manager no write action.
#[tokio::test]
async fn a_stale_analysis_is_run_again_superseded_and_the_locked_study_exports() {
    let app = spawn_app();
    let (campaign, labels) = crate::analyses::read_study(&app).await;
    let stat = app.login("statistician").await;
    let q = format!("campaign={campaign}&analysis=kappa&a=phenotype__annotator1&b=phenotype__annotator2");
    let item = [("query", q.as_str()), ("role", "primary"), ("title", "Inter-reader agreement")];
    assert_eq!(stat.post("/studies/LUNG-IO-01/analyses/plan/items", &item).await.status(), 303);
    stat.post(
        "/studies/LUNG-IO-01/analyses/plan/sign",
        &[("username", "statistician"), ("password", PASSWORD), ("meaning", "approval")],
    )
    .await;
    let r = stat.post("/studies/LUNG-IO-01/analyses/saved", &[("query", &q), ("title", "P1")]).await;
    let first = location(&r);
    let case: String = {
        use diesel::prelude::*;
        use evidentia::db::schema::{cases, slides};
        slides::table
            .inner_join(cases::table)
            .filter(slides::label.eq(&labels[0]))
            .select(cases::display_id)
            .first(&mut app.conn())
            .unwrap()
    };

    let (_driver, c) = start_browser().await;
    sign_in(&c, &app.base, "manager").await;
    c.goto(&format!("{}/studies/LUNG-IO-01/cases/{case}", app.base)).await.unwrap();
    let warning = c.find(Locator::Css(".stale-warning")).await.unwrap().text().await.unwrap();
    assert!(warning.contains("1 saved analysis was computed on the data as it is now"), "{warning}");
    let now = c.execute("return document.querySelector('select[name=ecog]').value;", vec![]).await.unwrap();
    let other = if now == serde_json::json!("0") { "1" } else { "0" };
    c.find(Locator::Css("select[name=ecog]")).await.unwrap().select_by_value(other).await.unwrap();
    c.find(Locator::Css("select[name=_reason]")).await.unwrap().select_by_value("Data entry error").await.unwrap();
    c.find(Locator::Css("#case-edit button[type=submit]")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css(".flash-ok")).await.unwrap();
    c.goto(&format!("{}/studies/LUNG-IO-01", app.base)).await.unwrap();
    let checklist = c.find(Locator::Css("#prelock")).await.unwrap().text().await.unwrap();
    assert!(checklist.contains("saved on older data") && checklist.contains("re-run P1"), "{checklist}");
    assert!(c.find(Locator::Css("#lock-blocked")).await.is_ok(), "the manager's Lock waits for the checklist");
    screenshot(&c, "40-stale-checklist").await;

    c.delete_all_cookies().await.unwrap();
    sign_in(&c, &app.base, "statistician").await;
    c.goto(&format!("{}{first}", app.base)).await.unwrap();
    c.find(Locator::LinkText("Run it on the current data")).await.unwrap().click().await.unwrap();
    fill(&c, "#save-analysis input[name=title]", "P1 on the current data").await;
    c.find(Locator::Css("#save-analysis button[type=submit]")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css(".flash-ok")).await.unwrap();
    c.goto(&format!("{}{first}", app.base)).await.unwrap();
    let superseded = c.find(Locator::Css("#superseded")).await.unwrap().text().await.unwrap();
    assert!(superseded.starts_with("Superseded by #"), "{superseded}");
    screenshot(&c, "41-superseded").await;

    lock_and_sign(&app, "LUNG-IO-01").await;
    let out = app.scratch.join("after-rerun.zip");
    let r = app.cli(&["dossier", "export", "--study", "LUNG-IO-01", "--out", out.to_str().unwrap()], None);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));

    // Locked: the manager is offered no import and no case edit.
    c.delete_all_cookies().await.unwrap();
    sign_in(&c, &app.base, "manager").await;
    c.goto(&format!("{}/studies/LUNG-IO-01/cases/import", app.base)).await.unwrap();
    assert!(c.find(Locator::Css("#cannot-import")).await.is_ok());
    assert!(c.find(Locator::Css("#case-upload")).await.is_err());
    c.goto(&format!("{}/studies/LUNG-IO-01/cases/{case}", app.base)).await.unwrap();
    assert!(c.find(Locator::Css("#case-edit")).await.is_err(), "no edit form on a locked study");
    screenshot(&c, "42-locked-case").await;
    c.close().await.unwrap();
}

/// A reader's queue during a re-read's washout shows the hidden first reads as text (with when
/// things open), not as links; the adjudicator, a third pathologist, sees the readers as
/// Reader A and B — no names — and opens the slide without the reader's name or any AI.
#[tokio::test]
async fn the_queue_hides_first_reads_as_text_and_the_adjudicator_sees_no_names() {
    use crate::annotations::{create_campaign, read_id, reading_study, submit};
    let app = spawn_app();
    let labels = reading_study(&app);
    let manager = app.login("manager").await;
    let first = create_campaign(
        &manager,
        &[("name", "R1"), ("readers", "annotator1"), ("readers", "annotator2"), ("adjudicator", "annotator3")],
    )
    .await;
    let (a1, a2) = (app.login("annotator1").await, app.login("annotator2").await);
    for label in &labels {
        assert_eq!(submit(&a1, read_id(&app, first, "annotator1", label), "inflamed", "100").await.status(), 303);
        assert_eq!(submit(&a2, read_id(&app, first, "annotator2", label), "desert", "100").await.status(), 303);
    }
    create_campaign(&manager, &[("name", "R1 again"), ("parent", &first.to_string()), ("washout_days", "14")]).await;

    let (_driver, c) = start_browser().await;
    sign_in(&c, &app.base, "annotator1").await;
    c.goto(&format!("{}/studies/LUNG-IO-01/reading", app.base)).await.unwrap();
    let queue = c.find(Locator::Css("#queue-table")).await.unwrap().text().await.unwrap();
    assert!(queue.contains("hidden while you re-read this slide") && queue.contains("opens "), "{queue}");
    let r1 = read_id(&app, first, "annotator1", &labels[0]);
    assert!(c.find(Locator::Css(&format!("a[href$='/reads/{r1}']"))).await.is_err(), "no link to a hidden read");
    let count = c.find(Locator::Css("#to-read")).await.unwrap().text().await.unwrap();
    assert!(count.starts_with("0 to read now"), "{count}");
    screenshot(&c, "43-queue-washout").await;

    c.delete_all_cookies().await.unwrap();
    sign_in(&c, &app.base, "annotator3").await;
    c.goto(&format!("{}/studies/LUNG-IO-01/campaigns/{first}/adjudication", app.base)).await.unwrap();
    let table = c.find(Locator::Css("#disagreements")).await.unwrap().text().await.unwrap();
    assert!(table.contains("Reader A") && table.contains("Reader B"), "{table}");
    for name in ["annotator1", "annotator2", "Kim Minji", "Lee Seojun"] {
        assert!(!table.contains(name), "{name} shown to the adjudicator: {table}");
    }
    screenshot(&c, "44-adjudication-blinded").await;
    c.find(Locator::LinkText("View slide")).await.unwrap().click().await.unwrap();
    c.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css("#slide-viewer[data-ready]")).await.unwrap();
    let head = c.find(Locator::Css(".page-head h2")).await.unwrap().text().await.unwrap();
    assert!(head.contains("a reader's read (view only)") && !head.contains("annotator"), "{head}");
    assert!(c.find(Locator::Css("#ai-assist")).await.is_err(), "no AI for the adjudicator");
    c.close().await.unwrap();
}

/// A query's whole life in the browser: the monitor raises it from a case page, the site's
/// coordinator (site staff of SNUBH) finds it among their site's queries and answers it with
/// the corrected value and the reason for the change, the monitor closes it; each step is in
/// the audit trail.
#[tokio::test]
async fn a_monitor_raises_a_query_the_site_corrects_the_value_and_the_monitor_closes_it() {
    let app = spawn_app();
    let case = "SNUBH-0001";
    let before = {
        let mut conn = app.conn();
        let sid = evidentia::studies::get_by_code(&mut conn, "LUNG-IO-01").unwrap().id;
        evidentia::cases::get(&mut conn, sid, case).unwrap().value("ecog").map(evidentia::cases::dictionary::value_text)
    };
    let corrected = if before.as_deref() == Some("2") { "1" } else { "2" };
    let (_driver, c) = start_browser().await;
    sign_in(&c, &app.base, "monitor").await;
    c.goto(&format!("{}/studies/LUNG-IO-01/cases/{case}", app.base)).await.unwrap();
    c.find(Locator::Css("#raise-query select[name=field]")).await.unwrap().select_by_value("ecog").await.unwrap();
    fill(&c, "#raise-query textarea[name=message]", "The clinic note at ICI start records another ECOG.").await;
    c.find(Locator::Css("#raise-query button[type=submit]")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css(".flash-ok")).await.unwrap();
    let url = c.current_url().await.unwrap().to_string();
    assert!(url.contains("/queries/"), "{url}");
    screenshot(&c, "50-query-opened").await;

    c.delete_all_cookies().await.unwrap();
    sign_in(&c, &app.base, "coordinator-snubh").await;
    c.goto(&format!("{}/studies/LUNG-IO-01/queries", app.base)).await.unwrap();
    let listed = c.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
    assert!(listed.contains(case) && !listed.contains("SMC-"), "only SNUBH's queries: {listed}");
    c.goto(&url).await.unwrap();
    fill(&c, "#answer textarea[name=message]", "Corrected from the clinic note.").await;
    c.find(Locator::Css("#answer select[name=value]")).await.unwrap().select_by_value(corrected).await.unwrap();
    c.find(Locator::Css("#answer select[name=_reason]"))
        .await
        .unwrap()
        .select_by_value("Corrected from the source document")
        .await
        .unwrap();
    c.find(Locator::Css("#answer button[type=submit]")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css(".flash-ok")).await.unwrap();
    let now = c.find(Locator::Css("#current-value")).await.unwrap().text().await.unwrap();
    assert_eq!(now.trim(), corrected);
    screenshot(&c, "51-query-answered").await;

    c.delete_all_cookies().await.unwrap();
    sign_in(&c, &app.base, "monitor").await;
    c.goto(&url).await.unwrap();
    fill(&c, "#close input[name=message]", "Verified against the source.").await;
    c.find(Locator::Css("#close button[type=submit]")).await.unwrap().click().await.unwrap();
    let flash = c.wait().for_element(Locator::Css(".flash-ok")).await.unwrap().text().await.unwrap();
    assert!(flash.contains("is now closed"), "{flash}");
    let thread = c.find(Locator::Css("#thread")).await.unwrap().text().await.unwrap();
    assert!(thread.contains("open") && thread.contains("answer") && thread.contains("close"), "{thread}");
    screenshot(&c, "52-query-closed").await;
    c.close().await.unwrap();

    let id = url.rsplit('/').next().unwrap().to_string();
    let steps: Vec<String> = audit_events(&app, "")
        .into_iter()
        .filter(|e| e.entity == evidentia::audit::Entity::Query && e.entity_id == id)
        .map(|e| format!("{} {}", e.action, e.actor))
        .rev()
        .collect();
    assert_eq!(steps, ["create monitor", "answer coordinator-snubh", "close monitor"]);
    let changed = audit_events(&app, "update")
        .into_iter()
        .find(|e| e.entity_id == case)
        .expect("the value change is audited on the case");
    assert!(changed.reason.as_deref().unwrap().starts_with("Corrected from the source document"));
}
