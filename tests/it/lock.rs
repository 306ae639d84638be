//! Study lock and electronic signatures: the lock records the data's snapshot hash; the manager
//! and the statistician sign with their passwords (a wrong password signs nothing and is
//! audited); a change to the data invalidates the signatures; unlocking (an administrator, with
//! a reason) voids them. Through the web and the CLI.

use diesel::prelude::*;

use crate::helpers::*;
use evidentia::db::schema::{cases, study_signatures};
use evidentia::studies::{self, lock};

const STUDY: &str = "LUNG-IO-01";

fn state(app: &TestApp) -> lock::SignatureState {
    let mut conn = app.conn();
    let s = studies::get_by_code(&mut conn, STUDY).unwrap();
    lock::state(&mut conn, s.id).unwrap().expect("locked")
}

#[tokio::test]
async fn a_locked_study_is_signed_by_its_manager_and_statistician_and_unlocking_voids_it() {
    let app = spawn_app();
    let manager = app.login("manager").await;
    let s = format!("/studies/{STUDY}");
    // The pre-lock checklist is open (no signed plan): the manager cannot lock; it says why.
    let r = manager.post(&format!("{s}/status"), &[("to", "locked")]).await;
    assert_eq!(r.status(), 303);
    assert!(audit_events(&app, "lock").is_empty());
    let (_, page) = manager.get_text(&s).await;
    assert!(page.contains("Pre-lock checklist") && page.contains("Statistical analysis plan signed"), "{page}");
    let admin = app.login("admin").await;
    admin.post(&format!("{s}/status"), &[("to", "locked"), ("reason", "test: checklist waived")]).await;
    let locked = audit_events(&app, "lock");
    assert_eq!(locked.len(), 1);
    let st = state(&app);
    assert!(locked[0].new_value.as_deref().unwrap().contains(&st.lock.snapshot_sha256));
    assert_eq!(st.label(), "locked — awaiting 2 of 2 signatures");
    let (_, page) = manager.get_text(&s).await;
    assert!(page.contains("awaiting 2 of 2 signatures") && page.contains(&st.lock.snapshot_sha256), "{page}");

    // A wrong password signs nothing, and the attempt is audited.
    let stat = app.login("statistician").await;
    let r = stat
        .post(&format!("{s}/sign"), &[("username", "statistician"), ("password", "not-it"), ("meaning", "approval")])
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(audit_events(&app, "sign_failed").len(), 1);
    assert!(state(&app).signed.is_empty());
    // Annotators and monitors are not signers.
    let a1 = app.login("annotator1").await;
    assert_eq!(
        a1.post(&format!("{s}/sign"), &[("username", "annotator1"), ("password", PASSWORD), ("meaning", "approval")])
            .await
            .status(),
        403
    );
    let monitor = app.login("monitor").await;
    assert_eq!(
        monitor
            .post(&format!("{s}/sign"), &[("username", "monitor"), ("password", PASSWORD), ("meaning", "review")])
            .await
            .status(),
        403
    );

    stat.post(&format!("{s}/sign"), &[("username", "statistician"), ("password", PASSWORD), ("meaning", "approval")])
        .await;
    let st = state(&app);
    assert_eq!(st.signed.len(), 1);
    assert_eq!((st.signed[0].role.as_str(), st.signed[0].meaning.as_str()), ("statistician", "approval"));
    assert_eq!(st.signed[0].snapshot_sha256, st.lock.snapshot_sha256);
    assert_eq!(st.label(), "locked — awaiting 1 of 2 signatures");
    stat.post(&format!("{s}/sign"), &[("username", "statistician"), ("password", PASSWORD), ("meaning", "approval")])
        .await;
    assert_eq!(state(&app).signed.len(), 1, "one signature per role");
    let (_, page) = manager.get_text(&s).await;
    assert!(page.contains("Choi Hana") && page.contains("approval"), "the signature is shown: {page}");

    // The manager signs through the CLI.
    let out = app.cli(
        &[
            "study",
            "sign",
            "--study",
            STUDY,
            "--username",
            "manager",
            "--meaning",
            "responsibility",
            "--password-stdin",
        ],
        Some(PASSWORD),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("locked and signed"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let bad = app.cli(
        &["study", "sign", "--study", STUDY, "--username", "manager", "--meaning", "whim", "--password-stdin"],
        Some(PASSWORD),
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(state(&app).complete());
    assert_eq!(audit_events(&app, "sign").len(), 2);

    // Any change to the data (here behind the application's back) invalidates the signatures.
    let mut conn = app.conn();
    let id: i32 = cases::table.select(cases::id).first(&mut conn).unwrap();
    diesel::update(cases::table.find(id)).set(cases::status.eq("withdrawn")).execute(&mut conn).unwrap();
    drop(conn);
    let st = state(&app);
    assert!(!st.data_unchanged && !st.complete());
    assert!(st.label().contains("signatures invalid"));
    let mut conn = app.conn();
    diesel::update(cases::table.find(id)).set(cases::status.eq("enrolled")).execute(&mut conn).unwrap();
    drop(conn);
    assert!(state(&app).complete(), "the same data hashes the same");

    // Unlocking needs an administrator and a reason, and voids the signatures.
    let out = app.cli(&["--as", "manager", "study", "unlock", "--study", STUDY, "--reason", "late data query"], None);
    assert_ne!(out.status.code(), Some(0), "managers do not unlock");
    let out = app.cli(&["study", "unlock", "--study", STUDY, "--reason", "late data query"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let voided: Vec<Option<String>> =
        study_signatures::table.select(study_signatures::void_reason).load(&mut app.conn()).unwrap();
    assert_eq!(voided.len(), 2);
    assert!(voided.iter().all(|r| r.as_deref() == Some("study unlocked: late data query")), "{voided:?}");
    assert_eq!(audit_events(&app, "unlock").len(), 1);
    // Locked again: a new lock, nobody has signed it.
    let out = app.cli(&["study", "lock", "--study", STUDY], None);
    assert_eq!(out.status.code(), Some(2), "open checklist items need a reason");
    assert!(String::from_utf8_lossy(&out.stderr).contains("reason"));
    let out = app.cli(&["study", "lock", "--study", STUDY, "--reason", "test: checklist waived"], None);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("awaiting 2 of 2"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Rewrites a zip with `name`'s bytes changed by `f` (everything else as it was).
fn tamper(src: &std::path::Path, dst: &std::path::Path, name: &str, f: impl Fn(&mut Vec<u8>)) {
    use std::io::{Read, Write};
    let mut archive = zip::ZipArchive::new(std::fs::File::open(src).unwrap()).unwrap();
    let mut out = zip::ZipWriter::new(std::fs::File::create(dst).unwrap());
    for i in 0..archive.len() {
        let mut e = archive.by_index(i).unwrap();
        let mut bytes = Vec::new();
        e.read_to_end(&mut bytes).unwrap();
        if e.name().unwrap() == name {
            f(&mut bytes);
        }
        out.start_file(e.name().unwrap(), zip::write::SimpleFileOptions::default()).unwrap();
        out.write_all(&bytes).unwrap();
    }
    out.finish().unwrap();
}

#[tokio::test]
async fn the_dossier_is_signed_deterministic_and_verify_catches_any_change() {
    let app = spawn_app();
    let (campaign, _) = crate::analyses::read_study(&app).await;
    // A site named in Hangul: the PDF report prints it (a CJK font is embedded for it).
    let manager = app.login("manager").await;
    let r = manager
        .post(
            &format!("/studies/{STUDY}/sites"),
            &[("code", "KUMC"), ("name", "고려대학교 안암병원"), ("country", "KR")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let stat = app.login("statistician").await;
    let q = format!("campaign={campaign}&analysis=kappa&a=phenotype__annotator1&b=phenotype__annotator2");
    stat.post(&format!("/studies/{STUDY}/analyses/saved"), &[("query", &q), ("title", "Inter-reader kappa")]).await;
    let pfs = format!("campaign={campaign}&analysis=survival&time=pfs_months&event=progression");
    stat.post(&format!("/studies/{STUDY}/analyses/saved"), &[("query", &pfs), ("title", "PFS")]).await;
    assert_eq!(audit_events(&app, "save_analysis").len(), 2);
    let out = app.scratch.join("d1.zip");
    // Not before the study is locked and signed.
    let r = app.cli(&["dossier", "export", "--study", STUDY, "--out", out.to_str().unwrap()], None);
    assert_eq!(r.status.code(), Some(2), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(!out.exists(), "nothing written");
    lock_and_sign(&app, STUDY).await;
    let r = app.cli(&["dossier", "export", "--study", STUDY, "--out", out.to_str().unwrap()], None);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let printed = String::from_utf8_lossy(&r.stdout).to_string();
    let (_, key_json) = stat.get_text("/api/v1/signing-key").await;
    let key: serde_json::Value = serde_json::from_str(&key_json).unwrap();
    let key = key["public_key"].as_str().unwrap().to_string();
    assert!(printed.contains(&key), "{printed}");

    // Deterministic: the same study gives the same bytes.
    let out2 = app.scratch.join("d2.zip");
    app.cli(&["dossier", "export", "--study", STUDY, "--out", out2.to_str().unwrap()], None);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&out2).unwrap());

    let verify = |p: &std::path::Path, key: &str| {
        app.cli(&["dossier", "verify", p.to_str().unwrap(), "--public-key", key], None)
    };
    let ok = verify(&out, &key);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    // Its contents: the dataset the saved analysis hashed, the command that re-computes it.
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&out).unwrap()).unwrap();
    let names: Vec<String> =
        (0..archive.len()).map(|i| archive.by_index(i).unwrap().name().unwrap().to_string()).collect();
    for n in [
        "manifest.json",
        "manifest.sig",
        "datasets/subjects.csv",
        "datasets/analysis-campaign1.csv",
        "audit/audit.csv",
        "audit/verification.json",
        "reproduce/commands.sh",
        "analyses/plan.json",
    ] {
        assert!(names.iter().any(|x| x == n), "{n} in {names:?}");
    }
    for n in [
        "datasets/subjects.xpt",
        "datasets/analysis-campaign1.xpt",
        "datasets/analysis-campaign1.variables.csv",
        "datasets/adtte.csv",
        "datasets/adtte.xpt",
        "datasets/reads.csv",
        "datasets/reads.xpt",
        "datasets/define.xml",
        // The demo studies are longitudinal: every event's records and the design.
        "records/records.csv",
        "records/design/events.csv",
        "records/design/mapping.csv",
    ] {
        assert!(names.iter().any(|x| x == n), "{n} in {names:?}");
    }
    // The XPORT files read back with an independent reader (pandas.read_sas) hold the CSVs' values.
    let dir = app.scratch.join("unzipped");
    std::fs::create_dir_all(dir.join("datasets")).unwrap();
    for i in 0..archive.len() {
        let mut e = archive.by_index(i).unwrap();
        if e.name().unwrap().starts_with("datasets/") {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut bytes).unwrap();
            std::fs::write(dir.join(e.name().unwrap().as_ref()), bytes).unwrap();
        }
    }
    drop(archive);
    let python = std::env::var("EVIDENTIA_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/check_xpt.py");
    let check = std::process::Command::new(&python)
        .arg(&script)
        .arg(dir.join("datasets"))
        .args(["subjects", "analysis-campaign1", "adtte", "reads"])
        .output()
        .unwrap_or_else(|e| panic!("{python}: {e} (set EVIDENTIA_TEST_PYTHON to a Python with pandas; .ci/run does)"));
    assert!(
        check.status.success(),
        "{python} tools/check_xpt.py: {}{} (needs pandas; set EVIDENTIA_TEST_PYTHON)",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let checked = String::from_utf8_lossy(&check.stdout).to_string();
    assert!(checked.contains("analysis-campaign1: 3 rows") && checked.contains("adtte: 3 rows"), "{checked}");
    // The report: a PDF that poppler opens, with every section, the signatures and the key; the
    // same sections in the HTML, with the plots inline.
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&out).unwrap()).unwrap();
    std::fs::create_dir_all(dir.join("report")).unwrap();
    for name in ["report/report.pdf", "report/report.html", "report/third-party-components.csv"] {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut archive.by_name(name).unwrap(), &mut bytes).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    drop(archive);
    let pdf = dir.join("report/report.pdf");
    let info =
        std::process::Command::new("pdfinfo").arg(&pdf).output().expect("pdfinfo (poppler-utils; .ci/run installs it)");
    let info = String::from_utf8_lossy(&info.stdout).to_string();
    let pages: usize = info
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{info}"));
    assert!(pages >= 8 && info.contains("A4") && info.contains("statistical report"), "{info}");
    // The ~400 third-party components are an appendix file, not pages of the report.
    let components = std::fs::read_to_string(dir.join("report/third-party-components.csv")).unwrap();
    assert!(components.starts_with("component,version,licence,kind\n") && components.lines().count() > 300);
    assert!(components.contains("krilla,"), "{components}");
    // PDF/A-2b (archivable): identified in its XMP metadata, every font embedded.
    let meta = std::process::Command::new("pdfinfo").arg("-meta").arg(&pdf).output().expect("pdfinfo -meta");
    let meta = String::from_utf8_lossy(&meta.stdout).to_string();
    assert!(
        meta.contains("<pdfaid:part>2</pdfaid:part>") && meta.contains("<pdfaid:conformance>B</pdfaid:conformance>")
            || meta.contains(r#"pdfaid:part="2""#) && meta.contains(r#"pdfaid:conformance="B""#),
        "{meta}"
    );
    let fonts = std::process::Command::new("pdffonts").arg(&pdf).output().expect("pdffonts");
    let fonts = String::from_utf8_lossy(&fonts.stdout).to_string();
    let rows: Vec<&str> = fonts.lines().skip(2).collect();
    assert!(!rows.is_empty() && rows.iter().any(|r| r.contains("NotoSansCJK")), "{fonts}");
    // pdffonts' "emb" column: yes for every font.
    assert!(rows.iter().all(|r| r.split_whitespace().rev().nth(4) == Some("yes")), "{fonts}");
    let text = std::process::Command::new("pdftotext").arg(&pdf).arg("-").output().expect("pdftotext");
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(text.contains("고려대학교 안암병원"), "the Hangul site name is in the PDF's text:\n{text}");
    let html = std::fs::read_to_string(dir.join("report/report.html")).unwrap();
    for section in [
        "Signatures",
        "Study design",
        "Population and disposition",
        "Table 1: characteristics by AI phenotype",
        "Disposition: subjects by site and status",
        "evidentia stats table1 --input datasets/subjects.csv --group=site",
        "Statistical analysis plan and pre-specified results",
        "AI versus reference agreement",
        "Reader variability",
        "Accuracy",
        "Survival by AI phenotype",
        "Model cards",
        "Methods",
        "Audit trail",
        "Software and third-party components",
        "Inter-reader kappa",
        "Choi Hana, PhD",
        "Park Jiyeon",
        "Kaplan EL",
        "krilla",
    ] {
        assert!(text.contains(section), "{section} in the PDF:\n{text}");
        assert!(html.contains(&section.replace('&', "&amp;")), "{section} in the HTML");
    }
    assert!(text.contains(&key[..32]), "the public key is printed");
    // Table 1 by the dictionary's labels (levels too: a unit test of the report crate).
    assert!(html.contains("<th>Sex, missing</th>") && !html.contains("<th>sex, missing</th>"), "{html}");
    assert!(text.contains("evidentia stats survival --input datasets/analysis-campaign1.csv"), "{text}");
    assert!(html.matches("<svg").count() >= 2, "the confusion matrix and KM plots inline");

    let define = std::fs::read_to_string(dir.join("datasets/define.xml")).unwrap();
    assert!(define.contains(r#"<ItemGroupDef OID="IG.ADTTE""#) && define.contains(r#"Name="CNSR""#), "{define}");

    // Any changed byte is named; a changed manifest breaks its signature; another key fails.
    let bad = app.scratch.join("bad.zip");
    tamper(&out, &bad, "datasets/analysis-campaign1.csv", |b| {
        let i = b.len() - 3;
        b[i] ^= 1;
    });
    let r = verify(&bad, &key);
    assert_eq!(r.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("datasets/analysis-campaign1.csv"),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    tamper(&out, &bad, "manifest.json", |b| {
        let s = String::from_utf8(b.clone()).unwrap().replacen("evidentia 0.", "evidentia 9.", 1);
        *b = s.into_bytes();
    });
    let r = verify(&bad, &key);
    assert!(String::from_utf8_lossy(&r.stderr).contains("manifest.sig"), "{}", String::from_utf8_lossy(&r.stderr));
    let r = verify(&out, &"11".repeat(32));
    assert_eq!(r.status.code(), Some(1), "another installation's key");

    // The web: the locked, signed study offers the export, which runs as a job with progress;
    // the download holds the same bytes as the CLI's; annotators get 404, monitors 403.
    let (_, page) = stat.get_text(&format!("/studies/{STUDY}")).await;
    assert!(page.contains("dossier-export"), "{page}");
    let a1 = app.login("annotator1").await;
    assert_eq!(a1.post(&format!("/studies/{STUDY}/dossier"), &[]).await.status(), 404);
    let monitor = app.login("monitor").await;
    assert_eq!(monitor.post(&format!("/studies/{STUDY}/dossier"), &[]).await.status(), 403);
    assert_eq!(stat.post(&format!("/studies/{STUDY}/dossier"), &[]).await.status(), 303);
    let job_id: i32 = {
        use evidentia::db::schema::jobs;
        jobs::table
            .filter(jobs::kind.eq("dossier_export"))
            .select(jobs::id)
            .order(jobs::id.desc())
            .first(&mut app.conn())
            .unwrap()
    };
    let job = wait_finished(&app, job_id).await;
    assert_eq!(job.status.as_str(), "succeeded", "{:?}", job.error);
    assert!(job.progress_total >= 6 && job.progress_done == job.progress_total, "{job:?}");
    assert!(audit_events(&app, "start_job").iter().any(|e| e
        .new_value
        .as_deref()
        .unwrap_or("")
        .contains("dossier_export")));
    let (_, row) = stat.get_text(&format!("/studies/{STUDY}/dossier/{job_id}")).await;
    assert!(row.contains(&format!("dossier-download-{job_id}")) && !row.contains("hx-trigger"), "{row}");
    let download = format!("/studies/{STUDY}/dossier/{job_id}/download");
    let z = stat.http.get(stat.url(&download)).send().await.unwrap();
    assert_eq!(z.status(), 200);
    assert_eq!(z.bytes().await.unwrap().to_vec(), std::fs::read(&out).unwrap(), "the same bytes as the CLI's");
    assert_eq!(a1.get(&download).await.status(), 404);
    assert_eq!(stat.get(&format!("/studies/{STUDY}/dossier/999999/download")).await.status(), 404);
}

#[tokio::test]
async fn the_checklist_names_values_that_fail_the_dictionary_and_unresolved_failed_ingests() {
    let app = spawn_app();
    let sid = studies::get_by_code(&mut app.conn(), STUDY).unwrap().id;
    let item = |label: &str| {
        lock::checklist(&mut app.conn(), sid).unwrap().into_iter().find(|c| c.label.starts_with(label)).unwrap()
    };
    assert!(item("No case value fails").ok, "the demo's values validate");
    assert!(item("No failed slide ingest").ok);
    // A stored value the dictionary no longer accepts (written behind the application's back).
    let mut conn = app.conn();
    let (id, display, data): (i32, String, String) = cases::table
        .filter(cases::study_id.eq(sid))
        .select((cases::id, cases::display_id, cases::data))
        .first(&mut conn)
        .unwrap();
    let mut values: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&data).unwrap();
    values.insert("ecog".into(), serde_json::json!("7"));
    diesel::update(cases::table.find(id))
        .set(cases::data.eq(serde_json::to_string(&values).unwrap()))
        .execute(&mut conn)
        .unwrap();
    let c = item("No case value fails");
    assert!(!c.ok && c.detail.contains(&display) && c.detail.contains("ecog = 7"), "{c:?}");
    // A failed ingest row stays open until that case's slide is ingested.
    use evidentia::db::schema::slide_ingests;
    let failed = r#"[{"row":2,"case":"SNUBH-0001","outcome":"failed","slide":null,"message":"not a TIFF"}]"#;
    let ingest = |report: &str, conn: &mut evidentia::db::Conn| {
        diesel::insert_into(slide_ingests::table)
            .values((
                slide_ingests::study_id.eq(sid),
                slide_ingests::actor.eq("manager"),
                slide_ingests::files_total.eq(1),
                slide_ingests::files_ingested.eq(0),
                slide_ingests::files_skipped.eq(0),
                slide_ingests::files_failed.eq(1),
                slide_ingests::report.eq(report),
                slide_ingests::created_at.eq(chrono::Utc::now().naive_utc()),
            ))
            .execute(conn)
            .unwrap();
    };
    ingest(failed, &mut conn);
    let c = item("No failed slide ingest");
    assert!(!c.ok && c.detail.contains("row 2 (SNUBH-0001): not a TIFF"), "{c:?}");
    ingest(r#"[{"row":1,"case":"SNUBH-0001","outcome":"ingested","slide":"SNUBH-0001-S01","message":""}]"#, &mut conn);
    assert!(item("No failed slide ingest").ok, "resolved by a later ingest of that case");
    // The page shows the open item to who may lock.
    drop(conn);
    let manager = app.login("manager").await;
    let (_, page) = manager.get_text(&format!("/studies/{STUDY}")).await;
    assert!(page.contains("No case value fails the current data dictionary"), "{page}");
}

/// Locking closes every open campaign (each audited, the lock event names them); the checklist
/// notes campaigns outside the analysis set with reads outstanding without blocking; a manager's
/// Lock button is disabled while blocking items are open; a locked study offers no import, ingest
/// or reopen; a failed signature keeps the chosen meaning; the page says whose signature is
/// awaited; error pages keep the navigation and say what to do.
#[tokio::test]
async fn locking_closes_campaigns_and_a_locked_study_offers_no_write_action() {
    use crate::annotations::{create_campaign, read_id};
    let app = spawn_app();
    let (campaign, labels) = crate::analyses::read_study(&app).await;
    let manager = app.login("manager").await;
    let other = create_campaign(&manager, &[("name", "R2"), ("readers", "annotator1")]).await;
    let sid = studies::get_by_code(&mut app.conn(), STUDY).unwrap().id;
    let c = lock::checklist(&mut app.conn(), sid)
        .unwrap()
        .into_iter()
        .find(|c| c.label.starts_with("No other open campaign"))
        .unwrap();
    assert!(!c.ok && c.advisory && !c.blocks(), "{c:?}");
    assert!(c.detail.contains("R2 (3 reads outstanding)") && !c.detail.contains("R1"), "{c:?}");
    assert!(c.links.contains(&(format!("campaign {other}"), format!("campaigns/{other}"))), "{c:?}");
    let s = format!("/studies/{STUDY}");
    let (_, page) = manager.get_text(&s).await;
    assert!(page.contains(r#"id="lock-blocked""#) && page.contains("R2 (3 reads outstanding)"), "{page}");
    let admin = app.login("admin").await;
    let (_, page) = admin.get_text(&s).await;
    assert!(!page.contains(r#"id="lock-blocked""#), "an administrator may lock with a reason");
    admin.post(&format!("{s}/status"), &[("to", "locked"), ("reason", "test: checklist waived")]).await;
    let closed: Vec<_> =
        audit_events(&app, "close").into_iter().filter(|e| e.entity == evidentia::audit::Entity::Campaign).collect();
    assert_eq!(closed.len(), 2, "{closed:?}");
    assert!(closed.iter().all(|e| e.reason.as_deref() == Some("closed by the study lock")));
    let lock_event = &audit_events(&app, "lock")[0];
    assert!(lock_event.new_value.as_deref().unwrap().contains(r#""closed_campaigns":["R1","R2"]"#), "{lock_event:?}");

    // Nothing that would fail is offered.
    let (_, page) = manager.get_text(&format!("{s}/cases/import")).await;
    assert!(page.contains(r#"id="cannot-import""#) && !page.contains(r#"id="case-upload""#), "{page}");
    let (_, page) = manager.get_text(&format!("{s}/slides/ingest")).await;
    assert!(page.contains(r#"id="cannot-ingest""#) && !page.contains(r#"id="slide-upload""#), "{page}");
    let a1 = app.login("annotator1").await;
    let (_, page) = a1.get_text(&format!("{s}/reads/{}", read_id(&app, campaign, "annotator1", &labels[0]))).await;
    assert!(!page.contains("Reopen read"), "{page}");
    // An error page keeps the navigation and says what to do.
    let csv = b"subject_id,site\nX-1,SNUBH\n";
    let r = crate::cases::upload(&manager, &format!("{s}/cases/import"), "c.csv", csv, &[]).await;
    assert_eq!(r.status(), 409);
    let page = r.text().await.unwrap();
    assert!(page.contains(r#"class="mainnav""#) && page.contains(r#"id="what-to-do""#), "{page}");

    // Whose signature is awaited; a wrong password keeps the meaning chosen.
    let manager_name = evidentia::auth::users::find_by_username(&mut app.conn(), "manager").unwrap().unwrap().full_name;
    let stat = app.login("statistician").await;
    let (_, page) = stat.get_text(&s).await;
    assert!(page.contains(&format!("manager: {manager_name}")), "{page}");
    let r = stat
        .post(&format!("{s}/sign"), &[("username", "statistician"), ("password", "wrong"), ("meaning", "review")])
        .await;
    let back = location(&r);
    assert!(back.ends_with("?meaning=review"), "{back}");
    let (_, page) = stat.get_text(&back).await;
    assert!(page.contains(r#"<option value="review" selected>"#), "{page}");
}

#[tokio::test]
async fn wrong_signature_passwords_lock_the_account_like_failed_sign_ins() {
    let app = spawn_app();
    let s = format!("/studies/{STUDY}");
    let stat = app.login("statistician").await;
    let user = || evidentia::auth::users::find_by_username(&mut app.conn(), "statistician").unwrap().unwrap();
    // The plan's signature prompt counts too.
    stat.post(
        &format!("{s}/analyses/plan/sign"),
        &[("username", "statistician"), ("password", "guess-0"), ("meaning", "approval")],
    )
    .await;
    assert_eq!(user().failed_logins, 1, "a wrong password on the plan's signature counts");
    let admin = app.login("admin").await;
    admin.post(&format!("{s}/status"), &[("to", "locked"), ("reason", "test: checklist waived")]).await;
    for i in 1..4 {
        stat.post(
            &format!("{s}/sign"),
            &[("username", "statistician"), ("password", format!("guess-{i}").as_str()), ("meaning", "approval")],
        )
        .await;
    }
    assert_eq!(user().failed_logins, 4);
    assert!(user().locked_until.is_none());
    stat.post(&format!("{s}/sign"), &[("username", "statistician"), ("password", "guess-5"), ("meaning", "approval")])
        .await;
    assert!(user().locked_until.is_some(), "the fifth wrong password locks the account");
    // Locked: even the right password signs nothing, and the refusal is audited.
    let r = stat
        .post(&format!("{s}/sign"), &[("username", "statistician"), ("password", PASSWORD), ("meaning", "approval")])
        .await;
    assert_eq!(r.status(), 303);
    assert!(state(&app).signed.is_empty());
    let (_, page) = stat.get_text(&s).await;
    assert!(page.contains("the account is locked after too many wrong passwords"), "{page}");
    let failed = audit_events(&app, "sign_failed");
    assert_eq!(failed.len(), 6, "the plan's failure is audited too");
    assert_eq!(failed.iter().filter(|e| e.new_value.as_deref().unwrap().contains("account locked")).count(), 1);
    assert_eq!(app.client().try_login("statistician", PASSWORD).await.status(), 401, "locked for sign-in as well");
}

#[tokio::test]
async fn the_overview_of_a_locked_study_reuses_its_snapshot_hash_until_the_chain_moves() {
    let app = spawn_app();
    let s = format!("/studies/{STUDY}");
    let admin = app.login("admin").await;
    admin.post(&format!("{s}/status"), &[("to", "locked"), ("reason", "test: checklist waived")]).await;
    let manager = app.login("manager").await;
    let (_, page) = manager.get_text(&s).await;
    assert!(page.contains("awaiting 2 of 2 signatures"), "{page}");
    // A change behind the application's back (no audit event): the overview does not re-hash the
    // study on every view, so it does not see it yet...
    let mut conn = app.conn();
    let id: i32 = cases::table.select(cases::id).first(&mut conn).unwrap();
    diesel::update(cases::table.find(id)).set(cases::status.eq("withdrawn")).execute(&mut conn).unwrap();
    drop(conn);
    let (_, page) = manager.get_text(&s).await;
    assert!(page.contains("awaiting 2 of 2 signatures"), "served from the cache: {page}");
    // ...but signing always re-computes, and any new event of the study's chain (here the
    // refused signature's) makes the overview re-compute too.
    let stat = app.login("statistician").await;
    stat.post(&format!("{s}/sign"), &[("username", "statistician"), ("password", PASSWORD), ("meaning", "approval")])
        .await;
    assert!(state(&app).signed.is_empty(), "nothing signed over changed data");
    stat.post(&format!("{s}/sign"), &[("username", "statistician"), ("password", "wrong"), ("meaning", "approval")])
        .await;
    let (_, page) = manager.get_text(&s).await;
    assert!(page.contains("the data changed after the lock"), "{page}");
}

#[tokio::test]
async fn a_killed_dossier_export_leaves_no_dossier_and_the_next_export_is_identical() {
    let app = spawn_app();
    lock_and_sign(&app, STUDY).await;
    let dir = app.scratch.join("out");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("dossier.zip");
    let export = |to: &std::path::Path| {
        app.command()
            .args(["dossier", "export", "--study", STUDY, "--out"])
            .arg(to)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    // kill -9 part-way (at different moments): never a dossier at the output path.
    for delay_ms in [150u64, 400, 900] {
        let mut child = export(&out);
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        if out.exists() {
            // It finished before the kill: a whole, valid dossier.
            let check = app.cli(&["dossier", "verify", out.to_str().unwrap()], None);
            assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
            std::fs::remove_file(&out).unwrap();
        }
    }
    // The next export removes what the killed ones left behind and matches another export.
    assert!(export(&out).wait().unwrap().success());
    let again = app.scratch.join("again.zip");
    assert!(export(&again).wait().unwrap().success());
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap(), "byte-identical");
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("dossier.zip")], "no partial file left");
    assert!(app.cli(&["audit", "verify"], None).status.success());
}

/// The server checks a signature's password on the hashing threads, holding no database
/// connection, and hands the signing function the result with the hash it was checked against.
/// That result counts only while the hash is still the account's: a password changed in between
/// signs nothing and counts as a wrong password.
#[tokio::test]
async fn a_password_checked_before_the_account_changed_it_signs_nothing() {
    use evidentia::auth::esign::{Password, Signing};
    let app = spawn_app();
    let admin = app.login("admin").await;
    admin.post(&format!("/studies/{STUDY}/status"), &[("to", "locked"), ("reason", "test: checklist waived")]).await;
    let mut conn = app.conn();
    let stat = evidentia::auth::users::find_by_username(&mut conn, "statistician").unwrap().unwrap();
    let actor = evidentia::auth::Actor::from_user(&stat);
    let access = evidentia::auth::permissions::study_access(&mut conn, &actor, STUDY).unwrap();
    let stale = Password::Checked { ok: true, hash: "$argon2id$v=19$m=19456,t=2,p=1$an-older-hash".into() };
    let e = lock::sign(&mut conn, &actor, &access, Signing { password: stale, meaning: "approval" }).unwrap_err();
    assert!(e.to_string().contains("the password is not correct"), "{e}");
    assert!(state(&app).signed.is_empty());
    let failed = evidentia::auth::users::find_by_username(&mut conn, "statistician").unwrap().unwrap();
    assert_eq!(failed.failed_logins, 1, "counted like a wrong password");
    let current = Password::Checked { ok: true, hash: stat.password_hash.clone() };
    lock::sign(&mut conn, &actor, &access, Signing { password: current, meaning: "approval" }).unwrap();
    assert_eq!(state(&app).signed.len(), 1);
    drop(conn);
    drop(admin);
}

/// Locks recorded with the first form of the snapshot hash (SQLite's `json_object` text) move
/// once, at start, to the engine-independent one: only when the old hash, recomputed, still
/// matches (the data is what was signed); the old hash stays beside the new for the signatures
/// made over it; both, with the rows they cover, are in the audit trail. A lock whose data no
/// longer matches is not re-hashed and stays invalid.
#[tokio::test]
async fn a_first_form_lock_is_re_hashed_once_and_its_signatures_stay_valid() {
    use evidentia::db::schema::study_locks;
    use evidentia::studies::snapshot;
    if crate::helpers::postgres::skip_sqlite_only("first-form (SQLite json_object) lock snapshots") {
        return;
    }
    let app = spawn_app();
    lock_and_sign(&app, STUDY).await;
    let mut conn = app.conn();
    let sid = studies::get_by_code(&mut conn, STUDY).unwrap().id;
    let (v2, rows) = snapshot::compute(&mut conn, sid).unwrap();
    assert_eq!(state(&app).lock.snapshot_sha256, v2, "new locks record the new form");
    assert_eq!(state(&app).lock.snapshot_version, snapshot::VERSION);
    assert_eq!(snapshot::rehash_legacy_locks(&mut conn).unwrap(), 0, "nothing to do");

    // The lock and signatures as the previous release wrote them.
    let (v1, _) = snapshot::legacy(&mut conn, sid).unwrap();
    assert_ne!(v1, v2);
    let lock_id = state(&app).lock.id;
    let as_first_form = |conn: &mut evidentia::db::Conn, hash: &str| {
        diesel::update(study_locks::table.find(lock_id))
            .set((
                study_locks::snapshot_sha256.eq(hash),
                study_locks::snapshot_version.eq(1),
                study_locks::legacy_sha256.eq(None::<String>),
            ))
            .execute(conn)
            .unwrap();
        diesel::update(study_signatures::table.filter(study_signatures::lock_id.eq(lock_id)))
            .set(study_signatures::snapshot_sha256.eq(hash))
            .execute(conn)
            .unwrap();
    };
    as_first_form(&mut conn, &v1);
    assert!(!state(&app).data_unchanged, "read with the new form, the old hash does not match");

    assert_eq!(snapshot::rehash_legacy_locks(&mut conn).unwrap(), 1);
    let st = state(&app);
    assert_eq!((st.lock.snapshot_sha256.as_str(), st.lock.legacy_sha256.as_deref()), (v2.as_str(), Some(v1.as_str())));
    assert!(st.data_unchanged && st.complete(), "the signatures over the old hash stay valid: {}", st.label());
    assert!(st.signed.iter().all(|s| s.snapshot_sha256 == v1), "signatures are never rewritten");
    let ev = audit_events(&app, "rehash_lock");
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].actor, "system");
    let after: serde_json::Value = serde_json::from_str(ev[0].new_value.as_deref().unwrap()).unwrap();
    assert_eq!(after["snapshot_sha256"], v2.as_str());
    assert_eq!(after["legacy_sha256_recomputed"], v1.as_str());
    assert_eq!(after["rows"], serde_json::json!(rows));
    // The same rows, but for the tables added after the first form (hashed where they hold rows).
    let mut rows_now = after["rows"].as_object().unwrap().clone();
    for later in ["study_designs", "case_records"] {
        rows_now.remove(later);
    }
    assert_eq!(serde_json::Value::Object(rows_now), after["rows_legacy"], "the same rows");
    assert_eq!(snapshot::rehash_legacy_locks(&mut conn).unwrap(), 0, "once");
    let check = app.cli(&["audit", "verify"], None);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));

    // The dossier names both hashes, and its verification accepts signatures over either.
    let out = app.scratch.join("dossier.zip");
    let export = app.cli(&["dossier", "export", "--study", STUDY, "--out", out.to_str().unwrap()], None);
    assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
    let check = app.cli(&["dossier", "verify", out.to_str().unwrap()], None);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));

    // A first-form lock whose data no longer matches is left as it is (its signatures invalid, as
    // they were), in the first form, so a later start tries again; nothing is recorded as done.
    as_first_form(&mut conn, &"0".repeat(64));
    for _ in 0..2 {
        assert_eq!(snapshot::rehash_legacy_locks(&mut conn).unwrap(), 0);
        let st = state(&app);
        assert_eq!((st.lock.snapshot_sha256.clone(), st.lock.snapshot_version), ("0".repeat(64), 1));
        assert!(!st.data_unchanged, "its signatures stay invalid");
        assert_eq!(audit_events(&app, "rehash_lock").len(), 1, "no event claims a re-hash");
    }
}
