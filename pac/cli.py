"""The `pac` command: a thin face over data -> models -> harness -> launch -> analysis.

Each subcommand lives in its own module under `pac/commands/` and exposes
`add_arguments(parser)` and `run(args) -> int`. Modules are imported lazily so that
`pac --help` stays fast and a subcommand only pays for the libraries it uses.

User-facing errors are raised as `ValueError` (bad config, bad data) or `OSError`
(missing/unreadable files) with a one-line message; the CLI prints that line and exits
with status 2. `pac --debug ...` (or PAC_DEBUG=1) shows the full traceback instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import re
import sys
from typing import Sequence

# Order is the data flow a user follows.
SUBCOMMANDS: dict[str, str] = {
    "data": "generate offline datasets from dm_control tasks, or report their statistics",
    "models": "list PAC size presets with exact parameter and FLOP counts",
    "train": "train one PAC / BC model on an offline dataset (one grid cell)",
    "grid": "launch a grid of model sizes x FLOP budgets",
    "fit": "fit scaling laws (isoFLOP, power-law frontiers, parametric L(N, D))",
    "allocate": "compute-optimal N and D for FLOP budgets, with intervals, from a fit",
    "figures": "draw the paper's figures and report from fitted results",
}


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors are one line (the usage block is what
    `--help` is for): `pac train: error: argument --steps: invalid int value: 'abc' (see
    pac train --help)`, exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _command_module(name: str):
    return importlib.import_module(f"pac.commands.{name}")


def build_parser(load: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """Builds the parser; only the subcommands in `load` import their modules."""
    parser = _Parser(
        prog="pac",
        description="Scaling-law harness for offline actor-critic RL (Perceiver-Actor-Critic).",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(SUBCOMMANDS) + "}", parser_class=_Parser)
    for name, help_text in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if load is None or name in load:
            _command_module(name).add_arguments(p)
    return parser


_NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$", re.IGNORECASE)


def _join_negative_values(argv: list[str]) -> list[str]:
    """`--flop-budget -1e9` as `--flop-budget=-1e9`: argparse takes '-1e9' for an option
    (its negative-number rule misses exponents) and says "expected one argument"; joined,
    the value reaches the config's own check, which names what is wrong with it."""
    joined: list[str] = []
    for token in argv:
        if joined and joined[-1].startswith("--") and "=" not in joined[-1] and _NEGATIVE_NUMBER.match(token):
            joined[-1] = f"{joined[-1]}={token}"
        else:
            joined.append(token)
    return joined


def _fields_as_flags(message: str, command: str) -> str:
    """A config error names the field (`flop_budget=...`); the user typed the flag."""
    if command not in ("train", "data"):
        return message
    from harness.config import TrainConfig
    from harness.data.generate import GeneratorConfig

    names = {f.name for cls in (TrainConfig, GeneratorConfig) for f in dataclasses.fields(cls)}
    return re.sub(r"(?<![-\w])([a-z][a-z0-9_]*)=",
                  lambda m: f"--{m.group(1).replace('_', '-')}=" if m.group(1) in names else m.group(0), message)


def main(argv: Sequence[str] | None = None) -> int:
    argv = _join_negative_values(list(sys.argv[1:] if argv is None else argv))
    from harness.run import setup_process

    setup_process()  # compilation cache, Ctrl-C: what every job's process needs
    chosen = [a for a in argv if a in SUBCOMMANDS][:1]
    parser = build_parser(load=chosen)
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # usage errors (one line, see _Parser) and --help
        return int(stop.code or 0)
    if args.command is None:
        parser.print_help()
        return 0
    debug = args.debug or os.environ.get("PAC_DEBUG") == "1"
    try:
        return int(_command_module(args.command).run(args) or 0)
    except (ValueError, OSError, ImportError) as err:  # ImportError: an optional extra not installed
        if debug:
            raise
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"pac {args.command}: error: {_fields_as_flags(message, args.command)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pac {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
