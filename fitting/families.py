r"""The family registry: every distribution servelab fits, by name.

A :class:`Family` knows its parameter names, how to estimate them by maximum likelihood, and how
to evaluate and sample itself. Positive-valued families fix ``loc = 0`` (a free ``loc`` is slow
and wrong on inter-arrival gaps and token counts). Modules that add families (mixtures, discrete
power laws) call :func:`register_family`; there is one registry and one result type
(:class:`~servelab.fitting.result.FitResult`).

Families registered here
------------------------
``exponential``
    .. math:: f(x) = \frac{1}{s} e^{-x/s}, \quad x > 0
``gamma``
    .. math:: f(x) = \frac{x^{a-1} e^{-x/s}}{\Gamma(a) s^a}, \quad \mathrm{CV} = 1/\sqrt{a}
``weibull``
    .. math:: f(x) = \frac{c}{s} (x/s)^{c-1} e^{-(x/s)^c}
``lognormal``
    .. math:: f(x) = \frac{1}{x \sigma \sqrt{2\pi}} \exp\left(-\frac{(\ln x - \ln s)^2}{2\sigma^2}\right)
    with scipy's names ``s`` (= sigma) and ``scale`` (= e^mu).

Estimators of the four arrival families (all maximum likelihood with ``loc = 0``, all fast on
10^6 values because none calls a generic optimiser):

- exponential: closed form, ``scale = mean(x)``;
- lognormal: closed form, ``s = std(ln x)`` (ddof 0), ``scale = exp(mean(ln x))``;
- gamma: Newton's method on the shape's score equation
  :math:`\ln a - \psi(a) = \ln \bar{x} - \overline{\ln x}` from Minka's closed-form start,
  vectorised (:func:`gamma_mle_from_stats` fits many windows at once from sufficient statistics);
- weibull: a safeguarded Newton / bisection root solve of the 1-D profile score in the shape
  :math:`c`, started from the moment estimate of :math:`\ln x`.

Each reports ``converged=False`` with a :class:`~servelab.fitting.exceptions.ConvergenceWarning`
when its iteration limit is reached. This module does not score fits (see
:mod:`servelab.fitting.fit`) or test them (see :mod:`servelab.fitting.gof`).
"""
from __future__ import annotations

import abc
import warnings
from collections.abc import Mapping

import numpy as np
from scipy import special, stats

from servelab.fitting.exceptions import ConvergenceWarning, InsufficientDataError, UnknownFamilyError

__all__ = [
    "Family",
    "ScipyFamily",
    "ExponentialFamily",
    "GammaFamily",
    "WeibullFamily",
    "LognormalFamily",
    "gamma_mle_from_stats",
    "register_family",
    "get_family",
    "family_names",
    "ARRIVAL_FAMILIES",
]


class Family(abc.ABC):
    """A named distribution family that can be fitted by maximum likelihood.

    Subclasses set :attr:`name`, :attr:`param_names` and :attr:`min_n` and implement the
    abstract methods. ``params`` are always a mapping from :attr:`param_names` to floats.
    """

    name: str
    param_names: tuple[str, ...]
    #: smallest sample for which the MLE is defined
    min_n: int = 2
    #: "continuous" or "discrete" (KS distance is computed accordingly)
    kind: str = "continuous"

    @abc.abstractmethod
    def fit_params(self, x: np.ndarray) -> tuple[dict[str, float], bool]:
        """Maximum-likelihood parameters for ``x`` and whether the optimiser converged."""

    @abc.abstractmethod
    def logpdf(self, x: np.ndarray, params: Mapping[str, float]) -> np.ndarray:
        """Log density (log PMF for discrete families)."""

    @abc.abstractmethod
    def cdf(self, x: np.ndarray, params: Mapping[str, float]) -> np.ndarray:
        """Cumulative distribution function."""

    @abc.abstractmethod
    def rvs(self, params: Mapping[str, float], size: int, rng: np.random.Generator) -> np.ndarray:
        """Draw ``size`` samples with ``rng``."""

    def validate_sample(self, x: np.ndarray) -> np.ndarray:
        """Return ``x`` as a finite float array, or raise if the family cannot be fitted to it."""
        x = np.asarray(x, dtype=float)
        if x.ndim != 1:
            raise ValueError(f"{self.name}: sample must be one-dimensional; got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{self.name}: sample holds {int(np.sum(~np.isfinite(x)))} non-finite values")
        if x.size < self.min_n:
            raise InsufficientDataError(
                f"{self.name} needs at least {self.min_n} observations; got {x.size}"
            )
        return x

    def __repr__(self) -> str:
        return f"<Family {self.name} ({', '.join(self.param_names)})>"


