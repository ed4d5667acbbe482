"""The single-pass ingest of CSV, JSONL and Parquet sources: DuckDB's typed, checked rows stream
in file order into a polars Parquet sink that adds ``request_id`` and counts unsorted rows and
duplicates on the way (:mod:`.numbering`). The first row a SQL check rejects stops it, and the
caller runs :mod:`.general_path` instead; the two give the same store (tested).
"""
from __future__ import annotations

from pathlib import Path

import duckdb

from servelab.analysis.exceptions import TraceFormatError
from servelab.analysis.ingest.manifest import nothing_stored
from servelab.analysis.ingest.outcome import PathOutcome, SourceOutcome
from servelab.analysis.ingest.numbering import StreamQueryError, write_numbered
from servelab.analysis.ingest.plan import IngestPlan, ident, sql_str
from servelab.analysis.ingest.sources import DEFAULT_MAX_LINE_BYTES
from servelab.analysis.ingest.reading import (
    PhaseTimer,
    is_retryable_read_error,
    malformed_table,
    native_types,
    raw_relation,
    relative_time_sql,
    source_names_sql,
    stored_columns,
    streamed_jsonl_relation,
    typed_rows_sql,
)
from servelab.analysis.schema import CANONICAL_COLUMNS
from servelab.analysis.store import REJECTED_NAME, REQUESTS_NAME

__all__ = ["applies", "run"]


def applies(described, plans, first_plan: IngestPlan) -> bool:
    """CSV, JSONL or Parquet sources without conversation links: read once, straight to the store.

    A JSONL source with a line limit below the default takes the general path, whose line
    reader enforces it (DuckDB's ``read_json`` reads objects beyond ``maximum_object_size``).
    """
    return (all(described[i].kind in _KINDS for i in plans) and not first_plan.link_conversations
            and not any(described[i].kind == "jsonl" and described[i].max_line_bytes < DEFAULT_MAX_LINE_BYTES
                        for i in plans))


_KINDS = ("csv", "jsonl", "parquet")


#: DuckDB's error for a rejected line with bytes that are not UTF-8, under an early-stopping query
_INVALID_UNICODE = "Invalid unicode (byte sequence mismatch)"

#: message of the DuckDB error() that stops the fast path at the first row a SQL check rejects
_SQL_REJECT = "servelab-fast-path: a row fails a value check"


