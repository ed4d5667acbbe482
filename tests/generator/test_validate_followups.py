"""Follow-ups that do not hold their history (issue 17): the generator draws their inputs fresh.

The synthetic trace: conversations of geometric turns (mean 3) at exponential inter-turn times,
every input (first turn or follow-up) an independent ``50 + lognormal(log 300, 0.8)`` draw and
every output ``1 + lognormal(log 150, 0.6)``: follow-ups do not grow. Adding a history and an
increment drawn from ``input - history`` (whose median is negative here) distorts the inputs; the
growing trace of ``test_followup_increments.py`` keeps its increments.
"""
import numpy as np
import polars as pl
from scipy.stats import ks_2samp

from servelab.analysis.store import write_store
from servelab.fitting.pool_fit import fit_pool
from servelab.generator import generate
from servelab.generator.conversations import conversation_model, followups_grow

SPAN = 3600.0


def _flat_trace(seed: int, n_conv: int = 3000) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    k = rng.geometric(1 / 3, n_conv)
    conv = np.repeat(np.arange(n_conv), k)
    first = np.r_[0, np.cumsum(k)[:-1]]
    turn = np.arange(conv.size) - np.repeat(first, k) + 1
    gaps = np.where(turn > 1, rng.exponential(30.0, conv.size), 0.0)
    c = np.cumsum(gaps)
    t = np.repeat(rng.uniform(0, SPAN, n_conv), k) + c - np.repeat(c[first], k)
    inp = 50 + np.rint(rng.lognormal(np.log(300), 0.8, conv.size)).astype(np.int64)
    out = 1 + np.rint(rng.lognormal(np.log(150), 0.6, conv.size)).astype(np.int64)
    frame = pl.DataFrame({"timestamp": t, "client_id": np.where(conv % 2 == 0, "a", "b"), "input_tokens": inp,
                          "output_tokens": out, "conversation_id": conv.astype(str)})
    return frame.filter(pl.col("timestamp") < SPAN).sort("timestamp", maintain_order=True)


def test_flat_follow_ups_are_drawn_fresh_and_keep_the_input_law(tmp_path):
    real = _flat_trace(11)
    pool = fit_pool(write_store(real, tmp_path / "s"))
    conv = conversation_model(pool, pool.clients["client_id"].to_list())
    assert conv is not None and not conv.grows.any()  # median increment < 0 for both clients
    gen = generate(pool, "pool", SPAN, seed=3)
    assert (gen["turn"] > 1).mean() > 0.4  # the follow-ups are there (mean 3 turns: 2/3 of requests)
    # the input law is kept: two-sample KS at the 0.1% level, 1.95 sqrt((n + m) / (n m))
    n, m = real.height, gen.height
    d = ks_2samp(real["input_tokens"].to_numpy(), gen["input_tokens"].to_numpy()).statistic
    assert d < 1.95 * np.sqrt((n + m) / (n * m))


def test_growing_follow_ups_keep_their_increments():
    from servelab.generator.pmf import pmf_table

    # two clients' increment PMFs: median 10 (grows) and median -30 (does not); a third without one
    table = pmf_table(np.array([0, 0, 0, 1, 1]), np.array([-20.0, 10.0, 30.0, -30.0, 5.0]),
                      np.array([0.2, 0.5, 0.3, 0.6, 0.4]))
    assert followups_grow(table, np.array([0, 1, -1])).tolist() == [True, False, True]
