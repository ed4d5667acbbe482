"""Quick mode of the report (issue #8, speed): deterministic subsets that the sections state, and
quick numbers that agree with full ones within their sampling error; the figure worker and the
DuckDB settings of the report."""
from __future__ import annotations

import contextlib
import json

import duckdb
import numpy as np
import polars as pl
import pytest
from matplotlib.artist import Artist
from servelab.analysis.budget import Budget
from servelab.analysis.store import duckdb_settings, open_store, write_store
from servelab.reports.areas import CONVERSATIONS, LENGTHS, build_section
from servelab.reports.sampling import (
    HASH_BUCKETS,
    hash_sample_condition,
    subset_store,
    temporary_subset,
)


def _store(tmp_path, rng, n=40_000, *, name="s", conversations=True):
    """A client-tagged trace over 6 h: conversations of 1-6 turns among single API requests."""
    t = np.sort(rng.uniform(0, 6 * 3600, n))
    frame = {
        "timestamp": t,
        "client_id": rng.choice([f"c{i}" for i in range(20)], n),
        "input_tokens": np.maximum(1, rng.lognormal(6, 1, n)).astype(np.int64),
        "output_tokens": np.maximum(1, rng.lognormal(5, 0.7, n)).astype(np.int64),
    }
    if conversations:
        # 40 % of requests belong to conversations: ids drawn so that turn counts vary from 1 to 6
        in_conv = rng.random(n) < 0.4
        conv = rng.integers(0, int(in_conv.sum() / 2.5), n)
        frame["conversation_id"] = pl.Series([f"conv{c}" if k else None for c, k in zip(conv, in_conv)],
                                             dtype=pl.String)
    return write_store(pl.DataFrame(frame), tmp_path / name)


# ------------------------------------------------------------------------------------------ sampling
def test_hash_sample_condition_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]; got 0"):
        hash_sample_condition("request_id", 0, 1)
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]; got 1.5"):
        hash_sample_condition("request_id", 1.5, 1)
    with pytest.raises(ValueError, match="seed must be an integer; got 1.0"):
        hash_sample_condition("request_id", 0.5, 1.0)


def test_hash_sample_is_seeded_and_keeps_the_asked_share(tmp_path, rng):
    store = _store(tmp_path, rng, n=20_000, conversations=False)
    q = "SELECT request_id FROM requests WHERE {} ORDER BY request_id"
    a = store.query(q.format(hash_sample_condition("request_id", 0.1, 7)))["request_id"].to_numpy()
    b = store.query(q.format(hash_sample_condition("request_id", 0.1, 7)))["request_id"].to_numpy()
    c = store.query(q.format(hash_sample_condition("request_id", 0.1, 8)))["request_id"].to_numpy()
    np.testing.assert_array_equal(a, b)  # same seed, same rows
    assert not np.array_equal(a, c)  # another seed, other rows
    # a binomial count: 20,000 x 0.1 = 2,000 kept, sd sqrt(20,000 x 0.1 x 0.9) = 42; allow 5 sd
    assert abs(a.size - 2_000) < 5 * 42.5
    # the condition is exactly "hash(key, seed) mod buckets < share x buckets"
    con = duckdb.connect()
    ids = np.arange(20_000)
    h = con.sql("SELECT hash(i, CAST(7 AS BIGINT)) % 1000000 AS h FROM range(20000) t(i) ORDER BY i").fetchnumpy()["h"]
    np.testing.assert_array_equal(a, ids[h < 0.1 * HASH_BUCKETS])


def test_subset_store_keeps_request_ids_columns_and_origin(tmp_path, rng):
    store = _store(tmp_path, rng, n=5_000)
    sub = subset_store(store, "timestamp >= $a AND timestamp < $b", tmp_path / "sub", parameters={"a": 3600.0, "b": 7200.0},
                       description="hour 2")
    full = store.to_polars()
    want = full.filter((pl.col("timestamp") >= 3600) & (pl.col("timestamp") < 7200))
    got = sub.to_polars()
    assert got.columns == full.columns and sub.columns == store.columns
    assert got.equals(want)  # same rows, same request ids, same order
    assert sub.n_requests == want.height and sub.manifest["extra"]["subset"] == "hour 2"
    assert sub.origin == store.origin
    with pytest.raises(FileExistsError, match="already exists"):
        subset_store(store, "true", tmp_path / "sub")


