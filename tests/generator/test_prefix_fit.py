"""The pool's prefix model recovers a trace of known construction (fitting/pool_prefixes.py)."""
from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from _prefix_trace import S_LEN, SHARES, T_EXTRA, U_LEN, build_trace

from servelab.analysis.shared_prefixes import CommonPrefixRule
from servelab.analysis.store import open_store, write_store
from servelab.fitting.pool_fit import fit_pool
from servelab.fitting.pool_prefixes import (
    PREFIX_KINDS,
    PREFIXES_SCHEMA,
    fit_prefix_table,
    prefix_structure,
)


@pytest.fixture(scope="module")
def trace():
    return build_trace()


@pytest.fixture(scope="module")
def pool(trace, tmp_path_factory):
    path = tmp_path_factory.mktemp("prefix") / "store"
    write_store(trace.drop("structure"), path)
    return fit_pool(open_store(path), window_censoring=False)  # counts as seen (the correction: test_prefix_censoring)


def _roots_per_class(trace: pl.DataFrame) -> pl.DataFrame:
    """First turns per client and length class, counted from the construction."""
    return (trace.filter(pl.col("parent_id").is_null())
            .with_columns((2 ** (pl.col("prefix_blocks").list.len().log(2).floor())).cast(pl.Int64).alias("min_blocks"))
            .group_by("client_id", "min_blocks").agg(pl.len().alias("n")))


def _overall(table: pl.DataFrame, trace: pl.DataFrame, client: str, expr: pl.Expr) -> float:
    """A client's share of first turns over all length classes, from the per-class rows."""
    per = _roots_per_class(trace).filter(pl.col("client_id") == client)
    rows = table.filter((pl.col("client_id") == client) & expr).group_by("min_blocks").agg(pl.col("probability").sum())
    joined = per.join(rows, on="min_blocks", how="left").with_columns(pl.col("probability").fill_null(0.0))
    return float((joined["probability"] * joined["n"]).sum() / joined["n"].sum())


def _tol(p: float, n: int) -> float:
    """Four binomial standard errors of a share p estimated on n requests."""
    return 4 * math.sqrt(p * (1 - p) / n)


def test_table_schema_and_kinds(pool):
    table = pool.prefixes
    assert dict(table.schema) == PREFIXES_SCHEMA
    assert set(table["kind"].unique()) <= set(PREFIX_KINDS)
    assert table["block_size"].unique().to_list() == [512]
    # per client, the first-turn options of each length class sum to at most 1; PMFs sum to 1
    opts = table.filter(pl.col("kind").is_in(["shared", "template", "reuse_gap"]))
    assert opts.group_by("client_id", "min_blocks").agg(pl.col("probability").sum())["probability"].max() <= 1 + 1e-9
    pmfs = table.filter(pl.col("kind").is_in(["reuse_lag_s", "reuse_same_length", "history_gap", "suffix_blocks"]))
    # (suffix_blocks: one PMF per client, group null, and one per client, length class and group)
    sums = pmfs.group_by("client_id", "kind", "min_blocks", "group").agg(pl.col("probability").sum())["probability"]
    sums = sums.to_numpy()
    np.testing.assert_allclose(sums, 1.0, atol=1e-9)


def test_shared_system_prompt_recovered(pool, trace):
    table = pool.prefixes
    shared = table.filter(pl.col("kind") == "shared")
    # the system prompt: one group, 6 blocks, the same id in A and B, nowhere else
    assert shared["value"].unique().to_list() == [float(S_LEN)]
    assert shared["group"].n_unique() == 1
    assert sorted(shared["client_id"].unique()) == ["A", "B"]
    n_roots = _roots_per_class(trace).group_by("client_id").agg(pl.col("n").sum())
    for client in ("A", "B"):
        n = int(n_roots.filter(pl.col("client_id") == client)["n"][0])
        want = SHARES[client]["S"]
        got = _overall(table, trace, client, pl.col("kind") == "shared")
        assert abs(got - want) < _tol(want, n), (client, got, want)
        # exact against the realised construction (the rule leaves no ambiguity here)
        realised = trace.filter((pl.col("client_id") == client) & (pl.col("structure") == "S")).height / n
        assert got == pytest.approx(realised, abs=1e-9)


