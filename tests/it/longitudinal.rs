//! Longitudinal studies: a REDCap project's design (events, instrument designation, repeating
//! instruments) and its longitudinal export (arms, events, repeating instruments, checkboxes, data
//! access groups) import as they are; one pseudonym and one date shift per subject across every
//! event; the event grid and a record's page; REDCap's flat export, which imports again; bad
//! rows refused naming row and column with nothing stored; every record audited; annotators see
//! none of it.

use diesel::prelude::*;

use crate::cases::upload;
use crate::helpers::*;
use evidentia::auth::Actor;
use evidentia::studies::{self, sites, StudyInput};

const DICTIONARY: &str = "Variable / Field Name,Form Name,Field Type,Field Label,\"Choices, Calculations, OR Slider Labels\",Text Validation Type OR Show Slider Number,Identifier?,Required Field?\n\
record_id,enrolment,text,Subject,,,,y\n\
patient_name,enrolment,text,Patient name,,,y,\n\
enrol_date,enrolment,text,Enrolment date,,date_ymd,,y\n\
sex,enrolment,radio,Sex,\"1, Male | 2, Female\",,,y\n\
ecog,baseline,radio,ECOG,\"0, 0 | 1, 1 | 2, 2\",,,\n\
tps,baseline,text,PD-L1 TPS,,number,,\n\
visit_date,followup,text,Visit date,,date_ymd,,y\n\
progression,followup,yesno,Progression,,,,\n\
death,followup,yesno,Death,,,,\n\
notes,followup,notes,Notes,,,,\n\
ae_term,ae,text,Adverse event,,,,\n\
ae_grade,ae,radio,Grade,\"1, 1 | 2, 2 | 3, 3\",,,\n\
ae_type,ae,checkbox,Type,\"1, Rash | 2, Fatigue | 3, Diarrhoea\",,,\n";

const EVENTS: &str = "event_name,arm_num,day_offset,unique_event_name\n\
Baseline,1,0,baseline_arm_1\nFollow-up 1,1,90,followup_1_arm_1\nFollow-up 2,1,180,followup_2_arm_1\n";
const MAPPING: &str = "arm_num,unique_event_name,form\n1,baseline_arm_1,enrolment\n1,baseline_arm_1,baseline\n\
1,followup_1_arm_1,followup\n1,followup_1_arm_1,ae\n1,followup_2_arm_1,followup\n1,followup_2_arm_1,ae\n";
const REPEATING: &str =
    "event_name,form_name,custom_form_label\nfollowup_1_arm_1,ae,[ae_term]\nfollowup_2_arm_1,ae,[ae_term]\n";

const HEADER: &str = "record_id,redcap_event_name,redcap_repeat_instrument,redcap_repeat_instance,redcap_data_access_group,\
patient_name,enrol_date,sex,enrolment_complete,ecog,tps,baseline_complete,visit_date,progression,death,notes,followup_complete,\
ae_term,ae_grade,ae_type___1,ae_type___2,ae_type___3,ae_complete\n";

/// REDCap's longitudinal export: two subjects at two sites (data access groups), baseline and
/// follow-ups, a repeating adverse-event form with a checkbox, identifiers in the name column and
/// inside a note.
fn export() -> String {
    HEADER.to_string()
        + "LX-1001,baseline_arm_1,,,snubh,Park Jiwoo,2024-01-10,2,2,1,45,2,,,,,,,,0,0,0,\n\
LX-1001,followup_1_arm_1,,,snubh,,,,,,,,2024-04-10,0,0,Seen with Park Jiwoo at 010-9876-5432,2,,,0,0,0,\n\
LX-1001,followup_1_arm_1,ae,1,snubh,,,,,,,,,,,,,Rash,1,1,0,0,2\n\
LX-1001,followup_1_arm_1,ae,2,snubh,,,,,,,,,,,,,Fatigue,2,0,1,1,1\n\
LX-1001,followup_2_arm_1,,,snubh,,,,,,,,2024-07-12,1,0,,1,,,0,0,0,\n\
LX-1002,baseline_arm_1,,,smc,Yoon Seoah,2024-02-01,1,2,0,5,2,,,,,,,,0,0,0,\n\
LX-1002,followup_1_arm_1,,,smc,,,,,,,,2024-05-03,1,1,,2,,,0,0,0,\n"
}

/// What the export planted that must never be stored, shown or exported.
const PLANTED: [&str; 9] = [
    "Park Jiwoo",
    "Yoon Seoah",
    "LX-1001",
    "LX-1002",
    "010-9876-5432",
    "2024-01-10",
    "2024-04-10",
    "2024-02-01",
    "2024-05-03",
];

fn study(app: &TestApp, code: &str) {
    let mut conn = app.conn();
    let op = Actor::cli_operator();
    let input = StudyInput { code: code.into(), title: "Longitudinal".into(), ..Default::default() };
    studies::create(&mut conn, &op, &input).unwrap();
    let access = evidentia::auth::permissions::study_access(&mut conn, &op, code).unwrap();
    for s in ["SNUBH", "SMC"] {
        let s = sites::SiteInput { code: s.into(), name: s.into(), ..Default::default() };
        sites::add(&mut conn, &op, &access, &s).unwrap();
    }
    for (u, r) in [("manager", "manager"), ("annotator1", "annotator"), ("monitor", "monitor")] {
        studies::members::add(&mut conn, &op, &access, u, r).unwrap();
    }
}

/// Uploads the design's files to the events page.
async fn design(c: &Client, code: &str, files: &[(&str, &str)]) -> reqwest::Response {
    let mut form = reqwest::multipart::Form::new();
    for (field, text) in files {
        form = form.part(
            field.to_string(),
            reqwest::multipart::Part::bytes(text.as_bytes().to_vec()).file_name(format!("{field}.csv")),
        );
    }
    c.http.post(c.url(&format!("/studies/{code}/events?csrf_token={}", c.csrf))).multipart(form).send().await.unwrap()
}

