"""The trace store: canonical Parquet plus ``manifest.json``, read through DuckDB.

A store is a folder::

    STORE/
      manifest.json      sources (sha256, format), origin wall-clock time and zone, row counts
                         (read / stored / rejected per reason, duplicates, unsorted), schema version
      requests.parquet   one row per request, canonical schema, sorted by timestamp
      rejected.parquet   every rejected row: source, row number, reason, raw values as JSON

This module opens stores and writes them atomically (a failed write leaves nothing behind). It
does not parse raw formats (that is :mod:`servelab.analysis.ingest`) and computes no statistics.
"""
from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import duckdb
import polars as pl

from servelab import __version__
from servelab.analysis.exceptions import (
    EmptyTraceError,
    NotApplicableError,
    StoreExistsError,
    StoreNotFoundError,
    TraceFormatError,
)
from servelab.analysis.schema import CANONICAL_COLUMNS, SCHEMA_VERSION, canonical_order

__all__ = [
    "TraceStore",
    "open_store",
    "write_store",
    "atomic_store_dir",
    "build_manifest",
    "fetch_polars",
    "duckdb_settings",
    "duckdb_config",
    "MANIFEST_NAME",
    "REQUESTS_NAME",
    "REJECTED_NAME",
]

MANIFEST_NAME = "manifest.json"
REQUESTS_NAME = "requests.parquet"
REJECTED_NAME = "rejected.parquet"


