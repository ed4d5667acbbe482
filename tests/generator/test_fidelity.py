"""Fidelity metrics: energy distance against scipy, window statistics against numpy, and the
property the metrics exist for (a workload scores closer to itself than to a distorted copy)."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats
from servelab.analysis.exceptions import EmptyTraceError, TraceFormatError
from servelab.analysis.fidelity import (
    METRICS,
    compare,
    energy_distance,
    fidelity,
    window_stats,
)


def _trace(rng, n=6000, rate=5.0, coupled=True):
    t = np.cumsum(rng.exponential(1 / rate, n))
    # a bursty client (8 requests within 1 s, every 20 s on average) on top of a steady one; with
    # ``coupled`` its inputs are long, so window rate and window mean input go together
    burst = np.cumsum(rng.exponential(20.0, n // 20))
    burst = burst[burst < t[-1]]
    bt = (burst[:, None] + rng.uniform(0, 1.0, (burst.size, 8))).ravel()
    ts = np.r_[t, bt]
    inp = np.r_[rng.integers(50, 150, t.size), rng.integers(2000, 3000, bt.size) if coupled else rng.integers(50, 150, bt.size)]
    out = np.r_[rng.integers(10, 100, t.size), rng.integers(10, 100, bt.size)]
    o = np.argsort(ts)
    return pl.DataFrame({"timestamp": ts[o], "input_tokens": inp[o], "output_tokens": out[o]})


def test_energy_distance_matches_scipy_in_one_dimension(rng):
    x, y = rng.normal(0, 1, 400), rng.normal(0.5, 2, 300)
    assert energy_distance(x, y) == pytest.approx(stats.energy_distance(x, y), rel=1e-9)
    assert energy_distance(np.c_[x, x], np.c_[x, x]) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_energy_distance_in_blocks_gives_the_bits_of_the_plain_formula(rng, dims):
    # the plain formula on the whole (n, m, dims) array; sizes straddle the 500-row blocks.
    # Two dimensions: also against scipy's cdist (another implementation; relative 1e-12)
    from scipy.spatial.distance import cdist

    x, y = rng.lognormal(0, 1, (1203, dims)), rng.lognormal(0.2, 1.3, (777, dims))

    def plain(a, b):
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2)).mean()

    def blocked(a, b):  # the summation order the function documents: 500-row blocks, then their sums
        return sum(np.sqrt(((a[i:i + 500, None, :] - b[None, :, :]) ** 2).sum(axis=2)).sum()
                   for i in range(0, a.shape[0], 500)) / (a.shape[0] * b.shape[0])

    expected = np.sqrt(max(2 * blocked(x, y) - blocked(x, x) - blocked(y, y), 0.0))
    assert energy_distance(x, y) == expected
    reference = np.sqrt(2 * plain(x, y) - plain(x, x) - plain(y, y))
    assert energy_distance(x, y) == pytest.approx(reference, rel=1e-9)
    if dims == 2:
        by_cdist = np.sqrt(2 * cdist(x, y).mean() - cdist(x, x).mean() - cdist(y, y).mean())
        assert energy_distance(x, y) == pytest.approx(by_cdist, rel=1e-9)


def test_window_stats_against_numpy(rng):
    # windows [3k, 3k + 3) on the trace's clock; rate = count / the window's part inside
    # [first, last]; windows covered for less than half their length are left out
    df = _trace(rng, n=2000)
    w = window_stats(df, window_s=3.0)
    t = df["timestamp"].to_numpy()
    k = np.floor(t / 3.0).astype(int)
    counts = np.bincount(k - k.min())
    start = (k.min() + np.arange(counts.size)) * 3.0
    covered = np.minimum(start + 3.0, t.max()) - np.maximum(start, t.min())
    keep = covered >= 1.5
    assert w.height == int(keep.sum())
    assert np.array_equal(w["n"].to_numpy(), counts[keep])
    np.testing.assert_allclose(w["rate"].to_numpy(), counts[keep] / covered[keep])
    np.testing.assert_allclose(w["window_start_s"].to_numpy(), start[keep])
    i = int(np.flatnonzero(counts[keep])[0])
    kk = k.min() + np.flatnonzero(keep)[i]
    assert w["mean_input_tokens"][i] == pytest.approx(df["input_tokens"].to_numpy()[k == kk].mean())


def test_self_is_closer_than_a_decoupled_copy(rng):
    ref = _trace(rng)
    same = _trace(np.random.default_rng(1))
    flat = _trace(np.random.default_rng(2), coupled=False)
    table = compare(ref, [same, flat], names=["same", "flat"])
    assert table.columns == ["metric", "kind", "reference", "same", "flat"]
    assert table["metric"].to_list() == list(METRICS)
    row = {m: dict(zip(table.columns, r)) for m, r in zip(table["metric"], table.iter_rows())}
    assert row["joint_input_energy"]["same"] < row["joint_input_energy"]["flat"]
    assert row["input_ks"]["same"] < row["input_ks"]["flat"]
    # the coupled reference has a positive rate-input correlation; the decoupled copy has none
    assert row["rate_input_corr"]["reference"] > 0.3
    assert abs(row["rate_input_corr"]["flat"]) < row["rate_input_corr"]["reference"] / 2


def test_fidelity_result_and_errors(rng, tmp_path):
    df = _trace(rng, n=500)
    res = fidelity(df, df, name="self")
    assert res.metrics["input_ks"] == 0.0 and res.metrics["window_rate_ks"] == 0.0
    assert res.metrics["joint_input_energy"] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(TraceFormatError, match="needs a 'timestamp' column"):
        fidelity(df.drop("timestamp"), df)
    with pytest.raises(EmptyTraceError, match="at least 2 requests"):
        fidelity(df.head(1), df)
    with pytest.raises(ValueError, match="at least one candidate"):
        compare(df, [])
    with pytest.raises(ValueError, match="window_s must be"):
        window_stats(df, window_s=0)
    with pytest.raises(TraceFormatError, match="neither a trace store"):
        fidelity(tmp_path / "x.txt", df)
