#!/usr/bin/env python3
"""The Python reference of the statistics benchmark: the same 13 analyses as `evidentia stats`
(docs/statistics.md, with its extensions), done the usual way with the Python reference stack
(pandas, numpy/scipy, statsmodels, scikit-learn, lifelines, pingouin), on a reader-study CSV.

    /var/tmp/evpy/bin/python tools/bench_stats.py STUDY.csv [--repeat 3]
(needs pandas, numpy, scipy, statsmodels, scikit-learn, lifelines, pingouin)

Columns: subject, site, age (some empty), sex, reader1..3 and consensus (0/1/2), ai_class (0/1/2),
reference and ai_positive (0/1), ai_score, alt_score, m1..m3, time (whole days), event (0/1), ai_group.

Each repetition reads the CSV once with pandas and runs every analysis on that frame; the total
and every analysis are timed with perf_counter (imports are not). Prints ONE JSON object:
    {"rows", "total_seconds" (best total over the repetitions), "read_csv_seconds",
     "analyses": {name: seconds, from the best repetition}, "repeats", "versions",
     "results": {name: headline numbers, to check both sides computed the same}}
Analysis names: kappa_unweighted, kappa_quadratic, kappa_ai_consensus, fleiss, icc, diagnostic,
roc, roc_compare, survival, cox, bland_altman, table1, paired_agreement. As in the CLI, rows
with an empty cell in a used column are dropped and counted in n_missing (table1: only an empty
group drops a row), CIs are 95 %, and a proportion with a zero denominator is null.
Library defaults are kept, except lifelines' Cox fits run with `batch_mode=True`: with survival
times in days (tied as in real data) its own choice (`None`) picks the per-time Efron loop, which
is 4.5x slower on the benchmark's file (1.62 s against 0.36 s; the baseline gets its best setting);
pingouin's 2-decimal rounding of the ICC CIs is switched off so they can be compared.
"""

import argparse
import json
import math
import platform
import sys
import time
from importlib.metadata import version

import numpy as np
import pandas as pd
import pingouin as pg
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.statistics import multivariate_logrank_test
from lifelines.utils import median_survival_times
from scipy import stats
from sklearn.metrics import roc_auc_score, roc_curve
from statsmodels.stats.inter_rater import aggregate_raters, cohens_kappa, fleiss_kappa
from statsmodels.stats.proportion import proportion_confint

LEVEL = 0.95
Z = stats.norm.ppf(0.5 + LEVEL / 2)
pg.options["round.column.CI95"] = None  # pingouin rounds ICC CIs to 2 decimals by default


def complete(df, cols):
    """The rows with every used column present, and how many were dropped."""
    d = df.dropna(subset=cols)
    return d, len(df) - len(d)


def ratio(num, den):
    return num / den if den else None


def proportions(x, n):
    """{estimate, wilson_low, wilson_high, exact_low, exact_high} for each count in x over n."""
    x, n = np.asarray(x, float), np.asarray(n, float)
    ok = n > 0
    nn = np.where(ok, n, 1.0)
    wl, wh = proportion_confint(x, nn, alpha=1 - LEVEL, method="wilson")
    el, eh = proportion_confint(x, nn, alpha=1 - LEVEL, method="beta")
    return [
        {"estimate": x[i] / n[i], "wilson_low": wl[i], "wilson_high": wh[i],
         "exact_low": el[i], "exact_high": eh[i]} if ok[i] else None
        for i in range(len(x))
    ]


# 1-3 Cohen's kappa ---------------------------------------------------------------------------

def kappa(df, a, b, wt=None):
    d, n_missing = complete(df, [a, b])
    cats = np.union1d(d[a].unique(), d[b].unique())
    table = pd.crosstab(d[a], d[b]).reindex(index=cats, columns=cats, fill_value=0).to_numpy(float)
    res = cohens_kappa(table, wt=wt) if wt else cohens_kappa(table)
    # observed / expected agreement as the weighted sums sum(w * p) (the weights statsmodels uses)
    k = len(cats)
    i, j = np.indices((k, k))
    w = {None: (i == j).astype(float), "linear": 1 - np.abs(i - j) / (k - 1),
         "quadratic": 1 - (i - j) ** 2 / (k - 1) ** 2}[wt]
    p = table / table.sum()
    po = (w * p).sum()
    pe = (w * np.outer(p.sum(1), p.sum(0))).sum()
    return {"n": len(d), "n_missing": n_missing, "categories": cats.tolist(),
            "observed_agreement": po, "expected_agreement": pe, "kappa": res.kappa,
            "se": res.std_kappa, "ci_low": res.kappa - Z * res.std_kappa,
            "ci_high": res.kappa + Z * res.std_kappa}


