"""Rate-shift and burstiness tests on window counts: null cases, positive controls, references."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from scipy import stats

from servelab.analysis.findings import Verdict
from servelab.fitting.calibration import (
    BURST_SCALES,
    gamma_renewal_arrivals,
    modulated_poisson_arrivals,
    on_clock,
    poisson_arrivals,
    switching_arrivals,
    window_gap_cv,
)
from servelab.fitting.rate_tests import (
    block_counts,
    blocks_from_windows,
    burstiness_test,
    pooled_gap_dispersion,
    rate_shift_test,
    rate_shift_tests,
    rate_shift_tests_sparse,
    sine_cv,
    window_counts,
    within_block_dispersion,
)

DAY = 86400.0


def _scales(t, span):
    return {s: block_counts(t, sub_s=s, block_s=1200.0, t0=0.0, t1=span) for s in BURST_SCALES}


def test_chi_square_matches_scipy_and_window_counts_cover_the_span(rng):
    t = np.sort(rng.uniform(0, 1000.0, 400))
    counts, exposure = window_counts(t, window_s=300.0, t0=0.0, t1=1000.0)
    assert counts.sum() == 400 and np.allclose(exposure, [300, 300, 300, 100])
    r = rate_shift_test(counts, exposure, min_exposure_fraction=0.0)
    expected = counts.sum() * exposure / exposure.sum()
    ref = stats.chisquare(counts, expected)
    assert r.value == pytest.approx(ref.statistic, rel=1e-12)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-9)


@pytest.mark.parametrize("rate, span, clock", [(0.05, 3 * DAY, 0.0), (0.05, 3 * DAY, 1.0), (2.0, 6 * 3600, 1.0)])
def test_stationary_poisson_never_holds_a_rate_shift_and_is_ruled_out(rate, span, clock):
    # issue 13: Poisson at 0.05 req/s over 3 days "held" F2 with rate max/min 6.5
    for seed in range(3):
        t = poisson_arrivals(rate, span, seed=seed)
        if clock:
            t = on_clock(t, clock)
        r = rate_shift_test(*window_counts(t, window_s=300.0, t0=0.0, t1=span))
        assert r.decision is Verdict.DOES_NOT_HOLD, r.reason
        assert r.power >= 0.8 and r.minimum_detectable_effect <= r.paper_effect


def test_rate_shift_at_the_papers_effect_holds_and_recovers_the_rate_cv():
    t = modulated_poisson_arrivals(1.0, 3 * DAY, ratio=3.0, period_s=DAY, seed=1)
    r = rate_shift_test(*window_counts(t, window_s=300.0, t0=0.0, t1=3 * DAY))
    assert r.decision is Verdict.HOLDS
    # N = 2.6e5 requests in 864 windows: sd of the CV estimate ~ 0.002; 5-min averaging of a daily sine is negligible
    assert r.effect_value == pytest.approx(sine_cv(3.0), abs=0.02)


def test_sparse_windows_use_a_bootstrap_null_that_stays_calibrated():
    # 0.001 req/s, 5-min windows: 0.3 requests per window on average
    p = []
    for seed in range(10):
        t = poisson_arrivals(0.001, 5 * DAY, seed=seed)
        r = rate_shift_test(*window_counts(t, window_s=300.0, t0=0.0, t1=5 * DAY), seed=seed)
        assert "parametric bootstrap" in r.method and r.decision is not Verdict.HOLDS
        p.append(r.p_value)
    assert stats.kstest(p, "uniform").pvalue > 0.01


def test_too_few_windows_is_inconclusive_and_bad_input_raises():
    r = rate_shift_test([3, 4], [300.0, 300.0])
    assert r.decision is Verdict.INCONCLUSIVE and "needs 3 windows" in r.reason
    with pytest.raises(ValueError, match="non-negative integers"):
        rate_shift_test([1.5, 2, 3], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="exposures must be positive"):
        rate_shift_test([1, 2, 3], [1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="one length"):
        rate_shift_test([1, 2, 3], [1.0, 1.0])
    with pytest.raises(ValueError, match="dispersion must be positive"):
        rate_shift_test([1, 2, 3], [1.0, 1.0, 1.0], dispersion=0.0)


def test_per_group_tests_do_not_count_one_request_clients():
    rng = np.random.default_rng(5)
    k = 288  # one day of 5-minute windows
    shifting = rng.poisson(np.where(np.arange(k) % 8 < 4, 2.0, 6.0))
    steady = rng.poisson(4.0, k)
    single = np.zeros(k, dtype=np.int64)
    single[17] = 1
    frame = pl.DataFrame({"client_id": np.repeat(["shift", "steady", "single"], k),
                          "n_requests": np.concatenate([shifting, steady, single]),
                          "exposure_s": np.full(3 * k, 300.0)})
    out = {r["client_id"]: r for r in rate_shift_tests(frame, "client_id").iter_rows(named=True)}
    assert out["shift"]["decision"] == "holds"
    assert out["steady"]["decision"] == "does not hold"
    assert out["single"]["decision"] == "inconclusive"
    one = rate_shift_test(shifting, np.full(k, 300.0))
    assert out["shift"]["chi2"] == pytest.approx(one.value) and out["shift"]["p_value"] == pytest.approx(one.p_value)
    with pytest.raises(ValueError, match="lacks column 'model'"):
        rate_shift_tests(frame, "model")


@pytest.mark.parametrize("rate, span, clock", [(0.05, 3 * DAY, 0.0), (0.05, 3 * DAY, 1.0), (2.0, 6 * 3600, 1.0)])
def test_poisson_is_not_bursty(rate, span, clock):
    t = poisson_arrivals(rate, span, seed=11)
    if clock:
        t = on_clock(t, clock)
    r = burstiness_test(_scales(t, span), resolution_s=clock)
    assert r.decision is Verdict.DOES_NOT_HOLD, r.reason


def test_rate_changes_between_blocks_are_not_bursts_and_p_values_are_uniform():
    # Poisson whose rate triples every other 20-minute block: the null (rate constant within blocks) is true
    p = []
    for seed in range(15):
        t = switching_arrivals(((0.05, 1.0), (0.15, 1.0)), 2 * DAY, seed=seed)
        r = burstiness_test(_scales(t, 2 * DAY))
        assert r.decision is not Verdict.HOLDS
        p.append(min(1.0, r.p_value))
    # Bonferroni over three scales makes p conservative: its distribution sits at or above uniform
    assert np.mean(np.asarray(p) < 0.05) <= 0.2


@pytest.mark.parametrize("rate, span", [(0.05, 3 * DAY), (2.0, 6 * 3600)])
def test_gamma_renewal_with_cv_2_is_bursty(rate, span):
    t = gamma_renewal_arrivals(rate, 0.25, span, seed=3)
    r = burstiness_test(_scales(t, span))
    assert r.decision is Verdict.HOLDS and r.effect_value > 1.5


def test_burstiness_guards_the_clock_and_shapes():
    t = poisson_arrivals(0.05, DAY, seed=0)
    with pytest.raises(ValueError, match="10 x the clock resolution"):
        burstiness_test(_scales(t, DAY), resolution_s=60.0)
    with pytest.raises(ValueError, match="must be 2-D"):
        burstiness_test({30.0: np.arange(5)})
    with pytest.raises(ValueError, match="whole multiple"):
        block_counts(t, sub_s=70.0, block_s=1200.0)


def test_blocks_from_a_window_table_match_blocks_from_timestamps():
    t = poisson_arrivals(0.05, DAY, seed=2) + 37.0
    counts, exposure = window_counts(t, window_s=30.0, t0=0.0, t1=float(t.max()))
    window = np.arange(counts.size)
    got = blocks_from_windows(window, counts, exposure, sub_s=30.0, block_s=1200.0)
    assert np.array_equal(got, block_counts(t, sub_s=30.0, block_s=1200.0, t0=0.0, t1=float(t.max())))
    # a missing or partial sub-window drops its block
    keep = window != 45
    assert blocks_from_windows(window[keep], counts[keep], exposure[keep], sub_s=30.0, block_s=1200.0).shape[0] == \
        got.shape[0] - 1
    with pytest.raises(ValueError, match="whole multiple"):
        blocks_from_windows(window, counts, exposure, sub_s=30.0, block_s=1000.0)


def test_pooled_dispersion_is_the_gap_cv_squared_and_protects_stationary_bursty_traces():
    t = gamma_renewal_arrivals(0.05, 0.25, 3 * DAY, seed=6)  # CV 2: count dispersion -> 4 at long scales
    n, cv = window_gap_cv(t, window_s=300.0)
    phi = pooled_gap_dispersion(n, cv)
    # ~15 gaps per window: the within-window CV^2 sits below the true 4 (short windows cut long gaps)
    assert 2.5 < phi < 4.5
    assert pooled_gap_dispersion([1, 0], [np.nan, np.nan]) == 1.0
    counts, exposure = window_counts(t, window_s=300.0, t0=0.0, t1=3 * DAY)
    assert rate_shift_test(counts, exposure).decision is Verdict.HOLDS  # the Poisson null is wrong here
    assert rate_shift_test(counts, exposure, dispersion=phi).decision is not Verdict.HOLDS


def test_simulators_have_the_rate_and_cv_they_promise():
    t = gamma_renewal_arrivals(1.0, 0.25, 200_000.0, seed=1)
    g = np.diff(t)
    # 2e5 gaps: rate within 3 sd (CV 2 / sqrt(n) = 0.45 %), CV within ~5 %
    assert t.size / 200_000.0 == pytest.approx(1.0, rel=0.03)
    assert g.std() / g.mean() == pytest.approx(2.0, rel=0.05)
    t = switching_arrivals(((0.05, 1.0), (0.15, 1.0)), 2 * DAY, seed=0)
    c = block_counts(t, sub_s=1200.0 / 2, block_s=1200.0, t0=0.0, t1=2 * DAY).sum(axis=1)
    assert c[1::2].mean() / c[0::2].mean() == pytest.approx(3.0, rel=0.1)


def test_per_group_pooled_dispersion_spares_stationary_bursty_clients():
    frames = []
    for name, t in (("bursty", gamma_renewal_arrivals(0.05, 0.25, 3 * DAY, seed=8)),
                    ("shifting", modulated_poisson_arrivals(0.05, 3 * DAY, ratio=3.0, period_s=DAY, seed=8))):
        counts, exposure = window_counts(t, window_s=300.0, t0=0.0, t1=3 * DAY)
        n, cv = window_gap_cv(t, window_s=300.0)
        n_full, cv_full = np.zeros(counts.size), np.full(counts.size, np.nan)
        n_full[: n.size], cv_full[: cv.size] = n, cv
        frames.append(pl.DataFrame({"client_id": name, "n_requests": counts, "exposure_s": exposure,
                                    "n_gaps": n_full, "cv": cv_full}))
    windows = pl.concat(frames)
    poisson = {r["client_id"]: r["decision"] for r in rate_shift_tests(windows, "client_id").iter_rows(named=True)}
    pooled = rate_shift_tests(windows, "client_id", dispersion="pooled")
    decided = {r["client_id"]: r["decision"] for r in pooled.iter_rows(named=True)}
    assert poisson == {"bursty": "holds", "shifting": "holds"}
    assert decided["bursty"] != "holds" and decided["shifting"] == "holds"
    bursty = windows.filter(pl.col("client_id") == "bursty")
    phi = pooled_gap_dispersion(bursty["n_gaps"].to_numpy(), bursty["cv"].to_numpy())
    assert pooled.filter(pl.col("client_id") == "bursty")["dispersion"][0] == pytest.approx(phi)
    with pytest.raises(ValueError, match="'pooled'"):
        rate_shift_tests(windows, "client_id", dispersion="mean")
    # the same tests from the active windows only (idle ones implicit), groups' windows as indices
    exposure = windows.filter(pl.col("client_id") == "bursty")["exposure_s"].to_numpy()
    cells = (windows.with_columns(pl.int_range(pl.len()).over("client_id").alias("window"))
             .filter(pl.col("n_requests") > 0))
    assert cells.height < windows.height
    for disp in ("pooled", 1.0):
        assert_frame_equal(rate_shift_tests_sparse(cells, "client_id", exposures=exposure, dispersion=disp),
                           rate_shift_tests(windows, "client_id", dispersion=disp).sort("client_id"),
                           check_exact=False, rel_tol=1e-12, abs_tol=0.0)
    with pytest.raises(ValueError, match="window indices must lie in"):
        rate_shift_tests_sparse(cells, "client_id", exposures=exposure[:10])
    with pytest.raises(ValueError, match="exposures must be a non-empty 1-D array of seconds >= 0, one positive; got"):
        rate_shift_tests_sparse(cells, "client_id", exposures=np.zeros(exposure.size))
    # a last window of 0 s (starting at the last request) is left out, as rate_shift_tests leaves it
    last = np.append(exposure, 0.0)
    assert_frame_equal(rate_shift_tests_sparse(cells, "client_id", exposures=last, dispersion="pooled"),
                       rate_shift_tests_sparse(cells, "client_id", exposures=exposure, dispersion="pooled"))


@pytest.mark.parametrize("make, holds", [
    (lambda s: poisson_arrivals(0.05, 3 * DAY, seed=s), False),
    (lambda s: gamma_renewal_arrivals(0.05, 0.25, 3 * DAY, seed=s), False),  # bursty but stationary
    (lambda s: switching_arrivals(((0.05, 1.0), (0.15, 0.25)), 3 * DAY, seed=s), True),
])
def test_within_block_dispersion_gives_a_calibrated_stationary_renewal_null(make, holds):
    t = make(21)
    blocks = block_counts(t, sub_s=300.0, block_s=1200.0, t0=0.0, t1=3 * DAY)
    phi, df = within_block_dispersion(blocks)
    assert df == 3 * np.count_nonzero(blocks.sum(axis=1))
    r = rate_shift_test(*window_counts(t, window_s=300.0, t0=0.0, t1=3 * DAY), dispersion=phi, dispersion_df=df)
    assert "asymptotic F" in r.method
    assert (r.decision is Verdict.HOLDS) is holds, r.reason
    if not holds:
        assert r.decision is Verdict.DOES_NOT_HOLD and r.p_value > 0.05


def test_within_block_dispersion_of_poisson_is_one_and_errors():
    t = poisson_arrivals(1.0, 3 * DAY, seed=3)
    phi, df = within_block_dispersion(block_counts(t, sub_s=300.0, block_s=1200.0, t0=0.0, t1=3 * DAY))
    assert phi == pytest.approx(1.0, abs=3 * np.sqrt(2 / df))
    with pytest.raises(ValueError, match="no block holds a request"):
        within_block_dispersion(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="must be 2-D"):
        within_block_dispersion(np.ones(4))
    with pytest.raises(ValueError, match="dispersion_df must be positive"):
        rate_shift_test([1, 2, 3], [1.0, 1.0, 1.0], dispersion=1.0, dispersion_df=0.0)


def test_doubling_test_null_positive_and_reference_count():
    from servelab.fitting.rate_tests import doubling_test

    def counts(t, span):
        return np.bincount((t // 300.0).astype(np.int64), minlength=int(span // 300.0))

    # the share counted equals a direct count of c_k >= 2 c_{k-1} with c_{k-1} >= 1
    c = np.array([3, 6, 2, 0, 4, 9, 1, 1, 5, 2, 3, 7])
    r = doubling_test(c, block=4, threshold_share=0.11, paper_share=0.226)
    prev, cur = c[:-1], c[1:]
    assert r.effect_value == pytest.approx(np.sum((prev >= 1) & (cur >= 2 * prev)) / np.sum(prev >= 1))
    # null: Poisson whose rate follows a daily sine x3 (constant-ish within hours): never "holds",
    # and "does not hold" with power at 0.05 req/s over 4 days
    span = 4 * DAY
    null = [doubling_test(counts(modulated_poisson_arrivals(0.05, span, ratio=3, period_s=DAY, seed=s), span),
                          block=12, threshold_share=0.113, paper_share=0.226, seed=s) for s in range(3)]
    assert all(t.decision is Verdict.DOES_NOT_HOLD and t.power >= 0.8 for t in null)
    # positive control: a bursty renewal process (CV 4) doubles in about a quarter of the windows
    pos = doubling_test(counts(gamma_renewal_arrivals(0.05, 1 / 16, span, seed=3), span), block=12,
                        threshold_share=0.113, paper_share=0.226, seed=3)
    assert pos.decision is Verdict.HOLDS and pos.p_value < 0.01
    with pytest.raises(ValueError, match="block must be an integer >= 2"):
        doubling_test(c, block=1, threshold_share=0.1, paper_share=0.2)


def test_a_57_minute_trace_is_judged_at_10_seconds():
    # under 70 minutes there are too few full 20-minute blocks at 30 s and above (MIN_SCALE_DF); the
    # 10-s scale (119 degrees of freedom per block) decides: bursty Gamma renewal (CV 2) holds, Poisson
    # does not hold, with power (2 full blocks of 2.5 req/s)
    span = 3420.0
    bursty = burstiness_test(_scales(gamma_renewal_arrivals(2.5, 0.25, span, seed=5), span))
    assert bursty.decision is Verdict.HOLDS and "10-s counts" in bursty.statistic
    assert "30 s: too few blocks" in bursty.reason
    calm = burstiness_test(_scales(poisson_arrivals(2.5, span, seed=5), span))
    assert calm.decision is Verdict.DOES_NOT_HOLD and calm.power >= 0.8
