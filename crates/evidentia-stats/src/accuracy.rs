//! Diagnostic accuracy against a reference: the 2×2 table with sensitivity, specificity, PPV,
//! NPV and accuracy (with the FDA's PPA / NPA / OPA names for a non-reference comparator), and the
//! ROC curve with DeLong's AUC variance, Youden's cut-off and DeLong's paired test.

use polars::prelude::DataFrame;
use statrs::distribution::{ContinuousCDF, Normal};

use super::continuous::midranks;
use super::frame::{bad, check_level, parse_number, Rows, StatsResult};
use super::proportion::Proportion;
use super::z_for_level;

/// How a column's values become positive or negative: one value is positive (compared as text,
/// or as numbers when both are numbers), or numbers at or above a cut-off are.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Positive {
    Value(String),
    AtLeast(f64),
}

impl Default for Positive {
    fn default() -> Self {
        Positive::Value("1".into())
    }
}

impl Positive {
    fn classify(&self, rows: &Rows, column: &str) -> StatsResult<Vec<bool>> {
        match self {
            Positive::Value(p) => {
                let p = p.trim();
                let pn = parse_number(p);
                Ok(rows
                    .text(column)
                    .iter()
                    .map(|v| *v == p || matches!((pn, parse_number(v)), (Some(a), Some(b)) if a == b))
                    .collect())
            }
            Positive::AtLeast(cut) => Ok(rows.numbers(column)?.iter().map(|v| v >= cut).collect()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Diagnostic {
    pub n: usize,
    pub n_missing: usize,
    pub tp: u64,
    pub fp: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
    pub tn: u64,
    pub sensitivity: Proportion,
    pub specificity: Proportion,
    pub ppv: Proportion,
    pub npv: Proportion,
    pub accuracy: Proportion,
    /// Positive, negative and overall percent agreement: sensitivity, specificity and accuracy
    /// under the names of the FDA's guidance on diagnostic tests (2007) for a comparator that is
    /// not a reference standard.
    pub ppa: Proportion,
    pub npa: Proportion,
    pub opa: Proportion,
}

/// The 2×2 table of a test against a reference, each proportion with Wilson and Clopper-Pearson
/// intervals (see `proportion`).
pub fn diagnostic(
    df: &DataFrame,
    test: &str,
    reference: &str,
    test_positive: &Positive,
    reference_positive: &Positive,
    level: f64,
) -> StatsResult<Diagnostic> {
    let level = check_level(level)?;
    let rows = Rows::complete(df, &[test, reference])?;
    let t = test_positive.classify(&rows, test)?;
    let r = reference_positive.classify(&rows, reference)?;
    let (mut tp, mut fp, mut fn_, mut tn) = (0u64, 0u64, 0u64, 0u64);
    for (t, r) in t.iter().zip(&r) {
        match (t, r) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fn_ += 1,
            (false, false) => tn += 1,
        }
    }
    let sensitivity = Proportion::new(tp, tp + fn_, level);
    let specificity = Proportion::new(tn, tn + fp, level);
    let accuracy = Proportion::new(tp + tn, tp + fp + fn_ + tn, level);
    Ok(Diagnostic {
        n: rows.len(),
        n_missing: rows.n_missing,
        tp,
        fp,
        fn_,
        tn,
        sensitivity,
        specificity,
        ppv: Proportion::new(tp, tp + fp, level),
        npv: Proportion::new(tn, tn + fn_, level),
        accuracy,
        ppa: sensitivity,
        npa: specificity,
        opa: accuracy,
    })
}

/// Scores of the positive and the negative subjects.
struct Scored {
    n_missing: usize,
    positives: Vec<Vec<f64>>,
    negatives: Vec<Vec<f64>>,
}

fn scored(df: &DataFrame, scores: &[&str], reference: &str, positive: &Positive) -> StatsResult<Scored> {
    let mut used = scores.to_vec();
    used.push(reference);
    let rows = Rows::complete(df, &used)?;
    let truth = positive.classify(&rows, reference)?;
    let mut positives = vec![Vec::new(); scores.len()];
    let mut negatives = vec![Vec::new(); scores.len()];
    for (s, name) in scores.iter().enumerate() {
        for (v, is_pos) in rows.numbers(name)?.into_iter().zip(&truth) {
            if *is_pos {
                positives[s].push(v);
            } else {
                negatives[s].push(v);
            }
        }
    }
    let (m, n) = (positives[0].len(), negatives[0].len());
    if m == 0 || n == 0 {
        let which = if m == 0 { "positive" } else { "negative" };
        return Err(bad(format!(
            "column \"{reference}\": no {which} subjects among {} rows — fewer than 2 categories, the ROC curve needs both",
            rows.len()
        )));
    }
    Ok(Scored { n_missing: rows.n_missing, positives, negatives })
}

/// DeLong's placement values by the mid-rank algorithm of Sun & Xu (2014, IEEE Signal Process
/// Lett 21:1389), O(N log N): with T_z the mid-ranks of all scores, T_x within positives and
/// T_y within negatives, V10_i = (T_z_i − T_x_i)/n for positive i, V01_j = 1 − (T_z_j − T_y_j)/m
/// for negative j, and AUC = mean(V10).
fn placements(pos: &[f64], neg: &[f64]) -> (f64, Vec<f64>, Vec<f64>) {
    let (m, n) = (pos.len(), neg.len());
    let all: Vec<f64> = pos.iter().chain(neg).copied().collect();
    let tz = midranks(&all);
    let tx = midranks(pos);
    let ty = midranks(neg);
    let v10: Vec<f64> = (0..m).map(|i| (tz[i] - tx[i]) / n as f64).collect();
    let v01: Vec<f64> = (0..n).map(|j| 1.0 - (tz[m + j] - ty[j]) / m as f64).collect();
    let auc = v10.iter().sum::<f64>() / m as f64;
    (auc, v10, v01)
}

/// Sample covariance (n − 1 in the denominator); 0 for fewer than two values.
fn covariance(a: &[f64], b: &[f64]) -> f64 {
    if a.len() < 2 {
        return 0.0;
    }
    let (ma, mb) = (super::continuous::mean(a), super::continuous::mean(b));
    a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum::<f64>() / (a.len() as f64 - 1.0)
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Roc {
    pub n_positive: usize,
    pub n_negative: usize,
    pub n_missing: usize,
    pub auc: f64,
    pub se: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub youden_threshold: f64,
    pub youden_sensitivity: f64,
    pub youden_specificity: f64,
    /// (1 − specificity, sensitivity) from the highest threshold down, starting at (0, 0).
    #[serde(skip)]
    pub curve: Vec<(f64, f64)>,
}

/// The ROC curve of a score against a reference: AUC (the Mann–Whitney statistic) with DeLong,
/// DeLong & Clarke-Pearson's (1988, Biometrics 44:837) variance S10/m + S01/n from the
/// placement values' sample variances, CI auc ∓ z·se clipped to [0, 1]; Youden's J = sens +
/// spec − 1 maximised over the observed scores as thresholds (score ≥ threshold is positive;
/// ties in J go to the larger threshold).
pub fn roc(df: &DataFrame, score: &str, reference: &str, positive: &Positive, level: f64) -> StatsResult<Roc> {
    let level = check_level(level)?;
    let s = scored(df, &[score], reference, positive)?;
    let (pos, neg) = (&s.positives[0], &s.negatives[0]);
    let (m, n) = (pos.len(), neg.len());
    let (auc, v10, v01) = placements(pos, neg);
    let se = (covariance(&v10, &v10) / m as f64 + covariance(&v01, &v01) / n as f64).sqrt();
    let z = z_for_level(level);

    // Sweep thresholds from the highest score down; counts are integers so J compares exactly.
    let mut all: Vec<(f64, bool)> = pos.iter().map(|&v| (v, true)).chain(neg.iter().map(|&v| (v, false))).collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mi, ni) = (m as i64, n as i64);
    let (mut tp, mut fp) = (0i64, 0i64);
    let mut best: Option<(i64, f64, i64, i64)> = None;
    let mut curve = vec![(0.0, 0.0)];
    let mut i = 0;
    while i < all.len() {
        let t = all[i].0;
        while i < all.len() && all[i].0 == t {
            if all[i].1 {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        curve.push((fp as f64 / n as f64, tp as f64 / m as f64));
        // J·m·n = tp·n + tn·m − m·n.
        let j = tp * ni + (ni - fp) * mi - mi * ni;
        if best.is_none_or(|b| j > b.0) {
            best = Some((j, t, tp, fp));
        }
    }
    let (_, threshold, btp, bfp) = best.unwrap_or((0, f64::NAN, 0, 0));
    Ok(Roc {
        n_positive: m,
        n_negative: n,
        n_missing: s.n_missing,
        auc,
        se,
        ci_low: (auc - z * se).clamp(0.0, 1.0),
        ci_high: (auc + z * se).clamp(0.0, 1.0),
        youden_threshold: threshold,
        youden_sensitivity: btp as f64 / m as f64,
        youden_specificity: (n as i64 - bfp) as f64 / n as f64,
        curve,
    })
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RocCompare {
    pub n_positive: usize,
    pub n_negative: usize,
    pub n_missing: usize,
    pub auc_a: f64,
    pub auc_b: f64,
    pub se_a: f64,
    pub se_b: f64,
    pub difference: f64,
    pub se_difference: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub z: Option<f64>,
    pub p_value: Option<f64>,
}

/// DeLong et al.'s (1988) test of two correlated AUCs on the same subjects: the covariance of the
/// two AUCs is S10_ab/m + S01_ab/n from the placement values (as R pROC `roc.test(method =
/// "delong")`); z = (A − B)/se(A − B), two-sided normal p.
pub fn roc_compare(
    df: &DataFrame,
    score_a: &str,
    score_b: &str,
    reference: &str,
    positive: &Positive,
    level: f64,
) -> StatsResult<RocCompare> {
    let level = check_level(level)?;
    let s = scored(df, &[score_a, score_b], reference, positive)?;
    let (m, n) = (s.positives[0].len() as f64, s.negatives[0].len() as f64);
    let (auc_a, x_a, y_a) = placements(&s.positives[0], &s.negatives[0]);
    let (auc_b, x_b, y_b) = placements(&s.positives[1], &s.negatives[1]);
    let var_a = covariance(&x_a, &x_a) / m + covariance(&y_a, &y_a) / n;
    let var_b = covariance(&x_b, &x_b) / m + covariance(&y_b, &y_b) / n;
    let cov = covariance(&x_a, &x_b) / m + covariance(&y_a, &y_b) / n;
    let difference = auc_a - auc_b;
    let se_difference = (var_a + var_b - 2.0 * cov).max(0.0).sqrt();
    let zq = z_for_level(level);
    let z = (se_difference > 0.0).then(|| difference / se_difference);
    Ok(RocCompare {
        n_positive: m as usize,
        n_negative: n as usize,
        n_missing: s.n_missing,
        auc_a,
        auc_b,
        se_a: var_a.sqrt(),
        se_b: var_b.sqrt(),
        difference,
        se_difference,
        ci_low: difference - zq * se_difference,
        ci_high: difference + zq * se_difference,
        z,
        p_value: z.map(two_sided_p),
    })
}

/// Two-sided p-value of a standard normal statistic.
pub fn two_sided_p(z: f64) -> f64 {
    2.0 * Normal::standard().sf(z.abs())
}
