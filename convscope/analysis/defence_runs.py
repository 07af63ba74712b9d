"""Trained models for the defence table: training folders, weights files and the shipped models, grouped by
defence so that runs differing only in their seed are pooled (mean ± std)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from convscope.models.model import Model


def group_runs(runs: list[str], device: str | None) -> dict[str, list[Model]]:
    """Models by name, runs that differ only in their training seed under one name (the defence and settings)."""
    from convscope.models import load_model
    from convscope.models.defence_weights import SHIPPED_DEFENCES, shipped_defence_weights
    from convscope.models.fashion import FASHION_MODEL
    from convscope.models.fashion_linear import LINEAR_MODEL

    groups: dict[str, list[Model]] = defaultdict(list)
    names: dict[str, str] = {}  # settings without the seed → the group's name
    for run in runs:
        if run in (FASHION_MODEL, LINEAR_MODEL):
            groups[f"{run} (shipped)"].append(load_model(run, device=device))
            continue
        if run == SHIPPED_DEFENCES:
            files = [(path, " (shipped)") for path in shipped_defence_weights()]
        else:
            path = Path(run)
            weights = last_checkpoint(path) if path.is_dir() else path
            if not weights.is_file():  # missing, a pipe or a device
                raise ValueError(f"{run!r} is neither a training folder, a weights file nor fashion_cnn / "
                                 f"fashion_linear / {SHIPPED_DEFENCES}")
            files = [(weights, "")]
        for weights, suffix in files:
            settings = _settings(weights)
            key = json.dumps(settings, sort_keys=True, default=str) + suffix if settings else str(weights)
            if key not in names:
                name = (describe(settings) if settings else weights.stem) + suffix
                taken = sum(1 for other in names.values() if other.split(" #")[0] == name)
                names[key] = name if not taken else f"{name} #{taken + 1}"
            groups[names[key]].append(load_model(FASHION_MODEL, weights=weights, device=device))
    return dict(groups)


def _settings(weights: Path) -> dict[str, Any]:
    """A training run's settings without its seed (empty for a bare state dict)."""
    try:
        saved = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as error:  # a damaged, empty or foreign file: say which, in one line
        raise ValueError(f"{str(weights)!r} is not a weights file torch can read ({type(error).__name__}); give "
                         "a `convscope train` folder or its epoch_NN.pt") from error
    settings = dict(saved.get("settings", {})) if isinstance(saved, dict) else {}
    settings.pop("seed", None)
    return settings


def last_checkpoint(folder: Path) -> Path:
    """The highest ``epoch_NN.pt`` of a training folder."""
    epochs = sorted(folder.glob("epoch_*.pt"))
    if not epochs:
        raise ValueError(f"{str(folder)!r} holds no epoch_NN.pt: train into it with `convscope train --out`")
    return epochs[-1]


def describe(settings: dict[str, Any]) -> str:
    """A short name for a training run's settings: its defence, with what sets it apart."""
    if settings.get("representation_layers"):
        return (f"representation ε={settings['adversarial_epsilon']:g} "
                f"{'+'.join(settings['representation_layers'])}")
    if settings.get("adversarial_epsilon"):
        return f"adversarial ε={settings['adversarial_epsilon']:g}"
    if settings.get("noise_std"):
        return f"noise σ={settings['noise_std']:g}"
    pictures = settings.get("train_pictures")
    return "plain" + (f" ({pictures} pictures)" if pictures else "")
