"""Faithfulness: does removing what the explanation calls important change the model's output the most?

Pixels (all channels of a picture element together) are replaced by ``baseline`` (a number in the model's input
space, or a tensor ``[B,C,H,W]`` / ``[B,C,1,1]``); each picture's score of its class ``y`` is the softmax
probability (``softmax=True``) or the logit. Perturbed pictures go through the model a few at a time
(:func:`~convscope.analysis.passes.pictures_per_pass`), all in torch.

- Pixel flipping (Bach et al. 2015, https://doi.org/10.1371/journal.pone.0130140): the score as the most important
  pixels are removed cumulatively; ↓ area.
- Region perturbation (Samek et al. 2017, https://arxiv.org/abs/1509.06321): the drop of the score as the most
  important patches are removed; ↑ area.
- Selectivity (Montavon et al. 2018, https://arxiv.org/abs/1706.07979): the score as all patches are removed in
  order of importance; ↓ area.
- Monotonicity (Arya et al. 2019, https://arxiv.org/abs/1909.03012): from the baseline, pixels are revealed from the
  least to the most important, and the score must never fall; ↑ (share of pictures).
- Monotonicity correlation (Nguyen & Martínez 2020, https://arxiv.org/abs/2007.07584): Spearman correlation
  between each group's attribution and the squared change its removal causes; ↑.
- Faithfulness estimate (Alvarez-Melis & Jaakkola 2018, https://arxiv.org/abs/1806.07538): Pearson correlation
  between each group's attribution and the drop its removal alone causes; ↑.
- Faithfulness correlation (Bhatt et al. 2020, https://arxiv.org/abs/2005.00631): the same over random subsets of
  pixels; ↑.
- Infidelity (Yeh et al. 2019, https://arxiv.org/abs/1901.09392): the mean squared gap between ``Iᵀa`` and the
  change of the score under noise ``I``; ↓.
- IROF (Rieger & Hansen 2020, https://arxiv.org/abs/2003.08747): the area over the score's curve as superpixels are
  removed from the most important down; ↑.
- ROAD (Rong et al. 2022, https://arxiv.org/abs/2202.00449): whether the model keeps its class as a growing share of
  the most (MoRF, ↓) or least (LeRF, ↑) important pixels is removed by noisy linear imputation, which leaves no
  sharp-edged hole for the model to react to instead of the missing content.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from convscope.analysis.metrics.common import (
    Forward,
    class_indices,
    generator_for,
    pearson,
    per_pixel,
    run,
    scores,
    scoring,
)
from convscope.analysis.passes import pictures_per_pass
from convscope.analysis.similarity import average_ranks

Baseline = float | Tensor
Masks = Callable[[int, slice], Tensor]  # picture b, steps → [S,1,H,W] True where the picture is replaced


def _baseline(baseline: Baseline, x: Tensor) -> Tensor:
    if isinstance(baseline, Tensor):
        return baseline.to(x.device, x.dtype).expand_as(x)
    return torch.full_like(x, float(baseline))


def _score_pass(net, x: Tensor, y: Tensor, fill: Tensor, masks: Masks, spans: list[tuple[int, slice]], *,
                softmax: bool) -> Tensor:
    """Scores of one pass: for each ``(b, steps)`` in ``spans``, picture ``b`` with ``masks(b, steps)`` replaced."""
    pictures = [torch.where(masks(b, part), fill[b], x[b]) for b, part in spans]
    classes = torch.cat([y[b].expand(p.shape[0]) for (b, _), p in zip(spans, pictures, strict=True)])
    output = net(torch.cat(pictures)).double()
    if softmax:
        output = output.softmax(1)
    return output.gather(1, classes.view(-1, 1))[:, 0]


def perturbed_scores(model: Forward, x: Tensor, y: Tensor, masks: Masks, steps: int, baseline: Baseline, *,
                     softmax: bool, batch_size: int | None = None) -> Tensor:
    """Scores ``[B,steps]``: picture ``b`` with ``masks(b, steps)`` replaced by the baseline. The ``B·steps``
    perturbed pictures go through the model in even passes that may span several pictures."""
    fill = _baseline(baseline, x)
    per = pictures_per_pass(batch_size, x.shape, x.device)
    total = x.shape[0] * steps
    per = -(-total // -(-total // per))  # even passes: no last pass of one picture
    out = []
    with scoring(model, x) as net:
        for start in range(0, total, per):
            stop = min(start + per, total)
            spans = [(b, slice(max(start - b * steps, 0), min(stop - b * steps, steps)))
                     for b in range(start // steps, (stop - 1) // steps + 1)]
            out.append(_score_pass(net, x, y, fill, masks, spans, softmax=softmax))
    return torch.cat(out).view(x.shape[0], steps)


def _ranks(a: Tensor, descending: bool) -> Tensor:
    """Rank ``[B,N]`` of each pixel (0: first to go)."""
    order = a.sort(dim=1, descending=descending, stable=True).indices
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(a.shape[1], device=a.device).expand_as(order))
    return ranks


def _check_step(step: int, pixels: int) -> int:
    if isinstance(step, bool) or not isinstance(step, int) or not 0 < step <= pixels:
        raise ValueError(f"features_in_step must be between 1 and the number of pixels ({pixels}), got {step!r}")
    return math.ceil(pixels / step)


def _prepare(model: Forward, x: Tensor, y, attributions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    a = per_pixel(attributions, x).flatten(1).to(x.device)
    return x, class_indices(y, x.shape[0], x.device), a


def pixel_flipping(model: Forward, x: Tensor, y, attributions: Tensor, *, features_in_step: int = 1,
                   baseline: Baseline = 0.0, softmax: bool = True, batch_size: int | None = None) -> Tensor:
    """The score ``[B,S]`` after the ``features_in_step·(s+1)`` most important pixels are replaced."""
    x, y, a = _prepare(model, x, y, attributions)
    height, width = x.shape[-2:]
    steps = _check_step(features_in_step, a.shape[1])
    ranks = _ranks(a, descending=True)
    counts = (torch.arange(1, steps + 1, device=x.device) * features_in_step).clamp_max(a.shape[1])

    def masks(b: int, part: slice) -> Tensor:
        return (ranks[b][None] < counts[part, None]).view(-1, 1, height, width)

    return perturbed_scores(model, x, y, masks, steps, baseline, softmax=softmax, batch_size=batch_size)


def _patches(shape: tuple[int, int], size: int, device: torch.device) -> tuple[Tensor, int]:
    """Patch number of each pixel ``[H·W]`` on a grid of ``size`` squares centred as Quantus pads, and the count."""
    height, width = shape
    pad_h, pad_w = (-height) % size, (-width) % size
    rows = (torch.arange(height, device=device) + pad_h // 2) // size
    cols = (torch.arange(width, device=device) + pad_w // 2) // size
    per_row = (width + pad_w) // size
    return (rows[:, None] * per_row + cols[None]).flatten(), ((height + pad_h) // size) * per_row


def _patch_order(a: Tensor, ids: Tensor, count: int, order: str, generator: torch.Generator | None) -> Tensor:
    sums = torch.zeros(a.shape[0], count, dtype=a.dtype, device=a.device).index_add_(1, ids, a)
    if order == "morf":
        return sums.sort(dim=1, descending=True, stable=True).indices
    if order == "lerf":
        return sums.sort(dim=1, stable=True).indices
    if order == "random":
        return torch.stack([torch.randperm(count, generator=generator).to(a.device) for _ in range(a.shape[0])])
    raise ValueError(f"order must be 'morf', 'lerf' or 'random', got {order!r}")


def _patch_masks(x: Tensor, a: Tensor, patch_size: int, order: str, generator=None) -> tuple[Masks, int]:
    height, width = x.shape[-2:]
    if isinstance(patch_size, bool) or not isinstance(patch_size, int) or not 0 < patch_size <= min(height, width):
        raise ValueError(f"patch_size must be between 1 and the picture's side, got {patch_size!r}")
    ids, count = _patches((height, width), patch_size, x.device)
    ranked = _patch_order(a, ids, count, order, generator)
    position = torch.empty_like(ranked).scatter_(1, ranked, torch.arange(count, device=x.device).expand_as(ranked))
    pixel_rank = position[:, ids]  # [B,H·W]: when each pixel's patch goes

    def masks(b: int, part: slice) -> Tensor:
        steps = torch.arange(count, device=x.device)[part]
        return (pixel_rank[b][None] <= steps[:, None]).view(-1, 1, height, width)

    return masks, count


def region_perturbation(model: Forward, x: Tensor, y, attributions: Tensor, *, patch_size: int = 8,
                        regions: int = 100, order: str = "morf", baseline: Baseline = 0.0, softmax: bool = True,
                        seed: int | torch.Generator | None = None, batch_size: int | None = None) -> Tensor:
    """The drop of the score ``[B,R]`` as the first ``r+1`` patches (most important first for ``morf``, least for
    ``lerf``, at random for ``random``) are replaced, for at most ``regions`` patches."""
    x, y, a = _prepare(model, x, y, attributions)
    masks, count = _patch_masks(x, a, patch_size, order, generator_for(seed) if order == "random" else None)
    original = scores(model, x, y, softmax=softmax, batch_size=batch_size)
    after = perturbed_scores(model, x, y, masks, min(regions, count), baseline, softmax=softmax,
                             batch_size=batch_size)
    return original[:, None] - after


def selectivity(model: Forward, x: Tensor, y, attributions: Tensor, *, patch_size: int = 8,
                baseline: Baseline = 0.0, softmax: bool = True, batch_size: int | None = None) -> Tensor:
    """The score ``[B,R]`` as every patch, most important first, is replaced in turn."""
    x, y, a = _prepare(model, x, y, attributions)
    masks, count = _patch_masks(x, a, patch_size, "morf")
    return perturbed_scores(model, x, y, masks, count, baseline, softmax=softmax, batch_size=batch_size)


def _groups(a: Tensor, features_in_step: int, descending: bool) -> tuple[Tensor, int]:
    steps = _check_step(features_in_step, a.shape[1])
    return _ranks(a, descending) // features_in_step, steps  # the group of each pixel


def _removed_one_group_at_a_time(model, x, y, a, features_in_step, descending, baseline, softmax, batch_size):
    height, width = x.shape[-2:]
    group, steps = _groups(a, features_in_step, descending)

    def masks(b: int, part: slice) -> Tensor:
        numbers = torch.arange(steps, device=x.device)[part]
        return (group[b][None] == numbers[:, None]).view(-1, 1, height, width)

    after = perturbed_scores(model, x, y, masks, steps, baseline, softmax=softmax, batch_size=batch_size)
    sums = torch.zeros(a.shape[0], steps, dtype=a.dtype, device=a.device).scatter_add_(1, group, a)
    return after, sums


def faithfulness_estimate(model: Forward, x: Tensor, y, attributions: Tensor, *, features_in_step: int = 1,
                          baseline: Baseline = 0.0, softmax: bool = False,
                          batch_size: int | None = None) -> Tensor:
    """Pearson correlation ``[B]`` between each group's attribution (groups of ``features_in_step`` pixels by
    importance) and the drop of the score when that group alone is replaced."""
    x, y, a = _prepare(model, x, y, attributions)
    original = scores(model, x, y, softmax=softmax, batch_size=batch_size)
    after, sums = _removed_one_group_at_a_time(model, x, y, a, features_in_step, True, baseline, softmax, batch_size)
    return pearson(sums, original[:, None] - after)


def monotonicity_correlation(model: Forward, x: Tensor, y, attributions: Tensor, *, features_in_step: int = 1,
                             baseline: Baseline = 0.0, eps: float = 1e-5, softmax: bool = True, abs: bool = True,
                             batch_size: int | None = None) -> Tensor:
    """Spearman correlation ``[B]`` between each group's attribution (``abs``: its magnitude) and the squared change
    of the score (over the squared score, when that is at least ``eps``) when that group alone is replaced."""
    x, y, a = _prepare(model, x, y, attributions)
    a = a.abs() if abs else a
    original = scores(model, x, y, softmax=softmax, batch_size=batch_size)
    after, sums = _removed_one_group_at_a_time(model, x, y, a, features_in_step, False, baseline, softmax,
                                               batch_size)
    scale = torch.where(original.abs() >= eps, 1 / original.abs(), torch.ones_like(original)) ** 2
    change = (after - original[:, None]) ** 2 * scale[:, None]
    return pearson(average_ranks(sums), average_ranks(change))


def monotonicity(model: Forward, x: Tensor, y, attributions: Tensor, *, features_in_step: int = 1,
                 baseline: Baseline = 0.0, softmax: bool = True, abs: bool = True,
                 batch_size: int | None = None) -> Tensor:
    """1.0 where the score never falls ``[B]`` as pixels are revealed on the baseline from the least to the most
    important (``abs``: by magnitude), ``features_in_step`` at a time, else 0.0 (Arya et al.; Quantus 0.6 fills
    the revealed pixels with the baseline again, so its pictures never change and every map passes)."""
    x, y, a = _prepare(model, x, y, attributions)
    a = a.abs() if abs else a
    height, width = x.shape[-2:]
    steps = _check_step(features_in_step, a.shape[1])
    ranks = _ranks(a, descending=False)
    counts = (torch.arange(1, steps + 1, device=x.device) * features_in_step).clamp_max(a.shape[1])

    def hidden(b: int, part: slice) -> Tensor:  # still the baseline: not yet revealed
        return (ranks[b][None] >= counts[part, None]).view(-1, 1, height, width)

    # Each pass scores the next few steps of every picture whose curve has not fallen yet (at most ``per``
    # pictures); a picture leaves at its first fall, its answer then known, so failing maps cost few passes.
    fill = _baseline(baseline, x)
    per = pictures_per_pass(batch_size, x.shape, x.device)
    done = [0] * x.shape[0]  # steps scored so far, per picture
    last: list[Tensor] = [x.new_empty(0, dtype=torch.float64)] * x.shape[0]  # the latest score, per picture
    rising = [True] * x.shape[0]
    with scoring(model, x) as net:
        while alive := [b for b in range(x.shape[0]) if rising[b] and done[b] < steps]:
            each, spans, room = -(-per // len(alive)), [], per
            for b in alive:
                take = min(each, steps - done[b], room)
                spans.append((b, slice(done[b], done[b] + take)))
                room -= take
                if not room:
                    break
            found = _score_pass(net, x, y, fill, hidden, spans, softmax=softmax)
            curves = found.split([part.stop - part.start for _, part in spans])
            held = torch.stack([torch.cat([last[b], curve]).diff().ge(0).all()
                                for (b, _), curve in zip(spans, curves, strict=True)]).tolist()
            for (b, part), curve, up in zip(spans, curves, held, strict=True):
                rising[b], done[b], last[b] = up, part.stop, curve[-1:]
    return torch.tensor(rising, dtype=torch.float64, device=x.device)


def random_subsets(pixels: int, size: int, runs: int, count: int, seed: int | torch.Generator | None = 0) -> Tensor:
    """``[count,runs,size]`` pixel indices: for each picture and run, ``size`` distinct pixels drawn at random."""
    if not 0 < size <= pixels:
        raise ValueError(f"subset_size must be between 1 and the number of pixels ({pixels}), got {size}")
    generator = generator_for(seed)
    return torch.rand(count, runs, pixels, generator=generator).topk(size, dim=-1, sorted=False).indices


def faithfulness_correlation(model: Forward, x: Tensor, y, attributions: Tensor, *, runs: int = 100,
                             subset_size: int = 224, baseline: Baseline = 0.0, softmax: bool = False,
                             seed: int | torch.Generator | None = 0, subsets: Tensor | None = None,
                             batch_size: int | None = None) -> Tensor:
    """Pearson correlation ``[B]`` over ``runs`` random subsets of ``subset_size`` pixels between the subset's
    attribution and the drop of the score when it alone is replaced (``subsets`` ``[B,runs,size]``: given)."""
    x, y, a = _prepare(model, x, y, attributions)
    height, width = x.shape[-2:]
    if subsets is None:
        subsets = random_subsets(a.shape[1], subset_size, runs, x.shape[0], seed)
    subsets = subsets.to(x.device)
    runs = subsets.shape[1]
    chosen = torch.zeros(x.shape[0], runs, a.shape[1], dtype=torch.bool, device=x.device)
    chosen.scatter_(2, subsets, True)

    def masks(b: int, part: slice) -> Tensor:
        return chosen[b, part].view(-1, 1, height, width)

    original = scores(model, x, y, softmax=softmax, batch_size=batch_size)
    after = perturbed_scores(model, x, y, masks, runs, baseline, softmax=softmax, batch_size=batch_size)
    if bool((chosen.sum(-1) == subsets.shape[-1]).all()):  # distinct pixels: sum the chosen values alone
        sums = a.gather(1, subsets.flatten(1)).view(subsets.shape).sum(-1)
    else:  # a pixel given twice counts once, as it is replaced once
        sums = (a[:, None] * chosen).sum(-1)
    return pearson(sums, original[:, None] - after)


def superpixels(x: Tensor, *, method: str = "slic") -> Tensor:
    """Superpixel numbers ``[B,H,W]`` (0, 1, …) of each picture: scikit-image's SLIC (``start_label=0``) or
    Felzenszwalb's graph segmentation, on the picture as the model takes it (as Quantus 0.6 segments)."""
    from skimage.segmentation import felzenszwalb, slic

    if method not in ("slic", "felzenszwalb"):
        raise ValueError(f"method must be 'slic' or 'felzenszwalb', got {method!r}")
    found = [slic(p, start_label=0) if method == "slic" else felzenszwalb(p)
             for p in x.detach().cpu().double().movedim(1, -1).numpy()]
    return torch.stack([torch.as_tensor(f).long() for f in found]).to(x.device)


