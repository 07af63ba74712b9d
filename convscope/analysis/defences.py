"""Defences against fooling, measured honestly: every defence against the attack adapted to it.

The lectures list four fixes: adversarial training, matching the representations of perturbed pictures,
noise in training (all three: :mod:`convscope.models.defence_training`, ``convscope train --defence``) and
noise or smoothing of the input at test time. Test-time defences can hide the gradient instead of removing
the weakness (Athalye, Carlini & Wagner 2018, https://arxiv.org/abs/1802.00420), so each is attacked twice:

- input **smoothing** (a Gaussian blur of σ px): by PGD on the undefended model, transferred — what a
  defence-unaware evaluation reports — and by **BPDA**: PGD through the defended model with the blur's
  backward pass replaced by the identity;
- input **noise** (Gaussian, σ on the [0, 1] scale, drawn anew at every forward pass): by plain PGD (one draw
  per step) and by **EOT**: PGD on the gradient averaged over ``samples`` draws (expectation over
  transformation).

Trained defences are attacked white-box by FGSM and PGD. Accuracy is the share of labelled test pictures
still classified correctly; runs that differ only in their training seed are pooled as mean ± std.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import reduce
from operator import add

import torch
import torch.nn.functional as F
from torch import Tensor

from convscope.models.model import Model
from convscope.render.picture import Picture
from convscope.render.plots import figure_to_picture, new_figure
from convscope.reprs import short_repr

Defend = Callable[[Tensor, bool], Tensor]  # pixels, whether to use BPDA's identity backward → defended pixels


def gaussian_blur(pixels: Tensor, sigma: float) -> Tensor:
    """A Gaussian blur of ``sigma`` px (kernel ±3σ, replicate padding) of ``[B,C,H,W]`` pixels."""
    radius = max(1, int(3 * sigma + 0.5))
    offsets = torch.arange(-radius, radius + 1, dtype=pixels.dtype, device=pixels.device)
    kernel = torch.exp(-offsets.square() / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    channels = pixels.shape[1]
    out = F.pad(pixels, (radius, radius, 0, 0), mode="replicate")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    out = F.pad(out, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def smoothing(sigma: float) -> Defend:
    """The input-smoothing defence; with ``bpda`` its backward pass is the identity (Athalye et al.'s BPDA)."""
    def defend(pixels: Tensor, bpda: bool = False) -> Tensor:
        smoothed = gaussian_blur(pixels, sigma)
        return pixels + (smoothed - pixels).detach() if bpda else smoothed
    return defend


def noise(sigma: float, generator: torch.Generator) -> Defend:
    """The input-noise defence: Gaussian noise of ``sigma``, a new draw at every call, clipped to [0, 1]."""
    def defend(pixels: Tensor, bpda: bool = False) -> Tensor:
        drawn = torch.randn(pixels.shape, generator=generator, device=pixels.device, dtype=pixels.dtype)
        return (pixels + sigma * drawn).clamp(0, 1)
    return defend


def accuracy(model: Model, pixels: Tensor, labels: Tensor, defend: Defend | None = None) -> float:
    """Share of ``pixels`` (``[N,C,H,W]`` in [0, 1]) whose top class through ``defend`` and ``model`` is the label."""
    with torch.no_grad():
        inputs = defend(pixels, False) if defend else pixels
        return float((model.net(model.preprocess.normalize(inputs)).argmax(1) == labels).float().mean())


def attack(model: Model, pixels: Tensor, labels: Tensor, epsilon: float, *, steps: int = 20,
           defend: Defend | None = None, bpda: bool = False, samples: int = 1,
           generator: torch.Generator | None = None) -> Tensor:
    """Untargeted L∞ PGD of radius ``epsilon`` (steps of 2.5ε/steps from a random start; ``steps=1``: FGSM from
    the picture) against ``labels``, through ``defend`` (BPDA with ``bpda``), the loss averaged over ``samples``
    draws of a random defence (EOT). Returns the adversarial pixels; the model is left as found."""
    if epsilon == 0:
        return pixels.clone()
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    was_training = model.net.training
    model.net.eval()
    try:
        if steps == 1:
            delta, step = torch.zeros_like(pixels), epsilon
        else:
            start = torch.rand(pixels.shape, generator=generator, dtype=pixels.dtype).to(pixels.device)
            delta, step = (2 * start - 1) * epsilon, 2.5 * epsilon / steps
        for _ in range(steps):
            delta.requires_grad_(True)
            candidate = (pixels + delta).clamp(0, 1)
            loss: Tensor = reduce(add, (F.cross_entropy(model.net(model.preprocess.normalize(
                defend(candidate, bpda) if defend else candidate)), labels) for _ in range(samples)))
            (grad,) = torch.autograd.grad(loss, delta)
            delta = (delta.detach() + step * grad.sign()).clamp(-epsilon, epsilon)
        return (pixels + delta).clamp(0, 1).detach()
    finally:
        model.net.train(was_training)


@dataclass
class DefenceRow:
    """One defended model under one attack: accuracy per ε over the training seeds."""

    __repr__ = short_repr

    model: str
    defence: str
    attack: str
    adaptive: bool
    accuracy: list[list[float]] = field(default_factory=list)  # [seed][ε]

    def mean(self) -> list[float]:
        return [statistics.fmean(values) for values in zip(*self.accuracy, strict=True)]

    def std(self) -> list[float]:
        return [statistics.stdev(values) if len(values) > 1 else 0.0 for values in zip(*self.accuracy, strict=True)]


@dataclass
class DefenceTable:
    """Every defence under its attacks; ``verdicts`` say where an adaptive attack removed a defence's robustness."""

    __repr__ = short_repr

    epsilons: list[float]
    rows: list[DefenceRow]
    pictures: int
    steps: int

    def verdicts(self) -> list[str]:
        """Each test-time defence whose accuracy falls by more than 10 points under the adaptive attack."""
        out = []
        for plain in (r for r in self.rows if not r.adaptive and r.defence.startswith("input")):
            adaptive = next((r for r in self.rows if r.adaptive and (r.model, r.defence) == (plain.model,
                                                                                              plain.defence)), None)
            if adaptive is None:
                continue
            drop = plain.mean()[-1] - adaptive.mean()[-1]
            at = f"ε = {self.epsilons[-1]:g}"
            if drop > 0.10:
                out.append(f"{plain.model} + {plain.defence}: {plain.mean()[-1]:.0%} under {plain.attack} but "
                           f"{adaptive.mean()[-1]:.0%} under {adaptive.attack} at {at} — the robustness was hidden "
                           "gradients, not robustness")
            else:
                out.append(f"{plain.model} + {plain.defence}: the adaptive {adaptive.attack} changes little at {at} "
                           f"({plain.mean()[-1]:.0%} → {adaptive.mean()[-1]:.0%})")
        return out

    def markdown(self) -> str:
        """One row per model, defence and attack; accuracy in % (± std over training seeds where there are several)."""
        head = " | ".join(f"ε = {e:g}" for e in self.epsilons)
        lines = [f"| model | defence | attack | {head} |", "|---|---|---|" + "---:|" * len(self.epsilons)]
        for row in self.rows:
            cells = [f"{100 * m:.1f}" + (f" ± {100 * s:.1f}" if len(row.accuracy) > 1 else "")
                     for m, s in zip(row.mean(), row.std(), strict=True)]
            lines.append(f"| {row.model} | {row.defence} | {row.attack} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def lines(self) -> list[str]:
        return [self.markdown(), "", *self.verdicts()]

    def picture(self) -> Picture:
        """One panel per trained model: accuracy against ε (± std over seeds) as trained and behind each input
        defence; solid lines are the attacks adapted to the defence, dashed ones the others."""
        models = list(dict.fromkeys(row.model for row in self.rows))
        defences = list(dict.fromkeys(row.defence for row in self.rows))
        colours = {defence: f"C{index}" for index, defence in enumerate(defences)}
        figure, axes = new_figure(len(models), size=(3.6, 3.4))
        for axis, model in zip(axes[0], models, strict=True):
            for row in (r for r in self.rows if r.model == model):
                mean, std = [100 * v for v in row.mean()], [100 * v for v in row.std()]
                axis.errorbar(self.epsilons, mean, yerr=std, color=colours[row.defence], capsize=2, marker="o",
                              markersize=3, linestyle="-" if row.adaptive else "--",
                              label=f"{row.defence}: {row.attack}")
            axis.set_title(model, fontsize=9)
            axis.set_ylim(0, 100)
            axis.set_xlabel("ε (L∞, pixels in [0, 1])", fontsize=8)
        axes[0][0].set_ylabel(f"accuracy % ({self.pictures} test pictures)", fontsize=8)
        handles, labels = axes[0][0].get_legend_handles_labels()
        figure.legend(handles, labels, loc="lower center", ncol=2, fontsize=7, frameon=False)
        figure.suptitle("Defences under attack (solid: the attack adapted to the defence; bars: ± std over seeds)",
                        fontsize=10)
        figure.tight_layout(rect=(0, 0.06 * len(labels) / 2, 1, 0.95))
        return figure_to_picture(figure)


def labelled_pixels(source: str, limit: int, model: Model) -> tuple[Tensor, Tensor]:
    """The first ``limit`` labelled pictures of a data set (``fashion-mnist:test``, a folder with class
    sub-folders) as ``model`` sees them before normalisation, ``[N,C,H,W]`` in [0, 1], and their labels."""
    from convscope.data.opening import open_dataset
    from convscope.data.pictures import FittedPictures

    data = open_dataset(source, limit=limit)
    labels = data.labels()
    if (labels < 0).any():
        raise ValueError(f"{source} has no labels: give Fashion-MNIST or a folder with class sub-folders")
    fitted = FittedPictures(data, model.preprocess)
    pixels = torch.stack([fitted[i][1] for i in range(len(fitted))])
    return pixels.to(model.device), labels.to(model.device)


def defence_table(models: Mapping[str, Sequence[Model]], pixels: Tensor, labels: Tensor, epsilons: Sequence[float], *,
                  smooth_input: float = 0.0, noise_input: float = 0.0, steps: int = 20, samples: int = 8,
                  seed: int = 0) -> DefenceTable:
    """Accuracy of each named group of models (one per training seed) under FGSM and PGD, and — for
    ``smooth_input``/``noise_input`` > 0 — of each model behind those input defences under the plain and the
    adaptive attack (transfer vs BPDA, one draw vs EOT over ``samples``)."""
    if not epsilons or any(not 0 <= e <= 1 for e in epsilons):
        raise ValueError(f"ε values are between 0 and 1 (pixels in [0, 1]), got {list(epsilons)}")
    if smooth_input < 0 or noise_input < 0 or not (smooth_input <= 10 and noise_input <= 1):
        raise ValueError("--smooth-input is a blur σ in px (0 to 10) and --noise-input a noise σ (0 to 1)")
    rows: list[DefenceRow] = []

    def measure(row: DefenceRow, run: Callable[[Model, float, torch.Generator], float]) -> None:
        for index, model in enumerate(models[row.model]):
            generator = torch.Generator().manual_seed(seed + index)
            row.accuracy.append([run(model, float(e), generator) for e in epsilons])
        rows.append(row)

    blur = smoothing(smooth_input)
    for name in models:
        measure(DefenceRow(name, "as trained", "FGSM", False), lambda m, e, g: accuracy(
            m, attack(m, pixels, labels, e, steps=1, generator=g), labels))
        measure(DefenceRow(name, "as trained", f"PGD-{steps}", True), lambda m, e, g: accuracy(
            m, attack(m, pixels, labels, e, steps=steps, generator=g), labels))
        if smooth_input > 0:
            label = f"input smoothing σ={smooth_input:g}"
            measure(DefenceRow(name, label, f"PGD-{steps} on the bare model (transfer)", False),
                    lambda m, e, g: accuracy(
                        m, attack(m, pixels, labels, e, steps=steps, generator=g), labels, blur))
            measure(DefenceRow(name, label, f"PGD-{steps} BPDA", True), lambda m, e, g: accuracy(
                m, attack(m, pixels, labels, e, steps=steps, defend=blur, bpda=True, generator=g), labels, blur))
        if noise_input > 0:
            label = f"input noise σ={noise_input:g}"
            measure(DefenceRow(name, label, f"PGD-{steps}, one draw a step", False), lambda m, e, g: accuracy(
                m, attack(m, pixels, labels, e, steps=steps, defend=noise(noise_input, g), generator=g), labels,
                noise(noise_input, torch.Generator().manual_seed(seed + 1000))))
            measure(DefenceRow(name, label, f"PGD-{steps} EOT×{samples}", True), lambda m, e, g: accuracy(
                m, attack(m, pixels, labels, e, steps=steps, defend=noise(noise_input, g), samples=samples,
                          generator=g), labels, noise(noise_input, torch.Generator().manual_seed(seed + 1000))))
    return DefenceTable(list(map(float, epsilons)), rows, len(labels), steps)
