"""Cost of the conversation-linking checks (issue 14 target: they add < 10 % to ``conversations``
on 10 M requests), and a seeded builder of conversation traces with known links.

:func:`build_prefix_trace` draws a Mooncake-style trace with numpy, no loop over requests:
conversations of a geometric number of turns (mean 3) from Zipf-weighted clients; every prompt
starts with one system prompt shared by all users (1,000 tokens), 40 % of clients add their own
template (500-3,000 tokens); each turn's prompt is the conversation's token stream so far
(system prompt, template, every earlier message and answer, the new message) cut into 512-token
blocks whose ids name the content up to the block's end (so equal ids mean an equal prefix), and
a partial last block gets a fresh id, as in Mooncake's ``hash_ids``. A turn takes
``latency = 0.3 s + output / 50 tok/s`` and the user thinks a log-normal time (median 60 s)
before the next one. Arrival times are logged on a clock (floor to the step, plus uniform jitter
of 3 ms) or kept exact. It returns each request's true parent and the true (unlogged) ITTs.

The benchmark writes a store of ``--rows`` requests once under ``benchmarks/out/``, then times,
in one fresh child process and on the same store, ``link_conversations`` with servelab's earlier
rule (min_shared_blocks=1, no common-prefix, clock or latency check) and with the default rule,
alternating ``--repeats`` times, and prints the median times, their ratios (medians, and fastest
runs, which a loaded machine disturbs least), and each rule's links against the truth. It measures
and asserts nothing.

Command line::

    python benchmarks/bench_linking.py                     # about 5 M requests, 3-s clock
    python benchmarks/bench_linking.py --rows 10000000 --repeats 2
    python benchmarks/bench_linking.py --store /work/bench_data/linking_rows1000000_clock3_seed0
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
BLOCK = 512

__all__ = ["build_prefix_trace", "main"]


def build_prefix_trace(n_conversations: int, *, seed: int, clock_s: float = 3.0, n_clients: int = 200,
                       mean_turns: float = 3.0, span_s: float = 86_400.0, system_tokens: int = 600,
                       template_share: float = 0.4, short_share: float = 0.3, min_message: int = 512,
                       max_message: int = 3000, jitter_s: float = 0.003) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """A conversation trace with prompt blocks, logged on a clock, and its true links.

    Parameters
    ----------
    n_conversations : int
        Conversations to draw (mean_turns=1: every conversation has one turn, i.e. no links).
    seed : int
    clock_s : float
        Logging step (0: exact times).
    n_clients : int
        Clients, Zipf-weighted (rank^-1).
    mean_turns : float
        Mean of the geometric number of turns per conversation.
    span_s : float
        Conversations start uniformly over [0, span_s).
    system_tokens : int
        The system prompt every prompt starts with.
    template_share : float
        Share of clients with a template (500-3,000 tokens) after the system prompt.
    short_share : float
        Share of conversations that are one short question (16-400 tokens): with the default
        system prompt, a client without a template then sends a two-block prompt whose only full
        block is the system prompt (the requests that servelab's earlier rule made the parent
        of every later request).
    min_message, max_message : int
        Each user message has a uniform number of tokens in this range (>= 512 makes every true
        link identifiable: the first turn has a full block beyond the shared prefixes).
    jitter_s : float
        Uniform jitter (+-) added to clocked timestamps.

    Returns
    -------
    frame : polars.DataFrame
        ``timestamp``, ``client_id``, ``prefix_blocks``, ``input_tokens``, ``output_tokens``,
        ``latency_s``, in logged arrival order.
    parent : numpy.ndarray of int64
        True parent (row index in ``frame``) or -1.
    true_itt : numpy.ndarray of float
        True ITT of each request with a parent (NaN otherwise), before logging.
    """
    rng = np.random.default_rng(seed)
    turns = rng.geometric(1.0 / mean_turns, n_conversations) if mean_turns > 1 else np.ones(n_conversations, np.int64)
    short = rng.random(n_conversations) < short_share
    turns = np.where(short, 1, turns)
    n = int(turns.sum())
    conv = np.repeat(np.arange(n_conversations), turns)
    first = np.cumsum(turns) - turns
    t_in = np.arange(n) - first[conv]
    weights = 1.0 / np.arange(1, n_clients + 1)
    client_of_conv = rng.choice(n_clients, n_conversations, p=weights / weights.sum())
    has_template = rng.random(n_clients) < template_share
    template = np.where(has_template, rng.integers(500, 3001, n_clients), 0)
    client = client_of_conv[conv]
    msg = np.where(short[conv], rng.integers(16, 401, n), rng.integers(min_message, max_message + 1, n))
    out = rng.integers(20, 801, n)
    # prompt of turn t: system + template + messages 0..t + answers 0..t-1 (cumulative within a conversation)
    grow = msg + out
    csum = np.cumsum(grow)
    before = csum - grow - np.repeat(csum[first] - grow[first], turns)  # sum over earlier turns
    prompt = system_tokens + template[client] + before + msg
    latency = 0.3 + out / 50.0
    think = rng.lognormal(np.log(60.0), 1.0, n)
    step_time = latency + think
    cst = np.cumsum(step_time)
    offset = cst - step_time - np.repeat(cst[first] - step_time[first], turns)
    true_ts = rng.uniform(0.0, span_s, n_conversations)[conv] + offset
    if clock_s > 0:
        logged = np.floor(true_ts / clock_s) * clock_s + rng.uniform(-jitter_s, jitter_s, n)
        logged = np.maximum(logged, 0.0)
    else:
        logged = true_ts.copy()
    # blocks: ids name the content up to the block's end
    n_full = prompt // BLOCK
    partial = (prompt % BLOCK) > 0
    length = n_full + partial
    req = np.repeat(np.arange(n), length)
    offs = np.cumsum(length) - length
    q = np.arange(int(length.sum())) - offs[req]
    n_sys = system_tokens // BLOCK
    n_tpl = (system_tokens + template[client]) // BLOCK  # blocks wholly inside system prompt + template
    values = np.where(q < n_sys, q, np.where(q < n_tpl[req], (1 << 40) + client[req].astype(np.int64) * (1 << 20) + q,
                                             (2 << 40) + conv[req].astype(np.int64) * (1 << 12) + q))
    last = offs + length - 1
    values[last[partial]] = (3 << 40) + np.flatnonzero(partial)  # a partial block is new every time
    order = np.lexsort((true_ts, logged))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    true_parent = np.where(t_in > 0, np.arange(n) - 1, -1)
    parent = np.where(true_parent >= 0, rank[np.maximum(true_parent, 0)], -1)[order]
    itt = np.where(t_in > 0, step_time[np.maximum(np.arange(n) - 1, 0)], np.nan)[order]
    lists = pa.LargeListArray.from_arrays(pa.array(np.concatenate([offs, [values.size]]).astype(np.int64)),
                                          pa.array(values.astype(np.int64)))
    frame = pl.DataFrame({
        "timestamp": logged,
        "client_id": pl.Series([f"c{c}" for c in range(n_clients)]).gather(client),
        "prefix_blocks": pl.from_arrow(lists),
        "input_tokens": prompt.astype(np.int64),
        "output_tokens": out.astype(np.int64),
        "latency_s": latency,
    })[order]
    return frame, parent, itt


_CHILD = r"""
import json, sys, time
import numpy as np
from servelab.analysis.store import open_store
from servelab.analysis.conversations import link_conversations
store = open_store(sys.argv[1])
truth = np.load(sys.argv[2])
repeats = int(sys.argv[3])
old = dict(common_min_continuations=None, common_min_clients=None, check_itt=False, check_latency=False)
times = {"before": [], "after": []}
cpu = {"before": [], "after": []}
results = {}
for r in range(repeats):
    for name, kw in (("before", old), ("after", {})) if r % 2 == 0 else (("after", {}), ("before", old)):
        t, c = time.perf_counter(), time.process_time()
        res = link_conversations(store, **kw)
        times[name].append(time.perf_counter() - t)
        cpu[name].append(time.process_time() - c)
        results[name] = res
