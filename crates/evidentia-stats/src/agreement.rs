//! Agreement between two raters on a categorical variable: the confusion matrix, percent
//! agreement and Cohen's kappa (unweighted, linear, quadratic) with its asymptotic SE and CI.

use polars::prelude::DataFrame;
use statrs::distribution::{Binomial, DiscreteCDF};

use super::accuracy::two_sided_p;
use super::frame::{bad, check_level, parse_number, Rows, StatsResult};
use super::proportion::{wilson, Proportion};
use super::{category_values, code_categories, z_for_level, Coded};

/// Counts of (rater A's category, rater B's category); rows are A, columns B, both in the order
/// of `categories`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ConfusionMatrix {
    pub categories: Vec<String>,
    pub counts: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    /// Pairs with an empty value on either side are not counted (they are "missing").
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let (a, b): (Vec<&str>, Vec<&str>) =
            pairs.into_iter().filter(|(a, b)| !a.trim().is_empty() && !b.trim().is_empty()).unzip();
        Self::from_coded(code_categories(&[&a, &b]))
    }
    /// Counts of pairs already coded (`code_categories` of two columns).
    fn from_coded(coded: Coded) -> Self {
        let k = coded.categories.len();
        let mut counts = vec![vec![0u64; k]; k];
        for (&i, &j) in coded.codes[0].iter().zip(&coded.codes[1]) {
            counts[i][j] += 1;
        }
        ConfusionMatrix { categories: coded.categories, counts }
    }
    /// Counts in a given category order (an ordinal scale's, as a schema lists it); pairs with a
    /// value outside `categories` or empty on either side are not counted.
    pub fn from_pairs_in<'a>(categories: &[String], pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let k = categories.len();
        let mut counts = vec![vec![0u64; k]; k];
        for (a, b) in pairs {
            let i = categories.iter().position(|c| c == a);
            let j = categories.iter().position(|c| c == b);
            if let (Some(i), Some(j)) = (i, j) {
                counts[i][j] += 1;
            }
        }
        ConfusionMatrix { categories: categories.to_vec(), counts }
    }
    pub fn n(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }
    /// Share of pairs on the diagonal; None without pairs.
    pub fn percent_agreement(&self) -> Option<f64> {
        let n = self.n();
        (n > 0).then(|| (0..self.categories.len()).map(|i| self.counts[i][i]).sum::<u64>() as f64 / n as f64)
    }
}

/// Agreement of two readers on one field: the slides both rated, as a confusion matrix (rows
/// reader A), percent agreement, and Cohen's kappa.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReaderPair {
    pub reader_a: String,
    pub reader_b: String,
    pub matrix: ConfusionMatrix,
    pub percent_agreement: Option<f64>,
    pub kappa: Kappa,
}

