"""The paper areas, one object each, and their registry.

Every area (see :class:`~servelab.reports.areas.base.Area`) measures a trace once and arranges the
evidence into findings, tables, figures, headline numbers and notes. :data:`AREAS` lists them in
report order; :func:`get_area` finds one by id. The report (:func:`servelab.reports.build_report`)
runs them all; ``servelab arrivals`` runs the arrivals and periodicity areas, ``servelab lengths``,
``clients`` and ``conversations`` theirs. A notebook can do the same::

    from servelab.reports.areas import get_area, build_section

    area = get_area("arrivals")
    evidence = area.measure(store, budget=Budget.quick(), seed=0)
    area.findings(evidence), area.figures(evidence)
    build_section(area, store)          # all of it, as the report shows it
"""
from __future__ import annotations

from servelab.analysis.budget import Budget
from servelab.analysis.findings import Finding, Verdict
from servelab.reports.areas.arrivals import ARRIVALS
from servelab.reports.areas.base import Area, Section, build_section, section_from_evidence
from servelab.reports.areas.clients import CLIENTS
from servelab.reports.areas.conversations import CONVERSATIONS
from servelab.reports.areas.generation import GENERATION
from servelab.reports.areas.lengths import LENGTHS
from servelab.reports.areas.overview import OVERVIEW
from servelab.reports.areas.periodicity import PERIODICITY
from servelab.reports.areas.prefixes import PREFIXES
from servelab.reports.areas.validation import VALIDATION

__all__ = [
    "AREAS",
    "ARRIVALS",
    "Area",
    "Budget",
    "CLIENTS",
    "CONVERSATIONS",
    "Finding",
    "GENERATION",
    "LENGTHS",
    "OVERVIEW",
    "PERIODICITY",
    "PREFIXES",
    "Section",
    "VALIDATION",
    "Verdict",
    "area_ids",
    "build_section",
    "get_area",
    "section_from_evidence",
]

#: every area, in report order
AREAS: tuple[Area, ...] = (OVERVIEW, ARRIVALS, PERIODICITY, LENGTHS, CLIENTS, CONVERSATIONS, PREFIXES, GENERATION,
                           VALIDATION)


def area_ids() -> tuple[str, ...]:
    """The ids of :data:`AREAS`, in report order."""
    return tuple(area.id for area in AREAS)


def get_area(id: str) -> Area:
    """The area whose id is ``id`` (e.g. ``"arrivals"``).

    Raises
    ------
    KeyError
        If no area has that id; the message lists the known ids.
    """
    for area in AREAS:
        if area.id == id:
            return area
    raise KeyError(f"unknown area {id!r}; known areas: {list(area_ids())}")
