"""``servelab validate`` (issue 17 item 1): fit before a split, generate after it, score both generators.

The trace: a steady client (0.2 req/s, short inputs) and a bursty one, on in one 10-minute window
of ten (1 req/s, long inputs), on the same daily schedule for 4 days. Window rate and window mean
input are then strongly coupled; per-client composition keeps the coupling after the split, the
naive baseline (one process, mixed lengths) cannot.
"""
from __future__ import annotations

import json
import re

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from servelab.analysis.fidelity import METRICS
from servelab.analysis.store import write_store
from servelab.cli import main
from servelab.generator.validation import draw_seeds, resolve_split, validate

DAY = 86400.0


def _coupled_trace(seed: int, days: int = 4) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    T = days * DAY
    n = rng.poisson(0.2 * T)
    steady = rng.uniform(0, T, n)
    on = np.flatnonzero(np.arange(int(T / 600)) % 10 == 3) * 600.0  # the same windows every day
    nb = rng.poisson(600.0, on.size)
    burst = np.repeat(on, nb) + rng.uniform(0, 600, nb.sum())
    t = np.r_[steady, burst]
    inp = np.r_[rng.integers(50, 150, n), rng.integers(3000, 4000, burst.size)]
    out = np.r_[rng.integers(10, 100, n), rng.integers(10, 100, burst.size)]
    cid = np.r_[np.full(n, "steady"), np.full(burst.size, "bursty")]
    o = np.argsort(t, kind="stable")
    return pl.DataFrame({"timestamp": t[o], "client_id": cid[o], "input_tokens": inp[o], "output_tokens": out[o]})


@pytest.fixture(scope="module")
def coupled_store(tmp_path_factory):
    return write_store(_coupled_trace(3), tmp_path_factory.mktemp("validate") / "store")


@pytest.fixture(scope="module")
def half(coupled_store):
    return validate(coupled_store, split=0.5, seed=2, conversations=False)


def test_validate_scores_the_real_later_half(half, coupled_store):
    (s,) = half.splits
    frame = _coupled_trace(3)
    t = frame["timestamp"].to_numpy()
    # the split: half the time span, floored to the pool's 600-s window
    assert s.split_s == np.floor((t.min() + 0.5 * (t.max() - t.min())) / 600.0) * 600.0
    doc = half.to_json()
    for c in ("reference", "servelab", "naive"):
        assert list(doc[c]) == list(METRICS)  # compare's metric names, in compare's order
    # the reference: the real later part's own values; distances to itself are 0
    assert doc["reference"]["n_requests"] == int((t >= s.split_s).sum())
    assert all(doc["reference"][m] == 0.0 for m, (k, _) in METRICS.items() if k == "distance")
    # same clients, same schedule: the forecast total (last day's level, daily factors) gives the
    # right volume within 10% (Poisson noise of ~50k requests is < 1%; the day-to-day noise of the
    # bursty client's 600-request windows dominates)
    assert doc["servelab"]["n_requests"] == pytest.approx(doc["reference"]["n_requests"], rel=0.10)
    assert doc["naive"]["n_requests"] == pytest.approx(doc["reference"]["n_requests"], rel=0.10)
    # the coupling (Spearman over ~2,900 windows of 60 s: SE ~ 1 / sqrt(2900) = 0.02): real and
    # servelab positive and within 5 SE of each other, naive within 5 SE of none
    assert doc["reference"]["rate_input_corr"] > 0.2
    assert doc["servelab"]["rate_input_corr"] == pytest.approx(doc["reference"]["rate_input_corr"], abs=0.1)
    assert abs(doc["naive"]["rate_input_corr"]) < 0.1
    assert doc["servelab"]["joint_input_energy"] < doc["naive"]["joint_input_energy"] / 5
    # the window-to-window burstiness survives the extension (the forecast scales whole days)
    assert doc["servelab"]["window_rate_cv"] == pytest.approx(doc["reference"]["window_rate_cv"], rel=0.1)
    assert s.clients["later"] == 2 and s.clients["seen_before"] == 2
    assert "forecasts" in doc["rate_assumption"]
    # the shape test: naive follows the smooth forecast with the mixed lengths, so it misses the
    # bursty client's windows (rate and long inputs together) that servelab keeps: servelab
    # scores better in (nearly) every block, and the one-sided p is far below the level (19 of 20
    # blocks while the bursty client repeated its last day every day; 17 of 20, p 1.3e-5, since it
    # repeats its two days as a cycle: its bursts come every 100 minutes, not at the same hours daily)
    st = doc["splits"][0]["shape_test"]
    assert st["blocks"] == 20 and st["wins"] >= 17 and st["p_value"] < 0.001 and st["servelab_better"]
    assert st["advantage"]["joint_input_shape"] > 0.5


