"""A throw-away Spark standalone cluster on this machine, from pyspark's own launcher (issue 21).

:func:`local_cluster` starts a standalone master and ``workers`` workers on 127.0.0.1 (free
ports, ``bin/spark-class`` of the installed pyspark, each process in its own process group), and
optionally a Spark Connect server against that master (``bin/spark-submit`` of
``SparkConnectServer``); it waits, bounded by ``timeout_s``, until the master reports every
worker alive, and stops them all when the block ends. The tests (``tests/analysis/test_spark_cluster.py``)
and ``benchmarks/bench_engines.py`` use it; a real deployment starts its cluster its own way (README,
"On a cluster").

This module starts and stops processes; it runs no query.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from servelab.analysis.engines import EngineUnavailableError, spark_available

__all__ = ["LocalCluster", "local_cluster", "ClusterStartError", "SHORT_JOB_JAVA_OPTIONS"]

#: JVM options for short runs on tiny data (the tests): the client compiler only (no C2 compiles of
#: code that runs a few times) and the serial collector (no parallel GC threads). Measured on this
#: 2-core machine, the standalone-cluster test's steps (cluster start, session, fit_pool on DuckDB
#: and on the cluster) took 62.5 user CPU-s with them against 133.6 without (264 s vs 413 s wall,
#: run side by side at load ~15). Not for real workloads: C2 is what makes long queries fast.
SHORT_JOB_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


class ClusterStartError(RuntimeError):
    """The cluster did not come up (a process exited, or the wait timed out); the message has its logs' tails."""


@dataclass(frozen=True)
class LocalCluster:
    """A running local cluster: its master URL, Spark Connect URL (None if not started) and log folder."""

    master: str
    connect: str | None
    workers: int
    log_dir: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _alive_workers(ui_port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=5) as r:
        return int(json.load(r).get("aliveworkers", 0))


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in reversed(procs):
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in reversed(procs):
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=30)


@contextlib.contextmanager
def local_cluster(*, workers: int = 2, cores: int = 1, memory: str = "1g", connect: bool = False,
                  timeout_s: float = 120.0, log_dir: str | os.PathLike | None = None,
                  java_options: str | None = None) -> Iterator[LocalCluster]:
    """Start a standalone master, ``workers`` workers (``cores`` cores and ``memory`` each) and, with
    ``connect``, a Spark Connect server, all on 127.0.0.1; stop them when the block ends.

    ``java_options`` (e.g. :data:`SHORT_JOB_JAVA_OPTIONS`) go to the master's and workers' JVMs
    (``SPARK_DAEMON_JAVA_OPTS``); executors take theirs from the session's
    ``spark.executor.extraJavaOptions``.

    The Connect server's application holds one core (512 MB) per worker for as long as it runs:
    give the workers ``cores >= 2`` when a classic session should run beside it.

    Raises
    ------
    EngineUnavailableError
        If pyspark or Java is missing (or, with ``connect``, the Connect client's grpcio).
    ClusterStartError
        If a process exits early or the cluster is not up within ``timeout_s``.
    ValueError
        If ``workers`` or ``cores`` is not a positive integer.
    """
    for name, value in (("workers", workers), ("cores", cores)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")
    reason = spark_available()
    if reason is None and connect:
        import importlib.util

        if importlib.util.find_spec("grpc") is None:
            reason = "the Spark Connect client is not installed (pip install 'pyspark[connect]')"
    if reason is not None:
        raise EngineUnavailableError(f"no local cluster: {reason}")
    import pyspark

    home = Path(pyspark.__file__).parent
    with contextlib.ExitStack() as stack:
        logs = Path(log_dir) if log_dir is not None else Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="servelab-spark-")))
        logs.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "SPARK_HOME": str(home), "PYSPARK_PYTHON": sys.executable,
               "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_NO_DAEMONIZE": "1"}
        if java_options:
            env["SPARK_DAEMON_JAVA_OPTS"] = java_options
        procs: list[subprocess.Popen] = []
        stack.callback(_stop, procs)

        def launch(name: str, *args: str) -> None:
            with open(logs / f"{name}.log", "wb") as out:
                procs.append(subprocess.Popen([str(home / "bin" / args[0]), *args[1:]], env=env, stdout=out,
                                              stderr=subprocess.STDOUT, start_new_session=True))

        def wait(check, what: str) -> None:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                dead = [p for p in procs if p.poll() is not None]
                if dead:
                    raise ClusterStartError(f"{what}: a Spark process exited with {dead[0].returncode}; "
                                            f"logs: {_tails(logs)}")
                with contextlib.suppress(OSError):
                    if check():
                        return
                time.sleep(0.5)
            raise ClusterStartError(f"{what} not up within {timeout_s:.0f} s; logs: {_tails(logs)}")

        port, ui = _free_port(), _free_port()
        master = f"spark://127.0.0.1:{port}"
        launch("master", "spark-class", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
               "--port", str(port), "--webui-port", str(ui))
        wait(lambda: _port_open(ui) and _port_open(port), "the standalone master")
        for k in range(1, workers + 1):
            launch(f"worker{k}", "spark-class", "org.apache.spark.deploy.worker.Worker", master, "--host", "127.0.0.1",
                   "--cores", str(cores), "--memory", memory, "--webui-port", str(_free_port()),
                   "--work-dir", str(logs / f"work{k}"))
        wait(lambda: _alive_workers(ui) == workers, f"{workers} worker(s)")
        url = None
        if connect:
            cport = _free_port()
            # the Connect server is an application of its own: it takes one core per worker at most
            # (spark.cores.max), so that a classic session on the same cluster gets executors too
            launch("connect", "spark-submit", "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
                   "--master", master, "--conf", f"spark.connect.grpc.binding.port={cport}",
                   "--conf", f"spark.cores.max={workers}", "--conf", "spark.executor.cores=1",
                   "--conf", "spark.executor.memory=512m", "--conf", "spark.ui.enabled=false")
            wait(lambda: _port_open(cport), "the Spark Connect server")
            url = f"sc://127.0.0.1:{cport}"
        yield LocalCluster(master=master, connect=url, workers=workers, log_dir=logs)


def _tails(logs: Path) -> dict[str, str]:
    return {p.name: p.read_text(errors="replace")[-1500:] for p in sorted(logs.glob("*.log"))}
