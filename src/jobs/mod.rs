//! The DB-backed job queue: long work (slide ingest, biomarker runs, dossier builds, integrity
//! checks) runs as jobs with progress, heartbeats, cancel and resume after a crash.

pub mod items;
pub mod kinds;

pub use kinds::JobKind;
pub mod worker;

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::{json, Value};

use crate::audit::{self, Action, Chain, Change, Entity};
use crate::auth::permissions::StudyAccess;
use crate::auth::Actor;
use crate::db::paging::{Page, PageRequest};
use crate::db::schema::jobs;
use crate::db::{now, write_tx, Conn};
use crate::error::{Error, OptionalExt, Result};
use crate::studies::Study;

crate::db::text_enum! {
    /// Where a job is: queued → running → succeeded / failed / cancelled (a running job whose
    /// heartbeat stops is queued again).
    pub enum JobStatus {
        Queued = "queued",
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = jobs)]
pub struct Job {
    pub id: i32,
    pub study_id: Option<crate::studies::StudyId>,
    pub kind: JobKind,
    pub params: String,
    pub owner: String,
    pub status: JobStatus,
    pub progress_done: i64,
    pub progress_total: i64,
    pub message: String,
    pub checkpoint: Option<String>,
    pub result: Option<String>,
    pub error: Option<String>,
    pub attempts: i32,
    pub max_attempts: i32,
    pub worker: Option<String>,
    pub heartbeat_at: Option<NaiveDateTime>,
    pub cancel_requested: bool,
    pub created_at: NaiveDateTime,
    pub started_at: Option<NaiveDateTime>,
    pub finished_at: Option<NaiveDateTime>,
}

impl Job {
    /// Who started it: a user name, or "command line (root)" for the operator's CLI (`cli:root`).
    pub fn owner_label(&self) -> String {
        match self.owner.strip_prefix("cli:") {
            Some(os_user) => format!("command line ({os_user})"),
            None => self.owner.clone(),
        }
    }
    pub fn is_finished(&self) -> bool {
        matches!(self.status, JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled)
    }
    /// 0–100, for the progress bar.
    pub fn percent(&self) -> i64 {
        if self.status == JobStatus::Succeeded {
            100
        } else if self.progress_total > 0 {
            (self.progress_done * 100 / self.progress_total).clamp(0, 100)
        } else {
            0
        }
    }
    /// The result of this succeeded job as its kind's type; a job of another kind, one without a
    /// result, or a result of another shape is an error (never a default).
    pub fn output<P: JobParams>(&self) -> anyhow::Result<P::Output> {
        anyhow::ensure!(self.kind == P::KIND, "job {} is a {} job, not {}", self.id, self.kind, P::KIND);
        let text =
            self.result.as_deref().ok_or_else(|| anyhow::anyhow!("job {} has no result ({})", self.id, self.status))?;
        serde_json::from_str(text)
            .map_err(|e| anyhow::anyhow!("job {}: its result does not fit its kind ({}): {e}", self.id, P::KIND))
    }

    /// The job's parameters as its kind's type; a job of another kind, or parameters of another
    /// shape, is an error (never a default).
    pub fn params<P: JobParams>(&self) -> anyhow::Result<P> {
        anyhow::ensure!(self.kind == P::KIND, "job {} is a {} job, not {}", self.id, self.kind, P::KIND);
        serde_json::from_str(&self.params)
            .map_err(|e| anyhow::anyhow!("job {}: its parameters do not fit its kind ({}): {e}", self.id, P::KIND))
    }
}

fn chain_for(study: Option<&Study>) -> Chain<'_> {
    study.map(|s| s.chain()).unwrap_or(Chain::System)
}

/// The chain a job's start and cancel are audited on: its study's, or the system chain for
/// studyless jobs and for jobs that only read a study (the dossier's export, so that the study's
/// own trail — and so the dossier's bytes — stays as it was).
fn audit_chain(kind: JobKind, study: Option<&Study>) -> Chain<'_> {
    if kind.handler().reads_only() {
        Chain::System
    } else {
        chain_for(study)
    }
}

/// The parameters of one kind of job: what `enqueue` stores and the handler reads back; and the
/// type of what a job of that kind gives when it succeeds.
pub trait JobParams: serde::Serialize + serde::de::DeserializeOwned {
    const KIND: JobKind;
    /// The result of a job of this kind (`jobs.result`): what its handler returns through
    /// [`output`] and [`Job::output`] reads back.
    type Output: serde::Serialize + serde::de::DeserializeOwned;
}

