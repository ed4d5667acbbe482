"""Sample a client-tagged request trace from a pool at the pool's own rates (vectorised, exact).

:func:`sample_requests` is the simple reference sampler: every client at its recorded rate, no
rate function, no client selection, no conversations (the full generator,
:mod:`servelab.generator.generate`, builds on it). Test fixtures and round-trip checks use it.

Per client and arrival window (clipped to the requested interval of length ``L``):

- the request count is Poisson with mean exactly ``rate * L``;
- the ``N`` arrival times are the first ``N`` partial sums of ``N + 1`` gaps drawn from the
  window's family (``gamma`` shape ``a``, ``weibull`` shape ``c``, ``exponential``; a window
  with requests but no family is exponential), scaled so the ``N + 1`` gaps fill the window;
- every request-data field is drawn independently (its own uniforms) from the client's PMF of the
  covering data window (an empty covering window borrows the client's nearest non-empty one);
  ``reason_tokens = round(reason_ratio * output_tokens)``; multimodal ``<m>_tokens`` in the pool
  are tokens per item, so a request's ``<m>_tokens = per-item draw * <m>_count``; without an
  ``input_tokens`` field, ``input_tokens = text_tokens + sum of modality tokens``.

No Python loop runs over requests or windows: numpy draws and polars joins only. The same seed
gives the same bytes. This module does not read or write files.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from servelab.generator.exceptions import PoolSpanError
from servelab.generator.pool import ClientPool

__all__ = ["sample_requests", "draw_from_pmfs", "MODALITIES"]

MODALITIES = ("image", "audio", "video")
_OUT_INT = ("input_tokens", "output_tokens", "reason_tokens", "text_tokens", "image_tokens", "audio_tokens",
            "video_tokens", "image_count", "audio_count", "video_count")


def sample_requests(
    pool: ClientPool,
    *,
    start: float | None = None,
    duration: float | None = None,
    seed: int,
    clients=None,
) -> pl.DataFrame:
    """Draw a canonical, client-tagged request trace from ``pool``.

    Parameters
    ----------
    pool : ClientPool
        The pool (its own rates are used, unscaled).
    start : float, optional
        First second of the trace, in the pool's time; default the pool's span start.
    duration : float, optional
        Length in seconds; default up to the pool's span end.
    seed : int
        Seed of the numpy generator (same seed, same bytes).
    clients : iterable of str, optional
        Only these clients (default all).

    Returns
    -------
    polars.DataFrame
        ``request_id, timestamp, client_id`` and the token columns the pool describes
        (canonical names and types; null where a client has no data), sorted by timestamp.
        Timestamps are seconds in the pool's time (not shifted to ``start``).

    Raises
    ------
    PoolSpanError
        If ``[start, start + duration)`` is empty or outside the pool's span.
    """
    lo, hi = pool.span
    start = lo if start is None else float(start)
    end = hi if duration is None else start + float(duration)
    if duration is not None and not float(duration) > 0:
        raise PoolSpanError(f"duration must be > 0 seconds; got {duration!r}")
    if start < lo or end > hi or not end > start:
        raise PoolSpanError(f"[start, start + duration) = [{start!r}, {end!r}) must lie inside the pool's span ({lo!r}, {hi!r})")
    if clients is not None:
        pool = pool.select(clients)
    order = pl.DataFrame({"client_id": list(pool.client_ids)}).with_row_index("client_idx")
    rng = np.random.default_rng(seed)

    win = (pool.lazy("arrivals")
           .filter((pl.col("rate") > 0) & (pl.col("window_start") < end) & (pl.col("window_start") + pl.col("window_s") > start))
           .join(order.lazy(), on="client_id")
           .sort("client_idx", "window_start")
           .with_columns(pl.max_horizontal(pl.col("window_start"), pl.lit(start)).alias("lo"),
                         pl.min_horizontal(pl.col("window_start") + pl.col("window_s"), pl.lit(end)).alias("hi"))
           .collect())
    length = (win["hi"] - win["lo"]).to_numpy()
    counts = rng.poisson(win["rate"].to_numpy() * length)
    times = _arrival_times(counts, win["lo"].to_numpy(), length, win["family"].to_numpy(),
                           win["shape"].fill_null(1.0).to_numpy(), rng)
    client_idx = np.repeat(win["client_idx"].to_numpy(), counts)
    sort = np.argsort(times, kind="stable")
    times, client_idx = times[sort], client_idx[sort]
    req = pl.DataFrame({"timestamp": times, "client_idx": client_idx.astype(np.uint32)})
    req = req.join(order, on="client_idx", how="left", maintain_order="left")

    columns = _draw_fields(pool, req, rng)
    out = req.select("timestamp", "client_id").with_columns(**columns)
    out = out.with_row_index("request_id").with_columns(pl.col("request_id").cast(pl.Int64))
    present = [c for c in _OUT_INT if c in out.columns]
    return out.select("request_id", "timestamp", "client_id", *present)


def _arrival_times(counts, lo, length, family, shape, rng) -> np.ndarray:
    """Arrival times of all windows: N gaps-normalised points per window, in window order."""
    n_gaps = counts + 1
    total = int(n_gaps.sum())
    fam = np.repeat(family.astype(object), n_gaps)
    shp = np.repeat(shape.astype(np.float64), n_gaps)
    gaps = np.empty(total)
    gm = fam == "gamma"
    wb = fam == "weibull"
    ex = ~(gm | wb)
    gaps[gm] = rng.gamma(shp[gm])
    gaps[wb] = rng.weibull(shp[wb])
    gaps[ex] = rng.exponential(size=int(ex.sum()))
    # partial sums within each window: first N of the N+1 cumulative sums, over the window total
    seg = np.repeat(np.arange(counts.size), n_gaps)
    cum = np.cumsum(gaps)
    ends = np.cumsum(n_gaps) - 1
    base = np.concatenate([[0.0], cum[ends[:-1]]]) if counts.size else np.zeros(0)
    local = cum - base[seg]
    window_total = local[ends]
    keep = np.ones(total, bool)
    keep[ends] = False
    frac = local[keep] / window_total[seg[keep]]
    seg_k = seg[keep]
    t = lo[seg_k] + frac * length[seg_k]
    # rounding must never put a request on or past its window's end
    return np.minimum(t, np.nextafter((lo + length)[seg_k], -np.inf))


def draw_from_pmfs(pmfs: pl.DataFrame, group: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Inverse-CDF draws from many PMFs at once.

    Parameters
    ----------
    pmfs : polars.DataFrame
        ``gid`` (0..G-1, contiguous), ``value``, ``probability``, sorted by ``gid`` then ``value``.
    group : numpy.ndarray of int
        For each draw, the ``gid`` of its PMF.
    rng : numpy.random.Generator
        One uniform per draw is taken from it.
    """
    gid = pmfs["gid"].to_numpy()
    p = pmfs["probability"].to_numpy()
    values = pmfs["value"].to_numpy()
    n_groups = int(gid[-1]) + 1 if gid.size else 0
    totals = np.bincount(gid, weights=p, minlength=n_groups)
    cum = np.cumsum(p)
    first = np.searchsorted(gid, np.arange(n_groups), side="left")
    before = np.concatenate([[0.0], cum])[first]
    within = (cum - before[gid]) / totals[gid]
    keys = gid + within
    last_pos = np.maximum.reduceat(np.where(p > 0, np.arange(p.size), -1), first) if p.size else first
    u = rng.random(group.size)
    idx = np.searchsorted(keys, group + u, side="right")
    idx = np.minimum(idx, last_pos[group])
    return values[idx]


