"""DeepLIFT-SHAP (Lundberg & Lee 2017, https://arxiv.org/abs/1705.07874): DeepLIFT averaged over many baselines."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from convscope.attribution.base import Attribution, batch_size_for, chunks, copies_target, forward, image_classes
from convscope.attribution.deep_lift import deep_lift
from convscope.attribution.forward_args import rows
from convscope.models.model import Model
from convscope.render.overlay import upsample
from convscope.targets import Target


class DeepLiftShap(Attribution):
    """``1/N Σ_j DeepLIFT(x; x'_j)``: SHAP values approximated with DeepLIFT's rescale rule, ``[B,C,H,W]``.

    ``baseline`` is a batch ``[N,C,H,W]`` of reference images at the model's input (ideally a
    sample of its training pictures; Captum's ``baselines=``); ``None`` takes ``references``
    pictures of uniform noise in [0, 1], normalised, from a generator seeded with ``seed``.
    The attributions add up to ``S(x) − mean_j S(x'_j)``. ``batch_size`` (input, baseline)
    pairs per pass; the rules and refusals are DeepLIFT's (:class:`~convscope.attribution.DeepLift`).
    """

    takes_forward_args = True

    name = "deep_lift_shap"
    title = "DeepLIFT-SHAP"
    paper = "https://arxiv.org/abs/1705.07874"
    style = "saliency"

    def __init__(self, model: Model | nn.Module, *, baseline: Tensor | None = None, references: int = 8,
                 seed: int = 0, batch_size: int | None = None, progress: bool | None = None) -> None:
        super().__init__(model)
        check_references(self.title, baseline, references)
        self.baseline, self.references, self.seed = baseline, references, seed
        self.batch_size, self.progress = batch_size, progress
        batch_size_for(batch_size, torch.device("cpu"))  # checks it

    def baselines_for(self, inputs: Tensor) -> Tensor:
        """The reference images ``[N,C,H,W]`` on the inputs' device."""
        return reference_images(self.model, self.baseline, self.references, self.seed, inputs)

    def heat(self, maps: Tensor, size: tuple[int, ...]) -> Tensor:
        """``|attribution|`` summed over colour channels."""
        return upsample(maps.abs().sum(1), size)

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        references = self.baselines_for(inputs)
        batch, count = inputs.shape[0], references.shape[0]
        classes = image_classes(target, forward(self.model, inputs, target.layers)[0])
        total = torch.zeros_like(inputs, dtype=torch.float64 if inputs.dtype == torch.float64 else torch.float32)
        pairs = torch.arange(batch * count, device=inputs.device)
        per_pass = batch_size_for(self.batch_size, inputs.device)
        for part in chunks(len(pairs), per_pass, description=self.title, progress=self.progress):
            images, chosen = pairs[part] % batch, pairs[part] // batch
            with rows(images):
                maps = deep_lift(self.model, inputs[images], references[chosen],
                                 copies_target(target, classes, images), self.title)
            total.index_add_(0, images, maps.to(total.dtype))
        return (total / count).to(inputs.dtype)


def check_references(title: str, baseline: Tensor | None, references: int) -> None:
    """A ``ValueError`` unless ``baseline`` is ``None`` or a batch ``[N,C,H,W]`` and ``references`` a positive count."""
    if baseline is not None and (not isinstance(baseline, Tensor) or baseline.dim() != 4):
        raise ValueError(f"{title}'s baseline is a batch of reference images [N,C,H,W] (or None for noise "
                         f"pictures), got {getattr(baseline, 'shape', type(baseline).__name__)}")
    if isinstance(references, bool) or not isinstance(references, int) or references < 1:
        raise ValueError(f"references must be a positive integer, got {references!r}")


def reference_images(model: Model, baseline: Tensor | None, references: int, seed: int, inputs: Tensor) -> Tensor:
    """``baseline`` ``[N,C,H,W]`` on the inputs' device, or ``references`` seeded uniform-noise pictures, normalised."""
    if baseline is not None:
        if baseline.shape[1:] != inputs.shape[1:]:
            raise ValueError(f"baseline images {tuple(baseline.shape[1:])} do not match the inputs "
                             f"{tuple(inputs.shape[1:])}")
        return baseline.to(inputs.device, inputs.dtype)
    noise = torch.rand(references, *inputs.shape[1:], generator=torch.Generator().manual_seed(seed))
    return model.preprocess.normalize(noise).to(inputs.device, inputs.dtype)
