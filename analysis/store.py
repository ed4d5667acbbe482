"""The trace store: canonical Parquet plus ``manifest.json``, read through DuckDB.

A store is a folder::

    STORE/
      manifest.json      sources (sha256, format), origin wall-clock time and zone, row counts
                         (read / stored / rejected per reason, duplicates, unsorted), schema version
      requests.parquet   one row per request, canonical schema, sorted by timestamp
      rejected.parquet   every rejected row: source, row number, reason, raw values as JSON

or, partitioned by day (and source) for lake-scale traces (``servelab ingest --partition-by day``
or ``day,source``; the manifest's ``layout`` says so)::

    STORE/
      manifest.json      as above, plus "layout": {"kind": "partitioned", "partition_by": ["day"],
                         "files": [...], "day_origin": ..., "in_id_order": true}
      requests/day=YYYY-MM-DD/part-0.parquet   the requests of one UTC day, same schema and columns
      rejected.parquet

    requests/day=YYYY-MM-DD/source=NAME/part-0.parquet   with ``--partition-by day,source``

A day is the UTC calendar day of ``origin + timestamp`` (a trace without a wall-clock origin:
of ``1970-01-01 + timestamp``, so ``day=1970-01-01`` is the trace's first 24 h). The partition
column is in the path only, never in the files, so every file has the canonical schema; the files
in ``layout.files`` order hold the rows in ``request_id`` order. Every reader goes through
:attr:`TraceStore.requests_files` and :meth:`TraceStore.parquet_sql`, so both layouts read alike
(DuckDB here, Spark in :mod:`servelab.analysis.engines`).

The *source* of a request is what served it as the trace records it: the ``model`` column when
the store has one (BurstGPT: ``ChatGPT`` / ``GPT-4``), else ``service`` (Bailian's request type);
a store with neither cannot be partitioned by source (the canonical schema keeps no per-file
origin of a row). The folder name is the value percent-encoded (``urllib.parse.quote``), and
``__HIVE_DEFAULT_PARTITION__`` for NULL or empty; the column stays in the files. With sources the
files of a day interleave in ``request_id``, so the layout says ``"in_id_order": false`` and the
readers here (:meth:`TraceStore.read_arrow`, :meth:`TraceStore.parquet_sql`, the ``requests``
view) put the rows back in ``request_id`` order; the aggregation SQL does not depend on row order.

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
from typing import TYPE_CHECKING, Any

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
from servelab.analysis.schema import CANONICAL_COLUMNS, SCHEMA_VERSION, TOKEN_COLUMNS, canonical_order

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "TraceStore",
    "FrameSource",
    "as_source",
    "frame_source",
    "open_store",
    "write_store",
    "atomic_store_dir",
    "build_manifest",
    "fetch_polars",
    "duckdb_settings",
    "duckdb_config",
    "MANIFEST_NAME",
    "REQUESTS_NAME",
    "REQUESTS_DIR",
    "REJECTED_NAME",
    "PARTITION_KEYS",
    "parquet_sql",
    "partition_store",
    "source_column",
    "partition_value",
    "SOURCE_COLUMNS",
    "NULL_PARTITION",
]

MANIFEST_NAME = "manifest.json"
REQUESTS_NAME = "requests.parquet"
REJECTED_NAME = "rejected.parquet"
#: the folder of a partitioned store's requests
REQUESTS_DIR = "requests"
#: what a store can be partitioned by (``--partition-by``), in folder order
PARTITION_KEYS = ("day", "source")
#: the columns that name a request's source, the first one a store has (module docstring)
SOURCE_COLUMNS = ("model", "service")
#: the folder value of a NULL or empty source (Hive's name for it)
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"


def parquet_sql(files, *, columns=None, order_by_id: bool = False) -> str:
    """DuckDB SQL reading the Parquet ``files`` (a path or a sequence of paths) as one table.

    ``hive_partitioning = false``: a partitioned store's ``day=...`` folder names never become a
    column (the files hold the canonical columns). ``columns``, if given, are selected by name.
    ``order_by_id``: the rows in ``request_id`` order (for files that interleave, e.g. by source).
    """
    files = [files] if isinstance(files, (str, os.PathLike)) else list(files)
    if not files:
        raise ValueError(f"files must name at least one Parquet file; got {files!r}")
    listed = ", ".join(_sql_str(f) for f in files)
    select = "*" if columns is None else ", ".join(f'"{c}"' for c in columns)
    order = " ORDER BY request_id" if order_by_id else ""
    return f"(SELECT {select} FROM read_parquet([{listed}], hive_partitioning = false){order})"


class _SourceInfo:
    """What a trace source says about itself from its manifest (shared by stores and frames).

    A source also has ``connect()`` (a DuckDB connection with a ``requests`` view) and
    ``read_arrow(columns, dictionary=())`` (the requests as an Arrow table in ``request_id``
    order): :class:`TraceStore` reads them from Parquet, :class:`FrameSource` from memory.
    """

    manifest: Mapping[str, Any]

    @property
    def columns(self) -> tuple[str, ...]:
        """Canonical columns present in this source, in canonical order."""
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

    def query(self, sql: str, parameters: list | dict | None = None) -> pl.DataFrame:
        """Run ``sql`` (which may use the ``requests`` view) and return a polars DataFrame."""
        with contextlib.closing(self.connect()) as con:
            return fetch_polars(con, sql, parameters)

    def to_polars(self, columns: list[str] | None = None) -> pl.DataFrame:
        """Read the requests (optionally only ``columns``) into memory, in ``request_id`` order."""
        return pl.from_arrow(self.read_arrow(columns))


@dataclass(frozen=True)
class TraceStore(_SourceInfo):
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
    def partitioned(self) -> bool:
        """True for a store partitioned by day (``requests/day=.../part-0.parquet``)."""
        return (self.manifest.get("layout") or {}).get("kind") == "partitioned"

    @property
    def requests_path(self) -> Path:
        """``requests.parquet``, or the ``requests/`` folder of a partitioned store (read its files
        through :attr:`requests_files`)."""
        return self.path / (REQUESTS_DIR if self.partitioned else REQUESTS_NAME)

    @property
    def requests_files(self) -> tuple[Path, ...]:
        """The Parquet files of the requests, in ``request_id`` order (one file unless partitioned)."""
        if not self.partitioned:
            return (self.path / REQUESTS_NAME,)
        return tuple(self.path / f for f in self.manifest["layout"]["files"])

    @property
    def in_id_order(self) -> bool:
        """Whether :attr:`requests_files`, read one after the other, give the rows in ``request_id``
        order (False for a store partitioned by source, whose files of a day interleave)."""
        return bool((self.manifest.get("layout") or {}).get("in_id_order", True))

    def parquet_sql(self, columns=None) -> str:
        """DuckDB SQL of the requests as one table in ``request_id`` order (:func:`parquet_sql` of
        :attr:`requests_files`)."""
        return parquet_sql(self.requests_files, columns=columns, order_by_id=not self.in_id_order)

    @property
    def rejected_path(self) -> Path:
        return self.path / REJECTED_NAME

    def connect(self, *, threads: int | None = None, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
        """A new in-memory DuckDB connection with ``requests`` and ``rejected`` views."""
        con = duckdb.connect(config=duckdb_config(threads=threads, memory_limit=memory_limit))
        requests = (f"SELECT * FROM read_parquet({_sql_str(self.requests_path)})" if not self.partitioned
                    else f"SELECT * FROM {self.parquet_sql()}")
        con.execute(f"CREATE VIEW requests AS {requests}")
        if self.rejected_path.exists():
            con.execute(f"CREATE VIEW rejected AS SELECT * FROM read_parquet({_sql_str(self.rejected_path)})")
        return con

    def read_arrow(self, columns: list[str] | None = None, *, dictionary: tuple[str, ...] = ()) -> pa.Table:
        """The requests' ``columns`` (all by default) as an Arrow table, in stored order;
        ``dictionary`` columns come dictionary-encoded."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        read = columns if columns is None or self.in_id_order or "request_id" in columns else [*columns, "request_id"]
        tables = [pq.read_table(f, columns=read, read_dictionary=list(dictionary) or None)
                  for f in self.requests_files]
        table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        if not self.in_id_order:  # files interleaved by source: back in request_id order
            import pyarrow.compute as pc

            table = table.take(pc.sort_indices(table["request_id"]))
            if columns is not None:
                table = table.select(list(columns))
        return table

    def to_polars(self, columns: list[str] | None = None) -> pl.DataFrame:
        """Read the requests (optionally only ``columns``) into memory."""
        if not self.partitioned:
            return pl.read_parquet(self.requests_path, columns=columns)
        if not self.in_id_order:
            return pl.from_arrow(self.read_arrow(columns))
        return pl.read_parquet([str(f) for f in self.requests_files], columns=columns, hive_partitioning=False)


