"""The offline optimum of benchmarks/bench_prefix_generation.py (Belady's MIN) against exhaustive search."""
from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_prefix_generation import access_keys, belady_hit_rates  # noqa: E402

from servelab.analysis.prefix_reuse import lru_hit_curve, prefix_distances  # noqa: E402


def _exhaustive(seq: tuple[int, ...], cap: int) -> int:
    """Most hits of any cache of ``cap`` blocks on ``seq``: every choice tried on every miss
    (insert or not; when full, which block to drop)."""

    @lru_cache(maxsize=None)
    def best(i: int, cache: frozenset) -> int:
        if i == len(seq):
            return 0
        k = seq[i]
        if k in cache:
            return 1 + best(i + 1, cache)
        options = [best(i + 1, cache)]  # bypass
        if len(cache) < cap:
            options.append(best(i + 1, cache | {k}))
        else:
            options.extend(best(i + 1, (cache - {v}) | {k}) for v in cache)
        return max(options)

    return best(0, frozenset())


def test_min_equals_exhaustive_search_on_tiny_sequences():
    rng = np.random.default_rng(2026)
    checked = 0
    for _ in range(300):
        seq = rng.integers(0, int(rng.integers(2, 6)), int(rng.integers(3, 11)))
        caps = np.arange(1, 4)
        got = belady_hit_rates(seq, caps) * seq.size
        ref = [_exhaustive(tuple(seq.tolist()), int(c)) for c in caps]
        np.testing.assert_allclose(got, ref, err_msg=str(seq.tolist()))
        checked += 1
    assert checked == 300


def test_min_by_hand_and_above_lru():
    # a b c a b c with 2 blocks: MIN keeps a and b and bypasses c (used last): 2 hits of 6
    assert belady_hit_rates(np.array([0, 1, 2, 0, 1, 2]), np.array([2]))[0] == pytest.approx(2 / 6)
    with pytest.raises(ValueError, match="capacities must be >= 1 block; got 0"):
        belady_hit_rates(np.array([0, 1]), np.array([0]))
    # on prefix-block traces the optimum bounds LRU's prefix hit rate at every capacity
    rng = np.random.default_rng(4)
    lengths = rng.integers(1, 6, 200)
    values = rng.integers(0, 4, int(lengths.sum()))
    caps = 2 ** np.arange(0, 8)
    lru = lru_hit_curve(prefix_distances(values, lengths), capacities=caps)["block_hit_rate"].to_numpy()
    opt = belady_hit_rates(access_keys(values, lengths), caps)
    assert np.all(opt >= lru - 1e-12) and np.any(opt > lru + 0.01)
