"""The reproduction notebooks: in sync with their build script, and run top to bottom on the samples."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "reports" / "notebooks"


def _builder():
    spec = importlib.util.spec_from_file_location("build_notebooks", NOTEBOOKS / "build_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_notebooks_equal_what_the_script_writes(tmp_path):
    builder = _builder()
    assert builder.write_all(tmp_path) == [tmp_path / name for name in builder.NOTEBOOKS]  # all written fresh
    for name in builder.NOTEBOOKS:
        assert (NOTEBOOKS / name).read_text() == (tmp_path / name).read_text(), (
            f"{name} is out of date: run `python reports/notebooks/build_notebooks.py`")
    assert builder.write_all(tmp_path, check=True) == []


def _outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            for key in ("text/plain", "text/markdown", "text/html"):
                parts.append(str(out.get("data", {}).get(key, "")))
    return "\n".join(parts)


@pytest.mark.slow  # a kernel, ingest and one whole report per notebook: ~20-40 s each on a shared machine
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # the Azure sample: 8,819 requests; client findings not applicable
        ("reproduce_servegen.ipynb", ("8819", "not applicable", "holds")),
        # the 54-row BurstGPT head
        ("reproduce_burstgpt.ipynb", ("54 requests",)),
    ],
)
def test_notebook_runs_top_to_bottom(name, expected, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.delenv("BURSTGPT_CSV", raising=False)
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    text = _outputs_text(nb)
    for snippet in expected:
        assert snippet in text, f"{name}: {snippet!r} not in the outputs"
    images = [o for c in nb.cells for o in c.get("outputs", []) if "data:image/png;base64," in
              str(o.get("data", {}).get("text/markdown", ""))]
    assert images, f"{name} shows no figure"
