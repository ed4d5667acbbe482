"""prefix_hashes (analysis/block_hashes.py) against its formula, list by list in Python integers:
h_k = (sum_{t<k} m(b_t) P^(k-1-t) mod 2^64) xor (k * C mod 2^64), m the splitmix64 finaliser."""
from __future__ import annotations

import numpy as np

import servelab.analysis.block_hashes as bh

_M = 2**64
_P = 0x9E3779B97F4A7C15
_C = 0xD6E8FEB86659FD93


def _mix(x: int) -> int:
    z = (x + 0x9E3779B97F4A7C15) % _M
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % _M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % _M
    return z ^ (z >> 31)


def _reference(values: list[int], lengths: list[int]) -> list[int]:
    out, i = [], 0
    for n in lengths:
        h = 0
        for k in range(1, n + 1):
            h = (h * _P + _mix(values[i + k - 1] % _M)) % _M
            out.append(h ^ ((k * _C) % _M))
        i += n
    return out


def test_prefix_hashes_match_the_formula_cached_or_not(monkeypatch):
    rng = np.random.default_rng(15)
    for trial in range(12):
        lengths = rng.integers(0, 25, int(rng.integers(1, 60)))
        values = rng.integers(-(2**40), 2**40, int(lengths.sum()))
        want = np.array(_reference(values.tolist(), lengths.tolist()), dtype=np.uint64)
        if trial % 2:  # power tables longer than the cache limit are built for the call only
            monkeypatch.setattr(bh, "_TABLES_MAX", 4)
        np.testing.assert_array_equal(bh.prefix_hashes(values, lengths), want)
        monkeypatch.setattr(bh, "_TABLES_MAX", 1 << 22)
