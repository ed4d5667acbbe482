r"""Two-component mixtures for request data, a bimodality test, and the length-fit comparison.

Families registered here (one registry, :mod:`servelab.fitting.families`)
-------------------------------------------------------------------------
``lognormal_pareto``
    ServeGen's input-length model: a LogNormal body ("Input Fit") mixed with a Pareto tail
    ("Input Tail Fit"),

    .. math:: f(x) = w \, \frac{1}{x\sigma\sqrt{2\pi}} e^{-(\ln x - \mu)^2 / 2\sigma^2}
              + (1 - w) \, \frac{\alpha x_{\min}^{\alpha}}{x^{\alpha+1}} \mathbf{1}[x \ge x_{\min}]

    Params ``weight`` (of the LogNormal), ``mu``, ``sigma``, ``alpha``, ``x_min``. For each
    candidate ``x_min`` (a grid of sample quantiles, refined around the best) the other four are
    maximum-likelihood estimates by EM with closed-form M-steps; the ``x_min`` with the largest
    likelihood wins (a profile likelihood). Integer data are compressed to distinct values with
    counts first, so 10^6 token counts cost about as much as their few thousand distinct values;
    a candidate ``x_min`` sits half-way between integers so that ties never sit on the Pareto's
    edge (where the likelihood is unbounded in ``alpha``). Values of 10^7 tokens go to the Pareto
    part and leave the body untouched.
``lognormal_mixture``
    Two LogNormals, for bimodal output lengths (BurstGPT's ChatGPT responses),

    .. math:: f(x) = \sum_{j=1}^{2} w_j \frac{1}{x\sigma_j\sqrt{2\pi}} e^{-(\ln x - \mu_j)^2 / 2\sigma_j^2}

    Params ``weight`` (of component 1, the one with the smaller ``mu``), ``mu1``, ``sigma1``,
    ``mu2``, ``sigma2``. EM on ``ln x`` weighted by counts.
``normal_mixture``
    Two Gaussians on the real line, for per-request ratios (the reason ratio); same params.
``normal``
    One Gaussian (``loc``, ``scale``), the one-component reference for ``normal_mixture``.

Also here: :func:`bimodality` (two components vs one by BIC plus Hartigan's dip test from the
``diptest`` package) and :func:`compare_length_fits` (the mixture against single LogNormal,
Pareto, Exponential and Zipf by AIC and KS distance, through the project's one comparison,
:func:`servelab.fitting.compare.compare_families`). :func:`explore_scipy_families` scans many
scipy families with ``fitter`` (the optional extra ``servelab[explore]``, imported only when
called); it is exploration only and never on a default path.

This module fits arrays; it reads no store (the caller excludes failed requests first) and
never imports matplotlib.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import polars as pl
from scipy import special

import servelab.fitting.heavy_tail  # noqa: F401  (registers pareto and zipf, compared here)
from servelab.fitting.exceptions import ConvergenceWarning, InsufficientDataError
from servelab.fitting.families import Family, ParamFit, family_names, register_family
from servelab.fitting.fit import fit_family
from servelab.fitting.compare import FamilyComparison, compare_families

__all__ = [
    "LogNormalParetoMixture",
    "LogNormalMixture",
    "NormalMixture",
    "NormalFamily",
    "Bimodality",
    "bimodality",
    "compare_length_fits",
    "explore_scipy_families",
    "INPUT_LENGTH_FAMILIES",
    "OUTPUT_LENGTH_FAMILIES",
]

#: families compared for input lengths (ServeGen Finding 3 and BurstGPT's Zipf)
INPUT_LENGTH_FAMILIES = ("lognormal_pareto", "lognormal", "pareto", "exponential", "zipf")
#: families compared for output lengths (ServeGen's Exponential, BurstGPT's bimodal responses)
OUTPUT_LENGTH_FAMILIES = ("exponential", "lognormal", "lognormal_mixture", "lognormal_pareto", "pareto", "zipf")

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


# ----------------------------------------------------------------------------------------------
# helpers


def _compress(x: np.ndarray, max_distinct: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Distinct values with counts; above ``max_distinct`` a deterministic thinning of the order
    statistics (every k-th, weight k) stands in for the sample. Returns (values, weights, thinned)."""
    values, counts = np.unique(x, return_counts=True)
    if values.size <= max_distinct:
        return values, counts.astype(float), False
    xs = np.sort(x)
    step = int(math.ceil(xs.size / max_distinct))
    picked = xs[step // 2 :: step]
    values, counts = np.unique(picked, return_counts=True)
    return values, counts.astype(float) * (xs.size / picked.size), True


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q: Sequence[float]) -> np.ndarray:
    cum = np.cumsum(weights)
    cum /= cum[-1]
    idx = np.searchsorted(cum, np.asarray(q, dtype=float), side="left")
    return values[np.clip(idx, 0, values.size - 1)]


