"""The sparse client-window pool (issue 16): only active (client, window) cells are held, idle windows
are implicit (rate 0) and never enter CV summaries; old dense pools still load and generate alike;
the SQL fitting path equals its in-memory reference."""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from servelab.analysis.exceptions import EmptyTraceError
from servelab.analysis.store import open_store, write_store
from servelab.fitting.pool_arrivals import arrival_windows
from servelab.fitting.pool_data import data_pmfs, request_fields
from servelab.fitting.pool_fit import fit_pool
from servelab.fitting.pool_settings import PoolFitSettings
from servelab.generator import ClientPool, generate
from servelab.generator.pool_format import FORMAT_VERSION, read_pool, write_pool


@pytest.fixture
def sparse_store(tmp_path):
    """60 clients over 2 days with 10-min windows: most clients send a few requests in a few windows
    (like the issue's 26,798 requests over 4,244 clients), two are busy; float timestamps."""
    rng = np.random.default_rng(11)
    parts = []
    for k in range(58):
        n = int(rng.integers(1, 12))
        windows = rng.choice(288, size=min(n, 3), replace=False)  # at most 3 active windows
        t = windows[rng.integers(0, min(n, 3), n)] * 600.0 + rng.uniform(0, 600, n)
        parts.append(pl.DataFrame({"timestamp": t, "client_id": f"s{k:02d}"}))
    for k in range(2):
        t = np.cumsum(rng.gamma(0.5, 2 * 40.0, 4000))
        parts.append(pl.DataFrame({"timestamp": t[t < 2 * 86400], "client_id": f"busy{k}"}))
    frame = pl.concat(parts).sort("timestamp")
    n = frame.height
    frame = frame.with_columns(pl.Series("input_tokens", rng.integers(1, 3000, n)),
                               pl.Series("output_tokens", rng.integers(1, 500, n)))
    return write_store(frame, tmp_path / "store"), frame


def _dense_twin(pool: ClientPool, path) -> ClientPool:
    """The pool written as format version 2: every (client, window) of its span, idle ones as rate-0 placeholders."""
    write_pool(pool, path)
    arr = pool.arrivals
    starts = np.arange(pool.span[0], pool.span[1], pool.window_s)
    full = pl.DataFrame({"client_id": pool.client_ids}).join(pl.DataFrame({"window_start": starts}), how="cross")
    dense = (full.join(arr, on=["client_id", "window_start"], how="left")
             .with_columns(pl.col("window_s").fill_null(pool.window_s), pl.col("rate").fill_null(0.0),
                           pl.when(pl.col("rate").is_null()).then(0.0).otherwise(pl.col("cv")).alias("cv"))
             .select(arr.columns))
    dense.write_parquet(path / "arrivals.parquet")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["format_version"] = 2
    manifest["tables"]["arrivals"]["rows"] = dense.height
    (path / "manifest.json").write_text(json.dumps(manifest))
    return read_pool(path)


def test_only_active_cells_are_held_and_idle_windows_stay_out_of_cv_summaries(sparse_store, tmp_path):
    store, frame = sparse_store
    pool = fit_pool(store, window_s="10m", conversations=False)
    t = frame["timestamp"].to_numpy()
    cells = frame.select("client_id", (pl.col("timestamp") / 600).floor().alias("w")).unique()
    n_windows = int(np.floor(t.max() / 600)) - int(np.floor(t.min() / 600)) + 1
    assert pool.arrivals.height == cells.height < 0.2 * pool.n_clients * n_windows
    assert pool.arrivals["rate"].min() > 0
    # a window of one request has no gap: CV undefined (null), never 0
    counts = frame.group_by("client_id", (pl.col("timestamp") / 600).floor().alias("w")).len()
    n_single = int((counts["len"] == 1).sum())
    assert n_single > 0 and pool.arrivals["cv"].null_count() == int((counts["len"] <= 2).sum())
    info = pool.info()
    assert info["active_windows"] == cells.height
    assert info["cv_range"][0] > 0  # no placeholder 0 among the CVs
    # the saved pool is format 3, loads (checks pass with null CVs), and holds the same cells
    pool.save(tmp_path / "p")
    back = ClientPool.load(tmp_path / "p")
    assert json.loads((tmp_path / "p" / "manifest.json").read_text())["format_version"] == FORMAT_VERSION == 3
    assert back.arrivals.height == cells.height and back.span == pool.span
    # client_stats: rate-weighted mean CV over the active windows that have one (numpy reference)
    a = pool.arrivals.filter(pl.col("client_id") == "busy0")
    has = a["cv"].is_not_null().to_numpy()
    ref = np.sum(a["cv"].to_numpy()[has] * a["rate"].to_numpy()[has]) / a["rate"].to_numpy()[has].sum()
    got = pool.client_stats().filter(pl.col("client_id") == "busy0")["cv_mean"][0]
    assert got == pytest.approx(ref, rel=1e-12)


