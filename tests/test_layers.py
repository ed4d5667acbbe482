"""The layer rule of docs/architecture.md, checked on the installed package's source.

servelab is layered, and every import points down (or sideways inside one layer)::

    analysis  <-  fitting  <-  generator  <-  reports  <-  commands (servelab.cli, servelab.commands)
                                  figures  <-/

The rule, precisely (``servelab`` itself and ``servelab.samples``, which hold only the version and
the shipped sample paths, may be imported by everyone):

1. ``analysis`` imports nothing from ``fitting``, ``generator``, ``figures``, ``reports`` or the
   commands.
2. ``fitting`` imports nothing from ``generator``, ``figures``, ``reports`` or the commands.
3. ``generator`` imports nothing from ``figures``, ``reports`` or the commands.
4. ``figures`` imports nothing from ``reports`` or the commands, and from ``analysis``,
   ``fitting`` and ``generator`` only the modules that define types and constants and compute
   nothing: :data:`FIGURE_TYPE_MODULES` (the ``exceptions`` modules and the canonical schema).
   Figures draw the tables and results they are given; they never call an analysis, a fit or a
   generator, and never import a package ``__init__`` (which pulls every computing module).
5. Nothing but ``figures`` and ``reports`` imports matplotlib or seaborn.
6. Nothing in the library (every package above but the commands) imports ``servelab.commands``
   or ``servelab.cli``.

What counts as an import: every ``import`` / ``from ... import`` statement anywhere in a module,
including inside functions and ``if TYPE_CHECKING:`` blocks (a lazy import is still a
dependency), relative imports resolved against the module's package, ``from package import
name`` counted as the submodule ``package.name`` when that submodule exists, and any string
constant naming a servelab module (``"servelab.commands.arrivals:arrival_step"``, the string
registries resolved with importlib later).

Known violations on the day this test was written are listed in :data:`ALLOWED`, each with its
reason; an entry that no longer matches a violation fails :func:`test_allowlist_has_no_stale_entries`,
so that it is deleted once the code is fixed.
"""
from __future__ import annotations

import ast
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

#: layer of each top-level package under ``servelab``; ``root`` is ``servelab`` and ``servelab.samples``
PACKAGE_LAYER = {
    "analysis": "analysis",
    "fitting": "fitting",
    "generator": "generator",
    "figures": "figures",
    "reports": "reports",
    "commands": "commands",
    "cli": "commands",
    "__main__": "commands",
    "samples": "root",
}

#: for each layer, the layers it must not import (rules 1-4 and 6)
FORBIDDEN = {
    "root": {"analysis", "fitting", "generator", "figures", "reports", "commands"},
    "analysis": {"fitting", "generator", "figures", "reports", "commands"},
    "fitting": {"generator", "figures", "reports", "commands"},
    "generator": {"figures", "reports", "commands"},
    "figures": {"reports", "commands"},
    "reports": {"commands"},
    "commands": set(),
}

#: the only modules of analysis / fitting / generator that figures may import (rule 4)
FIGURE_TYPE_MODULES = frozenset({
    "servelab.analysis.exceptions",
    "servelab.analysis.schema",
    "servelab.fitting.exceptions",
    "servelab.generator.exceptions",
})

#: third-party plotting packages only figures and reports may import (rule 5)
PLOTTING = frozenset({"matplotlib", "seaborn"})
PLOTTING_LAYERS = frozenset({"figures", "reports"})

#: (importing module, imported module) -> why it is tolerated today. Delete an entry when its
#: violation is gone (test_allowlist_has_no_stale_entries says when).
ALLOWED: dict[tuple[str, str], str] = {}

_STRING_MODULE = re.compile(r"^servelab(?:\.[A-Za-z_]\w*)+(?::[A-Za-z_]\w*)?$")


@dataclass(frozen=True)
class Import:
    """One dependency of a module: the imported module's dotted name and where it is named."""

    target: str
    lineno: int
    kind: str  # "import", "from", "lazy import", "lazy from", "string"


@dataclass(frozen=True)
class Violation:
    """One import breaking the layer rule."""

    module: str
    target: str
    lineno: int
    rule: str

    def __str__(self) -> str:
        return f"{self.module}:{self.lineno} imports {self.target} ({self.rule})"


def _source_roots() -> dict[str, Path]:
    """The installed source folder of ``servelab`` and of each top-level sub-package."""
    roots = {}
    for name in ("servelab", "servelab.analysis", "servelab.fitting", "servelab.generator",
                 "servelab.figures", "servelab.reports"):
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError(f"cannot locate the source folder of {name!r}; is servelab installed?")
        roots[name] = Path(list(spec.submodule_search_locations)[0])
    return roots


