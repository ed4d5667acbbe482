r"""The prefix part of pool fitting: how each client's prompts share KV-cache blocks (issue 15, item 2).

From a store with ``prefix_blocks`` (Mooncake / Bailian ``hash_ids``), every request's block list
is explained, in arrival order, by at most one *structure* followed by unique blocks:

group
    The longest *common* prefix the request starts with (a system prompt or template: a prefix
    that many requests continue in many ways, or several clients continue;
    :class:`~servelab.analysis.shared_prefixes.CommonPrefixRule`). A group used by requests of two
    or more pool clients is ``shared`` (its blocks are the same in every client), else it is the
    client's ``template``. A group nested in a shorter one (a template after a system prompt)
    records the shorter one as ``extends``.
history
    A conversation follow-up (linked by :func:`~servelab.analysis.conversations.link_conversations`)
    repeats its parent's blocks: of the ``m = min(L_child, L_parent)`` blocks it could share, it
    shares all but ``gap`` (1 when the parent's last block was partial, as in Mooncake's trace).
reuse
    A first turn whose infinite-cache hit goes beyond its group repeats an earlier request's
    prefix (a document, a retried or unlinked prompt): the source is the latest earlier request
    sharing that prefix, and the request shares all but ``gap`` of the ``min(L, L_source)``
    blocks it could. ``lag_s`` is the time since the prefix's *first* occurrence (its original),
    not since the latest sharer: the generator copies originals, and several copies of one
    original make the latest-sharer lags of the trace by themselves.
suffix
    The blocks after the structure are the request's own. How many follow a group
    (``suffix_blocks``) says how a template is used (a short question after a long prompt, or a
    long document after a short system prompt); the generator uses it to pick, for a request of
    given length, the groups that fit it.

The fitted model is one long table per pool, :data:`PREFIXES_SCHEMA`, with ``kind``:

=================  =============================================================================
``shared``         one row per (client, length class, group): ``group`` (pool-wide id),
                   ``extends`` (group id or null), ``value`` = the group's length in blocks,
                   ``probability`` = share of the client's first turns of that length class that
                   start with it (and reuse nothing beyond it)
``template``       the same for a group only this client uses
``reuse_gap``      ``value`` = gap, ``probability`` = share of the client's first turns of the
                   length class that reuse an earlier request's prefix with that gap (summed:
                   the class's reuse share)
``reuse_lag_s``    PMF of the reuse lag (s, two significant digits) per length class
``reuse_same_length`` ``value`` 1: the original has as many blocks as the copy (a repeated
                   prompt with another last block), 0: not; ``probability``: their shares
``history_gap``    PMF of a follow-up's gap to its parent's blocks
``suffix_blocks``  PMF of the unique blocks after a group (first turns that start with one):
                   per client (``group`` null, ``min_blocks`` 1) and per (client, length
                   class, group) (``group`` set, ``min_blocks`` the class)
``reuse_censoring`` value 1: the reuse rows are corrected for the trace's window (lags of the
                   uncut process; see :func:`fit_prefix_table`); absent: as seen
=================  =============================================================================

Which structure a first turn has depends strongly on its length (a one-block prompt rarely
repeats a long document, and long prompts come back later), so the first four kinds are
conditional on the request's *length class*: ``min_blocks`` is a power of two and the row applies to requests of ``min_blocks`` to
``2 * min_blocks - 1`` blocks (the other kinds have ``min_blocks = 1`` and apply to all). Every
row carries ``block_size`` (tokens per block, the trace's; 512 for Mooncake). Counting is
group-bys over the B blocks (prefix hashes, a stable sort for previous occurrences), never a loop
over requests. This module writes nothing and never holds block lists in its result.
"""
from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow.compute as pc

from servelab.analysis.block_hashes import prefix_hashes
from servelab.analysis.prefix_reuse import DEFAULT_BLOCK_SIZE, infinite_cache_hits
from servelab.analysis.shared_prefixes import CommonPrefixRule, shared_prefix_table
from servelab.analysis.store import TraceStore
from servelab.fitting.ordered_sums import grouped_sums
from servelab.fitting.pool_schemas import PREFIX_KINDS, PREFIXES_SCHEMA

__all__ = [
    "PREFIXES_SCHEMA",
    "PREFIX_KINDS",
    "RequestStructure",
    "fit_prefix_table",
    "prefix_structure",
    "prefix_table",
]

