r"""The request-data half of pool fitting: per client and data window, an empirical PMF of every field.

Fields: ``input_tokens``, ``output_tokens``, ``reason_ratio`` (= reason / output tokens, to the
nearest value of ServeGen's grid k / 501), ``text_tokens``, per-item ``image/audio/video_tokens``
(tokens / count, as ServeGen stores them) and the item counts, whichever the store has. Token values
up to ``exact_below`` are kept exactly; larger ones go into log-spaced bins of ratio ``bin_ratio``
represented by their count-weighted mean (values holding at least ``spike_share`` of the window keep
their own row; a bin holding more than ``max_bin_mass`` is cut at multiples of ``max_bin_mass`` of
the CDF, so binning moves the CDF by about ``max_bin_mass`` at most), so a PMF has at most about
``exact_below + log(max / exact_below) / log(bin_ratio) + 1 / spike_share + 1 / max_bin_mass`` bins.
A bin of several values is then stored as up to ``spread_points`` values spread over the values it
holds, keeping its mean (:func:`spread_bins`), so that generated lengths are not one value per bin.
Where a window has at least ``min_fit_requests`` requests a log-normal fit of each token field is
stored as FitResult JSON in ``data_fits`` (closed form from the sufficient statistics; no KS
distance, since the data are not kept).

Grouping runs on integer keys (numpy / polars), never a Python loop over requests. This module
reads the frame it is given; it reads no store and writes nothing.
"""
from __future__ import annotations

import json
import math

import numpy as np
import polars as pl

__all__ = ["bin_values", "request_fields", "data_pmfs", "pmfs_from_counts", "spread_bins"]

_MODALITIES = ("image", "audio", "video")


def bin_values(values: pl.Expr, *, exact_below: int, bin_ratio: float) -> pl.Expr:
    """Bin key of non-negative values: the value itself below ``exact_below``, else a log bin index.

    Keys above the cutoff are negative (``-1 - floor(log(v / exact_below) / log(bin_ratio))``) so
    they never collide with exact values.
    """
    logbin = (-1 - ((values / exact_below).log() / math.log(bin_ratio)).floor()).cast(pl.Float64)
    return pl.when(values < exact_below).then(values.cast(pl.Float64)).otherwise(logbin)


def request_fields(columns: tuple[str, ...]) -> list[tuple[str, pl.Expr, str]]:
    """(pool field, expression over the store's columns, kind) for every field the store supports."""
    out: list[tuple[str, pl.Expr, str]] = []
    for f in ("input_tokens", "output_tokens"):
        if f in columns:
            out.append((f, pl.col(f).cast(pl.Float64), "tokens"))
    if "reason_tokens" in columns and "output_tokens" in columns:
        ratio = pl.when(pl.col("output_tokens") > 0).then(
            (pl.col("reason_tokens") / pl.col("output_tokens")).clip(0.0, 1.0))
        # ServeGen's grid of values k / 501 (k = 0..500); each ratio goes to the nearest grid value,
        # which also inverts a sampler's round(k / 501 * output) without a one-bin shift
        out.append(("reason_ratio", (ratio * 501).round().clip(0, 500) / 501, "grid"))
    if "text_tokens" in columns:
        out.append(("text_tokens", pl.col("text_tokens").cast(pl.Float64), "tokens"))
    for m in _MODALITIES:
        tok, cnt = f"{m}_tokens", f"{m}_count"
        if tok in columns:
            if cnt in columns:
                # per item over requests that carry the modality; a (client, data window) none of whose
                # requests carries it gets {0: 1.0}, as ServeGen writes it
                per_item = pl.when(pl.col(cnt) > 0).then((pl.col(tok) / pl.col(cnt)).round()).when(
                    pl.col(cnt).max().over("_group") == 0).then(0.0)
            else:
                per_item = pl.col(tok).cast(pl.Float64)
            out.append((tok, per_item, "tokens"))
    for m in _MODALITIES:
        if f"{m}_count" in columns:
            out.append((f"{m}_count", pl.col(f"{m}_count").cast(pl.Float64), "tokens"))
    order = ["input_tokens", "output_tokens", "reason_ratio", "text_tokens", "image_tokens", "audio_tokens",
             "video_tokens", "image_count", "audio_count", "video_count"]
    return sorted(out, key=lambda t: order.index(t[0]))


