"""Interop check (issue 20): servelab's exports, loaded by the replay tools' own code.

1. Tool virtualenvs under ``benchmarks/out/`` or ``$SERVELAB_INTEROP_TOOLS`` (created here from
   the pinned ``interop_tools/requirements-*.txt`` with uv when it is installed, else pip; reused
   while the requirements are unchanged; never servelab's dependencies): AIPerf
   (``interop-venv``) and guidellm (``interop-venv-guidellm``).
   vLLM and SGLang are GPU builds (see ``NOT_INSTALLED``): their files are checked against their
   loaders' documented rules instead (:data:`SCHEMAS`).
2. A workload from ServeGen's ``mm-image`` pool (multimodal counts) with conversations (a
   conversation PMF added to the pool), failures (3 % of requests set to 0 output tokens,
   ``failed``) and prefix blocks (a 2-block system prompt shared by half of the clients'
   long prompts, conversation-derived ids elsewhere), exported in every format.
3. Each file loaded by the tool's own loader classes in its venv (offline; a byte-level
   tokenizer built here stands in for a hub one): AIPerf ``MooncakeTraceDatasetLoader`` (Mooncake
   and AIPerf multi-turn files) and ``BurstGPTTraceDatasetLoader`` (``load_dataset`` then
   ``convert_to_conversations``), guidellm's ``mooncake`` trace reader and its JSON file reader +
   column mapper. Request counts, lengths, timestamps / delays, sessions and hash_ids are
   compared exactly with the workload; prompts the tools synthesize are counted in tokens.
4. Every format is also checked against its documented schema (no tool needed).
5. ``servelab lengths`` and ``servelab prefixes`` quantities against ``aiperf analyze-trace`` on the
   same Mooncake file (where they define the same quantity; see :func:`analyze_trace_crosscheck`).
6. README's "Replay with" commands: AIPerf's fixed-schedule replay (timing measured) and
   guidellm's replay profile, each run as README writes it against a stub server on 127.0.0.1.

Prints a table (tool, format, loaded, requests, compared, result) and writes
``benchmarks/out/interop/report.json``. Exit status 1 when an expected check fails.

Usage: ``python benchmarks/interop.py [--no-install] [--tools aiperf,guidellm] [--seed 20]``;
``--install-only [--ready-file PATH]`` builds the venvs and stops (what ``.ci/run`` does in the
background while the main suite runs).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
HELPERS = Path(__file__).resolve().parent / "interop_tools"

__all__ = ["ToolEnv", "Check", "TOOLS", "VENVS", "UV_VERSION", "NOT_INSTALLED", "SCHEMAS", "README_COMMANDS",
           "install_tools", "tool_env", "offline_env", "build_workload", "export_all", "schema_checks", "aiperf_checks",
           "guidellm_checks", "analyze_trace_crosscheck", "readme_command", "replay_workload", "replay_dry_run",
           "guidellm_replay", "main"]


@dataclass(frozen=True)
class ToolSpec:
    requirements: str
    venv: str
    module: str
    warm: tuple[str, ...] = ()


#: tools installed here: pinned requirements file (in interop_tools/), venv folder, module to import
TOOLS = {
    "aiperf": ToolSpec("requirements-aiperf.txt", "interop-venv", "aiperf", (
        "aiperf.cli", "aiperf.cli_commands.analyze_trace", "aiperf.common.tokenizer", "aiperf.dataset.generator.prompt",
        "aiperf.dataset.loader.burst_gpt", "aiperf.dataset.loader.mooncake_trace")),
    "guidellm": ToolSpec("requirements-guidellm.txt", "interop-venv-guidellm", "guidellm", (
        "transformers", "guidellm.data.deserializers.file", "guidellm.data.deserializers.trace_common",
        "guidellm.data.preprocessors.mappers", "guidellm.schemas.data.deserializers.trace_mooncake")),
}

#: where the tool venvs live: ``$SERVELAB_INTEROP_TOOLS`` when set (CI builds them there), else
#: ``benchmarks/out``
VENVS = Path(os.environ["SERVELAB_INTEROP_TOOLS"]) if os.environ.get("SERVELAB_INTEROP_TOOLS") else OUT

#: the uv release ``.ci/run`` installs to build the venvs (tests/test_ci_promises.py checks they agree)
UV_VERSION = "0.13.9"

#: tools not installed here, and why (measured on this 2-core CPU machine, see the report)
NOT_INSTALLED = {
    "vllm": "not installable here in 10 min: `pip install vllm` was still installing CUDA torch at 624 s "
            "(5.7 GB); vllm bench serve needs the vllm package itself. Checked against its documented "
            "custom / burstgpt loaders",
    "sglang": "not installable here in 10 min: `pip install sglang` timed out at 613 s (6.0 GB: CUDA torch, "
              "sgl-kernel); bench_serving lives in the sglang package. Checked against its documented "
              "custom / mooncake loaders",
    "inference-perf": "every release on the package registry (0.1.1-0.7.0) requires Python >= 3.12 (`pip download "
                      "inference-perf==0.7.0` on 3.11.7: 'Ignored the following versions that require a different "
                      "python version'); this machine's python3 is 3.11.7. A pyenv 3.12.1 exists here but is not "
                      "known to be on every machine: not attempted",
}

#: files per format (JSONL formats end in .jsonl: guidellm and vLLM read only that suffix)
SUFFIX = {"parquet": ".parquet", "csv": ".csv", "burstgpt": ".csv"}


@dataclass(frozen=True)
class ToolEnv:
    """A tool's virtualenv: its python (None when unavailable), how it was obtained, seconds."""

    tool: str
    python: str | None
    how: str
    seconds: float
    note: str = ""


@dataclass(frozen=True)
class Check:
    """One row of the interop table."""

    tool: str
    fmt: str
    loaded: bool
    requests: int
    compared: str
    ok: bool
    detail: str = ""
    expected_failure: bool = False


