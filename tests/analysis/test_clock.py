"""analysis.clock: the logging step of timestamps, on simulated traces of known truth (fixed seeds).

Tolerances: a detected step is determined up to the logger's jitter (here +-3 ms per timestamp, so
+-6 ms per gap, inside the 10 ms lattice tolerance); a step from integers is exact.
"""
import json

import numpy as np
import pytest

from servelab.analysis.clock import (
    ABS_TOLERANCE_S,
    Clock,
    GapSample,
    clock_at_step,
    clock_from_gaps,
    detect_clock,
    resolve_clock,
)


def _poisson(rng, mean_gap: float, n: int) -> np.ndarray:
    return np.cumsum(rng.exponential(mean_gap, n))


def _clocked(t: np.ndarray, step: float, rng, jitter: float = 0.003) -> np.ndarray:
    """Floor to ``step``, then move every timestamp by +-``jitter`` (a logger's jitter)."""
    return np.floor(t / step) * step + rng.uniform(-jitter, jitter, t.size)


@pytest.mark.parametrize("mean_gap", [0.3, 2.0, 20.0])
def test_three_second_clock_with_jitter(mean_gap):
    rng = np.random.default_rng(11)
    c = detect_clock(_clocked(_poisson(rng, mean_gap, 12_000), 3.0, rng))
    assert c.coarse and c.censors and c.given == "detected"
    assert c.step_s == pytest.approx(3.0, abs=ABS_TOLERANCE_S)
    assert c.lattice_share >= 0.99
    expected_ties = 1 - (1 - np.exp(-3.0 / mean_gap)) * mean_gap / 3.0  # P(next arrival in the same tick)
    assert c.zero_share == pytest.approx(expected_ties, abs=4 / np.sqrt(12_000))


def test_clock_on_millisecond_integers_is_coarser_than_their_precision():
    """Mooncake-style: ms integers, every request of a tick stamped alike, ticks 2.997-3.003 s apart."""
    rng = np.random.default_rng(3)
    q = np.floor(_poisson(rng, 0.3, 12_000) / 3.0) * 3.0
    ticks, inverse = np.unique(q, return_inverse=True)
    t = np.round((ticks + rng.uniform(-0.0015, 0.0015, ticks.size))[inverse] * 1000) / 1000
    c = detect_clock(t)
    assert c.coarse and c.precision_s == pytest.approx(0.001, rel=1e-6)
    assert c.step_s == pytest.approx(3.0, abs=0.002)
    assert c.zero_share == pytest.approx(float(np.mean(np.diff(t) == 0)), abs=1e-12)


@pytest.mark.parametrize("mean_gap", [0.2, 1.0, 30.0])
def test_one_second_clock(mean_gap):
    rng = np.random.default_rng(5)
    t = np.floor(_poisson(rng, mean_gap, 5_000))
    c = detect_clock(t)
    assert c.step_s == 1.0 and c.precision_s == 1.0 and not c.coarse  # integer seconds: the precision is the clock
    assert c.censors
    jittered = detect_clock(_clocked(_poisson(rng, mean_gap, 5_000), 1.0, rng))
    assert jittered.coarse and jittered.step_s == pytest.approx(1.0, abs=ABS_TOLERANCE_S)


@pytest.mark.parametrize("mean_gap", [1e-3, 0.05, 2.0, 60.0])
def test_no_clock_for_continuous_poisson_and_gamma(mean_gap):
    """Null case: unquantised times (high rates included, where most gaps are below 10 ms)."""
    rng = np.random.default_rng(7)
    for t in (_poisson(rng, mean_gap, 20_000), np.cumsum(rng.gamma(0.1, mean_gap / 0.1, 20_000))):
        c = detect_clock(t)
        assert c.step_s is None and not c.coarse and not c.censors and c.precision_s is None


def test_millisecond_integers_without_a_clock_report_their_precision_only():
    rng = np.random.default_rng(8)
    for mean_gap in (0.005, 0.2, 5.0):
        t = np.round(_poisson(rng, mean_gap, 20_000) * 1000) / 1000
        c = detect_clock(t)
        assert not c.coarse and c.step_s == pytest.approx(0.001, rel=1e-6)


def test_sparse_traces():
    rng = np.random.default_rng(9)
    sparse = detect_clock(_clocked(_poisson(rng, 60.0, 30), 3.0, rng))
    assert sparse.coarse and sparse.step_s == pytest.approx(3.0, abs=ABS_TOLERANCE_S) and sparse.n == 29
    assert detect_clock(np.floor(_poisson(rng, 60.0, 10))).step_s == 1.0
    assert detect_clock(_poisson(rng, 60.0, 10)).step_s is None  # too few gaps to claim any lattice
    assert detect_clock(_poisson(rng, 60.0, 3)).step_s is None


