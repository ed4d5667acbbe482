"""DuckDB's own numbered Parquet write of the ingest fast path (analysis/ingest/copied.py).

Its summary is checked against independent computations (Python sets, numpy) and against the
streamed write it replaces for one source (:func:`write_numbered`), which must give the same
rows, span, unsorted rows, duplicates and clock.
"""
import duckdb
import numpy as np
import polars as pl
import pytest

from servelab.analysis.clock import detect_clock
from servelab.analysis.ingest.copied import copy_numbered
from servelab.analysis.ingest.numbering import write_numbered


def _table(rng, n, *, sort: bool):
    t = rng.integers(0, n // 6, n).astype(float)  # about 6 rows per timestamp
    if sort:
        t = np.sort(t)
    return pl.DataFrame({
        "timestamp": t,
        "model": rng.choice(["a", "b"], n),
        "tokens": rng.integers(0, 3, n),
        "note": pl.Series(rng.choice(["x", "y", ""], n)).replace("", None),  # nulls count as values
    })


def _con(**frames):
    con = duckdb.connect(config={"preserve_insertion_order": True})
    for name, frame in frames.items():
        con.register(name, frame.to_arrow())
    return con


def test_summary_matches_independent_counts_and_the_streamed_write(tmp_path, rng):
    frame = _table(rng, 20_000, sort=True)
    con = _con(src=frame)
    got = copy_numbered(con, "SELECT * FROM src", tmp_path / "c.parquet")
    streamed = write_numbered(con, "SELECT * FROM src", tmp_path / "s.parquet", batch_rows=997)
    rows = frame.rows()
    assert got.duplicates == len(rows) - len(set(rows)) > 1_000
    assert (got.rows, got.lo, got.hi, got.unsorted) == (20_000, frame["timestamp"].min(), frame["timestamp"].max(), 0)
    assert got == streamed  # parts and clock included
    assert got.clock == detect_clock(frame["timestamp"].to_numpy())
    written = pl.read_parquet(tmp_path / "c.parquet")
    assert written.columns == ["request_id", *frame.columns]
    assert written["request_id"].dtype == pl.Int64
    assert written["request_id"].to_list() == list(range(frame.height))
    assert written.drop("request_id").equals(frame)
    assert written.equals(pl.read_parquet(tmp_path / "s.parquet"))


def test_unsorted_rows_are_counted_in_file_order(tmp_path, rng):
    frame = _table(rng, 5_000, sort=False)
    got = copy_numbered(_con(src=frame), "SELECT * FROM src", tmp_path / "c.parquet")
    t = frame["timestamp"].to_numpy()
    assert got.unsorted == got.parts[0].unsorted == int(np.sum(t[1:] < t[:-1])) > 0
    assert got.duplicates == 0  # not meaningful unsorted: the caller sorts and counts again
    assert pl.read_parquet(tmp_path / "c.parquet").drop("request_id").equals(frame)


def test_list_columns_count_in_duplicates(tmp_path):
    """prefix_blocks lists take part in row equality: equal lists are duplicates, [] is not null."""
    frame = pl.DataFrame({"timestamp": [1.0] * 6 + [2.0],
                          "blocks": [[1, 2], [1, 2], [12], [], None, None, [1, 2]]},
                         schema={"timestamp": pl.Float64, "blocks": pl.List(pl.Int64)})
    got = copy_numbered(_con(src=frame), "SELECT * FROM src", tmp_path / "c.parquet")
    assert got.duplicates == 2  # the second [1, 2] and the second null; the row at 2.0 differs in time


def test_no_ties_no_duplicates(tmp_path):
    frame = pl.DataFrame({"timestamp": np.arange(100, dtype=float), "model": ["a"] * 100})
    got = copy_numbered(_con(src=frame), "SELECT * FROM src", tmp_path / "c.parquet")
    assert (got.rows, got.duplicates, got.unsorted) == (100, 0, 0)


def test_empty_result(tmp_path):
    got = copy_numbered(duckdb.connect(), "SELECT 1.0 AS timestamp WHERE false", tmp_path / "c.parquet")
    assert (got.rows, got.lo, got.hi, got.unsorted, got.duplicates) == (0, None, None, 0, 0)
    assert got.parts[0].rows == 0


def test_error_in_the_query_is_duckdbs(tmp_path):
    con = duckdb.connect(config={"preserve_insertion_order": True})
    sql = ("SELECT range::DOUBLE AS timestamp FROM range(500000) "
           "WHERE CASE WHEN range < 400000 THEN true ELSE error('stop-here') END")
    with pytest.raises(duckdb.Error, match="stop-here"):
        copy_numbered(con, sql, tmp_path / "c.parquet")
