"""Gap analyses consistent with the logging clock (issue 14): simulated traces of known truth.

Tolerances. The CV of n exponential gaps has standard error about 1/sqrt(n) (the delta method gives
sqrt(1/n) for the exponential law). At n = 20,000 that is 0.007, and jitter within a tick adds no
bias for a Poisson process (Poisson points given their count per tick are uniform), so "within
10 % of 1" (the issue's target) is 14 standard errors: it cannot fail by chance and fails at once
if ties are read as exact where the step exceeds the mean gap (CV 1.2 on a 3-s clock with mean
gap 2 s; 3 with mean gap 0.3 s). Per-window Gamma alpha with ~1,000 gaps per 20-minute window has standard error about
sqrt(alpha^2 / n * 1/(alpha * trigamma(alpha) - 1)) ~ 0.05 at alpha = 1.
"""
import numpy as np
import polars as pl
import pytest

from servelab.analysis import write_store
from servelab.analysis.arrivals import gap_array, gap_summary, window_stats
from servelab.fitting.compare import compare_families
from servelab.fitting.ties import detect_resolution, prepare_sample
from servelab.fitting.windows import gamma_windows

N = 20_000


def _mooncake_clock(t: np.ndarray, step: float, rng) -> np.ndarray:
    """Floor to ``step``; every request of a tick stamped alike; ticks +-1.5 ms; ms integers."""
    q = np.floor(t / step) * step
    ticks, inverse = np.unique(q, return_inverse=True)
    return np.round((ticks + rng.uniform(-0.0015, 0.0015, ticks.size))[inverse] * 1000) / 1000


def _store(tmp_path, name, t):
    return write_store(pl.DataFrame({"timestamp": t}), tmp_path / name)


@pytest.mark.parametrize(("step", "mean_gap"), [(1.0, 2.0), (3.0, 0.3), (3.0, 2.0)])
def test_poisson_on_a_clock_has_cv_near_one(tmp_path, step, mean_gap):
    rng = np.random.default_rng(21)
    t = _mooncake_clock(np.cumsum(rng.exponential(mean_gap, N)), step, rng)
    exact = np.diff(t)
    if step > mean_gap:
        assert exact.std() / exact.mean() > 1.1  # read as exact, the ties make it look bursty
    store = _store(tmp_path, "p", t)
    row = gap_summary(store).row(0, named=True)
    assert row["clock_s"] == pytest.approx(step, abs=0.01)
    assert row["cv"] == pytest.approx(1.0, rel=0.10)
    assert row["cv"] == pytest.approx(1.0, abs=5 / np.sqrt(N))  # tighter: 5 standard errors
    assert row["n_zero_gaps"] == int(np.sum(exact == 0))
    assert row["mean_gap_s"] == pytest.approx(exact.mean(), rel=1e-3)  # jitter keeps the span
    assert row["short_scale_inconclusive"] is (row["zero_gap_fraction"] >= 0.5)
    if row["short_scale_inconclusive"]:
        assert "cannot be measured (inconclusive)" in row["clock_note"]
    # the censored gap array is the one the CV comes from
    gaps = gap_array(store, censored=True)
    assert np.all(gaps > 0) and gaps.std() / gaps.mean() == pytest.approx(row["cv"], rel=1e-12)
    assert np.array_equal(gap_array(store, censored=True, seed=3), gap_array(store, censored=True, seed=3))
    assert not np.array_equal(gap_array(store, censored=True, seed=3), gap_array(store, censored=True, seed=4))
    # the logged gaps, fitted: the ties module finds the same clock and censors alike (Gamma a ~ 1)
    logged = gap_array(store)
    assert np.array_equal(logged, exact)
    comp = compare_families(logged, families=("exponential", "gamma"), max_n=None, seed=1)
    gamma = next(r for r in comp.results if r.family == "gamma")
    assert gamma.params["a"] == pytest.approx(1.0, abs=0.1)
    assert any("jittered uniformly" in note for note in gamma.notes)


def test_three_second_clock_majority_of_ties_is_flagged(tmp_path):
    rng = np.random.default_rng(22)
    t = _mooncake_clock(np.cumsum(rng.exponential(0.3, N)), 3.0, rng)
    row = gap_summary(_store(tmp_path, "m", t)).row(0, named=True)
    assert row["zero_gap_fraction"] > 0.8 and row["short_scale_inconclusive"]
    assert row["clock_note"].startswith("timestamps are logged on a 3 s clock")


