"""SmoothGrad (Smilkov et al. 2017, https://arxiv.org/abs/1706.03825)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from convscope.attribution.base import Attribution, batch_size_for, summed_input_gradients
from convscope.models.model import Model
from convscope.render.overlay import upsample
from convscope.targets import Target


class SmoothGrad(Attribution):
    """The gradient averaged over noisy copies: ``1/n Σ ∇S(x + N(0, σ²))``, ``[B,C,H,W]``.

    ``σ = noise · (max(x) − min(x))`` per image (the paper recommends 10–20 %; 10 % keeps
    EfficientNet-Lite's maps sharpest); ``samples``
    copies per image, ``batch_size`` copies per forward pass. The noise comes from a
    generator seeded with ``seed`` on the model's device and is the same for every
    image, so batched results equal image-by-image results and runs repeat exactly.
    A class target keeps each clean image's class for all its copies.
    """

    takes_forward_args = True

    name = "smooth_grad"
    title = "SmoothGrad"
    paper = "https://arxiv.org/abs/1706.03825"
    style = "saliency"

    def __init__(self, model: Model | nn.Module, *, samples: int = 50, noise: float = 0.1, seed: int = 0,
                 batch_size: int | None = None,
                 progress: bool | None = None) -> None:
        super().__init__(model)
        if samples < 1:
            raise ValueError(f"samples must be at least 1, got {samples}")
        if noise < 0:
            raise ValueError(f"noise is a fraction of the input range and cannot be negative, got {noise}")
        self.samples, self.noise, self.seed = samples, noise, seed
        self.batch_size, self.progress = batch_size, progress
        batch_size_for(batch_size, torch.device("cpu"))  # checks it

    def heat(self, maps: Tensor, size: tuple[int, ...]) -> Tensor:
        """``|attribution|`` summed over colour channels, as the paper shows it."""
        return upsample(maps.abs().sum(1), size)

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        sigma = self.noise * (inputs.flatten(1).amax(1) - inputs.flatten(1).amin(1))
        noise = NoiseSamples(inputs.shape[1:], inputs, self.seed)

        def noisy_copies(images: Tensor, samples: Tensor, span: range) -> Tensor:
            draws = torch.stack([noise[s] for s in span])
            return inputs[images] + draws[samples - span.start] * sigma[images].view(-1, 1, 1, 1)

        total = summed_input_gradients(self.model, inputs, target, self.samples, noisy_copies,
                                       batch_size=self.batch_size, description="SmoothGrad", progress=self.progress)
        return (total / self.samples).to(inputs.dtype)


class NoiseSamples:
    """Standard normal noise, sample ``s`` always being the ``s``-th draw of a generator seeded with ``seed``."""

    def __init__(self, shape: torch.Size, like: Tensor, seed: int) -> None:
        self.shape, self.like = shape, like
        self.generator = torch.Generator(device=like.device).manual_seed(seed)
        self.drawn: dict[int, Tensor] = {}
        self.next = 0

    def __getitem__(self, sample: int) -> Tensor:
        while self.next <= sample:
            self.drawn = {s: v for s, v in self.drawn.items() if s >= sample - 1}
            self.drawn[self.next] = torch.randn(self.shape, generator=self.generator, device=self.like.device,
                                                dtype=self.like.dtype)
            self.next += 1
        return self.drawn[sample]
