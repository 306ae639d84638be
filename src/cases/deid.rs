//! De-identification of tabular values (HIPAA Safe Harbor, 45 CFR §164.514(b)(2)): keyed
//! pseudonyms, per-subject date shifts, year-only dates and generalised ages and ZIP codes.
//! The per-study key lives in the data dir (`secrets/`), outside the database, and is backed up.

use std::path::{Path, PathBuf};

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::dictionary::{format_ymd, parse_ymd, value_text, DeidAction, FieldDef};
use super::scrub::Scrubber;

/// The per-study secret behind pseudonyms and date shifts.
#[derive(Clone)]
pub struct StudyKey([u8; 32]);

impl std::fmt::Debug for StudyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StudyKey([redacted])")
    }
}

fn key_path(data_dir: &Path, study_code: &str) -> PathBuf {
    data_dir.join("secrets").join(format!("study-{study_code}.key"))
}

impl StudyKey {
    /// Loads the study's key, creating it (32 random bytes, hex, mode 0600) on first use.
    pub fn load_or_create(data_dir: &Path, study_code: &str) -> anyhow::Result<StudyKey> {
        Ok(StudyKey(crate::secrets::load_or_create(&key_path(data_dir, study_code))?))
    }

    #[cfg(test)]
    pub fn for_tests(b: u8) -> StudyKey {
        StudyKey([b; 32])
    }

    fn mac(&self, purpose: &str, value: &str) -> [u8; 32] {
        // HMAC-SHA256 (RFC 2104); the purpose keeps the derived values independent. A key shorter
        // than SHA-256's 64-byte block is zero-padded to it (RFC 2104 §2), so the padded key is
        // the same key, given in the form that cannot be refused.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&self.0);
        let mut m = <Hmac<Sha256> as Mac>::new(&block.into());
        m.update(purpose.as_bytes());
        m.update(&[0]);
        m.update(value.as_bytes());
        m.finalize().into_bytes().into()
    }

    /// The linkage key of a subject: HMAC of the site's subject id, the same at every import.
    pub fn subject_key(&self, site_code: &str, subject_id: &str) -> String {
        hex::encode(self.mac("subject", &format!("{site_code}\u{1f}{}", subject_id.trim())))
    }

    /// A stable pseudonym for any other identifier value.
    pub fn pseudonym(&self, field: &str, value: &str) -> String {
        format!("PSN-{}", &hex::encode(self.mac(&format!("field:{field}"), value.trim()))[..12])
    }

    /// The subject's date offset: −364…+364 days (never 0), the same for all of the subject's
    /// dates and at every import (REDCap's "shift dates by up to 364 days"). Never stored.
    pub fn date_shift_days(&self, subject_key: &str) -> i64 {
        let m = self.mac("date-shift", subject_key);
        let n = u64::from_le_bytes([m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7]]);
        let offset = (n % 728) as i64 - 364; // −364…363
        if offset >= 0 {
            offset + 1
        } else {
            offset
        }
    }
}

/// What de-identifies values a person types on a case page: the study's key, so that a date is
/// shifted by the subject's own offset like the imported ones, and a free-text scrubber. The
/// scrubber knows the patterns (e-mail addresses, phone numbers, record numbers, dates, ...) but
/// no names: an import scrubs the names found in its own file's identifier columns, which are
/// never kept.
pub struct EditDeid {
    key: StudyKey,
    scrubber: std::sync::Arc<Scrubber>,
}

impl EditDeid {
    /// `scrubber`: built once with the configured record-number patterns and no names.
    pub fn open(data_dir: &Path, study_code: &str, scrubber: std::sync::Arc<Scrubber>) -> anyhow::Result<EditDeid> {
        Ok(EditDeid { key: StudyKey::load_or_create(data_dir, study_code)?, scrubber })
    }

    /// The text scrubbed, and how many identifiers were redacted from it.
    pub fn scrub(&self, text: &str) -> (String, usize) {
        let (clean, counts) = self.scrubber.scrub(text);
        (clean, counts.values().sum())
    }

    /// `date` moved by the offset of the subject with this linkage key; `None` past chrono's range.
    pub fn shift(&self, subject_key: &str, date: NaiveDate) -> Option<NaiveDate> {
        date.checked_add_signed(Duration::days(self.key.date_shift_days(subject_key)))
    }
}

/// ZIP3 areas with 20,000 or fewer people, reported as `000` (45 CFR §164.514(b)(2)(i)(B); HHS
/// OCR de-identification guidance, 2012). The union of the 2000 and 2010 Census lists, to err on
/// the side of suppression.
const RESTRICTED_ZIP3: [&str; 19] = [
    "036", "059", "063", "102", "203", "205", "369", "556", "692", "790", "821", "823", "830", "831", "878", "879",
    "884", "890", "893",
];

/// Ages over 89 become `90+`; ZIP codes keep their first 3 digits (`000` where restricted).
pub fn generalise(field: &FieldDef, v: &Value) -> Value {
    let text = value_text(v);
    let is_zip = field.name.contains("zip") || field.name.contains("postal");
    if is_zip {
        let digits: String = text.chars().filter(|c| c.is_ascii_digit()).collect();
        if digits.len() < 3 {
            return Value::Null;
        }
        let zip3 = &digits[..3];
        return json!(if RESTRICTED_ZIP3.contains(&zip3) { "000" } else { zip3 });
    }
    match text.parse::<f64>() {
        Ok(age) if age > 89.0 => json!("90+"),
        Ok(_) => v.clone(),
        Err(_) => Value::Null,
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
            let days = Duration::days(subject.shift_days(key));
            if let Some(d) = parse_ymd(&text).or_else(|| NaiveDate::parse_from_str(&text, "%Y-%m-%d").ok()) {
                Some(json!(format_ymd(d + days)))
            } else if let Ok(d) = NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S") {
                Some(json!((d + days).format("%Y-%m-%d %H:%M:%S").to_string()))
            } else {
                None
            }
        }
        DeidAction::YearOnly => {
            let text = value_text(&v);
            let d = NaiveDate::parse_from_str(text.get(..10).unwrap_or(&text), "%Y-%m-%d").ok()?;
            // A year that puts someone over 89 is itself an identifier (§164.514(b)(2)(i)(C)):
            // such years are aggregated into one category.
            let cutoff = chrono::Utc::now().year() - 90;
            Some(if d.year() <= cutoff { json!(format!("{cutoff} or earlier")) } else { json!(d.year()) })
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
    fn the_padded_key_gives_the_hmac_of_the_key() {
        for b in [0u8, 7, 255] {
            let k = StudyKey(std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(b)));
            let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&k.0).unwrap();
            m.update(b"purpose\0value");
            assert_eq!(k.mac("purpose", "value"), <[u8; 32]>::from(m.finalize().into_bytes()));
        }
    }

    #[test]
    fn pseudonyms_and_shifts_are_stable_and_keyed() {
        let k = StudyKey::for_tests(7);
        let other = StudyKey::for_tests(8);
        assert_eq!(k.subject_key("SNUBH", "P-001"), k.subject_key("SNUBH", " P-001 "));
        assert_ne!(k.subject_key("SNUBH", "P-001"), k.subject_key("SMC", "P-001"));
        assert_ne!(k.subject_key("SNUBH", "P-001"), other.subject_key("SNUBH", "P-001"));
        for i in 0..2000 {
            let s = k.date_shift_days(&format!("subject{i}"));
            assert!((-364..=364).contains(&s) && s != 0, "{s}");
        }
    }

    #[test]
    fn a_subjects_dates_shift_together() {
        let k = StudyKey::for_tests(1);
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