def test_temporary_subset_is_removed_afterwards(tmp_path, rng):
    store = _store(tmp_path, rng, n=2_000)
    with temporary_subset(store, "timestamp < 3600") as sub:
        path = sub.path
        assert sub.n_requests == int((store.to_polars()["timestamp"] < 3600).sum())
    assert not path.exists()


# ------------------------------------------------------------------------------------- quick notes
def test_quick_lengths_states_its_sample_and_agrees_with_full(tmp_path, rng):
    store = _store(tmp_path, rng, n=60_000, conversations=False)
    full = build_section(LENGTHS, store, budget=Budget.full(), seed=3)
    quick = build_section(LENGTHS, store, budget=Budget.quick().replace(max_requests=15_000), seed=3)
    note = quick.notes[0]
    assert note.startswith("quick mode: measured on ") and "of 60,000 requests" in note and "seeded hash" in note
    n_sub = int(note.split("measured on ")[1].split(" of ")[0].replace(",", ""))
    assert abs(n_sub - 15_000) < 5 * np.sqrt(60_000 * 0.25 * 0.75)  # binomial count
    assert not any(n.startswith("quick mode: measured on") for n in full.notes)
    # Spearman rho of input vs output: its standard error is about 1/sqrt(n) (independent lengths
    # here, rho ~ 0); quick (n_sub) and full (60,000) agree within 4 / sqrt(n_sub)
    rq, rf = quick.headline["input/output Spearman"], full.headline["input/output Spearman"]
    assert abs(rq - rf) < 4 / np.sqrt(n_sub)
    # and the reference value from numpy/scipy on the whole trace
    from scipy import stats

    frame = store.to_polars()
    assert rf == pytest.approx(stats.spearmanr(frame["input_tokens"], frame["output_tokens"]).statistic, abs=0.02)


def test_quick_conversations_samples_whole_conversations_and_agrees_with_full(tmp_path, rng):
    store = _store(tmp_path, rng, n=40_000)
    quick = build_section(CONVERSATIONS, store, budget=Budget.quick().replace(max_requests=10_000), seed=1)
    assert quick.notes[0].startswith("quick mode: conversations are linked and described on ")
    assert "of 40,000 requests" in quick.notes[0] and "seeded hash sample (seed 1)" in quick.notes[0]
    assert any("at most 20,000 values" in n for n in quick.notes)
    key = "share of requests in multi-turn conversations (quick-mode sample)"
    share_q = quick.headline[key]

    # reference: the share over the whole trace, and the standard error of a ratio estimate from
    # a sample of whole conversations (clusters) kept with probability f, computed with numpy
    frame = store.to_polars()
    sizes = np.concatenate([frame["conversation_id"].drop_nulls().value_counts()["count"].to_numpy(),
                            np.ones(int(frame["conversation_id"].is_null().sum()))])
    y = np.where(sizes >= 2, sizes, 0)
    share = y.sum() / sizes.sum()
    f = 10_000 / 40_000
    se = np.sqrt((1 - f) / (f * sizes.size) * np.var(y - share * sizes)) / sizes.mean()
    assert abs(share_q - share) < 4 * se
    full = build_section(CONVERSATIONS, store, budget=Budget.full(), seed=1)
    assert full.headline["share of requests in multi-turn conversations"] == pytest.approx(share, rel=1e-12)
    assert not any(n.startswith("quick mode") for n in full.notes)


