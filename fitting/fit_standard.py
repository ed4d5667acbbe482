r"""The project's one goodness-of-fit standard: when does a fitted family *describe* the data?

AIC ranks families (:mod:`servelab.fitting.compare`); it never makes a poor fit good. A fitted
family describes a sample when its KS distance :math:`D` is within

.. math:: \max(\text{tolerance},\ D_{\text{crit}}(n, \text{level}))

where the tolerance (:data:`KS_TOLERANCE`) is the misfit a reader would not care about and
:math:`D_{\text{crit}}` the critical value of :math:`D` at the level *with the parameters fitted on
the same data* (:func:`ks_critical_value`): a parametric bootstrap with refitting on
:math:`m = \min(n, 1000)` draws, scaled by :math:`\sqrt{m/n}` above that (the :math:`1/\sqrt n` law of
D), cached by family, size and parameters; for the two-component mixtures, whose refits are slow,
the known-parameter Kolmogorov value :math:`K_{1-\text{level}}/\sqrt n` (an upper bound on the
fitted-parameter one) is used and named.

:func:`describes` turns that into a :class:`~servelab.fitting.verdicts.NullTest`: "does not hold"
when :math:`D` exceeds the bound; "holds" when it does not *and* the sample could have shown a
misfit of twice the tolerance with probability >= 80 % (else "inconclusive": a small sample
describes itself with anything). :func:`infinite_mean` flags fits that cannot be quoted as a
typical length (Pareto or mixture-tail alpha <= 1, Zipf s <= 2, within two standard errors).

Nothing here reads a store or plots.
"""
from __future__ import annotations

import functools
import math
import warnings
from typing import NamedTuple

import numpy as np
from scipy import stats

from servelab.fitting.exceptions import ConvergenceWarning, FitWarning
from servelab.fitting.families import get_family
from servelab.fitting.fit import ks_distance
from servelab.fitting.result import FitResult
from servelab.fitting.verdicts import DEFAULT_LEVEL, POWER_TARGET, NullTest

__all__ = [
    "describes",
    "ks_critical_value",
    "KSCritical",
    "infinite_mean",
    "mean_note",
    "KS_TOLERANCE",
    "ASYMPTOTIC_FAMILIES",
    "BOOTSTRAP_MAX_N",
]


class KSCritical(NamedTuple):
    """Critical value of a KS distance (:func:`ks_critical_value`; unpacks as ``value, method, distances``).

    Parameters
    ----------
    value : float
        The critical value at the level.
    method : str
        How it was obtained, in words.
    distances : numpy.ndarray or None
        The bootstrap distances scaled to ``n`` (None for the asymptotic bound).
    """

    value: float
    method: str
    distances: np.ndarray | None

#: KS distance below which a misfit does not matter in practice (the project's old "fits well" bound)
KS_TOLERANCE = 0.05
#: families whose critical value is the known-parameter Kolmogorov bound (refits too slow to bootstrap)
ASYMPTOTIC_FAMILIES = ("lognormal_mixture", "lognormal_pareto", "normal_mixture")
#: largest bootstrap sample; bigger samples scale the critical value by sqrt(m / n)
BOOTSTRAP_MAX_N = 1000


def _kolmogorov(n: int, level: float) -> float:
    return float(stats.kstwobign.isf(level) / math.sqrt(n))


@functools.lru_cache(maxsize=256)
def _bootstrap_d(family: str, m: int, params_key: tuple[tuple[str, float], ...], integer: bool, replicates: int,
                 seed: int) -> np.ndarray:
    fam = get_family(family)
    params = dict(params_key)
    rng = np.random.default_rng(seed)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(replicates):  # B refits of m draws each; no loop over observations
            y = np.asarray(fam.rvs(params, m, rng), dtype=float)
            if integer:
                y = np.maximum(np.round(y), 1.0)
            try:
                y = fam.validate_sample(y)
                p_b, _ = fam.fit_params(y)
            except (ValueError, FloatingPointError):
                continue
            out.append(ks_distance(y, fam, p_b))
    d = np.sort(np.asarray(out))
    d.setflags(write=False)
    return d


