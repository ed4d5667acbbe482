"""The linking options reach link_conversations from ``conversations``, ``fit-pool`` and ``report``."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from servelab.analysis import ingest, open_store
from servelab.analysis.conversations import LinkOptions, link_conversations
from servelab.cli import main
from servelab.samples import RAW_TRACES

MOONCAKE = RAW_TRACES / "mooncake" / "synthetic_trace.jsonl"


@pytest.fixture(scope="module")
def mooncake_store(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mc") / "store"
    ingest([MOONCAKE], output=out)
    return out


def test_link_options_validate_their_values():
    with pytest.raises(ValueError, match="min_shared_blocks must be an integer >= 1; got 0"):
        LinkOptions(min_shared_blocks=0)
    with pytest.raises(ValueError, match="common_min_continuations must be an integer >= 2 or None; got 1"):
        LinkOptions(common_min_continuations=1)
    with pytest.raises(ValueError, match="clock_s must be a finite number"):
        LinkOptions(clock_s=float("nan"))
    assert LinkOptions().as_kwargs()["common_min_continuations"] == 8


def _linked(output: str) -> int:
    first = next(line for line in output.splitlines() if line.startswith("rule prefix_blocks:"))
    return int(first.split(":")[1].split(" of ")[0].replace(",", ""))


def test_conversations_command_passes_the_linking_options(mooncake_store):
    store = open_store(mooncake_store)
    runner = CliRunner()
    default = runner.invoke(main, ["conversations", str(mooncake_store), "--rows", "1"])
    earlier = runner.invoke(main, ["conversations", str(mooncake_store), "--rows", "1", "--common-continuations", "0",
                                   "--common-clients", "0", "--no-itt-check", "--no-latency-check"])
    assert default.exit_code == 0 and earlier.exit_code == 0, default.output + earlier.output
    # the library, called independently with the same options, links the same requests
    lib_default = link_conversations(store).summary.n_linked
    lib_earlier = link_conversations(store, common_min_continuations=None, common_min_clients=None,
                                     check_itt=False, check_latency=False).summary.n_linked
    assert (_linked(default.output), _linked(earlier.output)) == (lib_default, lib_earlier)
    assert lib_earlier > lib_default  # the shared-prefix check rejects links on this sample


def test_one_is_not_a_common_prefix_threshold(mooncake_store):
    result = CliRunner().invoke(main, ["conversations", str(mooncake_store), "--common-clients", "1"])
    assert result.exit_code == 2 and "must be 0 (off) or an integer >= 2; got 1" in result.output


def test_fit_pool_and_report_record_the_linking_options(mooncake_store, tmp_path):
    runner = CliRunner()
    pool = tmp_path / "pool"
    result = runner.invoke(main, ["fit-pool", str(mooncake_store), "-o", str(pool), "--min-shared-blocks", "2",
                                  "--common-continuations", "0"])
    assert result.exit_code == 0, result.output
    text = (pool / "manifest.json").read_text()  # the pool's provenance records its fit settings
    assert '"min_shared_blocks": 2' in text and '"common_min_continuations": null' in text

    html = tmp_path / "r.html"
    result = runner.invoke(main, ["report", str(mooncake_store), "-o", str(html), "--section", "conversations",
                                  "--no-progress", "--common-continuations", "0", "--common-clients", "0",
                                  "--no-itt-check", "--no-latency-check"])
    assert result.exit_code == 0, result.output
    report = json.loads(html.with_suffix(".json").read_text())
    store = open_store(mooncake_store)
    earlier = link_conversations(store, common_min_continuations=None, common_min_clients=None,
                                 check_itt=False, check_latency=False).summary
    headline = report["sections"][0]["headline"]
    assert report["sections"][0]["id"] == "conversations"
    assert headline["multi-turn conversations"] == earlier.n_multi_turn
    assert headline["requests in multi-turn conversations"] == earlier.n_linked