def _is_integer_valued(x: np.ndarray) -> bool:
    return bool(np.all(x == np.round(x)))


# ----------------------------------------------------------------------------------------------
# LogNormal body + Pareto tail


def _ln_pareto_em(values, weights, logv, t, *, max_iter, tol, alpha_max, sigma_floor):
    """EM for fixed ``x_min = t``: returns (params, loglik, converged)."""
    n = weights.sum()
    tail = values >= t
    log_ratio = np.where(tail, np.log(np.maximum(values, t) / t), 0.0)
    wt = weights[tail]
    if wt.sum() <= 0:
        return None
    # start: body from the values below t, tail from the values above
    body = ~tail
    wb = weights[body] if body.any() else weights
    lb = logv[body] if body.any() else logv
    mu = float(np.sum(wb * lb) / wb.sum())
    sigma = max(float(np.sqrt(np.sum(wb * (lb - mu) ** 2) / wb.sum())), sigma_floor)
    alpha = min(float(wt.sum() / max(np.sum(wt * log_ratio[tail]), 1e-300)), alpha_max)
    w = float(min(max(weights[body].sum() / n, 0.05), 0.95))
    loglik_prev = -np.inf
    converged = False
    log_tail_base = np.where(tail, -logv, -np.inf)  # -ln x on the tail, impossible below
    for _ in range(max_iter):
        l1 = math.log(w) - logv - math.log(sigma) - _LOG_SQRT_2PI - 0.5 * ((logv - mu) / sigma) ** 2
        l2 = (math.log1p(-w) if w < 1 else -np.inf) + math.log(alpha) - alpha * log_ratio + log_tail_base
        lse = np.logaddexp(l1, l2)
        loglik = float(np.sum(weights * lse))
        r = np.exp(l1 - lse)
        c1 = weights * r
        c2 = weights - c1
        w1 = c1.sum()
        w = float(min(max(w1 / n, 1e-12), 1 - 1e-12))
        mu = float(np.sum(c1 * logv) / w1)
        sigma = max(float(np.sqrt(np.sum(c1 * (logv - mu) ** 2) / w1)), sigma_floor)
        denom = float(np.sum(c2 * log_ratio))
        alpha = float(min(c2.sum() / denom, alpha_max)) if denom > 0 else alpha_max
        if loglik - loglik_prev <= tol * abs(loglik):
            converged = True
            break
        loglik_prev = loglik
    return {"weight": w, "mu": mu, "sigma": sigma, "alpha": alpha, "x_min": float(t)}, loglik, converged


