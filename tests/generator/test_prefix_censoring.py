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
    n = 2000
    ts = np.sort(np.random.default_rng(5).uniform(0, 1000, n))
    frame = pl.DataFrame({"timestamp": ts, "client_id": ["c"] * n, "input_tokens": np.full(n, 4 * 512)})
    out, _ = assign_prefix_blocks(frame, prefix_model(_pool(True)), seed=3)
    first = out["prefix_blocks"].list.first().to_numpy()
    reused = pl.Series(first).is_duplicated().to_numpy() & ~pl.Series(first).is_first_distinct().to_numpy()
    early = ts < ts[0] + 100.0
    # before the lag fits no request can reuse; after, a share of 0.5 (4 SE at n ~ 1800: 0.047)
    assert reused[early].sum() == 0
    late = reused[~early].mean()
    assert abs(late - 0.5) < 4 * math.sqrt(0.25 / (~early).sum())
    # the uncorrected model keeps its share everywhere (the lag PMF is cut instead)
    out0, _ = assign_prefix_blocks(frame, prefix_model(_pool(False)), seed=3)
    f0 = pl.Series(out0["prefix_blocks"].list.first().to_numpy())
    r0 = (f0.is_duplicated() & ~f0.is_first_distinct()).to_numpy()
    assert r0[early][1:].mean() > 0.3


def test_uncut_reuse_share_may_exceed_the_none_share():
    # six first turns: two start with a template (group 0), two reuse at lags 50 and 70 s of a
    # 100 s window (weights 2 and 10/3), two are fresh. The uncut reuse share (2 + 10/3) / 6 is
    # more than the seen "none" share 4/6: it is kept (the generator caps it per request)
    st = _structure([1, 1, 0, 0, 2, 2], [0, 0, 0, 0, 50, 70])
    st["group"] = np.array([0, 0, -1, -1, -1, -1])
    st["group_length"], st["group_extends"], st["group_clients"] = (np.array([2]), np.array([-1]), np.array([1]))
    fixed = fit_prefix_table(st, np.zeros(6, np.int64), ["c"], span_s=100.0)
    share = fixed.filter(pl.col("kind") == "reuse_gap")["probability"].sum()
    assert share == pytest.approx((2 + 10 / 3) / 6)
    assert fixed.filter(pl.col("kind") == "template")["probability"].sum() == pytest.approx(2 / 6)
    # capped at all first turns: lags 80 and 90 weigh 5 + 10 > 6
    st["lag_s"] = np.array([0, 0, 0, 0, 80, 90], dtype=float)
    capped = fit_prefix_table(st, np.zeros(6, np.int64), ["c"], span_s=100.0)
    assert capped.filter(pl.col("kind") == "reuse_gap")["probability"].sum() == pytest.approx(1.0)


def _first_blocks(out: pl.DataFrame) -> np.ndarray:
    return out["prefix_blocks"].list.first().to_numpy()


def test_generator_caps_the_uncut_share_at_the_none_share():
    # template share 0.5, uncut reuse share 0.9 at a 10 s lag: after 10 s a first turn reuses
    # with probability min(0.9 x 1, 0.5) = 0.5 and takes the template with 0.5, never nothing
    n = 4000
    ts = np.sort(np.random.default_rng(6).uniform(0, 1000, n))
    rows = [("c", "template", 0, None, 2.0, 0.5, 4, 512), ("c", "reuse_gap", None, None, 0.0, 0.9, 4, 512),
            ("c", "reuse_lag_s", None, None, 10.0, 1.0, 4, 512),
            ("c", "reuse_same_length", None, None, 1.0, 1.0, 1, 512),
            ("c", "reuse_censoring", None, None, 1.0, 1.0, 1, 512)]
    pool = SimpleNamespace(prefixes=pl.DataFrame(rows, schema=PREFIXES_SCHEMA, orient="row"))
    frame = pl.DataFrame({"timestamp": ts, "client_id": ["c"] * n, "input_tokens": np.full(n, 4 * 512)})
    out, _ = assign_prefix_blocks(frame, prefix_model(pool), seed=4)
    # a copy repeats its source's last block (the source may itself start with the template)
    last = out["prefix_blocks"].list.last()
    reused = (last.is_duplicated() & ~last.is_first_distinct()).to_numpy()
    group = (pl.Series(_first_blocks(out)) == 0).to_numpy() & ~reused
    late = ts >= ts[0] + 10.0
    # 4 SE of a share near 0.5 at n ~ 3960: 0.032
    se4 = 4 * math.sqrt(0.25 / late.sum())
    assert abs(reused[late].mean() - 0.5) < se4 and abs(group[late].mean() - 0.5) < se4
    assert reused[~late].sum() == 0


def test_lags_follow_their_pmf_long_after_the_client_start():
    # uncorrected model, lags 10 or 20 s with equal mass; 1000 s of requests (far beyond twice the
    # largest lag, where the lag CDF used to read 0 and every lag became the smallest)
    n = 3000
    ts = np.sort(np.random.default_rng(7).uniform(0, 1000, n))
    rows = [("c", "reuse_gap", None, None, 0.0, 0.5, 4, 512), ("c", "reuse_lag_s", None, None, 10.0, 0.5, 4, 512),
            ("c", "reuse_lag_s", None, None, 20.0, 0.5, 4, 512),
            ("c", "reuse_same_length", None, None, 1.0, 1.0, 1, 512),
            # a second client: its lag PMF is the next group of the table (where the reading ran to)
            ("d", "reuse_gap", None, None, 0.0, 0.5, 4, 512), ("d", "reuse_lag_s", None, None, 5.0, 1.0, 4, 512)]
    pool = SimpleNamespace(prefixes=pl.DataFrame(rows, schema=PREFIXES_SCHEMA, orient="row"))
    frame = pl.DataFrame({"timestamp": ts, "client_id": ["c"] * n, "input_tokens": np.full(n, 4 * 512)})
    out, _ = assign_prefix_blocks(frame, prefix_model(pool), seed=5)
    first = pl.DataFrame({"b": _first_blocks(out), "t": ts, "i": np.arange(n)})
    orig = first.group_by("b").agg(pl.col("t").min().alias("t0"), pl.col("i").min().alias("i0"))
    lag = first.join(orig, on="b").filter((pl.col("i") > pl.col("i0")) & (pl.col("t") > 100.0)).select(
        pl.col("t") - pl.col("t0"))["t"].to_numpy()
    assert lag.size > 1000 and lag.min() >= 10.0
    # half the draws are 20 s (the realized lag is the draw plus the wait back to an original)
    assert abs((lag >= 20.0).mean() - 0.5) < 4 * math.sqrt(0.25 / lag.size)
