"""The general two-pass ingest, for any sources: JSONL and Parquet, rows that a value check
rejects, conversation links, and what the fast path declines.

Pass 1 reads each source once into a typed Parquet part with a reject reason per row
(:mod:`.reading`). Then small passes over the parts: counts per source and reason, unsorted rows
(a row earlier than the row before it in its source; sorted, and counted), the origin; the
stored rows stream sorted by timestamp into ``requests.parquet``, numbered, with exact
duplicates (stored rows equal in every stored column; kept) counted on the way
(:mod:`.numbering`); every rejected row goes to ``rejected.parquet`` with its source, row
number, reason and raw values as JSON.
"""
from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

import duckdb
import numpy as np

from servelab.analysis.clock import GapSample
from servelab.analysis.exceptions import TraceFormatError
from servelab.analysis.ingest.manifest import nothing_stored
from servelab.analysis.ingest.outcome import PathOutcome, SourceOutcome
from servelab.analysis.ingest.numbering import write_numbered
from servelab.analysis.ingest.plan import ident, sql_str
from servelab.analysis.ingest.reading import (
    PhaseTimer,
    malformed_table,
    is_retryable_read_error,
    retry_source,
    native_types,
    raw_relation,
    relative_time_sql,
    stored_span,
    source_names_sql,
    stage_lines,
    stored_columns,
    typed_rows_sql,
)
from servelab.analysis.schema import CANONICAL_COLUMNS
from servelab.analysis.store import REJECTED_NAME, REQUESTS_NAME

__all__ = ["run"]


def _read_part(con, s, i, plan, native, part: Path) -> str | None:
    """Source ``s`` into the typed Parquet ``part``; returns the staged lines table (or None)."""
    rel, raw_json = raw_relation(s, i, native)
    staged = stage_lines(con, s, i)
    con.execute(f"COPY ({typed_rows_sql(plan, rel, raw_json, i, native)}) TO {sql_str(part)} (FORMAT parquet)")
    return staged


def _read_with_retries(con, s, i, plan, native, part: Path, work: Path, fmt: str):
    """:func:`_read_part`, read again when DuckDB's reader fails in a way a second read cures.

    - mixed line endings, a lone CR, or a line over DuckDB's default limit: an LF copy and, for
      a CSV, a fixed dialect with servelab's line limit (:func:`.reading.retry_source`);
    - DuckDB 2.0.1 fails a CSV holding both a line that is not UTF-8 and a value its typed
      reader cannot parse ("Invalid unicode ... in value construction"): the columns are read
      as text instead and checked in SQL (same reasons).

    Returns the staged lines table (or None) and the native types the read used.
    """
    source = s
    try:
        for _ in range(3):
            try:
                return _read_part(con, source, i, plan, native, part), native
            except duckdb.Error as err:
                for table in (f"rejects_{i}", f"rejects_scan_{i}"):
                    con.execute(f"DROP TABLE IF EXISTS {table}")
                if source is s and is_retryable_read_error(err):
                    retry = retry_source(s, work, i)
                    if retry is not None:
                        source = retry
                        continue
                if native and _INVALID_UNICODE in str(err):
                    native = {}
                    continue
                raise TraceFormatError(f"cannot read {s.path} as {s.kind} ({fmt}): {err}") from None
        raise TraceFormatError(f"cannot read {s.path} as {s.kind} ({fmt}): the reader failed after every retry")
    finally:
        if source.path != s.path:
            source.path.unlink(missing_ok=True)


#: DuckDB's error for a line that is not UTF-8 beside a value its typed CSV reader cannot parse
_INVALID_UNICODE = "Invalid unicode (byte sequence mismatch)"


