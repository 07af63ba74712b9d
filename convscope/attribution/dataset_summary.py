"""Where the maps of a picture set fall: the share of map mass in the picture's centre vs its border, per class.

Each picture's heat (the method's non-negative importance at the input's size) is split
into the centre box — the middle ``centre`` of the rows and of the columns (0.5: a quarter
of the area) — and the border around it. A map spread evenly puts the box's area share in
the centre (25 %); a class whose maps put much less there is explained by its border, often
the background: a sign of a shortcut (Lapuschkin et al. 2019, "Unmasking Clever Hans
predictors", https://arxiv.org/abs/1902.10178). Pictures whose map is all zero count as empty.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from convscope.attribution.dataset import (
    CHUNKS,
    centre_box,
    check_chunk_settings,
    load_chunk,
    read_config,
    settings_digest,
)
from convscope.render.picture import Picture
from convscope.reprs import short_repr

SUMMARY_CSV = "summary.csv"
SUMMARY_PNG = "summary.png"


@dataclass
class ClassShare:
    """One explained class (or ``'all'``): how many pictures, and the mean share of their map mass in the centre."""

    __repr__ = short_repr

    index: int | None
    name: str
    pictures: int
    empty: int
    centre_share: float
    centre_sd: float
    centre_area: float
    where: Tensor  # mean of the pictures' normalised maps, pooled small

    @property
    def border_share(self) -> float:
        return 1.0 - self.centre_share

    @property
    def centre_ratio(self) -> float:
        """Centre share over the centre's area share: 1 for an even spread, below 1 when the border dominates."""
        return self.centre_share / self.centre_area


def summarise(folder: str | Path) -> list[ClassShare]:
    """Per explained class (sorted by index), then ``'all'``: the centre shares of the maps in ``folder``."""
    config = read_config(folder)
    names = config.get("class_names") or []
    settings = settings_digest(config)
    classes, shares, where = [], [], []
    for path in sorted((Path(folder) / CHUNKS).glob("chunk_*.pt")):
        chunk = load_chunk(path)
        check_chunk_settings(chunk, path, settings)
        classes.append(chunk["classes"])
        shares.append(chunk["centre"])
        where.append(chunk["where"])
    if not classes:
        raise ValueError(f"{str(folder)!r} holds no chunks yet: run `convscope explain-set` to the end first")
    all_classes, all_shares, all_where = torch.cat(classes), torch.cat(shares), torch.cat(where)
    height, width = config["input_size"]
    rows, cols = centre_box(height, width, config["centre"])
    area = (rows.stop - rows.start) * (cols.stop - cols.start) / (height * width)
    found = []
    for index in sorted(set(all_classes.tolist())):
        chosen = all_classes == index
        name = names[index] if 0 <= index < len(names) else str(index)
        found.append(_share(index, name, all_shares[chosen], all_where[chosen], area))
    found.append(_share(None, "all", all_shares, all_where, area))
    return found


def _share(index: int | None, name: str, shares: Tensor, where: Tensor, area: float) -> ClassShare:
    valid = shares[~shares.isnan()].double()
    mean = float(valid.mean()) if len(valid) else math.nan
    sd = float(valid.std(unbiased=False)) if len(valid) else math.nan
    return ClassShare(index, name, len(shares), len(shares) - len(valid), mean, sd, area, where.double().mean(0))


def write_summary(folder: str | Path) -> tuple[Path, Path]:
    """``summary.csv`` (one row per class, then ``all``) and ``summary.png`` in ``folder``."""
    folder = Path(folder)
    rows = summarise(folder)
    table = folder / SUMMARY_CSV
    temporary = folder / f".{SUMMARY_CSV}.{os.getpid()}.tmp"
    with temporary.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["class", "name", "pictures", "empty_maps", "centre_share", "centre_share_sd",
                         "border_share", "centre_area", "centre_ratio"])
        for row in rows:
            writer.writerow(["all" if row.index is None else row.index, row.name, row.pictures, row.empty,
                             f"{row.centre_share:.4f}", f"{row.centre_sd:.4f}", f"{row.border_share:.4f}",
                             f"{row.centre_area:.4f}", f"{row.centre_ratio:.3f}"])
    temporary.replace(table)
    figure = folder / SUMMARY_PNG
    summary_figure(rows, read_config(folder)).save(figure)
    return table, figure


def summary_figure(rows: list[ClassShare], config: dict, *, tiles: int = 6, bars: int = 30) -> Picture:
    """A bar per class (lowest centre share first, up to ``bars``) and the mean maps of the ``tiles`` lowest.

    The tiles take classes with at least three pictures when there are any.
    """
    from matplotlib.patches import Rectangle

    from convscope.render.plots import figure_to_picture, new_figure

    per_class = sorted((r for r in rows if r.index is not None and not math.isnan(r.centre_share)),
                       key=lambda r: r.centre_share)
    overall = rows[-1]
    shown = per_class[:bars]
    figure, axes = new_figure(1, 1, size=(7.0, 0.8 + 0.28 * max(len(shown), 1)))
    axis = axes[0, 0]
    axis.barh(range(len(shown)), [r.centre_share for r in shown], color="#c0504d")
    axis.set_yticks(range(len(shown)), [f"{r.name} ({r.pictures})" for r in shown], fontsize=8)
    axis.invert_yaxis()
    axis.axvline(overall.centre_area, color="black", linestyle="--", linewidth=1,
                 label=f"an even spread ({overall.centre_area:.0%}, the centre's area)")
    axis.axvline(overall.centre_share, color="#1f77b4", linestyle=":", linewidth=1.5,
                 label=f"all pictures ({overall.centre_share:.0%})")
    axis.set_xlim(0, 1)
    axis.set_xlabel("share of the map's mass in the centre box (the rest is on the border)")
    axis.legend(fontsize=8, loc="lower right")
    title = (f"{config['method']} on {config['model']['name']}, target {config['target']}: where the maps fall"
             + (f" ({len(shown)} of {len(per_class)} classes, lowest first)" if len(shown) < len(per_class) else ""))
    axis.set_title(title, fontsize=10)
    bars_picture = figure_to_picture(figure)

    steady = [r for r in per_class if r.pictures >= 3] or per_class  # a class of one or two pictures says little
    chosen = [*steady[:tiles], overall]
    figure, axes = new_figure(len(chosen), 1, size=(1.9, 2.1))
    side = overall.where.shape[-1]
    rows_box, cols_box = centre_box(side, side, config["centre"])
    for axis, row in zip(axes[0], chosen, strict=True):
        axis.imshow(row.where.numpy(), cmap="inferno", vmin=0)
        axis.add_patch(Rectangle((cols_box.start - 0.5, rows_box.start - 0.5), cols_box.stop - cols_box.start,
                                 rows_box.stop - rows_box.start, fill=False, edgecolor="white", linestyle="--"))
        axis.set_title(f"{row.name[:16]}\ncentre {row.centre_share:.0%}", fontsize=8)
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle("mean map (each picture's map scaled to sum 1; colours per tile, black = 0); "
                    "dashed: the centre box", fontsize=8, y=1.1)
    tiles_picture = figure_to_picture(figure)
    from convscope.render.layout import stack

    return stack([bars_picture, tiles_picture], direction="vertical", gap=4)
