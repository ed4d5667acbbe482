r"""Where the aggregation SQL runs: DuckDB (the default) or Spark SQL (issue 21).

The queries of :mod:`servelab.analysis.aggregates` are written once, in DuckDB's SQL
(:data:`~servelab.analysis.aggregates.SQL`). An :class:`Engine` runs one of them and returns a
polars frame:

``duckdb`` (:class:`DuckDBEngine`)
    the text as is, on a DuckDB connection of the store (unchanged; no translation cost).
``spark`` (:class:`SparkEngine`)
    the text translated by sqlglot (``sqlglot.transpile(sql, read="duckdb", write="spark")``)
    and run by a Spark session: ``local[2]`` by default, ``local[*]``, a standalone master
    ``spark://host:7077``, or a Spark Connect server ``sc://host:15002``. Spark is optional
    (``pip install servelab[spark]``); it needs Java (Spark Connect: only on the server).

What differs per engine is named in :data:`DIALECTS` (the sqlglot dialect, how a temporary
table is made, how a polars frame is registered); everything else is the one SQL text. Fitting
runs in this process on the small per-cell frames either engine returns.
"""
from __future__ import annotations

import abc
import importlib.util
import os
import re
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

import polars as pl

__all__ = ["Engine", "DuckDBEngine", "SparkEngine", "DIALECTS", "ENGINES", "DEFAULT_SPARK_MASTER",
           "EngineUnavailableError", "spark_available", "translate_to_spark", "spark_session", "check_engine", "check_master"]

#: the engines by name (``--engine``)
ENGINES = ("duckdb", "spark")

#: Spark's master when none is given: local mode, two worker threads
DEFAULT_SPARK_MASTER = "local[2]"

#: what differs per engine: the sqlglot dialect the SQL is written in / translated to, and how a
#: temporary table of a query's rows is made (DuckDB: ``CREATE TEMP TABLE``; Spark: the query's
#: DataFrame cached and registered as a temporary view, so that later queries read it once)
DIALECTS = MappingProxyType({
    "duckdb": MappingProxyType({"sqlglot": "duckdb", "temp_table": "CREATE TEMP TABLE {name} AS {query}"}),
    "spark": MappingProxyType({"sqlglot": "spark", "temp_table": "cached DataFrame as temporary view {name}"}),
})


class EngineUnavailableError(RuntimeError):
    """The engine asked for cannot run here (e.g. pyspark or Java missing)."""


def check_engine(engine: str) -> str:
    """``engine`` if it is a known engine name, else ValueError naming the choices."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {list(ENGINES)}; got {engine!r}")
    return engine


def spark_available() -> str | None:
    """None when pyspark, sqlglot and Java are importable / on PATH, else the reason they are not."""
    missing = [m for m in ("pyspark", "sqlglot") if importlib.util.find_spec(m) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (pip install 'servelab[spark]')"
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "Java not found (no java on PATH and JAVA_HOME unset); Spark needs a JVM"
    return None


class Engine(abc.ABC):
    """Runs SQL written in DuckDB's dialect and returns polars frames (see the subclasses)."""

    name: str = ""

    @abc.abstractmethod
    def frame(self, sql: str) -> pl.DataFrame:
        """The rows of query ``sql`` as a polars frame."""
        raise NotImplementedError

    @abc.abstractmethod
    def create_temp_table(self, name: str, query: str) -> None:
        """Make temporary table ``name`` of the rows of ``query`` (replacing one of that name)."""
        raise NotImplementedError

    @abc.abstractmethod
    def drop_temp_table(self, name: str) -> None:
        """Drop temporary table ``name`` if it exists."""
        raise NotImplementedError

    @abc.abstractmethod
    def register(self, name: str, frame: pl.DataFrame) -> None:
        """Make the polars ``frame`` readable as table ``name``."""
        raise NotImplementedError

    @abc.abstractmethod
    def parquet_source(self, files, columns) -> str:
        """A table expression of the Parquet ``files`` (in order) with exactly ``columns``, for ``FROM``."""
        raise NotImplementedError

    @abc.abstractmethod
    def close(self) -> None:
        """Release what this engine holds (tables, connection)."""
        raise NotImplementedError


