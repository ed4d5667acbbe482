r"""Prefix reuse: how much of the prompt load a prefix (KV) cache could serve (issue 15, item 1).

A cached block can serve a request only as part of a cached *prefix*: a block is identified by
its whole prefix (the rolling hash of :func:`servelab.analysis.block_hashes.prefix_hashes`), and a
request reuses the longest prefix of its blocks that the cache holds.

Infinite cache
    A request hits the longest prefix of its blocks already seen by any earlier request (in
    arrival order). Hit rates are shares of blocks and of tokens (every block holds
    ``block_size`` tokens except a request's last, which holds the rest of its prompt when
    ``input_tokens`` is known), overall, per window of arrival time and per client.
LRU cache of C blocks, all capacities in one pass
    Blocks are accessed request by request, each request's blocks from its last to its first
    (so that a prefix is always used more recently than its extensions, as vLLM frees a finished
    request's blocks tail first). The *stack (reuse) distance* of an access is the number of
    distinct other blocks accessed since the previous access of the same block (none: a cold
    miss); an LRU cache of C blocks holds the block iff that distance is below C (Mattson et
    al., 1970). A request's block *k* is served iff blocks ``0..k`` all are, so its *prefix
    distance* is the running maximum of the stack distances along the request, and the hit rate
    at every capacity follows from one sorted array of prefix distances.

    Stack distances are computed without a loop over accesses: with ``prev(i)`` the previous
    access of access *i*'s block, the distinct blocks accessed in between are
    ``#{q < i : prev(q) < prev(i)} - prev(i) - 1``, a dominance count answered by a merge-sort
    tree built level by level (merges of sorted runs and binary searches, O(N log^2 N) for N
    accesses at worst).

This module must not import fitting, generator, figures or matplotlib, and it is not wired into
reports or the CLI. Results are tables of rates and counts, never the blocks themselves.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow.compute as pc

from servelab.analysis.block_hashes import prefix_hashes
from servelab.analysis.exceptions import NotApplicableError
from servelab.analysis.store import TraceStore

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "PrefixReuse",
    "block_tokens",
    "infinite_cache_hits",
    "lru_hit_curve",
    "prefix_distances",
    "prefix_reuse",
    "reuse_from_blocks",
    "stack_distances",
]

#: tokens per block in Mooncake and Bailian ``hash_ids``
DEFAULT_BLOCK_SIZE = 512

_ANALYSIS = "prefix reuse analysis"


@dataclass(frozen=True)
class PrefixReuse:
    """Prefix reuse of one trace.

    Attributes
    ----------
    block_size : int
    n_requests, n_blocks, n_tokens : int
        Requests with at least one block, their blocks and prompt tokens.
    hit_blocks, hit_tokens : int
        Served by an infinite cache.
    by_window : polars.DataFrame
        ``window_start_s``, ``requests``, ``blocks``, ``hit_blocks``, ``block_hit_rate``,
        ``tokens``, ``hit_tokens``, ``token_hit_rate`` per window of arrival time.
    by_client : polars.DataFrame or None
        The same columns per ``client_id`` (None without client ids).
    lru : polars.DataFrame
        ``capacity_blocks``, ``block_hit_rate``, ``token_hit_rate`` of an LRU cache.
    reuse_distances : polars.DataFrame
        Histogram of stack distances of re-accesses: ``distance_from``, ``distance_to``
        (bins ``[from, to)``), ``accesses``, ``share`` (of all accesses; the rest are cold).
    n_cold : int
        Accesses of a block never accessed before.
    """

    block_size: int
    n_requests: int
    n_blocks: int
    n_tokens: int
    hit_blocks: int
    hit_tokens: int
    by_window: pl.DataFrame
    by_client: pl.DataFrame | None
    lru: pl.DataFrame
    reuse_distances: pl.DataFrame
    n_cold: int

    @property
    def block_hit_rate(self) -> float:
        """Share of blocks an infinite cache serves."""
        return self.hit_blocks / self.n_blocks if self.n_blocks else float("nan")

    @property
    def token_hit_rate(self) -> float:
        """Share of prompt tokens an infinite cache serves."""
        return self.hit_tokens / self.n_tokens if self.n_tokens else float("nan")

    def to_dict(self) -> dict:
        return {"block_size": self.block_size, "n_requests": self.n_requests, "n_blocks": self.n_blocks,
                "n_tokens": self.n_tokens, "hit_blocks": self.hit_blocks, "hit_tokens": self.hit_tokens,
                "block_hit_rate": self.block_hit_rate, "token_hit_rate": self.token_hit_rate, "n_cold": self.n_cold}


# --------------------------------------------------------------------------------- blocks
def block_tokens(lengths: np.ndarray, *, input_tokens: np.ndarray | None = None,
                 block_size: int = DEFAULT_BLOCK_SIZE) -> np.ndarray:
    """Tokens held by each block (flat order): ``block_size``, except a request's last block,
    which holds ``input_tokens - (L - 1) * block_size`` when that lies in ``[1, block_size]``."""
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer; got {block_size!r}")
    lengths = np.asarray(lengths, dtype=np.int64)
    out = np.full(int(lengths.sum()), block_size, dtype=np.int64)
    if input_tokens is not None:
        tin = np.asarray(input_tokens, dtype=np.int64)
        rest = tin - (lengths - 1) * block_size
        has = (lengths > 0) & (rest >= 1) & (rest <= block_size)
        out[(np.cumsum(lengths) - 1)[has]] = rest[has]
    return out


def infinite_cache_hits(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Per block (flat order): served by an infinite prefix cache (its prefix was seen earlier).

    A prefix's key includes its length, so one request never repeats a key: a block is a hit
    iff its key occurred in the flat order before, i.e. in an earlier request.
    """
    keys = prefix_hashes(values, lengths)
    return ~pl.Series(keys, dtype=pl.UInt64).is_first_distinct().to_numpy()


