//! Saved analyses: a statistician freezes an analysis — its parameters and data sources, the
//! SHA-256 of the exact input dataset, the results, the plot and the software version — in one
//! audited transaction. Re-running it on the current data shows what changed. Saved analyses are
//! retired with a reason, never deleted.
//!
//! A saved analysis whose input no longer hashes the same (a case edited, a slide ingested, a
//! read submitted since) is *stale*: [`freshness`] tells, and every list of saved analyses, the
//! pre-lock checklist and the dossier export use it. Saving the same analysis again (or the same
//! item of the plan) *supersedes* the one saved before: it stays, marked superseded, with a link
//! to its successor, in the same audited transaction.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::{json, Value};

use super::plan::{self, Criterion, Verdict};
use super::{compute, leaves, Request};
use crate::audit::{self, Action, Change, Entity};
use crate::auth::permissions::{Permission, StudyAccess};
use crate::auth::Actor;
use crate::db::schema::saved_analyses;
use crate::db::{now, write_tx, Conn};
use crate::error::{Error, Result};
use crate::stats::analysis::Analysis;

pub const SOFTWARE: &str = concat!("evidentia ", env!("CARGO_PKG_VERSION"));

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = saved_analyses)]
pub struct Saved {
    pub id: i32,
    pub study_id: crate::studies::StudyId,
    pub title: String,
    pub analysis: super::AnalysisName,
    pub query: String,
    pub plan_id: Option<i32>,
    pub plan_item: Option<String>,
    pub input_sha256: String,
    pub input_rows: i32,
    #[serde(skip)]
    pub result: String,
    #[serde(skip)]
    pub plot_svg: String,
    pub software_version: String,
    pub status: SavedStatus,
    pub status_reason: Option<String>,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    /// The saved analysis that replaced this one, when superseded.
    pub superseded_by: Option<i32>,
}

crate::db::text_enum! {
    /// A saved analysis: current; retired with a reason; or superseded by a later save of the
    /// same analysis (all kept).
    pub enum SavedStatus {
        Current = "current",
        Retired = "retired",
        Superseded = "superseded",
    }
}

impl Saved {
    pub fn result(&self) -> Value {
        serde_json::from_str(&self.result).unwrap_or(Value::Null)
    }

    /// The analysis as it was computed: its query's, with the category order its result records
    /// when the app gave one (Cohen's kappa of a scale, `Dataset::with_category_order`) — what
    /// the dossier re-computes and the shown command runs.
    pub fn analysis(&self) -> Result<Analysis> {
        Ok(match Request::parse(&self.query)?.analysis()? {
            Analysis::Kappa { a, b, weights, categories } if categories.is_empty() => {
                let recorded = self.result()["categories"].as_array().cloned().unwrap_or_default();
                // Numbers are the contract's own (numeric) order: nothing to add.
                let names: Option<Vec<String>> = recorded.iter().map(|c| c.as_str().map(str::to_string)).collect();
                Analysis::Kappa { a, b, weights, categories: names.unwrap_or_default() }
            }
            other => other,
        })
    }
}

/// A saved analysis with its place in the plan it was saved under.
#[derive(Debug, Clone)]
pub struct SavedRow {
    pub saved: Saved,
    pub role: Option<crate::analyses::plan::PlanRole>,
    pub criterion: Option<Criterion>,
    pub observed: Option<f64>,
    pub verdict: Option<Verdict>,
    /// A current saved analysis whose input no longer hashes the same; `None` when not checked
    /// (see [`freshness`]) or not current.
    pub stale: Option<bool>,
}

