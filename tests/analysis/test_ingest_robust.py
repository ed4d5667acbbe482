"""Issue 18, ingest side: non-finite timestamps and non-integer block ids rejected, manifests
strict JSON, only servelab stores overwritten, odd targets refused, one ingest per store at a time,
byte-order marks stripped. Every case is built in ``tmp_path``; ``read = stored + rejected`` holds."""
import json
import math

import pytest

from servelab.analysis import ingest


def _check(store, *, read, stored, rejected):
    rows = store.manifest["rows"]
    assert rows["read"] == read == stored + sum(rejected.values())
    assert rows["stored"] == stored
    assert rows["rejected"] == rejected
    got = store.query("SELECT reason, count(*) AS n FROM rejected GROUP BY 1").to_dicts()
    assert {r["reason"]: r["n"] for r in got} == rejected
    return store.query("SELECT * FROM rejected ORDER BY row").to_dicts()


def _strict_manifest(store):
    """The manifest file parses as strict JSON (no NaN / Infinity tokens)."""
    def refuse(token):
        raise ValueError(f"non-finite JSON token {token}")
    return json.loads((store.path / "manifest.json").read_text(), parse_constant=refuse)


# --- 1. non-finite timestamps --------------------------------------------------------------


def test_azure_infinite_timestamps_rejected_and_manifest_strict(tmp_path):
    src = tmp_path / "azure.csv"
    src.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,10,5\n"
        "infinity,10,5\n"
        "-infinity,3,4\n"
        "inf,1,1\n"
        "2023-11-16 18:16:46.6805900,20,6\n"
    )
    store = ingest(src, output=tmp_path / "s")
    rej = _check(store, read=5, stored=2, rejected={"nonfinite_timestamp": 3})
    assert [r["row"] for r in rej] == [3, 4, 5]
    m = _strict_manifest(store)
    assert m["span_s"] == {"first": 0.0, "last": 60.0}
    ts = store.query("SELECT timestamp, input_tokens FROM requests ORDER BY request_id").to_dicts()
    assert ts == [{"timestamp": 0.0, "input_tokens": 10}, {"timestamp": 60.0, "input_tokens": 20}]


def test_generic_jsonl_infinite_datetime_rejected_unparseable_kept_apart(tmp_path):
    src = tmp_path / "log.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in [
        {"ts": "2024-01-01 00:00:00", "inp": 1, "out": 2},
        {"ts": "infinity", "inp": 1, "out": 2},
        {"ts": "-infinity", "inp": 1, "out": 2},
        {"ts": "yesterday", "inp": 1, "out": 2},
        {"ts": "2024-01-01 00:00:30", "inp": 3, "out": 4},
    ]) + "\n")
    cmap = {"time": {"column": "ts", "format": "auto"},
            "columns": {"input_tokens": "inp", "output_tokens": "out"}}
    store = ingest(src, output=tmp_path / "s", column_map=cmap)
    rej = _check(store, read=5, stored=2,
                 rejected={"nonfinite_timestamp": 2, "unparseable_timestamp": 1})
    assert [(r["row"], r["reason"]) for r in rej] == [
        (2, "nonfinite_timestamp"), (3, "nonfinite_timestamp"), (4, "unparseable_timestamp")]
    assert _strict_manifest(store)["span_s"] == {"first": 0.0, "last": 30.0}


def test_manifest_writer_refuses_non_finite_numbers(tmp_path, monkeypatch):
    """A non-finite number reaching the manifest is a bug: raised, and no store is left."""
    from servelab.analysis.ingest import core

    real = core.ingest_manifest

    def poisoned(*args, **kwargs):
        m = real(*args, **kwargs)
        m["span_s"] = {"first": math.inf, "last": -math.inf}
        return m

    monkeypatch.setattr(core, "ingest_manifest", poisoned)
    src = tmp_path / "azure.csv"
    src.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,10,5\n")
    with pytest.raises(RuntimeError, match="non-finite number"):
        ingest(src, output=tmp_path / "s")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["azure.csv"]


# --- 2. non-integer block ids ----------------------------------------------------------------


def test_mooncake_non_integer_hash_ids_rejected_not_rounded(tmp_path):
    src = tmp_path / "mooncake.jsonl"
    lines = [
        '{"timestamp": 0, "input_length": 10, "output_length": 1, "hash_ids": [1, 2]}',
        '{"timestamp": 1000, "input_length": 10, "output_length": 1, "hash_ids": [1.5, 2]}',
        '{"timestamp": 2000, "input_length": 10, "output_length": 1, "hash_ids": [3, 2.25e0]}',
        '{"timestamp": 3000, "input_length": 10, "output_length": 1, "hash_ids": [4.0, 5e0, 6]}',
        '{"timestamp": 4000, "input_length": 10, "output_length": 1, "hash_ids": ["x"]}',
    ]
    src.write_text("\n".join(lines) + "\n")
    store = ingest(src, output=tmp_path / "s", fmt="mooncake")
    rej = _check(store, read=5, stored=2,
                 rejected={"non_integer_prefix_blocks": 2, "malformed_prefix_blocks": 1})
    assert [(r["row"], r["reason"]) for r in rej] == [
        (2, "non_integer_prefix_blocks"), (3, "non_integer_prefix_blocks"), (5, "malformed_prefix_blocks")]
    assert json.loads(rej[0]["raw"])["hash_ids"] == [1.5, 2]
    kept = store.query("SELECT timestamp, prefix_blocks FROM requests ORDER BY request_id").to_dicts()
    # integral values written as 4.0 / 5e0 are the integers 4 and 5
    assert kept == [{"timestamp": 0.0, "prefix_blocks": [1, 2]}, {"timestamp": 3.0, "prefix_blocks": [4, 5, 6]}]
