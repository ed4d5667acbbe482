"""Inter-turn times in traffic time (issue 15): the fit's ``itt_traffic_s`` rows and the generator's use of them.

Known truth: (1) :func:`traffic_times` on a hand-worked example; (2) a trace whose follow-ups
come a fixed number of requests after their parents inside bursts (the held-out construction's
mechanism: turns placed among the trace's rows) fits traffic-time gaps of that many requests at
the window's mean rate, while its wall-clock gaps are far shorter; on a Poisson trace (no
burstiness) both agree; (3) the generator spaces turns by the traffic rows when present.
"""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from servelab.analysis.store import write_store
from servelab.fitting.pool_conversations import ITT_TRAFFIC, traffic_times
from servelab.fitting.pool_fit import fit_pool
from servelab.generator.generate import generate
from _genpools import make_pool


def test_traffic_times_by_hand():
    # window [0, 10): four rows, ranks 1, 2.5, 2.5, 4 -> (r - 0.5) / 4 of 10 s; window [100, 110)
    # cut to the span's end (100): length 0
    got = traffic_times(np.array([5.0, 0.0, 1.0, 1.0, 100.0]), 10.0, span=(0.0, 100.0))
    np.testing.assert_allclose(got, [8.75, 1.25, 5.0, 5.0, 100.0])
    with pytest.raises(ValueError, match="window_s"):
        traffic_times(np.zeros(2), 0.0)


def _trace(times: np.ndarray, lag_rows: int, seed: int) -> pl.DataFrame:
    """Every 10th request (those with a request ``lag_rows`` later) is followed by that request,
    linked by ``parent_id``."""
    n = times.size
    parent = np.full(n, -1)
    roots = np.arange(0, n - lag_rows, 10)
    parent[roots + lag_rows] = roots
    return pl.DataFrame({"request_id": np.arange(n), "timestamp": times, "client_id": ["a"] * n,
                         "input_tokens": np.full(n, 100), "output_tokens": np.full(n, 10),
                         "parent_id": [str(p) if p >= 0 else None for p in parent]})


def _mean_pmf(pool, quantity: str) -> float:
    rows = pool.conversation_pmfs.filter(pl.col("quantity") == quantity)
    return float((rows["value"] * rows["probability"]).sum() / rows["probability"].sum())


@pytest.mark.parametrize("bursty", [True, False])
def test_traffic_gaps_count_the_requests_between(tmp_path, bursty):
    rng = np.random.default_rng(7)
    n, rate, lag = 6000, 2.0, 5  # 50 min at 2 req/s on average: 5 requests are 2.5 s of traffic
    if bursty:  # bursts of 50 requests within 1 s, separated by quiet gaps (same mean rate)
        starts = np.sort(rng.uniform(0, n / rate, n // 50))
        times = np.sort((starts[:, None] + rng.uniform(0, 1.0, (starts.size, 50))).ravel())
    else:
        times = np.sort(rng.uniform(0, n / rate, n))
    store = write_store(_trace(times, lag, 1), tmp_path / "s")
    pool = fit_pool(store, window_s=n / rate, window_censoring=False)
    wall, traffic = _mean_pmf(pool, "itt_s"), _mean_pmf(pool, ITT_TRAFFIC)
    assert traffic == pytest.approx(lag / rate, rel=0.05)  # independent: lag rows at the mean rate
    rows = pool.conversation_pmfs.filter(pl.col("quantity") == "itt_s")
    below = float(rows.filter(pl.col("value") < 1.0)["probability"].sum())
    if bursty:  # 45 of 50 parents have their child in the same 1-s burst
        assert below > 0.8
    else:  # a sum of 5 exponential gaps of mean 0.5 s: P(< 1 s) = 0.053; 600 pairs
        assert below < 0.12
        assert wall == pytest.approx(traffic, rel=0.1)


def test_generator_spaces_turns_by_traffic_rows():
    conv = pl.DataFrame({"client_id": ["a"] * 3, "quantity": ["turns", "itt_s", ITT_TRAFFIC],
                         "value": [2.0, 1.0, 100.0], "probability": [1.0, 1.0, 1.0]})
    pool = make_pool({"a": [0.2] * 6}, cvs={"a": 1.0}, pmfs={"a": {"input_tokens": ([100], [1.0]),
                                                                    "output_tokens": ([10], [1.0])}},
                     conversations=conv)
    for rows, want in ((conv, 100.0), (conv.filter(pl.col("quantity") != ITT_TRAFFIC), 1.0)):
        pool.conversation_pmfs = rows
        work = generate(pool, "pool", 3600.0, seed=3)
        p = work["parent_id"].cast(pl.Int64, strict=False).fill_null(-1).to_numpy()
        ok = p >= 0
        itt = work["timestamp"].to_numpy()[ok] - work["timestamp"].to_numpy()[p[ok]]
        assert ok.sum() > 50
        np.testing.assert_allclose(itt, want, atol=1e-6)
