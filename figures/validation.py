"""Figures of out-of-sample validation (issue 17): the real later part against both generators.

:func:`fig_validation` draws, for each split, the requests per window over the test span of the
real later part, servelab's workload and the naive one (the tables
:class:`servelab.generator.validation.SplitResult` carries as ``counts``), and beside it the
distance metrics of each generator. It computes nothing.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl
from servelab.figures.generation import WORKLOAD_COLORS
from servelab.figures.registry import draws, register_figure
from servelab.figures.style import FULL_WIDTH_IN, figure, paper_style

__all__ = ["fig_validation", "plot_window_counts"]

_DISTANCES = ("window_rate_ks", "joint_input_energy", "joint_output_energy", "input_ks", "output_ks")


def plot_window_counts(counts: pl.DataFrame, *, ax=None):
    """Requests per window against time since the split (hours), one line per workload column."""
    if ax is None:
        _, ax = figure()
    with paper_style():
        x = counts["window_start_s"].to_numpy() / 3600.0
        for name in [c for c in counts.columns if c != "window_start_s"]:
            ax.plot(x, counts[name].to_numpy(), color=WORKLOAD_COLORS.get(name), lw=1.0, label=name,
                    alpha=1.0 if name == "reference" else 0.8)
        ax.set_xlabel("hours after the split")
        ax.set_ylabel("requests per window")
        ax.legend(fontsize=7, frameon=False)
    return ax


@register_figure("servelab.validation", title="Out-of-sample validation: real later part vs generated",
                 paper_figure="ServeGen Fig. 19, out of sample (issue 17)", needs=("timestamp",))
def fig_validation(splits: Sequence[Mapping], *, max_rows: int = 4):
    """One row per split (at most ``max_rows``): window counts, and the distances as bars.

    Parameters
    ----------
    splits : sequence of Mapping
        Each ``{"label": str, "counts": DataFrame, "metrics": {"servelab": {...}, "naive": {...}}}``.
    """
    rows = list(splits)[:max_rows]
    fig, axes = figure(nrows=max(len(rows), 1), ncols=2, width=FULL_WIDTH_IN, height=2.2 * max(len(rows), 1),
                       squeeze=False, gridspec_kw={"width_ratios": [2.2, 1]})
    for i, s in enumerate(rows):
        plot_window_counts(s["counts"], ax=axes[i][0])
        ax = axes[i][1]
        with paper_style():
            axes[i][0].set_title(s["label"], fontsize=9)
            width = 0.38
            for j, name in enumerate(("servelab", "naive")):
                vals = [s["metrics"][name].get(m) or 0.0 for m in _DISTANCES]
                ax.barh([k + (j - 0.5) * width for k in range(len(_DISTANCES))], vals, height=width,
                        color=WORKLOAD_COLORS.get(name), label=name)
            ax.set_yticks(range(len(_DISTANCES)))
            ax.set_yticklabels(_DISTANCES, fontsize=7)
            ax.invert_yaxis()
            ax.set_xlabel("distance to the real later part (lower is closer)", fontsize=7)
    return fig


# ---------------------------------------------------------------- drawn by the validation area
# (``evidence``: servelab.reports.areas.validation.ValidationEvidence; drawers select, never compute)

@draws("servelab.validation", area="validation")
def _draw_validation(ev):
    if not ev.metrics or ev.counts is None:
        return None
    return fig_validation([{"label": f"split at {ev.split_s:g} s", "counts": ev.counts, "metrics": ev.metrics}])
