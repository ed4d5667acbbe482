r"""What spreading the PMF bins buys and costs (``fitting.pool_data.spread_bins``, ``--spread-points``).

For each ``--points`` value, in one run on the same store: ``fit_pool`` (wall time, data rows of the
pool, conversation-PMF rows), then a workload generated over the store's own span (rate ``pool``,
seed 1) and the two-sample KS distance of its input and output lengths against the store's (in
sample: how far the pool's PMFs are from the lengths they were fitted on), and the time to
generate. ``--validate`` also runs ``validate(split=0.5, draws=1)`` per value and prints both
candidates' length KS against the later half.

Measured 2026-12-04 (the 1 M-row, 1-day synthetic store ``/work/bench_data/shrink_rows1000000_clients2000_days1``,
3c09dc6)::

    points  fit_s   data_rows  conv_rows  gen_s   in-sample input_ks  output_ks
         1    2.4     528,744    256,592    1.1   0.0040              0.0046
         4    2.5     553,251    262,791    1.2   0.0015              0.0016

(The 100 M-row fit: 05d5dc3 290 s / 6,953 MB / 23.25 M data rows, 3c09dc6 313 s / 6,409 MB /
25.20 M rows, fresh processes back to back, ``ru_maxrss``.)

Usage: ``python benchmarks/bench_spread.py [--store DIR] [--points 1,4] [--validate]``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import polars as pl
from scipy.stats import ks_2samp

from servelab.analysis.store import open_store
from servelab.fitting.pool_fit import fit_pool
from servelab.fitting.pool_settings import PoolFitSettings
from servelab.generator.generate import generate

__all__ = ["main"]

STORE = Path("/work/bench_data/shrink_rows1000000_clients2000_days1")


def _rows(pool, table: str) -> int:
    try:
        return pool.lazy(table).select(pl.len()).collect().item()
    except KeyError:
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=STORE)
    parser.add_argument("--points", default="1,4")
    parser.add_argument("--validate", action="store_true")
    args = parser.parse_args(argv)
    store = open_store(args.store)
    real = pl.read_parquet(store.requests_path, columns=["timestamp", "input_tokens", "output_tokens"])
    span = float(np.floor(real["timestamp"].max() - real["timestamp"].min()))
    print(f"store {args.store}: {real.height:,} requests over {span / 86400:.2f} days")
    print("points  fit_s   data_rows  conv_rows  gen_s   in-sample input_ks  output_ks")
    for points in [int(p) for p in args.points.split(",")]:
        settings = PoolFitSettings(spread_points=points)
        t0 = time.perf_counter()
        pool = fit_pool(store, settings=settings)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        gen = generate(pool, "pool", span, seed=1)
        gen_s = time.perf_counter() - t0
        ks = [ks_2samp(real[f].drop_nulls().to_numpy(), gen[f].drop_nulls().to_numpy()).statistic
              for f in ("input_tokens", "output_tokens")]
        print(f"{points:>6}  {fit_s:5.1f}  {_rows(pool, 'data'):>10,}  {_rows(pool, 'conversation_pmfs'):>9,}  "
              f"{gen_s:5.1f}   {ks[0]:.4f}              {ks[1]:.4f}")
        if args.validate:
            from servelab.generator.validation import validate

            res = validate(store, split=0.5, seed=0, draws=1, settings=settings)
            table = res.draws_table().filter(pl.col("metric").is_in(["input_ks", "output_ks"]))
            for metric, s, n in table.select("metric", "servelab_mean", "naive_mean").iter_rows():
                print(f"        validate {metric}: servelab {s:.4f}, naive {n:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
