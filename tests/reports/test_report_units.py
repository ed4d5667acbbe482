"""The report builder's mechanics on tiny stores and fake sections (fast; no real analyses)."""
from __future__ import annotations

import json
from html.parser import HTMLParser

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from servelab.analysis import Finding, Verdict, not_applicable, write_store
from servelab.analysis.budget import Budget
from servelab.analysis.exceptions import StoreNotFoundError
from servelab.cli import main
from servelab.reports.areas import OVERVIEW, Section, build_section
from servelab.reports.areas import overview
from servelab.reports.builder import SectionFailedWarning, build_report, encode_figure
from servelab.reports.html import format_value


@pytest.fixture
def tiny_store(tmp_path, rng):
    n = 200
    frame = pl.DataFrame({
        "timestamp": np.sort(rng.uniform(0, 7200, n)),
        "client_id": rng.choice(["a", "b", "c"], n),
        "input_tokens": rng.integers(1, 1000, n),
        "failed": rng.uniform(size=n) < 0.1,
    })
    return write_store(frame, tmp_path / "store", fmt="test"), frame


class FakeArea:
    """An area whose evidence is a ready Section (or whatever ``build`` returns)."""

    def __init__(self, id, build, title="Fake area"):
        self.id, self.title, self._build = id, title, build

    def measure(self, source, *, budget, seed=0):
        return self._build(source, budget=budget, seed=seed)

    def findings(self, ev):
        return ev.findings if isinstance(ev, Section) else ev

    def tables(self, ev):
        return ev.tables

    def detail_tables(self, ev):
        return ev.tables

    def figures(self, ev):
        return ev.figures

    def headline(self, ev):
        return ev.headline

    def notes(self, ev):
        return ev.notes


class _Attrs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _parse(path):
    parser = _Attrs()
    parser.feed(path.read_text())
    return parser.tags


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "n/a"), (True, "yes"), (8819, "8,819"), (0.123456, "0.1235"), (2.5e-5, "2.500e-05"),
     (1234567.8, "1,234,568"), (float("nan"), "n/a"), ("gamma", "gamma")],
)
def test_format_value(value, text):
    assert format_value(value) == text


def test_overview_numbers_match_an_independent_count(tiny_store):
    store, frame = tiny_store
    section = build_section(OVERVIEW, store)
    head = section.headline
    assert head["requests"] == frame.height
    assert head["clients"] == len(set(frame["client_id"].to_list()))
    assert head["failure_rate"] == pytest.approx(float(np.mean(frame["failed"].to_numpy())), abs=1e-12)
    ts = frame["timestamp"].to_numpy()
    assert head["span_s"] == pytest.approx(ts.max() - ts.min())
    assert head["start"].startswith("unknown")  # no wall-clock origin given
    enabled = dict(zip(section.tables["analyses"]["analysis"], section.tables["analyses"]["enabled"]))
    why = dict(zip(section.tables["analyses"]["analysis"], section.tables["analyses"]["why not"]))
    assert enabled["client decomposition"] == "yes"
    assert enabled["failure rates"] == "yes"
    assert enabled["input / output length distributions"] == "no"
    assert why["input / output length distributions"] == "no output_tokens column"
    assert why["daily and weekly periodicity"] == "no wall-clock origin in the manifest"


def test_rejected_rows_by_reason_come_from_the_manifest():
    manifest = {"rows": {"read": 10, "stored": 7, "rejected": {"negative tokens": 2, "bad timestamp": 1},
                         "duplicates": 1, "unsorted": None}}
    table = overview.rejected_table(manifest)
    assert table.to_dicts() == [
        {"rows": "read", "count": 10}, {"rows": "stored", "count": 7},
        {"rows": "rejected: bad timestamp", "count": 1}, {"rows": "rejected: negative tokens", "count": 2},
        {"rows": "duplicates (kept)", "count": 1},
    ]


@pytest.mark.parametrize(("seconds", "text"), [(None, "n/a"), (59.94, "59.9 s"), (3436, "57 min 16 s"),
                                               (7260, "2 h 1 min"), (90000, "1 d 1 h 0 min")])
