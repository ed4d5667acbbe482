"""Gamma (shape alpha, rate beta) fitted per window over a trace (BurstGPT Fig. 6).

BurstGPT models the inter-arrival gaps of every 20-minute window with a Gamma distribution of shape
:math:`\\alpha` and rate :math:`\\beta` (= 1 / scale), whose CV is :math:`1/\\sqrt{\\alpha}`. This
module fits all windows at once, vectorised, from the per-window statistics that
:func:`servelab.analysis.arrivals.window_stats` computes in SQL:

``method="mle"`` (default)
    the maximum-likelihood Gamma of each window's gaps, from their sufficient statistics (mean and
    mean log) with the vectorised Newton solver :func:`servelab.fitting.families.gamma_mle_from_stats`.
    Gaps below the trace's logging clock are censored upstream: ``window_stats`` (with its default
    ``clock="auto"``) jitters every request uniformly within its tick, so every gap is positive and
    the fit uses them all (a Poisson process on a 3-s clock gives alpha near 1). Exact zeros reach
    the fit only without a censoring clock (float ties of a continuous trace, or ``clock=None``):
    they are left out and counted in ``n_zero_gaps``, which biases alpha upwards (on a 3-s clock
    read as exact, alpha 1e7);
``method="moments"``
    the method of moments on all gaps: :math:`\\alpha = \\bar{x}^2 / s^2`, :math:`\\beta = \\bar{x} / s^2`
    (population variance), so that ``cv_gamma`` equals the window's empirical CV.

Windows with fewer than 2 usable gaps (or a zero variance) are undefined: null alpha, beta and CV,
never 0. This module does not read stores itself beyond calling the analysis layer, and plots
nothing.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from servelab.fitting.families import gamma_mle_from_stats

__all__ = ["gamma_per_window", "gamma_windows", "WINDOW_METHODS"]

#: accepted ``method`` values
WINDOW_METHODS = ("mle", "moments")


def gamma_per_window(windows: pl.DataFrame, *, method: str = "mle") -> pl.DataFrame:
    """Add a Gamma fit to each row of a window-statistics table.

    Parameters
    ----------
    windows : polars.DataFrame
        Output of :func:`servelab.analysis.arrivals.window_stats` (needs ``n_gaps``,
        ``mean_gap_s``, ``std_gap_s``, ``n_positive_gaps``, ``mean_positive_gap_s``,
        ``mean_log_positive_gap``).
    method : {"mle", "moments"}
        See the module docstring.

    Returns
    -------
    polars.DataFrame
        ``windows`` plus ``alpha`` (shape), ``beta`` (rate, 1/s), ``scale_s`` (= 1/beta),
        ``cv_gamma`` (= 1/sqrt(alpha)), ``gamma_n`` (gaps the fit used), ``gamma_converged`` and
        ``gamma_method``; fit columns are null for undefined windows.

    Raises
    ------
    ValueError
        If ``method`` is unknown or a needed column is missing.
    """
    if method not in WINDOW_METHODS:
        raise ValueError(f"method must be one of {WINDOW_METHODS}; got {method!r}")
    need = ["n_gaps", "mean_gap_s", "std_gap_s", "n_positive_gaps", "mean_positive_gap_s", "mean_log_positive_gap"]
    missing = [c for c in need if c not in windows.columns]
    if missing:
        raise ValueError(f"windows lacks columns {missing}; pass the output of analysis.arrivals.window_stats")
    if method == "mle":
        n = windows["n_positive_gaps"].to_numpy().astype(float)
        mean = windows["mean_positive_gap_s"].fill_null(np.nan).to_numpy().astype(float)
        mean_log = windows["mean_log_positive_gap"].fill_null(np.nan).to_numpy().astype(float)
        ok = (n >= 2) & np.isfinite(mean) & np.isfinite(mean_log)
        a, scale, conv = gamma_mle_from_stats(np.where(ok, mean, 1.0), np.where(ok, mean_log, np.nan))
        ok = ok & np.isfinite(a)
    else:
        n = windows["n_gaps"].to_numpy().astype(float)
        mean = windows["mean_gap_s"].fill_null(np.nan).to_numpy().astype(float)
        std = windows["std_gap_s"].fill_null(np.nan).to_numpy().astype(float)
        var = std * std
        ok = (n >= 2) & np.isfinite(var) & (var > 0) & np.isfinite(mean) & (mean > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where(ok, mean * mean / var, np.nan)
            scale = np.where(ok, var / mean, np.nan)
        conv = ok
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = 1.0 / scale
        cv = 1.0 / np.sqrt(a)
    return windows.with_columns(
        pl.Series("alpha", np.where(ok, a, np.nan)).fill_nan(None),
        pl.Series("beta", np.where(ok, beta, np.nan)).fill_nan(None),
        pl.Series("scale_s", np.where(ok, scale, np.nan)).fill_nan(None),
        pl.Series("cv_gamma", np.where(ok, cv, np.nan)).fill_nan(None),
        pl.Series("gamma_n", np.where(ok, n, 0).astype(np.int64)),
        pl.Series("gamma_converged", np.asarray(conv, dtype=bool) & ok),
        pl.lit(method).alias("gamma_method"),
    )


def gamma_windows(store, *, window_s: str | float = "20m", by: str | None = None, method: str = "mle",
                  fill_idle: bool = True, clock="auto", seed: int = 0) -> pl.DataFrame:
    """Gamma per window straight from a store (BurstGPT Fig. 6: ``window_s="20m"``, ``by="service"``).

    See :func:`servelab.analysis.arrivals.window_stats` for the windows, the logging clock
    (``clock``: ``"auto"``, None or a step in seconds) and the jitter ``seed``, and
    :func:`gamma_per_window` for the fit.
    """
    from servelab.analysis.arrivals import window_stats

    return gamma_per_window(window_stats(store, window_s=window_s, by=by, fill_idle=fill_idle, clock=clock, seed=seed),
                            method=method)
