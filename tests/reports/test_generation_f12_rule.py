"""F12's rule (the generation section's test) on a small case of known truth, in well under a second.

The calibration of the rule at the section's scale (fit, generate, test on simulated 3-h periods,
20 seeds per scenario) is ``benchmarks/bench_generation_sample.py``; here the rule itself
(:func:`servelab.reports.areas.generation.f12_verdict` of
:func:`servelab.generator.validation.shape_test` on F12's metrics) on hand-made workloads whose
answer is known: a candidate drawn from the real law against one that mixes the request lengths
over the whole period (what the naive baseline does), and two draws of one law (the null).
"""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from servelab.analysis.findings import Verdict
from servelab.generator.validation import shape_test
from servelab.reports.areas.generation import F12_LEVEL, F12_METRICS, f12_verdict

WINDOW_S, N_WIN = 3.0, 600  # a quick-mode period: 30 min of 3-s windows, 20 blocks of 30


def _period(rng, *, mixed: bool) -> pl.DataFrame:
    """Per 15-s state (5 windows), one of two clients dominates: "long" (inputs ~2,000, 8
    requests per window) or "short" (inputs ~100, 3 per window), so window rate and mean input
    move together. ``mixed``: the same counts, every input drawn from the whole period's mix."""
    state = np.repeat(rng.random(N_WIN // 5) < 0.5, 5)
    n = rng.poisson(np.where(state, 8.0, 3.0))
    k = np.repeat(np.arange(N_WIN), n)
    long = np.repeat(state, n)
    if mixed:
        long = rng.random(k.size) < long.mean()
    return pl.DataFrame({"timestamp": k * WINDOW_S + rng.uniform(0, WINDOW_S, k.size),
                         "input_tokens": np.where(long, 2000, 100) * rng.uniform(0.5, 1.5, k.size),
                         "output_tokens": np.where(long, 200, 20) * rng.uniform(0.5, 1.5, k.size)}).sort("timestamp")


def test_f12_rule_finds_the_per_client_candidate_and_keeps_its_null():
    rng = np.random.default_rng(12)
    real, like, mixed, like2 = (_period(rng, mixed=m) for m in (False, False, True, False))

    def test(ours, naive):
        return shape_test(real, ours, naive, WINDOW_S, N_WIN * WINDOW_S, seed=0, level=F12_LEVEL, metrics=F12_METRICS)

    positive = test(like, mixed)
    # the mixed candidate's windows never pair a high rate with long inputs; at this size its block
    # differences are positive in 17 of 20 blocks, p 6.7e-5 (seeds 1, 2, 3 of this case: 1.0e-4,
    # 1.0e-4, 2.9e-6; the swapped and A/A p-values below: > 0.99, and 0.99, 0.38, 0.29)
    assert (positive.blocks, positive.windows_per_block) == (20, 30)
    assert positive.servelab_better and positive.p_value < 1e-3 and positive.wins >= 15
    assert set(positive.advantage) == set(F12_METRICS)  # only F12's metrics are summed
    verdict, reason = f12_verdict({"stable": positive, "variable": positive})
    assert verdict is Verdict.HOLDS and "rejected in every period" in reason and f"p = {positive.p_value:.3g}" in reason
    # roles swapped: naive (here the real law) is better, the other side of the test: does not hold
    swapped = test(mixed, like)
    assert not swapped.servelab_better and swapped.p_value > 0.5
    verdict, reason = f12_verdict({"stable": positive, "variable": swapped})
    assert verdict is Verdict.DOES_NOT_HOLD and reason.endswith("naive reproduces the variable period better")
    # the null: two draws of the real law (fixed seed; under the null p is about uniform, here 0.65):
    # neither side rejected, inconclusive
    null = test(like, like2)
    assert not null.servelab_better and null.p_value > F12_LEVEL
    verdict, reason = f12_verdict({"stable": positive, "variable": null})
    assert verdict is Verdict.INCONCLUSIVE and "not rejected in every period, and naive not shown better" in reason
    # a period too short to test (fewer than 8 blocks of 10 windows): inconclusive, and why
    short = shape_test(real, like, mixed, WINDOW_S, 70 * WINDOW_S, seed=0, metrics=F12_METRICS)
    verdict, reason = f12_verdict({"stable": positive, "variable": short})
    assert verdict is Verdict.INCONCLUSIVE and "variable: 70 whole windows" in reason


def test_shape_test_metrics_must_be_known():
    frame = pl.DataFrame({"timestamp": [0.0, 1.0], "input_tokens": [1, 2], "output_tokens": [1, 1]})
    with pytest.raises(ValueError, match=r"metrics must be names of SHAPE_METRICS .*; got \('joint_shape',\)"):
        shape_test(frame, frame, frame, 3.0, 30.0, metrics=("joint_shape",))
