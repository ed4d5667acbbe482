"""benchmarks/servegen_live.py: ServeGen's released loader, run live on the repository's m-small slice."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import servegen_live  # noqa: E402

SLICE = REPO / "raw_traces" / "servegen" / "m-small"

_COUNT = r"""
pool = ClientPool(Category.LANGUAGE, sys.argv[3])
print(json.dumps({"clients": len(pool.clients), "extra": sys.argv[4:]}))
"""


@pytest.mark.shared
def test_servegen_command_runs_servegens_loader_on_the_linked_folder(tmp_path):
    if not servegen_live.available("clientpool"):
        pytest.skip(f"ServeGen's released code not found at {servegen_live.SERVEGEN_CODE}")
    cmd = servegen_live.servegen_command(_COUNT, SLICE, tmp_path, "a", "b")
    link = tmp_path / "servegen-cwd" / "data" / "language" / "bench"
    assert link.resolve() == SLICE.resolve()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    # the slice's clients with both a trace and a dataset file (ServeGen loads only those; the slice's
    # chunk-1 has no dataset), counted from the file names, not by servelab
    expected = len({p.name.split("-")[1] for p in SLICE.glob("chunk-*-trace.csv")}
                   & {p.name.split("-")[1] for p in SLICE.glob("chunk-*-dataset.json")})
    assert got == {"clients": expected, "extra": ["a", "b"]}
    # a second call replaces the link instead of failing on it
    servegen_live.servegen_command(_COUNT, SLICE, tmp_path)
    assert link.is_symlink()
