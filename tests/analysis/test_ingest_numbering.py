"""The streamed, numbered write of the ingest fast path (analysis/ingest/numbering.py).

Its summary (rows, span, unsorted rows, exact duplicates) is checked against independent
computations (Python sets and numpy on the same values), with small Arrow batches so that tied
timestamps and duplicate rows straddle batch boundaries; the fast path that uses it must give the
general path's store and manifest.
"""
import threading
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from servelab.analysis import ingest
from servelab.analysis.ingest import fast_path, numbering
from servelab.analysis.ingest.numbering import StoreWriteError, StreamQueryError, write_numbered


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


# each Arrow batch costs Python work (the tally, a hash of its last row): one-row batches take
# 200 rows (200 batch boundaries, every one inside a run of tied timestamps), seven-row batches
# 800 (114 boundaries); the larger batches keep 3,000 rows. Each size still has duplicates
# straddling boundaries (lighter since the row-count guard's tests were added, issue 18)
@pytest.mark.parametrize(("batch_rows", "n"), [(1, 200), (7, 800), (97, 3_000), (10_000, 3_000)])
def test_summary_matches_independent_counts(tmp_path, rng, batch_rows, n):
    frame = _table(rng, n, sort=True)
    con = duckdb.connect(config={"preserve_insertion_order": True})
    con.register("src", frame.to_arrow())
    out = tmp_path / "n.parquet"
    got = write_numbered(con, "SELECT * FROM src", out, batch_rows=batch_rows)
    expected_dups = _independent_duplicates(frame)
    assert expected_dups > n // 20  # the fixture does hold duplicates, across batch boundaries too
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


def test_several_queries_are_numbered_on(tmp_path, rng):
    a, b = _table(rng, 1_000, sort=True), _table(rng, 700, sort=True)
    b = b.with_columns(pl.col("timestamp") + 50.0)  # starts before a ends: one boundary row is unsorted
    con = duckdb.connect(config={"preserve_insertion_order": True})
    con.register("a", a.to_arrow())
    con.register("b", b.to_arrow())
    got = write_numbered(con, ["SELECT * FROM a", "SELECT * FROM b"], tmp_path / "n.parquet", batch_rows=33)
    both = pl.concat([a, b])
    assert pl.read_parquet(tmp_path / "n.parquet").drop("request_id").equals(both)
    assert [(p.rows, p.lo, p.hi, p.unsorted) for p in got.parts] == [
        (f.height, f["timestamp"].min(), f["timestamp"].max(), 0) for f in (a, b)]
    t = both["timestamp"].to_numpy()
    assert got.unsorted == int(np.sum(t[1:] < t[:-1])) == 1
    assert (got.rows, got.lo, got.hi) == (1_700, both["timestamp"].min(), both["timestamp"].max())
    with pytest.raises(ValueError, match="query 1 has columns"):
        write_numbered(con, ["SELECT * FROM a", "SELECT timestamp FROM b"], tmp_path / "x.parquet")


def test_list_columns_count_in_duplicates(tmp_path):
    """prefix_blocks lists take part in row equality: equal lists are duplicates, [] is not null."""
    frame = pl.DataFrame({"timestamp": [1.0] * 6,
                          "blocks": [[1, 2], [1, 2], [12], [], None, None]},
                         schema={"timestamp": pl.Float64, "blocks": pl.List(pl.Int64)})
    con = duckdb.connect(config={"preserve_insertion_order": True})
    con.register("src", frame.to_arrow())
    got = write_numbered(con, "SELECT * FROM src", tmp_path / "n.parquet", batch_rows=4)
    assert got.duplicates == 2  # the second [1, 2] and the second null


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
    assert not (tmp_path / "n.parquet").exists()


def test_a_late_write_of_a_failed_sink_cannot_clobber_the_next_file(tmp_path, monkeypatch):
    """The root cause of issue 18's flaky loss: polars may write a failed sink's file after
    sink_parquet raised (measured: up to 18 ms later). The fast path fails on a rejected row, the
    general path then writes the same ``requests.parquet``; a late empty write must not replace it."""
    late = []

    def failing_then_late(frame, path, compression):
        def write_late():
            try:
                pl.DataFrame({"request_id": [], "timestamp": []},
                             schema={"request_id": pl.Int64, "timestamp": pl.Float64}).write_parquet(path)
                late.append("landed")
            except OSError:
                late.append("refused")
        timer = threading.Timer(0.05, write_late)
        timer.start()
        late.append(timer)
        frame.sink_parquet(path, compression=compression)  # raises: the query stops

    con = duckdb.connect(config={"preserve_insertion_order": True})
    out = tmp_path / "requests.parquet"
    with monkeypatch.context() as m:
        m.setattr(numbering, "_sink", failing_then_late)
        with pytest.raises(StreamQueryError, match="rejected-row"):
            write_numbered(con, "SELECT range::DOUBLE AS timestamp FROM range(5) "
                                "WHERE CASE WHEN range > 2 THEN error('rejected-row') ELSE true END", out)
    got = write_numbered(con, "SELECT 0.25::DOUBLE AS timestamp", out)
    late[0].join()
    assert late[1] == "refused"  # the late write found no folder to write into
    assert got.rows == 1 and pl.read_parquet(out)["timestamp"].to_list() == [0.25]


