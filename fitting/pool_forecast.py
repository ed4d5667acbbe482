r"""The total rate of a pool beyond its span: trend times daily periodicity (issue 17 item 2).

The series is the pool's total rate per arrival window (the sum of its clients' rates). The model
is multiplicative, with one day as the period when the span holds at least two whole days (else
no periodicity):

.. math::

    \hat r(t) = \max\bigl(\ell + b\,(t - t_\text{end}),\; f \ell\bigr)\; s(\text{phase}(t))

- :math:`s_j`: the mean rate at phase ``j`` (window of the day) over the span's whole days divided
  by their overall mean (so the factors average 1);
- the seasonally adjusted series :math:`a_t = r_t / s_{\text{phase}(t)}` gives the trend: the
  Theil-Sen slope :math:`b` (``scipy.stats.theilslopes``), kept only when the Mann-Kendall test
  (Kendall's tau against time, ``scipy.stats.kendalltau``) is significant at two-sided
  p < :data:`TREND_P`, else 0 (rank-based, so one odd block, such as a partial first day, neither
  makes nor tilts a trend; a least-squares line on ServeGen m-small's first week kept a rising
  trend from its half-empty first day and overshot the second week by 28%), fitted on the means of :math:`a` per block (one day; an eighth of a span shorter than two days),
  since window rates are autocorrelated and a regression on them finds "significant" trends in
  every wiggle; the level :math:`\ell` is the last block's mean carried to the span's end by a kept
  slope, else the mean of :math:`a` over the last day (the whole span when shorter);
- :math:`f` = :data:`FLOOR_SHARE` keeps an extrapolated falling trend from reaching zero.

:func:`fit_rate_forecast` also scores the model on its own span (hold out the last period, refit
on the rest, NMAE of :func:`servelab.fitting.forecasting.nmae`, with the seasonal-naive NMAE
beside it), so a user can see whether extrapolating is sensible. Draws nothing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import stats

from servelab.analysis.periodicity import DAY_S
from servelab.fitting.forecasting import nmae

__all__ = ["FLOOR_SHARE", "TREND_P", "RateForecast", "fit_rate_forecast", "total_rate_series"]

#: significance level below which the trend's slope is kept
TREND_P = 0.01
#: the extrapolated level never falls below this share of the level at the end of the span
FLOOR_SHARE = 0.1


def total_rate_series(arrivals) -> pl.DataFrame:
    """``window_start, window_s, rate``: the pool's total rate per arrival window, in time order.

    Summed in numpy over rows sorted by window and client, so the float sums (and everything
    seeded downstream) do not depend on the table's row order.
    """
    lf = arrivals.lazy() if isinstance(arrivals, pl.DataFrame) else arrivals
    a = (lf.select("client_id", "window_start", "window_s", pl.col("rate").fill_null(0.0))
         .sort("window_start", "client_id").collect())
    ws = a["window_start"].to_numpy()
    if ws.size == 0:
        return pl.DataFrame(schema={"window_start": pl.Float64, "window_s": pl.Float64, "rate": pl.Float64})
    first = np.r_[0, np.flatnonzero(np.diff(ws)) + 1]
    return pl.DataFrame({"window_start": ws[first],
                         "window_s": np.maximum.reduceat(a["window_s"].to_numpy(), first),
                         "rate": np.add.reduceat(a["rate"].to_numpy(), first)})


@dataclass(frozen=True)
class RateForecast:
    """A fitted trend x daily-periodicity model of a pool's total rate (module docstring).

    Attributes
    ----------
    end_s : float
        End of the fitted span (the trend's origin).
    window_s : float
        Window of the series.
    period_s : float or None
        One day when the span holds two whole days, else None (no periodicity).
    level : float
        Seasonally adjusted rate at ``end_s`` (req/s).
    slope : float
        Trend, req/s per second (0 when not significant).
    slope_p : float
        Two-sided p-value of the Mann-Kendall trend test.
    season : tuple of float
        Factors per window of the period (empty without periodicity).
    backtest_nmae, seasonal_naive_nmae : float
        NMAE on the span's last period when refitted on the rest, and the seasonal-naive one
        (NaN when the span is too short to hold one out).
    """

    end_s: float
    window_s: float
    period_s: float | None
    level: float
    slope: float
    slope_p: float
    season: tuple[float, ...]
    backtest_nmae: float
    seasonal_naive_nmae: float

    def rate_at(self, t) -> np.ndarray:
        """The forecast total rate (req/s) at times ``t`` (seconds, the pool's clock)."""
        t = np.asarray(t, dtype=float)
        trend = np.maximum(self.level + self.slope * (t - self.end_s), FLOOR_SHARE * self.level)
        if self.period_s is None or not self.season:
            return trend
        phase = np.floor(np.mod(t, self.period_s) / self.window_s).astype(np.int64) % len(self.season)
        return trend * np.asarray(self.season)[phase]

    def describe(self) -> dict:
        """A JSON-ready summary."""
        def num(x):
            return None if not math.isfinite(x) else float(x)

        return {"model": "max(level + slope (t - end), 0.1 level) x daily factor", "period_s": self.period_s,
                "level_rps": num(self.level), "slope_rps_per_day": num(self.slope * DAY_S),
                "slope_p": num(self.slope_p), "trend_kept": self.slope != 0.0,
                "backtest_nmae": num(self.backtest_nmae), "seasonal_naive_nmae": num(self.seasonal_naive_nmae)}


def _fit(t: np.ndarray, r: np.ndarray, window_s: float, end_s: float) -> RateForecast:
    n_per = int(round(DAY_S / window_s))
    duration = t.size * window_s
    period = DAY_S if (duration >= 2 * DAY_S and abs(n_per * window_s - DAY_S) < 1e-6) else None
    if period is not None:
        phase = np.floor(np.mod(t, DAY_S) / window_s).astype(np.int64) % n_per
        sums = np.bincount(phase, weights=r, minlength=n_per)
        cnt = np.bincount(phase, minlength=n_per)
        means = np.where(cnt > 0, sums / np.maximum(cnt, 1), np.nan)
        overall = np.nanmean(means)
        season = np.where(np.isfinite(means) & (overall > 0), means / overall if overall > 0 else 1.0, 1.0)
        season = np.where(season > 0, season, 0.0)
        adj = np.where(season[phase] > 0, r / np.where(season[phase] > 0, season[phase], 1.0), np.nan)
        last = t >= end_s - DAY_S
    else:
        season = np.zeros(0)
        adj = r.astype(float)
        last = np.ones(t.size, bool)
    ok = np.isfinite(adj)
    # the trend is fitted on block means (one day, or an eighth of a short span): window rates are
    # autocorrelated, so a regression on them would call every wiggle a significant trend
    block = n_per if period is not None else max(1, t.size // 8)
    b = (np.arange(t.size) // block)[ok]
    nb = int(b.max()) + 1 if b.size else 0
    cnt = np.bincount(b, minlength=nb)
    bmean = np.bincount(b, weights=adj[ok], minlength=nb) / np.maximum(cnt, 1)
    bmid = np.bincount(b, weights=t[ok], minlength=nb) / np.maximum(cnt, 1) + window_s / 2
    full = cnt >= max(1, block // 2)
    slope, p = 0.0, 1.0
    level = float(np.nanmean(adj[last & ok])) if np.any(last & ok) else (float(np.nanmean(adj[ok])) if ok.any() else 0.0)
    if full.sum() >= 4 and np.ptp(bmid[full]) > 0:
        tau = stats.kendalltau(bmid[full], bmean[full])
        p = float(tau.pvalue) if math.isfinite(tau.pvalue) else 1.0
        if p < TREND_P:
            slope = float(stats.theilslopes(bmean[full], bmid[full]).slope)
            # the level at the end: the last block's mean carried on by the slope
            level = float(bmean[full][-1] + slope * (end_s - bmid[full][-1]))
    level = max(level, 0.0)
    return RateForecast(end_s=float(end_s), window_s=float(window_s), period_s=period, level=level, slope=slope,
                        slope_p=p, season=tuple(float(x) for x in season), backtest_nmae=math.nan,
                        seasonal_naive_nmae=math.nan)


def fit_rate_forecast(arrivals, span: tuple[float, float]) -> RateForecast:
    """Fit :class:`RateForecast` on a pool's arrivals table over ``span`` (module docstring).

    Raises
    ------
    ValueError
        If the table has no window in ``span``.
    """
    series = total_rate_series(arrivals).filter(
        (pl.col("window_start") >= span[0] - 1e-9) & (pl.col("window_start") < span[1]))
    if series.height == 0:
        raise ValueError(f"the pool has no arrival window in its span {tuple(span)!r}: nothing to forecast")
    window_s = float(series["window_s"].max())
    # a regular grid over the span: windows the table lacks are idle (rate 0)
    k = np.round((series["window_start"].to_numpy() - span[0]) / window_s).astype(np.int64)
    n = int(math.ceil((span[1] - span[0]) / window_s - 1e-9))
    r = np.zeros(n)
    r[np.clip(k, 0, n - 1)] = series["rate"].to_numpy()
    t = span[0] + np.arange(n) * window_s
    model = _fit(t, r, window_s, float(span[1]))
    # back-test: hold out the last period (one day, or the last quarter of a short span)
    hold = int(round(DAY_S / window_s)) if n * window_s >= 3 * DAY_S else max(1, n // 4)
    if n - hold >= 3:
        past = _fit(t[:-hold], r[:-hold], window_s, float(t[-hold]))
        pred = past.rate_at(t[-hold:])
        season_naive = r[-2 * hold:-hold] if n >= 2 * hold else np.full(hold, r[:-hold].mean())
        model = RateForecast(**{**model.__dict__, "backtest_nmae": nmae(r[-hold:], pred),
                                "seasonal_naive_nmae": nmae(r[-hold:], season_naive)})
    return model
