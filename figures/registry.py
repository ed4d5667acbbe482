"""The figure registry: figure id -> figure-level function, the paper figure it reproduces, and the
canonical columns it needs.

Area modules (``figures/arrivals.py``, ``figures/lengths.py``, ...) register their figures at import
with :func:`register_figure`; :func:`figure_specs` imports them all (plain imports, so a renamed
module is an ImportError, never a silently missing figure).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["FigureSpec", "figure_specs", "get_figure", "register_figure"]


@dataclass(frozen=True)
class FigureSpec:
    """One registered figure.

    Parameters
    ----------
    id : str
        Stable id, e.g. ``"servegen.fig1"``; findings refer to figures by it.
    title : str
        Caption title.
    function : callable
        Figure-level function: takes the tables / results it draws, returns a Figure.
    paper_figure : str
        The paper figure it reproduces, e.g. ``"ServeGen Fig. 1"``.
    needs : tuple of str
        Canonical columns the figure needs (besides ``timestamp``).
    """

    id: str
    title: str
    function: Callable
    paper_figure: str = ""
    needs: tuple[str, ...] = ()


_FIGURES: dict[str, FigureSpec] = {}


def register_figure(id: str, *, title: str, paper_figure: str = "", needs: tuple[str, ...] = ()) -> Callable:
    """Decorator registering a figure-level function under ``id``."""

    def decorate(function: Callable) -> Callable:
        if id in _FIGURES and _FIGURES[id].function is not function:
            raise ValueError(f"figure id {id!r} is already registered by {_FIGURES[id].function.__module__}")
        _FIGURES[id] = FigureSpec(id=id, title=title, function=function, paper_figure=paper_figure, needs=tuple(needs))
        return function

    return decorate


def _load_areas() -> None:
    """Import every module that registers figures (each registers at import, once)."""
    from servelab.figures import (  # noqa: F401 - imported for their registrations
        arrivals,
        clients,
        conversations,
        generation,
        lengths,
        periodicity,
        prefixes,
        validation,  # issue 17
    )


def figure_specs() -> dict[str, FigureSpec]:
    """All registered figures, by id."""
    _load_areas()
    return dict(_FIGURES)


def get_figure(id: str) -> FigureSpec:
    """The spec of one figure id."""
    specs = figure_specs()
    try:
        return specs[id]
    except KeyError:
        raise KeyError(f"unknown figure id {id!r}; registered: {sorted(specs)}") from None
