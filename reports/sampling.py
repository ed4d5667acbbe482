"""Deterministic subsets of a trace store for the report: a time span, or a hashed sample of keys.

The report's sections use these to keep big traces fast without changing what they measure:

- :func:`subset_store` copies the rows of a store that satisfy a SQL condition (for example one
  3-hour period) into a new store, with the original ``request_id`` values, so that parent links
  and request ids keep their meaning;
- :func:`hash_sample_condition` is such a condition for ``--quick`` mode: it keeps a fraction of
  the *keys* (e.g. whole conversations, by ``conversation_id``) chosen by a seeded hash, so the
  same seed always keeps the same rows, and a kept conversation is kept with all its turns;
- :func:`budget_span` is the other ``--quick`` subset, for sections whose statistics need every
  request of a time span (arrival gaps, per-client windows): the trace's first whole hours holding
  about ``Budget.max_requests`` requests.

Everything runs in DuckDB (one scan, one Parquet write); nothing is read into Python. This module
computes no statistic and draws nothing.
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from servelab.analysis.store import MANIFEST_NAME, REQUESTS_NAME, TraceStore, open_store
from servelab.analysis.window_rates import CoveredSpan

__all__ = ["HASH_BUCKETS", "hash_bucket_sql", "hash_cut", "hash_sample_condition", "subset_store", "temporary_subset",
           "leading_span", "budget_span", "shared_budget_spans"]

#: resolution of hashed sampling: a fraction is rounded to a multiple of 1 / HASH_BUCKETS
HASH_BUCKETS = 1_000_000


def hash_bucket_sql(key_sql: str, seed: int) -> str:
    """SQL for the bucket (0 .. HASH_BUCKETS - 1) of ``key_sql`` under ``seed``: ``hash(key, seed) % HASH_BUCKETS``.

    Raises
    ------
    ValueError
        If ``seed`` is not an integer.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed must be an integer; got {seed!r}")
    return f"(hash({key_sql}, CAST({seed} AS BIGINT)) % {HASH_BUCKETS})"


def hash_cut(fraction: float) -> int:
    """Buckets below this number are kept for a sample of ``fraction`` (at least one bucket).

    Raises
    ------
    ValueError
        If ``fraction`` is not in (0, 1].
    """
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise ValueError(f"fraction must be in (0, 1]; got {fraction!r}")
    return max(1, round(fraction * HASH_BUCKETS))


def hash_sample_condition(key_sql: str, fraction: float, seed: int) -> str:
    """A SQL condition that keeps about ``fraction`` of the distinct values of ``key_sql``.

    A value is kept when ``hash(value, seed) % HASH_BUCKETS < fraction * HASH_BUCKETS`` (DuckDB's
    ``hash``: the same value and seed are always kept or always dropped, whatever the row order
    or the number of threads). Every row of a kept key is kept.

    Parameters
    ----------
    key_sql : str
        A SQL expression over the ``requests`` columns (e.g.
        ``"coalesce(conversation_id, CAST(request_id AS VARCHAR))"``).
    fraction : float
        Share of keys kept, in (0, 1].
    seed : int
        Changes which keys are kept.

    Raises
    ------
    ValueError
        If ``fraction`` is not in (0, 1] or ``seed`` is not an integer.
    """
    cut = hash_cut(fraction)
    return f"{hash_bucket_sql(key_sql, seed)} < {cut}"


