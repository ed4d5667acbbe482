"""Generation sharded by client (generator.sharded, issue 21): the same rows, as a set, however sharded.

Pool: the shipped ServeGen m-small slice over 10 minutes where three of its clients are active
(one of them, client 1, has no dataset file upstream: its token columns are null). The reference
of every comparison is the single-machine :func:`generate_by_client`; each client's rows are also
checked against :func:`servelab.generator.generate.generate` of that client alone with a seed the
test derives itself from SHA-256.
"""
from __future__ import annotations

import hashlib
import warnings

import polars as pl
import pytest

from servelab.generator.generate import generate
from servelab.generator.sharded import (
    DAY_COLUMN,
    active_clients,
    client_groups,
    client_seed,
    generate_by_client,
    generate_shard,
    generate_sharded,
    spark_generate,
)

START, DURATION, SEED = 338_700.0, 600.0, 3


@pytest.fixture(scope="module")
def pool(raw_traces):
    from servelab.generator import MissingDatasetWarning, read_servegen

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingDatasetWarning)
        return read_servegen(raw_traces / "servegen" / "m-small")


@pytest.fixture(scope="module")
def reference(pool):
    return generate_by_client(pool, DURATION, seed=SEED, start=START)


def _rows(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame as a set of rows: sorted by every column."""
    return frame.sort(frame.columns, nulls_last=True)


def test_client_seed_is_sha256_of_seed_and_id():
    digest = hashlib.sha256(b"7\x00client-a").digest()
    assert client_seed(7, "client-a") == int.from_bytes(digest[:8], "big") // 2
    assert client_seed(7, "client-a") != client_seed(8, "client-a") != client_seed(7, "client-b")
    assert 0 <= client_seed(2**40, "x") < 2**63
    with pytest.raises(ValueError, match=r"seed must be a non-negative integer; got -1"):
        client_seed(-1, "a")
    with pytest.raises(ValueError, match=r"client_id must be a string; got 3"):
        client_seed(1, 3)


def test_reference_is_each_client_generated_alone(pool, reference):
    live = active_clients(pool, DURATION, start=START)
    assert live == ("0", "1", "14")  # windows of 338,400 and 339,000 s in chunk-*-trace.csv
    assert reference["client_id"].n_unique() == 3 and reference.height > 10_000
    for c in live:
        seed = int.from_bytes(hashlib.sha256(f"{SEED}\x00{c}".encode()).digest()[:8], "big") >> 1
        alone = generate(pool.select([c]), "pool", DURATION, start=START, seed=seed)
        mine = reference.filter(pl.col("client_id") == c)
        assert mine.height == alone.height > 0, c
        for col in alone.columns:
            assert mine[col].to_list() == alone[col].to_list(), (c, col)
    assert reference.filter(pl.col("client_id") == "1")["input_tokens"].null_count() > 0  # no dataset upstream
    assert reference["timestamp"].is_sorted()


@pytest.mark.parametrize("n_shards", [3])  # 2 shards: the CLI test below
def test_sharded_union_equals_single_machine(pool, reference, n_shards):
    shards = list(generate_sharded(pool, DURATION, seed=SEED, start=START, n_shards=n_shards))
    assert len(shards) == len(client_groups(list(pool.client_ids), n_shards))
    union = pl.concat(shards)
    assert _rows(union).equals(_rows(reference))
    # a client lives in exactly one shard
    owners = [set(s["client_id"].unique().to_list()) for s in shards]
    assert sum(len(o) for o in owners) == len(set().union(*owners)) == 3


def test_a_shard_does_not_depend_on_its_companions(pool, reference):
    alone = generate_shard(pool, ["14"], DURATION, seed=SEED, start=START)
    with_others = generate_shard(pool, ["1", "14", "33"], DURATION, seed=SEED, start=START)
    assert alone.equals(with_others.filter(pl.col("client_id") == "14"))
    assert alone.equals(reference.filter(pl.col("client_id") == "14"))
    other_seed = generate_shard(pool, ["14"], DURATION, seed=SEED + 1, start=START)
    assert not other_seed["timestamp"].equals(alone["timestamp"])


def test_groups_and_errors(pool):
    ids = [f"c{i}" for i in range(100)]
    groups = client_groups(ids, 4)
    assert sorted(c for g in groups for c in g) == sorted(ids)
    assert client_groups(ids[::-1], 4) == tuple(tuple(reversed(g)) for g in groups)  # order-free membership
    with pytest.raises(ValueError, match=r"n_groups must be a positive integer; got 0"):
        client_groups(ids, 0)
    with pytest.raises(ValueError, match=r"clients must be ids of the pool; got unknown \['nope'\]"):
        generate_shard(pool, ["nope"], DURATION, seed=1, start=START)
    with pytest.raises(ValueError, match=r"duration must be a positive number of seconds; got -5"):
        generate_shard(pool, ["14"], -5, seed=1, start=START)
    with pytest.raises(ValueError, match=r"n_tasks must be a positive integer; got 0"):
        spark_generate(pool, DURATION, seed=1, output="unused", n_tasks=0)
    assert generate_shard(pool, ["33"], DURATION, seed=1, start=START).height == 0  # no window of 33 then


@pytest.mark.spark
def test_spark_generate_writes_the_same_rows_partitioned_by_day(raw_traces, reference, tmp_path, spark_local):
    """``servelab generate --shards 3 --spark-master local[2]`` (spark_generate, 3 tasks) writes
    generate_by_client's rows."""
    import json

    from click.testing import CliRunner

    from servelab.cli import main
    from servelab.generator.sharded import read_sharded

    out = tmp_path / "workload"
    run = CliRunner().invoke(main, ["generate", str(raw_traces / "servegen" / "m-small"), "--rate", "pool",
                                    "--duration", str(DURATION), "--start", str(START), "--seed", str(SEED),
                                    "--shards", "3", "--spark-master", "local[2]", "-o", str(out)])
    assert run.exit_code == 0, run.output
    info = json.loads(next(line for line in run.output.splitlines() if line.startswith("{")))
    assert info["clients"] == 3 and info["requests"] == reference.height and info["spark_master"] == "local[2]"
    # timestamps are seconds from the workload's start (as generate() gives them): the 10 minutes are day 1970-01-01
    assert [p.name for p in out.glob(f"{DAY_COLUMN}=*")] == [f"{DAY_COLUMN}=1970-01-01"]
    assert reference["timestamp"].max() < 600
    got = read_sharded(out)
    assert DAY_COLUMN not in got.columns and got.columns == reference.columns
    assert _rows(got.cast(reference.schema)).equals(_rows(reference))


def test_sharded_equals_generate_in_law_not_row_by_row(pool, reference):
    """Why sharded generation is not generate() row by row, and what it equals instead.

    generate() draws each time unit of ALL clients from one stream (generator/stream.py,
    ``SeedSequence(seed, spawn_key=(1, unit))``), so which numbers a client gets depends on the
    other clients of the unit: no split by client can give its rows. Per client the law is the
    same (the same renewal process and window PMFs), so for the clients with data the two workloads'
    lengths are draws of one distribution; a client without any data (``"1"``: no dataset
    upstream) differs by design: generate() lends it the rate-weighted aggregate of the other
    clients, a shard (which sees only its own clients) leaves its lengths null.
    """
    from scipy import stats

    whole = generate(pool, "pool", DURATION, start=START, seed=SEED)
    assert whole.columns == reference.columns
    assert sorted(whole["client_id"].unique()) == sorted(reference["client_id"].unique()) == ["0", "1", "14"]
    assert not _rows(whole).equals(_rows(reference))  # not the same rows
    # one data window (21,600 s) covers the 600 s, so a client's lengths are i.i.d. from one PMF each
    # way; two-sample KS at n ~ 45,000 per side detects a shift of the CDF by ~0.01 at this level
    for c in ("0", "14"):
        for col in ("input_tokens", "output_tokens"):
            a = whole.filter(pl.col("client_id") == c)[col].to_numpy()
            b = reference.filter(pl.col("client_id") == c)[col].to_numpy()
            assert stats.ks_2samp(a, b).pvalue > 1e-3, (c, col)
    # positive control: the same test tells two clients' input lengths apart
    x0 = reference.filter(pl.col("client_id") == "0")["input_tokens"].to_numpy()
    x14 = whole.filter(pl.col("client_id") == "14")["input_tokens"].to_numpy()
    assert stats.ks_2samp(x0, x14).pvalue < 1e-6
    # the client without data: borrowed lengths in generate(), nulls in the shard
    assert whole.filter(pl.col("client_id") == "1")["input_tokens"].null_count() == 0
    assert reference.filter(pl.col("client_id") == "1")["input_tokens"].null_count() == \
        reference.filter(pl.col("client_id") == "1").height > 0


def test_cli_one_machine_equals_shards_as_a_set_of_rows(pool, raw_traces, tmp_path):
    """``servelab generate --streams client`` (one process) and ``--shards 2`` (two client groups,
    Parquet by day) write the same set of rows, and those of generate() of each client alone with
    its SHA-256 seed (the test's own derivation; 60 s across 339,000 s, where client 1, without
    token data, starts a window beside clients 0 and 14)."""
    from click.testing import CliRunner

    from servelab.cli import main
    from servelab.generator.sharded import read_sharded

    pool_dir = str(raw_traces / "servegen" / "m-small")
    start = 338_970.0
    common = [pool_dir, "--rate", "pool", "--duration", "60", "--start", str(start), "--seed", str(SEED)]
    one, shards = tmp_path / "one.parquet", tmp_path / "shards"
    run = CliRunner().invoke(main, ["generate", *common, "--streams", "client", "-o", str(one)])
    assert run.exit_code == 0, run.output
    run = CliRunner().invoke(main, ["generate", *common, "--shards", "2", "-o", str(shards)])
    assert run.exit_code == 0, run.output
    assert '"streams": "client", "shards": 2' in run.output
    single, union = pl.read_parquet(one), read_sharded(shards)
    assert single.height > 1000 and sorted(single["client_id"].unique()) == ["0", "1", "14"]
    assert len(list(shards.glob(f"{DAY_COLUMN}=1970-01-01/shard-*.parquet"))) == 2
    assert _rows(union).equals(_rows(single))
    seed14 = int.from_bytes(hashlib.sha256(f"{SEED}\x0014".encode()).digest()[:8], "big") >> 1
    alone = generate(pool.select(["14"]), "pool", 60.0, start=start, seed=seed14)
    assert single.filter(pl.col("client_id") == "14")["timestamp"].to_list() == alone["timestamp"].to_list()


@pytest.mark.parametrize(("extra", "message"), [
    (["--streams", "client", "--rate", "pool*2"], "give --rate pool; got 'pool total x 2'"),
    (["--shards", "2", "--rate", "pool", "--clients", "5"], "--shards draws the pool's own clients"),
    (["--shards", "2", "--rate", "pool", "--streams", "unit"], "drop --streams unit"),
    (["--spark-master", "local[2]", "--rate", "pool"], "give --shards"),
    (["--shards", "2", "--rate", "pool", "--format", "csv"], "got --format csv"),
])
def test_cli_per_client_streams_refuse_what_does_not_apply(raw_traces, tmp_path, extra, message):
    from click.testing import CliRunner

    from servelab.cli import main

    run = CliRunner().invoke(main, ["generate", str(raw_traces / "servegen" / "m-small"), "--duration", "60",
                                    "--seed", "1", "-o", str(tmp_path / "x"), *extra])
    assert run.exit_code == 2 and message in run.output, run.output