def offline_env(home: Path) -> dict:
    """Environment for a tool subprocess: no hub access, tokenizers from ``home``, bytecode kept."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE")}
    env.update(HF_HOME=str(home), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_HUB_DISABLE_TELEMETRY="1", DO_NOT_TRACK="1", AIPERF_TELEMETRY="0", TOKENIZERS_PARALLELISM="false")
    return env


def _uv() -> str | None:
    """The uv binary beside this interpreter (``pip install uv``), else on PATH, else None."""
    here = Path(sys.executable).parent / "uv"
    return str(here) if here.exists() else shutil.which("uv")


#: how a venv is built, part of its stamp: a change here rebuilds the venvs. PYTHONDONTWRITEBYTECODE
#: is set on this machine, so every tool run recompiled its imports (12 s of a 69 s AIPerf load);
#: the tool subprocesses may write bytecode (:func:`offline_env`) and the install ends by importing
#: the modules the checks use (``ToolSpec.warm``), which compiles those alone (uv's
#: --compile-bytecode compiles all 14,690 files: 150 s of CPU for both venvs instead of 10 s)
_BUILD = "warm-imports"


def _stamp(spec: ToolSpec) -> str:
    return hashlib.sha256((HELPERS / spec.requirements).read_bytes() + _BUILD.encode()).hexdigest()


def tool_env(tool: str, *, install: bool, root: Path | None = None, timeout_s: float = 600.0) -> ToolEnv:
    """The tool's venv under ``root`` (default :data:`VENVS`).

    Reused when it imports the tool and was built from the current requirements file (its
    sha256 is kept in the venv); else, if ``install``, created and filled from the pinned
    requirements with uv (``interop_tools/uv_pip.py`` maps pip's configuration, so torch is
    the CPU build on disk), or with pip when no uv is found (several minutes instead of
    well under one).
    """
    spec = TOOLS[tool]
    venv = (VENVS if root is None else root) / spec.venv
    python, stamp = venv / "bin" / "python", venv / "servelab-requirements.sha256"
    t0 = time.perf_counter()
    if python.exists() and stamp.exists() and stamp.read_text() == _stamp(spec) and subprocess.run(
            [str(python), "-c", f"import {spec.module}"], capture_output=True).returncode == 0:
        return ToolEnv(tool, str(python), "reused", time.perf_counter() - t0)
    if not install:
        why = "built from other requirements" if python.exists() and stamp.exists() else "not built"
        return ToolEnv(tool, None, "absent", 0.0, f"{venv} {why} (run benchmarks/interop.py --install-only)")
    uv, req = _uv(), HELPERS / spec.requirements
    try:
        if uv:
            subprocess.run([sys.executable, "-m", "venv", "--clear", "--without-pip", str(venv)], check=True,
                           capture_output=True)
            run = subprocess.run([sys.executable, str(HELPERS / "uv_pip.py"), uv, str(python), str(req)],
                                 capture_output=True, text=True, timeout=timeout_s)
        else:
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, capture_output=True)
            run = subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(req)], capture_output=True,
                                 text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return ToolEnv(tool, None, "failed", time.perf_counter() - t0, f"install of {req.name} > {timeout_s:.0f} s")
    how = "installed with uv" if uv else "installed with pip (no uv found)"
    if run.returncode != 0:
        tail = [ln for ln in run.stderr.splitlines() if ln.strip() and not ln.startswith("WARNING: Location")][-3:]
        return ToolEnv(tool, None, "failed", time.perf_counter() - t0, f"{how}: " + " | ".join(tail))
    warm = subprocess.run([str(python), "-c", "import " + ", ".join((spec.module, *spec.warm))], capture_output=True,
                          text=True, env=offline_env(venv / "hf-unused"), timeout=timeout_s)
    if warm.returncode != 0:
        return ToolEnv(tool, None, "failed", time.perf_counter() - t0,
                       f"{how}, then importing {spec.warm} failed: {warm.stderr.strip().splitlines()[-1:]}")
    stamp.write_text(_stamp(spec))
    return ToolEnv(tool, str(python), how, time.perf_counter() - t0)


def install_tools(tools: list[str], *, root: Path | None = None, ready_file: Path | None = None) -> dict[str, ToolEnv]:
    """Build every tool's venv; write ``ready_file`` (JSON: ``ok`` and each tool's :class:`ToolEnv`) last.

    The ready file is written whether or not the installs worked, so a waiting caller
    (``.ci/run``) learns the outcome; ``ok`` is true only when every venv imports its tool.
    """
    envs = {}
    for tool in tools:
        envs[tool] = tool_env(tool, install=True, root=root)
        env = envs[tool]
        print(f"{tool}: venv {env.how} in {env.seconds:.1f} s {env.note}".rstrip(), flush=True)
    if ready_file is not None:
        ready_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = ready_file.with_name(ready_file.name + ".tmp")
        tmp.write_text(json.dumps({"ok": all(e.python for e in envs.values()),
                                   "envs": {k: asdict(v) for k, v in envs.items()}}, indent=2))
        tmp.replace(ready_file)
    return envs


# ---------------------------------------------------------------------------------------------
# the workload and its files
# ---------------------------------------------------------------------------------------------

def build_workload(*, seed: int = 20, duration: float = 300.0, rate: float = 4.0) -> pl.DataFrame:
    """The interop workload (see the module docstring); same seed, same frame."""
    from servelab.generator import read_servegen
    from servelab.generator.exports import mooncake_hash_ids
    from servelab.generator.generate import generate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pool = read_servegen(ROOT / "raw_traces" / "servegen" / "mm-image")
    conv = pl.DataFrame({"client_id": [None] * 6, "quantity": ["turns"] * 3 + ["itt_s"] * 3,
                         "value": [1.0, 2.0, 4.0, 5.0, 20.0, 60.0], "probability": [0.5, 0.3, 0.2, 0.3, 0.4, 0.3]},
                        schema_overrides={"client_id": pl.String})
    w = generate(pool.replace(conversation_pmfs=conv), rate, duration, seed=seed)
    rng = np.random.default_rng(seed)
    failed = rng.random(w.height) < 0.03
    w = w.with_columns(pl.when(pl.Series(failed)).then(0).otherwise(pl.col("output_tokens")).alias("output_tokens"),
                       pl.Series("failed", failed))
    clients = sorted(w["client_id"].unique().to_list())
    shared = pl.col("client_id").is_in(clients[::2]) & (pl.col("input_tokens") >= 1024)
    system = 10**9
    blocks = mooncake_hash_ids(w)
    return w.with_columns(
        pl.when(shared).then(pl.concat_list(pl.lit([system, system + 1], dtype=pl.List(pl.Int64)),
                                            blocks.list.slice(2)))
        .otherwise(None).alias("prefix_blocks"))


def export_all(frame: pl.DataFrame, folder: Path) -> dict[str, Path]:
    """Every export format of ``frame`` in ``folder``; format -> path."""
    from servelab.generator.exports import EXPORT_FORMATS, export_workload

    folder.mkdir(parents=True, exist_ok=True)
    return {f: export_workload(frame, folder / f"workload_{f}{SUFFIX.get(f, '.jsonl')}", fmt=f) for f in EXPORT_FORMATS}


def _expected(frame: pl.DataFrame) -> pl.DataFrame:
    """The workload as the exports write it: time order, hash_ids, ms timestamps."""
    from servelab.generator.exports import workload_hash_ids

    from servelab.generator.export_tools import failed_mask

    w = frame.sort("timestamp", maintain_order=True)
    # Mooncake and AIPerf files write a failure as a 1-token request (AIPerf needs max_tokens >= 1)
    written = pl.when(failed_mask(w)).then(1).otherwise(pl.col("output_tokens")).alias("output_written")
    return w.with_columns(workload_hash_ids(w), (pl.col("timestamp") * 1000).round().cast(pl.Int64).alias("ms"),
                          written)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------------
# documented schemas (no tool needed)
# ---------------------------------------------------------------------------------------------

def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _mooncake_trace_row(r: dict) -> str | None:
    """AIPerf ``MooncakeTrace`` (aiperf/dataset/loader/models.py, 0.13): field types and validators."""
    types = {"input_length": _is_int, "output_length": _is_int, "timestamp": _num, "delay": _num,
             "session_id": lambda x: isinstance(x, str), "text_input": lambda x: isinstance(x, str),
             "hash_ids": lambda x: isinstance(x, list) and all(_is_int(h) for h in x)}
    for k, ok in types.items():
        if r.get(k) is not None and not ok(r[k]):
            return f"{k}={r[k]!r} has the wrong type"
    modes = sum(r.get(k) is not None for k in ("input_length", "text_input", "messages", "payload"))
    if modes != 1:
        return f"exactly one of input_length/text_input/messages/payload; got {modes}"
    return None


def _schema_aiperf(path: Path, exp: pl.DataFrame, fmt: str) -> tuple[int, str | None]:
    rows = _jsonl(path)
    for i, r in enumerate(rows):
        if (err := _mooncake_trace_row(r)) is not None:
            return len(rows), f"line {i + 1}: {err}"
    sessions: dict = {}
    for r in rows:
        key = r.get("session_id") or object()
        if key not in sessions and r.get("timestamp") is None:
            return len(rows), "fixed-schedule replay needs a timestamp on each session's first turn"
        sessions.setdefault(key, []).append(r)
    if fmt == "aiperf" and [bool(r.get("failed")) for r in rows] != (_file_order(exp, fmt)["output_written"]
                                                                     != _file_order(exp, fmt)["output_tokens"]).to_list():
        return len(rows), "failed flags differ"
    got = pl.DataFrame({"input_length": [r["input_length"] for r in rows],
                        "output_length": [r["output_length"] for r in rows],
                        "hash_ids": [r["hash_ids"] for r in rows]}, schema_overrides={"hash_ids": pl.List(pl.Int64)})
    order = _file_order(exp, fmt)
    if not (got["input_length"].to_list() == order["input_tokens"].to_list()
            and got["output_length"].to_list() == order["output_written"].to_list()
            and got["hash_ids"].to_list() == order["hash_ids"].to_list()):
        return len(rows), "lengths or hash_ids differ from the workload"
    return len(rows), None


def _file_order(exp: pl.DataFrame, fmt: str) -> pl.DataFrame:
    """The expected rows in the order a format writes them (aiperf: grouped by session)."""
    if fmt != "aiperf":
        return exp
    start = (pl.col("timestamp") * 1000).round(3).min().over("conversation_id")
    return exp.with_row_index("_r").sort([start, "conversation_id", "_r"]).drop("_r")


def _schema_burstgpt(path: Path, exp: pl.DataFrame, *, vllm: bool) -> tuple[int, str | None]:
    table = pl.read_csv(path, infer_schema_length=0)
    need = ["Timestamp", "Request tokens", "Response tokens"]
    if missing := [c for c in need if c not in table.columns]:
        return table.height, f"missing columns {missing}"
    if vllm:
        # vLLM BurstGPTDataset: rows with Model == "GPT-4" and Response tokens > 0, then
        # columns by POSITION: [2] input, [3] output (the original 6-column BurstGPT release)
        kept = table.filter((pl.col("Model") == "GPT-4") & (pl.col("Response tokens").cast(pl.Int64) > 0))
        pos = table.columns[2:4]
        problems = []
        if kept.height < table.height:
            problems.append(f"keeps {kept.height} of {table.height} rows (Model == 'GPT-4', Response tokens > 0)")
        if pos != ["Request tokens", "Response tokens"]:
            problems.append(f"reads columns 2, 3 = {pos} as input / output lengths")
        return kept.height, "; ".join(problems) or None
    ts = table["Timestamp"].cast(pl.Float64).to_numpy()
    if not (np.array_equal(table["Request tokens"].cast(pl.Int64).to_numpy(), exp["input_tokens"].to_numpy())
            and np.array_equal(table["Response tokens"].cast(pl.Int64).to_numpy(), exp["output_tokens"].to_numpy())
            and np.array_equal(ts, exp["timestamp"].to_numpy())):
        return table.height, "timestamps or lengths differ"
    return table.height, None


def _prompt_check(prompts: list[str], exp: pl.DataFrame) -> str | None:
    words = [len(p.split()) for p in prompts]
    if words != exp["input_tokens"].to_list():
        return "prompt words differ from input_tokens"
    return None


def _schema_vllm(path: Path, exp: pl.DataFrame) -> tuple[int, str | None]:
    # vLLM CustomDataset: a .jsonl file, each line {"prompt": str}; "output_tokens" (int) used
    # with --custom-output-len -1
    if path.suffix != ".jsonl":
        return 0, "vLLM reads custom datasets from .jsonl files only"
    rows = _jsonl(path)
    if bad := [i for i, r in enumerate(rows) if not isinstance(r.get("prompt"), str) or not _is_int(r.get("output_tokens"))]:
        return len(rows), f"line {bad[0] + 1}: needs prompt (str) and output_tokens (int)"
    if [r["output_tokens"] for r in rows] != exp["output_tokens"].to_list():
        return len(rows), "output_tokens differ"
    return len(rows), _prompt_check([r["prompt"] for r in rows], exp)


def _schema_sglang_custom(path: Path, exp: pl.DataFrame) -> tuple[int, str | None]:
    # SGLang sample_custom_requests: "conversations" (or "conversation"), >= 2 turns, text in
    # "content" (or "value"); output length = tokens of turn 2; drops prompt/output < 2 tokens
    rows = _jsonl(path)
    convs = [r.get("conversations", r.get("conversation", [])) for r in rows]
    if any(len(c) < 2 or not all(isinstance(m.get("content", m.get("value")), str) for m in c[:2]) for c in convs):
        return len(rows), "each line needs conversations with 2 turns of text content"
    out = [len(c[1]["content"].split()) for c in convs]
    if out != exp["output_tokens"].to_list():
        return len(rows), "completion words differ from output_tokens"
    err = _prompt_check([c[0]["content"] for c in convs], exp)
    short = int(((exp["input_tokens"] < 2) | (exp["output_tokens"] < 2)).sum())
    return len(rows), err or (f"SGLang drops {short} requests with < 2 prompt or output tokens (failures included)"
                              if short else None)


def _schema_sglang_mooncake(path: Path, exp: pl.DataFrame) -> tuple[int, str | None]:
    # SGLang MooncakeDataset: json lines; replay reads timestamp (ms), hash_ids, output_length and
    # builds each prompt from 128 words per hash id (input_length is not read)
    rows = _jsonl(path)
    if any(not (_num(r.get("timestamp")) and isinstance(r.get("hash_ids"), list)) for r in rows):
        return len(rows), "needs timestamp and hash_ids"
    if [r["timestamp"] for r in rows] != exp["ms"].to_list():
        return len(rows), "timestamps differ"
    return len(rows), None


def _schema_guidellm(path: Path, exp: pl.DataFrame) -> tuple[int, str | None]:
    # guidellm GenerativeColumnMapper defaults: prompt -> text, prompt_tokens_count,
    # output_tokens_count, relative_timestamp (s) -> the replay profile's schedule
    rows = _jsonl(path)
    need = {"prompt", "prompt_tokens_count", "output_tokens_count", "relative_timestamp"}
    if any(not need <= set(r) for r in rows):
        return len(rows), f"each line needs {sorted(need)}"
    t = exp["timestamp"].to_numpy()
    if not np.allclose([r["relative_timestamp"] for r in rows], t - t[0], rtol=0, atol=1e-9):
        return len(rows), "relative_timestamp differs"
    if [r["prompt_tokens_count"] for r in rows] != exp["input_tokens"].to_list():
        return len(rows), "prompt_tokens_count differs"
    return len(rows), _prompt_check([r["prompt"] for r in rows], exp)


#: (tool, format) -> (what is compared, check(path, expected) -> (requests, error or None), expected to fail)
SCHEMAS = {
    ("aiperf", "mooncake"): ("MooncakeTrace fields; lengths, hash_ids", lambda p, e: _schema_aiperf(p, e, "mooncake"), False),
    ("aiperf", "aiperf"): ("MooncakeTrace fields; first-turn timestamps; lengths, hash_ids",
                           lambda p, e: _schema_aiperf(p, e, "aiperf"), False),
    ("aiperf", "burstgpt"): ("Timestamp, Request/Response tokens", lambda p, e: _schema_burstgpt(p, e, vllm=False), False),
    ("vllm", "vllm"): ("prompt, output_tokens; prompt words", _schema_vllm, False),
    ("vllm", "burstgpt"): ("BurstGPTDataset row filter and column positions",
                           lambda p, e: _schema_burstgpt(p, e, vllm=True), True),
    ("sglang", "sglang"): ("conversations; prompt and completion words", _schema_sglang_custom, True),
    ("sglang", "mooncake"): ("timestamp (ms), hash_ids", _schema_sglang_mooncake, False),
    ("guidellm", "guidellm"): ("mapped columns; relative_timestamp; prompt words", _schema_guidellm, False),
}


def schema_checks(paths: dict[str, Path], frame: pl.DataFrame) -> list[Check]:
    """Every (tool, format) pair of :data:`SCHEMAS` checked on the exported files."""
    exp = _expected(frame)
    rows = []
    for (tool, fmt), (what, check, expected_failure) in SCHEMAS.items():
        try:
            n, err = check(paths[fmt], exp)
        except Exception as e:  # a file the schema cannot even read is a failed check, reported
            n, err = 0, f"{type(e).__name__}: {e}"
        rows.append(Check(tool, f"{fmt} (schema)", err is None or expected_failure, n, what,
                          err is None, err or "", expected_failure))
    return rows


# ---------------------------------------------------------------------------------------------
# the tools' own loaders
# ---------------------------------------------------------------------------------------------

def _tokenizer(env: ToolEnv, home: Path, name: str = "servelab/bytes") -> Path:
    run = subprocess.run([env.python, str(HELPERS / "make_tokenizer.py"), str(home), name],
                         capture_output=True, text=True, check=True, env=offline_env(home))
    return Path(run.stdout.strip())


def _run_helper(env: ToolEnv, home: Path, script: str, args: list[str], timeout_s: float = 600.0) -> dict:
    run = subprocess.run([env.python, str(HELPERS / script), *args], capture_output=True, text=True,
                         env=offline_env(home), timeout=timeout_s)
    if run.returncode != 0:
        raise RuntimeError(f"{script} failed: {run.stderr.strip().splitlines()[-1] if run.stderr.strip() else run.returncode}")
    return json.loads(run.stdout)


def aiperf_checks(env: ToolEnv, paths: dict[str, Path], frame: pl.DataFrame, home: Path) -> list[Check]:
    """Load the mooncake, aiperf and burstgpt files with AIPerf's loaders and compare exactly."""
    from servelab.generator.export_tools import failed_mask
    from servelab.generator.exports import export_workload

    _tokenizer(env, home)
    # BurstGPT marks a failure by 0 response tokens, which AIPerf's loader refuses: the same
    # workload without its failures shows the loader otherwise keeps everything
    ok_frame = frame.filter(~failed_mask(frame))
    no_fail = export_workload(ok_frame, paths["burstgpt"].with_name("workload_burstgpt_nofailures.csv"), fmt="burstgpt")
    jobs = {f: f"{f}:{paths[f]}" for f in ("mooncake", "aiperf", "burstgpt")}
    jobs["burstgpt without failures"] = f"burstgpt:{no_fail}"
    result = _run_helper(env, home, "aiperf_load.py", ["servelab/bytes", *jobs.values()])
    checks = []
    for label, job in jobs.items():
        fmt = label.split()[0]
        exp = _expected(ok_frame if label != fmt else frame)
        got = result["files"][job]
        if "error" in got:
            known = fmt == "burstgpt" and "max_tokens" in got["error"]
            why = ("AIPerf's BurstGPT loader refuses Response tokens = 0, BurstGPT's own failure convention "
                   "(an upstream limit; replay failures from the mooncake or aiperf export): " if known else "")
            checks.append(Check("aiperf", label, False, 0, f"{got['loader']}", False, why + got["error"], known))
            continue
        turns = [(s, t) for s in got["sessions"] for t in s["turns"]]
        problems = []
        if fmt == "aiperf":
            order = _file_order(exp, "aiperf")
            n_sessions = order["conversation_id"].n_unique()
            if len(got["sessions"]) != n_sessions:
                problems.append(f"{len(got['sessions'])} sessions, expected {n_sessions}")
            # sessions in the workload: AIPerf groups the file's rows by session_id
            by_session = [[t["input_length"] for t in s["turns"]] for s in got["sessions"]]
            want = (order.group_by("conversation_id", maintain_order=True).agg("input_tokens")["input_tokens"]
                    .to_list())
            if by_session != want:
                problems.append("session grouping or turn order differs")
            first = order.select(pl.int_range(pl.len()).over("conversation_id") == 0)["literal"].to_numpy()
            t = order["timestamp"].to_numpy()
            prev = order.select(pl.col("timestamp").shift(1).over("conversation_id"))["timestamp"].to_numpy()
            ts = np.array([x["timestamp"] if x["timestamp"] is not None else np.nan for _, x in turns], float)
            dl = np.array([x["delay"] if x["delay"] is not None else np.nan for _, x in turns], float)
            if not (np.array_equal(np.isnan(ts), ~first) and np.array_equal(np.isnan(dl), first)
                    and np.array_equal(ts[first], np.round(t[first] * 1000, 3))
                    and np.array_equal(dl[~first], np.round((t - prev)[~first] * 1000, 3))):
                problems.append("first-turn timestamps or delays differ")
            compared = "sessions, turn order, timestamps (ms) + delays (ms), lengths, hash_ids, prompt tokens"
        else:
            order = exp
            if len(got["sessions"]) != order.height or any(len(s["turns"]) != 1 for s in got["sessions"]):
                problems.append("expected one session per request")
            ts = np.array([x["timestamp"] for _, x in turns], float)
            want_ts = order["ms"].to_numpy() if fmt == "mooncake" else order["timestamp"].to_numpy() * 1000.0
            if not np.array_equal(ts, want_ts):
                problems.append(f"timestamps differ (max {np.max(np.abs(ts - want_ts)):.3g} ms)")
            compared = ("requests, timestamps (ms), lengths, hash_ids, failures as 1-token requests, prompt tokens"
                        if fmt == "mooncake" else "requests, timestamps (ms), lengths, prompt tokens")
        if len(turns) != order.height:
            problems.append(f"{len(turns)} requests, expected {order.height}")
        else:
            il = [x["input_length"] for _, x in turns]
            ol = [x["output_length"] for _, x in turns]
            want_ol = order["output_tokens" if fmt == "burstgpt" else "output_written"].to_list()
            if il != order["input_tokens"].to_list() or ol != want_ol:
                problems.append("lengths differ")
            if [x["max_tokens"] for _, x in turns] != ol:
                problems.append("max_tokens differ from output_length")
            if [x["prompt_tokens"] for _, x in turns] != il:
                problems.append("synthesized prompt tokens differ from input_length")
            if fmt != "burstgpt" and [x["hash_ids"] for _, x in turns] != order["hash_ids"].to_list():
                problems.append("hash_ids differ")
        checks.append(Check("aiperf", label, True, len(turns), f"{got['loader']}: {compared}", not problems,
                            "; ".join(problems)))
    return checks


