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
covers.

:func:`ratio_shift_test` -- do two lengths shift *independently*? Null: *the mean output is a
fixed multiple of the mean input in every period* (they shift together, by one factor). It is
the same Welch test on the per-period ratio of means :math:`R_i = \bar y_i / \bar x_i`, whose
per-request standard deviation comes from the delta method,

.. math:: s_{R,i} = R_i \sqrt{c_{x,i}^2 + c_{y,i}^2 - 2 \rho\, c_{x,i} c_{y,i}}

(:math:`c` the coefficients of variation, :math:`\rho` the per-request Pearson correlation of
the two lengths); the effect is the max/min of :math:`R_i`, with the same practical threshold and
power at :data:`PAPER_RATIO_SHIFT` (ServeGen's M-mid: input +13 %, output -18 %, a ratio moving by
0.82 / 1.13). Calibration: with LogNormal(sigma 1) lengths (heavy tails) and 2,000 requests per
period the size is 6.7 % at a nominal 5 % (4.3 % at 2.5 %; 600 simulated nulls), 4.7 % at 1,000 and
about 5 % from 5,000 up: callers wanting a strict 5 % on small periods should pass ``level=0.025``.

Nothing here reads a store or plots.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import stats

from servelab.fitting.verdicts import DEFAULT_LEVEL, NullTest, decide, minimum_detectable_effect

__all__ = ["mean_shift_test", "ratio_shift_test", "MEAN_SHIFT_RATIO", "PAPER_MEAN_SHIFT_RATIO", "PAPER_RATIO_SHIFT"]

#: max/min of the period means above which lengths "shift"
MEAN_SHIFT_RATIO = 1.05
#: max/min of the period means at the paper's effect (ServeGen Fig. 3c-d)
PAPER_MEAN_SHIFT_RATIO = 1.15
#: max/min of the period ratio of mean output to mean input at the paper's effect (ServeGen §3.2, M-mid:
#: input +13 %, output -18 % from midnight to afternoon, so the ratio moves by 1.13 / 0.82)
PAPER_RATIO_SHIFT = 1.13 / 0.82


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


def ratio_shift_test(n, mean_x, std_x, mean_y, std_y, *, correlation: float, level: float = DEFAULT_LEVEL,
                     threshold_ratio: float = MEAN_SHIFT_RATIO, paper_ratio: float = PAPER_RATIO_SHIFT,
                     label_x: str = "input length", label_y: str = "output length") -> NullTest:
    """Do two mean lengths shift independently: does the ratio of their period means change?

    Parameters
    ----------
    n : array-like
        Requests per period (both lengths measured on the same requests).
    mean_x, std_x, mean_y, std_y : array-like
        Per period: mean and standard deviation of each length.
    correlation : float
        Per-request Pearson correlation of the two lengths (in [-1, 1]), e.g. the trace's.
    level, threshold_ratio, paper_ratio : float
        As in :func:`mean_shift_test`, on the max/min of the period ratios.
    label_x, label_y : str
        What is compared, for the null's words.

    Returns
    -------
    NullTest
        Null: the mean of ``y`` is a fixed multiple of the mean of ``x`` in every period.

    Raises
    ------
    ValueError
        Bad shapes or values (as :func:`mean_shift_test`), or a correlation outside [-1, 1].
    """
    if not -1.0 <= correlation <= 1.0:
        raise ValueError(f"correlation must be in [-1, 1]; got {correlation!r}")
    mx, sx = np.asarray(mean_x, dtype=float), np.asarray(std_x, dtype=float)
    my, sy = np.asarray(mean_y, dtype=float), np.asarray(std_y, dtype=float)
    if not (mx.shape == sx.shape == my.shape == sy.shape) or mx.ndim != 1:
        raise ValueError(f"mean_x, std_x, mean_y, std_y must be 1-D of one length; got {mx.shape}, {sx.shape}, "
                         f"{my.shape}, {sy.shape}")
    if mx.size and (np.any(~(mx > 0)) or np.any(~(my > 0)) or np.any(~(sx > 0)) or np.any(~(sy > 0))):
        raise ValueError(f"every period needs positive means and stds; got mean_x={mx.tolist()!r}, "
                         f"mean_y={my.tolist()!r}")
    ratio = my / mx
    cx, cy = sx / mx, sy / my
    # delta method; floored at a tenth of the smaller CV squared, so a correlation near 1 cannot make it vanish
    v = np.maximum(cx**2 + cy**2 - 2.0 * correlation * cx * cy, 0.01 * np.minimum(cx, cy) ** 2)
    label = f"ratio of mean {label_y} to mean {label_x}"
    test = mean_shift_test(n, ratio, ratio * np.sqrt(v), level=level, threshold_ratio=threshold_ratio,
                           paper_ratio=paper_ratio, label=label)
    return dataclasses.replace(
        test, null=f"the mean {label_y} is a fixed multiple of the mean {label_x} in every period (they shift "
                   "together, by one factor)",
        effect=f"max/min of the period ratios ({label})",
        method=test.method + f"; delta-method standard errors with per-request correlation {correlation:.3g}",
        reason=test.reason.replace("means", "ratios", 1))
