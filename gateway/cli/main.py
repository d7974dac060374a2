"""The `tonne` command line: one entry point, one subcommand per operator or user task.

Each subcommand lives in the module that does the work and exposes `main(argv) -> int`;
this file only routes, imports lazily (so `tonne bench` does not load the network stack), and
turns a missing piece into a clear message instead of a traceback.
"""

from __future__ import annotations

import importlib
import os
import sys

# subcommand -> (module, what it does)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("gateway.cli.demo", "a seeded demo market with simulated participants"),
    "bench": ("bench.engine_bench", "the standard engine workload against the reference engine"),
    "serve": ("gateway.cli.serve", "run the exchange (TCP + WebSocket) on the embedded store"),
    "load": ("gateway.cli.load", "simulated participants against a running server"),
    "log": ("gateway.cli.logcmd", "operators: `log tail [-f]` and `log verify` of the log"),
    "recover": ("gateway.cli.recover", "rebuild state from a data folder and report, not serving"),
    "journal": ("gateway.cli.journalcmd", "operators: `journal archive` and `journal migrate`"),
    "accounts": ("gateway.cli.accounts", "provision accounts and API keys"),
    "custody": ("gateway.cli.custody", "operators: cash and registry serials in and out"),
    "screen": ("gateway.cli.screen", "buyers: screen the catalogue (a server or a data folder)"),
    "operator": ("gateway.cli.operator", "operators: contracts, labels, suspensions, reversals"),
    "order": ("gateway.cli.order", "place one order and see its fills and serials"),
    "buy": ("gateway.cli.buy", "buyers: a screened basket across books, optionally retired"),
    "certificate": ("gateway.cli.certificate", "anyone: `certificate verify` offline; `export`"),
    "status": ("gateway.cli.status", "a replicated exchange: roles, lease, stream, lag per node"),
}


def usage() -> str:
    lines = ["usage: tonne COMMAND [ARGS]", "", "commands:"]
    lines += [f"  {name:<9} {doc}" for name, (_, doc) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"tonne: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name = COMMANDS[name][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        print(f"tonne: `{name}` is not built yet (see README, 'Not done yet')", file=sys.stderr)
        return 2
    try:
        result: int = module.main(rest)
        sys.stdout.flush()  # inside: a reader gone by now is the same case
    except BrokenPipeError:
        # The reader went away (`tonne log tail | head`): stop quietly, as Unix tools do.
        # Point stdout at /dev/null so that the interpreter's final flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0
    return result


if __name__ == "__main__":
    sys.exit(main())
