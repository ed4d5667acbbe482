"""Benchmark: streaming generation at scale, and servelab against ServeGen's released generator, live.

The pool has the size of ServeGen's m-large (162 clients, 14 days) and is fitted, not copied: a
synthetic trace (benchmarks/synthetic_trace.py, ``--rows`` requests, integer client ids because
ServeGen's loader parses the id in ``chunk-<id>-...``) goes through ``servelab fit-pool`` and the
pool through ``servelab pool export-servegen`` (cached in ``--work``).

``--what scale``: 24 h at 1,000 req/s (86 M requests; ``--hours``, ``--rate``).

1. Sampling only, write excluded: a fresh process plans and draws every chunk
   (:func:`servelab.generator.stream.iter_plan` without frames); requests per wall second and
   per CPU second (the machine is shared: the CPU rate is the one that does not depend on the
   other processes). Target >= 5 M requests/s. Recorded (wip/sample-speed f18bdbb against main
   c6042ef, ``--sample-pairs 3``, interleaved, load 2-5 on 2 cores): 5.30 / 5.07 / 5.16 M requests
   per CPU-second (median 5.16; 16.3-17.0 CPU-s, ~194 ns a request) against main's 2.16 / 2.50 /
   2.11 (median 2.16; 34.5-40.9 CPU-s): 2.4x (per pair 2.45 / 2.03 / 2.45); the same 86,332,048
   requests, and ``servelab generate`` writes the same Parquet bytes as main (sha256 00f2f845...,
   24 h, seed 1: f18bdbb with chunks of 600 s, main c6042ef and adb3767 with 3600 s). Where the ~194 ns go (line_profiler, 24 h): renewal
   arrivals ~42 (the families' numpy draws ~21), conversation turns ~22, request data ~38 (the
   multinomial runs' shuffle ~17), first-turn inputs ~40, load-length coupling ~13, the chunk's
   time sort ~20, its column gathers ~17, parent links ~4.
2. ``servelab generate ... -o out.parquet`` as a whole process, once per ``--chunks`` size: wall
   time, peak RSS (the child's own, ``wait4``), file size, and whether the files of the different
   chunk sizes have the same bytes. Target: under 2 GB peak (issue 16; 9.8 GB before streaming).

``--what servegen``: 600 s at 100 req/s from the pool's start, whole processes, ``--pairs``
interleaved pairs: ``servelab generate`` (CLI: Python start, imports, load, generation and the
Parquet write) against ServeGen's released ``generate_workload`` run live from
``../shared/anchors/servegen`` (its own load of the pool folder and generation; it writes
nothing), with the medians and their ratio. Target: servelab >= 50x faster. ServeGen's run takes
minutes on this pool (it evaluates every window's dataset strings eagerly), so the default is 2 pairs.

Both cases hold ``/tmp/servelab-bench.lock`` (one large benchmark at a time on the machine).

``--before REF`` also runs the package as it is at git ``REF`` (:func:`git_ref.export_ref`, with
this checkout's editable finder removed from the child, so every sub-package is the ref's), in
the same locked run, interleaved with this checkout: the sampling step ``--sample-pairs`` times
each, and the short ``generate`` of ``--what servegen`` in every pair; the issue's targets table
is printed at the end with both.

Usage: ``.venv/bin/python benchmarks/bench_generate.py [--what scale|servegen|all] [--clients 162]
[--days 14] [--rows 4000000] [--hours 24] [--rate 1000] [--chunks 3600,600] [--pairs 2] [--work DIR]
[--before REF] [--sample-pairs 1] [--no-cli]``
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from servegen_live import SERVEGEN_CODE, available, bench_lock, servegen_command  # noqa: E402

SERVELAB = [sys.executable, "-m", "servelab"]
#: the targets table's rows, filled by the cases that ran: {target: {"before": str, "after": str}}
TARGETS: dict[str, dict[str, str]] = {}

_PRELUDE = """import sys
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")
                    and "__editable__" not in getattr(f, "__name__", "")]
