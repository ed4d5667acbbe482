"""Figures of request data: length distributions and fits, the input/output relation, shifts over
the day, reasoning ratios and multimodal inputs.

Reproduces ServeGen Fig. 3-4, 7-9 and 13 and BurstGPT Fig. 7-8 and 10 from the small tables of
:mod:`servelab.analysis.lengths`, :mod:`servelab.analysis.reasoning`,
:mod:`servelab.analysis.multimodal` and the fitted density curves of
:func:`servelab.fitting.compare.density_curves`. Axes-level ``plot_*`` functions draw on one
axes; the registered figure-level functions return a new Figure. Nothing here computes a
statistic or reads a store; never ``plt.show()`` or pyplot state.
"""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib
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
    "burstgpt_histograms",
    "io_relation",
    "length_distributions",
    "length_shift",
    "linear_relation",
    "modality_columns",
    "multimodal_load",
    "multimodal_share",
    "omni_load",
    "plot_hourly_means",
    "plot_io_bins",
    "plot_items_per_request",
    "plot_length_density",
    "plot_linear_fit",
    "plot_modality_load",
    "plot_modality_mix",
    "plot_ratio_pmf",
    "plot_reason_answer",
    "plot_response_histograms",
    "plot_share_histogram",
    "reasoning_lengths",
    "response_per_request_bin",
]

_FIT_STYLE = {
    "lognormal_pareto": {"color": "C3", "ls": "-", "label": "LogNormal+Pareto"},
    "lognormal": {"color": "C1", "ls": "--", "label": "LogNormal"},
    "pareto": {"color": "C4", "ls": ":", "label": "Pareto"},
    "exponential": {"color": "C2", "ls": "-.", "label": "Exponential"},
    "zipf": {"color": "C5", "ls": (0, (3, 1, 1, 1)), "label": "Zipf"},
    "lognormal_mixture": {"color": "C6", "ls": "-", "label": "2 LogNormals"},
}


#: one colour per input modality in every multimodal panel
_MODALITY_COLORS = {"text": "C0", "image": "C1", "audio": "C2", "video": "C4"}


def _axes(ax: Axes | None) -> Axes:
    if ax is not None:
        return ax
    _, ax = figure()
    return ax


def plot_length_density(pmf: pl.DataFrame, *, ax: Axes | None = None, curves: pl.DataFrame | None = None,
                        families: Sequence[str] | None = None, label: str = "tokens", group: str | None = None) -> Axes:
    """Empirical density of a length on log-spaced bins (:func:`~servelab.analysis.lengths.length_pmf`
    with ``log_bins``) with fitted density curves on top (``family, x, pdf``)."""
    ax = _axes(ax)
    with paper_style():
        data = pmf if group is None else pmf.filter(pl.col("group") == group)
        for g, part in data.group_by("group", maintain_order=True):
            mid = np.sqrt(np.maximum(part["bin_lo"].to_numpy(), 0.5) * part["bin_hi"].to_numpy())
            ax.step(mid, part["density"].to_numpy(), where="mid", color="0.3" if data["group"].n_unique() == 1 else None,
                    lw=1.0, label=f"data ({g[0]})" if data["group"].n_unique() > 1 else "data")
        if curves is not None and curves.height:
            for fam, part in curves.group_by("family", maintain_order=True):
                if families is not None and fam[0] not in families:
                    continue
                style = _FIT_STYLE.get(fam[0], {"label": fam[0]})
                pdf = part["pdf"].to_numpy()
                keep = pdf > 0
                ax.plot(part["x"].to_numpy()[keep], pdf[keep], **style)
        dens = data["density"].to_numpy()
        dens = dens[dens > 0]
        if dens.size:  # fitted curves must not stretch the axis decades beyond the data
            ax.set_ylim(dens.min() / 30, dens.max() * 5)
            ax.set_xlim(max(0.8, float(data["bin_lo"].min()) * 0.8), float(data["bin_hi"].max()) * 1.5)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"{label} (tokens)")
        ax.set_ylabel("density (1/token)")
        ax.legend()
    return ax


