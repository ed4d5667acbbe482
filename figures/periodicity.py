"""Figures of BurstGPT's periodicity, burst, failure and forecasting results.

Registered figures (ids -> paper figure):

* ``burstgpt.fig2`` / ``burstgpt.fig3`` -- requests per day over the trace, conversation / API
  service, one line per model, weekends shaded (weekly periodicity and aperiodicity);
* ``burstgpt.fig4`` / ``burstgpt.fig5`` -- requests per hour of day (mean and interquartile band),
  conversation / API service (daily periodicity and aperiodicity);
* ``burstgpt2024.fig5`` -- doublings per day within 5 and 10 minutes, against the Poisson reference;
* ``burstgpt.fig11`` -- distribution of hourly failure rates per model and service;
* ``burstgpt.fig17`` / ``burstgpt.fig18`` -- forecasts vs actual load on the held-out tail.

Functions take the tables of :mod:`servelab.analysis.periodicity`, :mod:`~servelab.analysis.bursts`,
:mod:`~servelab.analysis.failures` (keyed by a ``group`` label) and forecast results (anything with
``predictions``, ``target``, ``window_s``, ``nmae``, ``nmse``); they compute nothing but selections.
Never ``plt.show()``; canvases come from :func:`servelab.figures.style.figure`.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from servelab.figures.registry import draws, register_figure
from servelab.figures.style import (
    COLUMN_WIDTH_IN,
    FULL_WIDTH_IN,
    figure,
    legend_outside,
    paper_style,
)

__all__ = [
    "burst_frequency",
    "daily_api",
    "daily_conversation",
    "failure_rates_figure",
    "forecast_bins_figure",
    "forecast_figure",
    "plot_burst_frequency",
    "plot_daily_volume",
    "plot_failure_rates",
    "plot_forecast",
    "plot_hour_of_day",
    "select_groups",
    "weekly_api",
    "weekly_conversation",
]

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def select_groups(table: pl.DataFrame, service: str | None) -> tuple[pl.DataFrame, str]:
    """Rows of ``table`` whose ``group`` label names ``service`` together with a model
    (``"conversation / ChatGPT"``), else the service alone, else the whole trace; and a note
    saying which was used."""
    if service is None:
        return table.filter(pl.col("group") == "all"), "whole trace"
    low = pl.col("group").str.to_lowercase()
    key = service.lower()
    both = table.filter(low.str.starts_with(key) & low.str.contains(" / ", literal=True))
    if both.height:
        return both, f"{service}, per model"
    alone = table.filter(low.str.contains(key, literal=True))
    if alone.height:
        return alone, service
    return table.filter(pl.col("group") == "all"), f"no '{service}' service: whole trace"


def plot_daily_volume(daily: pl.DataFrame, *, ax: Axes | None = None, groups: Sequence[str] | None = None) -> Axes:
    """Requests per day (complete and partial days, partial ones hollow), one line per group."""
    if ax is None:
        _, ax = figure()
    groups = list(groups) if groups is not None else daily["group"].unique(maintain_order=True).to_list()
    for g in groups:
        part = daily.filter(pl.col("group") == g).sort("day_index")
        x = part["day_index"].to_numpy()
        y = part["count"].to_numpy()
        line, = ax.plot(x, y, marker="o", ms=3, label=g)
        partial = ~part["complete"].to_numpy()
        ax.plot(x[partial], y[partial], ls="none", marker="o", ms=5, mfc="white", color=line.get_color())
    known = daily["is_weekend"].null_count() == 0 and daily.height
    if known:
        weekend = daily.filter(pl.col("is_weekend")).select("day_index").unique()["day_index"].to_numpy()
        for d in weekend:
            ax.axvspan(d - 0.5, d + 0.5, color="0.9", zorder=0, lw=0)
        ax.set_xlabel("day of trace (local time; weekends shaded)")
    else:
        ax.set_xlabel("day since trace start (origin unknown)")
    ax.set_ylabel("requests per day (count)")
    if groups:
        ax.legend()
    return ax


def plot_hour_of_day(profile: pl.DataFrame, *, ax: Axes | None = None, groups: Sequence[str] | None = None,
                     day_type: str = "all") -> Axes:
    """Mean requests per hour of day with the interquartile band, one line per group."""
    if ax is None:
        _, ax = figure()
    prof = profile.filter(pl.col("day_type") == day_type)
    groups = list(groups) if groups is not None else prof["group"].unique(maintain_order=True).to_list()
    for g in groups:
        part = prof.filter(pl.col("group") == g).sort("hour")
        h = part["hour"].to_numpy()
        line, = ax.plot(h, part["mean"].to_numpy(), marker="o", ms=3, label=g)
        ax.fill_between(h, part["p25"].to_numpy(), part["p75"].to_numpy(), color=line.get_color(), alpha=0.2, lw=0)
    relative = prof.height and prof["clock"][0] == "relative to trace start"
    ax.set_xlabel("hours since trace start, mod 24 (origin unknown)" if relative else "hour of day (local time)")
    ax.set_ylabel("requests per hour (count)")
    ax.set_xlim(-0.5, 23.5)
    ax.set_xticks(range(0, 24, 3))
    if groups:
        ax.legend()
    return ax


def plot_burst_frequency(bursts: pl.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Doublings per day (per workday when known) per group and horizon; Poisson reference as ticks."""
    if ax is None:
        _, ax = figure()
    groups = bursts["group"].unique(maintain_order=True).to_list()
    horizons = sorted(bursts["horizon_s"].unique().to_list())
    width = 0.8 / max(len(horizons), 1)
    for i, h in enumerate(horizons):
        part = bursts.filter(pl.col("horizon_s") == h)
        rates = part["workday_bursts_per_day"].fill_null(part["bursts_per_day"]).fill_null(0.0)
        order = [part["group"].to_list().index(g) for g in groups]
        x = np.arange(len(groups)) + (i - (len(horizons) - 1) / 2) * width
        ax.bar(x, rates.to_numpy()[order], width=width, label=f"within {h / 60:g} min")
        days = (part["n_eligible"] * h / 86400).to_numpy()[order]
        expected = part["poisson_burst_share"].fill_null(0.0).to_numpy()[order] * part["n_eligible"].to_numpy()[order]
        with np.errstate(divide="ignore", invalid="ignore"):
            ax.plot(x, np.where(days > 0, expected / days, np.nan), ls="none", marker="_", ms=14, mew=2, color="k",
                    label="expected of Poisson windows" if i == 0 else None)
    ax.set_xticks(np.arange(len(groups)), groups)
    ax.set_xlim(-0.5 - 0.4 * (len(groups) < 3), len(groups) - 0.5 + 0.4 * (len(groups) < 3))  # few groups: no slabs
    ax.set_ylabel("volume doublings per day (count/day)")
    ax.set_xlabel("group")
    ax.legend()
    return ax


