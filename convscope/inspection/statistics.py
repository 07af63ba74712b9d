"""Per-layer statistics of activations, gradients and weights (the ConvNetJS view).

For a batch and a target, every layer gets: activation min/max/mean and share of
zeros, the min/max of the target's gradient at its output, and min/max of its weights
and of their gradients — with small pictures of each. https://cs.stanford.edu/people/karpathy/convnetjs/
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from convscope.gradients import gradient_pass
from convscope.models.layers import layer_name
from convscope.models.model import Model, as_model
from convscope.render import html
from convscope.render.colormaps import colorize, normalize
from convscope.render.layout import grid, stack, text_picture, titled
from convscope.render.picture import Picture
from convscope.targets import TargetLike

SKIPPED = (nn.Identity, nn.Dropout, nn.Dropout2d)
NAN = float("nan")


@dataclass
class LayerStat:
    layer: str
    kind: str
    shape: tuple[int, ...]
    act_min: float
    act_max: float
    act_mean: float
    act_zero: float
    grad_min: float
    grad_max: float
    weight_min: float = NAN
    weight_max: float = NAN
    weight_grad_min: float = NAN
    weight_grad_max: float = NAN


@dataclass
class LayerStatistics:
    """Rows of :class:`LayerStat`, plus the tensors their pictures are drawn from."""

    rows: list[LayerStat]
    activations: dict[str, Tensor]
    grads: dict[str, Tensor]
    weights: dict[str, Tensor]
    weight_grads: dict[str, Tensor]
    target_description: str

    def table(self) -> list[dict[str, object]]:
        """One dictionary per layer (the fields of :class:`LayerStat`)."""
        return [asdict(row) for row in self.rows]

    def to_csv(self, path: str | Path) -> Path:
        """Write :meth:`table` as CSV (one row per layer); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = self.table()
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        return path

    def lines(self) -> list[str]:
        """The table as aligned text lines, a header first."""
        header = (f"{'layer':28} {'kind':16} {'act min':>9} {'act max':>9} {'mean':>9} {'zero':>5} "
                  f"{'dact min':>9} {'dact max':>9} {'w min':>8} {'w max':>8} {'dw min':>9} {'dw max':>9}")
        out = [header]
        for r in self.rows:
            out.append(f"{r.layer[:28]:28} {r.kind[:16]:16} {r.act_min:9.3g} {r.act_max:9.3g} {r.act_mean:9.3g} "
                       f"{r.act_zero:5.0%} {r.grad_min:9.2g} {r.grad_max:9.2g} {_num(r.weight_min, 8)} "
                       f"{_num(r.weight_max, 8)} {_num(r.weight_grad_min, 9)} {_num(r.weight_grad_max, 9)}")
        return out

    def __repr__(self) -> str:
        return "\n".join(self.lines())

    def _repr_html_(self) -> str:
        header = ["layer", "kind", "output", "act min", "act max", "act mean", "zeros", "∂ act min", "∂ act max",
                  "w min", "w max", "∂ w min", "∂ w max"]
        rows = [[r.layer, r.kind, r.shape, r.act_min, r.act_max, r.act_mean, f"{r.act_zero:.0%}", r.grad_min,
                 r.grad_max, r.weight_min, r.weight_max, r.weight_grad_min, r.weight_grad_max] for r in self.rows]
        return html.table(header, rows, caption=f"Layer statistics for {self.target_description}",
                          right=range(3, len(header)))

    def picture(self, layers: Sequence[str] | None = None, channels: int = 6, tile_size: int = 40) -> Picture:
        """One row per layer: its numbers, then activations, activation gradients, weights, weight gradients."""
        chosen = list(layers) if layers is not None else default_figure_layers(self.rows)
        by_name = {r.layer: r for r in self.rows}
        unknown = [n for n in chosen if n not in by_name]
        if unknown:
            raise ValueError(f"no statistics for layers {unknown}; computed: {list(by_name)[:10]} …")
        rows = [self._row_picture(by_name[n], channels, tile_size) for n in chosen]
        body = stack(rows, direction="vertical", gap=6)
        return titled(body, f"Per-layer statistics for {self.target_description}",
                      "activations (grey) · gradient of the target at them (blue − / red +) · "
                      "weights · weight gradients; each tile scaled on its own")

    def _row_picture(self, row: LayerStat, channels: int, size: int) -> Picture:
        text = text_picture([
            f"{row.layer} ({row.kind}) {'×'.join(map(str, row.shape))}",
            f"act  min {row.act_min:.3g}  max {row.act_max:.3g}  mean {row.act_mean:.3g}  zero {row.act_zero:.0%}",
            f"dact min {row.grad_min:.2g}  max {row.grad_max:.2g}",
            f"w    min {_num(row.weight_min)}  max {_num(row.weight_max)}",
            f"dw   min {_num(row.weight_grad_min)}  max {_num(row.weight_grad_max)}",
        ], size=11, width=330)
        parts = [text, _tiles(_first_maps(self.activations[row.layer], channels), size, "minmax", "gray"),
                 _tiles(_first_maps(self.grads[row.layer], channels), size, "signed", "coolwarm")]
        if row.layer in self.weights:
            parts.append(_tiles(_first_filters(self.weights[row.layer], channels), size, "symmetric", "coolwarm"))
            parts.append(_tiles(_first_filters(self.weight_grads[row.layer], channels), size, "signed", "coolwarm"))
        return stack(parts, gap=10)


