"""Why the held-out prefix fidelity fails on the Mooncake trace: its two halves differ (issue 15).

``bench_prefix_generation.py``'s held-out setting fits on the first half of the trace (by arrival
time) and compares with the second; servelab's curve distance there is 0.43-0.47 against AIPerf's
0.407. This script measures, on the real trace alone and on servelab's workloads:

halves
    per half (and the whole trace): requests, mean input tokens, blocks per request,
    infinite-cache hit rate, share of requests with at least one hit; the second half's hit
    rate when the first half's blocks are already cached; distinct blocks first seen in the
    first half and used again in the second;
trend
    mean blocks per request in 100-s bins (the prompts lengthen through the trace);
servelab
    a pool fitted on the first half (``fit_pool`` defaults), workloads over the second half's
    length and over the first half's (seeds ``--seeds``): mean hit rate, and the curve distance
    to the second half and to the first half (in-sample).

AIPerf's synthesizer rewrites the first half request by request, so its output has the first
half's hit rate (0.329) exactly; a generator that matched the first half perfectly would be as
far from the second half as that. Usage: ``python benchmarks/bench_prefix_halves.py
[--trace FILE] [--seeds 1-8]``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

from servelab.analysis.ingest import ingest
from servelab.analysis.prefix_fidelity import prefix_fidelity
from servelab.analysis.prefix_reuse import infinite_cache_hits
from servelab.fitting.pool_fit import fit_pool
from servelab.generator.exports import export_workload
from servelab.generator.generate import generate

__all__ = ["main"]

TRACE = Path("/work/shared/data/mooncake/synthetic_trace.jsonl")


def _blocks(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select((pl.col("timestamp") / 1000.0).alias("timestamp"),
                        pl.col("hash_ids").cast(pl.List(pl.Int64)).alias("prefix_blocks"))


def _hits_per_request(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    lengths = frame["hash_ids"].list.len().to_numpy()
    hits = infinite_cache_hits(frame["hash_ids"].explode().drop_nulls().to_numpy(), lengths)
    return np.bincount(np.repeat(np.arange(lengths.size), lengths), weights=hits, minlength=lengths.size), lengths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trace", type=Path, default=TRACE)
    parser.add_argument("--seeds", default="1-8", help="a range a-b")
    args = parser.parse_args(argv)
    if not args.trace.is_file():
        print(f"skipped: {args.trace} is absent (the shared data folder is optional)")
        return 0
    a, b = (int(x) for x in args.seeds.split("-"))
    full = pl.read_ndjson(args.trace).sort("timestamp", maintain_order=True)
    cut = float(np.median(full["timestamp"].to_numpy()))  # as bench_prefix_generation.py
    first = full.filter(pl.col("timestamp") < cut)
    second = full.filter(pl.col("timestamp") >= cut).with_columns(pl.col("timestamp") - int(cut))
    rows = []
    for name, part in (("whole", full), ("first half", first), ("second half", second)):
        h, n = _hits_per_request(part)
        rows.append({"part": name, "requests": part.height, "mean_input": part["input_length"].mean(),
                     "blocks_per_request": n.mean(), "hit_rate": h.sum() / n.sum(),
                     "requests_with_a_hit": (h > 0).mean()})
    with pl.Config(tbl_rows=-1, tbl_cols=-1, float_precision=4, tbl_hide_dataframe_shape=True):
        print(pl.DataFrame(rows))
    h, n = _hits_per_request(full)
    late = full["timestamp"].to_numpy() >= cut
    print(f"second half with the first half's blocks cached: hit rate {h[late].sum() / n[late].sum():.4f}")
    seen = (full.with_columns(pl.Series("late", late)).explode("hash_ids")
            .group_by("hash_ids").agg(pl.col("late").first().alias("first_late"),
                                      pl.col("late").any().alias("any_late")))
    print(f"distinct blocks {seen.height}; first seen in the first half and used in the second: "
          f"{seen.filter(~pl.col('first_late') & pl.col('any_late')).height}")
    trend = (full.with_columns((pl.col("timestamp") // 100_000 * 100).alias("from_s"),
                               pl.col("hash_ids").list.len().alias("blocks"))
             .group_by("from_s").agg(pl.len().alias("requests"), pl.col("blocks").mean()).sort("from_s"))
    print("mean blocks per request by 100 s: " + ", ".join(f"{int(r['from_s'])}s {r['blocks']:.1f}"
                                                           for r in trend.iter_rows(named=True)))
    d_test = float(second["timestamp"].max() - second["timestamp"].min()) / 1000.0
    d_train = float(first["timestamp"].max() - first["timestamp"].min()) / 1000.0
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "first.jsonl"
        first.write_ndjson(src)
        pool = fit_pool(ingest(src, fmt="mooncake", output=Path(tmp) / "store", overwrite=True, progress=False))
        for label, duration in (("second half's length", d_test), ("first half's length", d_train)):
            hit, to_test, to_train = [], [], []
            for seed in range(a, b + 1):  # one workload per seed
                work = generate(pool, "pool", duration, seed=seed)
                gen = _blocks(pl.read_ndjson(export_workload(work, Path(tmp) / "w.jsonl", fmt="mooncake")))
                f_test, f_train = prefix_fidelity(_blocks(second), gen), prefix_fidelity(_blocks(first), gen)
                hit.append(f_test.candidate_hit_rate)
                to_test.append(f_test.curve_distance)
                to_train.append(f_train.curve_distance)
            print(f"servelab fitted on the first half, {duration:.0f} s ({label}), seeds {a}-{b}: hit rate mean "
                  f"{np.mean(hit):.4f} ({min(hit):.4f}-{max(hit):.4f}); curve distance to the second half mean "
                  f"{np.mean(to_test):.4f}, to the first half mean {np.mean(to_train):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
