"""How one source is read: the SQL that turns its raw rows into typed canonical columns with a
reject reason per row, and the CSV reader's own rejects.

1. Everything is read as VARCHAR (CSV through ``read_csv(..., store_rejects=true)``, so
   malformed lines are kept in DuckDB's reject tables and counted, not lost; JSONL as one text
   value per line, parsed with DuckDB's JSON functions, so an invalid line is a row too;
   Parquet columns cast to VARCHAR), except the columns :func:`native_types` reads typed.
2. The adapter's plan (:class:`~servelab.analysis.ingest.plan.IngestPlan`) becomes ``TRY_CAST``
   expressions and one ``CASE`` that gives each row its reject reason (``malformed_line``,
   ``missing_timestamp``, ``unparseable_timestamp``, ``nan_timestamp`` (a NaN or infinite
   number), ``invalid_utf8`` (a line that is not UTF-8), ``nonfinite_timestamp`` (a date-time ``infinity`` / ``-infinity``), ``missing_<col>``,
   ``non_numeric_<col>``, ``negative_<col>``, ``non_integer_<col>``, ``invalid_<col>``,
   ``malformed_<col>``). CSV columns that the format types (times, token counts) are parsed by
   the CSV reader itself, whose reject table keeps the lines that do not parse
   (:func:`malformed_table` gives them their reasons).

This module builds SQL text and temp tables; it writes no files and decides nothing about the
store (that is :mod:`.fast_path` and :mod:`.general_path`).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import logging
import time
from collections.abc import Mapping
from pathlib import Path

import duckdb

from servelab.analysis.exceptions import TraceFormatError
from servelab.analysis.ingest.manifest import wall_clock
from servelab.analysis.ingest.plan import IngestPlan, TimeSpec, ident, sql_str
from servelab.analysis.ingest.sources import Source
from servelab.analysis.schema import canonical_order

__all__ = [
    "PhaseTimer",
    "native_types",
    "raw_relation",
    "stage_lines",
    "streamed_jsonl_relation",
    "typed_rows_sql",
    "malformed_table",
    "is_retryable_read_error",
    "retry_source",
    "lf_copy",
    "stored_columns",
    "reader_buffer",
    "source_names_sql",
    "relative_time_sql",
    "stored_span",
]


_log = logging.getLogger("servelab.analysis.ingest")


class PhaseTimer:
    """Logs (at DEBUG) how long each ingest phase took."""

    def __init__(self) -> None:
        self.t = time.perf_counter()

    def __call__(self, phase: str) -> None:
        now = time.perf_counter()
        _log.debug("ingest phase %-22s %7.2f s", phase, now - self.t)
        self.t = now


#: DuckDB's default CSV line limit: a file with a longer line fails the sniffing read, and the retry
#: (:func:`retry_source`) reads it with the source's own limit
_DUCKDB_MAX_LINE = 2 * 1024 * 1024

# counts are parsed as DOUBLE so that 20.5 is rejected as non-integer (DuckDB would round it)
_NATIVE = {"count": "DOUBLE", "seconds": "DOUBLE"}


def native_types(plan: IngestPlan, source: Source) -> dict[str, str]:
    """Columns read typed instead of as text: column -> DuckDB type.

    CSV: the reader parses them; values that do not parse land in DuckDB's reject table with
    their line (reason ``unparseable_timestamp`` / ``non_numeric_<col>``); the rest of the
    checks run in SQL. A column wanted with two different types stays VARCHAR (checked in SQL).
    Parquet: numeric columns wanted as numbers are cast to DOUBLE, which is what their text
    would have been parsed to (3.0 s of 9.4 s at 10 M rows went to the round trip through text).
    """
    if source.kind == "parquet":
        typed = dict(zip(source.columns, source.types, strict=False))
        wanted_numbers = {plan.time.column} if plan.time.kind == "number" else set()
        wanted_numbers |= {f.column for f in plan.fields if f.kind in _NATIVE}
        return {c: "DOUBLE" for c in wanted_numbers
                if c is not None and _is_number(typed.get(c, ""))}
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


_NUMBER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER",
                 "UBIGINT", "FLOAT", "DOUBLE")


def _is_number(duckdb_type: str) -> bool:
    return duckdb_type in _NUMBER_TYPES or duckdb_type.startswith("DECIMAL")


def raw_relation(source: Source, index: int, native: Mapping[str, str]) -> tuple[str, str]:
    """SQL of the raw relation and of the raw-values JSON expression.

    The relation has the source's columns (VARCHAR, or typed for the CSV and Parquet columns in
    ``native``) plus ``_line`` (1-based line, NULL for CSV where it is computed later) and
    ``_bad`` (the line is not a well-formed record). A JSONL relation reads the table that
    :func:`stage_lines` makes: run that first.
    """
    path = sql_str(source.path)
    cols = source.columns
    raw_json = _raw_values_json(cols)
    if source.kind == "csv":
        types = "{" + ", ".join(f"{sql_str(c)}: {sql_str(native.get(c, 'VARCHAR'))}" for c in cols) + "}"
        if source.fixed_dialect:
            # the retry after the sniffer (or DuckDB's 2 MB default line limit) failed on the file:
            # no sniffing, the header's columns, and servelab's line limit (a longer line is a
            # reject row, LINE SIZE OVER MAXIMUM)
            dialect = (f"auto_detect = false, quote = '\"', escape = '\"', columns = {types}, "
                       f"max_line_size = {source.max_line_bytes}, buffer_size = {reader_buffer(source)}")
        elif source.max_line_bytes < _DUCKDB_MAX_LINE:
            dialect = f"types = {types}, max_line_size = {source.max_line_bytes}"
        else:
            dialect = f"types = {types}"
        rel = (
            f"SELECT *, CAST(NULL AS BIGINT) AS _line, CAST(NULL AS VARCHAR) AS _bad FROM read_csv({path}, header = true, "
            f"delim = {sql_str(source.delimiter)}, {dialect}, store_rejects = true, "
            f"rejects_table = 'rejects_{index}', rejects_scan = 'rejects_scan_{index}')"
        )
        return rel, raw_json
    if source.kind == "jsonl":
        paths = "[" + ", ".join(sql_str('$."' + c.replace('"', '\\"') + '"') for c in cols) + "]"
        extract = ", ".join(f"_vals[{i + 1}] AS {ident(c)}" for i, c in enumerate(cols))
        rel = (
            f"SELECT {extract}, _line, CASE WHEN _read_bad IS NOT NULL THEN _read_bad "
            f"WHEN NOT _ok THEN 'malformed_line' END AS _bad, line FROM ("
            f"SELECT *, CASE WHEN _ok THEN json_extract_string(line, {paths}) END AS _vals FROM ("
            f"SELECT _line, line, _read_bad, _read_bad IS NULL AND json_valid(line) AND starts_with(ltrim(line), '{{') AS _ok "
            f"FROM {_lines_table(index)} WHERE line IS NOT NULL AND trim(line) <> ''))"
        )
        return rel, "CASE WHEN _bad IS NOT NULL THEN json_object('line', line) ELSE line END"
    # parquet
    casts = ", ".join(f"CAST({ident(c)} AS {native.get(c, 'VARCHAR')}) AS {ident(c)}" for c in cols)
    rel = (
        f"SELECT {casts}, file_row_number + 1 AS _line, CAST(NULL AS VARCHAR) AS _bad "
        f"FROM read_parquet({path}, file_row_number = true)"
    )
    return rel, raw_json


def streamed_jsonl_relation(source: Source) -> tuple[str, str]:
    """SQL of a JSONL source's raw relation for the fast path: DuckDB's ``read_json``, in parallel.

    Every wanted key is read as VARCHAR, which gives the same text as
    ``json_extract_string`` in :func:`raw_relation` (numbers, ``true``, lists and objects as
    JSON text; checked 2026-11-23). It has no line numbers and no rows for bad lines: a line
    that is not a JSON object makes the query fail, and the fast path then hands the file to
    the general path, which rejects such lines with their line numbers.
    """
    cols = source.columns
    columns = "{" + ", ".join(f"{sql_str(c)}: 'VARCHAR'" for c in cols) + "}"
    rel = (
        f"SELECT *, CAST(NULL AS BIGINT) AS _line, CAST(NULL AS VARCHAR) AS _bad FROM read_json({sql_str(source.path)}, "
        f"format = 'newline_delimited', records = true, columns = {columns}, "
        f"maximum_object_size = {source.max_line_bytes})"
    )
    return rel, _raw_values_json(cols)


#: the smallest read buffer of an uncompressed text source (DuckDB caps it at the file's size)
_MIN_BUFFER = 256 * 1024 * 1024


def reader_buffer(source: Source) -> int:
    """DuckDB ``buffer_size`` for reading ``source`` with its line limit.

    DuckDB drops a line longer than its read buffer without a reject row (seen with DuckDB
    2.0.1: a 200 kB line, a 100 kB limit and a 200 kB buffer gave no row and no reject), so the
    buffer is kept far above the limit: for a plain file ``max(16 x limit, 256 MiB)`` (DuckDB
    caps it at the file's size, so small files cost nothing); for a compressed one, whose buffer
    is allocated in full, ``2 x limit`` (16 x 64 MiB ran out of memory at the 1 GB limit). A
    single line over that buffer (1 GiB for a plain file, 128 MiB compressed, with the default
    limit) is the remaining case DuckDB does not report.
    """
    if source.compression:
        return 2 * source.max_line_bytes
    return max(16 * source.max_line_bytes, _MIN_BUFFER)


def _raw_values_json(cols) -> str:
    """SQL of a row's raw values as a JSON object (kept with each rejected row)."""
    return "json_object(" + ", ".join(f"{sql_str(c)}, {ident(c)}" for c in cols) + ")"


def _lines_table(index: int) -> str:
    return f"jsonl_lines_{index}"


def stage_lines(con: duckdb.DuckDBPyConnection, source: Source, index: int) -> str | None:
    """For a JSONL source: a temp table of its lines with their 1-based line numbers.

    Numbering lines takes a ``row_number()`` window, and everything DuckDB computes above a
    window runs on one thread; so the lines are numbered once into a table (0.6 s for 2 M lines
    of 230 MB), whose scan the JSON parsing then runs on all threads (8.9 s -> 4.9 s for the
    typed rows of those lines, 2026-11-23). The table spills to the ingest's temp folder beyond
    the memory limit. Returns the table name (drop it when done), or None for other kinds.
    """
    if source.kind != "jsonl":
        return None
    table = _lines_table(index)
    # DuckDB's default buffer for a compressed file is 16 x max_line_size (1 GiB here), more than
    # the default memory limit: gzipped JSONL failed with "Out of Memory". Plain files keep the default.
    buffer = f", buffer_size = {reader_buffer(source)}" if source.compression else ""
    # a line that is not valid UTF-8 (reason invalid_utf8) or otherwise unreadable (malformed_line)
    # lands in the reader's reject table (with its 1-based line) instead of failing the file; the surviving lines are renumbered around it below
    rejects = f"jsonl_encoding_{index}"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {table} AS "
        f"SELECT row_number() OVER () AS _line, line, CAST(NULL AS VARCHAR) AS _read_bad FROM read_csv({sql_str(source.path)}, "
        f"columns = {{'line': 'VARCHAR'}}, header = false, delim = '\x01', quote = '', escape = '', "
        f"auto_detect = false, max_line_size = {source.max_line_bytes}{buffer}, store_rejects = true, "
        f"rejects_table = '{rejects}', rejects_scan = '{rejects}_scan')"
    )
    try:
        if con.execute(f"SELECT count(*) FROM {rejects}").fetchone()[0]:
            _renumber_around_rejects(con, table, rejects)
    finally:
        con.execute(f"DROP TABLE IF EXISTS {rejects}")
        con.execute(f"DROP TABLE IF EXISTS {rejects}_scan")
    return table


