"""ClientPool: frozen, lazily loaded, nested spans clip, filters and statistics checked by hand."""
from __future__ import annotations

import json

import numpy as np
from pathlib import Path

import polars as pl
import pytest

from servelab.generator import ClientPool, PoolSpanError, read_servegen
from servelab.generator.exceptions import PoolFormatError, PoolNotFoundError
from servelab.generator.pool_format import FORMAT_VERSION, read_pool, write_pool


@pytest.fixture(scope="module")
def r1(raw_traces):
    return read_servegen(raw_traces / "servegen" / "deepseek-r1")


def _raw_rates(path):
    """client -> (window_start, rate, cv) read with numpy, independent of the importer."""
    out = {}
    for f in sorted(path.glob("chunk-*-trace.csv")):
        cid = f.name[len("chunk-"):-len("-trace.csv")]
        out[cid] = np.genfromtxt(f, delimiter=",", usecols=(0, 1, 2))
    return out


def test_frozen_and_spans_clip_without_mutating(msmall):
    with pytest.raises(AttributeError, match="frozen"):
        msmall.window_s = 1.0
    before = msmall.arrivals.height
    assert msmall.span == (0.0, 14 * 86400.0)
    a = msmall.span(3600, 7200)
    assert a.span == (3600.0, 7200.0)
    # nested spans intersect
    b = a.span(0, 5000)
    assert b.span == (3600.0, 5000.0)
    assert b.clip(4000).span == (4000.0, 5000.0)
    assert msmall.span == (0.0, 14 * 86400.0) and msmall.arrivals.height == before
    # windows overlapping [3600, 5000): starts 3600, 4200, 4800 for each of 6 clients
    assert sorted(b.arrivals["window_start"].unique().to_list()) == [3600.0, 4200.0, 4800.0]
    # sparse arrivals: only the active ones of those 6 x 3 (client, window) cells are held; the
    # count from ServeGen's CSVs directly (rate column > 0)
    raw = pl.concat([pl.read_csv(f, has_header=False, new_columns=["t", "rate", "cv", "fam", "shape", "scale"],
                                 schema_overrides={"t": pl.Float64, "rate": pl.Float64, "cv": pl.Float64, "fam": pl.String,
                                                   "shape": pl.Float64, "scale": pl.Float64})
                     for f in sorted((Path(__file__).parents[2] / "raw_traces/servegen/m-small").glob("chunk-*-trace.csv"))])
    active = raw.filter(pl.col("t").is_in([3600.0, 4200.0, 4800.0]) & (pl.col("rate") > 0)).height
    assert 0 < active < 6 * 3 and b.arrivals.height == active and b.arrivals["rate"].min() > 0
    # data window 0 (6 h) overlaps; the others do not
    assert b.data["window_start"].unique().to_list() in ([], [0.0])
    with pytest.raises(PoolSpanError, match="is empty"):
        a.span(8000, 9000)
    with pytest.raises(PoolSpanError, match="is empty"):
        msmall.clip(10, 10)


def test_client_stats_match_an_independent_computation(msmall, raw_traces):
    raw = _raw_rates(raw_traces / "servegen" / "m-small")
    stats = msmall.client_stats()
    duration = 14 * 86400.0
    for cid, arr in raw.items():
        row = stats.filter(pl.col("client_id") == cid)
        assert row["mean_rate"][0] == pytest.approx(arr[:, 1].sum() * 600 / duration, rel=1e-12)
        busy = arr[:, 1] > 0
        assert row["active_windows"][0] == busy.sum()
        assert row["cv_mean"][0] == pytest.approx(np.average(arr[busy, 2], weights=arr[busy, 1]), rel=1e-12)
    assert stats["rate_share"].sum() == pytest.approx(1.0)
    # the missing-dataset client has no length statistics
    assert stats.filter(pl.col("client_id") == "1")["mean_input_tokens"][0] is None


