"""The target total request rate of a workload as a function of time (:class:`RateSchedule`).

A constant, a table of points linearly interpolated, or the pool's own historical total scaled.
This module describes rates only; it draws nothing (see :mod:`servelab.generator.generate`).
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from servelab.generator.exceptions import GenerationError, RequestBudgetError

#: requests a generated workload may hold unless ``max_requests`` says more: generation peaks at
#: about 150 bytes per request (measured: 3.6 M requests from m-small at 1000 req/s for 1 h peaked at
#: 0.68 GB RSS, 0.36 M at 0.21 GB), so 5e7 requests need about 7.5 GB
DEFAULT_MAX_REQUESTS = 50_000_000

__all__ = ["DEFAULT_MAX_REQUESTS", "RateSchedule", "check_request_budget", "constant_rate", "rate_table", "pool_rate", "read_rate_file", "resolve_rate"]


@dataclass(frozen=True)
class RateSchedule:
    """The target total request rate (req/s) as a function of time since the workload's start.

    Parameters
    ----------
    kind : {"constant", "table", "pool"}
        A constant rate, a table of points linearly interpolated (held flat beyond its ends),
        or the pool's own historical total rate times ``value``.
    value : float
        The constant rate, or the scale applied to the pool's total.
    times, rates : tuple of float
        The table's points (seconds since the workload's start, req/s); ``kind="table"`` only.
    """

    kind: str
    value: float = 0.0
    times: tuple[float, ...] = ()
    rates: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("constant", "table", "pool"):
            raise GenerationError(f"RateSchedule kind must be 'constant', 'table' or 'pool'; got {self.kind!r}")
        if self.kind in ("constant", "pool") and not (math.isfinite(self.value) and self.value > 0):
            raise GenerationError(f"rate must be a finite number > 0; got {self.value!r}")
        if self.kind == "table":
            t = np.asarray(self.times, dtype=float)
            r = np.asarray(self.rates, dtype=float)
            if t.size == 0 or t.size != r.size:
                raise GenerationError(
                    f"a rate table needs as many times as rates and at least one point; got {t.size} times, {r.size} rates"
                )
            _check_points(t, r, label=lambda i: f"rate table point {i}", time_name="time", rate_name="rate")
            bad = np.flatnonzero(np.diff(t) <= 0)
            if bad.size:
                raise GenerationError(f"rate table times must be strictly increasing; point {bad[0] + 1} "
                                      f"(time {float(t[bad[0] + 1])!r}) follows time {float(t[bad[0]])!r}")
            if not np.any(r > 0):
                raise GenerationError("rate table rates are all 0: nothing to generate")

    def at(self, t) -> np.ndarray:
        """Target rate at times ``t`` (seconds since start); only for constant and table kinds."""
        t = np.asarray(t, dtype=float)
        if self.kind == "constant":
            return np.full(t.shape, self.value)
        if self.kind == "table":
            return np.interp(t, np.asarray(self.times), np.asarray(self.rates))
        raise GenerationError("a 'pool' rate schedule has no values of its own: it follows the pool's total")

    def expected_requests(self, duration: float, pool=None, *, start: float | None = None) -> float:
        """Expected number of requests over ``[0, duration]`` s: the integral of the target rate.

        Parameters
        ----------
        duration : float
            Seconds to generate (finite, > 0).
        pool : ClientPool, optional
            Required for a ``pool`` schedule: its total rate (sum over clients of each window's
            rate) is integrated over ``[start, start + duration]`` of the pool's clock.
        start : float, optional
            Where in the pool's time line the workload starts (default: the pool's first window).

        Returns
        -------
        float
            ``constant``: rate x duration; ``table``: the exact integral of the linear
            interpolation (held flat beyond its ends); ``pool``: scale x the integral of the
            pool's total rate over the period.

        Raises
        ------
        GenerationError
            If ``duration`` is not finite and > 0, or a ``pool`` schedule comes without a pool.
        """
        duration = float(duration)
        if not (math.isfinite(duration) and duration > 0):
            raise GenerationError(f"duration must be a finite number of seconds > 0; got {duration!r}")
        if self.kind == "constant":
            return self.value * duration
        if self.kind == "table":
            times = np.asarray(self.times, dtype=float)
            knots = np.unique(np.concatenate([[0.0, duration], times[(times > 0) & (times < duration)]]))
            rates = np.interp(knots, times, np.asarray(self.rates, dtype=float))
            return float(np.sum((rates[1:] + rates[:-1]) / 2 * np.diff(knots)))  # exact: linear between knots
        if pool is None:
            raise GenerationError("a 'pool' rate schedule needs the pool to estimate its requests")
        from servelab.generator.grid import frame_of, pool_span  # grid imports this module

        lo = pool_span(pool)[0] if start is None else float(start)
        hi = lo + duration
        ws, we = pl.col("window_start"), pl.col("window_start") + pl.col("window_s")
        overlap = (pl.min_horizontal(we, pl.lit(hi)) - pl.max_horizontal(ws, pl.lit(lo))).clip(lower_bound=0.0)
        total = frame_of(pool.arrivals).select((pl.col("rate").fill_null(0.0) * overlap).sum()).item()
        return self.value * float(total or 0.0)

    def describe(self) -> str:
        if self.kind == "constant":
            return f"constant {self.value:g} req/s"
        if self.kind == "pool":
            return f"pool total x {self.value:g}"
        return f"table of {len(self.times)} points, {min(self.rates):g}..{max(self.rates):g} req/s"


def check_request_budget(schedule: RateSchedule, duration: float, pool=None, *, start: float | None = None,
                         max_requests: int | None = DEFAULT_MAX_REQUESTS) -> float:
    """Refuse a workload estimated above ``max_requests``, before anything is allocated.

    Parameters
    ----------
    schedule, duration, pool, start
        As in :meth:`RateSchedule.expected_requests`.
    max_requests : int or None
        The limit (a positive integer); None checks nothing.

    Returns
    -------
    float
        The estimate (:meth:`RateSchedule.expected_requests`), or NaN when ``max_requests`` is None.

    Raises
    ------
    RequestBudgetError
        If the estimate is not finite or exceeds ``max_requests``.
    GenerationError
        If ``max_requests`` is not a positive integer or None.
    """
    if max_requests is None:
        return math.nan
    if not isinstance(max_requests, (int, np.integer)) or isinstance(max_requests, bool) or max_requests < 1:
        raise GenerationError(f"max_requests must be a positive integer or None (no limit); got {max_requests!r}")
    expected = schedule.expected_requests(duration, pool, start=start)
    if not math.isfinite(expected) or expected > max_requests:
        raise RequestBudgetError(
            f"the workload would hold about {expected:.3g} requests (the target rate integrated over "
            f"{float(duration):g} s), more than max_requests={int(max_requests):,} (about "
            f"{max_requests * 150 / 1e9:.3g} GB to generate); lower the rate or the duration, or raise max_requests",
            expected=expected, max_requests=int(max_requests))
    return expected


def _check_points(t: np.ndarray, r: np.ndarray, *, label, time_name: str, rate_name: str, unit: str = "") -> None:
    """Raise GenerationError at the first non-finite time or the first rate that is not a finite number >= 0.

    ``label(i)`` names point ``i`` in the message (a table point, a file's row).
    """
    bad = np.flatnonzero(~np.isfinite(t))
    if bad.size:
        raise GenerationError(f"{label(bad[0])}: {time_name} must be finite; got {float(t[bad[0]])!r}")
    bad = np.flatnonzero(~(np.isfinite(r) & (r >= 0)))
    if bad.size:
        raise GenerationError(f"{label(bad[0])}: {rate_name} must be a finite number{unit} >= 0; "
                              f"got {float(r[bad[0]])!r}")


def constant_rate(rate: float) -> RateSchedule:
    """A constant total rate (req/s)."""
    return RateSchedule("constant", value=float(rate))


def rate_table(times: Sequence[float], rates: Sequence[float]) -> RateSchedule:
    """A total rate interpolated linearly between points (seconds since start, req/s)."""
    return RateSchedule("table", times=tuple(float(x) for x in times), rates=tuple(float(x) for x in rates))


def pool_rate(scale: float = 1.0) -> RateSchedule:
    """The pool's own historical total rate, times ``scale``."""
    return RateSchedule("pool", value=float(scale))


def read_rate_file(path: str | os.PathLike) -> RateSchedule:
    """Read a rate table from a CSV with a header: ``time_s`` and ``rate`` columns.

    ``time``/``t``/``timestamp`` are accepted for the time column and ``rate_rps``/``rps`` for
    the rate. Times are seconds since the workload's start; rows may come in any order (they are
    sorted), but no time may repeat.

    Raises
    ------
    GenerationError
        Naming the file, and the row (1 = the first row after the header) where one is at
        fault: unreadable file, missing columns, no rows, a value that is not a number, a
        non-finite time, a negative or non-finite rate, a repeated time, or all rates 0.
    """
    where = f"rate file {str(path)!r}"
    try:
        table = pl.read_csv(path, infer_schema=False)
    except (OSError, pl.exceptions.PolarsError) as err:
        raise GenerationError(f"cannot read {where}: {err}") from None
    names = {c.strip().lower(): c for c in table.columns}
    tcol = next((names[c] for c in ("time_s", "time", "t", "timestamp") if c in names), None)
    rcol = next((names[c] for c in ("rate", "rate_rps", "rps") if c in names), None)
    if tcol is None or rcol is None:
        raise GenerationError(
            f"{where} needs a time column (time_s, time, t, timestamp) and a rate column "
            f"(rate, rate_rps, rps); columns found: {table.columns}"
        )
    if table.height == 0:
        raise GenerationError(f"{where} has a header but no rows: a rate table needs at least one time_s,rate row")
    values = {}
    for col in (tcol, rcol):
        text = table[col].str.strip_chars()
        num = text.cast(pl.Float64, strict=False)
        bad = np.flatnonzero(num.is_null().to_numpy())
        if bad.size:
            raise GenerationError(f"{where} row {bad[0] + 1}: {col} must be a number; got {text[int(bad[0])]!r}")
        values[col] = num.to_numpy()
    t, r = values[tcol], values[rcol]
    _check_points(t, r, label=lambda i: f"{where} row {i + 1}", time_name=tcol, rate_name=rcol, unit=" of req/s")
    order = np.argsort(t, kind="stable")
    dup = np.flatnonzero(np.diff(t[order]) == 0)
    if dup.size:
        a, b = sorted((int(order[dup[0]]), int(order[dup[0] + 1])))
        raise GenerationError(f"{where} rows {a + 1} and {b + 1}: the same {tcol} {float(t[a])!r} appears twice; "
                              "each time may appear once")
    if not np.any(r > 0):
        raise GenerationError(f"{where}: every {rcol} is 0; nothing to generate")
    return rate_table(t[order].tolist(), r[order].tolist())


def resolve_rate(rate) -> RateSchedule:
    """Turn ``rate`` (number, ``"pool"``, ``(times, rates)``, a frame, or a schedule) into a schedule."""
    if isinstance(rate, RateSchedule):
        return rate
    if isinstance(rate, str):
        if rate == "pool":
            return pool_rate(1.0)
        raise GenerationError(f"rate as text must be 'pool'; got {rate!r}")
    if isinstance(rate, pl.DataFrame):
        cols = rate.columns
        tcol = "time_s" if "time_s" in cols else cols[0]
        rcol = "rate" if "rate" in cols else cols[1]
        return rate_table(rate[tcol].to_list(), rate[rcol].to_list())
    if isinstance(rate, tuple) and len(rate) == 2:
        return rate_table(rate[0], rate[1])
    if isinstance(rate, (int, float, np.integer, np.floating)) and not isinstance(rate, bool):
        return constant_rate(float(rate))
    raise GenerationError(
        f"rate must be a number (req/s), 'pool', (times, rates), a DataFrame or a RateSchedule; got {type(rate).__name__}"
    )
