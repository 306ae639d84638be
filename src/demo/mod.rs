//! The demo installation: one user per role, a demo study with two sites, its data dictionary
//! and ~200 de-identified cases; with slides, the AI run, reads and the signed analysis plan; and
//! a second, smaller study that is complete, locked and signed, so that its dossier can be
//! exported at once. Each capability adds its own step; every step is idempotent, so seeding an
//! existing demo is a no-op.

pub mod analyses;
pub mod cases;
pub mod lock;
pub mod reads;
pub mod runs;
pub mod slides;
pub mod truth;

use std::path::Path;

use diesel::prelude::*;

use crate::auth::{passwords, users, Actor};
use crate::db::schema::studies as studies_t;
use crate::db::Conn;
use crate::error::Result;
use crate::studies::{self, members, sites, StudyInput};

/// The demo accounts share one password, printed when the demo starts.
pub const DEMO_PASSWORD: &str = "evidentia-demo";

/// A demonstration user's signature with `meaning` (their password, checked where it signs).
pub fn demo_signing(meaning: &str) -> crate::auth::esign::Signing<'_> {
    crate::auth::esign::Signing { password: crate::auth::esign::Password::Plain(DEMO_PASSWORD), meaning }
}
pub const DEMO_STUDY: &str = "LUNG-IO-01";

/// (username, full name, admin?, role in the demo study)
pub const DEMO_USERS: [(&str, &str, bool, Option<&str>); 7] = [
    ("admin", "Ada Administrator", true, None),
    ("manager", "Park Jiyeon", false, Some("manager")),
    ("annotator1", "Kim Minji, MD", false, Some("annotator")),
    ("annotator2", "Lee Seojun, MD", false, Some("annotator")),
    // The pathologist who adjudicates the readers' disagreements (reads none of the slides).
    ("annotator3", "Yoon Jisoo, MD", false, Some("annotator")),
    ("statistician", "Choi Hana, PhD", false, Some("statistician")),
    ("monitor", "Jung Daeho", false, Some("monitor")),
];

/// Site staff (study coordinators), each scoped to one site of each demo study:
/// (username, full name, site).
pub const DEMO_SITE_STAFF: [(&str, &str, &str); 2] =
    [("coordinator-snubh", "Han Yerin, RN", "SNUBH"), ("coordinator-smc", "Seo Jihun, CRC", "SMC")];

/// How many demo subjects.
pub const DEMO_SUBJECTS: usize = 200;

/// A demo study: what it is, and the seeded truth its subjects come from.
pub struct DemoStudy {
    pub code: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub protocol_version: &'static str,
    pub subjects: usize,
    pub seed: u64,
    /// Whether it gets the re-read and training campaigns besides the first read.
    pub more_campaigns: bool,
}

/// The working demo study: reads and analyses done, not locked.
pub const FIRST: DemoStudy = DemoStudy {
    code: DEMO_STUDY,
    title: "Tumour-immune phenotype and ICI outcome in advanced NSCLC",
    description: "Retrospective multicentre study of the AI immune phenotype on pre-treatment H&E slides \
                  of patients treated with immune checkpoint inhibitors, against pathologists' reads and \
                  progression-free survival.",
    protocol_version: "1.2",
    subjects: DEMO_SUBJECTS,
    seed: truth::SEED,
    more_campaigns: true,
};

/// The finished demo study: complete, locked and signed by its manager and statistician.
pub const LOCKED: DemoStudy = DemoStudy {
    code: "LUNG-IO-02",
    title: "Tumour-immune phenotype in advanced NSCLC: validation cohort",
    description: "Retrospective validation cohort of the AI immune phenotype against pathologists' consensus \
                  and progression-free survival; analysed, locked and signed.",
    protocol_version: "1.0",
    subjects: 60,
    seed: truth::SEED + 2,
    more_campaigns: false,
};

/// Demo slides of the locked study: at most this many.
pub const LOCKED_SLIDES: usize = 12;

/// Seeds everything the demo needs; returns what was created, for the terminal.
pub fn seed(conn: &mut Conn, data_dir: &Path) -> Result<Vec<String>> {
    let actor = Actor::cli_operator();
    let mut created = Vec::new();
    seed_users(conn, &actor, &mut created)?;
    seed_study(conn, &actor, &FIRST, &mut created)?;
    seed_cases(conn, &actor, data_dir, &FIRST, &mut created)?;
    seed_quality(conn, &actor, &FIRST, &mut created)?;
    Ok(created)
}

