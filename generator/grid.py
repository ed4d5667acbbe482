"""The window grid of a generation period: per (pool client, arrival window) rates, CVs and arrival laws.

A pool's ``arrivals`` table becomes dense ``(clients, windows)`` arrays over the period
(:class:`WindowGrid`; a (client, window) the table does not hold is idle, rate 0: sparse pools
hold active windows only), and the period is cut into segments at window edges and rate-table points
(:func:`segments`). The arrival family and shapes of every (client, window) come from the pool's
named parameter columns (a version-1 ``shape`` column is converted,
:func:`~servelab.generator.pool.named_arrival_params`). This module draws nothing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from servelab.generator.arrivals import ArrivalLaw, arrival_law
from servelab.generator.exceptions import GenerationError
from servelab.generator.pool import named_arrival_params
from servelab.generator.rates import RateSchedule

__all__ = ["WindowGrid", "frame_of", "pool_span", "window_grid", "segments"]


def frame_of(value) -> pl.DataFrame | None:
    """A pool table as a DataFrame (LazyFrames collected), or None."""
    if value is None:
        return None
    if isinstance(value, pl.LazyFrame):
        return value.collect()
    return value


def pool_span(pool) -> tuple[float, float]:
    """(first window start, last window end) of the pool, seconds.

    The hull of the pool's active arrival windows and its stated ``span``: a sparse pool (idle
    windows not held) keeps the span it was fitted over, and a dense one gives its windows' range
    as before.
    """
    arrivals = frame_of(pool.arrivals)
    if arrivals is None or arrivals.height == 0:
        raise GenerationError("the pool has no arrival windows: nothing to generate from")
    lo = float(arrivals["window_start"].min())
    hi = float((arrivals["window_start"] + arrivals["window_s"]).max())
    span = getattr(pool, "span", None)
    if span is not None and len(span) == 2 and span[1] > span[0]:
        lo, hi = min(lo, float(span[0])), max(hi, float(span[1]))
    return lo, hi


def _window_starts(arrivals: pl.DataFrame, window_s, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Window starts and lengths over ``[lo, hi)``: the pool's regular grid when its windows lie on one.

    A sparse pool holds active windows only; when every held window has length ``window_s`` and
    starts on one grid ``anchor + k * window_s``, every window of that grid overlapping
    ``[lo, hi)`` is returned (idle ones included, rate 0), so a sparse pool and its dense twin give
    the same grid. Otherwise the held windows only (as before).
    """
    starts = np.unique(arrivals["window_start"].to_numpy().astype(float))
    lens = (arrivals.group_by("window_start").agg(pl.col("window_s").max()).sort("window_start")["window_s"]
            .to_numpy().astype(float))
    if starts.size == 0 or not (isinstance(window_s, (int, float)) and window_s > 0):
        return starts, lens
    w = float(window_s)
    k = (starts - starts[0]) / w
    if not (np.all(np.abs(lens - w) <= 1e-9 * w) and np.all(np.abs(k - np.round(k)) <= 1e-6)):
        return starts, lens
    k_lo = math.floor((lo - starts[0]) / w + 1e-9)
    k_hi = math.ceil((hi - starts[0]) / w - 1e-9)
    grid = starts[0] + w * np.arange(k_lo, max(k_hi, k_lo + 1), dtype=np.float64)
    grid = grid[(grid < hi) & (grid + w > lo)]
    # held starts keep their exact float values (a start computed as k * w may differ in the last bit)
    pos = np.searchsorted(grid, starts)
    pos = np.clip(pos, 0, grid.size - 1)
    near = np.abs(grid[pos] - starts) <= 1e-6 * w
    grid[pos[near]] = starts[near]
    grid = np.unique(np.concatenate([grid, starts[~near]]))
    return grid, np.full(grid.size, w)


@dataclass(frozen=True)
class WindowGrid:
    """Dense per-(pool client, arrival window) arrays over the generation period.

    ``law`` holds the arrival law of every (client, window) flattened row-major: cell
    ``p * W + w``.
    """

    pool_ids: list[str]
    window_start: np.ndarray  # (W,)
    window_len: np.ndarray  # (W,)
    rate: np.ndarray  # (P, W)
    cv: np.ndarray  # (P, W)
    law: ArrivalLaw  # P * W cells


def window_grid(pool, lo: float, hi: float) -> WindowGrid:
    """The :class:`WindowGrid` of ``pool`` over ``[lo, hi)`` (windows overlapping it)."""
    arrivals = frame_of(pool.arrivals).filter(
        (pl.col("window_start") < hi) & ((pl.col("window_start") + pl.col("window_s")) > lo)
    )
    arrivals = named_arrival_params(arrivals.lazy()).collect()
    clients = frame_of(pool.clients)
    if clients is not None and "has_arrivals" in clients.columns:
        ids = clients.filter(pl.col("has_arrivals"))["client_id"].to_list()
    else:
        ids = arrivals["client_id"].unique(maintain_order=True).to_list()
    ids = sorted(set(ids))
    starts, lens = _window_starts(arrivals, getattr(pool, "window_s", None), lo, hi)
    P, W = len(ids), starts.size
    index = pl.DataFrame({"client_id": ids, "p": np.arange(P)})
    a = arrivals.join(index, on="client_id", how="inner")
    p = a["p"].to_numpy()
    w = np.searchsorted(starts, a["window_start"].to_numpy().astype(float))
    rate = np.zeros((P, W))
    cv = np.zeros((P, W))
    rate[p, w] = a["rate"].fill_null(0.0).to_numpy()
    cv[p, w] = a["cv"].fill_null(0.0).to_numpy() if "cv" in a.columns else 0.0
    # every (client, window) cell: idle ones are exponential (never drawn from: their rate is 0)
    family = np.full(P * W, None, dtype=object)
    family[p * W + w] = a["family"].to_numpy() if "family" in a.columns else None
    shape_cols = [c for c in a.columns if c not in ("client_id", "window_start", "window_s", "rate", "cv", "family",
                                                     "scale", "p")]
    shapes = {}
    for c in shape_cols:
        full = np.full(P * W, np.nan)
        full[p * W + w] = a[c].cast(pl.Float64).fill_null(np.nan).to_numpy()
        shapes[c] = full
    law = arrival_law(family, shapes, cv.reshape(-1))
    return WindowGrid(ids, starts, lens.astype(float), rate, cv, law)


def segments(lo: float, hi: float, grid: WindowGrid, schedule: RateSchedule, max_segment_s: float
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Segment starts, ends and windows (-1: no window) over ``[lo, hi)``.

    Segments are cut at window edges and, for a rate table, at its points and every
    ``max_segment_s``.
    """
    cuts = [np.array([lo, hi]), grid.window_start, grid.window_start + grid.window_len]
    if schedule.kind == "table":
        cuts.append(lo + np.asarray(schedule.times))
        n = math.ceil((hi - lo) / max_segment_s)
        cuts.append(lo + np.arange(n + 1) * max_segment_s)
    b = np.unique(np.concatenate(cuts))
    b = b[(b >= lo) & (b <= hi)]
    a, e = b[:-1], b[1:]
    w = np.searchsorted(grid.window_start, a, side="right") - 1
    covered = (w >= 0) & (a < grid.window_start[np.maximum(w, 0)] + grid.window_len[np.maximum(w, 0)])
    return a, e, np.where(covered, w, -1)
