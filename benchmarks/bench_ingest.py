"""Ingest speed and memory: servelab's ingest vs plain DuckDB CSV -> Parquet on the same file.

Writes a BurstGPT-schema CSV with :mod:`synthetic_trace` (default 10 M rows), then times, each in
its own child process (so that peak RSS is that run's alone):

- ``duckdb``: ``COPY (SELECT * FROM read_csv(...)) TO 'x.parquet'`` (the baseline);
- ``servelab``: ``servelab.analysis.ingest(csv, fmt=..., output=store)``.

``--schema mooncake`` writes the same requests as Mooncake JSONL (ms timestamps, a ``hash_ids``
list per request) and times DuckDB's ``read_json`` as the baseline; ``--schema parquet`` writes
them as Parquet, ingested through a generic column map, against ``read_parquet``.
``--schema azure`` rewrites the same requests as an Azure LLM inference trace (``TIMESTAMP`` as
wall-clock text with 7 fractional digits, ``ContextTokens``, ``GeneratedTokens``), whose times
servelab parses as datetimes and stores relative to the earliest.

Runs alternate in ``--repeat`` pairs (baseline, servelab, baseline, servelab, ...) so that load
changes on the shared machine hit both; the medians of the pairs' ratios, of wall time and of CPU
time (every thread of the child; the one that depends least on other processes), are the numbers
to read (issue 16 target: <= 1.3x), and the peak RSS of the servelab run (target: < 2 GB).
``--explain`` prints, before the timed runs, DuckDB's ``EXPLAIN ANALYZE`` of the fast path's SQL (the
typed, checked rows of the first source, written by a DuckDB ``COPY`` instead of the stream) and of
the plain ``COPY``, both on one thread so that each operator's time is its CPU time.
``--hash`` hashes every stored row after each servelab run (outside the timing) to show that a
change stored the same rows (compare with ``--baseline-python``). The runs hold
``/tmp/servelab-bench.lock``. Prints the load average next to the numbers, and the
logging clock ingest detected (issue 14: clock detection adds < 10 % to ingest; to compare with a
servelab before it, run this script with that version first on ``PYTHONPATH``).

Usage::

    python benchmarks/bench_ingest.py [--rows 10000000] [--repeat 5] [--hash] [--csv PATH] [--keep] [--path general]
        [--schema burstgpt|azure|mooncake|parquet] [--files N] [--whole-seconds] [--baseline-python PY] [--explain]
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOCK = Path("/tmp/servelab-bench.lock")
sys.path.insert(0, str(HERE))

from synthetic_trace import write_burstgpt_csv  # noqa: E402

_CHILD = r"""
import json, sys, time
kind, csvs, out, path, fmt = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
digest = sys.argv[6] == "1"


def hwm_mb():  # this process's peak RSS since exec (ru_maxrss would include the parent's at fork)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# imports are outside the timed part for both (servelab's package import is ~1-2 s of Python)
if kind == "duckdb":
    import duckdb
    t0, c0 = time.perf_counter(), time.process_time()
    con = duckdb.connect()
    files = "[" + ", ".join("'" + c.replace("'", "''") + "'" for c in csvs) + "]"
    reader = {"mooncake": "read_json", "parquet": "read_parquet"}.get(fmt, "read_csv")
    con.execute("COPY (SELECT * FROM " + reader + "(" + files + ")) TO '"
                + out.replace("'", "''") + "' (FORMAT parquet)")
    con.close()
    extra = {}
else:
    from servelab.analysis import ingest
    from servelab.analysis.ingest import fast_path
    if path == "general":
        fast_path.applies = lambda *args: False
    t0, c0 = time.perf_counter(), time.process_time()
    if path == "explain":  # EXPLAIN ANALYZE the fast path's query on one thread, then stop (nothing timed)
        from servelab.analysis.ingest import numbering

        def explain(con, queries, out_path, **kwargs):
            con.execute("SET threads = 1")
            for name, sql in (("servelab fast path (first source)", queries[0]),
                              ("plain read_" + {"mooncake": "json", "parquet": "parquet"}.get(fmt, "csv"),
                               "SELECT * FROM " + {"mooncake": "read_json", "parquet": "read_parquet"}.get(fmt, "read_csv")
                               + "('" + csvs[0].replace("'", "''") + "')")):
                plan = con.execute("EXPLAIN ANALYZE COPY (" + sql + ") TO '" + out.replace("'", "''")
                                   + ".parquet' (FORMAT parquet)").fetchall()[0][1]
                print("=== EXPLAIN ANALYZE, one thread:", name, "\n" + plan, flush=True)
            raise SystemExit(0)

        fast_path.write_numbered = explain
    if fmt == "parquet":  # a platform's Parquet log, read through a generic column map
        cmap = {"time": {"column": "Timestamp", "unit": "s"},
                "columns": {"model": "Model", "input_tokens": "Request tokens", "output_tokens": "Response tokens",
                            "conversation_id": "Session ID", "latency_s": "Elapsed time"}}
        store = ingest(csvs, fmt="generic", column_map=cmap, output=out, overwrite=True)
    else:
        store = ingest(csvs, fmt=fmt, output=out, overwrite=True)
    extra = {"rows": dict(store.manifest["rows"]), "clock": store.manifest.get("clock")}
