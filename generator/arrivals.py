r"""Arrival sampling: renewal processes of the pool's arrival families, all client-segments at once.

Each *cell* (a synthetic client in a segment of time) has a rate, a length and an arrival law: a
registered :class:`~servelab.fitting.families.ArrivalFamily` with its shapes (:class:`ArrivalLaw`).
Gaps are the family's unit-mean draws divided by the rate, so the mean gap is exactly
``1 / rate`` whatever the family; :func:`renewal_arrivals` starts each cell in equilibrium (the
first arrival after ``U`` times a length-biased gap), :func:`poisson_arrivals` fixes a Poisson
count and spreads the family's normalised gaps over the cell. Nothing here names a family: the
families' own draws, means and CVs do the work, so a newly registered arrival family is sampled
without a change here.

Loops run over rounds of draws and over families, never requests or cells; :func:`renewal_units`
draws many generation units at once, each from its own stream, and loops over units only for
their draws and cumulative sums.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import polars as pl

from servelab.fitting.exceptions import UnknownFamilyError
from servelab.fitting.families import arrival_family_names, get_arrival_family
from servelab.generator.exceptions import GenerationError

__all__ = ["ArrivalLaw", "arrival_law", "continue_renewals", "first_arrivals", "renewal_arrivals", "renewal_units",
           "poisson_arrivals"]

_MAX_ROUNDS = 1000
#: a window without a (usable) family is the Gamma with its CV; without a CV, exponential
_FROM_CV = "gamma"
_DEFAULT = "exponential"


@dataclass(frozen=True)
class ArrivalLaw:
    """The arrival family and shapes of each cell, ready to draw from.

    Parameters
    ----------
    families : tuple of str
        The registry names in use.
    index : numpy.ndarray of int16
        Per cell, its family's position in ``families``.
    shapes : Mapping[str, numpy.ndarray]
        Per cell, every shape parameter of the families in use (NaN where not its family's),
        clipped into the family's ``draw_bounds``.
    unit_scale : numpy.ndarray
        Per cell, the scale that makes the family's mean 1.
    cv : numpy.ndarray
        Per cell, the CV its family and shapes imply.
    """

    families: tuple[str, ...]
    index: np.ndarray
    shapes: Mapping[str, np.ndarray]
    unit_scale: np.ndarray
    cv: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "shapes", MappingProxyType(dict(self.shapes)))

    @property
    def size(self) -> int:
        return int(self.index.size)

    def take(self, cells: np.ndarray) -> "ArrivalLaw":
        """The law of the given cells (an index array), in that order."""
        return ArrivalLaw(self.families, self.index[cells], {k: v[cells] for k, v in self.shapes.items()},
                          self.unit_scale[cells], self.cv[cells])

    def draw(self, cells: np.ndarray, rng: np.random.Generator, *, length_biased: bool = False) -> np.ndarray:
        """One unit-mean draw per element of ``cells`` (length-biased: from :math:`x f(x)`)."""
        out = np.empty(cells.size)
        fam_of = self.index[cells]
        for i, name in enumerate(self.families):  # a loop over families, never draws
            rows = slice(None) if len(self.families) == 1 else np.flatnonzero(fam_of == i)
            c = cells[rows]
            if c.size == 0:
                continue
            family = get_arrival_family(name)
            params = {k: self.shapes[k][c] for k in family.shape_names}
            params["scale"] = self.unit_scale[c]
            out[rows] = family.draw(params, rng, length_biased=length_biased)
        return out


def arrival_law(family, shapes: Mapping[str, object] | None = None, cv=None, *, size: int | None = None) -> ArrivalLaw:
    """Build the :class:`ArrivalLaw` of cells from family names, shapes and CVs.

    Parameters
    ----------
    family : str or array-like of (str or None)
        Registry name per cell (one name for all cells).
    shapes : Mapping[str, array-like], optional
        Shape parameters by name (``{"a": ...}`` for Gamma, ``{"c": ...}`` for Weibull), per cell
        or scalar.
    cv : array-like, optional
        Per cell CV: a cell without a family, or whose family's shapes are missing, gets the
        Gamma with that CV, or the exponential without one.
    size : int, optional
        Number of cells when every argument is scalar.

    Raises
    ------
    GenerationError
        If a name is not a registered arrival family.
    """
    shapes = dict(shapes or {})
    if isinstance(family, str) or family is None:
        n = size if size is not None else max([np.size(v) for v in shapes.values()] + [np.size(cv) if cv is not None else 1])
        names = np.full(n, family or "", dtype=object)
    else:
        names = pl.Series(np.asarray(family, dtype=object).tolist(), dtype=pl.String).str.to_lowercase().fill_null("")
        names = np.asarray(names.to_numpy(), dtype=object)
        n = names.size
    cvs = np.broadcast_to(np.asarray(np.nan if cv is None else cv, dtype=float), (n,))
    shape_arrays = {k: np.broadcast_to(np.asarray(v, dtype=float), (n,)) for k, v in shapes.items()}
    known = set(arrival_family_names())
    used = sorted(set(names.tolist()) - {""})
    unknown = [f for f in used if f not in known]
    if unknown:
        raise GenerationError(f"arrival family must be one of {sorted(known)}; got {unknown}")
    # a family whose shapes are missing or unusable falls back to the Gamma with the cell's CV
    resolved = names.copy()
    for name in used:
        fam = get_arrival_family(name)
        rows = names == name
        ok = np.ones(n, bool)
        for p in fam.shape_names:
            v = shape_arrays.get(p)
            if v is None:
                ok[:] = False
            else:
                ok &= np.isfinite(v) & (v > 0)
        resolved[rows & ~ok] = ""
    blank = resolved == ""
    with_cv = blank & np.isfinite(cvs) & (cvs > 0)
    resolved[with_cv] = _FROM_CV
    resolved[blank & ~with_cv] = _DEFAULT
    if np.any(with_cv):
        from_cv = get_arrival_family(_FROM_CV).shapes_from_cv(cvs)
        for k, v in from_cv.items():
            base = shape_arrays.get(k, np.full(n, np.nan))
            shape_arrays[k] = np.where(with_cv, v, base)
    families = tuple(sorted(set(resolved.tolist())))
    index = np.searchsorted(np.asarray(families, dtype=object), resolved).astype(np.int16)
    names_needed = sorted({p for f in families for p in get_arrival_family(f).shape_names})
    out_shapes = {p: np.full(n, np.nan) for p in names_needed}
    unit_scale = np.ones(n)
    cv_out = np.ones(n)
    for i, name in enumerate(families):  # a loop over families
        fam = get_arrival_family(name)
        rows = index == i
        clipped = fam.clip_shapes({p: shape_arrays[p][rows] for p in fam.shape_names})
        for p, v in clipped.items():
            out_shapes[p][rows] = v
        unit_scale[rows] = fam.unit_mean(clipped)["scale"]
        cv_out[rows] = np.broadcast_to(fam.cv(clipped), int(rows.sum()))
    return ArrivalLaw(families, index, out_shapes, unit_scale, cv_out)


def _as_law(family, shape, n: int) -> ArrivalLaw:
    if isinstance(family, ArrivalLaw):
        if family.size != n:
            raise GenerationError(f"the arrival law has {family.size} cells; rates give {n}")
        return family
    if shape is None or isinstance(shape, Mapping):
        try:
            return arrival_law(family, shape, size=n)
        except UnknownFamilyError as err:
            raise GenerationError(str(err)) from None
    raise GenerationError(f"shapes must be a mapping of parameter names to values (e.g. {{'a': 0.5}}); "
                          f"got {type(shape).__name__}")


def renewal_arrivals(rate, length, family, shapes=None, rng: np.random.Generator | None = None,
                     *, stationary: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Arrival times of independent renewal processes, one per cell, all drawn at once.

    Cell ``i`` runs for ``length[i]`` seconds with gaps from its family (``family``: an
    :class:`ArrivalLaw`, or registry names with ``shapes`` by parameter name, see
    :func:`arrival_law`) and mean ``1 / rate[i]``. With ``stationary`` the first arrival comes
    after a forward-recurrence time (``U`` times a length-biased gap), so the process is in
    equilibrium from time 0 and the expected count is exactly ``rate[i] * length[i]``; the count
    itself is random.

    Returns
    -------
    cell : int64 array
        The cell of each arrival, non-decreasing.
    offset : float64 array
        Time of each arrival since its cell's start, increasing within a cell.
    """
    if rng is None:
        raise GenerationError("renewal_arrivals needs rng (a seeded numpy Generator)")
    rate = np.atleast_1d(np.asarray(rate, dtype=float))
    length = np.broadcast_to(np.asarray(length, dtype=float), rate.shape)
    if np.any(~np.isfinite(rate)) or np.any(rate <= 0) or np.any(length < 0):
        raise GenerationError("renewal_arrivals needs rates > 0 and lengths >= 0")
    law = _as_law(family, shapes, rate.size)
    first = first_arrivals(rate, law, rng, stationary=stationary)
    cell, off, _ = continue_renewals(rate, length, law, first, rng)
    return cell, off


def first_arrivals(rate: np.ndarray, law: ArrivalLaw, rng: np.random.Generator, *,
                   stationary: bool = True) -> np.ndarray:
    """Time of the first arrival of each cell's renewal process after its start.

    Stationary (default): the forward-recurrence time ``U * L / rate`` with ``L`` a length-biased
    unit-mean gap, so the process is in equilibrium from the start. Otherwise one ordinary gap.
    """
    cells = np.arange(rate.size)
    if not stationary:
        return law.draw(cells, rng) / rate
    return rng.random(rate.size) * law.draw(cells, rng, length_biased=True) / rate


def continue_renewals(rate, length, law: ArrivalLaw, first, rng: np.random.Generator
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arrivals in ``[0, length)`` of renewal processes whose next arrival is at ``first``.

    The processes may have started earlier: ``first[i]`` is the time (since this piece's start)
    of cell ``i``'s next arrival, e.g. the residual returned for the previous piece, so a process
    cut into pieces (each drawn from its own random stream) is one renewal process. A cell whose
    ``first`` lies at or beyond ``length`` has no arrival here. (One unit of
    :func:`renewal_units`: the same draws from ``rng``.)

    Returns
    -------
    cell, offset
        As :func:`renewal_arrivals` returns them, offsets counted from the piece's start.
    residual : float64 array
        Per cell, the time from the piece's end to its next arrival (``>= 0``): the ``first`` of
        the next piece.
    """
    rate = np.atleast_1d(np.asarray(rate, dtype=float))
    return renewal_units(rate, length, law, np.array([0, rate.size]), [rng], first=first)


def _unit_runs(law: ArrivalLaw, cells: np.ndarray, unit_of: np.ndarray, n_units: int):
    """Runs of ``cells`` that one ``family._draw`` call of one unit draws, in :meth:`ArrivalLaw.draw`'s order.

    Returns ``order`` (positions of ``cells`` sorted by unit, then family, stably; None: already
    so), the run bounds ``cut`` (run ``r`` is ``order[cut[r]:cut[r + 1]]``), each run's family
    position and each unit's first run (``run_ptr``: runs of unit ``u`` are
    ``run_ptr[u]:run_ptr[u + 1]``).
    """
    nf = len(law.families)
    key = unit_of if nf == 1 else unit_of * nf + law.index[cells]
    order = None
    if nf > 1 and key.size > 1 and np.any(key[1:] < key[:-1]):
        # a key below 2**16 sorts as uint16: numpy's stable sort of 16-bit keys is a radix sort
        # (one pass, not a merge sort), and equal keys keep their order either way (issue 16)
        small = n_units * nf <= np.iinfo(np.uint16).max
        order = np.argsort(key.astype(np.uint16) if small else key, kind="stable")
        key = key[order]
    cut = np.flatnonzero(key[1:] != key[:-1]) + 1 if key.size else np.zeros(0, dtype=np.int64)
    starts = np.concatenate(([0], cut)) if key.size else np.zeros(0, dtype=np.int64)
    run_key = key[starts]
    run_unit = run_key // nf if nf > 1 else run_key
    run_fam = run_key % nf if nf > 1 else np.zeros(run_key.size, dtype=np.int64)
    run_ptr = np.searchsorted(run_unit, np.arange(n_units + 1))
    return order, np.concatenate((starts, [key.size])), run_fam, run_ptr


def _draw_units(law: ArrivalLaw, cells: np.ndarray, unit_of: np.ndarray, units, rngs, *, length_biased: bool = False,
                uniforms: np.ndarray | None = None, cell_ptr: np.ndarray | None = None) -> np.ndarray:
    """:meth:`ArrivalLaw.draw` of each unit's elements of ``cells`` from that unit's stream, all units at once.

    ``unit_of`` (non-decreasing) gives each element's unit; ``units`` the units to draw (all with
    elements, in order). With ``uniforms``, unit ``u`` first fills ``uniforms[cell_ptr[u]:cell_ptr[u + 1]]``
    from its stream (:func:`first_arrivals`'s order). Python loops run over units and families.
    """
    order, cut, run_fam, run_ptr = _unit_runs(law, cells, unit_of, len(rngs))
    srt = cells if order is None else cells[order]
    families = [get_arrival_family(name) for name in law.families]
    names = [family.shape_names for family in families]
    shapes = {k: v[srt] for k, v in law.shapes.items()}
    unit = np.empty(cells.size)
    cut, run_fam, run_ptr = cut.tolist(), run_fam.tolist(), run_ptr.tolist()
    for u in units:  # a loop over units, then the families of a unit: never over draws
        rng = rngs[u]
        if uniforms is not None:
            uniforms[cell_ptr[u]:cell_ptr[u + 1]] = rng.random(int(cell_ptr[u + 1] - cell_ptr[u]))
        for r in range(run_ptr[u], run_ptr[u + 1]):
            a, b, f = cut[r], cut[r + 1], run_fam[r]
            unit[a:b] = families[f]._draw({k: shapes[k][a:b] for k in names[f]}, b - a, rng,
                                          length_biased=length_biased)
    unit *= law.unit_scale[srt]  # ArrivalFamily.draw's product, element by element
    if order is None:
        return unit
    out = np.empty(cells.size)
    out[order] = unit
    return out


def renewal_units(rate, length, law: ArrivalLaw, ptr, rngs, *, first=None, stationary=None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`continue_renewals` of several units at once, each unit from its own random stream.

    Unit ``u`` holds cells ``ptr[u]:ptr[u + 1]`` (of ``rate``, ``length``, ``law`` and ``first``)
    and draws from ``rngs[u]`` exactly what ``continue_renewals`` (after :func:`first_arrivals`
    where ``stationary[u]``) draws for it alone, in the same order, so every unit's arrivals,
    residuals and later draws from its stream are the same bytes. Only the draws and the
    per-unit cumulative sums loop over units; the rest is vectorised over all cells.

    Parameters
    ----------
    rate, length : array-like
        Per cell, the rate and the piece's length (scalar length: all cells).
    law : ArrivalLaw
        Per cell.
    ptr : array-like of int
        Unit bounds in the cells (non-decreasing, from 0 to the number of cells).
    rngs : sequence of numpy.random.Generator
        One per unit.
    first : array-like, optional
        Per cell, the time of its next arrival (ignored in stationary units).
    stationary : array-like of bool, optional
        Per unit: the unit starts in equilibrium (its first arrivals drawn as
        :func:`first_arrivals` draws them). Default: none, and ``first`` is needed.

    Returns
    -------
    cell : int64 array
        The cell of each arrival (grouped by unit, non-decreasing).
    offset : float64 array
        Time of each arrival since its piece's start.
    residual : float64 array
        Per cell, the time from the piece's end to its next arrival.
    """
    rate = np.atleast_1d(np.asarray(rate, dtype=float))
    length = np.broadcast_to(np.asarray(length, dtype=float), rate.shape)
    ptr = np.asarray(ptr, dtype=np.int64)
    n_units = ptr.size - 1
    if len(rngs) != n_units:
        raise GenerationError(f"renewal_units needs one random stream per unit ({n_units}); got {len(rngs)}")
    unit_of = np.repeat(np.arange(n_units), np.diff(ptr))
    stat = np.zeros(n_units, bool) if stationary is None else np.asarray(stationary, dtype=bool)
    if first is None and not stat.all():
        raise GenerationError("renewal_units needs first (the next arrival per cell) for units that are not stationary")
    nxt = np.array(np.zeros(rate.size) if first is None else first, dtype=float, copy=True)
    if np.any(stat):  # first_arrivals: U times a length-biased gap, over the rate, per unit's stream
        cells = np.flatnonzero(stat[unit_of])
        u = np.zeros(rate.size)
        lb = _draw_units(law, cells, unit_of[cells], np.flatnonzero(stat & (ptr[1:] > ptr[:-1])).tolist(), rngs,
                         length_biased=True, uniforms=u, cell_ptr=ptr)
        nxt[cells] = u[cells] * lb / rate[cells]
    flat_length = float(length[0]) if length.size and np.all(length == length[0]) else None
    cv = np.clip(np.nan_to_num(law.cv, nan=1.0), 0.0, 1e3)  # sizes the draws only
    cells_out, offs_out = [], []
    todo = np.flatnonzero(nxt < length)
    for _ in range(_MAX_ROUNDS):
        if todo.size == 0:
            break
        m = rate[todo] * (length[todo] - nxt[todo])
        k = np.ceil(m + 4.0 * np.sqrt(m) * np.maximum(cv[todo], 1.0) + 4.0).astype(np.int64)
        # per cell k + 1 times: the known next arrival, then k drawn gaps after it
        heads = np.concatenate(([0], np.cumsum(k + 1)[:-1]))  # np.r_ costs ~10 us a call, per unit and round
        rep = np.repeat(todo, k + 1)
        rep_unit = unit_of[rep]
        units = np.unique(unit_of[todo])
        gaps = _draw_units(law, rep, rep_unit, units.tolist(), rngs)  # one draw per block more than needed
        gaps /= rate[rep]
        gaps[heads] = nxt[todo]
        # each unit's cumulative sum from its own first block (the float sums of a unit drawn alone)
        bounds = np.searchsorted(rep_unit, np.r_[units, units[-1] + 1]) if units.size > 1 else [0, rep.size]
        t = np.empty(gaps.size)
        for a, b in zip(bounds[:-1], bounds[1:]):  # a loop over units
            np.cumsum(gaps[a:b], out=t[a:b])
        ends = heads + k
        base = np.concatenate(([0.0], t[ends[:-1]]))
        base[np.flatnonzero(unit_of[todo][1:] != unit_of[todo][:-1]) + 1] = 0.0  # a unit's first block starts at 0
        t -= np.repeat(base, k + 1)
        inside = t < (flat_length if flat_length is not None else length[rep])
        n_in = np.add.reduceat(inside.astype(np.int64), heads)
        inside[ends] = False  # emitted: inside, and not the last time of a block (the next round's head)
        cells_out.append(rep[inside])
        offs_out.append(t[inside])
        nxt[todo] = t[heads + np.minimum(n_in, k)]
        todo = todo[n_in == k + 1]
    else:  # pragma: no cover - needs absurd parameters
        raise GenerationError(f"renewal arrivals did not cover {todo.size} cells in {_MAX_ROUNDS} rounds")
    residual = nxt - length
    if not cells_out:
        return np.zeros(0, dtype=np.int64), np.zeros(0), residual
    cell = np.concatenate(cells_out).astype(np.int64, copy=False)
    off = np.concatenate(offs_out)
    if len(cells_out) > 1:  # later rounds continue their cells: a stable sort on the cell suffices
        order = np.argsort(cell, kind="stable")
        cell, off = cell[order], off[order]
    return cell, off, residual


def poisson_arrivals(rate, length, family, shapes=None,
                     rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Arrivals with a Poisson count per cell, placed by the family's normalised gaps.

    Cell ``i`` gets ``N ~ Poisson(rate[i] * length[i])`` arrivals at the first ``N`` partial sums
    of ``N + 1`` gaps from its family, scaled so the ``N + 1`` gaps fill the cell. The count is
    exactly Poisson (the contract of :func:`~servelab.generator.sampling.sample_requests`, which
    round-trip fits rely on) and the within-cell gaps keep the family's shape; across cells the
    count does not carry the family's burstiness (use :func:`renewal_arrivals` for that). Same
    arguments and return as :func:`renewal_arrivals`.
    """
    if rng is None:
        raise GenerationError("poisson_arrivals needs rng (a seeded numpy Generator)")
    rate = np.atleast_1d(np.asarray(rate, dtype=float))
    length = np.broadcast_to(np.asarray(length, dtype=float), rate.shape)
    law = _as_law(family, shapes, rate.size)
    counts = rng.poisson(rate * length)
    n_gaps = counts + 1
    cell_g = np.repeat(np.arange(rate.size), n_gaps)
    gaps = law.draw(cell_g, rng)
    cum = np.cumsum(gaps)
    ends = np.cumsum(n_gaps) - 1
    base = np.r_[0.0, cum[ends[:-1]]] if rate.size else np.zeros(0)
    local = cum - np.repeat(base, n_gaps)
    keep = np.ones(cum.size, bool)
    keep[ends] = False
    cell = cell_g[keep]
    frac = local[keep] / np.repeat(local[ends], counts)
    off = np.minimum(frac * length[cell], np.nextafter(length[cell], -np.inf))
    return cell.astype(np.int64), off
