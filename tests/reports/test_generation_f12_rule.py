"""F12's rule (the generation section's test) on small cases of known truth, in about a second.

The calibration of the rule at the section's scale (fit, generate, test on simulated 3-h periods,
20 seeds per scenario) is ``benchmarks/bench_generation_sample.py``; here the rule itself
(:func:`servelab.reports.areas.generation.f12_verdict` of
:func:`servelab.reports.areas.generation.energy_difference_test`) on hand-made workloads whose
answer is known: a candidate drawn from the real law against one that mixes the request lengths
over the whole period (what the naive baseline does), and draws of one law (the null).
"""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy.spatial.distance import cdist

from servelab.analysis.findings import Verdict
from servelab.generator.validation import shape_test
from servelab.reports.areas.generation import F12_LEVEL, energy_difference_test, f12_verdict

WINDOW_S, N_WIN = 3.0, 600  # a quick-mode period: 30 min of 3-s windows, 8 blocks of 75


def _period(rng, *, mixed: bool, n_win: int = N_WIN) -> pl.DataFrame:
    """Per 15-s state (5 windows), one of two clients dominates: "long" (inputs ~2,000, 8
    requests per window) or "short" (inputs ~100, 3 per window), so window rate and mean input
    move together. ``mixed``: the same counts, every input drawn from the whole period's mix."""
    state = np.repeat(rng.random(n_win // 5) < 0.5, 5)
    n = rng.poisson(np.where(state, 8.0, 3.0))
    k = np.repeat(np.arange(n_win), n)
    long = np.repeat(state, n)
    if mixed:
        long = rng.random(k.size) < long.mean()
    return pl.DataFrame({"timestamp": k * WINDOW_S + rng.uniform(0, WINDOW_S, k.size),
                         "input_tokens": np.where(long, 2000, 100) * rng.uniform(0.5, 1.5, k.size),
                         "output_tokens": np.where(long, 200, 20) * rng.uniform(0.5, 1.5, k.size)}).sort("timestamp")


def _points(frame: pl.DataFrame, col: str) -> np.ndarray:
    """(window count over the mean count, mean ``col``) of the non-empty windows, by polars (not the code under test)."""
    w = (frame.with_columns((pl.col("timestamp") / WINDOW_S).floor().cast(pl.Int64).alias("k"))
         .group_by("k").agg(pl.len().alias("n"), pl.col(col).mean().alias("m")).sort("k"))
    return np.column_stack([w["n"].to_numpy() / (frame.height / 200), w["m"].to_numpy()])


def test_f12_statistic_is_the_difference_of_squared_energy_distances():
    rng = np.random.default_rng(5)
    real, ours, naive = (_period(rng, mixed=m, n_win=200) for m in (False, False, True))
    t = energy_difference_test(real, ours, naive, WINDOW_S, 200 * WINDOW_S, seed=0, block_s=75.0)
    busy = {name: (f["timestamp"] // WINDOW_S).n_unique() for name, f in
            (("reference", real), ("servelab", ours), ("naive", naive))}  # non-empty windows (192-197 of 200)
    assert (t.blocks, t.block_s) == (8, 75.0) and t.windows == busy

    def d2(x, y):  # squared energy distance, pairs i != j within a sample (scipy's cdist)
        within = lambda z: cdist(z, z).sum() / (len(z) * (len(z) - 1))
        return 2 * cdist(x, y).mean() - within(x) - within(y)

    expected = {}
    for c in ("input", "output"):
        r, s, n = (_points(f, f"{c}_tokens") for f in (real, ours, naive))
        sd = r.std(axis=0)
        expected[f"joint_{c}_shape"] = d2(r / sd, n / sd) - d2(r / sd, s / sd)
    assert t.per_metric == pytest.approx(expected, rel=1e-9)
    assert t.statistic == pytest.approx(sum(expected.values()), rel=1e-9)
    assert t.t == pytest.approx(t.statistic / t.standard_error) and t.p_value + t.p_naive_better == pytest.approx(1)


def test_f12_rule_finds_the_per_client_candidate_and_keeps_its_null():
    rng = np.random.default_rng(12)
    real, like, mixed, like2 = (_period(rng, mixed=m) for m in (False, False, True, False))

    def test(ours, naive):
        return energy_difference_test(real, ours, naive, WINDOW_S, N_WIN * WINDOW_S, seed=0, level=F12_LEVEL)

    positive = test(like, mixed)
    # the mixed candidate's windows never pair a high rate with long inputs: t = 5.51 on 7 df here,
    # p 4.5e-4 (seeds 1, 2, 3 of this case: t 4.67, 5.85, 7.80; the A/A t below: -0.93, and
    # -1.36, -0.09, 0.59)
    assert (positive.blocks, positive.block_s) == (8, 225.0)
    assert positive.servelab_better and positive.p_value < 1e-3 and positive.t > 5
    verdict, reason = f12_verdict({"stable": positive, "variable": positive})
    assert verdict is Verdict.HOLDS and "rejected in every period" in reason and f"p = {positive.p_value:.3g}" in reason
    # roles swapped: naive (here the real law) is closer, the other side of the test: does not hold
    # (T is antisymmetric in the two candidates, its standard error symmetric: the p-values trade places)
    swapped = test(mixed, like)
    assert swapped.naive_better and swapped.p_naive_better == pytest.approx(positive.p_value, rel=1e-9)
    verdict, reason = f12_verdict({"stable": positive, "variable": swapped})
    assert verdict is Verdict.DOES_NOT_HOLD and reason.endswith("naive reproduces the variable period better")
    # the null: two draws of the real law: neither side rejected, inconclusive
    null = test(like, like2)
    assert not null.servelab_better and not null.naive_better
    verdict, reason = f12_verdict({"stable": positive, "variable": null})
    assert verdict is Verdict.INCONCLUSIVE and "not rejected in every period, and naive not shown better" in reason
    # a period too short to test (fewer than 8 blocks of 10 windows): inconclusive, and why
    short = energy_difference_test(real, like, mixed, WINDOW_S, 70 * WINDOW_S, seed=0)
    verdict, reason = f12_verdict({"stable": positive, "variable": short})
    assert verdict is Verdict.INCONCLUSIVE and "variable: 70 whole windows" in reason


def test_f12_test_keeps_its_level_where_the_null_holds_exactly():
    # two draws of one law against a third (A/A), 40 fixed seeds: each side should reject at most
    # about 2 times (5%); 7 or more on a side has probability 0.3% under a correct level (binomial
    # 40, 0.05). Measured: 0 and 0, median p 0.55 (also with 300 and 160 windows: 0 and 0). The
    # test is conservative where the candidates are alike: there the real windows' first-order term
    # is itself noise of the generated draws, which the batch-means variance then counts twice
    p = []
    for seed in range(40):
        rng = np.random.default_rng(1000 + seed)
        real, a, b = (_period(rng, mixed=False, n_win=200) for _ in range(3))
        p.append(energy_difference_test(real, a, b, WINDOW_S, 200 * WINDOW_S, seed=seed, block_s=75.0).p_value)
    p = np.array(p)
    assert (p <= F12_LEVEL).sum() <= 6 and (p >= 1 - F12_LEVEL).sum() <= 6
    assert 0.3 < np.median(p) < 0.7  # p about uniform: the median within +-0.2 of 1/2 (sd 0.08 at n = 40)


def test_shape_test_metrics_must_be_known():
    frame = pl.DataFrame({"timestamp": [0.0, 1.0], "input_tokens": [1, 2], "output_tokens": [1, 1]})
    with pytest.raises(ValueError, match=r"metrics must be names of SHAPE_METRICS .*; got \('joint_shape',\)"):
        shape_test(frame, frame, frame, 3.0, 30.0, metrics=("joint_shape",))
