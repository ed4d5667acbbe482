"""The sampled Gamma shape-shift test (``max_sim_gaps``) on traces of known truth, a small case of
benchmarks/bench_shape_sampling.py: under the null (one shape) it rejects at most at its level,
under a large known shift it rejects and says "holds", sampled and unsampled alike."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_shape_sampling import simulate_windows  # noqa: E402

from servelab.fitting.shape_tests import gamma_shape_shift_test, log_sine_sd  # noqa: E402

#: 72 windows (one day of 20-min windows) of 40-80 gaps: about 4,300 gaps, sampled at 1,500
SIZES = np.random.default_rng([0, 17]).integers(40, 81, 72)
BOUND = 1_500


def test_simulated_windows_have_the_stated_shapes():
    """The simulator's sufficient statistics give back its shape (independent check: scipy's MLE
    on the pooled log-ratio statistic of a one-shape trace)."""
    tr = simulate_windows(np.full(200, 500), shape=0.5, seed=3)
    s = np.sum(tr.n_gaps * (np.log(tr.mean_gap) - tr.mean_log_gap)) / tr.n_gaps.sum()
    # Gamma MLE of the shape from s = ln(mean) - mean(ln): solves ln(a) - digamma(a) = s; 1e5 gaps
    from scipy.optimize import brentq
    from scipy.special import digamma
    a = brentq(lambda x: np.log(x) - digamma(x) - s, 1e-3, 100)
    assert a == pytest.approx(0.5, rel=0.02)  # SE of the shape MLE at n = 1e5, alpha 0.5: ~0.3 %
    shifted = simulate_windows(SIZES, shape=0.5, log_shape_sd=log_sine_sd(3.0), seed=0)
    assert np.std(np.log(shifted.shape)) == pytest.approx(log_sine_sd(3.0), rel=0.05)
    with pytest.raises(ValueError, match="sizes must be a non-empty 1-D array of positive counts; got"):
        simulate_windows(np.array([0, 3]))


def test_sampled_test_keeps_its_level_and_finds_a_known_shift():
    level, seeds, b = 0.05, 12, 39  # B = 39: the smallest p-value, 1/40, is below the level
    null_p = []
    for seed in range(seeds):
        tr = simulate_windows(SIZES, shape=0.5, seed=seed)
        test = gamma_shape_shift_test(tr.n_gaps, tr.mean_gap, tr.mean_log_gap, level=level, replicates=b, seed=seed,
                                      max_sim_gaps=BOUND)
        assert "seeded sample of" in test.method and test.n < SIZES.size
        null_p.append(test.p_value)
    rejected = int(np.sum(np.asarray(null_p) < level))
    # at the nominal 5 %, P(X >= 4 of 12) = 0.002: more rejections would mean the sample breaks the level
    assert stats.binom.sf(3, seeds, level) < 0.003
    assert rejected <= 3
    tr = simulate_windows(SIZES, shape=0.5, log_shape_sd=log_sine_sd(6.0), seed=100)
    for bound in (BOUND, None):
        test = gamma_shape_shift_test(tr.n_gaps, tr.mean_gap, tr.mean_log_gap, level=level, replicates=b, seed=100,
                                      max_sim_gaps=bound)
        assert test.p_value == pytest.approx(1 / (b + 1))  # above every null replicate
        assert test.decision == "holds"
