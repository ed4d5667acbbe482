"""Honest goodness-of-fit p-values for fitted families.

The naive KS p-value against parameters fitted on the same data is biased towards accepting
(scipy's ``goodness_of_fit`` docstring), and at n = 10^6 any p-value is 0 for real data. So the KS
distance D is always reported as the effect size, and a p-value comes only from one of:

``"bootstrap"``
    a parametric bootstrap of KS D *with refitting*: fit the family to the sample (or a seeded
    random subsample of at most ``max_n`` values), draw ``n_boot`` samples of the same size from
    the fit, refit each and compute its D; ``p = (1 + #{D_b >= D_obs}) / (n_boot + 1)``;
``"subsample"``
    the plain KS test of a seeded random subsample of ``m = min(max_n, n // 10)`` values against
    the parameters fitted on the *full* sample (with ``n >= 10 m`` the estimation error is small
    next to the test's own noise, so the test is close to exact).

The chosen method, B, the subsample size and the seed are written into ``p_value_method``. This
module does not choose families (see :mod:`servelab.fitting.compare`).
"""
from __future__ import annotations

import dataclasses
import warnings
from typing import NamedTuple

import numpy as np
from scipy import stats

from servelab.fitting.exceptions import ConvergenceWarning, InsufficientDataError
from servelab.fitting.families import Family, get_family
from servelab.fitting.fit import fit_family, ks_distance
from servelab.fitting.result import FitResult

__all__ = ["goodness_of_fit", "bootstrap_ks", "BootstrapKS", "GOF_METHODS"]

#: accepted values of ``method`` in :func:`goodness_of_fit`
GOF_METHODS = ("bootstrap", "subsample")


class BootstrapKS(NamedTuple):
    """Result of :func:`bootstrap_ks` (immutable; unpacks as ``p, d, failed`` like the tuple it replaced).

    Parameters
    ----------
    p_value : float
        ``(1 + #{D_b >= D_obs}) / (n_valid + 1)`` over the replicates whose refit succeeded.
    ks_distance : float
        KS distance D_obs of the sample to its own fit.
    n_failed : int
        Replicates whose refit raised or did not converge (left out of the count).
    """

    p_value: float
    ks_distance: float
    n_failed: int


def bootstrap_ks(x, family: str | Family, *, n_boot: int = 200, seed: int = 0) -> BootstrapKS:
    """Parametric-bootstrap p-value of the KS distance with refitting, on all of ``x``.

    Parameters
    ----------
    x : array-like
        The sample (already tie-handled).
    family : str or Family
        A registered family.
    n_boot : int
        Bootstrap replicates B.
    seed : int
        Seed of the bootstrap draws.

    Returns
    -------
    BootstrapKS
        ``p_value``, ``ks_distance`` (D_obs) and ``n_failed`` replicates, by name.

    Raises
    ------
    ValueError
        If ``n_boot`` is not a positive integer.
    """
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer; got {n_boot!r}")
    fam = get_family(family)
    x = fam.validate_sample(x)
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        params, _ = fam.fit_params(x)
        d_obs = ks_distance(x, fam, params)
        exceed = 0
        failed = 0
        for _ in range(n_boot):
            y = np.asarray(fam.rvs(params, x.size, rng), dtype=float)
            try:
                y = fam.validate_sample(y)
                params_b, ok = fam.fit_params(y)
            except (ValueError, FloatingPointError):
                failed += 1
                continue
            if not ok:
                failed += 1
                continue
            exceed += ks_distance(y, fam, params_b) >= d_obs
    valid = n_boot - failed
    return BootstrapKS(p_value=(1.0 + exceed) / (valid + 1.0), ks_distance=float(d_obs), n_failed=failed)


def goodness_of_fit(
    x,
    family: str | Family,
    *,
    method: str = "bootstrap",
    n_boot: int = 200,
    max_n: int = 2000,
    seed: int = 0,
    fit: FitResult | None = None,
) -> FitResult:
    """Fit ``family`` to ``x`` (unless ``fit`` is given) and attach an honest p-value.

    Parameters
    ----------
    x : array-like
        The sample (already tie-handled; see :mod:`servelab.fitting.ties`).
    family : str or Family
        A registered family.
    method : {"bootstrap", "subsample"}
        See the module docstring.
    n_boot : int
        Bootstrap replicates B (``method="bootstrap"``).
    max_n : int
        Largest sample the test runs on; bigger samples are subsampled (seeded) first.
    seed : int
        Seed of the subsample and of the bootstrap draws.
    fit : FitResult, optional
        An existing fit of ``family`` to the full ``x``; its estimates are kept, only
        ``p_value`` / ``p_value_method`` (and notes) are added.

    Returns
    -------
    FitResult
        With ``p_value`` and ``p_value_method`` set.

    Raises
    ------
    ValueError
        If ``method`` is unknown or ``max_n`` / ``n_boot`` are not positive.
    InsufficientDataError
        If ``method="subsample"`` and ``x`` is too small for a 10x smaller subsample of 20 values.
    """
    if method not in GOF_METHODS:
        raise ValueError(f"method must be one of {GOF_METHODS}; got {method!r}")
    if not isinstance(max_n, (int, np.integer)) or max_n < 2:
        raise ValueError(f"max_n must be an integer >= 2; got {max_n!r}")
    fam = get_family(family)
    x = fam.validate_sample(x)
    n = x.size
    if fit is None:
        fit = fit_family(x, fam)
    elif fit.family != fam.name:
        raise ValueError(f"fit is a {fit.family!r} result; expected family {fam.name!r}")
    rng = np.random.default_rng(seed)
    notes = list(fit.notes)
    if method == "bootstrap":
        if n > max_n:
            sample = x[np.sort(rng.choice(n, size=max_n, replace=False))]
            where = f"a random subsample of {max_n} of {n} values (refitted on it)"
        else:
            sample = x
            where = f"all {n} values"
        boot = bootstrap_ks(sample, fam, n_boot=n_boot, seed=int(rng.integers(2**32)))
        p, failed = boot.p_value, boot.n_failed
        how = f"parametric bootstrap of KS D with refitting (B={n_boot}, seed={seed}) on {where}"
        if failed:
            notes.append(f"gof: {failed} of {n_boot} bootstrap refits failed and were left out")
    else:
        m = min(max_n, n // 10)
        if m < 20:
            raise InsufficientDataError(
                f"method='subsample' needs n >= 200 (a subsample of >= 20 that is <= n/10); got n={n}: "
                "use method='bootstrap'"
            )
        sample = x[rng.choice(n, size=m, replace=False)]
        p = float(stats.kstest(sample, lambda v: fam.cdf(v, fit.params)).pvalue)
        how = f"KS test on a random subsample of {m} of {n} values (seed={seed}), params from the full sample"
    return dataclasses.replace(fit, p_value=float(p), p_value_method=how, notes=tuple(notes))