# 4 Fleiss' kappa ----------------------------------------------------------------------------

def fleiss(df, raters):
    d, n_missing = complete(df, raters)
    counts, cats = aggregate_raters(d[raters].to_numpy())
    kappa_ = fleiss_kappa(counts, method="fleiss")
    n_subj, n_rat = len(d), len(raters)
    pj = counts.sum(0) / (n_subj * n_rat)
    pq = pj * (1 - pj)
    # Fleiss, Nee & Landis (1979): the SE under H0 kappa = 0
    se = (math.sqrt(2) / (pq.sum() * math.sqrt(n_subj * n_rat * (n_rat - 1)))
          * math.sqrt(pq.sum() ** 2 - (pq * (1 - 2 * pj)).sum()))
    z = kappa_ / se
    return {"n_subjects": n_subj, "n_raters": n_rat, "n_missing": n_missing,
            "categories": cats.tolist(), "kappa": kappa_, "se": se, "z": z,
            "p_value": 2 * stats.norm.sf(abs(z))}


# 5 ICC --------------------------------------------------------------------------------------

def icc(df, raters):
    d, n_missing = complete(df, raters)
    long = d[raters].rename_axis("target").reset_index().melt(
        id_vars="target", var_name="rater", value_name="rating")
    res = pg.intraclass_corr(data=long, targets="target", raters="rater", ratings="rating")
    res = res.set_index("Type")
    out = {"n_subjects": len(d), "n_raters": len(raters), "n_missing": n_missing}
    for name, typ in [("icc1", "ICC(1,1)"), ("icc2", "ICC(A,1)"), ("icc3", "ICC(C,1)"),
                      ("icc1k", "ICC(1,k)"), ("icc2k", "ICC(A,k)"), ("icc3k", "ICC(C,k)")]:
        lo, hi = res.at[typ, "CI95"]
        out[name], out[name + "_ci_low"], out[name + "_ci_high"] = res.at[typ, "ICC"], lo, hi
    return out


# 6 Diagnostic accuracy ----------------------------------------------------------------------

def diagnostic(df, test, reference, positive=1):
    d, n_missing = complete(df, [test, reference])
    t, r = d[test].eq(positive), d[reference].eq(positive)
    tp, fp = int((t & r).sum()), int((t & ~r).sum())
    fn, tn = int((~t & r).sum()), int((~t & ~r).sum())
    names = ["sensitivity", "specificity", "ppv", "npv", "accuracy"]
    props = proportions([tp, tn, tp, tn, tp + tn], [tp + fn, tn + fp, tp + fp, tn + fn, len(d)])
    out = {"n": len(d), "n_missing": n_missing, "tp": tp, "fp": fp, "fn": fn, "tn": tn}
    out.update(zip(names, props))
    out.update(ppa=out["sensitivity"], npa=out["specificity"], opa=out["accuracy"])
    return out


# 7-8 ROC: AUC, DeLong SE, Youden; paired DeLong ---------------------------------------------

