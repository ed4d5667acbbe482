"""Ingest on Apache Spark (``servelab ingest --engine spark``): raw logs too big for one machine
into the same canonical store as :func:`servelab.analysis.ingest.ingest` (DuckDB).

What is shared with the DuckDB ingest, imported, never copied: finding, describing and sniffing
the sources and building each one's plan (:func:`.core.prepare_sources`, the format adapters),
the typed-row SQL with every value check and reject reason (:func:`.reading.typed_rows_sql`,
translated by :mod:`.spark_sql`), the canonical schema (:data:`~servelab.analysis.schema.CANONICAL_COLUMNS`),
the stored timestamp (:func:`.reading.relative_time_sql`), the clock detection
(:func:`~servelab.analysis.clock.clock_from_gaps`) and the manifest (:func:`.manifest.ingest_manifest`).

What is Spark's own (DataFrame API where SQL does not carry over):

- reading: CSV with Spark's reader (every column a string; a line with too few or too many
  fields is its corrupt record: ``malformed_line``), JSONL as text lines parsed with
  ``from_json`` into a string map (a line that is not a JSON object: ``malformed_line``),
  Parquet as is (numeric columns as DOUBLE, as DuckDB reads them);
- positions: a row's place in its file is (the file block its task read, its
  ``monotonically_increasing_id``); the typed rows are written to Parquet once, then the rows per
  block give each block's offset, so each row gets its index in the file. **Rejected rows' ``row``**
  is that index plus 2 for CSV (the header is line 1), plus 1 for JSONL lines and Parquet rows:
  the file's line when every record is one line (as DuckDB's, which also counts from data rows);
  Spark's CSV reader skips blank lines, so after one the number is the record's, not the line's;
- order and ``request_id``: the stored rows sorted by (time, source, row), as DuckDB's general
  path sorts them (its single pass gives the same order); each sorted partition's rows numbered
  from the partition sizes (no single-partition window);
- counts per source and reason, unsorted rows (a window per source), exact duplicates (a group-by
  of every stored column: DuckDB counts the same by 64-bit row hash), the logging clock (the same
  systematic gap sample as :class:`~servelab.analysis.clock.GapSample`, by gap index).

The store is written partitioned by UTC day (``requests/day=YYYY-MM-DD/part-*.parquet``, the
layout of :func:`~servelab.analysis.store.partition_store`: the manifest lists the files in
``request_id`` order), since a lake-scale store is one file per task, not one file. Not on
Spark: conversation links (Bailian: a recursive walk; ingest those with DuckDB), the DuckDB
reader's ``invalid_utf8`` and ``line_too_long`` (Spark reads such lines: bytes that are not UTF-8
become U+FFFD and a line has no length limit).

Every path here is read by the Spark executors and by this process (headers, the written files'
metadata): on a cluster they are on a file system both see. Nothing here loops over requests.
"""
from __future__ import annotations

import concurrent.futures
import os
import shutil
from pathlib import Path

import numpy as np

from servelab.analysis.clock import GapSample, clock_from_gaps
from servelab.analysis.exceptions import TraceFormatError
from servelab.analysis.ingest.core import (
    _manifest_json,
    _record_user_clock,
    _sha256,
    check_options,
    prepare_sources,
)
from servelab.analysis.ingest.manifest import ingest_manifest, nothing_stored
from servelab.analysis.ingest.outcome import PathOutcome, SourceOutcome
from servelab.analysis.ingest.plan import ident
from servelab.analysis.ingest.reading import (
    _raw_values_json,
    native_types,
    relative_time_sql,
    stored_columns,
    stored_span,
)
from servelab.analysis.ingest.sources import DEFAULT_MAX_LINE_BYTES, resolve_sources
from servelab.analysis.ingest.spark_sql import spark_typed_rows_sql
from servelab.analysis.ingest.target import check_target, clean_stale, ordinary_permissions, target_lock
from servelab.analysis.schema import CANONICAL_COLUMNS
from servelab.analysis.store import (
    MANIFEST_NAME,
    REJECTED_NAME,
    REQUESTS_DIR,
    TraceStore,
    atomic_store_dir,
    open_store,
)

