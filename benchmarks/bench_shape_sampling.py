r"""Known truth for the sampled Gamma shape-shift test (issue 16, ``Budget.max_sim_gaps``).

Above ``Budget.max_sim_gaps`` gaps in windows simulated one by one (full 50,000, quick 20,000),
:func:`servelab.fitting.shape_tests.gamma_shape_shift_test` runs (statistic, null and power alike)
on a seeded random sample of whole windows. This script checks that the sampled test keeps its
level and measures what the sample costs in power, on traces whose truth is known, built here
from closed forms (not by the code under test):

- every window :math:`w` holds :math:`n_w` Gamma gaps of shape :math:`\alpha_w` and a free scale
  :math:`\theta_w` (the rate shifts across windows: :math:`\theta_w` follows a daily sine of
  max/min 4); the test sees each window's positive-gap count, mean gap and mean log gap, the
  sufficient statistics :func:`servelab.analysis.arrivals.window_stats` gives it;
- window sizes :math:`n_w` are drawn once (``--size-seed``) uniformly in [``--min-gaps``,
  ``--max-gaps``], so every trace of a run has the same windows and only the gaps differ;
- **null**: one shape :math:`\alpha_0` throughout; the test must reject at most at its level;
- **positive control**: :math:`\ln \alpha_w = \ln \alpha_0 + \delta\,\sqrt 2 \sin(2\pi t_w / \mathrm{day})`,
  so the standard deviation of :math:`\ln\alpha` across windows is :math:`\delta`; ``--ratio R``
  gives :math:`\delta` = :func:`~servelab.fitting.shape_tests.log_sine_sd` (R) (the papers' effect
  is R = 3, the practical threshold R = 2).

Each trace is tested unsampled (``max_sim_gaps=None``) and sampled (``max_sim_gaps`` below the
trace's gaps), with the trace's seed as the test's seed. It prints, per scenario and mode, the
share of traces with p < level (false-positive rate under the null, power under the control) with
its exact 95 % Clopper-Pearson interval, the share the verdict says "holds" (p < level and effect
above the practical threshold), the median effect, and the windows tested.

Command line::

    python benchmarks/bench_shape_sampling.py                  # 40 seeds per scenario, 504 windows
    python benchmarks/bench_shape_sampling.py --seeds 10 --ratios 3

It writes nothing and asserts nothing; tests/fitting/test_shape_sampling_truth.py runs a small case.
"""
from __future__ import annotations

import argparse
import math
import time
from typing import NamedTuple

import numpy as np
from scipy import stats

from servelab.analysis.budget import Budget
from servelab.fitting.shape_tests import gamma_shape_shift_test, log_sine_sd
from servelab.fitting.verdicts import DEFAULT_LEVEL

__all__ = ["WindowTrace", "simulate_windows", "run", "main"]

DAY_S = 86_400.0


class WindowTrace(NamedTuple):
    """Per-window sufficient statistics of Gamma gaps (what the shape test reads)."""

    n_gaps: np.ndarray
    mean_gap: np.ndarray
    mean_log_gap: np.ndarray
    #: the true shape of every window
    shape: np.ndarray


