"""Deep feature factorisation (Collins, Achanta & Süsstrunk 2018, https://arxiv.org/abs/1806.10206).

The activations of one layer over a batch of pictures, a ``C × (B·h·w)`` matrix made non-negative
by subtracting each channel's minimum, are factorised by non-negative matrix factorisation into
``k`` concepts: ``V ≈ W H`` with ``W`` ``C × k`` (each concept's channel profile) and ``H``
``k × (B·h·w)`` (where each concept is, on every picture). The concepts are shared by all the
pictures of the batch. As pytorch-grad-cam's ``DeepFeatureFactorization``, a concept's
*embedding* is its column of ``W`` plus the channel minima, and the classes it supports are that
embedding put through the network's classifier (found for networks that end in global average
pooling and a linear layer, at the pooled layer).

The factorisation is scikit-learn's ``NMF`` (coordinate descent, ``init='random'``), the solver
pytorch-grad-cam's ``DeepFeatureFactorization`` runs, in float64 on the CPU: the matrix is small (channels ×
positions), and scikit-learn's compiled sweeps converge in a third of the steps of Lee & Seung's multiplicative
updates, which the DFF authors ran (about 50 sweeps against 170 steps on EfficientNet-Lite0's ``bn2`` and a
photo). With the same seed the concepts equal pytorch-grad-cam's (tests).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from convscope.attribution.base import check_inputs, folded_forward
from convscope.attribution.cam import Head, find_head
from convscope.attribution.layers import LayerChoice, layer_grid
from convscope.hooks import model_walk
from convscope.models.model import Model, as_model
from convscope.models.tokens import Reshape
from convscope.render.overlay import upsample
from convscope.reprs import short_repr


@dataclass
class Factors:
    """The concepts of ``layer`` found on a batch.

    ``maps`` ``[B,k,h,w]`` where each concept is on each picture (non-negative, the NMF's ``H``);
    ``concepts`` ``[k,C]`` each concept's embedding (its channel profile plus the channel minima);
    ``scores`` ``[k,classes]`` the classifier's logits for each embedding (``None`` when the layer is not
    the one the classifier pools); ``error`` ``‖V − WH‖ / ‖V‖``; ``steps`` the sweeps run.
    """

    __repr__ = short_repr

    layer: str
    maps: Tensor
    concepts: Tensor
    scores: Tensor | None
    error: float
    steps: int

    def heat(self, size: tuple[int, int], *, per_picture: bool = False) -> Tensor:
        """Each concept's map at ``size``, ``[B,k,H,W]`` in [0, 1]: minus the minimum, over the maximum of the
        concept over all the pictures, so that a concept absent from a picture stays dark there.
        ``per_picture`` scales each picture's map on its own, as pytorch-grad-cam's ``scale_cam_image`` does."""
        maps = upsample(self.maps.float(), size)
        flat = maps.flatten(2) if per_picture else maps.transpose(0, 1).flatten(1)[None]
        shifted = flat - flat.amin(-1, keepdim=True)
        top = shifted.amax(-1, keepdim=True)
        scaled = shifted / top.where(top > 0, torch.ones_like(top))
        return scaled.view_as(maps) if per_picture else scaled[0].view(maps.shape[1], maps.shape[0],
                                                                      *size).transpose(0, 1)

    def top_classes(self, k: int = 2) -> tuple[Tensor, Tensor] | None:
        """Each concept's ``k`` most probable classes by the softmax of ``scores``: ``(probabilities, indices)``."""
        if self.scores is None:
            return None
        found = self.scores.softmax(1).topk(min(k, self.scores.shape[1]), dim=1)
        return found.values, found.indices


