"""The aggregation SQL on DuckDB and on Spark SQL (analysis.engines): one SQL text, the same results.

The Spark tests need pyspark, sqlglot and Java (``pip install servelab[spark]``); they are marked
``spark`` and skip, saying why, without them. The portable hash (``mix_sql``) is checked on DuckDB
alone against an independent Python computation.
"""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from scipy import stats

from servelab.analysis.aggregates import (
    aggregate_source,
    arrival_cells,
    build_gaps,
    client_counts,
    conversation_aggregates,
    field_sql,
    gap_samples,
    log_stats,
    mix_sql,
    trace_gaps,
    uniform_sql,
    value_counts,
    window_length_stats,
)
from servelab.analysis.engines import ENGINES
from servelab.analysis.store import write_store



def _mix_reference(ids: np.ndarray, seed: int) -> np.ndarray:
    """mix_sql in Python integers (arbitrary precision: no overflow to hide), from its definition:
    two rounds of x -> ((x >> 16) xor x) * 0x45d9f3b mod 2^32 and a final xor-shift."""
    m = 2**32 - 1
    s = (seed * 0x9E3779B1) & m
    out = []
    for i in ids.tolist():
        x = (i & m) ^ s ^ (((i >> 32) * 40503) & m)
        for _ in range(2):
            x = (((x >> 16) ^ x) * 0x45D9F3B) & m
        out.append((x >> 16) ^ x)
    return np.array(out, dtype=np.int64)


def test_mix_is_the_reference_integer_hash_and_uniform():
    import duckdb

    ids = np.concatenate([np.arange(100_000), np.array([2**31 - 2, 2**31 - 1, 2**31, 2**40 + 3, 2**53 - 1])])
    con = duckdb.connect()
    con.register("ids", pl.DataFrame({"request_id": ids}).to_arrow())
    got = con.sql(f"SELECT {mix_sql('request_id', 12345)} AS h, {uniform_sql('request_id', 12345)} AS u "
                  f"FROM ids ORDER BY request_id").pl()
    np.testing.assert_array_equal(got["h"].to_numpy(), _mix_reference(ids, 12345))
    np.testing.assert_array_equal(got["u"].to_numpy(), _mix_reference(ids, 12345) / 2**32)
    u = got["u"].to_numpy()[:100_000]
    assert u.min() >= 0 and u.max() < 1
    # uniform (KS at n = 1e5 detects a deviation of ~0.006) and no lag-1 dependence between
    # neighbouring ids (|r| < 4 / sqrt(n) = 0.0126)
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 4 / np.sqrt(u.size)
    # positive controls: the same checks reject a skewed and a serially dependent sequence
    assert stats.kstest(u ** 1.05, "uniform").pvalue < 1e-6
    v = (u[:-1] + u[1:]) / 2
    assert abs(np.corrcoef(v[:-1], v[1:])[0, 1]) > 0.4
    # neighbouring ids jointly uniform: chi-square of (u_i, u_i+1) on a 16 x 16 grid (about 390 per
    # cell); its positive control: one mixing round instead of two (lag-1 correlation ~0.75) fails it
    grid = np.histogram2d(u[:-1], u[1:], bins=16, range=[[0, 1], [0, 1]])[0].ravel()
    assert stats.chisquare(grid).pvalue > 1e-3
    m = 2**32 - 1
    x = np.arange(100_000, dtype=np.int64) ^ ((12345 * 0x9E3779B1) & m)
    one = ((((x >> 16) ^ x) * 0x45D9F3B) & m)
    one = ((one >> 16) ^ one) / 2**32
    assert stats.chisquare(np.histogram2d(one[:-1], one[1:], bins=16, range=[[0, 1], [0, 1]])[0].ravel()).pvalue < 1e-6
    # another seed, other uniforms
    other = con.sql(f"SELECT {uniform_sql('request_id', 12346)} AS u FROM ids ORDER BY request_id").pl()["u"]
    assert abs(np.corrcoef(u, other.to_numpy()[:100_000])[0, 1]) < 4 / np.sqrt(u.size)


