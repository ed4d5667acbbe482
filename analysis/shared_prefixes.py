r"""Block prefixes shared across many unrelated requests: system prompts and per-client templates.

A prompt's block list (``prefix_blocks``, Mooncake / Bailian ``hash_ids``) starts with whatever the
prompt shares with others. Conversation history is shared by the few turns of one conversation; a
system prompt or a template is shared by many requests that continue it in many different ways.
This module finds the latter, so that conversation linking can tell the two apart
(:func:`servelab.analysis.conversations.link_conversations`) and a report can list them.

The rule (:class:`CommonPrefixRule`)
    For a prefix *P* of *k* blocks, the *continuing* requests are those whose block list starts
    with *P* and has at least one more block; their block *k* (the first after *P*) is their
    *continuation*. *P* is **common** when its continuing requests take at least
    ``min_continuations`` distinct continuations (default 8), or come from at least
    ``min_clients`` distinct clients (default 2; only when the trace has ``client_id``).

    Why it separates prompts from conversations: a follow-up turn repeats the earlier turn's full
    blocks and then its own, so along one conversation a prefix has at most two continuations
    (the earlier turn's partial last block, and the block that every later turn shares); each
    extra branch (two follow-ups of one turn) adds one. A system prompt or template used by *m*
    conversations has about *m* continuations. A conversation has one client; a prefix that
    several clients build on is not one conversation's history.

Every prefix is identified by the rolling hash of
:func:`servelab.analysis.conversations.prefix_hashes` (equal hashes of equal length are taken as
equal prefixes). Counting is one hash group-by over the B blocks of the trace: O(B) expected time
and a few arrays of B words, never a loop over requests.

This module must not import fitting, generator, figures or matplotlib. Its table describes
prefixes (lengths, counts, first and last arrival), never the requests' contents.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from servelab.analysis.exceptions import NotApplicableError
from servelab.analysis.store import TraceStore

__all__ = [
    "DEFAULT_MIN_CLIENTS",
    "DEFAULT_MIN_CONTINUATIONS",
    "CommonPrefixRule",
    "SharedPrefixes",
    "client_codes",
    "find_shared_prefixes",
    "prefix_statistics",
    "shared_prefix_table",
]

#: distinct continuations that make a prefix common: one conversation gives at most two, plus one
#: per branch (two follow-ups of one turn); eight leaves room for a few branches
DEFAULT_MIN_CONTINUATIONS = 8
#: distinct clients that make a prefix common: a conversation belongs to one client
DEFAULT_MIN_CLIENTS = 2

_ANALYSIS = "shared prefix analysis"


@dataclass(frozen=True)
class CommonPrefixRule:
    """When a shared block prefix is common (a system prompt or template, not one conversation).

    Parameters
    ----------
    min_continuations : int or None
        A prefix whose continuing requests take at least this many distinct next blocks is
        common; None switches this criterion off.
    min_clients : int or None
        A prefix whose continuing requests come from at least this many distinct clients is
        common (only where client ids are known); None switches it off.

    Notes
    -----
    With both criteria off no prefix is common (the rule of servelab before the check).
    """

    min_continuations: int | None = DEFAULT_MIN_CONTINUATIONS
    min_clients: int | None = DEFAULT_MIN_CLIENTS

    def __post_init__(self):
        for name in ("min_continuations", "min_clients"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 2):
                raise ValueError(f"{name} must be an integer >= 2 or None; got {value!r}")

    @property
    def active(self) -> bool:
        """Whether any criterion is on."""
        return self.min_continuations is not None or self.min_clients is not None

    def common(self, stats: pl.DataFrame) -> pl.Series:
        """Which rows of a :func:`prefix_statistics` table are common prefixes (boolean Series)."""
        expr = pl.lit(False)
        if self.min_continuations is not None:
            expr = expr | (pl.col("n_continuations") >= self.min_continuations)
        if self.min_clients is not None and "n_clients" in stats.columns:
            expr = expr | (pl.col("n_clients").fill_null(0) >= self.min_clients)
        return stats.select(common=expr)["common"]

    def common_groups(self, group: np.ndarray, n_groups: int, *, continuation_keys: np.ndarray,
                      continuation_rows: np.ndarray | None = None,
                      clients: np.ndarray | None = None) -> np.ndarray:
        """Which prefixes are common, from one row per (continuing request, prefix) pair.

        The array version of :meth:`common` for callers that already hold dense prefix ids
        (conversation linking): bincounts and gathers, plus hash passes over the rows of
        prefixes continued at least ``min_continuations`` times (a subsample of the rows of
        very common ones first).

        Parameters
        ----------
        group : numpy.ndarray of int
            Dense id of the prefix of each row, in ``[0, n_groups)``.
        n_groups : int
        continuation_keys : numpy.ndarray of uint64
            An id of the (prefix, next block) pair of each row, distinct across prefixes (e.g.
            the hash of the prefix one block longer).
        continuation_rows : numpy.ndarray of int, optional
            When given, row *r*'s id is ``continuation_keys[continuation_rows[r]]`` (e.g. all
            prefix hashes of the trace and the position of each row's longer prefix): only the
            rows that are counted are gathered.
        clients : numpy.ndarray of int, optional
            Client code of each row (-1 for unknown).

        Returns
        -------
        numpy.ndarray of bool
            One flag per prefix id.
        """
        group = np.asarray(group, dtype=np.int64)
        common = np.zeros(n_groups, dtype=bool)
        rows = np.bincount(group, minlength=n_groups)
        if self.min_continuations is not None:
            m = self.min_continuations
            cont = np.asarray(continuation_keys)
            at = None if continuation_rows is None else np.asarray(continuation_rows, dtype=np.int64)
            # only a prefix continued at least M times can have M distinct continuations. A
            # prefix continued very often (a system prompt: every request) is first tried on
            # every 64th of its rows: M distinct there are M distinct in all; the rest of the
            # candidates are counted on all their rows, so the result is exact. Rows are picked
            # through per-prefix flags (a gather from a small boolean table, not from counts)
            very = rows >= 4096
            if very.any():
                sub = np.flatnonzero(very[group])[::64]
                first = pl.Series(cont[sub if at is None else at[sub]], dtype=pl.UInt64).is_first_distinct().to_numpy()
                common |= np.bincount(group[sub][first], minlength=n_groups) >= m
            sub = np.flatnonzero(((rows >= m) & ~common)[group])
            if sub.size:
                first = pl.Series(cont[sub if at is None else at[sub]], dtype=pl.UInt64).is_first_distinct().to_numpy()
                common |= np.bincount(group[sub][first], minlength=n_groups) >= m
        if self.min_clients is not None and clients is not None:
            c = np.asarray(clients, dtype=np.int64)
            if c.size and int(c.min()) >= 0:  # every client known: no copies
                g, cc = group, c
            else:
                known = np.flatnonzero(c >= 0)
                g, cc = group[known], c[known]
            # one known client of each prefix (whichever write lands), then: a row with another
            # client means two or more distinct clients
            ref = np.full(n_groups, -1, dtype=np.int64)
            ref[g] = cc
            other = cc != ref[g]
            several = np.zeros(n_groups, dtype=bool)
            several[g[other]] = True
            if self.min_clients == 2:
                common |= several
            elif g.size:
                sub = several[g]
                pair = g[sub] * (int(cc.max()) + 1) + cc[sub]
                first = pl.Series(pair).is_first_distinct().to_numpy()
                common |= np.bincount(g[sub][first], minlength=n_groups) >= self.min_clients
        return common

    def describe(self) -> str:
        """The rule in words, for notes and reports."""
        parts = []
        if self.min_continuations is not None:
            parts.append(f"at least {self.min_continuations} distinct next blocks")
        if self.min_clients is not None:
            parts.append(f"at least {self.min_clients} clients")
        if not parts:
            return "no prefix is treated as common"
        return "a prefix is common when the requests that continue it take " + " or come from ".join(parts)


@dataclass(frozen=True)
class SharedPrefixes:
    """Common block prefixes of one trace.

    Attributes
    ----------
    rule : CommonPrefixRule
    n_requests : int
        Requests in the trace.
    n_with_blocks : int
        Requests with at least one block.
    n_starting_common : int
        Requests whose block list starts with at least one common prefix.
    has_clients : bool
        Whether the trace has client ids (``n_clients`` is NULL in the table otherwise).
    table : polars.DataFrame
        One row per common prefix, from :func:`shared_prefix_table`.
    """

    rule: CommonPrefixRule
    n_requests: int
    n_with_blocks: int
    n_starting_common: int
    has_clients: bool
    table: pl.DataFrame

    @property
    def starting_common_share(self) -> float:
        """Share of requests that start with a common prefix."""
        return self.n_starting_common / self.n_requests if self.n_requests else float("nan")

    def to_dict(self) -> dict:
        return {
            "min_continuations": self.rule.min_continuations, "min_clients": self.rule.min_clients,
            "n_requests": self.n_requests, "n_with_blocks": self.n_with_blocks,
            "n_starting_common": self.n_starting_common, "starting_common_share": self.starting_common_share,
            "has_clients": self.has_clients, "n_common_prefixes": self.table.height,
        }


def client_codes(column) -> np.ndarray:
    """Integer codes of a client id column (pyarrow array or chunked array, plain or
    dictionary-encoded as ``read_dictionary`` reads it); -1 for NULL."""
    if isinstance(column, pa.ChunkedArray) and pa.types.is_dictionary(column.type):
        column = column.unify_dictionaries()
        indices = [chunk.indices for chunk in column.chunks]
        if not indices:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([pc.fill_null(i, -1).to_numpy(zero_copy_only=False).astype(np.int64) for i in indices])
    codes = pc.dictionary_encode(column)
    if hasattr(codes, "combine_chunks"):
        codes = codes.combine_chunks()
    return pc.fill_null(codes.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def prefix_statistics(keys: np.ndarray, nxt: np.ndarray, *, clients: np.ndarray | None = None) -> pl.DataFrame:
    """Per prefix: continuing requests, distinct continuations and (optionally) distinct clients.

    Parameters
    ----------
    keys : numpy.ndarray of uint64
        Prefix hash of each (request, prefix) pair in which the request continues the prefix.
    nxt : numpy.ndarray of int64
        The request's block just after the prefix (its continuation).
    clients : numpy.ndarray of int64, optional
        The request's client code (-1 for unknown), one per pair.

    Returns
    -------
    polars.DataFrame
        ``key``, ``n_continuing``, ``n_continuations`` and, with clients, ``n_clients``.
    """
    frame = {"key": pl.Series(keys, dtype=pl.UInt64), "nxt": np.asarray(nxt, dtype=np.int64)}
    aggs = [pl.len().alias("n_continuing"), pl.col("nxt").n_unique().alias("n_continuations")]
    if clients is not None:
        frame["client"] = pl.Series(np.asarray(clients, dtype=np.int64)).set(pl.Series(np.asarray(clients) < 0), None)
        aggs.append(pl.col("client").drop_nulls().n_unique().alias("n_clients"))
    return pl.DataFrame(frame).group_by("key").agg(aggs)


def shared_prefix_table(values: np.ndarray, lengths: np.ndarray, *, timestamps: np.ndarray | None = None,
                        clients: np.ndarray | None = None, request_ids: np.ndarray | None = None,
                        rule: CommonPrefixRule = CommonPrefixRule()) -> tuple[pl.DataFrame, int]:
    """Common prefixes of block lists given as flat arrays.

    Parameters
    ----------
    values, lengths
        Flattened block ids and list lengths, one list per request, requests in arrival order.
    timestamps : numpy.ndarray, optional
        Arrival times (s), for ``first_seen_s`` and ``last_seen_s``.
    clients : numpy.ndarray of int64, optional
        Client codes (-1 for unknown), e.g. from :func:`client_codes`.
    request_ids : numpy.ndarray, optional
        Request ids (default: positions).
    rule : CommonPrefixRule

    Returns
    -------
    table : polars.DataFrame
        One row per common prefix, sorted by length then requests: ``length_blocks``,
        ``n_requests`` (requests starting with it), ``request_share`` (of all requests),
        ``n_continuing`` (of those, requests with more blocks), ``n_continuations`` (distinct
        next blocks), ``n_clients`` (distinct clients among continuing requests; NULL without
        clients), ``extends_blocks`` (length of the longest shorter common prefix it extends,
        0 if none: a template nested in a system prompt extends it), ``first_request_id``,
        ``first_seen_s``, ``last_seen_s``.
    n_starting_common : int
        Requests whose block list starts with at least one common prefix.
    """
    from servelab.analysis.conversations import prefix_hashes

    lengths = np.asarray(lengths, dtype=np.int64)
    n = lengths.size
    values = np.asarray(values).astype(np.int64, copy=False)
    keys = prefix_hashes(values, lengths)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    req = np.repeat(np.arange(n, dtype=np.int64), lengths)
    pos = np.arange(keys.size, dtype=np.int64) - starts[req]
    cont = pos < lengths[req] - 1
    # a prefix can only be common if at least two requests continue it: drop the rest first
    c_flat = np.flatnonzero(cont)
    c_keys = pl.Series(keys[c_flat], dtype=pl.UInt64)
    shared = c_keys.is_duplicated().to_numpy()
    c_flat = c_flat[shared]
    del c_keys, shared, cont
    stats = prefix_statistics(keys[c_flat], values[c_flat + 1],
                              clients=None if clients is None else np.asarray(clients)[req[c_flat]])
    common = stats.filter(rule.common(stats))
    del stats
    empty = pl.DataFrame(schema={
        "length_blocks": pl.Int64, "n_requests": pl.Int64, "request_share": pl.Float64, "n_continuing": pl.Int64,
        "n_continuations": pl.Int64, "n_clients": pl.Int64, "extends_blocks": pl.Int64, "first_request_id": pl.Int64,
        "first_seen_s": pl.Float64, "last_seen_s": pl.Float64})
    if common.height == 0:
        return empty, 0
    # every request starting with a common prefix: its position at that prefix's length
    is_common = pl.Series(keys, dtype=pl.UInt64).is_in(common["key"].implode()).to_numpy()
    at = np.flatnonzero(is_common)
    per = pl.DataFrame({"key": pl.Series(keys[at], dtype=pl.UInt64), "req": req[at], "length": pos[at] + 1}).group_by(
        "key").agg(n_requests=pl.len(), first_req=pl.col("req").min(), last_req=pl.col("req").max(),
                   length_blocks=pl.col("length").first())
    n_starting_common = int(np.unique(req[at]).size)
    table = common.join(per, on="key")
    # nested structure: the longest common prefix among each common prefix's own shorter prefixes
    first = table["first_req"].to_numpy()
    plen = table["length_blocks"].to_numpy().astype(np.int64)
    inner = np.repeat(np.arange(table.height), plen)
    inner_pos = np.arange(int(plen.sum())) - np.repeat(np.cumsum(plen) - plen, plen)
    inner_flat = starts[first][inner] + inner_pos
    inner_common = is_common[inner_flat] & (inner_pos < np.repeat(plen, plen) - 1)
    extends = np.zeros(table.height, dtype=np.int64)
    np.maximum.at(extends, inner[inner_common], inner_pos[inner_common] + 1)
    rid = np.arange(n, dtype=np.int64) if request_ids is None else np.asarray(request_ids, dtype=np.int64)
    ts = np.full(n, np.nan) if timestamps is None else np.asarray(timestamps, dtype=float)
    if "n_clients" not in table.columns:
        table = table.with_columns(n_clients=pl.lit(None, dtype=pl.Int64))
    table = table.with_columns(
        request_share=pl.col("n_requests") / n,
        extends_blocks=pl.Series(extends),
        first_request_id=pl.Series(rid[first]),
        first_seen_s=pl.Series(ts[first]),
        last_seen_s=pl.Series(ts[table["last_req"].to_numpy()]),
    ).sort(["length_blocks", "n_requests", "first_request_id"], descending=[False, True, False])
    return table.select(empty.columns).cast(empty.schema), n_starting_common


def find_shared_prefixes(store: TraceStore, *, min_continuations: int | None = DEFAULT_MIN_CONTINUATIONS,
                         min_clients: int | None = DEFAULT_MIN_CLIENTS) -> SharedPrefixes:
    """Common block prefixes (system prompts, templates) of a store's requests.

    Parameters
    ----------
    store : TraceStore
        Needs ``prefix_blocks``; ``client_id`` is used when present.
    min_continuations, min_clients : int or None
        The :class:`CommonPrefixRule`.

    Returns
    -------
    SharedPrefixes

    Raises
    ------
    NotApplicableError
        If the trace has no ``prefix_blocks``.
    """
    rule = CommonPrefixRule(min_continuations=min_continuations, min_clients=min_clients)
    store.require("prefix_blocks", analysis=_ANALYSIS)
    has_clients = "client_id" in store.columns
    cols = ["request_id", "timestamp", "prefix_blocks", *(["client_id"] if has_clients else [])]
    table = store.read_arrow(cols)
    rid = table["request_id"].to_numpy().astype(np.int64)
    if rid.size > 1 and not bool(np.all(rid[1:] > rid[:-1])):
        table = table.sort_by([("request_id", "ascending")])
        rid = table["request_id"].to_numpy().astype(np.int64)
    ts = table["timestamp"].to_numpy().astype(float)
    clients = client_codes(table["client_id"]) if has_clients else None
    blocks = table["prefix_blocks"].combine_chunks()
    del table
    lengths = pc.fill_null(pc.list_value_length(blocks), 0).to_numpy().astype(np.int64)
    values = pc.list_flatten(blocks).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    del blocks
    if not (lengths > 0).any():
        raise NotApplicableError(_ANALYSIS, reason="no request carries prefix blocks")
    frame, n_common = shared_prefix_table(values, lengths, timestamps=ts, clients=clients, request_ids=rid, rule=rule)
    return SharedPrefixes(rule=rule, n_requests=int(rid.size), n_with_blocks=int((lengths > 0).sum()),
                          n_starting_common=n_common, has_clients=has_clients, table=frame)