def _renumber_around_rejects(con: duckdb.DuckDBPyConnection, table: str, rejects: str) -> None:
    """Give the staged lines their file line numbers again and add the rejected lines as rows.

    With the rejected file lines L1 < L2 < ... (the k-th one has Lk - k kept lines before it),
    the kept line numbered r is file line r + #{k : Lk - k < r}. Runs only when a line was
    rejected, so a clean file pays one count of an empty table.
    """
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _rej_lines AS SELECT line AS l, "
        f"CAST(line - row_number() OVER (ORDER BY line) AS BIGINT) AS before, "
        f"trim(first(csv_line), chr(10) || chr(13)) AS raw, "
        f"CASE WHEN bool_or(error_type = 'INVALID ENCODING') THEN 'invalid_utf8' "
        f"WHEN bool_or(error_type = 'LINE SIZE OVER MAXIMUM') THEN 'line_too_long' ELSE 'malformed_line' END AS why "
        f"FROM {rejects} GROUP BY line"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {table} AS "
        f"SELECT _line + (SELECT count(*) FROM _rej_lines WHERE before < _line) AS _line, line, _read_bad "
        f"FROM {table} UNION ALL SELECT l, raw, why FROM _rej_lines ORDER BY _line"
    )
    con.execute("DROP TABLE _rej_lines")