def test_engine_choice_errors(tmp_path):
    store = write_store(pl.DataFrame({"timestamp": [0.0, 1.0], "client_id": ["a", "a"]}), tmp_path / "s")
    assert ENGINES == ("duckdb", "spark")
    with pytest.raises(ValueError, match=r"engine must be one of \['duckdb', 'spark'\]; got 'postgres'"):
        with aggregate_source(store, engine="postgres"):
            pass
    with pytest.raises(ValueError, match=r"spark_master is for engine 'spark'; got spark_master='local\[2\]'"):
        with aggregate_source(store, engine="duckdb", spark_master="local[2]"):
            pass


# --- equivalence (Spark) ---------------------------------------------------------------------------

def _synthetic_frame() -> pl.DataFrame:
    """4 clients (one unlisted -> residual, some NULL ids), ticks of 1 s (ties), conversations,
    reasoning and image tokens with image counts (the per-item window rule)."""
    rng = np.random.default_rng(21)
    n = 6000
    t = np.sort(rng.integers(0, 7200, n)).astype(float)
    client = rng.choice(np.array(["a", "b", "c", "d"]), n, p=[0.5, 0.3, 0.15, 0.05]).astype(object)
    client[rng.random(n) < 0.02] = None
    conv = rng.integers(0, 800, n).astype(object)
    conv[rng.random(n) < 0.3] = None
    images = rng.integers(0, 3, n)
    return pl.DataFrame({
        "timestamp": t, "client_id": client.tolist(), "conversation_id": [None if c is None else f"k{c}" for c in conv],
        "input_tokens": rng.lognormal(6, 1.2, n).astype(np.int64), "output_tokens": rng.integers(0, 600, n),
        "reason_tokens": rng.integers(0, 300, n), "image_count": images,
        "image_tokens": images * rng.integers(200, 900, n)})


def _stores(tmp_path, shipped: dict) -> dict:
    """The synthetic store and the shipped samples (``shipped``: the session's ingested stores)."""
    return {"synthetic": write_store(_synthetic_frame(), tmp_path / "synthetic"), **shipped}


def _index(store) -> pl.DataFrame | None:
    if "client_id" not in store.columns:
        return None
    with aggregate_source(store) as src:
        ids = client_counts(src).drop_nulls("client_id").sort("n", "client_id", descending=[True, False])
    ids = ids.head(max(ids.height - 1, 1))  # the smallest client goes to the residual
    return pl.DataFrame({"client_id": ids["client_id"], "cidx": np.arange(ids.height, dtype=np.int64)})


def _aggregates(store, index, engine: str) -> dict[str, pl.DataFrame]:
    residual = 0 if index is None else index.height
    out = {}
    with aggregate_source(store, index, residual=residual, engine=engine) as src:
        out["client_counts"] = client_counts(src)
        tg = trace_gaps(src, limit=50)
        out["trace_gaps"] = pl.DataFrame({"n_rows": [tg.n_rows], "first": [tg.first], "last": [tg.last],
                                          "n_gaps": [tg.n_gaps], "n_zero": [tg.n_zero],
                                          "min_positive": [tg.min_positive]})
        out["trace_gaps_head"] = pl.DataFrame({"k": np.arange(tg.head.size), "gap": tg.head})
        build_gaps(src, window_s=600.0, step=1.0, seed=7)
        out["arrival_cells"] = arrival_cells(src)
        c, w, g = gap_samples(src, min_gaps=3, k=5, seed=7)
        out["gap_samples"] = pl.DataFrame({"cidx": c, "w": w, "gap": g}).with_row_index("k")
        build_gaps(src, window_s=300.0, step=None, seed=7)
        out["arrival_cells_nojitter"] = arrival_cells(src)
        binning = {"exact_below": 64, "bin_ratio": 1.1, "spike_share": 0.05, "max_bin_mass": 0.1}
        for name in ("input_tokens", "output_tokens", "reason_ratio", "image_tokens"):
            if name == "reason_ratio" and "reason_tokens" not in store.columns or (
                    name != "reason_ratio" and name not in store.columns):
                continue
            value, scale, count_col = field_sql(name, "tokens", store.columns)
            out[f"values_{name}"] = value_counts(src, value=value, data_window_s=3600.0, scale=scale,
                                                 count_col=count_col)
            out[f"binned_{name}"] = value_counts(src, value=value, data_window_s=3600.0, scale=scale,
                                                 count_col=count_col, binning=binning)
            out[f"log_{name}"] = log_stats(src, value=value, data_window_s=3600.0, count_col=count_col)
        lengths = [f for f in ("input_tokens", "output_tokens") if f in store.columns]
        if lengths:
            out["window_length_stats"] = window_length_stats(src, fields=lengths, window_s=600.0)
        if "conversation_id" in store.columns:
            turns, itt, req = conversation_aggregates(src, bin_ratio=1.2)
            out["conversation_turns"], out["conversation_itt"], out["requests_per_client"] = turns, itt, req
    return out


