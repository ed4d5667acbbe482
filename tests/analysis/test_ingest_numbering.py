"""The streamed, numbered write of the ingest fast path (analysis/ingest/numbering.py).

Its summary (rows, span, unsorted rows, exact duplicates) is checked against independent
computations (Python sets and numpy on the same values), with small Arrow batches so that tied
timestamps and duplicate rows straddle batch boundaries; the fast path that uses it must give the
general path's store and manifest.
"""
import duckdb
import numpy as np
import polars as pl
import pytest

from servelab.analysis import ingest
from servelab.analysis.ingest import core, numbering
from servelab.analysis.ingest.numbering import StreamQueryError, write_numbered


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


def _independent_duplicates(frame: pl.DataFrame) -> int:
    rows = frame.rows()
    return len(rows) - len(set(rows))


@pytest.mark.parametrize("batch_rows", [1, 7, 97, 10_000])
def test_summary_matches_independent_counts(tmp_path, rng, batch_rows):
    frame = _table(rng, 3_000, sort=True)
    con = duckdb.connect(config={"preserve_insertion_order": True})
    con.register("src", frame.to_arrow())
    out = tmp_path / "n.parquet"
    got = write_numbered(con, "SELECT * FROM src", out, batch_rows=batch_rows)
    expected_dups = _independent_duplicates(frame)
    assert expected_dups > 100  # the fixture does hold duplicates, across batch boundaries too
    assert got.rows == frame.height
    assert (got.lo, got.hi) == (frame["timestamp"].min(), frame["timestamp"].max())
    assert got.unsorted == 0
    assert got.duplicates == expected_dups
    written = pl.read_parquet(out)
    assert written.columns == ["request_id", *frame.columns]
    assert written["request_id"].dtype == pl.Int64
    assert written["request_id"].to_list() == list(range(frame.height))
    assert written.drop("request_id").equals(frame)


def test_unsorted_rows_are_counted(tmp_path, rng):
    frame = _table(rng, 2_000, sort=False)
    con = duckdb.connect(config={"preserve_insertion_order": True})
    con.register("src", frame.to_arrow())
    got = write_numbered(con, "SELECT * FROM src", tmp_path / "n.parquet", batch_rows=64)
    t = frame["timestamp"].to_numpy()
    assert got.unsorted == int(np.sum(t[1:] < t[:-1])) > 0
    assert pl.read_parquet(tmp_path / "n.parquet").drop("request_id").equals(frame)  # file order kept


def test_empty_result(tmp_path):
    con = duckdb.connect()
    got = write_numbered(con, "SELECT 1.0 AS timestamp WHERE false", tmp_path / "n.parquet")
    assert (got.rows, got.lo, got.hi, got.unsorted, got.duplicates) == (0, None, None, 0, 0)


def test_error_in_the_middle_of_the_stream(tmp_path):
    con = duckdb.connect(config={"preserve_insertion_order": True})
    sql = ("SELECT range::DOUBLE AS timestamp FROM range(50000) "
           "WHERE CASE WHEN range < 40000 THEN true ELSE error('stop-here') END")
    with pytest.raises(StreamQueryError, match="stop-here"):
        write_numbered(con, sql, tmp_path / "n.parquet", batch_rows=1000)


# --- the fast path of ingest, which streams through write_numbered ---------------------------

HEADER = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"


