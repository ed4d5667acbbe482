"""The area protocol and the :class:`Section` a report shows for one area.

An *area* is one part of the papers' characterization (arrivals, periodicity, request data,
clients, conversations, generation fidelity, and the trace overview). Each area module in
:mod:`servelab.reports.areas` defines one object that follows :class:`Area`:

``measure(source, *, budget, seed, **options) -> evidence``
    runs the analyses and fits once and returns a frozen evidence object holding small tables and
    results only (never request rows). It never raises for a trace that lacks columns: the
    evidence then says what does not apply, and why.
``findings(evidence)``, ``tables(evidence)``, ``detail_tables(evidence)``, ``figures(evidence)``,
``headline(evidence)``, ``notes(evidence)``
    arrange that evidence: they compute no statistic of the trace. ``figures`` is derived from the
    figure registry (:func:`with_registered_figures`): each figure module registers how it is drawn
    from the area's evidence (:func:`servelab.figures.registry.draws`). ``tables`` are the small tables
    the report shows; ``detail_tables`` every table the per-area command prints and writes with
    ``-o`` (often more, e.g. per-window tables). ``figures`` calls the figure-level functions of
    :mod:`servelab.figures`, so the report and ``servelab <area> --figures`` draw the same figures.

:func:`build_section` runs one area and gathers its parts into a :class:`Section`; the report
builder (:mod:`servelab.reports.builder`) and the per-area commands loop over
:data:`servelab.reports.areas.AREAS`. Nothing here imports the CLI.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

import polars as pl

from servelab.analysis.budget import Budget
from servelab.analysis.findings import Finding

__all__ = ["Area", "Section", "build_section", "count_text", "section_from_evidence", "with_registered_figures"]


@runtime_checkable
class Area(Protocol):
    """What every area object offers (see the module docstring)."""

    id: str
    title: str

    def measure(self, source: Any, *, budget: Budget = ..., seed: int = 0, **options: Any) -> Any:
        """Run the area's analyses once on ``source`` (a :class:`~servelab.analysis.store.TraceStore`)."""

    def findings(self, evidence: Any) -> tuple[Finding, ...]:
        """The papers' findings checked on the evidence (not-applicable ones say why)."""

    def tables(self, evidence: Any) -> Mapping[str, pl.DataFrame]:
        """The small tables the report shows."""

    def detail_tables(self, evidence: Any) -> Mapping[str, pl.DataFrame]:
        """Every table of the evidence, for printing and writing (``servelab <area> -o DIR``)."""

    def figures(self, evidence: Any) -> Mapping[str, Any]:
        """Figure id -> matplotlib Figure, drawn from the evidence only."""

    def headline(self, evidence: Any) -> Mapping[str, Any]:
        """Numbers for the summary at the top of the report."""

    def notes(self, evidence: Any) -> tuple[str, ...]:
        """What was done: subsamples, skipped analyses and why, figures not drawn and why."""


@dataclass(frozen=True)
class Section:
    """One area of the report, built.

    Parameters
    ----------
    id : str
        Short id, e.g. ``"arrivals"``.
    title : str
        Heading in the report.
    findings : tuple of Finding
        The papers' findings checked in this area (applicable or not).
    tables : Mapping[str, polars.DataFrame]
        Small summary tables to show (no raw data).
    figures : Mapping[str, matplotlib.figure.Figure]
        Figure id (see :mod:`servelab.figures.registry`) -> rendered figure.
    headline : Mapping[str, scalar]
        Numbers for the summary table at the top of the report.
    notes : tuple of str
        What was done (subsampling in quick mode, skipped analyses and why).
    """

    id: str
    title: str
    findings: tuple[Finding, ...] = ()
    tables: Mapping[str, pl.DataFrame] = field(default_factory=dict)
    figures: Mapping[str, Any] = field(default_factory=dict)
    headline: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "findings", tuple(self.findings))
        object.__setattr__(self, "tables", MappingProxyType(dict(self.tables)))
        object.__setattr__(self, "figures", MappingProxyType(dict(self.figures)))
        object.__setattr__(self, "headline", MappingProxyType(dict(self.headline)))
        object.__setattr__(self, "notes", tuple(self.notes))


def with_registered_figures(cls: type) -> type:
    """Class decorator: ``cls.figures(evidence)`` draws every figure registered for the area ``cls.id``
    with :func:`servelab.figures.registry.draws`, in registration order (an area lists no figure ids)."""

    def figures(self, evidence: Any) -> dict[str, Any]:
        from servelab.figures.registry import draw_area_figures

        return draw_area_figures(self.id, evidence)

    figures.__doc__ = (f"The figures registered for the {cls.id!r} area (:func:`servelab.figures.registry.draws`), "
                       "drawn from the evidence; figures the evidence cannot show are left out.")
    figures.__qualname__ = f"{cls.__qualname__}.figures"
    cls.figures = figures
    return cls


def section_from_evidence(area: Area, evidence: Any) -> Section:
    """Gather ``area``'s findings, tables, figures, headline and notes of ``evidence``.

    Raises
    ------
    TypeError
        If ``findings`` does not return Finding objects, or ``tables`` / ``figures`` /
        ``headline`` do not return mappings.
    """
    findings = area.findings(evidence)
    if not isinstance(findings, (tuple, list)) or not all(isinstance(f, Finding) for f in findings):
        raise TypeError(f"area {area.id!r}: findings() returned {type(findings).__name__}, expected a tuple of Finding")
    parts = {}
    for name in ("tables", "figures", "headline"):
        value = getattr(area, name)(evidence)
        if not isinstance(value, Mapping):
            raise TypeError(f"area {area.id!r}: {name}() returned {type(value).__name__}, expected a mapping")
        parts[name] = value
    return Section(id=area.id, title=area.title, findings=tuple(findings), notes=tuple(area.notes(evidence)), **parts)


def build_section(area: Area, source: Any, *, budget: Budget | None = None, seed: int = 0,
                  **options: Any) -> Section:
    """Measure ``source`` with ``area`` and gather the :class:`Section` (what the report shows).

    Parameters
    ----------
    area : Area
        One of :data:`servelab.reports.areas.AREAS` (or any object following :class:`Area`).
    source : TraceStore
        The trace.
    budget : Budget, optional
        Sample sizes (default :meth:`Budget.full`).
    seed : int
        Seed of every random draw.
    **options
        Area-specific options of ``area.measure`` (e.g. ``window=`` for arrivals).
    """
    evidence = area.measure(source, budget=Budget.full() if budget is None else budget, seed=seed, **options)
    return section_from_evidence(area, evidence)


def count_text(n: int) -> str:
    """A sample size as the notes write it: ``100000`` -> ``"10^5"``, ``20000`` -> ``"2*10^4"``
    (multiples of 10^4 and above), else with thousands separators (``5000`` -> ``"5,000"``)."""
    n = int(n)
    digits = str(n).rstrip("0")
    zeros = len(str(n)) - len(digits)
    if n > 0 and zeros >= 4 and len(digits) == 1:
        return f"10^{zeros}" if digits == "1" else f"{digits}*10^{zeros}"
    return f"{n:,}"
