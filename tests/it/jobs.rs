//! The job queue: runs from the page with progress, cancel, a dead worker's job resumed.

use std::time::Duration;

use diesel::prelude::*;
use serde_json::json;

use crate::helpers::*;
use evidentia::auth::Actor;
use evidentia::jobs;

#[tokio::test]
async fn an_integrity_check_runs_as_a_job_with_progress() {
    let app = spawn_app();
    let monitor = app.login("monitor").await;
    let r = monitor.post("/studies/LUNG-IO-01/audit/verify", &[]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/studies/LUNG-IO-01/jobs");
    let job_id = jobs::list(&mut app.conn(), None, evidentia::db::paging::PageRequest::all()).unwrap().items[0].id;
    let job = wait_finished(&app, job_id).await;
    assert_eq!(job.status.as_str(), "succeeded", "{:?}", job.error);
    assert_eq!((job.progress_done, job.progress_total), (1, 1));
    let result: serde_json::Value = serde_json::from_str(job.result.as_deref().unwrap()).unwrap();
    assert_eq!(result["ok"], true);
    let (s, page) = monitor.get_text("/studies/LUNG-IO-01/jobs").await;
    assert_eq!(s, 200);
    assert!(page.contains("Audit trail check") && !page.contains("audit_verify") && page.contains("<progress"));
    // The row fragment htmx polls.
    let (s, row) = monitor.get_text(&format!("/studies/LUNG-IO-01/jobs/{job_id}")).await;
    assert_eq!(s, 200);
    assert!(row.starts_with("<tr id=\"job-"));
    assert!(!row.contains("hx-trigger"), "finished jobs stop polling");
    // The same job through the API, and another study's id is a 404.
    let api: serde_json::Value = {
        let (_, secret) = evidentia::auth::tokens::create(
            &mut app.conn(),
            &Actor::from_user(&evidentia::auth::users::find_by_username(&mut app.conn(), "monitor").unwrap().unwrap()),
            "t",
            evidentia::auth::tokens::TokenScope::Read,
            evidentia::auth::tokens::DEFAULT_DAYS,
        )
        .unwrap();
        reqwest::Client::new()
            .get(format!("{}/api/v1/studies/LUNG-IO-01/jobs/{job_id}", app.base))
            .bearer_auth(secret)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    assert_eq!(api["status"], "succeeded");
    assert_eq!(audit_events(&app, "start_job").len(), 1);
}

/// An integrity check of the demo study, queued by the CLI operator (no worker runs it).
fn queued_check(app: &TestApp) -> jobs::Job {
    let study = evidentia::studies::get_by_code(&mut app.conn(), "LUNG-IO-01").unwrap();
    jobs::enqueue(
        &mut app.conn(),
        &Actor::cli_operator(),
        Some(&study),
        &evidentia::audit::job::VerifyParams::default(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_queued_job_can_be_cancelled() {
    let app = spawn_app_with(|cfg| cfg.job_workers = 0);
    let job = queued_check(&app);
    let m = app.login("manager").await;
    let (_, row) = m.get_text(&format!("/studies/LUNG-IO-01/jobs/{}", job.id)).await;
    assert!(row.contains("hx-trigger=\"every 1s\""), "a live job polls");
    assert_eq!(m.post(&format!("/studies/LUNG-IO-01/jobs/{}/cancel", job.id), &[]).await.status(), 303);
    assert_eq!(jobs::get(&mut app.conn(), job.id).unwrap().status.as_str(), "cancelled");
    assert_eq!(audit_events(&app, "cancel_job").len(), 1);
    // A job of another study is not reachable through this one.
    let other = evidentia::studies::get_by_code(&mut app.conn(), OTHER_STUDY).unwrap();
    let j2 = jobs::enqueue(
        &mut app.conn(),
        &Actor::cli_operator(),
        Some(&other),
        &evidentia::audit::job::VerifyParams::default(),
    )
    .unwrap();
    let admin = app.login("admin").await;
    assert_eq!(admin.get(&format!("/studies/LUNG-IO-01/jobs/{}", j2.id)).await.status(), 404);
    assert_eq!(admin.post(&format!("/studies/LUNG-IO-01/jobs/{}/cancel", j2.id), &[]).await.status(), 404);
}

#[tokio::test]
async fn only_who_started_a_job_or_may_start_its_kind_may_cancel_it() {
    use evidentia::db::schema::jobs as j;
    let app = spawn_app_with(|cfg| cfg.job_workers = 0);
    let queued = |kind: &str, owner: &str| {
        let job = queued_check(&app);
        // Retold as another kind and owner: no worker runs it, so its parameters never matter.
        diesel::update(j::table.find(job.id))
            .set((j::kind.eq(kind), j::owner.eq(owner)))
            .execute(&mut *app.conn())
            .unwrap();
        job.id
    };
    let run = queued("biomarker_run", "manager");
    let check = queued("audit_verify", "manager");
    let monitor = app.login("monitor").await;
    // A monitor may start integrity checks, not AI runs: no button, and the request is refused.
    let (_, page) = monitor.get_text("/studies/LUNG-IO-01/jobs").await;
    assert!(!page.contains(&format!("/jobs/{run}/cancel")), "no cancel button on a manager's run");
    assert!(page.contains(&format!("/jobs/{check}/cancel")), "a cancel button on an integrity check");
    assert_eq!(monitor.post(&format!("/studies/LUNG-IO-01/jobs/{run}/cancel"), &[]).await.status(), 403);
    assert_eq!(jobs::get(&mut app.conn(), run).unwrap().status.as_str(), "queued");
    assert_eq!(audit_events(&app, "cancel_job").len(), 0, "a refused cancel changes nothing");
    assert_eq!(monitor.post(&format!("/studies/LUNG-IO-01/jobs/{check}/cancel"), &[]).await.status(), 303);
    // Whoever started a job may cancel it, whatever its kind.
    let own = queued("biomarker_run", "monitor");
    assert_eq!(monitor.post(&format!("/studies/LUNG-IO-01/jobs/{own}/cancel"), &[]).await.status(), 303);
    let manager = app.login("manager").await;
    assert_eq!(manager.post(&format!("/studies/LUNG-IO-01/jobs/{run}/cancel"), &[]).await.status(), 303);
    assert_eq!(audit_events(&app, "cancel_job").len(), 3);
}

#[tokio::test]
async fn a_job_whose_worker_died_is_resumed_from_its_checkpoint() {
    let app = spawn_app_with(|cfg| {
        cfg.job_workers = 0;
        cfg.job_stale_after = Duration::from_secs(1);
    });
    let job =
        jobs::enqueue(&mut app.conn(), &Actor::cli_operator(), None, &evidentia::audit::job::VerifyParams::default())
            .unwrap();
    // A worker claims it, records one chain as done, then dies (no more heartbeats).
    let claimed = jobs::claim(&mut app.conn(), job.id, "doomed-worker").unwrap().unwrap();
    assert_eq!(claimed.attempts, 1);
    let chains = evidentia::audit::verify::chain_names(&mut app.conn()).unwrap();
    let checkpoint = json!({"reports": [{"chain": chains[0], "events": -1, "broken": null}]});
    jobs::report_progress(&mut app.conn(), job.id, 1, chains.len() as i64, "checked one", Some(&checkpoint)).unwrap();
    {
        use evidentia::db::schema::jobs::dsl;
        let old = chrono::Utc::now().naive_utc() - chrono::Duration::seconds(30);
        diesel::update(dsl::jobs.find(job.id)).set(dsl::heartbeat_at.eq(Some(old))).execute(&mut app.conn()).unwrap();
    }
    // Another worker notices, requeues, and resumes after the recorded chain.
    let ran = evidentia::jobs::worker::run_once(&app.pool, &app.config, "rescuer").unwrap();
    assert!(ran);
    let j = jobs::get(&mut app.conn(), job.id).unwrap();
    assert_eq!(j.status.as_str(), "succeeded");
    assert_eq!(j.attempts, 2);
    let result: serde_json::Value = serde_json::from_str(j.result.as_deref().unwrap()).unwrap();
    assert_eq!(result["chains"][0]["events"], -1, "the first chain was not checked again");
    assert_eq!(result["chains"].as_array().unwrap().len(), chains.len());
    assert!(result["chains"][1]["events"].as_i64().unwrap() > 0);
}

#[test]
fn two_workers_never_claim_the_same_job() {
    let app = spawn_app_with(|cfg| cfg.job_workers = 0);
    for _ in 0..20 {
        jobs::enqueue(&mut app.conn(), &Actor::cli_operator(), None, &evidentia::audit::job::VerifyParams::default())
            .unwrap();
    }
    let handles: Vec<_> = (0..4)
        .map(|w| {
            let pool = app.pool.clone();
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                while let Some(j) = jobs::claim_next(&mut pool.get().unwrap(), &format!("w{w}")).unwrap() {
                    mine.push(j.id);
                }
                mine
            })
        })
        .collect();
    let mut all: Vec<i32> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    all.sort();
    let n = all.len();
    all.dedup();
    assert_eq!(n, 20);
    assert_eq!(all.len(), 20, "no job claimed twice");
}

/// Job parameters are typed per kind: parameters of another shape fail the job with a message
/// that says so (they used to read as defaults).
#[tokio::test]
async fn a_job_with_parameters_of_another_shape_fails_and_says_why() {
    use diesel::prelude::*;
    let app = spawn_app_with(|cfg| cfg.job_workers = 0);
    let job =
        jobs::enqueue(&mut app.conn(), &Actor::cli_operator(), None, &evidentia::audit::job::VerifyParams::default())
            .unwrap();
    use evidentia::db::schema::jobs as t;
    diesel::update(t::table.find(job.id)).set(t::params.eq("{\"chain\": 5}")).execute(&mut app.conn()).unwrap();
    let claimed = jobs::claim(&mut app.conn(), job.id, "test").unwrap().unwrap();
    jobs::worker::run_job(&app.pool, &app.config, claimed);
    let done = jobs::get(&mut app.conn(), job.id).unwrap();
    assert_eq!(done.status.as_str(), "failed");
    let error = done.error.unwrap_or_default();
    assert!(error.contains("its parameters do not fit its kind (audit_verify)"), "{error}");
}

#[tokio::test]
async fn a_job_result_is_read_as_its_kinds_type_and_one_of_another_shape_is_an_error() {
    use diesel::prelude::*;
    use evidentia::audit::job::VerifyParams;
    let app = spawn_app_with(|cfg| cfg.job_workers = 0);
    let job = jobs::enqueue(&mut app.conn(), &Actor::cli_operator(), None, &VerifyParams::default()).unwrap();
    let queued = jobs::get(&mut app.conn(), job.id).unwrap();
    let none = queued.output::<VerifyParams>().unwrap_err().to_string();
    assert!(none.contains("has no result (queued)"), "{none}");
    let claimed = jobs::claim(&mut app.conn(), job.id, "test").unwrap().unwrap();
    jobs::worker::run_job(&app.pool, &app.config, claimed);
    let done = jobs::get(&mut app.conn(), job.id).unwrap();
    let output = done.output::<VerifyParams>().unwrap();
    assert!(output.ok && !output.chains.is_empty(), "{output:?}");
    // Another kind's type is refused, and so is a stored result of another shape.
    let other = done.output::<evidentia::dossier::DossierParams>().unwrap_err().to_string();
    assert!(other.contains("is a audit_verify job, not dossier_export"), "{other}");
    use evidentia::db::schema::jobs as t;
    diesel::update(t::table.find(job.id))
        .set(t::result.eq(Some("{\"ok\": \"yes\"}")))
        .execute(&mut app.conn())
        .unwrap();
    let changed = jobs::get(&mut app.conn(), job.id).unwrap();
    let err = changed.output::<VerifyParams>().unwrap_err().to_string();
    assert!(err.contains("its result does not fit its kind (audit_verify)"), "{err}");
}
