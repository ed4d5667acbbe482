"""uv installs the interop tools with this machine's pip configuration (interop_tools/uv_pip.py),
from fully pinned requirements (torch: the CPU build on disk, never PyPI's CUDA build)."""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.interop

_TOOLS = Path(__file__).resolve().parents[2] / "benchmarks" / "interop_tools"
_spec = importlib.util.spec_from_file_location("servelab_interop_uv_pip", _TOOLS / "uv_pip.py")
uv_pip = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = uv_pip
_spec.loader.exec_module(uv_pip)


def test_pip_config_listing_is_read_with_the_last_scope_winning():
    listing = ("global.index-url='https://a.example/simple'\n"
               "global.find-links='/first'\n"
               "global.extra-index-url='file:///x/simple file:///y/simple'\n"
               ":env:.find-links='/second /third'\n"
               "global.constraint='/etc/c.txt'\n"
               "not a config line\n")
    assert uv_pip.pip_config(listing) == {"index-url": ["https://a.example/simple"], "find-links": ["/second", "/third"],
                                          "extra-index-url": ["file:///x/simple", "file:///y/simple"],
                                          "constraint": ["/etc/c.txt"]}


def test_uv_options_map_every_key_and_leave_out_missing_places(tmp_path):
    wheels, index, cons = tmp_path / "wheels", tmp_path / "simple", tmp_path / "c.txt"
    wheels.mkdir()
    index.mkdir()
    cons.write_text("torch<=2.14.1\n")
    config = {"index-url": ["https://pypi.example/simple"],
              "extra-index-url": [f"file://{index}", f"file://{tmp_path / 'absent'}"],
              "find-links": [str(wheels), str(tmp_path / "nowhere")], "constraint": [str(cons)]}
    assert uv_pip.uv_options(config) == [
        "--default-index", "https://pypi.example/simple", "--extra-index-url", f"file://{index}",
        "--index-strategy", "unsafe-best-match", "--find-links", str(wheels), "--constraints", str(cons)]
    # no extra index: uv's own index strategy stays
    assert uv_pip.uv_options({"find-links": [str(wheels)]}) == ["--find-links", str(wheels)]
    assert uv_pip.uv_options({}) == []


@pytest.mark.parametrize("tool", ["aiperf", "guidellm"])
def test_tool_requirements_are_fully_pinned(tool):
    lines = [x.split("#")[0].strip() for x in (_TOOLS / f"requirements-{tool}.txt").read_text().splitlines()]
    reqs = [x for x in lines if x]
    assert len(reqs) > 50 and all(re.fullmatch(r"[A-Za-z0-9._-]+(\[[\w,-]+\])?==[\w.+!-]+", r) for r in reqs), \
        [r for r in reqs if "==" not in r]
    pins = dict(r.split("==") for r in reqs)
    assert pins[tool] == {"aiperf": "0.13.0", "guidellm": "0.8.1"}[tool]
    # guidellm needs torch: the CPU wheel on disk; no CUDA packages come along
    assert pins.get("torch") == ("2.13.0+cpu" if tool == "guidellm" else None)
    assert not [p for p in pins if p.startswith(("nvidia-", "triton")) and p != "nvidia-ml-py"]  # nvidia-ml-py: pure Python
