"""Client and conversation report sections, their figures and their CLI commands."""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from matplotlib.figure import Figure
from servelab.analysis.findings import Verdict
from servelab.analysis.store import write_store
from servelab.figures.registry import figure_specs
from servelab.analysis.budget import Budget
from servelab.reports.areas import CLIENTS, CONVERSATIONS, Section, build_section

from servelab.cli import main


@pytest.fixture
def tagged_store(rng, tmp_path):
    """Six Poisson clients with conversations (ids) over two hours."""
    n_clients, span = 6, 7200.0
    rates = np.array([1.0, 0.5, 0.2, 0.1, 0.05, 0.02])
    counts = rng.poisson(rates * span)
    client = np.repeat(np.arange(n_clients), counts)
    t = rng.uniform(0, span, client.size)
    order = np.argsort(t)
    t, client = t[order], client[order]
    conv = np.where(rng.random(t.size) < 0.3, rng.integers(0, 400, t.size), -1)
    frame = pl.DataFrame({
        "timestamp": t, "client_id": [f"k{c}" for c in client],
        "input_tokens": rng.poisson(300 * (client + 1)), "output_tokens": rng.poisson(100, t.size),
        "conversation_id": [f"s{c}" if c >= 0 else None for c in conv],
    })
    return write_store(frame, tmp_path / "tagged")


def test_sections_on_a_tagged_trace(tagged_store):
    sec = build_section(CLIENTS, tagged_store, budget=Budget.quick())
    assert isinstance(sec, Section) and sec.id == "clients"
    assert {f.id for f in sec.findings} == {"servegen.F5", "servegen.F8", "servegen.F11"}
    assert isinstance(sec.figures["servegen.fig6"], Figure)
    assert sec.headline["clients"] == 6
    assert sec.tables["top_clients"]["client_id"][0] == "k0"
    conv = build_section(CONVERSATIONS, tagged_store, budget=Budget.quick())
    assert {f.id for f in conv.findings} == {"servegen.F10", "burstgpt.conversations"}
    assert set(conv.figures) == {"servegen.fig14", "servegen.fig15", "servegen.fig16", "burstgpt.fig9"}
    assert conv.tables["links"]["rule"][0] == "conversation_id"
    specs = figure_specs()
    for fig_id in ("servegen.fig6", "servegen.fig12", "servegen.fig17", "servegen.fig14", "servegen.fig15",
                   "servegen.fig16", "burstgpt.fig9"):
        assert fig_id in specs
    # every axis has a unit in its label
    for fig in (*sec.figures.values(), *conv.figures.values()):
        for ax in fig.axes:
            label = ax.get_xlabel() + ax.get_ylabel()
            if label:
                assert "(" in label, label


def test_sections_never_raise_on_a_bare_trace(tmp_path):
    store = write_store(pl.DataFrame({"timestamp": [0.0, 1.0, 3.0]}), tmp_path / "bare")
    for area in (CLIENTS, CONVERSATIONS):
        sec = build_section(area, store)
        assert sec.figures == {} and all(f.verdict is Verdict.NOT_APPLICABLE for f in sec.findings)
        assert sec.notes and "skipped" in sec.notes[-1]


def test_sections_on_degenerate_traces(tmp_path):
    """One request; identical timestamps: findings say why, nothing raises, no empty legends."""
    import warnings

    one = write_store(pl.DataFrame({"timestamp": [5.0], "client_id": ["a"]}), tmp_path / "one")
    same = write_store(pl.DataFrame({"timestamp": [5.0, 5.0, 5.0], "client_id": ["a", "a", "b"],
                                     "conversation_id": ["x", "x", None]}), tmp_path / "same")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        for store in (one, same):
            for area in (CLIENTS, CONVERSATIONS):
                sec = build_section(area, store)
                assert all(f.reason for f in sec.findings)
    f10 = build_section(CONVERSATIONS, same).findings[0]
    assert f10.verdict is Verdict.NOT_APPLICABLE and "span must have positive length" in f10.reason


