"""The report builds the sections of PARALLEL_AREAS in a forked worker process (issue 16) and gets
the same sections as building them in this process."""
from __future__ import annotations

import json
import multiprocessing
import os

import numpy as np
import polars as pl
import pytest

from servelab.analysis import write_store
from servelab.reports import builder
from servelab.reports.areas.overview import OverviewArea

pytestmark = pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")


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
    return result, {s["id"]: {k: v for k, v in s.items() if k not in ("elapsed_s", "cpu_s")} for s in document["sections"]}


def test_parallel_area_is_built_in_the_worker_with_the_same_section(tiny_store, tmp_path, monkeypatch):
    monkeypatch.setattr(builder, "PARALLEL_AREAS", ("overview",))
    original = OverviewArea.notes
    monkeypatch.setattr(OverviewArea, "notes", lambda self, ev: (*original(self, ev), f"pid {os.getpid()}"))
    here, here_doc = _sections(tmp_path, tiny_store, "here", section_worker=False)
    there, there_doc = _sections(tmp_path, tiny_store, "there")
    pid_here = here.section("overview").notes[-1]
    pid_there = there.section("overview").notes[-1]
    assert pid_here == f"pid {os.getpid()}"
    assert pid_there.startswith("pid ") and pid_there != pid_here  # built in another process
    # the same section either way, apart from the note naming the process
    there_doc["overview"]["notes"] = here_doc["overview"]["notes"]
    assert there_doc == here_doc
    assert [f.to_dict() for f in there.findings] == [f.to_dict() for f in here.findings]
    assert dict(there.section("overview").headline) == dict(here.section("overview").headline)
    for name, table in here.section("overview").tables.items():
        assert table.equals(there.section("overview").tables[name])
