import json

import polars as pl
import pytest

from servelab.analysis import (
    EmptyTraceError,
    NotApplicableError,
    StoreExistsError,
    StoreNotFoundError,
    TraceFormatError,
    open_store,
    write_store,
)


def _frame():
    return pl.DataFrame(
        {
            "timestamp": [3.0, 1.0, 2.0, 2.0],
            "client_id": ["a", "b", "a", "c"],
            "input_tokens": [10, 20, 30, 40],
        }
    )


def test_write_store_sorts_and_numbers_requests(tmp_path):
    store = write_store(_frame(), tmp_path / "s")
    got = store.to_polars()
    assert got["timestamp"].to_list() == [1.0, 2.0, 2.0, 3.0]
    assert got["request_id"].to_list() == [0, 1, 2, 3]
    # ties keep the input order (stable): client a's row came before client c's
    assert got["client_id"].to_list() == ["b", "a", "c", "a"]
    assert store.columns == ("request_id", "timestamp", "client_id", "input_tokens")
    assert store.n_requests == 4
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["rows"]["read"] == manifest["rows"]["stored"] == 4
    assert manifest["span_s"] == {"first": 1.0, "last": 3.0}


def test_store_connection_has_requests_view(tmp_path):
    store = write_store(_frame(), tmp_path / "s")
    out = store.query("SELECT client_id, count(*) AS n FROM requests GROUP BY 1 ORDER BY 1")
    assert out.to_dicts() == [{"client_id": "a", "n": 2}, {"client_id": "b", "n": 1}, {"client_id": "c", "n": 1}]


def test_existing_store_is_refused_without_overwrite(tmp_path):
    write_store(_frame(), tmp_path / "s")
    with pytest.raises(StoreExistsError, match="already exists; pass overwrite=True"):
        write_store(_frame(), tmp_path / "s")
    store = write_store(_frame().head(2), tmp_path / "s", overwrite=True)
    assert store.n_requests == 2


def test_failed_write_leaves_nothing_behind(tmp_path):
    with pytest.raises(TraceFormatError, match="not in the canonical schema"):
        write_store(_frame().with_columns(bogus=pl.lit(1)), tmp_path / "s")
    assert list(tmp_path.iterdir()) == []


def test_empty_frame_is_an_error(tmp_path):
    with pytest.raises(EmptyTraceError, match="has no rows"):
        write_store(_frame().head(0), tmp_path / "s")


def test_open_missing_store(tmp_path):
    with pytest.raises(StoreNotFoundError, match="is not a trace store"):
        open_store(tmp_path)


def test_require_names_missing_columns(tmp_path):
    store = write_store(_frame(), tmp_path / "s")
    store.require("client_id", analysis="client decomposition")
    with pytest.raises(NotApplicableError, match="has no 'output_tokens' column"):
        store.require("output_tokens", analysis="output lengths")


def test_timestamps_in_store_never_decrease(tmp_path, rng):
    frame = pl.DataFrame({"timestamp": rng.uniform(0, 100, size=1000)})
    store = write_store(frame, tmp_path / "s")
    bad = store.query("SELECT count(*) AS n FROM (SELECT timestamp - lag(timestamp) OVER (ORDER BY request_id) AS d FROM requests) WHERE d < 0")
    assert bad["n"][0] == 0
