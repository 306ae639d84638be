//! The per-study data dictionary in REDCap's data-dictionary CSV format: parsing and writing
//! it, validating a value against a field, and each field's de-identification action.

use std::collections::BTreeMap;

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde_json::{json, Value};

use super::decode::{self, Limits};
use crate::audit::{self, Action, Change, Entity};
use crate::auth::permissions::{Permission, StudyAccess};
use crate::auth::Actor;
use crate::db::schema::{cases, dictionary_fields};
use crate::db::{now, write_tx, Conn};
use crate::error::{Error, FieldErrors, Result};

/// REDCap's data-dictionary header, in order (REDCap documentation, "Data Dictionary").
pub const REDCAP_COLUMNS: [&str; 18] = [
    "Variable / Field Name",
    "Form Name",
    "Section Header",
    "Field Type",
    "Field Label",
    "Choices, Calculations, OR Slider Labels",
    "Field Note",
    "Text Validation Type OR Show Slider Number",
    "Text Validation Min",
    "Text Validation Max",
    "Identifier?",
    "Branching Logic (Show field only if...)",
    "Required Field?",
    "Custom Alignment",
    "Question Number (surveys only)",
    "Matrix Group Name",
    "Matrix Ranking?",
    "Field Annotation",
];
/// Evidentia's own column: the de-identification action (ignored by REDCap on import).
pub const ACTION_COLUMN: &str = "Evidentia De-identification";

crate::db::text_enum! {
    /// A REDCap field type.
    pub enum FieldType {
        Text = "text",
        Notes = "notes",
        Dropdown = "dropdown",
        Radio = "radio",
        Yesno = "yesno",
        Truefalse = "truefalse",
        Checkbox = "checkbox",
        Descriptive = "descriptive",
        Calc = "calc",
        Slider = "slider",
        File = "file",
        Sql = "sql",
    }
}

impl FieldType {
    /// A field whose value is one of its choices (or, for checkboxes, several).
    pub fn has_choices(self) -> bool {
        matches!(self, FieldType::Dropdown | FieldType::Radio | FieldType::Checkbox)
    }
}

crate::db::text_enum! {
    /// What happens to a field's value at import (Safe Harbor, 45 CFR §164.514(b)(2)).
    pub enum DeidAction {
        Keep = "keep",
        Drop = "drop",
        Pseudonymise = "pseudonymise",
        ShiftDate = "shift-date",
        YearOnly = "year-only",
        Generalise = "generalise",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Choice {
    pub code: String,
    pub label: String,
}

/// One dictionary field, as REDCap describes it plus Evidentia's action.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FieldDef {
    pub name: String,
    pub form_name: String,
    pub section_header: String,
    pub field_type: FieldType,
    pub label: String,
    /// The raw choices / calculation / slider cell.
    pub choices_raw: String,
    pub field_note: String,
    pub validation: String,
    pub validation_min: String,
    pub validation_max: String,
    pub identifier: bool,
    pub branching_logic: String,
    pub required: bool,
    pub extra: BTreeMap<String, String>,
    pub action: DeidAction,
}

/// `YYYY-MM-DD` read without chrono's format parser (the form every stored date has).
pub(crate) fn parse_ymd(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r).filter(|s| s.bytes().all(|c| c.is_ascii_digit()))?.parse().ok();
    NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)
}

fn parse_date(s: &str, order: &str) -> Option<NaiveDate> {
    let s = s.trim();
    if order == "ymd" {
        if let Some(d) = parse_ymd(s) {
            return Some(d);
        }
    }
    let fmts: &[&str] = match order {
        "mdy" => &["%m-%d-%Y", "%m/%d/%Y"],
        "dmy" => &["%d-%m-%Y", "%d/%m/%Y", "%d.%m.%Y"],
        _ => &["%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d"],
    };
    fmts.iter().find_map(|f| NaiveDate::parse_from_str(s, f).ok())
}

fn parse_datetime(s: &str, order: &str) -> Option<NaiveDateTime> {
    let s = s.trim().replace('T', " ");
    let (d, t) = s.split_once(' ')?;
    let date = parse_date(d, order)?;
    let t = t.trim();
    let time = chrono::NaiveTime::parse_from_str(t, "%H:%M:%S")
        .or_else(|_| chrono::NaiveTime::parse_from_str(t, "%H:%M"))
        .ok()?;
    Some(date.and_time(time))
}

impl FieldDef {
    /// Choices of a dropdown, radio or checkbox field: `1, Male | 2, Female` (labels may hold commas).
    pub fn choices(&self) -> Vec<Choice> {
        if !self.field_type.has_choices() {
            return Vec::new();
        }
        self.choices_raw
            .split('|')
            .filter_map(|c| {
                let (code, label) = c.split_once(',').unwrap_or((c, c));
                let code = code.trim();
                (!code.is_empty()).then(|| Choice { code: code.to_string(), label: label.trim().to_string() })
            })
            .collect()
    }

    /// The label of the choice `code`, read from the choices' text without building the list
    /// (`choices`' rules: "code, label" separated by `|`; a choice without a comma is its own label).
    pub fn choice_label(&self, code: &str) -> Option<&str> {
        if !self.field_type.has_choices() {
            return None;
        }
        self.choices_raw.split('|').find_map(|c| {
            let (c_code, label) = c.split_once(',').unwrap_or((c, c));
            (c_code.trim() == code && !code.is_empty()).then(|| label.trim())
        })
    }

    /// Holds no data (REDCap `descriptive`).
    pub fn holds_data(&self) -> bool {
        self.field_type != FieldType::Descriptive
    }

    pub fn is_date(&self) -> bool {
        self.field_type == FieldType::Text
            && (self.validation.starts_with("date_") || self.validation.starts_with("datetime_"))
    }

    /// Free text, scrubbed of identifiers when it comes in: whatever is stored as the text typed —
    /// notes, text without a validation Evidentia checks (none, or REDCap's `alpha_only`, `time`,
    /// ...), and the field types it does not interpret (`calc`, `file`, `sql`).
    pub fn is_free_text(&self) -> bool {
        // Checkbox codes are a list; descriptive fields hold nothing.
        matches!(Kind::of(self), Kind::Text) && !matches!(self.field_type.as_str(), "checkbox" | "descriptive")
    }

