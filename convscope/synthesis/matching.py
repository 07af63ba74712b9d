"""Matching a reference: feature distance (inversion, content) and Gram distance (texture, style).

Both are *penalties* (≥ 0): subtract them from an objective, e.g.
``-feature_distance("blocks.3", reference) - 1e-2 * total_variation()``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from convscope.models.model import Model, as_model
from convscope.models.preprocessing import _match_channels
from convscope.synthesis.objectives import Evaluation, Objective

SMOOTHINGS = ("none", "softmax", "spatial", "channel")


def layer_features(model: Model, images: Tensor, layers: Sequence[str]) -> dict[str, Tensor]:
    """Outputs of ``layers`` for pictures ``[B,3,H,W]`` in [0, 1] at their own size (no resize), detached; the
    forward pass stops once they have run (what comes after, e.g. a flatten of a fixed size, is not needed)."""
    from convscope.synthesis.loop import outputs_of

    model = as_model(model)
    if images.dim() == 3:
        images = images[None]
    if model.preprocess.channels == 1 and images.shape[1] == 3:  # synthesised colour → the grey model's luminance
        images = torch.stack([_match_channels(image, 1) for image in images])
    return outputs_of(model.net, model.preprocess.normalize(images.to(model.device)), layers)


def smooth(activations: Tensor, smoothing: str = "softmax") -> Tensor:
    """Activation smoothing before Gram matrices (Wang et al., CVPR 2021, https://arxiv.org/abs/2104.05623).

    ``'softmax'`` replaces each image's activations ``F`` ([C,H,W] together) by
    ``softmax(F)`` scaled by the number of entries, i.e. ``exp(F) / mean(exp(F))``: the
    same transformation, made independent of the image size. It lifts the entropy of
    the peaky activations of residual networks, whose plain Gram matrices give noisy,
    washed-out textures. ``'none'`` returns the activations unchanged.
    """
    if smoothing == "none":
        return activations
    if activations.dim() == 2:
        activations = activations[:, :, None, None]
    if smoothing == "softmax":
        flat = activations.flatten(1)
        return (flat.softmax(1) * flat.shape[1]).view_as(activations)
    if smoothing == "spatial":
        flat = activations.flatten(2)
        return (flat.softmax(2) * flat.shape[2]).view_as(activations)
    if smoothing == "channel":
        return activations.softmax(1) * activations.shape[1]
    raise ValueError(f"unknown smoothing {smoothing!r}; use one of {SMOOTHINGS}")


def gram_matrix(activations: Tensor) -> Tensor:
    """Gram matrices ``[B,C,C]`` of ``[B,C,H,W]`` activations, averaged over the H·W positions (Gatys et al.)."""
    if activations.dim() == 2:
        activations = activations[:, :, None, None]
    if activations.dim() != 4:
        raise ValueError(f"a Gram matrix needs activations [B,C,H,W], got {tuple(activations.shape)}")
    flat = activations.flatten(2)
    return flat @ flat.transpose(1, 2) / flat.shape[2]


def feature_distance(layer: str, reference: Tensor, *, smoothing: str = "none") -> Objective:
    """Mahendran & Vedaldi's normalised Euclidean loss ‖Φ(x) − Φ₀‖² / ‖Φ₀‖² at ``layer`` (≥ 0).

    ``reference`` is Φ₀ for one image (``[C,H,W]``, used for every batch item) or one
    per image (``[B,C,H,W]``). Paper: https://arxiv.org/abs/1412.0035
    """
    target = reference.detach()

    def distance(e: Evaluation) -> Tensor:
        acts = e.activation(layer)
        goal = _batched(target, acts)
        if acts.shape[1:] != goal.shape[1:]:
            raise ValueError(f"the reference features at {layer!r} are {tuple(goal.shape[1:])} but the image gives "
                             f"{tuple(acts.shape[1:])}: optimise an image of the reference's size")
        return normalised_distance(smooth(acts, smoothing), smooth(goal, smoothing))

    return Objective(distance, (layer,), f"‖Φ−Φ₀‖²/‖Φ₀‖² at {layer}", reads_output=False)


def normalised_distance(features: Tensor, reference: Tensor) -> Tensor:
    """‖Φ − Φ₀‖² / ‖Φ₀‖² per batch item (``reference`` broadcasts over the batch)."""
    squared = (features - reference).flatten(1).pow(2).sum(1)
    return squared / reference.flatten(1).pow(2).sum(1).clamp_min(1e-12)


def gram_distance(layer: str, reference_gram: Tensor, *, smoothing: str = "none") -> Objective:
    """Relative Gram distance ‖G(x) − A‖² / ‖A‖² at ``layer`` (≥ 0); A is the reference's Gram matrix.

    Gatys et al.'s per-layer style loss E_l up to a constant per layer, which makes
    layer weights comparable across layers (https://arxiv.org/abs/1505.07376).
    The image may have any size: Gram matrices are averaged over positions.
    """
    target = reference_gram.detach()

    def distance(e: Evaluation) -> Tensor:
        gram = gram_matrix(smooth(e.activation(layer), smoothing))
        goal = target if target.dim() == 3 else target[None]
        if goal.shape[-1] != gram.shape[-1]:
            raise ValueError(f"the reference Gram matrix at {layer!r} is {tuple(goal.shape[-2:])} but the layer has "
                             f"{gram.shape[-1]} channels")
        goal = goal.to(gram)
        return (gram - goal).flatten(1).pow(2).sum(1) / goal.flatten(1).pow(2).sum(1).clamp_min(1e-12)

    return Objective(distance, (layer,), f"Gram distance at {layer}", reads_output=False)


def colour_distance(reference: Tensor) -> Objective:
    """Relative distance between the 3×3 Gram matrices of the pictures' colours and ``reference``'s (≥ 0).

    The colour statistics (mean and covariance of RGB) that deep Gram matrices leave
    loose: without this term a synthesised texture may drift into colours its source
    does not have.
    """
    goal = gram_matrix(_pixels(reference))[0]

    def distance(e: Evaluation) -> Tensor:
        gram = gram_matrix(e.images)
        target = goal.to(gram)
        return (gram - target).flatten(1).pow(2).sum(1) / target.pow(2).sum().clamp_min(1e-12)

    return Objective(distance, (), "colour Gram distance", reads_output=False)


def _pixels(picture: Tensor) -> Tensor:
    return (picture[None] if picture.dim() == 3 else picture).float()


def _batched(target: Tensor, like: Tensor) -> Tensor:
    target = target.to(like)
    if target.dim() == like.dim() - 1:
        target = target[None]
    if target.shape[0] not in (1, like.shape[0]):
        raise ValueError(f"{target.shape[0]} references for a batch of {like.shape[0]} images")
    return target
