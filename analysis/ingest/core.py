"""Ingest: raw sources -> a trace store (canonical Parquet, rejected rows, manifest), in DuckDB.

:func:`ingest` resolves and describes the sources, chooses (or checks) the format and builds each
source's plan with its adapter, then runs one of two paths inside
:func:`~servelab.analysis.store.atomic_store_dir`, so a failed ingest leaves nothing behind:

- :mod:`.fast_path`: CSV sources without conversation links (large BurstGPT or Azure files),
  read once and streamed straight into the store;
- :mod:`.general_path`: anything else, and whatever the fast path declines (rows a value check
  rejects, unsorted wall-clock rows), in two passes.

Both read sources with the SQL of :mod:`.reading`, write ``requests.parquet`` sorted by
timestamp and numbered (:mod:`.numbering`), every rejected row to ``rejected.parquet`` with its
reason, and give the same store for the same input (tested). ``read = stored + sum(rejected)``
holds per source and in total; the sha256 of each source is computed in a thread beside DuckDB.

This module never loops over requests in Python and never materialises a source in Python.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import math
import os
import shutil
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

import duckdb

from servelab.analysis.clock import Clock, resolve_clock
from servelab.analysis.exceptions import ColumnMapError, MissingColumnError, TraceFormatError
from servelab.analysis.ingest import aiperf, azure, bailian, burstgpt, fast_path, general_path, generic, mooncake
from servelab.analysis.ingest.manifest import ingest_manifest
from servelab.analysis.ingest.outcome import PathOutcome
from servelab.analysis.ingest.plan import IngestPlan, sql_str
from servelab.analysis.ingest.sources import (
    DEFAULT_MAX_LINE_BYTES,
    Source,
    UnsupportedCompressionError,
    describe_source,
    require_nonempty,
    resolve_sources,
)
from servelab.analysis.ingest.target import (
    StoreLockedError,
    StoreTargetError,
    check_target,
    clean_stale,
    ordinary_permissions,
    target_lock,
)
from servelab.analysis.store import (
    MANIFEST_NAME,
    TraceStore,
    atomic_store_dir,
    duckdb_config,
    open_store,
)

__all__ = [
    "ingest",
    "sniff_format",
    "ADAPTERS",
    "FORMATS",
    "EmptySourceWarning",
    "FormatMismatchWarning",
    "DEFAULT_MEMORY_LIMIT",
    "DEFAULT_MAX_LINE_BYTES",
    "UnsupportedCompressionError",
    "StoreTargetError",
    "StoreLockedError",
]

#: format name -> adapter module (each has NAME, REQUIRED, matches(kind, columns), plan(columns, map))
ADAPTERS: Mapping[str, ModuleType] = {
    burstgpt.NAME: burstgpt,
    azure.NAME: azure,
    aiperf.NAME: aiperf,  # before mooncake: an AIPerf multi-turn file also has Mooncake's columns
    mooncake.NAME: mooncake,
    bailian.NAME: bailian,
    generic.NAME: generic,
}

#: values accepted by ``fmt`` / ``--format``
FORMATS = ("auto", *ADAPTERS)

#: DuckDB memory limit during ingest; beyond it DuckDB spills to a folder inside the new store
DEFAULT_MEMORY_LIMIT = "1GB"

_log = logging.getLogger(__name__)


class EmptySourceWarning(UserWarning):
    """One of several sources holds no data row; it is recorded in the manifest and skipped."""


class FormatMismatchWarning(UserWarning):
    """The format given would drop columns the source carries that another format reads."""


def _reads(adapter: ModuleType, columns: tuple[str, ...]) -> set[str]:
    """The source columns ``adapter`` reads (required and optional)."""
    return set(adapter.REQUIRED + tuple(getattr(adapter, "OPTIONAL", ()))) & set(columns)


def _better_format(fmt: str, source: Source) -> tuple[str, list[str]] | None:
    """Another format that reads every column ``fmt`` reads of ``source`` and more: (name, the
    columns ``fmt`` would drop), the one reading the most columns; None when ``fmt`` is best."""
    own = _reads(ADAPTERS[fmt], source.columns)
    best = None
    for name, other in ADAPTERS.items():
        if name in (fmt, generic.NAME) or other.KIND != source.kind:
            continue
        if not set(other.REQUIRED) <= set(source.columns):
            continue
        theirs = _reads(other, source.columns)
        if theirs > own and (best is None or len(theirs) > len(best[1])):
            best = (name, theirs)
    if best is None:
        return None
    return best[0], [c for c in source.columns if c in best[1] - own]


def _warn_better_formats(fmt: str, sources: list[Source]) -> None:
    """Warn (:class:`FormatMismatchWarning`) when a source's columns match another format better."""
    found: dict[str, tuple[list[str], list[str]]] = {}
    for s in sources:
        better = _better_format(fmt, s)
        if better is not None:
            paths, dropped = found.setdefault(better[0], ([], []))
            paths.append(str(s.path))
            dropped.extend(c for c in better[1] if c not in dropped)
    for name, (paths, dropped) in found.items():
        warnings.warn(
            f"--format {fmt} drops column(s) {', '.join(repr(c) for c in dropped)} that "
            f"{', '.join(paths)} carr{'ies' if len(paths) == 1 else 'y'}; its columns match {name!r}, which reads "
            f"them: use --format {name} (or --format auto)",
            FormatMismatchWarning,
            stacklevel=4,
        )


