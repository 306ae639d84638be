//! Agreement on a continuous measure: Bland–Altman limits, Pearson and Spearman correlation,
//! Lin's concordance correlation coefficient, and the six intraclass correlations of Shrout &
//! Fleiss (1979).

use statrs::distribution::{ContinuousCDF, FisherSnedecor};

use super::frame::{bad, check_level, Rows, StatsResult};
use super::z_for_level;
use polars::prelude::DataFrame;

pub fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Sample variance (n − 1); NaN for fewer than two values.
pub fn variance(xs: &[f64]) -> f64 {
    let m = mean(xs);
    xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() as f64 - 1.0)
}

/// Mid-ranks (1-based; ties get the mean of the ranks they span), as scipy `rankdata`.
pub fn midranks(xs: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..xs.len()).collect();
    order.sort_by(|&a, &b| xs[a].total_cmp(&xs[b]));
    let mut ranks = vec![0.0; xs.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && xs[order[j + 1]] == xs[order[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = r;
        }
        i = j + 1;
    }
    ranks
}

/// Pearson's product-moment correlation; None when either variable is constant or n < 2.
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() < 2 {
        return None;
    }
    let (mx, my) = (mean(x), mean(y));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

/// Spearman's rho: Pearson's r of the mid-ranks (as scipy `spearmanr`).
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    pearson(&midranks(x), &midranks(y))
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BlandAltman {
    pub n: usize,
    pub n_missing: usize,
    pub mean_diff: Option<f64>,
    pub sd_diff: Option<f64>,
    pub loa_low: Option<f64>,
    pub loa_high: Option<f64>,
    pub pearson_r: Option<f64>,
    pub spearman_rho: Option<f64>,
    pub ccc: Option<f64>,
    pub ccc_ci_low: Option<f64>,
    pub ccc_ci_high: Option<f64>,
    /// (mean of a and b, a − b) per pair, for the plot.
    #[serde(skip)]
    pub points: Vec<(f64, f64)>,
    /// The two columns.
    #[serde(skip)]
    pub names: (String, String),
}

