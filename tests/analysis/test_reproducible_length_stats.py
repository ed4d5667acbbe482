"""The per-(client, window) length statistics of the load-length coupling do not depend on row order.

``window_length_stats`` fed the pool's coupling table. It took DuckDB's ``avg`` and ``var_samp``
over doubles, whose last bits depend on the order the rows are added in (thread scheduling, row
groups): two fits of one 268k-request trace with 1 and 4 DuckDB threads gave different
``coupling.parquet`` bytes, and the generator reads that table. The sums are now exact integers.
Here each window holds the same values in two row orders; the statistics must be equal bit for
bit and agree with exact rational arithmetic to 1e-15 relative.
"""
from fractions import Fraction

import numpy as np
import polars as pl

from servelab.analysis.aggregates import aggregate_source, window_length_stats
from servelab.analysis.store import frame_source


def _stats(values: np.ndarray, windows: int, per: int, rng: np.random.Generator, threads: int) -> pl.DataFrame:
    # window w holds values[w] (in the given order) at increasing times inside [10 w, 10 w + 10)
    t = (np.arange(windows)[:, None] * 10.0 + np.sort(rng.uniform(0.0, 9.0, (windows, per)), axis=1)).ravel()
    frame = pl.DataFrame({"timestamp": t, "input_tokens": values.ravel(), "output_tokens": values.ravel() // 7})
    with aggregate_source(frame_source(frame)) as src:
        src.con.execute(f"SET threads = {threads}")
        return window_length_stats(src, fields=["input_tokens", "output_tokens"], window_s=10.0).sort("w")


def test_window_length_stats_are_exact_and_independent_of_row_order():
    rng = np.random.default_rng(11)
    windows, per = 30, 40
    values = np.round(rng.lognormal(9.0, 2.0, (windows, per))).astype(np.int64) + 1
    a = _stats(values, windows, per, rng, threads=1)
    b = _stats(rng.permuted(values, axis=1), windows, per, rng, threads=4)
    assert a.equals(b)
    for w in (0, 7, 29):
        x = [Fraction(int(v)) for v in values[w]]
        mean = sum(x) / per
        var = sum((v - mean) ** 2 for v in x) / (per - 1)
        assert abs(a["input_tokens"][w] - float(mean)) <= 1e-15 * float(mean)
        assert abs(a["input_tokens_var"][w] - float(var)) <= 1e-15 * float(var)
