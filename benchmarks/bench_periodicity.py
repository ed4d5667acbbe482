"""Time the periodicity area on a big synthetic store: calendar profiles, the periodicity measure,
burst counts, failure rates, load forecasting, and the whole ``periodicity`` step of
``servelab arrivals``.

The store comes from ``benchmarks/synthetic_trace.py``'s :func:`make_synthetic_store` (seeded),
spanning ``--days`` days (7 by default, so that the daily period and the calendar are exercised),
and is cached under ``benchmarks/out/`` (git-ignored). Target (issue #3): the whole
``servelab arrivals`` run in under 30 s on this 2-core machine; this script times this area's
share of it (``--full`` also times the full command in a child process). The machine is shared:
the load average is printed next to the numbers. It measures; it asserts nothing.

Command line::

    python benchmarks/bench_periodicity.py                # 10 M rows, 7 days
    python benchmarks/bench_periodicity.py --rows 1000000 --days 3
    python benchmarks/bench_periodicity.py --full         # also `servelab arrivals STORE`
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
sys.path.insert(0, str(HERE))

from synthetic_trace import make_synthetic_store

__all__ = ["main"]


def _load() -> str:
    return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _timed(label: str, fn):
    start = time.perf_counter()
    out = fn()
    elapsed = time.perf_counter() - start
    print(f"{label:<58s} {elapsed:8.2f} s   ({_load()})", flush=True)
    return out, elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--full", action="store_true", help="also time `servelab arrivals STORE` end to end")
    args = parser.parse_args(argv)

    from servelab.analysis.bursts import burst_counts
    from servelab.analysis.failures import (
        failure_rate_over_time,
        failure_rate_spread,
        failure_rates,
    )
    from servelab.analysis.periodicity import (
        daily_counts,
        day_of_week_profile,
        hour_of_day_profile,
        hourly_counts,
        periodicity,
        weekday_weekend,
    )
    from servelab.analysis.store import open_store
    from servelab.fitting.forecasting import forecast_load
    from servelab.reports.findings.periodicity import measure_periodicity

    path = OUT / f"synthetic_{args.rows}_{args.days:g}d_{args.seed}"
    print(f"# bench_periodicity: {args.rows:,} rows, {args.days:g} days, {os.cpu_count()} cores; {_load()}")
    if (path / "manifest.json").is_file():
        store = open_store(path)
        print(f"using cached store {path}")
    else:
        store, _ = _timed("make_synthetic_store (not part of the target)", lambda: make_synthetic_store(
            path, n_rows=args.rows, n_clients=args.clients, days=args.days, seed=args.seed))

    total = 0.0
    hourly, t = _timed("hourly counts by service (SQL)", lambda: hourly_counts(store, by="service"))
    total += t
    _, t = _timed("profiles: hour of day, day of week, weekday/weekend", lambda: (
        hour_of_day_profile(hourly), day_of_week_profile(daily_counts(hourly)), weekday_weekend(daily_counts(hourly))))
    total += t
    _, t = _timed("periodicity by service (ACF + MSTL, incl. noise floor)",
                  lambda: periodicity(store, by="service", counts=hourly))
    total += t
    _, t = _timed("bursts: 5 and 10 min, by service", lambda: burst_counts(store, by="service"))
    total += t
    _, t = _timed("failures: rates by model x service, hourly rates, spread", lambda: (
        failure_rates(store, by=("model", "service")),
        failure_rate_spread(failure_rate_over_time(store, by=("model", "service")))))
    total += t
    for window_s in (60.0, 600.0):
        for target in ("requests", "mean_tokens"):
            _, t = _timed(f"forecast {target} at {window_s:g} s bins (SQL + HGB)",
                          lambda window_s=window_s, target=target: forecast_load(store, window_s=window_s, target=target))
            total += t
    print(f"{'sum of the parts above':<58s} {total:8.2f} s")
    _timed("measure_periodicity (the arrivals step, all of the above)", lambda: measure_periodicity(store))
    if args.full:
        cmd = [sys.executable, "-m", "servelab", "arrivals", str(path), "-o", str(OUT / "arrivals_tables")]
        start = time.perf_counter()
        run = subprocess.run(cmd, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - start
        steps = [line for line in run.stdout.splitlines() if line.startswith("### step")]
        print(f"{'servelab arrivals STORE (child process, target < 30 s)':<58s} {elapsed:8.2f} s   "
              f"rc={run.returncode} ({_load()})")
        for line in steps:
            print("   ", line)
        if run.returncode:
            print(run.stderr[-2000:])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
