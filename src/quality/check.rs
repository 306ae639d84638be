//! What the rules find in a study's case data, computed without the database: the built-in rules
//! (REDCap's Data Quality rules for required values, validation, hidden fields and outliers) and
//! the custom rules (REDCap logic that holds where the data is wrong).

use chrono::NaiveDateTime;
use serde_json::{Map, Value};

use super::{Builtin, Severity};
use crate::cases::dictionary::{value_text, FieldDef, FieldType, Validator};
use crate::cases::logic::{CaseValues, Logic};

/// One case's values, as the rules read them.
pub struct CaseData<'a> {
    pub case_id: i32,
    pub values: &'a Map<String, Value>,
    /// The study's design and the case's other records, for logic naming an event.
    pub events: Option<(&'a crate::cases::events::Design, &'a [crate::cases::records::Record])>,
}

/// A custom rule ready to evaluate.
pub struct CustomCheck {
    pub code: String,
    pub severity: Severity,
    pub logic: Logic,
}

/// What a rule found: one value (or one subject, for a custom rule: its first field).
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub rule_code: String,
    pub severity: Severity,
    pub case_id: i32,
    pub event: String,
    pub instance: i32,
    pub field: String,
    /// The value found (for a custom rule, the values it read): an exclusion holds for it only.
    pub value: String,
    pub detail: String,
}

/// The outlier rule's default: a value more than this many standard deviations from the mean of
/// the field's values over the study's cases.
pub const OUTLIER_SDS: f64 = 3.0;
/// Fewer values than this and the outlier rule says nothing about a field.
const OUTLIER_MIN_VALUES: usize = 5;

fn number(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|x| x.is_finite()),
        _ => None,
    }
}

/// A field the outlier rule looks at: numbers, integers, sliders and calculations.
fn is_numeric(f: &FieldDef) -> bool {
    matches!(f.field_type, FieldType::Calc | FieldType::Slider)
        || (f.field_type == FieldType::Text
            && matches!(f.validation.as_str(), "integer" | "number" | "number_1dp" | "number_2dp"))
}

fn short(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The rules over a study's cases, one case at a time (a study's cases are read in pages: the
/// memory does not grow with the study). The outlier rule needs every case's numbers first: they
/// are kept, as numbers only, and judged in [`Checker::finish`].
pub struct Checker<'a> {
    data_fields: Vec<&'a FieldDef>,
    validators: Vec<Validator<'a>>,
    /// Each field's branching logic, read once (logic that no longer reads shows the field).
    branching: Vec<Option<Logic>>,
    numeric: Vec<bool>,
    custom: &'a [CustomCheck],
    now: NaiveDateTime,
    /// (case, field index, value) of every number of a numeric field.
    numbers: Vec<(i32, usize, f64)>,
    out: Vec<Found>,
}

