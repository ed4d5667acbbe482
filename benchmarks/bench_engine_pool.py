"""Check: fit-pool on DuckDB and on Spark gives the same pool on a large store (issue 21, target
"identical pools ... on a 10 M-row synthetic store"), with the time of each.

The pools are compared table by table with the engine-equivalence tests' own comparison
(tests/analysis/test_engines.py ``_assert_same_pool``: keys and counts exactly, floats and fitted
parameters within 1e-9 relative), the source path left out (it is the same store). Exits non-zero when
they differ.

Recorded 2026-12-04 05:19-05:25 UTC (main 952f3ca, machine otherwise running the CI, niced +5),
/work/bench_data/store_rows10000000_clients2000_days14_seed0 (benchmarks/synthetic_trace.py --rows
10000000 --clients 2000 --days 14 --seed 0): DuckDB 52.3 s, Spark local[2] 268.8 s; arrivals 1,133,582
rows, data 5,808,493, data_fits 58,923, conversation_pmfs 719,811, coupling 3,116: the same pool.
The 1 M store (same construction): Spark local[2] 37.3 s, arrivals 283,732 rows: the same pool.

Usage: ``.venv/bin/python benchmarks/bench_engine_pool.py STORE [--spark-master local[2]]``
(needs ``servelab[spark]`` and Java).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "analysis"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("--spark-master", default="local[2]")
    args = parser.parse_args()
    from servelab.analysis.store import open_store
    from servelab.fitting.pool_fit import fit_pool
    from test_engines import _assert_same_pool, _pool_frames

    store = open_store(args.store)
    frames = {}
    for engine, options in (("duckdb", {}), ("spark", {"spark_master": args.spark_master})):
        t0 = time.perf_counter()
        pool = fit_pool(store, engine=engine, **options)
        pool_frames = _pool_frames(pool)
        source = pool_frames["provenance"]["source"]
        pool_frames["provenance"]["source"] = {k: v for k, v in source.items() if k != "path"}
        frames[engine] = pool_frames
        rows = {k: v.height for k, v in pool_frames.items() if hasattr(v, "height")}
        print(f"{engine:7s} {time.perf_counter() - t0:.1f} s  rows {rows}", flush=True)
    _assert_same_pool(args.store, frames["duckdb"], frames["spark"])
    print(f"same pool on duckdb and spark ({args.spark_master})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
