"""The ``convscope`` command: thin wrappers that parse, call the library and write files."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import torch

from convscope import __version__
from convscope.cli import (
    analysis,
    argument_checks,
    atlas,
    attribution,
    conventions,
    defences,
    demo,
    explore,
    feature_space,
    inspection,
    relevance,
    synthesis,
)
from convscope.cli.errors import OneLineParser, check_arguments, nothing_left_on_error, report, user_code_errors
from convscope.logs import configure

COMMAND_GROUPS = [inspection, attribution, relevance, analysis, defences, feature_space, synthesis, atlas, demo,
                  explore]


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="convscope", description="See inside convolutional networks.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(commands)
    conventions.apply(parser)
    argument_checks.apply(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; bad input ends with a one-line error and exit status 2."""
    parser = build_parser()
    configure()  # messages while parsing (an old flag spelling) show too
    args = parser.parse_args(argv)
    configure(args.verbosity)
    try:
        check_arguments(args)
        with nothing_left_on_error(args), user_code_errors():
            args.run(args)
    except (ValueError, TypeError, OSError, MemoryError, torch.OutOfMemoryError) as error:
        return report(args.command, error)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
