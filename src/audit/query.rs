//! Reading the audit trail: filters, paging and the CSV export.

use diesel::prelude::*;

use super::AuditEvent;
use crate::db::paging::{Page, PageRequest};
use crate::db::schema::audit_events;
use crate::db::Conn;
use crate::error::Result;
use crate::export::CsvRecord;

/// Filters from the audit page; empty strings mean "any".
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct AuditFilter {
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub entity: String,
    /// `YYYY-MM-DD`, inclusive.
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
}

/// Events of one study (`Some(id)`) or of every chain (`None`), newest first.
pub fn list(
    conn: &mut Conn,
    study_id: Option<crate::studies::StudyId>,
    f: &AuditFilter,
    page: PageRequest,
) -> Result<Page<AuditEvent>> {
    let build = || {
        let mut q = audit_events::table.into_boxed();
        if let Some(id) = study_id {
            q = q.filter(audit_events::study_id.eq(id));
        }
        if !f.user.trim().is_empty() {
            q = q.filter(audit_events::actor.eq(f.user.trim().to_string()));
        }
        if !f.action.trim().is_empty() {
            q = q.filter(audit_events::action.eq(f.action.trim().to_string()));
        }
        if !f.entity.trim().is_empty() {
            q = q.filter(audit_events::entity.eq(f.entity.trim().to_string()));
        }
        // `at` is ISO 8601 UTC text, so string comparison orders it correctly.
        if let Some(d) = parse_day(&f.from) {
            q = q.filter(audit_events::at.ge(format!("{d}T00:00:00")));
        }
        if let Some(d) = parse_day(&f.to) {
            q = q.filter(audit_events::at.le(format!("{d}T23:59:59.999999Z")));
        }
        q
    };
    let total: i64 = build().count().get_result(conn)?;
    let items = build()
        .order(audit_events::id.desc())
        .limit(page.per_page)
        .offset(page.offset())
        .select(AuditEvent::as_select())
        .load(conn)?;
    Ok(Page { items, total, page: page.page, per_page: page.per_page })
}

fn parse_day(s: &str) -> Option<chrono::NaiveDate> {
    chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()
}

/// Distinct values for the filter drop-downs.
pub fn distinct_values(
    conn: &mut Conn,
    study_id: Option<crate::studies::StudyId>,
) -> Result<(Vec<String>, Vec<String>, Vec<String>)> {
    let mut users = audit_events::table.select(audit_events::actor).distinct().into_boxed();
    let mut actions = audit_events::table.select(audit_events::action).distinct().into_boxed();
    let mut entities = audit_events::table.select(audit_events::entity).distinct().into_boxed();
    if let Some(id) = study_id {
        users = users.filter(audit_events::study_id.eq(id));
        actions = actions.filter(audit_events::study_id.eq(id));
        entities = entities.filter(audit_events::study_id.eq(id));
    }
    let mut u: Vec<String> = users.load(conn)?;
    let mut a: Vec<String> = actions.load(conn)?;
    let mut e: Vec<String> = entities.load(conn)?;
    u.sort();
    a.sort();
    e.sort();
    Ok((u, a, e))
}

/// With the chain fields, a study's chain can be re-verified from its own export.
impl CsvRecord for AuditEvent {
    const HEADER: &'static [&'static str] = &[
        "id",
        "chain",
        "seq",
        "at",
        "actor",
        "action",
        "entity",
        "entity_id",
        "old_value",
        "new_value",
        "reason",
        "prev_hash",
        "hash",
    ];
    fn record(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.chain.clone(),
            self.seq.to_string(),
            self.at.clone(),
            self.actor.clone(),
            self.action.as_str().to_string(),
            self.entity.to_string(),
            self.entity_id.clone(),
            self.old_value.clone().unwrap_or_default(),
            self.new_value.clone().unwrap_or_default(),
            self.reason.clone().unwrap_or_default(),
            self.prev_hash.clone(),
            self.hash.clone(),
        ]
    }
}
