"""Integrated Gradients (Sundararajan, Taly & Yan 2017, https://arxiv.org/abs/1703.01365)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from convscope.attribution.base import Attribution, batch_size_for, summed_input_gradients
from convscope.models.model import Model
from convscope.render.overlay import upsample
from convscope.targets import Target


class IntegratedGradients(Attribution):
    """``(x − x') · (1/m) Σ_{k=1..m} ∇S(x' + k/m · (x − x'))``: the paper's Riemann sum, ``[B,C,H,W]``.

    ``baseline`` x' is ``'black'`` (black pixels under the model's normalisation, the
    paper's choice), ``'mean'`` (the normalisation mean, 0 at the input), a number (a
    grey level in [0, 1]) or a tensor broadcastable to the inputs. The attributions add
    up to ``S(x) − S(x')`` as ``steps`` grows (completeness); ``batch_size`` bounds the
    interpolated images per forward pass. A class target keeps the clean image's class.
    """

    takes_forward_args = True

    name = "integrated_gradients"
    title = "Integrated Gradients"
    paper = "https://arxiv.org/abs/1703.01365"
    style = "saliency"

    def __init__(self, model: Model | nn.Module, *, steps: int = 50, baseline: str | float | Tensor = "black",
                 batch_size: int | None = None,
                 progress: bool | None = None) -> None:
        super().__init__(model)
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        self.steps, self.baseline, self.batch_size, self.progress = steps, baseline, batch_size, progress
        batch_size_for(batch_size, torch.device("cpu"))  # checks it

    def baseline_for(self, inputs: Tensor) -> Tensor:
        """The baseline x' as a tensor shaped like ``inputs``."""
        return baseline_tensor(self.baseline, inputs, self.model)

    def heat(self, maps: Tensor, size: tuple[int, ...]) -> Tensor:
        """``|attribution|`` summed over colour channels, as the paper shows it."""
        return upsample(maps.abs().sum(1), size)

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        baseline = self.baseline_for(inputs)

        def path_points(images: Tensor, step: Tensor, span: range) -> Tensor:  # step k + 1 of m on the straight path
            alphas = ((step + 1).to(inputs.dtype) / self.steps).view(-1, 1, 1, 1)
            return baseline[images] + alphas * (inputs[images] - baseline[images])

        total = summed_input_gradients(self.model, inputs, target, self.steps, path_points,
                                       batch_size=self.batch_size, description="Integrated Gradients",
                                       progress=self.progress)
        return ((inputs - baseline).float() * total / self.steps).to(inputs.dtype)


def baseline_tensor(spec: str | float | Tensor, inputs: Tensor, model: Model) -> Tensor:
    """A reference image at the model's input: ``'black'``, ``'mean'``, a grey level in [0, 1] or a tensor."""
    preprocess = model.preprocess
    if isinstance(spec, Tensor):
        try:
            return spec.to(inputs.device, inputs.dtype).expand_as(inputs)
        except RuntimeError as error:
            raise ValueError(f"a baseline tensor {tuple(spec.shape)} must broadcast to the inputs "
                             f"{tuple(inputs.shape)}") from error
    if isinstance(spec, str):
        if spec == "mean":
            return torch.zeros_like(inputs)
        if spec == "black":
            spec = 0.0
        else:
            raise ValueError(f"unknown baseline {spec!r}: use 'black', 'mean', a grey level in [0, 1] or a tensor")
    if isinstance(spec, bool) or not isinstance(spec, int | float):
        raise TypeError(f"a baseline is 'black', 'mean', a number or a tensor, got {type(spec).__name__}")
    if inputs.shape[1] != len(preprocess.mean):
        raise ValueError(f"the model's preprocessing has {len(preprocess.mean)} channels but the inputs have "
                         f"{inputs.shape[1]}; give the baseline as a tensor")
    grey = torch.full_like(inputs[:1], float(spec))
    return preprocess.normalize(grey).expand_as(inputs)
