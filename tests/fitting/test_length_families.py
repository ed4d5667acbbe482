"""Length families (pareto, zipf, lognormal_pareto, lognormal_mixture, normal_mixture, normal),
the bimodality test and the length-fit comparison.

Reference values come from closed forms or other libraries (scipy.stats, scikit-learn), never from
the code under test; tolerances shrink like 1/sqrt(n).
"""
import math
import warnings

import numpy as np
import pytest
from scipy import special, stats

from servelab.fitting import InsufficientDataError, fit_family, get_family
from servelab.fitting.mixtures import bimodality, compare_length_fits

TRUE = {"weight": 0.8, "mu": 5.0, "sigma": 1.0, "alpha": 1.5, "x_min": 1500.0}


def draw_mixture(rng, n, p=TRUE):
    pick = rng.random(n) < p["weight"]
    body = np.exp(p["mu"] + p["sigma"] * rng.standard_normal(n))
    tail = p["x_min"] * (1 - rng.random(n)) ** (-1 / p["alpha"])
    return np.where(pick, body, tail)


# ---------------------------------------------------------------- pareto, zipf, exponential


@pytest.mark.parametrize("n", [2_000, 200_000])
def test_pareto_alpha_recovered_and_matches_scipy(rng, n):
    x = stats.pareto.rvs(b=1.7, scale=30.0, size=n, random_state=rng)
    r = fit_family(x, "pareto")
    assert abs(r.params["alpha"] - 1.7) < 4 * 1.7 / math.sqrt(n)  # se of the MLE is alpha / sqrt(n)
    b, _, scale = stats.pareto.fit(x, floc=0)
    assert r.params["alpha"] == pytest.approx(b, rel=1e-3)
    assert r.params["x_min"] == pytest.approx(scale, rel=1e-6)
    assert r.log_likelihood == pytest.approx(np.sum(stats.pareto.logpdf(x, b=r.params["alpha"], scale=r.params["x_min"])))


@pytest.mark.parametrize("n", [2_000, 100_000])
def test_exponential_recovers_the_mean(rng, n):
    x = rng.exponential(250.0, n)
    r = fit_family(x, "exponential")
    assert abs(r.params["scale"] - 250.0) < 4 * 250.0 / math.sqrt(n)
    assert r.params["scale"] == pytest.approx(x.mean(), rel=1e-6)


@pytest.mark.parametrize("n", [2_000, 100_000])
def test_zipf_exponent_recovered(rng, n):
    s = 1.8
    x = rng.zipf(s, n).astype(float)
    r = fit_family(x, "zipf")
    assert r.params["x_min"] == 1.0
    # Fisher information of the exponent is Var(ln K) under the model
    se = 1 / math.sqrt(n * np.var(np.log(x)))
    assert abs(r.params["s"] - s) < 4 * se
    # score equation: mean ln x = -zeta'(s)/zeta(s) at the MLE (derivative by central differences)
    h = 1e-6
    dlog = (np.log(special.zeta(r.params["s"] + h, 1)) - np.log(special.zeta(r.params["s"] - h, 1))) / (2 * h)
    assert np.mean(np.log(x)) == pytest.approx(-dlog, rel=1e-5)


def test_zipf_pmf_and_cdf_match_scipy():
    fam = get_family("zipf")
    k = np.arange(1, 60, dtype=float)
    params = {"s": 2.3, "x_min": 1.0}
    np.testing.assert_allclose(fam.logpdf(k, params), stats.zipf.logpmf(k, 2.3), rtol=1e-10)
    np.testing.assert_allclose(fam.cdf(k, params), stats.zipf.cdf(k, 2.3), rtol=1e-10)
    assert fam.logpdf(np.array([2.5]), params)[0] == -np.inf


def test_zipf_rejects_non_integers_and_constants():
    with pytest.raises(InsufficientDataError, match="discrete"):
        fit_family(np.array([1.5, 2.0, 3.0]), "zipf")
    with pytest.raises(InsufficientDataError, match="all 3 values equal"):
        fit_family(np.array([4.0, 4.0, 4.0]), "zipf")


