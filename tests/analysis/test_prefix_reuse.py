"""Prefix reuse (issue 15 item 1) against brute-force references on small cases: an infinite cache
as a set of seen prefix tuples, and an explicit LRU cache (OrderedDict) simulated once per
capacity with the documented access order (requests in order, each one's blocks last to first)."""
from __future__ import annotations

import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from servelab.analysis.exceptions import NotApplicableError
from servelab.analysis.prefix_reuse import (
    block_tokens,
    infinite_cache_hits,
    lru_hit_curve,
    prefix_distances,
    prefix_reuse,
    reuse_from_blocks,
    stack_distances,
)
from servelab.analysis.store import write_store

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_linking import build_prefix_trace  # noqa: E402


def _random_lists(rng, n=300):
    """Prompts drawn from a small tree of prefixes, so that sharing is frequent and varied."""
    lists = []
    for _ in range(n):
        if lists and rng.random() < 0.6:
            base = lists[int(rng.integers(len(lists)))]
            cut = int(rng.integers(0, len(base) + 1))
            lst = base[:cut] + [int(x) for x in rng.integers(0, 6, int(rng.integers(0, 4)))]
        else:
            lst = [int(x) for x in rng.integers(0, 6, int(rng.integers(1, 6)))]
        lists.append(lst or [int(rng.integers(0, 6))])
    return lists


def _flat(lists):
    return np.array([b for lst in lists for b in lst], dtype=np.int64), np.array([len(x) for x in lists])


def _brute_infinite(lists):
    seen, hits = set(), []
    for lst in lists:
        k = 0
        while k < len(lst) and tuple(lst[:k + 1]) in seen:
            k += 1
        hits += [True] * k + [False] * (len(lst) - k)
        seen.update(tuple(lst[:j + 1]) for j in range(len(lst)))
    return np.array(hits)


def _accesses(lists):
    """(request, position, block identity) in the documented access order."""
    return [(r, k, tuple(lst[:k + 1])) for r, lst in enumerate(lists) for k in range(len(lst) - 1, -1, -1)]


def _brute_stack(lists):
    acc = _accesses(lists)
    last: dict[tuple, int] = {}
    out = {}
    for i, (r, k, key) in enumerate(acc):
        out[(r, k)] = len({a[2] for a in acc[last[key] + 1:i]}) if key in last else -1
        last[key] = i
    return np.array([out[(r, k)] for r, lst in enumerate(lists) for k in range(len(lst))])


def _brute_lru_served(lists, capacity):
    """Blocks served per request: the leading run of blocks present when accessed."""
    cache: OrderedDict = OrderedDict()
    present = {}
    for r, k, key in _accesses(lists):
        present[(r, k)] = key in cache
        if key in cache:
            cache.move_to_end(key)
        else:
            cache[key] = None
            if len(cache) > capacity:
                cache.popitem(last=False)
    served = []
    for r, lst in enumerate(lists):
        run = True
        for k in range(len(lst)):
            run = run and present[(r, k)]
            served.append(run)
    return np.array(served)


def test_infinite_cache_and_stack_distances_match_brute_force(rng):
    lists = _random_lists(rng)
    values, lengths = _flat(lists)
    ref = _brute_infinite(lists)
    assert 0.3 < ref.mean() < 0.9  # the case exercises both hits and misses
    np.testing.assert_array_equal(infinite_cache_hits(values, lengths), ref)
    np.testing.assert_array_equal(stack_distances(values, lengths), _brute_stack(lists))


def test_lru_curve_matches_an_lru_simulation_at_every_capacity(rng):
    lists = _random_lists(rng)
    values, lengths = _flat(lists)
    dist = prefix_distances(values, lengths)
    n_distinct = len({tuple(lst[:k + 1]) for lst in lists for k in range(len(lst))})
    caps = np.array([1, 2, 3, 5, 8, 13, 21, 40, n_distinct])
    tokens = rng.integers(1, 513, values.size)
    curve = lru_hit_curve(dist, tokens=tokens, capacities=caps)
    for row in curve.iter_rows(named=True):
        served = _brute_lru_served(lists, row["capacity_blocks"])
        assert row["block_hit_rate"] == pytest.approx(served.mean(), abs=1e-12)
        assert row["token_hit_rate"] == pytest.approx(tokens[served].sum() / tokens.sum(), abs=1e-12)
    # a cache that holds every block is the infinite cache
    assert curve["block_hit_rate"][-1] == pytest.approx(_brute_infinite(lists).mean())
    assert (np.diff(curve["block_hit_rate"].to_numpy()) >= 0).all()
    with pytest.raises(ValueError, match="capacities must be >= 1 block; got 0"):
        lru_hit_curve(dist, capacities=np.array([0, 4]))