def plot_io_bins(bins: pl.DataFrame, *, ax: Axes | None = None, group: str | None = None) -> Axes:
    """Output median and 5-95 % range per input-length bin (ServeGen Fig. 4)."""
    ax = _axes(ax)
    with paper_style():
        data = bins if group is None else bins.filter(pl.col("group") == group)
        for i, (g, part) in enumerate(data.group_by("group", maintain_order=True)):
            x = np.sqrt(np.maximum(part["input_lo"].to_numpy(), 0.5) * part["input_hi"].to_numpy())
            color = f"C{i}"
            ax.fill_between(x, part["output_p5"].to_numpy(), part["output_p95"].to_numpy(), color=color, alpha=0.2, lw=0)
            ax.plot(x, part["output_median"].to_numpy(), color=color, marker="o", ms=2,
                    label=f"median ({g[0]})" if data["group"].n_unique() > 1 else "median, 5-95 %")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("input length (tokens)")
        ax.set_ylabel("output length (tokens)")
        ax.legend()
    return ax


def _spans_decades(values: np.ndarray, ratio: float = 30.0) -> bool:
    """True when the positive ``values`` span more than ``ratio`` (max/min): draw them on a log axis."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    return bool(v.size >= 2 and v.max() / v.min() > ratio)


def plot_linear_fit(bins: pl.DataFrame, correlation: pl.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Mean response per request-length bin with BurstGPT's least-squares line (Fig. 8).

    The request bins are log-spaced, so their medians span decades: the request axis is
    logarithmic when they span more than 30x (the straight OLS line then shows as a curve), with
    the 5-95 % range of the responses per bin as a band behind the means.
    """
    ax = _axes(ax)
    with paper_style():
        part = bins.filter(pl.col("group") == bins["group"][0]) if bins.height else bins
        x = part["input_median"].to_numpy().astype(float)
        log_x = _spans_decades(x)
        if {"output_p5", "output_p95"} <= set(part.columns) and part.height:
            ax.fill_between(x, part["output_p5"].to_numpy(), part["output_p95"].to_numpy(), color="C0", alpha=0.15,
                            lw=0, label="5-95 % of responses per bin")
        ax.plot(x, part["output_mean"].to_numpy(), "o", ms=3, color="C0", label="mean response per bin")
        if correlation.height and x.size:
            row = correlation.row(0, named=True)
            if row["slope"] is not None:
                lo = float(np.min(x[x > 0])) if log_x else 0.0
                grid = np.geomspace(lo, float(np.max(x)), 200) if log_x else np.linspace(0, float(np.max(x)), 100)
                ax.plot(grid, row["intercept"] + row["slope"] * grid, color="C3",
                        label=f"OLS: {row['slope']:.3g}x + {row['intercept']:.3g} (R²={row['r2']:.2g})")
        if log_x:
            ax.set_xscale("log")
        if {"output_p5", "output_p95"} <= set(part.columns) and _spans_decades(
                np.concatenate([part["output_p5"].to_numpy(), part["output_p95"].to_numpy()]).astype(float)):
            ax.set_yscale("log")
        ax.set_xlabel("request length, bin median (tokens)")
        ax.set_ylabel("response length (tokens)")
        legend_outside(ax, where="below", ncols=1)
    return ax