def run(con, described, plans, first_plan, fmt, sniffed, tmp: Path, work: Path, show_progress: bool) -> PathOutcome:
    """Ingest any sources: each into a typed Parquet part with a reject reason per row, then
    small passes over the parts, then the stored rows streamed (sorted, numbered) into the store.
    Returns what was written and counted.
    """
    tick = PhaseTimer()
    parts: dict[int, Path] = {}
    natives: dict[int, Mapping[str, str]] = {}
    iterator = list(plans.items())
    if show_progress and len(iterator) > 1:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="ingest", unit="file", file=sys.stderr)
    for i, plan in iterator:
        s = described[i]
        native = native_types(plan, s)
        natives[i] = native
        part = work / f"part_{i:05d}.parquet"
        staged, natives[i] = _read_with_retries(con, s, i, plan, native, part, work, fmt)
        if staged:
            con.execute(f"DROP TABLE {staged}")
        parts[i] = part
    tick("read sources")

    part_list = "[" + ", ".join(sql_str(p) for p in parts.values()) + "]"
    scan = f"read_parquet({part_list}, union_by_name = true, file_row_number = true)"

    malformed_table(con, list(parts), described, plans, natives)

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

    if sum(e["stored"] for e in per_source.values()) == 0:
        raise nothing_stored(e["rejected"] for e in per_source.values())

    tick("counts")
    # unsorted rows and the logging clock per source (vectorised over the stored timestamps, in
    # source order; sorted for the clock when unsorted); datetimes are in microseconds
    lo = min(e["lo"] for e in per_source.values() if e["lo"] is not None)
    for i, part in parts.items():
        ts = np.asarray(con.sql(f"SELECT _ts FROM read_parquet({sql_str(part)}) WHERE _reason IS NULL").fetchnumpy()["_ts"])
        unsorted = int(np.count_nonzero(np.diff(ts) < 0))
        per_source[i]["unsorted"] = unsorted
        per_source[i]["clock"] = _source_clock(ts, unsorted, first_plan.time, lo) if ts.size else None
        del ts
    tick("unsorted, clock")
    unsorted_total = sum(e["unsorted"] for e in per_source.values())
    ordered_sources = [per_source[i] for i in parts if per_source[i]["stored"]]
    across = any(b["lo"] < a["hi"] for a, b in zip(ordered_sources, ordered_sources[1:]))

    # origin and timestamp expression
    t = first_plan.time
    hi = max(e["hi"] for e in per_source.values() if e["hi"] is not None)
    ts_expr, origin, zone = relative_time_sql(t, lo)
    span = stored_span(t, lo, hi)

    columns = stored_columns(plans)
    present = set(columns)
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
    written = write_numbered(con, body, tmp / REQUESTS_NAME)
    duplicates = written.duplicates

    tick("write requests")
    # rejected rows: typed-check rejects (row number computed for CSV) + malformed lines
    con.execute(
        "CREATE TEMP TABLE malformed_q AS SELECT src, line - row_number() OVER (PARTITION BY src ORDER BY line) - 1 AS q "
        "FROM malformed"
    )
    con.execute(
        f"COPY (SELECT source, row, reason, raw FROM ("
        f"SELECT _src AS src_i, {source_names_sql('_src', described, parts)} AS source, "
        f"CAST(COALESCE(_line, file_row_number + 2 + (SELECT count(*) FROM malformed_q m WHERE m.src = r._src "
        f"AND m.q <= r.file_row_number)) AS BIGINT) AS row, _reason AS reason, _raw AS raw "
        f"FROM {scan} r WHERE _reason IS NOT NULL "
        f"UNION ALL SELECT src, {source_names_sql('src', described, parts)}, line, reason, raw FROM malformed) "
        f"ORDER BY src_i, row) "
        f"TO {sql_str(tmp / REJECTED_NAME)} (FORMAT parquet)"
    )

    tick("write rejected")
    sources = {i: SourceOutcome(stored=e["stored"], rejected=e["rejected"], unsorted=e["unsorted"],
                                clock=e["clock"]) for i, e in per_source.items()}
    return PathOutcome(path="general", sources=sources, columns=tuple(columns), duplicates=duplicates, span=span,
                       origin=origin, zone=zone, across=across, clock=written.clock)


def _source_clock(ts: np.ndarray, unsorted: int, time, lo):
    """The logging clock of one source's raw ``_ts``, as the stored timestamps (bit for bit the
    values of :func:`.reading.relative_time_sql`, so the fast path, which sees the stored
    values, finds the same clock)."""
    ts = np.sort(ts) if unsorted else ts
    if time.kind == "datetime":
        seconds = (ts - int(lo)).astype(np.float64) / 1e6
    elif time.epoch:
        seconds = ts - float(lo)
    else:
        seconds = ts.astype(np.float64)
    sample = GapSample()
    sample.add(seconds)
    return sample.clock()


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
