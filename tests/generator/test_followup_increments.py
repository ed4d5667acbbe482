"""Follow-up input increments (issue 15 / 17): fitted from a trace of known construction, and
reproduced by the generator's ``fitted`` context.

The synthetic trace: conversations of geometric turns (mean 3) at exponential inter-turn times;
a first turn's input is ``50 + lognormal``, every output ``1 + lognormal``, and a follow-up's
input is exactly its history (parent input + output) plus an increment drawn from a known
per-client PMF: client ``a`` uniform on 5..40, client ``b`` on {-20, 10, 30} with
probabilities (0.2, 0.5, 0.3) (all below ``exact_below = 64``, so the fitted bins are exact).
"""
import numpy as np
import polars as pl
import pytest
from scipy.stats import ks_2samp

from servelab.analysis.store import write_store
from servelab.fitting.pool_conversations import INCREMENT
from servelab.fitting.pool_fit import fit_pool
from servelab.generator import generate
from servelab.generator.conversations import accumulate_inputs
from servelab.generator.exceptions import GenerationError

TRUE = {"a": (np.arange(5, 41), np.full(36, 1 / 36)),
        "b": (np.array([-20, 10, 30]), np.array([0.2, 0.5, 0.3]))}
SPAN = 3600.0


def _ks_discrete(values: np.ndarray, probs: np.ndarray, sample: np.ndarray) -> float:
    """KS distance between a discrete law and a sample's empirical CDF, on the law's support."""
    ecdf = np.searchsorted(np.sort(sample), values, side="right") / sample.size
    return float(np.max(np.abs(np.cumsum(probs) - ecdf)))


def _trace(seed: int, n_conv: int = 3000) -> pl.DataFrame:
    """The synthetic trace, sorted by time (row = request_id), with ``conversation_id`` and
    ``parent_id`` (the parent's request_id as text) and the drawn ``inc`` (null on first turns)."""
    rng = np.random.default_rng(seed)
    client = np.where(rng.random(n_conv) < 0.5, "a", "b")
    k = rng.geometric(1 / 3, n_conv)
    conv = np.repeat(np.arange(n_conv), k)
    first = np.r_[0, np.cumsum(k)[:-1]]
    turn = np.arange(conv.size) - np.repeat(first, k) + 1
    cl = np.repeat(client, k)
    gaps = np.where(turn > 1, rng.exponential(30.0, conv.size), 0.0)
    c = np.cumsum(gaps)
    t = np.repeat(rng.uniform(0, SPAN, n_conv), k) + c - np.repeat(c[first], k)
    out = 1 + np.rint(rng.lognormal(np.log(150), 0.6, conv.size)).astype(np.int64)
    inc = np.zeros(conv.size, dtype=np.int64)
    for name, (v, p) in TRUE.items():  # a loop over the two clients
        rows = np.flatnonzero((cl == name) & (turn > 1))
        inc[rows] = rng.choice(v, rows.size, p=p)
    base = 50 + np.rint(rng.lognormal(np.log(300), 0.8, conv.size)).astype(np.int64)
    # each input is its parent's input + output + its own increment (turn by turn)
    inp = accumulate_inputs(np.where(turn > 1, inc, base), out, turn, context="additive")
    frame = pl.DataFrame({"timestamp": t, "client_id": cl, "input_tokens": inp, "output_tokens": out,
                          "conversation_id": conv.astype(str), "turn": turn, "inc": np.where(turn > 1, inc, -10**9)})
    frame = frame.filter(pl.col("timestamp") < SPAN).sort("timestamp", maintain_order=True).with_row_index("rid")
    parent = frame.select("conversation_id", "turn", "rid").with_columns((pl.col("turn") + 1).alias("turn"))
    frame = frame.join(parent.rename({"rid": "parent_rid"}), on=["conversation_id", "turn"], how="left",
                       maintain_order="left")
    return frame.with_columns(pl.col("parent_rid").cast(pl.String).alias("parent_id"),
                              pl.when(pl.col("turn") > 1).then(pl.col("inc")).alias("inc"))


