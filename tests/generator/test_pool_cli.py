"""`servelab pool info / import-servegen / export-servegen` on the shipped ServeGen slices."""
from __future__ import annotations

import json

from click.testing import CliRunner

from servelab.cli import main


def test_import_info_export_round_trip(raw_traces, tmp_path):
    src = raw_traces / "servegen" / "m-small"
    runner = CliRunner()
    res = runner.invoke(main, ["pool", "import-servegen", str(src), "-o", str(tmp_path / "p")])
    assert res.exit_code == 0, res.output
    assert "6 clients" in res.output and "no dataset file" in res.output
    res = runner.invoke(main, ["pool", "info", str(tmp_path / "p"), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["clients"] == 6 and info["clients_without_data"] == ["1"]
    assert info["span_s"] == [0.0, 1209600.0]
    assert info["cv_range"][1] > 100  # a CV far above 10 survives
    res = runner.invoke(main, ["pool", "info", str(tmp_path / "p")])
    assert "without data    1 client(s): 1" in res.output and "14.00 days" in res.output
    res = runner.invoke(main, ["pool", "export-servegen", str(tmp_path / "p"), "-o", str(tmp_path / "sg")])
    assert res.exit_code == 0, res.output
    for f in src.glob("chunk-*"):
        assert (tmp_path / "sg" / f.name).read_bytes() == f.read_bytes()
    res = runner.invoke(main, ["pool", "export-servegen", str(tmp_path / "p"), "-o", str(tmp_path / "sg")])
    assert res.exit_code != 0 and "already exists" in res.output
    res = runner.invoke(main, ["pool", "info", str(tmp_path)])
    assert res.exit_code != 0 and "neither a servelab pool" in res.output
    res = runner.invoke(main, ["pool", "import-servegen", str(src), "-o", str(tmp_path / "q"), "--missing-data", "error"])
    assert res.exit_code != 0 and "no dataset file" in res.output
