"""The generator keeps each prompt group's fitted share of a length class (issue 15).

A request that draws "a group" has its group re-picked among its length class's groups by how
well each fits its length. With one suffix density pooled over all groups, a long template was
favoured for the short end of a class (its suffix there is short, and short suffixes are common
after a short system prompt in the classes below): on the held-out Azure traces of
``benchmarks/bench_prefix_heldout.py`` the 5-block template started 20 % of the 4-7-block
prompts against 12 % in the trace, and the hit rate ran 4.5 points high. The re-pick now weighs a
group by its own suffix PMF in the class (Bayes: P(g | L) ~ P(g | class) P(L | g, class)).

Known construction: one client, lengths 1-15 blocks uniform, a system prompt ``S`` (2 blocks,
share 0.35) and a template ``T`` = ``S`` + 3 blocks (share 0.15) in every length class; the
trace is made by the generator from that table, fitted, and made again from the fit over the
same rows.
"""
from types import SimpleNamespace

import numpy as np
import polars as pl

from servelab.fitting.pool_prefixes import fit_prefix_table, prefix_structure
from servelab.fitting.pool_schemas import PREFIXES_SCHEMA
from servelab.generator.prefixes import assign_prefix_blocks, prefix_model

BLOCK = 512


def _table() -> pl.DataFrame:
    rows = [("x", kind, g, ext, length, share, c, BLOCK) for c in (1, 2, 4, 8)
            for kind, g, ext, length, share in (("template", 0, None, 2.0, 0.35), ("template", 1, 0, 5.0, 0.15))]
    return pl.DataFrame(rows, schema=PREFIXES_SCHEMA, orient="row")


def _starts_with_top(frame: pl.DataFrame, k: int) -> np.ndarray:
    """Rows whose first ``k`` blocks are the frame's most common ``k``-block prefix."""
    head = frame.select(pl.col("prefix_blocks").list.head(k).list.eval(pl.element().cast(pl.String))
                        .list.join(",").alias("h"), (pl.col("prefix_blocks").list.len() >= k).alias("full"))
    top = head.filter("full")["h"].value_counts(sort=True)[0, 0]
    return (head["full"] & (head["h"] == top)).to_numpy()


def test_regenerated_groups_keep_their_class_shares():
    rng = np.random.default_rng(3)
    n = 6000
    blocks = rng.integers(1, 16, n)
    frame = pl.DataFrame({"timestamp": np.sort(rng.uniform(0.0, 3600.0, n)), "client_id": ["x"] * n,
                          "input_tokens": blocks * BLOCK - 100})
    trace, _ = assign_prefix_blocks(frame, prefix_model(SimpleNamespace(prefixes=_table())), seed=1)
    values = trace["prefix_blocks"].explode().to_numpy().astype(np.int64)
    st = prefix_structure(values, blocks.astype(np.int64), timestamps=frame["timestamp"].to_numpy(),
                          clients=np.zeros(n, dtype=np.int64))
    fitted = fit_prefix_table(st, np.zeros(n, dtype=np.int64), ["x"], block_size=BLOCK)
    again, _ = assign_prefix_blocks(frame, prefix_model(SimpleNamespace(prefixes=fitted)), seed=2)
    fits = blocks >= 4  # ~4,750 rows of the classes 4-7 and 8-15, where T can start a prompt
    real, gen = _starts_with_top(trace, 5)[fits].mean(), _starts_with_top(again, 5)[fits].mean()
    # two binomial shares of ~4,750 rows: SE of the difference sqrt(2 p (1 - p) / n), 0.007 at
    # p = 0.136; four of them. Measured: 0.136 in the trace, 0.143 regenerated; with the pooled
    # suffix density 0.172 (+5 SE: T over-picked at the short end of each class)
    se = np.sqrt(2 * real * (1 - real) / fits.sum())
    assert abs(gen - real) < 4 * se
    # and the system prompt's share over all rows (S starts every T row too)
    s_real, s_gen = _starts_with_top(trace, 2).mean(), _starts_with_top(again, 2).mean()
    assert abs(s_gen - s_real) < 4 * np.sqrt(2 * s_real * (1 - s_real) / n)
