#!/usr/bin/env python3
"""Reference fixtures for `evidentia stats` (dev tool): input CSVs + expected JSON per case.

Run from the repository root with the dev venv:

    /var/tmp/evpy/bin/pip install numpy scipy statsmodels scikit-learn pandas lifelines pingouin
    /var/tmp/evpy/bin/python tools/stats_reference.py

Writes tests/fixtures/stats/*.csv and tests/fixtures/stats/cases.json. Deterministic: every
random data set comes from a fixed numpy seed and is written with fixed formatting, so running
the script twice gives byte-identical files (a different numpy may draw different data; the
expected values are always recomputed from the CSVs as written, so the fixtures stay consistent).

Versions the committed fixtures were produced with: Python 3.11.7, numpy 2.4.6, scipy 1.17.1,
statsmodels 0.15.0, scikit-learn 1.9.1, pandas 2.3.3, lifelines 0.30.3, pingouin 0.7.0.

Contract: docs/statistics.md, with the extensions (diagnostic cut-offs, roc-compare, cox,
table1, paired-agreement). Each case of cases.json:
    {"name", "analysis", "input" (relative to tests/fixtures/stats), "args" (everything after
     `--input FILE`), "exit", "tolerance", "source", "expected"}  (exit 0), or
    {"name", "analysis", "input", "args", "exit": 2, "stderr_contains": [...], "source"}.
`expected` holds the contract's output keys with full-precision values (floats via repr); a
case may hold a subset of the keys (published examples: only the published numbers; degenerate
Cox comparisons: only the well-defined keys). "tolerance" is an absolute tolerance on every
number; 1e-6 where the reference computes the same method, looser only for published numbers
printed to few decimals (stated in "source").

Where a reference library is used (statsmodels, scikit-learn, pingouin, lifelines, scipy) the
script also asserts that an independent re-implementation here agrees with it, so a library
convention that differs from the contract is caught rather than copied.

Each case, data set and reference value, one function per analysis; `main()` runs them all.
The first kappa case (100 subjects, 3 ordered categories) is the table of the unit tests in
src/stats/agreement.rs.
"""

import csv
import io
import json
import math
import re
import warnings
from pathlib import Path

import lifelines
import numpy as np
import pandas as pd
import pingouin
import scipy
import sklearn
import statsmodels
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.statistics import multivariate_logrank_test
from lifelines.utils import median_survival_times
from scipy import stats
from sklearn.metrics import roc_auc_score
from statsmodels.duration.hazard_regression import PHReg
from statsmodels.duration.survfunc import survdiff
from statsmodels.stats.inter_rater import cohens_kappa, fleiss_kappa
from statsmodels.stats.proportion import proportion_confint

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "stats"
CASES = []
FILES = {}
TOL = 1e-6


# ---------------------------------------------------------------------------------------------
# Shared helpers: CSV files, parsing like the contract, categories, proportions
# ---------------------------------------------------------------------------------------------


def z_for(level):
    """Two-sided normal quantile (1.959963984540054 for 0.95)."""
    return float(stats.norm.ppf(1 - (1 - level) / 2))


def write_csv(name, header, rows):
    """Write a plain CSV (no quoting needed: values hold no comma or quote), LF line ends."""
    for r in rows:
        assert len(r) == len(header), (name, r)
        for v in r:
            assert "," not in v and '"' not in v and "\n" not in v, (name, v)
    text = ",".join(header) + "\n" + "".join(",".join(r) + "\n" for r in rows)
    FILES[name] = text
    return name


def write_raw(name, text):
    FILES[name] = text
    return name


def read_csv(name):
    """The rows of a fixture CSV as dicts of raw strings (what the CLI reads)."""
    return list(csv.DictReader(io.StringIO(FILES[name])))


def blank(v):
    return v is None or v.strip() == ""


def used_rows(rows, cols):
    """Drop rows with an empty (or whitespace-only) cell in any used column: (kept, n_missing)."""
    kept = [r for r in rows if not any(blank(r[c]) for c in cols)]
    return kept, len(rows) - len(kept)


def is_number(v):
    try:
        float(v)
        return True
    except ValueError:
        return False


def sort_categories(values):
    """Contract: numeric sort when every value parses as a number, else bytewise."""
    cats = sorted(set(v.strip() for v in values), key=lambda s: s.encode())
    if all(is_number(c) for c in cats):
        cats = sorted(cats, key=float)
    return cats


def cat_json(c, numeric):
    """A category as JSON: a number when the column(s) are numeric, else the string."""
    if not numeric:
        return c
    return int(c) if re.fullmatch(r"-?\d+", c) else float(c)


def num_json(v):
    """A numeric cell value as JSON (int when it is written as an integer)."""
    v = v.strip()
    return int(v) if re.fullmatch(r"-?\d+", v) else float(v)


def check_categories_stable(rows, kept, cols):
    """The fixture data must not depend on whether dropped rows count for the category set."""
    all_vals = [r[c] for r in rows for c in cols if not blank(r[c])]
    kept_vals = [r[c] for r in kept for c in cols]
    assert sort_categories(all_vals) == sort_categories(kept_vals)


def prop(x, n, level):
    """{estimate, wilson_low, wilson_high, exact_low, exact_high}; all null when n = 0."""
    if n == 0:
        return {k: None for k in ("estimate", "wilson_low", "wilson_high", "exact_low", "exact_high")}
    alpha = 1 - level
    wl, wh = proportion_confint(x, n, alpha=alpha, method="wilson")
    el, eh = proportion_confint(x, n, alpha=alpha, method="beta")
    # Independent check of the Wilson formula.
    z = z_for(level)
    p = x / n
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert abs(c - h - wl) < 1e-12 and abs(c + h - wh) < 1e-12
    # Clopper-Pearson from the beta quantiles (0 / 1 at the boundaries).
    el2 = 0.0 if x == 0 else stats.beta.ppf(alpha / 2, x, n - x + 1)
    eh2 = 1.0 if x == n else stats.beta.ppf(1 - alpha / 2, x + 1, n - x)
    assert abs(el - el2) < 1e-12 and abs(eh - eh2) < 1e-12
    return {"estimate": x / n, "wilson_low": float(wl), "wilson_high": float(wh),
            "exact_low": float(el), "exact_high": float(eh)}


def level_args(level):
    return [] if level == 0.95 else ["--level", repr(level)]


def add_case(name, analysis, input_, args, expected, source, tolerance=TOL):
    assert name not in {c["name"] for c in CASES}, name
    CASES.append({"name": name, "analysis": analysis, "input": input_, "args": args, "exit": 0,
                  "tolerance": tolerance, "source": source, "expected": expected})


def add_error(name, analysis, input_, args, stderr_contains, source):
    assert name not in {c["name"] for c in CASES}, name
    CASES.append({"name": name, "analysis": analysis, "input": input_, "args": args, "exit": 2,
                  "stderr_contains": stderr_contains, "source": source})


def sprinkle_missing(rng, rows, col_indices, count, whitespace=0):
    """Blank `count` random cells (one per row) in the given columns; some whitespace-only."""
    picks = rng.choice(len(rows), size=count, replace=False)
    for k, i in enumerate(sorted(picks)):
        j = col_indices[rng.integers(len(col_indices))]
        rows[i][j] = "  " if k < whitespace else ""
    return rows


def table_rows(table, labels, rng):
    """Expand a square count table (rows: rater a, columns: rater b) into shuffled subject rows."""
    out = []
    for i, la in enumerate(labels):
        for j, lb in enumerate(labels):
            out += [[la, lb]] * int(table[i][j])
    order = rng.permutation(len(out))
    return [out[k] for k in order]


def no_negative_zero(text):
    return text[1:] if re.fullmatch(r"-0(\.0*)?", text) else text


def f1(x):
    return no_negative_zero(f"{x:.1f}")


def f3(x):
    return no_negative_zero(f"{x:.3f}")


def fg(x):
    return no_negative_zero(f"{x:g}")


# ---------------------------------------------------------------------------------------------
# kappa
# ---------------------------------------------------------------------------------------------


def kappa_reference(input_, a, b, weights="none", level=0.95):
    rows = read_csv(input_)
    kept, n_missing = used_rows(rows, [a, b])
    check_categories_stable(rows, kept, [a, b])
    cats = sort_categories([r[a] for r in kept] + [r[b] for r in kept])
    numeric = all(is_number(c) for c in cats)
    k = len(cats)
    idx = {c: i for i, c in enumerate(cats)}
    table = np.zeros((k, k))
    for r in kept:
        table[idx[r[a].strip()], idx[r[b].strip()]] += 1
    if weights == "none":
        with np.errstate(invalid="ignore"):  # perfect agreement: var may round to -1e-17 (handled below)
            res = cohens_kappa(table)
        w = np.eye(k)
    else:
        with np.errstate(invalid="ignore"):
            res = cohens_kappa(table, wt=weights)
        d = np.abs(np.subtract.outer(np.arange(k), np.arange(k))) / (k - 1)
        w = 1 - d if weights == "linear" else 1 - d ** 2
    n = table.sum()
    p = table / n
    po = float((w * p).sum())
    pe = float((w * np.outer(p.sum(1), p.sum(0))).sum())
    kappa = float(res.kappa)
    assert abs((po - pe) / (1 - pe) - kappa) < 1e-12, "weighted sums must reproduce statsmodels kappa"
    var = float(res.var_kappa)
    if np.trace(table) == n:
        # Perfect agreement: the FCE variance is exactly 0; statsmodels' sum may round to -1e-17 (NaN SE).
        assert abs(var) < 1e-15
        var = 0.0
    se = math.sqrt(var)
    assert math.isnan(res.std_kappa) or abs(se - res.std_kappa) < 1e-15
    z = z_for(level)
    return {"n": int(n), "n_missing": n_missing, "categories": [cat_json(c, numeric) for c in cats],
            "observed_agreement": po, "expected_agreement": pe, "kappa": kappa, "se": se,
            "ci_low": kappa - z * se, "ci_high": kappa + z * se}


