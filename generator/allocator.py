"""Keep the memory a streaming generation frees for its next chunk (glibc's malloc, numpy's page advice).

Each chunk of :func:`~servelab.generator.stream.iter_plan` allocates and frees arrays of the same
sizes as the chunk before it (tens of MB at 1,000 req/s). With glibc's defaults a freed block
above the mmap threshold is unmapped, and freed heap above the trim threshold is handed back to
the kernel, so the next chunk faults the same memory in again; and numpy advises transparent huge
pages on every block of 4 MB and more, so with the kernel's ``defrag=madvise`` setting each such
block can stall its thread in compaction. At 1,000 req/s for 24 h that was a third of the
sampling's CPU time (issue 16: 8.1 of 26.8 CPU-s in the kernel; 5.4 of 19.5 with the malloc
settings alone, 0.9 of 17.4 with both).

:func:`reuse_freed_memory` fixes the mmap threshold at glibc's largest default (32 MB, so the
chunk-sized arrays come from the heap), keeps freed heap, and turns numpy's huge-page advice off
while it is entered; then it hands the free memory back (``malloc_trim``) and restores the advice:
peak memory is unchanged and the process does not keep it after the generation. Without glibc
(macOS, musl) only the advice is switched. It changes no value.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

__all__ = ["MMAP_THRESHOLD", "reuse_freed_memory"]

#: glibc's ``mallopt`` parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: blocks up to this size come from the heap (glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit)
MMAP_THRESHOLD = 32 * 1024 * 1024
#: freed heap kept while generating (mallopt takes an int: the largest); after it, the trim
#: threshold glibc's own rule reaches with that mmap threshold
_KEEP = 2**31 - 1
_AFTER = 2 * MMAP_THRESHOLD


@lru_cache(maxsize=1)
def _glibc():
    """The C library when it is glibc (it has ``mallopt`` and ``malloc_trim``), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # glibc only  # noqa: B018
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    return libc


@contextmanager
def reuse_freed_memory() -> Iterator[bool]:
    """Within the block, memory freed by one chunk is reused by the next; afterwards it is returned.

    Yields
    ------
    bool
        Whether the malloc settings apply (glibc); the block runs either way.
    """
    advise = _numpy_hugepage_switch()
    before = advise(False) if advise is not None else None
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, _KEEP)
    try:
        yield libc is not None
    finally:
        if libc is not None:
            libc.mallopt(_M_TRIM_THRESHOLD, _AFTER)
            libc.malloc_trim(0)
        if advise is not None:
            advise(before)


def _numpy_hugepage_switch():
    """numpy's switch of its huge-page advice (``_set_madvise_hugepage``: returns the previous
    setting), or None when this numpy has none."""
    try:
        from numpy._core import multiarray
    except ImportError:  # pragma: no cover - numpy < 2
        from numpy.core import multiarray
    return getattr(multiarray, "_set_madvise_hugepage", None)
