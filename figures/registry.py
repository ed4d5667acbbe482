"""The figure registry: figure id -> figure-level function, the paper figure it reproduces, and the
canonical columns it needs.

Area modules (``figures/arrivals.py``, ``figures/lengths.py``, ...) register their figures at import
with :func:`register_figure`; :func:`figure_specs` imports them all (plain imports, so a renamed
module is an ImportError, never a silently missing figure).

Each figure an area shows is also registered with the function that draws it from the area's
evidence, :func:`draws` (``@draws("servegen.fig1", area="arrivals")`` on ``evidence -> Figure or
None``, None when the evidence cannot show it). An area's ``figures(evidence)`` is
:func:`draw_area_figures` (``reports/areas``: ``@with_registered_figures``), so adding a figure to
an area is one figure module and its test: no list of figure ids to edit elsewhere. A drawer only
selects from the evidence (tables it already holds); it computes no statistic.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["DrawSpec", "FigureSpec", "draw_area_figures", "drawers", "draws", "figure_specs", "get_figure",
           "register_figure"]


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


@dataclass(frozen=True)
class DrawSpec:
    """How an area draws one registered figure from its evidence.

    Parameters
    ----------
    id : str
        A figure id of :func:`register_figure`.
    area : str
        The area id (``"arrivals"``, ``"lengths"``, ...) whose ``figures(evidence)`` draws it.
    function : callable
        ``evidence -> Figure or None`` (None: the evidence cannot show this figure).
    """

    id: str
    area: str
    function: Callable


_DRAWERS: dict[str, DrawSpec] = {}


def draws(id: str, *, area: str) -> Callable:
    """Decorator registering ``evidence -> Figure | None`` as the way ``area`` draws figure ``id``.

    Areas draw their figures in registration order (the order of the drawers in their module).

    Raises
    ------
    ValueError
        If another function already draws ``id``.
    """

    def decorate(function: Callable) -> Callable:
        if id in _DRAWERS and _DRAWERS[id].function.__qualname__ != function.__qualname__:
            raise ValueError(f"figure id {id!r} is already drawn by {_DRAWERS[id].function.__qualname__}")
        _DRAWERS[id] = DrawSpec(id=id, area=area, function=function)
        return function

    return decorate


def drawers(area: str | None = None) -> tuple[DrawSpec, ...]:
    """The registered drawers (of one area), in registration order."""
    _load_areas()
    return tuple(d for d in _DRAWERS.values() if area is None or d.area == area)


def draw_area_figures(area: str, evidence) -> dict:
    """Figure id -> Figure for every drawer of ``area`` that can draw from ``evidence``."""
    out = {}
    for spec in drawers(area):
        fig = spec.function(evidence)
        if fig is not None:
            out[spec.id] = fig
    return out


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
