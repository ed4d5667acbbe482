"""Request failure rates, overall, per group and over time (BurstGPT section 3.4, Fig. 11).

BurstGPT marks a request failed when its response has zero tokens (the store's ``failed``
column, set at ingest). The paper compares the *average* failure rate of models and services and
their *stability* (the spread of the rate over time): Fig. 11 shows the distribution of
per-period failure rates per model and service.

* :func:`failure_rates` -- failed / requests per group, with a Wilson 95% interval;
* :func:`failure_rate_over_time` -- the same per time window (SQL, idle windows left out: a
  rate of a window without requests is undefined, not 0);
* :func:`failure_rate_spread` -- the distribution of the per-window rates (mean, std, quartiles)
  over windows with at least ``min_requests`` requests.

Every analysis here needs ``failed`` and raises :class:`NotApplicableError` without it. Counting is
DuckDB SQL. No plotting, no fitting.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import NamedTuple

import polars as pl
from servelab.analysis.periodicity import TraceClock, normalize_by, trace_clock
from servelab.analysis.store import TraceStore, fetch_polars

__all__ = ["Z_95", "Interval", "failure_rate_over_time", "failure_rate_spread", "failure_rates", "over_time_from_bins",
           "rates_from_bins", "wilson_interval"]

#: standard normal quantile of a two-sided 95% interval
Z_95 = 1.959963984540054


class Interval(NamedTuple):
    """Lower and upper bounds (:func:`wilson_interval`: polars expressions; unpacks as ``lo, hi``)."""

    lo: pl.Expr
    hi: pl.Expr


def wilson_interval(failed: pl.Expr, n: pl.Expr, z: float = Z_95) -> Interval:
    """Wilson score interval of a binomial proportion ``failed / n`` as polars expressions.

    .. math:: \\frac{\\hat p + z^2/2n \\pm z\\sqrt{\\hat p(1-\\hat p)/n + z^2/4n^2}}{1 + z^2/n}
    """
    p = failed / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)).sqrt()) / denom
    return Interval(centre - half, centre + half)


def _quote(col: str) -> str:
    return '"' + col.replace('"', '""') + '"'


def _group_expr(by: tuple[str, ...]) -> pl.Expr:
    if not by:
        return pl.lit("all").alias("group")
    return pl.concat_str([pl.col(c).cast(pl.String).fill_null("(none)") for c in by], separator=" / ").alias("group")


def failure_rates(store: TraceStore, *, by: str | Sequence[str] | None = None) -> pl.DataFrame:
    """Failure rate per group (all requests, whole trace).

    Returns
    -------
    polars.DataFrame
        ``by`` columns, ``group``, ``n``, ``n_failed``, ``rate``, ``ci_low``, ``ci_high`` (Wilson
        95%). Requests whose ``failed`` is null are left out of ``n``.

    Raises
    ------
    NotApplicableError
        If the store has no ``failed`` column (or a ``by`` column is missing).
    """
    by = normalize_by(by)
    store.require("failed", *by, analysis="failure rates")
    keys = ", ".join(_quote(c) for c in by)
    sql = (
        f"SELECT {keys + ', ' if by else ''}count(failed) AS n, "
        f"count(*) FILTER (WHERE failed) AS n_failed FROM requests GROUP BY ALL"
        + (f" ORDER BY {keys}" if by else "")
    )
    out = store.query(sql).with_columns(_group_expr(by))
    low, high = wilson_interval(pl.col("n_failed"), pl.col("n"))
    return out.with_columns(
        rate=pl.when(pl.col("n") > 0).then(pl.col("n_failed") / pl.col("n")),
        ci_low=pl.when(pl.col("n") > 0).then(low),
        ci_high=pl.when(pl.col("n") > 0).then(high),
    ).select([*by, "group", "n", "n_failed", "rate", "ci_low", "ci_high"])


def failure_rate_over_time(
    store: TraceStore,
    *,
    window_s: float = 3600.0,
    by: str | Sequence[str] | None = None,
    clock: TraceClock | None = None,
) -> pl.DataFrame:
    """Failure rate per time window and group (windows aligned on the trace's clock).

    Windows without requests (with a non-null ``failed``) are absent: their rate is undefined.

    Returns
    -------
    polars.DataFrame
        ``by`` columns, ``group``, ``bin``, ``start_s``, ``n``, ``n_failed``, ``rate``.

    Raises
    ------
    ValueError
        If ``window_s`` is not positive.
    NotApplicableError
        If the store has no ``failed`` column.
    """
    if not (isinstance(window_s, (int, float)) and math.isfinite(window_s) and window_s > 0):
        raise ValueError(f"window_s must be a positive number of seconds; got {window_s!r}")
    by = normalize_by(by)
    store.require("failed", *by, analysis="failure rate over time")
    clock = clock or trace_clock(store)
    phase = clock.phase_s(window_s)
    keys = ", ".join(_quote(c) for c in by)
    sql = (
        f"SELECT {keys + ', ' if by else ''}CAST(floor((timestamp + {phase!r}) / {float(window_s)!r}) AS BIGINT) AS bin, "
        f"count(failed) AS n, count(*) FILTER (WHERE failed) AS n_failed "
        f"FROM requests WHERE failed IS NOT NULL GROUP BY ALL ORDER BY {keys + ', ' if by else ''}bin"
    )
    with contextlib.closing(store.connect()) as con:
        out = fetch_polars(con, sql)
    return out.with_columns(
        _group_expr(by),
        start_s=pl.col("bin").cast(pl.Float64) * float(window_s) - phase,
        rate=pl.col("n_failed") / pl.col("n"),
    ).select([*by, "group", "bin", "start_s", "n", "n_failed", "rate"])


def failure_rate_spread(over_time: pl.DataFrame, *, min_requests: int = 10) -> pl.DataFrame:
    """Distribution of per-window failure rates per group (BurstGPT Fig. 11's box plots).

    Only windows with at least ``min_requests`` requests count (a rate of 1 failure in 2 requests
    is noise, not instability).

    Returns
    -------
    polars.DataFrame
        ``group``, ``n_windows``, ``mean``, ``std``, ``p25``, ``median``, ``p75``, ``max`` of the
        per-window rates (null when no window qualifies).

    Raises
    ------
    ValueError
        If ``min_requests < 1``.
    """
    if int(min_requests) != min_requests or min_requests < 1:
        raise ValueError(f"min_requests must be an integer >= 1; got {min_requests!r}")
    groups = over_time.select("group").unique(maintain_order=True)
    kept = over_time.filter(pl.col("n") >= min_requests)
    stats = kept.group_by("group").agg(
        n_windows=pl.len(),
        mean=pl.col("rate").mean(),
        std=pl.col("rate").std(),
        p25=pl.col("rate").quantile(0.25, "linear"),
        median=pl.col("rate").median(),
        p75=pl.col("rate").quantile(0.75, "linear"),
        max=pl.col("rate").max(),
    )
    return groups.join(stats, on="group", how="left").with_columns(
        pl.col("n_windows").fill_null(0).cast(pl.Int64)
    ).sort("group")


def rates_from_bins(frame: pl.DataFrame) -> pl.DataFrame:
    """:func:`failure_rates` from a ``binned_load(..., failed=True)`` table (per ``group``).

    Sums ``failed_known`` and ``n_failed`` over the bins of each group: the same numbers as
    :func:`failure_rates` without another scan of the store.
    """
    out = frame.group_by("group", maintain_order=True).agg(
        n=pl.col("failed_known").sum().cast(pl.Int64), n_failed=pl.col("n_failed").sum().cast(pl.Int64))
    low, high = wilson_interval(pl.col("n_failed"), pl.col("n"))
    return out.with_columns(
        rate=pl.when(pl.col("n") > 0).then(pl.col("n_failed") / pl.col("n")),
        ci_low=pl.when(pl.col("n") > 0).then(low),
        ci_high=pl.when(pl.col("n") > 0).then(high),
    ).sort("group")


def over_time_from_bins(frame: pl.DataFrame) -> pl.DataFrame:
    """:func:`failure_rate_over_time` from a ``binned_load(..., failed=True)`` table: bins without
    requests (with a known ``failed``) are dropped, their rate being undefined."""
    return frame.filter(pl.col("failed_known") > 0).select(
        "group", "bin", "start_s", n=pl.col("failed_known").cast(pl.Int64), n_failed=pl.col("n_failed").cast(pl.Int64),
    ).with_columns(rate=pl.col("n_failed") / pl.col("n"))
