"""Issue 18 item 2: a format that would drop columns the file carries warns and names the format
that reads them (a Bailian file with conversation links read as Mooncake, and the general rule:
any format whose reads are a strict superset)."""
import json
import warnings

import pytest

from servelab.analysis import ingest
from servelab.analysis.ingest import FormatMismatchWarning

_BAILIAN = [
    {"chat_id": 1, "parent_chat_id": -1, "timestamp": 0.5, "input_length": 200, "output_length": 50,
     "type": "text", "turn": 1, "hash_ids": [1, 2]},
    {"chat_id": 2, "parent_chat_id": 1, "timestamp": 4.0, "input_length": 300, "output_length": 60,
     "type": "text", "turn": 2, "hash_ids": [1, 2, 3]},
]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_bailian_file_read_as_mooncake_warns_and_names_bailian(tmp_path):
    src = _write(tmp_path / "qwen.jsonl", _BAILIAN)
    with pytest.warns(FormatMismatchWarning,
                      match=r"--format mooncake drops column\(s\) 'chat_id', 'parent_chat_id', 'type', 'turn' "
                            r"that .*qwen\.jsonl carries; its columns match 'bailian', which reads them: "
                            r"use --format bailian"):
        store = ingest(src, fmt="mooncake", output=tmp_path / "s")
    # the ingest still does what was asked: Mooncake's columns, no links
    assert "conversation_id" not in store.manifest["columns"]
    assert store.manifest["rows"]["stored"] == 2


def test_aiperf_file_read_as_mooncake_names_aiperf(tmp_path):
    rows = [{"session_id": "s1", "timestamp": 0, "delay": None, "input_length": 10, "output_length": 2},
            {"session_id": "s1", "timestamp": None, "delay": 1500, "input_length": 12, "output_length": 3}]
    src = _write(tmp_path / "p.jsonl", rows)
    with pytest.warns(FormatMismatchWarning, match=r"drops column\(s\) 'session_id', 'delay' .* use --format aiperf"):
        store = ingest(src, fmt="mooncake", output=tmp_path / "s")
    # Mooncake reads the null timestamp of a follow-up turn as missing: the links AIPerf resolves are lost
    assert store.manifest["rows"]["stored"] == 1
    assert store.manifest["rows"]["rejected"] == {"missing_timestamp": 1}


@pytest.mark.parametrize(("fmt", "rows"), [
    ("bailian", _BAILIAN),
    ("mooncake", [{"timestamp": 0, "input_length": 3, "output_length": 4, "hash_ids": [1]}]),
    ("mooncake", [{"timestamp": 0, "input_length": 3, "output_length": 4, "extra": "x"}]),
    ("auto", _BAILIAN),
])
def test_the_best_format_does_not_warn(tmp_path, fmt, rows):
    src = _write(tmp_path / "t.jsonl", rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FormatMismatchWarning)
        ingest(src, fmt=fmt, output=tmp_path / "s")


def test_one_warning_for_several_sources(tmp_path):
    a = _write(tmp_path / "a.jsonl", _BAILIAN)
    b = _write(tmp_path / "b.jsonl", [dict(r, timestamp=r["timestamp"] + 10) for r in _BAILIAN])
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        ingest([a, b], fmt="mooncake", output=tmp_path / "s")
    mismatches = [w for w in got if issubclass(w.category, FormatMismatchWarning)]
    assert len(mismatches) == 1
    assert "a.jsonl, " in str(mismatches[0].message) and "b.jsonl carry;" in str(mismatches[0].message)
