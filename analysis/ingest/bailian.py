"""Bailian (Qwen) usage traces, JSONL: ``chat_id``, ``parent_chat_id``, ``timestamp`` (s), ``input_length``,
``output_length``, ``type``, ``turn``, ``hash_ids``.

Mapping decisions:

- ``parent_chat_id`` -> ``parent_id`` (``-1``, a first turn, -> NULL);
- ``conversation_id`` is derived: the ``chat_id`` of the conversation's first turn, found by
  following ``parent_chat_id`` links (in SQL, over the whole trace). A turn whose parent is not
  in the trace (a window cut) starts its own conversation, named by its own ``chat_id``;
- ``turn`` -> ``turn`` as given;
- ``type`` (text, search, image, file) -> ``service``: it is the request category a platform
  routes by, which is what per-service analyses split on (ServeGen reports by category);
- ``hash_ids`` -> ``prefix_blocks``.

The row's own ``chat_id`` is not a canonical column; parent links resolve through
``conversation_id`` and ``turn``. Origin wall clock unknown (None). This module only builds a
plan; the conversation roots are computed by the core (``IngestPlan.link_conversations``).
"""
from __future__ import annotations

from servelab.analysis.ingest.plan import Field, IngestPlan, TimeSpec, ident

__all__ = ["NAME", "KIND", "REQUIRED", "OPTIONAL", "matches", "plan"]

NAME = "bailian"
KIND = "jsonl"
REQUIRED = ("chat_id", "parent_chat_id", "timestamp", "input_length", "output_length")
OPTIONAL = ("type", "turn", "hash_ids")


def matches(kind: str, columns: tuple[str, ...]) -> bool:
    """True when a source looks like a Bailian trace (JSONL with chat links)."""
    return kind == KIND and {"chat_id", "parent_chat_id"} <= set(columns)


def plan(columns: tuple[str, ...], column_map=None) -> IngestPlan:
    """The ingest plan for a Bailian JSONL trace."""
    parent = f"trim({ident('parent_chat_id')})"
    fields = [
        Field.of("input_tokens", "input_length", "count"),
        Field.of("output_tokens", "output_length", "count"),
        # the chat id rides along in conversation_id; the core replaces it by the root's id
        Field.of("conversation_id", "chat_id", "string"),
        Field("parent_id", f"CASE WHEN {parent} IN ('-1', '') THEN NULL ELSE {parent} END", "string",
              required=False),
    ]
    if "type" in columns:
        fields.append(Field("service", f"lower({ident('type')})", "string", required=False))
    if "turn" in columns:
        fields.append(Field.of("turn", "turn", "count", required=False))
    if "hash_ids" in columns:
        fields.append(Field.of("prefix_blocks", "hash_ids", "list", required=False))
    return IngestPlan(
        fmt=NAME,
        time=TimeSpec(
            raw=ident("timestamp"), column="timestamp",
            kind="number",
            origin_note="Bailian publishes seconds from the trace start without a wall-clock origin: "
            "origin unknown (None)",
        ),
        fields=tuple(fields),
        notes=(
            "parent_chat_id -> parent_id (-1 -> null)",
            "conversation_id = chat_id of the first turn, following parent_chat_id links",
            "type -> service (request category)",
            "hash_ids -> prefix_blocks",
        ),
        link_conversations=True,
    )