def _assert_same(name: str, a: pl.DataFrame, b: pl.DataFrame) -> None:
    assert a.columns == b.columns, name
    assert a.height == b.height, f"{name}: {a.height} vs {b.height} rows"
    floats = [c for c, t in a.schema.items() if t.is_float()]
    keys = [c for c in a.columns if c not in floats]
    order = keys + floats  # float keys (a bin) too: rows are unique by all columns
    a, b = a.sort(order, nulls_last=True), b.sort(order, nulls_last=True)
    for c in keys:  # active cells, counts, keys: exactly
        assert a[c].cast(pl.String).to_list() == b[c].cast(b[c].dtype).cast(pl.String).to_list(), f"{name}.{c}"
    for c in floats:  # statistics: 1e-9 relative (sums in another order differ by ~1e-16 relative);
        x, y = a[c].to_numpy().astype(float), b[c].cast(pl.Float64).to_numpy()  # plus an absolute floor
        np.testing.assert_array_equal(np.isnan(x), np.isnan(y), err_msg=f"{name}.{c} nulls")
        ok = ~np.isnan(x)  # of 1e-9 x the column's scale for a std of ~0 (cancellation)
        scale = float(np.abs(x[ok]).max()) if ok.any() else 0.0
        np.testing.assert_allclose(y[ok], x[ok], rtol=1e-9, atol=1e-9 * scale, err_msg=f"{name}.{c}")


@pytest.fixture(scope="module")
def equivalence(tmp_path_factory, spark_local, shipped_stores):
    tmp = tmp_path_factory.mktemp("engines")
    results = {}
    for name, store in _stores(tmp, shipped_stores).items():
        index = _index(store)
        results[name] = (_aggregates(store, index, "duckdb"), _aggregates(store, index, "spark"))
    # the portable hash on Spark itself, over ids past 2^32 (its high-bit term) and 2^53
    from servelab.analysis.engines import SparkEngine

    ids = np.array([0, 1, 2, 1000, 2**31 - 1, 2**32 - 1, 2**32, 2**40 + 3, 2**53 - 1], dtype=np.int64)
    eng = SparkEngine(spark_local)
    try:
        eng.register("mix_ids", pl.DataFrame({"request_id": ids}))
        got = eng.frame(f"SELECT request_id, {mix_sql('request_id', 12345)} AS h FROM mix_ids ORDER BY request_id")
    finally:
        eng.close()
    results["mix"] = (ids, got["request_id"].to_numpy(), got["h"].to_numpy())
    return results


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.parametrize("sample", ["synthetic", "burstgpt", "azure", "mooncake"])
def test_every_query_same_on_duckdb_and_spark(equivalence, sample):
    duck, spark = equivalence[sample]
    assert duck.keys() == spark.keys()
    for name in duck:
        _assert_same(f"{sample}:{name}", duck[name], spark[name])
    # the comparison is not vacuous: active cells and jittered gaps exist
    assert duck["arrival_cells"].height > 0 and duck["arrival_cells"]["n_gaps"].sum() > 0


