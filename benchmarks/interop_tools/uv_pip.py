"""``uv pip install`` with this machine's pip configuration (uv reads no pip config).

pip here is configured through ``pip config`` files and ``PIP_*`` variables: a ``find-links``
folder holding the CPU build of torch, local package mirrors as ``extra-index-url``, a
``constraint`` file capping torch. uv ignores all of them, so without this mapping it would
download a CUDA build of torch (several GB) instead of the wheel on disk. This module reads what
``python -m pip config list`` prints (every scope: user, global, site and ``PIP_*`` variables,
the later one winning for a key, as pip applies them) and turns it into uv's options:

===================  ======================================================
pip key              uv option
===================  ======================================================
``index-url``        ``--default-index``
``extra-index-url``  ``--extra-index-url`` (each), with ``--index-strategy
                     unsafe-best-match``: pip merges every index, uv's default
                     stops at the first index that has a package
``find-links``       ``--find-links`` (each)
``constraint``       ``--constraints`` (each existing file)
===================  ======================================================

Folders and files that do not exist are left out (uv fails on them, pip only warns).

Usage (standard library only): ``python uv_pip.py UV PYTHON REQUIREMENTS [UV_ARGS ...]``
installs REQUIREMENTS into the interpreter PYTHON (a virtualenv's ``bin/python``) with the uv
binary UV. ``python uv_pip.py --options`` prints the mapped options, one a line.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

__all__ = ["pip_config", "uv_options", "install", "main"]

#: pip configuration keys that take several whitespace-separated values
_MULTI = ("extra-index-url", "find-links", "constraint")


def pip_config(listing: str | None = None, *, python: str = sys.executable) -> dict[str, list[str]]:
    """pip's effective options: key -> values, from ``pip config list`` (or ``listing``, its text).

    Lines look like ``global.find-links='/opt/wheels'`` or ``:env:.find-links='/opt/wheels'``;
    pip prints the scopes from the lowest priority to the highest, so a later line wins.
    """
    if listing is None:
        run = subprocess.run([python, "-m", "pip", "config", "list"], capture_output=True, text=True,
                             env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
        listing = run.stdout if run.returncode == 0 else ""
    out: dict[str, list[str]] = {}
    for line in listing.splitlines():
        name, sep, value = line.partition("=")
        if not sep or "." not in name:
            continue
        key = name.rsplit(".", 1)[1].strip()
        words = shlex.split(value)
        text = " ".join(words)
        out[key] = text.split() if key in _MULTI else [text]
    return out


def _exists(location: str) -> bool:
    """A local path or ``file://`` URL exists; any other URL is taken as reachable."""
    parsed = urlparse(location)
    if parsed.scheme in ("", "file"):
        return Path(parsed.path if parsed.scheme else location).exists()
    return True


def uv_options(config: dict[str, list[str]]) -> list[str]:
    """uv ``pip install`` options equivalent to pip's ``config`` (see the module docstring)."""
    opts: list[str] = []
    if config.get("index-url") and _exists(config["index-url"][0]):
        opts += ["--default-index", config["index-url"][0]]
    extra = [u for u in config.get("extra-index-url", []) if _exists(u)]
    for url in extra:
        opts += ["--extra-index-url", url]
    if extra:
        opts += ["--index-strategy", "unsafe-best-match"]
    for place in config.get("find-links", []):
        if _exists(place):
            opts += ["--find-links", place]
    for path in config.get("constraint", []):
        if _exists(path):
            opts += ["--constraints", path]
    return opts


def install(uv: str, python: str, requirements: Path, *extra: str, timeout_s: float = 600.0
            ) -> subprocess.CompletedProcess:
    """``uv pip install --python PYTHON -r REQUIREMENTS`` with pip's configuration mapped."""
    cmd = [uv, "pip", "install", "--quiet", "--python", python, "-r", str(requirements),
           *uv_options(pip_config()), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--options"]:
        print("\n".join(uv_options(pip_config())))
        return 0
    if len(argv) < 3:
        print(__doc__.split("Usage")[1].strip(), file=sys.stderr)
        return 2
    run = install(argv[0], argv[1], Path(argv[2]), *argv[3:])
    sys.stdout.write(run.stdout)
    sys.stderr.write(run.stderr)
    return run.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