class LogNormalParetoMixture(Family):
    """LogNormal body + Pareto tail, fitted by EM on a profile-likelihood grid of ``x_min``.

    Parameters
    ----------
    quantiles : sequence of float
        Sample quantiles tried as ``x_min`` before refinement.
    max_iter : int
        EM iterations per candidate ``x_min``.
    tol : float
        Relative log-likelihood change that stops EM.
    alpha_max : float
        Cap on the Pareto exponent (the likelihood is unbounded as alpha grows when the tail
        collapses onto ``x_min``).
    min_tail : int
        Fewest observations at or above a candidate ``x_min``.
    max_distinct : int
        Above this many distinct values, the ``x_min`` search runs on a deterministic thinning of
        the order statistics; the final EM always uses every value.
    """

    name = "lognormal_pareto"
    param_names = ("weight", "mu", "sigma", "alpha", "x_min")
    min_n = 20

    def __init__(self, *, quantiles: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995),
                 max_iter: int = 400, tol: float = 1e-10, alpha_max: float = 50.0, min_tail: int = 10,
                 max_distinct: int = 10_000):
        self.quantiles = tuple(quantiles)
        self.max_iter = max_iter
        self.tol = tol
        self.alpha_max = alpha_max
        self.min_tail = min_tail
        self.max_distinct = max_distinct

    def validate_sample(self, x: np.ndarray) -> np.ndarray:
        x = super().validate_sample(x)
        if np.any(x <= 0):
            raise InsufficientDataError(
                f"{self.name} needs positive values; got {int(np.sum(x <= 0))} values <= 0 (exclude failed requests)")
        if np.unique(x[: min(x.size, 10_000)]).size < 3 and np.unique(x).size < 3:
            raise InsufficientDataError(f"{self.name} needs at least 3 distinct values; got {np.unique(x).size}")
        return x

    def _candidates(self, values, weights, integer: bool, qs) -> np.ndarray:
        cand = _weighted_quantile(values, weights, qs).astype(float)
        if integer:
            cand = cand - 0.5
        cand = np.unique(cand[cand > values[0]])
        # enough tail mass
        tail_counts = np.array([weights[values >= t].sum() for t in cand])
        return cand[tail_counts >= self.min_tail]

    def fit_params(self, x: np.ndarray) -> ParamFit:
        integer = _is_integer_valued(x)
        values, weights, thinned = _compress(x, self.max_distinct)
        logv = np.log(values)
        sigma_floor = 1e-3
        kw = dict(max_iter=self.max_iter, tol=self.tol, alpha_max=self.alpha_max, sigma_floor=sigma_floor)
        search_kw = {**kw, "tol": max(self.tol, 1e-9)}

        def run(cands):
            out = []
            for t in cands:
                res = _ln_pareto_em(values, weights, logv, t, **search_kw)
                if res is not None:
                    out.append(res)
            return out

        cands = self._candidates(values, weights, integer, self.quantiles)
        if cands.size == 0:
            raise InsufficientDataError(
                f"{self.name}: no candidate x_min leaves at least {self.min_tail} observations in the tail "
                f"(n={x.size}, {values.size} distinct values)")
        results = run(cands)
        # refine twice: 9 candidates between the neighbours of the best x_min so far
        tried = set(cands.tolist())
        for _ in range(2):
            grid = np.array(sorted(tried))
            best_t = max(results, key=lambda r: r[1])[0]["x_min"]
            i = int(np.searchsorted(grid, best_t))
            lo, hi = grid[max(0, i - 1)], grid[min(grid.size - 1, i + 1)]
            q_lo, q_hi = (float(np.sum(weights[values < v]) / weights.sum()) for v in (lo, hi))
            fine = self._candidates(values, weights, integer, np.linspace(q_lo, q_hi, 9))
            fine = np.array([t for t in fine if t not in tried])
            tried.update(fine.tolist())
            results += run(fine)
        # a tail collapsing onto one heavily tied value (e.g. lengths clipped at a context limit)
        # drives alpha to its cap with an ever-growing likelihood: such candidates lose to any other
        proper = [r for r in results if r[0]["alpha"] < self.alpha_max * (1 - 1e-9)]
        params, loglik, converged = max(proper or results, key=lambda r: r[1])
        if thinned:
            values, weights, _ = _compress(x, np.inf)
            # polish on every distinct value: to convergence when they are few (integer lengths),
            # a few steps from the thinned optimum when the data are continuous and huge
            polish = self.max_iter if values.size <= 10 * self.max_distinct else 15
            res = _ln_pareto_em(values, weights, np.log(values), params["x_min"], **{**kw, "max_iter": polish})
            params, loglik, _ = res
        if params["alpha"] >= self.alpha_max * (1 - 1e-9):
            warnings.warn(f"{self.name}: Pareto alpha hit its cap {self.alpha_max}", ConvergenceWarning, stacklevel=3)
            converged = False
        return ParamFit(params, converged)

    def logpdf(self, x, params: Mapping[str, float]) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        w, mu, sigma = float(params["weight"]), float(params["mu"]), float(params["sigma"])
        alpha, x_min = float(params["alpha"]), float(params["x_min"])
        with np.errstate(divide="ignore", invalid="ignore"):
            lx = np.log(x)
            l1 = np.log(w) - lx - np.log(sigma) - _LOG_SQRT_2PI - 0.5 * ((lx - mu) / sigma) ** 2
            l2 = np.log1p(-w) + np.log(alpha) + alpha * np.log(x_min) - (alpha + 1) * lx
            l2 = np.where(x >= x_min, l2, -np.inf)
            out = np.logaddexp(l1, l2)
        return np.where(x > 0, out, -np.inf)

    def cdf(self, x, params: Mapping[str, float]) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        w, mu, sigma = float(params["weight"]), float(params["mu"]), float(params["sigma"])
        alpha, x_min = float(params["alpha"]), float(params["x_min"])
        with np.errstate(divide="ignore", invalid="ignore"):
            body = special.ndtr((np.log(np.maximum(x, 1e-300)) - mu) / sigma)
            tail = np.where(x >= x_min, 1.0 - (x_min / x) ** alpha, 0.0)
        return np.where(x > 0, w * body + (1 - w) * tail, 0.0)

    def rvs(self, params: Mapping[str, float], size: int, rng: np.random.Generator) -> np.ndarray:
        w, mu, sigma = float(params["weight"]), float(params["mu"]), float(params["sigma"])
        alpha, x_min = float(params["alpha"]), float(params["x_min"])
        pick = rng.random(size) < w
        body = np.exp(mu + sigma * rng.standard_normal(size))
        tail = x_min * (1.0 - rng.random(size)) ** (-1.0 / alpha)
        return np.where(pick, body, tail)


