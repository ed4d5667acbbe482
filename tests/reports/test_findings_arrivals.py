"""Arrival findings on the shipped Azure code trace and on synthetic traces with known answers,
the arrivals report section, and the ``servelab arrivals`` command."""
import json

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from servelab.analysis import Verdict, write_store
from servelab.analysis.budget import Budget
from servelab.analysis.ingest import ingest
from servelab.cli import main
from servelab.reports.findings.arrivals import (
    arrival_findings,
    burstgpt_gamma_shift,
    measure_arrivals,
    servegen_f1_bursty,
    servegen_f1_single_process,
    servegen_f2,
)


@pytest.fixture(scope="module")
def azure_store(tmp_path_factory, raw_traces):
    path = raw_traces / "azure_2023" / "AzureLLMInferenceTrace_code.csv"
    return ingest([path], fmt="azure", output=tmp_path_factory.mktemp("azure") / "store")


@pytest.fixture(scope="module")
def azure_evidence(azure_store):
    return measure_arrivals(azure_store, seed=0, budget=Budget.quick())


def test_azure_code_trace_is_bursty(azure_store, azure_evidence):
    t = np.sort(azure_store.to_polars(["timestamp"])["timestamp"].to_numpy())
    gaps = np.diff(t)
    cv = gaps.std() / gaps.mean()  # independent of the code under test
    assert cv > 5  # "far above 1"
    f1 = servegen_f1_bursty(azure_evidence)
    assert f1.measured["cv"] == pytest.approx(cv, rel=1e-9)
    assert f1.measured["n_gaps"] == 8818
    # the 57-minute trace has 2 full 20-minute blocks: too few degrees of freedom at 30 s and up,
    # but 2 x 119 at 10 s, where the counts are 71 x as variable as Poisson: bursty holds
    (burst,) = f1.tests
    assert burst["decision"] == "holds" and "10-s counts" in burst["statistic"]
    assert "30 s: too few blocks" in burst["reason"]
    counts = np.bincount(((t - 1200.0 * np.ceil(t[0] / 1200.0)) // 10.0).astype(np.int64)[
        (t >= 1200.0 * np.ceil(t[0] / 1200.0)) & (t < 1200.0 * np.floor(t[-1] / 1200.0))])
    # independent check of the index at 10 s: within-block variance over mean, pooled over the blocks
    blocks = counts[: counts.size // 120 * 120].reshape(-1, 120)
    index = np.sum((blocks - blocks.mean(axis=1, keepdims=True)) ** 2 / blocks.mean(axis=1, keepdims=True)) / (
        blocks.shape[0] * 119)
    assert burst["effect_value"] == pytest.approx(index, rel=1e-9)
    assert f1.verdict is Verdict.HOLDS and f1.measured["bursty"] is True
    assert "null = Poisson arrivals" in f1.reason
    # one Gamma shape is not rejected beyond its practical threshold across the three 20-minute
    # windows, but no renewal family describes the gaps (best KS D 0.14 > 0.05): beyond a single
    # process holds through the fit standard
    single = servegen_f1_single_process(azure_evidence)
    shape, fit = single.tests
    assert shape["decision"] == "does not hold" and shape["level"] == 0.025
    assert fit["decision"] == "does not hold" and fit["value"] > 0.05 and fit["level"] == 0.025
    assert single.verdict is Verdict.HOLDS
    assert single.measured["best_family"] != "exponential"  # Poisson is the worst fit of a bursty trace
    table = azure_evidence.tables["family_comparison"]
    assert table["family"][-1] == "exponential"


def test_azure_rate_and_cv_shift(azure_evidence):
    f2 = servegen_f2(azure_evidence)
    w = azure_evidence.tables["windows"]
    assert f2.measured["n_windows"] == w.height == 12  # 57 minutes in 5-minute windows
    assert f2.measured["rate_max_over_min"] > 2
    assert f2.verdict is Verdict.HOLDS


def _poisson_store(tmp_path, rng, n=6000, span=3 * 3600.0):
    t = np.sort(rng.uniform(0, span, n))
    return write_store(pl.DataFrame({"timestamp": t}), tmp_path / "poisson")


def test_poisson_trace_is_not_called_bursty_or_shifting(tmp_path, rng):
    ev = measure_arrivals(_poisson_store(tmp_path, rng), seed=0, budget=Budget.quick())
    whole, f1, single, f2, g = arrival_findings(ev)
    assert f1.measured["bursty"] is False
    assert f1.verdict is Verdict.DOES_NOT_HOLD  # 6,000 arrivals in 9 full blocks: power to say so
    assert whole.id == "servegen.F1" and whole.verdict is Verdict.DOES_NOT_HOLD  # joins its two claims
    assert single.verdict is not Verdict.HOLDS
    assert f2.measured["rate_shifts"] is False and f2.measured["cv_shifts"] is False
    assert f2.verdict is Verdict.DOES_NOT_HOLD
    assert g.verdict is Verdict.DOES_NOT_HOLD  # a stationary Poisson process has alpha ~ 1 everywhere
    assert g.measured["trace.alpha_max_over_min"] < 2


def test_gamma_shift_holds_when_burstiness_changes(tmp_path, rng):
    # 20-minute windows alternating between smooth (alpha 4) and bursty (alpha 0.2) Gamma gaps
    times = []
    for k in range(6):
        a = 4.0 if k % 2 == 0 else 0.2
        gaps = rng.gamma(a, 1.0 / a, 4000)
        t = k * 1200.0 + np.cumsum(gaps) * (1190.0 / gaps.sum())
        times.append(t)
    store = write_store(pl.DataFrame({"timestamp": np.concatenate(times)}), tmp_path / "g")
    g = burstgpt_gamma_shift(measure_arrivals(store, budget=Budget.quick()))
    assert g.verdict is Verdict.HOLDS
    assert g.measured["trace.alpha_max_over_min"] > 5


def test_findings_not_applicable_on_a_tiny_trace(tmp_path):
    store = write_store(pl.DataFrame({"timestamp": [0.0, 1.0]}), tmp_path / "tiny")
    ev = measure_arrivals(store, by="client")
    assert "per-client tables skipped: the trace has no 'client_id' column" in ev.notes
    whole, f1, single, f2, g = arrival_findings(ev)
    assert [f.verdict for f in (whole, f1, single, f2, g)] == [Verdict.NOT_APPLICABLE] * 5
    assert "CV is undefined" in whole.reason
    assert "CV is undefined" in single.reason
    assert "CV is undefined" in f1.reason
    assert "needs at least 3 active 5-minute windows" in f2.reason


def test_section_builds_with_figures(azure_store):
    from servelab.reports.areas import ARRIVALS, build_section

    section = build_section(ARRIVALS, azure_store, budget=Budget.quick(), seed=0)
    assert [f.id for f in section.findings] == ["servegen.F1", "servegen.F1.bursty", "servegen.F1.single_process",
                                                  "servegen.F2", "burstgpt.gamma_shift"]
    assert set(section.figures) == {"servegen.fig1", "servegen.fig2", "burstgpt.fig6"}
    assert section.headline["gap CV"] > 5
    assert "family_comparison" in section.tables


def test_cli_prints_and_writes_tables(tmp_path, rng):
    n = 3000
    frame = pl.DataFrame({"timestamp": np.sort(rng.uniform(0, 7200, n)),
                          "service": rng.choice(["api", "conversation"], n)})
    write_store(frame, tmp_path / "s")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["arrivals", str(tmp_path / "s"), "--by", "service", "--window", "10m",
                                       "-o", str(out), "--gof", "none"])
    assert result.exit_code == 0, result.output
    assert "### step arrivals: ok" in result.output
    assert "servegen.F1.bursty [" in result.output and "servegen.F1.single_process [" in result.output
    for name in ["gap_summary", "windows", "group_windows", "family_comparison", "gamma_windows", "findings"]:
        assert (out / f"{name}.parquet").is_file() and (out / f"{name}.csv").is_file()
    windows = pl.read_parquet(out / "group_windows.parquet")
    assert windows.height == 2 * 12 and set(windows["service"]) == {"api", "conversation"}
    assert pl.read_csv(out / "windows.csv").height == 12
    assert {f["id"] for f in json.loads((out / "findings.json").read_text())} >= {"servegen.F1.bursty", "servegen.F2"}


