//! Cases: dictionary import, de-identified case import (web and CLI), PHI never stored,
//! logged, shown or exported; malformed files refused with nothing changed; access; audit.

use std::path::Path;

use diesel::prelude::*;

use crate::helpers::*;
use evidentia::auth::Actor;
use evidentia::studies::{self, sites, StudyInput};

const DICTIONARY: &[u8] = include_bytes!("../fixtures/phi_dictionary.csv");
const PHI_CASES: &[u8] = include_bytes!("../fixtures/phi_cases.csv");

/// Every identifier planted in the fixture, in identifier columns and inside free text.
const PLANTED: [&str; 37] = [
    "HOSP-77123",
    "HOSP-77124",
    "김민지",
    "John Smithson",
    "Smithson",
    "850315-1234567",
    "900101-2345678",
    "123-45-6789",
    "987-65-4321",
    "MRN00998877",
    "00998877",
    "MRN00112233",
    "HP-5566778899",
    "HP-1122334455",
    "ACCT-44332211",
    "ACCT-99887766",
    "DL-12-345678-90",
    "DL-98-765432-10",
    "서울12가3456",
    "경기34나5678",
    "PM-SN-99887766",
    "PM-SN-11223344",
    "minji.kim@example.org",
    "john.smithson@example.com",
    "010-9876-5432",
    "02-555-0199",
    "867-5309",
    "Bundang-ro",
    "Elm Street",
    "02139-4307",
    "03601-1234",
    "minji-kim.example.net",
    "john-smithson.example.com",
    "203.0.113.45",
    "198.51.100.7",
    "1931-04-02",
    "2024-03-15",
];

fn assert_no_phi(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for p in PLANTED {
        assert!(!text.contains(p), "planted identifier {p:?} found in {what}");
    }
}

fn scan_dir(dir: &Path) -> usize {
    let files = files_under(dir);
    for p in &files {
        assert_no_phi(&p.display().to_string(), &std::fs::read(p).unwrap());
    }
    files.len()
}

/// A study PHI-01 with sites SNUBH and SMC, the fixture dictionary, and `manager` as its manager.
fn phi_study(app: &TestApp) {
    let mut conn = app.conn();
    let op = Actor::cli_operator();
    let input = StudyInput { code: "PHI-01".into(), title: "PHI test".into(), ..Default::default() };
    studies::create(&mut conn, &op, &input).unwrap();
    let access = evidentia::auth::permissions::study_access(&mut conn, &op, "PHI-01").unwrap();
    for code in ["SNUBH", "SMC"] {
        let s = sites::SiteInput { code: code.into(), name: code.into(), ..Default::default() };
        sites::add(&mut conn, &op, &access, &s).unwrap();
    }
    for (u, r) in [("manager", "manager"), ("annotator1", "annotator"), ("monitor", "monitor")] {
        studies::members::add(&mut conn, &op, &access, u, r).unwrap();
    }
}

pub async fn upload(c: &Client, path: &str, name: &str, bytes: &[u8], fields: &[(&str, &str)]) -> reqwest::Response {
    let mut form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(name.to_string()));
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    c.http.post(c.url(&format!("{path}?csrf_token={}", c.csrf))).multipart(form).send().await.unwrap()
}

fn token_of(page: &str) -> String {
    let k = "/cases/import/";
    let start = page.find(k).expect("confirm form") + k.len();
    page[start..start + 64].to_string()
}

