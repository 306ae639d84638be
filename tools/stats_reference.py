"""Reference values for src/stats tests, from established implementations (dev tool).

    /path/to/venv/bin/pip install statsmodels
    python tools/stats_reference.py

Prints each case's inputs and results with full precision, to be pasted into the tests that
cite this script.
"""
import numpy as np
from statsmodels.stats.inter_rater import cohens_kappa

Z95 = 1.959963984540054


def kappa_cases():
    # 100 subjects, two raters, three ordered categories (src/stats/agreement.rs tests).
    table = np.array([[53, 5, 2], [11, 14, 5], [1, 6, 3]], float)
    for wt in (None, "linear", "quadratic"):
        r = cohens_kappa(table, wt=wt) if wt else cohens_kappa(table)
        po = np.trace(table) / table.sum() if wt is None else None
        print(f"kappa wt={wt}: kappa={r.kappa!r} std_kappa={r.std_kappa!r} "
              f"ci=({r.kappa - Z95 * r.std_kappa!r}, {r.kappa + Z95 * r.std_kappa!r}) po={po!r}")


if __name__ == "__main__":
    kappa_cases()
