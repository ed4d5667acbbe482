r"""Calibrated test of a shifting Gamma shape across windows (ServeGen F2 CV part, BurstGPT Fig. 6).

Null: *a stationary renewal process with Gamma gaps of one shape* :math:`\alpha` (the pooled MLE),
each window with its own scale (so rate shifts alone do not count), observed with the trace's own
per-window gap counts. Statistic: the likelihood-ratio statistic of one common shape against one
shape per window. With :math:`s_i = \ln \bar x_i - \overline{\ln x}_i` (scale free) and
:math:`g(a, s) = -a s - a + a \ln a - \ln\Gamma(a)`, a window of :math:`n_i` gaps contributes
:math:`n_i\, g(a, s_i)` to the profile log-likelihood, so

.. math:: \Lambda = 2 \sum_i n_i \left[ g(\hat a_i, s_i) - g(\hat a, s_i) \right].

At 10-50 gaps per window :math:`\Lambda` is far from its chi-square limit (and the max/min of
the window shapes is huge by chance alone: median 3.9 over a 23-day trace under the null), so
the p-value comes from a **parametric bootstrap**: each replicate draws every window's
:math:`s_i` from :math:`n_i` Gamma(:math:`\hat a`) gaps (windows above :data:`EXACT_CAP` gaps use
the normal limit of :math:`s_i`, mean :math:`\ln a - \psi(a) - 1/(2na)`, variance
:math:`(\psi'(a) - 1/a)/n`). Null replicates are cached by (window sizes, shape, B, seed).

The effect is the spread of the window shapes beyond their estimation noise: the standard
deviation of :math:`\ln \hat a_i` with the null replicates' mean variance taken out. Its
practical threshold is the spread of a daily sine in :math:`\ln \alpha` whose max/min is 2 (the
project's old ratio rule); power is simulated at the spread of a max/min of 3 (BurstGPT Fig. 6),
with shapes alternating between windows (:math:`\ln\alpha = \ln\hat a \pm` that SD), and the
minimum detectable effect on a grid of multiples of the threshold. This module reads no store and plots nothing.
"""
from __future__ import annotations

import functools
import math

import numpy as np
from scipy import special

from servelab.fitting.families import gamma_mle_from_stats
from servelab.fitting.verdicts import DEFAULT_LEVEL, POWER_TARGET, NullTest, decide

__all__ = [
    "gamma_shape_shift_test",
    "log_sine_sd",
    "SHAPE_SHIFT_RATIO",
    "PAPER_SHAPE_RATIO",
    "EXACT_CAP",
    "MIN_WINDOW_GAPS",
    "MAX_ZERO_SHARE",
]

#: max/min of the Gamma shape over a daily cycle from which the shape "shifts" (practical threshold)
SHAPE_SHIFT_RATIO = 2.0
#: max/min of the shape at the papers' effect (BurstGPT Fig. 6)
PAPER_SHAPE_RATIO = 3.0
#: windows with more gaps than this are simulated through the normal limit of their statistic
EXACT_CAP = 2000
#: windows with fewer positive gaps are left out
MIN_WINDOW_GAPS = 10
#: share of zero gaps (ties on the clock) above which gap shapes are not judged
MAX_ZERO_SHARE = 0.05

_NULL = ("a stationary renewal process with Gamma gaps of one shape (the pooled MLE) and a free scale per "
         "window, with the trace's own gap counts per window")


def log_sine_sd(ratio: float) -> float:
    """Standard deviation of :math:`\\ln \\alpha` along a sine whose max/min of :math:`\\alpha` is ``ratio``."""
    if not ratio >= 1.0:
        raise ValueError(f"ratio must be >= 1; got {ratio!r}")
    return math.log(ratio) / (2.0 * math.sqrt(2.0))


def _g(a: np.ndarray, s: np.ndarray) -> np.ndarray:
    return -a * s - a + a * np.log(a) - special.gammaln(a)


def _shape_from_s(s: np.ndarray) -> np.ndarray:
    a, _, _ = gamma_mle_from_stats(np.exp(s), np.zeros_like(s))
    return a


