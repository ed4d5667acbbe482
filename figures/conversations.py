"""Figures of multi-turn conversations: ServeGen Fig. 14-16 and BurstGPT (KDD'25) Fig. 9.

Registered figures (ids -> paper figure):

* ``servegen.fig14`` -- rate and CV of gaps per window over the trace, and the inter-arrival gap
  histogram with the fitted densities (does an Exponential fit?);
* ``servegen.fig15`` -- (a) conversations per number of turns, (b) inter-turn time (ITT)
  histogram up to its 95th percentile with the fitted densities;
* ``servegen.fig16`` -- CV per window of the original trace and of its multi-turn requests
  upsampled the naive way and the ITT way;
* ``burstgpt.fig9`` -- conversations, mean and P90 interval per number of requests (left), mean
  number of long intervals per conversation per threshold (right).

Functions take the tables of :class:`servelab.reports.findings.conversations.ConversationEvidence`
and compute nothing but selections. Never ``plt.show()``.
"""
from __future__ import annotations

import polars as pl
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from servelab.figures.arrivals import plot_gap_histogram
from servelab.figures.registry import draws, register_figure
from servelab.figures.style import FULL_WIDTH_IN, figure, legend_outside, paper_style

__all__ = [
    "burstgpt_fig9",
    "plot_intervals_by_turns",
    "plot_itt_histogram",
    "plot_long_intervals",
    "plot_turn_distribution",
    "plot_upsampling_cv",
    "servegen_fig14",
    "servegen_fig15",
    "servegen_fig16",
]


def _axes(ax: Axes | None, **kw) -> Axes:
    if ax is not None:
        return ax
    _, ax = figure(**kw)
    return ax


