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
"""
from __future__ import annotations

import abc
import warnings
from collections.abc import Mapping

import numpy as np
from scipy import stats

from servelab.fitting.exceptions import ConvergenceWarning, InsufficientDataError, UnknownFamilyError

__all__ = ["Family", "ScipyFamily", "register_family", "get_family", "family_names", "ARRIVAL_FAMILIES"]


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
        params = dict(zip(self.param_names, [*shapes, scale]))
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


register_family(ScipyFamily("exponential", stats.expon, ("scale",)))
register_family(ScipyFamily("gamma", stats.gamma, ("a", "scale")))
register_family(ScipyFamily("weibull", stats.weibull_min, ("c", "scale")))
register_family(ScipyFamily("lognormal", stats.lognorm, ("s", "scale")))

#: the families compared for inter-arrival gaps (ServeGen Fig. 1d)
ARRIVAL_FAMILIES = ("exponential", "gamma", "weibull", "lognormal")
