"""Bimodality on integer lengths: the lattice spread, separated modes, null and positive controls."""
from __future__ import annotations

import math

import numpy as np
import pytest

from servelab.analysis.findings import Verdict
from servelab.fitting.modality import _mixture, ashman_d, lattice_bimodality, spread_over_cells
from servelab.fitting.exceptions import InsufficientDataError


def test_spread_stays_inside_each_lattice_cell(rng):
    x = rng.integers(1, 40, 5000).astype(float)
    y = spread_over_cells(x, seed=1)
    assert np.all(y >= np.log(x - 0.5)) and np.all(y < np.log(x + 0.5))
    z = spread_over_cells(x, log=False, seed=1)
    assert np.all(np.abs(z - x) <= 0.5)
    assert np.array_equal(y, spread_over_cells(x, seed=1))  # same seed, same values
    with pytest.raises(ValueError, match="every cell above 0"):
        spread_over_cells(np.array([0.0, 1.0, 2.0]))


def test_rounded_unimodal_lognormal_is_not_bimodal():
    # issue 13: round(LogNormal(3.4, 0.3)) gave dip p = 0 and "bimodal"
    x = np.round(np.random.default_rng(7).lognormal(3.4, 0.3, 50_000))
    r = lattice_bimodality(x, seed=0)
    assert r.decision is Verdict.DOES_NOT_HOLD, r.reason
    assert r.p_value > 0.05 and r.effect_value < 2.0


def test_small_integer_counts_are_not_bimodal():
    x = np.maximum(np.round(np.random.default_rng(8).lognormal(0.7, 0.6, 20_000)), 1)
    assert lattice_bimodality(x, seed=0).decision is not Verdict.HOLDS


def test_separated_modes_are_bimodal_and_close_modes_are_not():
    rng = np.random.default_rng(9)
    two = np.round(np.exp(np.where(rng.random(20_000) < 0.4, rng.normal(3.0, 0.3, 20_000), rng.normal(5.5, 0.4, 20_000))))
    r = lattice_bimodality(two, seed=0)
    assert r.decision is Verdict.HOLDS
    # modes recovered on the log scale: 20,000 values, sd of each mean ~ 0.4 / sqrt(8000) = 0.005
    assert "modes at 3" in r.reason and r.effect_value == pytest.approx(ashman_d(3.0, 0.3, 5.5, 0.4), rel=0.05)
    # issue 13: modes at 30 and 32.3 tokens (Ashman D 0.057) "held"
    close = np.round(np.exp(np.where(rng.random(20_000) < 0.5, rng.normal(3.4, 0.3, 20_000), rng.normal(3.47, 0.3, 20_000))))
    assert lattice_bimodality(close, seed=0).decision is not Verdict.HOLDS


def test_mixture_em_matches_sklearn():
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(10)
    y = np.where(rng.random(5_000) < 0.3, rng.normal(0.0, 1.0, 5_000), rng.normal(4.0, 0.7, 5_000))
    d, p = _mixture(y, 0)
    gm = GaussianMixture(2, random_state=0).fit(y.reshape(-1, 1))
    order = np.argsort(gm.means_.ravel())
    assert p["mu1"] == pytest.approx(gm.means_.ravel()[order[0]], abs=0.02)
    assert p["mu2"] == pytest.approx(gm.means_.ravel()[order[1]], abs=0.02)
    assert p["weight"] == pytest.approx(gm.weights_[order[0]], abs=0.01)
    assert ashman_d(0.0, 1.0, 4.0, 0.7) == pytest.approx(math.sqrt(2) * 4 / math.sqrt(1.49))


def test_bimodality_needs_data():
    with pytest.raises(InsufficientDataError, match="at least|>= 20 finite values"):
        lattice_bimodality(np.arange(1, 10, dtype=float))
