"""The generation section's client sample on simulated periods of known truth (issue 16).

The calibration itself (F12 sampled vs unsampled on null and positive-control periods, 20 seeds
each) is ``benchmarks/bench_generation_sample.py``: one period costs a few CPU seconds (two pool
fits and four generations), too much for the suite. Here, in well under a second, what the
benchmark's verdict rates rest on: the sample the experiment draws above
``Budget.max_generation_requests`` keeps whole clients (every request of a kept client, none of
the others), about the asked share of them, and the benchmark's interval is the Wilson interval.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_generation_sample import SCENARIOS, simulate_period, wilson  # noqa: E402


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from servelab.analysis.store import write_store

    frame = simulate_period(0, clients=400, rate_scale=0.5, **SCENARIOS[1][1])
    return write_store(frame, tmp_path_factory.mktemp("sim") / "s", source="simulate_period", fmt="simulated")


def test_client_sample_keeps_whole_clients_at_about_the_share(store):
    from servelab.reports.sampling import hash_sample_condition

    c0, c1 = (hash_sample_condition("client_id", 0.5, seed) for seed in (0, 1))
    t = store.query(f"SELECT client_id, bool_and(c0) AS all0, bool_or(c0) AS any0, bool_and(c1) AS all1, "
                    f"bool_or(c1) AS any1 FROM (SELECT client_id, {c0} AS c0, {c1} AS c1 FROM requests) "
                    "GROUP BY client_id")
    assert t.height == 400
    # a kept client keeps all its requests, a dropped one none (the rows' condition is the client's)
    assert (t["all0"] == t["any0"]).all() and (t["all1"] == t["any1"]).all()
    # 400 clients kept with probability 0.5 each: sd of the kept count 10, so 4.5 sd either side
    for col in ("all0", "all1"):
        assert 155 <= int(t[col].sum()) <= 245, int(t[col].sum())
    # another seed is another sample: about a quarter of the clients in both (sd 8.7; 4.6 sd)
    assert 60 <= int((t["all0"] & t["all1"]).sum()) <= 140


def test_null_scenario_clients_share_one_law_and_the_positive_ones_do_not():
    # the truth the benchmark's verdicts are read against
    def per_client(kw):
        f = simulate_period(3, clients=30, rate_scale=5.0, **kw)
        return f.group_by("client_id").agg(pl.col("input_tokens").log().median().alias("m"), pl.len())

    null, positive = per_client(SCENARIOS[0][1]), per_client(SCENARIOS[1][1])
    # log-normal inputs of median 500, sigma 0.8: a client's log-median from n requests has sd
    # about 1.25 * 0.8 / sqrt(n) (the median's efficiency); clients here hold >= 40 requests
    assert null["len"].min() >= 40
    assert np.abs(null["m"].to_numpy() - np.log(500)).max() < 5 * 1.25 * 0.8 / np.sqrt(40)
    assert np.ptp(positive["m"].to_numpy()) > 2.0  # medians log-uniform over [50, 5000]: ln-range 4.6


def test_wilson_interval_solves_the_score_equation():
    # independent reference: the interval's ends are the roots in p of (k/n - p)^2 = z^2 p (1 - p) / n
    z = 1.96
    for k, n in ((0, 20), (8, 20), (20, 20), (13, 40)):
        ph = k / n
        roots = np.sort(np.roots([1 + z * z / n, -(2 * ph + z * z / n), ph * ph]).real)
        assert wilson(k, n, z) == pytest.approx(tuple(np.clip(roots, 0, 1)), abs=1e-12)