def plot_hourly_means(hourly: pl.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Mean input and output length per hour of day, relative to their all-day means (Fig. 3c-d)."""
    ax = _axes(ax)
    with paper_style():
        w = hourly["n"].to_numpy().astype(float)
        for col, color, label in (("mean_input_tokens", "C0", "input"), ("mean_output_tokens", "C1", "output")):
            if col not in hourly.columns:
                continue
            v = hourly[col].to_numpy()
            ax.plot(hourly["hour"].to_numpy(), v / (np.sum(v * w) / np.sum(w)), marker="o", ms=2, color=color, label=label)
        ax.axhline(1.0, color="0.6", lw=0.8)
        ax.set_xlabel("hour of day (trace's clock)")
        ax.set_ylabel("mean length / all-day mean (-)")
        ax.set_xlim(0, 23)
        ax.legend()
    return ax


def plot_ratio_pmf(pmf: pl.DataFrame, *, ax: Axes | None = None, smooth: int = 5) -> Axes:
    """PMF of the reason ratio on [0, 1] (ServeGen Fig. 13c), moving-average smoothed over ``smooth`` points."""
    ax = _axes(ax)
    with paper_style():
        for g, part in pmf.group_by("group", maintain_order=True):
            grid = np.round(np.linspace(0, 1, 501), 6)
            full = pl.DataFrame({"ratio": grid}).join(part.with_columns(pl.col("ratio").round(6)), on="ratio", how="left")
            p = full["probability"].fill_null(0).to_numpy()
            if smooth > 1:
                p = np.convolve(p, np.ones(smooth) / smooth, mode="same")
            ax.plot(grid, p * 500, lw=1.0, label=str(g[0]))
        ax.set_xlabel("reason ratio (reason / output tokens)")
        ax.set_ylabel("density (-)")
        ax.set_xlim(0, 1)
        if pmf["group"].n_unique() > 1:  # spikes reach the top corners: legend beside the panel
            legend_outside(ax, where="right", title="client")
    return ax


def plot_reason_answer(summary: pl.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Mean (bar) and 5-95 % range of reason, answer and output tokens (ServeGen Fig. 13a)."""
    ax = _axes(ax)
    with paper_style():
        part = summary.filter(pl.col("column").is_in(["reason_tokens", "answer_tokens", "output_tokens"]))
        names = [c.removesuffix("_tokens") for c in part["column"].to_list()]
        mean = part["mean"].to_numpy()
        lo, hi = part["p5"].to_numpy(), part["p95"].to_numpy()
        ax.bar(names, mean, color=["C3", "C0", "C7"][: len(names)])
        ax.errorbar(names, mean, yerr=[np.maximum(mean - lo, 0), np.maximum(hi - mean, 0)], fmt="none", color="k", lw=0.8)
        ax.set_ylabel("tokens (mean, 5-95 %)")
    return ax


def plot_modality_load(load: pl.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Tokens per second of each modality over time (ServeGen Fig. 7d)."""
    ax = _axes(ax)
    with paper_style():
        t = load["start_s"].to_numpy() / 3600.0
        for col in load.columns:
            if col.endswith("_tps") and float(load[col].sum()) > 0:
                name = col.removesuffix("_tps")
                ax.plot(t, load[col].to_numpy(), lw=1.0, label=name, color=_MODALITY_COLORS.get(name))
        ax.set_xlabel("time since trace start (h)")
        ax.set_ylabel("load (tokens/s)")
        ax.legend()
    return ax


def plot_items_per_request(items: pl.DataFrame, *, ax: Axes | None = None) -> Axes:
    """PMF of items per request per modality (ServeGen Fig. 7a)."""
    ax = _axes(ax)
    with paper_style():
        for m, part in items.group_by("modality", maintain_order=True):
            if part.filter(pl.col("items") > 0).height == 0:
                continue
            ax.plot(part["items"].to_numpy(), part["probability"].to_numpy(), marker="o", ms=2, label=m[0],
                    color=_MODALITY_COLORS.get(m[0]))
        ax.set_yscale("log")
        ax.set_xlabel("items per request (count)")
        ax.set_ylabel("share of requests (-)")
        ax.legend()
    return ax


def plot_share_histogram(hist: pl.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Per-request multimodal share of input tokens (ServeGen Fig. 9)."""
    ax = _axes(ax)
    with paper_style():
        lo = hist["share_lo"].to_numpy()
        width = hist["share_hi"].to_numpy() - lo
        ax.bar(lo, hist["probability"].to_numpy(), width=width, align="edge", color="C0", edgecolor="white", lw=0.3)
        ax.axhline(1.0 / max(hist.height, 1), color="C3", ls="--", lw=0.8, label="perfectly flat")
        ax.set_xlabel("multimodal share of input tokens (-)")
        ax.set_ylabel("share of requests (-)")
        ax.set_xlim(0, 1)
        ax.legend()
    return ax


def plot_response_histograms(table: pl.DataFrame, *, group: str | None = None, ax: Axes | None = None,
                             legend: bool = True) -> Axes:
    """Response-length distribution of each request-length bin (BurstGPT Fig. 10), one step line per
    request bin (light to dark: short to long requests) from
    :func:`~servelab.analysis.lengths.response_histograms`.

    The response axis is logarithmic (the bins are log-spaced); the y axis is the share of the
    request bin's responses falling in each response bin, so the lines compare in shape whatever
    the bins' sizes. ``group`` selects one group (default: the first).
    """
    ax = _axes(ax)
    with paper_style():
        if table.height:
            g = group if group is not None else table["group"][0]
            data = table.filter(pl.col("group") == g).sort(["request_bin", "bin"])
            keys = data["request_bin"].unique().sort().to_list()
            colors = matplotlib.colormaps["viridis_r"](np.linspace(0.15, 0.95, max(len(keys), 1)))
            shown = data.filter(pl.col("count") > 0)
            for color, k in zip(colors, keys, strict=False):
                part = data.filter(pl.col("request_bin") == k)
                lo, hi = part["request_lo"][0], part["request_hi"][0]
                edges = np.append(part["response_lo"].to_numpy(), part["response_hi"].to_numpy()[-1])
                ax.stairs(part["probability"].to_numpy(), np.maximum(edges, 0.5), color=color, lw=1.1,
                          label=f"{lo:,.0f}-{hi:,.0f} (n={part['request_n'][0]:,})")
            if shown.height:
                ax.set_xlim(max(0.8, float(shown["response_lo"].min()) * 0.9), float(shown["response_hi"].max()) * 1.1)
        ax.set_xscale("log")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("response length (tokens)")
        ax.set_ylabel("share of the bin's responses (-)")
        if legend and ax.get_legend_handles_labels()[0]:  # under the axes: the modes may sit anywhere
            legend_outside(ax, where="below", ncols=2, title="request length (tokens)")
    return ax


def modality_columns(load: pl.DataFrame) -> list[str]:
    """The modalities (``<m>_tps`` columns of a :func:`~servelab.analysis.multimodal.modality_load`
    table, text excluded) that carry any tokens; ServeGen Fig. 8 needs two or more."""
    return [c.removesuffix("_tps") for c in load.columns
            if c.endswith("_tps") and c != "text_tps" and float(load[c].fill_null(0).sum()) > 0]


def plot_modality_mix(load: pl.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Each modality's share of the multimodal token load per window, stacked (ServeGen Fig. 8:
    which modality dominates when)."""
    ax = _axes(ax)
    with paper_style():
        mods = modality_columns(load)
        t = load["start_s"].to_numpy() / 3600.0
        if mods:
            values = np.vstack([load[f"{m}_tps"].fill_null(0).to_numpy().astype(float) for m in mods])
            total = values.sum(axis=0)
            share = np.divide(values, total, out=np.full_like(values, np.nan), where=total > 0)
            ax.stackplot(t, share, labels=mods, colors=[_MODALITY_COLORS.get(m, f"C{5 + i}") for i, m in enumerate(mods)],
                         alpha=0.85, step="post", lw=0)
            ax.legend(loc="upper right")
        ax.set_ylim(0, 1)
        ax.set_xlabel("time since trace start (h)")
        ax.set_ylabel("share of multimodal tokens (-)")
    return ax


# ----------------------------------------------------------------------------------------------
# figure level


@register_figure("servegen.fig3", title="Input and output length distributions with fits",
                 paper_figure="ServeGen Fig. 3(a)-(b)", needs=("input_tokens", "output_tokens"))
def length_distributions(input_pmf: pl.DataFrame | None, output_pmf: pl.DataFrame | None, *,
                         input_curves: pl.DataFrame | None = None, output_curves: pl.DataFrame | None = None) -> Figure:
    """Input (LogNormal+Pareto, LogNormal, Pareto fits) and output (Exponential fit) densities."""
    fig, axes = figure(ncols=2, width=FULL_WIDTH_IN, height=2.6)
    if input_pmf is not None:
        plot_length_density(input_pmf, ax=axes[0], curves=input_curves, label="input",
                            families=("lognormal_pareto", "lognormal", "pareto"))
    axes[0].set_title("input", fontsize=9)
    if output_pmf is not None:
        plot_length_density(output_pmf, ax=axes[1], curves=output_curves, label="output",
                            families=("exponential", "lognormal_mixture"))
    axes[1].set_title("output", fontsize=9)
    return fig


@register_figure("servegen.fig3cd", title="Mean input and output length over the day",
                 paper_figure="ServeGen Fig. 3(c)-(d)", needs=("input_tokens", "output_tokens"))
def length_shift(hourly: pl.DataFrame) -> Figure:
    """Hourly mean lengths relative to the all-day mean."""
    fig, ax = figure(width=COLUMN_WIDTH_IN)
    plot_hourly_means(hourly, ax=ax)
    return fig


@register_figure("servegen.fig4", title="Output length per input-length bin, per period",
                 paper_figure="ServeGen Fig. 4", needs=("input_tokens", "output_tokens"))
def io_relation(bins: pl.DataFrame, *, by_period: pl.DataFrame | None = None) -> Figure:
    """Median and 5-95 % of outputs per input bin, whole trace and (if given) per period."""
    groups = [] if by_period is None or by_period.height == 0 else list(dict.fromkeys(by_period["group"].to_list()))
    fig, axes = figure(ncols=1 + len(groups), width=min(FULL_WIDTH_IN, COLUMN_WIDTH_IN * (1 + len(groups)) * 0.7),
                       height=2.4, sharey=True)
    axes = np.atleast_1d(axes)
    plot_io_bins(bins, ax=axes[0])
    axes[0].set_title("all", fontsize=9)
    for ax, g in zip(axes[1:], groups):
        plot_io_bins(by_period, ax=ax, group=g)
        ax.set_title(g, fontsize=9)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    return fig


@register_figure("burstgpt.fig7", title="Request and response token distributions",
                 paper_figure="BurstGPT Fig. 7", needs=("input_tokens", "output_tokens"))
def burstgpt_histograms(input_pmf: pl.DataFrame | None, output_pmf: pl.DataFrame | None, *,
                        input_curves: pl.DataFrame | None = None, output_curves: pl.DataFrame | None = None) -> Figure:
    """Request tokens with the Zipf fit, response tokens with the two-LogNormal fit."""
    fig, axes = figure(ncols=2, width=FULL_WIDTH_IN, height=2.6)
    if input_pmf is not None:
        plot_length_density(input_pmf, ax=axes[0], curves=input_curves, label="request", families=("zipf",))
    axes[0].set_title("request tokens", fontsize=9)
    if output_pmf is not None:
        plot_length_density(output_pmf, ax=axes[1], curves=output_curves, label="response",
                            families=("lognormal_mixture",))
    axes[1].set_title("response tokens", fontsize=9)
    return fig


@register_figure("burstgpt.fig8", title="Response vs request tokens with the linear fit",
                 paper_figure="BurstGPT Fig. 8", needs=("input_tokens", "output_tokens"))
def linear_relation(bins: pl.DataFrame, correlation: pl.DataFrame) -> Figure:
    """Mean response per request bin and the OLS line."""
    fig, ax = figure(width=COLUMN_WIDTH_IN, height=3.2)
    plot_linear_fit(bins, correlation, ax=ax)
    return fig


@register_figure("servegen.fig13", title="Reason and answer lengths; reason-ratio distribution",
                 paper_figure="ServeGen Fig. 13", needs=("output_tokens", "reason_tokens"))
def reasoning_lengths(summary: pl.DataFrame, ratio_pmf: pl.DataFrame, *,
                      ratio_pmf_by_client: pl.DataFrame | None = None) -> Figure:
    """Mean reason / answer / output tokens, the reason-ratio PMF, and (if given) per top client."""
    n = 3 if ratio_pmf_by_client is not None and ratio_pmf_by_client.height else 2
    fig, axes = figure(ncols=n, width=FULL_WIDTH_IN, height=2.4)
    plot_reason_answer(summary, ax=axes[0])
    plot_ratio_pmf(ratio_pmf, ax=axes[1])
    axes[1].set_title("all requests", fontsize=9)
    if n == 3:
        plot_ratio_pmf(ratio_pmf_by_client, ax=axes[2])
        axes[2].set_title("top clients", fontsize=9)
    return fig


@register_figure("servegen.fig7", title="Multimodal load over time and items per request",
                 paper_figure="ServeGen Fig. 7(a), (d)", needs=("image_tokens",))
def multimodal_load(load: pl.DataFrame, items: pl.DataFrame | None = None) -> Figure:
    """Per-modality token load over time and the items-per-request PMF."""
    n = 2 if items is not None and items.height else 1
    fig, axes = figure(ncols=n, width=FULL_WIDTH_IN if n == 2 else COLUMN_WIDTH_IN, height=2.4)
    axes = np.atleast_1d(axes)
    plot_modality_load(load, ax=axes[0])
    if n == 2:
        plot_items_per_request(items, ax=axes[1])
    return fig


@register_figure("servegen.fig9", title="Multimodal share of each request's input",
                 paper_figure="ServeGen Fig. 9", needs=("text_tokens", "image_tokens"))
def multimodal_share(hist: pl.DataFrame) -> Figure:
    """Histogram of the per-request multimodal share of input tokens."""
    fig, ax = figure(width=COLUMN_WIDTH_IN)
    plot_share_histogram(hist, ax=ax)
    return fig


@register_figure("burstgpt.fig10", title="Response lengths per request-length bin",
                 paper_figure="BurstGPT Fig. 10", needs=("input_tokens", "output_tokens"))
def response_per_request_bin(table: pl.DataFrame, *, max_groups: int = 4) -> Figure:
    """Response-length distributions per request bin, one panel per group (model), largest first.

    ``table`` is :func:`~servelab.analysis.lengths.response_histograms` (``by="model"`` for
    BurstGPT's per-model panels); at most ``max_groups`` panels.
    """
    sizes = (table.group_by("group").agg(pl.col("count").sum().alias("n")).sort(["n", "group"], descending=[True, False])
             if table.height else pl.DataFrame({"group": []}))
    groups = sizes["group"].head(max_groups).to_list() or [None]
    n = len(groups)
    fig, axes = figure(ncols=n, width=COLUMN_WIDTH_IN if n == 1 else FULL_WIDTH_IN, height=3.1, sharey=True)
    axes = np.atleast_1d(axes)
    for ax, g in zip(axes, groups, strict=True):
        plot_response_histograms(table, group=g, ax=ax)
        if n > 1:
            ax.set_title(str(g), fontsize=9)
    return fig


@register_figure("servegen.fig8", title="Omni-modal load: items per request, load and modality mix over time",
                 paper_figure="ServeGen Fig. 8", needs=("image_tokens", "audio_tokens"))
def omni_load(load: pl.DataFrame, items: pl.DataFrame | None = None) -> Figure:
    """ServeGen Fig. 7's analysis on an omni-modal trace: items per request per modality, the token
    load of every modality over time and each modality's share of the multimodal load.

    Drawn only for a trace carrying tokens of two or more modalities (:func:`modality_columns`);
    the report says why otherwise.

    Raises
    ------
    ValueError
        If ``load`` carries tokens of fewer than two modalities.
    """
    mods = modality_columns(load)
    if len(mods) < 2:
        raise ValueError(f"servegen.fig8 needs tokens of at least two modalities; got {mods or 'none'}")
    n = 3 if items is not None and items.height else 2
    fig, axes = figure(ncols=n, width=FULL_WIDTH_IN, height=2.8)
    axes = list(np.atleast_1d(axes))
    if n == 3:
        plot_items_per_request(items, ax=axes.pop(0))
    plot_modality_load(load, ax=axes[0])
    plot_modality_mix(load, ax=axes[1])
    for ax in fig.axes:  # one colour per modality in every panel: one legend, under them
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    legend_outside(fig, where="below")
    return fig


# ---------------------------------------------------------------- drawn by the lengths area
# (``evidence``: servelab.reports.areas.lengths.RequestDataEvidence, with ``lengths``, ``reasoning``
# and ``multimodal`` evidence; drawers select, never compute)

def evidence_modalities(evidence) -> list[str]:
    """The modalities with a load column in the evidence's multimodal ``load`` table."""
    load = evidence.multimodal.tables.get("load")
    return modality_columns(load) if load is not None else []


@draws("servegen.fig3", area="lengths")
def _draw_servegen_fig3(evidence) -> Figure | None:
    t = evidence.lengths.tables
    if "input_pmf" not in t and "output_pmf" not in t:
        return None
    return length_distributions(t.get("input_pmf"), t.get("output_pmf"), input_curves=t.get("input_curves"),
                                output_curves=t.get("output_curves"))


@draws("burstgpt.fig7", area="lengths")
def _draw_burstgpt_fig7(evidence) -> Figure | None:
    t = evidence.lengths.tables
    if "input_pmf" not in t and "output_pmf" not in t:
        return None
    return burstgpt_histograms(t.get("input_pmf"), t.get("output_pmf"), input_curves=t.get("input_curves"),
                               output_curves=t.get("output_curves"))


@draws("servegen.fig3cd", area="lengths")
def _draw_servegen_fig3cd(evidence) -> Figure | None:
    t = evidence.lengths.tables
    return length_shift(t["hourly"]) if "hourly" in t and t["hourly"].height >= 2 else None


@draws("servegen.fig4", area="lengths")
def _draw_servegen_fig4(evidence) -> Figure | None:
    t = evidence.lengths.tables
    if "io_bins" in t and t["io_bins"].height:
        return io_relation(t["io_bins"], by_period=t.get("io_bins_by_period"))
    return None


@draws("burstgpt.fig8", area="lengths")
def _draw_burstgpt_fig8(evidence) -> Figure | None:
    t = evidence.lengths.tables
    if "io_bins" in t and t["io_bins"].height and "io_correlation" in t:
        return linear_relation(t["io_bins"], t["io_correlation"])
    return None


@draws("burstgpt.fig10", area="lengths")
def _draw_burstgpt_fig10(evidence) -> Figure | None:
    hist = evidence.response_histograms
    return response_per_request_bin(hist) if hist is not None else None


@draws("servegen.fig13", area="lengths")
def _draw_servegen_fig13(evidence) -> Figure | None:
    r = evidence.reasoning.tables
    if "summary" in r and "ratio_pmf" in r:
        return reasoning_lengths(r["summary"], r["ratio_pmf"], ratio_pmf_by_client=r.get("ratio_pmf_by_client"))
    return None


@draws("servegen.fig7", area="lengths")
def _draw_servegen_fig7(evidence) -> Figure | None:
    m = evidence.multimodal.tables
    return multimodal_load(m["load"], m.get("items_per_request")) if "load" in m else None


@draws("servegen.fig8", area="lengths")
def _draw_servegen_fig8(evidence) -> Figure | None:
    # ServeGen Fig. 8: Fig. 7's analysis on an omni-modal trace
    m = evidence.multimodal.tables
    return omni_load(m["load"], m.get("items_per_request")) if len(evidence_modalities(evidence)) >= 2 else None


@draws("servegen.fig9", area="lengths")
def _draw_servegen_fig9(evidence) -> Figure | None:
    m = evidence.multimodal.tables
    return multimodal_share(m["share_histogram"]) if "share_histogram" in m else None
