r"""Numerical kernels for fitting many samples at once: per-segment sums and the two iterative MLEs.

A *segmented sample* is one array ``x`` holding many samples back to back and an integer array
``seg`` (non-decreasing, values ``0 .. n_seg - 1``) naming the sample of each value, e.g. the gaps
of every client-window of a trace. Everything here is vectorised over segments with
``numpy.bincount`` / ``reduceat``: no Python loop runs over segments or values, only over
iterations of a solver.

This module holds arithmetic only; the families that use it (and their names, densities and
draws) are in :mod:`servelab.fitting.families`.
"""
from __future__ import annotations

import numpy as np

__all__ = ["check_segments", "segment_mean", "gamma_mle_from_stats", "weibull_mle_segments"]


def check_segments(x, seg, n_seg: int) -> tuple[np.ndarray, np.ndarray]:
    """``x`` as float and ``seg`` as int64, or raise if they are not a segmented sample.

    Raises
    ------
    ValueError
        If the shapes differ, ``seg`` decreases somewhere, or a segment id is outside
        ``0 .. n_seg - 1``.
    """
    x = np.asarray(x, dtype=float)
    seg = np.asarray(seg, dtype=np.int64)
    if x.ndim != 1 or seg.shape != x.shape:
        raise ValueError(f"x and seg must be one-dimensional and of equal length; got shapes {x.shape} and {seg.shape}")
    if not (isinstance(n_seg, (int, np.integer)) and n_seg >= 0):
        raise ValueError(f"n_seg must be a non-negative integer; got {n_seg!r}")
    if seg.size:
        if np.any(seg[1:] < seg[:-1]):
            raise ValueError("seg must be non-decreasing (values of one segment together, segments in order)")
        if seg[0] < 0 or seg[-1] >= n_seg:
            raise ValueError(f"segment ids must lie in 0..{n_seg - 1}; got {int(seg[0])}..{int(seg[-1])}")
    return x, seg


def segment_mean(values: np.ndarray, seg: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Mean of ``values`` per segment (NaN for an empty segment); ``n`` = values per segment.

    One segment uses numpy's pairwise sum (more accurate than ``bincount``'s running sum, which
    matters where a fit cancels catastrophically, e.g. a Gamma shape near 10^9).
    """
    if n.size == 1:
        return np.array([np.mean(values) if values.size else np.nan])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.bincount(seg, weights=values, minlength=n.size) / n


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
    from scipy import special  # imported here: drawing from the families needs no scipy

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


def weibull_mle_segments(x: np.ndarray, seg: np.ndarray, n_seg: int, *, max_iter: int = 100,
                         tol: float = 1e-10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Weibull MLE (loc 0) of many samples at once; ``x`` > 0 grouped by ``seg`` (sorted, 0..n_seg-1).

    The shape ``c`` solves the profile score
    :math:`g(c) = \sum y^c \ln y / \sum y^c - 1/c - \overline{\ln y} = 0` (``y`` = x over its
    segment's geometric mean, for numerical range), which increases in ``c``; per segment a Newton
    step is taken when it stays inside the current bracket, otherwise the bracket is bisected,
    starting from the moment estimate :math:`\mathrm{Var}(\ln X) = \pi^2 / (6 c^2)`. Then
    :math:`\lambda = (\overline{x^c})^{1/c}`.

    Returns
    -------
    c, scale : numpy.ndarray
        Per segment (NaN where a segment has fewer than 2 values or all are equal).
    converged : numpy.ndarray of bool
    """
    n = np.bincount(seg, minlength=n_seg).astype(float)
    logx = np.log(x)
    mlog = np.bincount(seg, weights=logx, minlength=n_seg) / np.maximum(n, 1)
    z = logx - mlog[seg]
    var = np.bincount(seg, weights=z * z, minlength=n_seg) / np.maximum(n, 1)
    ok = (n >= 2) & (var > 0)
    c = np.where(ok, np.pi / (np.sqrt(6.0 * np.where(ok, var, 1.0))), 1.0)
    lo = np.zeros(n_seg)
    hi = np.full(n_seg, np.inf)
    done = ~ok
    za, sa = z, seg  # elements of segments still iterating (shrunk as segments converge)
    for it in range(max_iter):
        if it and it % 3 == 0:
            keep = ~done[sa]
            za, sa = za[keep], sa[keep]
        if sa.size == 0:
            break
        cnt = np.bincount(sa, minlength=n_seg)
        nonempty_a = cnt > 0
        starts_a = np.searchsorted(sa, np.flatnonzero(nonempty_a))
        cz = c[sa] * za
        top = np.full(n_seg, -np.inf)
        top[nonempty_a] = np.maximum.reduceat(cz, starts_a)
        w = np.exp(cz - top[sa])
        s0 = np.bincount(sa, weights=w, minlength=n_seg)
        s1 = np.bincount(sa, weights=w * za, minlength=n_seg)
        s2 = np.bincount(sa, weights=w * za * za, minlength=n_seg)
        with np.errstate(divide="ignore", invalid="ignore"):
            m1 = s1 / s0
            m2 = s2 / s0
            g = m1 - 1.0 / c
            gp = (m2 - m1 * m1) + 1.0 / (c * c)
            upd = nonempty_a & ~done
            hi = np.where(upd & (g > 0), np.minimum(hi, c), hi)
            lo = np.where(upd & (g <= 0), np.maximum(lo, c), lo)
            c_new = c - g / gp
        inside = np.isfinite(c_new) & (c_new > lo) & (c_new < hi)
        c_new = np.where(inside, c_new, np.where(np.isfinite(hi), 0.5 * (lo + hi), 2.0 * c))
        step_ok = np.abs(c_new - c) <= tol * c
        c = np.where(upd, c_new, c)
        done = done | (upd & step_ok)
        if done.all():
            break
    nonempty = n > 0
    starts = np.searchsorted(seg, np.flatnonzero(nonempty))
    cz = c[seg] * z
    top = np.full(n_seg, -np.inf)
    if starts.size:
        top[nonempty] = np.maximum.reduceat(cz, starts)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_exp = np.bincount(seg, weights=np.exp(cz - top[seg]), minlength=n_seg) / np.maximum(n, 1)
        scale = np.exp(mlog + (top + np.log(mean_exp)) / c)
    c = np.where(ok, c, np.nan)
    scale = np.where(ok, scale, np.nan)
    return c, scale, ok & done & np.isfinite(c) & np.isfinite(scale)