def subset_store(store: TraceStore, condition: str, path: str | Path, *,
                 parameters: Mapping[str, Any] | None = None, description: str = "subset") -> TraceStore:
    """Copy the rows of ``store`` satisfying ``condition`` into a new store at ``path``.

    Parameters
    ----------
    store : TraceStore
    condition : str
        A SQL boolean expression over the ``requests`` columns; ``$name`` placeholders are bound
        from ``parameters``.
    path : path-like
        A folder that must not exist yet.
    parameters : Mapping, optional
        Values of the placeholders.
    description : str
        Recorded in the new manifest (``extra.subset``), e.g. ``"period 3600-14400 s"``.

    Returns
    -------
    TraceStore
        The same columns, origin and time zone; the original ``request_id`` values, in order.

    Raises
    ------
    FileExistsError
        If ``path`` exists.
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"path: {str(path)!r} already exists; subset_store writes a new folder")
    path.mkdir(parents=True)
    try:
        with contextlib.closing(store.connect()) as con:
            target = str(path / REQUESTS_NAME).replace("'", "''")
            con.execute(f"COPY (SELECT * FROM requests WHERE {condition} ORDER BY request_id) TO '{target}' "
                        "(FORMAT parquet)", dict(parameters or {}))
            n, first, last = con.execute(f"SELECT count(*), min(timestamp), max(timestamp) "
                                         f"FROM read_parquet('{target}')").fetchone()
        manifest = json.loads(json.dumps(dict(store.manifest), default=_plain))
        manifest.pop("layout", None)  # the subset is one requests.parquet whatever the store's layout
        manifest["rows"] = {**dict(manifest.get("rows") or {}), "stored": int(n)}
        manifest["span_s"] = {"first": first, "last": last}
        manifest["extra"] = {**dict(manifest.get("extra") or {}), "subset": description,
                             "subset_of": str(store.path) if store.path is not None else "in-memory frame"}
        (path / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2))
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    return open_store(path)


@contextlib.contextmanager
def temporary_subset(store: TraceStore, condition: str, *, parameters: Mapping[str, Any] | None = None,
                     description: str = "subset") -> Iterator[TraceStore]:
    """:func:`subset_store` into a temporary folder that is deleted when the block ends."""
    with tempfile.TemporaryDirectory(prefix="servelab-subset-") as tmp:
        yield subset_store(store, condition, Path(tmp) / "store", parameters=parameters, description=description)


def leading_span(store: TraceStore, max_requests: int | None, *, step_s: float = 3600.0) -> CoveredSpan | None:
    """The trace's first ``k * step_s`` seconds holding about ``max_requests`` requests, or None.

    The span is ``[start, end)`` (a :class:`~servelab.analysis.window_rates.CoveredSpan`,
    unpacks as ``start, end``), ``start`` the first request's time.

    ``k`` is the largest whole number with ``k * step_s <= span * max_requests / n`` (at least 1),
    for a trace of ``n`` requests over ``span`` seconds. None when ``max_requests`` is None, the
    trace has at most that many requests, or the span would cover the whole trace.

    Raises
    ------
    ValueError
        If ``step_s`` is not positive.
    """
    if not step_s > 0:
        raise ValueError(f"step_s must be positive; got {step_s!r}")
    n = store.n_requests
    if max_requests is None or n <= max_requests:
        return None
    t0, t1 = store.query("SELECT min(timestamp) AS t0, max(timestamp) AS t1 FROM requests").row(0)
    total = float(t1 - t0)
    length = max(step_s, (total * max_requests / n) // step_s * step_s)
    if not 0 < length < total:
        return None
    return CoveredSpan(float(t0), float(t0) + length)


#: the span subsets shared inside :func:`shared_budget_spans` (None outside it)
_SPANS: contextvars.ContextVar[tuple[contextlib.ExitStack, dict] | None] = contextvars.ContextVar(
    "servelab_budget_spans", default=None)


@contextlib.contextmanager
def shared_budget_spans() -> Iterator[None]:
    """Inside this block :func:`budget_span` writes each span subset once and hands the same
    subset store (and note) to every later call for the same store, span and label; the subsets
    are deleted when the block ends.

    The report opens it with the shared arrival frames, around the sections that measure the
    budget's leading span (arrivals, clients, conversations): one temporary Parquet subset per
    report instead of one per section, and, since the frames are keyed by the store's path, one
    read and sort of each arrival frame of it. Blocks nest: an inner block shares nothing with
    the outer one.
    """
    with contextlib.ExitStack() as stack:
        token = _SPANS.set((stack, {}))
        try:
            yield
        finally:
            _SPANS.reset(token)


@contextlib.contextmanager
def budget_span(store: TraceStore, max_requests: int | None, *, label: str = "quick",
                step_s: float = 3600.0) -> Iterator[tuple[TraceStore, str | None]]:
    """The store a section measures under a request cap: ``(store, None)``, or a temporary subset of
    :func:`leading_span` and the note saying so (deleted when the block ends, or, inside
    :func:`shared_budget_spans`, when that block ends, the subset written once for every caller).
    """
    span = leading_span(store, max_requests, step_s=step_s)
    if span is None:
        yield store, None
        return
    a, b = span
    shared = _SPANS.get()
    key = (str(Path(store.path).resolve()), a, b, label) if shared is not None and store.path is not None else None
    if key is not None and key in shared[1]:
        yield shared[1][key]
        return
    with contextlib.ExitStack() as own:
        stack = shared[0] if key is not None else own
        sub = stack.enter_context(temporary_subset(store, "timestamp >= $a AND timestamp < $b",
                                                   parameters={"a": a, "b": b},
                                                   description=f"{label} span {a:.0f}-{b:.0f} s"))
        note = (f"{label} mode: measured on the trace's first {(b - a) / 3600:g} h ({a:.0f}-{b:.0f} s), "
                f"{sub.n_requests:,} of {store.n_requests:,} requests (a contiguous span of whole hours holding about "
                f"{max_requests:,} requests, so gaps and windows are the trace's own; the full budget uses every request)")
        if key is not None:
            shared[1][key] = (sub, note)
        yield sub, note


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    return str(value)
