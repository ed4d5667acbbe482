"""The ``servelab`` command: a thin layer over library calls.

Every sub-command lives in its own module under :mod:`servelab.commands` and is imported only
when it is run, so that ``servelab --help`` stays fast and a broken optional piece cannot take
the whole command down. Nothing here computes anything a notebook could not compute with the
library directly.
"""
from __future__ import annotations

import importlib

import click

from servelab import __version__

__all__ = ["main", "COMMANDS"]

#: command name -> "module:attribute" of its click command
COMMANDS: dict[str, str] = {
    "ingest": "servelab.commands.ingest:ingest",
    "info": "servelab.commands.info:info",
    "arrivals": "servelab.commands.arrivals:arrivals",
    "lengths": "servelab.commands.lengths:lengths",
    "clients": "servelab.commands.clients:clients",
    "conversations": "servelab.commands.conversations:conversations",
    "pool": "servelab.commands.pool:pool",
    "fit-pool": "servelab.commands.fit_pool:fit_pool",
    "generate": "servelab.commands.generate:generate",
    "compare": "servelab.commands.compare:compare",
    "report": "servelab.commands.report:report",
}


class _LazyGroup(click.Group):
    """A click group whose sub-commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if self._spec_exists(name))

    @staticmethod
    def _spec_exists(name: str) -> bool:
        module = COMMANDS[name].split(":")[0]
        return importlib.util.find_spec(module) is not None

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS or not self._spec_exists(cmd_name):
            return None
        module_name, attribute = COMMANDS[cmd_name].split(":")
        return getattr(importlib.import_module(module_name), attribute)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="servelab")
def main() -> None:
    """Characterize LLM-serving traces, fit client pools and generate workloads."""
