"""Run ServeGen's released code live, from ``../shared/anchors/servegen``, on a pool folder (benchmarks only).

ServeGen's loader reads ``data/<category>/<name>/`` relative to its working directory, so a run
needs a scratch working directory with the pool folder linked in as ``data/language/bench``.
:func:`servegen_command` builds that directory and the command line of a fresh interpreter whose
script starts with :data:`PRELUDE` (ServeGen's code on ``sys.path``, the working directory set,
``Category`` and ``ClientPool`` imported; the script's arguments after the prelude's three start
at ``sys.argv[4]``). :func:`bench_lock` holds the machine-wide lock of large benchmarks.
Used by ``bench_pool.py --servegen`` (ServeGen's loader) and ``bench_generate.py --what servegen``
(its generator). ServeGen's code is never copied into the repository.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = ["SHARED", "SERVEGEN_CODE", "LOCK", "PRELUDE", "available", "bench_lock", "servegen_command"]

REPO = Path(__file__).resolve().parents[1]
#: ../shared next to the main checkout (/work/main -> /work/shared) or a worktree's ancestor (/work/wt/NAME)
SHARED = next((p / "shared" for p in REPO.parents if (p / "shared" / "anchors").is_dir()), REPO.parent / "shared")
#: ServeGen's released code (its ``servegen`` package inside)
SERVEGEN_CODE = SHARED / "anchors" / "servegen"
#: the machine-wide lock every large benchmark holds
LOCK = Path("/tmp/servelab-bench.lock")

#: first lines of a ServeGen child script: argv[1] = ServeGen's code, argv[2] = working directory,
#: argv[3] = the pool's name under data/language
PRELUDE = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
os.chdir(sys.argv[2])
from servegen import Category, ClientPool
"""


def available(module: str = "clientpool") -> bool:
    """True when ServeGen's released ``servegen/<module>.py`` is present under :data:`SERVEGEN_CODE`."""
    return (SERVEGEN_CODE / "servegen" / f"{module}.py").is_file()


@contextlib.contextmanager
def bench_lock() -> Iterator[None]:
    """Hold :data:`LOCK` (one large benchmark at a time on the machine).

    With ``SERVELAB_BENCH_LOCK_HELD=1`` in the environment the caller already holds it (e.g.
    ``flock /tmp/servelab-bench.lock env SERVELAB_BENCH_LOCK_HELD=1 python benchmarks/bench_scale.py ...``
    runs several timed commands in one hold instead of queueing for each): nothing is taken.
    """
    if os.environ.get("SERVELAB_BENCH_LOCK_HELD") == "1":
        yield
        return
    with open(LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def servegen_command(script: str, folder: Path, work: Path, *args: str) -> list[str]:
    """The command running ``PRELUDE + script`` on ServeGen-format ``folder``, with ``args`` from ``sys.argv[4]``.

    Parameters
    ----------
    script : str
        Python code run after :data:`PRELUDE`; it opens the pool as
        ``ClientPool(Category.LANGUAGE, sys.argv[3])``.
    folder : Path
        A pool in ServeGen's format (e.g. written by ``servelab pool export-servegen``).
    work : Path
        Scratch folder: ``work/servegen-cwd/data/language/bench`` becomes a link to ``folder``.
    *args : str
        Further arguments of the script.

    Returns
    -------
    list of str
        ``[python, "-c", code, SERVEGEN_CODE, cwd, "bench", *args]``.
    """
    root = work / "servegen-cwd"
    (root / "data" / "language").mkdir(parents=True, exist_ok=True)
    link = root / "data" / "language" / "bench"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(folder.resolve())
    return [sys.executable, "-c", PRELUDE + script, str(SERVEGEN_CODE), str(root), "bench", *args]
