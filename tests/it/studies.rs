//! Studies, sites and members through the pages: validation, lifecycle rules, audit, lists.

use crate::helpers::*;
use evidentia::auth::Actor;
use evidentia::studies::{self, StudyInput};

#[tokio::test]
async fn admin_creates_a_study_and_bad_input_changes_nothing() {
    let app = spawn_app();
    let admin = app.login("admin").await;
    let r = admin.post("/studies", &[("code", "x"), ("title", ""), ("study_type", "weird")]).await;
    assert_eq!(r.status(), 422);
    let body = r.text().await.unwrap();
    assert!(body.contains("capital letters"), "code error shown");
    assert!(body.contains("required, at most 200"), "title error shown");
    assert!(body.contains("must be retrospective"), "type error shown");
    let before = audit_events(&app, "create").len();
    let r = admin
        .post(
            "/studies",
            &[
                ("code", "breast-ai-02"),
                ("title", "Breast TIL study"),
                ("study_type", "reader_study"),
                ("indication", "TNBC"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/studies/BREAST-AI-02");
    let s = studies::get_by_code(&mut app.conn(), "BREAST-AI-02").unwrap();
    assert_eq!((s.status.as_str(), s.study_type.as_str()), ("draft", "reader_study"));
    let created = audit_events(&app, "create");
    assert_eq!(created.len(), before + 1);
    assert_eq!(created[0].chain, "study:BREAST-AI-02");
    assert!(created[0].new_value.as_deref().unwrap().contains("Breast TIL study"));
    // Duplicate codes are refused with a field error.
    let r = admin.post("/studies", &[("code", "BREAST-AI-02"), ("title", "Again")]).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("already exists"));
    // Managers cannot create studies.
    let manager = app.login("manager").await;
    assert_eq!(manager.post("/studies", &[("code", "MGR-01"), ("title", "No")]).await.status(), 403);
    assert_eq!(manager.get("/studies/new").await.status(), 403);
}

#[tokio::test]
async fn lifecycle_rules_are_enforced() {
    let app = spawn_app();
    let manager = app.login("manager").await;
    let admin = app.login("admin").await;
    let s = "/studies/LUNG-IO-01";
    // Editing an active study works and records old and new values.
    let r = manager.post(&format!("{s}/edit"), &[("title", "Renamed title"), ("study_type", "retrospective")]).await;
    assert_eq!(r.status(), 303);
    let upd = audit_events(&app, "update");
    assert!(upd[0].old_value.as_deref().unwrap().contains("Tumour-immune phenotype and ICI"));
    assert!(upd[0].new_value.as_deref().unwrap().contains("Renamed title"));
    // No jumping back to draft.
    let r = manager.post(&format!("{s}/status"), &[("to", "draft")]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(studies::get_by_code(&mut app.conn(), "LUNG-IO-01").unwrap().status.as_str(), "active");
    // Lock: a manager only with the pre-lock checklist complete (no analysis plan here); an
    // administrator with open items and a reason.
    assert_eq!(manager.post(&format!("{s}/status"), &[("to", "locked")]).await.status(), 303);
    assert_eq!(studies::get_by_code(&mut app.conn(), "LUNG-IO-01").unwrap().status.as_str(), "active");
    admin.post(&format!("{s}/status"), &[("to", "locked")]).await;
    assert_eq!(
        studies::get_by_code(&mut app.conn(), "LUNG-IO-01").unwrap().status.as_str(),
        "active",
        "a reason is needed"
    );
    assert_eq!(
        admin.post(&format!("{s}/status"), &[("to", "locked"), ("reason", "pilot: no analyses")]).await.status(),
        303
    );
    assert_eq!(studies::get_by_code(&mut app.conn(), "LUNG-IO-01").unwrap().status.as_str(), "locked");
    let lock_event = audit_events(&app, "lock");
    assert!(
        lock_event[0].new_value.as_deref().unwrap().contains("Statistical analysis plan signed"),
        "open items audited"
    );
    // Locked: no change to its data.
    let r = manager.post(&format!("{s}/edit"), &[("title", "Changed while locked")]).await;
    assert_eq!(r.status(), 409);
    let r = manager.post(&format!("{s}/sites"), &[("code", "NEW"), ("name", "New site")]).await;
    assert_eq!(r.status(), 409);
    assert_eq!(manager.get(&format!("{s}/edit")).await.status(), 409);
    // Only an admin unlocks, and only with a reason.
    manager.post(&format!("{s}/status"), &[("to", "active"), ("reason", "fix")]).await;
    assert_eq!(studies::get_by_code(&mut app.conn(), "LUNG-IO-01").unwrap().status.as_str(), "locked");
    let r = admin.post(&format!("{s}/status"), &[("to", "active"), ("reason", "")]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(studies::get_by_code(&mut app.conn(), "LUNG-IO-01").unwrap().status.as_str(), "locked");
    admin.post(&format!("{s}/status"), &[("to", "active"), ("reason", "Correct site IRB date")]).await;
    assert_eq!(studies::get_by_code(&mut app.conn(), "LUNG-IO-01").unwrap().status.as_str(), "active");
    let status_events = audit_events(&app, "status");
    assert_eq!(status_events[0].reason.as_deref(), Some("Correct site IRB date"));
    assert_eq!(status_events[0].actor, "admin");
    // Lock and archive: hidden from the list unless asked for, read-only.
    admin.post(&format!("{s}/status"), &[("to", "locked"), ("reason", "pilot: no analyses")]).await;
    manager.post(&format!("{s}/status"), &[("to", "archived")]).await;
    let (_, list) = manager.get_text("/studies").await;
    assert!(!list.contains("/studies/LUNG-IO-01\""));
    let (_, list) = manager.get_text("/studies?archived=1").await;
    assert!(list.contains("/studies/LUNG-IO-01\""));
    let r = admin.post(&format!("{s}/status"), &[("to", "active"), ("reason", "try")]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(studies::get_by_code(&mut app.conn(), "LUNG-IO-01").unwrap().status.as_str(), "archived");
    assert_eq!(
        manager.post(&format!("{s}/members"), &[("username", "outsider"), ("role", "monitor")]).await.status(),
        409
    );
}

#[tokio::test]
async fn sites_are_added_edited_and_retired_with_audit() {
    let app = spawn_app();
    let m = app.login("manager").await;
    let base = "/studies/LUNG-IO-01/sites";
    let r = m.post(base, &[("code", "AMC"), ("name", ""), ("irb_approval_date", "2024-13-40")]).await;
    assert_eq!(r.status(), 422);
    let body = r.text().await.unwrap();
    assert!(body.contains("&#39;2024-13-40&#39; is not a date") || body.contains("is not a date"), "date error named");
    assert!(body.contains("required, at most 200 characters"));
    let r = m
        .post(
            base,
            &[
                ("code", "amc"),
                ("name", "Asan Medical Center"),
                ("country", "KR"),
                ("irb_reference", "2024-0001"),
                ("irb_approval_date", "2024-03-05"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let (_, page) = m.get_text(base).await;
    assert!(page.contains("Asan Medical Center") && page.contains("2024-03-05"));
    let r = m.post(base, &[("code", "AMC"), ("name", "Dup")]).await;
    assert_eq!(r.status(), 422);
    let sid = studies::get_by_code(&mut app.conn(), "LUNG-IO-01").unwrap().id;
    let site = studies::sites::list(&mut app.conn(), sid, true).unwrap().into_iter().find(|s| s.code == "AMC").unwrap();
    let r = m
        .post(
            &format!("{base}/{}/edit", site.id),
            &[("name", "Asan Medical Center, Seoul"), ("country", "KR"), ("irb_reference", "2024-0001-A")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let upd = audit_events(&app, "update");
    assert_eq!(upd[0].entity.as_str(), "site");
    assert!(upd[0].old_value.as_deref().unwrap().contains("2024-0001"));
    assert!(upd[0].new_value.as_deref().unwrap().contains("2024-0001-A"));
    // Retiring needs a reason; the site stays on record.
    m.post(&format!("{base}/{}/retire", site.id), &[("reason", "")]).await;
    assert!(studies::sites::get(&mut app.conn(), sid, site.id).unwrap().retired_at.is_none());
    m.post(&format!("{base}/{}/retire", site.id), &[("reason", "Withdrew from the study")]).await;
    let s = studies::sites::get(&mut app.conn(), sid, site.id).unwrap();
    assert_eq!(s.retired_reason.as_deref(), Some("Withdrew from the study"));
    assert_eq!(audit_events(&app, "retire")[0].reason.as_deref(), Some("Withdrew from the study"));
    // CSV export has every site.
    let (s, csv) = m.get_text(&format!("{base}.csv")).await;
    assert_eq!(s, 200);
    assert!(csv.starts_with("code,name,country"));
    assert_eq!(csv.lines().count(), 4);
    // A site of another study is a 404, even for an admin going through the wrong study.
    let other = studies::get_by_code(&mut app.conn(), OTHER_STUDY).unwrap();
    let admin = app.login("admin").await;
    let r = admin.post(&format!("/studies/{OTHER_STUDY}/sites"), &[("code", "X1"), ("name", "X site")]).await;
    assert_eq!(r.status(), 303);
    let x1 = studies::sites::list(&mut app.conn(), other.id, true).unwrap()[0].id;
    assert_eq!(m.get(&format!("{base}/{x1}/edit")).await.status(), 404);
    assert_eq!(admin.get(&format!("{base}/{x1}/edit")).await.status(), 404);
}

#[tokio::test]
async fn members_managers_add_roles_admins_appoint_managers() {
    let app = spawn_app();
    let m = app.login("manager").await;
    let base = "/studies/LUNG-IO-01/members";
    let r = m.post(base, &[("username", "outsider"), ("role", "manager")]).await;
    assert_eq!(r.status(), 403);
    let r = m.post(base, &[("username", "ghost"), ("role", "annotator")]).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("no user"));
    let r = m.post(base, &[("username", "outsider"), ("role", "annotator")]).await;
    assert_eq!(r.status(), 303);
    let outsider = app.login("outsider").await;
    assert_eq!(outsider.get("/studies/LUNG-IO-01").await.status(), 200);
    let sid = studies::get_by_code(&mut app.conn(), "LUNG-IO-01").unwrap().id;
    let mid = studies::members::list(&mut app.conn(), sid, false)
        .unwrap()
        .into_iter()
        .find(|x| x.username == "outsider")
        .unwrap()
        .id;
    assert_eq!(m.post(&format!("{base}/{mid}/remove"), &[("reason", "")]).await.status(), 303);
    assert_eq!(outsider.get("/studies/LUNG-IO-01").await.status(), 200, "no reason: not removed");
    assert_eq!(m.post(&format!("{base}/{mid}/remove"), &[("reason", "Left the hospital")]).await.status(), 303);
    assert_eq!(outsider.get("/studies/LUNG-IO-01").await.status(), 404);
    assert_eq!(audit_events(&app, "remove_member")[0].reason.as_deref(), Some("Left the hospital"));
    let admin = app.login("admin").await;
    assert_eq!(admin.post(base, &[("username", "outsider"), ("role", "manager")]).await.status(), 303);
    assert_eq!(audit_events(&app, "add_member")[0].new_value.as_deref(), Some("{\"role\":\"manager\"}"));
}

#[tokio::test]
async fn the_study_list_searches_sorts_pages_and_exports() {
    let app = spawn_app();
    {
        let mut conn = app.conn();
        for i in 0..60 {
            let input =
                StudyInput { code: format!("BULK-{i:03}"), title: format!("Bulk study {i}"), ..Default::default() };
            studies::create(&mut conn, &Actor::cli_operator(), &input).unwrap();
        }
    }
    let admin = app.login("admin").await;
    let (_, p1) = admin.get_text("/studies").await;
    assert!(p1.contains("1–50 of 62"), "first page of 62");
    let (_, p2) = admin.get_text("/studies?page=2").await;
    assert!(p2.contains("51–62 of 62"));
    let (_, found) = admin.get_text("/studies?q=BULK-04").await;
    assert!(found.contains("1–10 of 10"));
    let (_, desc) = admin.get_text("/studies?sort=code&dir=desc").await;
    let first = desc.find("/studies/OTHER-01\"").unwrap();
    let later = desc.find("/studies/BULK-059\"").unwrap();
    assert!(first < later, "descending by code");
    let (s, csv) = admin.get_text("/studies.csv?q=BULK").await;
    assert_eq!(s, 200);
    assert_eq!(csv.lines().count(), 61);
    // A manager sees only their study.
    let m = app.login("manager").await;
    let (_, mine) = m.get_text("/studies").await;
    assert!(mine.contains("1–1 of 1"));
    assert!(!mine.contains("BULK-"));
}

#[test]
fn csv_cells_cannot_become_formulas() {
    let app = spawn_app();
    let input = StudyInput { code: "CSV-01".into(), title: "=HYPERLINK(\"x\")".into(), ..Default::default() };
    studies::create(&mut app.conn(), &Actor::cli_operator(), &input).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let admin = app.login("admin").await;
        let (_, csv) = admin.get_text("/studies.csv?q=CSV-01").await;
        assert!(csv.contains("'=HYPERLINK"), "{csv}");
    });
}