def _draw_fields(pool: ClientPool, req: pl.DataFrame, rng: np.random.Generator) -> dict[str, pl.Series]:
    """Request-data columns for ``req`` (timestamp, client_id), one independent draw per field."""
    fields = [f for f in pool.fields]
    if not fields or req.height == 0:
        return {f: pl.Series(f, [None] * req.height, dtype=pl.Float64) for f in _map_fields(fields)}
    dw = pool.data_window_s
    data = pool.lazy("data").filter(pl.col("probability") > 0)
    anchor = data.select(pl.col("window_start").min()).collect().item()
    if anchor is None:
        return {f: pl.Series(f, [None] * req.height, dtype=pl.Float64) for f in _map_fields(fields)}
    req = req.with_columns((anchor + ((pl.col("timestamp") - anchor) / dw).floor() * dw).alias("cover"))
    need = req.select("client_id", "cover").unique().sort("client_id", "cover").with_row_index("need_idx")
    need_idx = req.join(need, on=["client_id", "cover"], how="left", maintain_order="left")["need_idx"].to_numpy()
    all_pmfs = (data.select("field", "client_id", "window_start", "value", "probability")
                .sort("field", "client_id", "window_start", "value").collect())
    by_field = all_pmfs.partition_by("field", as_dict=True, include_key=False)
    draws: dict[str, np.ndarray] = {}
    for field in fields:
        pmf = by_field.get((field,))
        if pmf is None or pmf.height == 0:
            continue
        groups = pmf.select("client_id", "window_start").unique(maintain_order=True).with_row_index("gid")
        pmf = pmf.join(groups, on=["client_id", "window_start"], maintain_order="left")
        # covering window, else the client's nearest non-empty one
        src = need.join_asof(groups.rename({"window_start": "cover"}),
                             on="cover", by="client_id", strategy="nearest", check_sortedness=False)
        src_gid = src.sort("need_idx")["gid"].cast(pl.Float64).fill_null(np.nan).to_numpy()[need_idx]
        has = ~np.isnan(src_gid)
        out = np.full(req.height, np.nan)
        out[has] = draw_from_pmfs(pmf.select(pl.col("gid").cast(pl.Int64), "value", "probability"),
                                  src_gid[has].astype(np.int64), rng)
        draws[field] = out
    return _combine(draws, req.height)


