r"""Bimodality of lattice data (token counts, per-request ratios), decided with separated modes.

Null: *a unimodal law on the data's own lattice*. Two conditions make a sample "bimodal":

1. Hartigan's dip test rejects unimodality at the level, on values spread over their lattice
   cells first: an integer :math:`x` becomes a uniform draw over the image of its cell
   :math:`[x - \tfrac12, x + \tfrac12]` on the analysis scale (the log scale for lengths), seeded.
   The spread sample's density is the histogram of the lattice PMF with cell-sized bins, unimodal
   when the PMF is; jittering by half the smallest gap between distinct *log* values (what
   :func:`servelab.fitting.mixtures.bimodality` does) leaves spikes at small counts and rejects
   round(LogNormal(3.4, 0.3)) with p = 0.
2. The modes are separated: Ashman's :math:`D = \sqrt2\,|\mu_1 - \mu_2| / \sqrt{\sigma_1^2 +
   \sigma_2^2} >` :data:`ASHMAN_D` (2: a clean split) from the maximum-likelihood two-Gaussian
   mixture on the analysis scale (EM on a 1,000-bin histogram: as exact as the data need, and
   fast at n = 50,000), each component weighing at least :data:`MIN_WEIGHT`. A delta-BIC
   alone is not used: at n = 50,000 it favours two components for any non-Gaussian shape.

Power is that of the whole rule against an equal mixture of two Gaussians with Ashman's
:math:`D` = :data:`PAPER_ASHMAN_D` at min(n, 2,000) values (a lower bound above that), simulated
with a fixed seed (the rule is location- and scale-free, so the simulation depends on n only)
and cached by n. Nothing here reads a store or
plots. (Named ``modality`` so that importing it never shadows
:func:`servelab.fitting.mixtures.bimodality`, which ``servelab.fitting`` exports as ``bimodality``.)
"""
from __future__ import annotations

import functools
import math

import numpy as np

from servelab.fitting.exceptions import InsufficientDataError
from servelab.fitting.verdicts import DEFAULT_LEVEL, NullTest, decide

__all__ = [
    "lattice_bimodality",
    "spread_over_cells",
    "ashman_d",
    "ASHMAN_D",
    "PAPER_ASHMAN_D",
    "MIN_WEIGHT",
]

#: Ashman's D above which two modes are separated
ASHMAN_D = 2.0
#: separation of the papers' bimodal response lengths (the power alternative)
PAPER_ASHMAN_D = 3.0
#: smallest weight of either component for a second mode to count
MIN_WEIGHT = 0.05
_POWER_REPLICATES = 100
_POWER_SEED = 20251202


def spread_over_cells(x, *, lattice: float | None = 1.0, log: bool = True, seed: int = 0) -> np.ndarray:
    """Spread lattice values uniformly over their cells, on the analysis scale.

    Parameters
    ----------
    x : array-like
        Values on a lattice of spacing ``lattice`` (e.g. token counts: 1).
    lattice : float or None
        Lattice spacing; None for continuous data (returned as they are, logged if ``log``).
    log : bool
        Analyse on the log scale (values must be >= ``lattice`` / 2 + something positive).
    seed : int
        Seed of the uniform draws.

    Raises
    ------
    ValueError
        If ``log`` and some value's cell reaches 0 (e.g. zero tokens: drop them first).
    """
    x = np.asarray(x, dtype=float)
    if lattice is None:
        if log and np.any(x <= 0):
            raise ValueError(f"log scale needs positive values; got min {x.min()!r}")
        return np.log(x) if log else x.copy()
    if not lattice > 0:
        raise ValueError(f"lattice must be positive or None; got {lattice!r}")
    lo, hi = x - lattice / 2, x + lattice / 2
    u = np.random.default_rng(seed).random(x.size)
    if not log:
        return lo + u * (hi - lo)
    if np.any(lo <= 0):
        raise ValueError(f"log scale needs every cell above 0 (values >= {lattice:g}); got min {x.min()!r}")
    llo, lhi = np.log(lo), np.log(hi)
    return llo + u * (lhi - llo)


