//! The demo's AI biomarker run: the bundled demonstration model over every demo slide, started
//! once (the caller runs its job, with progress in the terminal).

use crate::auth::permissions::study_access;
use crate::auth::Actor;
use crate::biomarker::card::ModelCard;
use crate::biomarker::registry;
use crate::biomarker::runs::{self, Run};
use crate::db::Conn;
use crate::error::Result;
use crate::jobs::Job;

/// Starts the demo run when the study has slides and no run yet.
pub fn start_run(conn: &mut Conn, study: &str) -> Result<Option<(Run, Job)>> {
    let operator = Actor::cli_operator();
    let access = study_access(conn, &operator, study)?;
    if !runs::list(conn, access.study.id)?.is_empty() || crate::slides::count(conn, access.study.id)? == 0 {
        return Ok(None);
    }
    let key = ModelCard::parse(registry::DEMO_CARD)?.key();
    Ok(Some(runs::start(conn, &operator, &access, &key, "", "")?))
}

/// The newest run with a result for every slide it covers (what AI-assisted demo reads use).
pub fn finished_run(conn: &mut Conn, study_id: crate::studies::StudyId) -> Result<Option<i32>> {
    for run in runs::list(conn, study_id)? {
        if runs::slides_with_result(conn, run.id)?.len() == run.slide_ids().len() {
            return Ok(Some(run.id));
        }
    }
    Ok(None)
}