#: DuckDB read errors that a second read may cure: one line ending unlike the others (LF in a
#: CRLF file or the reverse, or a lone CR) makes the sniffer give up or the parser stop; a line
#: over DuckDB's default 2 MB limit stops the sniffer or the reader
_RETRY_ERRORS = ("Error when sniffing file", "state machine reached an invalid state", "Maximum line size")

_CHUNK = 16 * 1024 * 1024


def is_retryable_read_error(err: BaseException) -> bool:
    """Whether a DuckDB read error is one that :func:`retry_source` may cure."""
    return any(m in str(err) for m in _RETRY_ERRORS)


def retry_source(source: Source, folder: Path, index: int) -> Source | None:
    """The source to read again after DuckDB's reader failed on it (:func:`is_retryable_read_error`).

    Text sources only (None for Parquet). The file's line endings are made uniform in a copy
    when they are mixed (:func:`lf_copy`); a CSV is then read with a fixed dialect and the
    source's line limit (``Source.fixed_dialect``), so an over-long row is one rejected row
    (``line_too_long``) and long fields under the limit are stored. Clean files never get here.
    """
    if source.kind not in ("csv", "jsonl"):
        return None
    copy = lf_copy(source, folder, index)
    retry = copy if copy is not None else source
    if source.kind == "csv":
        return dataclasses.replace(retry, fixed_dialect=True)
    return copy