impl SavedRow {
    /// Its place in the plan (`primary`, `secondary`), or nothing when it is exploratory.
    pub fn role_label(&self) -> &'static str {
        self.role.map(|r| r.as_str()).unwrap_or_default()
    }
    pub fn criterion_label(&self) -> String {
        self.criterion.as_ref().map(Criterion::label).unwrap_or_default()
    }
    pub fn is_current(&self) -> bool {
        self.saved.status == SavedStatus::Current
    }
    pub fn is_stale(&self) -> bool {
        self.stale == Some(true)
    }
    /// "current", "stale", "retired", "superseded": what the lists show and the CSV exports.
    pub fn state(&self) -> &'static str {
        if self.is_stale() {
            "stale"
        } else {
            self.saved.status.as_str()
        }
    }
}

/// Marks every current saved analysis of `rows` stale or not: each distinct data source's
/// dataset hashed as when it was saved (see [`dataset_sha256`]).
pub fn freshness(conn: &mut Conn, study_id: crate::studies::StudyId, rows: &mut [SavedRow]) -> Result<()> {
    for row in rows.iter_mut().filter(|r| r.is_current()) {
        let sources = Request::parse(&row.saved.query)?.sources();
        row.stale = Some(dataset_sha256(conn, study_id, &sources)? != row.saved.input_sha256);
    }
    Ok(())
}

/// Dataset hashes by study and sources, with the head of the study's audit chain they were
/// computed at.
type HashMemo = std::collections::HashMap<(crate::studies::StudyId, super::Sources), (String, String)>;

/// The SHA-256 of the dataset of `sources` as it is now. Building a dataset reads every case of
/// the study, and the pages that list saved analyses (the study page's checklist among them) ask
/// on every view: so the hash is kept with the head of the study's audit chain, which every change
/// to the study's data moves in the same transaction (an AI run's results, when the run finishes),
/// and built again only once the head has moved. (Keyed by the head's hash, not its number: one
/// process may open several databases, as the tests do.)
fn dataset_sha256(conn: &mut Conn, study_id: crate::studies::StudyId, sources: &super::Sources) -> Result<String> {
    static MEMO: std::sync::Mutex<Option<HashMemo>> = std::sync::Mutex::new(None);
    let head = crate::audit::study_head(conn, study_id)?;
    let key = (study_id, sources.clone());
    if let Some((at, sha)) = MEMO.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(HashMemo::new).get(&key)
    {
        if *at == head {
            return Ok(sha.clone());
        }
    }
    let sha = super::dataset::build(conn, study_id, sources)?.sha256()?;
    let mut memo = MEMO.lock().unwrap_or_else(|p| p.into_inner());
    let memo = memo.get_or_insert_with(HashMemo::new);
    if memo.len() >= 256 {
        memo.clear();
    }
    memo.insert(key, (head, sha.clone()));
    Ok(sha)
}

/// The study's saved analyses with their freshness (what the pages list).
pub fn list_checked(conn: &mut Conn, study_id: crate::studies::StudyId) -> Result<Vec<SavedRow>> {
    let mut rows = list(conn, study_id)?;
    freshness(conn, study_id, &mut rows)?;
    Ok(rows)
}

/// How many saved analyses are current: a change to the data makes them stale (the pages that
/// change data warn with it).
pub fn current_count(conn: &mut Conn, study_id: crate::studies::StudyId) -> Result<i64> {
    Ok(saved_analyses::table
        .filter(saved_analyses::study_id.eq(study_id))
        .filter(saved_analyses::status.eq(SavedStatus::Current))
        .count()
        .get_result(conn)?)
}

pub fn list(conn: &mut Conn, study_id: crate::studies::StudyId) -> Result<Vec<SavedRow>> {
    let all: Vec<Saved> = saved_analyses::table
        .filter(saved_analyses::study_id.eq(study_id))
        .order(saved_analyses::id.asc())
        .select(Saved::as_select())
        .load(conn)?;
    let plans = plan::versions(conn, study_id)?;
    Ok(all.into_iter().map(|s| with_plan(&plans, s)).collect())
}

