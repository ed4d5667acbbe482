r"""Calibrated tests on window counts: rate shifts (ServeGen F2) and burstiness (ServeGen F1).

Both tests take small sufficient statistics (counts per window and the time each window covers),
never requests, and return a :class:`~servelab.fitting.verdicts.NullTest`.

:func:`rate_shift_test` -- null: *stationary Poisson arrivals at the trace's mean rate*, given each
window's covered time (idle windows are counts of 0). Statistic: the Pearson chi-square of the
window counts,

.. math:: X^2 = \sum_i (c_i - \hat\lambda e_i)^2 / (\hat\lambda e_i), \qquad
          \hat\lambda = \sum c_i / \sum e_i,

chi-square with :math:`k - 1` degrees of freedom under the null (asymptotic; a parametric
bootstrap of the Poisson null when windows hold fewer than one request on average). With
``dispersion`` :math:`\phi` (e.g. the pooled within-window gap CV squared) the null becomes a
stationary renewal process, whose counts have variance :math:`\phi` times the Poisson one, and
:math:`X^2/\phi` is tested. The effect is the CV of the window rates beyond the counting noise,
:math:`\sqrt{\max(0, X^2 - \phi(k-1)) / N}` (the moment estimator of the CV of the underlying
rate); its practical threshold is the CV of a daily sine whose max/min is
:data:`RATE_SHIFT_RATIO` (the project's old rule), and power is computed at a sine with max/min
:data:`PAPER_RATE_RATIO` from the noncentral chi-square with noncentrality :math:`N c^2/\phi`.
:func:`rate_shift_tests` runs the same test per group (client, model), vectorised, for counting
the groups that show a shift (only groups that can show one are counted).

:func:`burstiness_test` -- null: *Poisson arrivals whose rate may change between blocks (e.g.
20-minute windows) but not within one*. Within a block with :math:`T_b` requests the counts of
its :math:`m` sub-windows are multinomial under the null, so the within-block chi-square has exact
conditional mean :math:`m - 1` and variance :math:`2(m-1)(1 - 1/T_b)`; their sum over blocks is
referred to a scaled chi-square with those moments (Satterthwaite), which stays calibrated on
sparse traces. The effect is the index of dispersion :math:`X^2 / \mathrm{df}` (variance of the
sub-window counts over the Poisson variance); several sub-window lengths
(:data:`BURST_SCALES`: 10, 30, 120 and 300 s) are tested at once (Bonferroni over all of them),
each only with at least :data:`MIN_SCALE_DF` degrees of freedom (fewer blocks
leave the index too noisy to compare with a practical threshold). Rate shifts between blocks do
not count as bursts.

:func:`within_block_dispersion` gives the same index for the rate test's own windows (5-minute
counts in 20-minute blocks): the count dispersion of a stationary renewal process at that
scale, free of rate shifts between blocks. :func:`rate_shift_test` with that estimate (and its
degrees of freedom) refers :math:`X^2 / ((k-1) \hat\phi)` to an F distribution; the numerator
also holds the within-block variation, so the test is slightly conservative.

Nothing here reads a store or plots.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import polars as pl
from scipy import stats

from servelab.fitting.verdicts import DEFAULT_LEVEL, POWER_TARGET, NullTest, decide, minimum_detectable_effect

__all__ = [
    "rate_shift_test",
    "rate_shift_tests",
    "rate_shift_tests_sparse",
    "burstiness_test",
    "block_counts",
    "blocks_from_windows",
    "pooled_gap_dispersion",
    "window_counts",
    "WindowCounts",
    "Dispersion",
    "sine_cv",
    "RATE_SHIFT_RATIO",
    "PAPER_RATE_RATIO",
    "BURST_DISPERSION",
    "PAPER_BURST_DISPERSION",
    "MIN_SCALE_DF",
    "BURST_SCALES",
    "within_block_dispersion",
    "doubling_test",
]


class WindowCounts(NamedTuple):
    """Requests and covered seconds per window (:func:`window_counts`; unpacks as ``counts, exposures``).

    Parameters
    ----------
    counts : numpy.ndarray of int64
    exposures : numpy.ndarray of float
        Seconds of each window inside the span (the last window may be partial).
    """

    counts: np.ndarray
    exposures: np.ndarray


class Dispersion(NamedTuple):
    """An index of dispersion and its degrees of freedom (:func:`within_block_dispersion`;
    unpacks as ``index, df``).

    Parameters
    ----------
    index : float
    df : int
    """

    index: float
    df: int

#: max/min of a daily rate cycle from which the rate "shifts" (the practical threshold)
RATE_SHIFT_RATIO = 2.0
#: max/min of the rate cycle the paper shows (ServeGen Fig. 2: rates move several-fold within a day)
PAPER_RATE_RATIO = 3.0
#: index of dispersion of counts from which arrivals are "bursty" (variance 1.5 x Poisson)
BURST_DISPERSION = 1.5
#: index of dispersion at the paper's burstiness (ServeGen Fig. 1: gap CVs of 1.5-3)
PAPER_BURST_DISPERSION = 2.0
#: a scale enters the burstiness test only with this many degrees of freedom (index known to +-0.14)
MIN_SCALE_DF = 100
#: sub-window lengths (s) of the burstiness test inside 20-minute blocks (the report and the calibration
#: use these). 10 s gives 119 degrees of freedom per full block, so one full 20-minute block with
#: requests in most sub-windows is enough; without it a trace shorter than about 70 minutes (under
#: 3 full blocks at 30 s) could never be called bursty, whatever its gap CV.
BURST_SCALES = (10.0, 30.0, 120.0, 300.0)

_RATE_NULL = "stationary Poisson arrivals at the trace's mean rate, given each window's covered time"
_MC_REPLICATES = 999


def sine_cv(ratio: float) -> float:
    """CV of :math:`1 + a \\sin t` whose max/min is ``ratio``: :math:`a / \\sqrt 2`, :math:`a = (r-1)/(r+1)`."""
    if not ratio >= 1.0:
        raise ValueError(f"ratio must be >= 1; got {ratio!r}")
    return (ratio - 1.0) / (ratio + 1.0) / math.sqrt(2.0)


def window_counts(timestamps, *, window_s: float, t0: float | None = None, t1: float | None = None
                  ) -> WindowCounts:
    """Counts and covered time of the windows ``[t0 + i w, t0 + (i+1) w)`` (for simulations and tests;
    on a store compute the same in SQL).

    Returns
    -------
    counts : numpy.ndarray of int64
    exposures : numpy.ndarray of float
        Seconds of each window inside ``[t0, t1]`` (the last window may be partial).
    """
    t = np.asarray(timestamps, dtype=float)
    if not window_s > 0:
        raise ValueError(f"window_s must be positive; got {window_s!r}")
    t0 = float(t.min()) if t0 is None else float(t0)
    t1 = float(t.max()) if t1 is None else float(t1)
    if not t1 > t0:
        raise ValueError(f"the span must be positive; got t0={t0!r}, t1={t1!r}")
    k = int(math.floor((t1 - t0) / window_s)) + 1
    idx = np.clip(((t - t0) // window_s).astype(np.int64), 0, k - 1)
    counts = np.bincount(idx, minlength=k)
    starts = t0 + window_s * np.arange(k)
    exposures = np.minimum(starts + window_s, t1) - starts
    keep = exposures > 0
    return WindowCounts(counts[keep].astype(np.int64), exposures[keep])


def block_counts(timestamps, *, sub_s: float, block_s: float, t0: float | None = None,
                 t1: float | None = None) -> np.ndarray:
    """Counts of sub-windows of ``sub_s`` inside full blocks of ``block_s``: shape (blocks, m).

    ``block_s`` must be a whole multiple of ``sub_s``; a partial last block is dropped.
    """
    t = np.asarray(timestamps, dtype=float)
    if not (sub_s > 0 and block_s >= 2 * sub_s):
        raise ValueError(f"need 0 < sub_s <= block_s / 2; got sub_s={sub_s!r}, block_s={block_s!r}")
    m = block_s / sub_s
    if abs(m - round(m)) > 1e-9:
        raise ValueError(f"block_s must be a whole multiple of sub_s; got {block_s!r} / {sub_s!r} = {m:g}")
    m = int(round(m))
    t0 = float(t.min()) if t0 is None else float(t0)
    t1 = float(t.max()) if t1 is None else float(t1)
    n_blocks = int(math.floor((t1 - t0) / block_s))
    if n_blocks < 1:
        raise ValueError(f"the span {t1 - t0:g} s holds no full block of {block_s:g} s")
    idx = ((t - t0) // sub_s).astype(np.int64)
    idx = idx[(idx >= 0) & (idx < n_blocks * m)]
    return np.bincount(idx, minlength=n_blocks * m).reshape(n_blocks, m)


def blocks_from_windows(window, counts, exposures, *, sub_s: float, block_s: float) -> np.ndarray:
    """Reshape a window table at scale ``sub_s`` into full blocks of ``block_s``: shape (blocks, m).

    ``window`` is the window index ``floor(t / sub_s)`` (the ``window`` column of
    :func:`servelab.analysis.arrivals.window_stats` with ``window_s=sub_s`` and idle windows
    filled); a block is kept only when all of its ``m = block_s / sub_s`` sub-windows are present
    and fully covered (``exposures == sub_s``), so the trace's partial first and last blocks drop.
    """
    w = np.asarray(window, dtype=np.int64)
    c = np.asarray(counts)
    e = np.asarray(exposures, dtype=float)
    if not (w.shape == c.shape == e.shape) or w.ndim != 1:
        raise ValueError(f"window, counts, exposures must be 1-D of one length; got {w.shape}, {c.shape}, {e.shape}")
    m = block_s / sub_s
    if not (sub_s > 0 and m >= 2 and abs(m - round(m)) < 1e-9):
        raise ValueError(f"block_s must be a whole multiple (>= 2) of sub_s; got {block_s!r} / {sub_s!r}")
    m = int(round(m))
    if w.size == 0:
        return np.zeros((0, m), dtype=np.int64)
    full = e >= sub_s * (1 - 1e-9)
    block = w // m
    b0 = int(block.min())
    nb = int(block.max()) - b0 + 1
    grid = np.zeros(nb * m, dtype=np.int64)
    seen = np.zeros(nb * m, dtype=bool)
    idx = (block - b0) * m + (w - block * m)
    grid[idx[full]] = c[full]
    seen[idx[full]] = True
    keep = seen.reshape(nb, m).all(axis=1)
    return grid.reshape(nb, m)[keep]


def pooled_gap_dispersion(n_gaps, cv) -> float:
    """Pooled within-window squared gap CV (the count dispersion of a stationary renewal process).

    Weighted by gaps over windows with at least 2 gaps; each window's CV (population form, as in
    :func:`servelab.analysis.arrivals.window_stats`) is corrected by ``n / (n - 1)``. Rate shifts
    between windows do not enter it, so it is the null's dispersion for :func:`rate_shift_test`.
    Returns 1.0 (Poisson) when no window has 2 gaps.
    """
    n = np.asarray(n_gaps, dtype=float)
    v = np.asarray(cv, dtype=float)
    ok = (n >= 2) & np.isfinite(v)
    if not np.any(ok):
        return 1.0
    return float(np.sum(n[ok] * v[ok] ** 2 * n[ok] / (n[ok] - 1)) / np.sum(n[ok]))


# ----------------------------------------------------------------------------------------------
# rate shifts


def _rate_arrays(counts, exposures, codes, n_groups, *, dispersion, level, threshold, paper):
    """Per-group X^2, df, asymptotic p, effect, power at ``paper`` and MDE (all arrays)."""
    mean_rate = np.bincount(codes, weights=counts, minlength=n_groups) / np.bincount(codes, weights=exposures,
                                                                                        minlength=n_groups)
    k = np.bincount(codes, minlength=n_groups).astype(float)
    total = np.bincount(codes, weights=counts, minlength=n_groups)
    expected = mean_rate[codes] * exposures
    with np.errstate(divide="ignore", invalid="ignore"):
        x2 = np.bincount(codes, weights=np.where(expected > 0, (counts - expected) ** 2 / expected, 0.0),
                         minlength=n_groups)
    return _rate_inference(k, total, x2, n_groups, dispersion=dispersion, level=level, threshold=threshold,
                           paper=paper)


def _rate_inference(k, total, x2, n_groups, *, dispersion, level, threshold, paper):
    """:func:`_rate_arrays` from each group's window count ``k``, requests and X^2."""
    with np.errstate(divide="ignore", invalid="ignore"):
        df = k - 1.0
        dispersion = np.broadcast_to(np.asarray(dispersion, dtype=float), (n_groups,))
        scaled = x2 / dispersion
        p = np.where((df >= 1) & (total > 0), stats.chi2.sf(scaled, np.maximum(df, 1)), np.nan)
        effect = np.sqrt(np.maximum(x2 - dispersion * df, 0.0) / total)
        crit = stats.chi2.isf(level, np.maximum(df, 1))
        cutoff = np.maximum(crit, df + total * threshold**2 / dispersion)

        def power_at(c):
            return stats.ncx2.sf(cutoff, np.maximum(df, 1), total * np.asarray(c) ** 2 / dispersion)

        power = np.where(total > 0, power_at(paper), 0.0)
        lo, hi = np.zeros(n_groups), np.full(n_groups, 10.0)
        for _ in range(40):  # bisection on the CV, vectorised over groups
            mid = (lo + hi) / 2
            ok = power_at(mid) >= POWER_TARGET
            hi = np.where(ok, mid, hi)
            lo = np.where(ok, lo, mid)
        mde = np.where((total > 0) & (power_at(10.0) >= POWER_TARGET), hi, np.inf)
    return k, total, x2, p, effect, power, mde


