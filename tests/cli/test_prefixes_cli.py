"""``servelab prefixes`` through the CLI against the library called independently (issue 15)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from servelab.analysis.prefix_reuse import reuse_from_blocks
from servelab.analysis.store import write_store
from servelab.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_linking import build_prefix_trace  # noqa: E402


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    frame, _, _ = build_prefix_trace(300, seed=4, clock_s=0.0, n_clients=25, span_s=7200.0)
    return frame, write_store(frame, tmp_path_factory.mktemp("prefixes") / "s")


def test_cli_writes_what_the_library_computes(trace, tmp_path):
    frame, store = trace
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["prefixes", str(store.path), "-o", str(out), "--block-size", "256",
                                       "--capacities", "256,1,16", "--window", "30m", "--seed", "2", "--figures"])
    assert result.exit_code == 0, result.output
    lists = frame["prefix_blocks"].to_list()
    ref = reuse_from_blocks(np.array([b for x in lists for b in x]), np.array([len(x) for x in lists]),
                            input_tokens=frame["input_tokens"].to_numpy(), timestamps=frame["timestamp"].to_numpy(),
                            clients=frame["client_id"], block_size=256, window_s=1800.0,
                            capacities=np.array([1, 16, 256]))
    assert pl.read_parquet(out / "lru_curve.parquet").equals(ref.lru)
    assert pl.read_parquet(out / "by_window.parquet").equals(ref.by_window)
    assert pl.read_parquet(out / "by_client.parquet").equals(ref.by_client)
    summary = json.loads((out / "prefixes.json").read_text())
    assert summary["applicable"] and summary["block_size"] == 256
    assert summary["token_hit_rate"] == pytest.approx(ref.token_hit_rate, abs=1e-12)
    assert summary["infinite"]["clusters"] == "client" and summary["infinite"]["seed"] == 2
    sources = pl.read_parquet(out / "reuse_sources.parquet")
    assert sources["block_share"].sum() == pytest.approx(ref.block_hit_rate, abs=1e-12)
    assert [f["id"] for f in json.loads((out / "findings.json").read_text())] == ["prefixes.reuse", "prefixes.capacity"]
    assert (out / "prefixes_hit_rate.png").stat().st_size > 0 and (out / "prefixes_sources.png").is_file()
    assert f"{ref.token_hit_rate:.1%} of prompt tokens" in result.output
    # --no-sources: no sources table, the rest unchanged
    out2 = tmp_path / "out2"
    result = CliRunner().invoke(main, ["prefixes", str(store.path), "-o", str(out2), "--no-sources"])
    assert result.exit_code == 0, result.output
    assert not (out2 / "reuse_sources.parquet").exists() and (out2 / "lru_curve.parquet").exists()


def test_cli_on_a_store_without_prefix_blocks(tmp_path):
    store = write_store(pl.DataFrame({"timestamp": [0.0, 1.0, 2.0]}), tmp_path / "bare")
    result = CliRunner().invoke(main, ["prefixes", str(store.path), "-o", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "prefix reuse not measured" in result.output and "[not applicable]" in result.output
    assert json.loads((tmp_path / "o" / "prefixes.json").read_text())["applicable"] is False
