"""Multi-turn conversations in a generated workload: per-client turns and inter-turn-time models.

From a pool's conversation PMFs (or its summary row: geometric turns, exponential ITTs), each
conversation start becomes a conversation of sampled turns at sampled inter-turn times
(:func:`expand_conversations`); a follow-up's input holds its history
(:func:`accumulate_context`): with the pool's fitted increments (``input_increment`` rows of
``conversation_pmfs``, :mod:`servelab.fitting.pool_conversations`) it is the history plus a new
prompt drawn from the client's increment PMF, and a first turn's input is drawn from the
client's first-turn PMF (``first_input`` rows for single-turn conversations,
``first_input_multi`` for the starts of longer ones) (:func:`draw_increments`); links are written as
canonical columns (:func:`link_columns`). Loops run over clients and turn numbers, never requests.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import polars as pl

from servelab.generator.grid import frame_of
from servelab.generator.pmf import PmfTable, pmf_cdf_index, pmf_table, sample_pmf
from servelab.generator.pmf_lookup import CdfGrid, cdf_around, cdf_grid

__all__ = ["CONTEXTS", "ConversationModel", "conversation_model", "expand_conversations", "accumulate_context",
           "accumulate_inputs", "data_cdf_grid", "draw_increments", "fresh_followups", "followups_grow", "link_columns",
           "pool_input_cdf"]

#: how a follow-up's input holds its history (see :func:`accumulate_inputs`)
CONTEXTS = ("fitted", "sorted", "additive")
#: the ``quantity`` of the increment rows (:data:`servelab.fitting.pool_conversations.INCREMENT`)
_INCREMENT = "input_increment"
#: the ``quantity`` of first-turn inputs (:data:`servelab.fitting.pool_conversations.FIRST_INPUT`)
_FIRST = "first_input"
_FIRST_MULTI = "first_input_multi"
#: inter-turn times in the trace's traffic time (:data:`servelab.fitting.pool_conversations.ITT_TRAFFIC`)
_ITT_TRAFFIC = "itt_traffic_s"
#: first turns of a workload (all its :func:`draw_increments` calls) after which their CDF pair is
#: read from a grid (:func:`data_cdf_grid`): the grid costs about one search per cell (up to
#: pmf_lookup.MAX_CELLS, 2**21), so a workload of fewer first turns searches faster than it builds
#: (600 s at 100 req/s from an m-large-sized pool: building it was 0.09 s of 0.57 s at 50,000 rows
#: per call)
_GRID_MIN_ROWS = 250_000
#: the pooled row saying increments follow the data windows
#: (:data:`servelab.fitting.pool_conversations.INCREMENT_PROFILE`)
_INC_PROFILE = "input_increment_profile"


@dataclass(frozen=True)
class ConversationModel:
    """Per pool client: does it converse, its mean turns, and its turns / ITT PMFs."""

    has: np.ndarray  # (P,) bool
    mean_turns: np.ndarray  # (P,)
    turns: PmfTable  # groups = t_map[p]
    itt: PmfTable  # groups = i_map[p]
    t_map: np.ndarray  # pool index -> turns group (-1: none)
    i_map: np.ndarray  # pool index -> ITT group (-1: none)
    max_itt: float
    max_turns: int
    inc: PmfTable | None = None  # follow-up input increments, groups = inc_map[p] (None: not fitted)
    inc_map: np.ndarray | None = None  # pool index -> increment group (-1: none)
    first: PmfTable | None = None  # first-turn inputs, groups = first_map[p] (None: not fitted)
    first_map: np.ndarray | None = None  # pool index -> first-input group (-1: none)
    first_multi: PmfTable | None = None  # first turns of conversations of >= 2 turns
    first_multi_map: np.ndarray | None = None
    grows: np.ndarray | None = None  # (P,) bool: follow-ups hold their history (see followups_grow)
    # the pool-wide input_tokens PMF of clients with >= 2 data windows (see pool_input_cdf), for the
    # time profile of first-turn inputs (draw_increments); groups = data_cdf_map[p] (-1: none)
    data_cdf: PmfTable | None = None
    data_cdf_map: np.ndarray | None = None
    data_cdf_index: tuple | None = None  # pmf_cdf_index(data_cdf), built once
    # the pool's INCREMENT_PROFILE row: growing follow-ups' increments follow the data windows too
    inc_profile: bool = False
    # the pooled first-turn PMFs (null client_id rows; one group each), for the first turns of
    # requests drawn from the clients' mean by length shrinkage (draw_increments' ``pooled``)
    first_pooled: PmfTable | None = None
    first_multi_pooled: PmfTable | None = None
    # (P,) bool: clients with first-turn rows of their own and no follow-up (no increment or
    # multi-turn first-input rows of their own): every request of theirs is a first turn, so their
    # first-turn PMF is their input marginal over the span, and their first turns keep the data
    # PMF's draw (the data window's PMF, finer than the span's first-turn bins) (draw_increments)
    first_is_data: np.ndarray | None = None


def _conversation_pmfs(pool) -> pl.DataFrame | None:
    """``[client_id, quantity, value, probability]`` with ``quantity`` in (turns, itt_s), or None.

    From ``pool.conversation_pmfs`` when present. A turns PMF without mass at 1 describes
    multi-turn conversations only; with the client's ``multi_turn_share`` (share of requests in
    conversations of >= 2 turns, from ``pool.conversations``) single-turn conversations are added
    back: ``P(1) = (1 - s) / ((1 - s) + s / m)`` with ``m`` the multi-turn mean. Clients with a
    summary row but no PMFs get geometric turns with the row's ``turns_mean`` and exponential ITTs
    with its ``itt_mean_s``, binned at 1 s (a 99.9 % quantile cap).
    """
    pmfs = frame_of(getattr(pool, "conversation_pmfs", None))
    summary = frame_of(getattr(pool, "conversations", None))
    parts = []
    if pmfs is not None and pmfs.height and "quantity" in pmfs.columns:
        parts.append(pmfs.select("client_id", "quantity", pl.col("value").cast(pl.Float64),
                                 pl.col("probability").cast(pl.Float64)))
    if summary is not None and summary.height and {"turns_mean", "itt_mean_s"} <= set(summary.columns):
        have = set(parts[0]["client_id"].unique().to_list()) if parts else set()
        rows = summary.filter(~pl.col("client_id").is_in(list(have)) & (pl.col("turns_mean") > 1)
                              & (pl.col("itt_mean_s") > 0))
        for cid, tm, im in rows.select("client_id", "turns_mean", "itt_mean_s").iter_rows():  # per client
            q = 1.0 / tm
            k = np.arange(1, int(np.ceil(np.log(1e-3) / np.log1p(-q))) + 2 if q < 1 else 2)
            pk = q * (1 - q) ** (k - 1)
            x = np.arange(0.5, -np.log(1e-3) * im + 1.0)
            px = np.exp(-(x - 0.5) / im) - np.exp(-(x + 0.5) / im)
            parts.append(pl.DataFrame({
                "client_id": [cid] * (k.size + x.size), "quantity": ["turns"] * k.size + ["itt_s"] * x.size,
                "value": np.r_[k.astype(float), x], "probability": np.r_[pk, px]}))
    if not parts:
        return None
    out = pl.concat(parts).filter(pl.col("probability") > 0)
    if summary is not None and summary.height and "multi_turn_share" in summary.columns:
        turns = out.filter(pl.col("quantity") == "turns")
        multi_only = (turns.group_by("client_id").agg(pl.col("value").min().alias("vmin"),
                                                     ((pl.col("value") * pl.col("probability")).sum()
                                                      / pl.col("probability").sum()).alias("m"))
                      .filter(pl.col("vmin") >= 2)
                      .join(summary.select("client_id", "multi_turn_share"), on="client_id", how="inner")
                      .filter(pl.col("multi_turn_share").is_between(0, 1, closed="left")))
        if multi_only.height:
            s_, m_ = pl.col("multi_turn_share"), pl.col("m")
            single = multi_only.select(
                "client_id", pl.lit("turns").alias("quantity"), pl.lit(1.0).alias("value"),
                ((1 - s_) / ((1 - s_) + s_ / m_)).alias("p1"))
            scaled = (turns.join(multi_only, on="client_id", how="inner")
                      .with_columns((pl.col("probability") / pl.col("probability").sum().over("client_id")
                                     * (s_ / m_) / ((1 - s_) + s_ / m_)).alias("probability"))
                      .select("client_id", "quantity", "value", "probability"))
            rest = out.filter(~((pl.col("quantity") == "turns") & pl.col("client_id").is_in(multi_only["client_id"].to_list())))
            out = pl.concat([rest, scaled, single.rename({"p1": "probability"})])
    return out


def conversation_model(pool, pool_ids: list[str], *, needed: np.ndarray | None = None) -> ConversationModel | None:
    """Per pool client turns and ITT PMF tables (see :func:`_conversation_pmfs`), or None.

    A client without conversation parameters is single-turn; rows with a null ``client_id``
    apply to every client without rows of its own. ``needed`` (pool indices, optional): the
    clients that will draw; the pool-wide input PMFs (:func:`pool_input_cdf`) are built for
    them only (the same bytes for them; the other clients map to -1).
    """
    conv = _conversation_pmfs(pool)
    if conv is None or conv.height == 0:
        return None
    # turns are spaced by the inter-turn times in the trace's traffic time where the pool has them
    # (servelab.fitting.pool_conversations.ITT_TRAFFIC): they carry the traffic between turns
    traffic = conv.filter(pl.col("quantity") == _ITT_TRAFFIC)
    if traffic.height:
        conv = pl.concat([conv.filter((pl.col("quantity") != _ITT_TRAFFIC) & ~(
            (pl.col("quantity") == "itt_s") & pl.col("client_id").is_in(traffic["client_id"].unique().to_list()))),
            traffic.with_columns(pl.lit("itt_s").alias("quantity"))])
    P = len(pool_ids)
    index = pl.DataFrame({"client_id": pool_ids, "p": np.arange(P)})
    parts = {}
    for field in ("turns", "itt_s"):
        own = _client_rows(conv, index, P, field)
        if own is None:
            return None
        parts[field] = own
    turns, itt = parts["turns"], parts["itt_s"]
    inc, inc_map = _quantity_table(conv, index, P, _INCREMENT)
    first, first_map = _quantity_table(conv, index, P, _FIRST) if inc is not None else (None, None)
    first_multi, first_multi_map = _quantity_table(conv, index, P, _FIRST_MULTI) if inc is not None else (None, None)
    tp, tv, tw = turns["p"].to_numpy(), turns["value"].to_numpy(), turns["probability"].to_numpy()
    turns_table, t_map = _table_of(tp, tv, tw, P)
    itt_table, i_map = _table_of(itt["p"].to_numpy(), itt["value"].to_numpy(), itt["probability"].to_numpy(), P)
    has = (t_map >= 0) & (i_map >= 0)
    t_present = np.flatnonzero(t_map >= 0)
    mean_turns = np.ones(P)
    mean_turns[t_present] = (np.bincount(tp, weights=tv * tw, minlength=P)[t_present]
                             / np.bincount(tp, weights=tw, minlength=P)[t_present])
    data_cdf, data_cdf_map = (pool_input_cdf(pool, index, P, needed=needed)
                              if first is not None or first_multi is not None else (None, None))
    first_is_data = None
    if first is not None:
        named = conv.filter(pl.col("client_id").is_not_null() & (pl.col("probability") > 0))
        with_first = named.filter(pl.col("quantity") == _FIRST)["client_id"].unique()
        with_follow = named.filter(pl.col("quantity").is_in([_INCREMENT, _FIRST_MULTI]))["client_id"].unique()
        ids = pl.Series(pool_ids, dtype=pl.String)
        first_is_data = (ids.is_in(with_first.to_list()) & ~ids.is_in(with_follow.to_list())).to_numpy()
    return ConversationModel(
        data_cdf=data_cdf,
        data_cdf_map=data_cdf_map,
        data_cdf_index=pmf_cdf_index(data_cdf) if data_cdf is not None else None,
        has=has,
        mean_turns=np.where(has, np.maximum(mean_turns, 1.0), 1.0),
        turns=turns_table,
        itt=itt_table,
        t_map=t_map,
        i_map=i_map,
        max_itt=float(itt["value"].max()),
        max_turns=int(turns["value"].max()),
        inc=inc,
        inc_map=inc_map,
        first=first,
        first_map=first_map,
        first_multi=first_multi,
        first_multi_map=first_multi_map,
        grows=followups_grow(inc, inc_map) if inc is not None else None,
        inc_profile=bool(conv.filter((pl.col("quantity") == _INC_PROFILE) & (pl.col("value") > 0)).height),
        first_pooled=_pooled_table(conv, _FIRST) if first is not None else None,
        first_multi_pooled=_pooled_table(conv, _FIRST_MULTI) if first_multi is not None else None,
        first_is_data=first_is_data,
    )


def _pooled_table(conv: pl.DataFrame, quantity: str) -> PmfTable | None:
    """The pooled rows (null ``client_id``) of ``quantity`` as a one-group table, or None."""
    rows = conv.filter((pl.col("quantity") == quantity) & pl.col("client_id").is_null()
                       & (pl.col("probability") > 0)).sort("value")
    if rows.height == 0:
        return None
    return pmf_table(np.zeros(rows.height, dtype=np.int64), rows["value"].to_numpy(), rows["probability"].to_numpy())


def pool_input_cdf(pool, index: pl.DataFrame, P: int, *, needed: np.ndarray | None = None
                   ) -> tuple[PmfTable | None, np.ndarray | None]:
    """Per pool client with ``input_tokens`` PMFs in two or more data windows: the pool-wide PMF
    (the windows' PMFs mixed by the requests each window holds), as a table and a map from pool
    index (``index``: ``client_id, p``) to its group (-1: none); ``(None, None)`` when no client
    qualifies.

    A window's requests are the client's arrival rates times the window's overlap with each
    arrival window inside the covered span (``provenance["arrivals"]["covered_s"]`` when the pool
    records it; rates are per covered second) (data windows may be shorter than arrival windows on short traces:
    :attr:`~servelab.fitting.pool_settings.PoolFitSettings.min_data_windows`). This is the
    population the client's first-turn input PMF was fitted on, so the position of a request's
    data draw in it carries the data window's time profile to its first-turn input
    (:func:`draw_increments`).

    Parameters
    ----------
    pool : ClientPool or pool-like
        Needs ``data`` and ``arrivals`` (the pool's tables); ``provenance`` optional.
    index : polars.DataFrame
        ``client_id, p``: the pool index of each client id.
    P : int
        Number of pool indices.
    needed : numpy.ndarray of int, optional
        Pool indices whose PMFs are built (default: every client). The groups keep the numbers
        they have among all clients, so a needed client's entries are the same bytes as without
        ``needed``; only the needed clients' data rows are joined and mixed (a short workload
        of a large pool reads a fraction of its data table). The other clients map to -1.

    Returns
    -------
    (PmfTable or None, numpy.ndarray or None)
        The pool-wide input PMFs (one group per qualifying client) and the map from pool index to
        group (-1: none).
    """
    if needed is not None:
        return _needed_input_cdf(pool, index, P, np.asarray(needed, dtype=np.int64))
    data = frame_of(getattr(pool, "data", None))
    arrivals = frame_of(getattr(pool, "arrivals", None))
    if data is None or arrivals is None or data.height == 0 or "field" not in data.columns:
        return None, None
    data = data.filter((pl.col("field") == "input_tokens") & (pl.col("probability") > 0))
    multi = (data.group_by("client_id").agg(pl.col("window_start").n_unique().alias("k"))
             .filter(pl.col("k") >= 2)["client_id"])
    data = data.filter(pl.col("client_id").is_in(multi.to_list()))
    if data.height == 0:
        return None, None
    dw = float(data["window_s"].max())
    w = _window_requests(pool, arrivals, multi, dw)
    mixed = _mix_windows(data, w, dw, index)
    if mixed.height == 0:
        return None, None
    return _table_of(mixed["p"].to_numpy(), mixed["value"].to_numpy(), mixed["m"].to_numpy(), P)


def _window_requests(pool, arrivals: pl.DataFrame, multi: pl.Series, dw: float) -> pl.DataFrame:
    """``client_id, k, requests``: each (client of ``multi``, data window ``k``)'s requests (see
    :func:`pool_input_cdf`)."""
    # rates are requests per second of the window inside the trace's covered span: count there only
    covered = ((getattr(pool, "provenance", None) or {}).get("arrivals") or {}).get("covered_s")
    lo, hi = (float(covered[0]), float(covered[1])) if covered else (-np.inf, np.inf)
    # requests of each (client, data window): rate x overlap, summed over the client's arrival
    # windows; each arrival window is cut at the data grid (k * dw, as pool fitting bins data)
    w = (arrivals.lazy().filter((pl.col("rate") > 0) & pl.col("client_id").is_in(multi.to_list()))
         .select("client_id", pl.col("window_start").clip(lower_bound=lo).alias("a0"),
                 (pl.col("window_start") + pl.col("window_s")).clip(upper_bound=hi).alias("a1"), "rate")
         .with_columns(pl.int_ranges((pl.col("a0") / dw).floor().cast(pl.Int64),
                                     ((pl.col("a1") / dw).ceil().cast(pl.Int64)).clip(lower_bound=(
                                         pl.col("a0") / dw).floor().cast(pl.Int64) + 1)).alias("k"))
         .explode("k")
         .with_columns((pl.min_horizontal((pl.col("k") + 1).cast(pl.Float64) * dw, "a1")
                        - pl.max_horizontal(pl.col("k").cast(pl.Float64) * dw, "a0")).clip(lower_bound=0.0).alias("o"))
         .group_by("client_id", "k").agg((pl.col("rate") * pl.col("o")).sum().alias("requests"))
         .collect())
    return w


def _window_key(dw: float) -> pl.Expr:
    return (pl.col("window_start").cast(pl.Float64) / dw).round().cast(pl.Int64).alias("k")


def _mix_windows(data: pl.DataFrame, w: pl.DataFrame, dw: float, index: pl.DataFrame) -> pl.DataFrame:
    """``client_id, value, m, p`` sorted by ``p, value``: the data rows mixed by their window's requests."""
    return (data.with_columns(_window_key(dw))
            .join(w, on=["client_id", "k"], how="inner")
            .group_by("client_id", "value").agg((pl.col("probability") * pl.col("requests")).sum().alias("m"))
            .filter(pl.col("m") > 0)
            .join(index, on="client_id", how="inner").sort("p", "value"))


