"""Stores partitioned by day (issue 21): ``requests/day=YYYY-MM-DD/part-0.parquet``, read as one table.

A partitioned store must read exactly as the single-file store it was made from: same rows in the
same ``request_id`` order, same columns (no ``day`` column from the folder names), read = stored +
rejected, and the same results from the analyses (report sections, pool fitting) and from both
engines.
"""
from __future__ import annotations

import datetime as dt
import shutil

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from servelab.analysis.engines import spark_available
from servelab.analysis.store import open_store, parquet_sql, partition_store, write_store
from servelab.cli import main
from servelab.samples import RAW_TRACES

SPARK_MISSING = spark_available()
ORIGIN = dt.datetime(2026, 3, 1, 22, 30, tzinfo=dt.timezone.utc)


def _frame(n: int = 3000) -> pl.DataFrame:
    """Three clients over 50 h starting 22:30 UTC: rows on 2026-03-01, -02, -03 and -04."""
    rng = np.random.default_rng(5)
    return pl.DataFrame({"timestamp": np.sort(rng.uniform(0, 50 * 3600, n)),
                         "client_id": rng.choice(["a", "b", "c"], n).tolist(),
                         "input_tokens": rng.integers(1, 4000, n), "output_tokens": rng.integers(1, 900, n)})


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("partitioned")
    single = write_store(_frame(), tmp / "single", origin=ORIGIN, timezone="UTC")
    shutil.copytree(single.path, tmp / "parts")
    return single, partition_store(tmp / "parts")


def test_layout_days_and_files(stores):
    single, parts = stores
    frame = single.to_polars()
    # the expected days, computed here from the wall clock (not by the store's SQL)
    days = sorted({(ORIGIN + dt.timedelta(seconds=float(t))).date().isoformat() for t in frame["timestamp"]})
    assert days == ["2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"]
    assert [f.relative_to(parts.path).as_posix() for f in parts.requests_files] == [
        f"requests/day={d}/part-0.parquet" for d in days]
    assert parts.manifest["layout"]["kind"] == "partitioned" and parts.manifest["layout"]["partition_by"] == ["day"]
    assert not (parts.path / "requests.parquet").exists() and parts.partitioned and not single.partitioned
    # each file holds its day's rows only, without a day column
    for f, d in zip(parts.requests_files, days):
        got = pl.read_parquet(f, hive_partitioning=False)
        assert got.columns == frame.columns
        when = [(ORIGIN + dt.timedelta(seconds=t)).date().isoformat() for t in got["timestamp"].to_list()]
        assert set(when) == {d}


def test_reads_as_the_single_file_store(stores):
    single, parts = stores
    assert parts.to_polars().equals(single.to_polars())
    assert parts.read_arrow(["request_id", "client_id"], dictionary=("client_id",)).to_pylist() == \
        single.read_arrow(["request_id", "client_id"], dictionary=("client_id",)).to_pylist()
    assert parts.query("SELECT * FROM requests ORDER BY request_id").equals(
        single.query("SELECT * FROM requests ORDER BY request_id"))
    assert parts.query("SELECT * FROM requests").columns == list(single.columns)
    # manifest rows unchanged: read = stored + rejected
    rows = parts.manifest["rows"]
    assert rows == single.manifest["rows"] and rows["read"] == rows["stored"] + sum(rows["rejected"].values())
    assert parts.n_requests == parts.query("SELECT count(*) AS n FROM requests")["n"][0] == 3000


def test_parquet_sql_and_errors(stores, tmp_path):
    _, parts = stores
    import duckdb

    sql = parquet_sql(parts.requests_files, columns=["request_id"])
    assert "hive_partitioning = false" in sql
    assert duckdb.sql(f"SELECT max(request_id) AS m FROM {sql}").fetchall() == [(2999,)]
    with pytest.raises(ValueError, match=r"files must name at least one Parquet file; got \[\]"):
        parquet_sql([])
    with pytest.raises(ValueError, match=r"by must name partition keys from \['day'\]; got \['hour'\]"):
        partition_store(parts.path, by=("hour",))
    with pytest.raises(ValueError, match=r"is partitioned already; got by=\['day'\]"):
        partition_store(parts.path)


def test_analyses_same_on_both_layouts(stores, tmp_path):
    from servelab.fitting.pool_fit import fit_pool
    from servelab.reports.builder import build_report
    from test_engines import _assert_same_pool, _pool_frames

    single, parts = stores
    kw = {"quick": True, "seed": 1, "progress": False, "figure_worker": False,
          "sections": ("overview", "arrivals", "lengths", "clients")}
    a = build_report(single, output=tmp_path / "a.html", **kw)
    b = build_report(parts, output=tmp_path / "b.html", **kw)
    assert dict(a.sections) == dict(b.sections) == dict.fromkeys(kw["sections"], "ok")
    for sid in kw["sections"]:
        assert dict(a.built[sid].headline) == dict(b.built[sid].headline), sid
    assert a.built["overview"].headline["requests"] == 3000
    pools = [_pool_frames(fit_pool(s, seed=2, window_s="10m", data_window_s="6h")) for s in (single, parts)]
    prov = [p.pop("provenance") for p in pools]
    assert prov[0]["source"]["sha256"] != prov[1]["source"]["sha256"]  # other files, other bytes
    _assert_same_pool("layouts", *pools)


def test_ingest_cli_partition_by_day(tmp_path):
    raw = RAW_TRACES / "azure_2023" / "AzureLLMInferenceTrace_code.csv"
    bad = tmp_path / "azure_bad.csv"  # the sample plus one row that must be rejected
    bad.write_text(raw.read_text().rstrip("\n") + "\nnot-a-date,12,34\n")  # the sample ends without a newline
    out = tmp_path / "store"
    result = CliRunner().invoke(main, ["ingest", str(bad), "-o", str(out), "--partition-by", "day"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["ingest", str(raw), "-o", str(tmp_path / "plain")])
    assert result.exit_code == 0, result.output
    store, plain = open_store(out), open_store(tmp_path / "plain")
    assert [f.parent.name for f in store.requests_files] == ["day=2023-11-16"]  # the sample's hour (README)
    rows, before = store.manifest["rows"], plain.manifest["rows"]
    n_rejected = sum(rows["rejected"].values())
    assert rows["stored"] == before["stored"] > 8000 and n_rejected == sum(before["rejected"].values()) + 1
    assert rows["read"] == rows["stored"] + n_rejected == before["read"] + 1
    assert store.query("SELECT count(*) AS n FROM rejected")["n"][0] == n_rejected
    assert store.to_polars().equals(plain.to_polars())
    result = CliRunner().invoke(main, ["ingest", str(raw), "-o", str(tmp_path / "x"), "--partition-by", "hour"])
    assert result.exit_code == 2 and "'hour' is not 'day'" in result.output


@pytest.mark.spark
@pytest.mark.skipif(SPARK_MISSING is not None, reason=f"engine 'spark': {SPARK_MISSING}")
def test_spark_reads_the_partitioned_store_like_duckdb_the_single_file(stores):
    from test_engines import _aggregates, _assert_same, _index

    single, parts = stores
    index = _index(single)
    duck = _aggregates(single, index, "duckdb")
    spark = _aggregates(parts, index, "spark")
    assert duck.keys() == spark.keys() and duck["arrival_cells"].height > 0
    for name in duck:
        _assert_same(f"partitioned:{name}", duck[name], spark[name])