def lf_copy(source: Source, folder: Path, index: int) -> Source | None:
    """A copy of ``source`` with every CRLF and every lone CR turned into LF, in ``folder``; None
    if it has no CR.

    Used only after a read failed (:func:`is_retryable_read_error`), so clean files never pay for
    it. A CRLF becomes one LF (line numbers kept); a lone CR (a classic Mac line ending) ends a
    line, as Python's universal newlines read it, so the rows it ends are read, not rejected
    (lines after it are numbered in the copy). The copy is uncompressed and read in place of the
    file; rejected rows still name the original path (the caller's ``described``).
    """
    if source.kind not in ("csv", "jsonl"):
        return None
    out = folder / f"lf_{index:05d}.{source.kind}"
    if source.compression == "zstd":
        return _zstd_lf_copy(source, out)
    opener = gzip.open if source.compression == "gzip" else open
    changed = False
    with opener(source.path, "rb") as src, open(out, "wb") as dst:
        carry = b""
        while chunk := src.read(_CHUNK):
            chunk = carry + chunk
            # a CR at the chunk's end may start a CRLF split across chunks
            carry = b"\r" if chunk.endswith(b"\r") else b""
            if carry:
                chunk = chunk[:-1]
            if b"\r" in chunk:
                changed = True
                chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            dst.write(chunk)
        if carry:
            changed = True
            dst.write(b"\n")
    if not changed:
        out.unlink()
        return None
    return dataclasses.replace(source, path=out)


def _zstd_lf_copy(source: Source, out: Path) -> Source:
    """:func:`lf_copy` of a zstd file, decompressed by DuckDB line by line (Python 3.11 has no zstd).

    DuckDB's line reader ends lines at LF, CRLF or CR; a line it cannot read (not UTF-8, over
    the limit) fails the copy with an error saying to decompress the file first, so no line is
    lost unaccounted.
    """
    con = duckdb.connect()
    try:
        con.execute(
            f"COPY (SELECT COALESCE(line, '') FROM read_csv({sql_str(source.path)}, columns = {{'line': 'VARCHAR'}}, "
            f"header = false, delim = '\x01', quote = '', escape = '', auto_detect = false, compression = 'zstd', strict_mode = false, "
            f"max_line_size = {source.max_line_bytes}, buffer_size = {2 * source.max_line_bytes})) "
            f"TO {sql_str(out)} (FORMAT csv, HEADER false, QUOTE '', ESCAPE '', DELIMITER '\x01')"
        )
    except duckdb.Error as err:
        out.unlink(missing_ok=True)
        raise TraceFormatError(
            f"{source.path}: its line endings are mixed and a line cannot be decompressed as text ({err}); "
            f"decompress it first (zstd -d {source.path}) and ingest the plain file"
        ) from None
    finally:
        con.close()
    return dataclasses.replace(source, path=out)


def stored_columns(plans: Mapping[int, IngestPlan]) -> list[str]:
    """The canonical columns of the store: the union over the sources' plans, in schema order."""
    present: set[str] = set()
    for plan in plans.values():
        present.update(plan.columns)
    return canonical_order(sorted(present))


