//! De-identification of tabular values (HIPAA Safe Harbor, 45 CFR §164.514(b)(2)): keyed
//! pseudonyms, per-subject date shifts, year-only dates and generalised ages and ZIP codes.
//! The per-study key lives in the data dir (`secrets/`), outside the database, and is backed up.

use std::path::Path;

use chrono::{Datelike, NaiveDate, NaiveDateTime};
pub use evidentia_deid::key::StudyKey;
use evidentia_deid::safe_harbor::{self, Generalised, Year};
use serde_json::{json, Value};

use super::dictionary::{format_ymd, parse_ymd, value_text, DeidAction, FieldDef};
use super::scrub::Scrubber;

/// Loads the study's key, creating it (32 random bytes, hex, mode 0600) on first use; checked
/// against the database's record of it ([`crate::secrets::load_checked`]).
pub fn study_key(conn: &mut crate::db::Conn, data_dir: &Path, study_code: &str) -> anyhow::Result<StudyKey> {
    Ok(StudyKey::from_bytes(crate::secrets::load_checked(conn, data_dir, &format!("study-{study_code}"))?))
}

/// What de-identifies values a person types on a case page: a free-text scrubber. It knows the
/// patterns (e-mail addresses, phone numbers, record numbers, dates, ...) but no names: an import
/// scrubs the names found in its own file's identifier columns, which are never kept. Dates are
/// not typed as calendar dates at all (see `cases::set_status`).
pub struct EditDeid {
    scrubber: std::sync::Arc<Scrubber>,
}

impl EditDeid {
    /// `scrubber`: built once with the configured record-number patterns and no names.
    pub fn new(scrubber: std::sync::Arc<Scrubber>) -> EditDeid {
        EditDeid { scrubber }
    }

    /// The text scrubbed, and how many identifiers were redacted from it.
    pub fn scrub(&self, text: &str) -> (String, usize) {
        let (clean, counts) = self.scrubber.scrub(text);
        (clean, counts.values().sum())
    }
}

/// Ages over 89 become `90+`; ZIP codes keep their first 3 digits (`000` where restricted).
pub fn generalise(field: &FieldDef, v: &Value) -> Value {
    let text = value_text(v);
    let is_zip = field.name.contains("zip") || field.name.contains("postal");
    match if is_zip { safe_harbor::zip(&text) } else { safe_harbor::age(&text) } {
        Generalised::Keep => v.clone(),
        Generalised::Replace(t) => json!(t),
        Generalised::Drop => Value::Null,
    }
}

/// The subject a row's values belong to: its linkage key and its date shift, computed once.
pub struct Subject<'a> {
    pub key: &'a str,
    shift: std::cell::OnceCell<i64>,
}

impl<'a> Subject<'a> {
    pub fn new(key: &'a str) -> Subject<'a> {
        Subject { key, shift: std::cell::OnceCell::new() }
    }

    fn shift_days(&self, study: &StudyKey) -> i64 {
        *self.shift.get_or_init(|| study.date_shift_days(self.key))
    }
}

/// A de-identified value, or `None` when the field's value is dropped.
pub fn apply(field: &FieldDef, v: Value, key: &StudyKey, subject: &Subject) -> Option<Value> {
    match field.action {
        DeidAction::Keep => Some(v),
        DeidAction::Drop => None,
        DeidAction::Pseudonymise => Some(json!(key.pseudonym(&field.name, &value_text(&v)))),
        DeidAction::Generalise => Some(generalise(field, &v)).filter(|x| !x.is_null()),
        DeidAction::ShiftDate => {
            let text = value_text(&v);
            let days = chrono::Duration::days(subject.shift_days(key));
            if let Some(d) = parse_ymd(&text).or_else(|| NaiveDate::parse_from_str(&text, "%Y-%m-%d").ok()) {
                Some(json!(format_ymd(d.checked_add_signed(days)?)))
            } else if let Ok(d) = NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S") {
                Some(json!(d.checked_add_signed(days)?.format("%Y-%m-%d %H:%M:%S").to_string()))
            } else {
                None
            }
        }
        DeidAction::YearOnly => {
            let text = value_text(&v);
            let d = NaiveDate::parse_from_str(text.get(..10).unwrap_or(&text), "%Y-%m-%d").ok()?;
            Some(match safe_harbor::year_only(d.year(), chrono::Utc::now().year()) {
                Year::Exact(y) => json!(y),
                grouped => json!(grouped.to_string()),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, validation: &str, action: DeidAction) -> FieldDef {
        FieldDef::for_tests(name, "text", validation, action)
    }

    #[test]
    fn a_subjects_dates_shift_together() {
        let k = StudyKey::from_bytes([1; 32]);
        let f = field("dx_date", "date_ymd", DeidAction::ShiftDate);
        let sk = k.subject_key("S", "1");
        let a = apply(&f, json!("2024-01-10"), &k, &Subject::new(&sk)).unwrap();
        let b = apply(&f, json!("2024-01-20"), &k, &Subject::new(&sk)).unwrap();
        let da = NaiveDate::parse_from_str(a.as_str().unwrap(), "%Y-%m-%d").unwrap();
        let db = NaiveDate::parse_from_str(b.as_str().unwrap(), "%Y-%m-%d").unwrap();
        assert_eq!((db - da).num_days(), 10, "intervals are kept");
        assert_ne!(a, json!("2024-01-10"));
        let y = field("birth", "date_ymd", DeidAction::YearOnly);
        assert_eq!(apply(&y, json!("1990-06-01"), &k, &Subject::new(&sk)), Some(json!(1990)));
        let cutoff = chrono::Utc::now().year() - 90;
        assert_eq!(apply(&y, json!("1920-06-01"), &k, &Subject::new(&sk)), Some(json!(format!("{cutoff} or earlier"))));
    }

    #[test]
    fn ages_and_zip_codes_are_generalised() {
        let age = field("age", "integer", DeidAction::Generalise);
        assert_eq!(generalise(&age, &json!(90)), json!("90+"));
        assert_eq!(generalise(&age, &json!(89)), json!(89));
        let zip = field("zip_code", "", DeidAction::Generalise);
        assert_eq!(generalise(&zip, &json!("02139")), json!("021"));
        assert_eq!(generalise(&zip, &json!("03601")), json!("000"));
        assert_eq!(generalise(&zip, &json!("12")), Value::Null);
    }
}