def ks_critical_value(family: str, n: int, params, *, level: float = DEFAULT_LEVEL, integer: bool = False,
                      replicates: int = 200, seed: int = 0) -> KSCritical:
    """Critical value of the KS distance of a fitted ``family`` at sample size ``n``.

    Parameters
    ----------
    family : str
        Registered family.
    n : int
        Sample size the fit used.
    params : Mapping[str, float]
        The fitted parameters (the bootstrap draws from them).
    level : float
        Significance level.
    integer : bool
        The data are integers (token counts): bootstrap draws are rounded (and kept >= 1)
        before refitting, so that the lattice's own KS jumps are part of the null.
    replicates, seed : int
        Bootstrap size and seed.

    Returns
    -------
    KSCritical
        ``(value, method, distances)``: the critical value, the method in words, and the bootstrap
        distances scaled to ``n`` (None for the asymptotic bound).

    Raises
    ------
    ValueError
        If ``n`` < 5 or ``level`` is not in (0, 1).
    """
    if not isinstance(n, (int, np.integer)) or n < 5:
        raise ValueError(f"n must be an integer >= 5; got {n!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level!r}")
    if family in ASYMPTOTIC_FAMILIES:
        return KSCritical(_kolmogorov(int(n), level), (f"Kolmogorov critical value K/sqrt(n) with known parameters "
                          f"(an upper bound for fitted ones; {family} refits are too slow to bootstrap)"), None)
    m = int(min(n, BOOTSTRAP_MAX_N))
    key = tuple(sorted((k, float(f"{float(v):.4g}")) for k, v in dict(params).items()))
    d = _bootstrap_d(family, m, key, bool(integer), int(replicates), int(seed))
    if d.size < 0.9 * replicates:
        return KSCritical(_kolmogorov(int(n), level), (f"Kolmogorov bound K/sqrt(n) ({replicates - d.size} of "
                                                       f"{replicates} bootstrap refits failed)"), None)
    scaled = d * math.sqrt(m / n)
    how = (f"parametric bootstrap with refitting (B={replicates}, seed={seed}) at m={m}"
           + (f", scaled by sqrt(m/n)" if m < n else "") + (", draws rounded to integers" if integer else ""))
    return KSCritical(float(np.quantile(scaled, 1.0 - level)), how, scaled)


def infinite_mean(fit: FitResult, *, z: float = 2.0) -> bool:
    r"""True when the fitted law's mean is infinite or not distinguishable from infinite.

    The tail exponent's ``z``-standard-error interval reaches the boundary: Pareto (and the
    Pareto tail of ``lognormal_pareto``, on its ``n (1 - weight)`` tail values)
    :math:`\hat\alpha - z\,\hat\alpha/\sqrt{n} \le 1`; Zipf :math:`\hat s - z(\hat s - 1)/\sqrt n \le 2`
    (the standard errors of the power-law MLEs). Pareto alpha = 1.004 is flagged up to
    n = 252,000 tail values; its mean, 251 x_min, is set by a handful of the largest values.
    """
    p = fit.params
    if fit.family in ("pareto", "lognormal_pareto"):
        tail_n = fit.n * (1.0 - p.get("weight", 0.0)) if fit.family == "lognormal_pareto" else fit.n
        if tail_n <= 0:
            return False
        return bool(p["alpha"] * (1.0 - z / math.sqrt(tail_n)) <= 1.0)
    if fit.family == "zipf":
        return bool(p["s"] - z * (p["s"] - 1.0) / math.sqrt(max(fit.n, 1)) <= 2.0)
    return False


def mean_note(fit: FitResult) -> str | None:
    """Words a headline must carry when it names ``fit`` (None when its mean is clearly finite)."""
    if not infinite_mean(fit):
        return None
    name, val = ("s", fit.params["s"]) if fit.family == "zipf" else ("alpha", fit.params["alpha"])
    return (f"{fit.family} {name} = {val:.4g}: its mean is infinite or not distinguishable from infinite (within 2 "
            "standard errors), so it describes the tail, not a typical length")