#[tokio::test]
async fn planted_phi_never_reaches_the_database_the_logs_a_page_or_an_export() {
    let app = spawn_app();
    phi_study(&app);
    let m = app.login("manager").await;
    let r = upload(&m, "/studies/PHI-01/dictionary/import", "dict.csv", DICTIONARY, &[]).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let r = upload(&m, "/studies/PHI-01/cases/import", "kim_minji_export.csv", PHI_CASES, &[]).await;
    assert_eq!(r.status(), 200);
    let preview = r.text().await.unwrap();
    assert_no_phi("the preview page", preview.as_bytes());
    assert!(preview.contains("2 cases ready"), "{preview}");
    assert!(!preview.contains("kim_minji_export"), "the upload's name is not shown or kept");
    let token = token_of(&preview);
    let r = m.post(&format!("/studies/PHI-01/cases/import/{token}/confirm"), &[]).await;
    assert_eq!(r.status(), 303);
    // The preview is gone once used.
    assert_eq!(m.post(&format!("/studies/PHI-01/cases/import/{token}/confirm"), &[]).await.status(), 303);

    // The CLI path, with every log line captured at debug level.
    let file = app.scratch.join("phi_cases_cli.csv");
    std::fs::write(&file, PHI_CASES).unwrap();
    let mut cmd = app.command();
    cmd.args(["cases", "import", "--study", "PHI-01"]).arg(&file).env("RUST_LOG", "debug");
    let out = cmd.output().unwrap();
    std::fs::remove_file(&file).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 unchanged"), "re-import links to the same subjects");
    assert_no_phi("CLI stdout", &out.stdout);
    assert_no_phi("CLI stderr (logs)", &out.stderr);

    // Pages and exports.
    let mut pages = vec![
        "/studies/PHI-01/cases".to_string(),
        "/studies/PHI-01/cases/SNUBH-0001".into(),
        "/studies/PHI-01/cases/SMC-0001".into(),
        "/studies/PHI-01/cases/import".into(),
        "/studies/PHI-01/dictionary".into(),
        "/studies/PHI-01/audit".into(),
        "/studies/PHI-01/audit.csv".into(),
        "/studies/PHI-01/cases.csv".into(),
        "/studies/PHI-01/cases.csv?labels=1".into(),
        "/studies/PHI-01/dictionary.csv".into(),
        "/api/v1/studies/PHI-01".into(),
    ];
    pages.push("/studies/PHI-01/cases?field=notes&value=REDACTED".into());
    for p in &pages {
        let (s, body) = m.get_text(p).await;
        assert_eq!(s, 200, "{p}");
        assert_no_phi(p, body.as_bytes());
    }
    let (_, case_page) = m.get_text("/studies/PHI-01/cases/SNUBH-0001").await;
    assert!(case_page.contains("[REDACTED:NAME]") && case_page.contains("[REDACTED:EMAIL]"), "free text was scrubbed");
    assert!(case_page.contains("90+"), "age over 89 generalised");
    let (_, csv) = m.get_text("/studies/PHI-01/cases.csv").await;
    assert!(csv.lines().next().unwrap().starts_with("subject_id,site,status"));
    assert!(csv.contains(",021,") && csv.contains(",000,"), "ZIP3, restricted prefix as 000:\n{csv}");
    assert!(!csv.contains("patient_name"), "dropped identifiers have no column");

    let out = app.cli(
        &["cases", "export", "--study", "PHI-01", "--out", app.data_dir.join("exports/cases.csv").to_str().unwrap()],
        None,
    );
    assert!(out.status.success());
    let out = app.cli(
        &["audit", "export", "--study", "PHI-01", "--out", app.data_dir.join("exports/audit.csv").to_str().unwrap()],
        None,
    );
    assert!(out.status.success());
    // Every file of the data dir: the database, its WAL, secrets, exports, leftover previews.
    drop(m);
    let files = scan_dir(&app.data_dir);
    assert!(files >= 4, "scanned {files} files");
    match &app.database_url {
        // The whole database as SQL text (every table's rows).
        Some(url) => {
            let dump = crate::helpers::postgres::dump(url);
            assert!(dump.len() > 10_000, "a dump of {} bytes", dump.len());
            assert_no_phi("the PostgreSQL database (pg_dump)", &dump);
        }
        None => {
            assert!(app.data_dir.join("evidentia.db-wal").exists() || app.data_dir.join("evidentia.db").exists())
        }
    }
}

/// The PHI study with its dictionary and the fixture's cases imported from the web; the
/// manager's client.
async fn imported_phi_cases(app: &TestApp) -> Client {
    phi_study(app);
    let m = app.login("manager").await;
    upload(&m, "/studies/PHI-01/dictionary/import", "dict.csv", DICTIONARY, &[]).await;
    let r = upload(&m, "/studies/PHI-01/cases/import", "a.csv", PHI_CASES, &[]).await;
    let token = token_of(&r.text().await.unwrap());
    assert_eq!(m.post(&format!("/studies/PHI-01/cases/import/{token}/confirm"), &[]).await.status(), 303);
    m
}