/// The data manager's work on the first study: three custom rules (one across the follow-up
/// visits), and an outlier excluded with a
/// reason (a long responder whose survival the source confirms).
fn seed_quality(conn: &mut Conn, actor: &Actor, demo: &DemoStudy, created: &mut Vec<String>) -> Result<()> {
    use crate::quality::{self, FindingFilter, NewRule};
    let access = crate::auth::permissions::study_access(conn, actor, demo.code)?;
    if !quality::custom_rules(conn, access.study.id)?.is_empty() {
        return Ok(());
    }
    let deid = crate::cases::deid::EditDeid::new(std::sync::Arc::new(
        crate::cases::scrub::Scrubber::new(&[], &[]).map_err(|e| anyhow::anyhow!("scrubber: {e}"))?,
    ));
    for (name, logic, severity) in [
        ("Overall survival shorter than progression-free survival", "[os_months] < [pfs_months]", "error"),
        ("Death recorded without overall survival", "[death] = '1' and [os_months] = ''", "warning"),
        (
            "Death at a follow-up visit but not in the outcome",
            "[death] = '0' and ([month_3_arm_1][death_fu] = '1' or [month_6_arm_1][death_fu] = '1' \
             or [month_12_arm_1][death_fu] = '1' or [month_24_arm_1][death_fu] = '1')",
            "error",
        ),
    ] {
        let rule = NewRule { name: name.into(), logic: logic.into(), severity: severity.into() };
        quality::create_rule(conn, actor, &access, &rule, &deid)?;
    }
    let outliers = FindingFilter { status: "open".into(), rule: "outlier".into(), ..Default::default() };
    let found =
        quality::findings(conn, access.study.id, &access.sites, &outliers, crate::db::paging::PageRequest::all())?;
    if let Some(f) = found.items.first() {
        let why = "Long responder: survival confirmed against the source record";
        quality::set_excluded(conn, actor, &access, f.id, true, why, &deid)?;
    }
    let queries = seed_queries(conn, demo, found.items.first())?;
    let verified = seed_verification(conn, demo)?;
    let (open, errors) = quality::open_counts(conn, access.study.id)?;
    created.push(format!(
        "data quality in {}: 2 custom rules; open findings: {open} ({errors} errors); {queries} queries; {verified} forms source-verified",
        demo.code
    ));
    Ok(())
}

/// The monitor has verified the first ten SNUBH subjects' forms (the monitoring plan reports
/// progress without asking for every form). Returns how many forms.
fn seed_verification(conn: &mut Conn, demo: &DemoStudy) -> Result<usize> {
    use crate::quality::sdv;
    let monitor = users::actor_for_username(conn, "monitor")?;
    let as_monitor = crate::auth::permissions::study_access(conn, &monitor, demo.code)?;
    let forms = sdv::subject_forms(conn, as_monitor.study.id)?;
    let mut n = 0;
    for subject in 1..=10 {
        for form in &forms {
            sdv::verify(conn, &monitor, &as_monitor, &format!("SNUBH-{subject:04}"), None, form)?;
            n += 1;
        }
    }
    Ok(n)
}