def describes(fit: FitResult, *, tolerance: float = KS_TOLERANCE, level: float = DEFAULT_LEVEL,
              integer: bool = False, replicates: int = 200, seed: int = 0) -> NullTest:
    """Does the fitted family describe the data (the project's one goodness-of-fit standard)?

    Parameters
    ----------
    fit : FitResult
        A fit with ``ks_distance`` (from :func:`~servelab.fitting.fit.fit_family` or a
        :class:`~servelab.fitting.compare.FamilyComparison`).
    tolerance : float
        KS misfit that does not matter in practice.
    level : float
        Significance level of the KS critical value.
    integer : bool
        The data are integers (see :func:`ks_critical_value`).
    replicates, seed : int
        Bootstrap size and seed.

    Returns
    -------
    NullTest
        ``decision`` holds (describes, with power), does not hold (D beyond
        max(tolerance, critical value)) or inconclusive (the sample is too small to see a misfit
        of twice the tolerance). ``value`` is D; ``p_value`` is the bootstrap p-value when
        bootstrapped, else the asymptotic Kolmogorov one (conservative).

    Raises
    ------
    ValueError
        If the fit has no KS distance or ``tolerance`` is not in (0, 1).
    """
    if fit.ks_distance is None or not math.isfinite(fit.ks_distance):
        raise ValueError(f"fit of {fit.family!r} has no KS distance; got {fit.ks_distance!r}")
    if not 0 < tolerance < 1:
        raise ValueError(f"tolerance must be in (0, 1); got {tolerance!r}")
    d, n = float(fit.ks_distance), int(fit.n)
    upper = _kolmogorov(n, level) if n >= 5 else math.inf
    if not integer and d > max(tolerance, upper):
        # Without rounding, K/sqrt(n) with known parameters bounds the critical value from above
        # (fitted parameters, Lilliefors, and discrete families only make D smaller under the
        # null), so a D beyond it fails whatever the bootstrap says: skip the bootstrap (a Zipf
        # with s near 1 takes seconds to draw)
        crit, boot = upper, None
        how = ("Kolmogorov critical value K/sqrt(n) with known parameters (an upper bound for fitted ones; D "
               "exceeds it, so no bootstrap is needed)")
    else:
        crit, how, boot = ks_critical_value(fit.family, n, fit.params, level=level, integer=integer,
                                            replicates=replicates, seed=seed)
    if boot is not None:
        p = float((1 + np.sum(boot >= d)) / (boot.size + 1))
    else:
        p = float(stats.kstwobign.sf(d * math.sqrt(n)))
    bound = max(tolerance, crit)
    sd = 0.5 / math.sqrt(n)  # largest sd of the ECDF at a point: the noise of D under a fixed misfit
    z = stats.norm.ppf(POWER_TARGET)
    mde = bound + z * sd
    power = float(stats.norm.sf((bound - 2.0 * tolerance) / sd))
    note = mean_note(fit)
    if d > bound:
        verdict = "does not hold"
        why = f"KS D {d:.3g} > max(tolerance {tolerance:g}, critical value {crit:.3g})"
    elif power < POWER_TARGET:
        verdict = "inconclusive"
        why = (f"KS D {d:.3g} <= {bound:.3g}, but n = {n} could miss a misfit of {2 * tolerance:g} (power "
               f"{power:.0%}; smallest misfit seen with 80 % power: {mde:.3g})")
    else:
        verdict = "holds"
        why = f"KS D {d:.3g} <= max(tolerance {tolerance:g}, critical value {crit:.3g}); power {power:.0%}"
    if note:
        why += f"; {note}"
    params = ", ".join(f"{k}={v:.4g}" for k, v in fit.params.items())
    return NullTest(null=f"the data are a sample of the fitted {fit.family} ({params})",
                    statistic="KS distance D", value=d, p_value=p, level=level, effect="KS distance D (misfit)",
                    effect_value=d, practical_threshold=tolerance, paper_effect=2.0 * tolerance, power=power,
                    minimum_detectable_effect=mde, alternative=f"a true misfit of KS distance {2 * tolerance:g}",
                    method=how, n=n, decision=verdict, reason=why)
