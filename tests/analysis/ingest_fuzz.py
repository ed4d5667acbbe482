"""Fault cases for the property tests of ingest (``test_ingest_properties.py``) and
``benchmarks/bench_fuzz.py``: random valid rows of each adapter's format plus random corruptions.

A case is a file of valid rows with faults inserted at random places. Each valid row's stored
values are computed here, in Python, from the values the row was written with (never through an
adapter), and each fault carries the reason it must be rejected with, or ``None`` for a
perturbation that must not change the row (a CRLF or lone CR line ending). :func:`check_case`
ingests the file and checks ``read = stored + rejected``, the rejected reasons, and that the
stored rows equal the valid ones, in order.
"""
from __future__ import annotations

import json
import math
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st

__all__ = ["ADAPTER_CASES", "MAX_LINE", "case_strategy", "check_case", "Case"]

#: line limit of the fuzzed ingests: a fault line longer than it is rejected (line_too_long)
MAX_LINE = 2048
_LONG = "z" * (MAX_LINE + 500)

_BASE_US = 1_700_000_000_000_000  # 2023-11-14 22:13:20 UTC, in microseconds


@dataclass(frozen=True)
class Case:
    """One fuzz case: the file's bytes, its suffix, the column map (generic), the expected stored
    rows (tuples in file order) and the expected rejected reasons."""

    adapter: str
    data: bytes
    suffix: str
    column_map: dict | None
    expected: list[tuple]
    rejected: Counter
    faults: tuple[str, ...]


# --- one spec per adapter: header, a valid row's line and stored values, the faults ----------------


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _azure_time(us: int) -> str:
    import datetime as dt

    t = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=us)
    return t.strftime("%Y-%m-%d %H:%M:%S.%f") + "0"


def _csv(*values) -> bytes:
    return ",".join(str(v) for v in values).encode()


def _jsonl(obj) -> bytes:
    return json.dumps(obj).encode()


class _Spec:
    """Base: ``line(row)`` writes a valid row, ``stored(row, rows)`` gives its stored tuple,
    ``faults`` maps a fault name to (line(row) -> bytes, reason)."""

    suffix = ".csv"
    header: bytes | None = None
    column_map: dict | None = None
    query = "SELECT timestamp, input_tokens, output_tokens FROM requests ORDER BY request_id"

    def origin(self, rows):  # the stored timestamps' origin
        return 0

    def write(self, lines: list[bytes], endings: list[bytes]) -> bytes:
        head = (self.header + b"\n") if self.header is not None else b""
        return head + b"".join(line + end for line, end in zip(lines, endings, strict=True))


class _BurstGPT(_Spec):
    header = b"Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type"
    query = ("SELECT timestamp, model, input_tokens, output_tokens, failed, service FROM requests "
             "ORDER BY request_id")

    def line(self, r):
        return _csv(r["t"] / 2, r["model"], r["i"], r["o"], r["i"] + r["o"], r["log"])

    def stored(self, r, rows):
        return (r["t"] / 2, r["model"], r["i"], r["o"], r["o"] == 0,
                "conversation" if r["log"] == "Conversation log" else "api")

    faults = {
        "negative_input": (lambda r: _csv(r["t"] / 2, r["model"], -r["i"] - 1, r["o"], 0, r["log"]), "negative_input_tokens"),
        "fraction_output": (lambda r: _csv(r["t"] / 2, r["model"], r["i"], r["o"] + 0.5, 0, r["log"]), "non_integer_output_tokens"),
        "text_input": (lambda r: _csv(r["t"] / 2, r["model"], "lots", r["o"], 0, r["log"]), "non_numeric_input_tokens"),
        "empty_output": (lambda r: _csv(r["t"] / 2, r["model"], r["i"], "", 0, r["log"]), "missing_output_tokens"),
        "text_time": (lambda r: _csv("noon", r["model"], r["i"], r["o"], 0, r["log"]), "unparseable_timestamp"),
        "nan_time": (lambda r: _csv("nan", r["model"], r["i"], r["o"], 0, r["log"]), "nan_timestamp"),
        "few_columns": (lambda r: _csv(r["t"] / 2, r["model"], r["i"]), "malformed_line"),
        "many_columns": (lambda r: _csv(r["t"] / 2, r["model"], r["i"], r["o"], 0, r["log"], "x", "y"), "malformed_line"),
        "latin1_model": (lambda r: _csv(r["t"] / 2, "caf", r["i"], r["o"], 0, r["log"]).replace(b"caf", b"caf\xe9"), "invalid_utf8"),
        "long_line": (lambda r: _csv(r["t"] / 2, _LONG, r["i"], r["o"], 0, r["log"]), "line_too_long"),
        "empty_model": (lambda r: _csv(r["t"] / 2, "", r["i"], r["o"], 0, r["log"]), "missing_model"),
    }