def plot_turn_distribution(turns: pl.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Bars: conversations per number of turns (log count axis)."""
    ax = _axes(ax)
    with paper_style():
        if turns is not None and turns.height:
            ax.bar(turns["turns"].to_numpy(), turns["conversations"].to_numpy(), color="0.55", width=0.8)
            ax.set_yscale("log")
        ax.set_xlabel("turns per conversation (count)")
        ax.set_ylabel("conversations (count)")
    return ax


def plot_itt_histogram(histogram: pl.DataFrame | None, densities: pl.DataFrame | None = None, *,
                       ax: Axes | None = None) -> Axes:
    """ITT density histogram (``bin_lo, bin_hi, density``) with fitted densities (``family, x, pdf``)."""
    ax = _axes(ax)
    with paper_style():
        if histogram is not None and histogram.height:
            lo = histogram["bin_lo"].to_numpy()
            ax.bar(lo, histogram["density"].to_numpy(), width=histogram["bin_hi"].to_numpy() - lo, align="edge",
                   color="0.8", edgecolor="0.6", linewidth=0.3, label="measured")
        if densities is not None and densities.height:
            for family, part in densities.group_by("family", maintain_order=True):
                ax.plot(part["x"].to_numpy(), part["pdf"].to_numpy(), label=str(family[0]))
        ax.set_xlabel("inter-turn time (s), up to the 95th percentile")
        ax.set_ylabel("density (1/s)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best")
    return ax


def plot_upsampling_cv(windows: pl.DataFrame, *, ax: Axes | None = None) -> Axes:
    """CV per window over time: original, naive upsampling, ITT upsampling."""
    ax = _axes(ax)
    with paper_style():
        t = windows["window_start_s"].to_numpy() / 3600.0
        for col, label in (("cv_original", "original"), ("cv_naive", "naive upsampling"), ("cv_itt", "ITT upsampling")):
            if col in windows.columns:
                ax.plot(t, windows[col].to_numpy().astype(float), marker=".", markersize=2, linewidth=0.9, label=label)
        ax.axhline(1.0, color="0.5", linestyle="--", linewidth=0.8)
        ax.set_xlabel("time since trace start (h)")
        ax.set_ylabel("CV of gaps per window (-)")
        if ax.get_legend_handles_labels()[0]:
            legend_outside(ax, where="below", ncols=3)  # the three curves overlap: never cover them
    return ax


def plot_intervals_by_turns(intervals: pl.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Conversations per number of requests (bars, left axis) and mean / P90 interval (right axis)."""
    ax = _axes(ax)
    with paper_style():
        if intervals is not None and intervals.height:
            x = intervals["turns"].to_numpy()
            ax.bar(x, intervals["conversations"].to_numpy(), color="0.8", width=0.8, label="conversations")
            ax.set_yscale("log")
            twin = ax.twinx()
            twin.plot(x, intervals["mean_itt_s"].to_numpy(), marker="o", markersize=2, label="mean interval")
            twin.plot(x, intervals["p90_itt_s"].to_numpy(), marker="s", markersize=2, label="P90 interval")
            twin.set_ylabel("interval (s)")
            twin.grid(False)  # the bars' grid only
            twin.legend(loc="upper right")
        ax.set_xlabel("requests per conversation (count)")
        ax.set_ylabel("conversations (count)")
    return ax


def plot_long_intervals(intervals: pl.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Mean number of long intervals per conversation, per threshold, vs requests per conversation."""
    ax = _axes(ax)
    with paper_style():
        if intervals is not None and intervals.height:
            x = intervals["turns"].to_numpy()
            for col in [c for c in intervals.columns if c.startswith("long_gt_")]:
                label = "> IQR upper bound" if col == "long_gt_iqr" else "> " + col.removeprefix("long_gt_")
                ax.plot(x, intervals[col].to_numpy(), marker="o", markersize=2, label=label)
            ax.legend(loc="best")
        ax.set_xlabel("requests per conversation (count)")
        ax.set_ylabel("long intervals per conversation (count)")
    return ax


@register_figure("servegen.fig14", title="Aggregate rate and CV per window, and the inter-arrival distribution",
                 paper_figure="ServeGen Fig. 14")
def servegen_fig14(windows: pl.DataFrame, gap_histogram: pl.DataFrame | None = None,
                   gap_densities: pl.DataFrame | None = None, **_) -> Figure:
    """Left: rate and CV per window; right: gap histogram with fitted densities."""
    fig, (left, right) = figure(ncols=2, width=FULL_WIDTH_IN, height=2.7)
    with paper_style():
        t = windows["window_start_s"].to_numpy() / 3600.0
        left.plot(t, windows["cv"].to_numpy().astype(float), color="C0", linewidth=0.9, label="CV")
        left.axhline(1.0, color="0.5", linestyle="--", linewidth=0.8)
        left.set_xlabel("time since trace start (h)")
        left.set_ylabel("CV of gaps (-)", color="C0")
        left.tick_params(axis="y", colors="C0")
        twin = left.twinx()
        twin.plot(t, windows["rate_rps"].to_numpy().astype(float), color="C1", linewidth=0.9, label="rate")
        twin.set_ylabel("rate (requests/s)", color="C1")
        twin.tick_params(axis="y", colors="C1")
        twin.grid(False)  # one grid (the CV axis'): two misaligned grids read as noise
        legend_outside(left, where="below", ncols=2, handles=left.get_lines()[:1] + twin.get_lines()[:1],
                       labels=["CV of gaps (left axis)", "rate (right axis)"])
    if gap_histogram is not None and gap_histogram.height:
        plot_gap_histogram(gap_histogram, gap_densities, ax=right)
    else:
        with paper_style():
            right.set_xlabel("inter-arrival gap (s)")
            right.set_ylabel("density (1/s)")
            right.text(0.5, 0.5, "no positive gaps", ha="center", va="center", transform=right.transAxes)
    return fig


@register_figure("servegen.fig15", title="Conversation lengths and inter-turn times", paper_figure="ServeGen Fig. 15")
def servegen_fig15(turns: pl.DataFrame, itt_histogram: pl.DataFrame | None = None,
                   itt_densities: pl.DataFrame | None = None, **_) -> Figure:
    """(a) turns per conversation; (b) ITT histogram with fitted densities."""
    fig, (a, b) = figure(ncols=2, width=FULL_WIDTH_IN, height=2.4)
    plot_turn_distribution(turns.filter(pl.col("turns") >= 2) if turns is not None else turns, ax=a)
    plot_itt_histogram(itt_histogram, itt_densities, ax=b)
    return fig


@register_figure("servegen.fig16", title="Burstiness of the original trace and of its upsampled multi-turn requests",
                 paper_figure="ServeGen Fig. 16")
def servegen_fig16(windows: pl.DataFrame, **_) -> Figure:
    """CV per window: original, naive upsampling, ITT upsampling."""
    fig, ax = figure(width=FULL_WIDTH_IN * 0.6, height=2.7)
    plot_upsampling_cv(windows, ax=ax)
    return fig


@register_figure("burstgpt.fig9", title="Conversations, intervals and long intervals per number of requests",
                 paper_figure="BurstGPT (KDD'25) Fig. 9")
def burstgpt_fig9(intervals: pl.DataFrame, **_) -> Figure:
    """Left: conversations and mean / P90 interval; right: long intervals per conversation."""
    fig, (left, right) = figure(ncols=2, width=FULL_WIDTH_IN, height=2.4)
    plot_intervals_by_turns(intervals, ax=left)
    plot_long_intervals(intervals, ax=right)
    return fig


# ---------------------------------------------------------------- drawn by the conversations area
# (``evidence``: servelab.reports.findings.conversations.ConversationEvidence; drawers select, never compute)

def _multi_turn(ev) -> bool:
    return ev.summary is not None and bool(ev.summary.n_multi_turn)


@draws("servegen.fig15", area="conversations")
def _draw_servegen_fig15(ev) -> Figure | None:
    return servegen_fig15(ev.turns, ev.itt_histogram, ev.itt_densities) if _multi_turn(ev) else None


@draws("burstgpt.fig9", area="conversations")
def _draw_burstgpt_fig9(ev) -> Figure | None:
    return burstgpt_fig9(ev.intervals) if _multi_turn(ev) else None


@draws("servegen.fig14", area="conversations")
def _draw_servegen_fig14(ev) -> Figure | None:
    if _multi_turn(ev) and ev.aggregate_windows is not None:
        return servegen_fig14(ev.aggregate_windows, ev.gap_histogram, ev.gap_densities)
    return None


@draws("servegen.fig16", area="conversations")
def _draw_servegen_fig16(ev) -> Figure | None:
    return servegen_fig16(ev.upsampling.windows) if ev.summary is not None and ev.upsampling is not None else None
