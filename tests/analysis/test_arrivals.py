"""analysis.arrivals: gaps and windowed rate / CV against an independent numpy computation, and the
bad inputs of issue #3 (too few requests, identical timestamps, long windows, idle windows)."""
import numpy as np
import polars as pl
import pytest

from servelab.analysis import NotApplicableError, write_store
from servelab.analysis.arrivals import (
    gap_array,
    gap_summary,
    inter_arrival_gaps,
    parse_window,
    shift_summary,
    window_stats,
    window_stats_many,
)
from servelab.analysis import arrivals as arrivals_module
from servelab.analysis.arrivals import arrival_frame


@pytest.fixture
def clients(tmp_path, rng):
    """Three clients over one hour; client c is silent between 20 and 40 minutes."""
    n = 3000
    t = rng.uniform(0, 3600, n)
    c = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    keep = ~((c == "c") & (t >= 1200) & (t < 2400))
    frame = pl.DataFrame({"timestamp": t[keep], "client_id": c[keep]})
    return write_store(frame, tmp_path / "s"), frame


def _reference(t: np.ndarray, w: float, t0: float, t1: float, k: int) -> dict:
    """Window k of sorted times t: numpy rate, CV (ddof 0) and gap count."""
    inside = np.sort(t[np.floor(t / w) == k])
    gaps = np.diff(inside)
    exposure = min((k + 1) * w, t1) - max(k * w, t0)
    cv = gaps.std() / gaps.mean() if gaps.size >= 2 and gaps.mean() > 0 else None
    return {"n": inside.size, "rate": inside.size / exposure if exposure > 0 else None, "cv": cv,
            "n_gaps": gaps.size}


@pytest.fixture(params=["numpy", "duckdb"])
def cell_path(request, monkeypatch):
    """The window cells' two paths: numpy bincount over the dense grid (small grids), DuckDB's hash
    aggregate (grids with more cells than the frame has rows, e.g. per-client 10-s windows)."""
    if request.param == "duckdb":
        monkeypatch.setattr(arrivals_module, "_DENSE_CELLS_MIN", 0)
        monkeypatch.setattr(arrivals_module, "_DENSE_CELLS_PER_ROW", 0.0)
    return request.param


@pytest.mark.parametrize("window, cell_path", [("5m", "numpy"), (420.0, "duckdb")], indirect=["cell_path"])
def test_window_stats_per_client_match_numpy(clients, window, cell_path):
    store, frame = clients
    w = parse_window(window)
    out = window_stats(store, window_s=window, by="client")
    t_all = frame["timestamp"].to_numpy()
    t0, t1 = t_all.min(), t_all.max()
    n_windows = int(np.floor(t1 / w) - np.floor(t0 / w)) + 1
    assert out.height == 3 * n_windows  # every client gets every window, idle ones included
    for row in out.iter_rows(named=True):
        t = frame.filter(pl.col("client_id") == row["client_id"])["timestamp"].to_numpy()
        ref = _reference(t, w, t0, t1, row["window"])
        assert row["n_requests"] == ref["n"]
        assert row["n_gaps"] == ref["n_gaps"]
        assert row["rate_rps"] == pytest.approx(ref["rate"], rel=1e-12)
        if ref["cv"] is None:
            assert row["cv"] is None
        else:
            assert row["cv"] == pytest.approx(ref["cv"], rel=1e-9)


def test_longer_windows_rolled_up_from_one_pass_match_numpy(clients, cell_path):
    """window_stats_many aggregates the shortest window once (numpy or DuckDB) and rolls the others up from
    its cells (84 s is a multiple of 12 s and of nothing else here): every window's count, gap
    count, mean gap, CV and the Gamma statistics of the positive gaps match numpy on the sorted times."""
    store, frame = clients
    t = np.sort(frame["timestamp"].to_numpy())
    base = arrival_frame(store, clock=None)
    many = window_stats_many(store, windows_s=(12.0, 60.0, "5m", 84.0), frame=base, fill_idle=False)
    assert list(base.cells) == [12.0]  # one pass over the requests; 60, 300 and 84 s rolled up
    for seconds, out in many.items():
        w = np.floor(t / seconds)
        keep = np.flatnonzero(w[1:] == w[:-1])  # gaps with both requests in one window
        gaps, gw = np.diff(t)[keep], w[1:][keep]
        rows = out.filter(pl.col("n_gaps") >= 2)
        assert out["n_requests"].sum() == t.size and out["n_gaps"].sum() == gaps.size
        for row in rows.iter_rows(named=True):
            g = gaps[gw == row["window"]]
            assert row["n_gaps"] == g.size
            assert row["mean_gap_s"] == pytest.approx(g.mean(), rel=1e-12)
            assert row["cv"] == pytest.approx(g.std() / g.mean(), rel=1e-9)
            assert row["mean_log_positive_gap"] == pytest.approx(np.log(g[g > 0]).mean(), rel=1e-9)


