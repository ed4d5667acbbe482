r"""Where prefix reuse comes from, and how much of each prompt is shared (issue 15, item 1).

Every block an infinite prefix cache serves (:func:`servelab.analysis.prefix_reuse.infinite_cache_hits`:
its whole prefix was seen in an earlier request) is credited to exactly one *source*, so that the
sources' shares add up to the hit rate. A block is identified by its whole prefix (the rolling hash
of :func:`servelab.analysis.block_hashes.prefix_hashes`); *the holders* of a block are all the
trace's requests whose block list starts with that prefix. In order of precedence:

``system``
    Shared prompts: the block lies within a *common prefix* of its request (a prefix at least as
    long as the block's that the request starts with and that
    :class:`~servelab.analysis.shared_prefixes.CommonPrefixRule` calls common: many distinct
    continuations, or several clients), and its holders come from at least two known clients,
    or the trace cannot tell (no client ids, or no holder with a known client).
``template``
    Per-client templates: within a common prefix, and every holder with a known client has the
    same one (only on traces with client ids).
``conversation``
    Conversation history: not within a common prefix, and an earlier request of the same
    conversation (by :func:`~servelab.analysis.conversations.link_conversations`) holds the
    block.
``other``
    Every other hit: repeated prompts and prefixes shared by a few requests that are neither
    common nor linked.

*Shared* and *unique* prompt tokens of a request: the tokens of its blocks that some other
request of the trace holds (before or after it), and the rest.

Every step is a hash group-by, a sort-free flag or a segmented reduction over the flat block
arrays: never a loop over requests. This module must not import fitting, generator, figures or
matplotlib; its results are small tables (per source, per window, quantiles), never block lists.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from servelab.analysis.shared_prefixes import CommonPrefixRule, prefix_statistics

__all__ = [
    "SOURCES",
    "RequestSharing",
    "ReuseSources",
    "classify_hits",
    "common_prefix_blocks",
    "request_sharing",
    "reuse_sources",
    "sharing_from_sums",
]

#: the sources, in order of precedence; code 0 in :func:`classify_hits` is a miss
SOURCES = ("system", "template", "conversation", "other")


@dataclass(frozen=True)
class ReuseSources:
    """Infinite-cache hits by source.

    Attributes
    ----------
    n_blocks, n_tokens : int
        All blocks and prompt tokens.
    table : polars.DataFrame
        One row per source of :data:`SOURCES`: ``source``, ``hit_blocks``, ``hit_tokens``,
        ``block_share`` and ``token_share`` (of all blocks / tokens; they add up to the hit
        rates).
    by_window : polars.DataFrame
        ``window_start_s``, ``source``, ``hit_blocks``, ``hit_tokens``, ``block_share``,
        ``token_share`` (of the window's blocks / tokens), every source in every window.
    has_clients, has_conversations : bool
        Whether client ids and conversation links were available (without clients ``template``
        is empty; without links ``conversation`` is).
    rule : str
        The common-prefix rule in words.
    """

    n_blocks: int
    n_tokens: int
    table: pl.DataFrame
    by_window: pl.DataFrame
    has_clients: bool
    has_conversations: bool
    rule: str

    def to_dict(self) -> dict:
        out = {"has_clients": self.has_clients, "has_conversations": self.has_conversations, "rule": self.rule}
        for row in self.table.iter_rows(named=True):
            out[f"{row['source']}_block_share"] = row["block_share"]
            out[f"{row['source']}_token_share"] = row["token_share"]
        return out


@dataclass(frozen=True)
class RequestSharing:
    """Shared and unique prompt tokens per request (see the module docstring).

    Attributes
    ----------
    n_requests : int
        Requests with at least one block.
    shared_tokens, unique_tokens : int
        Totals over the trace.
    quantiles : polars.DataFrame
        ``quantile``, ``shared_tokens``, ``unique_tokens``, ``shared_share`` (per-request
        share of shared tokens) at 0, 0.1, 0.25, 0.5, 0.75, 0.9 and 1.
    histogram : polars.DataFrame
        ``share_from``, ``share_to``, ``requests``: requests per tenth of shared share (the
        last bin holds share 1).
    """

    n_requests: int
    shared_tokens: int
    unique_tokens: int
    quantiles: pl.DataFrame
    histogram: pl.DataFrame

    @property
    def shared_share(self) -> float:
        """Share of all prompt tokens that are shared."""
        total = self.shared_tokens + self.unique_tokens
        return self.shared_tokens / total if total else float("nan")

    def to_dict(self) -> dict:
        return {"n_requests": self.n_requests, "shared_tokens": self.shared_tokens,
                "unique_tokens": self.unique_tokens, "shared_share": self.shared_share}


def _request_index(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Request of each block and its position in the request."""
    lengths = np.asarray(lengths, dtype=np.int64)
    req = np.repeat(np.arange(lengths.size, dtype=np.int64), lengths)
    pos = np.arange(req.size, dtype=np.int64) - (np.cumsum(lengths) - lengths)[req]
    return req, pos


def common_prefix_blocks(keys: np.ndarray, values: np.ndarray, lengths: np.ndarray, *,
                         clients: np.ndarray | None = None, rule: CommonPrefixRule = CommonPrefixRule(),
                         shared: np.ndarray | None = None) -> np.ndarray:
    """Per block (flat order): lies within a common prefix its request starts with.

    Parameters
    ----------
    keys : numpy.ndarray of uint64
        Prefix hashes of the blocks (:func:`~servelab.analysis.block_hashes.prefix_hashes`).
    values, lengths
        Flattened block ids and list lengths.
    clients : numpy.ndarray of int64, optional
        Client code per request (-1 unknown).
    rule : CommonPrefixRule
    shared : numpy.ndarray of bool, optional
        Per block: another request holds it (saves a hash pass when the caller has it).

    Returns
    -------
    numpy.ndarray of bool
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    req, pos = _request_index(lengths)
    if keys.size == 0 or not rule.active:
        return np.zeros(keys.size, dtype=bool)
    # only prefixes continued by two or more requests can be common (held by two or more: a superset)
    continuing = pos < lengths[req] - 1
    if shared is None:
        cont = np.flatnonzero(continuing)
        cont = cont[pl.Series(keys[cont], dtype=pl.UInt64).is_duplicated().to_numpy()]
    else:
        cont = np.flatnonzero(continuing & shared)
    del continuing
    stats = prefix_statistics(keys[cont], np.asarray(values, dtype=np.int64)[cont + 1],
                              clients=None if clients is None else np.asarray(clients, dtype=np.int64)[req[cont]])
    common_keys = stats.filter(rule.common(stats))["key"]
    del stats
    is_common = pl.Series(keys, dtype=pl.UInt64).is_in(common_keys.implode()).to_numpy()
    # a block lies within a common prefix when a common prefix at its position or later starts the request
    last = np.zeros(lengths.size, dtype=np.int64)
    np.maximum.at(last, req[is_common], pos[is_common] + 1)
    return pos < last[req]


def _multi_client_blocks(keys: np.ndarray, block_clients: np.ndarray, subset: np.ndarray) -> np.ndarray:
    """For the blocks of ``subset``: their holders have two or more known clients, or none."""
    frame = pl.DataFrame({"key": pl.Series(keys[subset], dtype=pl.UInt64), "client": block_clients[subset]})
    per_key = frame.filter(pl.col("client") >= 0).group_by("key").agg(n=pl.col("client").n_unique())
    single = per_key.filter(pl.col("n") == 1)["key"]
    return ~frame["key"].is_in(single.implode()).to_numpy()


def classify_hits(keys: np.ndarray, values: np.ndarray, lengths: np.ndarray, hits: np.ndarray, *,
                  clients: np.ndarray | None = None, conversations: np.ndarray | None = None,
                  rule: CommonPrefixRule = CommonPrefixRule(), shared: np.ndarray | None = None) -> np.ndarray:
    """Source code of every block (flat order): 0 miss, else ``1 + SOURCES.index(source)``.

    Parameters
    ----------
    keys, values, lengths
        Prefix hashes, block ids and list lengths (requests in arrival order).
    hits : numpy.ndarray of bool
        Infinite-cache hits per block.
    clients : numpy.ndarray of int64, optional
        Client code per request (-1 unknown); None: the trace has no client ids.
    conversations : numpy.ndarray of int64, optional
        Conversation id per request (a request alone is its own conversation); None: no links.
    rule : CommonPrefixRule
        Which prefixes are common.
    shared : numpy.ndarray of bool, optional
        Per block: another request holds it (:func:`common_prefix_blocks`).
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    hits = np.asarray(hits, dtype=bool)
    req, _ = _request_index(lengths)
    code = np.zeros(keys.size, dtype=np.int8)
    common = common_prefix_blocks(keys, values, lengths, clients=clients, rule=rule, shared=shared) & hits
    if clients is None:
        code[common] = 1
    else:
        block_clients = np.asarray(clients, dtype=np.int64)[req]
        at = np.flatnonzero(common)
        multi = _multi_client_blocks(keys, block_clients, at)
        code[at[multi]] = 1
        code[at[~multi]] = 2
    rest = np.flatnonzero(hits & ~common)
    if conversations is not None and rest.size:
        conv = np.asarray(conversations, dtype=np.int64)[req]
        # held by an earlier request of the same conversation: the (block, conversation) pair seen before
        pair = pl.DataFrame({"key": pl.Series(keys, dtype=pl.UInt64), "conv": conv})
        earlier = ~pair.select(pl.struct("key", "conv").is_first_distinct())["key"].to_numpy()
        in_conv = earlier[rest]
        code[rest[in_conv]] = 3
        rest = rest[~in_conv]
    code[rest] = 4
    return code


def reuse_sources(codes: np.ndarray, lengths: np.ndarray, tokens: np.ndarray, *, timestamps: np.ndarray | None = None,
                  window_s: float = 3600.0, has_clients: bool, has_conversations: bool,
                  rule: CommonPrefixRule = CommonPrefixRule()) -> ReuseSources:
    """Tables of hits by source from :func:`classify_hits` codes.

    Parameters
    ----------
    codes : numpy.ndarray of int8
        Per block, from :func:`classify_hits`.
    lengths : numpy.ndarray of int
        List lengths (requests in arrival order).
    tokens : numpy.ndarray of int
        Tokens per block.
    timestamps : numpy.ndarray, optional
        Arrival time per request (default: one window).
    window_s : float
        Window of the per-window table (> 0).
    has_clients, has_conversations : bool
        What :func:`classify_hits` was given (recorded in the result).
    rule : CommonPrefixRule
    """
    if not (window_s > 0):
        raise ValueError(f"window_s must be > 0 seconds; got {window_s!r}")
    lengths = np.asarray(lengths, dtype=np.int64)
    codes = np.asarray(codes, dtype=np.int64)
    tokens = np.asarray(tokens, dtype=np.int64)
    n_src = len(SOURCES) + 1
    blocks = np.bincount(codes, minlength=n_src)
    toks = np.bincount(codes, weights=tokens, minlength=n_src)
    n_blocks, n_tokens = int(lengths.sum()), int(tokens.sum())
    table = pl.DataFrame({
        "source": list(SOURCES), "hit_blocks": blocks[1:].astype(np.int64), "hit_tokens": toks[1:].astype(np.int64),
        "block_share": blocks[1:] / n_blocks if n_blocks else np.full(n_src - 1, np.nan),
        "token_share": toks[1:] / n_tokens if n_tokens else np.full(n_src - 1, np.nan)})
    ts = np.zeros(lengths.size) if timestamps is None else np.asarray(timestamps, dtype=float)
    start = np.floor(ts / window_s) * window_s
    win_codes, win = np.unique(start, return_inverse=True)
    block_win = np.repeat(win, lengths)
    cell = block_win * n_src + codes
    nw = win_codes.size
    cb = np.bincount(cell, minlength=nw * n_src).reshape(nw, n_src)
    ct = np.bincount(cell, weights=tokens, minlength=nw * n_src).reshape(nw, n_src)
    wb, wt = cb.sum(axis=1, keepdims=True), ct.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        bs, tshare = cb[:, 1:] / wb, ct[:, 1:] / wt
    by_window = pl.DataFrame({
        "window_start_s": np.repeat(win_codes, n_src - 1), "source": list(SOURCES) * nw,
        "hit_blocks": cb[:, 1:].ravel().astype(np.int64), "hit_tokens": ct[:, 1:].ravel().astype(np.int64),
        "block_share": bs.ravel(), "token_share": tshare.ravel()})
    return ReuseSources(n_blocks=n_blocks, n_tokens=n_tokens, table=table, by_window=by_window,
                        has_clients=bool(has_clients), has_conversations=bool(has_conversations),
                        rule=rule.describe())


_QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


def request_sharing(keys: np.ndarray, lengths: np.ndarray, tokens: np.ndarray, *,
                    shared: np.ndarray | None = None) -> RequestSharing:
    """Shared and unique prompt tokens per request (see the module docstring).

    Parameters
    ----------
    keys : numpy.ndarray of uint64
        Prefix hashes of the blocks.
    lengths : numpy.ndarray of int
        List lengths.
    tokens : numpy.ndarray of int
        Tokens per block.
    shared : numpy.ndarray of bool, optional
        Per block: another request holds it (computed from ``keys`` when not given).
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    tokens = np.asarray(tokens, dtype=np.int64)
    if shared is None:
        shared = pl.Series(keys, dtype=pl.UInt64).is_duplicated().to_numpy()
    req = np.repeat(np.arange(lengths.size, dtype=np.int64), lengths)
    st = np.bincount(req, weights=np.where(shared, tokens, 0), minlength=lengths.size)
    tt = np.bincount(req, weights=tokens, minlength=lengths.size)
    return sharing_from_sums(st, tt, lengths)


def sharing_from_sums(shared_tokens: np.ndarray, tokens: np.ndarray, lengths: np.ndarray) -> RequestSharing:
    """:class:`RequestSharing` from per-request token sums (shared and all prompt tokens per request);
    requests with no blocks (``lengths == 0``) are left out. :func:`request_sharing` sums them from
    blocks; the sampled prefix pass (:mod:`servelab.analysis.prefix_sampled`) streams them."""
    keep = np.asarray(lengths) > 0
    st, tt = np.asarray(shared_tokens, dtype=float)[keep], np.asarray(tokens, dtype=float)[keep]
    ut = tt - st
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(tt > 0, st / np.where(tt > 0, tt, 1), 0.0)
    q = np.asarray(_QUANTILES)
    if st.size:
        quant = pl.DataFrame({"quantile": q, "shared_tokens": np.quantile(st, q), "unique_tokens": np.quantile(ut, q),
                              "shared_share": np.quantile(share, q)})
    else:
        quant = pl.DataFrame({"quantile": q, "shared_tokens": np.full(q.size, np.nan),
                              "unique_tokens": np.full(q.size, np.nan), "shared_share": np.full(q.size, np.nan)})
    edges = np.linspace(0.0, 1.0, 11)
    counts = np.histogram(share, bins=edges)[0]
    hist = pl.DataFrame({"share_from": edges[:-1], "share_to": edges[1:], "requests": counts.astype(np.int64)})
    return RequestSharing(n_requests=int(keep.sum()), shared_tokens=int(st.sum()), unique_tokens=int(ut.sum()),
                          quantiles=quant, histogram=hist)
