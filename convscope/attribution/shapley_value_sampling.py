"""Shapley value sampling (Castro, Gómez & Tejada 2009, https://doi.org/10.1016/j.cor.2008.04.004)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from convscope.attribution.base import batch_size_for, chunks, copies_target, fast_layout, forward, image_classes
from convscope.attribution.feature_ablation import FeatureAblation
from convscope.attribution.forward_args import rows
from convscope.attribution.integrated_gradients import baseline_tensor
from convscope.hooks import capture, inspection_mode
from convscope.models.model import Model
from convscope.targets import Target


class ShapleyValueSampling(FeatureAblation):
    """Each segment's Shapley value, estimated over ``samples`` random orders of the segments, ``[B,1,H,W]``.

    In each order the segments are put back one by one onto the baseline; a segment's value is
    the mean change of the score when it is added. Orders are drawn with a ``torch.Generator``
    seeded with ``seed`` and are the same for every image. The values of an image add up to
    ``S(x) − S(baseline)`` exactly. Segments and baseline as :class:`FeatureAblation`;
    ``batch_size`` partly restored copies per pass, across images and orders. Equal to Captum's
    ``ShapleyValueSampling`` given the same orders.
    """

    name = "shapley_value_sampling"
    title = "Shapley value sampling"
    paper = "https://doi.org/10.1016/j.cor.2008.04.004"

    def __init__(self, model: Model | nn.Module, *, feature_mask: Tensor | None = None, segments: int = 50,
                 compactness: float = 10.0, baseline: str | float | Tensor = "mean", samples: int = 25, seed: int = 0,
                 batch_size: int | None = None, progress: bool | None = None) -> None:
        super().__init__(model, feature_mask=feature_mask, segments=segments, compactness=compactness,
                         baseline=baseline, batch_size=batch_size, progress=progress)
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise ValueError(f"samples must be a positive integer, got {samples!r}")
        self.samples, self.seed = samples, seed

    def orders(self, count: int) -> Tensor:
        """``samples`` random orders of ``count`` segments, ``[samples, count]``."""
        generator = torch.Generator().manual_seed(self.seed)
        return torch.stack([torch.randperm(count, generator=generator) for _ in range(self.samples)])

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        mask = self.mask_for(inputs)
        baseline = baseline_tensor(self.baseline, inputs, self.model)
        count, batch = int(mask.max()) + 1, inputs.shape[0]
        orders = self.orders(count).to(inputs.device)
        ranks = torch.argsort(orders, 1)  # ranks[s, f]: where segment f comes in order s
        output, found = forward(self.model, inputs, target.layers)
        classes = image_classes(target, output)
        net = self.model.net
        scores = torch.empty(batch, self.samples, count + 1, device=inputs.device)
        with inspection_mode(net), capture(net, list(target.layers), detach=True) as store, torch.no_grad():
            start = forward(self.model, baseline, target.layers)
            scores[:, :, 0] = copies_target(target, classes, torch.arange(batch, device=inputs.device))(
                start[0], start[1]).float()[:, None]
            triples = torch.arange(batch * self.samples * count, device=inputs.device)
            for part in chunks(len(triples), batch_size_for(self.batch_size, inputs.device), description=self.title,
                               progress=self.progress):
                image = triples[part] % batch
                sample = (triples[part] // batch) % self.samples
                step = triples[part] // (batch * self.samples) + 1  # segments put back: 1 … count
                restored = ranks[sample][torch.arange(len(image), device=inputs.device)[:, None, None],
                                         mask[image, 0]] < step.view(-1, 1, 1)
                copies = torch.where(restored[:, None], inputs[image], baseline[image])
                with rows(image):
                    out = net(fast_layout(copies))
                scores[image, sample, step] = copies_target(target, classes, image)(out, store.activations).float()
        changes = scores[..., 1:] - scores[..., :-1]  # [B, samples, count]: the change when order[s][k] comes back
        per_segment = torch.zeros(batch, count, device=inputs.device)
        per_segment.scatter_add_(1, orders.repeat(batch, 1, 1).flatten(1), changes.flatten(1))
        per_segment /= self.samples
        return per_segment.gather(1, mask.flatten(1)).view(mask.shape).to(inputs.dtype)
