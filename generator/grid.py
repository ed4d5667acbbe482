"""The window grid of a generation period: per (pool client, arrival window) rates, CVs and arrival laws.

A pool's ``arrivals`` table becomes the active (client, window) cells of the period, compressed by
window (:class:`WindowGrid`; a (client, window) the table does not hold, or holds with rate 0, is
idle and implicit: memory follows the active cells, not clients x windows), and the period is cut
into segments at window edges and rate-table points
(:func:`segments`). The arrival family and shapes of every (client, window) come from the pool's
named parameter columns (a version-1 ``shape`` column is converted,
:func:`~servelab.generator.pool.named_arrival_params`). This module draws nothing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import polars as pl

from servelab.generator.arrivals import ArrivalLaw, arrival_law
from servelab.generator.exceptions import GenerationError
from servelab.generator.pool import named_arrival_params
from servelab.generator.rates import RateSchedule

__all__ = ["SegmentRates", "WindowGrid", "dense_row_sums", "frame_of", "pool_span", "segment_rates", "segments",
           "window_grid"]


def frame_of(value) -> pl.DataFrame | None:
    """A pool table as a DataFrame (LazyFrames collected), or None."""
    if value is None:
        return None
    if isinstance(value, pl.LazyFrame):
        return value.collect()
    return value


def pool_span(pool) -> tuple[float, float]:
    """(first window start, last window end) of the pool, seconds.

    The hull of the pool's active arrival windows and its stated ``span``: a sparse pool (idle
    windows not held) keeps the span it was fitted over, and a dense one gives its windows' range
    as before.
    """
    arrivals = frame_of(pool.arrivals)
    if arrivals is None or arrivals.height == 0:
        raise GenerationError("the pool has no arrival windows: nothing to generate from")
    lo = float(arrivals["window_start"].min())
    hi = float((arrivals["window_start"] + arrivals["window_s"]).max())
    span = getattr(pool, "span", None)
    if span is not None and len(span) == 2 and span[1] > span[0]:
        lo, hi = min(lo, float(span[0])), max(hi, float(span[1]))
    return lo, hi


def _window_starts(arrivals: pl.DataFrame, window_s, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Window starts and lengths over ``[lo, hi)``: the pool's regular grid when its windows lie on one.

    A sparse pool holds active windows only; when every held window has length ``window_s`` and
    starts on one grid ``anchor + k * window_s``, every window of that grid overlapping
    ``[lo, hi)`` is returned (idle ones included, rate 0), so a sparse pool and its dense twin give
    the same grid. Otherwise the held windows only (as before).
    """
    starts = np.unique(arrivals["window_start"].to_numpy().astype(float))
    lens = (arrivals.group_by("window_start").agg(pl.col("window_s").max()).sort("window_start")["window_s"]
            .to_numpy().astype(float))
    if starts.size == 0 or not (isinstance(window_s, (int, float)) and window_s > 0):
        return starts, lens
    w = float(window_s)
    k = (starts - starts[0]) / w
    if not (np.all(np.abs(lens - w) <= 1e-9 * w) and np.all(np.abs(k - np.round(k)) <= 1e-6)):
        return starts, lens
    k_lo = math.floor((lo - starts[0]) / w + 1e-9)
    k_hi = math.ceil((hi - starts[0]) / w - 1e-9)
    grid = starts[0] + w * np.arange(k_lo, max(k_hi, k_lo + 1), dtype=np.float64)
    grid = grid[(grid < hi) & (grid + w > lo)]
    # held starts keep their exact float values (a start computed as k * w may differ in the last bit)
    pos = np.searchsorted(grid, starts)
    pos = np.clip(pos, 0, grid.size - 1)
    near = np.abs(grid[pos] - starts) <= 1e-6 * w
    grid[pos[near]] = starts[near]
    grid = np.unique(np.concatenate([grid, starts[~near]]))
    return grid, np.full(grid.size, w)