def _needed_input_cdf(pool, index: pl.DataFrame, P: int, needed: np.ndarray
                      ) -> tuple[PmfTable | None, np.ndarray | None]:
    """:func:`pool_input_cdf` for the pool indices ``needed`` only, with every group numbered as there.

    The qualifying clients (two or more data windows, some window with requests > 0: then some
    mixed mass ``m`` is > 0) are found from the (client, data window) keys alone; the rows of
    the needed clients are mixed as in :func:`pool_input_cdf` (a client's sums see its own rows
    in the same order), and each group keeps its number among all qualifying clients, so its
    ``cum`` entries (``group + within``) are the same bits. When a needed client's mixed mass
    disagrees with the key rule (masses below the smallest double), the whole table is built.
    """
    lazy = pool.lazy("data") if hasattr(pool, "lazy") else None
    if lazy is None:
        frame = frame_of(getattr(pool, "data", None))
        lazy = frame.lazy() if frame is not None else None
    arrivals = frame_of(getattr(pool, "arrivals", None))
    if lazy is None or arrivals is None or "field" not in lazy.collect_schema().names():
        return None, None
    rows = lazy.filter((pl.col("field") == "input_tokens") & (pl.col("probability") > 0))
    keys = rows.group_by("client_id", "window_start").agg(pl.col("window_s").max()).collect()
    multi = keys.group_by("client_id").agg(pl.len().alias("k")).filter(pl.col("k") >= 2)["client_id"]
    keys = keys.filter(pl.col("client_id").is_in(multi.to_list()))
    if keys.height == 0:
        return None, None
    dw = float(keys["window_s"].max())
    w = _window_requests(pool, arrivals, multi, dw)
    qualify = (keys.select("client_id", _window_key(dw)).join(w.filter(pl.col("requests") > 0), on=["client_id", "k"],
                                                              how="inner")
               .select("client_id").unique().join(index, on="client_id", how="inner")["p"].to_numpy())
    group_of = np.full(P, -1, dtype=np.int64)
    group_of[np.sort(qualify)] = np.arange(qualify.size)
    ids = index.filter(pl.Series(np.isin(index["p"].to_numpy(), needed)))["client_id"]
    data = rows.filter(pl.col("client_id").is_in(ids.to_list()) & pl.col("client_id").is_in(multi.to_list())).collect()
    mixed = _mix_windows(data, w, dw, index)
    p = mixed["p"].to_numpy()
    built = np.unique(p)
    if not np.array_equal(built, np.intersect1d(np.flatnonzero(group_of >= 0), needed)):
        return pool_input_cdf(pool, index, P)  # the key rule missed a client: number the groups from the masses
    if mixed.height == 0:
        return None, None
    out = np.full(P, -1, dtype=np.int64)
    out[built] = group_of[built]
    return pmf_table(group_of[p], mixed["value"].to_numpy(), mixed["m"].to_numpy()), out


