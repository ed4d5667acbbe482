"""Generated prompt blocks (generator/prefixes.py): cache behaviour, structure, chunks, pool table, exports."""
from __future__ import annotations

import hashlib
import json
import math
import warnings

import numpy as np
import polars as pl
import pytest
from _prefix_trace import BLOCK, S_LEN, brute_infinite, brute_lru, build_trace, read_mooncake

from servelab.analysis.ingest import ingest
from servelab.analysis.store import open_store, write_store
from servelab.fitting.pool_fit import fit_pool
from servelab.generator.exceptions import GenerationError, PoolWarning
from servelab.generator.exports import export_workload
from servelab.generator.generate import generate
from servelab.generator.pool import ClientPool
from servelab.generator.prefixes import PrefixState, assign_prefix_blocks, prefix_model

DURATION = 3600.0


@pytest.fixture(scope="module")
def trace():
    return build_trace()


@pytest.fixture(scope="module")
def pool(trace, tmp_path_factory):
    path = tmp_path_factory.mktemp("prefix") / "store"
    write_store(trace.drop("structure"), path)
    return fit_pool(open_store(path))


@pytest.fixture(scope="module")
def workload(pool):
    return generate(pool, "pool", DURATION, seed=3)


def test_cache_behaviour_matches_fitted_trace(trace, workload, tmp_path):
    """Counted by brute force (Python sets and an OrderedDict LRU) on the exported Mooncake file.

    Tolerance 0.04: a request's hit share has sd about 0.4 here, so each trace's hit rate
    (about 3,200 requests) has a standard error near 0.4 / sqrt(3200) = 0.007; four standard
    errors of the difference of two is 0.04. Across seeds 1-3 the generated rates varied by 0.01.
    """
    path = export_workload(workload, tmp_path / "w.jsonl", fmt="mooncake")
    generated = read_mooncake(path)
    real = trace["prefix_blocks"].to_list()
    assert abs(brute_infinite(generated) - brute_infinite(real)) < 0.04
    caps = (256, 2048, 16384)
    lru_real, lru_gen = brute_lru(real, caps), brute_lru(generated, caps)
    for c in caps:
        assert abs(lru_gen[c] - lru_real[c]) < 0.04, (c, lru_gen[c], lru_real[c])
    # a positive control: the same workload with conversation-only ids (servelab's old export)
    # misses the system prompts and templates, and the check above would catch it
    plain = read_mooncake(export_workload(workload.drop("prefix_blocks"), tmp_path / "p.jsonl", fmt="mooncake"))
    assert brute_infinite(real) - brute_infinite(plain) > 0.1


def test_generated_structure(workload):
    w = workload.with_row_index("row")
    lists = w["prefix_blocks"].to_list()
    # blocks consistent with the input length
    want = np.ceil(w["input_tokens"].to_numpy() / BLOCK).astype(int)
    assert [len(x) for x in lists] == want.tolist()
    # a follow-up starts with its parent's full blocks (the fitted history gap is exactly 1)
    follow = w.filter(pl.col("parent_id").is_not_null())
    assert follow.height > 100
    for child, parent in zip(follow["row"].to_list(), follow["parent_id"].cast(pl.Int64).to_list()):
        k = min(len(lists[child]), len(lists[parent])) - 1
        assert lists[child][:k] == lists[parent][:k]
    # the system prompt: the most common first 6 blocks of A and of B are the same ids
    heads = w.filter(pl.col("prefix_blocks").list.len() >= S_LEN).select(
        "client_id", pl.col("prefix_blocks").list.head(S_LEN).alias("head"))
    top = {c: heads.filter(pl.col("client_id") == c)["head"].value_counts(sort=True)["head"][0].to_list()
           for c in ("A", "B", "C")}
    assert top["A"] == top["B"]
    assert top["C"][:S_LEN] != top["A"]
    # and its share among A's first turns is about the fitted one (40 % + nested template 20 %)
    a_first = w.filter((pl.col("client_id") == "A") & pl.col("parent_id").is_null())
    share = a_first.filter(pl.col("prefix_blocks").list.head(S_LEN) == pl.lit(top["A"])).height / a_first.height
    assert abs(share - 0.6) < 4 * math.sqrt(0.24 / a_first.height)


def test_same_seed_same_bytes(pool, tmp_path):
    digests = []
    for i, seed in enumerate((11, 11, 12)):
        path = tmp_path / f"w{i}.parquet"
        generate(pool, "pool", 600.0, seed=seed).write_parquet(path)
        digests.append(hashlib.sha256(path.read_bytes()).hexdigest())
    assert digests[0] == digests[1] != digests[2]


