"""The conversation part of pool fitting: per client, conversation counts, turns and inter-turn times.

Where the store carries links (``conversation_id``, ``parent_id`` or ``prefix_blocks``, linked by
:func:`servelab.analysis.conversations.link_conversations`): per client ``n_conversations``,
``multi_turn_share``, ``turns_mean``, ``itt_mean_s`` and PMFs of turns (exact) and ITT (0.1-s bins
below 1 s, log bins above) in ``conversation_pmfs``.

Where the store also has ``input_tokens``, ``conversation_pmfs`` holds a third quantity,
``input_increment`` (:data:`INCREMENT`): per client, the PMF of a linked follow-up's increment
``input - history`` with ``history`` = its parent's input + output (output null counted as 0),
the history the generator gives a follow-up; binned as the data PMFs (exact below
``exact_below``, log bins of ratio ``bin_ratio`` above, value = bin mean; negative increments
binned on their absolute value), and a fourth, ``first_input`` (:data:`FIRST_INPUT`): the PMF of
the inputs of single-turn requests (that follow no other and have no follow-up), and a fifth,
``first_input_multi`` (:data:`FIRST_INPUT_MULTI`): the inputs of first turns of conversations of
two turns or more (in real traces long prompts are the ones continued: Mooncake's multi-turn
conversations start about twice as long). The ``data`` input PMFs mix first turns and
follow-ups, whose histories the generator adds itself. Both come with
pooled rows with a null ``client_id`` (every request of the trace) that apply to clients without
their own. Pools without these rows keep the old behaviour (the generator's ``sorted``
context). This module writes nothing.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from servelab.analysis.store import TraceStore
from servelab.fitting.pool_data import bin_values

__all__ = ["FIRST_INPUT", "FIRST_INPUT_MULTI", "INCREMENT", "WINDOW_WEIGHT_CAP", "censored_turn_pmf",
           "conversation_tables", "increment_aggregates", "increment_pmfs", "itt_survival", "tables_from_aggregates",
           "window_weights"]

#: the ``quantity`` of a follow-up's input increment in ``conversation_pmfs``
INCREMENT = "input_increment"
#: the ``quantity`` of a first turn's input in ``conversation_pmfs``
FIRST_INPUT = "first_input"
#: the ``quantity`` of the first turn's input of a conversation of two turns or more
FIRST_INPUT_MULTI = "first_input_multi"


def conversation_tables(store: TraceStore, frame: pl.DataFrame, ci: np.ndarray, names: list[str], *, bin_ratio: float,
                        linking=None, exact_below: int = 64, window_censoring: bool = True,
                        span: tuple[float, float] | None = None):
    """Per-client conversation parameters and PMFs (turns exact, ITT log-binned, input increments
    binned as the data PMFs when the store has ``input_tokens``); ``linking`` (a
    :class:`~servelab.analysis.conversations.LinkOptions`) sets how prefix-block links are inferred.

    With ``window_censoring`` (the default), the trace is a window ``span`` (default: first to
    last request) that cuts conversations: inter-turn times are weighted by
    :func:`window_weights` and turns come from :func:`censored_turn_pmf`, each conversation's
    censoring probability being the weighted inter-turn-time survival (pooled over clients) at
    the time between its last turn and the window's end. Without it, the counts as seen."""
    from servelab.analysis.conversations import LinkOptions, available_link_rules, link_conversations
    from servelab.analysis.exceptions import NotApplicableError

    rules = available_link_rules(store)
    if not rules:
        return None, None, "no link information in the store"
    if rules[0] == "conversation_id":
        # explicit ids: the turns of a conversation are its requests in arrival order (the rule of
        # analysis.conversations), done here as polars group-bys: linking every request of a 10 M-row
        # store through link_conversations takes minutes. Requests without an id are single-turn.
        rows = frame.select("conversation_id", "timestamp", pl.Series("cidx", ci))
        linked = rows.filter(pl.col("conversation_id").is_not_null())
        single = rows.filter(pl.col("conversation_id").is_null()).select(
            "cidx", pl.lit(1, pl.Int64).alias("turns"), pl.col("timestamp").cast(pl.Float64).alias("last"))
        per_conv = pl.concat([
            linked.group_by("conversation_id").agg(pl.col("cidx").first(), pl.len().cast(pl.Int64).alias("turns"),
                                                   pl.col("timestamp").max().cast(pl.Float64).alias("last"))
            .select("cidx", "turns", "last"),
            single,
        ])
        links = linked.select("cidx", pl.col("timestamp").diff().over("conversation_id").alias("itt_s"))
        seen = rows["timestamp"]
        pairs = None
        if "input_tokens" in frame.columns:
            hist = _history(frame)
            pairs = (frame.select("conversation_id", "input_tokens", pl.Series("cidx", ci), hist.alias("h"))
                     .select("cidx", pl.when(pl.col("conversation_id").is_not_null())
                             .then(pl.col("h").shift(1).over("conversation_id")).alias("h"),
                             pl.int_range(pl.len()).shift(1).over("conversation_id").is_null()
                             .or_(pl.col("conversation_id").is_null()).alias("first"),
                             (pl.col("conversation_id").is_not_null()
                              & (pl.len().over("conversation_id") > 1)).alias("multi"),
                             pl.col("input_tokens").cast(pl.Float64).alias("i")))
        rule, n_conv = "conversation_id", per_conv.height
        n_multi = int((per_conv["turns"] >= 2).sum())
    else:
        try:
            # no warning filter: link_conversations issues no warning of its own on the shipped traces
            # (measured on the Mooncake sample through fit_pool), so any warning is news for the user
            conv = link_conversations(store, rule=rules[0], **(linking or LinkOptions()).as_kwargs())
        except NotApplicableError as err:
            return None, None, err.reason
        rid = frame.select("request_id", pl.Series("cidx", ci))
        links = conv.links.join(rid, on="request_id", how="inner")
        pairs = None
        if "input_tokens" in store.columns:
            cols = ["request_id", "input_tokens"] + (["output_tokens"] if "output_tokens" in store.columns else [])
            io = pl.from_arrow(store.read_arrow(cols))
            io = io.select(pl.col("request_id").cast(rid["request_id"].dtype), pl.col("input_tokens").cast(pl.Float64),
                           _history(io).alias("h"))
            pairs = (links.join(io.select("request_id", "input_tokens"), on="request_id", how="inner")
                     .join(io.select(pl.col("request_id").alias("parent"), "h"), on="parent", how="left")
                     .select("cidx", "h", pl.col("parent").is_null().alias("first"),
                             (pl.len().over("conversation") > 1).alias("multi"), pl.col("input_tokens").alias("i")))
        owner = links.filter(pl.col("request_id") == pl.col("conversation")).select("conversation", "cidx")
        per_conv = (links.group_by("conversation").agg(pl.len().alias("turns"),
                                                       pl.col("timestamp").max().cast(pl.Float64).alias("last"))
                    .join(owner, on="conversation", how="inner").select("cidx", "turns", "last"))
        seen = links["timestamp"]
        links = links.select("cidx", "itt_s")
        rule, n_conv, n_multi = rules[0], conv.summary.n_conversations, conv.summary.n_multi_turn
    links = links.with_columns(pl.col("cidx").cast(pl.Int64))
    per_conv = per_conv.with_columns(pl.col("cidx").cast(pl.Int64), pl.col("turns").cast(pl.Int64))
    gaps = links.filter(pl.col("itt_s").is_not_null() & (pl.col("itt_s") >= 0))
    if window_censoring:
        t0, t1 = (float(seen.min()), float(seen.max())) if span is None else (float(span[0]), float(span[1]))
        x = gaps["itt_s"].to_numpy().astype(float)
        w = window_weights(x, t1 - t0) if t1 > t0 else np.ones(x.size)
        gaps = gaps.with_columns(pl.Series("w", w))
        censor = itt_survival(x, w, t1 - per_conv["last"].to_numpy())
        turns = censored_turn_pmf(per_conv["cidx"].to_numpy(), per_conv["turns"].to_numpy(), censor)
    else:
        gaps = gaps.with_columns(pl.lit(1.0).alias("w"))
        turns = per_conv.group_by("cidx", "turns").agg(pl.len().cast(pl.Int64).alias("n"))
    # ITT: 0.1 s bins below 1 s, log bins of ratio bin_ratio above (value = bin mean; n, total weighted)
    itt = (gaps.with_columns(pl.when(pl.col("itt_s") < 1).then((pl.col("itt_s") * 10).floor() + 1e6)
                             .otherwise(bin_values(pl.col("itt_s"), exact_below=1, bin_ratio=bin_ratio)).alias("bin"))
           .group_by("cidx", "bin").agg(pl.col("itt_s").mean().alias("value"), pl.col("w").sum().alias("n"),
                                        (pl.col("itt_s") * pl.col("w")).sum().alias("total")))
    req = pl.DataFrame({"cidx": np.arange(len(names), dtype=np.int64), "n": np.bincount(ci, minlength=len(names))})
    table, pmfs = tables_from_aggregates(turns, itt, req, names, share_of_turns=window_censoring)
    if pairs is not None:
        inc = pairs.select(pl.col("cidx").cast(pl.Int64), "first", "multi",
                           pl.when(pl.col("first")).then(pl.col("i")).otherwise(pl.col("i") - pl.col("h")).alias("x"))
        pmfs = pl.concat([pmfs, increment_pmfs(increment_aggregates(inc, exact_below=exact_below,
                                                                    bin_ratio=bin_ratio), names)])
    note = f"linked by {rule}: {n_conv} conversations, {n_multi} multi-turn"
    return table, pmfs, note