# --- the row-count guard: a short streamed write is written again, or raises ------------------

def _short_sink(frame, path, compression):
    """The streamed write, one row short (the data loss seen once under load)."""
    rows = frame.collect()
    rows.head(rows.height - 1).write_parquet(path, compression=compression)


def test_a_short_streamed_write_is_written_again(tmp_path, rng, monkeypatch):
    frame = _table(rng, 300, sort=True)
    con = duckdb.connect(config={"preserve_insertion_order": True})
    con.register("src", frame.to_arrow())
    monkeypatch.setattr(numbering, "_sink", _short_sink)
    rewrites = []
    collected = numbering._write_collected
    monkeypatch.setattr(numbering, "_write_collected", lambda *a, **k: (rewrites.append(1), collected(*a, **k)))
    got = write_numbered(con, "SELECT * FROM src", tmp_path / "n.parquet", batch_rows=64)
    assert rewrites == [1]
    assert got.rows == 300
    written = pl.read_parquet(tmp_path / "n.parquet")
    assert written["request_id"].to_list() == list(range(300))
    assert written.drop("request_id").equals(frame)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.parquet"]


def test_a_short_write_that_stays_short_raises_and_leaves_no_file(tmp_path, rng, monkeypatch):
    frame = _table(rng, 300, sort=True)
    con = duckdb.connect(config={"preserve_insertion_order": True})
    con.register("src", frame.to_arrow())
    monkeypatch.setattr(numbering, "_sink", _short_sink)
    monkeypatch.setattr(numbering, "_write_collected",
                        lambda con, queries, path, **k: _short_sink(con.sql(queries[0]).pl().lazy(), path, "snappy"))
    with pytest.raises(StoreWriteError, match="the query gave 300 rows but the streamed file held 299"):
        write_numbered(con, "SELECT * FROM src", tmp_path / "n.parquet", batch_rows=64)
    assert list(tmp_path.iterdir()) == []


def test_ingest_never_writes_a_manifest_over_a_short_file(tmp_path, monkeypatch):
    """Through ingest: the short stream is rewritten and the store holds what the manifest says."""
    src = tmp_path / "t.csv"
    src.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                   + "".join(f"2023-11-14 22:13:{i:02d}.0000000,{i},{i + 1}\n" for i in range(20)))
    monkeypatch.setattr(numbering, "_sink", _short_sink)
    store = ingest(src, output=tmp_path / "store", progress=False)
    assert store.manifest["rows"]["stored"] == 20
    assert store.query("SELECT count(*), sum(input_tokens) FROM requests").rows() == [(20, 190)]


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
    real = fast_path.run

    def spy(*args, **kwargs):
        result = real(*args, **kwargs)
        used.append(result is not None)
        return result

    monkeypatch.setattr(fast_path, "run", spy)
    return used


def test_fast_path_duplicates_across_batches_equal_general_path(tmp_path, rng, monkeypatch):
    # 600 rows in 13-row batches: 47 batch boundaries, about 5 rows per timestamp (was 2,000 rows)
    path = _csv(tmp_path / "d.csv", rng, 600)
    monkeypatch.setattr(numbering, "DEFAULT_BATCH_ROWS", 13)
    used = _spy_fast_path(monkeypatch)
    fast = ingest(path, output=tmp_path / "fast")
    assert used == [True]
    monkeypatch.setattr(fast_path, "applies", lambda *a: False)
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
    monkeypatch.setattr(fast_path, "applies", lambda *a: False)
    slow = ingest(path, output=tmp_path / "slow", **kwargs)
    return used, fast, slow


def _same_store(fast, slow):
    assert fast.to_polars().equals(slow.to_polars())
    for key in ("rows", "span_s", "origin", "columns", "sources", "format", "extra"):
        assert fast.manifest[key] == slow.manifest[key], key
    assert fast.query("SELECT * FROM rejected").equals(slow.query("SELECT * FROM rejected"))


