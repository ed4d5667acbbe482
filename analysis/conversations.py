r"""Multi-turn conversations: link requests into conversations and describe them (ServeGen §5.2,
Finding 10, Fig. 15; BurstGPT KDD'25 §3.2, Fig. 9).

Link rules, in the order ``rule="auto"`` tries them (the first whose column holds any value):

``conversation_id``
    Explicit ids (BurstGPT ``Session ID``). Turns are the conversation's requests in arrival
    order; each turn's parent is the previous one. When the store also has ``turn``, a
    conversation whose given turn numbers disagree with arrival order is counted as out of order.
``parent_id``
    Parent links: ``parent_id`` holds the parent's ``request_id`` as text (as the generator and
    :func:`~servelab.analysis.store.write_store` frames write it); NULL, ``""`` and ``"-1"`` mark
    a first turn. Bailian stores are different: ingest keeps ``parent_chat_id`` as
    ``parent_id`` but not the rows' own chat ids, and derives ``conversation_id`` (the first
    turn's chat id) from the links, so they are linked by ``conversation_id``; there a first
    turn that names a parent is counted as dangling. A parent that is not in the trace is
    *dangling* (the conversation was cut by the trace's start, or the log lost it): the request
    starts a conversation and is counted. Links that form a cycle are found (pointer jumping
    with a depth bound, never an unbounded walk), counted, and their requests left unlinked.
    A child that arrives before its parent is counted as out of order (its ITT is negative and
    is left out of ITT statistics).
``prefix_blocks``
    Inferred from prompt block hashes (Mooncake / Bailian ``hash_ids``). A follow-up turn's
    prompt carries the earlier turn's prompt and answer, so its blocks extend the earlier
    request's blocks, except that the earlier request's last block may have been partial and
    then differs. Request *j* continues an earlier request *i* when
    ``blocks_j[:L_i - 1] == blocks_i[:L_i - 1]`` and ``L_j >= L_i``, *j* is not an identical
    copy of *i*, and (when the trace has token counts) ``input_j >= input_i + output_i``. For
    each shared-prefix length k, longest first, the candidate is the latest earlier request
    whose first ``L_i - 1 = k`` blocks are ``blocks_j[:k]``; the first candidate that passes the
    checks is the parent. Three more checks (each can be switched off; the link summary counts
    the candidates each one rejected) keep trace artifacts out of the links:

    - *shared prompt prefixes*: a candidate whose shared prefix ``blocks_j[:k]`` is common (a
      system prompt or template that many requests continue in many ways, or several clients
      continue: :class:`~servelab.analysis.shared_prefixes.CommonPrefixRule`) is rejected, so a
      link shares more than the longest common prefix both requests start with. Without it,
      every short request whose only full block is a shared system prompt becomes the parent
      of every later request;
    - *clock*: the ITT is at least one step of the trace's logging clock (two requests logged
      in one tick are not a reply to each other); the step is the caller's, the manifest's
      ``clock_s``, or estimated from the lattice of positive gaps;
    - *latency*: where ``latency_s`` is known, the follow-up arrives after its parent finished
      (within one clock step).

    Every prefix ``blocks[:k]`` is hashed once (a polynomial hash mod 2^64 over mixed block ids,
    computed for all requests at once with cumulative sums:
    :func:`~servelab.analysis.block_hashes.prefix_hashes`); a hash-set test keeps the prefixes
    that are some request's parent key, whose continuations and clients give the common
    prefixes, and a hash-grouped as-of join finds each candidate: O(B) expected for B blocks in
    all, never pairwise. Equal hashes of equal length are taken as equal prefixes (a false match
    has probability about 2^-64 per lookup).

In every rule a conversation is a tree (a request may have several follow-ups: branching), its
id is the ``request_id`` of its first request, ``turn`` is the depth in the tree plus one and the
inter-turn time (ITT) of a request is its arrival time minus its parent's.

This module must not import fitting, generator, figures or matplotlib. Its results are tables of
links and conversations, not the requests' contents.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import polars as pl
import pyarrow.compute as pc
from servelab.analysis.block_hashes import prefix_hashes
from servelab.analysis.exceptions import NotApplicableError
from servelab.analysis.shared_prefixes import (
    DEFAULT_MIN_CLIENTS,
    DEFAULT_MIN_CONTINUATIONS,
    CommonPrefixRule,
    client_codes,
)
from servelab.analysis.store import TraceStore

__all__ = [
    "DEFAULT_LONG_DELTAS_S",
    "LINK_RULES",
    "LinkOptions",
    "Conversations",
    "LinkSummary",
    "available_link_rules",
    "choose_link_rule",
    "conversation_table",
    "infer_parents_from_blocks",
    "interval_stats_by_turns",
    "itt_values",
    "link_conversations",
    "links_from_parents",
    "ParentLinks",
    "prefix_hashes",
    "turn_distribution",
]

#: link rules, in the order ``rule="auto"`` tries them
LINK_RULES = ("conversation_id", "parent_id", "prefix_blocks")

#: BurstGPT's "long interval" thresholds are not stated in the paper; these are ours (1 min,
#: 5 min, 30 min), beside the IQR upper bound that the paper does state
DEFAULT_LONG_DELTAS_S = (60.0, 300.0, 1800.0)

_ANALYSIS = "conversation analysis"
_NO_PARENT = ("", "-1")


@dataclass(frozen=True)
class LinkSummary:
    """How requests were linked into conversations.

    Attributes
    ----------
    rule : str
        The link rule used (one of :data:`LINK_RULES`).
    n_requests : int
        Requests in the trace.
    n_linked : int
        Requests in a conversation of two or more turns.
    n_with_parent : int
        Requests linked to an earlier turn (every linked request but each conversation's first).
    n_conversations, n_multi_turn : int
        Conversations (one-turn ones included; requests without link information, e.g. without
        a conversation id, are not counted) and those with two or more turns.
    n_branching : int
        Requests with two or more follow-ups.
    n_dangling : int
        Requests whose explicit parent is not in the trace.
    n_cycle : int
        Requests on (or leading into) a cycle of explicit parent links; left unlinked.
    n_out_of_order : int
        Links whose child arrives before its parent (``parent_id``), or conversations whose
        given turn numbers disagree with arrival order (``conversation_id`` with ``turn``).
    n_left_censored, n_right_censored : int
        Multi-turn conversations that may be cut by the trace's start (a dangling first turn,
        or a first turn within ``edge_s`` of the start) or end (last turn within ``edge_s``).
    edge_s : float
        Edge used for censoring (default: the 90th percentile of ITTs).
    clock_s : float
        ``prefix_blocks``: the timestamps' clock step the links were checked against (0: a fine
        clock; NaN: not checked or another rule).
    n_common_prefixes : int
        ``prefix_blocks``: common prefixes (system prompts, templates) among the parents' shared
        prefixes.
    n_rejected_common, n_rejected_itt, n_rejected_latency : int
        ``prefix_blocks``: candidate links (child, latest earlier request with a shared prefix)
        tried before the accepted one, or all when none was accepted, that were rejected, each
        counted under the first check it failed in this order: the shared prefix is common; the
        ITT is under one clock step; the child arrived before the parent finished.
    notes : tuple of str
        What was done (e.g. identical prompts not linked, cycles dropped).
    """

    rule: str
    n_requests: int
    n_linked: int
    n_with_parent: int
    n_conversations: int
    n_multi_turn: int
    n_branching: int = 0
    n_dangling: int = 0
    n_cycle: int = 0
    n_out_of_order: int = 0
    n_left_censored: int = 0
    n_right_censored: int = 0
    edge_s: float = float("nan")
    clock_s: float = float("nan")
    n_common_prefixes: int = 0
    n_rejected_common: int = 0
    n_rejected_itt: int = 0
    n_rejected_latency: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def linked_share(self) -> float:
        """Share of requests in multi-turn conversations."""
        return self.n_linked / self.n_requests if self.n_requests else float("nan")

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["notes"] = list(self.notes)
        out["linked_share"] = self.linked_share
        return out


@dataclass(frozen=True)
class Conversations:
    """Links and conversations of one trace.

    Attributes
    ----------
    summary : LinkSummary
    links : polars.DataFrame
        One row per request: ``request_id``, ``timestamp``, ``conversation`` (request_id of its
        first turn), ``parent`` (request_id or NULL), ``turn`` (1 = first), ``itt_s`` (NULL for
        first turns and out-of-order links), ``dangling``, ``cycle``, ``out_of_order``,
        ``identified`` (the request carries link information).
    conversations : polars.DataFrame
        From :func:`conversation_table`.
    """

    summary: LinkSummary
    links: pl.DataFrame
    conversations: pl.DataFrame


# --------------------------------------------------------------------------------------------
# Rule choice
# --------------------------------------------------------------------------------------------
def available_link_rules(store: TraceStore) -> tuple[str, ...]:
    """Link rules whose column the store has and in which at least one request carries a value."""
    present = [r for r in LINK_RULES if r in store.columns]
    if _parents_are_source_ids(store):
        present = [r for r in present if r != "parent_id"]
    if not present:
        return ()
    checks = {
        "conversation_id": "conversation_id IS NOT NULL",
        "parent_id": "parent_id IS NOT NULL AND parent_id NOT IN ('', '-1')",
        "prefix_blocks": "len(prefix_blocks) >= 2",
    }
    # EXISTS-style probes: stop at the first row carrying a value
    sql = " UNION ALL ".join(f"(SELECT '{r}' AS rule FROM requests WHERE {checks[r]} LIMIT 1)" for r in present)
    found = set(store.query(sql)["rule"].to_list())
    return tuple(r for r in present if r in found)


def choose_link_rule(store: TraceStore, rule: str = "auto") -> str:
    """The link rule :func:`link_conversations` uses on ``store`` for ``rule``.

    Raises
    ------
    ValueError
        If ``rule`` is not ``"auto"`` or one of :data:`LINK_RULES`.
    NotApplicableError
        If the store carries no value of the rule's column (or, for ``"auto"``, of any).
    """
    return _choose_rule(store, rule)


def _parents_are_source_ids(store: TraceStore) -> bool:
    """Bailian stores keep ``parent_chat_id`` as ``parent_id`` but not the rows' own chat ids."""
    return str(store.manifest.get("format", "")).lower() == "bailian"


