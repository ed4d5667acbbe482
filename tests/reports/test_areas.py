"""The area registry and the area contract: every area measures the shipped sample once and
arranges that evidence into findings, tables, figures, headline and notes."""
from __future__ import annotations

import dataclasses
import math

import polars as pl
import pytest
from matplotlib.figure import Figure

from servelab.analysis.budget import Budget
from servelab.analysis.findings import Finding, Verdict
from servelab.analysis.ingest import ingest
from servelab.figures.registry import figure_specs
from servelab.reports import areas as areas_package
from servelab.reports.areas import AREAS, Area, Section, area_ids, build_section, get_area, section_from_evidence

EXPECTED = ("overview", "arrivals", "periodicity", "lengths", "clients", "conversations", "prefixes", "generation",
            "validation")


def test_the_registry_resolves_every_area_by_id():
    assert area_ids() == EXPECTED
    for area in AREAS:
        assert isinstance(area, Area), area
        assert get_area(area.id) is area
        assert area.title and isinstance(area.title, str)
        # each area object is the one its own module defines (an import, not a string to resolve)
        module = __import__(f"servelab.reports.areas.{area.id}", fromlist=["_"])
        assert getattr(module, area.id.upper()) is area
        assert getattr(areas_package, area.id.upper()) is area


def test_get_area_names_the_known_areas():
    with pytest.raises(KeyError, match=r"unknown area 'arrivls'; known areas: \['overview', 'arrivals', "):
        get_area("arrivls")


@pytest.fixture(scope="module")
def azure_store(tmp_path_factory, raw_traces):
    path = raw_traces / "azure_2023" / "AzureLLMInferenceTrace_code.csv"
    return ingest([path], fmt="azure", output=tmp_path_factory.mktemp("areas") / "store")


@pytest.mark.parametrize("area", AREAS, ids=lambda a: a.id)
def test_area_contract_on_the_shipped_sample(area, azure_store):
    evidence = area.measure(azure_store, budget=Budget.quick(), seed=0)
    assert dataclasses.is_dataclass(evidence)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(evidence, dataclasses.fields(evidence)[0].name, None)

    findings = area.findings(evidence)
    assert isinstance(findings, tuple) and all(isinstance(f, Finding) for f in findings)
    assert all(f.reason for f in findings if f.verdict is Verdict.NOT_APPLICABLE)
    if area.id != "overview":
        assert findings, f"area {area.id} checks no finding"

    n = azure_store.n_requests
    for tables in (area.tables(evidence), area.detail_tables(evidence)):
        assert all(isinstance(name, str) and isinstance(t, pl.DataFrame) for name, t in tables.items())
    # the report shows small tables only: summaries, never one row per request
    assert all(t.height < n for t in area.tables(evidence).values())

    figures = area.figures(evidence)
    specs = figure_specs()
    assert all(isinstance(f, Figure) for f in figures.values())
    assert set(figures) <= set(specs), f"unregistered figure ids {set(figures) - set(specs)}"
    # every figure a finding points to is drawn, or the notes or the finding say why not
    referenced = {fig for f in findings if f.verdict is not Verdict.NOT_APPLICABLE for fig in f.figures}
    notes = area.notes(evidence)
    assert isinstance(notes, tuple) and all(isinstance(x, str) and x for x in notes)
    for fig_id in referenced - set(figures):
        assert any(fig_id in x for x in notes) or any(fig_id in f.figures and f.reason for f in findings)

    headline = area.headline(evidence)
    for key, value in headline.items():
        assert isinstance(key, str)
        assert value is None or isinstance(value, (bool, int, float, str)), (key, value)
        if isinstance(value, float):
            assert not math.isinf(value)

    section = section_from_evidence(area, evidence)
    assert isinstance(section, Section) and section.id == area.id and section.title == area.title
    assert [f.id for f in section.findings] == [f.id for f in findings]
    assert set(section.figures) == set(figures) and section.notes == notes


def test_quick_budget_notes_and_full_budget_silence(azure_store):
    """A non-full budget is stated in the notes with its numbers; the full budget adds no such note."""
    quick = build_section(get_area("arrivals"), azure_store, budget=Budget.quick(), seed=0)
    assert any(n.startswith("quick mode: arrival families fitted on a seeded subsample of at most 10^5 gaps")
               and "(full: 10^6)" in n and "99 replicates (full: 200)" in n for n in quick.notes)
    mine = Budget(label="tiny", max_fit_n=5_000, max_group_fit_n=500, n_boot=19)
    tiny = build_section(get_area("arrivals"), azure_store, budget=mine, seed=0)
    assert any(n.startswith("tiny mode: arrival families fitted on a seeded subsample of at most 5,000 gaps")
               for n in tiny.notes)
    assert tiny.tables["family_comparison"]["n"].max() <= 5_000
    full = build_section(get_area("overview"), azure_store, budget=Budget.full())
    assert not any("mode:" in n for n in full.notes)
