"""io_correlation's coefficients do not depend on the order DuckDB adds the rows in.

DuckDB's ``corr`` / ``regr_*`` / ``avg`` over doubles, and the Spearman sums over rank
deviations, follow the threads' row order: two runs of the lengths section differed in the 13th
digit of ``pearson``. The moments are now exact integer sums. Here the same (input, output) pairs
in two row orders, with 1 and 4 threads, must give the same bytes, and Pearson's r must agree with
exact rational arithmetic to 1e-15 relative.
"""
from fractions import Fraction
from math import sqrt

import numpy as np
import polars as pl

from servelab.analysis import lengths as L
from servelab.analysis.store import duckdb_settings, frame_source


def _table(x: np.ndarray, y: np.ndarray, threads: int) -> pl.DataFrame:
    t = np.arange(x.size, dtype=float)
    with duckdb_settings(threads=threads):
        return L.io_correlation(frame_source(pl.DataFrame({"timestamp": t, "input_tokens": x, "output_tokens": y})))


def test_io_correlation_is_exact_and_independent_of_row_order():
    rng = np.random.default_rng(2)
    n = 1500
    x = np.round(np.exp(rng.normal(8.0, 1.5, n))).astype(np.int64) + 1
    y = np.round(0.3 * x + np.exp(rng.normal(6.0, 1.0, n))).astype(np.int64) + 1
    a = _table(x, y, threads=1)
    perm = rng.permutation(n)
    b = _table(x[perm], y[perm], threads=4)
    assert a.equals(b)
    fx, fy = [Fraction(int(v)) for v in x], [Fraction(int(v)) for v in y]
    mx, my = sum(fx) / n, sum(fy) / n
    sxy = sum((u - mx) * (v - my) for u, v in zip(fx, fy))
    r = float(sxy) / sqrt(float(sum((u - mx) ** 2 for u in fx)) * float(sum((v - my) ** 2 for v in fy)))
    assert abs(a["pearson"][0] - r) <= 1e-15 * abs(r)
    assert abs(a["slope"][0] - float(sxy / sum((u - mx) ** 2 for u in fx))) <= 1e-15 * abs(a["slope"][0])
