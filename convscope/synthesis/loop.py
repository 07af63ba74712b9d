"""The one optimise-the-input loop behind every synthesis technique."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convscope.hooks import capture, inspection_mode
from convscope.kept_memory import kept_memory
from convscope.models.layers import get_layer
from convscope.models.model import Model, as_model
from convscope.progress import progress_bar
from convscope.render.layout import grid
from convscope.render.picture import Picture
from convscope.reprs import short_repr
from convscope.synthesis.objectives import Evaluation, Objective, as_objective
from convscope.synthesis.optimizers import make_optimizer
from convscope.synthesis.params import ImageParam, fourier
from convscope.synthesis.regularisers import StepRule
from convscope.synthesis.transforms import Transform, compose
from convscope.targets import Target


@dataclass
class SynthesisResult:
    """What :func:`optimise` made.

    ``images`` ``[B,3,H,W]`` in [0, 1] (CPU); ``losses`` ``[steps, B]``: the negated
    objective per image at each step (before that step's update); ``snapshots`` maps a
    step number (1 = after the first update) to the images then.
    """

    __repr__ = short_repr

    images: Tensor
    losses: Tensor
    snapshots: dict[int, Tensor] = field(default_factory=dict)
    objective: str = ""
    seconds: float = 0.0

    @property
    def steps(self) -> int:
        """Number of optimisation steps taken."""
        return self.losses.shape[0]

    @property
    def iterations_per_second(self) -> float:
        """Optimisation steps per second of wall time."""
        return self.steps / self.seconds if self.seconds > 0 else float("nan")

    def picture(self, labels: Sequence[str] | None = None, tile_size: int | None = None,
                columns: int | None = None) -> Picture:
        """The images in a grid, optionally captioned."""
        return grid(self.images, labels=labels, tile_size=tile_size, columns=columns)

    def snapshot_picture(self, index: int = 0, tile_size: int | None = None) -> Picture:
        """Image ``index`` at every snapshot, left to right, labelled by step."""
        if not self.snapshots:
            raise ValueError("no snapshots were taken: pass snapshots=… to optimise")
        steps = sorted(self.snapshots)
        tiles = torch.stack([self.snapshots[s][index] for s in steps])
        return grid(tiles, labels=[f"step {s}" for s in steps], tile_size=tile_size, columns=len(steps))

    def _repr_png_(self) -> bytes:
        return self.picture()._repr_png_()


StopRule = Callable[[int, Tensor, Tensor | None], bool]  # step, values, output (None: the pass stopped early)


def optimise(model: Model | nn.Module, objective: Objective | Target, param: ImageParam | None = None, *,
             steps: int = 256, lr: float = 0.05,
             optimizer: str | Callable[[list[Tensor]], torch.optim.Optimizer] = "adam",
             transforms: Transform | Sequence[Transform] | None = None, step_rules: Sequence[StepRule] = (),
             generator: torch.Generator | None = None, snapshots: int | Sequence[int] = (),
             model_size: int | tuple[int, int] | None = None, stop: StopRule | None = None,
             progress: bool = True, description: str = "optimise") -> SynthesisResult:
    """Maximise ``objective`` over the pictures of ``param`` through ``model``; the model is left as found.

    Each step: pictures = param() → random ``transforms`` (drawn from ``generator``) →
    optional resize to ``model_size`` → the model's normalisation → forward →
    objective per image → gradient step on −Σ objective → ``param.constrain_()`` →
    ``step_rules`` (blur, decay, clipping). Freed tensor memory is kept for the next step
    (:func:`~convscope.kept_memory.kept_memory`). ``param`` defaults to a 128×128 decorrelated
    Fourier image. ``optimizer`` is ``adam``, ``sgd``, ``lbfgs``, ``sign`` (PGD),
    ``normalised`` (DeepDream) or a factory. ``snapshots`` is an interval or a list of
    step numbers. ``stop(step, values[B], output)`` ends the loop early when it returns True.
    When no part of the objective reads the model's output (feature, texture and style
    objectives), each forward pass stops once the objective's layers have run, and
    ``output`` is ``None``.
    """
    model = as_model(model)
    goal = as_objective(objective)
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    device = model.device
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    param = (param if param is not None else fourier(128, generator=generator)).to(device)
    transform = compose(transforms)
    for layer in goal.layers:
        model.layer(layer)
    for rule in step_rules:
        if not isinstance(rule, StepRule):
            raise TypeError(f"step_rules are StepRule objects (Blur, Decay, ClipNorm …), got {type(rule).__name__}")
    if step_rules and param.pixels is None:
        raise TypeError("step rules change pixels: use a pixel parameterisation (pixels or from_image) with them")
    optimiser = make_optimizer(optimizer, param.parameters(), lr)
    mean, std = _statistics(model, device)
    wanted = _snapshot_steps(snapshots, steps)
    kept: dict[int, Tensor] = {}
    losses: list[Tensor] = []
    began = time.perf_counter()
    truncate = not goal.reads_output and bool(goal.layers)
    with inspection_mode(model.net), capture(model.net, goal.layers) as store, \
            stop_after(model.net, goal.layers if truncate else ()) as restart, kept_memory():
        record: _Record = {}

        def closure() -> Tensor:
            optimiser.zero_grad(set_to_none=True)
            images = param()
            inputs = _model_input(transform(images, generator), model_size, mean, std, model)
            restart()
            output = forward_until_done(model.net, inputs)
            values = goal(Evaluation(images, inputs, output, store.activations, mean, std))
            loss = -values.sum()
            loss.backward()
            record["values"] = values.detach()
            record["output"] = None if output is None else output.detach()
            return loss

        bar = progress_bar(range(steps), desc=description, enabled=progress, leave=False)
        for step in bar:
            optimiser.step(closure)  # type: ignore[arg-type]  # torch's stub: a float loss; a Tensor works
            param.constrain_()
            if step_rules and param.pixels is not None:  # (refused above without pixels)
                with torch.no_grad():
                    grad = param.pixels.grad
                    for rule in step_rules:
                        rule(param.pixels.data, grad, mean, step)
            losses.append(-record["values"])
            if step + 1 in wanted:
                kept[step + 1] = param().detach().float().cpu()
            if progress and (step % 10 == 0 or step == steps - 1):
                bar.set_postfix(loss=f"{losses[-1].mean().item():.4g}")
            if stop is not None and stop(step, record["values"], record["output"]):
                break
        bar.close()
    with torch.no_grad():
        images = param().detach().float().cpu()
    seconds = time.perf_counter() - began
    return SynthesisResult(images, torch.stack(losses).float().cpu(), kept, goal.name, seconds)


class _Record(TypedDict, total=False):
    """What the last step's closure saw: the objective's values ``[B]`` and the model's output (None if cut short)."""

    values: Tensor
    output: Tensor | None


