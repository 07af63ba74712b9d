"""GradientSHAP (Lundberg & Lee 2017, https://arxiv.org/abs/1705.07874; Captum's expected-gradients estimator)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from convscope.attribution.base import (
    Attribution,
    batch_size_for,
    chunks,
    copies_target,
    forward,
    image_classes,
    input_gradient,
)
from convscope.attribution.deep_lift_shap import check_references, reference_images
from convscope.attribution.forward_args import rows
from convscope.attribution.smooth_grad import NoiseSamples
from convscope.models.model import Model
from convscope.render.overlay import upsample
from convscope.targets import Target


class GradientShap(Attribution):
    """``1/n Σ_s (x̃_s − x'_{j_s}) ⊙ ∇S(x'_{j_s} + α_s (x̃_s − x'_{j_s}))``: SHAP values by expected gradients.

    For each of ``samples`` draws: a reference image ``x'_j`` picked at random from ``baseline``
    (a batch ``[N,C,H,W]``, Captum's ``baselines=``; ``None``: ``references`` seeded noise pictures),
    a point ``α ~ U(0, 1)`` on the straight path and the input with Gaussian noise of standard
    deviation ``sigma`` (Captum's ``stdevs``, default 0). Draws come from generators seeded with
    ``seed`` and are the same for every image. In expectation the attributions add up to
    ``S(x) − E S(x')``. ``batch_size`` points per pass. ``[B,C,H,W]``.
    """

    takes_forward_args = True

    name = "gradient_shap"
    title = "GradientSHAP"
    paper = "https://arxiv.org/abs/1705.07874"
    style = "saliency"

    def __init__(self, model: Model | nn.Module, *, baseline: Tensor | None = None, samples: int = 16,
                 sigma: float = 0.0, references: int = 8, seed: int = 0, batch_size: int | None = None,
                 progress: bool | None = None) -> None:
        super().__init__(model)
        check_references(self.title, baseline, references)
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise ValueError(f"samples must be a positive integer, got {samples!r}")
        if sigma < 0:
            raise ValueError(f"sigma is a standard deviation and cannot be negative, got {sigma}")
        self.baseline, self.samples, self.sigma, self.references, self.seed = baseline, samples, sigma, references, seed
        self.batch_size, self.progress = batch_size, progress
        batch_size_for(batch_size, torch.device("cpu"))  # checks it

    def draws(self, count: int) -> tuple[Tensor, Tensor]:
        """Each sample's reference index (of ``count``) and its point ``α`` on the path."""
        generator = torch.Generator().manual_seed(self.seed)
        return torch.randint(count, (self.samples,), generator=generator), torch.rand(self.samples, generator=generator)

    def heat(self, maps: Tensor, size: tuple[int, ...]) -> Tensor:
        """``|attribution|`` summed over colour channels."""
        return upsample(maps.abs().sum(1), size)

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        references = reference_images(self.model, self.baseline, self.references, self.seed, inputs)
        chosen, alphas = (d.to(inputs.device) for d in self.draws(references.shape[0]))
        noise = NoiseSamples(inputs.shape[1:], inputs, self.seed)
        batch = inputs.shape[0]
        classes = image_classes(target, forward(self.model, inputs, target.layers)[0])
        total = torch.zeros_like(inputs, dtype=torch.float64 if inputs.dtype == torch.float64 else torch.float32)
        pairs = torch.arange(self.samples * batch, device=inputs.device)
        for part in chunks(len(pairs), batch_size_for(self.batch_size, inputs.device), description=self.title,
                           progress=self.progress):
            images, sample = pairs[part] % batch, pairs[part] // batch
            noisy = inputs[images]
            if self.sigma > 0:
                span = range(part.start // batch, (part.stop - 1) // batch + 1)
                noisy = noisy + self.sigma * torch.stack([noise[s] for s in span])[sample - span.start]
            base = references[chosen[sample]]
            step = noisy - base
            alpha = alphas[sample].to(inputs.dtype).view(-1, 1, 1, 1)
            points = alpha * noisy + (1 - alpha) * base  # as Captum writes it (the same rounding)
            with rows(images):
                grads = input_gradient(self.model, points, copies_target(target, classes, images))
            total.index_add_(0, images, (step * grads).to(total.dtype))
        return (total / self.samples).to(inputs.dtype)