pub fn get(conn: &mut Conn, study_id: crate::studies::StudyId, id: i32) -> Result<SavedRow> {
    let s: Saved = saved_analyses::table
        .filter(saved_analyses::study_id.eq(study_id))
        .filter(saved_analyses::id.eq(id))
        .select(Saved::as_select())
        .first(conn)
        .optional()?
        .ok_or(Error::NotFound)?;
    Ok(with_plan(&plan::versions(conn, study_id)?, s))
}

fn with_plan(plans: &[plan::Plan], saved: Saved) -> SavedRow {
    let item = saved
        .plan_id
        .and_then(|pid| plans.iter().find(|p| p.id == pid))
        .and_then(|p| p.items().into_iter().find(|i| Some(&i.key) == saved.plan_item.as_ref()));
    let criterion = item.as_ref().and_then(|i| i.criterion.clone());
    let (observed, verdict) = match &criterion {
        Some(c) => {
            let (o, v) = c.evaluate(&saved.result());
            (o, Some(v))
        }
        None => (None, None),
    };
    SavedRow { role: item.map(|i| i.role), criterion, observed, verdict, saved, stale: None }
}

/// Saves the analysis of `req` on the current data. It must compute (an analysis that cannot be
/// computed is refused with the reason). When the signed plan holds this exact analysis, the
/// saved result is that plan item's. Every current saved analysis of the same analysis (or of
/// the same plan item) is superseded by the new one, audited in the same transaction.
pub fn save(conn: &mut Conn, actor: &Actor, access: &StudyAccess, req: &Request, title: &str) -> Result<Saved> {
    access.require(Permission::ManageAnalyses)?;
    crate::studies::get_by_code(conn, &access.study.code)?.ensure_editable()?;
    let title = title.trim();
    if title.is_empty() {
        return Err(Error::invalid("title", "give the saved analysis a title"));
    }
    let (computed, _) = compute(conn, access.study.id, req)?;
    let outcome = computed.outcome.as_ref().map_err(|e| Error::invalid("analysis", e.clone()))?;
    let result = outcome.to_json();
    let svg = crate::stats::plots::plot(outcome).unwrap_or_default();
    let signed = plan::signed(conn, access.study.id)?;
    let item = signed.as_ref().and_then(|p| p.item_for(&computed.query));
    write_tx(conn, |conn| {
        let id: i32 = diesel::insert_into(saved_analyses::table)
            .values((
                saved_analyses::study_id.eq(access.study.id),
                saved_analyses::title.eq(title),
                saved_analyses::analysis.eq(computed.analysis.name()),
                saved_analyses::query.eq(&computed.query),
                saved_analyses::plan_id.eq(item.as_ref().and(signed.as_ref().map(|p| p.id))),
                saved_analyses::plan_item.eq(item.as_ref().map(|i| i.key.clone())),
                saved_analyses::input_sha256.eq(&computed.input_sha256),
                saved_analyses::input_rows.eq(computed.input_rows as i32),
                saved_analyses::result.eq(result.to_string()),
                saved_analyses::plot_svg.eq(&svg),
                saved_analyses::software_version.eq(SOFTWARE),
                saved_analyses::status.eq(SavedStatus::Current),
                saved_analyses::created_by.eq(&actor.name),
                saved_analyses::created_at.eq(now()),
            ))
            .returning(saved_analyses::id)
            .get_result(conn)?;
        audit::record(
            conn,
            Change::new(access.study.chain(), &actor.name, Action::SaveAnalysis, Entity::SavedAnalysis, id).after(
                json!({
                    "title": title, "query": computed.query, "input_sha256": computed.input_sha256,
                    "input_rows": computed.input_rows, "plan_item": item.as_ref().map(|i| &i.key),
                    "software": SOFTWARE, "result": result,
                }),
            ),
        )?;
        let plan_key = item.as_ref().map(|i| i.key.clone());
        let earlier: Vec<Saved> = saved_analyses::table
            .filter(saved_analyses::study_id.eq(access.study.id))
            .filter(saved_analyses::status.eq(SavedStatus::Current))
            .filter(saved_analyses::id.ne(id))
            .select(Saved::as_select())
            .load::<Saved>(conn)?
            .into_iter()
            .filter(|s| s.query == computed.query || (plan_key.is_some() && s.plan_item == plan_key))
            .collect();
        for old in earlier {
            let reason = format!("superseded by #{id}: the same analysis saved again");
            diesel::update(saved_analyses::table.find(old.id))
                .set((
                    saved_analyses::status.eq(SavedStatus::Superseded),
                    saved_analyses::status_reason.eq(&reason),
                    saved_analyses::superseded_by.eq(id),
                ))
                .execute(conn)?;
            audit::record(
                conn,
                Change::new(
                    access.study.chain(),
                    &actor.name,
                    Action::SupersedeAnalysis,
                    Entity::SavedAnalysis,
                    old.id,
                )
                .before(json!({"status": old.status, "input_sha256": old.input_sha256}))
                .after(json!({"status": SavedStatus::Superseded, "superseded_by": id}))
                .because(&reason),
            )?;
        }
        Ok(saved_analyses::table.find(id).select(Saved::as_select()).first(conn)?)
    })
}

