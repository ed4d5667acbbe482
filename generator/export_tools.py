"""Frames in the input formats of the replay tools: AIPerf multi-turn, vLLM bench, SGLang, guidellm.

Each builder takes a canonical workload (a polars DataFrame sorted by ``timestamp``) and returns
the frame that :func:`servelab.generator.exports.export_workload` writes as JSONL. The schemas
follow the tools' own loaders (checked by ``benchmarks/interop.py`` and ``tests/interop``):

``aiperf`` (AIPerf ``mooncake_trace`` loader, multi-turn form)
    ``session_id`` (the conversation id; null for a request outside a conversation, which AIPerf
    makes its own session), ``timestamp`` (ms from the workload start) on the first row of each
    session, ``delay`` (ms) on its later rows, ``input_length``, ``output_length``, ``hash_ids``.
    A session's rows are in turn order. ``delay`` is the arrival gap to the previous turn of the
    session; AIPerf waits it after the previous turn's response, so a replay spaces turns by
    the gap plus the response time (no latency is subtracted: generated workloads have none).
    AIPerf needs ``output_length >= 1``: a failed request (``failed``, or 0 output tokens) is
    written with ``output_length`` 1 (it keeps its arrival and prompt) and ``"failed": true``, a
    key AIPerf ignores and servelab's ``aiperf`` ingest reads back (0 output tokens, failed).
``vllm`` (``vllm bench serve --dataset-name custom``)
    ``prompt`` (text, see :func:`synthetic_prompts`) and ``output_tokens``. vLLM shuffles the
    file and sends at ``--request-rate``: it replays lengths, not times.
``guidellm`` (a JSONL data file)
    ``prompt``, ``prompt_tokens_count``, ``output_tokens_count``, ``relative_timestamp`` (seconds
    after the first request): the column names guidellm's column mapper takes by default for its
    prompt, token counts and the replay profile's schedule. (guidellm's own ``mooncake`` trace
    reader keeps Mooncake's milliseconds as its seconds: give it ``time_scale`` 0.001.)

``sglang`` (``python -m sglang.bench_serving --dataset-name custom``)
    ``conversations``: ``[{"role": "user", "content": prompt}, {"role": "assistant", "content":
    completion}]``, where SGLang counts the output length as the completion's tokens, so the
    completion is ``output_tokens`` filler words. SGLang shuffles the file and drops requests
    with fewer than 2 prompt or output tokens.

SGLang's ``--dataset-name mooncake`` reads the ``mooncake`` export and replays its timestamps,
but builds each prompt from 128 words per hash id: it keeps the arrival times and the prefix
structure, not the input lengths.
Everything is vectorised; this module writes no file.
"""
from __future__ import annotations

import numpy as np
import polars as pl
from servelab.generator.exceptions import ExportFormatError

__all__ = ["failed_mask", "aiperf_frame", "vllm_frame", "guidellm_frame", "sglang_frame", "synthetic_prompts", "session_columns"]

#: filler word of a synthetic prompt (one token in common BPE vocabularies)
_FILLER = " a"


def session_columns(frame: pl.DataFrame) -> tuple[pl.Series, pl.Series]:
    """``timestamp`` (ms) on each session's first row and ``delay`` (ms) on the others.

    A session is a non-null ``conversation_id``; a request without one is its own session (a
    timestamp, no delay). Rows are taken in frame order.

    Returns
    -------
    tuple of polars.Series
        ``timestamp`` and ``delay`` (Float64, null where the other is set), in row order.
    """
    ms = (pl.col("timestamp") * 1000.0).round(3)
    if "conversation_id" in frame.columns:
        conv = pl.col("conversation_id")
        first = conv.is_null() | (pl.int_range(pl.len()).over(conv) == 0)
        prev = pl.col("timestamp").shift(1).over(conv)
        gap = ((pl.col("timestamp") - prev) * 1000.0).round(3)
    else:
        first, gap = pl.lit(True), pl.lit(None, pl.Float64)
    out = frame.select(
        pl.when(first).then(ms).otherwise(None).cast(pl.Float64).alias("timestamp"),
        pl.when(first).then(None).otherwise(gap).cast(pl.Float64).alias("delay"),
    )
    return out["timestamp"], out["delay"]


def failed_mask(frame: pl.DataFrame) -> pl.Series:
    """True for a failed request: ``failed`` set, or 0 output tokens (BurstGPT's convention)."""
    zero = frame["output_tokens"].fill_null(1) == 0
    if "failed" in frame.columns:
        zero = zero | frame["failed"].fill_null(False)
    return zero.alias("failed")


