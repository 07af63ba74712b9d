"""Options every command shares, and loading what they name."""

from __future__ import annotations

import argparse
from pathlib import Path

from convscope.models import DEFAULT_MODEL, Model, load_model


def add_model_options(parser: argparse.ArgumentParser, out: str = "out") -> None:
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"model name: {DEFAULT_MODEL} (embedded, offline), efficientnet_lite1/2, "
                             "or any torchvision/timm name (default: %(default)s)")
    parser.add_argument("--weights", type=Path, help="local state-dict file for the model (no download)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA when available)")
    parser.add_argument("--out", type=Path, default=Path(out), help="output folder (default: %(default)s)")


def model_from(args: argparse.Namespace) -> Model:
    return load_model(args.model, weights=args.weights, device=args.device)


def slug(text: str) -> str:
    """A file-name-safe version of ``text``."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text).strip("_") or "x"


def written(path: Path) -> None:
    print(f"wrote {path}")