/// Retires a saved analysis (it stays, marked retired, with the reason).
pub fn retire(conn: &mut Conn, actor: &Actor, access: &StudyAccess, id: i32, reason: &str) -> Result<()> {
    access.require(Permission::ManageAnalyses)?;
    crate::studies::get_by_code(conn, &access.study.code)?.ensure_editable()?;
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(Error::invalid("reason", "say why the saved analysis is retired"));
    }
    write_tx(conn, |conn| {
        let s = get(conn, access.study.id, id)?.saved;
        if s.status != SavedStatus::Current {
            return Err(Error::Conflict(format!("already {}", s.status)));
        }
        diesel::update(saved_analyses::table.find(id))
            .set((saved_analyses::status.eq(SavedStatus::Retired), saved_analyses::status_reason.eq(reason)))
            .execute(conn)?;
        audit::record(
            conn,
            Change::new(access.study.chain(), &actor.name, Action::RetireAnalysis, Entity::SavedAnalysis, id)
                .before(json!({"status": s.status}))
                .after(json!({"status": "retired"}))
                .because(reason),
        )?;
        Ok(())
    })
}

/// A saved analysis re-run on the current data.
#[derive(Debug, Clone)]
pub struct Rerun {
    pub input_sha256: String,
    pub input_rows: usize,
    pub same_data: bool,
    /// (result path, saved value, current value) for every value that differs.
    pub changes: Vec<(String, String, String)>,
    /// Why the analysis no longer computes, if it does not.
    pub error: Option<String>,
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn rerun(conn: &mut Conn, study_id: crate::studies::StudyId, saved: &Saved) -> Result<Rerun> {
    let req = Request::parse(&saved.query)?;
    let (computed, _) = compute(conn, study_id, &req)?;
    let before: Vec<(String, Value)> = leaves(&saved.result());
    let (mut changes, mut error) = (Vec::new(), None);
    match &computed.outcome {
        Ok(o) => {
            let after = leaves(&o.to_json());
            for (path, old) in &before {
                let new = after.iter().find(|(p, _)| p == path).map(|(_, v)| v.clone()).unwrap_or(Value::Null);
                if &new != old {
                    changes.push((path.clone(), show(old), show(&new)));
                }
            }
            for (path, new) in &after {
                if !before.iter().any(|(p, _)| p == path) {
                    changes.push((path.clone(), "—".into(), show(new)));
                }
            }
        }
        Err(e) => error = Some(e.clone()),
    }
    Ok(Rerun {
        same_data: computed.input_sha256 == saved.input_sha256,
        input_sha256: computed.input_sha256,
        input_rows: computed.input_rows,
        changes,
        error,
    })
}