/// A job's result as its handler returns it: `P`'s output type, stored as JSON.
pub fn output<P: JobParams>(o: &P::Output) -> anyhow::Result<Value> {
    Ok(serde_json::to_value(o)?)
}

/// Queues a job of `P`'s kind with these parameters.
pub fn enqueue<P: JobParams>(conn: &mut Conn, actor: &Actor, study: Option<&Study>, params: &P) -> Result<Job> {
    create(conn, actor, study, params, None)
}

/// Creates a job of `P`'s kind: queued, or with `claimed_by` already claimed by that worker (a
/// command that runs its own job on files of its host — a slide ingest's plan — is sure no
/// worker on another host takes it first).
pub fn create<P: JobParams>(
    conn: &mut Conn,
    actor: &Actor,
    study: Option<&Study>,
    params: &P,
    claimed_by: Option<&str>,
) -> Result<Job> {
    let kind = P::KIND;
    let params = serde_json::to_value(params).map_err(|e| Error::Internal(e.into()))?;
    let chain = audit_chain(kind, study);
    write_tx(conn, |conn| {
        diesel::insert_into(jobs::table)
            .values((
                jobs::study_id.eq(study.map(|s| s.id)),
                jobs::kind.eq(kind),
                jobs::params.eq(params.to_string()),
                jobs::owner.eq(&actor.name),
                jobs::status.eq(JobStatus::Queued.as_str()),
                jobs::created_at.eq(now()),
            ))
            .execute(conn)?;
        let mut job: Job = jobs::table.order(jobs::id.desc()).select(Job::as_select()).first(conn)?;
        if let Some(worker) = claimed_by {
            job = claim(conn, job.id, worker)?.ok_or(Error::Conflict("a job being created was claimed".into()))?;
        }
        audit::record(
            conn,
            Change::new(chain, &actor.name, Action::StartJob, Entity::Job, job.id)
                .after(json!({"kind": kind.as_str(), "params": params})),
        )?;
        Ok(job)
    })
}

pub fn get(conn: &mut Conn, id: i32) -> Result<Job> {
    jobs::table.find(id).select(Job::as_select()).first(conn).or_not_found()
}

/// A job of one study; another study's job is not found.
pub fn get_in_study(conn: &mut Conn, study_id: crate::studies::StudyId, id: i32) -> Result<Job> {
    let job = get(conn, id)?;
    if job.study_id != Some(study_id) {
        return Err(Error::NotFound);
    }
    Ok(job)
}

/// Asks any job to stop (administrators' global jobs page), on the job's own chain.
pub fn request_cancel_any(conn: &mut Conn, actor: &Actor, id: i32) -> Result<Job> {
    if !actor.is_admin {
        return Err(Error::forbidden("only administrators manage every job"));
    }
    let job = get(conn, id)?;
    let study: Option<Study> = match job.study_id {
        Some(sid) => Some(crate::db::schema::studies::table.find(sid).select(Study::as_select()).first(conn)?),
        None => None,
    };
    request_cancel(conn, actor, study.as_ref(), id)
}

/// Takes the oldest queued job for `worker`. The conditional update makes the claim atomic:
/// of two workers racing for one job, exactly one sees a changed row.
pub fn claim_next(conn: &mut Conn, worker: &str) -> Result<Option<Job>> {
    if crate::db::is_postgres(conn) {
        // One statement: the oldest queued job no other worker is claiming at this moment.
        #[derive(QueryableByName)]
        struct Claimed {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            id: i32,
        }
        let t = now();
        let claimed: Option<Claimed> = diesel::sql_query(
            "UPDATE jobs SET status = $1, worker = $2, heartbeat_at = $3, attempts = attempts + 1, started_at = $3 \
             WHERE id = (SELECT id FROM jobs WHERE status = $4 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING id",
        )
        .bind::<diesel::sql_types::Text, _>(JobStatus::Running.as_str())
        .bind::<diesel::sql_types::Text, _>(worker)
        .bind::<diesel::sql_types::Timestamp, _>(t)
        .bind::<diesel::sql_types::Text, _>(JobStatus::Queued.as_str())
        .get_result(conn)
        .optional()?;
        return claimed.map(|c| get(conn, c.id)).transpose();
    }
    loop {
        let next: Option<i32> = jobs::table
            .filter(jobs::status.eq(JobStatus::Queued.as_str()))
            .order(jobs::id.asc())
            .select(jobs::id)
            .first(conn)
            .optional()?;
        let Some(id) = next else { return Ok(None) };
        if let Some(job) = claim(conn, id, worker)? {
            return Ok(Some(job));
        }
    }
}

