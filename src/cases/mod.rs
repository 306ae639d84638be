//! Cases: the per-study data dictionary (REDCap format), de-identified import of site
//! spreadsheets, case records and their exports. PHI is removed here, before anything is stored.

pub mod decode;
pub mod deid;
pub mod dictionary;
pub mod export;
pub mod import;
pub mod scrub;

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde_json::{json, Map, Value};

use crate::audit::{self, Change};
use crate::auth::permissions::{Permission, StudyAccess};
use crate::auth::Actor;
use crate::db::paging::{Page, PageRequest};
use crate::db::schema::{case_imports, cases, sites};
use crate::db::{json_text_like, now, write_tx, Conn};
use crate::error::{Error, FieldErrors, OptionalExt, Result};
use dictionary::FieldDef;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CaseStatus {
    Screened,
    Enrolled,
    Excluded,
    Withdrawn,
}

impl CaseStatus {
    pub const ALL: [CaseStatus; 4] =
        [CaseStatus::Screened, CaseStatus::Enrolled, CaseStatus::Excluded, CaseStatus::Withdrawn];
    pub fn as_str(&self) -> &'static str {
        match self {
            CaseStatus::Screened => "screened",
            CaseStatus::Enrolled => "enrolled",
            CaseStatus::Excluded => "excluded",
            CaseStatus::Withdrawn => "withdrawn",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str().eq_ignore_ascii_case(s.trim()))
    }
    /// Excluded and withdrawn cases need a reason (withdrawn also a date).
    pub fn needs_reason(&self) -> bool {
        matches!(self, CaseStatus::Excluded | CaseStatus::Withdrawn)
    }
}

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = cases)]
pub struct Case {
    pub id: i32,
    pub display_id: String,
    #[diesel(select_expression = sites::code)]
    pub site_code: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub status_date: Option<NaiveDate>,
    #[serde(skip)]
    pub data: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl Case {
    pub fn values(&self) -> Map<String, Value> {
        serde_json::from_str(&self.data).unwrap_or_default()
    }
}

/// Filters of the case list; empty means any.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct CaseFilter {
    #[serde(default)]
    pub site: String,
    #[serde(default)]
    pub status: String,
    /// A dictionary field and the text its value contains.
    #[serde(default)]
    pub field: String,
    #[serde(default)]
    pub value: String,
    #[serde(default)]
    pub sort: String,
    #[serde(default)]
    pub dir: String,
    pub page: Option<i64>,
}

/// Cases of a study with filters, sort and paging (indexed on study, site, status).
pub fn list(
    conn: &mut Conn,
    study_id: i32,
    dictionary: &[FieldDef],
    f: &CaseFilter,
    page: PageRequest,
) -> Result<Page<Case>> {
    if !f.field.is_empty() && !dictionary.iter().any(|d| d.name == f.field) {
        return Err(Error::invalid("field", format!("'{}' is not a dictionary field", f.field)));
    }
    let build = || {
        let mut q = cases::table.inner_join(sites::table).filter(cases::study_id.eq(study_id)).into_boxed();
        if !f.site.is_empty() {
            q = q.filter(sites::code.eq(f.site.clone()));
        }
        if !f.status.is_empty() {
            q = q.filter(cases::status.eq(f.status.clone()));
        }
        if !f.field.is_empty() && !f.value.trim().is_empty() {
            q = q.filter(json_text_like(&f.field, &format!("%{}%", f.value.trim())));
        }
        q
    };
    let total: i64 = build().count().get_result(conn)?;
    let desc = f.dir == "desc";
    let q = match (f.sort.as_str(), desc) {
        ("status", false) => build().order((cases::status.asc(), cases::id.asc())),
        ("status", true) => build().order((cases::status.desc(), cases::id.asc())),
        ("site", false) => build().order((sites::code.asc(), cases::id.asc())),
        ("site", true) => build().order((sites::code.desc(), cases::id.asc())),
        ("updated", false) => build().order(cases::updated_at.asc()),
        ("updated", true) => build().order(cases::updated_at.desc()),
        (_, true) => build().order(cases::display_id.desc()),
        _ => build().order(cases::display_id.asc()),
    };
    let items = q.select(Case::as_select()).limit(page.per_page).offset(page.offset()).load(conn)?;
    Ok(Page { items, total, page: page.page, per_page: page.per_page })
}

pub fn get(conn: &mut Conn, study_id: i32, display_id: &str) -> Result<Case> {
    cases::table
        .inner_join(sites::table)
        .filter(cases::study_id.eq(study_id))
        .filter(cases::display_id.eq(display_id))
        .select(Case::as_select())
        .first(conn)
        .or_not_found()
}

pub fn count(conn: &mut Conn, study_id: i32) -> Result<i64> {
    Ok(cases::table.filter(cases::study_id.eq(study_id)).count().get_result(conn)?)
}

