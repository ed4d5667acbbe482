"""The prefixes area (issue 15): its findings on traces where they hold and where they do not (shared
system prompt vs all-unique prompts; reuse at short vs long distances), the shipped Mooncake sample,
and a trace without prefix blocks."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from matplotlib.figure import Figure

from servelab.analysis.budget import Budget
from servelab.analysis.findings import Verdict
from servelab.analysis.ingest import ingest
from servelab.analysis.store import write_store
from servelab.reports.areas import PREFIXES, build_section
from servelab.reports.findings.prefixes import KEPT_SHARE, MATERIAL_SAVING


def _frame(lists, rng, n_clients=40):
    n = len(lists)
    return pl.DataFrame({"timestamp": np.arange(n, dtype=float) * 2.0,
                         "client_id": [f"c{i % n_clients}" for i in range(n)],
                         "input_tokens": [512 * len(x) for x in lists], "prefix_blocks": lists})


def _verdicts(store, **kw):
    ev = PREFIXES.measure(store, budget=Budget.quick(), seed=1, **kw)
    return {f.id: f for f in PREFIXES.findings(ev)}, ev


def test_reuse_holds_with_a_shared_system_prompt_and_not_without(tmp_path, rng):
    n = 800
    shared = [[1, 2, 3, 4, *rng.integers(10**6, 10**9, 2).tolist()] for _ in range(n)]
    unique = [rng.integers(10**6, 10**12, 6).tolist() for _ in range(n)]
    f, ev = _verdicts(write_store(_frame(shared, rng), tmp_path / "shared"))
    assert f["prefixes.reuse"].verdict is Verdict.HOLDS
    assert f["prefixes.reuse"].measured["token_hit_rate"] == pytest.approx(4 * (n - 1) / (6 * n))
    assert f["prefixes.reuse"].tests[0]["interval_low"] > MATERIAL_SAVING
    # the system prompt is reused by the very next request: a tiny cache keeps all of it
    assert f["prefixes.capacity"].verdict is Verdict.HOLDS
    assert f["prefixes.reuse"].measured["system_token_share"] == pytest.approx(4 * (n - 1) / (6 * n))
    f, _ = _verdicts(write_store(_frame(unique, rng), tmp_path / "unique"))
    assert f["prefixes.reuse"].verdict is Verdict.DOES_NOT_HOLD
    assert f["prefixes.reuse"].measured["token_hit_rate"] == 0.0
    assert f["prefixes.capacity"].verdict is Verdict.NOT_APPLICABLE


def test_capacity_does_not_hold_when_reuse_comes_back_late(tmp_path, rng):
    """400 distinct 8-block prompts sent round-robin three times: each is reused only after all
    the others, at a stack distance near the whole working set, so a cache of 10% of the distinct
    blocks keeps none of the saving."""
    prompts = [rng.integers(10**6, 10**12, 8).tolist() for _ in range(400)]
    lists = prompts * 3
    f, ev = _verdicts(write_store(_frame(lists, rng), tmp_path / "cyclic"))
    assert f["prefixes.reuse"].verdict is Verdict.HOLDS
    cap = f["prefixes.capacity"]
    assert cap.verdict is Verdict.DOES_NOT_HOLD and cap.measured["kept_share"] == 0.0
    assert cap.measured["reference_capacity_blocks"] == 320 and cap.tests[0]["interval_high"] < KEPT_SHARE
    # a capacity that holds the whole working set keeps everything
    f, _ = _verdicts(write_store(_frame(lists, rng), tmp_path / "cyclic2"), reference=3200)
    assert f["prefixes.capacity"].verdict is Verdict.HOLDS


def test_area_on_the_shipped_mooncake_sample(tmp_path, raw_traces):
    store = ingest([raw_traces / "mooncake" / "synthetic_trace.jsonl"], output=tmp_path / "m")
    section = build_section(PREFIXES, store, budget=Budget.quick(), seed=0)
    assert [f.id for f in section.findings] == ["prefixes.reuse", "prefixes.capacity"]
    assert set(section.figures) == {"prefixes.hit_rate", "prefixes.sources"}
    assert all(isinstance(f, Figure) for f in section.figures.values())
    summary = section.tables["summary"].row(0, named=True)
    assert summary["requests"] == store.n_requests == 3993
    assert summary["token_hit_low"] <= summary["token_hit_rate"] <= summary["token_hit_high"]
    src = section.tables["reuse_sources"]
    assert src["block_share"].sum() == pytest.approx(summary["block_hit_rate"], abs=1e-12)
    assert src.filter(pl.col("source") == "template")["hit_blocks"].item() == 0  # no client ids
    assert any("no client ids" in n for n in section.notes)
    assert section.headline["prefix cache: infinite-cache token hit rate"] == summary["token_hit_rate"]


def test_not_applicable_without_prefix_blocks(tmp_path):
    store = write_store(pl.DataFrame({"timestamp": [0.0, 1.0, 2.0]}), tmp_path / "bare")
    section = build_section(PREFIXES, store, budget=Budget.quick())
    assert all(f.verdict is Verdict.NOT_APPLICABLE and "prefix_blocks" in f.reason for f in section.findings)
    assert not section.tables and not section.figures
    assert section.notes and "prefix_blocks" in section.notes[0]


def test_quick_mode_skips_the_sources_above_its_request_cap(tmp_path, rng):
    lists = [[1, 2, *rng.integers(10**6, 10**9, 2).tolist()] for _ in range(300)]
    store = write_store(_frame(lists, rng), tmp_path / "s")
    small = Budget(label="tiny", max_requests=100)
    ev = PREFIXES.measure(store, budget=small)
    assert ev.analysis.sources is None and "tiny mode: reuse sources skipped (300 requests" in ev.notes[0]
    assert ev.analysis.reuse.hit_blocks == 2 * 299  # the rest is the whole trace's
    assert PREFIXES.measure(store, budget=Budget.quick()).analysis.sources is not None
