"""The shared ingest core: raw sources -> canonical Parquet, rejected rows and a manifest, in DuckDB.

How a source is read (one pass over the raw file each):

1. Everything is read as VARCHAR (CSV through ``read_csv(all_varchar=true, store_rejects=true)``,
   so malformed lines are kept in DuckDB's reject tables and counted, not lost; JSONL as one text
   value per line, parsed with DuckDB's JSON functions, so an invalid line is a row too;
   Parquet columns cast to VARCHAR).
2. The adapter's plan (:class:`~servelab.analysis.ingest.plan.IngestPlan`) becomes ``TRY_CAST``
   expressions and one ``CASE`` that gives each row its reject reason (``malformed_line``,
   ``missing_timestamp``, ``unparseable_timestamp``, ``nan_timestamp``, ``missing_<col>``,
   ``non_numeric_<col>``, ``negative_<col>``, ``non_integer_<col>``, ``invalid_<col>``,
   ``malformed_<col>``). CSV columns that the format types (times, token counts) are parsed by
   the CSV reader itself, whose reject table keeps the lines that do not parse.
3. The typed rows go to a temporary Parquet part inside the store being built.

Then small passes over the parts: counts per source and reason, exact duplicates (stored rows
equal in every stored column; kept), unsorted rows (a row earlier than the row before it in its source;
sorted, and counted), the origin; the stored rows are written sorted by timestamp with
``request_id``, every rejected row to ``rejected.parquet`` with its source, row number, reason and
raw values as JSON, and the manifest. All of it happens inside
:func:`~servelab.analysis.store.atomic_store_dir`, so a failed ingest leaves nothing behind.
``read = stored + sum(rejected)`` holds per source and in total.

The fast path (CSV sources without conversation links: large BurstGPT or Azure files) reads
each file once: DuckDB's typed, checked rows stream in file order into a
polars Parquet sink that adds ``request_id`` and counts unsorted rows and duplicates on the way
(:mod:`.numbering`). The first row a SQL check rejects stops it, and the general path above runs
instead; the two give the same store (tested).

This module never loops over requests in Python and never materialises a source in Python.
"""
from __future__ import annotations

import concurrent.futures
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

import duckdb
import numpy as np

from servelab.analysis.exceptions import (
    ColumnMapError,
    EmptyTraceError,
    MissingColumnError,
    TraceFormatError,
)
from servelab.analysis.ingest import azure, bailian, burstgpt, generic, mooncake
from servelab.analysis.ingest.numbering import StreamQueryError, write_numbered
from servelab.analysis.ingest.plan import IngestPlan, ident, sql_str
from servelab.analysis.ingest.sources import Source, describe_source, resolve_sources
from servelab.analysis.schema import CANONICAL_COLUMNS, canonical_order
from servelab.analysis.store import (
    MANIFEST_NAME,
    REJECTED_NAME,
    REQUESTS_NAME,
    TraceStore,
    atomic_store_dir,
    build_manifest,
    open_store,
)

__all__ = [
    "ingest",
    "sniff_format",
    "ADAPTERS",
    "FORMATS",
    "EmptySourceWarning",
    "DEFAULT_MEMORY_LIMIT",
]

#: format name -> adapter module (each has NAME, REQUIRED, matches(kind, columns), plan(columns, map))
ADAPTERS: Mapping[str, ModuleType] = {
    burstgpt.NAME: burstgpt,
    azure.NAME: azure,
    mooncake.NAME: mooncake,
    bailian.NAME: bailian,
    generic.NAME: generic,
}

#: values accepted by ``fmt`` / ``--format``
FORMATS = ("auto", *ADAPTERS)

#: DuckDB memory limit during ingest; beyond it DuckDB spills to a folder inside the new store
DEFAULT_MEMORY_LIMIT = "1GB"

_MAX_LINE = 64 * 1024 * 1024  # JSONL lines with long hash_ids lists

_log = logging.getLogger(__name__)


class _Timer:
    """Logs (at DEBUG) how long each ingest phase took."""

    def __init__(self) -> None:
        self.t = time.perf_counter()

    def __call__(self, phase: str) -> None:
        now = time.perf_counter()
        _log.debug("ingest phase %-22s %7.2f s", phase, now - self.t)
        self.t = now


class EmptySourceWarning(UserWarning):
    """One of several sources holds no data row; it is recorded in the manifest and skipped."""


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
    return fmt, False


# ---------------------------------------------------------------------------------------------
# pass 1: one source -> typed Parquet part with a reject reason per row


