"""Pools are range-checked on import (ServeGen) and on load (servelab's format): issue 18, item 4.

Each broken value is written into an otherwise valid one-client pool of three 600 s windows (the
middle window, or its input PMF, broken); the error must name the client, the window and the
field, and the value. The unbroken pool is the positive control.
"""
from __future__ import annotations

import json
import math

import polars as pl
import pytest

from servelab.generator import ClientPool, PoolFormatError, read_servegen
from servelab.generator.pool_checks import POOL_BOUNDS, check_arrivals, check_pmfs

GOOD_PMF = "{10: 0.5, 20: 0.5}"


def _servegen(path, *, rate="1.0", cv="1.0", family="Gamma", shape="1.0", scale="1.0", pmf=GOOD_PMF):
    path.mkdir()
    rows = ["0,1.0,1.0,Gamma,1.0,1.0", f"600,{rate},{cv},{family},{shape},{scale}", "1200,1.0,1.0,Gamma,1.0,1.0"]
    (path / "chunk-0-trace.csv").write_text("\n".join(rows) + "\n")
    data = {"0": {"input_tokens": pmf, "output_tokens": "{5: 1.0}"}}
    (path / "chunk-0-dataset.json").write_text(json.dumps(data))
    return path


def test_the_unbroken_pool_imports_and_loads(tmp_path):
    pool = read_servegen(_servegen(tmp_path / "sg"))
    assert pool.arrivals["rate"].to_list() == [1.0, 1.0, 1.0]
    pool.save(tmp_path / "p")
    assert ClientPool.load(tmp_path / "p").data.height == 3


WINDOW = r"pool '.*': client '0' window 600 "


@pytest.mark.parametrize("edit, pattern", [
    ({"rate": "-1"}, WINDOW + r"field 'rate' must be a finite number in \[0, 1e\+09\]; got -1.0"),
    ({"rate": "nan"}, WINDOW + r"field 'rate' .*; got nan"),
    ({"rate": "inf"}, WINDOW + r"field 'rate' .*; got inf"),
    ({"rate": "1e300"}, WINDOW + r"field 'rate' must be a finite number in \[0, 1e\+09\]; got 1e\+300"),
    ({"cv": "-2"}, WINDOW + r"field 'cv' must be a finite number in \[0, 1e\+06\]; got -2.0"),
    ({"cv": "nan"}, WINDOW + r"field 'cv' .*; got nan"),
    ({"cv": "1e300"}, WINDOW + r"field 'cv' .*; got 1e\+300"),
    ({"shape": "-1"}, WINDOW + r"field 'a' \(the shape parameter of family 'gamma'\) must be a finite number in "
                               r"\(0, 1e\+15\]; got -1.0"),
    ({"shape": "0"}, WINDOW + r"field 'a' .*; got 0.0"),
    ({"shape": "inf"}, WINDOW + r"field 'a' .*; got inf"),
    ({"shape": "1e300"}, WINDOW + r"field 'a' .*; got 1e\+300"),
    ({"family": "Weibull", "shape": "nan"}, WINDOW + r"field 'c' \(the shape parameter of family 'weibull'\).*got nan"),
    ({"scale": "-3"}, WINDOW + r"field 'scale' \(the scale parameter of family 'gamma'\).*got -3.0"),
])
def test_bad_arrival_values_are_refused_naming_client_window_and_field(tmp_path, edit, pattern):
    with pytest.raises(PoolFormatError, match=pattern):
        read_servegen(_servegen(tmp_path / "sg", **edit))