/// The monitor's queries and the site coordinators' answers: one closed after the value was corrected,
/// one closed without a change, one answered and waiting for the monitor, one open (raised from
/// a data quality finding). Returns how many.
fn seed_queries(conn: &mut Conn, demo: &DemoStudy, finding: Option<&crate::quality::Finding>) -> Result<usize> {
    use crate::quality::queries::{self, NewQuery, StepInput};
    let deid = crate::cases::deid::EditDeid::new(std::sync::Arc::new(
        crate::cases::scrub::Scrubber::new(&[], &[]).map_err(|e| anyhow::anyhow!("scrubber: {e}"))?,
    ));
    let monitor = users::actor_for_username(conn, "monitor")?;
    let as_monitor = crate::auth::permissions::study_access(conn, &monitor, demo.code)?;
    // Each site's coordinator answers their site's queries.
    let coordinator = |conn: &mut Conn, site: usize| -> Result<(Actor, crate::auth::permissions::StudyAccess)> {
        let actor = users::actor_for_username(conn, DEMO_SITE_STAFF[site].0)?;
        let access = crate::auth::permissions::study_access(conn, &actor, demo.code)?;
        Ok((actor, access))
    };
    let (snubh, as_snubh) = coordinator(conn, 0)?;
    let (smc, as_smc) = coordinator(conn, 1)?;
    let ask = |case: &str, field: &str, message: &str, change: bool, finding: Option<i32>| NewQuery {
        case: case.into(),
        field: field.into(),
        message: message.into(),
        requires_change: change.then(|| "1".into()),
        finding,
    };
    let say = |message: &str| StepInput { message: message.into(), ..Default::default() };
    let mut n = 0;
    // Corrected, then closed.
    let q = queries::open(
        conn,
        &monitor,
        &as_monitor,
        &ask("SNUBH-0003", "ecog", "The clinic note at ICI start records ECOG 1: please check.", true, None),
        &deid,
    )?;
    let current = crate::cases::get(conn, as_snubh.study.id, "SNUBH-0003")?
        .value("ecog")
        .map(crate::cases::dictionary::value_text)
        .unwrap_or_default();
    let corrected = if current == "1" { "2" } else { "1" };
    let answer = StepInput {
        message: "Corrected from the clinic note.".into(),
        value: Some(corrected.into()),
        reason: "Corrected from the source document".into(),
        reason_details: String::new(),
    };
    queries::answer(conn, &snubh, &as_snubh, q.id, &answer, &deid)?;
    queries::close(conn, &monitor, &as_monitor, q.id, &say("Verified against the source."), &deid)?;
    // Answered without a change, closed.
    let q = queries::open(
        conn,
        &monitor,
        &as_monitor,
        &ask("SMC-0005", "smoking", "Smoking history: is it in the source?", false, None),
        &deid,
    )?;
    queries::answer(conn, &smc, &as_smc, q.id, &say("Confirmed on the intake form; the value stands."), &deid)?;
    queries::close(conn, &monitor, &as_monitor, q.id, &say("Thank you."), &deid)?;
    n += 2;
    // Answered, waiting for the monitor.
    let q = queries::open(
        conn,
        &monitor,
        &as_monitor,
        &ask("SNUBH-0010", "pdl1_tps", "TPS differs from the pathology report?", false, None),
        &deid,
    )?;
    queries::answer(
        conn,
        &snubh,
        &as_snubh,
        q.id,
        &say("Report re-read: the value entered is the 22C3 TPS; the report's other value is SP263."),
        &deid,
    )?;
    n += 1;
    // Open, from a finding.
    if let Some(f) = finding {
        let message = format!("{}: please confirm against the source.", f.detail);
        queries::open(conn, &monitor, &as_monitor, &ask(&f.case, &f.field, &message, false, Some(f.id)), &deid)?;
        n += 1;
    }
    Ok(n)
}

/// The second study's users (already there), study and cases.
pub fn seed_locked_study_cases(conn: &mut Conn, data_dir: &Path) -> Result<Vec<String>> {
    let actor = Actor::cli_operator();
    let mut created = Vec::new();
    seed_study(conn, &actor, &LOCKED, &mut created)?;
    seed_cases(conn, &actor, data_dir, &LOCKED, &mut created)?;
    Ok(created)
}

