"""What ``.ci/run`` promises, checked on its text (fast; it is not run here).

It installs servelab from this checkout, runs README's test command exactly, and has the interop
block (issue 20): the tool venvs built by ``benchmarks/interop.py --install-only`` with uv,
``SERVELAB_INTEROP_TOOLS`` exported only after README's command, then ``pytest -m interop``;
then the spark block (issue 21): ``servelab[spark]`` installed after both (not into the venv
while a suite runs from it) and ``pytest -m spark`` on every test file that uses the marker,
with ``SERVELAB_REQUIRE_SPARK=1``.
"""
from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CI = ROOT / ".ci" / "run"


def _commands(text: str) -> list[str]:
    """The script's command lines: comments and blank lines dropped, continuations joined."""
    joined = re.sub(r"\s*\\\n\s*", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def _readme_test_command() -> str:
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"^Tests:\s*\n+```bash\n(.+?)\n```", readme, flags=re.M | re.S)
    assert m, "README.md has no 'Tests:' block with a bash fence"
    lines = [x for x in m.group(1).splitlines() if x.strip() and not x.startswith("#")]
    assert len(lines) == 1, lines
    return lines[0].strip()


def _index(commands: list[str], predicate, what: str) -> int:
    hits = [i for i, c in enumerate(commands) if predicate(c)]
    assert hits, f".ci/run has no command that {what}"
    return hits[0]


@pytest.fixture(scope="module")
def commands() -> list[str]:
    return _commands(CI.read_text())


def test_ci_run_is_valid_bash_and_stops_on_errors(commands):
    run = subprocess.run(["bash", "-n", str(CI)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert commands[0] == "set -euo pipefail"
    assert 'cd "$(dirname "$0")/.."' in commands


def test_ci_run_installs_from_the_checkout_then_runs_readmes_test_command(commands):
    venv = _index(commands, lambda c: c.startswith("python3 -m venv "), "creates a venv")
    install = _index(commands, lambda c: c.startswith("python -m pip install") and '-e ".[test]"' in c,
                     'installs -e ".[test]" (this checkout)')
    main = _index(commands, lambda c: c == _readme_test_command(), f"is README's {_readme_test_command()!r}")
    assert venv < install < main


def test_ci_run_has_the_interop_block(commands):
    spec = importlib.util.spec_from_file_location("ci_promises_interop", ROOT / "benchmarks" / "interop.py")
    interop = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = interop
    spec.loader.exec_module(interop)
    uv = _index(commands, lambda c: c == f"python -m pip install --quiet uv=={interop.UV_VERSION}",
                f"installs uv=={interop.UV_VERSION} (interop.UV_VERSION)")
    build = _index(commands, lambda c: "benchmarks/interop.py --install-only" in c and "--ready-file" in c
                   and c.endswith("&"), "builds the tool venvs in the background")
    assert "SERVELAB_INTEROP_TOOLS=" in commands[build]
    main = _index(commands, lambda c: c == _readme_test_command(), "runs README's test command")
    wait = _index(commands, lambda c: c.startswith("wait "), "waits for the venvs")
    export = _index(commands, lambda c: c.startswith("export SERVELAB_INTEROP_TOOLS="),
                    "exports SERVELAB_INTEROP_TOOLS for the interop tests")
    tests = _index(commands, lambda c: shlex.split(c)[:5] == ["python", "-m", "pytest", "-m", "interop"],
                   "runs the interop marker")
    # the venvs build while the main suite runs; only the interop block requires them
    assert uv < build < main < wait < export < tests
    assert not any(c.startswith("export SERVELAB_INTEROP_TOOLS") for c in commands[:main])


def _spark_test_files() -> set[str]:
    """The test files that use the ``spark`` marker (found here by their text, not by pytest)."""
    tests = ROOT / "tests"
    return {p.relative_to(ROOT).as_posix() for p in tests.rglob("test_*.py")
            if "pytest.mark.spark" in p.read_text() and p.name != Path(__file__).name}


def test_ci_run_has_the_spark_block(commands):
    main = _index(commands, lambda c: c == _readme_test_command(), "runs README's test command")
    interop = _index(commands, lambda c: shlex.split(c)[:5] == ["python", "-m", "pytest", "-m", "interop"],
                     "runs the interop marker")
    install = _index(commands, lambda c: c.startswith("python -m pip install") and '-e ".[test,spark]"' in c,
                     'installs -e ".[test,spark]"')
    tests = _index(commands, lambda c: shlex.split(c)[:7] == ["SERVELAB_REQUIRE_SPARK=1", "python", "-m", "pytest",
                                                             "-q", "-m", "spark"],
                   "runs the spark marker with SERVELAB_REQUIRE_SPARK=1")
    # installed after the suite and the interop tests ran from this venv, never in the background
    assert main < interop < install < tests and not commands[install].endswith("&")
    listed = {a for a in shlex.split(commands[tests])[7:] if not a.startswith("-")}  # the files, not options
    assert len(_spark_test_files()) >= 5  # the finder finds the files (not vacuous)
    assert _spark_test_files() <= listed, f"spark tests CI does not run: {sorted(_spark_test_files() - listed)}"
    assert all((ROOT / p).is_file() for p in listed), listed
    # each block says how long it took
    assert any(c.startswith('echo "spark: install took') for c in commands[install:tests])
    assert any(c.startswith('echo "spark: tests took') for c in commands[tests:])


def test_the_command_parser_sees_what_bash_sees():
    text = "set -e\n# a comment\n\npython x.py --a \\\n    --b &\n  echo done  \n"
    assert _commands(text) == ["set -e", "python x.py --a --b &", "echo done"]