def delong(scores, y):
    """AUCs and their DeLong covariance for the k score rows of `scores` (k x N) against the
    boolean truth y, by the fast mid-rank algorithm (Sun & Xu 2014): O(N log N)."""
    pos, neg = scores[:, y], scores[:, ~y]
    m, n = pos.shape[1], neg.shape[1]
    tx = stats.rankdata(pos, axis=1)
    ty = stats.rankdata(neg, axis=1)
    tz = stats.rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    aucs = (tz[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n)
    v10 = (tz[:, :m] - tx) / n        # placement values of the positives
    v01 = 1 - (tz[:, m:] - ty) / m    # ... and of the negatives
    cov = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n  # (m-1), (n-1)
    return aucs, cov, m, n


def roc(df, score, reference, positive=1):
    d, n_missing = complete(df, [score, reference])
    y = d[reference].eq(positive).to_numpy()
    s = d[score].to_numpy(float)
    auc = roc_auc_score(y, s)
    _, cov, m, n = delong(s[None, :], y)
    se = math.sqrt(cov[0, 0])
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    best = 1 + np.argmax((tpr - fpr)[1:])  # thresholds decrease: ties go to the larger one
    return {"n_positive": m, "n_negative": n, "n_missing": n_missing, "auc": auc, "se": se,
            "ci_low": max(0.0, auc - Z * se), "ci_high": min(1.0, auc + Z * se),
            "youden_threshold": thr[best], "youden_sensitivity": tpr[best],
            "youden_specificity": 1 - fpr[best]}


def roc_compare(df, score_a, score_b, reference, positive=1):
    d, n_missing = complete(df, [score_a, score_b, reference])
    y = d[reference].eq(positive).to_numpy()
    aucs, cov, m, n = delong(d[[score_a, score_b]].to_numpy(float).T, y)
    diff = aucs[0] - aucs[1]
    se_diff = math.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    z = diff / se_diff
    return {"n_positive": m, "n_negative": n, "n_missing": n_missing,
            "auc_a": aucs[0], "auc_b": aucs[1], "se_a": math.sqrt(cov[0, 0]),
            "se_b": math.sqrt(cov[1, 1]), "difference": diff, "se_difference": se_diff,
            "ci_low": diff - Z * se_diff, "ci_high": diff + Z * se_diff, "z": z,
            "p_value": 2 * stats.norm.sf(abs(z))}


# 9-10 Survival: Kaplan-Meier, log-rank, Cox -------------------------------------------------

def cox_rows(cph, names):
    s = cph.summary
    return [{"name": c, "coef": s.at[c, "coef"], "se": s.at[c, "se(coef)"],
             "hr": s.at[c, "exp(coef)"], "hr_ci_low": s.at[c, f"exp(coef) lower {LEVEL:.0%}"],
             "hr_ci_high": s.at[c, f"exp(coef) upper {LEVEL:.0%}"], "z": s.at[c, "z"],
             "p_value": s.at[c, "p"]} for c in names]


def survival(df, time_, event, group):
    d, n_missing = complete(df, [time_, event, group])
    groups = []
    for name, g in d.groupby(group, sort=True):
        kmf = KaplanMeierFitter(alpha=1 - LEVEL).fit(g[time_], g[event])
        ci = median_survival_times(kmf.confidence_interval_)
        groups.append({"name": str(name), "n": len(g), "events": int(g[event].sum()),
                       "median": kmf.median_survival_time_, "median_ci_low": ci.iat[0, 0],
                       "median_ci_high": ci.iat[0, 1]})
    lr = multivariate_logrank_test(d[time_], d[group], d[event])
    dummies = pd.get_dummies(d[group], dtype=float)
    ref, others = dummies.columns[0], list(dummies.columns[1:])
    cph = CoxPHFitter(alpha=1 - LEVEL).fit(
        pd.concat([d[[time_, event]], dummies[others]], axis=1), time_, event, batch_mode=True)
    comps = [{"group": r.pop("name"), **{k: r[k] for k in ("hr", "hr_ci_low", "hr_ci_high",
                                                           "p_value")}}
             for r in cox_rows(cph, others)]
    return {"n_missing": n_missing, "groups": groups,
            "logrank": {"chi2": lr.test_statistic, "df": lr.degrees_of_freedom,
                        "p_value": lr.p_value},
            "cox": {"reference": str(ref), "comparisons": comps}}


def cox(df, time_, event, covariates):
    d, n_missing = complete(df, [time_, event, *covariates])
    cph = CoxPHFitter(alpha=1 - LEVEL).fit(d[[time_, event, *covariates]], time_, event, batch_mode=True)
    return {"n": len(d), "n_missing": n_missing, "events": int(d[event].sum()),
            "log_likelihood": cph.log_likelihood_, "coefficients": cox_rows(cph, covariates)}


# 11 Bland-Altman and concordance ------------------------------------------------------------

def bland_altman(df, a, b):
    d, n_missing = complete(df, [a, b])
    x, y = d[a].to_numpy(float), d[b].to_numpy(float)
    n = len(x)
    diff = x - y
    md, sd = diff.mean(), diff.std(ddof=1)
    r = stats.pearsonr(x, y).statistic
    rho = stats.spearmanr(x, y).statistic
    # Lin's CCC with 1/n moments, CI on the z-transform with Lin's (1989) variance, 1/(n-2)
    mx, my, vx, vy = x.mean(), y.mean(), x.var(), y.var()
    sxy = ((x - mx) * (y - my)).mean()
    ccc = 2 * sxy / (vx + vy + (mx - my) ** 2)
    u2 = (mx - my) ** 2 / math.sqrt(vx * vy)
    var_z = ((1 - r * r) * ccc ** 2 / ((1 - ccc ** 2) * r * r)
             + 2 * ccc ** 3 * (1 - ccc) * u2 / (r * (1 - ccc ** 2) ** 2)
             - ccc ** 4 * u2 ** 2 / (2 * r * r * (1 - ccc ** 2) ** 2)) / (n - 2)
    zc, sz = math.atanh(ccc), math.sqrt(var_z)
    return {"n": n, "n_missing": n_missing, "mean_diff": md, "sd_diff": sd,
            "loa_low": md - 1.96 * sd, "loa_high": md + 1.96 * sd, "pearson_r": r,
            "spearman_rho": rho, "ccc": ccc, "ccc_ci_low": math.tanh(zc - Z * sz),
            "ccc_ci_high": math.tanh(zc + Z * sz)}


# 12 Table 1 ---------------------------------------------------------------------------------

def table1(df, group, continuous, categorical):
    d, n_missing = complete(df, [group])
    gb = d.groupby(group, sort=True)
    sizes = gb.size()
    names = [str(g) for g in sizes.index]

    def summary(size, frame):
        """S = {n, missing, mean, sd, median, q1, q3} from the aggregates of one column."""
        return {"n": int(frame["count"]), "missing": int(size - frame["count"]),
                "mean": frame["mean"], "sd": frame["std"], "median": frame["median"],
                "q1": frame["q1"], "q3": frame["q3"]}

    cont_out = []
    if continuous:
        agg = gb[continuous].agg(["count", "mean", "std", "median"])
        q = gb[continuous].quantile([0.25, 0.75]).unstack()
        o_agg = d[continuous].agg(["count", "mean", "std", "median"])
        o_q = d[continuous].quantile([0.25, 0.75])
        for v in continuous:
            overall = {"count": o_agg.at["count", v], "mean": o_agg.at["mean", v],
                       "std": o_agg.at["std", v], "median": o_agg.at["median", v],
                       "q1": o_q.at[0.25, v], "q3": o_q.at[0.75, v]}
            by = []
            for g in sizes.index:
                row = {s: agg.at[g, (v, s)] for s in ("count", "mean", "std", "median")}
                row.update(q1=q.at[g, (v, 0.25)], q3=q.at[g, (v, 0.75)])
                by.append(summary(sizes[g], row))
            cont_out.append({"name": v, "overall": summary(len(d), overall), "by_group": by})

    cat_out = []
    for v in categorical:
        counts = pd.crosstab(d[group], d[v]).reindex(sizes.index, fill_value=0)
        levels = sorted(counts.columns)
        counts = counts[levels]

        def block(cnt, size):
            n = int(cnt.sum())
            return {"n": n, "missing": int(size - n), "counts": [int(c) for c in cnt],
                    "percents": [100 * c / n if n else None for c in cnt]}

        cat_out.append({"name": v, "levels": [str(l) for l in levels],
                        "overall": block(counts.sum().to_numpy(), len(d)),
                        "by_group": [block(counts.loc[g].to_numpy(), sizes[g])
                                     for g in sizes.index]})
    return {"n_missing": n_missing,
            "groups": [{"name": nm, "n": int(s)} for nm, s in zip(names, sizes)],
            "continuous": cont_out, "categorical": cat_out}


# 13 Paired agreement with a reference -------------------------------------------------------

def paired_agreement(df, reference, a, b):
    d, n_missing = complete(df, [reference, a, b])
    n = len(d)
    ok_a = d[a].eq(d[reference]).to_numpy()
    ok_b = d[b].eq(d[reference]).to_numpy()
    both, only_a = int((ok_a & ok_b).sum()), int((ok_a & ~ok_b).sum())
    only_b, neither = int((~ok_a & ok_b).sum()), int((~ok_a & ~ok_b).sum())
    xa, xb = both + only_a, both + only_b
    pa_, pb_ = proportions([xa, xb], [n, n])
    out = {"n": n, "n_missing": n_missing, "agreement_a": pa_, "agreement_b": pb_,
           "only_a": only_a, "only_b": only_b}
    if n:
        # Newcombe (1998) method 10 for b - a, from the two Wilson intervals and the corrected
        # phi coefficient (AD - BC replaced by max(AD - BC - n/2, 0) when positive; as Altman's
        # "Statistics with Confidence" and R biostatUZH confIntPairedProportion)
        p1, l1, u1 = pb_["estimate"], pb_["wilson_low"], pb_["wilson_high"]
        p2, l2, u2 = pa_["estimate"], pa_["wilson_low"], pa_["wilson_high"]
        den = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
        cross = both * neither - only_a * only_b
        if cross > 0:
            cross = max(cross - n / 2, 0)
        phi = cross / math.sqrt(den) if den else 0.0
        diff = p1 - p2
        lo = diff - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2)
                                  + (u2 - p2) ** 2))
        hi = diff + math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2)
                                  + (p2 - l2) ** 2))
        out.update(difference=diff, difference_ci_low=lo, difference_ci_high=hi)
    else:
        out.update(difference=None, difference_ci_low=None, difference_ci_high=None)
    disc = only_a + only_b
    out["mcnemar_p_value"] = (stats.binomtest(min(only_a, only_b), disc, 0.5).pvalue
                              if disc else 1.0)
    return out