impl<'a> Checker<'a> {
    /// The subject id (the dictionary's first field) is no rule's business: it is the pseudonym
    /// every case has.
    pub fn new(fields: &'a [FieldDef], custom: &'a [CustomCheck], now: NaiveDateTime) -> Checker<'a> {
        let data_fields: Vec<&FieldDef> = fields.iter().filter(|f| f.holds_data()).skip(1).collect();
        Checker {
            validators: data_fields.iter().map(|f| Validator::new(f)).collect(),
            branching: data_fields
                .iter()
                .map(|f| Some(f.branching_logic.trim()).filter(|t| !t.is_empty()).and_then(|t| Logic::parse(t).ok()))
                .collect(),
            numeric: data_fields.iter().map(|f| is_numeric(f)).collect(),
            data_fields,
            custom,
            now,
            numbers: Vec::new(),
            out: Vec::new(),
        }
    }

    fn push(&mut self, case_id: i32, rule: Builtin, field: &str, value: Option<&Value>, detail: String) {
        self.out.push(Found {
            rule_code: rule.code().to_string(),
            severity: rule.severity(),
            case_id,
            event: String::new(),
            instance: 0,
            field: field.to_string(),
            value: value.map(value_text).unwrap_or_default(),
            detail,
        })
    }

    /// Every rule but the outliers on one case.
    pub fn case(&mut self, case: &CaseData) {
        let data = CaseValues { values: case.values, now: self.now, events: case.events, base: None, this: None };
        for i in 0..self.data_fields.len() {
            let f = self.data_fields[i];
            let v = case.values.get(&f.name);
            let shown = self.branching[i].as_ref().is_none_or(|l| l.holds(&data));
            if !crate::cases::dictionary::has_value(v) {
                if f.required && shown && f.field_type != FieldType::Calc {
                    self.push(case.case_id, Builtin::Missing, &f.name, None, "required, and empty".into());
                }
                continue;
            }
            if !shown {
                let why = format!("holds a value although its branching logic hides it ({})", f.branching_logic.trim());
                self.push(case.case_id, Builtin::Hidden, &f.name, v, why);
            }
            let value = v.unwrap_or(&Value::Null);
            if !self.validators[i].fits(value) {
                let why = if f.field_type == FieldType::Checkbox {
                    "an option is not one of the choices".into()
                } else {
                    self.validators[i].parse(&value_text(value)).err().unwrap_or_else(|| "not valid".into())
                };
                let rule = if f.field_type.has_choices() { Builtin::Code } else { Builtin::Range };
                self.push(case.case_id, rule, &f.name, v, format!("'{}': {why}", value_text(value)));
            }
            if self.numeric[i] {
                if let Some(x) = number(v) {
                    self.numbers.push((case.case_id, i, x));
                }
            }
        }
        for rule in self.custom {
            if rule.logic.holds(&data) {
                let refs = rule.logic.references();
                let values: Vec<String> = refs
                    .iter()
                    .map(|r| format!("{r} = {}", evidentia_logic::Data::value(&data, r).to_text()))
                    .collect();
                self.out.push(Found {
                    rule_code: rule.code.clone(),
                    severity: rule.severity,
                    case_id: case.case_id,
                    event: String::new(),
                    instance: 0,
                    field: refs.first().map(|r| r.field.clone()).unwrap_or_default(),
                    value: values.join("; "),
                    detail: values.join("; "),
                });
            }
        }
    }

    /// The outliers, once every case was seen; everything found, by case.
    pub fn finish(mut self) -> Vec<Found> {
        for i in 0..self.data_fields.len() {
            let xs: Vec<(i32, f64)> =
                self.numbers.iter().filter(|(_, f, _)| *f == i).map(|(c, _, x)| (*c, *x)).collect();
            if xs.len() < OUTLIER_MIN_VALUES {
                continue;
            }
            let n = xs.len() as f64;
            let mean = xs.iter().map(|(_, x)| x).sum::<f64>() / n;
            let sd = (xs.iter().map(|(_, x)| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
            if sd <= 0.0 {
                continue;
            }
            let name = self.data_fields[i].name.clone();
            for (case_id, x) in xs {
                let z = (x - mean) / sd;
                if z.abs() > OUTLIER_SDS {
                    let detail = format!(
                        "{} is {} SD from the mean ({} ± {})",
                        short(x),
                        short(z.abs()),
                        short(mean),
                        short(sd)
                    );
                    let value = Value::from(x);
                    self.push(case_id, Builtin::Outlier, &name, Some(&value), detail);
                }
            }
        }
        // By case, each case's findings in the order they were found.
        self.out.sort_by_key(|f| f.case_id);
        self.out
    }
}

/// Everything the rules find in `cases`.
pub fn find(fields: &[FieldDef], cases: &[CaseData], custom: &[CustomCheck], now: NaiveDateTime) -> Vec<Found> {
    let mut checker = Checker::new(fields, custom, now);
    for case in cases {
        checker.case(case);
    }
    checker.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::dictionary::DeidAction;
    use crate::cases::logic::{check, Events};
    use serde_json::json;

    fn fields() -> Vec<FieldDef> {
        let mut sex = FieldDef::for_tests("sex", "radio", "", DeidAction::Keep);
        sex.choices_raw = "1, Male | 2, Female".into();
        sex.required = true;
        let mut pregnant = FieldDef::for_tests("pregnant", "yesno", "", DeidAction::Keep);
        pregnant.branching_logic = "[sex] = '2'".into();
        pregnant.required = true;
        let mut tps = FieldDef::for_tests("tps", "text", "number", DeidAction::Keep);
        tps.validation_min = "0".into();
        tps.validation_max = "100".into();
        let mut mets = FieldDef::for_tests("mets", "checkbox", "", DeidAction::Keep);
        mets.choices_raw = "1, Brain | 2, Liver".into();
        vec![
            FieldDef::for_tests("record_id", "text", "", DeidAction::Pseudonymise),
            sex,
            pregnant,
            tps,
            mets,
            FieldDef::for_tests("pfs", "text", "number", DeidAction::Keep),
            FieldDef::for_tests("os", "text", "number", DeidAction::Keep),
        ]
    }

    /// Twenty clean cases and one planted error of each kind: each is found once, and nothing else.
    #[test]
    fn the_rules_find_the_planted_errors_and_nothing_else() {
        let f = fields();
        let mut rows: Vec<Map<String, Value>> = (0..20)
            .map(|i| {
                let sex = if i % 2 == 0 { "1" } else { "2" };
                let mut v = json!({"record_id": format!("S{i}"), "sex": sex, "tps": 40 + i, "mets": ["1"],
                    "pfs": 5.0 + (i % 10) as f64, "os": 15.0 + (i % 7) as f64});
                if sex == "2" {
                    v["pregnant"] = json!("0");
                }
                v.as_object().cloned().unwrap_or_default()
            })
            .collect();
        rows[1].remove("pregnant"); // missing required, shown (sex = 2)
        rows[2].insert("pregnant".into(), json!("0")); // hidden holds a value (sex = 1)
        rows[3].insert("tps".into(), json!(250)); // outside 0–100 (and an outlier)
        rows[4].insert("sex".into(), json!("7")); // not a choice
        rows[5].insert("os".into(), json!(13.0)); // os < pfs: the custom rule
        rows[5].insert("pfs".into(), json!(14.5));
        rows[6].insert("mets".into(), json!(["1", "9"])); // checkbox option not a choice
        let cases: Vec<CaseData> =
            rows.iter().enumerate().map(|(i, v)| CaseData { case_id: i as i32, values: v, events: None }).collect();
        let custom = vec![CustomCheck {
            code: "R1".into(),
            severity: Severity::Error,
            logic: check("[os] < [pfs]", &f, Events::Only(&[])).unwrap_or_else(|e| panic!("{e}")),
        }];
        let found = find(&f, &cases, &custom, NaiveDateTime::default());
        let got: Vec<(i32, &str, &str)> =
            found.iter().map(|x| (x.case_id, x.rule_code.as_str(), x.field.as_str())).collect();
        assert_eq!(
            got,
            [
                (1, "missing", "pregnant"),
                (2, "hidden", "pregnant"),
                (3, "range", "tps"),
                (3, "outlier", "tps"),
                (4, "code", "sex"),
                (5, "R1", "os"),
                (6, "code", "mets"),
            ],
            "{found:#?}"
        );
        assert_eq!(found[2].detail, "'250': out of range (0 to 100)");
        assert!(found[3].detail.starts_with("250 is "), "{}", found[3].detail);
        assert_eq!(found[5].detail, "[os] = 13; [pfs] = 14.5");
        assert_eq!(found[5].severity, Severity::Error);
        assert_eq!(found[1].severity, Severity::Warning);
    }
}
