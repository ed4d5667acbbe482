"""analysis.reasoning and analysis.multimodal: numbers against numpy/scipy on small frames, and
recovery of what ServeGen's published pools encode (slices shipped in raw_traces/servegen, sampled
with the project's own seeded sampler, servelab.generator.sample_requests)."""
import warnings

import numpy as np
import polars as pl
import pytest
from scipy import stats

from servelab.analysis import NotApplicableError, write_store
from servelab.analysis import multimodal as M
from servelab.analysis import reasoning as R
from servelab.fitting.mixtures import bimodality


# ---------------------------------------------------------------- small frames vs numpy


@pytest.fixture
def reasoning_store(tmp_path, rng):
    n = 6_000
    out = np.maximum(np.round(rng.exponential(1500, n)), 1).astype(np.int64)
    ratio = np.where(rng.random(n) < 0.4, rng.normal(0.35, 0.08, n), rng.normal(0.85, 0.05, n)).clip(0, 1)
    reason = np.round(ratio * out).astype(np.int64)
    out[:50] = 0  # failed
    reason[:50] = 0
    client = np.where(rng.random(n) < 0.7, "big", "small")
    frame = pl.DataFrame({"timestamp": np.sort(rng.uniform(0, 3600, n)), "client_id": client,
                          "input_tokens": rng.integers(10, 500, n), "output_tokens": out, "reason_tokens": reason})
    return write_store(frame, tmp_path / "r")


def test_reason_summary_and_correlation_match_numpy(reasoning_store):
    f = reasoning_store.to_polars().filter(pl.col("output_tokens") > 0)
    reason = f["reason_tokens"].to_numpy().astype(float)
    answer = (f["output_tokens"] - f["reason_tokens"]).to_numpy().astype(float)
    s = R.reason_summary(reasoning_store)
    assert s["column"].to_list() == ["reason_tokens", "answer_tokens", "output_tokens", "reason_ratio"]
    row = s.filter(pl.col("column") == "answer_tokens").row(0, named=True)
    assert row["n"] == answer.size and row["mean"] == pytest.approx(answer.mean())
    assert row["p95"] == pytest.approx(np.quantile(answer, 0.95))
    c = R.reason_answer_correlation(reasoning_store).row(0, named=True)
    assert c["pearson"] == pytest.approx(np.corrcoef(reason, answer)[0, 1], rel=1e-9)
    assert c["spearman"] == pytest.approx(stats.spearmanr(reason, answer).statistic, rel=1e-9)
    counts = R.reasoning_counts(reasoning_store).row(0, named=True)
    assert counts["n_used"] == answer.size and counts["n_failed_or_null"] == 50


def test_reason_ratio_pmf_sample_and_clients(reasoning_store):
    f = reasoning_store.to_polars().filter(pl.col("output_tokens") > 0)
    ratio = (f["reason_tokens"] / f["output_tokens"]).to_numpy()
    pmf = R.reason_ratio_pmf(reasoning_store)
    assert pmf["count"].sum() == ratio.size and pmf["probability"].sum() == pytest.approx(1.0)
    assert np.all(np.isclose(pmf["ratio"].to_numpy() * 500, np.round(pmf["ratio"].to_numpy() * 500)))
    x = R.reason_ratios(reasoning_store, max_n=None)
    np.testing.assert_allclose(np.sort(x), np.sort(ratio))
    assert bimodality(x, seed=0).bimodal
    cl = R.client_reason_ratios(reasoning_store, top=5, min_n=10)
    big = f.filter(pl.col("client_id") == "big")
    assert cl["client_id"][0] == "big" and cl["n"][0] == big.height
    assert cl["mean_ratio"][0] == pytest.approx((big["reason_tokens"] / big["output_tokens"]).mean())
    one = R.reason_ratios(reasoning_store, max_n=None, client="small")
    assert one.size == f.height - big.height
    with pytest.raises(NotApplicableError, match="for client 'nobody'"):
        R.reason_ratios(reasoning_store, client="nobody")


def test_reasoning_not_applicable_without_reason_tokens(tmp_path):
    s = write_store(pl.DataFrame({"timestamp": [0.0], "output_tokens": [3]}), tmp_path / "x")
    with pytest.raises(NotApplicableError, match="'reason_tokens'"):
        R.reason_summary(s)
    with pytest.raises(NotApplicableError, match="modality columns"):
        M.tokens_per_item(s)


def test_multimodal_numbers_match_numpy(tmp_path, rng):
    n = 5_000
    count = rng.integers(0, 4, n)
    per_item = rng.choice([256.0, 1024.0, 1196.0], n)
    image = (count * per_item).astype(np.int64)
    text = rng.integers(1, 2000, n)
    frame = pl.DataFrame({"timestamp": np.sort(rng.uniform(0, 7200, n)), "text_tokens": text, "image_tokens": image,
                          "image_count": count, "output_tokens": rng.integers(1, 100, n)})
    s = write_store(frame, tmp_path / "mm")
    tpi = M.tokens_per_item(s).row(0, named=True)
    has = count > 0
    assert tpi["n"] == int(has.sum()) and tpi["n_items"] == int(count.sum())
    assert tpi["mean"] == pytest.approx(per_item[has].mean()) and tpi["p50"] == pytest.approx(np.median(per_item[has]))
    items = M.items_per_request(s)
    np.testing.assert_allclose(items.filter(pl.col("modality") == "image")["probability"].to_numpy(),
                               np.bincount(count) / n)
    result = M.multimodal_share(s, bins=10)
    hist, summary = result  # unpacks like the tuple it replaced
    assert summary == result.to_dict() and summary["p50"] == result.p50
    share = image[has] / (text[has] + image[has])
    np.testing.assert_array_equal(hist["count"].to_numpy(), np.histogram(share, bins=10, range=(0, 1))[0])
    p = np.histogram(share, bins=10, range=(0, 1))[0] / has.sum()
    assert summary["normalised_entropy"] == pytest.approx(-np.sum(p[p > 0] * np.log(p[p > 0])) / np.log(10))
    assert summary["p50"] == pytest.approx(np.median(share))
    c = M.text_multimodal_correlation(s).row(0, named=True)
    assert c["pearson"] == pytest.approx(np.corrcoef(text[has], image[has])[0, 1], rel=1e-9)
    load = M.modality_load(s, window_s=600)
    assert load["image_tps"].sum() * 600 == pytest.approx(image.sum())
    ind = M.load_independence(load)
    assert ind.to_dict()["corr_text_image"] == ind.corr_text_image
    assert ind.corr_text_audio is None and "corr_text_audio" not in ind.to_dict()
    assert ind.corr_text_image == pytest.approx(np.corrcoef(load["text_tps"], load["image_tps"])[0, 1])
    with pytest.raises(ValueError, match="bins must be an int >= 2; got 1"):
        M.multimodal_share(s, bins=1)