class DuckDBEngine(Engine):
    """The SQL as is, on a DuckDB connection ``con`` (the default engine)."""

    name = "duckdb"

    def __init__(self, con) -> None:
        self.con = con

    def frame(self, sql: str) -> pl.DataFrame:
        return self.con.sql(sql).pl()

    def create_temp_table(self, name: str, query: str) -> None:
        self.con.execute(f"DROP TABLE IF EXISTS {name}")
        self.con.execute(DIALECTS["duckdb"]["temp_table"].format(name=name, query=query))

    def drop_temp_table(self, name: str) -> None:
        self.con.execute(f"DROP TABLE IF EXISTS {name}")

    def register(self, name: str, frame: pl.DataFrame) -> None:
        self.con.register(name, frame.to_arrow())

    def parquet_source(self, files, columns) -> str:
        """``read_parquet('file')`` for one file (the text DuckDB always ran), else
        :func:`servelab.analysis.store.parquet_sql` of the list (no hive partition columns)."""
        from servelab.analysis.store import _sql_str, parquet_sql

        files = list(files)
        return f"read_parquet({_sql_str(files[0])})" if len(files) == 1 else parquet_sql(files)  # = aggregates.DIALECT["source"]

    def close(self) -> None:
        self.con.close()


_SPARK_CONF: Mapping[str, str] = MappingProxyType({
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "8",
    # DuckDB's semantics: x / 0 is NULL, not an error (the templates guard their divisions anyway)
    "spark.sql.ansi.enabled": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.driver.memory": "2g",
})


#: the session settings Spark Connect accepts from a client (runtime SQL settings; the rest are the
#: server's, set where the server starts: ``spark.driver.memory``, ``spark.ui.*``)
_CONNECT_CONF = ("spark.sql.session.timeZone", "spark.sql.shuffle.partitions", "spark.sql.ansi.enabled",
                 "spark.sql.execution.arrow.pyspark.enabled")


def check_master(master: str | None) -> str:
    """``master`` (default :data:`DEFAULT_SPARK_MASTER`) if it is a Spark master URL, else ValueError.

    Accepted: ``local``, ``local[N]``, ``local[*]``, ``spark://host:port`` (a standalone master),
    ``sc://host:port`` (Spark Connect), ``yarn``, ``k8s://...``.
    """
    master = DEFAULT_SPARK_MASTER if master is None else master
    ok = isinstance(master, str) and (
        master in ("local", "yarn") or re.fullmatch(r"local\[(\*|[1-9][0-9]*)(,[0-9]+)?\]", master) is not None
        or re.fullmatch(r"(spark|sc|k8s)://\S+", master) is not None)
    if not ok:
        raise ValueError("master must be a Spark master URL (local[N], local[*], spark://host:port, "
                         f"sc://host:port for Spark Connect); got {master!r}")
    return master


def spark_session(master: str | None = None, *, conf: Mapping[str, str] | None = None):
    """The Spark session of ``master`` (default :data:`DEFAULT_SPARK_MASTER`), one per process.

    ``master`` is a Spark master URL (``local[2]``, ``local[*]``, ``spark://host:7077``) or a
    Spark Connect URL (``sc://host:15002``: the session is a thin client; the queries run on the
    Connect server's cluster). A classic session of another master is stopped first (a process
    has one SparkContext); the active session of the same master is returned as it is (its
    settings are those it was made with, e.g. a test's lighter ones).

    Parameters
    ----------
    master : str, optional
        The master URL (checked by :func:`check_master`).
    conf : Mapping[str, str], optional
        Settings over servelab's (``spark.sql.shuffle.partitions`` and so on) for a new session;
        with an active session of ``master`` the runtime ones among them are set on it.

    Raises
    ------
    EngineUnavailableError
        If pyspark, sqlglot or Java is missing (Spark Connect needs no Java here).
    ValueError
        If ``master`` is not a Spark master URL.
    """
    master = check_master(master)
    settings = {**_SPARK_CONF, **(conf or {})}
    connect = master.startswith("sc://")
    missing = [m for m in ("pyspark", "sqlglot") if importlib.util.find_spec(m) is None]
    reason = (f"{' and '.join(missing)} not installed (pip install 'servelab[spark]')" if missing
              else None if connect else spark_available())
    if reason is not None:
        raise EngineUnavailableError(f"engine 'spark' is unavailable: {reason}")
    from pyspark.sql import SparkSession

    if connect:
        session = SparkSession.builder.remote(master).getOrCreate()
        for key in (*_CONNECT_CONF, *(k for k in (conf or {}) if k not in _CONNECT_CONF)):
            session.conf.set(key, settings[key])
        return session
    active = SparkSession.getActiveSession()
    if active is not None and active.sparkContext.master == master:
        for key, value in (conf or {}).items():
            if not active.conf.isModifiable(key):
                continue
            active.conf.set(key, value)
        return active
    if active is not None:
        active.stop()
    builder = SparkSession.builder.appName("servelab").master(master)
    for key, value in settings.items():
        builder = builder.config(key, value)
    if re.match(r"local\b|spark://(127\.0\.0\.1|localhost):", master):
        # Python tasks (generator.sharded) on this machine run this interpreter, which has servelab
        # (pyspark's default is python3 on PATH); a remote cluster sets PYSPARK_PYTHON itself
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return builder.getOrCreate()


