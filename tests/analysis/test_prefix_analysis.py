"""The whole prefix analysis of a store (issue 15 item 1) against the pieces computed independently, and
the cluster-bootstrap intervals of the savings: coverage on simulated clusters of known ratio, seeds,
too few clusters, bad arguments."""
from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from servelab.analysis.exceptions import NotApplicableError
from servelab.analysis.prefix_analysis import analyse_prefixes, reference_capacity
from servelab.analysis.prefix_reuse import block_tokens, prefix_distances, reuse_from_blocks
from servelab.analysis.prefix_savings import (
    MIN_CLUSTERS,
    bootstrap_ratio,
    bootstrap_ratios,
    request_clusters,
    saving_estimate,
)
from servelab.analysis.store import write_store


def _store(tmp_path, rng, n=600, n_clients=30):
    """System prompt [1, 2] for all, a template per client, a unique tail."""
    clients = rng.integers(0, n_clients, n)
    lists = [[1, 2, 100 + int(c), 100 + int(c) * 7 + 5000, *rng.integers(10**6, 10**9, int(rng.integers(1, 5))).tolist()]
             for c in clients]
    frame = pl.DataFrame({"timestamp": np.sort(rng.uniform(0, 7200, n)),
                          "client_id": [f"c{c}" for c in clients],
                          "input_tokens": [512 * (len(x) - 1) + int(rng.integers(1, 513)) for x in lists],
                          "prefix_blocks": lists})
    return write_store(frame, tmp_path / "s"), frame


def test_store_analysis_matches_the_pieces(tmp_path, rng):
    store, frame = _store(tmp_path, rng)
    res = analyse_prefixes(store, window_s=1800.0, n_boot=99, seed=3)
    lists = frame["prefix_blocks"].to_list()
    values = np.array([b for x in lists for b in x])
    lengths = np.array([len(x) for x in lists])
    tin = frame["input_tokens"].to_numpy()
    ref = reuse_from_blocks(values, lengths, input_tokens=tin, timestamps=frame["timestamp"].to_numpy(),
                            clients=frame["client_id"], window_s=1800.0)
    assert res.reuse.to_dict() == ref.to_dict()
    assert res.reuse.lru.equals(ref.lru) and res.reuse.by_client.equals(ref.by_client)
    # the savings: an infinite cache, and LRU at the reference capacity counted from per-block distances
    tokens = block_tokens(lengths, input_tokens=tin)
    assert res.infinite.value == pytest.approx(ref.token_hit_rate, abs=1e-12)
    assert res.n_distinct_blocks == ref.n_cold
    assert res.reference_capacity == reference_capacity(ref.n_cold) == round(0.1 * ref.n_cold)
    d = prefix_distances(values, lengths)
    served = d < res.reference_capacity
    assert res.at_reference.value == pytest.approx(tokens[served].sum() / tokens.sum(), abs=1e-12)
    assert res.kept.value == pytest.approx(tokens[served].sum() / ref.hit_tokens, abs=1e-12)
    for est in (res.infinite, res.at_reference, res.kept):
        assert est.low <= est.value <= est.high and est.clusters == "client" and est.n_clusters == 30
    # sources: every hit is the shared system prompt or a client's template (no links, no repeats)
    table = res.sources.table
    assert table["block_share"].sum() == pytest.approx(ref.block_hit_rate, abs=1e-12)
    by = dict(zip(table["source"], table["hit_blocks"]))
    assert by["system"] == 2 * (frame.height - 1)
    assert by["template"] == ref.hit_blocks - by["system"] and by["other"] == 0
    assert res.to_dict()["sources"]["template_block_share"] == pytest.approx(by["template"] / values.size)
    # the same seed gives the same intervals; another seed other ones
    again = analyse_prefixes(store, window_s=1800.0, n_boot=99, seed=3)
    assert again.infinite == res.infinite
    assert analyse_prefixes(store, window_s=1800.0, n_boot=99, seed=4).infinite.low != res.infinite.low
    with pytest.raises(ValueError, match="reference capacity must be a positive number of blocks; got 0"):
        analyse_prefixes(store, reference=0)
    bare = write_store(pl.DataFrame({"timestamp": [0.0, 1.0]}), tmp_path / "bare")
    with pytest.raises(NotApplicableError, match="no 'prefix_blocks' column"):
        analyse_prefixes(bare)


def test_bootstrap_interval_covers_a_known_ratio(rng):
    """Clusters of known mean ratio 0.3: the 90% interval covers it in about 90% of 200 traces
    (binomial SE 2.1 points; the percentile bootstrap runs a little narrow at 40 clusters)."""
    covered = 0
    for i in range(200):
        den = rng.gamma(2.0, 500.0, 40)
        num = rng.binomial(den.astype(np.int64), 0.3)
        lo, hi = bootstrap_ratio(num, den.astype(np.int64), n_boot=199, seed=i, level=0.9)
        covered += lo <= 0.3 <= hi
    assert 0.82 <= covered / 200 <= 0.96


def test_bootstrap_needs_clusters_and_checks_arguments():
    assert all(math.isnan(x) for x in bootstrap_ratio(np.ones(MIN_CLUSTERS - 1), np.ones(MIN_CLUSTERS - 1),
                                                      n_boot=9, seed=0))
    with pytest.raises(ValueError, match="n_boot must be a positive integer; got 0"):
        bootstrap_ratio(np.ones(30), np.ones(30), n_boot=0, seed=0)
    with pytest.raises(ValueError, match="level must be in \\(0, 1\\); got 1.5"):
        bootstrap_ratio(np.ones(30), np.ones(30), n_boot=9, seed=0, level=1.5)
    # several ratios on the same resamples: each equals its own call with the same seed
    g = np.random.default_rng(2)
    a, b, c = g.gamma(2.0, 10.0, 30), g.gamma(2.0, 10.0, 30), g.gamma(2.0, 10.0, 30)
    assert bootstrap_ratios([(a, b), (c, a)], n_boot=49, seed=5) == [
        bootstrap_ratio(a, b, n_boot=49, seed=5), bootstrap_ratio(c, a, n_boot=49, seed=5)]
    with pytest.raises(ValueError, match=r"one value per cluster; got sizes \[29, 30\]"):
        bootstrap_ratios([(a, b), (a[:29], b[:29])], n_boot=9, seed=0)
    # a share's parameter space: an estimated numerator above its denominator is clipped to 1
    over = saving_estimate(np.full(30, 3.0), np.full(30, 2.0), what="x", clusters="client", n_boot=9, seed=0,
                           bounds=(0.0, 1.0))
    assert (over.value, over.low, over.high) == (1.0, 1.0, 1.0)
    free = saving_estimate(np.full(30, 3.0), np.full(30, 2.0), what="x", clusters="client", n_boot=9, seed=0)
    assert free.value == pytest.approx(1.5) and free.high == pytest.approx(1.5)
    with pytest.raises(ValueError, match=r"bounds must be \(low, high\) with low < high; got \(1.0, 0.0\)"):
        saving_estimate(np.ones(30), np.ones(30), what="x", clusters="client", n_boot=9, seed=0, bounds=(1.0, 0.0))
    # few clients: contiguous time slices instead
    ids, kind = request_clusters(100, client_codes=np.zeros(100, dtype=np.int64))
    assert kind == "time slice" and np.unique(ids).size == 50 and (np.diff(ids) >= 0).all()
    with pytest.raises(ValueError, match="share must be in \\(0, 1\\]; got 0"):
        reference_capacity(10, share=0)
