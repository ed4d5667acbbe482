"""Render the report document (the same dictionary that becomes ``report.json``) as one HTML file.

The page is self-contained: inline CSS, figures embedded as base64 PNG ``data:`` URIs, no
JavaScript, no external resource of any kind, so that it opens the same way from an e-mail
attachment as from a web server. This module formats and escapes; it computes nothing and never
touches a store or matplotlib (figures arrive already encoded, see :class:`EmbeddedImage`).
"""
from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["EmbeddedImage", "render_html", "format_value", "anchor"]

#: verdict -> CSS class of its badge
_VERDICT_CLASS = {
    "holds": "v-holds",
    "does not hold": "v-fails",
    "inconclusive": "v-inconclusive",
    "not applicable": "v-na",
}

#: how many rows of a section table the page shows (report.json keeps them all)
MAX_TABLE_ROWS = 40

_CSS = """
:root { --ink:#1f2328; --muted:#59636e; --line:#d1d9e0; --bg:#ffffff; --soft:#f6f8fa; }
* { box-sizing: border-box; }
body { font: 15px/1.5 -apple-system, "Segoe UI", "Helvetica Neue", Arial, sans-serif; color: var(--ink);
       background: var(--bg); margin: 0; }
main { max-width: 1080px; margin: 0 auto; padding: 24px 28px 64px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 21px; margin: 40px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 16px; margin: 20px 0 6px; }
.meta, .muted { color: var(--muted); font-size: 13px; }
nav.toc { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 8px 16px; margin: 16px 0; }
nav.toc ol { margin: 4px 0; padding-left: 20px; columns: 2; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0 12px; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
td.long { min-width: 22em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.summary td:first-child { color: var(--muted); }
table.na td { font-size: 13px; }
table.na td:first-child { white-space: nowrap; }
.table-wrap { overflow-x: auto; max-width: 100%; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600;
         white-space: nowrap; }
.v-holds { background: #dafbe1; color: #116329; }
.v-fails { background: #ffebe9; color: #a40e26; }
.v-inconclusive { background: #fff8c5; color: #7d4e00; }
.v-na { background: #eaeef2; color: #424a53; }
.v-error { background: #a40e26; color: #ffffff; }
.finding { border: 1px solid var(--line); border-left-width: 4px; border-radius: 6px; padding: 8px 14px;
           margin: 10px 0; }
.finding.v-holds { border-left-color: #1a7f37; background: none; color: inherit; }
.finding.v-fails { border-left-color: #cf222e; background: none; color: inherit; }
.finding.v-inconclusive { border-left-color: #bf8700; background: none; color: inherit; }
.finding.v-na { border-left-color: #8c959f; background: none; color: inherit; }
.finding .head { display: flex; gap: 10px; align-items: baseline; flex-wrap: wrap; }
.finding .fid { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 13px; font-weight: 600; }
.finding .statement { margin: 4px 0; font-style: italic; }
.finding .reason { margin: 4px 0; }
.finding table { margin: 4px 0; }
.figures { display: flex; flex-wrap: wrap; gap: 18px; margin-top: 8px; }
figure { margin: 0; max-width: 100%; display: table; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--soft); }
figcaption { font-size: 13px; color: var(--muted); display: table-caption; caption-side: bottom; margin-top: 2px; }
.notes { background: var(--soft); border-radius: 6px; padding: 6px 14px 6px 30px; font-size: 13px; }
.error { border: 1px solid #cf222e; background: #ffebe9; border-radius: 6px; padding: 8px 14px; }
.error pre { white-space: pre-wrap; font-size: 12px; margin: 4px 0 0; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 13px; }
"""


@dataclass(frozen=True)
class EmbeddedImage:
    """A figure rendered for the page.

    Parameters
    ----------
    mime : str
        ``"image/png"`` (or ``"image/svg+xml"``).
    base64 : str
        The encoded bytes.
    width_px, height_px : int
        CSS size at which to show it (the PNG is rendered at twice that for sharp screens).
    """

    mime: str
    base64: str
    width_px: int
    height_px: int