def test_filters_and_top(msmall):
    stats = msmall.client_stats()
    busy = msmall.filter(min_rate=1.0)
    assert set(busy.client_ids) == set(stats.filter(pl.col("mean_rate") >= 1.0)["client_id"])
    assert set(busy.client_ids) == {"1", "14"}
    calm = msmall.filter(max_cv=2.0)
    assert set(calm.client_ids) == set(stats.filter(pl.col("cv_mean") <= 2.0)["client_id"])
    short = msmall.filter(pl.col("mean_output_tokens") < 10)
    assert set(short.client_ids) == set(stats.filter(pl.col("mean_output_tokens") < 10)["client_id"])
    assert msmall.top(1).client_ids == ("14",)
    assert msmall.select(["4", "0"]).client_ids == ("0", "4")
    with pytest.raises(KeyError, match="not in the pool"):
        msmall.select(["nope"])
    with pytest.raises(ValueError, match="n must be a positive integer"):
        msmall.top(0)


def test_window_cdf_weighted_by_rate(r1, raw_traces):
    raw = _raw_rates(raw_traces / "servegen" / "deepseek-r1")
    cdf = r1.window_cdf("cv")
    w = 36000.0
    got = cdf.filter(pl.col("window_start") == w)
    rows = np.array([arr[arr[:, 0] == w][0] for arr in raw.values()])
    rows = rows[rows[:, 1] > 0]
    order = np.argsort(rows[:, 2], kind="stable")
    ref = np.cumsum(rows[order, 1]) / rows[:, 1].sum()
    np.testing.assert_allclose(got["cdf"].to_numpy(), ref, rtol=1e-12)
    np.testing.assert_array_equal(got["value"].to_numpy(), rows[order, 2])
    unweighted = r1.window_cdf("rate", weighted=False).filter(pl.col("window_start") == w)
    np.testing.assert_allclose(unweighted["cdf"].to_numpy(), np.arange(1, len(rows) + 1) / len(rows))
    lengths = r1.window_cdf("output_tokens")
    assert lengths.group_by("window_start").agg(pl.col("cdf").max())["cdf"].to_list() == pytest.approx([1.0] * 4)
    with pytest.raises(ValueError, match="stat must be"):
        r1.window_cdf("latency")


def test_servelab_format_round_trip_is_lazy_and_exact(msmall, tmp_path):
    write_pool(msmall, tmp_path / "p")
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    assert manifest["format"] == "servelab-pool" and manifest["format_version"] == FORMAT_VERSION
    assert manifest["provenance"]["servegen"]["missing_datasets"] == ["1"]
    loaded = ClientPool.load(tmp_path / "p")
    assert "arrivals" not in loaded.__dict__  # nothing collected yet
    for name in ("clients", "arrivals", "data"):
        sort = ["client_id"] + (["window_start"] if name != "clients" else [])
        assert getattr(loaded, name).sort(sort, maintain_order=True).equals(
            getattr(msmall, name).sort(sort, maintain_order=True)), name
    assert loaded.span == msmall.span and loaded.fields == msmall.fields
    with pytest.raises(Exception, match="already exists"):
        write_pool(msmall, tmp_path / "p")
    write_pool(msmall.top(1), tmp_path / "p", overwrite=True)
    assert read_pool(tmp_path / "p").client_ids == ("14",)
    with pytest.raises(PoolNotFoundError, match="no manifest.json"):
        read_pool(tmp_path / "nothing")
    manifest["format_version"] = 99
    (tmp_path / "p" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PoolFormatError, match="format_version 99"):
        read_pool(tmp_path / "p")