@pytest.fixture(scope="module")
def trace():
    return _trace(7)


@pytest.fixture(scope="module")
def id_pool(trace, tmp_path_factory):
    # counts as seen: every conversation starts inside this trace (not a window of a stationary
    # process), and the tests below check the aggregation of the first turns and increments exactly
    # (the window's corrections: tests/fitting/test_pool_censoring.py)
    frame = trace.select("timestamp", "client_id", "input_tokens", "output_tokens", "conversation_id")
    return fit_pool(write_store(frame, tmp_path_factory.mktemp("ids") / "s"), window_censoring=False)


@pytest.fixture(scope="module")
def id_pool_own(trace, tmp_path_factory):
    # id_pool without length shrinkage: the first-turn PMFs as seen (shrinkage mixes a client's
    # with the pooled ones by its weight: tests/fitting/test_pool_shrinkage.py)
    frame = trace.select("timestamp", "client_id", "input_tokens", "output_tokens", "conversation_id")
    return fit_pool(write_store(frame, tmp_path_factory.mktemp("ids_own") / "s"), window_censoring=False,
                    length_shrinkage=False)


def _fitted(pool, client) -> pl.DataFrame:
    rows = pool.conversation_pmfs.filter(pl.col("quantity") == INCREMENT)
    rows = rows.filter(pl.col("client_id").is_null() if client is None else pl.col("client_id") == client)
    return rows.sort("value")


def test_trace_is_built_as_stated(trace):
    # independent of the fitting code: every follow-up's input is its parent's input + output + inc
    par = trace.select(pl.col("rid").alias("parent_rid"), pl.col("input_tokens").alias("pi"),
                       pl.col("output_tokens").alias("po"))
    j = trace.filter(pl.col("turn") > 1).join(par, on="parent_rid")
    assert j.height == trace.filter(pl.col("turn") > 1).height > 3000
    assert (j["input_tokens"] - j["pi"] - j["po"] - j["inc"]).abs().max() == 0


@pytest.mark.parametrize("client", ["a", "b"])
def test_fitted_pmf_recovers_the_known_increments_from_ids(id_pool, trace, client):
    fit = _fitted(id_pool, client)
    sample = trace.filter((pl.col("client_id") == client) & (pl.col("turn") > 1))["inc"].to_numpy()
    # exact bins: the fitted PMF is the sample's frequencies (reference: numpy), to float32 precision
    v, n = np.unique(sample, return_counts=True)
    assert fit["value"].to_numpy() == pytest.approx(v.astype(float))
    assert fit["probability"].to_numpy() == pytest.approx(n / n.sum(), rel=1e-6)
    # and it recovers the true law: KS within the 99.9 % DKW band, sqrt(ln(2 / 0.001) / 2n)
    values, probs = TRUE[client]
    bound = np.sqrt(np.log(2 / 0.001) / (2 * sample.size))
    assert _ks_discrete(values, probs, fit["value"].to_numpy().repeat(
        np.rint(fit["probability"].to_numpy() * sample.size).astype(int))) < bound
    # positive control: the other client's law is far outside the band
    other = TRUE["b" if client == "a" else "a"]
    assert _ks_discrete(other[0], other[1], sample) > 5 * bound


def test_pooled_fallback_is_every_follow_up(id_pool, trace):
    fit = _fitted(id_pool, None)
    sample = trace.filter(pl.col("turn") > 1)["inc"].to_numpy()
    v, n = np.unique(sample, return_counts=True)
    assert fit["value"].to_numpy() == pytest.approx(v.astype(float))
    assert fit["probability"].to_numpy() == pytest.approx(n / n.sum(), rel=1e-6)


