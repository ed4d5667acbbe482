"""Prefix-cache fidelity of servelab's generated workload over several seeds (issue 15).

The in-sample setting of ``bench_prefix_generation.py`` without AIPerf and without the held-out
half: ingest the Mooncake trace once, fit a pool once (``fit_pool`` with its defaults, or
``--uncorrected`` for ``window_censoring=False``), then for every seed generate a workload over
the trace's duration (rate ``pool``), export Mooncake JSONL, read it back and compare its block
lists with the trace (:func:`servelab.analysis.prefix_fidelity.prefix_fidelity`). Beside each
seed: requests, mean input tokens against the trace's, and the role shares of
``bench_prefix_lengths.roles``. Prints one row per seed and the worst; target: every seed's
curve distance <= 0.05. Runs on whichever servelab the interpreter imports, so the same file
measures a "before" tree (``/work/main/.venv/bin/python benchmarks/bench_prefix_seeds.py``).

Measured (seeds 1-8): before the short-trace data windows (main at 917bae7: one 6-h data window,
first turns from one pooled PMF) .0228 .0280 .0419 .0340 .0575 .0331 .0130 .0118 (mean 0.0303,
7/8 within 0.05); after (300-s data windows, first turns following them, reuse weights from each
length class's own times) .0450 .0250 .0256 .0224 .0180 .0323 .0385 .0244 (mean 0.0289, 8/8;
input ratio 0.9745, hit rate 0.6204 vs 0.6396). ``--min-data-windows`` 4 / 6 / 8 (200, 150, 120 s)
gave max 0.0550 / 0.0545 / 0.0591 (7/8, 7/8, 6/8). After branching conversations count as their
depth in the turns fit (25 of the trace's 3,758 inferred conversations branch, e.g. 5 rows of
depth 2): .0267 .0319 .0267 .0407 .0302 .0314 .0310 .0261 (mean 0.0306, max 0.0407, 8/8; input
ratio 0.9755; hit rate 0.6184 vs 0.6396). Held-out traces: ``bench_prefix_heldout.py``.

Seeds 1-24, main d378a9f (before turns were spaced in traffic time) -> 8e51a0b (after): seeds
1-8 .0284 .0322 .0319 .0400 .0325 .0315 .0278 .0284 -> .0473 .0395 .0280 .0573 .0232 .0274 .0304
.0547; seeds 9-24 before 10/16 within 0.05 (mean .0448, max .0625), after 14/16 (mean .0372,
max .0686); all 24: before 18/24, mean .0404, max .0625; after 20/24, mean .0377, max .0686
(per-seed difference after - before: mean -.0027, sd .0145, t = -0.9: no change; the trace's
arrivals are smooth, CV of counts per 10 s 0.19, so its traffic-time gaps are its wall-clock
ones: medians 164.1 vs 164.8 s). So the "8/8" of seeds 1-8 was the luck of those seeds: about one
seed in five misses 0.05 here, before and after, at the large capacities (4,096-32,768 blocks:
the infinite-cache level, 0.62 generated vs 0.64; see ``bench_prefix_warmup.py`` for its time
profile).

The distance's own noise: the script also scores every pair of the seeds' workloads against each
other (two draws of one pool, the same process by construction). Main at 096802c (2026-12-04
20:40, seeds 1-24): against the trace mean .0346, median .0303, 22/24 within 0.05 (seeds 8 and 4
out: .0682, .0587); pairs of draws mean .0262, median .0234, 90th percentile .0448, **16/276
(5.8 %) above 0.05**. So at this trace's size (3,993 requests, 122 k blocks) two workloads of the
very same process differ by more than 5 points at some capacity about one time in 17: "every
seed within 5 points" cannot be promised by any generator; servelab's 2/24 is that rate plus its
bias (mean curve +0.030 at 4,096 blocks, -0.022 at the infinite cache over seeds 1-12).

Usage: ``python benchmarks/bench_prefix_seeds.py [--seeds 1-8] [--trace FILE] [--uncorrected]
[--data-window S] [--min-data-windows K]``.
"""
from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

from servelab.analysis.ingest import ingest
from servelab.analysis.prefix_fidelity import load_blocks, prefix_fidelity
from servelab.analysis.prefix_reuse import infinite_cache_hits
from servelab.fitting.pool_fit import fit_pool
from servelab.generator.exports import export_workload
from servelab.generator.generate import generate

__all__ = ["main", "seed_runs"]

TRACE = Path("/work/shared/data/mooncake/synthetic_trace.jsonl")