@pytest.mark.spark
def test_synthetic_store_exercises_every_query(equivalence):
    duck, _ = equivalence["synthetic"]
    for name in ("gap_samples", "values_image_tokens", "binned_input_tokens", "log_reason_ratio",
                 "conversation_turns", "conversation_itt", "window_length_stats"):
        assert duck[name].height > 0, name
    # the residual client (id "d" and NULL ids) is a cell of its own
    assert duck["arrival_cells"]["cidx"].max() == 3
    ids, got_ids, h = equivalence["mix"]  # Spark's mix_sql is the reference integer hash
    np.testing.assert_array_equal(got_ids, ids)
    np.testing.assert_array_equal(h, _mix_reference(ids, 12345))



# --- the same pool (used by test_engine_choice: fit-pool on every shipped sample, and the report's
# generation pools of the synthetic store, with clients and conversations; test_spark_cluster: on a cluster)

def _pool_frames(pool) -> dict[str, object]:
    out = {name: pool.lazy(name).collect() for name in ("clients", "arrivals", "data", "data_fits", "conversations",
                                                         "conversation_pmfs", "prefixes", "churn", "coupling")}
    out.update(window_s=pool.window_s, data_window_s=pool.data_window_s, span=pool.span, fields=pool.fields,
               provenance={k: v for k, v in pool.provenance.items() if k != "pool_path"})  # where it was saved
    return out


def _assert_same_pool(where: str, duck: dict, spark: dict) -> None:
    """Pool tables equal: keys and counts exactly, floats (and FitResult JSON floats) within 1e-9."""
    assert duck.keys() == spark.keys()
    for name, value in duck.items():
        at = f"{where}: pool.{name}"
        if not isinstance(value, pl.DataFrame):
            assert value == spark[name], at
            continue
        fits = [c for c in value.columns if c.endswith("fit")]  # FitResult JSON: parsed, floats to 1e-9
        _assert_same(at, value.drop(fits), spark[name].drop(fits))
        order = [c for c in value.columns if c not in fits]
        for c in fits:
            for x, y in zip(value.sort(order)[c].to_list(), spark[name].sort(order)[c].to_list()):
                _assert_same_json(f"{at}.{c}", None if x is None else json.loads(x),
                                  None if y is None else json.loads(y))


def _assert_same_json(where: str, x, y) -> None:
    """Equal JSON, floats within 1e-9 relative (fitted from statistics summed in another order)."""
    if isinstance(x, dict):
        assert isinstance(y, dict) and x.keys() == y.keys(), where
        for k in x:
            _assert_same_json(f"{where}.{k}", x[k], y[k])
    elif isinstance(x, list):
        assert isinstance(y, list) and len(x) == len(y), where
        for i, (a, b) in enumerate(zip(x, y)):
            _assert_same_json(f"{where}[{i}]", a, b)
    elif isinstance(x, float) and not isinstance(x, bool):
        assert y == pytest.approx(x, rel=1e-9, abs=1e-12, nan_ok=True), where
    else:
        assert x == y, where


def test_fit_pool_cli_engine_errors(tmp_path):
    from click.testing import CliRunner

    from servelab.cli import main

    store = write_store(pl.DataFrame({"timestamp": [0.0, 1.0, 2.0], "client_id": ["a"] * 3}), tmp_path / "s")
    result = CliRunner().invoke(main, ["fit-pool", str(store.path), "-o", str(tmp_path / "p"), "--engine", "postgres"])
    assert result.exit_code == 2 and "'postgres' is not one of 'duckdb', 'spark'" in result.output
    result = CliRunner().invoke(main, ["fit-pool", str(store.path), "-o", str(tmp_path / "p"),
                                       "--spark-master", "local[2]"])
    assert result.exit_code == 1 and "spark_master is for engine 'spark'" in result.output


def test_spark_master_url_is_checked():
    from servelab.analysis.engines import spark_session

    with pytest.raises(ValueError, match=r"master must be a Spark master URL \(local\[N\], local\[\*\], spark://host:port, "
                                         r"sc://host:port for Spark Connect\); got 'localhost:7077'"):
        spark_session("localhost:7077")
