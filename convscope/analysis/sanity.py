"""Sanity checks for saliency maps (Adebayo et al. 2018, https://arxiv.org/abs/1810.03292).

Cascading model-parameter randomisation: stages of the network are re-drawn at random
from the top down, and every method's explanation of the *same class* is compared with the
original by Spearman rank correlation and SSIM. An explanation that hardly changes while the
network is destroyed does not explain the network. The paper's finding — guided backprop
(and guided Grad-CAM) barely change — is reported as measured, not hidden.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from convscope.analysis.explainers import build, fixed_target, heatmaps, method_names
from convscope.analysis.randomisation import cascading_randomisation, stages
from convscope.analysis.similarity import map_similarity
from convscope.models.model import Model, as_model
from convscope.progress import progress_bar
from convscope.render.colormaps import colorize, normalize
from convscope.render.layout import grid, stack, titled
from convscope.render.picture import Picture
from convscope.render.plots import figure_to_picture, new_figure
from convscope.reprs import short_repr
from convscope.targets import TargetLike


@dataclass
class SanityChecks:
    """``spearman[m]``/``ssim[m]``: ``[S]`` mean similarity to the original at each cascade stage;
    ``maps[m]``: ``[S+1,B,H,W]`` heatmaps (original first)."""

    __repr__ = short_repr

    methods: list[str]
    stages: list[str]
    spearman: dict[str, Tensor]
    ssim: dict[str, Tensor]
    maps: dict[str, Tensor]

    def rows(self) -> list[dict[str, Any]]:
        return [{"method": m, "stage": s, "randomised_from_top_to": s, "spearman": float(self.spearman[m][i]),
                 "ssim": float(self.ssim[m][i])} for m in self.methods for i, s in enumerate(self.stages)]

    def to_csv(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(self.rows()[0]))
            writer.writeheader()
            writer.writerows(self.rows())
        return path

    def summary(self) -> list[str]:
        """One line per method: similarity after the top stage, halfway and fully randomised."""
        half = len(self.stages) // 2
        lines = [f"{'method':28} {'Spearman: top':>14} {'half':>6} {'all':>6}   "
                 f"{'SSIM: top':>9} {'half':>6} {'all':>6}"]
        for m in self.methods:
            r, s = self.spearman[m], self.ssim[m]
            lines.append(f"{m:28} {r[0]:14.2f} {r[half]:6.2f} {r[-1]:6.2f}   {s[0]:9.2f} {s[half]:6.2f} {s[-1]:6.2f}")
        return lines

    def picture(self, image: int = 0, columns: int = 6) -> Picture:
        """Curves of both similarities per method, and each method's map as the cascade proceeds."""
        figure, axes = new_figure(2, size=(5.5, 3.6))
        x = list(range(1, len(self.stages) + 1))
        for axis, values, label in ((axes[0][0], self.spearman, "Spearman rank correlation"),
                                    (axes[0][1], self.ssim, "SSIM")):
            for m in self.methods:
                axis.plot(x, values[m].tolist(), marker=".", label=m)
            axis.set_xticks(x, self.stages, rotation=60, fontsize=7)
            axis.set_ylabel(label)
            axis.set_xlabel("randomised from the top down to")
            axis.set_ylim(-0.2, 1.05)
            axis.axhline(0, color="grey", linewidth=0.5)
        axes[0][1].legend(fontsize=7, loc="upper right")
        figure.suptitle("Cascading randomisation: similarity to the original explanation")
        figure.tight_layout()
        curves = figure_to_picture(figure)
        picks = torch.linspace(0, len(self.stages), columns).round().long().unique().tolist()
        rows = []
        for m in self.methods:
            maps = self.maps[m][picks, image]
            tiles = colorize(normalize(maps, "percentile"), "inferno")
            labels = ["original" if p == 0 else f"→ {self.stages[p - 1]}" for p in picks]
            rows.append(titled(grid(tiles, columns=len(picks), labels=labels, tile_size=96), m, size=13))
        return stack([curves, stack(rows, direction="vertical", gap=4)], direction="vertical", gap=10)

    def _repr_png_(self) -> bytes:
        return self.picture()._repr_png_()


def sanity_checks(model: Model, inputs: Tensor, methods: Sequence[str] | None = None, target: TargetLike = None,
                  *, options: Mapping[str, Mapping[str, Any]] | None = None, seed: int = 0,
                  evaluate_every: int = 1, progress: bool | None = False) -> SanityChecks:
    """Run cascading randomisation on a normalised batch for each method (default: the quick ones).

    The class explained is fixed from the original model (``target``, default its top prediction),
    so every stage explains the same class. The original model is not modified. With
    ``evaluate_every`` n > 1 the explanations are computed after every n-th stage (and the last)
    only; the randomisation still proceeds stage by stage. ``progress``: a bar over the stages (None: in
    terminals and notebooks).
    """
    if evaluate_every < 1:
        raise ValueError(f"evaluate_every must be at least 1, got {evaluate_every}")
    model = as_model(model)
    names = method_names(methods)
    inputs = inputs.to(model.device)
    fixed, _ = fixed_target(model, inputs, target)
    original = {m: heatmaps(build(m, model, options), inputs, fixed) for m in names}
    stage_names, per_stage = [], {m: [original[m]] for m in names}
    last = len(stages(model.net)) - 1
    cascade = progress_bar(cascading_randomisation(model, seed=seed), total=last + 1, unit="stage",
                           desc="cascading randomisation", enabled=progress, leave=False)
    for number, (stage, randomised) in enumerate(cascade):
        if number % evaluate_every and number != last:  # the copy is randomised further at each step
            continue
        stage_names.append(stage)
        for m in names:
            per_stage[m].append(heatmaps(build(m, randomised, options), inputs, fixed))
    maps = {m: torch.stack(v).cpu() for m, v in per_stage.items()}
    compared = {m: [map_similarity(maps[m][0], s) for s in maps[m][1:]] for m in names}
    rank = {m: torch.stack([r.nanmean() for r, _ in compared[m]]) for m in names}
    structure = {m: torch.stack([q.mean() for _, q in compared[m]]) for m in names}
    return SanityChecks(names, stage_names, rank, structure, maps)
