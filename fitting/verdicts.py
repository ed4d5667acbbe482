"""The decision record of a finding: a named null, its test, its power, and the verdict rule.

:class:`NullTest` is the frozen result every calibrated test in :mod:`servelab.fitting` returns
(:mod:`~servelab.fitting.rate_tests`, :mod:`~servelab.fitting.shape_tests`,
:mod:`~servelab.fitting.fit_standard`, :mod:`~servelab.fitting.modality`,
:mod:`~servelab.fitting.correlation_tests`). :func:`decide` is the one rule that turns a test into
a verdict (:data:`DECISION_RULE`):

* **holds** -- the effect is beyond the null at the level (``p_value < level``) *and* the measured
  effect is beyond the paper's practical threshold;
* **does not hold** -- not "holds", and the test had power >= :data:`POWER_TARGET` at the paper's
  effect size (equivalently: the minimum detectable effect is at most the paper's effect);
* **inconclusive** -- otherwise, with what is missing (power, data).

:func:`combine` joins the tests of a finding with several parts (holds when every part holds,
does not hold when some part does not hold, inconclusive otherwise); :func:`join_verdicts` joins
verdicts by that rule (``"all"``) or by its dual (``"any"``: holds when some part holds, does not
hold when every part does not hold, inconclusive otherwise). This module holds no
statistics of its own, never reads data, and never imports matplotlib.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from servelab.analysis.findings import Verdict

__all__ = [
    "NullTest",
    "Decision",
    "decide",
    "combine",
    "join_verdicts",
    "JOIN_RULES",
    "minimum_detectable_effect",
    "DEFAULT_LEVEL",
    "POWER_TARGET",
    "DECISION_RULE",
]

#: significance level of every test unless the caller says otherwise
DEFAULT_LEVEL = 0.05
#: power at the paper's effect size a test needs before it may say "does not hold"
POWER_TARGET = 0.8

#: the decision rule in words (for reports and docstrings)
DECISION_RULE = (
    "holds: the effect is beyond the null at the level and beyond the paper's practical threshold; "
    f"does not hold: otherwise, by a test with power >= {POWER_TARGET:.0%} at the paper's effect size; "
    "inconclusive: otherwise (too little data to tell)"
)


#: the rules of :func:`join_verdicts`, in words
JOIN_RULES = {
    "all": "holds when every part holds, does not hold when some part does not hold, inconclusive otherwise",
    "any": "holds when some part holds, does not hold when every part does not hold, inconclusive otherwise",
}


class Decision(NamedTuple):
    """A verdict and the sentence saying why (:func:`decide`, :func:`combine`; unpacks as ``verdict, reason``).

    Parameters
    ----------
    verdict : Verdict
    reason : str
    """

    verdict: Verdict
    reason: str


@dataclass(frozen=True)
class NullTest:
    """A finding decided against a named null hypothesis.

    Parameters
    ----------
    null : str
        The null hypothesis in words a reader can check (e.g. "stationary Poisson arrivals at the
        trace's mean rate, given each window's covered time").
    statistic : str
        Name of the test statistic (e.g. "Pearson chi-square of window counts").
    value : float
        Its value on this trace.
    p_value : float or None
        P-value under the null (None when the test gives an interval instead).
    level : float
        Significance level.
    effect : str
        Name of the effect size the practical threshold applies to.
    effect_value : float
        The measured effect.
    practical_threshold : float
        Smallest effect the paper's claim counts (the effect must exceed it for "holds").
    paper_effect : float
        The effect size the paper reports (the alternative of ``power``).
    power : float or None
        Probability of "holds" (significant and beyond the threshold) when the effect equals
        ``paper_effect`` at this trace's sample sizes.
    minimum_detectable_effect : float or None
        Smallest effect called "holds" with probability :data:`POWER_TARGET` at these sizes.
    alternative : str
        The alternative ``power`` and ``minimum_detectable_effect`` refer to, in words.
    method : str
        "exact", "asymptotic (...)", or "parametric bootstrap (B=..., seed=...)".
    n : int
        Sample size the test used (gaps, windows, requests: ``statistic`` says which).
    decision : Verdict
        From :func:`decide` (holds / does not hold / inconclusive).
    reason : str
        One sentence: why the decision follows (and what is missing when inconclusive).
    interval_low, interval_high : float or None
        A confidence interval of the effect, when the test gives one.
    """

    null: str
    statistic: str
    value: float
    p_value: float | None
    level: float
    effect: str
    effect_value: float
    practical_threshold: float
    paper_effect: float
    power: float | None
    minimum_detectable_effect: float | None
    alternative: str
    method: str
    n: int
    decision: Verdict
    reason: str
    interval_low: float | None = None
    interval_high: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "decision", Verdict(self.decision))
        if not 0.0 < self.level < 1.0:
            raise ValueError(f"level must be in (0, 1); got {self.level!r}")

    @property
    def significant(self) -> bool:
        """The null is rejected at ``level``."""
        return self.p_value is not None and self.p_value < self.level

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready flat dictionary of scalars (NaN and infinities become None)."""
        out = {
            "null": self.null, "statistic": self.statistic, "value": self.value, "p_value": self.p_value,
            "level": self.level, "effect": self.effect, "effect_value": self.effect_value,
            "practical_threshold": self.practical_threshold, "paper_effect": self.paper_effect,
            "power": self.power, "minimum_detectable_effect": self.minimum_detectable_effect,
            "alternative": self.alternative, "method": self.method, "n": self.n,
            "decision": self.decision.value, "reason": self.reason,
            "interval_low": self.interval_low, "interval_high": self.interval_high,
        }
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}

    def summary(self) -> str:
        """One line for a page: null, statistic, p, effect vs threshold, power, decision."""
        p = "n/a" if self.p_value is None else f"{self.p_value:.3g}"
        pw = "n/a" if self.power is None else f"{self.power:.0%}"
        return (f"{self.decision.value}: null = {self.null}; {self.statistic} = {self.value:.4g} (p = {p}, "
                f"level {self.level:g}, {self.method}); {self.effect} = {self.effect_value:.3g} vs practical "
                f"threshold {self.practical_threshold:.3g}; power {pw} at {self.alternative}")


