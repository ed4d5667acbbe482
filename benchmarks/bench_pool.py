"""Benchmarks of the client pool (issue 6): load, fit-pool, fitted-pool size, round trip.

``--what load`` (default): load a pool the size of ServeGen's m-large (162 clients, 14 days, ~112 MB).

Builds the pool by tiling ServeGen's m-small (the full pool from ../shared when present, else the
slice in raw_traces/servegen/m-small): clients are copied under new integer ids (``id + k *
10**digits``, which ServeGen's loader can parse) until there are ``--clients`` of them. It is written in servelab's format and in ServeGen's (to state its size
there), then loaded in a fresh process, timing

- ``ClientPool.load`` (lazy open), and
- load plus materialising every table a generator needs (clients, arrivals, data),

with the fresh process's peak RSS. Targets (issue 6): under 2 s and under 1 GB. With
``--servegen``, ServeGen's released loader (``ClientPool(Category.LANGUAGE, name)``, run live from
``../shared/anchors/servegen`` in a fresh process, under ``/tmp/servelab-bench.lock``) loads the
same pool from its ServeGen-format export, and the ratio is printed: no ServeGen number is
hard-coded here.

``--what fit``: ``fit_pool`` on a 10 M-row, 2,000-client, 1-day synthetic store
(benchmarks/synthetic_trace.py; built once into ``--store``), target under 60 s; then
``--what size``: that fitted day tiled to 14 days (every window shifted by whole days), written
in servelab's format, target under 100 MB.

``--what size-real``: 14 days (``--days``), each fitted from its own synthetic 10 M-row day
(``--rows-per-day``, seeds differ), shifted and joined into one pool: the real size of a fitted
14-day 2,000-client pool, target under 100 MB.

``--what roundtrip``: one day (seeded) sampled from the m-small, deepseek-r1 and mm-image pools
(../shared when present, else the slices in raw_traces/servegen), a pool fitted from it, and the
comparison client by client (:func:`servelab.fitting.pool_fit.compare_pools`).

Usage: ``/work/venv/bin/python benchmarks/bench_pool.py [--what load|fit|size|roundtrip|all]
[--clients 162] [--rows 10000000] [--store DIR] [--keep DIR]``
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
import warnings
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from servegen_live import SERVEGEN_CODE, SHARED, available, bench_lock, servegen_command  # noqa: E402

SHARED_MSMALL = SHARED / "data" / "servegen" / "language" / "m-small"
SLICE_MSMALL = REPO / "raw_traces" / "servegen" / "m-small"

_CHILD = r"""
import json, sys, time

def hwm_mb():  # peak RSS of this process since exec (VmHWM; ru_maxrss would include the parent's at fork)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")

t0 = time.perf_counter()
from servelab.generator import ClientPool
t_import = time.perf_counter() - t0
rss0 = hwm_mb()
t0 = time.perf_counter()
pool = ClientPool.load(sys.argv[1])
t_open = time.perf_counter() - t0
t0 = time.perf_counter()
sizes = {name: getattr(pool, name).height for name in ("clients", "arrivals", "data")}
t_all = time.perf_counter() - t0 + t_open
rss = hwm_mb()
print(json.dumps({"import_s": t_import, "open_s": t_open, "load_all_s": t_all, "rows": sizes,
                  "peak_rss_mb": rss, "rss_after_imports_mb": rss0}))
