"""Ingest raw request logs (BurstGPT, Azure, Mooncake, Bailian, or any log plus a column map) into a trace store.

Where things are:

- one module per source format (:mod:`.burstgpt`, :mod:`.azure`, :mod:`.mooncake`,
  :mod:`.bailian`, :mod:`.generic`) builds a declarative plan (:mod:`.plan`) from the source's
  column names; :mod:`.sources` resolves paths and reads headers;
- :mod:`.reading` turns a plan into the DuckDB SQL that types each row and gives it a reject
  reason;
- :mod:`.core` (:func:`ingest`) chooses the format and runs :mod:`.fast_path` (CSV read once,
  streamed into the store) or :mod:`.general_path` (two passes, any source);
- :mod:`.numbering` streams the stored rows into ``requests.parquet`` with ``request_id`` and
  counts unsorted rows and duplicates; :mod:`.manifest` assembles ``manifest.json``.

Nothing here computes statistics of the trace; that is the rest of :mod:`servelab.analysis`.
"""
from servelab.analysis.ingest.core import (
    ADAPTERS,
    DEFAULT_MAX_LINE_BYTES,
    DEFAULT_MEMORY_LIMIT,
    FORMATS,
    EmptySourceWarning,
    FormatMismatchWarning,
    StoreLockedError,
    StoreTargetError,
    UnsupportedCompressionError,
    ingest,
    sniff_format,
)
from servelab.analysis.ingest.generic import ColumnMap, load_column_map
from servelab.analysis.ingest.units import LengthUnit, length_unit

__all__ = [
    "ingest",
    "sniff_format",
    "FORMATS",
    "ADAPTERS",
    "DEFAULT_MEMORY_LIMIT",
    "DEFAULT_MAX_LINE_BYTES",
    "UnsupportedCompressionError",
    "EmptySourceWarning",
    "FormatMismatchWarning",
    "StoreTargetError",
    "StoreLockedError",
    "ColumnMap",
    "load_column_map",
    "LengthUnit",
    "length_unit",
]
