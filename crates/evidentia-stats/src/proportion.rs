//! A proportion with its Wilson score and Clopper-Pearson exact confidence intervals.

use statrs::distribution::{Beta, ContinuousCDF};

use super::z_for_level;

/// x successes of n: the estimate and two CIs; every field is None when n = 0 (the contract's
/// "a proportion whose denominator is 0 is null").
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Proportion {
    pub estimate: Option<f64>,
    pub wilson_low: Option<f64>,
    pub wilson_high: Option<f64>,
    pub exact_low: Option<f64>,
    pub exact_high: Option<f64>,
}

impl Proportion {
    pub fn new(x: u64, n: u64, level: f64) -> Proportion {
        if n == 0 {
            return Proportion {
                estimate: None,
                wilson_low: None,
                wilson_high: None,
                exact_low: None,
                exact_high: None,
            };
        }
        let (wl, wh) = wilson(x, n, level);
        let (el, eh) = clopper_pearson(x, n, level);
        Proportion {
            estimate: Some(x as f64 / n as f64),
            wilson_low: Some(wl),
            wilson_high: Some(wh),
            exact_low: Some(el),
            exact_high: Some(eh),
        }
    }
}

/// Wilson (1927) score interval, as statsmodels `proportion_confint(method="wilson")`:
/// (p + z²/2n ∓ z·sqrt(p(1−p)/n + z²/4n²)) / (1 + z²/n). n must be > 0.
pub fn wilson(x: u64, n: u64, level: f64) -> (f64, f64) {
    let (x, n) = (x as f64, n as f64);
    let z = z_for_level(level);
    let p = x / n;
    let z2 = z * z;
    let centre = p + z2 / (2.0 * n);
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    let denom = 1.0 + z2 / n;
    (((centre - half) / denom).max(0.0), ((centre + half) / denom).min(1.0))
}

/// Clopper & Pearson (1934) exact interval from beta quantiles, as statsmodels
/// `proportion_confint(method="beta")`: lower = B(α/2; x, n−x+1) (0 when x = 0),
/// upper = B(1−α/2; x+1, n−x) (1 when x = n). n must be > 0.
pub fn clopper_pearson(x: u64, n: u64, level: f64) -> (f64, f64) {
    let alpha = 1.0 - level;
    let (xf, nf) = (x as f64, n as f64);
    let low =
        if x == 0 { 0.0 } else { Beta::new(xf, nf - xf + 1.0).map(|b| b.inverse_cdf(alpha / 2.0)).unwrap_or(f64::NAN) };
    let high = if x == n {
        1.0
    } else {
        Beta::new(xf + 1.0, nf - xf).map(|b| b.inverse_cdf(1.0 - alpha / 2.0)).unwrap_or(f64::NAN)
    };
    (low, high)
}

/// A ratio, None when the denominator is 0.
pub fn ratio(num: f64, den: f64) -> Option<f64> {
    (den != 0.0).then(|| num / den)
}

#[cfg(test)]
mod tests {
    use super::*;

    // statsmodels 0.15 proportion_confint(81, 100, method="wilson" / "beta").
    #[test]
    fn wilson_and_exact_match_statsmodels() {
        let p = Proportion::new(81, 100, 0.95);
        let close = |a: Option<f64>, b: f64| assert!((a.unwrap() - b).abs() < 1e-9, "{a:?} vs {b}");
        close(p.estimate, 0.81);
        close(p.wilson_low, 0.722_211_546_209_356_2);
        close(p.wilson_high, 0.874_852_484_902_312_6);
        close(p.exact_low, 0.719_302_042_026_387_6);
        close(p.exact_high, 0.881_556_803_867_456_4);
        let zero = Proportion::new(0, 12, 0.95);
        close(zero.exact_low, 0.0);
        close(zero.exact_high, 0.264_648_469_397_051_2);
        assert_eq!(Proportion::new(0, 0, 0.95).estimate, None);
    }
}