@dataclass(frozen=True)
class WindowGrid:
    """The active (pool client, arrival window) cells of the generation period, by window.

    Only cells with a rate > 0 are held (compressed by window): the cells of window ``w`` are
    ``window_ptr[w]:window_ptr[w + 1]``, ordered by pool client. Memory is O(windows + active
    cells), never clients x windows.

    Attributes
    ----------
    pool_ids : list of str
        The pool's clients with arrivals, sorted (pool client ``p`` is ``pool_ids[p]``).
    window_start, window_len : numpy.ndarray
        ``(W,)`` window starts and lengths, seconds (idle windows of the pool's grid included).
    window_ptr : numpy.ndarray of int64
        ``(W + 1,)`` cell offsets per window.
    client : numpy.ndarray of int64
        ``(C,)`` pool client of each cell.
    rate, cv : numpy.ndarray
        ``(C,)`` rate (> 0, req/s) and gap CV (0 where the pool has none) of each cell.
    law : ArrivalLaw
        The arrival law of the ``C`` cells.
    """

    pool_ids: list[str]
    window_start: np.ndarray
    window_len: np.ndarray
    window_ptr: np.ndarray
    client: np.ndarray
    rate: np.ndarray
    cv: np.ndarray
    law: ArrivalLaw

    @property
    def cell_window(self) -> np.ndarray:
        """``(C,)`` window of each cell."""
        return np.repeat(np.arange(self.window_start.size), np.diff(self.window_ptr))

    def window_totals(self) -> np.ndarray:
        """``(W,)`` total pool rate per window (cells added in client order)."""
        return np.bincount(self.cell_window, weights=self.rate, minlength=self.window_start.size)

    def segment_cells(self, seg_w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(segment, cell) of every active (pool client, segment) pair, ordered by segment then client.

        ``seg_w``: window of each segment (-1: none, no cells).
        """
        seg_w = np.asarray(seg_w, dtype=np.int64)
        ok = seg_w >= 0
        first = np.where(ok, self.window_ptr[np.maximum(seg_w, 0)], 0)
        n = np.where(ok, self.window_ptr[np.maximum(seg_w, 0) + 1] - first, 0)
        seg = np.repeat(np.arange(seg_w.size), n)
        offsets = np.r_[0, np.cumsum(n)[:-1]]
        cell = np.repeat(first - offsets, n) + np.arange(seg.size)
        return seg, cell


def dense_row_sums(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, n_rows: int, n_cols: int,
                   *, block_cells: int = 1 << 22) -> np.ndarray:
    """Row sums of the ``(n_rows, n_cols)`` matrix holding ``values`` at ``(rows, cols)`` and 0 elsewhere.

    Equal to the bit to ``dense.sum(axis=1)`` (numpy's pairwise summation over each whole row,
    zeros included), built a block of rows at a time so that memory stays bounded by
    ``block_cells`` floats whatever ``n_rows``. ``(rows, cols)`` pairs must be distinct.
    """
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    values = np.asarray(values, dtype=float)
    out = np.zeros(n_rows)
    if n_cols == 0 or n_rows == 0:
        return out
    step = max(1, block_cells // n_cols)
    order = np.argsort(rows, kind="stable")
    rows, cols, values = rows[order], cols[order], values[order]
    bounds = np.searchsorted(rows, np.arange(0, n_rows + step, step))
    for i in range(bounds.size - 1):  # a loop over blocks of rows, never cells
        r0 = i * step
        if r0 >= n_rows:
            break
        r1 = min(r0 + step, n_rows)
        lo, hi = bounds[i], bounds[i + 1]
        block = np.zeros((r1 - r0, n_cols))
        block[rows[lo:hi] - r0, cols[lo:hi]] = values[lo:hi]
        out[r0:r1] = block.sum(axis=1)
    return out


@dataclass(frozen=True)
class SegmentRates:
    """Pool rates of the active (pool client, segment) cells, ordered by segment then pool client.

    Attributes
    ----------
    n_clients, n_segments : int
        The sizes of the implicit dense ``(clients, segments)`` matrix (absent cells: rate 0).
    segment, client, cell : numpy.ndarray of int64
        Segment, pool client and :class:`WindowGrid` cell of each active cell.
    rate : numpy.ndarray
        Pool rate of each active cell (> 0).
    """

    n_clients: int
    n_segments: int
    segment: np.ndarray
    client: np.ndarray
    cell: np.ndarray
    rate: np.ndarray

    @cached_property
    def _by_client(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The cells in (pool client, segment) order: the order, and segment, client and rate in
        it (sorted once per object; :meth:`group_row_sums` runs once per data window a segment spans)."""
        order = np.lexsort((self.segment, self.client))
        return order, self.segment[order], self.client[order], self.rate[order]

    def client_sums(self, values: np.ndarray) -> np.ndarray:
        """``(clients,)``: per pool client, ``values`` (one per cell) added in segment order."""
        order, _, client, _ = self._by_client
        return np.bincount(client, weights=np.asarray(values, dtype=float)[order], minlength=self.n_clients)

    def group_row_sums(self, group: np.ndarray, n_groups: int, weight: np.ndarray) -> np.ndarray:
        """``(clients, n_groups)``: per client, ``rate * weight[segment]`` added over each group's segments in order.

        ``group[s]`` is segment ``s``'s group (0 .. n_groups - 1).
        """
        group = np.asarray(group, dtype=np.int64)
        weight = np.asarray(weight, dtype=float)
        _, seg, client, rate = self._by_client
        key = client * n_groups + group[seg]
        out = np.bincount(key, weights=rate * weight[seg], minlength=self.n_clients * n_groups)
        return out.reshape(self.n_clients, n_groups)

    def overlap_row_sums(self, a: np.ndarray, b: np.ndarray, first: np.ndarray, last: np.ndarray,
                         start: np.ndarray, end: np.ndarray, dw: float) -> np.ndarray:
        """``(clients, windows)``: per client, ``rate`` times the seconds each segment spends in each window.

        The windows (``start.size`` of them, each ``dw`` long) split the segments' time: segment
        ``s`` (``[a[s], b[s])``) lies in windows ``first[s] .. last[s]`` (the caller's indices,
        clipped to the windows it has). When no segment reaches past its first window, each
        weighs its whole length ``b - a`` there. Otherwise a segment weighs
        ``min(b, end[first]) - a`` in its first window and its overlap
        ``min(b, start[d] + dw) - max(a, start[d])`` in each later window ``d`` (negative
        shares: 0). A loop over the few windows one segment spans, never requests; each share is
        added in segment order (:meth:`group_row_sums`).

        Parameters
        ----------
        a, b : numpy.ndarray
            Start and end of each segment (seconds; one per segment of this object).
        first, last : numpy.ndarray of int
            The first and last window of each segment (``first <= last``).
        start, end : numpy.ndarray
            Start and end of each window. ``end[d]`` and ``start[d] + dw`` are the same instant
            computed two ways (the per-client path's end of a segment's first window is the grid's
            next start; :func:`~servelab.generator.request_data.data_sampler`): their last bits
            may differ, and each is used where that path used it, so its bytes stay the same.
        dw : float
            The windows' length.

        Returns
        -------
        numpy.ndarray
            ``(n_clients, start.size)`` expected requests (rate x seconds).
        """
        first = np.asarray(first, dtype=np.int64)
        last = np.asarray(last, dtype=np.int64)
        n = int(np.size(start))
        crossing = bool(first.size) and bool(np.any(last > first))
        share = np.maximum((np.minimum(b, end[first]) if crossing else b) - a, 0.0)
        out = self.group_row_sums(first, n, share)
        if crossing:
            for j in range(1, int((last - first).max()) + 1):
                d = np.minimum(first + j, last)
                w_start = start[d]
                share = np.where(first + j <= last, np.minimum(b, w_start + dw) - np.maximum(a, w_start), 0.0)
                out = out + self.group_row_sums(d, n, np.maximum(share, 0.0))
        return out


def segment_rates(grid: WindowGrid, seg_w: np.ndarray) -> SegmentRates:
    """The :class:`SegmentRates` of segments lying in windows ``seg_w`` of ``grid`` (-1: none)."""
    seg, cell = grid.segment_cells(seg_w)
    return SegmentRates(n_clients=len(grid.pool_ids), n_segments=int(np.size(seg_w)), segment=seg,
                        client=grid.client[cell], cell=cell, rate=grid.rate[cell])


def window_grid(pool, lo: float, hi: float) -> WindowGrid:
    """The :class:`WindowGrid` of ``pool`` over ``[lo, hi)`` (windows overlapping it)."""
    arrivals = frame_of(pool.arrivals).filter(
        (pl.col("window_start") < hi) & ((pl.col("window_start") + pl.col("window_s")) > lo)
    )
    arrivals = named_arrival_params(arrivals.lazy()).collect()
    clients = frame_of(pool.clients)
    if clients is not None and "has_arrivals" in clients.columns:
        ids = clients.filter(pl.col("has_arrivals"))["client_id"].to_list()
    else:
        ids = arrivals["client_id"].unique(maintain_order=True).to_list()
    ids = sorted(set(ids))
    starts, lens = _window_starts(arrivals, getattr(pool, "window_s", None), lo, hi)
    P, W = len(ids), starts.size
    index = pl.DataFrame({"client_id": ids, "p": np.arange(P)})
    a = arrivals.join(index, on="client_id", how="inner")
    rate = a["rate"].fill_null(0.0).to_numpy()
    a = a.filter(pl.Series(rate > 0))  # idle cells are implicit (rate 0, never drawn from)
    rate = rate[rate > 0]
    p = a["p"].to_numpy().astype(np.int64)
    w = np.searchsorted(starts, a["window_start"].to_numpy().astype(float)).astype(np.int64)
    order = np.lexsort((p, w))
    p, w, rate = p[order], w[order], rate[order]
    a = a[order]
    cv = a["cv"].fill_null(0.0).to_numpy().astype(float) if "cv" in a.columns else np.zeros(a.height)
    family = a["family"].to_numpy() if "family" in a.columns else np.full(a.height, None, dtype=object)
    shape_cols = [c for c in a.columns if c not in ("client_id", "window_start", "window_s", "rate", "cv", "family",
                                                     "scale", "p")]
    shapes = {c: a[c].cast(pl.Float64).fill_null(np.nan).to_numpy() for c in shape_cols}
    law = arrival_law(family, shapes, cv)
    ptr = np.searchsorted(w, np.arange(W + 1)).astype(np.int64)
    return WindowGrid(ids, starts, lens.astype(float), ptr, p, rate.astype(float), cv, law)


def segments(lo: float, hi: float, grid: WindowGrid, schedule: RateSchedule, max_segment_s: float
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Segment starts, ends and windows (-1: no window) over ``[lo, hi)``.

    Segments are cut at window edges and, for a rate table, at its points and every
    ``max_segment_s``.
    """
    cuts = [np.array([lo, hi]), grid.window_start, grid.window_start + grid.window_len]
    if schedule.kind == "table":
        cuts.append(lo + np.asarray(schedule.times))
        n = math.ceil((hi - lo) / max_segment_s)
        cuts.append(lo + np.arange(n + 1) * max_segment_s)
    b = np.unique(np.concatenate(cuts))
    b = b[(b >= lo) & (b <= hi)]
    a, e = b[:-1], b[1:]
    w = np.searchsorted(grid.window_start, a, side="right") - 1
    covered = (w >= 0) & (a < grid.window_start[np.maximum(w, 0)] + grid.window_len[np.maximum(w, 0)])
    return a, e, np.where(covered, w, -1)
