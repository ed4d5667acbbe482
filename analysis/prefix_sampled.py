r"""The prefix-reuse analysis of traces too large to hold every block in memory (issue 15, item 1).

:func:`analyse_prefixes_sampled` gives the same :class:`~servelab.analysis.prefix_analysis.PrefixAnalysis`
as :func:`~servelab.analysis.prefix_analysis.analyse_blocks`, from one streaming pass over the
store's ``prefix_blocks`` (record batches of whole requests):

Exact counts
    Every block's prefix key (:func:`~servelab.analysis.prefix_reuse.chunked_prefix_hashes`) and
    request index are spilled to one of up to :data:`N_PARTITIONS` partitions by the key's top
    bits (a key's every occurrence lands in one partition, in arrival order). Per partition, a
    value sort of the keys packed with their positions (:func:`first_and_unique`, checked against
    the distinct full keys) finds each key's first occurrence (a cold block) and the keys held by
    two requests or more (shared blocks); two partitions are counted at a time.
    A prefix key holds its whole prefix, so a request's served blocks are a prefix of its list,
    and so are its shared ones: per request, the cold and shared *counts* give its hit and shared
    blocks and tokens exactly. Infinite-cache hit rates (blocks, tokens; overall, per window, per
    client), the distinct blocks, shared vs unique tokens and the infinite saving's interval are
    those of the exact analysis, to the token.
LRU curve, sampled
    SHARDS spatial sampling (Waldspurger et al., FAST 2015): the accesses of the keys whose
    hash falls below a threshold, at most ``sample_blocks`` of them (the threshold is lowered as
    the pass goes, which keeps a consistent sample: a key is in or out for the whole trace). Stack
    distances on the sampled sequence (the same access order as the exact curve: each request's
    blocks last to first), divided by the sampling rate, estimate the full trace's; the LRU curve
    and the reuse-distance histogram follow. The sampled hits are scaled by 1 / rate and the
    difference from the exact hit count is put at the smallest distance (SHARDS-adj, their
    section 4.3): a system prompt's few keys carry a large share of all accesses and are either
    in the sample or not, and they are hits at any capacity. The reference capacity's saving and
    kept share take the same estimate per request: its exact infinite-cache hit tokens less its
    sampled warm tokens the cache misses, scaled by 1 / rate (at most its infinite hit, so every
    bootstrap kept share is at most 1).
    SHARDS resolves distances to about ``1 / rate`` blocks, too coarse for small caches: there
    the curve comes from a *request sample* instead, :data:`N_SEGMENTS` segments of consecutive
    requests (one per stretch of the trace, seeded offsets; together the other half of
    ``sample_blocks``), with exact stack distances within each segment, at every capacity that
    most of the segments' accesses decide (:func:`_segment_curve`).
    :data:`SAMPLED_CURVE_TOLERANCE` states the curve's error (measured on the benchmark traces,
    ``benchmarks/bench_prefixes.py --sampled-too``).
Not computed
    Reuse sources (they link conversations over the whole trace); ``sources`` is None and a note
    says so.

Temporary spill files go to a fresh directory under ``tmp_dir`` (default: the system's), removed
when done. This module must not import fitting, generator, figures or matplotlib; its result holds
tables and numbers, never block lists.
"""
from __future__ import annotations

import math
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.compute as pc

from servelab.analysis.exceptions import NotApplicableError
from servelab.analysis.prefix_reuse import (
    DEFAULT_BLOCK_SIZE,
    PrefixReuse,
    _distance_histogram,
    _weighted_count_below,
    chunked_prefix_hashes,
    hit_rate_table,
    lru_hit_curve,
)
from servelab.analysis.prefix_savings import request_clusters, saving_estimates
from servelab.analysis.prefix_sources import sharing_from_sums

__all__ = ["N_PARTITIONS", "N_SEGMENTS", "SAMPLED_CURVE_TOLERANCE", "analyse_prefixes_sampled", "first_and_unique",
           "flat_stack_distances"]