/// Claims one specific job if it is still queued.
pub fn claim(conn: &mut Conn, id: i32, worker: &str) -> Result<Option<Job>> {
    let t = now();
    let n = diesel::update(jobs::table.filter(jobs::id.eq(id)).filter(jobs::status.eq(JobStatus::Queued.as_str())))
        .set((
            jobs::status.eq(JobStatus::Running.as_str()),
            jobs::worker.eq(worker),
            jobs::heartbeat_at.eq(Some(t)),
            jobs::attempts.eq(jobs::attempts + 1),
            jobs::started_at.eq(Some(t)),
        ))
        .execute(conn)?;
    if n == 1 {
        Ok(Some(get(conn, id)?))
    } else {
        Ok(None)
    }
}

/// Records progress (and a resume point) and refreshes the heartbeat; returns whether a cancel
/// was requested.
pub fn report_progress(
    conn: &mut Conn,
    id: i32,
    done: i64,
    total: i64,
    message: &str,
    checkpoint: Option<&Value>,
) -> Result<bool> {
    diesel::update(jobs::table.find(id))
        .set((
            jobs::progress_done.eq(done),
            jobs::progress_total.eq(total),
            jobs::message.eq(message),
            jobs::heartbeat_at.eq(Some(now())),
        ))
        .execute(conn)?;
    if let Some(c) = checkpoint {
        diesel::update(jobs::table.find(id)).set(jobs::checkpoint.eq(Some(c.to_string()))).execute(conn)?;
    }
    Ok(jobs::table.find(id).select(jobs::cancel_requested).first(conn)?)
}

pub fn heartbeat(conn: &mut Conn, id: i32) -> Result<()> {
    diesel::update(jobs::table.find(id).filter(jobs::status.eq(JobStatus::Running.as_str())))
        .set(jobs::heartbeat_at.eq(Some(now())))
        .execute(conn)?;
    Ok(())
}

/// How a run ended.
#[derive(Debug)]
pub enum Outcome {
    Succeeded(Value),
    Failed(String),
    Cancelled,
}

pub fn finish(conn: &mut Conn, id: i32, outcome: Outcome) -> Result<()> {
    let t = now();
    let (status, result, error) = match outcome {
        Outcome::Succeeded(v) => (JobStatus::Succeeded, Some(v.to_string()), None),
        Outcome::Failed(e) => (JobStatus::Failed, None, Some(e)),
        Outcome::Cancelled => (JobStatus::Cancelled, None, None),
    };
    diesel::update(jobs::table.find(id))
        .set((
            jobs::status.eq(status.as_str()),
            jobs::result.eq(result),
            jobs::error.eq(error),
            jobs::finished_at.eq(Some(t)),
            jobs::heartbeat_at.eq(Some(t)),
        ))
        .execute(conn)?;
    Ok(())
}

/// Asks a job to stop: a queued job is cancelled at once, a running one at its next progress
/// report. Audited.
/// Cancels a job of a study for one of its members: whoever started it, or who holds the
/// permission that starts its kind ([`JobKind::started_with`]).
pub fn request_cancel_in_study(conn: &mut Conn, actor: &Actor, access: &StudyAccess, id: i32) -> Result<Job> {
    let job = get_in_study(conn, access.study.id, id)?;
    if !may_cancel(access, &actor.name, job.kind, &job.owner) {
        return Err(Error::forbidden(format!(
            "only who started job {id} or may start a {} may cancel it",
            job.kind.label().to_lowercase()
        )));
    }
    request_cancel(conn, actor, Some(&access.study), id)
}

/// The rule of [`request_cancel_in_study`], for the pages to show the button only where it works.
pub fn may_cancel(access: &StudyAccess, actor: &str, kind: JobKind, owner: &str) -> bool {
    owner == actor || access.can(kind.started_with())
}