# --------------------------------------------------------------------------------------------

ANALYSES = [
    ("kappa_unweighted", lambda df: kappa(df, "reader1", "reader2")),
    ("kappa_quadratic", lambda df: kappa(df, "reader1", "reader2", "quadratic")),
    ("kappa_ai_consensus", lambda df: kappa(df, "ai_class", "consensus")),
    ("fleiss", lambda df: fleiss(df, ["reader1", "reader2", "reader3"])),
    ("icc", lambda df: icc(df, ["m1", "m2", "m3"])),
    ("diagnostic", lambda df: diagnostic(df, "ai_positive", "reference")),
    ("roc", lambda df: roc(df, "ai_score", "reference")),
    ("roc_compare", lambda df: roc_compare(df, "ai_score", "alt_score", "reference")),
    ("survival", lambda df: survival(df, "time", "event", "ai_group")),
    ("cox", lambda df: cox(df, "time", "event", ["age", "ai_score"])),
    ("bland_altman", lambda df: bland_altman(df, "m1", "m2")),
    ("table1", lambda df: table1(df, "ai_group", ["age", "m1"], ["sex", "site"])),
    ("paired_agreement", lambda df: paired_agreement(df, "consensus", "reader1", "ai_class")),
]


def run_once(path):
    clock = time.perf_counter
    start = clock()
    df = pd.read_csv(path)
    read = clock() - start
    times, results = {}, {}
    for name, fn in ANALYSES:
        t0 = clock()
        results[name] = fn(df)
        times[name] = clock() - t0
    return clock() - start, read, times, results, len(df)


def plain(v):
    """JSON-ready: numpy scalars to Python, NaN and infinities (never reached) to null."""
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [plain(x) for x in v]
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    return v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    best = None
    for _ in range(max(1, args.repeat)):
        run = run_once(args.csv)
        if best is None or run[0] < best[0]:
            best = run
    total, read, times, results, rows = best
    versions = {"python": platform.python_version()}
    for pkg in ("pandas", "numpy", "scipy", "statsmodels", "scikit-learn", "lifelines",
                "pingouin"):
        versions[pkg] = version(pkg)
    json.dump(plain({"rows": rows, "total_seconds": total, "read_csv_seconds": read,
                     "analyses": times, "repeats": max(1, args.repeat), "versions": versions,
                     "results": results}), sys.stdout, allow_nan=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