def test_format_duration(seconds, text):
    assert overview.format_duration(seconds) == text


def test_failing_section_is_reported_not_fatal(tiny_store, tmp_path):
    store, _ = tiny_store

    def boom(store, *, budget, seed=0):
        raise ZeroDivisionError("synthetic failure in a section")

    with pytest.warns(SectionFailedWarning, match="report section 'boom' failed .*synthetic failure"):
        result = build_report(store, output=tmp_path / "out" / "r.html", sections=("overview", FakeArea("boom", boom)),
                              progress=False)
    assert result.sections == (("overview", "ok"), ("boom", "error"))
    assert result.errors["boom"].startswith("ZeroDivisionError: synthetic failure in a section")
    with pytest.raises(KeyError, match="section 'boom' was not built .it failed: ZeroDivisionError"):
        result.section("boom")
    document = json.loads(result.json_path.read_text())
    assert [(s["id"], s["status"]) for s in document["sections"]] == [("overview", "ok"), ("boom", "error")]
    statuses = {a["data-section-id"]: a["data-status"] for tag, a in _parse(result.html_path) if "data-section-id" in a}
    assert statuses == {"overview": "ok", "boom": "error"}
    assert "synthetic failure in a section" in result.html_path.read_text()


def test_section_returning_the_wrong_type_is_an_error(tiny_store, tmp_path):
    store, _ = tiny_store
    wrong = FakeArea("wrongtype", lambda store, *, budget, seed=0: {"not": "a Section"})
    with pytest.warns(SectionFailedWarning, match="findings.. returned dict, expected a tuple of Finding"):
        result = build_report(store, output=tmp_path / "r.html", sections=(wrong,), progress=False)
    assert result.errors["wrongtype"].startswith("TypeError")


def test_quick_and_seed_reach_sections_and_findings_round_trip(tiny_store, tmp_path):
    store, _ = tiny_store
    from servelab.figures.style import figure

    def fake(store, *, budget, seed=0):
        quick = budget == Budget.quick()
        fig, ax = figure()
        ax.plot([1, 2, 3], [1, 4, 9])
        ax.set_xlabel("x (s)")
        return Section(
            id="fake", title="Fake area",
            findings=(
                Finding(id="paper.F1", statement="Gaps are bursty.", source="Paper, Finding 1",
                        verdict=Verdict.HOLDS, measured={"cv": 2.5, "n": 199}, reason="CV > 1",
                        figures=("fake.fig", "fake.undrawn")),
                not_applicable("paper.F2", "Clients are skewed.", "Paper, Finding 2", ""),
            ),
            figures={"fake.fig": fig},
            headline={"quick": quick, "seed": seed, "gap_cv": 2.5},
            tables={"fits": pl.DataFrame({"family": ["gamma"], "ks_d": [0.01]})},
        )

    result = build_report(store, output=tmp_path / "r.html", sections=(FakeArea("fake", fake),), quick=True, seed=7,
                          progress=False)
    document = json.loads(result.json_path.read_text())
    assert document["summary"]["headline"]["fake"] == {"_title": "Fake area", "quick": True, "seed": 7, "gap_cv": 2.5}
    assert document["quick"] is True and document["seed"] == 7
    assert any("Quick mode" in n for n in document["notes"])
    assert any("paper.F2" in n and "gave no reason" in n for n in document["notes"])
    assert [f["id"] for f in document["findings"]] == ["paper.F1", "paper.F2"]
    assert document["findings"][0]["measured"] == {"cv": 2.5, "n": 199}
    assert document["sections"][0]["tables"]["fits"] == {"columns": ["family", "ks_d"], "rows": [["gamma", 0.01]]}
    assert result.verdict_counts() == {"holds": 1, "does not hold": 0, "inconclusive": 0, "not applicable": 1}
    tags = _parse(result.html_path)
    html_findings = [(a["data-finding-id"], a["data-verdict"]) for _, a in tags if "data-finding-id" in a]
    assert html_findings == [("paper.F1", "holds"), ("paper.F2", "not applicable")]
    links = [a["href"] for t, a in tags if t == "a"]
    assert "#fig-fake-fig" in links and "#fig-fake-undrawn" not in links
    assert [a["data-figure-id"] for _, a in tags if "data-figure-id" in a] == ["fake.fig"]
    assert result.section("fake").headline["gap_cv"] == 2.5
    assert set(result.images) == {"fake.fig"} and result.images["fake.fig"].mime == "image/png"
    with pytest.raises(KeyError, match=r"section 'arrivals' was not built; built: \['fake'\]"):
        result.section("arrivals")