    /// An e-mail address or telephone number: Safe Harbor identifiers (45 CFR
    /// §164.514(b)(2)(i)(D), (F)) whether or not the dictionary flags them, like dates.
    pub fn is_contact(&self) -> bool {
        self.field_type == FieldType::Text && matches!(self.validation.as_str(), "email" | "phone")
    }

    fn date_order(&self) -> &str {
        self.validation.rsplit('_').next().unwrap_or("ymd")
    }

    /// The label of a stored code (choices), or the value itself.
    pub fn label_of(&self, v: &Value) -> String {
        let text = value_text(v);
        match self.field_type.as_str() {
            "yesno" => match text.as_str() {
                "1" => "Yes".into(),
                "0" => "No".into(),
                _ => text,
            },
            "truefalse" => match text.as_str() {
                "1" => "True".into(),
                "0" => "False".into(),
                _ => text,
            },
            "dropdown" | "radio" => self.choice_label(&text).map(str::to_string).unwrap_or(text),
            "checkbox" => {
                let choices = self.choices();
                v.as_array()
                    .map(|a| {
                        a.iter()
                            .map(|x| {
                                let code = value_text(x);
                                choices.iter().find(|c| c.code == code).map(|c| c.label.clone()).unwrap_or(code)
                            })
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
                    .unwrap_or(text)
            }
            _ => text,
        }
    }

    /// Parses and validates one raw cell. `Ok(None)` for an empty cell. The error says what is
    /// wrong without repeating the value (it may be an identifier).
    pub fn parse_value(&self, raw: &str) -> std::result::Result<Option<Value>, String> {
        Validator::new(self).parse(raw)
    }

    /// Which actions are allowed for this field: dates are always de-identified.
    pub fn allowed_actions(&self) -> Vec<DeidAction> {
        use DeidAction::*;
        if self.is_date() {
            vec![ShiftDate, YearOnly, Drop]
        } else if self.is_contact() {
            vec![Drop, Pseudonymise]
        } else if matches!(self.validation.as_str(), "integer" | "number") {
            vec![Keep, Generalise, Drop, Pseudonymise]
        } else {
            vec![Keep, Drop, Pseudonymise, Generalise]
        }
    }
}

/// What a field accepts, compiled once (choices split, range bounds parsed) so that checking the
/// many cells of an import does no per-cell set-up. [`FieldDef::parse_value`] uses it too.
pub struct Validator<'a> {
    field: &'a FieldDef,
    kind: Kind,
    min: Option<f64>,
    max: Option<f64>,
    choices: Vec<Choice>,
}

#[derive(Clone, Copy)]
enum Kind {
    Integer,
    Number,
    Date,
    DateTime,
    Email,
    Phone,
    Text,
    Choice,
    YesNo,
    Slider,
}

impl Kind {
    /// What a field's raw text is read as (text: anything Evidentia does not check).
    fn of(field: &FieldDef) -> Kind {
        match field.field_type.as_str() {
            "text" => match field.validation.as_str() {
                "integer" => Kind::Integer,
                "number" | "number_1dp" | "number_2dp" => Kind::Number,
                v if v.starts_with("date_") => Kind::Date,
                v if v.starts_with("datetime_") => Kind::DateTime,
                "email" => Kind::Email,
                "phone" => Kind::Phone,
                _ => Kind::Text,
            },
            "dropdown" | "radio" => Kind::Choice,
            "yesno" | "truefalse" => Kind::YesNo,
            "slider" => Kind::Slider,
            _ => Kind::Text,
        }
    }
}

impl<'a> Validator<'a> {
    pub fn new(field: &'a FieldDef) -> Validator<'a> {
        Validator {
            field,
            kind: Kind::of(field),
            min: field.validation_min.trim().parse::<f64>().ok(),
            max: field.validation_max.trim().parse::<f64>().ok(),
            choices: field.choices(),
        }
    }

    /// Parses and validates a raw cell: `Ok(None)` when empty, the error message otherwise.
    pub fn parse(&self, raw: &str) -> std::result::Result<Option<Value>, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(None);
        }
        let f = self.field;
        let v = match self.kind {
            Kind::Integer => {
                let n: i64 = raw.parse().map_err(|_| "not a whole number".to_string())?;
                self.check_range(n as f64)?;
                json!(n)
            }
            Kind::Number => {
                let n: f64 = if raw.contains(',') { raw.replace(',', ".").parse() } else { raw.parse() }
                    .map_err(|_| "not a number".to_string())?;
                if !n.is_finite() {
                    return Err("not a number".into());
                }
                self.check_range(n)?;
                json!(n)
            }
            Kind::Date => {
                let d = parse_date(raw, f.date_order()).ok_or_else(|| format!("not a date ({})", f.validation))?;
                json!(format_ymd(d))
            }
            Kind::DateTime => {
                let d = parse_datetime(raw, f.date_order())
                    .ok_or_else(|| format!("not a date and time ({})", f.validation))?;
                json!(format!("{} {}", format_ymd(d.date()), d.time().format("%H:%M:%S")))
            }
            Kind::Email => {
                let ok = raw.split_once('@').is_some_and(|(a, b)| !a.is_empty() && b.contains('.'));
                if !ok {
                    return Err("not an e-mail address".into());
                }
                json!(raw)
            }
            Kind::Phone => {
                let digits = raw.chars().filter(|c| c.is_ascii_digit()).count();
                if !(7..=15).contains(&digits) || raw.chars().any(|c| c.is_alphabetic()) {
                    return Err("not a phone number".into());
                }
                json!(raw)
            }
            Kind::Text => json!(raw),
            Kind::Choice => {
                let c = self
                    .choices
                    .iter()
                    .find(|c| c.code == raw)
                    .or_else(|| self.choices.iter().find(|c| c.label.eq_ignore_ascii_case(raw)))
                    .ok_or_else(|| {
                        let codes: Vec<&str> = self.choices.iter().map(|c| c.code.as_str()).collect();
                        format!("not one of the choices ({})", codes.join(", "))
                    })?;
                json!(c.code)
            }
            Kind::YesNo => {
                let v = match raw.to_lowercase().as_str() {
                    "1" | "yes" | "y" | "true" | "t" => "1",
                    "0" | "no" | "n" | "false" | "f" => "0",
                    _ => return Err("must be 1 or 0 (yes/no, true/false)".into()),
                };
                json!(v)
            }
            Kind::Slider => {
                let n: f64 = raw.parse().map_err(|_| "not a number".to_string())?;
                if !(0.0..=100.0).contains(&n) {
                    return Err("out of range (0 to 100)".into());
                }
                json!(n)
            }
        };
        Ok(Some(v))
    }

