"""The report reads and sorts each arrival frame once for the areas that share them (issue 16), and
sharing changes no result."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from servelab.analysis import write_store
from servelab.analysis import arrivals as arrivals_module
from servelab.analysis.arrivals import arrival_frame, shared_arrival_frames
from servelab.analysis.budget import Budget
from servelab.reports.builder import run_sections


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    """40 clients over 2 days, timestamps on a 1 ms clock (so the frames carry jittered times)."""
    rng = np.random.default_rng(3)
    n = 6_000
    t = np.round(np.sort(rng.uniform(0, 2 * 86_400.0, n)), 3)
    clients = rng.choice([f"c{i:02d}" for i in range(40)], n, p=np.arange(40, 0, -1) / np.arange(40, 0, -1).sum())
    frame = pl.DataFrame({"timestamp": t, "client_id": clients,
                          "input_tokens": rng.integers(10, 2_000, n), "output_tokens": rng.integers(1, 500, n)})
    return write_store(frame, tmp_path_factory.mktemp("shared") / "store")


def test_frames_are_shared_inside_the_block_only(small_store):
    outside = arrival_frame(small_store)
    with shared_arrival_frames():
        first = arrival_frame(small_store, by="client_id")
        assert arrival_frame(small_store, by="client_id") is first
        assert arrival_frame(small_store, by="client", seed=0) is first  # same grouping, by its alias
        assert arrival_frame(small_store, by="client_id", seed=1) is not first  # another jitter seed
        assert arrival_frame(small_store) is not first
    assert arrival_frame(small_store) is not outside
    assert arrival_frame(small_store).data.equals(outside.data)


def _count_builds(monkeypatch) -> tuple[list[str | None], list[int]]:
    """The groupings of the frames built, and one entry per read of the timestamps (their order)."""
    built: list[str | None] = []
    orders: list[int] = []
    frame_from_order, arrival_order = arrivals_module._frame_from_order, arrivals_module._arrival_order

    def counting(order, grp, *, column, **kwargs):
        built.append(column)
        return frame_from_order(order, grp, column=column, **kwargs)

    def counting_order(*args, **kwargs):
        orders.append(1)
        return arrival_order(*args, **kwargs)

    monkeypatch.setattr(arrivals_module, "_frame_from_order", counting)
    monkeypatch.setattr(arrivals_module, "_arrival_order", counting_order)
    return built, orders


def test_report_sections_build_each_frame_once_with_equal_findings(small_store, monkeypatch):
    """Above Budget.max_requests (here 3,000 of 6,000 requests) both areas measure the leading span:
    the report writes that subset once and reads each of its frames once."""
    from servelab.reports import sampling

    areas, budget = ("arrivals", "clients"), Budget.quick().replace(n_boot=19, n_sim=19, max_requests=3_000)
    unshared = []
    for area in areas:  # one area at a time: nothing to share between areas
        unshared += run_sections(small_store, areas=(area,), progress=False, budget=budget)
    built, orders = _count_builds(monkeypatch)
    subsets: list[str] = []
    original = sampling.subset_store
    monkeypatch.setattr(sampling, "subset_store", lambda *a, **k: subsets.append(k["description"]) or original(*a, **k))
    shared = run_sections(small_store, areas=areas, progress=False, budget=budget)
    assert len(subsets) == 1 and subsets[0].startswith("quick span")
    # arrivals builds the whole-trace and per-client frames (no service column), clients needs the
    # same two: each is built once
    assert sorted(built, key=str) == [None, "client_id"]
    assert len(orders) == 1  # the timestamps are read, jittered and sorted once for both groupings
    assert [o.status for o in shared] == ["ok"] * 2
    assert all(o.peak_rss_mb > 10 for o in shared)  # the process's high-water mark, in MB
    for a, b in zip(unshared, shared, strict=True):
        assert [f.to_dict() for f in a.section.findings] == [f.to_dict() for f in b.section.findings]
        assert a.section.notes == b.section.notes and b.section.notes[0].startswith("quick mode: measured on")
        for name, table in a.section.tables.items():
            assert table.equals(b.section.tables[name]), (a.id, name)
