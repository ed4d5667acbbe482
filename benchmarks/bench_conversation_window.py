"""Window accounting of the conversation model on a simulated trace of known truth (issue 15).

A stationary conversation process is simulated from long before a window to its end and only
the window is kept, as a real trace is: conversations start at Poisson rate ``rate``, have
``K`` turns (PMF ``--turns``), exponential inter-turn times of mean ``--itt``; a first turn's
input is lognormal with median ``--single`` tokens when ``K = 1`` and ``--multi`` when
``K >= 2``; a follow-up's input is its parent's input + output + an increment (lognormal,
median ``--increment``); outputs lognormal, median 300. Links are exact (``parent_id`` inside
the window; a follow-up whose parent fell before the window has none, as in a real trace).

The pool is fitted on the window (``fit_pool`` defaults, or ``--uncorrected``), then

fit
    turns PMF, mean inter-turn time and the means of the first-input PMFs (``first_input``,
    ``first_input_multi``) against the truth;
generated
    ``generate`` over the window's length from the fitted pool: requests, shares of follow-ups
    with their parent inside (``follow``) and without (``orphan``: tails of conversations begun
    before), mean input of every row against the same numbers of the simulated window.

Each seed's errors are also given as z-scores against standard errors from n (closed forms of the
construction): P(1 turn), the first-input mean, the generated follow-up share and mean input.

Measured (seeds 1-8, about 4,600 requests per window, 8 x 4 z-scores): after the window is
accounted for once (``window_mixture``), P(1) 0.9016 (truth 0.9), ``first_input`` 16,717
(16,761), ``first_input_multi`` 28,657 (28,733), generated follow-up share 0.1069 vs 0.1062 in
the windows, mean input 19,392 vs 19,454 (-0.3 %); largest |z| 1.61, no sign pattern. Before
(main at 7e69b6b: censoring corrected at the end only, tails counted as first turns and made again
by the warm-up): P(1) 0.8929 (every z < 0), ``first_input`` 17,170 (+2.4 %), follow-up share
0.1121, mean input 20,029 (+3.0 %, every z > 0); largest |z| 4.01.

With ``--links ids`` the store carries ``conversation_id`` instead, which ``fit_pool`` fits from
SQL aggregates (``conversation_spans``: conversations near either end one per row, the others
grouped): P(1) 0.9016, ``first_input`` 16,717, generated follow-up share 0.1070 vs 0.1062, mean
input 19,378 vs 19,454, largest |z| 1.65. Before (turns as seen, gaps weighted, no mixture):
P(1) 0.9130, ``first_input`` 17,170, follow-up share 0.0848 (turns cut twice), largest |z| 4.30.

A heavy multi-turn share (``--turns 0.5,0.25,0.15,0.1``, seeds 1-8, about 7,400 requests per
window): P(1) 0.4982 (0.5), ``first_input`` 17,166 (16,761: +2.4 %, z > 0 in 7/8 seeds, largest
3.29), ``first_input_multi`` 28,526 (28,733: -0.7 %), generated follow-up share 0.3664 vs 0.3674.
Why the single-turn first input runs high, in part: the inter-turn survival comes from the gaps
seen in the window, weighted by :math:`T/(T - x)` capped at 20, and gaps longer than the window
are never seen, so its mean is 193.1 (truth 200; the same estimator on the simulated gaps
directly gives 192.2 and 193.1 for the two turn PMFs: the fit computes it as stated). A survival
too short makes a first turn near the end look less likely to be a multi-turn start cut by the
end, so some of those (long inputs) go to the single-turn PMF. With the true survival
(exponential, mean 200) patched in, ``first_input`` is 17,029 (+1.6 %), ``first_input_multi``
28,509, largest |z| 2.43: about a third of the excess. The rest is not explained yet.

Repeated over ``--seeds`` (one simulated trace and one generated workload per seed). Usage:
``python benchmarks/bench_conversation_window.py [--seeds 1-8] [--uncorrected] [--links ids]
[--turns P1,P2,...]``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

from servelab.analysis.store import write_store
from servelab.fitting.pool_fit import fit_pool
from servelab.generator.generate import generate

__all__ = ["simulate_window", "window_roles", "main"]


def simulate_window(seed: int, *, span: float = 1000.0, rate: float = 4.0, turns=(0.9, 0.06, 0.025, 0.015),
                    itt: float = 200.0, single: float = 14000.0, multi: float = 24000.0, increment: float = 300.0,
                    sigma: float = 0.6) -> pl.DataFrame:
    """One window ``[0, span]`` of the stationary process (module docstring), requests by time:
    ``timestamp, input_tokens, output_tokens, parent_id`` (row number of the parent in this
    frame, null without one) and the truth ``conv, turn``."""
    rng = np.random.default_rng(seed)
    p = np.asarray(turns, dtype=float)
    before = 30 * itt * (p.size - 1)  # long enough that no conversation begun earlier reaches the window
    n = rng.poisson(rate * (span + before))
    start = rng.uniform(-before, span, n)
    k = rng.choice(np.arange(1, p.size + 1), size=n, p=p / p.sum())
    conv = np.repeat(np.arange(n), k)
    turn = np.arange(conv.size) - np.repeat(np.cumsum(k) - k, k) + 1
    gaps = np.where(turn > 1, rng.exponential(itt, conv.size), 0.0)
    first_pos = np.cumsum(k) - k
    t = start[conv] + np.cumsum(gaps) - np.repeat(np.cumsum(gaps)[first_pos], k)
    median = np.where(k[conv] >= 2, multi, single)
    x0 = np.round(median * rng.lognormal(0.0, sigma, conv.size))
    out = np.round(300.0 * rng.lognormal(0.0, sigma, conv.size))
    inc = np.round(increment * rng.lognormal(0.0, sigma, conv.size))
    inp = x0.copy()
    for level in range(2, p.size + 1):  # a loop over turn numbers
        m = np.flatnonzero(turn == level)
        inp[m] = inp[m - 1] + out[m - 1] + inc[m]
    keep = (t >= 0) & (t < span)
    frame = pl.DataFrame({"timestamp": t, "input_tokens": inp.astype(np.int64), "output_tokens": out.astype(np.int64),
                          "conv": conv, "turn": turn, "prev": np.r_[-1, np.arange(conv.size - 1)]
                          * 1 + 0, "id": np.arange(conv.size)})
    frame = frame.with_columns(pl.when(pl.col("turn") > 1).then(pl.col("id") - 1).otherwise(None).alias("prev"))
    frame = frame.filter(pl.Series(keep)).sort("timestamp").with_row_index("row")
    pos = frame.select(pl.col("id").alias("prev"), pl.col("row").alias("parent_row"))
    frame = frame.join(pos, on="prev", how="left", maintain_order="left")
    return frame.select("timestamp", "input_tokens", "output_tokens",
                        pl.col("parent_row").cast(pl.String).alias("parent_id"), "conv", "turn")


def window_roles(turn: np.ndarray, has_parent: np.ndarray, tokens: np.ndarray) -> dict:
    """Requests, shares of follow-ups with a parent inside (follow) and without (orphan), mean input."""
    follow, orphan = has_parent, (turn > 1) & ~has_parent
    return {"requests": int(turn.size), "follow": float(follow.mean()), "orphan": float(orphan.mean()),
            "first": float((turn == 1).mean()), "mean_input": float(tokens.mean())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="1-8", help="a range a-b")
    parser.add_argument("--uncorrected", action="store_true", help="window_censoring=False")
    parser.add_argument("--links", choices=("parent", "ids"), default="parent",
                        help="parent_id per request (link_conversations) or conversation_id (the SQL aggregates)")
    parser.add_argument("--turns", default="0.9,0.06,0.025,0.015",
                        help="the turns PMF P(1), P(2), ... (comma-separated; e.g. 0.5,0.25,0.15,0.1 for a heavy "
                             "multi-turn share)")
    args = parser.parse_args(argv)
    a, b = (int(x) for x in args.seeds.split("-"))
    truth_turns = np.array([float(x) for x in args.turns.split(",")])
    truth_turns = truth_turns / truth_turns.sum()
    rows = []
    for seed in range(a, b + 1):  # one simulated trace per seed
        sim = simulate_window(seed, turns=tuple(truth_turns))
        with tempfile.TemporaryDirectory() as tmp:
            link = (pl.col("parent_id") if args.links == "parent"
                    else pl.col("conv").cast(pl.String).alias("conversation_id"))
            store = write_store(sim.select("timestamp", "input_tokens", "output_tokens", link), Path(tmp) / "s")
            pool = fit_pool(store, span=(0.0, 1000.0), window_censoring=not args.uncorrected)
        cp = pool.conversation_pmfs.filter(pl.col("client_id").is_not_null())
        pm = {q: r for (q,), r in cp.group_by(["quantity"])}
        turns = pm["turns"].sort("value")
        p = np.zeros(truth_turns.size)
        idx = turns["value"].to_numpy().astype(int) - 1
        p[idx[idx < p.size]] = turns["probability"].to_numpy()[idx < p.size]
        mean_of = {q: float((r["value"] * r["probability"]).sum() / r["probability"].sum()) for q, r in pm.items()}
        gen = generate(pool, "pool", 1000.0, seed=seed)
        real = window_roles(sim["turn"].to_numpy(), sim["parent_id"].is_not_null().to_numpy(),
                            sim["input_tokens"].to_numpy())
        g_parent = gen["parent_id"].is_not_null().to_numpy()
        made = window_roles(gen["turn"].to_numpy(), g_parent, gen["input_tokens"].to_numpy())
        # standard errors from n (closed forms of the construction, not of the code under test):
        # P(1) binomial over the conversations begun inside; the first-input mean from the
        # lognormal's sd (mean x sqrt(e^sigma^2 - 1)) over the single-turn starts; the generated
        # follow-up share and mean input as differences of two independent samples of the window
        n_in = int(sim.filter(pl.col("turn") == 1).height)
        n_single = n_in * truth_turns[0]
        x = sim["input_tokens"].to_numpy().astype(float)
        se = {"p1": np.sqrt(truth_turns[0] * (1 - truth_turns[0]) / n_in),
              "first_input": 14000 * np.exp(0.18) * np.sqrt(np.exp(0.36) - 1) / np.sqrt(n_single),
              "follow": np.sqrt(2 * real["follow"] * (1 - real["follow"]) / real["requests"]),
              "mean_input": np.sqrt(2) * x.std() / np.sqrt(x.size)}
        rows.append({"seed": seed, "z_p1": (p[0] - truth_turns[0]) / se["p1"],
                     "z_first_input": (mean_of.get("first_input", np.nan) - 14000 * np.exp(0.18)) / se["first_input"],
                     "z_gen_follow": (made["follow"] - real["follow"]) / se["follow"],
                     "z_gen_mean_input": (made["mean_input"] - real["mean_input"]) / se["mean_input"],
                     "p1": p[0], "p2": p[1], "p3": p[2], "p4": p[3],
                     "itt_mean": mean_of["itt_s"], "first_input": mean_of.get("first_input", np.nan),
                     "first_multi": mean_of.get("first_input_multi", np.nan),
                     **{f"real_{k}": v for k, v in real.items()}, **{f"gen_{k}": v for k, v in made.items()}})
    frame = pl.DataFrame(rows)
    sig2 = 0.6 ** 2 / 2
    print(f"truth: turns {truth_turns.tolist()}, itt mean 200, first_input mean {14000 * np.exp(sig2):.0f}, "
          f"first_input_multi mean {24000 * np.exp(sig2):.0f}; window corrections "
          f"{'off' if args.uncorrected else 'on'}")
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=250, float_precision=4, tbl_hide_dataframe_shape=True):
        print(frame.select("seed", "p1", "p2", "p3", "p4", "itt_mean", "first_input", "first_multi"))
        print(frame.select("seed", *[c for c in frame.columns if c.startswith(("real_", "gen_"))]))
        print(frame.select("seed", *[c for c in frame.columns if c.startswith("z_")]))
        print(frame.drop("seed").mean())
    z = frame.select([c for c in frame.columns if c.startswith("z_")]).to_numpy()
    print(f"largest |z| over seeds and quantities: {np.nanmax(np.abs(z)):.2f} (|z| < 3 expected of every one at "
          f"{z.size} values)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
