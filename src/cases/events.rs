//! A longitudinal study's design, as REDCap describes it: arms, events (with REDCap's unique
//! event names, `baseline_arm_1`), the instrument–event mapping (REDCap's "instrument
//! designation") and the repeating instruments and events. A classic study has no events; it may
//! still have repeating instruments. The design is read from and written to REDCap's own CSV
//! files, so a project's setup moves between REDCap and Evidentia unchanged.
//!
//! Every record of a subject is keyed by its event, its repeating instrument and its instance
//! ([`RecordKey`]); the first event of the subject's arm, not repeating, is the subject's *base*
//! record — the values `cases.data` holds and every analysis reads. The other records are kept in
//! `case_records` ([`super::records`]).

use std::collections::BTreeSet;

use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::decode::{self, Limits};
use super::dictionary::FieldDef;
use crate::audit::{self, Action, Change, Entity};
use crate::auth::permissions::{Permission, StudyAccess};
use crate::auth::Actor;
use crate::db::schema::study_designs;
use crate::db::{now, write_tx, Conn};
use crate::error::{Error, FieldErrors, Result};
use crate::studies::StudyId;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arm {
    pub num: i32,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub arm: i32,
    /// The label people see ("Follow-up 1").
    pub name: String,
    /// REDCap's unique event name (`followup_1_arm_1`): what record files carry.
    pub unique_name: String,
    pub day_offset: i32,
}

/// A form designated for an event (`event` is empty in a classic study).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Designation {
    pub event: String,
    pub form: String,
}

/// A repeating instrument of an event, or (`form` empty) an event that repeats as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repeating {
    pub event: String,
    pub form: String,
    pub label: String,
}

/// A study's design; the default is a classic study with nothing repeating.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Design {
    pub arms: Vec<Arm>,
    /// In the order of the study's schedule, arm by arm.
    pub events: Vec<Event>,
    pub mapping: Vec<Designation>,
    pub repeating: Vec<Repeating>,
}

/// Which record of a subject a row or a value belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecordKey {
    /// The unique event name; empty in a classic study.
    pub event: String,
    /// The repeating instrument; empty for a whole repeating event or a record that does not repeat.
    pub instrument: String,
    /// The repeat instance (1, 2, …); 0 for a record that does not repeat.
    pub instance: i32,
}

impl RecordKey {
    pub fn base(event: &str) -> Self {
        RecordKey { event: event.to_string(), instrument: String::new(), instance: 0 }
    }
    /// "Follow-up 1 · ae #2" as people read it.
    pub fn describe(&self, design: &Design) -> String {
        let mut s = design.event(&self.event).map_or_else(|| self.event.clone(), |e| e.name.clone());
        if !self.instrument.is_empty() {
            if !s.is_empty() {
                s.push_str(" · ");
            }
            s.push_str(&self.instrument);
        }
        if self.instance > 0 {
            s.push_str(&format!(" #{}", self.instance));
        }
        s
    }
}

/// How a form repeats on an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeats {
    No,
    /// A repeating instrument: each instance holds that form only.
    Instrument,
    /// The whole event repeats: each instance holds all of its forms.
    Event,
}