def _choose_rule(store: TraceStore, rule: str) -> str:
    if rule != "auto" and rule not in LINK_RULES:
        raise ValueError(f"rule must be 'auto' or one of {LINK_RULES}; got {rule!r}")
    available = available_link_rules(store)
    if rule == "auto":
        if not available:
            have = [r for r in LINK_RULES if r in store.columns]
            reason = (
                f"the trace has {', '.join(repr(c) for c in have)} but no request carries a value"
                if have else
                "the trace has no link information (no 'conversation_id', 'parent_id' or 'prefix_blocks' column)"
            )
            raise NotApplicableError(_ANALYSIS, missing=() if have else LINK_RULES, reason=reason)
        return available[0]
    if rule not in store.columns:
        raise NotApplicableError(_ANALYSIS, missing=(rule,))
    if rule == "parent_id" and _parents_are_source_ids(store):
        raise NotApplicableError(_ANALYSIS, reason=(
            "in a Bailian store parent_id holds the source's parent_chat_id, and the rows' own chat ids are not "
            "kept, so parent links cannot be resolved to requests; use rule 'conversation_id' (ingest derived it "
            "from those links)"))
    if rule not in available:
        raise NotApplicableError(_ANALYSIS, reason=f"no request carries a value in {rule!r}")
    return rule


# --------------------------------------------------------------------------------------------
# Trees from parent arrays (shared by the parent_id and prefix_blocks rules)
# --------------------------------------------------------------------------------------------
class ParentLinks(NamedTuple):
    """Roots, depths and cycle flags of a parent-pointer forest (:func:`links_from_parents`;
    unpacks as ``root, depth, cycle``).

    Parameters
    ----------
    root : numpy.ndarray of int64
    depth : numpy.ndarray of int64
    cycle : numpy.ndarray of bool
    """

    root: np.ndarray
    depth: np.ndarray
    cycle: np.ndarray


def links_from_parents(parent: np.ndarray) -> ParentLinks:
    """Roots, depths and cycle flags of a parent-pointer forest, by pointer jumping.

    Parameters
    ----------
    parent : numpy.ndarray of int
        ``parent[i]`` is the index of request *i*'s parent, or -1 for a first turn.

    Returns
    -------
    root : numpy.ndarray of int64
        Index of each request's first turn (itself for a first turn; itself for a request on or
        leading into a cycle).
    depth : numpy.ndarray of int64
        Number of links to the root (0 for a first turn or a cycle request).
    cycle : numpy.ndarray of bool
        Requests on a cycle or whose ancestors lead into one.

    Notes
    -----
    ``ceil(log2 n) + 1`` doubling steps reach the root of any chain of up to ``n`` links; a
    request whose ancestor after those steps is not a genuine first turn lies on or above a
    cycle. The loop runs over doubling steps (at most ~21 for 10^6 requests), not requests.
    """
    parent = np.asarray(parent, dtype=np.int64)
    n = parent.size
    idx = np.arange(n, dtype=np.int64)
    if n and (parent.min() < -1 or parent.max() >= n):
        raise ValueError(f"parent indices must be -1 or in [0, {n}); got range [{parent.min()}, {parent.max()}]")
    is_root = parent < 0
    anc = np.where(is_root, idx, parent)
    dist = (~is_root).astype(np.int64)
    for _ in range(math.ceil(math.log2(max(n, 2))) + 1):
        nxt = anc[anc]
        if np.array_equal(nxt, anc):
            break
        dist = dist + dist[anc]
        anc = nxt
    cycle = ~is_root[anc] if n else np.zeros(0, dtype=bool)
    root = np.where(cycle, idx, anc)
    depth = np.where(cycle, 0, dist)
    return ParentLinks(root, depth, cycle)


