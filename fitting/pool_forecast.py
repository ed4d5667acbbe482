r"""The total rate of a pool beyond its span: a damped trend times a daily pattern (issue 17 item 2).

The series is the pool's total rate per arrival window (the sum of its clients' rates). The model
is multiplicative,

.. math::

    \hat r(t) = \Bigl(\ell + \operatorname{clip}\bigl(b\,D\,\textstyle\sum_{i=1}^{h}\varphi^i,\;
    \pm c\,\ell\bigr)\Bigr)\; s(\text{phase}(t)), \qquad h = (t - t_\text{end}) / D,

with :math:`D` one day, :math:`\varphi` = :data:`DAMPING` (the damped trend of Gardner and
McKenzie, summed in closed form :math:`\varphi (1 - \varphi^h) / (1 - \varphi)` for fractional
:math:`h`; the whole trend adds at most :math:`\varphi / (1 - \varphi)` = 9 days of slope) and
:math:`c` = :data:`TREND_CAP` capping what the trend may add or remove. Each part is kept only
when a test says the span shows it:

- **daily pattern** :math:`s_j` (the mean rate at phase ``j``, window of the day, divided by the
  overall mean, so the factors average 1): only when the span holds two whole days and the
  Friedman test (``scipy.stats.friedmanchisquare``; treatments the hours of the day, blocks the
  whole days; on the series over its centred one-day moving average, since a trend alone ranks
  every day's late hours above its early ones) rejects "the hour of day does not matter" at p < :data:`SEASON_P`; else
  :math:`s \equiv 1`. Each phase's mean carries its days' noise (a sparse trace: a request or two a
  window), so the factors are shrunk toward a smooth day (:data:`SEASON_HARMONICS` harmonics) phase
  by phase, by the non-negative garrote at the universal threshold
  (:math:`d (1 - 2 \ln(n) \sigma^2 / d^2)_+` for a deviation :math:`d` from the smooth day, :math:`n` phases,
  :math:`\sigma^2` the means' noise from the day-to-day variance), or by the method-of-moments factor
  common to all phases where that keeps more: noise goes, a real sharp hour stays
  (:func:`_season_factors`);
- **trend**: on the means of the seasonally adjusted series :math:`a_t = r_t / s_{\text{phase}(t)}`
  per block (whole days counted back from the span's end; an eighth of a span shorter than two
  days, whose blocks serve the level only; partial blocks dropped), since window rates are
  autocorrelated and a test on them finds "significant" trends in every wiggle. Tested only on
  at least four whole days (within a shorter span a rise or fall is as likely the daily cycle,
  which cannot be told apart there). Kept only when the Mann-Kendall test (Kendall's tau of
  the block means against time, ``scipy.stats.kendalltau``) gives p < :data:`TREND_P` **and** the
  curvature of a quadratic fit (``statsmodels`` OLS, t-test of the squared term) is not
  significant (p >= :data:`CURVATURE_P`): a hump or a dip is not a trend to extrapolate. The
  slope :math:`b` is Theil-Sen's (``scipy.stats.theilslopes``, rank-based, so one odd block such as
  a half-empty first day neither makes nor tilts it) and the level :math:`\ell` is its line at the
  span's end;
- **without a trend** the level is the median of the block means (robust to one odd day); on a
  span of one to two days (no daily pattern can be tested, blocks are eighths of the span) it is
  the mean of the last whole day instead: the eighths of a span of, say, 1.5 days hold one phase
  of the daily cycle twice, and their median took that phase's level (a stationary simulated
  trace with a daily cycle of amplitude 0.6, fitted on 1.5 days: count over the next 1.5 days
  15.7% low with the eighths, 6.3% low with the last whole day; median of 10 seeds,
  ``benchmarks/bench_validate.simulate_trace``);

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
from statsmodels.regression.linear_model import OLS

from servelab.analysis.periodicity import DAY_S
from servelab.fitting.forecasting import nmae

__all__ = ["CURVATURE_P", "DAMPING", "SEASON_HARMONICS", "SEASON_P", "TREND_CAP", "TREND_P", "RateForecast", "fit_rate_forecast",
           "total_rate_series"]

#: Mann-Kendall p-value below which a trend is kept
TREND_P = 0.01
#: a trend is kept only when the quadratic term's p-value is at least this (no hump or dip)
CURVATURE_P = 0.01
#: Friedman p-value below which the daily pattern is kept
SEASON_P = 0.01
#: damping of the trend per day (Holt's damped trend)
DAMPING = 0.9
#: what the trend may add to or remove from the level, as a share of it
TREND_CAP = 0.5


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
    """A fitted damped-trend x daily-pattern model of a pool's total rate (module docstring).

    Attributes
    ----------
    end_s : float
        End of the fitted span (the trend's origin).
    window_s : float
        Window of the series.
    period_s : float or None
        One day when the daily pattern is kept, else None.
    level : float
        Seasonally adjusted rate at ``end_s`` (req/s).
    slope : float
        Trend at ``end_s``, req/s per second (0 when not kept).
    slope_p : float
        Two-sided p-value of the Mann-Kendall trend test (1 when not run).
    curvature_p : float
        p-value of the quadratic term (NaN when not run).
    season_p : float
        p-value of the Friedman test of the daily pattern (NaN when the span holds < 2 days).
    season : tuple of float
        Factors per window of the period (empty without a kept daily pattern).
    n_blocks : int
        Whole blocks the trend was tested on.
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
    curvature_p: float = math.nan
    season_p: float = math.nan
    n_blocks: int = 0

    def trend_at(self, t) -> np.ndarray:
        """The seasonally adjusted forecast (req/s) at times ``t``: level plus the damped, capped trend."""
        t = np.asarray(t, dtype=float)
        h = np.maximum(t - self.end_s, 0.0) / DAY_S
        damped = DAMPING * (1.0 - DAMPING ** h) / (1.0 - DAMPING)  # sum_{i=1}^{h} phi^i, fractional h
        cap = TREND_CAP * self.level
        return self.level + np.clip(self.slope * DAY_S * damped, -cap, cap)

    def rate_at(self, t) -> np.ndarray:
        """The forecast total rate (req/s) at times ``t`` (seconds, the pool's clock)."""
        t = np.asarray(t, dtype=float)
        trend = self.trend_at(t)
        if self.period_s is None or not self.season:
            return trend
        phase = np.floor(np.mod(t, self.period_s) / self.window_s).astype(np.int64) % len(self.season)
        return trend * np.asarray(self.season)[phase]

    def describe(self) -> dict:
        """A JSON-ready summary."""
        def num(x):
            return None if not math.isfinite(x) else float(x)

        return {"model": (f"(level + damped trend (phi={DAMPING:g}/day, capped at +-{TREND_CAP:g} level)) "
                          "x daily factor"),
                "period_s": self.period_s, "level_rps": num(self.level), "slope_rps_per_day": num(self.slope * DAY_S),
                "slope_p": num(self.slope_p), "curvature_p": num(self.curvature_p), "trend_kept": self.slope != 0.0,
                "season_p": num(self.season_p), "daily_pattern_kept": self.period_s is not None,
                "blocks": self.n_blocks,
                "backtest_nmae": num(self.backtest_nmae), "seasonal_naive_nmae": num(self.seasonal_naive_nmae),
                "limits": list(self.limits())}

    def limits(self) -> tuple[str, ...]:
        """What the forecast could and could not see, in words: one statement for the daily pattern,
        one for the trend, and the back-test when there was one. A forecast whose fitted span is
        too short to test a part cannot extrapolate it: a count error past the span then says
        nothing about the generator (``servelab validate`` prints these beside its table)."""
        out = []
        if not math.isfinite(self.season_p):
            out.append("daily pattern not tested (the fitted span holds fewer than two whole days): the forecast "
                       "is flat over the day, so hours the span did not hold come at its level")
        elif self.period_s is None:
            out.append(f"daily pattern tested, not kept (Friedman p = {self.season_p:.3g} >= {SEASON_P:g})")
        else:
            out.append(f"daily pattern kept (Friedman p = {self.season_p:.3g} < {SEASON_P:g})")
        if not math.isfinite(self.curvature_p):
            out.append("trend not tested (fewer than four whole days): a rise or fall after the span is not "
                       "foreseen from the total rate")
        elif self.slope == 0.0:
            why = (f"Mann-Kendall p = {self.slope_p:.3g}" + (f" >= {TREND_P:g}" if self.slope_p >= TREND_P else "")
                   + f", curvature p = {self.curvature_p:.3g}"
                   + (f" < {CURVATURE_P:g} (a hump or dip)" if self.curvature_p < CURVATURE_P else ""))
            out.append(f"trend tested over {self.n_blocks} days, not kept ({why})")
        else:
            out.append(f"trend kept over {self.n_blocks} days: {self.slope * DAY_S:+.4g} req/s per day at the span's "
                       f"end (Mann-Kendall p = {self.slope_p:.3g}), damped by {DAMPING:g} a day and capped at "
                       f"{TREND_CAP:.0%} of the level")
        if math.isfinite(self.backtest_nmae):
            out.append(f"back-test on the span's last period: NMAE {self.backtest_nmae:.3f} (seasonal naive "
                       f"{self.seasonal_naive_nmae:.3f})")
        return tuple(out)


def _over_moving_day(r: np.ndarray, n_per: int, *, fill: float) -> np.ndarray:
    """The series over its centred one-day moving average (classical decomposition: a trend is
    not read as the hour of the day, nor as its noise); ``fill`` where that average is 0."""
    ones = np.ones(n_per)
    ma = np.convolve(r, ones, mode="same") / np.convolve(np.ones(r.size), ones, mode="same")
    return np.where(ma > 0, r / np.where(ma > 0, ma, 1.0), fill)


def _friedman_p(t: np.ndarray, r: np.ndarray, window_s: float) -> float:
    """Friedman p-value of "the hour of day does not matter": treatments the (up to 24) bins of the
    day, blocks the whole days of the span (NaN with fewer than two whole days)."""
    n_per = int(round(DAY_S / window_s))
    n_bins = min(24, n_per)
    day = np.floor(t / DAY_S).astype(np.int64)
    phase = np.floor(np.mod(t, DAY_S) / window_s).astype(np.int64) % n_per
    days, cnt = np.unique(day, return_counts=True)
    whole = days[cnt == n_per]
    if whole.size < 2 or n_bins < 3:
        return math.nan
    # detrended first (each window over the centred one-day moving average, classical
    # decomposition): a trend alone ranks the late hours of every day above the early ones
    x = _over_moving_day(r, n_per, fill=0.0)
    keep = np.isin(day, whole)
    row = np.searchsorted(whole, day[keep])
    col = phase[keep] * n_bins // n_per
    m = np.zeros((whole.size, n_bins))
    np.add.at(m, (row, col), x[keep])
    if np.all(m == m[:, :1]):  # every bin equal on every day: no pattern, and scipy's statistic is 0/0
        return 1.0
    p = stats.friedmanchisquare(*m.T).pvalue
    return float(p) if math.isfinite(p) else 1.0


def _curvature_p(x: np.ndarray, y: np.ndarray) -> float:
    """p-value of the squared term of an OLS quadratic fit of ``y`` on ``x`` (NaN with < 4 points)."""
    if x.size < 4:
        return math.nan
    z = (x - x.mean()) / (np.ptp(x) or 1.0)
    fit = OLS(y, np.column_stack([np.ones_like(z), z, z * z])).fit()
    p = float(fit.pvalues[2])
    return p if math.isfinite(p) else 1.0


#: harmonics of the day in the smooth profile the daily factors are shrunk toward (24, 12, 8, 6 h)
SEASON_HARMONICS = 4


def _season_factors(r: np.ndarray, phase: np.ndarray, n_per: int) -> np.ndarray:
    """Daily factors per phase: each phase's mean rate over the overall mean, shrunk toward a smooth
    day (:data:`SEASON_HARMONICS` harmonics, least squares) where they are noise.

    A phase's mean over ``d`` days carries the day-to-day variance of its windows over ``d``
    (estimated on the series over its centred one-day moving average, so a trend is not counted
    as noise; ``sigma^2`` below is its mean over the phases). Each phase's deviation ``d_j`` from
    the smooth day is kept by the larger of two factors: the non-negative garrote at the universal
    threshold, ``(1 - 2 ln(n) sigma^2 / d_j^2)_+`` over ``n`` phases (a deviation beyond what the
    largest of ``n`` noises reaches is kept almost whole: a real sharp hour), and the
    method-of-moments factor common to all phases, ``max(0, 1 - sigma^2 / mean(d^2))`` (a day whose
    shape is beyond the smooth one everywhere keeps it). Known truth
    (``tests/fitting/test_pool_forecast_season.py``): the factors' error against a true cosine day
    falls 0.29 -> 0.07 at 1.2 requests a window, 0.10 -> 0.025 at 600; a sharp hour at 3.5 x the
    mean is kept at 3.3-3.4 (one common factor alone shrank it to 2.5-2.9). Without the shrink,
    the means' noise was read as a more peaked day than the trace had, and a naive baseline
    following it was given dispersion it did not have (``servelab validate``'s rates line on the
    sparse 4,244-client store: naive 1.11, now 1.03; real 2.39 with bursts).
    """
    sums = np.bincount(phase, weights=r, minlength=n_per)
    cnt = np.bincount(phase, minlength=n_per)
    means = np.where(cnt > 0, sums / np.maximum(cnt, 1), np.nan)
    overall = np.nanmean(means)
    if not overall > 0:
        return np.ones(n_per)
    raw = means / overall
    seen = np.isfinite(raw)
    # day-to-day variance of each phase, on the detrended series (relative units, like the factors)
    x = _over_moving_day(r, n_per, fill=np.nan)
    ok = np.isfinite(x)
    c2 = np.bincount(phase[ok], minlength=n_per)
    m2 = np.bincount(phase[ok], weights=x[ok], minlength=n_per) / np.maximum(c2, 1)
    ss = np.bincount(phase[ok], weights=(x[ok] - m2[phase[ok]]) ** 2, minlength=n_per)
    has_var = seen & (c2 >= 2)
    k = np.arange(n_per)
    h = min(SEASON_HARMONICS, max(0, (n_per - 1) // 2))
    design = np.column_stack([np.ones(n_per)] + [f(2 * np.pi * j * k / n_per) for j in range(1, h + 1)
                                                  for f in (np.cos, np.sin)])
    if not has_var.any() or seen.sum() <= design.shape[1]:
        season = np.where(seen, raw, 1.0)
    else:
        coef = np.linalg.lstsq(design[seen], raw[seen], rcond=None)[0]
        smooth = design @ coef
        noise = float(np.mean(ss[has_var] / (c2[has_var] - 1) / cnt[has_var]))
        dev = np.where(seen, raw - smooth, 0.0)
        spread = float(np.mean(dev[seen] ** 2))
        g_all = max(0.0, 1.0 - noise / spread) if spread > 0 else 0.0
        lam = 2.0 * math.log(max(int(seen.sum()), 2)) * noise
        g = np.maximum(g_all, np.clip(1.0 - lam / np.maximum(dev ** 2, 1e-300), 0.0, 1.0))
        season = np.where(seen, smooth + g * dev, smooth)
    season = np.where(season > 0, season, 0.0)
    mean = float(np.mean(season[seen])) if seen.any() else 1.0
    return season / mean if mean > 0 else np.ones(n_per)


def _fit(t: np.ndarray, r: np.ndarray, window_s: float, end_s: float) -> RateForecast:
    n_per = int(round(DAY_S / window_s))
    duration = t.size * window_s
    daily = duration >= 2 * DAY_S and abs(n_per * window_s - DAY_S) < 1e-6
    season_p = _friedman_p(t, r, window_s) if daily else math.nan
    if daily and season_p < SEASON_P:
        phase = np.floor(np.mod(t, DAY_S) / window_s).astype(np.int64) % n_per
        season = _season_factors(r, phase, n_per)
        adj = np.where(season[phase] > 0, r / np.where(season[phase] > 0, season[phase], 1.0), np.nan)
        period = DAY_S
    else:
        season = np.zeros(0)
        adj = r.astype(float)
        period = None
    ok = np.isfinite(adj)
    # blocks counted back from the span's end (the last block is whole); only whole blocks count
    block = n_per if duration >= 2 * DAY_S else max(1, t.size // 8)
    back = (t.size - 1 - np.arange(t.size)) // block  # 0 for the last block
    b = (back.max() - back)[ok] if t.size else np.zeros(0, np.int64)  # block 0 first in time
    nb = int(b.max()) + 1 if b.size else 0
    cnt = np.bincount(b, minlength=nb)
    bmean = np.bincount(b, weights=adj[ok], minlength=nb) / np.maximum(cnt, 1)
    bmid = np.bincount(b, weights=t[ok], minlength=nb) / np.maximum(cnt, 1) + window_s / 2
    full = cnt >= block
    x, y = bmid[full] - end_s, bmean[full]
    slope, p, curv = 0.0, 1.0, math.nan
    level = float(np.median(y)) if y.size else (float(np.nanmean(adj[ok])) if ok.any() else 0.0)
    if block != n_per and t.size >= n_per and abs(n_per * window_s - DAY_S) < 1e-6 and np.isfinite(adj[-n_per:]).all():
        # one to two days: the mean of the last whole day averages the daily cycle out, where the
        # median of eighths of the span weighs its phases by how often the span holds them
        level = float(np.mean(adj[-n_per:]))
    # a trend is tested on whole days only: within a span of less than four days (blocks shorter
    # than a day) a rise or fall is as likely the daily cycle, which cannot be told apart there
    if block == n_per and y.size >= 4 and np.ptp(x) > 0 and np.ptp(y) > 0:
        tau = stats.kendalltau(x, y)
        p = float(tau.pvalue) if math.isfinite(tau.pvalue) else 1.0
        curv = _curvature_p(x, y)
        if p < TREND_P and not curv < CURVATURE_P:
            ts = stats.theilslopes(y, x)
            slope = float(ts.slope)
            level = float(ts.intercept)  # the Theil-Sen line at the span's end (x = 0)
    level = max(level, 0.0)
    return RateForecast(end_s=float(end_s), window_s=float(window_s), period_s=period, level=level, slope=slope,
                        slope_p=p, season=tuple(float(v) for v in season), backtest_nmae=math.nan,
                        seasonal_naive_nmae=math.nan, curvature_p=curv, season_p=season_p, n_blocks=int(full.sum()))


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
