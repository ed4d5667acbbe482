"""ServeGen pool import and export: lossless on the shipped slices (and the full pools when present)."""
from __future__ import annotations

import ast
import json
import warnings

import numpy as np
import polars as pl
import pytest

from servelab.generator import (
    ClientPool,
    MissingDatasetWarning,
    PoolExistsError,
    PoolFormatError,
    PoolNotFoundError,
    read_servegen,
    write_servegen,
)


def _read(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingDatasetWarning)
        return read_servegen(path, **kw)


def _same_tree(a, b):
    names_a = sorted(p.name for p in a.iterdir() if p.name.startswith("chunk-"))
    names_b = sorted(p.name for p in b.iterdir())
    assert names_a == names_b
    for name in names_a:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.mark.parametrize("name", ["mm-image", "m-small", "deepseek-r1"])
def test_import_export_is_byte_identical(raw_traces, tmp_path, name):
    src = raw_traces / "servegen" / name
    pool = _read(src)
    write_servegen(pool, tmp_path / name)
    _same_tree(src, tmp_path / name)


@pytest.mark.shared
@pytest.mark.slow
@pytest.mark.parametrize("name", ["multimodal/mm-image", "reason/deepseek-r1", "language/m-small"])
def test_import_export_full_shared_pools(shared_data, tmp_path, name):
    src = shared_data / "servegen" / name
    pool = _read(src)
    write_servegen(pool, tmp_path / "out")
    _same_tree(src, tmp_path / "out")


def test_numbers_match_an_independent_parse(raw_traces):
    src = raw_traces / "servegen" / "m-small"
    pool = _read(src)
    raw = np.genfromtxt(src / "chunk-14-trace.csv", delimiter=",", usecols=(0, 1, 2, 4, 5))
    arr = pool.arrivals.filter(pl.col("client_id") == "14").sort("window_start")
    busy = raw[:, 1] > 0
    # the pool is sparse: ServeGen's idle rows (rate 0) are not held; the active ones are exact
    assert 0 < int(busy.sum()) < raw.shape[0]
    np.testing.assert_array_equal(arr["window_start"].to_numpy(), raw[busy, 0])
    np.testing.assert_array_equal(arr["rate"].to_numpy(), raw[busy, 1])
    np.testing.assert_array_equal(arr["cv"].to_numpy(), raw[busy, 2])
    # ServeGen's one shape column is stored under the family's parameter name (Gamma a, Weibull c)
    shape = np.where(arr["family"] == "weibull", arr["c"], arr["a"])
    np.testing.assert_array_equal(shape, raw[busy, 3])
    assert arr.filter(pl.col("family") == "gamma")["c"].null_count() == arr.filter(pl.col("family") == "gamma").height
    # CVs far above 10 are kept exactly
    assert arr["cv"].max() > 50
    assert arr["cv"].max() == raw[:, 2].max()
    # idle windows are not held (rate 0 rows dropped on reading)
    assert arr.filter(pl.col("rate") == 0).height == 0
    assert set(arr["family"].drop_nulls().unique()) <= {"gamma", "weibull"}
    # one PMF, parsed independently
    doc = json.loads((src / "chunk-14-dataset.json").read_text())
    key = next(k for k, v in doc.items() if v["output_tokens"] != "{}")
    ref = ast.literal_eval(doc[key]["output_tokens"])
    got = pool.data.filter((pl.col("client_id") == "14") & (pl.col("window_start") == float(key))
                           & (pl.col("field") == "output_tokens")).sort("value")
    assert got["value"].to_list() == [float(k) for k in sorted(ref)]
    assert got["probability"].to_list() == [ref[k] for k in sorted(ref)]
    assert got["probability"].sum() == pytest.approx(1.0, abs=1e-9)
    # idle data windows have no rows
    doc0 = json.loads((src / "chunk-0-dataset.json").read_text())
    idle_keys = [k for k, v in doc0.items() if v["output_tokens"] == "{}"]
    assert idle_keys
    assert pool.data.filter((pl.col("client_id") == "0") & pl.col("window_start").is_in([float(k) for k in idle_keys])).height == 0


def test_layout_and_settings(raw_traces):
    pool = _read(raw_traces / "servegen" / "deepseek-r1")
    assert pool.window_s == 600.0 and pool.data_window_s == 21600.0
    assert tuple(pool.span) == (0.0, 86400.0)
    assert pool.fields == ("input_tokens", "output_tokens", "reason_ratio")
    assert pool.client_ids == ("3", "13", "16", "34", "35")
    # sparse: the active (client, window) cells of the 5 x 144, counted from the CSVs directly
    rates = np.concatenate([np.genfromtxt(f, delimiter=",", usecols=(1,), ndmin=1)
                            for f in (raw_traces / "servegen" / "deepseek-r1").glob("chunk-*-trace.csv")])
    assert rates.size == 5 * 144 and pool.arrivals.height == int((rates > 0).sum()) > 0
    assert pool.provenance["servegen"]["value_types"]["reason_ratio"] == "float"
    mm = _read(raw_traces / "servegen" / "mm-image")
    assert mm.fields[0] == "text_tokens" and mm.fields[-1] == "output_tokens" and len(mm.fields) == 8