out = {}
for name, res in results.items():
    got = res.links.sort("request_id")["parent"].fill_null(-1).to_numpy()
    tp = int(((got == truth) & (got >= 0)).sum())
    out[name] = {"times_s": times[name], "median_s": float(np.median(times[name])), "cpu_s": cpu[name],
                 "median_cpu_s": float(np.median(cpu[name])), "links": int((got >= 0).sum()),
                 "true_links": int((truth >= 0).sum()), "correct": tp,
                 "zero_itt": int((res.links["itt_s"].drop_nulls() == 0).sum()),
                 "median_itt_s": float(res.links["itt_s"].median() or float("nan")),
                 "summary": {k: v for k, v in res.summary.to_dict().items() if k != "notes"}}
print(json.dumps(out))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5_000_000, help="about this many requests (2.4 per conversation)")
    parser.add_argument("--clock", type=float, default=3.0, help="logging step of the timestamps (s)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each rule, alternating")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--store", type=Path, default=None,
                        help="time on this store, written earlier by this benchmark, with its truth beside it "
                             "(<store>.truth.npy), e.g. /work/bench_data/linking_rows1000000_clock3_seed0")
    args = parser.parse_args(argv)
    from servelab.analysis.store import open_store, write_store

    path = args.store or HERE / "out" / f"linking_{args.rows}_{args.clock:g}_{args.seed}"
    truth_path = path.with_suffix(".truth.npy")
    if args.store is not None and not ((path / "manifest.json").is_file() and truth_path.is_file()):
        parser.error(f"--store needs a store and its truth {truth_path.name} beside it; got {str(path)!r}")
    if not (path / "manifest.json").is_file() or not truth_path.is_file():
        t = time.perf_counter()
        frame, parent, _ = build_prefix_trace(int(args.rows / 2.4), seed=args.seed, clock_s=args.clock,
                                              n_clients=max(200, args.rows // 5000), span_s=7 * 86_400.0)
        write_store(frame, path, source="bench_linking conversation trace", overwrite=True)
        np.save(truth_path, parent)
        print(f"built {frame.height:,} requests in {time.perf_counter() - t:.1f} s")
        del frame
    store = open_store(path)
    blocks = store.query("SELECT avg(len(prefix_blocks)) AS b FROM requests")["b"][0]
    print(f"store: {store.n_requests:,} requests, {blocks:.1f} blocks per request on average, clock {args.clock:g} s; "
          f"load {os.getloadavg()}")
    done = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(truth_path), str(args.repeats)],
                          capture_output=True, text=True, check=False)
    if done.returncode:
        print(done.stderr[-3000:])
        return done.returncode
    out = json.loads(done.stdout.strip().splitlines()[-1])
    for name in ("before", "after"):
        r = out[name]
        s = r["summary"]
        print(f"{name:6s}: median {r['median_s']:.2f} s wall (runs {', '.join(f'{x:.2f}' for x in r['times_s'])}), "
              f"median {r['median_cpu_s']:.2f} s CPU (all threads); "
              f"{r['links']:,} links, {r['correct']:,} correct of {r['true_links']:,} true "
              f"(precision {r['correct'] / max(r['links'], 1):.4f}, recall {r['correct'] / max(r['true_links'], 1):.4f}); "
              f"{r['zero_itt']:,} zero-ITT links; median ITT {r['median_itt_s']:.1f} s; rejected: common "
              f"{s['n_rejected_common']:,}, clock {s['n_rejected_itt']:,}, latency {s['n_rejected_latency']:,}")
    ratio = out["after"]["median_s"] / out["before"]["median_s"]
    cpu_ratio = out["after"]["median_cpu_s"] / out["before"]["median_cpu_s"]
    fastest = min(out["after"]["times_s"]) / min(out["before"]["times_s"])
    print(f"after / before = {ratio:.3f} wall, {cpu_ratio:.3f} CPU (medians), {fastest:.3f} wall (fastest runs; "
          f"target < 1.10); load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
