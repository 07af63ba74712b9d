"""Data randomisation test (Adebayo et al. 2018, "Sanity Checks for Saliency Maps", §4,
https://arxiv.org/abs/1810.03292).

The same architecture is trained twice: on the true labels, and on a random permutation of them,
where it can only memorise its pictures. An explanation that depends on the relation between
pictures and labels must change between the two; one that looks the same for both explains the
architecture and the picture, not what the network learned. Each method's maps of the same class
are compared by Spearman rank correlation and SSIM, and reported as measured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from convscope.analysis.explainers import build, fixed_target, heatmaps, method_names
from convscope.analysis.similarity import map_similarity
from convscope.models.model import Model, as_model
from convscope.render.colormaps import colorize, normalize
from convscope.render.layout import grid, stack, text_picture, titled
from convscope.render.picture import Picture
from convscope.render.plots import figure_to_picture, new_figure
from convscope.reprs import short_repr
from convscope.targets import TargetLike


@dataclass
class DataRandomisation:
    """``spearman[m]``/``ssim[m]``: ``[B]`` similarity of each picture's two maps (Spearman is NaN where a map
    is constant, and left out of the mean); ``maps[m]``: ``[2,B,H,W]`` (true-label model first); ``skipped``:
    methods that do not apply to this network, with the reason."""

    __repr__ = short_repr

    methods: list[str]
    spearman: dict[str, Tensor]
    ssim: dict[str, Tensor]
    maps: dict[str, Tensor]
    pictures: Tensor
    skipped: dict[str, str]
    explained: list[str]  # the class explained for each picture

    def rows(self) -> list[dict[str, Any]]:
        return [{"method": m, "spearman": float(self.spearman[m].nanmean()), "ssim": float(self.ssim[m].mean()),
                 "pictures": len(self.pictures)} for m in self.methods]

    def summary(self) -> list[str]:
        lines = [f"{'method':28} {'Spearman':>9} {'SSIM':>6}"]
        lines += [f"{r['method']:28} {r['spearman']:9.2f} {r['ssim']:6.2f}" for r in self.rows()]
        lines += [f"{m:28} not applicable: {_first_clause(why)}" for m, why in self.skipped.items()]
        return lines

    def picture(self, shown: int = 4, tile_size: int = 88) -> Picture:
        """A bar chart of both similarities, then per method each picture's map under both models."""
        figure, axes = new_figure(1, size=(6.5, 3.2))
        axis, rows = axes[0][0], self.rows()
        x = torch.arange(len(rows)).tolist()
        axis.bar([i - 0.2 for i in x], [r["spearman"] for r in rows], width=0.4, label="Spearman")
        axis.bar([i + 0.2 for i in x], [r["ssim"] for r in rows], width=0.4, label="SSIM")
        axis.set_xticks(x, [r["method"] for r in rows], rotation=45, ha="right", fontsize=8)
        axis.set_ylabel("similarity: true vs random labels")
        axis.set_ylim(-0.2, 1.05)
        axis.axhline(0, color="grey", linewidth=0.5)
        axis.legend(fontsize=8)
        figure.suptitle("Data randomisation: does the explanation change when the labels were random?",
                        fontsize=10)
        figure.tight_layout()
        shown = min(shown, len(self.pictures))
        pictures = self.pictures[:shown].expand(-1, 3, -1, -1).repeat_interleave(2, 0)
        labels = [label for i in range(shown) for label in (self.explained[i], "")]  # aligned with the pairs below
        blocks = [titled(grid(pictures, columns=2 * shown, labels=labels, tile_size=tile_size), "pictures", size=13)]
        for m in self.methods:
            maps = self.maps[m][:, :shown].transpose(0, 1).reshape(-1, *self.maps[m].shape[-2:])
            tiles = colorize(normalize(maps, "percentile"), "inferno")
            names = [label for i in range(shown)
                     for label in ("true labels", f"random  {rho_label(float(self.spearman[m][i]))}")]
            blocks.append(titled(grid(tiles, columns=2 * shown, labels=names, tile_size=tile_size), m, size=13))
        parts = [figure_to_picture(figure), stack(blocks, direction="vertical", gap=4)]
        constant = sum(int(self.spearman[m][:shown].isnan().sum()) for m in self.methods)
        if constant:
            parts.append(text_picture([f"ρ n/a ({constant} pair{'s' * (constant > 1)} above): one of the two maps is "
                                       "constant (e.g. all zero), and a constant has no ranks, so Spearman's ρ is "
                                       "undefined; such pictures are left out of the mean ρ in the bar chart."],
                                      size=11))
        if self.skipped:
            reasons = [f"not applicable — {m}: {_first_clause(why)}" for m, why in self.skipped.items()]
            parts.append(text_picture(reasons, size=11))
        return stack(parts, direction="vertical", gap=10)

    def _repr_png_(self) -> bytes:
        return self.picture()._repr_png_()


