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
    let (status, result) = stat.get_text(&format!("/studies/{STUDY}/analyses/result.csv?{q}")).await;
    assert_eq!(status, 200);
    assert_eq!(result_value(&result, "n"), "3");
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
        ],
        None,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
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
    assert!(page.contains("draft") && page.contains("observed_agreement ≥ 0.6"), "{page}");

    // Signing: a wrong password signs nothing; the right one freezes the version.
    stat.post(&format!("/studies/{STUDY}/analyses/plan/sign"), &[("password", "wrong"), ("meaning", "approval")]).await;
    assert!(audit_events(&app, "sign_plan").is_empty());
    let r = stat
        .post(&format!("/studies/{STUDY}/analyses/plan/sign"), &[("password", PASSWORD), ("meaning", "approval")])
        .await;
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
    let (_, page) = stat.get_text(&format!("/studies/{STUDY}/analyses/result?{other}")).await;
    assert!(page.contains(r#"id="verdict">exploratory"#), "{page}");
    let r = stat.post(&format!("/studies/{STUDY}/analyses/saved"), &[("query", &q), ("title", "P1")]).await;
    let (_, saved) = stat.get_text(&location(&r)).await;
    assert!(saved.contains("plan P1") && saved.contains(r#"id="verdict">pass"#), "{saved}");

    assert_eq!(stat.post(&format!("/studies/{STUDY}/analyses/plan/new-version"), &[]).await.status(), 303);
    let (_, page) = stat.get_text(&format!("/studies/{STUDY}/analyses/plan")).await;
    assert!(page.contains("Version <strong>2</strong>") && page.contains("draft"), "{page}");
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
        let r = c.post(&format!("{base}/plan/sign"), &[("password", PASSWORD), ("meaning", "approval")]).await;
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