def guidellm_checks(env: ToolEnv, paths: dict[str, Path], frame: pl.DataFrame, home: Path) -> list[Check]:
    """Load the mooncake and guidellm files with guidellm's data classes and compare."""
    tok = _tokenizer(env, home)
    jobs = {f: f"{f}:{paths[f]}" for f in ("mooncake", "guidellm")}
    result = _run_helper(env, home, "guidellm_load.py", [str(tok), *jobs.values()])
    exp = _expected(frame)
    checks = []
    for fmt, job in jobs.items():
        got = result["files"][job]
        rows = got["rows"]
        problems = []
        if len(rows) != exp.height:
            problems.append(f"{len(rows)} requests, expected {exp.height}")
        else:
            want_ol = exp["output_written" if fmt == "mooncake" else "output_tokens"].to_list()
            if [r["input_length"] for r in rows] != exp["input_tokens"].to_list() or \
                    [r["output_length"] for r in rows] != want_ol:
                problems.append("lengths differ")
            rel = np.array([r["relative_timestamp"] for r in rows], float)
            if fmt == "mooncake":
                want = (exp["ms"] - exp["ms"][0]).to_numpy().astype(float)
                ok_t = np.array_equal(rel, want)
                if [r["prompt_tokens"] for r in rows] != exp["input_tokens"].to_list():
                    problems.append("synthesized prompt tokens differ from input_length")
            else:
                t = exp["timestamp"].to_numpy()
                ok_t = np.allclose(rel, t - t[0], rtol=0, atol=1e-9)
                if [r["prompt_words"] for r in rows] != exp["input_tokens"].to_list():
                    problems.append("prompt words differ")
            if not ok_t:
                problems.append("relative timestamps differ")
        note = " (guidellm keeps Mooncake ms as its seconds: replay with time_scale 0.001)" if fmt == "mooncake" else ""
        checks.append(Check("guidellm", fmt, True, len(rows),
                            f"{got['loader']}: requests, lengths, relative timestamps, prompt tokens{note}",
                            not problems, "; ".join(problems)))
    return checks