def _num(value: float, width: int = 0) -> str:
    return f"{'–':>{width}}" if math.isnan(value) else f"{value:{width}.2g}"


def _square(vector: Tensor) -> Tensor:
    side = max(1, math.isqrt(vector.numel()))
    return vector.reshape(-1)[: side * side].reshape(1, side, side)


def _first_maps(activations: Tensor, channels: int) -> Tensor:
    """The first image's first channel maps ``[n,h,w]``; a vector is folded into a square."""
    first = activations[0].float()
    return first[:channels] if first.dim() == 3 else _square(first)


def _first_filters(weight: Tensor, channels: int) -> Tensor:
    """First input channel of the first filters; a 1×1 or linear weight as one matrix."""
    w = weight.float()
    if w.dim() == 4 and w.shape[-2:] != (1, 1):
        return w[:channels, 0]
    matrix = w.reshape(w.shape[0], -1) if w.dim() >= 2 else w.reshape(1, -1)
    return matrix[None]


def _tiles(maps: Tensor, size: int, mode: str, cmap: str) -> Picture:
    tiles = colorize(normalize(maps, mode), cmap)
    if tiles.shape[-1] != tiles.shape[-2]:  # a matrix: shown square, whatever its aspect
        tiles = torch.nn.functional.interpolate(tiles, size=(size, size), mode="area")
    return grid(tiles, columns=len(tiles), tile_size=size, padding=2)


def default_layers(net: nn.Module) -> list[str]:
    """Leaf layers that compute something (and modules holding their own weights)."""
    names = []
    for name, module in net.named_modules():
        if not name or isinstance(module, SKIPPED):
            continue
        leaf = next(module.children(), None) is None
        owns_weight = isinstance(getattr(module, "weight", None), nn.Parameter)
        if leaf or owns_weight:
            names.append(name)
    return names


def default_figure_layers(rows: Sequence[LayerStat], count: int = 8) -> list[str]:
    weighted = [r.layer for r in rows if not math.isnan(r.weight_min) and "Norm" not in r.kind]
    pool = weighted or [r.layer for r in rows]
    if len(pool) <= count:
        return pool
    step = (len(pool) - 1) / (count - 1)
    return [pool[round(i * step)] for i in range(count)]


def layer_statistics(model: Model | nn.Module, pictures: Tensor | list[Tensor], target: TargetLike = None,
                     layers: Sequence[str | nn.Module] | None = None) -> LayerStatistics:
    """Statistics of every layer (default: :func:`default_layers`) for a batch and a target."""
    model = as_model(model)
    names = [layer_name(model.net, layer) for layer in layers] if layers is not None else default_layers(model.net)
    modules = dict(model.net.named_modules())
    weight_names = {n: f"{n}.weight" for n in names if isinstance(getattr(modules[n], "weight", None), nn.Parameter)}
    inputs = model.prepare(pictures)
    result = gradient_pass(model, inputs, target, names, weights=list(weight_names.values()))
    rows = []
    for name in names:
        act, grad = result.activations[name].float(), result.grads[name].float()
        row = LayerStat(name, type(modules[name]).__name__, tuple(act.shape[1:]), act.min().item(),
                        act.max().item(), act.mean().item(), (act == 0).float().mean().item(),
                        grad.min().item(), grad.max().item())
        if name in weight_names:
            weight = modules[name].weight.detach().float()
            wgrad = result.weight_grads[weight_names[name]].float()
            row.weight_min, row.weight_max = weight.min().item(), weight.max().item()
            row.weight_grad_min, row.weight_grad_max = wgrad.min().item(), wgrad.max().item()
        rows.append(row)
    classes = model.classes(result.output.shape[1])
    described = ("the top class" if target is None else str(target)) if result.classes is None else \
        ", ".join(dict.fromkeys(classes[i] for i in result.classes.tolist()))
    return LayerStatistics(
        rows=rows, activations={n: result.activations[n].cpu() for n in names},
        grads={n: result.grads[n].cpu() for n in names},
        weights={n: modules[n].weight.detach().cpu() for n in weight_names},
        weight_grads={n: result.weight_grads[w].cpu() for n, w in weight_names.items()},
        target_description=f"target: {described}")


