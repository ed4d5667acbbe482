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
from servelab.figures.registry import draws, register_figure
from servelab.figures.style import FULL_WIDTH_IN, figure, legend_outside, paper_style

__all__ = [
    "burstgpt_fig6",
    "gamma_plot_frame",
    "plot_family_comparison",
    "plot_gamma_windows",
    "plot_gap_histogram",
    "plot_window_series",
    "servegen_fig1",
    "servegen_fig2",
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
        ax.legend()
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
            top = float(np.nanmax(d)) if d.size and np.isfinite(d).any() else 0.0
            if top > 0:
                ax.set_ylim(0, top * 1.15)  # room for the labels above the bars
        ax.set_ylabel("KS distance D (-)")
        clearly = table.height and "clearly_best" in table.columns and bool(table["clearly_best"].any())
        ax.set_xlabel("family (ranked by AIC" + ("; green: clearly best)" if clearly else ")"))
    return ax


def _time_axis(frame: pl.DataFrame) -> np.ndarray:
    return frame["window_start_s"].to_numpy() / 3600.0


def plot_window_series(windows: pl.DataFrame, column: str, *, group: str | None = None,
                       max_groups: int = 5, ax: Axes | None = None, label: str | None = None,
                       legend: bool = True) -> Axes:
    """One window statistic (``rate_rps`` or ``cv``) over time, one line per group (largest first).

    The y axis is logarithmic when the positive values drawn span more than 30x (groups of very
    different rates); the group legend goes beside the axes (``legend=False``: the caller's).
    """
    ax = _axes(ax)
    drawn = []
    with paper_style():
        if group is not None and group in windows.columns:
            sizes = windows.group_by(group).agg(pl.col("n_requests").sum()).sort("n_requests", descending=True)
            for key in sizes[group].head(max_groups).to_list():
                part = windows.filter(pl.col(group) == key) if key is not None else windows.filter(pl.col(group).is_null())
                ax.plot(_time_axis(part), part[column].to_numpy(), label=str(key), drawstyle="steps-post")
                drawn.append(part[column].to_numpy().astype(float))
            if legend:
                legend_outside(ax, where="right", title=group)
        else:
            ax.plot(_time_axis(windows), windows[column].to_numpy(), drawstyle="steps-post")
            drawn.append(windows[column].to_numpy().astype(float))
        values = np.concatenate(drawn) if drawn else np.array([])
        values = values[np.isfinite(values) & (values > 0)]
        if values.size >= 2 and values.max() / values.min() > 30:
            ax.set_yscale("log")
        ax.set_xlabel("time since trace origin (h)")
        ax.set_ylabel(label or column)
    return ax


def _window_length(table: pl.DataFrame) -> float | None:
    """Window length (s) of a window-statistics table: ``window_start_s / window`` (exact by
    construction), else the longest exposure."""
    nz = table.filter(pl.col("window") != 0) if "window" in table.columns else table.clear()
    if nz.height:
        return float(nz["window_start_s"][0] / nz["window"][0])
    return float(table["exposure_s"].max()) if "exposure_s" in table.columns and table.height else None


def gamma_plot_frame(gamma: pl.DataFrame, parameter: str, *, window_s: float | None = None,
                     min_gaps: int = 20) -> pl.DataFrame:
    """The windows :func:`plot_gamma_windows` draws: ``parameter`` null where the window holds
    fewer than ``min_gaps`` gaps or its fit did not converge (a line break, not a point), and
    ``partial`` true where the window lies only partly inside the trace (exposure below
    ``window_s``; inferred from the table when None)."""
    window_s = window_s if window_s is not None else _window_length(gamma)
    ok = pl.col(parameter).is_not_null()
    if "gamma_n" in gamma.columns:
        ok = ok & (pl.col("gamma_n") >= int(min_gaps))
    if "gamma_converged" in gamma.columns:
        ok = ok & pl.col("gamma_converged")
    partial = (pl.col("exposure_s") < float(window_s) * (1 - 1e-9)) if (window_s and "exposure_s" in gamma.columns) \
        else pl.lit(False)
    return gamma.with_columns(pl.when(ok).then(pl.col(parameter)).otherwise(None).alias(parameter),
                              partial.alias("partial"))


def plot_gamma_windows(gamma: pl.DataFrame, parameter: str, *, group: str | None = None,
                       ax: Axes | None = None, window_s: float | None = None, min_gaps: int = 20,
                       legend: bool = True) -> Axes:
    """Gamma ``alpha`` or ``beta`` per window (BurstGPT Fig. 6), one line per group, log scale when
    the values span more than a decade.

    Only windows with at least ``min_gaps`` gaps and a converged fit are drawn (the arrival
    finding counts the same windows; a Gamma fitted to a handful of gaps, e.g. in a short last
    window, gives alpha in the hundreds); windows only partly inside the trace are drawn with
    open markers (see :func:`gamma_plot_frame`).
    """
    ax = _axes(ax)
    frame = gamma_plot_frame(gamma, parameter, window_s=window_s, min_gaps=min_gaps)
    ok = frame.filter(pl.col(parameter).is_not_null())
    with paper_style():
        grouped = bool(group and group in frame.columns)
        groups = frame[group].unique(maintain_order=True).to_list() if grouped else [None]
        marked = False
        for i, key in enumerate(groups):
            part = frame if key is None else frame.filter(pl.col(group) == key)
            color = f"C{i % 10}"
            y = part[parameter].to_numpy().astype(float)
            ax.plot(_time_axis(part), y, marker="o", markersize=2, color=color,
                    label=None if key is None else str(key))
            partial = part.filter(pl.col("partial") & pl.col(parameter).is_not_null())
            if partial.height:
                ax.plot(_time_axis(partial), partial[parameter].to_numpy(), "o", markersize=4, markerfacecolor="white",
                        markeredgecolor=color, label=None if marked else "partial window")
                marked = True
        if legend and ax.get_legend_handles_labels()[0]:
            legend_outside(ax, where="below", title=group if grouped else None)
        if ok.height and float(ok[parameter].min()) > 0 and float(ok[parameter].max()) / float(ok[parameter].min()) > 10:
            ax.set_yscale("log")  # within a decade a log axis shows no labelled tick
        left_out = frame.height - ok.height
        if left_out:
            ax.text(0.99, 0.01, f"{left_out} window(s) with < {min_gaps} gaps left out", transform=ax.transAxes,
                    ha="right", va="bottom", fontsize=6, color="0.35")
        ax.set_xlabel("time since trace origin (h)")
        ax.set_ylabel("shape alpha (-)" if parameter == "alpha" else "rate beta (1/s)")
    return ax


@register_figure("servegen.fig1", title="Inter-arrival times and the families fitted to them",
                 paper_figure="ServeGen Fig. 1")
def servegen_fig1(histogram: pl.DataFrame, densities: pl.DataFrame | None, comparison: pl.DataFrame) -> Figure:
    """Gap histogram with fitted densities (left) and the family comparison (right)."""
    fig, (left, right) = figure(ncols=2, width=FULL_WIDTH_IN, height=2.6)
    plot_gap_histogram(histogram, densities, ax=left)
    left.set_title("(a) gaps and fitted densities", fontsize=9)
    plot_family_comparison(comparison, ax=right)
    right.set_title("(b) KS distance D per family", fontsize=9)
    return fig


@register_figure("servegen.fig2", title="Request rate and burstiness (CV) per window",
                 paper_figure="ServeGen Fig. 2")
def servegen_fig2(windows: pl.DataFrame, *, group: str | None = None, max_groups: int = 5) -> Figure:
    """Rate (top) and CV of gaps (bottom) per window over time."""
    fig, (top, bottom) = figure(nrows=2, width=FULL_WIDTH_IN, height=3.6, sharex=True)
    plot_window_series(windows, "rate_rps", group=group, max_groups=max_groups, ax=top, label="rate (requests/s)",
                       legend=False)
    plot_window_series(windows, "cv", group=group, max_groups=max_groups, ax=bottom, label="CV of gaps (-)",
                       legend=False)
    with paper_style():
        bottom.axhline(1.0, color="0.4", linestyle="--", linewidth=0.8)
        top.set_xlabel("")  # shared time axis: labelled once, under the bottom panel
    legend_outside(fig, where="right", title=group if group is not None and group in windows.columns else None)
    return fig


@register_figure("burstgpt.fig6", title="Gamma shape and rate of the inter-arrival times per window",
                 paper_figure="BurstGPT (KDD'25) Fig. 6")
def burstgpt_fig6(gamma: pl.DataFrame, *, group: str | None = None, window_s: float | None = None,
                  min_gaps: int = 20) -> Figure:
    """Gamma alpha (left) and beta (right) per window, windows with at least ``min_gaps`` gaps;
    partial windows marked (see :func:`plot_gamma_windows`)."""
    fig, (left, right) = figure(ncols=2, width=FULL_WIDTH_IN, height=2.7)
    plot_gamma_windows(gamma, "alpha", group=group, ax=left, window_s=window_s, min_gaps=min_gaps, legend=False)
    plot_gamma_windows(gamma, "beta", group=group, ax=right, window_s=window_s, min_gaps=min_gaps, legend=False)
    legend_outside(fig, where="below", title=group if group and group in gamma.columns else None)
    return fig


# ---------------------------------------------------------------- drawn by the arrivals area
# (``evidence``: servelab.reports.findings.arrivals.ArrivalEvidence; drawers select, never compute)

def filled_group_windows(group_windows: pl.DataFrame, windows: pl.DataFrame, by: str, *,
                         max_groups: int = 5) -> pl.DataFrame:
    """The ``max_groups`` largest groups of a sparse per-group window table (active windows only)
    on the whole trace's window grid, idle windows as 0 requests and rate 0 (what Fig. 2 draws)."""
    top = (group_windows.group_by(by).agg(pl.col("n_requests").sum()).sort("n_requests", descending=True)
           .head(max_groups).select(by))
    grid = top.join(windows.select("window", "window_start_s", "exposure_s"), how="cross")
    keep = group_windows.join(top, on=by, how="semi", nulls_equal=True).drop("window_start_s", "exposure_s")
    return (grid.join(keep, on=[by, "window"], how="left", nulls_equal=True)
            .with_columns(pl.col("n_requests", "n_gaps", "n_zero_gaps", "n_positive_gaps").fill_null(0),
                          pl.col("rate_rps").fill_null(0.0))
            .select(group_windows.columns).sort(by, "window", nulls_last=True))


def gamma_drawable(evidence) -> bool:
    """True when a window holds ``evidence.min_window_gaps`` gaps with a Gamma fit (BurstGPT Fig. 6)."""
    gamma = evidence.tables.get("gamma_windows")
    return gamma is not None and gamma.filter(
        pl.col("alpha").is_not_null() & (pl.col("gamma_n") >= evidence.min_window_gaps)).height > 0


@draws("servegen.fig1", area="arrivals")
def _draw_servegen_fig1(evidence) -> Figure | None:
    t = evidence.tables
    if "family_comparison" in t and "gap_histogram" in t:
        return servegen_fig1(t["gap_histogram"], t.get("family_densities"), t["family_comparison"])
    return None


@draws("servegen.fig2", area="arrivals")
def _draw_servegen_fig2(evidence) -> Figure:
    t = evidence.tables
    group_windows = t.get("group_windows")
    if group_windows is not None and group_windows.height:
        return servegen_fig2(filled_group_windows(group_windows, t["windows"], evidence.by), group=evidence.by)
    return servegen_fig2(t["windows"])


@draws("burstgpt.fig6", area="arrivals")
def _draw_burstgpt_fig6(evidence) -> Figure | None:
    if not gamma_drawable(evidence):
        return None
    return burstgpt_fig6(evidence.tables["gamma_windows"], group=evidence.gamma_by,
                         window_s=evidence.gamma_window_s, min_gaps=evidence.min_window_gaps)
