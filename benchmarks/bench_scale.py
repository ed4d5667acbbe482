"""Production-scale benchmarks of the pool side (issue 16 items 1-2): fit-pool cost growth, sparse pool load.

``--what fit`` (default): ``fit_pool`` on synthetic stores of 2,000 clients over 14 days at each of
``--rows`` (default 1 M, 10 M; add 100 M explicitly), each in a fresh process: wall time, peak RSS
(VmHWM) and the pool's active cells, then the growth factors between sizes (time and memory per
row: linear or better means a factor <= the row factor). Target: 100 M rows under 8 GB peak.
``--baseline DIR`` also runs the same fit with another servelab source tree (e.g. main's, exported
with ``git archive``; see :func:`baseline_tree`) in the same run, interleaved.

``--what load``: a sparse pool of 100,000 clients x 14 days (each client active in ~1 % of its
10-min windows, PMFs of 8 values in its active 6-h data windows: 2.1 M arrival rows, 14 M data
rows), built once; in a fresh process the import time, ``ClientPool.load`` (manifest and range
checks, ``open_s``) and materialising the tables a generator reads (``load_s``). Target <= 2 s.

``--what generate``: 1 day (``--hours``) generated from that 100,000-client sparse pool in a fresh
process: wall time (load included) and peak RSS; with ``--baseline`` the same with the baseline tree,
interleaved (``--repeat`` pairs). Issue 16: the generator's window grid holds active cells only.

``--what growth``: for each of ``--rows`` (default 1 M, 10 M, 100 M; 2,000 clients, 14 days) and
each of ``--steps`` (``ingest``, ``report``, ``fit``), the real command in a fresh process under
GNU time: ``servelab ingest`` of the store's raw CSV (BurstGPT schema, written from the store by
DuckDB once, cached beside it; BurstGPT has no client column, so the ingested store has none),
``servelab report --quick`` and ``servelab fit-pool`` on the synthetic store. Wall time, CPU
time and peak memory of each (the sum of the peaks of the command's processes: ``report``'s
section worker and figure worker count), one lock hold per command (``/tmp/servelab-bench.lock``). Every
result is appended to ``--log`` (JSON lines), and the table printed at the end holds the newest
result of each (step, rows) in the log, so the 100 M commands can run one at a time
(``--rows 100000000 --steps report``) and the table still shows 1 M -> 10 M -> 100 M with the
growth factors (time and peak per row factor: <= the row factor is linear or better).
Targets (issue 16): at 100 M rows each under 8 GB peak, ``report --quick`` <= 5 min.

``--what sparse``: a 4,244-client, 3-week synthetic trace of 26,798 requests (sparse like the
issue's real one): the pool's arrival rows (active cells only), and the peak RSS of ``fit-pool``
and of a 1-day ``generate`` from it; with ``--baseline`` the same with the baseline tree, in the
same run (the baseline's pool holds every (client, window); its generate runs in the fitting
process since its own loader refuses that pool's null CVs).

Synthetic stores are cached under ``--data`` (default /work/bench_data), named by rows, clients,
days and seed, written under a temporary name and renamed when complete. A 100 M-row store is
built as ten 10 M-row draws (seeds 0..9, same clients and days; conversation ids made distinct),
merged and renumbered by DuckDB. Run large cases under ``flock /tmp/servelab-bench.lock``.

Usage::

    python benchmarks/bench_scale.py --what fit --rows 1000000 10000000 [--baseline /tmp/main_pkg]
    flock /tmp/servelab-bench.lock python benchmarks/bench_scale.py --what fit --rows 100000000
    python benchmarks/bench_scale.py --what load
    python benchmarks/bench_scale.py --what sparse --baseline /tmp/main_pkg
    flock /tmp/servelab-bench.lock python benchmarks/bench_scale.py --what generate --baseline main
    python benchmarks/bench_scale.py --what growth --rows 1000000 10000000 --steps ingest report fit
    python benchmarks/bench_scale.py --what growth --rows 100000000 --steps report   # then ingest, fit
    python benchmarks/bench_scale.py --what growth --table-only
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

_CHILD_PRELUDE = r"""
import json, sys, time
def hwm_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")
"""

_FIT = _CHILD_PRELUDE + r"""
t0 = time.perf_counter()
from servelab.analysis.store import open_store
from servelab.fitting.pool_fit import fit_pool
store = open_store(sys.argv[1])
pool = fit_pool(store, conversations=True)
arr = pool.arrivals
out = {"fit_s": time.perf_counter() - t0, "fit_peak_mb": hwm_mb(), "arrival_rows": arr.height,
       "active_rows": int((arr["rate"] > 0).sum()), "clients": pool.n_clients}
