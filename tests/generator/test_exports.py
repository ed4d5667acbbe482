"""Exports: every format written, ingested back with servelab's adapters, gives the same requests."""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _genpools import make_pool
from servelab.generator.exceptions import ExportFormatError
from servelab.generator.exports import (
    EXPORT_FORMATS,
    export_workload,
    mooncake_hash_ids,
)
from servelab.generator.generate import generate

ingest_mod = pytest.importorskip("servelab.analysis.ingest")


@pytest.fixture(scope="module")
def workload() -> pl.DataFrame:
    conv = pl.DataFrame({
        "client_id": [None] * 5, "quantity": ["turns"] * 3 + ["itt_s"] * 2,
        "value": [1.0, 2.0, 3.0, 15.0, 40.0], "probability": [0.5, 0.3, 0.2, 0.5, 0.5],
    }, schema_overrides={"client_id": pl.String})
    pmf = {"input_tokens": ([30, 700, 1600], [0.3, 0.4, 0.3]), "output_tokens": ([1, 80, 600], [0.2, 0.5, 0.3])}
    pool = make_pool({"a": [0.5] * 2, "b": [0.3] * 2}, pmfs={"a": pmf, "b": pmf}, conversations=conv)
    return generate(pool, 1.0, 1200, seed=21)


def _ingested(path, fmt, tmp_path, **kw) -> pl.DataFrame:
    store = ingest_mod.ingest(path, fmt=fmt, output=tmp_path / f"store_{fmt}", **kw)
    assert store.manifest["rows"]["stored"] == store.manifest["rows"]["read"]
    return store.to_polars()


def test_parquet_and_csv_round_trip(workload, tmp_path):
    back = pl.read_parquet(export_workload(workload, tmp_path / "w.parquet", fmt="parquet"))
    assert back.equals(workload)
    csv = pl.read_csv(export_workload(workload, tmp_path / "w.csv", fmt="csv"),
                      schema_overrides={"conversation_id": pl.String, "parent_id": pl.String})
    assert csv.equals(workload)


def test_burstgpt_round_trip(workload, tmp_path):
    path = export_workload(workload, tmp_path / "w.csv", fmt="burstgpt")
    header = path.read_text().splitlines()[0]
    assert header == ("Timestamp,Session ID,Elapsed time,Model,Request tokens,Response tokens,"
                      "Total tokens,Log Type")
    got = _ingested(path, "burstgpt", tmp_path)
    assert got.height == workload.height
    np.testing.assert_allclose(got["timestamp"].to_numpy(), workload["timestamp"].to_numpy(), rtol=0, atol=1e-9)
    assert (got["input_tokens"] == workload["input_tokens"]).all()
    assert (got["output_tokens"] == workload["output_tokens"]).all()
    multi = workload.with_columns((pl.len().over("conversation_id") > 1).alias("m"))["m"]
    assert ((got["service"] == "conversation") == multi).all()
    assert (got["failed"] == (workload["output_tokens"] == 0)).all()


def test_mooncake_round_trip_and_prefix_blocks(workload, tmp_path):
    path = export_workload(workload, tmp_path / "w.jsonl", fmt="mooncake")
    first = json.loads(path.read_text().splitlines()[0])
    assert set(first) == {"timestamp", "input_length", "output_length", "hash_ids"}
    got = _ingested(path, "mooncake", tmp_path)
    assert got.height == workload.height
    # timestamps are integer ms in Mooncake's format
    np.testing.assert_allclose(got["timestamp"].to_numpy(), workload["timestamp"].to_numpy(), atol=5e-4 + 1e-9)
    assert (got["input_tokens"].sort() == workload["input_tokens"].sort()).all()
    blocks = got["prefix_blocks"].list.len().to_numpy()
    assert np.array_equal(np.sort(blocks), np.sort(-(-workload["input_tokens"].to_numpy() // 512)))


def test_hash_ids_extend_the_parents_blocks(workload):
    ids = workload.with_columns(mooncake_hash_ids(workload)).with_row_index("row")
    kids = ids.filter(pl.col("parent_id").is_not_null()).with_columns(pl.col("parent_id").cast(pl.UInt32))
    pairs = kids.join(ids, left_on="parent_id", right_on="row", suffix="_p")
    assert pairs.height > 10
    for child, parent, n_in in zip(pairs["hash_ids"].to_list(), pairs["hash_ids_p"].to_list(),
                                   pairs["input_tokens_p"].to_list()):
        full = n_in // 512
        assert child[:full] == parent[:full]  # the parent's full blocks are the child's prefix
        assert len(child) >= len(parent)
        if n_in % 512:  # the parent's partial last block is its own
            assert parent[-1] not in child
    # requests of different conversations share no block
    flat = ids.select("conversation_id", "hash_ids").explode("hash_ids").unique()
    assert flat.group_by("hash_ids").len()["len"].max() == 1


def test_jsonl_round_trip_with_generic_column_map(workload, tmp_path):
    path = export_workload(workload, tmp_path / "w.jsonl", fmt="jsonl")
    rows = pl.read_ndjson(path)
    assert rows.columns == ["timestamp", "input_tokens", "output_tokens", "client_id", "conversation_id",
                            "parent_id", "turn"]
    cmap = {"source": {"kind": "jsonl"}, "time": {"column": "timestamp", "unit": "s"},
            "columns": {"input_tokens": "input_tokens", "output_tokens": "output_tokens", "client_id": "client_id"}}
    got = _ingested(path, "generic", tmp_path, column_map=cmap)
    assert got.height == workload.height
    np.testing.assert_allclose(got["timestamp"].to_numpy(), workload["timestamp"].to_numpy(), atol=1e-9)
    assert (got["client_id"] == workload["client_id"]).all()


def test_same_seed_same_file_bytes(tmp_path):
    pool = make_pool({"a": [1.0] * 2}, pmfs={"a": {"input_tokens": ([5, 900], [0.5, 0.5]),
                                                  "output_tokens": ([3], [1.0])}})
    digests = []
    for i in range(2):
        path = export_workload(generate(pool, 2.0, 600, seed=5), tmp_path / f"m{i}.jsonl", fmt="mooncake")
        digests.append(hashlib.sha256(path.read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_export_errors(workload, tmp_path):
    with pytest.raises(ExportFormatError, match="format must be one of"):
        export_workload(workload, tmp_path / "x", fmt="xml")
    with pytest.raises(ExportFormatError, match="needs columns"):
        export_workload(workload.select("timestamp"), tmp_path / "x.csv", fmt="burstgpt")
    with pytest.raises(ExportFormatError, match="needs a 'timestamp' column"):
        export_workload(workload.drop("timestamp"), tmp_path / "x.parquet", fmt="parquet")
    assert set(EXPORT_FORMATS) == {"parquet", "csv", "burstgpt", "mooncake", "jsonl", "aiperf", "vllm", "sglang", "guidellm",
                                   "bailian"}
