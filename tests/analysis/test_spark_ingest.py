"""``servelab ingest --engine spark`` (issue 21): the same raw files give the same store as DuckDB's ingest.

Same stored rows (same order and request ids, so the same row hashes), the same rejected rows
(source, row, reason) and counts per reason, read = stored + rejected per source, the same
duplicates, unsorted rows and clocks. Three ingests, each of several sources so that the Spark
block of CI stays short (the session is the shared ``spark_local`` fixture): the BurstGPT sample
with the malformed-input fixture ``spark_malformed.csv`` (every CSV reject reason, quoted commas,
a duplicate) and ``bad_unsorted.csv``; the Azure sample (7-digit fractions) with an unparseable
date-time; the Mooncake sample (JSONL, block lists) with ``bad_mooncake.jsonl`` (bad lines, a blank
line, a bad list); a Parquet log under a column map (built by the test). The SQL translation and the refusals need no Spark.
"""
from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from servelab.samples import RAW_TRACES

DATA = Path(__file__).resolve().parents[1] / "data" / "ingest"

GROUPS = {
    "burstgpt+malformed": [DATA / "spark_malformed.csv", RAW_TRACES / "burstgpt" / "BurstGPT_1_head54.csv",
                           DATA / "bad_unsorted.csv"],
    "azure": [RAW_TRACES / "azure_2023" / "AzureLLMInferenceTrace_code.csv", DATA / "bad_azure_timestamp.csv"],
    "mooncake": [RAW_TRACES / "mooncake" / "synthetic_trace.jsonl", DATA / "bad_mooncake.jsonl"],
    "parquet": None,  # written by _parquet_source: generic format, numeric columns read as DOUBLE
}

PARQUET_MAP = {"time": {"column": "t", "unit": "s"},
               "columns": {"input_tokens": "a", "output_tokens": "b", "model": "m", "failed": "f"}}


def _parquet_source(folder: Path) -> Path:
    """A Parquet log with a missing, a NaN and an unsorted time, a negative and a missing count."""
    path = folder / "log.parquet"
    pl.DataFrame({"t": [0.5, 1.0, None, 2.0, float("nan"), 3.0, 2.5, 4.0, 1.5],
                  "a": [10, 20, 30, -1, 5, 7, 8, 9, 4], "b": [1, 2, 3, 4, 5, None, 0, 1, 2],
                  "m": ["x", "y", "x", "x", None, "y", "z", "x", "y"],
                  "f": [True, False, None, True, False, True, False, True, None]}).write_parquet(path)
    return path


def _rows_hash(frame: pl.DataFrame) -> int:
    """One number for the rows in order (list columns as text: polars cannot hash lists in hash_rows)."""
    lists = [c for c, t in frame.schema.items() if isinstance(t, pl.List)]
    frame = frame.with_columns(pl.col(c).cast(pl.List(pl.String)).list.join(",") for c in lists)
    hashes = frame.hash_rows(seed=7)
    return int((hashes * pl.int_range(1, frame.height + 1, eager=True).cast(pl.UInt64)).sum())