if len(sys.argv) > 2 and sys.argv[2] == "generate":
    from servelab.generator import generate
    t1 = time.perf_counter()
    df = generate(pool, "pool", 86400.0, seed=0)
    out.update(generate_s=time.perf_counter() - t1, generate_requests=df.height, peak_after_generate_mb=hwm_mb())
elif len(sys.argv) > 2:
    pool.save(sys.argv[2], overwrite=True)
print(json.dumps(out))
"""

_GENERATE = _CHILD_PRELUDE + r"""
t0 = time.perf_counter()
from servelab.generator import ClientPool, generate
pool = ClientPool.load(sys.argv[1])
df = generate(pool, "pool", float(sys.argv[2]) if len(sys.argv) > 2 else 86400.0, seed=0)
out = {"generate_s": time.perf_counter() - t0, "generate_requests": df.height, "generate_peak_mb": hwm_mb()}
if len(sys.argv) > 3 and sys.argv[3] == "hash":  # after the peak is read: the CSV text is not counted
    import hashlib
    out["sha256_16"] = hashlib.sha256(df.write_csv().encode()).hexdigest()[:16]
print(json.dumps(out))
"""

_LOAD = _CHILD_PRELUDE + r"""
t_start = time.perf_counter()
from servelab.generator import ClientPool
t_import = time.perf_counter() - t_start
t0 = time.perf_counter()
pool = ClientPool.load(sys.argv[1])
t_open = time.perf_counter() - t0
n = pool.clients.height + pool.arrivals.height + pool.data.height
t_load = time.perf_counter() - t0
from servelab.generator.pool_checks import check_arrivals, check_pmfs
t1 = time.perf_counter()
check_arrivals(pool.lazy("arrivals"), source="again")
t_arr = time.perf_counter() - t1
check_pmfs(pool.lazy("data"), source="again", keys=("client_id", "window_start", "field"))
t_data = time.perf_counter() - t1 - t_arr
print(json.dumps({"import_s": t_import, "open_s": t_open, "load_s": t_load, "peak_mb": hwm_mb(), "rows": n,
                  "clients": pool.n_clients, "arrival_rows": pool.arrivals.height, "data_rows": pool.data.height,
                  "checks_arrivals_s (in open_s)": t_arr, "checks_data_s (in open_s)": t_data}))
