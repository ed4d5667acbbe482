"""``--clock`` on ``arrivals`` and ``report`` overrides the store's clock for the gap analyses.

Known truth: a Poisson process (mean gap 1/3 s) floored to a 3-s logging clock. Taken as exact
(``--clock none``) its gaps are the floored ones, ~89% zeros, whose CV (about 2.8, computed here
with numpy) reads as bursty; on the store's detected 3-s clock (the default) the gaps are censored
below the step and the CV is that of the Poisson process, 1 (also computed here, from the
unfloored gaps).
"""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from servelab.analysis import write_store
from servelab.cli import main
from servelab.reports.areas import ARRIVALS

STEP_S = 3.0
N = 20_000


@pytest.fixture(scope="module")
def clocked(tmp_path_factory):
    rng = np.random.default_rng(11)
    t = np.cumsum(rng.exponential(1 / 3, N))
    floored = np.floor(t / STEP_S) * STEP_S
    path = tmp_path_factory.mktemp("clock") / "store"
    write_store(pl.DataFrame({"timestamp": floored}), path)
    logged, true = np.diff(floored), np.diff(t)
    return path, logged.std() / logged.mean(), true.std() / true.mean()


def _printed_cv(output: str) -> float:
    """The ``cv`` cell of the printed gap_summary table."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("== gap_summary"))
    header = next(line for line in lines[start:] if line.startswith("│ n_requests"))
    row = next(line for line in lines[start:] if line.startswith("│ ") and line[2:3].isdigit())
    names = [c.strip() for c in header.strip("│").split("┆")]
    return float(row.strip("│").split("┆")[names.index("cv")].strip())


def _arrivals(path, tmp_path, *clock):
    out = tmp_path / ("out" + "_".join(clock))
    result = CliRunner().invoke(main, ["arrivals", str(path), "--gof", "none", "--quick", "--rows", "1",
                                       "-o", str(out), *clock])
    assert result.exit_code == 0, result.output
    return _printed_cv(result.output), pl.read_parquet(out / "gap_summary.parquet").row(0, named=True)


def test_arrivals_clock_none_and_default(clocked, tmp_path):
    path, logged_cv, true_cv = clocked
    assert 2.6 < logged_cv < 3.1 and abs(true_cv - 1) < 0.03  # the truth the test is built on
    none_cv, none_row = _arrivals(path, tmp_path, "--clock", "none")
    auto_cv, auto_row = _arrivals(path, tmp_path)
    # exact timestamps: the CV of the logged gaps, to the printed digits (population vs sample std: 1/N)
    assert none_cv == pytest.approx(logged_cv, rel=1e-4) and none_row["clock_s"] is None
    # the store's 3-s clock: Poisson's CV; the jitter within the step adds noise of order 1/sqrt(N)
    assert auto_cv == pytest.approx(true_cv, abs=5 / np.sqrt(N)) and auto_row["clock_s"] == pytest.approx(STEP_S)
    assert auto_row["short_scale_inconclusive"] is True
    # a step given in seconds is the same clock as the detected one
    given_cv, given_row = _arrivals(path, tmp_path, "--clock", "3")
    assert given_cv == pytest.approx(auto_cv, rel=1e-4) and given_row["clock_s"] == pytest.approx(STEP_S)


def test_area_measure_passes_the_clock(clocked):
    from servelab.analysis import open_store

    path, logged_cv, true_cv = clocked
    store = open_store(path)
    exact = ARRIVALS.measure(store, clock=None, gof=None)
    clocked_ev = ARRIVALS.measure(store, gof=None)
    assert exact.clock_s is None and clocked_ev.clock_s == pytest.approx(STEP_S)
    # the per-window CVs follow the clock: the floored gaps' CV against Poisson's, window by window
    # (each 5-minute window holds ~900 gaps: a CV standard error of ~0.03)
    assert exact.tables["windows"]["cv"].min() > 0.9 * logged_cv
    assert (clocked_ev.tables["windows"]["cv"] - true_cv).abs().max() < 0.15


def test_report_clock_option(clocked, tmp_path):
    path, logged_cv, _ = clocked
    html = tmp_path / "r.html"
    result = CliRunner().invoke(main, ["report", str(path), "--section", "arrivals", "--no-progress", "--quick",
                                       "--clock", "none", "-o", str(html)])
    assert result.exit_code == 0, result.output
    table = json.loads(html.with_suffix(".json").read_text())["sections"][0]["tables"]["gap_summary"]
    row = dict(zip(table["columns"], table["rows"][0]))
    assert row["cv"] == pytest.approx(logged_cv, rel=1e-6) and row["clock_s"] is None


@pytest.mark.parametrize("value", ["0", "-3", "abc", "nan", "inf"])
def test_bad_clock_values(clocked, value):
    path, _, _ = clocked
    result = CliRunner().invoke(main, ["arrivals", str(path), "--clock", value])
    assert result.exit_code == 2
    assert f"must be 'auto', 'none' or a positive number of seconds; got {value!r}" in result.output
