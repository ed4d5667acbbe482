r"""Client population dynamics of a pool: new-client arrivals, lifetimes and departures (issue 17 item 2).

A pool fitted on one period says who was active then; next week's workload also has clients that
were never seen and lacks some that left. This module measures that turnover from the pool's
``arrivals`` table (one row per client and arrival window; a client is *active* in a window when
its rate there is > 0), so it works on any pool: fitted by servelab, imported from ServeGen, or
loaded from an older pool folder.

Per client (the ``churn`` table, :data:`CHURN_SCHEMA`)
------------------------------------------------------
``span_start`` / ``span_end`` / ``grace_s``: the span and grace it was built for (constant
columns; a pool clipped to another span refits). ``first_s`` / ``last_s``: start of its first and end of its last active window. Two censoring
rules, with a *grace* period ``G`` (default :func:`default_grace`: one day, so that a client's
nightly silence is not taken for a departure, at most a quarter of the span, at least one window):

- ``arrived``: its first active window starts at or after ``span_start + G`` (a client seen in the
  first ``G`` seconds may have been there before the span: it is *initial*, not an arrival);
- ``departed``: its last active window ends before ``span_end - G`` (a client active in the last
  ``G`` seconds may still be there: right-censored).

A sparse client's silence says little: one sending a request every two days is quiet for a day
half the time. So each client's grace is ``max(G, ln(1 / SILENCE_P) / r)``, with ``r`` its mean
rate over its presence (expected requests / (``last_s - first_s``)): the silence a Poisson
client of that rate keeps with probability :data:`SILENCE_P` (1%). Only a silence longer than
that before its first or after its last window makes it an arrival or a departure (without
this, every small client of a Zipf-like population whose first request happened to come late
counted as new, and the extension overestimated new clients tenfold on a 2,000-client synthetic
trace). The ``grace_s`` column keeps ``G``; exposure is still counted to ``span_end - G``.

Clients are burstier than Poisson: their silences are longer than their rate says. So the Poisson
silence is scaled by the population's own: each silence inside a client's presence (end of an
active window to the start of its next) over that client's Poisson grace ``ln(1 / SILENCE_P) / r``;
the 99th percentile of these ratios (at least 1; with at least :data:`MIN_GRACE_SILENCES` of them)
multiplies every client's Poisson grace. A Poisson population keeps about its graces; a bursty
one gets the silences it was seen to come back from. Measured (2026-12-04; /tmp script: 150
clients present all week, Gamma-renewal requests at rates 1 a day to 1 per 2 min, ``fit_pool``,
4 seeds): flagged departed 0.8 / 7.2 / 13.2% at gap CV 1 / 2 / 3 before, 0.7 / 2.2 / 4.5% with
the scale (arrived 0.0 / 1.0 / 1.3% -> 0.0 / 0.0 / 0.3%); the calibration below moved as noted.

Calibration (``benchmarks/bench_validate.py --parts churn``, simulated populations of known
turnover, 7 days, 40 seeds per scenario; with the population scale of the graces, 2026-12-04:
false arrivals / departures on the nulls 0.50 / 0.43% (Poisson), 0.28 / 0.28% (bursty windows),
1.32 / 1.32% (no daily cycle); power 0.93-0.99 / 0.95-0.99 (was 0.96-1.00 / 0.98-1.00); new
clients a day, median against truth: 9.17 / 10, 4.17 / 5, 2.00 / 2, 8.75 / 10, 2.67 / 3 (was 9.50,
4.17, 2.08, 9.25, 3.00); the 95% interval of the rate covers the truth in 92.5-97.5% of seeds and
of the lifetime in 90-100%. The numbers that follow are before that scale). With no churn (100 clients present all week, rates
log-uniform in [1 per 2 days, 0.1 req/s]) 1.25-1.60% of clients are flagged arrived and
1.47-1.63% departed (Poisson, bursty and flat nulls), above the nominal 1% per side: among
clients under one request a day (5% of them) 10-17% are, because ``r`` is measured over the
client's own presence, which for a handful of requests is much shorter than the span (the rate is
overstated, the grace too short). The fitted model then has a median of 0.17 new clients a day
and a mean lifetime of 430-577 days (about 1.5% of survivors departing in a week's extension).
With churn (10 new/day and 3-day lives; 5/day, 1 day; 2/day, 7 days) 96-100% of true arrivals
and departures are flagged, the new-client rate's median is 17% low to 4% high (sparse newcomers send
too little to be seen) and its 95% interval holds the truth in 92.5% of seeds, the lifetime's
in 90-100%. Two stricter rules were measured and not kept: the rate from ``n - 1`` gaps (false
flags 0.6-1.0%, but rates 12-22% low and lifetime intervals covering 67-90%), and an exact test
of "present all span" (``(1 - silence / T)^n < 1%``: false flags 0.1-0.4%, rates 21-30% low,
lifetime intervals covering 15-82%): the extension needs the rates more than clean flags.

The model (:class:`ChurnModel`, from :func:`churn_model`)
--------------------------------------------------------
- **arrivals**: new clients form a Poisson process of mean rate
  :math:`\hat\lambda = n_\text{arrived} / (T - G)` per second, with the exact (chi-square) 95%
  interval; its **trend** (:func:`arrival_trend`) is tested on the dense clients' arrival times
  (whole days, from ``G`` after the span's start to ``G`` before its end: a sparse client's arrival
  is flagged only after its own longer grace, and a newcomer near the end has not yet shown its
  rate, both of which would tilt the times) by the Cox-Lewis (Laplace) test of a log-linear
  intensity :math:`\lambda(t) \propto e^{bt}` against a constant one, at :data:`ARRIVAL_TREND_P`,
  with at least :data:`MIN_TREND_ARRIVALS` arrivals on :data:`MIN_TREND_DAYS` whole days, and
  not kept when the daily counts bend (the squared term of a Poisson GLM of the counts per day on
  day and day squared, ``statsmodels``, Wald p < the forecast's
  :data:`~servelab.fitting.pool_forecast.CURVATURE_P`: a weekend dip at the window's end, or a
  hump, is no trend to extrapolate, as for the total rate), and only when the statistic stays
  significant at :data:`DAY_OUT_P`, with its sign, with any one whole day left out (a trend one
  day makes is no trend). ``benchmarks/bench_arrival_trend.py`` (7-day spans, 40 seeds): at 20
  new clients a day, a last day at 30% of the rate was kept in 7 weeks by the first two tests, in
  1 with this one; the price is power: a slope of -0.3/day at 10 new a day kept in 10 (19 before),
  +0.2/day in 0 (7), -0.3/day among sparse clients in 4 (11); constant rates in 0 of 40 (1).
  A missed trend leaves the mean rate, as before; a false one would extrapolate. Kept,
  :math:`b` is the maximum-likelihood slope, the rate over the span is :math:`\hat\lambda` times
  :math:`e^{bt}` normalised to mean 1 over the arrival window, and past the span the slope is
  damped as the total rate's (:data:`~servelab.fitting.pool_forecast.DAMPING`: at most 9 days of
  it). Why: the 2,000-client synthetic stores' clients are born early (arrivals first seen per day
  416, 247, 169, 132, ... 6, 3 over 14 days); at the mean rate the extension of the first week
  made 19% of the second week's requests come from new clients against 5% real, and took that
  volume from the clients it carried;
- **lifetimes**: exponential, estimated with right censoring: every client contributes its
  observed presence :math:`d_i` (``last_s - first_s``, or ``span_end - G - first_s`` if censored (departures are
  only seen before ``span_end - G``),
  counted from ``span_start`` for initial clients, which by memorylessness is as good as from
  their unknown arrival) and :math:`\hat L = \sum_i d_i / n_\text{departed}` (the censored-data
  MLE), with the chi-square 95% interval on :math:`2 \sum d_i / L`;
- **heterogeneous lifetimes** (:func:`fit_lifetime_mixture`): each client may have its own
  exponential hazard, the hazards Gamma-distributed over the population (shape ``alpha``, rate
  ``beta``): a lifetime is then Lomax, :math:`S(t) = (\beta / (\beta + t))^\alpha` (the
  exponential is the limit ``alpha -> inf``), fitted by censored MLE on the same presences and
  kept when the likelihood-ratio test against the exponential rejects at :data:`MIXTURE_P` (the
  null on the boundary: half the chi-square(1) tail) with at least :data:`MIN_MIXTURE_DEPARTURES`
  departures. Fitted on the *dense* clients only (:func:`dense_clients`: a silence of the grace
  is unlikely at their rate); a sparse client's presence understates its life by chance, which
  made the test keep a mixture on exponential lives in 6 and 5 of 20 simulated populations
  (``bench_validate.py --parts churn``; now 1, 0 and 0 of 40 on the three exponential-churn
  scenarios and 0 of 40 on the nulls; power 30 and 14 of 40 on Lomax lives of shape 0.3,
  alpha median 0.34 and 0.16). A client that has been present for ``d`` seconds has survived its
  own hazard that long, so its hazard is Gamma(``alpha``, ``beta + d``) and its residual life Lomax of scale
  ``beta + d``: a client present all week rarely leaves, a newcomer often does. Why: on ServeGen's
  m-small pool (week 1) the 8 departures were all of clients present a few hours to 5 days;
  every client present all week was still there in week 2. One exponential lifetime (16 days)
  made the extension retire any client with probability 35% a week -- its three largest clients,
  a third of the traffic, within days in some seeds -- and gave their volume to the rest
  (servelab's length KS 0.19 / 0.23 against naive's 0.11 / 0.09). The Lomax fit there:
  ``alpha`` 0.073, ``beta`` 0.067 days (LR 8.5, p 0.002): a client present 6 days leaves within a
  week with probability 5%, a newcomer 29%;
- **a new client's parameters**: a *template* client's rows, resampled (seeded, by the
  extension in :mod:`servelab.generator.extend`): the clients that arrived during the span when
  there are at least :data:`MIN_TEMPLATES` of them (new clients look like new clients, usually
  small), else every client but the residual.

This module reads a table and returns tables and a frozen record; it draws nothing and writes
nothing.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import stats

from servelab.analysis.periodicity import DAY_S
from servelab.fitting.pool_settings import RESIDUAL_ID
from servelab.fitting.pool_schemas import CHURN_SCHEMA

__all__ = ["ARRIVAL_TREND_P", "CHURN_SCHEMA", "MIN_DENSE_REQUESTS", "MIN_MIXTURE_DEPARTURES", "MIN_SPAN_WINDOWS",
           "MIN_TEMPLATES", "MIN_TREND_ARRIVALS", "MIN_TREND_DAYS", "MIXTURE_P", "SILENCE_P", "ArrivalTrend",
           "fit_churn_table", "ChurnModel", "LifetimeMixture", "arrival_trend", "churn_model", "churn_table",
           "default_grace", "dense_clients", "fit_lifetime_mixture", "template_ids"]

#: fewest clients arrived during the span for them alone to be the templates of new clients
MIN_TEMPLATES = 5
#: fewest arrival windows a span needs for churn to be measured (the grace must leave some room)
MIN_SPAN_WINDOWS = 4
#: a silence is an arrival or a departure only when the client's own rate keeps it this rarely
SILENCE_P = 0.01
#: fewest internal silences for the population's burstiness to scale the graces
MIN_GRACE_SILENCES = 200
#: level of the likelihood-ratio test of heterogeneous (Gamma-mixed) hazards against one exponential
MIXTURE_P = 0.05
#: fewest departures for the mixture to be fitted at all
MIN_MIXTURE_DEPARTURES = 3
#: fewest requests of a client for its presence to count in the mixture's fit
MIN_DENSE_REQUESTS = 5
#: bound of the mixture's log alpha and log beta (in units of the exponential mean)
LOG_BOUND = 12.0
#: level of the Cox-Lewis test of a trend in the new clients' arrival rate
ARRIVAL_TREND_P = 0.01
#: fewest dense arrivals for the trend to be tested
MIN_TREND_ARRIVALS = 20
#: fewest whole days of arrivals for the trend to be tested (a rise within a day is its cycle)
MIN_TREND_DAYS = 4
#: level the trend must keep, with its sign, with any one whole day left out
DAY_OUT_P = 0.05


@dataclass(frozen=True)
class ArrivalTrend:
    """The tested trend of the new clients' arrival rate (module docstring, "arrivals").

    Attributes
    ----------
    slope_per_s : float
        Maximum-likelihood slope ``b`` of the log intensity (per second; 0 when not kept).
    z : float
        Cox-Lewis statistic (standard normal under a constant rate; positive: rising).
    p_value : float
        Its two-sided p-value (NaN: not tested).
    curvature_p : float
        Wald p-value of the squared term of the daily counts' Poisson GLM (NaN: not tested).
    n : int
        Dense arrivals tested.
    window : (float, float)
        The whole days they were counted over, seconds.
    kept : bool
        ``p_value < ARRIVAL_TREND_P``, the daily counts do not bend and no one day makes it.
    refused : str
        Why a significant trend was not kept (``""``: kept, or not significant).
    """

    slope_per_s: float
    z: float
    p_value: float
    n: int
    window: tuple[float, float]
    kept: bool
    curvature_p: float = math.nan
    refused: str = ""

    def describe(self) -> dict:
        """JSON-ready summary."""
        ok = math.isfinite(self.p_value)
        return {"kept": self.kept, "slope_per_day": round(self.slope_per_s * DAY_S, 6) if self.kept else 0.0,
                "z": round(self.z, 4) if ok else None, "p_value": float(self.p_value) if ok else None,
                "curvature_p": float(self.curvature_p) if math.isfinite(self.curvature_p) else None,
                "refused": self.refused or None,
                "dense_arrivals": self.n, "test": "Cox-Lewis (Laplace) on the dense arrivals' times, whole days",
                "level": ARRIVAL_TREND_P}


def _slope_mle(s: np.ndarray, tau: float) -> float:
    """MLE of ``b`` for arrival times ``s`` in ``[0, tau]`` of a Poisson intensity ``exp(a + b s)``:
    the root of ``E_b[s] = mean(s)``, the mean of the truncated exponential law of rate ``b``."""
    from scipy.optimize import brentq

    m = float(np.mean(s)) / tau  # in (0, 1); 1/2 is b = 0

    def mean_at(x: float) -> float:  # E[s] / tau for slope x / tau
        if abs(x) < 1e-6:
            return 0.5 + x / 12.0
        return 1.0 / (-math.expm1(-x)) - 1.0 / x

    lo, hi = -50.0, 50.0
    m = min(max(m, mean_at(lo) + 1e-12), mean_at(hi) - 1e-12)
    return brentq(lambda x: mean_at(x) - m, lo, hi, xtol=1e-12) / tau


def _each_day_out(x: np.ndarray, day: np.ndarray, days: int, z: float) -> bool:
    """Whether the Cox-Lewis statistic stays significant, with ``z``'s sign, with any one whole day
    left out (arrival times ``x`` in days, in ``[0, days)``, on whole day ``day``): a trend that one
    day makes is not one. Without day ``j`` the null is uniform on the other days: mean the mean of
    their midpoints, variance a day's (1/12) plus their midpoints' variance (days as units)."""
    crit = stats.norm.isf(DAY_OUT_P / 2.0)
    for j in range(days):  # a loop over the window's days
        keep = day != j
        mids = np.delete(np.arange(days) + 0.5, j)
        m = int(keep.sum())
        if m < 2:
            return False
        zj = (float(x[keep].mean()) - mids.mean()) / math.sqrt((1.0 / 12.0 + mids.var()) / m)
        if not (abs(zj) > crit and zj * z > 0):
            return False
    return True


def arrival_trend(table: pl.DataFrame, span: tuple[float, float], dense: np.ndarray) -> ArrivalTrend:
    """The :class:`ArrivalTrend` of the arrived ``dense`` clients of a :func:`churn_table` (module
    docstring): the Cox-Lewis test on whole days from ``G`` after the span's start to ``G``
    before its end, and the MLE slope when kept."""
    lo, hi = float(span[0]), float(span[1])
    g = float(table["grace_s"][0])
    days = math.floor((hi - g - (lo + g)) / DAY_S + 1e-9)
    if days < MIN_TREND_DAYS:
        return ArrivalTrend(0.0, math.nan, math.nan, 0, (lo + g, hi - g), False)
    w1 = hi - g
    w0 = w1 - days * DAY_S
    t = table["first_s"].to_numpy()
    sel = table["arrived"].to_numpy() & np.asarray(dense, dtype=bool) & (t >= w0) & (t < w1)
    n = int(sel.sum())
    if n < MIN_TREND_ARRIVALS:
        return ArrivalTrend(0.0, math.nan, math.nan, n, (w0, w1), False)
    tau = w1 - w0
    s = t[sel] - w0
    z = (float(np.mean(s)) - tau / 2.0) / (tau * math.sqrt(1.0 / (12.0 * n)))
    p = float(2.0 * stats.norm.sf(abs(z)))
    curvature, refused = math.nan, ""
    if p < ARRIVAL_TREND_P:  # a trend unless the daily counts bend or one day makes it (module docstring)
        from statsmodels.api import GLM, families

        from servelab.fitting.pool_forecast import CURVATURE_P

        x = s / DAY_S
        day = np.minimum(np.floor(x).astype(np.int64), days - 1)
        per_day = np.bincount(day, minlength=days)
        c = np.arange(days) - (days - 1) / 2.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a day without arrivals may warn; a NaN p keeps no trend
            fit = GLM(per_day, np.column_stack([np.ones(days), c, c * c]), family=families.Poisson()).fit()
        curvature = float(fit.pvalues[2])
        if not (math.isfinite(curvature) and curvature >= CURVATURE_P):
            refused = "the daily counts bend"
        elif not _each_day_out(x, day, days, z):
            refused = "one whole day makes it"
    kept = p < ARRIVAL_TREND_P and not refused
    return ArrivalTrend(_slope_mle(s, tau) if kept else 0.0, float(z), p, n, (w0, w1), kept, curvature, refused)


def default_grace(duration_s: float, window_s: float) -> float:
    """One day, at most a quarter of the span, at least one window, rounded up to whole windows."""
    if not (math.isfinite(duration_s) and duration_s > 0 and math.isfinite(window_s) and window_s > 0):
        raise ValueError(f"duration_s and window_s must be finite and > 0; got {duration_s!r} and {window_s!r}")
    g = min(DAY_S, duration_s / 4.0)
    return max(window_s, math.ceil(g / window_s - 1e-9) * window_s)


def churn_table(arrivals, span: tuple[float, float], *, grace_s: float | None = None,
                window_s: float | None = None) -> pl.DataFrame:
    """Per client: first and last active instants, arrived / departed flags (see the module docstring).

    Parameters
    ----------
    arrivals : polars DataFrame or LazyFrame
        A pool's arrivals table (``client_id, window_start, window_s, rate``).
    span : (float, float)
        The pool's span, seconds.
    grace_s : float, optional
        The censoring grace ``G`` (default :func:`default_grace`).
    window_s : float, optional
        Arrival window length (default: the table's longest ``window_s``); used for the default grace.

    Returns
    -------
    polars.DataFrame
        :data:`CHURN_SCHEMA`, one row per client active at least once, sorted by ``client_id``.

    Raises
    ------
    ValueError
        If ``span`` is empty or ``grace_s`` is not in ``(0, span duration)``.
    """
    lo, hi = float(span[0]), float(span[1])
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise ValueError(f"span must be (start, end) with start < end; got {tuple(span)!r}")
    lf = arrivals.lazy() if isinstance(arrivals, pl.DataFrame) else arrivals
    active = lf.filter(pl.col("rate") > 0)
    if window_s is None:
        window_s = active.select(pl.col("window_s").max()).collect().item() or (hi - lo)
    g = default_grace(hi - lo, float(window_s)) if grace_s is None else float(grace_s)
    if not (math.isfinite(g) and 0 < g < hi - lo):
        raise ValueError(f"grace_s must be in (0, span duration {hi - lo:g} s); got {grace_s!r}")
    quiet = math.log(1.0 / SILENCE_P)
    base = (active.group_by("client_id")
            .agg(pl.col("window_start").min().alias("first_s"),
                 (pl.col("window_start") + pl.col("window_s")).max().alias("last_s"),
                 (pl.col("rate") * pl.col("window_s")).sum().alias("_expected"))
            .with_columns(_poisson=quiet * (pl.col("last_s") - pl.col("first_s")) / pl.col("_expected"))
            .collect())
    # the population's burstiness: the silences inside clients' presences (end of an active
    # window to the start of the next), each over its client's Poisson grace; 1% of them should
    # exceed 1 if clients were Poisson. The graces scale by that quantile (at least 1)
    silences = (active.sort("client_id", "window_start")
                .with_columns((pl.col("window_start") - (pl.col("window_start") + pl.col("window_s"))
                               .shift(1).over("client_id")).alias("_s"))
                .filter(pl.col("_s") > 0).select("client_id", "_s").collect()
                .join(base.select("client_id", "_poisson"), on="client_id", how="inner"))
    scale = 1.0
    if silences.height >= MIN_GRACE_SILENCES:
        u = (silences["_s"] / silences["_poisson"]).to_numpy()
        scale = max(1.0, float(np.quantile(u[np.isfinite(u)], 1.0 - SILENCE_P)))
    table = (base.lazy()
             # the client's own grace: a silence its rate keeps with probability SILENCE_P, scaled
             # by the population's burstiness
             .with_columns(_g=pl.max_horizontal(pl.lit(g), pl.col("_poisson") * scale))
             .with_columns(arrived=pl.col("first_s") >= lo + pl.col("_g") - 1e-9,
                           departed=pl.col("last_s") < hi - pl.col("_g") - 1e-9,
                           grace_s=pl.lit(g, pl.Float64), span_start=pl.lit(lo, pl.Float64),
                           span_end=pl.lit(hi, pl.Float64))
             .sort("client_id").collect())
    return table.select([pl.col(c).cast(t) for c, t in CHURN_SCHEMA.items()])


def fit_churn_table(arrivals, span: tuple[float, float], *, window_s: float) -> pl.DataFrame | None:
    """:func:`churn_table` with the default grace, or None when the span is shorter than
    :data:`MIN_SPAN_WINDOWS` windows or no client is active (nothing to measure)."""
    if not (float(span[1]) - float(span[0]) >= MIN_SPAN_WINDOWS * float(window_s)):
        return None
    table = churn_table(arrivals, span, window_s=window_s)
    return table if table.height else None


@dataclass(frozen=True)
class LifetimeMixture:
    """Client hazards Gamma(``alpha``, ``beta``)-distributed: Lomax lifetimes (module docstring).

    Attributes
    ----------
    alpha : float
        Shape of the hazards' Gamma law (small: very unequal lifetimes).
    beta_s : float
        Its rate parameter, seconds (the Lomax scale).
    lr : float
        Likelihood-ratio statistic against one exponential lifetime.
    p_value : float
        Its p-value (half the chi-square(1) tail: the exponential is the boundary ``alpha -> inf``).
    """

    alpha: float
    beta_s: float
    lr: float
    p_value: float

    def residual(self, present_s, standard_exponential) -> np.ndarray:
        """Residual lifetimes (seconds) of clients present ``present_s`` so far (0: a newborn),
        one per standard exponential draw: Lomax of shape ``alpha``, scale ``beta_s + present_s``
        (inverse CDF ``(beta + d) (exp(E / alpha) - 1)``; ``inf`` past float range)."""
        d = np.maximum(np.asarray(present_s, dtype=float), 0.0)
        with np.errstate(over="ignore"):
            return (self.beta_s + d) * np.expm1(np.asarray(standard_exponential, dtype=float) / self.alpha)

    def survival(self, present_s, t_s) -> np.ndarray:
        """P(residual life > ``t_s``) of clients present ``present_s`` so far (broadcast):
        ``((beta + d) / (beta + d + t))^alpha``."""
        d = np.maximum(np.asarray(present_s, dtype=float), 0.0)
        t = np.maximum(np.asarray(t_s, dtype=float), 0.0)
        return np.exp(-self.alpha * np.log1p(t / (self.beta_s + d)))

    def describe(self) -> dict:
        """A JSON-ready summary."""
        week = 7 * DAY_S
        return {"alpha": round(self.alpha, 6), "beta_days": round(self.beta_s / DAY_S, 6), "lr": round(self.lr, 4),
                "p_value": round(self.p_value, 6),
                "p_leave_within_7_days": {"newborn": round(1 - (self.beta_s / (self.beta_s + week)) ** self.alpha, 4),
                                          "present_7_days": round(1 - ((self.beta_s + week) / (self.beta_s + 2 * week))
                                                                  ** self.alpha, 4)}}


def fit_lifetime_mixture(exposure_s, departed) -> LifetimeMixture | None:
    """Censored MLE of Lomax lifetimes (Gamma-mixed exponential hazards) and its test against one
    exponential (module docstring); None when it is not kept (too few departures, or the test does
    not reject at :data:`MIXTURE_P`).

    Parameters
    ----------
    exposure_s : array-like
        Per client, the observed presence (seconds; to its departure, or to the censoring time).
    departed : array-like of bool
        Per client, whether it departed.
    """
    from scipy.optimize import minimize

    d = np.asarray(exposure_s, dtype=float)
    dep = np.asarray(departed, dtype=bool)
    ok = d > 0
    d, dep = d[ok], dep[ok]
    n_dep = int(dep.sum())
    if n_dep < MIN_MIXTURE_DEPARTURES or n_dep == dep.size:
        return None
    scale = float(d.sum() / n_dep)  # the exponential MLE: work in its units
    x = d / scale
    ll_exp = -float(n_dep)  # the exponential's log-likelihood at its MLE (mean 1 in these units)

    def nll(theta: np.ndarray) -> float:
        # log density log(a / b) - (a + 1) log1p(x / b), log survival -a log1p(x / b): log1p keeps
        # the exponential limit (a, b large, a / b fixed) exact
        a, b = math.exp(theta[0]), math.exp(theta[1])
        l1 = np.log1p(x / b)
        return -float(np.sum(np.where(dep, math.log(a / b) - (a + 1) * l1, -a * l1)))

    # start near the exponential (alpha = beta large) and at a strongly mixed point; keep the best.
    # log alpha, log beta within +-LOG_BOUND (alpha e^12: the exponential to 1e-5)
    bounds = [(-LOG_BOUND, LOG_BOUND)] * 2
    fits = [minimize(nll, np.array(t0), method="Nelder-Mead", bounds=bounds,
                     options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 4000})
            for t0 in ((math.log(20.0), math.log(20.0)), (math.log(0.5), math.log(0.1)))]
    best = min(fits, key=lambda f: f.fun)
    lr = max(0.0, 2.0 * (-float(best.fun) - ll_exp))
    p = 0.5 * float(stats.chi2.sf(lr, 1))
    if not p < MIXTURE_P:
        return None
    return LifetimeMixture(alpha=math.exp(best.x[0]), beta_s=math.exp(best.x[1]) * scale, lr=lr, p_value=p)


@dataclass(frozen=True)
class ChurnModel:
    """New-client arrivals and exponential client lifetimes fitted from a :func:`churn_table`.

    Attributes
    ----------
    span : (float, float)
        The fitted span, seconds.
    grace_s : float
        The censoring grace ``G``.
    n_clients, n_initial, n_arrived, n_departed : int
        Clients active in the span; present in its first ``G`` seconds; arrived after; departed
        before ``span_end - G``.
    arrival_rate : float
        New clients per second (:math:`n_\text{arrived} / (T - G)`).
    arrival_rate_ci : (float, float)
        Exact 95% Poisson interval of it.
    mean_lifetime_s : float
        Exponential mean lifetime (censored MLE); ``inf`` when no client departed.
    mean_lifetime_ci : (float, float)
        Its 95% interval (chi-square on the total exposure; ``(lower, inf)`` with no departure).
    exposure_s : float
        Total observed client presence, seconds.
    templates : tuple of str
        Client ids whose rows new clients resample.
    template_rule : str
        Which clients are the templates, in words.
    lifetime_mixture : LifetimeMixture, optional
        Heterogeneous lifetimes when the test keeps them (module docstring); None: one exponential.
    arrival_trend : ArrivalTrend, optional
        The tested trend of the arrival rate (None: not tested, a constant rate).
    """

    span: tuple[float, float]
    grace_s: float
    n_clients: int
    n_initial: int
    n_arrived: int
    n_departed: int
    arrival_rate: float
    arrival_rate_ci: tuple[float, float]
    mean_lifetime_s: float
    mean_lifetime_ci: tuple[float, float]
    exposure_s: float
    templates: tuple[str, ...]
    template_rule: str
    lifetime_mixture: LifetimeMixture | None = None
    arrival_trend: ArrivalTrend | None = None

    def arrival_intensity(self, t_s) -> np.ndarray:
        """New clients per second at times ``t_s`` at or after the span's end: :attr:`arrival_rate`,
        or with a kept :attr:`arrival_trend` the fitted log-linear rate at the span's end (the mean
        rate times the trend normalised to mean 1 over ``[span start + G, span end]``) with its slope
        damped beyond the end as the total rate's forecast damps its trend (module docstring)."""
        t = np.asarray(t_s, dtype=float)
        tr = self.arrival_trend
        if tr is None or not tr.kept or tr.slope_per_s == 0.0:
            return np.full(t.shape, self.arrival_rate)
        from servelab.fitting.pool_forecast import DAMPING

        b, tau = tr.slope_per_s, self.span[1] - self.span[0] - self.grace_s
        x = b * tau
        at_end = x / -math.expm1(-x) if abs(x) > 1e-12 else 1.0  # e^{b t} over its mean, at the end
        h = np.maximum(t - self.span[1], 0.0) / DAY_S
        damped = DAMPING * (1.0 - DAMPING ** h) / (1.0 - DAMPING)  # days of slope added by h days
        return self.arrival_rate * at_end * np.exp(b * DAY_S * damped)

    def residual_lifetimes(self, present_s, standard_exponential) -> np.ndarray:
        """Residual lifetimes (seconds) of clients present ``present_s`` seconds so far (0: a
        newborn), one per standard exponential draw: the mixture's Lomax when kept, else the
        exponential of mean :attr:`mean_lifetime_s` (memoryless: ``present_s`` unused; ``inf``
        when no client departed)."""
        e = np.asarray(standard_exponential, dtype=float)
        if self.lifetime_mixture is not None:
            return self.lifetime_mixture.residual(np.broadcast_to(present_s, e.shape), e)
        return e * self.mean_lifetime_s if math.isfinite(self.mean_lifetime_s) else np.full(e.shape, np.inf)

    def survival(self, present_s, t_s) -> np.ndarray:
        """P(residual life > ``t_s``) of clients present ``present_s`` so far (broadcast): the
        mixture's Lomax when kept, else ``exp(-t / mean lifetime)`` (1 when no client departed)."""
        if self.lifetime_mixture is not None:
            return self.lifetime_mixture.survival(present_s, t_s)
        d, t = np.broadcast_arrays(np.asarray(present_s, dtype=float), np.maximum(np.asarray(t_s, dtype=float), 0.0))
        if not math.isfinite(self.mean_lifetime_s):
            return np.ones(t.shape)
        return np.exp(-t / self.mean_lifetime_s)

    def describe(self) -> dict:
        """A JSON-ready summary (``pool info``, validate.json)."""
        def num(x):
            return None if not math.isfinite(x) else round(float(x), 6)

        return {
            "grace_s": self.grace_s, "clients": self.n_clients, "initial": self.n_initial,
            "arrived": self.n_arrived, "departed": self.n_departed,
            "new_clients_per_day": num(self.arrival_rate * DAY_S),
            "new_clients_per_day_ci95": [num(x * DAY_S) for x in self.arrival_rate_ci],
            "mean_lifetime_days": num(self.mean_lifetime_s / DAY_S),
            "mean_lifetime_days_ci95": [num(x / DAY_S) for x in self.mean_lifetime_ci],
            "lifetime_law": "exponential, right-censored MLE",
            "templates": len(self.templates), "template_rule": self.template_rule,
            "lifetime_mixture": (self.lifetime_mixture.describe() if self.lifetime_mixture is not None
                                 else "not kept: one exponential lifetime"),
            "arrival_trend": (self.arrival_trend.describe() if self.arrival_trend is not None
                              else "not tested: a constant arrival rate"),
        }


