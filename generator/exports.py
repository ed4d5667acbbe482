"""Write a workload (a canonical polars DataFrame) in the formats replay tools read.

Formats (:data:`EXPORT_FORMATS`):

``parquet``, ``csv``
    The canonical columns as they are (CSV drops list columns such as ``prefix_blocks``).
``burstgpt``
    BurstGPT's 8-column CSV: ``Timestamp, Session ID, Elapsed time, Model, Request tokens,
    Response tokens, Total tokens, Log Type``. ``Session ID`` is the conversation id of requests
    in a multi-turn conversation (``Log Type`` ``Conversation log``), empty otherwise (``API
    log``); ``Elapsed time`` is ``latency_s`` or empty; ``Model`` the ``model`` column or
    ``ChatGPT``.
``mooncake``
    Mooncake JSONL (SGLang, AIPerf and Dynamo replay it): ``timestamp`` (integer ms),
    ``input_length``, ``output_length``, ``hash_ids`` (:func:`workload_hash_ids`). The format
    has no failures and AIPerf refuses ``output_length`` 0: a failed request (``failed`` or 0
    output tokens) is written with ``output_length`` 1.
``jsonl``
    One object per request for custom benchmark clients: ``timestamp`` (s), ``input_tokens``,
    ``output_tokens``, plus ``client_id``, ``conversation_id``, ``parent_id``, ``turn`` when the
    workload has them, then ``failed`` and the multimodal counts and tokens when it has them.
``bailian``
    Bailian (Qwen usage trace) JSONL: ``chat_id``, ``parent_chat_id``, ``timestamp`` (s),
    ``input_length``, ``output_length``, ``type``, ``turn``, ``hash_ids``
    (:mod:`servelab.generator.bailian_export`); ``servelab ingest`` reads it back.
``aiperf``, ``vllm``, ``sglang``, ``guidellm``
    AIPerf multi-turn JSONL (``session_id``, ``timestamp`` / ``delay`` in ms), vLLM bench custom
    JSONL, SGLang bench_serving custom JSONL and guidellm JSONL: see
    :mod:`servelab.generator.export_tools`.

Everything is vectorised (polars writers, numpy for block ids). This module does not generate
workloads and does not read any format back (``servelab ingest`` does).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl
from servelab.generator.exceptions import ExportFormatError
from servelab.generator.bailian_export import bailian_frame
from servelab.generator.export_tools import aiperf_frame, failed_mask, guidellm_frame, sglang_frame, vllm_frame

__all__ = ["EXPORT_FORMATS", "MOONCAKE_BLOCK_TOKENS", "export_workload", "mooncake_hash_ids", "workload_hash_ids"]

EXPORT_FORMATS = ("parquet", "csv", "burstgpt", "mooncake", "jsonl", "aiperf", "vllm", "sglang", "guidellm", "bailian")
#: optional columns the ``jsonl`` export carries after the conversation links, when present
_JSONL_EXTRA = ("failed", "reason_tokens", "text_tokens", "image_tokens", "audio_tokens", "video_tokens",
                "image_count", "audio_count", "video_count")
#: tokens per prompt block in Mooncake's hash_ids
MOONCAKE_BLOCK_TOKENS = 512


def mooncake_hash_ids(frame: pl.DataFrame, *, block_tokens: int = MOONCAKE_BLOCK_TOKENS) -> pl.Series:
    """Prompt block ids consistent with conversation prefixes.

    A request with ``L`` input tokens has ``ceil(L / block)`` blocks. Within one conversation every
    prompt extends the previous turn's (its input holds the earlier inputs and outputs), so a full
    block ``b`` of any turn carries the same id, ``base(conversation) + b``: a follow-up's ids
    extend its parent's. A trailing partial block is unique to its request (the next turn fills
    it with more tokens, so its hash differs), as in Mooncake's published trace. Requests without
    a conversation form their own.

    Returns
    -------
    polars.Series
        ``hash_ids``: list of int64 per row, in the frame's row order.
    """
    if "input_tokens" not in frame.columns:
        raise ExportFormatError(f"hash_ids need the 'input_tokens' column; columns found: {frame.columns}")
    if not (isinstance(block_tokens, int) and block_tokens > 0):
        raise ExportFormatError(f"block_tokens must be a positive integer; got {block_tokens!r}")
    n = frame.height
    tokens = np.maximum(frame["input_tokens"].fill_null(0).to_numpy().astype(np.int64), 0)
    full = tokens // block_tokens
    nb = -(-tokens // block_tokens)
    if "conversation_id" in frame.columns:
        conv = frame.select(
            pl.when(pl.col("conversation_id").is_null())
            .then(pl.lit("\x00row") + pl.int_range(pl.len()).cast(pl.String))
            .otherwise(pl.col("conversation_id")).rank("dense").cast(pl.Int64) - 1
        ).to_series().to_numpy()
    else:
        conv = np.arange(n, dtype=np.int64)
    n_conv = int(conv.max()) + 1 if n else 0
    conv_blocks = np.zeros(n_conv, dtype=np.int64)
    np.maximum.at(conv_blocks, conv, full)
    base = np.r_[0, np.cumsum(conv_blocks)[:-1]] if n_conv else np.zeros(0, np.int64)
    partial = nb > full
    partial_id = int(conv_blocks.sum()) + np.cumsum(partial) - 1
    offsets = np.r_[0, np.cumsum(nb)].astype(np.int64)
    row = np.repeat(np.arange(n), nb)
    b = np.arange(offsets[-1]) - offsets[:-1][row]
    ids = np.where(b < full[row], base[conv[row]] + b, partial_id[row])
    import pyarrow as pa  # only for list columns: a streamed Parquet/CSV export does not need it here

    arr = pa.LargeListArray.from_arrays(pa.array(offsets, pa.int64()), pa.array(ids, pa.int64()))
    return pl.Series("hash_ids", pl.from_arrow(arr)).cast(pl.List(pl.Int64))


def workload_hash_ids(frame: pl.DataFrame, *, block_tokens: int = MOONCAKE_BLOCK_TOKENS) -> pl.Series:
    """The workload's own ``prefix_blocks`` as ``hash_ids`` where set, else :func:`mooncake_hash_ids`.

    A row whose ``prefix_blocks`` is null (or a frame without the column) gets the
    conversation-derived ids; ids of the two kinds never collide (derived ids are shifted past
    the largest given id).
    """
    derived = mooncake_hash_ids(frame, block_tokens=block_tokens)
    if "prefix_blocks" not in frame.columns or frame["prefix_blocks"].null_count() == frame.height:
        return derived
    given = frame["prefix_blocks"].cast(pl.List(pl.Int64))
    shift = int(given.explode().max() or 0) + 1
    return (pl.DataFrame([given.alias("g"), derived.alias("d")])
            .select(pl.when(pl.col("g").is_not_null()).then(pl.col("g"))
                    .otherwise(pl.col("d").list.eval(pl.element() + shift)).alias("hash_ids"))
            .to_series())


def export_workload(frame: pl.DataFrame, path: str | os.PathLike, *, fmt: str = "parquet",
                    block_tokens: int = MOONCAKE_BLOCK_TOKENS, model: str = "ChatGPT") -> Path:
    """Write ``frame`` to ``path`` in format ``fmt`` and return the path.

    Raises
    ------
    ExportFormatError
        For an unknown format or a frame lacking the columns the format needs.
    """
    if fmt not in EXPORT_FORMATS:
        raise ExportFormatError(f"format must be one of {list(EXPORT_FORMATS)}; got {fmt!r}")
    if "timestamp" not in frame.columns:
        raise ExportFormatError(f"a workload needs a 'timestamp' column; columns found: {frame.columns}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        frame.write_parquet(path)
    elif fmt == "csv":
        frame.select([c for c, t in frame.schema.items() if not isinstance(t, (pl.List, pl.Array))]).write_csv(path)
    elif fmt == "burstgpt":
        _need(frame, ("input_tokens", "output_tokens"), fmt)
        _burstgpt(frame, model).write_csv(path)
    elif fmt == "mooncake":
        _need(frame, ("input_tokens", "output_tokens"), fmt)
        frame.select(
            (pl.col("timestamp") * 1000).round().cast(pl.Int64).alias("timestamp"),
            pl.col("input_tokens").alias("input_length"),
            pl.when(failed_mask(frame)).then(1).otherwise(pl.col("output_tokens")).alias("output_length"),
        ).with_columns(workload_hash_ids(frame, block_tokens=block_tokens)).write_ndjson(path)
    elif fmt == "bailian":  # issue 15: keeps prefix_blocks as hash_ids
        _need(frame, ("input_tokens", "output_tokens"), fmt)
        bailian_frame(frame, workload_hash_ids(frame, block_tokens=block_tokens)).write_ndjson(path)
    elif fmt == "jsonl":
        _need(frame, ("input_tokens", "output_tokens"), fmt)
        extra = [c for c in ("client_id", "conversation_id", "parent_id", "turn", *_JSONL_EXTRA)
                 if c in frame.columns]
        frame.select("timestamp", "input_tokens", "output_tokens", *extra).write_ndjson(path)
    else:
        _need(frame, ("input_tokens", "output_tokens"), fmt)
        ordered = frame.sort("timestamp", maintain_order=True)
        ids = workload_hash_ids(ordered, block_tokens=block_tokens)
        if fmt == "aiperf":
            out = aiperf_frame(ordered, ids)
        elif fmt == "vllm":
            out = vllm_frame(ordered, ids, block_tokens=block_tokens)
        elif fmt == "sglang":
            out = sglang_frame(ordered, ids, block_tokens=block_tokens)
        else:
            out = guidellm_frame(ordered, ids, block_tokens=block_tokens)
        out.write_ndjson(path)
    return path


def _need(frame: pl.DataFrame, columns, fmt: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ExportFormatError(f"format {fmt!r} needs columns {missing}; columns found: {frame.columns}")


def _burstgpt(frame: pl.DataFrame, model: str) -> pl.DataFrame:
    if "conversation_id" in frame.columns:
        multi = pl.col("conversation_id").is_not_null() & (pl.len().over("conversation_id") > 1)
    else:
        multi = pl.lit(False)
    latency = pl.col("latency_s") if "latency_s" in frame.columns else pl.lit(None, pl.Float64)
    model_col = pl.col("model").fill_null(model) if "model" in frame.columns else pl.lit(model)
    session = pl.col("conversation_id") if "conversation_id" in frame.columns else pl.lit(None, pl.String)
    return frame.select(
        pl.col("timestamp").alias("Timestamp"),
        pl.when(multi).then(session).otherwise(None).alias("Session ID"),
        latency.alias("Elapsed time"),
        model_col.alias("Model"),
        pl.col("input_tokens").alias("Request tokens"),
        pl.col("output_tokens").alias("Response tokens"),
        (pl.col("input_tokens") + pl.col("output_tokens")).alias("Total tokens"),
        pl.when(multi).then(pl.lit("Conversation log")).otherwise(pl.lit("API log")).alias("Log Type"),
    )