class _Azure(_Spec):
    header = b"TIMESTAMP,ContextTokens,GeneratedTokens"

    def line(self, r):
        return _csv(_azure_time(_BASE_US + r["t"] * 250_000), r["i"], r["o"])

    def origin(self, rows):
        return min(r["t"] for r in rows) if rows else 0

    def stored(self, r, rows):
        return ((r["t"] - self.origin(rows)) * 250_000 / 1e6, r["i"], r["o"])

    faults = {
        "negative_input": (lambda r: _csv(_azure_time(_BASE_US), -r["i"] - 1, r["o"]), "negative_input_tokens"),
        "fraction_output": (lambda r: _csv(_azure_time(_BASE_US), r["i"], r["o"] + 0.25), "non_integer_output_tokens"),
        "text_input": (lambda r: _csv(_azure_time(_BASE_US), "many", r["o"]), "non_numeric_input_tokens"),
        "empty_input": (lambda r: _csv(_azure_time(_BASE_US), "", r["o"]), "missing_input_tokens"),
        "text_time": (lambda r: _csv("yesterday", r["i"], r["o"]), "unparseable_timestamp"),
        "infinite_time": (lambda r: _csv("infinity", r["i"], r["o"]), "nonfinite_timestamp"),
        "few_columns": (lambda r: _csv(_azure_time(_BASE_US), r["i"]), "malformed_line"),
        "latin1_time": (lambda r: _csv(_azure_time(_BASE_US), r["i"], r["o"]).replace(b"2023-", b"2023\xe9-"), "invalid_utf8"),
        "long_line": (lambda r: _csv(_azure_time(_BASE_US), r["i"], str(r["o"]) + " " * (MAX_LINE + 100)), "line_too_long"),
    }


def _moon_obj(r, **change):
    obj = {"timestamp": r["t"] * 100, "input_length": r["i"], "output_length": r["o"], "hash_ids": r["blocks"]}
    obj.update(change)
    return obj


_JSONL_FAULTS = {
    "broken_json": (lambda r: _jsonl(_moon_obj(r))[:-3], "malformed_line"),
    "json_array": (lambda r: b"[1, 2, 3]", "malformed_line"),
    "latin1_line": (lambda r: _jsonl(_moon_obj(r, pad="caf")).replace(b"caf", b"caf\xe9"), "invalid_utf8"),
    "negative_input": (lambda r: _jsonl(_moon_obj(r, input_length=-r["i"] - 1)), "negative_input_tokens"),
    "fraction_output": (lambda r: _jsonl(_moon_obj(r, output_length=r["o"] + 0.5)), "non_integer_output_tokens"),
    "text_input": (lambda r: _jsonl(_moon_obj(r, input_length="many")), "non_numeric_input_tokens"),
    "null_time": (lambda r: _jsonl(_moon_obj(r, timestamp=None)), "missing_timestamp"),
    "text_time": (lambda r: _jsonl(_moon_obj(r, timestamp="soon")), "unparseable_timestamp"),
    "fraction_block": (lambda r: _jsonl(_moon_obj(r, hash_ids=[1.5, 2])), "non_integer_prefix_blocks"),
    "text_block": (lambda r: _jsonl(_moon_obj(r, hash_ids="abc")), "malformed_prefix_blocks"),
    "long_line": (lambda r: _jsonl(_moon_obj(r, pad=_LONG)), "line_too_long"),
}


class _Mooncake(_Spec):
    suffix = ".jsonl"
    query = "SELECT timestamp, input_tokens, output_tokens, prefix_blocks FROM requests ORDER BY request_id"

    def line(self, r):
        return _jsonl(_moon_obj(r))

    def stored(self, r, rows):
        return (r["t"] * 100 / 1000, r["i"], r["o"], r["blocks"])

    faults = _JSONL_FAULTS


