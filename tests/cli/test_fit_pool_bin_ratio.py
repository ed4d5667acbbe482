"""``servelab fit-pool --bin-ratio`` and ``--spread-points``: the PMF binning from the command line
(fitting.pool_settings, fitting.pool_data.spread_bins)."""
from __future__ import annotations

from pathlib import Path

import polars as pl
from click.testing import CliRunner
from servelab.cli import main
from servelab.generator.pool import ClientPool

SAMPLE = Path(__file__).resolve().parents[2] / "raw_traces" / "azure_2023" / "AzureLLMInferenceTrace_code.csv"


def test_bin_ratio_and_spread_points_reach_the_pool(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["ingest", str(SAMPLE), "-o", str(tmp_path / "st"), "--format", "azure"])
    assert res.exit_code == 0, res.output
    rows = {}
    for ratio in ("1.05", "1.0125"):
        for points in ("1", "4"):
            out = tmp_path / f"pool-{ratio}-{points}"
            res = runner.invoke(main, ["fit-pool", str(tmp_path / "st"), "-o", str(out), "--bin-ratio", ratio,
                                       "--spread-points", points])
            assert res.exit_code == 0, res.output
            pool = ClientPool.load(out)
            assert pool.provenance["settings"]["bin_ratio"] == float(ratio)
            assert pool.provenance["settings"]["spread_points"] == int(points)
            data = pool.data if isinstance(pool.data, pl.DataFrame) else pool.data.collect()
            rows[ratio, points] = data.height
    # finer bins keep more distinct values per PMF, and spread bins hold several values each (a bin
    # of n requests gets up to n / 8): the Azure code hour (8,819 requests) measured 1,400 PMF rows
    # with 1.05 and 2,704 with 1.0125 at one row per bin, 1,665 and 2,755 spread over up to 4
    assert rows["1.0125", "1"] > 1.5 * rows["1.05", "1"]
    assert rows["1.05", "4"] > 1.1 * rows["1.05", "1"] and rows["1.0125", "4"] > rows["1.0125", "1"]


def test_bin_ratio_must_exceed_one_and_spread_points_be_positive(tmp_path):
    res = CliRunner().invoke(main, ["fit-pool", str(tmp_path), "-o", str(tmp_path / "p"), "--bin-ratio", "1"])
    assert res.exit_code == 2 and "--bin-ratio" in res.output
    res = CliRunner().invoke(main, ["fit-pool", str(tmp_path), "-o", str(tmp_path / "p"), "--spread-points", "0"])
    assert res.exit_code == 2 and "--spread-points" in res.output
