"""The sampled prefix analysis (analysis/prefix_sampled.py): exact counts equal the exact analysis',
the sampled LRU curve stays within its stated tolerance, and analyse_prefixes switches on block counts."""
from __future__ import annotations

import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from servelab.analysis.budget import Budget
from servelab.analysis.prefix_analysis import analyse_prefixes, count_blocks
from servelab.analysis.prefix_sampled import (
    SAMPLED_CURVE_TOLERANCE,
    analyse_prefixes_sampled,
    first_and_unique,
    flat_stack_distances,
)
from servelab.analysis.store import write_store

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_prefixes import build_prefix_frame  # noqa: E402


def _brute_stack(seq) -> list[int]:
    """LRU stack distances by an explicit recency list (a test reference)."""
    stack: OrderedDict = OrderedDict()
    out = []
    for k in seq:
        if k in stack:
            keys = list(stack.keys())
            out.append(len(keys) - 1 - keys.index(k))
            stack.move_to_end(k)
        else:
            out.append(-1)
            stack[k] = True
    return out


def test_flat_stack_distances_match_a_recency_list():
    rng = np.random.default_rng(8)
    for _ in range(50):
        seq = rng.integers(0, int(rng.integers(2, 30)), int(rng.integers(1, 200)))
        np.testing.assert_array_equal(flat_stack_distances(seq), _brute_stack(seq.tolist()))


def _first_and_unique_by_dict(keys: list[int]) -> tuple[list[int], list[int]]:
    first, count = {}, {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
        count[k] = count.get(k, 0) + 1
    return sorted(first.values()), sorted(first[k] for k, c in count.items() if c == 1)


def test_first_and_unique_match_a_dictionary_and_survive_cut_collisions():
    rng = np.random.default_rng(15)
    for trial in range(40):
        n = int(rng.integers(1, 3000))
        if trial % 2:  # keys that differ only in their lowest 6 bits: with n > 64 positions the packed
            # sort's cut merges them, so the check must send the partition to the argsort path
            distinct = (np.uint64(0xABC) << np.uint64(52)) | rng.integers(0, 64, 50).astype(np.uint64)
        else:  # a partition's keys: shared top 8 bits, random below
            distinct = (np.uint64(0x5A) << np.uint64(56)) | rng.integers(0, 2**56, 50).astype(np.uint64)
        keys = distinct[rng.integers(0, distinct.size, n)]
        first, once = first_and_unique(keys, 8 if trial % 2 == 0 else 0)
        want_first, want_once = _first_and_unique_by_dict(keys.tolist())
        np.testing.assert_array_equal(np.sort(first), want_first)
        np.testing.assert_array_equal(np.sort(once), want_once)
    empty = first_and_unique(np.zeros(0, dtype=np.uint64))
    assert empty[0].size == 0 and empty[1].size == 0


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    # 20,000 requests of about 20 blocks: ~400k blocks, sampled below at 40k accesses
    frame = build_prefix_frame(20_000, seed=3, n_clients=300, span_s=3600.0)
    return write_store(frame, tmp_path_factory.mktemp("sampled") / "store")


def test_counts_are_exact_and_the_curve_within_tolerance(store):
    exact = analyse_prefixes(store, sources=False, n_boot=30, exact=True)
    caps = exact.reuse.lru["capacity_blocks"].to_numpy()
    samp = analyse_prefixes(store, sources=False, n_boot=30, exact=False, sample_blocks=40_000, capacities=caps)
    assert samp.sources is None and samp.notes[0].startswith("sampled analysis")
    for name in ("n_requests", "n_blocks", "n_tokens", "hit_blocks", "hit_tokens", "n_cold"):
        assert getattr(samp.reuse, name) == getattr(exact.reuse, name), name
    assert samp.reuse.by_window.equals(exact.reuse.by_window)
    assert samp.reuse.by_client.equals(exact.reuse.by_client)
    assert samp.sharing.quantiles.equals(exact.sharing.quantiles) and samp.sharing.histogram.equals(exact.sharing.histogram)
    assert samp.n_distinct_blocks == exact.n_distinct_blocks and samp.reference_capacity == exact.reference_capacity
    assert (samp.infinite.value, samp.infinite.low, samp.infinite.high) == (
        exact.infinite.value, exact.infinite.low, exact.infinite.high)
    # the curve: a 10 % sample, within the stated tolerance at every capacity
    j = exact.reuse.lru.join(samp.reuse.lru, on="capacity_blocks", suffix="_s")
    assert j.height == exact.reuse.lru.height
    err = (j["block_hit_rate"] - j["block_hit_rate_s"]).abs().max()
    assert err <= SAMPLED_CURVE_TOLERANCE
    assert abs(samp.at_reference.value - exact.at_reference.value) <= SAMPLED_CURVE_TOLERANCE
    # no request keeps more than its infinite hit: on the same resamples (same seed, same clusters)
    # the LRU saving's interval ends are at most the infinite saving's, and the kept share's lie in [0, 1]
    assert samp.at_reference.low <= samp.infinite.low + 1e-12 and samp.at_reference.high <= samp.infinite.high + 1e-12
    assert 0.0 <= samp.kept.low <= samp.kept.value <= samp.kept.high <= 1.0


def test_switch_on_block_count_and_errors(store):
    n = count_blocks(store)
    lengths = pl.read_parquet(store.requests_path, columns=["prefix_blocks"])["prefix_blocks"].list.len().sum()
    assert n == lengths
    small = analyse_prefixes(store, sources=False, n_boot=10, exact_max_blocks=n - 1, sample_blocks=40_000)
    assert small.notes[0].startswith("sampled analysis")
    full = analyse_prefixes(store, sources=False, n_boot=10, exact_max_blocks=n)
    assert not any(note.startswith("sampled analysis") for note in full.notes)
    with pytest.raises(ValueError, match="exact must be None, True or False; got 'yes'"):
        analyse_prefixes(store, exact="yes")
    with pytest.raises(ValueError, match="sample_blocks must be an integer >= 1000; got 10"):
        analyse_prefixes_sampled(store, sample_blocks=10)
    with pytest.raises(ValueError, match="Budget.prefix_sample_blocks must be a positive integer; got 0"):
        Budget(prefix_sample_blocks=0)


def test_unsorted_store_is_refused(tmp_path):
    import pyarrow.parquet as pq

    frame = build_prefix_frame(200, seed=1, n_clients=10, span_s=600.0)
    st = write_store(frame, tmp_path / "s")
    table = pq.read_table(st.requests_path)
    pq.write_table(table.take(np.arange(table.num_rows)[::-1]), st.requests_path)
    with pytest.raises(ValueError, match="must be request_id order"):
        analyse_prefixes_sampled(st)


def test_cli_sampled_flag(store, tmp_path):
    from servelab.cli import main

    out = CliRunner().invoke(main, ["prefixes", str(store.path), "--sampled", "--no-sources", "-o",
                                    str(tmp_path / "o"), "--rows", "2"])
    assert out.exit_code == 0, out.output
    assert "sampled analysis" in (tmp_path / "o" / "prefixes.json").read_text()
