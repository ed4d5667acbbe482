"""The aggregation SQL on DuckDB vs Spark (local mode) on one store, per step (issue 21, first slice).

Steps (each the query of :mod:`servelab.analysis.aggregates` that ``fit_pool`` runs): client
counts; the jittered gaps table plus the per-(client, window) arrival cells; the binned value
counts of ``input_tokens``; the log statistics of ``input_tokens``. Each step runs ``--repeat``
times per engine (best time kept); Spark's session start is timed apart (paid once per process).
The output gives both times and the ratio Spark / DuckDB per step, and checks the two engines'
arrival cells agree (counts exactly).

Also times the DuckDB gaps step with the former DuckDB-only ``hash()`` uniform against the portable
``mix_sql`` uniform both engines share (the cost of engine-independent jitter on DuckDB).

Usage: ``.venv/bin/python benchmarks/bench_engines.py [--store DIR] [--master local[2]] [--repeat 2]``
(default store: the cached 1 M-row store under /work/bench_data). Spark local mode on this
2-core machine is a correctness path, not a speed-up: Spark only pays past one machine.
"""
from __future__ import annotations

import argparse
import time

import polars as pl

from servelab.analysis import aggregates as agg
from servelab.analysis.aggregates import (
    aggregate_source,
    arrival_cells,
    build_gaps,
    client_counts,
    field_sql,
    log_stats,
    value_counts,
)
from servelab.analysis.engines import spark_session
from servelab.analysis.store import open_store

DEFAULT_STORE = "/work/bench_data/store_rows1000000_clients2000_days14_seed0"
BINNING = {"exact_below": 64, "bin_ratio": 1.1, "spike_share": 0.05, "max_bin_mass": 0.1}


def _best(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _steps(src) -> dict:
    value, scale, _ = field_sql("input_tokens", "tokens", src.columns)
    return {
        "client_counts": lambda: client_counts(src),
        "gaps + arrival_cells": lambda: (build_gaps(src, window_s=600.0, step=1.0, seed=0), arrival_cells(src))[1],
        "value_counts (binned)": lambda: value_counts(src, value=value, data_window_s=21600.0, scale=scale,
                                                      binning=BINNING),
        "log_stats": lambda: log_stats(src, value=value, data_window_s=21600.0),
    }


def _run(store, index, engine: str, master: str | None, repeat: int) -> dict[str, tuple[float, object]]:
    kw = {"engine": engine, "spark_master": master} if engine == "spark" else {}
    with aggregate_source(store, index, residual=index.height, **kw) as src:
        return {name: _best(fn, repeat) for name, fn in _steps(src).items()}


def _hash_cost(store, index, repeat: int) -> tuple[float, float]:
    """DuckDB gaps + cells with the former ``hash()`` uniform vs the portable mix (seconds, best)."""
    old = "(CAST((hash({key}, {seed})) >> 11 AS DOUBLE) / 9007199254740992.0)"
    times = []
    for uniform in (lambda key, seed: old.format(key=key, seed=int(seed)), agg.uniform_sql):
        saved = agg.uniform_sql
        agg.uniform_sql = uniform
        try:
            with aggregate_source(store, index, residual=index.height) as src:
                times.append(_best(lambda: (build_gaps(src, window_s=600.0, step=1.0, seed=0),
                                            arrival_cells(src)), repeat)[0])
        finally:
            agg.uniform_sql = saved
    return times[0], times[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=DEFAULT_STORE)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    store = open_store(args.store)
    with aggregate_source(store) as src:
        ids = client_counts(src).drop_nulls("client_id").sort("client_id")
    index = pl.DataFrame({"client_id": ids["client_id"], "cidx": pl.int_range(ids.height, eager=True)})
    n_rows = int(ids["n"].sum())
    print(f"store {args.store}: {n_rows:,} rows, {ids.height:,} clients")

    t0 = time.perf_counter()
    spark_session(args.master)
    print(f"spark session start ({args.master}): {time.perf_counter() - t0:.1f} s (once per process)")
    duck = _run(store, index, "duckdb", None, args.repeat)
    spark = _run(store, index, "spark", args.master, args.repeat)
    print(f"{'step':<24}{'duckdb s':>10}{'spark s':>10}{'spark/duckdb':>14}")
    for name in duck:
        d, s = duck[name][0], spark[name][0]
        print(f"{name:<24}{d:>10.3f}{s:>10.3f}{s / d:>14.1f}")
    total_d, total_s = sum(v[0] for v in duck.values()), sum(v[0] for v in spark.values())
    print(f"{'total':<24}{total_d:>10.3f}{total_s:>10.3f}{total_s / total_d:>14.1f}")
    a = duck["gaps + arrival_cells"][1].select("cidx", "w", "n_req", "n_gaps")
    b = spark["gaps + arrival_cells"][1].select("cidx", "w", "n_req", "n_gaps")
    print(f"arrival cells: {a.height:,}; identical counts on both engines: {a.sort('cidx', 'w').equals(b.sort('cidx', 'w'))}")
    old, new = _hash_cost(store, index, args.repeat)
    print(f"duckdb gaps + cells: hash() uniform {old:.3f} s, portable mix_sql uniform {new:.3f} s "
          f"({100 * (new / old - 1):+.1f}%)")


if __name__ == "__main__":
    main()
