"""A pool file that passed the range checks when written is not checked again on reading (issue 16).

The manifest's ``checked`` entry names the checks' version, their bounds and each table file's
sha256; a reader skips :func:`check_pool_tables` only when all of them match. The hashes here are
computed with hashlib on the files, independently of the writer.
"""
from __future__ import annotations

import hashlib
import json

import polars as pl
import pytest

from servelab.generator import ClientPool, PoolFormatError
from servelab.generator import pool_format
from servelab.generator.pool_checks import CHECKS_VERSION, POOL_BOUNDS


def _pool(rate: float = 2.0) -> ClientPool:
    arrivals = pl.DataFrame({"client_id": ["a", "a", "b"], "window_start": [0.0, 600.0, 0.0],
                             "window_s": [600.0] * 3, "rate": [1.0, rate, 0.5], "cv": [1.0, 1.0, 1.0],
                             "family": ["exponential"] * 3, "scale": [1.0, 1 / rate if rate > 0 else 1.0, 2.0]})
    data = pl.DataFrame({"client_id": ["b", "b", "a", "a"], "window_start": [21600.0, 0.0, 0.0, 0.0],
                         "window_s": [21600.0] * 4, "field": ["input_tokens"] * 4,
                         "value": [7.0, 5.0, 10.0, 20.0], "probability": [1.0, 1.0, 0.5, 0.5]})
    clients = pl.DataFrame({"client_id": ["a", "b"], "has_arrivals": [True, True], "has_data": [True, True],
                            "note": [None, None]}, schema_overrides={"note": pl.String})
    return ClientPool(clients=clients, arrivals=arrivals, data=data, window_s=600.0, data_window_s=21600.0,
                      span=(0.0, 43200.0))


def _manifest(path):
    return json.loads((path / "manifest.json").read_text())


def _refuse(pool, *, source):
    raise AssertionError(f"the range checks ran on {source}")


def test_a_written_pool_certifies_its_files(tmp_path):
    _pool().save(tmp_path / "p")
    manifest = _manifest(tmp_path / "p")
    checked = manifest["checked"]
    assert checked["checks_version"] == CHECKS_VERSION
    assert checked["bounds"] == dict(POOL_BOUNDS)
    expected = {name: hashlib.sha256((tmp_path / "p" / entry["file"]).read_bytes()).hexdigest()
                for name, entry in manifest["tables"].items()}
    assert checked["sha256"] == expected


def test_a_certified_pool_loads_without_the_checks(tmp_path, monkeypatch):
    _pool().save(tmp_path / "p")
    monkeypatch.setattr(pool_format, "check_pool_tables", _refuse)
    loaded = ClientPool.load(tmp_path / "p")
    assert sorted(loaded.arrivals["rate"].to_list()) == [0.5, 1.0, 2.0]


@pytest.mark.parametrize("stale", [
    {"checks_version": CHECKS_VERSION + 1},
    {"bounds": {**POOL_BOUNDS, "max_cv": 1.0}},
    {"sha256": {"arrivals": "0" * 64}},
])
def test_a_stale_certificate_runs_the_checks(tmp_path, monkeypatch, stale):
    _pool().save(tmp_path / "p")
    manifest = _manifest(tmp_path / "p")
    manifest["checked"] = {**manifest["checked"], **stale}
    (tmp_path / "p" / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(pool_format, "check_pool_tables", _refuse)
    with pytest.raises(AssertionError, match="the range checks ran"):
        ClientPool.load(tmp_path / "p")


def test_a_table_edited_after_writing_is_checked(tmp_path):
    _pool().save(tmp_path / "p")
    table = tmp_path / "p" / "arrivals.parquet"
    pl.read_parquet(table).with_columns(pl.lit(-5.0).alias("rate")).write_parquet(table)
    with pytest.raises(PoolFormatError, match=r"field 'rate' must be a finite number .*; got -5.0"):
        ClientPool.load(tmp_path / "p")


def test_a_pool_failing_the_checks_is_written_without_a_certificate(tmp_path):
    _pool(rate=-3.0).save(tmp_path / "p")
    assert "checked" not in _manifest(tmp_path / "p")
    with pytest.raises(PoolFormatError, match=r"client 'a' window 600 field 'rate' .*; got -3.0"):
        ClientPool.load(tmp_path / "p")


def test_the_data_table_is_stored_by_window(tmp_path):
    _pool().save(tmp_path / "p")
    stored = pl.read_parquet(tmp_path / "p" / "data.parquet")
    assert stored["window_start"].cast(pl.Float64).to_list() == [0.0, 0.0, 0.0, 21600.0]
    assert stored["client_id"].to_list() == ["a", "a", "b", "b"]
