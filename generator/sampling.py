"""Sample a client-tagged request trace from a pool at the pool's own rates (vectorised, exact).

:func:`sample_requests` is the simple reference sampler: every client at its recorded rate, no
rate function, no client sampling, no conversations. It is a thin call of the one sampler,
:func:`servelab.generator.generate.generate`, with ``rate="pool"``, ``counts="poisson"`` and
``missing_data="null"``, so there is a single implementation of arrivals and data draws.

Per client and arrival window (clipped to the requested interval of length ``L``):

- the request count is Poisson with mean exactly ``rate * L``;
- the ``N`` arrival times are the first ``N`` partial sums of ``N + 1`` gaps drawn from the
  window's arrival family with its named shapes (``gamma`` ``a``, ``weibull`` ``c``, ...; a window
  with requests but no family is Gamma with the window's CV), scaled so the ``N + 1`` gaps fill
  the window;
- every request-data field is drawn independently (its own uniforms) from the client's PMF of the
  covering data window (an empty covering window borrows the client's nearest non-empty one; a
  client without any data gets nulls);
  ``reason_tokens = round(reason_ratio * output_tokens)``; multimodal ``<m>_tokens`` in the pool
  are tokens per item, so a request's ``<m>_tokens = per-item draw * <m>_count``; without an
  ``input_tokens`` field, ``input_tokens = text_tokens + sum of modality tokens``.

No Python loop runs over requests: numpy draws and polars joins only. The same seed gives the
same bytes. This module does not read or write files.
"""
from __future__ import annotations

import numpy as np
import polars as pl
from servelab.generator.exceptions import GenerationError, PoolSpanError
from servelab.generator.generate import generate
from servelab.generator.pmf import pmf_table, sample_pmf
from servelab.generator.pool import ClientPool

__all__ = ["MODALITIES", "draw_from_pmfs", "sample_requests"]

MODALITIES = ("image", "audio", "video")


def sample_requests(
    pool: ClientPool,
    *,
    start: float | None = None,
    duration: float | None = None,
    seed: int,
    clients=None,
) -> pl.DataFrame:
    """Draw a canonical, client-tagged request trace from ``pool``.

    Parameters
    ----------
    pool : ClientPool
        The pool (its own rates are used, unscaled).
    start : float, optional
        First second of the trace, in the pool's time; default the pool's span start.
    duration : float, optional
        Length in seconds; default up to the pool's span end.
    seed : int
        Seed of the numpy generator (same seed, same bytes).
    clients : iterable of str, optional
        Only these clients (default all).

    Returns
    -------
    polars.DataFrame
        ``request_id, timestamp, client_id`` and the token columns the pool describes
        (canonical names and types; null where a client has no data), sorted by timestamp.
        Timestamps are seconds in the pool's time (not shifted to ``start``).

    Raises
    ------
    PoolSpanError
        If ``[start, start + duration)`` is empty or outside the pool's span.
    """
    lo, hi = pool.span
    start = lo if start is None else float(start)
    end = hi if duration is None else start + float(duration)
    if duration is not None and not float(duration) > 0:
        raise PoolSpanError(f"duration must be > 0 seconds; got {duration!r}")
    if start < lo or end > hi or not end > start:
        raise PoolSpanError(f"[start, start + duration) = [{start!r}, {end!r}) must lie inside the pool's span ({lo!r}, {hi!r})")
    if clients is not None:
        pool = pool.select(clients)
    try:
        out = generate(pool, "pool", end - start, start=start, seed=seed, conversations=False,
                       counts="poisson", missing_data="null")
    except GenerationError as err:
        if "no pool client has a rate > 0" not in str(err):
            raise
        out = pl.DataFrame(schema={"timestamp": pl.Float64, "client_id": pl.String})
    out = out.with_columns(pl.col("timestamp") + start)
    return out.with_row_index("request_id").with_columns(pl.col("request_id").cast(pl.Int64))


def draw_from_pmfs(pmfs: pl.DataFrame, group: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Inverse-CDF draws from many PMFs at once.

    Parameters
    ----------
    pmfs : polars.DataFrame
        ``gid`` (0..G-1, contiguous), ``value``, ``probability``, sorted by ``gid`` then ``value``.
    group : numpy.ndarray of int
        For each draw, the ``gid`` of its PMF.
    rng : numpy.random.Generator
        One uniform per draw is taken from it.
    """
    pos = pmfs.filter(pl.col("probability") > 0)
    table = pmf_table(pos["gid"].to_numpy(), pos["value"].to_numpy(), pos["probability"].to_numpy())
    return sample_pmf(table, np.asarray(group), rng.random(np.asarray(group).size))