__all__ = ["ingest_spark", "SparkIngestError", "ROW_BASE"]

#: what is added to a row's 0-based index in its file to give ``rejected.parquet``'s ``row``
ROW_BASE = {"csv": 2, "jsonl": 1, "parquet": 1}

#: reason of a blank JSONL line while positions are computed (dropped after: never stored or counted,
#: as DuckDB skips blank lines)
_BLANK = "__blank__"


class SparkIngestError(TraceFormatError):
    """The sources need what the Spark ingest does not do (conversation links): use DuckDB."""


def ingest_spark(
    sources,
    *,
    fmt: str = "auto",
    output: str | os.PathLike,
    overwrite: bool = False,
    column_map=None,
    clock: float | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    master: str | None = None,
    session=None,
) -> TraceStore:
    """Ingest raw trace files into a trace store with Spark (see the module docstring).

    Parameters
    ----------
    sources, fmt, output, overwrite, column_map, clock, max_line_bytes
        As for :func:`servelab.analysis.ingest.ingest` (``max_line_bytes`` only describes the
        sources here: Spark's readers have no line limit).
    master : str, optional
        Spark master URL (:func:`servelab.analysis.engines.spark_session`; default ``local[2]``).
    session : pyspark.sql.SparkSession, optional
        A session to use instead of making one from ``master``.

    Returns
    -------
    TraceStore
        The opened store, partitioned by day.

    Raises
    ------
    SparkIngestError
        The format links conversations (Bailian): ingest it with DuckDB.
    EngineUnavailableError
        pyspark, sqlglot or Java is missing.
    FileNotFoundError, TraceFormatError, MissingColumnError, ColumnMapError, ValueError,
    EmptyTraceError, StoreExistsError, StoreTargetError, StoreLockedError
        As for :func:`servelab.analysis.ingest.ingest`.
    """
    user_clock = check_options(clock, max_line_bytes)
    paths = resolve_sources(sources)
    check_target(Path(output), paths, overwrite=overwrite)
    target = Path(os.path.abspath(output))
    with target_lock(target):
        clean_stale(target)
        _ingest_locked(paths, fmt=fmt, target=Path(output), overwrite=overwrite, column_map=column_map,
                       user_clock=user_clock, max_line_bytes=max_line_bytes, master=master, session=session)
    return open_store(output)


def _ingest_locked(paths, *, fmt, target: Path, overwrite, column_map, user_clock, max_line_bytes, master,
                   session) -> None:
    described, fmt, sniffed, plans = prepare_sources(paths, fmt=fmt, column_map=column_map,
                                                     max_line_bytes=max_line_bytes)
    first_plan = next(iter(plans.values()))
    if first_plan.link_conversations:
        raise SparkIngestError(f"format {fmt!r} links conversations (a recursive walk over the whole trace), "
                               "which the Spark ingest does not do; ingest it with --engine duckdb")
    if session is None:
        from servelab.analysis.engines import spark_session

        session = spark_session(master)
    zone = (first_plan.time.timezone or "UTC") if first_plan.time.kind == "datetime" else "UTC"
    before = session.conf.get("spark.sql.session.timeZone")
    session.conf.set("spark.sql.session.timeZone", zone)  # naive date-times are in the plan's zone
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            digests = {i: pool.submit(_sha256, s.path) for i, s in enumerate(described)}
            with atomic_store_dir(target, overwrite=overwrite) as tmp:
                ordinary_permissions(tmp)
                work = tmp / "_work"
                work.mkdir()
                outcome, layout = _run(session, described, plans, first_plan, tmp, work)
                manifest = ingest_manifest(described, outcome, first_plan, fmt, sniffed)
                for i, _ in enumerate(described):
                    manifest["sources"][i]["sha256"] = digests[i].result()
                if user_clock is not None:
                    _record_user_clock(manifest, user_clock)
                manifest["layout"] = layout
                manifest["extra"]["ingest"]["engine"] = "spark"
                manifest["extra"]["ingest"]["rejected_rows"] = (
                    "rejected.parquet: source, row (Spark ingest: the row's 0-based index among its file's "
                    "records + 2 for CSV (header = line 1; the file's line when each record is one line and "
                    "no line is blank), + 1 for JSONL lines and Parquet rows), reason, raw values as JSON")
                shutil.rmtree(work, ignore_errors=True)
                (tmp / MANIFEST_NAME).write_text(_manifest_json(manifest))
    finally:
        session.conf.set("spark.sql.session.timeZone", before)


