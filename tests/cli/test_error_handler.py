"""The CLI-wide error and warning policy of :mod:`servelab.cli` (issue 18, item 4).

Small click commands registered under :data:`servelab.cli.COMMANDS` for one test raise or warn on
purpose; two tests run real commands on the shipped ServeGen pool ``m-small`` (one client has no
dataset file, so loading it issues a ``MissingDatasetWarning``).
"""
from __future__ import annotations

import sys
import types
import warnings
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from servelab import cli
from servelab.analysis import exceptions as analysis_exceptions
from servelab.cli import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, is_input_error, main
from servelab.fitting import exceptions as fitting_exceptions
from servelab.fitting.exceptions import ConvergenceError, FitWarning, UnknownFamilyError
from servelab.generator import exceptions as generator_exceptions
from servelab.generator.exceptions import MissingDatasetWarning, PoolFormatError
from servelab.samples import RAW_TRACES

M_SMALL = RAW_TRACES / "servegen/m-small"
HINT = "; run with --debug for the traceback"


class _LibraryRuntimeWarning(RuntimeWarning):
    """A RuntimeWarning subclass like the library's ``SectionFailedWarning``."""


@pytest.fixture
def fake(monkeypatch):
    """Register click commands under COMMANDS: ``fake(name, command)``; ``raising(err)`` builds one."""
    module = types.ModuleType("_servelab_fake_commands")
    monkeypatch.setitem(sys.modules, module.__name__, module)

    def register(name: str, command: click.Command) -> None:
        setattr(module, name.replace("-", "_"), command)
        monkeypatch.setitem(cli.COMMANDS, name, f"{module.__name__}:{name.replace('-', '_')}")

    return register


def _raising(name: str, err: BaseException) -> click.Command:
    @click.command(name)
    def command() -> None:
        raise err

    return command


def _invoke(args, **kwargs):
    return CliRunner().invoke(main, args, catch_exceptions=True, **kwargs)


def test_an_unexpected_error_is_one_line_with_the_debug_hint(fake):
    fake("boom", _raising("boom", ZeroDivisionError("division by zero")))
    result = _invoke(["boom"])
    assert result.exit_code == EXIT_ERROR and isinstance(result.exception, SystemExit)
    assert result.stderr == f"servelab boom: unexpected error: ZeroDivisionError: division by zero{HINT}\n"
    assert result.stdout == ""


@pytest.mark.parametrize("how", ["option", "env"])
def test_debug_reraises_with_the_traceback(fake, how):
    fake("boom", _raising("boom", ZeroDivisionError("division by zero")))
    result = _invoke(["--debug", "boom"]) if how == "option" else _invoke(["boom"], env={"SERVELAB_DEBUG": "1"})
    assert isinstance(result.exception, ZeroDivisionError)  # the runner caught the re-raised error itself
    assert result.exception.__traceback__ is not None and "unexpected error" not in result.output
    assert _invoke(["boom"], env={"SERVELAB_DEBUG": "0"}).exit_code == EXIT_ERROR


@pytest.mark.parametrize("err, shown", [
    (PoolFormatError("pool 'p': client '3' window 600 field 'rate' must be >= 0; got -1.0"),
     "pool 'p': client '3' window 600 field 'rate' must be >= 0; got -1.0"),
    (analysis_exceptions.MissingColumnError("timestamp", found=["a", "b"], source="x.csv"),
     "required column 'timestamp' is missing in x.csv; columns found: 'a', 'b'"),
    (ConvergenceError("gamma: the optimiser diverged"), "gamma: the optimiser diverged"),  # a RuntimeError
    (UnknownFamilyError("unknown family 'cauchy'"), "unknown family 'cauchy'"),  # a KeyError
    (ValueError("--window must be positive; got -5"), "--window must be positive; got -5"),
    (FileNotFoundError(2, "No such file or directory", "/no/such/file"),
     "[Errno 2] No such file or directory: '/no/such/file'"),
    (PermissionError(13, "Permission denied", "/root/x"), "[Errno 13] Permission denied: '/root/x'"),
    (click.ClickException("'out.parquet' already exists; pass --overwrite to replace it"),
     "'out.parquet' already exists; pass --overwrite to replace it"),
], ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else "")
def test_input_errors_are_one_line_and_exit_1(fake, err, shown):
    fake("boom", _raising("boom", err))
    result = _invoke(["boom"])
    assert result.exit_code == EXIT_ERROR and isinstance(result.exception, SystemExit)
    assert result.stderr == f"servelab boom: error: {shown}\n"


def test_a_multi_line_message_is_cut_to_its_first_line(fake):
    fake("boom", _raising("boom", ValueError("cannot sniff x.csv\n  line 1: ...\n  line 2: ...\n")))
    result = _invoke(["boom"])
    assert result.stderr == "servelab boom: error: cannot sniff x.csv [2 more line(s); --debug shows them]\n"
    assert isinstance(_invoke(["--debug", "boom"]).exception, ValueError)


def test_interrupt_prints_interrupted_and_exits_130(fake):
    fake("boom", _raising("boom", KeyboardInterrupt()))
    result = _invoke(["boom"])
    assert result.exit_code == EXIT_INTERRUPTED == 130
    assert result.stderr == "servelab boom: interrupted\n"


