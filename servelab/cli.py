"""The ``servelab`` command: a thin layer over library calls.

Every sub-command lives in its own module under :mod:`servelab.commands` and is imported only
when it is run (or its help is shown), so that ``servelab --help`` stays fast. A command whose
module or attribute is missing is an error (:class:`CommandNotFoundError`), never silently dropped
from the list; a test resolves every entry of :data:`COMMANDS`. Nothing here computes anything a
notebook could not compute with the library directly.

Errors and warnings (one policy for every command, applied by :class:`_LazyGroup`):

- click's own usage errors (an unknown option, a value of the wrong type, a ``BadParameter`` a
  command raises while checking its options) keep click's format and exit code **2**: the command
  line itself is malformed.
- servelab's typed errors (every class of ``servelab.{analysis,fitting,generator}.exceptions``)
  and the built-ins raised for bad input (``ValueError``, ``OSError`` and its ``FileNotFoundError``
  / ``PermissionError``), plus any ``click.ClickException`` a command raises, print ONE line
  ``servelab <command>: error: <message>`` on stderr and exit **1** (a ``ClickException``: its
  own exit code, 1 unless it says otherwise): the command ran and refused its input (or could not
  read or write a file).
- Anything else prints ``servelab <command>: unexpected error: <type>: <message>; run with
  --debug for the traceback`` and exits **1**.
- ``--debug`` (``servelab --debug <command> ...``, or ``SERVELAB_DEBUG=1``) re-raises every
  error of the last two kinds with its full traceback (a ``click.ClickException`` then keeps
  click's ``Error: ...`` format).
- Ctrl-C prints ``servelab <command>: interrupted`` and exits **130**.
- Every warning issued while a command runs (servelab's typed warnings, and any other
  ``UserWarning`` / ``RuntimeWarning``) is printed once, as ``servelab <command>: warning:
  <message>`` on stderr, as it happens; a warning the library catches itself never gets here.

Commands that generate workloads refuse one estimated (:func:`expected_requests`, the integral of
the target rate over the duration) above ``--max-requests`` (:func:`max_requests_option`,
:func:`check_request_budget`) before anything is allocated.
"""
from __future__ import annotations

import importlib
import sys
import types
import warnings
from collections.abc import Callable
from typing import Any, NoReturn

import click


__all__ = ["main", "COMMANDS", "CommandNotFoundError", "load_command", "EXIT_ERROR", "EXIT_INTERRUPTED",
           "EXIT_USAGE", "is_input_error", "DEFAULT_MAX_REQUESTS", "WorkloadTooLargeError", "check_request_budget",
           "expected_requests", "max_requests_option"]

#: command name -> "module:attribute" of its click command
COMMANDS: dict[str, str] = {
    "ingest": "servelab.commands.ingest:ingest",
    "info": "servelab.commands.info:info",
    "arrivals": "servelab.commands.arrivals:arrivals",
    "lengths": "servelab.commands.lengths:lengths",
    "clients": "servelab.commands.clients:clients",
    "conversations": "servelab.commands.conversations:conversations",
    "prefixes": "servelab.commands.prefixes:prefixes",
    "pool": "servelab.commands.pool:pool",
    "fit-pool": "servelab.commands.fit_pool:fit_pool",
    "generate": "servelab.commands.generate:generate",
    "compare": "servelab.commands.compare:compare",
    "validate": "servelab.commands.validate:validate",
    "report": "servelab.commands.report:report",
}


#: exit code of click's usage errors (malformed command line)
EXIT_USAGE = 2
#: exit code of an error raised while a command runs (bad input, unreadable file, unexpected error)
EXIT_ERROR = 1
#: exit code after Ctrl-C (128 + SIGINT, as shells report it)
EXIT_INTERRUPTED = 130

#: modules whose exception classes are servelab's own typed errors
_EXCEPTION_MODULES = frozenset({"servelab.analysis.exceptions", "servelab.fitting.exceptions",
                                "servelab.generator.exceptions"})
