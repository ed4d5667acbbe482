r"""The whole prefix-reuse analysis of one trace, in one pass over its blocks (issue 15, item 1).

:func:`analyse_prefixes` reads a store's ``prefix_blocks`` once
(:func:`~servelab.analysis.prefix_reuse.read_blocks`), hashes every prefix and finds every block's
previous holder once (:func:`~servelab.analysis.prefix_reuse.block_state`), and derives from that:

- hit rates of an infinite cache (blocks and tokens; overall, per window, per client), the LRU
  hit-rate curve and the reuse-distance histogram (:func:`~servelab.analysis.prefix_reuse.reuse_from_blocks`);
- where the hits come from (:mod:`servelab.analysis.prefix_sources`; conversations linked by
  :func:`~servelab.analysis.conversations.link_conversations`);
- shared vs unique prompt tokens per request;
- the saving of an infinite cache and of an LRU cache of a *reference capacity* (default
  :data:`DEFAULT_REFERENCE_SHARE` of the trace's distinct blocks), and the share of the infinite
  saving that capacity keeps, each with a seeded cluster-bootstrap interval
  (:mod:`servelab.analysis.prefix_savings`).

This module must not import fitting, generator, figures or matplotlib; its result holds tables
and numbers, never block lists.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from servelab.analysis.exceptions import NotApplicableError
from servelab.analysis.prefix_reuse import (
    DEFAULT_BLOCK_SIZE,
    PrefixReuse,
    TraceBlocks,
    block_state,
    block_tokens,
    read_blocks,
    reuse_from_blocks,
)
from servelab.analysis.prefix_savings import SavingEstimate, request_clusters, saving_estimates
from servelab.analysis.prefix_sources import (
    RequestSharing,
    ReuseSources,
    classify_hits,
    request_sharing,
    reuse_sources,
)
from servelab.analysis.shared_prefixes import CommonPrefixRule
from servelab.analysis.store import TraceStore

__all__ = ["DEFAULT_REFERENCE_SHARE", "PrefixAnalysis", "analyse_blocks", "analyse_prefixes", "count_blocks",
           "reference_capacity"]

#: default reference capacity: this share of the trace's distinct prefix blocks
DEFAULT_REFERENCE_SHARE = 0.1


@dataclass(frozen=True)
class PrefixAnalysis:
    """Prefix reuse of one trace (see the module docstring).

    Attributes
    ----------
    reuse : PrefixReuse
        Infinite-cache hit rates, LRU curve, reuse distances.
    sources : ReuseSources or None
        Hits by source (None when not measured).
    sharing : RequestSharing
        Shared vs unique prompt tokens per request.
    n_distinct_blocks : int
        Distinct prefix blocks of the trace (the capacity an LRU cache needs to hold them all).
    reference_capacity : int
        Capacity (blocks) of :attr:`at_reference`.
    infinite, at_reference, kept : SavingEstimate
        Token saving of an infinite cache, of an LRU cache of the reference capacity, and the
        share of the infinite saving the latter keeps.
    notes : tuple of str
    """

    reuse: PrefixReuse
    sources: ReuseSources | None
    sharing: RequestSharing
    n_distinct_blocks: int
    reference_capacity: int
    infinite: SavingEstimate
    at_reference: SavingEstimate
    kept: SavingEstimate
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        out = {**self.reuse.to_dict(), "n_distinct_blocks": self.n_distinct_blocks,
               "reference_capacity": self.reference_capacity,
               "infinite": self.infinite.to_dict(), "at_reference": self.at_reference.to_dict(),
               "kept": self.kept.to_dict(), "sharing": self.sharing.to_dict(), "notes": list(self.notes)}
        if self.sources is not None:
            out["sources"] = self.sources.to_dict()
        return out


def reference_capacity(n_distinct_blocks: int, *, share: float = DEFAULT_REFERENCE_SHARE) -> int:
    """``share`` of the distinct blocks, at least one block."""
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1]; got {share!r}")
    return max(1, int(round(share * n_distinct_blocks)))


def analyse_blocks(blocks: TraceBlocks, *, conversations: np.ndarray | None = None,
                   block_size: int = DEFAULT_BLOCK_SIZE, window_s: float = 3600.0,
                   capacities: np.ndarray | None = None, reference: int | None = None,
                   rule: CommonPrefixRule = CommonPrefixRule(), sources: bool = True, n_boot: int = 200,
                   seed: int = 0, level: float = 0.95) -> PrefixAnalysis:
    """The prefix analysis of a trace's blocks (see :func:`analyse_prefixes`).

    Parameters
    ----------
    blocks : TraceBlocks
    conversations : numpy.ndarray of int64, optional
        Conversation id per request (None: no links; the ``conversation`` source is empty).
    block_size, window_s, capacities
        As :func:`~servelab.analysis.prefix_reuse.reuse_from_blocks`.
    reference : int, optional
        Reference capacity in blocks (default :func:`reference_capacity`).
    rule : CommonPrefixRule
        Which prefixes are shared prompts (:mod:`servelab.analysis.prefix_sources`).
    sources : bool
        Classify the hits by source.
    n_boot, seed, level
        The bootstrap intervals.
    """
    if reference is not None and (isinstance(reference, bool) or not isinstance(reference, (int, np.integer))
                                  or reference < 1):
        raise ValueError(f"reference capacity must be a positive number of blocks; got {reference!r}")
    lengths = blocks.lengths
    state = block_state(blocks.values, lengths)
    reuse = reuse_from_blocks(blocks.values, lengths, input_tokens=blocks.input_tokens,
                              timestamps=blocks.timestamps, clients=blocks.clients, block_size=block_size,
                              window_s=window_s, capacities=capacities, state=state)
    notes: list[str] = []
    tokens = block_tokens(lengths, input_tokens=blocks.input_tokens, block_size=block_size)
    src = None
    if sources:
        codes = classify_hits(state.keys, blocks.values, lengths, state.hits, clients=blocks.client_codes,
                              conversations=conversations, rule=rule, shared=state.shared)
        src = reuse_sources(codes, lengths, tokens, timestamps=blocks.timestamps, window_s=window_s,
                            has_clients=blocks.client_codes is not None, has_conversations=conversations is not None,
                            rule=rule)
        del codes
        if blocks.client_codes is None:
            notes.append("the trace has no client ids: shared prompts and per-client templates are not told apart "
                         "(both count as system)")
        if conversations is None:
            notes.append("no conversation links: conversation-history hits count as other")
    sharing = request_sharing(state.keys, lengths, tokens, shared=state.shared)
    del tokens
    n_distinct = reuse.n_cold
    cap = reference if reference is not None else reference_capacity(n_distinct)
    # per-cluster sums from the runs (a run is all warm or all cold): tokens, saved by an infinite
    # cache, saved by LRU at the reference capacity
    runs = state.runs
    n_req = lengths.size
    run_tokens = runs.tokens(lengths, input_tokens=blocks.input_tokens, block_size=block_size).astype(float)
    warm = runs.distance >= 0
    served = warm & (runs.distance < cap)
    tok_req = np.bincount(runs.req, weights=run_tokens, minlength=n_req)
    inf_req = np.bincount(runs.req, weights=np.where(warm, run_tokens, 0.0), minlength=n_req)
    cap_req = np.bincount(runs.req, weights=np.where(served, run_tokens, 0.0), minlength=n_req)
    cluster, kind = request_clusters(n_req, client_codes=blocks.client_codes)
    k = int(cluster.max()) + 1 if cluster.size else 0
    tok_c, inf_c, cap_c = (np.bincount(cluster, weights=x, minlength=k) for x in (tok_req, inf_req, cap_req))
    boot = {"clusters": kind, "n_boot": n_boot, "seed": seed, "level": level}
    # the three intervals on the same resamples (one draw of the cluster counts)
    infinite, at_ref, kept = saving_estimates([
        {"num": inf_c, "den": tok_c, "what": "prompt tokens an infinite prefix cache serves"},
        {"num": cap_c, "den": tok_c, "what": f"prompt tokens an LRU cache of {cap:,} blocks serves"},
        {"num": cap_c, "den": inf_c, "what": f"share of the infinite cache's saving an LRU cache of {cap:,} blocks "
                                            "keeps"}], **boot)
    if math.isnan(infinite.low):
        notes.append(f"no bootstrap interval: {k} {kind}(s), fewer than needed")
    return PrefixAnalysis(reuse=reuse, sources=src, sharing=sharing, n_distinct_blocks=n_distinct,
                          reference_capacity=int(cap), infinite=infinite, at_reference=at_ref, kept=kept,
                          notes=tuple(notes))


def _conversation_ids(store: TraceStore, request_ids: np.ndarray, linking) -> tuple[np.ndarray | None, str]:
    from servelab.analysis.conversations import LinkOptions, link_conversations

    opts = linking or LinkOptions()
    try:
        conv = link_conversations(store, **opts.as_kwargs())
    except NotApplicableError as err:
        return None, f"conversation links not available ({err})"
    links = conv.links.select("request_id", "conversation").sort("request_id")
    rid = links["request_id"].to_numpy()
    at = np.searchsorted(rid, request_ids)
    ids = links["conversation"].to_numpy()[np.minimum(at, rid.size - 1)]
    return ids.astype(np.int64), f"conversations linked by {conv.summary.rule}"


def count_blocks(store: TraceStore) -> int:
    """Prompt blocks of a store without reading them: the leaf values of ``prefix_blocks`` in the
    Parquet metadata (an in-memory source counts its list lengths)."""
    path = getattr(store, "path", None)
    if path is None:
        import pyarrow.compute as pc

        col = store.read_arrow(["prefix_blocks"])["prefix_blocks"]
        return int(pc.sum(pc.fill_null(pc.list_value_length(col), 0)).as_py() or 0)
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(store.requests_path).metadata
    names = [meta.schema.column(j).path for j in range(meta.num_columns)]
    leaf = [j for j, n in enumerate(names) if n.split(".")[0] == "prefix_blocks"]
    if not leaf:
        return 0
    return int(sum(meta.row_group(i).column(leaf[0]).num_values for i in range(meta.num_row_groups)))


def analyse_prefixes(store: TraceStore, *, block_size: int = DEFAULT_BLOCK_SIZE, window_s: float = 3600.0,
                     capacities: np.ndarray | None = None, reference: int | None = None, sources: bool = True,
                     linking=None, n_boot: int = 200, seed: int = 0, level: float = 0.95,
                     exact: bool | None = None, exact_max_blocks: int = 30_000_000,
                     sample_blocks: int = 1_000_000) -> PrefixAnalysis:
    """The prefix-reuse analysis of a store (see the module docstring).

    Parameters
    ----------
    store : TraceStore
        Needs ``prefix_blocks``; uses ``input_tokens`` (the last block's tokens), ``client_id``
        and conversation links when present.
    block_size : int
        Tokens per block (512 in Mooncake and Bailian traces).
    window_s : float
        Window of the per-window tables (s).
    capacities : numpy.ndarray of int, optional
        LRU capacities (blocks) of the hit-rate curve (default: powers of two).
    reference : int, optional
        Capacity of the reference LRU cache (default: 1% of the distinct blocks).
    sources : bool
        Classify hits by source (links the conversations).
    linking : LinkOptions, optional
        How conversations are linked, and the common-prefix rule of the sources.
    n_boot, seed, level
        Cluster-bootstrap resamples, seed and coverage of the intervals.
    exact : bool, optional
        True: the exact analysis (every block in memory); False: the sampled one
        (:func:`~servelab.analysis.prefix_sampled.analyse_prefixes_sampled`: exact counts and
        rates, LRU curve from a sample, no reuse sources); None (default): exact up to
        ``exact_max_blocks`` prompt blocks (:func:`count_blocks`), sampled above.
    exact_max_blocks, sample_blocks : int
        The switch point of ``exact=None`` and the sampled analysis's sample size.

    Raises
    ------
    NotApplicableError
        If the trace has no ``prefix_blocks`` or no request carries a block.
    """
    from servelab.analysis.conversations import LinkOptions

    if exact is not None and not isinstance(exact, bool):
        raise ValueError(f"exact must be None, True or False; got {exact!r}")
    if exact is None:
        store.require("prefix_blocks", analysis="prefix reuse analysis")
        n_blocks = count_blocks(store)
        exact = n_blocks <= exact_max_blocks
    if not exact:
        from servelab.analysis.prefix_sampled import analyse_prefixes_sampled

        res = analyse_prefixes_sampled(store, block_size=block_size, window_s=window_s, capacities=capacities,
                                       reference=reference, sample_blocks=sample_blocks, n_boot=n_boot, seed=seed,
                                       level=level)
        return res
    opts = linking or LinkOptions()
    tb = read_blocks(store)
    conversations, how = (None, "")
    if sources:
        conversations, how = _conversation_ids(store, tb.request_ids, opts)
    rule = CommonPrefixRule(min_continuations=opts.common_min_continuations, min_clients=opts.common_min_clients)
    res = analyse_blocks(tb, conversations=conversations, block_size=block_size, window_s=window_s,
                         capacities=capacities, reference=reference, rule=rule, sources=sources, n_boot=n_boot,
                         seed=seed, level=level)
    if how:
        return PrefixAnalysis(**{**{f: getattr(res, f) for f in res.__dataclass_fields__}, "notes": (how, *res.notes)})
    return res
