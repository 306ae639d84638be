"""Reads a dossier's SAS XPORT files back with an independent reader (pandas.read_sas) and checks
that they hold the same values as the CSV next to them (used by tests/it/lock.rs).

    python tools/check_xpt.py DIR [STEM ...]      # DIR holds STEM.csv, STEM.xpt, STEM.variables.csv

Numbers must agree to 1e-12 (relative), text exactly (the first 200 bytes); an empty CSV cell is a
missing value. Prints one line per dataset; exits 1 on the first difference.
"""
import math
import sys

import pandas as pd


def check(directory, stem):
    base = f"{directory}/{stem}"
    csv = pd.read_csv(base + ".csv", dtype=str, keep_default_na=False)
    xpt = pd.read_sas(base + ".xpt", format="xport", encoding="utf-8")
    variables = pd.read_csv(base + ".variables.csv", dtype=str, keep_default_na=False)
    assert len(csv) == len(xpt), f"{stem}: {len(csv)} CSV rows, {len(xpt)} XPORT rows"
    assert list(xpt.columns) == list(variables["xpt_name"]), f"{stem}: names {list(xpt.columns)}"
    for _, v in variables.iterrows():
        for i, (a, b) in enumerate(zip(csv[v["column"]], xpt[v["xpt_name"]])):
            if v["type"] == "numeric":
                if a.strip() == "":
                    ok = b is None or (isinstance(b, float) and math.isnan(b))
                else:
                    ok = abs(float(a) - float(b)) <= 1e-12 * max(1.0, abs(float(a)))
            else:
                want = a.encode("utf-8")[:200].decode("utf-8", "ignore").rstrip()
                ok = (b or "").rstrip() == want
            if not ok:
                sys.exit(f"{stem}: row {i + 1}, column {v['column']} ({v['xpt_name']}): CSV {a!r}, XPORT {b!r}")
    print(f"{stem}: {len(csv)} rows x {len(variables)} variables agree")


if __name__ == "__main__":
    for s in sys.argv[2:]:
        check(sys.argv[1], s)
