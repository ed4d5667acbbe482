"""Azure LLM inference traces (2023 and 2024 releases): ``TIMESTAMP,ContextTokens,GeneratedTokens``.

``TIMESTAMP`` is a wall-clock date-time with 7 fractional digits, parsed by DuckDB (Python's
``%f`` cannot); the store's origin is the first (earliest) request, kept in the manifest with
zone UTC, as the trace is published (no zone is written in the file). ``ContextTokens`` ->
``input_tokens``, ``GeneratedTokens`` -> ``output_tokens``. No client, model or service ids.
This module only builds a plan; the core reads the data.
"""
from __future__ import annotations

from servelab.analysis.ingest.plan import Field, IngestPlan, TimeSpec, ident

__all__ = ["NAME", "KIND", "REQUIRED", "OPTIONAL", "matches", "plan"]

NAME = "azure"
KIND = "csv"
REQUIRED = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
OPTIONAL: tuple[str, ...] = ()


def matches(kind: str, columns: tuple[str, ...]) -> bool:
    """True when a source with these columns looks like an Azure LLM inference trace."""
    return kind == KIND and set(REQUIRED) <= set(columns)


def plan(columns: tuple[str, ...], column_map=None) -> IngestPlan:
    """The ingest plan for an Azure LLM inference trace."""
    return IngestPlan(
        fmt=NAME,
        time=TimeSpec(
            raw=ident("TIMESTAMP"), column="TIMESTAMP",
            kind="datetime",
            timezone="UTC",
            origin_note="origin = first TIMESTAMP of the trace; zone UTC as published (the file carries no zone)",
        ),
        fields=(
            Field.of("input_tokens", "ContextTokens", "count"),
            Field.of("output_tokens", "GeneratedTokens", "count"),
        ),
    )
