"""Mooncake JSONL (Kimi, FAST'25): ``timestamp`` (ms), ``input_length``, ``output_length``, ``hash_ids``.

``timestamp`` is milliseconds from the trace start and becomes seconds; ``hash_ids`` (ids of the
prompt's 512-token blocks) -> ``prefix_blocks`` (BIGINT[]). The trace publishes no wall-clock
origin: the store's origin is unknown (None). This module only builds a plan.
"""
from __future__ import annotations

from servelab.analysis.ingest.plan import Field, IngestPlan, TimeSpec, ident

__all__ = ["NAME", "KIND", "REQUIRED", "OPTIONAL", "matches", "plan"]

NAME = "mooncake"
KIND = "jsonl"
REQUIRED = ("timestamp", "input_length", "output_length")
OPTIONAL = ("hash_ids",)


def matches(kind: str, columns: tuple[str, ...]) -> bool:
    """True when a source looks like Mooncake (and not Bailian, which adds chat links)."""
    return kind == KIND and set(REQUIRED) <= set(columns) and "chat_id" not in columns


def plan(columns: tuple[str, ...], column_map=None) -> IngestPlan:
    """The ingest plan for a Mooncake JSONL trace."""
    fields = [
        Field.of("input_tokens", "input_length", "count"),
        Field.of("output_tokens", "output_length", "count"),
    ]
    if "hash_ids" in columns:
        fields.append(Field.of("prefix_blocks", "hash_ids", "list", required=False))
    return IngestPlan(
        fmt=NAME,
        time=TimeSpec(
            raw=ident("timestamp"), column="timestamp",
            kind="number",
            scale=1e-3,
            origin_note="Mooncake publishes milliseconds from the trace start without a wall-clock origin: "
            "origin unknown (None)",
        ),
        fields=tuple(fields),
        notes=("timestamp ms -> s", "hash_ids -> prefix_blocks"),
    )
