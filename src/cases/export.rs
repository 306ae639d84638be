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

/// REDCap's flat record export of the study: one row per record (the base record of every case,
/// then its other records in the schedule's order), the record id column holding the display
/// id, `redcap_event_name` (longitudinal studies), `redcap_repeat_instrument` and
/// `redcap_repeat_instance` (studies with repeating forms), `redcap_data_access_group` (the site),
/// the fields with raw codes and each form's `<form>_complete` after its last field — the file
/// REDCap itself writes, so that it imports into REDCap, or into another study, unchanged.
pub struct RedcapFlat<'a> {
    pub dictionary: &'a [FieldDef],
    pub design: &'a super::events::Design,
    pub cases: &'a [Case],
    pub records: &'a std::collections::BTreeMap<i32, Vec<super::records::Record>>,
    pub base_statuses: &'a std::collections::BTreeMap<i32, super::records::Statuses>,
}

/// A value as REDCap's validation accepts it: `number_1dp` / `number_2dp` with their decimals
/// (`12.0`), other whole numbers without a decimal point (`45`, not `45.0`).
fn redcap_text(f: &FieldDef, v: &serde_json::Value) -> String {
    let decimals = match f.validation.as_str() {
        "number_1dp" => Some(1),
        "number_2dp" => Some(2),
        _ => None,
    };
    match (v.as_f64(), decimals) {
        (Some(x), Some(d)) if v.is_number() => format!("{x:.d$}"),
        (Some(x), None) if v.is_f64() && x.fract() == 0.0 && x.abs() < 1e15 => format!("{}", x as i64),
        _ => value_text(v),
    }
}

/// A column of the flat export after the REDCap ones.
enum FlatColumn<'a> {
    Field(&'a FieldDef),
    Checkbox(&'a FieldDef, String),
    Status(&'a str),
}

impl RedcapFlat<'_> {
    fn columns(&self) -> Vec<FlatColumn<'_>> {
        let fields = exported_fields(self.dictionary);
        let mut out = Vec::new();
        let all: Vec<&FieldDef> = self.dictionary.iter().filter(|f| f.holds_data()).collect();
        for (i, f) in all.iter().enumerate() {
            if i > 0 && fields.iter().any(|x| x.name == f.name) {
                if f.field_type == crate::cases::dictionary::FieldType::Checkbox {
                    out.extend(f.choices().into_iter().map(|c| FlatColumn::Checkbox(f, c.code)));
                } else {
                    out.push(FlatColumn::Field(f));
                }
            }
            let last_of_form = all.get(i + 1).is_none_or(|n| n.form_name != f.form_name);
            if last_of_form {
                out.push(FlatColumn::Status(&f.form_name));
            }
        }
        out
    }

    fn repeats(&self) -> bool {
        !self.design.repeating.is_empty()
    }

    pub fn header(&self) -> Vec<String> {
        let id = self.dictionary.iter().find(|f| f.holds_data()).map_or("record_id".to_string(), |f| f.name.clone());
        let mut h = vec![id];
        if self.design.is_longitudinal() {
            h.push("redcap_event_name".into());
        }
        if self.repeats() {
            h.push("redcap_repeat_instrument".into());
            h.push("redcap_repeat_instance".into());
        }
        h.push("redcap_data_access_group".into());
        for c in self.columns() {
            h.push(match c {
                FlatColumn::Field(f) => f.name.clone(),
                FlatColumn::Checkbox(f, code) => format!("{}___{code}", f.name),
                FlatColumn::Status(form) => format!("{form}_complete"),
            });
        }
        h
    }

    /// Every row, in REDCap's order.
    pub fn rows(&self) -> Vec<Vec<String>> {
        let columns = self.columns();
        let empty = std::collections::BTreeMap::new();
        let mut out = Vec::new();
        for case in self.cases {
            let records = self.records.get(&case.id).map_or(&[][..], |r| r.as_slice());
            let arm = records.iter().find_map(|r| self.design.event(&r.key.event)).map_or(1, |e| e.arm);
            let base = super::events::RecordKey::base(self.design.base_event(arm));
            let statuses = self.base_statuses.get(&case.id).unwrap_or(&empty);
            out.push(self.row(&columns, case, &base, &case.data.0, statuses));
            let position = |event: &str| self.design.events.iter().position(|e| e.unique_name == event);
            let mut rest: Vec<&super::records::Record> = records.iter().collect();
            rest.sort_by(|a, b| {
                (position(&a.key.event), &a.key.instrument, a.key.instance).cmp(&(
                    position(&b.key.event),
                    &b.key.instrument,
                    b.key.instance,
                ))
            });
            for r in rest {
                out.push(self.row(&columns, case, &r.key, &r.data, &r.form_status));
            }
        }
        out
    }

    fn row(
        &self,
        columns: &[FlatColumn],
        case: &Case,
        key: &super::events::RecordKey,
        values: &serde_json::Map<String, serde_json::Value>,
        statuses: &super::records::Statuses,
    ) -> Vec<String> {
        let mut r = vec![case.display_id.clone()];
        if self.design.is_longitudinal() {
            r.push(key.event.clone());
        }
        if self.repeats() {
            r.push(key.instrument.clone());
            r.push(super::events::instance_text(key.instance));
        }
        r.push(case.site_code.to_lowercase());
        for c in columns {
            let form = match c {
                FlatColumn::Field(f) | FlatColumn::Checkbox(f, _) => f.form_name.as_str(),
                FlatColumn::Status(form) => form,
            };
            if !self.design.record_has_form(key, form) {
                r.push(String::new());
                continue;
            }
            r.push(match c {
                FlatColumn::Field(f) => values.get(&f.name).map(|v| redcap_text(f, v)).unwrap_or_default(),
                FlatColumn::Checkbox(f, code) => {
                    let on = values
                        .get(&f.name)
                        .and_then(|v| v.as_array())
                        .is_some_and(|a| a.iter().any(|x| value_text(x) == *code));
                    if on { "1" } else { "0" }.to_string()
                }
                FlatColumn::Status(form) => statuses.get(*form).map(|s| s.to_string()).unwrap_or_default(),
            });
        }
        r
    }
}

/// Every record of the study as REDCap's flat export (the page's and the CLI's), by display id,
/// and how many records it holds; of the sites of `scope`.
pub fn redcap_flat(
    c: &mut crate::db::Conn,
    sid: crate::studies::StudyId,
    scope: &crate::auth::permissions::SiteScope,
) -> crate::error::Result<(Vec<u8>, usize)> {
    let fields = super::dictionary::load(c, sid)?;
    let design = super::events::load(c, sid)?;
    let all = super::list(
        c,
        &super::ListCache::default(),
        sid,
        scope,
        &fields,
        &Default::default(),
        crate::db::paging::PageRequest::all(),
    )?;
    let records = super::records::of_study(c, sid)?;
    let base_statuses = super::records::base_statuses_of_study(c, sid)?;
    let flat = RedcapFlat {
        dictionary: &fields,
        design: &design,
        cases: &all.items,
        records: &records,
        base_statuses: &base_statuses,
    };
    let rows = flat.rows();
    let n = rows.len();
    let mut out = Vec::new();
    crate::export::write_rows(&mut out, flat.header(), rows)?;
    Ok((out, n))
}
