r"""Heavy-tailed length families: the continuous Pareto and BurstGPT's Zipf (a discrete power law).

Both are registered in the one family registry (:mod:`servelab.fitting.families`) at import, so
``fit_family(x, "pareto")`` and ``fit_family(x, "zipf")`` return the usual
:class:`~servelab.fitting.result.FitResult`. This module estimates parameters only; it reads no
store and draws nothing.

Families registered here
------------------------
``pareto``
    .. math:: f(x) = \frac{\alpha\, x_{\min}^{\alpha}}{x^{\alpha + 1}}, \quad x \ge x_{\min}

    MLE: :math:`\hat x_{\min} = \min_i x_i` and
    :math:`\hat\alpha = n / \sum_i \ln(x_i / \hat x_{\min})` (closed form). Params ``alpha``,
    ``x_min`` (scipy's ``pareto(b=alpha, scale=x_min)``).
``zipf``
    .. math:: p(k) = \frac{k^{-s}}{\zeta(s, k_{\min})}, \quad k = k_{\min}, k_{\min} + 1, \dots

    with the Hurwitz zeta :math:`\zeta(s, q) = \sum_{j \ge 0} (j + q)^{-s}` as normalisation
    (``scipy.special.zeta(s, q)``). ``x_min`` is the smallest observed value (the MLE of the
    support's lower end); ``s > 1`` maximises the likelihood numerically
    (``scipy.optimize.minimize_scalar``, bounded). For ``x_min = 1`` this is scipy's ``zipf(a=s)``.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
from scipy import optimize, special

from servelab.fitting.exceptions import ConvergenceWarning, InsufficientDataError
from servelab.fitting.families import Family, ParamFit, family_names, register_family

__all__ = ["ParetoFamily", "ZipfFamily", "ZIPF_S_BOUNDS"]

#: search interval for the Zipf exponent (s <= 1 cannot be normalised on an infinite support)
ZIPF_S_BOUNDS = (1.0 + 1e-6, 30.0)


class ParetoFamily(Family):
    """Pareto (type I) with both ``alpha`` and ``x_min`` estimated by maximum likelihood."""

    name = "pareto"
    param_names = ("alpha", "x_min")
    min_n = 2

    def validate_sample(self, x: np.ndarray) -> np.ndarray:
        x = super().validate_sample(x)
        if np.any(x <= 0):
            raise InsufficientDataError(f"pareto needs positive values; got {int(np.sum(x <= 0))} values <= 0")
        if np.all(x == x[0]):
            raise InsufficientDataError(f"pareto: all {x.size} values equal {x[0]!r}; alpha is undefined")
        return x

    def fit_params(self, x: np.ndarray) -> ParamFit:
        x_min = float(np.min(x))
        total = float(np.sum(np.log(x / x_min)))
        alpha = x.size / total
        return ParamFit({"alpha": alpha, "x_min": x_min}, bool(np.isfinite(alpha) and alpha > 0))

    def logpdf(self, x, params: Mapping[str, float]) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        alpha, x_min = float(params["alpha"]), float(params["x_min"])
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.log(alpha) + alpha * np.log(x_min) - (alpha + 1.0) * np.log(x)
        return np.where(x >= x_min, out, -np.inf)

    def cdf(self, x, params: Mapping[str, float]) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        alpha, x_min = float(params["alpha"]), float(params["x_min"])
        with np.errstate(divide="ignore", invalid="ignore"):
            out = 1.0 - (x_min / x) ** alpha
        return np.where(x >= x_min, out, 0.0)

    def rvs(self, params: Mapping[str, float], size: int, rng: np.random.Generator) -> np.ndarray:
        alpha, x_min = float(params["alpha"]), float(params["x_min"])
        return x_min * (1.0 - rng.random(size)) ** (-1.0 / alpha)


class ZipfFamily(Family):
    """Discrete power law on the integers ``>= x_min`` (BurstGPT's Zipf for request lengths)."""

    name = "zipf"
    param_names = ("s", "x_min")
    min_n = 2
    kind = "discrete"

    def validate_sample(self, x: np.ndarray) -> np.ndarray:
        x = super().validate_sample(x)
        if np.any(x < 1):
            raise InsufficientDataError(f"zipf needs integers >= 1; got {int(np.sum(x < 1))} values < 1")
        if np.any(x != np.round(x)):
            raise InsufficientDataError(
                f"zipf is a discrete family; got {int(np.sum(x != np.round(x)))} non-integer values"
            )
        if np.all(x == x[0]):
            raise InsufficientDataError(f"zipf: all {x.size} values equal {x[0]!r}; the exponent is unbounded")
        return x

    def fit_params(self, x: np.ndarray) -> ParamFit:
        x_min = float(np.min(x))
        n = x.size
        mean_log = float(np.mean(np.log(x)))

        def nll(s: float) -> float:
            return float(np.log(special.zeta(s, x_min)) + s * mean_log)

        res = optimize.minimize_scalar(nll, bounds=ZIPF_S_BOUNDS, method="bounded", options={"xatol": 1e-9})
        s = float(res.x)
        at_bound = s <= ZIPF_S_BOUNDS[0] + 1e-4 or s >= ZIPF_S_BOUNDS[1] - 1e-3
        converged = bool(res.success) and not at_bound
        if not converged:
            warnings.warn(
                f"zipf exponent s={s:.6g} at the search bound {ZIPF_S_BOUNDS} (n={n}): the sample is not "
                "power-law shaped", ConvergenceWarning, stacklevel=3)
        return ParamFit({"s": s, "x_min": x_min}, converged)

    def logpdf(self, x, params: Mapping[str, float]) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        s, x_min = float(params["s"]), float(params["x_min"])
        with np.errstate(divide="ignore", invalid="ignore"):
            out = -s * np.log(x) - np.log(special.zeta(s, x_min))
        ok = (x >= x_min) & (x == np.round(x))
        return np.where(ok, out, -np.inf)

    def cdf(self, x, params: Mapping[str, float]) -> np.ndarray:
        x = np.floor(np.asarray(x, dtype=float))
        s, x_min = float(params["s"]), float(params["x_min"])
        safe = np.maximum(x + 1.0, x_min)
        out = 1.0 - special.zeta(s, safe) / special.zeta(s, x_min)
        return np.where(x >= x_min, out, 0.0)

    def rvs(self, params: Mapping[str, float], size: int, rng: np.random.Generator) -> np.ndarray:
        """Exact draws: inverse CDF on a table up to a cut-off, a continuous power law beyond it.

        The table covers the values holding all but ``1e-4`` of the mass or ``2e6`` values,
        whichever comes first; beyond the cut-off :math:`k` follows the continuous tail
        :math:`P(K > k) \\propto k^{1-s}` (relative error below ``1e-4`` of the mass there).
        """
        s, x_min = float(params["s"]), float(params["x_min"])
        z0 = special.zeta(s, x_min)
        span = int(min(2e6, max(1e3, x_min * (1e4 ** (1.0 / max(s - 1.0, 1e-3))))))
        ks = x_min + np.arange(span, dtype=float)
        cdf = np.cumsum(ks ** (-s)) / z0
        u = rng.random(size)
        idx = np.searchsorted(cdf, u, side="left")
        out = np.empty(size, dtype=float)
        inside = idx < span
        out[inside] = ks[idx[inside]]
        if np.any(~inside):
            k_end = x_min + span
            tail_mass = 1.0 - cdf[-1]
            v = (1.0 - u[~inside]) / max(tail_mass, 1e-300)  # in (0, 1]: conditional survival
            out[~inside] = np.floor(k_end * np.clip(v, 1e-300, 1.0) ** (-1.0 / (s - 1.0)))
        return out


def _register() -> None:
    for family in (ParetoFamily(), ZipfFamily()):
        if family.name not in family_names():
            register_family(family)


_register()
