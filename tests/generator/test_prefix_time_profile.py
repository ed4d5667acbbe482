"""Short traces keep their lengths' time profile (issue 15): the data-window rule, first-turn
inputs that follow the data windows, and reuse weights from each length class's own times."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

from servelab.fitting.pool_conversations import INCREMENT_PROFILE, increment_profile_rows
from servelab.fitting.pool_prefixes import RequestStructure, fit_prefix_table
from servelab.fitting.pool_settings import PoolFitSettings
from servelab.generator.conversations import ConversationModel, draw_increments, pool_input_cdf
from servelab.generator.pmf import pmf_cdf, pmf_table


def test_short_traces_get_min_data_windows_windows():
    s = PoolFitSettings()
    # 17 min (Mooncake's sample): 1022 / 3 = 340.7 s; the longest 600 / m at most that is 300 s
    assert s.effective_data_window(1022.0) == 300.0
    # 3 h: 3,600 s, a multiple of 600 s; 4 h: 4,800 s -> 4,800; 2,000 s: 666.7 -> 600
    assert s.effective_data_window(3 * 3600.0) == 3600.0
    assert s.effective_data_window(4 * 3600.0) == 4800.0
    assert s.effective_data_window(2000.0) == 600.0
    # 18 h or more holds three 6-h windows: unchanged
    assert s.effective_data_window(18 * 3600.0) == 21600.0
    assert s.effective_data_window(14 * 86400.0) == 21600.0
    assert PoolFitSettings(min_data_windows=0).effective_data_window(1022.0) == 21600.0
    assert PoolFitSettings(min_data_windows=8).effective_data_window(1022.0) == 600.0 / 5
    for bad in (-1, True, 2.5):
        with pytest.raises(ValueError, match="min_data_windows must be an integer >= 0; got"):
            PoolFitSettings(min_data_windows=bad)


def _pool(arrival_windows):
    """Client "a": input PMF {10: 1} in data window [0, 100), {20: .5, 30: .5} in [100, 200);
    client "b": one data window only (no time profile)."""
    data = pl.DataFrame({"client_id": ["a", "a", "a", "b"], "window_start": [0.0, 100.0, 100.0, 0.0],
                         "window_s": [100.0] * 4, "field": ["input_tokens"] * 4, "value": [10.0, 20.0, 30.0, 10.0],
                         "probability": [1.0, 0.5, 0.5, 1.0]})
    starts, length, rate = arrival_windows
    arrivals = pl.DataFrame({"client_id": ["a"] * len(starts) + ["b"], "window_start": list(starts) + [0.0],
                             "window_s": [length] * len(starts) + [100.0], "rate": list(rate) + [1.0]})
    return SimpleNamespace(data=data, arrivals=arrivals)


@pytest.mark.parametrize("arrival_windows, share0", [
    (([0.0, 100.0], 100.0, [1.0, 1.0]), 0.5),   # nested windows, equal rates
    (([0.0, 100.0], 100.0, [3.0, 1.0]), 0.75),  # 3x the requests in the first window
    (([0.0], 600.0, [1.0]), 0.5),              # one arrival window longer than both (short trace)
])
def test_pool_input_cdf_mixes_windows_by_requests(arrival_windows, share0):
    index = pl.DataFrame({"client_id": ["a", "b"], "p": [0, 1]})
    table, cmap = pool_input_cdf(_pool(arrival_windows), index, 2)
    assert cmap.tolist() == [0, -1]  # "b" has one data window: no mapping
    cdf = pmf_cdf(table, np.zeros(3, np.int64), np.array([10.0, 20.0, 30.0]))
    np.testing.assert_allclose(cdf, [share0, share0 + (1 - share0) / 2, 1.0])


def test_first_turns_follow_their_data_draw():
    # pool-wide inputs {10, 20, 30, 40} equally likely; first-turn PMF {100, 200, 300, 400}:
    # a first turn's input is the first-turn quantile of its data draw's position, 10x the draw
    pool_cdf = pmf_table(np.zeros(4, np.int64), np.array([10.0, 20.0, 30.0, 40.0]), np.full(4, 0.25))
    first = pmf_table(np.zeros(4, np.int64), np.array([100.0, 200.0, 300.0, 400.0]), np.full(4, 0.25))
    one = pmf_table(np.zeros(1, np.int64), np.array([1.0]), np.ones(1))
    conv = ConversationModel(has=np.ones(1, bool), mean_turns=np.ones(1), turns=one, itt=one, t_map=np.zeros(1, int),
                             i_map=np.zeros(1, int), max_itt=1.0, max_turns=1, inc=one, inc_map=np.zeros(1, int),
                             first=first, first_map=np.zeros(1, int), first_multi=None, first_multi_map=None,
                             grows=np.ones(1, bool))
    draws = np.random.default_rng(0).choice([10.0, 20.0, 30.0, 40.0], 400)
    turn = np.ones(400, np.int64)
    mapped = draw_increments(SimpleNamespace(**{**conv.__dict__, "data_cdf": pool_cdf,
                                                "data_cdf_map": np.zeros(1, int)}),
                             np.zeros(400, np.int64), turn, draws, np.random.default_rng(1))
    np.testing.assert_array_equal(mapped, 10 * draws)
    # without the pool-wide PMF the first-turn draw ignores the data draw (same law, no order)
    free = draw_increments(conv, np.zeros(400, np.int64), turn, draws, np.random.default_rng(1))
    assert set(np.unique(free)) == {100.0, 200.0, 300.0, 400.0}
    assert np.mean(free == 10 * draws) < 0.5


@pytest.mark.parametrize("profile", [True, False])
def test_follow_up_increments_follow_their_data_draw_when_the_pool_says(profile):
    # conversations of two turns; pool-wide inputs {10, 20, 30, 40}, first-turn PMF {100, ..., 400},
    # increment PMF {1, 2, 3, 4}. With the pool's increment-profile row a growing follow-up's
    # increment is the increment quantile of its own data draw's position, 1/10 of the draw;
    # without it the increment ignores the draw. A follow-up that does not grow keeps its draw.
    pool_cdf = pmf_table(np.zeros(4, np.int64), np.array([10.0, 20.0, 30.0, 40.0]), np.full(4, 0.25))
    first = pmf_table(np.zeros(4, np.int64), np.array([100.0, 200.0, 300.0, 400.0]), np.full(4, 0.25))
    inc = pmf_table(np.zeros(4, np.int64), np.array([1.0, 2.0, 3.0, 4.0]), np.full(4, 0.25))
    one = pmf_table(np.zeros(1, np.int64), np.array([1.0]), np.ones(1))
    conv = SimpleNamespace(has=np.ones(2, bool), mean_turns=np.full(2, 2.0), turns=one, itt=one,
                           t_map=np.zeros(2, int), i_map=np.zeros(2, int), max_itt=1.0, max_turns=2, inc=inc,
                           inc_map=np.zeros(2, int), first=None, first_map=None, first_multi=first,
                           first_multi_map=np.zeros(2, int), grows=np.array([True, False]), data_cdf=pool_cdf,
                           data_cdf_map=np.zeros(2, int), inc_profile=profile)
    draws = np.random.default_rng(0).choice([10.0, 20.0, 30.0, 40.0], 400)
    turn = np.tile([1, 2], 200)
    client = np.repeat([0, 1], 200)  # pool client 1's follow-ups do not grow
    mapped = draw_increments(conv, client, turn, draws, np.random.default_rng(1))
    grow = (turn > 1) & (client == 0)
    np.testing.assert_array_equal(mapped[turn == 1], 10 * draws[turn == 1])
    np.testing.assert_array_equal(mapped[(turn > 1) & (client == 1)], draws[(turn > 1) & (client == 1)])
    if profile:
        np.testing.assert_array_equal(mapped[grow], draws[grow] / 10)
    else:
        assert set(np.unique(mapped[grow])) == {1.0, 2.0, 3.0, 4.0}
        assert np.mean(mapped[grow] == draws[grow] / 10) < 0.5


def _profile_trace(rng, *, scale: float, n_follow: int = 200):
    """Four 300-s data windows whose requests' mean input is 1000 x 1.7^(w/3) (a drift);
    follow-ups uniform in time, increments lognormal times ``(level / 1000) ** scale``."""
    t = rng.uniform(0.0, 1200.0, 4000)
    level = 1000.0 * 1.7 ** (np.floor(t / 300.0) / 3.0)
    ft = rng.uniform(0.0, 1200.0, n_follow)
    inc = rng.lognormal(6.0, 1.0, n_follow) * (1.7 ** (np.floor(ft / 300.0) / 3.0)) ** scale
    return ft, inc, t, rng.exponential(level)


def test_increment_profile_test_null_and_positive_controls():
    # null: increments independent of the windows' level (the inputs drift): rejections at the
    # 1 % level in 200 traces ~ Binomial(200, 0.01), mean 2, P(> 8) < 0.001. Positive: increments
    # drifting as the inputs (x1.7 over four windows: log slope ln(1.7) / 3 per window, lognormal
    # sigma 1), 600 follow-ups: rank correlation about 0.19 (window index sd 1.12, log-increment
    # sd 1.02), z = 0.19 sqrt(599) = 4.6 against 2.33, power about 0.99: >= 185 of 200
    rng = np.random.default_rng(15)
    null = sum(increment_profile_rows(*_profile_trace(rng, scale=0.0), data_window_s=300.0, start=0.0).height
               for _ in range(200))
    pos = sum(increment_profile_rows(*_profile_trace(rng, scale=1.0, n_follow=600), data_window_s=300.0,
                                     start=0.0).height for _ in range(200))
    assert null <= 8, null
    assert pos >= 185, pos
    row = increment_profile_rows(*_profile_trace(rng, scale=1.0, n_follow=2000), data_window_s=300.0, start=0.0)
    assert row.to_dicts() == [{"client_id": None, "quantity": INCREMENT_PROFILE, "value": 1.0, "probability": 1.0}]
    # too few follow-ups, or one window: no test
    assert increment_profile_rows(*_profile_trace(rng, scale=1.0, n_follow=29), data_window_s=300.0,
                                  start=0.0).height == 0
    assert increment_profile_rows(*_profile_trace(rng, scale=1.0), data_window_s=5000.0, start=0.0).height == 0


def test_reuse_weights_use_the_class_times():
    # client 0, class 16 blocks: 100 first turns at 0, 10, ..., 990 s; the last reuses at lag 500 s.
    # class 32: 20 first turns at 800, ..., 990 s; the last reuses at lag 500 s. P(seen) is the
    # share of the class's first turns at least 500 s after the trace's first: 50/100 and 20/20
    t = np.r_[np.arange(100) * 10.0, 800.0 + np.arange(20) * 10.0]
    n = t.size
    lengths = np.r_[np.full(100, 16), np.full(20, 32)].astype(np.int64)
    kind = np.zeros(n, np.int64)
    kind[[99, 119]] = 2
    lag = np.where(kind == 2, 500.0, 0.0)
    st = RequestStructure(lengths=lengths, group=np.full(n, -1, np.int64), group_len=np.zeros(n, np.int64),
                          hit=np.where(kind == 2, lengths, 0), source=np.where(kind == 2, 0, -1), kind=kind,
                          same_length=kind == 2, gap=np.zeros(n, np.int64), lag_s=lag, time_s=t,
                          suffix=np.where(kind == 2, 0, lengths), group_length=np.zeros(0, np.int64),
                          group_extends=np.zeros(0, np.int64), group_clients=np.zeros(0, np.int64))
    table = fit_prefix_table(st, np.zeros(n, np.int64), ["c"], span_s=1000.0)
    share = table.filter(pl.col("kind") == "reuse_gap").sort("min_blocks")["probability"].to_numpy()
    # weights 2 and 1: shares 2/100 and 1/20 (a uniform T/(T - x) would give the late class 2/20)
    np.testing.assert_allclose(share, [2 / 100, 1 / 20])
    st.pop("time_s")  # an older structure: the uniform weight T/(T - x) = 2 for both
    old = fit_prefix_table(st, np.zeros(n, np.int64), ["c"], span_s=1000.0)
    np.testing.assert_allclose(old.filter(pl.col("kind") == "reuse_gap").sort("min_blocks")["probability"],
                               [2 / 100, 2 / 20])
