"""``--clock`` reaches the per-window Gamma table and the family comparisons (issue 14 leftover).

Known truth: a Poisson process (mean gap 1 s) floored to a 3-s logging clock. On the store's
detected clock (the default) the gaps are censored below the step, so the per-window Gamma shape
is that of the Poisson process, 1, and the whole-trace comparison fits every gap. Taken as exact
(``--clock none``) the zero gaps are exact zeros: the fits take the positive gaps only (a lattice
of multiples of 3 s whose Gamma shape is far above 1: the artifact of issue 14), so those tables
change as the gap summary does. Null case: continuous timestamps give the same tables either way.
"""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from servelab.analysis import write_store
from servelab.cli import main

STEP_S = 3.0
N = 20_000


def _store(path, t):
    write_store(pl.DataFrame({"timestamp": t}), path)
    return path


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    rng = np.random.default_rng(5)
    t = np.cumsum(rng.exponential(1.0, N))
    base = tmp_path_factory.mktemp("clockfit")
    return (_store(base / "floored", np.floor(t / STEP_S) * STEP_S), _store(base / "exact", t),
            np.diff(np.floor(t / STEP_S) * STEP_S))


def _tables(path, out, *clock):
    result = CliRunner().invoke(main, ["arrivals", str(path), "--gof", "none", "--quick", "--rows", "1",
                                       "-o", str(out), *clock])
    assert result.exit_code == 0, result.output
    return {name: pl.read_parquet(out / f"{name}.parquet")
            for name in ("gap_summary", "gamma_windows", "family_comparison", "window_families")}


def test_clock_none_changes_the_fit_tables(stores, tmp_path):
    floored, _, logged = stores
    auto = _tables(floored, tmp_path / "auto")
    none = _tables(floored, tmp_path / "none", "--clock", "none")
    n_pos = int((logged > 0).sum())
    assert 0.2 * N < n_pos < 0.5 * N  # the truth the test rests on: many ties, many positive gaps
    # default: censored at the detected 3-s clock; each 20-min window holds ~1,200 gaps, so the
    # Gamma shape's standard error is ~0.04: within 0.2 of Poisson's 1
    good = auto["gamma_windows"].filter(pl.col("gamma_n") >= 500)
    assert good.height >= 10 and (good["alpha"] - 1).abs().max() < 0.2
    # exact timestamps: the MLE sees positive gaps only (multiples of 3 s), a shape far above 1
    exact = none["gamma_windows"].filter(pl.col("gamma_n") >= 100)
    assert exact.height >= 10 and exact["alpha"].min() > 2.0
    assert (none["gamma_windows"]["gamma_n"] < auto["gamma_windows"]["gamma_n"]).all()
    # the whole-trace comparison: every gap (jittered) by default, the positive ones with --clock none
    assert auto["family_comparison"]["n"][0] == N - 1
    assert none["family_comparison"]["n"][0] == n_pos
    # per-window families: on the censored gaps by default (CV of Poisson gaps, ~1,200 a window:
    # standard error ~0.03), on the logged ones with --clock none (ties read as exact: CV far above 1)
    assert (auto["window_families"]["cv"] - 1).abs().max() < 0.15
    assert none["window_families"]["cv"].min() > 1.3
    assert none["window_families"]["verdict"].ne(auto["window_families"]["verdict"]).any() or \
        none["window_families"]["best"].ne(auto["window_families"]["best"]).any()


def test_continuous_timestamps_unchanged_by_clock_none(stores, tmp_path):
    _, exact, _ = stores
    auto = _tables(exact, tmp_path / "auto")
    none = _tables(exact, tmp_path / "none", "--clock", "none")
    for name in ("gamma_windows", "family_comparison", "window_families"):
        assert auto[name].equals(none[name]), name