/// Every pair of readers (in name order) on one categorical field. `ratings` maps reader →
/// item → category; an item counts for a pair when both rated it.
pub fn reader_pairs(
    categories: &[String],
    ratings: &std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    weights: Weights,
    level: f64,
) -> Vec<ReaderPair> {
    let readers: Vec<&String> = ratings.keys().collect();
    let mut out = Vec::new();
    for (i, a) in readers.iter().enumerate() {
        for b in &readers[i + 1..] {
            let (ra, rb) = (&ratings[*a], &ratings[*b]);
            let pairs = ra.iter().filter_map(|(item, va)| rb.get(item).map(|vb| (va.as_str(), vb.as_str())));
            let matrix = ConfusionMatrix::from_pairs_in(categories, pairs);
            out.push(ReaderPair {
                reader_a: (*a).clone(),
                reader_b: (*b).clone(),
                percent_agreement: matrix.percent_agreement(),
                kappa: cohen_kappa(&matrix, weights, level),
                matrix,
            });
        }
    }
    out
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Weights {
    #[default]
    None,
    Linear,
    Quadratic,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Kappa {
    pub n: u64,
    pub categories: Vec<String>,
    pub weights: Weights,
    pub observed_agreement: Option<f64>,
    pub expected_agreement: Option<f64>,
    pub kappa: Option<f64>,
    pub se: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
}

impl Weights {
    pub fn as_str(self) -> &'static str {
        match self {
            Weights::None => "none",
            Weights::Linear => "linear",
            Weights::Quadratic => "quadratic",
        }
    }
}

/// Agreement weight of categories at positions i and j of k (1 on the diagonal): linear
/// 1 − |i−j|/(k−1), quadratic 1 − (i−j)²/(k−1)² — positions, not values, as statsmodels,
/// scikit-learn and R irr.
fn weight(weights: Weights, i: usize, j: usize, k: usize) -> f64 {
    let d = i.abs_diff(j) as f64;
    let span = (k.max(2) - 1) as f64;
    match weights {
        Weights::None => f64::from(u8::from(i == j)),
        Weights::Linear => 1.0 - d / span,
        Weights::Quadratic => 1.0 - (d * d) / (span * span),
    }
}

/// Cohen's kappa (Cohen 1960; weighted: Cohen 1968) with the large-sample variance of
/// Fleiss, Cohen & Everitt (1969, Psychol Bull 72:323, eq. 9 / 15), computed as statsmodels'
/// `cohens_kappa` (`std_kappa`); CI = kappa ∓ z·se at `level`. With agreement weights w:
/// p_o = Σ w_ij p_ij, p_e = Σ w_ij p_i. p_.j, kappa = (p_o − p_e)/(1 − p_e);
/// var = [Σ p_ij (w_ij − (w̄_i. + w̄_.j)(1 − kappa))² − (kappa − p_e(1 − kappa))²] / (n (1 − p_e)²),
/// where w̄_i. = Σ_j p_.j w_ij and w̄_.j = Σ_i p_i. w_ij. Undefined values (no pairs, p_e = 1)
/// are None.
pub fn cohen_kappa(m: &ConfusionMatrix, weights: Weights, level: f64) -> Kappa {
    let k = m.categories.len();
    let n = m.n();
    let mut out = Kappa {
        n,
        categories: m.categories.clone(),
        weights,
        observed_agreement: None,
        expected_agreement: None,
        kappa: None,
        se: None,
        ci_low: None,
        ci_high: None,
    };
    if n == 0 {
        return out;
    }
    let nf = n as f64;
    let p: Vec<Vec<f64>> = m.counts.iter().map(|r| r.iter().map(|&c| c as f64 / nf).collect()).collect();
    let row: Vec<f64> = p.iter().map(|r| r.iter().sum()).collect();
    let col: Vec<f64> = (0..k).map(|j| p.iter().map(|r| r[j]).sum()).collect();
    let w = |i, j| weight(weights, i, j, k);
    let (mut po, mut pe) = (0.0, 0.0);
    for i in 0..k {
        for j in 0..k {
            po += w(i, j) * p[i][j];
            pe += w(i, j) * row[i] * col[j];
        }
    }
    out.observed_agreement = Some(po);
    out.expected_agreement = Some(pe);
    if (1.0 - pe).abs() < 1e-15 {
        return out;
    }
    let kappa = (po - pe) / (1.0 - pe);
    let w_row: Vec<f64> = (0..k).map(|i| (0..k).map(|j| col[j] * w(i, j)).sum()).collect();
    let w_col: Vec<f64> = (0..k).map(|j| (0..k).map(|i| row[i] * w(i, j)).sum()).collect();
    let mut term = 0.0;
    for i in 0..k {
        for j in 0..k {
            term += p[i][j] * (w(i, j) - (w_row[i] + w_col[j]) * (1.0 - kappa)).powi(2);
        }
    }
    let var = (term - (kappa - pe * (1.0 - kappa)).powi(2)) / (nf * (1.0 - pe).powi(2));
    let se = var.max(0.0).sqrt();
    let z = z_for_level(level);
    out.kappa = Some(kappa);
    out.se = Some(se);
    out.ci_low = Some(kappa - z * se);
    out.ci_high = Some(kappa + z * se);
    out
}

/// `kappa` of the statistics contract: the two columns' confusion matrix and Cohen's kappa.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct KappaResult {
    pub n: u64,
    pub n_missing: usize,
    pub categories: Vec<serde_json::Value>,
    pub observed_agreement: Option<f64>,
    pub expected_agreement: Option<f64>,
    pub kappa: Option<f64>,
    pub se: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    #[serde(skip)]
    pub matrix: ConfusionMatrix,
    /// The two columns (rows of the matrix are `a`).
    #[serde(skip)]
    pub names: (String, String),
}

/// Fewer than two categories leave kappa undefined (expected agreement is 1): an input error.
fn need_two_categories(columns: &str, categories: &[String]) -> StatsResult<()> {
    if categories.len() < 2 {
        let only = categories.first().map(|c| format!(" (only \"{c}\")")).unwrap_or_default();
        return Err(bad(format!(
            "{columns}: fewer than 2 categories{only} — kappa is undefined when every rating is the same category"
        )));
    }
    Ok(())
}

