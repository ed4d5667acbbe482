"""bootstrap_ks returns a named, immutable BootstrapKS that still unpacks like the old tuple."""
import numpy as np
import pytest

from servelab.fitting.gof import BootstrapKS, bootstrap_ks


def test_named_fields_match_the_unpacked_tuple_and_cannot_change(rng):
    x = rng.exponential(3.0, 300)
    res = bootstrap_ks(x, "exponential", n_boot=30, seed=0)
    assert isinstance(res, BootstrapKS)
    p, d, failed = res
    assert (res.p_value, res.ks_distance, res.n_failed) == (p, d, failed)
    # the KS distance against the exponential MLE (scale = mean), computed independently
    xs = np.sort(x)
    cdf = 1 - np.exp(-xs / x.mean())
    i = np.arange(1, 301)
    assert res.ks_distance == pytest.approx(max(np.max(i / 300 - cdf), np.max(cdf - (i - 1) / 300)))
    with pytest.raises(AttributeError):
        res.p_value = 0.5
    # same seed, same result
    assert bootstrap_ks(x, "exponential", n_boot=30, seed=0) == res


def test_null_case_and_positive_control(rng):
    """Null: exponential data fitted as exponential, the p-values of 20 samples are roughly uniform
    (their mean is within 3 standard errors, 3 * 0.29 / sqrt(20) = 0.19, of 1/2). Positive control:
    lognormal data (sigma = 1.5) fitted as exponential at n = 300: D_obs is above every bootstrap
    replicate, so p = 1 / (B + 1)."""
    b = 49
    null = [bootstrap_ks(rng.exponential(2.0, 300), "exponential", n_boot=b, seed=k) for k in range(20)]
    assert abs(np.mean([r.p_value for r in null]) - 0.5) < 0.19
    assert all(r.n_failed == 0 for r in null)
    bad = bootstrap_ks(rng.lognormal(0.0, 1.5, 300), "exponential", n_boot=b, seed=1)
    assert bad.p_value == pytest.approx(1 / (b + 1)) and bad.n_failed == 0
