"""benchmarks/bench_scale.py --what growth: the table of the newest results per (step, rows) and its factors."""
from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_scale  # noqa: E402


def test_growth_table_takes_the_newest_run_and_computes_the_factors(tmp_path):
    log = tmp_path / "log.jsonl"
    rows = [
        {"step": "report", "rows": 1_000_000, "wall_s": 10.0, "cpu_s": 8.0, "peak_mb": 500.0, "rc": 0, "load": 1.0},
        {"step": "report", "rows": 10_000_000, "wall_s": 99.0, "cpu_s": 99.0, "peak_mb": 999.0, "rc": 0, "load": 1.0},
        {"step": "report", "rows": 10_000_000, "wall_s": 40.0, "cpu_s": 32.0, "peak_mb": 1000.0, "rc": 0, "load": 2.0},
        {"step": "report", "rows": 100_000_000, "wall_s": 800.0, "cpu_s": 640.0, "peak_mb": 1500.0, "rc": 1,
         "load": 2.0, "error": "boom"},
    ]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    lines = bench_scale.growth_table(log).splitlines()
    assert len(lines) == 4  # header + one line per size: the older 10 M run is replaced by the newer
    assert lines[2].split()[:5] == ["report", "10,000,000", "40.0", "32.0", "1000"]
    # 10 M / 1 M: rows x10, wall 40/10, CPU 32/8, peak 1000/500
    assert "x10, x4.00, x4.00, x2.00 (linear or better in CPU)" in lines[2]
    # 100 M / 10 M: CPU 640/32 = x20 > x10
    assert "x10, x20.00, x20.00, x1.50 (SUPERLINEAR in CPU)" in lines[3] and "FAILED: boom" in lines[3]
