"""Calendar profiles and a periodicity measure of request volume (BurstGPT section 3.1).

BurstGPT (KDD'25, section 3.1; 2024 preprint, section III-B) reports that conversation traffic
is periodic (weekday highs and weekend lows, working-hour highs and night lows) while API
traffic is aperiodic and bursty. This module measures that on any store:

* :func:`binned_load` counts requests (and sums tokens) per time bin, per group, in DuckDB SQL,
  with idle bins filled with zeros over the whole trace span;
* :class:`TraceClock` puts bins on the trace's own wall clock (``store.origin`` and
  ``store.timezone``), so that hour of day and day of week are local; when the origin is unknown
  the clock is *relative to the trace start* and every table says so (``clock`` column);
* :func:`hour_of_day_profile`, :func:`day_of_week_profile` and :func:`weekday_weekend` are the
  calendar profiles (BurstGPT Fig. 2-5);
* :func:`periodicity` is the periodicity measure: the autocorrelation of hourly counts at the
  daily and weekly lags, and the seasonal strength of an MSTL decomposition (statsmodels),

  .. math:: F_p = \\max\\left(0,\\ 1 - \\frac{\\operatorname{Var}(R)}{\\operatorname{Var}(S_p + R)}\\right),

  (Wang, Smith & Hyndman 2006; Hyndman & Athanasopoulos, *FPP3*, section 4.3), where ``S_p`` is
  the seasonal component of period ``p`` and ``R`` the remainder, judged against the strength
  that white noise of the same length reaches. A period needs at least three full cycles in the
  trace; otherwise it is reported as not applicable, with the reason.

Counting is SQL; only per-bin tables (never per-request rows) reach numpy, polars and
statsmodels. This module does no fitting of distributions, no plotting, and never imports
:mod:`servelab.fitting` or matplotlib.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from servelab.analysis.store import TraceStore, fetch_polars

__all__ = [
    "DAY_S",
    "MIN_CYCLES",
    "PERIODIC_ACF",
    "PERIODIC_STRENGTH",
    "SUM_COLUMNS",
    "WEEK_S",
    "PeriodicityResult",
    "TraceClock",
    "binned_load",
    "daily_counts",
    "day_of_week_profile",
    "hour_of_day_profile",
    "hourly_counts",
    "human_duration",
    "normalize_by",
    "null_strength",
    "periodicity",
    "rebin",
    "seasonal_strength",
    "trace_clock",
    "weekday_weekend",
]

DAY_S = 86_400
WEEK_S = 7 * DAY_S

#: excess seasonal strength at or above which a period is called present. The excess rescales
#: the MSTL strength F above the strength that white noise of the same length reaches
#: (:func:`null_strength`): ``(F - F_null) / (1 - F_null)``, 0 for noise and 1 for a pure cycle;
#: 0.5 means the period explains at least half of the variance noise would leave unexplained.
PERIODIC_STRENGTH = 0.5
#: autocorrelation at the period's lag at or above which the lag is called correlated (the
#: threshold actually used is ``max(PERIODIC_ACF, 3 / sqrt(n))``: above the white-noise band)
PERIODIC_ACF = 0.3
#: cycles of a period the trace must span before the period is examined. MSTL drops a period
#: with two cycles or fewer (statsmodels needs ``n > 2 p``), and with just over two cycles every
#: cycle-subseries holds two values that the seasonal smoother passes through: white noise then
#: reaches a strength of 1.0 (measured with :func:`null_strength`) and nothing can be told apart.
#: From three cycles on the noise floor is below 1 (about 0.7-0.8) and shrinks as cycles accrue.
MIN_CYCLES = 3

_CLOCK_LOCAL = "local"
_CLOCK_NAIVE = "wall clock, zone unknown"
_CLOCK_RELATIVE = "relative to trace start"


# ---------------------------------------------------------------------------------------------
# the trace's clock


@dataclass(frozen=True)
class TraceClock:
    """Maps trace seconds to the trace's own wall clock.

    Parameters
    ----------
    origin_utc : datetime or None
        Wall-clock time of ``timestamp = 0`` in UTC (None when the origin is unknown, or when it
        is a naive wall-clock time with no zone).
    origin_naive : datetime or None
        The origin as a naive wall-clock time, when the zone is unknown.
    zone : str or None
        IANA zone in which hours and weekdays are read.
    basis : str
        ``"local"`` (origin and zone known), ``"wall clock, zone unknown"`` (origin known, zone
        not) or ``"relative to trace start"`` (origin unknown: hour 0 is the trace start, day 0
        its first 24 hours, weekends cannot be told).
    """

    origin_utc: dt.datetime | None
    origin_naive: dt.datetime | None
    zone: str | None
    basis: str

    @property
    def knows_weekdays(self) -> bool:
        """True when day of week (and weekends) can be read from the clock."""
        return self.basis != _CLOCK_RELATIVE

    def phase_s(self, window_s: float) -> float:
        """Seconds to add to trace time so that bins of ``window_s`` start on the local clock.

        With a known origin, bin edges fall on multiples of ``window_s`` after local midnight of
        the trace's first day (whole hours for hourly bins); otherwise on the trace start.
        """
        if self.basis == _CLOCK_RELATIVE:
            return 0.0
        local = self._origin_local()
        since_midnight = (local - local.replace(hour=0, minute=0, second=0, microsecond=0)).total_seconds()
        return float(since_midnight % window_s)

    def _origin_local(self) -> dt.datetime:
        if self.basis == _CLOCK_LOCAL:
            from zoneinfo import ZoneInfo

            return self.origin_utc.astimezone(ZoneInfo(self.zone))
        return self.origin_naive

    def label(self, frame: pl.DataFrame, *, start_col: str = "start_s") -> pl.DataFrame:
        """Add ``local_time``, ``date``, ``hour``, ``weekday`` (0 = Monday), ``is_weekend`` and
        ``clock`` columns for bins starting at ``frame[start_col]`` (trace seconds).

        Vectorised over bins; with the relative clock ``local_time`` and ``date`` are null,
        ``hour`` counts hours since the trace start modulo 24, ``weekday`` days modulo 7 and
        ``is_weekend`` is null.
        """
        start = pl.col(start_col)
        if self.basis == _CLOCK_RELATIVE:
            return frame.with_columns(
                local_time=pl.lit(None, dtype=pl.Datetime("us")),
                date=pl.lit(None, dtype=pl.Date),
                hour=((start // 3600) % 24).cast(pl.Int32),
                weekday=((start // DAY_S) % 7).cast(pl.Int32),
                day_index=(start // DAY_S).cast(pl.Int64),
                is_weekend=pl.lit(None, dtype=pl.Boolean),
                clock=pl.lit(self.basis),
            )
        micros = (start * 1e6).round(0).cast(pl.Int64)
        if self.basis == _CLOCK_LOCAL:
            base = pl.lit(self.origin_utc.replace(tzinfo=None)).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
            local = (base + pl.duration(microseconds=micros)).dt.convert_time_zone(self.zone)
        else:
            local = pl.lit(self.origin_naive).cast(pl.Datetime("us")) + pl.duration(microseconds=micros)
        out = frame.with_columns(local_time=local)
        first_date = out["local_time"].dt.date().min() if out.height else None
        return out.with_columns(
            date=pl.col("local_time").dt.date(),
            hour=pl.col("local_time").dt.hour().cast(pl.Int32),
            weekday=(pl.col("local_time").dt.weekday() - 1).cast(pl.Int32),
        ).with_columns(
            day_index=((pl.col("date") - pl.lit(first_date)).dt.total_days()).cast(pl.Int64)
            if first_date is not None else pl.lit(None, dtype=pl.Int64),
            is_weekend=pl.col("weekday") >= 5,
            clock=pl.lit(self.basis),
        )


def trace_clock(store: TraceStore) -> TraceClock:
    """The :class:`TraceClock` of ``store`` (from ``store.origin`` and ``store.timezone``)."""
    origin = store.origin
    if origin is None:
        return TraceClock(None, None, None, _CLOCK_RELATIVE)
    if origin.tzinfo is None:
        return TraceClock(None, origin, None, _CLOCK_NAIVE)
    zone = store.timezone
    if not zone:
        # aware origin with a fixed offset but no IANA name: read the clock in that offset
        zone = _offset_zone(origin)
    utc = origin.astimezone(dt.UTC)
    return TraceClock(utc, None, zone, _CLOCK_LOCAL)


def _offset_zone(origin: dt.datetime) -> str:
    offset = origin.utcoffset() or dt.timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    if minutes == 0:
        return "UTC"
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


# ---------------------------------------------------------------------------------------------
# counting


def normalize_by(by: str | Sequence[str] | None) -> tuple[str, ...]:
    """``by`` as a tuple of column names (``None`` -> ``()``)."""
    if by is None:
        return ()
    if isinstance(by, str):
        return (by,)
    out = tuple(by)
    if not all(isinstance(c, str) for c in out):
        raise TypeError(f"by must be a column name or a sequence of column names; got {by!r}")
    return out


def _quote(col: str) -> str:
    return '"' + col.replace('"', '""') + '"'


def _group_label(by: tuple[str, ...]) -> pl.Expr:
    if not by:
        return pl.lit("all").alias("group")
    parts = [pl.col(c).cast(pl.String).fill_null("(none)") for c in by]
    return pl.concat_str(parts, separator=" / ").alias("group")


def _span(store: TraceStore, con) -> tuple[float, float]:
    span = store.manifest.get("span_s") or {}
    first, last = span.get("first"), span.get("last")
    if first is None or last is None:
        first, last = con.execute("SELECT min(timestamp), max(timestamp) FROM requests").fetchone()
    return float(first), float(last)


def binned_load(
    store: TraceStore,
    *,
    window_s: float,
    by: str | Sequence[str] | None = None,
    tokens: str | None = None,
    failed: bool = False,
    where: str | None = None,
    clock: TraceClock | None = None,
) -> pl.DataFrame:
    """Requests (and optionally tokens) per time bin and group, idle bins filled with zeros.

    Bins are aligned on the trace's clock (see :meth:`TraceClock.phase_s`) and cover the whole
    trace, from the bin holding the first request to the bin holding the last one, for every
    group (a group idle for a day shows zeros, not missing rows).

    Parameters
    ----------
    store : TraceStore
    window_s : float
        Bin length in seconds (> 0).
    by : str or sequence of str, optional
        Columns to group by (e.g. ``"service"``, ``("service", "model")``).
    tokens : str, optional
        A token column (e.g. ``"input_tokens"``) to sum per bin as ``tokens`` (nulls ignored).
    failed : bool
        Also count ``failed_known`` (requests with a non-null ``failed``) and ``n_failed``.
    where : str, optional
        A SQL filter on ``requests`` (e.g. ``"service = 'conversation'"``); trusted input.
    clock : TraceClock, optional
        Defaults to :func:`trace_clock` of the store.

    Returns
    -------
    polars.DataFrame
        ``by`` columns, ``group`` (label), ``bin`` (index), ``start_s`` (bin start, trace
        seconds), ``count``, optionally ``tokens`` and ``token_requests`` (requests with a
        non-null token value), ``failed_known`` and ``n_failed``, then the calendar columns of :meth:`TraceClock.label`.

    Raises
    ------
    ValueError
        If ``window_s`` is not positive.
    NotApplicableError
        If a ``by`` or ``tokens`` column is missing.
    """
    if not (isinstance(window_s, (int, float)) and math.isfinite(window_s) and window_s > 0):
        raise ValueError(f"window_s must be a positive number of seconds; got {window_s!r}")
    by = normalize_by(by)
    need = [*by, *([tokens] if tokens else []), *(["failed"] if failed else [])]
    store.require(*need, analysis=f"binned load by {list(by) or 'trace'}")
    clock = clock or trace_clock(store)
    phase = clock.phase_s(window_s)
    with contextlib.closing(store.connect()) as con:
        first, last = _span(store, con)
        b0 = math.floor((first + phase) / window_s)
        b1 = math.floor((last + phase) / window_s)
        keys = ", ".join(_quote(c) for c in by)
        key_sel = f"{keys}, " if by else ""
        tok_sel = (f", sum({_quote(tokens)})::DOUBLE AS tokens, count({_quote(tokens)}) AS token_requests"
                   if tokens else "")
        if failed:
            tok_sel += ", count(failed) AS failed_known, count(*) FILTER (WHERE failed) AS n_failed"
        filt = f"WHERE {where}" if where else ""
        counted = (
            f"SELECT {key_sel}CAST(floor((timestamp + {phase!r}) / {float(window_s)!r}) AS BIGINT) AS bin, "
            f"count(*) AS count{tok_sel} FROM requests {filt} GROUP BY ALL"
        )
        groups = f"(SELECT DISTINCT {keys} FROM requests {filt})" if by else "(SELECT 1 AS one_)"
        join_on = " AND ".join([f"g.{_quote(c)} IS NOT DISTINCT FROM c.{_quote(c)}" for c in by] + ["r.bin = c.bin"])
        tok_out = ", coalesce(c.tokens, 0.0) AS tokens, coalesce(c.token_requests, 0) AS token_requests" if tokens else ""
        if failed:
            tok_out += ", coalesce(c.failed_known, 0) AS failed_known, coalesce(c.n_failed, 0) AS n_failed"
        gcols = ", ".join(f"g.{_quote(c)}" for c in by)
        sql = (
            f"WITH c AS ({counted}), g AS {groups}, r AS (SELECT range AS bin FROM range({b0}, {b1 + 1})) "
            f"SELECT {gcols + ', ' if by else ''}r.bin AS bin, CAST(r.bin AS DOUBLE) * {float(window_s)!r} - {phase!r} AS start_s, "
            f"coalesce(c.count, 0) AS count{tok_out} "
            f"FROM g CROSS JOIN r LEFT JOIN c ON {join_on} ORDER BY {gcols + ', ' if by else ''}r.bin"
        )
        frame = fetch_polars(con, sql)
    frame = frame.with_columns(_group_label(by)).select([*by, "group", *[c for c in frame.columns if c not in by]])
    return clock.label(frame)


#: per-bin columns that add up when bins or groups are merged
SUM_COLUMNS = ("count", "tokens", "token_requests", "failed_known", "n_failed")


def rebin(frame: pl.DataFrame, *, from_s: float, to_s: float, by: str | Sequence[str] | None = None,
          clock: TraceClock) -> pl.DataFrame:
    """Merge a :func:`binned_load` table of ``from_s`` bins into ``to_s`` bins and ``by`` groups.

    Counts add up, so one SQL scan at a fine bin (e.g. one minute, by service and model) serves
    every coarser bin and grouping. ``to_s`` must be a whole multiple of ``from_s``; both grids
    are aligned on the same clock (multiples of the bin after local midnight), so a fine bin lies
    in exactly one coarse bin. Coarse bins at the ends of the trace may be partly covered.

    Raises
    ------
    ValueError
        If ``to_s`` is not a whole multiple of ``from_s``.
    """
    factor = to_s / from_s
    if not float(factor).is_integer() or factor < 1:
        raise ValueError(f"to_s must be a whole multiple of from_s={from_s:g}; got to_s={to_s:g}")
    factor = int(factor)
    by = normalize_by(by)
    # fine bin b covers [b*from_s - p_f, ...); coarse bin B = floor((b*from_s - p_f + p_c) / to_s)
    shift = round((clock.phase_s(to_s) - clock.phase_s(from_s)) / from_s)
    sums = [c for c in SUM_COLUMNS if c in frame.columns]
    out = (
        frame.with_columns(bin=(pl.col("bin") + shift).floordiv(factor))
        .group_by([*by, "bin"], maintain_order=True)
        .agg(*[pl.col(c).sum() for c in sums])
        .with_columns(start_s=pl.col("bin").cast(pl.Float64) * float(to_s) - clock.phase_s(to_s))
        .with_columns(_group_label(by))
        .sort(["group", "bin"])
    )
    return clock.label(out.select([*by, "group", "bin", "start_s", *sums]))


def hourly_counts(store: TraceStore, *, by: str | Sequence[str] | None = None,
                  clock: TraceClock | None = None) -> pl.DataFrame:
    """Requests per local clock hour and group (see :func:`binned_load` with ``window_s=3600``)."""
    return binned_load(store, window_s=3600, by=by, clock=clock)


def daily_counts(hourly: pl.DataFrame) -> pl.DataFrame:
    """Requests per local day and group from :func:`hourly_counts`.

    A day is *complete* when the trace covers all its hours (24, or 23/25 on a daylight-saving
    change; the first and last days of a trace are usually partial). Relative clocks use 24-hour
    days since the trace start.
    """
    day = "day_index"
    out = (
        hourly.group_by(["group", day], maintain_order=True)
        .agg(
            date=pl.col("date").first(),
            weekday=pl.col("weekday").first(),
            is_weekend=pl.col("is_weekend").first(),
            clock=pl.col("clock").first(),
            count=pl.col("count").sum(),
            hours=pl.len(),
        )
        .sort(["group", day])
    )
    # hours a full local day has: 24 unless a DST change shortens or lengthens it
    if out.height and out["clock"][0] == _CLOCK_LOCAL:
        expected = _hours_in_day(out["date"], hourly)
        out = out.with_columns(complete=pl.col("hours") >= expected)
    else:
        out = out.with_columns(complete=pl.col("hours") >= 24)
    return out


def _hours_in_day(dates: pl.Series, hourly: pl.DataFrame) -> pl.Series:
    zone = hourly["local_time"].dtype.time_zone
    start = dates.cast(pl.Datetime("us")).dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null")
    end = (dates + pl.duration(days=1)).cast(pl.Datetime("us")).dt.replace_time_zone(
        zone, ambiguous="earliest", non_existent="null")
    hours = ((end - start).dt.total_seconds() / 3600).round(0).fill_null(24)
    return hours.cast(pl.Int64)


def hour_of_day_profile(hourly: pl.DataFrame) -> pl.DataFrame:
    """Requests per hour of day (0-23), per group and day type (BurstGPT Fig. 4-5).

    Returns one row per group, ``day_type`` (``"all"``, and ``"weekday"`` / ``"weekend"`` when the
    clock knows weekdays) and ``hour``: ``n_days`` (hours observed), ``mean``, ``std``, ``p25``,
    ``median``, ``p75`` and ``max`` of the hourly counts, and the ``clock`` basis.
    """
    stats = [
        pl.len().alias("n_days"),
        pl.col("count").mean().alias("mean"),
        pl.col("count").std().alias("std"),
        pl.col("count").quantile(0.25, "linear").alias("p25"),
        pl.col("count").median().alias("median"),
        pl.col("count").quantile(0.75, "linear").alias("p75"),
        pl.col("count").max().cast(pl.Float64).alias("max"),
        pl.col("clock").first(),
    ]
    parts = [hourly.group_by(["group", "hour"]).agg(stats).with_columns(day_type=pl.lit("all"))]
    if hourly.height and hourly["is_weekend"].null_count() == 0:
        typed = hourly.with_columns(day_type=pl.when(pl.col("is_weekend")).then(pl.lit("weekend")).otherwise(pl.lit("weekday")))
        parts.append(typed.group_by(["group", "day_type", "hour"]).agg(stats))
    cols = ["group", "day_type", "hour", "n_days", "mean", "std", "p25", "median", "p75", "max", "clock"]
    return pl.concat([p.select(cols) for p in parts]).sort(["group", "day_type", "hour"])


def day_of_week_profile(daily: pl.DataFrame) -> pl.DataFrame:
    """Requests per day, by day of week and group (BurstGPT Fig. 2-3), complete days only.

    Uses complete days (see :func:`daily_counts`) when the trace has any, else all days (then
    ``complete_days_only`` is false). ``weekday`` is 0 = Monday ... 6 = Sunday on a wall clock, or
    days since the trace start modulo 7 on a relative clock.
    """
    use_complete = bool(daily.height and daily["complete"].any())
    days = daily.filter(pl.col("complete")) if use_complete else daily
    return (
        days.group_by(["group", "weekday"])
        .agg(
            n_days=pl.len(),
            mean=pl.col("count").mean(),
            std=pl.col("count").std(),
            median=pl.col("count").median(),
            min=pl.col("count").min().cast(pl.Float64),
            max=pl.col("count").max().cast(pl.Float64),
            clock=pl.col("clock").first(),
        )
        .with_columns(complete_days_only=pl.lit(use_complete))
        .sort(["group", "weekday"])
    )


def weekday_weekend(daily: pl.DataFrame) -> pl.DataFrame:
    """Mean requests per complete weekday vs per complete weekend day, per group.

    ``ratio`` = weekday mean / weekend mean (null when either side has no complete day, or the
    clock does not know weekdays: then ``reason`` says why).
    """
    schema = {"group": pl.String, "weekday_days": pl.UInt32, "weekend_days": pl.UInt32,
              "weekday_mean": pl.Float64, "weekend_mean": pl.Float64, "ratio": pl.Float64, "reason": pl.String}
    if daily.height == 0:
        return pl.DataFrame(schema=schema)
    if daily["is_weekend"].null_count():
        groups = daily["group"].unique(maintain_order=True)
        return pl.DataFrame({"group": groups}).with_columns(
            weekday_days=pl.lit(0, pl.UInt32), weekend_days=pl.lit(0, pl.UInt32),
            weekday_mean=pl.lit(None, pl.Float64), weekend_mean=pl.lit(None, pl.Float64),
            ratio=pl.lit(None, pl.Float64),
            reason=pl.lit("the trace's origin (wall-clock start) is unknown: weekdays cannot be told"),
        )
    full = daily.filter(pl.col("complete"))
    out = (
        daily.select("group").unique(maintain_order=True)
        .join(
            full.group_by("group").agg(
                weekday_days=(~pl.col("is_weekend")).sum().cast(pl.UInt32),
                weekend_days=pl.col("is_weekend").sum().cast(pl.UInt32),
                weekday_mean=pl.col("count").filter(~pl.col("is_weekend")).mean(),
                weekend_mean=pl.col("count").filter(pl.col("is_weekend")).mean(),
            ),
            on="group", how="left",
        )
        .with_columns(pl.col("weekday_days", "weekend_days").fill_null(0))
    )
    return out.with_columns(
        ratio=pl.when((pl.col("weekend_mean") > 0) & pl.col("weekday_mean").is_not_null())
        .then(pl.col("weekday_mean") / pl.col("weekend_mean")),
        reason=pl.when(pl.col("weekday_days") == 0).then(pl.lit("no complete weekday in the trace"))
        .when(pl.col("weekend_days") == 0).then(pl.lit("no complete weekend day in the trace"))
        .when(pl.col("weekend_mean") == 0).then(pl.lit("no requests on weekend days"))
        .otherwise(pl.lit("")),
    ).select(list(schema))


# ---------------------------------------------------------------------------------------------
# the periodicity measure


def seasonal_strength(seasonal: np.ndarray, resid: np.ndarray) -> float:
    """Hyndman's seasonal strength ``max(0, 1 - Var(R) / Var(S + R))`` (NaN when undefined)."""
    seasonal = np.asarray(seasonal, dtype=float)
    resid = np.asarray(resid, dtype=float)
    denom = np.var(seasonal + resid)
    if not np.isfinite(denom) or denom <= 0:
        return float("nan")
    return float(max(0.0, 1.0 - np.var(resid) / denom))


