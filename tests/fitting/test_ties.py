"""Quantised timestamps: resolution detection and tie handling."""
import numpy as np
import pytest

from servelab.fitting import InsufficientDataError, fit_family
from servelab.fitting.ties import detect_resolution, prepare_sample


@pytest.fixture
def quantised(rng):
    """Poisson arrivals (mean gap 2 s) with timestamps floored to 3 s, as in Mooncake."""
    t = np.cumsum(rng.exponential(2.0, 20_000))
    return t, np.diff(np.floor(t / 3.0) * 3.0)


def test_detects_three_second_quantisation(quantised):
    _, gaps = quantised
    res = detect_resolution(gaps)
    assert res.step == pytest.approx(3.0)
    assert res.n_zero == int(np.sum(gaps == 0)) > 5000
    assert res.matters


def test_continuous_and_millisecond_timestamps(rng):
    t = np.cumsum(rng.exponential(2.0, 5000))
    assert detect_resolution(np.diff(t)).step is None
    assert not detect_resolution(np.diff(t)).matters
    ms = np.diff(np.round(t * 1000) / 1000)
    assert detect_resolution(ms).step == pytest.approx(0.001)


def test_jitter_removes_ties_and_recovers_rate_and_cv(quantised):
    t, gaps = quantised
    prepared = prepare_sample(gaps, seed=5)
    assert prepared.method == "jitter"
    assert np.all(prepared.values > 0)
    assert "jittered uniformly within its 3 s bucket (seed 5)" in prepared.notes[0]
    true = np.diff(t)
    n = true.size
    assert prepared.values.mean() == pytest.approx(true.mean(), rel=4 / np.sqrt(n))
    cv = prepared.values.std() / prepared.values.mean()
    assert cv == pytest.approx(1.0, abs=6 / np.sqrt(n))  # exponential gaps: CV 1 (floored gaps: 1.2)
    fit = fit_family(prepared.values, "exponential", notes=prepared.notes)
    assert fit.params["scale"] == pytest.approx(2.0, rel=4 / np.sqrt(n))
    assert np.array_equal(prepare_sample(gaps, seed=5).values, prepared.values)  # same seed, same bytes


def test_drop_and_keep(quantised):
    _, gaps = quantised
    dropped = prepare_sample(gaps, method="drop")
    assert dropped.values.size == int(np.sum(gaps > 0))
    assert "dropped" in dropped.notes[0] and "biased" in dropped.notes[0]
    kept = prepare_sample(gaps, method="keep")
    assert kept.values.size == gaps.size and kept.notes == ()
    with pytest.raises(InsufficientDataError, match="values <= 0"):
        fit_family(kept.values, "gamma")


def test_auto_drops_zeros_without_a_grid(rng):
    gaps = np.concatenate([rng.exponential(1.0, 1000), np.zeros(10)])
    prepared = prepare_sample(gaps)
    assert prepared.method == "drop" and prepared.values.size == 1000


def test_bad_input(rng):
    with pytest.raises(ValueError, match="method must be one of"):
        prepare_sample([1.0, 2.0], method="round")
    with pytest.raises(ValueError, match="gaps must be >= 0"):
        detect_resolution([1.0, -0.5])
    with pytest.raises(ValueError, match="resolution must be a positive"):
        prepare_sample([1.0, 2.0], resolution=0.0)
    with pytest.raises(ValueError, match="needs a timestamp resolution"):
        prepare_sample(rng.exponential(1.0, 100), method="jitter")
