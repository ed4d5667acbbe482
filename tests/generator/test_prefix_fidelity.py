"""``compare``'s prefix-cache metrics (analysis/prefix_fidelity.py) against brute-force counts."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from _prefix_trace import brute_infinite, brute_lru, build_trace
from click.testing import CliRunner
from scipy import stats

from servelab.analysis.fidelity import compare
from servelab.analysis.prefix_fidelity import curve_capacities, load_blocks, prefix_fidelity
from servelab.analysis.prefix_reuse import prefix_distances
from servelab.analysis.store import write_store


def _brute_stack_distances(lists) -> list[int]:
    """Stack distance of every re-access (requests in order, each one's blocks last to first),
    with a plain Python list as the LRU stack."""
    stack, out = [], []
    for blocks in lists:
        key, keys = None, []
        for b in blocks:
            key = hash((key, b))
            keys.append(key)
        for k in reversed(keys):
            if k in stack:
                i = stack.index(k)
                out.append(len(stack) - 1 - i)
                del stack[i]
            stack.append(k)
    return out


@pytest.fixture(scope="module")
def pair():
    """A small reference and a candidate of the same construction with another seed (15 first turns
    per client: the brute-force stack distances below are quadratic in the blocks)."""
    ref = build_trace(15, seed=1, span_s=900.0).drop("structure")
    cand = build_trace(15, seed=2, span_s=900.0).drop("structure")
    return ref, cand


def test_metrics_match_brute_force(pair):
    ref, cand = pair
    res = prefix_fidelity(ref, cand)
    lr, lc = ref["prefix_blocks"].to_list(), cand["prefix_blocks"].to_list()
    assert res.reference_hit_rate == pytest.approx(brute_infinite(lr), abs=1e-12)
    assert res.candidate_hit_rate == pytest.approx(brute_infinite(lc), abs=1e-12)
    caps = curve_capacities(prefix_distances(*load_blocks(ref)), prefix_distances(*load_blocks(cand)))
    br, bc = brute_lru(lr, caps), brute_lru(lc, caps)
    diffs = {c: abs(br[c] - bc[c]) for c in br}
    assert res.curve_distance == pytest.approx(max(diffs.values()), abs=1e-12)
    assert diffs[res.worst_capacity] == pytest.approx(res.curve_distance, abs=1e-12)
    # the last capacity serves every reusable block: the curve's end is the infinite-cache level
    assert br[int(caps[-1])] == pytest.approx(res.reference_hit_rate, abs=1e-12)
    ks = stats.ks_2samp(_brute_stack_distances(lr), _brute_stack_distances(lc)).statistic
    assert res.reuse_distance_ks == pytest.approx(ks, abs=1e-12)
    assert 0 < res.curve_distance < 0.2 and 0 < res.reuse_distance_ks < 1


def test_null_and_positive_controls(pair):
    ref, _ = pair
    same = prefix_fidelity(ref, ref)
    assert same.curve_distance == 0.0 and same.reuse_distance_ks == 0.0
    # every block fresh: no hit at any capacity, so the distance is the reference's top hit rate
    lengths = ref["prefix_blocks"].list.len()
    fresh = ref.with_columns(pl.int_ranges(0, lengths).alias("prefix_blocks")).with_columns(
        (pl.col("prefix_blocks") + pl.int_range(pl.len()) * 1000))
    res = prefix_fidelity(ref, fresh)
    assert res.candidate_hit_rate == 0.0
    assert res.curve_distance == pytest.approx(res.reference_hit_rate, abs=1e-12)
    assert np.isnan(res.reuse_distance_ks)


def test_compare_table_and_cli(pair, tmp_path):
    ref, cand = pair
    write_store(ref, tmp_path / "ref")
    cand.write_parquet(tmp_path / "cand.parquet")
    table = compare(tmp_path / "ref", [tmp_path / "cand.parquet", cand.drop("prefix_blocks")], names=["gen", "bare"])
    rows = table.filter(pl.col("metric").str.starts_with("prefix_") | (pl.col("metric") == "reuse_distance_ks"))
    assert rows["metric"].to_list() == ["prefix_hit_rate", "prefix_lru_curve_distance", "reuse_distance_ks"]
    assert rows["kind"].to_list() == ["value", "distance", "distance"]
    res = prefix_fidelity(ref, cand)
    assert rows["gen"].to_list() == pytest.approx([res.candidate_hit_rate, res.curve_distance, res.reuse_distance_ks])
    assert rows["bare"].is_nan().all()
    # a reference without blocks: the table is the one it always was
    plain = compare(ref.drop("prefix_blocks"), [cand], names=["gen"])
    assert "prefix_hit_rate" not in plain["metric"].to_list()
    from servelab.cli import main

    out = CliRunner().invoke(main, ["compare", str(tmp_path / "ref"), str(tmp_path / "cand.parquet")])
    assert out.exit_code == 0, out.output
    assert "prefix_lru_curve_distance" in out.output