def plot_failure_rates(over_time: pl.DataFrame, *, ax: Axes | None = None, min_requests: int = 10) -> Axes:
    """Box plot of per-window failure rates (windows with >= ``min_requests`` requests), per group."""
    if ax is None:
        _, ax = figure()
    kept = over_time.filter(pl.col("n") >= min_requests)
    groups = kept["group"].unique(maintain_order=True).sort().to_list()
    data = [100 * kept.filter(pl.col("group") == g)["rate"].to_numpy() for g in groups]
    if groups:
        ax.boxplot(data, tick_labels=groups, showmeans=True, flierprops={"ms": 2})
    ax.set_ylabel("failure rate per window (%)")
    ax.set_xlabel(f"group (windows with >= {min_requests} requests)")
    ax.tick_params(axis="x", labelrotation=20)
    return ax


def plot_forecast(result, *, ax: Axes | None = None, max_bins: int | None = None) -> Axes:
    """Actual vs predicted load on the held-out tail (first ``max_bins`` bins; default 6 hours)."""
    if ax is None:
        _, ax = figure()
    pred = result.predictions.sort("start_s")
    max_bins = max_bins if max_bins is not None else max(1, int(6 * 3600 // result.window_s))
    pred = pred.head(max_bins)
    t = (pred["start_s"].to_numpy() - pred["start_s"][0]) / 3600 if pred.height else np.array([])
    ax.plot(t, pred["actual"].to_numpy(), label="actual", lw=1)
    ax.plot(t, pred["predicted"].to_numpy(), label=f"forecast (NMAE {result.nmae:.2f}, NMSE {result.nmse:.2f})", lw=1)
    unit = "requests per bin (count)" if result.target == "requests" else "mean request length (tokens)"
    ax.set_ylabel(unit)
    ax.set_title(f"{result.window_s / 60:g}-minute bins", fontsize=8)
    ax.set_xlabel("time into the held-out tail (h)")
    legend_outside(ax, where="below", ncols=1)  # spikes reach every corner: keep the legend off the curves
    return ax


def _weekly(daily: pl.DataFrame, service: str) -> Figure:
    rows, note = select_groups(daily, service)
    fig, ax = figure(width=FULL_WIDTH_IN, height=2.6)
    with paper_style():
        plot_daily_volume(rows, ax=ax)
        ax.set_title(f"Requests per day: {note}")
    return fig


def _hourly(profile: pl.DataFrame, service: str) -> Figure:
    rows, note = select_groups(profile, service)
    fig, ax = figure(width=COLUMN_WIDTH_IN * 1.3, height=2.6)
    with paper_style():
        plot_hour_of_day(rows, ax=ax)
        ax.set_title(f"Requests per hour of day: {note}")
    return fig


@register_figure("burstgpt.fig2", title="Weekly periodicity of conversation traffic",
                 paper_figure="BurstGPT Fig. 2", needs=("service",))
def weekly_conversation(daily: pl.DataFrame, *, service: str = "conversation") -> Figure:
    """Requests per day of the conversation service, per model (from ``daily_counts``)."""
    return _weekly(daily, service)


@register_figure("burstgpt.fig3", title="Weekly aperiodicity of API traffic", paper_figure="BurstGPT Fig. 3",
                 needs=("service",))
def weekly_api(daily: pl.DataFrame, *, service: str = "api") -> Figure:
    """Requests per day of the API service, per model (from ``daily_counts``)."""
    return _weekly(daily, service)


@register_figure("burstgpt.fig4", title="Daily periodicity of conversation traffic",
                 paper_figure="BurstGPT Fig. 4", needs=("service",))
def daily_conversation(profile: pl.DataFrame, *, service: str = "conversation") -> Figure:
    """Requests per hour of day of the conversation service (from ``hour_of_day_profile``)."""
    return _hourly(profile, service)


@register_figure("burstgpt.fig5", title="Daily aperiodicity of API traffic", paper_figure="BurstGPT Fig. 5",
                 needs=("service",))
def daily_api(profile: pl.DataFrame, *, service: str = "api") -> Figure:
    """Requests per hour of day of the API service (from ``hour_of_day_profile``)."""
    return _hourly(profile, service)


@register_figure("burstgpt2024.fig5", title="Frequency of short-term bursts (volume doublings)",
                 paper_figure="BurstGPT preprint (2024) Fig. 5")
def burst_frequency(bursts: pl.DataFrame) -> Figure:
    """Doublings per day within 5 and 10 minutes (from ``burst_counts``)."""
    fig, ax = figure(width=COLUMN_WIDTH_IN * 1.3, height=2.6)
    with paper_style():
        plot_burst_frequency(bursts, ax=ax)
    return fig


@register_figure("burstgpt.fig11", title="Failure rates per model and service", paper_figure="BurstGPT Fig. 11",
                 needs=("failed",))
def failure_rates_figure(over_time: pl.DataFrame, *, min_requests: int = 10) -> Figure:
    """Distribution of hourly failure rates per group (from ``failure_rate_over_time``)."""
    fig, ax = figure(width=COLUMN_WIDTH_IN * 1.3, height=2.6)
    with paper_style():
        plot_failure_rates(over_time, ax=ax, min_requests=min_requests)
    return fig


@register_figure("burstgpt.fig17", title="Forecasts of request count and mean request tokens (1-minute bins)",
                 paper_figure="BurstGPT Fig. 17")
def forecast_figure(requests_result, tokens_result=None) -> Figure:
    """Request-count forecast and, when given, mean-tokens forecast on the held-out tail."""
    results = [r for r in (requests_result, tokens_result) if r is not None]
    fig, axes = figure(ncols=len(results), width=FULL_WIDTH_IN, height=3.0)
    axes = np.atleast_1d(axes)
    with paper_style():
        for ax, r in zip(axes, results):
            plot_forecast(r, ax=ax)
    return fig


@register_figure("burstgpt.fig18", title="Request-count forecasts at 1-minute and 10-minute bins",
                 paper_figure="BurstGPT Fig. 18")
def forecast_bins_figure(one_minute, ten_minutes=None) -> Figure:
    """Request-count forecasts at two bin sizes, side by side."""
    return forecast_figure(one_minute, ten_minutes)


# ---------------------------------------------------------------- drawn by the periodicity area
# (``evidence``: servelab.reports.findings.periodicity.PeriodicityEvidence; drawers select, never compute)

_DAY_S = 86400.0


@draws("burstgpt.fig2", area="periodicity")
def _draw_fig2(ev) -> Figure | None:
    return weekly_conversation(ev.daily) if ev.span_s >= 2 * _DAY_S else None


@draws("burstgpt.fig3", area="periodicity")
def _draw_fig3(ev) -> Figure | None:
    return weekly_api(ev.daily) if ev.span_s >= 2 * _DAY_S else None


@draws("burstgpt.fig4", area="periodicity")
def _draw_fig4(ev) -> Figure | None:
    return daily_conversation(ev.hour_profile) if ev.span_s >= _DAY_S else None


@draws("burstgpt.fig5", area="periodicity")
def _draw_fig5(ev) -> Figure | None:
    return daily_api(ev.hour_profile) if ev.span_s >= _DAY_S else None


@draws("burstgpt2024.fig5", area="periodicity")
def _draw_burst_frequency(ev) -> Figure | None:
    return burst_frequency(ev.bursts) if ev.bursts is not None else None


@draws("burstgpt.fig11", area="periodicity")
def _draw_fig11(ev) -> Figure | None:
    if ev.failure_over_time is not None and ev.failure_over_time.height:
        return failure_rates_figure(ev.failure_over_time)
    return None


@draws("burstgpt.fig17", area="periodicity")
def _draw_fig17(ev) -> Figure | None:
    one = ev.forecasts.get(("requests", 60.0))
    return forecast_figure(one, ev.forecasts.get(("mean_tokens", 60.0))) if one is not None else None


@draws("burstgpt.fig18", area="periodicity")
def _draw_fig18(ev) -> Figure | None:
    one, ten = ev.forecasts.get(("requests", 60.0)), ev.forecasts.get(("requests", 600.0))
    return forecast_bins_figure(one, ten) if one is not None and ten is not None else None