/// Imports a file through the preview; the preview page when it is refused.
async fn import(c: &Client, code: &str, csv: &str) -> Result<String, String> {
    let r = upload(c, &format!("/studies/{code}/cases/import"), "export.csv", csv.as_bytes(), &[]).await;
    let page = r.text().await.unwrap();
    let k = "/cases/import/";
    let Some(start) =
        page.find(k).map(|s| s + k.len()).filter(|s| page[*s..].len() > 64 && !page[*s..].starts_with('"'))
    else {
        return Err(page);
    };
    let token = page[start..start + 64].to_string();
    if !token.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(page);
    }
    let r = c.post(&format!("/studies/{code}/cases/import/{token}/confirm"), &[]).await;
    assert_eq!(r.status(), 303);
    Ok(c.get_text(&location(&r)).await.1)
}

async fn set_up(app: &TestApp, code: &str) -> Client {
    set_up_with(app, code, DICTIONARY).await
}

async fn set_up_with(app: &TestApp, code: &str, dictionary: &str) -> Client {
    study(app, code);
    let m = app.login("manager").await;
    let r = upload(&m, &format!("/studies/{code}/dictionary/import"), "dict.csv", dictionary.as_bytes(), &[]).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let r = design(&m, code, &[("events", EVENTS), ("mapping", MAPPING), ("repeating", REPEATING)]).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    m
}

fn records(app: &TestApp, code: &str) -> Vec<(String, String, String, i32, String)> {
    use evidentia::db::schema::{case_records, cases, studies as st};
    let mut conn = app.conn();
    let sid: i32 = st::table.filter(st::code.eq(code)).select(st::id).first(&mut conn).unwrap();
    let mut rows: Vec<(String, String, String, i32, String)> = case_records::table
        .inner_join(cases::table)
        .filter(case_records::study_id.eq(sid))
        .select((
            cases::display_id,
            case_records::event,
            case_records::instrument,
            case_records::instance,
            case_records::data,
        ))
        .load(&mut conn)
        .unwrap();
    rows.sort();
    rows
}

fn days(a: &str, b: &str) -> i64 {
    let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    (d(b) - d(a)).num_days()
}

fn csv_rows(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let header = r.headers().unwrap().iter().map(str::to_string).collect();
    (header, r.records().map(|r| r.unwrap().iter().map(str::to_string).collect()).collect())
}

