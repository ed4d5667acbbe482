"""``servelab ingest`` and ``servelab info`` from the command line (click's runner)."""
import re
from pathlib import Path

from click.testing import CliRunner

from servelab.cli import main

TEST_DATA = Path(__file__).resolve().parents[1] / "data"  # found from this file, so that the suite collects from any directory


def test_ingest_and_info_on_azure_sample(tmp_path, raw_traces):
    runner = CliRunner()
    store = tmp_path / "sample_store"
    res = runner.invoke(main, ["ingest", str(raw_traces / "azure_2023/AzureLLMInferenceTrace_code.csv"),
                               "-o", str(store)])
    assert res.exit_code == 0, res.output
    assert "format: azure (sniffed" in res.output
    assert "read 8,819 rows, stored 8,819, rejected 0" in res.output
    res = runner.invoke(main, ["info", str(store)])
    assert res.exit_code == 0, res.output
    assert "requests:  8,819" in res.output
    minutes = float(re.search(r"span:\s+([\d.]+) min", res.output).group(1))
    assert 56.5 <= minutes <= 58.0  # one hour of trace: 3,435.9 s between first and last request
    assert "2023-11-16T18:17:03.979960+00:00 (UTC)" in res.output
    assert "columns:   request_id, timestamp, input_tokens, output_tokens" in res.output
    assert "rejected:  none" in res.output


def test_info_lists_models_services_and_rejects(tmp_path):
    runner = CliRunner()
    store = tmp_path / "s"
    res = runner.invoke(main, ["ingest", str(TEST_DATA / "ingest/bad_negative_tokens.csv"), "-f", "burstgpt",
                               "-o", str(store)])
    assert res.exit_code == 0, res.output
    assert "format: burstgpt (as given)" in res.output
    res = runner.invoke(main, ["info", str(store)])
    assert "models:    2 (ChatGPT 1, GPT-4 1)" in res.output
    assert "services:  1 (api 2)" in res.output
    assert "rejected:  negative_input_tokens 1, negative_output_tokens 1" in res.output
    assert "clients:   not in this trace" in res.output


def test_wrong_format_and_existing_store_are_clear_errors(tmp_path, raw_traces):
    runner = CliRunner()
    azure = str(raw_traces / "azure_2023/AzureLLMInferenceTrace_code.csv")
    res = runner.invoke(main, ["ingest", azure, "--format", "mooncake", "-o", str(tmp_path / "s")])
    assert res.exit_code == 1
    assert "use --format azure" in res.output
    assert runner.invoke(main, ["ingest", azure, "-o", str(tmp_path / "s")]).exit_code == 0
    res = runner.invoke(main, ["ingest", azure, "-o", str(tmp_path / "s")])
    assert res.exit_code == 1 and "already exists" in res.output
    assert runner.invoke(main, ["ingest", azure, "-o", str(tmp_path / "s"), "--overwrite"]).exit_code == 0


def test_generic_with_column_map_flag(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["ingest", str(TEST_DATA / "ingest/generic.csv"), "--column-map",
                               str(TEST_DATA / "ingest/generic.toml"), "-o", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    assert "format: generic" in res.output
    res = runner.invoke(main, ["info", str(tmp_path / "s")])
    assert "clients:   3" in res.output and "(Asia/Shanghai)" in res.output


def test_info_on_a_folder_that_is_not_a_store(tmp_path):
    res = CliRunner().invoke(main, ["info", str(tmp_path)])
    assert res.exit_code == 1 and "is not a trace store" in res.output
