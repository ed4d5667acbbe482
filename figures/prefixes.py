"""Figures of prefix reuse (issue 15): the LRU hit-rate curve and where reuse comes from over time.

Registered figures:

* ``prefixes.hit_rate`` -- (a) token and block hit rate of an LRU prefix cache against its
  capacity (log axis), with the infinite cache's rate and the reference capacity marked;
  (b) the reuse (stack) distance distribution of re-used blocks;
* ``prefixes.sources`` -- share of each window's prompt tokens served by an infinite cache, by
  source (system prompts, client templates, conversation history, other), stacked over time.

Functions take the tables of :class:`servelab.analysis.prefix_analysis.PrefixAnalysis` and compute
nothing but selections. Never ``plt.show()``; no pyplot state.
"""
from __future__ import annotations

import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from servelab.figures.registry import draws, register_figure
from servelab.figures.style import FULL_WIDTH_IN, figure, legend_outside, paper_style

__all__ = ["plot_hit_rate_curve", "plot_reuse_distances", "plot_sources_over_time", "prefix_hit_rate",
           "prefix_sources"]

_SOURCE_COLOURS = {"system": "C0", "template": "C2", "conversation": "C1", "other": "0.6"}


def _axes(ax: Axes | None, **kw) -> Axes:
    if ax is not None:
        return ax
    _, ax = figure(**kw)
    return ax


def plot_hit_rate_curve(lru: pl.DataFrame, *, infinite: float | None = None, reference: int | None = None,
                        ax: Axes | None = None) -> Axes:
    """Token and block hit rate (``capacity_blocks``, ``token_hit_rate``, ``block_hit_rate``) on a log capacity axis."""
    ax = _axes(ax)
    with paper_style():
        if lru is not None and lru.height:
            cap = lru["capacity_blocks"].to_numpy()
            ax.plot(cap, lru["token_hit_rate"].to_numpy(), marker="o", markersize=2.5, label="tokens")
            ax.plot(cap, lru["block_hit_rate"].to_numpy(), marker="s", markersize=2, linestyle="--", label="blocks")
            ax.set_xscale("log", base=2)
        if infinite is not None and np.isfinite(infinite):
            ax.axhline(infinite, color="0.4", linestyle=":", linewidth=0.9, label="infinite cache (tokens)")
        if reference is not None:
            ax.axvline(reference, color="C3", linewidth=0.8, alpha=0.7, label=f"reference: {reference:,} blocks")
        ax.set_ylim(0, 1)
        ax.set_xlabel("LRU cache capacity (blocks)")
        ax.set_ylabel("hit rate (share)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left")
    return ax


def plot_reuse_distances(histogram: pl.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Share of re-used blocks per power-of-two stack-distance bin (``distance_from``, ``distance_to``, ``accesses``)."""
    ax = _axes(ax)
    with paper_style():
        if histogram is not None and histogram.height and histogram["accesses"].sum() > 0:
            lo = np.maximum(histogram["distance_from"].to_numpy(), 0.5)
            hi = histogram["distance_to"].to_numpy()
            share = histogram["accesses"].to_numpy() / histogram["accesses"].sum()
            ax.bar(lo, share, width=hi - lo, align="edge", color="0.7", edgecolor="0.45", linewidth=0.3)
            ax.set_xscale("log", base=2)
        ax.set_xlabel("reuse (stack) distance (distinct blocks)")
        ax.set_ylabel("re-used blocks (share)")
    return ax


def plot_sources_over_time(by_window: pl.DataFrame, *, window_s: float | None = None,
                           ax: Axes | None = None) -> Axes:
    """Stacked token shares per source (``window_start_s``, ``source``, ``token_share``), one step per
    window of ``window_s`` seconds (default: the spacing of the windows, else one hour), over time (h)."""
    ax = _axes(ax)
    with paper_style():
        if by_window is not None and by_window.height:
            wide = by_window.pivot(on="source", index="window_start_s", values="token_share").sort("window_start_s")
            starts = wide["window_start_s"].to_numpy().astype(float)
            if window_s is None:
                window_s = float(np.min(np.diff(starts))) if starts.size > 1 else 3600.0
            t = np.append(starts, starts[-1] + window_s) / 3600.0
            names = [s for s in _SOURCE_COLOURS if s in wide.columns]
            ys = [np.nan_to_num(wide[s].to_numpy().astype(float)) for s in names]
            ys = [np.append(y, y[-1]) for y in ys]  # the last window's step ends at its end
            ax.stackplot(t, *ys, labels=names, colors=[_SOURCE_COLOURS[s] for s in names], alpha=0.85, step="post")
            ax.set_xlim(t[0], t[-1])
            legend_outside(ax, where="below", ncols=len(names))
        ax.set_ylim(0, 1)
        ax.set_xlabel("time since trace start (h)")
        ax.set_ylabel("prompt tokens served (share)")
    return ax


@register_figure("prefixes.hit_rate", title="Prefix-cache hit rate against LRU capacity, and reuse distances",
                 paper_figure="servelab (issue 15)", needs=("prefix_blocks",))
def prefix_hit_rate(lru: pl.DataFrame, reuse_distances: pl.DataFrame | None = None, *, infinite: float | None = None,
                    reference: int | None = None, **_) -> Figure:
    """Left: the hit-rate curve; right: the reuse-distance distribution."""
    fig, (left, right) = figure(ncols=2, width=FULL_WIDTH_IN, height=2.6)
    plot_hit_rate_curve(lru, infinite=infinite, reference=reference, ax=left)
    plot_reuse_distances(reuse_distances, ax=right)
    return fig


@register_figure("prefixes.sources", title="Where prefix reuse comes from, over time",
                 paper_figure="servelab (issue 15)", needs=("prefix_blocks",))
def prefix_sources(by_window: pl.DataFrame, *, window_s: float | None = None, **_) -> Figure:
    """Stacked token shares served per source and window."""
    fig, ax = figure(width=FULL_WIDTH_IN * 0.7, height=2.6)
    plot_sources_over_time(by_window, window_s=window_s, ax=ax)
    return fig


# ---------------------------------------------------------------- drawn by the prefixes area
# (``evidence``: servelab.reports.areas.prefixes.PrefixEvidence; drawers select, never compute)

@draws("prefixes.hit_rate", area="prefixes")
def _draw_hit_rate(ev) -> Figure | None:
    a = ev.analysis
    if a is None:
        return None
    return prefix_hit_rate(a.reuse.lru, a.reuse.reuse_distances, infinite=a.reuse.token_hit_rate,
                           reference=a.reference_capacity)


@draws("prefixes.sources", area="prefixes")
def _draw_sources(ev) -> Figure | None:
    a = ev.analysis
    if a is None or a.sources is None:
        return None
    return prefix_sources(a.sources.by_window, window_s=ev.window_s)