def irof(model: Forward, x: Tensor, y, attributions: Tensor, *, segments: Tensor | None = None,
         baseline: Baseline = 0.0, softmax: bool = True, batch_size: int | None = None) -> Tensor:
    """Iterative removal of features (Rieger & Hansen 2020, https://arxiv.org/abs/2003.08747) ``[B]``, ↑: the area
    over the curve of the score (over the clean picture's) as superpixels (``segments`` ``[B,H,W]``, default
    :func:`superpixels`) are replaced from the highest mean attribution down; the area counts one unit per
    superpixel, as Quantus 0.6 does. Each picture's curve has its own length (Quantus pads a batch's shorter
    curves with zeros, which adds half the last score to their area)."""
    x, y, a = _prepare(model, x, y, attributions)
    height, width = x.shape[-2:]
    segments = (superpixels(x) if segments is None else segments.to(x.device)).reshape(x.shape[0], -1).long()
    counts = segments.amax(1) + 1
    steps = int(counts.max())
    ranks = torch.empty_like(segments)
    for b in range(x.shape[0]):
        means = torch.zeros(steps, dtype=a.dtype, device=a.device).index_add_(0, segments[b], a[b])
        means = means / torch.bincount(segments[b], minlength=steps).clamp_min(1)
        means[int(counts[b]):] = float("-inf")
        order = means.sort(descending=True, stable=True).indices
        position = torch.empty_like(order).scatter_(0, order, torch.arange(steps, device=x.device))
        ranks[b] = position[segments[b]]

    def masks(b: int, part: slice) -> Tensor:
        return (ranks[b][None] <= torch.arange(steps, device=x.device)[part, None]).view(-1, 1, height, width)

    original = scores(model, x, y, softmax=softmax, batch_size=batch_size)
    curve = perturbed_scores(model, x, y, masks, steps, baseline, softmax=softmax, batch_size=batch_size)
    curve = curve / original[:, None]
    return torch.stack([counts[b] - torch.trapezoid(curve[b, :int(counts[b])]) for b in range(x.shape[0])])