def test_quick_conversations_on_a_small_trace_uses_everything(tmp_path, rng):
    store = _store(tmp_path, rng, n=3_000)
    section = build_section(CONVERSATIONS, store, budget=Budget.quick(), seed=0)
    assert not any(n.startswith("quick mode: conversations are linked") for n in section.notes)
    assert "requests in multi-turn conversations" in section.headline
    # a budget without max_requests may bound the conversations (max_conversation_requests: a leading
    # span), and says so
    small = Budget.full().replace(max_conversation_requests=1_000)
    ev = CONVERSATIONS.measure(store, budget=small, seed=0)
    note = CONVERSATIONS.notes(ev)[0]
    assert note.startswith("full mode: conversations are linked and described on ") and "of 3,000 requests (bound 1,000)" in note
    assert "a contiguous span (it keeps the trace's request rate" in note  # full mode: a span, not a thinned rate
    n_sub = int(note.split("described on ")[1].split(" of ")[0].replace(",", ""))
    assert n_sub == ev.summary.n_requests and 0 < n_sub < 3_000
    assert "requests in multi-turn conversations (full-mode sample)" in CONVERSATIONS.headline(ev)


def test_quick_span_is_a_whole_day_on_a_multi_day_trace(tmp_path, rng):
    from servelab.reports.areas import conversations

    t = np.sort(rng.uniform(0, 5 * 86400, 10_000))
    store = write_store(pl.DataFrame({"timestamp": t}), tmp_path / "days")
    assert conversations.quick_span(store, max_requests=20_000) is None
    a, b = conversations.quick_span(store, max_requests=1_000)  # 0.5 day of requests -> one whole day
    assert a == pytest.approx(t[0]) and b - a == 86400.0


# ----------------------------------------------------------------------------------- report parts
def test_generation_quick_note_says_what_is_shorter(tmp_path):
    from servelab.reports.areas import GENERATION

    # a sparse first half and a rising second half: the 30-min stable period holds ~320 requests,
    # the variable one ~560, so one bound (450) leaves the first whole and samples the second
    # (one run of the section instead of two: a whole one and a bounded one)
    rng = np.random.default_rng(5)
    t = np.sort(np.r_[rng.uniform(0, 5400, 1000), 5400 + 5400 * np.sqrt(rng.uniform(0, 1, 5000))])
    n = t.size
    frame = pl.DataFrame({"timestamp": t, "client_id": rng.choice([f"c{i}" for i in range(40)], n),
                          "input_tokens": rng.integers(10, 500, n), "output_tokens": rng.integers(5, 50, n)})
    store = write_store(frame, tmp_path / "g")
    ev = GENERATION.measure(store, budget=Budget.quick().replace(max_generation_requests=450), seed=0)
    notes = GENERATION.notes(ev)
    assert any(n.startswith("quick mode: 30-minute stable and variable periods") for n in notes)
    assert "fitted from that period's requests only" in notes[0] and not ev.failed
    sizes = {k: frame.filter((pl.col("timestamp") >= a) & (pl.col("timestamp") < e)).height
             for k, (a, e) in ev.periods.items()}
    assert sizes["stable"] < 450 < sizes["variable"], sizes
    # at most max_generation_requests: the period is whole, and no note says otherwise
    assert set(ev.bounded_sample) == {"variable"}
    assert not any(n.startswith("stable period:") for n in notes)
    assert ev.tables["fidelity_stable"].filter(pl.col("metric") == "n_requests")["reference"][0] == sizes["stable"]
    # above it the period runs on a seeded sample of whole clients, said in the notes
    a, e = ev.periods["variable"]
    inside = frame.filter((pl.col("timestamp") >= a) & (pl.col("timestamp") < e))
    b = ev.bounded_sample["variable"]
    assert (b["requests_total"], b["clients_total"]) == (inside.height, inside["client_id"].n_unique())
    assert 0 < b["clients"] < b["clients_total"] and b["bound"] == 450
    # ~40 clients of ~14 requests kept with probability 0.8: sd of the kept requests ~ sqrt(40 * 14^2 * 0.16) ~ 35
    assert abs(b["requests"] - 450) < 4 * 35
    compared = ev.tables["fidelity_variable"].filter(pl.col("metric") == "n_requests")["reference"][0]
    assert compared == b["requests"]  # the real side of the comparison is the sample too
    assert any(n.startswith(f"variable period: {b['requests_total']:,} requests, above the bound of 450")
               for n in notes)