def test_cli_clients_and_conversations_write_tables(tagged_store, tmp_path):
    runner = CliRunner()
    out = tmp_path / "c"
    res = runner.invoke(main, ["clients", str(tagged_store.path), "-o", str(out), "--rows", "2"])
    assert res.exit_code == 0, res.output
    assert "6 clients" in res.output and "servegen.F5" in res.output
    ranking = pl.read_parquet(out / "ranking.parquet")
    assert ranking.height == 6 and ranking["requests"].sum() == tagged_store.n_requests
    assert {f["id"] for f in json.loads((out / "findings.json").read_text())} >= {"servegen.F5"}
    out2 = tmp_path / "v"
    res = runner.invoke(main, ["conversations", str(tagged_store.path), "-o", str(out2), "--links", "--delta", "30"])
    assert res.exit_code == 0, res.output
    assert "rule conversation_id" in res.output
    assert "long_gt_30s" in pl.read_parquet(out2 / "intervals_by_requests.parquet").columns
    assert pl.read_parquet(out2 / "links.parquet").height == tagged_store.n_requests


def test_cli_bad_options_and_not_applicable(tmp_path):
    store = write_store(pl.DataFrame({"timestamp": [0.0, 1.0, 3.0]}), tmp_path / "bare")
    runner = CliRunner()
    res = runner.invoke(main, ["clients", str(store.path)])
    assert res.exit_code == 0 and "not applicable" in res.output and "client_id" in res.output
    res = runner.invoke(main, ["conversations", str(store.path)])
    assert res.exit_code == 0 and "no link information" in res.output
    res = runner.invoke(main, ["clients", str(store.path), "--window", "soon"])
    assert res.exit_code == 2 and "window" in res.output
    res = runner.invoke(main, ["conversations", str(store.path), "--delta", "-5"])
    assert res.exit_code == 2 and "positive" in res.output


def test_cli_conversation_figures_are_the_areas_with_fitted_itt_curves(tagged_store, tmp_path, monkeypatch):
    """`servelab conversations --figures` draws the report's figures: Fig. 15 carries the fitted
    ITT densities (it once drew the bare histogram), checked against an exponential fitted here."""
    from servelab.commands import output

    drawn = {}
    real = output.write_figures
    monkeypatch.setattr(output, "write_figures", lambda target, figures: drawn.update(figures) or real(target, figures))
    out = tmp_path / "figs"
    res = CliRunner().invoke(main, ["conversations", str(tagged_store.path), "-o", str(out), "--figures"])
    assert res.exit_code == 0, res.output
    report = build_section(CONVERSATIONS, tagged_store)
    assert set(drawn) == set(report.figures) == {"servegen.fig14", "servegen.fig15", "servegen.fig16",
                                                  "burstgpt.fig9"}
    assert (out / "servegen_fig15.png").is_file()
    itt_axes = drawn["servegen.fig15"].axes[1]
    curves = {line.get_label(): line for line in itt_axes.get_lines()}
    fitted = set(pl.read_parquet(out / "itt_fits.parquet")["family"])
    assert fitted and fitted <= set(curves)
    # independent reference: the exponential MLE is the mean positive inter-turn time, computed here
    # from the stored timestamps per conversation
    itt = (tagged_store.to_polars().filter(pl.col("conversation_id").is_not_null())
           .sort("timestamp").group_by("conversation_id", maintain_order=True)
           .agg(pl.col("timestamp").diff().drop_nulls().alias("itt")).explode("itt")["itt"].drop_nulls().to_numpy())
    scale = itt[itt > 0].mean()
    x, y = curves["exponential"].get_data()
    np.testing.assert_allclose(y, np.exp(-x / scale) / scale, rtol=1e-9)
    # the report's Fig. 15 draws the same curves
    report_lines = {line.get_label() for line in report.figures["servegen.fig15"].axes[1].get_lines()}
    assert report_lines == set(curves)