def infidelity(model: Forward, x: Tensor, y, attributions: Tensor, *, samples: int = 10, std: float = 0.003,
               seed: int | torch.Generator | None = 0, noise: Tensor | None = None, normalize: bool = False,
               softmax: bool = False, batch_size: int | None = None) -> Tensor:
    """Infidelity (Yeh et al. 2019, https://arxiv.org/abs/1901.09392; Captum's ``infidelity``) ``[B]``, ↓: the mean
    over ``samples`` perturbations ``I`` (Gaussian, ``std``; or ``noise`` ``[S,B,C,H,W]``) of
    ``(Iᵀa − (f(x) − f(x − I)))²``; ``normalize`` first scales ``a`` by the paper's optimal β. Attributions
    ``[B,1,H,W]`` or ``[B,H,W]`` count for every channel of their pixel."""
    y = class_indices(y, x.shape[0], x.device)
    a = attributions.detach().to(x.device).double()
    a = a[:, None] if a.dim() == 3 else a
    a = a.expand(-1, x.shape[1], -1, -1) if a.shape[1] == 1 else a
    if a.shape != x.shape:
        raise ValueError(f"attributions {tuple(attributions.shape)} do not fit pictures {tuple(x.shape)}")
    if noise is None:
        noise = torch.randn(samples, *x.shape, generator=generator_for(seed), dtype=torch.float64).to(x) * std
    noise = noise.to(x)
    samples = noise.shape[0]
    original = scores(model, x, y, softmax=softmax, batch_size=batch_size)
    after = scores(model, (x[None] - noise).flatten(0, 1), y.repeat(samples), softmax=softmax,
                   batch_size=batch_size).view(samples, -1)
    dot = (noise.double() * a[None]).flatten(2).sum(-1)
    change = original[None] - after
    if normalize:
        dot = dot * ((dot * change).mean(0) / (dot * dot).mean(0))[None]
    return ((dot - change) ** 2).mean(0)


