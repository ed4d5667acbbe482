"""Stream DuckDB queries into one Parquet file with a ``request_id`` row number, in one pass.

DuckDB numbers rows only with a window (``row_number() OVER ()``), which makes the whole
CSV-parsing pipeline single-threaded, and its CSV reader has no ``file_row_number``. So the
ingest fast path lets DuckDB run the typed, checked read on all its threads and stream the rows
(in file order: ``preserve_insertion_order``) as Arrow batches into a polars streaming sink that
adds the row index and encodes the Parquet. The file is written once; nothing is materialised.

On the way each batch (not each request) updates what the manifest needs about the timestamps,
vectorised: the number of rows, the span, the number of rows earlier than the row before them,
a sample of the gaps for the logging clock (:class:`servelab.analysis.clock.GapSample`, per query
and for the whole stream),
and the row hashes of rows whose timestamp equals a neighbour's, from which the exact duplicates
are counted (equal rows share their timestamp, and in a sorted stream rows with the same
timestamp are adjacent). The duplicate count is only valid for a sorted stream;
:attr:`StreamSummary.unsorted` says whether it is.

Several queries (one per source file) stream one after the other into the same file, numbered
on; :attr:`StreamSummary.parts` has each one's rows, span and unsorted rows.

Nothing is lost silently: the stream is written into a private folder next to ``path``, and
its Parquet row count (footer metadata, no scan) must equal the rows the stream handed to the
sink before the file takes its name. On a mismatch the rows are written once more without the
streaming source (each query collected, then written); if that also differs,
:class:`StoreWriteError` is raised and no file is left at ``path``.
"""
from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from servelab.analysis.clock import Clock, GapSample

__all__ = ["PartSummary", "StreamSummary", "StreamQueryError", "StoreWriteError", "write_numbered",
           "DEFAULT_BATCH_ROWS"]

#: rows per Arrow batch handed from DuckDB to polars (500 k: the fastest of 0.5 / 1 / 2 M at
#: 10 M rows, 2026-11-23; memory grows with it)
DEFAULT_BATCH_ROWS = 500_000

_HASH_SEED = 0x5E4E1AB


@dataclass(frozen=True)
class PartSummary:
    """What the stream saw of one of its queries.

    Attributes
    ----------
    rows : int
        Rows of this query.
    lo, hi : float or None
        Its smallest and largest timestamp (None without rows).
    unsorted : int
        Its rows whose timestamp is smaller than the previous row's of the same query.
    clock : Clock or None
        The logging clock of its timestamps (gaps in stream order; absolute differences when
        unsorted, so the lattice holds but ``zero_share`` is of the file order).
    """

    rows: int
    lo: float | None
    hi: float | None
    unsorted: int
    clock: Clock | None = None


@dataclass(frozen=True)
class StreamSummary:
    """What one streamed write saw.

    Attributes
    ----------
    rows : int
        Rows written.
    lo, hi : float or None
        Smallest and largest timestamp (None when no row was written).
    unsorted : int
        Rows whose timestamp is smaller than the previous row's in the whole stream (also
        across the boundary between two queries).
    duplicates : int
        Rows equal in every column to an earlier row, counted among rows with a tied
        timestamp by 64-bit row hash. Only meaningful when ``unsorted == 0``.
    parts : tuple of PartSummary
        One per query, in stream order.
    clock : Clock or None
        The logging clock of the whole stream (meaningful when ``unsorted == 0``).
    """

    rows: int
    lo: float | None
    hi: float | None
    unsorted: int
    duplicates: int
    parts: tuple[PartSummary, ...] = ()
    clock: Clock | None = None


def _part(rows: int, lo: float, hi: float, unsorted: int, clock: Clock | None = None) -> PartSummary:
    return PartSummary(rows=rows, lo=lo if rows else None, hi=hi if rows else None, unsorted=unsorted,
                       clock=clock if rows else None)


def _row_hashes(rows: pl.DataFrame) -> np.ndarray:
    """64-bit hash of each row; list columns (``prefix_blocks``) are hashed as their joined text.

    polars before 2.x cannot hash list columns inside ``hash_rows`` (1.31: "vec_hash_combine
    operation not supported for dtype list[i64]"). A null list stays null, an empty list is "".
    """
    lists = [name for name, dtype in rows.schema.items() if isinstance(dtype, pl.List)]
    if lists:
        rows = rows.with_columns(pl.col(c).cast(pl.List(pl.String)).list.join(",") for c in lists)
    return rows.hash_rows(seed=_HASH_SEED).to_numpy()