def _check_counts(counts, exposures):
    c = np.asarray(counts, dtype=float)
    e = np.asarray(exposures, dtype=float)
    if c.shape != e.shape or c.ndim != 1:
        raise ValueError(f"counts and exposures must be 1-D of one length; got shapes {c.shape} and {e.shape}")
    if np.any(~np.isfinite(c)) or np.any(c < 0) or np.any(c != np.round(c)):
        raise ValueError("counts must be non-negative integers")
    if np.any(~np.isfinite(e)) or np.any(e <= 0):
        raise ValueError(f"exposures must be positive seconds; got min {e.min() if e.size else None!r}")
    return c, e


def rate_shift_test(counts, exposures, *, dispersion: float = 1.0, dispersion_df: float | None = None,
                    level: float = DEFAULT_LEVEL,
                    threshold_ratio: float = RATE_SHIFT_RATIO, paper_ratio: float = PAPER_RATE_RATIO,
                    min_exposure_fraction: float = 0.5, seed: int = 0) -> NullTest:
    r"""Does the arrival rate shift across windows beyond a stationary process?

    Parameters
    ----------
    counts : array-like of int
        Requests per window, idle windows included as 0 (e.g. ``n_requests`` of
        :func:`servelab.analysis.arrivals.window_stats`).
    exposures : array-like of float
        Seconds each window covers (``exposure_s``).
    dispersion : float
        Variance of counts over the Poisson variance under the null: 1 for Poisson; for a
        stationary renewal null, the within-block dispersion of the same window counts
        (:func:`within_block_dispersion`, recommended) or the pooled gap CV squared
        (:func:`pooled_gap_dispersion`, which underestimates it in short windows).
    dispersion_df : float, optional
        Degrees of freedom of an estimated ``dispersion``: the p-value then comes from
        :math:`F = (X^2 / (k-1)) / \hat\phi` against :math:`F(k-1, \mathrm{df})`, and the
        power from the noncentral F.
    level : float
        Significance level.
    threshold_ratio, paper_ratio : float
        Max/min of a daily sine cycle giving the practical threshold and the paper's effect
        (converted to rate CVs by :func:`sine_cv`).
    min_exposure_fraction : float
        Windows covering less than this share of the longest window are left out (edges).
    seed : int
        Seed of the bootstrap null (used only when windows average under one request).

    Returns
    -------
    NullTest

    Raises
    ------
    ValueError
        Bad shapes, negative or non-integer counts, non-positive exposures or dispersion.
    """
    c, e = _check_counts(counts, exposures)
    if not dispersion > 0:
        raise ValueError(f"dispersion must be positive; got {dispersion!r}")
    keep = e >= min_exposure_fraction * e.max() if e.size else e > 0
    c, e = c[keep], e[keep]
    thr, paper = sine_cv(threshold_ratio), sine_cv(paper_ratio)
    null = _RATE_NULL if dispersion == 1.0 else (
        f"a stationary renewal process (counts {dispersion:.3g} x as variable as Poisson) at the trace's mean rate, "
        "given each window's covered time")
    k_all = c.size
    if k_all < 3 or c.sum() == 0:
        return NullTest(null=null, statistic="Pearson chi-square of window counts", value=float("nan"), p_value=None,
                        level=level, effect="CV of window rates beyond counting noise", effect_value=float("nan"),
                        practical_threshold=thr, paper_effect=paper, power=None, minimum_detectable_effect=None,
                        alternative=f"a daily rate sine with max/min {paper_ratio:g}", method="none", n=int(k_all),
                        decision="inconclusive",
                        reason=f"needs 3 windows and a request; got {k_all} windows, {int(c.sum())} requests")
    codes = np.zeros(c.size, dtype=np.int64)
    k, total, x2, p, effect, power, mde = _rate_arrays(c, e, codes, 1, dispersion=dispersion, level=level,
                                                       threshold=thr, paper=paper)
    p_value = float(p[0])
    method = f"asymptotic chi-square, {int(k[0]) - 1} df"
    pw, md = float(power[0]), float(mde[0])
    if dispersion_df is not None:
        if not dispersion_df > 0:
            raise ValueError(f"dispersion_df must be positive; got {dispersion_df!r}")
        df1 = k[0] - 1
        f_stat = x2[0] / dispersion / df1
        p_value = float(stats.f.sf(f_stat, df1, dispersion_df))
        cutoff = max(float(stats.f.isf(level, df1, dispersion_df)), (df1 + total[0] * thr**2 / dispersion) / df1)

        def f_power(c: float) -> float:
            return float(stats.ncf.sf(cutoff, df1, dispersion_df, total[0] * c**2 / dispersion))

        pw = f_power(paper)
        md = minimum_detectable_effect(f_power, lower=0.0, upper=10.0, iterations=40)
        method = f"asymptotic F ({int(df1)} and {dispersion_df:.4g} df: dispersion estimated)"
    elif total[0] / k[0] < 1.0:
        # sparse windows: parametric bootstrap of the Poisson null (rate re-estimated in each replicate)
        rng = np.random.default_rng(seed)
        sims = rng.poisson(total[0] / e.sum() * e, size=(_MC_REPLICATES, e.size)).astype(float)
        lam = sims.sum(axis=1, keepdims=True) / e.sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            x2_sim = np.where(lam[:, 0] > 0, np.sum((sims - lam * e) ** 2 / (lam * e), axis=1), 0.0)
        p_value = float((1 + np.sum(x2_sim / dispersion >= x2[0] / dispersion)) / (_MC_REPLICATES + 1))
        method = f"parametric bootstrap of the Poisson null (B={_MC_REPLICATES}, seed={seed})"
    verdict, why = decide(p_value=p_value, level=level, effect_value=float(effect[0]), practical_threshold=thr,
                          power=pw, mde=md, paper_effect=paper)
    return NullTest(null=null, statistic="Pearson chi-square of window counts" + (
                        f" / {dispersion:.3g}" if dispersion != 1.0 else ""),
                    value=float(x2[0] / dispersion), p_value=p_value, level=level,
                    effect="CV of window rates beyond counting noise", effect_value=float(effect[0]),
                    practical_threshold=thr, paper_effect=paper, power=pw, minimum_detectable_effect=md,
                    alternative=f"a daily rate sine with max/min {paper_ratio:g} (rate CV {paper:.3g})",
                    method=method, n=int(k[0]), decision=verdict,
                    reason=f"{int(k[0])} windows, {int(total[0])} requests; {why}")


