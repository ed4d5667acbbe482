"""Length / reasoning / multimodal findings, the lengths report section, figures and the CLI."""
import datetime as dt
import json
import re

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from matplotlib.figure import Figure

from servelab.analysis import Verdict, write_store
from servelab.analysis.budget import Budget
from servelab.cli import main
from servelab.figures.registry import figure_specs
from servelab.reports.areas import LENGTHS, build_section
from servelab.reports.findings.lengths import length_findings, measure_lengths

ORIGIN = dt.datetime(2025, 3, 3, tzinfo=dt.timezone.utc)


def _trace(seed=3, n=20_000, *, linear=False, bimodal=False):
    """Inputs: LogNormal body + Pareto tail, 1.5x longer in the morning. Outputs: Exponential (or
    two LogNormal modes, or 0.5 * input + noise), 1.3x longer in the afternoon; 2 % failed."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, 86_400, n))
    hour = (t / 3600) % 24
    body = np.exp(5 + rng.standard_normal(n))
    tail = 1500 * (1 - rng.random(n)) ** (-1 / 1.5)
    inp = np.where(rng.random(n) < 0.8, body, tail) * np.where((hour >= 6) & (hour < 12), 1.5, 1.0)
    if linear:
        out = 0.5 * inp + rng.normal(0, 20, n)
    elif bimodal:
        out = np.exp(np.where(rng.random(n) < 0.4, rng.normal(3, 0.3, n), rng.normal(6, 0.4, n)))
    else:
        out = rng.exponential(300, n)
    out = out * np.where((hour >= 12) & (hour < 18) & (not linear), 1.3, 1.0)
    inp = np.maximum(np.round(inp), 1).astype(np.int64)
    out = np.maximum(np.round(out), 1).astype(np.int64)
    out[rng.random(n) < 0.02] = 0
    return pl.DataFrame({"timestamp": t, "input_tokens": inp, "output_tokens": out})


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_store(_trace(), tmp_path_factory.mktemp("l") / "s", origin=ORIGIN, timezone="UTC")


def _by_id(findings):
    return {f.id: f for f in findings}


def test_section_verdicts_on_servegen_shaped_trace(store):
    sec = build_section(LENGTHS, store, budget=Budget.quick(), seed=0)
    f = _by_id(sec.findings)
    assert f["servegen.F3.input"].verdict == Verdict.HOLDS
    assert f["servegen.F3.output"].verdict == Verdict.HOLDS
    assert f["servegen.F3.output"].measured["exponential_mean"] == pytest.approx(300 * (0.75 + 0.25 * 1.3), rel=0.05)
    assert f["servegen.F3.correlation"].verdict == Verdict.HOLDS
    f4 = f["servegen.F4"]
    assert f4.verdict == Verdict.HOLDS
    assert f4.measured["input_max_min_ratio"] == pytest.approx(1.5, rel=0.15)
    assert f4.measured["output_max_min_ratio"] == pytest.approx(1.3, rel=0.1)
    assert f["burstgpt.zipf_requests"].verdict == Verdict.DOES_NOT_HOLD
    assert f["burstgpt.bimodal_responses"].verdict == Verdict.DOES_NOT_HOLD
    assert f["burstgpt.linear_relation"].verdict == Verdict.DOES_NOT_HOLD
    for fid in ("servegen.F9.longer", "servegen.F9.bimodal", "servegen.F11.bimodal_clients", "servegen.F6", "servegen.F7"):
        assert f[fid].verdict == Verdict.NOT_APPLICABLE and f[fid].reason
    specs = figure_specs()
    assert {"servegen.fig3", "servegen.fig4", "servegen.fig3cd", "burstgpt.fig7", "burstgpt.fig8"} <= set(sec.figures)
    for fid, fig in sec.figures.items():
        assert fid in specs and isinstance(fig, Figure)
    # the headline names the best family by AIC with the fit standard's verdict (never bare)
    assert sec.headline["best input-length family"].startswith("lognormal_pareto (passes the fit standard, KS D ")
    assert "infinite mean" not in sec.headline["best input-length family"]
    assert int(sec.tables["counts"]["n_failed"][0]) > 0
    assert any("failed requests" in n for n in sec.notes)


def test_bimodal_and_linear_outputs(tmp_path):
    bi = write_store(_trace(seed=4, bimodal=True), tmp_path / "bi", origin=ORIGIN, timezone="UTC")
    f = _by_id(length_findings(measure_lengths(bi, budget=Budget.quick())))
    assert f["burstgpt.bimodal_responses"].verdict == Verdict.HOLDS
    # lattice_bimodality (the calibrated test) gives its modes on the log scale in the reason
    mu1 = float(re.search(r"modes at ([0-9.]+) and", f["burstgpt.bimodal_responses"].reason).group(1))
    assert np.exp(mu1) == pytest.approx(np.exp(3), rel=0.1)
    assert f["burstgpt.bimodal_responses"].measured["ashman_d"] > 2
    lin = write_store(_trace(seed=5, linear=True), tmp_path / "lin", origin=ORIGIN, timezone="UTC")
    f = _by_id(length_findings(measure_lengths(lin, budget=Budget.quick())))
    assert f["burstgpt.linear_relation"].verdict == Verdict.HOLDS
    assert f["burstgpt.linear_relation"].measured["slope"] == pytest.approx(0.5, rel=0.1)
    assert f["servegen.F3.correlation"].verdict == Verdict.DOES_NOT_HOLD


def test_section_on_a_trace_without_lengths(tmp_path):
    bare = write_store(pl.DataFrame({"timestamp": np.arange(100.0)}), tmp_path / "bare")
    sec = build_section(LENGTHS, bare, budget=Budget.quick())
    assert len(sec.findings) == 13
    assert all(f.verdict == Verdict.NOT_APPLICABLE and f.reason for f in sec.findings)
    assert sec.figures == {}


def test_too_few_samples_are_undefined_not_crashes(tmp_path):
    tiny = write_store(pl.DataFrame({"timestamp": [0.0, 1.0, 2.0, 3.0, 4.0], "input_tokens": [5, 9, 40, 3, 12],
                                     "output_tokens": [4, 0, 8, 30, 2]}), tmp_path / "tiny", origin=ORIGIN)
    ev = measure_lengths(tiny)
    assert "lognormal_pareto" in ev.input_fits.failed
    assert "at least 20" in ev.input_fits.failed["lognormal_pareto"]
    f = _by_id(length_findings(ev))
    assert f["servegen.F3.input"].verdict != Verdict.HOLDS
    assert f["servegen.F3.output"].measured["n"] == 4  # the zero output is excluded


def test_cli_writes_tables_and_findings(store, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["lengths", str(store.path), "--by", "period", "--quick", "-o", str(out), "--rows", "2"])
    assert result.exit_code == 0, result.output
    assert "servegen.F3.input [holds]" in result.output
    found = {f["id"]: f for f in json.loads((out / "findings.json").read_text())}
    assert found["servegen.F4"]["verdict"] == "holds"
    q = pl.read_parquet(out / "quantiles_by_period.parquet")
    assert set(q["group"]) == {"Midnight", "Morning", "Afternoon"}
    assert (out / "io_bins.csv").is_file() and (out / "input_fits.parquet").is_file()
    bad = CliRunner().invoke(main, ["lengths", str(store.path), "--by", "colour"])
    assert bad.exit_code != 0 and "colour" in bad.output