    /// Re-checks a stored (already de-identified) value against this definition.
    pub fn fits(&self, v: &Value) -> bool {
        match (self.field.field_type.as_str(), v) {
            (_, Value::Null) => true,
            ("checkbox", Value::Array(items)) => {
                items.iter().all(|i| self.choices.iter().any(|c| c.code == value_text(i)))
            }
            // Generalised ages ("90+"), pseudonyms and shifted or year-only dates are outputs of
            // the action, not raw input: only their presence is checked.
            _ if self.field.action != DeidAction::Keep => true,
            // The shapes the import stores, checked without writing them out again (the data
            // quality rules ask this of every value of a study).
            (_, Value::Number(n)) if matches!(self.kind, Kind::Number | Kind::Slider) => {
                n.as_f64().is_some_and(|x| x.is_finite() && self.in_range(x))
            }
            (_, Value::Number(n)) if matches!(self.kind, Kind::Integer) => {
                n.as_i64().is_some_and(|x| self.in_range(x as f64))
            }
            (_, Value::String(code)) if matches!(self.kind, Kind::Choice) => {
                self.choices.iter().any(|c| &c.code == code) || self.parse(code).is_ok()
            }
            // Text Evidentia does not check: anything.
            (_, Value::String(_)) if matches!(self.kind, Kind::Text) => true,
            _ => self.parse(&value_text(v)).is_ok(),
        }
    }

    fn in_range(&self, x: f64) -> bool {
        match self.kind {
            Kind::Slider => (0.0..=100.0).contains(&x),
            _ => self.check_range(x).is_ok(),
        }
    }

    fn check_range(&self, n: f64) -> std::result::Result<(), String> {
        if self.min.is_some_and(|m| n < m) || self.max.is_some_and(|m| n > m) {
            let f = self.field;
            return Err(format!(
                "out of range ({} to {})",
                if f.validation_min.is_empty() { "-∞" } else { &f.validation_min },
                if f.validation_max.is_empty() { "∞" } else { &f.validation_max }
            ));
        }
        Ok(())
    }
}

/// `YYYY-MM-DD`, as chrono's `%Y-%m-%d` writes it, without parsing a format string per call.
pub fn format_ymd(d: NaiveDate) -> String {
    use chrono::Datelike;
    if (0..=9999).contains(&d.year()) {
        format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
    } else {
        d.format("%Y-%m-%d").to_string()
    }
}

#[cfg(test)]
impl FieldDef {
    /// A bare field for unit tests.
    pub fn for_tests(name: &str, field_type: &str, validation: &str, action: DeidAction) -> FieldDef {
        FieldDef {
            name: name.into(),
            form_name: "f".into(),
            section_header: String::new(),
            field_type: FieldType::parse(field_type).unwrap_or_else(|| panic!("no field type {field_type}")),
            label: name.into(),
            choices_raw: String::new(),
            field_note: String::new(),
            validation: validation.into(),
            validation_min: String::new(),
            validation_max: String::new(),
            identifier: false,
            branching_logic: String::new(),
            required: false,
            extra: BTreeMap::new(),
            action,
        }
    }
}

/// A value as the text a person or a CSV sees.
/// Whether a stored value holds anything (not null, blank text or a checkbox with none ticked).
pub fn has_value(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(_) => true,
    }
}

pub fn value_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(value_text).collect::<Vec<_>>().join("|"),
        other => other.to_string(),
    }
}

/// Looks like an age field (generalised: over 89 becomes `90+`).
fn is_age_name(name: &str) -> bool {
    name == "age" || name.starts_with("age_") || name.ends_with("_age")
}

fn is_birth_name(name: &str) -> bool {
    name.contains("birth") || name == "dob" || name.ends_with("_dob")
}

fn is_zip_name(name: &str) -> bool {
    name.contains("zip") || name.contains("postal")
}

/// The default action (DESIGN/issue: first field pseudonymised, dates shifted, other identifier
/// text dropped, ages and ZIP codes generalised).
pub fn default_action(f: &FieldDef, index: usize) -> DeidAction {
    if index == 0 {
        DeidAction::Pseudonymise
    } else if f.is_date() && is_birth_name(&f.name) {
        // A shifted birth date still tells an age over 89; the year is aggregated instead.
        DeidAction::YearOnly
    } else if f.is_date() {
        DeidAction::ShiftDate
    } else if (is_age_name(&f.name) && matches!(f.validation.as_str(), "integer" | "number" | ""))
        || is_zip_name(&f.name)
    {
        DeidAction::Generalise
    } else if f.identifier || f.is_contact() {
        DeidAction::Drop
    } else {
        DeidAction::Keep
    }
}

/// A problem in a dictionary file, with its 1-based row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DictProblem {
    pub row: Option<usize>,
    pub column: Option<String>,
    pub message: String,
}

impl std::fmt::Display for DictProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.row, &self.column) {
            (Some(r), Some(c)) => write!(f, "row {r}, column {c}: {}", self.message),
            (Some(r), None) => write!(f, "row {r}: {}", self.message),
            _ => write!(f, "{}", self.message),
        }
    }
}

/// The result of reading a dictionary file.
#[derive(Debug, Clone)]
pub struct ParsedDictionary {
    pub fields: Vec<FieldDef>,
    /// Columns present in the file that Evidentia keeps but does not use.
    pub ignored_columns: Vec<String>,
}

fn yes(s: &str) -> bool {
    matches!(s.trim().to_lowercase().as_str(), "y" | "yes" | "1" | "true")
}

