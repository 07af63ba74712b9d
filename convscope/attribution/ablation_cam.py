"""Ablation-CAM (Desai & Ramaswamy, WACV 2020, https://doi.org/10.1109/WACV45572.2020.9093360)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from convscope.attribution.base import batch_size_for, chunks, copies_target, fast_layout, image_classes
from convscope.attribution.cam_base import ChannelPassCAM
from convscope.attribution.layers import layer_grid
from convscope.hooks import capture, inspection_mode
from convscope.targets import Target


class AblationCAM(ChannelPassCAM):
    """``Σ_k w_k A_k`` with ``w_k = (S − S_k) / S``: how much of the score ``S`` is lost when feature map ``k``
    is set to zero (``S_k``), ``[B,1,h,w]``; no gradient.

    One forward pass per (image, channel), ``batch_size`` of them at a time across images; a
    map that is already all zero (most maps after a ReLU) is skipped, its weight being exactly 0.
    On patch tokens only the grid positions are zeroed (a class token is left as it is).
    pytorch-grad-cam zeroes too where the layer's minimum is 0, but on layers with negative
    values it writes ``min − 1e7`` instead (and, image after image, ever lower values); convscope
    zeroes, as the paper. The layer must run once per forward pass and have a grid that can
    be written back (not one made by ``reshape=``).
    """

    name = "ablation_cam"
    title = "Ablation-CAM"
    paper = "https://doi.org/10.1109/WACV45572.2020.9093360"

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        layer = self.layer(inputs)
        module = self.model.layer(layer)
        clean = _LayerOutput(module)
        net = self.model.net
        with inspection_mode(net), capture(net, list(target.layers), detach=True) as store, torch.no_grad():
            with clean:
                output = net(fast_layout(inputs))
            scores = target(output, store.activations)
        raw = clean.output
        if clean.calls != 1 or raw is None:  # raw is set by the one call
            raise ValueError(f"layer {layer!r} runs {clean.calls} times in one forward pass; Ablation-CAM replaces "
                             "its output, which would change every call: choose a layer that runs once (its block)")
        grid = layer_grid(self.model, layer, raw, inputs)
        if grid.layout == "custom":
            raise ValueError("Ablation-CAM writes zeros into the layer's output and cannot undo a reshape=; "
                             "choose a layer with feature maps, channels-last maps or patch tokens")
        (maps,) = self.feature_maps(inputs, raw)
        if bool((scores == 0).any()):
            raise ValueError("Ablation-CAM divides by the target's score, which is 0 for image "
                             f"{int((scores == 0).nonzero()[0])}; explain another target or use Score-CAM")
        classes = image_classes(target, output)
        flat = maps.flatten(2)
        images, channels = (flat != 0).any(2).nonzero(as_tuple=True)  # an all-zero map: nothing to ablate
        ablated = scores[:, None].expand(maps.shape[:2]).clone()
        with inspection_mode(net), capture(net, list(target.layers), detach=True) as store, torch.no_grad():
            per_pass = batch_size_for(self.batch_size, inputs.device)
            for part in chunks(len(images), per_pass, description="Ablation-CAM", progress=self.progress):
                image, channel = images[part], channels[part]
                replacement = raw[image].clone()
                view = grid.maps(replacement)
                rows = torch.arange(len(image), device=view.device)
                view[rows, channel] = 0
                if bool(grid.maps(replacement)[rows, channel].any()):
                    raise ValueError(f"layer {layer!r}'s grid is a copy of its output: Ablation-CAM cannot write "
                                     "zeros into it; choose a layer with feature maps or channels-last maps")
                with _Replaced(module, replacement):
                    out = net(fast_layout(inputs[image]))
                lost = copies_target(target, classes, image)(out, store.activations)
                ablated[image, channel] = lost.to(ablated.dtype)
        weights = (scores[:, None] - ablated) / scores[:, None]
        return self.summed(weights[:, :, None, None] * maps.to(weights.dtype))


class _LayerOutput:
    """Records a module's (last) output and how often it ran, while in a ``with`` block."""

    def __init__(self, module: nn.Module) -> None:
        self.module, self.calls = module, 0
        self.output: Tensor | None = None

    def __enter__(self) -> _LayerOutput:
        self.handle = self.module.register_forward_hook(self._hook)
        return self

    def _hook(self, module: nn.Module, args: object, output: object) -> None:
        if not isinstance(output, Tensor):
            raise ValueError(f"Ablation-CAM needs a layer whose output is a tensor, not a {type(output).__name__}")
        self.calls += 1
        self.output = output.detach().clone()

    def __exit__(self, *exc: object) -> None:
        self.handle.remove()


class _Replaced:
    """The module's output replaced by ``replacement`` while in a ``with`` block."""

    def __init__(self, module: nn.Module, replacement: Tensor) -> None:
        self.module, self.replacement = module, replacement

    def __enter__(self) -> None:
        self.handle = self.module.register_forward_hook(lambda module, args, output: self.replacement)

    def __exit__(self, *exc: object) -> None:
        self.handle.remove()