def kappa_cases():
    src = "statsmodels 0.15 cohens_kappa (kappa, std_kappa); Fleiss, Cohen & Everitt 1969 SE; po/pe weighted sums"
    rng = np.random.default_rng(20240101)

    # 1. The src/stats/agreement.rs unit-test table: 100 subjects, three ordered categories.
    table = [[53, 5, 2], [11, 14, 5], [1, 6, 3]]
    f = write_csv("kappa_agreement_rs.csv", ["rater_a", "rater_b"], table_rows(table, ["1", "2", "3"], rng))
    for wt in ("none", "linear", "quadratic"):
        args = ["--a", "rater_a", "--b", "rater_b"] + ([] if wt == "none" else ["--weights", wt])
        add_case(f"kappa_agreement_rs_table_{wt}", "kappa", f, args,
                 kappa_reference(f, "rater_a", "rater_b", wt),
                 src + "; the 3x3 table of src/stats/agreement.rs tests")

    # 2. Realistic: 200 tumour grades 1-4 by two pathologists, some empty cells, unused column.
    n = 200
    truth = rng.choice([1, 2, 3, 4], size=n, p=[0.35, 0.3, 0.2, 0.15])

    def read(t):
        step = rng.choice([0, -1, 1, -2, 2], p=[0.7, 0.125, 0.125, 0.025, 0.025])
        return int(min(4, max(1, t + step)))

    notes = ["", "re-cut", "faint stain", "ok", ""]
    rows = [[f"S{i + 1:03d}", str(read(t)), str(read(t)), notes[rng.integers(5)]] for i, t in enumerate(truth)]
    rows = sprinkle_missing(rng, rows, [1, 2], 11, whitespace=2)
    both = next(i for i, r in enumerate(rows) if not blank(r[1]) and not blank(r[2]))
    rows[both][1] = rows[both][2] = ""  # a row empty in both used columns counts once
    f = write_csv("kappa_grades.csv", ["case_id", "rater1", "rater2", "comment"], rows)
    ab = ["--a", "rater1", "--b", "rater2"]
    add_case("kappa_grades_unweighted", "kappa", f, ab, kappa_reference(f, "rater1", "rater2"), src)
    add_case("kappa_grades_weights_none", "kappa", f, ab + ["--weights", "none"],
             kappa_reference(f, "rater1", "rater2"), src + "; --weights none = unweighted")
    add_case("kappa_grades_linear", "kappa", f, ab + ["--weights", "linear"],
             kappa_reference(f, "rater1", "rater2", "linear"), src + "; wt='linear'")
    add_case("kappa_grades_quadratic", "kappa", f, ab + ["--weights", "quadratic"],
             kappa_reference(f, "rater1", "rater2", "quadratic"), src + "; wt='quadratic'")
    add_case("kappa_grades_level90", "kappa", f, ab + ["--level", "0.9"],
             kappa_reference(f, "rater1", "rater2", level=0.90), src + "; z = 1.6448536269514722")
    add_case("kappa_grades_quadratic_level90", "kappa", f, ab + ["--weights", "quadratic", "--level", "0.9"],
             kappa_reference(f, "rater1", "rater2", "quadratic", 0.90), src + "; wt='quadratic'")

    # 3. String categories: HER2 IHC scores "0", "1+", "2+", "3+" (not all numeric -> bytewise strings).
    n = 120
    truth = rng.choice(4, size=n, p=[0.3, 0.3, 0.25, 0.15])
    labels = ["0", "1+", "2+", "3+"]

    def her2(t):
        return labels[int(min(3, max(0, t + rng.choice([0, -1, 1], p=[0.75, 0.125, 0.125]))))]

    rows = [[f"H{i + 1:03d}", her2(t), her2(t)] for i, t in enumerate(truth)]
    rows = sprinkle_missing(rng, rows, [1, 2], 6)
    f = write_csv("kappa_her2.csv", ["slide", "pathologist", "ai"], rows)
    add_case("kappa_her2_strings", "kappa", f, ["--a", "pathologist", "--b", "ai"],
             kappa_reference(f, "pathologist", "ai"), src + "; string categories sorted bytewise")
    add_case("kappa_her2_strings_linear", "kappa", f, ["--a", "pathologist", "--b", "ai", "--weights", "linear"],
             kappa_reference(f, "pathologist", "ai", "linear"),
             src + "; weights by position in the bytewise-sorted string categories")

    # 4. Perfect agreement: kappa 1, se 0 (the FCE variance is exactly 0 when po = 1).
    vals = rng.choice(["1", "2", "3"], size=60, p=[0.5, 0.3, 0.2])
    f = write_csv("kappa_perfect.csv", ["a", "b"], [[v, v] for v in vals])
    add_case("kappa_perfect_agreement", "kappa", f, ["--a", "a", "--b", "b"], kappa_reference(f, "a", "b"),
             src + "; perfect agreement: kappa 1, se 0, CI [1, 1]")
    add_case("kappa_perfect_agreement_quadratic", "kappa", f, ["--a", "a", "--b", "b", "--weights", "quadratic"],
             kappa_reference(f, "a", "b", "quadratic"), src + "; perfect agreement, quadratic weights")

    # 5. Published: SAS PROC FREQ printout (AGREE) quoted in statsmodels' test_inter_rater.py for the
    #    table [[0,4,1],[0,8,0],[0,1,5]]: simple kappa .4842, ASE .1380, CI .2137-.7547; weighted
    #    (Cicchetti-Allison = linear) .4701, ASE .1457, CI .1845-.7558. Printed to 4 decimals.
    table = [[0, 4, 1], [0, 8, 0], [0, 1, 5]]
    f = write_csv("kappa_sas_example.csv", ["rater_a", "rater_b"], table_rows(table, ["1", "2", "3"], rng))
    ab = ["--a", "rater_a", "--b", "rater_b"]
    pub = {"n": 19, "kappa": 0.4842, "se": 0.1380, "ci_low": 0.2137, "ci_high": 0.7547}
    full = kappa_reference(f, "rater_a", "rater_b")
    for k, v in pub.items():
        assert abs(full[k] - v) <= 5e-5, (k, full[k], v)
    add_case("kappa_sas_published", "kappa", f, ab, pub,
             "SAS PROC FREQ AGREE printout (simple kappa) as recorded in statsmodels 0.15 "
             "stats/tests/test_inter_rater.py TestUnweightedCohens; printed to 4 decimals -> tolerance 5e-5",
             tolerance=5e-5)
    pubw = {"n": 19, "kappa": 0.4701, "se": 0.1457, "ci_low": 0.1845, "ci_high": 0.7558}
    fullw = kappa_reference(f, "rater_a", "rater_b", "linear")
    for k, v in pubw.items():
        assert abs(fullw[k] - v) <= 5e-5, (k, fullw[k], v)
    add_case("kappa_sas_published_linear", "kappa", f, ab + ["--weights", "linear"], pubw,
             "SAS PROC FREQ AGREE printout (weighted kappa, Cicchetti-Allison weights = linear) as recorded in "
             "statsmodels 0.15 stats/tests/test_inter_rater.py TestWeightedCohens; 4 decimals -> tolerance 5e-5",
             tolerance=5e-5)
    add_case("kappa_sas_table_full", "kappa", f, ab, full,
             src + "; SAS example table (category 1 never used by rater_b: categories are the union)")

    # 6. Bad input.
    f = write_csv("kappa_one_category.csv", ["a", "b"], [["2", "2"]] * 12 + [["2", ""]] + [["2", "2"]] * 5)
    add_error("kappa_one_category", "kappa", f, ["--a", "a", "--b", "b"], ["categories"],
              "contract: fewer than 2 categories -> exit 2")
    add_error("kappa_missing_column", "kappa", "kappa_grades.csv", ["--a", "rater1", "--b", "rater3"], ["rater3"],
              "contract: missing column -> exit 2 naming the column")
    f = write_raw("empty_header_only_kappa.csv", "rater1,rater2\n")
    add_error("kappa_empty_header_only", "kappa", f, ["--a", "rater1", "--b", "rater2"], [],
              "contract: empty file (header only) -> exit 2")
    f = write_raw("empty_zero_bytes.csv", "")
    add_error("kappa_empty_zero_bytes", "kappa", f, ["--a", "rater1", "--b", "rater2"], [],
              "contract: empty file (0 bytes) -> exit 2")


# ---------------------------------------------------------------------------------------------
# fleiss
# ---------------------------------------------------------------------------------------------


def fleiss_reference(input_, raters):
    rows = read_csv(input_)
    kept, n_missing = used_rows(rows, raters)
    check_categories_stable(rows, kept, raters)
    cats = sort_categories([r[c] for r in kept for c in raters])
    numeric = all(is_number(c) for c in cats)
    idx = {c: i for i, c in enumerate(cats)}
    counts = np.zeros((len(kept), len(cats)))
    for i, r in enumerate(kept):
        for c in raters:
            counts[i, idx[r[c].strip()]] += 1
    kappa = float(fleiss_kappa(counts, method="fleiss"))
    # Independent kappa (Fleiss 1971) and the SE under H0 of Fleiss, Nee & Landis (1979), as
    # R irr::kappam.fleiss: var = 2 / (sum pq)^2 / (N m (m-1)) * ((sum pq)^2 - sum pq(q-p)).
    ns, m = counts.shape[0], len(raters)
    pj = counts.sum(0) / (ns * m)
    pi = ((counts * (counts - 1)).sum(1)) / (m * (m - 1))
    pbar, pe = pi.mean(), (pj ** 2).sum()
    assert abs((pbar - pe) / (1 - pe) - kappa) < 1e-12
    pq = pj * (1 - pj)
    var0 = 2 / (pq.sum() ** 2 * ns * m * (m - 1)) * (pq.sum() ** 2 - (pq * (1 - 2 * pj)).sum())
    se = math.sqrt(var0)
    z = kappa / se
    return {"n_subjects": ns, "n_raters": m, "n_missing": n_missing,
            "categories": [cat_json(c, numeric) for c in cats], "kappa": kappa, "se": se, "z": z,
            "p_value": float(2 * stats.norm.sf(abs(z)))}


# Fleiss (1971) Table 1 / R irr `diagnoses`: 30 patients, 6 raters, 5 diagnoses (per-rater form
# as in irr; the per-patient counts agree with Fleiss 1971 Table 1).
DIAGNOSES = """\
4 4 4 4 4 4|2 2 2 5 5 5|2 3 3 3 3 5|5 5 5 5 5 5|2 2 2 4 4 4|1 1 3 3 3 3|3 3 3 3 5 5|1 1 3 3 3 4|\
1 1 4 4 4 4|5 5 5 5 5 5|1 4 4 4 4 4|1 2 4 4 4 4|2 2 2 3 3 3|1 4 4 4 4 4|2 2 4 4 4 5|3 3 3 3 3 5|\
1 1 1 4 5 5|1 1 1 1 1 2|2 2 4 4 4 4|1 3 3 5 5 5|5 5 5 5 5 5|2 4 4 4 4 4|2 2 4 5 5 5|1 1 4 4 4 4|\
1 4 4 4 4 5|2 2 2 2 2 4|1 1 1 1 5 5|2 2 4 4 4 4|1 3 3 3 3 3|5 5 5 5 5 5"""
DIAGNOSIS_LABELS = {"1": "1. Depression", "2": "2. Personality Disorder", "3": "3. Schizophrenia",
                    "4": "4. Neurosis", "5": "5. Other"}
# Fleiss (1971) Table 1 as per-patient counts (transcribed by quadagree's data_raw/fleiss1971.csv).
FLEISS1971_COUNTS = [
    [0, 0, 0, 6, 0], [0, 3, 0, 0, 3], [0, 1, 4, 0, 1], [0, 0, 0, 0, 6], [0, 3, 0, 3, 0],
    [2, 0, 4, 0, 0], [0, 0, 4, 0, 2], [2, 0, 3, 1, 0], [2, 0, 0, 4, 0], [0, 0, 0, 0, 6],
    [1, 0, 0, 5, 0], [1, 1, 0, 4, 0], [0, 3, 3, 0, 0], [1, 0, 0, 5, 0], [0, 2, 0, 3, 1],
    [0, 0, 5, 0, 1], [3, 0, 0, 1, 2], [5, 1, 0, 0, 0], [0, 2, 0, 4, 0], [1, 0, 2, 0, 3],
    [0, 0, 0, 0, 6], [0, 1, 0, 5, 0], [0, 2, 0, 1, 3], [2, 0, 0, 4, 0], [1, 0, 0, 4, 1],
    [0, 5, 0, 1, 0], [4, 0, 0, 0, 2], [0, 2, 0, 4, 0], [1, 0, 5, 0, 0], [0, 0, 0, 0, 6]]


def fleiss_cases():
    src = ("statsmodels 0.15 fleiss_kappa (kappa); SE under H0 of Fleiss, Nee & Landis 1979 as R "
           "irr::kappam.fleiss (numpy); z = kappa/se; p two-sided normal")
    rng = np.random.default_rng(20240202)

    # 1. Realistic: 150 subjects x 4 raters, TIL category 1-3, some empty cells.
    n, m = 150, 4
    truth = rng.choice([1, 2, 3], size=n, p=[0.4, 0.35, 0.25])
    rows = []
    for i, t in enumerate(truth):
        reads = [str(int(min(3, max(1, t + rng.choice([0, -1, 1], p=[0.72, 0.14, 0.14]))))) for _ in range(m)]
        rows.append([f"P{i + 1:03d}"] + reads)
    rows = sprinkle_missing(rng, rows, [1, 2, 3, 4], 9, whitespace=1)
    f = write_csv("fleiss_til.csv", ["subject", "r1", "r2", "r3", "r4"], rows)
    raters = ["r1", "r2", "r3", "r4"]
    add_case("fleiss_til_4_raters", "fleiss", f, ["--raters", ",".join(raters)], fleiss_reference(f, raters), src)
    add_case("fleiss_til_3_raters", "fleiss", f, ["--raters", "r1,r2,r3"], fleiss_reference(f, raters[:3]),
             src + "; only three of the four rater columns used (n_missing counts only those)")

    # 2. Published: Fleiss (1971) psychiatric diagnoses.
    reads = [row.split() for row in DIAGNOSES.split("|")]
    assert len(reads) == 30
    for r, c in zip(reads, FLEISS1971_COUNTS):
        assert [r.count(str(k)) for k in range(1, 6)] == c
    rows = [[str(i + 1)] + [DIAGNOSIS_LABELS[v] for v in r] for i, r in enumerate(reads)]
    raters = [f"rater{j}" for j in range(1, 7)]
    f = write_csv("fleiss_diagnoses.csv", ["patient"] + raters, rows)
    full = fleiss_reference(f, raters)
    args = ["--raters", ",".join(raters)]
    assert round(full["kappa"], 3) == 0.430 and round(full["z"], 1) == 17.7
    add_case("fleiss_diagnoses_published_1971", "fleiss", f, args,
             {"n_subjects": 30, "n_raters": 6, "kappa": 0.430},
             "Fleiss 1971 Psychol Bull 76:378, Table 1 data, published kappa .430 (3 decimals -> tolerance 5e-4)",
             tolerance=5e-4)
    irr = {"kappa": 0.4302445, "z": 17.65183}
    assert abs(full["kappa"] - irr["kappa"]) < 5e-8 and abs(full["z"] - irr["z"]) < 5e-6
    add_case("fleiss_diagnoses_irr", "fleiss", f, args, dict(irr, n_subjects=30, n_raters=6),
             "R irr::kappam.fleiss(diagnoses) printout as recorded in statsmodels 0.15 test_fleiss_kappa_irr: "
             "Kappa 0.4302445, z 17.65183 (5 decimals -> tolerance 5e-6)", tolerance=5e-6)
    add_case("fleiss_diagnoses_full", "fleiss", f, args, full,
             src + "; Fleiss 1971 data with irr's string labels (categories sorted bytewise)")

    # 3. Bad input.
    f = write_csv("fleiss_one_category.csv", ["subject", "r1", "r2", "r3"],
                  [[str(i + 1), "negative", "negative", "negative"] for i in range(15)])
    add_error("fleiss_one_category", "fleiss", f, ["--raters", "r1,r2,r3"], ["categories"],
              "contract: fewer than 2 categories -> exit 2")
    add_error("fleiss_missing_column", "fleiss", "fleiss_til.csv", ["--raters", "r1,r2,r5"], ["r5"],
              "contract: missing column -> exit 2 naming the column")


