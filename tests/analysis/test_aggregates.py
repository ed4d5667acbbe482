"""The plain-SQL aggregation layer (analysis.aggregates) against independent numpy computations."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from servelab.analysis.aggregates import (
    SQL,
    aggregate_source,
    arrival_cells,
    build_gaps,
    client_counts,
    field_sql,
    gap_samples,
    log_stats,
    round_half_even_sql,
    trace_gaps,
    value_counts,
)
from servelab.analysis.store import write_store


@pytest.fixture
def small_store(tmp_path):
    """3 clients over 3 windows of 600 s, one client with idle windows and a 1-request window;
    timestamps on a 1-s clock (ties)."""
    rng = np.random.default_rng(7)
    t = np.concatenate([np.sort(rng.integers(0, 1800, 900)), np.sort(rng.integers(0, 600, 300)),
                        np.array([100, 1300])]).astype(float)
    client = ["a"] * 900 + ["b"] * 300 + ["c"] * 2
    frame = pl.DataFrame({"timestamp": t, "client_id": client,
                          "input_tokens": rng.integers(1, 5000, t.size),
                          "output_tokens": rng.integers(0, 400, t.size),
                          "reason_tokens": rng.integers(0, 200, t.size)}).sort("timestamp")
    return write_store(frame, tmp_path / "s"), frame


def _index():
    return pl.DataFrame({"client_id": ["a", "b", "c"], "cidx": [0, 1, 2]})


def test_cells_match_numpy_without_jitter(small_store):
    store, frame = small_store
    with aggregate_source(store, _index()) as src:
        build_gaps(src, window_s=600.0, step=None, seed=0)
        cells = arrival_cells(src)
    # numpy reference: per client in arrival order, gaps whose two requests share a window
    rows = []
    for c, name in enumerate(["a", "b", "c"]):
        t = frame.filter(pl.col("client_id") == name)["timestamp"].to_numpy()
        w = np.floor(t / 600).astype(int)
        for k in np.unique(w):
            g = np.diff(t[w == k])
            rows.append((c, k, int((w == k).sum()), g.size, g.sum(), (g ** 2).sum(), int((g == 0).sum()),
                         g.std() if g.size else np.nan))
    ref = pl.DataFrame(rows, schema=["cidx", "w", "n_req", "n_gaps", "sum_gap", "sum_gap2", "n_zero", "std"],
                       orient="row")
    got = cells.join(ref, on=["cidx", "w"], how="full")
    assert got.height == ref.height == cells.height  # only active cells: client c has 2 of 3 windows
    assert cells.filter(pl.col("cidx") == 2)["w"].to_list() == [0, 2]
    assert got["n_req"].to_list() == got["n_req_right"].to_list()
    assert got["n_gaps"].to_list() == got["n_gaps_right"].to_list()
    np.testing.assert_allclose(got["sum_gap"].fill_null(0).to_numpy(), got["sum_gap_right"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(got["sum_gap2"].fill_null(0).to_numpy(), got["sum_gap2_right"].to_numpy(), rtol=1e-12)
    assert got["n_zero_gaps"].to_list() == got["n_zero"].to_list()
    busy = got.filter(pl.col("n_gaps") >= 2)
    np.testing.assert_allclose(busy["std_gap"].to_numpy(), busy["std"].to_numpy(), rtol=1e-9)


def test_jitter_is_seeded_within_the_step_and_keeps_zero_counts(small_store):
    store, _ = small_store

    def run(seed):
        with aggregate_source(store, _index()) as src:
            build_gaps(src, window_s=600.0, step=1.0, seed=seed)
            cells = arrival_cells(src)
            gaps = src.con.sql(f"SELECT cidx, request_id, gap FROM {src.table} ORDER BY request_id").pl()
        return cells, gaps

    c0, g0 = run(0)
    c0b, g0b = run(0)
    c1, _ = run(1)
    assert g0.equals(g0b) and c0.equals(c0b)  # same seed, same numbers
    assert not c0["sum_gap2"].equals(c1["sum_gap2"])
    with aggregate_source(store, _index()) as src:
        build_gaps(src, window_s=600.0, step=None, seed=0)
        raw = arrival_cells(src)
    # a jittered gap moves by less than one step: each cell's sum of gaps by less than 2 steps;
    # exact ties before the jitter are counted, and the jitter leaves no gap of exactly 0 here
    j = c0.join(raw, on=["cidx", "w"])
    assert (j["sum_gap"].fill_null(0) - j["sum_gap_right"].fill_null(0)).abs().max() < 2.0
    assert j["n_zero_gaps"].to_list() == j["n_zero_gaps_right"].to_list() and raw["n_zero_gaps"].sum() > 0
    assert int((g0["gap"] == 0).sum()) == 0
    # the jittered gaps of a Poisson-like 1-s clocked stream: each within (-1, 1) of a whole second
    frac = g0["gap"].drop_nulls().to_numpy()
    assert np.all(np.abs(frac - np.round(frac)) < 1.0)


def test_gap_samples_keep_all_gaps_below_k_and_a_seeded_subset_above(small_store):
    store, frame = small_store
    with aggregate_source(store, _index()) as src:
        build_gaps(src, window_s=600.0, step=None, seed=0)
        cells = arrival_cells(src)
        c, w, g = gap_samples(src, min_gaps=10, k=50, seed=3)
        c2, w2, g2 = gap_samples(src, min_gaps=10, k=50, seed=3)
        c3, w3, g3 = gap_samples(src, min_gaps=10, k=50, seed=4)
        call, wall, gall = gap_samples(src, min_gaps=10, k=10**6, seed=3)
    np.testing.assert_array_equal(g, g2)
    assert not np.array_equal(g, g3)
    keys = pl.DataFrame({"cidx": c, "w": w}).group_by("cidx", "w").len()
    big = cells.filter(pl.col("n_pos_gaps") >= 10)
    assert keys.height == big.height and keys["len"].max() == 50  # every cell with >= 10 positive gaps
    # without a cap: exactly the positive gaps of each cell (numpy reference for client b, window 0)
    t = frame.filter(pl.col("client_id") == "b")["timestamp"].to_numpy()
    ref = np.diff(t[t < 600])
    sel = (call == 1) & (wall == 0)
    np.testing.assert_array_equal(np.sort(gall[sel]), np.sort(ref[ref > 0]))
    # the capped sample is a subset of the cell's gaps
    sub = g[(c == 1) & (w == 0)]
    assert sub.size == 50 and np.all(np.isin(sub, ref))
    # a small cell (client c) is never sampled
    assert not np.any(c == 2)


def test_value_counts_and_log_stats_match_numpy(small_store):
    store, frame = small_store
    with aggregate_source(store, _index()) as src:
        v, scale, _ = field_sql("input_tokens", "tokens", store.columns)
        counts = value_counts(src, value=v, data_window_s=900.0, scale=scale)
        stats = log_stats(src, value=v, data_window_s=900.0)
        rv, rscale, _ = field_sql("reason_ratio", "grid", store.columns)
        ratio = value_counts(src, value=rv, data_window_s=900.0, scale=rscale)
    f = frame.with_columns(pl.col("client_id").replace_strict({"a": 0, "b": 1, "c": 2}).alias("cidx"),
                           (pl.col("timestamp") / 900).floor().cast(pl.Int64).alias("d"))
    ref = f.group_by("cidx", "d", "input_tokens").len()
    got = counts.join(ref, left_on=["cidx", "d", "vk"], right_on=["cidx", "d", "input_tokens"], how="full")
    assert got.height == ref.height == counts.height and got["n"].to_list() == got["len"].cast(pl.Int64).to_list()
    lr = f.group_by("cidx", "d").agg(pl.col("input_tokens").log().mean().alias("mu"),
                                     pl.col("input_tokens").log().var(ddof=0).alias("var"))
    j = stats.join(lr, on=["cidx", "d"])
    np.testing.assert_allclose(j["mu"].to_numpy(), j["mu_right"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(j["var"].to_numpy(), j["var_right"].to_numpy(), rtol=1e-9)
    # reason ratio on ServeGen's grid k / 501, rounded half to even like numpy
    out = f["output_tokens"].to_numpy()
    rs = f["reason_tokens"].to_numpy()
    ok = out > 0
    k = np.clip(np.round(np.clip(rs[ok] / out[ok], 0, 1) * 501), 0, 500)
    assert ratio["n"].sum() == ok.sum()
    np.testing.assert_array_equal(np.sort(ratio["vk"].unique().to_numpy()), np.unique(k).astype(int))


def test_half_even_rounding_sql_agrees_with_numpy():
    import duckdb

    x = np.array([0.5, 1.5, 2.5, 3.49, -0.5, -1.5, 250.5, 7.0])
    con = duckdb.connect()
    got = [con.execute(f"SELECT {round_half_even_sql(repr(float(v)))}").fetchone()[0] for v in x]
    np.testing.assert_array_equal(got, np.round(x))


def test_client_counts_and_trace_gaps(small_store, tmp_path):
    store, frame = small_store
    with aggregate_source(store, _index()) as src:
        counts = client_counts(src).sort("client_id")
        tg = trace_gaps(src, limit=100)
        tg_all = trace_gaps(src)
        with pytest.raises(ValueError, match="limit must be a positive integer; got 0"):
            trace_gaps(src, limit=0)
    assert counts["n"].to_list() == [900, 300, 2]
    gaps = np.diff(np.sort(frame["timestamp"].to_numpy()))
    assert tg.n_gaps == gaps.size and tg.n_zero == int((gaps == 0).sum())
    assert tg.min_positive == gaps[gaps > 0].min() and tg.head.size == 100
    np.testing.assert_array_equal(tg_all.head, gaps)
    # empty store (e.g. every row rejected at ingest): totals of nothing
    empty = write_store(frame.head(3), tmp_path / "e")
    pl.read_parquet(empty.requests_path).head(0).write_parquet(empty.requests_path)
    with aggregate_source(empty, _index()) as src:
        assert trace_gaps(src).n_rows == 0 and client_counts(src).height == 0


def test_sql_text_is_in_one_place_and_portable():
    # no DuckDB-only constructs in the templates (the hash and the source are in DIALECT)
    text = " ".join(SQL.values()).lower()
    for construct in ("qualify", "list(", "struct_pack", "macro", "->>", "::"):
        assert construct not in text, construct
