"""Conversations linked by ``conversation_id`` in DuckDB SQL over the store: only the multi-turn
requests come back to Python.

:func:`servelab.analysis.conversations.link_conversations` reads every request into polars and
returns one link row per request. What the report's conversation analyses use (the link summary,
the turn distribution, inter-turn times, per-conversation durations, BurstGPT Fig. 9's interval
table and ServeGen Fig. 16's upsampling) depends on the multi-turn conversations only, plus a
few counts over the others. :func:`link_multi_turn` computes those in SQL: one hash aggregate
over the identified requests (each ``conversation_id``'s size, and whether a one-request
conversation names a missing parent), then window functions per ``conversation_id`` ordered by
``(timestamp, request_id)`` (first request, predecessor, turn number, inter-turn time) over the
rows of conversations of two or more turns only, which are fetched; one-request conversations are
only counted (windowing every identified request, most of them alone in their partition, cost
about a third more: 0.38 -> 0.26 CPU-s on the 1 M-row store, the same rows). Its tables are those of ``link_conversations`` restricted to multi-turn conversations
(tests/analysis/test_conversations_sql.py compares them), its summary equal to
``link_conversations``'s. On the synthetic 10 M-row store (2.2 M multi-turn requests) this is the
difference between 10 CPU-s and 2.3 GB, and about 3 CPU-s and 0.4 GB.

The SQL uses only the canonical columns (``request_id``, ``timestamp``, ``conversation_id``, and
``turn`` / ``parent_id`` when present), so that it can run on another SQL engine. This module
must not import fitting, generator, figures or matplotlib.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import polars as pl
from servelab.analysis.conversations import (
    _LINK_SCHEMA,
    _NO_PARENT,
    LinkSummary,
    _choose_rule,
    _link_summary,
    conversation_table,
    turn_distribution,
)
from servelab.analysis.store import TraceStore, fetch_polars

__all__ = ["MultiTurnConversations", "link_multi_turn"]

#: per conversation id: its size, and whether its one request (a one-request conversation) names a
#: missing parent; the window functions below then run on the multi-turn conversations' rows only
_SIZES_SQL = """
CREATE TEMP TABLE sizes_ AS
SELECT conversation_id, count(*) AS n_turns_, bool_or({dangling_one}) AS dangling_one_
FROM requests
WHERE conversation_id IS NOT NULL
GROUP BY conversation_id
"""

#: the requests of multi-turn conversations with their link columns, per conversation in
#: (timestamp, request_id) order
_MULTI_SQL = """
SELECT request_id, timestamp,
       first_value(request_id) OVER w AS conversation,
       lag(request_id) OVER w AS parent,
       row_number() OVER w AS turn,
       timestamp - lag(timestamp) OVER w AS itt_s,
       {dangling} AS dangling,
       {out_of_order} AS later_turn_lower_
FROM requests SEMI JOIN (SELECT conversation_id FROM sizes_ WHERE n_turns_ >= 2) USING (conversation_id)
WINDOW w AS (PARTITION BY conversation_id ORDER BY timestamp, request_id)
ORDER BY request_id
"""

_COUNTS_SQL = """
SELECT (SELECT count(*) FROM requests) AS n_requests,
       (SELECT min(timestamp) FROM requests) AS first_s,
       (SELECT max(timestamp) FROM requests) AS last_s,
       count(*) FILTER (WHERE n_turns_ = 1) AS n_single,
       count(*) FILTER (WHERE n_turns_ = 1 AND dangling_one_) AS n_dangling_single
