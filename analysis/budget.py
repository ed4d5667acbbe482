"""How much work an analysis may do: sample sizes, bootstrap replicates and request caps.

A :class:`Budget` replaces the ``quick`` flag that used to be read in about ten places as literals
(``100_000 if quick else 1_000_000``). The report, the per-area commands and the areas take one
``budget=``; ``--quick`` means :meth:`Budget.quick`, the default :meth:`Budget.full`. A budget
only says how much may be sampled or repeated; it never changes what is measured, and every
sample drawn under it takes a seed from the caller.

This module sits at the bottom of the layers (it imports nothing from servelab) so that analysis,
fitting and reports can all take it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["Budget"]


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Budget.{name} must be a positive integer; got {value!r}")


@dataclass(frozen=True)
class Budget:
    """Sample sizes and repetition counts of the analyses (numbers only, no data).

    Parameters
    ----------
    label : str
        ``"full"``, ``"quick"`` or a name of your own (shown in notes and the report's JSON).
    max_fit_n : int
        Whole-trace family fits (arrival gaps, input and output lengths) use a seeded subsample of
        at most this many values.
    max_group_fit_n : int
        Per-window and per-group arrival family fits use at most this many gaps each.
    n_boot : int
        Parametric-bootstrap replicates of the whole-trace arrival fits' p-values.
    max_requests : int or None
        Areas that may measure on a subset of the trace do so above this many requests: request
        data and conversations on a seeded hash sample, arrivals and clients on the trace's first
        whole hours holding about this many requests (gaps and windows need every request of a
        span); None measures every request.
    max_itt_fit_n : int
        Inter-turn times and the conversation section's gap fits use at most this many values.
    max_reason_n : int
        Reasoning-ratio bimodality per top client uses at most this many ratios per client.
    max_bimodality_n : int
        Reasoning-ratio bimodality (whole trace and per client) uses at most this many ratios.
    prefix_exact_max_blocks : int
        The prefix analysis is exact up to this many prompt blocks and sampled above
        (:mod:`servelab.analysis.prefix_sampled`: exact counts, sampled LRU curve).
    prefix_sample_blocks : int
        Block accesses the sampled prefix analysis keeps for its LRU curve.
    n_sim : int
        Replicates of the simulated null distributions (the Gamma shape-shift tests of the arrival
        windows; their power uses at most 99 of them).
    max_sim_gaps : int
        Gaps a shape-shift test simulates one by one per replicate: above it the test runs on a
        seeded sample of whole windows holding at most this many
        (:func:`servelab.fitting.shape_tests.gamma_shape_shift_test`, ``max_sim_gaps``).
    generation_period_s : float
        Length of the stable and the variable period of the generation-fidelity experiment.
    max_validation_requests : int
        The out-of-sample validation area runs on a seeded sample of whole clients holding at most
        this many requests (:func:`servelab.generator.validation.sample_clients`) when the trace has more.
    max_generation_requests : int
        The generation-fidelity experiment fits, generates and compares each period on a seeded
        hash sample of whole clients holding about this many requests when the period holds more
        (:func:`servelab.reports.areas.generation.fidelity_experiment`), said in its notes. Full
        10^5, quick 2*10^4.
    max_conversation_requests : int or None
        The conversations area links, describes, fits and upsamples at most about this many
        requests (without ``max_requests``: the trace's leading whole days; with it, whole
        conversations by a seeded hash of their id:
        :func:`servelab.reports.areas.conversations.quick_subset`, with Fig. 16 and F10 on the
        leading span, since a hash sample thins every window) and says so in its notes; the
        smaller of this and ``max_requests`` applies; None: no bound of its own. Full None: on a
        10 M-row synthetic trace, both a 2*10^6 hash sample and the first 2 days turned F10 from
        "does not hold" into "holds" (its window CVs depend on the rate and the days), so full mode
        links every request (``report --section conversations`` there: 34.3 CPU-s and 2.7 GB with
        polars linking, 20.5 CPU-s and 1.2 GB with conversation ids linked in SQL); quick 10^6.
    forecast_max_iter : int
        Boosting iterations of the load forecasts. :meth:`quick` keeps the full 100: the forecasts
        read per-bin counts and take about a second on 10 M requests, and 50 iterations changed the
        forecasting verdict of a 10 M-row synthetic trace.

    Raises
    ------
    ValueError
        If a count is not a positive integer or the period is not positive.
    """

    label: str = "full"
    max_fit_n: int = 1_000_000
    max_group_fit_n: int = 5_000
    n_boot: int = 200
    max_requests: int | None = None
    max_itt_fit_n: int = 200_000
    max_reason_n: int = 20_000
    max_bimodality_n: int = 50_000
    generation_period_s: float = 3 * 3600.0
    forecast_max_iter: int = 100
    n_sim: int = 199
    max_sim_gaps: int = 50_000
    max_validation_requests: int = 150_000
    max_conversation_requests: int | None = None
    max_generation_requests: int = 100_000
    prefix_exact_max_blocks: int = 30_000_000
    prefix_sample_blocks: int = 1_000_000

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not self.label:
            raise ValueError(f"Budget.label must be a non-empty string; got {self.label!r}")
        for name in ("max_fit_n", "max_group_fit_n", "n_boot", "max_itt_fit_n", "max_reason_n",
                     "max_bimodality_n", "forecast_max_iter", "n_sim", "max_sim_gaps", "max_validation_requests",
                     "max_generation_requests",
                     "prefix_exact_max_blocks", "prefix_sample_blocks"):
            _positive_int(name, getattr(self, name))
        for name in ("max_requests", "max_conversation_requests"):
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        period = self.generation_period_s
        if isinstance(period, bool) or not isinstance(period, (int, float)) or not period > 0:
            raise ValueError(f"Budget.generation_period_s must be a positive number of seconds; got {period!r}")

    @classmethod
    def full(cls) -> Budget:
        """Full mode: 10^6 values per whole-trace fit, 5,000 per window or group, 200 bootstrap
        replicates, every request measured, 3 h generation periods (at most 10^5 requests each),
        199 null-simulation replicates on at most 50,000 gaps simulated one by one, 150,000 requests
        (whole clients) for out-of-sample validation."""
        return cls()

    @classmethod
    def quick(cls) -> Budget:
        """Quick mode for very large traces: 10^5 values per whole-trace fit, 2,000 per window or
        group, 99 bootstrap replicates, about 10^6 requests per subsampled area, 20,000 inter-turn
        times, 5,000 reason ratios per top client, 2*10^4 for bimodality, 30 min generation periods
        (at most 2*10^4 requests each), 99 replicates of the simulated null distributions on at most
        20,000 gaps, 50,000 requests for out-of-sample validation, 10^6 requests for the conversations
        area."""
        return cls(label="quick", max_fit_n=100_000, max_group_fit_n=2_000, n_boot=99, max_requests=1_000_000,
                   max_itt_fit_n=20_000, max_reason_n=5_000, max_bimodality_n=20_000, generation_period_s=1800.0,
                   n_sim=99, max_sim_gaps=20_000, max_validation_requests=50_000,
                   max_conversation_requests=1_000_000, max_generation_requests=20_000)

    @property
    def is_full(self) -> bool:
        """True when this budget equals :meth:`full` (whatever its label)."""
        return dataclasses.replace(self, label="full") == Budget.full()

    def replace(self, **changes: object) -> Budget:
        """A copy with ``changes`` (field name -> value), validated like a new budget."""
        return dataclasses.replace(self, **changes)
