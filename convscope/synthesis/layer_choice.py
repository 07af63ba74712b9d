"""Which layers carry texture and content: VGG's classic choice, the embedded model's, and a fallback."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from convscope.models.model import Model


@dataclass(frozen=True)
class StyleLayers:
    """The content layer, the style (texture) layers, and the activation smoothing that suits the network."""

    content: str
    style: tuple[str, ...]
    smoothing: str


# EfficientNet / MobileNet-style timm networks: the rectified stem and the rectified expansion
# layers of stages 1–3 (1/2 … 1/16 of the input). The stage outputs themselves are linear
# bottlenecks (values of ±40, no ReLU), whose Gram matrices are dominated by a few channels.
# These rectified (ReLU6) layers are not peaky, so their activations are not smoothed.
BLOCK_STYLE = ("bn1", "blocks.1.1.bn1", "blocks.2.1.bn1", "blocks.3.1.bn1")
BLOCK_CONTENT = "blocks.3"
BLOCK_SMOOTHING = "none"


def style_layers(model: Model) -> StyleLayers:
    """Layers for texture synthesis and style transfer on ``model``.

    - VGG (torchvision): relu1_1 … relu5_1 for style and relu4_2 for content (Gatys et
      al.), no smoothing;
    - EfficientNet/MobileNet-like (the layers of :data:`BLOCK_STYLE` exist): the rectified stem
      (``bn1``) and the rectified expansion layers of stages 1–3 for style, stage 3's output
      (``blocks.3``) for content, no smoothing;
    - anything else: the output of each of the first five resolution stages, content
      at the fourth, softmax smoothing (Wang et al., 2021; their outputs may be unrectified and peaky).
    """
    net = model.net
    vgg = _vgg_layers(net)
    if vgg is not None:
        return vgg
    names = dict(net.named_modules())
    if all(name in names for name in BLOCK_STYLE):
        return StyleLayers(BLOCK_CONTENT, BLOCK_STYLE, BLOCK_SMOOTHING)
    stages = _stage_outputs(model)
    if len(stages) < 2:
        raise ValueError("cannot choose texture layers for this model automatically: pass layers=[...] "
                         "(see `convscope layers`)")
    style = tuple(stages[:5])
    return StyleLayers(style[min(3, len(style) - 1)], style, "softmax")


def _vgg_layers(net: nn.Module) -> StyleLayers | None:
    features = getattr(net, "features", None)
    if type(net).__name__ != "VGG" or not isinstance(features, nn.Sequential):
        return None
    stages: list[list[str]] = [[]]
    for index, module in enumerate(features):
        if isinstance(module, nn.MaxPool2d):
            stages.append([])
        elif isinstance(module, nn.ReLU):
            stages[-1].append(f"features.{index}")
    stages = [s for s in stages if s]
    if len(stages) < 5 or len(stages[3]) < 2:
        return None
    return StyleLayers(stages[3][1], tuple(s[0] for s in stages[:5]), "none")


def _stage_outputs(model: Model) -> list[str]:
    """The last shallowest layer at each spatial resolution, in order."""
    from convscope.models.layers import describe_layers

    height, width = model.preprocess.input_size
    example = model.prepare([torch.zeros(model.preprocess.channels, height, width)])
    by_size: dict[tuple[int, int], list[tuple[int, str]]] = {}
    for info in describe_layers(model.net, example):
        shape = info.output_shape
        if shape is None or len(shape) != 3 or shape[1] >= height:
            continue
        by_size.setdefault(shape[1:], []).append((info.name.count("."), info.name))
    stages = []
    for entries in by_size.values():
        shallowest = min(depth for depth, _ in entries)
        stages.append([name for depth, name in entries if depth == shallowest][-1])
    return stages