/// Reads a REDCap data-dictionary CSV. Every problem is reported, with its row.
pub fn parse_redcap(file: &str, bytes: &[u8]) -> std::result::Result<ParsedDictionary, Vec<DictProblem>> {
    let table = decode::read_table(file, bytes, None, &Limits::default())
        .map_err(|e| vec![DictProblem { row: None, column: None, message: e.to_string() }])?;
    let col = |name: &str| table.header.iter().position(|h| h.eq_ignore_ascii_case(name));
    let mut problems = Vec::new();
    for required in ["Variable / Field Name", "Form Name", "Field Type", "Field Label"] {
        if col(required).is_none() {
            problems.push(DictProblem {
                row: None,
                column: Some(required.into()),
                message: format!("{file}: the header has no column '{required}' (is this a REDCap data dictionary?)"),
            });
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let known: Vec<&str> = REDCAP_COLUMNS.iter().copied().chain([ACTION_COLUMN]).collect();
    let unknown: Vec<String> =
        table.header.iter().filter(|h| !known.iter().any(|k| k.eq_ignore_ascii_case(h))).cloned().collect();
    let used = [
        "Custom Alignment",
        "Question Number (surveys only)",
        "Matrix Group Name",
        "Matrix Ranking?",
        "Field Annotation",
    ];
    let mut ignored: Vec<String> =
        table.header.iter().filter(|h| used.iter().any(|u| u.eq_ignore_ascii_case(h))).cloned().collect();
    ignored.extend(unknown.iter().cloned());
    let get = |row: decode::Row, name: &str| col(name).and_then(|i| row.get(i)).unwrap_or_default().to_string();
    let mut fields: Vec<FieldDef> = Vec::new();
    // Each field's row, for the logic checked once every field is known.
    let mut rows_of: Vec<usize> = Vec::new();
    for (i, row) in table.rows.iter().enumerate() {
        let r = i + 1;
        let name = get(row, "Variable / Field Name").trim().to_string();
        let field_type_text = get(row, "Field Type").trim().to_lowercase();
        let field_type = FieldType::parse(&field_type_text);
        let bad = |column: &str, message: String| DictProblem { row: Some(r), column: Some(column.into()), message };
        if name.is_empty() {
            problems.push(bad("Variable / Field Name", "empty field name".into()));
            continue;
        }
        if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            || !name.starts_with(|c: char| c.is_ascii_lowercase())
        {
            problems.push(bad(
                "Variable / Field Name",
                format!("'{name}': use lower-case letters, digits and '_', starting with a letter"),
            ));
        }
        if fields.iter().any(|f| f.name == name) {
            problems.push(bad("Variable / Field Name", format!("'{name}' is defined twice")));
        }
        let Some(field_type) = field_type else {
            let all: Vec<&str> = FieldType::ALL.iter().map(FieldType::as_str).collect();
            problems.push(bad(
                "Field Type",
                format!("'{field_type_text}' is not a REDCap field type ({})", all.join(", ")),
            ));
            continue;
        };
        let mut extra = BTreeMap::new();
        for c in &ignored {
            let v = get(row, c);
            if !v.is_empty() {
                extra.insert(c.clone(), v);
            }
        }
        let mut f = FieldDef {
            name: name.clone(),
            form_name: get(row, "Form Name"),
            section_header: get(row, "Section Header"),
            field_type,
            label: get(row, "Field Label"),
            choices_raw: get(row, CALCULATION_COLUMN),
            field_note: get(row, "Field Note"),
            validation: get(row, "Text Validation Type OR Show Slider Number").trim().to_lowercase(),
            validation_min: get(row, "Text Validation Min"),
            validation_max: get(row, "Text Validation Max"),
            identifier: yes(&get(row, "Identifier?")),
            branching_logic: get(row, BRANCHING_COLUMN),
            required: yes(&get(row, "Required Field?")),
            extra,
            action: DeidAction::Keep,
        };
        if field_type.has_choices() && f.choices().is_empty() {
            problems.push(bad(
                "Choices, Calculations, OR Slider Labels",
                format!("'{name}' has no choices (write them as '1, Male | 2, Female')"),
            ));
        }
        let data_index = fields.iter().filter(|f| f.holds_data()).count();
        f.action = match get(row, ACTION_COLUMN).trim() {
            "" => default_action(&f, data_index),
            a => match DeidAction::parse(a) {
                Some(a) if f.allowed_actions().contains(&a) || data_index == 0 => a,
                _ => {
                    problems.push(bad(ACTION_COLUMN, format!("'{a}' is not allowed for '{name}'")));
                    default_action(&f, data_index)
                }
            },
        };
        fields.push(f);
        rows_of.push(r);
    }
    problems.extend(logic_problems(&fields, &rows_of));
    if fields.iter().filter(|f| f.holds_data()).count() == 0 {
        problems.push(DictProblem {
            row: None,
            column: None,
            message: format!("{file}: the dictionary defines no field"),
        });
    }
    if problems.is_empty() {
        Ok(ParsedDictionary { fields, ignored_columns: ignored })
    } else {
        Err(problems)
    }
}

const CALCULATION_COLUMN: &str = REDCAP_COLUMNS[5];
const BRANCHING_COLUMN: &str = REDCAP_COLUMNS[11];

/// Branching logic and calculations that do not read, or name what the dictionary does not
/// have, each with its field's row. The events logic names (`[baseline_arm_1][sex]`) are checked
/// against the study's design when the dictionary is stored ([`replace`]).
fn logic_problems(fields: &[FieldDef], rows: &[usize]) -> Vec<DictProblem> {
    use super::logic::{check, Events};
    let mut problems = Vec::new();
    for (f, row) in fields.iter().zip(rows) {
        let mut problem = |column: &str, message: String| {
            problems.push(DictProblem {
                row: Some(*row),
                column: Some(column.into()),
                message: format!("'{}': {message}", f.name),
            })
        };
        if !f.branching_logic.trim().is_empty() {
            if let Err(m) = check(&f.branching_logic, fields, Events::Any) {
                problem(BRANCHING_COLUMN, m);
            }
        }
        if f.field_type == FieldType::Calc {
            if f.choices_raw.trim().is_empty() {
                problem(
                    CALCULATION_COLUMN,
                    "a calculated field needs its calculation, as [weight]*10000/([height]^2)".into(),
                );
            } else if let Err(m) = check(&f.choices_raw, fields, Events::Any) {
                problem(CALCULATION_COLUMN, m);
            }
        }
    }
    problems
}

/// A Field Annotation that starts with a REDCap action tag (`@HIDDEN`, `@DEFAULT='1'`), as
/// REDCap's "Action Tags" help page writes them. A tag followed directly by `(` (`@CALCTEXT(…)`)
/// is still defused: that is the shape a spreadsheet would run as a function call.
fn is_action_tags(cell: &str) -> bool {
    let Some(tag) = cell.strip_prefix('@') else { return false };
    let name_len = tag
        .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '-'))
        .unwrap_or(tag.len());
    name_len > 0 && tag.as_bytes()[0].is_ascii_uppercase() && !tag[name_len..].starts_with('(')
}