class _Tally:
    """Per-batch, vectorised accumulation of the stream's timestamp statistics."""

    def __init__(self, ts_col: str, *, whole_stream_clock: bool = True) -> None:
        self.ts_col = ts_col
        self.last: float | None = None
        self.hashes: list[np.ndarray] = []
        self.unsorted_across = 0
        self.parts: list[PartSummary] = []
        self.part_gaps: list[GapSample] = []
        # one query: its part's clock is the stream's, not sampled twice
        self.gaps = GapSample() if whole_stream_clock else None
        self._new_part = True

    def start_part(self) -> None:
        """The next batches belong to the next query."""
        self.parts.append(PartSummary(rows=0, lo=np.inf, hi=-np.inf, unsorted=0))  # summary() gives None
        self.part_gaps.append(GapSample())
        self._new_part = True

    def update(self, batch: pl.DataFrame) -> None:
        n = batch.height
        if n == 0:
            return
        ts = batch.get_column(self.ts_col).to_numpy()
        previous = np.empty(n)
        previous[0] = np.nan if self.last is None else self.last
        previous[1:] = ts[:-1]
        following = np.empty(n)
        following[:-1] = ts[1:]
        following[-1] = np.nan
        earlier = ts < previous
        boundary = self._new_part and bool(earlier[0])  # earlier than the previous query's last row
        self.unsorted_across += boundary
        # rows tied with a neighbour, and always the batch's last row (it may tie with the next
        # batch's first); a row is taken at most once, so a row never counts against itself
        candidates = (ts == previous) | (ts == following)
        candidates[-1] = True
        if candidates.any():
            self.hashes.append(_row_hashes(batch.filter(pl.Series(candidates))))
        part = self.parts[-1]
        self.parts[-1] = PartSummary(
            rows=part.rows + n,
            lo=min(part.lo, float(np.min(ts))),  # a new part starts at (inf, -inf)
            hi=max(part.hi, float(np.max(ts))),
            unsorted=part.unsorted + int(np.count_nonzero(earlier)) - boundary,
        )
        self.last = float(ts[-1])
        self._new_part = False
        self.part_gaps[-1].add(ts)
        if self.gaps is not None:
            self.gaps.add(ts)

    def summary(self) -> StreamSummary:
        hashes = np.sort(np.concatenate(self.hashes)) if self.hashes else np.empty(0, dtype=np.uint64)
        # sorted, a repeated hash follows its equal (np.unique took 1.6 s for 1.5 M hashes)
        duplicates = int(np.count_nonzero(hashes[1:] == hashes[:-1]))
        parts = tuple(_part(p.rows, p.lo, p.hi, p.unsorted, g.clock() if p.rows else None)
                      for p, g in zip(self.parts, self.part_gaps, strict=True))
        full = [p for p in parts if p.rows]
        if not full:
            return StreamSummary(rows=0, lo=None, hi=None, unsorted=0, duplicates=0, parts=parts)
        whole = self.gaps.clock() if self.gaps is not None else full[0].clock
        return StreamSummary(
            rows=sum(p.rows for p in full), lo=min(p.lo for p in full), hi=max(p.hi for p in full),
            unsorted=sum(p.unsorted for p in full) + self.unsorted_across, duplicates=duplicates, parts=parts,
            clock=whole,
        )


class StreamQueryError(RuntimeError):
    """The streamed query failed (DuckDB's message, which reaches Python through Arrow)."""


class StoreWriteError(RuntimeError):
    """The Parquet file does not hold the rows the query gave, also after a second, collected write."""


def _sink(frame: pl.LazyFrame, path: Path, compression: str) -> None:
    """The streaming write (a seam: the tests replace it with a short write)."""
    frame.sink_parquet(path, compression=compression)


def _write_collected(con: duckdb.DuckDBPyConnection, queries: Sequence[str], path: Path, *,
                     index_name: str, schema: pl.Schema, compression: str) -> None:
    """The safe second write: every query run again and collected, then numbered and written."""
    frames = [con.sql(q).pl() for q in queries]
    rows = pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=schema)
    (rows.with_row_index(index_name).with_columns(pl.col(index_name).cast(pl.Int64))
     .write_parquet(path, compression=compression))


def _parquet_rows(path: Path) -> int:
    """Rows in a Parquet file, from its footer; -1 when there is no file or no readable footer."""
    try:
        return pq.read_metadata(path).num_rows
    except (OSError, pa.ArrowException):
        return -1