# --------------------------------------------------------------------------------------------
# Prefix hashing: see servelab.analysis.block_hashes (re-exported here)
# --------------------------------------------------------------------------------------------
def infer_parents_from_blocks(values: np.ndarray, lengths: np.ndarray, *, min_shared_blocks: int = 1,
                              input_tokens: np.ndarray | None = None,
                              output_tokens: np.ndarray | None = None,
                              timestamps: np.ndarray | None = None,
                              latency_s: np.ndarray | None = None,
                              clients: np.ndarray | None = None,
                              min_itt_s: float = 0.0,
                              latency_slack_s: float = 0.0,
                              common_min_continuations: int | None = DEFAULT_MIN_CONTINUATIONS,
                              common_min_clients: int | None = DEFAULT_MIN_CLIENTS) -> np.ndarray:
    """Parent of each request (index, or -1) inferred from block-hash lists in arrival order.

    Parameters
    ----------
    values, lengths
        Flattened block ids and list lengths, one list per request, requests in arrival order.
    min_shared_blocks : int
        A link needs the shared full-block prefix (``L_parent - 1`` blocks) to be at least this
        long; with 1, a one-block request (its only block may be partial) is never a parent.
    input_tokens, output_tokens : numpy.ndarray, optional
        Prompt and answer lengths per request. When given, a candidate parent *i* of *j* must
        also satisfy ``input_j >= input_i + output_i`` (a follow-up's prompt holds the earlier
        prompt and answer); this separates two follow-ups of one request (branching) from a
        chain. Missing lengths (negative values) skip the check for that pair.
    timestamps : numpy.ndarray, optional
        Arrival times (s, non-decreasing). When given, a link needs ``t_j - t_i > min_itt_s``.
    latency_s : numpy.ndarray, optional
        Submission to last token (s; NaN where unknown). With ``timestamps``, a link needs the
        follow-up to arrive after the parent finished: ``t_j - t_i >= latency_i - latency_slack_s``.
    clients : numpy.ndarray of int, optional
        Client codes (-1 for unknown), for the common-prefix rule's client criterion.
    min_itt_s : float
        See ``timestamps`` (0: the follow-up must come strictly later).
    latency_slack_s : float
        Allowed for timestamps logged on a coarse clock (one clock step).
    common_min_continuations, common_min_clients : int or None
        The :class:`~servelab.analysis.shared_prefixes.CommonPrefixRule`: a link whose shared
        prefix is common (a system prompt or template) is rejected. None and None: no check.

    Returns
    -------
    numpy.ndarray of int64
        ``parent[j]`` = index of the request *j* continues, or -1. Parents always precede their
        children (``parent[j] < j``).

    Notes
    -----
    See the module docstring for the rule. Hash-set membership of the B prefixes and a
    hash-grouped as-of join of the hits (polars): O(B) expected; memory is a few arrays of B
    words. :func:`link_conversations` also reports how many candidate links each check rejected.
    """
    parent, _ = _infer_parents(values, lengths, min_shared_blocks=min_shared_blocks, input_tokens=input_tokens,
                               output_tokens=output_tokens, timestamps=timestamps, latency_s=latency_s,
                               clients=clients, min_itt_s=min_itt_s, latency_slack_s=latency_slack_s,
                               rule=CommonPrefixRule(min_continuations=common_min_continuations,
                                                     min_clients=common_min_clients))
    return parent


