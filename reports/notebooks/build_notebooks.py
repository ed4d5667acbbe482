"""Write the notebooks that reproduce ServeGen and BurstGPT with servelab (run this after API changes).

The notebooks are generated with nbformat from the cell texts below, so that they stay in step
with the library: ``tests/reports/test_notebooks.py`` checks that the committed ``.ipynb`` files
equal what this script writes, and runs each top to bottom through nbclient. They use only public
library calls (ingest, the report sections, findings tables, the report builder) and are written
without outputs.

Usage::

    python reports/notebooks/build_notebooks.py          # rewrite both notebooks
    python reports/notebooks/build_notebooks.py --check  # exit 1 if a notebook is out of date
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

__all__ = ["NOTEBOOKS", "build", "write_all"]

HERE = Path(__file__).resolve().parent

_SHOW = """\
from IPython.display import Markdown, display

from servelab.analysis import findings_table


def show(section_id):
    \"\"\"One section of the report: its findings (verdict, numbers, reason), notes, and figures.\"\"\"
    section = report.section(section_id)
    display(Markdown(f"### {section.title}"))
    for note in section.notes:
        display(Markdown(f"*Note:* {note}"))
    if section.findings:
        display(findings_table(section.findings))
    for fig_id in section.figures:
        image = report.images[fig_id]  # the PNG the HTML report embeds
        display(Markdown(f"**{fig_id}**\\n\\n![{fig_id}](data:{image.mime};base64,{image.base64})"))
"""

_INGEST = """\
import tempfile
from pathlib import Path

from servelab.analysis.ingest import ingest

workdir = Path(tempfile.mkdtemp(prefix="servelab-notebook-"))
store = ingest([str(TRACE)], fmt=FORMAT, output=workdir / "store", progress=False)
print(store.path, store.n_requests, "requests; columns:", ", ".join(store.columns))
"""

_REPORT = """\
from servelab.reports import build_report

report = build_report(store, output=workdir / "report.html", quick=QUICK, seed=SEED, progress=False)
print(report.html_path, report.json_path, f"{report.elapsed_s:.1f} s")
report.verdict_counts()
"""

_REPORT_MD = """\
## The report, once

`build_report` runs every area of `servelab.reports.areas.AREAS` on the store (each area measures
once, `area.measure(store, budget=..., seed=...)`, then gives its findings, tables and figures of
that evidence; `build_section(area, store)` does all of it for one area) and writes one
self-contained HTML page plus a JSON of all findings; `servelab report TRACE` is the same call from
the shell.
The cells below walk through its sections."""

SERVEGEN = [
    ("md", """\
# Reproducing ServeGen (2025) with servelab

ServeGen (Xiang et al., *ServeGen: Workload Characterization and Generation of Large Language Model
Serving in Production*, 2025) characterizes Alibaba Bailian's LLM traffic and states eleven findings.
This notebook checks them on a trace with servelab, section by section of the report that
`servelab report` writes.

It runs on the trace shipped with servelab: the **Azure LLM inference trace 2023, code service**
(one hour, 8,819 requests; CC-BY-4.0, github.com/Azure/AzurePublicDataset). That trace has
timestamps and input/output token counts but **no client ids, conversations, reasoning or
multimodal columns**, so:

| ServeGen finding | needs | on the Azure sample |
|---|---|---|
| F1 bursty arrivals, no single best family (Fig. 1) | timestamps | checked |
| F2 shifting rate and CV (Fig. 2) | timestamps | checked (one hour only) |
| F3 input ~ Pareto + log-normal mixture, output ~ exponential, weak correlation (Fig. 3) | token counts | checked |
| F4 length distributions shift over time (Fig. 4) | token counts over a day | checked as far as one hour allows |
| F5, F8, F11 client decomposition (Fig. 6, 12, 17) | `client_id` | not applicable, with the reason |
| F6, F7 multimodal (Fig. 7-9) | per-modality tokens | not applicable |
| F9 reasoning lengths (Fig. 13) | `reason_tokens` | not applicable |
| F10 conversations (Fig. 14-15) | conversation links | not applicable |
| generation fidelity (Fig. 19) | a client pool fitted from `client_id` | not applicable |

To run it on your own logs, set `TRACE` and `FORMAT` below (`servelab ingest --help` lists the
formats; `generic` takes a column map)."""),
    ("code", """\
from servelab.samples import sample_path

TRACE = sample_path("azure_2023/AzureLLMInferenceTrace_code.csv")
FORMAT = "azure"
SEED = 0
QUICK = False"""),
    ("code", _INGEST),
    ("md", _REPORT_MD),
    ("code", _REPORT),
    ("code", _SHOW),
    ("md", """\
## The trace

Span, rows read / stored / rejected (by reason), and which analyses its columns allow."""),
    ("code", """\
show("overview")
overview = report.section("overview")
display(overview.headline)
overview.tables["analyses"]"""),
    ("md", """\
## Findings 1 and 2: bursty arrivals and shifting rate and burstiness

ServeGen fits Exponential, Gamma and Weibull to the inter-arrival gaps (Fig. 1), compares them by KS
distance, and tracks the rate and the CV of the gaps in 5-minute windows (Fig. 2). servelab reports
the KS distance D as the effect size: at thousands of gaps every naive KS p-value is tiny."""),
    ("code", """\