def anchor(kind: str, ident: str) -> str:
    """An HTML id for ``ident`` (a figure or finding id) that survives dots and spaces."""
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in ident)
    return f"{kind}-{safe}"


def format_value(value: Any) -> str:
    """A number or label as the page shows it (ints with separators, floats to 4 significant digits)."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        if value != 0 and (abs(value) >= 1e5):
            return f"{value:,.0f}"
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.3e}"
        return f"{value:.4g}"
    return str(value)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _cell(value: Any) -> str:
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if numeric:
        return f'<td class="num">{_e(format_value(value))}</td>'
    text = format_value(value)
    css = ' class="long"' if len(text) > 48 else ""
    return f"<td{css}>{_e(text)}</td>"


def _table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, css: str = "", caption: str = "") -> str:
    shown = rows[:MAX_TABLE_ROWS]
    if not rows:
        return f'<p class="muted">No rows on this trace (columns: {_e(", ".join(columns))}).</p>'
    out = [f'<div class="table-wrap"><table class="{_e(css)}">']
    if caption:
        out.append(f"<caption class=\"muted\" style=\"caption-side:top;text-align:left\">{_e(caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th>{_e(c)}</th>" for c in columns) + "</tr></thead><tbody>")
    for row in shown:
        out.append("<tr>" + "".join(_cell(v) for v in row) + "</tr>")
    out.append("</tbody></table></div>")
    if len(rows) > len(shown):
        out.append(f'<p class="muted">First {len(shown)} of {len(rows):,} rows shown; report.json holds them all.</p>')
    return "".join(out)


def _label(key: str) -> str:
    return key.replace("_", " ")


def _summary(document: Mapping[str, Any]) -> str:
    summary = document["summary"]
    trace = summary.get("trace", {})
    rows: list[tuple[str, Any]] = [(_label(k), v) for k, v in trace.items() if k != "span_s"]
    out = ['<section id="summary"><h2>Summary</h2>']
    out.append(_table(["trace", "value"], rows, css="summary"))
    head_rows = []
    for section_id, numbers in summary.get("headline", {}).items():
        title = numbers.get("_title", section_id) if isinstance(numbers, Mapping) else section_id
        first = True
        for key, value in numbers.items():
            if key.startswith("_"):
                continue
            head_rows.append((title if first else "", _label(key), value))
            first = False
    if head_rows:
        out.append("<h3>Headline numbers</h3>")
        out.append(_table(["section", "number", "value"], head_rows, css="summary"))
    verdicts = summary.get("verdicts", {})
    if verdicts:
        cells = " ".join(
            f'<span class="badge {_VERDICT_CLASS.get(v, "v-na")}">{_e(v)}: {n}</span>' for v, n in verdicts.items()
        )
        out.append(f"<p>Findings checked: {cells}</p>")
    errors = [s for s in document["sections"] if s["status"] == "error"]
    if errors:
        names = ", ".join(f'<a href="#{anchor("section", s["id"])}">{_e(s["title"])}</a>' for s in errors)
        out.append(f'<p class="error">These sections failed and are reported with their error: {names}.</p>')
    out.append("</section>")
    return "".join(out)


def _finding(finding: Mapping[str, Any], figure_ids: set[str]) -> str:
    verdict = finding["verdict"]
    css = _VERDICT_CLASS.get(verdict, "v-na")
    out = [f'<div class="finding {css}" id="{_e(anchor("finding", finding["section"] + "-" + finding["id"]))}" '
           f'data-finding-id="{_e(finding["id"])}" data-verdict="{_e(verdict)}">']
    out.append(f'<div class="head"><span class="fid">{_e(finding["id"])}</span>'
               f'<span class="badge {css}">{_e(verdict)}</span>'
               f'<span class="muted">{_e(finding["source"])}</span></div>')
    out.append(f'<p class="statement">{_e(finding["statement"])}</p>')
    measured = finding.get("measured") or {}
    if measured:
        out.append(_table(["measured on this trace", "value"], [(_label(k), v) for k, v in measured.items()]))
    if finding.get("reason"):
        label = "Why it does not apply" if verdict == "not applicable" else "Why"
        out.append(f'<p class="reason"><strong>{label}:</strong> {_e(finding["reason"])}</p>')
    if finding.get("tests"):
        out.append(_tests_table(finding["tests"]))
    if finding.get("figures"):
        links = []
        for fig in finding["figures"]:
            if fig in figure_ids:
                links.append(f'<a href="#{_e(anchor("fig", fig))}"><code>{_e(fig)}</code></a>')
            else:
                links.append(f"<code>{_e(fig)}</code> (not drawn on this trace)")
        out.append(f'<p class="muted">Figures: {", ".join(links)}</p>')
    out.append("</div>")
    return "".join(out)


#: columns of a finding's tests table: (header, how a test record gives the cell)
_TEST_COLUMNS = (
    ("null hypothesis", lambda t: t.get("null")),
    ("statistic", lambda t: f"{t.get('statistic')} = {format_value(t.get('value'))}"),
    ("p", lambda t: t.get("p_value")),
    ("level", lambda t: t.get("level")),
    ("effect vs threshold", lambda t: f"{t.get('effect')}: {format_value(t.get('effect_value'))} vs "
                                      f"{format_value(t.get('practical_threshold'))}"),
    ("power", lambda t: "n/a" if t.get("power") is None else f"{t['power']:.0%}"),
    ("min. detectable effect", lambda t: t.get("minimum_detectable_effect")),
    ("method", lambda t: t.get("method")),
    ("decision", lambda t: t.get("decision")),
)


def _tests_table(tests: Sequence[Mapping[str, Any]]) -> str:
    """The calibrated tests behind a verdict: null, statistic, p, level, effect against the
    practical threshold, power, minimum detectable effect, method and decision, one row each."""
    rows = [[fn(t) for _, fn in _TEST_COLUMNS] for t in tests]
    return _table([h for h, _ in _TEST_COLUMNS], rows, css="tests",
                  caption="Tests behind the verdict (power: probability of 'holds' at the paper's effect)")


def _not_applicable(findings: Sequence[Mapping[str, Any]], figure_ids: set[str]) -> str:
    """The findings this trace cannot check, one compact row each, with the reason."""
    out = [f'<h3>Not applicable on this trace ({len(findings)})</h3><div class="table-wrap"><table class="na">',
           "<thead><tr><th>finding</th><th>the paper's statement</th><th>why it does not apply</th></tr></thead><tbody>"]
    for f in findings:
        out.append(
            f'<tr class="finding-na" id="{_e(anchor("finding", f["section"] + "-" + f["id"]))}" '
            f'data-finding-id="{_e(f["id"])}" data-verdict="{_e(f["verdict"])}">'
            f'<td><code>{_e(f["id"])}</code><br><span class="muted">{_e(f["source"])}</span></td>'
            f'<td>{_e(f["statement"])}</td><td class="long">{_e(f["reason"] or "(no reason given)")}'
            + "".join(f' <a href="#{_e(anchor("fig", fig))}"><code>{_e(fig)}</code></a>'
                      for fig in f.get("figures", ()) if fig in figure_ids)
            + "</td></tr>"
        )
    out.append("</tbody></table></div>")
    return "".join(out)


def _section(section: Mapping[str, Any], findings: Sequence[Mapping[str, Any]],
             images: Mapping[str, EmbeddedImage], figure_ids: set[str]) -> str:
    out = [f'<section id="{_e(anchor("section", section["id"]))}" data-section-id="{_e(section["id"])}" '
           f'data-status="{_e(section["status"])}">']
    out.append(f'<h2>{_e(section["title"])}</h2>')
    timing = section.get("elapsed_s")
    if timing is not None:
        out.append(f'<p class="meta">Section <code>{_e(section["id"])}</code>, built in {timing:.1f} s.</p>')
    if section["status"] == "error":
        out.append(f'<div class="error"><span class="badge v-error">section failed</span> The analyses of this '
                   f'section raised an error, so its findings are missing from this report.'
                   f'<pre>{_e(section.get("error") or "")}</pre></div>')
    if section.get("notes"):
        out.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in section["notes"]) + "</ul>")
    checked = [f for f in findings if f["verdict"] != "not applicable"]
    skipped = [f for f in findings if f["verdict"] == "not applicable"]
    for finding in checked:
        out.append(_finding(finding, figure_ids))
    if skipped:
        out.append(_not_applicable(skipped, figure_ids))
    for name, table in (section.get("tables") or {}).items():
        out.append(f"<h3>{_e(_label(name))}</h3>")
        out.append(_table(table["columns"], table["rows"]))
    figures = section.get("figures") or []
    if figures:
        out.append('<div class="figures">')
        for fig in figures:
            image = images.get(fig["id"])
            if image is None:
                continue
            caption = f'<code>{_e(fig["id"])}</code> {_e(fig.get("title") or "")}'
            if fig.get("paper_figure"):
                caption += f' <span class="muted">(reproduces {_e(fig["paper_figure"])})</span>'
            out.append(
                f'<figure id="{_e(anchor("fig", fig["id"]))}" data-figure-id="{_e(fig["id"])}">'
                f'<img src="data:{image.mime};base64,{image.base64}" width="{image.width_px}" '
                f'height="{image.height_px}" alt="{_e(fig.get("title") or fig["id"])}">'
                f"<figcaption>{caption}</figcaption></figure>"
            )
        out.append("</div>")
    out.append("</section>")
    return "".join(out)


def render_html(document: Mapping[str, Any], images: Mapping[str, EmbeddedImage]) -> str:
    """The whole page for ``document`` (see :func:`servelab.reports.builder.build_report`).

    Parameters
    ----------
    document : Mapping
        The report document, exactly what is written to ``report.json``.
    images : Mapping[str, EmbeddedImage]
        Figure id -> encoded image.

    Returns
    -------
    str
        A complete HTML5 document.
    """
    figure_ids = set(images)
    by_section: dict[str, list] = {}
    for finding in document["findings"]:
        by_section.setdefault(finding["section"], []).append(finding)
    title = f"servelab report: {document['source_name']}"
    quick = (" <strong>Quick mode</strong>: sections subsampled their fits (each section's notes say how)."
             if document.get("quick") else "")
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">Workload characterization of <code>{_e(document["source"])}</code>, checking the findings '
        f"of ServeGen (2025) and BurstGPT (KDD'25). servelab {_e(document['servelab_version'])}, generated "
        f"{_e(document['generated_at'])} in {document['elapsed_s']:.1f} s, seed {document['seed']}.{quick}</p>",
    ]
    out.append('<nav class="toc"><strong>Contents</strong><ol><li><a href="#summary">Summary</a></li>')
    for section in document["sections"]:
        mark = " (failed)" if section["status"] == "error" else ""
        out.append(f'<li><a href="#{_e(anchor("section", section["id"]))}">{_e(section["title"])}</a>{mark}</li>')
    out.append("</ol></nav>")
    out.append(_summary(document))
    if document.get("notes"):
        out.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in document["notes"]) + "</ul>")
    for section in document["sections"]:
        out.append(_section(section, by_section.get(section["id"], []), images, figure_ids))
    out.append('<p class="muted" style="margin-top:40px">Made by servelab from the trace alone. Paper statements '
               "are quoted from ServeGen (Xiang et al., 2025) and BurstGPT (Wang et al., KDD'25).</p>")
    out.append("</main></body></html>\n")
    return "\n".join(out)