impl Design {
    /// The SHA-256 of the design as stored: what a prepared import was read with.
    pub fn sha256(&self) -> String {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(serde_json::to_string(self).unwrap_or_default().as_bytes()))
    }
    /// "1 arm, 5 events, 10 form designations, 4 repeating", as the design's save says it.
    pub fn summary(&self) -> String {
        let n = |k: usize, one: &str, many: &str| format!("{k} {}", if k == 1 { one } else { many });
        format!(
            "{}, {}, {}, {} repeating",
            n(self.arms.len(), "arm", "arms"),
            n(self.events.len(), "event", "events"),
            n(self.mapping.len(), "form designation", "form designations"),
            self.repeating.len()
        )
    }
    pub fn is_longitudinal(&self) -> bool {
        !self.events.is_empty()
    }
    pub fn is_empty(&self) -> bool {
        self == &Design::default()
    }
    /// The unique event names, in the schedule's order (what logic may name as `[event]`).
    pub fn event_names(&self) -> Vec<String> {
        self.events.iter().map(|e| e.unique_name.clone()).collect()
    }
    pub fn event(&self, unique_name: &str) -> Option<&Event> {
        self.events.iter().find(|e| e.unique_name == unique_name)
    }
    /// The first event of `arm` (empty in a classic study): the base record's event.
    pub fn base_event(&self, arm: i32) -> &str {
        self.events.iter().find(|e| e.arm == arm).map_or("", |e| e.unique_name.as_str())
    }
    /// The base event of the arm `event` belongs to.
    pub fn base_event_of(&self, event: &str) -> &str {
        self.event(event).map_or("", |e| self.base_event(e.arm))
    }
    /// Whether `form` is collected on `event` (every form is, in a classic study).
    pub fn has_form(&self, event: &str, form: &str) -> bool {
        !self.is_longitudinal() || self.mapping.iter().any(|d| d.event == event && d.form == form)
    }
    /// The forms of `event`, in the dictionary's order.
    pub fn forms_of<'a>(&self, event: &str, forms: &'a [String]) -> Vec<&'a String> {
        forms.iter().filter(|f| self.has_form(event, f)).collect()
    }
    pub fn repeats(&self, event: &str, form: &str) -> Repeats {
        if self.repeating.iter().any(|r| r.event == event && r.form.is_empty()) {
            Repeats::Event
        } else if self.repeating.iter().any(|r| r.event == event && r.form == form) {
            Repeats::Instrument
        } else {
            Repeats::No
        }
    }
    /// Whether a record holds values of `form`.
    pub fn record_has_form(&self, key: &RecordKey, form: &str) -> bool {
        if !self.has_form(&key.event, form) {
            return false;
        }
        match self.repeats(&key.event, form) {
            Repeats::Instrument => key.instrument == form && key.instance > 0,
            Repeats::Event => key.instrument.is_empty() && key.instance > 0,
            Repeats::No => key.instrument.is_empty() && key.instance == 0,
        }
    }
    /// Whether `key` is the base record of its subject (values in `cases.data`).
    pub fn is_base(&self, key: &RecordKey) -> bool {
        key.instrument.is_empty() && key.instance == 0 && key.event == self.base_event_of(&key.event)
    }

    /// Whether the base record (the subject's values, `cases.data`) holds `form`: a form of an
    /// arm's first event that does not repeat there (any form that does not repeat, in a
    /// classic study).
    pub fn on_base(&self, form: &str) -> bool {
        if !self.is_longitudinal() {
            return self.repeats("", form) == Repeats::No;
        }
        self.arms.iter().any(|a| {
            let base = self.base_event(a.num);
            self.has_form(base, form) && self.repeats(base, form) == Repeats::No
        })
    }
    /// The fields of the base record's forms (the subject id, the first, always): what the case
    /// page shows and edits, and the data quality rules check.
    pub fn base_fields(&self, fields: Vec<FieldDef>) -> Vec<FieldDef> {
        if self.is_empty() {
            return fields;
        }
        let first = fields.iter().position(|f| f.holds_data());
        fields
            .into_iter()
            .enumerate()
            .filter(|(i, f)| Some(*i) == first || self.on_base(&f.form_name))
            .map(|(_, f)| f)
            .collect()
    }

    /// The name of a record in verifications: empty for the base record, else the event, then
    /// `:instrument` and `#instance` where they apply (`follow_up_1_arm_1:ae#2`).
    pub fn slot(&self, key: &RecordKey) -> String {
        if self.is_base(key) {
            return String::new();
        }
        let mut s = key.event.clone();
        if !key.instrument.is_empty() {
            s.push(':');
            s.push_str(&key.instrument);
        }
        if key.instance > 0 {
            s.push_str(&format!("#{}", key.instance));
        }
        s
    }

    /// The record a row of a record file names by its `redcap_event_name`,
    /// `redcap_repeat_instrument` and `redcap_repeat_instance` cells; the error names the column.
    pub fn record_key(
        &self,
        event: &str,
        instrument: &str,
        instance: &str,
    ) -> std::result::Result<RecordKey, (&'static str, String)> {
        let (event, instrument, instance) = (event.trim(), instrument.trim(), instance.trim());
        if self.is_longitudinal() {
            if event.is_empty() {
                return Err(("redcap_event_name", "missing event (the study is longitudinal)".into()));
            }
            if self.event(event).is_none() {
                let known: Vec<&str> = self.events.iter().map(|e| e.unique_name.as_str()).collect();
                return Err((
                    "redcap_event_name",
                    format!("{} is not an event of the study ({})", shown(event), known.join(", ")),
                ));
            }
        } else if !event.is_empty() {
            return Err(("redcap_event_name", "the study has no events (define them first)".into()));
        }
        let n: i32 = if instance.is_empty() {
            0
        } else {
            match instance.parse::<i32>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err((
                        "redcap_repeat_instance",
                        format!("{} is not a repeat instance (1, 2, …)", shown(instance)),
                    ))
                }
            }
        };
        let whole = self.repeating.iter().any(|r| r.event == event && r.form.is_empty());
        if !instrument.is_empty() {
            if !self.repeating.iter().any(|r| r.event == event && r.form == instrument) {
                let on = if event.is_empty() { String::new() } else { format!(" on {event}") };
                return Err((
                    "redcap_repeat_instrument",
                    format!("{} is not a repeating instrument{on}", shown(instrument)),
                ));
            }
            if n == 0 {
                return Err(("redcap_repeat_instance", "a repeating instrument's row needs its instance".into()));
            }
        } else if whole && n == 0 {
            return Err(("redcap_repeat_instance", format!("{event} repeats: the row needs its instance")));
        } else if !whole && n > 0 {
            return Err(("redcap_repeat_instance", "only a repeating instrument or event has instances".into()));
        }
        Ok(RecordKey { event: event.to_string(), instrument: instrument.to_string(), instance: n })
    }
}