def followups_grow(inc: PmfTable, inc_map: np.ndarray) -> np.ndarray:
    """Per pool client: do its follow-ups hold their history (True), or are they fresh prompts?

    The rule is the median of the client's increment PMF (``input - history``): a follow-up that
    holds its history exceeds it by its new prompt, so the median is >= 0 (a few negative
    increments come from truncated contexts); a follow-up that does not hold it is a fresh draw
    ``x`` with ``x - (x_prev + out_prev) < 0`` more often than ``x < x_prev``, i.e. more than half
    the time, so the median is < 0. Adding a history to such a client's inputs, then an
    increment drawn from that spread, distorts its input lengths; the generator draws them fresh
    instead (:func:`draw_increments`). Clients without an increment PMF count as growing.
    """
    n_groups = int(inc_map.max()) + 1 if inc_map.size else 0
    median = inc.values[np.searchsorted(inc.cum, np.arange(n_groups) + 0.5, side="left")]
    return np.where(inc_map >= 0, median[np.maximum(inc_map, 0)] >= 0, True) if n_groups else np.ones(inc_map.size, bool)


def _client_rows(conv: pl.DataFrame, index: pl.DataFrame, P: int, quantity: str) -> pl.DataFrame | None:
    """``p, value, probability`` of ``quantity`` per pool index, sorted: a client's own rows, and the
    pooled rows (null ``client_id``) for every client without its own; None when there are none."""
    rows = conv.filter((pl.col("quantity") == quantity) & (pl.col("probability") > 0))
    own = rows.filter(pl.col("client_id").is_not_null()).join(index, on="client_id", how="inner")
    own = own.select("p", "value", "probability")
    shared = rows.filter(pl.col("client_id").is_null())
    if shared.height:
        missing = np.setdiff1d(np.arange(P), own["p"].unique().to_numpy())
        fill = pl.DataFrame({"p": missing}).join(shared.select("value", "probability"), how="cross")
        own = pl.concat([own, fill.select("p", "value", "probability")])
    return own.sort(["p", "value"]) if own.height else None


