"""BurstGPT's short-term burst counts: how often request volume doubles within 5 or 10 minutes.

The 2024 BurstGPT preprint (section III-B-2, Fig. 5) reports that "instances of request volume
doubling occur 65 times within 5 minutes and 38 times within 10 minutes on workdays", without a
formal definition. The counts fall as the horizon grows, so they cannot be "doublings seen by a
look-ahead of up to H minutes" (a longer look-ahead would find more, not fewer). They match
consecutive tumbling windows of length H: a day has 288 five-minute windows and 144 ten-minute
windows, and 65/288 = 23% and 38/144 = 26% of windows doubling is a plausible rate. So here:

.. math::

    c_k = \\#\\{\\text{requests in } [kH, (k+1)H)\\},\\qquad
    \\text{burst at } k \\iff c_{k-1} \\ge m \\ \\text{and}\\ c_k \\ge r\\, c_{k-1},

with ratio ``r = 2`` (doubling) and ``m = min_prev = 1``: a window that follows an idle one has no
defined ratio and is counted separately as ``from_idle``, not as a doubling. Windows are aligned
on the trace's clock (local clock edges when the origin is known) and idle windows count as
zeros. Rates are reported per day of trace (events / (eligible windows x H / 86400)) and, when
the clock knows weekdays, per workday (windows starting Monday-Friday, local time), as the
paper does.

Window counting is SQL (:func:`servelab.analysis.periodicity.binned_load`); the comparison of
consecutive windows is vectorised numpy (:func:`doubling_mask`). No plotting, no fitting.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from servelab.analysis.periodicity import DAY_S, TraceClock, binned_load, normalize_by
from servelab.analysis.store import TraceStore

__all__ = ["BURST_HORIZONS_S", "RATIO_EDGES", "burst_counts", "burst_ratio_histogram", "doubling_mask", "poisson_burst_share"]

#: BurstGPT's two horizons: 5 and 10 minutes
BURST_HORIZONS_S = (300.0, 600.0)
#: bins of the ratio c_k / c_{k-1} among bursts (BurstGPT: "most burstiness is doubling")
RATIO_EDGES = (2.0, 3.0, 4.0, 8.0, float("inf"))


def doubling_mask(counts, *, ratio: float = 2.0, min_prev: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which windows are bursts, for one series of consecutive window counts.

    Parameters
    ----------
    counts : array-like of int
        Requests per consecutive window (idle windows as 0).
    ratio : float
        Growth factor that makes a burst (2 = doubling); must be > 1.
    min_prev : int
        Least count the previous window must have for the ratio to be defined (>= 1).

    Returns
    -------
    burst, eligible, from_idle : numpy.ndarray of bool, length ``len(counts)``
        ``eligible[k]``: ``k >= 1`` and ``counts[k-1] >= min_prev``; ``burst[k]``: eligible and
        ``counts[k] >= ratio * counts[k-1]``; ``from_idle[k]``: ``counts[k-1] == 0 < counts[k]``.
        Window 0 has no predecessor and is never eligible.

    Raises
    ------
    ValueError
        If ``ratio <= 1``, ``min_prev < 1``, or a count is negative.
    """
    if not ratio > 1:
        raise ValueError(f"ratio must be > 1 (2 = doubling); got {ratio!r}")
    if int(min_prev) != min_prev or min_prev < 1:
        raise ValueError(f"min_prev must be an integer >= 1; got {min_prev!r}")
    c = np.asarray(counts, dtype=float)
    if c.ndim != 1:
        raise ValueError(f"counts must be one-dimensional; got shape {c.shape}")
    if c.size and c.min() < 0:
        raise ValueError("counts must be non-negative")
    prev = np.concatenate([[np.nan], c[:-1]]) if c.size else c
    eligible = np.nan_to_num(prev, nan=-1.0) >= min_prev
    burst = eligible & (c >= ratio * np.nan_to_num(prev, nan=np.inf))
    from_idle = (np.nan_to_num(prev, nan=-1.0) == 0) & (c > 0)
    return burst, eligible, from_idle


