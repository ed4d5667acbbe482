"""Known truth for a new client's length laws in the extension (issue 17 item 2; the full check,
10 seeds, is ``benchmarks/bench_validate.py --parts newlengths``).

``benchmarks/bench_validate.simulate_typed_churn`` draws a churning population of two length
types whose inputs never overlap (type A: median 60 tokens, 0.01 req/s; type B: median 3000,
0.0033 req/s; half of the clients each). The extension gives each new client the length laws of
a client drawn among those whose request intensity is nearest its template's
(:func:`servelab.generator.extend.extend_pool`, "Length laws"). The types' intensities do not
overlap here, so a new client must take its template's type (and with it the type's rate: type-A new
clients send about 3x what type-B ones do, as the real ones; the earlier rule, a client drawn by its
share of the fitted span's requests, gave 1.04x against 2.67x real in ``--parts newlengths``), each
new client must keep one type's law, and each type's law must be that type's.
"""
from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from servelab.analysis.store import write_store
from servelab.fitting.pool_fit import fit_pool
from servelab.generator.extend import NEW_CLIENT_PREFIX, extend_pool
from servelab.generator.grid import frame_of
from servelab.generator.generate import generate

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_validate import DAY, LENGTH_TYPES, TYPE_CUT, simulate_typed_churn  # noqa: E402


def _types_follow_templates(ext, truth: pl.DataFrame, per: pl.DataFrame) -> None:
    """A new client's type is its template's (read from the clients' notes: "... from template X,
    length laws of Y"; templates seen for a window or two have noisy intensities: 93% measured),
    and type-A new clients send more than twice what type-B ones do (rates 3:1; the draw by request
    share gave about 1:1)."""
    notes = (frame_of(ext.clients).filter(pl.col("client_id").str.starts_with(NEW_CLIENT_PREFIX))
             .select("client_id", template=pl.col("note").str.extract(r"from template (\S+),")))
    typed = (per.join(notes, on="client_id", how="inner")
             .join(truth.select(pl.col("client_id").alias("template"), "type"), on="template", how="inner"))
    assert typed.height == per.height
    same = ((typed["a"] > 0.5) == (typed["type"] == "A")).mean()
    assert same >= 0.75, same  # the draw by request share: about 1/2 (sd ~0.07 at 50 clients)
    means = typed.group_by(pl.col("a") > 0.5).agg(pl.col("n").mean()).sort("a")["n"].to_list()
    assert means[1] > 2 * means[0], means


def _leaks(per: pl.DataFrame, shrink: bool) -> None:
    """Every new client keeps one type's law (the two types' inputs never overlap); with length
    shrinkage up to its template's 1 - lambda (the population mean holds both types): the two types
    are found (k about 8 here), so templates of tens of requests keep most of theirs."""
    mixed = per.filter((pl.col("a") > 0) & (pl.col("a") < 1))
    if not shrink:
        assert mixed.height == 0
        return
    leak = per.select(pl.min_horizontal("a", 1 - pl.col("a")).alias("leak"))["leak"]
    assert leak.max() < 0.25 and leak.mean() < 0.05


@pytest.mark.parametrize("shrink", [False, True])
def test_new_clients_take_length_laws_of_their_templates_kind_and_keep_them(shrink):
    frame, truth = simulate_typed_churn(3, days=2.0, n_initial=10, new_per_day=60.0, mean_life_days=0.5)
    split = DAY
    before = frame.filter(pl.col("timestamp") < split)
    with tempfile.TemporaryDirectory() as tmp:
        pool = fit_pool(write_store(before, Path(tmp) / "b", source="typed", fmt="simulated"), conversations=False,
                        length_shrinkage=shrink)
    ext, info = extend_pool(pool, 2 * DAY, seed=3)
    gen = generate(ext, "pool", DAY, start=split, seed=3, conversations=False, max_requests=None)
    new = gen.filter(pl.col("client_id").str.starts_with(NEW_CLIENT_PREFIX))
    per = new.group_by("client_id").agg(a=(pl.col("input_tokens") < TYPE_CUT).mean(), n=pl.len())
    assert per.height >= 30  # ~60 a day fitted (the arrivals after the 6-h grace)
    _leaks(per, shrink)
    _types_follow_templates(ext, truth, per)
    # each type's generated inputs follow its law: log-medians within 5% of the truth (the sources'
    # empirical PMFs hold a few hundred requests each: the median's sd is ~2% in log per source)
    for ty, sel in (("A", pl.col("input_tokens") < TYPE_CUT), ("B", pl.col("input_tokens") >= TYPE_CUT)):
        x = new.filter(sel)["input_tokens"].to_numpy()
        assert x.size > 100
        assert float(np.median(x)) == pytest.approx(LENGTH_TYPES[ty][0], rel=0.05)


@pytest.mark.parametrize("shrink", [False, True])
def test_new_clients_conversation_inputs_follow_their_length_laws_not_their_template(shrink):
    # the same population with each request its own (single-turn) conversation: the pool then has
    # first-turn input PMFs (conversation_pmfs), which the generator draws first turns from. A new
    # client's must be its length laws' client's, as its data PMFs are: copied from its template
    # (another client, of the other type half the time, and seen for a few requests), a new client's
    # inputs were a mix of two types' or one template's few values (the sparse 23-day store: 480
    # requests all of input 309)
    frame, truth = simulate_typed_churn(3, days=2.0, n_initial=10, new_per_day=60.0, mean_life_days=0.5)
    # every client's second request follows up its first (so every client has turns and inter-turn
    # times, and the pool fits the conversations' input PMFs, which need follow-ups); the rest are
    # single-turn conversations
    rank = pl.int_range(pl.len()).over("client_id")
    frame = frame.with_columns(conversation_id=pl.when(rank <= 1).then(pl.col("client_id") + "-0")
                               .otherwise(pl.col("client_id") + "-" + rank.cast(pl.String)))
    split = DAY
    before = frame.filter(pl.col("timestamp") < split)
    with tempfile.TemporaryDirectory() as tmp:
        pool = fit_pool(write_store(before, Path(tmp) / "b", source="typed", fmt="simulated"), length_shrinkage=shrink)
    assert pool.conversation_pmfs.filter(pl.col("quantity") == "first_input").height > 0
    ext, _ = extend_pool(pool, 2 * DAY, seed=3)
    gen = generate(ext, "pool", DAY, start=split, seed=3, max_requests=None)
    new = gen.filter(pl.col("client_id").str.starts_with(NEW_CLIENT_PREFIX))
    per = new.group_by("client_id").agg(a=(pl.col("input_tokens") < TYPE_CUT).mean(), n=pl.len(),
                                        distinct=pl.col("input_tokens").n_unique())
    assert per.height >= 30
    # one type per new client, as without conversations, and its template's type (the rule)
    _leaks(per, shrink)
    _types_follow_templates(ext, truth, per)
    # each type's inputs follow its law (log-median within 5%, as above), not a template's few values
    for ty, sel in (("A", pl.col("input_tokens") < TYPE_CUT), ("B", pl.col("input_tokens") >= TYPE_CUT)):
        x = new.filter(sel)["input_tokens"].to_numpy()
        assert x.size > 100
        assert float(np.median(x)) == pytest.approx(LENGTH_TYPES[ty][0], rel=0.05)
