"""A log bin of several values is stored as values spread over it (``pool_data.spread_bins``).

A bin drawn at its mean gives one generated length per 5% bin: the generated CDF is a staircase
whose steps the real lengths fill. The rows are checked against an independent numerical
inversion of the two-piece uniform law (its slices' means), and the generated lengths of a pool
fitted on a known log-normal against the sample it was fitted on (in sample: the spread must bring
the KS distance down to about the sampling noise, which the staircase exceeds about twice).
"""
import numpy as np
import polars as pl
import pytest
from scipy import stats

from servelab.analysis.store import write_store
from servelab.fitting.pool_data import spread_bins
from servelab.fitting.pool_fit import fit_pool
from servelab.fitting.pool_settings import PoolFitSettings
from servelab.generator.generate import generate


def _rows(seed: int, n: int = 400) -> pl.DataFrame:
    """One row per PMF (``c``): bins of 1 to 600 values, means anywhere in them, and exact rows."""
    rng = np.random.default_rng(seed)
    lo = rng.integers(64, 20000, n)
    width = np.where(rng.random(n) < 0.2, 0, rng.integers(1, 600, n))
    hi = lo + width
    v = np.round(lo + rng.random(n) * width)
    return pl.DataFrame({"c": np.arange(n), "d": np.zeros(n, np.int64), "field": "input_tokens",
                         "v": v.astype(float), "n": rng.integers(1, 1000, n), "lo": lo.astype(float),
                         "hi": hi.astype(float)})


def _slice_means_by_grid(lo: float, hi: float, m: float, points: int) -> np.ndarray:
    """The two-piece uniform law on [lo - 1/2, hi + 1/2] with mean ``m`` by its CDF on a fine grid
    (density (b - m) / ((b - a)(m - a)) left of m, (m - a) / ((b - a)(b - m)) right of it), inverted
    by interpolation on a fine probability grid, averaged over each of ``points`` equal slices and
    rounded into [lo, hi]."""
    a, b = lo - 0.5, hi + 0.5
    x = np.linspace(a, b, 200_001)
    dens = np.where(x < m, (b - m) / ((b - a) * (m - a)), (m - a) / ((b - a) * (b - m)))
    cdf = np.concatenate(([0.0], np.cumsum((dens[1:] + dens[:-1]) / 2 * np.diff(x))))
    w = (np.arange(points * 20_000) + 0.5) / (points * 20_000)
    q = np.interp(w, cdf / cdf[-1], x).reshape(points, -1).mean(axis=1)
    return np.clip(np.round(q), lo, hi)


@pytest.mark.parametrize("points", [2, 4, 7])
def test_spread_rows_are_the_laws_quantiles_and_keep_mass_and_mean(points):
    rows = _rows(seed=points)
    out = spread_bins(rows, points=points)
    assert out.columns == ["c", "d", "field", "v", "n"] and out["n"].dtype == pl.Int64
    # every PMF's count scales by `points`, so each probability is its bin's
    per = out.group_by("c").agg(pl.col("n").sum(), ((pl.col("v") * pl.col("n")).sum() / pl.col("n").sum()).alias("mean"),
                                pl.col("v").min().alias("vmin"), pl.col("v").max().alias("vmax"),
                                pl.len().alias("k")).join(rows.rename({"n": "n0", "v": "v0"}), on="c").sort("c")
    assert (per["n"] == per["n0"] * points).all()
    assert ((per["vmin"] >= per["lo"]) & (per["vmax"] <= per["hi"])).all()
    # the slices' means average to the bin's mean: it moves by the rounding only (at most 1/2)
    dev = np.abs(per["mean"].to_numpy() - per["v0"].to_numpy())
    assert np.all(dev <= 0.5 + 1e-9), dev.max()
    exact = (per["lo"] == per["hi"]).to_numpy()
    assert exact.sum() > 40 and np.all(per["k"].to_numpy()[exact] == 1)
    # the values are the slices' means of the law, computed here by numerical inversion and
    # averaging (tolerance: grid spacing and rounding ties, one token)
    for r in per.filter(pl.col("lo") < pl.col("hi")).head(60).iter_rows(named=True):
        got = np.sort(out.filter(pl.col("c") == r["c"])["v"].to_numpy())
        want = np.unique(_slice_means_by_grid(r["lo"], r["hi"], r["v0"], points))
        assert got.size == want.size and np.max(np.abs(got - want)) <= 1, (r, got, want)


def test_one_point_is_the_counts_as_they_are():
    rows = _rows(seed=1)
    assert spread_bins(rows, points=1).equals(rows.select("c", "d", "field", "v", "n"))
    with pytest.raises(ValueError, match="spread_points"):
        PoolFitSettings(spread_points=0)


@pytest.fixture(scope="module")
def lognormal_store(tmp_path_factory):
    """One client, 40,000 requests over a day, log-normal lengths (median 1,500 / 300 tokens)."""
    rng = np.random.default_rng(7)
    n = 40_000
    frame = pl.DataFrame({"timestamp": np.sort(rng.uniform(0, 86400, n)), "client_id": "a",
                          "input_tokens": np.round(np.exp(rng.normal(np.log(1500), 0.8, n))).astype(np.int64),
                          "output_tokens": np.round(np.exp(rng.normal(np.log(300), 0.6, n))).astype(np.int64)})
    return write_store(frame, tmp_path_factory.mktemp("lognormal") / "s"), frame


def test_generated_lengths_fill_their_bins(lognormal_store):
    store, frame = lognormal_store
    ks = {}
    for points in (1, 4):
        pool = fit_pool(store, settings=PoolFitSettings(spread_points=points, conversations=False, clock="none"))
        out = generate(pool, "pool", 86400.0, seed=3, conversations=False)
        ks[points] = {f: stats.ks_2samp(out[f].to_numpy(), frame[f].to_numpy()).statistic
                      for f in ("input_tokens", "output_tokens")}
        if points == 4:
            rows = pool.data.filter(pl.col("field") == "input_tokens").height
    # ~40,000 draws from the fitted sample's own law: the KS distance's mean is about
    # 0.87 / sqrt(40,000) = 0.0044; at one value per 5% bin it was 0.011 / 0.010 (spread: 0.0047 /
    # 0.0039 when this test was written)
    assert ks[1]["input_tokens"] > 0.008 and ks[1]["output_tokens"] > 0.008, ks
    assert ks[4]["input_tokens"] < 0.6 * ks[1]["input_tokens"] and ks[4]["output_tokens"] < 0.6 * ks[1]["output_tokens"], ks
    assert ks[4]["input_tokens"] < 0.0075 and ks[4]["output_tokens"] < 0.0075, ks
    assert rows > 0
