"""arrival_frame_from_times gives the frame (and so the window statistics) that a store-like
source of the same times gives, without the source (issue 16: upsampling's window CVs)."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from servelab.analysis.arrivals import arrival_frame, arrival_frame_from_times, window_stats
from servelab.analysis.store import frame_source


def _cases():
    rng = np.random.default_rng(11)
    return {
        "ms clock": np.round(np.cumsum(rng.exponential(0.05, 5_000)), 3),
        "exact": np.cumsum(rng.gamma(0.3, 0.2, 5_000)),
        "whole seconds (ties)": np.floor(np.cumsum(rng.exponential(0.4, 5_000))),
        "unsorted": rng.uniform(0, 5000, 3_000),
    }


@pytest.mark.parametrize("name", list(_cases()))
def test_the_frame_and_window_stats_equal_those_of_a_frame_source(name):
    t = _cases()[name]
    source = frame_source(pl.DataFrame({"timestamp": t}), source="times")
    expected = arrival_frame(source, by=None)
    got = arrival_frame_from_times(t)
    assert got.data.equals(expected.data, null_equal=True)
    assert (got.jitter_step_s is not None) == (name in ("ms clock", "whole seconds (ties)"))  # clocked: jittered
    assert (got.t0, got.t1, got.clock, got.seed, got.column) == (expected.t0, expected.t1, expected.clock, 0, None)
    want = window_stats(source, window_s=600.0, by=None, fill_idle=True)
    assert window_stats(None, window_s=600.0, by=None, fill_idle=True, frame=got).equals(want, null_equal=True)


def test_the_times_are_sorted_and_numbered():
    frame = arrival_frame_from_times(np.array([3.0, 1.0, 2.0]), clock=None)
    assert frame.data["timestamp"].to_list() == [1.0, 2.0, 3.0]
    assert frame.data["prev_"].to_list() == [None, 1.0, 2.0]
    assert (frame.t0, frame.t1) == (1.0, 3.0)


@pytest.mark.parametrize("bad, match", [(np.array([]), "timestamps is empty"),
                                        (np.array([1.0, np.nan]), "timestamps must be finite; got nan")])
def test_bad_times_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        arrival_frame_from_times(bad)
