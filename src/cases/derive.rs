//! One row per subject from a longitudinal study's follow-up visits, for the analysis dataset
//! (and through it the dossier's ADTTE): how far each subject was followed, the last value of
//! each follow-up field, and for each yes/no follow-up field (progression, death) the time from
//! the subject's start date to the first visit that records it — or, censored, to the last visit.
//!
//! What is derived, from the dictionary and the design alone (the same for every subject):
//! - the **start date**: the first event's first date field kept as a (shifted) date, in the
//!   dictionary's order (`ici_start_date` in the demo);
//! - the **visit date**: the first date field of the later events' forms (`visit_date`);
//! - the **visits**: each subject's records of later events that are not a repeating form's
//!   instance, in the schedule's order.
//!
//! Columns: `fu_visits` (visits holding a value), `fu_last_event` (the last one's event),
//! `fu_last_date` and `fu_days` (its visit date, and days from the start date); per yes/no field
//! `Y`: `Y__ever` (1 when a visit records yes, 0 when visits record it and none says yes, blank
//! when none does) and `Y__days` (days from the start date to the first visit that says yes, else
//! to the last visit: with `Y__ever` as the event, a time-to-event endpoint); per other field `F`:
//! `F__last` (its value at the last visit that holds it). Days are whole calendar days between
//! two dates of the same subject, whose shift cancels out.

use chrono::NaiveDate;
use serde_json::{Map, Value};

use super::dictionary::{has_value, value_text, DeidAction, FieldDef, FieldType};
use super::events::{Design, Repeats};
use super::records::Record;

/// A study's derivation: which fields feed which columns.
pub struct Derivation<'a> {
    start: Option<&'a FieldDef>,
    visit: Option<&'a FieldDef>,
    yes_no: Vec<&'a FieldDef>,
    last: Vec<&'a FieldDef>,
    /// The later events, in the schedule's order.
    events: Vec<&'a str>,
}