def _bin(counts: pl.DataFrame, kind: str, *, exact_below: int, bin_ratio: float, max_bin_mass: float,
         spike_share: float) -> pl.DataFrame:
    """``c, d, v, n, lo, hi`` value counts of one field binned (tokens) or kept (grid): ``v`` a bin's
    rounded count-weighted mean, ``lo`` and ``hi`` the smallest and largest value it holds."""
    if kind == "grid":
        return counts.select("c", "d", "v", "n", pl.col("v").alias("lo"), pl.col("v").alias("hi"))
    total = pl.col("n").sum().over("c", "d")
    share = pl.col("n") / total
    cum_before = (pl.col("n").cum_sum().over("c", "d") - pl.col("n")) / total
    lb = bin_values(pl.col("v"), exact_below=exact_below, bin_ratio=bin_ratio)
    # a log bin holding more than max_bin_mass is cut at multiples of max_bin_mass of the
    # window's CDF, so that binning moves the CDF by at most about max_bin_mass
    split = pl.when(pl.col("lbmass") > max_bin_mass).then(
        pl.col("lb") * 1000 - (pl.col("cum_before") / max_bin_mass).floor()).otherwise(pl.col("lb") * 1000)
    return (counts.sort("c", "d", "v")
            .with_columns(lb.alias("lb"), share.alias("share"), cum_before.alias("cum_before"))
            # the bin's mass from its exact integer count over the window's (as the SQL twin
            # computes it): a float sum of the shares can land on either side of max_bin_mass
            .with_columns((pl.col("n").sum().over("c", "d", "lb") / total).alias("lbmass"))
            .with_columns(pl.when(pl.col("share") >= spike_share).then(pl.col("v"))
                          .when(pl.col("v") < exact_below).then(pl.col("v"))
                          .otherwise(split).alias("bin"))
            .group_by("c", "d", "bin")
            .agg(((pl.col("v") * pl.col("n")).sum() / pl.col("n").sum()).round().alias("v"), pl.col("n").sum(),
                 pl.col("v").min().alias("lo"), pl.col("v").max().alias("hi"))
            .group_by("c", "d", "v").agg(pl.col("n").sum(), pl.col("lo").min(), pl.col("hi").max()))


#: fewest requests a spread value of a bin stands for: a bin of ``n`` requests is spread over the
#: largest divisor of ``spread_points`` at most ``n / MIN_POINT_REQUESTS`` (1: kept at its mean)
MIN_POINT_REQUESTS = 8


def _slice_means(lo: np.ndarray, hi: np.ndarray, v: np.ndarray, k: int) -> np.ndarray:
    """``(rows, k)``: the means of ``k`` equal-probability slices of the two-piece uniform law on
    ``[lo - 1/2, hi + 1/2]`` of mean ``v`` (:func:`spread_bins`), rounded (half to even) into ``[lo, hi]``."""
    a, b = lo - 0.5, hi + 0.5
    m = np.clip(v, lo, hi)
    p = ((b - m) / (b - a))[:, None]  # in (0, 1): m is at least 1/2 from either end
    w = (np.arange(k + 1) / k)[None, :]
    a, b, m = a[:, None], b[:, None], m[:, None]
    over = w - p
    # the integral of the law's quantile function from 0 to w (linear on [0, p] and on [p, 1])
    integral = np.where(w <= p, a * w + (m - a) * w * w / (2.0 * p),
                        p * (a + m) / 2.0 + m * over + (b - m) * over * over / (2.0 * (1.0 - p)))
    # each slice's mean (not its midpoint's quantile: the slices' means average to m exactly)
    return np.clip(np.round(np.diff(integral, axis=1) * k), lo[:, None], hi[:, None])


