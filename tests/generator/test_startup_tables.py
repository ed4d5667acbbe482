"""A short workload builds per-client tables for the clients that draw only, with the same bytes.

``pool_input_cdf(..., needed=...)`` (issue 16 item 5: a 600 s workload of a 162-client pool
mixed every client's data windows, 0.3-0.6 s of a 0.7 s process) must give each needed client
the entries the whole table gives it (values and ``cum``, bit for bit: the group keeps its number,
so ``group + within`` rounds the same) and map the other clients to -1. The reference is the
whole table, computed by the unrestricted code path.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

from servelab.generator.conversations import pool_input_cdf


def _pool(seed: int) -> tuple[SimpleNamespace, pl.DataFrame]:
    """12 clients, 6-h data windows over 2 days, 10-min arrival windows; client 3 has one data
    window (no pool-wide PMF), client 5 data but no arrivals (never qualifies), client 8 arrival
    rates of 0 only."""
    rng = np.random.default_rng(seed)
    ids = [f"c{i:02d}" for i in range(12)]
    rows = []
    for i, cid in enumerate(ids):
        windows = [0.0] if i == 3 else sorted(rng.choice(8, size=rng.integers(2, 6), replace=False) * 21600.0)
        for ws in windows:
            values = np.unique(rng.integers(1, 4000, size=rng.integers(1, 40))).astype(float)
            p = rng.random(values.size)
            rows += [(cid, ws, 21600.0, "input_tokens", v, q / p.sum()) for v, q in zip(values, p)]
            rows += [(cid, ws, 21600.0, "output_tokens", 7.0, 1.0)]
    data = pl.DataFrame(rows, schema=["client_id", "window_start", "window_s", "field", "value", "probability"],
                        orient="row")
    arr = []
    for i, cid in enumerate(ids):
        if i == 5:
            continue
        for k in range(0, 288, 3):
            arr.append((cid, k * 600.0, 600.0, 0.0 if i == 8 else float(rng.gamma(2.0, 0.01))))
    arrivals = pl.DataFrame(arr, schema=["client_id", "window_start", "window_s", "rate"], orient="row")
    index = pl.DataFrame({"client_id": ids, "p": np.arange(len(ids))})
    return SimpleNamespace(data=data, arrivals=arrivals, provenance={}), index


def _entries(table, gmap, p):
    g = gmap[p]
    inside = (table.cum > g) & (table.cum <= g + 1)
    return table.values[inside], table.cum[inside]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("needed", [[0], [11, 2], [3, 4, 5, 8, 9], list(range(12))])
def test_needed_clients_get_the_whole_tables_bytes(seed, needed):
    pool, index = _pool(seed)
    full, full_map = pool_input_cdf(pool, index, 12)
    part, part_map = pool_input_cdf(pool, index, 12, needed=np.array(needed))
    assert full_map[3] == full_map[5] == full_map[8] == -1  # the rules that exclude a client are exercised
    assert (full_map >= 0).sum() == 9
    for p in range(12):
        if p not in needed or full_map[p] < 0:
            assert part_map[p] == -1
            continue
        assert part_map[p] == full_map[p]  # the group keeps its number among all clients
        fv, fc = _entries(full, full_map, p)
        pv, pc = _entries(part, part_map, p)
        assert fv.size > 0
        np.testing.assert_array_equal(pv, fv)
        assert pc.tobytes() == fc.tobytes()
    if not any(full_map[p] >= 0 for p in needed):
        assert part is None and part_map is None
