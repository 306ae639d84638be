//! The tables of a statistical result (the JSON of `evidentia stats`): its scalars; objects of
//! scalars that share keys (the proportions with their CIs) as one table; arrays of objects
//! (groups, coefficients) as tables; the ICCs as rows; Table 1 in its usual layout. Shown on the
//! analysis pages and in the dossier's report.

use serde_json::Value;

use super::{Cell, Table};

/// The order results list their numbers in (the contract's order); other keys follow.
const KEY_ORDER: &[&str] = &[
    "name",
    "group",
    "reference",
    "n",
    "n_subjects",
    "n_raters",
    "n_positive",
    "n_negative",
    "n_missing",
    "events",
    "categories",
    "tp",
    "fp",
    "fn",
    "tn",
    "only_a",
    "only_b",
    "observed_agreement",
    "expected_agreement",
    "kappa",
    "auc",
    "auc_a",
    "auc_b",
    "difference",
    "mean_diff",
    "sd_diff",
    "loa_low",
    "loa_high",
    "estimate",
    "wilson_low",
    "wilson_high",
    "exact_low",
    "exact_high",
    "sensitivity",
    "specificity",
    "ppv",
    "npv",
    "accuracy",
    "ppa",
    "npa",
    "opa",
    "agreement_a",
    "agreement_b",
    "median",
    "median_ci_low",
    "median_ci_high",
    "coef",
    "hr",
    "se",
    "se_a",
    "se_b",
    "se_difference",
    "ci_low",
    "ci_high",
    "hr_ci_low",
    "hr_ci_high",
    "difference_ci_low",
    "difference_ci_high",
    "chi2",
    "df",
    "z",
    "p_value",
    "mcnemar_p_value",
    "youden_threshold",
    "youden_sensitivity",
    "youden_specificity",
    "pearson_r",
    "spearman_rho",
    "ccc",
    "ccc_ci_low",
    "ccc_ci_high",
    "log_likelihood",
];

fn key_rank(k: &str) -> usize {
    KEY_ORDER.iter().position(|o| *o == k).unwrap_or(KEY_ORDER.len())
}

/// A value for a table cell: numbers to 4 decimals (the full value kept), null as "—".
pub fn cell(v: &Value) -> Cell {
    match v {
        Value::Null => {
            Cell { text: "—".into(), full: Some("null: undefined (e.g. a zero denominator)".into()), undefined: true }
        }
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Cell::text(i.to_string()),
            (None, Some(f)) => Cell { text: fmt4(f), full: Some(f.to_string()), undefined: false },
            _ => Cell::text(n.to_string()),
        },
        Value::String(s) => Cell::text(s.clone()),
        Value::Bool(b) => Cell::text(b.to_string()),
        Value::Array(a) => Cell::text(a.iter().map(|x| cell(x).text).collect::<Vec<_>>().join(", ")),
        Value::Object(_) => Cell::text(v.to_string()),
    }
}

/// The six intraclass correlations by their Shrout & Fleiss names.
const ICC_FORMS: [(&str, &str); 6] = [
    ("icc1", "ICC(1,1)"),
    ("icc2", "ICC(2,1)"),
    ("icc3", "ICC(3,1)"),
    ("icc1k", "ICC(1,k)"),
    ("icc2k", "ICC(2,k)"),
    ("icc3k", "ICC(3,k)"),
];

