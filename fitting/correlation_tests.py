r"""Calibrated test that one correlation exceeds another (ServeGen F9: reason/answer vs input/output).

Null: *the two correlations are equal* (:math:`\rho_1 \le \rho_2`, one-sided). Statistic: Fisher's
z difference

.. math:: z = \frac{\operatorname{atanh} r_1 - \operatorname{atanh} r_2}
               {\sqrt{c/(n_1 - 3) + c/(n_2 - 3)}},

standard normal under the null (asymptotic), with :math:`c = 1` for Pearson and :math:`c = 1.06`
for Spearman (Fieller, Hartley and Pearson 1957). The samples are treated as independent; when
both correlations come from the same requests the covariance of the two estimates is ignored,
which for weakly related pairs changes the standard error little. "Holds" needs the difference
significant at the level *and* :math:`r_1 - r_2` above a margin (:data:`CORRELATION_MARGIN`);
power is at a difference of :data:`PAPER_CORRELATION_DIFFERENCE` above the observed
:math:`r_2`. The interval is Zou's (2007) confidence interval of :math:`\rho_1 - \rho_2`.

:func:`correlation_bound_test` decides one correlation against a bound: *weak* (ServeGen F3,
:math:`|\rho| <` bound, two one-sided Fisher z tests of the null :math:`|\rho| \ge` bound) or
*at least* a bound (BurstGPT's linear relation, null :math:`\rho \le` bound).

Nothing here reads a store or plots.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

from servelab.fitting.verdicts import DEFAULT_LEVEL, POWER_TARGET, NullTest, decide

__all__ = ["correlation_difference_test", "correlation_bound_test", "CORRELATION_MARGIN",
           "PAPER_CORRELATION_DIFFERENCE"]

#: r1 - r2 must exceed this for "holds" (a difference of 0.03 is no finding at n = 10^6)
CORRELATION_MARGIN = 0.1
#: difference of correlations at the paper's effect (ServeGen Fig. 13 against Fig. 4)
PAPER_CORRELATION_DIFFERENCE = 0.3

_C = {"pearson": 1.0, "spearman": 1.06}


def _check(r: float, n: int, name: str) -> None:
    if not (isinstance(r, (int, float, np.floating)) and -1.0 < float(r) < 1.0):
        raise ValueError(f"{name} must be a correlation in (-1, 1); got {r!r}")


def correlation_difference_test(r1: float, n1: int, r2: float, n2: int, *, kind: str = "spearman",
                                margin: float = CORRELATION_MARGIN,
                                paper_difference: float = PAPER_CORRELATION_DIFFERENCE,
                                level: float = DEFAULT_LEVEL, labels: tuple[str, str] = ("r1", "r2")) -> NullTest:
    """Is correlation ``r1`` (from ``n1`` pairs) larger than ``r2`` (from ``n2``) by more than a margin?

    Parameters
    ----------
    r1, r2 : float
        The correlations (in (-1, 1)).
    n1, n2 : int
        Pairs behind each (>= 4).
    kind : {"spearman", "pearson"}
        Which coefficient (sets the variance factor c).
    margin : float
        Practical threshold on r1 - r2.
    paper_difference : float
        The paper's difference, the alternative of ``power``.
    level : float
        One-sided significance level.
    labels : (str, str)
        Names of the two correlations in the null's words.

    Returns
    -------
    NullTest
        ``interval_low``, ``interval_high``: Zou's two-sided (1 - 2 level) interval of r1 - r2.

    Raises
    ------
    ValueError
        Correlations outside (-1, 1), n < 4, or an unknown ``kind``.
    """
    if kind not in _C:
        raise ValueError(f"kind must be one of {tuple(_C)}; got {kind!r}")
    _check(r1, n1, "r1")
    _check(r2, n2, "r2")
    for name, n in (("n1", n1), ("n2", n2)):
        if not isinstance(n, (int, np.integer)) or n < 4:
            raise ValueError(f"{name} must be an integer >= 4; got {n!r}")
    c = _C[kind]
    se1, se2 = math.sqrt(c / (n1 - 3)), math.sqrt(c / (n2 - 3))
    se = math.hypot(se1, se2)
    z1, z2 = math.atanh(r1), math.atanh(r2)
    z = (z1 - z2) / se
    p = float(stats.norm.sf(z))
    q = stats.norm.isf(level)
    l1, u1 = math.tanh(z1 - q * se1), math.tanh(z1 + q * se1)
    l2, u2 = math.tanh(z2 - q * se2), math.tanh(z2 + q * se2)
    diff = r1 - r2
    low = diff - math.sqrt((r1 - l1) ** 2 + (u2 - r2) ** 2)
    high = diff + math.sqrt((u1 - r1) ** 2 + (r2 - l2) ** 2)
    # "holds" <=> z > q and r1 - r2 > margin; at a true difference d above r2 the second is a z cutoff too
    cutoff = max(q, (math.atanh(min(r2 + margin, 0.999999)) - z2) / se)

    def power_at(d: float) -> float:
        rho1 = min(r2 + d, 0.999999)
        return float(stats.norm.sf(cutoff - (math.atanh(rho1) - z2) / se))

    power = power_at(paper_difference)
    dz = (cutoff + stats.norm.ppf(POWER_TARGET)) * se
    mde = math.tanh(z2 + dz) - r2 if z2 + dz < 20 else float("inf")
    verdict, why = decide(p_value=p, level=level, effect_value=diff, practical_threshold=margin, power=power, mde=mde,
                          paper_effect=paper_difference)
    a, b = labels
    return NullTest(null=f"the {kind} correlation {a} is no larger than {b}", statistic="Fisher z difference",
                    value=z, p_value=p, level=level, effect=f"{a} - {b}", effect_value=diff,
                    practical_threshold=margin, paper_effect=paper_difference, power=power,
                    minimum_detectable_effect=mde,
                    alternative=f"{a} larger than the observed {b} by {paper_difference:g}",
                    method=f"asymptotic (Fisher z, variance factor {c:g}, samples treated as independent)",
                    n=int(min(n1, n2)), decision=verdict,
                    reason=f"{a} = {r1:.3g} (n = {n1}), {b} = {r2:.3g} (n = {n2}); {why}",
                    interval_low=low, interval_high=high)


def correlation_bound_test(r: float, n: int, *, bound: float, claim: str, paper_value: float,
                           kind: str = "pearson", level: float = DEFAULT_LEVEL, label: str = "r") -> NullTest:
    """Is a correlation weak (``claim="weak"``: |rho| < bound) or strong (``claim="above"``: rho > bound)?

    Parameters
    ----------
    r : float
        The correlation, in (-1, 1).
    n : int
        Pairs behind it (>= 4).
    bound : float
        The claim's bound (F3: 0.3 "weak"; BurstGPT: 0.5 "linear").
    claim : {"weak", "above"}
        Which side the claim is on.
    paper_value : float
        The correlation at the paper's effect (the alternative of ``power``): |value| < bound for
        "weak", > bound for "above". For "weak" the minimum detectable effect is the largest
        |rho| still called weak with 80 % probability.
    kind : {"pearson", "spearman"}
    level : float
        Level of each one-sided test (TOST for "weak").
    label : str
        Name of the correlation in the null's words.

    Raises
    ------
    ValueError
        Bad correlations or n, an unknown ``claim`` or ``kind``, or ``paper_value`` on the wrong side.
    """
    if kind not in _C:
        raise ValueError(f"kind must be one of {tuple(_C)}; got {kind!r}")
    if claim not in ("weak", "above"):
        raise ValueError(f"claim must be 'weak' or 'above'; got {claim!r}")
    _check(r, n, "r")
    if not isinstance(n, (int, np.integer)) or n < 4:
        raise ValueError(f"n must be an integer >= 4; got {n!r}")
    if not 0 < bound < 1:
        raise ValueError(f"bound must be in (0, 1); got {bound!r}")
    if (claim == "weak" and not abs(paper_value) < bound) or (claim == "above" and not bound < paper_value < 1):
        raise ValueError(f"paper_value must lie on the claim's side of the bound {bound!r}; got {paper_value!r}")
    se = math.sqrt(_C[kind] / (n - 3))
    z, zb = math.atanh(r), math.atanh(bound)
    q = stats.norm.isf(level)
    if claim == "weak":
        p = float(max(stats.norm.sf((z + zb) / se), stats.norm.cdf((z - zb) / se)))
        null = f"the {kind} correlation {label} is at least {bound:g} in absolute value"
        effect_value, larger = abs(r), False
        zp = math.atanh(paper_value)
        power = float(max(0.0, stats.norm.cdf((zb - zp) / se - q) - stats.norm.cdf((-zb - zp) / se + q)))
        half = zb - q * se  # TOST rejects when |z| < zb - q se: largest |rho| detected with 80 %
        mde = math.tanh(max(half - stats.norm.ppf(POWER_TARGET) * se, 0.0)) if half > 0 else 0.0
        stat = "Fisher z (two one-sided tests)"
    else:
        p = float(stats.norm.sf((z - zb) / se))
        null = f"the {kind} correlation {label} is at most {bound:g}"
        effect_value, larger = r, True
        power = float(stats.norm.sf(q - (math.atanh(paper_value) - zb) / se))
        mde = math.tanh(min(zb + (q + stats.norm.ppf(POWER_TARGET)) * se, 20.0))
        stat = "Fisher z"
    verdict, why = decide(p_value=p, level=level, effect_value=effect_value, practical_threshold=bound, power=power,
                          mde=mde, paper_effect=paper_value, larger_is_effect=larger)
    lo, hi = math.tanh(z - q * se), math.tanh(z + q * se)
    return NullTest(null=null, statistic=stat, value=z, p_value=p, level=level,
                    effect=f"|{label}|" if claim == "weak" else label, effect_value=effect_value,
                    practical_threshold=bound, paper_effect=paper_value, power=power, minimum_detectable_effect=mde,
                    alternative=f"a true correlation of {paper_value:g}",
                    method=f"asymptotic (Fisher z, variance factor {_C[kind]:g})", n=int(n), decision=verdict,
                    reason=f"{label} = {r:.3g} (n = {n}); {why}", interval_low=lo, interval_high=hi)
