"""The decision rule (holds / does not hold / inconclusive), NullTest records and Finding.tests."""
from __future__ import annotations

import itertools
import json

import pytest

from servelab.analysis.findings import Finding, Verdict
from servelab.fitting.verdicts import JOIN_RULES, NullTest, combine, decide, join_verdicts


def _test(decision: str = "holds", **kw) -> NullTest:
    base = dict(null="stationary Poisson", statistic="chi-square", value=1.0, p_value=0.01, level=0.05,
                effect="excess CV", effect_value=0.4, practical_threshold=0.2, paper_effect=0.35, power=0.9,
                minimum_detectable_effect=0.25, alternative="sine x3", method="asymptotic", n=10, decision=decision,
                reason="r")
    base.update(kw)
    return NullTest(**base)


def test_decide_needs_significance_and_practical_effect_for_holds():
    common = dict(level=0.05, practical_threshold=0.2, power=0.9, mde=0.25, paper_effect=0.35)
    assert decide(p_value=0.01, effect_value=0.3, **common)[0] is Verdict.HOLDS
    # significant but below the practical threshold, with power: does not hold
    assert decide(p_value=1e-9, effect_value=0.05, **common)[0] is Verdict.DOES_NOT_HOLD
    # beyond the threshold but not significant, with power: does not hold
    assert decide(p_value=0.2, effect_value=0.3, **common)[0] is Verdict.DOES_NOT_HOLD


def test_decide_without_power_is_inconclusive_and_says_what_is_missing():
    verdict, why = decide(p_value=0.3, level=0.05, effect_value=0.1, practical_threshold=0.2, power=0.4, mde=0.6,
                          paper_effect=0.35, missing="only 4 windows")
    assert verdict is Verdict.INCONCLUSIVE
    assert "power 40%" in why and "only 4 windows" in why and "minimum detectable effect 0.6" in why
    assert decide(p_value=None, level=0.05, effect_value=0.1, practical_threshold=0.2, power=None, mde=None,
                  paper_effect=0.35)[0] is Verdict.INCONCLUSIVE


def test_combine_parts():
    h, n, i = _test("holds"), _test("does not hold"), _test("inconclusive")
    assert combine([h, h])[0] is Verdict.HOLDS
    assert combine([h, n, i])[0] is Verdict.DOES_NOT_HOLD
    verdict, text = combine([h, i], parts=["rate", "CV"])
    assert verdict is Verdict.INCONCLUSIVE and text == "rate: holds; CV: inconclusive"
    with pytest.raises(ValueError, match="at least one test"):
        combine([])
    with pytest.raises(ValueError, match="must name each of the 2 tests"):
        combine([h, i], parts=["rate"])


def test_join_verdicts_all_and_any_over_every_combination():
    """Both rules over every sequence of 1-3 verdicts, against the rules written as counts; "all"
    is combine's rule, and "any" is its dual (swap holds and does not hold)."""
    three = (Verdict.HOLDS, Verdict.DOES_NOT_HOLD, Verdict.INCONCLUSIVE)
    swap = {Verdict.HOLDS: Verdict.DOES_NOT_HOLD, Verdict.DOES_NOT_HOLD: Verdict.HOLDS,
            Verdict.INCONCLUSIVE: Verdict.INCONCLUSIVE}
    for k in (1, 2, 3):
        for parts in itertools.product(three, repeat=k):
            n_holds, n_not = parts.count(Verdict.HOLDS), parts.count(Verdict.DOES_NOT_HOLD)
            want_all = (Verdict.HOLDS if n_holds == k else Verdict.DOES_NOT_HOLD if n_not else Verdict.INCONCLUSIVE)
            want_any = (Verdict.HOLDS if n_holds else Verdict.DOES_NOT_HOLD if n_not == k else Verdict.INCONCLUSIVE)
            assert join_verdicts(parts, rule="all") is want_all, parts
            assert join_verdicts(parts, rule="any") is want_any, parts
            assert join_verdicts(parts) is want_all  # "all" by default
            assert join_verdicts([swap[p] for p in parts], rule="any") is swap[want_all]
            assert combine([_test(p.value) for p in parts])[0] is want_all
    assert join_verdicts(["holds", "inconclusive"], rule="any") is Verdict.HOLDS  # values are taken too
    assert set(JOIN_RULES) == {"all", "any"}
    with pytest.raises(ValueError, match="at least one verdict"):
        join_verdicts([], rule="any")
    with pytest.raises(ValueError, match=r"rule must be one of \['all', 'any'\]; got 'some'"):
        join_verdicts([Verdict.HOLDS], rule="some")


def test_nulltest_validates_level_and_serialises_flat_scalars():
    with pytest.raises(ValueError, match="level must be in"):
        _test(level=1.5)
    t = _test(minimum_detectable_effect=float("inf"))
    d = t.to_dict()
    assert d["decision"] == "holds" and d["minimum_detectable_effect"] is None
    assert all(isinstance(v, (int, float, str, bool, type(None))) for v in d.values())
    assert t.significant and "holds: null = stationary Poisson" in t.summary()


def test_finding_carries_tests_to_json_and_back():
    f = Finding("servegen.F2", "Rates shift.", "ServeGen", Verdict.HOLDS, {"n": 3}, "why", ("fig",),
                tests=(_test(), {"null": "x", "decision": "inconclusive"}))
    d = json.loads(json.dumps(f.to_dict()))
    assert d["tests"][0]["null"] == "stationary Poisson" and d["tests"][1] == {"null": "x", "decision": "inconclusive"}
    back = Finding.from_dict(d)
    assert back.tests[0]["p_value"] == 0.01 and back == Finding.from_dict(back.to_dict())
    # old callers: no tests, no "tests" key, same dictionary as before
    old = Finding("a.b", "s", "src", "holds")
    assert "tests" not in old.to_dict() and old.tests == ()
    with pytest.raises(TypeError, match="mappings or objects with to_dict"):
        Finding("a.b", "s", "src", "holds", tests=(3,))
    with pytest.raises(TypeError, match="scalars only"):
        Finding("a.b", "s", "src", "holds", tests=({"x": [1, 2]},))


def test_minimum_detectable_effect_inverts_a_known_power_curve():
    """Against a closed form: power(c) = c on [0, 1] reaches 0.8 at c = 0.8; a curve that never
    reaches the target gives an infinite MDE."""
    import math

    from servelab.fitting.verdicts import POWER_TARGET, minimum_detectable_effect

    assert minimum_detectable_effect(lambda c: c, lower=0.0, upper=1.0) == pytest.approx(POWER_TARGET, abs=1e-12)
    assert minimum_detectable_effect(lambda c: 0.5 * c, lower=0.0, upper=1.0) == math.inf
    assert minimum_detectable_effect(lambda c: c, lower=0.0, upper=2.0, check_at=0.5) == math.inf