def test_version_1_pools_are_read_with_named_parameters(msmall, tmp_path):
    # format version 1 stored one ``shape`` column (Gamma a or Weibull c, by family); a v1 pool is
    # read into the named columns, numbers unchanged, and written back as version 3 (sparse)
    write_pool(msmall, tmp_path / "p")
    arr = pl.read_parquet(tmp_path / "p" / "arrivals.parquet")
    legacy = arr.with_columns(pl.coalesce("a", "c").alias("shape")).drop("a", "c", "s")
    legacy.write_parquet(tmp_path / "p" / "arrivals.parquet")
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    manifest["format_version"] = 1
    (tmp_path / "p" / "manifest.json").write_text(json.dumps(manifest))
    old = read_pool(tmp_path / "p").arrivals.sort("client_id", "window_start")
    ref = msmall.arrivals.sort("client_id", "window_start")
    assert "shape" not in old.columns and {"a", "c", "s", "scale"} <= set(old.columns)
    for col in ("family", "a", "c", "scale"):
        assert old[col].equals(ref[col]), col
    gamma = old.filter(pl.col("family") == "gamma")
    assert gamma.height > 0 and gamma["c"].null_count() == gamma.height and gamma["a"].null_count() == 0
    write_pool(read_pool(tmp_path / "p"), tmp_path / "q")
    assert json.loads((tmp_path / "q" / "manifest.json").read_text())["format_version"] == 3
    assert "shape" not in pl.read_parquet(tmp_path / "q" / "arrivals.parquet").columns


def test_constructor_validation():
    with pytest.raises(ValueError, match="window_s must be a positive"):
        ClientPool(window_s=0, data_window_s=1)
    with pytest.raises(PoolFormatError, match="lacks columns"):
        ClientPool(arrivals=pl.DataFrame({"client_id": ["a"]}), window_s=600, data_window_s=21600)
    empty = ClientPool(window_s=600, data_window_s=21600)
    assert empty.n_clients == 0 and empty.span == (0.0, 0.0) and empty.fields == ()


def back_equal(a: pl.DataFrame, b: pl.DataFrame) -> bool:
    keys = ["client_id", "window_start", "field", "value"]
    return a.schema == b.schema and a.sort(keys).equals(b.sort(keys))


def test_float32_exact_columns_are_narrowed_on_disk_losslessly(msmall, tmp_path):
    arr = msmall.arrivals.with_columns(pl.col("cv").cast(pl.Float32).cast(pl.Float64))
    pool = msmall.replace(arrivals=arr)
    write_pool(pool, tmp_path / "p")
    disk = pl.read_parquet_schema(tmp_path / "p" / "arrivals.parquet")
    assert disk["cv"] == pl.Float32 and disk["rate"] == pl.Float64  # ServeGen's rates are not float32-exact
    data_disk = pl.read_parquet_schema(tmp_path / "p" / "data.parquet")
    assert data_disk["probability"] == pl.Float64 and data_disk["value"] == pl.Float32  # token counts < 2**24
    assert back_equal(read_pool(tmp_path / "p").data, msmall.data)
    back = read_pool(tmp_path / "p")
    assert back.arrivals.schema["cv"] == pl.Float64
    assert back.arrivals.sort("client_id", "window_start").equals(arr.sort("client_id", "window_start"))


def test_integral_columns_beyond_float32_are_stored_as_int64(tmp_path):
    big = 2.0**30 + 1  # integral but not float32-exact
    data = pl.DataFrame({"client_id": ["a", "a"], "window_start": [0.0, 0.0], "window_s": [21600.0] * 2,
                         "field": ["input_tokens"] * 2, "value": [3.0, big], "probability": [0.1, 0.9]})
    pool = ClientPool(clients=pl.DataFrame({"client_id": ["a"], "has_arrivals": [False], "has_data": [True], "note": [""]}),
                      data=data, window_s=600, data_window_s=21600, span=(0.0, 21600.0))
    write_pool(pool, tmp_path / "p")
    disk = pl.read_parquet_schema(tmp_path / "p" / "data.parquet")
    assert disk["value"] == pl.Int64 and disk["probability"] == pl.Float64
    assert read_pool(tmp_path / "p").data["value"].to_list() == [3.0, big]
