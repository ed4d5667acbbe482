"""Ingest of every format on the shipped real samples and the fixtures in tests/data/ingest.

Reference values are computed independently with the standard library (csv / json), never with
the code under test.
"""
import csv
import datetime as dt
import json
from pathlib import Path

import pytest

from servelab.analysis import ingest, open_store
from servelab.analysis.ingest import sniff_format

TEST_DATA = Path(__file__).resolve().parents[1] / "data"  # found from this file, so that the suite collects from any directory

DATA = TEST_DATA / "ingest"
AZURE = "azure_2023/AzureLLMInferenceTrace_code.csv"
BURST = "burstgpt/BurstGPT_1_head54.csv"
MOON = "mooncake/synthetic_trace.jsonl"


def _rows_add_up(store):
    rows = store.manifest["rows"]
    assert rows["read"] == rows["stored"] + sum(rows["rejected"].values())
    for src in store.manifest["sources"]:
        assert src["rows_read"] == src["rows_stored"] + sum(src["rows_rejected"].values())
    assert store.n_requests == rows["stored"] == store.query("SELECT count(*) AS n FROM requests")["n"][0]
    n_rej = store.query("SELECT count(*) AS n FROM rejected")["n"][0]
    assert n_rej == sum(rows["rejected"].values())


def _sorted_and_numbered(store):
    out = store.query("SELECT request_id, timestamp FROM requests ORDER BY request_id")
    assert out["request_id"].to_list() == list(range(out.height))
    ts = out["timestamp"].to_list()
    assert all(b >= a for a, b in zip(ts, ts[1:]))


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("raw:" + AZURE, "azure"),
        ("raw:" + BURST, "burstgpt"),
        ("raw:" + MOON, "mooncake"),
        ("burstgpt_8col.csv", "burstgpt"),
        ("bailian.jsonl", "bailian"),
        ("generic.csv", None),
    ],
)
def test_sniff_format(path, expected, raw_traces):
    full = raw_traces / path[4:] if path.startswith("raw:") else DATA / path
    assert sniff_format(full) == expected


def test_azure_sample(raw_traces, tmp_path):
    path = raw_traces / AZURE
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    store = ingest(path, output=tmp_path / "s")
    _rows_add_up(store)
    _sorted_and_numbered(store)
    assert store.n_requests == len(rows) == 8819
    assert store.manifest["format"] == "azure" and store.manifest["sources"][0]["sniffed"] is True
    # origin: the first TIMESTAMP, UTC as published (7 digits -> microseconds)
    first = rows[0]["TIMESTAMP"]
    assert store.origin == dt.datetime.strptime(first[:26], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=dt.timezone.utc)
    assert store.timezone == "UTC"
    last = dt.datetime.strptime(rows[-1]["TIMESTAMP"][:26], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=dt.timezone.utc)
    span = store.query("SELECT max(timestamp) AS t FROM requests")["t"][0]
    assert span == pytest.approx((last - store.origin).total_seconds(), abs=1e-6)
    got = store.query("SELECT sum(input_tokens) AS i, sum(output_tokens) AS o FROM requests").to_dicts()[0]
    assert got == {"i": sum(int(r["ContextTokens"]) for r in rows), "o": sum(int(r["GeneratedTokens"]) for r in rows)}
    assert store.columns == ("request_id", "timestamp", "input_tokens", "output_tokens")
    sha = store.manifest["sources"][0]["sha256"]
    import hashlib

    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()


def test_burstgpt_v1_sample(raw_traces, tmp_path):
    path = raw_traces / BURST
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    store = ingest(path, output=tmp_path / "s", fmt="burstgpt")
    _rows_add_up(store)
    _sorted_and_numbered(store)
    assert store.origin is None and "unknown" in store.manifest["extra"]["ingest"]["origin_note"]
    got = store.to_polars()
    assert got["timestamp"].to_list() == sorted(float(r["Timestamp"]) for r in rows)
    assert got["failed"].sum() == sum(r["Response tokens"] == "0" for r in rows)
    want_service = {"conversation": sum(r["Log Type"] == "Conversation log" for r in rows),
                    "api": sum(r["Log Type"] == "API log" for r in rows)}
    assert dict(zip(*got["service"].value_counts(sort=True).to_dict(as_series=False).values())) == want_service
    assert "conversation_id" not in store.columns and "latency_s" not in store.columns


def test_burstgpt_8col_fixture(tmp_path):
    path = DATA / "burstgpt_8col.csv"
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    store = ingest(path, output=tmp_path / "s")
    _rows_add_up(store)
    got = store.to_polars()
    assert got["conversation_id"].to_list() == [r["Session ID"] or None for r in rows]
    assert got["latency_s"].to_list() == [float(r["Elapsed time"]) for r in rows]
    assert got["failed"].to_list() == [r["Response tokens"] == "0" for r in rows]
    assert got["model"].to_list() == [r["Model"] for r in rows]


