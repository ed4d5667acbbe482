"""Optional dependencies: ``fitter`` (extra ``servelab[explore]``) is imported only by the
exploration scan, and its absence gives an error that names the extra."""
import subprocess
import sys

import numpy as np
import pytest

from servelab.fitting.mixtures import explore_scipy_families


def test_explore_without_fitter_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "fitter", None)  # makes ``import fitter`` raise ImportError
    with pytest.raises(ImportError, match=r"needs the optional package 'fitter'; install it with: "
                                          r"pip install 'servelab\[explore\]'") as info:
        explore_scipy_families(np.arange(1.0, 100.0))
    assert isinstance(info.value.__cause__, ImportError)


def test_the_library_and_the_cli_import_without_fitter():
    """A fresh interpreter with ``fitter`` blocked imports every package and the CLI (fitter is lazy)."""
    code = ("import sys; sys.modules['fitter'] = None\n"
            "import servelab.analysis, servelab.fitting, servelab.generator, servelab.figures, servelab.reports\n"
            "import servelab.fitting.mixtures, servelab.cli, servelab.commands.lengths\n"
            "print('fitter' in sys.modules and sys.modules['fitter'] is not None)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