def template_ids(table: pl.DataFrame, *, residual_id: str = RESIDUAL_ID) -> tuple[tuple[str, ...], str]:
    """The template clients of new ones and the rule that chose them (module docstring)."""
    arrived = table.filter(pl.col("arrived") & (pl.col("client_id") != residual_id))["client_id"].to_list()
    if len(arrived) >= MIN_TEMPLATES:
        return tuple(arrived), f"the {len(arrived)} clients that arrived during the span"
    others = table.filter(pl.col("client_id") != residual_id)["client_id"].to_list() or table["client_id"].to_list()
    return tuple(others), (f"every client ({len(others)}): fewer than {MIN_TEMPLATES} clients arrived during "
                           f"the span ({len(arrived)})")


def dense_clients(arrivals, table: pl.DataFrame) -> np.ndarray:
    """Per row of ``table``, whether the client is *dense*: at least :data:`MIN_DENSE_REQUESTS`
    requests, whose rate over its presence (``requests - 1`` gaps) keeps a silence of the grace
    ``G`` with probability at most :data:`SILENCE_P` (``requests - 1 >= ln(1 / SILENCE_P) x
    presence / G``; a few requests close together say little of the rate), so its first and last requests mark its arrival and departure
    to within about ``G / 4.6``. A sparse client's presence is much shorter than its life (its
    first request comes late, its last early), and mixing such clients with dense ones looks like
    unequal lifetimes where there are none."""
    lf = arrivals.lazy() if isinstance(arrivals, pl.DataFrame) else arrivals
    req = (lf.filter(pl.col("rate") > 0).group_by("client_id")
           .agg((pl.col("rate") * pl.col("window_s")).sum().alias("_req")).collect())
    g = float(table["grace_s"][0])
    need = math.log(1.0 / SILENCE_P) / g
    return (table.select("client_id", "first_s", "last_s").join(req, on="client_id", how="left", maintain_order="left")
            .select((pl.col("_req").fill_null(0.0) >= MIN_DENSE_REQUESTS)
                    & (pl.col("_req").fill_null(0.0) - 1.0 >= need * (pl.col("last_s") - pl.col("first_s"))))
            .to_series().to_numpy())