# ----------------------------------------------------------------------------------------------
# two Gaussians (on x, or on ln x)


def _gauss2_em(y, weights, *, max_iter=2000, tol=1e-10, sigma_floor=1e-6, starts=((0.25, 0.75), (0.1, 0.6), (0.4, 0.9))):
    """Weighted EM for a two-Gaussian mixture; best of a few quantile starts.

    Returns (params, loglik, converged) with ``mu1 <= mu2``.
    """
    n = weights.sum()
    mean = float(np.sum(weights * y) / n)
    sd = float(np.sqrt(np.sum(weights * (y - mean) ** 2) / n))
    best = None
    for q1, q2 in starts:
        m1, m2 = (float(v) for v in _weighted_quantile(y, weights, (q1, q2)))
        if m1 == m2:
            m1, m2 = mean - sd / 2, mean + sd / 2
        s1 = s2 = max(sd / 2, sigma_floor)
        w = 0.5
        prev = -np.inf
        converged = False
        for _ in range(max_iter):
            l1 = math.log(w) - math.log(s1) - _LOG_SQRT_2PI - 0.5 * ((y - m1) / s1) ** 2
            l2 = math.log1p(-w) - math.log(s2) - _LOG_SQRT_2PI - 0.5 * ((y - m2) / s2) ** 2
            lse = np.logaddexp(l1, l2)
            loglik = float(np.sum(weights * lse))
            r = np.exp(l1 - lse)
            c1 = weights * r
            c2 = weights - c1
            a, b = c1.sum(), c2.sum()
            if a <= 0 or b <= 0:
                break
            w = float(min(max(a / n, 1e-12), 1 - 1e-12))
            m1 = float(np.sum(c1 * y) / a)
            m2 = float(np.sum(c2 * y) / b)
            s1 = max(float(np.sqrt(np.sum(c1 * (y - m1) ** 2) / a)), sigma_floor)
            s2 = max(float(np.sqrt(np.sum(c2 * (y - m2) ** 2) / b)), sigma_floor)
            if loglik - prev <= tol * abs(loglik):
                converged = True
                break
            prev = loglik
        if best is None or loglik > best[1]:
            if m1 > m2:
                m1, m2, s1, s2, w = m2, m1, s2, s1, 1 - w
            best = ({"weight": w, "mu1": m1, "sigma1": s1, "mu2": m2, "sigma2": s2}, loglik, converged)
    return best


def _gauss2_logpdf(y, params):
    w, m1, s1, m2, s2 = (float(params[k]) for k in ("weight", "mu1", "sigma1", "mu2", "sigma2"))
    with np.errstate(divide="ignore"):
        l1 = np.log(w) - np.log(s1) - _LOG_SQRT_2PI - 0.5 * ((y - m1) / s1) ** 2
        l2 = np.log1p(-w) - np.log(s2) - _LOG_SQRT_2PI - 0.5 * ((y - m2) / s2) ** 2
    return np.logaddexp(l1, l2)


