"""The options that say how conversations are linked from prompt block hashes.

One decorator, :func:`link_options`, used by ``conversations``, ``fit-pool`` and ``report``: it
adds the options and hands the command one ``linking`` argument, a
:class:`~servelab.analysis.conversations.LinkOptions`. The trace's clock comes from the store's
manifest (``servelab ingest --clock`` overrides it). This module only parses options.
"""
from __future__ import annotations

import functools
from collections.abc import Callable

import click

__all__ = ["link_options"]


def _common(value: int) -> int | None:
    return None if value == 0 else value


def link_options(command: Callable) -> Callable:
    """Add the linking options to a click command; it receives ``linking`` (a LinkOptions)."""

    @click.option("--min-shared-blocks", type=click.IntRange(min=1), default=1, show_default=True,
                  help="Prefix-block links: shortest shared full-block prefix that makes a link.")
    @click.option("--common-continuations", type=click.IntRange(min=0), default=8, show_default=True,
                  help="A block prefix continued in at least this many distinct ways is a shared system "
                       "prompt or template, not conversation history: a link must share more (0: off; else >= 2).")
    @click.option("--common-clients", type=click.IntRange(min=0), default=2, show_default=True,
                  help="A block prefix sent by at least this many clients is shared, not history "
                       "(needs client_id; 0: off; else >= 2).")
    @click.option("--no-itt-check", is_flag=True,
                  help="Keep links whose follow-up arrives within one clock tick of its parent.")
    @click.option("--no-latency-check", is_flag=True,
                  help="Keep links whose follow-up arrives before its parent finished (latency_s).")
    @functools.wraps(command)
    def wrapper(*args, min_shared_blocks: int, common_continuations: int, common_clients: int,
                no_itt_check: bool, no_latency_check: bool, **kwargs):
        from servelab.analysis.conversations import LinkOptions

        for name, value in (("--common-continuations", common_continuations), ("--common-clients", common_clients)):
            if value == 1:
                raise click.BadParameter(f"must be 0 (off) or an integer >= 2; got {value}", param_hint=name)
        linking = LinkOptions(min_shared_blocks=min_shared_blocks,
                              common_min_continuations=_common(common_continuations),
                              common_min_clients=_common(common_clients),
                              check_itt=not no_itt_check, check_latency=not no_latency_check)
        return command(*args, linking=linking, **kwargs)

    return wrapper