def minimum_detectable_effect(power_at: Callable[[float], float], *, lower: float, upper: float,
                              check_at: float | None = None, iterations: int = 50) -> float:
    """The smallest effect in ``[lower, upper]`` detected with power :data:`POWER_TARGET`.

    Bisection on a power curve that grows with the effect; ``math.inf`` when even ``check_at``
    (default ``upper``) is detected with less power.

    Parameters
    ----------
    power_at : callable
        Effect -> power of the test at that effect (non-decreasing).
    lower, upper : float
        The bracket searched.
    check_at : float, optional
        Where to check that the target is reachable at all (default ``upper``).
    iterations : int
        Bisection steps: the bracket shrinks by 2**iterations.
    """
    if power_at(upper if check_at is None else check_at) < POWER_TARGET:
        return math.inf
    lo, hi = lower, upper
    for _ in range(iterations):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if power_at(mid) >= POWER_TARGET else (mid, hi)
    return hi


def decide(*, p_value: float | None, level: float, effect_value: float, practical_threshold: float,
           power: float | None, mde: float | None, paper_effect: float, larger_is_effect: bool = True,
           missing: str = "") -> Decision:
    """Apply :data:`DECISION_RULE`.

    Parameters
    ----------
    p_value, level : float
        The test's p-value and level (``p_value`` None: the test could not run).
    effect_value, practical_threshold : float
        The measured effect and the paper's practical threshold.
    power : float or None
        Power of "holds" at ``paper_effect``.
    mde : float or None
        Minimum detectable effect (for the reason).
    paper_effect : float
        The paper's effect size.
    larger_is_effect : bool
        True when the claim is "effect above the threshold" (every test here); False flips it.
    missing : str
        Extra words for the inconclusive reason (e.g. "only 4 windows with 10+ gaps").

    Returns
    -------
    Decision
        ``(verdict, reason)``: the decision and one sentence saying why.
    """
    if p_value is None or not math.isfinite(effect_value):
        return Decision(Verdict.INCONCLUSIVE, "the test could not run" + (f" ({missing})" if missing else ""))
    significant = p_value < level
    beyond = effect_value > practical_threshold if larger_is_effect else effect_value < practical_threshold
    sig_txt = f"p = {p_value:.3g} {'<' if significant else '>='} {level:g}"
    side = ("beyond" if beyond else "within") if larger_is_effect else ("below" if beyond else "not below")
    eff_txt = f"effect {effect_value:.3g} {side} the practical threshold {practical_threshold:.3g}"
    if significant and beyond:
        return Decision(Verdict.HOLDS, f"{sig_txt} and {eff_txt}")
    pw_txt = "power unknown" if power is None else f"power {power:.0%} at the paper's effect {paper_effect:.3g}"
    if mde is not None and math.isfinite(mde):
        pw_txt += f", minimum detectable effect {mde:.3g}"
    if power is not None and power >= POWER_TARGET:
        return Decision(Verdict.DOES_NOT_HOLD, f"{sig_txt}, {eff_txt}; {pw_txt}")
    why = f"{sig_txt}, {eff_txt}, but {pw_txt} (< {POWER_TARGET:.0%}): too little data to rule the effect out"
    if missing:
        why += f" ({missing})"
    return Decision(Verdict.INCONCLUSIVE, why)


