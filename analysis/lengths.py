"""Request and response lengths as DuckDB SQL over the trace store.

What this module measures (ServeGen 2025 sec. 3.2, Findings 3-4; BurstGPT KDD'25 sec. 3.3):

- failures: requests with ``output_tokens = 0`` or ``failed`` are excluded from every length
  statistic and counted (:func:`length_counts`);
- length distributions of ``input_tokens`` / ``output_tokens`` per model, service, client or
  period of the day: moments and quantiles (:func:`length_quantiles`), exact or log-binned
  empirical PMFs (:func:`length_pmf`), a deterministic sample for fitting (:func:`length_sample`);
- the input/output relation: outputs binned by input length with median and 5-95 % range per bin
  (ServeGen Fig. 4, :func:`io_bins`), Pearson and Spearman correlation and BurstGPT's least-squares
  line of response on request tokens with slope and R^2 (:func:`io_correlation`);
- response-length histograms per request-length bin (BurstGPT Fig. 10, :func:`response_histograms`);
- shifts over the day: the same numbers per period in the trace's own zone, the max/min ratio of
  the mean input and output across periods and whether the two move together
  (:func:`length_shifts`, :func:`hourly_lengths`).

Everything is one SQL query per table (no Python loop over requests); results are polars
DataFrames or frozen records of scalars. This module fits no distribution (that is
:mod:`servelab.fitting`) and never imports fitting, figures or matplotlib.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import duckdb
import numpy as np
import polars as pl

from servelab.analysis.exceptions import NotApplicableError
from servelab.analysis.store import TraceStore

__all__ = [
    "Period",
    "DEFAULT_PERIODS",
    "trace_periods",
    "GROUPINGS",
    "DEFAULT_QUANTILES",
    "valid_length_filter",
    "group_expression",
    "hour_of_day_expression",
    "period_expression",
    "length_counts",
    "length_value_counts",
    "length_quantiles",
    "grouped_count_stats",
    "weighted_quantiles",
    "length_pmf",
    "length_sample",
    "io_bins",
    "response_histograms",
    "io_correlation",
    "pair_correlation",
    "hourly_lengths",
    "LengthShift",
    "length_shifts",
]

LENGTH_COLUMNS = ("input_tokens", "output_tokens")

#: what ``by=`` accepts, and the column each grouping needs
GROUPINGS = {"model": "model", "service": "service", "client": "client_id", "period": "timestamp"}

#: quantiles reported by :func:`length_quantiles`
DEFAULT_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


@dataclass(frozen=True)
class Period:
    """A period of the day, ``[start_hour, end_hour)`` on the trace's own clock (wraps past 24)."""

    name: str
    start_hour: float
    end_hour: float

    def __post_init__(self) -> None:
        for label, value in (("start_hour", self.start_hour), ("end_hour", self.end_hour)):
            if not (0 <= value <= 24):
                raise ValueError(f"Period {self.name!r}: {label} must be in [0, 24]; got {value!r}")
        if self.start_hour == self.end_hour:
            raise ValueError(f"Period {self.name!r}: start_hour and end_hour are both {self.start_hour}; empty period")


#: ServeGen's three periods of Fig. 3-4 (Midnight, Morning, Afternoon). The paper does not give
#: their hours; these are six-hour blocks of the trace's local day.
DEFAULT_PERIODS = (Period("Midnight", 0, 6), Period("Morning", 6, 12), Period("Afternoon", 12, 18))


