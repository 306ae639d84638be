//! Statistics: the numbers of the evidence, each function citing its method. The web pages, the
//! CLI and the dossier call the same functions (`analysis::run`). Data comes in as polars data
//! frames of text columns (`frame`); results are typed and serialisable. This file: category
//! ordering, the median and normal quantiles shared by all.
//!
//! An engine: no database, no web server, no I/O beyond reading a CSV file (`frame::read_csv`).
//! The application re-exports it as `evidentia::stats`; the contract it implements (analyses,
//! columns, JSON output, error messages) is `docs/statistics.md`.

pub mod accuracy;
pub mod agreement;
pub mod analysis;
pub mod continuous;
#[cfg(feature = "cli")]
pub mod describe;
pub mod frame;
mod linalg;
pub mod plots;
pub mod proportion;
pub mod survival;
pub mod table1;

use std::cmp::Ordering;

/// The sorted union of category values: numerically when every value parses as a number,
/// bytewise otherwise (the `evidentia stats` contract, docs/statistics.md).
pub fn sorted_categories<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    code_categories(&[&values.into_iter().collect::<Vec<_>>()]).categories
}

/// Columns of category values as codes: the categories (in `sorted_categories`' order) and, for
/// each column, each value's position among them.
pub struct Coded {
    pub categories: Vec<String>,
    pub codes: Vec<Vec<usize>>,
}

/// Codes the values of one or more columns in one pass (a value is looked up by a linear scan
/// while there are few categories, as there usually are, by a hash map beyond), then sorts the
/// categories and renumbers the codes. (Collecting 100,000s of values into a `BTreeSet` sorted
/// them all first: the statistics benchmark's kappas spent most of their time there.)
pub fn code_categories(columns: &[&[&str]]) -> Coded {
    const LINEAR: usize = 16;
    let mut seen: Vec<&str> = Vec::new();
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut codes: Vec<Vec<usize>> = Vec::with_capacity(columns.len());
    for column in columns {
        let mut out = Vec::with_capacity(column.len());
        for &v in *column {
            let found = if seen.len() <= LINEAR { seen.iter().position(|s| *s == v) } else { index.get(v).copied() };
            out.push(found.unwrap_or_else(|| {
                seen.push(v);
                if seen.len() == LINEAR + 1 {
                    index.extend(seen.iter().enumerate().map(|(i, s)| (*s, i)));
                } else if seen.len() > LINEAR + 1 {
                    index.insert(v, seen.len() - 1);
                }
                seen.len() - 1
            }));
        }
        codes.push(out);
    }
    // Bytewise, then (stable) numerically when every category is a number.
    let mut order: Vec<usize> = (0..seen.len()).collect();
    order.sort_by(|&a, &b| seen[a].cmp(seen[b]));
    let numbers: Option<Vec<f64>> = seen.iter().map(|c| frame::parse_number(c)).collect();
    if let Some(xs) = numbers {
        order.sort_by(|&a, &b| xs[a].partial_cmp(&xs[b]).unwrap_or(Ordering::Equal));
    }
    let mut rank = vec![0; seen.len()];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r;
    }
    for column in &mut codes {
        column.iter_mut().for_each(|c| *c = rank[*c]);
    }
    Coded { categories: order.iter().map(|&i| seen[i].to_string()).collect(), codes }
}

/// Categories as JSON values: numbers when every category is a number (integers without a
/// decimal point), strings otherwise — the contract's rule for printing categories.
pub fn category_values(categories: &[String]) -> Vec<serde_json::Value> {
    let numbers: Option<Vec<f64>> = categories.iter().map(|c| frame::parse_number(c)).collect();
    match numbers {
        Some(ns) => ns
            .into_iter()
            .map(|x| {
                if x.fract() == 0.0 && x.abs() < 9.0e15 {
                    serde_json::Value::from(x as i64)
                } else {
                    serde_json::Value::from(x)
                }
            })
            .collect(),
        None => categories.iter().map(|c| serde_json::Value::from(c.as_str())).collect(),
    }
}

/// At most this many categories or groups in one analysis: more is a continuous column chosen
/// by mistake, and a k × k table of it would be useless (and large).
pub const MAX_CATEGORIES: usize = 100;

/// Refuses a column with more than `MAX_CATEGORIES` distinct values.
pub fn check_categories(what: &str, n: usize) -> frame::StatsResult<()> {
    if n > MAX_CATEGORIES {
        return Err(frame::bad(format!(
            "{what}: {n} distinct values — more than {MAX_CATEGORIES} categories; is it a continuous column?"
        )));
    }
    Ok(())
}

/// The median (mean of the two middle values for an even count); None for no values.
pub fn median(mut xs: Vec<f64>) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    Some(if n % 2 == 1 { xs[n / 2] } else { (xs[n / 2 - 1] + xs[n / 2]) / 2.0 })
}

/// The two-sided normal quantile for a confidence level (1.96 for 0.95).
pub fn z_for_level(level: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, Normal};
    let standard = Normal::standard();
    standard.inverse_cdf(1.0 - (1.0 - level) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_sort_numerically_when_all_are_numbers() {
        assert_eq!(sorted_categories(["10", "2", "1", "2"]), ["1", "2", "10"]);
        assert_eq!(sorted_categories(["b", "10", "a", "2"]), ["10", "2", "a", "b"]);
        assert_eq!(sorted_categories(["<1%", ">=50%", "1-49%"]), ["1-49%", "<1%", ">=50%"]);
    }

    #[test]
    fn codes_point_at_their_sorted_categories_with_few_or_many() {
        for n in [3usize, 16, 17, 40] {
            let a: Vec<String> = (0..200).map(|i| format!("{}", (i * 7) % n)).collect();
            let b: Vec<String> = (0..200).map(|i| format!("c{}", (i * 3) % n)).collect();
            let (a, b): (Vec<&str>, Vec<&str>) =
                (a.iter().map(|s| s.as_str()).collect(), b.iter().map(|s| s.as_str()).collect());
            let coded = code_categories(&[&a, &b]);
            let mut all: Vec<&str> = a.iter().chain(&b).copied().collect();
            all.sort();
            all.dedup();
            assert_eq!(coded.categories.len(), all.len());
            for (column, values) in coded.codes.iter().zip([&a, &b]) {
                for (c, v) in column.iter().zip(values.iter()) {
                    assert_eq!(coded.categories[*c], *v);
                }
            }
            assert!(coded.categories.windows(2).all(|w| w[0] != w[1]));
        }
        assert_eq!(code_categories(&[&["10", "2", "1", "2"]]).codes, vec![vec![2, 1, 0, 1]]);
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }

    #[test]
    fn z_quantiles() {
        assert!((z_for_level(0.95) - 1.959_963_984_540_054).abs() < 1e-9);
        assert!((z_for_level(0.90) - 1.644_853_626_951_472_7).abs() < 1e-9);
    }
}
