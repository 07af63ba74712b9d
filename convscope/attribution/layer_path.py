"""Attributions to a layer's activations (Captum's layer methods): their shared base, and the layer's gradients along
the straight path from a baseline to the input."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from convscope.attribution.base import (
    LayerPass,
    batch_size_for,
    chunks,
    copies_target,
    fast_layout,
    forward,
    image_classes,
    layer_gradient,
)
from convscope.attribution.batch_norm_folding import norms_folded
from convscope.attribution.cam_base import LayerAttribution
from convscope.attribution.forward_args import rows
from convscope.attribution.integrated_gradients import baseline_tensor
from convscope.hooks import inspection_mode
from convscope.models.model import Model
from convscope.models.tokens import Reshape
from convscope.render.overlay import upsample
from convscope.targets import Target


class ActivationAttribution(LayerAttribution):
    """A method that attributes the target to one layer's activations: maps ``[B,C,h,w]`` on the layer's grid.

    The layer is chosen as the CAMs choose theirs (``layer=None``: the last spatial layer, ``bn2``
    on EfficientNet-Lite); patch tokens and channels-last maps are put on their grid, so the maps
    are Captum's layer attributions in the CAMs' layout. They are shown as the CAMs are: the positive
    part of their sum over channels, upsampled bilinearly (Captum's ``LayerAttribution.interpolate``
    with ``'bilinear'``).
    """

    takes_forward_args = True

    def heat(self, maps: Tensor, size: tuple[int, ...]) -> Tensor:
        """The positive part of the channel sum, at ``size``."""
        return upsample(maps.sum(1).clamp_min(0), size)


class PathAttribution(ActivationAttribution):
    """A layer method that integrates along the straight path from ``baseline`` to the input in ``steps`` steps
    (baseline as :class:`~convscope.attribution.IntegratedGradients`'); ``batch_size`` path points per pass."""

    def __init__(self, model: Model | nn.Module, layer: str | nn.Module | None = None, *, steps: int = 50,
                 baseline: str | float | Tensor = "black", batch_size: int | None = None,
                 progress: bool | None = None, reshape: Reshape | None = None) -> None:
        super().__init__(model, layer, reshape=reshape)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        self.steps, self.baseline, self.batch_size, self.progress = steps, baseline, batch_size, progress
        batch_size_for(batch_size, torch.device("cpu"))  # checks it

    def passes(self, inputs: Tensor, target: Target, alphas: Tensor) -> Iterator[tuple[Tensor, Tensor, LayerPass]]:
        """``(images, steps, pass)`` for the points ``x' + alphas[k] · (x − x')`` of every image, step by step.

        Points of all images are interleaved (row ``j`` is step ``j // B`` of image ``j % B``), so the
        steps come in increasing order; a class target keeps each clean image's class.
        """
        baseline = baseline_tensor(self.baseline, inputs, self.model)
        layer = self.layer(inputs)
        batch = inputs.shape[0]
        classes = image_classes(target, forward(self.model, inputs, target.layers)[0])
        alphas = alphas.to(inputs.device, inputs.dtype)
        points_of = torch.arange(len(alphas) * batch, device=inputs.device)
        net = self.model.net
        with inspection_mode(net, grad_params=None), \
                norms_folded(net, fast_layout(inputs[:1]), [layer, *target.layers]):  # the same function, faster
            for part in chunks(len(points_of), batch_size_for(self.batch_size, inputs.device),
                               description=self.title, progress=self.progress):
                images, step = points_of[part] % batch, points_of[part] // batch
                points = baseline[images] + alphas[step].view(-1, 1, 1, 1) * (inputs[images] - baseline[images])
                with rows(images):
                    found = layer_gradient(self.model, points, copies_target(target, classes, images), layer)
                yield images, step, found