# ---------------------------------------------------------------------------------------------
# icc
# ---------------------------------------------------------------------------------------------


def icc_formulas(x, level):
    """Shrout & Fleiss (1979) ICCs and their F-based CIs, replicating pingouin 0.7.0
    reliability.intraclass_corr at full precision and at any level (pingouin fixes 95%)."""
    n, k = x.shape
    grand = x.mean()
    ss_total = ((x - grand) ** 2).sum()
    ss_rows = k * ((x.mean(1) - grand) ** 2).sum()
    ss_cols = n * ((x.mean(0) - grand) ** 2).sum()
    ss_err = ss_total - ss_rows - ss_cols
    msb = ss_rows / (n - 1)
    msj = ss_cols / (k - 1)
    mse = ss_err / ((n - 1) * (k - 1))
    msw = (ss_cols + ss_err) / (n * (k - 1))
    icc1 = (msb - msw) / (msb + (k - 1) * msw)
    icc2 = (msb - mse) / (msb + (k - 1) * mse + k * (msj - mse) / n)
    icc3 = (msb - mse) / (msb + (k - 1) * mse)
    icc1k = (msb - msw) / msb
    icc2k = (msb - mse) / (msb + (msj - mse) / n)
    icc3k = (msb - mse) / msb
    alpha = 1 - level
    F = stats.f
    f1k = msb / msw
    df1, df1kd, df2kd = n - 1, n * (k - 1), (n - 1) * (k - 1)
    f1l = f1k / F.ppf(1 - alpha / 2, df1, df1kd)
    f1u = f1k * F.ppf(1 - alpha / 2, df1kd, df1)
    l1, u1 = (f1l - 1) / (f1l + (k - 1)), (f1u - 1) / (f1u + (k - 1))
    f3k = msb / mse
    f3l = f3k / F.ppf(1 - alpha / 2, df1, df2kd)
    f3u = f3k * F.ppf(1 - alpha / 2, df2kd, df1)
    l3, u3 = (f3l - 1) / (f3l + (k - 1)), (f3u - 1) / (f3u + (k - 1))
    fj = msj / mse
    vn = df2kd * (k * icc2 * fj + n * (1 + (k - 1) * icc2) - k * icc2) ** 2
    vd = df1 * k ** 2 * icc2 ** 2 * fj ** 2 + (n * (1 + (k - 1) * icc2) - k * icc2) ** 2
    v = vn / vd
    f2u = F.ppf(1 - alpha / 2, n - 1, v)
    f2l = F.ppf(1 - alpha / 2, v, n - 1)
    l2 = n * (msb - f2u * mse) / (f2u * (k * msj + (k * n - k - n) * mse) + n * msb)
    u2 = n * (f2l * msb - mse) / (k * msj + (k * n - k - n) * mse + n * f2l * msb)
    return {
        "icc1": (icc1, l1, u1), "icc2": (icc2, l2, u2), "icc3": (icc3, l3, u3),
        "icc1k": (icc1k, 1 - 1 / f1l, 1 - 1 / f1u),
        "icc2k": (icc2k, l2 * k / (1 + l2 * (k - 1)), u2 * k / (1 + u2 * (k - 1))),
        "icc3k": (icc3k, 1 - 1 / f3l, 1 - 1 / f3u),
    }


PINGOUIN_TYPES = {"icc1": "ICC(1,1)", "icc2": "ICC(A,1)", "icc3": "ICC(C,1)",
                  "icc1k": "ICC(1,k)", "icc2k": "ICC(A,k)", "icc3k": "ICC(C,k)"}


def icc_reference(input_, raters, level=0.95):
    rows = read_csv(input_)
    kept, n_missing = used_rows(rows, raters)
    x = np.array([[float(r[c]) for c in raters] for r in kept])
    mine = icc_formulas(x, level)
    # pingouin: same ICCs; its CI95 column is rounded to 2 decimals by default.
    long = pd.DataFrame([(i, c, x[i, j]) for i in range(len(x)) for j, c in enumerate(raters)],
                        columns=["target", "rater", "score"])
    pg = pingouin.intraclass_corr(long, targets="target", raters="rater", ratings="score").set_index("Type")
    saved = pingouin.options.get("round.column.CI95")
    pingouin.options["round.column.CI95"] = None
    try:
        pg_full = pingouin.intraclass_corr(long, targets="target", raters="rater", ratings="score").set_index("Type")
    finally:
        pingouin.options["round.column.CI95"] = saved
    for key, name in PINGOUIN_TYPES.items():
        est, lo, hi = mine[key]
        assert abs(pg.loc[name, "ICC"] - est) < 1e-12, key
        if level == 0.95:
            assert np.allclose(np.round([lo, hi], 2), pg.loc[name, "CI95"], atol=1e-12), (key, lo, hi)
            assert np.allclose([lo, hi], pg_full.loc[name, "CI95"], rtol=0, atol=1e-12), key
    out = {"n_subjects": len(kept), "n_raters": len(raters), "n_missing": n_missing}
    for key in PINGOUIN_TYPES:
        est, lo, hi = mine[key]
        out[key], out[key + "_ci_low"], out[key + "_ci_high"] = float(est), float(lo), float(hi)
    return out


# Shrout & Fleiss (1979) Table 2: 6 targets rated by 4 judges.
SHROUT_FLEISS = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]


def icc_cases():
    src = ("pingouin 0.7.0 intraclass_corr (ICC); F-based CIs re-computed at full precision with pingouin's "
           "formulas (asserted to round to pingouin's 2-decimal CI95 and to equal its unrounded CI)")
    rng = np.random.default_rng(20240303)

    # 1. Realistic: 80 slides, stromal TIL % by three readers with reader bias, some empty cells.
    n = 80
    true = np.clip(rng.normal(30, 12, size=n), 1, 90)
    bias = [0.0, 3.0, -2.0]
    rows = [[f"T{i + 1:02d}"] + [f1(max(0.0, t + b + rng.normal(0, 5))) for b in bias] for i, t in enumerate(true)]
    rows = sprinkle_missing(rng, rows, [1, 2, 3], 7, whitespace=1)
    raters = ["reader_a", "reader_b", "reader_c"]
    f = write_csv("icc_til.csv", ["target"] + raters, rows)
    add_case("icc_til_3_readers", "icc", f, ["--raters", ",".join(raters)], icc_reference(f, raters), src)
    add_case("icc_til_level90", "icc", f, ["--raters", ",".join(raters), "--level", "0.9"],
             icc_reference(f, raters, 0.90),
             "pingouin 0.7.0 intraclass_corr formulas with alpha = 0.10 (pingouin itself fixes alpha = 0.05; "
             "same ICCs asserted against pingouin)")
    add_case("icc_til_2_readers", "icc", f, ["--raters", "reader_a,reader_c"],
             icc_reference(f, ["reader_a", "reader_c"]),
             src + "; two of the three reader columns")

    # 2. Published: Shrout & Fleiss 1979 Table 2 data; Table 4 ICCs .17 .29 .71 .44 .62 .91.
    judges = ["judge1", "judge2", "judge3", "judge4"]
    f = write_csv("icc_shrout_fleiss.csv", ["target"] + judges,
                  [[str(i + 1)] + [str(v) for v in r] for i, r in enumerate(SHROUT_FLEISS)])
    full = icc_reference(f, judges)
    pub = {"n_subjects": 6, "n_raters": 4, "icc1": 0.17, "icc2": 0.29, "icc3": 0.71,
           "icc1k": 0.44, "icc2k": 0.62, "icc3k": 0.91}
    for k, v in pub.items():
        assert abs(full[k] - v) <= 5e-3, (k, full[k], v)
    add_case("icc_shrout_fleiss_published", "icc", f, ["--raters", ",".join(judges)], pub,
             "Shrout & Fleiss 1979 Psychol Bull 86:420, Table 2 data, Table 4 ICCs (2 decimals -> tolerance 5e-3)",
             tolerance=5e-3)
    add_case("icc_shrout_fleiss_full", "icc", f, ["--raters", ",".join(judges)], full,
             src + "; Shrout & Fleiss 1979 data")

    # 3. Bad input: a non-numeric rating (row 6; row 2 has an empty cell before it).
    rows = [[f"T{i + 1}", f1(20 + i), f1(22 + i), f1(19 + i)] for i in range(10)]
    rows[1][2] = ""
    rows[5][2] = "n/a"
    f = write_csv("icc_bad_value.csv", ["target"] + raters, rows)
    add_error("icc_non_numeric", "icc", f, ["--raters", ",".join(raters)], ["reader_b", "row 6"],
              "contract: non-numeric value where a number is needed -> exit 2 naming column and row")
    add_error("icc_empty_header_only", "icc",
              write_raw("empty_header_only_icc.csv", "target,reader_a,reader_b,reader_c\n"),
              ["--raters", ",".join(raters)], [], "contract: empty file (header only) -> exit 2")


# ---------------------------------------------------------------------------------------------
# diagnostic
# ---------------------------------------------------------------------------------------------


def is_positive(value, positive, cutoff):
    if cutoff is not None:
        return float(value) >= cutoff
    return value.strip() == positive


def diagnostic_reference(input_, test, reference, positive="1", test_cutoff=None, reference_cutoff=None, level=0.95):
    rows = read_csv(input_)
    kept, n_missing = used_rows(rows, [test, reference])
    tp = fp = fn = tn = 0
    for r in kept:
        t = is_positive(r[test], positive, test_cutoff)
        d = is_positive(r[reference], positive, reference_cutoff)
        tp += t and d
        fp += t and not d
        fn += (not t) and d
        tn += (not t) and not d
    n = tp + fp + fn + tn
    sens, spec, acc = prop(tp, tp + fn, level), prop(tn, tn + fp, level), prop(tp + tn, n, level)
    return {"n": n, "n_missing": n_missing, "tp": tp, "fp": fp, "fn": fn, "tn": tn,
            "sensitivity": sens, "specificity": spec, "ppv": prop(tp, tp + fp, level),
            "npv": prop(tn, tn + fn, level), "accuracy": acc, "ppa": sens, "npa": spec, "opa": acc}