def _infer_parents(values: np.ndarray, lengths: np.ndarray, *, min_shared_blocks: int,
                   input_tokens: np.ndarray | None = None, output_tokens: np.ndarray | None = None,
                   timestamps: np.ndarray | None, latency_s: np.ndarray | None, clients: np.ndarray | None,
                   min_itt_s: float | None, latency_slack_s: float, rule: CommonPrefixRule) -> tuple[np.ndarray, dict]:
    """:func:`infer_parents_from_blocks` plus counts of the candidate links each check rejected."""
    if isinstance(min_shared_blocks, bool) or not isinstance(min_shared_blocks, (int, np.integer)) or min_shared_blocks < 1:
        raise ValueError(f"min_shared_blocks must be >= 1; got {min_shared_blocks!r}")
    if min_itt_s is not None and not (min_itt_s >= 0):
        raise ValueError(f"min_itt_s must be >= 0 seconds; got {min_itt_s!r}")
    if not (latency_slack_s >= 0):
        raise ValueError(f"latency_slack_s must be >= 0 seconds; got {latency_slack_s!r}")
    lengths = np.asarray(lengths, dtype=np.int64)
    n = lengths.size
    parent = np.full(n, -1, dtype=np.int64)
    counts = {"n_rejected_common": 0, "n_rejected_itt": 0, "n_rejected_latency": 0, "n_common_prefixes": 0}
    if n == 0:
        return parent, counts
    values = np.asarray(values)
    keys = prefix_hashes(values, lengths)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    # parent keys: the first L-1 blocks of every request that has at least min_shared + 1 blocks
    can_parent = lengths - 1 >= min_shared_blocks
    p_idx = np.flatnonzero(can_parent)
    p_key = keys[ends[p_idx] - 2]
    p_last = values[ends[p_idx] - 1]
    if p_key.size == 0:
        return parent, counts

    # queries: every prefix of length k in [min_shared, L - 1] of every request
    pos = np.arange(keys.size, dtype=np.int64) - np.repeat(starts, lengths)
    qmask = (pos + 1 >= min_shared_blocks) & (pos + 1 <= np.repeat(lengths, lengths) - 1)
    q_flat = np.flatnonzero(qmask)
    del qmask
    q_key = keys[q_flat]
    # a hash-set membership test first (polars, linear): most prefixes are no parent's key
    hit = pl.Series(q_key, dtype=pl.UInt64).is_in(pl.Series(p_key, dtype=pl.UInt64).implode()).to_numpy()
    q_flat = q_flat[hit]
    del hit, q_key
    q_req = np.repeat(np.arange(n, dtype=np.int64), lengths)[q_flat]
    q_k = pos[q_flat] + 1
    del pos
    # latest parent with the same key and index < child: an as-of join by key (hash grouped);
    # queries are in (request, k) order and parents in index order, as the join needs
    queries = pl.DataFrame({"key": pl.Series(keys[q_flat], dtype=pl.UInt64), "j": q_req,
                            "row": np.arange(q_req.size, dtype=np.int64)})
    parents = pl.DataFrame({"key": pl.Series(p_key, dtype=pl.UInt64), "i": p_idx,
                            "cand": np.arange(p_idx.size, dtype=np.int64)})
    joined = queries.join_asof(parents, left_on="j", right_on="i", by="key", strategy="backward",
                               allow_exact_matches=False, check_sortedness=False)
    del queries, parents
    common_cand = None
    if rule.active:
        # every request that continues a parent key is a hit, so the hits give each parent
        # key's continuations and clients exactly (the block after the prefix is q_flat + 1).
        # One id per key without hashing: parents with one key form one chain in the join (each
        # parent's own key, its last hit, matched the previous parent with that key), whose
        # first parent (found by pointer jumping) names the key; a hit takes its matched
        # parent's, a first parent its own, the few other hits (before any parent with their
        # key) get theirs from a hash join
        j_cand = joined["cand"].fill_null(-1).to_numpy()
        n_par = p_idx.size
        # each parent's own-key hit is its request's last hit: requests with hits are exactly
        # the parents (a request has queries only if it can be a parent, and its own key is one)
        last_hit = np.empty(q_req.size, dtype=bool)
        last_hit[-1] = True
        np.not_equal(q_req[1:], q_req[:-1], out=last_hit[:-1])
        own = np.flatnonzero(last_hit)
        del last_hit
        prev = j_cand[own]  # the previous parent with the same key, or -1
        first_of_key = prev < 0
        root = np.where(first_of_key, np.arange(n_par, dtype=np.int64), prev)
        del prev
        # pointer jumping on the chains only (a first parent is its own root)
        chained = np.flatnonzero(~first_of_key)
        for _ in range(math.ceil(math.log2(max(n_par, 2))) + 1):
            if not chained.size:
                break
            nxt = root[root[chained]]
            moved = nxt != root[chained]
            if not moved.any():
                break
            root[chained] = nxt
            chained = chained[moved]
        gid = np.append(root, -1)[j_cand]  # a hit without a match (j_cand -1) gets -1
        gid[own[first_of_key]] = np.flatnonzero(first_of_key)
        rest = np.flatnonzero(gid < 0)
        if rest.size:
            rest_keys = pl.Series(keys[q_flat[rest]], dtype=pl.UInt64)
            firsts = np.flatnonzero(first_of_key)
            firsts = firsts[pl.Series(p_key[firsts], dtype=pl.UInt64).is_in(rest_keys.implode()).to_numpy()]
            found = pl.DataFrame({"key": rest_keys}).join(
                pl.DataFrame({"key": pl.Series(p_key[firsts], dtype=pl.UInt64), "g": firsts}),
                on="key", how="left", maintain_order="left")
            gid[rest] = found["g"].to_numpy()
        del j_cand, own, first_of_key
        common_g = rule.common_groups(gid, n_par, continuation_keys=keys, continuation_rows=q_flat + 1,
                                      clients=None if clients is None else np.asarray(clients)[q_req])
        counts["n_common_prefixes"] = int(common_g.sum())
        common_cand = common_g[root]
        del gid, root
    matched = joined.drop_nulls("i")
    del joined
    rows = matched["row"].to_numpy()
    q_req, q_k = q_req[rows], q_k[rows]
    cand = matched["cand"].to_numpy()
    del matched, rows
    par = p_idx[cand]
    # an identical copy (same length, same last block) is not a follow-up
    same_len = q_k == lengths[q_req] - 1
    drop = same_len & (values[ends[q_req] - 1] == p_last[cand])
    if input_tokens is not None and output_tokens is not None:
        tin = np.asarray(input_tokens, dtype=np.int64)
        tout = np.asarray(output_tokens, dtype=np.int64)
        known = (tin[q_req] >= 0) & (tin[par] >= 0) & (tout[par] >= 0)
        drop |= known & (tin[q_req] < tin[par] + tout[par])
    # the new checks: a shared prefix that is common, a follow-up too soon on the clock, a
    # follow-up before its parent finished
    fail_common = np.zeros(q_req.size, dtype=bool) if common_cand is None else common_cand[cand]
    fail_itt = np.zeros(q_req.size, dtype=bool)
    fail_latency = np.zeros(q_req.size, dtype=bool)
    if timestamps is not None:
        ts = np.asarray(timestamps, dtype=float)
        itt = ts[q_req] - ts[par]
        if min_itt_s is not None:
            fail_itt = ~(itt > min_itt_s)
        if latency_s is not None:
            lat = np.asarray(latency_s, dtype=float)[par]
            fail_latency = itt < lat - latency_slack_s  # NaN latency compares False: no check
    ok = ~(drop | fail_common | fail_itt | fail_latency)
    if not ok.any():
        accepted_k = np.zeros(n, dtype=np.int64)
    else:
        # per child keep the longest shared prefix that passes (queries are in (request, k) order)
        o_req, o_k, o_par = q_req[ok], q_k[ok], par[ok]
        last_of_req = np.empty(o_req.size, dtype=bool)
        last_of_req[-1] = True
        last_of_req[:-1] = o_req[1:] != o_req[:-1]
        parent[o_req[last_of_req]] = o_par[last_of_req]
        accepted_k = np.zeros(n, dtype=np.int64)
        accepted_k[o_req[last_of_req]] = o_k[last_of_req]
    # candidates tried before the accepted one (longer shared prefixes), each counted under
    # the first new check it failed, in the order common prefix, clock, latency
    tried = (q_k > accepted_k[q_req]) & ~drop
    counts["n_rejected_common"] = int((tried & fail_common).sum())
    counts["n_rejected_itt"] = int((tried & ~fail_common & fail_itt).sum())
    counts["n_rejected_latency"] = int((tried & ~fail_common & ~fail_itt & fail_latency).sum())
    return parent, counts


# --------------------------------------------------------------------------------------------
# Linking
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LinkOptions:
    """How links are inferred from prompt block hashes: the keyword parameters of
    :func:`link_conversations`, as one object that the CLI, the report and pool fitting pass on.

    Parameters
    ----------
    min_shared_blocks : int
        Shortest shared full-block prefix that makes a link (>= 1).
    common_min_continuations, common_min_clients : int or None
        The :class:`~servelab.analysis.shared_prefixes.CommonPrefixRule`: a prefix continued in at
        least this many distinct ways, or by at least this many clients, is a system prompt or
        template, and a link must share more than it (>= 2; None switches the criterion off).
    clock_s : float or None
        The trace's timestamp step (s); None reads it from the manifest or estimates it.
    check_itt, check_latency : bool
        Reject links whose follow-up arrives within one clock tick of its parent, or before the
        parent finished (where ``latency_s`` is known).
    """

    min_shared_blocks: int = 1
    common_min_continuations: int | None = DEFAULT_MIN_CONTINUATIONS
    common_min_clients: int | None = DEFAULT_MIN_CLIENTS
    clock_s: float | None = None
    check_itt: bool = True
    check_latency: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.min_shared_blocks, bool) or not isinstance(self.min_shared_blocks, int) \
                or self.min_shared_blocks < 1:
            raise ValueError(f"min_shared_blocks must be an integer >= 1; got {self.min_shared_blocks!r}")
        for name in ("common_min_continuations", "common_min_clients"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 2):
                raise ValueError(f"{name} must be an integer >= 2 or None; got {value!r}")
        if self.clock_s is not None and (isinstance(self.clock_s, bool) or not math.isfinite(float(self.clock_s))
                                         or self.clock_s < 0):
            raise ValueError(f"clock_s must be a finite number of seconds >= 0 or None; got {self.clock_s!r}")

    def as_kwargs(self) -> dict:
        """The keyword arguments of :func:`link_conversations`."""
        return {name: getattr(self, name) for name in ("min_shared_blocks", "common_min_continuations",
                                                         "common_min_clients", "clock_s", "check_itt",
                                                         "check_latency")}


