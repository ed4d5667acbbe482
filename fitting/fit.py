"""Fit one family to one sample and score it: the one way every fit in servelab is made."""
from __future__ import annotations

import numpy as np

from servelab.fitting.families import Family, get_family
from servelab.fitting.result import FitResult

__all__ = ["fit_family", "ks_distance"]


def ks_distance(x: np.ndarray, family: Family, params) -> float:
    """Kolmogorov-Smirnov distance between the sample ``x`` and the fitted CDF."""
    x = np.sort(np.asarray(x, dtype=float))
    n = x.size
    if family.kind == "discrete":
        # compare at each distinct value: empirical CDF just after, model CDF at the value
        values, last = np.unique(x, return_index=False, return_counts=True)
        ecdf = np.cumsum(last) / n
        model = family.cdf(values, params)
        below = family.cdf(values - 1, params)
        ecdf_before = np.concatenate([[0.0], ecdf[:-1]])
        return float(max(np.max(np.abs(ecdf - model)), np.max(np.abs(ecdf_before - below))))
    cdf = family.cdf(x, params)  # continuous only: a discrete family is compared at its distinct values
    i = np.arange(1, n + 1)
    return float(max(np.max(i / n - cdf), np.max(cdf - (i - 1) / n)))


def fit_family(x, family: str | Family, *, notes: tuple[str, ...] = ()) -> FitResult:
    """Maximum-likelihood fit of ``family`` to ``x``, with log-likelihood, AIC, BIC and KS D.

    No p-value is attached here (see :mod:`servelab.fitting.gof` for honest ones).

    Parameters
    ----------
    x : array-like
        The sample.
    family : str or Family
        A registered family name.
    notes : tuple of str
        Notes to carry into the result (e.g. how ties were handled).
    """
    fam = get_family(family)
    x = fam.validate_sample(x)
    params, converged = fam.fit_params(x)
    loglik = float(np.sum(fam.logpdf(x, params)))
    k = len(fam.param_names)
    n = x.size
    return FitResult(
        family=fam.name,
        params=params,
        n=n,
        n_params=k,
        log_likelihood=loglik,
        aic=2 * k - 2 * loglik,
        bic=k * np.log(n) - 2 * loglik,
        ks_distance=ks_distance(x, fam, params),
        converged=converged,
        notes=notes,
    )
