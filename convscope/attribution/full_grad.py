"""FullGrad (Srinivas & Fleuret 2019, https://arxiv.org/abs/1905.00780)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from convscope.attribution.aug_smooth import check_aug_smooth
from convscope.attribution.base import Attribution, fast_layout
from convscope.attribution.eigen import first_component
from convscope.hooks import inspection_mode, refuse_script_module
from convscope.models.model import Model
from convscope.render.overlay import upsample
from convscope.targets import Target


class FullGrad(Attribution):
    """``ψ(|x ⊙ ∇x S|) + Σ_layers Σ_c ψ(|b_c · ∂S/∂z_c|)``: the input-gradient and every bias-gradient, ``[B,1,H,W]``.

    ``z`` is the output of each ``Conv2d`` and ``BatchNorm2d`` with a bias (a batch norm's bias at
    evaluation is ``β − μ·γ/√(σ²+ε)``); ``ψ`` scales each channel's map to [0, 1] (minus its minimum,
    over its maximum + 1e-7) and resizes it bilinearly to the input, as pytorch-grad-cam does (the
    authors' code scales each layer as a whole). The sum is returned unscaled. A model with biases
    this cannot read — in linear layers on a grid (ViT, ConvNeXt), layer or group norms, a batch
    norm that normalises with the batch's statistics, or a batch norm fused with its activation
    (timm's ``BatchNormAct2d``) — is refused, naming the layer: leaving them out would be a
    different map. Linear layers on pooled features (a classifier) add a constant and are left out.

    ``eigen_smooth=True`` (pytorch-grad-cam's option) stacks the terms instead — the input term's three
    colour channels and each layer's summed map — scales each to [0, 1] at ⅛ of the input's size, takes
    the first principal component of that stack (:func:`~convscope.attribution.eigen.first_component`,
    the one Grad-CAM's ``eigen_smooth`` uses) and returns it resized to the input and scaled to [0, 1].
    """

    name = "full_grad"
    title = "FullGrad"
    paper = "https://arxiv.org/abs/1905.00780"

    def __init__(self, model: Model | nn.Module, *, eigen_smooth: bool = False, aug_smooth: bool = False) -> None:
        super().__init__(model)
        if not isinstance(eigen_smooth, bool):
            raise TypeError(f"eigen_smooth= is True or False, got {eigen_smooth!r}")
        self.eigen_smooth = eigen_smooth
        self.aug_smooth = check_aug_smooth(aug_smooth)  # see convscope.attribution.aug_smooth

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        net = self.model.net
        refuse_script_module(net)
        layers = bias_layers(net)
        outputs: list[tuple[Tensor, Tensor]] = []  # (output, bias) per call
        flat: list[str] = []

        def recorder(module: nn.Module, bias: Tensor):
            def hook(module: nn.Module, args: tuple, output: Tensor) -> Tensor:
                outputs.append((output, bias))
                return output.clone()  # an in-place operation later cannot change what is differentiated
            return hook

        def on_linear(name: str):
            def hook(module: nn.Module, args: tuple, output: Tensor) -> None:
                if output.dim() > 2:
                    flat.append(name)
            return hook

        if self.eigen_smooth and min(inputs.shape[-2:]) < 8:
            raise ValueError(f"FullGrad's eigen_smooth projects its maps at ⅛ of the input's size, which needs "
                             f"pictures of at least 8×8 px, got {tuple(inputs.shape[-2:])}; leave eigen_smooth off")
        x = fast_layout(inputs.detach()).requires_grad_(True)
        handles = []
        try:
            with inspection_mode(net, grad_params=None):
                for module, bias in layers:
                    handles.append(module.register_forward_hook(recorder(module, bias.to(inputs.device))))
                for name, module in net.named_modules():
                    if isinstance(module, nn.Linear) and module.bias is not None:
                        handles.append(module.register_forward_hook(on_linear(name)))
                output = net(x)
                for handle in handles:
                    handle.remove()
                if flat:
                    raise ValueError(f"FullGrad cannot read the bias of linear layer {flat[0]!r}, which acts on a grid "
                                     "of positions (tokens or channels-last maps); use Grad-CAM or Integrated "
                                     "Gradients on this model")
                scores = target(output, {})
                grads = torch.autograd.grad(scores.sum(), [x, *(z for z, _ in outputs)], allow_unused=True)
        finally:
            for handle in handles:
                handle.remove()
        size = tuple(inputs.shape[-2:])
        terms = [_scaled((inputs * _zero_if_none(grads[0], x)).abs().float())]  # [B,3,H,W], then [B,1,H,W] each
        for (z, bias), grad in zip(outputs, grads[1:], strict=True):
            if z.dim() != 4:
                continue
            grad = _zero_if_none(grad, z).float()
            term = (bias.float().view(1, -1, 1, 1) * grad).abs()
            # ψ per channel, then the channels' sum resized: resizing is linear, so this is the sum of the resized
            # channels (pytorch-grad-cam's order) with one map resized instead of C
            terms.append(upsample(_scaled(term).sum(1, keepdim=True), size))
        if self.eigen_smooth:
            small = upsample(_scaled(torch.cat(terms, 1)), (size[0] // 8, size[1] // 8))
            return _scaled(upsample(_scaled(first_component(small)), size)).to(inputs.dtype)
        total = terms[0].sum(1, keepdim=True)
        for term in terms[1:]:
            total = total + term
        return total.to(inputs.dtype)

    def heat(self, maps: Tensor, size: tuple[int, ...]) -> Tensor:
        """The map itself (non-negative), at ``size``."""
        return upsample(maps[:, 0], size)


def bias_layers(net: nn.Module) -> list[tuple[nn.Module, Tensor]]:
    """The ``Conv2d`` and ``BatchNorm2d`` layers with a bias, and that bias; a ``ValueError`` naming a layer whose
    bias FullGrad cannot read."""
    found: list[tuple[nn.Module, Tensor]] = []
    for name, module in net.named_modules():
        if type(module) is nn.Conv2d:
            if module.bias is not None:
                found.append((module, module.bias.detach()))
        elif type(module) is nn.BatchNorm2d:
            if not module.track_running_stats or module.running_mean is None or module.running_var is None:
                raise ValueError(f"FullGrad cannot read the bias of {name!r}: it normalises with each batch's own "
                                 "statistics; use Grad-CAM or Integrated Gradients on this model")
            if module.affine:
                scale = module.weight.detach() / torch.sqrt(module.running_var + module.eps)
                found.append((module, module.bias.detach() - module.running_mean * scale))
        elif not isinstance(module, nn.Linear) and isinstance(getattr(module, "bias", None), Tensor) and any(
                parameter is module.bias for parameter in module.parameters(recurse=False)):
            raise ValueError(f"FullGrad reads the biases of Conv2d and BatchNorm2d layers; {name!r} "
                             f"({type(module).__name__}) has one it cannot read, and leaving it out would be "
                             "another map; use Grad-CAM or Integrated Gradients on this model")
    return found


def _scaled(maps: Tensor) -> Tensor:
    """Each ``[h,w]`` map minus its minimum, over its maximum + 1e-7 (pytorch-grad-cam's ``scale_cam_image``)."""
    low = maps.flatten(2).amin(2)[..., None, None]
    shifted = maps - low
    return shifted / (shifted.flatten(2).amax(2)[..., None, None] + 1e-7)


def _zero_if_none(grad: Tensor | None, like: Tensor) -> Tensor:
    return torch.zeros_like(like) if grad is None else grad