def _check_dispersion(dispersion, frame: pl.DataFrame, name: str, columns: tuple[str, ...]) -> bool:
    """Whether ``dispersion`` is "pooled" (else a positive number), after checking it and that
    ``frame`` (called ``name`` in the error) has ``columns`` and, when pooled, ``n_gaps`` and ``cv``."""
    pooled = isinstance(dispersion, str)
    if pooled and dispersion != "pooled":
        raise ValueError(f"dispersion must be a positive number or 'pooled'; got {dispersion!r}")
    if not pooled and not dispersion > 0:
        raise ValueError(f"dispersion must be positive; got {dispersion!r}")
    for col in columns + (("n_gaps", "cv") if pooled else ()):
        if col not in frame.columns:
            raise ValueError(f"{name} lacks column {col!r}; columns: {frame.columns}")
    return pooled


def _rate_table(by: str, groups: pl.Series, k, total, disp, x2, p, effect, power, mde, *, level: float,
                threshold: float) -> pl.DataFrame:
    """The per-group table of :func:`rate_shift_tests` and :func:`rate_shift_tests_sparse` with its decision."""
    holds = (np.nan_to_num(p, nan=1.0) < level) & (effect > threshold)
    decision = np.where(holds, "holds", np.where((power >= POWER_TARGET) & (k >= 3), "does not hold", "inconclusive"))
    return pl.DataFrame({by: groups, "windows": k.astype(np.int64), "requests": total.astype(np.int64),
                         "dispersion": disp, "chi2": x2,
                         "p_value": p, "effect": effect, "power": power, "mde": mde, "decision": decision})