@dataclass(frozen=True)
class TraceStore:
    """An opened trace store.

    Parameters
    ----------
    path : Path
        The store folder.
    manifest : Mapping
        The parsed ``manifest.json``.

    Notes
    -----
    Use :meth:`connect` for SQL: it returns a DuckDB connection with a ``requests`` view over the
    canonical Parquet (and a ``rejected`` view). Results of analyses are polars DataFrames.
    """

    path: Path
    manifest: Mapping[str, Any] = field(repr=False)

    @property
    def requests_path(self) -> Path:
        return self.path / REQUESTS_NAME

    @property
    def rejected_path(self) -> Path:
        return self.path / REJECTED_NAME

    @property
    def columns(self) -> tuple[str, ...]:
        """Canonical columns present in this store, in canonical order."""
        return tuple(self.manifest["columns"])

    @property
    def n_requests(self) -> int:
        return int(self.manifest["rows"]["stored"])

    @property
    def origin(self) -> dt.datetime | None:
        """Wall-clock time of ``timestamp = 0`` (timezone-aware when the zone is known)."""
        origin = self.manifest.get("origin") or {}
        text = origin.get("wall_clock")
        if not text:
            return None
        when = dt.datetime.fromisoformat(text)
        zone = origin.get("timezone")
        if zone and when.tzinfo is None:
            from zoneinfo import ZoneInfo

            when = when.replace(tzinfo=ZoneInfo(zone))
        return when

    @property
    def timezone(self) -> str | None:
        return (self.manifest.get("origin") or {}).get("timezone")

    @property
    def clock(self):
        """The timestamps' logging clock (:class:`servelab.analysis.clock.Clock`): the manifest's,
        or detected from the timestamps for a store whose manifest has none."""
        from servelab.analysis.clock import store_clock

        return store_clock(self)

    @property
    def clock_s(self) -> float | None:
        """The logging step in seconds (None: continuous timestamps); see :attr:`clock`."""
        return self.clock.step_s

    def has(self, *columns: str) -> bool:
        """True when every one of ``columns`` is present."""
        return all(c in self.columns for c in columns)

    def require(self, *columns: str, analysis: str) -> None:
        """Raise :class:`NotApplicableError` naming ``analysis`` if a column is missing."""
        missing = [c for c in columns if c not in self.columns]
        if missing:
            raise NotApplicableError(analysis, missing=missing)

    def connect(self, *, threads: int | None = None, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
        """A new in-memory DuckDB connection with ``requests`` and ``rejected`` views."""
        con = duckdb.connect(config=duckdb_config(threads=threads, memory_limit=memory_limit))
        con.execute(f"CREATE VIEW requests AS SELECT * FROM read_parquet({_sql_str(self.requests_path)})")
        if self.rejected_path.exists():
            con.execute(f"CREATE VIEW rejected AS SELECT * FROM read_parquet({_sql_str(self.rejected_path)})")
        return con

    def query(self, sql: str, parameters: list | dict | None = None) -> pl.DataFrame:
        """Run ``sql`` (which may use the ``requests`` view) and return a polars DataFrame."""
        with contextlib.closing(self.connect()) as con:
            return fetch_polars(con, sql, parameters)

    def to_polars(self, columns: list[str] | None = None) -> pl.DataFrame:
        """Read the requests (optionally only ``columns``) into memory. Small stores only."""
        return pl.read_parquet(self.requests_path, columns=columns)


def open_store(path: str | os.PathLike) -> TraceStore:
    """Open the trace store at ``path``.

    Raises
    ------
    StoreNotFoundError
        If ``path`` has no ``manifest.json``.
    """
    path = Path(path)
    manifest_path = path / MANIFEST_NAME
    if not manifest_path.is_file():
        raise StoreNotFoundError(
            f"{str(path)!r} is not a trace store (no {MANIFEST_NAME}); create one with "
            f"`servelab ingest SOURCE -o {path}`"
        )
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise TraceFormatError(
            f"store {str(path)!r} has schema_version {manifest.get('schema_version')!r}; this servelab "
            f"reads schema_version {SCHEMA_VERSION}: re-ingest the source"
        )
    return TraceStore(path=path, manifest=MappingProxyType(manifest))


@contextlib.contextmanager
def atomic_store_dir(path: str | os.PathLike, *, overwrite: bool = False,
                     exists_error: type[Exception] = StoreExistsError) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``path`` only if the block succeeds.

    Parameters
    ----------
    path : str or os.PathLike
        The folder to create or replace.
    overwrite : bool
        Replace an existing ``path``; otherwise an existing one is an error.
    exists_error : type of Exception
        The error raised for an existing ``path`` (stores raise :class:`StoreExistsError`, pools
        their own ``PoolExistsError``).

    Raises
    ------
    StoreExistsError
        (or ``exists_error``) if ``path`` exists and ``overwrite`` is false.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise exists_error(f"{str(path)!r} already exists; pass overwrite=True (--overwrite) to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        path.rename(old)
        tmp.rename(path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(path)


def write_store(
    frame: pl.DataFrame,
    path: str | os.PathLike,
    *,
    source: str = "in-memory frame",
    fmt: str = "frame",
    origin: dt.datetime | None = None,
    timezone: str | None = None,
    overwrite: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> TraceStore:
    """Write a frame already in the canonical schema (e.g. a generated workload) as a store.

    Rows are sorted by ``timestamp`` (stable) and ``request_id`` is reassigned in that order.
    Nothing is rejected here: the frame must already be clean.

    Parameters
    ----------
    frame : polars.DataFrame
        Canonical columns only; ``timestamp`` required, ``request_id`` optional.
    path : path-like
        The store folder to create.
    source, fmt : str
        Recorded in the manifest.
    origin, timezone
        Wall-clock time of ``timestamp = 0`` and its IANA zone, when known.
    overwrite : bool
        Replace an existing store.
    extra : Mapping, optional
        Extra JSON-serialisable entries for the manifest (e.g. generator settings).

    Raises
    ------
    EmptyTraceError
        If ``frame`` has no rows.
    TraceFormatError
        If ``timestamp`` is missing or a column is not canonical.
    """
    if "timestamp" not in frame.columns:
        raise TraceFormatError(f"frame lacks the required 'timestamp' column; columns found: {frame.columns}")
    if frame.height == 0:
        raise EmptyTraceError(f"frame from {source!r} has no rows; a store needs at least one request")
    try:
        columns = canonical_order([c for c in frame.columns if c != "request_id"])
    except ValueError as err:
        raise TraceFormatError(str(err)) from None
    select = ", ".join(f'CAST("{c}" AS {CANONICAL_COLUMNS[c]}) AS "{c}"' for c in columns)
    with atomic_store_dir(path, overwrite=overwrite) as tmp:
        con = duckdb.connect(config=duckdb_config())
        try:
            con.register("frame_in", frame.select(columns).to_arrow())
            con.execute(
                f"COPY (SELECT row_number() OVER (ORDER BY timestamp, rowid_) - 1 AS request_id, * EXCLUDE (rowid_) "
                f"FROM (SELECT {select}, row_number() OVER () AS rowid_ FROM frame_in) ORDER BY request_id) "
                f"TO {_sql_str(tmp / REQUESTS_NAME)} (FORMAT parquet)"
            )
            span = con.execute("SELECT min(timestamp), max(timestamp) FROM frame_in").fetchone()
        finally:
            con.close()
        manifest = build_manifest(
            fmt=fmt,
            sources=[{"path": source, "sha256": None, "format": fmt, "rows_read": frame.height,
                      "rows_stored": frame.height, "rows_rejected": {}}],
            columns=["request_id", *columns],
            rows={"read": frame.height, "stored": frame.height, "rejected": {}, "duplicates": None, "unsorted": None},
            span=span,
            origin=origin,
            timezone=timezone,
            extra=extra,
        )
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=False))
    return open_store(path)


def build_manifest(
    *,
    fmt: str,
    sources: list[dict[str, Any]],
    columns: list[str],
    rows: dict[str, Any],
    span: tuple[float | None, float | None],
    origin: dt.datetime | None,
    timezone: str | None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest dictionary written beside the Parquet (one place defines its layout)."""
    manifest: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "servelab_version": __version__,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "format": fmt,
        "sources": sources,
        "origin": {
            "wall_clock": origin.isoformat() if origin is not None else None,
            "timezone": timezone,
        },
        "columns": list(columns),
        "rows": rows,
        "span_s": {"first": span[0], "last": span[1]},
    }
    if extra:
        manifest["extra"] = dict(extra)
    return manifest


def fetch_polars(con: duckdb.DuckDBPyConnection, sql: str, parameters: list | dict | None = None) -> pl.DataFrame:
    """Run a query on ``con`` and return its result as a polars DataFrame (zero-copy via Arrow)."""
    return con.sql(sql, params=parameters).pl()


#: connection defaults set by :func:`duckdb_settings` for the current context
_SETTINGS: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "servelab_duckdb_settings", default=MappingProxyType({}))


@contextlib.contextmanager
def duckdb_settings(*, threads: int | None = None, memory_limit: str | None = None) -> Iterator[None]:
    """Defaults for every DuckDB connection servelab opens inside the block.

    :meth:`TraceStore.connect` (hence :meth:`TraceStore.query` and every analysis that reads a
    store), :func:`write_store` and ingest use them unless given their own. ``memory_limit`` caps
    DuckDB's own buffers (e.g. ``"2GB"``; DuckDB's default is 80 % of RAM), not polars or numpy
    memory. The block's settings apply to this thread and context only.

    Raises
    ------
    ValueError
        If ``threads`` is not a positive integer or ``memory_limit`` is an empty string.
    """
    if threads is not None and not (isinstance(threads, int) and threads >= 1):
        raise ValueError(f"threads must be a positive integer or None; got {threads!r}")
    if memory_limit is not None and not (isinstance(memory_limit, str) and memory_limit.strip()):
        raise ValueError(f"memory_limit must be a size such as '2GB' or None; got {memory_limit!r}")
    token = _SETTINGS.set(MappingProxyType(
        {k: v for k, v in (("threads", threads), ("memory_limit", memory_limit)) if v is not None}))
    try:
        yield
    finally:
        _SETTINGS.reset(token)


def duckdb_config(*, threads: int | None = None, memory_limit: str | None = None) -> dict[str, Any]:
    """DuckDB connection config: the :func:`duckdb_settings` in force, then the given values."""
    config: dict[str, Any] = dict(_SETTINGS.get())
    if threads:
        config["threads"] = threads
    if memory_limit:
        config["memory_limit"] = memory_limit
    return config


def _sql_str(value: str | os.PathLike) -> str:
    """Quote a string (path) as a SQL literal."""
    return "'" + str(value).replace("'", "''") + "'"
