"""Budget: the named budgets carry the numbers the sections used as literals; bad values are refused."""
import dataclasses

import pytest

from servelab.analysis.budget import Budget


def test_full_and_quick_hold_the_former_literals():
    full, quick = Budget.full(), Budget.quick()
    assert (full.max_fit_n, full.max_group_fit_n, full.n_boot, full.max_requests) == (1_000_000, 5_000, 200, None)
    assert (quick.max_fit_n, quick.max_group_fit_n, quick.n_boot, quick.max_requests) == (100_000, 2_000, 99, 1_000_000)
    assert (full.max_itt_fit_n, quick.max_itt_fit_n) == (200_000, 20_000)
    assert (full.max_reason_n, quick.max_reason_n) == (20_000, 5_000)
    assert (full.max_bimodality_n, quick.max_bimodality_n) == (50_000, 20_000)
    assert (full.generation_period_s, quick.generation_period_s) == (10_800.0, 1_800.0)
    assert full.forecast_max_iter == quick.forecast_max_iter == 100
    assert (full.n_sim, quick.n_sim) == (199, 99)  # the shape-shift test's former default B=199
    assert (full.max_conversation_requests, quick.max_conversation_requests) == (None, 1_000_000)
    assert (full.max_generation_requests, quick.max_generation_requests) == (100_000, 20_000)
    assert full.is_full and not quick.is_full
    assert full.replace(label="mine").is_full  # the label does not make a budget smaller
    assert not full.replace(n_boot=99).is_full


def test_budgets_are_frozen_and_validated():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Budget.full().n_boot = 5
    with pytest.raises(ValueError, match="Budget.max_fit_n must be a positive integer; got 0"):
        Budget(max_fit_n=0)
    with pytest.raises(ValueError, match="Budget.n_boot must be a positive integer; got 2.5"):
        Budget.quick().replace(n_boot=2.5)
    with pytest.raises(ValueError, match="Budget.n_sim must be a positive integer; got 0"):
        Budget(n_sim=0)
    with pytest.raises(ValueError, match="Budget.max_requests must be a positive integer; got -1"):
        Budget(max_requests=-1)
    with pytest.raises(ValueError, match="Budget.generation_period_s must be a positive number of seconds; got 0"):
        Budget(generation_period_s=0)
    with pytest.raises(ValueError, match="Budget.label must be a non-empty string; got ''"):
        Budget(label="")