def test_azure_datetimes_take_the_fast_path(tmp_path, monkeypatch, raw_traces):
    used, fast, slow = _both_paths(raw_traces / "azure_2023" / "AzureLLMInferenceTrace_code.csv",
                                   tmp_path, monkeypatch)
    assert used == [True]
    _same_store(fast, slow)
    assert fast.n_requests == 8_819 and fast.to_polars()["timestamp"][0] == 0.0


def test_datetime_with_zone_and_format_takes_the_fast_path(tmp_path, monkeypatch):
    DATA = Path(__file__).resolve().parents[1] / "data" / "ingest"  # found from this file, so that the suite collects from any directory

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


# --- several CSV files: streamed one after the other -------------------------------------------

V1 = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
V2 = "Timestamp,Session ID,Elapsed time,Model,Request tokens,Response tokens,Total tokens,Log Type\n"


def _burst_files(tmp_path, second_start: int):
    one = tmp_path / "BurstGPT_1.csv"  # the 6-column v1 schema
    one.write_text(V1 + "".join(f"{t},ChatGPT,{t + 1},2,{t + 3},API log\n" for t in range(0, 40, 2))
                   + "broken,line\n")
    two = tmp_path / "BurstGPT_2.csv"  # the 8-column schema, a malformed line too
    two.write_text(V2 + "".join(f"{t},s{t % 3},1.5,GPT-4,{t},0,{t},Conversation log\n"
                                for t in range(second_start, second_start + 30))
                   + f"{second_start + 30},s1,1.5,GPT-4,5,1,6,Conversation log\n" * 2
                   + "1,2,3\n")
    return [one, two]


@pytest.mark.parametrize("second_start", [100, 20], ids=["in-order", "overlapping"])
def test_several_burstgpt_files_take_the_fast_path(tmp_path, monkeypatch, second_start):
    files = _burst_files(tmp_path, second_start)
    used, fast, slow = _both_paths(files, tmp_path, monkeypatch)
    assert used == [True]
    _same_store(fast, slow)
    got = fast.to_polars()
    assert fast.n_requests == 20 + 32 and got["request_id"].to_list() == list(range(52))
    assert np.all(np.diff(got["timestamp"].to_numpy()) >= 0)
    assert got.filter(pl.col("model") == "ChatGPT")["conversation_id"].null_count() == 20  # v1 has no sessions
    m = fast.manifest
    assert m["rows"]["duplicates"] == 1 and m["rows"]["rejected"] == {"malformed_line": 2}
    assert [s["rows_read"] for s in m["sources"]] == [21, 33]
    assert ("overlap" in m["extra"]["ingest"]["unsorted"]) == (second_start == 20)


def _azure(path, stamps):
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                    + "".join(f"2023-11-16 18:{m:02d}:00.0000000,{m},1\n" for m in stamps))
    return path


@pytest.mark.parametrize("order", ["in-order", "reversed"])
def test_several_wall_clock_files(tmp_path, monkeypatch, order):
    early, late = _azure(tmp_path / "a.csv", [0, 1, 2]), _azure(tmp_path / "b.csv", [10, 11])
    files = [early, late] if order == "in-order" else [late, early]
    used, fast, slow = _both_paths(files, tmp_path, monkeypatch)
    assert used == [order == "in-order"]  # reversed: the first row is not the origin; the general path runs
    _same_store(fast, slow)
    assert fast.origin.isoformat() == "2023-11-16T18:00:00+00:00"
    assert fast.to_polars()["timestamp"].to_list() == [0.0, 60.0, 120.0, 600.0, 660.0]


# --- JSONL: DuckDB's read_json, streamed; a bad line hands the file to the general path ------

def test_mooncake_jsonl_takes_the_fast_path(tmp_path, monkeypatch, raw_traces):
    used, fast, slow = _both_paths(raw_traces / "mooncake" / "synthetic_trace.jsonl", tmp_path, monkeypatch)
    assert used == [True]
    _same_store(fast, slow)
    assert fast.n_requests == 3_993 and fast.to_polars()["prefix_blocks"].list.len().min() > 0


JSONL_MAP = {"time": {"column": "t", "unit": "s"},
             "columns": {"client_id": "who", "input_tokens": "in", "output_tokens": "out",
                         "prefix_blocks": "blocks"}}


