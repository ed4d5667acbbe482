"""Coverage of the sampled prefix analysis' reference-capacity intervals on simulated traces (issue 15).

``servelab prefixes`` above 30 M blocks samples the LRU curve (SHARDS); the reference capacity's
saving and the share of the infinite cache's saving it keeps get a percentile bootstrap over
clients (:mod:`servelab.analysis.prefix_savings`). A kept share is a proportion of the infinite
cache's hits: its interval must lie in [0, 1]. This script checks, over seeds, on the benchmark's
synthetic trace (:func:`bench_prefixes.build_prefix_frame`: Zipf clients, shared system prompts,
templates, growing conversations):

- the exact analysis on each trace (every block; its kept share is the trace's true value, the
  *same-trace truth*) and the sampled analysis (``sample_blocks`` well below the trace's blocks,
  so the SHARDS rate is about that of the 10 M benchmark run, 0.005-0.01);
- whether each sampled interval lies in [0, 1], covers the same-trace truth, and covers the
  *population truth* (the mean of the exact kept shares over the seeds: what another trace of
  the same clients' process would give, which the client bootstrap is meant to describe);
- the intervals' widths.

Measured (``--seeds 1-40 --reference 3000``: 100,000 requests, ~2.0 M blocks, SHARDS rate
~0.005, kept share ~0.53, population truth 0.5264): the sampled kept share's intervals all lie
in [0, 1], mean width 0.092, cover the same-trace truth in 37/40 seeds and the population truth
in 36/40 (nominal 95 %; the exact analysis' own intervals cover the population truth in 37/40).
Before (each request's sampled served tokens scaled by 1 / rate instead of its exact infinite
hit less its sampled misses / rate): 3/40 intervals above 1 (largest end 1.114), mean width
0.271, coverage 38/40 and 40/40; the same point values (sampled minus exact: mean 0.0015, sd
0.026, both versions).

The reference capacity is fixed over the seeds (``--reference``, blocks), so the truth is one
number. Usage: ``python benchmarks/bench_prefix_interval.py [--seeds 1-40] [--requests 100000]
[--sample-blocks 20000]``; prints one line per seed and the coverage, writes
``benchmarks/out/prefix_interval/results.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_prefixes import build_prefix_frame  # noqa: E402

from servelab.analysis.prefix_analysis import analyse_prefixes  # noqa: E402
from servelab.analysis.store import write_store  # noqa: E402

__all__ = ["coverage_run", "main"]


def coverage_run(seed: int, *, requests: int, clients: int, sample_blocks: int, reference: int, n_boot: int) -> dict:
    """Exact and sampled analyses of one seeded trace: the kept share and its intervals."""
    frame = build_prefix_frame(requests, seed=seed, n_clients=clients, span_s=6 * 3600.0)
    with tempfile.TemporaryDirectory() as tmp:
        store = write_store(frame, Path(tmp) / "store")
        exact = analyse_prefixes(store, exact=True, sources=False, reference=reference, n_boot=n_boot, seed=seed)
        sampled = analyse_prefixes(store, exact=False, sources=False, reference=reference, n_boot=n_boot, seed=seed,
                                   sample_blocks=sample_blocks)
    rate = next((n for n in sampled.notes if "rate " in n), "")
    return {"seed": seed, "blocks": int(exact.reuse.n_blocks), "exact_kept": exact.kept.value,
            "exact_low": exact.kept.low, "exact_high": exact.kept.high, "kept": sampled.kept.value,
            "low": sampled.kept.low, "high": sampled.kept.high, "at_ref": sampled.at_reference.value,
            "at_ref_low": sampled.at_reference.low, "at_ref_high": sampled.at_reference.high,
            "exact_at_ref": exact.at_reference.value, "infinite": exact.infinite.value,
            "rate": float(rate.split("(rate ")[1].split(")")[0]) if "(rate " in rate else float("nan")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="1-40", help="a range a-b")
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=2_000)
    parser.add_argument("--sample-blocks", type=int, default=20_000)
    parser.add_argument("--reference", type=int, default=20_000, help="reference LRU capacity (blocks)")
    parser.add_argument("--n-boot", type=int, default=200)
    args = parser.parse_args(argv)
    a, b = (int(x) for x in args.seeds.split("-"))
    t0 = time.perf_counter()
    rows = []
    for s in range(a, b + 1):
        rows.append(coverage_run(s, requests=args.requests, clients=args.clients, sample_blocks=args.sample_blocks,
                                 reference=args.reference, n_boot=args.n_boot))
        r = rows[-1]
        print(f"seed {s:3d}: blocks {r['blocks']:,} rate {r['rate']:.4g}  exact kept {r['exact_kept']:.4f} "
              f"[{r['exact_low']:.4f}, {r['exact_high']:.4f}]  sampled {r['kept']:.4f} [{r['low']:.4f}, {r['high']:.4f}]",
              flush=True)
    runs = pl.DataFrame(rows)
    truth = float(runs["exact_kept"].mean())
    runs = runs.with_columns(
        ((pl.col("low") <= pl.col("exact_kept")) & (pl.col("exact_kept") <= pl.col("high"))).alias("covers_same"),
        ((pl.col("low") <= truth) & (truth <= pl.col("high"))).alias("covers_population"),
        ((pl.col("exact_low") <= truth) & (truth <= pl.col("exact_high"))).alias("exact_covers_population"),
        ((pl.col("low") >= 0) & (pl.col("high") <= 1)).alias("in_unit"),
        (pl.col("high") - pl.col("low")).alias("width"), (pl.col("exact_high") - pl.col("exact_low")).alias("exact_width"))
    summary = {"seeds": runs.height, "population_truth": truth, "sd_exact_kept": float(runs["exact_kept"].std()),
               "sampled_minus_exact_mean": float((runs["kept"] - runs["exact_kept"]).mean()),
               "sampled_minus_exact_sd": float((runs["kept"] - runs["exact_kept"]).std()),
               **{c: float(runs[c].mean()) for c in ("covers_same", "covers_population", "exact_covers_population",
                                                    "in_unit", "width", "exact_width")},
               "max_high": float(runs["high"].max()), "min_low": float(runs["low"].min()),
               "at_ref_above_infinite": int((runs["at_ref_high"] > runs["infinite"] + 1e-12).sum()),
               "seconds": time.perf_counter() - t0}
    print(json.dumps(summary, indent=1))
    out = Path(__file__).resolve().parent / "out" / "prefix_interval"
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"summary": summary, "runs": runs.to_dicts(), "args": vars(args)},
                                                 indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
