"""Speed of the arrival analyses against issue #3's targets, on a synthetic store.

Targets (10 M rows, 2,000 clients, this 2-core machine):

1. all windowed statistics at 5-minute windows per client (rate, CV, gap moments, idle windows
   filled) in under 10 s;
2. fitting all four arrival families (exponential, gamma, weibull, lognormal; MLE, loc = 0, with
   log-likelihood, AIC/BIC and KS D) to 10^6 gaps in under 5 s;
3. the whole ``servelab arrivals`` run in under 30 s (measured as a subprocess, default options,
   and again with ``--by client``).

The machine is shared, so the load average is printed next to every number, with the CPU
seconds used (less sensitive to the load than wall time). The store comes from
``benchmarks/synthetic_trace.py``'s :func:`make_synthetic_store` (seeded), or an existing one.

Command line::

    python benchmarks/bench_arrivals.py [--rows 10000000] [--store PATH] [--keep]
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from servelab.analysis import open_store
from servelab.analysis.arrivals import gap_array, shift_summary, window_stats
from servelab.fitting.compare import compare_families

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_trace import make_synthetic_store  # noqa: E402


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def _cpu() -> float:
    """CPU seconds (user + system) of this process and its finished children: less load-sensitive
    than wall time on a shared machine (with 2 cores, an idle machine's wall time is at least
    CPU / 2)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _timed(label: str, target: float, fn):
    load_before = _load()
    start, cpu0 = time.perf_counter(), _cpu()
    out = fn()
    seconds, cpu = time.perf_counter() - start, _cpu() - cpu0
    verdict = "MET" if seconds < target else "MISSED"
    print(f"{label}: {seconds:.2f} s wall, {cpu:.2f} s CPU (target < {target:g} s: {verdict}; "
          f"{load_before} before, {_load()} after)", flush=True)
    return out, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--store", type=Path, default=None, help="use (or create) the store here")
    parser.add_argument("--keep", action="store_true", help="keep a store created in a temporary folder")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    tmp = None
    path = args.store
    if path is None:
        tmp = Path(tempfile.mkdtemp(prefix="bench_arrivals_"))
        path = tmp / "store"
    if not (path / "manifest.json").is_file():
        _timed(f"make_synthetic_store({args.rows:,} rows, {args.clients} clients)", float("inf"),
               lambda: make_synthetic_store(path, n_rows=args.rows, n_clients=args.clients, seed=args.seed))
    store = open_store(path)
    print(f"store {path}: {store.n_requests:,} requests, columns {', '.join(store.columns)}")

    def windows():
        w = window_stats(store, window_s="5m", by="client")
        return w, shift_summary(w, by="client_id")

    (w, s), _ = _timed("1. window_stats(5m, by client) + shift_summary", 10.0, windows)
    print(f"   {w.height:,} (client, window) rows, {int((w['n_requests'] == 0).sum()):,} idle; "
          f"{s.height} clients summarised")

    gaps = gap_array(store)
    rng = np.random.default_rng(args.seed)
    sample = gaps[np.sort(rng.choice(gaps.size, size=min(1_000_000, gaps.size), replace=False))]
    comp, _ = _timed(f"2. compare_families(4 families, {sample.size:,} gaps, ties auto, no p-value)", 5.0,
                     lambda: compare_families(sample, max_n=None, seed=args.seed))
    for r in comp.results:
        print(f"   {r.family:12s} {dict(r.params)} D={r.ks_distance:.4f} converged={r.converged}")
    print(f"   {comp.verdict}")

    exe = shutil.which("servelab") or str(Path(sys.executable).with_name("servelab"))
    with tempfile.TemporaryDirectory() as out:
        for extra in ([], ["--by", "client"]):
            cmd = [exe, "arrivals", str(path), "-o", out, *extra]
            label = "3. " + " ".join(["servelab arrivals STORE -o OUT", *extra])
            proc, _ = _timed(label, 30.0, lambda cmd=cmd: subprocess.run(cmd, capture_output=True, text=True))
            if proc.returncode != 0:
                print(proc.stderr[-2000:])
                return 1
            steps = [line for line in proc.stdout.splitlines() if line.startswith("### step")]
            print("   " + "; ".join(steps))
    if tmp is not None and not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