# ---------------------------------------------------------------------------------------------
# servelab lengths vs aiperf analyze-trace
# ---------------------------------------------------------------------------------------------

def analyze_trace_crosscheck(env: ToolEnv, frame: pl.DataFrame, folder: Path, home: Path) -> dict:
    """``servelab lengths`` and ``servelab prefixes`` numbers vs ``aiperf analyze-trace`` on one Mooncake file.

    Lengths: ``length_quantiles`` of a store ingested from the file vs AIPerf's ``isl_stats`` /
    ``osl_stats``. servelab's length statistics leave failed requests out (0 output tokens);
    AIPerf counts every line, so the file holds the workload without its failures (the same
    quantity).

    Prefixes (block size 512, an infinite cache, in file order): servelab's ``prefix_reuse`` of
    the same store gives the never-seen blocks (``n_cold``; AIPerf: ``unique_prefixes``, its
    distinct block prefixes). AIPerf's hit rate is per request (blocks before the first unseen
    id, over the request's blocks; ``cache_hit_rate`` is their mean), servelab's
    ``block_hit_rate`` pools blocks: the per-request rates are taken from servelab's
    ``infinite_cache_hits`` on the store's blocks and summarized as AIPerf does (numpy mean,
    population std, percentiles). servelab's pooled ``block_hit_rate`` is printed beside them,
    not compared (a different quantity).
    """
    from servelab.analysis.ingest import ingest
    from servelab.analysis.lengths import length_quantiles
    from servelab.analysis.prefix_reuse import infinite_cache_hits, prefix_reuse, read_blocks
    from servelab.generator.exports import export_workload

    ok_rows = frame.filter(~pl.col("failed"))
    path = export_workload(ok_rows, folder / "lengths_mooncake.jsonl", fmt="mooncake")
    store = ingest(path, fmt="mooncake", output=folder / "lengths_store", overwrite=True)
    ours = length_quantiles(store, columns=("input_tokens", "output_tokens"), quantiles=(0.25, 0.5, 0.75))
    report = folder / "analyze_trace.json"
    aiperf = Path(env.python).parent / "aiperf"
    run = subprocess.run([str(aiperf), "analyze-trace", str(path), "--block-size", "512", "--output-file", str(report)],
                         capture_output=True, text=True, env=offline_env(home), timeout=300)
    if run.returncode != 0:
        raise RuntimeError(f"aiperf analyze-trace failed: {run.stderr[-500:]}")
    theirs = json.loads(report.read_text())
    out = {"requests": {"servelab": int(ours["n"][0]), "aiperf": theirs["total_requests"]}, "stats": []}
    for col, key in (("input_tokens", "isl_stats"), ("output_tokens", "osl_stats")):
        row = ours.filter(pl.col("column") == col).row(0, named=True)
        for ours_name, their_name in (("mean", "mean"), ("min", "min"), ("p25", "p25"), ("p50", "median"),
                                      ("p75", "p75"), ("max", "max"), ("std", "std_dev")):
            out["stats"].append({"column": col, "stat": ours_name, "servelab": row[ours_name],
                                 "aiperf": theirs[key][their_name]})
    reuse = prefix_reuse(store, block_size=512)
    blocks = read_blocks(store)
    hits = infinite_cache_hits(blocks.values, blocks.lengths)
    has = blocks.lengths > 0
    starts = np.concatenate([[0], np.cumsum(blocks.lengths)[:-1]])[has]
    rate = np.add.reduceat(hits.astype(np.int64), starts) / blocks.lengths[has]
    hr = theirs["hit_rate_stats"]
    out["prefixes"] = [
        {"stat": "distinct block prefixes (n_cold)", "servelab": reuse.n_cold, "aiperf": theirs["unique_prefixes"]},
        {"stat": "cache hit rate (mean per request)", "servelab": float(np.mean(rate)), "aiperf": theirs["cache_hit_rate"]},
        *({"stat": f"per-request hit rate {name}", "servelab": float(f(rate)), "aiperf": hr[key]} for name, key, f in (
            ("mean", "mean", np.mean), ("std", "std_dev", np.std), ("min", "min", np.min),
            ("p25", "p25", lambda x: np.percentile(x, 25)), ("p50", "median", np.median),
            ("p75", "p75", lambda x: np.percentile(x, 75)), ("max", "max", np.max)))]
    out["block_hit_rate_pooled"] = reuse.block_hit_rate
    return out