def aiperf_frame(frame: pl.DataFrame, hash_ids: pl.Series) -> pl.DataFrame:
    """AIPerf multi-turn rows (see the module docstring), rows grouped by session in turn order.

    Parameters
    ----------
    frame : polars.DataFrame
        The workload, sorted by ``timestamp``; needs ``input_tokens`` and ``output_tokens``.
    hash_ids : polars.Series
        Prompt block ids per row (:func:`servelab.generator.exports.workload_hash_ids`).
    """
    timestamp, delay = session_columns(frame)
    session = (frame["conversation_id"].cast(pl.String) if "conversation_id" in frame.columns
               else pl.Series("session_id", [None] * frame.height, dtype=pl.String))
    failed = failed_mask(frame)
    out = pl.DataFrame([
        session.alias("session_id"), timestamp, delay,
        frame["input_tokens"].alias("input_length"),
        pl.select(pl.when(failed).then(1).otherwise(frame["output_tokens"])).to_series().alias("output_length"),
        hash_ids.alias("hash_ids"),
    ])
    if failed.any():
        out = out.with_columns(failed.alias("failed"))
    # a session's rows stay together in turn order; sessions ordered by their first request
    # (then by id, so sessions starting in the same microsecond do not interleave)
    key = pl.coalesce(pl.col("session_id"), pl.lit("\x00") + pl.int_range(pl.len()).cast(pl.String))
    return (out.with_columns(pl.col("timestamp").fill_null(strategy="forward").over(key).alias("_start"),
                             key.alias("_key"), pl.int_range(pl.len()).alias("_row"))
            .sort("_start", "_key", "_row").drop("_start", "_key", "_row"))


def synthetic_prompts(input_tokens: pl.Series, hash_ids: pl.Series, *, block_tokens: int) -> pl.Series:
    """Prompt texts whose shared prefixes follow ``hash_ids``: one word per token.

    Block ``b`` of a prompt is the word ``<h>`` (``h`` its hash id) followed by filler words, so
    two prompts share their text exactly as far as they share block ids, and a server's prefix
    cache sees the workload's reuse. A prompt has as many words as ``input_tokens``; the token
    count a model's tokenizer gives is close to it (the ``<h>`` marker is a few tokens), not
    exact: the exact count is in the export beside it.
    """
    n = np.maximum(input_tokens.fill_null(0).to_numpy().astype(np.int64), 0)
    nb = hash_ids.list.len().fill_null(0).to_numpy().astype(np.int64)
    if np.any(nb != -(-n // block_tokens)):
        raise ExportFormatError(f"hash_ids must hold ceil(input_tokens / block_tokens) ids per request "
                                f"(block_tokens={block_tokens}); got {int(np.sum(nb != -(-n // block_tokens)))} "
                                "requests that do not (prefix_blocks of another block size?)")
    row = np.repeat(np.arange(n.size), nb)
    offsets = np.r_[0, np.cumsum(nb)]
    b = np.arange(offsets[-1]) - offsets[:-1][row]
    length = np.minimum(block_tokens, n[row] - b * block_tokens)
    ids = hash_ids.explode().drop_nulls().to_numpy().astype(np.int64)
    marker = np.char.add(np.char.add(" <", ids.astype(str)), ">")
    text = np.char.add(marker, np.char.multiply(_FILLER, np.maximum(length - 1, 0)))
    joined = (pl.DataFrame({"row": row, "text": text}).group_by("row", maintain_order=True)
              .agg(pl.col("text").str.join(""))
              .join(pl.DataFrame({"row": np.arange(n.size)}), on="row", how="right")
              .sort("row"))
    return joined["text"].fill_null("").str.strip_chars_start(" ").alias("prompt")


def vllm_frame(frame: pl.DataFrame, hash_ids: pl.Series, *, block_tokens: int) -> pl.DataFrame:
    """vLLM bench custom-dataset rows: ``prompt`` and ``output_tokens``."""
    return pl.DataFrame([synthetic_prompts(frame["input_tokens"], hash_ids, block_tokens=block_tokens),
                         frame["output_tokens"].alias("output_tokens")])


def guidellm_frame(frame: pl.DataFrame, hash_ids: pl.Series, *, block_tokens: int) -> pl.DataFrame:
    """guidellm rows: ``prompt``, ``prompt_tokens_count``, ``output_tokens_count``, ``relative_timestamp``."""
    t = frame["timestamp"]
    return pl.DataFrame([synthetic_prompts(frame["input_tokens"], hash_ids, block_tokens=block_tokens),
                         frame["input_tokens"].alias("prompt_tokens_count"),
                         frame["output_tokens"].alias("output_tokens_count"),
                         (t - (t.min() if t.len() else 0.0)).alias("relative_timestamp")])


def sglang_frame(frame: pl.DataFrame, hash_ids: pl.Series, *, block_tokens: int) -> pl.DataFrame:
    """SGLang custom-dataset rows: ``conversations`` (a user prompt and a filler completion)."""
    out = np.maximum(frame["output_tokens"].fill_null(0).to_numpy().astype(np.int64), 0)
    completion = pl.Series("completion", np.char.lstrip(np.char.multiply(_FILLER, out)))
    prompts = synthetic_prompts(frame["input_tokens"], hash_ids, block_tokens=block_tokens)
    return pl.DataFrame([prompts, completion]).select(
        pl.concat_list(
            pl.struct(pl.lit("user").alias("role"), pl.col("prompt").alias("content")),
            pl.struct(pl.lit("assistant").alias("role"), pl.col("completion").alias("content")),
        ).alias("conversations"))