def _bailian_obj(r, **change):
    obj = {"chat_id": r["k"], "parent_chat_id": r["parent"], "timestamp": r["t"] / 4, "input_length": r["i"],
           "output_length": r["o"], "type": r["type"], "turn": r["turn"], "hash_ids": r["blocks"]}
    obj.update(change)
    return obj


class _Bailian(_Spec):
    suffix = ".jsonl"
    query = ("SELECT timestamp, input_tokens, output_tokens, service, turn, conversation_id, parent_id "
             "FROM requests ORDER BY request_id")

    def line(self, r):
        return _jsonl(_bailian_obj(r))

    def stored(self, r, rows):
        # the conversation root follows parent links among the stored rows only (a parent that was
        # rejected is not in the trace: the row starts its own conversation)
        by_id = {x["k"]: x for x in rows}
        root = r
        while root["parent"] != -1 and root["parent"] in by_id:
            root = by_id[root["parent"]]
        return (r["t"] / 4, r["i"], r["o"], r["type"], r["turn"], str(root["k"]),
                None if r["parent"] == -1 else str(r["parent"]))

    faults = {
        "broken_json": (lambda r: _jsonl(_bailian_obj(r))[:-2], "malformed_line"),
        "latin1_line": (lambda r: _jsonl(_bailian_obj(r, type="caf")).replace(b"caf", b"caf\xe9"), "invalid_utf8"),
        "negative_output": (lambda r: _jsonl(_bailian_obj(r, output_length=-3)), "negative_output_tokens"),
        "null_chat": (lambda r: _jsonl(_bailian_obj(r, chat_id=None)), "missing_conversation_id"),
        "nan_time": (lambda r: _jsonl(_bailian_obj(r, timestamp="NaN")), "nan_timestamp"),
        "fraction_turn": (lambda r: _jsonl(_bailian_obj(r, turn=1.5)), "non_integer_turn"),
        "fraction_block": (lambda r: _jsonl(_bailian_obj(r, hash_ids=[3, 4.25])), "non_integer_prefix_blocks"),
        "long_line": (lambda r: _jsonl(_bailian_obj(r, hash_ids=list(range(600)))), "line_too_long"),
    }


def _aiperf_obj(r, **change):
    obj = {"session_id": f"s{r['k']}", "timestamp": r["t"] * 10, "delay": None, "input_length": r["i"],
           "output_length": r["o"]}
    obj.update(change)
    return obj


class _AIPerf(_Spec):
    suffix = ".jsonl"
    query = "SELECT timestamp, input_tokens, output_tokens, conversation_id, turn FROM requests ORDER BY request_id"

    def line(self, r):
        return _jsonl(_aiperf_obj(r))

    def stored(self, r, rows):
        return (r["t"] * 10 / 1000, r["i"], r["o"], f"s{r['k']}", 1)

    faults = {
        "broken_json": (lambda r: _jsonl(_aiperf_obj(r))[:-1] + b",", "malformed_line"),
        "latin1_line": (lambda r: _jsonl(_aiperf_obj(r, pad="caf")).replace(b"caf", b"caf\xe9"), "invalid_utf8"),
        "negative_input": (lambda r: _jsonl(_aiperf_obj(r, session_id=f"x{r['k']}", input_length=-1)), "negative_input_tokens"),
        "text_output": (lambda r: _jsonl(_aiperf_obj(r, session_id=f"x{r['k']}", output_length="x")), "non_numeric_output_tokens"),
        "missing_input": (lambda r: _jsonl({k: v for k, v in _aiperf_obj(r, session_id=f"x{r['k']}").items()
                                            if k != "input_length"}), "missing_input_tokens"),
        "long_line": (lambda r: _jsonl(_aiperf_obj(r, session_id=f"x{r['k']}", pad=_LONG)), "line_too_long"),
    }