def test_missing_dataset_is_reported_kept_dropped_or_error(raw_traces, tmp_path):
    src = raw_traces / "servegen" / "m-small"
    with pytest.warns(MissingDatasetWarning, match=r"1 client\(s\) have no dataset file.*\['1'\].*kept"):
        pool = read_servegen(src)
    row = pool.clients.filter(pl.col("client_id") == "1")
    assert row["has_data"].to_list() == [False] and row["has_arrivals"].to_list() == [True]
    assert "dataset file missing" in row["note"][0]
    assert pool.provenance["servegen"]["missing_datasets"] == ["1"]
    with pytest.warns(MissingDatasetWarning, match="dropped"):
        dropped = read_servegen(src, missing_data="drop")
    assert "1" not in dropped.client_ids and dropped.n_clients == pool.n_clients - 1
    assert dropped.arrivals.filter(pl.col("client_id") == "1").height == 0
    with pytest.raises(PoolFormatError, match="no dataset file"):
        read_servegen(src, missing_data="error")
    with pytest.raises(ValueError, match="missing_data must be one of"):
        read_servegen(src, missing_data="skip")


def test_errors(raw_traces, tmp_path):
    with pytest.raises(PoolNotFoundError, match="does not exist"):
        read_servegen(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PoolNotFoundError, match="no chunk-<id>-trace.csv"):
        read_servegen(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "chunk-0-trace.csv").write_text("0,1.0,1.0,Pareto,1.0,1.0\n")
    with pytest.raises(PoolFormatError, match="family must be one of"), pytest.warns(MissingDatasetWarning):
        read_servegen(bad)
    (bad / "chunk-0-trace.csv").write_text("0,1.0,1.0,Gamma,1.0,1.0\n")
    (bad / "chunk-0-dataset.json").write_text('{"0": {"input_tokens": "__import__(\'os\')"}}')
    with pytest.raises(PoolFormatError, match="not a python dict literal"):
        read_servegen(bad)
    pool = _read(raw_traces / "servegen" / "deepseek-r1")
    (tmp_path / "exists").mkdir()
    with pytest.raises(PoolExistsError, match="already exists"):
        write_servegen(pool, tmp_path / "exists")
    with pytest.raises(PoolNotFoundError, match="neither a servelab pool"):
        ClientPool.load(tmp_path / "empty")


def test_exponential_and_unfitted_windows_export_as_equivalent_gamma(tmp_path):
    arrivals = pl.DataFrame({
        "client_id": ["a", "a", "a"], "window_start": [0.0, 600.0, 1200.0], "window_s": [600.0] * 3,
        "rate": [2.0, 0.5, 0.0], "cv": [1.0, 2.0, 0.0], "family": ["exponential", None, None],
        "shape": [None, None, None], "scale": [0.5, None, None],
    })
    clients = pl.DataFrame({"client_id": ["a"], "has_arrivals": [True], "has_data": [False], "note": [""]})
    pool = ClientPool(clients=clients, arrivals=arrivals, window_s=600, data_window_s=21600)
    write_servegen(pool, tmp_path / "x")
    lines = (tmp_path / "x" / "chunk-a-trace.csv").read_bytes().decode().split("\r\n")
    assert lines[0] == "0,2.0,1.0,Gamma,1.0,0.5"
    # CV 2 -> Gamma a = 1/4, scale = 1 / (rate a) = 8
    assert lines[1] == "600,0.5,2.0,Gamma,0.25,8.0"
    assert lines[2] == "1200,0,0,,0,0"
    back = _read(tmp_path / "x")
    # the idle window is written (ServeGen's grid) but not held on reading: the pool is sparse
    assert back.arrivals["rate"].to_list() == [2.0, 0.5] and back.span == (0.0, 1800.0)


def test_dict_strings_parse_like_literal_eval_and_reject_others(tmp_path):
    from servelab.generator.servegen_format import _parse_pmf

    for text in ("{1: 0.25, 20: 0.75}", "{1:0.25,20:0.75}", "{0.0: 0.0, 0.001996007984031936: 1.0}",
                 "{3: 1e-05, 4: 0.99999}", "{}"):
        keys, probs = _parse_pmf(text, tmp_path, "0", "f")
        ref = ast.literal_eval(text)
        assert keys == list(ref) and probs == list(ref.values())
        assert [type(k) for k in keys] == [type(k) for k in ref]
    for bad in ("{1, 2}", "{'a': 1}", "[1, 2]", "{1: 0.5, 2}"):
        with pytest.raises(PoolFormatError, match="window 0 field 'f'"):
            _parse_pmf(bad, tmp_path, "0", "f")