def _gauss2_cdf(y, params):
    w, m1, s1, m2, s2 = (float(params[k]) for k in ("weight", "mu1", "sigma1", "mu2", "sigma2"))
    return w * special.ndtr((y - m1) / s1) + (1 - w) * special.ndtr((y - m2) / s2)


def _gauss2_rvs(params, size, rng):
    w, m1, s1, m2, s2 = (float(params[k]) for k in ("weight", "mu1", "sigma1", "mu2", "sigma2"))
    pick = rng.random(size) < w
    z = rng.standard_normal(size)
    return np.where(pick, m1 + s1 * z, m2 + s2 * z)


class _Gauss2Base(Family):
    param_names = ("weight", "mu1", "sigma1", "mu2", "sigma2")
    min_n = 10

    def __init__(self, *, max_iter: int = 1000, tol: float = 1e-9, max_distinct: int = 200_000):
        self.max_iter = max_iter
        self.tol = tol
        self.max_distinct = max_distinct

    def validate_sample(self, x: np.ndarray) -> np.ndarray:
        x = super().validate_sample(x)
        if np.unique(x).size < 3:
            raise InsufficientDataError(f"{self.name} needs at least 3 distinct values; got {np.unique(x).size}")
        return x

    def _fit_y(self, y: np.ndarray) -> ParamFit:
        values, weights, _ = _compress(y, self.max_distinct)
        spread = float(values[-1] - values[0])
        params, _, converged = _gauss2_em(values, weights, max_iter=self.max_iter, tol=self.tol,
                                          sigma_floor=max(spread * 1e-4, 1e-9))
        if not converged:
            warnings.warn(f"{self.name}: EM did not converge in {self.max_iter} iterations", ConvergenceWarning,
                          stacklevel=4)
        return ParamFit(params, converged)


class NormalMixture(_Gauss2Base):
    r"""Two Gaussians on the real line (per-request ratios); ``mu1 <= mu2``.

    .. math:: f(y) = w\,\phi(y; \mu_1, \sigma_1) + (1 - w)\,\phi(y; \mu_2, \sigma_2)
    """

    name = "normal_mixture"

    def fit_params(self, x) -> ParamFit:
        return self._fit_y(np.asarray(x, dtype=float))

    def logpdf(self, x, params):
        return _gauss2_logpdf(np.asarray(x, dtype=float), params)

    def cdf(self, x, params):
        return _gauss2_cdf(np.asarray(x, dtype=float), params)

    def rvs(self, params, size, rng):
        return _gauss2_rvs(params, size, rng)


class LogNormalMixture(_Gauss2Base):
    """Two LogNormals (bimodal output lengths): a two-Gaussian mixture on ``ln x``."""

    name = "lognormal_mixture"

    def validate_sample(self, x):
        x = super().validate_sample(x)
        if np.any(x <= 0):
            raise InsufficientDataError(
                f"{self.name} needs positive values; got {int(np.sum(x <= 0))} values <= 0 (exclude failed requests)")
        return x

    def fit_params(self, x) -> ParamFit:
        return self._fit_y(np.log(np.asarray(x, dtype=float)))

    def logpdf(self, x, params):
        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            lx = np.log(x)
            out = _gauss2_logpdf(lx, params) - lx
        return np.where(x > 0, out, -np.inf)

    def cdf(self, x, params):
        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore"):
            return np.where(x > 0, _gauss2_cdf(np.log(np.maximum(x, 1e-300)), params), 0.0)

    def rvs(self, params, size, rng):
        return np.exp(_gauss2_rvs(params, size, rng))


class NormalFamily(Family):
    """One Gaussian (``loc``, ``scale``), the one-component reference for ratios."""

    name = "normal"
    param_names = ("loc", "scale")
    min_n = 2

    def validate_sample(self, x):
        x = super().validate_sample(x)
        if np.all(x == x[0]):
            raise InsufficientDataError(f"normal: all {x.size} values equal {x[0]!r}; the scale is zero")
        return x

    def fit_params(self, x) -> ParamFit:
        return ParamFit({"loc": float(np.mean(x)), "scale": float(np.std(x))}, True)

    def logpdf(self, x, params):
        z = (np.asarray(x, dtype=float) - params["loc"]) / params["scale"]
        return -np.log(params["scale"]) - _LOG_SQRT_2PI - 0.5 * z * z

    def cdf(self, x, params):
        return special.ndtr((np.asarray(x, dtype=float) - params["loc"]) / params["scale"])

    def rvs(self, params, size, rng):
        return params["loc"] + params["scale"] * rng.standard_normal(size)


