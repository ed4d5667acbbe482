"""``servelab ingest`` on odd output targets (issue 18): one clear line, exit code 1, no traceback,
nothing left behind."""
import pytest
from click.testing import CliRunner

from servelab.cli import main

_AZURE = "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,10,5\n"


@pytest.mark.parametrize(("target", "message"), [
    (".", "is the current directory or holds it"),
    ("notes.txt", "already exists and is a file, not a store folder"),
    ("folder", "is a folder but not a servelab store"),
    ("locked", "another ingest is writing"),
])
def test_cli_odd_targets_give_one_clear_error(tmp_path, monkeypatch, target, message):
    from servelab.analysis.ingest.target import target_lock

    src = tmp_path / "azure.csv"
    src.write_text(_AZURE)
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("keep")
    (work / "folder").mkdir()
    (work / "folder" / "keep.txt").write_text("keep")
    monkeypatch.chdir(work)
    before = sorted(p.name for p in work.rglob("*"))
    with target_lock(work / "locked"):
        res = CliRunner().invoke(main, ["ingest", str(src), "-o", target, "--overwrite"])
    assert res.exit_code == 1, res.output
    assert isinstance(res.exception, SystemExit)  # a click error, not an exception escaping
    assert "Traceback" not in res.output
    assert message in res.output
    assert sorted(p.name for p in work.rglob("*")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["azure.csv", "work"]