def test_cli_rejects_a_bad_window(tmp_path):
    write_store(pl.DataFrame({"timestamp": [0.0, 1.0, 2.0]}), tmp_path / "s")
    result = CliRunner().invoke(main, ["arrivals", str(tmp_path / "s"), "--window", "5 fortnights"])
    assert result.exit_code == 2
    assert "window must be a length like" in result.output


def test_quantised_trace_is_jittered_and_said_so(tmp_path, rng):
    # Mooncake-like: Gamma arrivals (CV 2) with timestamps floored to 3 s, so ~half the gaps are 0
    t = np.floor(np.cumsum(rng.gamma(0.25, 8.0, 4000)) / 3.0) * 3.0
    store = write_store(pl.DataFrame({"timestamp": t}), tmp_path / "q")
    ev = measure_arrivals(store, budget=Budget.quick())
    assert any("quantised to 3 s" in note and "jittered" in note for note in ev.notes)
    f1 = servegen_f1_single_process(ev)
    assert f1.measured["zero_gap_fraction"] > 0.3
    gamma = ev.comparison.result("gamma")
    # jitter smears structure finer than the 3 s resolution (true a = 0.25, mean gap 2 s), but the
    # fit still sees a bursty process: a < 1, i.e. CV = 1/sqrt(a) > 1
    assert gamma.params["a"] < 1.0
    assert ev.comparison.best != "exponential"
    assert any("jittered" in note for note in gamma.notes)
