"""Findings, the characterization report, and the notebooks that reproduce the papers."""
__all__: list[str] = []
