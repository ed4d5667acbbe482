"""The layout caches of figure saving (``figures.style.layout_caches``) change no pixel.

The reference bytes are matplotlib's own ``savefig`` outside the caches; the figures cover what
the caches reuse: log axes with minor ticks and mathtext labels, axes that share their y axis
(and so their tick formatter) at different widths, titles, an offset text, and a figure saved
again after its limits changed.
"""
import io

import numpy as np
from servelab.figures import style
from servelab.figures.style import figure, layout_caches, paper_style
from servelab.reports.builder import encode_figure


def _png(fig, *, cached: bool) -> bytes:
    buffer = io.BytesIO()
    with paper_style():
        if cached:
            with layout_caches(fig):
                fig.savefig(buffer, format="png", dpi=60, bbox_inches="tight")
                assert len(style._ACTIVE[id(fig)]["ticks"]) == 12  # the caches were used: x and y of 6 panels
        else:
            fig.savefig(buffer, format="png", dpi=60, bbox_inches="tight")
    return buffer.getvalue()


def _figure():
    rng = np.random.default_rng(0)
    fig, axes = figure(ncols=3, nrows=2, width=5.0, height=3.0, gridspec_kw={"width_ratios": [1, 3, 1]})
    for ax in axes[0]:
        ax.sharey(axes[0][0])
    for i, ax in enumerate(axes[0]):
        x = np.sort(rng.lognormal(4 + i, 1.5, 50))
        ax.loglog(x, np.linspace(1, 500, x.size))
        ax.set_title(f"panel {i} (log)")
        ax.set_xlabel("tokens (count)")
    for i, ax in enumerate(axes[1]):
        ax.plot(np.arange(20), 1e7 + rng.normal(0, 3 * (i + 1), 20))  # offset text on the y axis
        ax.set_title(f"linear {i}")
    axes[0][0].set_ylabel("rank (count)")
    return fig


def test_cached_save_gives_matplotlibs_bytes():
    fig, twin = _figure(), _figure()
    assert _png(fig, cached=True) == _png(twin, cached=False)
    # saved again after its limits changed: laid out again, not from a stale cache (matplotlib's
    # second save differs from a fresh figure's, so the reference is the twin saved twice too)
    for f in (fig, twin):
        f.axes[1].set_xlim(10, 1e5)
        f.axes[4].set_ylim(1e7 - 20, 1e7 + 20)
    assert _png(fig, cached=True) == _png(twin, cached=False)
    assert style._ACTIVE == {}  # nothing stays cached once the figure is saved


def test_report_encoding_goes_through_the_caches_and_matches():
    import base64

    encoded = base64.b64decode(encode_figure(_figure()).base64)
    reference, twin = io.BytesIO(), _figure()  # made outside paper_style, as the report's figures are
    with paper_style():
        twin.savefig(reference, format="png", dpi=192, bbox_inches="tight")
    assert encoded == reference.getvalue()
    assert style._PATCHED  # encode_figure installed the caches
