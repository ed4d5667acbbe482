"""Speed of the request-data analyses on a big synthetic store (issue #4 targets).

Three measurements:

1. every length statistic of :mod:`servelab.analysis.lengths` (failure counts, quantiles, log-binned
   PMFs of input and output, io bins, Pearson/Spearman/OLS, period shifts, hourly means) on the
   store -- target under 10 s at 10 M rows;
2. the LogNormal + Pareto mixture fit (``fit_family(x, "lognormal_pareto")``) on 10^6 input
   lengths drawn from the store -- target under 10 s;
3. the whole ``servelab lengths STORE`` command in a child process (imports included) -- target
   under 30 s.

The machine is shared: the load average (``os.getloadavg``) is printed after each measurement,
and the CPU seconds (all threads; children for the command) beside the wall time, since on an
oversubscribed machine wall time mostly measures the other tenants. The store comes from ``benchmarks/synthetic_trace.py`` (made once, cached under
``benchmarks/out/``). It measures and prints; it asserts nothing.

Command line::

    python benchmarks/bench_lengths.py                    # 10 M rows
    python benchmarks/bench_lengths.py --rows 1000000
    python benchmarks/bench_lengths.py --store /path/to/store
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"

__all__ = ["length_statistics", "main"]


def _load() -> str:
    return "load %.2f %.2f %.2f" % os.getloadavg()


def length_statistics(store) -> dict[str, float]:
    """Run every length statistic once; seconds per step."""
    from servelab.analysis import lengths as L

    steps = {
        "counts": lambda: L.length_counts(store),
        "quantiles": lambda: L.length_quantiles(store),
        "input_pmf_log": lambda: L.length_pmf(store, "input_tokens", log_bins=40),
        "output_pmf_log": lambda: L.length_pmf(store, "output_tokens", log_bins=40),
        "io_bins": lambda: L.io_bins(store),
        "io_correlation": lambda: L.io_correlation(store),
        "shifts+hourly": lambda: L.length_shifts(store),
    }
    out = {}
    for name, fn in steps.items():
        t = time.perf_counter()
        fn()
        out[name] = time.perf_counter() - t
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows of the synthetic store (default 1e7)")
    parser.add_argument("--store", type=Path, default=None, help="use this store instead of a synthetic one")
    parser.add_argument("--fit-n", type=int, default=1_000_000, help="lengths in the mixture fit (default 1e6)")
    parser.add_argument("--skip-cli", action="store_true", help="skip the whole-command measurement")
    args = parser.parse_args(argv)

    from servelab.analysis.lengths import length_sample
    from servelab.analysis.store import open_store
    from servelab.fitting import fit_family

    if args.store is not None:
        store = open_store(args.store)
    else:
        path = OUT / f"lengths_store_{args.rows}"
        if not (path / "manifest.json").is_file():
            sys.path.insert(0, str(HERE))
            from synthetic_trace import make_synthetic_store

            t = time.perf_counter()
            make_synthetic_store(path, n_rows=args.rows, days=3.0, seed=0, overwrite=True)
            print(f"made synthetic store {path} ({args.rows:,} rows) in {time.perf_counter() - t:.1f} s")
        store = open_store(path)
    print(f"store {store.path}: {store.n_requests:,} rows; {_load()}")

    t, c = time.perf_counter(), time.process_time()
    steps = length_statistics(store)
    total, cpu = time.perf_counter() - t, time.process_time() - c
    print(f"\n[1] all length statistics: {total:.2f} s wall, {cpu:.2f} s CPU over all threads "
          f"(target < 10 s); {_load()}")
    for name, sec in steps.items():
        print(f"    {name:<16} {sec:6.2f} s")

    t = time.perf_counter()
    x = length_sample(store, "input_tokens", max_n=args.fit_n, seed=0)
    t_sample = time.perf_counter() - t
    x = x[x > 0][: args.fit_n]
    t, c = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = fit_family(x, "lognormal_pareto")
    t_fit, c_fit = time.perf_counter() - t, time.process_time() - c
    params = ", ".join(f"{k}={v:.4g}" for k, v in r.params.items())
    print(f"\n[2] lognormal_pareto fit on {x.size:,} lengths: {t_fit:.2f} s wall, {c_fit:.2f} s CPU (target < 10 s; drawing the sample "
          f"took {t_sample:.2f} s); {params}; KS D {r.ks_distance:.4f}; converged {r.converged}; {_load()}")

    if not args.skip_cli:
        exe = Path(sys.executable).with_name("servelab")
        cmd = [str(exe), "lengths", str(store.path), "--rows", "2"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        t_cli = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        c_cli = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}: {proc.stderr[-500:]}"
        print(f"\n[3] `servelab lengths STORE`: {t_cli:.2f} s wall, {c_cli:.2f} s CPU (target < 30 s), {status}; {_load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
