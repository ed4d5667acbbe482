"""Ingest raw request logs (BurstGPT, Azure, Mooncake, Bailian, or any log plus a column map) into a trace store.

One module per source format builds a declarative plan (:mod:`.plan`) from the source's column
names; :mod:`.core` runs every plan the same way in DuckDB (read as VARCHAR, TRY_CAST, a reject
reason per row, canonical Parquet sorted by timestamp, ``rejected.parquet``, ``manifest.json``).
Nothing here computes statistics of the trace; that is the rest of :mod:`servelab.analysis`.
"""
from servelab.analysis.ingest.core import (
    ADAPTERS,
    DEFAULT_MEMORY_LIMIT,
    FORMATS,
    EmptySourceWarning,
    ingest,
    sniff_format,
)
from servelab.analysis.ingest.generic import ColumnMap, load_column_map

__all__ = [
    "ingest",
    "sniff_format",
    "FORMATS",
    "ADAPTERS",
    "DEFAULT_MEMORY_LIMIT",
    "EmptySourceWarning",
    "ColumnMap",
    "load_column_map",
]
