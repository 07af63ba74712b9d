"""Regenerate the pictures of docs/models.md: one figure per architecture family (CPU: a few minutes).

    python docs/models_figures.py [--only NAME ...]

Every family but EfficientNet-Lite0 has random weights (seed 0): its maps show how the method meets the
architecture (grid, resolution, artefacts), not what a trained network looks at. The batch-norm statistics of a
random network are measured on eight bundled photos first: with their initial values (mean 0, variance 1) the
activations of a random EfficientNet-B0 shrink about tenfold per stage and every map is flat.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn

import convscope as cs

OUT = Path(__file__).parent / "models"
METHODS = ["saliency", "guided_backprop", "cam", "grad_cam", "layer_cam", "occlusion"]
OPTIONS = {"occlusion": {"size": 56, "stride": 28, "batch_size": 16}}
FAMILIES = {  # file name: (model name, whether the weights are trained)
    "lite0": ("efficientnet_lite0", True),
    "resnet50": ("resnet50", False),
    "vgg11": ("vgg11", False),
    "densenet121": ("densenet121", False),
    "efficientnet_b0": ("efficientnet_b0", False),
    "mobilenetv3": ("mobilenetv3_large_100", False),
    "regnety": ("regnety_002", False),
    "convnext_tiny": ("convnext_tiny", False),
    "vit_small": ("vit_small_patch16_224", False),
    "swin_tiny": ("swin_tiny_patch4_window7_224", False),
}


CALIBRATION = ("coffee", "astronaut", "rocket", "china", "flower", "brick", "coins", "retina")


def calibrate(model: cs.Model) -> None:
    """Batch-norm running statistics measured on the calibration photos (one pass in training mode)."""
    norms = [m for m in model.net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a plain average over the pass
    model.net.train()
    with torch.no_grad():
        model.net(model.prepare([cs.load_image(f"sample:{name}") for name in CALIBRATION]))
    model.net.eval()


def figure(name: str, trained: bool) -> cs.Picture:
    torch.manual_seed(0)
    model = cs.load_model(name, weights=None if trained else "random", device="cpu")
    if not trained:
        calibrate(model)
    picture = cs.load_image("sample:chelsea")
    return cs.compare(model, [picture], methods=METHODS, options=OPTIONS, names=["chelsea"], tile_size=150)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(FAMILIES), help="only these figures")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for key in args.only or FAMILIES:
        start = time.perf_counter()
        name, trained = FAMILIES[key]
        path = figure(name, trained).save(OUT / f"{key}.png")
        print(f"{path} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