@dataclass(frozen=True)
class PeriodicityResult:
    """Periodicity of request counts per group.

    Parameters
    ----------
    window_s : float
        Bin length of the counted series.
    periods_s : tuple of float
        The periods examined (e.g. one day and one week).
    clock : str
        Clock basis of the bins (see :class:`TraceClock`).
    by : tuple of str
        Grouping columns.
    table : polars.DataFrame
        One row per group and period: ``group``, ``period`` (name), ``period_s``, ``lag`` (bins),
        ``n_bins``, ``span_h``, ``mean_count``, ``acf``, ``acf_threshold``, ``strength``
        (MSTL seasonal strength), ``strength_null``, ``strength_excess``, ``periodic`` (bool or
        null), ``applicable`` and ``reason``.
    notes : tuple of str
        What was done (bins, which periods were decomposed together).
    """

    window_s: float
    periods_s: tuple[float, ...]
    clock: str
    by: tuple[str, ...]
    table: pl.DataFrame = field(repr=False)
    notes: tuple[str, ...] = ()

    def summary(self) -> pl.DataFrame:
        """The per-group, per-period table."""
        return self.table

    def is_periodic(self, group: str, period: str = "daily") -> bool | None:
        """Whether ``group`` shows the ``period`` (None when not applicable)."""
        rows = self.table.filter((pl.col("group") == group) & (pl.col("period") == period))
        if rows.height == 0:
            raise KeyError(f"no row for group={group!r}, period={period!r}; groups: {self.table['group'].unique().to_list()}")
        return rows["periodic"][0]