def data_randomisation(trained: Model, random_labels: Model, inputs: Tensor, methods: Sequence[str] | None = None,
                       target: TargetLike = None, *,
                       options: Mapping[str, Mapping[str, Any]] | None = None) -> DataRandomisation:
    """Compare each method's maps on ``trained`` (true labels) and ``random_labels`` (same architecture,
    trained on permuted labels) for a normalised batch.

    Both explain the same class: ``target`` (e.g. the true labels), by default ``trained``'s top
    prediction. Methods that refuse this network (CAM without global average pooling) are skipped
    and listed with the reason.
    """
    trained, random_labels = as_model(trained), as_model(random_labels)
    if type(trained.net) is not type(random_labels.net):
        raise ValueError("the data randomisation test compares one architecture trained two ways; got "
                         f"{type(trained.net).__name__} and {type(random_labels.net).__name__}")
    inputs = inputs.to(trained.device)
    fixed, classes = fixed_target(trained, inputs, target)
    maps, skipped = {}, {}
    for m in method_names(methods):
        try:
            maps[m] = torch.stack([heatmaps(build(m, model, options), inputs.to(model.device), fixed).cpu()
                                   for model in (trained, random_labels)])
        except ValueError as error:
            skipped[m] = str(error)
    compared = {m: map_similarity(v[0], v[1]) for m, v in maps.items()}
    rank, structure = {m: r for m, (r, _) in compared.items()}, {m: q for m, (_, q) in compared.items()}
    shown = trained.preprocess.denormalize(inputs).clamp(0, 1).cpu()
    names = trained.class_names or []
    explained = ([names[c] if c < len(names) else f"class {c}" for c in classes.tolist()] if classes is not None
                 else [str(fixed)] * len(inputs))
    return DataRandomisation(list(maps), rank, structure, maps, shown, skipped, explained)


def rho_label(value: float) -> str:
    """``'ρ 0.53'``, or ``'ρ n/a'`` where the rank correlation is undefined (a constant map has no ranks)."""
    return "ρ n/a" if value != value else f"ρ {value:.2f}"


def _first_clause(message: str) -> str:
    return message.split("; ")[0]


# Occlusion's quick settings are sized for 224-pixel photos; these fit 28-pixel Fashion-MNIST pictures.
FASHION_OPTIONS: dict[str, dict[str, Any]] = {"occlusion": {"size": 7, "stride": 2}}


def fashion_label_randomisation(methods: Sequence[str] | None = None, *, root: str | None = None,
                                options: Mapping[str, Mapping[str, Any]] | None = None,
                                device: torch.device | str | None = None) -> DataRandomisation:
    """The data randomisation test on the shipped Fashion-MNIST pair, explaining the true class of one
    picture per class from the 1 000 training pictures both models were trained on."""
    from convscope.models.fashion import FASHION_PREPROCESS, label_randomisation_pair
    from convscope.models.fashion_training import LABEL_PAIR_SETTINGS, training_pictures

    trained, random_labels = (m.to(device) if device is not None else m for m in label_randomisation_pair())
    pictures, labels = training_pictures(root, LABEL_PAIR_SETTINGS)  # the true labels: no shuffling here
    first = torch.stack([(labels == c).nonzero()[0, 0] for c in labels.unique()])
    settings = {**FASHION_OPTIONS, **(options or {})}
    return data_randomisation(trained, random_labels, FASHION_PREPROCESS.normalize(pictures[first]), methods,
                              labels[first], options=settings)
