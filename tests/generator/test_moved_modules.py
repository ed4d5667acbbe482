"""The pool's modules moved from generator/ to fitting/ (issue 19); their old import paths still work."""
import importlib
import subprocess
import sys

import pytest

from servelab.generator import MOVED_MODULES


@pytest.mark.parametrize("old,new", sorted(MOVED_MODULES.items()))
def test_old_path_is_the_moved_module_itself(old, new):
    assert importlib.import_module(old) is importlib.import_module(new)


def test_old_import_forms_in_a_fresh_interpreter():
    """``from old import X`` and ``import old`` first (nothing imported at the new path before)."""
    code = ("from servelab.generator.pool import ClientPool\n"
            "import servelab.generator.servegen_format as sg\n"
            "from servelab.fitting.pool import ClientPool as New\n"
            "from servelab.generator.exceptions import PoolFormatError as E1\n"
            "from servelab.fitting.exceptions import PoolFormatError as E2\n"
            "import sys\n"
            "assert ClientPool is New and E1 is E2\n"
            "assert sg is sys.modules['servelab.fitting.servegen_format']\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_an_unknown_generator_module_still_fails():
    with pytest.raises(ModuleNotFoundError, match="servelab.generator.no_such_module"):
        importlib.import_module("servelab.generator.no_such_module")