# ---------------------------------------------------------------------------------------------
# README's "Replay with" commands
# ---------------------------------------------------------------------------------------------

#: how each tool's command starts in README's "Replay with" block
README_COMMANDS = {"aiperf": ("aiperf", "profile"), "vllm": ("vllm", "bench", "serve"),
                   "sglang": ("python", "-m", "sglang.bench_serving"), "guidellm": ("guidellm", "run")}


def readme_command(tool: str, *, host: str, model: str, workload: Path, readme: Path = ROOT / "README.md") -> list[str]:
    """``tool``'s command from README's "Replay with" block, as an argv with its placeholders filled.

    ``HOST:8000`` becomes ``host`` (``127.0.0.1:PORT``), ``MODEL`` ``model`` and
    ``workload.jsonl`` ``workload``; the first word stays the bare tool name (the caller
    puts the venv's path there). Raises ``ValueError`` when the block or the command is missing.
    """
    import re
    import shlex

    text = readme.read_text()
    m = re.search(r"^## Replay with .*?^```bash\n(.*?)^```", text, flags=re.M | re.S)
    if not m:
        raise ValueError(f"README has no '## Replay with' section with a bash block; got {readme!r}")
    lines = re.sub(r"\\\n\s*", " ", m.group(1)).splitlines()
    head = README_COMMANDS[tool]
    for line in lines:
        words = shlex.split(line, comments=True)
        if tuple(words[:len(head)]) == head:
            fill = {"HOST:8000": host, "MODEL": model, "workload.jsonl": str(workload)}
            return [re.sub(r"HOST:8000|MODEL|workload\.jsonl", lambda x: fill[x.group(0)], w) for w in words]
    raise ValueError(f"README's replay block has no {' '.join(head)!r} command")