def test_jsonl_value_kinds_equal_the_general_path(tmp_path, monkeypatch):
    """Numbers as text, floats with zero fraction, padded strings, nested extras, blank lines and
    a duplicate: read_json's VARCHAR text must check and store exactly like json_extract_string."""
    path = tmp_path / "log.jsonl"
    path.write_text(
        '{"t": 0, "who": "a", "in": 12, "out": 3, "blocks": [1, 2]}\n'
        '{"t": "1.5", "who": " b ", "in": "7", "out": 2.0, "extra": {"x": [1]}}\n'
        "\n"
        '{"t": 2, "who": "a", "in": 1e3, "out": 0, "blocks": []}\n'
        '{"t": 2, "who": "a", "in": 1e3, "out": 0, "blocks": []}\n'
        '{"t": 3, "in": 5, "out": 1, "blocks": null}\n'
    )
    used, fast, slow = _both_paths(path, tmp_path, monkeypatch, column_map=JSONL_MAP)
    assert used == [True]
    _same_store(fast, slow)
    got = fast.to_polars()
    assert got["input_tokens"].to_list() == [12, 7, 1000, 1000, 5]
    assert got["client_id"].to_list() == ["a", "b", "a", "a", None]
    assert fast.manifest["rows"]["duplicates"] == 1


@pytest.mark.parametrize("bad", ['{"t": 1, "in": true, "out": 1}',  # a boolean token count
                                 '{"t": 1, "in": 4, "out": 1',      # not JSON
                                 '[1, 4, 1]'],                      # not an object
                         ids=["bool-count", "broken-json", "array"])
def test_bad_jsonl_lines_fall_back_and_are_rejected(tmp_path, monkeypatch, bad):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"t": 0, "in": 3, "out": 1}\n' + bad + '\n{"t": 2, "in": 5, "out": 1}\n')
    cmap = {"time": {"column": "t", "unit": "s"}, "columns": {"input_tokens": "in", "output_tokens": "out"}}
    used, fast, slow = _both_paths(path, tmp_path, monkeypatch, column_map=cmap)
    assert used == [False]
    _same_store(fast, slow)
    assert fast.n_requests == 2
    assert fast.query("SELECT row FROM rejected")["row"].to_list() == [2]


# --- Parquet logs ----------------------------------------------------------------------------

PARQUET_MAP = {"time": {"column": "t_ms", "unit": "ms", "epoch": True},
               "columns": {"client_id": "user", "input_tokens": "inp", "output_tokens": "out"}}


@pytest.mark.parametrize("case", ["sorted", "unsorted", "negative-count"])
def test_parquet_logs(tmp_path, monkeypatch, case):
    t = [1_700_000_000_000, 1_700_000_000_500, 1_700_000_000_500, 1_700_000_002_000]
    inp = [10, 20, 20, 30]
    if case == "unsorted":
        t = [t[1], t[0], t[2], t[3]]
    if case == "negative-count":
        inp[3] = -1
    pl.DataFrame({"t_ms": t, "user": ["u1", "u2", "u2", "u1"], "inp": inp, "out": [1, 2, 2, 3]}).write_parquet(
        tmp_path / "log.parquet")
    used, fast, slow = _both_paths(tmp_path / "log.parquet", tmp_path, monkeypatch, column_map=PARQUET_MAP)
    assert used == [case == "sorted"]  # unsorted wall-clock rows and SQL rejects fall back
    _same_store(fast, slow)
    if case == "sorted":
        assert fast.to_polars()["timestamp"].to_list() == [0.0, 0.5, 0.5, 2.0]
        assert fast.manifest["rows"]["duplicates"] == 1
    if case == "negative-count":
        assert fast.manifest["rows"]["rejected"] == {"negative_input_tokens": 1}


def test_parquet_numbers_are_checked_like_text(tmp_path, monkeypatch):
    """Numeric Parquet columns are read as DOUBLE (not through text); the checks give the reasons
    that the text of those values gets in a CSV."""
    frame = pl.DataFrame({"t": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
                          "inp": [3.0, 2.5, float("nan"), -1.0, None, 7.0],
                          "out": pl.Series([1, 1, 1, 1, 1, 2], dtype=pl.Int32)})
    frame.write_parquet(tmp_path / "log.parquet")
    csv_path = tmp_path / "log.csv"
    csv_path.write_text("t,inp,out\n0,3,1\n1,2.5,1\n2,nan,1\n3,-1,1\n4,,1\n5,7,2\n")
    cmap = {"time": {"column": "t", "unit": "s"}, "columns": {"input_tokens": "inp", "output_tokens": "out"}}
    used, fast, slow = _both_paths(tmp_path / "log.parquet", tmp_path, monkeypatch, column_map=cmap)
    assert used == [False]
    _same_store(fast, slow)
    monkeypatch.undo()
    as_text = ingest(csv_path, output=tmp_path / "csv", column_map=cmap)
    assert fast.manifest["rows"]["rejected"] == as_text.manifest["rows"]["rejected"] == {
        "missing_input_tokens": 1, "negative_input_tokens": 1, "non_integer_input_tokens": 1,
        "non_numeric_input_tokens": 1}
    assert fast.to_polars().drop("request_id").equals(as_text.to_polars().drop("request_id"))