def test_an_unknown_section_id_is_an_error_naming_the_known_areas(tiny_store, tmp_path):
    store, _ = tiny_store
    with pytest.raises(KeyError, match=r"unknown area 'no_such_area'; known areas: \['overview', 'arrivals'"):
        build_report(store, output=tmp_path / "r.html", sections=("overview", "no_such_area"), progress=False)
    assert not (tmp_path / "r.html").exists()
    result = build_report(store, output=tmp_path / "r.html", sections=("overview",), progress=False)
    assert result.sections == (("overview", "ok"),)


def test_quick_and_a_budget_together_are_refused(tiny_store, tmp_path):
    store, _ = tiny_store
    with pytest.raises(ValueError, match="give quick=True or a budget, not both"):
        build_report(store, output=tmp_path / "r.html", quick=True, budget=Budget.quick(), progress=False)


def test_encode_figure_rejects_non_figures():
    with pytest.raises(TypeError, match="figure must be a matplotlib Figure; got str"):
        encode_figure("not a figure")


def test_cli_report_on_a_store_and_on_a_missing_path(tiny_store, tmp_path):
    store, _ = tiny_store
    runner = CliRunner()
    out = tmp_path / "cli" / "report.html"
    result = runner.invoke(main, ["report", str(store.path), "-o", str(out), "--seed", "3", "--section", "overview"])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    document = json.loads(out.with_suffix(".json").read_text())
    assert document["seed"] == 3
    assert [s["id"] for s in document["sections"]] == ["overview"]
    result = runner.invoke(main, ["report", str(store.path), "-o", str(out), "--section", "arrivls"])
    assert result.exit_code == 2
    assert "unknown section(s) ['arrivls']; allowed: ['overview', 'arrivals'" in result.output
    result = runner.invoke(main, ["report", str(tmp_path / "nope.csv"), "-o", str(out)])
    assert result.exit_code == 1
    assert "does not exist; give a trace store folder or a raw trace file" in result.output


def test_build_report_on_a_folder_without_manifest_says_it_is_not_a_store(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreNotFoundError, match="is a folder without manifest.json, so not a trace store"):
        build_report(tmp_path / "empty", output=tmp_path / "r.html", progress=False)
    assert not (tmp_path / "r.html").exists()


def test_figures_dir_saves_every_drawn_figure_in_each_format(tiny_store, tmp_path):
    import xml.etree.ElementTree as ET

    store, _ = tiny_store
    from servelab.figures.style import figure

    def fake(store, *, budget, seed=0):
        figs = {}
        for name in ("fake.one", "fake.two"):
            fig, ax = figure()
            ax.plot([1, 2, 3], [1, 4, 9])
            ax.set_xlabel("x (s)")
            figs[name] = fig
        return Section(id="fake", title="Fake area", figures=figs)

    out = tmp_path / "figs"
    build_report(store, output=tmp_path / "r.html", sections=(FakeArea("fake", fake),), progress=False,
                 figures_dir=out, figure_formats=("svg", "pdf"))
    assert sorted(p.name for p in out.iterdir()) == ["fake.one.pdf", "fake.one.svg", "fake.two.pdf", "fake.two.svg"]
    assert ET.parse(out / "fake.one.svg").getroot().tag.endswith("svg")
    pdf = (out / "fake.two.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-") and b"%%EOF" in pdf[-64:]
    with pytest.raises(ValueError, match=r"figure_formats must be a non-empty subset of \('png', 'svg', 'pdf'\); got \('jpg',\)"):
        build_report(store, output=tmp_path / "r2.html", sections=(FakeArea("fake", fake),), progress=False,
                     figures_dir=out, figure_formats=("jpg",))
    assert not (tmp_path / "r2.html").exists()