def source_names_sql(column: str, described, indices) -> str:
    """SQL mapping a source index in ``column`` to the source's path (for ``rejected.parquet``)."""
    return f"CASE {column} " + " ".join(f"WHEN {i} THEN {sql_str(described[i].path)}" for i in indices) + " END"


def relative_time_sql(time: TimeSpec, origin_ts) -> tuple[str, dt.datetime | None, str | None]:
    """SQL of the stored ``timestamp`` from ``_ts``, with the wall-clock origin and its zone.

    Wall-clock times (datetimes, in microseconds, or epoch numbers) are stored as seconds after
    ``origin_ts``, the earliest row's ``_ts``; other times are kept as given (origin None).
    """
    if time.kind == "datetime":
        zone = time.timezone or "UTC"
        return (f"CAST(_ts - {int(origin_ts)} AS DOUBLE) / 1e6", wall_clock(int(origin_ts) / 1e6, zone), zone)
    if time.epoch:
        zone = time.timezone or "UTC"
        return f"_ts - {float(origin_ts)!r}", wall_clock(float(origin_ts), zone), zone
    return "_ts", None, None


def stored_span(time: TimeSpec, lo, hi) -> tuple[float, float]:
    """The stored ``timestamp`` span of rows whose ``_ts`` runs from ``lo`` to ``hi``.

    Wall-clock times start at 0 (seconds after the origin ``lo``, as :func:`relative_time_sql`
    stores them; datetimes are in microseconds); other times are kept as given.
    """
    if time.kind == "datetime":
        return 0.0, (int(hi) - int(lo)) / 1e6
    if time.epoch:
        return 0.0, float(hi) - float(lo)
    return float(lo), float(hi)


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


def _count_out(v: str, f) -> str:
    """SQL of a checked count's stored value: as is, or divided (characters -> tokens) and rounded."""
    if f.divide_by is None:
        return f"TRY_CAST({v} AS BIGINT)"
    return f"TRY_CAST(round({v} / {float(f.divide_by)!r}) AS BIGINT)"


def _mapped(text: str, pairs, other: str) -> str:
    """SQL CASE mapping ``text`` through ``(from, to)`` pairs, ``other`` for the rest."""
    return f"CASE {text} " + " ".join(f"WHEN {sql_str(a)} THEN {sql_str(b)}" for a, b in pairs) + f" ELSE {other} END"