# ---------------------------------------------------------------- recovery from ServeGen pools


def _pool(raw_traces, name):
    from servelab.generator import read_servegen

    path = raw_traces / "servegen" / name
    if not path.is_dir():
        pytest.skip(f"pool slice {path} not shipped")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_servegen(path)


def _pmf(pool, client, field, window=0.0):
    d = pool.data.filter((pl.col("client_id") == client) & (pl.col("field") == field) & (pl.col("window_start") == window))
    return d["value"].to_numpy(), d["probability"].to_numpy() / d["probability"].sum()


def test_reasoning_recovers_the_deepseek_pool(tmp_path, raw_traces):
    from servelab.generator import sample_requests

    pool = _pool(raw_traces, "deepseek-r1")
    frame = sample_requests(pool, start=0.0, duration=7200.0, seed=11, clients=["35"])
    s = write_store(frame.drop("request_id"), tmp_path / "r1")
    rv, rp = _pmf(pool, "35", "reason_ratio")
    ov, op = _pmf(pool, "35", "output_tokens")
    ratios = R.reason_ratios(s, max_n=None)
    n = ratios.size
    mean_ratio, sd_ratio = np.sum(rv * rp), np.sqrt(np.sum(rp * (rv - np.sum(rv * rp)) ** 2))
    # sampled ratio = round(ratio * output) / output: rounding moves each ratio by < 0.5 / output
    rounding = np.mean(0.5 / frame["output_tokens"].to_numpy())
    assert abs(ratios.mean() - mean_ratio) < 4 * sd_ratio / np.sqrt(n) + rounding
    # reason = ratio * output with independent draws: E[reason] = E[ratio] E[output]
    summary = R.reason_summary(s)
    mean_out = np.sum(ov * op)
    assert summary.filter(pl.col("column") == "output_tokens")["mean"][0] == pytest.approx(mean_out, rel=0.05)
    assert summary.filter(pl.col("column") == "reason_tokens")["mean"][0] == pytest.approx(mean_ratio * mean_out, rel=0.06)
    # the analysis' PMF on 50 coarse bins is the pool's, up to sampling noise and rounding
    ours = R.reason_ratio_pmf(s)
    edges = np.linspace(0, 1 + 1e-9, 51)
    mine = np.histogram(ours["ratio"].to_numpy(), bins=edges, weights=ours["probability"].to_numpy())[0]
    theirs = np.histogram(rv, bins=edges, weights=rp)[0]
    assert 0.5 * np.abs(mine - theirs).sum() < 0.05
    # bimodality: same verdict and modes as on a sample drawn straight from the pool's PMF
    direct = np.random.default_rng(1).choice(rv, size=20_000, p=rp)
    b_pool, b_ours = bimodality(direct, seed=0), bimodality(ratios, max_n=20_000, seed=0)
    assert b_pool.bimodal and b_ours.bimodal
    assert abs(b_pool.mixture["mu1"] - b_ours.mixture["mu1"]) < 0.03
    assert abs(b_pool.mixture["mu2"] - b_ours.mixture["mu2"]) < 0.03


def test_multimodal_recovers_the_mm_image_pool(tmp_path, raw_traces):
    from servelab.generator import sample_requests

    pool = _pool(raw_traces, "mm-image")
    client = max(pool.client_ids, key=lambda c: float(pool.arrivals.filter(pl.col("client_id") == c)["rate"].mean()))
    frame = sample_requests(pool, start=0.0, duration=21600.0, seed=5, clients=[client])
    s = write_store(frame.drop("request_id"), tmp_path / "mm")
    tv, tp = _pmf(pool, client, "image_tokens")
    cv, cp = _pmf(pool, client, "image_count")
    tpi = M.tokens_per_item(s).filter(pl.col("modality") == "image").row(0, named=True)
    mean, sd = np.sum(tv * tp), np.sqrt(np.sum(tp * (tv - np.sum(tv * tp)) ** 2))
    assert abs(tpi["mean"] - mean) < 4 * sd / np.sqrt(tpi["n"]) + 1e-9
    items = M.items_per_request(s).filter(pl.col("modality") == "image")
    ours = dict(zip(items["items"].to_list(), items["probability"].to_list()))
    theirs = dict(zip(cv.astype(int).tolist(), cp.tolist()))
    tv_dist = 0.5 * sum(abs(ours.get(k, 0.0) - theirs.get(k, 0.0)) for k in set(ours) | set(theirs))
    assert tv_dist < 4 * np.sqrt(len(theirs) / items["count"].sum()) + 0.01