def rate_shift_tests(windows: pl.DataFrame, by: str, *, count: str = "n_requests", exposure: str = "exposure_s",
                     dispersion: float | str = 1.0, level: float = DEFAULT_LEVEL, threshold_ratio: float = RATE_SHIFT_RATIO,
                     paper_ratio: float = PAPER_RATE_RATIO, min_exposure_fraction: float = 0.5) -> pl.DataFrame:
    """:func:`rate_shift_test` per group, vectorised (asymptotic p-values only).

    Parameters
    ----------
    windows : polars.DataFrame
        One row per (group, window), idle windows included (e.g. ``group_windows`` of the
        arrival evidence).
    by : str
        Group column.
    dispersion : float or "pooled"
        One dispersion for every group, or ``"pooled"``: each group's
        :func:`pooled_gap_dispersion` from its ``n_gaps`` and ``cv`` columns (a stationary
        renewal null per group).

    Returns
    -------
    polars.DataFrame
        ``<by>, windows, requests, dispersion, chi2, p_value, effect, power, mde, decision``; ``decision`` is
        "inconclusive" for groups too small to show a shift (1-request clients, ...), so that a
        count of "holds" counts only groups that show it.
    """
    pooled = _check_dispersion(dispersion, windows, "windows", (by, count, exposure))
    full = windows.group_by(by).agg(pl.col(exposure).max().alias("full_"))
    w = (windows.join(full, on=by, how="left", nulls_equal=True)
         .filter(pl.col(exposure) >= min_exposure_fraction * pl.col("full_")))
    groups = w[by].unique(maintain_order=True)
    codes = w[by].replace_strict(groups, pl.Series(np.arange(groups.len())), default=None).to_numpy().astype(np.int64)
    c, e = _check_counts(w[count].to_numpy(), w[exposure].to_numpy())
    thr, paper = sine_cv(threshold_ratio), sine_cv(paper_ratio)
    if pooled:  # per group: sum(n cv^2 n/(n-1)) / sum(n) over windows with >= 2 gaps, 1 without any
        n_g = w["n_gaps"].to_numpy().astype(float)
        cv = w["cv"].fill_null(np.nan).to_numpy().astype(float)
        ok = (n_g >= 2) & np.isfinite(cv)
        num = np.bincount(codes, weights=np.where(ok, n_g * np.where(ok, cv, 0.0) ** 2 * n_g / np.maximum(n_g - 1, 1),
                                                  0.0), minlength=groups.len())
        den = np.bincount(codes, weights=np.where(ok, n_g, 0.0), minlength=groups.len())
        disp = np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0)
        disp = np.where(disp > 0, disp, 1.0)
    else:
        disp = np.full(groups.len(), float(dispersion))
    k, total, x2, p, effect, power, mde = _rate_arrays(c, e, codes, groups.len(), dispersion=disp,
                                                       level=level, threshold=thr, paper=paper)
    return _rate_table(by, groups, k, total, disp, x2, p, effect, power, mde, level=level, threshold=thr)