def link_conversations(store: TraceStore, *, rule: str = "auto", min_shared_blocks: int = 1,
                       edge_s: float | None = None,
                       common_min_continuations: int | None = DEFAULT_MIN_CONTINUATIONS,
                       common_min_clients: int | None = DEFAULT_MIN_CLIENTS,
                       clock_s: float | None = None, check_itt: bool = True,
                       check_latency: bool = True) -> Conversations:
    """Link the store's requests into conversations.

    Parameters
    ----------
    store : TraceStore
    rule : {"auto", "conversation_id", "parent_id", "prefix_blocks"}
        Which link information to use; ``"auto"`` takes the first of :data:`LINK_RULES` that
        the trace carries.
    min_shared_blocks : int
        For ``prefix_blocks``: shortest shared full-block prefix that makes a link.
    edge_s : float, optional
        A multi-turn conversation whose first (last) turn lies within ``edge_s`` of the trace's
        start (end) is counted as possibly cut. Default: the 90th percentile of ITTs.
    common_min_continuations, common_min_clients : int or None
        For ``prefix_blocks``: the :class:`~servelab.analysis.shared_prefixes.CommonPrefixRule`.
        A shared prefix whose continuing requests take at least ``common_min_continuations``
        distinct next blocks, or come from at least ``common_min_clients`` clients (when the
        trace has ``client_id``), is a system prompt or template, not conversation history: a
        link must share more than it. None switches a criterion off.
    clock_s : float, optional
        For ``prefix_blocks``: the step of the trace's timestamps (s; 0 for a fine clock).
        Default: the step ingest recorded in the manifest (``clock.step_s``, or ``clock_s``),
        else estimated from the lattice of positive gaps.
    check_itt : bool
        For ``prefix_blocks``: a follow-up must arrive at least one clock step after its parent
        (ITT above half the step, so that jitter of a few ms does not matter; above 0 on a fine
        clock). A zero-tick ITT is two requests in one tick, not a user's reply.
    check_latency : bool
        For ``prefix_blocks`` with ``latency_s``: a follow-up must arrive after its parent
        finished (``ITT >= latency - clock_s - 1 ms``; unknown latencies are not checked).

    Raises
    ------
    NotApplicableError
        If the trace has no link information (no column, or no value in it).

    Notes
    -----
    ``common_min_continuations=None, common_min_clients=None, check_itt=False,
    check_latency=False`` is servelab's earlier rule. The summary counts the candidate links each
    check rejected (``n_rejected_common``, ``n_rejected_itt``, ``n_rejected_latency``).
    """
    chosen = _choose_rule(store, rule)
    prefix_rule = CommonPrefixRule(min_continuations=common_min_continuations, min_clients=common_min_clients)
    if clock_s is not None and (isinstance(clock_s, bool) or not isinstance(clock_s, (int, float, np.integer, np.floating))
                                or not 0 <= clock_s < math.inf):
        raise ValueError(f"clock_s must be a finite number of seconds >= 0; got {clock_s!r}")
    notes: list[str] = []
    if chosen == "conversation_id":
        links, extra = _links_by_conversation_id(store)
    elif chosen == "parent_id":
        links, extra = _links_by_parent_id(store)
    else:
        links, extra = _links_by_prefix_blocks(store, min_shared_blocks=min_shared_blocks, rule=prefix_rule,
                                               clock_s=clock_s, check_itt=check_itt, check_latency=check_latency)
        notes.append(
            f"links inferred from prompt block hashes: a request continues the earlier request whose first "
            f"L-1 blocks it repeats (longest such prefix, then latest; at least {min_shared_blocks} block(s)); "
            "identical prompts are not linked"
            + ("; a follow-up's input must hold the earlier input and output tokens"
               if store.has("input_tokens", "output_tokens") else "")
        )
        notes.extend(extra.pop("notes"))
    itt = links["itt_s"].drop_nulls()
    if edge_s is None:
        edge_s = float(itt.quantile(0.9)) if itt.len() else 0.0
    elif not (edge_s >= 0):
        raise ValueError(f"edge_s must be >= 0 seconds; got {edge_s!r}")
    first, last = float(links["timestamp"].min()), float(links["timestamp"].max())
    convs = conversation_table(links, trace_start=first, trace_end=last, edge_s=edge_s)
    summary = _link_summary(chosen, links, convs, extra, notes=notes, edge_s=edge_s, n_requests=links.height,
                            n_conversations=int(convs["identified"].sum()))
    return Conversations(summary=summary, links=links, conversations=convs)


def _link_summary(rule: str, links: pl.DataFrame, convs: pl.DataFrame, extra: dict, *, notes: list[str],
                  edge_s: float, n_requests: int, n_conversations: int) -> LinkSummary:
    """The :class:`LinkSummary` of ``links`` and their :func:`conversation_table` ``convs``.

    ``links`` and ``convs`` may leave out requests that are in no multi-turn conversation
    (:func:`servelab.analysis.conversations_sql.link_multi_turn`): every count below but
    ``n_requests`` and ``n_conversations`` (given) is over multi-turn conversations or links.
    ``extra`` may give ``n_branching`` (else counted from the links' parents).
    """
    if extra.get("n_cycle"):
        notes.append(f"{extra['n_cycle']} request(s) on or above a cycle of parent links were left unlinked")
    if extra.get("n_dangling"):
        notes.append(f"{extra['n_dangling']} request(s) name a parent that is not in the trace; each starts a conversation")
    multi = convs.filter(pl.col("turns") >= 2)
    if "n_branching" in extra:  # known to the caller (links that form chains: none)
        n_branching = int(extra["n_branching"])
    else:
        n_children = links.filter(pl.col("parent").is_not_null()).group_by("parent").len()
        n_branching = int((n_children["len"] >= 2).sum()) if n_children.height else 0
    return LinkSummary(
        rule=rule,
        n_requests=n_requests,
        n_linked=int(multi["turns"].sum() or 0),
        n_with_parent=int(links["parent"].is_not_null().sum()),
        n_conversations=n_conversations,
        n_multi_turn=multi.height,
        n_branching=n_branching,
        n_dangling=int(extra.get("n_dangling", 0)),
        n_cycle=int(extra.get("n_cycle", 0)),
        n_out_of_order=int(extra.get("n_out_of_order", 0)),
        n_left_censored=int(multi["left_censored"].sum()),
        n_right_censored=int(multi["right_censored"].sum()),
        edge_s=float(edge_s),
        clock_s=float(extra.get("clock_s", float("nan"))),
        n_common_prefixes=int(extra.get("n_common_prefixes", 0)),
        n_rejected_common=int(extra.get("n_rejected_common", 0)),
        n_rejected_itt=int(extra.get("n_rejected_itt", 0)),
        n_rejected_latency=int(extra.get("n_rejected_latency", 0)),
        notes=tuple(notes),
    )