def test_duckdb_settings_reach_store_connections(tmp_path, rng):
    store = _store(tmp_path, rng, n=100, conversations=False)
    with duckdb_settings(memory_limit="300MB", threads=1), contextlib.closing(store.connect()) as con:
        limit, threads = con.sql("SELECT current_setting('memory_limit'), current_setting('threads')").fetchall()[0]
    assert threads == 1 and limit.replace(" ", "").upper().startswith(("286", "300"))  # 300 MB, DuckDB prints MiB
    with contextlib.closing(store.connect()) as con:  # outside the block: DuckDB's defaults again
        assert con.sql("SELECT current_setting('memory_limit')").fetchall()[0][0] != limit
    with pytest.raises(ValueError, match="threads must be a positive integer or None; got 0"), duckdb_settings(threads=0):
        pass
    with pytest.raises(ValueError, match="memory_limit must be a size such as '2GB' or None; got ''"), \
            duckdb_settings(memory_limit=""):
        pass


def test_duckdb_settings_reach_ingest_connections(tmp_path, monkeypatch, raw_traces):
    """Ingest opens its own connection (spill folder, file order); the block's threads apply to it,
    and its own memory limit (given) wins over the block's."""
    from servelab.analysis import ingest
    from servelab.analysis.ingest import core

    seen = []
    real = core.duckdb.connect
    monkeypatch.setattr(core.duckdb, "connect", lambda *a, config=None, **k: seen.append(config) or real(*a, config=config, **k))
    with duckdb_settings(threads=1, memory_limit="300MB"):
        ingest(raw_traces / "azure_2023" / "AzureLLMInferenceTrace_code.csv", output=tmp_path / "s")
    assert seen and seen[0]["threads"] == 1 and seen[0]["memory_limit"] == "1GB"
    assert seen[0]["preserve_insertion_order"] is True


def test_clients_window_stats_without_quantiles_equal_the_rest(tmp_path, rng):
    from servelab.analysis.clients import client_window_stats

    store = _store(tmp_path, rng, n=5_000, conversations=False)
    with_q = client_window_stats(store)
    without = client_window_stats(store, length_quantiles=False)
    dropped = {"p50_input", "p95_input", "p50_output", "p95_output"}
    assert set(with_q.columns) - set(without.columns) == dropped
    import inspect

    from polars.testing import assert_frame_equal

    # polars 2 calls the relative tolerance rel_tol, polars 1.x (down to the 1.31 floor) rtol
    name = "rel_tol" if "rel_tol" in inspect.signature(assert_frame_equal).parameters else "rtol"
    assert_frame_equal(with_q.drop(sorted(dropped)), without, **{name: 1e-9})


def _encode_in_worker_spy(blob: bytes):
    """``builder._encode_pickled`` recording the process that ran it (module level: the forked
    worker finds it by name)."""
    import os

    from servelab.reports import builder

    with open(os.environ["SERVELAB_TEST_ENCODE_LOG"], "a") as log:
        log.write(f"{os.getpid()}\n")
    return builder.encode_figure(__import__("pickle").loads(blob))


def test_figure_worker_gives_the_same_page_as_in_process(tmp_path, rng, monkeypatch):
    """The forked figure worker encodes the very same Figure objects to byte-identical PNGs.

    One report build with the worker: every figure went through the worker (another process), and
    each embedded PNG equals the in-process encoding of the same Figure object the build kept (two
    separate builds may differ in the last bits of parallel floating-point aggregates, which can
    move an anti-aliased pixel, so comparing two builds would test the aggregates, not the worker).
    """
    import os

    from servelab.reports import builder

    log = tmp_path / "encoded.log"
    monkeypatch.setenv("SERVELAB_TEST_ENCODE_LOG", str(log))
    monkeypatch.setattr(builder, "_encode_pickled", _encode_in_worker_spy)
    store = _store(tmp_path, rng, n=4_000, conversations=False)
    a = builder.build_report(store, output=tmp_path / "a.html", sections=("lengths",), progress=False,
                             figure_worker=True)
    doc = json.loads(a.json_path.read_text())
    assert [s["status"] for s in doc["sections"]] == ["ok"]
    figures = a.section("lengths").figures
    assert figures and set(a.images) == set(figures)
    pids = log.read_text().split()
    assert len(pids) == len(figures) and str(os.getpid()) not in pids  # all encoded by the worker
    here = {k: builder.encode_figure(f) for k, f in figures.items()}
    for k, img in here.items():
        _assert_same_png(img, a.images[k], name=k)


