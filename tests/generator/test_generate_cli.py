"""``servelab generate`` and ``servelab compare`` on a small saved pool."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _genpools import make_pool, to_client_pool

from servelab.cli import main


@pytest.fixture(scope="module")
def pool_dir(tmp_path_factory):
    pmf = {"input_tokens": ([10, 100], [0.5, 0.5]), "output_tokens": ([5, 50], [0.5, 0.5])}
    pool = make_pool({"a": [1.0] * 3, "b": [2.0] * 3}, pmfs={"a": pmf, "b": pmf})
    path = tmp_path_factory.mktemp("pools") / "pool"
    to_client_pool(pool).save(path)
    return path


def _run(args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def test_generate_then_compare(pool_dir, tmp_path):
    out = tmp_path / "w.parquet"
    r = _run(["generate", pool_dir, "--rate", "6", "--duration", "600", "--seed", "1", "-o", out])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output.strip().splitlines()[-1])
    frame = pl.read_parquet(out)
    assert info["requests"] == frame.height and abs(frame.height - 3600) < 5 * 60 * 1.5
    naive = tmp_path / "n.parquet"
    r = _run(["generate", pool_dir, "--rate", "pool", "--duration", "600", "--seed", "1", "--naive", "-o", naive])
    assert r.exit_code == 0, r.output
    assert pl.read_parquet(naive)["client_id"].unique().to_list() == ["naive"]
    r = _run(["compare", out, out, naive, "--names", "self,naive"])
    assert r.exit_code == 0, r.output
    assert "joint_input_energy" in r.output and "self" in r.output and "naive" in r.output


def test_generate_formats_and_rate_file(pool_dir, tmp_path):
    rate = tmp_path / "rate.csv"
    rate.write_text("time_s,rate\n0,1\n600,5\n")
    out = tmp_path / "m.jsonl"
    r = _run(["generate", pool_dir, "--rate-file", rate, "--duration", "600", "--seed", "2", "--format", "mooncake",
              "-o", out])
    assert r.exit_code == 0, r.output
    first = json.loads(out.read_text().splitlines()[0])
    assert set(first) == {"timestamp", "input_length", "output_length", "hash_ids"}
    store = tmp_path / "store"
    r = _run(["generate", pool_dir, "--rate", "pool*2", "--duration", "300", "--seed", "2", "--format", "store",
              "-o", store])
    assert r.exit_code == 0, r.output
    from servelab.analysis.store import open_store

    assert open_store(store).n_requests == json.loads(r.output.strip().splitlines()[-1])["requests"]


def test_generate_usage_errors(pool_dir, tmp_path):
    out = tmp_path / "x.parquet"
    r = _run(["generate", pool_dir, "--duration", "60", "--seed", "1", "-o", out])
    assert r.exit_code != 0 and "exactly one of --rate" in r.output
    r = _run(["generate", pool_dir, "--rate", "fast", "--duration", "60", "--seed", "1", "-o", out])
    assert r.exit_code != 0 and "--rate must be a number" in r.output
    r = _run(["generate", pool_dir, "--rate", "1", "--duration", "60", "--start", "99999", "--seed", "1", "-o", out])
    assert r.exit_code != 0 and "outside the pool's span" in r.output
    out.write_text("x")
    r = _run(["generate", pool_dir, "--rate", "1", "--duration", "60", "--seed", "1", "-o", out])
    assert r.exit_code != 0 and "already exists" in r.output
    r = _run(["compare", out, out])
    assert r.exit_code != 0 and "cannot read" in r.output
    txt = tmp_path / "x.txt"
    txt.write_text("x")
    r = _run(["compare", txt, txt])
    assert r.exit_code != 0 and "neither a trace store" in r.output


def test_generate_streams_the_same_bytes_for_any_chunk_size_and_stays_quiet(pool_dir, tmp_path):
    digests = set()
    for chunk in ("60", "600", "1800"):
        out = tmp_path / f"w{chunk}.csv"
        r = _run(["generate", pool_dir, "--rate", "6", "--duration", "1800", "--seed", "3", "--format", "csv",
                  "--chunk-s", chunk, "-o", out])
        assert r.exit_code == 0, r.output
        info = json.loads(r.stdout.strip().splitlines()[-1])
        # a chunk holds whole 600 s units (the pool's windows): 60 s chunks give one per unit
        assert info["streamed"] and info["chunks"] == min(1800 // int(chunk), 3)
        assert r.stderr == ""  # no progress bar when stderr is not a terminal
        digests.add(out.read_bytes())
    assert len(digests) == 1
    r = _run(["generate", pool_dir, "--rate", "6", "--duration", "60", "--seed", "3", "--chunk-s", "0", "-o",
              tmp_path / "x.parquet"])
    assert r.exit_code == 2 and "must be a finite number of seconds > 0; got 0.0" in r.output


def test_progress_bar_counts_seconds_and_requests(monkeypatch):
    import io

    from servelab.commands import generate as command

    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    assert command._progress_bar(600.0, quiet=True) is None
    assert command._progress_bar(600.0, quiet=False) is None  # a StringIO is not a terminal
    bar = command._Bar(600.0)
    bar.update(1200, 300.0)
    bar.update(1300, 600.0)
    assert bar._bar.n == 600.0 and bar._requests == 2500 and "requests=2,500" in bar._bar.postfix
    bar.close()
    assert stream.getvalue().startswith("\rgenerate:")  # drawn on stderr (tqdm throttles the redraws)
