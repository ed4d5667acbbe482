"""Common block prefixes (system prompts, templates): the vectorized table against a pure-Python
reference (tuple prefixes in dicts, no hashing), and on a trace built with a known system prompt
and known per-client templates (``benchmarks/bench_linking.py``)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from servelab.analysis.exceptions import NotApplicableError
from servelab.analysis.shared_prefixes import (
    CommonPrefixRule,
    client_codes,
    find_shared_prefixes,
    shared_prefix_table,
)
from servelab.analysis.store import write_store

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_linking import build_prefix_trace  # noqa: E402

TEMPLATE_IDS = (1 << 40, 2 << 40)  # build_prefix_trace's id range of template blocks


def _reference(blocks, clients, ts, *, min_continuations, min_clients):
    """Pure-Python rule: per prefix tuple, requests, continuations and clients of continuing requests."""
    starting: dict[tuple, list[int]] = {}
    nexts: dict[tuple, set] = {}
    who: dict[tuple, set] = {}
    for r, b in enumerate(blocks):
        for k in range(1, len(b) + 1):
            p = tuple(b[:k])
            starting.setdefault(p, []).append(r)
            if k < len(b):
                nexts.setdefault(p, set()).add(b[k])
                if clients is not None:
                    who.setdefault(p, set()).add(clients[r])
    rows = {}
    for p, nx in nexts.items():
        if len(nx) >= min_continuations or (clients is not None and len(who[p]) >= min_clients):
            rows[p] = None
    out = []
    for p in rows:
        reqs = starting[p]
        extends = max((k for k in range(1, len(p)) if p[:k] in rows), default=0)
        out.append({"length_blocks": len(p), "n_requests": len(reqs), "n_continuing": sum(len(blocks[r]) > len(p) for r in reqs),
                    "n_continuations": len(nexts[p]), "n_clients": len(who[p]) if clients is not None else None,
                    "extends_blocks": extends, "first_request_id": reqs[0], "first_seen_s": ts[reqs[0]],
                    "last_seen_s": ts[reqs[-1]]})
    n_start = sum(any(tuple(b[:k]) in rows for k in range(1, len(b) + 1)) for b in blocks)
    return out, n_start


@pytest.mark.parametrize("with_clients", [True, False])
def test_table_matches_the_pure_python_reference(tmp_path, with_clients):
    frame, _, _ = build_prefix_trace(600, seed=5, clock_s=1.0, n_clients=20, span_s=3600.0)
    if not with_clients:
        frame = frame.drop("client_id")
    store = write_store(frame, tmp_path / "s")
    got = find_shared_prefixes(store, min_continuations=5, min_clients=3)
    blocks = frame["prefix_blocks"].to_list()
    clients = frame["client_id"].to_list() if with_clients else None
    ref, n_start = _reference(blocks, clients, frame["timestamp"].to_list(), min_continuations=5, min_clients=3)
    assert got.table.height == len(ref) > 5
    expected = pl.DataFrame(ref, schema_overrides={"n_clients": pl.Int64}).sort(["length_blocks", "n_requests", "first_request_id"])
    table = got.table.sort(["length_blocks", "n_requests", "first_request_id"])
    for col in expected.columns:
        assert table[col].to_list() == expected[col].to_list(), col
    assert got.n_starting_common == n_start
    assert got.has_clients is with_clients and got.n_requests == frame.height


def test_finds_the_system_prompt_and_the_templates(tmp_path):
    frame, _, _ = build_prefix_trace(3000, seed=2, clock_s=3.0, n_clients=60, span_s=3600.0)
    store = write_store(frame, tmp_path / "s")
    result = find_shared_prefixes(store)
    table = result.table
    system = table.row(0, named=True)
    # the 600-token system prompt is one full block that every request starts with, from every client
    assert system["length_blocks"] == 1 and system["n_requests"] == frame.height and system["request_share"] == 1.0
    assert system["n_clients"] == frame["client_id"].n_unique() and system["extends_blocks"] == 0
    assert result.n_starting_common == frame.height
    # every other common prefix is one client's whole template (its blocks in the template id
    # range, the next block not), nested in the system prompt
    blocks = frame["prefix_blocks"].to_list()
    rest = table.slice(1)
    for row in rest.iter_rows(named=True):
        b = blocks[row["first_request_id"]]
        inner = b[1:row["length_blocks"]]
        assert all(TEMPLATE_IDS[0] <= x < TEMPLATE_IDS[1] for x in inner)
        assert not TEMPLATE_IDS[0] <= b[row["length_blocks"]] < TEMPLATE_IDS[1]
        assert row["extends_blocks"] == 1 and row["n_clients"] == 1
    # and each template that at least 8 conversations (or questions) continue is found
    client_of = frame["client_id"].to_list()
    per_client: dict[str, set] = {}
    for b, c in zip(blocks, client_of):
        n_tpl = sum(TEMPLATE_IDS[0] <= x < TEMPLATE_IDS[1] for x in b)
        if n_tpl and len(b) > 1 + n_tpl:
            per_client.setdefault(c, set()).add(b[1 + n_tpl])
    expected = sum(len(v) >= 8 for v in per_client.values())
    assert rest.height == expected >= 5


def test_unrelated_prompts_have_no_common_prefix(rng, tmp_path):
    lists = [list(rng.integers(0, 2**40, int(rng.integers(1, 8)))) for _ in range(500)]
    store = write_store(pl.DataFrame({"timestamp": np.arange(500.0), "prefix_blocks": lists}), tmp_path / "u")
    result = find_shared_prefixes(store)
    assert result.table.height == 0 and result.n_starting_common == 0 and result.starting_common_share == 0.0
    values = np.concatenate([np.asarray(x) for x in lists])
    table, n = shared_prefix_table(values, np.array([len(x) for x in lists]),
                                   rule=CommonPrefixRule(min_continuations=None, min_clients=None))
    assert table.height == 0 and n == 0


def test_errors_and_helpers(tmp_path):
    bare = write_store(pl.DataFrame({"timestamp": [0.0, 1.0]}), tmp_path / "b")
    with pytest.raises(NotApplicableError, match="no 'prefix_blocks' column"):
        find_shared_prefixes(bare)
    with pytest.raises(ValueError, match="min_clients must be an integer >= 2 or None; got 0"):
        CommonPrefixRule(min_clients=0)
    with pytest.raises(ValueError, match=r"min_continuations must be an integer >= 2 or None; got 2\.5"):
        CommonPrefixRule(min_continuations=2.5)
    assert CommonPrefixRule(None, None).describe() == "no prefix is treated as common"
    import pyarrow as pa
    codes = client_codes(pa.chunked_array([["a", None], ["b", "a"]]))
    assert codes.tolist() == [0, -1, 1, 0]
    # dictionary-encoded chunks (as read_dictionary reads them) with different dictionaries
    chunks = [pa.array(["a", None, "b"]).dictionary_encode(), pa.array(["b", "c", "a"]).dictionary_encode()]
    codes = client_codes(pa.chunked_array(chunks))
    labels = ["a", None, "b", "b", "c", "a"]
    assert codes[1] == -1 and len({(lab, int(c)) for lab, c in zip(labels, codes)}) == len(set(labels))


@pytest.mark.parametrize("min_clients", [2, 3, None])
def test_common_groups_agrees_with_the_table_rule(rng, min_clients):
    """The array version used by linking flags the same prefixes as the DataFrame version."""
    from servelab.analysis.shared_prefixes import prefix_statistics

    n_groups, n = 400, 3000
    group = rng.integers(0, n_groups, n) ** 2 // n_groups  # skewed: a few prefixes get many rows
    nxt = rng.integers(0, 12, n)
    # two very common prefixes (>= 4096 rows: first tried on a subsample): 400 has only three
    # distinct continuations and one client (not common), 401 has hundreds of continuations
    big = 400 + rng.permutation(np.r_[np.zeros(5000, dtype=np.int64), np.ones(5000, dtype=np.int64)])
    group = np.r_[group, big]
    nxt = np.r_[nxt, np.where(big == 400, rng.integers(0, 3, big.size), rng.integers(0, 500, big.size))]
    n_groups, n = 402, group.size
    clients = np.where(rng.random(n) < 0.1, -1, rng.integers(1, 4, n) * (rng.random(n) < 0.15))
    clients[group == 400] = 7
    rule = CommonPrefixRule(min_continuations=6, min_clients=min_clients)
    keys = group.astype(np.uint64)
    stats = prefix_statistics(keys, nxt, clients=clients).sort("key")
    expected = np.zeros(n_groups, dtype=bool)
    expected[stats["key"].to_numpy().astype(np.int64)] = rule.common(stats).to_numpy()
    ext = (group * 1000 + nxt).astype(np.uint64)  # distinct per (prefix, next block)
    got = rule.common_groups(group, n_groups, continuation_keys=ext, clients=clients)
    np.testing.assert_array_equal(got, expected)
    assert not got[400] and got[401]
    assert 0 < got.sum() < np.unique(group).size  # some prefixes common, not all
    if min_clients is not None:  # the client criterion adds prefixes beyond the continuation one
        assert got.sum() > CommonPrefixRule(min_continuations=6, min_clients=None).common_groups(
            group, n_groups, continuation_keys=ext).sum()
    # continuation ids given by position in a longer array (as linking passes all prefix hashes)
    where = rng.permutation(3 * n)[:n]
    table = np.zeros(3 * n, dtype=np.uint64)
    table[where] = ext
    np.testing.assert_array_equal(
        rule.common_groups(group, n_groups, continuation_keys=table, continuation_rows=where, clients=clients), expected)
