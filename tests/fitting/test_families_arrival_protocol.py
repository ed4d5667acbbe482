"""The arrival-family protocol: one conformance test run over every registered arrival family.

scipy.stats (each family's ``dist``, scipy's own distribution object) is the independent reference
for densities, moments, the unit-mean scale and the MLE; draws are checked by KS distance against
scipy's CDF and by moments, with tolerances from the sample size (and, for the CV, from the
family's kurtosis as scipy computes it). A newly registered family is tested here without an edit.
"""
import numpy as np
import pytest
from scipy import stats

from servelab.fitting.exceptions import UnknownFamilyError
from servelab.fitting.families import arrival_family_names, get_arrival_family



class _Scipy(dict):
    """Registry name -> the family's scipy distribution (the reference implementation)."""

    def __missing__(self, name):
        return get_arrival_family(name).dist


SCIPY = _Scipy()


def _cases():
    for name in arrival_family_names():
        fam = get_arrival_family(name)
        for cv in ((1.0,) if not fam.shape_names else (0.5, 2.0)):
            yield pytest.param(name, cv, id=f"{name}-cv{cv}")


def test_every_arrival_family_has_a_scipy_reference():
    assert {"exponential", "gamma", "weibull", "lognormal"} <= set(arrival_family_names())
    for name in arrival_family_names():
        assert isinstance(SCIPY[name], stats.rv_continuous), name
    assert SCIPY["gamma"] is stats.gamma and SCIPY["weibull"] is stats.weibull_min


@pytest.mark.parametrize(("name", "cv"), list(_cases()))
def test_cv_mean_and_unit_scale_match_scipy(name, cv):
    fam = get_arrival_family(name)
    shapes = fam.shapes_from_cv(cv)
    assert set(shapes) == set(fam.shape_names)
    params = fam.unit_mean(shapes)
    dist = SCIPY[name](**{k: float(v) for k, v in params.items()})
    assert dist.mean() == pytest.approx(1.0, rel=1e-9)
    assert dist.std() / dist.mean() == pytest.approx(cv, rel=1e-6)
    assert float(fam.cv(params)) == pytest.approx(cv, rel=1e-6)
    assert float(fam.mean(params)) == pytest.approx(1.0, rel=1e-9)
    x = np.array([0.01, 0.3, 1.0, 4.0])
    np.testing.assert_allclose(fam.logpdf(x, params), dist.logpdf(x), rtol=1e-9)
    np.testing.assert_allclose(fam.cdf(x, params), dist.cdf(x), rtol=1e-9)


@pytest.mark.parametrize(("name", "cv"), list(_cases()))
def test_unit_mean_draws_have_mean_one_the_family_cv_and_its_distribution(name, cv):
    fam = get_arrival_family(name)
    params = fam.unit_mean(fam.shapes_from_cv(cv))
    dist = SCIPY[name](**{k: float(v) for k, v in params.items()})
    n = 200_000
    x = fam.draw({k: np.full(n, v) for k, v in params.items()}, np.random.default_rng(7))
    assert x.shape == (n,) and np.all(x > 0)
    # KS against scipy's CDF: 1.95 / sqrt(n) is the 0.1 % critical value
    assert stats.kstest(x, dist.cdf).statistic < 1.95 / np.sqrt(n)
    # mean: sd cv / sqrt(n); 5 sd
    assert x.mean() == pytest.approx(1.0, abs=5 * cv / np.sqrt(n))
    # sample CV: relative sd ~ sqrt((excess kurtosis + 2) / (4 n)) by the delta method; 5 sd
    kurt = float(dist.stats(moments="k"))
    tol = 5 * np.sqrt((kurt + 2) / (4 * n)) + 5 * cv / np.sqrt(n)
    assert x.std() / x.mean() == pytest.approx(cv, rel=tol)