def diagnostic_cases():
    src = ("statsmodels 0.15 proportion_confint method='wilson' and method='beta' (Clopper-Pearson), "
           "both re-derived in numpy/scipy; counts by hand")
    rng = np.random.default_rng(20240404)

    # 1. Realistic binary calls (0/1), default --positive 1.
    n = 250
    d = rng.random(n) < 0.35
    t = np.where(d, rng.random(n) < 0.85, rng.random(n) < 0.10)
    rows = [[f"C{i + 1:03d}", str(int(ti)), str(int(di))] for i, (ti, di) in enumerate(zip(t, d))]
    rows = sprinkle_missing(rng, rows, [1, 2], 8, whitespace=1)
    f = write_csv("diag_binary.csv", ["case", "ai_call", "reference"], rows)
    tr = ["--test", "ai_call", "--reference", "reference"]
    add_case("diagnostic_binary", "diagnostic", f, tr, diagnostic_reference(f, "ai_call", "reference"), src)
    add_case("diagnostic_binary_level90", "diagnostic", f, tr + ["--level", "0.9"],
             diagnostic_reference(f, "ai_call", "reference", level=0.90), src + "; alpha = 0.10")
    add_case("diagnostic_binary_positive_0", "diagnostic", f, tr + ["--positive", "0"],
             diagnostic_reference(f, "ai_call", "reference", positive="0"),
             src + "; --positive 0 (the other value is negative)")

    # 2. String values with --positive.
    n = 150
    d = rng.random(n) < 0.4
    t = np.where(d, rng.random(n) < 0.8, rng.random(n) < 0.15)
    lab = {True: "Positive", False: "Negative"}
    rows = [[f"K{i + 1:03d}", lab[bool(ti)], lab[bool(di)]] for i, (ti, di) in enumerate(zip(t, d))]
    rows = sprinkle_missing(rng, rows, [1, 2], 5)
    f = write_csv("diag_strings.csv", ["case", "ai_call", "consensus"], rows)
    add_case("diagnostic_strings_positive", "diagnostic", f,
             ["--test", "ai_call", "--reference", "consensus", "--positive", "Positive"],
             diagnostic_reference(f, "ai_call", "consensus", positive="Positive"), src + "; --positive Positive")

    # 3. A zero cell: no false positives -> specificity 1 and ppv 1 with one-sided exact CIs.
    n = 60
    d = rng.random(n) < 0.5
    t = np.where(d, rng.random(n) < 0.8, False)
    rows = [[str(int(ti)), str(int(di))] for ti, di in zip(t, d)]
    f = write_csv("diag_no_fp.csv", ["test", "reference"], rows)
    exp = diagnostic_reference(f, "test", "reference")
    assert exp["fp"] == 0 and exp["specificity"]["estimate"] == 1.0
    add_case("diagnostic_zero_fp", "diagnostic", f, ["--test", "test", "--reference", "reference"], exp,
             src + "; fp = 0: specificity and ppv 1, exact upper bound 1")

    # 4. Every reference positive: specificity (and npa) have denominator 0 -> null fields.
    n = 50
    t = rng.random(n) < 0.8
    rows = [[str(int(ti)), "1"] for ti in t]
    f = write_csv("diag_all_ref_positive.csv", ["test", "reference"], rows)
    exp = diagnostic_reference(f, "test", "reference")
    assert exp["specificity"]["estimate"] is None
    add_case("diagnostic_all_reference_positive", "diagnostic", f, ["--test", "test", "--reference", "reference"], exp,
             src + "; tn + fp = 0 -> specificity/npa objects with every field null (contract: denominator 0 -> null)")

    # 5. Cut-offs on PD-L1 TPS (%): --test-cutoff / --reference-cutoff (extension).
    n = 200
    true = np.where(rng.random(n) < 0.35, 0.0, np.exp(rng.normal(2.5, 1.6, size=n)))
    true = np.clip(true, 0, 100)

    def noisy(x, sd):
        return np.clip(x * np.exp(rng.normal(0, sd, size=len(x))) + (x > 0) * rng.normal(0, 1, size=len(x)), 0, 100)

    path = np.round(noisy(true, 0.25))
    ai = np.round(noisy(true, 0.35) * 2) / 2  # halves: 0.5 steps
    # Values exactly at the cut-offs, to test ">=".
    path[:4] = [1, 50, 0, 49]
    ai[:4] = [1, 49.5, 1, 50]
    cat = np.where(path >= 50, ">=50%", np.where(path >= 1, "1-49%", "<1%"))
    rows = [[f"L{i + 1:03d}", fg(a), fg(p), c] for i, (a, p, c) in enumerate(zip(ai, path, cat))]
    rows = sprinkle_missing(rng, rows, [1, 2], 7)
    for r in rows:  # keep the category empty exactly when the pathologist TPS is empty
        if blank(r[2]):
            r[3] = ""
    f = write_csv("diag_tps.csv", ["case", "ai_tps", "pathologist_tps", "pathologist_category"], rows)
    args = ["--test", "ai_tps", "--reference", "pathologist_tps"]
    add_case("diagnostic_tps_cutoff_1", "diagnostic", f, args + ["--test-cutoff", "1", "--reference-cutoff", "1"],
             diagnostic_reference(f, "ai_tps", "pathologist_tps", test_cutoff=1.0, reference_cutoff=1.0),
             src + "; extension: value >= cut-off is positive (TPS >= 1%)")
    add_case("diagnostic_tps_cutoff_50", "diagnostic", f, args + ["--test-cutoff", "50", "--reference-cutoff", "50"],
             diagnostic_reference(f, "ai_tps", "pathologist_tps", test_cutoff=50.0, reference_cutoff=50.0),
             src + "; extension: TPS >= 50%")
    add_case("diagnostic_tps_cutoff_50_level90", "diagnostic", f,
             args + ["--test-cutoff", "50", "--reference-cutoff", "50", "--level", "0.9"],
             diagnostic_reference(f, "ai_tps", "pathologist_tps", test_cutoff=50.0, reference_cutoff=50.0, level=0.90),
             src + "; extension: TPS >= 50%, alpha = 0.10")
    add_case("diagnostic_tps_test_cutoff_reference_positive", "diagnostic", f,
             ["--test", "ai_tps", "--reference", "pathologist_category", "--test-cutoff", "50", "--positive", ">=50%"],
             diagnostic_reference(f, "ai_tps", "pathologist_category", positive=">=50%", test_cutoff=50.0),
             src + "; extension: --test-cutoff on the numeric test, --positive applies to the reference only")

    # 6. Bad input.
    rows = [[f"{(i * 7) % 60}", f"{(i * 11) % 70}"] for i in range(12)]
    rows[2][0] = ""
    rows[6][0] = "<1"
    f = write_csv("diag_tps_bad.csv", ["ai_tps", "pathologist_tps"], rows)
    add_error("diagnostic_cutoff_non_numeric", "diagnostic", f,
              ["--test", "ai_tps", "--reference", "pathologist_tps", "--test-cutoff", "1", "--reference-cutoff", "1"],
              ["ai_tps", "row 7"],
              "extension: with --test-cutoff the test column must be numeric -> exit 2 naming column and row")
    add_error("diagnostic_missing_column", "diagnostic", "diag_binary.csv",
              ["--test", "ai_call", "--reference", "truth"],
              ["truth"], "contract: missing column -> exit 2 naming the column")
    add_error("diagnostic_empty_zero_bytes", "diagnostic", "empty_zero_bytes.csv",
              ["--test", "ai_call", "--reference", "reference"], [], "contract: empty file (0 bytes) -> exit 2")


# ---------------------------------------------------------------------------------------------
# roc and roc-compare
# ---------------------------------------------------------------------------------------------


def delong_direct(pos, neg):
    """AUC and DeLong (1988) structural components by the direct O(m*n) kernel:
    psi = 1 if X > Y, 1/2 if X = Y, 0 otherwise; V10_i = mean_j psi(X_i, Y_j), V01_j = mean_i psi."""
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    return psi.mean(), psi.mean(1), psi.mean(0)


def delong_midrank(pos, neg):
    """The same components by midranks (Sun & Xu 2014), used only to cross-check."""
    m, n = len(pos), len(neg)
    allr = stats.rankdata(np.r_[pos, neg])
    v10 = (allr[:m] - stats.rankdata(pos)) / n
    v01 = 1 - (allr[m:] - stats.rankdata(neg)) / m
    return v10.mean(), v10, v01


def youden(pos, neg):
    """Youden threshold per the contract: an observed score t, score >= t positive, J maximal,
    ties in J to the larger t. J is compared exactly (integers); also reports whether the naive
    float J = tp/m + tn/n - 1 would pick the same threshold."""
    m, n = len(pos), len(neg)
    best = None
    best_float = None
    for t in sorted(set(np.r_[pos, neg].tolist())):
        tp, tn = int((pos >= t).sum()), int((neg < t).sum())
        j_exact = tp * n + tn * m  # = m*n*(J + 1)
        j_float = tp / m + tn / n - 1
        if best is None or j_exact >= best[0]:
            best = (j_exact, t, tp, tn)
        if best_float is None or j_float >= best_float[0]:
            best_float = (j_float, t)
    _, t, tp, tn = best
    YOUDEN_TIES.append(sum(1 for u in set(np.r_[pos, neg].tolist())
                           if int((pos >= u).sum()) * n + int((neg < u).sum()) * m == best[0]))
    return t, tp / m, tn / n, best_float[1] == t


YOUDEN_TIES = []  # number of thresholds sharing the maximal J, per call (to check the tie rule is exercised)


def scores_split(kept, score, reference, positive):
    s = np.array([float(r[score]) for r in kept])
    y = np.array([r[reference].strip() == positive for r in kept])
    return s, y


def roc_reference(input_, score, reference, positive="1", level=0.95):
    rows = read_csv(input_)
    kept, n_missing = used_rows(rows, [score, reference])
    s, y = scores_split(kept, score, reference, positive)
    pos, neg = s[y], s[~y]
    m, n = len(pos), len(neg)
    auc, v10, v01 = delong_direct(pos, neg)
    auc_sk = roc_auc_score(y.astype(int), s)
    assert abs(auc - auc_sk) < 1e-12
    auc2, w10, w01 = delong_midrank(pos, neg)
    assert abs(auc2 - auc) < 1e-12 and np.allclose(v10, w10, atol=1e-12) and np.allclose(v01, w01, atol=1e-12)
    se = math.sqrt(v10.var(ddof=1) / m + v01.var(ddof=1) / n)
    z = z_for(level)
    t, sens, spec, float_agrees = youden(pos, neg)
    assert float_agrees, "fixture must not depend on float rounding of J"
    return {"n_positive": m, "n_negative": n, "n_missing": n_missing, "auc": float(auc), "se": se,
            "ci_low": max(0.0, auc - z * se), "ci_high": min(1.0, auc + z * se),
            "youden_threshold": t if not float(t).is_integer() else int(t),
            "youden_sensitivity": sens, "youden_specificity": spec}


def roc_compare_reference(input_, a, b, reference, positive="1", level=0.95):
    rows = read_csv(input_)
    kept, n_missing = used_rows(rows, [a, b, reference])
    sa, y = scores_split(kept, a, reference, positive)
    sb, _ = scores_split(kept, b, reference, positive)
    m, n = int(y.sum()), int((~y).sum())
    auc_a, v10a, v01a = delong_direct(sa[y], sa[~y])
    auc_b, v10b, v01b = delong_direct(sb[y], sb[~y])
    assert abs(auc_a - roc_auc_score(y, sa)) < 1e-12 and abs(auc_b - roc_auc_score(y, sb)) < 1e-12
    s10 = np.cov(np.vstack([v10a, v10b]), ddof=1)
    s01 = np.cov(np.vstack([v01a, v01b]), ddof=1)
    cov = s10 / m + s01 / n  # DeLong, DeLong & Clarke-Pearson 1988, eq. for the paired covariance matrix
    se_a, se_b = math.sqrt(cov[0, 0]), math.sqrt(cov[1, 1])
    var_d = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    # Cross-check with midrank components.
    _, w10a, w01a = delong_midrank(sa[y], sa[~y])
    _, w10b, w01b = delong_midrank(sb[y], sb[~y])
    d10, d01 = w10a - w10b, w01a - w01b
    assert abs(d10.var(ddof=1) / m + d01.var(ddof=1) / n - var_d) < 1e-14
    se_d = math.sqrt(var_d)
    diff = float(auc_a - auc_b)
    z = diff / se_d
    zl = z_for(level)
    return {"n_positive": m, "n_negative": n, "n_missing": n_missing, "auc_a": float(auc_a), "auc_b": float(auc_b),
            "se_a": se_a, "se_b": se_b, "difference": diff, "se_difference": se_d,
            "ci_low": diff - zl * se_d, "ci_high": diff + zl * se_d, "z": z,
            "p_value": float(2 * stats.norm.sf(abs(z)))}


