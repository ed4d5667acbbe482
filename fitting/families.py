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
when its iteration limit is reached.

The arrival protocol
--------------------
The four are :class:`ArrivalFamily` objects, the one protocol that fitting, pool fitting
(:mod:`servelab.fitting.pool_fit`), workload generation (:mod:`servelab.generator.arrivals`) and
the ServeGen conversion use: a vectorised per-segment fit (:meth:`ArrivalFamily.fit_segments`:
one call for every client-window, segment-id arrays), the mean and CV from the parameters and the
shapes from a CV, unit-mean parameters, and draws (plain and length-biased, one per element of
parameter arrays). Parameters always go by scipy's names (``a`` for Gamma, ``c`` for Weibull,
``s`` for the log-normal, and ``scale``); a client pool stores each under its name. A new arrival
family is one :class:`ArrivalFamily` subclass registered here; nothing else names families.

This module does not score fits (see
:mod:`servelab.fitting.fit`) or test them (see :mod:`servelab.fitting.gof`).
"""
from __future__ import annotations

import abc
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple
from types import MappingProxyType

import importlib

import numpy as np

from servelab.fitting.exceptions import ConvergenceWarning, InsufficientDataError, UnknownFamilyError
from servelab.fitting.segments import check_segments, gamma_mle_from_stats, segment_mean, weibull_mle_segments


class _LazyModule:
    """A module imported on first attribute access (scipy costs ~0.5 s; drawing gaps needs none of it)."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str):
        return getattr(importlib.import_module(self._name), attr)


stats = _LazyModule("scipy.stats")
special = _LazyModule("scipy.special")

__all__ = [
    "ParamFit",
    "Family",
    "ScipyFamily",
    "ArrivalFamily",
    "SegmentFits",
    "get_arrival_family",
    "arrival_family_names",
    "arrival_param_names",
    "ExponentialFamily",
    "GammaFamily",
    "WeibullFamily",
    "LognormalFamily",
    "gamma_mle_from_stats",
    "register_family",
    "arrival_param_columns",
    "get_family",
    "family_names",
    "ARRIVAL_FAMILIES",
]


class ParamFit(NamedTuple):
    """Maximum-likelihood parameters and convergence (:meth:`Family.fit_params`; unpacks as
    ``params, converged``).

    Parameters
    ----------
    params : dict of str to float
        By the family's :attr:`~Family.param_names`.
    converged : bool
        Whether the optimiser converged.
    """

    params: dict[str, float]
    converged: bool


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
    def fit_params(self, x: np.ndarray) -> ParamFit:
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

    def __init__(self, name: str, dist: stats.rv_continuous | str, param_names: tuple[str, ...]):
        self.name = name
        self._dist = dist
        self.param_names = param_names
        self.min_n = max(2, len(param_names))

    @property
    def dist(self) -> stats.rv_continuous:
        """The scipy distribution (given by its ``scipy.stats`` name: imported on first use)."""
        return getattr(stats, self._dist) if isinstance(self._dist, str) else self._dist

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

    def fit_params(self, x: np.ndarray) -> ParamFit:
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
        return ParamFit(params, converged)

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


# ------------------------------------------------------------------------------ the arrival protocol
@dataclass(frozen=True)
class SegmentFits:
    """Maximum-likelihood fits of one family to many samples at once (one row per segment).

    Holds per-segment estimates and counts only, never the values fitted.

    Parameters
    ----------
    family : str
        Registry name.
    params : Mapping[str, numpy.ndarray]
        Named parameters (scipy's names), one value per segment; NaN where no fit was made.
    n : numpy.ndarray of int64
        Values per segment.
    log_likelihood : numpy.ndarray
        Maximised log-likelihood per segment (NaN where no fit).
    converged : numpy.ndarray of bool
    n_params : int
        Free parameters (for AIC / BIC).
    """

    family: str
    params: Mapping[str, np.ndarray]
    n: np.ndarray
    log_likelihood: np.ndarray
    converged: np.ndarray
    n_params: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    @property
    def aic(self) -> np.ndarray:
        """``2 k - 2 log L`` per segment."""
        return 2.0 * self.n_params - 2.0 * self.log_likelihood


