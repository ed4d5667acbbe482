"""Gamma per window (BurstGPT Fig. 6) against scipy fits of each window, and undefined windows."""
import numpy as np
import polars as pl
import pytest
from scipy import stats

from servelab.analysis import write_store
from servelab.fitting.windows import gamma_per_window, gamma_windows


@pytest.fixture
def store(tmp_path, rng):
    # three 20-minute windows with different burstiness, then one window with a single request
    parts = [rng.gamma(a, 1.0 / a, 3000) for a in (0.3, 1.0, 3.0)]
    t = []
    for k, gaps in enumerate(parts):
        times = k * 1200.0 + 1.0 + np.cumsum(gaps) * (1100.0 / gaps.sum())
        t.append(times[times < (k + 1) * 1200.0])
    t.append(np.array([3700.0]))
    return write_store(pl.DataFrame({"timestamp": np.concatenate(t)}), tmp_path / "s")


def test_mle_per_window_matches_scipy(store):
    out = gamma_windows(store, window_s="20m")
    frame = store.to_polars(["timestamp"])
    t = frame["timestamp"].to_numpy()
    w = np.floor(t / 1200.0)
    for row in out.iter_rows(named=True):
        gaps = np.diff(t[w == row["window"]])
        assert row["n_zero_gaps"] == int(np.sum(gaps == 0))
        gaps = gaps[gaps > 0]  # the MLE uses positive gaps (documented); zeros are counted
        if gaps.size < 2:
            assert row["alpha"] is None and row["beta"] is None and row["cv_gamma"] is None
            assert row["gamma_converged"] is False
            continue
        a, _, scale = stats.gamma.fit(gaps, floc=0)
        assert row["alpha"] == pytest.approx(a, rel=1e-4)
        assert row["beta"] == pytest.approx(1 / scale, rel=1e-4)
        assert row["cv_gamma"] == pytest.approx(1 / np.sqrt(a), rel=1e-4)
        assert row["gamma_method"] == "mle"
    alphas = out["alpha"].drop_nulls().to_list()
    assert alphas[0] < alphas[1] < alphas[2]


def test_moments_cv_equals_empirical_cv(store):
    out = gamma_windows(store, window_s="20m", method="moments").filter(pl.col("alpha").is_not_null())
    np.testing.assert_allclose(out["cv_gamma"].to_numpy(), out["cv"].to_numpy(), rtol=1e-9)


def test_bad_arguments(store):
    with pytest.raises(ValueError, match="method must be one of"):
        gamma_windows(store, method="bayes")
    with pytest.raises(ValueError, match="windows lacks columns"):
        gamma_per_window(pl.DataFrame({"n_gaps": [3]}))
