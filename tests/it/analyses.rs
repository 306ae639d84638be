//! A study's analyses over HTTP: the dataset and its CSV (which `evidentia stats` re-computes to
//! the same numbers), results with tables and plots, saving with the input's SHA-256 (audited),
//! re-running after the data changed, the analysis plan signed with a password and then frozen,
//! pass / fail against it, bad parameters, and who may see and do what.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::annotations::{create_campaign, read_id, reading_study, submit};
use crate::helpers::*;

const STUDY: &str = "LUNG-IO-01";

/// Three slides read by two readers who agree on two phenotypes; returns the campaign id.
pub async fn read_study(app: &TestApp) -> (i32, Vec<String>) {
    let labels = reading_study(app);
    let manager = app.login("manager").await;
    let id = create_campaign(&manager, &[("name", "R1"), ("readers", "annotator1"), ("readers", "annotator2")]).await;
    let a1 = app.login("annotator1").await;
    let a2 = app.login("annotator2").await;
    for (label, (p1, p2)) in
        labels.iter().zip([("inflamed", "inflamed"), ("desert", "excluded"), ("excluded", "excluded")])
    {
        assert_eq!(submit(&a1, read_id(app, id, "annotator1", label), p1, "100").await.status(), 303);
        assert_eq!(submit(&a2, read_id(app, id, "annotator2", label), p2, "140").await.status(), 303);
    }
    (id, labels)
}

fn result_value(csv: &str, statistic: &str) -> String {
    csv.lines()
        .find_map(|l| l.strip_prefix(&format!("{statistic},")))
        .unwrap_or_else(|| panic!("{statistic} not in {csv}"))
        .to_string()
}