class ArrivalFamily(ScipyFamily):
    r"""A positive continuous family usable for inter-arrival gaps: the one protocol of fitting,
    pool fitting, workload generation and the ServeGen conversion.

    Every method is vectorised: ``params`` map scipy's names to floats or arrays that broadcast
    together (one element per client-window, say). A subclass implements the estimator
    :meth:`_fit_segments`, the density :meth:`_logpdf` / :meth:`_cdf`, the moments :meth:`mean` and
    :meth:`cv`, their inverse :meth:`shapes_from_cv` and the unit-scale draws :meth:`_draw`;
    everything else (single-sample fits, per-segment log-likelihoods, unit-mean and length-biased
    draws, shape floors) follows here, so adding an arrival family means writing one class and
    registering it.

    Attributes
    ----------
    shape_names : tuple of str
        The parameters other than ``scale`` (scipy's shape names; the pool stores each under its
        name).
    servegen_name : str or None
        The family's name in ServeGen's pool format (``"Gamma"``), or None when ServeGen cannot
        name it (the converter then writes the Gamma with the same mean and CV).
    draw_bounds : Mapping[str, (float, float)]
        Shapes are clipped into these ranges before drawing, so draws stay finite.
    """

    servegen_name: str | None = None
    #: the density is defined at x > 0 only (log-normal); others also at 0
    _open_at_zero: bool = False
    draw_bounds: Mapping[str, tuple[float, float]] = MappingProxyType({})

    @property
    def shape_names(self) -> tuple[str, ...]:
        return tuple(p for p in self.param_names if p != "scale")

    # --- what a family implements -----------------------------------------------------------
    @abc.abstractmethod
    def _fit_segments(self, x: np.ndarray, seg: np.ndarray, n_seg: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """MLE per segment of positive ``x``: named parameter arrays and a converged mask."""

    @abc.abstractmethod
    def _logpdf(self, x: np.ndarray, p: Mapping[str, np.ndarray]) -> np.ndarray:
        """Log density with broadcasting parameter arrays."""

    @abc.abstractmethod
    def _cdf(self, x: np.ndarray, p: Mapping[str, np.ndarray]) -> np.ndarray:
        """CDF with broadcasting parameter arrays."""

    @abc.abstractmethod
    def mean(self, params: Mapping[str, np.ndarray]) -> np.ndarray:
        """Mean of the distribution."""

    @abc.abstractmethod
    def cv(self, params: Mapping[str, np.ndarray]) -> np.ndarray:
        """Coefficient of variation (std / mean); depends on the shapes only."""

    @abc.abstractmethod
    def shapes_from_cv(self, cv) -> dict[str, np.ndarray]:
        """The shapes whose CV is ``cv`` (NaN where the family cannot have that CV)."""

    @abc.abstractmethod
    def _draw(self, p: Mapping[str, np.ndarray], n: int, rng: np.random.Generator, *,
              length_biased: bool) -> np.ndarray:
        """``n`` draws at ``scale = 1``, one per element of the shape arrays ``p`` (length ``n``);
        ``length_biased`` draws from :math:`x f(x) / E[X]` instead of :math:`f`."""

    # --- what follows from it --------------------------------------------------------------
    def _arrays(self, params: Mapping[str, object], names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        names = self.param_names if names is None else names
        missing = [p for p in names if p not in params]
        if missing:
            raise ValueError(f"{self.name}: params lack {missing}; expected {list(names)}")
        return {p: np.asarray(params[p], dtype=float) for p in names}

    def fit_params(self, x: np.ndarray) -> ParamFit:
        params, converged = self._fit_segments(x, np.zeros(x.size, dtype=np.int64), 1)
        out = {k: float(v[0]) for k, v in params.items()}
        ok = bool(converged[0]) and all(np.isfinite(v) and v > 0 for v in out.values())
        if not ok:
            _warn_unconverged(self.name, out, "iteration limit reached or estimate not finite")
        return ParamFit(out, ok)

    def fit_segments(self, x, seg, n_seg: int, *, min_n: int | None = None) -> SegmentFits:
        """Maximum-likelihood fit of every segment of a segmented sample, all at once.

        Parameters
        ----------
        x : array-like
            Positive values, the samples back to back.
        seg : array-like of int
            Segment of each value, non-decreasing, in ``0 .. n_seg - 1``.
        n_seg : int
            Number of segments (segments without values get NaN).
        min_n : int, optional
            Fewest values for a fit (default and floor: :attr:`min_n`).

        Raises
        ------
        ValueError
            If ``x`` holds values <= 0 or non-finite values, or ``seg`` is not a segmentation.
        """
        x, seg = check_segments(x, seg, n_seg)
        if x.size and not (np.all(np.isfinite(x)) and x.min() > 0):
            raise ValueError(f"{self.name}: fit_segments needs finite values > 0; got {int(np.sum(~(x > 0)))} "
                             "values <= 0 or NaN (zero gaps from a logging clock: see servelab.fitting.ties)")
        floor = max(self.min_n, int(min_n or 0))
        n = np.bincount(seg, minlength=n_seg)
        if x.size:
            params, converged = self._fit_segments(x, seg, n_seg)
        else:
            params = {p: np.full(n_seg, np.nan) for p in self.param_names}
            converged = np.zeros(n_seg, bool)
        ok = n >= floor
        for v in params.values():
            ok &= np.isfinite(v) & (v > 0)
        params = {k: np.where(ok, v, np.nan) for k, v in params.items()}
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            per_value = self._logpdf_segments(x, seg, params) if x.size else np.zeros(0)
        loglik = np.where(ok, np.bincount(seg, weights=np.where(ok[seg], per_value, 0.0), minlength=n_seg), np.nan)
        return SegmentFits(family=self.name, params=params, n=n.astype(np.int64), log_likelihood=loglik,
                           converged=ok & converged, n_params=len(self.param_names))

    def _logpdf_segments(self, x: np.ndarray, seg: np.ndarray, params: Mapping[str, np.ndarray]) -> np.ndarray:
        """Log density of each value under its segment's parameters (:meth:`_logpdf`, gathered)."""
        return self._logpdf(x, {k: v[seg] for k, v in params.items()})

    def logpdf(self, x, params):
        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = self._logpdf(x, self._arrays(params))
        return np.where(x > 0 if self._open_at_zero else x >= 0, out, -np.inf)

    def cdf(self, x, params):
        return self._cdf(np.maximum(np.asarray(x, dtype=float), 0.0), self._arrays(params))

    def clip_shapes(self, shapes: Mapping[str, object]) -> dict[str, np.ndarray]:
        """Shapes clipped into :attr:`draw_bounds` (where draws stay finite)."""
        out = self._arrays(shapes, self.shape_names)
        for name, (lo, hi) in self.draw_bounds.items():
            out[name] = np.clip(out[name], lo, hi)
        return out

    def unit_mean(self, shapes: Mapping[str, object]) -> dict[str, np.ndarray]:
        """Full parameters with the given shapes and the scale that makes the mean 1."""
        p = self._arrays(shapes, self.shape_names)
        size = np.broadcast(*p.values()).shape if p else ()
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            scale1 = self.mean({**p, "scale": np.ones(size)})
        return {**p, "scale": 1.0 / scale1}

    def draw(self, params: Mapping[str, object], rng: np.random.Generator, *, length_biased: bool = False,
             size: int | None = None) -> np.ndarray:
        """One draw per element of the broadcast ``params`` (or ``size`` draws of scalar params).

        With ``length_biased`` the draws come from the length-biased density
        :math:`x f(x) / E[X]`: the gap that covers a random instant of a stationary renewal process
        (its first arrival comes ``U`` times such a gap after the instant, ``U`` uniform).
        """
        p = self._arrays(params)
        sizes = {v.shape for v in p.values()}
        if size is None and len(sizes) == 1 and len(next(iter(sizes))) == 1:
            # every parameter already one flat array of one length (the generator's per-unit
            # calls): the same draws without the broadcasting (~20 us a call)
            unit = self._draw({k: p[k] for k in self.shape_names}, next(iter(sizes))[0], rng,
                              length_biased=length_biased)
            return unit * p["scale"]
        shape = (int(size),) if size is not None else np.broadcast(*p.values()).shape
        flat = {k: np.broadcast_to(v, shape).reshape(-1) for k, v in p.items()}
        n = int(np.prod(shape, dtype=np.int64))
        unit = self._draw({k: flat[k] for k in self.shape_names}, n, rng, length_biased=length_biased)
        return (unit * flat["scale"]).reshape(shape)


class ExponentialFamily(ArrivalFamily):
    r"""Exponential with ``loc = 0``: :math:`f(x) = e^{-x/s}/s`; the MLE is ``scale = mean(x)``.

    CV 1 (:meth:`shapes_from_cv` has no shape to set); ServeGen writes it as ``Gamma`` with a = 1.
    """

    def __init__(self) -> None:
        super().__init__("exponential", "expon", ("scale",))

    def _fit_segments(self, x, seg, n_seg):
        n = np.bincount(seg, minlength=n_seg)
        return {"scale": segment_mean(x, seg, n)}, n > 0

    def _logpdf(self, x, p):
        return -np.log(p["scale"]) - x / p["scale"]

    def _cdf(self, x, p):
        return -np.expm1(-x / p["scale"])

    def mean(self, params):
        return self._arrays(params)["scale"]

    def cv(self, params):
        return np.asarray(1.0)

    def shapes_from_cv(self, cv):
        return {}

    def _draw(self, p, n, rng, *, length_biased):
        return rng.standard_gamma(2.0, n) if length_biased else rng.standard_exponential(n)


class LognormalFamily(ArrivalFamily):
    r"""Log-normal with ``loc = 0``; closed-form MLE ``s = std(ln x)``, ``scale = exp(mean(ln x))``.

    .. math:: f(x) = \frac{1}{x s \sqrt{2\pi}} \exp\left(-\frac{(\ln x - \ln \mathrm{scale})^2}{2 s^2}\right),
       \quad \mathrm{CV} = \sqrt{e^{s^2} - 1}
    """

    draw_bounds = MappingProxyType({"s": (1e-6, 3.0)})  # CV <= 90
    _open_at_zero = True

    def __init__(self) -> None:
        super().__init__("lognormal", "lognorm", ("s", "scale"))

    def _fit_segments(self, x, seg, n_seg):
        n = np.bincount(seg, minlength=n_seg)
        logx = np.log(x)
        mu = segment_mean(logx, seg, n)
        sigma = np.sqrt(segment_mean((logx - mu[seg]) ** 2, seg, n))
        return {"s": sigma, "scale": np.exp(mu)}, sigma > 0

    def _logpdf(self, x, p):
        logx = np.log(x)
        z = (logx - np.log(p["scale"])) / p["s"]
        return -logx - np.log(p["s"]) - 0.5 * np.log(2 * np.pi) - 0.5 * z * z

    def _cdf(self, x, p):
        with np.errstate(divide="ignore"):
            return special.ndtr((np.log(x) - np.log(p["scale"])) / p["s"])

    def mean(self, params):
        p = self._arrays(params)
        return p["scale"] * np.exp(0.5 * p["s"] ** 2)

    def cv(self, params):
        s = self._arrays(params, ("s",))["s"]
        return np.sqrt(np.expm1(s * s))

    def shapes_from_cv(self, cv):
        cv = np.asarray(cv, dtype=float)
        with np.errstate(invalid="ignore"):
            return {"s": np.where(cv > 0, np.sqrt(np.log1p(cv * cv)), np.nan)}

    def _draw(self, p, n, rng, *, length_biased):
        s = p["s"]
        z = rng.standard_normal(n)
        # x f(x) of a log-normal is the log-normal with ln-mean shifted by s^2
        return np.exp(s * z + (s * s if length_biased else 0.0))


class GammaFamily(ArrivalFamily):
    r"""Gamma with ``loc = 0``: :math:`f(x) = x^{a-1} e^{-x/\mathrm{scale}} / (\Gamma(a)\, \mathrm{scale}^a)`.

    CV = :math:`1/\sqrt{a}`; BurstGPT's rate :math:`\beta` = 1 / scale. Fitted by Newton's method
    (:func:`~servelab.fitting.segments.gamma_mle_from_stats`, many samples at once).

    Parameters
    ----------
    max_iter : int
        Newton iteration limit (a result that hits it says ``converged=False``).
    """

    servegen_name = "Gamma"
    draw_bounds = MappingProxyType({"a": (1e-4, np.inf)})  # CV <= 100

    def __init__(self, *, max_iter: int = 50) -> None:
        super().__init__("gamma", "gamma", ("a", "scale"))
        self.max_iter = max_iter

    def _fit_segments(self, x, seg, n_seg):
        n = np.bincount(seg, minlength=n_seg)
        a, scale, converged = gamma_mle_from_stats(segment_mean(x, seg, n), segment_mean(np.log(x), seg, n),
                                                   max_iter=self.max_iter)
        return {"a": a, "scale": scale}, converged

    @staticmethod
    def _density(x, a, s, log_norm):
        """The log density, with :math:`-\\ln\\Gamma(a) - a \\ln s` given (per value or per segment)."""
        return special.xlogy(a - 1.0, x) - x / s + log_norm

    def _logpdf(self, x, p):
        a, s = p["a"], p["scale"]
        return self._density(x, a, s, -special.gammaln(a) - a * np.log(s))

    def _logpdf_segments(self, x, seg, params):
        # the same density, its normalising constant computed once per segment
        a, s = params["a"], params["scale"]
        return self._density(x, a[seg], s[seg], (-special.gammaln(a) - a * np.log(s))[seg])

    def _cdf(self, x, p):
        return special.gammainc(p["a"], x / p["scale"])

    def mean(self, params):
        p = self._arrays(params)
        return p["a"] * p["scale"]

    def cv(self, params):
        with np.errstate(divide="ignore", invalid="ignore"):
            return 1.0 / np.sqrt(self._arrays(params, ("a",))["a"])

    def shapes_from_cv(self, cv):
        cv = np.asarray(cv, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return {"a": np.where(cv > 0, 1.0 / (cv * cv), np.nan)}

    def _draw(self, p, n, rng, *, length_biased):
        return rng.standard_gamma(p["a"] + (1.0 if length_biased else 0.0))


#: Lanczos coefficients (g = 7, 9 terms): log Gamma to ~1e-15 relative for x >= 0.5
_LANCZOS = (0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
            12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7)


#: zeta(2), zeta(3), zeta(4), zeta(5)
_ZETA = (1.6449340668482264, 1.2020569031595942, 1.0823232337111382, 1.0369277551433699)


def _gammaln(x) -> np.ndarray:
    """log Gamma(x) for x > 0, vectorised in numpy (Lanczos): the arrival families' means and CVs
    need it when a generator draws, and importing scipy.special for it would cost more than the
    draws of a short workload. NaN outside x > 0."""
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        small = x < 0.5
        z = np.where(small, x + 1.0, x) - 1.0  # Gamma(x) = Gamma(x + 1) / x below 0.5
        a = np.full(z.shape, _LANCZOS[0])
        for i, coef in enumerate(_LANCZOS[1:], start=1):  # nine terms
            a = a + coef / (z + i)
        t = z + 7.5
        out = 0.5 * np.log(2 * np.pi) + (z + 0.5) * np.log(t) - t + np.log(a)
        out = np.where(small, out - np.log(x), out)
        out = np.where(np.isposinf(x), np.inf, out)
    return np.where(x > 0, out, np.nan)


def _weibull_cv(c: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # for very large c the difference rounds to a tiny negative number: the CV is 0 there
        e = 1.0 / np.asarray(c, dtype=float)
        diff = _gammaln(1 + 2 * e) - 2 * _gammaln(1 + e)
        # c > 1000: the two terms cancel; the series of log Gamma(1 + z) gives their difference
        series = e**2 * (_ZETA[0] + e * (-2 * _ZETA[1] + e * (3.5 * _ZETA[2] - 6 * _ZETA[3] * e)))
        diff = np.where(e < 1e-3, series, diff)
        return np.sqrt(np.maximum(np.expm1(diff), 0.0))


class WeibullFamily(ArrivalFamily):
    r"""Weibull with ``loc = 0``: :math:`f(x) = \frac{c}{\lambda} (x/\lambda)^{c-1} e^{-(x/\lambda)^c}`.

    Fitted by :func:`~servelab.fitting.segments.weibull_mle_segments` (a safeguarded Newton /
    bisection solve of the profile score in ``c``, many samples at once).
    :math:`\mathrm{CV} = \sqrt{\Gamma(1 + 2/c) / \Gamma(1 + 1/c)^2 - 1}`.

    Parameters
    ----------
    max_iter : int
        Iteration limit (a result that hits it says ``converged=False``).
    tol : float
        Relative tolerance on ``c``.
    """

    servegen_name = "Weibull"
    draw_bounds = MappingProxyType({"c": (0.1, np.inf)})  # CV <= ~430

    def __init__(self, *, max_iter: int = 60, tol: float = 1e-9) -> None:
        super().__init__("weibull", "weibull_min", ("c", "scale"))
        self.max_iter = max_iter
        self.tol = tol

    def _fit_segments(self, x, seg, n_seg):
        c, scale, converged = weibull_mle_segments(x, seg, n_seg, max_iter=self.max_iter, tol=self.tol)
        return {"c": c, "scale": scale}, converged

    @staticmethod
    def _density(x, c, s, log_norm):
        """The log density, with :math:`\\ln(c / s)` given (per value or per segment)."""
        y = x / s
        return log_norm + special.xlogy(c - 1.0, y) - y**c

    def _logpdf(self, x, p):
        c, s = p["c"], p["scale"]
        return self._density(x, c, s, np.log(c / s))

    def _logpdf_segments(self, x, seg, params):
        c, s = params["c"], params["scale"]
        return self._density(x, c[seg], s[seg], np.log(c / s)[seg])

    def _cdf(self, x, p):
        return -np.expm1(-((x / p["scale"]) ** p["c"]))

    def mean(self, params):
        p = self._arrays(params)
        with np.errstate(over="ignore"):
            return p["scale"] * np.exp(_gammaln(1.0 + 1.0 / p["c"]))

    def cv(self, params):
        return _weibull_cv(self._arrays(params, ("c",))["c"])

    def shapes_from_cv(self, cv):
        # CV decreases in c: bisection on ln c over [ln 0.05, ln 1e4], vectorised
        cv = np.asarray(cv, dtype=float)
        lo = np.full(cv.shape, np.log(0.05))
        hi = np.full(cv.shape, np.log(1e4))
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            above = _weibull_cv(np.exp(mid)) > cv
            lo = np.where(above, mid, lo)
            hi = np.where(above, hi, mid)
        ok = np.isfinite(cv) & (cv > 0) & (cv < _weibull_cv(np.asarray(0.05)))
        return {"c": np.where(ok, np.exp(0.5 * (lo + hi)), np.nan)}

    def _draw(self, p, n, rng, *, length_biased):
        c = p["c"]
        if length_biased:  # x f(x) for Weibull: (x/s)^c ~ Gamma(1 + 1/c)
            return rng.standard_gamma(1.0 + 1.0 / c) ** (1.0 / c)
        return rng.weibull(c)


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
    if name not in _REGISTRY:
        _register_length_families()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownFamilyError(f"unknown family {name!r}; registered families: {sorted(_REGISTRY)}") from None


def _register_length_families() -> None:
    """Import the modules whose length families register themselves (heavy tails, mixtures)."""
    importlib.import_module("servelab.fitting.heavy_tail")
    importlib.import_module("servelab.fitting.mixtures")


def get_arrival_family(name: str | Family) -> ArrivalFamily:
    """Look up a family that implements the arrival protocol (:class:`ArrivalFamily`).

    Raises
    ------
    UnknownFamilyError
        If ``name`` is not registered or is not an arrival family.
    """
    family = get_family(name)
    if not isinstance(family, ArrivalFamily):
        raise UnknownFamilyError(f"family {family.name!r} is not an arrival family; arrival families: "
                                 f"{list(arrival_family_names())}")
    return family


def family_names() -> tuple[str, ...]:
    """Names of all registered families."""
    _register_length_families()
    return tuple(sorted(_REGISTRY))


def arrival_family_names() -> tuple[str, ...]:
    """Names of the registered families that implement :class:`ArrivalFamily`, in registration order."""
    return tuple(name for name, fam in _REGISTRY.items() if isinstance(fam, ArrivalFamily))


def arrival_param_names() -> tuple[str, ...]:
    """Every parameter name of every arrival family (``a``, ``c``, ``s``, ``scale``, ...), once each.

    These are the per-window parameter columns of a client pool's ``arrivals`` table.
    """
    names: list[str] = []
    for fam in _REGISTRY.values():
        if isinstance(fam, ArrivalFamily):
            names += [p for p in fam.param_names if p not in names]
    return tuple(names)


def arrival_param_columns() -> tuple[str, ...]:
    """The per-window parameter columns of a pool's ``arrivals`` table: every arrival family's
    shapes (:func:`arrival_param_names`), then ``scale``."""
    names = arrival_param_names()
    return tuple(n for n in names if n != "scale") + ("scale",)


register_family(ExponentialFamily())
register_family(GammaFamily())
register_family(WeibullFamily())
register_family(LognormalFamily())

#: the families compared for inter-arrival gaps (ServeGen Fig. 1d)
ARRIVAL_FAMILIES = ("exponential", "gamma", "weibull", "lognormal")
