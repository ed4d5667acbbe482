"""The ``servelab`` command: a thin layer over library calls.

Every sub-command lives in its own module under :mod:`servelab.commands` and is imported only
when it is run (or its help is shown), so that ``servelab --help`` stays fast. A command whose
module or attribute is missing is an error (:class:`CommandNotFoundError`), never silently dropped
from the list; a test resolves every entry of :data:`COMMANDS`. Nothing here computes anything a
notebook could not compute with the library directly.
"""
from __future__ import annotations

import importlib

import click

from servelab import __version__

__all__ = ["main", "COMMANDS", "CommandNotFoundError", "load_command"]

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


class CommandNotFoundError(ImportError):
    """An entry of :data:`COMMANDS` names a module or attribute that does not exist."""


def load_command(name: str) -> click.Command:
    """Import the click command registered under ``name``.

    Raises
    ------
    KeyError
        If ``name`` is not in :data:`COMMANDS`.
    CommandNotFoundError
        If its module cannot be found or has no such attribute, or the attribute is not a click command.
    """
    try:
        spec = COMMANDS[name]
    except KeyError:
        raise KeyError(f"unknown command {name!r}; known: {sorted(COMMANDS)}") from None
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name is not None and module_name.startswith(err.name):
            raise CommandNotFoundError(f"command {name!r}: module {module_name!r} does not exist "
                                       f"(COMMANDS[{name!r}] = {spec!r})") from err
        raise
    command = getattr(module, attribute, None)
    if not isinstance(command, click.Command):
        raise CommandNotFoundError(f"command {name!r}: {module_name} has no click command {attribute!r}; "
                                   f"got {type(command).__name__} (COMMANDS[{name!r}] = {spec!r})")
    return command


class _LazyGroup(click.Group):
    """A click group whose sub-commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        return load_command(cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="servelab")
def main() -> None:
    """Characterize LLM-serving traces, fit client pools and generate workloads."""