def library_modules() -> dict[str, tuple[Path, bool]]:
    """Every module of the installed package: dotted name -> (file, is a package ``__init__``)."""
    modules: dict[str, tuple[Path, bool]] = {}
    for package, root in _source_roots().items():
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(root).with_suffix("").parts
            if package == "servelab" and rel[0] in ("analysis", "fitting", "generator", "figures", "reports"):
                continue  # never the case for the installed layout, but a source checkout may nest them
            if any(part.startswith(".") or part == "__pycache__" for part in rel):
                continue
            is_package = rel[-1] == "__init__"
            parts = rel[:-1] if is_package else rel
            modules[".".join((package, *parts))] = (path, is_package)
    return modules


def _resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str:
    package = module.split(".") if is_package else module.split(".")[:-1]
    if level > 1:
        package = package[: len(package) - (level - 1)]
    return ".".join([*package, name] if name else package)


def find_imports(source: str, *, module: str, is_package: bool = False,
                 known_modules: frozenset[str] | set[str] = frozenset()) -> list[Import]:
    """Every module ``source`` depends on (see the module docstring for what counts).

    Parameters
    ----------
    source
        Python source text.
    module
        Dotted name of the module the source belongs to (resolves relative imports).
    is_package
        Whether the source is a package ``__init__``.
    known_modules
        Dotted names of existing modules: ``from pkg import name`` counts as ``pkg.name`` when that
        is one of them, and a string ``"pkg.mod.attr"`` is cut to its longest known module.
    """
    tree = ast.parse(source)
    lazy_lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lazy_lines.update(n.lineno for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom)))
    found: list[Import] = []
    for node in ast.walk(tree):
        lazy = "lazy " if getattr(node, "lineno", None) in lazy_lines else ""
        if isinstance(node, ast.Import):
            found.extend(Import(alias.name, node.lineno, lazy + "import") for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = (_resolve_relative(module, is_package, node.level, node.module) if node.level
                    else node.module or "")
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append(Import(sub if sub in known_modules else base, node.lineno, lazy + "from"))
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and _STRING_MODULE.match(node.value)):
            dotted = node.value.split(":")[0]
            parts = dotted.split(".")
            target = next((".".join(parts[:k]) for k in range(len(parts), 0, -1)
                           if ".".join(parts[:k]) in known_modules), dotted)
            found.append(Import(target, node.lineno, "string"))
    return found


def layer_of(module: str) -> str | None:
    """The layer of a dotted servelab module name, or None for a module outside servelab."""
    parts = module.split(".")
    if parts[0] != "servelab":
        return None
    if len(parts) == 1:
        return "root"
    return PACKAGE_LAYER.get(parts[1], "root")


def check_import(module: str, target: str) -> str | None:
    """The rule ``module`` breaks by importing ``target``, or None when the import is allowed."""
    layer = layer_of(module)
    top = target.split(".")[0]
    if top in PLOTTING:
        return None if layer in PLOTTING_LAYERS else f"only figures and reports import {top}"
    target_layer = layer_of(target)
    if layer is None or target_layer is None or target_layer == layer:
        return None
    if target_layer in FORBIDDEN[layer]:
        if target_layer == "commands":
            return "nothing in the library imports the CLI"
        return f"{layer} never imports {target_layer}"
    if (layer == "figures" and target_layer in ("analysis", "fitting", "generator")
            and target not in FIGURE_TYPE_MODULES):
        return "figures import only type/constant modules of analysis, fitting and generator"
    return None


def violations(source: str, *, module: str, is_package: bool = False,
               known_modules: frozenset[str] | set[str] = frozenset()) -> list[Violation]:
    """Every import in ``source`` that breaks the layer rule (the allowlist not applied)."""
    out = []
    for imp in find_imports(source, module=module, is_package=is_package, known_modules=known_modules):
        rule = check_import(module, imp.target)
        if rule is not None:
            out.append(Violation(module, imp.target, imp.lineno, rule))
    return out


@pytest.fixture(scope="module")
def all_violations() -> list[Violation]:
    modules = library_modules()
    known = frozenset(modules)
    out = []
    for name, (path, is_package) in modules.items():
        out.extend(violations(path.read_text(encoding="utf-8"), module=name, is_package=is_package,
                              known_modules=known))
    return out