def test_old_dense_pools_load_as_the_same_sparse_pool_and_generate_the_same_workload(sparse_store, tmp_path):
    store, _ = sparse_store
    pool = fit_pool(store, window_s="10m", conversations=False)
    pool.save(tmp_path / "sparse")
    sparse = ClientPool.load(tmp_path / "sparse")
    dense = _dense_twin(pool, tmp_path / "dense")
    raw = pl.read_parquet(tmp_path / "dense" / "arrivals.parquet")
    assert raw.height == pool.n_clients * round((pool.span[1] - pool.span[0]) / 600) > 10 * sparse.arrivals.height
    key = ["client_id", "window_start"]
    assert dense.arrivals.sort(key).equals(sparse.arrivals.sort(key))
    assert dense.span == sparse.span
    a = generate(sparse, "pool", 86400.0, seed=5, conversations=False)
    b = generate(dense, "pool", 86400.0, seed=5, conversations=False)
    assert a.height > 100 and a.equals(b)


def test_sql_path_equals_the_in_memory_reference(sparse_store):
    store, frame = sparse_store
    settings = PoolFitSettings(window_s="10m", clock="none", max_fit_gaps=100_000, conversations=False)
    pool = fit_pool(store, settings=settings)
    names = list(pool.client_ids)
    ci = frame["client_id"].replace_strict({n: i for i, n in enumerate(names)}, return_dtype=pl.Int64).to_numpy()
    ref = arrival_windows(frame["timestamp"].to_numpy(), ci, len(names), settings, manifest={})
    ref_table = (ref.table.join(pl.DataFrame({"cidx": np.arange(len(names)), "client_id": names}), on="cidx")
                 .drop("cidx").select(pool.arrivals.columns).sort("client_id", "window_start"))
    got = pool.arrivals.sort("client_id", "window_start")
    assert got.select("client_id", "window_start", "rate", "family").equals(
        ref_table.select("client_id", "window_start", "rate", "family"))
    for col in ("cv", "a", "c", "scale"):  # float32-stored; DuckDB's and numpy's sums differ in the last bits
        np.testing.assert_allclose(got[col].to_numpy().astype(float), ref_table[col].to_numpy().astype(float),
                                   rtol=1e-6, equal_nan=True)
    fields = request_fields(store.columns)
    data, fits = data_pmfs(frame, ci, names, fields, data_window_s=settings.data_window_s,
                           exact_below=settings.exact_below, bin_ratio=settings.bin_ratio,
                           spike_share=settings.spike_share, max_bin_mass=settings.max_bin_mass,
                           min_fit_requests=settings.min_fit_requests, spread_points=settings.spread_points)
    assert pool.data.equals(data)
    assert pool.data_fits.select("client_id", "window_start", "field").equals(
        fits.select("client_id", "window_start", "field"))


def test_bad_inputs(sparse_store, tmp_path):
    store, frame = sparse_store
    empty = write_store(frame.head(2), tmp_path / "e")
    pl.read_parquet(empty.requests_path).head(0).write_parquet(empty.requests_path)
    with pytest.raises(EmptyTraceError, match="has no requests; nothing to fit"):
        fit_pool(open_store(tmp_path / "e"))
    # one-request clients merged into the residual; a store without client ids is one client
    pool = fit_pool(store, min_requests=2, conversations=False)
    singles = frame.group_by("client_id").len().filter(pl.col("len") < 2).height
    assert singles > 0 and pool.n_clients == frame["client_id"].n_unique() - singles + 1
    anon = write_store(frame.drop("client_id"), tmp_path / "anon")
    one = fit_pool(anon, conversations=False)
    assert one.client_ids == ("all",) and one.arrivals["rate"].min() > 0
    with pytest.raises(ValueError, match="residual_id 'busy0' is also a client id"):
        fit_pool(store, min_requests=5, residual_id="busy0", conversations=False)


def test_servegen_export_of_a_sparse_pool_keeps_its_active_windows(sparse_store, tmp_path):
    from servelab.generator import read_servegen

    store, _ = sparse_store
    pool = fit_pool(store, window_s="10m", conversations=False)
    pool.to_servegen(tmp_path / "sg")
    back = read_servegen(tmp_path / "sg")
    key = ["client_id", "window_start"]
    a = pool.arrivals.sort(key)
    b = back.arrivals.sort(key)
    assert a.select(key).equals(b.select(key))  # idle windows written as ServeGen's idle rows, not read back
    np.testing.assert_allclose(b["rate"].to_numpy(), a["rate"].to_numpy(), rtol=1e-12)
    # a window without a CV (< 2 gaps) is written as the exponential: Gamma a = 1, CV 1
    undefined = a["cv"].is_null().to_numpy()
    assert undefined.sum() > 0
    assert np.all(b["cv"].to_numpy()[undefined] == 1.0) and np.all(b["a"].to_numpy()[undefined] == 1.0)
