"""compare_families on a clocked trace: ties are handled on the whole sample, then subsampled."""
import math

import numpy as np
import pytest
from scipy import special

from servelab.fitting.calibration import on_clock, poisson_arrivals
from servelab.fitting.compare import compare_families


@pytest.mark.parametrize("resolution", [3.0, None])  # the clock given, or detected from the gaps
def test_subsampled_3s_clocked_poisson_fits_gamma_shape_one(resolution):
    # Poisson arrivals at 1/3 per s logged on a 3-s clock: ~37 % of gaps are 0. Jittering a
    # subsample taken first broke the tick structure (a = 0.71 for 5,000 of 20,000 gaps).
    t = on_clock(poisson_arrivals(1 / 3.0, 20_001 * 3.0, seed=7), 3.0)
    gaps = np.diff(t)
    assert np.mean(gaps == 0) > 0.3
    comp = compare_families(gaps, max_n=5000, seed=7, resolution=resolution)
    a = comp.result("gamma").params["a"]
    # sd of the Gamma shape MLE at a = 1, n = 5000: 1 / sqrt(n (trigamma(1) - 1)) = 0.018; 4 sd
    sd = 1 / math.sqrt(5000 * (special.polygamma(1, 1.0) - 1))
    assert a == pytest.approx(1.0, abs=4 * sd)
    assert comp.n == 5000
    assert any("after tie handling" in note for note in comp.notes)
