r"""Prompt block ids (``prefix_blocks``) for a generated workload from a pool's prefix model (issue 15).

The pool's ``prefixes`` table (:mod:`servelab.fitting.pool_prefixes`) says, per client, how first
turns start (a shared system prompt, a client template, a reuse of an earlier request's prefix,
or nothing), how much of its parent's blocks a follow-up repeats, and how long unique suffixes
are. :func:`assign_prefix_blocks` applies it to a generated frame (or one time chunk of it):

1. blocks per request: ``ceil(input_tokens / block_size)`` (the unique suffix is what the
   structure leaves; the fitted ``suffix_blocks`` PMF describes the trace and is not drawn);
2. a follow-up (``parent_id`` names a row of this chunk or of the carried state) repeats its
   parent's first ``min(L, L_parent) - gap`` blocks, ``gap`` drawn from ``history_gap``;
3. a first turn draws one option of its client: group ``g`` (its first ``min(L, len_g)``
   blocks are the group's ids, the same in every client that uses ``g``; a nested group starts
   with the ids of the group it extends), *reuse* (the source is the latest earlier request of the
   same workload client at least a drawn ``reuse_lag_s`` before (drawn from the lag PMF cut at
   the time ``t`` since the client's first row; a client whose reuse rows are window-corrected,
   a ``reuse_censoring`` row, reuses with its uncut share times the lag CDF at ``t``, at most
   its "none" share: an original before the first row is not there, as a trace's start hides
   such reuses) that is an *original* (copied no earlier request)
   with exactly ``L`` blocks (for the fitted ``reuse_same_length`` share of copies), else of
   ``L``'s length class with at least ``L`` blocks, else any with at least ``L`` blocks, else
   the latest row at least that lag before; it repeats the source's first ``min(L, L_source) - gap`` blocks) or nothing. A group
   is re-picked among the groups of the request's length class in proportion to its share times
   the probability of the suffix it would leave under the group's own fitted suffix PMF in that
   class (Bayes: each group keeps its share of the class, and long templates go to long
   prompts; pools without per-group rows use the client's pooled suffix density per octave);
4. every other block gets a fresh id (one counter, never reused).

Copies of copies are resolved by pointer jumping over the flat block arrays (each round halves
every chain), so nothing loops over requests. Clients the table does not describe get no group
and no reuse (fresh blocks), but their follow-ups still repeat their parents' blocks (gap 0).

Chunks: the state needed across chunks is explicit (:class:`PrefixState`: the next fresh id, the
number of rows already generated, so that ``parent_id`` row numbers resolve, and the rows of the
last ``horizon_s`` seconds with their blocks). ``assign_prefix_blocks(chunk, model, seed=s,
state=st)`` is a pure function of its arguments; the random stream of chunk *k* is seeded by
``(seed, k)``, so the same seed gives the same bytes.

This module reads no files and writes none.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import polars as pl

from servelab.fitting.pool_schemas import PREFIX_KINDS
from servelab.generator.exceptions import GenerationError
from servelab.generator.pmf import PmfTable, group_bounds, pmf_cdf, pmf_table, sample_pmf

__all__ = ["PrefixModel", "PrefixState", "assign_prefix_blocks", "prefix_model", "with_prefix_blocks"]

#: option codes of a first turn (group ids are >= 0)
_NONE, _REUSE = -1, -2
#: length classes per client in PMF keys (log2 of blocks below 2^64)
_CLASSES = 64
#: stream tag mixed into the seed, so that the prefix draws never share a stream with others
_STREAM = 0x50524546


@dataclass(frozen=True)
class PrefixModel:
    """A pool's prefix model compiled for sampling (built by :func:`prefix_model`).

    Attributes
    ----------
    block_size : int
    clients : tuple of str
        Pool client ids the model describes (index = client code).
    group_offsets, group_blocks : numpy.ndarray
        Block ids of group ``g``: ``group_blocks[group_offsets[g]:group_offsets[g + 1]]``.
    first_fresh : int
        First block id not used by a group.
    suffix_density : numpy.ndarray
        Per client code and octave ``b = floor(log2(x + 1))`` of a group's suffix ``x``: the
        fitted ``suffix_blocks`` mass of the octave per block (all ones without a PMF).
    options, reuse_gap, reuse_lag, same_length, history_gap : PmfTable or None
        Per client code: first-turn option (group id, -2 reuse, -1 none), reuse gap, reuse lag
        (s), whether a copy's original has its length (1) or not (0), follow-up gap; ``*_map`` are the sorted keys ``client code * 64 + length class``
        of their PMF groups (a request uses its client's largest class at most its own).
    max_lag_s : float
    censored_reuse : numpy.ndarray of bool, optional
        Per client code: its reuse rows are corrected for the trace's window (a
        ``reuse_censoring`` row): a first turn reuses with the fitted (uncut) share times the lag
        CDF at its time since the client's first row (a reuse whose original would fall before
        it is a fresh prompt, as the trace's window cut it), at most the class's "none" share.
    reuse_share : numpy.ndarray, optional
        Per ``options_map`` key: the uncut reuse share of a window-corrected client's length
        class (0 elsewhere; those clients' ``options`` hold groups and "none" only).
    suffix_keys, suffix_probability : numpy.ndarray, optional
        The per-(client, length class, group) suffix PMFs (``suffix_blocks`` rows with a
        ``group``): sorted keys ``(options key * n_groups + group) * (max suffix + 1) + suffix``
        and their probabilities; None for a pool without them (the per-client density is used).
    suffix_classes : numpy.ndarray, optional
        Sorted keys ``options key * n_groups + group`` that have such a PMF.
    suffix_span : int
        The multiplier of those keys (the largest fitted suffix plus one).
    """

    block_size: int
    clients: tuple[str, ...]
    group_offsets: np.ndarray
    group_blocks: np.ndarray
    first_fresh: int
    options: PmfTable | None
    options_map: np.ndarray
    reuse_gap: PmfTable | None
    reuse_gap_map: np.ndarray
    reuse_lag: PmfTable | None
    reuse_lag_map: np.ndarray
    history_gap: PmfTable | None
    history_gap_map: np.ndarray
    same_length: PmfTable | None
    same_length_map: np.ndarray
    suffix_density: np.ndarray
    max_lag_s: float
    censored_reuse: np.ndarray | None = None
    reuse_share: np.ndarray | None = None
    suffix_keys: np.ndarray | None = None
    suffix_probability: np.ndarray | None = None
    suffix_classes: np.ndarray | None = None
    suffix_span: int = 0


@dataclass(frozen=True)
class PrefixState:
    """What one chunk hands to the next.

    Attributes
    ----------
    chunk : int
        Index of the next chunk (seeds its random stream).
    rows : int
        Rows generated before the next chunk (``parent_id`` values are global row numbers).
    next_block : int
        Next fresh block id.
    tail : polars.DataFrame
        Rows of the last ``horizon_s`` seconds: ``row``, ``timestamp``, ``client_id``,
        ``prefix_blocks``, ``original`` (the row copied no earlier request's prefix; reuse sources
        and parents are looked up here and in the chunk).
    horizon_s : float
    """

    chunk: int
    rows: int
    next_block: int
    tail: pl.DataFrame
    horizon_s: float

    @classmethod
    def start(cls, model: PrefixModel, *, horizon_s: float | None = None) -> "PrefixState":
        """The state before the first chunk; ``horizon_s`` defaults to the longest reuse lag,
        at least one hour (parents older than the horizon are not found: such follow-ups start
        fresh)."""
        h = max(model.max_lag_s, 3600.0) if horizon_s is None else float(horizon_s)
        if not (h >= 0 and math.isfinite(h)):
            raise GenerationError(f"horizon_s must be a finite number of seconds >= 0; got {horizon_s!r}")
        tail = pl.DataFrame(schema={"row": pl.Int64, "timestamp": pl.Float64, "client_id": pl.String,
                                    "prefix_blocks": pl.List(pl.Int64), "original": pl.Boolean})
        return cls(chunk=0, rows=0, next_block=model.first_fresh, tail=tail, horizon_s=h)


def _pmfs(rows: pl.DataFrame, codes: dict[str, int]) -> tuple[PmfTable | None, np.ndarray]:
    """A PmfTable over ``rows`` (``client_id, min_blocks, value, probability``) and the sorted
    keys (``client code * 64 + log2(min_blocks)``) of its PMF groups."""
    rows = rows.filter(pl.col("probability") > 0)
    if rows.height == 0:
        return None, np.zeros(0, dtype=np.int64)
    rows = rows.with_columns(
        (pl.col("client_id").replace_strict(codes, return_dtype=pl.Int64) * _CLASSES
         + pl.col("min_blocks").cast(pl.Float64).log(2).round().cast(pl.Int64)).alias("key")).sort("key", "value")
    key = rows["key"].to_numpy()
    uniq, dense = np.unique(key, return_inverse=True)
    return pmf_table(dense, rows["value"].to_numpy(), rows["probability"].to_numpy()), uniq


def _groups_of(keys: np.ndarray, code: np.ndarray, cls: np.ndarray) -> np.ndarray:
    """PMF group of each request: its client's largest length class <= its own, else the
    client's smallest; -1 when the client has no PMF."""
    if keys.size == 0:
        return np.full(code.size, -1, dtype=np.int64)
    q = code * _CLASSES + cls
    lo = np.searchsorted(keys, q, side="right") - 1
    below = (lo >= 0) & (keys[np.maximum(lo, 0)] // _CLASSES == code)
    hi = np.minimum(lo + 1, keys.size - 1)
    above = keys[hi] // _CLASSES == code
    return np.where(code < 0, -1, np.where(below, lo, np.where(above, hi, -1)))


def prefix_model(pool) -> PrefixModel | None:
    """Compile a pool's ``prefixes`` table for sampling; None when the pool has no prefix rows.

    Raises
    ------
    GenerationError
        If the table mixes block sizes, names an unknown kind, or holds a value out of range.
    """
    table = getattr(pool, "prefixes", None)
    if table is None or table.height == 0:
        return None
    unknown = sorted(set(table["kind"].unique().to_list()) - set(PREFIX_KINDS))
    if unknown:
        raise GenerationError(f"the pool's prefixes table has unknown kinds {unknown}; allowed: {list(PREFIX_KINDS)}")
    bad = table.filter(~pl.col("probability").is_between(0.0, 1.0) | ~pl.col("value").is_finite()
                       | (pl.col("value") < 0) | pl.col("probability").is_null() | pl.col("value").is_null()
                       | (pl.col("min_blocks").fill_null(0) < 1))
    if bad.height:
        row = bad.row(0, named=True)
        raise GenerationError(f"the pool's prefixes table: client {row['client_id']!r} kind {row['kind']!r} needs "
                              f"value >= 0, probability in [0, 1] and min_blocks >= 1; got value {row['value']!r}, "
                              f"probability {row['probability']!r}, min_blocks {row['min_blocks']!r}")
    sizes = table["block_size"].unique().to_list()
    if len(sizes) != 1 or sizes[0] is None or sizes[0] < 1:
        raise GenerationError(f"the pool's prefixes table must have one positive block_size; got {sorted(map(str, sizes))}")
    clients = tuple(sorted(table["client_id"].unique().to_list()))
    codes = {c: i for i, c in enumerate(clients)}
    groups = (table.filter(pl.col("kind").is_in(["shared", "template"]))
              .group_by("group").agg(pl.col("value").first().cast(pl.Int64).alias("length"),
                                     pl.col("extends").first()).sort("length", "group"))
    n_groups = int(groups["group"].max()) + 1 if groups.height else 0
    length = np.zeros(n_groups, dtype=np.int64)
    ext = np.full(n_groups, -1, dtype=np.int64)
    if groups.height:
        length[groups["group"].to_numpy()] = groups["length"].to_numpy()
        ext[groups["group"].to_numpy()] = groups["extends"].fill_null(-1).to_numpy()
    # ids: each group's own blocks (beyond the group it extends) numbered consecutively; a loop
    # over groups (a handful per pool) by length, so an extended group is laid out first
    offsets = np.r_[0, np.cumsum(length)].astype(np.int64)
    blocks = np.zeros(int(offsets[-1]), dtype=np.int64)
    nxt = 0
    for g in groups["group"].to_list():
        e = int(ext[g])
        inherit = int(min(length[e], length[g])) if e >= 0 else 0
        if inherit:
            blocks[offsets[g]:offsets[g] + inherit] = blocks[offsets[e]:offsets[e] + inherit]
        own = int(length[g]) - inherit
        blocks[offsets[g] + inherit:offsets[g + 1]] = np.arange(nxt, nxt + own)
        nxt += own

    def kind(*names):
        return table.filter(pl.col("kind").is_in(list(names)))

    # first-turn options per (client, length class): groups, reuse, and the rest (none)
    grp = kind("shared", "template").select("client_id", "min_blocks", pl.col("group").cast(pl.Float64).alias("value"),
                                            "probability")
    cut = kind("reuse_censoring").filter(pl.col("value") > 0.5)["client_id"].unique().to_list()
    reuse = kind("reuse_gap").group_by("client_id", "min_blocks").agg(pl.col("probability").sum()).select(
        "client_id", "min_blocks", pl.lit(float(_REUSE)).alias("value"), "probability")
    # window-corrected clients: the reuse share is of the uncut process and is applied per request,
    # times the lag CDF at its time since the client's first row (assign_prefix_blocks); their
    # options PMF holds the groups and "none" only
    reuse_cut = reuse.filter(pl.col("client_id").is_in(cut))
    reuse_kept = reuse.filter(~pl.col("client_id").is_in(cut))
    taken = (pl.concat([grp, reuse_kept]).group_by("client_id", "min_blocks")
             .agg(pl.col("probability").sum().alias("p")))
    taken = pl.concat([taken, reuse_cut.select("client_id", "min_blocks", pl.lit(0.0).alias("p"))]).group_by(
        "client_id", "min_blocks").agg(pl.col("p").sum())
    none = taken.select("client_id", "min_blocks", pl.lit(float(_NONE)).alias("value"),
                        (1.0 - pl.col("p")).clip(0.0, 1.0).alias("probability"))
    options, options_map = _pmfs(pl.concat([grp, reuse_kept, none]), codes)
    reuse_share = np.zeros(options_map.size)
    if reuse_cut.height and options_map.size:
        key = (reuse_cut["client_id"].replace_strict(codes, return_dtype=pl.Int64).to_numpy() * _CLASSES
               + np.round(np.log2(reuse_cut["min_blocks"].to_numpy().astype(float))).astype(np.int64))
        at = np.minimum(np.searchsorted(options_map, key), options_map.size - 1)
        found = options_map[at] == key
        reuse_share[at[found]] = np.minimum(reuse_cut["probability"].to_numpy()[found], 1.0)
    pm = {k: _pmfs(kind(k).select("client_id", "min_blocks", "value", "probability"), codes)
          for k in ("reuse_gap", "reuse_lag_s", "reuse_same_length", "history_gap")}
    lags = kind("reuse_lag_s")["value"]
    censored = np.zeros(len(clients), dtype=bool)
    censored[[codes[c] for c in cut]] = True  # a loop over clients
    density = np.ones((len(clients), _CLASSES))
    suffix = kind("suffix_blocks").filter(pl.col("group").is_null())
    per_group = kind("suffix_blocks").filter(pl.col("group").is_not_null())
    sfx_keys = sfx_prob = sfx_classes = None
    span = 0
    if per_group.height and n_groups:
        okey = (per_group["client_id"].replace_strict(codes, return_dtype=pl.Int64).to_numpy() * _CLASSES
                + np.round(np.log2(per_group["min_blocks"].to_numpy().astype(float))).astype(np.int64))
        gk = okey * n_groups + per_group["group"].to_numpy().astype(np.int64)
        span = int(per_group["value"].max()) + 1
        full = gk * span + per_group["value"].to_numpy().astype(np.int64)
        order = np.argsort(full, kind="stable")
        sfx_keys, sfx_prob = full[order], per_group["probability"].to_numpy()[order]
        sfx_classes = np.unique(gk)
    if suffix.height:
        octave = suffix.select(pl.col("client_id").replace_strict(codes, return_dtype=pl.Int64).alias("code"),
                               (pl.col("value") + 1).log(2).floor().cast(pl.Int64).alias("b"), "probability")
        octave = octave.group_by("code", "b").agg(pl.col("probability").sum())
        have = octave["code"].unique().to_numpy()
        density[have] = 0.0
        b = octave["b"].to_numpy()
        density[octave["code"].to_numpy(), b] = octave["probability"].to_numpy() / 2.0 ** b
    return PrefixModel(
        block_size=int(sizes[0]), clients=clients, group_offsets=offsets, group_blocks=blocks, first_fresh=nxt,
        options=options, options_map=options_map, reuse_gap=pm["reuse_gap"][0], reuse_gap_map=pm["reuse_gap"][1],
        reuse_lag=pm["reuse_lag_s"][0], reuse_lag_map=pm["reuse_lag_s"][1], history_gap=pm["history_gap"][0],
        history_gap_map=pm["history_gap"][1], same_length=pm["reuse_same_length"][0],
        same_length_map=pm["reuse_same_length"][1], suffix_density=density,
        max_lag_s=float(lags.max()) if lags.len() else 0.0, censored_reuse=censored, reuse_share=reuse_share,
        suffix_keys=sfx_keys, suffix_probability=sfx_prob, suffix_classes=sfx_classes, suffix_span=span)


def _fit_groups(model: PrefixModel, code: np.ndarray, cls: np.ndarray, length: np.ndarray, option: np.ndarray,
                u: np.ndarray) -> np.ndarray:
    """Re-pick the group of each request that drew one: among its (client, length class) groups,
    with probability proportional to the group's share times the probability of the suffix
    ``length - len_g`` under the group's own suffix PMF in the class (else the client's pooled
    suffix density; groups longer than the request get none). A request no group fits keeps its
    draw (its group is truncated). Pairs (request, candidate group) are arrays."""
    rows = np.flatnonzero(option >= 0)
    if rows.size == 0 or model.options is None:
        return option
    g = _groups_of(model.options_map, code[rows], cls[rows])
    cum = model.options.cum
    lo, hi = group_bounds(model.options, g)
    cnt = hi - lo
    pair = np.repeat(np.arange(rows.size), cnt)
    idx = np.repeat(lo, cnt) + np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    prob = cum[idx] - np.where(idx == np.repeat(lo, cnt), g[pair].astype(float), cum[np.maximum(idx - 1, 0)])
    val = model.options.values[idx].astype(np.int64)
    sizes = np.diff(model.group_offsets)
    x = length[rows][pair] - np.where(val >= 0, sizes[np.maximum(val, 0)] if sizes.size else 0, 0)
    octave = np.floor(np.log2(np.maximum(x, 0) + 1)).astype(np.int64).clip(0, _CLASSES - 1)
    dens = model.suffix_density[code[rows][pair], octave]
    if model.suffix_keys is not None:
        # the group's own suffix PMF in the request's (client, class) where fitted: P(L | g, class)
        n_groups = sizes.size
        gk = model.options_map[g[pair]] * n_groups + np.maximum(val, 0)
        has = np.isin(gk, model.suffix_classes)
        key = gk * model.suffix_span + np.maximum(x, 0)
        at = np.minimum(np.searchsorted(model.suffix_keys, key), model.suffix_keys.size - 1)
        q = np.where((model.suffix_keys[at] == key) & (x < model.suffix_span), model.suffix_probability[at], 0.0)
        dens = np.where(has, q, dens)
    w = np.where((val >= 0) & (x >= 0), prob * dens, 0.0)
    total = np.bincount(pair, weights=w, minlength=rows.size)
    run = np.cumsum(w)
    before = np.r_[0.0, run][np.cumsum(cnt) - cnt]
    target = before + u[rows] * total
    # the first pair of the row whose running weight passes the target
    fits = total > 0
    chosen = np.minimum(np.searchsorted(run, target[fits], side="right"), idx.size - 1)
    out = option.copy()
    out[rows[fits]] = val[chosen]
    return out


def _draw(table: PmfTable | None, keys: np.ndarray, code: np.ndarray, cls: np.ndarray, u: np.ndarray,
          mask: np.ndarray, default: float) -> np.ndarray:
    """Draws for the rows in ``mask`` whose client has the PMF; ``default`` elsewhere."""
    out = np.full(code.size, default)
    if table is None:
        return out
    g = _groups_of(keys, code, cls)
    rows = np.flatnonzero(mask & (g >= 0))
    if rows.size:
        out[rows] = sample_pmf(table, g[rows], u[rows])
    return out


def assign_prefix_blocks(frame: pl.DataFrame, model: PrefixModel, *, seed: int, state: PrefixState | None = None,
                         pool_clients: Mapping[str, str] | None = None) -> tuple[pl.DataFrame, PrefixState]:
    """Add ``prefix_blocks`` to one chunk of a generated workload.

    Parameters
    ----------
    frame : polars.DataFrame
        The chunk, sorted by ``timestamp`` (later than every row of ``state``): ``timestamp``,
        ``client_id``, ``input_tokens``, and optionally ``parent_id`` (global row number of the
        parent, as text).
    model : PrefixModel
    seed : int
    state : PrefixState, optional
        From the previous chunk (default: :meth:`PrefixState.start`).
    pool_clients : Mapping, optional
        Pool client id of each workload client id (synthetic clients ``<id>~<copy>``); default:
        the workload id itself.

    Returns
    -------
    (polars.DataFrame, PrefixState)
        The chunk with ``prefix_blocks`` (list of int64), and the state for the next chunk.

    Raises
    ------
    GenerationError
        For a bad seed, a frame without ``timestamp``, ``client_id`` or ``input_tokens``, or
        unsorted timestamps.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise GenerationError(f"seed must be an integer; got {seed!r}")
    missing = [c for c in ("timestamp", "client_id", "input_tokens") if c not in frame.columns]
    if missing:
        raise GenerationError(f"prefix blocks need columns {missing}; columns found: {frame.columns}")
    state = PrefixState.start(model) if state is None else state
    n, m = frame.height, state.tail.height
    ts = frame["timestamp"].cast(pl.Float64).to_numpy()
    if n > 1 and bool(np.any(np.diff(ts) < 0)):
        raise GenerationError("the frame must be sorted by timestamp to get prefix blocks")
    rng = np.random.default_rng([int(seed), _STREAM, state.chunk])
    u = rng.random((5, n))
    bs = model.block_size
    workload_ids = frame["client_id"].cast(pl.String)
    pool_ids = workload_ids if pool_clients is None else workload_ids.replace_strict(
        dict(pool_clients), default=None, return_dtype=pl.String)
    codes = {c: i for i, c in enumerate(model.clients)}
    code = pool_ids.replace_strict(codes, default=-1, return_dtype=pl.Int64).to_numpy()

    # combined rows: the carried tail (resolved) then the chunk
    t_all = np.r_[state.tail["timestamp"].to_numpy().astype(float), ts]
    c_all = pl.concat([state.tail["client_id"], workload_ids]).rank("dense").to_numpy().astype(np.int64)
    tail_len = state.tail["prefix_blocks"].list.len().fill_null(0).to_numpy().astype(np.int64)
    own = np.arange(m, m + n, dtype=np.int64)

    # parents (global row numbers) inside the combined rows
    parent = np.full(n, -1, dtype=np.int64)
    if "parent_id" in frame.columns:
        p = frame["parent_id"].cast(pl.Int64, strict=False).fill_null(-1).to_numpy()
        local = np.where(p >= 0, p - state.rows + m, -1)
        ok = (local >= 0) & (local < own)
        parent[ok] = local[ok]
    follow = parent >= 0
    length = -(-np.maximum(frame["input_tokens"].fill_null(0).to_numpy().astype(np.int64), 0) // bs)
    cls = np.floor(np.log2(np.maximum(length, 1))).astype(np.int64)
    option = np.where(follow, float(_NONE), _draw(model.options, model.options_map, code, cls, u[0], ~follow, _NONE))
    t_first = None
    cut = (model.censored_reuse[np.maximum(code, 0)] & (code >= 0) if model.censored_reuse is not None
           else np.zeros(n, dtype=bool))
    if model.reuse_share is not None and model.reuse_lag is not None and (cut & ~follow).any():
        # window-corrected clients: reuse with probability share x F(time since the client's first
        # row) (F: the class's lag CDF; an original that would fall before the first row is not
        # there), at most the class's "none" share: the low end of "none" in the options CDF
        t_first = _client_start(state, frame, ts)
        rows = np.flatnonzero(cut & ~follow)
        og = _groups_of(model.options_map, code[rows], cls[rows])
        lg = _groups_of(model.reuse_lag_map, code[rows], cls[rows])
        ok = (og >= 0) & (lg >= 0)
        rows, og, lg = rows[ok], og[ok], lg[ok]
        p_none = pmf_cdf(model.options, og, np.full(rows.size, float(_NONE)))
        f_lag = pmf_cdf(model.reuse_lag, lg, ts[rows] - t_first[rows])
        p_reuse = np.minimum(model.reuse_share[og] * f_lag, p_none)
        now = (u[0][rows] < p_reuse) & (option[rows] == _NONE)
        option[rows[now]] = _REUSE
    option = _fit_groups(model, code, cls, length, option.astype(np.int64), u[3])
    len_all = np.r_[tail_len, length]
    # reuse sources: the latest earlier row of the same workload client at least `lag` before
    # that has at least the request's blocks (else the latest one at least `lag` before)
    reuse = option == _REUSE
    # the lag is drawn from the client's PMF cut at the time since the client's first row (a lag
    # reaching before it has no source): u scaled by the CDF there
    if t_first is None:
        t_first = _client_start(state, frame, ts)
    u_lag = u[1].copy()
    if model.reuse_lag is not None and reuse.any():
        g = _groups_of(model.reuse_lag_map, code[reuse], cls[reuse])
        u_lag[reuse] *= np.where(g >= 0, pmf_cdf(model.reuse_lag, g, ts[reuse] - t_first[reuse]), 1.0)
    lag = _draw(model.reuse_lag, model.reuse_lag_map, code, cls, u_lag, reuse, 0.0)
    source = np.where(follow, parent, -1)
    ri = np.flatnonzero(reuse)
    if ri.size:
        # sources are originals (rows that copied no earlier request's prefix), as the fitted lags
        # are times since a prefix's first occurrence; first (for the fitted share) among the
        # originals of exactly the request's length, then of its length class, then among all
        original = np.r_[state.tail["original"].to_numpy(), ~reuse]
        need = length[ri]
        cls_all = np.floor(np.log2(np.maximum(len_all, 1))).astype(np.int64)
        # the fitted share of copies whose original has exactly their length look there first
        exact = _draw(model.same_length, model.same_length_map, code, cls, u[4], reuse, 0.0)[ri] > 0.5
        same_length = _find_source(c_all * (int(len_all.max()) + 1) + len_all, t_all, ri + m, ts[ri] - lag[ri],
                                   need, np.where(original, len_all, 0))
        same_length = np.where(exact, same_length, -1)
        same_class = _find_source(c_all * _CLASSES + cls_all, t_all, ri + m, ts[ri] - lag[ri], need,
                                  np.where(original, len_all, 0))
        same_class = np.where(same_length >= 0, same_length, same_class)
        any_class = _find_source(c_all, t_all, ri + m, ts[ri] - lag[ri], need, np.where(original, len_all, 0))
        found = np.where(same_class >= 0, same_class, any_class)
        source[ri] = np.where(found >= 0, found, _find_source(c_all, t_all, ri + m, ts[ri] - lag[ri], need * 0,
                                                              len_all))
    has_src = source >= 0
    gap = np.where(follow, _draw(model.history_gap, model.history_gap_map, code, cls, u[2], follow, 0.0),
                   _draw(model.reuse_gap, model.reuse_gap_map, code, cls, u[2], reuse, 0.0)).astype(np.int64)
    group = np.where(option >= 0, option, -1)
    group_sizes = np.diff(model.group_offsets)
    g_len = np.where(group >= 0, group_sizes[np.maximum(group, 0)] if group_sizes.size else 0, 0)
    src_len = np.where(has_src, len_all[np.maximum(source, 0)], 0)
    copied = np.where(has_src, np.maximum(np.minimum(length, src_len) - gap, 0), 0)
    grouped = np.minimum(g_len, length)

    # flat blocks of the combined rows: value (>= 0) or a pointer to the flat block copied
    starts = np.r_[0, np.cumsum(len_all)[:-1]].astype(np.int64)
    total = int(len_all.sum())
    value = np.full(total, -1, dtype=np.int64)
    ptr = np.arange(total, dtype=np.int64)
    if m:
        value[:int(tail_len.sum())] = state.tail["prefix_blocks"].explode().drop_nulls().to_numpy().astype(np.int64)
    row = np.repeat(np.arange(n, dtype=np.int64), length)
    pos = np.arange(row.size, dtype=np.int64) - (starts[m:] - starts[m])[row]
    flat = starts[m] + np.arange(row.size, dtype=np.int64)
    is_copy = pos < copied[row]
    ptr[flat[is_copy]] = starts[source[row[is_copy]]] + pos[is_copy]
    is_group = ~is_copy & (pos < grouped[row])
    value[flat[is_group]] = model.group_blocks[model.group_offsets[group[row[is_group]]] + pos[is_group]]
    fresh = ~is_copy & ~is_group
    value[flat[fresh]] = state.next_block + np.arange(int(fresh.sum()), dtype=np.int64)
    next_block = state.next_block + int(fresh.sum())
    while True:  # pointer jumping: every round halves the remaining chains
        open_ = np.flatnonzero(value < 0)
        if open_.size == 0:
            break
        target = ptr[open_]
        value[open_] = value[target]
        ptr[open_] = ptr[target]

    offsets = np.r_[0, np.cumsum(length)].astype(np.int64)
    blocks = pl.Series("prefix_blocks", value[starts[m]:], dtype=pl.Int64)
    lists = _as_lists(blocks, offsets)
    out = frame.with_columns(lists)
    # carry the last horizon_s seconds
    all_rows = pl.DataFrame({"row": np.arange(state.rows - m, state.rows + n, dtype=np.int64), "timestamp": t_all,
                             "client_id": pl.concat([state.tail["client_id"], workload_ids]),
                             "prefix_blocks": pl.concat([state.tail["prefix_blocks"], lists]),
                             "original": np.r_[state.tail["original"].to_numpy().astype(bool), ~reuse]})
    t_end = float(t_all[-1]) if t_all.size else 0.0
    tail = all_rows.filter(pl.col("timestamp") >= t_end - state.horizon_s)
    return out, replace(state, chunk=state.chunk + 1, rows=state.rows + n, next_block=next_block, tail=tail)


def _client_start(state: PrefixState, frame: pl.DataFrame, ts: np.ndarray) -> np.ndarray:
    """Per row of the chunk: the time of its workload client's first row among the carried tail
    and the chunk."""
    ids = pl.concat([state.tail["client_id"], frame["client_id"].cast(pl.String)])
    t_all = np.r_[state.tail["timestamp"].to_numpy().astype(float), ts]
    first = pl.DataFrame({"c": ids, "t": t_all}).select(pl.col("t").min().over("c"))["t"].to_numpy()
    return first[state.tail.height:]


def _find_source(key: np.ndarray, t_all: np.ndarray, rows: np.ndarray, target: np.ndarray, need: np.ndarray,
                 lengths: np.ndarray) -> np.ndarray:
    """For each row in ``rows``: the latest earlier row of the same ``key`` at or before time
    ``target`` (else the row's previous one of that key) with ``lengths >= need``; -1 for none.

    An as-of join finds the starting row, :func:`_walk_back` the first long enough one.
    """
    right = pl.DataFrame({"k": key, "t": t_all, "src": np.arange(key.size, dtype=np.int64)}).sort("t", "src")
    left = pl.DataFrame({"k": key[rows], "t": target, "i": np.arange(rows.size, dtype=np.int64)}).sort("t")
    with warnings.catch_warnings():  # both sides are sorted by t; polars cannot check it with `by`
        warnings.filterwarnings("ignore", message="Sortedness of columns cannot be checked")
        hit = left.join_asof(right, on="t", by="k", strategy="backward").sort("i")
    start = hit["src"].fill_null(-1).to_numpy()
    prev = _previous_same(key)
    # a zero lag can match the row itself or a tie after it, and a lag reaching before the key's
    # first row matches nothing: start from the row's previous one of its key then
    start = np.where((start >= rows) | (start < 0), prev[rows], start)
    return _walk_back(start, need, prev, lengths)


def _previous_same(client: np.ndarray) -> np.ndarray:
    """Index of the previous row of the same client (-1: none)."""
    n = client.size
    order = np.lexsort((np.arange(n), client))
    prev = np.full(n, -1, dtype=np.int64)
    same = client[order][1:] == client[order][:-1]
    prev[order[1:][same]] = order[:-1][same]
    return prev


def _walk_back(start: np.ndarray, need: np.ndarray, prev: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """From each ``start`` row, the latest row at or before it (following ``prev``) with
    ``lengths >= need`` (-1: none), by a sparse table of 2^k-step pointers and running maxima:
    O(n log n) array operations, no loop over rows."""
    ptrs, maxima = [prev], [lengths.astype(np.int64)]
    while (ptrs[-1] >= 0).any():
        p, mx = ptrs[-1], maxima[-1]
        ok = p >= 0
        nxt_mx = mx.copy()
        nxt_mx[ok] = np.maximum(mx[ok], mx[p[ok]])
        nxt_p = np.full(p.size, -1, dtype=np.int64)
        nxt_p[ok] = p[p[ok]]
        ptrs.append(nxt_p)
        maxima.append(nxt_mx)
    cur = np.asarray(start, dtype=np.int64).copy()
    for p, mx in zip(reversed(ptrs), reversed(maxima)):
        live = np.flatnonzero(cur >= 0)
        skip = live[mx[cur[live]] < need[live]]
        cur[skip] = p[cur[skip]]
    return cur


def _as_lists(values: pl.Series, offsets: np.ndarray) -> pl.Series:
    """A list column from flat values and offsets (no Python loop)."""
    import pyarrow as pa

    arr = pa.LargeListArray.from_arrays(pa.array(offsets, pa.int64()), values.to_arrow())
    return pl.Series("prefix_blocks", pl.from_arrow(arr)).cast(pl.List(pl.Int64))


def with_prefix_blocks(frame: pl.DataFrame, pool, *, seed: int, pool_clients: Mapping[str, str] | None = None,
                       ) -> pl.DataFrame:
    """``frame`` with ``prefix_blocks`` when ``pool`` has a prefix model, else unchanged (one chunk)."""
    model = prefix_model(pool)
    if model is None:
        return frame
    out, _ = assign_prefix_blocks(frame, model, seed=seed, pool_clients=pool_clients)
    return out