def test_rolling_splits_and_spread_under_a_given_rate(coupled_store, tmp_path):
    # 0.5 req/s past the split (the real later part averages 0.3: 0.2 steady + 1 req/s one window
    # in ten): both generators follow it (servelab window by window, naive smoothly), so each
    # fold's count is 0.5 x the fold's span up to arrival noise (a 2-day trace: ~21.6k requests a
    # fold, Poisson sd 0.7%; the gamma processes' CV adds a little): 5%
    two_days = write_store(_coupled_trace(3, days=2), tmp_path / "two_days")
    r = validate(two_days, split=0.5, seed=2, rolling=2, conversations=False,
                 rate=lambda t: np.full(np.shape(t), 0.5))
    assert len(r.splits) == 2
    a, b = r.splits
    assert a.split_s < b.split_s == a.end_s and b.end_s > b.split_s
    doc = r.to_json()
    for s, js in zip(r.splits, doc["splits"]):
        for c in ("servelab", "naive"):
            assert js[c]["n_requests"] == pytest.approx(0.5 * (s.end_s - s.split_s), rel=0.05)
        assert s.extension["forecast"] == "rate function given"
    assert "given total rate" in doc["rate_assumption"]
    with pytest.raises(ValueError, match="rate must be a function of time"):
        validate(coupled_store, split=0.5, rate=0.5)
    sp = r.spread()
    assert sp["splits"].to_list() == [2] * len(METRICS)
    row = sp.filter(pl.col("metric") == "n_requests").row(0, named=True)
    counts = [s.metrics["reference"]["n_requests"] for s in r.splits]
    assert row["reference_mean"] == pytest.approx(np.mean(counts))
    assert row["reference_sd"] == pytest.approx(np.std(counts, ddof=1))
    assert r.summary()["reference"]["n_requests"] == pytest.approx(np.mean(counts))


def test_split_rules_and_errors(coupled_store):
    assert resolve_split(0.5, 0.0, 4000.0, 600.0) == 1800.0
    assert resolve_split(2500.0, 0.0, 4000.0, 600.0) == 2400.0
    with pytest.raises(ValueError, match="must leave at least one window"):
        resolve_split(3900.0, 0.0, 4000.0, 600.0)
    with pytest.raises(ValueError, match="split must be a fraction"):
        resolve_split(float("nan"), 0.0, 4000.0, 600.0)
    with pytest.raises(ValueError, match="rolling must be a positive integer; got 0"):
        validate(coupled_store, split=0.5, rolling=0)
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        validate(coupled_store, split=0.5, seed=-1)


def test_cli_writes_validate_json_tables_and_figure(coupled_store, half, tmp_path):
    out = tmp_path / "v"
    r = CliRunner().invoke(main, ["validate", str(coupled_store.path), "--split", "0.5", "--seed", "2", "--draws", "2",
                                  "-o", str(out)])
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "validate.json").read_text())
    assert set(doc) >= {"reference", "servelab", "naive", "rate_assumption", "splits", "draws"}
    # two draws: the first has the seed itself, so (conversations are not linked in this trace,
    # and the CLI's default fit equals the library's) it is the single-draw validation above; the
    # top-level values are the draws' means, each draw's values are kept
    single, per = half.to_json(), doc["splits"][0]["draws"]
    assert per["seeds"] == doc["draws"]["seeds"] == list(draw_seeds(2, 2)) and per["seeds"][0] == 2
    assert doc["reference"] == pytest.approx(single["reference"], nan_ok=True)
    for c in ("servelab", "naive"):
        assert {m: v[0] for m, v in per[c].items()} == pytest.approx(single[c], nan_ok=True)
        assert doc[c] == pytest.approx({m: float(np.mean(v)) for m, v in per[c].items()}, nan_ok=True)
    assert per["servelab"]["n_requests"][1] != per["servelab"]["n_requests"][0]  # another draw
    n = doc["draws"]["metrics"]["n_requests"]
    assert n["servelab_score"] == pytest.approx(np.mean(np.abs(np.subtract(per["servelab"]["n_requests"],
                                                                           doc["reference"]["n_requests"]))))
    assert n["draws"] == 2 and n["p_servelab"] >= 0.25 and n["verdict"] == "tie"  # 2 draws cannot reach 5%
    assert pl.read_csv(out / "validate_draws.csv")["metric"].to_list() == list(METRICS)
    assert "draws  2 per generator (given; seeds 2, " in r.output and "(of 11)" in r.output
    for name in ("validate_splits.csv", "validate_spread.csv", "validate_counts.csv", "validate.png"):
        assert (out / name).stat().st_size > 0
    assert "rate_input_corr" in r.output and "window" in r.output
    # what the forecast could see is printed (and kept in validate.json)
    limits = doc["splits"][0]["extension"]["forecast"]["limits"]
    assert len(limits) >= 2 and "forecast " + "; ".join(limits) in r.output
    # the churn model's expected volume path is printed exactly when it was applied (no trend kept)
    assert ("volume forecast x the churn model" in r.output) == isinstance(
        doc["splits"][0]["extension"]["churn_volume_path"], dict)
    st = doc["splits"][0]["shape_test"]
    assert f"shape  shape test (volume removed, {st['blocks']} blocks" in r.output and f"p = {st['p_value']:.3g}" in r.output
    r = CliRunner().invoke(main, ["validate", str(coupled_store.path), "--split", "2026-01-01T00:00:00"])
    assert r.exit_code != 0 and "wall-clock origin" in r.output
    r = CliRunner().invoke(main, ["validate", str(coupled_store.path), "--split", "soon"])
    assert r.exit_code == 2 and "ISO date-time; got 'soon'" in r.output


