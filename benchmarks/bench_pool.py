"""Benchmark: load a client pool the size of ServeGen's m-large (162 clients, 14 days, ~112 MB).

Builds the pool by tiling ServeGen's m-small (the full pool from ../shared when present, else the
slice in raw_traces/servegen/m-small): clients are copied under new ids ``<id>-t<k>`` until there
are ``--clients`` of them. It is written in servelab's format and in ServeGen's (to state its size
there), then loaded in a fresh process, timing

- ``ClientPool.load`` (lazy open), and
- load plus materialising every table a generator needs (clients, arrivals, data),

with the fresh process's peak RSS. Targets (issue 6): under 2 s and under 1 GB. ServeGen's own
loader takes about 36 s for m-large on this machine (issue 7).

Usage: ``/work/venv/bin/python benchmarks/bench_pool.py [--clients 162] [--keep DIR]``
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
SHARED_MSMALL = REPO.parent / "shared" / "data" / "servegen" / "language" / "m-small"
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


def tile_pool(pool, n_clients: int):
    """A pool of ``n_clients`` built by copying ``pool``'s clients under new ids."""
    from servelab.generator import ClientPool

    ids = list(pool.client_ids)
    copies = []
    k = 0
    while sum(len(c) for c in copies) < n_clients:
        take = ids[: n_clients - sum(len(c) for c in copies)]
        copies.append([(cid, f"{cid}-t{k}") for cid in take])
        k += 1
    mapping = pl.DataFrame([pair for c in copies for pair in c], schema=["client_id", "new_id"], orient="row")

    def tiled(frame):
        return frame.join(mapping, on="client_id").drop("client_id").rename({"new_id": "client_id"}).select(frame.columns)

    return ClientPool(clients=tiled(pool.clients), arrivals=tiled(pool.arrivals), data=tiled(pool.data),
                      window_s=pool.window_s, data_window_s=pool.data_window_s, span=tuple(pool.span),
                      fields=pool.fields, provenance={**pool.provenance, "tiled_to": n_clients})


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=162)
    parser.add_argument("--keep", type=Path, default=None, help="Keep the built pools in this folder.")
    args = parser.parse_args(argv)
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
        print(f"uptime              {os.getloadavg()}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