@pytest.mark.parametrize("name,params", [
    ("pareto", {"alpha": 1.5, "x_min": 20.0}),
    ("zipf", {"s": 2.1, "x_min": 5.0}),
    ("lognormal_pareto", TRUE),
    ("lognormal_mixture", {"weight": 0.4, "mu1": 3.0, "sigma1": 0.5, "mu2": 6.0, "sigma2": 0.7}),
    ("normal_mixture", {"weight": 0.3, "mu1": 0.2, "sigma1": 0.05, "mu2": 0.8, "sigma2": 0.1}),
    ("normal", {"loc": 1.0, "scale": 2.0}),
])
def test_every_length_family_samples_its_own_cdf(name, params):
    """Conformance: rvs agrees with cdf (ECDF within 5 binomial s.e.), same seed same bytes."""
    fam = get_family(name)
    n = 40_000
    x = fam.rvs(params, n, np.random.default_rng(7))
    assert np.array_equal(x, fam.rvs(params, n, np.random.default_rng(7)))
    for q in (0.1, 0.5, 0.9):
        point = np.quantile(x, q)
        p = float(fam.cdf(np.array([point]), params)[0])
        assert abs(np.mean(x <= point) - p) < 5 * math.sqrt(q * (1 - q) / n) + (0.02 if fam.kind == "discrete" else 0)


def test_mixture_density_integrates_to_one():
    fam = get_family("lognormal_pareto")
    from scipy import integrate
    f = lambda t: math.exp(fam.logpdf(np.array([t]), TRUE)[0])  # noqa: E731
    total = sum(integrate.quad(f, a, b, limit=200)[0] for a, b in [(1e-9, TRUE["x_min"]), (TRUE["x_min"], np.inf)])
    assert total == pytest.approx(1.0, abs=1e-6)


# ---------------------------------------------------------------- the LogNormal + Pareto mixture


@pytest.mark.parametrize("n", [5_000, 50_000])
def test_mixture_parameters_recovered(rng, n):
    x = draw_mixture(rng, n)
    r = fit_family(x, "lognormal_pareto")
    assert r.converged
    root = math.sqrt(n)
    # constants: ~5 s.e. measured over seeds at n = 2e4 (sd*sqrt(n): w 0.1, mu 1.5, sigma 1.5, alpha 4.5)
    assert abs(r.params["weight"] - 0.8) < 1.0 / root
    assert abs(r.params["mu"] - 5.0) < 8.0 / root
    assert abs(r.params["sigma"] - 1.0) < 8.0 / root
    assert abs(r.params["alpha"] - 1.5) < 25.0 / root
    assert abs(math.log(r.params["x_min"] / 1500.0)) < 0.15