def test_streamed_blocks_do_not_depend_on_chunk_size(pool, workload, tmp_path):
    """The streamed writer (generate_to) gives the prompt blocks of generate() for any chunk size."""
    from servelab.generator.writers import generate_to

    assert "prefix_blocks" in workload.columns
    digests = set()
    for chunk_s in (None, 250.0):  # one chunk and many (600 s dropped: 0.45 s, nothing new)
        path = tmp_path / f"c{chunk_s}.parquet"
        generate_to(path, pool, "pool", DURATION, seed=3, chunk_s=chunk_s)
        streamed = pl.read_parquet(path)
        assert streamed["prefix_blocks"].to_list() == workload["prefix_blocks"].to_list()
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
    assert len(digests) == 1


def test_chunks_carry_state(pool, workload):
    model = prefix_model(pool)
    frame = workload.drop("prefix_blocks")
    cuts = np.linspace(0, frame.height, 9).astype(int)
    state, parts = None, []
    for a, b in zip(cuts[:-1], cuts[1:]):  # eight time chunks
        part, new = assign_prefix_blocks(frame.slice(a, b - a), model, seed=5, state=state)
        assert new.rows == b and new.chunk == (0 if state is None else state.chunk) + 1
        assert new.tail["timestamp"].min() >= part["timestamp"].max() - new.horizon_s
        if state is not None:
            assert new.next_block > state.next_block
        state = new
        parts.append(part)
    both = pl.concat(parts)["prefix_blocks"].to_list()
    assert [len(x) for x in both] == np.ceil(frame["input_tokens"].to_numpy() / BLOCK).astype(int).tolist()
    # follow-ups whose parents are in an earlier chunk start with the parent's blocks
    chunk = np.searchsorted(cuts, np.arange(frame.height), side="right") - 1
    links = frame.with_row_index("row").filter(pl.col("parent_id").is_not_null())
    across = [(c, p) for c, p in zip(links["row"].to_list(), links["parent_id"].cast(pl.Int64).to_list())
              if chunk[p] < chunk[c]]
    assert len(across) > 10
    for c, p in across:
        k = min(len(both[c]), len(both[p])) - 1
        assert both[c][:k] == both[p][:k]
    # the system prompt keeps its ids in every chunk
    heads = {tuple(x[:S_LEN]) for x in both[:cuts[1]] if len(x) >= S_LEN}
    later = [tuple(x[:S_LEN]) for x in both[cuts[-2]:] if len(x) >= S_LEN]
    assert sum(h in heads for h in later) > 0.3 * len(later)


def test_pool_table_round_trip_and_absence(pool, tmp_path):
    pool.save(tmp_path / "p")
    back = ClientPool.load(tmp_path / "p")
    assert back.prefixes.equals(pool.prefixes)
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    assert manifest["tables"]["prefixes"]["rows"] == pool.prefixes.height
    # a pool without a prefix model: no file, an empty table, no prefix_blocks generated
    bare = pool.replace(prefixes=None)
    bare.save(tmp_path / "q")
    assert not (tmp_path / "q" / "prefixes.parquet").exists()
    loaded = ClientPool.load(tmp_path / "q")
    assert loaded.prefixes.height == 0
    assert "prefix_blocks" not in generate(loaded, "pool", 600.0, seed=1).columns
    # ServeGen's format has no prefix model: the export says what it drops
    with pytest.warns(PoolWarning, match="'prefixes' table"):
        pool.to_servegen(tmp_path / "sg")
    with warnings.catch_warnings():  # no prefix model, no word of one (length shrinkage has its own warning)
        warnings.filterwarnings("error", message=".*'prefixes' table", category=PoolWarning)
        bare.to_servegen(tmp_path / "sg2")


def test_exports_keep_blocks(workload, tmp_path):
    blocks = workload["prefix_blocks"].to_list()
    pq_path = export_workload(workload, tmp_path / "w.parquet", fmt="parquet")
    assert pl.read_parquet(pq_path)["prefix_blocks"].to_list() == blocks
    assert read_mooncake(export_workload(workload, tmp_path / "w.jsonl", fmt="mooncake")) == blocks
    bl = export_workload(workload, tmp_path / "b.jsonl", fmt="bailian")
    rows = [json.loads(line) for line in bl.read_text().splitlines()]
    assert [r["hash_ids"] for r in rows] == blocks
    store = ingest(bl, fmt="bailian", output=tmp_path / "store", progress=False)
    back = pl.read_parquet(store.requests_path).sort("request_id")
    assert back["prefix_blocks"].to_list() == blocks
    assert back["parent_id"].is_not_null().sum() == workload["parent_id"].is_not_null().sum()