#[tokio::test]
async fn a_redcap_longitudinal_export_imports_de_identified_per_subject_and_round_trips() {
    let app = spawn_app();
    let m = set_up(&app, "LONG-01").await;
    let design_events = audit_events(&app, "update")
        .into_iter()
        .filter(|e| e.chain == "study:LONG-01" && e.entity == evidentia::audit::Entity::StudyDesign)
        .count();
    assert_eq!(design_events, 1, "the design is audited");
    let (_, page) = m.get_text("/studies/LONG-01/events").await;
    assert!(page.contains("followup_2_arm_1") && page.contains("repeats"), "{page}");

    let cases = import(&m, "LONG-01", &export()).await.unwrap_or_else(|p| panic!("refused: {p}"));
    assert!(cases.contains("SNUBH-0001") && cases.contains("SMC-0001"), "{cases}");

    // One case per subject (the data access group is its site); the base record's values are the
    // case's, the other records are kept by event, instrument and instance.
    let recs = records(&app, "LONG-01");
    let keys: Vec<(&str, &str, &str, i32)> =
        recs.iter().map(|(c, e, i, n, _)| (c.as_str(), e.as_str(), i.as_str(), *n)).collect();
    assert_eq!(
        keys,
        vec![
            ("SMC-0001", "followup_1_arm_1", "", 0),
            ("SNUBH-0001", "followup_1_arm_1", "", 0),
            ("SNUBH-0001", "followup_1_arm_1", "ae", 1),
            ("SNUBH-0001", "followup_1_arm_1", "ae", 2),
            ("SNUBH-0001", "followup_2_arm_1", "", 0),
        ]
    );
    let ae2: serde_json::Value = serde_json::from_str(&recs[3].4).unwrap();
    assert_eq!(ae2["ae_type"], serde_json::json!(["2", "3"]), "the checkbox's ticked options");

    // One date shift per subject, whichever event the date is on: the intervals are kept.
    let mut conn = app.conn();
    let sid = studies::get_by_code(&mut conn, "LONG-01").unwrap().id;
    let snubh = evidentia::cases::get(&mut conn, sid, "SNUBH-0001").unwrap();
    let smc = evidentia::cases::get(&mut conn, sid, "SMC-0001").unwrap();
    let date = |v: &serde_json::Value| v.as_str().unwrap().to_string();
    let enrol = date(snubh.value("enrol_date").unwrap());
    let visit1: serde_json::Value = serde_json::from_str(&recs[1].4).unwrap();
    let visit2: serde_json::Value = serde_json::from_str(&recs[4].4).unwrap();
    assert_ne!(enrol, "2024-01-10", "dates are shifted");
    assert_eq!(days(&enrol, &date(&visit1["visit_date"])), days("2024-01-10", "2024-04-10"));
    assert_eq!(days(&enrol, &date(&visit2["visit_date"])), days("2024-01-10", "2024-07-12"));
    let smc_visit: serde_json::Value = serde_json::from_str(&recs[0].4).unwrap();
    assert_eq!(
        days(&date(smc.value("enrol_date").unwrap()), &date(&smc_visit["visit_date"])),
        days("2024-02-01", "2024-05-03")
    );
    assert!(snubh.value("patient_name").is_none(), "an identifier field is dropped");
    let notes = visit1["notes"].as_str().unwrap();
    assert!(
        !notes.contains("Park") && !notes.contains("9876"),
        "names and phone numbers are scrubbed from a later event's notes: {notes}"
    );

    // Every record's creation is audited with the import as its reason.
    let created: Vec<_> = audit_events(&app, "create")
        .into_iter()
        .filter(|e| e.chain == "study:LONG-01" && e.entity == evidentia::audit::Entity::CaseRecord)
        .collect();
    assert_eq!(created.len(), 5);
    assert!(created.iter().any(|e| e.entity_id == "SNUBH-0001/followup_1_arm_1:ae#2"), "{created:?}");
    assert!(created.iter().all(|e| e.reason.as_deref().is_some_and(|r| r.starts_with("import "))));

    // The record home page: every form per event with its status; a record's own page.
    let (_, page) = m.get_text("/studies/LONG-01/cases/SNUBH-0001").await;
    assert!(page.contains("id=\"event-grid\""), "{page}");
    assert!(page.contains("#2 Unverified"), "the second adverse event's status: {page}");
    assert!(page.contains("Complete · 3 values"), "enrolment at baseline: {page}");
    let (status, record) =
        m.get_text("/studies/LONG-01/cases/SNUBH-0001/record?event=followup_1_arm_1&instrument=ae&instance=2").await;
    assert_eq!(status, 200);
    assert!(record.contains("Fatigue") && record.contains("Diarrhoea"), "{record}");
    let (status, _) =
        m.get_text("/studies/LONG-01/cases/SNUBH-0001/record?event=followup_2_arm_1&instrument=ae&instance=7").await;
    assert_eq!(status, 200, "a record not entered yet is entered on its page");
    let monitor = app.login("monitor").await;
    let (status, _) = monitor
        .get_text("/studies/LONG-01/cases/SNUBH-0001/record?event=followup_2_arm_1&instrument=ae&instance=7")
        .await;
    assert_eq!(status, 404, "a record the subject does not have, to one who does not enter data");

    // REDCap's flat export: REDCap's columns, one row per record, in REDCap's order.
    let (status, flat) = m.get_text("/studies/LONG-01/records.csv").await;
    assert_eq!(status, 200);
    let (header, rows) = csv_rows(&flat);
    let expected: Vec<String> = HEADER.trim().split(',').filter(|c| *c != "patient_name").map(String::from).collect();
    assert_eq!(header, expected, "the identifier column was never stored, so it is not exported");
    let shape: Vec<(String, String, String, String, String)> =
        rows.iter().map(|r| (r[0].clone(), r[1].clone(), r[2].clone(), r[3].clone(), r[4].clone())).collect();
    let row = |a: &str, b: &str, c: &str, d: &str, e: &str| (a.into(), b.into(), c.into(), d.into(), e.into());
    assert_eq!(
        shape,
        vec![
            row("SMC-0001", "baseline_arm_1", "", "", "smc"),
            row("SMC-0001", "followup_1_arm_1", "", "", "smc"),
            row("SNUBH-0001", "baseline_arm_1", "", "", "snubh"),
            row("SNUBH-0001", "followup_1_arm_1", "", "", "snubh"),
            row("SNUBH-0001", "followup_1_arm_1", "ae", "1", "snubh"),
            row("SNUBH-0001", "followup_1_arm_1", "ae", "2", "snubh"),
            row("SNUBH-0001", "followup_2_arm_1", "", "", "snubh"),
        ]
    );
    // Values other than the de-identified ones are those of the original file, row for row.
    let (oh, orig) = csv_rows(&export());
    let by_subject = |id: &str| if id == "LX-1001" { "SNUBH-0001" } else { "SMC-0001" };
    for o in &orig {
        let e = rows
            .iter()
            .find(|r| r[0] == by_subject(&o[0]) && r[1] == o[1] && r[2] == o[2] && r[3] == o[3])
            .unwrap_or_else(|| panic!("no exported row for {o:?}"));
        for (i, col) in oh.iter().enumerate() {
            let Some(j) = header.iter().position(|h| h == col) else { continue };
            if ["record_id", "enrol_date", "visit_date", "notes"].contains(&col.as_str()) {
                continue;
            }
            let (want, got) = (o[i].as_str(), e[j].as_str());
            // REDCap writes 0 for a checkbox on a form the row does not hold; Evidentia leaves it blank.
            let want = if col.starts_with("ae_type___") && e[2].is_empty() && want == "0" { "" } else { want };
            assert_eq!(got, want, "{col} of {o:?}");
        }
    }
    // A subject's dates are all shifted (checked above: the first is not the true one, and the
    // intervals are kept), and a shifted date may by chance be another planted true date (a shift
    // of −91 days takes 2024-04-10 to 2024-01-10): such a date is the shifted one, not a leak.
    let dates: Vec<usize> =
        ["enrol_date", "visit_date"].iter().map(|c| header.iter().position(|h| h == c).unwrap()).collect();
    let shifted: Vec<&str> = rows.iter().flat_map(|r| dates.iter().map(|i| r[*i].as_str())).collect();
    let planted: Vec<&str> = PLANTED.into_iter().filter(|p| !shifted.contains(p)).collect();
    for p in &planted {
        assert!(!flat.contains(p), "{p} in the export");
        assert!(!page.contains(p), "{p} on the case page");
    }
    // Nothing planted in the database either (records, cases, audit trail).
    let stored: Vec<String> = evidentia::db::schema::case_records::table
        .filter(evidentia::db::schema::case_records::study_id.eq(sid))
        .select(evidentia::db::schema::case_records::data)
        .load(&mut conn)
        .unwrap();
    let trail: Vec<Option<String>> = evidentia::db::schema::audit_events::table
        .filter(evidentia::db::schema::audit_events::chain.eq("study:LONG-01"))
        .select(evidentia::db::schema::audit_events::new_value)
        .load(&mut conn)
        .unwrap();
    let all = format!("{stored:?}{trail:?}{:?}{:?}", snubh.values(), smc.values());
    for p in &planted {
        assert!(!all.contains(p), "{p} stored");
    }

    // The flat export imports again, unchanged, into a study with the same dictionary and design
    // (REDCap's own import would read it the same way): the same records come back.
    let m2 = set_up(&app, "LONG-02").await;
    import(&m2, "LONG-02", &flat).await.unwrap_or_else(|p| panic!("the flat export was refused: {p}"));
    let (_, flat2) = m2.get_text("/studies/LONG-02/records.csv").await;
    let (header2, rows2) = csv_rows(&flat2);
    assert_eq!(header2, header);
    assert_eq!(rows2.len(), rows.len());
    for (a, b) in rows.iter().zip(&rows2) {
        for (i, col) in header.iter().enumerate() {
            if !col.ends_with("_date") {
                assert_eq!(a[i], b[i], "{col}");
            }
        }
    }

    // The design's files download as REDCap writes them, and read back as the same design.
    let (_, events_csv) = m.get_text("/studies/LONG-01/events/events.csv").await;
    assert!(events_csv.starts_with("event_name,arm_num,day_offset,unique_event_name"), "{events_csv}");
    let (_, mapping_csv) = m.get_text("/studies/LONG-01/events/mapping.csv").await;
    assert_eq!(mapping_csv.replace("\r\n", "\n"), MAPPING);
}

