"""compare's automatic window (issue 17 item 4): the median window holds >= 10 requests.

On a sparse trace ServeGen's 3-s window leaves > 99% of windows empty and the window-rate KS
distance of any candidate is tiny; the automatic window makes a wrong candidate score badly.
"""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from servelab.analysis.fidelity import (
    MIN_MEDIAN_REQUESTS,
    WINDOW_LADDER,
    choose_window,
    compare,
    fidelity,
)
from servelab.cli import main

DAY = 86400.0


def _poisson(rng, rate, duration):
    n = rng.poisson(rate * duration)
    t = np.sort(rng.uniform(0, duration, n))
    return pl.DataFrame({"timestamp": t, "input_tokens": rng.integers(10, 1000, n),
                         "output_tokens": rng.integers(10, 500, n)})


def test_dense_trace_keeps_three_seconds(rng):
    # 20 req/s: a 3-s window holds Poisson(60) requests, median ~60 >= 10
    df = _poisson(rng, 20.0, 3600.0)
    c = choose_window(df)
    assert c.window_s == 3.0
    assert c.median_requests >= MIN_MEDIAN_REQUESTS and c.n_windows == 1200


def test_sparse_trace_gets_the_shortest_window_meeting_the_rule(rng):
    # 0.003 req/s over 30 days: the median of Poisson(0.003 W) reaches 10 at W ~ 3,500 s, so the
    # ladder's 3,600 s (median of Poisson(10.8) is 11; 1,800 s gives Poisson(5.4): median 5)
    df = _poisson(rng, 0.003, 30 * DAY)
    c = choose_window(df)
    assert c.window_s == 3600.0
    assert c.median_requests >= MIN_MEDIAN_REQUESTS
    # independent check: the previous rung's median is below 10
    t = df["timestamp"].to_numpy()
    prev = WINDOW_LADDER[WINDOW_LADDER.index(3600.0) - 1]
    counts = np.bincount(np.floor(t / prev).astype(int))[1:-1]
    assert np.median(counts) < MIN_MEDIAN_REQUESTS
    assert "not met" not in c.rule


def test_short_sparse_trace_falls_back_and_says_so(rng):
    # 0.01 req/s for 2 hours: 72 requests; 10 per window would leave fewer than 30 windows
    df = _poisson(rng, 0.01, 7200.0)
    c = choose_window(df)
    assert "not met" in c.rule
    # rungs 120 s (60 windows) and 300 s (24 < 30 windows): the longest with >= 30 windows is 120 s
    assert c.window_s == 120.0 and c.n_windows >= 30
    assert c.median_requests < MIN_MEDIAN_REQUESTS


def test_old_failure_gone_a_wrong_candidate_scores_badly(rng):
    ref = _poisson(rng, 0.003, 30 * DAY)
    wrong = _poisson(np.random.default_rng(7), 0.009, 30 * DAY)  # three times the rate
    right = _poisson(np.random.default_rng(8), 0.003, 30 * DAY)
    # the old failure: at 3 s, > 99% of windows are empty and the wrong candidate looks fine
    old = fidelity(ref, wrong, window_s=3.0).metrics["window_rate_ks"]
    assert old <= 0.04
    new_wrong = fidelity(ref, wrong)
    new_right = fidelity(ref, right)
    assert new_wrong.window_s == 3600.0
    # Poisson(10.8) against Poisson(32.4): the distributions barely overlap (KS > 0.9); a
    # candidate of the right rate stays within sampling noise (720 windows each: KS ~ 1.36 *
    # sqrt(2 / 720) = 0.07 at the 5% level)
    assert new_wrong.metrics["window_rate_ks"] > 0.9
    assert new_right.metrics["window_rate_ks"] < 0.1


def test_compare_library_uses_the_automatic_window(rng):
    ref = _poisson(rng, 0.003, 30 * DAY)
    wrong = _poisson(np.random.default_rng(7), 0.009, 30 * DAY)
    auto = compare(ref, [wrong], names=["wrong"])
    fixed = compare(ref, [wrong], names=["wrong"], window_s=3600.0)
    assert auto.equals(fixed)


def test_cli_prints_and_writes_the_window(rng, tmp_path):
    ref = _poisson(rng, 0.003, 30 * DAY)
    wrong = _poisson(np.random.default_rng(7), 0.009, 30 * DAY)
    ref.write_parquet(tmp_path / "ref.parquet")
    wrong.write_parquet(tmp_path / "wrong.parquet")
    out = tmp_path / "c.json"
    r = CliRunner().invoke(main, ["compare", str(tmp_path / "ref.parquet"), str(tmp_path / "wrong.parquet"),
                                  "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "window: 3600 s (automatic" in r.output
    doc = json.loads(out.read_text())
    assert doc["window_s"] == 3600.0 and doc["window_rule"].startswith("automatic")
    assert doc["wrong"]["window_rate_ks"] > 0.9
    assert doc["reference"]["n_requests"] == ref.height
    r = CliRunner().invoke(main, ["compare", str(tmp_path / "ref.parquet"), str(tmp_path / "wrong.parquet"),
                                  "--window", "3", "--json", str(out)])
    assert r.exit_code == 0 and "window: 3 s (given (--window))" in r.output
    assert json.loads(out.read_text())["wrong"]["window_rate_ks"] <= 0.04


@pytest.mark.parametrize("kw, msg", [({"min_median": 0}, "min_median must be a positive integer; got 0"),
                                     ({"ladder": []}, "ladder must hold positive")])
def test_choose_window_errors(rng, kw, msg):
    with pytest.raises(ValueError, match=msg):
        choose_window(_poisson(rng, 1.0, 100.0), **kw)