def translate_to_spark(sql: str, *, transforms: Sequence[Callable] = ()) -> str:
    """``sql`` (DuckDB's dialect) in Spark SQL, by sqlglot.

    Besides sqlglot's translation, a number literal with a point or an exponent (``501.0``,
    ``1e-3``) becomes a DOUBLE: Spark reads it as a DECIMAL, whose division rounds to a few
    digits, where DuckDB divides in doubles.

    Parameters
    ----------
    sql : str
        One statement in DuckDB's dialect.
    transforms : sequence of callables
        sqlglot node transforms applied after that one (``tree.transform(f)`` each, in order), for
        functions sqlglot leaves untranslated (the Spark ingest's, :mod:`servelab.analysis.ingest.spark_sql`).

    Raises
    ------
    ValueError
        If ``sql`` is not exactly one statement.
    """
    import sqlglot
    from sqlglot import exp

    trees = sqlglot.parse(sql, read=DIALECTS["duckdb"]["sqlglot"])
    if len(trees) != 1:
        raise ValueError(f"sql must be one statement; got {len(trees)}")

    def as_double(node):
        if isinstance(node, exp.Literal) and node.is_number and any(ch in node.this.lower() for ch in ".e"):
            return exp.cast(node.copy(), exp.DataType.build("DOUBLE"))
        return node

    tree = trees[0].transform(as_double)
    for fn in transforms:
        tree = tree.transform(fn)
    return tree.sql(dialect=DIALECTS["spark"]["sqlglot"])


class SparkEngine(Engine):
    """The SQL translated by sqlglot to Spark SQL, run by ``session`` (a ``SparkSession``).

    The session is shared by the process (it starts in seconds); :meth:`close` drops only the
    temporary views this engine made.
    """

    name = "spark"

    def __init__(self, session) -> None:
        self.session = session
        self._views: list[str] = []
        self._cached: dict[str, object] = {}

    @staticmethod
    def translate(sql: str) -> str:
        """``sql`` (DuckDB's dialect) in Spark SQL, by sqlglot (:func:`translate_to_spark`)."""
        return translate_to_spark(sql)

    def frame(self, sql: str) -> pl.DataFrame:
        table = self.session.sql(self.translate(sql)).toArrow()
        return pl.from_arrow(table) if table.num_columns else pl.DataFrame()

    def create_temp_table(self, name: str, query: str) -> None:
        self.drop_temp_table(name)
        df = self.session.sql(self.translate(query)).cache()
        df.createOrReplaceTempView(name)
        self._views.append(name)
        self._cached[name] = df

    def drop_temp_table(self, name: str) -> None:
        df = self._cached.pop(name, None)
        if df is not None:
            df.unpersist()
        self.session.catalog.dropTempView(name)

    def register(self, name: str, frame: pl.DataFrame) -> None:
        self.session.createDataFrame(frame.to_pandas()).createOrReplaceTempView(name)
        self._views.append(name)

    def parquet_source(self, files, columns) -> str:
        """A temporary view of ``spark.read.parquet(*files)`` with exactly ``columns`` (Spark's
        partition discovery adds no ``day`` column: the files are named one by one, by absolute
        path, so a cluster's executors read them where they are, e.g. on a shared file system)."""
        paths = [os.path.abspath(str(f)) for f in files]
        name = f"servelab_requests_{len(self._views)}"
        self.session.read.parquet(*paths).select(*[f"`{c}`" for c in columns]).createOrReplaceTempView(name)
        self._views.append(name)
        return name

    def close(self) -> None:
        # newest first: a cached table is unpersisted while the views its plan reads still exist
        # (Spark Connect analyses the plan again on unpersist)
        for name in reversed(list(dict.fromkeys(self._views))):
            self.drop_temp_table(name)
        self._views.clear()
