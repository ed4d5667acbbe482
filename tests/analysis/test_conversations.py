"""Conversation linking by each rule, bad links, per-conversation statistics and upsampling.

Expected links are known by construction (fixtures build conversations turn by turn) or come from
an independent pure-Python reference (tuple prefixes in a dict, no hashing).
"""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from servelab.analysis.conversations import (
    available_link_rules,
    conversation_table,
    infer_parents_from_blocks,
    interval_stats_by_turns,
    itt_values,
    link_conversations,
    links_from_parents,
    prefix_hashes,
    turn_distribution,
)
from servelab.analysis.exceptions import NotApplicableError
from servelab.analysis.store import write_store
from servelab.analysis.upsampling import (
    upsample_multiturn,
    upsampling_burstiness,
    window_cv,
)

BLOCK = 512


class _Blocks:
    """Hands out fresh block ids and builds Mooncake-style prompts: full blocks + a partial last."""

    def __init__(self):
        self.next = 1000

    def new(self, n):
        out = list(range(self.next, self.next + n))
        self.next += n
        return out


def _conversation(ids: _Blocks, rng, turns: int, t0: float, itt: float):
    """One conversation: each turn's prompt = previous prompt + answer + new message.

    Token lengths are tracked so that the earlier turn's last block is partial and changes when
    the follow-up fills it. Returns lists of (timestamp, blocks, input, output).
    """
    full: list[int] = []  # ids of completed blocks of the context so far
    tokens = 0
    rows = []
    t = t0
    for _ in range(turns):
        new_msg = int(rng.integers(600, 1500))  # >= 1 full block: a one-block prompt shares nothing
        tokens += new_msg
        n_full, rem = divmod(tokens, BLOCK)
        full = full + ids.new(n_full - len(full))
        blocks = full + (ids.new(1) if rem else [])  # a partial last block gets a fresh id
        out = int(rng.integers(50, 900))
        rows.append((t, list(blocks), tokens, out))
        tokens += out
        n_full, _ = divmod(tokens, BLOCK)
        full = full + ids.new(n_full - len(full))
        t += itt * float(rng.exponential())
    return rows


def _store_from_rows(rows, path, **extra_cols):
    rows = sorted(rows, key=lambda r: r[0])
    frame = pl.DataFrame({
        "timestamp": [r[0] for r in rows],
        "prefix_blocks": [r[1] for r in rows],
        "input_tokens": [r[2] for r in rows],
        "output_tokens": [r[3] for r in rows],
    }, schema={"timestamp": pl.Float64, "prefix_blocks": pl.List(pl.Int64), "input_tokens": pl.Int64,
               "output_tokens": pl.Int64})
    return write_store(frame, path), rows


def _reference_parents(blocks, inputs=None, outputs=None, *, min_continuations=None, timestamps=None, min_itt=0.0):
    """Pure-Python reference of the documented rule (tuple keys, no hashing).

    ``min_continuations``: a shared prefix that later requests continue with at least this many
    distinct next blocks is common and makes no link (None: servelab's earlier rule, no check).
    ``timestamps``: a link needs ``t_j - t_i > min_itt``.
    """
    nexts: dict[tuple, set] = {}
    for b in blocks:
        for k in range(1, len(b)):
            nexts.setdefault(tuple(b[:k]), set()).add(b[k])
    by_key: dict[tuple, list[int]] = {}
    parent = []
    for j, b in enumerate(blocks):
        found = -1
        for k in range(len(b) - 1, 0, -1):
            cands = by_key.get(tuple(b[:k]))
            if not cands:
                continue
            i = cands[-1]  # latest earlier request with this (L_i - 1)-block prefix
            if len(b) == len(blocks[i]) and b[-1] == blocks[i][-1]:
                continue
            if inputs is not None and inputs[j] < inputs[i] + outputs[i]:
                continue
            if min_continuations is not None and len(nexts[tuple(b[:k])]) >= min_continuations:
                continue
            if timestamps is not None and not timestamps[j] - timestamps[i] > min_itt:
                continue
            found = i
            break
        parent.append(found)
        if len(b) >= 2:
            by_key.setdefault(tuple(b[:-1]), []).append(j)
    return np.array(parent)


#: links of the default rule on the shipped Mooncake sample, by the pure-Python reference
#: (_reference_parents with min_continuations=8 and the sample's timestamps)
_MOONCAKE_DEFAULT_LINKS = 235
_OLD_RULE = {"common_min_continuations": None, "common_min_clients": None, "check_itt": False, "check_latency": False}