#: most spill partitions of the exact pass (a key's partition: its top bits; about one partition per
#: :data:`_PARTITION_REQUESTS` requests, a power of two, at least 64)
N_PARTITIONS = 1024
#: requests per spill partition (sets the partition count)
_PARTITION_REQUESTS = 40_000
#: stated error of the sampled LRU curve: largest absolute difference in block hit rate from the
#: exact curve over the capacities of the hit-rate table (measured: 0.32 points on the 1 M-request
#: benchmark trace at 10^6 sampled blocks, 20.5 M blocks; the tests hold a 10 % sample of 430 k
#: blocks to it)
SAMPLED_CURVE_TOLERANCE = 0.02
#: segments of consecutive requests of the small-capacity curve
N_SEGMENTS = 16
#: requests per record batch of the streaming pass
_BATCH = 250_000
#: bits of the sampling hash (threshold resolution)
_SAMPLE_BITS = 24
_ANALYSIS = "prefix reuse analysis"
#: worker threads of the per-partition counts
_THREADS = 2


def _sample_hash(keys: np.ndarray) -> np.ndarray:
    """A 24-bit hash of each key (high bits of a multiplicative hash; independent of the top
    bits that pick the partition)."""
    with np.errstate(over="ignore"):
        return ((keys * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - _SAMPLE_BITS)).astype(np.int64)


