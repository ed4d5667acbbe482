"""The one look of every servelab figure: seaborn theme, paper column width, units on axes.

Use :func:`figure` to make a figure-level canvas and :func:`paper_style` as a context manager;
never ``plt.show()`` or ``plt.clf()`` in library code.
"""
from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from typing import Any, NamedTuple

import matplotlib

matplotlib.use("Agg", force=False)  # no screen: library code never opens windows
import matplotlib.pyplot as plt
import seaborn as sns
from matplotlib.figure import Figure

__all__ = ["COLUMN_WIDTH_IN", "FULL_WIDTH_IN", "SAVE_FORMATS", "FigureAxes", "figure", "layout_caches", "legend_outside",
           "paper_style", "save_figure"]

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
        with paper_style(), layout_caches(fig):
            fig.savefig(target, format=fmt)
        written.append(target)
    return written


# ----------------------------------------------------------------------------------------------
# layout caches: what matplotlib recomputes many times while it saves one figure
#
# Saving a figure under constrained layout with ``bbox_inches="tight"`` draws it twice and asks
# every axes for its tight box several times per draw (two layout passes, the title position, the
# label alignment of every sibling axis): each time matplotlib recomputes every tick's location
# and label (``Axis._update_ticks``), and each new renderer parses every mathtext tick label
# (``$\\mathdefault{10^{2}}$`` on log axes) again, since matplotlib's parse cache is keyed by the
# renderer's own parser. Profiled on the shipped samples' figures (py-spy), these two were about a
# fifth of the encoding CPU. Inside :func:`layout_caches` both are reused while their inputs are
# unchanged; the drawn pixels are the same (tests/figures/test_figure_layout_caches.py compares
# the bytes).

_CACHE_LOCK = threading.Lock()
#: id(figure) -> that figure's tick cache, for the figures being saved now
_ACTIVE: dict[int, dict] = {}
_PATCHED: dict[str, Any] = {}


def _tick_key(axis) -> tuple:
    """Everything ``Axis._update_ticks`` depends on that can change while a figure is saved: the
    view interval, the axes' place on the canvas (the tick count of auto locators follows the
    axes' length) and the dpi."""
    return (tuple(float(v) for v in axis.get_view_interval()), tuple(axis.axes.bbox.bounds),
            float(axis.get_figure(root=True).dpi))


def _install_layout_caches() -> None:
    """Wrap ``Axis._update_ticks`` and ``MathTextParser._parse_cached`` once; the wrappers only
    reuse results for figures inside :func:`layout_caches` and call matplotlib's own otherwise."""
    with _CACHE_LOCK:
        if _PATCHED:
            return
        from matplotlib.axis import Axis
        from matplotlib.mathtext import MathTextParser

        update_ticks = Axis._update_ticks
        parse_cached = MathTextParser._parse_cached
        parse_uncached = parse_cached.__wrapped__
        parsers: dict[str, Any] = {}

        def cached_update_ticks(self):
            cache = _ACTIVE.get(id(self.get_figure(root=True))) if _ACTIVE else None
            if cache is None:
                return update_ticks(self)
            key = _tick_key(self)
            owner = (id(self), key)
            # a formatter shared by several axes (shared axes share their tickers) holds the state of
            # the axis it formatted last: reuse only while that is still this axis with this key
            formatters = (id(self.major.formatter), id(self.minor.formatter))
            hit = cache["ticks"].get(id(self))
            if hit is not None and hit[0] == key and all(cache["owner"].get(f) == owner for f in formatters):
                return list(hit[1])
            ticks = update_ticks(self)
            cache["ticks"][id(self)] = (key, list(ticks))
            for f in formatters:
                cache["owner"][f] = owner
            return ticks

        @functools.lru_cache(maxsize=1024)
        def shared_parse(output_type, s, dpi, prop, antialiased, load_glyph_flags):
            # the parse depends on the parser only through its output type (its one attribute)
            return parse_uncached(parsers[output_type], s, dpi, prop, antialiased, load_glyph_flags)

        def parse_across_renderers(self, s, dpi, prop, antialiased, load_glyph_flags):
            if not _ACTIVE:
                return parse_cached(self, s, dpi, prop, antialiased, load_glyph_flags)
            parsers.setdefault(self._output_type, self)
            return shared_parse(self._output_type, s, dpi, prop, antialiased, load_glyph_flags)

        Axis._update_ticks = cached_update_ticks
        MathTextParser._parse_cached = parse_across_renderers
        _PATCHED.update(update_ticks=update_ticks, parse_cached=parse_cached)


@contextlib.contextmanager
def layout_caches(fig: Figure) -> Iterator[None]:
    """While ``fig`` is saved, reuse its tick layouts and mathtext parses (same pixels, less CPU).

    Tick locations and labels are recomputed only when an axis' view interval, place on the
    canvas or the dpi changed; a mathtext label is parsed once per (text, font, dpi) for every
    renderer. Outside the block (and for other figures) matplotlib behaves as it always does.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure about to be saved (``fig.savefig`` inside the block).
    """
    _install_layout_caches()
    key = id(fig.get_figure(root=True))
    with _CACHE_LOCK:
        nested = key in _ACTIVE
        if not nested:
            _ACTIVE[key] = {"ticks": {}, "owner": {}}
    try:
        yield
    finally:
        if not nested:
            with _CACHE_LOCK:
                _ACTIVE.pop(key, None)


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
