//! Data quality: the built-in rules and a custom rule flag exactly the errors planted in a site's
//! file; rules run on import, on a saved change and on a dictionary change; a finding is resolved
//! by correcting the data or excluded with a reason; every run and exclusion is audited; open
//! errors block the lock; bad logic is refused naming where; annotators never see any of it.

use crate::cases::upload;
use crate::helpers::*;
use evidentia::auth::Actor;
use evidentia::studies::{self, lock, sites, StudyInput};

const DICTIONARY: &str = "Variable / Field Name,Form Name,Field Type,Field Label,\"Choices, Calculations, OR Slider Labels\",Text Validation Type OR Show Slider Number,Text Validation Min,Text Validation Max,Branching Logic (Show field only if...),Required Field?\n\
record_id,baseline,text,Subject,,,,,,y\n\
sex,baseline,radio,Sex,\"1, Male | 2, Female\",,,,,y\n\
pregnant,baseline,yesno,Pregnant at baseline,,,,,[sex] = '2',\n\
tps,baseline,text,PD-L1 TPS,,number,0,100,,\n\
pfs_months,outcome,text,PFS (months),,number,0,120,,y\n\
os_months,outcome,text,OS (months),,number,0,120,,y\n";

/// Twelve subjects at SNUBH; planted: S02 female without pregnancy status (missing once the
/// dictionary requires it), S03 male with one (hidden value), S04 OS shorter than PFS (the custom
/// rule), S05 a TPS far from the others (an outlier, and out of range once the dictionary narrows
/// it). Everything else is clean.
fn cases_csv() -> String {
    let mut s = String::from("record_id,site,sex,pregnant,tps,pfs_months,os_months\n");
    for i in 1..=12 {
        let sex = if i % 2 == 0 { 2 } else { 1 };
        let pregnant = match (i, sex) {
            (2, _) => "",
            (3, _) => "0",
            (_, 2) => "0",
            _ => "",
        };
        let tps = if i == 5 { 100.0 } else { 20.0 + i as f64 };
        let (pfs, os) = if i == 4 { (9.0, 7.5) } else { (5.0 + (i % 4) as f64, 12.0 + (i % 5) as f64) };
        s.push_str(&format!("S{i:02},SNUBH,{sex},{pregnant},{tps},{pfs},{os}\n"));
    }
    s
}

fn dq_study(app: &TestApp) {
    let mut conn = app.conn();
    let op = Actor::cli_operator();
    let input = StudyInput { code: "DQ-01".into(), title: "Data quality".into(), ..Default::default() };
    studies::create(&mut conn, &op, &input).unwrap();
    let access = evidentia::auth::permissions::study_access(&mut conn, &op, "DQ-01").unwrap();
    let s = sites::SiteInput { code: "SNUBH".into(), name: "SNUBH".into(), ..Default::default() };
    sites::add(&mut conn, &op, &access, &s).unwrap();
    for (u, r) in
        [("manager", "manager"), ("annotator1", "annotator"), ("monitor", "monitor"), ("statistician", "statistician")]
    {
        studies::members::add(&mut conn, &op, &access, u, r).unwrap();
    }
}

/// (subject, rule, field, status) of every finding, from the CSV export.
async fn findings(c: &Client, query: &str) -> Vec<(String, String, String, String)> {
    let (status, csv) = c.get_text(&format!("/studies/DQ-01/quality.csv?{query}")).await;
    assert_eq!(status, 200);
    let mut rows: Vec<_> = csv::Reader::from_reader(csv.as_bytes())
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[3].to_string(), r[1].to_string(), r[7].to_string(), r[9].to_string())
        })
        .collect();
    rows.sort();
    rows
}

/// The study's own audit events of one action, newest first.
fn dq_events(app: &TestApp, action: &str) -> Vec<evidentia::audit::AuditEvent> {
    audit_events(app, action).into_iter().filter(|e| e.chain == "study:DQ-01").collect()
}

