"""Write a workload chunk by chunk as it is generated (:func:`generate_to`), in bounded memory.

``parquet``, ``csv`` and ``jsonl`` are written as the chunks of
:func:`~servelab.generator.stream.generate_chunks` arrive: Parquet in row groups of exactly
:data:`ROW_GROUP_ROWS` rows (the last one shorter; pyarrow's writer, or polars' own when the whole
workload fits in one row group), CSV and JSONL appended row by row, so the bytes written do not
depend on the chunk size and memory holds one chunk plus one row group. The other
formats of :data:`~servelab.generator.exports.EXPORT_FORMATS` (BurstGPT, Mooncake and the replay
tools' inputs) need the whole workload (conversation-wide block ids, sessions grouped, row
counts per conversation): they are collected in memory and written by
:func:`~servelab.generator.exports.export_workload`.

Every file is written under a temporary name next to the target and renamed when complete. This
module draws nothing itself.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from servelab.generator.exceptions import ExportFormatError

__all__ = ["ROW_GROUP_ROWS", "STREAM_FORMATS", "ChunkWriter", "WriteSummary", "generate_to"]

#: rows per Parquet row group of a streamed workload
ROW_GROUP_ROWS = 1 << 20
#: formats written chunk by chunk; the others are collected and written whole
STREAM_FORMATS = ("parquet", "csv", "jsonl")
#: optional columns the ``jsonl`` export carries after the conversation links, when present
_JSONL_EXTRA = ("failed", "reason_tokens", "text_tokens", "image_tokens", "audio_tokens", "video_tokens",
                "image_count", "audio_count", "video_count")


@dataclass(frozen=True)
class WriteSummary:
    """What :func:`generate_to` wrote: path, format, requests, distinct clients and chunks."""

    path: Path
    fmt: str
    requests: int
    clients: int
    chunks: int
    streamed: bool


class ChunkWriter:
    """Append workload chunks to one file in ``parquet``, ``csv`` or ``jsonl`` (see the module docstring).

    Use as a context manager: the file appears under its name only when the block ends without
    an error.
    """

    def __init__(self, path: str | os.PathLike, fmt: str, *, row_group_rows: int = ROW_GROUP_ROWS):
        if fmt not in STREAM_FORMATS:
            raise ExportFormatError(f"a streamed format must be one of {list(STREAM_FORMATS)}; got {fmt!r}")
        if not (isinstance(row_group_rows, int) and not isinstance(row_group_rows, bool) and row_group_rows > 0):
            raise ExportFormatError(f"row_group_rows must be a positive integer; got {row_group_rows!r}")
        self.path = Path(path)
        self.fmt = fmt
        self.rows = 0
        self._group = int(row_group_rows)
        self._tmp = self.path.with_name(f".{self.path.name}.partial")
        self._pending: list[pl.DataFrame] = []
        self._pending_rows = 0
        self._parquet = None
        self._file = None

    def __enter__(self) -> "ChunkWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.fmt != "parquet":
            self._file = open(self._tmp, "wb")  # noqa: SIM115 - closed in __exit__
        return self

    def write(self, frame: pl.DataFrame) -> None:
        """Append one chunk (rows after every earlier chunk's)."""
        if "timestamp" not in frame.columns:
            raise ExportFormatError(f"a workload needs a 'timestamp' column; columns found: {frame.columns}")
        if self.fmt == "csv":
            frame = frame.select([c for c, t in frame.schema.items() if not isinstance(t, (pl.List, pl.Array))])
            frame.write_csv(self._file, include_header=self.rows == 0)
        elif self.fmt == "jsonl":
            missing = [c for c in ("input_tokens", "output_tokens") if c not in frame.columns]
            if missing:
                raise ExportFormatError(f"format 'jsonl' needs columns {missing}; columns found: {frame.columns}")
            extra = [c for c in ("client_id", "conversation_id", "parent_id", "turn", *_JSONL_EXTRA)
                     if c in frame.columns]
            frame.select("timestamp", "input_tokens", "output_tokens", *extra).write_ndjson(self._file)
        else:
            self._pending.append(frame)
            self._pending_rows += frame.height
            if self._pending_rows >= self._group:
                self._flush(final=False)
        self.rows += frame.height

    def write_header(self, empty: pl.DataFrame) -> None:
        """Give an empty workload its columns (a CSV header, a Parquet schema)."""
        if self.rows:
            return
        if self.fmt == "csv":
            empty.write_csv(self._file)
        elif self.fmt == "parquet":
            self._pending.append(empty)

    def _flush(self, *, final: bool) -> None:
        buf = pl.concat(self._pending, rechunk=True) if len(self._pending) > 1 else self._pending[0]
        if final and self._parquet is None and buf.height <= self._group:
            # the whole workload is one row group: polars' own writer (no pyarrow import, so a short
            # run starts faster); which writer is used depends on the rows only, never on the chunks
            buf.write_parquet(self._tmp, compression="zstd", row_group_size=self._group)
            self._pending, self._pending_rows = [], 0
            return
        import pyarrow.parquet as pq

        n_full = buf.height // self._group * self._group
        stop = buf.height if final else n_full
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self._tmp, buf.to_arrow().schema, compression="zstd")
        for a in range(0, stop, self._group):  # one row group per slice
            piece = buf.slice(a, min(self._group, stop - a)).rechunk()
            self._parquet.write_table(piece.to_arrow(), row_group_size=self._group)
        rest = buf.slice(stop)
        self._pending = [rest] if rest.height else []
        self._pending_rows = rest.height

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None and self.fmt == "parquet":
                if self._pending:
                    self._flush(final=True)
            if self._parquet is not None:
                self._parquet.close()
            if self._file is not None:
                self._file.close()
            if exc_type is None:
                os.replace(self._tmp, self.path)
        finally:
            if exc_type is not None:
                self._tmp.unlink(missing_ok=True)


