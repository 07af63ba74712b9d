"""A small atlas made by hand, following the layout `convscope atlas` writes, with pictures of coloured stripes in
place of feature visualisations: the site is tested without running the atlas's optimisation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from PIL import Image
from torch import nn

INPUT = [3, 32, 32]
LAYERS = {"blocks.0": [8, 16, 16], "blocks.1": [12, 8, 8]}
CLASSES = ["tabby", "tiger cat", "espresso", "bubble", "daisy", "goldfinch", "mosque", "volcano"]


class AtlasNet(nn.Module):
    """stem (3→4, 3×3) → blocks.0 (4→8, 3×3, stride 2) → blocks.1 (8→12, 3×3, stride 2)
    → pool → linear 12→5."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.blocks = nn.Sequential(nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.ReLU()),
                                    nn.Sequential(nn.Conv2d(8, 12, 3, stride=2, padding=1), nn.ReLU()))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(12, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.blocks(self.stem(x))).flatten(1))


def stripes(seed: int, size: int = 48) -> Image.Image:
    """A picture of coloured waves, different for each seed (stands in for a feature visualisation)."""
    g = torch.Generator().manual_seed(seed)
    angle, frequency = float(torch.rand(1, generator=g)) * math.pi, 2 + 6 * float(torch.rand(1, generator=g))
    colours = torch.rand(2, 3, generator=g)
    ys, xs = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    wave = 0.5 + 0.5 * torch.sin(2 * math.pi * frequency * (xs * math.cos(angle) + ys * math.sin(angle))
                                 + 3 * torch.sin(4 * ys))
    pixels = colours[0][:, None, None] * wave + colours[1][:, None, None] * (1 - wave)
    pixels = (pixels + 0.08 * torch.rand(3, size, size, generator=g)).clamp(0, 1)
    return Image.fromarray((pixels.permute(1, 2, 0) * 255).byte().numpy())


def make_atlas(out: Path, *, complete: bool = True, trained: bool = True, missing: dict[str, set[int]] | None = None,
               dead: dict[str, set[int]] | None = None, layers: dict[str, list[int]] | None = None,
               model: str = "atlas_net", input_size: list[int] | None = None) -> Path:
    """The atlas's files in ``out`` (no HTML): ``missing`` channels have no files yet; a layer with missing
    channels has no ``layer.json``. ``layers``: name → shape ``[C,H,W]`` (default :data:`LAYERS`)."""
    missing = missing or {}
    LAYERS = layers or globals()["LAYERS"]  # noqa: N806
    dead = dead if dead is not None else {"blocks.0": {3}, "blocks.1": {5, 9}} if layers is None else {}
    out.mkdir(parents=True, exist_ok=True)
    names = list(LAYERS)
    atlas = {"format": "convscope-atlas/1", "model": model, "model_digest": "0123456789abcdef0123",
             "weights": f"{model}.pth" if trained else None, "trained": trained, "input_size": input_size or INPUT,
             "layers": [{"name": n, "channels": s[0], "shape": s} for n, s in LAYERS.items()],
             "settings": {"size": 48, "steps": 64, "facets": 4, "k": 9}, "scan": {"path": "scans/photos",
                                                                                  "digest": "feed"},
             "complete": complete, "convscope": "0.1.0"}
    (out / "atlas.json").write_text(json.dumps(atlas))
    seed = 0
    for number, (name, shape) in enumerate(LAYERS.items()):
        folder = out / "layers" / name
        (folder / "channels").mkdir(parents=True, exist_ok=True)
        (folder / "images").mkdir(parents=True, exist_ok=True)
        channels = shape[0]
        for channel in range(channels):
            if channel in missing.get(name, set()):
                continue
            images = {}

            def png(kind: str, size: int = 48, name: str = name, channel: int = channel) -> str:
                nonlocal seed
                seed += 1
                path = f"layers/{name}/images/{channel}_{kind}.png"
                stripes(seed, size).save(out / path)
                return path

            images["vis"] = png("vis")
            images["negative"] = png("negative")
            images["facets"] = [png(f"facet{i}") for i in range(4)]
            for kind in ("top", "bottom"):
                images[kind] = [png(f"{kind}{i}", 24) for i in range(9)]
                images[f"{kind}_projections"] = [png(f"{kind}{i}_projection", 24) for i in range(9)]
            is_dead = channel in dead.get(name, set())
            following = names[number + 1] if number + 1 < len(names) else None
            preceding = names[number - 1] if number else None
            data = {"layer": name, "channel": channel,
                    "stats": {"active_fraction": 0.0 if is_dead else 0.25 + 0.05 * (channel % 5),
                              "mean": 0.0 if is_dead else 0.1 * channel, "max": 0.0 if is_dead else 1.5 + channel,
                              "dead": is_dead},
                    "top_classes": [{"class": CLASSES[(channel + i) % len(CLASSES)], "mean": round(2.0 / (i + 1), 3)}
                                    for i in range(5)],
                    "images": images,
                    "drives": [{"layer": following, "channel": (channel * 3 + i) % LAYERS[following][0],
                                "strength": round(0.9 - 0.2 * i, 2)} for i in range(3)] if following else [],
                    "driven_by": [{"layer": preceding, "channel": (channel + i) % LAYERS[preceding][0],
                                   "strength": round(0.8 - 0.2 * i, 2)} for i in range(3)] if preceding else [],
                    "values": {"vis": 4.0 + channel, "negative": -2.0 - channel, "facets": [3.5, 3.4, 3.3, 3.2]},
                    "top_values": [round(2.0 - 0.1 * i, 2) for i in range(9)],
                    "bottom_values": [round(-0.1 * i, 2) for i in range(9)],
                    "projection": "deconvnet", "links": {"drives": "weights" if following else None,
                                                         "driven_by": "weights" if preceding else None}}
            (folder / "channels" / f"{channel}.json").write_text(json.dumps(data))
        if not missing.get(name):
            order = sorted(range(channels), key=lambda c: (c * 5) % channels)
            (folder / "layer.json").write_text(json.dumps(
                {"name": name, "channels": channels, "shape": shape, "dead": sorted(dead.get(name, set())),
                 "order": order, "stats": {"dead": len(dead.get(name, set())), "active_fraction": 0.31, "mean": 0.42,
                                           "max": 9.5, "ordered_by": "correlation of the channels' activations",
                                           "projection": "deconvnet", "links": {"drives": "weights"}}}))
    return out
