"""Score-CAM (Wang et al. 2020, https://arxiv.org/abs/1910.01279)."""

from __future__ import annotations

import torch
from torch import Tensor

from convscope.attribution.base import batch_size_for, chunks, copies_target, fast_layout, forward, image_classes
from convscope.attribution.cam_base import ChannelPassCAM
from convscope.hooks import capture, inspection_mode
from convscope.render.overlay import upsample
from convscope.targets import Target


class ScoreCAM(ChannelPassCAM):
    """``Σ_k w_k A_k`` where ``w_k`` is the target's score on the input masked by feature map ``k``.

    Each map ``A_k`` is upsampled (bilinear) to the input size, scaled to [0, 1] and
    multiplied with the input; ``w_k`` is the class's softmax probability on that masked
    input (a class target; for channels, neurons and callables their value). As in the
    authors' implementation, maps that are constant (all zero after a ReLU, which is
    most of EfficientNet-Lite's last layer for any one image) are skipped: their
    normalised mask is undefined and they add nothing but a constant. No gradient is
    used. ``batch_size`` masked inputs per forward pass bound the memory. Raw map ``[B,1,h,w]``.
    """

    name = "score_cam"
    title = "Score-CAM"
    paper = "https://arxiv.org/abs/1910.01279"

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        layer = self.layer(inputs)
        output, found = forward(self.model, inputs, [layer])
        (maps,) = self.feature_maps(inputs, found[layer].float())
        classes = image_classes(target, output)
        flat = maps.flatten(2)
        low, high = flat.amin(2), flat.amax(2)
        images, channels = (high > low).nonzero(as_tuple=True)  # the non-constant maps, image by image
        weights = torch.zeros(maps.shape[:2], device=maps.device)
        size = tuple(inputs.shape[-2:])
        with inspection_mode(self.model.net), capture(self.model.net, list(target.layers), detach=True) as store:
            per_pass = batch_size_for(self.batch_size, inputs.device)
            for part in chunks(len(images), per_pass, description="Score-CAM", progress=self.progress):
                image, channel = images[part], channels[part]
                masks = upsample(maps[image, channel], size)
                masks = masks - masks.flatten(1).amin(1).view(-1, 1, 1)
                masks = masks / masks.flatten(1).amax(1).view(-1, 1, 1)
                masked = inputs[image] * masks[:, None].to(inputs.dtype)
                with torch.no_grad():
                    out = self.model.net(fast_layout(masked))
                    scores = copies_target(target, classes, image, probability=True)(out, store.activations)
                weights[image, channel] = scores.float()
        return self.summed(weights[:, :, None, None] * maps)
