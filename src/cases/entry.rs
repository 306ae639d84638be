//! Data entry: what a page's form makes of a record's values. A form's input is validated
//! against the dictionary and de-identified at the door like an import's cells
//! ([`apply_input`]); calculated fields are computed from their calculation and branching logic
//! says which fields show ([`evaluate`]), on the values as they would be saved, both on the case
//! page (the first event's record) and on a later event's record page ([`save_record`]).

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::{json, Map, Value};

use super::deid::EditDeid;
use super::dictionary::{FieldDef, FieldType};
use super::events::{Design, RecordKey};
use super::logic::{self, CaseValues, Logic};
use super::records::{self, FormStatus, Record, Statuses};
use super::{ChangeReason, Edited};
use crate::audit::{self, Action, Change, Entity};
use crate::auth::permissions::{Permission, StudyAccess};
use crate::auth::Actor;
use crate::db::schema::case_records;
use crate::db::{now, write_tx, Conn};
use crate::error::{Error, FieldErrors, Result};

/// A form's input applied to a record's stored values.
pub(crate) struct Applied<'a> {
    pub new: Map<String, Value>,
    pub errors: FieldErrors,
    /// Identifiers redacted from each free-text field given.
    pub redacted: BTreeMap<String, usize>,
    /// Required fields the input emptied (an error where their branching logic shows them).
    pub emptied_required: Vec<&'a FieldDef>,
}

/// Applies `input` (name/value pairs; a checkbox field's name once per ticked code, plus once
/// empty so that none ticked is sent too) to `old`. `elsewhere` says why a field may not be
/// given on this record (a form the record does not hold), if so. The subject id, calculated
/// fields and what [`super::typed_edits_allowed`] excludes are refused, naming the field.
pub(crate) fn apply_input<'a>(
    dictionary: &'a [FieldDef],
    old: &Map<String, Value>,
    input: &[(String, String)],
    deid: &EditDeid,
    elsewhere: impl Fn(&FieldDef) -> Option<String>,
) -> Applied<'a> {
    let mut out = Applied {
        new: old.clone(),
        errors: FieldErrors::default(),
        redacted: BTreeMap::new(),
        emptied_required: Vec::new(),
    };
    let mut given: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, value) in input {
        given.entry(name.as_str()).or_default().push(value.as_str());
    }
    let subject_field = dictionary.iter().find(|f| f.holds_data()).map(|f| f.name.as_str());
    for (name, raws) in given {
        let Some(f) = dictionary.iter().find(|f| f.name == name && f.holds_data()) else {
            out.errors.add(name, "not a field of this study's dictionary");
            continue;
        };
        if Some(name) == subject_field {
            out.errors.add(name, "the subject id links the case to the site's records: it changes only by import");
            continue;
        }
        if let Some(why) = elsewhere(f) {
            out.errors.add(name, why);
            continue;
        }
        if f.field_type == FieldType::Calc {
            out.errors.add(name, "a calculated field: it is computed from its calculation when the record is saved");
            continue;
        }
        if !super::typed_edits_allowed(f) {
            let why = if f.identifier {
                "an identifier".to_string()
            } else {
                format!("de-identified ({})", f.action.as_str())
            };
            out.errors.add(name, format!("{why}: it changes only by importing the site's file again"));
            continue;
        }
        let parsed = if f.field_type == FieldType::Checkbox {
            super::checkbox_codes(f, &raws)
        } else if let [raw] = raws[..] {
            // Browsers send a text area's line breaks as CRLF.
            f.parse_value(&raw.replace("\r\n", "\n"))
        } else {
            Err("given more than once".to_string())
        };
        match parsed {
            Err(m) => out.errors.add(name, m),
            Ok(None) => {
                if f.required {
                    out.emptied_required.push(f);
                }
                out.new.remove(name);
            }
            // None ticked where nothing was stored: nothing to record.
            Ok(Some(Value::Array(codes))) if codes.is_empty() && !old.contains_key(name) => {}
            Ok(Some(Value::String(text))) if f.is_free_text() => {
                let (clean, n) = deid.scrub(&text);
                if n > 0 {
                    out.redacted.insert(name.to_string(), n);
                }
                // The stored text as the page showed it (an import may have kept CRLF).
                let unchanged = old.get(name).and_then(Value::as_str).is_some_and(|o| o.replace("\r\n", "\n") == clean);
                if !unchanged {
                    out.new.insert(name.to_string(), json!(clean));
                }
            }
            Ok(Some(v)) => {
                out.new.insert(name.to_string(), v);
            }
        }
    }
    out
}