def sufficiency(model: Forward, x: Tensor, attributions: Tensor, *, threshold: float = 0.6,
                distance: str = "seuclidean", abs: bool = True) -> Tensor:
    """Sufficiency (Dasgupta et al. 2022, https://arxiv.org/abs/2207.04324) ``[B]``, ↑: among the *other* pictures
    of the batch whose maps lie within ``threshold`` of this one's (distances scaled by the batch's largest;
    ``seuclidean``: each pixel over its variance across the batch, or ``euclidean``), the share the model puts in
    the same class (0 when none is that close). A property of the set: the value depends on the other pictures."""
    a = per_pixel(attributions, x).flatten(1)
    a = a.abs() if abs else a
    if distance == "seuclidean":
        a = a / a.var(0, unbiased=True).sqrt()[None]
    elif distance != "euclidean":
        raise ValueError(f"distance must be 'seuclidean' or 'euclidean', got {distance!r}")
    d = torch.cdist(a, a)
    d = d / d.max() if bool((d != 0).any()) else d
    close = (d <= threshold) & ~torch.eye(len(a), dtype=torch.bool, device=a.device)
    classes = run(model, x).argmax(1).to(a.device)
    same = classes[None] == classes[:, None]
    count = close.sum(1)
    return torch.where(count > 0, (close & same).sum(1) / count.clamp_min(1), torch.zeros_like(count)).double()


