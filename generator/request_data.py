"""Draw every request-data field of a pool for every generated request.

Each field is drawn from the client's PMF for the data window, each with its own uniforms
(independent fields, as the pool records marginals only). A (client, data window) without a PMF
borrows the client's nearest data window, else the rate-weighted aggregate of the window (or, with
``borrow=False``, nulls). Fields become canonical integer columns (:func:`canonical_fields`).
Loops run over fields and (client, data window) keys, never requests.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import polars as pl

from servelab.generator.exceptions import GenerationError
from servelab.generator.grid import SegmentRates, WindowGrid, frame_of
from servelab.generator.pmf import PmfTable, aggregate_pmfs, pmf_table, sample_runs_units
from servelab.generator.pool import DATA_FIELDS

__all__ = ["CANONICAL_ORDER", "POOLED_INPUT", "DataSampler", "FieldTable", "canonical_arrays", "canonical_fields",
           "data_sampler", "int_series", "request_data"]

_MODALITIES = ("image", "audio", "video")
#: the key of :meth:`DataSampler.draw_units`'s result marking the requests whose ``input_tokens``
#: came from the pool's mix (length shrinkage); absent when none did
POOLED_INPUT = "pooled:input_tokens"
#: the data columns of a workload, in order
CANONICAL_ORDER = ("input_tokens", "output_tokens", "reason_tokens", "text_tokens", "image_tokens", "audio_tokens",
                   "video_tokens", "image_count", "audio_count", "video_count")


@dataclass(frozen=True)
class FieldTable:
    """One field's PMFs ready to draw from: ``table``, the key -> group map ``group_of_key`` (``key =
    p * D + d``; -1: no data) and, for pools with length shrinkage, each key's own-PMF weight
    ``own_weight`` (:math:`\\lambda`; 1: the own PMF only) and the group of the clients' mean PMF
    ``mix_of_key`` (-1: none). Empty ``own_weight``: no shrinkage."""

    table: PmfTable
    group_of_key: np.ndarray
    own_weight: np.ndarray
    mix_of_key: np.ndarray


def _field_sampler(data: pl.DataFrame, field: str, pool_ids: list[str], dstarts: np.ndarray,
                   weights: pl.DataFrame, wmatrix: np.ndarray, *, borrow: bool = True,
                   own_weight: np.ndarray | None = None, center: pl.DataFrame | None = None,
                   fitted_end: float = np.inf) -> FieldTable:
    """Table and key -> group map (``key = p * D + d``) for one field, with fallbacks.

    A (client, data window) without its own PMF borrows the client's nearest data window, else
    the rate-weighted aggregate of that window, else the aggregate of the whole period.
    Without ``borrow`` only the client's own windows are used (-1 in the map: no data).
    ``own_weight`` (per pool client, :math:`\\lambda` of :mod:`servelab.fitting.pool_shrinkage`):
    a key of the client's own (or nearest) PMF in a data window starting at or after
    ``fitted_end`` also maps to ``center`` (``value, probability``: the clients' mean over the
    fitted span, :func:`_fitted_mix`; None: no shrinkage), drawn with probability :math:`1 - \\lambda`. Inside the
    fitted span a client's PMFs are what it sent; past it (an extension: ``generate --rate pool``
    beyond the span, ``validate``) a sparse client's few values are a poor forecast of its next ones.
    """
    P, D = len(pool_ids), dstarts.size
    index = pl.DataFrame({"client_id": pool_ids, "p": np.arange(P)})
    sub = (
        data.filter((pl.col("field") == field) & (pl.col("probability") > 0))
        .join(index, on="client_id", how="inner")
    )
    d_idx = np.searchsorted(dstarts, sub["window_start"].to_numpy().astype(float))
    own_key = sub["p"].to_numpy() * D + d_idx
    own_keys = np.unique(own_key)
    group_of_key = np.full(P * D, -1, dtype=np.int64)
    group_of_key[own_keys] = np.arange(own_keys.size)
    groups, values, probs = [np.searchsorted(own_keys, own_key)], [sub["value"].to_numpy()], [sub["probability"].to_numpy()]
    # fallbacks for keys with traffic and no PMF of their own: the client's nearest window first
    need = np.flatnonzero((group_of_key < 0) & (wmatrix.reshape(-1) > 0))
    has_own = (group_of_key >= 0).reshape(P, D)
    still = []
    for key in need:  # loop over (client, data window) keys, never requests
        p, d = divmod(int(key), D)
        own = np.flatnonzero(has_own[p])
        if own.size:
            group_of_key[key] = group_of_key[p * D + own[np.argmin(np.abs(own - d))]]
        else:
            still.append((int(key), d))
    shrink = own_weight is not None and bool(np.any(own_weight < 1.0)) and center is not None and center.height > 0
    if still and borrow:
        # the rate-weighted aggregate of the window, else of the whole period (built only when used)
        rows = data.filter(pl.col("field") == field)
        by_window = aggregate_pmfs(rows, weights, by_window=True)
        overall = aggregate_pmfs(rows, weights, by_window=False)
        agg_d = np.searchsorted(dstarts, by_window["window_start"].to_numpy().astype(float))
        agg_ds = np.unique(agg_d)
        g_all = own_keys.size + agg_ds.size
        groups += [own_keys.size + np.searchsorted(agg_ds, agg_d), np.full(overall.height, g_all)]
        values += [by_window["value"].to_numpy(), overall["value"].to_numpy()]
        probs += [by_window["probability"].to_numpy(), overall["probability"].to_numpy()]
        agg_set = set(agg_ds.tolist())
        for key, d in still:  # the same keys, now from the aggregates
            if d in agg_set:
                group_of_key[key] = own_keys.size + int(np.searchsorted(agg_ds, d))
            elif overall.height:
                group_of_key[key] = g_all
    lam, mix_of_key = np.zeros(0), np.zeros(0, np.int64)
    if shrink:
        # keys of a client's own (or nearest) PMF: weight lambda, and the pool's mix over its
        # fitted span (the center the prior strength was fitted against: fitting.pool_shrinkage)
        g_center = max(int(g.max()) for g in groups if g.size) + 1
        groups.append(np.full(center.height, g_center))
        values.append(center["value"].to_numpy())
        probs.append(center["probability"].to_numpy())
        lam = np.ones(P * D)
        mix_of_key = np.full(P * D, -1, dtype=np.int64)
        keyed = np.flatnonzero((group_of_key >= 0) & (group_of_key < own_keys.size))
        keyed = keyed[dstarts[keyed % D] >= fitted_end - 1e-6]  # past the fitted span only
        lam[keyed] = np.repeat(np.asarray(own_weight, dtype=float), D)[keyed]
        mix_of_key[keyed] = g_center
    group, value, prob = np.concatenate(groups), np.concatenate(values), np.concatenate(probs)
    if value.size == 0:
        raise GenerationError(f"the pool has no data for field {field!r}")
    order = np.lexsort((value, group))
    return FieldTable(pmf_table(group[order], value[order], prob[order]), group_of_key, lam, mix_of_key)


def _nearest_borrow(pool, data: pl.DataFrame, need: pl.DataFrame) -> pl.DataFrame:
    """Rows of each needing client's nearest non-empty data window (whole pool), relabelled.

    ``need`` is ``[client_id, window_start]``; the result has the PMF rows of the nearest window
    of that client with ``window_start`` set to the needed one.
    """
    lazy = pool.lazy("data") if hasattr(pool, "lazy") else frame_of(pool.data).lazy()
    ids = need["client_id"].unique().to_list()
    have = lazy.filter(pl.col("client_id").is_in(ids)).select("client_id", "window_start").unique().collect()
    if have.height == 0:
        return data.clear()
    pick = (need.join(have.rename({"window_start": "src"}), on="client_id", how="inner")
            .with_columns((pl.col("src") - pl.col("window_start")).abs().alias("dist"))
            .sort("client_id", "window_start", "dist", "src")
            .group_by("client_id", "window_start", maintain_order=True).first()
            .select("client_id", "window_start", "src"))
    rows = (lazy.filter(pl.col("client_id").is_in(pick["client_id"].unique().to_list())).collect()
            .with_columns(pl.col("window_start").cast(pl.Float64))
            .join(pick.rename({"window_start": "target"}), left_on=["client_id", "window_start"],
                  right_on=["client_id", "src"], how="inner"))
    return rows.with_columns(pl.col("target").alias("window_start")).select(data.columns)


def _own_weights(pool, client_ids: list[str], fields: list[str]) -> dict[str, np.ndarray]:
    """Per field, the own-PMF weight :math:`\\lambda` of each of ``client_ids`` from the pool's
    ``clients`` table's :data:`~servelab.fitting.pool_shrinkage.OWN_WEIGHT_COLUMN` (JSON; 1 where
    absent); empty when the pool has no such column (older pools, ServeGen's) or no weight below 1."""
    from servelab.fitting.pool_shrinkage import OWN_WEIGHT_COLUMN, decode_own_weights

    clients = getattr(pool, "clients", None)
    if clients is None or OWN_WEIGHT_COLUMN not in clients.columns:
        return {}
    col = (pl.DataFrame({"client_id": client_ids}, schema={"client_id": pl.String})
           .join(clients.select("client_id", OWN_WEIGHT_COLUMN), on="client_id", how="left",
                 maintain_order="left")[OWN_WEIGHT_COLUMN])
    if col.null_count() == col.len():
        return {}
    decoded = decode_own_weights(col)  # JSON decoded once by polars, never per request
    out = {}
    for field in fields:  # a loop over fields
        if field not in decoded.struct.fields:
            continue
        w = decoded.struct.field(field).cast(pl.Float64).fill_null(1.0).to_numpy()
        if np.any(w < 1.0):
            out[field] = np.clip(w, 0.0, 1.0)
    return out


def _fitted_end(pool) -> float:
    """The end of the span the pool was fitted on: the start of an extension past it
    (``provenance["extension"]["start_s"]``, :func:`~servelab.generator.extend.extend_pool`), else
    infinity (a pool without an extension is generated inside what was fitted)."""
    ext = (getattr(pool, "provenance", None) or {}).get("extension")
    if isinstance(ext, Mapping) and ext.get("start_s") is not None:
        return float(ext["start_s"])
    return float("inf")


def _fitted_mix(pool, fields: list[str]) -> dict[str, pl.DataFrame]:
    """Per field, ``value, probability``: the center of length shrinkage, the clients' PMFs over the
    pool's fitted span weighted by their own-PMF weights :math:`\\lambda`, as the fit records it in
    the pool's provenance (``length_shrinkage``,
    :func:`~servelab.fitting.pool_shrinkage.shrinkage_centers`; selections, clips and extensions
    keep it). A field without a recorded center is not shrunk."""
    recorded = (getattr(pool, "provenance", None) or {}).get("length_shrinkage")
    if not isinstance(recorded, Mapping):
        return {}
    return {f: pl.DataFrame({"value": recorded[f]["center"]["value"],
                             "probability": recorded[f]["center"]["probability"]},
                            schema={"value": pl.Float64, "probability": pl.Float64})
            for f in fields if isinstance(recorded.get(f), Mapping) and "center" in recorded[f]}


@dataclass(frozen=True)
class DataSampler:
    """The request-data PMFs of a generation period, ready to draw from (no random state).

    Built once per workload (:func:`data_sampler`); :meth:`draw` is called per piece of the
    workload, so memory holds the pool's PMFs and never every request.
    """

    anchor: float
    dw: float
    k0: int
    n_windows: int
    tables: Mapping[str, FieldTable]

    def __post_init__(self) -> None:
        object.__setattr__(self, "tables", MappingProxyType(dict(self.tables)))

    def draw(self, pool_index: np.ndarray, t: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Every field for requests of pool clients ``pool_index`` at pool times ``t`` (NaN: no data)."""
        return self.draw_units(pool_index, t, np.array([0, np.size(t)]), [rng])

    def draw_units(self, pool_index: np.ndarray, t: np.ndarray, ptr, rngs) -> dict[str, np.ndarray]:
        """:meth:`draw` of several units at once: requests ``ptr[u]:ptr[u + 1]`` from ``rngs[u]``.

        Each unit draws from its stream what :meth:`draw` draws for it alone (fields in order,
        :func:`~servelab.generator.pmf.sample_runs_units`), so the values are the same bytes.
        """
        ptr = np.asarray(ptr, dtype=np.int64)
        d_req = np.clip(np.floor((t - self.anchor) / self.dw).astype(np.int64) - self.k0, 0, self.n_windows - 1)
        key = pool_index * self.n_windows + d_req
        cols: dict[str, np.ndarray] = {}
        mix_u = None
        if any(ft.own_weight.size for ft in self.tables.values()):
            # length shrinkage: one uniform per request, from its unit's stream before the fields',
            # says whether it draws from its client's own PMF (u < lambda) or the clients' mean
            # (the same uniform for every field: a request of a sparse client is one pool request)
            mix_u = np.concatenate([rngs[u].random(int(ptr[u + 1] - ptr[u])) for u in range(len(rngs))]
                                   or [np.zeros(0)])
        for field, ft in self.tables.items():  # a loop over fields
            g = ft.group_of_key[key]
            parts = None
            if mix_u is not None and ft.own_weight.size:
                to_mix = mix_u >= ft.own_weight[key]
                if to_mix.any():
                    g = np.where(to_mix, ft.mix_of_key[key], g)
                    if field == "input_tokens":  # a pool request's first turn is the pool's (draw_increments)
                        cols[POOLED_INPUT] = to_mix
                    # own and mix draws in two passes, each in the unit's order, so that a client's
                    # requests of one window keep their long runs of one group
                    parts = (~to_mix & (g >= 0), to_mix)
            if parts is None:
                if g.min(initial=0) >= 0:  # every request has data: no masking pass
                    cols[field] = sample_runs_units(ft.table, g, ptr, rngs)
                    continue
                parts = (g >= 0,)
            draw = np.full(t.size, np.nan)
            for ok in parts:
                kept = np.concatenate(([0], np.cumsum(ok)))[ptr]  # each unit's requests in this pass
                draw[ok] = sample_runs_units(ft.table, g[ok], kept, rngs)
            cols[field] = draw
        return cols


def data_sampler(pool, grid: WindowGrid, seg_a, seg_b, rates: SegmentRates, lo, hi, *,
                 borrow: bool) -> DataSampler | None:
    """The :class:`DataSampler` of ``pool`` over ``[lo, hi)``, or None when the pool has no data.

    Data windows form a regular grid of ``pool.data_window_s`` anchored at the pool's first data
    window. A client with traffic but no PMF in a data window borrows its nearest non-empty
    window (anywhere in the pool); with ``borrow``, a client with no data at all gets the
    rate-weighted aggregate of the window, otherwise nulls.
    """
    lazy = pool.lazy("data") if hasattr(pool, "lazy") else (frame_of(pool.data).lazy() if pool.data is not None else None)
    if lazy is None:
        return None
    bounds = lazy.select(pl.col("window_start").min().alias("a"), pl.col("window_s").max().alias("w")).collect()
    anchor = bounds["a"][0]
    if anchor is None:
        return None
    dw = float(getattr(pool, "data_window_s", None) or bounds["w"][0])
    k0 = math.floor((lo - anchor) / dw)
    k1 = math.floor((np.nextafter(hi, -np.inf) - anchor) / dw)
    dstarts = anchor + np.arange(k0, k1 + 1) * dw
    data = (lazy.filter((pl.col("window_start") >= dstarts[0] - 1e-6) & (pl.col("window_start") <= dstarts[-1] + 1e-6)
                        & (pl.col("probability") > 0))
            .with_columns(pl.col("window_start").cast(pl.Float64)).collect())
    D = dstarts.size
    # expected requests of each pool client in each data window over the period (aggregate weights)
    seg_a, seg_b = np.asarray(seg_a, dtype=float), np.asarray(seg_b, dtype=float)
    seg_d = np.clip(np.floor((seg_a - anchor) / dw).astype(np.int64) - k0, 0, D - 1)
    # a segment longer than a data window, or across its edge (a short trace's data windows:
    # PoolFitSettings.min_data_windows), weighs its first window up to the edge (the grid's next
    # start) and the later windows it overlaps (SegmentRates.overlap_row_sums, as the naive
    # baseline's mix). Without such a segment every segment weighs its whole length (also one
    # clipped to the last window)
    d_last = np.clip(np.floor((np.nextafter(seg_b, -np.inf) - anchor) / dw).astype(np.int64) - k0, 0, D - 1)
    wmatrix = rates.overlap_row_sums(seg_a, seg_b, seg_d, d_last, dstarts, anchor + np.arange(k0 + 1, k1 + 2) * dw, dw)
    # snap window starts to the grid, then borrow the nearest window for empty (client, window)s
    data = data.with_columns(pl.Series("window_start", dstarts[np.clip(np.rint(
        (data["window_start"].to_numpy() - anchor) / dw).astype(np.int64) - k0, 0, D - 1)]))
    present = data.select("client_id", "window_start").unique()
    pi, di = np.nonzero(wmatrix > 0)
    active = pl.DataFrame({"client_id": pl.Series([grid.pool_ids[i] for i in pi], dtype=pl.String),
                           "window_start": dstarts[di], "weight": wmatrix[pi, di]})
    need = active.join(present, on=["client_id", "window_start"], how="anti").select("client_id", "window_start")
    if need.height:
        data = pl.concat([data, _nearest_borrow(pool, data, need)])
    if data.height == 0:
        return None
    fields = [f for f in DATA_FIELDS if f in set(data["field"].unique().to_list())]
    fitted_end = _fitted_end(pool)
    own = _own_weights(pool, grid.pool_ids, fields) if dstarts[-1] >= fitted_end - 1e-6 else {}
    centers = _fitted_mix(pool, list(own)) if own else {}
    tables = {field: _field_sampler(data, field, grid.pool_ids, dstarts, active, wmatrix, borrow=borrow,
                                    own_weight=own.get(field), center=centers.get(field), fitted_end=fitted_end)
              for field in fields}
    return DataSampler(anchor=float(anchor), dw=dw, k0=int(k0), n_windows=int(D), tables=tables)


def request_data(pool, grid: WindowGrid, sel, client, t, seg_a, seg_b, rates: SegmentRates, lo, hi, rng, *,
                  borrow: bool) -> pl.DataFrame:
    """Draw every data field of the pool for every request (one uniform per field and request).

    :func:`data_sampler` over the period, then one :meth:`DataSampler.draw`, as canonical columns
    (:func:`canonical_fields`).
    """
    sampler = data_sampler(pool, grid, seg_a, seg_b, rates, lo, hi, borrow=borrow)
    if sampler is None:
        return pl.DataFrame()
    return canonical_fields(sampler.draw(np.asarray(sel)[client], np.asarray(t, dtype=float), rng))


def canonical_arrays(cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Sampled fields -> canonical columns as float arrays (NaN: no data), in canonical order.

    See :func:`canonical_fields` for the rules.
    """
    out: dict[str, np.ndarray] = {}
    for m in _MODALITIES:
        tok, cnt = cols.get(f"{m}_tokens"), cols.get(f"{m}_count")
        if cnt is not None:
            out[f"{m}_count"] = np.rint(cnt)
        if tok is not None:
            out[f"{m}_tokens"] = np.rint(tok) * (out[f"{m}_count"] if cnt is not None else 1.0)
    for f in ("text_tokens", "input_tokens", "output_tokens", "reason_tokens"):
        if f in cols:
            out[f] = np.rint(cols[f])
    if "input_tokens" not in out and "text_tokens" in out:
        out["input_tokens"] = out["text_tokens"] + sum(
            np.nan_to_num(out[f"{m}_tokens"]) for m in _MODALITIES if f"{m}_tokens" in out)
    if "reason_tokens" not in out and "reason_ratio" in cols and "output_tokens" in out:
        out["reason_tokens"] = np.rint(np.clip(cols["reason_ratio"], 0, 1) * out["output_tokens"])
    return {c: out[c] for c in CANONICAL_ORDER if c in out}


def int_series(name: str, values: np.ndarray) -> pl.Series:
    """A canonical Int64 column from float draws (null where NaN)."""
    if np.isnan(values).any():
        return pl.Series(name, values).fill_nan(None).cast(pl.Int64)
    return pl.Series(name, values.astype(np.int64))


def canonical_fields(cols: dict[str, np.ndarray]) -> pl.DataFrame:
    """Sampled fields -> canonical integer columns (null where a draw is NaN: no data).

    ``reason_tokens = round(reason_ratio * output_tokens)``; ServeGen's multimodal ``<m>_tokens``
    are tokens per item, so a request's ``<m>_tokens = round(per-item) * <m>_count``; without an
    ``input_tokens`` field, ``input_tokens = text_tokens + sum of modality tokens``.
    """
    return pl.DataFrame([int_series(c, v) for c, v in canonical_arrays(cols).items()])