def _quantity_table(conv: pl.DataFrame, index: pl.DataFrame, P: int, quantity: str
                    ) -> tuple[PmfTable | None, np.ndarray | None]:
    """The PMF table of ``quantity`` and its group per pool index (a client's own rows, else the
    pooled rows with a null ``client_id``, else -1); ``(None, None)`` without such rows."""
    own = _client_rows(conv, index, P, quantity)
    if own is None:
        return None, None
    return _table_of(own["p"].to_numpy(), own["value"].to_numpy(), own["probability"].to_numpy(), P)


def _table_of(p: np.ndarray, values: np.ndarray, weights: np.ndarray, P: int) -> tuple[PmfTable, np.ndarray]:
    """The PMF table of rows sorted by (pool index ``p``, value), one group per pool index present
    (in index order), and the map from pool index (``0 .. P - 1``) to its group (-1: none)."""
    present = np.unique(p)
    group_of = np.full(P, -1)
    group_of[present] = np.arange(present.size)
    return pmf_table(group_of[p], values, weights), group_of


def draw_increments(conv: ConversationModel, pool_index: np.ndarray, turn: np.ndarray, inp: np.ndarray, rng, *,
                    pooled: np.ndarray | None = None) -> np.ndarray:
    """Per row: a first turn's input, or a follow-up's input increment (float, rounded).

    A follow-up (``turn > 1``) draws from its pool client's increment PMF (``pool_index`` per
    row), 0 for a client without one (own or pooled), and keeps its ``inp`` (a fresh draw) when
    its client's follow-ups do not grow (:func:`followups_grow`; pass the same rows as ``fresh``
    to :func:`accumulate_inputs`); a first turn draws from the client's
    first-turn input PMF (of single-turn conversations, or of the starts of longer ones when the
    next row is its turn 2), keeping its ``inp`` (the data PMF's draw) where there is none and for
    a client with no follow-up of its own (``conv.first_is_data``: its first turns are all its
    requests, which its data PMFs hold per data window, finer than the span's first-turn bins). One
    uniform per row, in row order, from ``rng``; rows grouped by conversation in turn order.
    For a client with data in two or more windows (``conv.data_cdf``), a first turn's uniform is
    the position of its data draw ``inp`` (its data window's PMF) in the client's pool-wide input
    PMF, randomised within the draw's mass by the row's uniform: uniform over the pool's span (the
    first-turn PMF's marginal is kept), and high where the window's prompts are long (a trace
    whose prompts grow keeps growing first turns). A growing follow-up's increment gets the same
    uniform of its own data draw when the pool says its increments follow the data windows
    (``conv.inc_profile``, the pool's ``input_increment_profile`` row,
    :func:`servelab.fitting.pool_conversations.increment_profile_rows`); else its uniform is free.
    A first turn of ``pooled`` (its data draw came from the clients' mean: length shrinkage,
    :mod:`servelab.fitting.pool_shrinkage`) draws from the pooled first-turn PMF (null
    ``client_id``) where the pool has one, with its free uniform: its draw's position in its
    client's own PMF would sit at that PMF's ends.
    """
    out = np.asarray(inp, dtype=float).copy()
    if conv.inc is None or turn.size == 0:
        return out
    u = rng.random(turn.size)
    follow = turn > 1
    multi = ~follow & np.r_[follow[1:], False]
    as_data = getattr(conv, "first_is_data", None)
    single = ~follow & ~multi
    if as_data is not None:
        single &= ~as_data[pool_index]
    fresh = fresh_followups(conv, pool_index, turn)
    out[follow & ~fresh] = 0.0
    if conv.data_cdf is not None and (conv.first is not None or conv.first_multi is not None):
        # a first turn's uniform is its data draw's position in the client's pool-wide input PMF
        # (randomised within the draw's mass by u): uniform over the pool's span, high in windows
        # of long prompts, so first-turn inputs follow the data windows' time profile
        firsts = np.flatnonzero(~fresh if getattr(conv, "inc_profile", False) else ~follow)
        if pooled is not None:
            firsts = firsts[~pooled[firsts]]
        g = conv.data_cdf_map[pool_index[firsts]]
        ok = g >= 0
        rows, g = firsts[ok], g[ok]
        x = np.rint(np.asarray(inp, dtype=float)[rows])  # out holds 0 on follow-ups
        index = getattr(conv, "data_cdf_index", None)
        # many rows: the CDF pair read from a grid of the PMFs at the half-integers (built once,
        # the searches' bits), not searched (issue 16)
        seen = conv.__dict__.get("_first_rows", 0) + rows.size  # this workload's first turns so far
        object.__setattr__(conv, "_first_rows", seen)
        grid = data_cdf_grid(conv) if seen >= _GRID_MIN_ROWS else None
        below, upto = cdf_around(conv.data_cdf, g, x, index=index, grid=grid)
        u = u.copy()
        u[rows] = np.minimum(below + u[rows] * (upto - below), np.nextafter(1.0, 0.0))
    for table, gmap, rows, shared in ((conv.inc, conv.inc_map, np.flatnonzero(follow & ~fresh), None),
                                      (conv.first, conv.first_map, np.flatnonzero(single),
                                       getattr(conv, "first_pooled", None)),
                                      (conv.first_multi, conv.first_multi_map, np.flatnonzero(multi),
                                       getattr(conv, "first_multi_pooled", None))):  # 3 quantities
        if table is None or rows.size == 0:
            continue
        if pooled is not None and shared is not None:
            to_pool = pooled[rows]
            if to_pool.any():
                out[rows[to_pool]] = np.rint(sample_pmf(shared, np.zeros(int(to_pool.sum()), np.int64),
                                                        u[rows[to_pool]]))
                rows = rows[~to_pool]
        g = gmap[pool_index[rows]]
        ok = g >= 0
        out[rows[ok]] = np.rint(sample_pmf(table, g[ok], u[rows[ok]]))
    return out



