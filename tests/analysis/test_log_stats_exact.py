"""The log-normal fit's sufficient statistics (``log_stats``) are exact sums: the same under any number of threads.

``avg(ln(v))`` and ``var_pop(ln(v))`` over doubles depend on the order DuckDB's threads add the
rows in: three ``servelab fit-pool`` runs on the same 1 M-request synthetic store wrote three
different ``data_fits.parquet`` (the log-normal ``scale`` differed from the 13th digit on).
``log_stats`` now sums ln(v) on a fixed-point grid of 2^-40 in DECIMAL(38, 0), so the mean and
variance are the same bytes at 1, 2 and 4 threads, and within 1e-12 of numpy's (independent,
two-pass) mean and variance of the logs.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from servelab.analysis.aggregates import aggregate_source, log_stats
from servelab.analysis.store import frame_source

WINDOW_S = 3600.0


def _source(rng: np.random.Generator):
    n = 400_000  # several DuckDB row groups per window, so that threads share a group's rows
    t = np.sort(rng.uniform(0.0, 3 * WINDOW_S, n))
    lengths = np.maximum(np.round(np.exp(rng.normal(6.0, 1.3, n))), 0).astype(np.int64)
    lengths[rng.random(n) < 0.01] = 0  # zeros are left out of the log statistics
    lengths[(t >= 2 * WINDOW_S)] = 777  # one window of a single value: variance exactly 0
    return frame_source(pl.DataFrame({"timestamp": t, "input_tokens": lengths})), t, lengths


def _stats(source, threads: int) -> pl.DataFrame:
    with aggregate_source(source) as src:
        src.engine.con.execute(f"SET threads = {threads}")
        return log_stats(src, value="CAST(q.input_tokens AS DOUBLE)", data_window_s=WINDOW_S).sort("cidx", "d")


def test_log_stats_are_thread_independent_and_match_numpy(rng):
    source, t, lengths = _source(rng)
    one = _stats(source, 1)
    assert one.equals(_stats(source, 4)) and one.equals(_stats(source, 2))
    assert one["d"].to_list() == [0, 1, 2]
    for row in one.iter_rows(named=True):
        inside = (np.floor(t / WINDOW_S) == row["d"]) & (lengths > 0)
        logs = np.log(lengths[inside].astype(float))
        assert row["n"] == inside.sum()
        assert abs(row["mu"] - logs.mean()) < 1e-12 * abs(logs.mean())  # grid error <= 4.6e-13
        if np.ptp(logs) > 0:
            assert abs(row["var"] - logs.var()) < 1e-12 * logs.var()
    assert one["var"][2] == 0.0  # a constant window: exactly zero (no lognormal fit is stored for it)