_LINK_SCHEMA = {
    "request_id": pl.Int64, "timestamp": pl.Float64, "conversation": pl.Int64, "parent": pl.Int64,
    "turn": pl.Int64, "itt_s": pl.Float64, "dangling": pl.Boolean, "cycle": pl.Boolean, "out_of_order": pl.Boolean,
    "identified": pl.Boolean,
}


def _links_by_conversation_id(store: TraceStore) -> tuple[pl.DataFrame, dict]:
    """Links from ``conversation_id``: each identified request's conversation is the first request
    of its id, its parent the previous one, in the order (timestamp, request_id).

    numpy on the id's dense codes, not SQL window functions (``PARTITION BY conversation_id``:
    DuckDB's window operator sorted every partition again): one stable argsort of the codes (the
    rows are in request order, which is (timestamp, request_id) order in an ingested store; a
    lexsort otherwise), then each row's group start, predecessor and rank are array operations.
    """
    columns = ["request_id", "timestamp", "conversation_id"]
    has_turn, has_parent = "turn" in store.columns, "parent_id" in store.columns
    columns += ["turn"] * has_turn + ["parent_id"] * has_parent
    frame = store.to_polars(columns)
    if not frame["request_id"].is_sorted():  # ingest sorts; a store written by hand might not be
        frame = frame.sort("request_id")
    n = frame.height
    rid = frame["request_id"].cast(pl.Int64).to_numpy()
    ts = frame["timestamp"].cast(pl.Float64).to_numpy()
    identified = frame["conversation_id"].is_not_null().to_numpy()
    rows = np.flatnonzero(identified)
    codes = frame["conversation_id"].rank("dense").to_numpy()  # null (NaN) on unidentified rows
    code = codes[rows]
    t_rows = ts[rows]
    if np.all(t_rows[1:] >= t_rows[:-1]):  # request order is (timestamp, request_id) order
        order = rows[np.argsort(code, kind="stable")]
    else:
        order = rows[np.lexsort((rid[rows], t_rows, code))]
    c_sorted = codes[order]
    first = np.ones(order.size, dtype=bool)
    first[1:] = c_sorted[1:] != c_sorted[:-1]
    start = np.maximum.accumulate(np.where(first, np.arange(order.size), 0))
    conversation = rid.copy()
    conversation[order] = rid[order[start]]
    turn = np.ones(n, dtype=np.int64)
    turn[order] = np.arange(order.size) - start + 1
    prev = np.empty(order.size, dtype=np.int64)  # index of each sorted row's predecessor (-1: none)
    prev[0:1] = -1
    prev[1:] = order[:-1]
    prev[first] = -1
    parent = np.full(n, -1, dtype=np.int64)
    has_prev = np.zeros(n, dtype=bool)
    parent[order] = np.where(prev >= 0, rid[prev], -1)
    has_prev[order] = prev >= 0
    itt = np.full(n, np.nan)
    itt[order[prev >= 0]] = ts[order[prev >= 0]] - ts[prev[prev >= 0]]
    dangling = np.zeros(n, dtype=bool)
    if has_parent:
        # with parent links beside the ids (Bailian), a first turn that names a parent lost its
        # parent to the trace's start (or the log): dangling
        named = (frame["parent_id"].is_not_null() & ~frame["parent_id"].cast(pl.String).is_in(["", "-1"])).to_numpy()
        dangling[order[first]] = named[order[first]]
    out_of_order = np.zeros(n, dtype=bool)
    if has_turn:
        given = frame["turn"].cast(pl.Float64).fill_null(np.nan).to_numpy()
        later = order[prev >= 0]
        out_of_order[later] = given[later] < given[prev[prev >= 0]]
    links = pl.DataFrame({
        "request_id": rid, "timestamp": ts, "conversation": conversation,
        "parent": parent,
        "turn": turn, "itt_s": pl.Series(itt).fill_nan(None), "dangling": dangling,
        "cycle": np.zeros(n, dtype=bool), "identified": identified, "out_of_order": out_of_order,
    }).with_columns(pl.when(pl.Series(has_prev)).then(pl.col("parent")).alias("parent")).cast(_LINK_SCHEMA)
    # out of order counts conversations, not requests
    n_ooo = links.filter(pl.col("out_of_order"))["conversation"].n_unique()
    ooo_convs = links.filter(pl.col("out_of_order")).select("conversation").unique()
    links = links.with_columns(out_of_order=pl.col("conversation").is_in(ooo_convs["conversation"].implode()))
    return links, {"n_out_of_order": n_ooo, "n_dangling": int(links["dangling"].sum())}


def _links_by_parent_id(store: TraceStore) -> tuple[pl.DataFrame, dict]:
    sql = f"""
SELECT r.request_id, r.timestamp,
  CASE WHEN r.parent_id IS NULL OR r.parent_id IN {_NO_PARENT} THEN NULL ELSE r.parent_id END AS parent_text,
  p.request_id AS parent_rid
FROM requests r
LEFT JOIN requests p ON r.parent_id IS NOT NULL AND r.parent_id NOT IN {_NO_PARENT}
                      AND r.parent_id = CAST(p.request_id AS VARCHAR)
ORDER BY r.request_id
"""
    frame = store.query(sql)
    rid = frame["request_id"].to_numpy().astype(np.int64)
    ts = frame["timestamp"].to_numpy().astype(float)
    given = frame["parent_text"].is_not_null().to_numpy()
    prid = frame["parent_rid"].to_numpy()
    resolved = frame["parent_rid"].is_not_null().to_numpy()
    dangling = given & ~resolved
    parent = np.full(rid.size, -1, dtype=np.int64)
    parent[resolved] = np.searchsorted(rid, prid[resolved].astype(np.int64))
    links = _tree_links(rid, ts, parent, dangling=dangling)
    n_ooo = int(links["out_of_order"].sum())
    return links, {"n_dangling": int(dangling.sum()), "n_cycle": int(links["cycle"].sum()), "n_out_of_order": n_ooo}


