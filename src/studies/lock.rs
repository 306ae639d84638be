//! Study lock and electronic signatures (21 CFR Part 11 §11.50, §11.70, §11.200). Locking
//! records the SHA-256 of a canonical snapshot of the study's data; the required signers
//! (default: a manager and a statistician of the study) then sign it, each re-entering their
//! password and giving the meaning; a signature records the printed name, UTC time, meaning and
//! the snapshot hash. Unlocking (an administrator, with a reason) voids the signatures. A
//! signature is valid only while the study's data still hashes to what it signed.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::json;

use super::Study;
use crate::audit::{self, Action, Change, Entity};
use crate::auth::permissions::{role_in, Role, StudyAccess};
use crate::auth::{esign, Actor};
use crate::db::schema::{study_locks, study_signatures};
use crate::db::{now, write_tx, Conn};
use crate::error::{Error, Result};

/// The roles whose signatures a locked study needs.
pub const REQUIRED_ROLES: [Role; 2] = [Role::Manager, Role::Statistician];

pub use crate::auth::esign::Meaning;

/// The snapshot of the study's data a lock records and signatures sign (hash, rows per table).
pub use super::snapshot::compute as snapshot;

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = study_locks)]
pub struct Lock {
    pub id: i32,
    pub study_id: crate::studies::StudyId,
    pub snapshot_sha256: String,
    pub row_counts: String,
    pub locked_by: String,
    pub locked_at: NaiveDateTime,
    pub unlocked_by: Option<String>,
    pub unlocked_at: Option<NaiveDateTime>,
    pub unlock_reason: Option<String>,
    /// The form of `snapshot_sha256` ([`super::snapshot::VERSION`] for locks recorded now).
    pub snapshot_version: i32,
    /// For a lock re-hashed from the first form: its first hash, which signatures made before
    /// still carry (the re-hash is in the audit trail, `rehash_lock`).
    pub legacy_sha256: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = study_signatures)]
pub struct Signature {
    pub id: i32,
    pub lock_id: i32,
    pub study_id: crate::studies::StudyId,
    pub username: String,
    pub full_name: String,
    pub role: Role,
    pub meaning: Meaning,
    pub snapshot_sha256: String,
    pub signed_at: NaiveDateTime,
    pub voided_at: Option<NaiveDateTime>,
    pub void_reason: Option<String>,
}

impl Lock {
    /// Whether `signature` signed this lock's snapshot: its hash, or the first-form hash it had
    /// before it was re-hashed over the same rows.
    pub fn covers(&self, signature: &Signature) -> bool {
        signature.snapshot_sha256 == self.snapshot_sha256
            || self.legacy_sha256.as_deref() == Some(signature.snapshot_sha256.as_str())
    }
}

/// The study's current lock (not unlocked), if it is locked.
pub fn current(conn: &mut Conn, study_id: crate::studies::StudyId) -> Result<Option<Lock>> {
    Ok(study_locks::table
        .filter(study_locks::study_id.eq(study_id))
        .filter(study_locks::unlocked_at.is_null())
        .order(study_locks::id.desc())
        .select(Lock::as_select())
        .first(conn)
        .optional()?)
}

/// Every signature of the study, newest first (voided ones included).
pub fn signatures(conn: &mut Conn, study_id: crate::studies::StudyId) -> Result<Vec<Signature>> {
    Ok(study_signatures::table
        .filter(study_signatures::study_id.eq(study_id))
        .order(study_signatures::id.desc())
        .select(Signature::as_select())
        .load(conn)?)
}

/// A locked study's signature state: who signed the current lock, which required roles are
/// still missing, and whether the data still hashes to the lock's snapshot.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SignatureState {
    pub lock: Lock,
    pub signed: Vec<Signature>,
    pub missing: Vec<&'static str>,
    pub current_sha256: String,
    pub data_unchanged: bool,
}

impl SignatureState {
    pub fn required(&self) -> usize {
        REQUIRED_ROLES.len()
    }
    pub fn complete(&self) -> bool {
        self.missing.is_empty() && self.data_unchanged
    }
    /// "locked — awaiting 1 of 2 signatures" or "locked and signed".
    pub fn label(&self) -> String {
        if !self.data_unchanged {
            "locked — the data changed after the lock: signatures invalid".into()
        } else if self.missing.is_empty() {
            "locked and signed".into()
        } else {
            format!("locked — awaiting {} of {} signatures", self.missing.len(), self.required())
        }
    }
}

