"""Time and peak memory of ``servelab report``: the shipped sample, big synthetic stores, and
before (a git ref, e.g. main) against after (this checkout) in the same run.

Each measurement runs the real command (``servelab report ...``) in its own child process, so the
time includes start-up and imports. Its memory is that of the report's whole process tree
(:mod:`proctree`): the report's process, its section worker and its figure worker; the targets are
checked against the sum of the processes' own peaks (an upper bound of the tree's memory at any
instant; the figure worker, forked from the report, counts its private memory, its other pages
being the report's), and the sum of peak RSS, the sampled peak of the tree's RSS and the largest
single process are printed.

Targets (issues #8, #16): shipped sample < 60 s; full report on 10 M rows <= 60 s, ``--quick``
well below the full report; peak memory < 4 GB; a sparse 4,000-client, 3-week trace under 1 GB.
The machine is shared: the load average and the child's CPU time (user + system, less sensitive
to other users than wall time; it includes the report's figure worker) are printed next to the
numbers, and each section's wall seconds (from the report's JSON).

Synthetic stores are cached under ``--data`` (default ``/work/bench_data``, else
``benchmarks/out``), named by rows, clients, days and seed, written to a temporary name and renamed
when complete. ``--before REF`` measures the same cases with the package as it is at git ``REF``
(exported with ``git archive`` into ``benchmarks/out/``, put first on ``PYTHONPATH`` of the child
run from a neutral folder), interleaved with this checkout, and prints the ratios.

Command line::

    python benchmarks/bench_report.py                 # sample + 10 M-row store (made once, cached)
    python benchmarks/bench_report.py --rows 1000000  # a smaller big store
    python benchmarks/bench_report.py --sample-only
    python benchmarks/bench_report.py --skip-sample --skip-full   # only the 10 M-row --quick run
    python benchmarks/bench_report.py --skip-sample --rows 1000000 --sections arrivals,clients
    python benchmarks/bench_report.py --skip-sample --skip-big --sparse   # only the sparse trace
    # issue 16: 1 M -> 10 M growth, --quick vs full, the sparse trace, main vs this checkout
    flock /tmp/servelab-bench.lock python benchmarks/bench_report.py --skip-sample \
        --rows 1000000,10000000 --sparse --before main

It writes only under ``benchmarks/out/`` and the data folder, and measures; it asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["measure", "main"]

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"

sys.path.insert(0, str(HERE))
import proctree  # noqa: E402


def measure(args: list[str], *, pythonpath: Path | None = None) -> dict:
    """Run ``servelab <args>`` in a fresh child; its wall time, CPU time, memory and output.

    The memory counts the report's section worker and figure worker too (:func:`proctree.run`):
    ``sum_peaks_mb`` (each process's own peak, summed, a fork's private memory only: what the
    targets are checked against), ``sum_rss_peaks_mb`` (every process's peak RSS summed),
    the sampled peak of the whole tree (``tree_rss_mb``) and ``peak_rss_mb``,
    the largest single process (what this benchmark printed before).

    With ``pythonpath``, the child imports servelab from there (a package exported from a git
    ref) and runs from a neutral folder, so neither this checkout nor the current folder shadows it.
    """
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return proctree.run([sys.executable, "-m", "servelab", *args], env=env, cwd=str(OUT))


def _load() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "load: " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def _print(label: str, result: dict, target_s: float, target_mb: float = 4096, *, html: Path | None = None,
           load_before: str = "") -> None:
    ok_t = "OK" if result["elapsed_s"] < target_s else "OVER"
    ok_m = "OK" if result["sum_peaks_mb"] < target_mb else "OVER"
    print(f"{label:<34} {result['elapsed_s']:8.1f} s (target < {target_s:.0f} s: {ok_t})   "
          f"memory {result['sum_peaks_mb']:8.0f} MB (sum of process peaks; target < {target_mb:.0f} MB: {ok_m})   "
          f"CPU {result['cpu_s']:.1f} s   rc={result['rc']}")
    print(f"    memory: largest process {result['peak_rss_mb']:.0f} MB; sum of peak RSS {result['sum_rss_peaks_mb']:.0f} MB "
          f"(a fork's shared pages twice); process tree sampled peak RSS {result['tree_rss_mb']:.0f} MB; "
          "per process (MB): " + ", ".join(
              f"{p['peak_mb']:.0f} [{_process_name(p)}]" + (f" ({p['private_mb']:.0f} private)" if p["forked"] else "")
              for p in result["processes"]))
    if result["rc"] != 0:
        print(result["stderr"])
    else:
        for line in result["stdout"].splitlines():
            print("    " + line)
        sections = _section_seconds(html)
        if sections:
            print("    sections (s): " + ", ".join(f"{k} {v:.1f}" for k, v in sections.items())
                  + f"; sum {sum(sections.values()):.1f}, rest (imports, figures, page) "
                  f"{result['elapsed_s'] - sum(sections.values()):.1f}")
        cpu = _section_seconds(html, "cpu_s")
        if cpu:
            print("    sections (CPU s): " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())
                  + f"; sum {sum(cpu.values()):.1f} (sections in the report's section worker overlap the others)")
        peak = _section_seconds(html, "peak_rss_mb")
        if peak:
            print("    peak RSS after each section (MB, the process's high-water mark): "
                  + ", ".join(f"{k} {v:.0f}" for k, v in peak.items()))
    if load_before:
        print(f"    before: {load_before}")
    print(f"    after:  {_load()}")
    sys.stdout.flush()


def _process_name(process: dict) -> str:
    """A short name of a report process (:func:`proctree.run`'s ``processes``)."""
    if process["root"]:
        return "report"
    if "_section_worker_main" in process["cmd"]:
        return "section worker"
    if "-m servelab" in process["cmd"]:  # forked from the report: the figure encoder's worker
        return "figure worker"
    return process["cmd"].split(" -c ")[0].rsplit("/", 1)[-1][:40] or "?"


def _section_seconds(html: Path | None, key: str = "elapsed_s") -> dict[str, float]:
    """Wall seconds (or ``key="cpu_s"``: CPU seconds, when the report records them) of each
    section, from the ``report.json`` written beside ``html``."""
    if html is None or not html.with_suffix(".json").is_file():
        return {}
    document = json.loads(html.with_suffix(".json").read_text())
    return {s["id"]: float(s.get(key) or 0.0) for s in document.get("sections", []) if s.get(key) is not None}


def _run(label: str, args: list[str], html: Path, target_s: float, *, pythonpath: Path | None = None,
         target_mb: float = 4096) -> dict:
    before = _load()
    if html.with_suffix(".json").exists():
        html.with_suffix(".json").unlink()  # never report the sections of an older run
    result = measure([*args, "-o", str(html), "--no-progress"], pythonpath=pythonpath)
    _print(label, result, target_s, target_mb, html=html, load_before=before)
    return result


def _data_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    shared = Path("/work/bench_data")
    return shared if shared.is_dir() else OUT


def _big_store(data: Path, rows: int, seed: int, *, clients: int = 2000, days: float = 7.0) -> Path:
    """The cached synthetic store (made once, written under a temporary name, then renamed)."""
    name = f"store_rows{rows}_clients{clients}_days{days:g}_seed{seed}"  # bench_scale's and the integrator's names
    path = data / name
    if (path / "manifest.json").is_file():
        return path
    sys.path.insert(0, str(HERE))
    from synthetic_trace import make_synthetic_store

    started = time.perf_counter()
    tmp = data / f".{name}.{os.getpid()}.tmp"
    make_synthetic_store(tmp, n_rows=rows, n_clients=clients, seed=seed, days=days, overwrite=True)
    tmp.rename(path)
    print(f"made {rows:,}-row synthetic store ({clients:,} clients, {days:g} days) in "
          f"{time.perf_counter() - started:.1f} s at {path}")
    return path


def _export_ref(ref: str) -> Path:
    """The package as it is at git ``ref`` (:func:`git_ref.export_ref`, shared with bench_engines)."""
    sys.path.insert(0, str(HERE))
    from git_ref import export_ref

    return export_ref(ref, out=OUT)


def _compare(label: str, args: list[str], stem: str, target_s: float, before: Path | None, ref: str,
             *, target_mb: float = 4096) -> dict[str, dict]:
    """``args`` with this checkout and (when given) with the ``before`` package, interleaved."""
    out = {}
    versions = [("after", None)] + ([(f"before ({ref})", before)] if before is not None else [])
    for name, path in versions:
        out[name] = _run(f"{label} [{name}]", args, OUT / f"{stem}_{name.split()[0]}.html", target_s,
                         pythonpath=path, target_mb=target_mb)
    if before is not None:
        a, b = out["after"], out[f"before ({ref})"]
        if a["rc"] == 0 and b["rc"] == 0:
            print(f"    after / before: wall {a['elapsed_s'] / b['elapsed_s']:.2f}x, CPU {a['cpu_s'] / b['cpu_s']:.2f}x, "
                  f"memory {a['sum_peaks_mb'] / b['sum_peaks_mb']:.2f}x")
    return out


def _summary(results: dict[tuple[int, str], dict[str, dict]], rows: list[int]) -> None:
    """--quick against full per size, and growth from the smallest to each larger size."""
    print("\nsummary")
    for (n, mode), by_version in sorted(results.items()):
        for version, r in by_version.items():
            print(f"  {n:>12,} rows {mode:<5} {version:<16} {r['elapsed_s']:8.1f} s  CPU {r['cpu_s']:8.1f} s  "
                  f"memory {r['sum_peaks_mb']:7.0f} MB (sum of process peaks; largest {r['peak_rss_mb']:.0f})  "
                  f"rc={r['rc']}")
    for n in rows:
        full, quick = results.get((n, "full"), {}), results.get((n, "quick"), {})
        for version in quick:
            if version in full:
                print(f"  {n:,} rows, {version}: --quick / full wall {quick[version]['elapsed_s'] / full[version]['elapsed_s']:.2f}, "
                      f"CPU {quick[version]['cpu_s'] / full[version]['cpu_s']:.2f}")
    small = rows[0]
    for n in rows[1:]:
        for mode in ("quick", "full"):
            for version, r in results.get((n, mode), {}).items():
                base = results.get((small, mode), {}).get(version)
                if base:
                    print(f"  growth {small:,} -> {n:,} rows ({n / small:g}x), {mode}, {version}: wall "
                          f"{r['elapsed_s'] / base['elapsed_s']:.2f}x, CPU {r['cpu_s'] / base['cpu_s']:.2f}x, "
                          f"memory {r['sum_peaks_mb'] / base['sum_peaks_mb']:.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="10000000",
                        help="rows of the big store, or a comma-separated list for growth (default 1e7)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=None, help="folder of the cached stores (default /work/bench_data)")
    parser.add_argument("--before", default=None, metavar="REF", help="also measure git REF (e.g. main)")
    parser.add_argument("--sparse", action="store_true",
                        help="also the sparse trace: 4,244 clients, 26,798 requests over 23 days (target < 1 GB)")
    parser.add_argument("--sample-only", action="store_true", help="only the shipped sample")
    parser.add_argument("--skip-full", action="store_true", help="big store: only --quick")
    parser.add_argument("--skip-sample", action="store_true", help="only the big store")
    parser.add_argument("--skip-quick", action="store_true", help="big store: only the full report")
    parser.add_argument("--days", type=float, default=14.0,
                        help="span of the big synthetic stores in days (default 14, the cached stores' span)")
    parser.add_argument("--skip-big", action="store_true", help="no big store (e.g. only --sparse)")
    parser.add_argument("--sections", default=None,
                        help="big store: only these report sections, comma-separated (report --section ...)")
    opts = parser.parse_args(argv)
    rows = sorted(int(float(r)) for r in str(opts.rows).split(","))
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"servelab report benchmark, {os.cpu_count()} cores; {_load()}")
    before = _export_ref(opts.before) if opts.before else None
    if not opts.skip_sample:
        # the sample named by its path in this checkout: an exported REF (git archive) has no raw_traces
        sample = HERE.parent / "raw_traces" / "azure_2023" / "AzureLLMInferenceTrace_code.csv"
        _compare("report, shipped sample", ["report", str(sample)], "sample_report", 60, before, opts.before)
    if opts.sample_only:
        return 0
    data = _data_dir(opts.data)
    data.mkdir(parents=True, exist_ok=True)
    if opts.sparse:
        sparse = _big_store(data, 26_798, opts.seed, clients=4_244, days=23.0)
        _compare("report, sparse 4,244 clients x 23 days", ["report", str(sparse)], "sparse_full", 120, before,
                 opts.before, target_mb=1024)
    results: dict[tuple[int, str], dict[str, dict]] = {}
    only = [a for section in (opts.sections or "").split(",") if section for a in ("--section", section.strip())]
    label = f", sections {opts.sections}" if opts.sections else ""
    for n in [] if opts.skip_big else rows:
        store = _big_store(data, n, opts.seed, days=opts.days)
        if not opts.skip_quick:
            results[(n, "quick")] = _compare(f"report --quick, {n:,} rows{label}",
                                             ["report", str(store), "--quick", *only], f"big{n}_quick", 60, before,
                                             opts.before)
        if not opts.skip_full:
            results[(n, "full")] = _compare(f"report, {n:,} rows{label}", ["report", str(store), *only],
                                            f"big{n}_full", 60 if n <= 10_000_000 else 300, before, opts.before)
    if results:
        _summary(results, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
