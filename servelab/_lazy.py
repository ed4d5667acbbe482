"""Lazy package exports: a package's public names are imported on first access (PEP 562).

A package ``__init__`` lists its exports as ordinary ``from <module> import <names>`` statements
under ``if TYPE_CHECKING:`` (so type checkers and readers see them) and calls :func:`lazy_exports`,
which reads those statements from the package's own source once and returns the module's
``__getattr__`` and ``__dir__``. ``import servelab.fitting`` then costs nothing until a name is
used, and a short ``servelab generate`` does not import scipy, statsmodels or DuckDB for names it
never touches. This module imports nothing heavy.
"""
from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["lazy_exports"]


def _type_checking_imports(tree: ast.Module) -> dict[str, tuple[str, str | None]]:
    """``name -> (module, attribute or None for a sub-module)`` of the ``if TYPE_CHECKING:`` block."""
    found: dict[str, tuple[str, str | None]] = {}
    for node in tree.body:
        if not (isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
            continue
        for stmt in node.body:
            if isinstance(stmt, ast.ImportFrom) and stmt.module:
                for alias in stmt.names:
                    found[alias.asname or alias.name] = (stmt.module, alias.name)
    return found


def lazy_exports(package: str, init_file: str, *, eager: tuple[str, ...] = ()
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` of ``package`` whose exports are the ``TYPE_CHECKING`` imports of ``init_file``.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    init_file : str
        Its ``__file__`` (the ``__init__.py`` whose source lists the exports).
    eager : tuple of str
        Sub-modules to import before any name is resolved (modules that register something on
        import, e.g. families in a registry).

    A name that is also the name of a sub-module (a function ``generate`` in a module
    ``generate.py``) is imported at once: otherwise importing the sub-module would set the
    package's attribute to the module.
    """
    table: dict[str, tuple[str, str | None]] | None = None

    def names() -> dict[str, tuple[str, str | None]]:
        nonlocal table
        if table is None:
            table = _type_checking_imports(ast.parse(Path(init_file).read_text(encoding="utf-8")))
        return table

    def __getattr__(name: str) -> Any:  # noqa: N807 - the module protocol's name
        entry = names().get(name)
        if entry is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        for module in eager:
            importlib.import_module(module)
        source, attribute = entry
        mod = importlib.import_module(source)
        try:
            value = getattr(mod, attribute)
        except AttributeError:  # ``from package import submodule``
            value = importlib.import_module(f"{source}.{attribute}")
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:  # noqa: N807
        return sorted({*vars(sys.modules[package]), *names()})

    # a name that is also a sub-module's (``generate`` in ``servelab.generator``) would be shadowed
    # by the module once anything imports it (the import system sets the attribute): resolved now
    folder = Path(init_file).parent
    for name, (source, attribute) in names().items():
        if ((folder / f"{name}.py").is_file() or (folder / name / "__init__.py").is_file()) and \
                source != package:
            value = getattr(importlib.import_module(source), attribute)
            setattr(sys.modules[package], name, value)
    return __getattr__, __dir__
