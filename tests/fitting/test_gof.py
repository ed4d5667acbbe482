"""Honest goodness-of-fit p-values: the bootstrap rejects a wrong family and keeps the right one."""
import numpy as np
import pytest

from servelab.fitting import InsufficientDataError, fit_family
from servelab.fitting.gof import bootstrap_ks, goodness_of_fit


def test_bootstrap_rejects_wrong_family_and_keeps_right_one_at_n_2000(rng):
    x = rng.gamma(0.5, 2.0, 2000)  # CV = sqrt(2): exponential (CV 1) is wrong
    right = goodness_of_fit(x, "gamma", n_boot=199, seed=1)
    wrong = goodness_of_fit(x, "exponential", n_boot=199, seed=1)
    assert right.p_value > 0.05
    assert wrong.p_value <= 0.01  # D_obs beyond every replicate: p = 1 / (B + 1)
    assert wrong.p_value == pytest.approx(1 / 200)
    assert "parametric bootstrap of KS D with refitting (B=199, seed=1) on all 2000 values" == right.p_value_method


def test_bootstrap_is_seeded_and_keeps_the_fit(rng):
    x = rng.weibull(0.8, 500)
    fit = fit_family(x, "weibull")
    a = goodness_of_fit(x, "weibull", n_boot=50, seed=7, fit=fit)
    b = goodness_of_fit(x, "weibull", n_boot=50, seed=7)
    assert a.p_value == b.p_value
    assert dict(a.params) == dict(fit.params) and a.aic == fit.aic


def test_large_samples_are_bootstrapped_on_a_stated_subsample(rng):
    x = rng.exponential(1.0, 50_000)
    r = goodness_of_fit(x, "exponential", n_boot=20, max_n=1000, seed=0)
    assert "random subsample of 1000 of 50000 values" in r.p_value_method
    assert r.n == 50_000  # the estimates are still the full-sample fit


def test_subsample_ks_is_uniformish_under_the_null_and_states_its_size(rng):
    x = rng.gamma(2.0, 1.0, 100_000)
    r = goodness_of_fit(x, "gamma", method="subsample", max_n=2000, seed=3)
    assert r.p_value > 0.01
    assert r.p_value_method.startswith("KS test on a random subsample of 2000 of 100000 values (seed=3)")
    bad = goodness_of_fit(x, "exponential", method="subsample", max_n=2000, seed=3)
    assert bad.p_value < 1e-6


def test_bootstrap_ks_reference_distance(rng):
    x = rng.exponential(3.0, 300)
    p, d, failed = bootstrap_ks(x, "exponential", n_boot=30, seed=0)
    xs = np.sort(x)
    cdf = 1 - np.exp(-xs / x.mean())
    i = np.arange(1, 301)
    assert d == pytest.approx(max(np.max(i / 300 - cdf), np.max(cdf - (i - 1) / 300)))
    assert 0 < p <= 1 and failed == 0


def test_bad_arguments(rng):
    x = rng.exponential(1.0, 100)
    with pytest.raises(ValueError, match="method must be one of"):
        goodness_of_fit(x, "gamma", method="naive")
    with pytest.raises(ValueError, match="n_boot must be a positive integer"):
        goodness_of_fit(x, "gamma", n_boot=0)
    with pytest.raises(InsufficientDataError, match="method='subsample' needs n >= 200"):
        goodness_of_fit(x, "gamma", method="subsample")
    with pytest.raises(ValueError, match="max_n must be an integer >= 2"):
        goodness_of_fit(x, "gamma", max_n=1)
    with pytest.raises(ValueError, match="expected family 'gamma'"):
        goodness_of_fit(x, "gamma", fit=fit_family(x, "weibull"))