"""


def baseline_tree(commit: str, dest: Path) -> Path:
    """Export ``commit`` of this repository as an importable ``servelab`` package tree under ``dest``.

    The editable layout (top-level analysis/, fitting/, ... as ``servelab.*``) is rebuilt with
    symlinks; run the children with ``PYTHONPATH=<returned path>`` and a working directory
    outside the repository.
    """
    src = dest / "src"
    pkg = dest / "pkg"
    if not (pkg / "servelab").is_dir():
        src.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", commit], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
        pkg.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src / "servelab", pkg / "servelab")
        for top in ("analysis", "fitting", "generator", "figures", "reports"):
            (pkg / "servelab" / top).symlink_to(src / top)
    return pkg


def run_child(code: str, args: list[str], *, tree: Path | None = None) -> dict:
    """Run ``code`` in a fresh interpreter (``tree`` on PYTHONPATH when given) and parse its JSON line."""
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                          cwd=tempfile.gettempdir())
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _store_name(rows: int, clients: int, days: float, seed: int) -> str:
    return f"store_rows{rows}_clients{clients}_days{days:g}_seed{seed}"


def cached_store(data: Path, rows: int, clients: int, days: float, seed: int = 0) -> Path:
    """The synthetic store of that size under ``data`` (built once; temp name, then rename)."""
    from synthetic_trace import make_synthetic_store

    path = data / _store_name(rows, clients, days, seed)
    if (path / "manifest.json").is_file():
        return path
    data.mkdir(parents=True, exist_ok=True)
    if rows > 20_000_000:
        return _merged_store(data, rows, clients, days)
    tmp = data / f".tmp-{os.getpid()}-{path.name}"
    make_synthetic_store(tmp, n_rows=rows, n_clients=clients, days=days, seed=seed, overwrite=True)
    tmp.rename(path)
    return path


def _merged_store(data: Path, rows: int, clients: int, days: float) -> Path:
    """A store of ``rows`` rows as ten draws of ``rows / 10`` (seeds 0..9) merged by DuckDB."""
    import duckdb

    part = rows // 10
    parts = [cached_store(data, part, clients, days, seed) for seed in range(10)]
    path = data / _store_name(rows, clients, days, 0)
    tmp = data / f".tmp-{os.getpid()}-{path.name}"
    tmp.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(config={"memory_limit": "6GB", "temp_directory": str(tmp / "spill")})
    files = ", ".join(f"'{p / 'requests.parquet'}'" for p in parts)
    cols = con.execute(f"SELECT * FROM read_parquet('{parts[0] / 'requests.parquet'}') LIMIT 0").description
    names = [c[0] for c in cols]
    select = []
    for c in names:
        if c == "request_id":
            continue
        if c == "conversation_id":
            select.append("CASE WHEN conversation_id IS NULL THEN NULL ELSE CAST(part AS VARCHAR) || '-' || "
                          "CAST(conversation_id AS VARCHAR) END AS conversation_id")
        else:
            select.append(c)
    con.execute(f"""
        COPY (
            SELECT CAST(row_number() OVER (ORDER BY timestamp, part, request_id) - 1 AS BIGINT) AS request_id,
                   {', '.join(select)}
            FROM (SELECT *, CAST(regexp_extract(filename, 'seed([0-9]+)', 1) AS INTEGER) AS part
                  FROM read_parquet([{files}], filename = true))
            ORDER BY request_id
        ) TO '{tmp / 'requests.parquet'}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 1000000)
    """)
    con.close()
    shutil.rmtree(tmp / "spill", ignore_errors=True)
    manifest = json.loads((parts[0] / "manifest.json").read_text())
    manifest["sources"][0].update(rows_read=rows, rows_stored=rows)
    manifest["rows"].update(read=rows, stored=rows)
    manifest.setdefault("extra", {})["synthetic"] = {"n_rows": rows, "n_clients": clients, "days": days,
                                                    "merged_seeds": list(range(10))}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    tmp.rename(path)
    return path


def bench_fit(data: Path, rows: list[int], baseline: Path | None) -> None:
    results = []
    for n in rows:
        store = cached_store(data, n, 2000, 14.0)
        new = run_child(_FIT, [str(store)])
        line = {"rows": n, "new": new}
        if baseline is not None:
            line["baseline"] = run_child(_FIT, [str(store)], tree=baseline)
        results.append(line)
        print(json.dumps(line), flush=True)
    print(f"\n{'rows':>12} {'fit s':>8} {'peak MB':>9} {'arrival rows':>13}" + (
        f" {'main s':>8} {'main MB':>9} {'main rows':>10}" if baseline else ""))
    for r in results:
        a = r["new"]
        text = f"{r['rows']:>12,} {a.get('fit_s', float('nan')):>8.1f} {a.get('fit_peak_mb', float('nan')):>9.0f} " \
               f"{a.get('arrival_rows', 0):>13,}"
        if baseline:
            b = r["baseline"]
            text += (f" {b.get('fit_s', float('nan')):>8.1f} {b.get('fit_peak_mb', float('nan')):>9.0f} "
                     f"{b.get('arrival_rows', 0):>10,}" if "error" not in b else f"  baseline error: {b['error']}")
        print(text)
    for prev, cur in zip(results, results[1:]):
        f_rows = cur["rows"] / prev["rows"]
        f_t = cur["new"]["fit_s"] / prev["new"]["fit_s"]
        f_m = cur["new"]["fit_peak_mb"] / prev["new"]["fit_peak_mb"]
        print(f"growth {prev['rows']:,} -> {cur['rows']:,}: rows x{f_rows:g}, time x{f_t:.2f}, peak RSS x{f_m:.2f} "
              f"({'linear or better' if f_t <= f_rows * 1.05 else 'SUPERLINEAR'})")


_CSV_SQL = """COPY (SELECT timestamp AS "Timestamp", conversation_id AS "Session ID", latency_s AS "Elapsed time",
  model AS "Model", input_tokens AS "Request tokens", output_tokens AS "Response tokens",
  input_tokens + output_tokens AS "Total tokens",
  CASE WHEN service = 'conversation' THEN 'Conversation log' ELSE 'API log' END AS "Log Type"
  FROM read_parquet('{src}')) TO '{dst}' (FORMAT csv, HEADER true)"""

#: the growth steps: name -> servelab arguments after the executable ({store}, {csv}, {out})
GROWTH_STEPS = {
    "ingest": ["ingest", "{csv}", "-f", "burstgpt", "-o", "{out}", "--overwrite"],
    "report": ["report", "{store}", "--quick", "--no-progress", "-o", "{out}/report.html"],
    "fit": ["fit-pool", "{store}", "-o", "{out}", "--overwrite"],
}


def cached_csv(store: Path) -> Path:
    """The store's requests as a BurstGPT-schema CSV beside it (written once by DuckDB, in row order)."""
    import duckdb

    path = store.parent / f"burstgpt_from_{store.name}.csv"
    if path.is_file():
        return path
    tmp = store.parent / f".tmp-{os.getpid()}-{path.name}"
    con = duckdb.connect(config={"preserve_insertion_order": True, "memory_limit": "4GB"})
    try:
        con.execute(_CSV_SQL.format(src=store / "requests.parquet", dst=tmp))
    finally:
        con.close()
    tmp.rename(path)
    return path