fn four(s: &str, r: &str, f: &str, st: &str) -> (String, String, String, String) {
    (s.into(), r.into(), f.into(), st.into())
}

fn error_check(app: &TestApp) -> lock::Check {
    let mut conn = app.conn();
    let sid = studies::get_by_code(&mut conn, "DQ-01").unwrap().id;
    lock::checklist(&mut conn, sid).unwrap().into_iter().find(|c| c.label.starts_with("No open data quality")).unwrap()
}

async fn import(m: &Client, csv: &str) -> String {
    let r = upload(m, "/studies/DQ-01/cases/import", "site.csv", csv.as_bytes(), &[]).await;
    let page = r.text().await.unwrap();
    let k = "/cases/import/";
    let start = page.find(k).unwrap_or_else(|| panic!("no preview: {page}")) + k.len();
    let token = page[start..start + 64].to_string();
    let r = m.post(&format!("/studies/DQ-01/cases/import/{token}/confirm"), &[]).await;
    assert_eq!(r.status(), 303);
    let (_, cases) = m.get_text(&location(&r)).await;
    cases
}

#[tokio::test]
async fn the_rules_flag_the_planted_errors_and_the_workflow_resolves_them() {
    let app = spawn_app();
    dq_study(&app);
    let m = app.login("manager").await;
    let r = upload(&m, "/studies/DQ-01/dictionary/import", "dict.csv", DICTIONARY.as_bytes(), &[]).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());

    // On import: the built-in rules, and the flash message says so.
    let page = import(&m, &cases_csv()).await;
    assert!(page.contains("Data quality: 2 open findings (0 errors)"), "{page}");
    let subject = |n: usize| format!("SNUBH-{n:04}");
    assert_eq!(
        findings(&m, "").await,
        vec![four(&subject(3), "hidden", "pregnant", "open"), four(&subject(5), "outlier", "tps", "open")]
    );
    let run_events = dq_events(&app, "run_rules");
    assert_eq!(run_events.len(), 1, "the dictionary's run found nothing (no cases yet), the import's found 2");
    assert!(run_events[0].new_value.as_deref().unwrap().contains("\"trigger\":\"import\""));
    assert!(error_check(&app).ok, "warnings do not block the lock");

    // A custom rule: bad logic is refused naming the place, nothing stored.
    let r = m
        .post(
            "/studies/DQ-01/quality/rules",
            &[("name", "OS before PFS"), ("logic", "[os_months] < "), ("severity", "error")],
        )
        .await;
    assert_eq!(r.status(), 422);
    let body = r.text().await.unwrap();
    assert!(body.contains("at character 14: the logic ends where a value was expected"), "{body}");
    let r = m
        .post(
            "/studies/DQ-01/quality/rules",
            &[("name", "OS before PFS"), ("logic", "[os_month] < [pfs_months]"), ("severity", "error")],
        )
        .await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("&#39;os_month&#39; is not a field of the dictionary"));
    assert!(dq_events(&app, "create").iter().all(|e| e.entity != evidentia::audit::Entity::QualityRule));
    let r = m
        .post(
            "/studies/DQ-01/quality/rules",
            &[("name", "OS shorter than PFS"), ("logic", "[os_months] < [pfs_months]"), ("severity", "error")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let (_, page) = m.get_text(&location(&r)).await;
    assert!(page.contains("Rule R1 added and run") && page.contains("[os_months] = 7.5; [pfs_months] = 9"), "{page}");
    assert_eq!(findings(&m, "rule=R1").await, vec![four(&subject(4), "R1", "os_months", "open")]);
    assert!(!error_check(&app).ok, "open errors block the lock");

    // A dictionary change (pregnancy status now required, a narrower TPS range): the values it
    // no longer accepts become findings, in the change's transaction.
    let changed = DICTIONARY
        .replace("[sex] = '2',\n", "[sex] = '2',y\n")
        .replace("tps,baseline,text,PD-L1 TPS,,number,0,100", "tps,baseline,text,PD-L1 TPS,,number,0,50");
    let r =
        upload(&m, "/studies/DQ-01/dictionary/import", "dict.csv", changed.as_bytes(), &[("accept_invalidated", "1")])
            .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert_eq!(findings(&m, "rule=missing").await, vec![four(&subject(2), "missing", "pregnant", "open")]);
    assert_eq!(findings(&m, "rule=range").await, vec![four(&subject(5), "range", "tps", "open")]);
    assert!(dq_events(&app, "run_rules")[0].new_value.as_deref().unwrap().contains("dictionary changed"));

    // On save: correcting S02 resolves its finding, in the transaction of the change.
    let r = m
        .post(
            &format!("/studies/DQ-01/cases/{}/edit", subject(2)),
            &[("pregnant", "0"), ("_reason", "Corrected from the source document")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(findings(&m, "status=resolved").await, vec![four(&subject(2), "missing", "pregnant", "resolved")]);
    let save = dq_events(&app, "run_rules");
    assert!(save[0].new_value.as_deref().unwrap().contains("\"trigger\":\"save\""), "{:?}", save[0]);
    let r = m
        .post(&format!("/studies/DQ-01/cases/{}/edit", subject(5)), &[("tps", "45"), ("_reason", "Data entry error")])
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        findings(&m, "status=resolved").await,
        vec![
            four(&subject(2), "missing", "pregnant", "resolved"),
            four(&subject(5), "outlier", "tps", "resolved"),
            four(&subject(5), "range", "tps", "resolved"),
        ]
    );

    // Excluded with a reason (the value is right); without one, refused.
    let id = {
        let (_, csv) = m.get_text("/studies/DQ-01/quality.csv?rule=R1").await;
        csv.lines().nth(1).unwrap().split(',').next().unwrap().to_string()
    };
    let path = format!("/studies/DQ-01/quality/findings/{id}");
    let r = m.post(&path, &[("action", "exclude"), ("reason", " ")]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(findings(&m, "rule=R1").await[0].3, "open");
    let r = m.post(&path, &[("action", "exclude"), ("reason", "OS confirmed: censored at last contact")]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(findings(&m, "rule=R1").await[0].3, "excluded");
    let excluded = dq_events(&app, "exclude");
    assert_eq!(excluded[0].entity, evidentia::audit::Entity::QualityFinding);
    assert_eq!(excluded[0].reason.as_deref(), Some("OS confirmed: censored at last contact"));
    assert!(error_check(&app).ok, "an excluded finding no longer blocks: {:?}", error_check(&app));
    // Still found on the next run, it stays excluded; the run on demand is audited.
    let r = m.post("/studies/DQ-01/quality/run", &[]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(findings(&m, "rule=R1").await[0].3, "excluded");
    assert!(dq_events(&app, "run_rules")[0].new_value.as_deref().unwrap().contains("\"trigger\":\"on demand\""));
    // An exclusion holds for the value it was about: another wrong value opens it again.
    let edit = |value: &'static str| {
        let m = m.clone();
        async move {
            let form = [("os_months", value), ("_reason", "Data entry error")];
            m.post(&format!("/studies/DQ-01/cases/{}", "SNUBH-0004/edit"), &form).await.status()
        }
    };
    assert_eq!(edit("8").await, 303);
    assert_eq!(findings(&m, "rule=R1").await[0].3, "open");
    assert_eq!(edit("10").await, 303);
    assert_eq!(findings(&m, "rule=R1").await[0].3, "resolved");

    // Retiring the rule resolves its findings.
    let r = m.post("/studies/DQ-01/quality/rules/R1/retire", &[("reason", "replaced by the SAP's derivation")]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(findings(&m, "rule=R1").await[0].3, "resolved");

    // The page, and the case page marks the field.
    let (status, page) = m.get_text("/studies/DQ-01/quality").await;
    assert_eq!(status, 200);
    assert!(page.contains("0 open errors · 1 open warning") && page.contains("retired: replaced by the SAP"), "{page}");
    assert!(page.contains("id=\"finding-") && page.contains("SNUBH-0003") && !page.contains("SNUBH-0005"), "{page}");
    let (_, case) = m.get_text(&format!("/studies/DQ-01/cases/{}", subject(3))).await;
    assert!(
        case.contains("1 open data quality finding on this case") && case.contains("hidden: holds a value"),
        "{case}"
    );
}

#[tokio::test]
async fn who_sees_runs_and_changes_the_rules() {
    let app = spawn_app();
    dq_study(&app);
    let m = app.login("manager").await;
    upload(&m, "/studies/DQ-01/dictionary/import", "dict.csv", DICTIONARY.as_bytes(), &[]).await;
    import(&m, &cases_csv()).await;
    let rule = [("name", "OS shorter than PFS"), ("logic", "[os_months] < [pfs_months]"), ("severity", "error")];
    for (user, page, run, create) in [
        ("annotator1", 404, 403, 403),
        ("statistician", 200, 403, 403),
        ("monitor", 200, 303, 403),
        ("outsider", 404, 404, 404),
    ] {
        let c = app.login(user).await;
        assert_eq!(c.get("/studies/DQ-01/quality").await.status(), page, "{user} page");
        assert_eq!(c.get("/studies/DQ-01/quality.csv").await.status(), page, "{user} csv");
        assert_eq!(c.post("/studies/DQ-01/quality/run", &[]).await.status(), run, "{user} run");
        assert_eq!(c.post("/studies/DQ-01/quality/rules", &rule).await.status(), create, "{user} rule");
        assert_eq!(
            c.post("/studies/DQ-01/quality/findings/1", &[("action", "exclude"), ("reason", "x")]).await.status(),
            create,
            "{user} exclude"
        );
    }
    // A finding of another study is not found.
    let other = app.login("admin").await;
    let r = other.post("/studies/LUNG-IO-01/quality/findings/1", &[("action", "exclude"), ("reason", "x")]).await;
    assert!(matches!(r.status().as_u16(), 303 | 404), "{}", r.status());
    assert!(
        dq_events(&app, "create").iter().all(|e| e.entity != evidentia::audit::Entity::QualityRule),
        "nothing was created"
    );
}

#[test]
fn the_cli_adds_a_rule_runs_and_exports() {
    let app = spawn_app();
    dq_study(&app);
    let dict = app.data_dir.join("dict.csv");
    std::fs::write(&dict, DICTIONARY).unwrap();
    let out = app.cli(&["dictionary", "import", "--study", "DQ-01", dict.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cases = app.data_dir.join("cases.csv");
    std::fs::write(&cases, cases_csv()).unwrap();
    let out = app.cli(&["cases", "import", "--study", "DQ-01", cases.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Data quality: 2 open findings (0 errors)"));
    let bad = app.cli(&["quality", "add-rule", "--study", "DQ-01", "--name", "x", "--logic", "[os_months] <"], None);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("at character 14"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let add = app.cli(
        &["quality", "add-rule", "--study", "DQ-01", "--name", "OS < PFS", "--logic", "[os_months] < [pfs_months]"],
        None,
    );
    assert!(add.status.success(), "{}", String::from_utf8_lossy(&add.stderr));
    assert!(String::from_utf8_lossy(&add.stdout).contains("rule R1 added and run"));
    let run = app.cli(&["quality", "run", "--study", "DQ-01"], None);
    assert!(String::from_utf8_lossy(&run.stdout).contains("Data quality: 3 open findings (1 error)"));
    let csv = app.cli(&["quality", "findings", "--study", "DQ-01", "--status", "open"], None);
    let text = String::from_utf8_lossy(&csv.stdout);
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(text.contains("SNUBH-0004,SNUBH,,,os_months,[os_months] = 7.5; [pfs_months] = 9,open"), "{text}");
    let rules = app.cli(&["quality", "rules", "--study", "DQ-01"], None);
    assert!(
        String::from_utf8_lossy(&rules.stdout).contains("R1       error"),
        "{}",
        String::from_utf8_lossy(&rules.stdout)
    );
}

/// The query of one case's field: (status, value now).
fn query_state(app: &TestApp, id: i32) -> (String, String) {
    let mut conn = app.conn();
    let sid = studies::get_by_code(&mut conn, "DQ-01").unwrap().id;
    let q = evidentia::quality::queries::get(&mut conn, sid, &Default::default(), id).unwrap();
    let value = evidentia::cases::get(&mut conn, sid, &q.case)
        .unwrap()
        .value(&q.field)
        .map(evidentia::cases::dictionary::value_text)
        .unwrap_or_default();
    (q.status.to_string(), value)
}

#[tokio::test]
async fn a_query_is_opened_answered_with_a_corrected_value_closed_and_audited() {
    let app = spawn_app();
    dq_study(&app);
    let m = app.login("manager").await;
    upload(&m, "/studies/DQ-01/dictionary/import", "dict.csv", DICTIONARY.as_bytes(), &[]).await;
    import(&m, &cases_csv()).await;
    let monitor = app.login("monitor").await;

    // Opened by the monitor from the outlier finding; a bad field or an empty question is refused.
    let r =
        monitor.post("/studies/DQ-01/queries", &[("case", "SNUBH-0005"), ("field", "nope"), ("message", "?")]).await;
    assert_eq!(r.status(), 303);
    let (_, page) = monitor.get_text(&location(&r)).await;
    assert!(page.contains("No query was opened") && page.contains("field: not a field"), "{page}");
    let (_, csv) = monitor.get_text("/studies/DQ-01/quality.csv?rule=outlier").await;
    let finding = csv.lines().nth(1).unwrap().split(',').next().unwrap().to_string();
    let r = monitor
        .post(
            "/studies/DQ-01/queries",
            &[
                ("case", "SNUBH-0005"),
                ("field", "tps"),
                ("finding", finding.as_str()),
                ("requires_change", "1"),
                ("message", "TPS 100 is far from the others; call 010-9876-5432 if unsure"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let url = location(&r);
    let id: i32 = url.rsplit('/').next().unwrap().parse().unwrap();
    let (_, page) = monitor.get_text(&url).await;
    assert!(page.contains("Query") && page.contains("needs the value changed"), "{page}");
    assert!(!page.contains("010-9876-5432"), "the question is scrubbed like free text");
    assert_eq!(query_state(&app, id), ("open".into(), "100.0".into()));

    // The monitor cannot answer; closing without the asked change is refused.
    let answer = [
        ("message", "Re-read the report: 10, not 100"),
        ("value", "10"),
        ("_reason", "Corrected from the source document"),
    ];
    assert_eq!(monitor.post(&format!("{url}/answer"), &answer).await.status(), 403);
    let r = monitor.post(&format!("{url}/close"), &[("message", "ok")]).await;
    let (_, page) = monitor.get_text(&location(&r)).await;
    assert!(page.contains("asks for tps to change and it has not"), "{page}");
    assert_eq!(query_state(&app, id).0, "open");

    // The site's answer changes the value (a change needs its reason), in one transaction.
    let r = m.post(&format!("{url}/answer"), &[("message", "Re-read the report"), ("value", "10")]).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("pick a reason for the change"));
    assert_eq!(query_state(&app, id), ("open".into(), "100.0".into()), "nothing changed");
    let r = m.post(&format!("{url}/answer"), &answer).await;
    assert_eq!(r.status(), 303);
    assert_eq!(query_state(&app, id), ("answered".into(), "10.0".into()));
    let update = dq_events(&app, "update");
    assert!(update[0].reason.as_deref().unwrap().starts_with("Corrected from the source document"), "{:?}", update[0]);
    assert!(update[0].new_value.as_deref().unwrap().contains("10"));
    assert_eq!(findings(&m, "rule=outlier&status=resolved").await.len(), 1, "the edit ran the rules");

    // Closed by the monitor; reopened; closed again.
    let r = monitor.post(&format!("{url}/close"), &[("message", "Verified against the source")]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(query_state(&app, id).0, "closed");
    assert_eq!(monitor.post(&format!("{url}/reopen"), &[("message", "")]).await.status(), 422);
    monitor.post(&format!("{url}/reopen"), &[("message", "One more look, please")]).await;
    assert_eq!(query_state(&app, id).0, "open");
    let r = monitor.post(&format!("{url}/close"), &[("message", "Fine after all")]).await;
    assert_eq!(r.status(), 303);
    let steps: Vec<String> = evidentia::quality::queries::messages(&mut app.conn(), id)
        .unwrap()
        .iter()
        .map(|m| format!("{} {}", m.step, m.actor))
        .collect();
    assert_eq!(steps, ["open monitor", "answer manager", "close monitor", "reopen monitor", "close monitor"]);
    let trail: Vec<String> = evidentia::audit::query::list(
        &mut app.conn(),
        None,
        &evidentia::audit::query::AuditFilter { entity: "query".into(), ..Default::default() },
        evidentia::db::paging::PageRequest::all(),
    )
    .unwrap()
    .items
    .iter()
    .filter(|e| e.chain == "study:DQ-01")
    .map(|e| format!("{} {}", e.action, e.actor))
    .rev()
    .collect();
    assert_eq!(trail, ["create monitor", "answer manager", "close monitor", "reopen monitor", "close monitor"]);

    // Lists, CSV, the checklist.
    let (_, page) = monitor.get_text("/studies/DQ-01/queries?status=closed").await;
    assert!(page.contains("SNUBH-0005") && page.contains("queries-by-site"), "{page}");
    let (_, csv) = monitor.get_text("/studies/DQ-01/queries.csv").await;
    assert!(csv.lines().nth(1).unwrap().contains(",SNUBH-0005,SNUBH,,,tps,"), "{csv}");
    let check = |app: &TestApp| {
        let mut conn = app.conn();
        let sid = studies::get_by_code(&mut conn, "DQ-01").unwrap().id;
        lock::checklist(&mut conn, sid).unwrap().into_iter().find(|c| c.label == "No open or answered query").unwrap()
    };
    assert!(check(&app).ok);
    let r =
        monitor.post("/studies/DQ-01/queries", &[("case", "SNUBH-0003"), ("field", "sex"), ("message", "Sex?")]).await;
    assert_eq!(r.status(), 303);
    assert!(!check(&app).ok, "an open query blocks the lock");

    // Who may: annotators are blinded, statisticians read, outsiders see nothing.
    let q2: i32 = location(&r).rsplit('/').next().unwrap().parse().unwrap();
    for (user, view, open) in [("annotator1", 404, 404), ("statistician", 200, 403), ("outsider", 404, 404)] {
        let c = app.login(user).await;
        assert_eq!(c.get("/studies/DQ-01/queries").await.status(), view, "{user}");
        assert_eq!(c.get(&format!("/studies/DQ-01/queries/{q2}")).await.status(), view, "{user}");
        let r = c.post("/studies/DQ-01/queries", &[("case", "SNUBH-0003"), ("field", "sex"), ("message", "?")]).await;
        assert_eq!(r.status(), open, "{user}");
        assert_eq!(
            c.post(&format!("/studies/DQ-01/queries/{q2}/close"), &[("message", "x")]).await.status(),
            if view == 200 { 403 } else { view },
            "{user}"
        );
    }
    // Another study's query id is not found.
    assert_eq!(m.get(&format!("/studies/LUNG-IO-01/queries/{q2}")).await.status(), 404);
    let out = app.cli(&["quality", "queries", "--study", "DQ-01", "--status", "unresolved"], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 2, "{text}");
}

#[tokio::test]
async fn monitors_verify_forms_and_a_change_clears_the_verification() {
    let app = spawn_app();
    dq_study(&app);
    let m = app.login("manager").await;
    upload(&m, "/studies/DQ-01/dictionary/import", "dict.csv", DICTIONARY.as_bytes(), &[]).await;
    import(&m, &cases_csv()).await;
    let monitor = app.login("monitor").await;
    let verify = |c: Client, form: &'static str| async move {
        c.post("/studies/DQ-01/cases/SNUBH-0001/verify", &[("form", form)]).await.status().as_u16()
    };
    assert_eq!(verify(m.clone(), "baseline").await, 403, "managers do not verify their own data");
    assert_eq!(verify(app.login("annotator1").await, "baseline").await, 404);
    assert_eq!(verify(app.login("outsider").await, "baseline").await, 404);
    assert_eq!(verify(monitor.clone(), "baseline").await, 303);
    assert_eq!(verify(monitor.clone(), "outcome").await, 303);
    let r = monitor.post("/studies/DQ-01/cases/SNUBH-0001/verify", &[("form", "nope")]).await;
    let (_, page) = monitor.get_text(&location(&r)).await;
    assert!(page.contains("&#39;nope&#39; is not a form"), "{page}");
    let (_, page) = monitor.get_text("/studies/DQ-01/verification").await;
    assert!(page.contains("2 of 24"), "{page}");
    let (_, csv) = monitor.get_text("/studies/DQ-01/verification.csv").await;
    assert!(
        csv.starts_with("subject,site,baseline,outcome,later records' forms verified,later records' forms\n")
            && csv.contains("SNUBH-0001,SNUBH,verified,verified"),
        "{csv}"
    );
    assert_eq!(dq_events(&app, "verify").len(), 2);

    // Reported, not required, until the monitoring plan asks for every form.
    let check = |app: &TestApp| {
        let mut conn = app.conn();
        let sid = studies::get_by_code(&mut conn, "DQ-01").unwrap().id;
        lock::checklist(&mut conn, sid)
            .unwrap()
            .into_iter()
            .find(|c| c.label.starts_with("Every form of every"))
            .unwrap()
    };
    assert!(!check(&app).ok && !check(&app).blocks(), "{:?}", check(&app));
    assert_eq!(monitor.post("/studies/DQ-01/verification/rule", &[("sdv", "all")]).await.status(), 403);
    assert_eq!(m.post("/studies/DQ-01/verification/rule", &[("sdv", "all")]).await.status(), 303);
    assert!(check(&app).blocks(), "{:?}", check(&app));

    // A change on the case page clears its form's verification, naming the field; the other stays.
    let r = m
        .post(
            "/studies/DQ-01/cases/SNUBH-0001/edit",
            &[("tps", "33"), ("_reason", "Corrected from the source document")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let cleared = dq_events(&app, "clear_verification");
    assert_eq!(cleared.len(), 1);
    assert_eq!(cleared[0].entity_id, "SNUBH-0001/baseline");
    assert_eq!(cleared[0].reason.as_deref(), Some("changed after verification: tps"));
    let (_, page) = monitor.get_text("/studies/DQ-01/cases/SNUBH-0001").await;
    assert!(page.contains("cleared</span> changed after verification: tps"), "{page}");
    // A re-import that changes an outcome value clears the outcome form's.
    let changed = cases_csv().replace("S01,SNUBH,1,,21,6,13", "S01,SNUBH,1,,33,6,14");
    assert_ne!(changed, cases_csv());
    import(&m, &changed).await;
    let cleared = dq_events(&app, "clear_verification");
    assert_eq!(cleared.len(), 2, "{cleared:?}");
    assert_eq!(cleared[0].reason.as_deref(), Some("changed after verification: os_months"));
    let (_, page) = monitor.get_text("/studies/DQ-01/verification").await;
    assert!(page.contains("0 of 24"), "{page}");
}