def test_bursty_renewal_on_a_clock_stays_bursty(tmp_path):
    """Positive control: Gamma shape 0.1 gaps (CV 3.2), mean 10 s, logged on a 3-s clock."""
    rng = np.random.default_rng(23)
    t = _mooncake_clock(np.cumsum(rng.gamma(0.1, 100.0, N)), 3.0, rng)
    row = gap_summary(_store(tmp_path, "b", t)).row(0, named=True)
    assert row["clock_s"] == pytest.approx(3.0, abs=0.01)
    assert row["cv"] > 2.0


def test_unquantised_data_unchanged(tmp_path):
    """Null case: continuous times give exactly today's numbers (no clock, no jitter)."""
    rng = np.random.default_rng(24)
    t = np.cumsum(rng.gamma(0.5, 2.0, 5000))
    store = _store(tmp_path, "u", t)
    auto, exact = gap_summary(store), gap_summary(store, clock=None)
    assert auto.equals(exact) and auto["clock_s"][0] is None and not auto["short_scale_inconclusive"][0]
    g = np.diff(t)
    assert auto["cv"][0] == pytest.approx(g.std() / g.mean(), rel=1e-12)
    assert window_stats(store, window_s="20m").equals(window_stats(store, window_s="20m", clock=None))
    assert np.array_equal(gap_array(store), g) and np.array_equal(gap_array(store, censored=True), g)
    prepared = prepare_sample(g)
    assert prepared.method == "keep" and np.array_equal(prepared.values, g)


def test_per_window_gamma_alpha_near_one_on_a_clock(tmp_path):
    rng = np.random.default_rng(25)
    t = _mooncake_clock(np.cumsum(rng.exponential(1.0, N)), 3.0, rng)
    store = _store(tmp_path, "w", t)
    out = gamma_windows(store, window_s="20m").filter(pl.col("gamma_n") >= 500)
    assert out.height >= 10
    alpha = out["alpha"].to_numpy()
    assert np.all(np.abs(alpha - 1.0) < 0.25)  # ~5 standard errors per window; 1e7 before
    assert abs(alpha.mean() - 1.0) < 0.05
    assert (out["n_zero_gaps"] > 0).all()  # the ties are still counted, on the logged times
    # rates stay on the logged timestamps: the clock changes no count and no rate
    exact = window_stats(store, window_s="20m", clock=None)
    assert window_stats(store, window_s="20m")["rate_rps"].equals(exact["rate_rps"])
    # read as exact (clock=None), the positive gaps alone give the artifact of issue 14: alpha >> 1
    exact_fit = gamma_windows(store, window_s="20m", clock=None).filter(pl.col("gamma_n") >= 200)
    assert exact_fit["alpha"].min() > 5


def test_user_given_clock_and_none(tmp_path):
    rng = np.random.default_rng(26)
    t = np.floor(np.cumsum(rng.exponential(2.0, 5000)))  # integer seconds
    store = _store(tmp_path, "g", t)
    assert gap_summary(store)["clock_s"][0] == 1.0
    assert gap_summary(store, clock=2.0)["clock_s"][0] == 2.0
    exact = gap_summary(store, clock=None)
    g = np.diff(t)
    assert exact["clock_s"][0] is None and exact["cv"][0] == pytest.approx(g.std() / g.mean(), rel=1e-12)
    with pytest.raises(ValueError, match="clock must be 'auto'"):
        gap_summary(store, clock="3s")


def test_ties_use_the_clock_not_the_millisecond_representation():
    rng = np.random.default_rng(27)
    t = _mooncake_clock(np.cumsum(rng.exponential(0.3, N)), 3.0, rng)
    gaps = np.diff(t)
    res = detect_resolution(gaps)
    assert res.clock and res.step == pytest.approx(3.0, abs=0.01) and res.matters
    prepared = prepare_sample(gaps, seed=2)
    assert prepared.method == "jitter" and "logged on a 3 s clock" in prepared.notes[0]
    cv = prepared.values.std() / prepared.values.mean()
    assert cv == pytest.approx(1.0, rel=0.10)
    assert detect_resolution(np.diff(np.round(np.cumsum(rng.exponential(2.0, 5000)) * 1000) / 1000)).step == \
        pytest.approx(0.001)
