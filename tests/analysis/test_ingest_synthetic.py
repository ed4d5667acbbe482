"""The synthetic BurstGPT-schema writer (benchmarks/synthetic_trace.py) and the ingest fast path.

The single-CSV fast path (one read straight to the store) must give exactly the store of the
general two-pass path; the synthetic writer must be seeded and have the advertised shape.
"""
import csv
import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest

from servelab.analysis import ingest
from servelab.analysis.ingest import fast_path

REPO = Path(__file__).resolve().parents[2]  # found from this file, so that the suite collects from any directory

sys.path.insert(0, str(REPO / "benchmarks"))
from synthetic_trace import make_synthetic_store, write_burstgpt_csv  # noqa: E402

N = 20_000


@pytest.fixture(scope="module")
def synthetic_csv(tmp_path_factory):
    return write_burstgpt_csv(tmp_path_factory.mktemp("syn") / "burst.csv", n_rows=N, n_clients=200, seed=7)


def test_same_seed_same_bytes(synthetic_csv, tmp_path):
    again = write_burstgpt_csv(tmp_path / "again.csv", n_rows=N, n_clients=200, seed=7)
    other = write_burstgpt_csv(tmp_path / "other.csv", n_rows=N, n_clients=200, seed=8)
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert digest(again) == digest(synthetic_csv) != digest(other)


def test_csv_shape(synthetic_csv, tmp_path):
    with open(synthetic_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["Timestamp", "Session ID", "Elapsed time", "Model", "Request tokens",
                             "Response tokens", "Total tokens", "Log Type"]
    assert len(rows) == N
    ts = np.array([float(r["Timestamp"]) for r in rows])
    assert np.all(np.diff(ts) >= 0) and 0 <= ts[0] and ts[-1] <= 86_400
    fail = np.mean([r["Response tokens"] == "0" for r in rows])
    # per-row failure probability is between 1% and 6%; 4 binomial sigmas at n = 20,000
    assert 0.01 - 4 * np.sqrt(0.01 / N) < fail < 0.06 + 4 * np.sqrt(0.06 / N)
    assert {r["Model"] for r in rows} == {"ChatGPT", "GPT-4"}
    assert {r["Log Type"] for r in rows} == {"API log", "Conversation log"}
    assert all((r["Session ID"] == "") == (r["Log Type"] == "API log") for r in rows)
    assert all(int(r["Total tokens"]) == int(r["Request tokens"]) + int(r["Response tokens"]) for r in rows)
    v1 = write_burstgpt_csv(tmp_path / "v1.csv", n_rows=100, seed=1, with_session=False)
    assert v1.read_text().splitlines()[0] == "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type"


def test_fast_path_equals_general_path(synthetic_csv, tmp_path, monkeypatch):
    fast = ingest(synthetic_csv, output=tmp_path / "fast")
    monkeypatch.setattr(fast_path, "applies", lambda *a: False)
    slow = ingest(synthetic_csv, output=tmp_path / "slow")
    assert fast.to_polars().equals(slow.to_polars())
    assert fast.manifest["rows"] == slow.manifest["rows"]
    assert fast.manifest["rows"]["read"] == N and fast.n_requests == N


def test_fast_path_falls_back_when_sql_rejects_rows(synthetic_csv, tmp_path):
    bad = tmp_path / "bad.csv"
    lines = synthetic_csv.read_text().splitlines()
    head = lines[1].split(",")
    head[4] = "-5"  # negative request tokens: only a SQL check sees it
    bad.write_text("\n".join([lines[0], ",".join(head), *lines[2:]]) + "\n")
    store = ingest(bad, output=tmp_path / "s")
    assert store.manifest["rows"]["rejected"] == {"negative_input_tokens": 1}
    assert store.n_requests == N - 1
    assert store.query("SELECT row FROM rejected")["row"].to_list() == [2]


def test_unsorted_fast_path_is_sorted(tmp_path):
    path = tmp_path / "u.csv"
    path.write_text("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                    "3,ChatGPT,1,1,2,API log\n1,ChatGPT,2,1,3,API log\n2,GPT-4,3,1,4,API log\n")
    store = ingest(path, output=tmp_path / "s")
    got = store.to_polars()
    assert got["input_tokens"].to_list() == [2, 3, 1] and got["request_id"].to_list() == [0, 1, 2]
    assert store.manifest["rows"]["unsorted"] == 1


def test_make_synthetic_store(tmp_path):
    store = make_synthetic_store(tmp_path / "s", n_rows=5000, n_clients=50, days=0.5, seed=3)
    assert store.n_requests == 5000
    assert store.columns == ("request_id", "timestamp", "client_id", "model", "service", "input_tokens",
                             "output_tokens", "conversation_id", "latency_s", "failed")
    got = store.to_polars()
    assert got["request_id"].to_list() == list(range(5000))
    assert np.all(np.diff(got["timestamp"].to_numpy()) >= 0)
    assert got["client_id"].n_unique() <= 50
    assert (got["failed"] == (got["output_tokens"] == 0)).all()
    assert store.origin is not None and store.timezone == "UTC"


def test_unsorted_with_ties_fast_path_equals_general_path(tmp_path, monkeypatch, rng):
    """Sorting keeps tied timestamps in file order on both paths, and request_id is 0..n-1."""
    n = 500
    t = rng.integers(0, 50, n)  # many ties, unsorted
    rows = [f"{t[k]},ChatGPT,{k + 1},1,{k + 2},API log" for k in range(n)]
    path = tmp_path / "u.csv"
    path.write_text("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n" + "\n".join(rows) + "\n")
    fast = ingest(path, output=tmp_path / "fast")
    monkeypatch.setattr(fast_path, "applies", lambda *a: False)
    slow = ingest(path, output=tmp_path / "slow")
    got = fast.to_polars()
    assert got.equals(slow.to_polars())
    assert got["request_id"].to_list() == list(range(n))
    order = np.lexsort((np.arange(n), t))  # by time, ties in file order
    assert got["input_tokens"].to_list() == (order + 1).tolist()


def test_bursty_small_clients_get_finite_times(tmp_path):
    """2,000 clients over 20,000 rows: some have one request and a Gamma shape of 1/64, whose
    draws underflow to 0; their times must still be finite (they were NaN)."""
    path = write_burstgpt_csv(tmp_path / "small.csv", n_rows=20_000, n_clients=2000, days=7.0, seed=0)
    with open(path, newline="") as fh:
        ts = np.array([float(r["Timestamp"]) for r in csv.DictReader(fh)])
    assert ts.size == 20_000 and np.isfinite(ts).all()
    assert ingest(path, output=tmp_path / "s").n_requests == 20_000
