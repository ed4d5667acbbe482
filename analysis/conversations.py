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
    checks is the parent. Every prefix ``blocks[:k]`` is hashed once (a polynomial hash mod 2^64 over
    mixed block ids, computed for all requests at once with cumulative sums), parent keys are
    sorted, and every request's prefixes are looked up by binary search: O(B log n) for B blocks
    in all, never pairwise. Equal hashes of equal length are taken as equal prefixes (a false
    match has probability about 2^-64 per lookup).

In every rule a conversation is a tree (a request may have several follow-ups: branching), its
id is the ``request_id`` of its first request, ``turn`` is the depth in the tree plus one and the
inter-turn time (ITT) of a request is its arrival time minus its parent's.

This module must not import fitting, generator, figures or matplotlib. Its results are tables of
links and conversations, not the requests' contents.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pyarrow.compute as pc
import pyarrow.parquet as pq
from servelab.analysis.exceptions import NotApplicableError
from servelab.analysis.store import TraceStore

__all__ = [
    "DEFAULT_LONG_DELTAS_S",
    "LINK_RULES",
    "Conversations",
    "LinkSummary",
    "available_link_rules",
    "conversation_table",
    "infer_parents_from_blocks",
    "interval_stats_by_turns",
    "itt_values",
    "link_conversations",
    "links_from_parents",
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
def links_from_parents(parent: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    return root, depth, cycle


# --------------------------------------------------------------------------------------------
# Prefix hashing
# --------------------------------------------------------------------------------------------
_P = np.uint64(0x9E3779B97F4A7C15)  # odd, hence invertible mod 2^64
_P_INV = np.uint64(pow(int(_P), -1, 2**64))


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads small consecutive block ids over 64 bits."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _powers(base: np.uint64, n: int) -> np.ndarray:
    out = np.empty(max(n, 1), dtype=np.uint64)
    out[0] = 1
    if n > 1:
        with np.errstate(over="ignore"):
            out[1:] = base
            out = np.cumprod(out, dtype=np.uint64)
    return out


def prefix_hashes(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Hash of every prefix of every block list, all at once.

    Parameters
    ----------
    values : numpy.ndarray of int64
        All block ids, list after list (an Arrow list column's flattened values).
    lengths : numpy.ndarray of int
        Length of each list.

    Returns
    -------
    numpy.ndarray of uint64
        ``out[offset_r + k - 1]`` is the hash of the first ``k`` blocks of list ``r`` (mixed
        with ``k``, so prefixes of different lengths never share a key by construction):

        .. math:: h_k = \\sum_{t<k} m(b_t) P^{k-1-t} \\bmod 2^{64}
                   = P^{k-1} \\sum_{t<k} m(b_t) P^{-t}

        computed with one cumulative sum over all lists (unsigned arithmetic wraps mod 2^64).
    """
    values = np.asarray(values)
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if values.size != total:
        raise ValueError(f"values holds {values.size} blocks but lengths add up to {total}")
    if total == 0:
        return np.zeros(0, dtype=np.uint64)
    starts = np.cumsum(lengths) - lengths
    pos = np.arange(total, dtype=np.int64) - np.repeat(starts, lengths)
    max_len = int(lengths.max())
    pw, pinv = _powers(_P, max_len), _powers(_P_INV, max_len)
    with np.errstate(over="ignore"):
        term = _mix64(values.astype(np.int64).view(np.uint64)) * pinv[pos]
        csum = np.cumsum(term, dtype=np.uint64)
        base = np.where(starts > 0, csum[np.maximum(starts - 1, 0)], np.uint64(0))
        h = (csum - np.repeat(base, lengths)) * pw[pos]
        h ^= (pos.astype(np.uint64) + np.uint64(1)) * np.uint64(0xD6E8FEB86659FD93)
        return h


def infer_parents_from_blocks(values: np.ndarray, lengths: np.ndarray, *, min_shared_blocks: int = 1,
                              input_tokens: np.ndarray | None = None,
                              output_tokens: np.ndarray | None = None) -> np.ndarray:
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

    Returns
    -------
    numpy.ndarray of int64
        ``parent[j]`` = index of the request *j* continues, or -1. Parents always precede their
        children (``parent[j] < j``).

    Notes
    -----
    See the module docstring for the rule. Hash-set membership of the B prefixes and a
    hash-grouped as-of join of the hits (polars): O(B) expected; memory is a few arrays of B
    words.
    """
    if min_shared_blocks < 1:
        raise ValueError(f"min_shared_blocks must be >= 1; got {min_shared_blocks!r}")
    lengths = np.asarray(lengths, dtype=np.int64)
    n = lengths.size
    parent = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return parent
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
        return parent

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
    matched = queries.join_asof(parents, left_on="j", right_on="i", by="key", strategy="backward",
                                allow_exact_matches=False, check_sortedness=False).drop_nulls("i")
    del queries, parents
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
    q_req, q_k, par = q_req[~drop], q_k[~drop], par[~drop]
    if q_req.size == 0:
        return parent
    # per child keep the longest shared prefix (queries are in (request, k) order already)
    last_of_req = np.empty(q_req.size, dtype=bool)
    last_of_req[-1] = True
    last_of_req[:-1] = q_req[1:] != q_req[:-1]
    parent[q_req[last_of_req]] = par[last_of_req]
    return parent


# --------------------------------------------------------------------------------------------
# Linking
# --------------------------------------------------------------------------------------------
def link_conversations(store: TraceStore, *, rule: str = "auto", min_shared_blocks: int = 1,
                       edge_s: float | None = None) -> Conversations:
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

    Raises
    ------
    NotApplicableError
        If the trace has no link information (no column, or no value in it).
    """
    chosen = _choose_rule(store, rule)
    notes: list[str] = []
    if chosen == "conversation_id":
        links, extra = _links_by_conversation_id(store)
    elif chosen == "parent_id":
        links, extra = _links_by_parent_id(store)
    else:
        links, extra = _links_by_prefix_blocks(store, min_shared_blocks=min_shared_blocks)
        notes.append(
            f"links inferred from prompt block hashes: a request continues the earlier request whose first "
            f"L-1 blocks it repeats (longest such prefix, then latest; at least {min_shared_blocks} block(s)); "
            "identical prompts are not linked"
            + ("; a follow-up's input must hold the earlier input and output tokens"
               if store.has("input_tokens", "output_tokens") else "")
        )
    if extra.get("n_cycle"):
        notes.append(f"{extra['n_cycle']} request(s) on or above a cycle of parent links were left unlinked")
    if extra.get("n_dangling"):
        notes.append(f"{extra['n_dangling']} request(s) name a parent that is not in the trace; each starts a conversation")
    itt = links["itt_s"].drop_nulls()
    if edge_s is None:
        edge_s = float(itt.quantile(0.9)) if itt.len() else 0.0
    elif not (edge_s >= 0):
        raise ValueError(f"edge_s must be >= 0 seconds; got {edge_s!r}")
    first, last = float(links["timestamp"].min()), float(links["timestamp"].max())
    convs = conversation_table(links, trace_start=first, trace_end=last, edge_s=edge_s)
    multi = convs.filter(pl.col("turns") >= 2)
    n_children = links.filter(pl.col("parent").is_not_null()).group_by("parent").len()
    summary = LinkSummary(
        rule=chosen,
        n_requests=links.height,
        n_linked=int(multi["turns"].sum() or 0),
        n_with_parent=int(links["parent"].is_not_null().sum()),
        n_conversations=int(convs["identified"].sum()),
        n_multi_turn=multi.height,
        n_branching=int((n_children["len"] >= 2).sum()) if n_children.height else 0,
        n_dangling=int(extra.get("n_dangling", 0)),
        n_cycle=int(extra.get("n_cycle", 0)),
        n_out_of_order=int(extra.get("n_out_of_order", 0)),
        n_left_censored=int(multi["left_censored"].sum()),
        n_right_censored=int(multi["right_censored"].sum()),
        edge_s=float(edge_s),
        notes=tuple(notes),
    )
    return Conversations(summary=summary, links=links, conversations=convs)


_LINK_SCHEMA = {
    "request_id": pl.Int64, "timestamp": pl.Float64, "conversation": pl.Int64, "parent": pl.Int64,
    "turn": pl.Int64, "itt_s": pl.Float64, "dangling": pl.Boolean, "cycle": pl.Boolean, "out_of_order": pl.Boolean,
    "identified": pl.Boolean,
}


def _links_by_conversation_id(store: TraceStore) -> tuple[pl.DataFrame, dict]:
    has_turn = "turn" in store.columns
    order = "ORDER BY timestamp, request_id"
    win = f"OVER (PARTITION BY conversation_id {order})"
    # with parent links beside the ids (Bailian), a first turn that names a parent lost its
    # parent to the trace's start (or the log): dangling
    dangling = (f"coalesce(conversation_id IS NOT NULL AND row_number() {win} = 1 AND requests.parent_id IS NOT NULL "
                "AND requests.parent_id NOT IN ('', '-1'), false)") if "parent_id" in store.columns else "false"
    sql = f"""
SELECT request_id, timestamp,
  CASE WHEN conversation_id IS NULL THEN request_id ELSE first_value(request_id) {win} END AS conversation,
  CASE WHEN conversation_id IS NULL THEN NULL ELSE lag(request_id) {win} END AS parent,
  CASE WHEN conversation_id IS NULL THEN 1 ELSE row_number() {win} END AS turn,
  CASE WHEN conversation_id IS NULL THEN NULL ELSE timestamp - lag(timestamp) {win} END AS itt_s,
  {dangling} AS dangling, false AS cycle, conversation_id IS NOT NULL AS identified,
  {f"coalesce(conversation_id IS NOT NULL AND requests.turn < lag(requests.turn) {win}, false)" if has_turn else "false"} AS out_of_order
FROM requests
ORDER BY request_id
"""
    links = store.query(sql).cast(_LINK_SCHEMA)
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


def _links_by_prefix_blocks(store: TraceStore, *, min_shared_blocks: int) -> tuple[pl.DataFrame, dict]:
    length_cols = [c for c in ("input_tokens", "output_tokens") if c in store.columns]
    table = pq.read_table(store.requests_path, columns=["request_id", "timestamp", "prefix_blocks", *length_cols])
    rid = table["request_id"].to_numpy().astype(np.int64)
    if rid.size > 1 and not bool(np.all(rid[1:] > rid[:-1])):  # stores are written in request order
        table = table.sort_by([("request_id", "ascending")])
        rid = table["request_id"].to_numpy().astype(np.int64)
    ts = table["timestamp"].to_numpy().astype(float)
    tokens = {}
    if len(length_cols) == 2:
        tokens = {c: pc.fill_null(table[c], -1).to_numpy().astype(np.int64) for c in length_cols}
    blocks = table["prefix_blocks"].combine_chunks()
    del table
    lengths = pc.fill_null(pc.list_value_length(blocks), 0).to_numpy().astype(np.int64)
    values = pc.list_flatten(blocks).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    del blocks
    parent = infer_parents_from_blocks(values, lengths, min_shared_blocks=min_shared_blocks, **tokens)
    del values
    links = _tree_links(rid, ts, parent, dangling=np.zeros(rid.size, dtype=bool))
    return links, {"n_out_of_order": int(links["out_of_order"].sum())}


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
    return (
        links.group_by("conversation")
        .agg(
            turns=pl.len(),
            depth=pl.col("turn").max(),
            first_s=pl.col("timestamp").min(),
            last_s=pl.col("timestamp").max(),
            itt_count=pl.col("itt_s").count(),
            mean_itt_s=pl.col("itt_s").mean(),
            median_itt_s=pl.col("itt_s").median(),
            max_itt_s=pl.col("itt_s").max(),
            dangling=pl.col("dangling").any(),
            identified=pl.col("identified").any() if "identified" in links.columns else pl.lit(True),
        )
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
