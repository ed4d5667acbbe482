"""The aggregation SQL on a real Spark cluster started by the test (issue 21): standalone, and Spark Connect on request.

The module fixture starts, with :func:`servelab.analysis.spark_cluster.local_cluster`, a standalone
master and two workers (one core, 1 GB each) on 127.0.0.1 from pyspark's own launcher
(``bin/spark-class``); it waits at most :data:`START_TIMEOUT_S` for them and stops them when the
module ends. ONE test fits the pool once on DuckDB and once on the cluster and checks, from those
two runs, the pool and the aggregation queries the fit ran (client counts, trace gaps, arrival
cells, gap subsamples, value counts, log statistics: recorded as ``fit_pool`` calls them, so no
query runs twice on the cluster). With ``SERVELAB_SPARK_CONNECT=1`` (and the Connect client, ``pyspark[connect]``) the
fixture also starts a Spark Connect server (the workers then get two cores: the server's
application holds one of each) and a second test runs the queries through it; CI leaves it off to
keep the spark block short (the Connect server takes tens of seconds more to start).
Everything skips, saying why, without Java or pyspark, unless ``SERVELAB_REQUIRE_SPARK=1`` (the
CI), which turns a missing Spark into a failure.

Data are tiny (the 6,000-row synthetic store of ``test_engines``): these tests check that a
cluster gives the same results as DuckDB, not speed (``benchmarks/bench_engines.py`` does).
"""
from __future__ import annotations

import os

import polars as pl
import pytest

from servelab.analysis.engines import EngineUnavailableError
from servelab.analysis.spark_cluster import SHORT_JOB_JAVA_OPTIONS

pytestmark = [pytest.mark.spark, pytest.mark.slow]

#: the longest the fixture waits for the master, both workers or the Connect server
START_TIMEOUT_S = 240.0
REQUIRE = os.environ.get("SERVELAB_REQUIRE_SPARK") == "1"
#: start a Spark Connect server too (and run its test)
CONNECT = os.environ.get("SERVELAB_SPARK_CONNECT") == "1"
#: the session's settings on the cluster (tiny data, as in conftest's SPARK_TEST_CONF) but two
#: shuffle partitions, so that both workers' executors get tasks after a shuffle
CLUSTER_CONF = {"spark.sql.shuffle.partitions": "2", "spark.sql.adaptive.enabled": "false",
                "spark.sql.codegen.wholeStage": "false", "spark.driver.memory": "1g",
                "spark.driver.extraJavaOptions": SHORT_JOB_JAVA_OPTIONS,
                "spark.executor.extraJavaOptions": SHORT_JOB_JAVA_OPTIONS}


