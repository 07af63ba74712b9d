"""The ``convscope`` command: thin wrappers that parse, call the library and write files."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from convscope.cli import analysis, attribution, demo, feature_space, inspection, synthesis

COMMAND_GROUPS = [inspection, attribution, analysis, feature_space, synthesis, demo]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="convscope", description="See inside convolutional networks.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; bad input ends with a one-line error and exit status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"convscope {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