#: built-ins that the library and the commands raise for bad user input (OSError covers
#: FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, ...)
_INPUT_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError)
_DEBUG_ENV = "SERVELAB_DEBUG"


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


def is_input_error(err: BaseException) -> bool:
    """Whether ``err`` reports bad input (printed as one line) rather than a bug (``--debug``).

    True for the classes of servelab's three ``exceptions`` modules and their subclasses, for
    ``ValueError`` and ``OSError`` (which covers ``FileNotFoundError`` and ``PermissionError``), and
    for a ``click.ClickException`` a command raises.
    """
    if isinstance(err, (click.ClickException, *_INPUT_ERRORS)):
        return True
    return any(cls.__module__ in _EXCEPTION_MODULES for cls in type(err).__mro__)


def _one_line(message: object, *, limit: int = 500) -> str:
    """``message`` on one line: its first non-blank line, saying how many lines were left out."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    if not lines:
        return ""
    text = lines[0] if len(lines[0]) <= limit else lines[0][: limit - 3] + "..."
    if len(lines) > 1:
        text += f" [{len(lines) - 1} more line(s); --debug shows them]"
    return text


def _label(ctx: click.Context) -> str:
    """``servelab <command> [<sub-command>]`` of ``ctx``, whatever name the program was called by."""
    names = []
    node: click.Context | None = ctx
    while node is not None and node.parent is not None:
        names.append(node.info_name or "")
        node = node.parent
    return " ".join(["servelab", *reversed(names)])


def _failing_command(root: click.Context, tb: types.TracebackType | None) -> str:
    """The label of the deepest click context on the traceback ``tb`` (else of ``root``)."""
    deepest = root
    while tb is not None:
        for name in ("ctx", "sub_ctx", "self"):
            value = tb.tb_frame.f_locals.get(name)
            if isinstance(value, click.Context):
                deepest = value
                break
        tb = tb.tb_next
    if deepest is root and root.invoked_subcommand:
        return f"servelab {root.invoked_subcommand}"
    return _label(deepest)


def _fail(label: str, text: str, code: int) -> NoReturn:
    click.echo(f"{label}: {text}", err=True)
    raise click.exceptions.Exit(code)


def _run_guarded(ctx: click.Context, call: Callable[[], Any]) -> Any:
    """Run ``call`` (the sub-command) under the CLI-wide warning and error policy (module docstring)."""
    seen: set[tuple[type, str]] = set()

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ARG001 - warnings' signature
        text = _one_line(message)
        if (category, text) not in seen:
            seen.add((category, text))
            click.echo(f"{_label(click.get_current_context(silent=True) or ctx)}: warning: {text}", err=True)

    debug = bool(ctx.params.get("debug"))
    with warnings.catch_warnings():
        # servelab's warnings are UserWarning / RuntimeWarning subclasses: each one is shown, never
        # silenced by a module's once-per-location registry; show() prints each message once
        warnings.simplefilter("always", UserWarning)
        warnings.simplefilter("always", RuntimeWarning)
        warnings.showwarning = show
        try:
            return call()
        except (click.exceptions.Exit, click.exceptions.Abort, click.UsageError):
            raise  # click's own: its format, its exit code
        except KeyboardInterrupt:  # click would say "Aborted!" and exit 1
            _fail(_failing_command(ctx, sys.exc_info()[2]), "interrupted", EXIT_INTERRUPTED)
        except click.ClickException as err:
            if debug:
                raise
            _fail(_failing_command(ctx, sys.exc_info()[2]), f"error: {_one_line(err.format_message())}",
                  err.exit_code)
        except Exception as err:  # noqa: BLE001 - the CLI-wide handler: every error ends here
            if debug:
                raise
            where = _failing_command(ctx, sys.exc_info()[2])
            if is_input_error(err):
                _fail(where, f"error: {_one_line(err)}", EXIT_ERROR)
            _fail(where, f"unexpected error: {type(err).__name__}: {_one_line(err)}; "
                         "run with --debug for the traceback", EXIT_ERROR)


#: requests a generated workload may hold unless ``--max-requests`` says more (about 7.5 GB while
#: generating; :data:`servelab.generator.rates.DEFAULT_MAX_REQUESTS`, the library's default too)
DEFAULT_MAX_REQUESTS = 50_000_000


class WorkloadTooLargeError(click.ClickException):
    """The workload a command was asked for is estimated above ``--max-requests`` (refused before allocating)."""


def expected_requests(schedule: Any, duration_s: float, *, pool_total_rate: float | None = None) -> float:
    """Expected number of requests of ``schedule`` over ``[0, duration_s]``: the integral of its rate.

    A thin wrapper of :meth:`servelab.generator.rates.RateSchedule.expected_requests` (which
    ``generate`` checks itself, given the pool) for a ``pool`` schedule known by its mean total rate.

    Parameters
    ----------
    schedule : servelab.generator.generate.RateSchedule
        ``constant`` (rate x duration), ``table`` (the exact integral of the linear interpolation,
        held flat beyond its ends) or ``pool`` (its scale x ``pool_total_rate`` x duration).
    duration_s : float
        Seconds to generate.
    pool_total_rate : float, optional
        The pool's mean total rate (req/s) over the period; required for a ``pool`` schedule.

    Raises
    ------
    ValueError
        If ``duration_s`` is not finite and > 0, or a ``pool`` schedule comes without ``pool_total_rate``.
    """
    import math

    duration_s = float(duration_s)
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"duration_s must be a finite number of seconds > 0; got {duration_s!r}")
    if schedule.kind == "pool":
        if pool_total_rate is None:
            raise ValueError("a 'pool' rate schedule needs pool_total_rate (the pool's mean total req/s)")
        return float(schedule.value) * float(pool_total_rate) * duration_s
    # constant and table: the generator's own estimate (RateSchedule.expected_requests)
    return schedule.expected_requests(duration_s)


def check_request_budget(expected: float, *, max_requests: int) -> None:
    """Refuse a workload of ``expected`` requests above ``max_requests``, before anything is allocated.

    Raises
    ------
    WorkloadTooLargeError
        If ``expected`` is not finite or exceeds ``max_requests``; the message gives the estimate,
        the limit and the ``--max-requests`` override.
    """
    import math

    if not math.isfinite(expected) or expected > max_requests:
        raise WorkloadTooLargeError(
            f"the workload would hold about {expected:.3g} requests (rate x duration), more than "
            f"--max-requests {max_requests:,} (about {max_requests * 150 / 1e9:.3g} GB to generate); lower --rate "
            f"or --duration, or raise --max-requests")


def max_requests_option(command: Callable) -> Callable:
    """The ``--max-requests N`` option (default :data:`DEFAULT_MAX_REQUESTS`) of a generating command."""
    return click.option("--max-requests", type=click.IntRange(min=1), default=DEFAULT_MAX_REQUESTS, show_default=True,
                        help="Refuse a workload estimated (rate x duration) above this many requests, before "
                             "allocating it (about 150 bytes per request while generating).")(command)


class _LazyGroup(click.Group):
    """A click group whose sub-commands are imported on first use and run under the error policy."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        return load_command(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        return _run_guarded(ctx, lambda: super(_LazyGroup, self).invoke(ctx))


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="servelab", prog_name="servelab")  # looked up only for --version
@click.option("--debug", is_flag=True, envvar=_DEBUG_ENV,
              help=f"Show the full traceback of an error instead of one line (or set {_DEBUG_ENV}=1).")
def main(debug: bool) -> None:  # noqa: ARG001 - read by the error handler from the context
    """Characterize LLM-serving traces, fit client pools and generate workloads."""
