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
    distance* is the running maximum of the stack distances along the request (with this access
    order the stack distance never decreases along a request, so it is the stack distance
    itself), and the hit rate at every capacity follows from one sorted array of distances.

    Stack distances are computed without a loop over accesses. With ``p(k)`` the last earlier
    request holding the request's prefix of k+1 blocks (found by one stable sort of the prefix
    keys), ``p`` never increases along a request, and every block of a maximal *run* of equal
    ``p`` (starting at position ``a`` of a request of ``L`` blocks) has the same stack distance
    ``|U| + L - 1 - a``, where ``|U|`` is the number of distinct blocks held by requests
    ``p+1 .. r-1``: the blocks of runs of those requests whose own ``p`` is at most ``p``. That
    weighted dominance count over runs (a few per request, not one per block) is answered by a
    wavelet matrix: one stable partition and two prefix sums per bit of the request index, no
    sort, O(R log N) for R runs and N requests.
Offline optimum
    Not computed. Belady's OPT is a stack algorithm too (Mattson et al., 1970), but its one-pass
    form reorders a priority stack access by access (by next use), which has no vectorised form
    here, and with prefixes a cached block is useful only with its whole prefix. The infinite
    cache is the upper bound reported. ``benchmarks/bench_prefix_generation.py --opt`` runs
    Belady's MIN per capacity (a sequential heap pass, checked against exhaustive search) as a
    bound beside the LRU curve.

This module must not import fitting, generator, figures or matplotlib. Results are tables of
rates and counts, never the blocks themselves (:class:`BlockState` and :class:`TraceBlocks` are
the arrays one analysis passes on, not results).
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
    "BlockState",
    "PrefixReuse",
    "TraceBlocks",
    "block_state",
    "block_tokens",
    "hit_rate_table",
    "infinite_cache_hits",
    "lru_hit_curve",
    "prefix_distances",
    "prefix_reuse",
    "read_blocks",
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
    keys = prefix_hashes(np.asarray(values).astype(np.int64, copy=False), lengths)
    return ~pl.Series(keys, dtype=pl.UInt64).is_first_distinct().to_numpy()


