"""What an ingest path (:mod:`.fast_path` or :mod:`.general_path`) counted: frozen named results
that :func:`.manifest.ingest_manifest` turns into ``manifest.json``. Holds counts, spans and
clocks only, never rows; computes nothing.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from servelab.analysis.clock import Clock

__all__ = ["SourceOutcome", "PathOutcome", "INGEST_PATHS"]

#: names of the ingest paths: DuckDB's two, and the Spark ingest (:mod:`.spark_ingest`)
INGEST_PATHS = ("fast", "general", "spark")


@dataclass(frozen=True)
class SourceOutcome:
    """One source's counts.

    Parameters
    ----------
    stored : int
        Rows stored.
    rejected : Mapping[str, int]
        Rejected rows per reason.
    unsorted : int
        Rows earlier than the row before them in the source.
    clock : Clock or None
        The source's logging clock (None without stored rows).
    """

    stored: int
    rejected: Mapping[str, int] = field(default_factory=dict)
    unsorted: int = 0
    clock: Clock | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "rejected", MappingProxyType(dict(sorted(self.rejected.items()))))


@dataclass(frozen=True)
class PathOutcome:
    """What one ingest path wrote and counted.

    Parameters
    ----------
    path : {"fast", "general", "spark"}
        The path that wrote the store.
    sources : Mapping[int, SourceOutcome]
        Per source index (sources with no data rows are absent).
    columns : tuple of str
        Stored canonical columns besides ``request_id`` and ``timestamp``.
    duplicates : int
        Stored rows equal in every stored column to another row.
    span : tuple of (float or None, float or None)
        First and last stored timestamp.
    origin : datetime or None
        Wall-clock time of ``timestamp = 0``; ``zone`` its IANA zone.
    zone : str or None
    across : bool
        Sources overlap in time.
    clock : Clock or None
        The logging clock of the whole (sorted) store.
    """

    path: str
    sources: Mapping[int, SourceOutcome]
    columns: tuple[str, ...]
    duplicates: int
    span: tuple[float | None, float | None]
    origin: dt.datetime | None = None
    zone: str | None = None
    across: bool = False
    clock: Clock | None = None

    def __post_init__(self) -> None:
        if self.path not in INGEST_PATHS:
            raise ValueError(f"path must be one of {INGEST_PATHS}; got {self.path!r}")
        object.__setattr__(self, "sources", MappingProxyType(dict(self.sources)))
        object.__setattr__(self, "columns", tuple(self.columns))

    @property
    def stored(self) -> int:
        """Rows stored, all sources."""
        return sum(s.stored for s in self.sources.values())

    @property
    def unsorted(self) -> int:
        """Unsorted rows, all sources."""
        return sum(s.unsorted for s in self.sources.values())