@dataclass(frozen=True)
class FrameSource(_SourceInfo):
    """An in-memory trace: a canonical Arrow table with the manifest a store of it would have.

    Build it with :func:`frame_source` (or :func:`as_source`) from a polars DataFrame or an
    Arrow table; every analysis and area that takes a :class:`TraceStore` takes it unchanged,
    with the same results as on the store :func:`write_store` writes from the same frame.

    Parameters
    ----------
    table : pyarrow.Table
        Canonical columns, canonical types, ``request_id`` 0..n-1 in ``(timestamp, row)`` order.
    manifest : Mapping
        ``columns``, ``rows``, ``span_s``, ``origin`` as :func:`build_manifest` lays them out, and
        ``detected_clock`` (the clock detected from the timestamps, JSON).
    detected_clock : Clock
        That clock (:attr:`clock`); analyses detect the same one from the timestamps, as they do
        for a store written by :func:`write_store`.

    Notes
    -----
    :meth:`connect` registers the table as the ``requests`` view of a new DuckDB connection (no
    copy, no file); there is no ``rejected`` view. ``path`` is None.
    """

    table: pa.Table = field(repr=False)
    manifest: Mapping[str, Any] = field(repr=False)
    detected_clock: Any = field(default=None, repr=False)
    path: None = None

    @property
    def clock(self):
        """The clock detected from the timestamps when the source was made
        (:func:`servelab.analysis.clock.detect_clock`, as for a store whose manifest records none)."""
        if self.detected_clock is not None:
            return self.detected_clock
        return super().clock

    def connect(self, *, threads: int | None = None, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
        """A new in-memory DuckDB connection whose ``requests`` view is the frame."""
        con = duckdb.connect(config=duckdb_config(threads=threads, memory_limit=memory_limit))
        con.register("requests", self.table)
        return con

    def read_arrow(self, columns: list[str] | None = None, *, dictionary: tuple[str, ...] = ()) -> pa.Table:
        """The frame's ``columns`` (all by default), in ``request_id`` order; ``dictionary``
        columns come dictionary-encoded (as :meth:`TraceStore.read_arrow` gives them)."""
        import pyarrow.compute as pc

        table = self.table if columns is None else self.table.select(list(columns))
        for name in dictionary:
            if name in table.column_names:
                i = table.column_names.index(name)
                table = table.set_column(i, name, pc.dictionary_encode(table[name]))
        return table

    def to_polars(self, columns: list[str] | None = None) -> pl.DataFrame:
        """The frame's ``columns`` (all by default) as a polars DataFrame (zero-copy)."""
        return pl.from_arrow(self.read_arrow(columns))


def _frame_table(frame: Any) -> pa.Table:
    """An Arrow table from a polars DataFrame / LazyFrame or an Arrow table / record batch."""
    import pyarrow as pa

    if isinstance(frame, pl.LazyFrame):
        frame = frame.collect()
    if isinstance(frame, pl.DataFrame):
        return frame.to_arrow()
    if isinstance(frame, pa.RecordBatch):
        return pa.Table.from_batches([frame])
    if isinstance(frame, pa.Table):
        return frame
    raise TypeError(f"frame must be a polars DataFrame or LazyFrame or a pyarrow Table or RecordBatch; "
                    f"got {type(frame).__name__}")


def _check_frame(con: duckdb.DuckDBPyConnection, columns: list[str], names: list[str], types: list[str],
                 source: str) -> None:
    """Validate the registered ``frame_in`` against the canonical schema (clear, typed errors)."""
    for name, kind in zip(names, types):
        if name not in columns:
            continue
        want = CANONICAL_COLUMNS[name]
        try:
            bad = con.execute(f'SELECT count(*), any_value(CAST("{name}" AS VARCHAR)) FILTER (WHERE TRY_CAST("{name}" '
                              f'AS {want}) IS NULL) FROM frame_in WHERE "{name}" IS NOT NULL '
                              f'AND TRY_CAST("{name}" AS {want}) IS NULL').fetchall()[0]
        except duckdb.Error:
            raise TraceFormatError(f"column {name!r} of {source!r} has type {kind}, which does not convert to the "
                                   f"canonical {want}") from None
        if bad[0]:
            raise TraceFormatError(f"column {name!r} of {source!r}: {bad[0]} values do not convert to the canonical "
                                   f"{want}; e.g. {bad[1]!r}")
    n_null, n_bad = con.execute("SELECT count(*) FILTER (WHERE timestamp IS NULL), count(*) FILTER (WHERE NOT "
                                "isfinite(CAST(timestamp AS DOUBLE))) FROM frame_in").fetchall()[0]
    if n_null or n_bad:
        raise TraceFormatError(f"column 'timestamp' of {source!r} must be finite seconds in every row; got {n_null} "
                               f"null and {n_bad} non-finite values")
    for name in (c for c in TOKEN_COLUMNS if c in columns):
        n_neg, example = con.execute(f'SELECT count(*), min(CAST("{name}" AS BIGINT)) FROM frame_in '
                                     f'WHERE CAST("{name}" AS BIGINT) < 0').fetchall()[0]
        if n_neg:
            raise TraceFormatError(f"column {name!r} of {source!r} counts tokens or items and must be >= 0; got "
                                   f"{n_neg} negative values (smallest {example!r})")


def _canonical_sql(columns: list[str]) -> str:
    """SQL over ``frame_in``: canonical types, rows sorted by ``(timestamp, input row)``,
    ``request_id`` reassigned 0..n-1 in that order (the one rule of :func:`write_store` and
    :func:`frame_source`)."""
    select = ", ".join(f'CAST("{c}" AS {CANONICAL_COLUMNS[c]}) AS "{c}"' for c in columns)
    return (f"SELECT row_number() OVER (ORDER BY timestamp, rowid_) - 1 AS request_id, * EXCLUDE (rowid_) "
            f"FROM (SELECT {select}, row_number() OVER () AS rowid_ FROM frame_in) ORDER BY request_id")


def _frame_columns(names: list[str], source: str) -> list[str]:
    if "timestamp" not in names:
        raise TraceFormatError(f"frame {source!r} lacks the required 'timestamp' column; columns found: {names}")
    try:
        return canonical_order([c for c in names if c != "request_id"])
    except ValueError as err:
        raise TraceFormatError(f"frame {source!r}: {err}") from None


def frame_source(frame: Any, *, source: str = "in-memory frame", origin: dt.datetime | None = None,
                 timezone: str | None = None) -> FrameSource:
    """An in-memory trace source from a frame in the canonical schema (no file written).

    The frame is validated against :data:`~servelab.analysis.schema.CANONICAL_COLUMNS`, cast to
    the canonical types, sorted by ``timestamp`` (stable) and given ``request_id`` 0..n-1 in that
    order, exactly as :func:`write_store` stores it; its manifest records the columns, row
    count, span and the logging clock detected from the timestamps (``detected_clock``).

    Parameters
    ----------
    frame : polars.DataFrame, polars.LazyFrame, pyarrow.Table or pyarrow.RecordBatch
        Canonical columns only; ``timestamp`` (seconds) required; a ``request_id`` column is
        replaced.
    source : str
        Named in errors and in the manifest.
    origin, timezone
        Wall-clock time of ``timestamp = 0`` and its IANA zone, when known.

    Raises
    ------
    TypeError
        If ``frame`` is not one of those types.
    TraceFormatError
        If ``timestamp`` is missing, null or not finite, a column is not canonical or does not
        convert to its canonical type, or a token / item count is negative.
    EmptyTraceError
        If ``frame`` has no rows.
    """
    from servelab.analysis.clock import detect_clock

    table = _frame_table(frame)
    columns = _frame_columns(table.column_names, source)
    if table.num_rows == 0:
        raise EmptyTraceError(f"frame {source!r} has no rows; a trace needs at least one request")
    con = duckdb.connect(config=duckdb_config())
    try:
        con.register("frame_in", table)
        _check_frame(con, columns, table.column_names, [str(t) for t in table.schema.types], source)
        canonical = con.sql(_canonical_sql(columns)).to_arrow_table()
    finally:
        con.close()
    canonical = canonical.combine_chunks()
    timestamps = canonical["timestamp"].to_numpy()
    manifest = build_manifest(
        fmt="frame",
        sources=[{"path": source, "sha256": None, "format": "frame", "rows_read": canonical.num_rows,
                  "rows_stored": canonical.num_rows, "rows_rejected": {}}],
        columns=["request_id", *columns],
        rows={"read": canonical.num_rows, "stored": canonical.num_rows, "rejected": {}, "duplicates": None,
              "unsorted": None},
        span=(float(timestamps[0]), float(timestamps[-1])),
        origin=origin,
        timezone=timezone,
    )
    # the detected clock is kept beside the manifest, not in its "clock" entry: that entry means
    # "recorded at ingest", and analyses read a store without one (write_store's) by detecting it
    # from the timestamps, so a frame and the store written from it give the same results
    clock = detect_clock(timestamps)
    manifest["detected_clock"] = clock.to_json()
    return FrameSource(table=canonical, manifest=MappingProxyType(manifest), detected_clock=clock)


def as_source(obj: Any) -> TraceStore | FrameSource:
    """Whatever an analysis may read, as a trace source.

    Parameters
    ----------
    obj : TraceStore, FrameSource, str, os.PathLike, polars.DataFrame / LazyFrame or pyarrow.Table
        A source is returned as it is, a path is opened as a store (:func:`open_store`), a frame
        becomes a :class:`FrameSource` (:func:`frame_source`, validated against the canonical
        schema).

    Raises
    ------
    StoreNotFoundError
        If a path is not a store.
    TypeError, TraceFormatError, EmptyTraceError
        For a frame :func:`frame_source` refuses.
    """
    if isinstance(obj, (TraceStore, FrameSource)):
        return obj
    if isinstance(obj, (str, os.PathLike)):
        return open_store(obj)
    return frame_source(obj)


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
    with atomic_store_dir(path, overwrite=overwrite) as tmp:
        con = duckdb.connect(config=duckdb_config())
        try:
            con.register("frame_in", frame.select(columns).to_arrow())
            con.execute(f"COPY ({_canonical_sql(columns)}) TO {_sql_str(tmp / REQUESTS_NAME)} (FORMAT parquet)")
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


def source_column(columns) -> str | None:
    """The column that names a request's source among ``columns`` (:data:`SOURCE_COLUMNS`), or None."""
    return next((c for c in SOURCE_COLUMNS if c in columns), None)


def partition_value(value: str | None) -> str:
    """The folder value of source ``value``: percent-encoded, :data:`NULL_PARTITION` for NULL or empty."""
    from urllib.parse import quote

    return NULL_PARTITION if value is None or value == "" else quote(str(value), safe="")


def partition_store(path: str | os.PathLike, *, by: tuple[str, ...] = ("day",)) -> TraceStore:
    """Rewrite the single-file store at ``path`` as a store partitioned by ``by`` (in place, atomically
    per file: the partitions are written first, then the manifest, then ``requests.parquet`` goes).

    ``by`` is ``("day",)``, ``("source",)`` or ``("day", "source")`` (folders in that order; the
    source is the module docstring's). One DuckDB query per partition (a loop over partitions, not
    rows): ``COPY (... WHERE day = d [AND source = s] ORDER BY request_id)``; the source file is
    sorted by timestamp, so each day reads only its row groups. Row counts, columns, request ids
    and the rejected rows are unchanged.

    Raises
    ------
    ValueError
        If ``by`` is not a subset of :data:`PARTITION_KEYS`, the store is partitioned already, or
        ``by`` names ``source`` and the store has no source column (:data:`SOURCE_COLUMNS`).
    """
    by = tuple(by)
    if not by or any(k not in PARTITION_KEYS for k in by) or len(set(by)) != len(by):
        raise ValueError(f"by must name partition keys from {list(PARTITION_KEYS)}; got {list(by)!r}")
    by = tuple(k for k in PARTITION_KEYS if k in by)
    store = open_store(path)
    if store.partitioned:
        raise ValueError(f"store {str(store.path)!r} is partitioned already; got by={list(by)!r}")
    src_col = source_column(store.columns) if "source" in by else None
    if "source" in by and src_col is None:
        raise ValueError(f"store {str(store.path)!r} has no source column (one of {list(SOURCE_COLUMNS)}) to "
                         f"partition by; got by={list(by)!r} with columns {list(store.columns)!r}")
    single = store.path / REQUESTS_NAME
    origin = store.origin
    if origin is None:
        base, day_origin = "TIMESTAMP '1970-01-01 00:00:00'", "none: day=1970-01-01 is the trace's first 24 h"
    else:
        utc = origin.astimezone(dt.timezone.utc) if origin.tzinfo is not None else origin
        base, day_origin = f"TIMESTAMP '{utc.replace(tzinfo=None).isoformat(sep=' ')}'", "origin (UTC days)"
    keys = {"day": f"strftime({base} + to_microseconds(CAST(round(timestamp * 1e6) AS BIGINT)), '%Y-%m-%d')",
            "source": f"NULLIF(CAST(\"{src_col}\" AS VARCHAR), '')"}
    keys = {k: keys[k] for k in by}
    con = duckdb.connect(config=duckdb_config())
    try:
        parts = con.execute(f"SELECT DISTINCT {', '.join(f'{e} AS {k}' for k, e in keys.items())} "
                            f"FROM read_parquet({_sql_str(single)}) ORDER BY ALL NULLS LAST").fetchall()
        files = []
        for values in parts:  # a loop over partitions
            folders = "/".join(f"{k}={v if k == 'day' else partition_value(v)}" for k, v in zip(keys, values))
            where = " AND ".join(f"{e} IS NOT DISTINCT FROM {'NULL' if v is None else _sql_str(v)}"
                                 for e, v in zip(keys.values(), values))
            rel = f"{REQUESTS_DIR}/{folders}/part-0.parquet"
            (store.path / rel).parent.mkdir(parents=True, exist_ok=True)
            con.execute(f"COPY (SELECT * FROM read_parquet({_sql_str(single)}) WHERE {where} "
                        f"ORDER BY request_id) TO {_sql_str(store.path / rel)} (FORMAT parquet)")
            files.append(rel)
    finally:
        con.close()
    manifest = dict(store.manifest)
    manifest["layout"] = {"kind": "partitioned", "partition_by": list(by), "files": files, "day_origin": day_origin,
                          "in_id_order": by == ("day",)}
    if src_col is not None:
        manifest["layout"]["source_column"] = src_col
    (store.path / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=False))
    single.unlink()
    return open_store(store.path)


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
