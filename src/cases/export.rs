//! The de-identified case dataset as CSV: one row per case, the display id in place of the
//! site's subject id, dictionary fields in order (checkboxes expanded as `field___code`), with
//! raw codes or labels. Dropped identifier fields have no column: they were never stored.

use std::io::Write;

use super::dictionary::{value_text, DeidAction, FieldDef};
use super::Case;

fn exported_fields(dictionary: &[FieldDef]) -> Vec<&FieldDef> {
    dictionary.iter().filter(|f| f.holds_data()).skip(1).filter(|f| f.action != DeidAction::Drop).collect()
}

/// The header: `subject_id, site, status, status_reason, status_date`, then the fields.
pub fn header(dictionary: &[FieldDef]) -> Vec<String> {
    let mut h: Vec<String> =
        ["subject_id", "site", "status", "status_reason", "status_date"].map(String::from).to_vec();
    for f in exported_fields(dictionary) {
        if f.field_type == crate::cases::dictionary::FieldType::Checkbox {
            h.extend(f.choices().into_iter().map(|c| format!("{}___{}", f.name, c.code)));
        } else {
            h.push(f.name.clone());
        }
    }
    h
}

pub fn row(dictionary: &[FieldDef], case: &Case, labels: bool) -> Vec<String> {
    let values = case.values();
    let mut r = vec![
        case.display_id.clone(),
        case.site_code.clone(),
        case.status.to_string(),
        case.status_reason.clone().unwrap_or_default(),
        case.status_date.map(|d| d.to_string()).unwrap_or_default(),
    ];
    for f in exported_fields(dictionary) {
        let v = values.get(&f.name);
        if f.field_type == crate::cases::dictionary::FieldType::Checkbox {
            let checked: Vec<String> =
                v.and_then(|v| v.as_array()).map(|a| a.iter().map(value_text).collect()).unwrap_or_default();
            for c in f.choices() {
                let on = checked.contains(&c.code);
                r.push(match (labels, on) {
                    (true, true) => "Checked".into(),
                    (true, false) => "Unchecked".into(),
                    (false, true) => "1".into(),
                    (false, false) => "0".into(),
                });
            }
        } else {
            r.push(match v {
                None => String::new(),
                Some(v) if labels => f.label_of(v),
                Some(v) => value_text(v),
            });
        }
    }
    r
}

/// Writes the dataset (cells that would start a spreadsheet formula are quoted).
pub fn write(out: impl Write, dictionary: &[FieldDef], cases: &[Case], labels: bool) -> anyhow::Result<()> {
    crate::export::write_rows(out, header(dictionary), cases.iter().map(|c| row(dictionary, c, labels)))
}
