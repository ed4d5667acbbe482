"""The conversations area reports the common-prefix table (system prompts, templates) and the links
each linking check rejected; the table agrees with :func:`find_shared_prefixes` called directly."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from servelab.analysis import ingest, open_store
from servelab.analysis.conversations import LinkOptions, link_conversations
from servelab.analysis.shared_prefixes import find_shared_prefixes
from servelab.analysis.store import write_store
from servelab.cli import main
from servelab.reports.areas import CONVERSATIONS
from servelab.reports.areas.conversations import REPORT_PREFIX_ROWS, top_shared_prefixes
from servelab.samples import RAW_TRACES

MOONCAKE = RAW_TRACES / "mooncake" / "synthetic_trace.jsonl"
REJECTIONS = ("n_rejected_common", "n_rejected_itt", "n_rejected_latency", "n_common_prefixes", "clock_s")


@pytest.fixture(scope="module")
def mooncake_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("mc") / "store"
    ingest([MOONCAKE], output=out)
    return open_store(out)


def _system_prompt_store(path, *, n_conv: int = 30, n_single: int = 10, seed: int = 3):
    """``n_conv`` two-turn conversations and ``n_single`` one-block questions, all starting with the
    same one-block system prompt (block 0).

    Turn 1 is ``[0, a, a+1]`` (its last block partial), turn 2 ``[0, a, a+2, a+3]`` 30-90 s later,
    repeating turn 1's full blocks; conversations start at random times. Block 0 is continued in
    ``n_conv`` distinct ways, so it is the one common prefix (``[0, a]`` has two continuations), and
    a link sharing only block 0 (a later request continuing a one-full-block prefix) is rejected.
    A question is ``[0, q]``: its only full block is the system prompt, so without the rule it
    would be the parent of every later request.
    """
    rng = np.random.default_rng(seed)
    start = np.sort(rng.uniform(0, 3600, n_conv))
    itt = rng.uniform(30, 90, n_conv)
    a = 1000 + 4 * np.arange(n_conv)
    t = np.concatenate([start, start + itt, rng.uniform(0, 1800, n_single)])
    blocks = ([[0, int(x), int(x) + 1] for x in a] + [[0, int(x), int(x) + 2, int(x) + 3] for x in a]
              + [[0, 500 + i] for i in range(n_single)])
    order = np.argsort(t, kind="stable")
    frame = pl.DataFrame({"timestamp": t[order], "prefix_blocks": [blocks[i] for i in order],
                          "input_tokens": np.r_[np.full(n_conv, 1300), np.full(n_conv, 1800), np.full(n_single, 700)][order]},
                         schema={"timestamp": pl.Float64, "prefix_blocks": pl.List(pl.Int64),
                                 "input_tokens": pl.Int64})  # 512-token blocks
    return write_store(frame, path)


def _check_against_library(store, linking=None):
    opts = linking or LinkOptions()
    ev = CONVERSATIONS.measure(store, aggregate=False, linking=linking)
    direct = find_shared_prefixes(store, min_continuations=opts.common_min_continuations,
                                  min_clients=opts.common_min_clients)
    detail = CONVERSATIONS.detail_tables(ev)
    small = CONVERSATIONS.tables(ev)
    # the command's table is the library's, whole; the report's is its top rows by requests
    # (the library's row order among equal length and requests is not fixed: compare in one order)
    key = ["length_blocks", "n_requests", "first_request_id"]
    assert detail["shared_prefixes"].sort(key).equals(direct.table.sort(key))
    expected_top = direct.table.sort("n_requests", descending=True).head(REPORT_PREFIX_ROWS)
    assert small["shared_prefixes"].height == min(REPORT_PREFIX_ROWS, direct.table.height)
    assert small["shared_prefixes"]["n_requests"].to_list() == expected_top["n_requests"].to_list()
    assert small["shared_prefixes"].equals(top_shared_prefixes(direct.table))
    # the link summary table carries every rejection count, equal to the library's own linking
    summary = link_conversations(store, **opts.as_kwargs()).summary
    for name in ("links", "link_summary"):
        table = (small if name == "links" else detail)[name]
        for col in REJECTIONS:
            got, want = table[col][0], getattr(summary, col)
            assert got == want or (np.isnan(got) and np.isnan(want)), (name, col, got, want)
    return ev, direct, summary


def test_system_prompt_table_and_rejections(tmp_path):
    store = _system_prompt_store(tmp_path / "s")
    ev, direct, summary = _check_against_library(store)
    # known truth: one common prefix, block 0, that every request starts with
    row = direct.table.row(0, named=True)
    assert direct.table.height == 1 and row["length_blocks"] == 1 and row["n_requests"] == store.n_requests
    assert row["n_continuations"] == 40 and direct.n_starting_common == store.n_requests
    assert summary.n_common_prefixes == 1 and summary.n_rejected_common > 0
    # the 30 true conversations, and no link through the system prompt alone
    assert ev.summary.n_multi_turn == 30 and ev.summary.n_linked == 60 and store.n_requests == 70
    assert any("start with one" in note and "must share more" in note for note in CONVERSATIONS.notes(ev))


def test_rule_off_gives_no_table(tmp_path):
    store = _system_prompt_store(tmp_path / "s")
    off = LinkOptions(common_min_continuations=None, common_min_clients=None)
    ev = CONVERSATIONS.measure(store, aggregate=False, linking=off)
    assert ev.shared_prefixes is None and "shared_prefixes" not in CONVERSATIONS.tables(ev)
    # without the rule, the questions become parents through block 0 alone
    summary = CONVERSATIONS.detail_tables(ev)["link_summary"].row(0, named=True)
    assert summary["n_rejected_common"] == 0 and summary["n_common_prefixes"] == 0 and summary["n_linked"] > 60


def test_mooncake_sample_table_and_options(mooncake_store):
    _, direct, summary = _check_against_library(mooncake_store)
    assert direct.table.height >= 1 and summary.n_common_prefixes >= 1
    # the rule's options reach the table: a stricter rule finds at most as many common prefixes
    strict = LinkOptions(common_min_continuations=50, common_min_clients=None)
    _, strict_direct, _ = _check_against_library(mooncake_store, strict)
    assert strict_direct.table.height <= direct.table.height


def test_command_writes_the_whole_table(mooncake_store, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["conversations", str(mooncake_store.path), "--rows", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    written = pl.read_parquet(out / "shared_prefixes.parquet")
    key = ["length_blocks", "n_requests", "first_request_id"]
    assert written.sort(key).equals(find_shared_prefixes(mooncake_store).table.sort(key))