def _map_fields(fields) -> list[str]:
    out = [f for f in fields if f in _OUT_INT]
    if "reason_ratio" in fields and "output_tokens" in fields:
        out.append("reason_tokens")
    if "input_tokens" not in out and "text_tokens" in fields:
        out.append("input_tokens")
    return out


def _to_int(x: np.ndarray) -> pl.Series:
    return pl.Series(np.round(x)).fill_nan(None).cast(pl.Int64)


def _combine(draws: dict[str, np.ndarray], n: int) -> dict[str, pl.Series]:
    cols: dict[str, np.ndarray] = {}
    for f in ("input_tokens", "output_tokens", "text_tokens", "reason_tokens", "image_count", "audio_count", "video_count"):
        if f in draws:
            cols[f] = np.round(draws[f])
    if "reason_ratio" in draws and "output_tokens" in cols and "reason_tokens" not in cols:
        cols["reason_tokens"] = np.round(np.clip(draws["reason_ratio"], 0.0, 1.0) * cols["output_tokens"])
    for m in MODALITIES:
        tok = draws.get(f"{m}_tokens")
        if tok is None:
            continue
        count = cols.get(f"{m}_count")
        cols[f"{m}_tokens"] = np.round(tok) * (count if count is not None else 1.0)
    if "input_tokens" not in cols and "text_tokens" in cols:
        total = cols["text_tokens"].copy()
        for m in MODALITIES:
            if f"{m}_tokens" in cols:
                total = total + np.nan_to_num(cols[f"{m}_tokens"])
        cols["input_tokens"] = total
    return {k: _to_int(v).alias(k) for k, v in cols.items()}
