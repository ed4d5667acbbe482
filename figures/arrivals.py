"""Figures of arrival burstiness: ServeGen Fig. 1 and 2, BurstGPT Fig. 6.

Registered figures (ids -> paper figure):

* ``servegen.fig1`` -- inter-arrival gap histogram (log-spaced bins) with the fitted family
  densities, and the family comparison (KS distance D and delta-AIC per 1000 gaps);
* ``servegen.fig2`` -- request rate and gap CV per window over time (one line per group);
* ``burstgpt.fig6`` -- Gamma shape alpha and rate beta per window (one line per group).

Functions take the tables of :mod:`servelab.analysis.arrivals`,
:mod:`servelab.fitting.compare` and :mod:`servelab.fitting.windows` (the tables of
:class:`servelab.reports.findings.arrivals.ArrivalEvidence`); they compute nothing but
selections. Never ``plt.show()``; canvases come from :func:`servelab.figures.style.figure`.
"""
from __future__ import annotations

import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from servelab.figures.registry import register_figure
from servelab.figures.style import FULL_WIDTH_IN, figure, paper_style

__all__ = [
    "plot_gap_histogram",
    "plot_family_comparison",
    "plot_window_series",
    "plot_gamma_windows",
    "servegen_fig1",
    "servegen_fig2",
    "burstgpt_fig6",
]


def _axes(ax: Axes | None, **kw) -> Axes:
    if ax is not None:
        return ax
    _, ax = figure(**kw)
    return ax


def plot_gap_histogram(histogram: pl.DataFrame, densities: pl.DataFrame | None = None, *,
                       ax: Axes | None = None) -> Axes:
    """Gap density histogram (``left_s, right_s, density``) with fitted densities (``family, x, pdf``)."""
    ax = _axes(ax)
    with paper_style():
        if histogram.height:
            left = histogram["left_s"].to_numpy()
            width = histogram["right_s"].to_numpy() - left
            ax.bar(left, histogram["density"].to_numpy(), width=width, align="edge", color="0.8",
                   edgecolor="0.6", linewidth=0.3, label="measured")
        if densities is not None and densities.height:
            for family, part in densities.group_by("family", maintain_order=True):
                ax.plot(part["x"].to_numpy(), part["pdf"].to_numpy(), label=str(family[0]))
        ax.set_xscale("log")
        ax.set_yscale("log")
        positive = histogram.filter(pl.col("density") > 0)["density"] if histogram.height else None
        if positive is not None and positive.len():
            ax.set_ylim(float(positive.min()) / 10, float(positive.max()) * 10)  # fitted tails would span 10^200
        ax.set_xlabel("inter-arrival time (s)")
        ax.set_ylabel("density (1/s)")
        ax.legend(frameon=False)
    return ax


