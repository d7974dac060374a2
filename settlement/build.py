"""Which build of the core is running: compiled by mypyc, or pure Python (the default).

`TONNE_COMPILE=1 pip install .` compiles the modules setup.py lists (README, "The compiled
core"); a plain install compiles nothing. Both builds give the same events, digests and
state hashes, and read each other's snapshots.
"""

from __future__ import annotations

import importlib.machinery

import engine.book

_EXTENSIONS = tuple(importlib.machinery.EXTENSION_SUFFIXES)


def compiled() -> bool:
    """Whether the core runs compiled: engine/book.py, its hottest module, is an extension
    module (a compiled build compiles it with the rest, or not at all)."""
    return (engine.book.__file__ or "").endswith(_EXTENSIONS)
