"""Time and peak memory of ``servelab report``: the shipped sample, and a big synthetic store.

Each measurement runs the real command (``servelab report ...``) in its own child process, so the
time includes start-up and imports, and the peak resident memory is that child's alone.

Targets (issue #8): shipped sample < 60 s; 10 M-row store < 5 min, ``--quick`` < 1 min; peak
memory < 4 GB. The machine is shared: the load average and the child's CPU time (user + system,
less sensitive to other users than wall time; it includes the report's figure worker) are printed
next to the numbers, and each section's wall seconds (from the report's JSON).

Command line::

    python benchmarks/bench_report.py                 # sample + 10 M-row store (made once, cached)
    python benchmarks/bench_report.py --rows 1000000  # a smaller big store
    python benchmarks/bench_report.py --sample-only
    python benchmarks/bench_report.py --skip-sample --skip-full   # only the 10 M-row --quick run

It writes only under ``benchmarks/out/`` (git-ignored) and measures; it asserts nothing.
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

_CHILD = r"""
import json, resource, subprocess, sys, time
t = time.perf_counter()
run = subprocess.run(sys.argv[1:], capture_output=True, text=True)
elapsed = time.perf_counter() - t
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": run.returncode, "elapsed_s": elapsed, "peak_rss_mb": usage.ru_maxrss / 1024,
                  "cpu_s": usage.ru_utime + usage.ru_stime,
                  "stdout": run.stdout[-2000:], "stderr": run.stderr[-4000:]}))
"""


def measure(args: list[str]) -> dict:
    """Run ``servelab <args>`` in a fresh child; its wall time, peak RSS (MB) and output."""
    servelab = [sys.executable, "-m", "servelab"]
    done = subprocess.run([sys.executable, "-c", _CHILD, *servelab, *args], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _load() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "load: " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def _print(label: str, result: dict, target_s: float, target_mb: float = 4096, *, html: Path | None = None,
           load_before: str = "") -> None:
    ok_t = "OK" if result["elapsed_s"] < target_s else "OVER"
    ok_m = "OK" if result["peak_rss_mb"] < target_mb else "OVER"
    print(f"{label:<34} {result['elapsed_s']:8.1f} s (target < {target_s:.0f} s: {ok_t})   "
          f"peak RSS {result['peak_rss_mb']:8.0f} MB (target < {target_mb:.0f} MB: {ok_m})   "
          f"CPU {result['cpu_s']:.1f} s   rc={result['rc']}")
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
    if load_before:
        print(f"    before: {load_before}")
    print(f"    after:  {_load()}")
    sys.stdout.flush()


def _section_seconds(html: Path | None) -> dict[str, float]:
    """Wall seconds of each section, from the ``report.json`` written beside ``html``."""
    if html is None or not html.with_suffix(".json").is_file():
        return {}
    document = json.loads(html.with_suffix(".json").read_text())
    return {s["id"]: float(s.get("elapsed_s") or 0.0) for s in document.get("sections", [])}


def _run(label: str, args: list[str], html: Path, target_s: float) -> dict:
    before = _load()
    if html.with_suffix(".json").exists():
        html.with_suffix(".json").unlink()  # never report the sections of an older run
    result = measure([*args, "-o", str(html), "--no-progress"])
    _print(label, result, target_s, html=html, load_before=before)
    return result


def _big_store(rows: int, seed: int) -> Path:
    path = OUT / f"synthetic_{rows}"
    if (path / "manifest.json").is_file():
        return path
    sys.path.insert(0, str(HERE))
    from synthetic_trace import make_synthetic_store

    started = time.perf_counter()
    make_synthetic_store(path, n_rows=rows, seed=seed, days=7.0, overwrite=True)
    print(f"made {rows:,}-row synthetic store in {time.perf_counter() - started:.1f} s at {path}")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows of the big store (default 1e7)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-only", action="store_true", help="only the shipped sample")
    parser.add_argument("--skip-full", action="store_true", help="big store: only --quick")
    parser.add_argument("--skip-sample", action="store_true", help="only the big store")
    opts = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"servelab report benchmark, {os.cpu_count()} cores; {_load()}")
    if not opts.skip_sample:
        _run("report, shipped sample", ["report"], OUT / "sample_report.html", 60)
    if opts.sample_only:
        return 0
    store = _big_store(opts.rows, opts.seed)
    _run(f"report --quick, {opts.rows:,} rows", ["report", str(store), "--quick"], OUT / "big_quick.html", 60)
    if not opts.skip_full:
        _run(f"report, {opts.rows:,} rows", ["report", str(store)], OUT / "big_full.html", 300)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
