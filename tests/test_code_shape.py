"""The code's shape, as issue 12 set it: no function in the pure core (engine/, settlement/)
longer than 70 lines, and nothing below the command line reads the clock directly."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNCTION_LINES_MAX = 70


def _functions(package: str):  # type: ignore[no-untyped-def]
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                yield path.relative_to(ROOT), node.name, node.end_lineno - node.lineno + 1


def test_no_function_in_the_core_is_longer_than_70_lines():
    long = [
        f"{path}:{name} ({n} lines)"
        for package in ("engine", "screening", "settlement")
        for path, name, n in _functions(package)
        if n > FUNCTION_LINES_MAX
    ]
    assert not long, long


CLOCK_READS = re.compile(r"\btime\.(time|time_ns|monotonic|monotonic_ns|perf_counter)\(")


def test_nothing_below_the_command_line_reads_the_clock():
    """engine/ and settlement/ never; gateway/ only in clock.py (SystemClock) and in the
    command line (gateway/cli/), which passes the clock down."""
    reads = []
    for package in ("engine", "screening", "settlement", "gateway"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel == "gateway/server/clock.py" or rel.startswith("gateway/cli/"):
                continue
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if CLOCK_READS.search(line.split("#")[0]):
                    reads.append(f"{rel}:{n}: {line.strip()}")
    assert not reads, reads