# counts are parsed as DOUBLE so that 20.5 is rejected as non-integer (DuckDB would round it)
_NATIVE = {"count": "DOUBLE", "seconds": "DOUBLE"}


def _native_types(plan: IngestPlan, source: Source) -> dict[str, str]:
    """CSV columns the reader parses natively (typed): column -> DuckDB type.

    Values that do not parse land in DuckDB's reject table with their line (reason
    ``unparseable_timestamp`` / ``non_numeric_<col>``); the rest of the checks run in SQL.
    A column wanted with two different types stays VARCHAR (checked in SQL).
    """
    if source.kind != "csv":
        return {}
    wanted: dict[str, set[str]] = {}
    t = plan.time
    if t.column is not None:
        if t.kind == "number":
            wanted.setdefault(t.column, set()).add("DOUBLE")
        elif t.datetime_format is None:
            wanted.setdefault(t.column, set()).add("TIMESTAMPTZ")
    for f in plan.fields:
        if f.column is not None and f.kind in _NATIVE:
            wanted.setdefault(f.column, set()).add(_NATIVE[f.kind])
    return {c: next(iter(types)) for c, types in wanted.items() if len(types) == 1 and c in source.columns}


def _raw_relation(source: Source, index: int, native: Mapping[str, str]) -> tuple[str, str]:
    """SQL of the raw relation and of the raw-values JSON expression.

    The relation has the source's columns (VARCHAR, or natively typed for CSV columns in
    ``native``) plus ``_line`` (1-based line, NULL for CSV where it is computed later) and
    ``_bad`` (the line is not a well-formed record).
    """
    path = sql_str(source.path)
    cols = source.columns
    raw_json = "json_object(" + ", ".join(f"{sql_str(c)}, {ident(c)}" for c in cols) + ")"
    if source.kind == "csv":
        types = "{" + ", ".join(f"{sql_str(c)}: {sql_str(native.get(c, 'VARCHAR'))}" for c in cols) + "}"
        rel = (
            f"SELECT *, CAST(NULL AS BIGINT) AS _line, false AS _bad FROM read_csv({path}, header = true, "
            f"delim = {sql_str(source.delimiter)}, types = {types}, store_rejects = true, "
            f"rejects_table = 'rejects_{index}', rejects_scan = 'rejects_scan_{index}')"
        )
        return rel, raw_json
    if source.kind == "jsonl":
        paths = "[" + ", ".join(sql_str('$."' + c.replace('"', '\\"') + '"') for c in cols) + "]"
        extract = ", ".join(f"_vals[{i + 1}] AS {ident(c)}" for i, c in enumerate(cols))
        rel = (
            f"SELECT {extract}, _line, NOT _ok AS _bad, line FROM ("
            f"SELECT *, CASE WHEN _ok THEN json_extract_string(line, {paths}) END AS _vals FROM ("
            f"SELECT _line, line, json_valid(line) AND starts_with(ltrim(line), '{{') AS _ok FROM ("
            f"SELECT row_number() OVER () AS _line, line FROM read_csv({path}, columns = {{'line': 'VARCHAR'}}, "
            f"header = false, delim = '\x01', quote = '', escape = '', auto_detect = false, "
            f"max_line_size = {_MAX_LINE})) WHERE line IS NOT NULL AND trim(line) <> ''))"
        )
        return rel, "CASE WHEN _bad THEN json_object('line', line) ELSE line END"
    # parquet
    casts = ", ".join(f"CAST({ident(c)} AS VARCHAR) AS {ident(c)}" for c in cols)
    rel = (
        f"SELECT {casts}, file_row_number + 1 AS _line, false AS _bad "
        f"FROM read_parquet({path}, file_row_number = true)"
    )
    return rel, raw_json


def _empty(expr: str) -> str:
    return f"({expr} IS NULL OR trim({expr}) = '')"


def _scale_sql(scale: float) -> str:
    """SQL suffix turning units into seconds; divides by 1000 (not * 0.001) so ms are exact."""
    if scale == 1.0:
        return ""
    inverse = 1.0 / scale
    if abs(inverse - round(inverse)) < 1e-9:
        return f" / {float(round(inverse))!r}"
    return f" * {scale!r}"


