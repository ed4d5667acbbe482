"""Interop with the replay tools (issue 20): documented schemas always; the tools' own loaders,
``aiperf analyze-trace`` and README's AIPerf and guidellm commands (against a stub server on
127.0.0.1) when their virtualenvs exist: skipped, saying so, otherwise, and failed instead when
``CI=true`` and ``SERVELAB_INTEROP_TOOLS`` is set (``.ci/run``'s interop block, which built them).

``pytest -m interop`` runs this folder. Building the venvs:
``python benchmarks/interop.py --install-only`` (pinned requirements, uv when installed).
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

pytestmark = pytest.mark.interop

_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "interop.py"
_spec = importlib.util.spec_from_file_location("servelab_interop_bench", _SCRIPT)
interop = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = interop
_spec.loader.exec_module(interop)


@pytest.fixture(scope="module")
def workload() -> pl.DataFrame:
    w = interop.build_workload(seed=3, duration=60.0, rate=4.0)
    # the ingredients the checks must see: conversations, failures, multimodal counts, prefixes
    assert (w["turn"] > 1).sum() > 10 and w["failed"].sum() > 0
    assert w["image_count"].sum() > 0 and w["prefix_blocks"].is_not_null().sum() > 10
    return w


@pytest.fixture(scope="module")
def files(workload, tmp_path_factory) -> dict[str, Path]:
    return interop.export_all(workload, tmp_path_factory.mktemp("interop"))


def _by(checks):
    return {(c.tool, c.fmt): c for c in checks}


def test_every_export_meets_the_documented_schemas(workload, files):
    checks = _by(interop.schema_checks(files, workload))
    assert set(checks) == {(t, f"{f} (schema)") for t, f in interop.SCHEMAS}
    for key, c in checks.items():
        if not c.expected_failure:
            assert c.ok and c.requests == workload.height, (key, c.detail)
    # the known limits are reported, with their reasons and counts
    vllm_burst = checks[("vllm", "burstgpt (schema)")]
    assert not vllm_burst.ok and vllm_burst.requests == 0
    assert "Model == 'GPT-4'" in vllm_burst.detail and "['Elapsed time', 'Model']" in vllm_burst.detail
    short = int(((workload["input_tokens"] < 2) | (workload["output_tokens"] < 2)).sum())
    assert checks[("sglang", "sglang (schema)")].detail == (
        f"SGLang drops {short} requests with < 2 prompt or output tokens (failures included)")


def _rewrite(path: Path, edit) -> None:
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    path.write_text("\n".join(json.dumps(r) for r in edit(rows)) + "\n")


@pytest.mark.parametrize(("tool", "fmt", "edit", "message"), [
    ("aiperf", "aiperf", lambda rs: [{**r, "timestamp": None} if i == 0 else r for i, r in enumerate(rs)],
     "needs a timestamp on each session's first turn"),
    ("aiperf", "mooncake", lambda rs: [{**r, "text_input": "hi"} if i == 5 else r for i, r in enumerate(rs)],
     "line 6: exactly one of input_length/text_input/messages/payload; got 2"),
    ("aiperf", "mooncake", lambda rs: [{**r, "hash_ids": r["hash_ids"][:-1]} if i == 2 else r for i, r in enumerate(rs)],
     "lengths or hash_ids differ"),
    ("vllm", "vllm", lambda rs: [{"prompt": r["prompt"]} for r in rs], "line 1: needs prompt"),
    ("guidellm", "guidellm", lambda rs: [{**r, "relative_timestamp": r["relative_timestamp"] * 1000} for r in rs],
     "relative_timestamp differs"),
    ("sglang", "mooncake", lambda rs: rs[1:] + rs[:1], "timestamps differ"),
])
def test_schema_checks_catch_a_broken_file(workload, files, tmp_path, tool, fmt, edit, message):
    broken = dict(files)
    broken[fmt] = tmp_path / files[fmt].name
    broken[fmt].write_text(files[fmt].read_text())
    _rewrite(broken[fmt], edit)
    c = _by(interop.schema_checks(broken, workload))[(tool, f"{fmt} (schema)")]
    assert not c.ok and message in c.detail


def _required() -> bool:
    """CI built the venvs (``.ci/run`` sets ``SERVELAB_INTEROP_TOOLS``): absent is a failure there."""
    return os.environ.get("CI") == "true" and bool(os.environ.get("SERVELAB_INTEROP_TOOLS"))


def _env(tool: str) -> interop.ToolEnv:
    env = interop.tool_env(tool, install=False)
    if env.python is None:
        message = f"{tool} virtualenv absent ({env.note})"
        if _required():
            # .ci/run's install writes ready.json beside the venvs: its note says why a build failed
            ready = Path(os.environ["SERVELAB_INTEROP_TOOLS"]) / "ready.json"
            why = json.loads(ready.read_text())["envs"].get(tool, {}) if ready.exists() else "no ready.json"
            pytest.fail(f"{message}; CI=true and SERVELAB_INTEROP_TOOLS is set, so .ci/run should have built it "
                        f"(install: {why})")
        pytest.skip(f"{message}; build it with: python benchmarks/interop.py --install-only")
    return env


def test_aiperf_loaders_keep_every_request_exactly(workload, files, tmp_path):
    checks = _by(interop.aiperf_checks(_env("aiperf"), files, workload, tmp_path / "hf"))
    for fmt in ("mooncake", "aiperf", "burstgpt without failures"):
        c = checks[("aiperf", fmt)]
        assert c.ok and c.loaded, (fmt, c.detail)
    n_ok = int((~workload["failed"] & (workload["output_tokens"] > 0)).sum())
    assert checks[("aiperf", "mooncake")].requests == checks[("aiperf", "aiperf")].requests == workload.height
    assert checks[("aiperf", "burstgpt without failures")].requests == n_ok
    # AIPerf's BurstGPT loader refuses BurstGPT's failures (0 response tokens): reported, expected
    burst = checks[("aiperf", "burstgpt")]
    assert burst.expected_failure and not burst.loaded and "max_tokens" in burst.detail


def test_guidellm_loaders_keep_every_request_exactly(workload, files, tmp_path):
    checks = _by(interop.guidellm_checks(_env("guidellm"), files, workload, tmp_path / "hf"))
    for fmt in ("mooncake", "guidellm"):
        c = checks[("guidellm", fmt)]
        assert c.ok and c.loaded and c.requests == workload.height, (fmt, c.detail)


def test_servelab_lengths_and_prefixes_equal_aiperf_analyze_trace(workload, tmp_path):
    got = interop.analyze_trace_crosscheck(_env("aiperf"), workload, tmp_path, tmp_path / "hf")
    assert got["requests"]["servelab"] == got["requests"]["aiperf"] == int((~workload["failed"]).sum())
    assert len(got["stats"]) == 14 and len(got["prefixes"]) == 9
    for s in got["stats"] + got["prefixes"]:
        assert s["servelab"] == pytest.approx(s["aiperf"], rel=1e-12, abs=1e-9), s
    # the workload reuses prefixes (shared system prompt, conversations): the rates are not trivially 0
    rates = {s["stat"]: s["aiperf"] for s in got["prefixes"]}
    assert 0.05 < rates["cache hit rate (mean per request)"] < 0.95


def test_tool_env_reports_an_absent_venv(tmp_path):
    env = interop.tool_env("aiperf", install=False, root=tmp_path)
    assert env.python is None and env.how == "absent" and str(tmp_path / "interop-venv") in env.note
    # a venv built from other requirements is not reused
    (tmp_path / "interop-venv" / "bin").mkdir(parents=True)
    (tmp_path / "interop-venv" / "bin" / "python").symlink_to(sys.executable)
    (tmp_path / "interop-venv" / "servelab-requirements.sha256").write_text("0" * 64)
    env = interop.tool_env("aiperf", install=False, root=tmp_path)
    assert env.python is None and "built from other requirements" in env.note


def test_a_missing_venv_fails_in_ci_and_skips_elsewhere(tmp_path, monkeypatch):
    monkeypatch.setattr(interop, "VENVS", tmp_path)
    monkeypatch.setenv("SERVELAB_INTEROP_TOOLS", str(tmp_path))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="should have built it .install: no ready.json"):
        _env("aiperf")
    interop.install_tools([], ready_file=tmp_path / "ready.json")  # no tools: an empty, ok ready file
    assert json.loads((tmp_path / "ready.json").read_text()) == {"ok": True, "envs": {}}
    (tmp_path / "ready.json").write_text(json.dumps({"ok": False, "envs": {"aiperf": {"note": "uv: no network"}}}))
    with pytest.raises(pytest.fail.Exception, match="uv: no network"):
        _env("aiperf")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="--install-only"):
        _env("aiperf")


def test_aiperf_fixed_schedule_replay_hits_the_schedule(tmp_path):
    """500 requests at 50 req/s through AIPerf to a stub on 127.0.0.1: all arrive, on time.

    Target (issue 20): p99 absolute error <= 50 ms after the constant start-up lag. On a shared
    2-core machine a stall elsewhere delays a few requests; when the load average exceeds the
    cores the timing is not measurable and the test says so instead of failing.
    """
    import os

    env = _env("aiperf")
    got = interop.replay_dry_run(env, tmp_path / "replay", tmp_path / "hf", n=500)
    assert got["arrived"] == got["scheduled"] == 500
    # a systematic lag shows in the median: well inside the p99 target (measured 0.6-5.6 ms here;
    # a fixed 5 ms bound failed a CI run at 5.64 ms, so the bound is the target's, not the best run's)
    assert got["abs_error_p50_ms"] <= 20.0, got
    if got["abs_error_p99_ms"] > 50.0:
        load, cores = os.getloadavg()[0], os.cpu_count() or 1
        if load > cores:
            pytest.skip(f"p99 error {got['abs_error_p99_ms']:.1f} ms with load average {load:.1f} on {cores} cores")
    assert got["abs_error_p99_ms"] <= 50.0, got


def test_readme_replay_commands_parse_with_their_placeholders_filled(tmp_path):
    w = tmp_path / "w.jsonl"
    cmds = {t: interop.readme_command(t, host="127.0.0.1:9", model="M0", workload=w) for t in interop.README_COMMANDS}
    for tool, cmd in cmds.items():
        text = " ".join(cmd)
        assert str(w) in cmd or f"path={w}" in text, (tool, cmd)
        assert "HOST" not in text and "MODEL" not in text and "workload.jsonl" not in text, (tool, cmd)
    a = cmds["aiperf"]
    assert a[a.index("--url") + 1] == "http://127.0.0.1:9" and a[a.index("--custom-dataset-type") + 1] == "mooncake_trace"
    assert "--fixed-schedule" in a and a[a.index("--tokenizer") + 1] == "M0"
    for tool in ("vllm", "sglang"):
        c = cmds[tool]
        assert c[c.index("--dataset-name") + 1] == "custom" and c[c.index("--dataset-path") + 1] == str(w)
    # output lengths from the file; prompts as written (vLLM's CustomDataset applies the chat template otherwise)
    assert cmds["vllm"][cmds["vllm"].index("--custom-output-len") + 1] == "-1"
    assert "--skip-chat-template" in cmds["vllm"] and "--disable-shuffle" in cmds["vllm"]
    g = cmds["guidellm"]
    assert g[g.index("--profile") + 1] == "kind=replay" and g[g.index("--data") + 1] == f"kind=json_file,path={w}"
    assert cmds["sglang"][cmds["sglang"].index("--base-url") + 1] == "http://127.0.0.1:9"
    readme = tmp_path / "README.md"
    readme.write_text("# nothing\n")
    with pytest.raises(ValueError, match="has no '## Replay with'"):
        interop.readme_command("aiperf", host="h", model="m", workload=w, readme=readme)


def test_readmes_guidellm_command_replays_against_the_stub(tmp_path):
    got = interop.guidellm_replay(_env("guidellm"), tmp_path / "g", tmp_path / "hf", n=20)
    assert got["arrived"] == got["scheduled"] == 20 and got["max_tokens_match"], got