#[tokio::test]
async fn a_web_import_is_copied_from_the_wal_into_the_database_file_in_the_background() {
    if crate::helpers::postgres::skip_sqlite_only("WAL checkpoint") {
        return;
    }
    let app = spawn_app();
    imported_phi_cases(&app).await;
    // The main file alone (a copy, without its WAL) holds the cases once the checkpoint ran;
    // far fewer than 1,000 pages were written, so no automatic checkpoint would have copied them.
    let sid = studies::get_by_code(&mut app.conn(), "PHI-01").unwrap().id;
    let copy = app.scratch.join("main-file-only.db");
    let mut in_main_file = 0;
    for _ in 0..100 {
        std::fs::copy(app.data_dir.join(evidentia::db::DB_FILE), &copy).unwrap();
        in_main_file = diesel::SqliteConnection::establish(&copy.to_string_lossy())
            .ok()
            .and_then(|mut c| {
                use evidentia::db::schema::cases;
                cases::table.filter(cases::study_id.eq(sid)).count().get_result::<i64>(&mut c).ok()
            })
            .unwrap_or(0);
        let _ = std::fs::remove_file(copy.with_extension("db-wal"));
        if in_main_file == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(in_main_file, 2, "the import reached the database file");
}

#[tokio::test]
async fn dates_shift_per_subject_and_reimports_update_with_audit() {
    let app = spawn_app();
    let m = imported_phi_cases(&app).await;
    let sid = studies::get_by_code(&mut app.conn(), "PHI-01").unwrap().id;
    // Birth dates default to year-only, aggregated past 89 (§164.514(b)(2)(i)(C)).
    let first = evidentia::cases::get(&mut app.conn(), sid, "SNUBH-0001").unwrap();
    let cutoff = chrono::Datelike::year(&chrono::Utc::now()) - 90;
    assert_eq!(first.values()["birth_date"], serde_json::json!(format!("{cutoff} or earlier")));
    // Switched to shift-date on the dictionary page, dates of one subject move together.
    let r = m
        .post(
            "/studies/PHI-01/dictionary/fields/birth_date",
            &[("label", "Date of birth"), ("action", "shift-date"), ("accept_invalidated", "1")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let r = upload(&m, "/studies/PHI-01/cases/import", "a2.csv", PHI_CASES, &[]).await;
    let token = token_of(&r.text().await.unwrap());
    m.post(&format!("/studies/PHI-01/cases/import/{token}/confirm"), &[]).await;
    let case = evidentia::cases::get(&mut app.conn(), sid, "SNUBH-0001").unwrap();
    let v = case.values();
    let bd = chrono::NaiveDate::parse_from_str(v["birth_date"].as_str().unwrap(), "%Y-%m-%d").unwrap();
    let bx = chrono::NaiveDate::parse_from_str(v["biopsy_date"].as_str().unwrap(), "%Y-%m-%d").unwrap();
    let true_gap = (chrono::NaiveDate::from_ymd_opt(2024, 3, 15).unwrap()
        - chrono::NaiveDate::from_ymd_opt(1931, 4, 2).unwrap())
    .num_days();
    assert_eq!((bx - bd).num_days(), true_gap, "one offset for all of a subject's dates");
    assert_ne!(bx, chrono::NaiveDate::from_ymd_opt(2024, 3, 15).unwrap());
    assert_eq!(v["sites"], serde_json::json!(["1"]));

    // A re-import with a changed TPS updates that subject (same pseudonym) and audits the change.
    let changed = String::from_utf8_lossy(PHI_CASES).replace(",2024-03-15,55,", ",2024-03-15,60,");
    let r = upload(&m, "/studies/PHI-01/cases/import", "b.csv", changed.as_bytes(), &[]).await;
    let token = token_of(&r.text().await.unwrap());
    let r = m.post(&format!("/studies/PHI-01/cases/import/{token}/confirm"), &[]).await;
    assert_eq!(r.status(), 303);
    let again = evidentia::cases::get(&mut app.conn(), sid, "SNUBH-0001").unwrap();
    assert_eq!(again.values()["tps"], serde_json::json!(60.0));
    assert_eq!(again.values()["biopsy_date"], v["biopsy_date"], "the same shift at every import");
    assert_eq!(evidentia::cases::count(&mut app.conn(), sid).unwrap(), 2);
    // Newest first: this import changed one value of one case (the one before it re-dated births).
    let upd: Vec<_> = audit_events(&app, "update")
        .into_iter()
        .filter(|e| e.entity.as_str() == "case" && e.chain == "study:PHI-01")
        .collect();
    assert_eq!(upd.len(), 3);
    assert!(upd[0].reason.as_deref().is_some_and(|r| r.starts_with("import ")), "the import is named");
    assert_eq!(upd[0].old_value.as_deref(), Some("{\"tps\":55}"));
    assert_eq!(upd[0].new_value.as_deref(), Some("{\"tps\":60}"));

    // Editing on the case page and changing status: validated, audited, blocked when locked.
    let r = m.post("/studies/PHI-01/cases/SNUBH-0001/edit", &[("tps", "150"), ("_reason", "Data entry error")]).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("out of range"));
    // A change to saved data needs a reason from the list ("Other" with details); nothing changes
    // without one.
    let audited = audit_events(&app, "update").len();
    for (form, says) in [
        (vec![("tps", "70")], "reason: say why the values change"),
        (vec![("tps", "70"), ("_reason", "Because")], "Because&#39; is not one of the reasons (Data entry error"),
        (vec![("tps", "70"), ("_reason", "Other")], "reason_details: say what the other reason is"),
    ] {
        let r = m.post("/studies/PHI-01/cases/SNUBH-0001/edit", &form).await;
        assert_eq!(r.status(), 422, "{form:?}");
        let page = r.text().await.unwrap();
        assert!(page.contains(says), "{says}: {page}");
    }
    assert_eq!(audit_events(&app, "update").len(), audited, "nothing audited without a reason");
    let r = m
        .post(
            "/studies/PHI-01/cases/SNUBH-0001/edit",
            &[
                ("tps", "70"),
                ("_reason", "Corrected from the source document"),
                ("_reason_details", "pathology report p.2"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let upd = audit_events(&app, "update");
    assert_eq!(upd[0].reason.as_deref(), Some("Corrected from the source document: pathology report p.2"));
    // Saving the form unchanged records nothing and asks for no reason.
    assert_eq!(m.post("/studies/PHI-01/cases/SNUBH-0001/edit", &[("tps", "70")]).await.status(), 303);
    assert_eq!(audit_events(&app, "update").len(), upd.len());
    assert_eq!(
        evidentia::cases::get(&mut app.conn(), sid, "SNUBH-0001").unwrap().values()["tps"],
        serde_json::json!(70.0)
    );
    m.post("/studies/PHI-01/cases/SNUBH-0001/status", &[("status", "excluded"), ("reason", "")]).await;
    assert_eq!(evidentia::cases::get(&mut app.conn(), sid, "SNUBH-0001").unwrap().status.as_str(), "enrolled");
    m.post("/studies/PHI-01/cases/SNUBH-0001/status", &[("status", "excluded"), ("reason", "No tumour in block")])
        .await;
    let c = evidentia::cases::get(&mut app.conn(), sid, "SNUBH-0001").unwrap();
    assert_eq!((c.status.as_str(), c.status_reason.as_deref()), ("excluded", Some("No tumour in block")));
    let (_, page) = m.get_text("/studies/PHI-01/cases/SNUBH-0001").await;
    assert!(page.contains("No tumour in block"), "history on the case page");
    let history = page.split(r#"id="case-history""#).nth(1).expect("a history table");
    assert!(
        history.contains("<del>60</del> → 70")
            && history.contains("Corrected from the source document: pathology report p.2"),
        "old → new with the reason: {history}"
    );
    assert!(history.contains("<del>enrolled</del> → excluded"), "status changes too");
    m.post("/studies/PHI-01/status", &[("to", "active")]).await;
    let admin = app.login("admin").await;
    admin.post("/studies/PHI-01/status", &[("to", "locked"), ("reason", "test: checklist waived")]).await;
    assert_eq!(
        m.post("/studies/PHI-01/cases/SNUBH-0001/edit", &[("tps", "10"), ("_reason", "Data entry error")])
            .await
            .status(),
        409
    );
    let r = upload(&m, "/studies/PHI-01/cases/import", "c.csv", PHI_CASES, &[]).await;
    assert_eq!(r.status(), 409, "no import into a locked study");
}

/// The case page's edits go through the door like an import: free text and the status reason are
/// scrubbed, the withdrawal date is shifted by the subject's offset, and de-identified fields (the
/// subject id, identifiers, year-only and shifted dates) are refused with nothing changed.
#[tokio::test]
async fn case_page_edits_are_de_identified_at_the_door() {
    let app = spawn_app();
    let m = imported_phi_cases(&app).await;
    let sid = studies::get_by_code(&mut app.conn(), "PHI-01").unwrap().id;
    let case = |app: &TestApp| evidentia::cases::get(&mut app.conn(), sid, "SNUBH-0001").unwrap();
    let before = case(&app);
    let events = || audit_events(&app, "").len();

    // An identifier kept as is (the dictionary allows it) is still not typed in on the page.
    let r =
        m.post("/studies/PHI-01/dictionary/fields/address", &[("label", "Street address"), ("action", "keep")]).await;
    assert_eq!(r.status(), 303);
    let audited = events();

    // Refused, naming the field, nothing changed and nothing audited.
    for (field, value, says) in [
        ("birth_date", "1931-04-02", "birth_date: an identifier: it changes only by importing"),
        ("biopsy_date", "2024-03-15", "biopsy_date: de-identified (shift-date)"),
        ("subject_id", "HOSP-77123", "subject_id: the subject id links the case"),
        ("patient_name", "John Smithson", "patient_name: an identifier"),
        ("address", "42 Elm Street", "address: an identifier"),
        ("age", "94", "age: de-identified (generalise)"),
        ("ghost", "1", "ghost: not a field of this study"),
        ("sites", "9", "sites: not one of the choices (1, 2)"),
    ] {
        let r = m
            .post(
                "/studies/PHI-01/cases/SNUBH-0001/edit",
                &[(field, value), ("tps", "1"), ("_reason", "Data entry error")],
            )
            .await;
        assert_eq!(r.status(), 422, "{field}");
        let page = r.text().await.unwrap();
        assert!(page.contains(says), "{field}: {says}");
        assert_no_phi(&format!("the page refusing {field}"), page.as_bytes());
    }
    assert_eq!(case(&app).values(), before.values(), "nothing changed");
    assert_eq!(events(), audited, "nothing audited");

    // Free text is scrubbed as it is saved; the manager is told how much was redacted.
    let note = "Called 010-9876-5432, wrote to minji.kim@example.org, RRN 850315-1234567, MRN00998877.";
    let r = m
        .post(
            "/studies/PHI-01/cases/SNUBH-0001/edit",
            &[("notes", note), ("_reason", "Other"), ("_reason_details", "site called back on 010-1111-2222")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let (_, page) = m.get_text("/studies/PHI-01/cases/SNUBH-0001").await;
    assert!(page.contains("Identifiers redacted from free text: 4 in notes"), "the flash says so");
    let notes = case(&app).values()["notes"].as_str().unwrap().to_string();
    assert_eq!(notes, "Called [REDACTED:PHONE], wrote to [REDACTED:EMAIL], RRN [REDACTED:RRN], MRN[REDACTED:MRN].");
    let upd = audit_events(&app, "update");
    assert_eq!(upd[0].entity_id, "SNUBH-0001");
    assert!(upd[0].new_value.as_deref().is_some_and(|v| v.contains("[REDACTED:PHONE]")), "{:?}", upd[0].new_value);
    assert_eq!(
        upd[0].reason.as_deref(),
        Some("Other: site called back on [REDACTED:PHONE] (identifiers redacted from free text: notes 4, reason 1)")
    );

    // Checkbox fields: the ticked codes, in the order of the choices; none ticked is an empty list.
    let r = m
        .post(
            "/studies/PHI-01/cases/SNUBH-0001/edit",
            &[("sites", ""), ("sites", "2"), ("sites", "1"), ("_reason", "Data entry error")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(case(&app).values()["sites"], serde_json::json!(["1", "2"]));
    let (_, page) = m.get_text("/studies/PHI-01/cases/SNUBH-0001").await;
    assert!(page.contains(r#"name="sites" value="2" checked"#), "the boxes show what is stored");
    assert_eq!(
        m.post("/studies/PHI-01/cases/SNUBH-0001/edit", &[("sites", ""), ("_reason", "Data entry error")])
            .await
            .status(),
        303
    );
    assert_eq!(case(&app).values()["sites"], serde_json::json!([]));
    let upd = audit_events(&app, "update");
    assert_eq!(upd[0].old_value.as_deref(), Some(r#"{"sites":["1","2"]}"#));
    assert_eq!(upd[0].new_value.as_deref(), Some(r#"{"sites":[]}"#));

    // A withdrawal: its reason scrubbed, its date never typed as a calendar date. A person who
    // typed a true date and saw it stored shifted would learn the subject's offset, so a true
    // date is refused (nothing changes) and the date comes as days after one of the case's own
    // (shifted) dates.
    let biopsy =
        chrono::NaiveDate::parse_from_str(before.values()["biopsy_date"].as_str().unwrap(), "%Y-%m-%d").unwrap();
    let status_url = "/studies/PHI-01/cases/SNUBH-0001/status";
    let refused = [
        (vec![("date", "2025-01-10")], "date: a calendar date is not taken here"),
        (vec![], "days: the date of withdrawal is required"),
        (vec![("days", "36526"), ("from", "biopsy_date")], "days: not a whole number of days"),
        (vec![("days", "twelve"), ("from", "biopsy_date")], "days: not a whole number of days"),
        (vec![("days", "120"), ("from", "tps")], "from: choose one of the case"),
    ];
    let statuses = audit_events(&app, "status").len();
    for (extra, message) in refused {
        let mut form = vec![("status", "withdrawn"), ("reason", "Moved away")];
        form.extend(extra);
        assert_eq!(m.post(status_url, &form).await.status(), 303);
        let (_, page) = m.get_text("/studies/PHI-01/cases/SNUBH-0001").await;
        assert!(page.contains(message), "{message}: {page}");
        assert_eq!(case(&app).status.as_str(), before.status.as_str(), "{message}: nothing changed");
    }
    assert_eq!(audit_events(&app, "status").len(), statuses, "nor audited");
    let (_, page) = m.get_text("/studies/PHI-01/cases/SNUBH-0001").await;
    assert!(
        page.contains(&format!(r#"<option value="biopsy_date">Biopsy date ({biopsy})</option>"#)),
        "the form offers the case's dates, as stored"
    );
    assert!(!page.contains(r#"type="date" name="date""#), "and no calendar date");
    let r = m
        .post(
            status_url,
            &[
                ("status", "withdrawn"),
                ("days", "120"),
                ("from", "biopsy_date"),
                ("reason", "Moved away; reach her at 010-9876-5432"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let stored = biopsy + chrono::Duration::days(120);
    let (_, page) = m.get_text("/studies/PHI-01/cases/SNUBH-0001").await;
    assert!(page.contains("Identifiers redacted from the reason: 1"), "the flash says so");
    assert!(page.contains(&format!("Its date: {stored}.")), "and shows the stored date");
    let c = case(&app);
    assert_eq!(c.status.as_str(), "withdrawn");
    assert_eq!(c.status_reason.as_deref(), Some("Moved away; reach her at [REDACTED:PHONE]"));
    assert_eq!(c.status_date, Some(stored));
    let st = audit_events(&app, "status");
    assert_eq!(st[0].reason.as_deref(), Some("Moved away; reach her at [REDACTED:PHONE]"));
    assert_eq!(
        st[0].new_value.as_deref(),
        Some(
            format!(r#"{{"counted_from":"biopsy_date","date":"{stored}","days_after":120,"status":"withdrawn"}}"#)
                .as_str()
        )
    );

    // Monitors and annotators may not edit (refused before the case is looked up); to someone
    // outside the study it does not exist.
    for (user, status) in [("monitor", 403), ("annotator1", 403), ("outsider", 404)] {
        let c = app.login(user).await;
        assert_eq!(
            c.post("/studies/PHI-01/cases/SNUBH-0001/edit", &[("tps", "3"), ("_reason", "Data entry error")])
                .await
                .status(),
            status,
            "{user}"
        );
        let r = c.post("/studies/PHI-01/cases/SNUBH-0001/status", &[("status", "enrolled")]).await;
        assert_eq!(r.status(), status, "{user}");
    }
    assert_eq!(case(&app).values()["tps"], before.values()["tps"]);

    // None of what was typed reached a file of the data dir (database, WAL) or a page.
    for p in ["/studies/PHI-01/cases/SNUBH-0001", "/studies/PHI-01/audit", "/studies/PHI-01/cases.csv"] {
        assert_no_phi(p, m.get_text(p).await.1.as_bytes());
    }
    drop(m);
    scan_dir(&app.data_dir);
}

/// (what, file bytes, text the error must contain)
fn bad_files() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let header = "subject_id,site,age,sex,biopsy_date,tps,sites___1,notes\n";
    let mut big_cell = header.as_bytes().to_vec();
    big_cell.extend_from_slice(b"S1,SNUBH,50,1,2024-01-01,5,0,\"");
    big_cell.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
    big_cell.extend_from_slice(b"\"\n");
    let wide =
        format!("subject_id,site,{}\nS1,SNUBH\n", (0..100_000).map(|i| format!("c{i}")).collect::<Vec<_>>().join(","));
    let every_row_bad: String = std::iter::once(header.to_string())
        .chain((0..1000).map(|i| format!("S{i},SNUBH,fifty,1,2024-01-01,5,0,\n")))
        .collect();
    vec![
        ("100,000 columns", wide.into_bytes(), "the header has 100002 columns, over the limit of 5000"),
        // The count is given; the list stops at 200.
        ("a problem on every row", every_row_bad.into_bytes(), "and 800 more"),
        ("ragged row", format!("{header}S1,SNUBH,50,1,2024-01-01,5,0,ok\nS2,SNUBH,50\n").into_bytes(), "row 2"),
        ("broken quoting", format!("{header}S1,SNUBH,50,1,2024-01-01,5,0,\"never closed\n").into_bytes(), "quoting"),
        ("binary data", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec(), "binary"),
        ("empty file", Vec::new(), "empty"),
        ("a 10 MB cell", big_cell, "column notes"),
        (
            "unknown column",
            b"subject_id,site,secret_column\nS1,SNUBH,x\n".to_vec(),
            "column secret_column: not in the data dictionary",
        ),
        (
            // The rest of the file is still checked: one dry run lists every problem.
            "unknown column beside a bad value",
            b"subject_id,site,secret_column,age\nS1,SNUBH,x,fifty\n".to_vec(),
            "row 1, column age: not a whole number",
        ),
        (
            "missing required",
            format!("{header}S1,SNUBH,50,,2024-01-01,5,0,\n").into_bytes(),
            "row 1, column sex: missing required value (spreadsheet row 2)",
        ),
        (
            "wrong type",
            format!("{header}S1,SNUBH,fifty,1,2024-01-01,5,0,\n").into_bytes(),
            "row 1, column age: not a whole number",
        ),
        (
            "out of range",
            format!("{header}S1,SNUBH,50,1,2024-01-01,101,0,\n").into_bytes(),
            "row 1, column tps: out of range",
        ),
        (
            "not a choice",
            format!("{header}S1,SNUBH,50,3,2024-01-01,5,0,\n").into_bytes(),
            "row 1, column sex: not one of the choices",
        ),
        (
            "duplicate subject",
            format!("{header}S1,SNUBH,50,1,2024-01-01,5,0,\nS1,SNUBH,51,1,2024-01-01,5,0,\n").into_bytes(),
            "row 2, column subject_id: duplicate subject",
        ),
        (
            "unparseable date",
            format!("{header}S1,SNUBH,50,1,2024-13-45,5,0,\n").into_bytes(),
            "row 1, column biopsy_date: not a date",
        ),
        (
            "unknown site",
            format!("{header}S1,NOPE,50,1,2024-01-01,5,0,\n").into_bytes(),
            "row 1, column site: NOPE is not an active site",
        ),
    ]
}

fn snapshot(app: &TestApp) -> (i64, i64, i64) {
    use evidentia::db::schema::{audit_events, case_imports, cases};
    let mut c = app.conn();
    (
        cases::table.count().get_result(&mut c).unwrap(),
        audit_events::table.count().get_result(&mut c).unwrap(),
        case_imports::table.count().get_result(&mut c).unwrap(),
    )
}

#[tokio::test]
async fn malformed_files_get_a_clear_error_and_change_nothing() {
    let app = spawn_app_with(|cfg| cfg.max_upload_bytes = 11 * 1024 * 1024);
    phi_study(&app);
    let m = app.login("manager").await;
    upload(&m, "/studies/PHI-01/dictionary/import", "dict.csv", DICTIONARY, &[]).await;
    let before = snapshot(&app);
    for (what, bytes, needle) in bad_files() {
        let r = upload(&m, "/studies/PHI-01/cases/import", "bad.csv", &bytes, &[]).await;
        assert_eq!(r.status(), 422, "{what}");
        let body = r.text().await.unwrap();
        assert!(body.contains(needle), "{what}: expected {needle:?} in the page");
        assert!(!body.contains("confirm-import"), "{what}: no way to confirm");
        // The CLI refuses the same file with exit 2 and the problem on stderr.
        let f = app.scratch.join("bad.csv");
        std::fs::write(&f, &bytes).unwrap();
        let out = app.cli(&["cases", "import", "--study", "PHI-01", f.to_str().unwrap()], None);
        assert_eq!(out.status.code(), Some(2), "{what}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(needle),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Over the upload limit.
    let huge = vec![b'a'; 12 * 1024 * 1024];
    let r = upload(&m, "/studies/PHI-01/cases/import", "huge.csv", &huge, &[]).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("over the upload limit"));
    assert_eq!(snapshot(&app), before, "nothing changed");
    // No preview was left behind for refused files.
    let left = std::fs::read_dir(app.data_dir.join("tmp")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0);
}

#[tokio::test]
async fn hospital_encodings_and_delimiters_import() {
    let app = spawn_app();
    phi_study(&app);
    let m = app.login("manager").await;
    upload(&m, "/studies/PHI-01/dictionary/import", "dict.csv", DICTIONARY, &[]).await;
    let text = "subject_id;age;sex;notes\r\nK1;61;2;\"환자 박서준, 2차 항암 후\r\n호전\"\r\nK2;45;1;\r\n\r\n";
    let (cp949, _, _) = encoding_rs::EUC_KR.encode(text);
    let f = app.scratch.join("kr.csv");
    std::fs::write(&f, &cp949).unwrap();
    let out = app.cli(&["cases", "import", "--study", "PHI-01", "--site", "SMC", f.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("cp949"));
    let sid = studies::get_by_code(&mut app.conn(), "PHI-01").unwrap().id;
    let c = evidentia::cases::get(&mut app.conn(), sid, "SMC-0001").unwrap();
    assert_eq!(c.values()["notes"], serde_json::json!("환자 박서준, 2차 항암 후\r\n호전"));
    // Latin-1 with a BOM-less tab-separated file through the web, site picked in the form.
    let latin = b"subject_id\tage\tsex\tnotes\nL1\t70\t1\tJos\xe9 stable\n";
    let r = upload(&m, "/studies/PHI-01/cases/import", "l.csv", latin, &[("site", "SNUBH")]).await;
    let page = r.text().await.unwrap();
    assert!(page.contains("latin-1") && page.contains("1 cases ready"), "{page}");
}

#[tokio::test]
async fn a_killed_import_leaves_nothing_behind() {
    let app = spawn_app();
    phi_study(&app);
    let m = app.login("manager").await;
    upload(&m, "/studies/PHI-01/dictionary/import", "dict.csv", DICTIONARY, &[]).await;
    let mut csv = String::from("subject_id,site,age,sex,notes\n");
    for i in 0..40_000 {
        csv.push_str(&format!("P{i},SNUBH,{},1,note {i}\n", 20 + i % 60));
    }
    let f = app.scratch.join("big.csv");
    std::fs::write(&f, csv).unwrap();
    let sid = studies::get_by_code(&mut app.conn(), "PHI-01").unwrap().id;
    for delay_ms in [300u64, 900] {
        let mut child = app
            .command()
            .args(["cases", "import", "--study", "PHI-01"])
            .arg(&f)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let n = evidentia::cases::count(&mut app.conn(), sid).unwrap();
        assert!(n == 0 || n == 40_000, "all or nothing, found {n}");
        if n == 40_000 {
            break;
        }
    }
    // Whatever happened, the audit chains still hold.
    let out = app.cli(&["audit", "verify"], None);
    assert!(out.status.success());
}

#[tokio::test]
async fn annotators_see_no_case_data() {
    let app = spawn_app();
    phi_study(&app);
    let a = app.login("annotator1").await;
    for p in [
        "/studies/PHI-01/cases",
        "/studies/PHI-01/dictionary",
        "/studies/PHI-01/cases.csv",
        "/studies/PHI-01/dictionary.csv",
        "/studies/LUNG-IO-01/cases/SNUBH-0001",
        "/studies/PHI-01/cases/import",
    ] {
        // Blinding: to an annotator case data does not exist.
        assert_eq!(a.get(p).await.status(), 404, "{p}");
    }
    let (_, overview) = a.get_text("/studies/PHI-01").await;
    assert!(!overview.contains("/cases\""), "no Cases tab for annotators");
    let r = upload(&a, "/studies/PHI-01/cases/import", "x.csv", PHI_CASES, &[]).await;
    assert_eq!(r.status(), 403);
    let o = app.login("outsider").await;
    assert_eq!(o.get("/studies/PHI-01/cases").await.status(), 404);
    let mon = app.login("monitor").await;
    assert_eq!(mon.get("/studies/PHI-01/cases").await.status(), 200, "monitors review case data");
    assert_eq!(upload(&mon, "/studies/PHI-01/cases/import", "x.csv", PHI_CASES, &[]).await.status(), 403);
}

#[tokio::test]
async fn the_demo_study_has_a_dictionary_and_200_cases() {
    let app = spawn_app();
    let s = app.login("statistician").await;
    let (status, page) = s.get_text("/studies/LUNG-IO-01/cases").await;
    assert_eq!(status, 200);
    assert!(page.contains("Cases <span class=\"count\">200</span>"), "200 demo cases");
    let (_, filtered) = s.get_text("/studies/LUNG-IO-01/cases?site=SMC&status=enrolled").await;
    assert!(filtered.contains("1–50 of 90"), "90 SMC cases");
    let (_, by_field) = s.get_text("/studies/LUNG-IO-01/cases?field=histology&value=2").await;
    let count = |page: &str| -> i64 {
        let k = "Cases <span class=\"count\">";
        let i = page.find(k).unwrap() + k.len();
        page[i..].split('<').next().unwrap().parse().unwrap()
    };
    let squamous = count(&by_field);
    assert!(squamous > 0 && squamous < 200, "filter by any field: {squamous}");
    let expected =
        evidentia::demo::truth::subjects(200, evidentia::demo::truth::SEED).iter().filter(|s| s.histology == 2).count();
    assert_eq!(squamous as usize, expected);
    let (s2, dict) = s.get_text("/studies/LUNG-IO-01/dictionary.csv").await;
    assert_eq!(s2, 200);
    assert!(dict.starts_with("Variable / Field Name,Form Name"));
}

/// The case list answers from a cache of each list's ordered ids; every change to the study's
/// cases or sites, by any writer (here a second connection, as the CLI or a worker would), shows
/// on the next request, and deep pages hold exactly the cases they should, in order.
#[tokio::test]
async fn a_case_list_follows_every_change_whoever_makes_it() {
    use evidentia::db::schema::{cases, sites as sites_t};
    let app = spawn_app();
    let s = app.login("statistician").await;
    let count = |page: &str| -> i64 {
        let k = "Cases <span class=\"count\">";
        let i = page.find(k).unwrap() + k.len();
        page[i..].split('<').next().unwrap().parse().unwrap()
    };
    let ids_on = |page: &str| -> Vec<String> {
        page.split("<strong>").skip(1).map(|p| p.split('<').next().unwrap().to_string()).collect()
    };
    let mut all: Vec<String> = cases::table.select(cases::display_id).load(&mut app.conn()).unwrap();
    all.sort();
    // Every page, the deep ones too, holds its slice of the ordered list (asked twice: computed,
    // then cached).
    for _ in 0..2 {
        for page in 1..=4 {
            let (_, html) = s.get_text(&format!("/studies/LUNG-IO-01/cases?page={page}")).await;
            assert_eq!(ids_on(&html), all[(page - 1) * 50..page * 50], "page {page}");
        }
        let (_, desc) = s.get_text("/studies/LUNG-IO-01/cases?dir=desc&page=4").await;
        let mut tail: Vec<String> = all[..50].to_vec();
        tail.reverse();
        assert_eq!(ids_on(&desc), tail);
    }
    let (_, before) = s.get_text("/studies/LUNG-IO-01/cases?status=withdrawn").await;
    let withdrawn = count(&before);
    // Another writer withdraws a case and renames a site.
    let first = all[0].clone();
    diesel::update(cases::table.filter(cases::display_id.eq(&first)))
        .set(cases::status.eq("withdrawn"))
        .execute(&mut app.conn())
        .unwrap();
    let (_, after) = s.get_text("/studies/LUNG-IO-01/cases?status=withdrawn").await;
    assert_eq!(count(&after), withdrawn + 1);
    assert!(ids_on(&after).contains(&first));
    // The first page (kept above, its cases as loaded) shows the case's new status.
    let (_, page1) = s.get_text("/studies/LUNG-IO-01/cases").await;
    let row = &page1[page1.find(&format!("<strong>{first}</strong>")).unwrap()..];
    assert!(row[..row.find("</tr>").unwrap()].contains("withdrawn"), "{}", &row[..300]);
    let (_, smc) = s.get_text("/studies/LUNG-IO-01/cases?site=SMC").await;
    let smc_count = count(&smc);
    diesel::update(sites_t::table.filter(sites_t::code.eq("SMC")))
        .set(sites_t::code.eq("SMC2"))
        .execute(&mut app.conn())
        .unwrap();
    let (_, renamed) = s.get_text("/studies/LUNG-IO-01/cases?site=SMC2").await;
    assert_eq!(count(&renamed), smc_count);
    let (_, old) = s.get_text("/studies/LUNG-IO-01/cases?site=SMC").await;
    assert_eq!(count(&old), 0);
    // The API's list is the same list.
    let api: serde_json::Value = s.get("/api/v1/studies/LUNG-IO-01/cases?site=SMC2").await.json().await.unwrap();
    assert_eq!(api["total"], smc_count);
}

#[tokio::test]
async fn dictionary_changes_are_audited_and_do_not_silently_invalidate_values() {
    let app = spawn_app();
    let m = app.login("manager").await;
    // Narrow the TPS range below stored values: refused, with the values named.
    let r = m
        .post(
            "/studies/LUNG-IO-01/dictionary/fields/pdl1_tps",
            &[("label", "PD-L1 TPS (%)"), ("validation_min", "0"), ("validation_max", "10"), ("action", "keep")],
        )
        .await;
    assert_eq!(r.status(), 422);
    let body = r.text().await.unwrap();
    assert!(body.contains("would no longer validate") && body.contains("pdl1_tps"), "{body}");
    let r = m
        .post(
            "/studies/LUNG-IO-01/dictionary/fields/pdl1_tps",
            &[
                ("label", "PD-L1 tumour proportion score"),
                ("validation_min", "0"),
                ("validation_max", "100"),
                ("action", "keep"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let ev: Vec<_> =
        audit_events(&app, "update").into_iter().filter(|e| e.entity.as_str() == "dictionary_field").collect();
    assert_eq!(ev[0].entity_id, "pdl1_tps");
    assert!(ev[0].new_value.as_deref().unwrap().contains("PD-L1 tumour proportion score"));
    // Dates can never be kept as they are.
    let r = m
        .post("/studies/LUNG-IO-01/dictionary/fields/ici_start_date", &[("label", "ICI start"), ("action", "keep")])
        .await;
    assert_eq!(r.status(), 422);
}

/// The case list keeps the parsed dictionary and the site list with the study's case version:
/// a dictionary change and a new site — made by another process, here the library as the CLI
/// would — show on the next page load (the triggers raise the version on both engines).
#[tokio::test]
async fn the_case_list_shows_a_changed_dictionary_and_a_new_site_at_once() {
    let app = spawn_app();
    let m = imported_phi_cases(&app).await;
    let (_, page) = m.get_text("/studies/PHI-01/cases").await;
    assert!(page.contains(">SMC</option>") && !page.contains("BUNDANG2"), "cached now");
    assert!(!page.contains("value=\"tmb_score\""));

    let mut dictionary = DICTIONARY.to_vec();
    dictionary.extend_from_slice(b"tmb_score,pathology,,text,Tumour mutational burden,,,,,,,,,,,,,\n");
    let r = upload(&m, "/studies/PHI-01/dictionary/import", "dict.csv", &dictionary, &[]).await;
    assert!(r.status().is_success() || r.status().is_redirection(), "{}", r.status());
    let (_, page) = m.get_text("/studies/PHI-01/cases").await;
    assert!(page.contains("value=\"tmb_score\""), "the new field is offered as a filter");

    let mut conn = app.conn();
    let op = Actor::cli_operator();
    let access = evidentia::auth::permissions::study_access(&mut conn, &op, "PHI-01").unwrap();
    let s = sites::SiteInput { code: "BUNDANG2".into(), name: "Bundang 2".into(), ..Default::default() };
    sites::add(&mut conn, &op, &access, &s).unwrap();
    let (_, page) = m.get_text("/studies/PHI-01/cases").await;
    assert!(page.contains(">BUNDANG2</option>"), "the new site is offered as a filter");
}