# ---------------------------------------------------------------------------------- hashing
def test_prefix_hashes_equal_exactly_for_equal_prefixes():
    lists = [[1, 2, 3], [1, 2, 4, 5], [2, 1], [1]]
    vals = np.array([b for lst in lists for b in lst])
    lens = np.array([len(lst) for lst in lists])
    h = prefix_hashes(vals, lens)
    off = np.cumsum(lens) - lens
    key = {}
    for r, lst in enumerate(lists):
        for k in range(1, len(lst) + 1):
            key.setdefault(tuple(lst[:k]), set()).add(int(h[off[r] + k - 1]))
    assert all(len(v) == 1 for v in key.values())  # equal prefixes -> one hash
    assert len({next(iter(v)) for v in key.values()}) == len(key)  # distinct prefixes -> distinct
    with pytest.raises(ValueError, match="lengths add up to"):
        prefix_hashes(vals[:-1], lens)


def test_hash_chain_with_partial_blocks_and_interleaving(rng, tmp_path):
    ids = _Blocks()
    rows, truth = [], []
    for c in range(40):
        conv = _conversation(ids, rng, turns=int(rng.integers(1, 6)), t0=float(rng.uniform(0, 3000)), itt=60.0)
        rows += conv
        truth += [(r[0], c) for r in conv]
    store, rows = _store_from_rows(rows, tmp_path / "chain")
    result = link_conversations(store)
    assert result.summary.rule == "prefix_blocks"
    conv_of = dict(truth)
    links = result.links.sort("request_id")
    true_conv = np.array([conv_of[t] for t in links["timestamp"].to_list()])
    # the inferred conversations are exactly the built ones (a partition match)
    pairs = set(zip(links["conversation"].to_list(), true_conv.tolist()))
    assert len(pairs) == len(set(true_conv.tolist())) == links["conversation"].n_unique()
    sizes = pl.DataFrame({"c": true_conv}).group_by("c").len()
    assert result.summary.n_linked == int(sizes.filter(pl.col("len") >= 2)["len"].sum())
    assert result.summary.n_multi_turn == sizes.filter(pl.col("len") >= 2).height
    ref = _reference_parents([r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows])
    got = links["parent"].fill_null(-1).to_numpy()
    np.testing.assert_array_equal(got, ref)


def test_mooncake_sample_matches_reference(raw_traces, tmp_path):
    lines = (raw_traces / "mooncake" / "synthetic_trace.jsonl").read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    rows = [(r["timestamp"] / 1000, r["hash_ids"], r["input_length"], r["output_length"]) for r in recs]
    store, rows = _store_from_rows(rows, tmp_path / "moon")
    blocks, tin, tout = [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows]
    # servelab's earlier rule (all new checks off) against the earlier reference
    old = link_conversations(store, **_OLD_RULE)
    ref_old = _reference_parents(blocks, tin, tout)
    np.testing.assert_array_equal(old.links.sort("request_id")["parent"].fill_null(-1).to_numpy(), ref_old)
    # the default rule on the same sample (ingested): test_ingested_mooncake_sample_links_like_the_reference
    assert int((ref_old >= 0).sum()) > _MOONCAKE_DEFAULT_LINKS


def test_branching_two_follow_ups_of_one_request(rng, tmp_path):
    ids = _Blocks()
    first = _conversation(ids, rng, turns=1, t0=0.0, itt=10.0)[0]
    _, blocks, tin, tout = first
    # both follow-ups carry the first prompt + answer, then different new messages
    ctx = tin + tout
    n_full = ctx // BLOCK
    shared = blocks[:-1] + ids.new(n_full - (len(blocks) - 1)) if tin % BLOCK else blocks + ids.new(n_full - len(blocks))
    a = (10.0, shared + ids.new(2), ctx + 700, 100)
    b = (20.0, shared + ids.new(3), ctx + 900, 100)
    store, _ = _store_from_rows([first, a, b], tmp_path / "branch")
    result = link_conversations(store)
    links = result.links.sort("request_id")
    assert links["parent"].to_list() == [None, 0, 0]
    assert result.summary.n_branching == 1 and result.summary.n_multi_turn == 1
    conv = result.conversations.filter(pl.col("turns") == 3).row(0, named=True)
    assert conv["depth"] == 2 and conv["duration_s"] == pytest.approx(20.0)