def test_sample_clients_keeps_whole_clients_under_the_bound(coupled_store):
    from servelab.generator.validation import sample_clients

    frame = pl.DataFrame({"timestamp": np.arange(100.0), "client_id": [f"c{i % 7}" for i in range(100)]})
    sizes = dict(frame.group_by("client_id").len().iter_rows())
    kept, rec = sample_clients(frame, 40, seed=3)
    # whole clients: each kept client keeps every one of its rows; at most the bound in all
    got = dict(kept.group_by("client_id").len().iter_rows())
    assert all(got[c] == sizes[c] for c in got) and kept.height <= 40 and len(got) >= 1
    assert rec == {"bound": 40, "clients": len(got), "clients_total": 7, "requests": kept.height, "requests_total": 100}
    assert kept["timestamp"].is_sorted()  # rows keep their order
    assert sample_clients(frame, 40, seed=3)[0].equals(kept)
    # at or under the bound, or without client ids: unchanged, nothing recorded
    assert sample_clients(frame, 100, seed=3) == (frame, {})
    assert sample_clients(frame.drop("client_id"), 10, seed=3)[1] == {}
    with pytest.raises(ValueError, match="bound must be a positive integer; got 0"):
        sample_clients(frame, 0, seed=3)
    # validate (through the CLI, no files: validate.json is checked above) on a bound below the
    # store's size: one of the two clients, recorded
    n_total = _coupled_trace(3).height
    r = CliRunner().invoke(main, ["validate", str(coupled_store.path), "--split", "0.5", "--seed", "2", "--draws", "1",
                                  "--max-requests", str(n_total - 1)])
    assert r.exit_code == 0, r.output
    got = re.search(r"sample 1 of 2 clients \(whole, seeded\), ([\d,]+) of ([\d,]+) requests", r.output)
    assert got and int(got[1].replace(",", "")) < n_total == int(got[2].replace(",", ""))
    assert re.search(r"clients later 1, seen before 1, ", r.output)


def test_noise_floor_of_a_poisson_stream():
    from servelab.generator.validation import noise_floor

    # a homogeneous Poisson stream (1 req/s for 2 h, i.i.d. lengths): the halves (alternate 60-s
    # windows, 60 each, ~3,600 requests each) differ by chance only. Two-sample KS critical
    # values at 1%: windows 1.63 sqrt(2 / 60) = 0.30, requests 1.63 sqrt(2 / 3600) = 0.038
    rng = np.random.default_rng(11)
    t = np.sort(rng.uniform(0, 7200, rng.poisson(7200)))
    f = pl.DataFrame({"timestamp": t, "input_tokens": rng.integers(1, 1000, t.size),
                      "output_tokens": rng.integers(1, 300, t.size)})
    fl = noise_floor(f, 60.0, seed=0)
    assert set(fl) == {m for m, (k, _) in METRICS.items() if k == "distance"}
    assert 0 < fl["window_rate_ks"] < 0.30 and 0 < fl["input_ks"] < 0.038 and 0 < fl["output_ks"] < 0.038
    assert noise_floor(f.head(3), 60.0) == {}  # too few requests to split