def trace_periods(store: TraceStore, *, n: int = 3) -> tuple[Period, ...]:
    """The periods of the day a trace actually covers (ServeGen Finding 4).

    A trace that covers at least 90 % of each of :data:`DEFAULT_PERIODS` (e.g. a whole day) gets
    them. Any other gets its own span of hours (on the clock of :func:`hour_of_day_expression`) cut into ``n`` equal periods
    named by their hours, e.g. ``18:15-18:35``, so that a trace recorded 18:15-19:14 is not
    compared over the fixed 0-6, 6-12, 12-18 h periods it misses.

    Raises
    ------
    ValueError
        If ``n`` is not a positive integer.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer; got {n!r}")
    row = store.query("SELECT min(timestamp) AS t0, max(timestamp) AS t1 FROM requests").row(0, named=True)
    if row["t0"] is None:
        return DEFAULT_PERIODS
    span_h = (float(row["t1"]) - float(row["t0"])) / 3600.0
    if span_h >= 24.0 or span_h <= 0.0:
        return DEFAULT_PERIODS
    hour, _ = hour_of_day_expression(store)
    h0 = float(store.query(f"SELECT {hour.replace('timestamp', repr(float(row['t0'])))} AS h").item())
    grid = (np.arange(24 * 60) + 0.5) / 60.0  # minutes of the day
    covered = ((grid - h0) % 24.0) < span_h
    shares = [covered[((grid >= p.start_hour) & (grid < p.end_hour)) if p.start_hour < p.end_hour else
                      ((grid >= p.start_hour) | (grid < p.end_hour))].mean() for p in DEFAULT_PERIODS]
    if min(shares) >= 0.9:
        return DEFAULT_PERIODS
    edges = h0 + np.linspace(0.0, span_h, n + 1)
    edges[-1] += 1e-6  # the last request falls inside the last period
    periods = []
    for a, b in zip(edges[:-1], edges[1:]):
        start, end = float(a % 24.0), float(b % 24.0)
        end = 24.0 if end == 0.0 else end
        name = f"{int(start):02d}:{int(round(start % 1 * 60)) % 60:02d}-{int(end) % 24:02d}:{int(round(end % 1 * 60)) % 60:02d}"
        periods.append(Period(name, start, end))
    return tuple(periods)


# ----------------------------------------------------------------------------------------------
# SQL building blocks


def valid_length_filter(store: TraceStore, column: str = "input_tokens") -> str:
    """SQL predicate keeping requests whose lengths count: not failed and ``column`` not null.

    A request failed when ``output_tokens = 0`` (BurstGPT's convention) or ``failed`` is true.
    """
    parts = [f'"{column}" IS NOT NULL']
    if store.has("output_tokens"):
        parts.append("coalesce(output_tokens, 1) <> 0")
    if store.has("failed"):
        parts.append("NOT coalesce(failed, false)")
    return " AND ".join(parts)


def hour_of_day_expression(store: TraceStore) -> tuple[str, str]:
    """SQL for the hour of day (float in [0, 24)) of each request, and a note on the clock used.

    The clock is the origin's wall clock in the trace's zone (a fixed UTC offset taken at the
    origin: a daylight-saving change inside the trace shifts later hours by one). Without an
    origin, hour 0 is the trace's first timestamp (said in the note).
    """
    origin = store.origin
    if origin is None:
        return "((timestamp / 3600.0) % 24.0)", "no origin wall-clock time: hour 0 is timestamp 0"
    offset_h = origin.hour + origin.minute / 60 + (origin.second + origin.microsecond / 1e6) / 3600
    zone = store.timezone or (origin.tzname() if origin.tzinfo else None) or "unknown zone"
    return f"(((timestamp / 3600.0) + {offset_h!r}) % 24.0)", f"hours on the trace's clock ({zone}, offset at the origin)"


def period_expression(store: TraceStore, periods: Sequence[Period] = DEFAULT_PERIODS) -> str:
    """SQL CASE giving each request's period name (NULL outside every period)."""
    periods = _check_periods(periods)
    hour, _ = hour_of_day_expression(store)
    whens = []
    for p in periods:
        if p.start_hour < p.end_hour:
            cond = f"{hour} >= {float(p.start_hour)!r} AND {hour} < {float(p.end_hour)!r}"
        else:  # wraps midnight
            cond = f"({hour} >= {float(p.start_hour)!r} OR {hour} < {float(p.end_hour)!r})"
        whens.append(f"WHEN {cond} THEN {_sql_str(p.name)}")
    return "CASE " + " ".join(whens) + " END"


def group_expression(store: TraceStore, by: str | None, *, periods: Sequence[Period] = DEFAULT_PERIODS,
                     analysis: str = "length statistics") -> str:
    """SQL expression of the grouping key for ``by`` (``'all'`` when ``by`` is None).

    Raises
    ------
    ValueError
        If ``by`` is not one of :data:`GROUPINGS`.
    NotApplicableError
        If the trace lacks the grouping's column.
    """
    if by is None:
        return "'all'"
    if by not in GROUPINGS:
        raise ValueError(f"by must be None or one of {sorted(GROUPINGS)}; got {by!r}")
    store.require(GROUPINGS[by], analysis=f"{analysis} by {by}")
    if by == "period":
        return period_expression(store, periods)
    return f"coalesce(CAST(\"{GROUPINGS[by]}\" AS VARCHAR), '(none)')"


def _require_lengths(store: TraceStore, columns: Sequence[str], analysis: str) -> None:
    store.require(*columns, analysis=analysis)


# ----------------------------------------------------------------------------------------------
# counts, quantiles, PMFs, samples


def length_counts(store: TraceStore) -> pl.DataFrame:
    """How many requests the length statistics use and why the others are left out.

    Returns
    -------
    polars.DataFrame
        One row: ``n_requests, n_failed`` (output 0 or failed flag), ``n_output_zero``,
        ``n_failed_flag``, ``n_input_null``, ``n_output_null``, ``n_used`` (not failed, both
        lengths present).

    Raises
    ------
    NotApplicableError
        If the trace has neither ``input_tokens`` nor ``output_tokens``.
    """
    have = [c for c in LENGTH_COLUMNS if store.has(c)]
    if not have:
        raise NotApplicableError("length statistics", missing=LENGTH_COLUMNS)
    zero = "count_if(output_tokens = 0)" if store.has("output_tokens") else "0"
    flag = "count_if(coalesce(failed, false))" if store.has("failed") else "0"
    failed_terms = (["output_tokens = 0"] if store.has("output_tokens") else []) + (
        ["coalesce(failed, false)"] if store.has("failed") else [])
    failed = f"count_if({' OR '.join(failed_terms)})" if failed_terms else "0"
    nulls = {c: (f'count_if("{c}" IS NULL)' if store.has(c) else "NULL") for c in LENGTH_COLUMNS}
    used_terms = [f'"{c}" IS NOT NULL' for c in have] + [f"NOT ({t})" for t in failed_terms]
    sql = (
        f"SELECT count(*) AS n_requests, {failed} AS n_failed, {zero} AS n_output_zero, {flag} AS n_failed_flag, "
        f"{nulls['input_tokens']} AS n_input_null, {nulls['output_tokens']} AS n_output_null, "
        f"count_if({' AND '.join('coalesce(' + t + ', false)' for t in used_terms)}) AS n_used FROM requests"
    )
    return store.query(sql).with_columns(pl.all().cast(pl.Int64))


def length_value_counts(store: TraceStore, *, columns: Sequence[str] = LENGTH_COLUMNS, by: str | None = None,
                        periods: Sequence[Period] = DEFAULT_PERIODS) -> pl.DataFrame:
    """How often each value of each length column occurs, per group, failures excluded (one SQL
    aggregate): the sufficient statistics of :func:`length_quantiles` and of :func:`length_pmf`.

    Returns
    -------
    polars.DataFrame
        ``g`` (group), ``col`` (column name), ``v`` (value, as float), ``c`` (count), for the
        columns the trace has; rows of a null group are left out.

    Raises
    ------
    NotApplicableError
        If the trace has none of ``columns`` (or lacks the grouping column).
    """
    have = [c for c in columns if store.has(c)]
    if not have:
        raise NotApplicableError("length value counts", missing=columns)
    key = group_expression(store, by, periods=periods)
    parts = [
        f"SELECT {key} AS g, '{c}' AS col, \"{c}\"::DOUBLE AS v, count(*) AS c FROM requests "
        f"WHERE {valid_length_filter(store, c)} GROUP BY g, v"
        for c in have
    ]
    return store.query(" UNION ALL ".join(parts)).filter(pl.col("g").is_not_null())


def length_quantiles(store: TraceStore, *, by: str | None = None, columns: Sequence[str] = LENGTH_COLUMNS,
                     quantiles: Sequence[float] = DEFAULT_QUANTILES, periods: Sequence[Period] = DEFAULT_PERIODS,
                     top: int = 20, counts: pl.DataFrame | None = None) -> pl.DataFrame:
    """Moments and quantiles of each length column, per group, failures excluded.

    Parameters
    ----------
    store : TraceStore
    by : {None, "model", "service", "client", "period"}
        Grouping; with ``"client"`` only the ``top`` clients by request count are listed.
    columns : sequence of str
        Length columns (those the trace lacks are skipped).
    quantiles : sequence of float
        Quantiles (linear interpolation, as numpy's default), named ``p5``, ``p50``, ...
    periods : sequence of Period
        Periods for ``by="period"``.
    top : int
        Number of clients kept for ``by="client"``.
    counts : polars.DataFrame, optional
        :func:`length_value_counts` of the same store and grouping, when already read (no scan).

    Returns
    -------
    polars.DataFrame
        ``group, column, n, mean, std, cv, min, p.., max``, sorted by group and column.

    Raises
    ------
    NotApplicableError
        If the trace has none of ``columns`` (or lacks the grouping column).
    """
    have = [c for c in columns if store.has(c)]
    if not have:
        raise NotApplicableError("length quantiles", missing=columns)
    qs = _check_quantiles(quantiles)
    if counts is None:
        counts = length_value_counts(store, columns=have, by=by, periods=periods)
    else:
        counts = counts.filter(pl.col("col").is_in(have))
    table = grouped_count_stats(counts, ["g", "col"], qs).rename({"g": "group", "col": "column"})
    if by == "client":
        keep = table.filter(pl.col("column") == have[0]).sort(["n", "group"], descending=[True, False]).head(top)["group"]
        table = table.filter(pl.col("group").is_in(keep.implode()))
    return table.sort(["group", "column"])


def grouped_count_stats(counts: pl.DataFrame, keys: Sequence[str], quantiles: Sequence[float] = DEFAULT_QUANTILES,
                        *, value: str = "v", count: str = "c") -> pl.DataFrame:
    """Moments and quantiles per group from a table of (value, count) pairs.

    Quantiles interpolate linearly between order statistics, exactly as numpy's default
    (``h = (n - 1) q``), on the sample the counts stand for; the loop is over groups only.

    Returns
    -------
    polars.DataFrame
        ``*keys, n, mean, std, cv, min, p.., max`` (``std`` is the population standard deviation).
    """
    qs = _check_quantiles(quantiles)
    names = [_qname(q) for q in qs]
    rows = []
    for key, part in counts.sort([*keys, value]).group_by(list(keys), maintain_order=True):
        v = part[value].to_numpy().astype(float)
        c = part[count].to_numpy().astype(float)
        n = c.sum()
        if n <= 0:
            continue
        mean = float(np.sum(v * c) / n)
        std = float(np.sqrt(max(np.sum(c * (v - mean) ** 2) / n, 0.0)))
        row = dict(zip(keys, key))
        row.update(n=int(n), mean=mean, std=std, cv=std / mean if mean != 0 else None, min=float(v[0]))
        row.update(zip(names, weighted_quantiles(v, c, qs)))
        row["max"] = float(v[-1])
        rows.append(row)
    schema = {**{k: counts.schema[k] for k in keys}, "n": pl.Int64, "mean": pl.Float64, "std": pl.Float64,
              "cv": pl.Float64, "min": pl.Float64, **{nm: pl.Float64 for nm in names}, "max": pl.Float64}
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)