def churn_model(table: pl.DataFrame, span: tuple[float, float], *, arrivals=None) -> ChurnModel:
    """Fit the :class:`ChurnModel` of a :func:`churn_table` over ``span``.

    With the pool's ``arrivals`` table, heterogeneous lifetimes are also tested and fitted
    (:func:`fit_lifetime_mixture` on the :func:`dense_clients`, module docstring) and so is a trend
    of the arrival rate (:func:`arrival_trend`); without, the lifetime is one exponential and the
    arrival rate constant.

    Raises
    ------
    ValueError
        If the table is empty or ``span`` is not the one it was built for (grace >= duration).
    """
    if table.height == 0:
        raise ValueError("the churn table has no client: no client is active in the span")
    lo, hi = float(span[0]), float(span[1])
    g = float(table["grace_s"][0])
    if not (hi - lo > g > 0):
        raise ValueError(f"span {tuple(span)!r} is not longer than the table's grace {g:g} s")
    first = np.maximum(table["first_s"].to_numpy(), lo)
    departed = table["departed"].to_numpy()
    # departures are only seen before hi - G, so presence is counted up to there too
    end = np.where(departed, table["last_s"].to_numpy(), hi - g)
    exposure = float(np.clip(end - first, 0.0, None).sum())
    n_arr = int(table["arrived"].sum())
    n_dep = int(departed.sum())
    t_arr = hi - lo - g
    rate = n_arr / t_arr
    ci_lo = stats.chi2.ppf(0.025, 2 * n_arr) / 2 / t_arr if n_arr > 0 else 0.0
    ci_hi = stats.chi2.ppf(0.975, 2 * n_arr + 2) / 2 / t_arr
    if n_dep > 0:
        life = exposure / n_dep
        life_ci = (2 * exposure / stats.chi2.ppf(0.975, 2 * n_dep), 2 * exposure / stats.chi2.ppf(0.025, 2 * n_dep))
    else:
        life = math.inf
        life_ci = (2 * exposure / stats.chi2.ppf(0.975, 2), math.inf)
    templates, rule = template_ids(table)
    mixture, trend = None, None
    if arrivals is not None:
        dense = dense_clients(arrivals, table) & (table["client_id"] != RESIDUAL_ID).to_numpy()
        mixture = fit_lifetime_mixture(np.clip(end - first, 0.0, None)[dense], departed[dense])
        trend = arrival_trend(table, (lo, hi), dense)
    return ChurnModel(span=(lo, hi), grace_s=g, n_clients=table.height, n_initial=table.height - n_arr,
                      n_arrived=n_arr, n_departed=n_dep, arrival_rate=float(rate),
                      arrival_rate_ci=(float(ci_lo), float(ci_hi)), mean_lifetime_s=float(life),
                      mean_lifetime_ci=(float(life_ci[0]), float(life_ci[1])), exposure_s=exposure,
                      templates=templates, template_rule=rule,
                      lifetime_mixture=mixture, arrival_trend=trend)