def _access_order(lengths: np.ndarray) -> np.ndarray:
    """Flat block indices in access order: request by request, last block first."""
    lengths = np.asarray(lengths, dtype=np.int64)
    ends = np.cumsum(lengths)
    req = np.repeat(np.arange(lengths.size), lengths)
    pos = np.arange(int(ends[-1]) if lengths.size else 0) - (ends - lengths)[req]
    return (ends[req] - 1 - pos).astype(np.int64)


def _count_before_below(x: np.ndarray, qi: np.ndarray, qv: np.ndarray) -> np.ndarray:
    """For each query, ``#{q < qi : x[q] < qv}`` (x, qv >= 0), by a merge-sort tree level by level."""
    n = x.size
    out = np.zeros(qi.size, dtype=np.int64)
    if n == 0 or qi.size == 0:
        return out
    width = int(max(int(x.max()), int(qv.max()))) + 2
    # level l holds (position >> l) * width + x sorted: the elements of each aligned block of
    # 2^l positions in order of x. Level 0 is sorted by construction; each next level re-keys
    # and merges pairs of sorted runs (a stable sort finds and merges the runs)
    comp = np.arange(n, dtype=np.int64) * width + x
    for level in range(max(1, math.ceil(math.log2(n)) + 1)):
        if level:
            comp = np.sort(((comp // width) >> 1) * width + comp % width, kind="stable")
        has = ((qi >> level) & 1).astype(bool)
        if not has.any():
            continue
        blk = (qi[has] >> level) - 1
        lo = np.searchsorted(comp, blk * width, side="left")
        hi = np.searchsorted(comp, blk * width + qv[has], side="left")
        out[has] += hi - lo
    return out


def stack_distances(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """LRU stack distance of every block access (flat order); -1 for a cold (first) access.

    See the module docstring for the access order and the method.
    """
    keys = prefix_hashes(values, lengths)
    order = _access_order(lengths)
    seq = keys[order]
    n = seq.size
    # previous access of the same block: neighbours in a stable sort by key
    by_key = np.argsort(seq, kind="stable")
    sk = seq[by_key]
    same = np.zeros(n, dtype=bool)
    same[1:] = sk[1:] == sk[:-1]
    prev = np.full(n, -1, dtype=np.int64)
    prev[by_key[1:][same[1:]]] = by_key[:-1][same[1:]]
    dist = np.full(n, -1, dtype=np.int64)
    warm = np.flatnonzero(prev >= 0)
    if warm.size:
        # distinct blocks in (p, i) = #{q < i : prev(q) < p} - p - 1; prev shifted by +1 to be >= 0
        count = _count_before_below(prev + 1, warm, prev[warm] + 1)
        dist[warm] = count - prev[warm] - 1
    out = np.empty(n, dtype=np.int64)
    out[order] = dist
    return out


def prefix_distances(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Per block (flat order): the smallest LRU capacity minus one at which the block is served
    as part of a cached prefix: the running maximum of stack distances along its request
    (``inf`` when a block of the prefix is cold). An LRU cache of C blocks serves it iff the
    value is below C."""
    lengths = np.asarray(lengths, dtype=np.int64)
    d = stack_distances(values, lengths)
    if d.size == 0:
        return d.astype(float)
    req = np.repeat(np.arange(lengths.size, dtype=np.int64), lengths)
    # a segmented running maximum: cold -> top; lift each request above every earlier one,
    # accumulate, lower again
    top = int(d.max()) + 1
    lifted = np.where(d >= 0, d, top) + req * (top + 1)
    run = (np.maximum.accumulate(lifted) - req * (top + 1)).astype(float)
    run[run >= top] = np.inf
    return run


def lru_hit_curve(distances: np.ndarray, *, tokens: np.ndarray | None = None,
                  capacities: np.ndarray | None = None) -> pl.DataFrame:
    """Hit rates of an LRU cache at many capacities from :func:`prefix_distances`.

    Parameters
    ----------
    distances : numpy.ndarray
        Prefix distances of all blocks.
    tokens : numpy.ndarray, optional
        Tokens per block (default: every block weighs one).
    capacities : numpy.ndarray of int, optional
        Cache sizes in blocks (default: powers of two up to the first that serves every
        reusable block).

    Returns
    -------
    polars.DataFrame
        ``capacity_blocks``, ``block_hit_rate``, ``token_hit_rate``.
    """
    d = np.asarray(distances, dtype=float)
    w = np.ones(d.size) if tokens is None else np.asarray(tokens, dtype=float)
    finite = np.isfinite(d)
    if capacities is None:
        top = float(d[finite].max()) + 1 if finite.any() else 1.0
        capacities = 2 ** np.arange(0, max(1, math.ceil(math.log2(max(top, 1.0)))) + 1)
    caps = np.asarray(capacities, dtype=np.int64)
    if caps.size and caps.min() < 1:
        raise ValueError(f"capacities must be >= 1 block; got {int(caps.min())!r}")
    o = np.argsort(d[finite], kind="stable")
    ds = d[finite][o]
    cw = np.concatenate([[0.0], np.cumsum(w[finite][o])])
    k = np.searchsorted(ds, caps, side="left")  # blocks with distance < C
    return pl.DataFrame({
        "capacity_blocks": caps,
        "block_hit_rate": k / d.size if d.size else np.full(caps.size, np.nan),
        "token_hit_rate": cw[k] / w.sum() if d.size else np.full(caps.size, np.nan),
    })


def _distance_histogram(stack: np.ndarray) -> pl.DataFrame:
    warm = stack[stack >= 0]
    top = int(warm.max()) + 1 if warm.size else 1
    edges = np.concatenate([[0], 2 ** np.arange(0, math.ceil(math.log2(top)) + 1)]) if top > 1 else np.array([0, 1])
    counts = np.histogram(warm, bins=edges)[0] if warm.size else np.zeros(edges.size - 1, dtype=np.int64)
    return pl.DataFrame({"distance_from": edges[:-1].astype(np.int64), "distance_to": edges[1:].astype(np.int64),
                         "accesses": counts.astype(np.int64),
                         "share": counts / stack.size if stack.size else np.zeros(counts.size)})


# --------------------------------------------------------------------------------- reuse
def reuse_from_blocks(values: np.ndarray, lengths: np.ndarray, *, input_tokens: np.ndarray | None = None,
                      timestamps: np.ndarray | None = None, clients: np.ndarray | None = None,
                      block_size: int = DEFAULT_BLOCK_SIZE, window_s: float = 3600.0,
                      capacities: np.ndarray | None = None) -> PrefixReuse:
    """Prefix reuse of block lists in arrival order (see the module docstring).

    Parameters
    ----------
    values, lengths
        Flattened block ids and list lengths, one list per request, requests in arrival order.
    input_tokens : numpy.ndarray, optional
        Prompt lengths (the last block's tokens); negative for unknown.
    timestamps : numpy.ndarray, optional
        Arrival times (s) for the per-window table (default: one window).
    clients : polars.Series or numpy.ndarray, optional
        Client label of each request (None for unknown) for the per-client table.
    block_size : int
    window_s : float
        Window length of the per-window table.
    capacities : numpy.ndarray of int, optional
        LRU capacities in blocks (see :func:`lru_hit_curve`).
    """
    if not (window_s > 0):
        raise ValueError(f"window_s must be > 0 seconds; got {window_s!r}")
    lengths = np.asarray(lengths, dtype=np.int64)
    values = np.asarray(values).astype(np.int64, copy=False)
    keep = lengths > 0
    tokens = block_tokens(lengths, input_tokens=input_tokens, block_size=block_size)
    hits = infinite_cache_hits(values, lengths)
    stack = stack_distances(values, lengths)
    dist = prefix_distances(values, lengths)
    req = np.repeat(np.arange(lengths.size), lengths)
    ts = np.zeros(lengths.size) if timestamps is None else np.asarray(timestamps, dtype=float)
    per_block = pl.DataFrame({"req": req, "hit": hits, "tokens": tokens, "hit_tokens": np.where(hits, tokens, 0)})
    per_req = per_block.group_by("req").agg(blocks=pl.len(), hit_blocks=pl.col("hit").sum(),
                                            tokens=pl.col("tokens").sum(), hit_tokens=pl.col("hit_tokens").sum())

    def _rates(frame: pl.DataFrame, by: str) -> pl.DataFrame:
        return frame.group_by(by).agg(requests=pl.len(), blocks=pl.col("blocks").sum(),
                                      hit_blocks=pl.col("hit_blocks").sum(), tokens=pl.col("tokens").sum(),
                                      hit_tokens=pl.col("hit_tokens").sum()).with_columns(
            block_hit_rate=pl.col("hit_blocks") / pl.col("blocks"),
            token_hit_rate=pl.col("hit_tokens") / pl.col("tokens")).sort(by, nulls_last=True).select(
            by, "requests", "blocks", "hit_blocks", "block_hit_rate", "tokens", "hit_tokens", "token_hit_rate")

    reqs = per_req["req"].to_numpy()
    windows = per_req.with_columns(window_start_s=pl.Series(np.floor(ts[reqs] / window_s) * window_s))
    by_window = _rates(windows, "window_start_s")
    by_client = None
    if clients is not None:
        labels = clients if isinstance(clients, pl.Series) else pl.Series(np.asarray(clients, dtype=object).tolist())
        by_client = _rates(per_req.with_columns(client_id=labels.gather(reqs)), "client_id")
    return PrefixReuse(
        block_size=int(block_size), n_requests=int(keep.sum()), n_blocks=int(lengths.sum()),
        n_tokens=int(tokens.sum()), hit_blocks=int(hits.sum()), hit_tokens=int(tokens[hits].sum()),
        by_window=by_window, by_client=by_client,
        lru=lru_hit_curve(dist, tokens=tokens, capacities=capacities),
        reuse_distances=_distance_histogram(stack), n_cold=int((stack < 0).sum()),
    )


def prefix_reuse(store: TraceStore, *, block_size: int = DEFAULT_BLOCK_SIZE, window_s: float = 3600.0,
                 capacities: np.ndarray | None = None) -> PrefixReuse:
    """Prefix reuse of a store's requests (needs ``prefix_blocks``; uses ``input_tokens`` and
    ``client_id`` when present). See :func:`reuse_from_blocks`.

    Raises
    ------
    NotApplicableError
        If the trace has no ``prefix_blocks`` or no request carries a block.
    """
    store.require("prefix_blocks", analysis=_ANALYSIS)
    cols = ["request_id", "timestamp", "prefix_blocks",
            *[c for c in ("input_tokens", "client_id") if c in store.columns]]
    table = store.read_arrow(cols)
    rid = table["request_id"].to_numpy()
    if rid.size > 1 and not bool(np.all(rid[1:] > rid[:-1])):
        table = table.sort_by([("request_id", "ascending")])
    ts = table["timestamp"].to_numpy().astype(float)
    tin = pc.fill_null(table["input_tokens"], -1).to_numpy().astype(np.int64) if "input_tokens" in cols else None
    clients = pl.from_arrow(table["client_id"]) if "client_id" in cols else None
    blocks = table["prefix_blocks"].combine_chunks()
    del table
    lengths = pc.fill_null(pc.list_value_length(blocks), 0).to_numpy().astype(np.int64)
    values = pc.list_flatten(blocks).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    if not (lengths > 0).any():
        raise NotApplicableError(_ANALYSIS, reason="no request carries prefix blocks")
    return reuse_from_blocks(values, lengths, input_tokens=tin, timestamps=ts, clients=clients,
                             block_size=block_size, window_s=window_s, capacities=capacities)
