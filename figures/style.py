"""The one look of every servelab figure: seaborn theme, paper column width, units on axes.

Use :func:`figure` to make a figure-level canvas and :func:`paper_style` as a context manager;
never ``plt.show()`` or ``plt.clf()`` in library code.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import matplotlib

matplotlib.use("Agg", force=False)  # no screen: library code never opens windows
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

__all__ = ["COLUMN_WIDTH_IN", "FULL_WIDTH_IN", "paper_style", "figure", "save_figure"]

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


@contextlib.contextmanager
def paper_style() -> Iterator[None]:
    """Apply servelab's seaborn theme inside the block only (never globally)."""
    with sns.axes_style("whitegrid"), sns.plotting_context("paper"), plt.rc_context(_RC):
        yield


def figure(*, ncols: int = 1, nrows: int = 1, width: float = COLUMN_WIDTH_IN, height: float | None = None,
           **subplot_kw) -> tuple[Figure, object]:
    """A new Figure (not attached to pyplot's state) and its axes, in servelab's style."""
    height = height if height is not None else width * 0.7 * nrows / max(ncols, 1) * (1 if ncols == 1 else 1.4)
    with paper_style():
        fig = Figure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(nrows=nrows, ncols=ncols, **subplot_kw)
    return fig, axes


def save_figure(fig: Figure, path, *, formats: tuple[str, ...] = ("png",)) -> list:
    """Save ``fig`` as each of ``formats`` (png, svg, pdf) beside ``path`` (suffix replaced)."""
    from pathlib import Path

    path = Path(path)
    written = []
    for fmt in formats:
        target = path.with_suffix(f".{fmt}")
        with paper_style():
            fig.savefig(target, format=fmt)
        written.append(target)
    return written
