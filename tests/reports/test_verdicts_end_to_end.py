"""Calibrated verdicts through the areas, on tiny synthetic stores of known truth (issue 13).

Each trace is simulated by :mod:`servelab.fitting.calibration` with a fixed seed, written as a
store and measured by the arrivals (and lengths) area exactly as the report does. The truth is
known: a stationary Poisson trace (dense, sparse over days, or logged on a 3-s clock) shows no
burstiness and no shift, so F1, F2 and BurstGPT's gamma_shift must never "hold"; a trace whose
rate and CV switch every 20 minutes shows all three, so they must "hold".
"""
import numpy as np
import polars as pl
import pytest

from servelab.analysis import Verdict, write_store
from servelab.analysis.budget import Budget
from servelab.fitting.calibration import on_clock, poisson_arrivals, switching_arrivals
from servelab.reports.areas import get_area

DAY = 86400.0
ARRIVAL_IDS = ("servegen.F1", "servegen.F1.bursty", "servegen.F1.single_process", "servegen.F2", "burstgpt.gamma_shift")


def _arrival_findings(tmp_path, t, name):
    store = write_store(pl.DataFrame({"timestamp": np.asarray(t, dtype=float)}), tmp_path / name)
    area = get_area("arrivals")
    ev = area.measure(store, budget=Budget.quick(), seed=0)
    return {f.id: f for f in area.findings(ev)}


@pytest.mark.parametrize("name, make", [
    ("dense", lambda: poisson_arrivals(2.0, 3 * 3600.0, seed=11)),
    ("sparse_days", lambda: poisson_arrivals(0.05, 3 * DAY, seed=12)),
    ("clock_3s", lambda: on_clock(poisson_arrivals(0.05, 2 * DAY, seed=13), 3.0)),
])
def test_stationary_poisson_never_holds(tmp_path, name, make):
    found = _arrival_findings(tmp_path, make(), name)
    for fid in ARRIVAL_IDS:
        f = found[fid]
        assert f.verdict is not Verdict.HOLDS, (fid, f.reason)
        assert f.tests, fid  # every verdict carries its tests
        for t in f.tests:
            assert {"null", "statistic", "p_value", "level", "power", "practical_threshold", "decision"} <= set(t)
    if name == "dense":
        # about 21,600 arrivals in 9 full 20-minute blocks: the burstiness test has the power to say
        # that a Poisson trace is not bursty, so F1's bursty claim does not hold
        f1 = found["servegen.F1.bursty"]
        assert f1.verdict is Verdict.DOES_NOT_HOLD, f1.reason
        (burst,) = f1.tests
        assert burst["power"] >= 0.8 and burst["decision"] == "does not hold"
        assert "null = Poisson arrivals" in f1.reason and "p = " in f1.reason and "power" in f1.reason
        # the paper's Finding 1 (both claims joined) does not hold where its bursty claim does not
        whole = found["servegen.F1"]
        assert whole.verdict is Verdict.DOES_NOT_HOLD, whole.reason
        assert whole.measured == {"bursty": "does not hold", "single_process": found["servegen.F1.single_process"].verdict.value}
        assert len(whole.tests) == len(f1.tests) + len(found["servegen.F1.single_process"].tests)


def test_rate_and_cv_switching_every_20_minutes_holds(tmp_path):
    # (0.05/s, Poisson) <-> (0.15/s, Gamma shape 0.25, CV 2) every 20 minutes for 3 days: the
    # positive control of bench_calibration.py at the papers' effect sizes
    t = switching_arrivals(((0.05, 1.0), (0.15, 0.25)), 3 * DAY, seed=21)
    found = _arrival_findings(tmp_path, t, "switching")
    for fid in ARRIVAL_IDS:
        assert found[fid].verdict is Verdict.HOLDS, (fid, found[fid].reason)
    assert found["servegen.F2"].measured["rate_shifts"] is True
    assert found["servegen.F2"].measured["cv_shifts"] is True


def test_unimodal_small_integer_lengths_are_not_bimodal(tmp_path):
    # round(LogNormal(3.4, 0.3)): one mode near 30 tokens on a coarse integer lattice; the old test
    # on ln(integer) with tiny jitter rejected unimodality here (dip p = 0)
    rng = np.random.default_rng(31)
    n = 20_000
    out = np.maximum(np.round(np.exp(rng.normal(3.4, 0.3, n))), 1).astype(np.int64)
    frame = pl.DataFrame({"timestamp": np.sort(rng.uniform(0, 7200, n)),
                          "input_tokens": rng.integers(10, 2000, n), "output_tokens": out})
    store = write_store(frame, tmp_path / "uni")
    area = get_area("lengths")
    f = {x.id: x for x in area.findings(area.measure(store, budget=Budget.quick(), seed=0))}["burstgpt.bimodal_responses"]
    assert f.verdict is not Verdict.HOLDS, f.reason
    (test,) = f.tests
    assert test["null"].startswith("a unimodal law on the data's lattice")
    assert test["decision"] != "holds"


