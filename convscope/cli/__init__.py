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
from convscope.logs import configure, get_logger, timed

log = get_logger(__name__)

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
        log_settings(args)
        with nothing_left_on_error(args), user_code_errors(), timed(log, f"convscope {args.command}: in all"):
            args.run(args)
    except (ValueError, TypeError, OSError, MemoryError, torch.OutOfMemoryError) as error:
        return report(args.command, error)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


def log_settings(args: argparse.Namespace) -> None:
    """``--verbose``: every setting the command runs with (defaults included) and what torch will run on."""
    hidden = ("run", "command", "verbosity")
    shown = {k: "…" if "token" in k and v else v for k, v in sorted(vars(args).items())  # a secret stays one
             if k not in hidden and not k.startswith("_")}
    log.debug("convscope %s %s: %s", __version__, args.command, ", ".join(f"{k}={v}" for k, v in shown.items()))
    cuda = torch.cuda.is_available()
    log.debug("torch %s, %d CPU threads, CUDA %s", torch.__version__, torch.get_num_threads(),
              f"{torch.cuda.device_count()} device(s): {torch.cuda.get_device_name(0)}" if cuda else "not available")
