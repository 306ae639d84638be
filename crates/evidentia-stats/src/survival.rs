//! Survival: Kaplan–Meier estimates with log-log confidence bands and the median with its CI,
//! numbers at risk, the log-rank test, and Cox proportional hazards (Efron ties) for a group or
//! for numeric covariates.

use polars::prelude::DataFrame;
use statrs::distribution::{ChiSquared, ContinuousCDF};

use super::accuracy::two_sided_p;
use super::frame::{bad, check_level, Rows, StatsResult};
use super::{code_categories, z_for_level, Coded};

/// One step of a Kaplan–Meier curve: at `time`, `at_risk` subjects, `events` events and
/// `censored` censorings; the estimate just after and its pointwise band.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct KmStep {
    pub time: f64,
    pub at_risk: u64,
    pub events: u64,
    pub censored: u64,
    pub survival: f64,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct KmGroup {
    pub name: String,
    pub n: usize,
    pub events: u64,
    pub median: Option<f64>,
    pub median_ci_low: Option<f64>,
    pub median_ci_high: Option<f64>,
    #[serde(skip)]
    pub steps: Vec<KmStep>,
}

/// Kaplan & Meier (1958) product-limit estimate with Greenwood's variance and the log-log
/// pointwise band exp(−exp(log(−log S) ± z·σ/ log S)), σ² = Σ d/(n(n − d)) (Kalbfleisch &
/// Prentice 1980; SAS PROC LIFETEST CONFTYPE=LOGLOG, lifelines' default). The median is the
/// smallest time with S ≤ 0.5; its CI runs from the first time the lower band is ≤ 0.5 to the
/// first time the upper band is ≤ 0.5 (Brookmeyer & Crowley 1982), each None when never reached.
pub fn kaplan_meier(name: &str, times: &[f64], events: &[bool], level: f64) -> KmGroup {
    let z = z_for_level(level);
    let mut order: Vec<usize> = (0..times.len()).collect();
    order.sort_by(|&a, &b| times[a].total_cmp(&times[b]));
    let mut at_risk = times.len() as u64;
    let (mut s, mut greenwood) = (1.0f64, 0.0f64);
    let mut steps = Vec::new();
    let mut i = 0;
    while i < order.len() {
        let t = times[order[i]];
        let (mut d, mut c) = (0u64, 0u64);
        while i < order.len() && times[order[i]] == t {
            if events[order[i]] {
                d += 1;
            } else {
                c += 1;
            }
            i += 1;
        }
        if d > 0 {
            s *= 1.0 - d as f64 / at_risk as f64;
            if at_risk > d {
                greenwood += d as f64 / (at_risk as f64 * (at_risk - d) as f64);
            }
        }
        let (lo, hi) = loglog_band(s, greenwood, z);
        steps.push(KmStep { time: t, at_risk, events: d, censored: c, survival: s, ci_low: lo, ci_high: hi });
        at_risk -= d + c;
    }
    let first =
        |f: &dyn Fn(&KmStep) -> Option<f64>| steps.iter().find(|st| f(st).is_some_and(|v| v <= 0.5)).map(|st| st.time);
    KmGroup {
        name: name.to_string(),
        n: times.len(),
        events: steps.iter().map(|s| s.events).sum(),
        median: first(&|st| Some(st.survival)),
        median_ci_low: first(&|st| st.ci_low),
        median_ci_high: first(&|st| st.ci_high),
        steps,
    }
}

/// The log-log band at S with Greenwood sum g; at S = 1 there is no band (1, 1); at S = 0 it is
/// (0, 0).
fn loglog_band(s: f64, g: f64, z: f64) -> (Option<f64>, Option<f64>) {
    if s >= 1.0 {
        return (Some(1.0), Some(1.0));
    }
    if s <= 0.0 {
        return (Some(0.0), Some(0.0));
    }
    let ls = s.ln();
    let half = z * g.sqrt() / ls;
    let lo = (-((-ls).ln() - half).exp()).exp();
    let hi = (-((-ls).ln() + half).exp()).exp();
    (Some(lo.min(hi)), Some(lo.max(hi)))
}

