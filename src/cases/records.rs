//! A subject's records other than the base one: each event, repeating instrument and instance
//! of a longitudinal or repeating study ([`super::events`]), with its values and its forms'
//! statuses. The base record's values are `cases.data`; its forms' statuses `cases.form_status`.
//! Records are written by the import (and, like cases, never deleted).

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::{Map, Value};

use super::events::{Design, RecordKey};
use crate::db::schema::{case_records, cases};
use crate::db::Conn;
use crate::error::{Error, Result};

/// REDCap's form status (`<form>_complete`): 0 incomplete, 1 unverified, 2 complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum FormStatus {
    Incomplete,
    Unverified,
    Complete,
}

impl FormStatus {
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(FormStatus::Incomplete),
            1 => Some(FormStatus::Unverified),
            2 => Some(FormStatus::Complete),
            _ => None,
        }
    }
    pub fn code(self) -> u8 {
        self as u8
    }
    pub fn label(self) -> &'static str {
        match self {
            FormStatus::Incomplete => "Incomplete",
            FormStatus::Unverified => "Unverified",
            FormStatus::Complete => "Complete",
        }
    }
    /// A `<form>_complete` cell: blank is no status.
    pub fn parse_cell(cell: &str) -> std::result::Result<Option<Self>, String> {
        match cell.trim() {
            "" => Ok(None),
            c => c
                .parse::<u8>()
                .ok()
                .and_then(FormStatus::from_code)
                .map(Some)
                .ok_or_else(|| "a form status is 0 (incomplete), 1 (unverified) or 2 (complete)".to_string()),
        }
    }
}

/// Form statuses as stored: `{"followup": 2}`.
pub type Statuses = BTreeMap<String, u8>;

pub fn parse_statuses(text: Option<&str>) -> Statuses {
    text.and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default()
}

/// A record's values with its forms' statuses as REDCap names them (`<form>_complete`): what
/// the audit trail records of a record.
pub fn audited(data: &Map<String, Value>, statuses: &Statuses) -> Value {
    let mut m = data.clone();
    for (form, code) in statuses {
        m.insert(format!("{form}_complete"), serde_json::json!(code));
    }
    Value::Object(m)
}

#[derive(Debug, Clone)]
pub struct Record {
    pub id: i32,
    pub case_id: i32,
    pub key: RecordKey,
    pub data: Map<String, Value>,
    pub form_status: Statuses,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A stored record as the table holds it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = case_records)]
