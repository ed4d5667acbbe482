"""The report of the shipped Azure sample, for real: its structure, its images, and a headless browser.

The report is built once per module (the default trace of ``build_report()``, the Azure LLM
inference trace 2023 code service: timestamps and token counts, no client ids).
"""
from __future__ import annotations

import base64
import csv
import io
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from servelab.reports.builder import build_report
from servelab.samples import sample_path

#: sections whose core analyses need only timestamps and token counts: on the Azure sample each must
#: check at least one finding (verdict other than "not applicable")
APPLICABLE_ON_AZURE = ("arrivals", "lengths")
#: sections that need client ids / conversations: every finding must be not applicable, with a reason
NOT_APPLICABLE_ON_AZURE = ("clients",)

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")


class _Page(HTMLParser):
    """Collects every start tag with its attributes."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


@pytest.fixture(scope="module")
def sample_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    result = build_report(output=out, progress=False)
    page = _Page()
    page.feed(out.read_text(encoding="utf-8"))
    document = json.loads(out.with_suffix(".json").read_text())
    return result, page.tags, document


def test_sample_report_counts_every_request(sample_report):
    result, _, document = sample_report
    with open(sample_path(), newline="") as fh:
        n_rows = sum(1 for _ in csv.reader(fh)) - 1  # independent count: csv rows minus header
    assert n_rows == 8819
    assert document["summary"]["trace"]["requests"] == n_rows
    assert 55 * 60 < document["summary"]["trace"]["span_s"] < 58 * 60  # "one hour" sample, about 57 min
    assert document["summary"]["trace"]["clients"].startswith("n/a")


def test_every_section_ran_and_no_section_failed(sample_report):
    result, _, document = sample_report
    assert dict(result.errors) == {}, "sections failed on the shipped sample:\n" + "\n".join(result.errors.values())
    ids = [s["id"] for s in document["sections"]]
    assert ids[0] == "overview"
    for section in APPLICABLE_ON_AZURE + NOT_APPLICABLE_ON_AZURE:
        assert section in ids, f"section {section!r} missing from the report (notes: {document['notes']})"


def test_applicable_findings_present_and_the_rest_say_why(sample_report):
    _, _, document = sample_report
    by_section: dict[str, list] = {}
    for finding in document["findings"]:
        by_section.setdefault(finding["section"], []).append(finding)
    for section in APPLICABLE_ON_AZURE:
        checked = [f["id"] for f in by_section.get(section, []) if f["verdict"] != "not applicable"]
        assert checked, f"section {section!r} checked no finding on a trace with timestamps and token counts"
    for section in NOT_APPLICABLE_ON_AZURE:
        findings = by_section.get(section, [])
        assert findings, f"section {section!r} lists no finding"
        assert all(f["verdict"] == "not applicable" for f in findings), [f["id"] for f in findings]
    not_applicable = [f for f in document["findings"] if f["verdict"] == "not applicable"]
    assert not_applicable, "a trace without client ids must leave some findings not applicable"
    for finding in not_applicable:
        assert finding["reason"].strip(), f"{finding['id']} is not applicable without a reason"
    for finding in document["findings"]:
        if finding["verdict"] in ("holds", "does not hold"):
            assert finding["measured"], f"{finding['id']} has a verdict but no measured numbers"


def test_json_findings_match_the_html(sample_report):
    _, tags, document = sample_report
    html_findings = [(a["data-finding-id"], a["data-verdict"]) for _, a in tags if "data-finding-id" in a]
    json_findings = [(f["id"], f["verdict"]) for f in document["findings"]]
    assert html_findings == json_findings
    html_figures = {a["data-figure-id"] for _, a in tags if "data-figure-id" in a}
    json_figures = {fig["id"] for s in document["sections"] for fig in s["figures"]}
    assert html_figures == json_figures
    assert html_figures, "the sample report embeds no figure"
    # a finding that names a drawn figure links to it
    links = {a["href"] for t, a in tags if t == "a" and "href" in a}
    for finding in document["findings"]:
        for fig in finding["figures"]:
            if fig in html_figures:
                assert any(link.startswith("#fig-") and fig.replace(".", "-") in link for link in links), fig


# findings decided by a calibrated test on the shipped sample (issue 13): their tests are in
# report.json and in a table under the finding on the page
TESTED_ON_AZURE = ("servegen.F1", "servegen.F1.bursty", "servegen.F1.single_process", "servegen.F2", "burstgpt.gamma_shift", "servegen.F3.input", "servegen.F3.output",
                   "servegen.F3.correlation", "servegen.F4", "burstgpt.zipf_requests", "burstgpt.bimodal_responses",
                   "burstgpt.linear_relation")


def test_verdicts_carry_their_tests_in_json_and_on_the_page(sample_report):
    _, tags, document = sample_report
    found = {f["id"]: f for f in document["findings"]}
    n_tables = sum(1 for t, a in tags if t == "table" and a.get("class") == "tests")
    with_tests = [f for f in document["findings"] if f.get("tests")]
    assert n_tables == len(with_tests) > 0
    for fid in TESTED_ON_AZURE:
        tests = found[fid].get("tests")
        assert tests, f"{fid} has a verdict but no test in report.json"
        for t in tests:
            for key in ("null", "statistic", "p_value", "level", "practical_threshold", "power",
                        "minimum_detectable_effect", "decision"):
                assert key in t, (fid, key)
            assert t["decision"] in ("holds", "does not hold", "inconclusive")
        # the reason says the decision in words: the null and the p-value or why the test could not run
        assert "null = " in found[fid]["reason"] or "fit standard" in found[fid]["reason"], fid
    # a single-test finding's verdict is its test's decision
    for fid in ("servegen.F3.input", "servegen.F3.output", "burstgpt.linear_relation"):
        assert found[fid]["verdict"] == found[fid]["tests"][0]["decision"]


def test_every_embedded_image_decodes_at_its_stated_size(sample_report):
    from PIL import Image

    _, tags, _ = sample_report
    images = [a for t, a in tags if t == "img"]
    assert images
    for attrs in images:
        src = attrs["src"]
        assert src.startswith("data:image/png;base64,"), src[:40]
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1], validate=True))) as img:
            img.load()
            assert img.format == "PNG"
            # rendered at 192 dpi, shown at 96 dpi x 1.25: 1.6 image pixels per CSS pixel
            assert abs(img.width / 1.6 - int(attrs["width"])) <= 1 and abs(img.height / 1.6 - int(attrs["height"])) <= 1
            assert img.width >= 400, "figure too small to read"


def test_page_loads_nothing_external(sample_report):
    _, tags, _ = sample_report
    for tag, attrs in tags:
        for key in ("src", "href"):
            if key in attrs:
                assert attrs[key].startswith(("data:", "#")), f"<{tag} {key}={attrs[key][:60]!r}> is external"
        assert tag not in ("script", "iframe", "object", "embed")


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("Chromium is not installed and could not be installed here (.ci/run installs Debian's "
                "`chromium` with apt-get when it runs as root); the browser checks of the report are skipped")


def _run_chromium(chromium, tmp_path, *args):
    profile = tmp_path / "profile"
    cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args]
    env = {**os.environ, "HOME": str(tmp_path)}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, check=False)


def test_report_in_headless_chromium_has_no_console_messages_and_renders(sample_report, tmp_path):
    from PIL import Image, ImageStat

    chromium = _chromium()
    result, _, document = sample_report
    url = result.html_path.resolve().as_uri()
    shot = tmp_path / "report.png"
    run = _run_chromium(chromium, tmp_path, "--window-size=1280,2400", f"--screenshot={shot}", url)
    assert run.returncode == 0, run.stderr[-2000:]
    console = [line for line in run.stderr.splitlines() if "CONSOLE" in line]
    assert console == [], "console messages:\n" + "\n".join(console)
    with Image.open(shot) as img:
        img.load()
        assert img.size == (1280, 2400)
        stat = ImageStat.Stat(img.convert("L"))
        assert stat.stddev[0] > 10, "the screenshot is blank"
    dom = _run_chromium(chromium, tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert [line for line in dom.stderr.splitlines() if "CONSOLE" in line] == []
    # the browser's DOM holds every finding and figure of the JSON
    for finding in document["findings"]:
        assert f'data-finding-id="{finding["id"]}"' in dom.stdout
    assert dom.stdout.count("<img ") == sum(len(s["figures"]) for s in document["sections"])