def test_f4_periods_come_from_the_hours_the_trace_covers(tmp_path):
    import datetime as dt

    from servelab.analysis.lengths import trace_periods

    # recorded 18:15-19:14 UTC: the fixed 0-6, 6-12, 12-18 h periods would hold no request
    rng = np.random.default_rng(41)
    n = 3000
    frame = pl.DataFrame({"timestamp": np.sort(rng.uniform(0, 3540, n)), "input_tokens": rng.integers(10, 500, n),
                          "output_tokens": rng.integers(1, 300, n)})
    store = write_store(frame, tmp_path / "hour", origin=dt.datetime(2025, 3, 3, 18, 15, tzinfo=dt.timezone.utc),
                        timezone="UTC")
    periods = trace_periods(store)
    assert len(periods) == 3
    assert periods[0].start_hour == pytest.approx(18.25, abs=1 / 60)
    assert periods[-1].end_hour == pytest.approx(18.25 + frame["timestamp"].max() / 3600, abs=1e-3)
    area = get_area("lengths")
    f4 = {x.id: x for x in area.findings(area.measure(store, budget=Budget.quick(), seed=0))}["servegen.F4"]
    assert f4.verdict is not Verdict.NOT_APPLICABLE, f4.reason
    assert f4.measured["periods"] == 3 and f4.measured["period_names"].startswith("18:15-")
    # the means are the same in every period (no shift in truth): never "holds"
    assert f4.verdict is not Verdict.HOLDS and len(f4.tests) == 3
    assert f4.tests[2]["null"].startswith("the mean output length is a fixed multiple of the mean input length")


def test_rate_variance_share_of_the_top_clients_never_exceeds_one(tmp_path):
    from servelab.analysis.clients import aggregate_window_stats, client_window_stats, mix_attribution

    # 60-s windows, 8 of them: client A 100 / 0 requests alternating, B 40 always, C 0 / 10 in
    # anti-phase with A. A and B carry 95 % of requests (the "top 90 %"); C co-varies negatively with
    # the total, so the exact covariance shares of A and B add up to 1 + 225/2025 = 1.11 > 1
    rows_t, rows_c = [], []
    for w in range(8):
        for cid, n in (("A", 100 if w % 2 == 0 else 0), ("B", 40), ("C", 0 if w % 2 == 0 else 10)):
            rows_t.extend(w * 60.0 + (np.arange(n) + 0.5) * 60.0 / max(n, 1))
            rows_c.extend([cid] * n)
    order = np.argsort(rows_t, kind="stable")
    frame = pl.DataFrame({"timestamp": np.asarray(rows_t)[order], "client_id": np.asarray(rows_c)[order]})
    store = write_store(frame, tmp_path / "cov")
    ws = client_window_stats(store, window_s=60.0)
    agg = aggregate_window_stats(store, window_s=60.0)
    rate = mix_attribution(ws, agg, min_requests=1).filter(pl.col("statistic") == "rate")
    assert rate["r2_mix_levels"][0] == 1.0  # clipped: a share of the variance, printed as at most 100 %


def test_one_request_clients_are_not_counted_as_showing_a_rate_shift(tmp_path):
    # 40 steady Poisson clients over 2 hours and 300 clients with one request each: the one-request
    # clients cannot show a shift, so they are left out of "holds in X of Y groups that could show one"
    rng = np.random.default_rng(51)
    t = [poisson_arrivals(0.05, 7200.0, seed=100 + k) for k in range(40)]
    cids = [np.full(x.size, f"steady{k}") for k, x in enumerate(t)]
    t.append(rng.uniform(0, 7200.0, 300))
    cids.append(np.array([f"once{k}" for k in range(300)]))
    ts, cs = np.concatenate(t), np.concatenate(cids)
    order = np.argsort(ts)
    store = write_store(pl.DataFrame({"timestamp": ts[order], "client_id": cs[order]}), tmp_path / "clients")
    area = get_area("arrivals")
    f2 = {f.id: f for f in area.findings(area.measure(store, budget=Budget.quick(), seed=0, by="client"))}["servegen.F2"]
    assert f2.measured["groups"] == 340
    assert f2.measured["groups_could_show_shift"] <= 40
    # steady Poisson clients: at level 5 %, about 2 of 40 by chance; never most of them
    assert f2.measured["groups_rate_shift"] <= 6
    assert "groups that could show a shift" in f2.reason