struct Row {
    id: i32,
    case_id: i32,
    event: String,
    instrument: String,
    instance: i32,
    data: String,
    form_status: String,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

fn record(r: Row) -> Result<Record> {
    Ok(Record {
        id: r.id,
        case_id: r.case_id,
        key: RecordKey { event: r.event, instrument: r.instrument, instance: r.instance },
        data: serde_json::from_str(&r.data).map_err(|e| Error::Internal(e.into()))?,
        form_status: parse_statuses(Some(&r.form_status)),
        created_at: r.created_at,
        updated_at: r.updated_at,
    })
}

/// A case's records, by event, instrument and instance.
pub fn of_case(conn: &mut Conn, case_id: i32) -> Result<Vec<Record>> {
    let rows: Vec<Row> =
        case_records::table.filter(case_records::case_id.eq(case_id)).select(Row::as_select()).load(conn)?;
    let mut out = rows.into_iter().map(record).collect::<Result<Vec<_>>>()?;
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// Every record of a study's cases (for the flat export), by case.
pub fn of_study(conn: &mut Conn, study_id: crate::studies::StudyId) -> Result<BTreeMap<i32, Vec<Record>>> {
    by_case(
        case_records::table
            .filter(case_records::study_id.eq(study_id))
            .order(case_records::id)
            .select(Row::as_select())
            .load(conn)?,
    )
}

fn by_case(rows: Vec<Row>) -> Result<BTreeMap<i32, Vec<Record>>> {
    let mut out: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
    for r in rows {
        let r = record(r)?;
        out.entry(r.case_id).or_default().push(r);
    }
    Ok(out)
}

/// The records of some cases (a page of them), by case.
pub fn of_cases(conn: &mut Conn, case_ids: &[i32]) -> Result<BTreeMap<i32, Vec<Record>>> {
    by_case(
        case_records::table
            .filter(case_records::case_id.eq_any(case_ids))
            .order(case_records::id)
            .select(Row::as_select())
            .load(conn)?,
    )
}

/// The base record's form statuses of a case.
pub fn base_statuses(conn: &mut Conn, case_id: i32) -> Result<Statuses> {
    let text: Option<String> = cases::table.find(case_id).select(cases::form_status).first(conn)?;
    Ok(parse_statuses(text.as_deref()))
}

/// The base record's form statuses of every case of a study.
pub fn base_statuses_of_study(conn: &mut Conn, study_id: crate::studies::StudyId) -> Result<BTreeMap<i32, Statuses>> {
    let rows: Vec<(i32, Option<String>)> = cases::table
        .filter(cases::study_id.eq(study_id))
        .filter(cases::form_status.is_not_null())
        .select((cases::id, cases::form_status))
        .load(conn)?;
    Ok(rows.into_iter().map(|(id, t)| (id, parse_statuses(t.as_deref()))).collect())
}

/// One cell of the record home page: a form on an event.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GridCell {
    /// False where the event does not have the form.
    pub collected: bool,
    /// The form's records on this event: one, or one per instance.
    pub records: Vec<GridRecord>,
    /// Whether the form repeats on this event (new instances may come).
    pub repeats: bool,
    /// The record page's query string for a new record here (the next instance of a repeating
    /// form, or the event's record not entered yet); none where there is nothing to add.
    pub add: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct GridRecord {
    pub instance: i32,
    /// The status the site gave, else none.
    pub status: Option<FormStatus>,
    /// How many of the form's fields hold a value.
    pub values: usize,
    pub verified: bool,
    /// The record page's query string (`event=…&instrument=…&instance=…`).
    pub link: String,
}

impl GridRecord {
    /// "#2 Complete · 5 values ✓", as the grid shows it.
    pub fn label(&self) -> String {
        let mut s = String::new();
        if self.instance > 0 {
            s.push_str(&format!("#{} ", self.instance));
        }
        s.push_str(self.status.map_or("No status", FormStatus::label));
        s.push_str(&match self.values {
            1 => " · 1 value".to_string(),
            n => format!(" · {n} values"),
        });
        if self.verified {
            s.push_str(" ✓");
        }
        s
    }
    /// The CSS class of its status.
    pub fn class(&self) -> &'static str {
        match self.status {
            Some(FormStatus::Complete) => "complete",
            Some(FormStatus::Unverified) => "unverified",
            Some(FormStatus::Incomplete) => "incomplete",
            None => "none",
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct GridEvent {
    pub unique_name: String,
    pub name: String,
    pub arm: i32,
}

/// REDCap's record home page: the subject's events (columns) and the study's forms (rows).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Grid {
    pub events: Vec<GridEvent>,
    pub rows: Vec<(String, Vec<GridCell>)>,
}

impl Grid {
    /// The grid of one case: `base` its values, `statuses` its forms' statuses, `records` the
    /// others, `verified` its verified (slot, form) pairs.
    pub fn new(
        design: &Design,
        fields: &[super::dictionary::FieldDef],
        base: &Map<String, Value>,
        statuses: &Statuses,
        records: &[Record],
        verified: &[(String, String)],
    ) -> Grid {
        let forms = crate::quality::sdv::forms(fields);
        // The subject's arm: the one its records are on (the first arm without any).
        let arm = records
            .iter()
            .find_map(|r| design.event(&r.key.event).map(|e| e.arm))
            .or_else(|| design.arms.first().map(|a| a.num))
            .unwrap_or(1);
        let events: Vec<GridEvent> = if design.is_longitudinal() {
            design
                .events
                .iter()
                .filter(|e| e.arm == arm)
                .map(|e| GridEvent { unique_name: e.unique_name.clone(), name: e.name.clone(), arm: e.arm })
                .collect()
        } else {
            vec![GridEvent { unique_name: String::new(), name: "Record".into(), arm: 1 }]
        };
        let count = |data: &Map<String, Value>, form: &str| {
            fields.iter().filter(|f| f.form_name == form && super::dictionary::has_value(data.get(&f.name))).count()
        };
        let rows = forms
            .iter()
            .map(|form| {
                let cells = events
                    .iter()
                    .map(|e| {
                        let collected = design.has_form(&e.unique_name, form);
                        let repeating = design.repeats(&e.unique_name, form);
                        let repeats = repeating != super::events::Repeats::No;
                        let mut out = Vec::new();
                        if collected {
                            let base_key = RecordKey::base(&e.unique_name);
                            if design.is_base(&base_key) && !repeats {
                                let values = count(base, form);
                                let status = statuses.get(form).copied().and_then(FormStatus::from_code);
                                out.push(GridRecord {
                                    instance: 0,
                                    status,
                                    values,
                                    verified: verified.iter().any(|(s, f)| s.is_empty() && f == form),
                                    link: link(&base_key),
                                });
                            }
                            for r in records.iter().filter(|r| r.key.event == e.unique_name) {
                                if !design.record_has_form(&r.key, form) {
                                    continue;
                                }
                                let slot = design.slot(&r.key);
                                out.push(GridRecord {
                                    instance: r.key.instance,
                                    status: r.form_status.get(form).copied().and_then(FormStatus::from_code),
                                    values: count(&r.data, form),
                                    verified: verified.iter().any(|(s, f)| *s == slot && f == form),
                                    link: link(&r.key),
                                });
                            }
                        }
                        let add = if !collected {
                            None
                        } else if repeats {
                            let next = out.iter().map(|r| r.instance).max().unwrap_or(0) + 1;
                            let instrument =
                                if repeating == super::events::Repeats::Instrument { form.as_str() } else { "" };
                            let key = RecordKey {
                                event: e.unique_name.clone(),
                                instrument: instrument.into(),
                                instance: next,
                            };
                            Some(link(&key))
                        } else if out.is_empty() && !design.is_base(&RecordKey::base(&e.unique_name)) {
                            Some(link(&RecordKey::base(&e.unique_name)))
                        } else {
                            None
                        };
                        GridCell { collected, records: out, repeats, add }
                    })
                    .collect();
                (form.clone(), cells)
            })
            .collect();
        Grid { events, rows }
    }
}

/// A record page's query string: `event=…&instrument=…&instance=…`.
pub fn link(key: &RecordKey) -> String {
    serde_urlencoded::to_string([
        ("event", key.event.as_str()),
        ("instrument", key.instrument.as_str()),
        ("instance", &key.instance.to_string()),
    ])
    .unwrap_or_default()
}