FROM sizes_
"""


@dataclass(frozen=True)
class MultiTurnConversations:
    """The multi-turn part of a trace's conversations (:func:`link_multi_turn`).

    Attributes
    ----------
    summary : LinkSummary
        Equal to :func:`~servelab.analysis.conversations.link_conversations`'s summary.
    links : polars.DataFrame
        :attr:`~servelab.analysis.conversations.Conversations.links`'s rows (same columns and
        types, ``request_id`` order) of the requests in conversations of two or more turns.
    conversations : polars.DataFrame
        :func:`~servelab.analysis.conversations.conversation_table`'s rows of those conversations
        (censoring against the whole trace's first and last arrival).
    turns : polars.DataFrame
        :func:`~servelab.analysis.conversations.turn_distribution` of every identified
        conversation, one-request ones included.
    """

    summary: LinkSummary
    links: pl.DataFrame
    conversations: pl.DataFrame
    turns: pl.DataFrame


def link_multi_turn(store: TraceStore, *, edge_s: float | None = None) -> MultiTurnConversations:
    """Link the store's requests by ``conversation_id`` in SQL; fetch the multi-turn ones only.

    Parameters
    ----------
    store : TraceStore
        A store whose link rule is ``conversation_id`` (the first of
        :data:`~servelab.analysis.conversations.LINK_RULES` it carries a value of).
    edge_s : float, optional
        As for :func:`~servelab.analysis.conversations.link_conversations` (default: the 90th
        percentile of inter-turn times).

    Raises
    ------
    NotApplicableError
        If the store has no ``conversation_id`` value.
    ValueError
        If ``edge_s`` is negative.
    """
    _choose_rule(store, "conversation_id")
    if edge_s is not None and not (edge_s >= 0):
        raise ValueError(f"edge_s must be >= 0 seconds; got {edge_s!r}")
    # a first turn that names a parent lost it to the trace's start (Bailian: parent_id beside the ids)
    names_parent = (f"(parent_id IS NOT NULL AND CAST(parent_id AS VARCHAR) NOT IN {_NO_PARENT})"
                    if "parent_id" in store.columns else "false")
    dangling = f"(row_number() OVER w = 1 AND {names_parent})" if "parent_id" in store.columns else "false"
    # given turn numbers that disagree with arrival order (NULL compares as not out of order)
    out_of_order = ("coalesce(CAST(turn AS DOUBLE) < CAST(lag(turn) OVER w AS DOUBLE), false)"
                    if "turn" in store.columns else "false")
    with contextlib.closing(store.connect()) as con:
        con.execute(_SIZES_SQL.format(dangling_one=names_parent))
        multi = fetch_polars(con, _MULTI_SQL.format(dangling=dangling, out_of_order=out_of_order))
        n_requests, first, last, n_single, n_dangling_single = fetch_polars(con, _COUNTS_SQL).row(0)
    n_dangling = int(n_dangling_single) + int(multi["dangling"].sum())
    lower = multi.filter(pl.col("later_turn_lower_"))["conversation"].unique()
    links = multi.select(
        "request_id", "timestamp", "conversation", "parent", "turn", "itt_s", "dangling",
        cycle=pl.lit(False), identified=pl.lit(True), out_of_order=pl.col("conversation").is_in(lower.implode()),
    ).cast(_LINK_SCHEMA)
    itt = links["itt_s"].drop_nulls()
    if edge_s is None:
        edge_s = float(itt.quantile(0.9)) if itt.len() else 0.0
    convs = conversation_table(links, trace_start=float(first), trace_end=float(last), edge_s=edge_s)
    singles = pl.DataFrame({"turns": pl.repeat(1, int(n_single), dtype=pl.UInt32, eager=True)}).with_columns(
        identified=pl.lit(True))
    turns = turn_distribution(pl.concat([convs.select("turns", "identified"), singles]))
    # each link is a request's predecessor in its conversation (lag): chains, so no request has two
    # children and nothing branches (the group-by over 2.2 M parents at 10 M rows is not needed)
    extra = {"n_out_of_order": lower.len(), "n_dangling": int(n_dangling), "n_branching": 0}
    summary = _link_summary("conversation_id", links, convs, extra, notes=[], edge_s=edge_s,
                            n_requests=int(n_requests), n_conversations=int(n_single) + convs.height)
    return MultiTurnConversations(summary=summary, links=links, conversations=convs, turns=turns)
