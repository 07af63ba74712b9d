"""Cascading model-parameter randomisation (Adebayo et al. 2018, "Sanity Checks for Saliency Maps",
https://arxiv.org/abs/1810.03292): copies of a model whose stages are re-drawn at random, from the top down.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import torch
from torch import nn

from convscope.models.model import Model


def stages(net: nn.Module) -> list[str]:
    """Parameterised stages in definition order: top-level children, with sequences split into their items."""
    names: list[str] = []
    for name, child in net.named_children():
        if not any(True for _ in child.parameters()):
            continue
        items = list(child.named_children()) if isinstance(child, nn.Sequential | nn.ModuleList) else []
        if len(items) >= 2:
            names.extend(f"{name}.{item}" for item, sub in items if any(True for _ in sub.parameters()))
        else:
            names.append(name)
    return names


def randomise_(module: nn.Module, generator: torch.Generator) -> None:
    """Re-draw every parameter of ``module`` from a normal with that tensor's own mean and std (in place).

    Matching each tensor's scale keeps activations in range, so what changes is the learned
    structure, not the magnitude; a constant tensor is drawn around its value at scale
    max(|value|, 0.01). Buffers (batch-norm statistics) are kept.
    """
    with torch.no_grad():
        for param in module.parameters():
            mean = param.float().mean().item()
            scale = param.float().std().item() if param.numel() > 1 else 0.0
            if scale == 0:  # a constant tensor (e.g. zero biases): draw around it at a small scale
                scale = max(abs(mean), 1e-2)
            noise = torch.randn(param.shape, generator=generator, dtype=torch.float32)
            param.copy_((mean + scale * noise).to(param.device, param.dtype))


def cascading_randomisation(model: Model, *, seed: int = 0) -> Iterator[tuple[str, Model]]:
    """Yield ``(stage, model copy)`` with every stage from the top down to ``stage`` randomised.

    The original model is never modified: the first copy is made before anything changes.
    """
    generator = torch.Generator().manual_seed(seed)
    net = copy.deepcopy(model.net).eval()
    for name in reversed(stages(model.net)):
        randomise_(net.get_submodule(name), generator)
        yield name, Model(net, model.preprocess, model.class_names, f"{model.name} randomised to {name}",
                          model.synonyms)