def _skip_or_fail(reason: str):
    if REQUIRE:
        pytest.fail(f"SERVELAB_REQUIRE_SPARK=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The running :class:`~servelab.analysis.spark_cluster.LocalCluster` (2 workers, Connect if asked for)."""
    from servelab.analysis.spark_cluster import local_cluster

    try:
        # 2 cores per worker with Connect: the Connect server's application holds one of each (spark_cluster docs)
        with local_cluster(workers=2, cores=2 if CONNECT else 1, memory="1g", connect=CONNECT, timeout_s=START_TIMEOUT_S,
                           log_dir=tmp_path_factory.mktemp("spark-cluster"),
                           java_options=SHORT_JOB_JAVA_OPTIONS) as running:
            yield running
            from pyspark.sql import SparkSession

            active = SparkSession.getActiveSession()
            if active is not None:
                active.stop()
    except EngineUnavailableError as err:
        _skip_or_fail(str(err))


def _check_same(store, master: str) -> None:
    from test_engines import _aggregates, _assert_same, _index

    index = _index(store)
    duck = _aggregates(store, index, "duckdb")
    spark = _aggregates(store, index, "spark_at:" + master)
    assert duck.keys() == spark.keys() and duck["arrival_cells"].height > 0
    for name in duck:
        _assert_same(f"{master}:{name}", duck[name], spark[name])


#: the aggregation queries whose results the ``recorded`` fixture keeps as ``fit_pool`` runs them
RECORDED = ("client_counts", "trace_gaps", "arrival_cells", "gap_samples", "value_counts", "log_stats")


def _as_frames(name: str, res) -> list[tuple[str, pl.DataFrame]]:
    """A recorded query's result as (name, frame) pairs (the TraceGaps totals and head apart)."""
    import numpy as np

    if isinstance(res, pl.DataFrame):
        return [(name, res)]
    if name == "gap_samples":
        return [(name, pl.DataFrame({"cidx": res[0], "w": res[1], "gap": res[2]}).with_row_index("k"))]
    totals = pl.DataFrame({k: [v] for k, v in vars(res).items() if k != "head"})
    return [(name, totals), (name + "_head", pl.DataFrame({"k": np.arange(res.head.size), "gap": res.head}))]


@pytest.fixture()
def recorded(monkeypatch):
    """What ``fit_pool`` computed with the queries of :data:`RECORDED`, per engine, in call order:
    ``{engine: [(query, frame), ...]}``, so that one fit per engine checks both the core aggregates
    and the pool (no second pass of the queries on the cluster)."""
    import servelab.fitting.pool_fit as pool_fit

    out: dict[str, list] = {}

    def wrap(name, fn):
        def call(src, *args, **kw):
            res = fn(src, *args, **kw)
            out.setdefault(src.engine.name, []).extend(_as_frames(name, res))
            return res
        return call

    for name in RECORDED:
        monkeypatch.setattr(pool_fit, name, wrap(name, getattr(pool_fit, name)))
    return out


@pytest.fixture()
def spark_at(monkeypatch):
    """Lets ``test_engines._aggregates`` open engine ``spark`` at a given master: ``"spark_at:URL"``."""
    import servelab.analysis.aggregates as agg

    real = agg.aggregate_source

    def at(store, index=None, *, engine="duckdb", **kw):
        if engine.startswith("spark_at:"):
            return real(store, index, engine="spark", spark_master=engine.split(":", 1)[1], **kw)
        return real(store, index, engine=engine, **kw)

    import test_engines

    monkeypatch.setattr(test_engines, "aggregate_source", at)


def test_standalone_cluster_same_aggregates_and_pool(cluster, recorded, tmp_path):
    from servelab.analysis.engines import spark_session
    from servelab.analysis.store import write_store
    from servelab.fitting.pool_fit import fit_pool
    from test_engines import _assert_same, _assert_same_pool, _pool_frames, _synthetic_frame

    session = spark_session(cluster.master, conf=CLUSTER_CONF)
    assert session.sparkContext.master == cluster.master
    store = write_store(_synthetic_frame(), tmp_path / "synthetic")
    duck = _pool_frames(fit_pool(store, seed=4, window_s="10m", data_window_s="1h"))
    spark = _pool_frames(fit_pool(store, seed=4, window_s="10m", data_window_s="1h", engine="spark",
                                  spark_master=cluster.master))
    assert duck["arrivals"].height > 0 and duck["data_fits"].height > 0
    # the core aggregates as the two fits computed them (every query: local mode, test_engines): client
    # counts, the trace's gaps, the jittered gaps' arrival cells and subsamples, value counts, log statistics
    on_duck, on_spark = recorded["duckdb"], recorded["spark"]
    assert [q for q, _ in on_duck] == [q for q, _ in on_spark] and set(RECORDED) <= {q for q, _ in on_duck}
    cells = dict(on_duck)["arrival_cells"]
    assert cells.height > 0 and cells["n_gaps"].sum() > 0
    for k, ((query, a), (_, b)) in enumerate(zip(on_duck, on_spark)):
        _assert_same(f"standalone:{query}#{k}", a, b)
    _assert_same_pool("standalone", duck, spark)
    # the work ran on the two workers' executors, not in the driver
    executors = session.sparkContext._jsc.sc().getExecutorMemoryStatus().size()
    assert executors == 3  # the driver's block manager plus one executor per worker


def test_spark_connect_same_aggregates(cluster, spark_at, tmp_path):
    if not CONNECT:
        pytest.skip("Spark Connect is tested with SERVELAB_SPARK_CONNECT=1 (off by default: its server starts slowly)")
    from servelab.analysis.store import write_store
    from test_engines import _synthetic_frame

    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()  # a classic session and a Connect one do not mix in a process
    if active is not None:
        active.stop()
    _check_same(write_store(_synthetic_frame(), tmp_path / "synthetic"), cluster.connect)
