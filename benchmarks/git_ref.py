"""The package as it is at a git ref, for the benchmarks' "before vs after" runs.

:func:`export_ref` lays out ``git archive REF`` under ``benchmarks/out/ref_<sha>/`` as an installed
``servelab`` package (``pkg/servelab`` with its sub-packages linked in), so a child process with
``pkg`` first on its path imports the ref's code instead of this checkout's. ``bench_report.py``
(``--before``) and ``bench_engines.py`` (``--duckdb-before``) both use it; it measures nothing.
"""
from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from pathlib import Path

__all__ = ["export_ref", "OUT"]

HERE = Path(__file__).resolve().parent
#: where the exports go (one folder per commit, reused when complete)
OUT = HERE / "out"


def export_ref(ref: str, *, out: Path = OUT, quiet: bool = False) -> Path:
    """The package at git ``ref``: the folder to put first on ``sys.path`` / ``PYTHONPATH``.

    Parameters
    ----------
    ref : str
        A git ref or commit of this repository (e.g. ``main``).
    out : Path
        Where ``ref_<short sha>/`` is made (default ``benchmarks/out``); an existing complete
        export of the same commit is reused.
    quiet : bool
        Do not print where the export went.

    Returns
    -------
    Path
        ``<out>/ref_<sha>/pkg`` holding ``servelab/`` (with ``analysis``, ``fitting``,
        ``generator``, ``figures`` and ``reports`` linked in, as the installed package has them).

    Raises
    ------
    subprocess.CalledProcessError
        If ``ref`` is not a git ref of this repository.
    """
    sha = subprocess.run(["git", "rev-parse", "--short", ref], cwd=HERE, capture_output=True, text=True,
                         check=True).stdout.strip()
    root = Path(out) / f"ref_{sha}"
    pkg = root / "pkg"
    if (pkg / "servelab" / "__init__.py").is_file():
        return pkg
    shutil.rmtree(root, ignore_errors=True)
    src = root / "src"
    src.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", ref], cwd=HERE.parent, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(src, filter="data")
    shutil.copytree(src / "servelab", pkg / "servelab")
    for top in ("analysis", "fitting", "generator", "figures", "reports"):
        (pkg / "servelab" / top).symlink_to(src / top, target_is_directory=True)
    if not quiet:
        print(f"exported {ref} ({sha}) to {pkg}")
    return pkg
