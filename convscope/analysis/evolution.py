"""Feature evolution through training (Zeiler & Fergus 2014, Fig. 4, https://arxiv.org/abs/1311.2901):
for chosen channels of each layer, the strongest activation over a picture set at each checkpoint,
shown as its receptive-field patch — one row per channel, one column per checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from convscope.data.pictures import PictureSet
from convscope.render.layout import grid, stack, titled
from convscope.render.picture import Picture


@dataclass
class LayerEvolution:
    """``patches`` ``[channels, checkpoints, C, S, S]`` and ``values`` ``[channels, checkpoints]``."""

    layer: str
    channels: list[int]
    patches: Tensor
    values: Tensor


@dataclass
class FeatureEvolution:
    checkpoints: list[str]
    layers: list[LayerEvolution]

    def picture(self, tile_size: int = 56) -> Picture:
        parts = []
        for layer in self.layers:
            count, steps = layer.values.shape
            labels = [f"#{c}: {v:.2g}" if j == 0 else f"{v:.2g}"
                      for c, row in zip(layer.channels, layer.values.tolist(), strict=True) for j, v in enumerate(row)]
            body = grid(layer.patches.flatten(0, 1), columns=steps, labels=labels, tile_size=tile_size)
            parts.append(titled(body, f"{layer.layer}", "rows: channels; columns: " + ", ".join(self.checkpoints),
                                size=14))
        return titled(stack(parts, direction="vertical", gap=12), "Feature evolution through training",
                      "the receptive-field patch of each channel's strongest activation, and its value")

    def _repr_png_(self) -> bytes:
        return self.picture()._repr_png_()


def checkpoint_files(folder: str | Path) -> list[Path]:
    """The ``*.pt`` / ``*.pth`` files of a training run, in name order (``epoch_00.pt`` …)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"checkpoint folder {str(folder)!r} does not exist: `convscope train --out DIR` writes one")
    files = sorted(p for p in folder.iterdir() if p.suffix in (".pt", ".pth"))
    if not files:
        raise ValueError(f"no .pt checkpoints in {str(folder)!r}: `convscope train --out DIR` writes one per epoch")
    return files


def feature_evolution(checkpoints: Sequence[str | Path], pictures: PictureSet, layers: Sequence[str], *,
                      model: str = "fashion_cnn", channels: int | Sequence[int] = 8, work: str | Path,
                      device: str | None = None, batch_size: int = 256, progress: bool = False) -> FeatureEvolution:
    """Scan ``pictures`` with each checkpoint of ``model`` and collect each channel's top patch."""
    from convscope.models.loading import load_model
    from convscope.scan import Scan

    if not checkpoints:
        raise ValueError("give at least one checkpoint")
    chosen = list(range(channels)) if isinstance(channels, int) else [int(c) for c in channels]
    found: dict[str, list] = {layer: [] for layer in layers}
    names = []
    for path in checkpoints:
        loaded = load_model(model, weights=path, device=device)
        result = Scan(loaded, layers, k=1).run(pictures, Path(work) / Path(path).stem, batch_size=batch_size,
                                               progress=progress)
        names.append(Path(path).stem.replace("epoch_", "epoch "))
        for layer in result.layers:
            found[layer].append(result.top_patches(layer, [c for c in chosen if c < result.shape(layer)[0]], k=1))
    evolutions = []
    for layer, tops in found.items():
        side = max(t.patches.shape[-1] for t in tops)
        patches = torch.stack([_resize(t.patches[:, 0], side) for t in tops], dim=1)
        values = torch.stack([t.values[:, 0] for t in tops], dim=1)
        evolutions.append(LayerEvolution(layer, tops[0].channels, patches, values))
    return FeatureEvolution(names, evolutions)


def _resize(patches: Tensor, side: int) -> Tensor:
    if patches.shape[-1] == side:
        return patches
    return torch.nn.functional.interpolate(patches, size=(side, side), mode="nearest")
