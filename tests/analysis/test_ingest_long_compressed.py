"""Issue 18 item 1, ingest side: fields of any length up to a stated line limit (longer lines are
one rejected row, ``line_too_long``), lone CR line endings, and compressed sources (gzip and zstd
read, every other compression refused by name with how to decompress it). Compressed cases are
real slices of the shipped samples (``raw_traces/``) compressed here; ``read = stored + rejected``.
"""
import gzip
import json
from pathlib import Path

import duckdb
import pytest

from servelab.analysis import ingest
from servelab.analysis.ingest import DEFAULT_MAX_LINE_BYTES, UnsupportedCompressionError

RAW = Path(__file__).resolve().parents[2] / "raw_traces"
HEADER = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"


def _zstd(path: Path, text: str) -> Path:
    """``text`` (ending in a newline) written zstd-compressed to ``path`` by DuckDB (no zstd in Python 3.11)."""
    assert text.endswith("\n")
    con = duckdb.connect()
    con.execute(f"COPY (SELECT ? AS x) TO '{path}' (FORMAT csv, HEADER false, QUOTE '', ESCAPE '', "
                "COMPRESSION zstd)", [text[:-1]])
    con.close()
    return path


def _rows(store):
    return store.query("SELECT * EXCLUDE (request_id) FROM requests ORDER BY request_id").to_dicts()


# --- fields of any length, lines over the limit -----------------------------------------------


def test_default_line_limit_is_64_mib():
    assert DEFAULT_MAX_LINE_BYTES == 64 * 1024 * 1024


@pytest.mark.parametrize("at", [1, 40])
def test_csv_field_over_duckdbs_2mb_default_is_stored(tmp_path, at, check_counts):
    # DuckDB's reader stops at 2 MB lines by default ("Maximum line size"); servelab's limit is 64 MiB
    model = "m" * (3 * 1024 * 1024)
    lines = [f"{i},{model if i == at else 'ChatGPT'},{i + 1},5,0,API log\n" for i in range(60)]
    src = tmp_path / "b.csv"
    src.write_text(HEADER + "".join(lines))
    store = ingest(src, output=tmp_path / "s")
    check_counts(store, read=60, stored=60, rejected={})
    got = store.query("SELECT length(model) AS n FROM requests ORDER BY request_id").to_series().to_list()
    assert got[at] == len(model) and got[at - 1] == len("ChatGPT")


@pytest.mark.parametrize("size", [200_000, 3 * 1024 * 1024], ids=["under-duckdb-default", "over-duckdb-default"])
def test_csv_row_over_the_stated_limit_is_one_rejected_row(tmp_path, size, check_counts):
    limit = 100_000
    lines = [f"{i},{'x' * size if i == 7 else 'GPT-4'},{i + 1},5,0,API log\n" for i in range(30)]
    src = tmp_path / "b.csv"
    src.write_text(HEADER + "".join(lines))
    store = ingest(src, output=tmp_path / "s", max_line_bytes=limit)
    rej = check_counts(store, read=30, stored=29, rejected={"line_too_long": 1})
    assert rej[0]["row"] == 9  # header = line 1, data row i on line i + 2
    raw = json.loads(rej[0]["raw"])["line"]
    # the raw value keeps the line's start, truncated (DuckDB's reject table keeps 10,000 characters)
    assert raw.startswith("7,xxxx") and len(raw) <= 10_000 < size
    assert [r["input_tokens"] for r in _rows(store)] == [i + 1 for i in range(30) if i != 7]


def test_jsonl_object_over_the_stated_limit_is_one_rejected_row(tmp_path, check_counts):
    rows = [{"timestamp": 1000 * i, "input_length": i + 1, "output_length": 2,
             "hash_ids": list(range(30_000)) if i == 3 else [i]} for i in range(10)]
    src = tmp_path / "m.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    store = ingest(src, output=tmp_path / "s", max_line_bytes=50_000)
    rej = check_counts(store, read=10, stored=9, rejected={"line_too_long": 1})
    assert rej[0]["row"] == 4
    assert [r["input_tokens"] for r in _rows(store)] == [i + 1 for i in range(10) if i != 3]
    # the same file under the default limit stores the long row, with its 30,000 block ids
    store = ingest(src, output=tmp_path / "s2")
    check_counts(store, read=10, stored=10, rejected={})
    assert len(_rows(store)[3]["prefix_blocks"]) == 30_000


