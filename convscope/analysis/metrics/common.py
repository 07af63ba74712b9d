"""What the metrics share: attributions as one value per pixel, and batched class scores of perturbed pictures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from convscope.analysis.onednn_pooling import onednn_max_pooling
from convscope.analysis.passes import pictures_per_pass
from convscope.attribution.batch_norm_folding import norms_folded
from convscope.hooks import inspection_mode

Forward = nn.Module | Callable[[Tensor], Tensor]


def per_pixel(attributions: Tensor, inputs: Tensor | None = None) -> Tensor:
    """``[B,H,W]`` from attributions ``[B,H,W]``, ``[B,1,H,W]`` or ``[B,C,H,W]`` (channels summed: a pixel is one
    feature, as the papers perturb pixels), float64 so that the metrics agree with reference code to 1e-5."""
    a = attributions.detach()
    if a.dim() == 4:
        a = a.sum(1)
    if a.dim() != 3:
        raise ValueError(f"attributions must be [B,H,W], [B,1,H,W] or [B,C,H,W], got {tuple(attributions.shape)}")
    if inputs is not None and (a.shape[0] != inputs.shape[0] or a.shape[-2:] != inputs.shape[-2:]):
        raise ValueError(f"one attribution map per picture at the picture's size is needed: attributions "
                         f"{tuple(attributions.shape)}, pictures {tuple(inputs.shape)} (upsample the maps first)")
    return a.double()


def normalise_by_max(a: Tensor) -> Tensor:
    """Each map divided by its own largest absolute value (an all-zero map stays zero)."""
    peak = a.flatten(1).abs().amax(1).clamp_min(torch.finfo(a.dtype).tiny)
    return a / peak.view(-1, *([1] * (a.dim() - 1)))


def class_indices(y: Tensor | int | list[int], count: int, device: torch.device) -> Tensor:
    """``[B]`` class indices from one class for all pictures or one per picture."""
    y = torch.as_tensor(y, device=device).long().reshape(-1)
    if y.numel() == 1:
        y = y.expand(count)
    if y.numel() != count:
        raise ValueError(f"{y.numel()} classes for {count} pictures: give one class for all or one per picture")
    return y


@contextmanager
def scoring(model: Forward, example: Tensor) -> Iterator[Forward]:
    """The network to call (a convscope Model's network), in a context without gradients: a module in eval mode
    with its conv → batch norm pairs folded (found and checked on ``example``'s first picture,
    :func:`~convscope.attribution.batch_norm_folding.norms_folded`), everything restored after; max pooling through
    oneDNN (:mod:`~convscope.analysis.onednn_pooling`)."""
    net = getattr(model, "net", model)
    with torch.no_grad(), onednn_max_pooling():
        if not isinstance(net, nn.Module):
            yield net
            return
        with inspection_mode(net), norms_folded(net, example[:1]):
            yield net


def run(model: Forward, pictures: Tensor, batch_size: int | None = None) -> Tensor:
    """The model's output ``[N,K]`` for ``pictures`` ``[N,C,H,W]``, a few pictures per pass, without gradients."""
    per = pictures_per_pass(batch_size, pictures.shape, pictures.device)
    with scoring(model, pictures) as net:
        return torch.cat([net(part) for part in pictures.split(per)]).double()


def scores(model: Forward, pictures: Tensor, classes: Tensor, *, softmax: bool,
           batch_size: int | None = None) -> Tensor:
    """Each picture's score (logit, or softmax probability) of its class ``classes[N]``: ``[N]`` float64."""
    out = run(model, pictures, batch_size)
    if softmax:
        out = out.softmax(1)
    return out.gather(1, classes.view(-1, 1).to(out.device))[:, 0]


def pearson(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation of each row of ``a`` and ``b`` ``[B,N]`` (NaN where a row is constant)."""
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))


def generator_for(seed: int | torch.Generator | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator: the one given, or a new one seeded with ``seed`` (0 when None) on ``device``."""
    if isinstance(seed, torch.Generator):
        return seed
    return torch.Generator(device=device).manual_seed(0 if seed is None else int(seed))
