"""Churn graces scaled by the population's burstiness (``pool_churn.churn_table``).

A Poisson grace (``ln(100) / r``) takes a bursty client's long silence for a departure. Known
truth: clients present the whole span whose requests are Gamma renewals of CV 3 (null: nobody
arrives or leaves), built here as a pool arrivals table (requests per 600-s window); and Poisson
clients, whose flags must stay near the 1% per side they were calibrated to.
"""
import numpy as np
import polars as pl

from servelab.fitting.pool_churn import churn_table

DAY = 86400.0
W = 600.0


def _arrivals(seed: int, cv: float, n: int = 300, days: float = 7.0) -> tuple[pl.DataFrame, tuple[float, float]]:
    rng = np.random.default_rng(seed)
    T = days * DAY
    rate = np.exp(rng.uniform(np.log(1 / DAY), np.log(1 / 120), n))
    k = 1.0 / cv ** 2
    parts = []
    for i in range(n):  # a loop over clients (test data)
        m = int(T * rate[i] * 2 + 100)
        t = np.cumsum(rng.gamma(k, 1 / (rate[i] * k), m)) - rng.uniform(0, 1 / rate[i])
        t = t[(t >= 0) & (t < T)]
        if t.size == 0:
            continue
        win, cnt = np.unique(np.floor(t / W).astype(np.int64), return_counts=True)
        parts.append(pl.DataFrame({"client_id": f"c{i:04d}", "window_start": win * W, "window_s": W, "rate": cnt / W}))
    return pl.concat(parts), (0.0, T)


def _flags(cv: float, seeds=range(3)) -> tuple[float, float]:
    arr = dep = tot = 0
    for seed in seeds:
        arrivals, span = _arrivals(seed, cv)
        table = churn_table(arrivals, span)
        arr += int(table["arrived"].sum())
        dep += int(table["departed"].sum())
        tot += table.height
    return arr / tot, dep / tot


def test_bursty_clients_present_all_span_are_rarely_flagged():
    # measured when written (about 900 clients): the Poisson grace flagged 10.0% arrived and 14.5%
    # departed; with the population's scale 3.9% and 4.5% (bounds about 3 binomial SE above those)
    arrived, departed = _flags(3.0)
    assert arrived <= 0.06 and departed <= 0.07, (arrived, departed)


def test_poisson_clients_keep_their_calibrated_flags():
    # measured: 0.33% / 0.78% with the Poisson grace alone, 0.33% / 0.56% with the scale
    arrived, departed = _flags(1.0)
    assert arrived <= 0.02 and departed <= 0.02, (arrived, departed)
