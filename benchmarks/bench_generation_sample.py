"""Known truth for the generation section's client sample (issue 16): does the seeded hash sample of
whole clients that the report's generation-fidelity experiment uses above
``Budget.max_generation_requests`` change ServeGen F12's verdict?

F12 ("per-client generation reproduces the joint distribution of 3-s window rate and mean input
better than the naive baseline") holds in a period when servelab's joint (window rate, mean
input) energy distance to the real period is below naive's
(:func:`servelab.reports.areas.generation.fidelity_experiment`, ``joint_input_energy``). Above
the bound the experiment fits, generates and compares a seeded hash sample of whole clients
holding about ``max_requests`` requests instead of every client. This benchmark runs the
experiment on simulated periods where the answer is known, sampled and unsampled, with the seeds
fixed:

- **null** (identical Poisson clients, no burstiness, the same length law for every client):
  per-client generation has nothing to find; naive's single Poisson process is the truth, so F12
  "holding" is a false positive of the rule (it has no level: a coin flip is what to expect);
- **positive controls** (heterogeneous bursty clients: own rates, log-normal window multipliers
  of sd 0.1-1, or 0.1-2, own log-normal length laws): per-client generation should win.

Traces come from ``bench_validate.simulate_trace`` (3 h, ``--clients`` clients, rates
log-uniform in [0.01, 0.2] req/s x ``--rate-scale``; 600-s windows of the burst multiplier, no
daily cycle). Per scenario and seed ``s``: the trace of seed ``s``; the experiment unsampled
(seed ``s``), unsampled again with generation seed ``s + 1000`` (how often a reseed alone
changes the verdict: the generators' own noise), and sampled at ``--fraction`` of the requests
(``max_requests = fraction x n``, seed ``s``). Printed per scenario: the verdict rates (F12
holds) unsampled / reseeded / sampled with 95% Wilson intervals, agreement of the sampled and of
the reseeded verdict with the unsampled one, and the median distances.

Command line::

    python benchmarks/bench_generation_sample.py --seeds 20            # every scenario
    python benchmarks/bench_generation_sample.py --seeds 20 --scenarios 0
    # split over calls (each under the lock < 10 min), then the summary of every row
    python benchmarks/bench_generation_sample.py --seeds 5 --first-seed 5 --out rows.jsonl
    python benchmarks/bench_generation_sample.py --summarise rows.jsonl
    python benchmarks/bench_generation_sample.py --seeds 4 --clients 40  # a quick look

It writes only temporary stores and asserts nothing. The fast test is
``tests/reports/test_generation_sample_truth.py``.
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_validate import simulate_trace  # noqa: E402

__all__ = ["SCENARIOS", "f12_distances", "simulate_period", "run", "wilson", "main"]

#: (name, simulate_trace keywords, what F12 should say)
SCENARIOS = (
    ("null: identical Poisson clients", {"heterogeneous": False, "burst_sd": 0.0, "diurnal": 0.0},
     "no preference (naive's one Poisson process is the truth)"),
    ("positive: heterogeneous bursty clients", {"diurnal": 0.0}, "holds"),
    ("positive: heterogeneous, burst sd up to 2", {"diurnal": 0.0, "burst_sd": 1.0}, "holds"),
)
PERIOD_S = 3 * 3600.0


def simulate_period(seed: int, *, clients: int = 60, rate_scale: float = 10.0, **kw) -> pl.DataFrame:
    """One 3-h period of ``simulate_trace`` (``timestamp, client_id, input_tokens, output_tokens``)
    with ``clients`` clients at rates log-uniform in [0.001, 0.02] x ``rate_scale`` req/s; ``kw``:
    a scenario's keywords."""
    return simulate_trace(seed, days=PERIOD_S / 86400.0, n_initial=clients,
                          rate_range=(0.001 * rate_scale, 0.02 * rate_scale), **kw)