pub fn request_cancel(conn: &mut Conn, actor: &Actor, study: Option<&Study>, id: i32) -> Result<Job> {
    write_tx(conn, |conn| {
        let job = get(conn, id)?;
        if job.study_id != study.map(|s| s.id) {
            return Err(Error::NotFound);
        }
        if job.is_finished() {
            return Err(Error::Conflict(format!("job {} has already {}", job.id, job.status)));
        }
        if job.status == JobStatus::Queued {
            // Only while still queued: on PostgreSQL a worker's claim (a statement of its own)
            // may have taken it since the read; then the cancel request below stops it.
            diesel::update(jobs::table.find(id).filter(jobs::status.eq(JobStatus::Queued.as_str())))
                .set((jobs::status.eq(JobStatus::Cancelled.as_str()), jobs::finished_at.eq(Some(now()))))
                .execute(conn)?;
        }
        diesel::update(jobs::table.find(id)).set(jobs::cancel_requested.eq(true)).execute(conn)?;
        audit::record(
            conn,
            Change::new(audit_chain(job.kind, study), &actor.name, Action::CancelJob, Entity::Job, id)
                .before(json!({"status": job.status}))
                .after(json!({"cancel_requested": true})),
        )?;
        get(conn, id)
    })
}

/// The ids of a study's jobs of one kind that were interrupted — queued again after their worker
/// stopped (claimed before, so not a job still waiting for its first worker) — oldest first, for
/// a command that resumes them.
pub fn interrupted_in_study(conn: &mut Conn, study_id: crate::studies::StudyId, kind: JobKind) -> Result<Vec<i32>> {
    Ok(jobs::table
        .filter(jobs::study_id.eq(study_id))
        .filter(jobs::kind.eq(kind))
        .filter(jobs::status.eq(JobStatus::Queued.as_str()))
        .filter(jobs::attempts.gt(0))
        .order(jobs::id.asc())
        .select(jobs::id)
        .load(conn)?)
}

/// Running jobs whose worker stopped sending heartbeats go back to the queue (to resume from
/// their checkpoint), or fail once out of attempts. Returns how many were touched.
pub fn requeue_stale(conn: &mut Conn, stale_after: Duration) -> Result<usize> {
    let cutoff = now() - chrono::Duration::from_std(stale_after).unwrap_or_default();
    write_tx(conn, |conn| {
        let stale: Vec<Job> = jobs::table
            .filter(jobs::status.eq(JobStatus::Running.as_str()))
            .filter(jobs::heartbeat_at.lt(cutoff))
            .select(Job::as_select())
            .load(conn)?;
        let mut touched = 0;
        for job in &stale {
            // Still stale now: on PostgreSQL the worker may have beaten or finished since the
            // read (its heartbeat and its end are statements of their own).
            let still = diesel::update(
                jobs::table
                    .find(job.id)
                    .filter(jobs::status.eq(JobStatus::Running.as_str()))
                    .filter(jobs::heartbeat_at.lt(cutoff)),
            )
            .set(jobs::heartbeat_at.eq(Some(now())))
            .execute(conn)?;
            if still == 0 {
                continue;
            }
            touched += 1;
            if job.cancel_requested {
                finish(conn, job.id, Outcome::Cancelled)?;
            } else if job.attempts >= job.max_attempts {
                finish(conn, job.id, Outcome::Failed(format!("worker lost {} times", job.attempts)))?;
            } else {
                diesel::update(jobs::table.find(job.id))
                    .set((
                        jobs::status.eq(JobStatus::Queued.as_str()),
                        jobs::worker.eq(None::<String>),
                        jobs::message
                            .eq(format!("worker {} stopped; queued to resume", job.worker.clone().unwrap_or_default())),
                    ))
                    .execute(conn)?;
            }
        }
        Ok(touched)
    })
}

/// Jobs of one study (or all, for admins), newest first.
pub fn list(conn: &mut Conn, study_id: Option<crate::studies::StudyId>, page: PageRequest) -> Result<Page<Job>> {
    let build = || {
        let mut q = jobs::table.into_boxed();
        if let Some(id) = study_id {
            q = q.filter(jobs::study_id.eq(id));
        }
        q
    };
    let total = build().count().get_result(conn)?;
    let items = build()
        .order(jobs::id.desc())
        .limit(page.per_page)
        .offset(page.offset())
        .select(Job::as_select())
        .load(conn)?;
    Ok(Page { items, total, page: page.page, per_page: page.per_page })
}
