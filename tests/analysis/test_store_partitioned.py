"""Stores partitioned by day (issue 21): ``requests/day=YYYY-MM-DD/part-0.parquet``, read as one table;
and by day and source (``.../day=D/source=NAME/part-0.parquet``, the source being the ``model`` column).

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

from servelab.analysis.store import NULL_PARTITION, open_store, parquet_sql, partition_store, write_store
from servelab.cli import main
from servelab.samples import RAW_TRACES

ORIGIN = dt.datetime(2026, 3, 1, 22, 30, tzinfo=dt.timezone.utc)


#: the sources (``model`` values) of _frame: one needing percent-encoding, and NULL
MODELS = ("GPT-4", "llama/70b", None)


def _frame(n: int = 3000) -> pl.DataFrame:
    """Three clients and three models over 50 h starting 22:30 UTC: rows on 2026-03-01, -02, -03 and -04."""
    rng = np.random.default_rng(5)
    return pl.DataFrame({"timestamp": np.sort(rng.uniform(0, 50 * 3600, n)),
                         "client_id": rng.choice(["a", "b", "c"], n).tolist(),
                         "model": [MODELS[i] for i in rng.integers(0, 3, n)],
                         "input_tokens": rng.integers(1, 4000, n), "output_tokens": rng.integers(1, 900, n)})


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("partitioned")
    single = write_store(_frame(), tmp / "single", origin=ORIGIN, timezone="UTC")
    shutil.copytree(single.path, tmp / "parts")
    return single, partition_store(tmp / "parts")


@pytest.fixture(scope="module")
def by_source(stores, tmp_path_factory):
    """The single-file store of ``stores`` partitioned by day and source (its ``model`` column)."""
    single, _ = stores
    tmp = tmp_path_factory.mktemp("by_source")
    shutil.copytree(single.path, tmp / "parts")
    return partition_store(tmp / "parts", by=("source", "day"))  # folders in PARTITION_KEYS order whatever the order given


def test_by_day_and_source_layout_and_reads(stores, by_source):
    single, _ = stores
    frame = single.to_polars()
    # the expected folders, computed here from the wall clock and the model names (not by the store's SQL)
    when = [(ORIGIN + dt.timedelta(seconds=float(t))).date().isoformat() for t in frame["timestamp"]]
    names = {"GPT-4": "GPT-4", "llama/70b": "llama%2F70b", None: NULL_PARTITION}
    expected = sorted({f"requests/day={d}/source={names[m]}/part-0.parquet" for d, m in zip(when, frame["model"])})
    got = [f.relative_to(by_source.path).as_posix() for f in by_source.requests_files]
    assert sorted(got) == expected and len(got) == 12  # 4 days x 3 sources
    layout = by_source.manifest["layout"]
    assert layout["partition_by"] == ["day", "source"] and layout["source_column"] == "model"
    assert layout["in_id_order"] is False and not by_source.in_id_order and single.in_id_order
    # each file holds one (day, model) only
    for f in by_source.requests_files:
        part = pl.read_parquet(f, hive_partitioning=False)
        model = f.parent.name.removeprefix("source=")
        assert set(part["model"].to_list()) == {next(m for m, n in names.items() if n == model)}
        assert part["request_id"].is_sorted()
    # the files interleave in request_id, yet every reader gives the single file's rows in order
    first = pl.read_parquet(by_source.requests_files[0], hive_partitioning=False)
    assert first.height < frame.filter(pl.Series(when) == when[0]).height  # not a whole day: interleaved
    assert by_source.to_polars().equals(frame)
    assert by_source.to_polars(["model", "timestamp"]).equals(frame.select("model", "timestamp"))
    assert by_source.read_arrow(["client_id"]).to_pylist() == single.read_arrow(["client_id"]).to_pylist()
    assert by_source.query("SELECT * FROM requests").equals(single.query("SELECT * FROM requests"))
    assert by_source.manifest["rows"] == single.manifest["rows"]


def test_partition_by_source_needs_a_source_column(tmp_path):
    store = write_store(pl.DataFrame({"timestamp": [0.0, 1.0], "client_id": ["a", "b"]}), tmp_path / "s")
    with pytest.raises(ValueError, match=r"has no source column \(one of \['model', 'service'\]\) to partition by; "
                                         r"got by=\['day', 'source'\] with columns \['request_id', 'timestamp', 'client_id'\]"):
        partition_store(store.path, by=("day", "source"))
    with pytest.raises(ValueError, match=r"by must name partition keys from \['day', 'source'\]; got \['day', 'day'\]"):
        partition_store(store.path, by=("day", "day"))
    assert not store.partitioned and (store.path / "requests.parquet").is_file()  # nothing changed


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
    with pytest.raises(ValueError, match=r"by must name partition keys from \['day', 'source'\]; got \['hour'\]"):
        partition_store(parts.path, by=("hour",))
    with pytest.raises(ValueError, match=r"is partitioned already; got by=\['day'\]"):
        partition_store(parts.path)


def test_analyses_same_on_both_layouts(stores, tmp_path):
    from servelab.fitting.pool_fit import fit_pool
    from servelab.reports.builder import build_report
    from test_engines import _assert_same_pool, _pool_frames

    single, parts = stores
    # the SQL readers (overview), the arrival frames (arrivals) and the per-client reads (clients);
    # lengths (8.2 of 16.4 CPU-s of the four sections here) reads through the same readers, and
    # fit_pool below fits the lengths on both layouts
    kw = {"quick": True, "seed": 1, "progress": False, "figure_worker": False,
          "sections": ("overview", "arrivals", "clients")}
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
    assert result.exit_code == 2 and "'hour' is not one of 'day', 'day,source'" in result.output
    # Azure has no model or service column: no source to partition by, said so
    result = CliRunner().invoke(main, ["ingest", str(raw), "-o", str(tmp_path / "y"), "--partition-by", "day,source"])
    assert result.exit_code == 2 and "has no source column" in result.output and "written unpartitioned" in result.output


def test_ingest_cli_partition_by_day_and_source(tmp_path):
    raw = RAW_TRACES / "burstgpt" / "BurstGPT_1_head54.csv"
    for name, extra in (("plain", ()), ("parts", ("--partition-by", "day,source"))):
        result = CliRunner().invoke(main, ["ingest", str(raw), "-o", str(tmp_path / name), *extra])
        assert result.exit_code == 0, result.output
    plain, parts = open_store(tmp_path / "plain"), open_store(tmp_path / "parts")
    models = sorted(set(plain.to_polars()["model"].to_list()))
    assert models == ["ChatGPT", "GPT-4"]  # the sample's two sources
    assert sorted({f.parent.name for f in parts.requests_files}) == [f"source={m}" for m in models]
    assert parts.to_polars().equals(plain.to_polars()) and parts.manifest["rows"] == plain.manifest["rows"]


@pytest.mark.spark
def test_spark_reads_the_partitioned_store_like_duckdb_the_single_file(stores, by_source, spark_local):
    # the store by day and source: its files interleave in request_id (the harder case of the two layouts)
    from test_engines import _aggregates, _assert_same, _index

    single, _ = stores
    parts = by_source
    index = _index(single)
    duck = _aggregates(single, index, "duckdb")
    spark = _aggregates(parts, index, "spark")
    assert duck.keys() == spark.keys() and duck["arrival_cells"].height > 0
    for name in duck:
        _assert_same(f"partitioned:{name}", duck[name], spark[name])
