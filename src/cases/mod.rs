//! Cases: the per-study data dictionary (REDCap format), de-identified import of site
//! spreadsheets, case records and their exports. PHI is removed here, before anything is stored.

pub mod decode;
pub mod deid;
pub mod derive;
pub mod dictionary;
pub mod entry;
pub mod events;
pub mod export;
pub mod import;
mod listing;
pub mod logic;
pub mod records;

pub use evidentia_deid::scrub;
pub use listing::{list, ListCache};

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde_json::{json, Map, Value};

use crate::audit::{self, Action, Change, Entity};
use crate::auth::permissions::{Permission, StudyAccess};
use crate::auth::Actor;
use crate::db::schema::{case_imports, cases, sites};
use crate::db::{now, write_tx, Conn};
use crate::error::{Error, OptionalExt, Result};
use dictionary::FieldDef;

crate::db::text_enum! {
    /// A subject's place in the study.
    pub enum CaseStatus {
        Screened = "screened",
        Enrolled = "enrolled",
        Excluded = "excluded",
        Withdrawn = "withdrawn",
    }
}

impl CaseStatus {
    /// The status a person typed (a spreadsheet cell, a form): any letter case.
    pub fn parse_input(s: &str) -> Option<Self> {
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
    pub site_id: i32,
    #[diesel(select_expression = sites::code)]
    pub site_code: String,
    pub status: CaseStatus,
    pub status_reason: Option<String>,
    pub status_date: Option<NaiveDate>,
    #[serde(skip)]
    pub data: crate::db::Json<Map<String, Value>>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl Case {
    pub fn values(&self) -> Map<String, Value> {
        self.data.0.clone()
    }
    /// One field's value, without copying the others (the case list shows a cell per field).
    pub fn value(&self, field: &str) -> Option<&Value> {
        self.data.0.get(field)
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

/// A case of the study, whichever its site (the caller checked access, or needs none).
pub fn get(conn: &mut Conn, study_id: crate::studies::StudyId, display_id: &str) -> Result<Case> {
    cases::table
        .inner_join(sites::table)
        .filter(cases::study_id.eq(study_id))
        .filter(cases::display_id.eq(display_id))
        .select(Case::as_select())
        .first(conn)
        .or_not_found()
}

/// A case as `access` sees it: 404 when it belongs to a site outside the actor's scope.
pub fn visible(conn: &mut Conn, access: &StudyAccess, display_id: &str) -> Result<Case> {
    let case = get(conn, access.study.id, display_id)?;
    access.require_site(case.site_id)?;
    Ok(case)
}

pub fn count(conn: &mut Conn, study_id: crate::studies::StudyId) -> Result<i64> {
    Ok(cases::table.filter(cases::study_id.eq(study_id)).count().get_result(conn)?)
}

/// A case edit's outcome: the case as saved, and how many identifiers were redacted from each
/// free-text field that was given.
pub struct Edited {
    pub case: Case,
    pub redacted: std::collections::BTreeMap<String, usize>,
}

/// The reasons offered for a change to saved clinical data (each change of an existing case needs
/// one: 21 CFR 11.10(e), ICH E6(R3) — the audit trail says who, when, what and why). `Other`
/// needs details; any reason may have them.
pub const CHANGE_REASONS: [&str; 5] = [
    "Data entry error",
    "Corrected from the source document",
    "Query answered by the site",
    "Late or updated information from the site",
    "Other",
];

/// Why values of an existing case change, as the person gave it.
#[derive(Debug, Clone, Default)]
pub struct ChangeReason {
    /// One of [`CHANGE_REASONS`].
    pub reason: String,
    /// Free text: scrubbed like every free text before it is stored.
    pub details: String,
}

impl ChangeReason {
    /// A form's pairs without its CSRF token, and the reason it gives (`_reason`,
    /// `_reason_details`; no dictionary field name starts with an underscore).
    pub fn split_form(pairs: Vec<(String, String)>) -> (Vec<(String, String)>, ChangeReason) {
        let mut why = ChangeReason::default();
        let mut input = Vec::new();
        for (k, v) in pairs {
            match k.as_str() {
                "csrf_token" => {}
                "_reason" => why.reason = v,
                "_reason_details" => why.details = v,
                _ => input.push((k, v)),
            }
        }
        (input, why)
    }
    /// The reason as stored in the audit event ("Data entry error: wrong row copied"), scrubbed,
    /// and how many identifiers were redacted from the details; refused when missing.
    pub(crate) fn text(&self, deid: &deid::EditDeid) -> Result<(String, usize)> {
        let reason = self.reason.trim();
        let Some(known) = CHANGE_REASONS.iter().find(|r| r.eq_ignore_ascii_case(reason)) else {
            return Err(Error::invalid(
                "reason",
                if reason.is_empty() {
                    "say why the values change: pick a reason for the change".to_string()
                } else {
                    format!("'{reason}' is not one of the reasons ({})", CHANGE_REASONS.join(", "))
                },
            ));
        };
        let (details, redacted) = deid.scrub(self.details.trim());
        if details.is_empty() && *known == "Other" {
            return Err(Error::invalid("reason_details", "say what the other reason is"));
        }
        Ok((if details.is_empty() { known.to_string() } else { format!("{known}: {details}") }, redacted))
    }
}

/// Whether a field (other than the subject id) may be changed by typing on the case page: only
/// values kept as imported. Identifiers and whatever an action de-identified (dates, generalised
/// values, pseudonyms) change only through an import, where the raw value goes through its action;
/// an identifier kept as is would otherwise be stored as typed (at import its own values are
/// scrubbed from it as names, and the page's scrubber knows no names). A calculated field is
/// computed, never typed.
pub fn typed_edits_allowed(f: &FieldDef) -> bool {
    f.holds_data()
        && f.action == dictionary::DeidAction::Keep
        && !f.identifier
        && f.field_type != dictionary::FieldType::Calc
}

/// Edits a case's values from the case page (`input`: the form's name/value pairs; a checkbox
/// field's name once per ticked code, plus once empty so that none ticked is sent too). Each
/// given field is validated against the dictionary and de-identified at the door like an
/// import's cells: free text is scrubbed (patterns only, see [`deid::EditDeid`]); the subject id
/// and fields [`typed_edits_allowed`] excludes are refused, naming the field, with nothing
/// changed. A change needs a reason ([`ChangeReason`]); audited with old and new values, the
/// reason and how much was redacted; blocked when locked.
#[allow(clippy::too_many_arguments)]
pub fn edit_values(
    conn: &mut Conn,
    actor: &Actor,
    access: &StudyAccess,
    display_id: &str,
    dictionary: &[FieldDef],
    input: &[(String, String)],
    why: &ChangeReason,
    deid: &deid::EditDeid,
) -> Result<Edited> {
    access.require(Permission::EnterData)?;
    visible(conn, access, display_id)?;
    write_tx(conn, |conn| {
        let study = crate::studies::get_by_code(conn, &access.study.code)?;
        edit_values_in(conn, actor, &study, display_id, dictionary, input, why, deid)
    })
}

/// [`edit_values`] inside the caller's transaction, for a caller that checked access (a
/// query's answer changes the value it asks about in the answer's transaction).
#[allow(clippy::too_many_arguments)]
pub(crate) fn edit_values_in(
    conn: &mut Conn,
    actor: &Actor,
    study: &crate::studies::Study,
    display_id: &str,
    dictionary: &[FieldDef],
    input: &[(String, String)],
    why: &ChangeReason,
    deid: &deid::EditDeid,
) -> Result<Edited> {
    {
        study.ensure_editable()?;
        let case = get(conn, study.id, display_id)?;
        let old = case.values();
        let design = events::load(conn, study.id)?;
        let entry::Applied { mut new, mut errors, mut redacted, emptied_required } = entry::apply_input(
            dictionary,
            &old,
            input,
            deid,
            |f| {
                (!design.on_base(&f.form_name)).then(|| format!("on form {}, which is not on the subject's first event: it is entered on the event's record page", f.form_name))
            },
        );
        // Calculated fields, on the values as they would be saved (with the subject's other
        // events' records for `[event][field]`).
        let others = records::of_case(conn, case.id)?;
        let on_base = dictionary.iter().filter(|f| f.holds_data() && design.on_base(&f.form_name));
        let cx = entry::Context { design: &design, records: &others, now: now(), base: None, this: None };
        // Calculations run when a typed value changed (an untouched form records nothing).
        if new != old {
            entry::evaluate(on_base, &mut new, &cx);
        }
        // Required where its branching logic shows it, on the values as they would be saved.
        let data =
            logic::CaseValues { values: &new, now: now(), events: Some((&design, &others)), base: None, this: None };
        for f in emptied_required {
            if logic::shown(f, &data) {
                errors.add(&f.name, "required");
            }
        }
        // Asked only when something changes: saving an unchanged form records nothing.
        let reason = if new != old {
            match why.text(deid) {
                Ok((text, n)) => {
                    if n > 0 {
                        redacted.insert("reason".to_string(), n);
                    }
                    Some(text)
                }
                Err(Error::Invalid(e)) => {
                    errors.0.extend(e.0);
                    None
                }
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        errors.into_result()?;
        if let Some(reason) = reason {
            let (before, after) = entry::changes(&Value::Object(old.clone()), &Value::Object(new.clone()));
            diesel::update(cases::table.find(case.id))
                .set((cases::data.eq(Value::Object(new).to_string()), cases::updated_at.eq(now())))
                .execute(conn)?;
            let reason = with_redactions(reason, &redacted);
            let changed: Vec<String> = after.as_object().map(|a| a.keys().cloned().collect()).unwrap_or_default();
            audit::record(
                conn,
                Change::new(study.chain(), &actor.name, Action::Update, Entity::Case, &case.display_id)
                    .before(before)
                    .after(after)
                    .because(&reason),
            )?;
            let change = [(case.id, case.display_id.clone(), String::new(), changed)];
            crate::quality::sdv::clear_changed(conn, study, &actor.name, dictionary, &change)?;
            crate::quality::run_in(conn, study, &actor.name, crate::quality::Trigger::Save)?;
        }
        Ok(Edited { case: get(conn, study.id, display_id)?, redacted })
    }
}

/// A change's reason with how many identifiers were redacted from each free-text field, as
/// audited.
pub(crate) fn with_redactions(reason: String, redacted: &std::collections::BTreeMap<String, usize>) -> String {
    if redacted.is_empty() {
        return reason;
    }
    let counts: Vec<String> = redacted.iter().map(|(f, n)| format!("{f} {n}")).collect();
    format!("{reason} (identifiers redacted from free text: {})", counts.join(", "))
}

/// The ticked codes of a checkbox field, in the order of its choices; each must be one of them.
/// An empty list when none is ticked (as an import stores it), `None` when required and none is.
/// The error lists the codes rather than repeating what was sent.
fn checkbox_codes(f: &FieldDef, raws: &[&str]) -> std::result::Result<Option<Value>, String> {
    let choices = f.choices();
    let ticked: Vec<&str> = raws.iter().map(|r| r.trim()).filter(|r| !r.is_empty()).collect();
    if ticked.iter().any(|t| !choices.iter().any(|c| c.code == *t)) {
        let codes: Vec<&str> = choices.iter().map(|c| c.code.as_str()).collect();
        return Err(format!("not one of the choices ({})", codes.join(", ")));
    }
    if ticked.is_empty() && f.required {
        return Ok(None);
    }
    let codes: Vec<&str> = choices.iter().map(|c| c.code.as_str()).filter(|c| ticked.contains(c)).collect();
    Ok(Some(json!(codes)))
}

/// A status change as a person types it on the case page.
#[derive(Debug, Default, serde::Deserialize)]
pub struct StatusInput {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub reason: String,
    /// The status date as a study day: this many days after the case's date field `from`
    /// (0: the same day), both in the subject's shifted frame.
    #[serde(default)]
    pub days: String,
    #[serde(default)]
    pub from: String,
    /// A true calendar date: refused (see [`set_status`]); read only to say so.
    #[serde(default)]
    pub date: String,
}

/// A date of a case a later date can be counted from: a date field de-identified by shifting,
/// with a value (in the subject's shifted frame, as stored and shown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayAnchor {
    pub field: String,
    pub label: String,
    pub date: NaiveDate,
}

/// The case's dates a status date can be counted from, in dictionary order.
pub fn day_anchors(case: &Case, dictionary: &[FieldDef]) -> Vec<DayAnchor> {
    let values = case.values();
    dictionary
        .iter()
        .filter(|f| f.is_date() && f.action == dictionary::DeidAction::ShiftDate)
        .filter_map(|f| {
            let text = values.get(&f.name)?.as_str()?;
            let date = dictionary::parse_ymd(text.get(..10)?)?;
            let label = if f.label.trim().is_empty() { f.name.clone() } else { f.label.clone() };
            Some(DayAnchor { field: f.name.clone(), label, date })
        })
        .collect()
}

/// How far from its anchor a status date may be (about a hundred years either way).
const MAX_STUDY_DAYS: i64 = 36_525;

/// Changes a case's status; excluded and withdrawn need a reason, withdrawn a date when the case
/// has one to count from. Both are de-identified at the door: the reason is scrubbed like free
/// text, and the date is never typed as a calendar date. Dates are identifiers under Safe Harbor
/// and every date of a subject is stored shifted by the subject's own offset: a person who typed
/// a true date and then saw the stored one would learn the offset and could un-shift all the
/// subject's dates. So the date comes as a study day, `days` after one of the case's own (already
/// shifted) dates ([`day_anchors`]), and is stored in the same frame; a true date is refused.
/// Returns the case and how many identifiers were redacted from the reason.
pub fn set_status(
    conn: &mut Conn,
    actor: &Actor,
    access: &StudyAccess,
    display_id: &str,
    dictionary: &[FieldDef],
    input: &StatusInput,
    deid: &deid::EditDeid,
) -> Result<(Case, usize)> {
    access.require(Permission::EnterData)?;
    visible(conn, access, display_id)?;
    let status = CaseStatus::parse_input(&input.status)
        .ok_or_else(|| Error::invalid("status", "must be screened, enrolled, excluded or withdrawn"))?;
    let (reason, redacted) = deid.scrub(input.reason.trim());
    if status.needs_reason() && reason.is_empty() {
        return Err(Error::invalid("reason", format!("say why the case is {}", status.as_str())));
    }
    if !input.date.trim().is_empty() {
        return Err(Error::invalid(
            "date",
            "a calendar date is not taken here (seeing it stored shifted would reveal the subject's \
             date shift): give the number of days after one of the case's dates",
        ));
    }
    let days = match input.days.trim() {
        "" => None,
        d => Some(d.parse::<i64>().ok().filter(|n| n.abs() <= MAX_STUDY_DAYS).ok_or_else(|| {
            Error::invalid("days", format!("not a whole number of days (-{MAX_STUDY_DAYS} to {MAX_STUDY_DAYS})"))
        })?),
    };
    write_tx(conn, |conn| {
        let study = crate::studies::get_by_code(conn, &access.study.code)?;
        study.ensure_editable()?;
        let case = get(conn, study.id, display_id)?;
        let anchors = day_anchors(&case, dictionary);
        let counted = match days {
            None if status == CaseStatus::Withdrawn && !anchors.is_empty() => {
                return Err(Error::invalid(
                    "days",
                    "the date of withdrawal is required (days after one of the case's dates)",
                ))
            }
            None => None,
            Some(n) => {
                let from = anchors
                    .iter()
                    .find(|a| a.field == input.from.trim())
                    .ok_or_else(|| Error::invalid("from", "choose one of the case's dates to count the days from"))?;
                let date = from
                    .date
                    .checked_add_signed(chrono::Duration::days(n))
                    .ok_or_else(|| Error::invalid("days", "out of range"))?;
                Some((date, from.field.as_str(), n))
            }
        };
        let date = counted.map(|(d, _, _)| d);
        let reason_opt = (!reason.is_empty()).then_some(reason.as_str());
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
            Change::new(study.chain(), &actor.name, Action::Status, Entity::Case, &case.display_id)
                .before(json!({"status": case.status}))
                .after(match counted {
                    Some((d, from, n)) => {
                        json!({"status": status.as_str(), "date": d.to_string(), "days_after": n, "counted_from": from})
                    }
                    None => json!({"status": status.as_str(), "date": null}),
                })
                .because_opt(reason_opt),
        )?;
        Ok((get(conn, study.id, display_id)?, redacted))
    })
}

/// Audit events of one case, newest first (its history).
pub fn history(conn: &mut Conn, study_id: crate::studies::StudyId, display_id: &str) -> Result<Vec<audit::AuditEvent>> {
    use crate::db::schema::audit_events;
    // The case's own events and its later events' records' (`SNUBH-0001/month_3_arm_1`).
    let records = format!("{}/%", display_id.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
    Ok(audit_events::table
        .filter(audit_events::study_id.eq(study_id))
        .filter(
            audit_events::entity.eq(Entity::Case).and(audit_events::entity_id.eq(display_id)).or(audit_events::entity
                .eq(Entity::CaseRecord)
                .and(audit_events::entity_id.like(records).escape('\\'))),
        )
        .order(audit_events::id.desc())
        .select(audit::AuditEvent::as_select())
        .load(conn)?)
}

/// One field of a case history event as a person reads it: the dictionary's label, and the
/// values before and after with their choices' labels ("—" for none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    pub label: String,
    pub old: String,
    pub new: String,
}

/// The fields an event of the case history changed, in dictionary order (then status and any
/// other key), labelled with `dictionary`.
pub fn labelled_changes(event: &audit::AuditEvent, dictionary: &[FieldDef]) -> Vec<FieldChange> {
    let mut fields = event.field_values();
    let position = |k: &str| dictionary.iter().position(|f| f.name == k).unwrap_or(usize::MAX);
    fields.sort_by_key(|(k, _, _)| position(k)); // stable: the rest stays sorted by name
    let show = |f: Option<&FieldDef>, v: Option<Value>| match v {
        None | Some(Value::Null) => "—".to_string(),
        Some(Value::Array(a)) if a.is_empty() => "none".to_string(),
        Some(v) => match f {
            Some(f) => f.label_of(&v),
            None => match v {
                Value::String(s) => s,
                other => other.to_string(),
            },
        },
    };
    fields
        .into_iter()
        .map(|(k, old, new)| {
            let f = dictionary.iter().find(|f| f.name == k);
            let label = match (f, k.as_str()) {
                (Some(f), _) if !f.label.trim().is_empty() => f.label.clone(),
                (_, "status") => "Status".to_string(),
                (_, "date") => "Status date".to_string(),
                (_, "days_after") => "Days after".to_string(),
                (_, "counted_from") => "Counted from".to_string(),
                _ => k.clone(),
            };
            FieldChange { label, old: show(f, old), new: show(f, new) }
        })
        .filter(|c| c.old != c.new)
        .collect()
}

#[derive(Debug, Clone, Queryable, serde::Serialize)]
pub struct ImportRecord {
    pub id: i32,
    pub actor: String,
    pub file_sha256: String,
    pub file_size: i64,
    pub encoding: decode::Encoding,
    pub rows_read: i32,
    pub rows_created: i32,
    pub rows_updated: i32,
    pub rows_unchanged: i32,
    pub report: crate::db::Json<import::DeidReport>,
    pub created_at: NaiveDateTime,
}

impl ImportRecord {
    pub fn report(&self) -> import::DeidReport {
        self.report.0.clone()
    }
}

pub fn imports(conn: &mut Conn, study_id: crate::studies::StudyId) -> Result<Vec<ImportRecord>> {
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