# ---------------------------------------------------------------------------------------------
# replay dry run: AIPerf fixed schedule against a stub server on 127.0.0.1
# ---------------------------------------------------------------------------------------------

def replay_workload(*, rate: float = 50.0, n: int = 500, seed: int = 7) -> pl.DataFrame:
    """A Poisson schedule of ``n`` requests at ``rate`` req/s with small prompts and outputs."""
    rng = np.random.default_rng(seed)
    return pl.DataFrame({"timestamp": np.cumsum(rng.exponential(1.0 / rate, n)),
                         "input_tokens": rng.integers(16, 256, n), "output_tokens": rng.integers(1, 16, n)})


def replay_dry_run(env: ToolEnv, folder: Path, home: Path, *, rate: float = 50.0, n: int = 500, warmup: int = 100,
                   timeout_s: float = 300.0) -> dict:
    """Replay a Mooncake export with ``aiperf profile --fixed-schedule`` against the stub server.

    The stub (``interop_tools/stub_server.py``, 127.0.0.1 only, stops after ``n + warmup``
    requests or ``timeout_s``) logs each arrival. AIPerf first sends ``warmup`` requests
    (``--warmup-request-count``: in two of three runs here without them, requests 1.6-2.6 s into
    the schedule arrived up to 0.38 s late, during AIPerf's start-up; the machine was loaded, so
    part of it may be contention); the last ``n`` arrivals are the schedule's.
    Arrivals and scheduled times are matched in sorted order; the error of request ``i`` is its
    arrival offset minus its scheduled offset, less the median error (the constant start lag).
    Returns counts, error percentiles (ms) and AIPerf's seconds.
    """
    from servelab.generator.exports import export_workload

    folder.mkdir(parents=True, exist_ok=True)
    _tokenizer(env, home)
    trace = export_workload(replay_workload(rate=rate, n=n), folder / "replay_mooncake.jsonl", fmt="mooncake")

    def command(port: int) -> list[str]:
        # README's command, with the stub for HOST, the byte tokenizer for MODEL and this
        # run's warm-up count; only where artifacts go and the console UI are added
        cmd = readme_command("aiperf", host=f"127.0.0.1:{port}", model="servelab/bytes", workload=trace)
        i = cmd.index("--warmup-request-count")
        cmd[i:i + 2] = ["--warmup-request-count", str(warmup)] if warmup else []
        return [*cmd, "--artifact-dir", str(folder / "aiperf_artifacts"), "--ui-type", "none"]

    log, seconds = _replay_against_stub(env, folder, home, tool="aiperf", what="aiperf profile",
                                        n_requests=n + warmup, command=command, timeout_s=timeout_s)
    arrivals = np.sort([json.loads(x)["t"] for x in log.read_text().splitlines()])
    sched = np.sort([json.loads(x)["timestamp"] for x in trace.read_text().splitlines()]) / 1000.0
    out = {"scheduled": int(sched.size), "warmup": warmup, "arrived": int(arrivals.size) - warmup, "rate": rate,
           "aiperf_seconds": seconds}
    arrivals = arrivals[warmup:]
    if arrivals.size == sched.size:
        err = (arrivals - arrivals[0]) - (sched - sched[0])
        lag = float(np.median(err))
        out.update(start_lag_ms=lag * 1e3, **{f"abs_error_p{q}_ms": float(np.percentile(np.abs(err - lag), q)) * 1e3
                                            for q in (50, 90, 99, 100)})
    return out