def test_mixture_beats_single_families_on_mixture_data(rng):
    x = np.maximum(np.round(draw_mixture(rng, 50_000)), 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        comp = compare_length_fits(x)
    assert comp.best == "lognormal_pareto"
    assert comp.clearly_best == "lognormal_pareto"
    assert {r.family for r in comp.results} == {"lognormal_pareto", "lognormal", "pareto", "exponential", "zipf"}


@pytest.mark.parametrize("truth", ["lognormal", "exponential", "pareto"])
def test_mixture_does_not_win_on_single_family_data(rng, truth):
    n = 20_000
    x = {"lognormal": lambda: np.maximum(np.round(np.exp(5 + rng.standard_normal(n))), 1),  # token counts
         "exponential": lambda: rng.exponential(300.0, n),
         "pareto": lambda: 10 * (1 - rng.random(n)) ** (-1 / 1.3)}[truth]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        comp = compare_length_fits(x, families=("lognormal_pareto", "lognormal", "pareto", "exponential"))
    assert comp.clearly_best != "lognormal_pareto"
    assert comp.result(truth).aic - comp.results[0].aic < comp.threshold


def test_mixture_survives_ten_million_token_outliers(rng):
    x = np.maximum(np.round(draw_mixture(rng, 50_000)), 1)
    x = np.concatenate([x, np.full(50, 1e7), [3e7]])
    r = fit_family(x, "lognormal_pareto")
    assert np.isfinite(r.log_likelihood) and r.converged
    assert abs(r.params["mu"] - 5.0) < 0.05 and abs(r.params["sigma"] - 1.0) < 0.05
    assert 0.78 < r.params["weight"] < 0.82


def test_mixture_fit_bad_input():
    with pytest.raises(InsufficientDataError, match="at least 20 observations; got 5"):
        fit_family(np.arange(1.0, 6.0), "lognormal_pareto")
    with pytest.raises(InsufficientDataError, match="values <= 0"):
        fit_family(np.r_[np.arange(1.0, 40.0), 0.0], "lognormal_pareto")
    with pytest.raises(ValueError, match="non-finite"):
        fit_family(np.r_[np.arange(1.0, 40.0), np.nan], "lognormal_pareto")


def test_comparison_lists_undefined_families_with_reasons():
    x = np.array([3.0, 7.0, 12.0, 30.0, 55.0])
    comp = compare_length_fits(x)
    assert "lognormal_pareto" in comp.failed and "at least 20" in comp.failed["lognormal_pareto"]
    assert comp.result("exponential").params["scale"] == pytest.approx(x.mean())
    comp2 = compare_length_fits(np.array([1.5, 2.5, 9.25, 4.0, 7.5] * 5))
    assert "discrete" in comp2.failed["zipf"]


# ---------------------------------------------------------------- two-component mixtures, bimodality


def test_normal_mixture_matches_scikit_learn(rng):
    from sklearn.mixture import GaussianMixture

    y = np.concatenate([rng.normal(0.35, 0.08, 6000), rng.normal(0.85, 0.05, 4000)])
    r = fit_family(y, "normal_mixture")
    gm = GaussianMixture(2, covariance_type="full", tol=1e-10, max_iter=2000, random_state=0).fit(y[:, None])
    order = np.argsort(gm.means_.ravel())
    assert r.params["mu1"] == pytest.approx(gm.means_.ravel()[order[0]], abs=1e-4)
    assert r.params["mu2"] == pytest.approx(gm.means_.ravel()[order[1]], abs=1e-4)
    assert r.params["sigma2"] == pytest.approx(math.sqrt(gm.covariances_.ravel()[order[1]]), abs=1e-4)
    assert r.params["weight"] == pytest.approx(gm.weights_[order[0]], abs=1e-4)
    assert r.log_likelihood == pytest.approx(gm.score(y[:, None]) * y.size, rel=1e-6)


@pytest.mark.parametrize("n", [4_000, 40_000])
def test_lognormal_mixture_recovers_two_modes(rng, n):
    x = np.exp(np.where(rng.random(n) < 0.3, rng.normal(3.0, 0.4, n), rng.normal(6.0, 0.6, n)))
    r = fit_family(x, "lognormal_mixture")
    root = math.sqrt(n)
    assert abs(r.params["weight"] - 0.3) < 3 / root
    assert abs(r.params["mu1"] - 3.0) < 5 / root and abs(r.params["mu2"] - 6.0) < 5 / root
    assert abs(r.params["sigma1"] - 0.4) < 5 / root and abs(r.params["sigma2"] - 0.6) < 5 / root


def test_bimodality_detected_on_two_modes_not_on_one(rng):
    two = np.concatenate([rng.normal(0.35, 0.1, 5000), rng.normal(0.85, 0.06, 5000)])
    b = bimodality(two, seed=1)
    assert b.bimodal and b.dip_p_value < 0.01 and b.delta_bic > 10 and b.ashman_d > 2
    one = rng.normal(0.5, 0.1, 5_000)
    b1 = bimodality(one, seed=1)
    assert not b1.bimodal and b1.dip_p_value > 0.05
    skewed = rng.beta(2, 5, 5_000)  # one mode, skewed: two Gaussians may win on BIC, the dip test must not
    assert not bimodality(skewed, seed=1).bimodal


def test_bimodality_jitters_binned_values_and_subsamples(rng):
    binned = np.round(rng.normal(0.5, 0.1, 60_000) * 500) / 500
    b = bimodality(binned, max_n=20_000, seed=3)
    assert b.n == 20_000 and not b.bimodal
    assert any("jittered" in note for note in b.notes) and any("subsample" in note for note in b.notes)
    assert bimodality(binned, max_n=20_000, seed=3) == b


def test_bimodality_bad_input():
    with pytest.raises(InsufficientDataError, match="at least 10 finite"):
        bimodality([0.1, 0.2, np.nan])
    with pytest.raises(InsufficientDataError, match="3 distinct"):
        bimodality([0.1, 0.9] * 20)


def test_fitter_exploration_is_opt_in_and_ranks_the_true_family_first(rng):
    from servelab.fitting.mixtures import explore_scipy_families

    x = np.exp(5 + rng.standard_normal(3000))
    table = explore_scipy_families(x, distributions=["expon", "lognorm"], max_n=1000, timeout=20)
    assert table["distribution"].to_list()[0] == "lognorm"
    assert "ks_pvalue" not in table.columns and "ks_statistic" in table.columns
