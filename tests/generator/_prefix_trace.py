"""A synthetic trace with prompt blocks of known construction, and brute-force cache counts.

Construction (first turns; every first turn has 32..63 blocks, one length class):

- client ``A``: 40 % start with the shared system prompt ``S`` (6 blocks), 20 % with the template
  ``T`` = ``S`` + 3 blocks (9 blocks, A only); the rest are fresh;
- client ``B``: 50 % start with ``S``;
- client ``C``: 30 % start with its template ``U`` (10 blocks); 25 % repeat the whole block list
  of an earlier *original* C request (one that repeats nothing) 20-200 s before, then add 1-5
  fresh blocks (reuse with gap 0);
- then fresh blocks up to the drawn length; ``input_tokens = L * 512 - 100`` (a partial last
  block);
- 20 % of first turns get one follow-up 30 s later that repeats the parent's full blocks
  (``L - 1``: the partial last block differs) and adds 2..8 fresh blocks (history gap 1).

The brute-force counts below simulate caches block by block with Python dicts, independently of
servelab's stack-distance code: a test reference, not library code.
"""
from __future__ import annotations

import json
from collections import OrderedDict

import numpy as np
import polars as pl

BLOCK = 512
S_LEN, T_EXTRA, U_LEN = 6, 3, 10
SHARES = {"A": {"S": 0.4, "T": 0.2}, "B": {"S": 0.5}, "C": {"U": 0.3, "reuse": 0.25}}
FOLLOW_SHARE = 0.2


def build_trace(n_per_client: int = 900, *, seed: int = 7, span_s: float = 3600.0) -> pl.DataFrame:
    """The trace as a canonical frame (``request_id`` in arrival order, ``parent_id`` as text)."""
    rng = np.random.default_rng(seed)
    next_id = [1000]

    def fresh(k):
        out = list(range(next_id[0], next_id[0] + k))
        next_id[0] += k
        return out

    S = fresh(S_LEN)
    T = S + fresh(T_EXTRA)
    U = fresh(U_LEN)
    rows = []  # (t, client, blocks, parent_index or -1, structure)
    for client in ("A", "B", "C"):
        times = np.sort(rng.uniform(0, span_s - 60.0, n_per_client))  # follow-ups stay inside the span
        originals = []  # (t, blocks) of C's requests that repeat nothing
        for t in times:
            L = int(rng.integers(32, 64))
            u = rng.random()
            if client == "A":
                head, kind = (S, "S") if u < 0.4 else (T, "T") if u < 0.6 else ([], "none")
            elif client == "B":
                head, kind = (S, "S") if u < 0.5 else ([], "none")
            else:
                head, kind = (U, "U") if u < 0.3 else ([], "reuse") if u < 0.55 else ([], "none")
            if kind == "reuse":
                lag = rng.uniform(20, 200)
                old = [b for (ts, b) in originals if ts <= t - lag]
                if old:
                    src = old[-1]
                    blocks = src + fresh(int(rng.integers(1, 6)))
                else:
                    kind, blocks = "none", fresh(L)
            else:
                blocks = head + fresh(L - len(head))
            if client == "C" and kind != "reuse":
                originals.append((t, blocks))
            rows.append((t, client, blocks, -1, kind))
            if rng.random() < FOLLOW_SHARE:
                rows.append((t + 30.0, client, blocks[:-1] + fresh(int(rng.integers(2, 9))), len(rows) - 1, "follow"))
    order = sorted(range(len(rows)), key=lambda i: (rows[i][0], i))
    new_index = {old: new for new, old in enumerate(order)}
    out = []
    for new, old in enumerate(order):
        t, client, blocks, parent, kind = rows[old]
        out.append({"request_id": new, "timestamp": t, "client_id": client, "input_tokens": len(blocks) * BLOCK - 100,
                    "output_tokens": 50, "parent_id": None if parent < 0 else str(new_index[parent]),
                    "prefix_blocks": blocks, "structure": kind})
    return pl.DataFrame(out, schema={"request_id": pl.Int64, "timestamp": pl.Float64, "client_id": pl.String,
                                     "input_tokens": pl.Int64, "output_tokens": pl.Int64, "parent_id": pl.String,
                                     "prefix_blocks": pl.List(pl.Int64), "structure": pl.String})


def _keys(blocks):
    """Prefix keys of one block list (tuples hashed incrementally)."""
    out, key = [], None
    for b in blocks:
        key = hash((key, b))
        out.append(key)
    return out


def brute_infinite(lists) -> float:
    """Share of blocks whose prefix was seen in an earlier request."""
    seen, hit, total = set(), 0, 0
    for blocks in lists:
        keys = _keys(blocks)
        hit += sum(k in seen for k in keys)
        total += len(keys)
        seen.update(keys)
    return hit / total


def brute_lru(lists, capacities) -> dict[int, float]:
    """Block hit rate of an LRU cache of each capacity: each request's blocks are accessed last to
    first; a block is served iff it and every block before it in its request were cached when
    accessed."""
    lists = [_keys(b) for b in lists]
    total = sum(len(k) for k in lists)
    out = {}
    for cap in capacities:
        cache, hits = OrderedDict(), 0
        for keys in lists:
            present = []
            for k in reversed(keys):
                present.append(k in cache)
                cache[k] = None
                cache.move_to_end(k)
                if len(cache) > cap:
                    cache.popitem(last=False)
            present.reverse()
            run = 0
            for p in present:
                if not p:
                    break
                run += 1
            hits += run
        out[int(cap)] = hits / total
    return out


def read_mooncake(path) -> list[list[int]]:
    """``hash_ids`` of a Mooncake JSONL file, line by line, with the json module."""
    with open(path) as fh:
        return [json.loads(line)["hash_ids"] for line in fh if line.strip()]
