"""Do explanations point at the object? The pointing game for every method and the occlusion study,
on photos pasted onto textures at known places (so the object's box is known exactly).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from convscope.analysis.explainers import build, heatmaps, method_names
from convscope.analysis.faithfulness import pointing_game
from convscope.analysis.pasted import PastedObjects, _square
from convscope.attribution.occlusion import Occlusion
from convscope.hooks import inspection_mode
from convscope.images import load_sample
from convscope.models.model import Model
from convscope.progress import progress_bar
from convscope.render import html
from convscope.reprs import short_repr
from convscope.targets import ClassScore


def object_classes(model: Model, pasted: PastedObjects) -> Tensor:
    """The class the model sees in each object photo alone (what the pasted picture should be explained for)."""
    side = pasted.pictures.shape[-1]
    names = list(dict.fromkeys(pasted.objects))
    alone = torch.stack([_square(load_sample(n), side) for n in names])
    with inspection_mode(model.net), torch.no_grad():
        top = model.net(model.preprocess.normalize(alone).to(model.device)).argmax(1).cpu()
    by_name = dict(zip(names, top.tolist(), strict=True))
    return torch.tensor([by_name[n] for n in pasted.objects])


@dataclass
class PointingResult:
    """Hit rate per method (share of pictures whose map peaks on the object) and the chance rate."""

    __repr__ = short_repr

    hits: dict[str, Tensor]
    chance: float
    tolerance: int

    def rows(self) -> list[dict[str, Any]]:
        return [{"method": m, "pointing_accuracy": float(h.float().mean()), "chance": self.chance,
                 "pictures": int(h.numel())} for m, h in self.hits.items()]

    def _repr_html_(self) -> str:
        rows = [[r["method"], r["pointing_accuracy"], r["chance"], r["pictures"]] for r in self.rows()]
        return html.table(["method", "pointing accuracy", "chance", "pictures"], rows, right=(1, 2, 3),
                          caption=f"Pointing game (tolerance {self.tolerance} px)")


def pointing_study(model: Model, pasted: PastedObjects, methods: Sequence[str] | None = None, *,
                   options: Mapping[str, Mapping[str, Any]] | None = None, tolerance: int = 15,
                   progress: bool | None = False) -> PointingResult:
    """Pointing game (Zhang et al. 2016) of each method, explaining each object's own class; ``progress``: a bar
    over the methods."""
    inputs = model.preprocess.normalize(pasted.pictures).to(model.device)
    target = ClassScore(tuple(object_classes(model, pasted).tolist()))
    size = tuple(inputs.shape[-2:])
    hits = {m: pointing_game(heatmaps(build(m, model, options), inputs, target).cpu(), pasted.boxes, size, tolerance)
            for m in progress_bar(method_names(methods), desc="pointing game", unit="method", enabled=progress,
                                  leave=False)}
    area = pasted.object_mask().float().mean().item()
    grown = [(top - tolerance, left - tolerance, bottom + tolerance, right + tolerance)
             for top, left, bottom, right in pasted.boxes]
    chance = sum(_clipped_area(box, size) for box in grown) / (len(grown) * size[0] * size[1])
    return PointingResult(hits, max(chance, area), tolerance)


def _clipped_area(box: tuple[int, int, int, int], size: tuple[int, ...]) -> int:
    top, left, bottom, right = box
    return max(0, min(bottom, size[0]) - max(top, 0)) * max(0, min(right, size[1]) - max(left, 0))


@dataclass
class OcclusionStudy:
    """Where the occluder hurts most: ``on_object`` per picture (the lowest-probability position's
    occluder centre lies in the box), the chance of that, and mean probability drops on / off the object."""

    __repr__ = short_repr

    on_object: Tensor
    chance: float
    drop_on_object: float
    drop_off_object: float

    def row(self) -> dict[str, Any]:
        return {"minimum_on_object": float(self.on_object.float().mean()), "chance": self.chance,
                "mean_drop_on_object": self.drop_on_object, "mean_drop_off_object": self.drop_off_object,
                "pictures": int(self.on_object.numel())}

    def _repr_html_(self) -> str:
        row = self.row()
        return html.table(["", "value"], [[k.replace("_", " "), v] for k, v in row.items()], right=(1,),
                          caption="Occlusion: where the occluder hurts most")


def occlusion_study(model: Model, pasted: PastedObjects, *, size: int | None = None,
                    stride: int | None = None) -> OcclusionStudy:
    """Zeiler & Fergus' occlusion experiment with known object boxes; the occluder and its stride default
    to 3/14 and 1/14 of the picture's side (48 and 16 px on 224)."""
    inputs = model.preprocess.normalize(pasted.pictures).to(model.device)
    side = inputs.shape[-1]
    size = max(1, side * 3 // 14) if size is None else size
    stride = max(1, side // 14) if stride is None else stride
    occlusion = Occlusion(model, size=size, stride=stride)
    found = occlusion.maps(inputs, ClassScore(tuple(object_classes(model, pasted).tolist())))
    rows, cols = occlusion.positions(*inputs.shape[-2:])
    centre_y, centre_x = rows + size // 2, cols + size // 2
    inside = torch.stack([((centre_y >= top) & (centre_y < bottom))[:, None]
                          & ((centre_x >= left) & (centre_x < right))[None]
                          for top, left, bottom, right in pasted.boxes])  # [N,h',w']
    drop = found.drop.cpu()
    lowest = found.score.cpu().flatten(1).argmin(1)
    on_object = inside.flatten(1).gather(1, lowest[:, None])[:, 0]
    return OcclusionStudy(on_object, inside.float().mean().item(), drop[inside].mean().item(),
                          drop[~inside].mean().item())
