"""Ingest raw request logs into a trace store and characterize them with SQL.

Analysis never imports :mod:`servelab.fitting`, :mod:`servelab.figures` or matplotlib: it reads
the store through DuckDB and returns polars DataFrames and frozen records.
"""
from servelab.analysis.exceptions import (
    ColumnMapError,
    EmptyTraceError,
    MissingColumnError,
    NotApplicableError,
    StoreExistsError,
    StoreNotFoundError,
    TraceFormatError,
)
from servelab.analysis.findings import Finding, Verdict, findings_table, not_applicable
from servelab.analysis.schema import CANONICAL_COLUMNS, SCHEMA_VERSION
from servelab.analysis.store import TraceStore, open_store, write_store
from servelab.analysis.ingest import ingest

__all__ = [
    "CANONICAL_COLUMNS",
    "SCHEMA_VERSION",
    "TraceStore",
    "open_store",
    "write_store",
    "ingest",
    "Finding",
    "Verdict",
    "findings_table",
    "not_applicable",
    "TraceFormatError",
    "MissingColumnError",
    "EmptyTraceError",
    "ColumnMapError",
    "StoreExistsError",
    "StoreNotFoundError",
    "NotApplicableError",
]
