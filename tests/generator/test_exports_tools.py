"""Replay-tool exports (aiperf, vllm, guidellm): schema, exact values, and the AIPerf round trip."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _genpools import make_pool
from servelab.analysis.exceptions import TraceFormatError
from servelab.generator.exceptions import ExportFormatError
from servelab.generator.export_tools import synthetic_prompts
from servelab.generator.exports import export_workload, mooncake_hash_ids, workload_hash_ids
from servelab.generator.generate import generate

ingest_mod = pytest.importorskip("servelab.analysis.ingest")


@pytest.fixture(scope="module")
def workload() -> pl.DataFrame:
    conv = pl.DataFrame({
        "client_id": [None] * 5, "quantity": ["turns"] * 3 + ["itt_s"] * 2,
        "value": [1.0, 2.0, 4.0, 15.0, 40.0], "probability": [0.4, 0.3, 0.3, 0.5, 0.5],
    }, schema_overrides={"client_id": pl.String})
    pmf = {"input_tokens": ([30, 700, 1600], [0.3, 0.4, 0.3]), "output_tokens": ([0, 80, 600], [0.1, 0.6, 0.3])}
    pool = make_pool({"a": [0.5] * 2, "b": [0.3] * 2}, pmfs={"a": pmf, "b": pmf}, conversations=conv)
    w = generate(pool, 1.0, 1200, seed=5)
    assert (w["turn"] > 1).sum() > 50 and w["conversation_id"].n_unique() > 100
    return w


def _rows(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_aiperf_rows_follow_the_multi_turn_schema(workload, tmp_path):
    rows = _rows(export_workload(workload, tmp_path / "w.jsonl", fmt="aiperf"))
    assert len(rows) == workload.height
    assert {tuple(sorted(r)) for r in rows} == {
        ("delay", "failed", "hash_ids", "input_length", "output_length", "session_id", "timestamp")}
    # independent reference: walk each session in file order
    by_id = {cid: grp.sort("timestamp") for (cid,), grp in workload.group_by("conversation_id")}
    seen: dict[str, int] = {}
    for r in rows:
        k = seen.get(r["session_id"], 0)
        expect = by_id[r["session_id"]].row(k, named=True)
        assert r["input_length"] == expect["input_tokens"]
        # AIPerf needs output_length >= 1: a failure is a 1-token request marked failed
        assert r["failed"] == (expect["output_tokens"] == 0)
        assert r["output_length"] == (1 if r["failed"] else expect["output_tokens"])
        if k == 0:
            assert r["delay"] is None and r["timestamp"] == pytest.approx(expect["timestamp"] * 1e3, abs=6e-4)
        else:
            gap = (expect["timestamp"] - by_id[r["session_id"]]["timestamp"][k - 1]) * 1e3
            assert r["timestamp"] is None and r["delay"] == pytest.approx(gap, abs=6e-4)
        assert len(r["hash_ids"]) == -(-expect["input_tokens"] // 512)
        seen[r["session_id"]] = k + 1
    # sessions come in the order of their first request, each session's rows together
    starts = [r["timestamp"] for r in rows if r["timestamp"] is not None]
    assert starts == sorted(starts)
    blocks = [k for i, k in enumerate(r["session_id"] for r in rows) if i == 0 or rows[i - 1]["session_id"] != k]
    assert len(blocks) == len(set(blocks)) == workload["conversation_id"].n_unique()


def test_aiperf_export_ingests_back_to_the_same_requests(workload, tmp_path):
    path = export_workload(workload, tmp_path / "w.jsonl", fmt="aiperf")
    assert ingest_mod.sniff_format(path) == "aiperf"
    store = ingest_mod.ingest(path, output=tmp_path / "store")
    assert store.manifest["format"] == "aiperf"
    assert store.manifest["rows"]["stored"] == store.manifest["rows"]["read"] == workload.height
    got = store.to_polars()
    # ms with 3 decimals (1 us) and sums of delays: 1 us per turn at most
    np.testing.assert_allclose(got["timestamp"].to_numpy(), workload["timestamp"].to_numpy(), rtol=0, atol=5e-6)
    for c in ("input_tokens", "output_tokens", "conversation_id"):
        assert got[c].to_list() == workload[c].to_list(), c
    assert got["failed"].to_list() == (workload["output_tokens"] == 0).to_list()
    assert got["failed"].sum() > 10
    # turn = rank in the session; the generator's turn numbers may start above 1 (cropped)
    rank = workload.select(pl.int_range(1, pl.len() + 1).over("conversation_id"))["literal"]
    assert got["turn"].to_list() == rank.to_list()
    assert got["prefix_blocks"].to_list() == mooncake_hash_ids(workload).to_list()


def test_aiperf_ingest_reads_a_handwritten_trace(tmp_path):
    # AIPerf's documented multi-turn example plus a lone request, sessions interleaved in time
    lines = [
        {"session_id": "abc", "timestamp": 1000, "input_length": 300, "output_length": 40, "hash_ids": [1]},
        {"session_id": "abc", "delay": 2500, "input_length": 150, "output_length": 20},
        {"session_id": "xyz", "timestamp": 1500, "input_length": 10, "output_length": 1},
        {"session_id": "abc", "delay": 1000, "input_length": 700, "output_length": 5},
        {"session_id": None, "timestamp": 4200.5, "delay": None, "input_length": 3, "output_length": 3},
    ]
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps({"timestamp": None, "delay": None, **r}) for r in lines) + "\n")
    got = ingest_mod.ingest(path, fmt="aiperf", output=tmp_path / "s").to_polars()
    assert got["timestamp"].to_list() == [1.0, 1.5, 3.5, 4.2005, 4.5]
    assert got["conversation_id"].to_list() == ["abc", "xyz", "abc", None, "abc"]
    assert got["turn"].to_list() == [1, 1, 2, None, 3]
    assert got["input_tokens"].to_list() == [300, 10, 150, 3, 700]


def test_aiperf_session_without_a_first_timestamp_is_rejected(tmp_path):
    path = tmp_path / "t.jsonl"
    rows = [{"session_id": "a", "timestamp": 5, "delay": None, "input_length": 1, "output_length": 1},
            {"session_id": "b", "timestamp": None, "delay": 10, "input_length": 1, "output_length": 1}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    store = ingest_mod.ingest(path, fmt="aiperf", output=tmp_path / "s")
    assert store.manifest["rows"]["stored"] == 1
    assert store.manifest["rows"]["rejected"] == {"missing_timestamp": 1}


def test_aiperf_ingest_names_a_key_missing_from_the_first_line(tmp_path):
    path = tmp_path / "t.jsonl"
    rows = [{"session_id": "a", "timestamp": 5, "input_length": 1, "output_length": 1},
            {"session_id": "a", "delay": 10, "input_length": 1, "output_length": 1}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    # the core suggests another format when one matches (here mooncake, which ignores sessions)
    with pytest.raises(TraceFormatError, match="required column 'delay' is missing"):
        ingest_mod.ingest(path, fmt="aiperf", output=tmp_path / "s")


def test_vllm_and_guidellm_prompts_carry_lengths_and_shared_prefixes(workload, tmp_path):
    vllm = _rows(export_workload(workload, tmp_path / "v.jsonl", fmt="vllm"))
    guide = _rows(export_workload(workload, tmp_path / "g.jsonl", fmt="guidellm"))
    assert {tuple(sorted(r)) for r in vllm} == {("output_tokens", "prompt")}
    assert {tuple(sorted(r)) for r in guide} == {
        ("output_tokens_count", "prompt", "prompt_tokens_count", "relative_timestamp")}
    t = workload["timestamp"].to_numpy()
    np.testing.assert_allclose([r["relative_timestamp"] for r in guide], t - t[0], rtol=0, atol=1e-12)
    words = [len(r["prompt"].split()) for r in vllm]
    assert words == workload["input_tokens"].to_list()
    assert [r["output_tokens"] for r in vllm] == workload["output_tokens"].to_list()
    assert [r["prompt_tokens_count"] for r in guide] == workload["input_tokens"].to_list()
    assert [r["output_tokens_count"] for r in guide] == workload["output_tokens"].to_list()
    assert [r["prompt"] for r in guide] == [r["prompt"] for r in vllm]
    # a follow-up and its parent share exactly the words of their common leading hash_ids
    ids = mooncake_hash_ids(workload).to_list()
    checked = 0
    for i, parent in enumerate(workload["parent_id"].to_list()):
        if parent is None:
            continue
        j = int(parent)
        common = next((k for k, (a, b) in enumerate(zip(ids[i], ids[j])) if a != b), min(len(ids[i]), len(ids[j])))
        wi, wj = vllm[i]["prompt"].split(), vllm[j]["prompt"].split()
        assert wi[: 512 * common] == wj[: 512 * common]
        if common < min(len(ids[i]), len(ids[j])):
            assert wi[512 * common] != wj[512 * common]
        checked += common > 0
    assert checked > 20


def test_sglang_conversations_carry_prompt_and_output_lengths(workload, tmp_path):
    rows = _rows(export_workload(workload, tmp_path / "s.jsonl", fmt="sglang"))
    vllm = _rows(export_workload(workload, tmp_path / "v.jsonl", fmt="vllm"))
    assert {tuple(r) for r in rows} == {("conversations",)}
    assert [[m["role"] for m in r["conversations"]] for r in rows] == [["user", "assistant"]] * len(rows)
    assert [r["conversations"][0]["content"] for r in rows] == [r["prompt"] for r in vllm]
    assert [len(r["conversations"][1]["content"].split()) for r in rows] == workload["output_tokens"].to_list()


def test_synthetic_prompts_share_text_exactly_along_block_ids():
    prompts = synthetic_prompts(pl.Series([5, 7, 3, 0]), pl.Series([[1, 2], [1, 2, 9], [3], []]), block_tokens=3)
    assert prompts.to_list() == ["<1> a a <2> a", "<1> a a <2> a a <9>", "<3> a a", ""]


def test_synthetic_prompts_need_one_id_per_block():
    with pytest.raises(ExportFormatError, match=r"ceil\(input_tokens / block_tokens\).*block_tokens=3\); got 1 requests"):
        synthetic_prompts(pl.Series([5, 7]), pl.Series([[1, 2], [1]]), block_tokens=3)


def test_workload_prefix_blocks_are_kept_and_derived_ids_do_not_collide(workload):
    w = workload.head(6).with_columns(pl.Series("prefix_blocks", [[7, 8], None, [7], None, None, [100]],
                                                dtype=pl.List(pl.Int64)))
    got = workload_hash_ids(w).to_list()
    derived = mooncake_hash_ids(w).to_list()
    for i, given in enumerate(w["prefix_blocks"].to_list()):
        assert got[i] == (given if given is not None else [x + 101 for x in derived[i]])
    assert workload_hash_ids(workload).to_list() == mooncake_hash_ids(workload).to_list()


def test_mooncake_export_writes_failures_as_one_token_requests(workload, tmp_path):
    w = workload.head(200).with_columns(pl.Series("failed", [i % 7 == 3 for i in range(200)]))
    rows = _rows(export_workload(w, tmp_path / "m.jsonl", fmt="mooncake"))
    fail = (w["failed"] | (w["output_tokens"] == 0)).to_list()
    # both kinds of failure are present: the flag, and 0 output tokens without it
    assert w["failed"].any() and ((w["output_tokens"] == 0) & ~w["failed"]).any()
    assert [r["output_length"] for r in rows] == [1 if f else o for f, o in zip(fail, w["output_tokens"])]


def test_mooncake_export_writes_given_prefix_blocks(workload, tmp_path):
    w = workload.head(3).with_columns(pl.Series("prefix_blocks", [[4, 5, 6], [4], [4, 9]], dtype=pl.List(pl.Int64)))
    rows = _rows(export_workload(w, tmp_path / "m.jsonl", fmt="mooncake"))
    assert [r["hash_ids"] for r in rows] == [[4, 5, 6], [4], [4, 9]]


def test_jsonl_carries_failures_and_multimodal_counts(workload, tmp_path):
    w = workload.with_columns((pl.col("output_tokens") == 0).alias("failed"),
                              (pl.col("input_tokens") % 3).alias("image_count"))
    rows = pl.read_ndjson(export_workload(w, tmp_path / "j.jsonl", fmt="jsonl"))
    assert rows.columns[-2:] == ["failed", "image_count"]
    assert rows["failed"].to_list() == w["failed"].to_list() and rows["failed"].sum() > 0
    assert rows["image_count"].to_list() == w["image_count"].to_list()