/// Writes the dictionary as REDCap CSV, with the columns Evidentia keeps and its action column.
pub fn to_redcap_csv(fields: &[FieldDef]) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<&str> = REDCAP_COLUMNS.to_vec();
    header.push(ACTION_COLUMN);
    w.write_record(&header)?;
    for f in fields {
        let extra = |k: &str| f.extra.get(k).cloned().unwrap_or_default();
        let cells = [
            f.name.clone(),
            f.form_name.clone(),
            f.section_header.clone(),
            f.field_type.to_string(),
            f.label.clone(),
            f.choices_raw.clone(),
            f.field_note.clone(),
            f.validation.clone(),
            f.validation_min.clone(),
            f.validation_max.clone(),
            if f.identifier { "y".into() } else { String::new() },
            f.branching_logic.clone(),
            if f.required { "y".into() } else { String::new() },
            extra("Custom Alignment"),
            extra("Question Number (surveys only)"),
            extra("Matrix Group Name"),
            extra("Matrix Ranking?"),
            extra("Field Annotation"),
            f.action.as_str().to_string(),
        ];
        let annotation = REDCAP_COLUMNS.len() - 1;
        w.write_record(cells.iter().enumerate().map(|(i, c)| {
            // REDCap's action tags (`@HIDDEN`, `@READONLY`) must reach REDCap as written; every
            // other cell is defused like any CSV a person may open in a spreadsheet.
            if i == annotation && is_action_tags(c) {
                c.clone()
            } else {
                crate::export::defuse_formula(c)
            }
        }))?;
    }
    w.into_inner().map_err(|e| anyhow::anyhow!("csv: {e}"))
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = dictionary_fields)]
struct FieldRow {
    name: String,
    form_name: String,
    section_header: String,
    field_type: FieldType,
    label: String,
    choices: String,
    field_note: String,
    validation: String,
    validation_min: String,
    validation_max: String,
    identifier: bool,
    branching_logic: String,
    required: bool,
    extra: String,
    deid_action: DeidAction,
}

impl From<FieldRow> for FieldDef {
    fn from(r: FieldRow) -> Self {
        FieldDef {
            name: r.name,
            form_name: r.form_name,
            section_header: r.section_header,
            field_type: r.field_type,
            label: r.label,
            choices_raw: r.choices,
            field_note: r.field_note,
            validation: r.validation,
            validation_min: r.validation_min,
            validation_max: r.validation_max,
            identifier: r.identifier,
            branching_logic: r.branching_logic,
            required: r.required,
            extra: serde_json::from_str(&r.extra).unwrap_or_default(),
            action: r.deid_action,
        }
    }
}

/// The study's current dictionary, in order.
pub fn load(conn: &mut Conn, study_id: crate::studies::StudyId) -> Result<Vec<FieldDef>> {
    let rows: Vec<FieldRow> = dictionary_fields::table
        .filter(dictionary_fields::study_id.eq(study_id))
        .filter(dictionary_fields::retired_at.is_null())
        .order(dictionary_fields::position.asc())
        .select(FieldRow::as_select())
        .load(conn)?;
    Ok(rows.into_iter().map(FieldDef::from).collect())
}

fn field_json(f: &FieldDef) -> Value {
    json!({
        "form_name": f.form_name, "field_type": f.field_type, "label": f.label, "choices": f.choices_raw,
        "validation": f.validation, "validation_min": f.validation_min, "validation_max": f.validation_max,
        "identifier": f.identifier, "required": f.required, "deid_action": f.action.as_str(),
        "branching_logic": f.branching_logic, "section_header": f.section_header, "field_note": f.field_note,
    })
}

/// Stored case values that the new dictionary would no longer accept.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Invalidated {
    pub case: String,
    pub field: String,
    pub value: String,
}

/// What a dictionary change does.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DictionaryChange {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub retired: Vec<String>,
    pub invalidated: Vec<Invalidated>,
}

fn invalidated_by(
    conn: &mut Conn,
    study_id: crate::studies::StudyId,
    new_fields: &[FieldDef],
    changed: &[String],
) -> Result<Vec<Invalidated>> {
    if changed.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(String, String)> =
        cases::table.filter(cases::study_id.eq(study_id)).select((cases::display_id, cases::data)).load(conn)?;
    // Each changed field's checks are set up once, not per stored value.
    let checks: Vec<Validator> = new_fields.iter().filter(|f| changed.contains(&f.name)).map(Validator::new).collect();
    let mut out = Vec::new();
    for (display, data) in rows {
        let values: serde_json::Map<String, Value> = serde_json::from_str(&data).unwrap_or_default();
        for check in &checks {
            let f = check.field;
            if let Some(v) = values.get(&f.name) {
                if !check.fits(v) {
                    out.push(Invalidated { case: display.clone(), field: f.name.clone(), value: value_text(v) });
                }
            }
        }
    }
    Ok(out)
}

/// Stored case values that fail the study's current dictionary (an open data problem: the
/// pre-lock checklist lists them).
pub fn failing_values(conn: &mut Conn, study_id: crate::studies::StudyId) -> Result<Vec<Invalidated>> {
    let fields = load(conn, study_id)?;
    let names: Vec<String> = fields.iter().map(|f| f.name.clone()).collect();
    invalidated_by(conn, study_id, &fields, &names)
}