@pytest.mark.parametrize("bad", [0, 1023, 2.5, True, "64MB"])
def test_max_line_bytes_is_checked(tmp_path, bad):
    src = tmp_path / "b.csv"
    src.write_text(HEADER + "1,ChatGPT,1,1,2,API log\n")
    with pytest.raises(ValueError, match=r"max_line_bytes must be an integer number of bytes >= 1024; got"):
        ingest(src, output=tmp_path / "s", max_line_bytes=bad)


# --- lone CR (classic Mac) line endings: read, each CR ends a line --------------------------


@pytest.mark.parametrize("body", ["\n", "\r\n"], ids=["LF", "CRLF"])
def test_lone_cr_in_a_csv_ends_a_line(tmp_path, body, check_counts):
    lines = [f"{i},ChatGPT,{i + 1},5,0,API log" for i in range(40)]
    text = HEADER.replace("\n", body) + "".join(ln + ("\r" if i == 20 else body) for i, ln in enumerate(lines))
    src = tmp_path / "b.csv"
    src.write_bytes(text.encode())
    store = ingest(src, output=tmp_path / "s")
    check_counts(store, read=40, stored=40, rejected={})
    assert [r["input_tokens"] for r in _rows(store)] == list(range(1, 41))


def test_a_csv_of_lone_cr_endings_only_is_read(tmp_path, check_counts):
    lines = [f"{i},GPT-4,{i + 1},5,0,API log" for i in range(25)]
    src = tmp_path / "b.csv"
    src.write_bytes((HEADER.strip() + "\r" + "\r".join(lines) + "\r").encode())
    store = ingest(src, output=tmp_path / "s")
    check_counts(store, read=25, stored=25, rejected={})
    assert [r["input_tokens"] for r in _rows(store)] == list(range(1, 26))


def test_lone_cr_in_a_jsonl_ends_a_line(tmp_path, check_counts):
    rows = [json.dumps({"timestamp": 100 * i, "input_length": i + 1, "output_length": 1}) for i in range(30)]
    src = tmp_path / "m.jsonl"
    src.write_bytes("".join(r + ("\r" if i == 10 else "\n") for i, r in enumerate(rows)).encode())
    store = ingest(src, output=tmp_path / "s")
    check_counts(store, read=30, stored=30, rejected={})
    assert [r["input_tokens"] for r in _rows(store)] == list(range(1, 31))


# --- compressed sources --------------------------------------------------------------------


_SAMPLES = {
    "burstgpt": "burstgpt/BurstGPT_1_head54.csv",
    "azure": "azure_2023/AzureLLMInferenceTrace_code.csv",
    "mooncake": "mooncake/synthetic_trace.jsonl",
}


def _slice(name: str, n: int = 500) -> str:
    """The first ``n`` data lines of a shipped sample (with the header of a CSV)."""
    with open(RAW / _SAMPLES[name], encoding="utf-8") as fh:
        return "".join(line for _, line in zip(range(n + 1), fh))


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
@pytest.mark.parametrize("name", sorted(_SAMPLES))
def test_compressed_slices_of_the_samples_give_the_plain_store(tmp_path, name, compression):
    text = _slice(name)
    suffix = Path(_SAMPLES[name]).suffix
    plain = tmp_path / f"plain{suffix}"
    plain.write_text(text)
    packed = tmp_path / f"packed{suffix}.{'gz' if compression == 'gzip' else 'zst'}"
    if compression == "gzip":
        packed.write_bytes(gzip.compress(text.encode(), mtime=0))
    else:
        _zstd(packed, text)
    a = ingest(plain, output=tmp_path / "a")
    b = ingest(packed, output=tmp_path / "b")
    assert b.manifest["format"] == a.manifest["format"] == name
    assert b.manifest["rows"] == a.manifest["rows"]
    assert b.manifest["rows"]["stored"] == text.count("\n") - (suffix == ".csv") > 50
    assert _rows(b) == _rows(a)


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_compressed_csv_with_mixed_line_endings_and_a_long_field(tmp_path, compression, check_counts):
    lines = [f"{i},{'q' * 2_500_000 if i == 5 else 'ChatGPT'},{i + 1},5,0,API log" for i in range(20)]
    text = HEADER.replace("\n", "\r\n") + "".join(ln + ("\n" if i == 12 else "\r\n") for i, ln in enumerate(lines))
    src = tmp_path / ("b.csv.gz" if compression == "gzip" else "b.csv.zst")
    if compression == "gzip":
        src.write_bytes(gzip.compress(text.encode(), mtime=0))
    else:
        _zstd(src, text)
    store = ingest(src, output=tmp_path / "s")
    check_counts(store, read=20, stored=20, rejected={})
    got = _rows(store)
    assert [r["input_tokens"] for r in got] == list(range(1, 21)) and len(got[5]["model"]) == 2_500_000


