//! "Table 1": baseline characteristics by group — n, mean ± SD, median [IQR] and missing for
//! continuous variables; counts and percentages for categorical ones.

use polars::prelude::DataFrame;

use super::continuous::{mean, variance};
use super::frame::{bad, parse_number, text_column, Rows, StatsResult};
use super::{code_categories, sorted_categories, Coded};

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GroupSize {
    pub name: String,
    pub n: usize,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Summary {
    pub n: usize,
    pub missing: usize,
    pub mean: Option<f64>,
    pub sd: Option<f64>,
    pub median: Option<f64>,
    pub q1: Option<f64>,
    pub q3: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Continuous {
    pub name: String,
    pub overall: Summary,
    pub by_group: Vec<Summary>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Counts {
    pub n: usize,
    pub missing: usize,
    pub counts: Vec<u64>,
    pub percents: Vec<Option<f64>>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Categorical {
    pub name: String,
    /// Numbers when every level is a number, else strings (the categories rule).
    pub levels: Vec<serde_json::Value>,
    #[serde(skip)]
    pub level_names: Vec<String>,
    pub overall: Counts,
    pub by_group: Vec<Counts>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Table1 {
    pub n_missing: usize,
    pub groups: Vec<GroupSize>,
    pub continuous: Vec<Continuous>,
    pub categorical: Vec<Categorical>,
}

/// The q-quantile by linear interpolation between order statistics (Hyndman & Fan 1996 type 7,
/// the default of R `quantile` and numpy); `sorted` must be sorted and non-empty.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q;
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

fn summarise(values: &[Option<f64>]) -> Summary {
    let mut xs: Vec<f64> = values.iter().flatten().copied().collect();
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    Summary {
        n,
        missing: values.len() - n,
        mean: (n > 0).then(|| mean(&xs)),
        sd: (n > 1).then(|| variance(&xs).sqrt()),
        median: (n > 0).then(|| quantile(&xs, 0.5)),
        q1: (n > 0).then(|| quantile(&xs, 0.25)),
        q3: (n > 0).then(|| quantile(&xs, 0.75)),
    }
}

fn count(values: &[&str], levels: &[String]) -> Counts {
    let mut counts = vec![0u64; levels.len()];
    let mut missing = 0;
    for v in values {
        match levels.iter().position(|l| l == v) {
            Some(i) => counts[i] += 1,
            None => missing += 1,
        }
    }
    let n = values.len() - missing;
    let percents = counts.iter().map(|&c| (n > 0).then(|| 100.0 * c as f64 / n as f64)).collect();
    Counts { n, missing, counts, percents }
}

/// Baseline characteristics by `group`. Rows without a group are dropped (n_missing); an empty
/// variable value is counted in that variable's `missing`, not dropped.
pub fn table1(df: &DataFrame, group: &str, continuous: &[String], categorical: &[String]) -> StatsResult<Table1> {
    if continuous.is_empty() && categorical.is_empty() {
        return Err(bad("table1: give --continuous and/or --categorical columns"));
    }
    let rows = Rows::complete(df, &[group])?;
    let labels = rows.text(group);
    let Coded { categories: names, codes } = code_categories(&[&labels]);
    super::check_categories(&format!("column \"{group}\""), names.len())?;
    let gi = codes.into_iter().next().unwrap_or_default();
    let groups = names
        .iter()
        .enumerate()
        .map(|(g, name)| GroupSize { name: name.clone(), n: gi.iter().filter(|&&x| x == g).count() })
        .collect();
    let by_group =
        |k: usize| -> Vec<Vec<usize>> { (0..k).map(|g| (0..gi.len()).filter(|&r| gi[r] == g).collect()).collect() };
    let members = by_group(names.len());

    let mut cont = Vec::new();
    for c in continuous {
        let raw = column_text(df, &rows, c)?;
        let values = raw
            .iter()
            .enumerate()
            .map(|(k, v)| match v {
                None => Ok(None),
                Some(s) => parse_number(s)
                    .map(Some)
                    .ok_or_else(|| bad(format!("column \"{c}\", row {}: \"{s}\" is not a number", rows.row_number(k)))),
            })
            .collect::<StatsResult<Vec<Option<f64>>>>()?;
        cont.push(Continuous {
            name: c.clone(),
            overall: summarise(&values),
            by_group: members.iter().map(|m| summarise(&m.iter().map(|&r| values[r]).collect::<Vec<_>>())).collect(),
        });
    }
    let mut cat = Vec::new();
    for c in categorical {
        let raw = column_text(df, &rows, c)?;
        let values: Vec<&str> = raw.iter().map(|v| v.unwrap_or("")).collect();
        let levels = sorted_categories(values.iter().copied().filter(|v| !v.is_empty()));
        super::check_categories(&format!("column \"{c}\""), levels.len())?;
        cat.push(Categorical {
            name: c.clone(),
            overall: count(&values, &levels),
            by_group: members
                .iter()
                .map(|m| count(&m.iter().map(|&r| values[r]).collect::<Vec<_>>(), &levels))
                .collect(),
            levels: super::category_values(&levels),
            level_names: levels,
        });
    }
    Ok(Table1 { n_missing: rows.n_missing, groups, continuous: cont, categorical: cat })
}

/// A variable's trimmed values in the rows that have a group (None when empty).
fn column_text<'a>(df: &'a DataFrame, rows: &Rows, name: &str) -> StatsResult<Vec<Option<&'a str>>> {
    let col: Vec<Option<&str>> =
        text_column(df, name)?.iter().map(|v| v.map(str::trim).filter(|s| !s.is_empty())).collect();
    Ok(rows.index.iter().map(|&i| col[i]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let xs = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&xs, 0.25), 1.75);
        assert_eq!(quantile(&xs, 0.5), 2.5);
        assert_eq!(quantile(&xs, 0.75), 3.25);
    }
}