def sniff_format(source) -> str | None:
    """The known format whose columns a source file has, or None.

    Parameters
    ----------
    source : path-like
        One file.

    Returns
    -------
    str or None
        ``burstgpt``, ``azure``, ``mooncake`` or ``bailian``; None when no known format fits
        (use ``generic`` with a column map).
    """
    described = describe_source(Path(source))
    return _sniff(described)


def _sniff(source: Source) -> str | None:
    for name, adapter in ADAPTERS.items():
        if adapter.matches(source.kind, source.columns):
            return name
    return None


def _known_formats_text() -> str:
    return "; ".join(
        f"{name} ({adapter.KIND}: {', '.join(adapter.REQUIRED)})"
        for name, adapter in ADAPTERS.items()
        if name != generic.NAME
    )


def _choose_format(fmt: str, sources: list[Source], cmap) -> tuple[str, bool]:
    """The format to use and whether it was sniffed; raises for a wrong or unknown format."""
    if fmt not in FORMATS:
        raise TraceFormatError(f"format must be one of {list(FORMATS)}; got {fmt!r}")
    present = [s for s in sources if not s.empty]
    if fmt == "auto" and cmap is not None:
        fmt = generic.NAME
    if fmt == "auto":
        chosen = {}
        for s in present:
            name = _sniff(s)
            if name is None:
                raise TraceFormatError(
                    f"cannot tell the format of {s.path} from its columns "
                    f"[{', '.join(repr(c) for c in s.columns)}]; known formats: {_known_formats_text()}. "
                    "For other logs use --format generic with --column-map FILE.toml"
                )
            chosen[str(s.path)] = name
        names = sorted(set(chosen.values()))
        if len(names) > 1:
            raise TraceFormatError(
                f"sources are of different formats ({chosen}); ingest one format per store"
            )
        return names[0], True
    if fmt == generic.NAME and cmap is None:
        raise ColumnMapError("format 'generic' needs a column map (column_map=... / --column-map FILE.toml)")
    for s in present:
        if fmt == generic.NAME:
            generic.check_columns(cmap, s.columns, source=str(s.path))
            continue
        adapter = ADAPTERS[fmt]
        missing = [c for c in adapter.REQUIRED if c not in s.columns]
        if s.kind != adapter.KIND or missing:
            sniffed = _sniff(s)
            if sniffed is not None and sniffed != fmt:
                what = (f"it is a {s.kind} file, not {adapter.KIND}" if s.kind != adapter.KIND
                        else f"required column {missing[0]!r} is missing")
                raise TraceFormatError(
                    f"{s.path} is not a {fmt!r} trace ({what}; columns found: "
                    f"{', '.join(repr(c) for c in s.columns)}); it looks like {sniffed!r}: "
                    f"use --format {sniffed} (or --format auto)"
                )
            if s.kind != adapter.KIND:
                raise TraceFormatError(
                    f"{s.path} is a {s.kind} file; format {fmt!r} reads {adapter.KIND} files"
                )
            raise MissingColumnError(missing[0], found=s.columns, source=str(s.path), fmt=fmt)
    if fmt != generic.NAME:
        _warn_better_formats(fmt, present)
    return fmt, False


