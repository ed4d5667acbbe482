"""The one look of every servelab figure: seaborn theme, paper column width, units on axes.

Use :func:`figure` to make a figure-level canvas and :func:`paper_style` as a context manager;
never ``plt.show()`` or ``plt.clf()`` in library code.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, NamedTuple

import matplotlib

matplotlib.use("Agg", force=False)  # no screen: library code never opens windows
import matplotlib.pyplot as plt
import seaborn as sns
from matplotlib.figure import Figure

__all__ = ["COLUMN_WIDTH_IN", "FULL_WIDTH_IN", "SAVE_FORMATS", "FigureAxes", "figure", "legend_outside", "paper_style", "save_figure"]

#: a single paper column (ACM / IEEE two-column layouts) and a full text width, in inches
COLUMN_WIDTH_IN = 3.4
FULL_WIDTH_IN = 7.0

_RC = {
    "figure.dpi": 150,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.title_fontsize": 7,
    # a legend drawn over data stays readable
    "legend.frameon": True,
    "legend.framealpha": 0.85,
    "legend.edgecolor": "0.85",
    "lines.linewidth": 1.2,
    "svg.fonttype": "none",
    # log axes: plain numbers from 0.001 to 999 (a narrow log range reads 0.24, not 2.4x10^-1)
    "axes.formatter.min_exponent": 3,
}


class FigureAxes(NamedTuple):
    """A new Figure and its axes (:func:`figure`; unpacks as ``fig, axes``).

    Parameters
    ----------
    figure : matplotlib.figure.Figure
    axes : matplotlib.axes.Axes or numpy.ndarray of Axes
    """

    figure: Figure
    axes: Any


@contextlib.contextmanager
def paper_style() -> Iterator[None]:
    """Apply servelab's seaborn theme inside the block only (never globally)."""
    with sns.axes_style("whitegrid"), sns.plotting_context("paper"), plt.rc_context(_RC):
        yield


def figure(*, ncols: int = 1, nrows: int = 1, width: float = COLUMN_WIDTH_IN, height: float | None = None,
           **subplot_kw) -> FigureAxes:
    """A new Figure (not attached to pyplot's state) and its axes, in servelab's style."""
    height = height if height is not None else width * 0.7 * nrows / max(ncols, 1) * (1 if ncols == 1 else 1.4)
    with paper_style():
        fig = Figure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(nrows=nrows, ncols=ncols, **subplot_kw)
    return FigureAxes(fig, axes)


#: the file formats :func:`save_figure` writes
SAVE_FORMATS = ("png", "svg", "pdf")


def save_figure(fig: Figure, path, *, formats: tuple[str, ...] | None = None) -> list:
    """Save ``fig`` as each of ``formats`` beside ``path`` (its suffix replaced), in servelab's style.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or path-like
        Target file; its suffix is replaced by each format's.
    formats : tuple of {"png", "svg", "pdf"}, optional
        Formats to write. Default: the suffix of ``path`` when it is one of :data:`SAVE_FORMATS`,
        else ``("png",)``.

    Returns
    -------
    list of pathlib.Path
        The files written, in the order of ``formats``.

    Raises
    ------
    ValueError
        If a format is not one of :data:`SAVE_FORMATS`.
    """
    from pathlib import Path

    path = Path(path)
    if formats is None:
        suffix = path.suffix.lower().lstrip(".")
        formats = (suffix,) if suffix in SAVE_FORMATS else ("png",)
    if isinstance(formats, str):
        formats = (formats,)
    bad = [f for f in formats if str(f).lower().lstrip(".") not in SAVE_FORMATS]
    if bad or not formats:
        raise ValueError(f"formats must be a non-empty selection of {SAVE_FORMATS}; got {tuple(formats)!r}")
    written = []
    for fmt in formats:
        fmt = str(fmt).lower().lstrip(".")
        target = path.with_suffix(f".{fmt}")
        with paper_style():
            fig.savefig(target, format=fmt)
        written.append(target)
    return written


def legend_outside(ax_or_fig, *, where: str = "below", ncols: int | None = None, title: str | None = None,
                   handles=None, labels=None):
    """A legend outside the data area, so that it never covers curves.

    On an Axes, ``where="below"`` puts it under the axes (under the x label), ``"right"`` beside
    it; on a Figure (constrained layout) it goes in the figure margin (``"outside lower center"``
    / ``"outside right center"``) and gathers the handles of every axes (duplicates once).
    Returns the Legend, or None when there is nothing to label.

    Raises
    ------
    ValueError
        If ``where`` is not ``"below"`` or ``"right"``.
    """
    if where not in ("below", "right"):
        raise ValueError(f"where must be 'below' or 'right'; got {where!r}")
    if handles is None:
        axes = ax_or_fig.axes if isinstance(ax_or_fig, Figure) else [ax_or_fig]
        seen: dict[str, object] = {}
        for ax in axes:
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
                if not lab.startswith("_") and lab not in seen:
                    seen[lab] = h
        handles, labels = list(seen.values()), list(seen)
    if not handles:
        return None
    with paper_style():
        if isinstance(ax_or_fig, Figure):
            loc = "outside lower center" if where == "below" else "outside right center"
            return ax_or_fig.legend(handles, labels, loc=loc, ncols=ncols or (min(len(handles), 4) if where == "below" else 1),
                                    title=title)
        if where == "below":
            return ax_or_fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.2),
                                    ncols=ncols or min(len(handles), 2), title=title)
        return ax_or_fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.02, 0.5), ncols=ncols or 1,
                                title=title)
