"""The report builds the sections of PARALLEL_AREAS in a worker process (issue 16) and gets the
same sections as building them in this process."""
from __future__ import annotations

import json
import os

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


def _overview_only_in_the_worker(monkeypatch):
    """The overview becomes the worker's section; built in this process instead, it fails (the
    worker process does not see this patch)."""
    monkeypatch.setattr(builder, "PARALLEL_AREAS", ("overview",))
    original = builder._run_one

    def not_here(area, *args, **kwargs):
        if area.id == "overview":
            raise AssertionError("the overview section was built in the report's own process")
        return original(area, *args, **kwargs)

    monkeypatch.setattr(builder, "_run_one", not_here)


def test_parallel_area_is_built_in_the_worker_with_the_same_section(tiny_store, tmp_path, monkeypatch):
    monkeypatch.setattr(builder, "PARALLEL_AREAS", ("overview",))
    here, here_doc = _sections(tmp_path, tiny_store, "here", section_worker=False)
    _overview_only_in_the_worker(monkeypatch)
    monkeypatch.setattr(builder, "SECTION_WORKER_MIN_REQUESTS", tiny_store.n_requests)  # "auto" takes it
    there, there_doc = _sections(tmp_path, tiny_store, "there", section_worker="auto")
    assert there.sections == (("overview", "ok"),)
    assert there_doc == here_doc
    assert [f.to_dict() for f in there.findings] == [f.to_dict() for f in here.findings]
    assert dict(there.section("overview").headline) == dict(here.section("overview").headline)
    assert there.section("overview").notes == here.section("overview").notes
    for name, table in here.section("overview").tables.items():
        assert table.equals(there.section("overview").tables[name])


def test_reports_in_one_process_one_after_another(tiny_store, tmp_path, monkeypatch):
    """A second report in a process whose polars and DuckDB thread pools run (a forked worker hung
    there) gets its worker sections."""
    # start this process' DuckDB and polars thread pools as a first report does (a first report with
    # a worker is the test above; a second one here cost ~4 s more of the suite)
    assert tiny_store.query("SELECT count(*) AS n FROM requests")["n"][0] == tiny_store.n_requests
    assert tiny_store.to_polars().group_by("client_id").len().height == 3
    # the overview as the worker's section (the cheapest; what is tested is the worker's start and
    # its answer, not a section's content; the periodicity section it built before cost ~2.5 CPU-s);
    # a section built here instead would fail the spy
    _overview_only_in_the_worker(monkeypatch)
    second = builder.build_report(tiny_store, output=tmp_path / "second.html", sections=("overview",),
                                  progress=False, figure_worker=False, section_worker=True)
    assert second.sections == (("overview", "ok"),)


def test_auto_worker_only_for_large_stores(tiny_store):
    """``section_worker="auto"`` (the default) starts no worker below SECTION_WORKER_MIN_REQUESTS."""
    assert tiny_store.n_requests < builder.SECTION_WORKER_MIN_REQUESTS
    with builder._SectionWorker(worker="auto") as worker:
        assert worker.start([("lengths", tiny_store, None, 0, {})]) == {}
        assert worker._proc is None
    with pytest.raises(ValueError, match="section_worker must be True, False or 'auto'; got 'yes'"):
        builder.build_report(tiny_store, section_worker="yes", progress=False)


def test_worker_exits_when_the_report_process_is_gone(tmp_path):
    """A worker whose report process died (killed) stops instead of building sections for nobody."""
    import subprocess
    import sys
    import time

    # the worker's parent is a shell that exits at once; its standard input stays open (sleep), so
    # without the orphan check it would wait for its jobs for the full 40 s
    pid_file = tmp_path / "pid"
    code = "from servelab.reports.builder import _section_worker_main; _section_worker_main(parent=$$)"
    subprocess.run(["sh", "-c", f'sleep 40 | "{sys.executable}" -c "{code}" & echo $! > {pid_file}'], check=True)
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, 9)
        raise AssertionError("the section worker outlived its report process by 30 s")


def test_auto_figure_worker_only_for_large_traces(tiny_store, tmp_path, monkeypatch):
    """``figure_worker="auto"`` (the default) forks the figure worker from FIGURE_WORKER_MIN_REQUESTS
    requests on: the store's manifest count, or a raw file's size over _BYTES_PER_ROW_AT_LEAST."""
    assert builder.FIGURE_WORKER_MIN_REQUESTS > 26_798  # the sparse 4,244-client trace of issue 16 is below
    forked = []
    original = builder._FigureEncoder.__init__

    def spy(self, *, worker=True):
        forked.append(worker)
        original(self, worker=False)  # no process is forked here: the choice is what is tested

    monkeypatch.setattr(builder._FigureEncoder, "__init__", spy)
    n = tiny_store.n_requests
    assert builder._requests_hint(tiny_store) == n == builder._requests_hint(tiny_store.path)
    assert builder._requests_hint(str(tiny_store.path)) == n
    for threshold, expected in ((n + 1, False), (n, True)):
        monkeypatch.setattr(builder, "FIGURE_WORKER_MIN_REQUESTS", threshold)
        builder.build_report(tiny_store.path, output=tmp_path / f"r{threshold}.html", sections=("overview",),
                             progress=False, section_worker=False)
        assert forked[-1] is expected
    raw = tmp_path / "trace.csv"
    raw.write_text("timestamp,input_tokens,output_tokens\n" + "".join(f"{i},1,1\n" for i in range(1000)))
    assert builder._requests_hint(raw) == raw.stat().st_size // builder._BYTES_PER_ROW_AT_LEAST
    assert builder._requests_hint(tmp_path / "missing.csv") == 0
    with pytest.raises(ValueError, match="figure_worker must be True, False or 'auto'; got 'yes'"):
        builder.build_report(tiny_store, figure_worker="yes", progress=False)