@pytest.mark.spark
@pytest.mark.parametrize("group", sorted(GROUPS))
def test_spark_ingest_same_store_as_duckdb(tmp_path, group, spark_local):
    from servelab.analysis.ingest import ingest
    from servelab.analysis.ingest.spark_ingest import ingest_spark

    cmap = PARQUET_MAP if group == "parquet" else None
    sources = [str(p) for p in GROUPS[group] or [_parquet_source(tmp_path)]]
    duck = ingest(sources, output=tmp_path / "duckdb", column_map=cmap, progress=False)
    spark = ingest_spark(sources, output=tmp_path / "spark", column_map=cmap, session=spark_local)

    a, b = duck.to_polars(), spark.to_polars()
    assert a.height > 0
    assert_frame_equal(a, b, check_exact=True)
    assert b["request_id"].to_list() == list(range(b.height))
    assert _rows_hash(a) == _rows_hash(b)
    assert spark.partitioned and spark.in_id_order and spark.manifest["layout"]["partition_by"] == ["day"]

    ma, mb = duck.manifest, spark.manifest
    assert mb["rows"] == ma["rows"]
    assert mb["extra"]["ingest"]["engine"] == "spark"
    for sa, sb in zip(ma["sources"], mb["sources"], strict=True):
        for key in ("path", "sha256", "format", "rows_read", "rows_stored", "rows_rejected", "unsorted"):
            assert sb[key] == sa[key], key
        assert sb["rows_read"] == sb["rows_stored"] + sum(sb["rows_rejected"].values())  # every row accounted for
        if sa["unsorted"] == 0:  # DuckDB's single pass takes an unsorted file's clock in file order
            assert sb["clock"] == sa["clock"]
    assert mb["rows"]["read"] == sum(s["rows_read"] for s in mb["sources"])
    for key in ("format", "columns", "origin", "span_s", "clock_s", "clock", "lengths"):
        assert mb[key] == ma[key], key

    keys = ["source", "row", "reason"]
    ra, rb = pl.read_parquet(duck.rejected_path), pl.read_parquet(spark.rejected_path)
    assert_frame_equal(ra.select(keys), rb.select(keys))
    for raw in rb["raw"]:
        json.loads(raw)  # the raw values are JSON


@pytest.mark.spark  # run by the CI's spark block, which installs sqlglot (the README suite skips it)
def test_spark_sql_leaves_no_duckdb_function():
    pytest.importorskip("sqlglot")
    from servelab.analysis.ingest import generic, mooncake
    from servelab.analysis.ingest.reading import _raw_values_json
    from servelab.analysis.ingest.spark_sql import spark_typed_rows_sql

    cmap = generic.load_column_map({"time": {"column": "t", "format": "%Y-%m-%d %H:%M:%S"},
                                    "columns": {"input_tokens": "a", "output_tokens": "b", "failed": "f"}})
    cols = ("t", "a", "b", "f")
    datetime_sql = spark_typed_rows_sql(generic.plan(cols, cmap), "v", _raw_values_json(cols), 0, {})
    cols = ("timestamp", "input_length", "output_length", "hash_ids")
    list_sql = spark_typed_rows_sql(mooncake.plan(cols), "v", _raw_values_json(cols), 0, {})
    for sql in (datetime_sql, list_sql):
        for duckdb_only in ("IS_INF(", "EPOCH_US(", "ISFINITE(", "JSON_OBJECT(", "TRY_STRPTIME(", "LENGTH(FILTER",
                            "AS ARRAY<BIGINT>)", "AS ARRAY<DOUBLE>)"):
            assert duckdb_only not in sql.upper(), duckdb_only
    assert "TO_TIMESTAMP(`t`, 'yyyy-" in datetime_sql
    assert "FROM_JSON(_r2, 'array<bigint>')" in list_sql and "SIZE(FILTER(" in list_sql


def test_spark_ingest_refuses_conversation_links(tmp_path):
    from servelab.analysis.ingest.spark_ingest import SparkIngestError, ingest_spark

    with pytest.raises(SparkIngestError, match=r"format 'bailian' links conversations .*--engine duckdb"):
        ingest_spark(DATA / "bailian.jsonl", output=tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_ingest_cli_engine_options(tmp_path):
    from click.testing import CliRunner

    from servelab.cli import main

    src = str(RAW_TRACES / "burstgpt" / "BurstGPT_1_head54.csv")
    out = str(tmp_path / "s")
    result = CliRunner().invoke(main, ["ingest", src, "-o", out, "--spark-master", "local[2]"])
    assert result.exit_code == 2 and "--spark-master is for --engine spark" in result.output
    result = CliRunner().invoke(main, ["ingest", src, "-o", out, "--engine", "spark", "--partition-by", "day,source"])
    assert result.exit_code == 2 and "partitioned by day (only)" in result.output
    result = CliRunner().invoke(main, ["ingest", src, "-o", out, "--engine", "spark", "--spark-master", "http://x"])
    assert result.exit_code == 2 and "master must be a Spark master URL" in result.output
    assert not Path(out).exists()
