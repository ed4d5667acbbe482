r"""Exact test that a share exceeds a threshold (counting claims: BurstGPT's "over 35 % of
conversations end with one request", ServeGen F11's "most clients are not bursty").

Null: *the share is at most the threshold* :math:`p_0`. Statistic: the count :math:`k` of
:math:`n`, exact one-sided binomial p-value :math:`P(K \ge k \mid n, p_0)`. "Holds" needs the
p-value below the level (the observed share then exceeds :math:`p_0`); power is exact at the
paper's share, :math:`P(K \ge k^* \mid n, p_1)` with :math:`k^*` the smallest significant count,
and the minimum detectable share solves power = 80 %. Units too small to show an effect must be
left out of :math:`n` by the caller (e.g. one-request clients cannot show a rate shift).
Nothing here reads a store or plots.
"""
from __future__ import annotations


from scipy import stats

from servelab.fitting.verdicts import DEFAULT_LEVEL, NullTest, decide, minimum_detectable_effect

__all__ = ["proportion_test"]


def proportion_test(k: int, n: int, *, threshold: float, paper_share: float, level: float = DEFAULT_LEVEL,
                    what: str = "units") -> NullTest:
    """Is the share ``k / n`` above ``threshold``?

    Parameters
    ----------
    k, n : int
        Units showing the property, units that could show it.
    threshold : float
        The claim's share (e.g. 0.35).
    paper_share : float
        The share the paper reports (the alternative of ``power``); must exceed ``threshold``.
    level : float
        One-sided significance level.
    what : str
        The units, for the null's words (e.g. "conversations with one request").

    Raises
    ------
    ValueError
        ``k`` outside 0..n, ``n`` < 1, or shares outside (0, 1) / ``paper_share <= threshold``.
    """
    if not (isinstance(n, int) and n >= 1 and isinstance(k, int) and 0 <= k <= n):
        raise ValueError(f"need integers 0 <= k <= n with n >= 1; got k={k!r}, n={n!r}")
    if not (0 < threshold < paper_share < 1):
        raise ValueError(f"need 0 < threshold < paper_share < 1; got threshold={threshold!r}, "
                         f"paper_share={paper_share!r}")
    p = float(stats.binom.sf(k - 1, n, threshold))
    k_star = int(stats.binom.isf(level, n, threshold)) + 1  # smallest k with P(K >= k) <= level
    while k_star > 0 and stats.binom.sf(k_star - 2, n, threshold) <= level:
        k_star -= 1

    def power_at(q: float) -> float:
        return float(stats.binom.sf(k_star - 1, n, q)) if k_star <= n else 0.0

    power = power_at(paper_share)
    mde = minimum_detectable_effect(power_at, lower=threshold, upper=1.0, check_at=1.0 - 1e-12)
    share = k / n
    verdict, why = decide(p_value=p, level=level, effect_value=share, practical_threshold=threshold, power=power,
                          mde=mde, paper_effect=paper_share)
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=1 - 2 * level, method="exact")
    return NullTest(null=f"the share of {what} is at most {threshold:g}", statistic="count (exact binomial)",
                    value=float(k), p_value=p, level=level, effect=f"share of {what}", effect_value=share,
                    practical_threshold=threshold, paper_effect=paper_share, power=power,
                    minimum_detectable_effect=mde, alternative=f"a true share of {paper_share:g}", method="exact",
                    n=n, decision=verdict, reason=f"{k} of {n} ({share:.1%}); {why}",
                    interval_low=float(ci.low), interval_high=float(ci.high))