_PERIOD_NAMES = {DAY_S: "daily", WEEK_S: "weekly", 3600: "hourly"}


def _period_name(period_s: float) -> str:
    return _PERIOD_NAMES.get(int(period_s), f"{period_s:g}s") if float(period_s).is_integer() else f"{period_s:g}s"


def periodicity(
    store: TraceStore,
    *,
    by: str | Sequence[str] | None = None,
    window_s: float = 3600,
    periods_s: Sequence[float] = (DAY_S, WEEK_S),
    counts: pl.DataFrame | None = None,
) -> PeriodicityResult:
    """How periodic request volume is, per group: ACF at each period's lag and MSTL strength.

    Requests are counted per ``window_s`` bin (hourly by default; idle bins are zeros). For each
    period ``p`` (in seconds; its lag is ``p / window_s`` bins, which must be a whole number >= 2):

    * ``acf``: the sample autocorrelation (statsmodels ``acf``) at that lag;
    * ``strength``: the seasonal strength of the period's component in one MSTL decomposition
      (statsmodels ``MSTL``) with every applicable period; ``strength_null`` the strength white
      noise of the same length reaches (:func:`null_strength`), and ``strength_excess`` =
      ``(strength - strength_null) / (1 - strength_null)`` (floored at 0);
    * ``periodic``: ``strength_excess >= PERIODIC_STRENGTH`` and
      ``acf >= max(PERIODIC_ACF, 3/sqrt(n))`` (the ACF of white noise stays within about
      ``±2/sqrt(n)``; a daily-periodic series has a high ACF at the weekly lag too, which is why the
      strength of the weekly component, net of the daily one, decides as well).

    A period is applicable only when the trace spans at least ``MIN_CYCLES`` (3) of its cycles;
    otherwise the row says so in ``reason`` (see :data:`MIN_CYCLES` for why not 2).

    Parameters
    ----------
    store : TraceStore
    by : str or sequence of str, optional
        Grouping columns, e.g. ``"service"`` (BurstGPT: conversation vs API) or ``"model"``.
    window_s : float
        Bin length (default one hour).
    periods_s : sequence of float
        Periods to examine (default one day and one week).
    counts : polars.DataFrame, optional
        A precomputed :func:`binned_load` table with this ``window_s`` and ``by`` (saves a scan).

    Raises
    ------
    ValueError
        If a period is not a whole multiple (>= 2) of ``window_s``.
    NotApplicableError
        If a ``by`` column is missing.
    """
    by = normalize_by(by)
    periods = tuple(float(p) for p in periods_s)
    lags = []
    for p in periods:
        lag = p / window_s
        if not float(lag).is_integer() or lag < 2:
            raise ValueError(f"periods_s must be whole multiples (>= 2) of window_s={window_s:g}; got period {p:g}")
        lags.append(int(lag))
    if counts is None:
        counts = binned_load(store, window_s=window_s, by=by)
    clock = counts["clock"][0] if counts.height else trace_clock(store).basis
    span = store.manifest.get("span_s") or {}
    span_s = (float(span["last"]) - float(span["first"])) if span.get("first") is not None and span.get("last") is not None else None
    rows = []
    for (group,), part in counts.partition_by("group", as_dict=True, maintain_order=True).items():
        x = part.sort("bin")["count"].to_numpy().astype(float)
        rows.extend(_periodicity_rows(group, x, window_s, periods, lags, span_s))
    table = pl.DataFrame(rows, schema={
        "group": pl.String, "period": pl.String, "period_s": pl.Float64, "lag": pl.Int64, "n_bins": pl.Int64,
        "span_h": pl.Float64, "mean_count": pl.Float64, "acf": pl.Float64, "acf_threshold": pl.Float64,
        "strength": pl.Float64, "strength_null": pl.Float64, "strength_excess": pl.Float64, "periodic": pl.Boolean, "applicable": pl.Boolean, "reason": pl.String,
    })
    notes = (
        f"requests counted per {window_s:g} s bin on the {clock} clock, idle bins as zeros",
        ("ACF: statsmodels.tsa.stattools.acf; strength: MSTL (statsmodels) with all applicable periods "
         "decomposed together, F = max(0, 1 - Var(R)/Var(S+R)); excess over the strength of seeded white noise "
         f"of the same length (max of {NULL_REPLICATES} replicates)"),
    )
    return PeriodicityResult(window_s=float(window_s), periods_s=periods, clock=clock, by=by, table=table, notes=notes)