def _lrt(n: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """LRT and var(ln a_i) for s of shape (..., k)."""
    a_i = _shape_from_s(s)
    s_bar = np.sum(n * s, axis=-1) / n.sum()
    a0 = _shape_from_s(s_bar)
    lrt = 2.0 * np.sum(n * (_g(a_i, s) - _g(a0[..., None], s)), axis=-1)
    return np.maximum(lrt, 0.0), np.var(np.log(a_i), axis=-1)


def _draw_s(n: np.ndarray, shapes: np.ndarray, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """s statistics of (replicates, k) windows of Gamma(shapes) gaps, vectorised."""
    k = n.size
    out = np.empty((replicates, k))
    small = n <= EXACT_CAP
    if np.any(~small):
        nb, ab = n[~small], shapes[~small]
        mean = np.log(ab) - special.digamma(ab) - 1.0 / (2.0 * nb * ab)
        sd = np.sqrt((special.polygamma(1, ab) - 1.0 / ab) / nb)
        out[:, ~small] = mean + sd * rng.standard_normal((replicates, nb.size))
    if np.any(small):
        ns = n[small].astype(np.int64)
        shp = np.repeat(shapes[small], ns)
        starts = np.concatenate(([0], np.cumsum(ns)[:-1]))
        per = max(1, int(4_000_000 // max(ns.sum(), 1)))  # replicates per chunk (memory ~ 32 MB)
        cols = np.flatnonzero(small)
        for r0 in range(0, replicates, per):  # chunks of replicates, each vectorised over all gaps
            r1 = min(replicates, r0 + per)
            x = rng.gamma(shp, 1.0, size=(r1 - r0, shp.size))
            mean = np.add.reduceat(x, starts, axis=1) / ns
            mlog = np.add.reduceat(np.log(x), starts, axis=1) / ns
            out[r0:r1, cols] = np.log(mean) - mlog
    return np.maximum(out, 1e-300)


@functools.lru_cache(maxsize=64)
def _null_replicates(n_key: tuple[int, ...], shape: float, replicates: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    n = np.asarray(n_key, dtype=float)
    s = _draw_s(n, np.full(n.size, shape), replicates, np.random.default_rng(seed))
    lrt, var = _lrt(n, s)
    lrt.setflags(write=False)
    var.setflags(write=False)
    return lrt, var


class _AlternativeDraws:
    """The power simulations of one test, in the order the test asks for them.

    A test draws its alternatives from one generator seeded ``[seed, 1]``, one effect after the
    other (the paper's effect, then the multiples of the threshold); the k-th draw depends only
    on the window sizes, the pooled shape, the replicates, the seed and the effects asked before
    it. Tests of the same windows at another level (F1's "single process" repeats the shape test
    at half the level) ask for the same effects in the same order, so they reuse the draws: the
    same numbers as drawing them again, without the cost (the bulk of the arrivals area on 10^6
    requests, where windows hold up to :data:`EXACT_CAP` gaps).
    """

    def __init__(self, n: np.ndarray, a0: float, replicates: int, seed: int) -> None:
        self.n, self.a0, self.replicates = n, a0, replicates
        self.z = np.where(np.arange(n.size) % 2 == 0, 1.0, -1.0)
        self.rng = np.random.default_rng([int(seed), 1])
        self.done: list[tuple[float, np.ndarray, np.ndarray]] = []

    def get(self, k: int, d: float) -> tuple[np.ndarray, np.ndarray] | None:
        """LRT and var(ln a_i) of the k-th alternative, effect ``d`` (None: asked out of order)."""
        if k < len(self.done):
            done_d, lrt, var = self.done[k]
            return (lrt, var) if done_d == d else None
        if k != len(self.done):
            return None
        lrt, var = _lrt(self.n, _draw_s(self.n, self.a0 * np.exp(d * self.z), self.replicates, self.rng))
        lrt.setflags(write=False)
        var.setflags(write=False)
        self.done.append((d, lrt, var))
        return lrt, var


@functools.lru_cache(maxsize=16)
def _alternative_draws(n_key: tuple[int, ...], a0: float, replicates: int, seed: int) -> _AlternativeDraws:
    return _AlternativeDraws(np.asarray(n_key, dtype=float), a0, replicates, seed)


def _window_sample(n: np.ndarray, max_sim_gaps: int, seed: int) -> np.ndarray | None:
    """Indices (ascending) of a seeded random sample of windows whose gaps simulated one by one
    (windows of at most :data:`EXACT_CAP` gaps) add up to at most ``max_sim_gaps``, every larger
    window kept; None when all windows fit. The windows are taken in a random order (generator
    seeded ``[seed, 2]``) while they fit, so the sample depends only on the window sizes and the seed."""
    exact = n <= EXACT_CAP
    if float(n[exact].sum()) <= max_sim_gaps:
        return None
    order = np.random.default_rng([int(seed), 2]).permutation(np.flatnonzero(exact))
    fits = np.cumsum(n[order]) <= max_sim_gaps
    return np.sort(np.concatenate([np.flatnonzero(~exact), order[fits]]))


def gamma_shape_shift_test(n_gaps, mean_gap, mean_log_gap, *, level: float = DEFAULT_LEVEL,
                           min_gaps: int = MIN_WINDOW_GAPS, threshold_ratio: float = SHAPE_SHIFT_RATIO,
                           paper_ratio: float = PAPER_SHAPE_RATIO, replicates: int = 199, seed: int = 0,
                           resolution_s: float = 0.0, n_zero_gaps=None,
                           mde_multiples: tuple[float, ...] = (1.0, 1.25, 1.5, 2.0, 3.0),
                           max_sim_gaps: int | None = None) -> NullTest:
    """Does the Gamma shape (burstiness, CV = 1/sqrt(alpha)) of the gaps shift across windows?

    Parameters
    ----------
    n_gaps, mean_gap, mean_log_gap : array-like
        Per window: number of positive gaps, their mean and the mean of their logs
        (``n_positive_gaps``, ``mean_positive_gap_s``, ``mean_log_positive_gap`` of
        :func:`servelab.analysis.arrivals.window_stats` / ``gamma_windows``).
    level : float
        Significance level.
    min_gaps : int
        Windows with fewer positive gaps are left out.
    threshold_ratio, paper_ratio : float
        Max/min of the shape along a daily sine for the practical threshold and the paper's effect
        (converted to a standard deviation of ln alpha by :func:`log_sine_sd`).
    replicates : int
        Bootstrap replicates B of the null (and of each power simulation).
    seed : int
        Seed of every draw.
    resolution_s : float
        The trace's clock resolution: a pooled mean gap under 10 x this gives "inconclusive" (a
        coarse clock, not the process, shapes the gaps).
    n_zero_gaps : array-like, optional
        Per window, the zero gaps (ties; ``n_zero_gaps`` of ``window_stats``). When more than
        :data:`MAX_ZERO_SHARE` of all gaps are ties the clock has cut off the short gaps that
        make a window bursty, so the test says "inconclusive" rather than "does not hold".
    mde_multiples : tuple of float
        Multiples of the threshold at which power is simulated for the minimum detectable effect.
    max_sim_gaps : int, optional
        Bound on the gaps drawn one by one per replicate (those of the windows of at most
        :data:`EXACT_CAP` gaps; the others cost one normal draw each). When the qualifying windows
        hold more, the test (statistic, null and power alike) runs on a seeded random sample of
        whole windows holding at most this many such gaps, every larger window kept, and
        ``method`` / ``reason`` say so. None (default) tests every window.

    Returns
    -------
    NullTest

    Raises
    ------
    ValueError
        Arrays of different lengths, ``replicates`` < 19, ``min_gaps`` < 2 or ``max_sim_gaps`` not a
        positive integer.
    """
    n = np.asarray(n_gaps, dtype=float)
    mean = np.asarray(mean_gap, dtype=float)
    mlog = np.asarray(mean_log_gap, dtype=float)
    if not (n.shape == mean.shape == mlog.shape) or n.ndim != 1:
        raise ValueError(f"n_gaps, mean_gap, mean_log_gap must be 1-D of one length; got {n.shape}, {mean.shape}, "
                         f"{mlog.shape}")
    if not isinstance(replicates, (int, np.integer)) or replicates < 19:
        raise ValueError(f"replicates must be an integer >= 19; got {replicates!r}")
    if not isinstance(min_gaps, (int, np.integer)) or min_gaps < 2:
        raise ValueError(f"min_gaps must be an integer >= 2; got {min_gaps!r}")
    if max_sim_gaps is not None and (isinstance(max_sim_gaps, bool) or not isinstance(max_sim_gaps, (int, np.integer))
                                     or max_sim_gaps < 1):
        raise ValueError(f"max_sim_gaps must be a positive integer or None; got {max_sim_gaps!r}")
    zero_share = 0.0
    if n_zero_gaps is not None:
        zeros = np.asarray(n_zero_gaps, dtype=float)
        if zeros.shape != n.shape:
            raise ValueError(f"n_zero_gaps must match n_gaps' shape {n.shape}; got {zeros.shape}")
        total = float(np.nansum(zeros) + np.nansum(n))
        zero_share = float(np.nansum(zeros)) / total if total > 0 else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.log(mean) - mlog
    ok = np.isfinite(s) & (s > 0) & np.isfinite(n) & (n >= min_gaps)
    n, s, mean = n[ok], s[ok], mean[ok]
    n_windows, sampled = int(n.size), ""
    if max_sim_gaps is not None:
        keep = _window_sample(n, int(max_sim_gaps), int(seed))
        if keep is not None:
            sampled = (f"; on a seeded sample of {keep.size} of {n_windows} windows (seed {int(seed)}: at most "
                       f"{int(max_sim_gaps):,} gaps simulated one by one per replicate, every window above "
                       f"{EXACT_CAP} gaps kept)")
            n, s, mean = n[keep], s[keep], mean[keep]
    thr, paper = log_sine_sd(threshold_ratio), log_sine_sd(paper_ratio)
    common = dict(null=_NULL, statistic="likelihood ratio, one shape vs one per window", level=level,
                  effect="SD of ln(alpha) across windows beyond estimation noise", practical_threshold=thr,
                  paper_effect=paper, alternative=f"shapes alternating between windows with the spread of a daily sine of "
                  f"max/min {paper_ratio:g} (SD of ln alpha {paper:.3g})")
    pooled_mean = float(np.sum(n * mean) / n.sum()) if n.size else float("nan")
    coarse = resolution_s > 0 and pooled_mean < 10 * resolution_s
    if n.size < 3 or coarse or zero_share > MAX_ZERO_SHARE:
        why = (f"needs 3 windows with >= {min_gaps} positive gaps; got {n.size}" if n.size < 3 else
               f"mean gap {pooled_mean:.3g} s is under 10 x the clock resolution {resolution_s:g} s" if coarse else
               f"{zero_share:.0%} of gaps are ties on the clock (> {MAX_ZERO_SHARE:.0%}): the clock, not the process, "
               "shapes the short gaps")
        return NullTest(value=float("nan"), p_value=None, effect_value=float("nan"), power=None,
                        minimum_detectable_effect=None, method="none", n=int(n.size), decision="inconclusive",
                        reason=why, **common)
    lrt, var_ln = _lrt(n, s)
    a0 = float(_shape_from_s(np.array([np.sum(n * s) / n.sum()]))[0])
    key = tuple(int(v) for v in n)
    null_lrt, null_var = _null_replicates(key, round(a0, 4), int(replicates), int(seed))
    p = float((1 + np.sum(null_lrt >= lrt)) / (replicates + 1))
    noise = float(np.mean(null_var))
    effect = math.sqrt(max(float(var_ln) - noise, 0.0))
    crit = float(np.quantile(null_lrt, 1.0 - level))
    power_replicates = int(min(replicates, 99))
    shared = _alternative_draws(key, a0, power_replicates, int(seed))
    own = _AlternativeDraws(n, a0, power_replicates, int(seed))  # used only if the shared draws cannot serve
    asked: list[float] = []

    def power_at(d: float) -> float:
        asked.append(d)
        got = shared.get(len(asked) - 1, d)
        if got is None:
            for k, earlier in enumerate(asked[len(own.done):], start=len(own.done)):
                got = own.get(k, earlier)
        lrt_alt, var_alt = got
        eff_alt = np.sqrt(np.maximum(var_alt - noise, 0.0))
        return float(np.mean((lrt_alt > crit) & (eff_alt > thr)))

    power = power_at(paper)
    mde = float("inf")
    for mult in sorted(mde_multiples):
        d = mult * thr
        if (power if math.isclose(d, paper) else power_at(d)) >= POWER_TARGET:
            mde = d
            break
    verdict, why = decide(p_value=p, level=level, effect_value=effect, practical_threshold=thr, power=power,
                          mde=mde, paper_effect=paper)
    return NullTest(value=float(lrt), p_value=p, effect_value=effect, power=power, minimum_detectable_effect=mde,
                    method=f"parametric bootstrap (B={replicates}, seed={seed}; power from {power_replicates} replicates "
                           f"per effect; windows above {EXACT_CAP} gaps through the normal limit{sampled})",
                    n=int(n.size), decision=verdict,
                    reason=f"{n.size} windows with >= {min_gaps} positive gaps{sampled}, pooled shape {a0:.3g}; {why}",
                    **common)