def _batches(relation, batch_rows: int, state: dict):
    """The relation's Arrow batches; the query's error is kept in ``state`` and raised again.

    DuckDB may raise when the reader is made (a first batch it could not produce) or while
    reading (through pyarrow, as a plain OSError).
    """
    try:
        reader = (relation.to_arrow_reader(batch_rows) if hasattr(relation, "to_arrow_reader")
                  else relation.fetch_record_batch(batch_rows))
        try:
            yield from reader
        finally:
            reader.close()
    except (duckdb.Error, OSError) as err:
        state["error"] = StreamQueryError(str(err))
        raise


def write_numbered(con: duckdb.DuckDBPyConnection, sql: str | Sequence[str], path: str | Path, *,
                   index_name: str = "request_id", ts_col: str = "timestamp",
                   batch_rows: int | None = None, compression: str = "snappy") -> StreamSummary:
    """Run ``sql`` and write its rows, numbered from 0 in result order, to one Parquet file.

    Several queries stream one after the other (each query's rows in its result order) and are
    numbered on.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        Connection to run the query on (``preserve_insertion_order`` keeps the result in the
        order of its source).
    sql : str or sequence of str
        The query, or queries with the same columns; each must have a numeric ``ts_col``.
    path : str or Path
        The Parquet file to write.
    index_name : str
        Name of the Int64 row-number column, written first.
    ts_col : str
        The timestamp column the summary is about.
    batch_rows : int, optional
        Rows per Arrow batch from DuckDB; default :data:`DEFAULT_BATCH_ROWS`.
    compression : str
        Parquet compression codec.

    Returns
    -------
    StreamSummary
        Rows, span, unsorted rows and duplicates of the stream.

    Raises
    ------
    StreamQueryError
        With the message of what the query raises, also in the middle of the stream (the file
        is then incomplete: the caller removes it).
    """
    # the relation is reached through ``state`` and dropped at the end: polars keeps the source
    # function alive, and a DuckDB object still referenced at interpreter exit makes nanobind
    # print leak warnings
    batch_rows = int(batch_rows or DEFAULT_BATCH_ROWS)
    queries = [sql] if isinstance(sql, str) else list(sql)
    if not queries:
        raise ValueError("write_numbered needs at least one query")
    state: dict = {"relations": [con.sql(q) for q in queries], "calls": 0, "error": None}
    schema = state["relations"][0].limit(0).pl().schema
    for k, relation in enumerate(state["relations"][1:], start=1):
        other = relation.limit(0).pl().schema
        if other != schema:
            raise ValueError(f"query {k} has columns {dict(other)}; query 0 has {dict(schema)}")
    tally = _Tally(ts_col, whole_stream_clock=len(queries) > 1)

    def source(with_columns, predicate, n_rows, batch_size):
        state["calls"] += 1
        for relation in state["relations"]:
            tally.start_part()
            for record_batch in _batches(relation, batch_rows, state):
                batch = pl.from_arrow(record_batch)
                tally.update(batch)
                if predicate is not None:
                    batch = batch.filter(predicate)
                if with_columns is not None:
                    batch = batch.select(with_columns)
                yield batch

    from polars.io.plugins import register_io_source

    target = Path(path)
    # a private folder: polars may still write a failed sink's file for some milliseconds after
    # sink_parquet has raised (seen: a file re-created up to 18 ms after the error, 158 of 1,500
    # failed sinks, /tmp load test of issue 18). Such a late write must never land on ``path``,
    # where the general path writes next; into a removed folder it cannot land at all
    private = target.with_name(f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.partial")
    private.mkdir()
    partial = private / target.name
    try:
        _sink(register_io_source(source, schema=schema)
              .with_row_index(index_name)
              .with_columns(pl.col(index_name).cast(pl.Int64)), partial, compression)
    except Exception:
        shutil.rmtree(private, ignore_errors=True)
        if state["error"] is not None:  # polars wraps the query's error: give the caller the query's
            raise state["error"] from None
        raise
    finally:
        calls = state["calls"]
        state.clear()
    try:
        if calls != 1:  # the tally would count rows twice (or not at all)
            raise RuntimeError(f"polars called the stream source {calls} times; expected once")
        summary = tally.summary()
        written = _parquet_rows(partial)
        if written != summary.rows:
            # the streaming sink lost (or added) rows: write once more without the streaming source
            partial.unlink(missing_ok=True)
            _write_collected(con, queries, partial, index_name=index_name, schema=schema, compression=compression)
            again = _parquet_rows(partial)
            if again != summary.rows:
                raise StoreWriteError(
                    f"{target.name}: the query gave {summary.rows} rows but the streamed file held {written} "
                    f"and the collected rewrite {again} (-1: no readable file); nothing written; got {again!r}"
                )
        os.replace(partial, target)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return summary
