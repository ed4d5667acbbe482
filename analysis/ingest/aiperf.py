"""AIPerf multi-turn JSONL (its ``mooncake_trace`` loader): ``session_id``, ``timestamp`` / ``delay`` (ms),
``input_length``, ``output_length``, ``hash_ids``.

A session's first row carries ``timestamp`` (ms from the trace start), its later rows ``delay``
(ms after the previous turn). Mapping decisions:

- ``timestamp`` of a later turn = the session's first ``timestamp`` + the session's delays so far
  (in file order, which is turn order in AIPerf's format), then ms -> s. A row with its own
  ``timestamp`` keeps it. The delay is read as the arrival gap (what servelab's ``aiperf``
  export writes); a trace whose delays are think times after a response gets arrivals early by
  the response times.
- ``session_id`` -> ``conversation_id`` (null: a request of its own); ``turn`` = the row's rank in
  its session, in file order (null outside a session);
- ``hash_ids`` -> ``prefix_blocks``;
- ``failed`` (a key AIPerf ignores; servelab's export writes it because AIPerf needs
  ``output_length >= 1``) -> ``failed``, and a failed request's ``output_tokens`` is 0.

The reader takes a JSONL file's keys from its first line, so that line must carry
``session_id``, ``timestamp``, ``delay``, ``input_length`` and ``output_length`` (null where unset,
as servelab's ``aiperf`` export writes them); a file whose first line lacks ``delay`` is refused
naming the missing key. Rows are ordered within a session by their line in the file, which the two-pass reader numbers:
the plan asks for it (``link_conversations``; there is no ``parent_id``, so no link is
followed). Origin wall clock unknown (None). This module only builds a plan.
"""
from __future__ import annotations

from servelab.analysis.ingest.plan import Field, IngestPlan, TimeSpec, ident

__all__ = ["NAME", "KIND", "REQUIRED", "OPTIONAL", "matches", "plan"]

NAME = "aiperf"
KIND = "jsonl"
REQUIRED = ("session_id", "timestamp", "delay", "input_length", "output_length")
OPTIONAL = ("hash_ids", "failed")


def matches(kind: str, columns: tuple[str, ...]) -> bool:
    """True when a source looks like AIPerf multi-turn JSONL (sessions with delays)."""
    return kind == KIND and {"session_id", "delay", "input_length"} <= set(columns)


def _window(expr: str, *, cumulative: bool) -> str:
    frame = " ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW" if cumulative else ""
    return f"{expr} OVER (PARTITION BY {ident('session_id')} ORDER BY _line{frame})"


def plan(columns: tuple[str, ...], column_map=None) -> IngestPlan:
    """The ingest plan for an AIPerf multi-turn JSONL trace."""
    own = f"TRY_CAST({ident('timestamp')} AS DOUBLE)"
    first = _window(f"first_value({own})", cumulative=True)
    delays = _window(f"sum(COALESCE(TRY_CAST({ident('delay')} AS DOUBLE), 0))", cumulative=True)
    rank = _window("row_number()", cumulative=True)
    failed = f"lower(trim({ident('failed')})) IN ('true', '1')" if "failed" in columns else None
    output = (Field("output_tokens", f"CASE WHEN {failed} THEN '0' ELSE {ident('output_length')} END", "count")
              if failed else Field.of("output_tokens", "output_length", "count"))
    fields = [
        Field.of("input_tokens", "input_length", "count"),
        output,
        Field.of("conversation_id", "session_id", "string", required=False),
        Field("turn", f"CASE WHEN {ident('session_id')} IS NULL THEN NULL ELSE CAST({rank} AS VARCHAR) END",
              "count", required=False),
    ]
    if "hash_ids" in columns:
        fields.append(Field.of("prefix_blocks", "hash_ids", "list", required=False))
    if failed:
        fields.append(Field.of("failed", "failed", "bool", required=False))
    return IngestPlan(
        fmt=NAME,
        time=TimeSpec(
            raw=f"CAST(COALESCE({own}, {first} + {delays}) AS VARCHAR)",
            kind="number",
            scale=1e-3,
            origin_note="AIPerf traces give milliseconds from the trace start without a wall-clock origin: "
            "origin unknown (None)",
        ),
        fields=tuple(fields),
        notes=(
            "timestamp (first turn) + cumulative delay -> timestamp, ms -> s",
            "session_id -> conversation_id; turn = rank in the session in file order",
            "hash_ids -> prefix_blocks",
            *(("failed -> failed; a failed request's output_tokens = 0",) if failed else ()),
        ),
        link_conversations=True,
    )