impl KmGroup {
    /// S(t) at a time (1 before the first step).
    pub fn survival_at(&self, t: f64) -> f64 {
        self.steps.iter().take_while(|s| s.time <= t).last().map_or(1.0, |s| s.survival)
    }
    /// Subjects still at risk at time t (time ≥ t).
    pub fn at_risk_at(&self, t: f64) -> u64 {
        self.steps.iter().find(|s| s.time >= t).map_or(0, |s| s.at_risk)
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LogRank {
    pub chi2: f64,
    pub df: usize,
    pub p_value: f64,
}

/// The log-rank test of G groups (Mantel 1966; Peto & Peto 1972): at each event time, observed
/// minus expected events per group and the hypergeometric covariance
/// V_gh = d(N − d)/(N − 1)·(n_g/N)(δ_gh − n_h/N); χ² = Uᵀ V⁻¹ U over the first G − 1 groups, on
/// G − 1 degrees of freedom (as lifelines `multivariate_logrank_test` and R `survdiff`).
pub fn logrank(groups: &[usize], n_groups: usize, times: &[f64], events: &[bool]) -> Option<LogRank> {
    if n_groups < 2 {
        return None;
    }
    let mut order: Vec<usize> = (0..times.len()).collect();
    order.sort_by(|&a, &b| times[a].total_cmp(&times[b]));
    let mut at_risk = vec![0f64; n_groups];
    for &g in groups {
        at_risk[g] += 1.0;
    }
    let g1 = n_groups - 1;
    let mut u = vec![0f64; g1];
    let mut v = vec![vec![0f64; g1]; g1];
    let mut i = 0;
    while i < order.len() {
        let t = times[order[i]];
        let mut d = vec![0f64; n_groups];
        let mut leaving = vec![0f64; n_groups];
        while i < order.len() && times[order[i]] == t {
            let k = order[i];
            if events[k] {
                d[groups[k]] += 1.0;
            }
            leaving[groups[k]] += 1.0;
            i += 1;
        }
        let dt: f64 = d.iter().sum();
        let nt: f64 = at_risk.iter().sum();
        if dt > 0.0 {
            for g in 0..g1 {
                u[g] += d[g] - dt * at_risk[g] / nt;
                if nt > 1.0 {
                    let f = dt * (nt - dt) / (nt - 1.0);
                    for h in 0..g1 {
                        let delta = if g == h { 1.0 } else { 0.0 };
                        v[g][h] += f * (at_risk[g] / nt) * (delta - at_risk[h] / nt);
                    }
                }
            }
        }
        for g in 0..n_groups {
            at_risk[g] -= leaving[g];
        }
    }
    let inv = super::linalg::inverse(&v)?;
    let chi2: f64 = (0..g1).map(|a| (0..g1).map(|b| u[a] * inv[a][b] * u[b]).sum::<f64>()).sum();
    let p = ChiSquared::new(g1 as f64).map(|c| c.sf(chi2)).ok()?;
    Some(LogRank { chi2, df: g1, p_value: p })
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CoxTerm {
    pub name: String,
    pub coef: f64,
    pub se: f64,
    pub hr: f64,
    pub hr_ci_low: f64,
    pub hr_ci_high: f64,
    pub z: f64,
    pub p_value: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CoxFit {
    pub coef: Vec<f64>,
    pub se: Vec<f64>,
    pub log_likelihood: f64,
}

/// Cox (1972) proportional hazards by Newton–Raphson on the partial likelihood with Efron's
/// (1977, JASA 72:557) handling of tied event times: at a time with d events, tie sums D and
/// risk-set sums S, the l-th term uses φ = S − (l/d)·D (l = 0…d−1). Log-likelihood
/// Σ xβ − Σ_l log φ0_l, score Σ x − Σ_l φ1/φ0, information Σ_l (φ2/φ0 − φ1φ1ᵀ/φ0²); SEs from the
/// inverse information at the estimate (as lifelines `CoxPHFitter` and R `coxph`). `x` is row-
/// major, n × p. None when the information matrix is singular or the fit does not converge.
pub fn cox_fit(times: &[f64], events: &[bool], x: &[Vec<f64>]) -> Option<CoxFit> {
    let n = times.len();
    let p = x.first().map_or(0, Vec::len);
    if n == 0 || p == 0 {
        return None;
    }
    // Centre covariates for numerical stability (the coefficients do not change).
    let means: Vec<f64> = (0..p).map(|j| x.iter().map(|r| r[j]).sum::<f64>() / n as f64).collect();
    let xc: Vec<Vec<f64>> = x.iter().map(|r| r.iter().zip(&means).map(|(v, m)| v - m).collect()).collect();
    let mut order: Vec<usize> = (0..n).collect();
    // Descending time: the risk set of a time is everything seen up to and including its ties.
    order.sort_by(|&a, &b| times[b].total_cmp(&times[a]));

    let evaluate = |beta: &[f64]| -> (f64, Vec<f64>, Vec<Vec<f64>>) {
        let mut ll = 0.0;
        let mut grad = vec![0.0; p];
        let mut info = vec![vec![0.0; p]; p];
        let (mut s0, mut s1, mut s2) = (0.0, vec![0.0; p], vec![vec![0.0; p]; p]);
        let (mut d1, mut d2, mut phi1) = (vec![0.0; p], vec![vec![0.0; p]; p], vec![0.0; p]);
        let mut i = 0;
        while i < n {
            let t = times[order[i]];
            let mut d0 = 0.0;
            d1.iter_mut().for_each(|v| *v = 0.0);
            d2.iter_mut().flatten().for_each(|v| *v = 0.0);
            let mut d = 0usize;
            while i < n && times[order[i]] == t {
                let r = &xc[order[i]];
                let eta: f64 = r.iter().zip(beta).map(|(a, b)| a * b).sum();
                let w = eta.exp();
                s0 += w;
                for a in 0..p {
                    s1[a] += w * r[a];
                    for b in 0..=a {
                        s2[a][b] += w * r[a] * r[b];
                    }
                }
                if events[order[i]] {
                    d += 1;
                    ll += eta;
                    d0 += w;
                    for a in 0..p {
                        grad[a] += r[a];
                        d1[a] += w * r[a];
                        for b in 0..=a {
                            d2[a][b] += w * r[a] * r[b];
                        }
                    }
                }
                i += 1;
            }
            for l in 0..d {
                let f = l as f64 / d as f64;
                let phi0 = s0 - f * d0;
                ll -= phi0.ln();
                for a in 0..p {
                    phi1[a] = s1[a] - f * d1[a];
                }
                for a in 0..p {
                    grad[a] -= phi1[a] / phi0;
                    for b in 0..=a {
                        let phi2 = s2[a][b] - f * d2[a][b];
                        info[a][b] += phi2 / phi0 - phi1[a] * phi1[b] / (phi0 * phi0);
                    }
                }
            }
        }
        // Mirror the lower triangle.
        let lower: Vec<(usize, usize, f64)> =
            (0..p).flat_map(|a| (0..a).map(move |b| (a, b))).map(|(a, b)| (a, b, info[a][b])).collect();
        for (a, b, v) in lower {
            info[b][a] = v;
        }
        (ll, grad, info)
    };

    let finish = |beta: Vec<f64>, inv: &[Vec<f64>], ll: f64| {
        let se = (0..p).map(|a| inv[a][a].max(0.0).sqrt()).collect();
        Some(CoxFit { coef: beta, se, log_likelihood: ll })
    };
    let mut beta = vec![0.0; p];
    let (mut ll, mut grad, mut info) = evaluate(&beta);
    for _ in 0..100 {
        let inv = super::linalg::inverse(&info)?;
        let step: Vec<f64> = (0..p).map(|a| (0..p).map(|b| inv[a][b] * grad[b]).sum()).collect();
        // Converged when the Newton step is negligible against the coefficients.
        if step.iter().zip(&beta).all(|(s, b)| s.abs() <= 1e-10 * (1.0 + b.abs())) {
            return finish(beta, &inv, ll);
        }
        // Step halving: the likelihood must not fall (beyond rounding); when no fraction of the
        // step helps, the estimate is the optimum to rounding.
        let tolerance = 1e-12 * (1.0 + ll.abs());
        let mut scale = 1.0;
        loop {
            let trial: Vec<f64> = beta.iter().zip(&step).map(|(b, s)| b + scale * s).collect();
            let (tll, tgrad, tinfo) = evaluate(&trial);
            if tll.is_finite() && tll >= ll - tolerance {
                beta = trial;
                (ll, grad, info) = (tll, tgrad, tinfo);
                break;
            }
            scale /= 2.0;
            if scale < 1e-6 {
                return finish(beta, &inv, ll);
            }
        }
    }
    None
}

/// A Cox term from a coefficient and its SE: HR = exp(β), Wald CI exp(β ∓ z·se), two-sided p.
pub fn cox_term(name: &str, coef: f64, se: f64, level: f64) -> CoxTerm {
    let z = z_for_level(level);
    let wald = coef / se;
    CoxTerm {
        name: name.to_string(),
        coef,
        se,
        hr: coef.exp(),
        hr_ci_low: (coef - z * se).exp(),
        hr_ci_high: (coef + z * se).exp(),
        z: wald,
        p_value: two_sided_p(wald),
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GroupHazard {
    pub group: String,
    pub hr: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    pub p_value: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GroupCox {
    pub reference: String,
    pub comparisons: Vec<GroupHazard>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Survival {
    /// The time column (the plot's axis names it); not in the JSON, which is keyed by analysis.
    #[serde(skip)]
    pub time_column: String,
    pub n_missing: usize,
    pub groups: Vec<KmGroup>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logrank: Option<LogRank>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cox: Option<GroupCox>,
}

/// Kaplan–Meier per group, and with a group the log-rank test and a Cox model of the group
/// (indicator per non-reference group). A group without events has no finite hazard ratio (the
/// MLE lies at −∞): it is reported with nulls and its subjects leave the Cox fit, which is the
/// limit of the likelihood; if the reference group has none, every ratio is null.
pub fn survival(
    df: &DataFrame,
    time: &str,
    event: &str,
    group: Option<&str>,
    reference_group: Option<&str>,
    level: f64,
) -> StatsResult<Survival> {
    let level = check_level(level)?;
    let mut used = vec![time, event];
    used.extend(group);
    let rows = Rows::complete(df, &used)?;
    let times = rows.numbers(time)?;
    if let Some(k) = times.iter().position(|t| *t < 0.0) {
        return Err(bad(format!(
            "column \"{time}\", row {}: a time cannot be negative ({})",
            rows.row_number(k),
            times[k]
        )));
    }
    let events = rows.events(event)?;
    if rows.is_empty() {
        return Err(bad(format!("columns \"{time}\" and \"{event}\": no row has both values")));
    }
    let Some(gcol) = group else {
        return Ok(Survival {
            time_column: time.to_string(),
            n_missing: rows.n_missing,
            groups: vec![kaplan_meier("all", &times, &events, level)],
            logrank: None,
            cox: None,
        });
    };
    let labels = rows.text(gcol);
    let Coded { categories: names, codes } = code_categories(&[&labels]);
    super::check_categories(&format!("column \"{gcol}\""), names.len())?;
    let gi = codes.into_iter().next().unwrap_or_default();
    let groups: Vec<KmGroup> = (0..names.len())
        .map(|g| {
            let (t, e): (Vec<f64>, Vec<bool>) =
                (0..gi.len()).filter(|&k| gi[k] == g).map(|k| (times[k], events[k])).unzip();
            kaplan_meier(&names[g], &t, &e, level)
        })
        .collect();
    if names.len() < 2 {
        return Err(bad(format!(
            "column \"{gcol}\": fewer than 2 categories (only \"{}\") — nothing to compare; leave out --group",
            names.first().map(String::as_str).unwrap_or("")
        )));
    }
    let reference = match reference_group {
        Some(r) => names.iter().position(|n| n == r.trim()).ok_or_else(|| {
            bad(format!("--reference-group \"{r}\" is not a value of column \"{gcol}\" ({})", names.join(", ")))
        })?,
        None => 0,
    };
    let logrank = logrank(&gi, names.len(), &times, &events);
    let cox = group_cox(&groups, reference, &gi, &times, &events, level);
    Ok(Survival { time_column: time.to_string(), n_missing: rows.n_missing, groups, logrank, cox: Some(cox) })
}

fn group_cox(
    groups: &[KmGroup],
    reference: usize,
    gi: &[usize],
    times: &[f64],
    events: &[bool],
    level: f64,
) -> GroupCox {
    let null =
        |g: &KmGroup| GroupHazard { group: g.name.clone(), hr: None, ci_low: None, ci_high: None, p_value: None };
    let others: Vec<usize> = (0..groups.len()).filter(|&g| g != reference).collect();
    let fitted: Vec<usize> = others.iter().copied().filter(|&g| groups[g].events > 0).collect();
    let mut out = GroupCox {
        reference: groups[reference].name.clone(),
        comparisons: others.iter().map(|&g| null(&groups[g])).collect(),
    };
    if groups[reference].events == 0 || fitted.is_empty() {
        return out;
    }
    let keep: Vec<usize> = (0..gi.len()).filter(|&k| gi[k] == reference || fitted.contains(&gi[k])).collect();
    let x: Vec<Vec<f64>> =
        keep.iter().map(|&k| fitted.iter().map(|&g| f64::from(u8::from(gi[k] == g))).collect()).collect();
    let t: Vec<f64> = keep.iter().map(|&k| times[k]).collect();
    let e: Vec<bool> = keep.iter().map(|&k| events[k]).collect();
    if let Some(fit) = cox_fit(&t, &e, &x) {
        for (j, &g) in fitted.iter().enumerate() {
            let term = cox_term(&groups[g].name, fit.coef[j], fit.se[j], level);
            if let Some(slot) = out.comparisons.iter_mut().find(|c| c.group == groups[g].name) {
                *slot = GroupHazard {
                    group: term.name,
                    hr: Some(term.hr),
                    ci_low: Some(term.hr_ci_low),
                    ci_high: Some(term.hr_ci_high),
                    p_value: Some(term.p_value),
                };
            }
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Cox {
    pub n: usize,
    pub n_missing: usize,
    pub events: usize,
    pub log_likelihood: f64,
    pub coefficients: Vec<CoxTerm>,
}

/// Cox proportional hazards with numeric covariates (see `cox_fit`).
pub fn cox(df: &DataFrame, time: &str, event: &str, covariates: &[String], level: f64) -> StatsResult<Cox> {
    let level = check_level(level)?;
    if covariates.is_empty() {
        return Err(bad("--covariates: give at least one covariate column"));
    }
    let mut used = vec![time, event];
    used.extend(covariates.iter().map(String::as_str));
    let rows = Rows::complete(df, &used)?;
    let times = rows.numbers(time)?;
    let events = rows.events(event)?;
    let cols = covariates.iter().map(|c| rows.numbers(c)).collect::<StatsResult<Vec<_>>>()?;
    let n_events = events.iter().filter(|e| **e).count();
    if n_events == 0 {
        return Err(bad(format!(
            "column \"{event}\": no events among {} rows — the Cox model needs events",
            rows.len()
        )));
    }
    for (c, col) in covariates.iter().zip(&cols) {
        if col.iter().all(|v| *v == col[0]) {
            return Err(bad(format!("column \"{c}\": the covariate has a single value — it cannot be estimated")));
        }
    }
    let x: Vec<Vec<f64>> = (0..rows.len()).map(|k| cols.iter().map(|c| c[k]).collect()).collect();
    let fit = cox_fit(&times, &events, &x).ok_or_else(|| {
        bad(format!(
            "--covariates {}: the Cox model does not converge (collinear covariates or monotone likelihood)",
            covariates.join(",")
        ))
    })?;
    Ok(Cox {
        n: rows.len(),
        n_missing: rows.n_missing,
        events: n_events,
        log_likelihood: fit.log_likelihood,
        coefficients: covariates.iter().enumerate().map(|(j, c)| cox_term(c, fit.coef[j], fit.se[j], level)).collect(),
    })
}