def weighted_quantiles(values: np.ndarray, counts: np.ndarray, quantiles: Sequence[float]) -> list[float]:
    """Quantiles of the sample in which each of the sorted ``values`` occurs ``counts`` times.

    Linear interpolation between order statistics at ``h = (n - 1) q`` (numpy's default), so the
    result equals ``np.quantile(np.repeat(values, counts), quantiles)`` without expanding.
    """
    cum = np.cumsum(counts)
    n = cum[-1]
    out = []
    for q in quantiles:
        h = (n - 1) * q
        lo = math.floor(h)
        i_lo = int(np.searchsorted(cum, lo, side="right"))
        i_hi = int(np.searchsorted(cum, min(lo + 1, n - 1), side="right"))
        out.append(float(values[i_lo] + (h - lo) * (values[i_hi] - values[i_lo])))
    return out


def length_pmf(store: TraceStore, column: str, *, by: str | None = None, log_bins: int | None = None,
               periods: Sequence[Period] = DEFAULT_PERIODS, counts: pl.DataFrame | None = None) -> pl.DataFrame:
    """Empirical PMF of one length column (failures excluded), exact or on log-spaced bins.

    Parameters
    ----------
    column : str
        A length column, e.g. ``"input_tokens"``.
    by : {None, "model", "service", "client", "period"}
        Grouping.
    log_bins : int, optional
        None: one row per distinct value (``value, count, probability``). An int: that many
        log-spaced bins between 1 and the largest value (``bin_lo, bin_hi, count, probability,
        density`` with density per token), for figures. Values of 0 fall in the first bin.
    counts : polars.DataFrame, optional
        With ``log_bins``: :func:`length_value_counts` of the same store and grouping, when already
        read; the bins are then summed from it (the same SQL bin expression on the same values,
        so the same table) instead of scanning the requests twice.

    Raises
    ------
    NotApplicableError
        If the trace lacks ``column``.
    ValueError
        If ``log_bins`` is not a positive integer.
    """
    _require_lengths(store, (column,), f"PMF of {column}")
    key = group_expression(store, by, periods=periods)
    where = valid_length_filter(store, column)
    if log_bins is None:
        sql = (
            f"SELECT g AS \"group\", v AS value, c AS count, c / sum(c) OVER (PARTITION BY g) AS probability "
            f"FROM (SELECT {key} AS g, \"{column}\" AS v, count(*) AS c FROM requests WHERE {where} GROUP BY g, v) "
            f"WHERE g IS NOT NULL ORDER BY \"group\", value"
        )
        return store.query(sql)
    if not isinstance(log_bins, (int, np.integer)) or log_bins < 1:
        raise ValueError(f"log_bins must be None or a positive int; got {log_bins!r}")
    if counts is not None:
        mine = counts.filter(pl.col("col") == column)
        top = mine["v"].max() if mine.height else None
    else:
        top = store.query(f'SELECT max("{column}") AS m FROM requests WHERE {where}')["m"][0]
    top = float(top) if top is not None else 1.0
    width = max(math.log(max(top, 1.0) + 1.0), 1e-9) / log_bins
    value = "v" if counts is not None else f'"{column}"'
    bin_sql = f"least({log_bins - 1}, floor(ln(greatest({value}, 0) + 1) / {width!r}))::BIGINT"
    select = (f"SELECT g AS \"group\", k AS bin, exp(k * {width!r}) - 1 AS bin_lo, "
              f"exp((k + 1) * {width!r}) - 1 AS bin_hi, {{count}} AS count FROM b WHERE g IS NOT NULL "
              "GROUP BY g, k ORDER BY \"group\", k")
    if counts is None:
        table = store.query(f"WITH b AS (SELECT {key} AS g, {bin_sql} AS k FROM requests WHERE {where}) "
                            + select.format(count="count(*)"))
    else:  # integer lengths as DOUBLE: the same values, so the same bins
        with contextlib.closing(duckdb.connect()) as con:
            con.register("value_counts", mine.select("g", "v", "c").to_arrow())
            table = con.sql(f"WITH b AS (SELECT g, {bin_sql} AS k, c FROM value_counts) "
                            + select.format(count="sum(c)::BIGINT")).pl()
    return table.with_columns(
        (pl.col("count") / pl.col("count").sum().over("group")).alias("probability"),
    ).with_columns((pl.col("probability") / (pl.col("bin_hi") - pl.col("bin_lo"))).alias("density"))


