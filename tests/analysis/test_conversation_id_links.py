"""Links from conversation ids (numpy on dense codes) equal the SQL window-function definition
they replace (issue 16), on stores with ties, unidentified rows, unsorted times, turn numbers out
of order and parent ids; the reference SQL is written out here."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from servelab.analysis.conversations import _LINK_SCHEMA, _links_by_conversation_id
from servelab.analysis.store import write_store


def _reference(store) -> pl.DataFrame:
    win = "OVER (PARTITION BY conversation_id ORDER BY timestamp, request_id)"
    dangling = (f"coalesce(conversation_id IS NOT NULL AND row_number() {win} = 1 AND requests.parent_id IS NOT NULL "
                "AND requests.parent_id NOT IN ('', '-1'), false)") if "parent_id" in store.columns else "false"
    ooo = (f"coalesce(conversation_id IS NOT NULL AND requests.turn < lag(requests.turn) {win}, false)"
           if "turn" in store.columns else "false")
    sql = f"""
SELECT request_id, timestamp,
  CASE WHEN conversation_id IS NULL THEN request_id ELSE first_value(request_id) {win} END AS conversation,
  CASE WHEN conversation_id IS NULL THEN NULL ELSE lag(request_id) {win} END AS parent,
  CASE WHEN conversation_id IS NULL THEN 1 ELSE row_number() {win} END AS turn,
  CASE WHEN conversation_id IS NULL THEN NULL ELSE timestamp - lag(timestamp) {win} END AS itt_s,
  {dangling} AS dangling, false AS cycle, conversation_id IS NOT NULL AS identified, {ooo} AS out_of_order
FROM requests ORDER BY request_id"""
    links = store.query(sql).cast(_LINK_SCHEMA)
    bad = links.filter(pl.col("out_of_order")).select("conversation").unique()
    return links.with_columns(out_of_order=pl.col("conversation").is_in(bad["conversation"].implode()))


def _frame(n: int, seed: int, *, turn: bool, parent: bool) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    conv = rng.integers(0, n // 4, n).astype(str).astype(object)
    conv[rng.random(n) < 0.2] = None
    columns = {"timestamp": np.round(np.sort(rng.uniform(0, 100, n)), 1),  # ties at 0.1 s
               "conversation_id": pl.Series(conv, dtype=pl.String)}
    if turn:
        t = rng.integers(1, 5, n).astype(float)
        columns["turn"] = pl.Series(np.where(rng.random(n) < 0.1, np.nan, t)).fill_nan(None).cast(pl.Int64)
    if parent:
        choices = pl.Series(["", "-1", "17", None], dtype=pl.String)
        columns["parent_id"] = choices.gather(rng.integers(0, 4, n))
    return pl.DataFrame(columns)


@pytest.mark.parametrize("turn, parent", [(False, False), (True, False), (False, True), (True, True)])
def test_links_equal_the_window_function_definition(tmp_path, turn, parent):
    store = write_store(_frame(3000, 5, turn=turn, parent=parent), tmp_path / "s")
    links, extra = _links_by_conversation_id(store)
    expected = _reference(store)
    assert links.equals(expected, null_equal=True)
    assert extra["n_dangling"] == int(expected["dangling"].sum())
    if turn:
        assert extra["n_out_of_order"] == expected.filter(pl.col("out_of_order"))["conversation"].n_unique() > 0


def test_request_order_that_is_not_time_order_is_ordered_by_time(tmp_path):
    # a store written by hand whose request ids are not in time order (ingest never writes one)
    store = write_store(_frame(500, 7, turn=False, parent=False), tmp_path / "s")
    frame = store.to_polars()
    shuffled = frame.with_columns(pl.Series("timestamp", np.random.default_rng(1).permutation(frame["timestamp"])))
    path = tmp_path / "s" / "requests.parquet"
    shuffled.write_parquet(path)
    links, _ = _links_by_conversation_id(store)
    assert links.equals(_reference(store), null_equal=True)
