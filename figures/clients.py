"""Figures of the client decomposition: ServeGen Fig. 6 (language), Fig. 12 (multimodal) and
Fig. 17 (reasoning).

Registered figures (ids -> paper figure):

* ``servegen.fig6`` -- CDFs across clients of rate, CV, mean input and mean output (top row);
  the top clients' rate and CV per window over time, and the range of their mean lengths across
  windows as error bars (bottom row);
* ``servegen.fig12`` -- the same for a multimodal trace, with the multimodal share of the input
  in place of the output length;
* ``servegen.fig17`` -- share of requests carried by the top clients, CDF of client CVs, and
  the per-request reason ratio distribution of the top clients.

Functions take the tables of :class:`servelab.analysis.clients.ClientDecomposition` (``summary``,
``ranking``, ``window_stats``) and compute nothing but selections. Never ``plt.show()``.
"""
from __future__ import annotations

import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from servelab.figures.registry import draws, register_figure
from servelab.figures.style import FULL_WIDTH_IN, figure, legend_outside, paper_style

__all__ = [
    "plot_client_cdf",
    "plot_reason_ratio_histograms",
    "plot_share_curve",
    "plot_top_client_ranges",
    "plot_top_client_series",
    "servegen_fig6",
    "servegen_fig12",
    "servegen_fig17",
]

_LABELS = {
    "rate": "rate (requests/s)",
    "rate_rps": "rate (requests/s)",
    "cv": "CV of gaps (-)",
    "mean_input": "mean input (tokens)",
    "mean_output": "mean output (tokens)",
    "mean_mm_ratio": "multimodal share of input (-)",
    "mean_image_ratio": "image share of input (-)",
    "mean_reason_ratio": "reason share of output (-)",
}
_LOG = {"rate", "rate_rps", "cv", "mean_input", "mean_output"}


def _axes(ax: Axes | None, **kw) -> Axes:
    if ax is not None:
        return ax
    _, ax = figure(**kw)
    return ax