def run(con, described, plans, plan: IngestPlan, fmt, sniffed, tmp: Path) -> PathOutcome | None:
    """Single-pass ingest: stored rows stream straight into ``requests.parquet``.

    DuckDB parses and checks the rows on all threads; :func:`.numbering.write_numbered` adds
    ``request_id`` and writes the Parquet (the sources one after the other, each in file order),
    and counts unsorted rows and exact duplicates on the way. Rows the CSV reader rejects are in
    its reject tables; a JSONL line that is not a JSON object fails ``read_json``, and the
    caller falls back. The first row that a SQL value check would reject stops the stream
    (DuckDB ``error()``), and the caller falls back to the general two-pass path, which records
    such rows with their reasons. Unsorted rows (in a file, or a file starting before the
    previous one ends) with times relative to the trace start are sorted in a second pass over
    the Parquet; with wall-clock times (whose origin, the earliest row, was taken to be the
    first) they fall back. Returns what was written and counted, or None to fall back.
    """
    tick = PhaseTimer()
    indices = list(plans)
    columns = stored_columns(plans)
    natives = {i: native_types(plans[i], described[i]) for i in indices}
    relations = {i: (streamed_jsonl_relation(described[i]) if described[i].kind == "jsonl"
                     else raw_relation(described[i], i, natives[i])) for i in indices}
    pass1 = {i: typed_rows_sql(plans[i], *relations[i], i, natives[i]) for i in indices}
    # read_json has no reject table: a bad JSONL line fails the query, and the general path
    # (which rejects such lines with their numbers) takes the file; a CSV or Parquet failure is
    # an error
    jsonl = any(described[i].kind == "jsonl" for i in indices)
    requests = tmp / REQUESTS_NAME

    def drop_reader_tables(*extra: str) -> None:
        for i in indices:
            for table in (f"rejects_{i}", f"rejects_scan_{i}"):
                con.execute(f"DROP TABLE IF EXISTS {table}")
        for table in extra:
            con.execute(f"DROP TABLE IF EXISTS {table}")

    def cannot_read(err) -> TraceFormatError:
        paths = ", ".join(str(described[i].path) for i in indices)
        return TraceFormatError(f"cannot read {paths} as {described[indices[0]].kind} ({fmt}): {err}")

    t = plan.time
    origin_ts = None
    if t.kind == "datetime" or t.epoch:
        # wall-clock times are stored relative to the earliest row; when the rows are in order
        # that is the first stored row (DuckDB keeps file order under LIMIT). The stream checks
        # the order: unsorted rows fall back to the general path, which takes the minimum.
        try:
            first = con.execute(f"SELECT _ts FROM ({pass1[indices[0]]}) WHERE _reason IS NULL LIMIT 1").fetchall()
        except duckdb.Error as err:
            # the general path reads a copy with LF line endings; and DuckDB 2.0.1 fails this
            # LIMIT query (not a full read) when a line it rejects holds bytes that are not UTF-8
            if jsonl or is_retryable_read_error(err) or _INVALID_UNICODE in str(err):
                return None
            raise cannot_read(err) from None
        finally:
            drop_reader_tables()
        if not first:
            return None  # the first file stores nothing: the general path says why
        origin_ts = first[0][0]
    ts_expr, origin, zone = relative_time_sql(t, origin_ts)
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
        if _SQL_REJECT in str(err) or jsonl or is_retryable_read_error(err):
            drop_reader_tables()
            return None
        raise cannot_read(err) from None
    tick("fast: read + write")
    malformed_table(con, indices, described, plans, natives)
    reader_rejects: dict[int, dict[str, int]] = {i: {} for i in indices}
    for src, reason, n in con.execute("SELECT src, reason, count(*) FROM malformed GROUP BY ALL").fetchall():
        reader_rejects[src][reason] = int(n)
    if summary.rows == 0:
        requests.unlink(missing_ok=True)
        raise nothing_stored(reader_rejects.values())
    if summary.unsorted and origin_ts is not None:
        requests.unlink()
        drop_reader_tables("malformed")
        return None
    duplicates = summary.duplicates
    store_clock = summary.clock
    if summary.unsorted:
        # stable sort (ties keep their stream order: the streamed request_id), numbered again; the
        # duplicates are counted on the sorted stream, where tied rows are adjacent
        streamed = tmp / "_work" / "streamed.parquet"
        requests.rename(streamed)
        resorted = write_numbered(
            con, f"SELECT * EXCLUDE (request_id) FROM read_parquet({sql_str(streamed)}) ORDER BY timestamp, request_id",
            requests,
        )
        duplicates, store_clock = resorted.duplicates, resorted.clock
        streamed.unlink()
        tick("fast: sort")
    con.execute(
        f"COPY (SELECT {source_names_sql('src', described, indices)} AS source, line AS row, reason, raw "
        f"FROM malformed ORDER BY src, line) "
        f"TO {sql_str(tmp / REJECTED_NAME)} (FORMAT parquet)"
    )
    parts = dict(zip(indices, summary.parts, strict=True))
    sources = {i: SourceOutcome(stored=parts[i].rows, rejected=reader_rejects[i], unsorted=parts[i].unsorted,
                                clock=parts[i].clock) for i in indices}
    full = [parts[i] for i in indices if parts[i].rows]
    across = any(b.lo < a.hi for a, b in zip(full, full[1:]))
    return PathOutcome(path="fast", sources=sources, columns=tuple(columns), duplicates=duplicates,
                       span=(summary.lo, summary.hi), origin=origin, zone=zone, across=across, clock=store_clock)
