"""``validate`` on sparse churning populations of known truth, servelab against naive (issue 17).

Two kinds of simulated per-client trace, each written as a store and run through
:func:`~servelab.generator.validation.validate` (split at half the span, ``--draws`` draws, seed 0):

- ``equilibrium``: :func:`bench_validate.simulate_trace` with ``bench_churn_volume``'s scenario
  ``sparse`` (Poisson clients at rates 1 per 8 days to 1 an hour, log-normal window multipliers of
  per-client sd up to 1, per-client log-normal lengths, exponential lives of 3 days, 100 new a
  day, 14 days);
- ``growth``: :func:`simulate_growth`, shaped like the issue's real 23-day trace (about 2,300
  clients and 24,000 requests over 23 days, most clients seen a few times, most of the later
  half's clients new): 150 initial clients (lives of 10 days), new ones at 180 a day on average
  at a log-linear rate rising 4% a day, lives of 1 day, rates log-uniform from 1 per 15 days to
  1 per 50 minutes, window multipliers of sd up to 1, per-client lengths.

Per trace: the metrics servelab is closer on (by the draws' means), the paired verdicts
(servelab / tie / naive at 5%) and the window-rate CV (real, servelab, naive). Naive's one smooth
process is close to the truth of such a population's arrivals (hundreds of independent sparse
clients sum to a modulated Poisson process); what per-client generation must not do is add
burstiness of its own.

Measured 2026-12-04 evening (``--draws 5``; ``--kinds equilibrium --seeds 0-3`` and ``--kinds growth
--seeds 1-3``; "before" is 3ceb4fa, after the templates' rows and before the survivors' time-of-day
shrink of :mod:`servelab.generator.extend`, through ``servelab validate --split 0.5``, the same
validation; "after" 59b4dd2), verdicts naive / servelab, window_rate_cv real | servelab | naive:

    trace           before        after         window_rate_cv (after)       d40439b    closer (d40439b)
    equilibrium 0   3 / 0         0 / 0         0.532 | 0.564 | 0.562        1 / 0      1 of 11
    equilibrium 1   2 / 2         1 / 1         0.492 | 0.499 | 0.495        2 / 0      4
    equilibrium 2   3 / 1         0 / 3         0.490 | 0.499 | 0.485        0 / 2      4
    equilibrium 3   -             1 / 0         0.492 | 0.500 | 0.490        0 / 1      6
    growth 0        -             -             -                            0 / 4      9
    growth 1        4 / 0         1 / 1         0.510 | 0.531 | 0.501        0 / 2      6
    growth 2        3 / 0         2 / 1         0.512 | 0.538 | 0.516        1 / 0      7
    growth 3        2 / 0         3 / 0         0.499 | 0.531 | 0.498        1 / 0      6

The column d40439b (2026-12-04 21:10, ``--kinds equilibrium,growth --seeds 0-3``): after the
forecast's daily factors were shrunk toward a smooth day where they are noise; over the seven
traces measured at both, verdicts naive 8 -> 5, servelab 6 -> 5 (growth 0 is new: 0 / 4).
window_rate_cv at d40439b (real | servelab | naive): equilibrium 0.532 | 0.552 | 0.551, 0.492 |
0.488 | 0.483, 0.490 | 0.490 | 0.477, 0.492 | 0.490 | 0.482; growth 0.506 | 0.516 | 0.491, 0.510 |
0.524 | 0.498, 0.512 | 0.532 | 0.508, 0.499 | 0.523 | 0.492. What is left of servelab's excess on
the growing traces is the hour-of-day profile, not the bursts (``servelab validate``'s rates line,
growth 3: profile CV real 0.408, servelab 0.439, naive 0.416; dispersion about it 1.22, 1.18,
0.99). The simulated process's own profile CV is about 0.426 (the 0.6 cosine's 0.424 plus the hourly
bins' noise): these real later halves are flatter than their process by chance and servelab is
0.01-0.02 above it, so part of naive's window_rate_cv "win" is the reference's own noise. (Not the
replication of templates: growth 3 extends with 854 new clients from 782 templates.)

Every other verdict is a tie. The lengths: with new clients most of the later half, each drawing one client's length laws, the
generated mix is a random draw of a few hundred clients' laws where naive's is the mean of many:
servelab's input_ks is about sqrt(2) times naive's there (growth 1, at c4a4562: 0.043, sd 0.014, over
12 extensions and generations of seeds 0-11, /tmp script, against naive's 0.029 in ``validate``); that
is the price of per-client heterogeneity on an aggregate distance.

Usage: ``python benchmarks/bench_sparse_churn.py [--kinds equilibrium,growth] [--seeds 0-2]
[--draws 5] [--data /work/bench_data]``
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_churn_volume import SCENARIOS  # noqa: E402
from bench_validate import DAY, simulate_trace  # noqa: E402

from servelab.analysis.store import open_store, write_store  # noqa: E402
from servelab.generator.validation import validate  # noqa: E402

__all__ = ["simulate_growth", "main"]

def simulate_growth(seed: int, *, days: float = 23.0, n_initial: int = 150, new_per_day: float = 180.0,
                    slope_per_day: float = 0.04, mean_life_days: float = 1.0, initial_life_days: float = 10.0,
                    rate_range: tuple[float, float] = (1 / (15 * DAY), 1 / 3000), diurnal: float = 0.6,
                    burst_sd: float = 0.5, window_s: float = 600.0) -> pl.DataFrame:
    """Requests (``timestamp, client_id, input_tokens, output_tokens``) of a growing sparse population:
    :func:`bench_validate.simulate_trace` (heterogeneous clients) with new clients at a log-linear
    intensity ``exp(slope t)`` (``new_per_day`` a day on average over the span), lives of mean
    ``mean_life_days`` (the initial clients' ``initial_life_days``), rates log-uniform in
    ``rate_range``, window multipliers of per-client sd log-uniform in [0.1, 2 burst_sd]."""
    return simulate_trace(seed, days=days, n_initial=n_initial, new_per_day=new_per_day,
                          mean_life_days=mean_life_days, rate_range=rate_range, burst_sd=burst_sd, diurnal=diurnal,
                          window_s=window_s, arrival_slope_per_day=slope_per_day,
                          initial_life_days=initial_life_days, id_width=5)


def _store(data: Path, kind: str, seed: int):
    path = data / f"sparse_churn_{kind}_seed{seed}"
    if not (path / "manifest.json").is_file():
        frame = (simulate_trace(seed, days=14.0, **SCENARIOS["sparse"]) if kind == "equilibrium"
                 else simulate_growth(seed))
        write_store(frame, path, source=f"bench_sparse_churn {kind}", fmt="simulated", overwrite=True)
    return open_store(path)


def row(kind: str, seed: int, data: Path, draws: int) -> dict:
    store = _store(data, kind, seed)
    t = time.process_time()
    result = validate(store, split=0.5, seed=0, draws=draws)
    cpu = time.process_time() - t
    table = result.table()
    closer = [m for m, kind, ref, ours, naive in table.select("metric", "kind", "reference", "servelab", "naive").iter_rows()
              if (abs(ours - ref) < abs(naive - ref) if kind == "value" else ours < naive)]
    verdicts = result.draws_table()["verdict"].value_counts()
    v = dict(zip(verdicts["verdict"], verdicts["count"]))
    wrc = table.filter(pl.col("metric") == "window_rate_cv")
    return {"trace": f"{kind} {seed}", "closer": len(closer), "of": table.height,
            "verdict_naive": v.get("naive", 0), "verdict_servelab": v.get("servelab", 0), "tie": v.get("tie", 0),
            "wrc_real": wrc["reference"][0], "wrc_servelab": wrc["servelab"][0], "wrc_naive": wrc["naive"][0],
            "cpu_s": cpu}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default="equilibrium,growth")
    parser.add_argument("--seeds", default="0-2", help="a range a-b")
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--data", type=Path, default=Path("/work/bench_data"))
    args = parser.parse_args(argv)
    a, b = (int(x) for x in args.seeds.split("-"))
    args.data.mkdir(parents=True, exist_ok=True)
    rows = [row(kind, seed, args.data, args.draws) for kind in args.kinds.split(",") for seed in range(a, b + 1)]
    with pl.Config(tbl_rows=-1, float_precision=3, tbl_width_chars=200, tbl_cols=-1):
        print(pl.DataFrame(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