def _mstl_strengths(x: np.ndarray, lags: tuple[int, ...]) -> tuple[float, ...]:
    """Seasonal strength of each period's component in one MSTL decomposition of ``x``."""
    from statsmodels.tsa.seasonal import MSTL

    res = MSTL(x, periods=lags).fit()
    seasonal = np.asarray(res.seasonal).reshape(x.size, -1)
    resid = np.asarray(res.resid)
    return tuple(seasonal_strength(seasonal[:, j], resid) for j in range(len(lags)))


#: white-noise series decomposed to calibrate the strength floor (seeded: same bytes every run)
NULL_REPLICATES = 3
_NULL_SEED = 20251123


@functools.lru_cache(maxsize=64)
def null_strength(n: int, lags: tuple[int, ...]) -> tuple[float, ...]:
    """The largest MSTL seasonal strength of ``NULL_REPLICATES`` seeded white-noise series of
    length ``n`` decomposed with ``lags``: the strength that noise alone reaches.

    MSTL's seasonal smoothers absorb part of any noise, the more so the fewer cycles the series
    holds (about 0.3 for a daily period over a week of hourly counts, 0.7 for a period seen only
    three times), so a fixed threshold on the raw strength would call noise periodic. The
    strength is a ratio of variances of a linear smoother's outputs, hence scale-free: white
    noise of unit variance calibrates any series of the same length and periods.
    """
    rng = np.random.default_rng(_NULL_SEED)
    runs = [_mstl_strengths(rng.standard_normal(n), lags) for _ in range(NULL_REPLICATES)]
    return tuple(float(np.max(col)) for col in zip(*runs))


