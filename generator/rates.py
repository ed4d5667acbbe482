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

from servelab.generator.exceptions import GenerationError

__all__ = ["RateSchedule", "constant_rate", "rate_table", "pool_rate", "read_rate_file", "resolve_rate"]


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
            if not (np.all(np.isfinite(t)) and np.all(np.isfinite(r)) and np.all(r >= 0)):
                raise GenerationError("rate table times and rates must be finite and rates >= 0")
            if np.any(np.diff(t) <= 0):
                raise GenerationError("rate table times must be strictly increasing")
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

    def describe(self) -> str:
        if self.kind == "constant":
            return f"constant {self.value:g} req/s"
        if self.kind == "pool":
            return f"pool total x {self.value:g}"
        return f"table of {len(self.times)} points, {min(self.rates):g}..{max(self.rates):g} req/s"


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
    the rate. Times are seconds since the workload's start.
    """
    try:
        table = pl.read_csv(path)
    except (OSError, pl.exceptions.PolarsError) as err:
        raise GenerationError(f"cannot read rate file {str(path)!r}: {err}") from None
    names = {c.lower(): c for c in table.columns}
    tcol = next((names[c] for c in ("time_s", "time", "t", "timestamp") if c in names), None)
    rcol = next((names[c] for c in ("rate", "rate_rps", "rps") if c in names), None)
    if tcol is None or rcol is None:
        raise GenerationError(
            f"rate file {str(path)!r} needs a time column (time_s, time, t, timestamp) and a rate column "
            f"(rate, rate_rps, rps); columns found: {table.columns}"
        )
    table = table.sort(tcol)
    return rate_table(table[tcol].cast(pl.Float64).to_list(), table[rcol].cast(pl.Float64).to_list())


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
