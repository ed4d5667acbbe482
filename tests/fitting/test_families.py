"""Arrival families: parameter recovery (one conformance test over every arrival family), agreement
with scipy's generic MLE, convergence flags and bad input."""
import warnings

import numpy as np
import pytest
from scipy import stats

from servelab.fitting import ARRIVAL_FAMILIES, ConvergenceWarning, InsufficientDataError, fit_family, get_family
from servelab.fitting.families import GammaFamily, WeibullFamily, gamma_mle_from_stats

#: true parameters and an independent numpy sampler for every arrival family
TRUTH = {
    "exponential": ({"scale": 2.0}, lambda rng, n: rng.exponential(2.0, n)),
    "gamma": ({"a": 0.5, "scale": 3.0}, lambda rng, n: rng.gamma(0.5, 3.0, n)),
    "weibull": ({"c": 0.6, "scale": 2.0}, lambda rng, n: 2.0 * rng.weibull(0.6, n)),
    "lognormal": ({"s": 1.5, "scale": 0.5}, lambda rng, n: rng.lognormal(np.log(0.5), 1.5, n)),
}


def test_every_arrival_family_has_a_recovery_case():
    assert set(TRUTH) == set(ARRIVAL_FAMILIES)


@pytest.mark.parametrize("family", ARRIVAL_FAMILIES)
@pytest.mark.parametrize("n", [1_000, 10_000, 100_000])
def test_parameter_recovery_tolerance_shrinks_like_one_over_sqrt_n(family, n, rng):
    # The largest asymptotic relative standard error among these parameters is ~1.9/sqrt(n)
    # (the Gamma scale at a = 0.5: sqrt(psi'(a) / (a psi'(a) - 1)) = 1.83), so 8/sqrt(n) is > 4 sd.
    truth, draw = TRUTH[family]
    result = fit_family(draw(rng, n), family)
    assert result.converged
    assert result.n == n
    tol = 8.0 / np.sqrt(n)
    for name, value in truth.items():
        assert result.params[name] == pytest.approx(value, rel=tol), (name, result.params)


@pytest.mark.parametrize(("family", "dist"), [
    ("exponential", stats.expon), ("gamma", stats.gamma), ("weibull", stats.weibull_min), ("lognormal", stats.lognorm)])
def test_mle_matches_scipy_generic_fit_and_loglik(family, dist, rng):
    x = TRUTH[family][1](rng, 3000)
    result = fit_family(x, family)
    ref = dist.fit(x, floc=0)  # scipy's own optimiser, an independent reference
    ref_params = [*ref[:-2], ref[-1]]
    for name, value in zip(get_family(family).param_names, ref_params, strict=True):
        assert result.params[name] == pytest.approx(value, rel=1e-3)
    ref_loglik = np.sum(dist.logpdf(x, *ref))
    assert result.log_likelihood >= ref_loglik - 1e-6  # never worse than scipy's optimum
    assert result.aic == pytest.approx(2 * len(ref_params) - 2 * result.log_likelihood)


@pytest.mark.parametrize("family", ARRIVAL_FAMILIES)
def test_logpdf_and_cdf_match_scipy(family):
    truth = TRUTH[family][0]
    dist = {"exponential": stats.expon, "gamma": stats.gamma, "weibull": stats.weibull_min,
            "lognormal": stats.lognorm}[family]
    x = np.array([1e-4, 0.01, 0.5, 1.0, 7.0, 80.0])
    fam = get_family(family)
    np.testing.assert_allclose(fam.logpdf(x, truth), dist.logpdf(x, **truth), rtol=1e-10)
    np.testing.assert_allclose(fam.cdf(x, truth), dist.cdf(x, **truth), rtol=1e-10, atol=1e-15)


def test_gamma_mle_from_stats_is_vectorised_and_flags_undefined(rng):
    samples = [rng.gamma(a, 2.0, 500) for a in (0.3, 1.0, 4.0)]
    mean = np.array([s.mean() for s in samples] + [2.0])
    mean_log = np.array([np.log(s).mean() for s in samples] + [np.log(2.0)])  # last: all values equal
    a, scale, converged = gamma_mle_from_stats(mean, mean_log)
    for i, s in enumerate(samples):
        ref_a, _, ref_scale = stats.gamma.fit(s, floc=0)
        assert a[i] == pytest.approx(ref_a, rel=1e-4)
        assert scale[i] == pytest.approx(ref_scale, rel=1e-4)
    assert converged[:3].all()
    assert np.isnan(a[3]) and not converged[3]


@pytest.mark.parametrize("family", [WeibullFamily(max_iter=1), GammaFamily(max_iter=1)])
def test_iteration_limit_gives_converged_false_and_a_typed_warning(family, rng):
    x = rng.gamma(0.3, 1.0, 2000)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        result = fit_family(x, family)
    assert result.converged is False
    assert np.isfinite(result.log_likelihood)


def test_no_warning_when_converged(rng):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        for family in ARRIVAL_FAMILIES:
            assert fit_family(rng.gamma(0.7, 1.0, 500), family).converged


@pytest.mark.parametrize("family", ARRIVAL_FAMILIES)
def test_bad_samples_are_refused_with_clear_errors(family):
    with pytest.raises(InsufficientDataError, match="values <= 0"):
        fit_family([0.0, 1.0, 2.0], family)
    with pytest.raises(InsufficientDataError, match="needs at least"):
        fit_family([1.0], family)
    with pytest.raises(ValueError, match="non-finite"):
        fit_family([1.0, np.nan, 2.0], family)
    with pytest.raises(InsufficientDataError, match="degenerate"):
        fit_family([3.0, 3.0, 3.0], family)


def test_gamma_shape_for_nearly_regular_arrivals(rng):
    # CV ~ 3e-5: a ~ 1e9, where ln a - psi(a) cancels catastrophically; the MLE must still converge.
    # Reference: the asymptote ln a - psi(a) = 1/(2a) + O(a^-2), so a = 1 / (2 s) to relative 1e-9.
    x = 1.0 + 1e-4 * rng.random(10_000)
    result = fit_family(x, "gamma")
    s = np.log(x.mean()) - np.log(x).mean()
    assert result.converged
    assert result.params["a"] == pytest.approx(1 / (2 * s), rel=1e-6)