@pytest.mark.parametrize(("suffix", "name", "how"), [
    (".bz2", "bzip2", "bunzip2 -k"),
    (".xz", "xz", "unxz -k"),
    (".zip", "zip", "unzip"),
    (".7z", "7z", "7z x"),
    (".lz4", "lz4", "lz4 -d"),
    (".tgz", r"tar \+ gzip", "tar -xzf"),
])
def test_other_compressions_are_refused_by_name(tmp_path, suffix, name, how):
    src = tmp_path / f"trace.csv{suffix}"
    src.write_bytes(b"\x00\x01not really compressed")
    with pytest.raises(UnsupportedCompressionError,
                       match=rf"compressed with {name}, which servelab does not read .*decompress it first: {how}"):
        ingest(src, output=tmp_path / "s")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(("magic", "name", "fix"), [
    (gzip.compress(b"a,b\n1,2\n", mtime=0), "gzip", r"rename it to end in \.gz"),
    (b"BZh91AY&SY" + b"\x00" * 20, "bzip2", "decompress it first"),
    (b"\xfd7zXZ\x00" + b"\x00" * 20, "xz", "decompress it first"),
])
def test_a_compressed_file_under_a_plain_name_is_refused(tmp_path, magic, name, fix):
    src = tmp_path / "trace.csv"
    src.write_bytes(magic)
    with pytest.raises(UnsupportedCompressionError, match=rf"is a {name}-compressed file without a {name} suffix; {fix}"):
        ingest(src, output=tmp_path / "s")


def test_cli_max_line_bytes_and_a_refused_compression(tmp_path):
    from click.testing import CliRunner

    from servelab.cli import main

    src = tmp_path / "b.csv"
    src.write_text(HEADER + "1,ChatGPT,1,1,2,API log\n" + f"2,{'x' * 3000},1,1,2,API log\n")
    result = CliRunner().invoke(main, ["ingest", str(src), "-o", str(tmp_path / "s"), "--max-line-bytes", "2048"])
    assert result.exit_code == 0, result.output
    assert "read 2 rows, stored 1, rejected 1 (line_too_long 1)" in result.output
    packed = tmp_path / "b.csv.xz"
    packed.write_bytes(b"\xfd7zXZ\x00")
    result = CliRunner().invoke(main, ["ingest", str(packed), "-o", str(tmp_path / "s2")])
    assert result.exit_code == 1
    assert "compressed with xz, which servelab does not read" in result.output and "unxz -k" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("also", ["", "yesterday,28,371\n"], ids=["alone", "beside-unparseable"])
def test_latin1_byte_in_a_typed_csv_column_is_one_rejected_row(tmp_path, also, check_counts):
    # DuckDB 2.0.1 fails a LIMIT query on such a file, and a full read when a value of a typed
    # column does not parse either ("Invalid unicode ... value construction"): neither fails the file
    src = tmp_path / "azure.csv"
    src.write_bytes(b"TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-14 22:14:39.0000000,4036,826\n"
                    b"2023\xe9-11-14 22:13:20.0000000,8672,2201\n" + also.encode()
                    + b"2023-11-14 22:14:54.0000000,10,20\n")
    store = ingest(src, output=tmp_path / "s")
    rejected = {"invalid_utf8": 1, **({"unparseable_timestamp": 1} if also else {})}
    rej = check_counts(store, read=3 + bool(also), stored=2, rejected=rejected)
    assert rej[0]["row"] == 3 and rej[0]["reason"] == "invalid_utf8"
    assert store.query("SELECT timestamp, input_tokens FROM requests ORDER BY request_id").rows() == [
        (0.0, 4036), (15.0, 10)]