def _pass1_sql(plan: IngestPlan, rel: str, raw_json: str, index: int, native: Mapping[str, str]) -> str:
    """SQL turning the raw relation into typed canonical columns + _ts, _reason, _line, _src, _raw."""
    t = plan.time
    t_native = t.column is not None and t.column in native
    if t.kind == "number":
        scale = _scale_sql(t.scale)
        t_parse = f"{ident(t.column)}{scale}" if t_native else f"TRY_CAST({t.raw} AS DOUBLE){scale}"
    elif t_native:
        t_parse = f"epoch_us({ident(t.column)})"
    elif t.datetime_format is None:
        t_parse = f"epoch_us(TRY_CAST({t.raw} AS TIMESTAMPTZ))"
    else:
        t_parse = f"epoch_us(CAST(TRY_STRPTIME({t.raw}, {sql_str(t.datetime_format)}) AS TIMESTAMPTZ))"
    parse = [f"{t_parse} AS _t"]
    checks = ["WHEN _bad THEN 'malformed_line'"]
    if t_native:
        checks.append(f"WHEN {ident(t.column)} IS NULL THEN 'missing_timestamp'")
    else:
        parse.append(f"{t.raw} AS _traw")
        checks.append(f"WHEN {_empty('_traw')} THEN 'missing_timestamp'")
        checks.append("WHEN _t IS NULL THEN 'unparseable_timestamp'")
    if t.kind == "number":
        checks.append("WHEN isnan(_t) OR isinf(_t) THEN 'nan_timestamp'")
    out = []
    for i, f in enumerate(plan.fields):
        r, v, c = f"_r{i}", f"_v{i}", f.canonical
        if f.column is not None and f.kind in _NATIVE and native.get(f.column) == _NATIVE[f.kind]:
            # parsed by the CSV reader: unparseable values are already in its reject table
            parse.append(f"{ident(f.column)} AS {v}")
            if f.required:
                checks.append(f"WHEN {v} IS NULL THEN 'missing_{c}'")
            checks.append(f"WHEN isnan({v}) OR isinf({v}) THEN 'non_numeric_{c}'")
            checks.append(f"WHEN {v} < 0 THEN 'negative_{c}'")
            if f.kind == "count":
                checks.append(f"WHEN {v} <> floor({v}) OR {v} >= 9.2e18 THEN 'non_integer_{c}'")
                out.append(f"TRY_CAST({v} AS BIGINT) AS {ident(c)}")
            else:
                out.append(f"{v} AS {ident(c)}")
            continue
        parse.append(f"{f.raw} AS {r}")
        if f.required:
            checks.append(f"WHEN {_empty(r)} THEN 'missing_{c}'")
        if f.kind in ("count", "seconds"):
            parse.append(f"TRY_CAST({r} AS DOUBLE) AS {v}")
            checks.append(f"WHEN NOT {_empty(r)} AND ({v} IS NULL OR isnan({v}) OR isinf({v})) THEN 'non_numeric_{c}'")
            checks.append(f"WHEN {v} < 0 THEN 'negative_{c}'")
            if f.kind == "count":
                checks.append(f"WHEN {v} <> floor({v}) OR (TRY_CAST({v} AS BIGINT) IS NULL AND {v} IS NOT NULL) "
                              f"THEN 'non_integer_{c}'")
                out.append(f"TRY_CAST({v} AS BIGINT) AS {ident(c)}")
            else:
                out.append(f"{v} AS {ident(c)}")
        elif f.kind == "bool":
            parse.append(f"TRY_CAST(lower(trim({r})) AS BOOLEAN) AS {v}")
            checks.append(f"WHEN NOT {_empty(r)} AND {v} IS NULL THEN 'invalid_{c}'")
            out.append(f"{v} AS {ident(c)}")
        elif f.kind == "list":
            parse.append(f"TRY_CAST({r} AS BIGINT[]) AS {v}")
            checks.append(
                f"WHEN NOT {_empty(r)} AND ({v} IS NULL OR len(list_filter({v}, lambda x: x IS NULL)) > 0) "
                f"THEN 'malformed_{c}'"
            )
            out.append(f"{v} AS {ident(c)}")
        else:  # string
            text = f"NULLIF(trim({r}), '')"
            if f.values:
                text = (f"CASE {text} " + " ".join(f"WHEN {sql_str(a)} THEN {sql_str(b)}" for a, b in f.values)
                        + f" ELSE {text} END")
            out.append(f"{text} AS {ident(c)}")
    level_a = f"SELECT *, {', '.join(parse)} FROM ({rel})"
    level_b = f"SELECT *, CASE {' '.join(checks)} END AS _reason FROM ({level_a})"
    level_c = (
        f"SELECT _t AS _ts, {', '.join(out) + ', ' if out else ''}_reason, _line, "
        f"CAST({index} AS INTEGER) AS _src, CASE WHEN _reason IS NOT NULL THEN {raw_json} END AS _raw "
        f"FROM ({level_b})"
    )
    if plan.derived:
        derived = ", ".join(f"{expr} AS {ident(name)}" for name, expr in plan.derived.items())
        return f"SELECT *, {derived} FROM ({level_c})"
    return level_c