/// A record's place among the subject's others, for logic that names `[event][field]`.
pub struct Context<'a> {
    pub design: &'a Design,
    /// The subject's other records.
    pub records: &'a [Record],
    pub now: NaiveDateTime,
    /// The first event's values, for a later record (`None`: the record is the first event's).
    pub base: Option<&'a Map<String, Value>>,
    /// The later record the values are (`None`: the first event's).
    pub this: Option<&'a RecordKey>,
}

/// What branching logic and calculations make of a record's values: the fields hidden (their
/// branching logic does not hold) and each calculated field's value (`None`: blank).
#[derive(Debug, Default, serde::Serialize)]
pub struct Evaluated {
    pub hidden: Vec<String>,
    pub calc: BTreeMap<String, Option<Value>>,
}

/// Computes the calculated fields of `fields` (in dictionary order, so a calculation may use
/// an earlier one) into `values`, then which of `fields` their branching logic hides. A
/// calculation that no longer reads (a dictionary edited since) leaves its field as it is.
pub fn evaluate<'f>(
    fields: impl Iterator<Item = &'f FieldDef> + Clone,
    values: &mut Map<String, Value>,
    cx: &Context,
) -> Evaluated {
    let mut out = Evaluated::default();
    for f in fields.clone().filter(|f| f.field_type == FieldType::Calc) {
        let Ok(calc) = Logic::parse(&f.choices_raw) else {
            continue;
        };
        let result = {
            let data =
                CaseValues { values, now: cx.now, events: Some((cx.design, cx.records)), base: cx.base, this: cx.this };
            stored(calc.value(&data))
        };
        match &result {
            Some(v) => values.insert(f.name.clone(), v.clone()),
            None => values.remove(&f.name),
        };
        out.calc.insert(f.name.clone(), result);
    }
    let data = CaseValues { values, now: cx.now, events: Some((cx.design, cx.records)), base: cx.base, this: cx.this };
    out.hidden = fields.filter(|f| !logic::shown(f, &data)).map(|f| f.name.clone()).collect();
    out
}

/// A calculation's result as stored: a number (REDCap rounds only where the calculation says
/// so), text, or nothing.
fn stored(v: logic::Value) -> Option<Value> {
    match v {
        logic::Value::Num(n) => serde_json::Number::from_f64(n).map(|n| {
            // Whole numbers as integers, as an import stores them.
            if n.as_f64().is_some_and(|x| x.fract() == 0.0 && x.abs() < 1e15) {
                json!(n.as_f64().unwrap_or_default() as i64)
            } else {
                Value::Number(n)
            }
        }),
        logic::Value::Blank => None,
        other => Some(json!(other.to_text())).filter(|v| v.as_str().is_some_and(|s| !s.is_empty())),
    }
}

/// The record a page names: a later event's record, a repeating form's instance (an unsaved
/// one may be named to enter it), never the first event's (the case page enters that).
pub fn record_key(design: &Design, event: &str, instrument: &str, instance: i32) -> Result<RecordKey> {
    let instance_cell = if instance > 0 { instance.to_string() } else { String::new() };
    let key = design.record_key(event, instrument, &instance_cell).map_err(|(column, message)| {
        let field = match column {
            "redcap_event_name" => "event",
            "redcap_repeat_instrument" => "instrument",
            _ => "instance",
        };
        Error::invalid(field, message)
    })?;
    if design.is_base(&key) {
        return Err(Error::invalid("event", "the first event's forms are entered on the case page"));
    }
    Ok(key)
}