@pytest.mark.parametrize(("name", "cv"), list(_cases()))
def test_length_biased_draws_have_the_length_biased_moments(name, cv):
    # x f(x) / E[X] at unit mean: E = E[X^2] = 1 + cv^2, Var = E[X^3] - E[X^2]^2 (scipy's moments)
    fam = get_arrival_family(name)
    params = fam.unit_mean(fam.shapes_from_cv(cv))
    dist = SCIPY[name](**{k: float(v) for k, v in params.items()})
    m2, m3 = dist.moment(2), dist.moment(3)
    n = 200_000
    x = fam.draw(params, np.random.default_rng(11), length_biased=True, size=n)
    assert m2 == pytest.approx(1 + cv * cv, rel=1e-6)
    assert x.mean() == pytest.approx(m2, abs=5 * np.sqrt(m3 - m2 * m2) / np.sqrt(n))
    # and its CDF: F_LB(y) = E[X; X <= y] = int_0^y x f(x) dx (scipy's expect)
    y = float(np.median(x))
    ref = dist.expect(lambda v: v, lb=0, ub=y)
    assert np.mean(x <= y) == pytest.approx(ref, abs=5 * 0.5 / np.sqrt(n))


@pytest.mark.parametrize(("name", "cv"), list(_cases()))
def test_fit_segments_recovers_parameters_and_equals_single_fits_and_scipy(name, cv):
    fam = get_arrival_family(name)
    truth = fam.unit_mean(fam.shapes_from_cv(cv))
    truth = {**truth, "scale": truth["scale"] * 3.0}  # mean 3
    rng = np.random.default_rng(5)
    sizes = (1_000, 10_000, 50_000)
    xs = [fam.draw(truth, rng, size=n) for n in sizes]
    seg = np.repeat(np.arange(len(sizes)), sizes)
    fits = fam.fit_segments(np.concatenate(xs), seg, len(sizes) + 1)  # the last segment is empty
    assert fits.family == name and fits.converged[:3].all() and not fits.converged[3]
    assert fits.n.tolist() == [*sizes, 0]
    for p in fam.param_names:
        assert np.isnan(fits.params[p][3])
    for k, (n, x) in enumerate(zip(sizes, xs)):
        single, ok = fam.fit_params(x)
        # the largest asymptotic relative sd of these parameters is < 2 / sqrt(n): 8 / sqrt(n) is > 4 sd
        for p, value in truth.items():
            assert fits.params[p][k] == pytest.approx(float(value), rel=8 / np.sqrt(n)), (p, n)
            assert fits.params[p][k] == pytest.approx(single[p], rel=1e-9)
        ref = SCIPY[name].fit(x, floc=0)  # scipy's own optimiser
        for p, value in zip(fam.param_names, [*ref[:-2], ref[-1]], strict=True):
            assert fits.params[p][k] == pytest.approx(value, rel=2e-3)
        loglik = np.sum(SCIPY[name].logpdf(x, **{p: fits.params[p][k] for p in fam.param_names}))
        assert fits.log_likelihood[k] == pytest.approx(loglik, rel=1e-9)
        assert fits.aic[k] == pytest.approx(2 * len(fam.param_names) - 2 * loglik, rel=1e-9)


@pytest.mark.parametrize("name", arrival_family_names())
def test_fit_segments_refuses_bad_input(name):
    fam = get_arrival_family(name)
    with pytest.raises(ValueError, match="needs finite values > 0"):
        fam.fit_segments(np.array([1.0, 0.0, 2.0]), np.zeros(3, int), 1)
    with pytest.raises(ValueError, match="seg must be non-decreasing"):
        fam.fit_segments(np.array([1.0, 2.0, 3.0]), np.array([1, 0, 1]), 2)
    with pytest.raises(ValueError, match="segment ids must lie in 0..0"):
        fam.fit_segments(np.array([1.0, 2.0]), np.array([0, 1]), 1)


def test_non_arrival_families_are_refused_by_name():
    with pytest.raises(UnknownFamilyError, match="'pareto' is not an arrival family"):
        get_arrival_family("pareto")
    with pytest.raises(UnknownFamilyError, match="unknown family 'nope'"):
        get_arrival_family("nope")