HANLEY_MCNEIL_NORMAL = [33, 6, 6, 11, 2]  # ratings 1..5 (definitely normal .. definitely abnormal)
HANLEY_MCNEIL_ABNORMAL = [3, 2, 2, 11, 33]


def roc_cases():
    src = ("scikit-learn 1.9 roc_auc_score (AUC); DeLong 1988 SE from the direct O(m*n) placement values with "
           "(m-1)/(n-1) variances (numpy; cross-checked by midranks); Youden per contract with exact integer J")
    rng = np.random.default_rng(20240505)

    # 1. Realistic continuous scores.
    n = 220
    d = rng.random(n) < 0.4
    s = np.where(d, rng.normal(1.3, 1.0, size=n), rng.normal(0, 1.0, size=n))
    s = 1 / (1 + np.exp(-s))
    rows = [[f"R{i + 1:03d}", f3(si), str(int(di))] for i, (si, di) in enumerate(zip(s, d))]
    rows = sprinkle_missing(rng, rows, [1, 2], 9, whitespace=1)
    f = write_csv("roc_scores.csv", ["case", "ai_score", "reference"], rows)
    args = ["--score", "ai_score", "--reference", "reference"]
    add_case("roc_scores", "roc", f, args, roc_reference(f, "ai_score", "reference"), src)
    add_case("roc_scores_level90", "roc", f, args + ["--level", "0.9"],
             roc_reference(f, "ai_score", "reference", level=0.90), src + "; alpha = 0.10")

    # 2. Many tied scores (integer grade 0-10), string reference with --positive.
    n = 150
    d = rng.random(n) < 0.45
    g = np.clip(np.round(np.where(d, rng.normal(6, 2.2, size=n), rng.normal(3.5, 2.2, size=n))), 0, 10).astype(int)
    rows = [[f"G{i + 1:03d}", str(gi), "malignant" if di else "benign"] for i, (gi, di) in enumerate(zip(g, d))]
    rows = sprinkle_missing(rng, rows, [1, 2], 5)
    f = write_csv("roc_ties.csv", ["case", "grade_score", "diagnosis"], rows)
    add_case("roc_tied_scores_string_positive", "roc", f,
             ["--score", "grade_score", "--reference", "diagnosis", "--positive", "malignant"],
             roc_reference(f, "grade_score", "diagnosis", positive="malignant"),
             src + "; integer scores 0-10 with many ties (psi = 1/2), --positive malignant")

    # 3. Near-perfect separation: the upper CI bound is clipped to 1.
    n = 60
    d = np.arange(n) % 3 == 0
    s = np.where(d, rng.normal(3, 0.6, size=n), rng.normal(0, 0.6, size=n))
    s[0] = -0.2  # one positive below some negatives
    rows = [[f3(si), str(int(di))] for si, di in zip(s, d)]
    f = write_csv("roc_near_perfect.csv", ["score", "truth"], rows)
    exp = roc_reference(f, "score", "truth")
    assert exp["auc"] + z_for(0.95) * exp["se"] > 1 and exp["ci_high"] == 1.0
    add_case("roc_ci_clipped", "roc", f, ["--score", "score", "--reference", "truth"], exp,
             src + "; auc + z*se > 1: ci_high clipped to 1")

    # 3b. Two thresholds share the maximal J (0.5 at t = 3 and t = 7): the larger one wins.
    pos, neg = [3, 4, 7, 8] * 5, [1, 2, 5, 6] * 5
    rows = [[str(v), "1"] for v in pos] + [[str(v), "0"] for v in neg]
    rows = [rows[k] for k in rng.permutation(len(rows))]
    f = write_csv("roc_youden_tie.csv", ["score", "truth"], rows)
    exp = roc_reference(f, "score", "truth")
    assert YOUDEN_TIES[-1] == 2 and exp["youden_threshold"] == 7
    add_case("roc_youden_tie_larger_threshold", "roc", f, ["--score", "score", "--reference", "truth"], exp,
             src + "; J = 0.5 at thresholds 3 and 7 (exactly, also in floating point): the larger, 7, is reported")

    # 4. Published: Hanley & McNeil 1982 CT ratings (Table I; Stata hanley.dta): area 0.893.
    rows = []
    for r, c in enumerate(HANLEY_MCNEIL_NORMAL):
        rows += [[str(r + 1), "0"]] * c
    for r, c in enumerate(HANLEY_MCNEIL_ABNORMAL):
        rows += [[str(r + 1), "1"]] * c
    rows = [[str(i + 1)] + rows[k] for i, k in enumerate(rng.permutation(len(rows)))]
    f = write_csv("roc_hanley_mcneil.csv", ["patient", "rating", "abnormal"], rows)
    full = roc_reference(f, "rating", "abnormal")
    assert round(full["auc"], 3) == 0.893
    add_case("roc_hanley_mcneil_published", "roc", f, ["--score", "rating", "--reference", "abnormal"],
             {"n_positive": 51, "n_negative": 58, "auc": 0.893},
             "Hanley & McNeil 1982 Radiology 143:29, Table I CT ratings (58 normal, 51 abnormal), published "
             "area 0.893 (3 decimals -> tolerance 5e-4); their SE .032 is a different (exponential) approximation, "
             "not compared",
             tolerance=5e-4)
    add_case("roc_hanley_mcneil_full", "roc", f, ["--score", "rating", "--reference", "abnormal"], full,
             src + "; Hanley & McNeil 1982 data (5-point ratings)")

    # 5. roc-compare (extension): paired DeLong on two correlated scores.
    n = 200
    d = rng.random(n) < 0.4
    latent = rng.normal(0, 1, size=n)
    sa = np.where(d, 1.4, 0.0) + 0.7 * latent + 0.7 * rng.normal(0, 1, size=n)
    sb = np.where(d, 1.0, 0.0) + 0.7 * latent + 0.7 * rng.normal(0, 1, size=n)
    sb = np.round(sb * 2) / 2  # the pathologist scores on a coarse scale: ties
    rows = [[f"Q{i + 1:03d}", str(int(di)), f3(a), fg(b)] for i, (di, a, b) in enumerate(zip(d, sa, sb))]
    rows = sprinkle_missing(rng, rows, [1, 2, 3], 10)
    f = write_csv("roc_compare.csv", ["case", "reference", "ai_score", "pathologist_score"], rows)
    src_c = ("paired DeLong, DeLong & Clarke-Pearson 1988 (as pROC roc.test method='delong'): covariance of the two "
             "AUCs from the direct O(m*n) placement values (numpy), cross-checked by midrank components; "
             "AUCs = scikit-learn roc_auc_score")
    args = ["--score-a", "ai_score", "--score-b", "pathologist_score", "--reference", "reference"]
    add_case("roc_compare_paired", "roc-compare", f, args,
             roc_compare_reference(f, "ai_score", "pathologist_score", "reference"), src_c)
    add_case("roc_compare_paired_level90", "roc-compare", f, args + ["--level", "0.9"],
             roc_compare_reference(f, "ai_score", "pathologist_score", "reference", level=0.90),
             src_c + "; alpha = 0.10")
    add_case("roc_compare_swapped", "roc-compare", f,
             ["--score-a", "pathologist_score", "--score-b", "ai_score", "--reference", "reference"],
             roc_compare_reference(f, "pathologist_score", "ai_score", "reference"), src_c + "; a and b swapped")
    add_case("roc_compare_positive_0", "roc-compare", f, args + ["--positive", "0"],
             roc_compare_reference(f, "ai_score", "pathologist_score", "reference", positive="0"),
             src_c + "; --positive 0 (AUCs below 1/2)")

    # 6. Bad input.
    rows = [[f3(0.1 * i), str(i % 2)] for i in range(10)]
    rows[1][1] = ""
    rows[3][0] = "high"
    f = write_csv("roc_bad_score.csv", ["score", "truth"], rows)
    add_error("roc_non_numeric_score", "roc", f, ["--score", "score", "--reference", "truth"], ["score", "row 4"],
              "contract: non-numeric value where a number is needed -> exit 2 naming column and row")
    add_error("roc_empty_header_only", "roc", write_raw("empty_header_only_roc.csv", "score,truth\n"),
              ["--score", "score", "--reference", "truth"], [], "contract: empty file (header only) -> exit 2")
    add_error("roc_compare_missing_column", "roc-compare", "roc_compare.csv",
              ["--score-a", "ai_score", "--score-b", "resident_score", "--reference", "reference"], ["resident_score"],
              "contract: missing column -> exit 2 naming the column")


# ---------------------------------------------------------------------------------------------
# survival and cox
# ---------------------------------------------------------------------------------------------


def parse_event(v):
    v = v.strip().lower()
    assert v in ("1", "0", "true", "false"), v
    return v in ("1", "true")


def km(t, e, level):
    """Kaplan-Meier with Greenwood variance and the log-log CI (SAS CONFTYPE=LOGLOG:
    S^exp(+-z*sqrt(sum d/(n(n-d)))/|log S|)). Returns rows (time, S, lower, upper) at event times;
    lower/upper are None when S is 0 or 1 (undefined)."""
    z = z_for(level)
    s, gw, out = 1.0, 0.0, []
    for u in sorted(set(t[e].tolist())):
        n_risk = int((t >= u).sum())
        d = int(((t == u) & e).sum())
        s *= 1 - d / n_risk
        gw = gw + d / (n_risk * (n_risk - d)) if n_risk > d else math.inf
        if 0 < s < 1 and math.isfinite(gw):
            theta = z * math.sqrt(gw) / abs(math.log(s))
            out.append((u, s, s ** math.exp(theta), s ** math.exp(-theta)))
        else:
            out.append((u, s, None, None))
    return out


def first_time(table, col, zero_band):
    """First event time with column value <= 0.5. zero_band: value of an undefined band at S = 0."""
    for row in table:
        v = row[col]
        if v is None:
            if row[1] == 0.0 and zero_band is not None:
                v = zero_band
            else:
                continue
        if v <= 0.5:
            return row[0]
    return None


def km_summary(t, e, level):
    table = km(t, e, level)
    for _, s, lo, hi in table:  # no value within rounding of 0.5: the fixture must not hinge on it
        for v in (s, lo, hi):
            assert v is None or abs(v - 0.5) > 1e-9
    median = first_time(table, 1, None)
    lo = [first_time(table, 2, zb) for zb in (None, 0.0)]
    hi = [first_time(table, 3, zb) for zb in (None, 0.0)]
    assert lo[0] == lo[1] and hi[0] == hi[1], "median CI must not depend on the band convention at S = 0"
    # lifelines: same curve and bands, same median and median CI.
    kmf = KaplanMeierFitter(alpha=1 - level).fit(t, e)
    sf = kmf.survival_function_.iloc[:, 0]
    ci = kmf.confidence_interval_
    for u, s, l, h in table:
        assert abs(sf.loc[u] - s) < 1e-12
        if l is not None:
            assert abs(ci.iloc[:, 0].loc[u] - l) < 1e-10 and abs(ci.iloc[:, 1].loc[u] - h) < 1e-10
    lm = kmf.median_survival_time_
    assert (median is None and math.isinf(lm)) or lm == median
    mci = median_survival_times(ci).iloc[0].tolist()
    for mine, theirs in zip((lo[0], hi[0]), mci):
        assert (mine is None and math.isinf(theirs)) or mine == theirs
    return {"n": len(t), "events": int(e.sum()), "median": time_json(median),
            "median_ci_low": time_json(lo[0]), "median_ci_high": time_json(hi[0])}


def time_json(x):
    return None if x is None else (int(x) if float(x).is_integer() else float(x))


