r"""Calibrated test that mean lengths shift across periods of the day (ServeGen F4).

Null: *every period has the same mean length*. Statistic: Welch's heteroscedastic one-way ANOVA
from per-period sufficient statistics (count, mean, standard deviation), with
:math:`w_i = n_i / s_i^2`, :math:`W = \sum w_i`, :math:`\bar m = \sum w_i m_i / W`,
:math:`h = \sum (1 - w_i/W)^2 / (n_i - 1)`:

.. math:: F^* = \frac{\sum_i w_i (m_i - \bar m)^2 / (k - 1)}{1 + 2 (k-2) h / (k^2 - 1)}, \qquad
          F^* \sim F\left(k - 1,\ \frac{k^2 - 1}{3h}\right)

(asymptotic; robust to unequal variances, and with thousands of requests per period the
heavy tails of lengths only widen the period means' noise, which :math:`s_i` carries). The effect
is the max/min ratio of the period means; "holds" needs it above :data:`MEAN_SHIFT_RATIO` (the
project's old threshold); power is at :data:`PAPER_MEAN_SHIFT_RATIO` (ServeGen: input +13 %,
output -18 % from midnight to afternoon) with the noncentral F of noncentrality
:math:`\sum w_i (\mu_i - \bar\mu)^2`, the means alternating around the observed grand mean.

Which periods to compare is the caller's choice; they should come from the hours the trace
covers. Nothing here reads a store or plots.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

from servelab.fitting.verdicts import DEFAULT_LEVEL, NullTest, decide, minimum_detectable_effect

__all__ = ["mean_shift_test", "MEAN_SHIFT_RATIO", "PAPER_MEAN_SHIFT_RATIO"]

#: max/min of the period means above which lengths "shift"
MEAN_SHIFT_RATIO = 1.05
#: max/min of the period means at the paper's effect (ServeGen Fig. 3c-d)
PAPER_MEAN_SHIFT_RATIO = 1.15


def _welch(n, m, s):
    w = n / s**2
    big_w = w.sum()
    grand = float(np.sum(w * m) / big_w)
    k = n.size
    h = float(np.sum((1 - w / big_w) ** 2 / (n - 1)))
    df2 = (k**2 - 1) / (3 * h) if h > 0 else math.inf
    denom = 1 + 2 * (k - 2) * h / (k**2 - 1)
    return w, grand, h, df2, denom


def mean_shift_test(n, mean, std, *, level: float = DEFAULT_LEVEL, threshold_ratio: float = MEAN_SHIFT_RATIO,
                    paper_ratio: float = PAPER_MEAN_SHIFT_RATIO, label: str = "length") -> NullTest:
    """Do the period means differ beyond their noise and by more than a practical ratio?

    Parameters
    ----------
    n, mean, std : array-like
        Per period: requests, mean and standard deviation of the length (e.g. ``n``,
        ``mean_input``, ``std_input`` of :class:`servelab.analysis.lengths.LengthShift`'s table).
    level : float
        Significance level.
    threshold_ratio, paper_ratio : float
        Practical threshold and paper's effect on max/min of the period means.
    label : str
        What is compared (for the null's words), e.g. "input length".

    Returns
    -------
    NullTest

    Raises
    ------
    ValueError
        Arrays of different shapes, or a period with n < 2, a non-positive mean or std.
    """
    n = np.asarray(n, dtype=float)
    m = np.asarray(mean, dtype=float)
    s = np.asarray(std, dtype=float)
    if not (n.shape == m.shape == s.shape) or n.ndim != 1:
        raise ValueError(f"n, mean, std must be 1-D of one length; got {n.shape}, {m.shape}, {s.shape}")
    if n.size and (np.any(n < 2) or np.any(~(m > 0)) or np.any(~(s > 0))):
        raise ValueError("every period needs n >= 2, a positive mean and a positive std; got "
                         f"n={n.tolist()!r}, mean={m.tolist()!r}, std={s.tolist()!r}")
    common = dict(null=f"every period has the same mean {label}", statistic="Welch F", level=level,
                  effect="max/min of the period means", practical_threshold=threshold_ratio,
                  paper_effect=paper_ratio,
                  alternative=f"period means alternating with max/min {paper_ratio:g} around the grand mean")
    if n.size < 2:
        return NullTest(value=float("nan"), p_value=None, effect_value=float("nan"), power=None,
                        minimum_detectable_effect=None, method="none", n=int(n.size), decision="inconclusive",
                        reason=f"needs 2 periods with requests; got {n.size}", **common)
    k = n.size
    w, grand, h, df2, denom = _welch(n, m, s)
    f_stat = float(np.sum(w * (m - grand) ** 2) / (k - 1) / denom)
    p = float(stats.f.sf(f_stat, k - 1, df2))
    ratio = float(m.max() / m.min())
    crit = float(stats.f.isf(level, k - 1, df2))
    z = np.where(np.arange(k) % 2 == 0, 1.0, -1.0)

    def power_at(r: float) -> float:
        a = (r - 1) / (r + 1)
        mu = grand * (1 + a * z)
        nc = float(np.sum(w * (mu - np.sum(w * mu) / w.sum()) ** 2)) / denom
        return float(stats.ncf.sf(crit, k - 1, df2, nc)) if ratio_ok(r) else 0.0

    def ratio_ok(r: float) -> bool:  # the observed ratio must also pass the threshold: true ratio above it
        return r > threshold_ratio

    power = power_at(paper_ratio)
    mde = minimum_detectable_effect(power_at, lower=threshold_ratio, upper=10.0)
    verdict, why = decide(p_value=p, level=level, effect_value=ratio, practical_threshold=threshold_ratio,
                          power=power, mde=mde, paper_effect=paper_ratio)
    return NullTest(value=f_stat, p_value=p, effect_value=ratio, power=power, minimum_detectable_effect=mde,
                    method=f"asymptotic (Welch F, {k - 1} and {df2:.4g} df)", n=int(n.sum()), decision=verdict,
                    reason=f"{k} periods, means {', '.join(f'{v:.4g}' for v in m)}; {why}", **common)
