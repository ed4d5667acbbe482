"""``servelab ingest SOURCE... --format FMT -o STORE``: raw trace files -> a trace store.

A thin layer over :func:`servelab.analysis.ingest`: parses options, says which format was
chosen (and that it was sniffed), and prints the row counts and the logging clock. It computes nothing itself.
"""
from __future__ import annotations

import click

__all__ = ["ingest", "clock_text"]

#: the same names as servelab.analysis.ingest.core.FORMATS (kept literal so that --help imports nothing heavy;
#: tests/cli/test_cli_format_lists.py checks they agree)
_FORMATS = ("auto", "burstgpt", "azure", "aiperf", "mooncake", "bailian", "generic")


@click.command("ingest")
@click.argument("sources", nargs=-1, required=True)
@click.option("--format", "-f", "fmt", type=click.Choice(_FORMATS), default="auto", show_default=True,
              help="Source format; 'auto' sniffs it from the header / first record.")
@click.option("--output", "-o", required=True, type=click.Path(), help="Store folder to create.")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing servelab store (any other folder or file is refused).")
@click.option("--column-map", type=click.Path(exists=True, dir_okay=False),
              help="TOML column map (format 'generic'; see README).")
@click.option("--clock", "clock", type=float, default=None, metavar="SECONDS",
              help="The timestamps' logging step, when known (e.g. 3 for Mooncake); detected when omitted. "
                   "Gap analyses censor gaps below it.")
@click.option("--max-line-bytes", type=click.IntRange(min=1024), default=None, metavar="BYTES",
              help="Longest row (CSV line or JSONL object) read, in bytes (default 64 MiB); a longer one is "
                   "one rejected row (line_too_long).")
@click.option("--partition-by", "partition_by", type=click.Choice(["day", "day,source"]), default=None,
              help="Write the requests as requests/day=YYYY-MM-DD/part-0.parquet (UTC days; a lake-scale layout "
                   "both engines read) instead of one requests.parquet; 'day,source' adds source=NAME folders "
                   "(the source: the model column, else service).")
@click.option("--engine", type=click.Choice(["duckdb", "spark"]), default="duckdb", show_default=True,
              help="Where the ingest runs: duckdb (this machine), or spark (needs servelab[spark] and Java; the same "
                   "rows and reject counts, the store partitioned by day; no conversation links).")
@click.option("--spark-master", default=None, help="Spark master URL for --engine spark: local[2] (default), local[*], "
              "spark://host:7077, or sc://host:15002 (Spark Connect).")
def ingest(sources: tuple[str, ...], fmt: str, output: str, overwrite: bool, column_map: str | None,
           clock: float | None, max_line_bytes: int | None, partition_by: str | None, engine: str,
           spark_master: str | None) -> None:
    """Ingest raw trace files SOURCE... (paths or globs, one format) into a trace store."""
    from servelab.analysis import ingest as run_ingest
    from servelab.analysis.exceptions import ColumnMapError, StoreExistsError, TraceFormatError
    from servelab.analysis.ingest import DEFAULT_MAX_LINE_BYTES, StoreLockedError

    if spark_master is not None and engine != "spark":
        raise click.BadParameter("--spark-master is for --engine spark", param_hint="--spark-master")
    if engine == "spark" and partition_by not in (None, "day"):
        raise click.BadParameter("with --engine spark the store is partitioned by day (only)",
                                 param_hint="--partition-by")
    try:
        if engine == "spark":
            from servelab.analysis.engines import EngineUnavailableError, check_master
            from servelab.analysis.ingest.spark_ingest import ingest_spark

            try:
                store = ingest_spark(list(sources), fmt=fmt, output=output, overwrite=overwrite,
                                     column_map=column_map, clock=clock,
                                     max_line_bytes=max_line_bytes or DEFAULT_MAX_LINE_BYTES,
                                     master=check_master(spark_master))
            except EngineUnavailableError as err:
                raise click.ClickException(str(err)) from None
            partition_by = None  # written partitioned by day
        else:
            store = run_ingest(list(sources), fmt=fmt, output=output, overwrite=overwrite, column_map=column_map,
                               clock=clock, max_line_bytes=max_line_bytes or DEFAULT_MAX_LINE_BYTES)
    except (TraceFormatError, ColumnMapError, StoreExistsError, StoreLockedError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from None
    except ValueError as err:  # a bad --clock or --spark-master
        hint = "--spark-master" if "master" in str(err) else "--clock"
        raise click.BadParameter(str(err), param_hint=hint) from None
    if engine == "spark":
        click.echo(f"layout: {len(store.requests_files)} file(s) under {store.requests_path} "
                   f"(partitioned by day; written by Spark)", err=True)
    if partition_by:
        from servelab.analysis.store import partition_store

        try:
            store = partition_store(store.path, by=tuple(partition_by.split(",")))
        except ValueError as err:  # no source column
            raise click.BadParameter(f"{err} (the store was written unpartitioned, as one requests.parquet)",
                                     param_hint="--partition-by") from None
        click.echo(f"layout: {len(store.requests_files)} file(s) under {store.requests_path} "
                   f"(partitioned by {partition_by})", err=True)
    m = store.manifest
    chosen = m["format"]
    if m.get("extra", {}).get("ingest", {}).get("sniffed"):
        how = "sniffed from the header, --format auto"
    elif fmt == "auto" and column_map:
        how = "--column-map given"
    else:
        how = "as given"
    click.echo(f"format: {chosen} ({how})", err=True)
    rows = m["rows"]
    rejected = rows["rejected"]
    rej_text = ", ".join(f"{k} {v:,}" for k, v in rejected.items()) if rejected else "none"
    click.echo(
        f"{store.path}: read {rows['read']:,} rows, stored {rows['stored']:,}, rejected "
        f"{sum(rejected.values()):,} ({rej_text}); duplicates {rows['duplicates']:,} (kept), "
        f"unsorted {rows['unsorted']:,} (sorted)"
    )
    click.echo(f"clock: {clock_text(m)}", err=True)


def clock_text(manifest) -> str:
    """The store's logging clock in words, from its manifest (``unknown`` for older stores)."""
    from servelab.analysis.clock import Clock

    entry = manifest.get("clock")
    if not entry:
        return "unknown (store written before clock detection, or without timestamps)"
    text = Clock.from_json(entry).describe()
    if entry.get("detected"):
        text += f" [detected: {Clock.from_json(entry['detected']).describe()}]"
    return text