def _links_by_prefix_blocks(store: TraceStore, *, min_shared_blocks: int, rule: CommonPrefixRule,
                            clock_s: float | None, check_itt: bool, check_latency: bool) -> tuple[pl.DataFrame, dict]:
    length_cols = [c for c in ("input_tokens", "output_tokens") if c in store.columns]
    use_clients = rule.min_clients is not None and "client_id" in store.columns
    use_latency = check_latency and "latency_s" in store.columns
    extra_cols = [*(["client_id"] if use_clients else []), *(["latency_s"] if use_latency else [])]
    table = store.read_arrow(["request_id", "timestamp", "prefix_blocks", *length_cols, *extra_cols],
                             dictionary=("client_id",) if use_clients else ())
    rid = table["request_id"].to_numpy().astype(np.int64)
    if rid.size > 1 and not bool(np.all(rid[1:] > rid[:-1])):  # stores are written in request order
        table = table.sort_by([("request_id", "ascending")])
        rid = table["request_id"].to_numpy().astype(np.int64)
    ts = table["timestamp"].to_numpy().astype(float)
    tokens = {}
    if len(length_cols) == 2:
        tokens = {c: pc.fill_null(table[c], -1).to_numpy().astype(np.int64) for c in length_cols}
    clients = client_codes(table["client_id"]) if use_clients else None
    latency = pc.fill_null(table["latency_s"], float("nan")).to_numpy().astype(float) if use_latency else None
    blocks = table["prefix_blocks"].combine_chunks()
    del table
    lengths = pc.fill_null(pc.list_value_length(blocks), 0).to_numpy().astype(np.int64)
    values = pc.list_flatten(blocks).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    del blocks
    notes: list[str] = []
    step, source = float("nan"), ""
    if check_itt or use_latency:
        step, source = _trace_clock(store, ts, clock_s)
    parent, counts = _infer_parents(
        values, lengths, min_shared_blocks=min_shared_blocks, **tokens,
        timestamps=ts if (check_itt or use_latency) else None, latency_s=latency, clients=clients,
        min_itt_s=step / 2 if check_itt else None,
        latency_slack_s=(step if step >= 0 else 0.0) + _LATENCY_SLACK_S, rule=rule)
    del values
    if rule.active:
        notes.append(f"shared prompt prefixes: {rule.describe()}"
                     + (" (the trace has no client ids)" if rule.min_clients is not None and not use_clients else "")
                     + f"; a link must share more than a common prefix: {counts['n_common_prefixes']} common "
                     f"prefix(es) among parents' prefixes rejected {counts['n_rejected_common']} candidate link(s)")
    if check_itt:
        notes.append(f"clock step {step:g} s ({source}); a follow-up must arrive at least one step after its parent: "
                     f"{counts['n_rejected_itt']} candidate link(s) rejected")
    if check_latency:
        notes.append(f"a follow-up must arrive after its parent finished (latency_s): {counts['n_rejected_latency']} "
                     "candidate link(s) rejected" if use_latency else
                     "latency check skipped: the trace has no latency_s column")
    links = _tree_links(rid, ts, parent, dangling=np.zeros(rid.size, dtype=bool))
    return links, {"n_out_of_order": int(links["out_of_order"].sum()), "clock_s": step, "notes": notes, **counts}


#: slack of the latency check beyond one clock step: timestamps and latencies logged in ms
_LATENCY_SLACK_S = 1e-3
#: positive gaps at most this long are taken as jitter within one clock tick
_CLOCK_JITTER_S = 0.01


def _trace_clock(store: TraceStore, ts: np.ndarray, clock_s: float | None) -> tuple[float, str]:
    """The clock step to check ITTs against and where it came from."""
    if clock_s is not None:
        return float(clock_s), "given"
    # ingest records the clock as {"clock": {"step_s": ...}} (analysis.clock.Clock.to_json;
    # step_s None: continuous times) or as a bare "clock_s"
    recorded = store.manifest.get("clock")
    if isinstance(recorded, Mapping) and "step_s" in recorded:
        step = recorded["step_s"]
        if step is None:
            return 0.0, "recorded at ingest: continuous times"
        if isinstance(step, (int, float)) and not isinstance(step, bool) and 0 <= step < math.inf:
            return float(step), "recorded at ingest"
    recorded = store.manifest.get("clock_s")
    if isinstance(recorded, (int, float)) and not isinstance(recorded, bool) and 0 <= recorded < math.inf:
        return float(recorded), "recorded at ingest"
    return _estimate_clock(ts), "estimated from the gaps"


def _estimate_clock(ts: np.ndarray, *, jitter_s: float = _CLOCK_JITTER_S, min_gaps: int = 20,
                    min_share: float = 0.9) -> float:
    """Step of a logging clock from the lattice of positive gaps; 0.0 when there is none.

    Positive gaps longer than ``jitter_s`` are the candidates. A first guess is the median of the
    gaps within 1.5 times their 1st percentile (in a sparse trace that may be a few ticks, so its
    fractions 1/2 ... 1/6 are tried too, largest first); a guess is refined as the median of
    gap / ticks and accepted when at least ``min_share`` of the gaps lie within
    ``max(jitter_s, 2 % of the step)`` of a whole number of steps. A step under 20 times
    ``jitter_s`` cannot be told from jitter: the clock is then taken as fine (0.0).
    """
    ts = np.asarray(ts, dtype=float)
    gaps = np.diff(ts)
    if (gaps < 0).any():
        gaps = np.diff(np.sort(ts))
    gaps = gaps[gaps > jitter_s]
    if gaps.size < min_gaps:
        return 0.0
    low = float(np.quantile(gaps, 0.01))
    guess = float(np.median(gaps[gaps <= 1.5 * low]))
    for divisor in range(1, 7):
        step = guess / divisor
        if not (step >= 20 * jitter_s):
            break
        step = float(np.median(gaps / np.maximum(np.round(gaps / step), 1.0)))
        tol = max(jitter_s, 0.02 * step)
        if float((np.abs(gaps - np.round(gaps / step) * step) <= tol).mean()) >= min_share:
            return step
    return 0.0


def _tree_links(rid: np.ndarray, ts: np.ndarray, parent: np.ndarray, *, dangling: np.ndarray) -> pl.DataFrame:
    root, depth, cycle = links_from_parents(parent)
    has_parent = (parent >= 0) & ~cycle
    safe = np.where(has_parent, parent, 0)
    itt = np.where(has_parent, ts - ts[safe], np.nan)
    out_of_order = has_parent & (itt < 0)
    itt = np.where(out_of_order, np.nan, itt)
    return pl.DataFrame({
        "request_id": rid,
        "timestamp": ts,
        "conversation": rid[root],
        "parent": pl.Series(np.where(has_parent, rid[safe], 0)).set(pl.Series(~has_parent), None),
        "turn": depth + 1,
        "itt_s": pl.Series(itt).fill_nan(None),
        "dangling": dangling,
        "cycle": cycle,
        "out_of_order": out_of_order,
        "identified": np.ones(rid.size, dtype=bool),
    }).cast(_LINK_SCHEMA)