pub fn state(conn: &mut Conn, study_id: crate::studies::StudyId) -> Result<Option<SignatureState>> {
    state_with(conn, study_id, |conn| Ok(snapshot(conn, study_id)?.0))
}

/// [`state`] for pages: the snapshot hash (a read of every row of the study) comes from `cache`
/// while the study's audit chain has not moved. Every change to study data is audited in the
/// same transaction, so a new event means a new hash; `SnapshotCache::MAX_AGE` bounds how long a
/// change made behind the application's back (raw SQL) goes unseen by the page. The dossier
/// export and signing always re-compute.
pub fn state_cached(conn: &mut Conn, study: &Study, cache: &SnapshotCache) -> Result<Option<SignatureState>> {
    use crate::db::schema::audit_heads;
    let head: Option<(i64, String)> = audit_heads::table
        .filter(audit_heads::chain.eq(study.chain().name()))
        .select((audit_heads::seq, audit_heads::hash))
        .first(conn)
        .optional()?;
    let sid = study.id;
    state_with(conn, sid, |conn| {
        if let Some(sha) = cache.get(sid, head.as_ref()) {
            return Ok(sha);
        }
        let sha = snapshot(conn, sid)?.0;
        cache.put(sid, head, sha.clone());
        Ok(sha)
    })
}

/// Snapshot hashes of locked studies, by the head of their audit chain.
#[derive(Default)]
pub struct SnapshotCache {
    entries: std::sync::Mutex<HashMap<crate::studies::StudyId, CachedSnapshot>>,
}

struct CachedSnapshot {
    head: Option<(i64, String)>,
    at: std::time::Instant,
    sha256: String,
}

impl SnapshotCache {
    pub const MAX_AGE: std::time::Duration = std::time::Duration::from_secs(600);

    fn get(&self, study: crate::studies::StudyId, head: Option<&(i64, String)>) -> Option<String> {
        let entries = self.entries.lock().ok()?;
        let e = entries.get(&study)?;
        (e.head.as_ref() == head && e.at.elapsed() < Self::MAX_AGE).then(|| e.sha256.clone())
    }

    fn put(&self, study: crate::studies::StudyId, head: Option<(i64, String)>, sha256: String) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(study, CachedSnapshot { head, at: std::time::Instant::now(), sha256 });
        }
    }
}

fn state_with(
    conn: &mut Conn,
    study_id: crate::studies::StudyId,
    current_sha256: impl FnOnce(&mut Conn) -> Result<String>,
) -> Result<Option<SignatureState>> {
    let Some(lock) = current(conn, study_id)? else { return Ok(None) };
    let signed: Vec<Signature> =
        signatures(conn, study_id)?.into_iter().filter(|s| s.lock_id == lock.id && s.voided_at.is_none()).collect();
    let missing = REQUIRED_ROLES.iter().filter(|r| !signed.iter().any(|s| s.role == **r)).map(|r| r.as_str()).collect();
    let current_sha256 = current_sha256(conn)?;
    let data_unchanged = current_sha256 == lock.snapshot_sha256 && signed.iter().all(|s| lock.covers(s));
    Ok(Some(SignatureState { lock, signed, missing, current_sha256, data_unchanged }))
}

/// Records the lock's snapshot (called inside the transaction that sets the status to locked).
pub(super) fn record_lock(
    conn: &mut Conn,
    actor: &Actor,
    study: &Study,
    open_items: &[String],
    closed_campaigns: &[String],
) -> Result<Lock> {
    let (sha, counts) = snapshot(conn, study.id)?;
    let id: i32 = diesel::insert_into(study_locks::table)
        .values((
            study_locks::study_id.eq(study.id),
            study_locks::snapshot_sha256.eq(&sha),
            study_locks::row_counts.eq(json!(counts).to_string()),
            study_locks::locked_by.eq(&actor.name),
            study_locks::locked_at.eq(now()),
            study_locks::snapshot_version.eq(super::snapshot::VERSION),
        ))
        .returning(study_locks::id)
        .get_result(conn)?;
    audit::record(
        conn,
        Change::new(study.chain(), &actor.name, Action::Lock, Entity::Study, &study.code).after(json!({
            "snapshot_sha256": sha, "snapshot_version": super::snapshot::VERSION, "rows": counts, "open_checklist_items": open_items,
            "closed_campaigns": closed_campaigns,
        })),
    )?;
    Ok(study_locks::table.find(id).select(Lock::as_select()).first(conn)?)
}