def plot_family_comparison(table: pl.DataFrame, *, ax: Axes | None = None) -> Axes:
    """KS distance D per family (bars) from a :meth:`FamilyComparison.table`, best first."""
    ax = _axes(ax)
    with paper_style():
        if table.height:
            families = table["family"].to_list()
            d = table["ks_distance"].to_numpy()
            bars = ax.bar(np.arange(len(families)), d, color=["C2" if c else "C0" for c in table["clearly_best"]])
            ax.set_xticks(np.arange(len(families)), families)
            for bar, delta in zip(bars, table["delta_aic_per_1000"].to_list(), strict=True):
                ax.annotate(f"dAIC/1k={delta:.3g}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            ha="center", va="bottom", fontsize=6)
        ax.set_ylabel("KS distance D (-)")
        ax.set_xlabel("family (ranked by AIC)")
    return ax


def _time_axis(frame: pl.DataFrame) -> np.ndarray:
    return frame["window_start_s"].to_numpy() / 3600.0


def plot_window_series(windows: pl.DataFrame, column: str, *, group: str | None = None,
                       max_groups: int = 5, ax: Axes | None = None, label: str | None = None) -> Axes:
    """One window statistic (``rate_rps`` or ``cv``) over time, one line per group (largest first)."""
    ax = _axes(ax)
    with paper_style():
        if group is not None and group in windows.columns:
            sizes = windows.group_by(group).agg(pl.col("n_requests").sum()).sort("n_requests", descending=True)
            for key in sizes[group].head(max_groups).to_list():
                part = windows.filter(pl.col(group) == key) if key is not None else windows.filter(pl.col(group).is_null())
                ax.plot(_time_axis(part), part[column].to_numpy(), label=str(key), drawstyle="steps-post")
            ax.legend(frameon=False, title=group)
        else:
            ax.plot(_time_axis(windows), windows[column].to_numpy(), drawstyle="steps-post")
        ax.set_xlabel("time since trace origin (h)")
        ax.set_ylabel(label or column)
    return ax


def plot_gamma_windows(gamma: pl.DataFrame, parameter: str, *, group: str | None = None,
                       ax: Axes | None = None) -> Axes:
    """Gamma ``alpha`` or ``beta`` per window (BurstGPT Fig. 6), one line per group, log scale."""
    ax = _axes(ax)
    ok = gamma.filter(pl.col(parameter).is_not_null())
    with paper_style():
        groups = ok[group].unique(maintain_order=True).to_list() if group and group in ok.columns else [None]
        for key in groups:
            part = ok if key is None else ok.filter(pl.col(group) == key)
            ax.plot(_time_axis(part), part[parameter].to_numpy(), marker="o", markersize=2,
                    label=None if key is None else str(key))
        if group and group in ok.columns:
            ax.legend(frameon=False, title=group)
        if ok.height and float(ok[parameter].min()) > 0:
            ax.set_yscale("log")
        ax.set_xlabel("time since trace origin (h)")
        ax.set_ylabel("shape alpha (-)" if parameter == "alpha" else "rate beta (1/s)")
    return ax


@register_figure("servegen.fig1", title="Inter-arrival times and the families fitted to them",
                 paper_figure="ServeGen Fig. 1")
def servegen_fig1(histogram: pl.DataFrame, densities: pl.DataFrame | None, comparison: pl.DataFrame) -> Figure:
    """Gap histogram with fitted densities (left) and the family comparison (right)."""
    fig, (left, right) = figure(ncols=2, width=FULL_WIDTH_IN, height=2.6)
    plot_gap_histogram(histogram, densities, ax=left)
    left.set_title("(a) gaps and fitted densities")
    plot_family_comparison(comparison, ax=right)
    right.set_title("(b) KS D per family (green: clearly best)")
    return fig


@register_figure("servegen.fig2", title="Request rate and burstiness (CV) per window",
                 paper_figure="ServeGen Fig. 2")
def servegen_fig2(windows: pl.DataFrame, *, group: str | None = None, max_groups: int = 5) -> Figure:
    """Rate (top) and CV of gaps (bottom) per window over time."""
    fig, (top, bottom) = figure(nrows=2, width=FULL_WIDTH_IN, height=3.6, sharex=True)
    plot_window_series(windows, "rate_rps", group=group, max_groups=max_groups, ax=top, label="rate (requests/s)")
    plot_window_series(windows, "cv", group=group, max_groups=max_groups, ax=bottom, label="CV of gaps (-)")
    with paper_style():
        bottom.axhline(1.0, color="0.4", linestyle="--", linewidth=0.8)
    return fig


@register_figure("burstgpt.fig6", title="Gamma shape and rate of the inter-arrival times per window",
                 paper_figure="BurstGPT (KDD'25) Fig. 6")
def burstgpt_fig6(gamma: pl.DataFrame, *, group: str | None = None) -> Figure:
    """Gamma alpha (left) and beta (right) per window."""
    fig, (left, right) = figure(ncols=2, width=FULL_WIDTH_IN, height=2.4)
    plot_gamma_windows(gamma, "alpha", group=group, ax=left)
    plot_gamma_windows(gamma, "beta", group=group, ax=right)
    return fig