def factorise(model: Model | nn.Module, inputs: Tensor, layer: str | nn.Module | None = None, concepts: int = 4, *,
              reshape: Reshape | None = None, steps: int = 500, tolerance: float = 1e-4, seed: int = 0) -> Factors:
    """Deep feature factorisation of ``layer``'s activations on ``inputs`` (a normalised batch) into ``concepts``.

    ``layer=None`` takes the CAMs' default (the last layer with a grid); ``steps`` bounds the
    coordinate-descent sweeps, which stop early when a sweep's projected gradient falls below ``tolerance``
    of the first one's (scikit-learn's rule); ``seed`` draws the initialisation (pytorch-grad-cam's is 0).
    """
    model = as_model(model)
    if isinstance(concepts, bool) or not isinstance(concepts, int) or concepts < 1:
        raise ValueError(f"concepts must be a positive integer (the number of NMF factors), got {concepts!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not (isinstance(tolerance, int | float) and math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance must be a number ≥ 0 (0: run every step), got {tolerance!r}")
    inputs = check_inputs(inputs, model)
    name = LayerChoice(model, layer).name(inputs)
    _, found = folded_forward(model, inputs, [name])
    maps = layer_grid(model, name, found[name], inputs, reshape).maps(found[name]).double().nan_to_num()
    batch, channels, height, width = maps.shape
    if concepts > min(channels, batch * height * width):
        raise ValueError(f"{concepts} concepts from {channels} channels at {batch * height * width} positions: "
                         f"ask for at most {min(channels, batch * height * width)}")
    matrix = maps.transpose(0, 1).reshape(channels, -1)  # [C, B·h·w]
    offset = matrix.amin(1, keepdim=True)
    matrix = matrix - offset
    profiles, where, done = factorised(matrix, concepts, steps, tolerance, seed)
    error = float((matrix - profiles @ where).norm() / matrix.norm().clamp_min(1e-300))
    embeddings = (profiles + offset).T.float()  # [k, C]
    return Factors(name, where.reshape(concepts, batch, height, width).transpose(0, 1).float(), embeddings,
                   _through_head(model, inputs, name, embeddings), error, done)


def factorised(matrix: Tensor, concepts: int, steps: int, tolerance: float, seed: int) -> tuple[Tensor, Tensor, int]:
    """``W`` ``[n,k]`` and ``H`` ``[k,m]`` with ``matrix ≈ W H`` (non-negative ``[n,m]``): scikit-learn's ``NMF``
    with coordinate descent from ``init='random'`` drawn with ``seed``, at most ``steps`` sweeps, stopping when a
    sweep's projected-gradient violation falls below ``tolerance`` × the first one's (0: every sweep); and the
    sweeps run. On ``matrix``'s device and dtype."""
    from sklearn.decomposition import NMF
    from sklearn.exceptions import ConvergenceWarning

    solver = NMF(concepts, init="random", solver="cd", max_iter=steps, tol=tolerance, random_state=seed)
    with warnings.catch_warnings():  # stopping at ``steps`` is what the caller asked for
        warnings.simplefilter("ignore", ConvergenceWarning)
        profiles = solver.fit_transform(matrix.detach().cpu().numpy())
    return (torch.from_numpy(profiles).to(matrix), torch.from_numpy(solver.components_).to(matrix),
            int(solver.n_iter_))


def _through_head(model: Model, inputs: Tensor, layer: str, embeddings: Tensor) -> Tensor | None:
    """The classifier's logits for each concept embedding, when ``layer`` is what the classifier averages."""
    head = _head(model, inputs)
    if head is None or head.layer != layer or head.classifier.in_features != embeddings.shape[1]:
        return None
    weight = head.classifier.weight.detach()
    bias = head.classifier.bias
    with torch.no_grad():
        return nn.functional.linear(embeddings.to(weight), weight, None if bias is None else bias.detach()).float()


def _head(model: Model, inputs: Tensor) -> Head | None:
    """The model's pooled layer and classifier (``None``: it has none), found by one pass of a picture the first time
    for a model structure and input shape, then remembered until a module or parameter is registered on the model."""
    known = model_walk(model.net).memo(_new_heads, model.net)
    key = (tuple(inputs.shape[1:]), inputs.dtype, inputs.device)
    if key not in known:
        try:
            known[key] = find_head(model, inputs[:1], None, None)
        except ValueError:
            known[key] = None
    return known[key]


def _new_heads(net: nn.Module) -> dict[tuple, Head | None]:
    return {}
