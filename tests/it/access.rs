//! The role × route matrix: every page and API route for every role — allowed, 403 or 404.

use crate::helpers::*;
use evidentia::auth::{tokens, users, Actor};

/// The site coordinator (site staff) is scoped to SNUBH: SMC's subjects are 404 to them.
const ROLES: [&str; 7] = ["admin", "manager", "annotator1", "statistician", "monitor", "outsider", "coordinator-snubh"];

/// Expected status per role, in `ROLES` order.
type Row = (&'static str, [u16; 7]);
/// (path, form fields, expected status per role).
type ActionRow = (String, Vec<(&'static str, String)>, [u16; 7]);

const GET_MATRIX: [Row; 40] = [
    //                                              admin man  ann  stat mon  out  site
    ("/studies", [200, 200, 200, 200, 200, 200, 200]),
    ("/studies.csv", [200, 200, 200, 200, 200, 200, 200]),
    ("/account", [200, 200, 200, 200, 200, 200, 200]),
    ("/studies/new", [200, 403, 403, 403, 403, 403, 403]),
    ("/studies/LUNG-IO-01", [200, 200, 200, 200, 200, 404, 200]),
    ("/studies/LUNG-IO-01/edit", [200, 200, 403, 403, 403, 404, 403]),
    ("/studies/LUNG-IO-01/sites", [200, 200, 200, 200, 200, 404, 200]),
    ("/studies/LUNG-IO-01/sites.csv", [200, 200, 200, 200, 200, 404, 200]),
    ("/studies/LUNG-IO-01/members", [200, 200, 403, 200, 200, 404, 403]),
    ("/studies/LUNG-IO-01/members.csv", [200, 200, 403, 200, 200, 404, 403]),
    ("/studies/LUNG-IO-01/audit", [200, 200, 403, 403, 200, 404, 403]),
    ("/studies/LUNG-IO-01/audit.csv", [200, 200, 403, 403, 200, 404, 403]),
    ("/studies/LUNG-IO-01/jobs", [200, 200, 403, 200, 200, 404, 403]),
    ("/studies/LUNG-IO-01/cases", [200, 200, 404, 200, 200, 404, 200]),
    ("/studies/LUNG-IO-01/cases/SNUBH-0001", [200, 200, 404, 200, 200, 404, 200]),
    ("/studies/LUNG-IO-01/dictionary", [200, 200, 404, 200, 200, 404, 200]),
    ("/studies/LUNG-IO-01/cases/import", [200, 200, 404, 200, 200, 404, 200]),
    ("/studies/LUNG-IO-01/quality", [200, 200, 404, 200, 200, 404, 200]),
    ("/studies/LUNG-IO-01/quality.csv", [200, 200, 404, 200, 200, 404, 200]),
    ("/studies/OTHER-01/quality", [200, 404, 404, 404, 404, 404, 404]),
    ("/studies/LUNG-IO-01/queries", [200, 200, 404, 200, 200, 404, 200]),
    ("/studies/LUNG-IO-01/queries/1", [200, 200, 404, 200, 200, 404, 200]),
    ("/studies/OTHER-01/queries/1", [404, 404, 404, 404, 404, 404, 404]),
    ("/studies/LUNG-IO-01/verification", [200, 200, 404, 200, 200, 404, 200]),
    ("/studies/LUNG-IO-01/events", [200, 200, 404, 200, 200, 404, 200]),
    ("/studies/LUNG-IO-01/records.csv", [200, 200, 404, 200, 200, 404, 200]),
    ("/studies/LUNG-IO-01/cases/SNUBH-0001/record?event=baseline_arm_1", [200, 200, 404, 200, 200, 404, 200]),
    // Reading: annotators work from their own queue; campaigns and the schema are hidden from them.
    ("/studies/LUNG-IO-01/reading", [200, 200, 200, 200, 200, 404, 200]),
    ("/studies/LUNG-IO-01/campaigns", [200, 200, 303, 200, 200, 404, 403]),
    ("/studies/LUNG-IO-01/annotations/schema", [200, 200, 404, 200, 200, 404, 403]),
    ("/studies/OTHER-01", [200, 404, 404, 404, 404, 404, 404]),
    ("/studies/OTHER-01/sites", [200, 404, 404, 404, 404, 404, 404]),
    ("/studies/NO-SUCH-STUDY", [404, 404, 404, 404, 404, 404, 404]),
    ("/admin/users", [200, 403, 403, 403, 403, 403, 403]),
    ("/admin/audit", [200, 403, 403, 403, 403, 403, 403]),
    ("/admin/jobs", [200, 403, 403, 403, 403, 403, 403]),
    // Site staff: another site's subject, its records and its queries are 404 (query 2 is SMC's).
    ("/studies/LUNG-IO-01/cases/SMC-0001", [200, 200, 404, 200, 200, 404, 404]),
    ("/studies/LUNG-IO-01/cases/SMC-0001/record?event=baseline_arm_1", [200, 200, 404, 200, 200, 404, 404]),
    ("/studies/LUNG-IO-01/queries/2", [200, 200, 404, 200, 200, 404, 404]),
    ("/studies/LUNG-IO-01/queries/3", [200, 200, 404, 200, 200, 404, 200]),
];

#[tokio::test]
async fn every_page_for_every_role() {
    let app = spawn_app();
    let mut failures = Vec::new();
    for (i, role) in ROLES.iter().enumerate() {
        let c = app.login(role).await;
        for (path, expected) in GET_MATRIX {
            let got = c.get(path).await.status().as_u16();
            if got != expected[i] {
                failures.push(format!("GET {path} as {role}: expected {}, got {got}", expected[i]));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn every_action_for_every_role() {
    let app = spawn_app();
    // (path, form, expected per role). Allowed actions redirect (303); each is safe to repeat
    // or targets fresh data per role.
    let mut failures = Vec::new();
    for (i, role) in ROLES.iter().enumerate() {
        let c = app.login(role).await;
        let site_code = format!("S{i}X");
        let rows: Vec<ActionRow> = vec![
            (
                "/studies/LUNG-IO-01/sites".into(),
                vec![("code", site_code.clone()), ("name", "Site".into())],
                [303, 303, 403, 403, 403, 404, 403],
            ),
            (
                "/studies/LUNG-IO-01/edit".into(),
                vec![("title", format!("Title by {role}")), ("study_type", "retrospective".into())],
                [303, 303, 403, 403, 403, 404, 403],
            ),
            ("/studies/LUNG-IO-01/audit/verify".into(), vec![], [303, 303, 403, 403, 303, 404, 403]),
            ("/studies/LUNG-IO-01/quality/run".into(), vec![], [303, 303, 403, 403, 303, 404, 403]),
            (
                "/studies/LUNG-IO-01/cases/SNUBH-0011/verify".into(),
                // The first verifies, the second is told it is already verified: both redirect.
                vec![("form", "baseline".into())],
                [303, 403, 404, 403, 303, 404, 403],
            ),
            (
                "/studies/LUNG-IO-01/queries".into(),
                // A field the dictionary does not have: an allowed role is sent back with the error.
                vec![("case", "SNUBH-0001".into()), ("field", "nope".into()), ("message", "?".into())],
                [303, 303, 404, 403, 303, 404, 403],
            ),
            (
                "/studies/LUNG-IO-01/quality/rules".into(),
                // Logic that does not read: an allowed role gets the field error.
                vec![("name", "R".into()), ("logic", "[os_months] <".into()), ("severity", "error".into())],
                [422, 422, 403, 403, 403, 404, 403],
            ),
            (
                "/studies/LUNG-IO-01/members".into(),
                vec![("username", "annotator2".into()), ("role", "monitor".into())],
                // annotator2 is already a member: an allowed role gets the field error.
                [422, 422, 403, 403, 403, 404, 403],
            ),
            // Site staff answer their own site's queries (3 is SNUBH's, already answered: the
            // step is refused and redirects) and never another site's (2 is SMC's).
            (
                "/studies/LUNG-IO-01/queries/3/answer".into(),
                vec![("message", "x".into())],
                [303, 303, 404, 403, 403, 404, 303],
            ),
            (
                "/studies/LUNG-IO-01/queries/2/answer".into(),
                vec![("message", "x".into())],
                [303, 303, 404, 403, 403, 404, 404],
            ),
            // A field the dictionary lacks: an allowed role gets the field error; another
            // site's subject is 404 to site staff.
            (
                "/studies/LUNG-IO-01/cases/SNUBH-0001/edit".into(),
                vec![("nope", "1".into())],
                [422, 422, 403, 403, 403, 404, 422],
            ),
            (
                "/studies/LUNG-IO-01/cases/SMC-0001/edit".into(),
                vec![("nope", "1".into())],
                [422, 422, 403, 403, 403, 404, 404],
            ),
            (
                "/studies/OTHER-01/sites".into(),
                vec![("code", site_code.clone()), ("name", "X".into())],
                [303, 404, 404, 404, 404, 404, 404],
            ),
            (
                "/studies".into(),
                vec![("code", format!("NEW-{i}0")), ("title", "T".into())],
                [303, 403, 403, 403, 403, 403, 403],
            ),
            (
                "/admin/users".into(),
                vec![("username", format!("u{i}x")), ("full_name", "U".into())],
                [200, 403, 403, 403, 403, 403, 403],
            ),
        ];
        for (path, form, expected) in rows {
            let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let got = c.post(&path, &fields).await.status().as_u16();
            if got != expected[i] {
                failures.push(format!("POST {path} as {role}: expected {}, got {got}", expected[i]));
            }
        }
        // Lifecycle: nobody but manager/admin may lock (tested without changing state).
        if matches!(*role, "annotator1" | "statistician" | "monitor" | "outsider" | "coordinator-snubh") {
            let got = c.post("/studies/LUNG-IO-01/status", &[("to", "locked")]).await.status().as_u16();
            let want = if *role == "outsider" { 404 } else { 403 };
            if got != want {
                failures.push(format!("POST status as {role}: expected {want}, got {got}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn the_api_applies_the_same_rules() {
    let app = spawn_app();
    let api = reqwest::Client::new();
    // The administrator column: a token never carries administrator rights, and the
    // administrator is a member of no study, so every study is 404 to their token.
    let matrix: [Row; 13] = [
        ("/api/v1/studies/LUNG-IO-01", [404, 200, 200, 200, 200, 404, 200]),
        ("/api/v1/studies/LUNG-IO-01/sites", [404, 200, 200, 200, 200, 404, 200]),
        ("/api/v1/studies/LUNG-IO-01/members", [404, 200, 403, 200, 200, 404, 403]),
        ("/api/v1/studies/LUNG-IO-01/jobs", [404, 200, 403, 200, 200, 404, 403]),
        ("/api/v1/studies/OTHER-01", [404, 404, 404, 404, 404, 404, 404]),
        ("/api/v1/studies/LUNG-IO-01/cases", [404, 200, 404, 200, 200, 404, 200]),
        ("/api/v1/studies/LUNG-IO-01/cases/SNUBH-0001", [404, 200, 404, 200, 200, 404, 200]),
        ("/api/v1/studies/LUNG-IO-01/dictionary", [404, 200, 404, 200, 200, 404, 200]),
        ("/api/v1/studies/LUNG-IO-01/campaigns", [404, 200, 404, 200, 200, 404, 403]),
        ("/api/v1/studies/LUNG-IO-01/reading", [404, 200, 200, 200, 200, 404, 200]),
        ("/api/v1/me", [200, 200, 200, 200, 200, 200, 200]),
        ("/api/v1/no-such-endpoint", [404, 404, 404, 404, 404, 404, 404]),
        ("/api/v1/studies/LUNG-IO-01/cases/SMC-0001", [404, 200, 404, 200, 200, 404, 404]),
    ];
    let mut failures = Vec::new();
    for (i, role) in ROLES.iter().enumerate() {
        let actor = {
            let mut conn = app.conn();
            let u = users::find_by_username(&mut conn, role).unwrap().unwrap();
            Actor::from_user(&u)
        };
        let (_, secret) =
            tokens::create(&mut app.conn(), &actor, "matrix", tokens::TokenScope::Read, tokens::DEFAULT_DAYS).unwrap();
        for (path, expected) in matrix {
            let r = api.get(format!("{}{path}", app.base)).bearer_auth(&secret).send().await.unwrap();
            let got = r.status().as_u16();
            if got != expected[i] {
                failures.push(format!("GET {path} as {role}: expected {}, got {got}", expected[i]));
            }
            if got >= 400 {
                let v: serde_json::Value = r.json().await.unwrap();
                assert!(v["error"]["code"].is_string(), "JSON error body for {path}");
            }
        }
        let list: serde_json::Value = api
            .get(format!("{}/api/v1/studies", app.base))
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        // A token never carries administrator rights: the administrator, a member of no
        // study, sees none through it (on the pages they see both).
        let expected_total = match *role {
            "admin" | "outsider" => 0,
            _ => 1,
        };
        assert_eq!(list["total"], expected_total, "{role} sees {expected_total} studies");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // No token: 401 with a JSON body, never a redirect.
    let r = api.get(format!("{}/api/v1/studies", app.base)).send().await.unwrap();
    assert_eq!(r.status(), 401);
}
