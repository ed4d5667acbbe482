"""Time the client decomposition on a big synthetic store (issue #5 target: per-client
per-window statistics on 10 M rows, 2,000 clients, 1 day in under 15 s).

The store comes from ``benchmarks/synthetic_trace.py`` (made once under ``benchmarks/out/`` and
reused). Each stage is timed on its own; the machine is shared, so the load average is printed
next to the numbers. It measures and asserts nothing.

Command line::

    python benchmarks/bench_clients.py                 # 10 M rows, 2,000 clients, 1 day
    python benchmarks/bench_clients.py --rows 1000000
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from servelab.analysis.clients import (
    aggregate_window_stats,
    client_ranking,
    client_window_stats,
    decompose_clients,
)
from servelab.analysis.store import open_store
from synthetic_trace import make_synthetic_store

__all__ = ["main"]


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--window", type=float, default=600.0, help="window in seconds (default 600)")
    parser.add_argument("--store", type=Path, default=None, help="use (or create) this store")
    args = parser.parse_args(argv)
    path = args.store or HERE / "out" / f"clients_{args.rows}_{args.clients}"
    if (path / "manifest.json").is_file():
        store = open_store(path)
    else:
        t = time.perf_counter()
        store = make_synthetic_store(path, n_rows=args.rows, n_clients=args.clients, days=1.0, seed=0)
        print(f"built store {path} in {time.perf_counter() - t:.1f} s")
    print(f"store: {store.n_requests:,} rows; load average before: {_load()}")
    stages = [
        ("client_ranking", lambda: client_ranking(store)),
        ("client_window_stats (per client per window: rate, CV, lengths)", lambda: client_window_stats(store, window_s=args.window)),
        ("aggregate_window_stats", lambda: aggregate_window_stats(store, window_s=args.window)),
        ("decompose_clients (all of it)", lambda: decompose_clients(store, window_s=args.window)),
    ]
    for name, run in stages:
        t, cpu = time.perf_counter(), time.process_time()
        out = run()
        elapsed, cpu = time.perf_counter() - t, time.process_time() - cpu
        shape = getattr(out, "shape", None) or (out.window_stats.shape if hasattr(out, "window_stats") else "")
        print(f"{name}: {elapsed:.2f} s wall, {cpu:.2f} s CPU (all threads; / {os.cpu_count()} cores = "
              f"{cpu / (os.cpu_count() or 1):.2f} s on an idle machine)  {shape}  (load {_load()})")
    print("target: client_window_stats < 15 s on 10 M rows / 2,000 clients / 1 day")
    return 0


if __name__ == "__main__":
    sys.exit(main())