def f12_distances(store, *, seed: int, max_requests: int | None) -> dict:
    """The F12 rule on ``store``'s whole span: servelab's and naive's joint (3-s rate, mean input)
    energy distances, ``holds`` (servelab's below naive's) and the client sample, if any."""
    from servelab.reports.areas.generation import fidelity_experiment

    span = store.query("SELECT min(timestamp) AS a, max(timestamp) AS b FROM requests").row(0)
    res = fidelity_experiment(store, (math.floor(span[0]), math.floor(span[1]) + 1.0), seed=seed,
                              max_requests=max_requests)
    t = res["table"].filter(pl.col("metric") == "joint_input_energy")
    ours, naive = float(t["servelab"][0]), float(t["naive"][0])
    return {"servelab": ours, "naive": naive, "holds": ours < naive, "sample": dict(res["bounded_sample"])}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion ``k / n``."""
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def run(seeds, *, fraction: float = 0.5, clients: int = 60, rate_scale: float = 10.0,
        scenarios=SCENARIOS, out: Path | None = None) -> pl.DataFrame:
    """One row per (scenario, seed): the distances and verdicts unsampled, reseeded and sampled
    (each also appended to ``out`` as a JSON line as soon as it is measured, when given)."""
    import json

    from servelab.analysis.store import write_store

    rows = []
    for name, kw, _ in scenarios:
        for seed in seeds:
            frame = simulate_period(seed, clients=clients, rate_scale=rate_scale, **kw)
            with tempfile.TemporaryDirectory() as tmp:
                store = write_store(frame, Path(tmp) / "sim", source="bench_generation_sample", fmt="simulated")
                t0 = time.process_time()
                whole = f12_distances(store, seed=seed, max_requests=None)
                again = f12_distances(store, seed=seed + 1000, max_requests=None)
                bound = max(1, int(fraction * frame.height))
                part = f12_distances(store, seed=seed, max_requests=bound)
                cpu = time.process_time() - t0
            s = part["sample"]
            rows.append({"scenario": name, "seed": seed, "requests": frame.height,
                         "sampled_requests": s.get("requests", frame.height),
                         "sampled_clients": s.get("clients", clients),
                         "d_servelab": whole["servelab"], "d_naive": whole["naive"], "holds": whole["holds"],
                         "holds_reseeded": again["holds"], "d_servelab_sampled": part["servelab"],
                         "d_naive_sampled": part["naive"], "holds_sampled": part["holds"], "cpu_s": cpu,
                         "fraction": fraction, "clients": clients, "rate_scale": rate_scale})
            print(json.dumps(rows[-1]), flush=True)
            if out is not None:
                with open(out, "a") as f:
                    f.write(json.dumps(rows[-1]) + "\n")
    return pl.DataFrame(rows)


def summary(table: pl.DataFrame) -> pl.DataFrame:
    """Per scenario: F12 "holds" counts and 95% intervals unsampled, reseeded and sampled, and the
    agreement of the reseeded and the sampled verdicts with the unsampled one."""
    out = []
    for name in table["scenario"].unique(maintain_order=True):
        t = table.filter(pl.col("scenario") == name)
        n = t.height
        row = {"scenario": name, "n": n, "median_requests": float(t["requests"].median()),
               "median_sampled_share": float((t["sampled_requests"] / t["requests"]).median())}
        for col in ("holds", "holds_reseeded", "holds_sampled"):
            k = int(t[col].sum())
            lo, hi = wilson(k, n)
            row[col] = f"{k}/{n} [{lo:.2f}, {hi:.2f}]"
        for col in ("holds_reseeded", "holds_sampled"):
            k = int((t[col] == t["holds"]).sum())
            lo, hi = wilson(k, n)
            row[f"agree_{col.split('_')[1]}"] = f"{k}/{n} [{lo:.2f}, {hi:.2f}]"
        row["median_d_servelab/naive"] = f"{t['d_servelab'].median():.3f}/{t['d_naive'].median():.3f}"
        row["sampled"] = f"{t['d_servelab_sampled'].median():.3f}/{t['d_naive_sampled'].median():.3f}"
        row["cpu_s_per_seed"] = float(t["cpu_s"].mean())
        out.append(row)
    return pl.DataFrame(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds per scenario, FIRST .. FIRST+N-1 (default 20)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="append each (scenario, seed) row to this JSON-lines file")
    parser.add_argument("--summarise", default=None, metavar="JSONL",
                        help="only print the summary of the rows in this file (runs split over several calls)")
    parser.add_argument("--fraction", type=float, default=0.5,
                        help="max_requests as a share of the period's requests (default 0.5, as at 10 M rows)")
    parser.add_argument("--clients", type=int, default=60)
    parser.add_argument("--rate-scale", type=float, default=10.0)
    parser.add_argument("--scenarios", default=None, help="indices into SCENARIOS, comma-separated (default all)")
    opts = parser.parse_args(argv)
    if opts.summarise:
        table = pl.read_ndjson(opts.summarise)
        with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=250, fmt_str_lengths=60):
            print(summary(table))
        return 0
    chosen = SCENARIOS if opts.scenarios is None else [SCENARIOS[int(i)] for i in opts.scenarios.split(",")]
    started = time.perf_counter()
    table = run(range(opts.first_seed, opts.first_seed + opts.seeds), fraction=opts.fraction, clients=opts.clients,
                rate_scale=opts.rate_scale, scenarios=chosen, out=Path(opts.out) if opts.out else None)
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=250, fmt_str_lengths=60):
        print(table.drop("scenario").with_columns(pl.col(pl.Float64).round(4)))
        print(summary(table))
    print(f"{opts.seeds} seeds x {len(chosen)} scenarios, fraction {opts.fraction:g}, {opts.clients} clients, "
          f"rate scale {opts.rate_scale:g}: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
