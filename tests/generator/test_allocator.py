"""``reuse_freed_memory`` (issue 16): on glibc it applies its malloc settings for the block and
restores a finite trim threshold after it (even when the block raises), and it switches numpy's
huge-page advice off inside the block and back after it; without glibc only the advice.
The generator's output does not depend on it (the same-bytes tests of test_generate_stream run
with it)."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from servelab.generator import allocator
from servelab.generator.allocator import reuse_freed_memory


def test_applies_on_glibc_and_runs_the_block():
    with reuse_freed_memory() as applied:
        x = np.ones(5_000_000)  # 40 MB: above the mmap threshold, still allocated and freed fine
        del x
    assert applied is (allocator._glibc() is not None)
    if sys.platform.startswith("linux") and allocator._glibc() is not None:
        assert applied is True


def test_restores_after_an_error(monkeypatch):
    calls = []

    class FakeLibc:
        def mallopt(self, param, value):
            calls.append(("mallopt", param, value))
            return 1

        def malloc_trim(self, pad):
            calls.append(("trim", pad))
            return 1

    monkeypatch.setattr(allocator, "_glibc", lambda: FakeLibc())
    advice = []
    monkeypatch.setattr(allocator, "_numpy_hugepage_switch", lambda: lambda on: advice.append(on) or "prev")
    with pytest.raises(RuntimeError, match="inside"):
        with reuse_freed_memory():
            raise RuntimeError("inside")
    assert calls == [("mallopt", allocator._M_MMAP_THRESHOLD, allocator.MMAP_THRESHOLD),
                     ("mallopt", allocator._M_TRIM_THRESHOLD, allocator._KEEP),
                     ("mallopt", allocator._M_TRIM_THRESHOLD, allocator._AFTER), ("trim", 0)]
    assert advice == [False, "prev"]  # numpy's huge-page advice off inside, its previous setting back after


def test_numpy_advice_restored():
    switch = allocator._numpy_hugepage_switch()
    if switch is None:
        pytest.skip("this numpy has no huge-page switch")
    before = switch(True)
    switch(before)
    with reuse_freed_memory():
        assert switch(False) is False  # off inside the block
    assert switch(before) is before  # the setting from before the block is back


def test_does_nothing_without_glibc(monkeypatch):
    monkeypatch.setattr(allocator, "_glibc", lambda: None)
    with reuse_freed_memory() as applied:
        pass
    assert applied is False