def _stub(folder: Path, n: int, timeout_s: float) -> tuple[subprocess.Popen, int, Path]:
    """Start the stub server (stops after ``n`` requests or ``timeout_s``): process, port, arrival log."""
    port_file, log = folder / "stub.port", folder / "stub_arrivals.jsonl"
    for f in (port_file, log):
        f.unlink(missing_ok=True)
    stub = subprocess.Popen([sys.executable, str(HELPERS / "stub_server.py"), str(port_file), str(log), str(n),
                             str(timeout_s)])
    for _ in range(400):
        if port_file.exists() and port_file.read_text():
            return stub, int(port_file.read_text()), log
        time.sleep(0.05)
    stub.kill()
    raise RuntimeError(f"the stub server wrote no port in 20 s; got {port_file.exists()=}")


def _replay_against_stub(env: ToolEnv, folder: Path, home: Path, *, tool: str, what: str, n_requests: int,
                         command, timeout_s: float) -> tuple[Path, float]:
    """Run ``command(port)`` (a README command line) with the tool's own executable against the stub.

    The stub stops after ``n_requests`` arrivals or ``timeout_s``. Returns the stub's arrival log
    and the tool's wall seconds; a non-zero exit raises RuntimeError with the tool's last output.
    """
    stub, port, log = _stub(folder, n_requests, timeout_s)
    try:
        cmd = command(port)
        cmd[0] = str(Path(env.python).parent / tool)
        t0 = time.perf_counter()
        run = subprocess.run(cmd, capture_output=True, text=True, env=offline_env(home), timeout=timeout_s)
        seconds = time.perf_counter() - t0
    finally:
        stub.wait(timeout=timeout_s + 10)
    if run.returncode != 0:
        raise RuntimeError(f"{what} failed: {run.stdout[-800:]} {run.stderr[-800:]}")
    return log, seconds


def guidellm_replay(env: ToolEnv, folder: Path, home: Path, *, n: int = 20, rate: float = 20.0,
                    timeout_s: float = 240.0) -> dict:
    """README's guidellm command (``--profile kind=replay``) on a guidellm export, against the stub.

    Checks that the command line works with guidellm's installed CLI and that every request
    reaches the stub with its ``max_tokens`` (the export's ``output_tokens_count``). Arrival
    times are not asserted (AIPerf's are, in :func:`replay_dry_run`; under a load average of 13
    guidellm itself warned of 0.8 s dispatch delays). Returns counts and seconds.
    """
    from servelab.generator.exports import export_workload

    folder.mkdir(parents=True, exist_ok=True)
    tok = _tokenizer(env, home)
    frame = replay_workload(rate=rate, n=n)
    data = export_workload(frame, folder / "replay_guidellm.jsonl", fmt="guidellm")

    def command(port: int) -> list[str]:
        cmd = readme_command("guidellm", host=f"127.0.0.1:{port}", model=str(tok), workload=data)
        return [*cmd, "--output", f"kind=json,path={folder / 'guidellm.json'}", "--disable-progress"]

    log, seconds = _replay_against_stub(env, folder, home, tool="guidellm", what="guidellm run",
                                        n_requests=n, command=command, timeout_s=timeout_s)
    got = [json.loads(x) for x in log.read_text().splitlines()]
    return {"scheduled": n, "arrived": len(got), "guidellm_seconds": seconds,
            "max_tokens_match": sorted(g["max_tokens"] for g in got) == sorted(frame["output_tokens"].to_list())}


# ---------------------------------------------------------------------------------------------