def length_sample(store: TraceStore, column: str, *, max_n: int | None = 1_000_000, seed: int = 0,
                  where: str | None = None, n: int | None = None) -> np.ndarray:
    """Lengths of non-failed requests as a numpy array, at most about ``max_n`` of them.

    The subsample is deterministic: a request is kept when a hash of ``(request_id, seed)`` falls
    under ``max_n / n`` of the hash range, so the same store and seed give the same values in
    arrival order.

    Parameters
    ----------
    column : str
        Length column.
    max_n : int or None
        Target size (None: every value).
    seed : int
        Seed of the hash selection.
    where : str, optional
        Extra SQL predicate (e.g. one model).
    n : int, optional
        The number of non-failed values of ``column`` (without ``where``), when already known
        (e.g. from :func:`length_value_counts`): saves a count over the requests.

    Raises
    ------
    NotApplicableError
        If the trace lacks ``column`` or has no non-failed value in it.
    """
    _require_lengths(store, (column,), f"sample of {column}")
    cond = valid_length_filter(store, column) + (f" AND ({where})" if where else "")
    with contextlib.closing(store.connect()) as con:
        if n is None or where:
            n = con.sql(f"SELECT count(*) FROM requests WHERE {cond}").fetchall()[0][0]
        if n == 0:
            raise NotApplicableError(f"sample of {column}", reason=f"no non-failed request has a {column} value")
        pick = ""
        if max_n is not None and n > max_n:
            frac = max_n / n
            pick = f" AND (hash(request_id, {int(seed)}) % 1000000007) < {int(frac * 1000000007)}"
        order = "ORDER BY request_id" if store.has("request_id") else ""
        arr = con.sql(f'SELECT "{column}"::DOUBLE AS v FROM requests WHERE {cond}{pick} {order}').fetchnumpy()["v"]
    return np.asarray(arr, dtype=float)


# ----------------------------------------------------------------------------------------------
# input/output relation


