"""Issue 19: a figure or a finding is added in one module (plus its test), never listed elsewhere.

Figures: each figure module registers how an area draws it from its evidence
(``figures.registry.draws``); areas' ``figures(evidence)`` is derived from that registry
(``with_registered_figures``). Findings: each findings module's functions register themselves in
its ``FINDINGS`` list (``analysis.findings.FindingList``).
"""
from __future__ import annotations

import importlib
import types

import pytest

from servelab.analysis.findings import Finding, FindingList, Verdict
from servelab.figures import registry
from servelab.reports.areas import AREAS

FINDINGS_MODULES = ("arrivals", "clients", "conversations", "lengths", "multimodal", "periodicity", "prefixes",
                    "reasoning")


def test_every_drawer_draws_a_registered_figure_of_a_known_area():
    specs = registry.figure_specs()
    areas = {a.id for a in AREAS}
    for d in registry.drawers():
        assert d.id in specs, d.id
        assert d.area in areas, (d.id, d.area)


def test_every_area_figures_method_is_the_registry():
    for area in AREAS:
        assert type(area).figures.__qualname__ == f"{type(area).__qualname__}.figures"
        assert "registered" in type(area).figures.__doc__


def test_a_new_drawer_reaches_its_area_without_editing_the_area(monkeypatch):
    """What adding a figure takes: one decorated function; the area's figures() picks it up."""
    monkeypatch.setattr(registry, "_DRAWERS", dict(registry._DRAWERS))
    area = next(a for a in AREAS if a.id == "validation")
    evidence = types.SimpleNamespace(metrics=None, counts=None)  # the validation figure cannot draw
    assert area.figures(evidence) == {}

    @registry.draws("test.extra", area="validation")
    def _extra(ev):
        return "a figure"

    assert area.figures(evidence) == {"test.extra": "a figure"}


def test_a_figure_id_is_drawn_by_one_function_only(monkeypatch):
    monkeypatch.setattr(registry, "_DRAWERS", dict(registry._DRAWERS))
    with pytest.raises(ValueError, match="already drawn by"):
        registry.draws("servegen.fig1", area="arrivals")(lambda ev: None)


@pytest.mark.parametrize("module", FINDINGS_MODULES)
def test_each_findings_module_lists_its_findings_by_registration(module):
    mod = importlib.import_module(f"servelab.reports.findings.{module}")
    assert isinstance(mod.FINDINGS, FindingList) and len(mod.FINDINGS.functions) >= 2
    for fn in mod.FINDINGS.functions:
        assert fn.__module__ == mod.__name__


def test_finding_list_runs_in_definition_order_and_reregistration_replaces():
    found = FindingList()

    def make(i):
        def f(ev):
            return Finding(id=f"x.F{i}", statement="s", source="src", verdict=Verdict.HOLDS, reason=str(ev))
        f.__qualname__ = f"f{i}"
        return f

    for i in (1, 2):
        found.register(make(i))
    found.register(make(1))  # a re-import: replaced, moved to its new place
    assert [f.id for f in found("ev")] == ["x.F2", "x.F1"]