for _family in (LogNormalParetoMixture(), LogNormalMixture(), NormalMixture(), NormalFamily()):
    if _family.name not in family_names():
        register_family(_family)


# ----------------------------------------------------------------------------------------------
# bimodality


@dataclass(frozen=True)
class Bimodality:
    r"""Is a sample bimodal? Two Gaussian components vs one by BIC, and Hartigan's dip test.

    Parameters
    ----------
    n : int
        Observations used (after subsampling).
    bic_one, bic_two : float
        BIC of one Gaussian and of the two-component mixture.
    delta_bic : float
        ``bic_one - bic_two`` (positive favours two components; > 10 is "very strong").
    dip, dip_p_value : float
        Hartigan's dip statistic and its p-value (``diptest`` package; small p rejects
        unimodality).
    mixture : Mapping
        The two-component parameters (``weight``, ``mu1``, ``sigma1``, ``mu2``, ``sigma2``).
    ashman_d : float
        Separation :math:`D = \sqrt{2}|\mu_1 - \mu_2| / \sqrt{\sigma_1^2 + \sigma_2^2}`
        (D > 2 is needed for two clean modes).
    bimodal : bool
        ``dip_p_value < alpha`` and ``delta_bic > 10``.
    notes : tuple of str
        Subsampling and tie jittering done before testing.
    """

    n: int
    bic_one: float
    bic_two: float
    delta_bic: float
    dip: float
    dip_p_value: float
    mixture: Mapping[str, float]
    ashman_d: float
    bimodal: bool
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "mixture", MappingProxyType(dict(self.mixture)))
        object.__setattr__(self, "notes", tuple(self.notes))

    def to_dict(self) -> dict:
        return {"n": self.n, "bic_one": self.bic_one, "bic_two": self.bic_two, "delta_bic": self.delta_bic,
                "dip": self.dip, "dip_p_value": self.dip_p_value, "ashman_d": self.ashman_d,
                "bimodal": self.bimodal, **{f"mixture_{k}": v for k, v in self.mixture.items()},
                "notes": list(self.notes)}


def bimodality(x, *, max_n: int = 50_000, alpha: float = 0.05, seed: int = 0, jitter_ties: bool = True) -> Bimodality:
    """Test a sample for two modes: two-Gaussian mixture vs one Gaussian by BIC, plus the dip test.

    Parameters
    ----------
    x : array-like
        The sample (e.g. per-request reason ratios), finite values.
    max_n : int
        Above this size a seeded random subsample of ``max_n`` is tested (noted).
    alpha : float
        Level of the dip test.
    seed : int
        Seed of the subsample and of the tie jitter.
    jitter_ties : bool
        The dip test assumes a continuous sample: binned data (e.g. ratios on 501 bins) have
        ECDF jumps that alone inflate the dip. When ties exist, each value moves uniformly within
        half the smallest gap between distinct values (noted).

    Raises
    ------
    InsufficientDataError
        Fewer than 10 observations, or fewer than 3 distinct values.
    """
    import diptest

    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 10:
        raise InsufficientDataError(f"bimodality needs at least 10 finite observations; got {x.size}")
    notes = []
    rng = np.random.default_rng(seed)
    if x.size > max_n:
        x = rng.choice(x, size=max_n, replace=False)
        notes.append(f"seeded random subsample of {max_n} (seed={seed})")
    distinct = np.unique(x)
    if distinct.size < 3:
        raise InsufficientDataError(f"bimodality needs at least 3 distinct values; got {distinct.size}")
    n = x.size
    one = fit_family(x, "normal")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        two = fit_family(x, "normal_mixture")
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        notes.append("two-component EM stopped at its iteration cap (typical when one mode suffices)")
    bic_one, bic_two = float(one.bic), float(two.bic)
    y = x
    if jitter_ties and distinct.size < n:
        half_gap = float(np.min(np.diff(distinct))) / 2
        y = x + rng.uniform(-half_gap, half_gap, size=n)
        notes.append(f"ties jittered uniformly by +-{half_gap:.3g} before the dip test")
    dip, p = diptest.diptest(np.sort(y))
    m = two.params
    ashman = math.sqrt(2) * abs(m["mu1"] - m["mu2"]) / math.sqrt(m["sigma1"] ** 2 + m["sigma2"] ** 2)
    delta = bic_one - bic_two
    return Bimodality(n=n, bic_one=bic_one, bic_two=bic_two, delta_bic=delta, dip=float(dip),
                      dip_p_value=float(p), mixture=dict(m), ashman_d=float(ashman),
                      bimodal=bool(p < alpha and delta > 10), notes=tuple(notes))