def spread_bins(counts: pl.DataFrame, *, points: int, keys: tuple[str, ...] = ("c", "d", "field")) -> pl.DataFrame:
    """Value counts with every bin of several values drawn at values spread over them.

    A log bin is stored as its count-weighted mean, so a PMF drawn as it is gives one length per
    bin (5% wide at the default ratio): the generated CDF is a staircase whose steps the real
    lengths fill. Here a row whose values span ``lo < hi`` and that holds ``n`` requests becomes
    ``k`` rows, ``k`` the largest divisor of ``points`` at most ``n /`` :data:`MIN_POINT_REQUESTS`
    (each value stands for that many requests at least; 1: the row is kept), at the means of ``k``
    equal-probability slices of the two-piece uniform law on ``[a, b] = [lo - 1/2, hi + 1/2]``
    whose mean is the bin's mean ``v`` (mass ``(b - v) / (b - a)`` uniform on ``[a, v]``, the rest
    uniform on ``[v, b]``: denser on the side the mean leans to, as a falling density is within its
    bin), rounded to whole values within ``[lo, hi]``, each with ``n x points / k``. Every other row
    keeps its value with ``points`` times its count, so the counts scale by ``points`` throughout
    and every probability is the bin's as before. The slices' means average to ``v``, so a bin's
    mean moves by the rounding only (at most 1/2). Numpy over the rows (a loop over the divisors
    of ``points`` and, with a ``field`` key, over fields): no cross join of the key columns.

    Parameters
    ----------
    counts : polars.DataFrame
        ``keys``, ``v``, ``n`` (counts, integer or weighted) and ``lo``, ``hi`` (as from
        :func:`_bin`, or :func:`~servelab.analysis.aggregates.value_counts` with ``binning``).
    points : int
        Most values per bin (1: the counts as they are, ``lo`` and ``hi`` dropped).
    keys : tuple of str
        The columns that name one PMF.

    Returns
    -------
    polars.DataFrame
        ``keys, v, n`` (``n`` of the input's type), one row per (PMF, value), sorted by ``keys``
        and ``v``.
    """
    keys = [k for k in keys if k in counts.columns]
    if points <= 1 or "lo" not in counts.columns:
        return counts.select(*keys, "v", "n")
    if "field" in keys and counts.height:  # one field at a time: no string column gathered
        rest = tuple(k for k in keys if k != "field")
        parts = [spread_bins(part.drop("field"), points=points, keys=rest).with_columns(pl.lit(name).alias("field"))
                 for (name,), part in counts.partition_by("field", maintain_order=True, as_dict=True).items()]
        return pl.concat(parts).select(*keys, "v", "n").sort(*keys, "v")
    n_dtype = counts.schema["n"]
    n = counts["n"].to_numpy()
    lo = counts["lo"].cast(pl.Float64).to_numpy()
    hi = counts["hi"].cast(pl.Float64).to_numpy()
    divisors = [k for k in range(points, 1, -1) if points % k == 0]
    k_row = np.ones(counts.height, np.int64)
    room = np.where(hi > lo, n / MIN_POINT_REQUESTS, 0.0)
    for k in reversed(divisors):  # ascending: the largest divisor that fits wins
        k_row[room >= k] = k
    parts = [counts.filter(pl.Series(k_row == 1)).select(*keys, "v", (pl.col("n") * points).cast(n_dtype))]
    v = counts["v"].cast(pl.Float64).to_numpy()
    for k in divisors:  # a loop over the divisors of points
        rows = np.flatnonzero(k_row == k)
        if rows.size == 0:
            continue
        x = _slice_means(lo[rows], hi[rows], v[rows], k).ravel()
        row = np.repeat(rows, k)
        # a row's slices that round to one value (adjacent: the slices ascend) merge as n times
        # their number (a product: weighted counts keep the same bits in any order)
        start = np.ones(x.size, bool)
        start[1:] = (x[1:] != x[:-1]) | (row[1:] != row[:-1])
        first = np.flatnonzero(start)
        mult = np.diff(np.append(first, x.size))
        src = row[first]
        weight = n[src] * (points // k) * mult
        parts.append(counts.select(keys)[src].with_columns(pl.Series("v", x[first]),
                                                           pl.Series("n", weight).cast(n_dtype)))
    out = pl.concat(parts).sort(*keys, "v")
    # values of two rows meet only where a kept value lies inside another bin's range: merged in
    # sorted order (sums of two terms, which commute)
    same = out.select(pl.all_horizontal([pl.col(c).eq_missing(pl.col(c).shift(1)) for c in (*keys, "v")])).to_series()
    if same.any():
        out = out.group_by(*keys, "v", maintain_order=True).agg(pl.col("n").sum())
    return out


def pmfs_from_counts(counts: pl.DataFrame, stats: pl.DataFrame | None, names: list[str], kinds: dict[str, str], *,
                     data_window_s: float, exact_below: int, bin_ratio: float, spike_share: float,
                     max_bin_mass: float, min_fit_requests: int, binned: bool = False, spread_points: int = 1
                     ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Long PMFs and log-normal fits from value counts and log statistics.

    Parameters
    ----------
    counts : polars.DataFrame
        ``c`` (pool client index), ``d`` (data window index), ``field``, ``v`` (value), ``n``
        (requests): e.g. :func:`~servelab.analysis.aggregates.value_counts` per field.
    stats : polars.DataFrame or None
        ``c, d, field, n, mu, var`` of ``ln(value)`` over positive values, per token field
        (:func:`~servelab.analysis.aggregates.log_stats`).
    names : list of str
        Client ids by index.
    kinds : dict
        ``field -> "tokens" | "grid"`` (:func:`request_fields`), in field order.
    binned : bool
        The counts are binned already (``value_counts(..., binning=...)`` in SQL; with columns
        ``lo, hi`` their bins are spread here, without them they are used as they are).
    spread_points : int
        Most values per bin of several values (:func:`spread_bins`; 1: each bin at its mean).
    """
    pmf_parts = []
    spans = [c for c in ("lo", "hi") if binned and c in counts.columns]
    for name, kind in kinds.items():
        part = counts.filter(pl.col("field") == name).select("c", "d", "v", pl.col("n").cast(pl.Int64), *spans)
        if part.height == 0:
            continue
        if not binned:
            part = _bin(part, kind, exact_below=exact_below, bin_ratio=bin_ratio, max_bin_mass=max_bin_mass,
                        spike_share=spike_share)
        part = spread_bins(part, points=spread_points, keys=("c", "d"))
        pmf_parts.append(part.select(pl.col("c").cast(pl.Int64), pl.col("d").cast(pl.Int64),
                                       pl.lit(name).alias("field"), pl.col("v").cast(pl.Float64),
                                       pl.col("n").cast(pl.Int64)))
    name_of = pl.DataFrame({"c": np.arange(len(names), dtype=np.int64), "client_id": names},
                           schema={"c": pl.Int64, "client_id": pl.String})
    if not pmf_parts:
        return pl.DataFrame(), pl.DataFrame()
    pmfs = (pl.concat(pmf_parts)
            .with_columns((pl.col("n") / pl.col("n").sum().over("c", "d", "field")).cast(pl.Float32).cast(pl.Float64)
                          .alias("probability"))
            .join(name_of, on="c")
            .select("client_id", (pl.col("d").cast(pl.Float64) * data_window_s).alias("window_start"),
                    pl.lit(data_window_s).alias("window_s"), "field", pl.col("v").alias("value"), "probability")
            .sort("client_id", "window_start", "field", "value"))
    if stats is None or stats.height == 0:
        return pmfs, pl.DataFrame()
    stats = (stats.filter((pl.col("n") >= min_fit_requests) & (pl.col("var") > 0))
             .select(pl.col("c").cast(pl.Int64), pl.col("d").cast(pl.Int64), "field", pl.col("n").cast(pl.Int64),
                     "mu", pl.col("var").sqrt().alias("sigma"))
             .join(name_of, on="c")
             .with_columns((pl.col("d").cast(pl.Float64) * data_window_s).alias("window_start"))
             .sort("client_id", "window_start", "field"))
    if stats.height == 0:
        return pmfs, pl.DataFrame()
    n = stats["n"].to_numpy().astype(float)
    mu = stats["mu"].to_numpy()
    sig = stats["sigma"].to_numpy()
    ll = -n * mu - n * np.log(sig) - 0.5 * n * np.log(2 * np.pi) - 0.5 * n
    fits = [  # one JSON document per fitted (client, data window, field): the output itself
        json.dumps({"family": "lognormal", "params": {"s": float(s_), "scale": float(math.exp(m_))}, "n": int(k),
                    "n_params": 2, "log_likelihood": float(l_), "aic": float(4 - 2 * l_),
                    "bic": float(2 * math.log(k) - 2 * l_), "ks_distance": None, "p_value": None,
                    "p_value_method": None, "converged": True,
                    "notes": ["closed-form MLE from sufficient statistics; zero values left out"]}, sort_keys=True)
        for k, m_, s_, l_ in zip(n.tolist(), mu.tolist(), sig.tolist(), ll.tolist())
    ]
    data_fits = stats.select("client_id", "window_start", "field").with_columns(pl.Series("fit", fits, dtype=pl.String))
    return pmfs, data_fits


def data_pmfs(frame: pl.DataFrame, ci: np.ndarray, names: list[str], fields, *, data_window_s: float,
              exact_below: int, bin_ratio: float, spike_share: float, max_bin_mass: float,
              min_fit_requests: int, spread_points: int = 1) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Long PMFs and log-normal fits per (client, data window, field) from rows in memory.

    The in-memory reference of the SQL path of :func:`~servelab.fitting.pool_fit.fit_pool`
    (:mod:`servelab.analysis.aggregates` counts, then :func:`pmfs_from_counts`).
    """
    if not fields:
        return pl.DataFrame(), pl.DataFrame()
    dwin = np.floor(frame["timestamp"].to_numpy() / data_window_s).astype(np.int64)
    d0 = int(dwin.min())
    n_d = int(dwin.max()) - d0 + 1
    group = ci.astype(np.int64) * n_d + (dwin - d0)  # one integer per (client, data window)
    values = frame.with_columns(pl.Series("_group", group)).select(*[expr.alias(name) for name, expr, _ in fields])
    count_parts, stat_parts = [], []
    for name, _, kind in fields:
        v = values[name].cast(pl.Float64).fill_nan(None).to_numpy()
        ok = np.isfinite(v) & (v >= 0)
        scale = 501.0 if kind == "grid" else 1.0
        vi = np.minimum(np.round(v[ok] * scale), 2**32 - 1).astype(np.int64)
        gk = group[ok]
        # (group, value) packed into one int64: a single-column hash group-by
        vc = pl.Series("k", (gk << 32) | vi).value_counts(name="n")
        k = vc["k"].to_numpy()
        count_parts.append(pl.DataFrame({"c": (k >> 32) // n_d, "d": (k >> 32) % n_d + d0, "field": name,
                                         "v": (k & (2**32 - 1)).astype(np.float64) / scale,
                                         "n": vc["n"].cast(pl.Int64)}))
        if kind == "tokens" and not name.endswith("_count"):
            pos = v[ok] > 0
            lv = np.log(v[ok][pos])
            gp = gk[pos]
            n_g = group.max() + 1
            cnt = np.bincount(gp, minlength=n_g)
            with np.errstate(divide="ignore", invalid="ignore"):
                mu = np.bincount(gp, weights=lv, minlength=n_g) / cnt
                var = np.bincount(gp, weights=(lv - mu[gp]) ** 2, minlength=n_g) / cnt
            sel = np.flatnonzero(cnt > 0)
            stat_parts.append(pl.DataFrame({"c": sel // n_d, "d": sel % n_d + d0, "field": name,
                                            "n": cnt[sel].astype(np.int64), "mu": mu[sel], "var": var[sel]}))
    return pmfs_from_counts(pl.concat(count_parts), pl.concat(stat_parts) if stat_parts else None, names,
                            {name: kind for name, _, kind in fields}, data_window_s=data_window_s,
                            exact_below=exact_below, bin_ratio=bin_ratio, spike_share=spike_share,
                            max_bin_mass=max_bin_mass, min_fit_requests=min_fit_requests,
                            spread_points=spread_points)