def rate_shift_tests_sparse(cells: pl.DataFrame, by: str, *, exposures, window: str = "window",
                            count: str = "n_requests", dispersion: float | str = 1.0, level: float = DEFAULT_LEVEL,
                            threshold_ratio: float = RATE_SHIFT_RATIO, paper_ratio: float = PAPER_RATE_RATIO,
                            min_exposure_fraction: float = 0.5) -> pl.DataFrame:
    """:func:`rate_shift_tests` from the active (group, window) cells only: every group has every
    window of ``exposures``, idle ones with 0 requests, without building that dense table.

    The same table as :func:`rate_shift_tests` on the filled table (equal up to the order of
    floating-point sums): every group shares the windows' exposures, so the windows kept
    (exposure at least ``min_exposure_fraction`` of the longest) and their total exposure
    :math:`E` are the same for all, and an idle kept window adds its expected count
    :math:`\\hat\\lambda e_w` to :math:`X^2`: :math:`X^2 = \\sum_{active} (c_w - \\hat\\lambda e_w)^2 /
    (\\hat\\lambda e_w) + \\hat\\lambda (E - \\sum_{active} e_w)`, with :math:`\\hat\\lambda = \\sum c_w / E`.
    Memory follows the active cells, not groups x windows.

    Parameters
    ----------
    cells : polars.DataFrame
        One row per active (group, window): ``<by>``, ``window`` (index into ``exposures``,
        0-based), ``n_requests`` and, for ``dispersion="pooled"``, ``n_gaps`` and ``cv``.
    by : str
        Group column.
    exposures : array-like of float
        Seconds every window covers (the same for every group), indexed by ``window``; a window
        covering 0 s (one starting at the last request) is left out with the other short ones.
    window, count, dispersion, level, threshold_ratio, paper_ratio, min_exposure_fraction
        As for :func:`rate_shift_tests` (``window`` names the window-index column).

    Returns
    -------
    polars.DataFrame
        The columns of :func:`rate_shift_tests`, groups in sorted order (nulls last).

    Raises
    ------
    ValueError
        If a column is missing, ``dispersion`` is not positive or "pooled", counts are not
        non-negative integers, a window index is outside ``exposures`` or the exposures are
        negative, not finite or all 0.
    """
    pooled = _check_dispersion(dispersion, cells, "cells", (by, window, count))
    e_all = np.asarray(exposures, dtype=float)
    if e_all.ndim != 1 or e_all.size == 0 or np.any(~np.isfinite(e_all)) or np.any(e_all < 0) or not e_all.max() > 0:
        raise ValueError(f"exposures must be a non-empty 1-D array of seconds >= 0, one positive; got {exposures!r}")
    idx = cells[window].to_numpy().astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= e_all.size):
        raise ValueError(f"window indices must lie in [0, {e_all.size}); got {idx.min()}..{idx.max()}")
    keep_w = e_all >= min_exposure_fraction * e_all.max()
    big_e, big_k = float(e_all[keep_w].sum()), float(keep_w.sum())
    groups = cells[by].unique().sort(nulls_last=True)
    lookup = pl.DataFrame({by: groups, "code_": np.arange(groups.len(), dtype=np.int64)})
    codes_all = cells.select(by).join(lookup, on=by, how="left", nulls_equal=True,
                                      maintain_order="left")["code_"].to_numpy()
    kept = keep_w[idx]
    codes = codes_all[kept]
    c, e = _check_counts(cells[count].to_numpy()[kept], e_all[idx[kept]])
    n = groups.len()
    thr, paper = sine_cv(threshold_ratio), sine_cv(paper_ratio)
    if pooled:
        n_g = cells["n_gaps"].to_numpy().astype(float)[kept]
        cv = cells["cv"].fill_null(np.nan).to_numpy().astype(float)[kept]
        ok = (n_g >= 2) & np.isfinite(cv)
        num = np.bincount(codes, weights=np.where(ok, n_g * np.where(ok, cv, 0.0) ** 2 * n_g / np.maximum(n_g - 1, 1),
                                                  0.0), minlength=n)
        den = np.bincount(codes, weights=np.where(ok, n_g, 0.0), minlength=n)
        disp = np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0)
        disp = np.where(disp > 0, disp, 1.0)
    else:
        disp = np.full(n, float(dispersion))
    total = np.bincount(codes, weights=c, minlength=n)
    rate = total / big_e
    expected = rate[codes] * e
    with np.errstate(divide="ignore", invalid="ignore"):
        active = np.bincount(codes, weights=np.where(expected > 0, (c - expected) ** 2 / expected, 0.0), minlength=n)
    idle = rate * (big_e - np.bincount(codes, weights=e, minlength=n))  # the kept idle windows' expected counts
    x2 = active + np.maximum(idle, 0.0)
    k, total, x2, p, effect, power, mde = _rate_inference(np.full(n, big_k), total, x2, n, dispersion=disp,
                                                          level=level, threshold=thr, paper=paper)
    return _rate_table(by, groups, k, total, disp, x2, p, effect, power, mde, level=level, threshold=thr)