def sensitivity_n(model: Forward, x: Tensor, y, attributions: Tensor, *, sizes: tuple[int, ...] = (1, 10, 100),
                  runs: int = 100, baseline: Baseline = 0.0, softmax: bool = False,
                  seed: int | torch.Generator | None = 0, batch_size: int | None = None) -> Tensor:
    """Sensitivity-n (Ancona et al. 2018, https://arxiv.org/abs/1711.06104) ``[B,len(sizes)]``, ↑: for each ``n`` in
    ``sizes``, the Pearson correlation over ``runs`` random subsets of ``n`` pixels between the subset's attribution
    and the drop of the score when it is replaced — :func:`faithfulness_correlation` at each size, per picture as
    in the paper (Quantus 0.6 correlates across the pictures of a batch instead)."""
    generator = generator_for(seed)
    return torch.stack([faithfulness_correlation(model, x, y, attributions, runs=runs, subset_size=n,
                                                 baseline=baseline, softmax=softmax, seed=generator,
                                                 batch_size=batch_size) for n in sizes], 1)


ROAD_PERCENTAGES = tuple(range(1, 100, 2))


def road(model: Forward, x: Tensor, y, attributions: Tensor, *, percentages=ROAD_PERCENTAGES, order: str = "morf",
         noise: float = 0.01, seed: int | torch.Generator | None = 0, batch_size: int | None = None) -> Tensor:
    """ROAD (Rong et al. 2022, https://arxiv.org/abs/2202.00449) ``[B,P]``: 1.0 where the model's top class is
    still ``y`` once the ``int(H·W·p/100)`` most (``morf``) or least (``lerf``) important pixels, for each ``p`` of
    ``percentages``, are replaced by noisy linear imputation (:mod:`~convscope.analysis.metrics.imputation`,
    Gaussian ``noise`` drawn with ``seed``), else 0.0. Quantus 0.6 returns the mean over the pictures (its
    accuracy); pixels are ranked by their attribution summed over the channels, so a colour picture loses ``p`` %
    of its pixels in every channel (Quantus ranks the C·H·W broadcast values and imputes pixel numbers, which
    removes fewer pixels or fails, see docs/evaluation.md)."""
    from convscope.analysis.metrics.imputation import linear_imputation

    if order not in ("morf", "lerf"):
        raise ValueError(f"order must be 'morf' or 'lerf', got {order!r}")
    x, y, a = _prepare(model, x, y, attributions)
    pixels = a.shape[1]
    shares = [float(p) for p in percentages]
    if not shares or any(not 0 <= p < 100 for p in shares):
        raise ValueError(f"percentages must be at least one number in [0, 100) (100 would remove every pixel), "
                         f"got {list(percentages)!r}")
    ranks = _ranks(a, descending=order == "morf").view(x.shape[0], 1, *x.shape[-2:])
    generator = generator_for(seed, x.device)
    per = pictures_per_pass(batch_size, x.shape, x.device)
    kept = []
    for p in percentages:
        removed = ranks < int(pixels * p / 100)
        pictures = torch.cat([linear_imputation(part, gone) for part, gone in zip(x.split(per), removed.split(per),
                                                                                   strict=True)])
        if noise:  # drawn for the whole batch: the same values whatever the pass size
            draw = torch.randn(pictures.shape, generator=generator, dtype=pictures.dtype, device=generator.device)
            pictures = torch.where(removed, pictures + noise * draw.to(pictures.device), pictures)
        kept.append(run(model, pictures.to(x.dtype), per).argmax(1) == y)
    return torch.stack(kept, 1).double()


def area(curve: Tensor) -> Tensor:
    """Area ``[B]`` under each curve ``[B,S]`` over [0, 1] (the trapezoid rule), comparable across step counts."""
    if curve.shape[1] < 2:
        return curve[:, 0]
    return torch.trapezoid(curve, dx=1 / (curve.shape[1] - 1), dim=1)


__all__ = ["area", "faithfulness_correlation", "faithfulness_estimate", "infidelity", "irof", "monotonicity",
           "monotonicity_correlation", "perturbed_scores", "pixel_flipping", "random_subsets", "region_perturbation",
           "road", "selectivity", "sensitivity_n", "sufficiency", "superpixels"]