def _assert_same_png(a, b, *, name: str) -> None:
    """Two embedded PNGs show the same picture: same size and, pixel by pixel, at most 0.2% of the
    pixels differ and the RMS difference is below 1 grey level in 255.

    Byte equality is too strict across processes: matplotlib caches FreeType font objects per
    process, and a process that has rendered other text before (the whole suite) can place an
    anti-aliased glyph edge one sub-pixel step differently from a fresh worker (seen once in a
    full-suite run, never alone). A wrong figure (another series, axis or label) moves far more.
    """
    import base64
    import io

    import matplotlib.image as mpimg

    assert (a.width_px, a.height_px, a.mime) == (b.width_px, b.height_px, b.mime), name
    if a.base64 == b.base64:
        return
    pa, pb = (mpimg.imread(io.BytesIO(base64.b64decode(x.base64)), format="png") for x in (a, b))
    assert pa.shape == pb.shape, name
    diff = np.abs(pa.astype(np.float64) - pb.astype(np.float64))
    changed = float(np.mean(diff.max(axis=-1) > 0))
    rms = float(np.sqrt(np.mean(diff**2)) * 255)
    assert changed <= 0.002 and rms < 1.0, f"{name}: {changed:.4%} of pixels differ, rms {rms:.2f}/255"


def test_quick_report_notes_quick_mode(tmp_path, rng):
    from servelab.reports.builder import build_report

    store = _store(tmp_path, rng, n=3_000, conversations=False)
    result = build_report(store, output=tmp_path / "r.html", quick=True, sections=("overview", "lengths"),
                          progress=False)
    assert any(n.startswith("Quick mode:") for n in result.notes)
    assert any(n.startswith("quick mode: length fits on at most 10^5 values") for n in result.section("lengths").notes)
    assert open_store(store.path).n_requests == 3_000


class _Boom(Artist):
    """An artist whose drawing raises (module level, so its figure pickles and reaches the worker)."""

    def draw(self, renderer):
        raise RuntimeError("cannot draw this artist")


def _failing_figure():
    from servelab.figures.style import figure

    fig, ax = figure()
    ax.plot([1, 2], [1, 2])
    fig.add_artist(_Boom())
    return fig


def test_a_figure_that_fails_in_the_worker_becomes_a_note(tmp_path, rng):
    from servelab.figures.style import figure
    from servelab.reports.builder import build_report

    good, ax = figure()
    ax.plot([1, 2, 3], [3, 1, 2])

    class FigsArea:  # an area whose evidence is its two figures
        id, title = "figs_test", "figures"

        def measure(self, source, *, budget, seed=0):
            return {"test.good": good, "test.bad": _failing_figure()}

        def figures(self, ev):
            return ev

        def findings(self, ev):
            return ()

        tables = detail_tables = headline = lambda self, ev: {}

        def notes(self, ev):
            return ()

    store = _store(tmp_path, rng, n=500, conversations=False)
    import pickle

    pickle.dumps(_failing_figure())  # it does pickle: the failure happens in the worker
    result = build_report(store, output=tmp_path / "f.html", sections=(FigsArea(),), progress=False)
    assert set(result.images) == {"test.good"}
    assert any(n.startswith("Figure test.bad of section figs_test could not be rendered") and "cannot draw" in n
               for n in result.notes)