def _blocks(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select((pl.col("timestamp") / 1000.0).alias("timestamp"),
                        pl.col("hash_ids").cast(pl.List(pl.Int64)).alias("prefix_blocks"))


def _request_hit_share(frame: pl.DataFrame) -> float:
    """Mean over requests of the share of their blocks an infinite cache serves (each request
    weighs the same, whatever its length: the block-weighted hit rate leans on long prompts)."""
    lengths = frame["hash_ids"].list.len().to_numpy()
    hits = infinite_cache_hits(frame["hash_ids"].explode().drop_nulls().to_numpy(), lengths)
    per = np.bincount(np.repeat(np.arange(lengths.size), lengths), weights=hits, minlength=lengths.size)
    return float(np.mean(per[lengths > 0] / lengths[lengths > 0]))


def seed_runs(trace: Path, seeds: range, *, uncorrected: bool = False, data_window: str | None = None,
              min_data_windows: int | None = None) -> tuple[pl.DataFrame, pl.DataFrame, float]:
    """Fit one pool on the Mooncake JSONL ``trace`` and compare one generated workload per seed.

    Returns
    -------
    (polars.DataFrame, polars.DataFrame, float, numpy.ndarray)
        One row per seed (the columns ``main`` prints), the trace as read, the pool's data
        window (s), and the curve distance of every pair of the seeds' workloads.
    """
    real = pl.read_ndjson(trace)
    duration = float(real["timestamp"].max() - real["timestamp"].min()) / 1000.0
    rows, drawn = [], []
    with tempfile.TemporaryDirectory() as tmp:
        store = ingest(trace, fmt="mooncake", output=Path(tmp) / "store", overwrite=True, progress=False)
        pool = fit_pool(store, window_censoring=not uncorrected,
                        **({"data_window_s": data_window} if data_window else {}),
                        **({"min_data_windows": min_data_windows} if min_data_windows is not None else {}))
        for seed in seeds:  # one workload per seed
            work = generate(pool, "pool", duration, seed=seed)
            path = export_workload(work, Path(tmp) / f"w{seed}.jsonl", fmt="mooncake")
            gen = pl.read_ndjson(path)
            drawn.append(load_blocks(_blocks(gen)))
            fid = prefix_fidelity(_blocks(real), _blocks(gen))
            parent = work["parent_id"].cast(pl.Int64, strict=False).fill_null(-1).to_numpy() \
                if "parent_id" in work.columns else np.full(work.height, -1)
            turn = work["turn"].to_numpy() if "turn" in work.columns else np.ones(work.height)
            rows.append({"seed": seed, "requests": work.height,
                         "input_ratio": float(work["input_tokens"].mean() / real["input_length"].mean()),
                         "follow_share": float((parent >= 0).mean()),
                         "orphan_share": float(((turn > 1) & (parent < 0)).mean()),
                         "hit_rate": fid.candidate_hit_rate, "real_hit_rate": fid.reference_hit_rate,
                         "request_hit": _request_hit_share(gen.sort("timestamp", maintain_order=True)),
                         "curve_distance": fid.curve_distance, "worst_capacity": fid.worst_capacity,
                         "reuse_ks": fid.reuse_distance_ks})
    return pl.DataFrame(rows), real, float(pool.data_window_s), _pair_distances(drawn)


def _pair_distances(drawn: list) -> np.ndarray:
    """Curve distance of every pair of generated workloads: how far two draws of one pool are
    from each other (the sampling noise of the distance at this trace's size)."""
    return np.array([prefix_fidelity(a, b).curve_distance for a, b in itertools.combinations(drawn, 2)])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="1-8", help="a range a-b")
    parser.add_argument("--trace", type=Path, default=TRACE)
    parser.add_argument("--uncorrected", action="store_true", help="window_censoring=False")
    parser.add_argument("--data-window", default=None, help="fit_pool data_window_s (default: its own)")
    parser.add_argument("--min-data-windows", type=int, default=None,
                        help="fit_pool min_data_windows (default: its own; 0: no short-trace rule)")
    args = parser.parse_args(argv)
    if not args.trace.is_file():
        print(f"skipped: {args.trace} is absent (the shared data folder is optional)")
        return 0
    a, b = (int(x) for x in args.seeds.split("-"))
    frame, real, data_window_s, pairs = seed_runs(args.trace, range(a, b + 1), uncorrected=args.uncorrected,
                                           data_window=args.data_window, min_data_windows=args.min_data_windows)
    duration = float(real["timestamp"].max() - real["timestamp"].min()) / 1000.0
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=200, float_precision=4, tbl_hide_dataframe_shape=True):
        print(frame)
    worst = frame.sort("curve_distance").row(-1, named=True)
    print(f"trace {real.height} requests over {duration:.0f} s; data window {data_window_s:g} s; window corrections "
          f"{'off' if args.uncorrected else 'on'}; curve distance mean {frame['curve_distance'].mean():.4f}, "
          f"max {worst['curve_distance']:.4f} (seed {worst['seed']}); seeds within 0.05: "
          f"{int((frame['curve_distance'] <= 0.05).sum())}/{frame.height}; input ratio mean "
          f"{frame['input_ratio'].mean():.4f}; hit rate mean {frame['hit_rate'].mean():.4f} vs "
          f"{worst['real_hit_rate']:.4f}, per request (unweighted by length) {frame['request_hit'].mean():.4f} vs "
          f"{_request_hit_share(real.sort('timestamp', maintain_order=True)):.4f}")
    if pairs.size:
        print(f"two draws of the pool against each other ({pairs.size} pairs): curve distance mean "
              f"{pairs.mean():.4f}, median {np.median(pairs):.4f}, 90th percentile {np.quantile(pairs, 0.9):.4f}, "
              f"above 0.05: {int((pairs > 0.05).sum())}/{pairs.size}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
