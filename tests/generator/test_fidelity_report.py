"""Fig. 19 (registered, one panel per period and workload) and the report's generation section."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _genpools import make_pool
from servelab.analysis.fidelity import window_stats
from servelab.analysis.findings import Verdict
from servelab.analysis.store import write_store
from servelab.generator.generate import generate


def test_fig19_is_registered_and_draws_every_panel(rng):
    from servelab.figures.registry import get_figure

    spec = get_figure("servegen.fig19")
    assert spec.paper_figure == "ServeGen Fig. 19"
    t = np.cumsum(rng.exponential(0.1, 3000))
    w = window_stats(pl.DataFrame({"timestamp": t, "input_tokens": rng.integers(1, 99, t.size),
                                   "output_tokens": rng.integers(1, 9, t.size)}))
    fig = spec.function({"stable": {"reference": w, "servelab": w, "naive": w}, "variable": {"reference": w}},
                        distances={"stable": {"servelab": 0.01, "naive": 0.2}})
    axes = fig.get_axes()
    assert len(axes) == 6
    assert axes[1].get_title() == "stable: servelab (D=0.010)"
    assert axes[0].get_xlabel() == "" and axes[3].get_xlabel() == "window rate (req/s)"
    assert len(axes[0].collections[0].get_offsets()) == w.filter(pl.col("mean_input_tokens").is_not_null()).height


def test_generation_section_not_applicable_without_clients(tmp_path):
    from servelab.analysis.budget import Budget
    from servelab.reports.areas import GENERATION, build_section

    store = write_store(pl.DataFrame({"timestamp": [0.0, 1.0, 2.0], "input_tokens": [1, 2, 3],
                                      "output_tokens": [1, 1, 1]}), tmp_path / "s")
    section = build_section(GENERATION, store, budget=Budget.quick())
    (finding,) = section.findings
    assert finding.verdict == Verdict.NOT_APPLICABLE and "client_id" in finding.reason


@pytest.mark.skipif(importlib.util.find_spec("servelab.fitting.pool_fit") is None, reason="fit-pool not available")
def test_generation_section_on_a_client_tagged_trace(tmp_path):
    from servelab.analysis.budget import Budget
    from servelab.reports.areas import GENERATION, build_section
    from servelab.reports.areas.generation import choose_periods

    # a bursty client with long inputs over a steady one with short inputs: rate-length coupling
    pool = make_pool({"big": [6.0] * 6, "burst": [2.0, 0.5, 2.0, 0.5, 2.0, 0.5]},
                     cvs={"big": 1.0, "burst": 4.0},
                     pmfs={"big": {"input_tokens": ([50, 80], [0.5, 0.5]), "output_tokens": ([10], [1.0])},
                           "burst": {"input_tokens": ([3000, 4000], [0.5, 0.5]), "output_tokens": ([90], [1.0])}})
    # one quick-mode period long: the stable and the variable period are the whole trace, measured once;
    # the trace stops 100 s before the period's end (as the 10 M store's last period does): the test
    # covers the windows up to the last request, so no block is empty
    ref = generate(pool, "pool", 1700, seed=3, conversations=False, counts="poisson")
    store = write_store(ref, tmp_path / "ref")
    periods = choose_periods(store, period_s=1800)
    assert set(periods) == {"stable", "variable"} and all((a, b) == (0, 1800) for a, b in periods.values())
    section = build_section(GENERATION, store, budget=Budget.quick(), seed=1)
    (finding,) = section.findings
    # F12's test: the naive baseline mixes the two clients' lengths in every window, servelab keeps
    # the burst client's long inputs in its bursts; 8 blocks of 210 s (the 566 windows up to the last
    # request), T 0.64, t 6.3 on 7 df, p 2.0e-4
    assert finding.verdict == Verdict.HOLDS, finding.reason
    assert finding.measured["stable_f12_p_value"] < 1e-3 <= 0.05 == finding.measured["f12_level"]
    assert finding.measured["stable_f12_blocks"] == 8 and finding.measured["stable_f12_t"] > 4
    assert "rejected in every period" in finding.reason
    assert [t["decision"] for t in finding.tests] == ["servelab better"] * 2 and finding.tests[0]["n"] == 8
    assert "servegen.fig19" in section.figures
    assert finding.measured["stable_joint_input_energy_servelab"] < finding.measured["stable_joint_input_energy_naive"]