def test_synthetic_clients_and_unknown_clients(pool, workload):
    # synthetic copies of a pool client (clients=N) keep its structure: the system prompt's ids
    # are shared by the copies of A and of B
    w = generate(pool, "pool", 1200.0, seed=4, clients=6)
    heads = (w.filter(pl.col("prefix_blocks").list.len() >= S_LEN)
             .group_by(pl.col("prefix_blocks").list.head(S_LEN).alias("head")).agg(pl.col("client_id").unique())
             .sort(pl.col("client_id").list.len(), descending=True))
    assert sorted(heads["client_id"][0].to_list()) == ["A~0", "A~1", "B~0", "B~1"]
    # a client the model does not describe: first turns are all fresh blocks
    model = prefix_model(pool)
    unknown = workload.drop("prefix_blocks").with_columns(pl.lit("nobody").alias("client_id"))
    out, _ = assign_prefix_blocks(unknown, model, seed=1)
    first = out.filter(pl.col("parent_id").is_null())["prefix_blocks"].explode()
    assert first.is_unique().all()
    assert first.min() >= model.first_fresh


def test_errors(pool, workload):
    model = prefix_model(pool)
    with pytest.raises(GenerationError, match=r"need columns \['input_tokens'\]"):
        assign_prefix_blocks(workload.drop("input_tokens"), model, seed=1)
    with pytest.raises(GenerationError, match="seed must be an integer; got 1.5"):
        assign_prefix_blocks(workload, model, seed=1.5)
    with pytest.raises(GenerationError, match="sorted by timestamp"):
        assign_prefix_blocks(workload.reverse(), model, seed=1)
    with pytest.raises(GenerationError, match="horizon_s must be"):
        PrefixState.start(model, horizon_s=-1.0)
    mixed = pool.replace(prefixes=pool.prefixes.with_columns(
        pl.when(pl.col("client_id") == "A").then(256).otherwise(512).alias("block_size")))
    with pytest.raises(GenerationError, match="one positive block_size"):
        prefix_model(mixed)
    odd = pool.replace(prefixes=pool.prefixes.with_columns(
        pl.when(pl.col("kind") == "template").then(pl.lit("tmpl")).otherwise(pl.col("kind")).alias("kind")))
    with pytest.raises(GenerationError, match=r"unknown kinds \['tmpl'\]"):
        prefix_model(odd)
    over = pool.replace(prefixes=pool.prefixes.with_columns(
        pl.when(pl.col("kind") == "shared").then(1.5).otherwise(pl.col("probability")).alias("probability")))
    with pytest.raises(GenerationError, match="probability in \\[0, 1\\].*got value 6.0, probability 1.5"):
        prefix_model(over)


@pytest.mark.shared
def test_real_mooncake_trace_regression(shared_data, tmp_path):
    """On the real Mooncake trace (when ../shared is present): a pool fitted on it, workloads
    generated over its duration (seeds 1-3) and exported as Mooncake JSONL, counted by brute force.
    Issue 15's target is 5 points at every capacity for one workload; a single seed misses it now and
    then (``bench_prefix_seeds.py``: 10 of seeds 1-12 within 5 points at every capacity, mean worst
    distance 0.036), so this checks the expected curve: the mean over three seeds within 5 points at
    4096 / 16384 / 65536 blocks (measured -0.000 / -0.043 / -0.034 with the PMF bins of ratio
    1.0125; +0.038 / -0.016 / -0.024 with 1.05; seed sd about 0.02, 0.012 for a mean of three), and
    far closer than conversation-only ids (the export before issue 15)."""
    src = shared_data / "mooncake" / "synthetic_trace.jsonl"
    store = ingest(src, fmt="mooncake", output=tmp_path / "store", progress=False)
    pool = fit_pool(store)
    real = [json.loads(line)["hash_ids"] for line in src.read_text().splitlines() if line.strip()]
    caps = (4096, 16384, 65536)
    lr = brute_lru(real, caps)
    diffs = []
    for seed in (1, 2, 3):
        work = generate(pool, "pool", 1022.0, seed=seed)
        lo = brute_lru(read_mooncake(export_workload(work, tmp_path / f"w{seed}.jsonl", fmt="mooncake")), caps)
        diffs.append([lo[c] - lr[c] for c in caps])
        if seed == 1:
            plain = read_mooncake(export_workload(work.drop("prefix_blocks"), tmp_path / "p.jsonl", fmt="mooncake"))
            lp = brute_lru(plain, caps)
    assert np.max(np.abs(np.mean(diffs, axis=0))) < 0.05, diffs
    assert max(abs(lp[c] - lr[c]) for c in caps) > 0.2