def test_conversations_cut_by_trace_start_and_end(rng, tmp_path):
    ids = _Blocks()
    conv = _conversation(ids, rng, turns=6, t0=100.0, itt=50.0)
    cut = conv[2:5]  # turns 1-2 before the trace, turn 6 after it
    store, _ = _store_from_rows(cut, tmp_path / "cut")
    result = link_conversations(store, edge_s=1.0)
    links = result.links.sort("request_id")
    assert links["parent"].to_list() == [None, 0, 1]  # the surviving turns still chain
    assert result.summary.n_left_censored == 1 and result.summary.n_right_censored == 1


def test_min_shared_blocks_and_rule_argument(tmp_path):
    frame = pl.DataFrame({"timestamp": [0.0, 1.0], "prefix_blocks": [[1, 2], [1, 3, 4]]})
    store = write_store(frame, tmp_path / "s")
    assert link_conversations(store).links["parent"].to_list() == [None, 0]
    assert link_conversations(store, min_shared_blocks=2).links["parent"].to_list() == [None, None]
    with pytest.raises(ValueError, match="min_shared_blocks must be >= 1"):
        infer_parents_from_blocks(np.array([1, 2]), np.array([2]), min_shared_blocks=0)
    with pytest.raises(ValueError, match="rule must be 'auto' or one of"):
        link_conversations(store, rule="magic")
    with pytest.raises(NotApplicableError, match="no 'parent_id' column"):
        link_conversations(store, rule="parent_id")


# ------------------------------------------------------------------------- explicit links
def test_parent_links_with_cycles_dangling_and_out_of_order(tmp_path):
    frame = pl.DataFrame({
        "timestamp": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
        # 0 <- 1 <- 2 ; 3 <-> 4 (2-cycle); 5 dangling; 6 self-loop; 7 first turn ("-1");
        # 8 points to 9, which arrives later (out of order); 9 is a first turn
        "parent_id": [None, "0", "1", "4", "3", "99", "6", "-1", "9", ""],
    })
    store = write_store(frame, tmp_path / "p")
    result = link_conversations(store)
    s = result.summary
    assert s.rule == "parent_id"
    assert s.n_cycle == 3 and s.n_dangling == 1 and s.n_out_of_order == 1
    links = result.links.sort("request_id")
    assert links["conversation"].to_list()[:3] == [0, 0, 0]
    assert links["turn"].to_list()[:3] == [1, 2, 3]
    assert links.filter(pl.col("cycle"))["request_id"].to_list() == [3, 4, 6]
    assert links.filter(pl.col("cycle"))["parent"].null_count() == 3
    ooo = links.filter(pl.col("request_id") == 8).row(0, named=True)
    assert ooo["out_of_order"] and ooo["itt_s"] is None and ooo["parent"] == 9
    assert any("cycle" in n for n in s.notes) and any("not in the trace" in n for n in s.notes)


def test_links_from_parents_deep_chain_and_cycle_terminates():
    n = 5000
    parent = np.arange(-1, n - 1)  # one chain 0 <- 1 <- ... <- n-1
    root, depth, cycle = links_from_parents(parent)
    assert (root == 0).all() and (depth == np.arange(n)).all() and not cycle.any()
    ring = np.roll(np.arange(n), 1)  # one big cycle
    root, depth, cycle = links_from_parents(ring)
    assert cycle.all() and (root == np.arange(n)).all()
    with pytest.raises(ValueError, match="parent indices must be -1 or in"):
        links_from_parents(np.array([5, -1]))


def test_conversation_id_rule_with_out_of_order_turns(tmp_path):
    frame = pl.DataFrame({
        "timestamp": [0.0, 10.0, 20.0, 30.0, 45.0, 50.0],
        "conversation_id": ["a", "a", "b", None, "a", "b"],
        "turn": [1, 3, 1, None, 2, 2],  # conversation a: turn 3 arrives before turn 2
    })
    store = write_store(frame, tmp_path / "c")
    result = link_conversations(store)
    s = result.summary
    assert s.rule == "conversation_id" and s.n_out_of_order == 1
    # the request without an id is not a one-turn conversation
    assert s.n_multi_turn == 2 and s.n_linked == 5 and s.n_conversations == 2
    assert turn_distribution(result.conversations)["conversations"].sum() == 2
    itts = sorted(itt_values(result.links).tolist())
    assert itts == [10.0, 30.0, 35.0]
    conv = result.conversations.sort("conversation")
    assert conv.filter(pl.col("conversation") == 0)["duration_s"][0] == 45.0


