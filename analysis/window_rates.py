r"""The one definition of a window's request rate and gap CV, shared by analysis, pool fitting and compare.

Windows are ``[k W, (k + 1) W)`` on the trace's own clock (seconds since its origin), ``k`` an
integer. A trace *covers* the span ``[first, last]`` of its requests, or a stated span (the
interval it was recorded over) when one is known. Then, for a window:

- ``exposure_s`` = the length of the window's part inside the covered span (so the first and last
  windows of a trace are usually partial): :math:`\max(0, \min((k+1)W, b) - \max(kW, a))`;
- ``rate`` = requests in the window / ``exposure_s`` (undefined, NaN, when the exposure is 0);
- ``cv`` = population standard deviation / mean of the window's gaps (a gap counts when both of
  its requests lie in the window), defined with at least 2 gaps and a positive mean, else NaN.

A window's rate is therefore an intensity: a 58-minute trace's last 10-minute window holds 8
minutes of requests and its rate is their count over 8 minutes, not over 10. Consumers that want
whole windows only keep the windows whose exposure is at least a fraction of ``W``
(:func:`full_enough`).

This module computes numbers from counts and spans; it reads no store and fits nothing.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = ["window_index", "CoveredSpan", "covered_span", "exposure", "window_rate", "window_cv", "full_enough"]


def _check_window(window_s: float) -> float:
    if not (isinstance(window_s, (int, float, np.integer, np.floating)) and math.isfinite(window_s) and window_s > 0):
        raise ValueError(f"window_s must be a positive number of seconds; got {window_s!r}")
    return float(window_s)


def window_index(t, window_s: float) -> np.ndarray:
    """Index ``k`` of the window ``[k W, (k + 1) W)`` holding each time ``t`` (int64)."""
    w = _check_window(window_s)
    return np.floor(np.asarray(t, dtype=float) / w).astype(np.int64)


class CoveredSpan(NamedTuple):
    """The seconds ``[start, end]`` a trace covers (:func:`covered_span`; unpacks as ``start, end``)."""

    start: float
    end: float


def covered_span(first: float, last: float, stated: tuple[float, float] | None = None) -> CoveredSpan:
    """The covered span: ``[first, last]`` of the requests, widened to a stated span when given.

    Raises
    ------
    ValueError
        If ``last < first`` or the stated span is not ``(start, end)`` with ``start <= end``.
    """
    if not (math.isfinite(first) and math.isfinite(last) and last >= first):
        raise ValueError(f"first and last must be finite with last >= first; got {first!r}, {last!r}")
    if stated is None:
        return CoveredSpan(float(first), float(last))
    if not (len(stated) == 2 and math.isfinite(stated[0]) and math.isfinite(stated[1]) and stated[1] >= stated[0]):
        raise ValueError(f"stated span must be (start, end) with start <= end; got {stated!r}")
    return CoveredSpan(min(float(first), float(stated[0])), max(float(last), float(stated[1])))


def exposure(window_start_s, window_s: float, span: tuple[float, float]) -> np.ndarray:
    """Seconds of each window ``[window_start_s, window_start_s + W)`` inside ``span = (a, b)``."""
    w = _check_window(window_s)
    a, b = float(span[0]), float(span[1])
    start = np.asarray(window_start_s, dtype=float)
    return np.clip(np.minimum(start + w, b) - np.maximum(start, a), 0.0, w)


def window_rate(n_requests, exposure_s) -> np.ndarray:
    """Requests per covered second; NaN where the exposure is 0."""
    n = np.asarray(n_requests, dtype=float)
    e = np.asarray(exposure_s, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(e > 0, n / np.where(e > 0, e, 1.0), np.nan)


def window_cv(n_gaps, mean_gap, std_gap) -> np.ndarray:
    """Gap CV (population std / mean) where there are at least 2 gaps and a positive mean, else NaN."""
    n = np.asarray(n_gaps)
    m = np.asarray(mean_gap, dtype=float)
    s = np.asarray(std_gap, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((n >= 2) & (m > 0), s / np.where(m > 0, m, 1.0), np.nan)


def full_enough(exposure_s, window_s: float, min_fraction: float = 0.5) -> np.ndarray:
    """Windows whose exposure is at least ``min_fraction`` of ``window_s`` (rates worth comparing).

    Raises
    ------
    ValueError
        If ``min_fraction`` is not in (0, 1].
    """
    w = _check_window(window_s)
    if not (0 < min_fraction <= 1):
        raise ValueError(f"min_fraction must be in (0, 1]; got {min_fraction!r}")
    return np.asarray(exposure_s, dtype=float) >= min_fraction * w - 1e-9 * w