def test_off_lattice_minority_is_tolerated():
    rng = np.random.default_rng(10)
    t = _clocked(_poisson(rng, 2.0, 10_000), 3.0, rng)
    extra = rng.uniform(t.min(), t.max(), 100)  # 1 % of the requests off the clock: ~4 % of the gaps
    c = detect_clock(np.concatenate([t, extra]))
    assert c.coarse and c.step_s == pytest.approx(3.0, abs=ABS_TOLERANCE_S) and 0.9 <= c.lattice_share < 0.99


def test_edge_cases():
    empty = detect_clock([])
    assert empty.n == 0 and empty.step_s is None and empty.zero_share is None
    one = detect_clock([4.0])
    assert one.n == 0 and one.step_s is None
    same = detect_clock([5.0] * 4)
    assert same.n == 3 and same.zero_share == 1.0 and same.step_s is None and not same.censors
    assert detect_clock([3.0, 1.0, 2.0]).n == 2  # sorted first
    with pytest.raises(ValueError, match="timestamps must be finite"):
        detect_clock([1.0, np.nan])
    with pytest.raises(ValueError, match="gaps must be >= 0"):
        clock_from_gaps([1.0, -1.0])
    with pytest.raises(ValueError, match="clock step must be a positive number"):
        clock_at_step([1.0], 0.0)
    with pytest.raises(ValueError, match="clock must be 'auto'"):
        resolve_clock("fast")
    with pytest.raises(ValueError, match="positive step in seconds; got -3"):
        resolve_clock(-3)
    with pytest.raises(ValueError, match="given must be one of"):
        Clock(step_s=1.0, coarse=True, precision_s=None, lattice_share=None, zero_share=None, n=0, given="guess")


def test_streamed_sample_matches_the_whole_sequence_and_is_strict_json():
    rng = np.random.default_rng(12)
    t = _clocked(_poisson(rng, 0.5, 50_000), 3.0, rng)
    t.sort()
    acc = GapSample(capacity=5_000)
    for part in np.array_split(t, 7):
        acc.add(part)
    at_once = GapSample(capacity=5_000)
    at_once.add(t)
    streamed, whole = acc.clock(), detect_clock(t)
    assert at_once.clock() == streamed  # the sample depends on gap indices, not on the batches
    assert acc.n == whole.n == t.size - 1 and acc.unsorted == 0 and acc.stride == 16
    assert streamed.step_s == pytest.approx(whole.step_s, abs=1e-3)
    # the tie share is estimated from ~3,000 sampled gaps: 4 binomial standard errors
    assert streamed.zero_share == pytest.approx(whole.zero_share, abs=4 * 0.5 / np.sqrt(3_000))
    text = json.dumps(streamed.to_json(), allow_nan=False)
    assert Clock.from_json(json.loads(text)) == Clock.from_json(streamed.to_json())


@pytest.mark.parametrize("splits", [1, 2, 7, 1_000])
def test_gap_sample_is_every_stride_th_gap(splits):
    """Closed form: the kept gaps are gaps 0, s, 2s, ... for the smallest power of two s with
    ceil(n / s) <= capacity, whatever the batches (one long batch included)."""
    rng = np.random.default_rng(5)
    t = np.cumsum(rng.exponential(1.0, 30_001))
    acc = GapSample(capacity=1_000)
    for part in np.array_split(t, splits):
        acc.add(part)
    stride = 1
    while -(-30_000 // stride) > 1_000:
        stride *= 2
    assert acc.stride == stride == 32
    np.testing.assert_array_equal(np.concatenate(acc._kept), np.diff(t)[::stride])
    np.testing.assert_array_equal(np.concatenate(acc._kept_index), np.arange(0, 30_000, stride))


def test_user_step_and_shares_at_it():
    rng = np.random.default_rng(13)
    t = np.floor(_poisson(rng, 1.0, 5_000) / 3.0) * 3.0
    c = clock_at_step(np.diff(t), 3.0)
    assert c.given == "user" and c.censors and c.lattice_share == 1.0
    assert c.zero_share == pytest.approx(float(np.mean(np.diff(t) == 0)))
    assert resolve_clock(3).step_s == 3.0 and resolve_clock(None) is None and resolve_clock("none") is None
