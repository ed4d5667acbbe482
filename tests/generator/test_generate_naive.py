"""The naive baseline: one Gamma process at the target rate and CV, aggregate request data."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _genpools import make_pool
from servelab.generator.exceptions import GenerationError
from servelab.generator.naive import NAIVE_CLIENT, aggregate_cv, naive_generate


def _pool():
    # client a: 1 req/s, inputs 10; client b: 3 req/s, inputs 1000 -> aggregate P(1000) = 3/4
    return make_pool({"a": [1.0] * 4, "b": [3.0] * 4}, cvs={"a": 1.0, "b": 1.0},
                     pmfs={"a": {"input_tokens": ([10], [1.0]), "output_tokens": ([5], [1.0])},
                           "b": {"input_tokens": ([1000], [1.0]), "output_tokens": ([7], [1.0])}})


def test_rate_cv_and_aggregate_data():
    df = naive_generate(_pool(), 8.0, 2400, cv=2.0, seed=1)
    assert set(df["client_id"].unique().to_list()) == {NAIVE_CLIENT}
    n = df.height
    # Gamma CV 2 renewal counts: variance ~ cv^2 * mean; 5 sd
    assert abs(n - 19200) < 5 * 2.0 * np.sqrt(19200)
    g = np.diff(df["timestamp"].to_numpy())
    cv = g.std() / g.mean()
    se = 2.0 * np.sqrt((6 * 4 + 2) / (4 * g.size))  # Gamma kurtosis excess 6 / a, a = 1/4
    assert abs(cv - 2.0) < 5 * se
    share = (df["input_tokens"] == 1000).mean()
    assert abs(share - 0.75) < 5 * np.sqrt(0.75 * 0.25 / n)
    # data drawn independently of arrivals: both lengths' pairing follows the product of marginals
    both = ((df["input_tokens"] == 1000) & (df["output_tokens"] == 7)).mean()
    assert abs(both - 0.75 * 0.75) < 5 * np.sqrt(0.75**2 * (1 - 0.75**2) / n)


def test_aggregate_cv_of_one_client_is_its_cv():
    pool = make_pool({"a": [2.0] * 6}, cvs={"a": 1.5})
    cv = aggregate_cv(pool, 2.0, 3600, seed=2)
    # ~7,200 gaps of a Gamma with CV 1.5 (kurtosis excess 6 * 2.25): 5 standard errors
    se = 1.5 * np.sqrt((6 * 2.25 + 2) / (4 * 7200))
    assert abs(cv - 1.5) < 5 * se


def test_naive_follows_the_pool_rate():
    pool = make_pool({"a": [1.0, 4.0], "b": [1.0, 0.0]}, families={"a": "exponential", "b": "exponential"})
    df = naive_generate(pool, "pool", 1200, cv=1.0, seed=3)
    counts = np.bincount((df["timestamp"].to_numpy() // 600).astype(int), minlength=2)
    expected = np.array([2.0, 4.0]) * 600
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))


def test_naive_errors():
    with pytest.raises(GenerationError, match="cv must be a finite number > 0"):
        naive_generate(_pool(), 1.0, 600, cv=-1.0, seed=0)
    with pytest.raises(GenerationError, match="duration must be"):
        naive_generate(_pool(), 1.0, -5, cv=1.0, seed=0)