#[tokio::test]
async fn a_re_import_updates_a_later_events_record_audited() {
    let app = spawn_app();
    let m = set_up(&app, "LONG-03").await;
    import(&m, "LONG-03", &export()).await.unwrap();
    // The site corrects the second visit: progression no, form complete (the visit date is the
    // one it had: shifted again by the subject's shift, it is unchanged).
    let fix = HEADER.to_string() + "LX-1001,followup_2_arm_1,,,snubh,,,,,,,,2024-07-12,0,,,2,,,,,,\n";
    import(&m, "LONG-03", &fix).await.unwrap_or_else(|p| panic!("{p}"));
    let recs = records(&app, "LONG-03");
    let v2: serde_json::Value = serde_json::from_str(&recs[4].4).unwrap();
    assert_eq!(v2["progression"], serde_json::json!("0"));
    assert!(v2["visit_date"].is_string(), "fields the row leaves blank are kept");
    let updated: Vec<_> = audit_events(&app, "update")
        .into_iter()
        .filter(|e| e.chain == "study:LONG-03" && e.entity == evidentia::audit::Entity::CaseRecord)
        .collect();
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0].entity_id, "SNUBH-0001/followup_2_arm_1");
    let before = updated[0].old_value.as_deref().unwrap();
    let after = updated[0].new_value.as_deref().unwrap();
    assert!(before.contains("\"progression\":\"1\"") && before.contains("\"followup_complete\":1"), "{before}");
    assert!(after.contains("\"progression\":\"0\"") && after.contains("\"followup_complete\":2"), "{after}");
    // The same file again changes nothing.
    let page = import(&m, "LONG-03", &fix).await.unwrap();
    assert!(page.contains("1 unchanged") || page.contains("unchanged: 1") || page.contains("0 updated"), "{page}");
    assert_eq!(
        audit_events(&app, "update").into_iter().filter(|e| e.entity == evidentia::audit::Entity::CaseRecord).count(),
        1
    );
}

#[tokio::test]
async fn bad_longitudinal_rows_are_refused_naming_row_and_column_with_nothing_stored() {
    let app = spawn_app();
    let m = set_up(&app, "LONG-04").await;
    let bad = HEADER.to_string()
        + "LX-1,baseline_arm_1,,,snubh,,2024-01-10,2,2,,,,,,,,,,,,,,\n\
LX-1,week_4_arm_1,,,snubh,,,,,,,,,,,,,,,,,,\n\
LX-1,followup_1_arm_1,ae,,snubh,,,,,,,,,,,,,Rash,1,1,0,0,\n\
LX-1,baseline_arm_1,,,snubh,,,,,,,,2024-03-01,,,,,,,,,,\n\
LX-1,followup_1_arm_1,,,snubh,,,,,,,,2024-04-01,0,0,,3,,,,,,\n\
LX-1,followup_2_arm_1,,,snubh,,,,,,,,2024-05-01,0,0,,,Rash,,,,,\n\
LX-2,followup_1_arm_1,,,nowhere,,,,,,,,2024-04-01,0,0,,,,,,,,\n";
    let page = import(&m, "LONG-04", &bad).await.expect_err("refused");
    for expected in [
        "row 2, column redcap_event_name: &#39;week_4_arm_1&#39; is not an event of the study",
        "row 3, column redcap_repeat_instance: a repeating instrument&#39;s row needs its instance",
        "row 4, column record_id: duplicate record: Baseline of this subject is also row 1",
        "row 5, column followup_complete: a form status is 0 (incomplete), 1 (unverified) or 2 (complete)",
        "row 6, column ae_term: ae_term is on form ae, which repeats: give it on a row whose redcap_repeat_instrument is ae",
        "row 7, column site: NOWHERE is not an active site of this study",
    ] {
        assert!(page.contains(expected), "{expected} in {page}");
    }
    assert!(records(&app, "LONG-04").is_empty());
    let mut conn = app.conn();
    let sid = studies::get_by_code(&mut conn, "LONG-04").unwrap().id;
    assert_eq!(evidentia::cases::count(&mut conn, sid).unwrap(), 0);

    // A design that would orphan stored records is refused; so is a bad file, naming where.
    import(&m, "LONG-04", &export()).await.unwrap();
    let two_events = "arm_num,unique_event_name,form\n1,baseline_arm_1,enrolment\n1,baseline_arm_1,baseline\n1,followup_1_arm_1,followup\n1,followup_1_arm_1,ae\n";
    let events_without_2 = "event_name,arm_num,day_offset,unique_event_name\nBaseline,1,0,baseline_arm_1\nFollow-up 1,1,90,followup_1_arm_1\n";
    let repeating_1 = "event_name,form_name,custom_form_label\nfollowup_1_arm_1,ae,\n";
    let r = design(&m, "LONG-04", &[("events", events_without_2), ("mapping", two_events), ("repeating", repeating_1)])
        .await;
    let page = r.text().await.unwrap();
    assert!(
        page.contains("values are stored on forms the new design would not collect there (followup on Follow-up 2)"),
        "{page}"
    );
    // Values stored on a form the new designation would no longer collect at that event.
    let without_followup_2 = MAPPING.replace("1,followup_2_arm_1,followup\n", "");
    let r = design(&m, "LONG-04", &[("mapping", &without_followup_2)]).await;
    let page = r.text().await.unwrap();
    assert!(
        page.contains("values are stored on forms the new design would not collect there (followup on Follow-up 2)"),
        "{page}"
    );
    let r = design(&m, "LONG-04", &[("mapping", "arm_num,unique_event_name,form\n1,baseline_arm_1,labs\n")]).await;
    let page = r.text().await.unwrap();
    assert!(page.contains("mapping: row 1, column form: &#39;labs&#39; is not a form of the dictionary"), "{page}");
    let (_, events_page) = m.get_text("/studies/LONG-04/events").await;
    assert!(events_page.contains("followup_2_arm_1"), "the design is unchanged");
}