def generate_to(path: str | os.PathLike, pool, rate, duration: float, *, fmt: str = "parquet",
                chunk_s: float | None = 600.0, naive: bool = False,
                progress: Callable[[int, float], None] | None = None, row_group_rows: int = ROW_GROUP_ROWS,
                **kwargs) -> WriteSummary:
    """Generate a workload and write it to ``path``, chunk by chunk for the streamed formats.

    Parameters
    ----------
    path : str or os.PathLike
        The output file.
    pool, rate, duration
        As in :func:`~servelab.generator.generate.generate`.
    fmt : str
        One of :data:`~servelab.generator.exports.EXPORT_FORMATS`; ``parquet``, ``csv`` and
        ``jsonl`` are streamed (:data:`STREAM_FORMATS`), the others collected first.
    chunk_s : float or None
        Seconds of workload per chunk (None: one chunk). The file's bytes do not depend on it.
    naive : bool
        The naive baseline (:func:`~servelab.generator.naive.naive_plan`) instead of per-client
        composition; ``kwargs`` then take ``start``, ``cv``, ``seed``, ``clock``,
        ``max_requests``.
    progress : callable, optional
        Called after each chunk with ``(requests in the chunk, seconds of workload done)``.
    row_group_rows : int
        Rows per Parquet row group (the last one shorter).
    **kwargs
        The keyword arguments of :func:`~servelab.generator.generate.generate`.

    Returns
    -------
    WriteSummary

    Raises
    ------
    GenerationError
        As :func:`~servelab.generator.generate.generate`.
    ExportFormatError
        For an unknown format or a workload without the columns the format needs.
    """
    from servelab.generator.exports import EXPORT_FORMATS, export_workload
    from servelab.generator.generate import _empty_frame
    from servelab.generator.stream import chunk_frame, iter_plan, plan_generation, prefix_blocks_step

    if fmt not in EXPORT_FORMATS:
        raise ExportFormatError(f"format must be one of {list(EXPORT_FORMATS)}; got {fmt!r}")
    if naive:
        from servelab.generator.naive import naive_plan

        plan = naive_plan(pool, rate, duration, **kwargs)
    else:
        plan = plan_generation(pool, rate, duration, **kwargs)
    seen = np.zeros(len(plan.syn_ids), dtype=bool)
    chunks = 0
    frames = []
    prefix_state = None
    path = Path(path)
    streamed = fmt in STREAM_FORMATS
    writer = ChunkWriter(path, fmt, row_group_rows=row_group_rows) if streamed else None
    if writer is not None:
        writer.__enter__()
    try:
        for rows, base in iter_plan(plan, chunk_s=chunk_s, progress=progress, frames=False):
            if not rows:
                continue
            chunks += 1
            for part in rows:
                seen[part["client"]] = True
            frame = chunk_frame(plan, rows, base)
            if plan.prefixes is not None:
                frame, prefix_state = prefix_blocks_step(plan, frame, rows, prefix_state)
            if writer is not None:
                writer.write(frame)
            else:
                frames.append(frame)
        if writer is not None:
            writer.write_header(_empty_frame(plan))
    except BaseException as err:
        if writer is not None:
            writer.__exit__(type(err), err, err.__traceback__)
        raise
    if writer is not None:
        writer.__exit__(None, None, None)
        n = writer.rows
    else:
        whole = pl.concat(frames, rechunk=True) if frames else _empty_frame(plan)
        export_workload(whole, path, fmt=fmt)
        n = whole.height
    return WriteSummary(path=path, fmt=fmt, requests=int(n), clients=int(seen.sum()), chunks=chunks, streamed=streamed)
