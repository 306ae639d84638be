//! The finished demo study: locked by its manager when the pre-lock checklist is complete (by the
//! administrator with a recorded reason when a small demo leaves it open), then signed by the
//! manager (responsibility) and the statistician (approval).

use crate::auth::permissions::study_access;
use crate::auth::users;
use crate::db::Conn;
use crate::error::Result;
use crate::studies::{self, lock};

/// Locks and signs `study` unless it is locked already.
pub fn seed_lock(conn: &mut Conn, study: &str) -> Result<Vec<String>> {
    let admin = users::actor_for_username(conn, "admin")?;
    let sid = study_access(conn, &admin, study)?.study.id;
    if lock::current(conn, sid)?.is_some() {
        return Ok(Vec::new());
    }
    let open: Vec<String> =
        lock::checklist(conn, sid)?.into_iter().filter(lock::Check::blocks).map(|c| c.label.to_string()).collect();
    if open.is_empty() {
        let manager = users::actor_for_username(conn, "manager")?;
        let access = study_access(conn, &manager, study)?;
        studies::transition(conn, &manager, &access, "locked", "")?;
    } else {
        let access = study_access(conn, &admin, study)?;
        let reason = format!("demo with few slides: {}", open.join("; "));
        studies::transition(conn, &admin, &access, "locked", &reason)?;
    }
    for (username, meaning) in [("statistician", "approval"), ("manager", "responsibility")] {
        let actor = users::actor_for_username(conn, username)?;
        let access = study_access(conn, &actor, study)?;
        lock::sign(conn, &actor, &access, super::demo_signing(meaning))?;
    }
    let state = lock::state(conn, sid)?.map(|s| s.label()).unwrap_or_default();
    Ok(vec![format!(
        "{study} {state}: export its dossier with `evidentia dossier export --study {study} --out FILE.zip`"
    )])
}
