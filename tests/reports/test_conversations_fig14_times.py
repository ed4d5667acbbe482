"""Fig. 14 of the conversations area from the arrival times (no arrival frame) against the arrival
frame path it replaced (``window_stats`` and ``gap_array`` on ``arrival_frame`` of the store, then
``compare_families``), on a store whose clock is detected from the times (Fig. 16's windows are
reused) and on one whose manifest records another clock (computed again on that clock)."""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from servelab.analysis.arrivals import arrival_frame, gap_array, window_stats
from servelab.analysis.store import write_store
from servelab.fitting.compare import compare_families
from servelab.reports.areas.conversations import CONVERSATIONS


def _store(path, *, clock_s: float | None = None):
    """60 conversations of 2-5 turns and 700 single requests over 3 hours, on a 1-ms clock."""
    rng = np.random.default_rng(11)
    k = rng.integers(2, 6, 60)
    conv = np.repeat(np.arange(60), k)
    t = rng.uniform(0, 10_800, 60)[conv] + rng.exponential(90.0, conv.size) * (np.arange(conv.size) % 5)
    t = np.round(np.concatenate([t, rng.uniform(0, 10_800, 700)]), 3)
    ids = [f"c{c}" for c in conv] + [None] * 700
    store = write_store(pl.DataFrame({"timestamp": t, "conversation_id": ids}), path)
    if clock_s is not None:  # a clock recorded at ingest, coarser than the one the times show
        manifest = json.loads((path / "manifest.json").read_text())
        manifest["clock"] = {"step_s": clock_s, "coarse": True, "zero_share": 0.5, "n_gaps": 1000, "given": "user"}
        (path / "manifest.json").write_text(json.dumps(manifest))
        from servelab.analysis.store import open_store

        store = open_store(path)
    return store


@pytest.mark.parametrize("clock_s", [None, 5.0])
def test_fig14_from_times_equals_the_arrival_frame_path(tmp_path, clock_s):
    store = _store(tmp_path / "s", clock_s=clock_s)
    if clock_s is not None:
        from servelab.analysis.clock import store_clock

        assert store_clock(store).step_s == clock_s  # the recorded clock is the one the frame path uses
    ev = CONVERSATIONS.measure(store, seed=0)
    frame = arrival_frame(store)
    old = window_stats(store, window_s=600.0, frame=frame).select("window", "window_start_s", "rate_rps", "cv")
    # the same windows and rates; CVs equal up to summation order (numpy bincount vs the frame's cells)
    assert_frame_equal(ev.aggregate_windows, old, check_exact=False, rel_tol=1e-12, abs_tol=0.0)
    assert ev.aggregate_windows["cv"].null_count() == old["cv"].null_count() < old.height
    gaps = gap_array(store, frame=frame)
    assert_frame_equal(ev.gap_fits, compare_families(gaps[gaps > 0], max_n=200_000, seed=0).table())
