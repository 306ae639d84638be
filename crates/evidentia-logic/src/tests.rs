//! The logic engine on the examples REDCap's "Branching Logic" and "Calculated Fields" help
//! gives (gender and pregnancy, height or weight, checkbox options, another event's value, BMI,
//! age from `datediff`, `sum` over blanks, `if`), and on its errors.

use std::collections::HashMap;

use chrono::{NaiveDate, NaiveDateTime};

use crate::{Data, FieldRef, Logic, Value};

/// One subject: values per event and field, checkbox options ticked, evaluated at `event`.
struct Subject {
    event: &'static str,
    values: HashMap<(&'static str, &'static str), &'static str>,
    ticked: HashMap<(&'static str, &'static str), Vec<&'static str>>,
}

impl Subject {
    fn new(values: &[(&'static str, &'static str)]) -> Subject {
        Subject {
            event: "baseline_arm_1",
            values: values.iter().map(|(f, v)| (("baseline_arm_1", *f), *v)).collect(),
            ticked: HashMap::new(),
        }
    }

    fn at(mut self, event: &'static str, field: &'static str, value: &'static str) -> Subject {
        self.values.insert((event, field), value);
        self
    }

    fn ticked(mut self, field: &'static str, codes: &[&'static str]) -> Subject {
        self.ticked.insert((self.event, field), codes.to_vec());
        self
    }
}

impl Data for Subject {
    fn value(&self, r: &FieldRef) -> Value {
        let event = r.event.as_deref().unwrap_or(self.event);
        if let Some(code) = &r.code {
            let on = self
                .ticked
                .iter()
                .any(|((e, f), codes)| *e == event && *f == r.field && codes.contains(&code.as_str()));
            return Value::Text(if on { "1" } else { "0" }.into());
        }
        match self.values.iter().find(|((e, f), _)| *e == event && *f == r.field) {
            Some((_, v)) => Value::Text(v.to_string()),
            None => Value::Blank,
        }
    }

    fn now(&self) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 12, 7).and_then(|d| d.and_hms_opt(15, 30, 0)).unwrap_or_default()
    }
}