def _history(frame: pl.DataFrame) -> pl.Expr:
    """A request's contribution to its child's history: input + output (null output counted as 0)."""
    out = pl.col("output_tokens").cast(pl.Float64).fill_null(0.0) if "output_tokens" in frame.columns else pl.lit(0.0)
    return pl.col("input_tokens").cast(pl.Float64) + out


def increment_aggregates(values: pl.DataFrame, *, exact_below: int, bin_ratio: float) -> pl.DataFrame:
    """Binned ``cidx, first, multi, neg, bin, value, n`` from raw ``cidx, first, multi, x`` (a first
    turn's input or a follow-up's increment; ``multi``: its conversation has two turns or more;
    nulls dropped), the polars twin of
    :func:`servelab.analysis.aggregates.conversation_increments`."""
    x = values.filter(pl.col("x").is_not_null() & pl.col("x").is_finite())
    return (x.with_columns((pl.col("x") < 0).alias("neg"),
                           bin_values(pl.col("x").abs(), exact_below=exact_below, bin_ratio=bin_ratio).alias("bin"))
            .group_by("cidx", "first", "multi", "neg", "bin").agg(pl.col("x").mean().alias("value"),
                                                          pl.len().cast(pl.Int64).alias("n")))


def increment_pmfs(aggregates: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """``conversation_pmfs`` rows of :data:`FIRST_INPUT`, :data:`FIRST_INPUT_MULTI` and :data:`INCREMENT`.

    Parameters
    ----------
    aggregates : polars.DataFrame
        ``cidx, first, multi, neg, bin, value, n`` (:func:`increment_aggregates` or
        :func:`servelab.analysis.aggregates.conversation_increments`).
    names : list of str
        Client ids by index.

    Returns
    -------
    polars.DataFrame
        ``client_id, quantity, value, probability``: per quantity one PMF per client with such
        requests, and a pooled PMF over all clients with a null ``client_id`` (the fallback of
        clients without their own). No rows at all when the trace has no follow-up (nothing to
        add to the old behaviour).
    """
    name_of = pl.DataFrame({"cidx": np.arange(len(names), dtype=np.int64), "client_id": names},
                           schema={"cidx": pl.Int64, "client_id": pl.String})
    agg = aggregates.select(pl.col("cidx").cast(pl.Int64),
                            pl.when(~pl.col("first").cast(pl.Boolean)).then(pl.lit(INCREMENT))
                            .when(pl.col("multi").cast(pl.Boolean)).then(pl.lit(FIRST_INPUT_MULTI))
                            .otherwise(pl.lit(FIRST_INPUT)).alias("quantity"),
                            pl.col("neg").cast(pl.Boolean), pl.col("bin").cast(pl.Float64),
                            pl.col("value").cast(pl.Float64), pl.col("n").cast(pl.Int64))
    if agg.filter(pl.col("quantity") == INCREMENT).height == 0:
        return pl.DataFrame(schema={"client_id": pl.String, "quantity": pl.String, "value": pl.Float64,
                                    "probability": pl.Float64})
    pooled = (agg.group_by("quantity", "neg", "bin")
              .agg(((pl.col("value") * pl.col("n")).sum() / pl.col("n").sum()).alias("value"), pl.col("n").sum())
              .select(pl.lit(None, pl.String).alias("client_id"), "quantity", "value", "n"))
    own = agg.join(name_of, on="cidx", how="inner").select("client_id", "quantity", "value", "n")
    return (pl.concat([own, pooled])
            .with_columns((pl.col("n") / pl.col("n").sum().over("client_id", "quantity"))
                          .cast(pl.Float32).cast(pl.Float64).alias("probability"))
            .select("client_id", "quantity", pl.col("value").cast(pl.Float32).cast(pl.Float64), "probability")
            .sort("client_id", "quantity", "value", nulls_last=False))


def tables_from_aggregates(turns: pl.DataFrame, itt: pl.DataFrame, requests: pl.DataFrame, names: list[str], *,
                           share_of_turns: bool = False) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The pool's ``conversations`` and ``conversation_pmfs`` tables from per-client aggregates.

    Parameters
    ----------
    turns : polars.DataFrame
        ``cidx, turns, n``: conversations of that many turns per client (``n`` may be a
        weighted count, as :func:`censored_turn_pmf` gives).
    itt : polars.DataFrame
        ``cidx, bin, value, n, total``: inter-turn times per client and bin (mean, count, sum;
        count and sum may be weighted).
    requests : polars.DataFrame
        ``cidx, n``: requests per client.
    names : list of str
        Client ids by index.
    share_of_turns : bool
        ``multi_turn_share`` over the requests the turn counts imply (sum of turns x n), as
        corrected counts need, instead of over the client's requests in the trace.
    """
    name_of = pl.DataFrame({"cidx": np.arange(len(names), dtype=np.int64), "client_id": names},
                           schema={"cidx": pl.Int64, "client_id": pl.String})
    turns = turns.select(pl.col("cidx").cast(pl.Int64), pl.col("turns").cast(pl.Int64), pl.col("n").cast(pl.Float64))
    itt = itt.select(pl.col("cidx").cast(pl.Int64), pl.col("bin").cast(pl.Float64), pl.col("value").cast(pl.Float64),
                     pl.col("n").cast(pl.Float64), pl.col("total").cast(pl.Float64))
    requests = requests.select(pl.col("cidx").cast(pl.Int64), pl.col("n").cast(pl.Int64).alias("len"))
    table = (turns.group_by("cidx").agg(
        pl.col("n").sum().alias("n_conversations"),
        ((pl.col("turns") * pl.col("n")).sum() / pl.col("n").sum()).alias("turns_mean"),
        (pl.col("turns") * pl.col("n")).filter(pl.col("turns") >= 2).sum().alias("multi_req"),
        (pl.col("turns") * pl.col("n")).sum().alias("turn_req"))
        .join(requests, on="cidx", how="left")
        .with_columns(pl.col("turn_req").alias("len") if share_of_turns else pl.col("len"))
        .join(itt.group_by("cidx").agg((pl.col("total").sum() / pl.col("n").sum()).alias("itt_mean_s")),
              on="cidx", how="left")
        .join(name_of, on="cidx")
        .select("client_id", pl.col("n_conversations").round(0).cast(pl.Int64),
                (pl.col("multi_req").fill_null(0) / pl.col("len")).alias("multi_turn_share"),
                pl.col("turns_mean").cast(pl.Float64), pl.col("itt_mean_s").cast(pl.Float64),
                pl.lit(None, pl.String).alias("turns_fit"), pl.lit(None, pl.String).alias("itt_fit"))
        .sort("client_id"))
    turn_pmf = turns.select("cidx", pl.lit("turns").alias("quantity"), pl.col("turns").cast(pl.Float64).alias("value"),
                            "n")
    itt_pmf = itt.select("cidx", pl.lit("itt_s").alias("quantity"),
                         pl.col("value").cast(pl.Float32).cast(pl.Float64).alias("value"), "n")
    pmfs = (pl.concat([turn_pmf, itt_pmf])
            .with_columns((pl.col("n") / pl.col("n").sum().over("cidx", "quantity")).cast(pl.Float32).cast(pl.Float64)
                          .alias("probability"))
            .join(name_of, on="cidx")
            .select("client_id", "quantity", "value", "probability").sort("client_id", "quantity", "value"))
    return table, pmfs



# --------------------------------------------------------------------------------------------
# Window censoring (conversations cut by the trace's end)
# --------------------------------------------------------------------------------------------
#: largest weight :func:`window_weights` gives an inter-turn time (times close to the whole window)
WINDOW_WEIGHT_CAP = 20.0
#: bisection steps of :func:`censored_turn_pmf` (2^-60: far below float32 storage precision)
_BISECTION_STEPS = 60


def window_weights(x: np.ndarray, span_s: float, *, cap: float = WINDOW_WEIGHT_CAP) -> np.ndarray:
    r"""Inverse-probability weights of inter-turn times seen through a window of ``span_s`` seconds.

    A gap of length :math:`x` starting uniformly in a window of length :math:`T` ends inside it
    with probability :math:`(T - x) / T`: long gaps are seen less often than they occur, the
    more so the closer they come to :math:`T`. Each observed gap is weighted by

    .. math:: w(x) = \min\left(\frac{T}{T - x}, c\right)

    (``cap`` :math:`c`; gaps of :math:`x \ge T (1 - 1/c)` all get :math:`c`).

    Parameters
    ----------
    x : numpy.ndarray
        Inter-turn times (s, >= 0).
    span_s : float
        The window's length :math:`T` (s, > 0).
    cap : float
        Largest weight (>= 1).

    Returns
    -------
    numpy.ndarray
        One weight per gap, in ``[1, cap]``.

    Raises
    ------
    ValueError
        If ``span_s`` is not positive or ``cap`` is below 1.
    """
    if not (np.isfinite(span_s) and span_s > 0):
        raise ValueError(f"span_s must be a positive number of seconds; got {span_s!r}")
    if not cap >= 1:
        raise ValueError(f"cap must be >= 1; got {cap!r}")
    x = np.asarray(x, dtype=float)
    room = span_s - x
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(room > span_s / cap, span_s / room, cap)
    return np.clip(w, 1.0, cap)


def itt_survival(itt: np.ndarray, weights: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Weighted share of inter-turn times longer than each of ``at`` (1 where no gap is known)."""
    itt = np.asarray(itt, dtype=float)
    at = np.asarray(at, dtype=float)
    if itt.size == 0:
        return np.ones(at.size)
    order = np.argsort(itt, kind="stable")
    x, w = itt[order], np.asarray(weights, dtype=float)[order]
    tail = np.r_[np.cumsum(w[::-1])[::-1], 0.0]
    return tail[np.searchsorted(x, at, side="right")] / tail[0]


def censored_turn_pmf(cidx: np.ndarray, turns: np.ndarray, censor: np.ndarray) -> pl.DataFrame:
    r"""Turns per conversation by client, corrected for conversations cut by the window's end.

    A conversation seen with :math:`k` turns either stopped after turn :math:`k` (hazard
    :math:`h_k`) or would have continued but its next turn fell after the window's end
    (probability :math:`c_i`: the inter-turn-time survival at the time left after its last
    turn). Turn :math:`j`'s hazard maximises the exact censored likelihood

    .. math:: \ell(h_j) = \sum_{i: k_i = j} \log\left(h_j + (1 - h_j) c_i\right) + m_j \log(1 - h_j)

    (:math:`m_j`: conversations seen going on after turn :math:`j`), whose derivative
    :math:`\sum_i (1 - c_i) / (h + (1 - h) c_i) - m_j / (1 - h)` falls with :math:`h`: solved by
    bisection on :math:`[0, 1]` for every (client, turn) at once (:math:`h_j = 1` when no
    conversation goes on, 0 when every one that stopped may have been cut). The PMF is
    :math:`p_j = h_j \prod_{l<j} (1 - h_l)`; the client's longest seen conversation takes the
    remaining mass (the PMF is not extrapolated beyond what was seen). With every :math:`c_i = 0`
    it is the observed distribution.

    Parameters
    ----------
    cidx, turns : numpy.ndarray of int
        Per conversation: its client index and its seen turns (>= 1).
    censor : numpy.ndarray of float
        Per conversation: :math:`c_i` in ``[0, 1]``.

    Returns
    -------
    polars.DataFrame
        ``cidx, turns, n``: ``n`` the client's conversation count times :math:`p_j` (float;
        summing to the count seen), turns 1 to the client's longest.
    """
    cidx = np.asarray(cidx, dtype=np.int64)
    turns = np.asarray(turns, dtype=np.int64)
    c = np.clip(np.asarray(censor, dtype=float), 0.0, 1.0)
    if not (cidx.shape == turns.shape == c.shape):
        raise ValueError(f"cidx, turns and censor need one value per conversation; got {cidx.shape}, "
                         f"{turns.shape}, {c.shape}")
    if turns.size and turns.min() < 1:
        raise ValueError(f"turns must be >= 1; got {int(turns.min())!r}")
    schema = {"cidx": pl.Int64, "turns": pl.Int64, "n": pl.Float64}
    if turns.size == 0:
        return pl.DataFrame(schema=schema)
    per = (pl.DataFrame({"cidx": cidx, "turns": turns}).group_by("cidx", "turns").agg(pl.len().alias("ended"))
           .sort("cidx", "turns")
           .with_columns(pl.col("ended").sum().over("cidx").alias("total"),
                         pl.col("ended").cum_sum().over("cidx").alias("upto")))
    pc_, pk = per["cidx"].to_numpy(), per["turns"].to_numpy()
    going = (per["total"] - per["upto"]).to_numpy().astype(float)  # m_j: seen going on after turn j
    # the (client, turn) cell of every conversation
    cell = np.searchsorted(pc_ * (int(turns.max()) + 1) + pk, cidx * (int(turns.max()) + 1) + turns)
    lo, hi = np.zeros(per.height), np.ones(per.height)
    for _ in range(_BISECTION_STEPS):  # bisection steps, every cell at once (never a loop over requests)
        h = 0.5 * (lo + hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            score = (np.bincount(cell, weights=(1 - c) / (h[cell] + (1 - h[cell]) * c), minlength=per.height)
                     - np.where(going > 0, going / (1 - h), 0.0))
        up = score > 0
        lo, hi = np.where(up, h, lo), np.where(up, hi, h)
    h = np.where(going == 0, 1.0, 0.5 * (lo + hi))
    cells = pl.DataFrame({"cidx": pc_, "turns": pk, "h": h})
    dense = (per.group_by("cidx").agg(pl.col("turns").max().alias("kmax"), pl.col("total").first())
             .with_columns(pl.int_ranges(1, pl.col("kmax") + 1).alias("turns")).explode("turns")
             .with_columns(pl.col("turns").cast(pl.Int64))
             .join(cells, on=["cidx", "turns"], how="left").with_columns(pl.col("h").fill_null(0.0))
             .sort("cidx", "turns")
             .with_columns(pl.when(pl.col("turns") == pl.col("kmax")).then(1.0).otherwise(pl.col("h")).alias("h")))
    return (dense.with_columns((1 - pl.col("h")).cum_prod().shift(1, fill_value=1.0).over("cidx").alias("alive"))
            .select("cidx", "turns", (pl.col("total") * pl.col("alive") * pl.col("h")).alias("n"))
            .filter(pl.col("n") > 0).cast(schema))
