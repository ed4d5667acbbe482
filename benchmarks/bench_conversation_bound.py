"""Known truth for the quick-mode conversations bound (``Budget.quick().max_conversation_requests``).

Above the bound (the smaller of ``max_conversation_requests`` and ``max_requests``) the
conversations area measures a seeded hash sample of whole conversations
(:func:`servelab.reports.areas.conversations.quick_subset`), and ServeGen Finding 10 is decided on
that sample. This benchmark simulates traces linked by ``conversation_id`` whose F10 answer is
known by construction, runs F10 on the whole trace ("unbounded") and under a bound that keeps the
stated share of the requests ("bounded", the quick budget's 10^6 on a 10^7-row trace is 10 %), and
prints, per scenario, how often each says "holds", and how often the two agree.

The traces (:func:`simulate_trace`), ``days`` long at ``rate`` requests per second:

* one-request conversations arrive as a renewal process with Gamma gaps of shape ``single_shape``
  (CV ``1/sqrt(shape)``); they are ``1 - multi_share`` of the requests;
* multi-turn conversations start as a Poisson process, have 2 + Poisson(``mean_turns - 2``) turns
  spaced by exponential inter-turn times of mean ``itt_s`` (short against the time between
  conversation starts: each conversation is a burst).

Scenarios:

``positive``
    Poisson singles (CV 1) and 30 % of the requests in bursty conversations: the trace is calm
    (window CV near 1, F10's "less bursty" part holds) and naive upsampling, which compresses the
    bursts with everything else, is burstier than ITT upsampling, which keeps the turns' own spacing
    and lets many more conversations overlap ("conversations calm arrivals" holds). F10 holds.
``null``
    The same conversations, singles with Gamma shape 0.4 gaps (CV 1.58): the trace is bursty, most
    windows have CV above F10's 1.2, so F10's "less bursty" part does not hold and neither does F10.
    A sample of 10 % of the conversations and singles thins the singles' renewal process, whose
    squared CV goes to ``p CV^2 + 1 - p`` (1.15 at p = 0.1, CV 1.07): the bound can make it calm.

Columns: ``unbounded`` (every request), ``bounded`` (quick mode: the conversations bound and
``max_requests`` at the share; since this benchmark, Fig. 16 and F10 run on the leading span while
the conversations are described on the hash sample), ``span`` (only the conversations bound, as
a full-mode bound: everything on the leading span), with the calm windows and the windows where
ITT upsampling is calmer than naive for each.

Results (``--seeds 6 --days 10 --rate 0.2``: about 172,800 requests and 1,440 windows per trace,
bound 10 %, so the span is the first day; seeds 0-5, load 15-19, 64 s and 91 s):

* before (917bae7: quick mode measured Fig. 16 and F10 on the hash sample): positive control
  F10 holds 6/6 unbounded, 6/6 bounded, 6/6 span; null 0/6 unbounded, **6/6 bounded** (false
  "holds": 0/6 agreement with the unbounded verdict; the thinned singles are calm: 1,040-1,066 of
  about 1,425 windows with CV <= 1.2 against 155-181 of 1,440 unbounded, median window CV
  1.16-1.24 against 1.36-1.38), 0/6 span.
* after (Fig. 16 and F10 on the leading span): positive 6/6 holds in every column (power 6/6);
  null 0/6 holds in every column (false-positive rate 0/6, 95 % CI 0-46 %); bounded agrees with
  unbounded in 12/12. Seeds 6-19 (``--seeds 14 --first-seed 6``, under the bench lock, load 8-14,
  420 s): positive 14/14, null 0/14 in every column. Over seeds 0-19: power 20/20, false "holds"
  0/20 (95 % CI 0-16.8 %), bounded agrees with unbounded in 40/40.

Command line::

    python benchmarks/bench_conversation_bound.py                     # 20 seeds per scenario
    python benchmarks/bench_conversation_bound.py --seeds 5 --share 0.1 --days 2

It measures and prints; it asserts nothing (tests/reports/test_conversation_bound_truth.py runs
one small case).
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
import polars as pl

__all__ = ["SCENARIOS", "Scenario", "f10_verdict", "main", "simulate_trace"]


@dataclass(frozen=True)
class Scenario:
    """A simulated trace's parameters (see the module docstring)."""

    name: str
    single_shape: float
    multi_share: float = 0.3
    mean_turns: float = 8.0
    itt_s: float = 20.0
    truth: str = "holds"


SCENARIOS = {
    "positive": Scenario("positive", single_shape=1.0, truth="holds"),
    "null": Scenario("null", single_shape=0.4, truth="does not hold"),
}