def io_bins(store: TraceStore, *, n_bins: int = 20, by: str | None = None, min_count: int = 1,
            periods: Sequence[Period] = DEFAULT_PERIODS, include_all: bool = False) -> pl.DataFrame:
    """Outputs binned by input length (ServeGen Fig. 4): median and 5-95 % range per bin.

    Bins are log-spaced on ``ln(input + 1)`` between 0 and the largest input. With ``by`` and
    ``include_all``, the whole trace comes too (group ``"all"``) from the same single scan.

    Returns
    -------
    polars.DataFrame
        ``group, bin, input_lo, input_hi, n, input_median, output_p5, output_median, output_p95,
        output_mean`` for bins holding at least ``min_count`` requests.

    Raises
    ------
    NotApplicableError
        If the trace lacks either length column.
    """
    _require_lengths(store, LENGTH_COLUMNS, "input/output relation")
    if not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive int; got {n_bins!r}")
    key = group_expression(store, by, periods=periods)
    where = valid_length_filter(store, "input_tokens") + " AND output_tokens IS NOT NULL"
    top = store.query(f"SELECT max(input_tokens) AS m FROM requests WHERE {where}")["m"][0]
    if top is None:
        raise NotApplicableError("input/output relation", reason="no non-failed request has both lengths")
    width = max(math.log(float(top) + 1.0), 1e-9) / n_bins
    kexpr = f"least({n_bins - 1}, floor(ln(greatest(input_tokens, 0) + 1) / {width!r}))::BIGINT"
    # one scan: counts of (group, bin, input) and (group, bin, output) (GROUPING SETS); the whole
    # trace's counts, when wanted too, are their sums over the groups (the null group included), which
    # costs a small table's group-by instead of two more hash aggregates over every row
    both = store.query(
        f"SELECT g, k, i, o, count(*) AS c, GROUPING(i) AS no_i FROM "
        f"(SELECT {key} AS g, {kexpr} AS k, input_tokens::DOUBLE AS i, output_tokens::DOUBLE AS o FROM requests "
        f"WHERE {where}) GROUP BY GROUPING SETS ((g, k, i), (g, k, o))")
    if include_all and by is not None:
        whole = both.group_by("k", "i", "o", "no_i").agg(pl.col("c").sum()).with_columns(g=pl.lit("all"))
        both = pl.concat([both, whole.select(both.columns)])
    inputs = both.filter(pl.col("no_i") == 0).select("g", "k", pl.col("i").alias("v"), "c")
    outputs = both.filter(pl.col("no_i") == 1).select("g", "k", pl.col("o").alias("v"), "c")
    inputs = inputs.filter(pl.col("g").is_not_null())
    outputs = outputs.filter(pl.col("g").is_not_null())
    ins = grouped_count_stats(inputs, ["g", "k"], (0.5,)).select("g", "k", pl.col("p50").alias("input_median"))
    outs = grouped_count_stats(outputs, ["g", "k"], (0.05, 0.5, 0.95)).select(
        "g", "k", "n", pl.col("p5").alias("output_p5"), pl.col("p50").alias("output_median"),
        pl.col("p95").alias("output_p95"), pl.col("mean").alias("output_mean"))
    table = outs.join(ins, on=["g", "k"], how="left").filter(pl.col("n") >= int(min_count))
    table = table.with_columns(
        (np.exp(pl.col("k") * width) - 1).alias("input_lo"), (np.exp((pl.col("k") + 1) * width) - 1).alias("input_hi"))
    return table.rename({"g": "group", "k": "bin"}).select(
        "group", "bin", "input_lo", "input_hi", "n", "input_median", "output_p5", "output_median", "output_p95",
        "output_mean").sort(["group", "bin"])