show("arrivals")
report.section("arrivals").headline"""),
    ("md", """\
## Findings 3 and 4: request lengths

Input lengths against a Pareto + log-normal mixture, output lengths against an exponential, the
input-output correlation (Fig. 3), and how the distributions move between periods (Fig. 4)."""),
    ("code", """\
show("lengths")
report.section("lengths").headline"""),
    ("md", """\
## Findings 5, 8, 11: clients; Finding 10: conversations; generation fidelity

These need client ids and conversation links. On the Azure sample servelab says so instead of
guessing: each finding is *not applicable* with its reason."""),
    ("code", """\
for section_id in ("clients", "conversations", "generation"):
    show(section_id)"""),
    ("md", "## Every finding of the report, in one table"),
    ("code", """\
findings_table(report.findings)"""),
]

BURSTGPT = [
    ("md", """\
# Reproducing BurstGPT (KDD'25) with servelab

BurstGPT (Wang et al., *BurstGPT: A Real-world Workload Dataset to Optimize LLM Serving Systems*,
KDD'25) releases 10.31 M requests to Azure OpenAI GPT (ChatGPT and GPT-4, conversation and API
services) over 121 + 110 days and studies their periodicity (Fig. 2-5), the burstiness of
arrivals as Gamma parameters per window (Fig. 6), request and response lengths (Fig. 7-8, 10),
conversations (Fig. 9), failures (Fig. 11) and load forecasts (Fig. 17-18).

**On the shipped sample.** servelab ships only the first 54 rows of `BurstGPT_1.csv`
(CC-BY-4.0): enough to walk through every step, far too little for the paper's statistics, so
expect most findings to be *inconclusive* or *not applicable*, each with its reason.

**On the full trace.** Download the CSV files from the BurstGPT releases page,
https://github.com/HPMLL/BurstGPT/releases (e.g. `BurstGPT_1.csv`, `BurstGPT_2.csv`, and the
newer files with `Session ID` and `Elapsed time`), then either point `TRACE` below at one file, or
ingest them all once and report from the store:

```bash
servelab ingest BurstGPT_1.csv BurstGPT_2.csv --format burstgpt -o burstgpt_store
servelab report burstgpt_store -o burstgpt_report.html            # add --quick for a first look
```

Set the environment variable `BURSTGPT_CSV` to a downloaded file to run this notebook on it."""),
    ("code", """\
import os
from pathlib import Path

from servelab.samples import sample_path

TRACE = Path(os.environ.get("BURSTGPT_CSV") or sample_path("burstgpt/BurstGPT_1_head54.csv"))
FORMAT = "burstgpt"
SEED = 0
QUICK = TRACE.stat().st_size > 50e6  # subsample the fits on the full files"""),
    ("code", _INGEST),
    ("md", _REPORT_MD),
    ("code", _REPORT),
    ("code", _SHOW),
    ("md", "## The trace: span, rows, rejected rows, and the analyses its columns allow"),
    ("code", """\
show("overview")
report.section("overview").tables["analyses"]"""),
    ("md", """\
## Periodicity (Fig. 2-5), bursts, failures (Fig. 11) and load forecasts (Fig. 17-18)

Request rates by hour of day and day of week, conversation vs API service. The 54-row sample
spans under an hour, so no daily or weekly period can be seen; the full trace shows both cycles.
A request failed when its response has 0 tokens."""),
    ("code", """\
show("periodicity")"""),
    ("md", """\
## Burstiness (Fig. 6): Gamma fits of the arrivals, window by window"""),
    ("code", """\
show("arrivals")"""),
    ("md", """\
## Request and response lengths (Fig. 7-8, 10)

BurstGPT finds request lengths Zipf-like and responses bimodal (ChatGPT), with a weak linear
relation of response on request."""),
    ("code", """\
show("lengths")"""),
    ("md", "## Conversations (Fig. 9) and clients"),
    ("code", """\
for section_id in ("conversations", "clients"):
    show(section_id)"""),
    ("md", "## Every finding of the report, in one table"),
    ("code", """\
findings_table(report.findings)"""),
]

#: notebook file name -> cells
NOTEBOOKS = {
    "reproduce_servegen.ipynb": SERVEGEN,
    "reproduce_burstgpt.ipynb": BURSTGPT,
}


def build(cells) -> nbformat.NotebookNode:
    """A notebook (no outputs) from ``(kind, source)`` pairs."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, (kind, source) in enumerate(cells):
        cell = nbformat.v4.new_markdown_cell(source) if kind == "md" else nbformat.v4.new_code_cell(source)
        cell["id"] = f"cell-{i:02d}"  # stable ids: the same script gives the same bytes
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def write_all(folder: Path = HERE, *, check: bool = False) -> list[Path]:
    """Write (or with ``check``, compare) every notebook; returns the out-of-date ones."""
    stale = []
    for name, cells in NOTEBOOKS.items():
        path = folder / name
        text = nbformat.writes(build(cells)) + "\n"
        if path.is_file() and path.read_text() == text:
            continue
        stale.append(path)
        if not check:
            path.write_text(text)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a notebook differs from this script")
    opts = parser.parse_args(argv)
    stale = write_all(check=opts.check)
    for path in stale:
        print(("out of date: " if opts.check else "wrote ") + str(path))
    return 1 if (opts.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
