//! The audit trail: pages, filters, CSV, and `audit verify` catching edits, deletions and
//! reordering.

use diesel::prelude::*;

use crate::helpers::*;

#[tokio::test]
async fn the_audit_page_filters_and_exports() {
    let app = spawn_app();
    let m = app.login("manager").await;
    m.post("/studies/LUNG-IO-01/sites", &[("code", "AMC"), ("name", "Asan")]).await;
    let (s, page) = m.get_text("/studies/LUNG-IO-01/audit?entity=site").await;
    assert_eq!(s, 200);
    assert!(page.contains("AMC") && page.contains("SNUBH"));
    assert!(!page.contains("<td>add_member</td>"), "filtered by entity");
    // Readable: field by field, people by name (the username on hover), no raw JSON.
    assert!(page.contains("<strong>code</strong>: AMC"), "{page}");
    assert!(page.contains(r#"<td title="manager">Park Jiyeon</td>"#), "{page}");
    assert!(!page.contains("{&quot;code&quot;"), "no JSON: {page}");
    let (_, page) = m.get_text("/studies/LUNG-IO-01/audit?user=manager").await;
    // (The demo's monitor raised queries and verified forms: none of that is the manager's.)
    assert!(page.contains("AMC") && !page.contains("Jung Daeho"), "filtered by user");
    let (_, page) = m.get_text("/studies/LUNG-IO-01/audit?from=2000-01-01&to=2000-01-02").await;
    assert!(page.contains("No audit events match"));
    // The study's CSV holds only its own chain, oldest first, with the hashes to re-verify it.
    let (s, csv) = m.get_text("/studies/LUNG-IO-01/audit.csv").await;
    assert_eq!(s, 200);
    let mut rdr = csv::Reader::from_reader(csv.as_bytes());
    let rows: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
    assert!(rows.iter().all(|r| &r[1] == "study:LUNG-IO-01"));
    let seqs: Vec<i64> = rows.iter().map(|r| r[2].parse().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    assert_eq!(&rows[0][12].len(), &64);
    // Nobody else's events: the other study's chain is not in it.
    assert!(!csv.contains("OTHER-01"));
}

fn verify(app: &TestApp) -> std::process::Output {
    app.cli(&["audit", "verify"], None)
}

#[tokio::test]
async fn audit_verify_passes_then_catches_an_edited_event() {
    let app = spawn_app();
    let out = verify(&app);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ok      study:LUNG-IO-01"), "{stdout}");
    // Edit one event's new value behind the application's back.
    let target: i32 = {
        use evidentia::db::schema::audit_events::dsl::*;
        let mut conn = app.conn();
        let id_: i32 =
            audit_events.filter(action.eq("create")).filter(entity.eq("site")).select(id).first(&mut conn).unwrap();
        diesel::update(audit_events.find(id_))
            .set(new_value.eq(Some("{\"code\":\"FAKE\"}")))
            .execute(&mut conn)
            .unwrap();
        id_
    };
    let out = verify(&app);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("BROKEN  study:LUNG-IO-01") && stdout.contains(&format!("at event #{target} ")),
        "{stdout}"
    );
    assert!(stdout.contains("was edited"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("chain study:LUNG-IO-01 is broken"));
}

#[tokio::test]
async fn audit_verify_catches_a_deleted_event_and_a_deleted_last_event() {
    let app = spawn_app();
    {
        use evidentia::db::schema::audit_events::dsl::*;
        let mut conn = app.conn();
        let id_: i32 =
            audit_events.filter(chain.eq("study:LUNG-IO-01")).filter(seq.eq(3)).select(id).first(&mut conn).unwrap();
        diesel::delete(audit_events.find(id_)).execute(&mut conn).unwrap();
    }
    let out = verify(&app);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("expected sequence number 3, found 4"));

    let app = spawn_app();
    {
        use evidentia::db::schema::audit_events::dsl::*;
        let mut conn = app.conn();
        let last: i32 =
            audit_events.filter(chain.eq("study:OTHER-01")).order(seq.desc()).select(id).first(&mut conn).unwrap();
        diesel::delete(audit_events.find(last)).execute(&mut conn).unwrap();
    }
    let out = verify(&app);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("events removed at the end"));
}

#[tokio::test]
async fn audit_verify_catches_reordered_events() {
    let app = spawn_app();
    {
        use evidentia::db::schema::audit_events::dsl::*;
        let mut conn = app.conn();
        // Swap the sequence numbers of two events, as if history were rearranged.
        let rows: Vec<(i32, i64)> = audit_events
            .filter(chain.eq("study:LUNG-IO-01"))
            .order(seq.asc())
            .select((id, seq))
            .limit(3)
            .load(&mut conn)
            .unwrap();
        let (a, b) = (rows[1], rows[2]);
        diesel::update(audit_events.find(a.0)).set(seq.eq(-1)).execute(&mut conn).unwrap();
        diesel::update(audit_events.find(b.0)).set(seq.eq(a.1)).execute(&mut conn).unwrap();
        diesel::update(audit_events.find(a.0)).set(seq.eq(b.1)).execute(&mut conn).unwrap();
    }
    let out = verify(&app);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("BROKEN  study:LUNG-IO-01"));
}

#[tokio::test]
async fn the_cli_exports_a_study_chain() {
    let app = spawn_app();
    let out_file = app.data_dir.join("exports").join("lung.csv");
    let out = app.cli(&["audit", "export", "--study", "LUNG-IO-01", "--out", out_file.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let csv = std::fs::read_to_string(&out_file).unwrap();
    assert!(csv.starts_with("id,chain,seq,at,actor,action"));
    assert!(csv.lines().count() > 5);
    let out = app.cli(&["--as", "annotator1", "audit", "export", "--study", "LUNG-IO-01"], None);
    assert_eq!(out.status.code(), Some(2), "annotators may not read the audit trail");
}

#[tokio::test]
async fn reasons_are_scrubbed_before_they_are_chained() {
    let app = spawn_app();
    let admin = app.login("admin").await;
    let typed = "waived after a call with hong@snubh.org about S12-3456";
    admin.post("/studies/LUNG-IO-01/status", &[("to", "locked"), ("reason", typed)]).await;
    let events = audit_events(&app, "status");
    let stored =
        events.iter().find_map(|e| e.reason.as_deref().filter(|r| r.starts_with("waived"))).expect("the reason");
    assert!(stored.starts_with("waived after a call with [REDACTED:EMAIL] about [REDACTED"), "{stored}");
    assert!(!stored.contains("hong@") && !stored.contains("S12-3456"), "{stored}");
    // The chain holds the scrubbed reason, and verifies.
    let out = verify(&app);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