/// Enters a later event's record (or a repeating form's instance) from its page: creates it, or
/// changes it with the reason every change of saved data needs. `input` holds the fields and,
/// as REDCap names them, `<form>_complete` with a form's status. Calculated fields are computed;
/// a required field its branching logic shows may not be emptied. Audited (`create` or `update`
/// of the `case_record` `DISPLAY/slot`) with the values and statuses before and after; a change
/// clears the changed forms' verification and the data quality rules run again.
#[allow(clippy::too_many_arguments)]
pub fn save_record(
    conn: &mut Conn,
    actor: &Actor,
    access: &StudyAccess,
    display_id: &str,
    key: &RecordKey,
    dictionary: &[FieldDef],
    input: &[(String, String)],
    why: &ChangeReason,
    deid: &EditDeid,
) -> Result<Edited> {
    access.require(Permission::EnterData)?;
    let case = super::visible(conn, access, display_id)?;
    write_tx(conn, |conn| {
        let study = crate::studies::get_by_code(conn, &access.study.code)?;
        study.ensure_editable()?;
        let design = super::events::load(conn, study.id)?;
        let key = record_key(&design, &key.event, &key.instrument, key.instance)?;
        let on_record = |f: &FieldDef| f.holds_data() && design.record_has_form(&key, &f.form_name);
        let mut all = records::of_case(conn, case.id)?;
        let existing = all.iter().position(|r| r.key == key);
        let (old, old_status) = existing.map(|i| (all[i].data.clone(), all[i].form_status.clone())).unwrap_or_default();
        let (values, statuses) = split_statuses(input, &design, &key, dictionary);
        let mut applied = apply_input(dictionary, &old, &values, deid, |f| {
            (!on_record(f)).then(|| format!("on form {}, which this record does not hold", f.form_name))
        });
        let mut new_status = old_status.clone();
        for (form, cell) in statuses {
            match FormStatus::parse_cell(&cell) {
                Ok(Some(s)) => {
                    new_status.insert(form, s.code());
                }
                Ok(None) => {
                    new_status.remove(&form);
                }
                Err(m) => applied.errors.add(&format!("{form}_complete"), m),
            }
        }
        if let Some(i) = existing {
            all.remove(i);
        }
        let t = now();
        let mut new = applied.new;
        // Calculations run when a typed value changed (an untouched form records nothing).
        let base = super::get(conn, study.id, display_id)?.data.0;
        let cx = Context { design: &design, records: &all, now: t, base: Some(&base), this: Some(&key) };
        if new != old {
            evaluate(dictionary.iter().filter(|f| on_record(f)), &mut new, &cx);
        }
        let data =
            CaseValues { values: &new, now: t, events: Some((&design, &all)), base: Some(&base), this: Some(&key) };
        for f in &applied.emptied_required {
            if logic::shown(f, &data) {
                applied.errors.add(&f.name, "required");
            }
        }
        let changed = new != old || new_status != old_status;
        // A new record needs no reason; a change of a saved one does.
        let reason = if changed && existing.is_some() {
            match why.text(deid) {
                Ok((text, n)) => {
                    if n > 0 {
                        applied.redacted.insert("reason".to_string(), n);
                    }
                    Some(text)
                }
                Err(Error::Invalid(e)) => {
                    applied.errors.0.extend(e.0);
                    None
                }
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        applied.errors.into_result()?;
        if !changed {
            return Ok(Edited { case: super::get(conn, study.id, display_id)?, redacted: applied.redacted });
        }
        let entity = format!("{}/{}", case.display_id, design.slot(&key));
        let status_text = serde_json::to_string(&new_status).map_err(|e| Error::Internal(e.into()))?;
        let reason =
            super::with_redactions(reason.unwrap_or_else(|| "entered on the record page".into()), &applied.redacted);
        let change = match existing {
            None => {
                diesel::insert_into(case_records::table)
                    .values((
                        case_records::study_id.eq(study.id),
                        case_records::case_id.eq(case.id),
                        case_records::event.eq(&key.event),
                        case_records::instrument.eq(&key.instrument),
                        case_records::instance.eq(key.instance),
                        case_records::data.eq(Value::Object(new.clone()).to_string()),
                        case_records::form_status.eq(&status_text),
                        case_records::created_at.eq(t),
                        case_records::updated_at.eq(t),
                    ))
                    .execute(conn)?;
                Change::new(study.chain(), &actor.name, Action::Create, Entity::CaseRecord, &entity)
                    .after(records::audited(&new, &new_status))
                    .because(&reason)
            }
            Some(_) => {
                diesel::update(
                    case_records::table
                        .filter(case_records::case_id.eq(case.id))
                        .filter(case_records::event.eq(&key.event))
                        .filter(case_records::instrument.eq(&key.instrument))
                        .filter(case_records::instance.eq(key.instance)),
                )
                .set((
                    case_records::data.eq(Value::Object(new.clone()).to_string()),
                    case_records::form_status.eq(&status_text),
                    case_records::updated_at.eq(t),
                ))
                .execute(conn)?;
                let (before, after) =
                    changes(&records::audited(&old, &old_status), &records::audited(&new, &new_status));
                Change::new(study.chain(), &actor.name, Action::Update, Entity::CaseRecord, &entity)
                    .before(before)
                    .after(after)
                    .because(&reason)
            }
        };
        audit::record(conn, change)?;
        let fields: Vec<String> = dictionary
            .iter()
            .filter(|f| on_record(f) && old.get(&f.name) != new.get(&f.name))
            .map(|f| f.name.clone())
            .collect();
        let cleared = [(case.id, case.display_id.clone(), design.slot(&key), fields)];
        crate::quality::sdv::clear_changed(conn, &study, &actor.name, dictionary, &cleared)?;
        crate::quality::run_in(conn, &study, &actor.name, crate::quality::Trigger::Save)?;
        Ok(Edited { case: super::get(conn, study.id, display_id)?, redacted: applied.redacted })
    })
}

/// What changed between two stored records, as audited: the changed and added keys before and
/// after, and the emptied ones with their old value before and null after.
pub(crate) fn changes(old: &Value, new: &Value) -> (Value, Value) {
    let (mut before, mut after) = audit::diff(old, new);
    if let (Some(o), Some(n)) = (old.as_object(), new.as_object()) {
        for (k, v) in o.iter().filter(|(k, _)| !n.contains_key(*k)) {
            before[k] = v.clone();
            after[k] = Value::Null;
        }
    }
    (before, after)
}

/// A form's name/value pairs.
type Pairs = Vec<(String, String)>;

/// The input's field values, and its `<form>_complete` statuses for the forms the record holds.
fn split_statuses(
    input: &[(String, String)],
    design: &Design,
    key: &RecordKey,
    dictionary: &[FieldDef],
) -> (Pairs, Pairs) {
    let mut values = Vec::new();
    let mut statuses = Vec::new();
    for (name, value) in input {
        let form = name.strip_suffix("_complete").filter(|form| {
            design.record_has_form(key, form)
                && dictionary.iter().any(|f| f.form_name == *form)
                && !dictionary.iter().any(|f| f.name == *name)
        });
        match form {
            Some(form) => statuses.push((form.to_string(), value.clone())),
            None => values.push((name.clone(), value.clone())),
        }
    }
    (values, statuses)
}

/// A record's statuses, for the record page's selects.
pub fn status_of(statuses: &Statuses, form: &str) -> Option<FormStatus> {
    statuses.get(form).copied().and_then(FormStatus::from_code)
}
