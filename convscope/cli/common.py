"""Options every command shares, and loading what they name."""

from __future__ import annotations

import argparse
from pathlib import Path

from convscope.logs import get_logger
from convscope.models import DEFAULT_MODEL, Model, load_model

log = get_logger(__name__)


def add_model_options(parser: argparse.ArgumentParser, out: str = "out", model_default: str | None = None) -> None:
    """--model, --weights, --device, --out; ``model_default`` describes a default that depends on other input."""
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"model name: {DEFAULT_MODEL} (embedded, offline), efficientnet_lite1/2, "
                             "any torchvision/timm name, or a file: net.py:FUNCTION (a factory returning an "
                             "nn.Module), a TorchScript file, a torch.export .pt2 file "
                             f"(default: {model_default or '%(default)s'})")
    parser.add_argument("--weights", type=Path, help="local state-dict file for the model (no download), or "
                                                     "'random' for a torchvision/timm architecture's random weights")
    parser.add_argument("--classes", type=Path, help="text file of class names, one per line")
    parser.add_argument("--output", choices=["auto", "classes", "binary", "multilabel", "segmentation",
                                             "regression", "detection"], metavar="KIND",
                        help="what the model's output means: auto, classes, binary, multilabel, segmentation, "
                             "regression or detection (default: auto — [B,1] binary, [B,K] classes, "
                             "[B,K,H,W] segmentation)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA when available)")
    parser.add_argument("--out", type=Path, default=Path(out), help="output folder (default: %(default)s)")


def model_from(args: argparse.Namespace) -> Model:
    return load_model(args.model, weights=args.weights, device=args.device, classes=getattr(args, "classes", None),
                      output=getattr(args, "output", None))


def slug(text: str) -> str:
    """A file-name-safe version of ``text``."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text).strip("_") or "x"


def written(path: Path) -> None:
    """Say that ``path`` was written (an information message: hidden by --quiet)."""
    log.info(f"wrote {path}")
