"""The arrivals area holds active (group, window) cells only (issue 16): the per-group tables,
tests and Fig. 2 equal those computed from the filled table, the reference they were built on."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from servelab.analysis import write_store
from servelab.analysis.arrivals import arrival_frame, shift_summary, window_stats
from servelab.fitting.rate_tests import rate_shift_tests
from servelab.reports.areas import ARRIVALS
from servelab.figures.arrivals import filled_group_windows as _filled
from servelab.reports.findings import arrivals as findings


@pytest.fixture(scope="module")
def sparse_store(tmp_path_factory):
    """300 clients, each alive for a few hours of a 3-day trace (most client-windows idle), and
    a few requests without a client."""
    rng = np.random.default_rng(8)
    n_clients, span = 300, 3 * 86_400.0
    start = rng.uniform(0, span - 4 * 3600, n_clients)
    sizes = rng.integers(2, 60, n_clients)
    t = np.concatenate([s + np.sort(rng.uniform(0, 4 * 3600, k)) for s, k in zip(start, sizes)])
    clients = np.repeat([f"c{i:03d}" for i in range(n_clients)], sizes).astype(object)
    clients[rng.random(t.size) < 0.02] = None
    path = tmp_path_factory.mktemp("sparse") / "store"
    return write_store(pl.DataFrame({"timestamp": t, "client_id": pl.Series(clients, dtype=pl.String)}), path)


def test_group_tables_equal_the_filled_reference(sparse_store):
    ev = ARRIVALS.measure(sparse_store, gof=None, by="client_id")
    frame = arrival_frame(sparse_store, by="client_id")
    dense = window_stats(sparse_store, window_s="5m", by="client_id", frame=frame)
    sparse = ev.tables["group_windows"]
    n_win = ev.tables["windows"].height
    # the sparse table is the filled one without its idle rows, and far smaller
    assert_frame_equal(sparse, dense.filter(pl.col("n_requests") > 0))
    assert dense.height == 301 * n_win and sparse.height < dense.height / 20
    assert_frame_equal(ev.tables["group_shifts"], shift_summary(dense, by="client_id", min_gaps=findings.MIN_WINDOW_GAPS))
    assert_frame_equal(ev.group_rate_tests, rate_shift_tests(dense, by="client_id", dispersion="pooled"))
    # Fig. 2 draws the five largest groups on the filled grid
    top = dense.group_by("client_id").agg(pl.col("n_requests").sum()).sort("n_requests", descending=True).head(5)
    reference = dense.join(top.select("client_id"), on="client_id", how="semi", nulls_equal=True)
    assert_frame_equal(_filled(sparse, ev.tables["windows"], "client_id"),
                       reference.sort("client_id", "window", nulls_last=True))


def test_span_windows_is_checked(sparse_store):
    w = window_stats(sparse_store, window_s="5m", by="client_id", fill_idle=False)
    with pytest.raises(ValueError, match="span_windows must be a positive integer or None; got 0"):
        shift_summary(w, by="client_id", span_windows=0)
    with pytest.raises(ValueError, match="span_windows=1 is fewer than a group's active windows"):
        shift_summary(w, by="client_id", span_windows=1)


def test_budget_bounds_the_shape_test_replicates(sparse_store):
    from servelab.analysis.budget import Budget

    # one measure (a second one at the quick budget's B=99 doubled the test's time for the same plumbing)
    mine = ARRIVALS.measure(sparse_store, gof=None, by=None, budget=Budget.quick().replace(n_sim=49))
    assert Budget.quick().n_sim == 99 and "B=49," in mine.tests["shape"].method
    # a p-value of a B-replicate bootstrap is a multiple of 1 / (B + 1)
    p = mine.tests["shape"].p_value
    assert p * 50 == pytest.approx(round(p * 50), abs=1e-9)


def test_largest_windows_keep_what_compare_by_group_picks():
    """The per-window family table from the rows of the candidate windows only (chosen from the
    cells' gap counts) equals the one from every row: same windows, gaps and fits."""
    from servelab.analysis.arrivals import arrival_frame_from_times, frame_gaps
    from servelab.fitting.compare import compare_by_group

    rng = np.random.default_rng(5)
    rates = rng.choice([0.5, 1.0, 1.02, 2.0], 40)  # 40 one-minute windows, several of near-equal size
    t = np.concatenate([k * 60.0 + np.sort(rng.uniform(0, 60.0, rng.poisson(60 * r))) for k, r in enumerate(rates)])
    whole = arrival_frame_from_times(t, clock=None)

    def table(frame):
        gaps = frame_gaps(frame, window_s=60.0).select(pl.col("w").alias("window"), "gap")
        return compare_by_group(gaps, "window", min_n=50, max_groups=3, max_n=100, seed=0, ties="drop",
                                families=("exponential", "gamma"))

    sub = findings._largest_windows(None, whole, 60.0, 3, min_n=50)
    assert 3 <= sub.data.height < whole.data.height / 2
    assert_frame_equal(table(sub), table(whole))
