"""Issue 18, ingest side: non-finite timestamps and non-integer block ids rejected, manifests
strict JSON, only servelab stores overwritten, odd targets refused, one ingest per store at a time,
byte-order marks stripped. Every case is built in ``tmp_path``; ``read = stored + rejected`` holds."""
import json
import math

import pytest

from servelab.analysis import ingest


def _strict_manifest(store):
    """The manifest file parses as strict JSON (no NaN / Infinity tokens)."""
    def refuse(token):
        raise ValueError(f"non-finite JSON token {token}")
    return json.loads((store.path / "manifest.json").read_text(), parse_constant=refuse)


# --- 1. non-finite timestamps --------------------------------------------------------------


def test_azure_infinite_timestamps_rejected_and_manifest_strict(tmp_path, check_counts):
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
    rej = check_counts(store, read=5, stored=2, rejected={"nonfinite_timestamp": 3})
    assert [r["row"] for r in rej] == [3, 4, 5]
    m = _strict_manifest(store)
    assert m["span_s"] == {"first": 0.0, "last": 60.0}
    ts = store.query("SELECT timestamp, input_tokens FROM requests ORDER BY request_id").to_dicts()
    assert ts == [{"timestamp": 0.0, "input_tokens": 10}, {"timestamp": 60.0, "input_tokens": 20}]


