"""The report builds the sections of PARALLEL_AREAS in a worker process (issue 16) and gets the
same sections as building them in this process."""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from servelab.analysis import write_store
from servelab.reports import builder
from servelab.reports.areas.overview import OverviewArea


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    rng = np.random.default_rng(5)
    n = 2_000
    frame = pl.DataFrame({"timestamp": np.sort(rng.uniform(0, 86_400.0, n)),
                          "client_id": rng.choice(["a", "b", "c"], n),
                          "input_tokens": rng.integers(10, 2_000, n), "output_tokens": rng.integers(1, 500, n)})
    return write_store(frame, tmp_path_factory.mktemp("worker") / "store")


def _sections(tmp_path, store, name: str, **kwargs) -> tuple[builder.ReportResult, dict]:
    result = builder.build_report(store, output=tmp_path / f"{name}.html", sections=("overview",),
                                  progress=False, figure_worker=False, **kwargs)
    document = json.loads(result.json_path.read_text())
    return result, {s["id"]: {k: v for k, v in s.items() if k not in ("elapsed_s", "cpu_s", "peak_rss_mb")} for s in document["sections"]}


def test_parallel_area_is_built_in_the_worker_with_the_same_section(tiny_store, tmp_path, monkeypatch):
    monkeypatch.setattr(builder, "PARALLEL_AREAS", ("overview",))
    here, here_doc = _sections(tmp_path, tiny_store, "here", section_worker=False)
    original = builder._run_one

    def not_here(area, *args, **kwargs):
        if area.id == "overview":
            raise AssertionError("the overview section was built in the report's own process")
        return original(area, *args, **kwargs)

    monkeypatch.setattr(builder, "_run_one", not_here)  # the worker process does not see this patch
    monkeypatch.setattr(builder, "SECTION_WORKER_MIN_REQUESTS", tiny_store.n_requests)  # "auto" takes it
    there, there_doc = _sections(tmp_path, tiny_store, "there", section_worker="auto")
    assert there.sections == (("overview", "ok"),)
    assert there_doc == here_doc
    assert [f.to_dict() for f in there.findings] == [f.to_dict() for f in here.findings]
    assert dict(there.section("overview").headline) == dict(here.section("overview").headline)
    assert there.section("overview").notes == here.section("overview").notes
    for name, table in here.section("overview").tables.items():
        assert table.equals(there.section("overview").tables[name])


def test_reports_in_one_process_one_after_another(tiny_store, tmp_path):
    """A second report in a process whose polars and DuckDB thread pools run (a forked worker hung
    there) gets its worker sections."""
    # start this process' DuckDB and polars thread pools as a first report does (a first report with
    # a worker is the test above; a second one here cost ~4 s more of the suite)
    assert tiny_store.query("SELECT count(*) AS n FROM requests")["n"][0] == tiny_store.n_requests
    assert tiny_store.to_polars().group_by("client_id").len().height == 3
    second = builder.build_report(tiny_store, output=tmp_path / "second.html", sections=("periodicity",),
                                  progress=False, figure_worker=False, section_worker=True)
    assert second.sections == (("periodicity", "ok"),)


def test_auto_worker_only_for_large_stores(tiny_store):
    """``section_worker="auto"`` (the default) starts no worker below SECTION_WORKER_MIN_REQUESTS."""
    assert tiny_store.n_requests < builder.SECTION_WORKER_MIN_REQUESTS
    with builder._SectionWorker(worker="auto") as worker:
        assert worker.start([("lengths", tiny_store, None, 0, {})]) == {}
        assert worker._proc is None
    with pytest.raises(ValueError, match="section_worker must be True, False or 'auto'; got 'yes'"):
        builder.build_report(tiny_store, section_worker="yes", progress=False)