def cox_fit(df, duration, event, covariates, level):
    """lifelines CoxPHFitter (Efron ties, no penalty) converged tightly; cross-checked with
    statsmodels PHReg(ties='efron')."""
    cph = CoxPHFitter(alpha=1 - level)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cph.fit(df[[duration, event] + covariates], duration, event,
                fit_options={"precision": 1e-13, "r_precision": 0.0, "max_steps": 200})
    coef = cph.params_[covariates].to_numpy()
    se = cph.standard_errors_[covariates].to_numpy()
    ph = PHReg(df[duration].to_numpy(), df[covariates].to_numpy(), status=df[event].to_numpy(), ties="efron")
    r = ph.fit()
    assert np.allclose(r.params, coef, atol=1e-6, rtol=0), (r.params, coef)
    assert np.allclose(r.bse, se, atol=1e-6, rtol=0), (r.bse, se)
    assert abs(r.llf - cph.log_likelihood_) < 1e-6
    z = z_for(level)
    lo = cph.confidence_intervals_.loc[covariates].to_numpy()
    assert np.allclose(lo[:, 0], coef - z * se, atol=1e-10) and np.allclose(lo[:, 1], coef + z * se, atol=1e-10)
    return coef, se, float(cph.log_likelihood_)


def logrank_numpy(t, e, g, names):
    """k-group logrank: U = O - E over event times, V the hypergeometric covariance; chi2 on k-1 groups."""
    k = len(names)
    U, V = np.zeros(k), np.zeros((k, k))
    for u in sorted(set(t[e].tolist())):
        at = t >= u
        n = at.sum()
        d = ((t == u) & e).sum()
        ng = np.array([(at & (g == nm)).sum() for nm in names], float)
        dg = np.array([((t == u) & e & (g == nm)).sum() for nm in names], float)
        U += dg - d * ng / n
        if n > 1:
            V += d * (n - d) / (n - 1) * (np.diag(ng / n) - np.outer(ng, ng) / n ** 2)
    chi2 = float(U[:-1] @ np.linalg.solve(V[:-1, :-1], U[:-1]))
    return chi2, k - 1


def survival_reference(input_, time, event, group=None, reference_group=None, level=0.95):
    rows = read_csv(input_)
    cols = [time, event] + ([group] if group else [])
    kept, n_missing = used_rows(rows, cols)
    t = np.array([float(r[time]) for r in kept])
    e = np.array([parse_event(r[event]) for r in kept])
    if not group:
        return {"n_missing": n_missing, "groups": [dict(name="all", **km_summary(t, e, level))]}
    check_categories_stable(rows, kept, [group])
    g = np.array([r[group].strip() for r in kept])
    names = sort_categories(g.tolist())
    groups = [dict(name=nm, **km_summary(t[g == nm], e[g == nm], level)) for nm in names]
    lr = multivariate_logrank_test(t, g, e)
    chi2_np, df_np = logrank_numpy(t, e, g, names)
    assert abs(chi2_np - lr.test_statistic) < 1e-9 and df_np == lr.degrees_of_freedom
    if len(names) == 2:
        chi2_sm, p_sm = survdiff(t, e.astype(int), g)
        assert abs(chi2_sm - lr.test_statistic) < 1e-9 and abs(p_sm - lr.p_value) < 1e-12
    out = {"n_missing": n_missing, "groups": groups,
           "logrank": {"chi2": float(lr.test_statistic), "df": int(lr.degrees_of_freedom),
                       "p_value": float(lr.p_value)}}
    ref = reference_group if reference_group is not None else names[0]
    others = [nm for nm in names if nm != ref]
    no_events = [nm for nm in others if e[g == nm].sum() == 0]
    assert e[g == ref].sum() > 0
    # A group without events has no finite Cox MLE (coefficient -> -inf). The other coefficients
    # then converge to the fit without that group's subjects (their risk weights vanish).
    keep = ~np.isin(g, no_events)
    fitted = [nm for nm in others if nm not in no_events]
    df = pd.DataFrame({"time": t[keep], "event": e[keep].astype(int)})
    for nm in fitted:
        df["g_" + nm] = (g[keep] == nm).astype(float)
    covs = ["g_" + nm for nm in fitted]
    coef, se, _ = cox_fit(df, "time", "event", covs, level)
    if no_events:  # the full lifelines fit (no finite MLE) agrees for the well-defined groups
        full = pd.DataFrame({"time": t, "event": e.astype(int)})
        for nm in others:
            full["g_" + nm] = (g == nm).astype(float)
        cph = CoxPHFitter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cph.fit(full, "time", "event")
        assert np.allclose(cph.params_[covs].to_numpy(), coef, atol=1e-5)
    z = z_for(level)
    comps = []
    for nm in others:
        if nm in no_events:
            comps.append({"group": nm})
            continue
        i = fitted.index(nm)
        comps.append({"group": nm, "hr": math.exp(coef[i]), "ci_low": math.exp(coef[i] - z * se[i]),
                      "ci_high": math.exp(coef[i] + z * se[i]),
                      "p_value": float(2 * stats.norm.sf(abs(coef[i] / se[i])))})
    out["cox"] = {"reference": ref, "comparisons": comps}
    return out


def survival_cases():
    src = ("lifelines 0.30.3 KaplanMeierFitter (log-log 'exponential Greenwood' CI = SAS CONFTYPE=LOGLOG, re-derived "
           "in numpy), median and median CI per contract from the survival table (equal to lifelines "
           "median_survival_time_ / median_survival_times here)")
    src_g = src + ("; logrank lifelines multivariate_logrank_test (2 groups: = statsmodels survdiff); Cox lifelines "
                   "CoxPHFitter on dummy columns vs the reference, Efron ties, tight convergence, "
                   "= statsmodels PHReg efron")
    rng = np.random.default_rng(20240606)

    def simulate(n, rate, cens_max, scale=1.0):
        tt = rng.exponential(1 / rate, size=n)
        cc = rng.uniform(0, cens_max, size=n)
        time = np.maximum(1, np.ceil(np.minimum(tt, cc) * scale))  # integer weeks: many ties
        return time.astype(int), tt <= cc

    # 1. Two arms with string names, ties in times, some empty cells (also in the group column).
    t1, e1 = simulate(90, 1 / 40, 150)
    t2, e2 = simulate(90, 1 / 65, 150)
    arms = ["Control"] * 90 + ["Experimental"] * 90
    rows = [[f"P{i + 1:03d}", str(ti), str(int(ei)), arm]
            for i, (ti, ei, arm) in enumerate(zip(np.r_[t1, t2], np.r_[e1, e2], arms))]
    rows = [rows[k] for k in rng.permutation(len(rows))]
    rows = sprinkle_missing(rng, rows, [1, 2], 6, whitespace=1)
    for i in rng.choice(len(rows), size=3, replace=False):
        if not any(blank(v) for v in rows[i][1:3]):
            rows[i][3] = ""
    f = write_csv("surv_two_arms.csv", ["patient", "weeks", "event", "arm"], rows)
    base = ["--time", "weeks", "--event", "event"]
    add_case("survival_two_arms", "survival", f, base + ["--group", "arm"],
             survival_reference(f, "weeks", "event", "arm"), src_g + "; reference = first in sorted order")
    add_case("survival_two_arms_level90", "survival", f, base + ["--group", "arm", "--level", "0.9"],
             survival_reference(f, "weeks", "event", "arm", level=0.90), src_g + "; alpha = 0.10")
    add_case("survival_two_arms_reference_experimental", "survival", f,
             base + ["--group", "arm", "--reference-group", "Experimental"],
             survival_reference(f, "weeks", "event", "arm", reference_group="Experimental"),
             src_g + "; --reference-group")
    add_case("survival_no_group", "survival", f, base, survival_reference(f, "weeks", "event"),
             src + "; no --group: one group named 'all' (empty arm cells are not a used column)")

    # 2. Three groups with numeric names, --reference-group, events as TRUE/false words.
    parts = [simulate(80, r, 120) for r in (1 / 25, 1 / 40, 1 / 70)]
    words = ["TRUE", "true", "True", "FALSE", "false", "False"]
    rows = []
    for gi, (tt, ee) in enumerate(parts):
        for ti, ei in zip(tt, ee):
            w = words[rng.integers(3)] if ei else words[3 + rng.integers(3)]
            rows.append([str(ti), w, str(gi + 1)])
    rows = [[f"{i + 1}"] + rows[k] for i, k in enumerate(rng.permutation(len(rows)))]
    rows = sprinkle_missing(rng, rows, [1, 2, 3], 8)
    f = write_csv("surv_three_groups.csv", ["id", "time", "status", "til_group"], rows)
    add_case("survival_three_groups_reference_2", "survival", f,
             ["--time", "time", "--event", "status", "--group", "til_group", "--reference-group", "2"],
             survival_reference(f, "time", "status", "til_group", reference_group="2"),
             src_g + "; numeric group codes print as strings; events as true/false words, any case")
    add_case("survival_three_groups", "survival", f, ["--time", "time", "--event", "status", "--group", "til_group"],
             survival_reference(f, "time", "status", "til_group"), src_g + "; reference '1' (first sorted)")

    # 3. Median not reached in one group; a group without events (Cox degenerate for it).
    ta, ea = simulate(50, 1 / 20, 80)
    tb, eb = simulate(50, 1 / 400, 80)
    tc, _ = simulate(30, 1 / 50, 80)
    ec = np.zeros(30, bool)
    rows = [[str(ti), str(int(ei)), gname] for tt, ee, gname in ((ta, ea, "A"), (tb, eb, "B"), (tc, ec, "C"))
            for ti, ei in zip(tt, ee)]
    rows = [rows[k] for k in rng.permutation(len(rows))]
    f = write_csv("surv_no_events_group.csv", ["time", "event", "group"], rows)
    exp = survival_reference(f, "time", "event", "group")
    gb = [x for x in exp["groups"] if x["name"] == "B"][0]
    assert gb["median"] is None and gb["events"] > 0
    assert [x for x in exp["groups"] if x["name"] == "C"][0]["events"] == 0
    add_case("survival_no_events_group", "survival", f, ["--time", "time", "--event", "event", "--group", "group"], exp,
             src_g + "; group B: median not reached (null); group C: no events -> median and CI null, and its Cox "
             "MLE does not exist (lifelines drifts to coef ~ -19, se ~ 1e3, a convergence warning), so its comparison "
             "holds only 'group'; B's comparison is the limit, fitted without C's subjects "
             "(= lifelines' full fit to 1e-5)")

    # 4. All censored, no group: median and CI null, events 0.
    tt = np.sort(rng.integers(5, 200, size=50))
    f = write_csv("surv_all_censored.csv", ["time", "event"], [[str(x), "0"] for x in tt])
    exp = survival_reference(f, "time", "event")
    assert exp["groups"][0]["events"] == 0 and exp["groups"][0]["median"] is None
    add_case("survival_all_censored", "survival", f, ["--time", "time", "--event", "event"], exp,
             src + "; every row censored: events 0, median/CI null")

    # 5. Bad input.
    rows = [[str(10 + i), str(i % 2)] for i in range(10)]
    rows[1][1] = ""
    rows[4][1] = "yes"
    f = write_csv("surv_bad_event.csv", ["time", "death"], rows)
    add_error("survival_bad_event_value", "survival", f, ["--time", "time", "--event", "death"], ["death", "row 5"],
              "contract: event values 1/0/true/false only -> exit 2 naming column and row")
    rows = [[str(10 + i), str(i % 2)] for i in range(10)]
    rows[0][0] = ""
    rows[2][0] = "12d"
    f = write_csv("surv_bad_time.csv", ["time", "event"], rows)
    add_error("survival_non_numeric_time", "survival", f, ["--time", "time", "--event", "event"], ["time", "row 3"],
              "contract: non-numeric value where a number is needed -> exit 2 naming column and row")
    add_error("survival_missing_group_column", "survival", "surv_two_arms.csv",
              ["--time", "weeks", "--event", "event", "--group", "treatment"], ["treatment"],
              "contract: missing column -> exit 2 naming the column")
    add_error("survival_empty_header_only", "survival", write_raw("empty_header_only_survival.csv", "time,event\n"),
              ["--time", "time", "--event", "event"], [], "contract: empty file (header only) -> exit 2")
    add_error("survival_empty_zero_bytes", "survival", "empty_zero_bytes.csv",
              ["--time", "time", "--event", "event"], [],
              "contract: empty file (0 bytes) -> exit 2")