/// Cohen's kappa between two columns of a frame (see `cohen_kappa`). The categories are the
/// values either column holds, sorted (the contract's order) or, when `order` is given, in that
/// order (an ordinal scale as its schema lists it; it decides the weights' positions): every
/// value must then be one of `order`, and categories nobody used are left out as they are
/// without it.
pub fn kappa(
    df: &DataFrame,
    a: &str,
    b: &str,
    weights: Weights,
    order: &[String],
    level: f64,
) -> StatsResult<KappaResult> {
    let level = check_level(level)?;
    let rows = Rows::complete(df, &[a, b])?;
    let (va, vb) = (rows.text(a), rows.text(b));
    let coded = code_categories(&[&va, &vb]);
    super::check_categories(&format!("columns \"{a}\" and \"{b}\""), coded.categories.len())?;
    let matrix = if order.is_empty() {
        ConfusionMatrix::from_coded(coded)
    } else {
        for (column, values) in [(a, &va), (b, &vb)] {
            if let Some(v) = values.iter().find(|v| !order.iter().any(|c| c == *v)) {
                return Err(bad(format!(
                    "column \"{column}\": the value \"{v}\" is not one of --categories ({})",
                    order.join(",")
                )));
            }
        }
        let used: Vec<String> = order.iter().filter(|c| coded.categories.contains(c)).cloned().collect();
        ConfusionMatrix::from_pairs_in(&used, va.iter().copied().zip(vb.iter().copied()))
    };
    need_two_categories(&format!("columns \"{a}\" and \"{b}\""), &matrix.categories)?;
    let k = cohen_kappa(&matrix, weights, level);
    Ok(KappaResult {
        n: k.n,
        n_missing: rows.n_missing,
        categories: category_values(&matrix.categories),
        observed_agreement: k.observed_agreement,
        expected_agreement: k.expected_agreement,
        kappa: k.kappa,
        se: k.se,
        ci_low: k.ci_low,
        ci_high: k.ci_high,
        matrix,
        names: (a.to_string(), b.to_string()),
    })
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Fleiss {
    pub n_subjects: usize,
    pub n_raters: usize,
    pub n_missing: usize,
    pub categories: Vec<serde_json::Value>,
    pub kappa: Option<f64>,
    pub se: Option<f64>,
    pub z: Option<f64>,
    pub p_value: Option<f64>,
}

/// Fleiss' (1971, Psychol Bull 76:378) kappa for N subjects each rated by the same number n of
/// raters: P̄ = mean over subjects of (Σ_j n_ij² − n)/(n(n − 1)), P_e = Σ_j p_j², kappa =
/// (P̄ − P_e)/(1 − P_e); its SE under H0 (Fleiss, Nee & Landis 1979, Psychol Bull 86:974):
/// se² = 2/(N n (n − 1)) · [(Σ p_j q_j)² − Σ p_j q_j (q_j − p_j)] / (Σ p_j q_j)², z = kappa/se
/// (as R irr `kappam.fleiss`; kappa as statsmodels `fleiss_kappa`).
pub fn fleiss(df: &DataFrame, raters: &[String], level: f64) -> StatsResult<Fleiss> {
    check_level(level)?;
    if raters.len() < 2 {
        return Err(bad("--raters: give at least two rater columns, separated by commas"));
    }
    let names: Vec<&str> = raters.iter().map(String::as_str).collect();
    let rows = Rows::complete(df, &names)?;
    let values: Vec<Vec<&str>> = names.iter().map(|c| rows.text(c)).collect();
    let Coded { categories, codes } = code_categories(&values.iter().map(Vec::as_slice).collect::<Vec<_>>());
    need_two_categories(&format!("columns {}", raters.join(",")), &categories)?;
    super::check_categories(&format!("columns {}", raters.join(",")), categories.len())?;
    let (n_sub, n_r, k) = (rows.len(), names.len(), categories.len());
    let mut totals = vec![0f64; k];
    let mut p_bar = 0.0;
    let mut counts = vec![0f64; k];
    for s in 0..n_sub {
        counts.iter_mut().for_each(|c| *c = 0.0);
        for col in &codes {
            counts[col[s]] += 1.0;
        }
        let nr = n_r as f64;
        p_bar += (counts.iter().map(|c| c * c).sum::<f64>() - nr) / (nr * (nr - 1.0));
        for (t, c) in totals.iter_mut().zip(&counts) {
            *t += c;
        }
    }
    let (nf, nr) = (n_sub as f64, n_r as f64);
    p_bar /= nf;
    let p: Vec<f64> = totals.iter().map(|t| t / (nf * nr)).collect();
    let pe: f64 = p.iter().map(|v| v * v).sum();
    let kappa = (pe < 1.0).then(|| (p_bar - pe) / (1.0 - pe));
    let pq: f64 = p.iter().map(|v| v * (1.0 - v)).sum();
    let se = (pq > 0.0).then(|| {
        let inner = pq * pq - p.iter().map(|v| v * (1.0 - v) * ((1.0 - v) - v)).sum::<f64>();
        (2.0 / (nf * nr * (nr - 1.0)) * inner / (pq * pq)).max(0.0).sqrt()
    });
    let z = kappa.zip(se).filter(|(_, s)| *s > 0.0).map(|(k, s)| k / s);
    Ok(Fleiss {
        n_subjects: n_sub,
        n_raters: n_r,
        n_missing: rows.n_missing,
        categories: category_values(&categories),
        kappa,
        se,
        z,
        p_value: z.map(two_sided_p),
    })
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PairedAgreement {
    pub n: usize,
    pub n_missing: usize,
    pub agreement_a: Proportion,
    pub agreement_b: Proportion,
    pub only_a: u64,
    pub only_b: u64,
    pub difference: Option<f64>,
    pub difference_ci_low: Option<f64>,
    pub difference_ci_high: Option<f64>,
    pub mcnemar_p_value: Option<f64>,
}

/// Whether two values are the same category: equal text, or equal numbers.
fn same(a: &str, b: &str) -> bool {
    a == b || matches!((parse_number(a), parse_number(b)), (Some(x), Some(y)) if x == y)
}

/// Agreement of two paired reads (e.g. unaided `a`, AI-assisted `b`) with a reference on the
/// same subjects; the difference b − a with Newcombe's (1998, Stat Med 17:2635, method 10) hybrid
/// score interval for paired proportions: from the Wilson intervals (l_a, u_a), (l_b, u_b) and
/// φ = (AD − BC)/√((A+B)(C+D)(A+C)(B+D)) of the 2×2 agreement table (0 when a margin is 0; a
/// positive AD − BC is first reduced by n/2, not below 0),
/// L = θ − √((p_b − l_b)² − 2φ(p_b − l_b)(u_a − p_a) + (u_a − p_a)²),
/// U = θ + √((u_b − p_b)² − 2φ(u_b − p_b)(p_a − l_a) + (p_a − l_a)²); and McNemar's exact test,
/// the two-sided binomial test of the discordant pairs, min(1, 2·P(X ≤ min(b, c))).
pub fn paired_agreement(df: &DataFrame, reference: &str, a: &str, b: &str, level: f64) -> StatsResult<PairedAgreement> {
    let level = check_level(level)?;
    let rows = Rows::complete(df, &[reference, a, b])?;
    let (r, va, vb) = (rows.text(reference), rows.text(a), rows.text(b));
    // Newcombe's table with b as "test 1": both agree, only b, only a, neither.
    let (mut both, mut only_a, mut only_b, mut neither) = (0u64, 0u64, 0u64, 0u64);
    for i in 0..rows.len() {
        match (same(va[i], r[i]), same(vb[i], r[i])) {
            (true, true) => both += 1,
            (true, false) => only_a += 1,
            (false, true) => only_b += 1,
            (false, false) => neither += 1,
        }
    }
    let n = rows.len() as u64;
    let agreement_a = Proportion::new(both + only_a, n, level);
    let agreement_b = Proportion::new(both + only_b, n, level);
    let (mut difference, mut lo, mut hi) = (None, None, None);
    if n > 0 {
        let nf = n as f64;
        let (pa, pb) = ((both + only_a) as f64 / nf, (both + only_b) as f64 / nf);
        let (la, ua) = wilson(both + only_a, n, level);
        let (lb, ub) = wilson(both + only_b, n, level);
        let (e, f, g, h) = (both as f64, only_b as f64, only_a as f64, neither as f64);
        let margins = (e + f) * (g + h) * (e + g) * (f + h);
        // Newcombe's φ: a positive AD − BC is reduced by n/2 (not below 0), as in Newcombe (1998)
        // and Altman et al., Statistics with Confidence (2000), ch. 6.
        let cross = e * h - f * g;
        let cross = if cross > 0.0 { (cross - nf / 2.0).max(0.0) } else { cross };
        let phi = if margins > 0.0 { cross / margins.sqrt() } else { 0.0 };
        let theta = pb - pa;
        let delta = ((pb - lb).powi(2) - 2.0 * phi * (pb - lb) * (ua - pa) + (ua - pa).powi(2)).max(0.0).sqrt();
        let eps = ((ub - pb).powi(2) - 2.0 * phi * (ub - pb) * (pa - la) + (pa - la).powi(2)).max(0.0).sqrt();
        difference = Some(theta);
        lo = Some(theta - delta);
        hi = Some(theta + eps);
    }
    let discordant = only_a + only_b;
    let mcnemar = if discordant == 0 {
        1.0
    } else {
        let tail = Binomial::new(0.5, discordant).map(|d| d.cdf(only_a.min(only_b))).unwrap_or(1.0);
        (2.0 * tail).min(1.0)
    };
    Ok(PairedAgreement {
        n: rows.len(),
        n_missing: rows.n_missing,
        agreement_a,
        agreement_b,
        only_a,
        only_b,
        difference,
        difference_ci_low: lo,
        difference_ci_high: hi,
        mcnemar_p_value: (n > 0).then_some(mcnemar),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(categories: &[&str], counts: &[&[u64]]) -> ConfusionMatrix {
        ConfusionMatrix {
            categories: categories.iter().map(|c| c.to_string()).collect(),
            counts: counts.iter().map(|r| r.to_vec()).collect(),
        }
    }

    fn close(a: Option<f64>, b: f64, what: &str) {
        let a = a.unwrap_or_else(|| panic!("{what} is None"));
        assert!((a - b).abs() < 1e-9, "{what}: {a} vs {b}");
    }

    #[test]
    fn pairs_make_the_matrix_and_missing_pairs_are_left_out() {
        let a = ["2", "1", "10", "", "1"];
        let b = ["2", "2", "10", "1", "1"];
        let m = ConfusionMatrix::from_pairs(a.iter().copied().zip(b.iter().copied()));
        assert_eq!(m.categories, ["1", "2", "10"]);
        assert_eq!(m.counts, vec![vec![1, 1, 0], vec![0, 1, 0], vec![0, 0, 1]]);
        assert_eq!(m.n(), 4);
        assert_eq!(m.percent_agreement(), Some(0.75));
    }

    // Reference values: statsmodels 0.14 `cohens_kappa(table, wt=...)` (kappa, std_kappa), the
    // 95% CI as kappa ∓ 1.959964 · std_kappa; produced by tools/stats_reference.py.
    #[test]
    fn three_category_table_matches_statsmodels() {
        // 100 subjects rated by two raters into three ordered categories.
        let m = matrix(&["1", "2", "3"], &[&[53, 5, 2], &[11, 14, 5], &[1, 6, 3]]);
        let k = cohen_kappa(&m, Weights::None, 0.95);
        close(k.observed_agreement, 0.70, "po");
        close(k.expected_agreement, 0.475, "pe");
        close(k.kappa, 0.428_571_428_571_428_5, "kappa");
        close(k.se, 0.075_958_831_534_663_8, "se");
        close(k.ci_low, 0.279_694_854_455_742_1, "ci_low");
        close(k.ci_high, 0.577_448_002_687_114_9, "ci_high");
        let lin = cohen_kappa(&m, Weights::Linear, 0.95);
        close(lin.kappa, 0.492_307_692_307_692_2, "linear kappa");
        close(lin.se, 0.071_726_942_743_470_52, "linear se");
        close(lin.ci_low, 0.351_725_467_809_323_46, "linear ci_low");
        let quad = cohen_kappa(&m, Weights::Quadratic, 0.95);
        close(quad.kappa, 0.566_666_666_666_666_7, "quadratic kappa");
        close(quad.se, 0.078_724_093_219_443_25, "quadratic se");
        close(quad.ci_high, 0.720_963_054_092_349_3, "quadratic ci_high");
    }

    /// The statsmodels table above as two columns of an ordinal scale low < medium < high,
    /// which sorts as high, low, medium.
    fn ordinal_frame() -> DataFrame {
        let scale = ["low", "medium", "high"];
        let table: [[usize; 3]; 3] = [[53, 5, 2], [11, 14, 5], [1, 6, 3]];
        let mut csv = String::from("a,b\n");
        for (i, row) in table.iter().enumerate() {
            for (j, &n) in row.iter().enumerate() {
                csv.push_str(&format!("{},{}\n", scale[i], scale[j]).repeat(n));
            }
        }
        csv.push_str("low,\n");
        crate::frame::read_csv_bytes(csv.into_bytes()).unwrap()
    }

    #[test]
    fn a_given_category_order_decides_the_matrix_and_the_weights() {
        let df = ordinal_frame();
        let order: Vec<String> = ["low", "medium", "high"].iter().map(|c| c.to_string()).collect();
        let ordered = kappa(&df, "a", "b", Weights::Linear, &order, 0.95).unwrap();
        assert_eq!(ordered.matrix.categories, order);
        assert_eq!(ordered.matrix.counts, vec![vec![53, 5, 2], vec![11, 14, 5], vec![1, 6, 3]]);
        assert_eq!((ordered.n, ordered.n_missing), (100, 1));
        // The scale's positions give statsmodels' linear kappa of the same table.
        close(ordered.kappa, 0.492_307_692_307_692_2, "linear kappa in the scale's order");
        close(ordered.se, 0.071_726_942_743_470_52, "linear se in the scale's order");
        // Sorted (the contract's default) puts high first: other weights, another kappa.
        let sorted = kappa(&df, "a", "b", Weights::Linear, &[], 0.95).unwrap();
        assert_eq!(sorted.matrix.categories, ["high", "low", "medium"]);
        assert!((sorted.kappa.unwrap() - ordered.kappa.unwrap()).abs() > 0.01);
        // Unweighted kappa does not depend on the order.
        let a = kappa(&df, "a", "b", Weights::None, &order, 0.95).unwrap();
        close(a.kappa, 0.428_571_428_571_428_5, "unweighted kappa");
        // Categories nobody used are left out; a value outside the order is refused, named.
        let wider: Vec<String> = ["none", "low", "medium", "high"].iter().map(|c| c.to_string()).collect();
        assert_eq!(kappa(&df, "a", "b", Weights::None, &wider, 0.95).unwrap().matrix.categories, order);
        let e = kappa(&df, "a", "b", Weights::None, &order[..2], 0.95).unwrap_err().0;
        assert!(e.contains("column \"a\"") && e.contains("\"high\"") && e.contains("low,medium"), "{e}");
    }

    #[test]
    fn perfect_and_degenerate_agreement() {
        let m = matrix(&["a", "b"], &[&[5, 0], &[0, 5]]);
        let k = cohen_kappa(&m, Weights::None, 0.95);
        close(k.kappa, 1.0, "kappa");
        close(k.se, 0.0, "se");
        // One category used by both raters: expected agreement 1, kappa undefined.
        let one = matrix(&["a"], &[&[7]]);
        assert_eq!(cohen_kappa(&one, Weights::None, 0.95).kappa, None);
        let empty = ConfusionMatrix::from_pairs(std::iter::empty::<(&str, &str)>());
        assert_eq!(cohen_kappa(&empty, Weights::Linear, 0.95).observed_agreement, None);
    }

    #[test]
    fn reader_pairs_use_the_slides_both_rated_in_schema_order() {
        use std::collections::BTreeMap;
        let cats: Vec<String> = ["inflamed", "excluded", "desert"].iter().map(|c| c.to_string()).collect();
        let rate =
            |v: &[(&str, &str)]| v.iter().map(|(s, c)| (s.to_string(), c.to_string())).collect::<BTreeMap<_, _>>();
        let mut ratings = BTreeMap::new();
        ratings.insert(
            "kim".to_string(),
            rate(&[("S1", "inflamed"), ("S2", "desert"), ("S3", "excluded"), ("S4", "desert")]),
        );
        ratings.insert("lee".to_string(), rate(&[("S1", "inflamed"), ("S2", "excluded"), ("S3", "excluded")]));
        let pairs = reader_pairs(&cats, &ratings, Weights::None, 0.95);
        assert_eq!(pairs.len(), 1);
        let p = &pairs[0];
        assert_eq!((p.reader_a.as_str(), p.reader_b.as_str()), ("kim", "lee"));
        assert_eq!(p.matrix.categories, cats);
        // S4 was not rated by lee: 3 slides; kim's desert vs lee's excluded is off the diagonal.
        assert_eq!(p.matrix.counts, vec![vec![1, 0, 0], vec![0, 1, 0], vec![0, 1, 0]]);
        close(p.percent_agreement, 2.0 / 3.0, "percent agreement");
        assert_eq!(p.kappa.n, 3);
    }
}
