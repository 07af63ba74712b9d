"""Adversarial robustness: accuracy under FGSM and PGD over the attack budget ε, and what the gradients of a
robust model look like.

Accuracy under attack is the share of labelled pictures still classified correctly after an untargeted L∞
attack of radius ε against their true label — FGSM (Goodfellow et al. 2015, https://arxiv.org/abs/1412.6572)
and PGD from a random start (Madry et al. 2018, https://arxiv.org/abs/1706.06083), the library's
:func:`~convscope.synthesis.fgsm` and :func:`~convscope.synthesis.pgd`. Adversarially trained models have input
gradients that look like the object (Tsipras et al. 2019, https://arxiv.org/abs/1805.12152):
:func:`gradient_comparison` shows them side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from convscope.models.model import Model
from convscope.render.colormaps import normalize
from convscope.render.layout import grid, titled
from convscope.render.picture import Picture
from convscope.render.plots import figure_to_picture, new_figure
from convscope.reprs import short_repr

ATTACKS = ("fgsm", "pgd")


@dataclass
class RobustnessResult:
    """``accuracy[model][attack][i]``: accuracy under ``attack`` at ``epsilons[i]`` (ε = 0: clean accuracy)."""

    __repr__ = short_repr

    epsilons: list[float]
    accuracy: dict[str, dict[str, list[float]]]
    pictures: int
    steps: int

    def rows(self) -> list[dict[str, float | str]]:
        return [{"model": model, "attack": attack, "epsilon": eps, "accuracy": acc}
                for model, by_attack in self.accuracy.items() for attack, values in by_attack.items()
                for eps, acc in zip(self.epsilons, values, strict=True)]

    def markdown(self) -> str:
        """One row per model and attack, one column per ε; accuracy in %."""
        head = " | ".join(f"ε = {e:g}" for e in self.epsilons)
        lines = [f"| model | attack | {head} |", "|---|---|" + "---:|" * len(self.epsilons)]
        for model, by_attack in self.accuracy.items():
            for attack, values in by_attack.items():
                name = attack.upper() + (f"-{self.steps}" if attack == "pgd" else "")
                lines.append(f"| {model} | {name} | " + " | ".join(f"{100 * v:.1f}" for v in values) + " |")
        return "\n".join(lines)

    def lines(self) -> list[str]:
        width = max(len(m) for m in self.accuracy) + 2
        out = [f"{'model':{width}}{'attack':8}" + "".join(f"{f'ε={e:g}':>9}" for e in self.epsilons)]
        for model, by_attack in self.accuracy.items():
            for attack, values in by_attack.items():
                out.append(f"{model:{width}}{attack:8}" + "".join(f"{v:>9.1%}" for v in values))
        return out

    def picture(self) -> Picture:
        """Accuracy against ε: one colour per model, FGSM dashed and PGD solid."""
        figure, axes = new_figure(1, size=(6.2, 4.0))
        axis = axes[0][0]
        colours = ["tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange"]
        for index, (model, by_attack) in enumerate(self.accuracy.items()):
            for attack, values in by_attack.items():
                axis.plot(self.epsilons, [100 * v for v in values], marker="o", color=colours[index % 5],
                          linestyle="--" if attack == "fgsm" else "-",
                          label=f"{model}: {attack.upper()}" + (f"-{self.steps}" if attack == "pgd" else ""))
        axis.set_xlabel("ε (L∞, pixels in [0, 1])")
        axis.set_ylabel(f"accuracy % ({self.pictures} test pictures)")
        axis.set_ylim(0, 100)
        axis.set_title("Accuracy under attack")
        axis.legend(fontsize=8)
        figure.tight_layout()
        return figure_to_picture(figure)

    def _repr_png_(self) -> bytes:
        return self.picture()._repr_png_()


def accuracy_under_attack(model: Model, pictures: Tensor, labels: Tensor, epsilon: float, attack: str = "pgd", *,
                          steps: int = 20, batch_size: int = 250, seed: int = 0) -> float:
    """Share of ``pictures`` (``[B,C,H,W]`` in [0, 1] at the model's input size) classified as ``labels`` after an
    untargeted ``attack`` (``fgsm`` or ``pgd``: ``steps`` steps of 2.5·ε/steps from a random start) of L∞
    radius ``epsilon``; ``epsilon = 0`` gives the clean accuracy."""
    from convscope.synthesis.adversarial import fgsm, pgd
    from convscope.synthesis.loop import evaluate

    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}: use {', '.join(ATTACKS)}")
    if not 0 <= epsilon <= 1:
        raise ValueError(f"ε is a change of pixels in [0, 1], between 0 and 1, got {epsilon}")
    if pictures.dim() != 4 or len(pictures) != len(labels):
        raise ValueError(f"give pictures [B,C,H,W] and one label each, got {tuple(pictures.shape)} and "
                         f"{len(labels)} labels")
    correct = 0
    generator = torch.Generator().manual_seed(seed)
    for start in range(0, len(labels), batch_size):
        batch, truth = pictures[start:start + batch_size], labels[start:start + batch_size].cpu()
        if epsilon == 0:
            scores = evaluate(model, batch.expand(-1, 3, -1, -1))
        elif attack == "fgsm":
            scores = fgsm(model, batch, epsilon, labels=truth.tolist(), fit=False).after
        else:
            scores = pgd(model, batch, epsilon, step=2.5 * epsilon / steps, steps=steps, labels=truth.tolist(),
                         random_start=True, generator=generator, fit=False, progress=False).after
        correct += int((scores.argmax(1).cpu() == truth).sum())
    return correct / len(labels)


def robustness_curves(models: Model | Sequence[Model], pictures: Tensor, labels: Tensor,
                      epsilons: Sequence[float] = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2), *,
                      attacks: Sequence[str] = ATTACKS, steps: int = 20, batch_size: int = 250,
                      seed: int = 0) -> RobustnessResult:
    """:func:`accuracy_under_attack` of each model and attack at each ε (the same pictures for all)."""
    models = [models] if isinstance(models, Model) else list(models)
    if not models or not epsilons:
        raise ValueError("give at least one model and one ε")
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ValueError(f"give the models different names, got {names}")
    accuracy = {m.name: {a: [accuracy_under_attack(m, pictures, labels, float(e), a, steps=steps,
                                                   batch_size=batch_size, seed=seed) for e in epsilons]
                         for a in attacks} for m in models}
    return RobustnessResult([float(e) for e in epsilons], accuracy, len(labels), steps)


def gradient_comparison(models: Sequence[Model], pictures: Tensor, labels: Tensor, *,
                        tile_size: int = 84) -> Picture:
    """The pictures in the first row, then one row per model: the gradient of the true class's score at the
    model's input (signed: mid-grey is 0, light positive, dark negative; clipped at the 99.5th percentile)."""
    from convscope.attribution.base import input_gradient
    from convscope.targets import as_target

    channels = pictures.shape[1]
    tiles, captions = [pictures[b, :channels] for b in range(len(pictures))], []
    names = models[0].classes()
    captions = [names[int(label)] for label in labels]
    for model in models:
        inputs = model.preprocess.normalize(model.preprocess.fit(list(pictures))).to(model.device)
        grad = input_gradient(model, inputs, as_target(labels.to(model.device), model)).detach().cpu()
        shown = normalize(grad.mean(1, keepdim=True), "signed")
        tiles += [shown[b].expand(channels, -1, -1) for b in range(len(pictures))]
        captions += [model.name] * len(pictures)
    body = grid(torch.stack(tiles), columns=len(pictures), labels=captions, tile_size=tile_size)
    return titled(body, "Input gradients of the true class: " + " vs ".join(m.name for m in models),
                  "first row: the pictures and their labels; then one row per model "
                  "(mid-grey 0, light positive, dark negative)")