def test_the_checker_sees_every_installed_package():
    modules = library_modules()
    for package in ("servelab.cli", "servelab.commands", "servelab.analysis", "servelab.analysis.ingest",
                    "servelab.fitting.gof", "servelab.fitting.pool", "servelab.figures.style",
                    "servelab.reports.builder"):
        assert package in modules, f"{package} not found among {len(modules)} modules"
    assert len(modules) > 80


def test_library_respects_the_layer_rule(all_violations):
    broken = [v for v in all_violations if (v.module, v.target) not in ALLOWED]
    assert not broken, "layer rule broken (see tests/test_layers.py docstring):\n" + "\n".join(map(str, broken))


def test_allowlist_has_no_stale_entries(all_violations):
    seen = {(v.module, v.target) for v in all_violations}
    stale = [pair for pair in ALLOWED if pair not in seen]
    assert not stale, f"these allowlist entries are fixed now; delete them from ALLOWED: {stale}"


# --- the checker itself, on synthetic sources of known verdict -------------------------------

KNOWN = frozenset({
    "servelab", "servelab.analysis", "servelab.analysis.store", "servelab.analysis.exceptions",
    "servelab.analysis.lengths", "servelab.fitting", "servelab.fitting.gof", "servelab.commands",
    "servelab.commands.arrivals", "servelab.reports.sections", "servelab.reports.sections.periodicity",
    "servelab.figures.style", "servelab.generator.pool",
})


def _rules(source, module, is_package=False):
    return [(v.target, v.lineno, v.rule) for v in violations(source, module=module, is_package=is_package,
                                                            known_modules=KNOWN)]


def test_checker_reports_a_lazy_matplotlib_import_in_analysis():
    src = "import numpy as np\n\ndef f():\n    import matplotlib.pyplot as plt\n    return plt\n"
    assert _rules(src, "servelab.analysis.lengths") == [
        ("matplotlib.pyplot", 4, "only figures and reports import matplotlib")]
    # the same source is fine in figures
    assert _rules(src, "servelab.figures.style") == []


def test_checker_reports_the_library_importing_the_cli():
    src = "def build():\n    from servelab.commands.arrivals import StepResult\n    return StepResult\n"
    assert _rules(src, "servelab.reports.sections.periodicity") == [
        ("servelab.commands.arrivals", 2, "nothing in the library imports the CLI")]
    # a string registry naming a CLI module counts too
    assert _rules('STEPS = {"x": "servelab.commands.arrivals:step"}\n', "servelab.fitting.gof") == [
        ("servelab.commands.arrivals", 1, "nothing in the library imports the CLI")]
    # the CLI may import anything
    assert _rules(src, "servelab.commands.arrivals") == []


def test_checker_resolves_relative_and_from_package_imports():
    # ``from . import store`` in the analysis package's __init__ is servelab.analysis.store
    assert _rules("from . import store\n", "servelab.analysis", is_package=True) == []
    # relative import reaching into fitting from analysis
    assert _rules("from ..fitting import gof\n", "servelab.analysis.lengths") == [
        ("servelab.fitting.gof", 1, "analysis never imports fitting")]
    # ``from servelab.fitting import gof`` is the module servelab.fitting.gof
    assert _rules("from servelab.fitting import gof\n", "servelab.generator.pool") == []
    assert _rules("from servelab.generator import pool\n", "servelab.fitting.gof") == [
        ("servelab.generator.pool", 1, "fitting never imports generator")]


def test_checker_lets_figures_import_only_types_and_constants():
    assert _rules("from servelab.analysis.exceptions import NotApplicableError\n",
                  "servelab.figures.style") == []
    assert _rules("from servelab.analysis.store import TraceStore\n", "servelab.figures.style") == [
        ("servelab.analysis.store", 1, "figures import only type/constant modules of analysis, fitting and generator")]
    # the package __init__ pulls every computing module
    assert _rules("from servelab.analysis import Finding\n", "servelab.figures.style") == [
        ("servelab.analysis", 1, "figures import only type/constant modules of analysis, fitting and generator")]
    # root modules are allowed everywhere
    assert _rules("from servelab import __version__\n", "servelab.figures.style") == []


def test_tests_never_import_the_tests_folder_as_a_package():
    """``from tests.x import y`` only resolves from the repository root; the suite collects anywhere."""
    here = Path(__file__).resolve().parent
    offenders = []
    for path in sorted(here.rglob("*.py")):
        for imp in find_imports(path.read_text(encoding="utf-8"), module="tests_" + path.stem):
            if imp.target == "tests" or imp.target.startswith("tests."):
                offenders.append(f"{path.relative_to(here)}:{imp.lineno} imports {imp.target}")
    assert not offenders, "\n".join(offenders)