def _reader_reason_sql(plan: IngestPlan, native: Mapping[str, str]) -> str:
    """CASE mapping a CSV reader reject (error_type, column_name) to a reject reason."""
    whens = []
    if plan.time.column is not None and plan.time.column in native:
        whens.append(f"WHEN error_type = 'CAST' AND column_name = {sql_str(plan.time.column)} "
                     "THEN 'unparseable_timestamp'")
    for f in plan.fields:
        if f.column is not None and f.kind in _NATIVE and native.get(f.column) == _NATIVE[f.kind]:
            whens.append(f"WHEN error_type = 'CAST' AND column_name = {sql_str(f.column)} "
                         f"THEN 'non_numeric_{f.canonical}'")
    return f"CASE {' '.join(whens)} ELSE 'malformed_line' END"


# ---------------------------------------------------------------------------------------------


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
    config = {"temp_directory": str(spill), "preserve_insertion_order": True}
    if memory_limit:
        config["memory_limit"] = memory_limit
    if threads:
        config["threads"] = threads
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
        Replace an existing store (otherwise :class:`StoreExistsError`).
    column_map : path-like, Mapping or ColumnMap, optional
        For ``generic``: which source column is what (see :mod:`servelab.analysis.ingest.generic`).
    progress : bool, optional
        DuckDB's progress bar; default: only when stderr is a terminal.
    memory_limit : str, optional
        DuckDB memory limit (default :data:`DEFAULT_MEMORY_LIMIT`); DuckDB spills beyond it.
    threads : int, optional
        DuckDB threads (default: all cores).

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
    MissingColumnError
        A source lacks a column its format requires (names it and the columns found).
    ColumnMapError
        The column map is invalid or names a column a source lacks.
    EmptyTraceError
        No source holds a data row, or every row was rejected.
    StoreExistsError
        ``output`` exists and ``overwrite`` is false.
    """
    paths = resolve_sources(sources)
    cmap = generic.load_column_map(column_map) if column_map is not None else None
    described = [
        describe_source(p, kind=cmap.kind if cmap else None, delimiter=cmap.delimiter if cmap else None)
        for p in paths
    ]
    if all(s.empty for s in described):
        names = ", ".join(str(s.path) for s in described)
        raise EmptyTraceError(f"no data rows in {names}: the file is empty or holds a header only")
    fmt, sniffed = _choose_format(fmt, described, cmap)
    for s in described:
        if s.empty:
            warnings.warn(
                f"source {s.path} holds no data rows; it is recorded in the manifest and skipped",
                EmptySourceWarning,
                stacklevel=2,
            )
    adapter = ADAPTERS[fmt]
    plans = {i: adapter.plan(s.columns, cmap) for i, s in enumerate(described) if not s.empty}
    first_plan = next(iter(plans.values()))
    show_progress = _progress_wanted(progress)

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        digests = {i: pool.submit(_sha256, s.path) for i, s in enumerate(described)}
        with atomic_store_dir(output, overwrite=overwrite) as tmp:
            work = tmp / "_work"
            (work / "spill").mkdir(parents=True)
            con = _connect(work / "spill", memory_limit=memory_limit, threads=threads, progress=show_progress)
            try:
                if first_plan.time.kind == "datetime":
                    con.execute(f"SET TimeZone = {sql_str(first_plan.time.timezone or 'UTC')}")
                manifest = _run(con, described, plans, first_plan, fmt, sniffed, tmp, work, show_progress)
            except duckdb.Error as err:
                raise TraceFormatError(f"reading the {fmt} sources failed: {err}") from None
            finally:
                con.close()
            for i, s in enumerate(described):
                manifest["sources"][i]["sha256"] = digests[i].result()
            shutil.rmtree(work, ignore_errors=True)
            (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2))
    return open_store(output)


def _run(con, described, plans, first_plan, fmt, sniffed, tmp: Path, work: Path, show_progress: bool) -> dict:
    tick = _Timer()
    if _fast_path_applies(described, plans, first_plan):
        manifest = _run_fast(con, described, plans, first_plan, fmt, sniffed, tmp)
        if manifest is not None:
            return manifest
        tick("fast path declined")
    parts: dict[int, Path] = {}
    natives: dict[int, Mapping[str, str]] = {}
    iterator = list(plans.items())
    if show_progress and len(iterator) > 1:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="ingest", unit="file", file=sys.stderr)
    for i, plan in iterator:
        s = described[i]
        native = _native_types(plan, s)
        natives[i] = native
        rel, raw_json = _raw_relation(s, i, native)
        part = work / f"part_{i:05d}.parquet"
        try:
            con.execute(f"COPY ({_pass1_sql(plan, rel, raw_json, i, native)}) TO {sql_str(part)} (FORMAT parquet)")
        except duckdb.Error as err:
            raise TraceFormatError(f"cannot read {s.path} as {s.kind} ({fmt}): {err}") from None
        parts[i] = part
    tick("read sources")

    part_list = "[" + ", ".join(sql_str(p) for p in parts.values()) + "]"
    scan = f"read_parquet({part_list}, union_by_name = true, file_row_number = true)"

    _malformed_table(con, list(parts), described, plans, natives)

    # counts per source and reason; span per source
    counts = con.sql(
        f"SELECT _src, _reason, count(*) AS n, min(_ts) AS lo, max(_ts) AS hi FROM {scan} GROUP BY ALL"
    ).fetchall()
    bad_lines = con.sql("SELECT src, reason, count(*) FROM malformed GROUP BY ALL").fetchall()
    per_source: dict[int, dict] = {i: {"stored": 0, "rejected": {}, "lo": None, "hi": None} for i in parts}
    for src, reason, n, lo, hi in counts:
        entry = per_source[src]
        if reason is None:
            entry["stored"] = int(n)
            entry["lo"], entry["hi"] = lo, hi
        else:
            entry["rejected"][reason] = int(n)
    for src, reason, n in bad_lines:
        rej = per_source[src]["rejected"]
        rej[reason] = rej.get(reason, 0) + int(n)

    total_stored = sum(e["stored"] for e in per_source.values())
    rejected_total: dict[str, int] = {}
    for e in per_source.values():
        for reason, n in e["rejected"].items():
            rejected_total[reason] = rejected_total.get(reason, 0) + n
    if total_stored == 0:
        raise EmptyTraceError(
            f"every row was rejected ({', '.join(f'{k}: {v}' for k, v in sorted(rejected_total.items()))}); "
            "nothing to store. Check the format and the column map"
        )

    tick("counts")
    # unsorted rows per source (vectorised over the stored timestamps, in source order)
    for i, part in parts.items():
        ts = np.asarray(con.sql(f"SELECT _ts FROM read_parquet({sql_str(part)}) WHERE _reason IS NULL").fetchnumpy()["_ts"])
        per_source[i]["unsorted"] = int(np.count_nonzero(np.diff(ts) < 0))
        del ts
    tick("unsorted")
    unsorted_total = sum(e["unsorted"] for e in per_source.values())
    ordered_sources = [per_source[i] for i in parts if per_source[i]["stored"]]
    across = any(b["lo"] < a["hi"] for a, b in zip(ordered_sources, ordered_sources[1:]))

    # origin and timestamp expression
    t = first_plan.time
    lo = min(e["lo"] for e in per_source.values() if e["lo"] is not None)
    hi = max(e["hi"] for e in per_source.values() if e["hi"] is not None)
    origin = None
    zone = None
    if t.kind == "datetime":
        origin_us = int(lo)
        ts_expr = f"CAST(_ts - {origin_us} AS DOUBLE) / 1e6"
        zone = t.timezone or "UTC"
        origin = _wall_clock(origin_us / 1e6, zone)
        span = (0.0, (int(hi) - origin_us) / 1e6)
    elif t.epoch:
        ts_expr = f"_ts - {float(lo)!r}"
        zone = t.timezone or "UTC"
        origin = _wall_clock(float(lo), zone)
        span = (0.0, float(hi) - float(lo))
    else:
        ts_expr = "_ts"
        span = (float(lo), float(hi))

    # canonical columns: union over the sources' plans
    present = set()
    for plan in plans.values():
        present.update(plan.columns)
    columns = canonical_order(sorted(present))
    select = ", ".join(f"CAST({ident(c)} AS {CANONICAL_COLUMNS[c]}) AS {ident(c)}" for c in columns)
    select = f"CAST({ts_expr} AS DOUBLE) AS timestamp" + (f", {select}" if select else "")
    source_rel = f"(SELECT * FROM {scan} WHERE _reason IS NULL)"
    if first_plan.link_conversations and "conversation_id" in present and "parent_id" in present:
        _conversation_roots(con, scan)
        source_rel = (
            f"(SELECT p.* REPLACE (COALESCE(r.root, p.conversation_id) AS conversation_id) FROM {source_rel} p "
            f"LEFT JOIN conversation_roots r ON p.conversation_id = r.chat)"
        )
        needs_sort = True
    else:
        needs_sort = unsorted_total > 0 or across
    if needs_sort:
        body = f"SELECT {select} FROM {source_rel} ORDER BY _ts, _src, file_row_number"
    else:
        body = f"SELECT {select} FROM {source_rel}"
    # numbered as it streams (a row_number() window here ran single-threaded: 7.3 s of 19.7 s at
    # 10 M rows); the stream is sorted, so its tied rows are adjacent and it counts the duplicates
    duplicates = write_numbered(con, body, tmp / REQUESTS_NAME).duplicates

    tick("write requests")
    # rejected rows: typed-check rejects (row number computed for CSV) + malformed lines
    con.execute(
        "CREATE TEMP TABLE malformed_q AS SELECT src, line - row_number() OVER (PARTITION BY src ORDER BY line) - 1 AS q "
        "FROM malformed"
    )
    names = "CASE _src " + " ".join(f"WHEN {i} THEN {sql_str(described[i].path)}" for i in parts) + " END"
    mal_names = "CASE src " + " ".join(f"WHEN {i} THEN {sql_str(described[i].path)}" for i in parts) + " END"
    con.execute(
        f"COPY (SELECT source, row, reason, raw FROM ("
        f"SELECT _src AS src_i, {names} AS source, "
        f"CAST(COALESCE(_line, file_row_number + 2 + (SELECT count(*) FROM malformed_q m WHERE m.src = r._src "
        f"AND m.q <= r.file_row_number)) AS BIGINT) AS row, _reason AS reason, _raw AS raw "
        f"FROM {scan} r WHERE _reason IS NOT NULL "
        f"UNION ALL SELECT src, {mal_names}, line, reason, raw FROM malformed) ORDER BY src_i, row) "
        f"TO {sql_str(tmp / REJECTED_NAME)} (FORMAT parquet)"
    )

    tick("write rejected")
    return _manifest(described, per_source, first_plan, fmt, sniffed, columns, duplicates, span,
                     origin=origin, zone=zone, across=across)


def _manifest(described, per_source, plan: IngestPlan, fmt, sniffed, columns, duplicates, span, *,
              origin, zone, across: bool) -> dict:
    """The manifest: per-source and total rows read / stored / rejected by reason."""
    sources_meta = []
    rejected_total: dict[str, int] = {}
    for i, s in enumerate(described):
        e = per_source.get(i, {"stored": 0, "rejected": {}, "unsorted": 0})
        rejected = dict(sorted(e["rejected"].items()))
        for reason, n in rejected.items():
            rejected_total[reason] = rejected_total.get(reason, 0) + n
        meta = {
            "path": str(s.path), "sha256": None, "format": fmt, "kind": s.kind, "sniffed": sniffed,
            "columns": list(s.columns), "rows_read": e["stored"] + sum(rejected.values()),
            "rows_stored": e["stored"], "rows_rejected": rejected, "unsorted": e["unsorted"],
        }
        if s.empty:
            meta["empty"] = True
        sources_meta.append(meta)
    total_stored = sum(e["stored"] for e in per_source.values())
    rejected_total = dict(sorted(rejected_total.items()))
    rows = {
        "read": total_stored + sum(rejected_total.values()),
        "stored": total_stored,
        "rejected": rejected_total,
        "duplicates": duplicates,
        "unsorted": sum(e["unsorted"] for e in per_source.values()),
    }
    return build_manifest(
        fmt=fmt,
        sources=sources_meta,
        columns=["request_id", "timestamp", *columns],
        rows=rows,
        span=span,
        origin=origin,
        timezone=zone,
        extra={"ingest": {
            "sniffed": sniffed,
            "origin_note": plan.time.origin_note,
            "notes": list(plan.notes),
            "duplicates": "rows equal in every stored column to another row (by 64-bit hash), kept",
            "unsorted": "rows earlier than the previous row of their source; the store is sorted"
                        + (" (sources also overlap in time)" if across else ""),
            "rejected_rows": "rejected.parquet: source, row (1-based line of the file, header = line 1; "
                             "Parquet: 1-based row; for CSV rows rejected by a value check the line is "
                             "counted from data rows, so it is off after blank lines or multi-line "
                             "records), reason, raw values as JSON",
        }},
    )


def _malformed_table(con, indices, described, plans, natives) -> None:
    """Temp table ``malformed(src, line, reason, raw)``: lines the CSV reader rejected.

    One row per line (a malformed line, or a typed value that does not parse), from DuckDB's
    reject tables ``rejects_<i>``.
    """
    malformed_sql = []
    for i in indices:
        if described[i].kind == "csv":
            reason = _reader_reason_sql(plans[i], natives[i])
            malformed_sql.append(
                f"SELECT CAST({i} AS INTEGER) AS src, CAST(line AS BIGINT) AS line, "
                f"arg_min({reason}, (error_type = 'CAST')::INTEGER * 1000000 + COALESCE(column_idx, 0)) AS reason, "
                f"json_object('line', trim(first(csv_line), chr(10) || chr(13)), "
                f"'error', string_agg(error_message, '; ')) AS raw "
                f"FROM rejects_{i} GROUP BY line"
            )
    con.execute("DROP TABLE IF EXISTS malformed")
    if malformed_sql:
        con.execute("CREATE TEMP TABLE malformed AS " + " UNION ALL ".join(malformed_sql))
    else:
        con.execute("CREATE TEMP TABLE malformed (src INTEGER, line BIGINT, reason VARCHAR, raw VARCHAR)")


def _fast_path_applies(described, plans, first_plan: IngestPlan) -> bool:
    """CSV sources without conversation links: read once, straight to the store."""
    return all(described[i].kind == "csv" for i in plans) and not first_plan.link_conversations


#: message of the DuckDB error() that stops the fast path at the first row a SQL check rejects
_SQL_REJECT = "servelab-fast-path: a row fails a value check"


def _run_fast(con, described, plans, plan: IngestPlan, fmt, sniffed, tmp: Path) -> dict | None:
    """Single-pass ingest of CSV sources: stored rows stream straight into ``requests.parquet``.

    DuckDB parses and checks the rows on all threads; :func:`.numbering.write_numbered` adds
    ``request_id`` and writes the Parquet (the sources one after the other, each in file order),
    and counts unsorted rows and exact duplicates on the way. Rows the CSV reader rejects are in
    its reject tables. The first row that a SQL value check would reject stops the stream
    (DuckDB ``error()``), and the caller falls back to the general two-pass path, which records
    such rows with their reasons. Unsorted rows (in a file, or a file starting before the
    previous one ends) with times relative to the trace start are sorted in a second pass over
    the Parquet; with wall-clock times (whose origin, the earliest row, was taken to be the
    first) they fall back. Returns the manifest, or None to fall back.
    """
    tick = _Timer()
    indices = list(plans)
    names = "CASE src " + " ".join(f"WHEN {i} THEN {sql_str(described[i].path)}" for i in indices) + " END"
    present: set[str] = set()
    for p in plans.values():
        present.update(p.columns)
    columns = canonical_order(sorted(present))
    natives = {i: _native_types(plans[i], described[i]) for i in indices}
    pass1 = {i: _pass1_sql(plans[i], *_raw_relation(described[i], i, natives[i]), i, natives[i]) for i in indices}
    requests = tmp / REQUESTS_NAME

    def drop_reader_tables(*extra: str) -> None:
        for i in indices:
            for table in (f"rejects_{i}", f"rejects_scan_{i}"):
                con.execute(f"DROP TABLE IF EXISTS {table}")
        for table in extra:
            con.execute(f"DROP TABLE IF EXISTS {table}")

    def cannot_read(err) -> TraceFormatError:
        paths = ", ".join(str(described[i].path) for i in indices)
        return TraceFormatError(f"cannot read {paths} as csv ({fmt}): {err}")

    t = plan.time
    origin_ts = None
    if t.kind == "datetime" or t.epoch:
        # wall-clock times are stored relative to the earliest row; when the rows are in order
        # that is the first stored row (DuckDB keeps file order under LIMIT). The stream checks
        # the order: unsorted rows fall back to the general path, which takes the minimum.
        try:
            first = con.execute(f"SELECT _ts FROM ({pass1[indices[0]]}) WHERE _reason IS NULL LIMIT 1").fetchall()
        except duckdb.Error as err:
            raise cannot_read(err) from None
        finally:
            drop_reader_tables()
        if not first:
            return None  # the first file stores nothing: the general path says why
        origin_ts = first[0][0]
        ts_expr = (f"CAST(_ts - {int(origin_ts)} AS DOUBLE) / 1e6" if t.kind == "datetime"
                   else f"_ts - {float(origin_ts)!r}")
    else:
        ts_expr = "_ts"
    queries = []
    for i in indices:
        own = set(plans[i].columns)
        select = "".join(
            f", CAST({ident(c) if c in own else 'NULL'} AS {CANONICAL_COLUMNS[c]}) AS {ident(c)}" for c in columns
        )
        queries.append(
            f"SELECT CAST({ts_expr} AS DOUBLE) AS timestamp{select} FROM ({pass1[i]}) "
            f"WHERE CASE WHEN _reason IS NULL THEN true ELSE error({sql_str(_SQL_REJECT)}) END"
        )
    try:
        summary = write_numbered(con, queries, requests)
    except (duckdb.Error, StreamQueryError) as err:
        requests.unlink(missing_ok=True)
        if _SQL_REJECT in str(err):
            drop_reader_tables()
            return None
        raise cannot_read(err) from None
    tick("fast: read + write")
    _malformed_table(con, indices, described, plans, natives)
    reader_rejects: dict[int, dict[str, int]] = {i: {} for i in indices}
    for src, reason, n in con.execute("SELECT src, reason, count(*) FROM malformed GROUP BY ALL").fetchall():
        reader_rejects[src][reason] = int(n)
    if summary.rows == 0:
        requests.unlink(missing_ok=True)
        total: dict[str, int] = {}
        for rejected in reader_rejects.values():
            for reason, n in rejected.items():
                total[reason] = total.get(reason, 0) + n
        raise EmptyTraceError(
            f"every row was rejected ({', '.join(f'{k}: {v}' for k, v in sorted(total.items()))}); "
            "nothing to store. Check the format and the column map"
        )
    if summary.unsorted and origin_ts is not None:
        requests.unlink()
        drop_reader_tables("malformed")
        return None
    duplicates = summary.duplicates
    if summary.unsorted:
        # stable sort (ties keep their stream order: the streamed request_id), numbered again; the
        # duplicates are counted on the sorted stream, where tied rows are adjacent
        streamed = tmp / "_work" / "streamed.parquet"
        requests.rename(streamed)
        duplicates = write_numbered(
            con, f"SELECT * EXCLUDE (request_id) FROM read_parquet({sql_str(streamed)}) ORDER BY timestamp, request_id",
            requests,
        ).duplicates
        streamed.unlink()
        tick("fast: sort")
    con.execute(
        f"COPY (SELECT {names} AS source, line AS row, reason, raw FROM malformed ORDER BY src, line) "
        f"TO {sql_str(tmp / REJECTED_NAME)} (FORMAT parquet)"
    )
    parts = dict(zip(indices, summary.parts, strict=True))
    per_source = {i: {"stored": parts[i].rows, "rejected": reader_rejects[i], "unsorted": parts[i].unsorted}
                  for i in indices}
    full = [parts[i] for i in indices if parts[i].rows]
    across = any(b.lo < a.hi for a, b in zip(full, full[1:]))
    origin = zone = None
    if origin_ts is not None:
        zone = t.timezone or "UTC"
        origin = _wall_clock(int(origin_ts) / 1e6 if t.kind == "datetime" else float(origin_ts), zone)
    return _manifest(described, per_source, plan, fmt, sniffed, columns, duplicates, (summary.lo, summary.hi),
                     origin=origin, zone=zone, across=across)


def _wall_clock(epoch_s: float, zone: str) -> dt.datetime:
    from zoneinfo import ZoneInfo

    return dt.datetime.fromtimestamp(epoch_s, tz=dt.timezone.utc).astimezone(ZoneInfo(zone))


def _conversation_roots(con: duckdb.DuckDBPyConnection, scan: str) -> None:
    """Table ``conversation_roots(chat, root)``: the first request's id of each request's chain."""
    con.execute(
        f"CREATE TEMP TABLE links AS SELECT DISTINCT conversation_id AS chat, parent_id AS parent "
        f"FROM {scan} WHERE _reason IS NULL"
    )
    con.execute(
        "CREATE TEMP TABLE conversation_roots AS "
        "WITH RECURSIVE walk(chat, root, depth) AS ("
        "SELECT chat, chat, 0 FROM links WHERE parent IS NULL OR parent NOT IN (SELECT chat FROM links) "
        "UNION ALL SELECT l.chat, w.root, w.depth + 1 FROM links l JOIN walk w ON l.parent = w.chat "
        "WHERE w.depth < 100000) "
        "SELECT chat, min(root) AS root FROM walk GROUP BY chat"
    )