def _table(checks: list[Check]) -> str:
    head = f"{'tool':<9} {'format':<26} {'loaded':<7} {'requests':>8}  {'result':<8} compared"
    lines = [head, "-" * len(head)]
    for c in checks:
        result = "OK" if c.ok else ("EXPECTED" if c.expected_failure else "FAIL")
        lines.append(f"{c.tool:<9} {c.fmt:<26} {'yes' if c.loaded else 'no':<7} {c.requests:>8}  {result:<8} {c.compared}")
        if c.detail:
            lines.append(f"{'':<12}-> {c.detail}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-install", action="store_true", help="use the tool venvs only when already built")
    ap.add_argument("--tools", default=",".join(TOOLS), help="tools to load with (default: all installable)")
    ap.add_argument("--seed", type=int, default=20)
    ap.add_argument("--out", type=Path, default=OUT / "interop")
    ap.add_argument("--replay", type=int, default=500, metavar="N",
                    help="requests of the AIPerf fixed-schedule dry run at 50 req/s (0: skip)")
    ap.add_argument("--replay-warmup", type=int, default=100, metavar="W",
                    help="AIPerf warm-up requests before the dry run's schedule (0: none)")
    ap.add_argument("--install-only", action="store_true", help="build the tool venvs, then stop")
    ap.add_argument("--ready-file", type=Path, help="with --install-only: JSON written when the installs end")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    tools = [t for t in args.tools.split(",") if t]
    if unknown := [t for t in tools if t not in TOOLS]:
        ap.error(f"--tools: unknown {unknown}; known {sorted(TOOLS)}")
    if args.install_only:
        envs = install_tools(tools, ready_file=args.ready_file)
        print(f"installs took {time.perf_counter() - t0:.1f} s")
        return 0 if all(e.python for e in envs.values()) else 1
    if args.ready_file:
        ap.error("--ready-file goes with --install-only")
    frame = build_workload(seed=args.seed)
    paths = export_all(frame, args.out / "files")
    home = args.out / "hf"
    print(f"workload: {frame.height} requests, {frame['conversation_id'].n_unique()} conversations, "
          f"{int(frame['failed'].sum())} failed, {int(frame['prefix_blocks'].is_not_null().sum())} with a shared "
          f"system prefix, image_count sum {int(frame['image_count'].sum())}; files in {paths['parquet'].parent}")
    checks = schema_checks(paths, frame)
    envs, extra = {}, {}
    for tool in tools:
        env = tool_env(tool, install=not args.no_install)
        envs[tool] = env
        print(f"{tool}: venv {env.how} in {env.seconds:.1f} s {env.note}".rstrip())
        if env.python is None:
            checks.append(Check(tool, "-", False, 0, "not installed: documented schema only", False, env.note, True))
            continue
        t = time.perf_counter()
        checks += (aiperf_checks if tool == "aiperf" else guidellm_checks)(env, paths, frame, home)
        print(f"{tool}: loaders ran in {time.perf_counter() - t:.1f} s")
        if tool == "aiperf":
            extra["vs_analyze_trace"] = analyze_trace_crosscheck(env, frame, args.out, home)
            if args.replay:
                extra["replay"] = replay_dry_run(env, args.out / "replay", home, n=args.replay,
                                                 warmup=args.replay_warmup)
        if tool == "guidellm" and args.replay:
            extra["guidellm_replay"] = guidellm_replay(env, args.out / "guidellm_replay", home)
    for tool, why in NOT_INSTALLED.items():
        print(f"{tool}: not installed here: {why}")
    print()
    print(_table(checks))
    if "vs_analyze_trace" in extra:
        x = extra["vs_analyze_trace"]
        print(f"\nservelab lengths vs aiperf analyze-trace (failures excluded; requests {x['requests']}):")
        for s in x["stats"]:
            same = "same" if abs(s["servelab"] - s["aiperf"]) <= 1e-9 * max(1.0, abs(s["aiperf"])) else "DIFFERS"
            print(f"  {s['column']:<14} {s['stat']:<5} servelab {s['servelab']:>12.4f}  aiperf {s['aiperf']:>12.4f}  {same}")
        print(f"servelab prefixes vs aiperf analyze-trace (block size 512, infinite cache; servelab's pooled "
              f"block hit rate {x['block_hit_rate_pooled']:.4f} is another quantity):")
        for s in x["prefixes"]:
            same = "same" if abs(s["servelab"] - s["aiperf"]) <= 1e-9 * max(1.0, abs(s["aiperf"])) else "DIFFERS"
            print(f"  {s['stat']:<34} servelab {s['servelab']:>12.4f}  aiperf {s['aiperf']:>12.4f}  {same}")
    if "replay" in extra:
        r = extra["replay"]
        print(f"\nAIPerf fixed-schedule replay at {r['rate']:g} req/s against the stub on 127.0.0.1: "
              f"{r['arrived']} of {r['scheduled']} requests arrived after {r['warmup']} warm-up requests; start lag {r.get('start_lag_ms', float('nan')):.1f} ms, "
              f"|error| p50 {r.get('abs_error_p50_ms', float('nan')):.1f} ms, p99 {r.get('abs_error_p99_ms', float('nan')):.1f} ms, "
              f"max {r.get('abs_error_p100_ms', float('nan')):.1f} ms (target p99 <= 50 ms); aiperf ran {r['aiperf_seconds']:.1f} s")
    if "guidellm_replay" in extra:
        g = extra["guidellm_replay"]
        print(f"README's guidellm command (replay profile) against the stub: {g['arrived']} of {g['scheduled']} "
              f"requests arrived, max_tokens {'as exported' if g['max_tokens_match'] else 'DIFFER'}; "
              f"guidellm ran {g['guidellm_seconds']:.1f} s")
    failed = [c for c in checks if not c.ok and not c.expected_failure]
    if "guidellm_replay" in extra and not (extra["guidellm_replay"]["max_tokens_match"]
                                           and extra["guidellm_replay"]["arrived"] == extra["guidellm_replay"]["scheduled"]):
        failed.append("guidellm replay")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps({
        "checks": [asdict(c) for c in checks], "envs": {k: asdict(v) for k, v in envs.items()},
        "not_installed": NOT_INSTALLED, **extra, "seconds": time.perf_counter() - t0}, indent=2))
    print(f"\n{len(checks) - len(failed)} of {len(checks)} checks as expected; {time.perf_counter() - t0:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