sys.path.insert(0, {pkg!r})
"""


def _with_package(code: str, pkg: Path | None) -> str:
    """``code`` run with the package at ``pkg`` (a :func:`git_ref.export_ref` folder) instead of this checkout."""
    return code if pkg is None else _PRELUDE.format(pkg=str(pkg)) + code


def _cli(pkg: Path | None) -> list[str]:
    """The ``servelab`` command of this checkout, or of the exported package at ``pkg``."""
    if pkg is None:
        return SERVELAB
    return [sys.executable, "-c", _with_package("from servelab.cli import main\nmain(sys.argv[1:])", pkg)]

_SAMPLE = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
from servelab.generator.pool import ClientPool
from servelab.generator.stream import iter_plan, plan_generation
path, rate, duration, chunk = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
pool = ClientPool.load(path)
w0, c0 = time.perf_counter(), time.process_time()
plan = plan_generation(pool, rate, duration, seed=1, max_requests=None)
w1, c1 = time.perf_counter(), time.process_time()
n = 0
for rows, _ in iter_plan(plan, chunk_s=chunk, frames=False):
    n += sum(int(part["t"].size) for part in rows)
w2, c2 = time.perf_counter(), time.process_time()
print(json.dumps({"requests": n, "plan_wall_s": w1 - w0, "plan_cpu_s": c1 - c0, "draw_wall_s": w2 - w1,
                  "draw_cpu_s": c2 - c1}))
"""

_SERVEGEN = r"""
from servegen.construct import generate_workload
from servegen.utils import get_constant_rate_fn
rate, duration = float(sys.argv[4]), int(float(sys.argv[5]))
pool = ClientPool(Category.LANGUAGE, sys.argv[3])
view = pool.span(0, duration)
requests = generate_workload(view, get_constant_rate_fn(view, rate), duration=duration, seed=1)
print(len(requests))
"""


def run_process(cmd: list[str], *, cwd: str | None = None) -> dict:
    """Run ``cmd`` under GNU time: its wall time, CPU time, own peak RSS and last stdout line.

    (``wait4`` on a child forked from this process would report at least this process's RSS at
    the fork: GNU time forks the command from its own small process.)
    """
    with tempfile.NamedTemporaryFile(suffix=".time") as stats:
        t0 = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", "-o", stats.name, *cmd], capture_output=True,
                              text=True, cwd=cwd, check=False)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-3000:]}")
        rss_kb, user, system = Path(stats.name).read_text().split()[-3:]
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    return {"wall_s": wall, "peak_rss_mb": int(rss_kb) / 1024, "cpu_s": float(user) + float(system), "out": last}