/// Bland & Altman (1986, Lancet i:307): bias = mean(a − b), limits of agreement
/// bias ∓ 1.96·SD(a − b) (SD with n − 1); Pearson and Spearman correlation; and Lin's (1989,
/// Biometrics 45:255) concordance correlation ρc = 2·s_ab / (s_a² + s_b² + (ā − b̄)²) with 1/n
/// moments, its CI tanh(atanh(ρc) ∓ z·s) with Lin's asymptotic variance of the z-transform
/// s² = [(1−r²)ρc²(1−ρc²)/r² + 2ρc³(1−ρc)u²/r − ρc⁴u⁴/(2r²)] / ((n−2)(1−ρc²)²), u the location
/// shift (b̄ − ā)/(s_a s_b)^½ — as DescTools `CCC` and epiR `epi.ccc`.
pub fn bland_altman(df: &DataFrame, a: &str, b: &str, level: f64) -> StatsResult<BlandAltman> {
    let level = check_level(level)?;
    let rows = Rows::complete(df, &[a, b])?;
    let (x, y) = (rows.numbers(a)?, rows.numbers(b)?);
    let n = x.len();
    if n == 0 {
        return Err(bad(format!("columns \"{a}\" and \"{b}\": no row has both values")));
    }
    let diffs: Vec<f64> = x.iter().zip(&y).map(|(p, q)| p - q).collect();
    let mean_diff = mean(&diffs);
    let sd = (n >= 2).then(|| variance(&diffs).sqrt());
    let nf = n as f64;
    let (mx, my) = (mean(&x), mean(&y));
    let sxx = x.iter().map(|v| (v - mx).powi(2)).sum::<f64>() / nf;
    let syy = y.iter().map(|v| (v - my).powi(2)).sum::<f64>() / nf;
    let sxy = x.iter().zip(&y).map(|(p, q)| (p - mx) * (q - my)).sum::<f64>() / nf;
    let denom = sxx + syy + (mx - my).powi(2);
    let ccc = (denom > 0.0).then(|| 2.0 * sxy / denom);
    let r = pearson(&x, &y);
    let (mut lo, mut hi) = (None, None);
    if let (Some(p), Some(r)) = (ccc, r) {
        if n > 2 && p.abs() < 1.0 && r != 0.0 {
            let u = (my - mx) / (sxx * syy).sqrt().sqrt();
            let var = ((1.0 - r * r) * p * p * (1.0 - p * p) / (r * r) + 2.0 * p.powi(3) * (1.0 - p) * u * u / r
                - 0.5 * p.powi(4) * u.powi(4) / (r * r))
                / (nf - 2.0);
            let s = var.max(0.0).sqrt() / (1.0 - p * p);
            let t = p.atanh();
            let z = z_for_level(level);
            lo = Some((t - z * s).tanh());
            hi = Some((t + z * s).tanh());
        }
    }
    Ok(BlandAltman {
        n,
        n_missing: rows.n_missing,
        mean_diff: Some(mean_diff),
        sd_diff: sd,
        loa_low: sd.map(|s| mean_diff - 1.96 * s),
        loa_high: sd.map(|s| mean_diff + 1.96 * s),
        pearson_r: r,
        spearman_rho: spearman(&x, &y),
        ccc,
        ccc_ci_low: lo,
        ccc_ci_high: hi,
        points: x.iter().zip(&y).map(|(p, q)| ((p + q) / 2.0, p - q)).collect(),
        names: (a.to_string(), b.to_string()),
    })
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Icc {
    pub n_subjects: usize,
    pub n_raters: usize,
    pub n_missing: usize,
    pub icc1: f64,
    pub icc1_ci_low: f64,
    pub icc1_ci_high: f64,
    pub icc2: f64,
    pub icc2_ci_low: f64,
    pub icc2_ci_high: f64,
    pub icc3: f64,
    pub icc3_ci_low: f64,
    pub icc3_ci_high: f64,
    pub icc1k: f64,
    pub icc1k_ci_low: f64,
    pub icc1k_ci_high: f64,
    pub icc2k: f64,
    pub icc2k_ci_low: f64,
    pub icc2k_ci_high: f64,
    pub icc3k: f64,
    pub icc3k_ci_low: f64,
    pub icc3k_ci_high: f64,
}

fn f_quantile(p: f64, d1: f64, d2: f64) -> f64 {
    FisherSnedecor::new(d1, d2).map(|f| f.inverse_cdf(p)).unwrap_or(f64::NAN)
}

/// Intraclass correlations ICC(1,1), ICC(2,1), ICC(3,1) and their k-rater means (Shrout &
/// Fleiss 1979, Psychol Bull 86:420, Table 1 and the F-based intervals of its eqs. 5–12; ICC(2,1)
/// with Satterthwaite's degrees of freedom), from the two-way ANOVA mean squares of n targets
/// × k raters; computed as pingouin `intraclass_corr` (which rounds its intervals to 2 decimals;
/// these are not rounded).
pub fn icc(df: &DataFrame, raters: &[String], level: f64) -> StatsResult<Icc> {
    let level = check_level(level)?;
    if raters.len() < 2 {
        return Err(bad("--raters: give at least two rater columns, separated by commas"));
    }
    let names: Vec<&str> = raters.iter().map(String::as_str).collect();
    let rows = Rows::complete(df, &names)?;
    let data = names.iter().map(|c| rows.numbers(c)).collect::<StatsResult<Vec<_>>>()?;
    let (n, k) = (rows.len(), names.len());
    if n < 2 {
        return Err(bad(format!(
            "--raters: {n} complete row(s); the ICC needs at least 2 targets rated by every rater"
        )));
    }
    let (nf, kf) = (n as f64, k as f64);
    let grand = data.iter().flatten().sum::<f64>() / (nf * kf);
    let row_means: Vec<f64> = (0..n).map(|i| data.iter().map(|c| c[i]).sum::<f64>() / kf).collect();
    let col_means: Vec<f64> = data.iter().map(|c| mean(c)).collect();
    let ss_total: f64 = data.iter().flatten().map(|v| (v - grand).powi(2)).sum();
    let ss_rows = kf * row_means.iter().map(|m| (m - grand).powi(2)).sum::<f64>();
    let ss_cols = nf * col_means.iter().map(|m| (m - grand).powi(2)).sum::<f64>();
    let ss_err = ss_total - ss_rows - ss_cols;
    let msr = ss_rows / (nf - 1.0);
    let msc = ss_cols / (kf - 1.0);
    let mse = ss_err / ((nf - 1.0) * (kf - 1.0));
    let msw = (ss_cols + ss_err) / (nf * (kf - 1.0));
    let q = 1.0 - (1.0 - level) / 2.0;

    let icc1 = (msr - msw) / (msr + (kf - 1.0) * msw);
    let icc2 = (msr - mse) / (msr + (kf - 1.0) * mse + kf * (msc - mse) / nf);
    let icc3 = (msr - mse) / (msr + (kf - 1.0) * mse);
    let icc1k = (msr - msw) / msr;
    let icc2k = (msr - mse) / (msr + (msc - mse) / nf);
    let icc3k = (msr - mse) / msr;

    // ICC(1,·): F = MSR/MSW on (n−1, n(k−1)).
    let f1 = msr / msw;
    let (d1, d2) = (nf - 1.0, nf * (kf - 1.0));
    let f1l = f1 / f_quantile(q, d1, d2);
    let f1u = f1 * f_quantile(q, d2, d1);
    // ICC(3,·): F = MSR/MSE on (n−1, (n−1)(k−1)).
    let f3 = msr / mse;
    let d2e = (nf - 1.0) * (kf - 1.0);
    let f3l = f3 / f_quantile(q, d1, d2e);
    let f3u = f3 * f_quantile(q, d2e, d1);
    // ICC(2,1): Satterthwaite's v (Shrout & Fleiss eq. 11–12).
    let fj = msc / mse;
    let vn = (kf - 1.0) * (nf - 1.0) * (kf * icc2 * fj + nf * (1.0 + (kf - 1.0) * icc2) - kf * icc2).powi(2);
    let vd = (nf - 1.0) * kf * kf * icc2 * icc2 * fj * fj + (nf * (1.0 + (kf - 1.0) * icc2) - kf * icc2).powi(2);
    let v = vn / vd;
    let f2u = f_quantile(q, nf - 1.0, v);
    let f2l = f_quantile(q, v, nf - 1.0);
    let l2 = nf * (msr - f2u * mse) / (f2u * (kf * msc + (kf * nf - kf - nf) * mse) + nf * msr);
    let u2 = nf * (f2l * msr - mse) / (kf * msc + (kf * nf - kf - nf) * mse + nf * f2l * msr);
    let mean_k = |r: f64| r * kf / (1.0 + r * (kf - 1.0));

    Ok(Icc {
        n_subjects: n,
        n_raters: k,
        n_missing: rows.n_missing,
        icc1,
        icc1_ci_low: (f1l - 1.0) / (f1l + kf - 1.0),
        icc1_ci_high: (f1u - 1.0) / (f1u + kf - 1.0),
        icc2,
        icc2_ci_low: l2,
        icc2_ci_high: u2,
        icc3,
        icc3_ci_low: (f3l - 1.0) / (f3l + kf - 1.0),
        icc3_ci_high: (f3u - 1.0) / (f3u + kf - 1.0),
        icc1k,
        icc1k_ci_low: 1.0 - 1.0 / f1l,
        icc1k_ci_high: 1.0 - 1.0 / f1u,
        icc2k,
        icc2k_ci_low: mean_k(l2),
        icc2k_ci_high: mean_k(u2),
        icc3k,
        icc3k_ci_low: 1.0 - 1.0 / f3l,
        icc3k_ci_high: 1.0 - 1.0 / f3u,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn midranks_average_ties() {
        assert_eq!(midranks(&[10.0, 20.0, 10.0, 5.0]), vec![2.5, 4.0, 2.5, 1.0]);
    }

    #[test]
    fn shrout_fleiss_table_2() {
        // Shrout & Fleiss (1979) Table 2: 6 targets × 4 judges; published ICCs to 2 decimals.
        let judges = [
            [9.0, 2.0, 5.0, 8.0],
            [6.0, 1.0, 3.0, 2.0],
            [8.0, 4.0, 6.0, 8.0],
            [7.0, 1.0, 2.0, 6.0],
            [10.0, 5.0, 6.0, 9.0],
            [6.0, 2.0, 4.0, 7.0],
        ];
        let col = |j: usize| judges.iter().map(|r| Some(r[j].to_string())).collect::<Vec<_>>();
        let df = super::super::frame::text_frame(vec![("j1", col(0)), ("j2", col(1)), ("j3", col(2)), ("j4", col(3))])
            .unwrap();
        let raters: Vec<String> = ["j1", "j2", "j3", "j4"].iter().map(|s| s.to_string()).collect();
        let r = icc(&df, &raters, 0.95).unwrap();
        for (got, want) in
            [(r.icc1, 0.17), (r.icc2, 0.29), (r.icc3, 0.71), (r.icc1k, 0.44), (r.icc2k, 0.62), (r.icc3k, 0.91)]
        {
            assert!((got - want).abs() < 0.005, "{got} vs {want}");
        }
    }
}