/// The dictionary and the sites' exports, through the de-identifying import.
fn seed_cases(
    conn: &mut Conn,
    actor: &Actor,
    data_dir: &Path,
    demo: &DemoStudy,
    created: &mut Vec<String>,
) -> Result<()> {
    use crate::cases::{dictionary, import};
    let access = crate::auth::permissions::study_access(conn, actor, demo.code)?;
    if !dictionary::load(conn, access.study.id)?.is_empty() {
        return Ok(());
    }
    let parsed = dictionary::parse_redcap("demo dictionary", cases::DICTIONARY_CSV.as_bytes()).map_err(|p| {
        anyhow::anyhow!("demo dictionary: {}", p.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("; "))
    })?;
    dictionary::replace(conn, actor, &access, &parsed.fields, false, false)?;
    let fields = dictionary::load(conn, access.study.id)?;
    // The study is longitudinal: its events, as REDCap's files give them.
    let design = crate::cases::events::parse(
        &crate::cases::events::DesignFiles {
            events: Some(cases::EVENTS_CSV.as_bytes()),
            mapping: Some(cases::MAPPING_CSV.as_bytes()),
            repeating: Some(cases::REPEATING_CSV.as_bytes()),
            arms: None,
        },
        &crate::quality::sdv::forms(&fields),
    )
    .map_err(|e| anyhow::anyhow!("demo design: {e}"))?;
    crate::cases::events::replace(conn, actor, &access, &design)?;
    let site_list = sites::list(conn, access.study.id, false)?;
    let key = crate::cases::deid::study_key(conn, data_dir, demo.code)?;
    let subjects = truth::subjects(demo.subjects, demo.seed);
    let mut n = 0;
    for site in ["SNUBH", "SMC"] {
        let bytes = cases::site_export(&subjects, site);
        let prepared =
            import::prepare(access.study.id, &fields, &design, &site_list, &key, site, &bytes, &Default::default());
        if !prepared.ok() {
            let p: Vec<String> = prepared.problems.iter().take(5).map(|p| p.to_string()).collect();
            return Err(anyhow::anyhow!("demo import {site}: {}", p.join("; ")).into());
        }
        n += import::commit(conn, actor, &access, &prepared)?.subjects;
    }
    if let Err(e) = crate::db::checkpoint(conn) {
        tracing::warn!("checkpoint after the demo import: {e}");
    }
    created.push(format!("data dictionary ({} fields) and {n} de-identified cases in {}", fields.len(), demo.code));
    Ok(())
}

fn seed_users(conn: &mut Conn, actor: &Actor, created: &mut Vec<String>) -> Result<()> {
    // Hash once: the same password for every demo account.
    let hash = passwords::hash(DEMO_PASSWORD)?;
    let staff = DEMO_SITE_STAFF.iter().map(|(u, n, _)| (*u, *n, false));
    for (username, full_name, is_admin) in DEMO_USERS.iter().map(|(u, n, a, _)| (*u, *n, *a)).chain(staff) {
        if users::find_by_username(conn, username)?.is_none() {
            let input = users::NewUserInput { username: username.into(), full_name: full_name.into(), is_admin };
            users::create(conn, actor, &input, &hash)?;
            created.push(format!("user {username}"));
        }
    }
    Ok(())
}

fn seed_study(conn: &mut Conn, actor: &Actor, demo: &DemoStudy, created: &mut Vec<String>) -> Result<()> {
    let exists: i64 = studies_t::table.filter(studies_t::code.eq(demo.code)).count().get_result(conn)?;
    if exists > 0 {
        return Ok(());
    }
    let input = StudyInput {
        code: demo.code.into(),
        title: demo.title.into(),
        indication: "Non-small-cell lung cancer, stage IIIB–IV".into(),
        biomarker: "Tumour-immune phenotype (inflamed / excluded / desert)".into(),
        study_type: "retrospective".into(),
        protocol_version: demo.protocol_version.into(),
        description: demo.description.into(),
    };
    let study = studies::create(conn, actor, &input)?;
    let access = crate::auth::permissions::study_access(conn, actor, &study.code)?;
    for (code, name, irb, date) in [
        ("SNUBH", "Seoul National University Bundang Hospital", "B-2401-876-104", "2024-01-15"),
        ("SMC", "Samsung Medical Center", "SMC-2024-02-011", "2024-02-20"),
    ] {
        let s = sites::SiteInput {
            code: code.into(),
            name: name.into(),
            country: "KR".into(),
            irb_reference: irb.into(),
            irb_approval_date: date.into(),
        };
        sites::add(conn, actor, &access, &s)?;
    }
    for (username, _, _, role) in DEMO_USERS {
        if let Some(role) = role {
            members::add(conn, actor, &access, username, role)?;
        }
    }
    for (username, _, site) in DEMO_SITE_STAFF {
        members::add_to_sites(conn, actor, &access, username, "site", &[site.to_string()])?;
    }
    studies::transition(conn, actor, &access, "active", "")?;
    let members = DEMO_USERS.iter().filter(|u| u.3.is_some()).count() + DEMO_SITE_STAFF.len();
    created.push(format!("study {} with 2 sites and {members} members", demo.code));
    Ok(())
}
