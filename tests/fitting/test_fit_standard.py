"""The one goodness-of-fit standard: KS D against max(tolerance, fitted-parameter critical value)."""
from __future__ import annotations

import math

import pytest

from servelab.analysis.findings import Verdict
from servelab.fitting import fit_family
from servelab.fitting.fit_standard import describes, infinite_mean, ks_critical_value, mean_note
from servelab.fitting.result import FitResult


def test_bootstrap_critical_value_matches_stephens_for_the_exponential():
    # Stephens (1974): exponential with estimated mean, 5 %: (D - 0.2/n)(sqrt(n) + 0.26 + 0.5/sqrt(n)) = 1.094
    n = 1000
    ref = 1.094 / (math.sqrt(n) + 0.26 + 0.5 / math.sqrt(n)) + 0.2 / n
    crit, how, _ = ks_critical_value("exponential", n, {"scale": 2.0})
    # B = 200: the 95th percentile's standard error is about 5 % of it
    assert crit == pytest.approx(ref, rel=0.12)
    assert "parametric bootstrap" in how
    big, how_big, _ = ks_critical_value("exponential", 100 * n, {"scale": 2.0})
    assert big == pytest.approx(crit / 10, rel=1e-9) and "sqrt(m/n)" in how_big
    crit_mix, how_mix, boot = ks_critical_value("lognormal_pareto", 400, {})
    assert boot is None and crit_mix == pytest.approx(1.358 / 20, rel=1e-3) and "Kolmogorov" in how_mix


def test_family_of_the_data_holds_and_a_misfit_does_not(rng):
    x = rng.exponential(3.0, 5000)
    assert describes(fit_family(x, "exponential")).decision is Verdict.HOLDS
    y = 3.0 * rng.weibull(0.7, 5000)
    r = describes(fit_family(y, "exponential"))
    assert r.decision is Verdict.DOES_NOT_HOLD and r.value > 0.05 and "KS D" in r.reason


def test_small_samples_are_inconclusive(rng):
    r = describes(fit_family(rng.exponential(1.0, 40), "exponential"))
    assert r.decision is Verdict.INCONCLUSIVE and "could miss a misfit" in r.reason and r.power < 0.8


def test_aic_never_makes_a_poor_fit_hold():
    # issue 13: F3.input "held" on AIC with a mixture KS D of 0.121 at n = 10^5
    fit = FitResult(family="lognormal_pareto", params={"weight": 0.9, "mu": 5.0, "sigma": 1.0, "alpha": 1.5,
                                                       "x_min": 900.0}, n=100_000, log_likelihood=-1.0, aic=0.0,
                    bic=0.0, ks_distance=0.121)
    assert describes(fit).decision is Verdict.DOES_NOT_HOLD


def test_infinite_mean_flag():
    pareto = FitResult(family="pareto", params={"alpha": 1.004, "x_min": 10.0}, n=100, log_likelihood=0.0, aic=0.0,
                       bic=0.0, ks_distance=0.01)
    assert infinite_mean(pareto) and "mean is infinite" in mean_note(pareto)
    fine = FitResult(family="pareto", params={"alpha": 2.5, "x_min": 10.0}, n=100, log_likelihood=0.0, aic=0.0,
                     bic=0.0, ks_distance=0.01)
    assert not infinite_mean(fine) and mean_note(fine) is None
    zipf = FitResult(family="zipf", params={"s": 1.8, "x_min": 1.0}, n=100, log_likelihood=0.0, aic=0.0, bic=0.0)
    assert infinite_mean(zipf)
    # the standard error of alpha is alpha / sqrt(n): 1.15 is clearly above 1 at n = 10^4 (1.15 - 2 x 0.0115),
    # not at n = 100 (1.15 - 2 x 0.115 < 1)
    strong = FitResult(family="pareto", params={"alpha": 1.15, "x_min": 10.0}, n=10_000, log_likelihood=0.0, aic=0.0,
                       bic=0.0)
    weak = FitResult(family="pareto", params={"alpha": 1.15, "x_min": 10.0}, n=100, log_likelihood=0.0, aic=0.0, bic=0.0)
    assert not infinite_mean(strong) and infinite_mean(weak)
    assert not infinite_mean(FitResult(family="gamma", params={"a": 0.1, "scale": 1.0}, n=10, log_likelihood=0.0,
                                       aic=0.0, bic=0.0))


def test_fit_standard_errors():
    fit = FitResult(family="exponential", params={"scale": 1.0}, n=100, log_likelihood=0.0, aic=0.0, bic=0.0)
    with pytest.raises(ValueError, match="has no KS distance"):
        describes(fit)
    with pytest.raises(ValueError, match="n must be an integer >= 5"):
        ks_critical_value("exponential", 3, {"scale": 1.0})
    with pytest.raises(ValueError, match="tolerance must be in"):
        describes(FitResult(family="exponential", params={"scale": 1.0}, n=100, log_likelihood=0.0, aic=0.0, bic=0.0,
                            ks_distance=0.1), tolerance=2.0)