/// Replaces the study's dictionary: new fields are added, changed ones updated, missing ones
/// retired (never deleted), each audited. Refused while the study is locked; refused when stored
/// values would stop validating unless `accept_invalidated` (then they are listed in the change).
/// With `dry_run` nothing is written.
pub fn replace(
    conn: &mut Conn,
    actor: &Actor,
    access: &StudyAccess,
    new_fields: &[FieldDef],
    accept_invalidated: bool,
    dry_run: bool,
) -> Result<DictionaryChange> {
    access.require(Permission::EditStudy)?;
    write_tx(conn, |conn| {
        let study = crate::studies::get_by_code(conn, &access.study.code)?;
        study.ensure_editable()?;
        let old = load(conn, study.id)?;
        let mut change = DictionaryChange::default();
        for f in new_fields {
            match old.iter().find(|o| o.name == f.name) {
                None => change.added.push(f.name.clone()),
                Some(o) if o != f => change.changed.push(f.name.clone()),
                Some(_) => {}
            }
        }
        change.retired =
            old.iter().filter(|o| !new_fields.iter().any(|f| f.name == o.name)).map(|o| o.name.clone()).collect();
        change.invalidated = invalidated_by(conn, study.id, new_fields, &change.changed)?;
        // Logic may name only the study's events (none, in a classic study); the forms the
        // design collects stay in the dictionary.
        let design = super::events::load(conn, study.id)?;
        let events = design.event_names();
        let designed = design
            .mapping
            .iter()
            .map(|d| (&d.event, &d.form))
            .chain(design.repeating.iter().map(|r| (&r.event, &r.form)));
        for (event, form) in designed {
            if !form.is_empty() && !new_fields.iter().any(|f| &f.form_name == form) {
                let on = if event.is_empty() { String::new() } else { format!(" on {event}") };
                return Err(Error::Conflict(format!(
                    "the study's events collect form {form}{on}, which the new dictionary does not have: change the events first (Dictionary → Events)"
                )));
            }
        }
        let mut errors = FieldErrors::default();
        for f in new_fields {
            let calc = if f.field_type == FieldType::Calc { f.choices_raw.as_str() } else { "" };
            for text in [f.branching_logic.as_str(), calc] {
                if !text.trim().is_empty() {
                    if let Err(m) = super::logic::check(text, new_fields, super::logic::Events::Only(&events)) {
                        errors.add(&f.name, m);
                    }
                }
            }
        }
        errors.into_result()?;
        if dry_run {
            return Ok(change);
        }
        if !change.invalidated.is_empty() && !accept_invalidated {
            let list: Vec<String> =
                change.invalidated.iter().take(20).map(|i| format!("{} {}", i.case, i.field)).collect();
            return Err(Error::Conflict(format!(
                "{} stored values would no longer validate ({}{}); confirm to change the dictionary anyway",
                change.invalidated.len(),
                list.join(", "),
                if change.invalidated.len() > 20 { ", …" } else { "" }
            )));
        }
        let t = now();
        for name in &change.retired {
            diesel::update(
                dictionary_fields::table
                    .filter(dictionary_fields::study_id.eq(study.id))
                    .filter(dictionary_fields::name.eq(name)),
            )
            .set(dictionary_fields::retired_at.eq(Some(t)))
            .execute(conn)?;
            let before = old.iter().find(|o| &o.name == name).map(field_json);
            audit::record(
                conn,
                Change::new(study.chain(), &actor.name, Action::Retire, Entity::DictionaryField, name)
                    .before_opt(before),
            )?;
        }
        for (pos, f) in new_fields.iter().enumerate() {
            let values = (
                dictionary_fields::position.eq(pos as i32),
                dictionary_fields::form_name.eq(&f.form_name),
                dictionary_fields::section_header.eq(&f.section_header),
                dictionary_fields::field_type.eq(f.field_type),
                dictionary_fields::label.eq(&f.label),
                dictionary_fields::choices.eq(&f.choices_raw),
                dictionary_fields::field_note.eq(&f.field_note),
                dictionary_fields::validation.eq(&f.validation),
                dictionary_fields::validation_min.eq(&f.validation_min),
                dictionary_fields::validation_max.eq(&f.validation_max),
                dictionary_fields::identifier.eq(f.identifier),
                dictionary_fields::branching_logic.eq(&f.branching_logic),
                dictionary_fields::required.eq(f.required),
                dictionary_fields::extra.eq(serde_json::to_string(&f.extra).unwrap_or_else(|_| "{}".into())),
                dictionary_fields::deid_action.eq(f.action.as_str()),
            );
            let exists: i64 = dictionary_fields::table
                .filter(dictionary_fields::study_id.eq(study.id))
                .filter(dictionary_fields::name.eq(&f.name))
                .count()
                .get_result(conn)?;
            if exists > 0 {
                diesel::update(
                    dictionary_fields::table
                        .filter(dictionary_fields::study_id.eq(study.id))
                        .filter(dictionary_fields::name.eq(&f.name)),
                )
                .set((values, dictionary_fields::retired_at.eq(None::<NaiveDateTime>)))
                .execute(conn)?;
            } else {
                diesel::insert_into(dictionary_fields::table)
                    .values((values, dictionary_fields::study_id.eq(study.id), dictionary_fields::name.eq(&f.name)))
                    .execute(conn)?;
            }
            let before = old.iter().find(|o| o.name == f.name);
            if before != Some(f) {
                let action = if before.is_some() { Action::Update } else { Action::Create };
                let (b, a) = match before {
                    Some(o) => {
                        let (b, a) = audit::diff(&field_json(o), &field_json(f));
                        (Some(b), a)
                    }
                    None => (None, field_json(f)),
                };
                audit::record(
                    conn,
                    Change::new(study.chain(), &actor.name, action, Entity::DictionaryField, &f.name)
                        .before_opt(b)
                        .after(a),
                )?;
            }
        }
        crate::quality::run_in(conn, &study, &actor.name, crate::quality::Trigger::Dictionary)?;
        Ok(change)
    })
}

/// Edits one field's label, note, requiredness, choices, range and action (from the page).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct FieldEdit {
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub field_note: String,
    #[serde(default)]
    pub required: Option<String>,
    #[serde(default)]
    pub choices: String,
    #[serde(default)]
    pub validation_min: String,
    #[serde(default)]
    pub validation_max: String,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub accept_invalidated: Option<String>,
}

