"""Window-rate variation split into a time-of-day profile and what is left about it.

The compare metric ``window_rate_cv`` mixes two things a generator can get right or wrong apart:
the daily profile (how much the rate moves with the hour of the day) and the burstiness about it
(how much more than Poisson the counts of windows of the same hour scatter). A candidate can match
the real value with both wrong in opposite directions: a Poisson process (no bursts) with too
peaked a profile has the CV of a bursty one with the right profile. :func:`rate_components` gives
the two parts, so ``servelab validate`` can show which one a difference comes from.

For counts :math:`c_k` of windows :math:`k` of length :math:`W` and the hour of the day
:math:`h(k)` of each window's start (on the trace's clock), with :math:`\\bar c_h` the mean count of
the windows of hour :math:`h` and :math:`\\bar c` the mean of all:

- ``profile_cv``: the coefficient of variation of the :math:`\\bar c_h` over the windows,
  :math:`\\sqrt{\\sum_k (\\bar c_{h(k)} - \\bar c)^2 / n} / \\bar c` (a cosine profile of amplitude
  :math:`a` gives :math:`a / \\sqrt 2`, plus the hourly means' own noise);
- ``dispersion``: :math:`\\sum_k (c_k - \\bar c_{h(k)})^2 / ((n - H)\\, \\bar c)`, the variance
  about the hour's mean (``n - H`` degrees of freedom for ``H`` hours present) over the mean: 1 for a
  Poisson process following the profile, above 1 for bursts beyond it (a log-normal multiplier of
  log-sd :math:`\\sigma` per window gives :math:`1 + \\bar c (e^{\\sigma^2} - 1)` where the profile
  is flat).

Both are NaN unless the span holds two whole days (one day cannot tell an hour's level from a
burst in it) and ``W`` is at most an hour. Counting is numpy bincounts, no loop over requests.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["COMPONENTS", "PHASE_S", "rate_components"]

#: the phase of the daily profile: the hour of the day
PHASE_S = 3600.0
#: component -> description (validate.json's ``rate_components``)
COMPONENTS = {
    "profile_cv": "coefficient of variation of the mean count per window at each hour of the day",
    "dispersion": "variance of window counts about their hour's mean, over the mean count (Poisson: 1)",
}
_DAY_S = 86400.0


def rate_components(timestamps, *, duration_s: float, window_s: float, start_s: float = 0.0) -> dict[str, float]:
    """The daily profile and the dispersion about it of a workload's window counts (module docstring).

    Parameters
    ----------
    timestamps : array-like of float
        Arrival times in seconds since the span's start (values outside ``[0, duration_s)`` are
        not counted).
    duration_s : float
        Length of the span (s).
    window_s : float
        Window of the counts (s), at most :data:`PHASE_S`.
    start_s : float
        The span's start on the trace's clock (s): the hour of the day of window ``k`` is that of
        ``start_s + k * window_s``.

    Returns
    -------
    dict
        ``{"profile_cv": float, "dispersion": float}``; NaN where not defined (module docstring).

    Raises
    ------
    ValueError
        If ``duration_s`` or ``window_s`` is not a positive number.
    """
    for name, value in (("duration_s", duration_s), ("window_s", window_s)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a positive number of seconds; got {value!r}")
    nan = {"profile_cv": math.nan, "dispersion": math.nan}
    n = int(math.floor(duration_s / window_s + 1e-9))
    if duration_s < 2 * _DAY_S or window_s > PHASE_S or n < 2:
        return nan
    t = np.asarray(timestamps, dtype=float)
    t = t[(t >= 0) & (t < n * window_s)]
    counts = np.bincount(np.floor(t / window_s).astype(np.int64), minlength=n).astype(float)
    hour = (np.floor(np.mod(start_s + np.arange(n) * window_s, _DAY_S) / PHASE_S)).astype(np.int64)
    per_hour = np.bincount(hour, minlength=24)
    present = per_hour > 0
    mean_h = np.bincount(hour, weights=counts, minlength=24) / np.maximum(per_hour, 1)
    mean = counts.mean()
    if mean <= 0 or n - int(present.sum()) < 1:
        return nan
    profile = mean_h[hour]
    return {"profile_cv": float(np.sqrt(np.mean((profile - mean) ** 2)) / mean),
            "dispersion": float(np.sum((counts - profile) ** 2) / ((n - int(present.sum())) * mean))}