seconds, cpu = time.perf_counter() - t0, time.process_time() - c0  # CPU: every thread of this process
if digest and kind != "duckdb":
    # what was stored, independent of Parquet's byte layout: every row's hash (each row holds its
    # request_id, i.e. its place) combined; not timed
    import duckdb
    requests = str(store.requests_path).replace("'", "''")
    h, n = duckdb.connect().execute(f"SELECT bit_xor(hash(r)), count(*) FROM read_parquet('{requests}') r").fetchall()[0]
    extra["hash"] = f"{h:016x}/{n}"
print(json.dumps({"seconds": seconds, "cpu_s": cpu, "peak_rss_mb": hwm_mb(), **extra}))
"""


def _run(kind: str, csvs: list[Path], out: Path, path: str, fmt: str, python: str = sys.executable,
         digest: bool = False) -> dict:
    proc = subprocess.run([python, "-c", _CHILD, kind, json.dumps([str(c) for c in csvs]), str(out), path, fmt,
                           "1" if digest else "0"],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} run failed:\n{proc.stderr[-3000:]}")
    # the last JSON object: DuckDB's progress bar (a long query under load) may write to stdout too,
    # on the same line (it ends with a carriage return, not a newline)
    last = next(line for line in reversed(proc.stdout.splitlines()) if '{"' in line)
    return json.loads(last[last.index('{"'):])


#: --schema -> (SELECT over the BurstGPT CSV's rows, COPY options) writing that schema's file
_REWRITES = {
    "parquet": ("SELECT *", "FORMAT parquet"),
    "mooncake": (
        "SELECT CAST(round(Timestamp * 1000) AS BIGINT) AS timestamp, \"Request tokens\" AS input_length, "
        "\"Response tokens\" AS output_length, range(CAST(\"Request tokens\" // 512 AS BIGINT) + 1) AS hash_ids",
        "FORMAT json",
    ),
    "azure": (
        "SELECT strftime(TIMESTAMP '2023-11-16 18:17:03.979960' + to_microseconds("
        "CAST(round(Timestamp * 1e6) AS BIGINT)), '%Y-%m-%d %H:%M:%S.%f') || '0' AS TIMESTAMP, "
        "\"Request tokens\" AS ContextTokens, \"Response tokens\" AS GeneratedTokens",
        "HEADER, DELIMITER ','",
    ),
}


def _rewrite(path: Path, select: str, options: str) -> None:
    """Replace the BurstGPT CSV at ``path`` by ``select`` over its rows, written with ``options``."""
    import duckdb

    source = path.with_name(path.stem + "_source.csv")
    path.rename(source)
    duckdb.connect().execute(f"COPY ({select} FROM read_csv('{source}')) TO '{path}' ({options})")
    source.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=5, help="interleaved pairs (duckdb, servelab); default 5")
    parser.add_argument("--hash", action="store_true",
                        help="hash every stored row after each servelab run (not timed) and check that all runs, "
                             "and --baseline-python's, stored the same rows")
    parser.add_argument("--csv", type=Path, help="reuse / write the CSV here (default: a temp dir)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--schema", choices=("burstgpt", "azure", "mooncake", "parquet"), default="burstgpt",
                        help="the file's format (azure: wall-clock TIMESTAMP text, parsed as datetimes; "
                             "mooncake: JSONL with hash_ids lists, against DuckDB read_json; parquet: the "
                             "BurstGPT rows as Parquet, ingested with a generic column map, against read_parquet)")
    parser.add_argument("--files", type=int, default=1,
                        help="split the rows into this many consecutive files, ingested into one store "
                             "(the baseline reads the same list)")
    parser.add_argument("--whole-seconds", action="store_true",
                        help="timestamps as whole seconds, like BurstGPT's release: nearly every row ties "
                             "with another (the fast path hashes every tied row to count duplicates)")
    parser.add_argument("--path", choices=("auto", "general"), default="auto",
                        help="'general': force the two-pass path (what files with SQL-rejected rows, "
                             "conversation links or unsorted wall-clock times take) instead of the fast path")
    parser.add_argument("--explain", action="store_true",
                        help="print EXPLAIN ANALYZE (one thread) of the fast path's SQL and of the plain COPY first")
    parser.add_argument("--baseline-python", type=Path,
                        help="also run servelab's ingest under this interpreter (e.g. another checkout's "
                        ".venv/bin/python), alternating in the same run; its ratio is printed beside ours")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench_ingest_"))
    suffix = {"mooncake": ".jsonl", "parquet": ".parquet"}.get(args.schema, ".csv")
    csv = args.csv or work / f"{args.schema}_{args.rows}{suffix}"
    if not csv.exists():
        t0 = time.perf_counter()
        write_burstgpt_csv(csv, n_rows=args.rows, n_clients=2000, days=7.0, seed=args.seed)
        if args.whole_seconds:
            _rewrite(csv, "SELECT * REPLACE (CAST(floor(Timestamp) AS BIGINT) AS Timestamp)", "HEADER, DELIMITER ','")
        if args.schema in _REWRITES:
            _rewrite(csv, *_REWRITES[args.schema])
        print(f"wrote {csv} ({csv.stat().st_size / 1e6:.0f} MB, {args.rows:,} rows) in {time.perf_counter() - t0:.1f} s")
    csvs = [csv]
    if args.files > 1 and args.schema not in ("burstgpt", "azure"):
        parser.error("--files splits CSV files: use it with --schema burstgpt or azure")
    if args.files > 1:  # the same rows in consecutive files, like BurstGPT_1..3
        import duckdb

        csvs = [csv.with_name(f"{csv.stem}_part{k + 1}of{args.files}.csv") for k in range(args.files)]
        if not all(c.exists() for c in csvs):
            con = duckdb.connect(config={"preserve_insertion_order": True})
            con.execute(f"CREATE TABLE t AS SELECT * FROM read_csv('{csv}')")
            n = con.execute("SELECT count(*) FROM t").fetchall()[0][0]
            for k, part in enumerate(csvs):
                lo, hi = n * k // args.files, n * (k + 1) // args.files
                con.execute(f"COPY (SELECT * FROM t WHERE rowid >= {lo} AND rowid < {hi}) "
                            f"TO '{part}' (HEADER, DELIMITER ',')")
            con.close()
        print(f"split into {args.files} files: {', '.join(c.name for c in csvs)}")
    if args.explain:
        proc = subprocess.run([sys.executable, "-c", _CHILD, "servelab", json.dumps([str(c) for c in csvs]),
                               str(work / "explain"), "explain", args.schema, "0"], capture_output=True, text=True)
        print(proc.stdout + proc.stderr[-2000:], flush=True)
    kinds = ("duckdb", "servelab", *(("baseline",) if args.baseline_python else ()))
    results: dict[str, list[dict]] = {kind: [] for kind in kinds}
    with open(LOCK, "a") as lock:  # one large benchmark at a time on the machine
        fcntl.flock(lock, fcntl.LOCK_EX)
        for r in range(args.repeat):
            for kind in kinds:
                out = work / (f"x_{r}.parquet" if kind == "duckdb" else f"{kind}_store_{r}")
                python = str(args.baseline_python) if kind == "baseline" else sys.executable
                res = _run("servelab" if kind == "baseline" else kind, csvs, out, args.path, args.schema, python,
                           digest=args.hash)
                results[kind].append(res)
                print(f"run {r + 1} {kind:9s} {res['seconds']:7.2f} s  {res['cpu_s']:7.2f} CPU-s  peak RSS "
                      f"{res['peak_rss_mb']:7.0f} MB  load {os.getloadavg()[0]:.2f}"
                      + (f"  rows hash {res['hash']}" if "hash" in res else ""), flush=True)
                if kind == "duckdb":
                    out.unlink(missing_ok=True)
                else:
                    shutil.rmtree(out, ignore_errors=True)
    rss = max(r["peak_rss_mb"] for r in results["servelab"])
    print(f"rows: {results['servelab'][-1]['rows']}")
    clock = results["servelab"][-1].get("clock")
    print("clock: " + (f"{clock['step_s']} s (coarse {clock['coarse']}, ties {clock['zero_share']})" if clock
                       else "not recorded (servelab before clock detection)"))
    print(f"ingest path: {args.path}")
    for kind in kinds[1:]:
        name = "servelab ingest" if kind == "servelab" else f"baseline ({args.baseline_python})"
        ratios = {m: statistics.median(o[m] / b[m] for o, b in zip(results[kind], results["duckdb"]))
                  for m in ("seconds", "cpu_s")}
        print(f"{name}: median of {args.repeat} pair ratios to duckdb COPY: {ratios['seconds']:.2f}x wall, "
              f"{ratios['cpu_s']:.2f}x CPU (target <= 1.3x) | medians duckdb "
              f"{statistics.median(r['seconds'] for r in results['duckdb']):.2f} s / "
              f"{statistics.median(r['cpu_s'] for r in results['duckdb']):.2f} CPU-s, ours "
              f"{statistics.median(r['seconds'] for r in results[kind]):.2f} s / "
              f"{statistics.median(r['cpu_s'] for r in results[kind]):.2f} CPU-s")
    print(f"servelab peak RSS {rss:.0f} MB (target < 2048 MB)")
    if args.hash:
        hashes = {r["hash"] for kind in kinds[1:] for r in results[kind]}
        print(f"stored rows identical across every servelab run: {len(hashes) == 1} ({', '.join(sorted(hashes))})")
    print(f"uptime load average (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}, cores {os.cpu_count()}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
