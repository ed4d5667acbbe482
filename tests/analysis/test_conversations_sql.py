"""``conversations_sql.link_multi_turn`` (DuckDB window functions, multi-turn rows only) against
``conversations.link_conversations`` (every request in polars/numpy) on small traces with the edge
cases that matter: ties in time inside a conversation, one-request conversations, requests without
an id, conversations that cross window edges, given turn numbers out of arrival order, a first turn
that names a missing parent, no multi-turn conversation, no id at all. The Fig. 16 upsampling from
the multi-turn rows plus the trace's times equals the one from every link."""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from servelab.analysis.conversations import (
    interval_stats_by_turns,
    itt_values,
    link_conversations,
    turn_distribution,
)
from servelab.analysis.conversations_sql import link_multi_turn
from servelab.analysis.exceptions import NotApplicableError
from servelab.analysis.store import frame_source
from servelab.analysis.upsampling import upsampling_burstiness


def _trace(rng: np.random.Generator, *, with_turn: bool, with_parent: bool) -> pl.DataFrame:
    """40 conversations of 2-6 turns over 2 hours (ITTs of minutes: many cross a 10-minute edge),
    25 one-request conversations, 300 requests without an id; two turns of conversation c0 tie in
    time; c1's given turn numbers run backwards; c2's first turn and one single name a parent."""
    rows = []
    for c in range(40):
        k = int(rng.integers(2, 7))
        t = rng.uniform(0, 7200) + np.concatenate([[0.0], np.cumsum(rng.exponential(240.0, k - 1))])
        t = np.round(t, 3)
        if c == 0:
            t[1] = t[0]  # a tie: (timestamp, request_id) order decides
        turns = list(range(k, 0, -1)) if c == 1 else list(range(1, k + 1))
        for j, x in enumerate(t):
            parent = "-1" if j == 0 else "x"
            if c == 2 and j == 0:
                parent = "999999"
            rows.append((float(x), f"c{c}", turns[j], parent))
    for i in range(25):
        rows.append((float(np.round(rng.uniform(0, 7200), 3)), f"s{i}", 1, "12345" if i == 0 else ""))
    for x in np.round(rng.uniform(0, 7200, 300), 3):
        rows.append((float(x), None, None, None))
    data = {"timestamp": [r[0] for r in rows], "conversation_id": [r[1] for r in rows]}
    if with_turn:
        data["turn"] = [r[2] for r in rows]
    if with_parent:
        data["parent_id"] = [r[3] for r in rows]
    return pl.DataFrame(data)


def _multi(links: pl.DataFrame) -> pl.DataFrame:
    sizes = links.group_by("conversation").len().filter(pl.col("len") >= 2)
    return links.join(sizes, on="conversation", how="semi")


def _assert_equal_to_link_conversations(source) -> None:
    full = link_conversations(source)
    sql = link_multi_turn(source)
    assert json.dumps(sql.summary.to_dict()) == json.dumps(full.summary.to_dict())
    assert_frame_equal(sql.links, _multi(full.links))
    assert_frame_equal(sql.conversations, full.conversations.filter(pl.col("turns") >= 2))
    assert_frame_equal(sql.turns, turn_distribution(full.conversations))
    assert_frame_equal(interval_stats_by_turns(sql.links, sql.conversations),
                       interval_stats_by_turns(full.links, full.conversations))
    np.testing.assert_array_equal(itt_values(sql.links), itt_values(full.links))  # same order: fit subsamples
    if full.summary.n_multi_turn:
        times = source.read_arrow(["timestamp"])["timestamp"].to_numpy()
        a = upsampling_burstiness(sql.links, window_s=600.0, min_gaps=5, timestamps=times)
        b = upsampling_burstiness(full.links, window_s=600.0, min_gaps=5)
        assert (a.factor, a.n_original, a.n_multi_turn, a.n_naive, a.n_itt) == \
            (b.factor, b.n_original, b.n_multi_turn, b.n_naive, b.n_itt)
        np.testing.assert_array_equal([a.median_cv_original, a.median_cv_naive, a.median_cv_itt],
                                      [b.median_cv_original, b.median_cv_naive, b.median_cv_itt])
        assert_frame_equal(a.windows, b.windows)


@pytest.mark.parametrize("with_turn,with_parent", [(False, False), (True, True)])
def test_link_multi_turn_equals_link_conversations(with_turn, with_parent):
    source = frame_source(_trace(np.random.default_rng(3), with_turn=with_turn, with_parent=with_parent))
    _assert_equal_to_link_conversations(source)
    s = link_multi_turn(source).summary
    assert s.n_multi_turn == 40 and s.n_conversations == 65 and s.n_requests == source.n_requests
    # the cases are there: c1 runs its turn numbers backwards, c2 and s0 name missing parents
    assert (s.n_out_of_order, s.n_dangling) == ((1, 2) if with_turn else (0, 0))


def test_link_multi_turn_without_multi_turn_conversations():
    frame = pl.DataFrame({"timestamp": [0.0, 1.0, 2.0, 5.0], "conversation_id": ["a", "b", None, "c"]})
    source = frame_source(frame)
    _assert_equal_to_link_conversations(source)
    got = link_multi_turn(source)
    assert got.links.height == 0 and got.summary.n_conversations == 3
    assert got.turns.rows() == [(1, 3, 1.0, 1.0)]


def test_link_multi_turn_needs_conversation_ids():
    source = frame_source(pl.DataFrame({"timestamp": [0.0, 1.0], "conversation_id": [None, None]},
                                       schema={"timestamp": pl.Float64, "conversation_id": pl.String}))
    with pytest.raises(NotApplicableError, match="no request carries a value"):
        link_multi_turn(source)
    with pytest.raises(ValueError, match="edge_s must be >= 0 seconds; got -1"):
        link_multi_turn(frame_source(pl.DataFrame({"timestamp": [0.0], "conversation_id": ["a"]})), edge_s=-1)
