"""Quick mode bounds the arrivals and clients sections by ``Budget.max_requests`` (issue 16: a
100 M-row ``report --quick`` in minutes): above the cap they measure the trace's first whole hours
holding about that many requests (reports/sampling.py ``leading_span`` / ``budget_span``), and say so."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from servelab.analysis.budget import Budget
from servelab.analysis.store import write_store
from servelab.reports.areas import build_section, get_area
from servelab.reports.sampling import budget_span, leading_span


def _store(tmp_path, rng, n, hours):
    t = np.sort(rng.uniform(0, hours * 3600, n))
    frame = pl.DataFrame({"timestamp": t, "client_id": rng.choice([f"c{i}" for i in range(8)], n),
                          "input_tokens": rng.integers(1, 500, n), "output_tokens": rng.integers(1, 200, n)})
    return write_store(frame, tmp_path / "s"), frame


def test_leading_span_is_whole_hours_of_about_the_cap(tmp_path, rng):
    store, frame = _store(tmp_path, rng, 10_000, 120)
    t0, t1 = frame["timestamp"][0], frame["timestamp"][-1]
    # (t1 - t0) * 1,000 / 10,000 is just under 12 h (t0 > 0, t1 < 120 h): 11 whole hours
    span = leading_span(store, 1_000)
    assert span == pytest.approx((t0, t0 + 11 * 3600.0)) and (span.start, span.end) == tuple(span)
    assert leading_span(store, 10_000) is None and leading_span(store, None) is None
    # a cap below one hour's requests still keeps one whole hour
    assert leading_span(store, 10) == pytest.approx((t0, t0 + 3600.0))
    with pytest.raises(ValueError, match="step_s must be positive; got 0"):
        leading_span(store, 1_000, step_s=0)


def test_budget_span_yields_the_store_itself_under_the_cap(tmp_path, rng):
    store, _ = _store(tmp_path, rng, 500, 2)
    with budget_span(store, 1_000) as (got, note):
        assert got is store and note is None


@pytest.mark.parametrize("area", ["arrivals", "clients"])
def test_quick_sections_measure_the_leading_span_and_say_so(tmp_path, rng, area):
    store, frame = _store(tmp_path, rng, 6_000, 6)
    budget = Budget.quick().replace(max_requests=1_500, n_sim=19, n_boot=19)
    section = build_section(get_area(area), store, budget=budget, seed=0)
    t0 = frame["timestamp"][0]
    kept = int(((frame["timestamp"] >= t0) & (frame["timestamp"] < t0 + 3600.0)).sum())  # 6 h x 1,500 / 6,000 -> 1 h
    assert section.notes[0].startswith(f"quick mode: measured on the trace's first 1 h ({t0:.0f}-{t0 + 3600:.0f} s), "
                                       f"{kept:,} of 6,000 requests")
    if area == "arrivals":
        assert section.tables["gap_summary"]["n_gaps"][0] <= kept - 1
    else:
        assert section.tables["top_clients"]["requests"].sum() == kept
    full = build_section(get_area(area), store, budget=budget.replace(max_requests=None), seed=0)
    assert not any("first 1 h" in n for n in full.notes)


def test_quick_conversations_take_the_aggregate_arrivals_from_the_leading_span(tmp_path, rng):
    n = 6_000
    t = np.sort(rng.uniform(0, 6 * 3600, n))
    conv = rng.integers(0, 1_500, n)  # about 4 turns per conversation: multi-turn ones exist
    frame = pl.DataFrame({"timestamp": t, "client_id": rng.choice(["a", "b", "c"], n),
                          "conversation_id": [f"k{c}" for c in conv],
                          "input_tokens": rng.integers(1, 500, n), "output_tokens": rng.integers(1, 200, n)})
    store = write_store(frame, tmp_path / "c")
    budget = Budget.quick().replace(max_requests=1_500)
    section = build_section(get_area("conversations"), store, budget=budget, seed=0)
    kept = int((t < t[0] + 3600.0).sum())
    assert any(note.startswith(f"aggregate arrivals (Fig. 14): quick mode: measured on the trace's first 1 h "
                               f"({t[0]:.0f}-{t[0] + 3600:.0f} s), {kept:,} of 6,000 requests") for note in section.notes)