def test_usage_errors_keep_clicks_format(fake):
    fake("boom", _raising("boom", click.BadParameter("must be > 0; got -1", param_hint="--rate")))
    result = _invoke(["boom"])
    assert result.exit_code == EXIT_USAGE
    assert "Usage: " in result.stderr and "Error: Invalid value for --rate: must be > 0; got -1" in result.stderr
    result = _invoke(["boom", "--nope"])
    assert result.exit_code == EXIT_USAGE and "Error: No such option '--nope'." in result.stderr


def test_errors_and_warnings_of_a_sub_command_name_it(fake):
    @click.group("grp")
    def grp() -> None:
        """A group like ``servelab pool``."""

    @grp.command("leaf")
    def leaf() -> None:
        warnings.warn("half the windows are empty", FitWarning, stacklevel=1)
        raise PoolFormatError("client '7' has no windows")

    fake("grp", grp)
    result = _invoke(["grp", "leaf"])
    assert result.exit_code == EXIT_ERROR
    assert result.stderr.splitlines() == ["servelab grp leaf: warning: half the windows are empty",
                                          "servelab grp leaf: error: client '7' has no windows"]


def test_every_warning_is_printed_once_as_it_happens(fake):
    @click.command("warns")
    def warns() -> None:
        for _ in range(3):  # the same message three times, from one line: printed once
            warnings.warn("22.7% of the requests used borrowed lengths", MissingDatasetWarning, stacklevel=1)
        warnings.warn("section 'clients' failed", _LibraryRuntimeWarning, stacklevel=1)
        warnings.warn("EM did not converge\nin 200 iterations", FitWarning, stacklevel=1)
        click.echo("done")

    fake("warns", warns)
    for _ in range(2):  # a second run in the same process prints them again (no once-per-location registry)
        result = _invoke(["warns"])
        assert result.exit_code == 0, result.output
        assert result.stderr.splitlines() == [
            "servelab warns: warning: 22.7% of the requests used borrowed lengths",
            "servelab warns: warning: section 'clients' failed",
            "servelab warns: warning: EM did not converge [1 more line(s); --debug shows them]",
        ]
        assert result.stdout == "done\n"


def test_the_handler_leaves_the_warning_filters_as_it_found_them(fake):
    fake("boom", _raising("boom", ValueError("bad")))
    before, show = list(warnings.filters), warnings.showwarning
    _invoke(["boom"])
    assert warnings.filters == before and warnings.showwarning is show


def test_is_input_error_covers_every_typed_error_and_no_bug():
    typed = [getattr(module, name) for module in (analysis_exceptions, fitting_exceptions, generator_exceptions)
             for name in module.__all__]
    errors = [cls for cls in typed if issubclass(cls, Exception) and not issubclass(cls, Warning)]
    assert len(errors) >= 15
    for cls in errors:
        err = cls.__new__(cls)  # some take keyword-only arguments; the class is what counts
        assert is_input_error(err), cls
    for err in (KeyError("x"), TypeError("x"), AttributeError("x"), ZeroDivisionError(), RuntimeError("x"),
                MemoryError()):
        assert not is_input_error(err), err


def test_report_and_ingest_accept_the_same_formats():
    def choices(name):
        option = next(p for p in cli.load_command(name).params if p.name == "fmt")
        return tuple(option.type.choices)

    assert choices("report") == choices("ingest")


def test_a_missing_dataset_warning_reaches_the_user_of_pool_export(tmp_path):
    # m-small's client 1 has a trace file but no dataset file: loading the pool warns
    result = _invoke(["pool", "export-servegen", str(M_SMALL), "-o", str(tmp_path / "exported")])
    assert result.exit_code == 0, result.output
    warned = [line for line in result.stderr.splitlines() if line.startswith("servelab pool export-servegen: warning:")]
    assert len(warned) == 1 and "1 client(s) have no dataset file" in warned[0] and "ids ['1']" in warned[0]


def test_a_missing_dataset_warning_reaches_the_user_of_generate(tmp_path):
    result = _invoke(["generate", str(M_SMALL), "--rate", "1", "--duration", "600", "--seed", "1",
                      "-o", str(tmp_path / "w.parquet")])
    assert result.exit_code == 0, result.output
    assert "servelab generate: warning: ServeGen pool" in result.stderr
    assert "1 client(s) have no dataset file" in result.stderr
    assert Path(tmp_path / "w.parquet").is_file()


def test_an_empty_source_warning_of_ingest_is_one_line(tmp_path):
    azure = RAW_TRACES / "azure_2023/AzureLLMInferenceTrace_code.csv"
    header_only = tmp_path / "header_only.csv"
    header_only.write_text(azure.read_text().splitlines()[0] + "\n")
    result = _invoke(["ingest", str(azure), str(header_only), "-o", str(tmp_path / "store")])
    assert result.exit_code == 0, result.output
    assert f"servelab ingest: warning: source {header_only} holds no data rows; it is recorded in the manifest " \
           "and skipped\n" in result.stderr
    assert "EmptySourceWarning" not in result.output  # not Python's own "file:line: Category: message" format