def combine(tests: Iterable[NullTest], *, parts: Iterable[str] | None = None) -> Decision:
    """Join the tests of a finding made of several parts.

    Holds when every part holds, does not hold when some part does not hold, inconclusive
    otherwise. ``parts`` names the parts in the reason (default: the tests' statistics).

    Raises
    ------
    ValueError
        If ``tests`` is empty or ``parts`` has a different length.
    """
    tests = tuple(tests)
    if not tests:
        raise ValueError("combine needs at least one test; got none")
    names = tuple(parts) if parts is not None else tuple(t.statistic for t in tests)
    if len(names) != len(tests):
        raise ValueError(f"parts must name each of the {len(tests)} tests; got {len(names)} names")
    text = "; ".join(f"{name}: {t.decision.value}" for name, t in zip(names, tests))
    return Decision(join_verdicts([t.decision for t in tests], rule="all"), text)


def join_verdicts(verdicts: Iterable[Verdict], *, rule: str = "all") -> Verdict:
    """The verdict of a finding made of parts, from the parts' verdicts (:data:`JOIN_RULES`).

    Parameters
    ----------
    verdicts : iterable of Verdict
        The parts' verdicts (holds / does not hold / inconclusive).
    rule : {"all", "any"}
        ``"all"`` (the claim needs every part; :func:`combine`'s rule): holds when every part
        holds, does not hold when some part does not hold, inconclusive otherwise. ``"any"``
        (some part suffices): holds when some part holds, does not hold when every part does not
        hold, inconclusive otherwise.

    Returns
    -------
    Verdict

    Raises
    ------
    ValueError
        If ``verdicts`` is empty or ``rule`` is not one of :data:`JOIN_RULES`.
    """
    if rule not in JOIN_RULES:
        raise ValueError(f"rule must be one of {sorted(JOIN_RULES)}; got {rule!r}")
    decisions = [Verdict(v) for v in verdicts]
    if not decisions:
        raise ValueError("join_verdicts needs at least one verdict; got none")
    if rule == "all":
        if all(d is Verdict.HOLDS for d in decisions):
            return Verdict.HOLDS
        if any(d is Verdict.DOES_NOT_HOLD for d in decisions):
            return Verdict.DOES_NOT_HOLD
        return Verdict.INCONCLUSIVE
    if any(d is Verdict.HOLDS for d in decisions):
        return Verdict.HOLDS
    if all(d is Verdict.DOES_NOT_HOLD for d in decisions):
        return Verdict.DOES_NOT_HOLD
    return Verdict.INCONCLUSIVE