class _GenericCSV(_Spec):
    """A platform log: a status column mapped to ``failed`` and lengths in characters (2 per token)."""

    header = b"t;key;chars_in;chars_out;status"
    column_map = {"time": {"column": "t", "unit": "ms"},
                  "columns": {"client_id": "key", "input_tokens": "chars_in", "output_tokens": "chars_out",
                              "failed": {"column": "status", "true": ["ERR", "TIMEOUT"], "false": ["OK"]}},
                  "lengths": {"unit": "characters", "chars_per_token": 2}}
    query = "SELECT timestamp, client_id, input_tokens, output_tokens, failed FROM requests ORDER BY request_id"

    def line(self, r):
        return f"{r['t'] * 5};{r['model']};{r['i']};{r['o']};{r['status']}".encode()

    def stored(self, r, rows):
        return (r["t"] * 5 / 1000, r["model"], _round_half_up(r["i"] / 2), _round_half_up(r["o"] / 2),
                r["status"] != "OK")

    faults = {
        "unmapped_status": (lambda r: f"{r['t']};{r['model']};{r['i']};{r['o']};PENDING".encode(), "unmapped_failed"),
        "negative_input": (lambda r: f"{r['t']};{r['model']};-4;{r['o']};OK".encode(), "negative_input_tokens"),
        "text_time": (lambda r: f"later;{r['model']};{r['i']};{r['o']};OK".encode(), "unparseable_timestamp"),
        "few_columns": (lambda r: f"{r['t']};{r['model']}".encode(), "malformed_line"),
        "latin1_key": (lambda r: f"{r['t']};caf;{r['i']};{r['o']};OK".encode().replace(b"caf", b"caf\xe9"), "invalid_utf8"),
        "long_line": (lambda r: f"{r['t']};{_LONG};{r['i']};{r['o']};OK".encode(), "line_too_long"),
    }


class _GenericJSONL(_Spec):
    suffix = ".jsonl"
    column_map = {"time": {"column": "when", "format": "auto"},
                  "columns": {"input_tokens": "in", "output_tokens": "out", "model": "m"}}
    query = "SELECT timestamp, input_tokens, output_tokens, model FROM requests ORDER BY request_id"

    def _obj(self, r, **change):
        obj = {"when": _azure_time(_BASE_US + r["t"] * 1_000_000)[:19], "in": r["i"], "out": r["o"], "m": r["model"]}
        obj.update(change)
        return obj

    def origin(self, rows):
        return min(r["t"] for r in rows) if rows else 0

    def line(self, r):
        return _jsonl(self._obj(r))

    def stored(self, r, rows):
        return (float(r["t"] - self.origin(rows)), r["i"], r["o"], r["model"])

    @property
    def faults(self):
        return {
            "infinite_time": (lambda r: _jsonl(self._obj(r, when="infinity")), "nonfinite_timestamp"),
            "text_time": (lambda r: _jsonl(self._obj(r, when="tuesday")), "unparseable_timestamp"),
            "null_input": (lambda r: _jsonl(self._obj(r, **{"in": None})), "missing_input_tokens"),
            "broken_json": (lambda r: _jsonl(self._obj(r))[:-4], "malformed_line"),
            "latin1_line": (lambda r: _jsonl(self._obj(r, m="caf")).replace(b"caf", b"caf\xe9"), "invalid_utf8"),
            "long_line": (lambda r: _jsonl(self._obj(r, m=_LONG)), "line_too_long"),
        }


#: adapter case name -> spec (generic twice: a CSV with a value map and character lengths, a JSONL with date-times)
ADAPTER_CASES = {
    "burstgpt": _BurstGPT(),
    "azure": _Azure(),
    "mooncake": _Mooncake(),
    "bailian": _Bailian(),
    "aiperf": _AIPerf(),
    "generic-csv": _GenericCSV(),
    "generic-jsonl": _GenericJSONL(),
}

_ENDINGS = {"crlf_ending": b"\r\n", "cr_ending": b"\r"}

#: faults that drop a required JSONL key (see :func:`case_strategy`)
_KEY_DROPPING = {"missing_input"}