def test_generic_jsonl_infinite_datetime_rejected_unparseable_kept_apart(tmp_path, check_counts):
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
    rej = check_counts(store, read=5, stored=2,
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


def test_mooncake_non_integer_hash_ids_rejected_not_rounded(tmp_path, check_counts):
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
    rej = check_counts(store, read=5, stored=2,
                 rejected={"non_integer_prefix_blocks": 2, "malformed_prefix_blocks": 1})
    assert [(r["row"], r["reason"]) for r in rej] == [
        (2, "non_integer_prefix_blocks"), (3, "non_integer_prefix_blocks"), (5, "malformed_prefix_blocks")]
    assert json.loads(rej[0]["raw"])["hash_ids"] == [1.5, 2]
    kept = store.query("SELECT timestamp, prefix_blocks FROM requests ORDER BY request_id").to_dicts()
    # integral values written as 4.0 / 5e0 are the integers 4 and 5
    assert kept == [{"timestamp": 0.0, "prefix_blocks": [1, 2]}, {"timestamp": 3.0, "prefix_blocks": [4, 5, 6]}]


# --- 3. what --overwrite may replace; odd targets; stale temp folders; permissions ----------

_AZURE = "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,10,5\n2023-11-16 18:15:47.6805900,20,6\n"


@pytest.fixture
def azure_src(tmp_path):
    src = tmp_path / "in" / "azure.csv"
    src.parent.mkdir()
    src.write_text(_AZURE)
    return src


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_overwrite_refuses_a_folder_that_is_not_a_store(tmp_path, azure_src):
    from servelab.analysis.ingest import StoreTargetError

    precious = tmp_path / "results"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    (precious / "manifest.json").write_text('{"name": "not a store"}')  # a manifest without the marker
    with pytest.raises(StoreTargetError, match=r"results'? is a folder but not a servelab store"):
        ingest(azure_src, output=precious, overwrite=True)
    assert (precious / "thesis.tex").read_text() == "years of work"
    assert _names(tmp_path) == ["in", "results"]


def test_overwrite_replaces_a_store_and_an_empty_folder(tmp_path, azure_src):
    first = ingest(azure_src, output=tmp_path / "s")
    assert first.manifest["rows"]["stored"] == 2
    azure_src.write_text(_AZURE + "2023-11-16 18:15:48.6805900,30,7\n")
    again = ingest(azure_src, output=tmp_path / "s", overwrite=True)
    assert again.manifest["rows"]["stored"] == 3
    (tmp_path / "empty").mkdir()
    assert ingest(azure_src, output=tmp_path / "empty", overwrite=True).manifest["rows"]["stored"] == 3
    assert _names(tmp_path) == ["empty", "in", "s"]


@pytest.mark.parametrize("overwrite", [False, True])
def test_output_that_is_an_existing_file_is_refused(tmp_path, azure_src, overwrite):
    from servelab.analysis.ingest import StoreTargetError

    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    with pytest.raises(StoreTargetError, match=r"notes.txt'? already exists and is a file, not a store folder"):
        ingest(azure_src, output=target, overwrite=overwrite)
    assert target.read_text() == "keep me"
    assert _names(tmp_path) == ["in", "notes.txt"]


@pytest.mark.parametrize("output", [".", "..", "{cwd}"])
def test_current_directory_or_its_parent_is_refused(tmp_path, azure_src, monkeypatch, output):
    from servelab.analysis.ingest import StoreTargetError

    work = tmp_path / "work"
    work.mkdir()
    (work / "keep.txt").write_text("x")
    monkeypatch.chdir(work)
    with pytest.raises(StoreTargetError, match="is the current directory or holds it"):
        ingest(azure_src, output=output.format(cwd=work), overwrite=True)
    assert _names(work) == ["keep.txt"]
    assert _names(tmp_path) == ["in", "work"]


def test_folder_holding_a_source_is_refused(tmp_path, azure_src):
    from servelab.analysis.ingest import StoreTargetError

    ingest(azure_src, output=tmp_path / "in" / "s")  # the source folder itself becomes the target below
    with pytest.raises(StoreTargetError, match="holds the source"):
        ingest(azure_src, output=azure_src.parent, overwrite=True)
    assert azure_src.read_text() == _AZURE


def test_temp_folders_of_killed_runs_are_cleaned_by_the_next_run(tmp_path, azure_src):
    ingest(azure_src, output=tmp_path / "s")
    stale = [tmp_path / ".s.k1ll3d_a.tmp", tmp_path / ".s.0123abcd.tmp"]
    for d in stale:
        (d / "_work").mkdir(parents=True)
        (d / "requests.parquet").write_bytes(b"half written")
    (tmp_path / ".s.old").mkdir()  # killed after the old store was moved aside, the new one in place
    other = tmp_path / ".other.0123abcd.tmp"  # another target's temp folder: not ours to remove
    other.mkdir()
    ingest(azure_src, output=tmp_path / "s", overwrite=True)
    assert _names(tmp_path) == [".other.0123abcd.tmp", "in", "s"]


def test_killed_between_renames_the_previous_store_is_restored(tmp_path, azure_src):
    ingest(azure_src, output=tmp_path / "s")
    (tmp_path / "s").rename(tmp_path / ".s.old")  # the kill came after the first rename
    from servelab.analysis import StoreExistsError

    with pytest.raises(StoreExistsError, match="already exists"):  # restored, so not replaced silently
        ingest(azure_src, output=tmp_path / "s")
    assert _names(tmp_path) == ["in", "s"]
    from servelab.analysis import open_store

    assert open_store(tmp_path / "s").n_requests == 2


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_store_gets_ordinary_permissions(tmp_path, azure_src, umask):
    import os

    old = os.umask(umask)
    try:
        store = ingest(azure_src, output=tmp_path / "s")
    finally:
        os.umask(old)
    assert store.path.stat().st_mode & 0o777 == 0o777 & ~umask


# --- 4. one ingest per output store at a time --------------------------------------------


def test_second_ingest_into_a_locked_store_fails_fast(tmp_path, azure_src):
    from servelab.analysis.ingest import StoreLockedError
    from servelab.analysis.ingest.target import target_lock

    ingest(azure_src, output=tmp_path / "s")
    with target_lock(tmp_path / "s"):
        with pytest.raises(StoreLockedError, match=r"another ingest is writing .*s'? \(lock .*\.s\.lock"):
            ingest(azure_src, output=tmp_path / "s", overwrite=True)
    assert _names(tmp_path) == ["in", "s"]  # the lock file is gone, the store kept
    assert ingest(azure_src, output=tmp_path / "s", overwrite=True).n_requests == 2  # free again


def test_lock_held_by_another_process(tmp_path, azure_src):
    import subprocess
    import sys

    from servelab.analysis.ingest import StoreLockedError

    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from pathlib import Path; from servelab.analysis.ingest.target import target_lock\n"
         "with target_lock(Path(sys.argv[1])):\n    print('locked', flush=True); sys.stdin.readline()",
         str(tmp_path / "s")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreLockedError, match="another ingest is writing"):
            ingest(azure_src, output=tmp_path / "s")
        assert not (tmp_path / "s").exists()
    finally:
        holder.communicate("go\n", timeout=30)
    assert holder.returncode == 0
    assert ingest(azure_src, output=tmp_path / "s").n_requests == 2
    assert _names(tmp_path) == ["in", "s"]


