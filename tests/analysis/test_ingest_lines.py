"""Issue 18, ingest side: one bad line is one rejected row with its reason, never a failed file.
Each case is built in tmp_path from a shipped sample."""
import json
from pathlib import Path

import polars as pl
import pytest

from servelab.analysis import TraceFormatError, ingest

RAW = Path(__file__).resolve().parents[2] / "raw_traces"
MOONCAKE = RAW / "mooncake" / "synthetic_trace.jsonl"


def _mooncake_lines(n):
    return MOONCAKE.read_bytes().split(b"\n")[:n]


@pytest.mark.parametrize("bad_at", [10, 49])  # middle and last line
def test_latin1_byte_in_a_jsonl_line_rejects_that_line_only(tmp_path, bad_at):
    lines = _mooncake_lines(50)
    lines[bad_at] = lines[bad_at].replace(b'"input_length"', b'"input_l\xe9ngth"')  # Latin-1 e-acute
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    store = ingest(path, output=tmp_path / "s", fmt="mooncake")
    rows = store.manifest["rows"]
    assert rows["read"] == 50 == rows["stored"] + 1
    assert rows["rejected"] == {"invalid_utf8": 1}
    rej = store.query("SELECT row, reason, raw FROM rejected").to_dicts()
    assert [(r["row"], r["reason"]) for r in rej] == [(bad_at + 1, "invalid_utf8")]
    assert "output_length" in json.loads(rej[0]["raw"])["line"]
    # the stored rows are exactly the other lines, in order, with their own values
    good = [json.loads(line) for k, line in enumerate(lines) if k != bad_at]
    got = store.to_polars()
    assert got["input_tokens"].to_list() == [g["input_length"] for g in good]
    assert got["output_tokens"].to_list() == [g["output_length"] for g in good]


def test_latin1_line_and_broken_json_line_keep_their_line_numbers(tmp_path):
    lines = _mooncake_lines(40)
    lines[5] = lines[5] + b"\xff"          # invalid UTF-8
    lines[20] = b'{"timestamp": 1, "input'  # not JSON
    lines[30] = b"\xe9\xe9"                # invalid UTF-8 again
    path = tmp_path / "mixed_faults.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    store = ingest(path, output=tmp_path / "s", fmt="mooncake")
    assert store.manifest["rows"]["read"] == 40
    assert store.manifest["rows"]["stored"] == 37
    rej = store.query("SELECT row, reason FROM rejected ORDER BY row").to_dicts()
    assert [(r["row"], r["reason"]) for r in rej] == [
        (6, "invalid_utf8"), (21, "malformed_line"), (31, "invalid_utf8")]
    assert isinstance(store.to_polars(), pl.DataFrame)


@pytest.mark.parametrize("first", [b'{"timestamp": 0, "input_len', b"[1, 2, 3]",
                                   b'{"timestamp": 0, "input_l\xe9ngth": 5, "output_length": 1, "hash_ids": []}'],
                         ids=["broken-json", "array", "latin1"])
def test_a_bad_first_jsonl_line_is_one_rejected_row(tmp_path, first):
    lines = _mooncake_lines(30)
    lines[0] = first
    path = tmp_path / "bad_first.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    store = ingest(path, output=tmp_path / "s")  # format sniffed from the first parseable line
    assert store.manifest["format"] == "mooncake"
    rows = store.manifest["rows"]
    assert rows["read"] == 30 and rows["stored"] == 29
    reason = "invalid_utf8" if b"\xe9" in first else "malformed_line"
    assert rows["rejected"] == {reason: 1}
    assert store.query("SELECT row FROM rejected")["row"].to_list() == [1]
    assert store.to_polars()["input_tokens"].to_list() == [json.loads(x)["input_length"] for x in lines[1:]]


def test_a_jsonl_file_of_no_json_object_is_refused_by_name(tmp_path):
    path = tmp_path / "arrays.jsonl"
    path.write_text("[1, 2]\n[3, 4]\n")
    with pytest.raises(TraceFormatError, match=r"arrays\.jsonl: none of the first 2 non-blank lines is a JSON "
                                               r"object \(the first: it is a JSON list, not an object\)"):
        ingest(path, output=tmp_path / "s")
    assert not (tmp_path / "s").exists()


AZURE = RAW / "azure_2023" / "AzureLLMInferenceTrace_code.csv"


def _azure_lines(n):
    return [x for x in AZURE.read_bytes().replace(b"\r\n", b"\n").split(b"\n") if x][:n]


@pytest.mark.parametrize(("body", "odd"), [(b"\r\n", b"\n"), (b"\n", b"\r\n")], ids=["lf-in-crlf", "crlf-in-lf"])
def test_one_odd_line_ending_in_a_csv_reads_the_file(tmp_path, body, odd):
    lines = _azure_lines(201)  # header + 200 rows
    lines[150] = b"2023-11-16 18:20:00,12"  # a malformed row (one column short), after the odd ending
    data = body.join(lines[:100]) + body + lines[100] + odd + body.join(lines[101:]) + body
    path = tmp_path / "mixed.csv"
    path.write_bytes(data)
    store = ingest(path, output=tmp_path / "s")
    rows = store.manifest["rows"]
    assert rows["read"] == 200 and rows["stored"] == 199 and rows["rejected"] == {"malformed_line": 1}
    rej = store.query("SELECT source, row FROM rejected").to_dicts()
    assert rej == [{"source": str(path), "row": 151}]  # the file's own line number and path
    want = [int(x.split(b",")[2]) for k, x in enumerate(lines[1:], start=1) if k != 150]
    assert store.to_polars().sort("request_id")["output_tokens"].to_list() == want
    assert not any(p.name.startswith("lf_") for p in (tmp_path / "s").rglob("*"))


@pytest.mark.parametrize(("body", "odd"), [(b"\r\n", b"\n"), (b"\n", b"\r\n")], ids=["lf-in-crlf", "crlf-in-lf"])
def test_one_odd_line_ending_in_a_jsonl_on_the_two_pass_path(tmp_path, body, odd):
    lines = _mooncake_lines(30)
    lines[20] = b'{"timestamp": 1, "input'  # forces the two-pass path; rejected with its line number
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(body.join(lines[:10]) + body + lines[10] + odd + body.join(lines[11:]) + body)
    store = ingest(path, output=tmp_path / "s")
    rows = store.manifest["rows"]
    assert rows["read"] == 30 and rows["stored"] == 29 and rows["rejected"] == {"malformed_line": 1}
    assert store.query("SELECT row FROM rejected")["row"].to_list() == [21]
    want = [json.loads(x)["input_length"] for k, x in enumerate(lines) if k != 20]
    assert store.to_polars()["input_tokens"].to_list() == want


def test_latin1_byte_in_a_csv_text_field_is_rejected_as_invalid_utf8(tmp_path):
    lines = (RAW / "burstgpt" / "BurstGPT_1_head54.csv").read_bytes().split(b"\n")
    assert b",ChatGPT," in lines[5]
    lines[5] = lines[5].replace(b",ChatGPT,", b",Chat\xe9GPT,")  # the model name, a text column
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"\n".join(lines))
    store = ingest(path, output=tmp_path / "s", fmt="burstgpt")
    rows = store.manifest["rows"]
    assert rows["read"] == rows["stored"] + 1 and rows["rejected"] == {"invalid_utf8": 1}
    assert store.query("SELECT row FROM rejected")["row"].to_list() == [6]  # file line (header is 1)
