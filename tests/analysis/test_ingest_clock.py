"""Ingest records the logging clock (issue 14): per source and for the store, strict JSON, the same
on both ingest paths, overridable by the user; ``info`` shows it; older stores fall back to detection."""
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from servelab.analysis import ingest, open_store
from servelab.analysis.arrivals import gap_summary
from servelab.analysis.clock import detect_clock
from servelab.analysis.ingest import fast_path
from servelab.cli import main

RAW = Path(__file__).resolve().parents[2] / "raw_traces"


def _no_nan(text: str):
    return json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(f"non-strict JSON: {c}")))


def _mooncake_times_ms(rng, n: int, step: float, mean_gap: float) -> np.ndarray:
    """Poisson arrivals floored to ``step``; every request of a tick stamped alike, ticks +-1.5 ms."""
    q = np.floor(np.cumsum(rng.exponential(mean_gap, n)) / step) * step
    ticks, inverse = np.unique(q, return_inverse=True)
    return np.round((ticks + rng.uniform(-0.0015, 0.0015, ticks.size))[inverse] * 1000).astype(np.int64)


def _write_mooncake(path: Path, ms: np.ndarray) -> Path:
    lines = [json.dumps({"timestamp": int(t), "input_length": 600, "output_length": 20, "hash_ids": [0, 1]})
             for t in ms]
    path.write_text("\n".join(lines) + "\n")
    return path


