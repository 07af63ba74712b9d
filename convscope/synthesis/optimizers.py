"""Update rules that the standard optimisers lack: signed steps (FGSM/PGD) and normalised steps (DeepDream)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor


class _DirectionStep(torch.optim.Optimizer):
    """p ← p − lr · direction(∂loss/∂p), for each parameter with a gradient."""

    def __init__(self, params: Iterable[Tensor], lr: float) -> None:
        super().__init__(params, {"lr": lr})

    @staticmethod
    def direction(grad: Tensor) -> Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None  # type: ignore[override]  # torch's stub: float loss
             ) -> Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.sub_(group["lr"] * self.direction(p.grad))
        return loss


class SignStep(_DirectionStep):
    """p ← p − lr · sign(∂loss/∂p): the steepest step under an L∞ budget (Goodfellow et al.,
    https://arxiv.org/abs/1412.6572)."""

    @staticmethod
    def direction(grad: Tensor) -> Tensor:
        return grad.sign()


class NormalisedStep(_DirectionStep):
    """p ← p − lr · g / mean|g|, the mean taken per image (first dimension): DeepDream's gradient step,
    whose size does not depend on the layer's scale (Mordvintsev et al., 2015)."""

    @staticmethod
    def direction(grad: Tensor) -> Tensor:
        scale = grad.abs().flatten(1).mean(1).clamp_min(1e-12) if grad.dim() > 1 else grad.abs().mean()
        return grad / scale.view(-1, *([1] * (grad.dim() - 1)))


OPTIMIZERS = ("adam", "sgd", "lbfgs", "sign", "normalised")


def make_optimizer(kind: str | Callable[[list[Tensor]], torch.optim.Optimizer], params: list[Tensor],
                   lr: float) -> torch.optim.Optimizer:
    """An optimiser by name (``adam``, ``sgd`` with momentum 0.9, ``lbfgs``, ``sign``, ``normalised``) or factory."""
    if callable(kind):
        optimizer = kind(params)
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError("an optimizer factory must return a torch.optim.Optimizer for the given parameters")
        return optimizer
    if lr <= 0:
        raise ValueError(f"the learning rate must be positive, got {lr}")
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr)
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    if kind == "lbfgs":
        return torch.optim.LBFGS(params, lr=lr, max_iter=1, history_size=50)
    if kind == "sign":
        return SignStep(params, lr)
    if kind == "normalised":
        return NormalisedStep(params, lr)
    raise ValueError(f"unknown optimizer {kind!r}; use one of {OPTIMIZERS} or a callable params -> Optimizer")
