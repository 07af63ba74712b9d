"""Robustness: does the explanation stay put when the picture barely changes? ↓ for both.

- Max-sensitivity and average sensitivity (Yeh et al. 2019, https://arxiv.org/abs/1901.09392; Captum's
  ``sensitivity_max``): the largest / mean ``‖a(x) − a(x + δ)‖ / ‖a(x)‖`` (Frobenius norms) over ``samples`` draws of
  uniform noise δ in [−radius, radius] on every input value.
- Relative input / output / representation stability (Agarwal et al. 2022): the relative change of the map over
  the relative change of the picture / the change of the logits / the relative change of an inner layer.
- Local Lipschitz estimate (Alvarez-Melis & Jaakkola 2018): the largest ``‖a − a'‖ / ‖x − x'‖`` under Gaussian
  noise.
- Continuity (Montavon et al. 2018): the largest ``‖a − a'‖₁ / ‖x − x'‖₂`` as the picture slides sideways.

``explain(x, y)`` returns attributions ``[B,...]`` of pictures ``x`` for classes ``y``; it is called on a few
pictures' worth of noisy copies at a time (:func:`~convscope.analysis.passes.pictures_per_pass`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from convscope.analysis.metrics.common import Forward, class_indices, generator_for, run
from convscope.analysis.passes import pictures_per_pass

Explain = Callable[[Tensor, Tensor], Tensor]


def uniform_noise(x: Tensor, samples: int, radius: float, seed: int | torch.Generator | None = 0) -> Tensor:
    """``[samples,B,C,H,W]`` noise drawn uniformly in [−radius, radius] with a seeded generator."""
    generator = generator_for(seed)
    return ((torch.rand(samples, *x.shape, generator=generator, dtype=torch.float64) * 2 - 1) * radius).to(x)


def sensitivities(explain: Explain, x: Tensor, y, attributions: Tensor | None = None, *, samples: int = 200,
                  radius: float = 0.2, seed: int | torch.Generator | None = 0, noise: Tensor | None = None,
                  model: Forward | None = None, batch_size: int | None = None) -> Tensor:
    """``‖a(x) − a(x + δ)‖ / ‖a(x)‖`` for each draw ``[B,samples]`` (NaN where ``model``, if given, changes its top
    class under the noise). ``noise`` ``[samples,B,C,H,W]``: given instead of drawn."""
    y = class_indices(y, x.shape[0], x.device)
    a = (explain(x, y) if attributions is None else attributions).detach().flatten(1).double()
    noisy, moved = _noisy_explanations(explain, x, y, noise, samples, radius, seed, batch_size)
    moved = moved.flatten(2)
    ratio = (a[None] - moved).norm(dim=-1) / a.norm(dim=-1)[None]
    return _unless_changed(ratio, model, x, noisy).T


def _noisy_explanations(explain: Explain, x: Tensor, y: Tensor, noise: Tensor | None, samples: int, radius: float,
                        seed, batch_size: int | None) -> tuple[Tensor, Tensor]:
    """Noisy copies ``[S,B,C,H,W]`` of ``x`` and their explanations ``[S,B,...]``, a few pictures per call."""
    if noise is None:
        noise = uniform_noise(x, samples, radius, seed)
    noisy = x[None] + noise.to(x)
    return noisy, _explanations(explain, noisy, y, batch_size)


def _explanations(explain: Explain, copies: Tensor, y: Tensor, batch_size: int | None) -> Tensor:
    """Explanations ``[S,B,...]`` of copies ``[S,B,C,H,W]`` of a batch, a few pictures per call."""
    samples, shape = copies.shape[0], copies.shape[1:]
    flat = copies.flatten(0, 1)  # [samples·B,C,H,W], sample after sample
    labels = y.repeat(samples)
    per = max(1, pictures_per_pass(batch_size, shape, copies.device) // shape[0]) * shape[0]
    moved = torch.cat([explain(flat[i:i + per], labels[i:i + per]).detach().double()
                       for i in range(0, len(flat), per)])
    return moved.view(samples, shape[0], *moved.shape[1:])


def _unless_changed(values: Tensor, model: Forward | None, x: Tensor, noisy: Tensor) -> Tensor:
    """``values`` ``[S,B]`` with NaN where ``model`` (if given) changes its top class on the noisy copy."""
    if model is None:
        return values
    before = run(model, x).argmax(1)
    after = run(model, noisy.flatten(0, 1)).argmax(1).view(noisy.shape[0], -1)
    return values.masked_fill(after != before[None], float("nan"))


def relative_input_stability(explain: Explain, x: Tensor, y, attributions: Tensor | None = None, *,
                             samples: int = 200, radius: float = 0.2, eps: float = 1e-6,
                             seed: int | torch.Generator | None = 0, noise: Tensor | None = None,
                             model: Forward | None = None, batch_size: int | None = None) -> Tensor:
    """Relative input stability (Agarwal et al. 2022, https://arxiv.org/abs/2203.06877) ``[B]``, ↓: the largest,
    over noisy copies whose top class ``model`` (if given) keeps, of ``‖(a − a')/a‖ / ‖(x − x')/x‖`` (relative
    changes; zeros in ``a`` and ``x`` count as ``eps``). Quantus 0.6 takes the plain maximum, so one copy whose class
    changes makes the whole picture NaN; convscope skips such copies as the paper's neighbourhood does."""
    y = class_indices(y, x.shape[0], x.device)
    a = (explain(x, y) if attributions is None else attributions).detach().double()
    noisy, moved = _noisy_explanations(explain, x, y, noise, samples, radius, seed, batch_size)
    top = ((a[None] - moved) / (a + (a == 0) * eps)[None]).flatten(2).norm(dim=-1)
    xd = x.double()
    bottom = ((xd[None] - noisy.double()) / (xd + (xd == 0) * eps)[None]).flatten(2).norm(dim=-1)
    ratio = _unless_changed(top / (bottom + (bottom == 0) * eps), model, x, noisy)
    return ratio.nan_to_num(float("-inf")).amax(0).masked_fill(ratio.isnan().all(0), float("nan"))


def max_sensitivity(explain: Explain, x: Tensor, y, attributions: Tensor | None = None, **options) -> Tensor:
    """The largest :func:`sensitivities` ``[B]`` (ignoring NaN)."""
    s = sensitivities(explain, x, y, attributions, **options)
    return s.nan_to_num(float("-inf")).amax(1).masked_fill(s.isnan().all(1), float("nan"))


def avg_sensitivity(explain: Explain, x: Tensor, y, attributions: Tensor | None = None, **options) -> Tensor:
    """The mean :func:`sensitivities` ``[B]`` (ignoring NaN)."""
    return sensitivities(explain, x, y, attributions, **options).nanmean(1)


def relative_output_stability(explain: Explain, x: Tensor, y, attributions: Tensor | None = None, *,
                              model: Forward, samples: int = 200, radius: float = 0.2, eps: float = 1e-6,
                              seed: int | torch.Generator | None = 0, noise: Tensor | None = None,
                              batch_size: int | None = None) -> Tensor:
    """Relative output stability (Agarwal et al. 2022, https://arxiv.org/abs/2203.06877) ``[B]``, ↓: the largest,
    over noisy copies whose top class ``model`` keeps, of ``‖(a − a')/a‖ / ‖h(x) − h(x')‖`` with ``h`` the model's
    output (logits)."""
    y = class_indices(y, x.shape[0], x.device)
    a = (explain(x, y) if attributions is None else attributions).detach().double()
    noisy, moved = _noisy_explanations(explain, x, y, noise, samples, radius, seed, batch_size)
    top = ((a[None] - moved) / (a + (a == 0) * eps)[None]).flatten(2).norm(dim=-1)
    before, after = run(model, x), run(model, noisy.flatten(0, 1)).view(noisy.shape[0], x.shape[0], -1)
    bottom = (before[None] - after).norm(dim=-1)
    ratio = _unless_changed(top / (bottom + (bottom == 0) * eps), model, x, noisy)
    return ratio.nan_to_num(float("-inf")).amax(0).masked_fill(ratio.isnan().all(0), float("nan"))


def local_lipschitz_estimate(explain: Explain, x: Tensor, y, attributions: Tensor | None = None, *,
                             samples: int = 200, std: float = 0.1, seed: int | torch.Generator | None = 0,
                             noise: Tensor | None = None, model: Forward | None = None,
                             batch_size: int | None = None) -> Tensor:
    """Local Lipschitz estimate (Alvarez-Melis & Jaakkola 2018, https://arxiv.org/abs/1806.08049) ``[B]``, ↓: the
    largest ``‖a − a'‖ / ‖x − x'‖`` over ``samples`` copies with Gaussian noise of ``std`` (``noise``: given)."""
    if noise is None:
        noise = torch.randn(samples, *x.shape, generator=generator_for(seed), dtype=torch.float64).to(x) * std
    y = class_indices(y, x.shape[0], x.device)
    a = (explain(x, y) if attributions is None else attributions).detach().double()
    noisy, moved = _noisy_explanations(explain, x, y, noise, samples, 0.0, seed, batch_size)
    top = (a[None] - moved).flatten(2).norm(dim=-1)
    bottom = (x.double()[None] - noisy.double()).flatten(2).norm(dim=-1)
    ratio = _unless_changed(top / (bottom + 1e-10), model, x, noisy)
    return ratio.nan_to_num(float("-inf")).amax(0).masked_fill(ratio.isnan().all(0), float("nan"))


def relative_representation_stability(explain: Explain, x: Tensor, y, attributions: Tensor | None = None, *,
                                      representation: Callable[[Tensor], Tensor], samples: int = 200,
                                      radius: float = 0.2, eps: float = 1e-6,
                                      seed: int | torch.Generator | None = 0, noise: Tensor | None = None,
                                      model: Forward | None = None, batch_size: int | None = None) -> Tensor:
    """Relative representation stability (Agarwal et al. 2022, https://arxiv.org/abs/2203.06877) ``[B]``, ↓: the
    largest, over noisy copies whose top class ``model`` (if given) keeps, of ``‖(a − a')/a‖ / ‖(L − L')/L‖`` with
    ``L = representation(x)`` an inner layer's activations (e.g. a feature extractor's output)."""
    y = class_indices(y, x.shape[0], x.device)
    a = (explain(x, y) if attributions is None else attributions).detach().double()
    noisy, moved = _noisy_explanations(explain, x, y, noise, samples, radius, seed, batch_size)
    top = ((a[None] - moved) / (a + (a == 0) * eps)[None]).flatten(2).norm(dim=-1)
    with torch.no_grad():
        inner = representation(x).flatten(1).double()
        shifted = representation(noisy.flatten(0, 1)).flatten(1).double().view(noisy.shape[0], x.shape[0], -1)
    bottom = ((inner[None] - shifted) / (inner + (inner == 0) * eps)[None]).norm(dim=-1)
    ratio = _unless_changed(top / (bottom + (bottom == 0) * eps), model, x, noisy)
    return ratio.nan_to_num(float("-inf")).amax(0).masked_fill(ratio.isnan().all(0), float("nan"))


def translations(x: Tensor, shifts: list[int]) -> Tensor:
    """Copies ``[S,B,C,H,W]`` of ``x`` moved ``shifts[s]`` pixels to the right (left when negative), the uncovered
    columns filled with each picture's smallest value (Quantus' "black")."""
    width = x.shape[-1]
    fill = x.flatten(1).amin(1).view(-1, 1, 1, 1).expand_as(x)
    out = []
    for shift in shifts:
        if not -width <= shift <= width:
            raise ValueError(f"a shift must be within the picture's width ({width}), got {shift}")
        moved = fill.clone()
        if shift >= 0:
            moved[..., shift:] = x[..., :width - shift]
        else:
            moved[..., :shift] = x[..., -shift:]
        out.append(moved)
    return torch.stack(out)


def continuity(explain: Explain, x: Tensor, y, attributions: Tensor | None = None, *, steps: int = 28,
               abs: bool = True, normalise: bool = True, model: Forward | None = None,
               batch_size: int | None = None) -> Tensor:
    """Continuity (Montavon et al. 2018, https://arxiv.org/abs/1706.07979) ``[B]``, ↓: the largest, over ``steps``
    horizontal translations of the picture (by ``d, 2d, …`` pixels from ``−W``, ``d = (2W+1) // steps``; the
    uncovered columns take the picture's smallest value), of ``‖a(x) − a(x')‖₁ / (‖x − x'‖₂ + 1e-9)``, the maps
    ``abs`` (|values|) and ``normalise`` (each divided by its largest |value|; Quantus 0.6 divides the batch by its
    largest). Copies whose top class ``model`` (if given) changes are skipped. As in the paper the translated map
    is compared with the original where it stands, not moved back: a map that follows the object also counts."""
    width = x.shape[-1]
    if isinstance(steps, bool) or not isinstance(steps, int) or not 0 < steps <= 2 * width + 1:
        raise ValueError(f"steps must be between 1 and 2·width + 1 ({2 * width + 1}), got {steps!r}")
    y = class_indices(y, x.shape[0], x.device)
    step = (2 * width + 1) // steps
    moved = translations(x, [-width + step * (s + 1) for s in range(steps)])

    def prepared(maps: Tensor, leading: int) -> Tensor:
        maps = maps.detach().double().flatten(leading)
        if normalise:
            maps = maps / maps.abs().amax(-1, keepdim=True).clamp_min(torch.finfo(maps.dtype).tiny)
        return maps.abs() if abs else maps

    a = prepared(explain(x, y) if attributions is None else attributions, 1)
    shifted = prepared(_explanations(explain, moved, y, batch_size), 2)
    top = (a[None] - shifted).abs().sum(-1)
    bottom = (x.double()[None] - moved.double()).flatten(2).norm(dim=-1)
    ratio = _unless_changed(top / (bottom + 1e-9), model, x, moved)
    return ratio.nan_to_num(float("-inf")).amax(0).masked_fill(ratio.isnan().all(0), float("nan"))