class ScipyFamily(Family):
    """A positive continuous scipy family with ``loc`` fixed at 0.

    Parameters
    ----------
    name : str
        Registry name.
    dist : scipy.stats.rv_continuous
        The scipy distribution.
    param_names : tuple of str
        scipy's shape names followed by ``"scale"``.
    """

    def __init__(self, name: str, dist: stats.rv_continuous, param_names: tuple[str, ...]):
        self.name = name
        self.dist = dist
        self.param_names = param_names
        self.min_n = max(2, len(param_names))

    def _args(self, params: Mapping[str, float]) -> dict[str, float]:
        missing = [p for p in self.param_names if p not in params]
        if missing:
            raise ValueError(f"{self.name}: params lack {missing}; expected {list(self.param_names)}")
        return {p: float(params[p]) for p in self.param_names}

    def validate_sample(self, x: np.ndarray) -> np.ndarray:
        x = super().validate_sample(x)
        if np.any(x <= 0):
            raise InsufficientDataError(
                f"{self.name} is fitted to positive values with loc=0; got {int(np.sum(x <= 0))} values <= 0 "
                "(zero gaps from quantised timestamps: see servelab.fitting.ties)"
            )
        if np.all(x == x[0]):
            raise InsufficientDataError(f"{self.name}: all {x.size} values equal {x[0]!r}; the MLE is degenerate")
        return x

    def fit_params(self, x: np.ndarray) -> tuple[dict[str, float], bool]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            estimates = self.dist.fit(x, floc=0)
        shapes, scale = estimates[:-2], estimates[-1]
        params = dict(zip(self.param_names, [*shapes, scale], strict=True))
        converged = all(np.isfinite(v) and v > 0 for v in params.values()) and not any(
            issubclass(w.category, RuntimeWarning) for w in caught
        )
        if not converged:
            warnings.warn(f"{self.name} fit did not converge cleanly: {params}", ConvergenceWarning, stacklevel=3)
        return params, converged

    def logpdf(self, x, params):
        return self.dist.logpdf(np.asarray(x, dtype=float), **self._args(params))

    def cdf(self, x, params):
        return self.dist.cdf(np.asarray(x, dtype=float), **self._args(params))

    def rvs(self, params, size, rng):
        return self.dist.rvs(size=size, random_state=rng, **self._args(params))


def _warn_unconverged(name: str, params: Mapping[str, float], detail: str) -> None:
    warnings.warn(
        f"{name} fit did not converge ({detail}); params {dict(params)} are the last iterate and the "
        "result says converged=False",
        ConvergenceWarning,
        stacklevel=4,
    )


class ExponentialFamily(ScipyFamily):
    r"""Exponential with ``loc = 0``: :math:`f(x) = e^{-x/s}/s`; the MLE is ``scale = mean(x)``."""

    def __init__(self) -> None:
        super().__init__("exponential", stats.expon, ("scale",))

    def fit_params(self, x: np.ndarray) -> tuple[dict[str, float], bool]:
        return {"scale": float(np.mean(x))}, True

    def logpdf(self, x, params):
        s = self._args(params)["scale"]
        return -np.log(s) - np.asarray(x, dtype=float) / s

    def cdf(self, x, params):
        s = self._args(params)["scale"]
        return -np.expm1(-np.maximum(np.asarray(x, dtype=float), 0.0) / s)


class LognormalFamily(ScipyFamily):
    r"""Log-normal with ``loc = 0``; closed-form MLE ``s = std(ln x)``, ``scale = exp(mean(ln x))``.

    .. math:: f(x) = \frac{1}{x s \sqrt{2\pi}} \exp\left(-\frac{(\ln x - \ln \mathrm{scale})^2}{2 s^2}\right)
    """

    def __init__(self) -> None:
        super().__init__("lognormal", stats.lognorm, ("s", "scale"))

    def fit_params(self, x: np.ndarray) -> tuple[dict[str, float], bool]:
        logx = np.log(x)
        mu = float(np.mean(logx))
        sigma = float(np.sqrt(np.mean((logx - mu) ** 2)))
        return {"s": sigma, "scale": float(np.exp(mu))}, bool(sigma > 0)

    def logpdf(self, x, params):
        p = self._args(params)
        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            logx = np.log(x)
            z = (logx - np.log(p["scale"])) / p["s"]
            out = -logx - np.log(p["s"]) - 0.5 * np.log(2 * np.pi) - 0.5 * z * z
        return np.where(x > 0, out, -np.inf)

    def cdf(self, x, params):
        p = self._args(params)
        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore"):
            return special.ndtr((np.log(np.maximum(x, 0.0)) - np.log(p["scale"])) / p["s"])