# ---------------------------------------------------------------------------------------------
# reading


def _raw_frame(session, source, native):
    """The source as Spark rows: its columns (strings; DOUBLE for ``native``), ``_line`` (its
    position: struct of the file block and the row's monotonically increasing id) and ``_bad``.
    Returns ``(frame, raw_json_sql)``."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    path = str(Path(source.path).resolve())
    cols = list(source.columns)
    position = F.struct(F.input_file_block_start().alias("blk"), F.monotonically_increasing_id().alias("mono"))
    if source.kind == "csv":
        schema = StructType([StructField(c, StringType()) for c in cols] + [StructField("_corrupt", StringType())])
        df = (session.read.schema(schema).option("header", True).option("sep", source.delimiter)
              .option("quote", '"').option("escape", '"').option("mode", "PERMISSIVE")
              .option("columnNameOfCorruptRecord", "_corrupt").option("enforceSchema", True).csv(path))
        df = df.select(*[F.col(ident(c).replace('"', "`")) for c in cols], position.alias("_line"),
                       F.when(F.col("_corrupt").isNotNull(), F.lit("malformed_line")).alias("_bad"))
        return df, _raw_values_json(cols)
    if source.kind == "jsonl":
        lines = session.read.text(path).select(F.col("value").alias("line"), position.alias("_line"))
        values = F.from_json(F.col("line"), "map<string,string>")
        lines = lines.withColumn("_m", values)
        ok = F.col("_m").isNotNull() & F.ltrim(F.col("line")).startswith("{")
        df = lines.select(*[F.col("_m").getItem(c).alias(c) for c in cols], "_line", "line",
                          F.when(F.trim(F.col("line")) == "", F.lit(_BLANK))
                          .when(~ok, F.lit("malformed_line")).alias("_bad"))
        # as DuckDB's (reading.raw_relation): a bad line is kept as {"line": ...}, a good one as is
        return df, "CASE WHEN _bad IS NOT NULL THEN json_object('line', line) ELSE line END"
    df = session.read.parquet(path)
    casts = [F.col(f"`{c}`").cast("double" if c in native else "string").alias(c) for c in cols]
    df = df.select(*casts, F.struct(F.lit(0).cast("long").alias("blk"),
                                    F.col("_metadata.row_index").alias("mono")).alias("_line"),
                   F.lit(None).cast("string").alias("_bad"))
    return df, _raw_values_json(cols)


def _positions(session, typed, described):
    """``typed`` with ``_row`` (the row's index in its file + :data:`ROW_BASE`) instead of the
    ``_line`` struct, blank JSONL lines dropped; and the rows per (source, reason) with their
    first and last ``_ts``. One aggregation per (source, file block, reason) gives both: the block
    offsets (a small table, one row per file block) and the counts."""
    from pyspark.sql import functions as F

    cells = (typed.groupBy("_src", F.col("_line.blk").alias("blk"), "_reason")
             .agg(F.count(F.lit(1)).alias("n"), F.min("_line.mono").alias("first"),
                  F.min("_ts").alias("lo"), F.max("_ts").alias("hi")).collect())
    blocks: dict = {}
    counts: dict = {}
    for r in cells:  # a loop over (file block, reason) cells, not rows
        key = (int(r["_src"]), int(r["blk"]))
        n, first = blocks.get(key, (0, None))
        blocks[key] = (n + int(r["n"]), int(r["first"]) if first is None else min(first, int(r["first"])))
        if r["_reason"] == _BLANK:
            continue
        c = counts.setdefault((key[0], r["_reason"]), [0, None, None])
        c[0] += int(r["n"])
        c[1] = r["lo"] if c[1] is None or (r["lo"] is not None and r["lo"] < c[1]) else c[1]
        c[2] = r["hi"] if c[2] is None or (r["hi"] is not None and r["hi"] > c[2]) else c[2]
    rows, seen = [], {}
    for (src, blk), (n, first) in sorted(blocks.items()):
        offset = seen.get(src, 0)
        rows.append((src, blk, offset - first + ROW_BASE[described[src].kind]))
        seen[src] = offset + n
    base = session.createDataFrame(rows, "_src INT, blk LONG, base LONG")
    out = (typed.join(F.broadcast(base), (typed["_src"] == base["_src"]) & (typed["_line.blk"] == base["blk"]))
           .select(typed["*"], (base["base"] + typed["_line.mono"]).alias("_row")).drop("_line"))
    return out.filter(F.col("_reason").isNull() | (F.col("_reason") != _BLANK)), counts


# ---------------------------------------------------------------------------------------------
# counting


def _stride(n_gaps: int, capacity: int) -> int:
    """The stride of :class:`GapSample`'s systematic sample after ``n_gaps`` gaps."""
    stride = 1
    while -(-n_gaps // stride) > capacity:
        stride *= 2
    return stride


def _clocks(frame, key: str | None, n_rows: dict):
    """The logging clock of the sorted ``timestamp`` stream of each group of ``frame`` (by ``key``;
    one group when None), as :class:`GapSample` finds it: the gaps at the indices that are
    multiples of its stride, the exact zeros, the scale. ``frame`` has ``_idx`` (0-based index in
    the group's sorted stream). One job: every row joined to the next of its group (a shuffle
    join on the index), aggregated per group. Returns group -> Clock (None without rows)."""
    from pyspark.sql import functions as F

    capacity = GapSample().capacity
    strides = {g: _stride(max(n - 1, 0), capacity) for g, n in n_rows.items()}
    stride = F.element_at(F.create_map(*[F.lit(x) for g, s in strides.items() for x in (g, s)]), F.col("_g"))
    rows = frame.select((F.col(key) if key is not None else F.lit(0)).alias("_g"), "_idx", "timestamp")
    nxt = rows.select("_g", (F.col("_idx") - 1).alias("_idx"), F.col("timestamp").alias("_next"))
    gap = F.abs(F.col("_next") - F.col("timestamp"))
    per_group = (rows.join(nxt, ["_g", "_idx"], "left").groupBy("_g").agg(
        F.sum((gap == 0).cast("long")).alias("zero"), F.max(F.abs("timestamp")).alias("scale"),
        F.collect_list(F.when((F.col("_idx") % stride == 0) & F.col("_next").isNotNull(),
                              F.struct("_idx", gap.alias("d")))).alias("kept")).collect())
    out = {g: None for g in n_rows}
    for r in per_group:  # a loop over groups (sources); each keeps at most GapSample's capacity gaps
        kept = sorted(r["kept"], key=lambda k: k["_idx"])
        sample = np.asarray([k["d"] for k in kept], dtype=float)
        out[r["_g"]] = clock_from_gaps(sample[sample > 0], n_gaps=n_rows[r["_g"]] - 1, n_zero=int(r["zero"] or 0),
                                       scale=float(r["scale"]))
    return out


# ---------------------------------------------------------------------------------------------
# the ingest proper


def _run(session, described, plans, first_plan, tmp: Path, work: Path):
    """Read, check, count, sort, number and write; returns (PathOutcome, the manifest's layout)."""
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    typed_frames = []
    for i, plan in plans.items():
        s = described[i]
        native = native_types(plan, s) if s.kind == "parquet" else {}
        raw, raw_json = _raw_frame(session, s, native)
        view = f"servelab_ingest_raw_{i}"
        raw.createOrReplaceTempView(view)
        typed_frames.append(session.sql(spark_typed_rows_sql(plan, view, raw_json, i, native)))
    typed = typed_frames[0]
    for other in typed_frames[1:]:
        typed = typed.unionByName(other, allowMissingColumns=True)
    # written once, so that every later step sees the same row positions (monotonically increasing
    # ids are assigned when a task reads; a recomputation could pack blocks into tasks otherwise)
    typed.write.parquet(str(work / "typed"))
    rows, counts = _positions(session, session.read.parquet(str(work / "typed")), described)
    rows = rows.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        return _count_and_write(session, rows, counts, described, plans, first_plan, tmp, work)
    finally:
        rows.unpersist()
        for i in plans:
            session.catalog.dropTempView(f"servelab_ingest_raw_{i}")


def _count_and_write(session, rows, counts, described, plans, first_plan, tmp: Path, work: Path):
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    per_source = {i: {"stored": 0, "rejected": {}, "lo": None, "hi": None, "unsorted": 0} for i in plans}
    for (src, reason), (n, lo, hi) in counts.items():
        entry = per_source[src]
        if reason is None:
            entry.update(stored=n, lo=lo, hi=hi)
        else:
            entry["rejected"][reason] = n
    if sum(e["stored"] for e in per_source.values()) == 0:
        raise nothing_stored(e["rejected"] for e in per_source.values())
    stored = rows.filter(F.col("_reason").isNull())
    # unsorted rows: earlier than the previous stored row of their source, in file order
    earlier = F.col("_ts") < F.lag("_ts").over(Window.partitionBy("_src").orderBy("_row"))
    for r in stored.select("_src", earlier.alias("e")).groupBy("_src").agg(
            F.sum(F.col("e").cast("long")).alias("n")).collect():
        per_source[r["_src"]]["unsorted"] = int(r["n"] or 0)
    full = [per_source[i] for i in plans if per_source[i]["stored"]]
    across = any(b["lo"] < a["hi"] for a, b in zip(full, full[1:]))

    t = first_plan.time
    lo = min(e["lo"] for e in full)
    hi = max(e["hi"] for e in full)
    ts_expr, origin, zone = relative_time_sql(t, lo)
    span = stored_span(t, lo, hi)
    columns = stored_columns(plans)
    from servelab.analysis.engines import translate_to_spark

    stored.createOrReplaceTempView("servelab_ingest_stored")
    present = set().union(*(set(p.columns) for p in plans.values()))
    select = ", ".join([f"CAST({ts_expr} AS DOUBLE) AS timestamp"] + [
        f"CAST({ident(c) if c in present else 'NULL'} AS {CANONICAL_COLUMNS[c]}) AS {ident(c)}" for c in columns])
    canonical = session.sql(translate_to_spark(f"SELECT _ts, _src, _row, {select} FROM servelab_ingest_stored"))
    # the order of DuckDB's general path (ORDER BY _ts, _src, file row); numbered from the sorted
    # partitions' sizes
    ordered = (canonical.orderBy("_ts", "_src", "_row")
               .withColumn("_pid", F.spark_partition_id()).withColumn("_mono", F.monotonically_increasing_id())
               .persist(StorageLevel.MEMORY_AND_DISK))
    try:
        sizes = dict((r["_pid"], int(r["n"])) for r in ordered.groupBy("_pid").agg(F.count(F.lit(1)).alias("n")).collect())
        offsets, total = [], 0
        for pid in range(max(sizes) + 1):  # a loop over partitions
            offsets.append(total)
            total += sizes.get(pid, 0)
        request_id = (F.element_at(F.array(*[F.lit(o).cast("long") for o in offsets]), F.col("_pid") + 1)
                      + F.col("_mono") - F.shiftleft(F.col("_pid").cast("long"), 33))
        numbered = ordered.withColumn("request_id", request_id)
        out_cols = ["request_id", "timestamp", *columns]
        # duplicates: stored rows equal in every stored column to another row
        dup = numbered.groupBy(*[F.col(ident(c).replace('"', "`")) for c in ["timestamp", *columns]]).count()
        duplicates = int(dup.filter(F.col("count") > 1).agg(F.sum(F.col("count") - 1)).collect()[0][0] or 0)
        # the clocks: of the store (request_id order) and of each source (its rows, sorted)
        store_clock = _clocks(numbered.withColumn("_idx", F.col("request_id")), None, {0: total})[0]
        if len(plans) == 1:  # one source: its sorted stream is the store's
            src_clocks = {i: store_clock for i in plans}
        else:
            by_src = numbered.withColumn("_idx", F.row_number().over(
                Window.partitionBy("_src").orderBy("request_id")) - 1)
            src_clocks = _clocks(by_src, "_src", {i: per_source[i]["stored"] for i in plans})
        layout = _write_requests(numbered, out_cols, origin, tmp)
        _write_rejected(rows, described, plans, tmp, work)
    finally:
        ordered.unpersist()
    sources = {i: SourceOutcome(stored=e["stored"], rejected=e["rejected"], unsorted=e["unsorted"],
                                clock=src_clocks[i]) for i, e in per_source.items()}
    outcome = PathOutcome(path="spark", sources=sources, columns=tuple(columns), duplicates=duplicates, span=span,
                          origin=origin, zone=zone, across=across, clock=store_clock)
    return outcome, layout


def _write_requests(numbered, out_cols, origin, tmp: Path) -> dict:
    """``requests/day=YYYY-MM-DD/part-*.parquet`` (UTC days, as :func:`~servelab.analysis.store.partition_store`
    names them), each file in ``request_id`` order; returns the manifest's ``layout``."""
    import datetime as dt

    import pyarrow.parquet as pq
    from pyspark.sql import functions as F

    if origin is None:
        origin_us, day_origin = 0, "none: day=1970-01-01 is the trace's first 24 h"
    else:
        origin_us, day_origin = round(origin.astimezone(dt.timezone.utc).timestamp() * 1e6), "origin (UTC days)"
    micros = F.lit(origin_us).cast("long") + F.round(F.col("timestamp") * F.lit(1e6)).cast("long")
    day = F.date_add(F.lit("1970-01-01").cast("date"), F.floor(micros / F.lit(86_400_000_000)).cast("int"))
    frame = (numbered.select(*[F.col(f"`{c}`") for c in out_cols], F.date_format(day, "yyyy-MM-dd").alias("day"))
             .sortWithinPartitions("day", "request_id"))
    folder = tmp / REQUESTS_DIR
    frame.write.partitionBy("day").parquet(str(folder))
    files = []
    for path in folder.rglob("*"):
        if path.name.startswith(("_", ".")) and path.is_file():
            path.unlink()  # _SUCCESS and .crc files of the Hadoop writer
        elif path.suffix == ".parquet":
            meta = pq.ParquetFile(path).metadata
            first = meta.row_group(0).column(0).statistics.min if meta.num_rows else None
            if first is None:
                path.unlink()
                continue
            files.append((first, path.relative_to(tmp).as_posix()))
    files.sort()
    return {"kind": "partitioned", "partition_by": ["day"], "files": [f for _, f in files], "day_origin": day_origin,
            "in_id_order": True}


def _write_rejected(rows, described, plans, tmp: Path, work: Path) -> None:
    """``rejected.parquet``: source, row, reason, raw, ordered by source and row (one file)."""
    from pyspark.sql import functions as F

    name = F.element_at(F.create_map(*[F.lit(x) for i in plans for x in (i, str(described[i].path))]), F.col("_src"))
    rejected = (rows.filter(F.col("_reason").isNotNull())
                .select("_src", name.alias("source"), F.col("_row").cast("long").alias("row"),
                        F.col("_reason").alias("reason"), F.col("_raw").cast("string").alias("raw"))
                .coalesce(1).sortWithinPartitions("_src", "row").drop("_src"))  # one task: no range sampling
    rejected.write.parquet(str(work / "rejected"))
    parts = sorted((work / "rejected").glob("*.parquet"))
    if len(parts) != 1:
        raise RuntimeError(f"servelab bug: the Spark ingest wrote {len(parts)} rejected files; expected 1")
    parts[0].rename(tmp / REJECTED_NAME)