@pytest.mark.parametrize("pmf, pattern", [
    ("{10: -0.5, 20: 1.5}", r"probabilities must be finite numbers in \[0, 1\]; got -0.5"),
    ("{10: 0.2, 20: 0.2}", r"probabilities must sum to 1 \(within 0.0001\); they sum to 0.4"),
    ("{10: 1e300, 20: 0.5}", r"probabilities must be finite numbers in \[0, 1\]; got 1e\+300"),
    ("{10: float('nan')}", r"not a python dict literal"),
    ("{1e300: 1.0}", r"values must be finite numbers within \+-1e\+15; got 1e\+300"),
    ("{10: 'a'}", r"expected a python dict literal of numbers"),
])
def test_bad_pmfs_are_refused_naming_client_window_and_field(tmp_path, pmf, pattern):
    # the data window of the PMF is the dataset key "0"
    with pytest.raises(PoolFormatError, match=r"(client '0' window 0 field 'input_tokens'|window 0 field "
                                              r"'input_tokens').*" + pattern):
        read_servegen(_servegen(tmp_path / "sg", pmf=pmf))


@pytest.mark.parametrize("pmf", [5, 0.5, None, ["{10: 1.0}"], {"10": 1.0}])
def test_a_pmf_that_is_not_a_string_is_refused(tmp_path, pmf):
    with pytest.raises(PoolFormatError, match=r"window 0 field 'input_tokens': expected a string holding a python "
                                              rf"dict literal .*; got {type(pmf).__name__}"):
        read_servegen(_servegen(tmp_path / "sg", pmf=pmf))


def test_probability_sums_within_the_stated_tolerance_are_accepted(tmp_path):
    tol = POOL_BOUNDS["probability_sum_tolerance"]
    read_servegen(_servegen(tmp_path / "a", pmf=f"{{10: 0.5, 20: {0.5 + 0.9 * tol!r}}}"))
    with pytest.raises(PoolFormatError, match="must sum to 1"):
        read_servegen(_servegen(tmp_path / "b", pmf=f"{{10: 0.5, 20: {0.5 + 1.1 * tol!r}}}"))


def test_a_servelab_pool_is_checked_on_load(tmp_path):
    # a pool written by an older or foreign tool: edit the arrivals table on disk
    read_servegen(_servegen(tmp_path / "sg")).save(tmp_path / "p")
    table = tmp_path / "p" / "arrivals.parquet"
    arr = pl.read_parquet(table)
    arr.with_columns(pl.when(pl.col("window_start") == 1200).then(-5.0).otherwise(pl.col("rate"))
                     .alias("rate")).write_parquet(table)
    with pytest.raises(PoolFormatError, match=r"client '0' window 1200 field 'rate' .*; got -5.0"):
        ClientPool.load(tmp_path / "p")


def test_idle_windows_need_no_parameters():
    arrivals = pl.DataFrame({"client_id": ["a", "a"], "window_start": [0.0, 600.0], "rate": [0.0, 2.0],
                             "cv": [0.0, 1.0], "family": [None, "exponential"], "scale": [None, 0.5]})
    check_arrivals(arrivals, source="'x'")
    with pytest.raises(PoolFormatError, match=r"client 'a' window 600 field 'scale'.*got None"):
        check_arrivals(arrivals.with_columns(pl.lit(None, pl.Float64).alias("scale")), source="'x'")


def test_each_pmf_sums_to_one_on_its_own():
    # two PMFs whose probabilities sum to 2 together are fine; one that sums to 0.75 is named
    pmfs = pl.DataFrame({"client_id": ["a"] * 4, "quantity": ["turns", "turns", "itt_s", "itt_s"],
                         "value": [1.0, 2.0, 3.0, 4.0], "probability": [0.25, 0.75, 0.5, 0.5]})
    check_pmfs(pmfs, source="'x'", keys=("client_id", "quantity"))
    bad = pmfs.with_columns(pl.Series("probability", [0.25, 0.5, 0.5, 0.5]))
    with pytest.raises(PoolFormatError, match=r"client 'a' field 'turns': probabilities must sum to 1 .* 0.75"):
        check_pmfs(bad, source="'x'", keys=("client_id", "quantity"))
    assert math.isclose(bad["probability"].sum(), 1.75)