def ashman_d(mu1: float, sigma1: float, mu2: float, sigma2: float) -> float:
    """Ashman's D of two Gaussians: sqrt(2) |mu1 - mu2| / sqrt(sigma1^2 + sigma2^2)."""
    return math.sqrt(2.0) * abs(mu1 - mu2) / math.sqrt(sigma1**2 + sigma2**2)


def _mixture(y: np.ndarray, seed: int, *, bins: int = 1000, max_iter: int = 300, tol: float = 1e-8,
             starts: tuple[tuple[float, float], ...] = ((0.25, 0.75), (0.1, 0.6), (0.4, 0.9))
             ) -> tuple[float, dict[str, float]]:
    """Two-Gaussian maximum likelihood by EM on a fine histogram of ``y`` (bin width = range / 1000,
    far below any sigma that matters); best of the quantile ``starts``. ``seed`` is unused (the
    starts are deterministic) and kept for a uniform signature."""
    counts, edges = np.histogram(y, bins=bins)
    keep = counts > 0
    v = ((edges[:-1] + edges[1:]) / 2)[keep]
    w = counts[keep].astype(float)
    n = w.sum()
    floor = (edges[1] - edges[0]) / 2
    cum = np.cumsum(w) / n
    best = None
    for q1, q2 in starts:
        m = v[np.searchsorted(cum, [q1, q2])].astype(float)
        sd = np.full(2, max(float(np.sqrt(np.sum(w * (v - np.sum(w * v) / n) ** 2) / n)) / 2, floor))
        pi = np.array([0.5, 0.5])
        prev = -np.inf
        for _ in range(max_iter):  # EM iterations, each vectorised over the bins
            logp = np.log(pi) - np.log(sd) - 0.5 * ((v[:, None] - m) / sd) ** 2
            top = logp.max(axis=1, keepdims=True)
            lse = top[:, 0] + np.log(np.exp(logp - top).sum(axis=1))
            ll = float(np.sum(w * lse))
            r = w[:, None] * np.exp(logp - lse[:, None])
            tot = r.sum(axis=0)
            if np.any(tot <= 0):
                break
            pi = tot / n
            m = (r * v[:, None]).sum(axis=0) / tot
            sd = np.maximum(np.sqrt((r * (v[:, None] - m) ** 2).sum(axis=0) / tot), floor)
            if ll - prev <= tol * abs(ll):
                break
            prev = ll
        if best is None or ll > best[0]:
            best = (ll, pi.copy(), m.copy(), sd.copy())
    _, pi, m, sd = best
    i, j = np.argsort(m)
    params = {"weight": float(pi[i]), "mu1": float(m[i]), "sigma1": float(sd[i]), "mu2": float(m[j]),
              "sigma2": float(sd[j])}
    return ashman_d(m[i], sd[i], m[j], sd[j]), params


def _holds(y: np.ndarray, level: float, seed: int) -> tuple[bool, float, float, float, dict[str, float]]:
    import diptest

    dip, p = diptest.diptest(np.sort(y))
    d, params = _mixture(y, seed)
    separated = d > ASHMAN_D and min(params["weight"], 1 - params["weight"]) >= MIN_WEIGHT
    return bool(p < level and separated), float(dip), float(p), float(d), params


#: :func:`_simulate_power` at the report's usual (n, level) -- every sample of at least the default
#: ``power_n`` -- computed once (a property of n and the level only: fixed seed), so that a report
#: does not spend a second re-simulating it; tests/fitting/test_modality_power_table.py checks
#: each entry against the simulation
_POWER_TABLE = {(2000, 0.05): 1.0}


@functools.lru_cache(maxsize=64)
def _power(n: int, level: float) -> float:
    """Power of the rule at ``n`` and ``level`` (:data:`_POWER_TABLE`, else :func:`_simulate_power`)."""
    known = _POWER_TABLE.get((int(n), float(level)))
    return known if known is not None else _simulate_power(n, level)