@st.composite
def _valid_rows(draw, adapter: str):
    n = draw(st.integers(min_value=1, max_value=12))
    steps = draw(st.lists(st.integers(min_value=1, max_value=40), min_size=n, max_size=n))
    rows = []
    t = draw(st.integers(min_value=0, max_value=1000))
    for k in range(n):
        t += steps[k]
        parent = -1
        if adapter == "bailian" and k and draw(st.booleans()):
            parent = rows[draw(st.integers(min_value=0, max_value=k - 1))]["k"]
        rows.append({
            "k": 1000 + k, "t": t, "parent": parent,
            "turn": draw(st.integers(min_value=1, max_value=5)),
            "i": draw(st.integers(min_value=0, max_value=20_000)),
            "o": draw(st.integers(min_value=0, max_value=4_000)),
            "model": draw(st.sampled_from(["ChatGPT", "GPT-4", "qwen max", "m-1"])),
            "log": draw(st.sampled_from(["Conversation log", "API log"])),
            "status": draw(st.sampled_from(["OK", "ERR", "TIMEOUT"])),
            "type": draw(st.sampled_from(["text", "search", "image"])),
            "blocks": draw(st.lists(st.integers(min_value=0, max_value=10**12), max_size=4)),
        })
    return rows


@st.composite
def case_strategy(draw, adapter: str, *, min_faults: int = 5, max_faults: int = 12) -> Case:
    """A random :class:`Case` of ``adapter``: 1-12 valid rows and ``min_faults``-``max_faults``
    faults (default 5-12) at random places."""
    spec = ADAPTER_CASES[adapter]
    rows = draw(_valid_rows(adapter))
    names = sorted(spec.faults) + sorted(_ENDINGS)
    faults = draw(st.lists(st.tuples(st.sampled_from(names), st.integers(min_value=0, max_value=len(rows))),
                           min_size=min_faults, max_size=max_faults))
    lines = [spec.line(r) for r in rows]
    endings = [b"\n"] * len(rows)
    rejected: Counter = Counter()
    # insert from the back so that earlier positions stay put; a line-ending fault changes the
    # ending of the valid row at that place (it must still be stored)
    for name, pos in sorted(faults, key=lambda f: -f[1]):
        if name in _KEY_DROPPING:
            continue
        if name in _ENDINGS:
            endings[min(pos, len(rows) - 1)] = _ENDINGS[name]
            continue
        make, reason = spec.faults[name]
        template = rows[min(pos, len(rows) - 1)]
        lines.insert(pos, make(template))
        endings.insert(pos, b"\n")
        rejected[reason] += 1
    # a JSONL line lacking a required key goes after the first valid row: the first JSON object's
    # keys name a file's columns, and a file whose first object lacks a required one is refused
    # by name (tested in tests/generator/test_exports_tools.py)
    first_valid = lines.index(spec.line(rows[0]))
    for name, pos in faults:
        if name in _KEY_DROPPING:
            make, reason = spec.faults[name]
            at = max(pos, first_valid + 1)
            lines.insert(at, make(rows[min(pos, len(rows) - 1)]))
            endings.insert(at, b"\n")
            rejected[reason] += 1
    expected = [spec.stored(r, rows) for r in rows]
    return Case(adapter=adapter, data=spec.write(lines, endings), suffix=spec.suffix,
                column_map=spec.column_map, expected=expected, rejected=rejected,
                faults=tuple(name for name, _ in faults))


def _normal(value):
    if isinstance(value, float):
        return round(value, 9)
    return value


def check_case(case: Case) -> None:
    """Ingest ``case`` and check it (raises AssertionError with the case's faults on a mismatch)."""
    from servelab.analysis import ingest

    spec = ADAPTER_CASES[case.adapter]
    with tempfile.TemporaryDirectory(prefix="servelab_fuzz_") as tmp:
        src = Path(tmp) / f"trace{case.suffix}"
        src.write_bytes(case.data)
        store = ingest(src, output=Path(tmp) / "store", column_map=case.column_map, max_line_bytes=MAX_LINE,
                       fmt="auto" if case.column_map is None else "generic", progress=False)
        rows = store.manifest["rows"]
        n_read = len(case.expected) + sum(case.rejected.values())
        where = f"{case.adapter} faults {list(case.faults)}"
        assert rows["read"] == n_read == rows["stored"] + sum(rows["rejected"].values()), (where, rows)
        assert rows["rejected"] == dict(case.rejected), (where, rows["rejected"], dict(case.rejected))
        got_rejected = store.query("SELECT reason, count(*) AS n FROM rejected GROUP BY 1").rows()
        assert dict(got_rejected) == dict(case.rejected), where
        got = [tuple(_normal(v) for v in r) for r in store.query(spec.query).rows()]
        want = [tuple(_normal(v) for v in r) for r in case.expected]
        assert got == want, (where, got, want)