/// REDCap's unique event name for an event that has none in the file: the name in lower case,
/// every run of other characters than letters and digits one `_`, cut to 18 characters, then
/// `_arm_<n>`.
pub fn unique_event_name(name: &str, arm: i32) -> String {
    let mut s = String::new();
    for c in name.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c);
        } else if !s.ends_with('_') && !s.is_empty() {
            s.push('_');
        }
    }
    let s: String = s.trim_end_matches('_').chars().take(18).collect();
    format!("{}_arm_{arm}", s.trim_end_matches('_'))
}

/// A cell of a record file as an error message may show it: quoted when it has the form of a
/// name (a misaligned row can put a patient's name or number in any column: that is not echoed).
fn shown(cell: &str) -> String {
    if valid_unique_name(cell) {
        format!("'{cell}'")
    } else {
        "the value".to_string()
    }
}

fn valid_unique_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 100 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The design's files as given (any may be missing but the events of a longitudinal study).
#[derive(Debug, Clone, Default)]
pub struct DesignFiles<'a> {
    pub arms: Option<&'a [u8]>,
    pub events: Option<&'a [u8]>,
    pub mapping: Option<&'a [u8]>,
    pub repeating: Option<&'a [u8]>,
}

/// One design file read as a table, its problems added to `errors` under `what`.
fn table(what: &str, bytes: &[u8], required: &[&str], errors: &mut FieldErrors) -> Option<decode::Table> {
    let t = match decode::read_table(what, bytes, None, &Limits::default()) {
        Ok(t) => t,
        Err(e) => {
            errors.add(what, e.to_string());
            return None;
        }
    };
    let missing: Vec<&&str> = required.iter().filter(|c| !t.header.iter().any(|h| h.eq_ignore_ascii_case(c))).collect();
    if !missing.is_empty() {
        let names: Vec<&str> = missing.iter().map(|c| **c).collect();
        errors.add(what, format!("the file has no column {}", names.join(", ")));
        return None;
    }
    Some(t)
}

fn column(t: &decode::Table, name: &str) -> Option<usize> {
    t.header.iter().position(|h| h.eq_ignore_ascii_case(name))
}