/// Closes the current lock and voids its signatures (inside the unlocking transaction).
pub(super) fn record_unlock(conn: &mut Conn, actor: &Actor, study: &Study, reason: &str) -> Result<()> {
    let Some(lock) = current(conn, study.id)? else { return Ok(()) };
    let at = now();
    diesel::update(study_locks::table.find(lock.id))
        .set((
            study_locks::unlocked_by.eq(&actor.name),
            study_locks::unlocked_at.eq(at),
            study_locks::unlock_reason.eq(reason),
        ))
        .execute(conn)?;
    let voided = diesel::update(
        study_signatures::table
            .filter(study_signatures::lock_id.eq(lock.id))
            .filter(study_signatures::voided_at.is_null()),
    )
    .set((study_signatures::voided_at.eq(at), study_signatures::void_reason.eq(format!("study unlocked: {reason}"))))
    .execute(conn)?;
    audit::record(
        conn,
        Change::new(study.chain(), &actor.name, Action::Unlock, Entity::Study, &study.code)
            .before(json!({"snapshot_sha256": lock.snapshot_sha256}))
            .after(json!({"signatures_voided": voided}))
            .because(reason),
    )?;
    Ok(())
}

/// Signs the locked study as `actor` with their password and a meaning. The signer must hold a
/// required role that has not signed this lock yet. A wrong password signs nothing and is
/// audited (in its own transaction).
pub fn sign(conn: &mut Conn, actor: &Actor, access: &StudyAccess, signing: esign::Signing<'_>) -> Result<Signature> {
    let study = super::get_by_code(conn, &access.study.code)?;
    let user = esign::signer(conn, actor)?;
    let role = role_in(conn, user.id, study.id)?
        .filter(|r| REQUIRED_ROLES.contains(r))
        .ok_or_else(|| Error::forbidden(format!("only the study's manager and statistician sign {}", study.code)))?;
    let meaning = Meaning::parse_input(signing.meaning)?;
    let lock = current(conn, study.id)?
        .ok_or_else(|| Error::Conflict(format!("{} is not locked: lock it first", study.code)))?;
    if let Err(e) = esign::check_password(conn, &user, signing.password, "nothing was signed") {
        let reason = esign::failure_reason(&e);
        write_tx(conn, |conn| {
            audit::record(
                conn,
                Change::new(study.chain(), &actor.name, Action::SignFailed, Entity::Study, &study.code)
                    .after(json!({"reason": reason, "meaning": meaning})),
            )
        })?;
        return Err(e);
    }
    write_tx(conn, |conn| {
        let already = study_signatures::table
            .filter(study_signatures::lock_id.eq(lock.id))
            .filter(study_signatures::voided_at.is_null())
            .filter(study_signatures::role.eq(role.as_str()))
            .count()
            .get_result::<i64>(conn)?;
        if already > 0 {
            return Err(Error::Conflict(format!("the {} has already signed this lock", role.as_str())));
        }
        let (sha, _) = snapshot(conn, study.id)?;
        if sha != lock.snapshot_sha256 {
            return Err(Error::Conflict(
                "the study's data changed after it was locked: an administrator must unlock and lock it again".into(),
            ));
        }
        let at = now();
        let id: i32 = diesel::insert_into(study_signatures::table)
            .values((
                study_signatures::lock_id.eq(lock.id),
                study_signatures::study_id.eq(study.id),
                study_signatures::username.eq(&user.username),
                study_signatures::full_name.eq(&user.full_name),
                study_signatures::role.eq(role.as_str()),
                study_signatures::meaning.eq(meaning),
                study_signatures::snapshot_sha256.eq(&sha),
                study_signatures::signed_at.eq(at),
            ))
            .returning(study_signatures::id)
            .get_result(conn)?;
        audit::record(
            conn,
            Change::new(study.chain(), &actor.name, Action::Sign, Entity::Study, &study.code).after(json!({
                "name": user.full_name, "role": role.as_str(), "meaning": meaning, "snapshot_sha256": sha,
            })),
        )?;
        Ok(study_signatures::table.find(id).select(Signature::as_select()).first(conn)?)
    })
}

/// The analysis set's data: the sources (AI run, reference campaign) of the signed analysis
/// plan's primary analysis; empty without one.
pub fn checklist_sources(conn: &mut Conn, study_id: crate::studies::StudyId) -> Result<crate::analyses::Sources> {
    Ok(plan_sources(crate::analyses::plan::signed(conn, study_id)?.as_ref()))
}