def _partition_bits(n_requests: int) -> int:
    """Top key bits that pick a spill partition: about one partition per
    :data:`_PARTITION_REQUESTS` requests, between 64 and :data:`N_PARTITIONS` partitions, and
    (two files each) at most a quarter of the open-file limit's worth when that is lower."""
    want = max(int(n_requests) // _PARTITION_REQUESTS, 1)
    bits = int(min(max((want - 1).bit_length(), 6), N_PARTITIONS.bit_length() - 1))
    try:  # two files per partition: stay within half the open-file limit
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft != resource.RLIM_INFINITY:
            bits = min(bits, max(int(soft // 4).bit_length() - 1, 6))
    except (ImportError, ValueError, OSError):  # no resource module (Windows): keep the count
        pass
    return bits


def first_and_unique(keys: np.ndarray, part_bits: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Positions of each key's first occurrence and of the keys that occur once (in no
    particular order).

    ``keys`` share their top ``part_bits`` bits (one spill partition). One value sort instead of
    an argsort: each key's other bits, cut to the top ``64 - b`` of them, are packed with its
    position (``b`` bits) and the packed values sorted; a run of equal cut keys is then in
    position order. Cutting bits can merge two keys: the full keys are read back in sorted order
    and compared within each run, and if a run holds two, the argsort of the full keys is used
    instead, so the result is always exact.

    Parameters
    ----------
    keys : numpy.ndarray of uint64
    part_bits : int
        Top bits all ``keys`` share (0..63).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        int64 positions: each distinct key's first occurrence, and the occurrences of keys
        that occur exactly once.
    """
    keys = np.asarray(keys, dtype=np.uint64)
    n = keys.size
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    b = max(int(n - 1).bit_length(), 1)
    low = np.uint64((1 << b) - 1)
    packed = (keys << np.uint64(part_bits)) & ~low
    packed |= np.arange(n, dtype=np.uint64)
    packed.sort()
    cut = packed >> np.uint64(b)
    head = np.empty(n, dtype=bool)
    head[0] = True
    np.not_equal(cut[1:], cut[:-1], out=head[1:])
    del cut
    pos = (packed & low).astype(np.int64)
    del packed
    full = keys[pos]  # the full keys in sorted order: a run must hold one
    merged = bool(np.any(~head[1:] & (full[1:] != full[:-1])))
    del full
    st = np.flatnonzero(head)
    del head
    if not merged:
        first = pos[st]
    else:  # rare: fall back on the argsort of the full keys
        o = np.argsort(keys, kind="stable")
        ks = keys[o]
        h = np.empty(n, dtype=bool)
        h[0] = True
        np.not_equal(ks[1:], ks[:-1], out=h[1:])
        st = np.flatnonzero(h)
        first = o[st].astype(np.int64)  # stable: a run's first element is the key's first position
    cnt = np.diff(np.append(st, n))
    return first, first[cnt == 1]


def _partition_counts(spill: Path, i: int, part_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Requests of the cold accesses and of the unshared accesses of spill partition ``i`` (its
    files are removed)."""
    kp, rp = spill / f"k{i:04d}.bin", spill / f"r{i:04d}.bin"
    k, r = np.fromfile(kp, dtype="<u8"), np.fromfile(rp, dtype="<u4")
    kp.unlink()
    rp.unlink()
    first, once = first_and_unique(k, part_bits)
    del k
    return r[first], r[once]


def flat_stack_distances(keys: np.ndarray) -> np.ndarray:
    """LRU stack distance of every access of a flat key sequence (-1: first access).

    The distance of access ``i`` whose key was last accessed at ``p`` is the number of distinct
    keys accessed in ``(p, i)``: the accesses ``j`` there whose own previous access is at or
    before ``p`` (each distinct key's first access after ``p``), counted by the wavelet matrix of
    :func:`~servelab.analysis.prefix_reuse._weighted_count_below` (no loop over accesses).
    """
    keys = np.asarray(keys)
    n = keys.size
    prev = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return prev
    order = np.argsort(keys, kind="stable")
    same = keys[order][1:] == keys[order][:-1]
    prev[order[1:][same]] = order[:-1][same]
    out = np.full(n, -1, dtype=np.int64)
    warm = np.flatnonzero(prev >= 0)
    if warm.size:
        p = prev[warm]
        # accesses j < i with prev[j] <= p, less the p + 1 accesses j <= p (all such)
        f = _weighted_count_below(prev + 1, np.ones(n, dtype=np.int64), warm, p + 2)
        out[warm] = f - (p + 1)
    return out


def _block_batches(source, columns: list[str]):
    """Record batches of whole requests, in stored order."""
    path = getattr(source, "path", None)
    if path is not None:
        import pyarrow.parquet as pq

        yield from pq.ParquetFile(source.requests_path).iter_batches(batch_size=_BATCH, columns=columns)
    else:
        yield from source.read_arrow(columns).to_batches(max_chunksize=_BATCH)


def _prefetched(batches):
    """The same batches, the next one read by a worker thread while the caller works on the
    current one (Parquet decoding releases the GIL); at most one batch ahead."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        it = iter(batches)
        ahead = pool.submit(next, it, None)
        while True:
            batch = ahead.result()
            if batch is None:
                return
            ahead = pool.submit(next, it, None)
            yield batch


def _segment_starts(n_req: int, seg_req: int, seed: int) -> np.ndarray:
    """First request of each of :data:`N_SEGMENTS` segments: one per equal stretch of the trace,
    at a seeded offset within it (segments never overlap)."""
    rng = np.random.default_rng([int(seed), 0x5EC])
    stretch = n_req / N_SEGMENTS
    room = max(stretch - seg_req, 0.0)
    starts = np.floor(np.arange(N_SEGMENTS) * stretch + rng.random(N_SEGMENTS) * room).astype(np.int64)
    return np.unique(np.clip(starts, 0, max(n_req - seg_req, 0)))


def _segment_curve(keys: np.ndarray, req: np.ndarray, pos: np.ndarray, seg: np.ndarray, lengths: np.ndarray,
                   last: np.ndarray, block_size: int, caps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LRU block and token hit rates at ``caps`` from segments of consecutive requests.

    Within a segment the stack distance of an access whose key was accessed earlier in it is
    exact; an access without one has a distance of at least the distinct keys accessed in the
    segment before it (``D``). At capacity ``C`` the accesses with ``D >= C`` are all decided (an
    exact distance, or a certain miss): the rate is taken over them. Returns the two rates and
    each capacity's coverage (share of the segments' accesses with ``D >= C``).
    """
    o = np.lexsort((-pos, req, seg))  # segment, request, blocks last to first
    keys, req, pos, seg = keys[o], req[o], pos[o], seg[o]
    # distinct keys per segment: keys tagged by segment so that segments never share one
    tagged = pl.DataFrame({"s": seg, "k": keys}).select(pl.struct("s", "k").rank("dense")).to_series().to_numpy()
    d = flat_stack_distances(tagged)
    # a segment's first access of a key: count of such before each access, within its segment
    first = d < 0
    csum = np.cumsum(first) - first
    seg_start = np.searchsorted(seg, seg, side="left")
    before = csum - csum[seg_start]
    tok = np.where(pos == lengths[req] - 1, last[req], block_size).astype(float)
    gb, gt, cover = (np.full(caps.size, np.nan) for _ in range(3))
    for i, c in enumerate(caps.tolist()):  # a few dozen capacities
        judged = before >= c
        hit = judged & (d >= 0) & (d < c)
        cover[i] = judged.mean() if judged.size else 0.0
        if judged.any():
            gb[i] = hit.sum() / judged.sum()
            gt[i] = tok[hit].sum() / tok[judged].sum()
    return gb, gt, cover


def _prefix_tokens(h: np.ndarray, lengths: np.ndarray, total: np.ndarray, block_size: int) -> np.ndarray:
    """Tokens of each request's first ``h`` blocks (all its tokens when ``h`` is its length)."""
    return np.where(h >= lengths, total, h * block_size)


def analyse_prefixes_sampled(store, *, block_size: int = DEFAULT_BLOCK_SIZE, window_s: float = 3600.0,
                             capacities: np.ndarray | None = None, reference: int | None = None,
                             sample_blocks: int = 1_000_000, n_boot: int = 200, seed: int = 0,
                             level: float = 0.95, tmp_dir: str | Path | None = None):
    """The prefix analysis in one streaming pass (see the module docstring).

    Parameters
    ----------
    store : TraceStore or FrameSource
        Needs ``prefix_blocks``; uses ``input_tokens`` and ``client_id`` when present. Requests
        must be stored in ``request_id`` order (as :func:`~servelab.analysis.store.write_store`
        and ingest write them).
    block_size, window_s, capacities, reference, n_boot, seed, level
        As :func:`~servelab.analysis.prefix_analysis.analyse_blocks`.
    sample_blocks : int
        Most block accesses kept by the SHARDS sample of the LRU curve (>= 1000).
    tmp_dir : str or Path, optional
        Where the spill directory goes.

    Returns
    -------
    PrefixAnalysis
        ``sources`` None; the notes say what was sampled and at which rate.

    Raises
    ------
    NotApplicableError
        If the trace has no ``prefix_blocks`` or no request carries a block.
    ValueError
        If a setting is out of range or the store's rows are not in ``request_id`` order.
    """
    from servelab.analysis.prefix_analysis import PrefixAnalysis, reference_capacity
    from servelab.analysis.shared_prefixes import client_codes

    if not (window_s > 0):
        raise ValueError(f"window_s must be > 0 seconds; got {window_s!r}")
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer; got {block_size!r}")
    if isinstance(sample_blocks, bool) or not isinstance(sample_blocks, (int, np.integer)) or sample_blocks < 1000:
        raise ValueError(f"sample_blocks must be an integer >= 1000; got {sample_blocks!r}")
    if reference is not None and (isinstance(reference, bool) or not isinstance(reference, (int, np.integer))
                                  or reference < 1):
        raise ValueError(f"reference capacity must be a positive number of blocks; got {reference!r}")
    store.require("prefix_blocks", analysis=_ANALYSIS)
    cols = ["request_id", "timestamp", *[c for c in ("input_tokens", "client_id") if c in store.columns]]
    small = store.read_arrow(cols)
    rid = small["request_id"].to_numpy()
    if rid.size > 1 and not bool(np.all(rid[1:] > rid[:-1])):
        raise ValueError("the sampled prefix analysis streams requests in stored order, which must be request_id "
                         "order; got a store whose rows are not (use the exact analysis)")
    n_req = rid.size
    ts = small["timestamp"].to_numpy().astype(float)
    tin = (pc.fill_null(small["input_tokens"], -1).to_numpy().astype(np.int64) if "input_tokens" in cols else None)
    clients = pl.from_arrow(small["client_id"]) if "client_id" in cols else None
    codes = client_codes(small["client_id"]) if "client_id" in cols else None
    del small, rid

    lengths = np.zeros(n_req, dtype=np.int64)
    threshold = 1 << _SAMPLE_BITS  # sampling-hash values below it are kept
    s_keys, s_req, s_pos = [], [], []
    kept = 0
    shards_budget = sample_blocks // 2  # the other half: the request segments
    seg_start, seg_req = None, 0
    g_keys, g_req, g_pos, g_seg = [], [], [], []
    spill = Path(tempfile.mkdtemp(prefix="servelab-prefixes-", dir=tmp_dir))
    try:
        part_bits = _partition_bits(n_req)
        n_parts = 1 << part_bits
        files = [(open(spill / f"k{i:04d}.bin", "wb"), open(spill / f"r{i:04d}.bin", "wb")) for i in range(n_parts)]
        try:
            r0 = 0
            for batch in _prefetched(_block_batches(store, ["prefix_blocks"])):  # one pass: whole requests
                blocks = batch.column(0)
                lens = pc.fill_null(pc.list_value_length(blocks), 0).to_numpy().astype(np.int64)
                r1 = r0 + lens.size
                lengths[r0:r1] = lens
                values = pc.list_flatten(blocks).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
                del blocks
                keys = chunked_prefix_hashes(values, lens)
                del values
                req = np.repeat(np.arange(r0, r1, dtype=np.uint32), lens)
                starts = np.cumsum(lens) - lens
                if seg_start is None:  # segment length from the first batch's mean list length
                    seg_req = max(1, int(round(sample_blocks / (2 * N_SEGMENTS) / max(float(lens.mean()), 1.0))))
                    seg_req = min(seg_req, max(1, n_req // N_SEGMENTS))
                    seg_start = _segment_starts(n_req, seg_req, seed)
                for j, a in enumerate(seg_start.tolist()):  # a few segments: requests [a, a + seg_req)
                    lo, hi = max(a, r0), min(a + seg_req, r1)
                    if lo < hi:
                        b0, b1 = int(starts[lo - r0]), int(starts[hi - 1 - r0] + lens[hi - 1 - r0])
                        g_keys.append(keys[b0:b1])
                        g_req.append(req[b0:b1].astype(np.int64))
                        g_pos.append(np.arange(b0, b1) - starts[req[b0:b1].astype(np.int64) - r0])
                        g_seg.append(np.full(b1 - b0, j, dtype=np.int64))
                part = (keys >> np.uint64(64 - part_bits)).astype(np.uint16)
                order = np.argsort(part, kind="stable")  # a radix sort on 16-bit keys
                bounds = np.r_[0, np.cumsum(np.bincount(part, minlength=n_parts))]
                k_out, r_out = keys[order], req[order]
                del order, part
                for i in range(n_parts):  # one write per partition and batch
                    k_out[bounds[i]:bounds[i + 1]].tofile(files[i][0])
                    r_out[bounds[i]:bounds[i + 1]].tofile(files[i][1])
                del k_out, r_out
                h = _sample_hash(keys)
                take = np.flatnonzero(h < threshold)
                if take.size:
                    s_keys.append(keys[take])
                    s_req.append(req[take].astype(np.int64))
                    s_pos.append(take - starts[req[take].astype(np.int64) - r0])
                    kept += take.size
                if kept > shards_budget:  # lower the threshold: a consistent, smaller sample
                    threshold = max(1, int(threshold * shards_budget / kept))
                    k_all = np.concatenate(s_keys)
                    keep = _sample_hash(k_all) < threshold
                    s_keys, s_req, s_pos = [k_all[keep]], [np.concatenate(s_req)[keep]], [np.concatenate(s_pos)[keep]]
                    kept = int(keep.sum())
                del keys, req, h
                r0 = r1
        finally:
            for pair in files:
                for f in pair:
                    f.close()
        if r0 != n_req:
            raise ValueError(f"the prefix_blocks pass read {r0} requests but the store has {n_req}")
        if not (lengths > 0).any():
            raise NotApplicableError(_ANALYSIS, reason="no request carries prefix blocks")
        # exact counts per partition: cold (first occurrence) and shared keys, two partitions at a
        # time (numpy's sorts release the GIL)
        with ThreadPoolExecutor(max_workers=_THREADS) as pool:
            counted = list(pool.map(lambda i: _partition_counts(spill, i, part_bits), range(n_parts)))
        cold_at = [c for c, _ in counted if c.size]  # request of every cold access
        alone_at = [a for _, a in counted if a.size]  # request of every unshared access
        del counted
        cold = np.bincount(np.concatenate(cold_at), minlength=n_req) if cold_at else np.zeros(n_req, np.int64)
        del cold_at
        shared = lengths - (np.bincount(np.concatenate(alone_at), minlength=n_req) if alone_at
                            else np.zeros(n_req, np.int64))
        del alone_at
    finally:
        shutil.rmtree(spill, ignore_errors=True)

    # per request: tokens, hit and shared prefixes (exact)
    rest = (tin - (lengths - 1) * block_size) if tin is not None else np.full(n_req, block_size)
    last = np.where((lengths > 0) & (rest >= 1) & (rest <= block_size), rest, block_size)
    tok = np.where(lengths > 0, (lengths - 1) * block_size + last, 0)
    hit_b = lengths - cold
    hit_t = _prefix_tokens(hit_b, lengths, tok, block_size)
    shared_t = _prefix_tokens(shared, lengths, tok, block_size)
    n_blocks, hits = int(lengths.sum()), int(hit_b.sum())

    # the SHARDS sample: stack distances in the exact curve's access order, scaled by the rate
    rate = threshold / float(1 << _SAMPLE_BITS)
    sk = np.concatenate(s_keys) if s_keys else np.zeros(0, np.uint64)
    sr = np.concatenate(s_req) if s_req else np.zeros(0, np.int64)
    sp = np.concatenate(s_pos) if s_pos else np.zeros(0, np.int64)
    o = np.lexsort((-sp, sr))  # request by request, each request's blocks last to first
    sk, sr, sp = sk[o], sr[o], sp[o]
    sd = flat_stack_distances(sk)
    dist = np.where(sd >= 0, sd / rate, np.inf)
    s_tok = np.where(sp == lengths[sr] - 1, last[sr], block_size).astype(float)
    curve = lru_hit_curve(dist, tokens=s_tok, capacities=capacities)
    s_warm = np.isfinite(dist)
    exact_b = hits / n_blocks if n_blocks else float("nan")
    exact_t = float(hit_t.sum()) / float(tok.sum()) if tok.sum() else float("nan")
    # SHARDS-adj (Waldspurger et al. 2015, section 4.3): the sample's hits scaled by 1 / rate, and
    # the difference from the exact hits put at the smallest distance, where the few keys the
    # whole trace shares (a system prompt's blocks: in or out of the sample, a large swing) sit
    if sd.size:
        hb = curve["block_hit_rate"].to_numpy() * sd.size / rate
        ht = curve["token_hit_rate"].to_numpy() * float(s_tok.sum()) / rate
        hb_inf, ht_inf = float(s_warm.sum()) / rate, float(s_tok[s_warm].sum()) / rate
        curve = curve.with_columns(
            pl.Series("block_hit_rate", np.clip((hb + hits - hb_inf) / n_blocks, 0.0, exact_b)),
            pl.Series("token_hit_rate", np.clip((ht + float(hit_t.sum()) - ht_inf) / float(tok.sum()), 0.0, exact_t)))
    # small capacities, where SHARDS's resolution (1 / rate blocks) is too coarse: the segments
    n_seg_blocks = int(sum(k.size for k in g_keys))
    seg_cap = 0
    if n_seg_blocks and rate < 1:  # at rate 1 the SHARDS curve is the exact one
        caps = curve["capacity_blocks"].to_numpy()
        gb, gt, cover = _segment_curve(np.concatenate(g_keys), np.concatenate(g_req), np.concatenate(g_pos),
                                       np.concatenate(g_seg), lengths, last, block_size, caps)
        use = cover >= 0.5
        if use.any():
            seg_cap = int(caps[use].max())
            curve = curve.with_columns(pl.Series("block_hit_rate", np.where(use, gb, curve["block_hit_rate"].to_numpy())),
                                       pl.Series("token_hit_rate", np.where(use, gt, curve["token_hit_rate"].to_numpy())))
    del g_keys, g_req, g_pos, g_seg
    hist = _distance_histogram(np.where(sd >= 0, np.floor(sd / rate), -1).astype(np.int64),
                               np.full(sd.size, 1.0 / rate))

    per_req = pl.DataFrame({"blocks": lengths, "hit_blocks": hit_b, "tokens": tok, "hit_tokens": hit_t})
    by_window = hit_rate_table(per_req.with_columns(window_start_s=pl.Series(np.floor(ts / window_s) * window_s)),
                       "window_start_s")
    by_client = hit_rate_table(per_req.with_columns(client_id=clients), "client_id") if clients is not None else None
    reuse = PrefixReuse(block_size=int(block_size), n_requests=int((lengths > 0).sum()), n_blocks=n_blocks,
                        n_tokens=int(tok.sum()), hit_blocks=hits, hit_tokens=int(hit_t.sum()), by_window=by_window,
                        by_client=by_client, lru=curve, reuse_distances=hist, n_cold=n_blocks - hits)
    sharing = sharing_from_sums(shared_t, tok, lengths)

    n_distinct = n_blocks - hits
    cap = reference if reference is not None else reference_capacity(n_distinct)
    cluster, kind = request_clusters(n_req, client_codes=codes)
    k = int(cluster.max()) + 1 if cluster.size else 0
    # per request, SHARDS-adj at the reference capacity: its exact infinite-cache hit tokens less
    # the sample's warm tokens the cache of `cap` blocks misses, scaled by 1 / rate. The sum is the
    # curve's estimate (sampled hits / rate + exact hits - sampled warm / rate), and no request (so
    # no cluster, no resample) keeps more than its infinite hit: every bootstrap kept share is at
    # most 1 and the LRU saving at most the infinite one. (Spreading the sampled served tokens
    # instead, scaled by 1 / rate, put up to 1 / rate blocks' tokens in one client: a client could
    # "keep" twice its infinite saving, and resamples of the few large clients carried the kept
    # share's interval to 0.59-2.19 on the 10 M benchmark trace.)
    missed = np.bincount(sr, weights=np.where(s_warm & (dist >= cap), s_tok, 0.0), minlength=n_req)
    served = hit_t.astype(float) - missed / rate
    tok_c, inf_c, cap_c = (np.bincount(cluster, weights=x.astype(float), minlength=k) for x in (tok, hit_t, served))
    boot = {"clusters": kind, "n_boot": n_boot, "seed": seed, "level": level}
    # the three intervals on the same resamples (one draw of the cluster counts)
    infinite, at_ref, kept_share = saving_estimates([
        {"num": inf_c, "den": tok_c, "what": "prompt tokens an infinite prefix cache serves"},
        {"num": cap_c, "den": tok_c, "what": f"prompt tokens an LRU cache of {cap:,} blocks serves (sampled)",
         "bounds": (0.0, 1.0)},
        {"num": cap_c, "den": inf_c, "what": f"share of the infinite cache's saving an LRU cache of {cap:,} blocks "
                                            "keeps (sampled)", "bounds": (0.0, 1.0)}], **boot)
    notes = [f"sampled analysis: exact infinite-cache counts ({n_parts} hash-partitioned spills); LRU curve, "
             f"reuse distances and the reference capacity's saving from a SHARDS sample of {sd.size:,} block accesses "
             f"(rate {rate:.4g}), curve scaled to the exact infinite-cache rate; capacities up to {seg_cap:,} blocks "
             f"from {N_SEGMENTS} segments of {seg_req:,} consecutive requests ({n_seg_blocks:,} blocks, exact LRU "
             f"within each); stated tolerance {SAMPLED_CURVE_TOLERANCE:.0%} of blocks; the reference capacity's "
             "intervals resample clusters of a key sample (each request's exact infinite hit less its sampled misses "
             "at that capacity / rate: at most its infinite hit, so a kept share stays at most 100%)",
             "reuse sources not computed in the sampled analysis (they link conversations over the whole trace)"]
    if clients is None:
        notes.append("the trace has no client ids: per-client rates are not available")
    if math.isnan(infinite.low):
        notes.append(f"no bootstrap interval: {k} {kind}(s), fewer than needed")
    return PrefixAnalysis(reuse=reuse, sources=None, sharing=sharing, n_distinct_blocks=int(n_distinct),
                          reference_capacity=int(cap), infinite=infinite, at_reference=at_ref, kept=kept_share,
                          notes=tuple(notes))
