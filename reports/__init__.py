"""Findings, the characterization report, and the notebooks that reproduce the papers."""
from servelab.reports.builder import ReportResult, build_report
from servelab.reports.section import Section

__all__ = ["build_report", "ReportResult", "Section"]