def test_no_link_information_is_not_applicable(tmp_path):
    bare = write_store(pl.DataFrame({"timestamp": [0.0, 1.0]}), tmp_path / "bare")
    with pytest.raises(NotApplicableError, match="no link information"):
        link_conversations(bare)
    empty = write_store(pl.DataFrame({"timestamp": [0.0, 1.0], "conversation_id": [None, None]},
                                     schema={"timestamp": pl.Float64, "conversation_id": pl.String}), tmp_path / "e")
    assert available_link_rules(empty) == ()
    with pytest.raises(NotApplicableError, match="no request carries a value"):
        link_conversations(empty)


# ------------------------------------------------------------------------------ statistics
def test_interval_stats_by_turns_match_numpy(rng, tmp_path):
    n_conv = 300
    turns = rng.integers(1, 7, n_conv)
    rows = []
    for c in range(n_conv):
        t = float(rng.uniform(0, 1e5)) + np.concatenate([[0.0], np.cumsum(rng.exponential(200.0, turns[c] - 1))])
        rows += [(float(x), f"c{c}") for x in t]
    frame = pl.DataFrame({"timestamp": [r[0] for r in rows], "conversation_id": [r[1] for r in rows]})
    store = write_store(frame, tmp_path / "i")
    result = link_conversations(store)
    stats = interval_stats_by_turns(result.links, result.conversations, deltas_s=(100.0, 500.0))
    itt = itt_values(result.links)
    q1, q3 = np.quantile(itt, [0.25, 0.75])
    upper = q3 + 1.5 * (q3 - q1)
    j = result.links.join(result.conversations.select("conversation", "turns"), on="conversation")
    for row in stats.iter_rows(named=True):
        sub = j.filter((pl.col("turns") == row["turns"]) & pl.col("itt_s").is_not_null())
        x = sub["itt_s"].to_numpy()
        assert row["conversations"] == sub["conversation"].n_unique() == int((turns == row["turns"]).sum())
        assert row["median_itt_s"] == pytest.approx(np.median(x))
        assert row["p90_itt_s"] == pytest.approx(np.quantile(x, 0.9))
        assert row["long_gt_100s"] == pytest.approx((x > 100).sum() / row["conversations"])
        assert row["long_gt_iqr"] == pytest.approx((x > upper).sum() / row["conversations"])
    assert stats["iqr_upper_s"][0] == pytest.approx(upper)
    dist = turn_distribution(result.conversations)
    np.testing.assert_array_equal(dist["conversations"].to_numpy(), np.bincount(turns)[1:][np.bincount(turns)[1:] > 0])
    with pytest.raises(ValueError, match="deltas_s must be positive"):
        interval_stats_by_turns(result.links, result.conversations, deltas_s=(0.0,))


def test_conversation_table_durations():
    links = pl.DataFrame({
        "request_id": [0, 1, 2], "timestamp": [0.0, 5.0, 9.0], "conversation": [0, 0, 2],
        "parent": [None, 0, None], "turn": [1, 2, 1], "itt_s": [None, 5.0, None],
        "dangling": [False, False, False], "cycle": [False] * 3, "out_of_order": [False] * 3,
    }, schema_overrides={"parent": pl.Int64, "itt_s": pl.Float64})
    t = conversation_table(links, edge_s=0.0)
    assert t["turns"].to_list() == [2, 1] and t["duration_s"].to_list() == [5.0, 0.0]



def test_conversation_table_statistics_match_numpy(rng):
    """Per-conversation counts, means, medians (odd and even ITT counts) and maxima against numpy,
    with one-request conversations and conversations whose only later turn has no ITT."""
    n_conv = 300
    size = rng.integers(1, 7, n_conv)
    conv = np.repeat(np.arange(n_conv) * 10, size)
    turn = np.arange(conv.size) - np.repeat(np.cumsum(size) - size, size) + 1
    itt = np.where(turn > 1, rng.lognormal(3.0, 2.0, conv.size), np.nan)
    itt[rng.random(conv.size) < 0.1] = np.nan  # out-of-order links have no ITT
    links = pl.DataFrame({
        "request_id": np.arange(conv.size), "timestamp": rng.uniform(0, 1e4, conv.size), "conversation": conv,
        "turn": turn, "itt_s": pl.Series(itt).fill_nan(None), "dangling": np.zeros(conv.size, dtype=bool),
    })
    t = conversation_table(links, edge_s=0.0)
    assert t.columns == ["conversation", "turns", "depth", "first_s", "last_s", "itt_count", "mean_itt_s",
                         "median_itt_s", "max_itt_s", "identified", "duration_s", "left_censored", "right_censored"]
    assert t["conversation"].to_list() == sorted(set(conv.tolist()))
    for c, row in zip(t["conversation"].to_list(), t.iter_rows(named=True)):
        vals = itt[(conv == c) & ~np.isnan(itt)]
        assert row["turns"] == int((conv == c).sum()) and row["itt_count"] == vals.size
        if vals.size:
            assert row["median_itt_s"] == pytest.approx(float(np.median(vals)), rel=1e-12)
            assert row["mean_itt_s"] == pytest.approx(float(vals.mean()), rel=1e-12)
            assert row["max_itt_s"] == vals.max()
        else:
            assert row["median_itt_s"] is None and row["mean_itt_s"] is None and row["max_itt_s"] is None
    assert (t["itt_count"] % 2 == 0).any() and (t["itt_count"] == 0).any() and (t["turns"] == 1).any()


