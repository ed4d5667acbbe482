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

What was done is returned as notes, which the fits carry into ``FitResult.notes``. Jitter cannot
recover structure finer than the resolution: gaps much shorter than the step (bursts within one
bucket) come back as uniform spacings, so a fit after jittering under-states burstiness at that
scale. This module does not fit anything.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Resolution", "PreparedSample", "detect_resolution", "prepare_sample", "TIE_METHODS"]

#: accepted values of ``method`` in :func:`prepare_sample`
TIE_METHODS = ("auto", "jitter", "drop", "keep")

#: a step at least this fraction of the median positive gap distorts the fit even without zeros
_MATTERS_FRACTION = 0.01
#: number of smallest distinct gaps the GCD is run over (then verified on all gaps)
_GCD_VALUES = 40


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
    """

    step: float | None
    n: int
    n_zero: int
    median_positive: float | None

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
        return self.n_zero > 0 or (ratio is not None and ratio >= _MATTERS_FRACTION)

    def describe(self) -> str:
        step = "no grid" if self.step is None else f"step {self.step:.6g}"
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


def _float_gcd(a: float, b: float, tol: float) -> float:
    while b > tol:
        a, b = b, np.fmod(a, b)
    return a


def detect_resolution(gaps) -> Resolution:
    """Find the grid step of ``gaps`` (non-negative) and count the zero gaps.

    The step is the approximate GCD of the smallest distinct positive gaps (tolerance a millionth
    of the smallest gap), refined by least squares over all gaps, and accepted only if every
    positive gap lies within 10^-4 steps of a whole multiple of it and it is at least 10^-6 of the
    median gap (finer grids are treated as continuous).

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
    if positive.size < 2:
        median = float(np.median(positive)) if positive.size else None
        return Resolution(step=None, n=int(x.size), n_zero=n_zero, median_positive=median)
    median = float(np.median(positive))
    smallest = float(positive.min())
    tol = 1e-6 * smallest + 1e-12
    # candidates from the smallest distinct values of (at most) the first 10^5 positive gaps; the
    # step is then verified on every gap
    distinct = np.unique(positive[:100_000])[:_GCD_VALUES]
    step = float(distinct[0])
    for value in distinct[1:]:
        step = _float_gcd(float(value), step, tol)
        if step < 1e-6 * median:
            break
    if step < 1e-6 * median:
        return Resolution(step=None, n=int(x.size), n_zero=n_zero, median_positive=median)
    # refine the step by least squares over all gaps (float error of large timestamps makes the
    # GCD of a few values slightly off), then require every gap within 1e-4 steps of the grid
    k = np.round(positive / step)
    step = float(np.dot(positive, k) / np.dot(k, k))
    off = np.abs(positive - k * step)
    if float(off.max()) > 1e-4 * step:
        return Resolution(step=None, n=int(x.size), n_zero=n_zero, median_positive=median)
    return Resolution(step=step, n=int(x.size), n_zero=n_zero, median_positive=median)


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
        The timestamp resolution if known (e.g. 3.0 for Mooncake); detected when omitted.

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
                           median_positive=found.median_positive)
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
    jittered = np.sort(times + rng.uniform(0.0, found.step, size=times.size))
    values = np.diff(jittered)
    note = (
        f"ties: timestamps quantised to {found.step:.6g} s ({found.n_zero} of {found.n} gaps were 0, "
        f"{100 * found.zero_fraction:.1f}%); each arrival time was jittered uniformly within its "
        f"{found.step:.6g} s bucket (seed {seed}) and the gaps recomputed"
    )
    return PreparedSample(values=values, method="jitter", resolution=found, notes=(note,))