# ----------------------------------------------------------------------------------------------
# burstiness


def _within_block(cts: np.ndarray) -> tuple[float, float, float]:
    """Within-block chi-square, its df and its exact conditional variance under the multinomial null."""
    cts = np.asarray(cts, dtype=float)
    m = cts.shape[1]
    tot = cts.sum(axis=1)
    live = tot > 0
    mean = tot[live] / m
    x2 = float(np.sum((cts[live] - mean[:, None]) ** 2 / mean[:, None]))
    df = float(live.sum() * (m - 1))
    var = float(np.sum(2.0 * (m - 1) * (1.0 - 1.0 / tot[live])))
    return x2, df, var


def within_block_dispersion(blocks) -> Dispersion:
    """Index of dispersion of sub-window counts within blocks, and its degrees of freedom.

    ``blocks`` has shape (blocks, sub-windows), e.g. 5-minute counts in 20-minute blocks
    (:func:`blocks_from_windows`). Under Poisson arrivals whose rate is constant within each
    block the index is 1 on average (exactly, conditionally on the block totals); for a
    stationary renewal process it estimates the count dispersion at the sub-window scale, without
    the rate shifts between blocks. Pass both to :func:`rate_shift_test` (``dispersion``,
    ``dispersion_df``).

    Raises
    ------
    ValueError
        If ``blocks`` is not 2-D with >= 2 columns of non-negative integers, or no block has a request.
    """
    cts = np.asarray(blocks)
    if cts.ndim != 2 or cts.shape[1] < 2 or np.any(cts < 0) or np.any(cts != np.round(cts)):
        raise ValueError(f"blocks must be 2-D (blocks, >= 2 sub-windows) non-negative integers; got shape {cts.shape}")
    x2, df, _ = _within_block(cts)
    if df == 0:
        raise ValueError("no block holds a request: the within-block dispersion is undefined")
    return Dispersion(float(x2 / df), int(df))


