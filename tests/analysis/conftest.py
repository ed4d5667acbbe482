"""Fixtures shared by the analysis tests (test modules never import each other)."""
from __future__ import annotations

from collections.abc import Callable

import pytest


def _check_counts(store, *, read: int, stored: int, rejected: dict[str, int]) -> list[dict]:
    """Every row read is stored or rejected: the manifest's counts and the rejected table agree
    with the expected ``read`` / ``stored`` / ``rejected`` (reason -> rows); returns the rejected
    rows in file order."""
    rows = store.manifest["rows"]
    assert rows["read"] == read == stored + sum(rejected.values())
    assert rows["stored"] == stored
    assert rows["rejected"] == rejected
    got = store.query("SELECT reason, count(*) AS n FROM rejected GROUP BY 1").to_dicts()
    assert {r["reason"]: r["n"] for r in got} == rejected
    return store.query("SELECT * FROM rejected ORDER BY row").to_dicts()


@pytest.fixture
def check_counts() -> Callable[..., list[dict]]:
    """The read = stored + rejected check of an ingested store (see :func:`_check_counts`)."""
    return _check_counts


#: the shipped raw traces (BurstGPT, Azure, Mooncake samples of ``raw_traces/``) by name
SHIPPED_RAW = {"burstgpt": ("burstgpt", "BurstGPT_1_head54.csv"),
               "azure": ("azure_2023", "AzureLLMInferenceTrace_code.csv"),
               "mooncake": ("mooncake", "synthetic_trace.jsonl")}


@pytest.fixture(scope="session")
def shipped_stores(tmp_path_factory) -> dict:
    """The shipped raw traces ingested once per session (DuckDB ingest): name -> TraceStore.

    Shared by the engine tests (test_engines' equivalence, test_engine_choice's fit-pool on every
    sample), which only read them; a test that changes a store ingests its own.
    """
    from servelab.analysis.ingest import ingest
    from servelab.samples import RAW_TRACES

    tmp = tmp_path_factory.mktemp("shipped_stores")
    return {name: ingest(RAW_TRACES / folder / file, output=tmp / name, progress=False)
            for name, (folder, file) in SHIPPED_RAW.items()}