# --- 5. a UTF-8 byte-order mark is stripped by every text adapter ----------------------------

_BOM = b"\xef\xbb\xbf"

_TEXT_SOURCES = {
    "burstgpt": ("b.csv", None,
                 "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                 "1,ChatGPT,10,5,15,API log\n2,GPT-4,20,6,26,Conversation log\nx,GPT-4,1,1,2,API log\n"),
    "azure": ("a.csv", None, _AZURE + "soon,1,1\n"),
    "mooncake": ("m.jsonl", None,
                 '{"timestamp": 0, "input_length": 10, "output_length": 1, "hash_ids": [1, 2]}\n'
                 '{"timestamp": 500, "input_length": 20, "output_length": 2, "hash_ids": [1]}\n'
                 '{"timestamp": -1, "input_length": 20, "output_length": 2, "hash_ids": [1]}\n'),
    "bailian": ("l.jsonl", None,
                '{"chat_id": 1, "parent_chat_id": -1, "timestamp": 0.5, "input_length": 200, "output_length": 50, '
                '"type": "text", "turn": 1, "hash_ids": [1, 2]}\n'
                '{"chat_id": 2, "parent_chat_id": 1, "timestamp": 4.0, "input_length": 300, "output_length": 60, '
                '"type": "text", "turn": 2, "hash_ids": [1, 2, 3]}\n'),
    "aiperf": ("p.jsonl", None,
               '{"session_id": "s1", "timestamp": 0, "delay": null, "input_length": 10, "output_length": 2}\n'
               '{"session_id": "s1", "timestamp": null, "delay": 1500, "input_length": 12, "output_length": 3}\n'),
    "generic-csv": ("g.csv", {"time": {"column": "t", "unit": "s"},
                              "columns": {"input_tokens": "i", "output_tokens": "o", "model": "m"}},
                    "t;i;o;m\n0.5;3;4;x\n1.5;5;6;y\n2.5;-1;6;y\n"),
    "generic-jsonl": ("g.jsonl", {"time": {"column": "t", "unit": "ms"},
                                  "columns": {"input_tokens": "i", "output_tokens": "o"}},
                      '{"t": 10, "i": 3, "o": 4}\n{"t": 20, "i": 5, "o": 6}\n'),
}


def _snapshot(store):
    m = store.manifest
    rows = store.query("SELECT * EXCLUDE (request_id) FROM requests ORDER BY request_id").to_dicts()
    rejected = store.query("SELECT row, reason FROM rejected ORDER BY row").to_dicts()
    return m["format"], [s["columns"] for s in m["sources"]], m["rows"], rows, rejected


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("case", sorted(_TEXT_SOURCES))
def test_utf8_bom_is_stripped_by_every_text_adapter(tmp_path, case, compress):
    import gzip

    name, cmap, text = _TEXT_SOURCES[case]
    got = {}
    for label, head in (("plain", b""), ("bom", _BOM)):
        data = head + text.encode()
        src = tmp_path / label / (name + (".gz" if compress else ""))
        src.parent.mkdir()
        src.write_bytes(gzip.compress(data, mtime=0) if compress else data)
        store = ingest(src, output=tmp_path / f"s_{label}", column_map=cmap)
        got[label] = _snapshot(store)
    assert got["bom"] == got["plain"]
    fmt, columns, rows, _, _ = got["bom"]
    assert fmt == case.split("-")[0]
    assert not any(c.startswith("\ufeff") for c in columns[0])
    assert rows["stored"] >= 2 and rows["read"] == rows["stored"] + sum(rows["rejected"].values())