def _csv(path, rng, n):
    t = np.sort(rng.integers(0, n // 5, n))
    model = rng.choice(["ChatGPT", "GPT-4"], n)
    tokens = rng.integers(1, 3, n)
    path.write_text(HEADER + "".join(f"{t[k]},{model[k]},{tokens[k]},1,{tokens[k] + 1},API log\n"
                                     for k in range(n)))
    return path


def _spy_fast_path(monkeypatch):
    used = []
    real = core._run_fast

    def spy(*args, **kwargs):
        result = real(*args, **kwargs)
        used.append(result is not None)
        return result

    monkeypatch.setattr(core, "_run_fast", spy)
    return used


def test_fast_path_duplicates_across_batches_equal_general_path(tmp_path, rng, monkeypatch):
    path = _csv(tmp_path / "d.csv", rng, 2_000)
    monkeypatch.setattr(numbering, "DEFAULT_BATCH_ROWS", 13)
    used = _spy_fast_path(monkeypatch)
    fast = ingest(path, output=tmp_path / "fast")
    assert used == [True]
    monkeypatch.setattr(core, "_fast_path_applies", lambda *a: False)
    slow = ingest(path, output=tmp_path / "slow")
    assert fast.to_polars().equals(slow.to_polars())
    assert fast.manifest["rows"] == slow.manifest["rows"]
    stored = fast.to_polars().drop("request_id")
    assert fast.manifest["rows"]["duplicates"] == _independent_duplicates(stored) > 100


def test_late_sql_reject_falls_back_and_leaves_no_partial_file(tmp_path, rng, monkeypatch):
    path = _csv(tmp_path / "late.csv", rng, 3_000)
    lines = path.read_text().splitlines(keepends=True)
    fields = lines[2_900].split(",")
    fields[2] = "-4"  # negative request tokens on line 2,901, many batches into the stream
    lines[2_900] = ",".join(fields)
    path.write_text("".join(lines))
    monkeypatch.setattr(numbering, "DEFAULT_BATCH_ROWS", 100)
    used = _spy_fast_path(monkeypatch)
    store = ingest(path, output=tmp_path / "s")
    assert used == [False]  # the stream stopped at the bad row; the general path did the work
    assert store.manifest["rows"]["rejected"] == {"negative_input_tokens": 1}
    assert store.query("SELECT row FROM rejected")["row"].to_list() == [2_901]
    assert store.n_requests == 2_999
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["manifest.json", "rejected.parquet",
                                                                "requests.parquet"]


# --- wall-clock times: the origin is the first row of a sorted file --------------------------

def _both_paths(path, tmp_path, monkeypatch, **kwargs):
    used = _spy_fast_path(monkeypatch)
    fast = ingest(path, output=tmp_path / "fast", **kwargs)
    monkeypatch.setattr(core, "_fast_path_applies", lambda *a: False)
    slow = ingest(path, output=tmp_path / "slow", **kwargs)
    return used, fast, slow


def _same_store(fast, slow):
    assert fast.to_polars().equals(slow.to_polars())
    for key in ("rows", "span_s", "origin", "columns", "sources", "format"):
        assert fast.manifest[key] == slow.manifest[key], key


def test_azure_datetimes_take_the_fast_path(tmp_path, monkeypatch, raw_traces):
    used, fast, slow = _both_paths(raw_traces / "azure_2023" / "AzureLLMInferenceTrace_code.csv",
                                   tmp_path, monkeypatch)
    assert used == [True]
    _same_store(fast, slow)
    assert fast.n_requests == 8_819 and fast.to_polars()["timestamp"][0] == 0.0


def test_datetime_with_zone_and_format_takes_the_fast_path(tmp_path, monkeypatch):
    from tests.analysis.test_ingest_formats import DATA

    used, fast, slow = _both_paths(DATA / "generic.csv", tmp_path, monkeypatch, column_map=DATA / "generic.toml")
    assert used == [True]
    _same_store(fast, slow)
    assert fast.timezone == "Asia/Shanghai"


def test_epoch_csv_takes_the_fast_path(tmp_path, monkeypatch):
    path = tmp_path / "epoch.csv"
    path.write_text("t_ms,user,inp,out\n1700000000000,u1,10,1\n1700000000500,u2,20,2\n"
                    "1700000000500,u2,20,2\n1700000002000,u1,30,3\n")
    cmap = {"time": {"column": "t_ms", "unit": "ms", "epoch": True},
            "columns": {"client_id": "user", "input_tokens": "inp", "output_tokens": "out"}}
    used, fast, slow = _both_paths(path, tmp_path, monkeypatch, column_map=cmap)
    assert used == [True]
    _same_store(fast, slow)
    assert fast.to_polars()["timestamp"].to_list() == [0.0, 0.5, 0.5, 2.0]
    assert fast.manifest["rows"]["duplicates"] == 1


def test_unsorted_datetimes_fall_back_and_take_the_earliest_origin(tmp_path, monkeypatch):
    path = tmp_path / "az.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                    "2023-11-16 18:17:05.0000000,10,1\n"
                    "2023-11-16 18:17:03.5000000,20,2\n"  # earlier than the first row
                    "2023-11-16 18:17:07.0000000,30,3\n")
    used, fast, slow = _both_paths(path, tmp_path, monkeypatch)
    assert used == [False]
    _same_store(fast, slow)
    got = fast.to_polars()
    assert got["timestamp"].to_list() == [0.0, 1.5, 3.5] and got["input_tokens"].to_list() == [20, 10, 30]
    assert fast.origin.isoformat() == "2023-11-16T18:17:03.500000+00:00"
    assert fast.manifest["rows"]["unsorted"] == 1
    assert sorted(p.name for p in (tmp_path / "fast").iterdir()) == ["manifest.json", "rejected.parquet",
                                                                   "requests.parquet"]