def test_inferred_links_fit_the_same_pmf(trace, id_pool, tmp_path):
    # links from parent_id (link_conversations) instead of conversation ids: the same increments
    # and first-turn PMFs (both as seen, as id_pool)
    frame = trace.select("timestamp", "client_id", "input_tokens", "output_tokens", "parent_id")
    pool = fit_pool(write_store(frame, tmp_path / "s"), window_censoring=False)
    for client in ("a", "b", None):
        a, b = _fitted(pool, client), _fitted(id_pool, client)
        assert a["value"].to_list() == b["value"].to_list()
        assert a["probability"].to_numpy() == pytest.approx(b["probability"].to_numpy(), rel=1e-6)
    # and the same first-turn PMFs (SQL aggregate vs polars path)
    def firsts(p):
        return p.conversation_pmfs.filter(pl.col("quantity").str.starts_with("first_input")).sort(
            "client_id", "quantity", "value", nulls_last=False)
    a, b = firsts(pool), firsts(id_pool)
    assert a.height == b.height > 0
    assert a.select("client_id", "quantity", "value").equals(b.select("client_id", "quantity", "value"))
    assert a["probability"].to_numpy() == pytest.approx(b["probability"].to_numpy(), rel=1e-6)


@pytest.fixture(scope="module")
def generated(id_pool):
    return {ctx: generate(id_pool, "pool", SPAN, seed=3, context=ctx) for ctx in (None, "sorted")}


def test_generated_follow_ups_are_history_plus_increment(generated):
    work = generated[None].with_row_index("row")
    par = work.select(pl.col("row").cast(pl.String).alias("parent_id"), pl.col("input_tokens").alias("pi"),
                      pl.col("output_tokens").alias("po"))
    j = work.filter(pl.col("turn") > 1).join(par, on="parent_id").with_columns(
        (pl.col("input_tokens") - pl.col("pi") - pl.col("po")).alias("inc"))
    assert j.height > 2000
    for client, (values, probs) in TRUE.items():
        got = j.filter(pl.col("client_id").str.starts_with(client))["inc"].to_numpy()
        assert set(np.unique(got)) <= set(values.tolist())  # exactly history + a fitted increment
        # the generated increments follow the law (fitted sample n1 and generated sample n2:
        # two-sample 99.9 % band, 1.95 * sqrt(1/n1 + 1/n2), with n1 >= n2 -> 1.95 * sqrt(2/n2))
        assert _ks_discrete(values, probs, got) < 1.95 * np.sqrt(2 / got.size)
    # the old mode does not: its follow-up input minus history is mostly outside the support
    # (0 where the sorted draw fell below the history, anything where it did not)
    old = generated["sorted"].with_row_index("row")
    par_old = old.select(pl.col("row").cast(pl.String).alias("parent_id"), pl.col("input_tokens").alias("pi"),
                         pl.col("output_tokens").alias("po"))
    j_old = old.filter(pl.col("turn") > 1).join(par_old, on="parent_id")
    inc_old = (j_old["input_tokens"] - j_old["pi"] - j_old["po"]).to_numpy()
    support = np.union1d(TRUE["a"][0], TRUE["b"][0])
    assert np.mean(~np.isin(inc_old, support)) > 0.8


def test_input_marginal_matches_the_trace_where_sorted_does_not(generated, trace):
    real = trace["input_tokens"].to_numpy()
    new, old = (generated[c]["input_tokens"].to_numpy() for c in (None, "sorted"))
    # two-sample KS critical value at 99.9 %: 1.95 * sqrt((n + m) / (n m))
    crit = 1.95 * np.sqrt((real.size + new.size) / (real.size * new.size))
    d_new = ks_2samp(real, new).statistic
    d_old = ks_2samp(real, old).statistic
    assert d_new < crit, (d_new, crit)
    assert d_old > crit, (d_old, crit)  # positive control: the sorted context misses it


def test_fitted_context_needs_increments(id_pool):
    pool = id_pool.replace(conversation_pmfs=id_pool.conversation_pmfs.filter(pl.col("quantity") != INCREMENT))
    with pytest.raises(GenerationError, match="context 'fitted' needs the pool's follow-up input increments"):
        generate(pool, "pool", 60.0, seed=0, context="fitted")
    # an old pool (no increment rows) keeps the old behaviour by default: sorted
    a = generate(pool, "pool", 600.0, seed=0)
    b = generate(pool, "pool", 600.0, seed=0, context="sorted")
    assert a.equals(b)


