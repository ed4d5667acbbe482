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


def _mix64(x: np.ndarray, buf: np.ndarray | None = None) -> np.ndarray:
    """splitmix64 finaliser: spreads small consecutive block ids over 64 bits.

    ``buf`` (uint64, the size of ``x``): scratch space for the shifts, so that the only new
    array is the result (fewer page faults on large inputs); its content is overwritten."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)  # one new array, then in place
        if buf is None:
            buf = np.empty_like(z)
        for shift, mult in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB), (31, None)):
            np.right_shift(z, np.uint64(shift), out=buf)
            z ^= buf
            if mult is not None:
                z *= np.uint64(mult)
        return z


def _powers(base: np.uint64, n: int) -> np.ndarray:
    out = np.empty(max(n, 1), dtype=np.uint64)
    out[0] = 1
    if n > 1:
        with np.errstate(over="ignore"):
            out[1:] = base
            out = np.cumprod(out, dtype=np.uint64)
    return out


#: the largest power tables built so far (P^g and P^-g for g < their length), shared by calls
_TABLES: list[np.ndarray] = []
#: longest tables kept between calls (2 x 32 MB); longer ones are built for the call only
_TABLES_MAX = 1 << 22


def _global_powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``P^g`` and ``P^-g`` for ``g < n`` (views of cached tables up to :data:`_TABLES_MAX`)."""
    if n > _TABLES_MAX:
        return _powers(_P, n), _powers(_P_INV, n)
    if not _TABLES or _TABLES[0].size < n:
        _TABLES[:] = [_powers(_P, n), _powers(_P_INV, n)]
    return _TABLES[0][:n], _TABLES[1][:n]


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
    pw, pinv = _global_powers(total)
    with np.errstate(over="ignore"):
        # by global index g (the block's position in ``values``) instead of its position in its
        # list: h = P^g (c_g - c_{s-1}), c_g = sum_{j<=g} m(b_j) P^-j, the same value mod 2^64 as
        # the formula above (P is invertible), with power tables read in order, not gathered
        h = _mix64(values.astype(np.int64, copy=False).view(np.uint64))
        h *= pinv
        np.cumsum(h, dtype=np.uint64, out=h)
        base = np.where(starts > 0, h[np.maximum(starts - 1, 0)], np.uint64(0))
        h -= np.repeat(base, lengths)
        h *= pw
        tag = np.arange(1, total + 1, dtype=np.uint64)  # position in the list, plus one
        tag -= np.repeat(starts.astype(np.uint64), lengths)
        tag *= np.uint64(0xD6E8FEB86659FD93)
        h ^= tag
        return h