def test_proper_scores_match_their_definitions():
    from servelab.generator.validation import crps_sample, energy_score

    rng = np.random.default_rng(4)
    sample, x = rng.gamma(2.0, 3.0, 301), np.r_[rng.gamma(2.0, 3.0, 50), -1.0, 100.0]
    # fair CRPS: mean |X_i - x| - sum_{i != j} |X_i - X_j| / (2 m (m - 1)), by brute force
    m = sample.size
    brute = (np.abs(sample[:, None] - x[None, :]).mean(axis=0)
             - np.abs(sample[:, None] - sample[None, :]).sum() / (2 * m * (m - 1)))
    assert crps_sample(sample, x) == pytest.approx(brute, rel=1e-9, abs=1e-9)
    pts, y = rng.normal(size=(120, 2)), rng.normal(size=(7, 2)) * 2
    dist = lambda a, b: np.hypot(a[:, None, 0] - b[None, :, 0], a[:, None, 1] - b[None, :, 1])  # noqa: E731
    assert energy_score(pts, y) == pytest.approx(dist(pts, y).mean(axis=0) - dist(pts, pts).sum() / (2 * 120 * 119),
                                                 rel=1e-9)
    # unbiased whatever the sample's size: a standard normal's CRPS at 0 is (sqrt 2 - 1) / sqrt(pi)
    # = 0.2337; the mean over 4,000 samples of 5 values has sd ~0.5 / sqrt(4000) = 0.008 (the
    # plain empirical CRPS would be E|X - X'| / 10 = 0.11 higher)
    small = np.array([crps_sample(rng.normal(size=5), np.zeros(1))[0] for _ in range(4000)])
    assert small.mean() == pytest.approx((np.sqrt(2) - 1) / np.sqrt(np.pi), abs=0.03)
    assert np.isnan(crps_sample(np.array([np.nan]), x)).all() and np.isnan(energy_score(pts[:1], y)).all()


def _windows(rng, n_win: int, bursty: bool) -> pl.DataFrame:
    """Requests over ``n_win`` windows of 60 s: 10 per window on average, bursty (a log-normal
    window multiplier of sd 1, the window's inputs 10x longer above the mean rate) or Poisson."""
    mult = np.exp(rng.normal(-0.5, 1.0, n_win)) if bursty else np.ones(n_win)
    n = rng.poisson(10 * mult)
    k = np.repeat(np.arange(n_win), n)
    long = np.repeat(mult > 1, n) if bursty else rng.random(k.size) < 0.3
    return pl.DataFrame({"timestamp": k * 60.0 + rng.uniform(0, 60, k.size),
                         "input_tokens": np.where(long, 1000, 100) * rng.uniform(0.5, 1.5, k.size),
                         "output_tokens": rng.integers(10, 100, k.size)}).sort("timestamp")


def test_shape_test_finds_the_right_candidate_and_holds_its_null():
    from servelab.generator.validation import shape_test

    rng = np.random.default_rng(8)
    real, like, smooth = _windows(rng, 400, True), _windows(rng, 400, True), _windows(rng, 400, False)
    # a candidate of the real law against a smooth Poisson one (400 windows, 20 blocks of 20):
    # the window-rate CRPS alone differs by far more than its block-to-block noise
    t = shape_test(real, like, smooth, 60.0, 400 * 60.0, seed=0)
    assert (t.blocks, t.windows_per_block) == (20, 20)
    assert t.servelab_better and t.p_value < 0.001 and t.wins >= 18
    assert t.advantage["rate_shape"] > 0 and t.advantage["joint_input_shape"] > 0
    # the same with the roles swapped: not better
    t = shape_test(real, smooth, like, 60.0, 400 * 60.0, seed=0)
    assert not t.servelab_better and t.p_value > 0.5
    # too few windows for 8 blocks of 10: not run, and why
    t = shape_test(real, like, smooth, 60.0, 70 * 60.0, seed=0)
    assert t.blocks == 0 and not t.servelab_better and "fewer than 8 blocks of 10" in t.reason
    assert t.text().startswith("the shape test was not run (70 whole windows")


def test_rate_components_of_the_split(tmp_path):
    # 5 days split at half: 2.5 days after the split, so the hour-of-day profile is defined
    from servelab.analysis.rate_components import rate_components

    frame = _coupled_trace(4, days=5)
    result = validate(write_store(frame, tmp_path / "s"), split=0.5, seed=1, conversations=False)
    (s,) = result.splits
    comp = s.rate_components
    assert set(comp) == {"reference", "servelab", "naive"}
    t = frame["timestamp"].to_numpy()
    later = t[(t >= s.split_s) & (t < s.end_s)] - s.split_s
    assert comp["reference"] == rate_components(later, duration_s=s.end_s - s.split_s, window_s=s.window_s,
                                                start_s=s.split_s)
    # the bursty client's 600 requests in the same window every day: far beyond Poisson about the
    # hour's mean, and servelab (which copies that client's windows) keeps it more than naive
    assert comp["reference"]["dispersion"] > 5
    assert comp["servelab"]["dispersion"] > comp["naive"]["dispersion"]
    doc = result.to_json()["splits"][0]["rate_components"]
    assert doc["reference"] == pytest.approx(dict(comp["reference"]))
