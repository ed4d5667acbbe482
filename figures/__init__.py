"""One plotting function per figure, and the figure registry.

Figures arrange tables and results computed elsewhere; they compute nothing themselves. Each
area module offers axes-level ``plot_x(data, *, ax=None, **kwargs) -> Axes`` functions and
registers figure-level functions (returning a Figure) in :mod:`servelab.figures.registry`.
"""
from servelab.figures.registry import (
    FigureSpec,
    figure_specs,
    get_figure,
    register_figure,
)
from servelab.figures.style import (
    COLUMN_WIDTH_IN,
    FULL_WIDTH_IN,
    SAVE_FORMATS,
    figure,
    legend_outside,
    paper_style,
    save_figure,
)

__all__ = [
    "COLUMN_WIDTH_IN",
    "FULL_WIDTH_IN",
    "SAVE_FORMATS",
    "FigureSpec",
    "figure",
    "figure_specs",
    "get_figure",
    "legend_outside",
    "paper_style",
    "register_figure",
    "save_figure",
]
