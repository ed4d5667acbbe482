"""Findings, the paper areas, the characterization report, and the notebooks that reproduce the papers."""
from servelab.reports.areas import AREAS, Area, Section, build_section, get_area
from servelab.reports.builder import ReportResult, build_report

__all__ = ["AREAS", "Area", "ReportResult", "Section", "build_report", "build_section", "get_area"]
