"""The report sections draw BurstGPT Fig. 10 and ServeGen Fig. 8 when the trace allows, and say
why not otherwise."""
import numpy as np
import polars as pl
import pytest
from matplotlib.patches import StepPatch
from servelab.analysis.store import write_store
from servelab.analysis.budget import Budget
from servelab.reports.areas import LENGTHS, build_section


def _frame(rng, n=3000, *, audio=True):
    t = np.sort(rng.uniform(0, 4 * 3600, n))
    text = rng.integers(50, 400, n)
    image = np.where(rng.random(n) < 0.6, rng.choice([700, 1200], n), 0)
    cols = {"timestamp": t, "text_tokens": text, "image_tokens": image, "image_count": (image > 0).astype(np.int64),
            "output_tokens": rng.integers(5, 300, n)}
    if audio:
        hour = t / 3600
        a = np.where(rng.random(n) < np.where(hour > 2, 0.7, 0.1), rng.choice([250, 750], n), 0)
        cols.update(audio_tokens=a, audio_count=(a > 0).astype(np.int64))
    cols["input_tokens"] = text + image + (cols["audio_tokens"] if audio else 0)
    return pl.DataFrame(cols)


@pytest.fixture(scope="module")
def sections(tmp_path_factory):
    rng = np.random.default_rng(20251123)
    root = tmp_path_factory.mktemp("omni")
    omni = build_section(LENGTHS, write_store(_frame(rng), root / "omni"), budget=Budget.quick())
    image = build_section(LENGTHS, write_store(_frame(rng, audio=False), root / "image"),
                          budget=Budget.quick())
    return omni, image


def test_omni_trace_draws_fig8_and_fig10(sections):
    omni, _ = sections
    assert {"servegen.fig8", "servegen.fig7", "burstgpt.fig10"} <= set(omni.figures)
    fig8 = omni.figures["servegen.fig8"]
    labels = [t.get_text() for t in fig8.legends[0].get_texts()]
    assert set(labels) == {"text", "image", "audio"}
    assert not any("servegen.fig8" in n for n in omni.notes)
    fig10 = omni.figures["burstgpt.fig10"]
    assert len([p for p in fig10.axes[0].patches if isinstance(p, StepPatch)]) == 4  # quartiles of input length


def test_fig7_draws_the_discrete_zipf_fit(sections):
    """The fitted curves are evaluated on integer lengths: the Zipf PMF is a line, not 1-2 points."""
    omni, _ = sections
    ax = omni.figures["burstgpt.fig7"].axes[0]
    zipf = [line for line in ax.get_lines() if line.get_label() == "Zipf"]
    assert len(zipf) == 1
    x, y = (np.asarray(v, dtype=float) for v in zipf[0].get_data())
    assert x.size >= 50 and np.all(x == np.round(x)) and np.all(y > 0)


def test_single_modality_trace_says_why_fig8_is_missing(sections):
    _, image = sections
    assert "servegen.fig8" not in image.figures and "servegen.fig7" in image.figures
    assert any(n.startswith("servegen.fig8 (omni-modal load) not drawn") and "only image tokens" in n
               for n in image.notes)


def test_trace_without_lengths_says_why_fig10_is_missing(tmp_path):
    store = write_store(pl.DataFrame({"timestamp": np.arange(50.0)}), tmp_path / "bare")
    section = build_section(LENGTHS, store, budget=Budget.quick())
    assert "burstgpt.fig10" not in section.figures
    assert any(n.startswith("burstgpt.fig10 not drawn:") and "input_tokens" in n for n in section.notes)
    assert any("no modality tokens" in n for n in section.notes)