def response_histograms(store: TraceStore, *, request_bins: int = 4, request_edges: Sequence[float] | None = None,
                        response_bins: int = 30, by: str | None = None,
                        periods: Sequence[Period] = DEFAULT_PERIODS) -> pl.DataFrame:
    """Histograms of the response length per request-length bin (BurstGPT Fig. 10).

    Requests (failures excluded) fall into request bins right-closed at the edges: bin ``k`` holds
    ``edge[k-1] < input_tokens <= edge[k]`` (bin 0 everything up to the first edge, the last bin
    everything above the last edge). By default the edges are the ``1/request_bins ... (request_bins-1)
    /request_bins`` quantiles of ``input_tokens`` over the whole trace (DuckDB ``quantile_disc``,
    repeated edges merged), so that the bins hold about equal numbers of requests; the same edges
    serve every group. Responses fall into ``response_bins`` log-spaced bins on
    ``ln(output_tokens + 1)`` between the smallest and the largest response, shared by every request
    bin and group. One SQL aggregate; empty response bins are rows with count 0.

    Parameters
    ----------
    store : TraceStore
    request_bins : int
        Number of equal-count request bins (ignored with ``request_edges``).
    request_edges : sequence of float, optional
        Explicit increasing inner edges (request tokens), e.g. ``(512, 1024, 2048)``.
    response_bins : int
        Number of log-spaced response-length bins.
    by : {None, "model", "service", "client", "period"}
        Grouping (BurstGPT draws one panel per model).

    Returns
    -------
    polars.DataFrame
        ``group, request_bin, request_lo, request_hi, request_n, bin, response_lo, response_hi,
        count, probability, density``: ``request_lo``/``request_hi`` are the smallest and largest
        request length in the request bin (within the group), ``request_n`` its requests,
        ``probability`` the share of the request bin's responses in the response bin and
        ``density`` that share per response token. Request bins without requests are left out.

    Raises
    ------
    NotApplicableError
        If the trace lacks either length column or has no non-failed request with both.
    ValueError
        If ``request_bins`` or ``response_bins`` is not a positive int, or ``request_edges`` is not
        strictly increasing.
    """
    _require_lengths(store, LENGTH_COLUMNS, "response lengths per request bin")
    for name, value in (("request_bins", request_bins), ("response_bins", response_bins)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int; got {value!r}")
    key = group_expression(store, by, periods=periods)
    where = valid_length_filter(store, "input_tokens") + " AND output_tokens IS NOT NULL"
    if request_edges is not None:
        edges = np.asarray(request_edges, dtype=float)
        if edges.ndim != 1 or not np.all(np.isfinite(edges)) or np.any(np.diff(edges) <= 0):
            raise ValueError(f"request_edges must be finite and strictly increasing; got {list(request_edges)!r}")
    with contextlib.closing(store.connect()) as con:
        qs = [k / request_bins for k in range(1, request_bins)]
        quant = f", quantile_disc(input_tokens, {qs!r}) AS q" if request_edges is None and qs else ""
        row = con.sql(f"SELECT max(output_tokens) AS top, count(*) AS n, min(output_tokens) AS low{quant} "
                      f"FROM requests WHERE {where}").fetchall()[0]
        if not row[1]:
            raise NotApplicableError("response lengths per request bin",
                                     reason="no non-failed request has both input and output tokens")
        if request_edges is None:
            edges = np.unique(np.asarray(row[3] if qs else [], dtype=float))
        kexpr = " + ".join(f"(input_tokens > {float(e)!r})::BIGINT" for e in edges) or "0"
        base = math.log(max(float(row[2]), 0.0) + 1.0)
        width = max(math.log(max(float(row[0]), 0.0) + 1.0) - base, 1e-9) / response_bins
        bexpr = (f"least({response_bins - 1}, greatest(0, floor((ln(greatest(output_tokens, 0) + 1) - {base!r}) "
                 f"/ {width!r})))::BIGINT")
        counts = con.sql(
            f"SELECT g, r, b, count(*) AS c, min(i) AS lo, max(i) AS hi FROM "
            f"(SELECT {key} AS g, ({kexpr})::BIGINT AS r, {bexpr} AS b, input_tokens AS i FROM requests WHERE {where}) "
            f"WHERE g IS NOT NULL GROUP BY g, r, b").pl()
    per_bin = counts.group_by("g", "r").agg(pl.col("c").sum().alias("request_n"), pl.col("lo").min().alias("request_lo"),
                                            pl.col("hi").max().alias("request_hi"))
    grid = per_bin.join(pl.DataFrame({"b": np.arange(response_bins, dtype=np.int64)}), how="cross")
    table = grid.join(counts.select("g", "r", "b", "c"), on=["g", "r", "b"], how="left").with_columns(
        pl.col("c").fill_null(0).cast(pl.Int64).alias("count"),
        (np.exp(pl.col("b") * width + base) - 1).alias("response_lo"),
        (np.exp((pl.col("b") + 1) * width + base) - 1).alias("response_hi"),
    ).with_columns((pl.col("count") / pl.col("request_n")).alias("probability")).with_columns(
        (pl.col("probability") / (pl.col("response_hi") - pl.col("response_lo"))).alias("density"))
    return table.select(
        pl.col("g").alias("group"), pl.col("r").cast(pl.Int64).alias("request_bin"),
        pl.col("request_lo").cast(pl.Float64), pl.col("request_hi").cast(pl.Float64),
        pl.col("request_n").cast(pl.Int64), pl.col("b").cast(pl.Int64).alias("bin"), "response_lo", "response_hi",
        "count", "probability", "density").sort(["group", "request_bin", "bin"])


def io_correlation(store: TraceStore, *, by: str | None = None, periods: Sequence[Period] = DEFAULT_PERIODS,
                   x: str = "input_tokens", y: str = "output_tokens", spearman_max_n: int | None = 1_000_000,
                   seed: int = 0) -> pl.DataFrame:
    """Pearson and Spearman correlation of two length columns and the least-squares line of y on x.

    Pearson's r and the line of ``y`` on ``x`` (BurstGPT's linear fit of response on request
    tokens: ``slope``, ``intercept``, ``r2``) are exact single-pass aggregates over every
    non-failed request. Spearman's rho is Pearson's r of average ranks (ties share the mean of
    their ranks), computed from the table of distinct ``(x, y)`` pairs with counts; above
    ``spearman_max_n`` requests in a group it uses a deterministic hash subsample of about that
    many (``spearman_n`` says how many; its standard error at 10^6 is about 0.001).

    Returns
    -------
    polars.DataFrame
        ``group, n, pearson, spearman, spearman_n, slope, intercept, r2, mean_x, mean_y``
        (a coefficient is null when a column is constant).

    Raises
    ------
    NotApplicableError
        If the trace lacks ``x`` or ``y``.
    """
    _require_lengths(store, (x, y), f"correlation of {x} and {y}")
    key = group_expression(store, by, periods=periods)
    where = f'{valid_length_filter(store, x)} AND "{y}" IS NOT NULL'
    return pair_correlation(store, f'"{x}"', f'"{y}"', where=where, key=key, spearman_max_n=spearman_max_n, seed=seed)


def pair_correlation(store: TraceStore, x_sql: str, y_sql: str, *, where: str = "true", key: str = "'all'",
                     spearman_max_n: int | None = 1_000_000, seed: int = 0) -> pl.DataFrame:
    """Pearson, Spearman and the least-squares line of two SQL expressions, per group key.

    The engine of :func:`io_correlation` (see there), for any pair of per-request expressions,
    e.g. reason and answer tokens. ``where`` and ``key`` are SQL over the ``requests`` view.
    """
    # exact integer sums (DECIMAL(38, 0); the expressions are token counts), then one rounding per
    # moment: DuckDB's corr / regr_* / avg over doubles depend on the order its threads add the rows
    # in (two runs of the lengths section differed in the 13th digit)
    xd, yd = f"CAST({x_sql} AS DECIMAL(38, 0))", f"CAST({y_sql} AS DECIMAL(38, 0))"
    with contextlib.closing(store.connect()) as con:
        exact = con.sql(
            f'WITH s AS (SELECT {key} AS "group", count(*) AS n, sum({xd}) AS sx, sum({yd}) AS sy, '
            f'sum({xd} * {xd}) AS sxx, sum({yd} * {yd}) AS syy, sum({xd} * {yd}) AS sxy FROM requests '
            f'WHERE {where} GROUP BY 1) '
            'SELECT "group", n, CAST(n * sxy - sx * sy AS DOUBLE) AS cxy, CAST(n * sxx - sx * sx AS DOUBLE) AS cxx, '
            'CAST(n * syy - sy * sy AS DOUBLE) AS cyy, CAST(sx AS DOUBLE) / n AS mean_x, '
            'CAST(sy AS DOUBLE) / n AS mean_y FROM s').pl()
        exact = exact.filter(pl.col("group").is_not_null())
        cxx, cyy, cxy = pl.col("cxx"), pl.col("cyy"), pl.col("cxy")
        slope = pl.when(cxx > 0).then(cxy / cxx)
        exact = exact.with_columns(
            pearson=pl.when((cxx > 0) & (cyy > 0)).then(cxy / (cxx * cyy).sqrt()), slope=slope,
            intercept=pl.col("mean_y") - slope * pl.col("mean_x"),
            r2=pl.when(cxx <= 0).then(None).when(cyy <= 0).then(1.0).otherwise(cxy * cxy / (cxx * cyy)))
        largest = int(exact["n"].max()) if exact.height else 0
        pick = ""
        if spearman_max_n is not None and largest > spearman_max_n and store.has("request_id"):
            cut = int(spearman_max_n / largest * 1000000007)
            pick = f" AND (hash(request_id, {int(seed)}) % 1000000007) < {cut}"
        ranks = con.sql(f"""
        WITH p AS (SELECT {key} AS g, ({x_sql})::DOUBLE AS x, ({y_sql})::DOUBLE AS y, count(*) AS c
                   FROM requests WHERE {where}{pick} GROUP BY ALL),
        rx AS (SELECT g, x, coalesce(sum(c) OVER (PARTITION BY g ORDER BY x ROWS BETWEEN UNBOUNDED PRECEDING
                      AND 1 PRECEDING), 0) + (c + 1) / 2.0 AS r FROM (SELECT g, x, sum(c) AS c FROM p GROUP BY g, x)),
        ry AS (SELECT g, y, coalesce(sum(c) OVER (PARTITION BY g ORDER BY y ROWS BETWEEN UNBOUNDED PRECEDING
                      AND 1 PRECEDING), 0) + (c + 1) / 2.0 AS r FROM (SELECT g, y, sum(c) AS c FROM p GROUP BY g, y)),
        w AS (SELECT p.g, p.c, rx.r AS a, ry.r AS b FROM p
              JOIN rx ON p.g IS NOT DISTINCT FROM rx.g AND p.x = rx.x
              JOIN ry ON p.g IS NOT DISTINCT FROM ry.g AND p.y = ry.y),
        d AS (SELECT g, c, CAST(2 * a AS DECIMAL(38, 0)) AS a2, CAST(2 * b AS DECIMAL(38, 0)) AS b2 FROM w),
        m AS (SELECT g, sum(c) AS n, sum(c * a2) AS sa, sum(c * b2) AS sb, sum(c * a2 * a2) AS saa,
                     sum(c * b2 * b2) AS sbb, sum(c * a2 * b2) AS sab FROM d GROUP BY g)
        SELECT g AS "group", n::BIGINT AS spearman_n,
               CAST(n * sab - sa * sb AS DOUBLE)
               / sqrt(CAST(n * saa - sa * sa AS DOUBLE) * CAST(n * sbb - sb * sb AS DOUBLE)) AS spearman
        FROM m
        """).pl()
    table = exact.join(ranks, on="group", how="left")
    return table.select("group", "n", "pearson", "spearman", "spearman_n", "slope", "intercept", "r2", "mean_x",
                        "mean_y").sort("group")


# ----------------------------------------------------------------------------------------------
# shifts over the day


def hourly_lengths(store: TraceStore, *, columns: Sequence[str] = LENGTH_COLUMNS) -> pl.DataFrame:
    """Mean (and count) of each length column per hour of the trace's day (0-23), failures excluded.

    Returns
    -------
    polars.DataFrame
        ``hour, n, mean_<column>...`` for the hours that hold requests.
    """
    have = [c for c in columns if store.has(c)]
    if not have:
        raise NotApplicableError("hourly lengths", missing=columns)
    hour, _ = hour_of_day_expression(store)
    where = " AND ".join(valid_length_filter(store, c) for c in have)
    means = ", ".join(f'avg("{c}") AS mean_{c}' for c in have)
    return store.query(f"SELECT floor({hour})::BIGINT AS hour, count(*) AS n, {means} FROM requests "
                       f"WHERE {where} GROUP BY 1 ORDER BY 1")


@dataclass(frozen=True)
class LengthShift:
    """How mean lengths shift across periods of the day (ServeGen Finding 4).

    Parameters
    ----------
    table : polars.DataFrame
        One row per period with requests: ``period, start_hour, end_hour, n, mean_input,
        mean_output, std_input, std_output``.
    input_ratio, output_ratio : float
        Max over min of the period means (NaN with fewer than two periods).
    same_direction_share : float
        Share of period pairs in which mean input and mean output change in the same direction.
    input_change, output_change : float
        Relative change of the mean from the first to the last period in ``periods`` order
        (ServeGen quotes M-mid: input +13 %, output -18 % from Midnight to Afternoon).
    hourly_correlation : float
        Pearson correlation, across the hours of the day, of the hourly mean input and output
        (NaN with fewer than three hours).
    together : bool or None
        True when the means move in the same direction in every period pair, False when they
        move apart in at least one, None with fewer than two periods.
    clock : str
        Which clock the periods were read on.
    hourly : polars.DataFrame
        ``hour, n, mean_input_tokens, mean_output_tokens`` (as :func:`hourly_lengths`).
    """

    table: pl.DataFrame = field(repr=False)
    input_ratio: float
    output_ratio: float
    same_direction_share: float
    input_change: float
    output_change: float
    hourly_correlation: float
    together: bool | None
    clock: str
    hourly: pl.DataFrame = field(default_factory=pl.DataFrame, repr=False)


def length_shifts(store: TraceStore, *, periods: Sequence[Period] = DEFAULT_PERIODS) -> LengthShift:
    """Mean input and output lengths per period and how they shift (ServeGen Finding 4).

    Raises
    ------
    NotApplicableError
        If the trace lacks either length column.
    """
    _require_lengths(store, LENGTH_COLUMNS, "length shifts over the day")
    periods = _check_periods(periods)
    hour, clock = hour_of_day_expression(store)
    where = valid_length_filter(store, "input_tokens") + " AND output_tokens IS NOT NULL"
    # one scan per hour of day; periods on whole hours are sums of hours, others get their own scan
    sums = store.query(
        f"SELECT floor({hour})::BIGINT AS hour, count(*) AS n, sum(input_tokens)::DOUBLE AS si, "
        f"sum(input_tokens::DOUBLE * input_tokens) AS ssi, sum(output_tokens)::DOUBLE AS so, "
        f"sum(output_tokens::DOUBLE * output_tokens) AS sso FROM requests WHERE {where} GROUP BY 1 ORDER BY 1")
    hourly = sums.select("hour", "n", (pl.col("si") / pl.col("n")).alias("mean_input_tokens"),
                         (pl.col("so") / pl.col("n")).alias("mean_output_tokens"))
    if all(float(p.start_hour).is_integer() and float(p.end_hour).is_integer() for p in periods):
        parts = []
        for p in periods:
            inside = (pl.col("hour") >= p.start_hour) & (pl.col("hour") < p.end_hour) if p.start_hour < p.end_hour \
                else (pl.col("hour") >= p.start_hour) | (pl.col("hour") < p.end_hour)
            parts.append(sums.filter(inside).select(pl.lit(p.name).alias("period"), pl.col("n").sum(), pl.col("si").sum(),
                                                    pl.col("ssi").sum(), pl.col("so").sum(), pl.col("sso").sum()))
        agg = pl.concat(parts).filter(pl.col("n") > 0)
        raw = agg.select(
            "period", "n", (pl.col("si") / pl.col("n")).alias("mean_input"), (pl.col("so") / pl.col("n")).alias("mean_output"),
            (pl.col("ssi") / pl.col("n") - (pl.col("si") / pl.col("n")) ** 2).clip(0).sqrt().alias("std_input"),
            (pl.col("sso") / pl.col("n") - (pl.col("so") / pl.col("n")) ** 2).clip(0).sqrt().alias("std_output"))
    else:
        key = period_expression(store, periods)
        raw = store.query(
            f"SELECT {key} AS period, count(*) AS n, avg(input_tokens) AS mean_input, avg(output_tokens) AS mean_output, "
            f"stddev_pop(input_tokens) AS std_input, stddev_pop(output_tokens) AS std_output "
            f"FROM requests WHERE {where} GROUP BY 1").filter(pl.col("period").is_not_null())
    order = pl.DataFrame({"period": [p.name for p in periods], "start_hour": [float(p.start_hour) for p in periods],
                          "end_hour": [float(p.end_hour) for p in periods]})
    table = order.join(raw, on="period", how="inner", maintain_order="left")
    nan = float("nan")
    if table.height >= 2:
        mi, mo = table["mean_input"].to_numpy(), table["mean_output"].to_numpy()
        input_ratio = float(mi.max() / mi.min()) if mi.min() > 0 else nan
        output_ratio = float(mo.max() / mo.min()) if mo.min() > 0 else nan
        i, j = np.triu_indices(table.height, k=1)
        same = np.sign(mi[j] - mi[i]) * np.sign(mo[j] - mo[i])
        share = float(np.mean(same > 0))
        together = bool(np.all(same > 0))
        input_change = float(mi[-1] / mi[0] - 1) if mi[0] > 0 else nan
        output_change = float(mo[-1] / mo[0] - 1) if mo[0] > 0 else nan
    else:
        input_ratio = output_ratio = share = input_change = output_change = nan
        together = None
    if hourly.height >= 3:
        hourly_corr = float(np.corrcoef(hourly["mean_input_tokens"].to_numpy(), hourly["mean_output_tokens"].to_numpy())[0, 1])
    else:
        hourly_corr = nan
    return LengthShift(table=table, input_ratio=input_ratio, output_ratio=output_ratio, same_direction_share=share,
                       input_change=input_change, output_change=output_change, hourly_correlation=hourly_corr,
                       together=together, clock=clock, hourly=hourly)


# ----------------------------------------------------------------------------------------------
# helpers


def _check_periods(periods: Sequence[Period]) -> tuple[Period, ...]:
    periods = tuple(periods)
    if not periods:
        raise ValueError("periods must hold at least one Period; got an empty sequence")
    bad = [p for p in periods if not isinstance(p, Period)]
    if bad:
        raise ValueError(f"periods must be Period objects; got {bad!r}")
    names = [p.name for p in periods]
    if len(set(names)) != len(names):
        raise ValueError(f"period names must be distinct; got {names}")
    return periods


def _check_quantiles(quantiles: Sequence[float]) -> tuple[float, ...]:
    qs = tuple(float(q) for q in quantiles)
    if not qs or any(not (0 <= q <= 1) for q in qs):
        raise ValueError(f"quantiles must be a non-empty sequence of numbers in [0, 1]; got {quantiles!r}")
    return qs


def _qname(q: float) -> str:
    text = f"{q * 100:.10g}".replace(".", "_")
    return f"p{text}"


def _sql_str(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"

