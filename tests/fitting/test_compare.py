"""Family comparison: AIC ranking, the 'clearly best' rule, per-group comparison."""
import math

import numpy as np
import polars as pl
import pytest

from servelab.fitting import InsufficientDataError
from servelab.fitting.compare import CLEARLY_BEST_RULE, compare_by_group, compare_families, density_curves


def test_clear_winner_on_a_large_gamma_sample(rng):
    comp = compare_families(rng.gamma(0.4, 1.0, 50_000))
    assert comp.best == comp.clearly_best == "gamma"
    table = comp.table()
    assert table["family"][0] == "gamma"
    assert table["delta_aic"].to_list() == sorted(table["delta_aic"].to_list())
    assert table["delta_aic"][0] == 0.0
    assert table["delta_aic"][1] >= max(10.0, 2.0 * 50_000 / 1000)
    assert table["clearly_best"].to_list() == [True, False, False, False]
    bic = np.array([r.bic for r in comp.results])
    np.testing.assert_allclose(table["delta_bic"].to_numpy(), bic - bic.min())
    assert comp.verdict.startswith("gamma is clearly best")


def test_no_family_clearly_best_when_nested_families_tie(rng):
    # exponential data: gamma and weibull contain the exponential, so their AICs are within ~2
    comp = compare_families(rng.exponential(1.0, 3000))
    assert comp.clearly_best is None
    assert comp.verdict.startswith("no family is clearly best")
    assert comp.rule == CLEARLY_BEST_RULE
    d = comp.table()["ks_distance"].to_list()
    assert all(0 < v < 3 / math.sqrt(3000) for v in d[:3])


def test_subsampling_and_ties_are_stated(rng):
    x = np.floor(np.cumsum(rng.exponential(2.0, 20_000)) / 3.0) * 3.0
    comp = compare_families(np.diff(x), max_n=5000, seed=1)
    assert comp.n == 5000 and comp.n_input == 19_999
    assert any("quantised to 3 s" in note for note in comp.notes)
    assert any("random subsample of 5000" in note for note in comp.notes)
    assert all(r.notes == comp.notes for r in comp.results)


def test_gof_auto_attaches_honest_p_values(rng):
    comp = compare_families(rng.gamma(0.5, 1.0, 1500), gof="auto", n_boot=49)
    assert all(r.p_value_method.startswith("parametric bootstrap") for r in comp.results)
    tiny = compare_families(rng.gamma(0.5, 1.0, 60), gof="subsample")
    assert all(r.p_value is None and "no p-value" in r.notes[-1] for r in tiny.results)


def test_compare_by_group_ranks_each_group(rng):
    frame = pl.DataFrame({
        "g": ["poisson"] * 4000 + ["bursty"] * 4000 + ["small"] * 10,
        "gap": np.concatenate([rng.exponential(1.0, 4000), rng.gamma(0.3, 1.0, 4000), rng.exponential(1.0, 10)]),
    })
    out = compare_by_group(frame, "g", min_n=50)
    assert out["g"].to_list() == ["bursty", "poisson"]  # the 10-value group is left out
    bursty = out.filter(pl.col("g") == "bursty").row(0, named=True)
    assert bursty["best"] == "gamma" and bursty["clearly_best"] == "gamma"
    assert bursty["cv"] == pytest.approx(np.std(frame.filter(pl.col("g") == "bursty")["gap"].to_numpy()) /
                                         frame.filter(pl.col("g") == "bursty")["gap"].mean())
    with pytest.raises(ValueError, match="column 'nope' not in frame"):
        compare_by_group(frame, "nope")


def test_density_curves_integrate_to_about_one(rng):
    comp = compare_families(rng.gamma(2.0, 1.0, 2000))
    grid = np.linspace(1e-6, 60, 200_001)
    curves = density_curves(comp, grid)
    for _, part in curves.group_by("family"):
        assert np.trapezoid(part["pdf"].to_numpy(), grid) == pytest.approx(1.0, abs=2e-3)


def test_bad_arguments(rng):
    x = rng.exponential(1.0, 100)
    with pytest.raises(ValueError, match="families must name at least one"):
        compare_families(x, families=())
    with pytest.raises(ValueError, match="gof must be None"):
        compare_families(x, gof="naive")
    with pytest.raises(ValueError, match="max_n must be None or an integer >= 2"):
        compare_families(x, max_n=1)
    with pytest.raises(InsufficientDataError, match="at least 2 values"):
        compare_families([0.0, 0.0, 5.0], ties="drop")
    with pytest.raises(KeyError, match="unknown family 'pareto2'"):
        compare_families(x, families=("pareto2",))
