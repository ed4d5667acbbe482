"""Shared fixtures: a seeded ``rng``, the shipped samples, and ``../shared`` when present.

Test modules never import from this file (``from tests.conftest import ...``) or from each other:
``tests`` is not a package, so such imports only work from the repository root. A test module
that needs a path computes it from its own ``__file__`` (e.g. ``Path(__file__).resolve().parents[1]
/ "data"``) and the suite collects from any directory; tests/test_layers.py checks this.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from servelab.analysis.spark_cluster import SHORT_JOB_JAVA_OPTIONS
from servelab.samples import RAW_TRACES

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
TEST_DATA = Path(__file__).resolve().parent / "data"

#: the Spark tests' master: local mode, two worker threads (the machine's cores)
SPARK_TEST_MASTER = "local[2]"
#: the Spark tests' settings over servelab's (analysis.engines): their data are tiny (thousands of
#: rows), so one shuffle partition, no adaptive re-planning (a job per shuffle stage) and no
#: whole-stage code generation (a compile per query); on the 6,000-row synthetic store of
#: test_engines this ran the 23 queries in 29.5 s against 77 s with the defaults (load 10, local[2]).
#: What users get is servelab's defaults; the results must not depend on these (same SQL semantics).
#: The driver's JVM (started once per process, by the first Spark test) and the executors' run
#: with SHORT_JOB_JAVA_OPTIONS (client compiler only, serial GC: about half the CPU on short jobs).
SPARK_TEST_CONF = {"spark.sql.shuffle.partitions": "1", "spark.sql.adaptive.enabled": "false",
                   "spark.sql.codegen.wholeStage": "false", "spark.driver.memory": "1g",
                   "spark.driver.extraJavaOptions": SHORT_JOB_JAVA_OPTIONS,
                   "spark.executor.extraJavaOptions": SHORT_JOB_JAVA_OPTIONS}


@pytest.fixture
def rng() -> np.random.Generator:
    """A fixed-seed generator: every statistical test is reproducible, never a seed per run."""
    return np.random.default_rng(20251123)


@pytest.fixture(scope="session")
def raw_traces() -> Path:
    return RAW_TRACES


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests that need it skip, saying so, when it is absent."""
    path = SHARED / "data"
    if not path.is_dir():
        pytest.skip(f"../shared/data not found at {path} (optional heavy check)")
    return path


def pytest_collection_modifyitems(config, items):
    """The standalone-cluster Spark tests last: their session replaces the shared local one."""
    items.sort(key=lambda item: item.path.name == "test_spark_cluster.py")


@pytest.fixture(scope="session")
def spark_local():
    """The process's local Spark session (:data:`SPARK_TEST_MASTER`, :data:`SPARK_TEST_CONF`), made
    once and shared by every ``spark`` test (``spark_session("local[2]")`` returns it as it is).

    Skips, saying why, without pyspark, sqlglot or Java, unless ``SERVELAB_REQUIRE_SPARK=1`` (the
    CI), where a missing Spark fails.
    """
    from servelab.analysis.engines import spark_available, spark_session

    reason = spark_available()
    if reason is not None:
        if os.environ.get("SERVELAB_REQUIRE_SPARK") == "1":
            pytest.fail(f"SERVELAB_REQUIRE_SPARK=1 but engine 'spark' is unavailable: {reason}")
        pytest.skip(f"engine 'spark': {reason}")
    session = spark_session(SPARK_TEST_MASTER, conf=SPARK_TEST_CONF)
    yield session
    from pyspark.sql import SparkSession

    if SparkSession.getActiveSession() is session:
        session.stop()
