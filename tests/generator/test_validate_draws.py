"""``servelab validate --draws K`` (issue 17): several seeded draws per generator, their means, and
a paired test of the expected scores over draws. The CLI and validate.json with two draws are
checked in test_validation.py (``test_cli_writes_validate_json_tables_and_figure``)."""
from __future__ import annotations

import numpy as np
import pytest
from servelab.generator.validation import (
    DEFAULT_DRAWS,
    DRAWS_MAX_REQUESTS,
    default_draws,
    draw_comparison,
    draw_seeds,
)


def test_draw_seeds_and_the_default_count():
    assert draw_seeds(7, 1) == (7,)  # one draw is the single-draw validation's seed
    s = draw_seeds(7, 5)
    assert s[0] == 7 and len(set(s)) == 5 and s == draw_seeds(7, 5) and s[1:] != draw_seeds(8, 5)[1:]
    with pytest.raises(ValueError, match="draws must be a positive integer; got 0"):
        draw_seeds(7, 0)
    assert DEFAULT_DRAWS == 5 and default_draws(DRAWS_MAX_REQUESTS) == 5 and default_draws(DRAWS_MAX_REQUESTS + 1) == 1


def test_the_default_draws_keep_to_the_three_minute_budget():
    # measured (benchmarks/bench_validate.py part 1, 2,000-client 14-day stores): five draws on
    # 1,000,000 requests took 148.2 CPU-s and 194.1 s wall at load 10.5, over 180 s (67.3 s at
    # load 1.3); on 500,000, 42.2 s wall at load 1.2.
    # The bound must leave five draws at most half the budget in CPU at that cost per request
    # (wall / CPU reached 2 on this loaded 2-core machine)
    cpu_per_request_5_draws = 148.2 / 1_000_000
    assert default_draws(1_000_000) == 1 and default_draws(500_000) == 5
    assert DRAWS_MAX_REQUESTS * cpu_per_request_5_draws <= 180 / 2


def test_draw_comparison_scores_and_tests_paired_draws():
    ref = {"n_requests": 100.0, "input_ks": 0.0, "gap_cv": 1.0, "rate_input_corr": 0.2}
    # n_requests: servelab off by 1-5, naive by 6-10 in every draw (scores |value - 100|);
    # input_ks: a distance, naive lower in 4 of 5 draws; gap_cv: equal; rate_input_corr: NaN for naive
    ours = [101, 97, 103, 96, 105]
    theirs = [106, 93, 108, 91, 110]
    draws = [{"servelab": {"n_requests": a, "input_ks": k1, "gap_cv": 1.5, "rate_input_corr": 0.1},
              "naive": {"n_requests": b, "input_ks": k2, "gap_cv": 1.5, "rate_input_corr": None}}
             for a, b, k1, k2 in zip(ours, theirs, [0.2, 0.3, 0.1, 0.25, 0.2], [0.1, 0.2, 0.05, 0.2, 0.3])]
    t = {r["metric"]: r for r in draw_comparison(ref, draws).iter_rows(named=True)}
    n = t["n_requests"]
    assert n["servelab_mean"] == pytest.approx(100.4) and n["naive_mean"] == pytest.approx(101.6)
    assert n["servelab_sd"] == pytest.approx(np.std(ours, ddof=1))
    assert n["servelab_score"] == pytest.approx(3.2) and n["naive_score"] == pytest.approx(8.0)
    # 5 of 5 draws favour servelab, no ties: the exact one-sided signed-rank p is 1/2^5
    assert n["servelab_wins"] == 5 and n["p_servelab"] == pytest.approx(1 / 32) and n["verdict"] == "servelab"
    assert n["p_naive"] == pytest.approx(1.0)
    k = t["input_ks"]
    # differences 0.1, 0.1, 0.05, 0.05, -0.1 (naive minus servelab ... servelab worse): not 5 of 5 either way
    assert k["kind"] == "distance" and k["servelab_wins"] == 1 and k["verdict"] == "tie"
    assert k["servelab_score"] == pytest.approx(0.21) and k["naive_score"] == pytest.approx(0.17)
    assert t["gap_cv"]["verdict"] == "tie" and t["gap_cv"]["p_servelab"] == 1.0
    c = t["rate_input_corr"]
    assert c["verdict"] == "not scored" and c["draws"] == 0 and c["naive_mean"] is None
    # one draw never decides
    (one,) = draw_comparison({"n_requests": 100.0}, draws[:1]).iter_rows(named=True)
    assert one["p_servelab"] == pytest.approx(0.5) and one["verdict"] == "tie" and one["servelab_sd"] is None
    with pytest.raises(ValueError, match="at least one draw; got none"):
        draw_comparison(ref, [])
