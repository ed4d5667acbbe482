"""The store folder an ingest writes: which targets it may replace, one ingest per target at a time,
and the hidden temporary folders a killed ingest left beside it.

- :func:`check_target` refuses a target that is a file, the current directory (or a folder
  holding it), or a folder holding one of the sources; with ``overwrite`` it replaces only a
  servelab store (a folder whose ``manifest.json`` carries the store's ``schema_version``) or an
  empty folder, and refuses anything else by name.
- :func:`target_lock` holds an exclusive ``fcntl.flock`` on ``.<name>.lock`` beside the target for
  the whole ingest, so a second ingest into the same target fails fast (:class:`StoreLockedError`)
  instead of silently replacing the first one's store. The lock file is removed when done.
- :func:`clean_stale` (run under the lock) removes the ``.<name>.XXXXXXXX.tmp`` folders of
  :func:`~servelab.analysis.store.atomic_store_dir` that killed ingests left, and settles a
  ``.<name>.old`` left between its two renames (the previous store is put back when the target
  is missing, dropped otherwise).
- :func:`ordinary_permissions` gives the new store the permissions of a folder made with
  ``mkdir`` (``tempfile.mkdtemp`` makes it 0700).

This module touches only the target's folder and its hidden siblings; it reads no trace data.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from servelab.analysis.store import MANIFEST_NAME, StoreExistsError

__all__ = [
    "StoreTargetError",
    "StoreLockedError",
    "check_target",
    "is_store",
    "target_lock",
    "clean_stale",
    "ordinary_permissions",
]

_log = logging.getLogger("servelab.analysis.ingest")


class StoreTargetError(StoreExistsError):
    """The output path exists and may not be replaced (a file, a non-store folder, the current
    directory, or a folder holding a source)."""


class StoreLockedError(RuntimeError):
    """Another ingest is writing the same output store right now."""


def is_store(path: Path) -> bool:
    """True when ``path`` is a servelab store folder: its manifest is a JSON object with ``schema_version``."""
    manifest = path / MANIFEST_NAME
    if not path.is_dir() or not manifest.is_file():
        return False
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and "schema_version" in data and "servelab_version" in data


def _contains(folder: Path, inner: Path) -> bool:
    return inner == folder or folder in inner.parents


def check_target(output: Path, sources: Iterable[Path], *, overwrite: bool) -> None:
    """Refuse an output path that an ingest must not create or replace.

    Raises
    ------
    StoreTargetError
        ``output`` is an existing file; is (or holds) the current directory or a source; or, with
        ``overwrite``, is a non-empty folder that is not a servelab store.
    """
    where = Path(output).resolve()
    if where.exists() and not where.is_dir():
        raise StoreTargetError(f"output {str(output)!r} already exists and is a file, not a store folder; choose another -o")
    cwd = Path.cwd().resolve()
    if _contains(where, cwd):
        raise StoreTargetError(
            f"output {str(output)!r} is the current directory or holds it ({cwd}); "
            "a store is a folder of its own: choose a new folder name for -o"
        )
    for src in sources:
        if _contains(where, Path(src).resolve()):
            raise StoreTargetError(
                f"output {str(output)!r} holds the source {str(src)!r}; replacing it would delete the source: "
                "choose another folder for -o"
            )
    if overwrite and where.is_dir() and any(where.iterdir()) and not is_store(where):
        raise StoreTargetError(
            f"output {str(output)!r} is a folder but not a servelab store (no {MANIFEST_NAME} with a "
            "schema_version); --overwrite replaces only stores: remove it yourself or choose another -o"
        )


def _lock_path(output: Path) -> Path:
    return output.parent / f".{output.name}.lock"


@contextlib.contextmanager
def target_lock(output: Path) -> Iterator[Path]:
    """Hold an exclusive lock on ``output`` for the block (``.<name>.lock`` beside it, removed after).

    The lock file is removed while still locked; a process that opened it before the removal
    finds, once it holds the lock, that the path no longer names its file, and opens it anew
    (the usual flock + inode check), so two processes never both hold the lock.

    Raises
    ------
    StoreLockedError
        Another process holds the lock (another ingest into the same output is running).
    """
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    lock = _lock_path(output)
    for _ in range(100):
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise StoreLockedError(
                    f"another ingest is writing {str(output)!r} (lock {str(lock)!r} is held); "
                    "wait for it to finish or choose another -o"
                ) from None
            raise
        try:
            current = os.stat(lock)
        except FileNotFoundError:
            current = None
        if current is not None and current.st_ino == os.fstat(fd).st_ino and current.st_dev == os.fstat(fd).st_dev:
            break
        os.close(fd)  # the holder before us removed the file: lock the new one
    else:  # pragma: no cover - only under a pathological storm of ingests into one target
        raise StoreLockedError(f"could not lock {str(lock)!r}: other ingests keep replacing it")
    try:
        yield lock
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
        os.close(fd)  # closing the descriptor releases the lock


def clean_stale(output: Path) -> list[Path]:
    """Remove temporary folders that killed ingests into ``output`` left; run under :func:`target_lock`.

    Returns the paths removed (or restored). A ``.<name>.old`` folder is the previous store when
    the kill came between the two renames of :func:`~servelab.analysis.store.atomic_store_dir`:
    it is put back as ``output`` when ``output`` is missing, removed otherwise.
    """
    output = Path(output)
    parent = output.parent
    if not parent.is_dir():
        return []
    pattern = re.compile(rf"^\.{re.escape(output.name)}\.[A-Za-z0-9_]{{8}}\.tmp$")
    touched = []
    for entry in parent.iterdir():
        if pattern.match(entry.name) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
            touched.append(entry)
    old = parent / f".{output.name}.old"
    if old.is_dir() and not old.is_symlink():
        if not output.exists() and is_store(old):
            old.rename(output)
            _log.warning("ingest: restored the previous store %s from %s (an ingest was killed while replacing it)",
                         output, old)
        else:
            shutil.rmtree(old, ignore_errors=True)
        touched.append(old)
    if touched:
        _log.info("ingest: cleaned %d folder(s) left by killed ingests into %s", len(touched), output)
    return touched


def ordinary_permissions(folder: Path) -> None:
    """Give ``folder`` the mode ``mkdir`` would (0777 less the umask), not mkdtemp's 0700."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(folder, 0o777 & ~mask)
