"""A :class:`Section` of the report: one area's findings, tables, figures and headline numbers.

Each area module in :mod:`servelab.reports.sections` offers
``build_section(store, *, quick=False, seed=0) -> Section``; the report builder calls them all.
A section whose analyses do not apply to a trace still returns, with not-applicable findings
that say why.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import polars as pl

from servelab.analysis.findings import Finding

__all__ = ["Section"]


@dataclass(frozen=True)
class Section:
    """One area of the report.

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