def previous_holders(keys: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per block (flat order): the last earlier request holding the same prefix (-1 if none), and
    whether any other request holds it.

    Parameters
    ----------
    keys : numpy.ndarray of uint64
        Prefix hashes (:func:`~servelab.analysis.block_hashes.prefix_hashes`).
    lengths : numpy.ndarray of int
        List lengths, requests in arrival order.

    Returns
    -------
    prev : numpy.ndarray of int32 (int64 above 2^31 requests)
    shared : numpy.ndarray of bool
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    n = keys.size
    prev = np.full(n, -1, dtype=np.int32 if lengths.size < 2**31 - 1 else np.int64)
    shared = np.zeros(n, dtype=bool)
    if n == 0:
        return prev, shared
    # a stable sort keeps equal keys in flat (arrival) order; a request never repeats a key
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    same = sk[1:] == sk[:-1]
    del sk
    later, earlier = order[1:][same], order[:-1][same]
    del order, same
    ends = np.cumsum(lengths)
    prev[later] = np.searchsorted(ends, earlier, side="right")
    shared[later] = True
    shared[earlier] = True
    return prev, shared


@dataclass(frozen=True)
class _Runs:
    """Maximal runs of blocks of one request with the same previous holder (internal)."""

    req: np.ndarray      # request of each run
    prev: np.ndarray     # previous holder (-1: cold)
    start: np.ndarray    # flat index of the run's first block
    length: np.ndarray   # blocks in the run
    distance: np.ndarray  # LRU stack distance of every block of the run (-1: cold)

    def tokens(self, lengths: np.ndarray, *, input_tokens: np.ndarray | None = None,
               block_size: int = DEFAULT_BLOCK_SIZE) -> np.ndarray:
        """Tokens of each run (:func:`block_tokens` summed per run, without a per-block array)."""
        lengths = np.asarray(lengths, dtype=np.int64)
        out = self.length.astype(np.int64) * block_size
        if input_tokens is not None and out.size:
            tin = np.asarray(input_tokens, dtype=np.int64)
            rest = tin - (lengths - 1) * block_size
            has = (lengths > 0) & (rest >= 1) & (rest <= block_size)
            last_run = np.searchsorted(self.start, np.cumsum(lengths) - 1, side="right") - 1
            out[last_run[has]] += rest[has] - block_size
        return out


@dataclass(frozen=True)
class BlockState:
    """What one pass over a trace's blocks finds, for the analyses that follow (arrays, not a result).

    Attributes
    ----------
    keys : numpy.ndarray of uint64
        Prefix hash per block.
    prev : numpy.ndarray of int32 or int64
        Last earlier request holding the block (-1: cold; an infinite cache serves the rest).
    shared : numpy.ndarray of bool
        Another request of the trace holds the block.
    runs : _Runs
        Runs of blocks with one previous holder and their LRU stack distance.
    """

    keys: np.ndarray
    prev: np.ndarray
    shared: np.ndarray
    runs: _Runs

    @property
    def hits(self) -> np.ndarray:
        """Per block: served by an infinite cache."""
        return self.prev >= 0


#: blocks hashed per slice of requests (bounds the hash's temporaries)
_HASH_CHUNK = 1 << 22


def chunked_prefix_hashes(values: np.ndarray, lengths: np.ndarray, *, chunk: int = _HASH_CHUNK) -> np.ndarray:
    """:func:`~servelab.analysis.block_hashes.prefix_hashes` over slices of whole requests of about
    ``chunk`` blocks each (the same keys; temporaries of one slice instead of the whole trace)."""
    values = np.asarray(values).astype(np.int64, copy=False)
    lengths = np.asarray(lengths, dtype=np.int64)
    ends = np.cumsum(lengths)
    keys = np.empty(values.size, dtype=np.uint64)
    cuts = np.unique(np.concatenate([[0], np.searchsorted(ends, np.arange(chunk, values.size, chunk)), [lengths.size]]))
    for r0, r1 in zip(cuts[:-1], cuts[1:]):
        b0, b1 = int(ends[r0 - 1]) if r0 else 0, int(ends[r1 - 1]) if r1 else 0
        keys[b0:b1] = prefix_hashes(values[b0:b1], lengths[r0:r1])
    return keys


def block_state(values: np.ndarray, lengths: np.ndarray) -> BlockState:
    """Prefix keys, previous holders and LRU runs of block lists in arrival order."""
    lengths = np.asarray(lengths, dtype=np.int64)
    keys = chunked_prefix_hashes(values, lengths)
    prev, shared = previous_holders(keys, lengths)
    return BlockState(keys=keys, prev=prev, shared=shared, runs=_lru_runs(prev, lengths))


def _weighted_count_below(vals: np.ndarray, weights: np.ndarray, end: np.ndarray, below: np.ndarray) -> np.ndarray:
    """For each query: ``sum(weights[j] for j < end if vals[j] < below)``, by a wavelet matrix.

    One level per bit of the values, most significant first: a stable partition of the values
    by the bit (zeros first) and prefix sums of the zeros' counts and weights; each query range
    follows its threshold's bit down the levels. O((N + Q) log max) with no sort.
    """
    out = np.zeros(end.size, dtype=np.int64)
    if vals.size == 0 or end.size == 0:
        return out
    v = np.asarray(vals, dtype=np.int64)
    w = np.asarray(weights, dtype=np.int64)
    t = np.asarray(below, dtype=np.int64)
    s = np.zeros(end.size, dtype=np.int64)
    e = np.asarray(end, dtype=np.int64).copy()
    for level in range(int(max(int(v.max()), int(t.max()))).bit_length() - 1, -1, -1):
        bit = ((v >> level) & 1).astype(bool)
        zero = ~bit
        z = np.zeros(v.size + 1, dtype=np.int64)
        np.cumsum(zero, out=z[1:])
        wz = np.zeros(v.size + 1, dtype=np.int64)
        np.cumsum(np.where(zero, w, 0), out=wz[1:])
        n_zero = int(z[-1])
        one = ((t >> level) & 1).astype(bool)
        zs, ze = z[s], z[e]
        out[one] += wz[e[one]] - wz[s[one]]
        s = np.where(one, n_zero + s - zs, zs)
        e = np.where(one, n_zero + e - ze, ze)
        v = np.concatenate([v[zero], v[bit]])
        w = np.concatenate([w[zero], w[bit]])
    return out


def _lru_runs(prev: np.ndarray, lengths: np.ndarray) -> _Runs:
    """Runs of blocks with one previous holder and their LRU stack distance (module docstring)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    n = prev.size
    ends = np.cumsum(lengths)
    starts = ends - lengths
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return _Runs(empty, empty, empty, empty, empty)
    first = np.zeros(n, dtype=bool)
    first[starts[lengths > 0]] = True
    first[1:] |= prev[1:] != prev[:-1]
    at = np.flatnonzero(first)
    del first
    req = np.searchsorted(ends, at, side="right")
    run_prev = prev[at].astype(np.int64)
    length = np.diff(np.append(at, n))
    distance = np.full(at.size, -1, dtype=np.int64)
    warm = np.flatnonzero(run_prev >= 0)
    if warm.size:
        # distinct blocks held by requests p+1..r-1 = blocks of runs of requests < r whose previous
        # holder is <= p (first seen after p), less the blocks of requests 0..p (all such)
        first_run = np.searchsorted(req, np.arange(lengths.size), side="left")
        r, p = req[warm], run_prev[warm]
        f = _weighted_count_below(run_prev + 1, length, first_run[r], p + 2)
        between = f - ends[p]
        distance[warm] = between + lengths[r] - 1 - (at[warm] - starts[r])
    return _Runs(req=req, prev=run_prev, start=at, length=length, distance=distance)


def stack_distances(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """LRU stack distance of every block access (flat order); -1 for a cold (first) access.

    See the module docstring for the access order and the method.
    """
    state = block_state(values, lengths)
    return np.repeat(state.runs.distance, state.runs.length)


def prefix_distances(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Per block (flat order): the smallest LRU capacity minus one at which the block is served
    as part of a cached prefix (``inf`` for a cold block). An LRU cache of C blocks serves it iff
    the value is below C. With the documented access order a prefix is always more recent than
    its extensions, so this is the block's own stack distance (it never decreases along a
    request)."""
    d = stack_distances(values, lengths).astype(float)
    d[d < 0] = np.inf
    return d


def lru_hit_curve(distances: np.ndarray, *, tokens: np.ndarray | None = None, blocks: np.ndarray | None = None,
                  capacities: np.ndarray | None = None) -> pl.DataFrame:
    """Hit rates of an LRU cache at many capacities from :func:`prefix_distances`.

    Parameters
    ----------
    distances : numpy.ndarray
        Prefix distances (``inf``: cold), one per block or one per group of blocks.
    tokens : numpy.ndarray, optional
        Tokens per entry (default: one per block).
    blocks : numpy.ndarray of int, optional
        Blocks per entry (default: one).
    capacities : numpy.ndarray of int, optional
        Cache sizes in blocks (default: powers of two up to the first that serves every
        reusable block).

    Returns
    -------
    polars.DataFrame
        ``capacity_blocks``, ``block_hit_rate``, ``token_hit_rate``.
    """
    d = np.asarray(distances, dtype=float)
    b = np.ones(d.size) if blocks is None else np.asarray(blocks, dtype=float)
    w = b if tokens is None else np.asarray(tokens, dtype=float)
    finite = np.isfinite(d)
    if capacities is None:
        top = float(d[finite].max()) + 1 if finite.any() else 1.0
        capacities = 2 ** np.arange(0, max(1, math.ceil(math.log2(max(top, 1.0)))) + 1)
    caps = np.asarray(capacities, dtype=np.int64)
    if caps.size and caps.min() < 1:
        raise ValueError(f"capacities must be >= 1 block; got {int(caps.min())!r}")
    o = np.argsort(d[finite], kind="stable")
    ds = d[finite][o]
    cb = np.concatenate([[0.0], np.cumsum(b[finite][o])])
    cw = np.concatenate([[0.0], np.cumsum(w[finite][o])])
    k = np.searchsorted(ds, caps, side="left")  # entries with distance < C
    return pl.DataFrame({
        "capacity_blocks": caps,
        "block_hit_rate": cb[k] / b.sum() if d.size else np.full(caps.size, np.nan),
        "token_hit_rate": cw[k] / w.sum() if d.size else np.full(caps.size, np.nan),
    })


def _distance_histogram(distance: np.ndarray, blocks: np.ndarray) -> pl.DataFrame:
    """Histogram of stack distances (``-1``: cold) weighted by blocks, power-of-two bins."""
    warm = distance >= 0
    total = float(blocks.sum())
    top = int(distance[warm].max()) + 1 if warm.any() else 1
    edges = np.concatenate([[0], 2 ** np.arange(0, math.ceil(math.log2(top)) + 1)]) if top > 1 else np.array([0, 1])
    counts = (np.histogram(distance[warm], bins=edges, weights=blocks[warm])[0] if warm.any()
              else np.zeros(edges.size - 1))
    return pl.DataFrame({"distance_from": edges[:-1].astype(np.int64), "distance_to": edges[1:].astype(np.int64),
                         "accesses": counts.astype(np.int64),
                         "share": counts / total if total else np.zeros(counts.size)})


# --------------------------------------------------------------------------------- reuse
def reuse_from_blocks(values: np.ndarray, lengths: np.ndarray, *, input_tokens: np.ndarray | None = None,
                      timestamps: np.ndarray | None = None, clients: np.ndarray | None = None,
                      block_size: int = DEFAULT_BLOCK_SIZE, window_s: float = 3600.0,
                      capacities: np.ndarray | None = None, state: BlockState | None = None) -> PrefixReuse:
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
    state : BlockState, optional
        :func:`block_state` of the same blocks, when the caller already has it.
    """
    if not (window_s > 0):
        raise ValueError(f"window_s must be > 0 seconds; got {window_s!r}")
    lengths = np.asarray(lengths, dtype=np.int64)
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer; got {block_size!r}")
    if state is None:
        state = block_state(values, lengths)
    runs = state.runs
    n_req = lengths.size
    # a run is all warm or all cold (one previous holder): every sum is one over runs
    run_tokens = runs.tokens(lengths, input_tokens=input_tokens, block_size=block_size)
    warm = runs.distance >= 0
    per_req = pl.DataFrame({
        "blocks": lengths,
        "hit_blocks": np.bincount(runs.req, weights=np.where(warm, runs.length, 0), minlength=n_req).astype(np.int64),
        "tokens": np.bincount(runs.req, weights=run_tokens, minlength=n_req).astype(np.int64),
        "hit_tokens": np.bincount(runs.req, weights=np.where(warm, run_tokens, 0), minlength=n_req).astype(np.int64)})
    keep = lengths > 0

    ts = np.zeros(n_req) if timestamps is None else np.asarray(timestamps, dtype=float)
    by_window = hit_rate_table(per_req.with_columns(window_start_s=pl.Series(np.floor(ts / window_s) * window_s)),
                       "window_start_s")
    by_client = None
    if clients is not None:
        labels = clients if isinstance(clients, pl.Series) else pl.Series(np.asarray(clients, dtype=object).tolist())
        by_client = hit_rate_table(per_req.with_columns(client_id=labels), "client_id")
    dist = np.where(warm, runs.distance, np.inf)
    hit_blocks = int(runs.length[warm].sum())
    return PrefixReuse(
        block_size=int(block_size), n_requests=int(keep.sum()), n_blocks=int(lengths.sum()),
        n_tokens=int(run_tokens.sum()), hit_blocks=hit_blocks, hit_tokens=int(run_tokens[warm].sum()),
        by_window=by_window, by_client=by_client,
        lru=lru_hit_curve(dist, tokens=run_tokens, blocks=runs.length, capacities=capacities),
        reuse_distances=_distance_histogram(runs.distance, runs.length), n_cold=int(lengths.sum()) - hit_blocks,
    )


@dataclass(frozen=True)
class TraceBlocks:
    """A store's prompt blocks and the columns the prefix analyses use (arrays, not a result).

    Attributes
    ----------
    values, lengths : numpy.ndarray
        Flattened block ids and list lengths, requests in ``request_id`` order.
    request_ids, timestamps : numpy.ndarray
    input_tokens : numpy.ndarray or None
        Prompt lengths (-1: unknown); None without the column.
    clients : polars.Series or None
        Client labels (None without the column).
    client_codes : numpy.ndarray or None
        Client codes (-1: unknown) of :func:`~servelab.analysis.shared_prefixes.client_codes`.
    """

    values: np.ndarray
    lengths: np.ndarray
    request_ids: np.ndarray
    timestamps: np.ndarray
    input_tokens: np.ndarray | None
    clients: pl.Series | None
    client_codes: np.ndarray | None


def read_blocks(store: TraceStore) -> TraceBlocks:
    """Read a store's ``prefix_blocks`` (and ``input_tokens``, ``client_id`` when present).

    Raises
    ------
    NotApplicableError
        If the trace has no ``prefix_blocks`` or no request carries a block.
    """
    from servelab.analysis.shared_prefixes import client_codes

    store.require("prefix_blocks", analysis=_ANALYSIS)
    cols = ["request_id", "timestamp", "prefix_blocks",
            *[c for c in ("input_tokens", "client_id") if c in store.columns]]
    table = store.read_arrow(cols)
    rid = table["request_id"].to_numpy()
    if rid.size > 1 and not bool(np.all(rid[1:] > rid[:-1])):
        table = table.sort_by([("request_id", "ascending")])
        rid = table["request_id"].to_numpy()
    ts = table["timestamp"].to_numpy().astype(float)
    tin = pc.fill_null(table["input_tokens"], -1).to_numpy().astype(np.int64) if "input_tokens" in cols else None
    clients = pl.from_arrow(table["client_id"]) if "client_id" in cols else None
    codes = client_codes(table["client_id"]) if "client_id" in cols else None
    blocks = table["prefix_blocks"].combine_chunks()
    del table
    lengths = pc.fill_null(pc.list_value_length(blocks), 0).to_numpy().astype(np.int64)
    values = pc.list_flatten(blocks).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    del blocks
    if not (lengths > 0).any():
        raise NotApplicableError(_ANALYSIS, reason="no request carries prefix blocks")
    return TraceBlocks(values=values, lengths=lengths, request_ids=np.asarray(rid, dtype=np.int64), timestamps=ts,
                       input_tokens=tin, clients=clients, client_codes=codes)


def prefix_reuse(store: TraceStore, *, block_size: int = DEFAULT_BLOCK_SIZE, window_s: float = 3600.0,
                 capacities: np.ndarray | None = None) -> PrefixReuse:
    """Prefix reuse of a store's requests (needs ``prefix_blocks``; uses ``input_tokens`` and
    ``client_id`` when present). See :func:`reuse_from_blocks`.

    Raises
    ------
    NotApplicableError
        If the trace has no ``prefix_blocks`` or no request carries a block.
    """
    tb = read_blocks(store)
    return reuse_from_blocks(tb.values, tb.lengths, input_tokens=tb.input_tokens, timestamps=tb.timestamps,
                             clients=tb.clients, block_size=block_size, window_s=window_s, capacities=capacities)


def hit_rate_table(frame: pl.DataFrame, by: str) -> pl.DataFrame:
    """Per group ``by``: requests, blocks, hit blocks, block hit rate, tokens, hit tokens and token
    hit rate, from per-request ``blocks`` / ``hit_blocks`` / ``tokens`` / ``hit_tokens`` (requests
    without blocks left out; sorted by ``by``, nulls last). The exact and the sampled prefix passes
    build their per-window and per-client tables with it."""
    return frame.filter(pl.col("blocks") > 0).group_by(by).agg(
        requests=pl.len(), blocks=pl.col("blocks").sum(), hit_blocks=pl.col("hit_blocks").sum(),
        tokens=pl.col("tokens").sum(), hit_tokens=pl.col("hit_tokens").sum()).with_columns(
        block_hit_rate=pl.col("hit_blocks") / pl.col("blocks"),
        token_hit_rate=pl.col("hit_tokens") / pl.col("tokens")).sort(by, nulls_last=True).select(
        by, "requests", "blocks", "hit_blocks", "block_hit_rate", "tokens", "hit_tokens", "token_hit_rate")