def _sha256(path: Path) -> str:
    """sha256 of the file (read in 4 MiB blocks, in a thread beside DuckDB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(4 * 1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def _progress_wanted(progress: bool | None) -> bool:
    if progress is not None:
        return bool(progress)
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def _connect(spill: Path, *, memory_limit: str | None, threads: int | None, progress: bool) -> duckdb.DuckDBPyConnection:
    config = {**duckdb_config(threads=threads, memory_limit=memory_limit),
              "temp_directory": str(spill), "preserve_insertion_order": True}
    con = duckdb.connect(config=config)
    try:
        con.execute(f"SET enable_progress_bar = {'true' if progress else 'false'}")
    except duckdb.Error:
        # inside a Jupyter kernel without ipywidgets DuckDB refuses the setting: ingest anyway
        pass
    return con


def ingest(
    sources,
    *,
    fmt: str = "auto",
    output: str | os.PathLike,
    overwrite: bool = False,
    column_map=None,
    progress: bool | None = None,
    memory_limit: str | None = DEFAULT_MEMORY_LIMIT,
    threads: int | None = None,
    clock: float | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> TraceStore:
    """Ingest raw trace files into a trace store.

    Parameters
    ----------
    sources : path-like, glob, or a list of them
        The raw files (e.g. ``BurstGPT_1.csv``, ``BurstGPT_2.csv`` or ``"BurstGPT_*.csv"``); all of
        one format. Several files go into one store.
    fmt : str
        One of :data:`FORMATS`. ``auto`` sniffs the known formats from headers / first keys
        (the choice is recorded in the manifest: ``format`` and ``sources[i].sniffed``); with a
        ``column_map``, ``auto`` means ``generic``.
    output : path-like
        The store folder to create.
    overwrite : bool
        Replace an existing store (otherwise :class:`StoreExistsError`); only a servelab store
        (or an empty folder) is replaced, anything else refused (:class:`StoreTargetError`).
    column_map : path-like, Mapping or ColumnMap, optional
        For ``generic``: which source column is what (see :mod:`servelab.analysis.ingest.generic`).
    progress : bool, optional
        DuckDB's progress bar; default: only when stderr is a terminal.
    memory_limit : str, optional
        DuckDB memory limit (default :data:`DEFAULT_MEMORY_LIMIT`); DuckDB spills beyond it.
    threads : int, optional
        DuckDB threads (default: all cores).
    clock : float, optional
        The timestamps' logging step in seconds when the user knows it (recorded as
        ``given: "user"``, the detected clock kept beside it); detected from the gaps when
        omitted (:mod:`servelab.analysis.clock`). Gap analyses censor gaps below it.
    max_line_bytes : int
        The longest line (CSV row or JSONL object) read, in bytes (default
        :data:`DEFAULT_MAX_LINE_BYTES`, 64 MiB); a longer line is one rejected row
        (``line_too_long``, its raw value the line's first 10,000 characters), shorter ones, with
        fields of any length, are stored.

    Returns
    -------
    TraceStore
        The opened store.

    Raises
    ------
    FileNotFoundError
        A source does not exist or a glob matches nothing.
    TraceFormatError
        The format is unknown, wrong for the sources (the message suggests the sniffed one), or
        a source cannot be read.
    UnsupportedCompressionError
        A source is compressed with something other than gzip (``.gz``) or zstd (``.zst``)
        (``.bz2``, ``.xz``, ``.zip``, ``.7z``, ...); the message says how to decompress it.
    MissingColumnError
        A source lacks a column its format requires (names it and the columns found).
    ColumnMapError
        The column map is invalid or names a column a source lacks.
    ValueError
        ``clock`` is not a positive number of seconds.
    EmptyTraceError
        No source holds a data row, or every row was rejected.
    StoreExistsError
        ``output`` exists and ``overwrite`` is false.
    StoreTargetError
        ``output`` is an existing file, the current directory (or holds it), holds a source, or
        (with ``overwrite``) a non-empty folder that is not a servelab store.
    StoreLockedError
        Another ingest into ``output`` is running (an exclusive lock on ``.<name>.lock`` beside
        it); temporary folders of killed ingests into ``output`` are removed by the next one.
    """
    user_clock = check_options(clock, max_line_bytes)
    paths = resolve_sources(sources)
    check_target(Path(output), paths, overwrite=overwrite)
    target = Path(os.path.abspath(output))
    with target_lock(target):
        clean_stale(target)
        _ingest_locked(paths, fmt=fmt, target=Path(output), overwrite=overwrite, column_map=column_map,
                       progress=progress, memory_limit=memory_limit, threads=threads, user_clock=user_clock,
                       max_line_bytes=max_line_bytes)
    return open_store(output)


def check_options(clock, max_line_bytes) -> Clock | None:
    """The user's clock (None when not given), after checking ``clock`` and ``max_line_bytes`` as
    :func:`ingest` documents (shared with the Spark ingest, :mod:`.spark_ingest`).

    Raises
    ------
    ValueError
        ``clock`` is not a positive number of seconds, or ``max_line_bytes`` not an integer >= 1024.
    """
    if clock is not None and (isinstance(clock, bool) or not isinstance(clock, (int, float))
                              or not (math.isfinite(clock) and clock > 0)):
        raise ValueError(f"clock must be a positive number of seconds (the timestamps' logging step); got {clock!r}")
    if isinstance(max_line_bytes, bool) or not isinstance(max_line_bytes, int) or max_line_bytes < 1024:
        raise ValueError(f"max_line_bytes must be an integer number of bytes >= 1024; got {max_line_bytes!r}")
    return resolve_clock(float(clock)) if clock is not None else None


class PreparedSources(NamedTuple):
    """What :func:`prepare_sources` found: each path's :class:`~.sources.Source`, the format, whether
    it was sniffed, and source index -> :class:`~.plan.IngestPlan` of the non-empty sources."""

    described: list[Source]
    fmt: str
    sniffed: bool
    plans: dict[int, IngestPlan]


def prepare_sources(paths, *, fmt: str, column_map, max_line_bytes: int) -> PreparedSources:
    """Describe the sources, choose (or check) the format and plan each non-empty source.

    Shared by both engines (this module and :mod:`.spark_ingest`). Warns
    (:class:`EmptySourceWarning`) for each source without data rows.

    Returns
    -------
    PreparedSources
        ``(described, fmt, sniffed, plans)``.
    """
    cmap = generic.load_column_map(column_map) if column_map is not None else None
    described = [
        describe_source(p, kind=cmap.kind if cmap else None, delimiter=cmap.delimiter if cmap else None,
                        max_line_bytes=max_line_bytes)
        for p in paths
    ]
    require_nonempty(described)
    fmt, sniffed = _choose_format(fmt, described, cmap)
    for s in described:
        if s.empty:
            warnings.warn(
                f"source {s.path} holds no data rows; it is recorded in the manifest and skipped",
                EmptySourceWarning,
                stacklevel=4,
            )
    adapter = ADAPTERS[fmt]
    plans = {i: adapter.plan(s.columns, cmap) for i, s in enumerate(described) if not s.empty}
    return PreparedSources(described, fmt, sniffed, plans)


def _ingest_locked(paths, *, fmt, target: Path, overwrite, column_map, progress, memory_limit, threads,
                   user_clock, max_line_bytes) -> None:
    """The ingest proper, under the target's lock: describe, choose the format, plan, run, write.

    ``target`` is the output as given (errors name it so); :func:`check_target` refused ``.``.
    """
    described, fmt, sniffed, plans = prepare_sources(paths, fmt=fmt, column_map=column_map,
                                                     max_line_bytes=max_line_bytes)
    first_plan = next(iter(plans.values()))
    show_progress = _progress_wanted(progress)

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        digests = {i: pool.submit(_sha256, s.path) for i, s in enumerate(described)}
        with atomic_store_dir(target, overwrite=overwrite) as tmp:
            ordinary_permissions(tmp)
            work = tmp / "_work"
            (work / "spill").mkdir(parents=True)
            con = _connect(work / "spill", memory_limit=memory_limit, threads=threads, progress=show_progress)
            try:
                if first_plan.time.kind == "datetime":
                    con.execute(f"SET TimeZone = {sql_str(first_plan.time.timezone or 'UTC')}")
                outcome = _run(con, described, plans, first_plan, fmt, sniffed, tmp, work, show_progress)
            except duckdb.Error as err:
                raise TraceFormatError(f"reading the {fmt} sources failed: {err}") from None
            finally:
                con.close()
            manifest = ingest_manifest(described, outcome, first_plan, fmt, sniffed)
            for i, s in enumerate(described):
                manifest["sources"][i]["sha256"] = digests[i].result()
            if user_clock is not None:
                _record_user_clock(manifest, user_clock)
            shutil.rmtree(work, ignore_errors=True)
            (tmp / MANIFEST_NAME).write_text(_manifest_json(manifest))


def _manifest_json(manifest: dict) -> str:
    """The manifest as strict JSON; a NaN or infinity in it is a bug, raised, never written."""
    try:
        return json.dumps(manifest, indent=2, allow_nan=False)
    except ValueError as err:
        raise RuntimeError(
            f"servelab bug: the ingest manifest holds a non-finite number ({err}); no store was written"
        ) from None


def _record_user_clock(manifest: dict, user: Clock) -> None:
    """The user's clock replaces the detected one (kept under ``detected``), store and sources."""
    for entry in [manifest, *(m for m in manifest["sources"] if m.get("clock") is not None)]:
        detected = entry.get("clock")
        entry["clock_s"] = user.step_s
        entry["clock"] = {**user.to_json(), "detected": detected}


def _run(con, described, plans, first_plan, fmt, sniffed, tmp: Path, work: Path, show_progress: bool) -> PathOutcome:
    """The fast path when it applies and accepts the sources, else the general path."""
    if fast_path.applies(described, plans, first_plan):
        outcome = fast_path.run(con, described, plans, first_plan, fmt, sniffed, tmp)
        if outcome is not None:
            return outcome
        _log.debug("ingest: fast path declined; general path")
    return general_path.run(con, described, plans, first_plan, fmt, sniffed, tmp, work, show_progress)
