from click.testing import CliRunner

from servelab import __version__
from servelab.cli import main


def test_version_and_help():
    runner = CliRunner()
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_every_registered_command_resolves_to_a_click_command():
    import click

    from servelab.cli import COMMANDS, load_command

    for name in COMMANDS:
        command = load_command(name)
        assert isinstance(command, click.Command) and command.name == name, name
    listed = CliRunner().invoke(main, ["--help"]).output
    assert all(f"\n  {name} " in listed for name in COMMANDS), listed


def test_a_renamed_command_module_is_an_error_not_a_missing_command(monkeypatch):
    import pytest

    from servelab import cli

    monkeypatch.setitem(cli.COMMANDS, "arrivals", "servelab.commands.arrivalz:arrivals")
    with pytest.raises(cli.CommandNotFoundError, match="command 'arrivals': module 'servelab.commands.arrivalz' "
                                                       "does not exist"):
        cli.load_command("arrivals")
    monkeypatch.setitem(cli.COMMANDS, "arrivals", "servelab.commands.arrivals:arrivalz")
    with pytest.raises(cli.CommandNotFoundError, match="has no click command 'arrivalz'; got NoneType"):
        cli.load_command("arrivals")
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code != 0 and isinstance(result.exception, cli.CommandNotFoundError)
    with pytest.raises(KeyError, match="unknown command 'nope'"):
        cli.load_command("nope")


def test_generate_offers_every_export_format(tmp_path):
    """``generate --format`` lists exactly the generator's export formats plus ``store``, and a
    replay-tool format written through the CLI is the one the library writes."""
    import json

    from click.testing import CliRunner

    from servelab.commands.generate import _FORMATS
    from servelab.generator.exports import EXPORT_FORMATS
    from servelab.samples import RAW_TRACES
    from servelab.cli import main

    assert set(_FORMATS) == set(EXPORT_FORMATS) | {"store"}
    out = tmp_path / "w.jsonl"
    result = CliRunner().invoke(main, ["generate", str(RAW_TRACES / "servegen" / "m-small"), "--rate", "2",
                                       "--duration", "120", "--seed", "3", "--format", "aiperf", "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and all({"session_id", "input_length", "output_length"} <= row.keys() for row in rows)
