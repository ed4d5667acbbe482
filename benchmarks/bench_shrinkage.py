"""Benchmark: length shrinkage of sparse clients (issue 17; :mod:`servelab.fitting.pool_shrinkage`).

``--parts fidelity``: ``validate`` (split at half the time, ``--draws`` draws, seed 0) with
``length_shrinkage`` off and on, on synthetic stores of :mod:`synthetic_trace` (cached under
``--data``): the sparse one shaped like the issue's real 23-day trace (26,798 requests, 4,244
clients, 21 days; most clients seen 1-6 times) and ``--rows`` (default 1 M, 2,000 clients, 1 day).
Prints per store the metrics' means over draws (reference, naive, servelab off, servelab on), the
fitted prior strengths, and the paired verdicts (servelab / tie / naive) both ways.

``--parts cost``: on the ``--rows`` store, interleaved ``--rounds`` times: ``fit_pool`` off vs on
(CPU seconds of this process), and 6 h of generation at 200 req/s past the fitted span (the pool
extended by :func:`~servelab.generator.extend.extend_pool`: shrinkage acts there only) with its
weights vs the same pool with the weights column dropped (the draws without shrinkage: one
uniform less per request and one sampling pass per field), requests per CPU second and the ratio.

Measured 2026-12-04 (2 cores shared with another session; see the closing note of that day):
sparse store, 5 draws: input_ks 0.0301 -> 0.0172 (naive 0.0154), output_ks 0.0317 -> 0.0122
(naive 0.0121), joint_input_energy 0.101 -> 0.084 (naive 0.109), joint_output_energy 0.106 ->
0.084 (naive 0.102); paired verdicts off: servelab 4, tie 5, naive 2; on: servelab 6, tie 5.
1 M store, 1 draw (``--parts fidelity``, final code of that day): input_ks 0.0053 -> 0.0066,
output_ks 0.0046 -> 0.0051 (naive 0.0044 / 0.0051), rate_input_corr 0.179 -> 0.205 and
rate_output_corr 0.040 -> 0.064 (real 0.161 / 0.033): worse on all four, every verdict a tie with
one draw. ServeGen m-small week 1 -> 2 (0.1% of its rate; not part of this script): the metrics
within 0.006 of before (its 38 clients are big: weights near 1).

Usage: ``python benchmarks/bench_shrinkage.py [--parts fidelity,cost] [--rows 1000000] [--draws 5]
[--rounds 3] [--data /work/bench_data]``
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from synthetic_trace import make_synthetic_store  # noqa: E402

from servelab.analysis.store import open_store  # noqa: E402
from servelab.fitting.pool_fit import fit_pool  # noqa: E402
from servelab.fitting.pool_shrinkage import OWN_WEIGHT_COLUMN  # noqa: E402
from servelab.generator.extend import extend_pool  # noqa: E402
from servelab.generator.generate import generate  # noqa: E402
from servelab.generator.validation import validate  # noqa: E402

#: total rate of the cost part's generation (req/s): 6 h hold 4.3 M requests, so the per-request
#: cost shows, not the start-up
RATE = 200.0
METRICS = ("n_requests", "gap_cv", "rate_input_corr", "rate_output_corr", "window_rate_ks", "joint_input_energy",
           "joint_output_energy", "input_ks", "output_ks")


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def store(data: Path, rows: int, clients: int, days: float) -> Path:
    path = data / f"shrink_rows{rows}_clients{clients}_days{days:g}"
    if not (path / "manifest.json").is_file():
        make_synthetic_store(path, n_rows=rows, n_clients=clients, days=days, seed=0, overwrite=True)
    return path


def fidelity(path: Path, draws: int) -> None:
    st = open_store(path)
    out, verdicts = {}, {}
    for shrink in (False, True):
        t0 = time.perf_counter()
        res = validate(st, split=0.5, seed=0, draws=draws, length_shrinkage=shrink)
        out[shrink] = res.table()
        verdicts[shrink] = res.splits[0].draw_table()["verdict"].value_counts().sort("verdict").rows()
        print(f"  validate length_shrinkage={shrink}: {time.perf_counter() - t0:.1f} s")
    j = (out[False].select("metric", "reference", "naive", pl.col("servelab").alias("off"))
         .join(out[True].select("metric", pl.col("servelab").alias("on")), on="metric", maintain_order="left")
         .filter(pl.col("metric").is_in(METRICS)))
    with pl.Config(tbl_rows=-1, float_precision=4, tbl_width_chars=120):
        print(j)
    print(f"  verdicts off {verdicts.get(False)}; on {verdicts.get(True)}")


def cost(path: Path, rounds: int) -> None:
    st = open_store(path)
    fit = {False: [], True: []}
    pool = None
    for _ in range(rounds):
        for shrink in (False, True):
            c0 = _cpu()
            p = fit_pool(st, length_shrinkage=shrink)
            fit[shrink].append(_cpu() - c0)
            if shrink:
                pool = p
    print(f"  fit_pool CPU s, off {[round(x, 2) for x in fit[False]]}, on {[round(x, 2) for x in fit[True]]}")
    shrink_info = pool.provenance.get("length_shrinkage")
    print(f"  fitted: { {f: round(v['k'], 3) for f, v in shrink_info.items()} }")
    # shrinkage acts past the fitted span: the pool extended 6 h past it, with and without weights
    ext, _ = extend_pool(pool, float(pool.span[1]) + 6 * 3600.0, seed=1)
    plain = ext.replace(clients=ext.clients.drop(OWN_WEIGHT_COLUMN))
    start = float(pool.span[1])
    rate = {False: [], True: []}
    for _ in range(rounds):
        for shrink, p in ((False, plain), (True, ext)):
            c0 = _cpu()
            n = generate(p, RATE, 6 * 3600.0, start=start, seed=1, conversations=False).height
            rate[shrink].append(n / (_cpu() - c0))
    med = {k: sorted(v)[len(v) // 2] for k, v in rate.items()}
    print(f"  generate 6 h at {RATE:g} req/s: requests per CPU s, off {[round(x) for x in rate[False]]}, on {[round(x) for x in rate[True]]}; "
          f"median ratio on/off {med[True] / med[False]:.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="fidelity,cost")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", type=Path, default=Path("/work/bench_data"))
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    big = store(args.data, args.rows, 2000, 1.0)
    if "fidelity" in parts:
        for path in (store(args.data, 26_798, 4_244, 21.0), big):
            print(f"== fidelity: {path.name}")
            fidelity(path, args.draws if path != big else 1)
    if "cost" in parts:
        print(f"== cost: {big.name}")
        cost(big, args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
