"""Class activation mapping (Zhou et al. 2016, https://arxiv.org/abs/1512.04150)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from convscope.attribution.aug_smooth import check_aug_smooth
from convscope.attribution.base import Attribution, image_classes
from convscope.attribution.input_checks import check_map_size
from convscope.hooks import capture, inspection_mode
from convscope.models.layers import get_layer, layer_name
from convscope.models.model import Model
from convscope.render.overlay import upsample
from convscope.targets import Target, check_finite_output

NEEDS = ("CAM needs a network that ends in global average pooling followed by one linear layer "
         "(Zhou et al. 2016)")
INSTEAD = "Grad-CAM generalises CAM to any network: use method 'grad_cam'"


@dataclass(frozen=True)
class Head:
    """The pooled layer and the linear classifier that reads its average."""

    layer: str
    classifier: nn.Linear


class CAM(Attribution):
    """``M_c(x, y) = Σ_k w_k^c f_k(x, y)``: the classifier's weights for class ``c`` applied at every position.

    ``f_k`` are the feature maps that global average pooling reduces and ``w^c`` the row
    of the final linear layer for class ``c`` (its bias is left out, as in the paper).
    The network must really end in GAP + linear: this is checked on every call (the
    classifier's input must equal the feature maps' mean, its output the model's
    output), and anything else gets a ``ValueError`` naming the reason. ``layer`` and
    ``classifier`` are found when not given. Raw map ``[B,1,h,w]``; class targets only.
    """

    name = "cam"
    title = "CAM"
    paper = "https://arxiv.org/abs/1512.04150"

    def __init__(self, model: Model | nn.Module, layer: str | nn.Module | None = None,
                 classifier: str | nn.Module | None = None, *, aug_smooth: bool = False) -> None:
        super().__init__(model)
        self.aug_smooth = check_aug_smooth(aug_smooth)  # see convscope.attribution.aug_smooth
        self._layer = None if layer is None else layer_name(self.model.net, layer)
        found = None if classifier is None else get_layer(self.model.net, classifier)
        if found is not None and not isinstance(found, nn.Linear):
            raise ValueError(f"{NEEDS}; the classifier given is a {type(found).__name__}, not an nn.Linear. {INSTEAD}")
        self._classifier = found
        self._head: Head | None = None

    def head(self, inputs: Tensor) -> Head:
        """The pooled layer and the classifier (found on the first image the first time)."""
        if self._head is None:
            self._head = find_head(self.model, inputs[:1], self._layer, self._classifier)
        return self._head

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        head = self.head(inputs)
        output, maps, features = _pass(self.model, inputs, head)
        _check_head(self.model, head, output, maps, features)
        check_map_size(self.model, head.layer, inputs, self.title)
        classes = image_classes(target, output)
        if classes is None:
            raise ValueError(f"CAM explains class scores; the target {type(target).__name__} is not a class. "
                             "Give a class index or name, or use Grad-CAM for channels and neurons")
        weights = head.classifier.weight.detach()[classes].to(maps.dtype)
        return torch.einsum("bk,bkhw->bhw", weights, maps)[:, None]

    def heat(self, maps: Tensor, size: tuple[int, ...]) -> Tensor:
        """Non-negative importance ``[B,H,W]`` at ``size``: the ReLU of the map, upsampled bilinearly."""
        return upsample(maps[:, 0].clamp_min(0), size)


def _pass(model: Model, inputs: Tensor, head: Head) -> tuple[Tensor, Tensor, Tensor]:
    seen: list[Tensor] = []
    handle = head.classifier.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    try:
        with inspection_mode(model.net), capture(model.net, [head.layer], detach=True) as store, torch.no_grad():
            output = model.net(inputs)
    finally:
        handle.remove()
    check_finite_output(output, model.name)
    if not seen:
        raise ValueError(f"{NEEDS}; the classifier was not used in the forward pass. {INSTEAD}")
    return output, store.activation(head.layer), seen[-1]


def _check_head(model: Model, head: Head, output: Tensor, maps: Tensor, features: Tensor) -> None:
    if maps.dim() != 4:
        raise ValueError(f"{NEEDS}; layer {head.layer!r} gives {tuple(maps.shape)}, not feature maps [B,C,h,w]. "
                         f"{INSTEAD}")
    pooled = maps.float().mean((2, 3))
    if features.dim() != 2 or features.shape != pooled.shape or not _close(pooled, features.float()):
        raise ValueError(f"{NEEDS}; in {model.name} the classifier does not read the average of layer "
                         f"{head.layer!r}'s feature maps. {INSTEAD}")
    with torch.no_grad():
        linear = torch.nn.functional.linear(features, head.classifier.weight, head.classifier.bias)
    if output.shape != linear.shape or not _close(linear, output):
        raise ValueError(f"{NEEDS}; in {model.name} the output is not the linear layer's output. {INSTEAD}")


def _close(a: Tensor, b: Tensor) -> bool:
    scale = b.abs().amax().clamp_min(1.0)
    return bool(torch.allclose(a.float(), b.float(), rtol=1e-3, atol=1e-4 * float(scale)))


def find_head(model: Model, example: Tensor, layer: str | None, classifier: nn.Linear | None) -> Head:
    """The linear layer that produces the output and the last feature maps whose mean it reads."""
    names = {module: name for name, module in model.net.named_modules() if name}
    linear_calls: list[tuple[nn.Linear, Tensor, Tensor]] = []
    pooled: list[tuple[str, Tensor]] = []

    def on_linear(module: nn.Linear, args: tuple, output: Tensor) -> None:
        linear_calls.append((module, args[0].detach(), output.detach()))

    def on_any(module: nn.Module, args: tuple, output: object) -> None:
        if isinstance(output, Tensor) and output.dim() == 4 and min(output.shape[-2:]) > 1:
            pooled.append((names[module], output.detach().float().mean((2, 3))))

    handles = [m.register_forward_hook(on_linear) for m in names if isinstance(m, nn.Linear)]
    handles += [m.register_forward_hook(on_any) for m in names]
    try:
        with inspection_mode(model.net), torch.no_grad():
            output = model.net(example)
    finally:
        for handle in handles:
            handle.remove()
    calls = [c for c in linear_calls if classifier is None or c[0] is classifier]
    final = [c for c in calls if c[2].shape == output.shape and torch.equal(c[2], output)]
    if not final:
        raise ValueError(f"{NEEDS}; {model.name}'s output does not come straight from an nn.Linear. {INSTEAD}")
    linear, features, _ = final[-1]
    if layer is not None:
        return Head(layer, linear)
    for name, mean in reversed(pooled):
        if features.dim() == 2 and mean.shape == features.shape and _close(mean, features):
            return Head(name, linear)
    raise ValueError(f"{NEEDS}; in {model.name} no layer's feature maps, averaged over positions, are what the "
                     f"classifier reads (a flatten or further layers come between). {INSTEAD}")