def cox_reference(input_, time, event, covariates, level=0.95):
    rows = read_csv(input_)
    kept, n_missing = used_rows(rows, [time, event] + covariates)
    df = pd.DataFrame({"time": [float(r[time]) for r in kept], "event": [int(parse_event(r[event])) for r in kept]})
    for c in covariates:
        df[c] = [float(r[c]) for r in kept]
    coef, se, ll = cox_fit(df, "time", "event", covariates, level)
    z = z_for(level)
    out = []
    for i, c in enumerate(covariates):
        zz = coef[i] / se[i]
        out.append({"name": c, "coef": float(coef[i]), "se": float(se[i]), "hr": math.exp(coef[i]),
                    "hr_ci_low": math.exp(coef[i] - z * se[i]), "hr_ci_high": math.exp(coef[i] + z * se[i]),
                    "z": float(zz), "p_value": float(2 * stats.norm.sf(abs(zz)))})
    return {"n": len(kept), "n_missing": n_missing, "events": int(df["event"].sum()), "log_likelihood": ll,
            "coefficients": out}


def cox_cases():
    src = ("lifelines 0.30.3 CoxPHFitter (Efron ties, no penalty, precision 1e-13), log_likelihood = log_likelihood_; "
           "coefficients, SEs and log-likelihood equal statsmodels 0.15 PHReg(ties='efron') to 1e-6")
    rng = np.random.default_rng(20240707)
    n = 200
    age = np.round(rng.normal(62, 10, size=n))
    ecog = rng.choice([0, 1, 2], size=n, p=[0.5, 0.35, 0.15])
    til = np.round(np.exp(rng.normal(4.5, 0.9, size=n)), 1)
    lp = 0.03 * (age - 62) + 0.5 * ecog - 0.004 * (til - 100)
    tt = rng.exponential(30 * np.exp(-lp))
    cc = rng.uniform(10, 90, size=n)
    time = np.maximum(1, np.round(np.minimum(tt, cc))).astype(int)
    ev = (tt <= cc).astype(int)
    rows = [[f"P{i + 1:03d}", str(a), str(b), fg(c), fg(d), f1(e)]
            for i, (a, b, c, d, e) in enumerate(zip(time, ev, age, ecog, til))]
    rows = sprinkle_missing(rng, rows, [1, 3, 4, 5], 9, whitespace=1)
    f = write_csv("cox_covariates.csv", ["patient", "months", "death", "age", "ecog", "til_density"], rows)
    base = ["--time", "months", "--event", "death"]
    add_case("cox_three_covariates", "cox", f, base + ["--covariates", "age,ecog,til_density"],
             cox_reference(f, "months", "death", ["age", "ecog", "til_density"]), src)
    add_case("cox_two_covariates_reordered", "cox", f, base + ["--covariates", "til_density,age"],
             cox_reference(f, "months", "death", ["til_density", "age"]),
             src + "; order of coefficients = order given; n_missing counts only the used columns")
    add_case("cox_level90", "cox", f, base + ["--covariates", "age,ecog,til_density", "--level", "0.9"],
             cox_reference(f, "months", "death", ["age", "ecog", "til_density"], 0.90), src + "; alpha = 0.10")
    rows = [[str(5 + i), str(i % 2), str(50 + i)] for i in range(12)]
    rows[8][1] = "dead"
    f = write_csv("cox_bad_event.csv", ["time", "event", "age"], rows)
    add_error("cox_bad_event_value", "cox", f, ["--time", "time", "--event", "event", "--covariates", "age"],
              ["event", "row 9"],
              "extension (same conventions): event not 1/0/true/false -> exit 2 naming column and row")
    rows = [[str(5 + i), str(i % 2), str(50 + i)] for i in range(12)]
    rows[3][2] = ""
    rows[10][2] = "sixty"
    f = write_csv("cox_bad_covariate.csv", ["time", "event", "age"], rows)
    add_error("cox_non_numeric_covariate", "cox", f, ["--time", "time", "--event", "event", "--covariates", "age"],
              ["age", "row 11"], "extension: non-numeric covariate -> exit 2 naming column and row")


# ---------------------------------------------------------------------------------------------
# bland-altman
# ---------------------------------------------------------------------------------------------


def bland_altman_reference(input_, a, b, level=0.95):
    rows = read_csv(input_)
    kept, n_missing = used_rows(rows, [a, b])
    x = np.array([float(r[a]) for r in kept])
    y = np.array([float(r[b]) for r in kept])
    n = len(x)
    d = x - y
    md, sd = float(d.mean()), float(d.std(ddof=1))
    r = float(stats.pearsonr(x, y)[0])
    rho = float(stats.spearmanr(x, y)[0])
    # Lin (1989) CCC with 1/n moments; SE of the z-transform from Lin's asymptotic variance with
    # 1/(n-2) (Lin 1989, corrected 2000), as DescTools::CCC / epiR::epi.ccc ci = "z-transform":
    #   var(ccc) = [(1-r^2) c^2 (1-c^2)/r^2 + 2 c^3 (1-c) u^2 / r - c^4 u^4 / (2 r^2)] / (n-2)
    #   u = (mean_y - mean_x) / (s_x s_y)^(1/2),  se_z = sqrt(var(ccc)) / (1 - c^2).
    sx2, sy2 = x.var(ddof=0), y.var(ddof=0)
    sxy = ((x - x.mean()) * (y - y.mean())).mean()
    c = 2 * sxy / (sx2 + sy2 + (x.mean() - y.mean()) ** 2)
    u = (y.mean() - x.mean()) / (sx2 * sy2) ** 0.25
    var_c = ((1 - r ** 2) * c ** 2 * (1 - c ** 2) / r ** 2 + 2 * c ** 3 * (1 - c) * u ** 2 / r
             - 0.5 * c ** 4 * u ** 4 / r ** 2) / (n - 2)
    se_z = math.sqrt(var_c) / (1 - c ** 2)
    z = z_for(level)
    return {"n": n, "n_missing": n_missing, "mean_diff": md, "sd_diff": sd,
            "loa_low": md - 1.96 * sd, "loa_high": md + 1.96 * sd, "pearson_r": r, "spearman_rho": rho,
            "ccc": float(c), "ccc_ci_low": math.tanh(math.atanh(c) - z * se_z),
            "ccc_ci_high": math.tanh(math.atanh(c) + z * se_z)}


# Bland & Altman 1986 Lancet i:307, Table 1: PEFR (l/min), first measurement with each meter.
PEFR_WRIGHT = [494, 395, 516, 434, 476, 557, 413, 442, 650, 433, 417, 656, 267, 478, 178, 423, 427]
PEFR_MINI = [512, 430, 520, 428, 500, 600, 364, 380, 658, 445, 432, 626, 260, 477, 259, 350, 451]


def bland_altman_cases():
    src = ("numpy (mean, sd n-1, LoA mean -/+ 1.96 sd), scipy 1.17 pearsonr / spearmanr; Lin 1989 CCC (1/n moments) "
           "with the z-transform CI from Lin's asymptotic variance with 1/(n-2), formula as DescTools::CCC / "
           "epiR::epi.ccc (implemented in numpy)")
    rng = np.random.default_rng(20240808)
    n = 150
    true = np.exp(rng.normal(3.5, 0.7, size=n))
    manual = true + rng.normal(0, 6, size=n)
    ai = 2 + 1.08 * true + rng.normal(0, 8, size=n)
    rows = [[f"B{i + 1:03d}", f1(max(0, a)), f1(max(0, b))] for i, (a, b) in enumerate(zip(ai, manual))]
    rows = sprinkle_missing(rng, rows, [1, 2], 7, whitespace=1)
    f = write_csv("ba_til.csv", ["case", "ai_til", "manual_til"], rows)
    add_case("bland_altman_til", "bland-altman", f, ["--a", "ai_til", "--b", "manual_til"],
             bland_altman_reference(f, "ai_til", "manual_til"), src)
    add_case("bland_altman_til_level90", "bland-altman", f, ["--a", "ai_til", "--b", "manual_til", "--level", "0.9"],
             bland_altman_reference(f, "ai_til", "manual_til", 0.90),
             src + "; --level moves only the CCC CI (the contract fixes the limits of agreement at 1.96 sd)")

    f = write_csv("ba_pefr.csv", ["subject", "wright", "mini_wright"],
                  [[str(i + 1), str(a), str(b)] for i, (a, b) in enumerate(zip(PEFR_WRIGHT, PEFR_MINI))])
    full = bland_altman_reference(f, "wright", "mini_wright")
    pub = {"n": 17, "mean_diff": -2.1, "sd_diff": 38.8}
    for k, v in pub.items():
        assert abs(full[k] - v) <= 0.05, (k, full[k], v)
    add_case("bland_altman_pefr_published", "bland-altman", f, ["--a", "wright", "--b", "mini_wright"], pub,
             "Bland & Altman 1986 Lancet i:307, Table 1 PEFR (first readings, Wright - mini Wright): published mean "
             "difference -2.1 l/min, SD 38.8 (1 decimal -> tolerance 0.05); their limits use 2 SD, not compared",
             tolerance=0.05)
    add_case("bland_altman_pefr_full", "bland-altman", f, ["--a", "wright", "--b", "mini_wright"], full,
             src + "; Bland & Altman 1986 PEFR data")

    rows = [[f1(10 + i), f1(11 + i)] for i in range(8)]
    rows[5][1] = "<5"
    f = write_csv("ba_bad_value.csv", ["ai_til", "manual_til"], rows)
    add_error("bland_altman_non_numeric", "bland-altman", f, ["--a", "ai_til", "--b", "manual_til"],
              ["manual_til", "row 6"],
              "contract: non-numeric value where a number is needed -> exit 2 naming column and row")
    add_error("bland_altman_empty_zero_bytes", "bland-altman", "empty_zero_bytes.csv",
              ["--a", "ai_til", "--b", "manual_til"],
              [], "contract: empty file (0 bytes) -> exit 2")


# ---------------------------------------------------------------------------------------------
# table1
# ---------------------------------------------------------------------------------------------


def summary_continuous(vals):
    """S = {n, missing, mean, sd, median, q1, q3}; numpy defaults (quartiles linear / R type 7)."""
    present = np.array([float(v) for v in vals if not blank(v)])
    n, missing = len(present), sum(blank(v) for v in vals)
    if n == 0:
        return {"n": 0, "missing": missing, "mean": None, "sd": None, "median": None, "q1": None, "q3": None}
    s = pd.Series(present)
    assert abs(s.quantile(0.25) - np.quantile(present, 0.25)) < 1e-12
    return {"n": n, "missing": missing, "mean": float(present.mean()),
            "sd": float(present.std(ddof=1)) if n >= 2 else None, "median": float(np.median(present)),
            "q1": float(np.quantile(present, 0.25)), "q3": float(np.quantile(present, 0.75))}


def summary_categorical(vals, levels):
    present = [v.strip() for v in vals if not blank(v)]
    n = len(present)
    counts = [present.count(lv) for lv in levels]
    return {"n": n, "missing": len(vals) - n, "counts": counts,
            "percents": [100 * c / n if n else None for c in counts]}


def table1_reference(input_, group, continuous, categorical):
    rows = read_csv(input_)
    kept, n_missing = used_rows(rows, [group])
    names = sort_categories([r[group] for r in kept])
    by = {nm: [r for r in kept if r[group].strip() == nm] for nm in names}
    out = {"n_missing": n_missing, "groups": [{"name": nm, "n": len(by[nm])} for nm in names], "continuous": [],
           "categorical": []}
    for c in continuous:
        out["continuous"].append({"name": c, "overall": summary_continuous([r[c] for r in kept]),
                                  "by_group": [summary_continuous([r[c] for r in by[nm]]) for nm in names]})
    for c in categorical:
        levels = sort_categories([r[c] for r in kept if not blank(r[c])])
        numeric = all(is_number(v) for v in levels)
        out["categorical"].append({"name": c, "levels": [cat_json(v, numeric) for v in levels],
                                   "overall": summary_categorical([r[c] for r in kept], levels),
                                   "by_group": [summary_categorical([r[c] for r in by[nm]], levels) for nm in names]})
    return out


