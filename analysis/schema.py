"""The canonical request schema of a trace store (see ARCHITECTURE.md).

One row per request. Only ``timestamp`` is required; every other column is present only when the
source has it. ``request_id`` is assigned at ingest (position in arrival order).
"""
from __future__ import annotations

from types import MappingProxyType

__all__ = ["SCHEMA_VERSION", "CANONICAL_COLUMNS", "REQUIRED_COLUMNS", "TOKEN_COLUMNS", "canonical_order"]

#: bumped whenever a column is added, removed or changes meaning
SCHEMA_VERSION = 1

#: column -> DuckDB type, in canonical order
CANONICAL_COLUMNS = MappingProxyType(
    {
        "request_id": "BIGINT",
        "timestamp": "DOUBLE",
        "client_id": "VARCHAR",
        "model": "VARCHAR",
        "service": "VARCHAR",
        "input_tokens": "BIGINT",
        "output_tokens": "BIGINT",
        "reason_tokens": "BIGINT",
        "text_tokens": "BIGINT",
        "image_tokens": "BIGINT",
        "audio_tokens": "BIGINT",
        "video_tokens": "BIGINT",
        "image_count": "BIGINT",
        "audio_count": "BIGINT",
        "video_count": "BIGINT",
        "conversation_id": "VARCHAR",
        "parent_id": "VARCHAR",
        "turn": "BIGINT",
        "prefix_blocks": "BIGINT[]",
        "latency_s": "DOUBLE",
        "failed": "BOOLEAN",
    }
)

REQUIRED_COLUMNS = ("timestamp",)

#: columns holding non-negative token or item counts
TOKEN_COLUMNS = (
    "input_tokens",
    "output_tokens",
    "reason_tokens",
    "text_tokens",
    "image_tokens",
    "audio_tokens",
    "video_tokens",
    "image_count",
    "audio_count",
    "video_count",
)


def canonical_order(columns) -> list[str]:
    """Return ``columns`` sorted in canonical order; unknown columns are rejected.

    Raises
    ------
    ValueError
        If a column is not part of the canonical schema.
    """
    unknown = [c for c in columns if c not in CANONICAL_COLUMNS]
    if unknown:
        raise ValueError(
            f"columns {unknown} are not in the canonical schema; allowed: {list(CANONICAL_COLUMNS)}"
        )
    order = {name: i for i, name in enumerate(CANONICAL_COLUMNS)}
    return sorted(columns, key=order.__getitem__)
