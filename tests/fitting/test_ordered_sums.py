"""Weighted sums in pool fitting are added in row order: a fitted pool has the same bytes every run.

Found on the shipped Mooncake sample: ``servelab fit-pool`` run 8 times on the same store wrote 4
different ``prefixes.parquet`` (149 of 697 rows differed in the last bits of their probabilities),
and 4 identical ones with ``POLARS_MAX_THREADS=1``: the window-corrected reuse weights were summed
by polars group-bys, whose per-thread partial sums are added in a scheduling-dependent order.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from servelab.analysis.ingest import ingest
from servelab.fitting.ordered_sums import grouped_sums


def test_grouped_sums_is_the_row_order_sum_of_each_group(rng):
    n = 20_000
    frame = pl.DataFrame({"c": rng.integers(0, 40, n), "cls": 2 ** rng.integers(0, 6, n),
                          "x": np.round(rng.random(n), 1), "w": rng.lognormal(0.0, 2.0, n)})
    got = grouped_sums(frame, ["c", "cls", "x"], k="w", n=pl.lit(1.0))
    # independent: Python's left-to-right float addition over each group's rows, in row order
    want: dict[tuple, float] = {}
    count: dict[tuple, int] = {}
    for c, cls, x, w in frame.iter_rows():
        want[(c, cls, x)] = want.get((c, cls, x), 0.0) + w
        count[(c, cls, x)] = count.get((c, cls, x), 0) + 1
    assert got.height == len(want)
    assert got.schema == pl.Schema({"c": pl.Int64, "cls": pl.Int64, "x": pl.Float64, "k": pl.Float64,
                                    "n": pl.Float64})
    assert got.select("c", "cls", "x").equals(got.select("c", "cls", "x").sort("c", "cls", "x"))
    for c, cls, x, k, n in got.iter_rows():
        assert k == want[(c, cls, x)] and n == count[(c, cls, x)]  # bit-equal, not approximately


def test_grouped_sums_takes_an_expression_and_handles_edges():
    frame = pl.DataFrame({"g": [2, 1, 2, 1], "kind": [2, 2, 1, 2], "w": [0.5, 0.25, 9.0, 0.125]})
    got = grouped_sums(frame, ["g"], s=pl.when(pl.col("kind") == 2).then(pl.col("w")).otherwise(0.0))
    assert got.to_dict(as_series=False) == {"g": [1, 2], "s": [0.375, 0.5]}
    empty = grouped_sums(frame.clear(), ["g"], s="w")
    assert empty.height == 0 and empty.schema == pl.Schema({"g": pl.Int64, "s": pl.Float64})
    with pytest.raises(ValueError, match="nulls"):
        grouped_sums(pl.DataFrame({"g": [1, None], "w": [1.0, 2.0]}), ["g"], s="w")
    with pytest.raises(ValueError, match="at least one key"):
        grouped_sums(frame, [], s="w")
    with pytest.raises(ValueError, match="at least one sum"):
        grouped_sums(frame, ["g"])


_FIT = """
import os, sys
from servelab.analysis.store import duckdb_settings, open_store
from servelab.fitting.pool_fit import fit_pool
with duckdb_settings(threads=int(os.environ["POLARS_MAX_THREADS"])):
    fit_pool(open_store(sys.argv[1])).save(sys.argv[2])
"""


def test_fit_pool_writes_the_same_bytes_under_one_and_four_polars_and_duckdb_threads(raw_traces, tmp_path):
    store = tmp_path / "store"
    ingest(raw_traces / "mooncake" / "synthetic_trace.jsonl", fmt="mooncake", output=store, progress=False)
    digests = []
    for i, threads in enumerate(("1", "4", "4")):
        out = tmp_path / f"pool{i}"
        env = dict(os.environ, POLARS_MAX_THREADS=threads)
        subprocess.run([sys.executable, "-c", _FIT, str(store), str(out)], env=env, check=True)
        tables = sorted(p for p in out.iterdir() if p.suffix == ".parquet")
        assert any(p.name == "prefixes.parquet" for p in tables)
        manifest = json.loads((out / "manifest.json").read_text())
        manifest.pop("created_at")  # the one field that differs (the length-shrinkage center is in it)
        digests.append({**{p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tables},
                        "manifest": json.dumps(manifest, sort_keys=True)})
    assert digests[0] == digests[1] == digests[2]