class LayersDone(Exception):
    """Raised inside the forward pass once every layer an objective reads has run."""


@contextmanager
def stop_after(net: nn.Module, layers: Sequence[str]) -> Iterator[Callable[[], None]]:
    """Stop each forward pass of ``net`` (by raising :class:`LayersDone`) once all ``layers`` have run.

    Yields a function that starts a new pass; with no layers it does nothing. Hooks are
    removed on exit.
    """
    seen: set[str] = set()
    handles = []

    def watcher(name: str):
        def hook(module: nn.Module, inputs: object, output: object) -> None:
            seen.add(name)
            if len(seen) == len(layers):
                raise LayersDone

        return hook

    try:
        for name in dict.fromkeys(layers):
            handles.append(get_layer(net, name).register_forward_hook(watcher(name)))
        yield seen.clear
    finally:
        for handle in handles:
            handle.remove()


def forward_until_done(net: nn.Module, inputs: Tensor) -> Tensor | None:
    """``net(inputs)``; None when a :func:`stop_after` hook ended the pass once its layers had run."""
    try:
        return net(inputs)
    except LayersDone:
        return None


def outputs_of(net: nn.Module, inputs: Tensor, layers: Sequence[str]) -> dict[str, Tensor]:
    """The outputs of ``layers`` on ``inputs``, detached, without gradients, with ``net`` in inspection mode; the
    pass stops once they have run."""
    with inspection_mode(net), capture(net, list(layers), detach=True) as store, stop_after(net, list(layers)), \
            torch.no_grad():
        forward_until_done(net, inputs)
    return {name: store.activation(name) for name in layers}


def evaluate(model: Model | nn.Module, images: Tensor, model_size: int | tuple[int, int] | None = None) -> Tensor:
    """The model's scores ``[B,K]`` for pictures ``[B,3,H,W]`` in [0, 1] at their own size (no resize or crop), or
    resized to ``model_size`` (a model that reads pictures of one size only)."""
    model = as_model(model)
    mean, std = _statistics(model, model.device)
    with inspection_mode(model.net), torch.no_grad():
        return model.net(_model_input(images.to(model.device), model_size, mean, std, model))


def _model_input(images: Tensor, size: int | tuple[int, int] | None, mean: Tensor, std: Tensor,
                 model: Model) -> Tensor:
    if size is not None:
        images = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
    if model.preprocess.channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype, device=images.device)
        images = (images * weights.view(1, 3, 1, 1)).sum(1, keepdim=True)
        mean, std = mean[:, :1], std[:, :1]
    return (images - mean) / std


def _statistics(model: Model, device: torch.device) -> tuple[Tensor, Tensor]:
    mean = torch.tensor(model.preprocess.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    std = torch.tensor(model.preprocess.std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    if mean.shape[1] == 1:
        mean, std = mean.expand(1, 3, 1, 1), std.expand(1, 3, 1, 1)
    return mean, std


def _snapshot_steps(snapshots: int | Sequence[int], steps: int) -> set[int]:
    if isinstance(snapshots, int):
        if snapshots <= 0:
            raise ValueError(f"a snapshot interval must be positive, got {snapshots}")
        return set(range(snapshots, steps + 1, snapshots))
    return {int(s) for s in snapshots}