def simulate_trace(scenario: Scenario, *, days: float = 2.0, rate: float = 1.0, seed: int = 0) -> pl.DataFrame:
    """``timestamp, conversation_id`` of a trace of about ``days * 86400 * rate`` requests.

    Every random draw comes from ``numpy.random.default_rng(seed)``; timestamps are rounded to
    the millisecond (a 1-ms logging clock, as the synthetic stores have).
    """
    if not (days > 0 and rate > 0):
        raise ValueError(f"days and rate must be positive; got days={days!r}, rate={rate!r}")
    rng = np.random.default_rng(seed)
    span = days * 86_400.0
    n = span * rate
    # singles: a stationary Gamma renewal process (first arrival from the equilibrium: a uniform
    # start inside the first gap is enough at thousands of gaps)
    n_single = int(round(n * (1 - scenario.multi_share)))
    mean_gap = span / n_single
    gaps = rng.gamma(scenario.single_shape, mean_gap / scenario.single_shape, int(n_single * 1.2) + 100)
    singles = np.cumsum(gaps) - rng.uniform(0, gaps[0])
    singles = singles[(singles >= 0) & (singles < span)]
    # conversations: Poisson starts, 2 + Poisson(mean_turns - 2) turns, exponential ITTs
    n_conv = rng.poisson(n * scenario.multi_share / scenario.mean_turns)
    starts = rng.uniform(0, span, n_conv)
    turns = 2 + rng.poisson(scenario.mean_turns - 2, n_conv)
    conv = np.repeat(np.arange(n_conv), turns)
    first = np.cumsum(turns) - turns
    itt = rng.exponential(scenario.itt_s, conv.size)
    itt[first] = 0.0
    csum = np.cumsum(itt)
    t_multi = starts[conv] + csum - np.repeat(csum[first], turns)
    keep = t_multi < span
    t = np.concatenate([singles, t_multi[keep]])
    ids = np.concatenate([np.arange(singles.size) + n_conv, conv[keep]])  # singles: ids after the conversations'
    return pl.DataFrame({"timestamp": np.round(t, 3), "conversation_id": pl.Series(ids).cast(pl.String)})


def f10_verdict(frame: pl.DataFrame, *, max_requests: int | None, seed: int = 0,
                subset: str = "hash") -> tuple[str, dict]:
    """F10's verdict and measured values on ``frame`` under the quick budget with the bound
    ``max_requests`` (None: every request).

    ``subset="hash"``: the conversations bound and ``max_requests`` both set to it, as quick mode
    has them (a seeded hash sample of whole conversations); ``"span"``: the conversations bound
    only, as full mode would apply one (the trace's leading whole days,
    :func:`~servelab.reports.areas.conversations.quick_span`)."""
    if subset not in ("hash", "span"):
        raise ValueError(f"subset must be 'hash' or 'span'; got {subset!r}")
    from servelab.analysis.budget import Budget
    from servelab.analysis.store import write_store
    from servelab.reports.areas.conversations import CONVERSATIONS
    from servelab.reports.findings.conversations import servegen_f10
    import tempfile

    budget = Budget.quick().replace(max_requests=max_requests if subset == "hash" else None,
                                    max_conversation_requests=max_requests)
    with tempfile.TemporaryDirectory(prefix="servelab-f10-bound-") as tmp:
        store = write_store(frame, f"{tmp}/store")
        ev = CONVERSATIONS.measure(store, budget=budget, seed=seed, aggregate=False)
    f = servegen_f10(ev)
    return f.verdict.value, dict(f.measured)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds per scenario (default 20)")
    parser.add_argument("--first-seed", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--days", type=float, default=2.0)
    parser.add_argument("--rate", type=float, default=1.0, help="requests per second (default 1)")
    parser.add_argument("--share", type=float, default=0.1, help="share of requests the bound keeps (default 0.1)")
    parser.add_argument("--scenarios", default="positive,null")
    args = parser.parse_args(argv)
    for name in args.scenarios.split(","):
        sc = SCENARIOS[name]
        rows = []
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            started = time.perf_counter()
            frame = simulate_trace(sc, days=args.days, rate=args.rate, seed=seed)
            bound = int(frame.height * args.share)
            full, fm = f10_verdict(frame, max_requests=None, seed=seed)
            part, pm = f10_verdict(frame, max_requests=bound, seed=seed)
            span, sm = f10_verdict(frame, max_requests=bound, seed=seed, subset="span")
            rows.append({"seed": seed, "n": frame.height, "bound": bound, "unbounded": full, "bounded": part,
                         "span": span, "calm_span": f"{sm.get('windows_calm')}/{sm.get('windows_with_cv')}",
                         "calm_full": f"{fm.get('windows_calm')}/{fm.get('windows_with_cv')}",
                         "calm_bounded": f"{pm.get('windows_calm')}/{pm.get('windows_with_cv')}",
                         "itt_calmer_full": f"{fm.get('windows_itt_calmer')}/{fm.get('windows_compared')}",
                         "itt_calmer_bounded": f"{pm.get('windows_itt_calmer')}/{pm.get('windows_compared')}",
                         "cv_orig_full": round(fm.get("median_cv_original") or float("nan"), 3),
                         "cv_orig_bounded": round(pm.get("median_cv_original") or float("nan"), 3),
                         "s": round(time.perf_counter() - started, 1)})
        table = pl.DataFrame(rows)
        with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=250):
            print(f"scenario {name} (truth: F10 {sc.truth}; {sc}), days {args.days}, rate {args.rate}/s, "
                  f"bound keeps {args.share:.0%}")
            print(table)
        k = table.height
        for col in ("unbounded", "bounded", "span"):
            holds = int((table[col] == "holds").sum())
            print(f"  {col}: F10 holds in {holds}/{k}, says the truth ({sc.truth}) in {int((table[col] == sc.truth).sum())}/{k}")
        for col in ("bounded", "span"):
            print(f"  {col} agrees with unbounded in {int((table[col] == table['unbounded']).sum())}/{k}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
