r"""Who carries the volume past the split: survivors vs new clients, on populations of known churn (issue 17).

``validate`` scores the later part's totals and shapes; this script checks the composition under
them. A per-client trace is simulated with :func:`bench_validate.simulate_trace` (Poisson clients of
log-uniform rates, a daily cycle, per-client log-normal lengths, exponential lives) in **equilibrium**
(``n_initial = new_per_day x mean_life_days``, so the later half holds as many clients as the first),
fitted on its first half (``fit_pool`` defaults), extended over the second
(:func:`~servelab.generator.extend.extend_pool`) and generated (rate ``pool``). Per seed it prints the
real and generated request counts of the later half, the share of them sent by clients first seen
after the split ("new"), the volume of the clients seen before it (generated / real) and the requests
per new client, and the CV of the survivors' requests per 30-min window (real and generated). The truth is the simulated later half; nothing here is fitted to it.

Scenarios (``--scenario``): ``sparse`` (rates 1 per 8 days to 1 an hour, mean life 3 days, 100 new
a day: most clients send a handful of requests, as on the issue's 23-day trace) and ``dense`` (rates
1 per 2 h to 1 per 50 s, mean life 5 days, 5 new a day).

Measured 2026-12-04 (seeds 0-7, 14 days split at 7; medians over seeds; real | main 8bfe653 | after the
censored-cycle and replayed-lives rules of :mod:`servelab.generator.extend`, 13e560c):

- sparse: new clients' share of the later requests 0.666 | 0.793 | 0.683; survivors' volume (generated / real)
  0.60 | 0.91; count error -0.030 | -0.034; requests per new client 11.7 | 18.7 | 14.5;
- dense: new share 0.462 | 0.394 | 0.424; survivors 1.015 | 1.015; requests per new client 890 | 790 | 828.
- The survivors' CV per 30-min window (real | last-day rows, 13e560c | shrunk toward time-of-day means, 67a55f8):
  sparse 0.885 | 1.071 | 1.083, dense 0.689 | 0.643 | 0.627 (the populations' survivors live 3-5 days: few days
  to average over).

New clients' clumping (``*_new_close_share``: the share of their requests within 10 minutes of their
client's previous one; ``*_new_window_cv``: their requests per 30-min window), 2026-12-04 evening,
seeds 0-7, medians, real | c61a4ec (templates' counts replayed as intensities) | templates' rows
shrunk over their cycles, first request set apart (:mod:`servelab.generator.extend`, "Templates'
rows"): sparse close share 0.101 | 0.441 | 0.128, window CV 0.633 | 0.676 | 0.651, new share 0.666 |
0.685 | 0.673, survivors' volume 0.911 | 0.954, new clients 530 | 428 | 482, per new client 11.7 |
14.4 | 12.3, count error -0.034 | -0.030.

Usage: ``python benchmarks/bench_churn_volume.py [--scenario sparse|dense] [--seeds 0-7] [--days 14]``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_validate import DAY, simulate_trace  # noqa: E402

from servelab.analysis.store import write_store  # noqa: E402
from servelab.fitting.pool_fit import fit_pool  # noqa: E402
from servelab.generator.extend import extend_pool  # noqa: E402
from servelab.generator.generate import generate  # noqa: E402

__all__ = ["SCENARIOS", "composition", "main"]

#: window of the survivors' burstiness (CV of their requests per window)
CV_WINDOW_S = 1800.0
#: a request "close" to its client's previous one (the pool window)
CLOSE_S = 600.0
#: name -> simulate_trace keywords (equilibrium: n_initial = new_per_day x mean life)
SCENARIOS = {
    "sparse": {"new_per_day": 100.0, "mean_life_days": 3.0, "n_initial": 300, "rate_range": (1 / (8 * DAY), 1 / 3600)},
    "dense": {"new_per_day": 5.0, "mean_life_days": 5.0, "n_initial": 25, "rate_range": (1 / 7200, 1 / 50)},
}


def composition(frame: pl.DataFrame, days: float, seed: int) -> dict:
    """Fit on the first half of ``frame``, extend and generate the second; the counts (module docstring)."""
    split = days * DAY / 2
    before = frame.filter(pl.col("timestamp") < split)
    later = frame.filter(pl.col("timestamp") >= split)
    seen = before["client_id"].unique().implode()
    with tempfile.TemporaryDirectory() as tmp:
        store = write_store(before, Path(tmp) / "before", source="bench_churn_volume", fmt="simulated")
        pool = fit_pool(store)
    ext, info = extend_pool(pool, days * DAY, seed=seed)
    gen = generate(ext, "pool", days * DAY - float(pool.span[1]), start=float(pool.span[1]), seed=seed,
                   conversations=False, max_requests=None)
    out = {"seed": seed}
    for name, f in (("real", later), ("gen", gen)):
        old = f.filter(pl.col("client_id").is_in(seen))
        new = f.filter(~pl.col("client_id").is_in(seen))
        out[f"{name}_requests"] = f.height
        out[f"{name}_new_share"] = new.height / max(f.height, 1)
        out[f"{name}_old_requests"] = old.height
        out[f"{name}_new_clients"] = new["client_id"].n_unique()
        out[f"{name}_per_new_client"] = new.height / max(new["client_id"].n_unique(), 1)
        # burstiness of the survivors' traffic: CV of their requests per 30-min window
        t = old["timestamp"].to_numpy() - (split if name == "real" else 0.0)
        counts = np.bincount(np.clip((t // CV_WINDOW_S).astype(np.int64), 0, None),
                             minlength=int(np.ceil(split / CV_WINDOW_S)))
        out[f"{name}_old_window_cv"] = float(counts.std() / counts.mean()) if counts.mean() > 0 else float("nan")
        # clumping of the new clients' requests: the share that follow their client's previous
        # request within one pool window (a copy that redraws its template's counts as intensities
        # adds their Poisson noise again: clumps)
        gaps = new.sort("client_id", "timestamp").select(pl.col("timestamp").diff().over("client_id"))["timestamp"]
        out[f"{name}_new_close_share"] = float((gaps < CLOSE_S).sum() / max(new.height, 1))
        t = new["timestamp"].to_numpy() - (split if name == "real" else 0.0)
        counts = np.bincount(np.clip((t // CV_WINDOW_S).astype(np.int64), 0, None),
                             minlength=int(np.ceil(split / CV_WINDOW_S)))
        out[f"{name}_new_window_cv"] = float(counts.std() / counts.mean()) if counts.mean() > 0 else float("nan")
    out["old_volume_ratio"] = out["gen_old_requests"] / max(out["real_old_requests"], 1)
    out["count_error"] = out["gen_requests"] / max(out["real_requests"], 1) - 1
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="sparse", choices=sorted(SCENARIOS))
    parser.add_argument("--seeds", default="0-7", help="a range a-b")
    parser.add_argument("--days", type=float, default=14.0)
    args = parser.parse_args(argv)
    a, b = (int(x) for x in args.seeds.split("-"))
    rows = []
    for seed in range(a, b + 1):
        frame = simulate_trace(seed, days=args.days, **SCENARIOS[args.scenario])
        rows.append(composition(frame, args.days, seed))
    table = pl.DataFrame(rows)
    cols = ["seed", "real_requests", "gen_requests", "count_error", "real_new_share", "gen_new_share",
            "old_volume_ratio", "real_old_window_cv", "gen_old_window_cv",
            "real_new_close_share", "gen_new_close_share", "real_new_window_cv", "gen_new_window_cv", "real_new_clients", "gen_new_clients", "real_per_new_client", "gen_per_new_client"]
    with pl.Config(tbl_rows=-1, float_precision=3, tbl_width_chars=200, tbl_cols=-1):
        print(f"scenario {args.scenario}: {SCENARIOS[args.scenario]}")
        print(table.select(cols))
        print(table.select(cols[1:]).median())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