def data_cdf_grid(conv: ConversationModel) -> CdfGrid | None:
    """The :func:`~servelab.generator.pmf_lookup.cdf_grid` of ``conv.data_cdf``, built on first use and kept.

    Kept on the model (a frozen dataclass: set through ``object.__setattr__`` as a plain
    attribute) because every unit of a workload reads it; built only once the workload has many
    first turns (:data:`_GRID_MIN_ROWS`), since a short workload searches faster than it builds.
    """
    grid = conv.__dict__.get("_data_cdf_grid", False)
    if grid is False:
        grid = cdf_grid(conv.data_cdf, getattr(conv, "data_cdf_index", None)) if conv.data_cdf is not None else None
        object.__setattr__(conv, "_data_cdf_grid", grid)
    return grid


def fresh_followups(conv: ConversationModel, pool_index: np.ndarray, turn: np.ndarray) -> np.ndarray:
    """Per row: a follow-up of a client whose follow-ups do not grow (:func:`followups_grow`)."""
    if conv.grows is None:
        return np.zeros(turn.size, bool)
    return (turn > 1) & ~conv.grows[pool_index]


def expand_conversations(t, client, sel, conv: ConversationModel, rng):
    """Turn conversation starts into requests: turns and ITTs drawn per conversation."""
    n = t.size
    has = conv.has[sel[client]]
    k = np.ones(n, dtype=np.int64)
    hs = np.flatnonzero(has)
    if hs.size:
        g = conv.t_map[sel[client[hs]]]
        k[hs] = np.maximum(np.rint(sample_pmf(conv.turns, g, rng.random(hs.size))), 1).astype(np.int64)
    conv_id = np.repeat(np.arange(n, dtype=np.int64), k)
    first = np.cumsum(k) - k  # start row of each conversation (empty when the unit has no start)
    turn = np.arange(conv_id.size) - np.repeat(first, k) + 1
    follow = turn > 1
    cl = np.repeat(client, k)
    gaps = np.zeros(conv_id.size)
    if np.any(follow):
        gi = conv.i_map[sel[cl[follow]]]
        gaps[follow] = sample_pmf(conv.itt, gi, rng.random(int(follow.sum())))
    c = np.cumsum(gaps)
    c -= np.repeat(c[first], k)
    times = np.repeat(t, k) + c
    return times, cl, conv_id, turn