/// A statistic's key as people read it: `opa.wilson_low` → "OPA lower CI bound (Wilson)",
/// `n_missing` → "missing". Keys stay as they are in datasets, CSV and JSON.
pub fn label(key: &str) -> String {
    const NAMES: &[(&str, &str)] = &[
        ("opa", "OPA"),
        ("ppa", "PPA"),
        ("npa", "NPA"),
        ("ppv", "PPV"),
        ("npv", "NPV"),
        ("auc", "AUC"),
        ("kappa", "κ"),
        ("se", "SE"),
        ("hr", "hazard ratio"),
        ("p_value", "p"),
        ("wilson_low", "lower CI bound (Wilson)"),
        ("wilson_high", "upper CI bound (Wilson)"),
        ("ci_low", "lower CI bound"),
        ("ci_high", "upper CI bound"),
        ("n_missing", "missing"),
        ("n_used", "n used"),
        ("n_events", "events"),
        ("n_subjects", "subjects"),
        ("n_raters", "raters"),
        ("n_items", "items"),
    ];
    key.split('.')
        .map(|seg| {
            NAMES
                .iter()
                .chain(ICC_FORMS.iter())
                .find(|(k, _)| *k == seg)
                .map_or_else(|| seg.replace('_', " "), |(_, l)| l.to_string())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A number to 4 decimals, or in scientific notation when that would hide it.
pub fn fmt4(f: f64) -> String {
    if f != 0.0 && (f.abs() < 1e-4 || f.abs() >= 1e7) {
        format!("{f:.3e}")
    } else {
        format!("{f:.4}")
    }
}

fn is_scalar(v: &Value) -> bool {
    let nested = v.as_array().is_some_and(|a| a.iter().any(|x| x.is_object() || x.is_array()));
    !v.is_object() && !nested
}

/// The tables of a result.
pub fn tables(json: &Value) -> Vec<Table> {
    let Some(obj) = json.as_object() else { return Vec::new() };
    if obj.contains_key("continuous") && obj.contains_key("categorical") {
        return vec![table1(json)];
    }
    let mut scalars: Vec<(&String, &Value)> = obj.iter().filter(|(_, v)| is_scalar(v)).collect();
    if obj.contains_key("icc1") {
        return icc(obj, &scalars);
    }
    let mut out = Vec::new();
    scalars.sort_by_key(|(k, _)| key_rank(k));
    if !scalars.is_empty() {
        let mut t = Table::default();
        let notes = kappa_notes(obj);
        for (k, v) in scalars {
            t.push_headed(label(k), [kappa_cell(obj, k, v)]);
        }
        for n in notes {
            t.push_headed("note", [Cell::text(n)]);
        }
        out.push(t);
    }
    // Objects of scalars grouped by their key set.
    type Members<'a> = Vec<(&'a String, &'a serde_json::Map<String, Value>)>;
    let mut groups: Vec<(Vec<String>, Members)> = Vec::new();
    for (k, v) in obj {
        if let Some(m) = v.as_object().filter(|m| m.values().all(is_scalar)) {
            let keys: Vec<String> = m.keys().cloned().collect();
            match groups.iter_mut().find(|(ks, _)| *ks == keys) {
                Some((_, members)) => members.push((k, m)),
                None => groups.push((keys, vec![(k, m)])),
            }
        }
    }
    for (mut keys, mut members) in groups {
        keys.sort_by_key(|k| key_rank(k));
        members.sort_by_key(|(k, _)| key_rank(k));
        let mut t = Table {
            header: std::iter::once(String::new()).chain(keys.iter().map(|k| label(k))).collect(),
            ..Table::default()
        };
        for (name, m) in members {
            t.push_headed(label(name), keys.iter().map(|k| cell(&m[k])));
        }
        out.push(t);
    }
    // Arrays of objects, and objects holding them (cox.comparisons).
    for (k, v) in obj {
        if let Some(items) = v.as_array().filter(|a| a.iter().any(Value::is_object)) {
            out.push(array_table(k, items));
        }
        if let Some(m) = v.as_object().filter(|m| !m.values().all(is_scalar)) {
            let head: Vec<String> =
                m.iter().filter(|(_, x)| is_scalar(x)).map(|(a, x)| format!("{a} {}", cell(x).text)).collect();
            for (k2, v2) in m {
                if let Some(items) = v2.as_array().filter(|a| a.iter().any(Value::is_object)) {
                    out.push(array_table(&format!("{k} {k2} ({})", head.join(", ")), items));
                }
            }
        }
    }
    out
}

/// A kappa's CI bound as shown: within [−1, 1], the range kappa can take (the Wald interval of
/// Fleiss, Cohen & Everitt 1969 can pass it with few subjects; the JSON keeps the computed bound,
/// as statsmodels reports it).
fn kappa_cell(obj: &serde_json::Map<String, Value>, key: &str, v: &Value) -> Cell {
    let bound = match key {
        "ci_low" => -1.0,
        "ci_high" => 1.0,
        _ => return cell(v),
    };
    match (obj.contains_key("kappa"), v.as_f64()) {
        (true, Some(x)) if (key == "ci_low" && x < bound) || (key == "ci_high" && x > bound) => {
            Cell { text: format!("{} (truncated)", fmt4(bound)), full: Some(x.to_string()), undefined: false }
        }
        _ => cell(v),
    }
}

/// What a kappa result needs said beside its numbers: a truncated CI, an SE of 0, an undefined
/// kappa.
fn kappa_notes(obj: &serde_json::Map<String, Value>) -> Vec<String> {
    if !obj.contains_key("kappa") {
        return Vec::new();
    }
    let mut notes = Vec::new();
    let f = |k: &str| obj.get(k).and_then(Value::as_f64);
    if f("ci_low").is_some_and(|x| x < -1.0) || f("ci_high").is_some_and(|x| x > 1.0) {
        notes.push(format!(
            "the large-sample CI ({} to {}) passes kappa's range and is shown truncated to [−1, 1]; with so few subjects it is only a rough guide",
            f("ci_low").map(fmt4).unwrap_or_default(),
            f("ci_high").map(fmt4).unwrap_or_default()
        ));
    }
    if f("se") == Some(0.0) {
        notes.push("SE 0: every pair falls in one pattern (e.g. perfect agreement), so the large-sample variance is 0 and the CI is a single point — not a measure of certainty".into());
    }
    if obj.get("kappa").is_some_and(Value::is_null) {
        notes.push("kappa is undefined: the expected agreement is 1 (both raters used a single category), so there is nothing to correct for chance".into());
    }
    notes
}

/// The six ICCs as rows with their CIs, after the counts.
fn icc(obj: &serde_json::Map<String, Value>, scalars: &[(&String, &Value)]) -> Vec<Table> {
    let mut counts = Table::default();
    for (k, v) in scalars.iter().filter(|(k, _)| k.starts_with("n_")) {
        counts.push_headed(label(k), [cell(v)]);
    }
    let mut forms = Table::new(&["Shrout & Fleiss form", "ICC", "lower CI bound", "upper CI bound"]);
    for (name, form) in ICC_FORMS {
        let get = |k: String| obj.get(&k).map(cell).unwrap_or_else(|| Cell::text(""));
        forms.push_headed(
            format!("{name} · {form}"),
            [get(name.to_string()), get(format!("{name}_ci_low")), get(format!("{name}_ci_high"))],
        );
    }
    vec![counts, forms]
}

fn array_table(caption: &str, items: &[Value]) -> Table {
    let mut keys: Vec<String> = Vec::new();
    for it in items {
        for (k, v) in it.as_object().into_iter().flatten() {
            if is_scalar(v) && !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    keys.sort_by_key(|k| key_rank(k));
    let mut t = Table { header: keys.iter().map(|k| label(k)).collect(), ..Table::default() }.caption(caption);
    for it in items {
        t.push(keys.iter().map(|k| it.get(k).map(cell).unwrap_or_else(|| Cell::text(""))));
    }
    t
}

/// How a person reads a Table 1 variable: its label, and its levels' labels in the order the
/// data dictionary lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VariableLabels {
    pub label: String,
    /// (code, label), in the schema's order.
    pub levels: Vec<(String, String)>,
}

/// Table 1: a column per group and overall; continuous variables as n, mean ± SD, median [IQR],
/// missing; categorical as n (%) per level and missing. Variables and levels as coded.
pub fn table1(json: &Value) -> Table {
    table1_labelled(json, &std::collections::BTreeMap::new())
}

/// Table 1 with variables and levels by their labels ("Sex = Female", not "sex = 2"), levels in
/// the order `labels` gives (then any level it does not name, as coded).
pub fn table1_labelled(json: &Value, labels: &std::collections::BTreeMap<String, VariableLabels>) -> Table {
    let mut header = vec!["Characteristic".to_string()];
    header.extend(
        json["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| format!("{} (n={})", g["name"].as_str().unwrap_or(""), g["n"])),
    );
    header.push("Overall".into());
    let mut t = Table { header, class: "table1", ..Table::default() };
    let num = |v: &Value| v.as_f64().map(|f| format!("{f:.1}")).unwrap_or_else(|| "—".into());
    let summary = |s: &Value| -> [String; 3] {
        [
            format!("{} ± {}", num(&s["mean"]), num(&s["sd"])),
            format!("{} [{}, {}]", num(&s["median"]), num(&s["q1"]), num(&s["q3"])),
            format!("{}", s["missing"]),
        ]
    };
    let columns = |v: &Value| -> Vec<Value> {
        let mut cols: Vec<Value> = v["by_group"].as_array().cloned().unwrap_or_default();
        cols.push(v["overall"].clone());
        cols
    };
    let label_of = |name: &str| labels.get(name).map_or(name.to_string(), |l| l.label.clone());
    for v in json["continuous"].as_array().into_iter().flatten() {
        let name = label_of(v["name"].as_str().unwrap_or(""));
        let cols = columns(v);
        for (i, label) in ["mean ± SD", "median [IQR]", "missing"].iter().enumerate() {
            t.push_headed(format!("{name}, {label}"), cols.iter().map(|c| summary(c)[i].clone()));
        }
    }
    for v in json["categorical"].as_array().into_iter().flatten() {
        let var = v["name"].as_str().unwrap_or("");
        let name = label_of(var);
        let cols = columns(v);
        let coded: Vec<String> = v["levels"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|level| match level {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        // The schema's order first, then what it does not name.
        let known = labels.get(var).map(|l| l.levels.as_slice()).unwrap_or_default();
        let mut order: Vec<(usize, String)> = known
            .iter()
            .filter_map(|(code, label)| coded.iter().position(|c| c == code).map(|i| (i, label.clone())))
            .collect();
        for (i, c) in coded.iter().enumerate() {
            if !order.iter().any(|(j, _)| *j == i) {
                order.push((i, c.clone()));
            }
        }
        for (li, level) in order {
            t.push_headed(
                format!("{name} = {level}, n (%)"),
                cols.iter().map(|c| {
                    let p = c["percents"][li].as_f64().map(|p| format!("{p:.1}")).unwrap_or_else(|| "—".into());
                    format!("{} ({p})", c["counts"][li])
                }),
            );
        }
        t.push_headed(format!("{name}, missing"), cols.iter().map(|c| c["missing"].to_string()));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn table1_reads_labels_in_the_schema_order() {
        // As `evidentia stats table1` writes it: levels in their sorted (code) order.
        let json = serde_json::json!({
            "groups": [{"name": "inflamed", "n": 3}],
            "continuous": [],
            "categorical": [{
                "name": "sex", "levels": ["1", "2", "9"],
                "by_group": [{"counts": [1, 2, 0], "percents": [33.3, 66.7, 0.0], "missing": 0}],
                "overall": {"counts": [1, 2, 0], "percents": [33.3, 66.7, 0.0], "missing": 0}
            }]
        });
        let labels = BTreeMap::from([(
            "sex".to_string(),
            VariableLabels {
                label: "Sex".into(),
                levels: vec![("2".into(), "Female".into()), ("1".into(), "Male".into())],
            },
        )]);
        let t = table1_labelled(&json, &labels);
        let rows: Vec<String> = t.rows.iter().map(|r| r.head.clone().unwrap_or_default()).collect();
        assert_eq!(rows, ["Sex = Female, n (%)", "Sex = Male, n (%)", "Sex = 9, n (%)", "Sex, missing"]);
        assert_eq!(t.rows[0].cells[0].text, "2 (66.7)", "counts follow their level");
        let plain = table1(&json);
        assert_eq!(plain.rows[0].head.as_deref(), Some("sex = 1, n (%)"));
    }

    #[test]
    fn kappa_intervals_are_shown_within_its_range_with_a_note() {
        let json = serde_json::json!({"kappa": 0.5, "se": 0.4, "ci_low": -0.284, "ci_high": 1.284, "n": 6});
        let t = &tables(&json)[0];
        let row = |h: &str| t.rows.iter().find(|r| r.head.as_deref() == Some(h)).map(|r| r.cells[0].text.clone());
        assert_eq!(row("upper CI bound").as_deref(), Some("1.0000 (truncated)"));
        assert_eq!(row("lower CI bound").as_deref(), Some("-0.2840"));
        assert!(row("note").is_some_and(|n| n.contains("truncated to [−1, 1]")), "{:?}", t.rows);
        let perfect = serde_json::json!({"kappa": 1.0, "se": 0.0, "ci_low": 1.0, "ci_high": 1.0, "n": 6});
        let t = &tables(&perfect)[0];
        assert!(t.rows.iter().any(|r| r.cells[0].text.starts_with("SE 0")), "{:?}", t.rows);
    }

    #[test]
    fn statistic_keys_read_as_words() {
        assert_eq!(label("opa.wilson_low"), "OPA lower CI bound (Wilson)");
        assert_eq!(label("n_missing"), "missing");
        assert_eq!(label("observed_agreement"), "observed agreement");
    }
}