def test_idle_windows_have_rate_zero_and_null_cv(clients):
    store, _ = clients
    out = window_stats(store, window_s="5m", by="client_id").filter(pl.col("client_id") == "c")
    idle = out.filter((pl.col("window_start_s") >= 1200) & (pl.col("window_start_s") < 2400))
    assert idle.height == 4
    assert idle["n_requests"].to_list() == [0] * 4
    assert idle["rate_rps"].to_list() == [0.0] * 4
    assert idle["cv"].null_count() == 4 and idle["mean_gap_s"].null_count() == 4
    active_only = window_stats(store, window_s="5m", by="client_id", fill_idle=False)
    assert active_only.filter(pl.col("client_id") == "c").height == out.height - 4


def test_gap_summary_matches_numpy(clients):
    store, frame = clients
    t_all = np.sort(frame["timestamp"].to_numpy())
    whole = gap_summary(store).row(0, named=True)
    gaps = np.diff(t_all)
    assert whole["n_gaps"] == gaps.size
    assert whole["cv"] == pytest.approx(gaps.std() / gaps.mean(), rel=1e-9)
    assert whole["rate_rps"] == pytest.approx(t_all.size / (t_all[-1] - t_all[0]), rel=1e-12)
    np.testing.assert_allclose(gap_array(store), gaps, rtol=0, atol=1e-12)
    per = gap_summary(store, by="client")
    for row in per.iter_rows(named=True):
        g = np.diff(np.sort(frame.filter(pl.col("client_id") == row["client_id"])["timestamp"].to_numpy()))
        assert row["cv"] == pytest.approx(g.std() / g.mean(), rel=1e-9)
        assert row["rate_rps"] == pytest.approx((g.size + 1) / (t_all[-1] - t_all[0]), rel=1e-12)


def test_gaps_are_never_negative_after_an_unsorted_write(tmp_path, rng):
    t = rng.uniform(0, 100, 500)  # deliberately unsorted: write_store (like ingest) sorts
    store = write_store(pl.DataFrame({"timestamp": t, "client_id": rng.choice(["x", "y"], 500)}), tmp_path / "u")
    assert (inter_arrival_gaps(store)["gap_s"] >= 0).all()
    by = inter_arrival_gaps(store, by="client")
    assert (by["gap_s"] >= 0).all() and by.height == 498
    assert inter_arrival_gaps(store, by="client", groups=["x"])["client_id"].unique().to_list() == ["x"]


def test_fewer_than_two_requests_is_undefined_not_zero(tmp_path):
    store = write_store(pl.DataFrame({"timestamp": [0.0, 100.0, 101.0, 700.0], "client_id": ["a", "a", "b", "c"]}),
                        tmp_path / "few")
    per = gap_summary(store, by="client").sort("client_id")
    assert per["n_gaps"].to_list() == [1, 0, 0]
    assert per["mean_gap_s"].to_list() == [100.0, None, None]
    assert per["cv"].to_list() == [None, None, None]  # CV needs >= 2 gaps
    win = window_stats(store, window_s="5m")
    assert win["n_requests"].to_list() == [3, 0, 1]
    assert win["cv"][0] == pytest.approx(np.std([100.0, 1.0]) / np.mean([100.0, 1.0]))  # 3 requests: defined
    assert win["cv"].to_list()[1:] == [None, None]  # idle window, single-request window
    assert win["mean_gap_s"].to_list()[1:] == [None, None]
    assert win["rate_rps"][1] == 0.0


