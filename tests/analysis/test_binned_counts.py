"""The SQL binning of value counts (``binned_counts``) equals the binning rules exactly, heavy log bins too.

:func:`servelab.analysis.aggregates.binned_counts_sql` takes a log bin's count as the peers of an
order key on the (client, window) partition, and the running sum that cuts a heavy log bin on the
same partition; ``_reference`` below is an independent numpy computation of the rules of
:mod:`servelab.fitting.pool_data` (row by row in value order) it must equal exactly. The counts are
seeded and built so that every rule fires many times: values below ``exact_below``, spikes, spikes
inside a log bin (whose mass counts toward the bin's), log bins over ``max_bin_mass`` cut in several
pieces, windows without a heavy bin, and windows of one value.
"""
import duckdb
import numpy as np
import polars as pl
import pytest

from servelab.analysis.aggregates import binned_counts_sql
from servelab.fitting.pool_settings import PoolFitSettings

_DEFAULTS = PoolFitSettings()
#: fit_pool's binning, and bench_engines.py's
BINNINGS = ({"exact_below": _DEFAULTS.exact_below, "bin_ratio": _DEFAULTS.bin_ratio,
             "spike_share": _DEFAULTS.spike_share, "max_bin_mass": _DEFAULTS.max_bin_mass},
            {"exact_below": 64, "bin_ratio": 1.1, "spike_share": 0.05, "max_bin_mass": 0.1})


def _counts(seed: int, windows: int = 400) -> pl.DataFrame:
    """``cidx, d, vk, n``: per window a mixture of small values, a log-normal body of chosen spread
    (narrow: heavy log bins; wide: none) and a few large-count spikes; unique (cidx, d, vk)."""
    rng = np.random.default_rng(seed)
    parts = []
    for k in range(windows):
        size = int(rng.choice([1, 3, 30, 300, 3000]))
        sigma = float(rng.choice([0.02, 0.1, 0.5, 2.0]))
        body = np.round(np.exp(rng.normal(np.log(rng.uniform(70, 5000)), sigma, size)))
        small = rng.integers(0, 64, rng.integers(0, 20))
        spikes = np.repeat(rng.integers(0, 20000, rng.integers(0, 4)), rng.integers(1, 400))
        values = np.concatenate([body, small, spikes]).astype(np.int64)
        vk, n = np.unique(values, return_counts=True)
        parts.append(pl.DataFrame({"cidx": np.full(vk.size, k % 37, np.int64), "d": np.full(vk.size, k // 37, np.int64),
                                   "vk": vk, "n": n.astype(np.int64)}))
    return pl.concat(parts)


def _sql(counts: pl.DataFrame, binning: dict, threads: int) -> pl.DataFrame:
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.register("vc0", counts.to_arrow())
    return con.sql(binned_counts_sql("SELECT * FROM vc0", **binning)).pl().sort("cidx", "d", "vk")


def _reference(counts: pl.DataFrame, binning: dict) -> tuple[pl.DataFrame, dict[str, int]]:
    """The binning rules of :mod:`servelab.fitting.pool_data` in numpy, row by row in value order;
    ``lo, hi`` the smallest and largest value of each bin.

    (Not ``pool_data._bin``: polars evaluates ``cum_before / max_bin_mass`` as a product with the
    reciprocal, 0.6 / 0.1 -> 6.0 where IEEE division and both SQL engines give 5.999999999999999,
    so at an exact multiple of ``max_bin_mass`` of the CDF it places a value in the next piece.)
    """
    e, mm = binning["exact_below"], binning["max_bin_mass"]
    f = counts.sort("cidx", "d", "vk")
    vk, n = f["vk"].to_numpy(), f["n"].to_numpy()
    _, win = np.unique(f.select("cidx", "d").to_numpy(), axis=0, return_inverse=True)
    win = win.ravel()
    tot = np.zeros(win.max() + 1, np.int64)
    np.add.at(tot, win, n)
    csum = np.cumsum(n)
    first = np.r_[0, np.flatnonzero(np.diff(win)) + 1]  # each window's first row
    before = csum - n - (csum - n)[first][win]  # requests of the window at smaller values
    v = vk.astype(float)
    share, cum_before = n / tot[win], before / tot[win]
    with np.errstate(divide="ignore"):  # log(0) of the exact values, not used
        lb = np.where(vk < e, v, -1 - np.floor(np.log(v / e) / np.log(binning["bin_ratio"])))
    _, grp = np.unique(np.stack([win, lb], axis=1), axis=0, return_inverse=True)
    grp = grp.ravel()
    lb_n = np.zeros(grp.max() + 1, np.int64)
    np.add.at(lb_n, grp, n)
    lbmass = lb_n[grp] / tot[win]
    bin_ = np.where((share >= binning["spike_share"]) | (vk < e), v,
                    np.where(lbmass > mm, lb * 1000 - np.floor(cum_before / mm), lb * 1000))
    cut = (lbmass > mm) & (share < binning["spike_share"]) & (vk >= e)
    rules = {"windows": int(win.max() + 1), "windows_with_a_cut": int(np.unique(win[cut]).size),
             "spikes_in_log_bins": int(((share >= binning["spike_share"]) & (vk >= e)).sum())}
    bins = (pl.DataFrame({"cidx": f["cidx"], "d": f["d"], "bin": bin_, "vn": v * n, "n": n, "v": vk})
            .group_by("cidx", "d", "bin").agg(pl.col("vn").sum(), pl.col("n").sum(), pl.col("v").min().alias("lo"),
                                               pl.col("v").max().alias("hi")))
    mean = np.round(bins["vn"].to_numpy() / bins["n"].to_numpy())  # half to even
    return (bins.with_columns(vk=pl.Series(mean).cast(pl.Int64)).group_by("cidx", "d", "vk")
            .agg(pl.col("n").sum().cast(pl.Int64), pl.col("lo").min().cast(pl.Int64), pl.col("hi").max().cast(pl.Int64))
            .sort("cidx", "d", "vk")), rules


@pytest.mark.parametrize("binning", BINNINGS, ids=["fit_pool", "bench_engines"])
def test_sql_binning_equals_the_numpy_binning_exactly(binning):
    counts = _counts(seed=11)
    want, rules = _reference(counts, binning)
    # every rule fires: windows with and without a cut log bin, spikes inside log bins
    assert 0.1 * rules["windows"] < rules["windows_with_a_cut"] < 0.9 * rules["windows"], rules
    assert rules["spikes_in_log_bins"] > 50, rules
    for threads in (1, 3):
        got = _sql(counts, binning, threads)
        assert got.schema == want.schema
        assert got.equals(want), f"threads={threads}: {got.height} vs {want.height} rows"