pub fn edit_field(
    conn: &mut Conn,
    actor: &Actor,
    access: &StudyAccess,
    name: &str,
    edit: &FieldEdit,
) -> Result<DictionaryChange> {
    let mut fields = load(conn, access.study.id)?;
    let index = fields.iter().position(|f| f.name == name).ok_or(Error::NotFound)?;
    let data_index = fields.iter().take(index).filter(|f| f.holds_data()).count();
    let f = &mut fields[index];
    let mut errors = FieldErrors::default();
    if edit.label.trim().is_empty() {
        errors.add("label", "required");
    }
    let action = DeidAction::parse(&edit.action);
    match action {
        Some(a) if f.allowed_actions().contains(&a) || data_index == 0 => f.action = a,
        _ => errors.add(
            "action",
            format!(
                "not allowed for this field ({})",
                f.allowed_actions().iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ")
            ),
        ),
    }
    for (field, v) in [("validation_min", &edit.validation_min), ("validation_max", &edit.validation_max)] {
        if !v.trim().is_empty() && v.trim().parse::<f64>().is_err() && parse_date(v, "ymd").is_none() {
            errors.add(field, "must be a number or a date");
        }
    }
    f.label = edit.label.trim().to_string();
    f.field_note = edit.field_note.trim().to_string();
    f.required = edit.required.is_some();
    f.validation_min = edit.validation_min.trim().to_string();
    f.validation_max = edit.validation_max.trim().to_string();
    if f.field_type.has_choices() {
        f.choices_raw = edit.choices.trim().to_string();
        if f.choices().is_empty() {
            errors.add("choices", "write the choices as '1, Male | 2, Female'");
        }
    }
    errors.into_result()?;
    replace(conn, actor, access, &fields, edit.accept_invalidated.is_some(), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast date reader and writer agree with chrono's `%Y-%m-%d` on every shape.
    #[test]
    fn fast_ymd_matches_chrono() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(3);
        for _ in 0..20_000 {
            let text =
                format!("{:04}-{:02}-{:02}", rng.gen_range(0..10_000), rng.gen_range(0..14), rng.gen_range(0..33));
            let chrono = NaiveDate::parse_from_str(&text, "%Y-%m-%d").ok();
            assert_eq!(parse_ymd(&text), chrono, "{text}");
            if let Some(d) = chrono {
                assert_eq!(format_ymd(d), d.format("%Y-%m-%d").to_string());
            }
        }
        for odd in ["2024-3-05", "2024-03-5", "+2024-03-05", "2024/03/05", "２０２４-03-05", "2024-03-05 "] {
            assert_eq!(parse_ymd(odd), None, "{odd}");
        }
        for d in [NaiveDate::from_ymd_opt(-44, 3, 15), NaiveDate::from_ymd_opt(12_024, 1, 2)].into_iter().flatten() {
            assert_eq!(format_ymd(d), d.format("%Y-%m-%d").to_string());
        }
    }

    fn field(name: &str, ty: &str, validation: &str) -> FieldDef {
        FieldDef::for_tests(name, ty, validation, DeidAction::Keep)
    }

    #[test]
    fn choices_keep_commas_in_labels() {
        let mut f = field("stage", "dropdown", "");
        f.choices_raw = "1, Stage I, early | 2, Stage II |3,Stage III".into();
        let c = f.choices();
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].label, "Stage I, early");
        assert_eq!(f.parse_value("2").unwrap(), Some(json!("2")));
        assert_eq!(f.parse_value("stage iii").unwrap(), Some(json!("3")));
        assert!(f.parse_value("4").unwrap_err().contains("not one of the choices"));
    }

    #[test]
    fn typed_values_are_validated() {
        let mut age = field("age", "text", "integer");
        age.validation_min = "0".into();
        age.validation_max = "120".into();
        assert_eq!(age.parse_value(" 64 ").unwrap(), Some(json!(64)));
        assert!(age.parse_value("sixty").unwrap_err().contains("whole number"));
        assert!(age.parse_value("130").unwrap_err().contains("out of range"));
        assert_eq!(age.parse_value("").unwrap(), None);
        let d = field("dx_date", "text", "date_ymd");
        assert_eq!(d.parse_value("2024/03/05").unwrap(), Some(json!("2024-03-05")));
        assert!(d.parse_value("2024-02-30").is_err());
        let dmy = field("d", "text", "date_dmy");
        assert_eq!(dmy.parse_value("05/03/2024").unwrap(), Some(json!("2024-03-05")));
        let yn = field("smoker", "yesno", "");
        assert_eq!(yn.parse_value("Yes").unwrap(), Some(json!("1")));
        assert!(yn.parse_value("maybe").is_err());
        let dt = field("t", "text", "datetime_ymd");
        assert_eq!(dt.parse_value("2024-03-05 14:30").unwrap(), Some(json!("2024-03-05 14:30:00")));
    }

    #[test]
    fn default_actions_follow_safe_harbor() {
        let subject = field("study_id", "text", "");
        assert_eq!(default_action(&subject, 0), DeidAction::Pseudonymise);
        assert_eq!(default_action(&field("dx_date", "text", "date_ymd"), 3), DeidAction::ShiftDate);
        assert_eq!(default_action(&field("birth_date", "text", "date_ymd"), 3), DeidAction::YearOnly);
        assert_eq!(default_action(&field("dob", "text", "date_ymd"), 3), DeidAction::YearOnly);
        assert_eq!(default_action(&field("age", "text", "integer"), 3), DeidAction::Generalise);
        assert_eq!(default_action(&field("zip_code", "text", ""), 3), DeidAction::Generalise);
        let mut name = field("patient_name", "text", "");
        name.identifier = true;
        assert_eq!(default_action(&name, 2), DeidAction::Drop);
        assert_eq!(default_action(&field("histology", "text", ""), 2), DeidAction::Keep);
        assert!(!field("dx_date", "text", "date_ymd").allowed_actions().contains(&DeidAction::Keep));
        // E-mail addresses and phone numbers are identifiers whether flagged or not.
        for v in ["email", "phone"] {
            let contact = field("contact", "text", v);
            assert_eq!(default_action(&contact, 2), DeidAction::Drop, "{v}");
            assert!(!contact.allowed_actions().contains(&DeidAction::Keep), "{v}");
            assert!(!contact.is_free_text(), "{v}: dropped, not scrubbed");
        }
        // What is stored as typed is scrubbed; what is checked as a number, date or choice is not.
        for (t, v) in
            [("notes", ""), ("text", ""), ("text", "alpha_only"), ("text", "time"), ("calc", ""), ("file", "")]
        {
            assert!(field("x", t, v).is_free_text(), "{t} {v}");
        }
        for (t, v) in [("text", "integer"), ("text", "number"), ("text", "date_ymd"), ("radio", ""), ("checkbox", "")] {
            assert!(!field("x", t, v).is_free_text(), "{t} {v}");
        }
    }

    #[test]
    fn redcap_dictionary_round_trips() {
        let csv = "\u{feff}Variable / Field Name,Form Name,Section Header,Field Type,Field Label,\"Choices, Calculations, OR Slider Labels\",Field Note,Text Validation Type OR Show Slider Number,Text Validation Min,Text Validation Max,Identifier?,Branching Logic (Show field only if...),Required Field?,Custom Alignment,Question Number (surveys only),Matrix Group Name,Matrix Ranking?,Field Annotation\n\
record_id,baseline,,text,Record ID,,,,,,,,,,,,,\n\
patient_name,baseline,<b>Identifiers</b>,text,\"Name\nof the patient\",,,,,,y,,,,,,,@HIDDEN\n\
sex,baseline,,radio,성별,\"1, Male | 2, Female, or other\",,,,,,,y,RH,,,,\n\
intro,baseline,,descriptive,<p>Read carefully</p>,,,,,,,,,,,,,\n\
dx_date,baseline,,text,Date of diagnosis,,,date_ymd,,,,,y,,,,,\n\
,,,,,,,,,,,,,,,,,\n";
        let parsed = parse_redcap("dict.csv", csv.as_bytes()).unwrap();
        assert_eq!(parsed.fields.len(), 5);
        assert_eq!(parsed.fields[1].label, "Name\nof the patient");
        assert_eq!(parsed.fields[1].action, DeidAction::Drop);
        assert_eq!(parsed.fields[2].choices()[1].label, "Female, or other");
        assert_eq!(parsed.fields[4].action, DeidAction::ShiftDate);
        assert!(parsed.ignored_columns.contains(&"Field Annotation".to_string()));
        let out = to_redcap_csv(&parsed.fields).unwrap();
        let again = parse_redcap("again.csv", &out).unwrap();
        assert_eq!(again.fields, parsed.fields);
    }

    #[test]
    fn branching_logic_and_calculations_are_checked_by_row() {
        let head = "Variable / Field Name,Form Name,Field Type,Field Label,\"Choices, Calculations, OR Slider Labels\",Text Validation Type OR Show Slider Number,Branching Logic (Show field only if...)\n";
        let good = format!(
            "{head}record_id,f,text,ID,,,\n\
sex,f,radio,Sex,\"1, Male | 2, Female\",,\n\
pregnant,f,yesno,Pregnant,,,[sex] = '2'\n\
weight,f,text,Weight,,number,\n\
height,f,text,Height,,number,\n\
bmi,f,calc,BMI,\"round([weight]*10000/(([height])^(2)),1)\",,\n\
enrol,f,text,Enrolled,,date_ymd,\n\
days,f,calc,Days,\"datediff([enrol],'today','d')\",,[sex] <> ''\n"
        );
        let parsed = parse_redcap("d.csv", good.as_bytes()).unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(parsed.fields[2].branching_logic, "[sex] = '2'");
        let bad = format!(
            "{head}record_id,f,text,ID,,,\n\
sex,f,radio,Sex,\"1, Male | 2, Female\",,\n\
pregnant,f,yesno,Pregnant,,,[sex] = \n\
bmi,f,calc,BMI,[weight]/[height],,\n\
empty,f,calc,Nothing,,,\n\
other,f,yesno,Other event,,,[baseline_arm_1][sex] = '2'\n"
        );
        let problems = parse_redcap("d.csv", bad.as_bytes()).err().unwrap_or_default();
        let shown: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        // The event is checked against the study's events when the dictionary is stored.
        assert_eq!(shown.len(), 3, "{shown:#?}");
        assert!(
            shown[0].starts_with("row 3, column Branching Logic (Show field only if...): 'pregnant': at character 8"),
            "{}",
            shown[0]
        );
        assert!(
            shown[1].starts_with(
                "row 4, column Choices, Calculations, OR Slider Labels: 'bmi': [weight]: 'weight' is not a field"
            ),
            "{}",
            shown[1]
        );
        assert!(shown[2].contains("'empty': a calculated field needs its calculation"), "{}", shown[2]);
    }

    #[test]
    fn the_dictionary_csv_keeps_action_tags_and_defuses_formulas() {
        assert!(is_action_tags("@HIDDEN @READONLY"));
        assert!(is_action_tags("@DEFAULT='1'"));
        assert!(!is_action_tags("@SUM(1+1)*cmd|' /C calc'!A0"));
        assert!(!is_action_tags("@hidden"));
        let mut fields = parse_redcap(
            "d.csv",
            "Variable / Field Name,Form Name,Field Type,Field Label\nx,f,text,=HYPERLINK(\"http://e\")\n".as_bytes(),
        )
        .unwrap()
        .fields;
        fields[0].extra.insert("Field Annotation".into(), "@CALCTEXT(1)".into());
        let out = String::from_utf8(to_redcap_csv(&fields).unwrap()).unwrap();
        assert!(out.contains("'=HYPERLINK"), "{out}");
        assert!(out.contains("'@CALCTEXT(1)"), "{out}");
    }

    #[test]
    fn bad_dictionaries_name_row_and_column() {
        let csv =
            "Variable / Field Name,Form Name,Field Type,Field Label,\"Choices, Calculations, OR Slider Labels\"\n\
ok_field,f,text,OK,\n\
Bad Name,f,text,X,\n\
ok_field,f,text,Dup,\n\
color,f,dropdown,Colour,\n\
x,f,widget,X,\n";
        let problems = parse_redcap("d.csv", csv.as_bytes()).unwrap_err();
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert!(text.iter().any(|t| t.starts_with("row 2, column Variable / Field Name")), "{text:?}");
        assert!(text.iter().any(|t| t.contains("row 3") && t.contains("defined twice")), "{text:?}");
        assert!(text.iter().any(|t| t.contains("row 4") && t.contains("no choices")), "{text:?}");
        assert!(text.iter().any(|t| t.contains("row 5") && t.contains("widget")), "{text:?}");
        let missing = parse_redcap("d.csv", b"a,b\n1,2\n").unwrap_err();
        assert!(missing[0].message.contains("REDCap data dictionary"));
    }

    #[test]
    fn a_choice_label_is_the_one_the_choice_list_gives() {
        let mut f = FieldDef::for_tests("stage", "dropdown", "", DeidAction::Keep);
        f.choices_raw = " 1, Stage I | 2,Stage II|3| , empty | 4,".into();
        for code in ["1", "2", "3", "4", "5", "", " 1"] {
            let listed = f.choices().into_iter().find(|c| c.code == code).map(|c| c.label);
            assert_eq!(f.choice_label(code).map(str::to_string), listed, "code {code:?}");
        }
        assert_eq!(f.label_of(&serde_json::json!("2")), "Stage II");
        assert_eq!(f.label_of(&serde_json::json!("9")), "9");
    }
}