def test_several_files_into_one_store(raw_traces, tmp_path):
    # v1 (6 columns) and the 8-column schema together: columns read by name, union of columns
    v1, v8 = raw_traces / BURST, DATA / "burstgpt_8col.csv"
    store = ingest([v1, v8], output=tmp_path / "s")
    _rows_add_up(store)
    _sorted_and_numbered(store)
    assert store.n_requests == 54 + 8
    assert [s["rows_stored"] for s in store.manifest["sources"]] == [54, 8]
    assert "conversation_id" in store.columns
    n_conv = store.query("SELECT count(conversation_id) AS n FROM requests")["n"][0]
    assert n_conv == 4  # only the 8-column file has Session IDs


def test_glob_source(tmp_path):
    for i in range(3):
        (tmp_path / f"part_{i}.csv").write_text(
            "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
            f"{i * 10 + 1},ChatGPT,{i + 1},2,3,API log\n{i * 10 + 2},GPT-4,5,0,5,API log\n"
        )
    store = ingest(str(tmp_path / "part_*.csv"), output=tmp_path / "s")
    assert store.n_requests == 6 and len(store.manifest["sources"]) == 3
    assert store.query("SELECT sum(failed::INT) AS f FROM requests")["f"][0] == 3


def test_mooncake_sample(raw_traces, tmp_path):
    path = raw_traces / MOON
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    store = ingest(path, output=tmp_path / "s")
    _rows_add_up(store)
    got = store.to_polars()
    assert store.manifest["format"] == "mooncake"
    assert got["timestamp"].to_list() == [r["timestamp"] / 1000 for r in records]
    assert got["prefix_blocks"].to_list() == [r["hash_ids"] for r in records]
    assert got["input_tokens"].to_list() == [r["input_length"] for r in records]


def test_bailian_fixture_links_conversations(tmp_path):
    store = ingest(DATA / "bailian.jsonl", output=tmp_path / "s")
    _rows_add_up(store)
    got = store.to_polars()
    # chain 101 -> 103 -> 104 and 102 -> 106; 105's parent (999) is outside the trace
    assert got["conversation_id"].to_list() == ["101", "102", "101", "101", "105", "102"]
    assert got["parent_id"].to_list() == [None, None, "101", "103", "999", "102"]
    assert got["turn"].to_list() == [1, 1, 2, 3, 4, 2]
    assert got["service"].to_list() == ["text", "search", "text", "text", "image", "search"]
    assert got["prefix_blocks"][3].to_list() == [1, 2, 3, 4]


def test_generic_with_column_map(tmp_path):
    store = ingest(DATA / "generic.csv", output=tmp_path / "s", column_map=DATA / "generic.toml")
    _rows_add_up(store)
    assert store.manifest["format"] == "generic"
    with open(DATA / "generic.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    # times are Asia/Shanghai wall clock: the origin keeps the zone, offsets are differences
    assert store.origin == dt.datetime(2024, 3, 10, 9, 0, 0, 250000,
                                       tzinfo=dt.timezone(dt.timedelta(hours=8)))
    assert store.timezone == "Asia/Shanghai"
    got = store.to_polars()
    assert got["timestamp"].to_list() == [0.0, 0.75, 3.25, 6.75, 59.75]
    assert got["client_id"].to_list() == [r["api_key"] for r in rows]
    assert got["reason_tokens"].to_list() == [int(r["reasoning_tokens"]) if r["reasoning_tokens"] else None for r in rows]
    assert set(got["service"]) == {"api"}


def test_generic_epoch_numbers_and_parquet(tmp_path):
    import polars as pl

    frame = pl.DataFrame({"t_ms": [1_700_000_000_000, 1_700_000_000_500, 1_700_000_002_000],
                          "user": ["u1", "u2", "u1"], "inp": [10, 20, 30], "out": [1, 2, 3]})
    frame.write_parquet(tmp_path / "log.parquet")
    cmap = {"time": {"column": "t_ms", "unit": "ms", "epoch": True},
            "columns": {"client_id": "user", "input_tokens": "inp", "output_tokens": "out"}}
    store = ingest(tmp_path / "log.parquet", output=tmp_path / "s", column_map=cmap)
    _rows_add_up(store)
    assert store.to_polars()["timestamp"].to_list() == [0.0, 0.5, 2.0]
    assert store.origin == dt.datetime.fromtimestamp(1_700_000_000, tz=dt.timezone.utc)


def test_store_reopens(tmp_path, raw_traces):
    ingest(raw_traces / BURST, output=tmp_path / "s")
    assert open_store(tmp_path / "s").n_requests == 54


def test_gzipped_csv(tmp_path, raw_traces):
    import gzip

    src = raw_traces / BURST
    gz = tmp_path / "head.csv.gz"
    gz.write_bytes(gzip.compress(src.read_bytes()))
    store = ingest(gz, output=tmp_path / "s")
    _rows_add_up(store)
    assert store.manifest["format"] == "burstgpt" and store.n_requests == 54
