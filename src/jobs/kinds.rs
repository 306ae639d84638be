//! The job kinds this build knows, and the context a running job reports through.

use std::path::PathBuf;

use serde_json::Value;

use super::Job;
use crate::db::{DbPool, PooledConn};

/// A job was cancelled at a progress report.
#[derive(Debug, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

/// What a running job can use: the database, the data dir, and a way to report progress.
pub struct JobContext {
    pub pool: DbPool,
    pub data_dir: PathBuf,
    pub job: Job,
}

impl JobContext {
    pub fn conn(&self) -> anyhow::Result<PooledConn> {
        Ok(self.pool.get()?)
    }
    /// The resume point saved by an earlier attempt, if any.
    pub fn checkpoint(&self) -> Option<Value> {
        self.job.checkpoint.as_deref().and_then(|s| serde_json::from_str(s).ok())
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

    /// Whether the job only reads its study: its start and cancel are then audited on the
    /// system chain, so that the study's own trail stays as it was (see `jobs::enqueue`).
    fn reads_only(&self) -> bool {
        false
    }
}

/// The handler for a kind; later capabilities add theirs here.
pub fn handler(kind: &str) -> Option<Box<dyn JobHandler>> {
    match kind {
        crate::audit::job::KIND => Some(Box::new(crate::audit::job::VerifyAuditJob)),
        crate::slides::ingest::KIND => Some(Box::new(crate::slides::ingest::SlideIngestJob)),
        crate::biomarker::runs::KIND => Some(Box::new(crate::biomarker::runs::RunJob)),
        crate::dossier::KIND => Some(Box::new(crate::dossier::DossierJob)),
        _ => None,
    }
}