def timed(cmd: list[str]) -> dict:
    """Run ``cmd`` holding the bench lock: wall s, CPU s (with every descendant), memory, exit code.

    ``peak_mb`` is the memory of the command's whole process tree (:func:`proctree.run`: the sum of
    each process's own peak, so ``report``'s section worker and figure worker count);
    ``largest_mb`` the largest single process (GNU time's ``%M``, what this printed before);
    ``tree_rss_mb`` the tree's sampled peak RSS at one instant.
    """
    import proctree
    from servegen_live import bench_lock

    with bench_lock():
        load = os.getloadavg()[0]
        run = proctree.run(cmd, cwd=tempfile.gettempdir(), tail=2000)
    out = {"wall_s": run["elapsed_s"], "cpu_s": run["cpu_s"], "peak_mb": run["sum_peaks_mb"],
           "largest_mb": run["peak_rss_mb"], "sum_rss_peaks_mb": run["sum_rss_peaks_mb"],
           "tree_rss_mb": run["tree_rss_mb"], "processes": len(run["processes"]),
           "rc": run["rc"], "load": load}
    if run["rc"] != 0:
        out["error"] = (run["stderr"].strip().splitlines() or [""])[-1][-300:]
    return out


def bench_growth(data: Path, rows: list[int], steps: list[str], log: Path) -> None:
    """Run each step at each size (see the module docstring), append the results to ``log``."""
    for n in rows:
        store = cached_store(data, n, 2000, 14.0)
        csv = None
        if "ingest" in steps:
            from servegen_live import bench_lock

            with bench_lock():
                csv = cached_csv(store)
        for step in steps:
            out = Path(tempfile.mkdtemp(prefix=f"bench-growth-{step}-", dir=data))
            try:
                args = [a.format(store=store, csv=csv, out=out / "x" if step != "report" else out)
                        for a in GROWTH_STEPS[step]]
                result = {"step": step, "rows": n, "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                          **timed([sys.executable, "-m", "servelab", *args])}
                if step == "report" and (out / "report.json").is_file():  # each section's wall seconds
                    sections = json.loads((out / "report.json").read_text()).get("sections", [])
                    result["sections_s"] = {sec["id"]: sec.get("elapsed_s") for sec in sections}
            finally:
                shutil.rmtree(out, ignore_errors=True)
            with open(log, "a") as handle:
                handle.write(json.dumps(result) + "\n")
            print(json.dumps(result), flush=True)


def growth_table(log: Path) -> str:
    """The newest result of each (step, rows) in ``log`` as one table, with growth factors."""
    latest: dict[tuple[str, int], dict] = {}
    for line in log.read_text().splitlines() if log.is_file() else []:
        r = json.loads(line)
        latest[(r["step"], r["rows"])] = r
    lines = [f"{'step':<8} {'rows':>12} {'wall s':>8} {'CPU s':>8} {'peak MB':>8} {'load':>5}  "
             f"{'growth (rows x, wall x, CPU x, peak x)':<40}"]
    for step in GROWTH_STEPS:
        sizes = sorted(n for s, n in latest if s == step)
        for k, n in enumerate(sizes):
            r = latest[(step, n)]
            text = (f"{step:<8} {n:>12,} {r['wall_s']:>8.1f} {r['cpu_s']:>8.1f} {r['peak_mb']:>8.0f} "
                    f"{r.get('load', float('nan')):>5.1f}  ")
            if k:
                p = latest[(step, sizes[k - 1])]
                f_rows = n / sizes[k - 1]
                f_cpu = r["cpu_s"] / p["cpu_s"]
                text += (f"x{f_rows:g}, x{r['wall_s'] / p['wall_s']:.2f}, x{f_cpu:.2f}, x{r['peak_mb'] / p['peak_mb']:.2f}"
                         f" ({'linear or better' if f_cpu <= f_rows * 1.05 else 'SUPERLINEAR'} in CPU)")
            if r.get("rc"):
                text += f"  FAILED: {r.get('error', '')}"
            lines.append(text)
    return "\n".join(lines)


def build_sparse_pool(path: Path, n_clients: int = 100_000, days: int = 14, active_share: float = 0.01,
                      seed: int = 0) -> Path:
    """A synthetic sparse pool: each client active in about ``active_share`` of its 10-min windows."""
    import numpy as np
    import polars as pl

    from servelab.generator import ClientPool

    if (path / "manifest.json").is_file():
        return path
    rng = np.random.default_rng(seed)
    n_w = days * 144
    per = rng.binomial(n_w, active_share, n_clients) + 1
    cidx = np.repeat(np.arange(n_clients), per)
    w = rng.integers(0, n_w, cidx.size)
    key = np.unique(cidx.astype(np.int64) * n_w + w)  # distinct (client, window), sorted
    cidx, w = key // n_w, key % n_w
    ids = np.array([f"c{i:06d}" for i in range(n_clients)], dtype=object)
    n = cidx.size
    rate = rng.gamma(0.5, 0.02, n) + 1e-4
    cv = np.where(rng.random(n) < 0.3, np.nan, rng.lognormal(0.3, 0.5, n))
    fam = np.where(np.isnan(cv), None, "gamma")
    arrivals = pl.DataFrame({"client_id": ids[cidx], "window_start": w * 600.0, "window_s": 600.0, "rate": rate,
                             "cv": cv, "family": pl.Series(fam.tolist(), dtype=pl.String),
                             "a": np.where(np.isnan(cv), np.nan, 1 / np.where(np.isnan(cv), 1, cv) ** 2),
                             "scale": 1.0}).with_columns(pl.col(pl.Float64).fill_nan(None))
    arrivals = arrivals.with_columns((pl.col("scale") / (pl.col("rate") * pl.col("a"))).alias("scale"))
    dw = (arrivals.select("client_id", (pl.col("window_start") / 21600).floor().alias("d")).unique())
    k = 8  # values per PMF
    data = (dw.with_columns(pl.lit(list(range(k))).alias("j")).explode("j")
            .with_columns((pl.col("d") * 21600.0).alias("window_start"), pl.lit(21600.0).alias("window_s"),
                          pl.lit("input_tokens").alias("field"), (2.0 ** (pl.col("j") + 4)).alias("value"),
                          pl.lit(1.0 / k).alias("probability"))
            .select("client_id", "window_start", "window_s", "field", "value", "probability"))
    clients = pl.DataFrame({"client_id": ids.tolist(), "has_arrivals": True, "has_data": True, "note": ""})
    pool = ClientPool(clients=clients, arrivals=arrivals, data=data, window_s=600.0, data_window_s=21600.0,
                      span=(0.0, days * 86400.0))
    tmp = path.parent / f".tmp-{os.getpid()}-{path.name}"
    pool.save(tmp, overwrite=True)
    tmp.rename(path)
    return path


def bench_load(data: Path) -> None:
    path = build_sparse_pool(data / "pool_sparse_clients100000_days14_seed0")
    for _ in range(3):
        print(json.dumps(run_child(_LOAD, [str(path)])))


def bench_generate(data: Path, hours: float, repeat: int, baseline: Path | None, digest: bool = False) -> None:
    path = build_sparse_pool(data / "pool_sparse_clients100000_days14_seed0")
    args = [str(path), str(hours * 3600.0)] + (["hash"] if digest else [])
    for _ in range(repeat):
        print(json.dumps({"new": run_child(_GENERATE, args)}), flush=True)
        if baseline is not None:
            print(json.dumps({"baseline": run_child(_GENERATE, args, tree=baseline)}), flush=True)


def bench_sparse(data: Path, baseline: Path | None) -> None:
    store = cached_store(data, 26_798, 4_244, 21.0)
    out = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        new = run_child(_FIT, [str(store), str(out / "pool")])
        new.update(run_child(_GENERATE, [str(out / "pool")]))
        print(json.dumps({"new": new}))
        if baseline is not None:
            print(json.dumps({"baseline": run_child(_FIT, [str(store), "generate"], tree=baseline)}))
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--what", choices=["fit", "load", "generate", "sparse", "growth"], default="fit")
    parser.add_argument("--steps", nargs="+", choices=list(GROWTH_STEPS), default=list(GROWTH_STEPS),
                        help="--what growth: the commands timed")
    parser.add_argument("--log", type=Path, default=Path("/work/bench_data/bench_scale_growth.jsonl"),
                        help="--what growth: JSON lines the results are appended to (and the table read from)")
    parser.add_argument("--table-only", action="store_true", help="--what growth: print the table of --log, run nothing")
    parser.add_argument("--hours", type=float, default=24.0, help="--what generate: hours generated")
    parser.add_argument("--repeat", type=int, default=1, help="--what generate: interleaved runs")
    parser.add_argument("--hash", action="store_true", help="--what generate: also print the workload's SHA-256")
    parser.add_argument("--rows", type=int, nargs="+", default=None,
                        help="Store sizes (fit: 1 M, 10 M; growth: 1 M, 10 M, 100 M)")
    parser.add_argument("--data", type=Path, default=Path("/work/bench_data"))
    parser.add_argument("--baseline", default=None,
                        help="A commit (e.g. main) to run side by side, exported with git archive.")
    args = parser.parse_args(argv)
    tree = None
    if args.baseline:
        tree = baseline_tree(args.baseline, Path(tempfile.gettempdir()) / f"servelab-baseline-{args.baseline}")
    if args.what == "fit":
        bench_fit(args.data, args.rows or [1_000_000, 10_000_000], tree)
    elif args.what == "growth":
        if not args.table_only:
            bench_growth(args.data, args.rows or [1_000_000, 10_000_000, 100_000_000], args.steps, args.log)
        print(growth_table(args.log))
    elif args.what == "load":
        bench_load(args.data)
    elif args.what == "generate":
        bench_generate(args.data, args.hours, args.repeat, tree, args.hash)
    else:
        bench_sparse(args.data, tree)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