/// The sources of a signed plan's primary analysis (empty without a plan or a primary item).
pub fn plan_sources(signed: Option<&crate::analyses::plan::Plan>) -> crate::analyses::Sources {
    let primary =
        signed.and_then(|p| p.items().into_iter().find(|i| i.role == crate::analyses::plan::PlanRole::Primary));
    primary.and_then(|i| crate::analyses::Request::parse(&i.query).ok()).map(|r| r.sources()).unwrap_or_default()
}

/// One item of the pre-lock checklist.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub label: &'static str,
    pub ok: bool,
    pub detail: String,
    /// Where to fix an open item: (text, path under the study's pages, e.g. `analyses/saved/3`).
    pub links: Vec<(String, String)>,
    /// Said for the record, not required: an open advisory item does not keep a manager from
    /// locking (e.g. campaigns outside the analysis set with reads outstanding, which locking
    /// closes).
    pub advisory: bool,
}

impl Check {
    /// Whether this item keeps a manager from locking.
    pub fn blocks(&self) -> bool {
        !self.ok && !self.advisory
    }
}

/// The pre-lock checklist. The analysis set is the signed analysis plan's primary analysis: its
/// AI run (the primary run) and its reading campaign (the reference).
pub fn checklist(conn: &mut Conn, study_id: crate::studies::StudyId) -> Result<Vec<Check>> {
    use crate::analyses::{plan, saved};
    let mut out = Vec::new();
    let signed = plan::signed(conn, study_id)?;
    out.push(Check {
        label: "Statistical analysis plan signed",
        ok: signed.is_some(),
        detail: match &signed {
            Some(p) => format!("version {} signed by {}", p.version, p.signed_name.clone().unwrap_or_default()),
            None => "no signed version".into(),
        },
        advisory: false,
        links: if signed.is_some() { Vec::new() } else { vec![("analysis plan".into(), "analyses/plan".into())] },
    });
    let primary = signed
        .as_ref()
        .and_then(|p| p.items().into_iter().find(|i| i.role == crate::analyses::plan::PlanRole::Primary));
    let sources = checklist_sources(conn, study_id)?;
    out.push(Check {
        label: "Analysis set designated: the primary analysis names the AI run and the reference campaign",
        ok: sources.run.is_some() && sources.campaign.is_some(),
        detail: match &primary {
            Some(p) => {
                let show = |v: Option<i32>| v.map(|x| x.to_string()).unwrap_or_else(|| "none".into());
                format!("{} “{}”: run {}, campaign {}", p.key, p.title, show(sources.run), show(sources.campaign))
            }
            None => "no primary analysis in a signed plan".into(),
        },
        advisory: false,
        links: Vec::new(),
    });
    if let Some(p) = &signed {
        let kept = saved::list_checked(conn, study_id)?;
        let (mut unsaved, mut stale, mut links) = (Vec::new(), Vec::new(), Vec::new());
        for i in p.items() {
            let of_item =
                kept.iter().rev().find(|s| s.is_current() && s.saved.plan_id == Some(p.id) && s.saved.query == i.query);
            match of_item {
                None => {
                    links.push((format!("run {}", i.key), format!("analyses/result?{}", i.query)));
                    unsaved.push(i.key);
                }
                Some(s) if s.is_stale() => {
                    links.push((format!("re-run {} (#{})", i.key, s.saved.id), format!("analyses/result?{}", i.query)));
                    stale.push(format!("{} (#{})", i.key, s.saved.id));
                }
                Some(_) => {}
            }
        }
        let mut detail = Vec::new();
        if !unsaved.is_empty() {
            detail.push(format!("not saved: {}", unsaved.join(", ")));
        }
        if !stale.is_empty() {
            detail.push(format!(
                "saved on older data (the data changed since): {} — re-run and save again; the new save supersedes the old",
                stale.join(", ")
            ));
        }
        out.push(Check {
            label: "Every analysis of the plan saved on the current data",
            ok: unsaved.is_empty() && stale.is_empty(),
            detail: if detail.is_empty() { "all saved on the current data".into() } else { detail.join("; ") },
            advisory: false,
            links,
        });
        // Exploratory analyses go into the dossier too: one saved on older data stops its export.
        let other: Vec<&saved::SavedRow> =
            kept.iter().filter(|s| s.is_stale() && s.saved.plan_item.is_none()).collect();
        out.push(Check {
            label: "No other saved analysis computed on older data",
            ok: other.is_empty(),
            detail: if other.is_empty() {
                "none".into()
            } else {
                format!(
                    "{} saved on older data: {} — save each again on the current data, or retire it",
                    other.len(),
                    other.iter().map(|s| format!("#{}", s.saved.id)).collect::<Vec<_>>().join(", ")
                )
            },
            advisory: false,
            links: other
                .iter()
                .map(|s| (format!("#{} {}", s.saved.id, s.saved.title), format!("analyses/saved/{}", s.saved.id)))
                .collect(),
        });
    }
    if let Some(run_id) = sources.run {
        let run = crate::biomarker::runs::get(conn, study_id, run_id)?;
        let results = crate::biomarker::runs::results(conn, run_id)?;
        let failed = results.iter().filter(|r| r.status != crate::biomarker::runs::ResultStatus::Ok).count();
        let waiting = run.slide_ids().len().saturating_sub(results.len());
        out.push(Check {
            label: "Primary run finished with no failed slide",
            ok: failed == 0 && waiting == 0,
            detail: format!("run {run_id}: {} slides, {failed} failed, {waiting} not analysed", run.slide_ids().len()),
            advisory: false,
            links: vec![(format!("run {run_id}"), format!("runs/{run_id}"))],
        });
        let done: std::collections::BTreeSet<String> = results
            .iter()
            .filter(|r| r.status == crate::biomarker::runs::ResultStatus::Ok)
            .map(|r| r.slide.clone())
            .collect();
        let missing: Vec<String> = crate::slides::enrolled_available(conn, study_id, "", "")?
            .into_iter()
            .map(|(_, label)| label)
            .filter(|l| !done.contains(l))
            .collect();
        out.push(Check {
            label: "Every slide analysed or excluded with a reason",
            ok: missing.is_empty(),
            detail: if missing.is_empty() {
                "all analysed".into()
            } else {
                format!("{} slides neither analysed nor excluded, e.g. {}", missing.len(), missing[0])
            },
            advisory: false,
            links: missing.iter().take(5).map(|l| (l.clone(), format!("slides/{l}"))).collect(),
        });
    }
    let failing = crate::cases::dictionary::failing_values(conn, study_id)?;
    out.push(Check {
        label: "No case value fails the current data dictionary",
        ok: failing.is_empty(),
        detail: match failing.first() {
            None => "all values validate".into(),
            Some(f) => format!("{} values fail, e.g. {} {} = {}", failing.len(), f.case, f.field, f.value),
        },
        advisory: false,
        links: failing.iter().take(5).map(|f| (f.case.clone(), format!("cases/{}", f.case))).collect(),
    });
    let (open, open_errors) = crate::quality::open_counts(conn, study_id)?;
    out.push(Check {
        label: "No open data quality finding of severity error",
        ok: open_errors == 0,
        detail: if open_errors == 0 {
            format!("none ({open} open warnings)")
        } else {
            format!("{open_errors} open errors: correct the data, or exclude a finding with a reason where the value is right")
        },
        advisory: false,
        links: if open_errors == 0 {
            Vec::new()
        } else {
            vec![("data quality".into(), "quality?status=open&severity=error".into())]
        },
    });
    let queries = crate::quality::queries::unresolved(conn, study_id)?;
    out.push(Check {
        label: "No open or answered query",
        ok: queries == 0,
        detail: if queries == 0 {
            "every query closed".into()
        } else {
            format!("{queries} queries not closed: the sites answer, the monitor closes")
        },
        advisory: false,
        links: if queries == 0 { Vec::new() } else { vec![("queries".into(), "queries?status=unresolved".into())] },
    });
    let sdv_rule = crate::quality::sdv::rule(conn, study_id)?;
    let (_, progress, subjects) = crate::quality::sdv::progress(conn, study_id, &Default::default())?;
    let (forms, verified): (i64, i64) = progress.iter().fold((0, 0), |(f, v), p| (f + p.forms, v + p.verified));
    let first_missing = subjects.iter().find(|s| s.verified.iter().any(|v| !v));
    out.push(Check {
        label: "Every form of every enrolled subject source-verified",
        ok: verified == forms,
        detail: match sdv_rule {
            crate::quality::sdv::SdvRule::All => format!("{verified} of {forms} forms verified (the monitoring plan asks for all)"),
            crate::quality::sdv::SdvRule::None => {
                format!("{verified} of {forms} forms verified (the monitoring plan does not ask for all: this does not block the lock)")
            }
        },
        advisory: sdv_rule == crate::quality::sdv::SdvRule::None,
        links: match first_missing {
            Some(s) if verified != forms => {
                vec![("verification".into(), "verification".into()), (s.case.clone(), format!("cases/{}", s.case))]
            }
            _ => Vec::new(),
        },
    });
    let unresolved = failed_ingests(conn, study_id)?;
    out.push(Check {
        label: "No failed slide ingest left unresolved",
        ok: unresolved.is_empty(),
        detail: if unresolved.is_empty() {
            "none".into()
        } else {
            format!("{} failed rows not ingested since, e.g. {}", unresolved.len(), unresolved[0].1)
        },
        advisory: false,
        links: unresolved
            .iter()
            .take(5)
            .map(|(id, _)| (format!("ingest #{id}"), format!("slides/ingests/{id}")))
            .collect(),
    });
    let outstanding = |conn: &mut Conn, cid: i32| -> Result<usize> {
        Ok(crate::annotations::reads::of_campaign(conn, study_id, cid)?
            .into_iter()
            .filter(|r| !r.is_submitted() && !r.is_withdrawn())
            .count())
    };
    if let Some(cid) = sources.campaign {
        let open = outstanding(conn, cid)?;
        out.push(Check {
            label: "Every read of the reference campaign submitted (or withdrawn)",
            ok: open == 0,
            detail: format!("{open} reads open"),
            advisory: false,
            links: vec![("campaign".into(), format!("campaigns/{cid}"))],
        });
    }
    // Campaigns outside the analysis set still open with reads outstanding: locking closes them.
    let mut others = Vec::new();
    for c in crate::annotations::campaigns::list(conn, study_id)? {
        if Some(c.id) == sources.campaign || c.status != crate::annotations::campaigns::CampaignStatus::Open {
            continue;
        }
        let n = outstanding(conn, c.id)?;
        if n > 0 {
            others.push((c.id, format!("{} ({n} reads outstanding)", c.name)));
        }
    }
    out.push(Check {
        label: "No other open campaign has reads outstanding",
        ok: others.is_empty(),
        detail: if others.is_empty() {
            "none".into()
        } else {
            format!(
                "{} — locking closes every open campaign; readers then can no longer submit",
                others.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>().join(", ")
            )
        },
        advisory: true,
        links: others.iter().map(|(id, _)| (format!("campaign {id}"), format!("campaigns/{id}"))).collect(),
    });
    Ok(out)
}