# --------------------------------------------------------------------------------------------
# Per conversation
# --------------------------------------------------------------------------------------------
def conversation_table(links: pl.DataFrame, *, trace_start: float | None = None, trace_end: float | None = None,
                       edge_s: float = 0.0) -> pl.DataFrame:
    """One row per conversation.

    Returns
    -------
    polars.DataFrame
        ``conversation``, ``turns``, ``depth`` (longest chain of turns), ``first_s``, ``last_s``,
        ``duration_s`` (last minus first arrival), ``itt_count``, ``mean_itt_s``,
        ``median_itt_s``, ``max_itt_s``, ``left_censored``, ``right_censored``, ``identified``
        (False for a request without link information, e.g. an API request without a
        conversation id: a single request, but not a one-turn conversation).
    """
    start = float(links["timestamp"].min()) if trace_start is None else trace_start
    end = float(links["timestamp"].max()) if trace_end is None else trace_end
    # grouped by a column flagged sorted, polars aggregates contiguous slices instead of hashing
    # every row (a stable sort keeps each conversation's rows in their order): 0.72 -> 0.35
    # CPU-s with the sort at 1 M rows, the same table
    links = links.sort("conversation", maintain_order=True).with_columns(pl.col("conversation").set_sorted())
    # medians over the rows with an ITT only (a separate group-by: the median is the costly
    # aggregate, and most conversations have no ITT or one)
    medians = links.filter(pl.col("itt_s").is_not_null()).group_by("conversation").agg(
        median_itt_s=pl.col("itt_s").median())
    return (
        links.group_by("conversation")
        .agg(
            turns=pl.len(),
            depth=pl.col("turn").max(),
            first_s=pl.col("timestamp").min(),
            last_s=pl.col("timestamp").max(),
            itt_count=pl.col("itt_s").count(),
            mean_itt_s=pl.col("itt_s").mean(),
            max_itt_s=pl.col("itt_s").max(),
            dangling=pl.col("dangling").any(),
            identified=pl.col("identified").any() if "identified" in links.columns else pl.lit(True),
        )
        .join(medians, on="conversation", how="left")
        .select("conversation", "turns", "depth", "first_s", "last_s", "itt_count", "mean_itt_s",
                pl.col("median_itt_s").cast(pl.Float64), "max_itt_s", "dangling", "identified")
        .with_columns(
            duration_s=pl.col("last_s") - pl.col("first_s"),
            left_censored=pl.col("dangling") | (pl.col("first_s") < start + edge_s),
            right_censored=pl.col("last_s") > end - edge_s,
        )
        .drop("dangling")
        .sort("conversation")
    )


def turn_distribution(conversations: pl.DataFrame) -> pl.DataFrame:
    """Conversations per number of turns: ``turns``, ``conversations``, ``share``, ``cum_share``.

    Requests without link information (``identified`` False) are not conversations and are left out.
    """
    if "identified" in conversations.columns:
        conversations = conversations.filter(pl.col("identified"))
    counts = conversations.group_by("turns").agg(conversations=pl.len()).sort("turns")
    total = counts["conversations"].sum()
    return counts.with_columns(share=pl.col("conversations") / total).with_columns(cum_share=pl.col("share").cum_sum())


def itt_values(links: pl.DataFrame) -> np.ndarray:
    """All inter-turn times (s) of in-order links, as a float array."""
    return links["itt_s"].drop_nulls().to_numpy().astype(float)


def interval_stats_by_turns(links: pl.DataFrame, conversations: pl.DataFrame, *,
                            deltas_s: tuple[float, ...] = DEFAULT_LONG_DELTAS_S, max_turns: int | None = 30) -> pl.DataFrame:
    """BurstGPT Fig. 9: interval statistics versus the number of requests in a conversation.

    Parameters
    ----------
    links, conversations
        From :class:`Conversations`.
    deltas_s : tuple of float
        Fixed thresholds of "long intervals" (seconds).
    max_turns : int, optional
        Conversations with more requests are pooled into one ``max_turns`` row (labelled by
        ``turns_at_least``).

    Returns
    -------
    polars.DataFrame
        Per number of requests (>= 2): ``turns``, ``conversations``, ``mean_itt_s``,
        ``median_itt_s``, ``p90_itt_s`` (over all intervals of those conversations),
        ``long_gt_<d>s`` (mean number per conversation of intervals longer than each delta) and
        ``long_gt_iqr`` (above the IQR upper bound Q3 + 1.5 IQR of all ITTs, reported in
        ``iqr_upper_s``).
    """
    if any(not (d > 0) for d in deltas_s):
        raise ValueError(f"deltas_s must be positive seconds; got {deltas_s!r}")
    itt = links.filter(pl.col("itt_s").is_not_null()).select("conversation", "itt_s")
    if itt.height == 0:
        return pl.DataFrame(schema={"turns": pl.Int64, "conversations": pl.UInt32})
    q1 = itt["itt_s"].quantile(0.25, interpolation="linear")
    q3 = itt["itt_s"].quantile(0.75, interpolation="linear")
    upper = float(q3 + 1.5 * (q3 - q1))
    turns = conversations.select("conversation", "turns").filter(pl.col("turns") >= 2)
    if max_turns is not None:
        turns = turns.with_columns(turns=pl.min_horizontal(pl.col("turns"), pl.lit(max_turns)))
    j = itt.join(turns, on="conversation")
    per_conv = j.group_by("conversation", "turns").agg(
        *[(pl.col("itt_s") > d).sum().alias(f"long_gt_{d:g}s") for d in deltas_s],
        (pl.col("itt_s") > upper).sum().alias("long_gt_iqr"),
    )
    longs = per_conv.group_by("turns").agg(
        pl.len().alias("conversations"),
        *[pl.col(f"long_gt_{d:g}s").mean() for d in deltas_s],
        pl.col("long_gt_iqr").mean(),
    )
    stats = j.group_by("turns").agg(
        mean_itt_s=pl.col("itt_s").mean(), median_itt_s=pl.col("itt_s").median(),
        p90_itt_s=pl.col("itt_s").quantile(0.9, interpolation="linear"),
    )
    return longs.join(stats, on="turns").with_columns(iqr_upper_s=pl.lit(upper)).sort("turns").select(
        "turns", "conversations", "mean_itt_s", "median_itt_s", "p90_itt_s",
        *[f"long_gt_{d:g}s" for d in deltas_s], "long_gt_iqr", "iqr_upper_s")
