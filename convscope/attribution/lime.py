"""LIME over superpixels (Ribeiro, Singh & Guestrin 2016, https://arxiv.org/abs/1602.04938), as Captum's ``Lime``."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convscope.attribution.base import batch_size_for, chunks, copies_target, fast_layout, forward, image_classes
from convscope.attribution.batch_norm_folding import norms_folded
from convscope.attribution.feature_ablation import FeatureAblation
from convscope.attribution.forward_args import rows
from convscope.attribution.integrated_gradients import baseline_tensor
from convscope.hooks import capture, inspection_mode
from convscope.models.model import Model
from convscope.targets import Target


class Lime(FeatureAblation):
    """The coefficients of a weighted Lasso fitted to the scores of randomly masked copies, per segment ``[B,1,H,W]``.

    Each of ``samples`` copies keeps every segment with probability ½ and sets the others to
    the baseline; it is weighted by ``exp(−d² / 2·kernel_width²)``, ``d`` the cosine distance
    (``distance='euclidean'``: the Euclidean one) between the copy and the input. The map gives each
    segment its coefficient in ``argmin ½ Σ pᵢ (yᵢ − c − zᵢ·β)² + alpha·‖β‖₁`` (``p`` the weights
    normalised to sum to 1, ``z`` the kept segments, ``y`` the scores): scikit-learn's
    ``Lasso(alpha)`` with ``sample_weight``, solved here in float64 to convergence. Copies are drawn
    with a ``torch.Generator`` seeded with ``seed``, the same for every image with as many segments;
    ``batch_size`` copies per forward pass, across images. Segments and baseline as
    :class:`FeatureAblation` (each image's segments numbered in order). Equal to Captum's ``Lime``
    (called image by image) given the same copies.
    """

    name = "lime"
    title = "LIME"
    paper = "https://arxiv.org/abs/1602.04938"

    def __init__(self, model: Model | nn.Module, *, feature_mask: Tensor | None = None, segments: int = 50,
                 compactness: float = 10.0, baseline: str | float | Tensor = "mean", samples: int = 200,
                 alpha: float = 0.01, kernel_width: float = 1.0, distance: str = "cosine", seed: int = 0,
                 batch_size: int | None = None, progress: bool | None = None) -> None:
        super().__init__(model, feature_mask=feature_mask, segments=segments, compactness=compactness,
                         baseline=baseline, batch_size=batch_size, progress=progress)
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
            raise ValueError(f"samples must be an integer of at least 2, got {samples!r}")
        for key, value in (("alpha", alpha), ("kernel_width", kernel_width)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                    or value < 0 or (key == "kernel_width" and value == 0):
                raise ValueError(f"{key} must be a {'positive' if key == 'kernel_width' else 'non-negative'} number, "
                                 f"got {value!r}")
        if distance not in ("cosine", "euclidean"):
            raise ValueError(f"distance must be 'cosine' or 'euclidean', got {distance!r}")
        self.samples, self.alpha, self.kernel_width, self.distance, self.seed = samples, alpha, kernel_width, \
            distance, seed

    def draws(self, count: int) -> Tensor:
        """The kept segments of every copy, ``[samples, count]`` (bool): each kept with probability ½."""
        generator = torch.Generator().manual_seed(self.seed)
        return torch.bernoulli(torch.full((self.samples, count), 0.5), generator=generator).bool()

    def weights(self, inputs: Tensor, copies: Tensor, kept: Tensor, counts: Tensor) -> Tensor:
        """The weight of each copy ``[k]``: the exponential kernel on its distance to its image ``inputs`` ``[k,…]``
        (``kept`` ``[k,count]``, the segments each copy keeps of its image's ``counts``)."""
        original, changed = inputs.flatten(1).float(), copies.flatten(1).float()
        if self.distance == "cosine":
            distance = 1 - F.cosine_similarity(original, changed, dim=1)
        else:
            distance = (original - changed).norm(dim=1)
        return torch.exp(-distance.double() ** 2 / (2 * self.kernel_width ** 2))

    def fit(self, kept: Tensor, scores: Tensor, weights: Tensor) -> Tensor:
        """Each segment's coefficient ``[count]`` from the copies' kept segments, scores and weights (float64)."""
        return weighted_lasso(kept, scores, weights, self.alpha)

    def _attribute(self, inputs: Tensor, target: Target) -> Tensor:
        mask = self.mask_for(inputs)
        segments = [torch.unique(mask[b], return_inverse=True) for b in range(len(inputs))]
        counts = [len(found) for found, _ in segments]
        numbered = torch.stack([inverse for _, inverse in segments])  # each image's segments numbered 0 … count − 1
        kept = torch.zeros(len(inputs), self.samples, max(counts), dtype=torch.bool)
        for b, count in enumerate(counts):
            kept[b, :, :count] = self.draws(count)
        kept = kept.to(inputs.device)
        segment_counts = torch.tensor(counts, device=inputs.device)
        baseline = baseline_tensor(self.baseline, inputs, self.model)
        output, _ = forward(self.model, inputs, target.layers)
        classes = image_classes(target, output)
        batch = len(inputs)
        scores = torch.empty(batch, self.samples, dtype=torch.float64, device=inputs.device)
        weights = torch.empty_like(scores)
        net = self.model.net
        pairs = torch.arange(batch * self.samples, device=inputs.device)
        with inspection_mode(net), norms_folded(net, fast_layout(inputs[:1]), list(target.layers)), \
                capture(net, list(target.layers), detach=True) as store, torch.no_grad():
            for part in chunks(len(pairs), batch_size_for(self.batch_size, inputs.device), description=self.title,
                               progress=self.progress):
                image, sample = pairs[part] % batch, pairs[part] // batch
                on = kept[image, sample]
                where = on.gather(1, numbered[image].flatten(1)).view(-1, 1, *mask.shape[-2:])
                copies = torch.where(where, inputs[image], baseline[image])
                with rows(image):
                    out = net(fast_layout(copies))
                scores[image, sample] = copies_target(target, classes, image)(out, store.activations).double()
                weights[image, sample] = self.weights(inputs[image], copies, on, segment_counts[image])
        maps = torch.zeros(mask.shape, device=inputs.device)
        for b, count in enumerate(counts):
            coefficients = self.fit(kept[b, :, :count].cpu(), scores[b].cpu(), weights[b].cpu())
            maps[b] = coefficients.to(inputs.device).float()[numbered[b]]
        return maps.to(inputs.dtype)


def weighted_lasso(kept: Tensor, scores: Tensor, weights: Tensor, alpha: float, *, sweeps: int = 5_000) -> Tensor:
    """``argmin_β ½ Σ pᵢ (yᵢ − c − zᵢ·β)² + alpha ‖β‖₁`` with an intercept ``c``, ``p`` the weights over their sum.

    Cyclic coordinate descent on the weighted Gram matrix (as scikit-learn's ``Lasso`` with
    ``sample_weight``), in float64; every few sweeps the nonzero coefficients found so far are solved
    for exactly (their signs fixed) and the answer is returned once it meets the Lasso's optimality
    conditions, so the result is the optimum itself, not a point near it. A segment kept in every copy
    or in none gets 0. Fewer copies than segments with a tiny ``alpha`` make the optimum hard to reach:
    after ``sweeps`` sweeps without it, a ``ValueError`` says what would work.
    """
    z, y, p = kept.double(), scores.double(), weights.double() / weights.double().sum()
    z = z - p @ z  # centred on the weighted means: the intercept drops out
    y = y - p @ y
    gram = z.T @ (p[:, None] * z)
    correlation = z.T @ (p * y)
    diagonal = gram.diagonal().tolist()
    gram_rows, c = gram.tolist(), correlation.tolist()
    beta = [0.0] * len(c)
    residual = list(c)  # c − G β, kept up to date
    for sweep in range(sweeps):
        largest_move = 0.0
        for j, g_jj in enumerate(diagonal):
            if g_jj <= 1e-300:
                continue
            rho = residual[j] + g_jj * beta[j]
            new = math.copysign(max(abs(rho) - alpha, 0.0), rho) / g_jj
            move = new - beta[j]
            if move != 0.0:
                row = gram_rows[j]
                for k in range(len(residual)):
                    residual[k] -= row[k] * move
                beta[j] = new
                largest_move = max(largest_move, abs(move))
        if sweep % 10 == 9 or largest_move == 0.0:
            current = torch.tensor(beta, dtype=torch.float64)
            for cut in (0.0, 1e-8, 1e-6, 1e-4, 1e-2):  # coefficients still on their way to 0 left out
                exact = _optimum_on_support(gram, correlation, current * (current.abs() > cut * current.abs().max()),
                                            alpha)
                if exact is not None:
                    return exact
    raise ValueError(f"LIME's Lasso did not reach its optimum in {sweeps} sweeps ({len(y)} copies for {len(c)} "
                     f"segments, alpha={alpha:g}): give more samples= than segments, or a larger alpha=")


def _optimum_on_support(gram: Tensor, correlation: Tensor, beta: Tensor, alpha: float) -> Tensor | None:
    """The Lasso's optimum if it has ``beta``'s nonzero coefficients and signs, else ``None``: those coefficients
    solved for exactly, and the optimality conditions checked on all."""
    support = beta != 0
    solved = torch.zeros_like(beta)
    if bool(support.any()):
        signs = beta[support].sign()
        try:
            solved[support] = torch.linalg.solve(gram[support][:, support], correlation[support] - alpha * signs)
        except RuntimeError:  # singular on this support
            return None
        if not bool((solved[support].sign() == signs).all()):
            return None
    slack = (correlation - gram @ solved).abs()
    if bool((slack[~support] <= alpha * (1 + 1e-9) + 1e-15).all()):
        return solved
    return None