# ------------------------------------------------------------------------------ upsampling
def _conversational_links(rng, n_conv=400, span=36_000.0, itt=100.0, singles=3000):
    rows = []
    starts = np.sort(rng.uniform(0, span * 0.9, n_conv))
    for c, s in enumerate(starts):
        k = int(rng.integers(2, 6))
        t = s + np.concatenate([[0.0], np.cumsum(rng.exponential(itt, k - 1))])
        rows += [(float(x), f"c{c}") for x in t]
    rows += [(float(x), None) for x in rng.uniform(0, span, singles)]
    frame = pl.DataFrame({"timestamp": [r[0] for r in rows], "conversation_id": [r[1] for r in rows]})
    return frame


def test_upsampling_keeps_itts_or_compresses_gaps(rng, tmp_path):
    store = write_store(_conversational_links(rng), tmp_path / "u")
    links = link_conversations(store).links
    multi = links.join(links.group_by("conversation").len().filter(pl.col("len") >= 2), on="conversation", how="semi")
    n, m = links.height, multi.height
    k = n / m
    naive = upsample_multiturn(links, method="naive")
    itt = upsample_multiturn(links, method="itt")
    # both reach the original size (within one copy's worth) and stay inside the span
    for arr in (naive, itt):
        assert abs(arr.size - n) <= m
        assert arr.min() >= links["timestamp"].min() and arr.max() <= links["timestamp"].max()
    # naive: the first copy's gaps are the multi-turn gaps divided by k
    t = np.sort(multi["timestamp"].to_numpy())
    first_copy = naive[: m - 5]
    np.testing.assert_allclose(np.diff(first_copy)[:100], np.diff(t)[:100] / k, rtol=1e-9, atol=1e-9)
    res = upsampling_burstiness(links, window_s=1800.0, min_gaps=20)
    assert res.n_multi_turn == m and res.factor == pytest.approx(k)
    # compressing whole conversations into short bursts makes arrivals burstier than keeping
    # their ITTs (ServeGen Fig. 16)
    assert res.median_cv_naive > res.median_cv_itt
    with pytest.raises(ValueError, match="method must be one of"):
        upsample_multiturn(links, method="fancy")
    with pytest.raises(ValueError, match="target_n must be at least"):
        upsample_multiturn(links, method="naive", target_n=1)


def test_itt_upsampling_keeps_each_conversations_turn_offsets(tmp_path):
    # one 3-turn conversation (t = 100, 150, 400) among 27 single requests over [0, 1000]:
    # k = 30 / 3 = 10 copies; copy c starts at 100 / 10 + 100 c and keeps offsets 0, 50, 300
    singles = np.linspace(0.0, 1000.0, 27)
    frame = pl.DataFrame({"timestamp": np.concatenate([[100.0, 150.0, 400.0], singles]),
                          "conversation_id": ["x"] * 3 + [None] * 27})
    links = link_conversations(write_store(frame, tmp_path / "one")).links
    got = upsample_multiturn(links, method="itt")
    starts = 10.0 + 100.0 * np.arange(10)
    expected = np.sort(np.mod((starts[:, None] + np.array([0.0, 50.0, 300.0])[None, :]).ravel(), 1000.0))
    np.testing.assert_allclose(got, expected, atol=1e-6)
    naive = upsample_multiturn(links, method="naive")
    expected_naive = np.sort((100.0 * np.arange(10)[:, None] + np.array([10.0, 15.0, 40.0])[None, :]).ravel())
    np.testing.assert_allclose(naive, expected_naive, atol=1e-6)