def _simulate_power(n: int, level: float) -> float:
    """P(rule says bimodal) for an equal two-Gaussian mixture with Ashman D = PAPER_ASHMAN_D (fixed
    seed: a property of n and the level only)."""
    import diptest

    rng = np.random.default_rng(_POWER_SEED)
    seed = _POWER_SEED
    half = PAPER_ASHMAN_D / 2  # equal unit sigmas: D = |mu1 - mu2|
    hits = 0
    for _ in range(_POWER_REPLICATES):  # replicates, each vectorised
        y = rng.standard_normal(n) + np.where(rng.random(n) < 0.5, -half, half)
        _, p = diptest.diptest(np.sort(y))
        if p < level:
            d, params = _mixture(y, seed, starts=((0.25, 0.75),))  # symmetric truth: one start
            hits += d > ASHMAN_D and min(params["weight"], 1 - params["weight"]) >= MIN_WEIGHT
    return hits / _POWER_REPLICATES


def lattice_bimodality(x, *, lattice: float | None = 1.0, log: bool = True, level: float = DEFAULT_LEVEL,
                       max_n: int = 50_000, power_n: int = 2_000, seed: int = 0) -> NullTest:
    """Is the distribution of ``x`` bimodal with separated modes?

    Parameters
    ----------
    x : array-like
        The sample: token counts (``lattice=1``, ``log=True``; zeros dropped first) or ratios
        in [0, 1] (``log=False`` with their lattice, or None when continuous).
    lattice : float or None
        Lattice spacing of ``x`` (None: continuous).
    log : bool
        Test on the log scale (lengths) or the original one (ratios).
    level : float
        Level of the dip test.
    max_n : int
        Larger samples are subsampled (seeded) to this size.
    power_n : int
        The power simulation runs at min(n, power_n) (the dip test's power only grows with n, so
        this is a lower bound above it).
    seed : int
        Seed of the subsample and the cell spreading (the power simulation has its own fixed
        seed, so that it is cached by sample size).

    Returns
    -------
    NullTest
        ``value`` is the dip, ``effect_value`` Ashman's D.

    Raises
    ------
    InsufficientDataError
        Fewer than 20 finite values or fewer than 3 distinct ones.
    """
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 20 or np.unique(x).size < 3:
        raise InsufficientDataError(f"bimodality needs >= 20 finite values with >= 3 distinct; got {x.size} values, "
                                    f"{np.unique(x).size} distinct")
    rng = np.random.default_rng(seed)
    note = ""
    if x.size > max_n:
        x = rng.choice(x, size=max_n, replace=False)
        note = f"; a seeded subsample of {max_n}"
    y = spread_over_cells(x, lattice=lattice, log=log, seed=seed)
    holds, dip, p, d, params = _holds(y, level, seed)
    power = _power(int(min(y.size, power_n)), float(level))
    scale = "log scale" if log else "original scale"
    cells = f"values spread uniformly over their lattice cells (spacing {lattice:g}) on the {scale}" if lattice \
        else f"continuous values on the {scale}"
    if p < level and d > ASHMAN_D and not holds:
        missing = f"the smaller component weighs under {MIN_WEIGHT:g}"
    else:
        missing = ""
    verdict, why = decide(p_value=p, level=level, effect_value=d if not missing else 0.0, practical_threshold=ASHMAN_D,
                          power=power, mde=None, paper_effect=PAPER_ASHMAN_D)
    return NullTest(null=f"a unimodal law on the data's lattice ({cells})", statistic="Hartigan's dip",
                    value=dip, p_value=p, level=level, effect="Ashman's D of a two-Gaussian mixture", effect_value=d,
                    practical_threshold=ASHMAN_D, paper_effect=PAPER_ASHMAN_D, power=power,
                    minimum_detectable_effect=None,
                    alternative=f"two equal Gaussian modes with Ashman's D {PAPER_ASHMAN_D:g} (simulated at n = "
                                f"{min(y.size, power_n)}, {_POWER_REPLICATES} replicates)",
                    method=f"dip test (table p-value) on {y.size} values{note}; two-Gaussian EM for D",
                    n=int(y.size), decision=verdict,
                    reason=f"modes at {params['mu1']:.3g} and {params['mu2']:.3g} ({scale}, weight "
                           f"{params['weight']:.2f}); {why}" + (f"; {missing}" if missing else ""))
