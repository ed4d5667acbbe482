r"""Calibration of the new clients' arrival-trend test (``fitting.pool_churn.arrival_trend``).

Populations of known turnover are simulated as pool arrivals tables with
:func:`bench_validate.simulate_churn_arrivals` (7-day spans, Poisson clients of log-uniform rates,
a daily cycle): constant arrival rates (nulls: the test's level) and log-linear ones of known
slope (power, and the kept slopes' median), plus a constant rate with a dip on the window's last
day (a weekend: the curvature guard's and the day-out rule's job). Per scenario it prints how often the trend was tested,
significant by the Cox-Lewis statistic and kept, and the median kept slope (per day).

Measured 2026-12-04, 40 seeds; "kept" with the Cox-Lewis test and the curvature guard (973c41f)
and with the day-out rule too (``DAY_OUT_P`` 0.05, the commit after; the 973c41f column of the
weekend row by this script with that rule switched off; before 986d13a's churn graces)::

    scenario                             tested  significant  kept (973c41f)  kept   kept slope median
    null 30+10/d life 3 d                40      1            1               0
    null 100+20/d life 5 d sparse        40      0            0               0
    null 100+2/d life 7 d                0       0            0               0      (under 20 dense arrivals)
    null bursty 30+10/d                  40      0            0               0
    slope -0.3/d 30+10/d                 40      19           19              10     -0.497
    slope +0.2/d 30+10/d                 40      7            7               0
    slope -0.3/d sparse                  39      11           11              4      -0.560
    weekend dip 30+20/d (day 5 at 30%)   40      7            7               1      -0.335

After 986d13a (graces scaled by the population's burstiness, fewer clients flagged arrived),
the same run: nulls kept 0 / 0 / 0 / 0; slope -0.3/day 19 significant, 10 kept (median -0.479);
+0.2/day 10 significant, 0 kept; sparse -0.3/day 11, 4 (-0.560); weekend dip 6 significant, 1 kept.

Usage: ``python benchmarks/bench_arrival_trend.py [--seeds 40]``.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_validate import DAY, simulate_churn_arrivals  # noqa: E402

from servelab.fitting.pool_churn import ARRIVAL_TREND_P, churn_model, churn_table  # noqa: E402

__all__ = ["SCENARIOS", "main"]

#: name -> simulate_churn_arrivals keywords (7 days)
SCENARIOS = {
    "null 30+10/d life 3 d": {"n_initial": 30, "new_per_day": 10.0, "mean_life_days": 3.0},
    "null 100+20/d life 5 d sparse": {"n_initial": 100, "new_per_day": 20.0, "mean_life_days": 5.0,
                                      "rate_range": (1 / (8 * DAY), 1 / 3600)},
    "null 100+2/d life 7 d": {"n_initial": 100, "new_per_day": 2.0, "mean_life_days": 7.0},
    "null bursty 30+10/d": {"n_initial": 30, "new_per_day": 10.0, "mean_life_days": 3.0, "burst_sd": 1.0},
    "slope -0.3/d 30+10/d": {"n_initial": 30, "new_per_day": 10.0, "mean_life_days": 3.0, "arrival_slope_per_day": -0.3},
    "slope +0.2/d 30+10/d": {"n_initial": 30, "new_per_day": 10.0, "mean_life_days": 3.0, "arrival_slope_per_day": 0.2},
    "slope -0.3/d sparse": {"n_initial": 100, "new_per_day": 20.0, "mean_life_days": 5.0,
                            "rate_range": (1 / (8 * DAY), 1 / 3600), "arrival_slope_per_day": -0.3},
}


def _weekend(arrivals: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Clients first seen on day 5 (the last whole day of the test window) kept with probability 0.3."""
    first = arrivals.group_by("client_id").agg(pl.col("window_start").min().alias("f")).sort("client_id")
    rng = np.random.default_rng(10_000 + seed)
    drop = first.filter((pl.col("f") >= 5 * DAY) & (pl.col("f") < 6 * DAY))
    gone = drop.filter(pl.Series(rng.random(drop.height) >= 0.3))["client_id"]
    return arrivals.filter(~pl.col("client_id").is_in(gone.to_list()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=40)
    args = parser.parse_args(argv)
    runs = [(name, kw, False) for name, kw in SCENARIOS.items()]
    runs.append(("weekend dip 30+20/d (day 5 at 30%)", {"n_initial": 30, "new_per_day": 20.0, "mean_life_days": 3.0}, True))
    print(f"{'scenario':36s} tested  significant  kept   kept slope median")
    for name, kw, dip in runs:  # a loop over scenarios, then seeds
        tested = significant = kept = 0
        slopes = []
        for seed in range(args.seeds):
            arrivals, _, span = simulate_churn_arrivals(seed, days=7.0, **kw)
            if dip:
                arrivals = _weekend(arrivals, seed)
            tr = churn_model(churn_table(arrivals, span), span, arrivals=arrivals).arrival_trend
            tested += math.isfinite(tr.p_value)
            significant += bool(tr.p_value < ARRIVAL_TREND_P)
            kept += tr.kept
            if tr.kept:
                slopes.append(tr.slope_per_s * DAY)
        med = f"{np.median(slopes):+.3f}" if slopes else ""
        print(f"{name:36s} {tested:<7d} {significant:<12d} {kept:<6d} {med}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
