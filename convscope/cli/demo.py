"""convscope demo: the gallery of every technique on the embedded model."""

from __future__ import annotations

import argparse
from pathlib import Path

from convscope.models import DEFAULT_MODEL


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("demo", help="write the demo gallery (PNGs + index.html)")
    p.add_argument("--out", type=Path, default=Path("gallery"), help="output folder (default: %(default)s)")
    p.add_argument("--model", default=DEFAULT_MODEL, help="default: %(default)s")
    p.add_argument("--device", default=None, help="cpu, cuda, … (default: CUDA when available)")
    p.add_argument("--only", nargs="+", metavar="WORD",
                   help="only the sections whose title contains WORD (e.g. --only weights attribution)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from convscope.demo import run_demo

    run_demo(args.out, model=args.model, device=args.device, only=args.only)