"""


_SERVEGEN_LOAD = r"""
t0, c0 = time.perf_counter(), time.process_time()
pool = ClientPool(Category.LANGUAGE, sys.argv[3])
wall = time.perf_counter() - t0
print(json.dumps({"load_s": wall, "cpu_s": time.process_time() - c0, "clients": len(pool.clients)}))
"""


def servegen_load(folder: Path, work: Path) -> dict:
    """ServeGen's released loader on the ServeGen-format ``folder``, live, in a fresh process (under the lock)."""
    with bench_lock():
        out = subprocess.run(servegen_command(_SERVEGEN_LOAD, folder, work), capture_output=True, text=True,
                             check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def tile_pool(pool, n_clients: int):
    """A pool of ``n_clients`` built by copying ``pool``'s clients under new ids."""
    from servelab.generator import ClientPool

    # integer ids (ServeGen's loader parses the id in chunk-<id>-...): copy k of client c is
    # c + k * 10**digits, so that copies never collide
    ids = list(pool.client_ids)
    step = 10 ** len(str(max(int(c) for c in ids)))
    copies = [[(cid, str(int(cid) + k * step)) for cid in ids] for k in range(n_clients // len(ids) + 1)]
    copies = [[pair for c in copies for pair in c][:n_clients]]
    mapping = pl.DataFrame([pair for c in copies for pair in c], schema=["client_id", "new_id"], orient="row")

    def tiled(frame):
        return frame.join(mapping, on="client_id").drop("client_id").rename({"new_id": "client_id"}).select(frame.columns)

    return ClientPool(clients=tiled(pool.clients), arrivals=tiled(pool.arrivals), data=tiled(pool.data),
                      window_s=pool.window_s, data_window_s=pool.data_window_s, span=tuple(pool.span),
                      fields=pool.fields, provenance={**pool.provenance, "tiled_to": n_clients})


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def bench_fit(rows: int, store_dir: Path, keep: Path | None) -> None:
    """fit_pool on the synthetic store (built if absent), then the 14-day tiled pool's size."""
    import numpy as np
    sys.path.insert(0, str(REPO / "benchmarks"))
    from synthetic_trace import make_synthetic_store

    from servelab.analysis.store import open_store
    from servelab.fitting.pool_fit import fit_pool
    from servelab.generator import ClientPool

    if not (store_dir / "manifest.json").is_file():
        t0 = time.perf_counter()
        make_synthetic_store(store_dir, n_rows=rows, n_clients=2000, days=1.0, seed=0, overwrite=True)
        print(f"built store         {store_dir} ({rows:,} rows) in {time.perf_counter() - t0:.1f} s")
    import resource

    store = open_store(store_dir)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    pool = fit_pool(store)
    t_fit = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    work = keep or Path(tempfile.mkdtemp(prefix="bench_fit_"))
    try:
        pool.save(work / "day", overwrite=True)
        print(f"fit-pool            {store.n_requests:,} rows, {pool.n_clients} clients: {t_fit:.1f} s wall, "
              f"{cpu:.1f} s CPU (all threads)   target < 60 s   (load average {os.getloadavg()[0]:.1f})")
        print(f"1-day pool          {folder_mb(work / 'day'):.1f} MB; arrivals {pool.arrivals.height:,} rows, "
              f"data {pool.data.height:,} rows, data_fits {pool.data_fits.height:,}, "
              f"conversation_pmfs {pool.conversation_pmfs.height:,}")
        day = pool.clip(0.0, 86400.0)
        rng = np.random.default_rng(0)

        def tiled(frame):
            # 14 copies shifted by whole days; each copy's estimates get an independent 1 % jitter
            # (float32 precision) so that Parquet cannot compress the copies against each other
            # (real days differ; exact copies would compress to almost nothing and flatter the size)
            out = []
            floats = [c for c in ("rate", "cv", "shape", "a", "c", "s", "scale", "probability") if c in frame.columns]
            for k in range(14):
                jit = {c: (frame[c] * np.exp(0.01 * rng.standard_normal(frame.height))).cast(pl.Float32).cast(pl.Float64)
                       for c in floats} if k else {}
                out.append(frame.with_columns((pl.col("window_start") + 86400.0 * k).alias("window_start"),
                                              **jit))
            return pl.concat(out)

        big = ClientPool(clients=day.clients, arrivals=tiled(day.arrivals), data=tiled(day.data),
                         data_fits=tiled(day.data_fits), conversations=day.conversations,
                         conversation_pmfs=day.conversation_pmfs, window_s=day.window_s,
                         data_window_s=day.data_window_s, span=(0.0, 14 * 86400.0), fields=day.fields,
                         provenance={**day.provenance, "tiled_days": 14})
        big.save(work / "14d", overwrite=True)
        sizes = {f.name: f.stat().st_size / 2**20 for f in (work / "14d").iterdir()}
        print(f"14-day pool         {folder_mb(work / '14d'):.1f} MB   target < 100 MB   "
              + ", ".join(f"{k} {v:.1f}" for k, v in sorted(sizes.items(), key=lambda kv: -kv[1])[:4]))
        t0 = time.perf_counter()
        loaded = ClientPool.load(work / "14d")
        n = loaded.arrivals.height + loaded.data.height
        print(f"14-day pool load    {time.perf_counter() - t0:.2f} s ({n:,} rows)")
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)


def bench_size_real(days: int, rows_per_day: int, keep: Path | None) -> None:
    """A pool of 2,000 clients over ``days`` days, every day fitted from its own trace.

    Each day is its own synthetic 1-day store (``rows_per_day`` rows, 2,000 clients, seed 100 + k,
    so days differ as real days do), fitted with :func:`fit_pool`'s defaults and shifted by k days;
    the clients and conversation tables are the union over days. Unlike ``--what size`` (one
    fitted day tiled with jitter), nothing is copied, so Parquet cannot compress one day against
    another's copy. One store at a time is on disk.
    """
    import resource

    sys.path.insert(0, str(REPO / "benchmarks"))
    from synthetic_trace import make_synthetic_store

    from servelab.fitting.pool_fit import fit_pool
    from servelab.generator import ClientPool

    work = keep or Path(tempfile.mkdtemp(prefix="bench_size_real_"))
    work.mkdir(parents=True, exist_ok=True)
    parts: dict[str, list[pl.DataFrame]] = {n: [] for n in ("clients", "arrivals", "data", "data_fits",
                                                            "conversations", "conversation_pmfs")}
    t_all = time.perf_counter()
    t_fit = 0.0
    day = None
    try:
        for k in range(days):
            store = make_synthetic_store(work / "store", n_rows=rows_per_day, n_clients=2000, days=1.0,
                                         seed=100 + k, overwrite=True)
            t0 = time.perf_counter()
            day = fit_pool(store).clip(0.0, 86400.0)
            t_fit += time.perf_counter() - t0
            for name in parts:
                frame = getattr(day, name)
                if "window_start" in frame.columns and name in ("arrivals", "data", "data_fits"):
                    frame = frame.with_columns((pl.col("window_start") + 86400.0 * k).alias("window_start"))
                parts[name].append(frame)
            print(f"  day {k + 1:2d}/{days}: {store.n_requests:,} rows, {day.n_clients} clients, "
                  f"fit {time.perf_counter() - t0:.1f} s (load {os.getloadavg()[0]:.1f})", flush=True)
        shutil.rmtree(work / "store", ignore_errors=True)
        tables = {name: pl.concat(frames, how="vertical_relaxed") for name, frames in parts.items()}
        for name in ("clients", "conversations"):
            tables[name] = tables[name].unique(subset=["client_id"], keep="first", maintain_order=True)
        big = ClientPool(**tables, window_s=day.window_s, data_window_s=day.data_window_s,
                         span=(0.0, days * 86400.0), fields=day.fields,
                         provenance={"benchmark": f"{days} days, each fitted from its own synthetic day"})
        big.save(work / "pool", overwrite=True)
        sizes = {f.name: f.stat().st_size / 2**20 for f in (work / "pool").iterdir()}
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{days}-day fitted pool  {folder_mb(work / 'pool'):.1f} MB   target < 100 MB   "
              + ", ".join(f"{k} {v:.1f}" for k, v in sorted(sizes.items(), key=lambda kv: -kv[1])[:4]))
        print(f"                    {big.n_clients} clients; arrivals {big.arrivals.height:,} rows, data "
              f"{big.data.height:,} rows; {days} x {rows_per_day:,} requests fitted in {t_fit:.0f} s, "
              f"{time.perf_counter() - t_all:.0f} s in all; peak RSS {rss:.0f} MB")
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)