def test_upsampling_without_multi_turn_is_not_applicable(tmp_path):
    frame = pl.DataFrame({"timestamp": [0.0, 1.0, 2.0], "conversation_id": ["a", "b", "c"]})
    links = link_conversations(write_store(frame, tmp_path / "s")).links
    with pytest.raises(NotApplicableError, match="no multi-turn conversation"):
        upsample_multiturn(links, method="itt")
    with pytest.raises(ValueError, match="timestamps is empty"):
        window_cv(np.array([]), window_s=60.0)


# ------------------------------------------------------------------------ ingested formats
def test_bailian_store_links_by_derived_conversation_ids(tmp_path):
    """Bailian ingest keeps parent_chat_id as parent_id (not the rows' own chat ids) and derives
    conversation_id; conversations come from the ids, cut conversations count as dangling, and
    the parent rule refuses to guess."""
    from servelab.analysis.ingest import ingest

    recs = [  # conversation 100 -> 101 -> 102 and a branch 100 -> 103; 205's parent 204 is not in the trace
        {"chat_id": 100, "parent_chat_id": -1, "timestamp": 0.0, "turn": 1},
        {"chat_id": 101, "parent_chat_id": 100, "timestamp": 30.0, "turn": 2},
        {"chat_id": 205, "parent_chat_id": 204, "timestamp": 35.0, "turn": 3},
        {"chat_id": 103, "parent_chat_id": 100, "timestamp": 50.0, "turn": 2},
        {"chat_id": 102, "parent_chat_id": 101, "timestamp": 90.0, "turn": 3},
        {"chat_id": 300, "parent_chat_id": -1, "timestamp": 95.0, "turn": 1},
    ]
    src = tmp_path / "bailian.jsonl"
    src.write_text("\n".join(json.dumps({**r, "input_length": 10, "output_length": 5, "type": "text",
                                         "hash_ids": [1, r["chat_id"]]}) for r in recs) + "\n")
    store = ingest(src, fmt="bailian", output=tmp_path / "store", progress=False)
    result = link_conversations(store)
    s = result.summary
    assert s.rule == "conversation_id"
    assert s.n_multi_turn == 1 and s.n_linked == 4 and s.n_conversations == 3
    assert s.n_dangling == 1
    assert "parent_id" not in available_link_rules(store)
    with pytest.raises(NotApplicableError, match="Bailian store"):
        link_conversations(store, rule="parent_id")


def test_generated_parent_ids_are_request_ids(tmp_path):
    """The generator (and write_store frames) write parent_id as the parent's request_id."""
    frame = pl.DataFrame({"timestamp": [0.0, 5.0, 7.0, 20.0], "parent_id": [None, "0", None, "1"]})
    result = link_conversations(write_store(frame, tmp_path / "g"))
    assert result.links.sort("request_id")["conversation"].to_list() == [0, 0, 2, 0]
    assert sorted(itt_values(result.links).tolist()) == [5.0, 15.0]


def test_ingested_mooncake_sample_links_like_the_reference(raw_traces, tmp_path):
    """Through the real ingest (hash_ids -> prefix_blocks, ms -> s), the shipped sample links
    exactly as the pure-Python reference says."""
    from servelab.analysis.ingest import ingest

    path = raw_traces / "mooncake" / "synthetic_trace.jsonl"
    store = ingest(path, fmt="mooncake", output=tmp_path / "moon", progress=False)
    recs = sorted((json.loads(x) for x in path.read_text().splitlines()), key=lambda r: r["timestamp"])
    ref = _reference_parents([r["hash_ids"] for r in recs], [r["input_length"] for r in recs],
                             [r["output_length"] for r in recs], min_continuations=8,
                             timestamps=[r["timestamp"] / 1000 for r in recs])
    result = link_conversations(store)
    got = result.links.sort("request_id")["parent"].fill_null(-1).to_numpy()
    np.testing.assert_array_equal(got, ref)
    assert result.summary.rule == "prefix_blocks" and result.summary.n_with_parent == int((ref >= 0).sum())
    # this sample's arrivals are Poisson, logged in ms (ingest records the 1 ms precision: ITT > 0),
    # and it has prefixes that many requests continue in many ways (shared documents), which make
    # no link: fewer links than the earlier rule's (test_mooncake_sample_matches_reference)
    assert result.summary.clock_s == pytest.approx(1e-3, rel=1e-9)
    assert int((ref >= 0).sum()) == _MOONCAKE_DEFAULT_LINKS
    assert result.summary.n_rejected_common > 0 and result.summary.n_common_prefixes > 0
    assert (result.links["itt_s"].drop_nulls() > 0).all()