def table1_cases():
    src = ("numpy 2.4 / pandas 2.3: mean, sd (n-1), median, quantiles method='linear' (R type 7); "
           "counts and percents by hand")
    rng = np.random.default_rng(20240909)
    n = 160
    arm = rng.choice(["Control", "AI-assisted"], size=n)
    age = np.round(rng.normal(61, 11, size=n))
    til = np.round(np.exp(rng.normal(3, 0.8, size=n)), 1)
    sex = rng.choice(["F", "M"], size=n, p=[0.55, 0.45])
    ecog = rng.choice(["0", "1", "2"], size=n, p=[0.5, 0.4, 0.1])
    rows = [[f"P{i + 1:03d}", a, fg(b), f1(c), d, e] for i, (a, b, c, d, e) in enumerate(zip(arm, age, til, sex, ecog))]
    rows = sprinkle_missing(rng, rows, [2, 3, 4, 5], 14, whitespace=2)
    for i in rng.choice(n, size=4, replace=False):
        rows[i][1] = ""
    f = write_csv("table1_trial.csv", ["patient", "arm", "age", "til", "sex", "ecog"], rows)
    add_case("table1_trial", "table1", f,
             ["--group", "arm", "--continuous", "age,til", "--categorical", "sex,ecog"],
             table1_reference(f, "arm", ["age", "til"], ["sex", "ecog"]),
             src + "; groups sorted bytewise ('AI-assisted' < 'Control'); numeric ecog levels as numbers")
    add_case("table1_trial_continuous_only", "table1", f, ["--group", "arm", "--continuous", "til"],
             table1_reference(f, "arm", ["til"], []), src + "; no --categorical: empty list")

    # Edge cases: numeric group names 1, 2, 10 (numeric sort), a group whose variable is all
    # empty (n 0 -> nulls), a group with one value (sd null).
    rows = [
        ["1", "54", "F", "high"], ["1", "61", "M", "low"], ["1", "", "F", "low"], ["1", "47", "", "high"],
        ["2", "70", "M", ""], ["2", "", "M", ""], ["2", "", "", ""],
        ["10", "66", "F", "low"], ["10", "58", "F", "high"], ["10", "72", "M", "low"], ["10", "63", "M", "low"],
        ["", "80", "F", "high"],
    ]
    f = write_csv("table1_edge.csv", ["site", "age", "sex", "grade"], rows)
    exp = table1_reference(f, "site", ["age"], ["sex", "grade"])
    assert [g["name"] for g in exp["groups"]] == ["1", "2", "10"]
    add_case("table1_edge", "table1", f, ["--group", "site", "--continuous", "age", "--categorical", "sex,grade"], exp,
             src + "; numeric group names sort numerically (1, 2, 10), print as strings; group '2' has one age "
             "(sd null) and no grade (n 0: percents null)")

    rows = [["A", "50"], ["B", ""], ["A", "61"], ["B", "5O"], ["A", "47"]]
    f = write_csv("table1_bad.csv", ["arm", "age"], rows)
    add_error("table1_non_numeric_continuous", "table1", f, ["--group", "arm", "--continuous", "age"], ["age", "row 4"],
              "extension (same conventions): non-numeric value in a continuous column -> exit 2 naming column and row")
    add_error("table1_missing_column", "table1", "table1_trial.csv", ["--group", "arm", "--continuous", "weight"],
              ["weight"], "contract: missing column -> exit 2 naming the column")


# ---------------------------------------------------------------------------------------------
# paired-agreement
# ---------------------------------------------------------------------------------------------


def same(x, y):
    x, y = x.strip(), y.strip()
    if is_number(x) and is_number(y):
        return float(x) == float(y)
    return x == y


def newcombe_paired(a11, a12, a21, a22, level):
    """Newcombe (1998) method 10 for p1 - p2, p1 = (a11+a12)/n, p2 = (a11+a21)/n: square-and-add of the
    two Wilson intervals with the corrected phi (phi* = (A - n/2)/sqrt(...) if A > n/2, 0 if
    0 <= A <= n/2, A/sqrt(...) if A < 0; A = a11 a22 - a12 a21; phi 0 when a margin is 0)."""
    n = a11 + a12 + a21 + a22
    p1, p2 = (a11 + a12) / n, (a11 + a21) / n
    z = z_for(level)

    def wilson(x):
        p = x / n
        c = (p + z * z / (2 * n)) / (1 + z * z / n)
        h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return c - h, c + h

    l1, u1 = wilson(a11 + a12)
    l2, u2 = wilson(a11 + a21)
    margins = (a11 + a12) * (a21 + a22) * (a11 + a21) * (a12 + a22)
    if margins == 0:
        phi = 0.0
    else:
        A = a11 * a22 - a12 * a21
        phi = (A - n / 2) / math.sqrt(margins) if A > n / 2 else (0.0 if A >= 0 else A / math.sqrt(margins))
    d = p1 - p2
    lo = d - math.sqrt((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2)
    hi = d + math.sqrt((p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2)
    return d, lo, hi


def paired_agreement_reference(input_, reference, a, b, level=0.95):
    rows = read_csv(input_)
    kept, n_missing = used_rows(rows, [reference, a, b])
    ag_a = [same(r[a], r[reference]) for r in kept]
    ag_b = [same(r[b], r[reference]) for r in kept]
    n = len(kept)
    both = sum(x and y for x, y in zip(ag_a, ag_b))
    only_a = sum(x and not y for x, y in zip(ag_a, ag_b))
    only_b = sum(y and not x for x, y in zip(ag_a, ag_b))
    neither = n - both - only_a - only_b
    # difference b - a: "first" proportion = b's agreement.
    d, lo, hi = newcombe_paired(both, only_b, only_a, neither, level)
    disc = only_a + only_b
    if disc == 0:
        p = 1.0
    else:
        p = min(1.0, 2 * stats.binom.cdf(min(only_a, only_b), disc, 0.5))
        assert abs(p - stats.binomtest(min(only_a, only_b), disc, 0.5).pvalue) < 1e-12
    return {"n": n, "n_missing": n_missing, "agreement_a": prop(sum(ag_a), n, level),
            "agreement_b": prop(sum(ag_b), n, level), "only_a": only_a, "only_b": only_b,
            "difference": d, "difference_ci_low": lo, "difference_ci_high": hi, "mcnemar_p_value": float(p)}


def paired_agreement_cases():
    src = ("statsmodels 0.15 proportion_confint (wilson, beta); Newcombe 1998 Stat Med 17:2635 method 10 (Wilson "
           "square-and-add with the corrected phi) implemented from the paper, = R contingencytables "
           "Newcombe_square_and_add_CI_paired_2x2; McNemar exact = scipy 1.17 binomtest on the discordant pairs")
    rng = np.random.default_rng(20241010)

    # 1. Realistic: TIL category (low/intermediate/high) read unaided (a) and AI-assisted (b).
    n = 200
    cats = ["low", "intermediate", "high"]
    ref = rng.choice(3, size=n, p=[0.45, 0.35, 0.2])

    def read(t, p_ok):
        return cats[t] if rng.random() < p_ok else cats[(t + rng.choice([1, 2])) % 3]

    rows = [[f"S{i + 1:03d}", cats[t], read(t, 0.72), read(t, 0.82)] for i, t in enumerate(ref)]
    rows = sprinkle_missing(rng, rows, [1, 2, 3], 8, whitespace=1)
    f = write_csv("pa_til_reads.csv", ["slide", "consensus", "unaided", "assisted"], rows)
    args = ["--reference", "consensus", "--a", "unaided", "--b", "assisted"]
    add_case("paired_agreement_til", "paired-agreement", f, args,
             paired_agreement_reference(f, "consensus", "unaided", "assisted"), src)
    add_case("paired_agreement_til_level90", "paired-agreement", f, args + ["--level", "0.9"],
             paired_agreement_reference(f, "consensus", "unaided", "assisted", 0.90), src + "; alpha = 0.10")

    # 2. Published: Cavo et al. 2012 paired table [[59, 6], [16, 80]] from Fagerland, Lydersen & Laake
    #    (2017) ch. 8: Newcombe square-and-add estimate -0.0621, 95% CI -0.1186 to -0.0046 for
    #    pi_1+ - pi_+1. Here b = the row variable (first), a = the column variable (second).
    table = {(True, True): 59, (True, False): 6, (False, True): 16, (False, False): 80}  # (b agrees, a agrees)
    rows = []
    for (bag, aag), c in table.items():
        for _ in range(c):
            truth = rng.choice(["CR", "PR"])
            other = "PR" if truth == "CR" else "CR"
            rows.append([truth, truth if aag else other, truth if bag else other])
    rows = [[f"{i + 1}"] + rows[k] for i, k in enumerate(rng.permutation(len(rows)))]
    f = write_csv("pa_cavo.csv", ["patient", "reference", "read_a", "read_b"], rows)
    full = paired_agreement_reference(f, "reference", "read_a", "read_b")
    pub = {"n": 161, "only_a": 16, "only_b": 6, "difference": -0.0621, "difference_ci_low": -0.1186,
           "difference_ci_high": -0.0046}
    for k, v in pub.items():
        assert abs(full[k] - v) <= 5e-5, (k, full[k], v)
    add_case("paired_agreement_cavo_published", "paired-agreement", f,
             ["--reference", "reference", "--a", "read_a", "--b", "read_b"], pub,
             "Fagerland, Lydersen & Laake 2017, Statistical Analysis of Contingency Tables, ch. 8 (Cavo et al. 2012 "
             "table 59/6/16/80): Newcombe square-and-add -0.0621 (-0.1186 to -0.0046), as asserted in the R package "
             "contingencytables tests; 4 decimals -> tolerance 5e-5", tolerance=5e-5)
    add_case("paired_agreement_cavo_full", "paired-agreement", f,
             ["--reference", "reference", "--a", "read_a", "--b", "read_b"], full, src + "; Cavo et al. 2012 table")

    # 3. Numeric values compare as numbers ("1" = "1.0"); no discordant pairs -> McNemar p 1.
    rows = [["1", "1.0", "1"], ["2", "2", "2.00"], ["0", "0", "0"], ["3", "2", "2"], ["1", "1", "1"],
            ["2", "3", "3.0"], ["0", "", "0"], ["3", "3", "3"], ["1", "1.00", "1.0"], ["2", "2.0", "2"]]
    f = write_csv("pa_numeric.csv", ["reference", "a", "b"], rows)
    exp = paired_agreement_reference(f, "reference", "a", "b")
    assert exp["only_a"] == exp["only_b"] == 0 and exp["mcnemar_p_value"] == 1.0
    add_case("paired_agreement_numeric_equal", "paired-agreement", f,
             ["--reference", "reference", "--a", "a", "--b", "b"],
             exp, src + "; numeric values compare as numbers (1 = 1.0 = 1.00); no discordant pairs: McNemar p = 1")

    add_error("paired_agreement_missing_column", "paired-agreement", "pa_til_reads.csv",
              ["--reference", "consensus", "--a", "unaided", "--b", "ai_read"], ["ai_read"],
              "contract: missing column -> exit 2 naming the column")
    add_error("paired_agreement_empty_header_only", "paired-agreement",
              write_raw("empty_header_only_paired.csv", "reference,a,b\n"),
              ["--reference", "reference", "--a", "a", "--b", "b"], [], "contract: empty file (header only) -> exit 2")


# ---------------------------------------------------------------------------------------------


def check_json(obj):
    """No NaN/inf may reach the fixtures; numpy scalars must have been converted."""
    if isinstance(obj, dict):
        for v in obj.values():
            check_json(v)
    elif isinstance(obj, list):
        for v in obj:
            check_json(v)
    elif isinstance(obj, float):
        assert math.isfinite(obj)
    else:
        assert obj is None or isinstance(obj, (int, str, bool)), type(obj)


def main():
    kappa_cases()
    fleiss_cases()
    icc_cases()
    diagnostic_cases()
    roc_cases()
    survival_cases()
    cox_cases()
    bland_altman_cases()
    table1_cases()
    paired_agreement_cases()
    for c in CASES:
        assert c["input"] in FILES, c["input"]
        check_json(c)
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in sorted(FILES.items()):
        (OUT / name).write_text(text, encoding="utf-8", newline="")
    (OUT / "cases.json").write_text(json.dumps(CASES, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    print("Youden: thresholds sharing the maximal J per roc reference call:", YOUDEN_TIES)
    print(f"{len(CASES)} cases, {len(FILES)} input files -> {OUT}")
    print("versions: numpy", np.__version__, "scipy", scipy.__version__, "statsmodels", statsmodels.__version__,
          "scikit-learn", sklearn.__version__, "pandas", pd.__version__, "lifelines", lifelines.__version__,
          "pingouin", pingouin.__version__)


if __name__ == "__main__":
    main()