def burstiness_test(counts_by_scale: Mapping[float, np.ndarray], *, level: float = DEFAULT_LEVEL,
                    threshold: float = BURST_DISPERSION, paper_effect: float = PAPER_BURST_DISPERSION,
                    resolution_s: float = 0.0) -> NullTest:
    """Are arrivals burstier than Poisson within blocks (ServeGen F1, "bursty")?

    Parameters
    ----------
    counts_by_scale : Mapping[float, numpy.ndarray]
        Sub-window length in seconds -> counts of shape (blocks, sub-windows per block), e.g.
        :func:`block_counts` (the :data:`BURST_SCALES` sub-windows of 20-minute blocks).
    level : float
        Family-wise level over the scales (Bonferroni).
    threshold, paper_effect : float
        Practical threshold and paper's effect on the index of dispersion (1 under Poisson).
    resolution_s : float
        The trace's clock resolution; scales under 10 x this are left out (a coarse clock
        piles arrivals onto ticks and fakes bursts at short scales).

    Returns
    -------
    NullTest
        ``value`` and ``effect_value`` are those of the most dispersed scale.

    Raises
    ------
    ValueError
        No usable scale, or counts not 2-D non-negative integers.
    """
    usable = {float(s): np.asarray(c) for s, c in counts_by_scale.items() if float(s) >= 10.0 * resolution_s}
    if not usable:
        raise ValueError(f"no scale of {sorted(counts_by_scale)} is >= 10 x the clock resolution {resolution_s!r} s")
    n_scales = len(usable)
    alpha = level / n_scales
    rows = []
    for scale, cts in usable.items():  # a handful of scales, each vectorised over blocks
        if cts.ndim != 2 or cts.shape[1] < 2 or np.any(cts < 0) or np.any(cts != np.round(cts)):
            raise ValueError(f"counts at scale {scale:g} s must be 2-D (blocks, >= 2 sub-windows) non-negative "
                             f"integers; got shape {cts.shape}")
        x2, df, var = _within_block(cts)
        if df < MIN_SCALE_DF or var <= 0:
            rows.append((scale, x2, df, float("nan"), float("nan"), 0.0, float("inf")))
            continue
        g = var / (2.0 * df)
        h = df / g
        p = float(stats.chi2.sf(x2 / g, h))
        crit = g * stats.chi2.isf(alpha, h)
        cutoff = max(crit, threshold * df)
        power = float(stats.chi2.sf(cutoff / (paper_effect * g), h))
        # smallest dispersion with 80 % power: cutoff / (g * chi2 20th percentile)
        mde = float(cutoff / (g * stats.chi2.ppf(1.0 - POWER_TARGET, h)))
        rows.append((scale, x2, df, p, x2 / df, power, mde))
    valid = [r for r in rows if math.isfinite(r[3])]
    if not valid:
        return NullTest(null="Poisson arrivals, rate constant within each block", statistic="within-block chi-square",
                        value=float("nan"), p_value=None, level=level, effect="index of dispersion of counts",
                        effect_value=float("nan"), practical_threshold=threshold, paper_effect=paper_effect,
                        power=None, minimum_detectable_effect=None, alternative="", method="none", n=0,
                        decision="inconclusive",
                        reason=f"no scale has {MIN_SCALE_DF} degrees of freedom (too few blocks with requests)")
    power = max(r[5] for r in valid)
    mde = min(r[6] for r in valid)
    # "holds" needs one scale both significant (Bonferroni) and dispersed beyond the threshold; otherwise
    # the most significant scale is reported (it is then within the threshold, or not significant)
    hit = [r for r in valid if r[3] * n_scales < level and r[4] > threshold]
    best = max(hit, key=lambda r: r[4]) if hit else min(valid, key=lambda r: r[3])
    p_rep = min(1.0, n_scales * best[3])
    verdict, why = decide(p_value=p_rep, level=level, effect_value=best[4], practical_threshold=threshold,
                          power=power, mde=mde, paper_effect=paper_effect)
    scales = ", ".join(f"{r[0]:g} s: {r[4]:.3g}" if math.isfinite(r[3]) else f"{r[0]:g} s: too few blocks"
                       for r in rows)
    return NullTest(null="Poisson arrivals, rate constant within each block (rates may differ between blocks)",
                    statistic=f"within-block chi-square of {best[0]:g}-s counts", value=best[1], p_value=p_rep,
                    level=level, effect="index of dispersion of counts (variance / Poisson variance)",
                    effect_value=best[4], practical_threshold=threshold, paper_effect=paper_effect, power=power,
                    minimum_detectable_effect=mde,
                    alternative=f"counts {paper_effect:g} x as variable as Poisson at every scale",
                    method=f"asymptotic scaled chi-square with exact conditional moments, Bonferroni over {n_scales} "
                           "scales", n=int(best[2]), decision=verdict,
                    reason=f"dispersion by sub-window ({scales}); {why}")


# ----------------------------------------------------------------------------------------------
# doublings (BurstGPT's "request volume doubles 65 times within 5 minutes per workday")


def _doubling_share(cts: np.ndarray, ratio: float, min_prev: int) -> tuple[np.ndarray, np.ndarray]:
    """Bursts and eligible windows per row of ``cts`` (rows: series of consecutive counts)."""
    prev, cur = cts[:, :-1], cts[:, 1:]
    eligible = prev >= min_prev
    burst = eligible & (cur >= ratio * prev)
    return burst.sum(axis=1).astype(float), eligible.sum(axis=1).astype(float)