/// Closes every open campaign of the study (inside the locking transaction): a locked study takes
/// no reads. Each is audited like a manager's close, with the reason; returns their names.
pub(super) fn close_campaigns(conn: &mut Conn, actor: &Actor, study: &Study) -> Result<Vec<String>> {
    use crate::annotations::campaigns::{self, CampaignStatus};
    let mut closed = Vec::new();
    for c in campaigns::list(conn, study.id)?.into_iter().filter(|c| c.status == CampaignStatus::Open) {
        campaigns::record_status(conn, actor, study, &c, CampaignStatus::Closed, "closed by the study lock")?;
        closed.push(c.name);
    }
    Ok(closed)
}

/// Slide-ingest rows that failed and whose case has had no slide ingested since (a failure is
/// resolved by ingesting that case's slide again): (ingest id, "ingest #id row n (case): message").
fn failed_ingests(conn: &mut Conn, study_id: crate::studies::StudyId) -> Result<Vec<(i32, String)>> {
    use crate::db::schema::slide_ingests;
    let ingests: Vec<(i32, String)> = slide_ingests::table
        .filter(slide_ingests::study_id.eq(study_id))
        .order(slide_ingests::id.asc())
        .select((slide_ingests::id, slide_ingests::report))
        .load(conn)?;
    let mut open: Vec<(String, (i32, String))> = Vec::new();
    for (id, report) in ingests {
        let rows: Vec<crate::slides::ingest::RowOutcome> = serde_json::from_str(&report).unwrap_or_default();
        for r in rows {
            match r.outcome.as_str() {
                "failed" => {
                    open.push((r.case.clone(), (id, format!("ingest #{id} row {} ({}): {}", r.row, r.case, r.message))))
                }
                "ingested" | "skipped" => open.retain(|(case, _)| *case != r.case),
                _ => {}
            }
        }
    }
    Ok(open.into_iter().map(|(_, s)| s).collect())
}