def test_templates_recovered_and_nested(pool, trace):
    table = pool.prefixes
    templates = table.filter(pl.col("kind") == "template")
    s_group = int(table.filter(pl.col("kind") == "shared")["group"][0])
    a = templates.filter(pl.col("client_id") == "A")
    c = templates.filter(pl.col("client_id") == "C")
    assert a["value"].unique().to_list() == [float(S_LEN + T_EXTRA)]
    # A's template starts with the system prompt: it extends the shared group
    assert a["extends"].unique().to_list() == [s_group]
    assert c["value"].unique().to_list() == [float(U_LEN)]
    assert c["extends"].null_count() == c.height
    n_roots = _roots_per_class(trace).group_by("client_id").agg(pl.col("n").sum())
    for client, label, key in (("A", "T", "T"), ("C", "U", "U")):
        n = int(n_roots.filter(pl.col("client_id") == client)["n"][0])
        got = _overall(table, trace, client, pl.col("kind") == "template")
        want = SHARES[client][key]
        assert abs(got - want) < _tol(want, n), (client, got, want)
        realised = trace.filter((pl.col("client_id") == client) & (pl.col("structure") == label)).height / n
        assert got == pytest.approx(realised, abs=1e-9)


def test_reuse_and_conversation_growth_recovered(pool, trace):
    table = pool.prefixes
    # follow-ups repeat all the parent's full blocks: gap 1 (the parent's partial last block), always
    hist = table.filter(pl.col("kind") == "history_gap")
    assert sorted(hist["client_id"].to_list()) == ["A", "B", "C"]
    assert hist["value"].unique().to_list() == [1.0]
    # client C repeats originals: the reuse share matches the realised construction; no reuse in A, B
    n_c = int(_roots_per_class(trace).filter(pl.col("client_id") == "C")["n"].sum())
    realised = trace.filter((pl.col("client_id") == "C") & (pl.col("structure") == "reuse")).height / n_c
    got = _overall(table, trace, "C", pl.col("kind") == "reuse_gap")
    assert got == pytest.approx(realised, abs=2 / n_c)
    for client in ("A", "B"):
        assert _overall(table, trace, client, pl.col("kind") == "reuse_gap") == 0.0
    # lags from the original: uniform 20-200 s by construction (two-significant-digit bins), per
    # length class
    lag = table.filter((pl.col("client_id") == "C") & (pl.col("kind") == "reuse_lag_s"))
    assert lag["value"].min() >= 19.5
    for (_,), rows in lag.group_by(["min_blocks"]):
        assert 20 < float((rows["value"] * rows["probability"]).sum()) < 200
    # copies add 1-5 blocks to their original: never the original's length
    same = table.filter((pl.col("client_id") == "C") & (pl.col("kind") == "reuse_same_length"))
    assert same.select("value", "probability").rows() == [(0.0, 1.0)]


def test_structure_arrays_and_errors():
    # two clients share a 2-block prompt; request 3 (client 0) repeats request 0; request 4 follows
    # request 1
    lists = [[1, 2, 10, 11], [1, 2, 20], [1, 2, 30, 31, 32], [1, 2, 10, 11, 99], [1, 2, 20, 40]]
    lengths = np.array([len(x) for x in lists])
    values = np.concatenate(lists)
    st = prefix_structure(values, lengths, timestamps=np.arange(5.0), clients=np.array([0, 1, 0, 0, 0]),
                          parents=np.array([-1, -1, -1, -1, 1]), rule=CommonPrefixRule())
    assert st["kind"].tolist() == [1, 1, 1, 2, 3]
    assert st["group_len"].tolist()[:3] == [2, 2, 2]
    assert st["source"][3] == 0 and st["gap"][3] == 0 and st["lag_s"][3] == 3.0
    assert st["source"][4] == 1 and st["gap"][4] == 0
    assert st["suffix"].tolist() == [2, 1, 3, 1, 1]
    with pytest.raises(ValueError, match="one value per request"):
        prefix_structure(values, lengths, timestamps=np.arange(4.0), clients=np.zeros(5, dtype=np.int64))
    with pytest.raises(ValueError, match="block_size must be a positive integer; got 0"):
        fit_prefix_table(st, np.zeros(5, dtype=np.int64), ["x"], block_size=0)