impl<'a> Derivation<'a> {
    /// `None` for a study without later events (nothing to derive).
    pub fn new(dictionary: &'a [FieldDef], design: &'a Design) -> Option<Derivation<'a>> {
        if !design.is_longitudinal() {
            return None;
        }
        let events: Vec<&str> =
            design.events.iter().map(|e| e.unique_name.as_str()).filter(|e| design.base_event_of(e) != *e).collect();
        // Fields of forms some later event holds as a visit (not a repeating instrument).
        let on_visits = |f: &FieldDef| {
            events
                .iter()
                .any(|e| design.has_form(e, &f.form_name) && design.repeats(e, &f.form_name) != Repeats::Instrument)
        };
        let later: Vec<&FieldDef> = dictionary
            .iter()
            .skip(1)
            .filter(|f| f.holds_data() && f.action != DeidAction::Drop && !f.identifier && on_visits(f))
            .collect();
        if later.is_empty() {
            return None;
        }
        let kept_date = |f: &FieldDef| f.is_date() && f.action == DeidAction::ShiftDate;
        let start = dictionary.iter().skip(1).find(|f| kept_date(f) && design.on_base(&f.form_name));
        let visit = later.iter().copied().find(|f| kept_date(f));
        let yes_no = later.iter().copied().filter(|f| f.field_type == FieldType::Yesno).collect();
        let last = later
            .iter()
            .copied()
            .filter(|f| {
                f.field_type != FieldType::Yesno
                    && Some(f.name.as_str()) != visit.map(|v| v.name.as_str())
                    && !f.is_free_text()
            })
            .collect();
        Some(Derivation { start, visit, yes_no, last, events })
    }

    /// The derived columns: name and description.
    pub fn columns(&self) -> Vec<(String, String)> {
        let mut out = vec![
            ("fu_visits".to_string(), "follow-up visits recorded".to_string()),
            ("fu_last_event".to_string(), "event of the last follow-up visit".to_string()),
        ];
        let from = self.start.map(|s| s.name.as_str()).unwrap_or_default();
        if let Some(v) = self.visit {
            out.push(("fu_last_date".into(), format!("{} of the last follow-up visit (shifted)", v.name)));
            if self.start.is_some() {
                out.push(("fu_days".into(), format!("days from {from} to the last follow-up visit")));
            }
        }
        for f in &self.yes_no {
            out.push((
                format!("{}__ever", f.name),
                format!("{} recorded at any follow-up visit (1 yes, 0 no)", f.label),
            ));
            if self.visit.is_some() && self.start.is_some() {
                out.push((
                    format!("{}__days", f.name),
                    format!(
                        "days from {from} to the first visit recording {}, else to the last visit (censored)",
                        f.name
                    ),
                ));
            }
        }
        for f in &self.last {
            out.push((format!("{}__last", f.name), format!("{} at the last follow-up visit holding it", f.label)));
        }
        out
    }

    /// One subject's derived values, in [`Derivation::columns`]' order: `base` the first event's
    /// values, `records` the subject's other records.
    pub fn row(&self, base: &Map<String, Value>, records: &[Record]) -> Vec<String> {
        // Each record of a later event that is not a repeating form's instance is a visit (each
        // instance of a repeating event too), in the schedule's then the instances' order.
        let mut visits: Vec<(usize, &Record)> = records
            .iter()
            .filter(|r| r.key.instrument.is_empty())
            .filter_map(|r| self.events.iter().position(|e| *e == r.key.event).map(|i| (i, r)))
            .filter(|(_, r)| r.data.values().any(|v| has_value(Some(v))))
            .collect();
        visits.sort_by_key(|(i, r)| (*i, r.key.instance));
        let date = |v: Option<&Value>| v.and_then(|v| NaiveDate::parse_from_str(&value_text(v), "%Y-%m-%d").ok());
        let start = self.start.and_then(|s| date(base.get(&s.name)));
        let visit_date = |r: &Record| self.visit.and_then(|v| date(r.data.get(&v.name)));
        let days = |to: Option<NaiveDate>| match (start, to) {
            (Some(s), Some(t)) => (t - s).num_days().to_string(),
            _ => String::new(),
        };
        let last = visits.last().map(|(_, r)| *r);
        let last_date = visits.iter().rev().find_map(|(_, r)| visit_date(r));
        let mut out = vec![visits.len().to_string(), last.map(|r| r.key.event.clone()).unwrap_or_default()];
        if self.visit.is_some() {
            out.push(last_date.map(|d| d.to_string()).unwrap_or_default());
            if self.start.is_some() {
                out.push(days(last_date));
            }
        }
        for f in &self.yes_no {
            let said: Vec<(&Record, String)> = visits
                .iter()
                .filter_map(|(_, r)| r.data.get(&f.name).filter(|v| has_value(Some(v))).map(|v| (*r, value_text(v))))
                .collect();
            let first_yes = said.iter().find(|(_, v)| v == "1").map(|(r, _)| *r);
            out.push(match (first_yes, said.is_empty()) {
                (Some(_), _) => "1".into(),
                (None, false) => "0".into(),
                (None, true) => String::new(),
            });
            if self.visit.is_some() && self.start.is_some() {
                out.push(match first_yes {
                    Some(r) => days(visit_date(r)),
                    None if said.is_empty() => String::new(),
                    None => days(last_date),
                });
            }
        }
        for f in &self.last {
            let v = visits.iter().rev().find_map(|(_, r)| r.data.get(&f.name).filter(|v| has_value(Some(v))));
            out.push(v.map(value_text).unwrap_or_default());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::events::{DesignFiles, RecordKey};
    use serde_json::json;

    fn field(name: &str, form: &str, kind: &str, validation: &str, action: DeidAction) -> FieldDef {
        let mut f = FieldDef::for_tests(name, kind, validation, action);
        f.form_name = form.into();
        f
    }

    fn dictionary() -> Vec<FieldDef> {
        vec![
            field("record_id", "baseline", "text", "", DeidAction::Keep),
            field("start_date", "baseline", "text", "date_ymd", DeidAction::ShiftDate),
            field("visit_date", "followup", "text", "date_ymd", DeidAction::ShiftDate),
            field("response", "followup", "dropdown", "", DeidAction::Keep),
            field("death_fu", "followup", "yesno", "", DeidAction::Keep),
            field("ae_term", "ae", "text", "", DeidAction::Keep),
        ]
    }

    fn design() -> Design {
        let events = "event_name,arm_num,day_offset,unique_event_name\nBaseline,1,0,baseline_arm_1\n\
                      Month 3,1,91,m3_arm_1\nMonth 6,1,183,m6_arm_1\nMonth 12,1,365,m12_arm_1\n";
        let mapping = "arm_num,unique_event_name,form\n1,baseline_arm_1,baseline\n1,m3_arm_1,followup\n1,m3_arm_1,ae\n\
                       1,m6_arm_1,followup\n1,m12_arm_1,followup\n";
        let repeating = "event_name,form_name,custom_form_label\nm3_arm_1,ae,\n";
        let files = DesignFiles {
            events: Some(events.as_bytes()),
            mapping: Some(mapping.as_bytes()),
            repeating: Some(repeating.as_bytes()),
            arms: None,
        };
        crate::cases::events::parse(&files, &["baseline".into(), "followup".into(), "ae".into()]).unwrap()
    }

    fn record(event: &str, instrument: &str, instance: i32, data: Value) -> Record {
        Record {
            id: 0,
            case_id: 1,
            key: RecordKey { event: event.into(), instrument: instrument.into(), instance },
            data: data.as_object().cloned().unwrap_or_default(),
            form_status: Default::default(),
            created_at: chrono::NaiveDateTime::default(),
            updated_at: chrono::NaiveDateTime::default(),
        }
    }

    #[test]
    fn follow_up_and_time_to_event_from_the_visits() {
        let (dict, design) = (dictionary(), design());
        let d = Derivation::new(&dict, &design).unwrap();
        let names: Vec<String> = d.columns().into_iter().map(|c| c.0).collect();
        assert_eq!(
            names,
            [
                "fu_visits",
                "fu_last_event",
                "fu_last_date",
                "fu_days",
                "death_fu__ever",
                "death_fu__days",
                "response__last"
            ]
        );
        let base = json!({"record_id": "S1", "start_date": "2030-01-10"}).as_object().cloned().unwrap();
        // Listed out of order, with an adverse event (a repeating instrument: not a visit).
        let alive = [
            record("m6_arm_1", "", 0, json!({"visit_date": "2030-07-10", "response": "2", "death_fu": "0"})),
            record("m3_arm_1", "ae", 1, json!({"ae_term": "Rash"})),
            record("m3_arm_1", "", 0, json!({"visit_date": "2030-04-10", "response": "1", "death_fu": "0"})),
        ];
        assert_eq!(d.row(&base, &alive), ["2", "m6_arm_1", "2030-07-10", "181", "0", "181", "2"]);
        // Died by month 6 (the event's day), still a month-12 visit record without a date.
        let died = [
            record("m3_arm_1", "", 0, json!({"visit_date": "2030-04-10", "death_fu": "0"})),
            record("m6_arm_1", "", 0, json!({"visit_date": "2030-07-01", "death_fu": "1", "response": "4"})),
            record("m12_arm_1", "", 0, json!({"response": "4"})),
        ];
        assert_eq!(d.row(&base, &died), ["3", "m12_arm_1", "2030-07-01", "172", "1", "172", "4"]);
        // No visits: nothing derived but the count.
        assert_eq!(d.row(&base, &[]), ["0", "", "", "", "", "", ""]);
    }

    #[test]
    fn a_classic_study_derives_nothing() {
        let dict = dictionary();
        assert!(Derivation::new(&dict, &Design::default()).is_none());
    }
}