def poisson_burst_share(mean_count: float, *, ratio: float = 2.0, min_prev: int = 1) -> float:
    """Burst share expected if window counts were independent Poisson(``mean_count``) draws.

    .. math:: P(X_k \\ge r X_{k-1} \\mid X_{k-1} \\ge m)
              = \\frac{\\sum_{j \\ge m} p(j)\\, P(X \\ge \\lceil r j \\rceil)}{P(X \\ge m)}

    The reference that makes a burst count mean something: at a few requests per window,
    doubling is common by chance alone (about 0.2 of windows at 4 requests per window), while at
    hundreds it almost never happens without a real surge. NaN when ``mean_count <= 0``.
    """
    from scipy import stats

    if not mean_count > 0:
        return float("nan")
    top = int(stats.poisson.ppf(1 - 1e-12, mean_count)) + 1
    j = np.arange(min_prev, max(top, min_prev) + 1)
    pmf = stats.poisson.pmf(j, mean_count)
    tail = stats.poisson.sf(np.ceil(ratio * j) - 1, mean_count)
    denom = stats.poisson.sf(min_prev - 1, mean_count)
    return float(np.sum(pmf * tail) / denom) if denom > 0 else float("nan")


def _series_masks(frame: pl.DataFrame, *, ratio: float, min_prev: int) -> pl.DataFrame:
    """Per-window burst flags for a binned-load frame (groups handled by a shifted column)."""
    frame = frame.sort(["group", "bin"])
    c = frame["count"].to_numpy().astype(float)
    same = (frame["group"] == frame["group"].shift(1)).fill_null(False).to_numpy()
    prev = np.where(same, np.concatenate([[0.0], c[:-1]]) if c.size else c, np.nan)
    eligible = np.nan_to_num(prev, nan=-1.0) >= min_prev
    burst = eligible & (c >= ratio * np.nan_to_num(prev, nan=np.inf))
    from_idle = (np.nan_to_num(prev, nan=-1.0) == 0) & (c > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        growth = np.where(eligible, c / np.where(eligible, prev, 1.0), np.nan)
    return frame.with_columns(
        eligible=pl.Series(eligible), burst=pl.Series(burst), from_idle=pl.Series(from_idle),
        growth=pl.Series(growth),
    )


def burst_counts(
    store: TraceStore,
    *,
    horizons_s: Sequence[float] = BURST_HORIZONS_S,
    by: str | Sequence[str] | None = None,
    ratio: float = 2.0,
    min_prev: int = 1,
    clock: TraceClock | None = None,
    windows: dict[float, pl.DataFrame] | None = None,
) -> pl.DataFrame:
    """How often request volume grows ``ratio``-fold from one window to the next (module docs).

    Parameters
    ----------
    store : TraceStore
    horizons_s : sequence of float
        Window lengths H (default 5 and 10 minutes).
    by : str or sequence of str, optional
        Grouping columns (e.g. ``"service"``, ``"model"``).
    ratio, min_prev
        See :func:`doubling_mask`.
    clock : TraceClock, optional
        The trace's clock (default from the store).
    windows : dict, optional
        Precomputed :func:`binned_load` frames by horizon (saves scans).

    Returns
    -------
    polars.DataFrame
        One row per group and horizon: ``horizon_s``, ``n_windows``, ``n_eligible``,
        ``n_bursts``, ``n_from_idle``, ``burst_share`` (bursts / eligible windows),
        ``bursts_per_day`` (per 24 h of eligible windows), ``workday_bursts_per_day`` (same on
        Monday-Friday windows; null when weekdays are unknown or none is eligible),
        ``poisson_burst_share`` (the share expected of independent Poisson windows with the
        group's mean count, :func:`poisson_burst_share`), ``median_burst_growth`` (median
        c_k / c_{k-1} among bursts), ``mean_count`` (requests per window) and ``clock``.
        ``burst_share`` and the per-day rates are null when no window is eligible.
    """
    by = normalize_by(by)
    doubling_mask([], ratio=ratio, min_prev=min_prev)  # validates the settings
    rows = []
    for h in horizons_s:
        h = float(h)
        frame = (windows or {}).get(h)
        if frame is None:
            frame = binned_load(store, window_s=h, by=by, clock=clock)
        flagged = _series_masks(frame, ratio=ratio, min_prev=min_prev)
        workday = (~pl.col("is_weekend")).fill_null(False) if flagged["is_weekend"].null_count() == 0 else pl.lit(None)
        agg = (
            flagged.with_columns(workday=workday)
            .group_by("group", maintain_order=True)
            .agg(
                n_windows=pl.len(),
                n_eligible=pl.col("eligible").sum(),
                n_bursts=pl.col("burst").sum(),
                n_from_idle=pl.col("from_idle").sum(),
                n_eligible_workday=(pl.col("eligible") & pl.col("workday")).sum(),
                n_bursts_workday=(pl.col("burst") & pl.col("workday")).sum(),
                median_burst_growth=pl.col("growth").filter(pl.col("burst")).median(),
                mean_count=pl.col("count").mean(),
                clock=pl.col("clock").first(),
                weekdays_known=pl.col("is_weekend").is_not_null().all(),
            )
        )
        days = pl.col("n_eligible") * h / DAY_S
        wdays = pl.col("n_eligible_workday") * h / DAY_S
        agg = agg.with_columns(
            horizon_s=pl.lit(h),
            burst_share=pl.when(pl.col("n_eligible") > 0).then(pl.col("n_bursts") / pl.col("n_eligible")),
            bursts_per_day=pl.when(pl.col("n_eligible") > 0).then(pl.col("n_bursts") / days),
            workday_bursts_per_day=pl.when(pl.col("weekdays_known") & (pl.col("n_eligible_workday") > 0))
            .then(pl.col("n_bursts_workday") / wdays),
        )
        agg = agg.with_columns(poisson_burst_share=pl.Series(
            [poisson_burst_share(m, ratio=ratio, min_prev=min_prev) for m in agg["mean_count"].to_list()],
            dtype=pl.Float64))
        rows.append(agg)
    cols = ["group", "horizon_s", "n_windows", "n_eligible", "n_bursts", "n_from_idle", "burst_share",
            "poisson_burst_share", "bursts_per_day", "workday_bursts_per_day", "median_burst_growth",
            "mean_count", "clock"]
    return pl.concat([r.select(cols) for r in rows]).with_columns(
        pl.col("n_windows", "n_eligible", "n_bursts", "n_from_idle").cast(pl.Int64)
    )


def burst_ratio_histogram(
    store: TraceStore,
    *,
    horizon_s: float = 300.0,
    by: str | Sequence[str] | None = None,
    ratio: float = 2.0,
    min_prev: int = 1,
    edges: Sequence[float] = RATIO_EDGES,
    counts: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """How large the bursts are: counts of ``c_k / c_{k-1}`` among bursts, in ``edges`` bins.

    Returns one row per group and bin ``[lo, hi)``: ``lo``, ``hi``, ``n_bursts``, ``share``.
    """
    by = normalize_by(by)
    frame = counts if counts is not None else binned_load(store, window_s=horizon_s, by=by)
    flagged = _series_masks(frame, ratio=ratio, min_prev=min_prev).filter(pl.col("burst"))
    edges = np.asarray(edges, dtype=float)
    idx = np.searchsorted(edges, flagged["growth"].to_numpy(), side="right") - 1
    flagged = flagged.with_columns(bin_=pl.Series(idx.astype(np.int64)))
    grid = pl.DataFrame({"group": frame["group"].unique(maintain_order=True)}).join(
        pl.DataFrame({"bin_": np.arange(edges.size - 1, dtype=np.int64), "lo": edges[:-1], "hi": edges[1:]}),
        how="cross",
    )
    counted = flagged.group_by(["group", "bin_"]).agg(n_bursts=pl.len())
    out = grid.join(counted, on=["group", "bin_"], how="left").with_columns(pl.col("n_bursts").fill_null(0).cast(pl.Int64))
    return out.with_columns(
        share=pl.when(pl.col("n_bursts").sum().over("group") > 0)
        .then(pl.col("n_bursts") / pl.col("n_bursts").sum().over("group"))
    ).sort(["group", "bin_"]).drop("bin_")