#[tokio::test]
async fn analyses_run_save_rerun_and_reproduce_from_the_exported_dataset() {
    let app = spawn_app();
    let (campaign, labels) = read_study(&app).await;
    let stat = app.login("statistician").await;
    let q = format!("campaign={campaign}&analysis=kappa&a=phenotype__annotator1&b=phenotype__annotator2");

    let (status, page) = stat.get_text(&format!("/studies/{STUDY}/analyses")).await;
    assert_eq!(status, 200);
    assert!(page.contains("No saved analysis yet"), "{page}");
    let (status, page) =
        stat.get_text(&format!("/studies/{STUDY}/analyses/new?campaign={campaign}&analysis=kappa")).await;
    assert_eq!(status, 200);
    assert!(page.contains("phenotype__annotator1") && page.contains("phenotype__reference"), "{page}");

    let (status, page) = stat.get_text(&format!("/studies/{STUDY}/analyses/result?{q}")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Confusion matrix") && page.contains("exploratory"), "{page}");
    assert!(page.contains("evidentia stats kappa --input"), "the command to re-compute it");
    // The schema's category order (not sorted: desert, excluded, inflamed), in the command too.
    assert!(page.contains("--categories=inflamed,excluded,desert"), "{page}");
    let (status, result) = stat.get_text(&format!("/studies/{STUDY}/analyses/result.csv?{q}")).await;
    assert_eq!(status, 200);
    assert_eq!(result_value(&result, "n"), "3");
    let order: Vec<String> = (0..3).map(|i| result_value(&result, &format!("categories[{i}]"))).collect();
    assert_eq!(order, ["inflamed", "excluded", "desert"], "{result}");
    let (status, svg) = stat.get_text(&format!("/studies/{STUDY}/analyses/plot.svg?{q}")).await;
    assert_eq!(status, 200);
    assert!(svg.starts_with("<svg") && svg.contains("phenotype__annotator2"));
    let png = stat.http.get(stat.url(&format!("/studies/{STUDY}/analyses/plot.png?{q}"))).send().await.unwrap();
    assert_eq!(png.headers()["content-type"], "image/png");
    assert!(png.bytes().await.unwrap().starts_with(b"\x89PNG"));

    // The dataset CSV: one row per slide; `evidentia stats` on it gives the page's numbers.
    let data = stat.http.get(stat.url(&format!("/studies/{STUDY}/analyses/dataset.csv?{q}"))).send().await.unwrap();
    assert_eq!(data.status(), 200);
    let bytes = data.bytes().await.unwrap().to_vec();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.starts_with("subject_id,site,status,"), "{text}");
    assert_eq!(text.lines().count(), 1 + labels.len());
    assert!(!text.contains("patient_name") && !text.contains("mrn"), "identifiers were never stored");
    let file = app.scratch.join("dataset.csv");
    std::fs::write(&file, &bytes).unwrap();
    let out = app.cli(
        &[
            "stats",
            "kappa",
            "--input",
            file.to_str().unwrap(),
            "--a",
            "phenotype__annotator1",
            "--b",
            "phenotype__annotator2",
            "--categories",
            "inflamed,excluded,desert",
        ],
        None,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli["categories"], serde_json::json!(["inflamed", "excluded", "desert"]));
    let page_kappa: f64 = result_value(&result, "kappa").parse().unwrap();
    assert!((cli["kappa"].as_f64().unwrap() - page_kappa).abs() < 1e-12, "{cli} vs {page_kappa}");

    // Saving freezes the input's SHA-256 (of exactly the exported CSV), audited.
    let r =
        stat.post(&format!("/studies/{STUDY}/analyses/saved"), &[("query", &q), ("title", "Inter-reader kappa")]).await;
    assert_eq!(r.status(), 303);
    let saved_url = location(&r);
    assert!(saved_url.contains("/analyses/saved/"), "{saved_url}");
    let ev = audit_events(&app, "save_analysis");
    assert_eq!(ev.len(), 1);
    let sha = hex::encode(Sha256::digest(&bytes));
    assert!(ev[0].new_value.as_deref().unwrap().contains(&sha), "the audit holds the input hash");
    let (_, page) = stat.get_text(&format!("{saved_url}?rerun=1")).await;
    assert!(page.contains(&sha) && page.contains("same data") && page.contains("Every result is identical"), "{page}");
    // Its command keeps the order it was computed in; its parameters read by their labels.
    assert!(page.contains("--categories=inflamed,excluded,desert"), "{page}");
    assert!(page.contains("Rater A (rows): <code>phenotype__annotator1</code>"), "{page}");

    // The data changes: a read is reopened and resubmitted; the re-run says what changed.
    let a2 = app.login("annotator2").await;
    let r2 = read_id(&app, campaign, "annotator2", &labels[1]);
    a2.post(&format!("/studies/{STUDY}/reads/{r2}/reopen"), &[("reason", "second look")]).await;
    assert_eq!(submit(&a2, r2, "desert", "140").await.status(), 303);
    let (_, page) = stat.get_text(&format!("{saved_url}?rerun=1")).await;
    assert!(
        page.contains("data changed") && page.contains("rerun-changes") && page.contains("observed_agreement"),
        "{page}"
    );
    let (_, saved_page) = stat.get_text(&saved_url).await;
    assert!(saved_page.contains(&sha), "the saved analysis keeps its frozen input hash");

    // Retiring needs a reason and keeps the record.
    let id = saved_url.rsplit('/').next().unwrap().to_string();
    let r = stat.post(&format!("/studies/{STUDY}/analyses/saved/{id}/retire"), &[("reason", "")]).await;
    assert_eq!(r.status(), 303);
    assert!(audit_events(&app, "retire_analysis").is_empty());
    stat.post(
        &format!("/studies/{STUDY}/analyses/saved/{id}/retire"),
        &[("reason", "superseded by the adjudicated reference")],
    )
    .await;
    assert_eq!(audit_events(&app, "retire_analysis").len(), 1);
    let (_, csv) = stat.get_text(&format!("/studies/{STUDY}/analyses/saved.csv")).await;
    assert!(csv.contains("retired,superseded by the adjudicated reference"), "{csv}");
}

