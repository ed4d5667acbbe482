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


_SITECUSTOMIZE = """\"\"\"Written by benchmarks/git_ref.py: this folder's servelab, not the checkout's editable install.\"\"\"
import sys

sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")
                    and "__editable__" not in getattr(f, "__name__", "")]
"""


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
    if (pkg / "servelab" / "__init__.py").is_file() and (pkg / "sitecustomize.py").is_file():
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
    # a PYTHONPATH entry alone loses to the checkout's editable install: its finder sits before the
    # path finder on sys.meta_path, so servelab and every sub-package came from the checkout. This
    # sitecustomize (imported at start-up from PYTHONPATH, after the .pth files installed the
    # finder; also in spawned workers, which inherit PYTHONPATH) removes it
    (pkg / "sitecustomize.py").write_text(_SITECUSTOMIZE, encoding="utf-8")
    if not quiet:
        print(f"exported {ref} ({sha}) to {pkg}")
    return pkg
