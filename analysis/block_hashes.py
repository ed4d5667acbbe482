r"""Rolling hashes of every prefix of every prompt block list (Mooncake / Bailian ``hash_ids``).

One job: turn block lists (flattened values + lengths) into one 64-bit key per prefix, all at
once with cumulative sums, so that equal prefixes can be found by hash joins instead of pairwise
comparison. Used by conversation linking, shared-prefix detection and prefix-reuse analysis.
Computes no statistics.
"""
from __future__ import annotations

import numpy as np

__all__ = ["prefix_hashes"]

_P = np.uint64(0x9E3779B97F4A7C15)  # odd, hence invertible mod 2^64
_P_INV = np.uint64(pow(int(_P), -1, 2**64))


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads small consecutive block ids over 64 bits."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)  # one new array, then in place
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
        return z


def _powers(base: np.uint64, n: int) -> np.ndarray:
    out = np.empty(max(n, 1), dtype=np.uint64)
    out[0] = 1
    if n > 1:
        with np.errstate(over="ignore"):
            out[1:] = base
            out = np.cumprod(out, dtype=np.uint64)
    return out


def prefix_hashes(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Hash of every prefix of every block list, all at once.

    Parameters
    ----------
    values : numpy.ndarray of int64
        All block ids, list after list (an Arrow list column's flattened values).
    lengths : numpy.ndarray of int
        Length of each list.

    Returns
    -------
    numpy.ndarray of uint64
        ``out[offset_r + k - 1]`` is the hash of the first ``k`` blocks of list ``r`` (mixed
        with ``k``, so prefixes of different lengths never share a key by construction):

        .. math:: h_k = \\sum_{t<k} m(b_t) P^{k-1-t} \\bmod 2^{64}
                   = P^{k-1} \\sum_{t<k} m(b_t) P^{-t}

        computed with one cumulative sum over all lists (unsigned arithmetic wraps mod 2^64).
    """
    values = np.asarray(values)
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if values.size != total:
        raise ValueError(f"values holds {values.size} blocks but lengths add up to {total}")
    if total == 0:
        return np.zeros(0, dtype=np.uint64)
    starts = np.cumsum(lengths) - lengths
    pos = np.arange(total, dtype=np.int64)
    pos -= np.repeat(starts, lengths)
    max_len = int(lengths.max())
    pw, pinv = _powers(_P, max_len), _powers(_P_INV, max_len)
    with np.errstate(over="ignore"):  # the same arithmetic, in place (fewer whole-array temporaries)
        h = _mix64(values.astype(np.int64, copy=False).view(np.uint64))
        h *= pinv[pos]
        np.cumsum(h, dtype=np.uint64, out=h)
        base = np.where(starts > 0, h[np.maximum(starts - 1, 0)], np.uint64(0))
        h -= np.repeat(base, lengths)
        h *= pw[pos]
        tag = pos.view(np.uint64)
        tag += np.uint64(1)
        tag *= np.uint64(0xD6E8FEB86659FD93)
        h ^= tag
        return h
