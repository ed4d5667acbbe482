"""Quantised timestamps: detect the resolution of a sample of gaps and handle the ties it makes.

Traces that round arrival times (Mooncake rounds to about 3 s) produce many inter-arrival gaps of
exactly 0, which no positive continuous family can fit (the log-density is -inf). This module
finds the grid step of the gaps (an approximate floating-point GCD), says whether it matters, and
prepares a sample for fitting by one of:

``"jitter"``
    rebuild the arrival times from the gaps (cumulative sum), move each one uniformly within its
    resolution bucket ``[t, t + step)`` with a seeded generator, sort, and take the gaps again;
``"drop"``
    keep the positive gaps only (biased: the fitted mean gap is too long, the CV too small);
``"keep"``
    do nothing (fitting then fails on zero gaps with a clear error);
``"auto"``
    jitter when there are zero gaps (or the step is at least 1 % of the median gap) and a step
    was found, drop the zeros when no step was found, keep otherwise.

The step is the trace's logging clock when one is found (:func:`servelab.analysis.clock.clock_from_gaps`:
a lattice of the gaps robust to a few ms of jitter, e.g. 3 s on millisecond integers), never the
representation precision when a coarser clock exists; otherwise the exact grid of the values
(an approximate floating-point GCD: 0.001 s for millisecond integers), or none.

What was done is returned as notes, which the fits carry into ``FitResult.notes``. Jitter cannot
recover structure finer than the resolution: gaps much shorter than the step (bursts within one
bucket) come back as uniform spacings, so a fit after jittering under-states burstiness at that
scale. This module does not fit anything.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from servelab.analysis.clock import clock_from_gaps

__all__ = ["Resolution", "PreparedSample", "detect_resolution", "prepare_sample", "TIE_METHODS"]

#: accepted values of ``method`` in :func:`prepare_sample`
TIE_METHODS = ("auto", "jitter", "drop", "keep")

#: a step at least this fraction of the median positive gap distorts the fit even without zeros
_MATTERS_FRACTION = 0.01


@dataclass(frozen=True)
class Resolution:
    """The timestamp resolution seen in a sample of gaps.

    Parameters
    ----------
    step : float or None
        Grid step of the gaps (seconds, for gaps in seconds), or None when they are not on a grid
        (continuous timestamps, or fewer than two positive gaps).
    n : int
        Number of gaps examined.
    n_zero : int
        Gaps exactly equal to 0 (ties).
    median_positive : float or None
        Median of the positive gaps.
    clock : bool
        The step is a logging clock coarser than the values' precision (gaps within its
        tolerance of 0 are ties, even when not exactly 0).
    """

    step: float | None
    n: int
    n_zero: int
    median_positive: float | None
    clock: bool = False

    @property
    def zero_fraction(self) -> float:
        return self.n_zero / self.n if self.n else 0.0

    @property
    def step_over_median(self) -> float | None:
        if self.step is None or not self.median_positive:
            return None
        return self.step / self.median_positive

    @property
    def matters(self) -> bool:
        """True when ties or the grid step would distort a continuous fit."""
        ratio = self.step_over_median
        return self.clock or self.n_zero > 0 or (ratio is not None and ratio >= _MATTERS_FRACTION)

    def describe(self) -> str:
        step = "no grid" if self.step is None else f"{'clock' if self.clock else 'step'} {self.step:.6g}"
        return f"{step}; {self.n_zero} of {self.n} gaps are 0 ({100 * self.zero_fraction:.1f}%)"


@dataclass(frozen=True)
class PreparedSample:
    """A sample ready for fitting, with what was done to it.

    ``values`` is the prepared array (working data handed to a fit, never stored in a result).
    """

    values: np.ndarray
    method: str
    resolution: Resolution
    notes: tuple[str, ...] = ()


def detect_resolution(gaps) -> Resolution:
    """Find the step of ``gaps`` (non-negative, in arrival order) and count the zero gaps.

    The step is the logging clock of :func:`servelab.analysis.clock.clock_from_gaps` when it
    finds one coarser than the values' precision (tolerant to a few ms of jitter); otherwise the
    exact grid of the gaps (approximate GCD, every positive gap within 10^-4 steps of a whole
    multiple, at least 10^-6 of the median gap; finer grids are treated as continuous), or None.

    Raises
    ------
    ValueError
        If ``gaps`` holds negative or non-finite values.
    """
    x = np.asarray(gaps, dtype=float).ravel()
    if not np.all(np.isfinite(x)):
        raise ValueError(f"gaps must be finite; got {int(np.sum(~np.isfinite(x)))} non-finite values")
    if np.any(x < 0):
        raise ValueError(f"gaps must be >= 0 (timestamps sorted); got {int(np.sum(x < 0))} negative gaps")
    positive = x[x > 0]
    n_zero = int(x.size - positive.size)
    median = float(np.median(positive)) if positive.size else None
    found = clock_from_gaps(x)
    return Resolution(step=found.step_s, n=int(x.size), n_zero=n_zero, median_positive=median, clock=found.coarse)


def prepare_sample(gaps, *, method: str = "auto", seed: int = 0, resolution: float | None = None) -> PreparedSample:
    """Handle ties in ``gaps`` (in arrival order) before a continuous fit.

    Parameters
    ----------
    gaps : array-like
        Non-negative inter-arrival gaps, in arrival order (jitter rebuilds arrival times from them).
    method : {"auto", "jitter", "drop", "keep"}
        See the module docstring.
    seed : int
        Seed of the jitter (the same seed gives the same sample).
    resolution : float, optional
        The timestamp resolution or logging clock if known (e.g. 3.0 for Mooncake, or a store's
        :func:`~servelab.analysis.clock.store_clock`); detected when omitted.

    Raises
    ------
    ValueError
        If ``method`` is unknown, ``resolution`` is not positive, or ``method="jitter"`` is asked
        for gaps with no detectable grid and no ``resolution``.
    """
    if method not in TIE_METHODS:
        raise ValueError(f"method must be one of {TIE_METHODS}; got {method!r}")
    if resolution is not None and not (np.isfinite(resolution) and resolution > 0):
        raise ValueError(f"resolution must be a positive number of seconds; got {resolution!r}")
    x = np.asarray(gaps, dtype=float).ravel()
    found = detect_resolution(x)
    if resolution is not None:
        found = Resolution(step=float(resolution), n=found.n, n_zero=found.n_zero,
                           median_positive=found.median_positive, clock=True)
    chosen = method
    if method == "auto":
        if not found.matters:
            chosen = "keep"
        elif found.step is not None:
            chosen = "jitter"
        else:
            chosen = "drop"
    if chosen == "keep":
        return PreparedSample(values=x, method="keep", resolution=found)
    if chosen == "drop":
        values = x[x > 0]
        note = (
            f"ties: dropped {found.n_zero} zero gaps of {found.n} ({100 * found.zero_fraction:.1f}%) and fitted "
            "the positive gaps only (biased: mean gap too long, CV too small)"
        )
        return PreparedSample(values=values, method="drop", resolution=found, notes=(note,))
    if found.step is None:
        raise ValueError(
            "method='jitter' needs a timestamp resolution: none was detected in the gaps; pass resolution=<seconds> "
            "or use method='drop'"
        )
    rng = np.random.default_rng(seed)
    times = np.concatenate([[0.0], np.cumsum(x)])
    # the sorted values are the same whatever the algorithm; a stable sort (timsort) is ~3x faster on
    # these nearly sorted times (10 M gaps: 0.06 vs 0.2 CPU-s)
    jittered = np.sort(times + rng.uniform(0.0, found.step, size=times.size), kind="stable")
    values = np.diff(jittered)
    what = f"logged on a {found.step:.6g} s clock" if found.clock else f"quantised to {found.step:.6g} s"
    note = (
        f"ties: timestamps {what} ({found.n_zero} of {found.n} gaps were 0, "
        f"{100 * found.zero_fraction:.1f}%); each arrival time was jittered uniformly within its "
        f"{found.step:.6g} s bucket (seed {seed}) and the gaps recomputed"
    )
    return PreparedSample(values=values, method="jitter", resolution=found, notes=(note,))