def typed_rows_sql(plan: IngestPlan, rel: str, raw_json: str, index: int, native: Mapping[str, str]) -> str:
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
    checks = ["WHEN _bad IS NOT NULL THEN _bad"]
    if t_native:
        checks.append(f"WHEN {ident(t.column)} IS NULL THEN 'missing_timestamp'")
        if t.kind == "datetime":
            # the reader parsed it, yet it has no epoch: DuckDB's 'infinity' / '-infinity'
            checks.append("WHEN _t IS NULL THEN 'nonfinite_timestamp'")
    else:
        parse.append(f"{t.raw} AS _traw")
        checks.append(f"WHEN {_empty('_traw')} THEN 'missing_timestamp'")
        if t.kind == "datetime" and t.datetime_format is None:
            # evaluated only for rows without an epoch: no cost on good rows
            checks.append("WHEN _t IS NULL AND NOT isfinite(TRY_CAST(_traw AS TIMESTAMPTZ)) "
                          "THEN 'nonfinite_timestamp'")
        checks.append("WHEN _t IS NULL THEN 'unparseable_timestamp'")
    if t.kind == "number":
        checks.append("WHEN isnan(_t) OR isinf(_t) THEN 'nan_timestamp'")
    out = []
    # each non-native field's trimmed text is computed once (_s: NULL when empty) in a level of its
    # own, and every emptiness test, string value and boolean parse reads it: the CASE chain of
    # the checks and the output columns repeated trim() per use
    trimmed = []
    for i, f in enumerate(plan.fields):
        r, s, v, c = f"_r{i}", f"_s{i}", f"_v{i}", f.canonical
        if f.column is not None and f.kind in _NATIVE and native.get(f.column) == _NATIVE[f.kind]:
            # parsed by the CSV reader: unparseable values are already in its reject table
            parse.append(f"{ident(f.column)} AS {v}")
            if f.required:
                checks.append(f"WHEN {v} IS NULL THEN 'missing_{c}'")
            checks.append(f"WHEN isnan({v}) OR isinf({v}) THEN 'non_numeric_{c}'")
            checks.append(f"WHEN {v} < 0 THEN 'negative_{c}'")
            if f.kind == "count":
                checks.append(f"WHEN {v} <> floor({v}) OR {v} >= 9.2e18 THEN 'non_integer_{c}'")
                out.append(f"{_count_out(v, f)} AS {ident(c)}")
            else:
                out.append(f"{v} AS {ident(c)}")
            continue
        parse.append(f"{f.raw} AS {r}")
        trimmed.append(f"NULLIF(trim({r}), '') AS {s}")
        if f.required:
            checks.append(f"WHEN {s} IS NULL THEN 'missing_{c}'")
        if f.kind in ("count", "seconds"):
            parse.append(f"TRY_CAST({r} AS DOUBLE) AS {v}")
            checks.append(f"WHEN {s} IS NOT NULL AND ({v} IS NULL OR isnan({v}) OR isinf({v})) THEN 'non_numeric_{c}'")
            checks.append(f"WHEN {v} < 0 THEN 'negative_{c}'")
            if f.kind == "count":
                checks.append(f"WHEN {v} <> floor({v}) OR (TRY_CAST({v} AS BIGINT) IS NULL AND {v} IS NOT NULL) "
                              f"THEN 'non_integer_{c}'")
                out.append(f"{_count_out(v, f)} AS {ident(c)}")
            else:
                out.append(f"{v} AS {ident(c)}")
        elif f.kind == "bool" and f.values:
            # mapped from trim(text) as before: a mapping may name the empty text
            parse.append(f"{_mapped(f'trim({r})', f.values, 'NULL')} AS {v}")
            checks.append(f"WHEN {s} IS NOT NULL AND {v} IS NULL THEN 'unmapped_{c}'")
            out.append(f"CAST({v} AS BOOLEAN) AS {ident(c)}")
        elif f.kind == "bool":
            trimmed.append(f"TRY_CAST(lower({s}) AS BOOLEAN) AS {v}")
            checks.append(f"WHEN {s} IS NOT NULL AND {v} IS NULL THEN 'invalid_{c}'")
            out.append(f"{v} AS {ident(c)}")
        elif f.kind == "list":
            parse.append(f"TRY_CAST({r} AS BIGINT[]) AS {v}")
            checks.append(
                f"WHEN {s} IS NOT NULL AND ({v} IS NULL OR len(list_filter({v}, lambda x: x IS NULL)) > 0) "
                f"THEN 'malformed_{c}'"
            )
            # the BIGINT[] cast rounds 1.5 to 2: a list whose text has a fraction or an exponent
            # (rare; the text test is cheap) is parsed again as DOUBLE[] to find non-integers
            checks.append(
                f"WHEN (contains({r}, '.') OR contains({r}, 'e') OR contains({r}, 'E')) AND "
                f"len(list_filter(TRY_CAST({r} AS DOUBLE[]), lambda x: x <> floor(x))) > 0 "
                f"THEN 'non_integer_{c}'"
            )
            out.append(f"{v} AS {ident(c)}")
        else:  # string
            if f.strict_values:
                keys = ", ".join(sql_str(a) for a, _ in f.values)
                checks.append(f"WHEN {s} IS NOT NULL AND {s} NOT IN ({keys}) THEN 'unmapped_{c}'")
            text = s
            if f.values:
                text = f"CASE {s} " + " ".join(f"WHEN {sql_str(a)} THEN {sql_str(b)}" for a, b in f.values) + f" ELSE {s} END"
            out.append(f"{text} AS {ident(c)}")
    level_a = f"SELECT *, {', '.join(parse)} FROM ({rel})"
    if trimmed:
        level_a = f"SELECT *, {', '.join(trimmed)} FROM ({level_a})"
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
    whens = ["WHEN error_type = 'INVALID ENCODING' THEN 'invalid_utf8'",
             "WHEN error_type = 'LINE SIZE OVER MAXIMUM' THEN 'line_too_long'"]
    if plan.time.column is not None and plan.time.column in native:
        whens.append(f"WHEN error_type = 'CAST' AND column_name = {sql_str(plan.time.column)} "
                     "THEN 'unparseable_timestamp'")
    for f in plan.fields:
        if f.column is not None and f.kind in _NATIVE and native.get(f.column) == _NATIVE[f.kind]:
            whens.append(f"WHEN error_type = 'CAST' AND column_name = {sql_str(f.column)} "
                         f"THEN 'non_numeric_{f.canonical}'")
    return f"CASE {' '.join(whens)} ELSE 'malformed_line' END"


# ---------------------------------------------------------------------------------------------


def malformed_table(con, indices, described, plans, natives) -> None:
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
