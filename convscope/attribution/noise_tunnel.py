"""NoiseTunnel: any method averaged over noisy copies — SmoothGrad (Smilkov et al. 2017,
https://arxiv.org/abs/1706.03825), SmoothGrad² and VarGrad (Adebayo et al. 2018, https://arxiv.org/abs/1810.03307)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from convscope.attribution.base import (
    Attribution,
    batch_size_for,
    chunks,
    copies_target,
    forward,
    image_classes,
)
from convscope.attribution.smooth_grad import NoiseSamples
from convscope.models.model import Model
from convscope.targets import Target

KINDS = {"smoothgrad": "SmoothGrad", "smoothgrad_sq": "SmoothGrad²", "vargrad": "VarGrad"}


class NoiseTunnel(Attribution):
    """The method ``around`` on ``samples`` noisy copies ``x + N(0, σ²)`` of each image, combined as ``kind`` says.

    ``kind`` (Captum's ``nt_type``): ``'smoothgrad'`` the mean map, ``'smoothgrad_sq'`` the mean
    of the squared maps, ``'vargrad'`` their variance (``E[m²] − E[m]²``). ``around`` is a name
    (made on the same model, with ``layer`` for the CAMs and ``around_options`` for its constructor) or a
    method object. ``σ`` is ``sigma``
    (Captum's ``stdevs``, in units of the normalised input) or else ``noise`` times each image's
    range (max − min). The noise is standard normal from a ``torch.Generator`` seeded with
    ``seed``, sample ``s`` being the same draw for every image, so runs repeat exactly and batched
    results equal image-by-image results. ``batch_size`` noisy copies go to the method at a
    time; a class target keeps each clean image's class for all its copies.
    """

    name = "noise_tunnel"
    title = "NoiseTunnel"
    paper = "https://arxiv.org/abs/1810.03307"
    style = "saliency"

    def __init__(self, model: Model | nn.Module, around: str | Attribution = "saliency",
                 layer: str | nn.Module | None = None, *, kind: str = "smoothgrad", samples: int = 16,
                 noise: float = 0.1, sigma: float | None = None, seed: int = 0, batch_size: int | None = None,
                 progress: bool | None = None, around_options: Mapping[str, object] | None = None) -> None:
        super().__init__(model)
        from convscope.attribution.explain import make_method_from

        if kind not in KINDS:
            raise ValueError(f"unknown noise tunnel kind {kind!r}: use one of {', '.join(KINDS)}")
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise ValueError(f"samples must be a positive integer, got {samples!r}")
        if noise < 0 or (sigma is not None and sigma < 0):
            raise ValueError(f"the noise's size cannot be negative, got noise={noise}, sigma={sigma}")
        if isinstance(around, NoiseTunnel) or around == self.name:
            raise ValueError("a noise tunnel inside a noise tunnel: give the inner method (e.g. 'saliency')")
        if isinstance(around, Attribution) and layer is not None:
            raise ValueError("layer= is for a method given by name; a method object has its layer already")
        if isinstance(around, Attribution) and around_options:
            raise ValueError("around_options= is for a method given by name; a method object has its settings")
        self.method = make_method_from(around, self.model, around_options or {}, layer=layer)
        if self.method.model.net is not self.model.net:
            raise ValueError("the method given to NoiseTunnel explains another model; make it on the same one")
        self.kind, self.samples, self.noise, self.sigma, self.seed = kind, samples, noise, sigma, seed
        self.batch_size, self.progress = batch_size, progress
        batch_size_for(batch_size, torch.device("cpu"))  # checks it
        self.style = self.method.style
        self.title = f"{self.method.title} ({KINDS[kind]})"

    def with_settings(self, **settings: object) -> Attribution:
        """A copy with some settings changed: the tunnel's own (``nt_samples=``, ``stdevs=`` …) and, as in
        Captum, the inner method's (``n_steps=``, ``baselines=`` …)."""
        inner = {key: value for key, value in settings.items() if self.setting_name(key) is None}
        if not inner:
            return super().with_settings(**settings)
        own = {key: value for key, value in settings.items() if key not in inner}
        return super().with_settings(**own, around=self.method.with_settings(**inner), layer=None)

    def heat(self, maps: Tensor, size: tuple[int, ...]) -> Tensor:
        """The inner method's heat."""
        return self.method.heat(maps, size)

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        batch = inputs.shape[0]
        flat = inputs.flatten(1)
        sigma = (torch.full((batch,), float(self.sigma), device=inputs.device, dtype=inputs.dtype)
                 if self.sigma is not None else self.noise * (flat.amax(1) - flat.amin(1)))
        noise = NoiseSamples(inputs.shape[1:], inputs, self.seed)
        classes = image_classes(target, forward(self.model, inputs, target.layers)[0])
        pairs = torch.arange(self.samples * batch, device=inputs.device)
        total: Tensor | None = None
        squares: Tensor | None = None
        per_pass = batch_size_for(self.batch_size, inputs.device)
        for part in chunks(len(pairs), per_pass, description=self.title, progress=self.progress):
            images, sample = pairs[part] % batch, pairs[part] // batch
            span = range(part.start // batch, (part.stop - 1) // batch + 1)
            draws = torch.stack([noise[s] for s in span])[sample - span.start]
            noisy = inputs[images] + draws * sigma[images].view(-1, *[1] * (inputs.dim() - 1))
            maps = self.method._maps(noisy, copies_target(target, classes, images))
            maps = maps.double() if maps.dtype == torch.float64 else maps.float()
            if total is None or squares is None:  # set together, on the first pass
                total = maps.new_zeros((batch, *maps.shape[1:]))
                squares = torch.zeros_like(total)
            total.index_add_(0, images, maps)
            squares.index_add_(0, images, maps * maps)
        assert total is not None and squares is not None, "samples ≥ 1: one pass at least"
        mean, mean_square = total / self.samples, squares / self.samples
        combined = {"smoothgrad": mean, "smoothgrad_sq": mean_square, "vargrad": mean_square - mean * mean}[self.kind]
        return combined.to(inputs.dtype)