def plot_share_curve(ranking: pl.DataFrame, *, by: str = "requests", ax: Axes | None = None) -> Axes:
    """Cumulative share of requests (or tokens) carried by the top-k clients, k on a log axis."""
    ax = _axes(ax)
    col, rank = f"cum_{by[:-1]}_share", f"rank_{by}"
    with paper_style():
        if col in ranking.columns and ranking.height:
            part = ranking.sort(rank)
            ax.plot(part[rank].to_numpy(), part[col].to_numpy(), drawstyle="steps-post")
            for level in (0.5, 0.9):
                ax.axhline(level, color="0.6", linestyle=":", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xlabel(f"top clients by {by} (count)")
        ax.set_ylabel(f"cumulative share of {by} (-)")
        ax.set_ylim(0, 1.02)
    return ax


def plot_client_cdf(summary: pl.DataFrame, column: str, *, ax: Axes | None = None) -> Axes:
    """Empirical CDF across clients of one per-client value (log x for rates, CVs and lengths)."""
    ax = _axes(ax)
    with paper_style():
        if column in summary.columns:
            x = np.sort(summary[column].drop_nulls().to_numpy().astype(float))
            if column in _LOG:
                x = x[x > 0]
            if x.size:
                ax.plot(x, np.arange(1, x.size + 1) / x.size, drawstyle="steps-post")
                if column in _LOG and x.max() / max(x.min(), 1e-300) > 20:
                    ax.set_xscale("log")
        if column == "cv":
            ax.axvline(1.0, color="0.5", linestyle="--", linewidth=0.8)
        ax.set_xlabel(_LABELS.get(column, column))
        ax.set_ylabel("CDF over clients (-)")
        ax.set_ylim(0, 1.02)
    return ax


def plot_top_client_series(window_stats: pl.DataFrame, column: str, *, clients, ax: Axes | None = None,
                           min_requests: int = 10, legend: bool = True) -> Axes:
    """One line per top client: ``column`` per window over time (hours); CV only where a window
    holds at least ``min_requests`` requests. The client legend goes under the axes (never over
    the curves); ``legend=False`` leaves it to the caller (one legend for a row of panels)."""
    ax = _axes(ax)
    with paper_style():
        for i, cid in enumerate(clients):
            part = window_stats.filter(pl.col("client_id") == cid).sort("window")
            if column == "cv":
                part = part.filter(pl.col("n_requests") >= min_requests)
            if part.height:
                ax.plot(part["window_start_s"].to_numpy() / 3600.0, part[column].to_numpy(), marker=".",
                        markersize=2, linewidth=0.8, label=f"client {chr(65 + i)} ({cid})")
        if column in ("rate_rps", "cv"):
            ax.set_yscale("log")
        if column == "cv":
            ax.axhline(1.0, color="0.5", linestyle="--", linewidth=0.8)
        ax.set_xlabel("time since start (h)")
        ax.set_ylabel(_LABELS.get(column, column))
        if legend and ax.get_legend_handles_labels()[0]:
            legend_outside(ax, where="below")
    return ax


def plot_top_client_ranges(window_stats: pl.DataFrame, column: str, *, clients, ax: Axes | None = None,
                           min_requests: int = 10) -> Axes:
    """Per top client: median of ``column`` over windows with the min-max range as an error bar
    (log y when the values span more than 30x), in the clients' colours of
    :func:`plot_top_client_series`."""
    ax = _axes(ax)
    with paper_style():
        labels = []
        drawn = []
        for i, cid in enumerate(clients):
            v = np.array([])
            if column in window_stats.columns:
                v = window_stats.filter((pl.col("client_id") == cid) & (pl.col("n_requests") >= min_requests))[column]
                v = v.drop_nulls().to_numpy().astype(float)
            labels.append(chr(65 + i))
            if v.size:
                med = float(np.median(v))
                ax.errorbar([i], [med], yerr=[[med - v.min()], [v.max() - med]], fmt="o", capsize=3, markersize=3,
                            color=f"C{i % 10}")
                drawn.append(v)
        if drawn and column in _LOG:
            values = np.concatenate(drawn)
            values = values[values > 0]
            if values.size >= 2 and values.max() / values.min() > 30:
                ax.set_yscale("log")
        ax.set_xticks(range(len(labels)), labels)
        ax.set_xlim(-0.5, max(len(labels), 1) - 0.5)
        ax.set_xlabel("top client (rank)")
        ax.set_title("median, min-max over windows", fontsize=7)
        ax.set_ylabel(_LABELS.get(column, column))
    return ax


def plot_reason_ratio_histograms(histograms: pl.DataFrame | None, *, ax: Axes | None = None,
                                 legend: bool = True) -> Axes:
    """Per top client, the density of the per-request reason share of the output (client legend
    under the axes; ``legend=False`` leaves it to the caller)."""
    ax = _axes(ax)
    with paper_style():
        if histograms is not None and histograms.height:
            for i, (cid, part) in enumerate(histograms.group_by("client_id", maintain_order=True)):
                mid = (part["bin_lo"].to_numpy() + part["bin_hi"].to_numpy()) / 2
                ax.plot(mid, part["density"].to_numpy(), label=f"client {chr(65 + i)} ({cid[0]})")
            if legend:
                legend_outside(ax, where="below", ncols=2)  # the densities fill the panel: never over them
        ax.set_xlabel("reason tokens / output tokens (-)")
        ax.set_ylabel("density (-)")
    return ax


def _fig_two_rows(summary, window_stats, clients, cdf_columns, series_columns, range_columns) -> Figure:
    fig, axes = figure(nrows=2, ncols=4, width=FULL_WIDTH_IN, height=4.6)
    for ax, col in zip(axes[0], cdf_columns):
        plot_client_cdf(summary, col, ax=ax)
    for ax, col in zip(axes[1][:2], series_columns):
        plot_top_client_series(window_stats, col, clients=clients, ax=ax, legend=False)
    for ax, col in zip(axes[1][2:], range_columns):
        plot_top_client_ranges(window_stats, col, clients=clients, ax=ax)
    legend_outside(fig, where="below")  # one legend for the clients, under the panels
    return fig


@register_figure("servegen.fig6", title="Client heterogeneity and stability: CDFs across clients and the top clients "
                 "over time", paper_figure="ServeGen Fig. 6", needs=("client_id",))
def servegen_fig6(summary: pl.DataFrame, window_stats: pl.DataFrame, *, clients=(), **_) -> Figure:
    """CDFs of rate, CV, mean input, mean output; top clients' rate and CV over time and ranges
    of their mean input and output lengths."""
    return _fig_two_rows(summary, window_stats, list(clients)[:4], ("rate", "cv", "mean_input", "mean_output"),
                         ("rate_rps", "cv"), ("mean_input", "mean_output"))


@register_figure("servegen.fig12", title="Multimodal clients: CDFs across clients and the top clients over time",
                 paper_figure="ServeGen Fig. 12", needs=("client_id", "input_tokens"))
def servegen_fig12(summary: pl.DataFrame, window_stats: pl.DataFrame, *, clients=(), **_) -> Figure:
    """CDFs of rate, CV, mean input and multimodal share; top clients over time and ranges."""
    mm = "mean_mm_ratio" if "mean_mm_ratio" in summary.columns else "mean_output"
    return _fig_two_rows(summary, window_stats, list(clients)[:4], ("rate", "cv", "mean_input", mm),
                         ("rate_rps", "cv"), ("mean_input", mm))


@register_figure("servegen.fig17", title="Reasoning clients: rate skew, burstiness and reason ratios of the top clients",
                 paper_figure="ServeGen Fig. 17", needs=("client_id", "reason_tokens"))
def servegen_fig17(summary: pl.DataFrame, ranking: pl.DataFrame, *, reason_histograms: pl.DataFrame | None = None,
                   **_) -> Figure:
    """(a) cumulative request share of the top clients, (b) CDF of client CVs, (c) reason ratio
    densities of the top clients."""
    fig, (a, b, c) = figure(ncols=3, width=FULL_WIDTH_IN, height=2.8)
    plot_share_curve(ranking, ax=a)
    plot_client_cdf(summary, "cv", ax=b)
    plot_reason_ratio_histograms(reason_histograms, ax=c, legend=False)
    legend_outside(fig, where="below", ncols=5)
    return fig


# ---------------------------------------------------------------- drawn by the clients area
# (``evidence``: servelab.reports.findings.clients.ClientEvidence; drawers select, never compute)

@draws("servegen.fig6", area="clients")
def _draw_servegen_fig6(ev) -> Figure | None:
    d = ev.decomposition
    return None if d is None else servegen_fig6(d.summary, d.window_stats, clients=ev.top_ids)


@draws("servegen.fig12", area="clients")
def _draw_servegen_fig12(ev) -> Figure | None:
    d = ev.decomposition
    if d is None or "mean_mm_ratio" not in d.summary.columns:
        return None
    return servegen_fig12(d.summary, d.window_stats, clients=ev.top_ids)


@draws("servegen.fig17", area="clients")
def _draw_servegen_fig17(ev) -> Figure | None:
    d = ev.decomposition
    if d is None or ev.reason_bimodality is None:
        return None
    return servegen_fig17(d.summary, d.ranking, reason_histograms=ev.reason_histograms)