# ----------------------------------------------------------------------------------------------
# comparison


def compare_length_fits(x, *, families: Sequence[str] = INPUT_LENGTH_FAMILIES, max_n: int | None = 1_000_000,
                        seed: int = 0) -> FamilyComparison:
    """Fit each family to lengths ``x`` by maximum likelihood and rank them by AIC (KS D beside it).

    A thin wrapper of :func:`servelab.fitting.compare.compare_families` (one comparison rule
    for the whole project) with the settings lengths need: ties are kept (token counts are
    integers; the discrete ``zipf`` needs them, the continuous families are evaluated at the
    integers), and a family that cannot be fitted (too few samples, zeros, non-integers for
    ``zipf``) is listed in ``failed`` with the reason instead of raising.

    Parameters
    ----------
    x : array-like
        Lengths, failed requests (zero output) already excluded.
    families : sequence of str
        Registered family names; default :data:`INPUT_LENGTH_FAMILIES`.
    max_n : int or None
        Fit on a seeded subsample of this many values when larger (stated in the notes).
    seed : int
        Seed of that subsample.

    Notes
    -----
    AIC here compares a PMF (``zipf``) with densities evaluated at integer lengths; that is a
    fair comparison only when lengths are large integers (the density over a unit interval is then
    close to its value at the integer).
    """
    return compare_families(np.asarray(x, dtype=float), families=families, ties="keep", max_n=max_n, seed=seed)


def explore_scipy_families(x, *, distributions: Sequence[str] | None = None, max_n: int = 20_000,
                           seed: int = 0, timeout: float = 30.0, n_jobs: int = 1) -> pl.DataFrame:
    """Scan many scipy families with ``fitter`` (exploration only; never a default path).

    ``fitter`` fits with a free ``loc`` and reports sum of squared errors against a histogram;
    use it to find candidates, then fit them properly with :func:`compare_length_fits`.

    Parameters
    ----------
    x : array-like
        The sample; above ``max_n`` a seeded subsample of ``max_n`` is used.
    distributions : sequence of str, optional
        scipy names; default ``fitter.get_common_distributions()``.
    max_n, seed : int
        Subsample size and its seed.
    timeout : float
        Seconds per family before fitter gives up on it.
    n_jobs : int
        Threads fitter may use.

    Returns
    -------
    polars.DataFrame
        fitter's summary (distribution, sumsquare_error, aic, bic, kl_div, ks_statistic), best
        first; fitter's naive KS p-value is dropped (see STYLE.md, honest goodness of fit).

    Raises
    ------
    ImportError
        If ``fitter`` is not installed (it is the optional extra ``servelab[explore]``).
    """
    try:
        from fitter import Fitter, get_common_distributions
    except ImportError as exc:
        raise ImportError(
            "explore_scipy_families (servelab lengths --explore) needs the optional package 'fitter'; "
            f"install it with: pip install 'servelab[explore]'; got {exc!r}"
        ) from exc

    x = np.asarray(x, dtype=float)
    if x.size > max_n:
        x = np.random.default_rng(seed).choice(x, size=max_n, replace=False)
    f = Fitter(x, distributions=list(distributions) if distributions else get_common_distributions(),
               timeout=timeout, verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # threads, not fitter's default process pool: no child start-up, nothing left running
        f.fit(progress=False, n_jobs=n_jobs, max_workers=n_jobs, prefer="threads")
    summary = f.summary(Nbest=len(f.fitted_param), plot=False)
    table = pl.from_pandas(summary.reset_index().rename(columns={"index": "distribution"}))
    # fitter's KS p-value tests parameters fitted on the same data (biased): keep D, drop p
    return table.drop([c for c in ("ks_pvalue",) if c in table.columns])
