"""Time and peak memory of conversation inference from prompt block hashes (issue #5 target:
10^6 requests with 30 blocks each on average, under 30 s and under 4 GB).

The hash chains are built with numpy: conversations (geometric number of turns, mean 3.5 as in
ServeGen) start uniformly over a day, turns follow after exponential ITTs (mean 100 s); turn t of
a conversation has 10 + 8 t blocks whose first L - 1 are the conversation's running context and
whose last is a fresh (partial) block; 30 % of conversations open with one shared 4-block system
prompt, so that many requests share short prefixes. The store is written once under
``benchmarks/out/``; the inference then runs in a fresh child process, whose wall time and peak
resident memory are reported, with how many requests were linked and how many of the built
conversations were recovered exactly. It measures and asserts nothing.

Command line::

    python benchmarks/bench_conversations.py              # 10^6 requests
    python benchmarks/bench_conversations.py --rows 100000
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

HERE = Path(__file__).resolve().parent

__all__ = ["build_chains", "main"]


def build_chains(n_rows: int, *, seed: int = 0) -> tuple[pl.DataFrame, np.ndarray]:
    """A frame (timestamp, prefix_blocks) of ~n_rows requests and each request's true conversation."""
    rng = np.random.default_rng(seed)
    n_conv = int(n_rows / 3.5) + 1
    turns = rng.geometric(1 / 3.5, n_conv)
    turns = turns[np.cumsum(turns) <= n_rows]
    n_conv = turns.size
    conv = np.repeat(np.arange(n_conv), turns)
    first = np.cumsum(turns) - turns
    t_in_conv = np.arange(conv.size) - np.repeat(first, turns)
    start = rng.uniform(0, 86_400.0, n_conv)
    gaps = rng.exponential(100.0, conv.size)
    gaps[first] = 0.0
    csum = np.cumsum(gaps)
    ts = start[conv] + csum - np.repeat(csum[first], turns)
    length = 10 + 8 * t_in_conv
    # block ids: conversation c's running context block p is c * 2^20 + p (+ shared system prompt)
    req_of_block = np.repeat(np.arange(conv.size), length)
    offsets = np.cumsum(length) - length
    pos = np.arange(length.sum()) - np.repeat(offsets, length)
    values = conv[req_of_block].astype(np.int64) * (1 << 20) + pos + 10
    shared = rng.random(n_conv) < 0.3
    values = np.where(shared[conv[req_of_block]] & (pos < 4), pos + 1, values)
    last = offsets + length - 1
    values[last] = (1 << 50) + np.arange(conv.size)  # the partial last block differs every time
    order = np.argsort(ts, kind="stable")
    lists = pa.ListArray.from_arrays(pa.array(np.concatenate([offsets, [values.size]]).astype(np.int32)), pa.array(values))
    frame = pl.DataFrame({"timestamp": ts, "prefix_blocks": pl.from_arrow(lists)})
    return frame[order], conv[order]


_CHILD = r"""
import json, resource, sys, time
import numpy as np, polars as pl
from servelab.analysis.store import open_store
from servelab.analysis.conversations import link_conversations
store = open_store(sys.argv[1])
t, cpu = time.perf_counter(), time.process_time()
res = link_conversations(store)
elapsed, cpu = time.perf_counter() - t, time.process_time() - cpu
truth = np.load(sys.argv[2])
got = res.links.sort("request_id")["conversation"].to_numpy()
pairs = pl.DataFrame({"got": got, "true": truth}).unique()
one_got = pairs.group_by("true").len().filter(pl.col("len") == 1).select("true")
one_true = pairs.group_by("got").len().filter(pl.col("len") == 1).select("got")
exact = pairs.join(one_got, on="true").join(one_true, on="got").height
print(json.dumps({"elapsed_s": elapsed, "cpu_s": cpu, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "summary": res.summary.to_dict(), "true_conversations": int(np.unique(truth).size),
                  "recovered_exactly": exact}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from servelab.analysis.store import open_store, write_store

    path = HERE / "out" / f"chains_{args.rows}_{args.seed}"
    truth_path = path.with_suffix(".truth.npy")
    if not (path / "manifest.json").is_file() or not truth_path.is_file():
        t = time.perf_counter()
        frame, truth = build_chains(args.rows, seed=args.seed)
        write_store(frame, path, source="bench_conversations hash chains", overwrite=True)
        np.save(truth_path, truth)
        print(f"built {frame.height:,} requests in {time.perf_counter() - t:.1f} s")
    store = open_store(path)
    blocks = store.query("SELECT avg(len(prefix_blocks)) AS b FROM requests")["b"][0]
    print(f"store: {store.n_requests:,} requests, {blocks:.1f} blocks per request on average; load {os.getloadavg()}")
    done = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(truth_path)], capture_output=True, text=True,
                          check=False)
    if done.returncode:
        print(done.stderr[-3000:])
        return done.returncode
    out = json.loads(done.stdout.strip().splitlines()[-1])
    s = out["summary"]
    print(f"link_conversations (prefix_blocks): {out['elapsed_s']:.2f} s wall, {out['cpu_s']:.2f} s CPU (all threads), "
          f"peak RSS {out['peak_rss_mb']:.0f} MB (child process, includes imports)")
    print(f"linked {s['n_linked']:,} of {s['n_requests']:,} requests into {s['n_multi_turn']:,} multi-turn "
          f"conversations; {out['recovered_exactly']:,} of {out['true_conversations']:,} built conversations recovered exactly")
    print(f"load average after: {os.getloadavg()}")
    print("target: < 30 s and < 4 GB for 10^6 requests x 30 blocks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