def bench_roundtrip() -> None:
    """Sample one day from each published pool, fit a pool, compare client by client."""
    import numpy as np

    from servelab.analysis.store import write_store
    from servelab.fitting.pool_fit import compare_pools, fit_pool
    from servelab.generator import MissingDatasetWarning, read_servegen, sample_requests

    shared = SHARED / "data" / "servegen"
    pools = {"m-small": ("language/m-small", "m-small"), "deepseek-r1": ("reason/deepseek-r1", "deepseek-r1"),
             "mm-image": ("multimodal/mm-image", "mm-image")}
    for name, (sub, local) in pools.items():
        src = shared / sub if (shared / sub).is_dir() else REPO / "raw_traces" / "servegen" / local
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MissingDatasetWarning)
            ref = read_servegen(src)
        if name == "m-small":
            # one day of every client would be ~90 M requests: keep clients below 15 req/s on average (day 0)
            stats = ref.clip(0, 86400).client_stats()
            ref = ref.select(stats.filter(pl.col("mean_rate") < 15)["client_id"].to_list())
        ref = ref.clip(0.0, 86400.0)
        t0 = time.perf_counter()
        trace = sample_requests(ref, start=0.0, duration=86400.0, seed=20251123)
        t_s = time.perf_counter() - t0
        work = Path(tempfile.mkdtemp(prefix="bench_rt_"))
        try:
            store = write_store(trace.drop("request_id"), work / "store")
            t0 = time.perf_counter()
            fitted = fit_pool(store, span=(0.0, 86400.0))
            t_f = time.perf_counter() - t0
        finally:
            shutil.rmtree(work, ignore_errors=True)
        cmp = compare_pools(ref, fitted, min_count_cv=1000, min_count_family=2000, min_requests_ks=500)
        z = cmp.rate["z"].to_numpy()
        cv = cmp.cv
        fam = cmp.family.filter((pl.col("cv_family_ref") - 1).abs() > 0.3)
        same = fam.filter(pl.col("family_ref") == pl.col("family_fit"))
        # the family's one shape by its name (Gamma a, Weibull c)
        shape_ref = np.where(same["family_ref"] == "weibull", same["c_ref"], same["a_ref"])
        shape_fit = np.where(same["family_ref"] == "weibull", same["c_fit"], same["a_fit"])
        shape_rel = pl.Series(np.abs((shape_fit - shape_ref) / shape_ref))
        ks = cmp.data
        bound = 1.63 / np.sqrt(ks["n_requests"].to_numpy()) + 0.02 if ks.height else np.array([])
        print(f"--- {name}: {ref.n_clients} clients from {src}; {trace.height:,} requests sampled in {t_s:.1f} s, "
              f"fitted in {t_f:.1f} s")
        print(f"rate   {z.size} client-windows: mean z {z.mean():+.3f}, var z {z.var():.3f} (Poisson: 0, 1); "
              f"|z| < 3 in {np.mean(np.abs(z) < 3):.4f}, max |z| {np.abs(z).max():.2f}")
        if cv.height:
            r1 = cv["rel_diff_family"].abs()
            r0 = cv["rel_diff"].abs()
            print(f"cv     {cv.height} windows with >= 1000 requests: |fit/family CV - 1| median {r1.median():.3f}, "
                  f"within 20 % {np.mean(r1.to_numpy() < 0.2):.3f}; vs ServeGen's recorded CV median {r0.median():.3f}")
        if fam.height:
            print(f"family {fam.height} windows with >= 2000 requests and family CV away from 1: same family "
                  f"{same.height / fam.height:.3f}; shape |rel diff| median {shape_rel.median():.3f}")
        if ks.height:
            print(f"data   {ks.height} client x 6 h x field PMFs with >= 500 requests: KS median {ks['ks'].median():.4f}, "
                  f"max {ks['ks'].max():.4f}; below 1.63/sqrt(n) + 0.02 in {np.mean(ks['ks'].to_numpy() < bound):.3f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--what", choices=["load", "fit", "size", "size-real", "roundtrip", "all"], default="load")
    parser.add_argument("--days", type=int, default=14, help="Days of --what size-real.")
    parser.add_argument("--rows-per-day", type=int, default=10_000_000, help="Requests per day of --what size-real.")
    parser.add_argument("--clients", type=int, default=162)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--store", type=Path, default=Path(tempfile.gettempdir()) / "bench_pool_store")
    parser.add_argument("--keep", type=Path, default=None, help="Keep the built pools in this folder.")
    parser.add_argument("--servegen", action="store_true",
                        help="--what load: also time ServeGen's released loader live on the same pool")
    args = parser.parse_args(argv)
    if args.what in ("fit", "size", "all"):
        bench_fit(args.rows, args.store, args.keep)
    if args.what == "size-real":
        bench_size_real(args.days, args.rows_per_day, args.keep)
    if args.what in ("roundtrip", "all"):
        bench_roundtrip()
    if args.what not in ("load", "all"):
        return 0
    from servelab.generator import MissingDatasetWarning, read_servegen

    source = SHARED_MSMALL if SHARED_MSMALL.is_dir() else SLICE_MSMALL
    work = Path(tempfile.mkdtemp(prefix="bench_pool_")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MissingDatasetWarning)
            base = read_servegen(source)
        t_import = time.perf_counter() - t0
        pool = tile_pool(base, args.clients)
        t0 = time.perf_counter()
        pool.save(work / "pool", overwrite=True)
        t_save = time.perf_counter() - t0
        t0 = time.perf_counter()
        pool.to_servegen(work / "servegen", overwrite=True)
        t_export = time.perf_counter() - t0
        out = subprocess.run([sys.executable, "-c", _CHILD, str(work / "pool")], capture_output=True, text=True,
                             check=True)
        child = json.loads(out.stdout)
        print(f"source              {source} (imported in {t_import:.2f} s)")
        print(f"pool                {pool.n_clients} clients, span {pool.span[1] - pool.span[0]:.0f} s "
              f"({(pool.span[1] - pool.span[0]) / 86400:.0f} days); rows {child['rows']}")
        print(f"size servegen       {folder_mb(work / 'servegen'):.1f} MB (export {t_export:.2f} s)")
        print(f"size servelab       {folder_mb(work / 'pool'):.1f} MB (save {t_save:.2f} s)")
        print(f"open (lazy)         {child['open_s'] * 1000:.1f} ms")
        print(f"load all tables     {child['load_all_s']:.3f} s   target < 2 s")
        print(f"peak RSS            {child['peak_rss_mb']:.0f} MB (after imports {child['rss_after_imports_mb']:.0f} MB)"
              f"   target < 1024 MB")
        if args.servegen and available("clientpool"):
            sg = servegen_load(work / "servegen", work)
            print(f"ServeGen load       {sg['load_s']:.1f} s wall, {sg['cpu_s']:.1f} CPU-s ({sg['clients']} clients; its "
                  f"released loader, live) -> servelab's load of all tables {sg['load_s'] / child['load_all_s']:.0f}x "
                  f"faster (imports excluded on both sides)")
        elif args.servegen:
            print(f"ServeGen load       skipped: ServeGen's code is not at {SERVEGEN_CODE}")
        print(f"uptime              {os.getloadavg()}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