def simulate_windows(sizes: np.ndarray, *, shape: float = 0.5, log_shape_sd: float = 0.0, window_s: float = 1200.0,
                     seed: int = 0) -> WindowTrace:
    """Gamma gaps per window, shape :math:`\\alpha_0 \\exp(\\delta \\sqrt 2 \\sin(2 \\pi t / day))`.

    Parameters
    ----------
    sizes : numpy.ndarray of int
        Gaps per window.
    shape : float
        :math:`\\alpha_0`, the shape of the null (CV :math:`1/\\sqrt{\\alpha_0}`).
    log_shape_sd : float
        :math:`\\delta`: the standard deviation of :math:`\\ln \\alpha` across windows (0: the null).
    window_s : float
        Window length (the sine has a one-day period over the windows' start times).
    seed : int
        Seed of the gaps.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    if sizes.ndim != 1 or sizes.size == 0 or np.any(sizes < 1):
        raise ValueError(f"sizes must be a non-empty 1-D array of positive counts; got {sizes!r}")
    if not (shape > 0 and log_shape_sd >= 0):
        raise ValueError(f"shape must be > 0 and log_shape_sd >= 0; got {shape!r}, {log_shape_sd!r}")
    rng = np.random.default_rng([int(seed), 16])
    start = np.arange(sizes.size) * window_s
    phase = 2 * np.pi * start / DAY_S
    alpha = shape * np.exp(log_shape_sd * math.sqrt(2.0) * np.sin(phase))
    scale = (1.0 / alpha) * 2.0 ** np.sin(phase + 1.0)  # mean gap 1 s times a rate cycle of max/min 4
    window = np.repeat(np.arange(sizes.size), sizes)
    gaps = rng.gamma(alpha[window], scale[window])
    gaps = np.maximum(gaps, np.finfo(float).tiny)  # a gap that underflows to 0 would not be positive
    mean = np.bincount(window, weights=gaps, minlength=sizes.size) / sizes
    mean_log = np.bincount(window, weights=np.log(gaps), minlength=sizes.size) / sizes
    return WindowTrace(sizes.astype(float), mean, mean_log, alpha)


def run(*, seeds: int, windows: int, min_gaps: int, max_gaps: int, ratios: tuple[float, ...], shape: float,
        max_sim_gaps: int, replicates: int, level: float, size_seed: int, on_row=None) -> list[dict]:
    """Rejections of the unsampled and the sampled test per scenario (see the module docstring);
    ``on_row`` is called with each row as soon as it is done."""
    sizes = np.random.default_rng([int(size_seed), 17]).integers(min_gaps, max_gaps + 1, windows)
    scenarios = [("null", 0.0)] + [(f"shift R={r:g}", log_sine_sd(r)) for r in ratios]
    rows = []
    for name, delta in scenarios:
        for mode, bound in (("unsampled", None), ("sampled", max_sim_gaps)):
            p, holds, effect, used = [], [], [], []
            started = time.perf_counter()
            for seed in range(seeds):
                tr = simulate_windows(sizes, shape=shape, log_shape_sd=delta, seed=seed)
                test = gamma_shape_shift_test(tr.n_gaps, tr.mean_gap, tr.mean_log_gap, level=level,
                                              replicates=replicates, seed=seed, max_sim_gaps=bound)
                p.append(test.p_value)
                holds.append(test.decision == "holds")
                effect.append(test.effect_value)
                used.append(test.n)
            k = int(np.sum(np.asarray(p) < level))
            lo = float(stats.beta.ppf(0.025, k, seeds - k + 1)) if k > 0 else 0.0
            hi = float(stats.beta.ppf(0.975, k + 1, seeds - k)) if k < seeds else 1.0
            rows.append({"scenario": name, "sd_ln_alpha": delta, "mode": mode, "traces": seeds, "rejected": k,
                         "rate": k / seeds, "ci_lo": lo, "ci_hi": hi, "holds": int(np.sum(holds)),
                         "median_effect": float(np.median(effect)), "windows_tested": int(np.median(used)),
                         "seconds": time.perf_counter() - started})
            if on_row is not None:
                on_row(rows[-1])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=40, help="traces per scenario (default 40)")
    parser.add_argument("--windows", type=int, default=504, help="windows per trace (default 504: 7 days of 20 min)")
    parser.add_argument("--min-gaps", type=int, default=100)
    parser.add_argument("--max-gaps", type=int, default=300)
    parser.add_argument("--ratios", default="2,3", help="max/min of the shape in the positive controls (default 2,3)")
    parser.add_argument("--shape", type=float, default=0.5, help="alpha_0 (default 0.5: CV 1.41)")
    parser.add_argument("--max-sim-gaps", type=int, default=Budget.full().max_sim_gaps,
                        help="bound of the sampled test (default Budget.full().max_sim_gaps)")
    parser.add_argument("--replicates", type=int, default=Budget.full().n_sim, help="bootstrap replicates (default full budget's)")
    parser.add_argument("--level", type=float, default=DEFAULT_LEVEL)
    parser.add_argument("--size-seed", type=int, default=0)
    opts = parser.parse_args(argv)
    ratios = tuple(float(r) for r in opts.ratios.split(",") if r)
    total = int(np.random.default_rng([opts.size_seed, 17]).integers(opts.min_gaps, opts.max_gaps + 1, opts.windows).sum())
    print(f"shape-shift test, sampled vs unsampled: {opts.windows} windows of {opts.min_gaps}-{opts.max_gaps} Gamma gaps "
          f"({total:,} gaps; max_sim_gaps {opts.max_sim_gaps:,}), alpha_0 {opts.shape:g}, B={opts.replicates}, "
          f"level {opts.level:g}, seeds 0-{opts.seeds - 1}, window sizes seed {opts.size_seed}")
    print(f"{'scenario':<12} {'SD ln a':>7} {'mode':<10} {'p<level':>8} {'rate':>6} {'95% CI':>15} {'holds':>6} "
          f"{'med. effect':>11} {'windows':>7} {'s':>6}", flush=True)

    def show(r: dict) -> None:
        print(f"{r['scenario']:<12} {r['sd_ln_alpha']:7.3f} {r['mode']:<10} {r['rejected']:>3}/{r['traces']:<4} "
              f"{r['rate']:6.3f} [{r['ci_lo']:.3f}, {r['ci_hi']:.3f}] {r['holds']:>6} {r['median_effect']:11.3f} "
              f"{r['windows_tested']:>7} {r['seconds']:6.1f}", flush=True)

    run(seeds=opts.seeds, windows=opts.windows, min_gaps=opts.min_gaps, max_gaps=opts.max_gaps, ratios=ratios,
        shape=opts.shape, max_sim_gaps=opts.max_sim_gaps, replicates=opts.replicates, level=opts.level,
        size_seed=opts.size_seed, on_row=show)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
