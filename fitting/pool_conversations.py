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
follow-ups, whose histories the generator adds itself. With window corrections a first input
counts in each PMF with the posterior of its kind (:func:`window_mixture`: a request seen first
may be the tail of a conversation begun before the trace, or a first turn whose follow-up fell
after its end; stores with conversation ids get the same from SQL aggregates,
:func:`conversation_spans` and :func:`window_tables`). Both come with
pooled rows with a null ``client_id`` (every request of the trace) that apply to clients without
their own. Pools without these rows keep the old behaviour (the generator's ``sorted``
context). This module writes nothing.
"""
from __future__ import annotations

import warnings

import numpy as np
import polars as pl

from servelab.analysis.store import TraceStore
from servelab.fitting.exceptions import ConvergenceWarning
from servelab.fitting.ordered_sums import grouped_sums
from servelab.fitting.pool_data import bin_values, spread_bins

__all__ = ["FIRST_INPUT", "FIRST_INPUT_MULTI", "INCREMENT", "INCREMENT_PROFILE", "INCREMENT_PROFILE_LEVEL",
           "INCREMENT_PROFILE_MIN", "ITT_TRAFFIC", "increment_profile_rows", "WINDOW_WEIGHT_CAP", "censored_turn_pmf",
           "conversation_spans", "conversation_tables", "increment_aggregates", "increment_pmfs", "itt_survival",
           "tables_from_aggregates", "traffic_times", "window_mixture", "window_tables", "window_weights"]

#: the ``quantity`` of a follow-up's input increment in ``conversation_pmfs``
INCREMENT = "input_increment"
#: the ``quantity`` of a first turn's input in ``conversation_pmfs``
FIRST_INPUT = "first_input"
#: the ``quantity`` of the first turn's input of a conversation of two turns or more
FIRST_INPUT_MULTI = "first_input_multi"
#: the ``quantity`` of the pooled row (null ``client_id``, value 1) that says the follow-ups'
#: increments follow the data windows' time profile (:func:`increment_profile_rows`)
INCREMENT_PROFILE = "input_increment_profile"
#: one-sided level of that test
INCREMENT_PROFILE_LEVEL = 0.01
#: fewest linked follow-ups the test runs on (below: no row, increments drawn regardless of time)
INCREMENT_PROFILE_MIN = 30
#: the ``quantity`` of the inter-turn times in the trace's traffic time (:func:`traffic_times`):
#: a gap counts the trace's arrivals between the two turns, at the mean rate of the arrival
#: window. The generator spaces turns by these when present (``itt_s`` stays the wall-clock
#: description). Why: a cache serves a follow-up when few blocks came between the turns, and
#: the generated arrivals are a renewal process per arrival window, without the trace's
#: burstiness inside it; in a bursty trace turns come in bursts (a parent is a request, so it
#: lands in a burst more often than not) and more traffic falls between them than their
#: seconds say. Spaced in seconds, the generated follow-ups found their history at too short
#: reuse distances (``benchmarks/bench_prefix_heldout.py``, the 1-h Azure traces: +5 points at
#: 256 blocks); spaced in traffic time they find it at the trace's. On a trace whose arrivals
#: are as smooth as the generator's, both are the same.
ITT_TRAFFIC = "itt_traffic_s"


def traffic_times(timestamps: np.ndarray, window_s: float, *, span: tuple[float, float] | None = None) -> np.ndarray:
    """Each request's time in the trace's *traffic time*: within every window of ``window_s``
    seconds (the grid ``k * window_s``, cut to ``span``, default first to last request), the
    window's requests evenly spaced in arrival order (equal times share their mean rank), so
    that a gap in traffic time is the arrivals between two requests divided by the window's
    mean rate (windows keep their own length: the rate between windows, which the generator
    reproduces, is kept; the burstiness inside them, which it does not, is taken out).

    Parameters
    ----------
    timestamps : numpy.ndarray
        Arrival times (s), any order.
    window_s : float
        Window length (s), > 0.
    span : (float, float), optional
        The covered span (windows are cut to it).

    Returns
    -------
    numpy.ndarray
        Traffic times (s), in the input order.
    """
    if not (np.isfinite(window_s) and window_s > 0):
        raise ValueError(f"window_s must be a positive number of seconds; got {window_s!r}")
    t = np.asarray(timestamps, dtype=float)
    if t.size == 0:
        return t.copy()
    lo, hi = (float(t.min()), float(t.max())) if span is None else (float(span[0]), float(span[1]))
    frame = pl.DataFrame({"t": t, "win": np.floor(t / window_s)})
    out = frame.select(
        pl.max_horizontal(pl.col("win") * window_s, pl.lit(lo)).alias("a"),
        pl.min_horizontal((pl.col("win") + 1) * window_s, pl.lit(hi)).alias("b"),
        ((pl.col("t").rank("average").over("win") - 0.5) / pl.len().over("win")).alias("q"))
    a, b, q = out["a"].to_numpy(), out["b"].to_numpy(), out["q"].to_numpy()
    return a + np.maximum(b - a, 0.0) * q


def _itt_bins(gaps: pl.DataFrame, x: pl.Expr, weight: str, bin_ratio: float) -> pl.DataFrame:
    """``cidx, bin, value, n, total``: gaps ``x`` in 0.1 s bins below 1 s, log bins of ratio
    ``bin_ratio`` above (value = bin mean; ``n`` and ``total`` weighted by column ``weight``)."""
    binned = gaps.with_columns(pl.when(x < 1).then((x * 10).floor() + 1e6)
                               .otherwise(bin_values(x, exact_below=1, bin_ratio=bin_ratio)).alias("bin"))
    # float sums in row order (a polars group-by sum's last bit varies from run to run)
    return (grouped_sums(binned, ["cidx", "bin"], s=x, k=pl.lit(1.0), n=weight, total=x * pl.col(weight))
            .select("cidx", "bin", (pl.col("s") / pl.col("k")).alias("value"), "n", "total"))


def increment_profile_rows(follow_t: np.ndarray, increments: np.ndarray, request_t: np.ndarray,
                           request_input: np.ndarray, *, data_window_s: float, start: float,
                           level: float = INCREMENT_PROFILE_LEVEL, min_followups: int = INCREMENT_PROFILE_MIN
                           ) -> pl.DataFrame:
    """The pooled :data:`INCREMENT_PROFILE` row when the follow-ups' increments follow the data
    windows' time profile, else no row.

    The generator draws a first turn at its data window's level (a trace whose prompts grow keeps
    growing first turns); whether a follow-up's new text (its increment) does too is a property
    of the trace: in the Azure traces of ``bench_prefix_heldout.py`` whose prompt lengths drift,
    every prompt's new text drifts (mean increment 3,568 -> 5,393 tokens over the quarters of
    ``azure-drift-20m``), while in Mooncake's sample the prompts grow (11,965 -> 20,357 tokens a
    quarter) but the follow-ups' increments do not (437 -> 257). Test: Spearman's rank
    correlation between each linked follow-up's increment and the mean input of every request in
    its data window (windows of ``data_window_s`` from ``start``), one-sided (increments higher
    in windows of longer prompts), at ``level``. Under the null (increments independent of the
    windows' level) the p-value is uniform; with fewer than ``min_followups`` follow-ups or one
    window, no test and no row.

    Parameters
    ----------
    follow_t, increments : numpy.ndarray
        Each linked follow-up's arrival time (s) and increment (input minus its history).
    request_t, request_input : numpy.ndarray
        Every request's arrival time (s) and input tokens (the windows' levels).
    data_window_s, start : float
        The pool's data window (s) and the time its first window starts.
    level : float
        One-sided test level (default :data:`INCREMENT_PROFILE_LEVEL`).
    min_followups : int
        Fewest follow-ups to test on (default :data:`INCREMENT_PROFILE_MIN`).

    Returns
    -------
    polars.DataFrame
        ``client_id`` (null: pooled, every client), ``quantity``, ``value`` (1.0), ``probability``
        (1.0); zero rows when the null is not rejected.
    """
    from scipy.stats import spearmanr

    out = pl.DataFrame(schema={"client_id": pl.String, "quantity": pl.String, "value": pl.Float64,
                               "probability": pl.Float64})
    follow_t, increments = np.asarray(follow_t, dtype=float), np.asarray(increments, dtype=float)
    ok = np.isfinite(follow_t) & np.isfinite(increments)
    if ok.sum() < min_followups or not data_window_s > 0:
        return out
    rw = np.floor((np.asarray(request_t, dtype=float) - start) / data_window_s).astype(np.int64)
    fw = np.floor((follow_t[ok] - start) / data_window_s).astype(np.int64)
    lo = int(min(rw.min(), fw.min()))
    n = np.bincount(rw - lo)
    level_w = np.bincount(rw - lo, weights=np.asarray(request_input, dtype=float)) / np.maximum(n, 1)
    x = level_w[np.clip(fw - lo, 0, level_w.size - 1)]
    if np.unique(x).size < 2:
        return out
    res = spearmanr(x, increments[ok], alternative="greater")
    if not float(res.pvalue) < level:
        return out
    return pl.DataFrame({"client_id": [None], "quantity": [INCREMENT_PROFILE], "value": [1.0], "probability": [1.0]},
                        schema=out.schema)


def conversation_tables(store: TraceStore, frame: pl.DataFrame, ci: np.ndarray, names: list[str], *, bin_ratio: float,
                        linking=None, exact_below: int = 64, window_censoring: bool = True,
                        span: tuple[float, float] | None = None, traffic_window_s: float | None = None,
                        data_window_s: float | None = None, spread_points: int = 1):
    """Per-client conversation parameters and PMFs (turns exact, ITT log-binned, input increments
    binned as the data PMFs when the store has ``input_tokens``); ``linking`` (a
    :class:`~servelab.analysis.conversations.LinkOptions`) sets how prefix-block links are inferred.

    With ``window_censoring`` (the default), the trace is a window ``span`` (default: first to
    last request) of a stationary process that cuts conversations at both ends: inter-turn
    times are weighted by :func:`window_weights`; turns and the first-input PMFs come from
    :func:`window_mixture`, which tells conversations begun inside the window (and cut or not
    at its end) from tails of conversations begun before it, with the weighted inter-turn-time
    survival (pooled over clients) at the time left after a conversation's last seen turn and
    at the time from the window's start to its first. The tails are left out of every
    estimate: the generator's warm-up makes its own, so the window is accounted for once.
    Without it, the counts as seen.

    With ``traffic_window_s`` (links inferred from ``prefix_blocks`` or ``parent_id``), the
    follow-ups' inter-turn times are also measured in the trace's *traffic time*
    (:func:`traffic_times`) and written as :data:`ITT_TRAFFIC` rows, which the generator spaces
    turns by (see :data:`ITT_TRAFFIC`).

    With ``data_window_s`` and input lengths (inferred links), a pooled :data:`INCREMENT_PROFILE`
    row when the follow-ups' increments follow the data windows' time profile
    (:func:`increment_profile_rows`)."""
    from servelab.analysis.conversations import LinkOptions, available_link_rules, link_conversations
    from servelab.analysis.exceptions import NotApplicableError

    rules = available_link_rules(store)
    if not rules:
        return None, None, "no link information in the store"
    profile = None
    if rules[0] == "conversation_id":
        # explicit ids: the turns of a conversation are its requests in arrival order (the rule of
        # analysis.conversations), done here as polars group-bys: linking every request of a 10 M-row
        # store through link_conversations takes minutes. Requests without an id are single-turn.
        rows = frame.select("conversation_id", "timestamp", pl.Series("cidx", ci))
        linked = rows.filter(pl.col("conversation_id").is_not_null())
        single = rows.filter(pl.col("conversation_id").is_null()).select(
            "cidx", pl.lit(1, pl.Int64).alias("turns"), pl.col("timestamp").cast(pl.Float64).alias("last"))
        if "input_tokens" in frame.columns:
            linked = linked.with_columns(pl.Series("x", frame["input_tokens"].cast(pl.Float64))
                                         .filter(rows["conversation_id"].is_not_null()))
            single = single.with_columns(pl.Series("x", frame["input_tokens"].cast(pl.Float64))
                                         .filter(rows["conversation_id"].is_null()))
        else:
            linked, single = linked.with_columns(pl.lit(None, pl.Float64).alias("x")), \
                single.with_columns(pl.lit(None, pl.Float64).alias("x"))
        per_conv = pl.concat([
            linked.group_by("conversation_id").agg(pl.col("cidx").first(), pl.len().cast(pl.Int64).alias("turns"),
                                                   pl.col("timestamp").min().cast(pl.Float64).alias("first"),
                                                   pl.col("timestamp").max().cast(pl.Float64).alias("last"),
                                                   pl.col("x").first())
            .select("cidx", "turns", "first", "last", "x"),
            single.select("cidx", "turns", pl.col("last").alias("first"), "last", "x"),
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
        # every request's time (and input), read once for the traffic times and the increment test
        every = (pl.from_arrow(store.read_arrow(["request_id", "timestamp"] + (
            ["input_tokens"] if "input_tokens" in store.columns else [])))
            if traffic_window_s is not None or data_window_s is not None else None)
        if "input_tokens" in store.columns:
            cols = ["request_id", "input_tokens"] + (["output_tokens"] if "output_tokens" in store.columns else [])
            io = pl.from_arrow(store.read_arrow(cols))
            io = io.select(pl.col("request_id").cast(rid["request_id"].dtype), pl.col("input_tokens").cast(pl.Float64),
                           _history(io).alias("h"))
            pairs = (links.join(io.select("request_id", "input_tokens"), on="request_id", how="inner")
                     .join(io.select(pl.col("request_id").alias("parent"), "h"), on="parent", how="left")
                     .select("cidx", "h", pl.col("parent").is_null().alias("first"),
                             (pl.len().over("conversation") > 1).alias("multi"), pl.col("input_tokens").alias("i"),
                             pl.col("timestamp").cast(pl.Float64).alias("t")))
            if data_window_s is not None:
                f = pairs.filter(~pl.col("first"))
                t_all = every["timestamp"].cast(pl.Float64).to_numpy()
                profile = increment_profile_rows(
                    f["t"].to_numpy(), (f["i"] - f["h"]).to_numpy(), t_all,
                    every["input_tokens"].cast(pl.Float64).fill_null(0.0).to_numpy(), data_window_s=data_window_s,
                    start=float(span[0]) if span is not None else float(np.nanmin(t_all)))
            pairs = pairs.drop("t")
        owner = links.filter(pl.col("request_id") == pl.col("conversation")).select("conversation", "cidx")
        if pairs is not None:  # the first seen input of each conversation
            owner = owner.join(io.select(pl.col("request_id").alias("conversation"), pl.col("input_tokens").alias("x")),
                               on="conversation", how="left")
        else:
            owner = owner.with_columns(pl.lit(None, pl.Float64).alias("x"))
        # a branching conversation (over-linking: reuses of a turn's prompt look like its
        # follow-ups) counts as its longest chain, its depth: the generator makes chains, and a
        # tree of n rows made as an n-turn chain would grow its history n times, not depth times
        # traffic time (traffic_times): the follow-ups' gaps in it, and the conversations' first and
        # last turns in it for the window's cuts (the generator's turns are spaced in it)
        links = links.with_columns(pl.col("timestamp").cast(pl.Float64).alias("tau"))
        if traffic_window_s is not None:
            tau = pl.DataFrame({"request_id": every["request_id"].cast(links["request_id"].dtype),
                                "tau": traffic_times(every["timestamp"].cast(pl.Float64).to_numpy(),
                                                     traffic_window_s, span=span)})
            links = (links.drop("tau").join(tau, on="request_id", how="left")
                     .join(tau.select(pl.col("request_id").cast(links["parent"].dtype).alias("parent"),
                                      pl.col("tau").alias("tau_parent")), on="parent", how="left")
                     .with_columns(pl.col("tau").fill_null(pl.col("timestamp").cast(pl.Float64)),
                                   pl.when(pl.col("itt_s").is_not_null())
                                   .then(pl.col("tau") - pl.col("tau_parent")).alias(ITT_TRAFFIC)))
        per_conv = (links.group_by("conversation").agg(pl.col("turn").max().alias("turns"),
                                                       pl.col("timestamp").min().cast(pl.Float64).alias("first"),
                                                       pl.col("timestamp").max().cast(pl.Float64).alias("last"),
                                                       pl.col("tau").min().alias("tau_first"),
                                                       pl.col("tau").max().alias("tau_last"))
                    .join(owner, on="conversation", how="inner")
                    .select("cidx", "turns", "first", "last", "tau_first", "tau_last", "x"))
        seen = links["timestamp"]
        links = links.select("cidx", "itt_s", *([ITT_TRAFFIC] if traffic_window_s is not None else []))
        rule, n_conv, n_multi = rules[0], conv.summary.n_conversations, conv.summary.n_multi_turn
    links = links.with_columns(pl.col("cidx").cast(pl.Int64))
    per_conv = per_conv.with_columns(pl.col("cidx").cast(pl.Int64), pl.col("turns").cast(pl.Int64))
    gaps = links.filter(pl.col("itt_s").is_not_null() & (pl.col("itt_s") >= 0))
    if window_censoring:
        t0, t1 = (float(seen.min()), float(seen.max())) if span is None else (float(span[0]), float(span[1]))
        x = gaps["itt_s"].to_numpy().astype(float)
        w = window_weights(x, t1 - t0) if t1 > t0 else np.ones(x.size)
        gaps = gaps.with_columns(pl.Series("w", w))
        first, last = per_conv["first"].to_numpy(), per_conv["last"].to_numpy()
        if ITT_TRAFFIC in gaps.columns:
            # the generator spaces turns in traffic time: the window cuts its conversations there
            x = gaps[ITT_TRAFFIC].fill_null(gaps["itt_s"]).clip(lower_bound=0.0).to_numpy().astype(float)
            w = window_weights(x, t1 - t0) if t1 > t0 else np.ones(x.size)
            gaps = gaps.with_columns(pl.Series("w_traffic", w))
            first, last = per_conv["tau_first"].to_numpy(), per_conv["tau_last"].to_numpy()
        censor = itt_survival(x, w, t1 - last)
        left = itt_survival(x, w, first - t0)
        follow = (pairs.filter(~pl.col("first")).select("cidx", "i") if pairs is not None
                  else pl.DataFrame(schema={"cidx": pl.Int64, "i": pl.Float64}))
        turns, p_single, p_multi = window_mixture(
            per_conv["cidx"].to_numpy(), per_conv["turns"].to_numpy(), censor, left, n_clients=len(names),
            first_input=(per_conv["x"].cast(pl.Float64).fill_null(float("nan")).to_numpy() if pairs is not None
                         else None),
            follow_cidx=follow["cidx"].to_numpy(), follow_input=follow["i"].cast(pl.Float64).to_numpy(),
            exact_below=exact_below, bin_ratio=bin_ratio)
        if pairs is not None:  # first inputs weighted by the posterior of their kind; tails dropped
            firsts = per_conv.select(pl.col("cidx").cast(pl.Int64), pl.col("x").cast(pl.Float64).alias("i"))
            pairs = pl.concat([
                pairs.filter(~pl.col("first")).select(pl.col("cidx").cast(pl.Int64), "h", "first", "multi", "i",
                                                      pl.lit(1.0).alias("w")),
                firsts.select("cidx", pl.lit(None, pl.Float64).alias("h"), pl.lit(True).alias("first"),
                              pl.lit(False).alias("multi"), "i", pl.Series("w", p_single)),
                firsts.select("cidx", pl.lit(None, pl.Float64).alias("h"), pl.lit(True).alias("first"),
                              pl.lit(True).alias("multi"), "i", pl.Series("w", p_multi)),
            ]).filter(pl.col("w") > 0)
    else:
        gaps = gaps.with_columns(pl.lit(1.0).alias("w"))
        turns = per_conv.group_by("cidx", "turns").agg(pl.len().cast(pl.Int64).alias("n"))
    # ITT: 0.1 s bins below 1 s, log bins of ratio bin_ratio above (value = bin mean; n, total weighted)
    itt = _itt_bins(gaps, pl.col("itt_s"), "w", bin_ratio)
    req = pl.DataFrame({"cidx": np.arange(len(names), dtype=np.int64), "n": np.bincount(ci, minlength=len(names))})
    table, pmfs = tables_from_aggregates(turns, itt, req, names, share_of_turns=window_censoring)
    if ITT_TRAFFIC in gaps.columns:  # the same PMF of the traffic-time gaps (same bins; their window weights)
        traffic = _itt_bins(gaps.filter(pl.col(ITT_TRAFFIC).is_not_null()), pl.col(ITT_TRAFFIC).clip(lower_bound=0.0),
                            "w_traffic" if "w_traffic" in gaps.columns else "w", bin_ratio)
        if traffic.height:
            _, tp = tables_from_aggregates(turns, traffic, req, names)
            pmfs = pl.concat([pmfs, tp.filter(pl.col("quantity") == "itt_s").with_columns(
                pl.lit(ITT_TRAFFIC).alias("quantity"))]).sort("client_id", "quantity", "value")
    if pairs is not None:
        inc = pairs.select(pl.col("cidx").cast(pl.Int64), "first", "multi",
                           pl.when(pl.col("first")).then(pl.col("i")).otherwise(pl.col("i") - pl.col("h")).alias("x"),
                           *([pl.col("w")] if "w" in pairs.columns else []))
        pmfs = pl.concat([pmfs, increment_pmfs(increment_aggregates(inc, exact_below=exact_below,
                                                                    bin_ratio=bin_ratio), names,
                                               spread_points=spread_points)])
        if profile is not None and profile.height:
            pmfs = pl.concat([pmfs, profile.with_columns(pl.col("client_id").cast(pmfs["client_id"].dtype))])
    note = f"linked by {rule}: {n_conv} conversations, {n_multi} multi-turn"
    return table, pmfs, note


def _history(frame: pl.DataFrame) -> pl.Expr:
    """A request's contribution to its child's history: input + output (null output counted as 0)."""
    out = pl.col("output_tokens").cast(pl.Float64).fill_null(0.0) if "output_tokens" in frame.columns else pl.lit(0.0)
    return pl.col("input_tokens").cast(pl.Float64) + out


def increment_aggregates(values: pl.DataFrame, *, exact_below: int, bin_ratio: float) -> pl.DataFrame:
    """Binned ``cidx, first, multi, neg, bin, value, n, lo, hi`` from raw ``cidx, first, multi, x`` (a
    first turn's input or a follow-up's increment; ``multi``: its conversation has two turns or
    more; nulls dropped; ``lo, hi`` the bin's smallest and largest value), the polars twin of
    :func:`servelab.analysis.aggregates.conversation_increments`."""
    keys = ["cidx", "first", "multi", "neg", "bin"]
    x = values.filter(pl.col("x").is_not_null() & pl.col("x").is_finite())
    binned = x.with_columns((pl.col("x") < 0).alias("neg"),
                            bin_values(pl.col("x").abs(), exact_below=exact_below, bin_ratio=bin_ratio).alias("bin"))
    if "w" not in x.columns:
        return binned.group_by(*keys).agg(pl.col("x").mean().alias("value"), pl.len().cast(pl.Int64).alias("n"),
                                          pl.col("x").min().alias("lo"), pl.col("x").max().alias("hi"))
    # weighted sums in row order (a polars group-by sum's last bit varies from run to run; a
    # minimum and a maximum do not)
    sums = grouped_sums(binned, keys, xw=pl.col("x") * pl.col("w"), n="w")
    ends = binned.group_by(*keys).agg(pl.col("x").min().alias("lo"), pl.col("x").max().alias("hi"))
    return (sums.join(ends, on=keys, how="left", maintain_order="left")
            .select(*keys, (pl.col("xw") / pl.col("n")).alias("value"), "n", "lo", "hi"))


def increment_pmfs(aggregates: pl.DataFrame, names: list[str], *, spread_points: int = 1) -> pl.DataFrame:
    """``conversation_pmfs`` rows of :data:`FIRST_INPUT`, :data:`FIRST_INPUT_MULTI` and :data:`INCREMENT`.

    Parameters
    ----------
    aggregates : polars.DataFrame
        ``cidx, first, multi, neg, bin, value, n`` (:func:`increment_aggregates` or
        :func:`servelab.analysis.aggregates.conversation_increments`), optionally with ``lo, hi``.
    names : list of str
        Client ids by index.
    spread_points : int
        With ``lo, hi``: a bin of several values becomes up to this many values spread over them, its
        mean kept (:func:`~servelab.fitting.pool_data.spread_bins`), as the data PMFs' bins do.

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
    spans = ["lo", "hi"] if spread_points > 1 and {"lo", "hi"} <= set(aggregates.columns) else []
    agg = aggregates.select(pl.col("cidx").cast(pl.Int64),
                            pl.when(~pl.col("first").cast(pl.Boolean)).then(pl.lit(INCREMENT))
                            .when(pl.col("multi").cast(pl.Boolean)).then(pl.lit(FIRST_INPUT_MULTI))
                            .otherwise(pl.lit(FIRST_INPUT)).alias("quantity"),
                            pl.col("neg").cast(pl.Boolean), pl.col("bin").cast(pl.Float64),
                            pl.col("value").cast(pl.Float64), pl.col("n").cast(pl.Float64),
                            *[pl.col(c).cast(pl.Float64) for c in spans]
                            ).sort("cidx", "quantity", "neg", "bin", "value")  # one summation order (tables_from_aggregates)
    if agg.filter(pl.col("quantity") == INCREMENT).height == 0:
        return pl.DataFrame(schema={"client_id": pl.String, "quantity": pl.String, "value": pl.Float64,
                                    "probability": pl.Float64})
    pooled = (agg.group_by("quantity", "neg", "bin")
              .agg(((pl.col("value") * pl.col("n")).sum() / pl.col("n").sum()).alias("value"), pl.col("n").sum(),
                   *([pl.col("lo").min(), pl.col("hi").max()] if spans else []))
              .select(pl.lit(None, pl.String).alias("client_id"), "quantity", "value", "n", *spans))
    own = agg.join(name_of, on="cidx", how="inner").select("client_id", "quantity", "value", "n", *spans)
    if spans:  # bins of several values spread over them (pool_data.spread_bins)
        own, pooled = (spread_bins(part.rename({"value": "v"}), points=spread_points, keys=("client_id", "quantity"))
                       .rename({"v": "value"}) for part in (own, pooled))
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
    # the aggregates arrive in the engine's hash order, which varies from run to run: sort them so
    # every float sum below adds in one order (the same pool bytes for the same trace)
    turns, itt = turns.sort("cidx", "turns"), itt.sort("cidx", "bin", "value")
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


#: EM steps of :func:`window_mixture` at most (it stops once no posterior moves by :data:`_EM_TOLERANCE`)
_EM_ITERATIONS = 2000
#: largest change of a posterior between two EM steps at which :func:`window_mixture` stops
#: (far below what moves a PMF stored in float32 by a visible amount at the counts it sees)
_EM_TOLERANCE = 1e-5


def _bin_keys(x: np.ndarray, *, exact_below: int, bin_ratio: float) -> np.ndarray:
    """The key of :func:`servelab.fitting.pool_data.bin_values` in numpy (non-negative ``x``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        logbin = -1.0 - np.floor(np.log(x / exact_below) / np.log(bin_ratio))
    return np.where(x < exact_below, x, logbin)


def _smoothed(counts: np.ndarray) -> np.ndarray:
    """Per-client PMFs (rows) from weighted counts, shrunk by one pseudo-request towards the pooled
    PMF (itself shrunk towards uniform): a client with few requests borrows the trace's shape, and
    no bin has probability 0 (a ratio of PMFs is taken)."""
    pooled = counts.sum(axis=0)
    pooled = (pooled + 1.0 / counts.shape[1]) / (pooled.sum() + 1.0)
    return (counts + pooled[None, :]) / (counts.sum(axis=1, keepdims=True) + 1.0)


def window_mixture(cidx: np.ndarray, turns: np.ndarray, censor: np.ndarray, left: np.ndarray, *,
                   n_clients: int, first_input: np.ndarray | None = None, follow_cidx: np.ndarray | None = None,
                   follow_input: np.ndarray | None = None, exact_below: int = 64, bin_ratio: float = 1.1,
                   counts: np.ndarray | None = None, follow_counts: np.ndarray | None = None
                   ) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    r"""Turns and first-turn inputs of conversations seen through a window, cut at both ends.

    A trace is a window of a stationary process: conversations start at rate :math:`\lambda`,
    have :math:`K` turns (PMF :math:`p_k`) at independent inter-turn times (survival
    :math:`S`), and a first turn whose input follows :math:`f_s` when :math:`K = 1` and
    :math:`f_m` when :math:`K \ge 2`. What is linked inside the window is a *seen
    conversation*: its first seen turn at time :math:`u` after the start, :math:`k` seen turns,
    the last at :math:`v`. It is one of

    - a conversation that started inside and stopped after turn :math:`k`
      (intensity :math:`\lambda p_k`);
    - one that started inside and went on after the window's end
      (:math:`\lambda P(K > k) c` with :math:`c = S(\text{end} - v)`, the ``censor`` given);
    - the tail of a conversation begun before the window (its first seen turn is a follow-up,
      whose parent is before the start): intensity
      :math:`\lambda s \left[P(K \ge k + 1) + c \sum_{l \ge k + 1} P(K > l)\right]` with
      :math:`s = S(u)` (the ``left`` given): the rate of turns :math:`j \ge 2` whose previous
      turn fell before the start, :math:`\lambda P(K \ge j) S(u)`, summed over the turn
      :math:`j` it begins with.

    The first seen input :math:`x` tells the three apart as well: :math:`f_s(x)` or
    :math:`f_m(x)` for the first two (:math:`f_s` only when :math:`k = 1` and it stopped),
    :math:`g(x)` for a tail, with :math:`g` the client's follow-up inputs seen in the window.
    EM over the hidden kind: posteriors from the intensities above times the input PMFs, then
    :math:`f_s`, :math:`f_m` (binned as the pool's PMFs) and the turn hazards in closed form,

    .. math:: h_j = \frac{\sum_{k_i = j} r^{\text{stop}}_i}
                         {\sum_{k_i = j} (r^{\text{stop}}_i + r^{\text{cut}}_i) + \sum_{k_i > j} r^{\text{in}}_i}

    (:math:`r^{\text{in}} = r^{\text{stop}} + r^{\text{cut}}`: the posterior that the
    conversation began inside). Tails are dropped from every estimate: the generator's warm-up
    makes its own (:mod:`servelab.generator.stream`), so the fit describes conversations from
    their first turn and the window is accounted for once. With ``censor`` and ``left`` all 0
    the turns are the observed distribution and every first input is its own kind's. A client's
    longest seen conversation takes the PMF's remaining mass (no extrapolation). Only
    conversations with ``censor`` or ``left`` above 0 are iterated over.

    Parameters
    ----------
    cidx, turns : numpy.ndarray of int
        Per seen conversation: client index (``< n_clients``) and seen turns (>= 1).
    censor, left : numpy.ndarray of float
        Per seen conversation: :math:`c` and :math:`s` above, in ``[0, 1]``.
    n_clients : int
        Number of clients.
    first_input : numpy.ndarray of float, optional
        Per seen conversation: its first seen request's input (NaN: unknown). None: inputs are
        not used.
    follow_cidx, follow_input : numpy.ndarray, optional
        Client and input of every seen follow-up (for :math:`g`); needed with ``first_input``.
    exact_below, bin_ratio : int, float
        Input bins (:func:`~servelab.fitting.pool_data.bin_values`).
    counts, follow_counts : numpy.ndarray, optional
        How many identical conversations (follow-ups) each row stands for (default 1 each): rows
        of conversations far from both ends can come aggregated, e.g. from SQL.

    Returns
    -------
    turns : polars.DataFrame
        ``cidx, turns, n``: per client the estimated conversations begun inside the window times
        :math:`p_k` (turns 1 to the client's longest seen).
    single, multi : numpy.ndarray
        Per seen conversation: the posterior that it began inside and has one turn, and that it
        began inside and has two or more (the weights of its first input in :data:`FIRST_INPUT`
        and :data:`FIRST_INPUT_MULTI`; ``1 - single - multi`` is its posterior of being a tail).

    Raises
    ------
    ValueError
        If the per-conversation arrays differ in length or ``turns`` has a value below 1.

    Warns
    -----
    ConvergenceWarning
        If a posterior still moves by more than 1e-5 after 2000 EM steps (the last step's
        estimates are returned).
    """
    cidx = np.asarray(cidx, dtype=np.int64)
    turns = np.asarray(turns, dtype=np.int64)
    c = np.clip(np.asarray(censor, dtype=float), 0.0, 1.0)
    s = np.clip(np.asarray(left, dtype=float), 0.0, 1.0)
    if not (cidx.shape == turns.shape == c.shape == s.shape):
        raise ValueError(f"cidx, turns, censor and left need one value per conversation; got {cidx.shape}, "
                         f"{turns.shape}, {c.shape}, {s.shape}")
    if turns.size and turns.min() < 1:
        raise ValueError(f"turns must be >= 1; got {int(turns.min())!r}")
    n_rows = np.ones(turns.size) if counts is None else np.asarray(counts, dtype=float)
    if n_rows.shape != turns.shape:
        raise ValueError(f"counts needs one value per conversation row; got {n_rows.shape} for {turns.shape}")
    schema = {"cidx": pl.Int64, "turns": pl.Int64, "n": pl.Float64}
    if turns.size == 0:
        return pl.DataFrame(schema=schema), np.zeros(0), np.zeros(0)
    P, K = int(n_clients), int(turns.max())
    kmax = np.zeros(P, np.int64)
    np.maximum.at(kmax, cidx, turns)
    # input bins: the first inputs and the follow-ups' (for g) share one index
    use_x = first_input is not None
    if use_x:
        x = np.asarray(first_input, dtype=float)
        fx = np.asarray(follow_input, dtype=float) if follow_input is not None else np.zeros(0)
        fw = np.ones(fx.size) if follow_counts is None else np.asarray(follow_counts, dtype=float)
        fc = np.asarray(follow_cidx, dtype=np.int64) if follow_cidx is not None else np.zeros(0, np.int64)
        ok, fok = np.isfinite(x) & (x >= 0), np.isfinite(fx) & (fx >= 0)
        keys = _bin_keys(np.r_[x[ok], fx[fok]], exact_below=exact_below, bin_ratio=bin_ratio)
        uniq, inv = np.unique(keys, return_inverse=True)
        b = np.full(x.size, -1, np.int64)
        b[ok] = inv[:int(ok.sum())]
        fb = inv[int(ok.sum()):]
        B = max(uniq.size, 1)
        g = _smoothed(np.bincount(fc[fok] * B + fb, weights=fw[fok], minlength=P * B).reshape(P, B))
    else:
        b = np.full(turns.size, -1, np.int64)
        B = 1
        g = np.ones((P, 1))
    has_x = b >= 0
    bx = np.maximum(b, 0)
    unsure = (c > 0) | (s > 0)
    u = np.flatnonzero(unsure)
    sure = ~unsure
    # the sure conversations' fixed parts: began inside, stopped at k (posterior 1)
    sure_end = np.bincount(cidx[sure] * (K + 1) + turns[sure], weights=n_rows[sure],
                           minlength=P * (K + 1)).reshape(P, K + 1)
    cu, ku, c_u, s_u, bu, xu, n_u = cidx[u], turns[u], c[u], s[u], bx[u], has_x[u], n_rows[u]
    one = ku == 1
    # input PMFs at the unsure conversations' (client, bin) cells only: sure counts there, per-client
    # and per-bin totals, and the unsure weights added per cell (O(unsure) per step, never P x B)
    cell = cu * B + bu
    cells, at = np.unique(cell, return_inverse=True)
    cell_c, cell_b = cells // B, cells % B

    def sure_counts(mask):
        m = mask & has_x
        keys, wk = cidx[m] * B + bx[m], n_rows[m]
        pos = np.searchsorted(cells, keys)
        hit = pos < cells.size
        hit[hit] = cells[pos[hit]] == keys[hit]
        return (np.bincount(pos[hit], weights=wk[hit], minlength=cells.size),
                np.bincount(cidx[m], weights=wk, minlength=P), np.bincount(bx[m], weights=wk, minlength=B))

    s1_cell, s1_client, s1_bin = sure_counts(sure & (turns == 1))
    sm_cell, sm_client, sm_bin = sure_counts(sure & (turns >= 2))

    def smoothed_at(cell_n, client_n, bin_n, w):
        """:func:`_smoothed` of (sure counts + the unsure weights ``w``) at the unsure cells."""
        add = np.bincount(at, weights=w, minlength=cells.size)
        per_client = client_n + np.bincount(cu, weights=w, minlength=P)
        per_bin = bin_n + np.bincount(bu, weights=w, minlength=B)
        pooled = (per_bin + 1.0 / B) / (per_bin.sum() + 1.0)
        return ((cell_n + add + pooled[cell_b]) / (per_client[cell_c] + 1.0))[at]

    # start: everything unsure began inside and stopped (the counts as seen)
    r_stop, r_cut = np.ones(u.size), np.zeros(u.size)

    def hazards(sure_rows, kmax_rows, rows_of_u, r_stop, r_cut):
        """M-step of the turns: the hazard per (client, turn) in closed form (docstring), for the
        clients of ``sure_rows`` (``rows_of_u``: the row of each unsure conversation's client)."""
        n, width = sure_rows.shape
        key = rows_of_u * width + ku
        ended = sure_rows + np.bincount(key, weights=r_stop * n_u, minlength=n * width).reshape(n, width)
        inside = ended + np.bincount(key, weights=r_cut * n_u, minlength=n * width).reshape(n, width)
        beyond = np.cumsum(inside[:, ::-1], axis=1)[:, ::-1]  # sum over k >= j
        beyond = np.c_[beyond[:, 1:], np.zeros(n)]  # sum over k > j
        with np.errstate(divide="ignore", invalid="ignore"):
            h = np.where(inside + beyond > 0, ended / (inside + beyond), 0.0)
        h = np.where(np.arange(width)[None, :] >= kmax_rows[:, None], 1.0, h)
        h[:, 0] = 0.0
        return h

    # the EM runs over the clients with unsure conversations only, up to their longest turn
    uc = np.unique(cu)
    row_u = np.searchsorted(uc, cu)
    width_u = int(kmax[uc].max()) + 1 if uc.size else 1
    sure_u, kmax_u = sure_end[uc, :width_u], kmax[uc]
    moved = 0.0
    for _ in range(_EM_ITERATIONS):  # EM steps, every conversation at once (never a loop over requests)
        # M-step: hazards per (client, turn) and the first-input PMFs
        h = hazards(sure_u, kmax_u, row_u, r_stop, r_cut)
        if u.size == 0:
            break
        if use_x:
            w_single = np.where(one & xu, r_stop, 0.0) * n_u
            w_multi = np.where(xu, np.where(one, r_cut, r_stop + r_cut), 0.0) * n_u
            fs_u = smoothed_at(s1_cell, s1_client, s1_bin, w_single)
            fm_u = smoothed_at(sm_cell, sm_client, sm_bin, w_multi)
        else:
            fs_u = fm_u = np.ones(u.size)
        # E-step: posteriors of stopped inside / cut at the end / tail of an earlier conversation
        tail = np.cumprod(1.0 - h, axis=1)  # P(K > j)
        pk = h * np.c_[np.ones(uc.size), tail[:, :-1]]  # P(K = j)
        later = np.cumsum(tail[:, ::-1], axis=1)[:, ::-1]  # sum over l >= j of P(K > l)
        later = np.c_[later[:, 1:], np.zeros(uc.size)]  # sum over l >= j + 1
        fin = np.where(xu, np.where(one, fs_u, fm_u), 1.0)
        a_stop = pk[row_u, ku] * fin
        a_cut = tail[row_u, ku] * c_u * np.where(xu, fm_u, 1.0)
        a_tail = s_u * (tail[row_u, ku] + c_u * later[row_u, ku]) * np.where(xu, g[cu, bu], 1.0)
        tot = a_stop + a_cut + a_tail
        new_stop = np.where(tot > 0, a_stop / np.where(tot > 0, tot, 1.0), 1.0)
        new_cut = a_cut / np.where(tot > 0, tot, 1.0)
        moved = max(float(np.max(np.abs(new_stop - r_stop))), float(np.max(np.abs(new_cut - r_cut))))
        r_stop, r_cut = new_stop, new_cut
        if moved < _EM_TOLERANCE:
            break
    else:
        warnings.warn(f"window_mixture: EM stopped after {_EM_ITERATIONS} steps with posteriors still moving by "
                      f"{moved:.2g}", ConvergenceWarning, stacklevel=2)
    h = hazards(sure_end, kmax, cu, r_stop, r_cut)  # every client, with the final posteriors
    # posteriors per conversation (sure ones: began inside and stopped)
    single, multi = np.where(turns == 1, 1.0, 0.0), np.where(turns >= 2, 1.0, 0.0)
    single[u] = np.where(one, r_stop, 0.0)
    multi[u] = np.where(one, r_cut, r_stop + r_cut)
    n_in = np.bincount(cidx, weights=(single + multi) * n_rows, minlength=P)
    alive = np.c_[np.ones(P), np.cumprod(1.0 - h, axis=1)[:, :-1]]
    pk = h * alive
    dense = pl.DataFrame({"cidx": np.repeat(np.arange(P), K + 1), "turns": np.tile(np.arange(K + 1), P),
                          "n": (pk * n_in[:, None]).ravel()})
    seen = np.zeros(P, bool)
    seen[cidx] = True
    return (dense.filter((pl.col("turns") >= 1) & (pl.col("n") > 0)
                         & pl.col("cidx").is_in(np.flatnonzero(seen).tolist())).cast(schema),
            single, multi)


# --------------------------------------------------------------------------------------------
# The same window accounting for conversation ids aggregated in SQL (no per-request frame)
# --------------------------------------------------------------------------------------------
_SPANS_SQL = """
    WITH r AS (
        SELECT {cidx} AS cidx, q.conversation_id AS conv, q.request_id, CAST(q.timestamp AS DOUBLE) AS t, {x} AS x
        FROM {source} q {join}
    ), c AS (
        SELECT min_by(cidx, request_id) AS cidx, count(*) AS turns, min(t) AS t_first, max(t) AS t_last,
               min_by(x, request_id) AS x
        FROM r WHERE conv IS NOT NULL GROUP BY conv
        UNION ALL
        SELECT cidx, 1 AS turns, t AS t_first, t AS t_last, x FROM r WHERE conv IS NULL
    ), k AS (
        SELECT cidx, turns, t_first, t_last, x, (t_first < {lo} OR t_last > {hi}) AS unsure,
               CASE WHEN x < {exact_below} THEN x ELSE -1 - floor(ln(x / {exact_below}) / {log_ratio}) END AS bin
        FROM c
    )
    SELECT cidx, turns, t_first, t_last, x, CAST(1 AS BIGINT) AS n FROM k WHERE unsure
    UNION ALL
    SELECT cidx, turns, CAST(NULL AS DOUBLE) AS t_first, CAST(NULL AS DOUBLE) AS t_last, avg(x) AS x,
           count(*) AS n
    FROM k WHERE NOT unsure GROUP BY cidx, turns, bin
"""
_FOLLOW_SQL = """
    WITH r AS (
        SELECT {cidx} AS cidx, q.request_id, CAST(q.input_tokens AS DOUBLE) AS x,
               row_number() OVER (PARTITION BY q.conversation_id ORDER BY q.request_id) AS k
        FROM {source} q {join} WHERE q.conversation_id IS NOT NULL
    )
    SELECT cidx, avg(x) AS x, count(*) AS n FROM r WHERE k > 1 AND x IS NOT NULL AND x >= 0
    GROUP BY cidx, CASE WHEN x < {exact_below} THEN x ELSE -1 - floor(ln(x / {exact_below}) / {log_ratio}) END
"""


def conversation_spans(src, itt: pl.DataFrame, *, span: tuple[float, float], has_input: bool, exact_below: int,
                       bin_ratio: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per conversation id, what :func:`window_mixture` needs, from SQL on ``src`` (an open
    :class:`~servelab.analysis.aggregates.AggregateSource`).

    Conversations that may be cut or be tails (first turn within the longest inter-turn time of
    ``itt``'s bins from the window's start, or last turn as close to its end) come one per row
    with their first and last times; the others (sure: begun inside and stopped) come grouped
    by client, turns and first-input bin with their count ``n`` and mean input. Requests
    without an id are conversations of one turn. Also the seen follow-ups' inputs per client
    and bin (for the tails' input PMF). Returns ``(spans, follow)`` frames:
    ``cidx, turns, t_first, t_last, x, n`` and ``cidx, x, n``.
    """
    import math

    reach = float(itt["value"].max()) if itt.height else 0.0
    fill = {"source": src.source, "cidx": src.cidx, "join": src.join, "exact_below": int(exact_below),
            "log_ratio": repr(math.log(bin_ratio)), "lo": repr(float(span[0]) + reach),
            "hi": repr(float(span[1]) - reach)}
    x = "CAST(q.input_tokens AS DOUBLE)" if has_input else "CAST(NULL AS DOUBLE)"
    spans = src.engine.frame(_SPANS_SQL.format(x=x, **fill))
    spans = spans.select(pl.col("cidx").cast(pl.Int64), pl.col("turns").cast(pl.Int64),
                         pl.col("t_first", "t_last", "x").cast(pl.Float64), pl.col("n").cast(pl.Float64))
    if has_input:
        follow = src.engine.frame(_FOLLOW_SQL.format(**fill)).select(
            pl.col("cidx").cast(pl.Int64), pl.col("x").cast(pl.Float64), pl.col("n").cast(pl.Float64))
    else:
        follow = pl.DataFrame(schema={"cidx": pl.Int64, "x": pl.Float64, "n": pl.Float64})
    return spans, follow


def window_tables(spans: pl.DataFrame, follow: pl.DataFrame, itt: pl.DataFrame, requests: pl.DataFrame,
                  increments: pl.DataFrame | None, names: list[str], *, span: tuple[float, float], exact_below: int,
                  bin_ratio: float, spread_points: int = 1) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The pool's ``conversations`` and ``conversation_pmfs`` from :func:`conversation_spans`,
    window-corrected by :func:`window_mixture` as :func:`conversation_tables` does per request.

    ``itt``: the weighted inter-turn-time bins (``cidx, bin, value, n, total``); ``increments``:
    the SQL aggregate of :func:`~servelab.analysis.aggregates.conversation_increments` (its
    follow-up rows are kept, its first-turn rows replaced by the posterior-weighted ones), or
    None without inputs. ``spread_points``: the input PMFs' bins spread as the data PMFs' are
    (:func:`increment_pmfs`).
    """
    t0, t1 = float(span[0]), float(span[1])
    x_itt, w_itt = itt["value"].to_numpy().astype(float), itt["n"].to_numpy().astype(float)
    unsure = spans["t_first"].is_not_null().to_numpy()
    censor = np.where(unsure, itt_survival(x_itt, w_itt, t1 - spans["t_last"].fill_null(t1).to_numpy()), 0.0)
    left = np.where(unsure, itt_survival(x_itt, w_itt, spans["t_first"].fill_null(t0).to_numpy() - t0), 0.0)
    has_input = increments is not None
    turns, p_single, p_multi = window_mixture(
        spans["cidx"].to_numpy(), spans["turns"].to_numpy(), censor, left, n_clients=len(names),
        counts=spans["n"].to_numpy(), exact_below=exact_below, bin_ratio=bin_ratio,
        first_input=spans["x"].fill_null(float("nan")).to_numpy() if has_input else None,
        follow_cidx=follow["cidx"].to_numpy(), follow_input=follow["x"].to_numpy(),
        follow_counts=follow["n"].to_numpy())
    table, pmfs = tables_from_aggregates(turns, itt, requests, names, share_of_turns=True)
    if has_input:
        n = spans["n"].to_numpy()
        firsts = spans.select("cidx", "x")
        weighted = pl.concat([
            firsts.select("cidx", pl.lit(True).alias("first"), pl.lit(False).alias("multi"), "x",
                          pl.Series("w", n * p_single)),
            firsts.select("cidx", pl.lit(True).alias("first"), pl.lit(True).alias("multi"), "x",
                          pl.Series("w", n * p_multi)),
        ]).filter(pl.col("w") > 0)
        ends = [pl.col(c).cast(pl.Float64) for c in ("lo", "hi") if c in increments.columns]
        follow_rows = increments.filter(~pl.col("first").cast(pl.Boolean)).select(
            pl.col("cidx").cast(pl.Int64), pl.col("first").cast(pl.Boolean), pl.col("multi").cast(pl.Boolean),
            pl.col("neg").cast(pl.Boolean), pl.col("bin").cast(pl.Float64), pl.col("value").cast(pl.Float64),
            pl.col("n").cast(pl.Float64), *ends)
        first_rows = increment_aggregates(weighted, exact_below=exact_below, bin_ratio=bin_ratio).select(
            pl.col("cidx").cast(pl.Int64), "first", "multi", "neg", pl.col("bin").cast(pl.Float64),
            pl.col("value").cast(pl.Float64), pl.col("n").cast(pl.Float64), *ends)
        pmfs = pl.concat([pmfs, increment_pmfs(pl.concat([follow_rows, first_rows]), names,
                                               spread_points=spread_points)])
    return table, pmfs
