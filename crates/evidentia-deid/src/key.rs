//! A study's secret key and what it derives. The same key gives the same linkage keys,
//! pseudonyms and date shifts at every import, so that a subject's rows meet again; without it
//! they cannot be recomputed from the identifiers.

use chrono::{Duration, NaiveDate, NaiveDateTime};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The per-study secret behind pseudonyms and date shifts.
#[derive(Clone)]
pub struct StudyKey([u8; 32]);

impl std::fmt::Debug for StudyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StudyKey([redacted])")
    }
}

impl StudyKey {
    /// The key with these 32 secret bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> StudyKey {
        StudyKey(bytes)
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

    /// 16 bytes standing for `what` in this study (the UIDs of exported DICOM: the same slide
    /// gets the same UIDs at every export; without the key they link to nothing).
    pub fn identifier_bytes(&self, what: &str) -> [u8; 16] {
        let m = self.mac("identifier", what);
        let mut out = [0u8; 16];
        out.copy_from_slice(&m[..16]);
        out
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

    /// `date` moved by the offset of the subject with this linkage key; `None` past chrono's range.
    pub fn shift_date(&self, subject_key: &str, date: NaiveDate) -> Option<NaiveDate> {
        date.checked_add_signed(Duration::days(self.date_shift_days(subject_key)))
    }

    /// `at` moved by the offset of the subject with this linkage key; `None` past chrono's range.
    pub fn shift_datetime(&self, subject_key: &str, at: NaiveDateTime) -> Option<NaiveDateTime> {
        at.checked_add_signed(Duration::days(self.date_shift_days(subject_key)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let k = StudyKey::from_bytes([7; 32]);
        let other = StudyKey::from_bytes([8; 32]);
        assert_eq!(k.subject_key("SNUBH", "P-001"), k.subject_key("SNUBH", " P-001 "));
        assert_ne!(k.subject_key("SNUBH", "P-001"), k.subject_key("SMC", "P-001"));
        assert_ne!(k.subject_key("SNUBH", "P-001"), other.subject_key("SNUBH", "P-001"));
        assert_eq!(k.pseudonym("mrn", "123"), k.pseudonym("mrn", " 123 "));
        assert_ne!(k.pseudonym("mrn", "123"), k.pseudonym("phone", "123"));
        for i in 0..2000 {
            let s = k.date_shift_days(&format!("subject{i}"));
            assert!((-364..=364).contains(&s) && s != 0, "{s}");
        }
    }

    #[test]
    fn a_subjects_dates_and_times_move_by_the_same_days() {
        let k = StudyKey::from_bytes([1; 32]);
        let sk = k.subject_key("S", "1");
        let d = NaiveDate::from_ymd_opt(2024, 1, 10).unwrap();
        let shifted = k.shift_date(&sk, d).unwrap();
        assert_eq!((shifted - d).num_days(), k.date_shift_days(&sk));
        let at = d.and_hms_opt(13, 5, 0).unwrap();
        assert_eq!(k.shift_datetime(&sk, at).unwrap(), shifted.and_hms_opt(13, 5, 0).unwrap());
        let later = (0..).map(|i| k.subject_key("S", &i.to_string())).find(|s| k.date_shift_days(s) > 0).unwrap();
        assert_eq!(k.shift_date(&later, NaiveDate::MAX), None, "past chrono's range: none, not a wrapped date");
    }
}
