"""Why workloads generated from a Mooncake-fitted pool have longer prompts than the trace (issue 15).

The prefix fidelity benchmark (``bench_prefix_generation.py``) found generated prompts 2.6 %
longer on average than the real ones over seeds 1-8, the longest on the seeds whose hit-rate
curve is farthest (3 and 8). A longer prompt has more blocks, so this moves the hit-rate curve
whatever the prefix model does. This script splits the mean input length of the real trace and
of generated workloads (``fit_pool`` with its defaults, ``generate`` over the trace's duration,
rate ``pool``) by the row's role in its conversation:

single
    a first turn with no follow-up in the window;
multi
    a first turn whose follow-up is in the window;
follow
    a follow-up whose parent is in the window (linked: ``link_conversations`` on the real trace,
    ``parent_id`` in the generated one);
orphan
    (generated only) a follow-up whose conversation began before the window: ``turn > 1`` and
    no parent row. The real trace has such rows too, but they cannot be told from first turns
    there: they are part of its "single" rows, and of the ``first_input`` PMF fitted on them.

Measured (seeds 1-8, the shared Mooncake trace, 3,993 rows): generated mean 15,725 tokens vs
15,325 (+2.6 %, seeds 0.981-1.066). Real: single 89.9 % at 14,253, multi 4.2 % at 23,608, follow
5.9 % at 25,743. Generated (mean of seeds): single 87.1 % at 14,539, multi 3.9 % at 23,217,
follow 6.8 % at 24,024, orphan 2.2 % at 23,518. The 400-token excess: single + orphan rows +360
(orphans alone about +200: conversations begun in the generator's warm-up bring history-long
prompts into the window, while the trace's own orphans already sit in the fitted
``first_input`` PMF; the singles' mean is 2.0 % above that PMF's, as first turns whose follow-up
falls after the window end draw from ``first_input_multi``), follow +125 (more follow-ups: the
window-corrected turns), multi -88. So the excess is the conversation model counting the window
twice, in the fitted first-turn PMFs and in the generator's warm-up and uncut turns -- not the
length fit (the all-requests PMF's mean equals the trace's to 0.01 token) nor block rounding
(real prompts: blocks = ceil(tokens / 512) exactly).

Since the conversation fit accounts for the window once (``window_mixture`` in
:mod:`servelab.fitting.pool_conversations`: tails of conversations begun before the window are
left out of the first-turn PMFs and the turns, first turns cut at the end count as longer
conversations' starts), seeds 1-8 give a mean of 15,152 tokens (-1.1 %, seeds 0.937-1.013):
single 88.2 % at 14,170, multi 3.7 % at 21,892, follow 6.1 % at 22,606, orphan 2.0 % at 23,430;
fitted ``first_input`` 14,004 and ``first_input_multi`` 22,408 (tails out). On a simulated window
of known truth (``bench_conversation_window.py``) the same change takes the generated mean input
from +3.0 % to -0.3 % of the simulated window's.

Beside them, the means of the pool's fitted PMFs (``first_input``, ``first_input_multi``,
``input_increment``) and of the all-requests length PMF. Usage:
``python benchmarks/bench_prefix_lengths.py [--seeds 1-8]``; writes
``benchmarks/out/prefix_lengths/results.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
import interop  # noqa: E402

from servelab.analysis.conversations import link_conversations  # noqa: E402
from servelab.analysis.ingest import ingest  # noqa: E402
from servelab.fitting.pool_fit import fit_pool  # noqa: E402
from servelab.generator.generate import generate  # noqa: E402

__all__ = ["roles", "main"]

TRACE = interop.ROOT.parent / "shared" / "data" / "mooncake" / "synthetic_trace.jsonl"


def roles(tokens: np.ndarray, parent: np.ndarray, row: np.ndarray, orphan: np.ndarray | None = None) -> dict:
    """Shares and mean input tokens of single / multi / follow (/ orphan) rows.

    ``parent``: the parent's row id (-1: none); ``row``: each row's id; ``orphan``: rows that are
    follow-ups without a parent row (excluded from single and multi)."""
    tokens = np.asarray(tokens, dtype=float)
    orphan = np.zeros(tokens.size, bool) if orphan is None else orphan
    follow = parent >= 0
    has_child = np.isin(row, parent[follow])
    single, multi = ~follow & ~has_child & ~orphan, ~follow & has_child & ~orphan
    out = {"rows": int(tokens.size), "mean": float(tokens.mean())}
    for name, mask in (("single", single), ("multi", multi), ("follow", follow), ("orphan", orphan)):
        out[f"{name}_share"] = float(mask.mean())
        out[f"{name}_mean"] = float(tokens[mask].mean()) if mask.any() else float("nan")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="1-8", help="a range a-b")
    parser.add_argument("--trace", type=Path, default=TRACE)
    args = parser.parse_args(argv)
    if not args.trace.is_file():
        print(f"skipped: {args.trace} is absent (the shared data folder is optional)")
        return 0
    a, b = (int(x) for x in args.seeds.split("-"))
    with tempfile.TemporaryDirectory() as tmp:
        store = ingest(args.trace, fmt="mooncake", output=Path(tmp) / "store", overwrite=True, progress=False)
        real = pl.read_parquet(store.requests_path).sort("request_id")
        links = link_conversations(store).links.sort("request_id")
        pool = fit_pool(store)
    real = real.join(links.select("request_id", "parent"), on="request_id", how="left")
    real_roles = roles(real["input_tokens"].to_numpy(), real["parent"].fill_null(-1).to_numpy(),
                       real["request_id"].to_numpy())
    cp = pool.conversation_pmfs.filter(pl.col("client_id").is_not_null())
    pmf_means = {q: float((r["value"] * r["probability"]).sum())
                 for (q,), r in cp.group_by(["quantity"]) if q != "itt_s"}
    d = pool.data.filter(pl.col("field") == "input_tokens")
    pmf_means["input_tokens (all requests)"] = float((d["value"] * d["probability"]).sum())
    duration = float(real["timestamp"].max() - real["timestamp"].min())
    runs = []
    for seed in range(a, b + 1):
        w = generate(pool, "pool", duration, seed=seed)
        parent = w["parent_id"].cast(pl.Int64, strict=False).fill_null(-1).to_numpy()
        orphan = (w["turn"].to_numpy() > 1) & (parent < 0)
        runs.append({"seed": seed, **roles(w["input_tokens"].to_numpy(), parent, np.arange(w.height), orphan)})
    frame = pl.DataFrame(runs).with_columns((pl.col("mean") / real_roles["mean"]).alias("ratio"))
    mean = {c: float(frame[c].mean()) for c in frame.columns if c != "seed"}
    print(f"real trace: {json.dumps({k: round(v, 4) for k, v in real_roles.items()})}")
    print(f"fitted PMF means: {json.dumps({k: round(v, 1) for k, v in pmf_means.items()})}")
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=250, float_precision=4):
        print(frame)
    print("mean over seeds: " + json.dumps({k: round(v, 4) for k, v in mean.items()}))
    # the mean's excess, row role by row role: share x mean, generated minus real (orphans count
    # against the real single rows, where the trace's own orphans sit)
    real_single_like = real_roles["single_share"] * real_roles["single_mean"]
    parts = {"single+orphan": mean["single_share"] * mean["single_mean"] + mean["orphan_share"] * mean["orphan_mean"]
             - real_single_like,
             "multi": mean["multi_share"] * mean["multi_mean"] - real_roles["multi_share"] * real_roles["multi_mean"],
             "follow": mean["follow_share"] * mean["follow_mean"] - real_roles["follow_share"] * real_roles["follow_mean"]}
    print("excess of the mean (tokens) by role: " + json.dumps({k: round(v, 1) for k, v in parts.items()})
          + f"; total {mean['mean'] - real_roles['mean']:.1f} of {real_roles['mean']:.1f}")
    out = Path(__file__).resolve().parent / "out" / "prefix_lengths"
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"real": real_roles, "pmf_means": pmf_means, "runs": runs,
                                                  "mean": mean, "excess_by_role": parts}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