def accumulate_context(frame: pl.DataFrame, turn: np.ndarray, *, context: str) -> pl.DataFrame:
    """A follow-up's input holds its history ``h`` (the previous turn's input + output).

    Rows are grouped by conversation in turn order (see :func:`expand_conversations`), so a
    follow-up's parent is the row before it; turns are processed level by level (a loop over turn
    numbers, never requests).

    ``sorted``: the conversation's independent draws are assigned to its turns in ascending order
    and each follow-up's input is ``max(draw, h)``: the multiset of inputs, hence the marginal the
    pool records (which, fitted from a real trace, already includes histories), is kept except
    where a draw falls below its history. ``additive``: input = ``h`` + the row's own draw (for
    PMFs of fresh prompts). ``fitted`` needs increments: use :func:`accumulate_inputs`.
    """
    if "input_tokens" not in frame.columns:
        return frame
    inp = frame["input_tokens"].fill_null(0).to_numpy().astype(np.int64)
    out = (frame["output_tokens"].fill_null(0).to_numpy().astype(np.int64) if "output_tokens" in frame.columns
           else np.zeros_like(inp))
    if not np.any(turn > 1):
        return frame
    inp = accumulate_inputs(inp, out, turn, context=context)
    return frame.with_columns(pl.Series("input_tokens", inp, dtype=pl.Int64))


