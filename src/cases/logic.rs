//! REDCap logic over this study's dictionary and case values: checking what a piece of logic
//! names (fields that exist and hold data, checkbox options the field offers, events the study
//! has) and evaluating it on one case. The language itself — parser and evaluator — is
//! `crates/evidentia-logic`; branching logic, calculated fields and the data quality rules all
//! come through here.

use chrono::NaiveDateTime;
use serde_json::{Map, Value as Json};

pub use evidentia_logic::{FieldRef, Logic, ParseError, Value};

use super::dictionary::{value_text, FieldDef, FieldType};
use super::events::Design;
use super::records::Record;

/// Which events logic may name: any (a dictionary read before its study's events are known),
/// or these (a study's unique event names; none for a study without events).
#[derive(Debug, Clone, Copy)]
pub enum Events<'a> {
    Any,
    Only(&'a [String]),
}

/// Parses `text` and checks every field it names against `fields`. The message says where and
/// what, without a value (logic holds none).
pub fn check(text: &str, fields: &[FieldDef], events: Events) -> Result<Logic, String> {
    let logic = Logic::parse(text).map_err(|e| e.to_string())?;
    for r in logic.references() {
        let Some(f) = fields.iter().find(|f| f.name == r.field && f.holds_data()) else {
            return Err(format!("{r}: '{}' is not a field of the dictionary", r.field));
        };
        match (&r.code, f.field_type) {
            (Some(code), FieldType::Checkbox) => {
                if !f.choices().iter().any(|c| &c.code == code) {
                    let codes: Vec<String> = f.choices().into_iter().map(|c| c.code).collect();
                    return Err(format!(
                        "{r}: '{}' has no option '{code}' (its options: {})",
                        f.name,
                        codes.join(", ")
                    ));
                }
            }
            (Some(_), _) => return Err(format!("{r}: '{}' is not a checkbox, so it has no options to name", f.name)),
            (None, FieldType::Checkbox) => {
                return Err(format!("{r}: '{}' is a checkbox: name one option, as [{}(1)]", f.name, f.name))
            }
            (None, _) => {}
        }
        if let (Some(event), Events::Only(known)) = (&r.event, events) {
            if !known.contains(event) {
                return Err(if known.is_empty() {
                    format!("{r}: this study has no events, so logic names fields without [{event}]")
                } else {
                    format!("{r}: the study has no event '{event}' (its events: {})", known.join(", "))
                });
            }
        }
    }
    Ok(logic)
}

/// One case's stored (de-identified) values as logic reads them: its base record's, and, where
/// given, its other events' records, which `[event][field]` names.
pub struct CaseValues<'a> {
    pub values: &'a Map<String, Json>,
    pub now: NaiveDateTime,
    pub events: Option<(&'a Design, &'a [Record])>,
    /// The first event's values where `values` are a later record's (entering that record);
    /// `None`: `values` are the first event's.
    pub base: Option<&'a Map<String, Json>>,
    /// The later record `values` are, which `[its event][field]` reads as typed.
    pub this: Option<&'a super::events::RecordKey>,
}

impl<'a> CaseValues<'a> {
    /// The base record's values only: `[event][field]` is blank.
    pub fn new(values: &'a Map<String, Json>, now: NaiveDateTime) -> Self {
        CaseValues { values, now, events: None, base: None, this: None }
    }
    /// The values of the record `r` names: the base record's for a field without an event (or
    /// with the base event), else that event's record — the instance given, or the first one
    /// (REDCap reads `[event][field]` on a repeating form as its first instance).
    fn record_values(&self, r: &FieldRef) -> Option<&'a Map<String, Json>> {
        let Some(event) = &r.event else {
            return (r.instance.unwrap_or(1) <= 1).then_some(self.values);
        };
        let (design, records) = self.events?;
        if design.event(event).is_some() && design.base_event_of(event) == event && r.instance.unwrap_or(1) <= 1 {
            return Some(self.base.unwrap_or(self.values));
        }
        if let Some(this) = self.this.filter(|k| &k.event == event) {
            let same = match r.instance {
                Some(n) => i64::from(n) == i64::from(this.instance),
                None => this.instance <= 1,
            };
            if same {
                return Some(self.values);
            }
        }
        let on_event = || records.iter().filter(|x| &x.key.event == event);
        let found = match r.instance {
            Some(n) => on_event().find(|x| i64::from(x.key.instance) == i64::from(n) && x.data.contains_key(&r.field)),
            None => on_event()
                .filter(|x| x.key.instance <= 1)
                .find(|x| x.data.contains_key(&r.field))
                .or_else(|| on_event().find(|x| x.key.instance <= 1)),
        };
        found.map(|x| &x.data)
    }
}

