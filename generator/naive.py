"""The naive baseline the papers compare against: one Gamma process, aggregate request data.

:func:`naive_generate` resamples a workload *as a whole* (ServeGen section 6.2, "Naive"): a
single Gamma renewal process whose rate follows the same target as :func:`~servelab.generator.
generate.generate` (constant, a table, or the pool's total scaled, so variable periods are
compared fairly) and whose CV is the aggregate CV; every request's data is drawn from the
aggregate distribution of the period (all clients mixed by their expected requests, all data
windows pooled). No clients, no conversations, no shift of data with time or rate.

It is built on the per-client machinery: an aggregate pool of one client (the pool's total rate
per window, Gamma with shape ``1 / CV^2``, the aggregate PMFs in one data window) is handed to
:func:`~servelab.generator.generate.generate`, so both generators share one sampler. This
module does not write files.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from servelab.generator.exceptions import GenerationError
from servelab.generator.generate import (
    DEFAULT_MAX_REQUESTS,
    RateSchedule,
    check_request_budget,
    aggregate_pmfs,
    collect_chunks,
    pool_span,
    resolve_rate,
)
from servelab.generator.grid import SegmentRates, WindowGrid, frame_of, window_grid
from servelab.generator.stream import GenerationPlan, iter_plan, plan_generation

__all__ = ["NAIVE_CLIENT", "aggregate_cv", "naive_generate", "naive_plan"]

#: client_id of every request of a naive workload
NAIVE_CLIENT = "naive"
_PILOT_REQUESTS = 200_000


@dataclass(frozen=True)
class _AggregatePool:
    """A one-client pool in the ClientPool layout (frames only)."""

    clients: pl.DataFrame
    arrivals: pl.DataFrame
    data: pl.DataFrame
    data_window_s: float
    window_s: float
    provenance: dict = field(default_factory=dict)


def aggregate_cv(pool, rate, duration: float, *, start: float | None = None, seed: int,
                 grid: WindowGrid | None = None) -> float:
    """The gap CV of the per-client workload over the period, measured on a pilot draw.

    Gaps are multiplied by the target rate at their start (time rescaled to unit rate), so a
    rate that changes between windows does not count as burstiness: this is the CV a single
    Gamma process following the same target needs.

    The pilot draws the arrivals of :func:`~servelab.generator.generate.generate` over the same
    period (no request data: only the times count) with the target scaled down so that about
    200,000 requests are drawn (scaling every client by one factor rescales time within a window
    and leaves the gap CV unchanged). ``grid``: the pool's window grid over the period, when the
    caller has it (it is built once either way).
    """
    schedule = resolve_rate(rate)
    lo, hi = _period(pool, start, duration)
    grid = window_grid(pool, lo, hi) if grid is None else grid
    expected = schedule.expected_requests(hi - lo, pool, start=lo)
    factor = min(1.0, _PILOT_REQUESTS / max(expected, 1.0))
    plan = plan_generation(pool, _scaled(schedule, factor), duration, start=lo, seed=seed, conversations=False,
                           data=False, grid=grid, max_requests=None)
    parts = [part["t"] for rows, _ in iter_plan(plan, chunk_s=None, frames=False) for part in rows]
    t = (np.concatenate(parts) if parts else np.zeros(0)) - lo
    # time-rescale by the target rate so that a varying rate does not pass for burstiness
    gaps = np.diff(t) * _target_at(grid, schedule, lo, t[:-1])
    if gaps.size < 2 or gaps.mean() <= 0:
        raise GenerationError("the pilot workload has fewer than 3 requests: cannot estimate the aggregate CV")
    return float(gaps.std() / gaps.mean())


def naive_plan(pool, rate, duration: float, *, start: float | None = None, cv: float | None = None, seed: int,
               clock: float | None = None, max_requests: int | None = DEFAULT_MAX_REQUESTS,
               data_span: tuple[float, float] | None = None) -> GenerationPlan:
    """The :class:`~servelab.generator.stream.GenerationPlan` of the naive baseline (see :func:`naive_generate`)."""
    lo, hi = _period(pool, start, duration)
    check_request_budget(resolve_rate(rate), duration, pool, start=lo, max_requests=max_requests)
    grid = window_grid(pool, lo, hi)
    if cv is None:
        cv = aggregate_cv(pool, rate, duration, start=start, seed=seed, grid=grid)
    if not (isinstance(cv, (int, float)) and math.isfinite(cv) and cv > 0):
        raise GenerationError(f"cv must be a finite number > 0; got {cv!r}")
    data_from = None
    if data_span is not None:
        a, b = (float(x) for x in data_span)
        if not (math.isfinite(a) and math.isfinite(b) and b > a):
            raise GenerationError(f"data_span must be (start, end) seconds with start < end; got {data_span!r}")
        data_from = (window_grid(pool, a, b), a, b)
    agg = _aggregate_pool(pool, grid, lo, hi, float(cv), data_from=data_from)
    return plan_generation(agg, rate, duration, start=lo, seed=seed, conversations=False, clock=clock,
                           max_requests=max_requests)


def naive_generate(pool, rate, duration: float, *, start: float | None = None, cv: float | None = None,
                   seed: int, clock: float | None = None,
                   max_requests: int | None = DEFAULT_MAX_REQUESTS,
                   data_span: tuple[float, float] | None = None) -> pl.DataFrame:
    """Generate the naive baseline workload.

    Parameters
    ----------
    pool : ClientPool
        The pool whose aggregate behaviour is resampled.
    rate, duration, start
        As in :func:`~servelab.generator.generate.generate`.
    cv : float, optional
        Gap CV of the single Gamma process; default :func:`aggregate_cv` of the pool over the
        period (a reference trace's own CV can be given instead).
    seed : int
        Seed of every draw.
    clock, max_requests
        As in :func:`~servelab.generator.generate.generate` (the budget is checked before the
        pilot draw of :func:`aggregate_cv`).
    data_span : (float, float), optional
        Take the aggregate request data from this period of the pool instead of the generated
        one (out of sample: the period the pool was fitted on, so that the baseline knows the
        past mix of clients only, not a model of how it changes).

    Returns
    -------
    polars.DataFrame
        ``timestamp`` (seconds since ``start``), ``client_id`` (``"naive"``) and the data columns.
    """
    plan = naive_plan(pool, rate, duration, start=start, cv=cv, seed=seed, clock=clock, max_requests=max_requests,
                      data_span=data_span)
    return collect_chunks(plan, iter_plan(plan, chunk_s=None))


def _period(pool, start, duration) -> tuple[float, float]:
    span_lo, _ = pool_span(pool)
    lo = span_lo if start is None else float(start)
    if math.isnan(lo):
        raise GenerationError(f"start must be a number of seconds in the pool's span; got {start!r}")
    if not (isinstance(duration, (int, float)) and math.isfinite(duration) and duration > 0):
        raise GenerationError(f"duration must be a finite number of seconds > 0; got {duration!r}")
    return lo, lo + float(duration)


def _scaled(schedule: RateSchedule, factor: float) -> RateSchedule:
    if schedule.kind == "table":
        return RateSchedule("table", times=schedule.times, rates=tuple(r * factor for r in schedule.rates))
    return RateSchedule(schedule.kind, value=schedule.value * factor)


def _target_at(grid: WindowGrid, schedule: RateSchedule, lo: float, t: np.ndarray) -> np.ndarray:
    """Target total rate at times ``t`` (seconds since ``lo``)."""
    if schedule.kind != "pool":
        return schedule.at(t)
    w = np.clip(np.searchsorted(grid.window_start, lo + t, side="right") - 1, 0, grid.window_start.size - 1)
    return schedule.value * grid.window_totals()[w]


def _aggregate_pool(pool, grid: WindowGrid, lo: float, hi: float, cv: float,
                    data_from: tuple[WindowGrid, float, float] | None = None) -> _AggregatePool:
    total = grid.window_totals()
    window_len_max = grid.window_len.max()
    shape = 1.0 / cv**2
    active = total > 0
    arrivals = pl.DataFrame({
        "client_id": [NAIVE_CLIENT] * grid.window_start.size,
        "window_start": grid.window_start,
        "window_s": grid.window_len,
        "rate": total,
        "cv": np.where(active, cv, 0.0),
        "family": pl.Series([("gamma" if a else None) for a in active], dtype=pl.String),
        "a": np.where(active, shape, np.nan),
        "scale": np.where(active, 1.0 / np.where(active, total, 1.0) / shape, np.nan),
    })
    out_hi, out_start = hi, float(grid.window_start[0])
    if data_from is not None:  # the mix of another period (times and rates stay the generated period's)
        grid, lo, hi = data_from
    data = frame_of(pool.data)
    if data is not None and data.height:
        data = data.filter((pl.col("window_start") < hi) & ((pl.col("window_start") + pl.col("window_s")) > lo))
        # expected requests per (client, data window) over the period weight the mixture
        dw = float(getattr(pool, "data_window_s", None) or data["window_s"].max())
        a = np.maximum(grid.window_start, lo)
        b = np.minimum(grid.window_start + grid.window_len, hi)
        dstarts = np.unique(data["window_start"].to_numpy())
        d_of_w = np.clip(np.searchsorted(dstarts, grid.window_start, side="right") - 1, 0, max(dstarts.size - 1, 0))
        # expected requests per (pool client, data window), summed as over dense rows (same bits)
        cells = SegmentRates(n_clients=len(grid.pool_ids), n_segments=grid.window_start.size,
                             segment=grid.cell_window, client=grid.client, cell=np.arange(grid.rate.size),
                             rate=grid.rate)
        # data windows shorter than arrival windows (short traces: PoolFitSettings.min_data_windows)
        # share each arrival window's requests by overlap (SegmentRates.overlap_row_sums, as the
        # per-client path's weights). Without such a window each arrival window weighs its whole
        # (clipped) length
        d_last = np.clip(np.searchsorted(dstarts, np.nextafter(b, -np.inf), side="right") - 1, 0,
                         max(dstarts.size - 1, 0))
        req = cells.overlap_row_sums(a, b, d_of_w, d_last, dstarts, dstarts + dw, dw)
        rows = []
        for d in range(dstarts.size):  # a handful of data windows
            w = req[:, d]
            for p in np.flatnonzero(w > 0):
                rows.append((grid.pool_ids[p], float(dstarts[d]), float(w[p])))
        weights = pl.DataFrame(rows, schema={"client_id": pl.String, "window_start": pl.Float64,
                                             "weight": pl.Float64}, orient="row")
        mixed = aggregate_pmfs(data.with_columns(pl.col("window_start").cast(pl.Float64)), weights, by_window=False)
        data = mixed.select(
            pl.lit(NAIVE_CLIENT).alias("client_id"), pl.lit(out_start).alias("window_start"),
            pl.lit(float(out_hi - out_start) + dw).alias("window_s"), "field", "value", "probability")
    else:
        data = pl.DataFrame(schema={"client_id": pl.String, "window_start": pl.Float64, "window_s": pl.Float64,
                                    "field": pl.String, "value": pl.Float64, "probability": pl.Float64})
    clients = pl.DataFrame({"client_id": [NAIVE_CLIENT], "has_arrivals": [True], "has_data": [data.height > 0],
                            "note": ["naive aggregate of the pool"]})
    return _AggregatePool(clients, arrivals, data, data_window_s=float(out_hi - out_start) + 1.0,
                          window_s=float(window_len_max))