def build_pools(work: Path, n_clients: int, *, days: float = 14.0, rows: int = 4_000_000) -> tuple[Path, Path]:
    """A pool of m-large's size fitted from a synthetic trace, in servelab's and ServeGen's formats (cached).

    A synthetic store of ``rows`` requests from ``n_clients`` clients over ``days`` days
    (benchmarks/synthetic_trace.py, seed 0, bare integer client ids: ServeGen's loader parses the id
    in ``chunk-<id>-...``), fitted with ``servelab fit-pool`` and written in ServeGen's format with
    ``servelab pool export-servegen``: both through the CLI, as a user would. The folders are kept in
    ``work`` and reused when present.
    """
    sys.path.insert(0, str(REPO / "benchmarks"))
    from synthetic_trace import make_synthetic_store

    tag = f"{n_clients}c-{days:g}d-{rows}"
    store, ours, theirs = work / f"store-{tag}", work / f"pool-{tag}", work / f"servegen-{tag}"
    if (ours / "manifest.json").is_file() and theirs.is_dir():
        return ours, theirs
    t0 = time.perf_counter()
    if not (store / "manifest.json").is_file():
        make_synthetic_store(store, n_rows=rows, n_clients=n_clients, days=days, seed=0, overwrite=True,
                             numeric_ids=True)
    t1 = time.perf_counter()
    subprocess.run([*SERVELAB, "fit-pool", str(store), "-o", str(ours), "--overwrite"], check=True,
                   capture_output=True)
    t2 = time.perf_counter()
    subprocess.run([*SERVELAB, "pool", "export-servegen", str(ours), "-o", str(theirs), "--overwrite"],
                   check=True, capture_output=True)
    t3 = time.perf_counter()
    print(f"pool        {n_clients} clients x {days:g} days fitted from {rows:,} synthetic requests (store "
          f"{t1 - t0:.0f} s, fit-pool {t2 - t1:.0f} s, export-servegen {t3 - t2:.0f} s); servelab format "
          f"{folder_mb(ours):.0f} MB, ServeGen format {folder_mb(theirs):.0f} MB, "
          f"{len(list(theirs.glob('chunk-*-trace.csv')))} trace files", flush=True)
    return ours, theirs


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def bench_scale(pool: Path, work: Path, *, hours: float, rate: float, chunks: list[float], before: Path | None = None,
                sample_pairs: int = 1, cli: bool = True) -> None:
    duration = hours * 3600
    with bench_lock():
        versions = [("after", None)] + ([("before", before)] if before is not None else [])
        rates: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in versions}
        counts = set()
        for i in range(sample_pairs):  # interleaved: after, before, before, after, ...
            for name, pkg in (versions if i % 2 == 0 else versions[::-1]):
                s = json.loads(run_process([sys.executable, "-c", _with_package(_SAMPLE, pkg), str(pool), str(rate),
                                            str(duration), str(chunks[0])])["out"])
                n = s["requests"]
                counts.add(n)
                rates[name].append((n / s["draw_wall_s"] / 1e6, n / s["draw_cpu_s"] / 1e6))
                print(f"sampling    [{name}] {hours:g} h at {rate:g} req/s, chunks of {chunks[0]:g} s, write excluded: "
                      f"{n:,} requests in {s['draw_wall_s']:.1f} s wall / {s['draw_cpu_s']:.1f} CPU-s -> "
                      f"{n / s['draw_wall_s'] / 1e6:.2f} M requests/s wall, {n / s['draw_cpu_s'] / 1e6:.2f} M per "
                      f"CPU-second (target >= 5); plan {s['plan_wall_s']:.2f} s", flush=True)
        for name, xs in rates.items():
            wall, cpu = statistics.median(x[0] for x in xs), statistics.median(x[1] for x in xs)
            TARGETS.setdefault(f"sampling >= 5 M requests/s (write excluded), {hours:g} h at {rate:,.0f} req/s", {})[name] = (
                f"{wall:.2f} M/s wall, {cpu:.2f} M/CPU-s")
        if before is not None:
            print(f"same count  of requests before and after: {len(counts) == 1}")
        if not cli:
            return
        digests = {}
        for chunk in chunks:
            out = work / f"w-{chunk:g}.parquet"
            r = run_process([*SERVELAB, "generate", str(pool), "--rate", str(rate), "--duration", str(duration),
                             "--seed", "1", "-o", str(out), "--overwrite", "--quiet", "--chunk-s", str(chunk),
                             "--max-requests", str(int(rate * duration * 1.2) + 1000)])
            info = json.loads(r["out"])
            digests[chunk] = hashlib.sha256(out.read_bytes()).hexdigest()
            print(f"cli         {hours:g} h at {rate:g} req/s -> Parquet, --chunk-s {chunk:g}: {info['requests']:,} "
                  f"requests, {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} CPU-s, peak RSS {r['peak_rss_mb']:.0f} MB "
                  f"(target < 2048 MB), file {out.stat().st_size / 2**20:.0f} MB", flush=True)
            out.unlink()
        print(f"same bytes  for chunk sizes {chunks}: {len(set(digests.values())) == 1}")


