"""Prefix reuse on the shipped samples with block hashes (issue 15 item 5, analysis half): the Bailian
ingest sample counted by hand, and the Mooncake sample against independent counts (prefixes as
tuples; AIPerf's per-request "theoretical hit rate" rule re-implemented in plain Python)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from servelab.analysis.ingest import ingest
from servelab.analysis.prefix_analysis import analyse_prefixes
from servelab.analysis.prefix_reuse import block_state, read_blocks


def test_bailian_sample_counted_by_hand(tmp_path, raw_traces):
    store = ingest([raw_traces.parent / "tests" / "data" / "ingest" / "bailian.jsonl"], fmt="bailian",
                   output=tmp_path / "b")
    res = analyse_prefixes(store, capacities=np.array([3, 4, 5, 7, 8]), n_boot=9)
    # [1,2] [7,8] [1,2,3] [1,2,3,4] [40] [7,8,9]: turns 3, 4 and 6 reuse 2, 3 and 2 blocks
    assert (res.reuse.n_blocks, res.reuse.hit_blocks) == (15, 7)
    # stack distances (each request's blocks last to first): 4, 4 (turn 2); 3, 3, 3 (turn 3);
    # 7, 7 (the search follow-up, after 1, 2, 3, 4, 40 and its own new block 9)
    assert res.reuse.lru["block_hit_rate"].to_list() == pytest.approx([0, 3 / 15, 5 / 15, 5 / 15, 7 / 15])
    # linked by the trace's parent ids: every hit is conversation history
    shares = dict(zip(res.sources.table["source"], res.sources.table["hit_blocks"]))
    assert shares == {"system": 0, "template": 0, "conversation": 7, "other": 0}


def _aiperf_rule(lists):
    """AIPerf 0.13 ``PrefixAnalyzer._compute_per_request_hit_rates``: per request, the share of its
    hash ids before the first id never seen before (raw ids, a set of every earlier id)."""
    seen, rates = set(), []
    for ids in lists:
        if not ids:
            continue
        k = next((i for i, h in enumerate(ids) if h not in seen), len(ids))
        rates.append(k / len(ids))
        seen.update(ids)
    return rates


def test_mooncake_sample_against_independent_counts(tmp_path, raw_traces):
    path = raw_traces / "mooncake" / "synthetic_trace.jsonl"
    lists = [json.loads(line)["hash_ids"] for line in path.read_text().splitlines() if line.strip()]
    store = ingest([path], fmt="mooncake", output=tmp_path / "m")
    res = analyse_prefixes(store, n_boot=9)
    seen, hits, blocks = set(), 0, 0
    for ids in lists:
        k = 0
        while k < len(ids) and tuple(ids[:k + 1]) in seen:
            k += 1
        hits, blocks = hits + k, blocks + len(ids)
        seen.update(tuple(ids[:j + 1]) for j in range(len(ids)))
    assert (res.reuse.hit_blocks, res.reuse.n_blocks) == (hits, blocks) == (77_953, 121_877)
    assert res.n_distinct_blocks == len(seen) == 43_924  # AIPerf's "unique prefixes"
    # AIPerf's headline is the unweighted mean of per-request rates: the same hits, weighted per request
    tb = read_blocks(store)
    state = block_state(tb.values, tb.lengths)
    req = np.repeat(np.arange(tb.lengths.size), tb.lengths)
    per_request = np.bincount(req, weights=state.hits)[tb.lengths > 0] / tb.lengths[tb.lengths > 0]
    assert per_request.mean() == pytest.approx(np.mean(_aiperf_rule(lists)), abs=1e-12)
    assert per_request.mean() == pytest.approx(0.4232353, abs=1e-7)
    assert res.reuse.block_hit_rate == pytest.approx(0.6396039, abs=1e-7)