def test_block_tokens_and_reuse_tables(rng):
    lists = [[1, 2, 3], [1, 2, 4], [1, 2, 3, 9], [7]]
    values, lengths = _flat(lists)
    tin = np.array([1100, 1500, 1600, 100])
    np.testing.assert_array_equal(block_tokens(lengths, input_tokens=tin),
                                  [512, 512, 76, 512, 512, 476, 512, 512, 512, 64, 100])
    res = reuse_from_blocks(values, lengths, input_tokens=tin, timestamps=np.array([0.0, 10.0, 70.0, 80.0]),
                            clients=np.array(["a", "b", "a", None], dtype=object), window_s=60.0)
    # request 1 reuses [1, 2]; request 2 reuses [1, 2, 3]
    assert res.hit_blocks == 5 and res.n_blocks == 11
    assert res.hit_tokens == 512 * 2 + 512 * 2 + 512 and res.n_tokens == int(block_tokens(lengths, input_tokens=tin).sum())
    w = res.by_window.sort("window_start_s")
    assert w["window_start_s"].to_list() == [0.0, 60.0] and w["hit_blocks"].to_list() == [2, 3]
    c = res.by_client
    assert c.filter(pl.col("client_id") == "a")["hit_blocks"].item() == 3
    assert c.filter(pl.col("client_id").is_null())["blocks"].item() == 1
    assert res.reuse_distances["accesses"].sum() + res.n_cold == res.n_blocks
    with pytest.raises(ValueError, match="block_size must be a positive integer; got 0"):
        block_tokens(lengths, block_size=0)
    with pytest.raises(ValueError, match="window_s must be > 0 seconds; got 0"):
        reuse_from_blocks(values, lengths, window_s=0)


def test_store_entry_point_on_a_conversation_trace(tmp_path):
    frame, _, _ = build_prefix_trace(400, seed=9, clock_s=0.0, n_clients=10, span_s=3600.0)
    store = write_store(frame, tmp_path / "s")
    res = prefix_reuse(store, window_s=600.0)
    lists = frame["prefix_blocks"].to_list()
    assert res.hit_blocks == int(_brute_infinite(lists).sum())
    assert res.n_requests == frame.height and res.by_window["requests"].sum() == frame.height
    assert res.by_client["requests"].sum() == frame.height
    assert 0 < res.block_hit_rate < 1 and res.to_dict()["block_hit_rate"] == res.block_hit_rate
    bare = write_store(pl.DataFrame({"timestamp": [0.0]}), tmp_path / "b")
    with pytest.raises(NotApplicableError, match="no 'prefix_blocks' column"):
        prefix_reuse(bare)


def test_wavelet_count_and_previous_holders_match_brute_force(rng):
    from servelab.analysis.block_hashes import prefix_hashes
    from servelab.analysis.prefix_reuse import _weighted_count_below, block_state, previous_holders

    vals = rng.integers(0, 50, 400)
    w = rng.integers(1, 9, 400)
    end = rng.integers(0, 401, 300)
    below = rng.integers(0, 60, 300)
    ref = [int(w[:e][vals[:e] < b].sum()) for e, b in zip(end, below)]
    np.testing.assert_array_equal(_weighted_count_below(vals, w, end, below), ref)

    lists = _random_lists(rng)
    values, lengths = _flat(lists)
    prev, shared = previous_holders(prefix_hashes(values, lengths), lengths)
    holders = {}
    for r, lst in enumerate(lists):
        for k in range(len(lst)):
            holders.setdefault(tuple(lst[:k + 1]), []).append(r)
    ref_prev = [max([q for q in holders[tuple(lst[:k + 1])] if q < r], default=-1)
                for r, lst in enumerate(lists) for k in range(len(lst))]
    ref_shared = [len(holders[tuple(lst[:k + 1])]) > 1 for lst in lists for k in range(len(lst))]
    np.testing.assert_array_equal(prev, ref_prev)
    np.testing.assert_array_equal(shared, ref_shared)
    state = block_state(values, lengths)
    # runs: a few per request, never more than its blocks, and the hits are the warm blocks
    assert state.runs.length.sum() == values.size and state.runs.length.size < values.size
    np.testing.assert_array_equal(state.hits, _brute_infinite(lists))


def test_chunked_hashes_equal_the_whole(rng):
    from servelab.analysis.block_hashes import prefix_hashes
    from servelab.analysis.prefix_reuse import chunked_prefix_hashes

    lists = _random_lists(rng) + [[]] + _random_lists(rng, n=50)
    values, lengths = _flat(lists)
    for chunk in (1, 7, 64, 10**6):
        np.testing.assert_array_equal(chunked_prefix_hashes(values, lengths, chunk=chunk),
                                      prefix_hashes(values, lengths))