def _write_burstgpt(path: Path, seconds: np.ndarray) -> Path:
    rows = [f"{t:g},ChatGPT,100,20,120,Conversation log" for t in seconds]
    path.write_text("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture
def clocked_jsonl(tmp_path):
    rng = np.random.default_rng(31)
    return _write_mooncake(tmp_path / "clocked.jsonl", _mooncake_times_ms(rng, 6000, 3.0, 0.3))


def test_three_second_clock_recorded_per_source_and_for_the_store(tmp_path, clocked_jsonl):
    store = ingest(clocked_jsonl, output=tmp_path / "s")
    manifest = _no_nan((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["clock_s"] == pytest.approx(3.0, abs=0.002)
    assert manifest["clock"]["coarse"] and manifest["clock"]["censors"] and manifest["clock"]["given"] == "detected"
    assert manifest["clock"]["precision_s"] == pytest.approx(0.001, rel=1e-6)  # ms integers, but a 3-s clock
    assert manifest["sources"][0]["clock_s"] == pytest.approx(3.0, abs=0.002)
    t = store.to_polars(["timestamp"])["timestamp"].to_numpy()
    assert manifest["clock"]["zero_share"] == pytest.approx(float(np.mean(np.diff(t) == 0)), abs=1e-12)
    assert store.clock_s == manifest["clock_s"] and store.clock.coarse
    assert gap_summary(store)["cv"][0] == pytest.approx(1.0, rel=0.1)  # read as exact: about 3


def test_both_ingest_paths_record_the_same_clock(tmp_path, clocked_jsonl, monkeypatch):
    fast = ingest(clocked_jsonl, output=tmp_path / "fast")
    monkeypatch.setattr(fast_path, "applies", lambda *args: False)
    slow = ingest(clocked_jsonl, output=tmp_path / "slow")
    assert fast.manifest["clock"] == slow.manifest["clock"]
    assert fast.manifest["sources"][0]["clock"] == slow.manifest["sources"][0]["clock"]


def test_integer_seconds_and_two_sources_with_different_clocks(tmp_path):
    rng = np.random.default_rng(32)
    one = _write_burstgpt(tmp_path / "a.csv", np.floor(np.cumsum(rng.exponential(2.0, 3000))))
    start = 10_000.0
    three = _write_burstgpt(tmp_path / "b.csv", start + np.floor(np.cumsum(rng.exponential(2.0, 3000)) / 3) * 3)
    store = ingest([one, three], output=tmp_path / "s")
    first, second = store.manifest["sources"]
    assert first["clock_s"] == 1.0 and not first["clock"]["coarse"] and first["clock"]["censors"]
    assert second["clock_s"] == 3.0
    assert store.manifest["clock_s"] == 1.0  # the store's finest common lattice


def test_user_given_clock_is_recorded_as_such(tmp_path, clocked_jsonl):
    store = ingest(clocked_jsonl, output=tmp_path / "s", clock=2.0)
    entry = store.manifest["clock"]
    assert store.manifest["clock_s"] == 2.0 and entry["given"] == "user"
    assert entry["detected"]["step_s"] == pytest.approx(3.0, abs=0.002)
    assert store.manifest["sources"][0]["clock"]["given"] == "user"
    assert gap_summary(store)["clock_s"][0] == 2.0
    with pytest.raises(ValueError, match="clock must be a positive number of seconds.*got 0"):
        ingest(clocked_jsonl, output=tmp_path / "bad", clock=0)
    assert not (tmp_path / "bad").exists()


def test_store_without_a_recorded_clock_detects_it(tmp_path, clocked_jsonl):
    store = ingest(clocked_jsonl, output=tmp_path / "s")
    path = tmp_path / "s" / "manifest.json"
    manifest = json.loads(path.read_text())
    recorded = manifest.pop("clock")
    manifest.pop("clock_s")
    path.write_text(json.dumps(manifest))
    old = open_store(tmp_path / "s")
    t = store.to_polars(["timestamp"])["timestamp"].to_numpy()
    assert old.clock == detect_clock(t)
    assert old.clock_s == pytest.approx(recorded["step_s"], abs=1e-3)


def test_cli_ingest_clock_and_info(tmp_path, clocked_jsonl):
    runner = CliRunner()
    out = runner.invoke(main, ["ingest", str(clocked_jsonl), "-o", str(tmp_path / "s")])
    assert out.exit_code == 0, out.output
    assert "clock: step 3 s (coarse clock)" in out.output
    info = runner.invoke(main, ["info", str(tmp_path / "s")])
    assert info.exit_code == 0 and "clock:     step 3 s (coarse clock); 9" in info.output
    given = runner.invoke(main, ["ingest", str(clocked_jsonl), "-o", str(tmp_path / "g"), "--clock", "3"])
    assert given.exit_code == 0 and "step 3 s (given by the user) [detected: step 3" in given.output
    bad = runner.invoke(main, ["ingest", str(clocked_jsonl), "-o", str(tmp_path / "b"), "--clock", "-1"])
    assert bad.exit_code == 2 and "clock must be a positive number of seconds" in bad.output


@pytest.mark.parametrize(("source", "coarse", "censors"), [
    ("azure_2023/AzureLLMInferenceTrace_code.csv", False, False),  # microsecond datetimes, gaps ~60 ms
    ("burstgpt/BurstGPT_1_head54.csv", False, False),  # integer seconds, gaps ~30 s: the step is small
    ("mooncake/synthetic_trace.jsonl", False, True),  # ms integers with a few ties: censored within 1 ms
])
def test_shipped_samples(tmp_path, source, coarse, censors):
    store = ingest(RAW / source, output=tmp_path / "s")
    assert store.clock.coarse is coarse and store.clock.censors is censors


def test_ingest_paths_return_frozen_named_outcomes(tmp_path, clocked_jsonl, monkeypatch):
    import dataclasses

    from servelab.analysis.ingest import general_path
    from servelab.analysis.ingest.outcome import PathOutcome, SourceOutcome

    seen = []
    for module in (fast_path, general_path):
        real = module.run

        def spy(*args, _real=real, **kwargs):
            seen.append(_real(*args, **kwargs))
            return seen[-1]

        monkeypatch.setattr(module, "run", spy)
    store = ingest(clocked_jsonl, output=tmp_path / "s")
    outcome = seen[-1]
    assert isinstance(outcome, PathOutcome) and outcome.path == "fast"
    assert outcome.stored == store.n_requests == 6000 and outcome.unsorted == 0
    assert outcome.clock.step_s == store.manifest["clock_s"]
    assert isinstance(outcome.sources[0], SourceOutcome) and outcome.sources[0].stored == 6000
    with pytest.raises(dataclasses.FrozenInstanceError):
        outcome.duplicates = 1
    with pytest.raises(TypeError):
        outcome.sources[0].rejected["x"] = 1  # read-only mapping
    with pytest.raises(ValueError, match="path must be one of"):
        PathOutcome(path="slow", sources={}, columns=(), duplicates=0, span=(None, None))