def _periodicity_rows(group: str, x: np.ndarray, window_s: float, periods: tuple[float, ...],
                      lags: list[int], span_s: float | None = None) -> list[dict]:
    from statsmodels.tsa.stattools import acf

    n = x.size
    span_h = n * window_s / 3600
    mean = float(x.mean()) if n else float("nan")
    ok = tuple(lag for lag in lags if n >= MIN_CYCLES * lag)
    constant = n == 0 or float(np.var(x)) == 0.0
    strengths: dict[int, float] = {}
    floors: dict[int, float] = {}
    if ok and not constant:
        strengths = dict(zip(ok, _mstl_strengths(x, ok)))
        floors = dict(zip(ok, null_strength(n, ok)))
    acfs = acf(x, nlags=max(ok), fft=True, missing="none") if ok and not constant else None
    threshold = max(PERIODIC_ACF, 3.0 / math.sqrt(n)) if n else float("nan")
    rows = []
    for p, lag in zip(periods, lags):
        row = {"group": group, "period": _period_name(p), "period_s": p, "lag": lag, "n_bins": n,
               "span_h": span_h, "mean_count": mean, "acf": None, "acf_threshold": threshold,
               "strength": None, "strength_null": None, "strength_excess": None, "periodic": None,
               "applicable": False, "reason": ""}
        if lag not in ok:
            spans = _human(span_s) if span_s is not None else f"{n} bins of {window_s:g} s"
            row["reason"] = (f"the trace spans {spans}; a {_period_name(p)} period needs at least "
                             f"{MIN_CYCLES} cycles ({_human(MIN_CYCLES * p)})")
        elif constant:
            row["reason"] = "the counts are constant (no variation to decompose)"
        else:
            a = float(acfs[lag])
            s, floor = strengths[lag], floors[lag]
            excess = max(0.0, (s - floor) / (1.0 - floor)) if floor < 1 else 0.0
            row.update(acf=a, strength=s, strength_null=floor, strength_excess=excess, applicable=True,
                       periodic=bool(excess >= PERIODIC_STRENGTH and a >= threshold))
        rows.append(row)
    return rows


def human_duration(seconds: float) -> str:
    """``seconds`` as a short text: minutes, hours, or days (2 days and more)."""
    return _human(seconds)


def _human(seconds: float) -> str:
    if seconds >= 2 * DAY_S:
        return f"{seconds / DAY_S:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min"
