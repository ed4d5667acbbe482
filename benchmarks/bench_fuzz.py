"""Fuzz ingest: per adapter, many random files of valid rows plus random faults, each ingested and checked.

The cases are those of the property tests (``tests/analysis/ingest_fuzz.py``: random valid rows
of each format, 5-12 faults per file -- bad numbers and times, broken JSON, wrong column counts,
bytes that are not UTF-8, over-long lines, CRLF / lone CR endings), more of them: a case passes
when ``read = stored + rejected``, every fault is rejected with its reason and the stored rows
equal the valid ones (computed independently of the adapters). Prints, per adapter, the cases
and fault cases tried and passed, and the first failures. Derandomized from ``--seed``: the same
seed tries the same cases.

Usage::

    python benchmarks/bench_fuzz.py [--cases 100] [--seed 0] [--adapter burstgpt ...]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "analysis"))

from hypothesis import HealthCheck, Phase, given, settings, seed as hyp_seed  # noqa: E402
from ingest_fuzz import ADAPTER_CASES, case_strategy, check_case  # noqa: E402


def fuzz(adapter: str, cases: int, seed: int) -> dict:
    """Try ``cases`` random cases of ``adapter``; returns the counts and the first failures."""
    out = {"cases": 0, "passed": 0, "faults": 0, "faults_passed": 0, "failures": []}
    seen: set[bytes] = set()

    @hyp_seed(seed)
    @settings(max_examples=cases, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=case_strategy(adapter))
    def run(case):
        if case.data in seen:
            return
        seen.add(case.data)
        out["cases"] += 1
        out["faults"] += len(case.faults)
        try:
            check_case(case)
        except Exception as err:  # noqa: BLE001 - a failing case is counted and reported, not raised
            if len(out["failures"]) < 3:
                out["failures"].append(f"{type(err).__name__}: {str(err)[:300]} (faults {list(case.faults)})")
            return
        out["passed"] += 1
        out["faults_passed"] += len(case.faults)

    run()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100, help="random files tried per adapter (default 100; repeats are skipped)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--adapter", action="append", choices=sorted(ADAPTER_CASES),
                        help="fuzz only this adapter case (repeatable); default all")
    args = parser.parse_args(argv)
    adapters = args.adapter or sorted(ADAPTER_CASES)
    total = {"cases": 0, "passed": 0, "faults": 0, "faults_passed": 0}
    print(f"{'adapter':14s} {'cases':>6s} {'passed':>7s} {'faults':>7s} {'passed':>7s} {'seconds':>8s}")
    for adapter in adapters:
        t0 = time.perf_counter()
        res = fuzz(adapter, args.cases, args.seed)
        print(f"{adapter:14s} {res['cases']:6d} {res['passed']:7d} {res['faults']:7d} {res['faults_passed']:7d} "
              f"{time.perf_counter() - t0:8.1f}", flush=True)
        for failure in res["failures"]:
            print(f"    FAILED {failure}")
        for key in total:
            total[key] += res[key]
    print(f"{'total':14s} {total['cases']:6d} {total['passed']:7d} {total['faults']:7d} {total['faults_passed']:7d}")
    return 0 if total["passed"] == total["cases"] else 1


if __name__ == "__main__":
    sys.exit(main())
