"""The out-of-sample validation area (issue 17): applicability rule and the verdict's arithmetic."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from servelab.analysis.budget import Budget
from servelab.analysis.findings import Verdict
from servelab.analysis.store import write_store
from servelab.reports.areas import get_area
from servelab.reports.areas.validation import COUNT_TOLERANCE, FIGURE_ID

DAY = 86400.0


def _trace(rng, days: float, rate: float = 0.2) -> pl.DataFrame:
    n = rng.poisson(rate * days * DAY)
    t = np.sort(rng.uniform(0, days * DAY, n))
    # two clients of different lengths
    cid = np.where(rng.random(n) < 0.3, "long", "short")
    inp = np.where(cid == "long", rng.integers(2000, 3000, n), rng.integers(50, 150, n))
    return pl.DataFrame({"timestamp": t, "client_id": cid, "input_tokens": inp,
                         "output_tokens": rng.integers(10, 100, n)})


def test_short_trace_is_not_applicable_and_says_why(rng, tmp_path):
    store = write_store(_trace(rng, 1.5), tmp_path / "s")
    area = get_area("validation")
    ev = area.measure(store, budget=Budget.quick(), seed=0)
    (f,) = area.findings(ev)
    assert f.verdict is Verdict.NOT_APPLICABLE
    assert "spans 36 h" in f.reason and ">= 2 days" in f.reason
    assert area.figures(ev) == {} and area.tables(ev) == {}


def test_long_trace_verdict_follows_the_metrics(rng, tmp_path):
    # about 39,000 requests: under the quick budget's bound (50,000), every request is used
    store = write_store(_trace(rng, 3.0, rate=0.15), tmp_path / "s")
    area = get_area("validation")
    ev = area.measure(store, budget=Budget.quick(), seed=1)
    assert ev.bounded_sample == {} and ev.bound == Budget.quick().max_validation_requests
    (f,) = area.findings(ev)
    o, n, r = ev.metrics["servelab"], ev.metrics["naive"], ev.metrics["reference"]
    dists = ["window_rate_ks", "joint_input_energy", "joint_output_energy", "input_ks", "output_ks"]
    assert set(ev.noise_floor) == set(dists) and all(v > 0 for v in ev.noise_floor.values())
    # the rule: the shape test rejects its null at 5% (its p-value recomputed from the recorded
    # block differences with scipy), and the count is within 15%
    from scipy import stats

    st = ev.shape_test
    assert st.blocks == len(st.differences) >= 8 and st.level == 0.05
    p = stats.wilcoxon(np.array(st.differences), alternative="greater").pvalue
    assert st.p_value == pytest.approx(p) and st.servelab_better == (p <= 0.05)
    holds = p <= 0.05 and abs(o["n_requests"] - r["n_requests"]) / r["n_requests"] <= COUNT_TOLERANCE
    assert f.verdict is (Verdict.HOLDS if holds else Verdict.DOES_NOT_HOLD)
    assert f"p = {p:.3g}" in f.reason and f.measured["shape_p_value"] == pytest.approx(p)
    # the real later half: the trace's requests after the split
    t = store.query("SELECT timestamp FROM requests")["timestamp"].to_numpy()
    assert r["n_requests"] == int((t >= ev.split_s).sum())
    assert ev.split_s == pytest.approx(np.floor((t.min() + 0.5 * (t.max() - t.min())) / 600) * 600)
    assert set(area.figures(ev)) == {FIGURE_ID}
    # 1.5 days before the split: neither the daily pattern nor a trend can be tested, and the notes say so
    (fc,) = [x for x in ev.notes if x.startswith("the total-rate forecast: ")]
    assert "daily pattern not tested" in fc and "trend not tested" in fc
    table = area.tables(ev)["validation"]
    assert table.columns == ["metric", "kind", "reference", "servelab", "naive"]


def test_big_trace_runs_on_a_bounded_sample_of_whole_clients(rng, tmp_path):
    trace = _trace(rng, 3.0, rate=0.05)
    # four clients; the budget's bound is below the trace's size
    trace = trace.with_columns(client_id=pl.col("client_id") + (pl.int_range(pl.len()) % 2).cast(pl.String))
    store = write_store(trace, tmp_path / "s")
    area = get_area("validation")
    bound = trace.height // 2
    ev = area.measure(store, budget=Budget.quick().replace(max_validation_requests=bound), seed=1)
    b = ev.bounded_sample
    assert ev.bound == bound and b["bound"] == bound and b["requests_total"] == trace.height
    assert 1 <= b["clients"] < b["clients_total"] == 4 and b["requests"] <= bound
    assert any(n.startswith("bounded sample:") for n in area.notes(ev))
    (f,) = area.findings(ev)
    assert "bounded sample" in f.reason and f.measured["bounded_sample_requests"] == b["requests"]
    # the real later half is the sample's
    assert ev.metrics["reference"]["n_requests"] < trace.filter(pl.col("timestamp") >= ev.split_s).height


def test_v1_outcomes_by_hand():
    from servelab.reports.areas.validation import v1_outcomes

    ours = {"a": 0.10, "b": 0.30, "c": 0.02, "d": 0.05, "e": 0.2}
    naive = {"a": 0.20, "b": 0.10, "c": 0.03, "d": 0.04, "e": 0.2}
    floor = {"a": 0.05, "b": 0.05, "c": 0.05, "d": 0.06}  # "e" has none: every difference counts
    lost, won, tied = v1_outcomes(ours, naive, floor, list(ours))
    # a: closer, naive beyond the floor -> won; b: farther beyond the floor -> lost; c: closer but
    # naive within the floor -> tied; d: farther but within the floor -> tied; e: equal -> tied
    assert (lost, won, tied) == (["b"], ["a"], ["c", "d", "e"])
