//! The job kinds this build knows, and the context a running job reports through.

use std::path::PathBuf;

use serde_json::Value;

use super::Job;
use crate::auth::permissions::Permission;
use crate::db::{DbPool, PooledConn};

/// A job was cancelled at a progress report.
#[derive(Debug, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

/// What a running job can use: the database, the data dir, and a way to report progress.
pub struct JobContext {
    pub pool: DbPool,
    pub data_dir: PathBuf,
    /// Where slides, models and dossiers are stored.
    pub storage: crate::storage::Storage,
    pub job: Job,
    /// The worker running it (its lead, or a helper working on its items).
    pub worker: String,
    /// How long a worker may go without a heartbeat before its work is taken over.
    pub stale_after: std::time::Duration,
}

impl JobContext {
    pub fn conn(&self) -> anyhow::Result<PooledConn> {
        Ok(self.pool.get()?)
    }
    /// The resume point saved by an earlier attempt, if any, as the job's type for it; one of
    /// another shape fails the job (never a fresh start that would redo finished work silently).
    pub fn checkpoint<T: serde::de::DeserializeOwned>(&self) -> anyhow::Result<Option<T>> {
        self.job
            .checkpoint
            .as_deref()
            .map(|s| {
                serde_json::from_str(s)
                    .map_err(|e| anyhow::anyhow!("job {}: its resume point is not as expected: {e}", self.job.id))
            })
            .transpose()
    }
    /// Records progress and a resume point; fails with [`Cancelled`] when a cancel was asked.
    pub fn progress(&self, done: i64, total: i64, message: &str, checkpoint: Option<&Value>) -> anyhow::Result<()> {
        let mut conn = self.conn()?;
        let cancel = super::report_progress(&mut conn, self.job.id, done, total, message, checkpoint)?;
        if cancel {
            return Err(Cancelled.into());
        }
        Ok(())
    }
}

/// One kind of job: decodes its parameters and does the work.
pub trait JobHandler: Send + Sync {
    fn run(&self, ctx: &JobContext) -> anyhow::Result<Value>;

    /// Works on items of a job another worker leads ([`super::items`]), starting with `first`
    /// (claimed for it), until none is left to claim; only kinds that fan out into items have
    /// any, so the default gives the item up as failed.
    fn help(&self, ctx: &JobContext, first: super::items::Claimed) -> anyhow::Result<()> {
        super::items::finish(&mut *ctx.conn()?, first, &ctx.worker, Some("this kind of job has no work items"))?;
        Ok(())
    }

    /// Whether the job only reads its study: its start and cancel are then audited on the
    /// system chain, so that the study's own trail stays as it was (see `jobs::enqueue`).
    fn reads_only(&self) -> bool {
        false
    }
}

crate::db::text_enum! {
    /// The kinds of job this build runs; later capabilities add theirs here and in `handler`.
    pub enum JobKind {
        /// Re-verifies the audit chains (`audit::job`).
        AuditVerify = "audit_verify",
        /// Ingests slide files (`slides::ingest`).
        SlideIngest = "slide_ingest",
        /// Runs a biomarker model over slides (`biomarker::runs`).
        BiomarkerRun = "biomarker_run",
        /// Writes the evidence dossier (`dossier`).
        DossierExport = "dossier_export",
    }
}

impl JobKind {
    /// What the job does, as its pages name it.
    pub fn label(self) -> &'static str {
        match self {
            JobKind::AuditVerify => "Audit trail check",
            JobKind::SlideIngest => "Slide ingest",
            JobKind::BiomarkerRun => "AI run",
            JobKind::DossierExport => "Dossier export",
        }
    }

    /// The study permission that starts a job of this kind. Cancelling one takes the same
    /// permission, or having started it: a monitor may cancel an integrity check, never a
    /// manager's ingest or run.
    pub fn started_with(self) -> Permission {
        match self {
            JobKind::AuditVerify => Permission::RunChecks,
            JobKind::SlideIngest => Permission::ManageSlides,
            JobKind::BiomarkerRun => Permission::ManageRuns,
            JobKind::DossierExport => Permission::ViewAnalyses,
        }
    }

    /// The code that runs jobs of this kind.
    pub fn handler(self) -> Box<dyn JobHandler> {
        match self {
            JobKind::AuditVerify => Box::new(crate::audit::job::VerifyAuditJob),
            JobKind::SlideIngest => Box::new(crate::slides::ingest::SlideIngestJob),
            JobKind::BiomarkerRun => Box::new(crate::biomarker::runs::RunJob),
            JobKind::DossierExport => Box::new(crate::dossier::DossierJob),
        }
    }
}
