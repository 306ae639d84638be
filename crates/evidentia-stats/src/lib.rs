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
    let distinct: std::collections::BTreeSet<&str> = values.into_iter().collect();
    let mut cats: Vec<String> = distinct.into_iter().map(str::to_string).collect();
    if cats.iter().all(|c| frame::parse_number(c).is_some()) {
        cats.sort_by(|a, b| {
            let (x, y) = (frame::parse_number(a).unwrap_or(0.0), frame::parse_number(b).unwrap_or(0.0));
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        });
    }
    cats
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
