"""Bailian-style JSONL rows of a workload (the ``bailian`` export format; issue 15).

One object per request, in the field names of Alibaba Bailian's published Qwen usage traces,
which ``servelab ingest`` reads back (:mod:`servelab.analysis.ingest.bailian`): ``chat_id`` (the
request's row number in timestamp order), ``parent_chat_id`` (the parent's ``chat_id``, -1 for a
first turn or a parent outside the workload), ``timestamp`` (s), ``input_length``,
``output_length``, ``type`` (the ``service`` column, else ``text``), ``turn`` (1 without
conversations) and ``hash_ids`` (the workload's ``prefix_blocks`` where set, else ids derived from
conversations: :func:`~servelab.generator.exports.workload_hash_ids`).

This module builds the frame only; :func:`~servelab.generator.exports.export_workload` writes it.
"""
from __future__ import annotations

import polars as pl

__all__ = ["bailian_frame"]


def bailian_frame(frame: pl.DataFrame, hash_ids: pl.Series) -> pl.DataFrame:
    """The Bailian-style rows of ``frame`` (sorted by timestamp) with its ``hash_ids``.

    ``parent_id`` names the parent's row in ``frame`` (as the generator writes it); rows are
    renumbered in timestamp order and the links follow.
    """
    n = frame.height
    order = frame.select(pl.int_range(n, dtype=pl.Int64).alias("row"), "timestamp").sort(
        "timestamp", maintain_order=True)["row"]
    chat = pl.Series("chat", [0] * n, dtype=pl.Int64).scatter(order, pl.int_range(n, dtype=pl.Int64, eager=True))
    if "parent_id" in frame.columns:
        parent = frame["parent_id"].cast(pl.Int64, strict=False)
        valid = parent.is_not_null() & (parent >= 0) & (parent < n)
        parent_chat = pl.select(pl.when(valid).then(chat.gather(parent.fill_null(0).clip(0, max(n - 1, 0))))
                                .otherwise(-1)).to_series()
    else:
        parent_chat = pl.Series([-1] * n, dtype=pl.Int64)
    kind = frame["service"].fill_null("text") if "service" in frame.columns else pl.Series(["text"] * n)
    turn = frame["turn"].fill_null(1).cast(pl.Int64) if "turn" in frame.columns else pl.Series([1] * n, dtype=pl.Int64)
    out = pl.DataFrame({
        "chat_id": chat, "parent_chat_id": parent_chat.cast(pl.Int64), "timestamp": frame["timestamp"],
        "input_length": frame["input_tokens"], "output_length": frame["output_tokens"], "type": kind,
        "turn": turn, "hash_ids": hash_ids,
    })
    return out.gather(order)
