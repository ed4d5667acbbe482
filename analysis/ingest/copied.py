"""Write one DuckDB query, numbered, to Parquet with DuckDB's own writer, then summarise the file.

The ingest fast path's single-source write (:mod:`.fast_path`): DuckDB parses, checks, numbers
(``row_number() OVER ()``, in result order under ``preserve_insertion_order``) and encodes the
Parquet itself with ``COPY ... TO``, on all its threads. The summary the manifest needs is then
read back cheaply from the written file, never by streaming rows through Python:

- the ``timestamp`` column alone (one numpy array) gives the rows, the span, the rows earlier
  than the row before them and the logging clock (:class:`servelab.analysis.clock.GapSample`
  over the whole column: its sample depends on gap indices only, so it equals the one the
  streamed write (:func:`.numbering.write_numbered`) takes batch by batch);
- exact duplicates are counted by row hash (:func:`.numbering.row_hashes`) among the rows whose
  timestamp equals a neighbour's, the only rows that can equal another in a sorted file (read
  back by timestamp); an unsorted file's count is not used (the caller sorts it again).

It gives the same :class:`.numbering.StreamSummary` as :func:`.numbering.write_numbered` on the
same query (tested), and the same rows.
"""
from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from servelab.analysis.clock import GapSample
from servelab.analysis.ingest.numbering import PartSummary, StreamSummary, row_hashes
from servelab.analysis.ingest.plan import sql_str

__all__ = ["copy_numbered"]


def copy_numbered(con: duckdb.DuckDBPyConnection, sql: str, path: str | Path, *,
                  index_name: str = "request_id", ts_col: str = "timestamp",
                  compression: str = "snappy") -> StreamSummary:
    """Run ``sql``, write its rows numbered from 0 in result order to ``path``, summarise them.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        Connection with ``preserve_insertion_order`` (the result keeps its source's order).
    sql : str
        The query; it must have a numeric ``ts_col``.
    path : str or Path
        The Parquet file to write (``index_name`` first, as BIGINT, then the query's columns).
    index_name, ts_col : str
        Name of the row-number column; the timestamp column the summary is about.
    compression : str
        Parquet compression codec.

    Returns
    -------
    StreamSummary
        Rows, span, unsorted rows, duplicates and clock, with one part (the query); the
        duplicates are 0 when rows are unsorted (only a sorted file's count is meaningful).

    Raises
    ------
    duckdb.Error
        What the query raises (the file may then be incomplete: the caller removes it).
    """
    path = Path(path)
    target = sql_str(path)
    con.execute(
        f"COPY (SELECT CAST(row_number() OVER () - 1 AS BIGINT) AS {_ident(index_name)}, * FROM ({sql})) "
        f"TO {target} (FORMAT parquet, COMPRESSION {compression})"
    ).fetchall()
    ts = pl.read_parquet(path, columns=[ts_col]).get_column(ts_col).cast(pl.Float64).to_numpy()
    n = int(ts.size)
    if n == 0:
        part = PartSummary(rows=0, lo=None, hi=None, unsorted=0)
        return StreamSummary(rows=0, lo=None, hi=None, unsorted=0, duplicates=0, parts=(part,))
    unsorted = int(np.count_nonzero(ts[1:] < ts[:-1]))
    gaps = GapSample()
    gaps.add(ts)
    clock = gaps.clock()
    lo, hi = float(np.min(ts)), float(np.max(ts))
    duplicates = _tied_duplicates(path, ts, index_name, ts_col) if unsorted == 0 else 0
    part = PartSummary(rows=n, lo=lo, hi=hi, unsorted=unsorted, clock=clock)
    return StreamSummary(rows=n, lo=lo, hi=hi, unsorted=unsorted, duplicates=duplicates, parts=(part,),
                         clock=clock)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _tied_duplicates(path: Path, ts: np.ndarray, index_name: str, ts_col: str) -> int:
    """Rows equal to an earlier row, among the rows whose timestamp equals a neighbour's.

    In a sorted file those are the only rows that can equal another; in an unsorted one the
    count is not used (:attr:`.numbering.StreamSummary.duplicates`).
    """
    same = ts[1:] == ts[:-1]
    if not same.any():
        return 0
    values = ts[1:][same]  # sorted: each tied value once, without np.unique's sort
    tied_values = pl.Series(ts_col, values[np.r_[True, values[1:] != values[:-1]]])
    rows = (pl.scan_parquet(path)
            .filter(pl.col(ts_col).is_in(tied_values.implode()))
            .drop(index_name)
            .collect())
    hashes = np.sort(row_hashes(rows))
    return int(np.count_nonzero(hashes[1:] == hashes[:-1]))
