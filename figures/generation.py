"""Figures of workload generation: ServeGen Fig. 19 (window rate vs window mean length).

Each point is one short window (3 s in the paper) of a workload: its request rate against its mean
input (or output) length. The real workload, servelab's per-client composition and the naive
baseline are drawn side by side per period, so one sees whether the generated workloads spread
as widely in rate and couple rate and length as the real one does. The functions draw tables
computed elsewhere (:func:`servelab.analysis.fidelity.window_stats`); they compute nothing.
"""
from __future__ import annotations

from collections.abc import Mapping

import polars as pl
from servelab.figures.registry import draws, register_figure
from servelab.figures.style import FULL_WIDTH_IN, figure, paper_style

__all__ = ["WORKLOAD_COLORS", "fig19_fidelity", "plot_fidelity_scatter"]

#: colours by workload name (the paper: actual blue, ServeGen green, naive red)
WORKLOAD_COLORS = {"reference": "#1f77b4", "servelab": "#2ca02c", "naive": "#d62728"}
_LABELS = {"mean_input_tokens": "window mean input (tokens)", "mean_output_tokens": "window mean output (tokens)"}


def plot_fidelity_scatter(windows: pl.DataFrame, *, y: str = "mean_input_tokens", color: str | None = None,
                          label: str | None = None, ax=None, max_points: int = 4000, **kwargs):
    """Scatter of window rate (req/s) against a window mean length for one workload.

    Parameters
    ----------
    windows : polars.DataFrame
        ``rate`` and ``y`` columns (see :func:`servelab.analysis.fidelity.window_stats`); empty
        windows (null ``y``) are skipped; at most ``max_points`` evenly spaced windows are drawn.
    y : str
        ``mean_input_tokens`` or ``mean_output_tokens``.
    """
    if ax is None:
        _, ax = figure()
    data = windows.filter(pl.col(y).is_not_null())
    if data.height > max_points:
        data = data.gather_every(max(1, data.height // max_points))
    with paper_style():
        ax.scatter(data["rate"].to_numpy(), data[y].to_numpy(), s=kwargs.pop("s", 3), alpha=kwargs.pop("alpha", 0.35),
                   color=color, label=label, linewidths=0, **kwargs)
        ax.set_xlabel("window rate (req/s)")
        ax.set_ylabel(_LABELS.get(y, y))
    return ax


@register_figure("servegen.fig19", title="Generation accuracy: window rate vs window mean length",
                 paper_figure="ServeGen Fig. 19", needs=("client_id", "input_tokens"))
def fig19_fidelity(panels: Mapping[str, Mapping[str, pl.DataFrame]], *, y: str = "mean_input_tokens",
                   distances: Mapping[str, Mapping[str, float]] | None = None):
    """One row per period (e.g. ``stable``, ``variable``), one column per workload, shared axes.

    Parameters
    ----------
    panels : Mapping
        period -> {workload name -> window table}; names ``reference``, ``servelab``, ``naive``
        get the paper's colours.
    y : str
        The length on the y axis (log scale).
    distances : Mapping, optional
        period -> {workload -> joint energy distance to the reference}, shown in the titles.
    """
    periods = list(panels)
    names = list(dict.fromkeys(n for p in periods for n in panels[p]))
    fig, axes = figure(nrows=max(len(periods), 1), ncols=max(len(names), 1), width=FULL_WIDTH_IN,
                       height=2.1 * max(len(periods), 1), squeeze=False, sharey="row", sharex="row")
    for i, period in enumerate(periods):
        for j, name in enumerate(names):
            ax = axes[i][j]
            table = panels[period].get(name)
            if table is not None:
                plot_fidelity_scatter(table, y=y, color=WORKLOAD_COLORS.get(name), ax=ax)
            title = f"{period}: {name}"
            if distances and name in distances.get(period, {}):
                title += f" (D={distances[period][name]:.3f})"
            with paper_style():
                ax.set_title(title, fontsize=9)
                ax.set_yscale("log")
                if j:
                    ax.set_ylabel("")
                if i < len(periods) - 1:
                    ax.set_xlabel("")
    return fig


# ---------------------------------------------------------------- drawn by the generation area
# (``evidence``: servelab.reports.areas.generation.GenerationEvidence; drawers select, never compute)

@draws("servegen.fig19", area="generation")
def _draw_servegen_fig19(ev):
    if ev.not_applicable or ev.failed or not ev.windows:
        return None
    return fig19_fidelity({k: dict(v) for k, v in ev.windows.items()},
                          distances={k: dict(v) for k, v in ev.distances.items()})