def gamma_mle_from_stats(
    mean: np.ndarray, mean_log: np.ndarray, *, max_iter: int = 50, tol: float = 1e-10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Gamma MLE (``loc = 0``) from sufficient statistics, vectorised over many samples.

    Solves :math:`\ln a - \psi(a) = s` with :math:`s = \ln \bar{x} - \overline{\ln x}` by Newton's
    method on :math:`\ln a`, starting from Minka's approximation
    :math:`a_0 = (3 - s + \sqrt{(s - 3)^2 + 24 s}) / (12 s)`; then ``scale = mean / a``.

    Parameters
    ----------
    mean, mean_log : array-like
        Per-sample mean of ``x`` and mean of ``ln x`` (same shape).
    max_iter : int
        Newton iteration limit.
    tol : float
        Convergence tolerance on the relative change of ``a``.

    Returns
    -------
    a, scale : numpy.ndarray
        Shape and scale; NaN where the MLE is undefined (``s <= 0``: all values equal, or NaN input).
    converged : numpy.ndarray of bool
        False where the iteration limit was reached or the MLE is undefined.
    """
    mean = np.asarray(mean, dtype=float)
    mean_log = np.asarray(mean_log, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.log(mean) - mean_log
    ok = np.isfinite(s) & (s > 0)
    s_ok = np.where(ok, s, 1.0)
    a = (3.0 - s_ok + np.sqrt((s_ok - 3.0) ** 2 + 24.0 * s_ok)) / (12.0 * s_ok)
    done = ~ok
    for _ in range(max_iter):
        # Newton on u = ln a: f(u) = u - psi(e^u) - s,  f'(u) = 1 - a psi'(a); for large a both
        # cancel catastrophically, so the asymptotic series is used there (error < 1e-18 at a > 1e3)
        big = a > 1e3
        a_small = np.where(big, 1.0, a)
        inv = 1.0 / a
        f = np.where(big, inv / 2 + inv**2 / 12 - inv**4 / 120,
                     np.log(a_small) - special.digamma(a_small)) - s_ok
        fprime = np.where(big, -inv / 2 - inv**2 / 6 + inv**4 / 30,
                          1.0 - a_small * special.polygamma(1, a_small))
        step = f / fprime
        step = np.clip(step, -2.0, 2.0)
        a_new = a * np.exp(-step)
        a = np.where(done, a, a_new)
        done = done | (np.abs(step) < tol)
        if done.all():
            break
    converged = ok & done
    a = np.where(ok, a, np.nan)
    scale = np.where(ok, mean / a, np.nan)
    return a, scale, converged


class GammaFamily(ScipyFamily):
    r"""Gamma with ``loc = 0``: :math:`f(x) = x^{a-1} e^{-x/\mathrm{scale}} / (\Gamma(a)\, \mathrm{scale}^a)`.

    CV = :math:`1/\sqrt{a}`; BurstGPT's rate :math:`\beta` = 1 / scale. Fitted by Newton's method
    (:func:`gamma_mle_from_stats`).

    Parameters
    ----------
    max_iter : int
        Newton iteration limit (a result that hits it says ``converged=False``).
    """

    def __init__(self, *, max_iter: int = 50) -> None:
        super().__init__("gamma", stats.gamma, ("a", "scale"))
        self.max_iter = max_iter

    def fit_params(self, x: np.ndarray) -> tuple[dict[str, float], bool]:
        a, scale, converged = gamma_mle_from_stats(np.mean(x), np.mean(np.log(x)), max_iter=self.max_iter)
        params = {"a": float(a), "scale": float(scale)}
        if not bool(converged):
            _warn_unconverged(self.name, params, f"Newton reached max_iter={self.max_iter}")
        return params, bool(converged)

    def logpdf(self, x, params):
        p = self._args(params)
        a, s = p["a"], p["scale"]
        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = special.xlogy(a - 1.0, x) - x / s - special.gammaln(a) - a * np.log(s)
        return np.where(x >= 0, out, -np.inf)

    def cdf(self, x, params):
        p = self._args(params)
        return special.gammainc(p["a"], np.maximum(np.asarray(x, dtype=float), 0.0) / p["scale"])


class WeibullFamily(ScipyFamily):
    r"""Weibull with ``loc = 0``: :math:`f(x) = \frac{c}{\lambda} (x/\lambda)^{c-1} e^{-(x/\lambda)^c}`.

    The shape ``c`` solves the profile score
    :math:`g(c) = \sum y^c \ln y / \sum y^c - 1/c - \overline{\ln y} = 0` (``y`` = x over its geometric
    mean, for numerical range), which increases in ``c``; a Newton step is taken when it stays
    inside the current bracket, otherwise the bracket is bisected. Then
    :math:`\lambda = (\overline{x^c})^{1/c}`.

    Parameters
    ----------
    max_iter : int
        Iteration limit (a result that hits it says ``converged=False``).
    tol : float
        Relative tolerance on ``c``.
    """

    def __init__(self, *, max_iter: int = 100, tol: float = 1e-10) -> None:
        super().__init__("weibull", stats.weibull_min, ("c", "scale"))
        self.max_iter = max_iter
        self.tol = tol

    def fit_params(self, x: np.ndarray) -> tuple[dict[str, float], bool]:
        logx = np.log(x)
        mlog = float(np.mean(logx))
        z = logx - mlog  # ln y, mean 0
        sd = float(np.sqrt(np.mean(z * z)))
        c = np.pi / (np.sqrt(6.0) * sd)  # moment estimate: Var(ln X) = pi^2 / (6 c^2)
        lo, hi = 0.0, np.inf
        converged = False
        for _ in range(self.max_iter):
            cz = c * z
            w = np.exp(cz - cz.max())
            sw = w.sum()
            m1 = float(np.dot(w, z) / sw)
            m2 = float(np.dot(w, z * z) / sw)
            g = m1 - 1.0 / c
            if g > 0:
                hi = min(hi, c)
            else:
                lo = max(lo, c)
            gprime = (m2 - m1 * m1) + 1.0 / (c * c)
            c_new = c - g / gprime if gprime > 0 else np.nan
            if not (np.isfinite(c_new) and lo < c_new < hi):
                c_new = 0.5 * (lo + hi) if np.isfinite(hi) else 2.0 * c
            if abs(c_new - c) <= self.tol * c:
                c = c_new
                converged = True
                break
            c = c_new
        cz = c * z
        top = cz.max()
        log_mean_yc = top + np.log(np.mean(np.exp(cz - top)))
        scale = float(np.exp(mlog + log_mean_yc / c))
        params = {"c": float(c), "scale": scale}
        converged = converged and np.isfinite(c) and c > 0 and np.isfinite(scale)
        if not converged:
            _warn_unconverged(self.name, params, f"root solve reached max_iter={self.max_iter}")
        return params, bool(converged)

    def logpdf(self, x, params):
        p = self._args(params)
        c, s = p["c"], p["scale"]
        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            y = x / s
            out = np.log(c / s) + special.xlogy(c - 1.0, y) - y**c
        return np.where(x >= 0, out, -np.inf)

    def cdf(self, x, params):
        p = self._args(params)
        y = np.maximum(np.asarray(x, dtype=float), 0.0) / p["scale"]
        return -np.expm1(-(y ** p["c"]))


_REGISTRY: dict[str, Family] = {}


def register_family(family: Family, *, replace: bool = False) -> Family:
    """Add ``family`` to the registry under ``family.name`` and return it."""
    if family.name in _REGISTRY and not replace:
        raise ValueError(f"family {family.name!r} is already registered; pass replace=True to replace it")
    _REGISTRY[family.name] = family
    return family


def get_family(name: str | Family) -> Family:
    """Look a family up by name (a :class:`Family` passes through)."""
    if isinstance(name, Family):
        return name
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownFamilyError(f"unknown family {name!r}; registered families: {sorted(_REGISTRY)}") from None


def family_names() -> tuple[str, ...]:
    """Names of all registered families."""
    return tuple(sorted(_REGISTRY))


register_family(ExponentialFamily())
register_family(GammaFamily())
register_family(WeibullFamily())
register_family(LognormalFamily())

#: the families compared for inter-arrival gaps (ServeGen Fig. 1d)
ARRIVAL_FAMILIES = ("exponential", "gamma", "weibull", "lognormal")