def bench_servegen(pool: Path, servegen_pool: Path, work: Path, *, pairs: int, rate: float,
                   duration: float, before: Path | None = None) -> None:
    if not available("construct"):
        print(f"servegen    skipped: ServeGen's code is not at {SERVEGEN_CODE}")
        return
    out = work / "short.parquet"
    # servelab's packages are byte-compiled before timing (in their own __pycache__), so that no
    # pair pays Python's compile step; ServeGen's folder is read-only: its five modules compile on
    # every run (milliseconds against its minutes). No PYTHONPYCACHEPREFIX: it would move every
    # library's and the standard library's bytecode too, recompiled on the first run
    packages = [str(REPO / name) for name in ("servelab", "analysis", "fitting", "generator", "reports")]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *packages], check=True, capture_output=True)
    args = ["generate", str(pool), "--rate", str(rate), "--duration", str(duration), "--seed", "1", "-o", str(out),
            "--overwrite", "--quiet"]
    ours_cmd = [*SERVELAB, *args]
    before_cmd = [*_cli(before), *args] if before is not None else None
    theirs_cmd = servegen_command(_SERVEGEN, servegen_pool, work, str(rate), str(duration))
    ours, theirs, olds, digests = [], [], [], set()
    for i in range(pairs):  # interleaved: all see the same machine load
        with bench_lock():
            if before_cmd is not None and i % 2 == 1:
                c = run_process(before_cmd)
                digests.add(hashlib.sha256(out.read_bytes()).hexdigest())
            a = run_process(ours_cmd)
            digests.add(hashlib.sha256(out.read_bytes()).hexdigest())
            b = run_process(theirs_cmd)
            if before_cmd is not None and i % 2 == 0:
                c = run_process(before_cmd)
                digests.add(hashlib.sha256(out.read_bytes()).hexdigest())
        ours.append(a)
        theirs.append(b)
        if before_cmd is not None:
            olds.append(c)
        print(f"pair {i + 1}      servelab {a['wall_s']:.2f} s ({json.loads(a['out'])['requests']:,} requests, "
              f"peak {a['peak_rss_mb']:.0f} MB) | ServeGen {b['wall_s']:.2f} s ({int(b['out']):,} requests, "
              f"peak {b['peak_rss_mb']:.0f} MB)" + (f" | before {c['wall_s']:.2f} s" if before_cmd else ""), flush=True)
    m_ours = statistics.median(r["wall_s"] for r in ours)
    m_theirs = statistics.median(r["wall_s"] for r in theirs)
    c_ours = statistics.median(r["cpu_s"] for r in ours)
    c_theirs = statistics.median(r["cpu_s"] for r in theirs)
    print(f"servegen    {duration:g} s at {rate:g} req/s, whole processes, medians of {pairs}: servelab "
          f"{m_ours:.2f} s vs ServeGen {m_theirs:.2f} s -> {m_theirs / m_ours:.1f}x wall "
          f"({c_theirs / c_ours:.1f}x CPU: {c_ours:.2f} vs {c_theirs:.2f} CPU-s) (target >= 50x); servelab's "
          f"outputs SHA-256-identical across runs{' and versions' if olds else ''}: {len(digests) == 1} "
          f"({sorted(digests)[0][:16]})")
    row = TARGETS.setdefault("generator >= 50x ServeGen's released code live (600 s at 100 req/s, whole processes)", {})
    row["after"] = f"{m_theirs / m_ours:.1f}x ({m_ours:.2f} s vs {m_theirs:.2f} s; {c_theirs / c_ours:.1f}x CPU)"
    if olds:
        m_old, c_old = statistics.median(r["wall_s"] for r in olds), statistics.median(r["cpu_s"] for r in olds)
        row["before"] = f"{m_theirs / m_old:.1f}x ({m_old:.2f} s; {c_theirs / c_old:.1f}x CPU)"
        print(f"before      servelab at the ref: {m_old:.2f} s wall, {c_old:.2f} CPU-s (median of {len(olds)}) -> "
              f"{m_theirs / m_old:.1f}x ServeGen; after / before wall {m_ours / m_old:.2f}")


def print_targets() -> None:
    """The issue's targets table for the cases that ran (before: the ``--before`` ref)."""
    if not TARGETS:
        return
    print("\ntargets (issue 16)")
    print(f"  {'target':<84} {'before':<40} after")
    for target, row in TARGETS.items():
        print(f"  {target:<84} {row.get('before', '-'):<40} {row.get('after', '-')}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--what", choices=("scale", "servegen", "all"), default="all")
    parser.add_argument("--clients", type=int, default=162)
    parser.add_argument("--days", type=float, default=14.0, help="Span of the fitted pool (days).")
    parser.add_argument("--rows", type=int, default=4_000_000, help="Synthetic requests the pool is fitted from.")
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--chunks", default="3600,600", help="Chunk sizes (s) of the CLI runs, comma-separated.")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None, help="Keep pools and outputs here (default: a temp dir).")
    parser.add_argument("--before", default=None, metavar="REF", help="Also run git REF (e.g. main), interleaved.")
    parser.add_argument("--sample-pairs", type=int, default=1, help="Sampling runs per version (scale).")
    parser.add_argument("--no-cli", action="store_true", help="Scale: sampling only (no 24 h CLI writes).")
    args = parser.parse_args(argv)
    before = None
    if args.before:
        from git_ref import export_ref

        before = export_ref(args.before)
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(before.parent)], check=True, capture_output=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_generate_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        pool, servegen_pool = build_pools(work, args.clients, days=args.days, rows=args.rows)
        if args.what in ("scale", "all"):
            bench_scale(pool, work, hours=args.hours, rate=args.rate,
                        chunks=[float(c) for c in args.chunks.split(",")], before=before,
                        sample_pairs=args.sample_pairs, cli=not args.no_cli)
        if args.what in ("servegen", "all"):
            bench_servegen(pool, servegen_pool, work, pairs=args.pairs, rate=100.0, duration=600.0, before=before)
        print_targets()
        print(f"uptime      load average {os.getloadavg()} on {os.cpu_count()} cores at {time.strftime('%H:%M:%S')}")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