@pytest.mark.parametrize("multi", [False, True])
def test_first_turn_pmfs_are_the_first_turns_inputs(id_pool_own, trace, multi):
    # first_input (single-turn) / first_input_multi (starts of longer conversations): the inputs of
    # those first turns only (reference: numpy over the trace's rows), not the all-requests
    # marginal of the data PMFs
    from servelab.fitting.pool_conversations import FIRST_INPUT, FIRST_INPUT_MULTI

    q = FIRST_INPUT_MULTI if multi else FIRST_INPUT
    rows = id_pool_own.conversation_pmfs.filter((pl.col("quantity") == q) & (pl.col("client_id") == "a"))
    size = trace.group_by("conversation_id").agg(pl.len().alias("k"))
    firsts = trace.join(size, on="conversation_id").filter(
        (pl.col("client_id") == "a") & (pl.col("turn") == 1) & ((pl.col("k") > 1) == multi))
    x = firsts["input_tokens"].to_numpy()
    assert rows["probability"].sum() == pytest.approx(1.0, abs=1e-5)
    mean = float((rows["value"] * rows["probability"]).sum())
    # bin means weighted by counts give the exact mean, up to float32 storage (~1e-7 relative)
    assert mean == pytest.approx(x.mean(), rel=1e-4)
    everything = trace.filter(pl.col("client_id") == "a")["input_tokens"].to_numpy()
    assert everything.mean() > 1.5 * x.mean()  # the marginal the old mode draws first turns from


def test_fitted_rows_do_not_depend_on_the_chunk_size(id_pool):
    from servelab.generator import generate_chunks

    whole = generate(id_pool, "pool", 1800.0, seed=5)
    for chunk_s in (45.0, 700.0):
        parts = pl.concat(list(generate_chunks(id_pool, "pool", 1800.0, seed=5, chunk_s=chunk_s)))
        assert parts.equals(whole)
    assert whole.filter(pl.col("turn") > 1).height > 500


def test_pool_with_increments_round_trips(id_pool, tmp_path):
    from servelab.generator.pool import ClientPool

    id_pool.save(tmp_path / "pool")
    back = ClientPool.load(tmp_path / "pool")
    inc = back.conversation_pmfs.filter(pl.col("quantity") == INCREMENT)
    assert inc.filter(pl.col("client_id").is_null()).height > 0  # the pooled fallback is kept
    assert generate(back, "pool", 600.0, seed=1).equals(generate(id_pool, "pool", 600.0, seed=1))


def test_a_unit_without_conversation_starts_expands_to_nothing(id_pool):
    """A generation unit where no conversation starts (common on sparse pools) gives no rows
    (it used to fail: the start rows were built as [0] for zero conversations)."""
    from servelab.generator.conversations import conversation_model, expand_conversations
    from servelab.generator.grid import pool_span, window_grid

    lo, hi = pool_span(id_pool)
    grid = window_grid(id_pool, lo, hi)
    conv = conversation_model(id_pool, grid.pool_ids)
    sel = np.arange(len(grid.pool_ids))
    t, client, conv_id, turn = expand_conversations(np.zeros(0), np.zeros(0, dtype=np.int64), sel, conv,
                                                    np.random.default_rng(0))
    assert t.size == client.size == conv_id.size == turn.size == 0
    # positive control: one start of a conversation client expands to its turns, numbered from 1
    c = int(np.flatnonzero(conv.has[sel])[0])
    t, client, conv_id, turn = expand_conversations(np.array([lo]), np.array([c]), sel, conv, np.random.default_rng(0))
    assert t.size >= 1 and turn.tolist() == list(range(1, t.size + 1)) and set(conv_id.tolist()) == {0}