fn logic(text: &str) -> Logic {
    Logic::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn holds(text: &str, s: &Subject) -> bool {
    logic(text).holds(s)
}

fn value(text: &str, s: &Subject) -> Value {
    logic(text).value(s)
}

fn number(text: &str, s: &Subject) -> f64 {
    value(text, s).as_num().unwrap_or_else(|| panic!("{text} has no value"))
}

#[test]
fn branching_on_one_choice_and_on_two() {
    // "Show the field only if gender is female": [sex] = "0".
    assert!(holds(r#"[sex] = "0""#, &Subject::new(&[("sex", "0")])));
    assert!(!holds(r#"[sex] = "0""#, &Subject::new(&[("sex", "1")])));
    assert!(!holds(r#"[sex] = "0""#, &Subject::new(&[])));
    // "... and has given birth": [sex] = "0" and [given_birth] = "1".
    let text = r#"[sex] = "0" and [given_birth] = "1""#;
    assert!(holds(text, &Subject::new(&[("sex", "0"), ("given_birth", "1")])));
    assert!(!holds(text, &Subject::new(&[("sex", "0"), ("given_birth", "0")])));
    // Upper case, && and || as REDCap also accepts them.
    assert!(holds(r#"[sex] = '0' AND [given_birth] = '1'"#, &Subject::new(&[("sex", "0"), ("given_birth", "1")])));
    assert!(holds("[sex] = 0 && [given_birth] = 1 || [sex] = 5", &Subject::new(&[("sex", "0"), ("given_birth", "1")])));
}

#[test]
fn branching_with_parentheses_and_numbers() {
    // ([height] >= 170 or [weight] < 65) and [sex] = "1"
    let text = r#"([height] >= 170 or [weight] < 65) and [sex] = "1""#;
    assert!(holds(text, &Subject::new(&[("height", "172"), ("weight", "80"), ("sex", "1")])));
    assert!(holds(text, &Subject::new(&[("height", "160"), ("weight", "60"), ("sex", "1")])));
    assert!(!holds(text, &Subject::new(&[("height", "160"), ("weight", "80"), ("sex", "1")])));
    assert!(!holds(text, &Subject::new(&[("height", "180"), ("weight", "60"), ("sex", "0")])));
    // Numbers compare as numbers, not as text ("9" > "10" as text).
    assert!(holds("[n] < 10", &Subject::new(&[("n", "9")])));
    assert!(holds("[n] = 1", &Subject::new(&[("n", "1.0")])));
}

#[test]
fn blank_values() {
    // "Show if last name is not blank": [last_name] <> "".
    assert!(holds(r#"[last_name] <> """#, &Subject::new(&[("last_name", "x")])));
    assert!(!holds(r#"[last_name] <> """#, &Subject::new(&[])));
    assert!(holds("[age] = ''", &Subject::new(&[])));
    // A blank is not 0, and an ordering comparison with a blank does not hold either way.
    assert!(!holds("[age] = 0", &Subject::new(&[])));
    assert!(!holds("[age] < 18", &Subject::new(&[])));
    assert!(!holds("[age] >= 18", &Subject::new(&[])));
    assert!(holds("[age] <> 0", &Subject::new(&[])));
}

#[test]
fn checkbox_options() {
    // [race(2)] = "1": option 2 ticked; [race(4)] = "0": option 4 not ticked.
    let s = Subject::new(&[]).ticked("race", &["2", "5"]);
    assert!(holds(r#"[race(2)] = "1""#, &s));
    assert!(holds(r#"[race(4)] = "0""#, &s));
    assert!(!holds(r#"[race(4)] = "1""#, &s));
    assert!(holds(r#"[race(2)] = "1" or [race(4)] = "1""#, &s));
    assert_eq!(number("sum([race(1)], [race(2)], [race(5)])", &s), 2.0);
}

#[test]
fn another_events_value() {
    // [enrollment_arm_1][weight] > 100: the value at another event of the same subject.
    let s = Subject::new(&[("weight", "90")]).at("enrollment_arm_1", "weight", "120");
    assert!(holds("[enrollment_arm_1][weight] > 100", &s));
    assert!(!holds("[weight] > 100", &s));
    assert_eq!(number("[enrollment_arm_1][weight] - [weight]", &s), 30.0);
}

#[test]
fn calculated_bmi() {
    // BMI from kilograms and centimetres: [weight]*10000/(([height])^(2)).
    let s = Subject::new(&[("weight", "70"), ("height", "175")]);
    let bmi = number("[weight]*10000/(([height])^(2))", &s);
    assert!((bmi - 70.0 * 10000.0 / (175.0f64 * 175.0)).abs() < 1e-12);
    assert_eq!(number("round([weight]*10000/(([height])^(2)),1)", &s), 22.9);
    // A blank input leaves the calculation blank.
    assert_eq!(value("[weight]*10000/(([height])^(2))", &Subject::new(&[("weight", "70")])), Value::Blank);
}

#[test]
fn calculated_age_with_datediff() {
    // Age in years: datediff([dob],[date_enrolled],"y"). A year is 365.2425 days, so on the
    // 50th birthday the difference is a hair under 50 and rounddown() gives 49 — REDCap's
    // documented reason to prefer whole-day arithmetic for exact ages.
    let s = Subject::new(&[("dob", "1970-01-01"), ("date_enrolled", "2020-01-01")]);
    let years = number(r#"datediff([dob],[date_enrolled],"y")"#, &s);
    assert!((years - 18262.0 / 365.2425).abs() < 1e-12, "{years}");
    assert_eq!(number(r#"rounddown(datediff([dob],[date_enrolled],"y"))"#, &s), 49.0);
    assert_eq!(number(r#"datediff([dob],[date_enrolled],"d")"#, &s), 18262.0);
    assert!((number(r#"datediff([dob],[date_enrolled],"M")"#, &s) - 18262.0 / 30.44).abs() < 1e-9);
    // 'today' is the evaluation date; hours count from midnight.
    let s = Subject::new(&[("visit", "2026-12-01")]);
    assert_eq!(number(r#"datediff([visit],'today','d')"#, &s), 6.0);
    assert_eq!(number(r#"datediff([visit],'today','h')"#, &s), 144.0);
    assert_eq!(number(r#"datediff('today','now','m')"#, &s), 930.0);
    // Unsigned unless asked: date2 before date1 is negative only when signed.
    let s = Subject::new(&[("enrol", "2024-03-10"), ("first_visit", "2024-03-01")]);
    assert_eq!(number(r#"datediff([enrol],[first_visit],"d")"#, &s), 9.0);
    assert_eq!(number(r#"datediff([enrol],[first_visit],"d",true)"#, &s), -9.0);
    assert_eq!(number(r#"datediff([enrol],[first_visit],"d","ymd",true)"#, &s), -9.0);
    assert!(holds(r#"datediff([enrol],[first_visit],"d",true) < 0"#, &s));
    // Dates written in the logic in the format named.
    assert_eq!(number(r#"datediff("03/01/2024","03/15/2024","d","mdy")"#, &s), 14.0);
    assert_eq!(number(r#"datediff("15-03-2024","2024-03-01","d","dmy", true)"#, &s), -14.0);
    assert_eq!(number(r#"datediff("2024-03-01 08:00","2024-03-01 14:30","h")"#, &s), 6.5);
    // A blank date gives no value.
    assert_eq!(value(r#"datediff([death],[enrol],"d")"#, &s), Value::Blank);
}

#[test]
fn sum_skips_blanks_but_plus_does_not() {
    let s = Subject::new(&[("q1", "2"), ("q2", ""), ("q3", "5")]);
    assert_eq!(number("sum([q1],[q2],[q3])", &s), 7.0);
    assert_eq!(value("[q1]+[q2]+[q3]", &s), Value::Blank);
    assert_eq!(number("mean([q1],[q2],[q3])", &s), 3.5);
    assert_eq!(number("min([q1],[q2],[q3])", &s), 2.0);
    assert_eq!(number("max([q1],[q2],[q3])", &s), 5.0);
    assert_eq!(number("median([q1],[q2],[q3], 4)", &s), 4.0);
    assert!((number("stdev([q1],[q3])", &s) - 4.5f64.sqrt()).abs() < 1e-12);
    assert_eq!(number("sum([q2])", &s), 0.0);
    assert_eq!(value("mean([q2])", &s), Value::Blank);
}

#[test]
fn if_and_nested_if() {
    // if([weight] > 100, 44, 11)
    assert_eq!(number("if([weight] > 100, 44, 11)", &Subject::new(&[("weight", "120")])), 44.0);
    assert_eq!(number("if([weight] > 100, 44, 11)", &Subject::new(&[("weight", "90")])), 11.0);
    let nested = r#"if([sex] = "1" and [age] >= 18, 1, if([sex] = "1", 2, 3))"#;
    assert_eq!(number(nested, &Subject::new(&[("sex", "1"), ("age", "40")])), 1.0);
    assert_eq!(number(nested, &Subject::new(&[("sex", "1"), ("age", "12")])), 2.0);
    assert_eq!(number(nested, &Subject::new(&[("sex", "0"), ("age", "40")])), 3.0);
    assert_eq!(value("if([age] > 1, 'adult', '')", &Subject::new(&[("age", "40")])), Value::Text("adult".into()));
}

#[test]
fn arithmetic_precedence() {
    let s = Subject::new(&[]);
    assert_eq!(number("1 + 2 * 3", &s), 7.0);
    assert_eq!(number("(1 + 2) * 3", &s), 9.0);
    assert_eq!(number("10 / 4", &s), 2.5);
    assert_eq!(number("2 ^ 3 ^ 2", &s), 512.0);
    assert_eq!(number("-2 ^ 2", &s), -4.0);
    assert_eq!(number("2 ^ -1", &s), 0.5);
    assert_eq!(number("7 - 2 - 1", &s), 4.0);
    assert_eq!(number(".5 + 1.", &s), 1.5);
    assert_eq!(value("1 / 0", &s), Value::Blank);
    assert_eq!(value("sqrt(-1)", &s), Value::Blank);
    assert_eq!(number("round(2.5)", &s), 3.0);
    assert_eq!(number("roundup(2.11, 1)", &s), 2.2);
    assert_eq!(
        number("abs(-3) + log(100, 10) + year('2024-05-06') - month('2024-05-06') * day('2024-05-06')", &s),
        3.0 + 2.0 + 2024.0 - 30.0
    );
}

#[test]
fn text_functions_ignore_case() {
    let s = Subject::new(&[("histology", "Squamous cell carcinoma")]);
    assert!(holds("contains([histology], 'CARCINOMA')", &s));
    assert!(holds("not_contain([histology], 'adeno')", &s));
    assert!(holds("starts_with([histology], 'squamous') and ends_with([histology], 'noma')", &s));
    assert_eq!(number("length([histology])", &s), 23.0);
    assert!(holds("isnumber('4.5') and not_contain('a', 'b') and isinteger('4') and isinteger('4.5') = false", &s));
}

#[test]
fn references_name_each_field_once() {
    let l = logic(
        "[baseline_arm_1][dob] < [death_date] and [race(2)] = '1' and [death_date] <> '' and [visit_date][2] > 0",
    );
    let refs: Vec<String> = l.references().iter().map(|r| r.to_string()).collect();
    assert_eq!(refs, ["[baseline_arm_1][dob]", "[death_date]", "[race(2)]", "[visit_date][2]"]);
    let r = &l.references()[0];
    assert_eq!((r.event.as_deref(), r.field.as_str(), r.code.as_deref()), (Some("baseline_arm_1"), "dob", None));
    let l = logic("[followup_arm_1][ae_type(3)][2] = '1'");
    assert_eq!(l.references()[0].to_string(), "[followup_arm_1][ae_type(3)][2]");
}

#[test]
fn errors_name_the_place_and_the_problem() {
    let err = |text: &str| Logic::parse(text).err().unwrap_or_else(|| panic!("{text} parsed"));
    let e = err("[sex] = ");
    assert_eq!(e.position, 9, "{e}");
    assert!(e.message.contains("ends"), "{e}");
    let e = err("[sex] == '1'");
    assert_eq!(e.position, 8, "{e}");
    let e = err("foo([a]) = 1");
    assert_eq!(e.position, 1);
    assert!(e.message.contains("unknown function 'foo'") && e.message.contains("datediff"), "{e}");
    let e = err("[age] > 18 and sum([a], [b]");
    assert!(e.message.contains("')'"), "{e}");
    let e = err("[event-name] = 'x'");
    assert!(e.message.contains("smart variable"), "{e}");
    let e = err(r#"datediff([a],[b],"w")"#);
    assert!(e.message.contains("no unit 'w'"), "{e}");
    let e = err("[sex] = 'female");
    assert_eq!(e.position, 9, "{e}");
    assert!(e.message.contains("closing"), "{e}");
    let e = err("[a] = 1 [b]");
    assert_eq!(e.position, 9, "{e}");
    let e = err("if([a], 1)");
    assert!(e.message.contains("if() takes 3 arguments, not 2"), "{e}");
    let e = err("[sex = '1'");
    assert!(e.message.contains("']'"), "{e}");
    let e = err("(([a] + 1) * 2");
    assert!(e.message.contains("')'"), "{e}");
    let e = err("sex = '1'");
    assert!(e.message.contains("[sex]"), "{e}");
    assert!(Logic::parse("  ").is_err());
    let e = err("sum(1, .)");
    assert!(e.message.contains("'.' with no digits"), "{e}");
    // Text a person sends cannot nest deep enough to exhaust the stack, nor be endless.
    let e = err(&format!("{}1{}", "(".repeat(40), ")".repeat(40)));
    assert!(e.message.contains("nested deeper than 32"), "{e}");
    let e = err(&format!("{}1", "-".repeat(40)));
    assert!(e.message.contains("nested deeper"), "{e}");
    let e = err(&"2^".repeat(40));
    assert!(e.message.contains("nested deeper"), "{e}");
    let e = err(&"1+".repeat(2500));
    assert!(e.message.contains("longer than 4000"), "{e}");
    // Deep but allowed, and a long flat sum: read and evaluated.
    assert_eq!(number(&format!("{}1{}", "(".repeat(32), ")".repeat(32)), &Subject::new(&[])), 1.0);
    assert_eq!(number(&format!("{}1", "1+".repeat(1999)), &Subject::new(&[])), 2000.0);
    // Signs inside quoted text do not count.
    assert!(holds(&format!("'{}' <> ''", "-".repeat(60)), &Subject::new(&[])));
    // Multi-byte text before the problem: the position counts characters.
    let e = err("[a] = 'é' [b]");
    assert_eq!(e.position, 11, "{e}");
}