#[tokio::test]
async fn annotators_see_no_event_record_or_flat_export() {
    let app = spawn_app();
    let m = set_up(&app, "LONG-05").await;
    import(&m, "LONG-05", &export()).await.unwrap();
    let a = app.login("annotator1").await;
    for path in [
        "/studies/LONG-05/events",
        "/studies/LONG-05/events/events.csv",
        "/studies/LONG-05/records.csv",
        "/studies/LONG-05/cases/SNUBH-0001/record?event=followup_1_arm_1&instrument=&instance=0",
    ] {
        assert_eq!(a.get_text(path).await.0, 404, "{path}");
    }
    let r = design(&a, "LONG-05", &[("events", EVENTS)]).await;
    assert_eq!(r.status(), 403, "as every change to the study's set-up");
    // A monitor reads the design but cannot change it.
    let mon = app.login("monitor").await;
    assert_eq!(mon.get_text("/studies/LONG-05/records.csv").await.0, 200);
    let r = design(&mon, "LONG-05", &[("events", EVENTS)]).await;
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn logic_names_the_studys_events_in_the_dictionary_and_in_rules() {
    let app = spawn_app();
    let m = set_up(&app, "LONG-06").await;
    import(&m, "LONG-06", &export()).await.unwrap();

    // A rule across events: progression at the second follow-up of a subject with a high TPS,
    // and a grade-2 second adverse event at the first follow-up (an instance named).
    for (name, logic) in [
        ("Progression at FU2, TPS over 40", "[followup_2_arm_1][progression] = '1' and [tps] > 40"),
        ("Second AE of grade 2", "[followup_1_arm_1][ae_grade][2] = '2'"),
    ] {
        let r = m
            .post("/studies/LONG-06/quality/rules", &[("name", name), ("logic", logic), ("severity", "warning")])
            .await;
        assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    }
    let r = m
        .post(
            "/studies/LONG-06/quality/rules",
            &[("name", "x"), ("logic", "[week_9_arm_1][death] = '1'"), ("severity", "error")],
        )
        .await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("the study has no event &#39;week_9_arm_1&#39;"));
    let (_, csv) = m.get_text("/studies/LONG-06/quality.csv?status=open").await;
    let (header, rows) = csv_rows(&csv);
    let (rule, subject) =
        (header.iter().position(|h| h == "rule").unwrap(), header.iter().position(|h| h == "subject").unwrap());
    let mut found: Vec<(String, String)> = rows.iter().map(|r| (r[rule].clone(), r[subject].clone())).collect();
    found.sort();
    assert_eq!(found, vec![("R1".into(), "SNUBH-0001".into()), ("R2".into(), "SNUBH-0001".into())], "{csv}");

    // The dictionary's logic may name the study's events, and no other.
    let dict = |logic: &str| {
        let mut lines = DICTIONARY.lines();
        let mut out = format!("{},Branching Logic (Show field only if...)\n", lines.next().unwrap_or_default());
        for l in lines {
            out.push_str(&format!("{l},\n"));
        }
        out + &format!("death_note,followup,notes,Cause of death,,,,,\"{logic}\"\n")
    };
    let r = upload(
        &m,
        "/studies/LONG-06/dictionary/import",
        "d.csv",
        dict("[followup_9_arm_1][death] = '1'").as_bytes(),
        &[],
    )
    .await;
    let page = r.text().await.unwrap();
    assert!(page.contains("the study has no event &#39;followup_9_arm_1&#39;"), "{page}");
    let r = upload(
        &m,
        "/studies/LONG-06/dictionary/import",
        "d.csv",
        dict("[followup_1_arm_1][death] = '1'").as_bytes(),
        &[],
    )
    .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn a_subject_whose_later_event_comes_first_in_the_file_is_created_from_its_first_event() {
    let app = spawn_app();
    let m = set_up(&app, "LONG-07").await;
    let file = HEADER.to_string()
        + "LX-7,followup_1_arm_1,,,smc,,,,,,,,2024-04-10,0,0,,2,,,,,,\n\
LX-7,baseline_arm_1,,,,,2024-01-10,2,2,1,45,2,,,,,,,,,,,\n";
    // The second row has no data access group: the site chosen for the file.
    let r = upload(&m, "/studies/LONG-07/cases/import", "export.csv", file.as_bytes(), &[("site", "SMC")]).await;
    let page = r.text().await.unwrap();
    let k = "/cases/import/";
    let start = page.find(k).map(|s| s + k.len()).unwrap_or_else(|| panic!("refused: {page}"));
    let token = page[start..start + 64].to_string();
    assert!(page.contains("2 records of 1 subjects"), "{page}");
    let r = m.post(&format!("/studies/LONG-07/cases/import/{token}/confirm"), &[]).await;
    assert_eq!(r.status(), 303);
    let created: Vec<_> = audit_events(&app, "create")
        .into_iter()
        .filter(|e| e.chain == "study:LONG-07" && e.entity == evidentia::audit::Entity::Case)
        .collect();
    assert_eq!(created.len(), 1);
    assert!(created[0].new_value.as_deref().unwrap().contains("\"tps\":45"), "created with its first event's values");
    assert!(audit_events(&app, "update")
        .iter()
        .all(|e| e.chain != "study:LONG-07" || e.entity != evidentia::audit::Entity::Case));
    let (_, page) = m.get_text("/studies/LONG-07/cases/SMC-0001").await;
    assert!(page.contains("followup_1_arm_1: created"), "the record's creation in the case history: {page}");
}

/// Site staff (REDCap's data access groups): a coordinator of SNUBH sees, exports, imports and
/// answers queries for SNUBH's subjects only; SMC's subjects, records and queries are 404 to
/// them on the pages, in every export and through the API, and an import touching SMC is
/// refused whole, naming the row, with nothing changed.
#[tokio::test]
async fn site_staff_see_enter_import_and_answer_for_their_own_site_only() {
    let app = spawn_app();
    let code = "LONG-S1";
    let m = set_up(&app, code).await;
    import(&m, code, &export()).await.unwrap();
    {
        let mut conn = app.conn();
        let op = Actor::cli_operator();
        let access = evidentia::auth::permissions::study_access(&mut conn, &op, code).unwrap();
        let sites = ["SNUBH".to_string()];
        studies::members::add_to_sites(&mut conn, &op, &access, "coordinator-snubh", "site", &sites).unwrap();
    }
    // The monitor asks about one subject of each site.
    let monitor = app.login("monitor").await;
    let mut ids = Vec::new();
    for case in ["SNUBH-0001", "SMC-0001"] {
        let ask =
            [("case", case), ("field", "ecog"), ("message", "ECOG per the clinic note?"), ("requires_change", "1")];
        let r = monitor.post(&format!("/studies/{code}/queries"), &ask).await;
        assert_eq!(r.status(), 303);
        ids.push(location(&r).rsplit('/').next().unwrap().to_string());
    }
    let site = app.login("coordinator-snubh").await;
    // Lists and exports hold SNUBH's subjects only.
    for path in ["cases", "cases.csv", "records.csv", "queries", "queries.csv", "quality.csv", "verification.csv"] {
        let (status, text) = site.get_text(&format!("/studies/{code}/{path}")).await;
        assert_eq!(status, 200, "{path}");
        assert!(!text.contains("SMC-0001") && !text.contains(",smc,"), "{path} shows another site's subject");
    }
    let (_, list) = site.get_text(&format!("/studies/{code}/cases")).await;
    assert!(list.contains("SNUBH-0001"));
    let (_, records) = site.get_text(&format!("/studies/{code}/records.csv")).await;
    assert_eq!(csv_rows(&records).1.len(), 5, "SNUBH's five records");
    // Another site's subject, record and query: 404, and so are the actions on them.
    for path in [
        "cases/SMC-0001".to_string(),
        "cases/SMC-0001/record?event=followup_1_arm_1".into(),
        format!("queries/{}", ids[1]),
    ] {
        assert_eq!(site.get(&format!("/studies/{code}/{path}")).await.status(), 404, "{path}");
    }
    let answer = [("message", "Corrected."), ("value", "0"), ("_reason", "Corrected from the source document")];
    assert_eq!(site.post(&format!("/studies/{code}/queries/{}/answer", ids[1]), &answer).await.status(), 404);
    let edit = [("ecog", "0"), ("_reason", "Corrected from the source document")];
    assert_eq!(site.post(&format!("/studies/{code}/cases/SMC-0001/edit"), &edit).await.status(), 404);
    // The API: the same scope.
    let token = {
        let mut conn = app.conn();
        let u = evidentia::auth::users::find_by_username(&mut conn, "coordinator-snubh").unwrap().unwrap();
        let actor = Actor::from_user(&u);
        let scope = evidentia::auth::tokens::TokenScope::Read;
        evidentia::auth::tokens::create(&mut conn, &actor, "site", scope, 30).unwrap().1
    };
    let api = reqwest::Client::new();
    let got = |path: String| api.get(format!("{}{path}", app.base)).bearer_auth(&token).send();
    let listed: serde_json::Value = got(format!("/api/v1/studies/{code}/cases")).await.unwrap().json().await.unwrap();
    assert_eq!(listed["total"], 1);
    assert_eq!(got(format!("/api/v1/studies/{code}/cases/SMC-0001")).await.unwrap().status(), 404);
    assert_eq!(got(format!("/api/v1/studies/{code}/cases/SNUBH-0001")).await.unwrap().status(), 200);

    // Their own site's query: answered with the corrected value, audited under their name.
    let r = site.post(&format!("/studies/{code}/queries/{}/answer", ids[0]), &answer).await;
    assert_eq!(r.status(), 303);
    let changed = audit_events(&app, "update").into_iter().find(|e| e.entity_id == "SNUBH-0001").unwrap();
    assert_eq!(changed.actor, "coordinator-snubh");
    let answered = audit_events(&app, "answer").into_iter().find(|e| e.entity_id == ids[0]).unwrap();
    assert_eq!(answered.actor, "coordinator-snubh");

    // Imports: a row of SMC's is refused in the preview, and at confirmation of a preview the
    // manager prepared; neither changes anything.
    let cases_before = |app: &TestApp| {
        use evidentia::db::schema::cases;
        cases::table.count().get_result::<i64>(&mut app.conn()).unwrap()
    };
    let (n_cases, n_audit) = (cases_before(&app), audit_events(&app, "").len());
    let smc_row = HEADER.to_string() + "LX-1009,baseline_arm_1,,,smc,,2024-03-01,1,2,1,10,2,,,,,,,,0,0,0,\n";
    let refused = import(&site, code, &smc_row).await.unwrap_err();
    assert!(refused.contains("SMC is not one of your sites"), "{refused}");
    let prepared = {
        let mut conn = app.conn();
        let sid = studies::get_by_code(&mut conn, code).unwrap().id;
        let fields = evidentia::cases::dictionary::load(&mut conn, sid).unwrap();
        let design = evidentia::cases::events::load(&mut conn, sid).unwrap();
        let sites = sites::list(&mut conn, sid, false).unwrap();
        let key = evidentia::cases::deid::study_key(&mut conn, &app.data_dir, code).unwrap();
        let opts = Default::default();
        evidentia::cases::import::prepare(sid, &fields, &design, &sites, &key, "f", smc_row.as_bytes(), &opts)
    };
    assert!(prepared.ok(), "the manager's preview");
    let coordinator = {
        let mut conn = app.conn();
        let u = evidentia::auth::users::find_by_username(&mut conn, "coordinator-snubh").unwrap().unwrap();
        let actor = Actor::from_user(&u);
        let access = evidentia::auth::permissions::study_access(&mut conn, &actor, code).unwrap();
        evidentia::cases::import::commit(&mut conn, &actor, &access, &prepared).unwrap_err().to_string()
    };
    assert!(coordinator.contains("row 1, column site: SMC is not one of your sites"), "{coordinator}");
    assert_eq!((cases_before(&app), audit_events(&app, "").len()), (n_cases, n_audit), "nothing changed");
    // Their own new subject imports.
    let mine = HEADER.to_string() + "LX-1003,baseline_arm_1,,,snubh,,2024-03-05,2,2,0,1,2,,,,,,,,0,0,0,\n";
    let page = import(&site, code, &mine).await.unwrap();
    assert!(page.contains("1 new subject"), "{page}");
    assert_eq!(cases_before(&app), n_cases + 1);
}

/// Site staff are added with their sites: none, an unknown one, or sites for another role
/// are refused naming the field; the membership's sites are audited and listed.
#[tokio::test]
async fn site_staff_are_added_with_their_sites() {
    let app = spawn_app();
    let m = app.login("manager").await;
    let add = |role: &'static str, sites: &'static [&'static str]| {
        let mut form = vec![("username", "coordinator-smc"), ("role", role)];
        form.extend(sites.iter().map(|s| ("sites", *s)));
        form
    };
    for (role, sites, says) in [
        ("site", &[][..], "choose the site"),
        ("site", &["NOPE"][..], "no active site"),
        ("monitor", &["SMC"][..], "only site staff are scoped to sites"),
    ] {
        let r = m.post("/studies/OTHER-01/members", &add(role, sites)).await;
        assert_eq!(r.status(), 404, "the manager is not in OTHER-01");
        let r = m.post("/studies/LUNG-IO-01/members", &add(role, sites)).await;
        assert_eq!(r.status(), 422, "{role} {sites:?}");
        assert!(r.text().await.unwrap().contains(says), "{says}");
    }
    // In the demo study, coordinator-smc already is SMC's site staff; a new study takes them.
    let mut conn = app.conn();
    let op = Actor::cli_operator();
    let input = StudyInput { code: "SITES-1".into(), title: "Sites".into(), ..Default::default() };
    studies::create(&mut conn, &op, &input).unwrap();
    let access = evidentia::auth::permissions::study_access(&mut conn, &op, "SITES-1").unwrap();
    for s in ["AA", "BB", "CC"] {
        sites::add(&mut conn, &op, &access, &sites::SiteInput { code: s.into(), name: s.into(), ..Default::default() })
            .unwrap();
    }
    let two = ["aa".to_string(), "CC".to_string()];
    let member = studies::members::add_to_sites(&mut conn, &op, &access, "coordinator-smc", "site", &two).unwrap();
    assert_eq!(member.sites, ["AA", "CC"]);
    assert_eq!(member.role_described(), "site of AA, CC");
    let u = evidentia::auth::users::find_by_username(&mut conn, "coordinator-smc").unwrap().unwrap();
    let theirs = evidentia::auth::permissions::study_access(&mut conn, &Actor::from_user(&u), "SITES-1").unwrap();
    let ids: Vec<i32> = sites::list(&mut conn, access.study.id, false).unwrap().iter().map(|s| s.id).collect();
    assert_eq!(theirs.sites, evidentia::auth::permissions::SiteScope::Only(vec![ids[0], ids[2]]));
    drop(conn);
    let added = audit_events(&app, "add_member").into_iter().find(|e| e.entity_id == "coordinator-smc").unwrap();
    assert!(added.new_value.unwrap().contains(r#""sites":["AA","CC"]"#));
}

/// A dictionary for data entry: a calculated BMI on the first event, a follow-up form with
/// branching logic and a calculation that reads the first event (`[baseline_arm_1][bmi]`), and
/// the repeating adverse-event form.
const ENTRY_DICTIONARY: &str = "Variable / Field Name,Form Name,Field Type,Field Label,\"Choices, Calculations, OR Slider Labels\",Text Validation Type OR Show Slider Number,Identifier?,Required Field?,Branching Logic (Show field only if...)\n\
record_id,enrolment,text,Subject,,,,y,\n\
enrol_date,enrolment,text,Enrolment date,,date_ymd,,y,\n\
sex,enrolment,radio,Sex,\"1, Male | 2, Female\",,,,\n\
weight,baseline,text,Weight (kg),,number,,,\n\
height,baseline,text,Height (cm),,number,,,\n\
bmi,baseline,calc,BMI,\"round([weight]*10000/(([height])^(2)),1)\",,,,\n\
progression,followup,yesno,Progression,,,,y,\n\
progression_site,followup,text,Where,,,,,[progression] = '1'\n\
notes,followup,notes,Notes,,,,,\n\
bmi_then,followup,calc,BMI at baseline,[baseline_arm_1][bmi],,,,\n\
ae_term,ae,text,Adverse event,,,,,\n\
ae_grade,ae,radio,Grade,\"1, 1 | 2, 2 | 3, 3\",,,,\n";

/// Sites enter a follow-up visit's record and a repeating form's instance on the record page:
/// branching logic hides and shows fields (live, and on the saved values), calculated fields are
/// computed (one reading the first event), free text is scrubbed, the form status is kept, a
/// change of saved data needs a reason; bad values are refused naming the field with nothing
/// stored; every step is audited; another site's subject is 404 and a monitor may not enter.
#[tokio::test]
async fn sites_enter_follow_up_records_with_branching_logic_and_calculations() {
    let app = spawn_app();
    let code = "LONG-E1";
    // Logic names the study's events once they are known: the calculation reading the first
    // event comes with the dictionary's second version, after the design.
    let then = "bmi_then,followup,calc,BMI at baseline,[baseline_arm_1][bmi],,,,\n";
    let m = set_up_with(&app, code, &ENTRY_DICTIONARY.replace(then, "")).await;
    let path = format!("/studies/{code}/dictionary/import");
    let r = upload(&m, &path, "dict.csv", ENTRY_DICTIONARY.as_bytes(), &[]).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let baseline = "record_id,redcap_event_name,redcap_data_access_group,enrol_date,sex,weight,height\n\
EX-1,baseline_arm_1,snubh,2024-01-10,1,70,175\nEX-2,baseline_arm_1,smc,2024-02-01,2,60,160\n";
    import(&m, code, baseline).await.unwrap_or_else(|p| panic!("refused: {p}"));
    {
        let mut conn = app.conn();
        let op = Actor::cli_operator();
        let access = evidentia::auth::permissions::study_access(&mut conn, &op, code).unwrap();
        let sites = ["SNUBH".to_string()];
        studies::members::add_to_sites(&mut conn, &op, &access, "coordinator-snubh", "site", &sites).unwrap();
    }
    let site = app.login("coordinator-snubh").await;
    let case = format!("/studies/{code}/cases/SNUBH-0001");

    // The first event: the BMI is computed as the values are typed and when they are saved, and
    // is never typed itself.
    let r = site.post(&format!("{case}/logic"), &[("weight", "72"), ("height", "180")]).await;
    let live: serde_json::Value = r.json().await.unwrap();
    assert_eq!(live["calc"]["bmi"], serde_json::json!(22.2), "{live}");
    let why = ("_reason", "Corrected from the source document");
    let r = site.post(&format!("{case}/edit"), &[("weight", "72"), ("height", "180"), why]).await;
    assert_eq!(r.status(), 303);
    let r = site.post(&format!("{case}/edit"), &[("bmi", "30"), why]).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("a calculated field"));
    let stored = |app: &TestApp| {
        let mut conn = app.conn();
        let sid = studies::get_by_code(&mut conn, code).unwrap().id;
        evidentia::cases::get(&mut conn, sid, "SNUBH-0001").unwrap().values()
    };
    assert_eq!(stored(&app)["bmi"], serde_json::json!(22.2));

    // The grid offers the follow-up visit's record and a new adverse event.
    let (_, page) = site.get_text(&case).await;
    let followup = "event=followup_1_arm_1&instrument=&instance=0";
    let linked = |page: &str, query: &str| page.contains(&query.replace('&', "&#38;"));
    assert!(linked(&page, followup) && linked(&page, "event=followup_1_arm_1&instrument=ae&instance=1"), "{page}");
    // A new record's page: the site of progression is hidden until progression is ticked.
    let record = format!("{case}/record?{followup}");
    let (status, page) = site.get_text(&record).await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"<dt title="progression_site" data-field="progression_site" hidden>"#), "{page}");
    assert!(page.contains(r#"name="followup_complete""#));
    let logic = format!("{case}/logic?{followup}");
    let live: serde_json::Value = site.post(&logic, &[("progression", "1")]).await.json().await.unwrap();
    assert!(!live["hidden"].as_array().unwrap().iter().any(|f| f == "progression_site"), "{live}");
    assert_eq!(live["calc"]["bmi_then"], serde_json::json!(22.2), "[baseline_arm_1][bmi] reads the first event");

    // Refused whole, naming the field: a value that is not a choice, a status that is not one.
    let entered = [
        ("progression", "1"),
        ("progression_site", "Liver, as Dr Kim noted on 010-2345-6789"),
        ("followup_complete", "2"),
    ];
    for (field, bad, says) in [("progression", "7", "must be 1 or 0"), ("followup_complete", "9", "a form status is 0")]
    {
        let mut form: Vec<(&str, &str)> = entered.iter().filter(|(k, _)| *k != field).copied().collect();
        form.push((field, bad));
        let r = site.post(&record, &form).await;
        assert_eq!(r.status(), 422, "{field}");
        assert!(r.text().await.unwrap().contains(says), "{says}");
    }
    assert!(records(&app, code).is_empty(), "nothing stored");
    let r = site.post(&record, &entered).await;
    assert_eq!(r.status(), 303);
    let recs = records(&app, code);
    assert_eq!((recs[0].1.as_str(), recs[0].2.as_str(), recs[0].3), ("followup_1_arm_1", "", 0));
    let data: serde_json::Value = serde_json::from_str(&recs[0].4).unwrap();
    assert_eq!(data["bmi_then"], serde_json::json!(22.2));
    let text = data["progression_site"].as_str().unwrap();
    assert!(text.starts_with("Liver") && !text.contains("010-2345-6789"), "scrubbed: {text}");
    let created = audit_events(&app, "create")
        .into_iter()
        .find(|e| e.entity_id == "SNUBH-0001/followup_1_arm_1")
        .expect("the new record is audited");
    assert_eq!(created.actor, "coordinator-snubh");
    assert!(created.new_value.unwrap().contains(r#""followup_complete":2"#));

    // The monitor verifies the visit's form on the record's page; the change below clears it.
    let monitor = app.login("monitor").await;
    let r = monitor.post(&format!("{case}/verify?{followup}"), &[("form", "followup")]).await;
    assert_eq!(r.status(), 303);
    assert!(location(&r).contains("/record?event=followup_1_arm_1"), "back to the record");
    let (_, page) = monitor.get_text(&record).await;
    assert!(page.contains("verified</span> by monitor"), "{page}");
    let (_, progress) = monitor.get_text(&format!("/studies/{code}/verification.csv")).await;
    assert!(progress.lines().any(|l| l.starts_with("SNUBH-0001,SNUBH,") && l.ends_with(",1,1")), "{progress}");
    // A change of the saved record needs its reason; with it, the change is audited.
    let change = [("progression", "0"), ("followup_complete", "1")];
    let r = site.post(&record, &change).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("pick a reason"));
    let r = site.post(&record, &[change[0], change[1], why]).await;
    assert_eq!(r.status(), 303);
    let updated = audit_events(&app, "update")
        .into_iter()
        .find(|e| e.entity_id == "SNUBH-0001/followup_1_arm_1")
        .expect("the change is audited");
    assert!(updated.reason.unwrap().starts_with("Corrected from the source document"));
    let (_, page) = site.get_text(&record).await;
    assert!(page.contains(r#"<dt title="progression_site" data-field="progression_site" hidden>"#), "hidden again");
    let cleared = audit_events(&app, "clear_verification")
        .into_iter()
        .find(|e| e.entity_id == "SNUBH-0001/followup_1_arm_1/followup")
        .expect("the change clears the visit's verification");
    assert!(cleared.reason.unwrap().contains("progression"));

    // A repeating form's instance; then the grid offers the next one.
    let ae = format!("{case}/record?event=followup_1_arm_1&instrument=ae&instance=1");
    assert_eq!(site.post(&ae, &[("ae_term", "Rash"), ("ae_grade", "2"), ("ae_complete", "2")]).await.status(), 303);
    let (_, page) = site.get_text(&case).await;
    assert!(linked(&page, "event=followup_1_arm_1&instrument=ae&instance=2"));
    assert_eq!(records(&app, code).len(), 2);

    // Not theirs, not a record of the design, not their role.
    let smc = format!("/studies/{code}/cases/SMC-0001/record?{followup}");
    assert_eq!(site.post(&smc, &entered).await.status(), 404);
    assert_eq!(site.get(&smc).await.status(), 404);
    let nowhere = format!("{case}/record?event=followup_9_arm_1&instrument=&instance=0");
    assert_eq!(site.get(&nowhere).await.status(), 404);
    assert_eq!(monitor.post(&record, &[change[0], why]).await.status(), 403);
    assert_eq!(monitor.get(&ae.replace("instance=1", "instance=5")).await.status(), 404, "no such record to show");
    assert_eq!(records(&app, code).len(), 2);
}