/// Edits a case's values from the case page: each given field is validated against the
/// dictionary (dates must already be de-identified: the page shows shifted dates, and a person
/// enters values in that frame). Audited with old and new values; blocked when locked.
pub fn edit_values(
    conn: &mut Conn,
    actor: &Actor,
    access: &StudyAccess,
    display_id: &str,
    dictionary: &[FieldDef],
    input: &Map<String, Value>,
) -> Result<Case> {
    access.require(Permission::ManageCases)?;
    write_tx(conn, |conn| {
        let study = crate::studies::get_by_code(conn, &access.study.code)?;
        study.ensure_editable()?;
        let case = get(conn, study.id, display_id)?;
        let old = case.values();
        let mut new = old.clone();
        let mut errors = FieldErrors::default();
        for f in dictionary.iter().filter(|f| f.holds_data()).skip(1) {
            let Some(raw) = input.get(&f.name) else { continue };
            let raw = dictionary::value_text(raw);
            if f.action == dictionary::DeidAction::Drop {
                continue;
            }
            match f.parse_value(&raw) {
                Err(m) => errors.add(&f.name, m),
                Ok(None) if f.required => errors.add(&f.name, "required"),
                Ok(None) => {
                    new.remove(&f.name);
                }
                Ok(Some(v)) => {
                    new.insert(f.name.clone(), v);
                }
            }
        }
        errors.into_result()?;
        if new != old {
            let (before, after) = audit::diff(&Value::Object(old.clone()), &Value::Object(new.clone()));
            // Fields removed from `new` show as null after.
            let mut after = after;
            for k in old.keys().filter(|k| !new.contains_key(*k)) {
                after[k] = Value::Null;
            }
            diesel::update(cases::table.find(case.id))
                .set((cases::data.eq(Value::Object(new).to_string()), cases::updated_at.eq(now())))
                .execute(conn)?;
            audit::record(
                conn,
                Change::new(study.chain(), &actor.name, "update", "case", &case.display_id).before(before).after(after),
            )?;
        }
        get(conn, study.id, display_id)
    })
}

/// Changes a case's status; excluded and withdrawn need a reason, withdrawn a date.
pub fn set_status(
    conn: &mut Conn,
    actor: &Actor,
    access: &StudyAccess,
    display_id: &str,
    status: &str,
    reason: &str,
    date: &str,
) -> Result<Case> {
    access.require(Permission::ManageCases)?;
    let status = CaseStatus::parse(status)
        .ok_or_else(|| Error::invalid("status", "must be screened, enrolled, excluded or withdrawn"))?;
    let reason = reason.trim();
    if status.needs_reason() && reason.is_empty() {
        return Err(Error::invalid("reason", format!("say why the case is {}", status.as_str())));
    }
    let date = match date.trim() {
        "" if status == CaseStatus::Withdrawn => {
            return Err(Error::invalid("date", "the date of withdrawal is required"))
        }
        "" => None,
        d => Some(
            NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| Error::invalid("date", "not a date (YYYY-MM-DD)"))?,
        ),
    };
    write_tx(conn, |conn| {
        let study = crate::studies::get_by_code(conn, &access.study.code)?;
        study.ensure_editable()?;
        let case = get(conn, study.id, display_id)?;
        let reason_opt = (!reason.is_empty()).then_some(reason);
        diesel::update(cases::table.find(case.id))
            .set((
                cases::status.eq(status.as_str()),
                cases::status_reason.eq(reason_opt),
                cases::status_date.eq(date),
                cases::updated_at.eq(now()),
            ))
            .execute(conn)?;
        audit::record(
            conn,
            Change::new(study.chain(), &actor.name, "status", "case", &case.display_id)
                .before(json!({"status": case.status}))
                .after(json!({"status": status.as_str(), "date": date.map(|d| d.to_string())}))
                .because_opt(reason_opt),
        )?;
        get(conn, study.id, display_id)
    })
}

/// Audit events of one case, newest first (its history).
pub fn history(conn: &mut Conn, study_id: i32, display_id: &str) -> Result<Vec<audit::AuditEvent>> {
    use crate::db::schema::audit_events;
    Ok(audit_events::table
        .filter(audit_events::study_id.eq(study_id))
        .filter(audit_events::entity.eq("case"))
        .filter(audit_events::entity_id.eq(display_id))
        .order(audit_events::id.desc())
        .select(audit::AuditEvent::as_select())
        .load(conn)?)
}

#[derive(Debug, Clone, Queryable, serde::Serialize)]
pub struct ImportRecord {
    pub id: i32,
    pub actor: String,
    pub file_sha256: String,
    pub file_size: i64,
    pub encoding: String,
    pub rows_read: i32,
    pub rows_created: i32,
    pub rows_updated: i32,
    pub rows_unchanged: i32,
    pub report: String,
    pub created_at: NaiveDateTime,
}

impl ImportRecord {
    pub fn report(&self) -> import::DeidReport {
        serde_json::from_str(&self.report).unwrap_or_default()
    }
}

pub fn imports(conn: &mut Conn, study_id: i32) -> Result<Vec<ImportRecord>> {
    Ok(case_imports::table
        .filter(case_imports::study_id.eq(study_id))
        .order(case_imports::id.desc())
        .select((
            case_imports::id,
            case_imports::actor,
            case_imports::file_sha256,
            case_imports::file_size,
            case_imports::encoding,
            case_imports::rows_read,
            case_imports::rows_created,
            case_imports::rows_updated,
            case_imports::rows_unchanged,
            case_imports::report,
            case_imports::created_at,
        ))
        .load(conn)?)
}
