"""Reuse sources and shared / unique tokens (issue 15 item 1) on traces of known construction: a system
prompt every client sends, per-client templates, growing conversations and a few repeated prompts,
checked against the construction and against a brute-force count of the documented definitions
(prefixes as tuples, holders as sets)."""
from __future__ import annotations

import numpy as np
import pytest
from servelab.analysis.block_hashes import prefix_hashes
from servelab.analysis.prefix_reuse import block_tokens, infinite_cache_hits
from servelab.analysis.prefix_sources import (
    SOURCES,
    classify_hits,
    request_sharing,
    reuse_sources,
)
from servelab.analysis.shared_prefixes import CommonPrefixRule


def build_trace(rng, *, n_clients=12, n_conversations=120, system=3, template=2, repeats=10):
    """Block lists with a known source for every block: (lists, clients, conversations, truth).

    Every prompt starts with the ``system`` blocks; half the clients add their own ``template``
    blocks; each conversation's turn repeats its earlier turn's blocks and adds 1-3 new ones; a
    few requests repeat an earlier prompt exactly under a new conversation (truth "other" for
    the blocks beyond the common prefixes).
    """
    next_id = [1000]

    def fresh(k):
        out = list(range(next_id[0], next_id[0] + k))
        next_id[0] += k
        return out

    sys_blocks = fresh(system)
    templates = {c: fresh(template) if c % 2 == 0 else [] for c in range(n_clients)}
    events = []  # (time, client, conversation, blocks, labels)
    for conv in range(n_conversations):
        client = conv % n_clients  # ten conversations each: a template has >= 8 continuations
        t = float(rng.uniform(0, 1000))
        base = sys_blocks + templates[client]
        labels = ["system"] * system + ["template"] * len(templates[client])
        history, hist_labels = [], []
        for _turn in range(int(rng.integers(1, 5))):
            new = fresh(int(rng.integers(1, 4)))
            blocks = base + history + new
            events.append((t, client, conv, blocks, labels + hist_labels + ["new"] * len(new)))
            history, hist_labels = history + new, hist_labels + ["conversation"] * len(new)
            t += float(rng.uniform(1, 50))
    events.sort(key=lambda e: e[0])
    for i in range(repeats):  # a retry of an earlier prompt under a new conversation id
        t, client, _, blocks, labels = events[5 + 7 * i]
        events.append((t + 0.5, client, n_conversations + i, blocks,
                       [lab if lab in ("system", "template") else "other" for lab in labels]))
    events.sort(key=lambda e: e[0])
    lists = [e[3] for e in events]
    return lists, np.array([e[1] for e in events]), np.array([e[2] for e in events]), [e[4] for e in events]


def _flat(lists):
    return np.array([b for lst in lists for b in lst], dtype=np.int64), np.array([len(x) for x in lists])


def _brute_sources(lists, clients, convs, rule):
    """The module docstring's definitions, literally, on tuples and sets."""
    holders: dict[tuple, set] = {}
    for r, lst in enumerate(lists):
        for k in range(len(lst)):
            holders.setdefault(tuple(lst[:k + 1]), set()).add(r)

    def common(prefix):
        cont = [r for r in holders[prefix] if len(lists[r]) > len(prefix)]
        nxt = {lists[r][len(prefix)] for r in cont}
        known = {clients[r] for r in cont if clients is not None and clients[r] >= 0}
        return ((rule.min_continuations is not None and len(nxt) >= rule.min_continuations)
                or (rule.min_clients is not None and clients is not None and len(known) >= rule.min_clients))

    out = []
    for r, lst in enumerate(lists):
        for k in range(len(lst)):
            key = tuple(lst[:k + 1])
            if not any(q < r for q in holders[key]):
                out.append(None)
                continue
            within = any(common(tuple(lst[:j + 1])) for j in range(k, len(lst)))
            if within:
                known = {clients[q] for q in holders[key] if clients[q] >= 0} if clients is not None else set()
                out.append("template" if clients is not None and len(known) == 1 else "system")
            elif convs is not None and any(q < r and convs[q] == convs[r] for q in holders[key]):
                out.append("conversation")
            else:
                out.append("other")
    return out


def _codes_as_names(codes):
    return [None if c == 0 else SOURCES[c - 1] for c in codes]


