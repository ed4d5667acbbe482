"""A branching conversation inferred from prompt blocks counts as its longest chain (issue 15).

Over-linking makes trees: a reuse of a turn's prompt looks like one more follow-up of it. The
generator makes chains, and a tree of n rows made as an n-turn chain grows its history n times.
On the held-out Azure traces of ``benchmarks/bench_prefix_heldout.py`` such trees (up to 17 rows,
depth 9) took mass at 11 and 17 turns in the window-corrected turns PMF and generated prompts up to
+28 % long. Here every conversation is the same known tree: a root, two children of it, and a
grandchild under the first child (4 rows, longest chain 3 turns).
"""
import numpy as np
import polars as pl

from servelab.analysis.store import write_store
from servelab.fitting.pool_conversations import conversation_tables

BLOCK = 512


def _trees(n: int) -> pl.DataFrame:
    """``n`` trees 300 s apart; each row's blocks extend its parent's full blocks (the parent's last,
    partial block differs), with fresh ids, so the links are the tree's edges."""
    rows, nxt = [], 0
    for k in range(n):  # a loop over a handful of test conversations
        t0 = 300.0 * k
        root = list(range(nxt, nxt + 4))
        a = root[:3] + list(range(nxt + 4, nxt + 7))  # child 1: 6 blocks
        b = root[:3] + list(range(nxt + 7, nxt + 10))  # child 2: 6 blocks
        c = a[:5] + list(range(nxt + 10, nxt + 13))  # grandchild under child 1: 8 blocks
        nxt += 13
        rows += [(t0, root), (t0 + 30.0, a), (t0 + 60.0, b), (t0 + 90.0, c)]
    return pl.DataFrame({"timestamp": [r[0] for r in rows],
                         "input_tokens": [len(r[1]) * BLOCK - 100 for r in rows],
                         "output_tokens": [10] * len(rows),
                         "prefix_blocks": [r[1] for r in rows]},
                        schema_overrides={"prefix_blocks": pl.List(pl.Int64)})


def test_branching_conversation_counts_as_its_longest_chain(tmp_path):
    store = write_store(_trees(12), tmp_path / "s")
    frame = pl.read_parquet(store.requests_path)
    summary, pmfs, _ = conversation_tables(store, frame, np.zeros(frame.height, dtype=np.int64), ["c"],
                                           bin_ratio=1.05, window_censoring=False)
    turns = pmfs.filter(pl.col("quantity") == "turns")
    # every tree: 4 rows, longest chain root -> child 1 -> grandchild = 3 turns (not 4)
    assert turns["value"].to_list() == [3.0] and turns["probability"].to_list() == [1.0]
    assert summary["turns_mean"].to_list() == [3.0] and summary["n_conversations"].to_list() == [12]