def doubling_test(counts, *, block: int, threshold_share: float, paper_share: float, ratio: float = 2.0,
                  min_prev: int = 1, level: float = DEFAULT_LEVEL, replicates: int = 499, seed: int = 0,
                  label: str = "windows") -> NullTest:
    r"""Does request volume double from one window to the next more often than counting noise makes it?

    Null: *Poisson arrivals whose rate is constant within each block of* ``block`` *consecutive
    windows* (rates may change between blocks, e.g. hours), simulated as independent Poisson
    counts with the block's mean count (slightly more variable than counts given the block's
    total, so the p-value errs on the safe side). Statistic: the share of eligible windows (previous
    count >= ``min_prev``) whose count is >= ``ratio`` x the previous one; p-value by parametric
    bootstrap of that null (``replicates`` draws of every block, vectorised), on the full blocks of
    the series. "Holds" needs the share beyond the null at ``level`` and above ``threshold_share``
    (e.g. half the paper's share); power at ``paper_share`` from the normal approximation of the
    share with the null's spread scaled binomially (:math:`\sigma_1 = \sigma_0
    \sqrt{p_1(1-p_1) / (p_0(1-p_0))}`), and it is 0 when the series has under 2 eligible windows.

    Parameters
    ----------
    counts : array-like of int
        Requests per consecutive window, idle windows as 0.
    block : int
        Windows per block inside which the null's rate is constant (>= 2).
    threshold_share, paper_share : float
        Practical threshold and the paper's share of doubling windows (0 < threshold < paper < 1).
    ratio, min_prev :
        The doubling rule (:func:`servelab.analysis.bursts.doubling_mask`).
    level : float
    replicates, seed : int
        Bootstrap size and seed.
    label : str
        The windows, for the null's words (e.g. "5-minute windows").

    Returns
    -------
    NullTest

    Raises
    ------
    ValueError
        Counts not 1-D non-negative integers, ``block`` < 2, shares out of order.
    """
    c = np.asarray(counts)
    if c.ndim != 1 or np.any(c < 0) or np.any(c != np.round(c)):
        raise ValueError(f"counts must be 1-D non-negative integers; got shape {c.shape}")
    if not (isinstance(block, (int, np.integer)) and block >= 2):
        raise ValueError(f"block must be an integer >= 2; got {block!r}")
    if not 0 < threshold_share < paper_share < 1:
        raise ValueError(f"need 0 < threshold_share < paper_share < 1; got {threshold_share!r}, {paper_share!r}")
    nb = c.size // block
    cts = c[: nb * block].astype(np.int64)
    common = dict(null=f"Poisson arrivals whose rate is constant within each block of {block} {label} (rates may "
                       "change between blocks)",
                  statistic=f"share of eligible {label} at >= {ratio:g} x the previous count", level=level,
                  effect=f"share of {label} that double", practical_threshold=threshold_share,
                  paper_effect=paper_share, alternative=f"a true doubling share of {paper_share:.3g}")
    bursts, eligible = _doubling_share(cts[None, :], ratio, min_prev)
    if nb < 1 or eligible[0] < 2:
        return NullTest(value=float("nan"), p_value=None, effect_value=float("nan"), power=None,
                        minimum_detectable_effect=None, method="none", n=int(eligible[0]) if nb else 0,
                        decision="inconclusive", reason=f"{int(eligible[0]) if nb else 0} eligible {label} in "
                        f"{nb} full blocks: too few to compare", **common)
    share = float(bursts[0] / eligible[0])
    lam = np.repeat(cts.reshape(nb, block).mean(axis=1), block)
    rng = np.random.default_rng(seed)
    s_sim = np.empty(replicates)
    step = max(1, min(replicates, 2_000_000 // lam.size))  # replicates per chunk: at most ~16 MB of counts
    for i in range(0, replicates, step):  # chunks of replicates, each vectorised over every window
        sims = rng.poisson(lam, size=(min(step, replicates - i), lam.size))
        b_sim, e_sim = _doubling_share(sims, ratio, min_prev)
        with np.errstate(invalid="ignore", divide="ignore"):
            s_sim[i:i + sims.shape[0]] = np.where(e_sim > 0, b_sim / e_sim, 0.0)
    p = float((1 + np.sum(s_sim >= share)) / (replicates + 1))
    mu0, sd0 = float(s_sim.mean()), float(s_sim.std(ddof=1))
    crit = max(float(np.quantile(s_sim, 1.0 - level)), threshold_share)

    def power_at(q: float) -> float:
        base = max(mu0 * (1 - mu0), 1e-12)
        sd1 = max(sd0, 1e-12) * math.sqrt(max(q * (1 - q), 1e-12) / base)
        return float(stats.norm.sf((crit - q) / sd1))

    power = power_at(paper_share)
    mde = minimum_detectable_effect(power_at, lower=0.0, upper=1.0 - 1e-9)
    verdict, why = decide(p_value=p, level=level, effect_value=share, practical_threshold=threshold_share,
                          power=power, mde=mde, paper_effect=paper_share)
    return NullTest(value=share, p_value=p, effect_value=share, power=power, minimum_detectable_effect=mde,
                    method=f"parametric bootstrap of the null (B={replicates}, seed={seed}); power from the normal "
                           "approximation", n=int(eligible[0]), decision=verdict,
                    reason=f"{int(bursts[0])} of {int(eligible[0])} eligible {label} double ({share:.3f}; the null "
                           f"gives {mu0:.3f} on average, sd {sd0:.3f}); {why}", **common)