@pytest.mark.parametrize("with_clients", [True, False])
def test_sources_match_brute_force_and_construction(rng, with_clients):
    lists, clients, convs, truth = build_trace(rng)
    values, lengths = _flat(lists)
    keys = prefix_hashes(values, lengths)
    hits = infinite_cache_hits(values, lengths)
    rule = CommonPrefixRule()
    codes = classify_hits(keys, values, lengths, hits, clients=clients if with_clients else None,
                          conversations=convs, rule=rule)
    names = _codes_as_names(codes)
    assert names == _brute_sources(lists, clients if with_clients else None, convs, rule)
    # the construction: every hit block's source is the role it was built with
    flat_truth = [lab for labels in truth for lab in labels]
    for name, lab in zip(names, flat_truth):
        if name is not None:
            expected = lab if with_clients else ("system" if lab == "template" else lab)
            assert name == expected, (name, lab)
    counts = {s: names.count(s) for s in SOURCES}
    assert all(counts[s] > 20 for s in ("system", "conversation")) and counts["other"] > 0
    assert (counts["template"] > 20) if with_clients else counts["template"] == 0


def test_shares_add_up_to_the_hit_rate_overall_and_per_window(rng):
    lists, clients, convs, _ = build_trace(rng)
    values, lengths = _flat(lists)
    keys = prefix_hashes(values, lengths)
    hits = infinite_cache_hits(values, lengths)
    tin = np.array([512 * (len(x) - 1) + int(rng.integers(1, 513)) for x in lists])
    tokens = block_tokens(lengths, input_tokens=tin)
    codes = classify_hits(keys, values, lengths, hits, clients=clients, conversations=convs)
    ts = np.sort(rng.uniform(0, 1000, len(lists)))
    res = reuse_sources(codes, lengths, tokens, timestamps=ts, window_s=250.0, has_clients=True,
                        has_conversations=True)
    assert res.table["block_share"].sum() == pytest.approx(hits.mean(), abs=1e-12)
    assert res.table["token_share"].sum() == pytest.approx(tokens[hits].sum() / tokens.sum(), abs=1e-12)
    assert res.table["hit_blocks"].sum() == hits.sum()
    w = res.by_window
    assert w.height == 4 * len(SOURCES)
    req_win = np.floor(ts / 250.0) * 250.0
    block_win = np.repeat(req_win, lengths)
    for (start,), part in w.group_by("window_start_s"):
        inside = block_win == start
        assert part["block_share"].sum() == pytest.approx(hits[inside].mean(), abs=1e-12)
        assert part["hit_tokens"].sum() == tokens[inside & hits].sum()
    assert res.to_dict()["system_block_share"] == res.table["block_share"][0]
    with pytest.raises(ValueError, match="window_s must be > 0 seconds; got -1"):
        reuse_sources(codes, lengths, tokens, window_s=-1, has_clients=True, has_conversations=True)


def test_request_sharing_counts_blocks_other_requests_hold():
    # request 0 and 2 share [1, 2]; request 1 shares [1]; request 3 is alone
    lists = [[1, 2, 3], [1, 9], [1, 2, 4, 5], [7]]
    values, lengths = _flat(lists)
    keys = prefix_hashes(values, lengths)
    tokens = np.array([512, 512, 100, 512, 30, 512, 512, 512, 200, 64])
    res = request_sharing(keys, lengths, tokens)
    shared = [1024, 512, 1024, 0]
    total = [1124, 542, 1736, 64]
    assert res.shared_tokens == sum(shared) and res.unique_tokens == sum(total) - sum(shared)
    share = np.array(shared) / np.array(total)
    np.testing.assert_allclose(res.quantiles["shared_share"].to_numpy(), np.quantile(share, res.quantiles["quantile"]))
    assert res.histogram["requests"].sum() == 4 and res.histogram["requests"][0] == 1
    assert res.shared_share == pytest.approx(sum(shared) / sum(total))


def test_the_shared_prefilter_changes_nothing(rng):
    from servelab.analysis.prefix_reuse import block_state
    from servelab.analysis.prefix_sources import common_prefix_blocks

    lists, clients, _, _ = build_trace(rng)
    values, lengths = _flat(lists)
    state = block_state(values, lengths)
    for cl in (clients, None):
        plain = common_prefix_blocks(state.keys, values, lengths, clients=cl)
        assert plain.any()
        np.testing.assert_array_equal(
            common_prefix_blocks(state.keys, values, lengths, clients=cl, shared=state.shared), plain)