def accumulate_inputs(inp: np.ndarray, out: np.ndarray, turn: np.ndarray, *, context: str,
                      increments: np.ndarray | None = None, fresh: np.ndarray | None = None) -> np.ndarray:
    """The array form of :func:`accumulate_context`: new inputs from inputs, outputs and turn numbers.

    ``inp`` and ``out`` are numbers per row (NaN or null counted as 0 by the caller), rows grouped
    by conversation in turn order. ``fitted`` (needs ``increments``, one per row, from
    :func:`draw_increments`): a follow-up's input is ``max(h + increment, 1)``, a first turn's
    is its ``increments`` entry (its first-turn draw); a follow-up marked in ``fresh`` (bool per
    row, :func:`fresh_followups`) keeps its ``increments`` entry as its input (no history).
    Returns a new array of the inputs' dtype.
    """
    if context not in CONTEXTS:
        raise ValueError(f"context must be one of {list(CONTEXTS)}; got {context!r}")
    inp = np.array(inp, copy=True)
    if context == "fitted":
        if increments is None or np.shape(increments) != np.shape(inp):
            raise ValueError(f"context 'fitted' needs one increment per row ({np.shape(inp)}); got "
                             f"{None if increments is None else np.shape(increments)!r}")
        inp[:] = np.asarray(increments)
    follow = np.flatnonzero(turn > 1)
    if follow.size == 0:
        return inp
    if context == "sorted":
        conv = np.cumsum(turn == 1)  # conversation blocks are contiguous, turn 1 first
        inp = inp[np.lexsort((inp, conv))]
    levels_of = turn[follow]
    # turn numbers below 2**16 sort as uint16: numpy's stable 16-bit sort is a radix sort (same order)
    small = np.issubdtype(levels_of.dtype, np.integer) and levels_of.max() <= np.iinfo(np.uint16).max  # turn > 1
    follow = follow[np.argsort(levels_of.astype(np.uint16) if small else levels_of, kind="stable")]
    levels = np.r_[0, np.flatnonzero(np.diff(turn[follow])) + 1, follow.size]
    for a, b in itertools.pairwise(levels):  # one pass per turn number
        rows = follow[a:b]
        h = inp[rows - 1] + out[rows - 1]
        if context == "sorted":
            inp[rows] = np.maximum(inp[rows], h)
        elif context == "fitted":
            grow = np.ones(rows.size, bool) if fresh is None else ~fresh[rows]  # fresh ones keep their draw
            inp[rows[grow]] = np.maximum(h[grow] + inp[rows[grow]], 1)
        else:
            inp[rows] = h + inp[rows]
    return inp


def link_columns(conv_id: np.ndarray, turn: np.ndarray, order: np.ndarray) -> list[pl.Series]:
    """``conversation_id``, ``parent_id`` (the parent's row in the output, null if cropped), ``turn``.

    Before cropping, rows are grouped by conversation in turn order, so a follow-up's parent is
    the row just before it; ``order`` lists the kept rows in output order.
    """
    m = conv_id.size
    pos = np.full(m, -1, dtype=np.int64)
    pos[order] = np.arange(order.size)
    prev = np.r_[-1, pos[:-1]]
    parent = np.where(turn > 1, prev, -1)[order]
    parent_s = pl.Series("parent_id", parent, dtype=pl.Int64)
    parent_s = pl.select(pl.when(parent_s >= 0).then(parent_s).otherwise(None).cast(pl.String)).to_series()
    return [
        pl.Series("conversation_id", conv_id[order], dtype=pl.Int64).cast(pl.String),
        parent_s.alias("parent_id"),
        pl.Series("turn", turn[order], dtype=pl.Int64),
    ]
