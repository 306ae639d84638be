//! Agreement between two raters on a categorical variable: the confusion matrix, percent
//! agreement and Cohen's kappa (unweighted, linear, quadratic) with its asymptotic SE and CI.

use super::{sorted_categories, z_for_level};

/// Counts of (rater A's category, rater B's category); rows are A, columns B, both in the order
/// of `categories`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ConfusionMatrix {
    pub categories: Vec<String>,
    pub counts: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    /// Pairs with an empty value on either side are not counted (they are "missing").
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)> + Clone) -> Self {
        let used = || pairs.clone().into_iter().filter(|(a, b)| !a.trim().is_empty() && !b.trim().is_empty());
        let categories = sorted_categories(used().flat_map(|(a, b)| [a, b]));
        let k = categories.len();
        let mut counts = vec![vec![0u64; k]; k];
        for (a, b) in used() {
            let i = categories.iter().position(|c| c == a);
            let j = categories.iter().position(|c| c == b);
            if let (Some(i), Some(j)) = (i, j) {
                counts[i][j] += 1;
            }
        }
        ConfusionMatrix { categories, counts }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weights {
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
