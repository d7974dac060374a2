"""Build hook for the optional compiled core (README, "The compiled core").

A plain `pip install .` builds the pure-Python package, the default. With TONNE_COMPILE=1
(and mypy, which carries mypyc, installed: `--no-build-isolation`), the modules below are
compiled by mypyc into extension modules, which Python imports ahead of the sources beside
them. Everything else stays Python, and so does any module that defines a class mypyc would
build wrongly: it drops the keywords of a class statement it does not compile natively
(`msgspec.Struct`'s `frozen`, `tag`, `array_like`, `gc`), and it cannot compile a subclass of
`tuple`. `_check` refuses a listed module that grows such a class.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

from setuptools import setup

COMPILED = [
    "engine/basket.py",
    "engine/book.py",
    "engine/exchange.py",
    "engine/lifecycle.py",
    "settlement/basket.py",
    "settlement/catalogue.py",
    "settlement/catalogue_commands.py",
    "settlement/core.py",
    "settlement/dvp.py",
    "settlement/fees.py",
    "settlement/ledger.py",
    "settlement/limits.py",
    "settlement/replay.py",
    "settlement/retirement.py",
    "settlement/serials.py",
    "settlement/snapshot.py",
    "settlement/state.py",
]


def _check(path: str) -> None:
    """Refuse a module whose classes mypyc would compile wrongly (see the docstring)."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"), path)
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        bases = [ast.unparse(b) for b in node.bases]
        if node.keywords or any(b.startswith(("msgspec.", "tuple")) for b in bases):
            raise SystemExit(
                f"{path}: class {node.name}({', '.join(bases)}) cannot be compiled faithfully; "
                "move it to a module that stays Python (see setup.py)"
            )


if os.environ.get("TONNE_COMPILE") == "1":
    from mypyc.build import mypycify

    for module in COMPILED:
        _check(module)
    # mypy checked these modules already (.ci/run); the compiler's own check of a subset of the
    # project sees a few `type: ignore`s as unused, which is no reason to refuse the build
    setup(ext_modules=mypycify(["--no-warn-unused-ignores", *COMPILED], opt_level="3"))
else:
    setup()