class RequestStructure(dict):
    """Per-request arrays of :func:`prefix_structure` (a plain mapping of numpy arrays):
    ``lengths``, ``group`` (-1: none), ``group_len``, ``hit`` (infinite-cache hit blocks),
    ``source`` (position of the reuse source or parent, -1: none), ``kind`` (0 none, 1 group,
    2 reuse, 3 history), ``gap``, ``lag_s``, ``same_length`` (a reuse whose original has as
    many blocks), ``time_s`` (seconds since the trace's first request), ``suffix``; and per group ``group_length``,
    ``group_extends`` (-1: none), ``group_clients`` (distinct pool clients using it)."""


def _lag_bins(lag: np.ndarray) -> np.ndarray:
    """Lags rounded to two significant digits (0 stays 0)."""
    lag = np.asarray(lag, dtype=float)
    out = np.zeros_like(lag)
    pos = lag > 0
    step = 10.0 ** (np.floor(np.log10(lag[pos])) - 1)
    out[pos] = np.round(lag[pos] / step) * step
    return out


def prefix_structure(values: np.ndarray, lengths: np.ndarray, *, timestamps: np.ndarray, clients: np.ndarray,
                     parents: np.ndarray | None = None, rule: CommonPrefixRule = CommonPrefixRule()) -> RequestStructure:
    """Explain every request's blocks by a group, history or reuse, then a unique suffix.

    Parameters
    ----------
    values, lengths
        Flattened block ids and list lengths, requests in arrival order.
    timestamps : numpy.ndarray
        Arrival times (s).
    clients : numpy.ndarray of int
        Pool client index of each request (``>= 0``).
    parents : numpy.ndarray of int, optional
        Position of each request's conversation parent (-1: a first turn).
    rule : CommonPrefixRule
        What makes a prefix a group.

    Returns
    -------
    RequestStructure
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    values = np.asarray(values).astype(np.int64, copy=False)
    clients = np.asarray(clients, dtype=np.int64)
    ts = np.asarray(timestamps, dtype=float)
    n = lengths.size
    if clients.shape != (n,) or ts.shape != (n,):
        raise ValueError(f"timestamps and clients need one value per request ({n}); got {ts.shape} and {clients.shape}")
    starts = np.cumsum(lengths) - lengths
    req = np.repeat(np.arange(n, dtype=np.int64), lengths)
    pos = np.arange(req.size, dtype=np.int64) - starts[req]
    keys = prefix_hashes(values, lengths)

    # groups: common prefixes (pool clients decide "several clients")
    table, _ = shared_prefix_table(values, lengths, clients=clients, rule=rule)
    n_groups = table.height
    g_first = table["first_request_id"].to_numpy().astype(np.int64)
    g_len = table["length_blocks"].to_numpy().astype(np.int64)
    g_keys = keys[starts[g_first] + g_len - 1] if n_groups else np.zeros(0, np.uint64)
    key_to_group = pl.DataFrame({"key": pl.Series(g_keys, dtype=pl.UInt64),
                                 "g": np.arange(n_groups, dtype=np.int64)})
    flat_group = (pl.DataFrame({"key": pl.Series(keys, dtype=pl.UInt64)})
                  .join(key_to_group, on="key", how="left", maintain_order="left")["g"].fill_null(-1).to_numpy())
    at = np.flatnonzero(flat_group >= 0)
    group = np.full(n, -1, dtype=np.int64)
    group_len = np.zeros(n, dtype=np.int64)
    # positions ascend within a request: the last write is the longest group
    group[req[at]] = flat_group[at]
    group_len[req[at]] = pos[at] + 1
    ext_len = table["extends_blocks"].to_numpy().astype(np.int64)
    g_ext = np.full(n_groups, -1, dtype=np.int64)
    has_ext = ext_len > 0
    if has_ext.any():
        g_ext[has_ext] = flat_group[starts[g_first[has_ext]] + ext_len[has_ext] - 1]
    g_clients = (pl.DataFrame({"g": flat_group[at], "c": clients[req[at]]}).group_by("g")
                 .agg(pl.col("c").n_unique()).sort("g"))
    group_clients = np.zeros(n_groups, dtype=np.int64)
    group_clients[g_clients["g"].to_numpy()] = g_clients["c"].to_numpy()

    # infinite-cache hits and the latest earlier request sharing the hit prefix
    hits = infinite_cache_hits(values, lengths)
    hit = np.bincount(req, weights=hits, minlength=n).astype(np.int64)
    order = np.argsort(keys, kind="stable")
    same = np.zeros(order.size, dtype=bool)
    same[1:] = keys[order][1:] == keys[order][:-1]
    prev = np.full(keys.size, -1, dtype=np.int64)
    prev[order[1:][same[1:]]] = order[:-1][same[1:]]
    # first occurrence of every prefix: the start of its run in key order
    run_start = np.maximum.accumulate(np.where(~same, np.arange(order.size), 0))
    first = np.empty(keys.size, dtype=np.int64)
    first[order] = order[run_start]

    kind = np.where(group >= 0, 1, 0).astype(np.int64)
    source = np.full(n, -1, dtype=np.int64)
    gap = np.zeros(n, dtype=np.int64)
    lag = np.zeros(n)
    parents = np.full(n, -1, dtype=np.int64) if parents is None else np.asarray(parents, dtype=np.int64)
    follow = parents >= 0
    reuse = ~follow & (hit > group_len)
    ri = np.flatnonzero(reuse)
    src = req[prev[starts[ri] + hit[ri] - 1]]
    source[ri] = src
    kind[ri] = 2
    gap[ri] = np.minimum(lengths[ri], lengths[src]) - hit[ri]
    original = req[first[starts[ri] + hit[ri] - 1]]
    lag[ri] = ts[ri] - ts[original]
    same_length = np.zeros(n, dtype=bool)
    same_length[ri] = lengths[original] == lengths[ri]
    fi = np.flatnonzero(follow)
    if fi.size:
        par = parents[fi]
        m = np.minimum(lengths[fi], lengths[par])
        pair = np.repeat(np.arange(fi.size), m)
        k = np.arange(int(m.sum())) - np.repeat(np.cumsum(m) - m, m)
        eq = keys[starts[fi][pair] + k] == keys[starts[par][pair] + k]
        lcp = np.bincount(pair, weights=eq, minlength=fi.size).astype(np.int64)
        source[fi] = par
        kind[fi] = 3
        gap[fi] = m - lcp
    shared = np.where(kind == 1, group_len, np.where(kind >= 2, np.minimum(lengths, lengths[np.maximum(source, 0)])
                                                     - gap, 0))
    return RequestStructure(lengths=lengths, group=group, group_len=group_len, hit=hit, source=source, kind=kind,
                            same_length=same_length, time_s=ts - (float(ts.min()) if n else 0.0),
                            gap=gap, lag_s=lag, suffix=lengths - shared, group_length=g_len, group_extends=g_ext,
                            group_clients=group_clients)


def _seen_weights(s: RequestStructure, clients: np.ndarray, cls: np.ndarray, span_s: float) -> np.ndarray:
    r"""Inverse-probability weight of every request as a reuse seen through the window (used at
    reuses only): :math:`1 / P(\text{seen})`, capped at
    :data:`~servelab.fitting.pool_conversations.WINDOW_WEIGHT_CAP`.

    A reuse at lag :math:`x` is seen when its original falls inside the window, i.e. when the
    copy comes at least :math:`x` after the window's start. :math:`P(\text{seen})` is the share of
    the client's first turns *of the reuse's length class* that come at least :math:`x` after
    the trace's first request (``time_s``). For first turns uniform over a window of :math:`T`
    this is :math:`(T - x) / T`, the weight of
    :func:`~servelab.fitting.pool_conversations.window_weights`; it differs where a class's
    requests are not uniform in time (a trace whose long prompts come late sees their long-lag
    copies more often than a uniform one would, and weighing them by :math:`T / (T - x)` would
    overstate their share). Without ``time_s`` (an older structure) that uniform weight is used.
    """
    from servelab.fitting.pool_conversations import WINDOW_WEIGHT_CAP, window_weights

    lag = np.maximum(s["lag_s"], 0.0)
    if "time_s" not in s:
        return window_weights(lag, span_s)
    roots = np.flatnonzero((s["kind"] <= 2) & (s["lengths"] > 0))
    # one group per (client, class); counts of the group's first turns at or after each lag
    gid_all = np.asarray(clients, dtype=np.int64) * 64 + np.log2(cls).astype(np.int64)
    groups, inverse = np.unique(gid_all[roots], return_inverse=True)
    t = s["time_s"][roots]
    order = np.lexsort((t, inverse))
    g_sorted, t_sorted = inverse[order], t[order]
    ends = np.searchsorted(g_sorted, np.arange(groups.size), side="right")
    starts = np.searchsorted(g_sorted, np.arange(groups.size), side="left")
    w = np.ones(lag.size)
    ri = np.flatnonzero(s["kind"] == 2)
    if ri.size == 0:
        return w
    g = np.searchsorted(groups, gid_all[ri])
    # per group, the first sorted position whose time reaches the lag (a search per reuse on its
    # group's slice: offset the times by the group so one searchsorted serves all groups)
    span = float(t_sorted.max()) + float(lag.max()) + 1.0 if t_sorted.size else 1.0
    key = g_sorted * span + t_sorted
    at = np.searchsorted(key, g * span + np.minimum(lag[ri], span - 1.0), side="left")
    n = np.maximum(ends[g] - starts[g], 1)
    seen = np.clip(ends[g] - at, 0, None) / n
    w[ri] = np.where(seen > 1.0 / WINDOW_WEIGHT_CAP, 1.0 / np.maximum(seen, 1e-300), WINDOW_WEIGHT_CAP)
    return np.clip(w, 1.0, WINDOW_WEIGHT_CAP)


def fit_prefix_table(structure: RequestStructure, clients: np.ndarray, names: list[str], *,
                     block_size: int = DEFAULT_BLOCK_SIZE, span_s: float | None = None) -> pl.DataFrame:
    r"""The pool's ``prefixes`` table (:data:`PREFIXES_SCHEMA`) from :func:`prefix_structure`.

    Parameters
    ----------
    structure : RequestStructure
    clients : numpy.ndarray of int
        Pool client index of each request.
    names : list of str
        Pool client ids, by index.
    block_size : int
        Tokens per block of the trace's ``prefix_blocks``.
    span_s : float, optional
        The trace's window length :math:`T` (s): correct reuses for the window (the *reuse-lag
        correction*). A reuse at lag :math:`x` is seen only when its original falls inside the
        window, with probability :math:`(T - x) / T` for a reuse uniform in it; reuses whose
        original came before the window look like originals. Each seen reuse is weighted by
        :func:`~servelab.fitting.pool_conversations.window_weights` (:math:`T / (T - x)`,
        capped at 20) in the lag, gap and same-length PMFs and in the reuse share (the share of
        the uncut process, at most 1; it may exceed the class's "none" share: it is not a share
        of the seen first turns); a ``reuse_censoring`` row (value 1) per client tells the
        generator so: a first turn at time :math:`t` since the client's first row reuses with
        probability share :math:`\times F(t)` (:math:`F`: the lag CDF; an original before the
        first row is not there, as the trace's own cut hid it), at most the class's "none"
        share, at a lag drawn from the PMF cut at :math:`t`. (Capping the share at "none" here
        instead, as before, lost reuses at every time on short traces whose lags are long.)
        None (default): counts as seen.
    """
    from servelab.fitting.pool_conversations import window_weights

    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer; got {block_size!r}")
    if span_s is not None and not (np.isfinite(span_s) and span_s > 0):
        raise ValueError(f"span_s must be None or a positive number of seconds; got {span_s!r}")
    s = structure
    has = s["lengths"] > 0
    cls = np.left_shift(1, np.floor(np.log2(np.maximum(s["lengths"], 1))).astype(np.int64))
    w = np.ones(s["lengths"].size)
    if span_s is not None:
        w = np.where(s["kind"] == 2, _seen_weights(s, clients, cls, float(span_s)), 1.0)
    frame = pl.DataFrame({"c": np.asarray(clients, dtype=np.int64), "kind": s["kind"], "group": s["group"],
                          "gap": s["gap"], "lag": _lag_bins(s["lag_s"]), "suffix": s["suffix"],
                          "same": s["same_length"].astype(np.float64),
                          "cls": cls, "w": w}).filter(pl.Series(has))
    roots = frame.filter(pl.col("kind") <= 2)
    n_root = roots.group_by("c", "cls").agg(pl.len().alias("n"))
    if span_s is not None:
        # the weighted (uncut) reuse share is at most all of the class's first turns; the generator
        # applies it times the lag CDF at each request's time, within the class's "none" share
        # (weighted sums in row order: a polars group-by sum's last bit varies from run to run)
        room = (roots.group_by("c", "cls").agg(pl.len().cast(pl.Float64).alias("room"))
                .join(grouped_sums(roots, ["c", "cls"], wsum=pl.when(pl.col("kind") == 2).then(pl.col("w")).otherwise(0.0)), on=["c", "cls"]))
        roots = (roots.join(room, on=["c", "cls"], how="left")
                 .with_columns(pl.when(pl.col("kind") == 2)
                               .then(pl.col("w") * pl.min_horizontal(pl.lit(1.0), pl.col("room") / pl.col("wsum")))
                               .otherwise(pl.col("w")).alias("w")).drop("room", "wsum"))
    g_len, g_ext, g_cl = s["group_length"], s["group_extends"], s["group_clients"]

    def pmf(sub: pl.DataFrame, col: str, kind: str, per: pl.DataFrame) -> pl.DataFrame:
        keys = ["c", "cls"] if "cls" in per.columns else ["c"]
        counts = grouped_sums(sub, [*keys, col], k="w").join(per, on=keys)
        return counts.select("c", pl.lit(kind).alias("kind"), pl.lit(None, pl.Int64).alias("group"),
                             pl.lit(None, pl.Int64).alias("extends"), pl.col(col).cast(pl.Float64).alias("value"),
                             # weighted sums add in another order than their totals: a one-value
                             # PMF may read 1 + 1e-16, which the generator rightly refuses
                             (pl.col("k") / pl.col("n")).clip(0.0, 1.0).alias("probability"),
                             (pl.col("cls") if "cls" in per.columns else pl.lit(1, pl.Int64)).alias("min_blocks"))

    parts = []
    grp = (roots.filter(pl.col("kind") == 1).group_by("c", "cls", "group").agg(pl.len().alias("k"))
           .join(n_root, on=["c", "cls"]))
    if grp.height:
        gi = grp["group"].to_numpy()
        # a group extends the longest *used* group it starts with: skip common prefixes no first
        # turn stops at (the shorter prefixes of a multi-client system prompt are all common)
        used = np.zeros(g_len.size, dtype=bool)
        used[gi] = True
        g_ext = g_ext.copy()
        while True:  # rounds over the depth of nesting, never requests
            skip = (g_ext >= 0) & ~used[np.maximum(g_ext, 0)]
            if not skip.any():
                break
            g_ext[skip] = s["group_extends"][g_ext[skip]]
        parts.append(grp.select(
            "c", pl.Series("kind", np.where(g_cl[gi] >= 2, "shared", "template")), "group",
            pl.Series("extends", np.where(g_ext[gi] >= 0, g_ext[gi], None).tolist(), dtype=pl.Int64),
            pl.Series("value", g_len[gi].astype(float)), (pl.col("k") / pl.col("n")).alias("probability"),
            pl.col("cls").alias("min_blocks")))
    parts.append(pmf(roots.filter(pl.col("kind") == 2), "gap", "reuse_gap", n_root))
    # a class with first turns but no structure still needs its row: "none" is the remainder,
    # and the generator must know the class was seen (a zero-probability reuse row marks it)
    seen = n_root.select("c", pl.lit("reuse_gap").alias("kind"), pl.lit(None, pl.Int64).alias("group"),
                         pl.lit(None, pl.Int64).alias("extends"), pl.lit(0.0).alias("value"),
                         pl.lit(0.0).alias("probability"), pl.col("cls").alias("min_blocks"))
    parts.append(seen.join(parts[-1].select("c", "min_blocks"), on=["c", "min_blocks"], how="anti"))
    reused = roots.filter(pl.col("kind") == 2)
    # lags per length class too: long prompts (documents) come back later than short ones
    parts.append(pmf(reused, "lag", "reuse_lag_s", grouped_sums(reused, ["c", "cls"], n="w")))
    parts.append(pmf(reused, "same", "reuse_same_length", grouped_sums(reused, ["c"], n="w")))
    if span_s is not None and reused.height:
        parts.append(reused.select(pl.col("c").unique().sort(), pl.lit("reuse_censoring").alias("kind"),
                                   pl.lit(None, pl.Int64).alias("group"), pl.lit(None, pl.Int64).alias("extends"),
                                   pl.lit(1.0).alias("value"), pl.lit(1.0).alias("probability"),
                                   pl.lit(1, pl.Int64).alias("min_blocks")))
    follows = frame.filter(pl.col("kind") == 3)
    parts.append(pmf(follows, "gap", "history_gap", follows.group_by("c").agg(pl.len().alias("n"))))
    grouped = frame.filter(pl.col("kind") == 1)
    parts.append(pmf(grouped, "suffix", "suffix_blocks", grouped.group_by("c").agg(pl.len().alias("n"))))
    # and per (client, length class, group): the generator re-picks a request's group in
    # proportion to the group's share times these (Bayes: P(g | L) ~ P(g | class) P(L | g, class)),
    # so that each group keeps its fitted share of the class
    if grouped.height:
        parts.append(grouped.group_by("c", "cls", "group", "suffix").agg(pl.len().alias("k"))
                     .with_columns((pl.col("k") / pl.col("k").sum().over("c", "cls", "group")).alias("probability"))
                     .select("c", pl.lit("suffix_blocks").alias("kind"), "group", pl.lit(None, pl.Int64).alias("extends"),
                             pl.col("suffix").cast(pl.Float64).alias("value"), "probability",
                             pl.col("cls").alias("min_blocks")))
    parts = [p.with_columns(pl.col("group").cast(pl.Int64), pl.col("extends").cast(pl.Int64)) for p in parts]
    out = pl.concat(parts, how="vertical")
    name_of = pl.DataFrame({"c": np.arange(len(names), dtype=np.int64), "client_id": names},
                           schema={"c": pl.Int64, "client_id": pl.String})
    # rows in the order servelab's pool format stores them (so a saved pool reads back equal)
    return (out.join(name_of, on="c").with_columns(pl.lit(int(block_size), pl.Int64).alias("block_size"))
            .sort("client_id", "kind", "group", "min_blocks", "value")
            .select(list(PREFIXES_SCHEMA)).cast(PREFIXES_SCHEMA))


def prefix_table(store: TraceStore, clients: np.ndarray, names: list[str], *, linking=None,
                 block_size: int = DEFAULT_BLOCK_SIZE, span_s: float | None = None) -> pl.DataFrame | None:
    """The ``prefixes`` table of a pool fitted from ``store`` (None when no request has blocks).

    Parameters
    ----------
    store : TraceStore
        Needs ``prefix_blocks``; requests are taken in ``request_id`` order, as ``clients``.
    clients : numpy.ndarray of int
        Pool client index of each request (in ``request_id`` order).
    names : list of str
    linking : LinkOptions, optional
        How conversations are linked (the parents whose blocks follow-ups repeat).
    block_size : int
    span_s : float, optional
        The window length for the reuse-lag correction (:func:`fit_prefix_table`; None: none).
    """
    from servelab.analysis.conversations import LinkOptions, available_link_rules, link_conversations
    from servelab.analysis.exceptions import NotApplicableError

    table = store.read_arrow(["request_id", "timestamp", "prefix_blocks"])
    rid = table["request_id"].to_numpy()
    if rid.size > 1 and not bool(np.all(rid[1:] > rid[:-1])):
        table = table.sort_by([("request_id", "ascending")])
        rid = table["request_id"].to_numpy()
    blocks = table["prefix_blocks"].combine_chunks()
    lengths = pc.fill_null(pc.list_value_length(blocks), 0).to_numpy().astype(np.int64)
    if not (lengths > 0).any():
        return None
    values = pc.list_flatten(blocks).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    parents = np.full(rid.size, -1, dtype=np.int64)
    rules = available_link_rules(store)
    if rules:
        try:
            links = link_conversations(store, rule=rules[0], **(linking or LinkOptions()).as_kwargs()).links
        except NotApplicableError:
            links = None
        if links is not None:
            at = np.searchsorted(rid, links["request_id"].to_numpy())
            par = links["parent"].fill_null(-1).to_numpy().astype(np.int64)
            ok = par >= 0
            ppos = np.searchsorted(rid, par[ok])
            found = ((ppos < rid.size) & (rid[np.minimum(ppos, rid.size - 1)] == par[ok])
                     & (ppos < at[ok]))  # a parent logged after its child is left out
            parents[at[ok][found]] = ppos[found]
    structure = prefix_structure(values, lengths, timestamps=table["timestamp"].to_numpy().astype(float),
                                 clients=clients, parents=parents)
    return fit_prefix_table(structure, clients, names, block_size=block_size, span_s=span_s)