/// Reads the design from REDCap's files, checked against the dictionary's `forms`: every problem
/// names its file, row and column. Arms not given are named "Arm 1", "Arm 2", …; events without a
/// unique name get REDCap's ([`unique_event_name`]).
pub fn parse(files: &DesignFiles, forms: &[String]) -> std::result::Result<Design, FieldErrors> {
    let mut errors = FieldErrors::default();
    let mut design = Design::default();
    let int = |s: &str| s.trim().parse::<i32>().ok();
    if let Some(t) = files.arms.and_then(|b| table("arms", b, &["arm_num", "name"], &mut errors)) {
        let (num, name) = (column(&t, "arm_num").unwrap_or(0), column(&t, "name").unwrap_or(0));
        for (i, row) in t.rows.iter().enumerate() {
            let r = i + 1;
            match int(row.cell(num)) {
                Some(n) if n >= 1 && !design.arms.iter().any(|a| a.num == n) => {
                    design.arms.push(Arm { num: n, name: row.cell(name).trim().to_string() })
                }
                Some(n) if n >= 1 => errors.add("arms", format!("row {r}, column arm_num: arm {n} is listed twice")),
                _ => errors.add("arms", format!("row {r}, column arm_num: '{}' is not an arm number", row.cell(num))),
            }
        }
    }
    if let Some(t) = files.events.and_then(|b| table("events", b, &["event_name", "arm_num"], &mut errors)) {
        let name = column(&t, "event_name").unwrap_or(0);
        let arm = column(&t, "arm_num").unwrap_or(0);
        let unique = column(&t, "unique_event_name");
        let offset = column(&t, "day_offset").or_else(|| column(&t, "days_offset"));
        for (i, row) in t.rows.iter().enumerate() {
            let r = i + 1;
            let label = row.cell(name).trim().to_string();
            if label.is_empty() {
                errors.add("events", format!("row {r}, column event_name: missing event name"));
                continue;
            }
            let Some(a) = int(row.cell(arm)).filter(|a| *a >= 1) else {
                errors.add("events", format!("row {r}, column arm_num: '{}' is not an arm number", row.cell(arm)));
                continue;
            };
            if files.arms.is_some() && !design.arms.iter().any(|x| x.num == a) {
                errors.add("events", format!("row {r}, column arm_num: arm {a} is not in the arms file"));
                continue;
            }
            let u = unique.map(|c| row.cell(c).trim()).filter(|u| !u.is_empty());
            let u = u.map_or_else(|| unique_event_name(&label, a), str::to_string);
            if u.starts_with("_arm_") {
                errors.add(
                    "events",
                    format!("row {r}, column unique_event_name: give the event's unique name (REDCap's, as `baseline_arm_1`): its name has no letter or digit to make one from"),
                );
                continue;
            }
            if !valid_unique_name(&u) {
                errors.add(
                    "events",
                    format!("row {r}, column unique_event_name: '{u}' must be lower-case letters, digits and _"),
                );
                continue;
            }
            if design.events.iter().any(|e| e.unique_name == u) {
                errors.add("events", format!("row {r}, column unique_event_name: '{u}' is listed twice"));
                continue;
            }
            let day_offset = match offset.map(|c| row.cell(c).trim()).filter(|s| !s.is_empty()) {
                None => 0,
                Some(s) => match s.parse::<f64>() {
                    Ok(d) if d.is_finite() && d.abs() < 100_000.0 => d.round() as i32,
                    _ => {
                        errors.add("events", format!("row {r}, column day_offset: '{s}' is not a number of days"));
                        continue;
                    }
                },
            };
            design.events.push(Event { arm: a, name: label, unique_name: u, day_offset });
        }
        if design.events.is_empty() && errors.is_empty() {
            errors.add("events", "the file lists no event");
        }
    }
    if !design.arms.is_empty() && design.events.is_empty() && errors.is_empty() {
        errors.add("events", "arms without events: give the events file too");
    }
    // Arms the events name but no arms file gave.
    let named: BTreeSet<i32> = design.events.iter().map(|e| e.arm).collect();
    for a in named {
        if !design.arms.iter().any(|x| x.num == a) {
            design.arms.push(Arm { num: a, name: format!("Arm {a}") });
        }
    }
    design.arms.sort_by_key(|a| a.num);
    // A subject's arm is not recorded yet: with several arms, a subject with only its first
    // event's record could not be placed. One arm until it is.
    if design.arms.len() > 1 {
        errors.add(
            "arms",
            format!("{} arms: a study has one arm for now (several arms are not supported yet)", design.arms.len()),
        );
    }
    // Events arm by arm, in the file's order within an arm (REDCap lists them so).
    design.events.sort_by_key(|e| e.arm);
    let event_known = |e: &str| design.events.iter().any(|x| x.unique_name == e);
    let form_known = |f: &str| forms.iter().any(|x| x == f);
    let known_forms = || forms.join(", ");

    match files.mapping.and_then(|b| table("mapping", b, &["unique_event_name", "form"], &mut errors)) {
        Some(t) => {
            let (ev, form) = (column(&t, "unique_event_name").unwrap_or(0), column(&t, "form").unwrap_or(0));
            let arm = column(&t, "arm_num");
            for (i, row) in t.rows.iter().enumerate() {
                let r = i + 1;
                let (e, f) = (row.cell(ev).trim(), row.cell(form).trim());
                let Some(event) = design.events.iter().find(|x| x.unique_name == e) else {
                    errors.add(
                        "mapping",
                        format!("row {r}, column unique_event_name: '{e}' is not an event of the events file"),
                    );
                    continue;
                };
                if let Some(a) = arm.map(|c| row.cell(c).trim()).filter(|s| !s.is_empty()) {
                    if int(a) != Some(event.arm) {
                        errors.add(
                            "mapping",
                            format!("row {r}, column arm_num: {e} belongs to arm {}, not {a}", event.arm),
                        );
                        continue;
                    }
                }
                if !form_known(f) {
                    errors.add(
                        "mapping",
                        format!("row {r}, column form: '{f}' is not a form of the dictionary ({})", known_forms()),
                    );
                    continue;
                }
                let d = Designation { event: e.to_string(), form: f.to_string() };
                if design.mapping.contains(&d) {
                    errors.add("mapping", format!("row {r}: {f} on {e} is listed twice"));
                    continue;
                }
                design.mapping.push(d);
            }
            for e in &design.events {
                if !design.mapping.iter().any(|d| d.event == e.unique_name) {
                    errors.add("mapping", format!("event {} has no form", e.unique_name));
                }
            }
        }
        None if !design.events.is_empty() && files.mapping.is_none() => {
            errors.add("mapping", "a longitudinal study needs its instrument designation (which forms each event has)")
        }
        None => {}
    }
    if let Some(t) = files.repeating.and_then(|b| table("repeating", b, &["form_name"], &mut errors)) {
        let ev = column(&t, "event_name");
        let (form, label) = (column(&t, "form_name").unwrap_or(0), column(&t, "custom_form_label"));
        for (i, row) in t.rows.iter().enumerate() {
            let r = i + 1;
            let e = ev.map_or("", |c| row.cell(c).trim());
            let f = row.cell(form).trim();
            if design.is_longitudinal() && !event_known(e) {
                errors
                    .add("repeating", format!("row {r}, column event_name: '{e}' is not an event of the events file"));
                continue;
            }
            if !design.is_longitudinal() && !e.is_empty() {
                errors.add("repeating", format!("row {r}, column event_name: the study has no events"));
                continue;
            }
            if !f.is_empty() && !form_known(f) {
                errors.add(
                    "repeating",
                    format!("row {r}, column form_name: '{f}' is not a form of the dictionary ({})", known_forms()),
                );
                continue;
            }
            if !f.is_empty() && design.is_longitudinal() && !design.has_form(e, f) {
                errors.add("repeating", format!("row {r}, column form_name: event {e} does not have form {f}"));
                continue;
            }
            if f.is_empty() && !design.is_longitudinal() {
                errors.add("repeating", format!("row {r}, column form_name: missing form"));
                continue;
            }
            if design.repeating.iter().any(|x| x.event == e && (x.form == f || x.form.is_empty() || f.is_empty())) {
                errors.add("repeating", format!("row {r}: {} repeats already", if f.is_empty() { e } else { f }));
                continue;
            }
            let label = label.map_or("", |c| row.cell(c).trim()).to_string();
            design.repeating.push(Repeating { event: e.to_string(), form: f.to_string(), label });
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // The base record of every arm does not repeat: its values are the subject's.
    for a in &design.arms {
        let base = design.base_event(a.num).to_string();
        if design.repeating.iter().any(|r| r.event == base && r.form.is_empty()) {
            let mut e = FieldErrors::default();
            e.add("repeating", format!("{base} is the first event of arm {}: it cannot repeat as a whole", a.num));
            return Err(e);
        }
    }
    Ok(design)
}

/// Reads the design from the files given, each file not given standing for what `current` has
/// (a new instrument designation alone keeps the events).
pub fn parse_keeping(
    current: &Design,
    given: &DesignFiles,
    forms: &[String],
) -> std::result::Result<Design, FieldErrors> {
    let kept = |given: Option<&[u8]>, keep: bool, write: fn(&Design) -> anyhow::Result<Vec<u8>>| match given {
        Some(b) => Ok(Some(b.to_vec())),
        None if keep => write(current).map(Some).map_err(|e| FieldErrors::single("design", e.to_string())),
        None => Ok(None),
    };
    let arms = kept(given.arms, current.is_longitudinal(), Design::arms_csv)?;
    let events = kept(given.events, current.is_longitudinal(), Design::events_csv)?;
    let mapping = kept(given.mapping, current.is_longitudinal(), Design::mapping_csv)?;
    let repeating = kept(given.repeating, !current.repeating.is_empty(), Design::repeating_csv)?;
    let files = DesignFiles {
        arms: arms.as_deref(),
        events: events.as_deref(),
        mapping: mapping.as_deref(),
        repeating: repeating.as_deref(),
    };
    parse(&files, forms)
}

fn write_csv(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    crate::export::write_rows(&mut out, header.to_vec(), rows)?;
    Ok(out)
}

impl Design {
    /// REDCap's arms file: `arm_num,name`.
    pub fn arms_csv(&self) -> anyhow::Result<Vec<u8>> {
        write_csv(&["arm_num", "name"], self.arms.iter().map(|a| vec![a.num.to_string(), a.name.clone()]))
    }
    /// REDCap's events file (the columns its event import reads).
    pub fn events_csv(&self) -> anyhow::Result<Vec<u8>> {
        write_csv(
            &["event_name", "arm_num", "day_offset", "unique_event_name"],
            self.events
                .iter()
                .map(|e| vec![e.name.clone(), e.arm.to_string(), e.day_offset.to_string(), e.unique_name.clone()]),
        )
    }
    /// REDCap's instrument designation file: `arm_num,unique_event_name,form`.
    pub fn mapping_csv(&self) -> anyhow::Result<Vec<u8>> {
        write_csv(
            &["arm_num", "unique_event_name", "form"],
            self.mapping.iter().map(|d| {
                let arm = self.event(&d.event).map_or(String::new(), |e| e.arm.to_string());
                vec![arm, d.event.clone(), d.form.clone()]
            }),
        )
    }
    /// REDCap's repeating instruments and events file (without `event_name` in a classic study).
    pub fn repeating_csv(&self) -> anyhow::Result<Vec<u8>> {
        if self.is_longitudinal() {
            write_csv(
                &["event_name", "form_name", "custom_form_label"],
                self.repeating.iter().map(|r| vec![r.event.clone(), r.form.clone(), r.label.clone()]),
            )
        } else {
            write_csv(
                &["form_name", "custom_form_label"],
                self.repeating.iter().map(|r| vec![r.form.clone(), r.label.clone()]),
            )
        }
    }
}

/// One of the design's files: its name and how it is written.
pub type DesignFile = (&'static str, fn(&Design) -> anyhow::Result<Vec<u8>>);

/// The design's four REDCap files, by the names Evidentia gives them.
pub const FILES: [DesignFile; 4] = [
    ("arms.csv", Design::arms_csv),
    ("events.csv", Design::events_csv),
    ("mapping.csv", Design::mapping_csv),
    ("repeating.csv", Design::repeating_csv),
];

/// The study's design (the default, classic, when none was set).
pub fn load(conn: &mut Conn, study_id: StudyId) -> Result<Design> {
    let stored: Option<String> = study_designs::table
        .filter(study_designs::study_id.eq(study_id))
        .select(study_designs::design)
        .first(conn)
        .optional()?;
    match stored {
        None => Ok(Design::default()),
        Some(s) => serde_json::from_str(&s).map_err(|e| Error::Internal(e.into())),
    }
}

/// Sets the study's design in one audited step. Refused while the study is locked, and when a
/// stored record would lose its event or its repetition (records are never dropped).
pub fn replace(conn: &mut Conn, actor: &Actor, access: &StudyAccess, design: &Design) -> Result<()> {
    access.require(Permission::EditStudy)?;
    write_tx(conn, |conn| {
        let study = crate::studies::get_by_code(conn, &access.study.code)?;
        study.ensure_editable()?;
        let old = load(conn, study.id)?;
        if &old == design {
            return Ok(());
        }
        let records = super::records::of_study(conn, study.id)?;
        let has_cases = super::count(conn, study.id)? > 0;
        // Every stored value must stay on a form its record holds under the new design.
        let fields = super::dictionary::load(conn, study.id)?;
        let subject_field = fields.iter().find(|f| f.holds_data()).map(|f| f.name.clone());
        let form_of: std::collections::HashMap<&str, &str> =
            fields.iter().map(|f| (f.name.as_str(), f.form_name.as_str())).collect();
        let mut orphaned: BTreeSet<String> = BTreeSet::new();
        let mut check_values = |key: &RecordKey, names: &mut dyn Iterator<Item = &String>, base: bool| {
            for name in names {
                let Some(form) = form_of.get(name.as_str()) else { continue };
                let kept = if base { design.on_base(form) } else { design.record_has_form(key, form) };
                if Some(name) != subject_field.as_ref() && !kept {
                    orphaned.insert(format!("{form} on {}", key.describe(&old)));
                }
            }
        };
        for r in records.values().flatten() {
            check_values(&r.key, &mut r.data.keys(), false);
        }
        let base_data: Vec<String> = crate::db::schema::cases::table
            .filter(crate::db::schema::cases::study_id.eq(study.id))
            .select(crate::db::schema::cases::data)
            .load(conn)?;
        for data in base_data {
            let values: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&data).unwrap_or_default();
            check_values(&RecordKey::base(old.base_event(1)), &mut values.keys(), true);
        }
        if !orphaned.is_empty() {
            let list: Vec<String> = orphaned.into_iter().take(10).collect();
            return Err(Error::Conflict(format!(
                "values are stored on forms the new design would not collect there ({}): keep them in the design",
                list.join("; ")
            )));
        }
        let keys: BTreeSet<&RecordKey> = records.values().flatten().map(|r| &r.key).collect();
        for key in keys {
            let key = key.clone();
            let fits = design.record_key(&key.event, &key.instrument, &instance_text(key.instance)).is_ok()
                && !design.is_base(&key);
            if !fits {
                return Err(Error::Conflict(format!(
                    "records of {} are stored: the new design must keep that event and how it repeats",
                    key.describe(&old)
                )));
            }
        }
        if has_cases {
            for a in &old.arms {
                let base = old.base_event(a.num);
                if !base.is_empty() && design.base_event(a.num) != base {
                    return Err(Error::Conflict(format!(
                        "subjects are stored with {base} as the first event of arm {}: the new design must keep it first",
                        a.num
                    )));
                }
            }
        }
        let text = serde_json::to_string(design).map_err(|e| Error::Internal(e.into()))?;
        let t = now();
        let updated = diesel::update(study_designs::table.filter(study_designs::study_id.eq(study.id)))
            .set((
                study_designs::design.eq(&text),
                study_designs::updated_by.eq(&actor.name),
                study_designs::updated_at.eq(t),
            ))
            .execute(conn)?;
        if updated == 0 {
            diesel::insert_into(study_designs::table)
                .values((
                    study_designs::study_id.eq(study.id),
                    study_designs::design.eq(&text),
                    study_designs::updated_by.eq(&actor.name),
                    study_designs::updated_at.eq(t),
                ))
                .execute(conn)?;
        }
        let whole = |d: &Design| serde_json::to_value(d).unwrap_or_else(|_| json!({}));
        let (before, after) = audit::diff(&whole(&old), &whole(design));
        audit::record(
            conn,
            Change::new(study.chain(), &actor.name, Action::Update, Entity::StudyDesign, &study.code)
                .before(before)
                .after(after),
        )?;
        Ok(())
    })
}

/// An instance as a record file writes it (blank for a record that does not repeat).
pub fn instance_text(instance: i32) -> String {
    if instance > 0 {
        instance.to_string()
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forms() -> Vec<String> {
        ["enrolment", "baseline", "followup", "ae"].map(String::from).to_vec()
    }

    const EVENTS: &str = "event_name,arm_num,day_offset,unique_event_name\n\
        Baseline,1,0,baseline_arm_1\nFollow-up 1,1,90,\nFollow-up 2,1,180,followup_2_arm_1\n";
    const MAPPING: &str = "arm_num,unique_event_name,form\n1,baseline_arm_1,enrolment\n1,baseline_arm_1,baseline\n\
        1,follow_up_1_arm_1,followup\n1,follow_up_1_arm_1,ae\n1,followup_2_arm_1,followup\n";
    const REPEATING: &str = "event_name,form_name,custom_form_label\nfollow_up_1_arm_1,ae,[ae_term]\n";

    /// The design of `EVENTS`, `MAPPING` and `REPEATING`.
    fn design() -> Design {
        let files = DesignFiles {
            events: Some(EVENTS.as_bytes()),
            mapping: Some(MAPPING.as_bytes()),
            repeating: Some(REPEATING.as_bytes()),
            ..Default::default()
        };
        parse(&files, &forms()).unwrap()
    }

    #[test]
    fn a_redcap_design_reads_and_writes_back() {
        let d = design();
        assert_eq!(d.arms, vec![Arm { num: 1, name: "Arm 1".into() }]);
        assert_eq!(d.events[1].unique_name, "follow_up_1_arm_1");
        assert_eq!(d.base_event(1), "baseline_arm_1");
        assert_eq!(d.repeats("follow_up_1_arm_1", "ae"), Repeats::Instrument);
        assert!(d.has_form("followup_2_arm_1", "followup") && !d.has_form("followup_2_arm_1", "ae"));
        // Written back, the files read as the same design.
        let (e, m, r) = (d.events_csv().unwrap(), d.mapping_csv().unwrap(), d.repeating_csv().unwrap());
        let again = parse(
            &DesignFiles {
                events: Some(&e),
                mapping: Some(&m),
                repeating: Some(&r),
                arms: Some(&d.arms_csv().unwrap()),
            },
            &forms(),
        )
        .unwrap();
        assert_eq!(again, d);
    }

    #[test]
    fn record_keys_follow_the_design() {
        let d = design();
        let base = d.record_key("baseline_arm_1", "", "").unwrap();
        assert!(d.is_base(&base) && d.record_has_form(&base, "baseline") && !d.record_has_form(&base, "ae"));
        let ae = d.record_key("follow_up_1_arm_1", "ae", "2").unwrap();
        assert!(!d.is_base(&ae) && d.record_has_form(&ae, "ae") && !d.record_has_form(&ae, "followup"));
        assert_eq!(d.record_key("week_4_arm_1", "", "").unwrap_err().0, "redcap_event_name");
        assert_eq!(d.record_key("", "", "").unwrap_err().0, "redcap_event_name");
        assert_eq!(d.record_key("follow_up_1_arm_1", "ae", "").unwrap_err().0, "redcap_repeat_instance");
        assert_eq!(d.record_key("baseline_arm_1", "ae", "1").unwrap_err().0, "redcap_repeat_instrument");
        assert_eq!(d.record_key("baseline_arm_1", "", "1").unwrap_err().0, "redcap_repeat_instance");
        assert_eq!(d.record_key("follow_up_1_arm_1", "ae", "x").unwrap_err().0, "redcap_repeat_instance");
    }

    #[test]
    fn bad_design_files_name_file_row_and_column() {
        let events = "event_name,arm_num\nBaseline,1\n,1\nWeek 4,x\n";
        let mapping = "arm_num,unique_event_name,form\n1,baseline_arm_1,labs\n1,week_9_arm_1,baseline\n2,baseline_arm_1,baseline\n";
        let files =
            DesignFiles { events: Some(events.as_bytes()), mapping: Some(mapping.as_bytes()), ..Default::default() };
        let e = parse(&files, &forms()).unwrap_err();
        let text = e.to_string();
        for expected in [
            "events: row 2, column event_name: missing event name",
            "events: row 3, column arm_num: 'x' is not an arm number",
            "mapping: row 1, column form: 'labs' is not a form",
            "mapping: row 2, column unique_event_name: 'week_9_arm_1' is not an event",
            "mapping: row 3, column arm_num: baseline_arm_1 belongs to arm 1, not 2",
        ] {
            assert!(text.contains(expected), "{expected} in {text}");
        }
        let two_arms = "event_name,arm_num,unique_event_name\nBaseline,1,baseline_arm_1\nBaseline,2,baseline_arm_2\n";
        let files = DesignFiles {
            events: Some(two_arms.as_bytes()),
            mapping: Some(b"arm_num,unique_event_name,form\n"),
            ..Default::default()
        };
        assert!(parse(&files, &forms()).unwrap_err().to_string().contains("a study has one arm for now"));
        let korean = "event_name,arm_num\n기저,1\n";
        let files = DesignFiles { events: Some(korean.as_bytes()), ..Default::default() };
        assert!(parse(&files, &forms())
            .unwrap_err()
            .to_string()
            .contains("row 1, column unique_event_name: give the event's unique name"));
        let arms_only = DesignFiles { arms: Some(b"arm_num,name\n1,Treatment\n"), ..Default::default() };
        assert!(parse(&arms_only, &forms()).unwrap_err().to_string().contains("arms without events"));
        let no_mapping = DesignFiles { events: Some(EVENTS.as_bytes()), ..Default::default() };
        assert!(parse(&no_mapping, &forms()).unwrap_err().to_string().contains("instrument designation"));
    }

    #[test]
    fn unique_event_names_are_redcaps() {
        assert_eq!(unique_event_name("Baseline", 1), "baseline_arm_1");
        assert_eq!(unique_event_name("Follow-up (Month 3)", 2), "follow_up_month_3_arm_2");
        assert_eq!(unique_event_name("A very long event name indeed", 1), "a_very_long_event_arm_1");
    }
}