#[tokio::test]
async fn the_plan_is_signed_with_a_password_then_frozen_and_results_pass_or_fail_against_it() {
    let app = spawn_app();
    let (campaign, _) = read_study(&app).await;
    let stat = app.login("statistician").await;
    let q = format!("campaign={campaign}&analysis=kappa&a=phenotype__annotator1&b=phenotype__annotator2");
    let item = [
        ("query", q.as_str()),
        ("role", "primary"),
        ("title", "Inter-reader agreement"),
        ("metric", "observed_agreement"),
        ("op", ">="),
        ("value", "0.6"),
    ];
    // A criterion needs a number; nothing is written without one.
    let mut bad = item;
    bad[5] = ("value", "high");
    stat.post(&format!("/studies/{STUDY}/analyses/plan/items"), &bad).await;
    assert!(audit_events(&app, "add_plan_item").is_empty());
    assert_eq!(stat.post(&format!("/studies/{STUDY}/analyses/plan/items"), &item).await.status(), 303);
    assert_eq!(audit_events(&app, "add_plan_item").len(), 1);
    let (_, page) = stat.get_text(&format!("/studies/{STUDY}/analyses/plan")).await;
    assert!(page.contains("draft") && page.contains("observed agreement ≥ 0.6"), "{page}");

    // Signing: a wrong password signs nothing; the right one freezes the version. The first
    // signature of a session takes both components (21 CFR 11.200(a)(1)(i)): the username too.
    let sign = format!("/studies/{STUDY}/analyses/plan/sign");
    stat.post(&sign, &[("username", "statistician"), ("password", "wrong"), ("meaning", "approval")]).await;
    assert!(audit_events(&app, "sign_plan").is_empty());
    let (_, page) = stat.get_text(&format!("/studies/{STUDY}/analyses/plan")).await;
    assert!(page.contains(r#"name="username""#), "the first signature asks for the username: {page}");
    for without in [
        &[("password", PASSWORD), ("meaning", "approval")][..],
        &[("username", "manager"), ("password", PASSWORD), ("meaning", "approval")],
    ] {
        let r = stat.post(&sign, without).await;
        assert_eq!(r.status(), 303);
        let (_, page) = stat.get_text(&location(&r)).await;
        assert!(page.contains("Not signed: username: type your own username"), "{page}");
        assert!(audit_events(&app, "sign_plan").is_empty());
    }
    // Each failure is audited (its own transaction), newest first: what failed and the meaning.
    let failed: Vec<String> =
        audit_events(&app, "sign_failed").iter().map(|e| e.new_value.clone().unwrap_or_default()).collect();
    assert_eq!(
        failed,
        [
            r#"{"meaning":"approval","reason":"wrong username"}"#,
            r#"{"meaning":"approval","reason":"wrong username"}"#,
            r#"{"meaning":"approval","reason":"wrong password"}"#
        ],
        "{failed:?}"
    );
    let r = stat.post(&sign, &[("username", " Statistician "), ("password", PASSWORD), ("meaning", "approval")]).await;
    assert_eq!(r.status(), 303);
    let ev = audit_events(&app, "sign_plan");
    assert_eq!(ev.len(), 1);
    assert!(ev[0].new_value.as_deref().unwrap().contains("\"meaning\":\"approval\""));
    let (_, page) = stat.get_text(&format!("/studies/{STUDY}/analyses/plan")).await;
    assert!(page.contains("frozen") && page.contains("approval"), "{page}");

    // Frozen: no more items until a new version.
    let other = format!("campaign={campaign}&analysis=kappa&a=phenotype__annotator2&b=phenotype__annotator1");
    let mut more = item;
    more[0] = ("query", other.as_str());
    stat.post(&format!("/studies/{STUDY}/analyses/plan/items"), &more).await;
    assert_eq!(audit_events(&app, "add_plan_item").len(), 1, "a signed plan does not change");

    // The planned analysis passes (2 of 3 agree: 0.667 ≥ 0.6); the swapped one is exploratory.
    let (_, page) = stat.get_text(&format!("/studies/{STUDY}/analyses/result?{q}")).await;
    assert!(page.contains("plan P1") && page.contains(r#"id="verdict">pass"#), "{page}");
    assert!(page.contains("s kappa · LUNG-IO-01 · Evidentia</title>") && page.contains("s kappa</h2>"), "{page}");
    let (_, page) = stat.get_text(&format!("/studies/{STUDY}/analyses/result?{other}")).await;
    assert!(page.contains(r#"id="verdict">exploratory"#), "{page}");
    let r = stat.post(&format!("/studies/{STUDY}/analyses/saved"), &[("query", &q), ("title", "P1")]).await;
    let (_, saved) = stat.get_text(&location(&r)).await;
    assert!(saved.contains("plan P1") && saved.contains(r#"id="verdict">pass"#), "{saved}");

    assert_eq!(stat.post(&format!("/studies/{STUDY}/analyses/plan/new-version"), &[]).await.status(), 303);
    let (_, page) = stat.get_text(&format!("/studies/{STUDY}/analyses/plan")).await;
    assert!(page.contains("Version <strong>2</strong>") && page.contains("draft"), "{page}");
    // A later signature of the same session takes the password alone.
    assert!(!page.contains(r#"name="username""#), "{page}");
    assert_eq!(stat.post(&sign, &[("password", PASSWORD), ("meaning", "approval")]).await.status(), 303);
    assert_eq!(audit_events(&app, "sign_plan").len(), 2);
    // A new session starts over.
    let again = app.login("statistician").await;
    again.post(&format!("/studies/{STUDY}/analyses/plan/new-version"), &[]).await;
    let (_, page) = again.get_text(&format!("/studies/{STUDY}/analyses/plan")).await;
    assert!(page.contains(r#"name="username""#), "{page}");
}

#[tokio::test]
async fn bad_parameters_are_explained_and_analyses_are_closed_to_those_without_the_right() {
    let app = spawn_app();
    let (campaign, _) = read_study(&app).await;
    let stat = app.login("statistician").await;
    let base = format!("/studies/{STUDY}/analyses");
    // Unknown analysis, missing parameter, bad level: 422 naming the field.
    let (status, page) = stat.get_text(&format!("{base}/result?campaign={campaign}&analysis=bogus")).await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("bogus"));
    let (status, page) = stat.get_text(&format!("{base}/result?campaign={campaign}&analysis=kappa&a=x")).await;
    assert_eq!(status, 422);
    assert!(page.contains("choose a column"), "{page}");
    let (status, _) = stat.get_text(&format!("{base}/result?analysis=roc&score=a&reference=b&level=2")).await;
    assert_eq!(status, 422);
    // Data that cannot give the analysis: explained on the page.
    let (status, page) = stat
        .get_text(&format!("{base}/result?campaign={campaign}&analysis=kappa&a=phenotype__annotator1&b=nope"))
        .await;
    assert_eq!(status, 200);
    assert!(page.contains("cannot be computed") && page.contains("nope&#34; not found"), "{page}");
    let (_, page) = stat
        .get_text(&format!("{base}/result?campaign={campaign}&analysis=kappa&a=tumour_present__annotator1&b=tumour_present__annotator2"))
        .await;
    assert!(page.contains("kappa is undefined"), "one category: {page}");
    // A saved analysis must compute.
    let q = format!("campaign={campaign}&analysis=kappa&a=phenotype__annotator1&b=nope");
    stat.post(&format!("{base}/saved"), &[("query", &q), ("title", "x")]).await;
    assert!(audit_events(&app, "save_analysis").is_empty());

    // Annotators are blinded (404); monitors do not see results (403); managers see them but
    // cannot save or plan (403).
    let good = format!("campaign={campaign}&analysis=kappa&a=phenotype__annotator1&b=phenotype__annotator2");
    let a1 = app.login("annotator1").await;
    for path in ["".to_string(), format!("/result?{good}"), format!("/dataset.csv?{good}"), "/plan".into()] {
        assert_eq!(a1.get(&format!("{base}{path}")).await.status(), 404, "{path}");
    }
    let monitor = app.login("monitor").await;
    assert_eq!(monitor.get(&format!("{base}/result?{good}")).await.status(), 403);
    assert_eq!(monitor.get(&base).await.status(), 403);
    assert_eq!(a1.post(&format!("{base}/saved"), &[("query", &good), ("title", "x")]).await.status(), 404);
    for who in ["manager"] {
        let c = app.login(who).await;
        assert_eq!(c.get(&format!("{base}/result?{good}")).await.status(), 200);
        let r = c.post(&format!("{base}/saved"), &[("query", &good), ("title", "x")]).await;
        assert_eq!(r.status(), 403, "{who}");
        let r = c
            .post(&format!("{base}/plan/sign"), &[("username", who), ("password", PASSWORD), ("meaning", "approval")])
            .await;
        assert_eq!(r.status(), 403, "{who}");
    }
    let outsider = app.login("outsider").await;
    assert_eq!(outsider.get(&base).await.status(), 404);
    // Another study's run, campaign or saved analysis is a 404.
    let r = stat.post(&format!("{base}/saved"), &[("query", &good), ("title", "kept")]).await;
    let id = location(&r).rsplit('/').next().unwrap().to_string();
    let admin = app.login("admin").await;
    assert_eq!(admin.get(&format!("/studies/{OTHER_STUDY}/analyses/saved/{id}")).await.status(), 404);
    assert_eq!(admin.get(&format!("/studies/{OTHER_STUDY}/analyses/result?{good}")).await.status(), 404);
}

/// A saved analysis whose data changed after it was saved is marked stale wherever it is listed;
/// the pre-lock checklist names it and links to the re-run; editing data warns the editor;
/// saving it again supersedes it (kept, audited); the dossier's error names the fix.
#[tokio::test]
async fn a_saved_analysis_on_changed_data_is_stale_until_saved_again_which_supersedes_it() {
    use diesel::prelude::*;
    use evidentia::db::schema::{cases, slides};
    let app = spawn_app();
    let (campaign, labels) = read_study(&app).await;
    let sid = evidentia::studies::get_by_code(&mut app.conn(), STUDY).unwrap().id;
    let stat = app.login("statistician").await;
    let base = format!("/studies/{STUDY}/analyses");
    let q = format!("campaign={campaign}&analysis=kappa&a=phenotype__annotator1&b=phenotype__annotator2");
    let item = [("query", q.as_str()), ("role", "primary"), ("title", "Inter-reader agreement")];
    assert_eq!(stat.post(&format!("{base}/plan/items"), &item).await.status(), 303);
    let r = stat
        .post(
            &format!("{base}/plan/sign"),
            &[("username", "statistician"), ("password", PASSWORD), ("meaning", "approval")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let check = |label: &str| {
        evidentia::studies::lock::checklist(&mut app.conn(), sid)
            .unwrap()
            .into_iter()
            .find(|c| c.label.starts_with(label))
            .unwrap_or_else(|| panic!("no checklist item {label}"))
    };
    let planned = "Every analysis of the plan saved on the current data";
    let c = check(planned);
    assert!(!c.ok && c.detail.contains("not saved: P1"), "{c:?}");
    assert!(c.links.iter().any(|(_, path)| path == &format!("analyses/result?{q}")), "{:?}", c.links);
    let r = stat.post(&format!("{base}/saved"), &[("query", &q), ("title", "P1")]).await;
    let first: i32 = location(&r).rsplit('/').next().unwrap().parse().unwrap();
    assert!(check(planned).ok);
    let (_, page) = stat.get_text(&base).await;
    assert!(!page.contains("stale"), "fresh: {page}");

    // The manager edits a value of a case in the analysis set: warned first, then it is stale.
    let case: String = slides::table
        .inner_join(cases::table)
        .filter(slides::label.eq(&labels[0]))
        .select(cases::display_id)
        .first(&mut app.conn())
        .unwrap();
    // An ECOG value other than the stored one.
    let other_ecog = || {
        let now = evidentia::cases::get(&mut app.conn(), sid, &case).unwrap().values().get("ecog").cloned();
        if now == Some(serde_json::json!("0")) {
            "1"
        } else {
            "0"
        }
    };
    let manager = app.login("manager").await;
    let edit_ecog = |m: &Client| {
        let (m, url, value) = (m.clone(), format!("/studies/{STUDY}/cases/{case}/edit"), other_ecog());
        async move {
            let r = m.post(&url, &[("ecog", value), ("_reason", "Data entry error")]).await;
            assert_eq!(r.status(), 303);
        }
    };
    let (_, page) = manager.get_text(&format!("/studies/{STUDY}/cases/{case}")).await;
    assert!(page.contains("1 saved analysis was computed on the data as it is now"), "{page}");
    let (_, page) = manager.get_text(&format!("/studies/{STUDY}/cases/import")).await;
    assert!(!page.contains("stale-warning"), "no preview yet, no warning: {page}");
    edit_ecog(&manager).await;
    let (_, page) = stat.get_text(&base).await;
    assert!(
        page.contains(r#"data-state="stale""#) && page.contains("1 saved analysis was computed on older data"),
        "{page}"
    );
    let (_, page) = stat.get_text(&format!("{base}/saved/{first}")).await;
    assert!(page.contains(r#"id="stale""#), "{page}");
    let (_, page) = stat.get_text(&format!("{base}/plan")).await;
    assert!(page.contains("stale"), "{page}");
    let (_, csv) = stat.get_text(&format!("{base}/saved.csv")).await;
    assert!(csv.lines().nth(1).unwrap().contains(",no,"), "input_unchanged = no: {csv}");
    let c = check(planned);
    assert!(!c.ok && c.detail.contains(&format!("P1 (#{first})")), "{c:?}");
    let (_, page) = manager.get_text(&format!("/studies/{STUDY}")).await;
    let link = format!(r#"href="/studies/{STUDY}/analyses/result?campaign={campaign}&#38;analysis=kappa"#);
    assert!(page.contains(&link) && page.contains(&format!("re-run P1 (#{first})")), "{page}");

    // The manager cannot lock on stale analyses; the checklist says what to do.
    manager.post(&format!("/studies/{STUDY}/status"), &[("to", "locked")]).await;
    assert!(audit_events(&app, "lock").is_empty());

    // Saved again: the new one is current, the old one superseded — kept, linked, audited.
    let r = stat.post(&format!("{base}/saved"), &[("query", &q), ("title", "P1 again")]).await;
    let second: i32 = location(&r).rsplit('/').next().unwrap().parse().unwrap();
    assert!(check(planned).ok, "{:?}", check(planned));
    let rows = evidentia::analyses::saved::list_checked(&mut app.conn(), sid).unwrap();
    let old = rows.iter().find(|r| r.saved.id == first).unwrap();
    assert_eq!(old.saved.status.as_str(), "superseded");
    assert_eq!(old.saved.superseded_by, Some(second));
    assert!(rows.iter().find(|r| r.saved.id == second).unwrap().stale == Some(false));
    let ev = audit_events(&app, "supersede_analysis");
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].entity_id, first.to_string());
    assert!(ev[0].reason.as_deref().unwrap().contains(&format!("superseded by #{second}")));
    let (_, page) = stat.get_text(&format!("{base}/saved/{first}")).await;
    assert!(page.contains(r#"id="superseded""#) && page.contains(&format!("saved/{second}")), "{page}");
    // A superseded analysis is not retired again.
    let r = stat.post(&format!("{base}/saved/{first}/retire"), &[("reason", "x")]).await;
    assert_eq!(r.status(), 303);
    assert!(audit_events(&app, "retire_analysis").is_empty());

    // An administrator locks anyway after a later change; the export's error names the fix.
    edit_ecog(&manager).await;
    lock_and_sign(&app, STUDY).await;
    let out = app.scratch.join("stale.zip");
    let r = app.cli(&["dossier", "export", "--study", STUDY, "--out", out.to_str().unwrap()], None);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_ne!(r.status.code(), Some(0));
    assert!(err.contains(&format!("saved analysis #{second}")) && err.contains("save it again"), "{err}");
    assert!(err.contains("unlocked by an administrator"), "{err}");
    assert!(!out.exists());
}

/// A longitudinal study's analysis dataset derives each subject's follow-up from its visits
/// (`cases::derive`): the time to death recorded at a follow-up visit, censored at the last
/// visit, on which a survival analysis runs like on any column.
#[tokio::test]
async fn survival_runs_on_the_follow_up_derived_from_the_visits() {
    let app = spawn_app();
    let (campaign, labels) = read_study(&app).await;
    let stat = app.login("statistician").await;
    let q = format!("campaign={campaign}&analysis=survival&time=death_fu__days&event=death_fu__ever");
    let (status, text) = stat.get_text(&format!("/studies/{STUDY}/analyses/dataset.csv?{q}")).await;
    assert_eq!(status, 200);
    let mut csv = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = csv.headers().unwrap().iter().map(String::from).collect();
    let at = |c: &str| header.iter().position(|h| h == c).unwrap_or_else(|| panic!("{c} in {header:?}"));
    let (visits, fu, ever, days) = (at("fu_visits"), at("fu_days"), at("death_fu__ever"), at("death_fu__days"));
    at("response__last");
    let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), labels.len());
    for r in &rows {
        assert!(r[visits].parse::<u32>().unwrap() > 0, "the demo's subjects have visits: {r:?}");
        let (fu, days) = (r[fu].parse::<i64>().unwrap(), r[days].parse::<i64>().unwrap());
        match &r[ever] {
            // Censored at the last visit.
            "0" => assert_eq!(days, fu, "{r:?}"),
            // Died at a visit no later than the last.
            "1" => assert!(days <= fu && days > 0, "{r:?}"),
            other => panic!("death_fu__ever {other}"),
        }
    }
    let (status, page) = stat.get_text(&format!("/studies/{STUDY}/analyses/new?{q}")).await;
    assert_eq!(status, 200, "{page}");
    let (status, result) = stat.get_text(&format!("/studies/{STUDY}/analyses/result.csv?{q}")).await;
    assert_eq!(status, 200, "{result}");
}
