"""The reuse-lag correction of the prefix model (issue 15): weighted reuse rows, and the generator's cut."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

from servelab.fitting.pool_prefixes import RequestStructure, fit_prefix_table
from servelab.fitting.pool_schemas import PREFIXES_SCHEMA
from servelab.generator.prefixes import assign_prefix_blocks, prefix_model


def _structure(kind, lag):
    """Six first turns of 4 blocks (one length class), no groups: kind 0 none, 2 reuse."""
    n = len(kind)
    kind = np.asarray(kind, dtype=np.int64)
    return RequestStructure(lengths=np.full(n, 4, np.int64), group=np.full(n, -1, np.int64), group_len=np.zeros(n, np.int64),
                            hit=np.where(kind == 2, 4, 0), source=np.where(kind == 2, 0, -1), kind=kind,
                            same_length=kind == 2, gap=np.zeros(n, np.int64), lag_s=np.asarray(lag, float),
                            suffix=np.where(kind == 2, 0, 4), group_length=np.zeros(0, np.int64),
                            group_extends=np.zeros(0, np.int64), group_clients=np.zeros(0, np.int64))


def test_reuse_rows_weighted_by_lag():
    # reuses at lags 10, 50 and 90 s in a 100 s window: weights 100/90, 2, 10 (closed form)
    st = _structure([0, 0, 0, 2, 2, 2], [0, 0, 0, 10, 50, 90])
    seen = fit_prefix_table(st, np.zeros(6, np.int64), ["c"])
    fixed = fit_prefix_table(st, np.zeros(6, np.int64), ["c"], span_s=100.0)
    assert "reuse_censoring" not in seen["kind"].to_list()
    w = np.array([100 / 90, 2.0, 10.0])
    lag = fixed.filter(pl.col("kind") == "reuse_lag_s").sort("value")
    np.testing.assert_allclose(lag["value"], [10, 50, 90])
    np.testing.assert_allclose(lag["probability"], w / w.sum())
    # reuse share: the weighted count 13.1 takes the 3 "none" turns' mass, at most all of it
    share = fixed.filter(pl.col("kind") == "reuse_gap")["probability"].sum()
    assert share == pytest.approx(1.0)
    assert seen.filter(pl.col("kind") == "reuse_gap")["probability"].sum() == pytest.approx(0.5)
    marker = fixed.filter(pl.col("kind") == "reuse_censoring")
    assert marker["value"].to_list() == [1.0] and dict(fixed.schema) == PREFIXES_SCHEMA
    # short lags in a long window: weights near 1, the share grows by the weights' excess only
    small = fit_prefix_table(st, np.zeros(6, np.int64), ["c"], span_s=1000.0)
    ref = (1000 / 990 + 1000 / 950 + 1000 / 910) / 6
    assert small.filter(pl.col("kind") == "reuse_gap")["probability"].sum() == pytest.approx(ref)
    with pytest.raises(ValueError, match="span_s must be None or a positive number of seconds; got -1"):
        fit_prefix_table(st, np.zeros(6, np.int64), ["c"], span_s=-1)


def _pool(censored: bool, *, share: float = 0.5, lag: float = 100.0):
    rows = [("c", "reuse_gap", None, None, 0.0, share, 4, 512),
            ("c", "reuse_lag_s", None, None, lag, 1.0, 4, 512),
            ("c", "reuse_same_length", None, None, 1.0, 1.0, 1, 512)]
    if censored:
        rows.append(("c", "reuse_censoring", None, None, 1.0, 1.0, 1, 512))
    return SimpleNamespace(prefixes=pl.DataFrame(rows, schema=PREFIXES_SCHEMA, orient="row"))


def test_generator_drops_reuses_reaching_before_the_client_start():
    n = 4000
    ts = np.sort(np.random.default_rng(5).uniform(0, 1000, n))
    frame = pl.DataFrame({"timestamp": ts, "client_id": ["c"] * n, "input_tokens": np.full(n, 4 * 512)})
    out, _ = assign_prefix_blocks(frame, prefix_model(_pool(True)), seed=3)
    first = out["prefix_blocks"].list.first().to_numpy()
    reused = pl.Series(first).is_duplicated().to_numpy() & ~pl.Series(first).is_first_distinct().to_numpy()
    early = ts < ts[0] + 100.0
    # before the lag fits no request can reuse; after, a share of 0.5 (4 SE at n ~ 3600: 0.033)
    assert reused[early].sum() == 0
    late = reused[~early].mean()
    assert abs(late - 0.5) < 4 * math.sqrt(0.25 / (~early).sum())
    # the uncorrected model keeps its share everywhere (the lag PMF is cut instead)
    out0, _ = assign_prefix_blocks(frame, prefix_model(_pool(False)), seed=3)
    f0 = pl.Series(out0["prefix_blocks"].list.first().to_numpy())
    r0 = (f0.is_duplicated() & ~f0.is_first_distinct()).to_numpy()
    assert r0[early][1:].mean() > 0.3