def test_identical_timestamps(tmp_path):
    store = write_store(pl.DataFrame({"timestamp": [5.0] * 4}), tmp_path / "same")
    row = gap_summary(store).row(0, named=True)
    assert row["n_gaps"] == 3 and row["n_zero_gaps"] == 3 and row["zero_gap_fraction"] == 1.0
    assert row["rate_rps"] is None and row["cv"] is None  # zero span, zero mean gap: undefined
    win = window_stats(store, window_s=60).row(0, named=True)
    assert win["exposure_s"] == 0.0 and win["rate_rps"] is None and win["cv"] is None


def test_window_longer_than_the_trace(clients):
    store, frame = clients
    out = window_stats(store, window_s="1d")
    assert out.height == 1
    t = frame["timestamp"].to_numpy()
    assert out["exposure_s"][0] == pytest.approx(t.max() - t.min())
    assert out["rate_rps"][0] == pytest.approx(t.size / (t.max() - t.min()))
    s = shift_summary(out)
    assert s["rate_max_over_min"][0] is None  # one window: no ratio


def test_shift_summary_ratios(clients):
    store, _ = clients
    win = window_stats(store, window_s="5m", by="client")
    s = shift_summary(win, by="client", min_gaps=5).sort("client_id")
    c = s.filter(pl.col("client_id") == "c").row(0, named=True)
    assert c["n_idle"] == 4
    active = win.filter((pl.col("client_id") == "c") & (pl.col("n_requests") > 0)
                        & (pl.col("exposure_s") >= 150))
    assert c["rate_max_over_min"] == pytest.approx(active["rate_rps"].max() / active["rate_rps"].min())


def test_bad_arguments(clients, tmp_path):
    store, _ = clients
    for bad in ["5 parsecs", "-5m", 0, "m"]:
        with pytest.raises(ValueError, match="window must be"):
            window_stats(store, window_s=bad)
    assert parse_window("20min") == 1200.0 and parse_window("1h") == 3600.0 and parse_window("90") == 90.0
    with pytest.raises(ValueError, match="by must be one of"):
        gap_summary(store, by="region")
    with pytest.raises(NotApplicableError, match="no 'service' column"):
        window_stats(store, by="service")
    with pytest.raises(ValueError, match="groups needs by"):
        inter_arrival_gaps(store, groups=["a"])


def test_window_stats_active_only_order_nulls_and_gamma_statistics(tmp_path, rng):
    """fill_idle=False keeps (group, window) order; a null client is its own group, last; the Gamma
    sufficient statistics of the positive gaps match numpy (ties give zero gaps, excluded). The
    0.1 s grid ties gaps, so the default clock="auto" would censor them: clock=None asks for the
    exact logged gaps (the censored case is tested in test_arrivals_clock.py)."""
    n = 2000
    t = np.round(rng.uniform(0, 1800, n), 1)  # 0.1 s resolution: some zero gaps
    c = rng.choice(["b", "a", None], n, p=[0.5, 0.3, 0.2])
    frame = pl.DataFrame({"timestamp": t, "client_id": c})
    store = write_store(frame, tmp_path / "s")
    full = window_stats(store, window_s="5m", by="client", clock=None)
    active = window_stats(store, window_s="5m", by="client", fill_idle=False, clock=None)
    assert full["client_id"].unique(maintain_order=True).to_list() == ["a", "b", None]
    assert active.equals(full.filter(pl.col("n_requests") > 0))
    for row in active.iter_rows(named=True):
        in_group = (c == row["client_id"]) if row["client_id"] is not None else np.array([x is None for x in c])
        inside = np.sort(t[in_group & (np.floor(t / 300.0) == row["window"])])
        gaps = np.diff(inside)
        pos = gaps[gaps > 0]
        assert row["n_zero_gaps"] == int((gaps == 0).sum())
        assert row["n_positive_gaps"] == pos.size
        assert row["mean_log_positive_gap"] == pytest.approx(np.log(pos).mean(), rel=1e-9)
        assert row["mean_positive_gap_s"] == pytest.approx(pos.mean(), rel=1e-9)
