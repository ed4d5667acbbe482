"""The window grid of a generation period: per (pool client, arrival window) rates, CVs and arrival laws.

A pool's ``arrivals`` table becomes dense ``(clients, windows)`` arrays over the period
(:class:`WindowGrid`), and the period is cut into segments at window edges and rate-table points
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
    """(first window start, last window end) of the pool's arrival windows, seconds."""
    arrivals = frame_of(pool.arrivals)
    if arrivals is None or arrivals.height == 0:
        raise GenerationError("the pool has no arrival windows: nothing to generate from")
    lo = arrivals["window_start"].min()
    hi = (arrivals["window_start"] + arrivals["window_s"]).max()
    return float(lo), float(hi)


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
    starts = np.unique(arrivals["window_start"].to_numpy().astype(float))
    lens = (
        arrivals.group_by("window_start").agg(pl.col("window_s").max()).sort("window_start")["window_s"].to_numpy()
    )
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