impl evidentia_logic::Data for CaseValues<'_> {
    fn value(&self, r: &FieldRef) -> Value {
        let Some(values) = self.record_values(r) else {
            return Value::Blank;
        };
        let stored = values.get(&r.field);
        if let Some(code) = &r.code {
            let ticked = stored.and_then(Json::as_array).is_some_and(|a| a.iter().any(|v| &value_text(v) == code));
            return Value::Text(if ticked { "1" } else { "0" }.into());
        }
        match stored {
            None | Some(Json::Null) => Value::Blank,
            Some(Json::Number(n)) => n.as_f64().map(Value::Num).unwrap_or(Value::Blank),
            Some(v) => Value::Text(value_text(v)),
        }
    }

    fn now(&self) -> NaiveDateTime {
        self.now
    }
}

/// Whether a field is shown for these values: no branching logic, or logic that holds. Logic
/// that no longer reads (a dictionary edited since) shows the field.
pub fn shown(field: &FieldDef, data: &CaseValues) -> bool {
    if field.branching_logic.trim().is_empty() {
        return true;
    }
    match Logic::parse(&field.branching_logic) {
        Ok(logic) => logic.holds(data),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::dictionary::DeidAction;
    use serde_json::json;

    fn fields() -> Vec<FieldDef> {
        let mut mets = FieldDef::for_tests("mets", "checkbox", "", DeidAction::Keep);
        mets.choices_raw = "1, Brain | 2, Liver".into();
        let mut sex = FieldDef::for_tests("sex", "radio", "", DeidAction::Keep);
        sex.choices_raw = "1, Male | 2, Female".into();
        vec![
            FieldDef::for_tests("record_id", "text", "", DeidAction::Pseudonymise),
            sex,
            FieldDef::for_tests("pregnant", "yesno", "", DeidAction::Keep),
            mets,
            FieldDef::for_tests("pfs_months", "text", "number", DeidAction::Keep),
            FieldDef::for_tests("intro", "descriptive", "", DeidAction::Keep),
        ]
    }

    #[test]
    fn check_names_what_is_wrong() {
        let f = fields();
        assert!(check("[sex] = '2' and [mets(2)] = '1'", &f, Events::Only(&[])).is_ok());
        let err = |t: &str, e: Events| check(t, &f, e).err().unwrap_or_else(|| panic!("{t} passed"));
        assert!(err("[age] > 1", Events::Any).contains("'age' is not a field"));
        assert!(err("[intro] = 1", Events::Any).contains("'intro' is not a field"));
        assert!(err("[mets] = 1", Events::Any).contains("name one option, as [mets(1)]"));
        assert!(err("[mets(9)] = 1", Events::Any).contains("no option '9' (its options: 1, 2)"));
        assert!(err("[sex(1)] = 1", Events::Any).contains("not a checkbox"));
        assert!(err("[sex] = ", Events::Any).starts_with("at character 9"));
        assert!(check("[baseline_arm_1][sex] = 1", &f, Events::Any).is_ok());
        assert!(err("[baseline_arm_1][sex] = 1", Events::Only(&[])).contains("this study has no events"));
        let events = vec!["baseline_arm_1".to_string()];
        assert!(check("[baseline_arm_1][sex] = 1", &f, Events::Only(&events)).is_ok());
        assert!(err("[week_2_arm_1][sex] = 1", Events::Only(&events)).contains("no event 'week_2_arm_1'"));
    }

    #[test]
    fn stored_values_as_logic_reads_them() {
        let f = fields();
        let values: Map<String, Json> =
            json!({"sex": "2", "mets": ["2"], "pfs_months": 4.5}).as_object().cloned().unwrap_or_default();
        let data = CaseValues::new(&values, NaiveDateTime::default());
        let holds = |t: &str| check(t, &f, Events::Any).map(|l| l.holds(&data)).unwrap_or_else(|e| panic!("{e}"));
        assert!(holds("[sex] = '2' and [mets(2)] = '1' and [mets(1)] = '0'"));
        assert!(holds("[pfs_months] > 4 and [pfs_months] < 5"));
        assert!(holds("[pregnant] = ''"));
        let mut pregnant = f[2].clone();
        pregnant.branching_logic = "[sex] = '2'".into();
        assert!(shown(&pregnant, &data));
        pregnant.branching_logic = "[sex] = '1'".into();
        assert!(!shown(&pregnant, &data));
    }
}
