"""Feature evolution through training (Zeiler & Fergus 2014, Fig. 4, https://arxiv.org/abs/1311.2901):
for chosen channels of each layer, the strongest activation over a picture set at each checkpoint,
shown as its receptive-field patch, or (``view='projection'``, as in the paper) that activation
projected down to pixels by the deconvnet (guided backprop where the deconvnet ignores the picture,
see :mod:`convscope.scan.projections`) — one row per channel, one column per checkpoint. A channel
that is positive for no picture at a checkpoint is flagged dead (red): its "strongest" patch would
be an arbitrary picture.
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
from convscope.reprs import short_repr

VIEWS = ("patch", "projection")


@dataclass
class LayerEvolution:
    """``patches`` ``[channels, checkpoints, C, S, S]`` (patches or rendered projections) and ``values``
    ``[channels, checkpoints]``; a value ≤ 0 means the channel fired for no picture (dead)."""

    __repr__ = short_repr

    layer: str
    channels: list[int]
    patches: Tensor
    values: Tensor

    @property
    def dead(self) -> Tensor:
        """``[channels, checkpoints]``: True where the channel is positive for no picture of the set."""
        return self.values <= 0


@dataclass
class FeatureEvolution:
    __repr__ = short_repr

    checkpoints: list[str]
    layers: list[LayerEvolution]
    view: str = "patch"
    notes: tuple[str, ...] = ()

    def picture(self, tile_size: int = 56) -> Picture:
        parts = []
        for layer in self.layers:
            count, steps = layer.values.shape
            dead = layer.dead
            words = [[("dead" if d else f"{v:.2g}") for v, d in zip(row, dead_row, strict=True)]
                     for row, dead_row in zip(layer.values.tolist(), dead.tolist(), strict=True)]
            labels = [f"#{c}: {w}" if j == 0 else w for c, row in zip(layer.channels, words, strict=True)
                      for j, w in enumerate(row)]
            tiles = layer.patches.flatten(0, 1).clone()
            tiles[dead.flatten()] = 1.0  # an arbitrary picture would mislead: a blank, red-framed tile instead
            body = grid(tiles, columns=steps, labels=labels, tile_size=tile_size, flagged=dead.flatten().tolist())
            parts.append(titled(body, f"{layer.layer}", "rows: channels; columns: " + ", ".join(self.checkpoints),
                                size=14))
        shown = ("each channel's strongest activation projected to pixels (grey = 0)" if self.view == "projection"
                 else "the receptive-field patch of each channel's strongest activation")
        figure = titled(stack(parts, direction="vertical", gap=12), "Feature evolution through training",
                        f"{shown}, and its value; red: dead at that checkpoint (positive for no picture)")
        if self.notes:
            from convscope.render.layout import text_picture

            figure = stack([figure, text_picture(list(self.notes), size=11)], direction="vertical", gap=0)
        return figure

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
                      device: str | None = None, batch_size: int = 256, progress: bool = False,
                      view: str = "patch") -> FeatureEvolution:
    """Scan ``pictures`` with each checkpoint of ``model`` and collect each channel's top patch (or projection)."""
    from convscope.models.loading import load_model
    from convscope.scan import Scan
    from convscope.scan.projections import top_projections

    if not checkpoints:
        raise ValueError("give at least one checkpoint")
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}: use patch or projection")
    chosen = list(range(channels)) if isinstance(channels, int) else [int(c) for c in channels]
    found: dict[str, list] = {layer: [] for layer in layers}
    names: list[str] = []
    notes: dict[str, str] = {}
    for path in checkpoints:
        loaded = load_model(model, weights=path, device=device)
        result = Scan(loaded, layers, k=1).run(pictures, Path(work) / Path(path).stem, batch_size=batch_size,
                                               progress=progress)
        names.append(Path(path).stem.replace("epoch_", "epoch "))
        for layer in result.layers:
            kept = [c for c in chosen if c < result.shape(layer)[0]]
            if view == "projection":
                projected = top_projections(result, layer, kept, k=1, model=loaded)
                notes.setdefault(layer, f"{layer}: {projected.note}.")
                found[layer].append((projected.patches, projected.tiles()[:, 0]))
            else:
                top = result.top_patches(layer, kept, k=1)
                found[layer].append((top, top.patches[:, 0]))
    evolutions = []
    for layer, tops in found.items():
        side = max(tiles.shape[-1] for _, tiles in tops)
        patches = torch.stack([_resize(tiles, side) for _, tiles in tops], dim=1)
        values = torch.stack([top.values[:, 0] for top, _ in tops], dim=1)
        evolutions.append(LayerEvolution(layer, tops[0][0].channels, patches, values))
    return FeatureEvolution(names, evolutions, view, tuple(notes.values()))


def _resize(patches: Tensor, side: int) -> Tensor:
    if patches.shape[-1] == side:
        return patches
    return torch.nn.functional.interpolate(patches, size=(side, side), mode="nearest")
