"""``servelab validate`` on a trace of an hour or less (issue 17; the held-out check runs on traces like
../shared/data's: Azure 2023 code one hour, Mooncake 17 minutes).

At fit-pool's 10-min window a one-hour trace split in half leaves three windows before the split,
fewer than the four churn needs, and ``validate --split 0.5`` stopped with "the pool's span 1200 s
is shorter than 4 windows of 600 s" (a 17-minute trace: "split 0.5 gives 0 s"). The pool window is
now the longest of :data:`~servelab.generator.validation.POOL_WINDOWS` leaving four windows before
the split. Expected windows worked by hand: one hour -> split 1800 s: 600 s leaves 3 windows, 300 s
leaves 6 -> 300 s; 1,020 s -> split 510 s floored to 0 / 300 / 480 s at 600 / 300 / 120 s -> 120 s
(4 windows); two days -> 600 s.
"""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from servelab.analysis.store import write_store
from servelab.cli import main
from servelab.generator.validation import pool_window_for


@pytest.mark.parametrize(("last_s", "split", "rolling", "window"), [
    (3600.0, 0.5, 1, 300.0), (1020.0, 0.5, 1, 120.0), (2 * 86400.0, 0.5, 1, 600.0),
    (3600.0, 0.25, 1, 120.0),  # split 900 s: 600 -> 1 window, 300 -> 3, 120 -> 7
    (2 * 86400.0, 0.5, 200, 300.0),  # 86,400 s after the split hold 144 folds of 600 s, 288 of 300
])
def test_pool_window_for_against_hand_computed_windows(last_s, split, rolling, window):
    assert pool_window_for(split, 0.0, last_s, rolling=rolling)[0] == window


def test_validate_runs_on_a_one_hour_per_client_trace(tmp_path):
    rng = np.random.default_rng(4)
    rates = np.array([0.5, 0.3, 0.1, 0.05])  # four clients, Poisson, the whole hour
    n = rng.poisson(rates * 3600.0)
    t = rng.uniform(0.0, 3600.0, n.sum())
    cid = np.repeat([f"c{i}" for i in range(rates.size)], n)
    o = np.argsort(t)
    frame = pl.DataFrame({"timestamp": t[o], "client_id": cid[o], "input_tokens": rng.integers(10, 2000, o.size),
                          "output_tokens": rng.integers(5, 500, o.size)})
    store = write_store(frame, tmp_path / "hour")
    r = CliRunner().invoke(main, ["validate", str(store.path), "--split", "0.5", "--draws", "1",
                                  "-o", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert "arrival window 300 s (automatic" in r.output
    doc = json.loads((tmp_path / "out" / "validate.json").read_text())
    later = int((frame["timestamp"] >= doc["splits"][0]["split_s"]).sum())
    assert doc["reference"]["n_requests"] == later and doc["pool_window"]["window_s"] == 300.0
    # a stationary population: both follow the forecast level, Poisson noise on ~1,700 requests plus
    # the level's own error from 6 windows (~1,700 requests): well within 15%
    assert doc["servelab"]["n_requests"] == pytest.approx(later, rel=0.15)
    # the given window is still honoured (and at 10 min this trace cannot be extended)
    r = CliRunner().invoke(main, ["validate", str(store.path), "--split", "0.5", "--draws", "1", "--pool-window", "10m"])
    assert r.exit_code != 0 and "shorter than 4 windows of 600 s" in r.output
