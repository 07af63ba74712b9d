"""The occlusion figure of Zeiler & Fergus (their figure 7): probability, top class and feature map per position."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from convscope.attribution.occlusion import OcclusionMaps
from convscope.render.colormaps import colorize, normalize
from convscope.render.layout import grid, stack, text_picture, titled
from convscope.render.overlay import rgb
from convscope.render.picture import Picture
from convscope.render.scale import range_text, stretch, tiny_range_note

LEGEND_CLASSES = 7


def occlusion_figure(found: OcclusionMaps, picture: Tensor, class_names: Sequence[str], index: int = 0, *,
                     tile_size: int = 224, projection: tuple[Tensor, str] | None = None) -> Picture:
    """Input with the most damaging occluder, and maps (a) target probability, (b) top class, (c) feature map.

    ``projection`` (maps ``[B,C,H,W]`` and the method's name, from
    :func:`convscope.attribution.feature_projection.occlusion_projection`) adds the strongest feature map
    projected to pixels, as the paper's figure 7 shows it, beside the input.
    """
    size = found.input_size
    panels = [_with_occluder(picture, found, index)]
    labels = ["input, most damaging occluder"]
    if projection is not None and found.channel is not None:
        projected, method = projection
        panels.append(rgb(normalize(projected[index:index + 1].float().cpu(), "signed", dims=3)[0]))
        labels.append(f"map {int(found.channel[index])} projected ({method})")
    what = (f"p({class_names[int(found.classes[index])]})" if found.probability and found.classes is not None
            else "target")
    notes: list[str] = []
    shown, scale = scaled(found.to_pixels(found.score)[index, 0].float(), "(a)", notes)
    panels.append(colorize(shown, "jet"))
    labels.append(f"(a) {what} {scale}")
    classes, colours, legend = _label_colours(found.top_class[index], class_names)
    cells = colours[classes.cpu()]  # [h',w',3]
    panels.append(_cells_to_pixels(cells.permute(2, 0, 1), found, size).to(picture.device))
    labels.append("(b) most probable class")
    if found.feature is not None and found.channel is not None:
        shown, scale = scaled(found.to_pixels(found.feature)[index, 0].float(), "(c)", notes)
        panels.append(colorize(shown, "inferno"))
        labels.append(f"(c) {found.layer} map {int(found.channel[index])}: {scale}")
    body = grid(torch.stack([p.float().cpu() for p in panels]), columns=len(panels), labels=labels,
                tile_size=tile_size)
    key = stack([text_picture(["(b) classes (positions)"], size=12)]
                + [stack([Picture(swatch), text_picture([name], size=12)], gap=0) for swatch, name in zip(*legend,
                                                                                                        strict=True)],
                direction="vertical", gap=0)
    clean = f"{what} without occluder: {float(found.clean_score[index]):.2f}. "
    subtitle = (clean + f"A {found.size}×{found.size} occluder every {found.stride} px; in (a) blue = low, red = "
                "high (between the ends under it), in (c) bright = high; each pixel averages the occluder positions "
                "covering it")
    figure = titled(stack([body, key], gap=6), "Occlusion sensitivity (Zeiler & Fergus 2014)", subtitle)
    return stack([figure, text_picture(notes, size=12)], direction="vertical", gap=0) if notes else figure


def scaled(values: Tensor, panel: str, notes: list[str]) -> tuple[Tensor, str]:
    """``values`` stretched to [0, 1] between their ends, and those ends in words; a tiny range adds a note."""
    low, high = float(values.min()), float(values.max())
    note = tiny_range_note(low, high)
    if note:
        notes.append(f"{panel} {note}.")
    return stretch(values, low, high), range_text(low, high)


def _with_occluder(picture: Tensor, found: OcclusionMaps, index: int) -> Tensor:
    shown = rgb(picture).float().clone().cpu()  # a grey picture (Fashion-MNIST) in colour, like the maps
    worst = int(found.score[index].flatten().argmin())
    row, col = divmod(worst, found.score.shape[-1])
    top, left = int(found.rows[row]), int(found.cols[col])
    shown[:, top:top + found.size, left:left + found.size] = 0.5
    return shown


def _label_colours(labels: Tensor, class_names: Sequence[str]) -> tuple[Tensor, Tensor, tuple[Tensor, list[str]]]:
    """Index per cell into a colour table, the table, and the legend (swatches, names with counts)."""
    values, counts = labels.flatten().cpu().unique(return_counts=True)
    order = values[counts.argsort(descending=True)]
    shown = order[:LEGEND_CLASSES].tolist()
    palette = colorize((torch.arange(10).float() / 9)[None], "tab10")[:, 0].T.cpu()[:LEGEND_CLASSES]
    colours = torch.cat([palette[:len(shown)], torch.tensor([[0.6, 0.6, 0.6]])])
    flat = labels.flatten().cpu()
    index = torch.full_like(flat, len(shown))
    for i, c in enumerate(shown):
        index[flat == c] = i
    names = [f"{class_names[c]} ({int((flat == c).sum())})" for c in shown]
    if len(order) > len(shown):
        names.append(f"other classes ({int((index == len(shown)).sum())})")
    swatches = colours[:len(names)][:, :, None, None].expand(-1, 3, 14, 14)
    return index.view(labels.shape), colours, (swatches, names)


def _cells_to_pixels(cells: Tensor, found: OcclusionMaps, size: tuple[int, int]) -> Tensor:
    """Colour cells ``[3,h',w']`` → ``[3,H,W]``: each pixel takes the cell of the window centred nearest to it."""
    centres_y = found.rows.float().cpu() + found.size / 2
    centres_x = found.cols.float().cpu() + found.size / 2
    ys = torch.arange(size[0]).float() + 0.5
    xs = torch.arange(size[1]).float() + 0.5
    nearest_y = (ys[:, None] - centres_y[None]).abs().argmin(1)
    nearest_x = (xs[:, None] - centres_x[None]).abs().argmin(1)
    return cells[:, nearest_y][:, :, nearest_x]

