"""Builds the demo gallery section by section, timing each."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from convscope.images import NamedPicture, load_images
from convscope.logs import get_logger
from convscope.models import DEFAULT_MODEL, Model, load_model
from convscope.progress import bars_shown
from convscope.render.gallery import Gallery

DEMO_SAMPLES = ("chelsea", "coffee", "astronaut", "rocket", "china", "flower")
log = get_logger(__name__)


@dataclass
class DemoContext:
    model: Model
    photos: list[NamedPicture]
    generator: torch.Generator
    progress: bool = False  # progress bars inside long figures (terminals and notebooks, not --quiet)

    def photo(self, name: str) -> NamedPicture:
        return next(p for p in self.photos if p.name == name)


def _sections() -> list[tuple[str, Callable[[Gallery, DemoContext], None]]]:
    from convscope.demo import (
        analysis_section,
        atlas_section,
        attribution_section,
        feature_space_section,
        inspection_section,
        relevance_section,
        synthesis_section,
    )

    return [("Weights and activations", inspection_section.build),
            ("Attribution", attribution_section.build),
            ("Relevance and concepts", relevance_section.build),
            ("Feature space", feature_space_section.build),
            ("Synthesis", synthesis_section.build),
            ("Atlas", atlas_section.build),
            ("Analysis and trust", analysis_section.build)]


def section_titles() -> list[str]:
    return [title for title, _ in _sections()]


def run_demo(out: str | Path, *, model: str = DEFAULT_MODEL, device: str | None = None,
             only: Sequence[str] | None = None, log: Callable[[str], None] = log.info) -> Path:
    """Write the gallery (PNGs and ``index.html``) to ``out``; returns the index path.

    ``only`` keeps the sections whose title contains one of the given words (case-insensitive).
    """
    sections = _sections()
    if only:
        sections = [(t, b) for t, b in sections if any(w.lower() in t.lower() for w in only)]
        if not sections:
            raise ValueError(f"no demo section matches {list(only)}; sections: {section_titles()}")
    start = time.perf_counter()
    loaded = load_model(model, device=device)
    photos = load_images([f"sample:{name}" for name in DEMO_SAMPLES])
    context = DemoContext(loaded, photos, torch.Generator().manual_seed(0), progress=bars_shown())
    gallery = Gallery(Path(out), title=f"convscope gallery — {loaded.name}",
                      intro=f"Model {loaded.name} on {loaded.device}; photos from scikit-image and scikit-learn.")
    log(f"model {loaded.name} loaded on {loaded.device} in {time.perf_counter() - start:.1f} s")
    for number, (title, build) in enumerate(sections, 1):
        began = time.perf_counter()
        log(f"[{number}/{len(sections)}] {title} …")
        build(gallery, context)
        log(f"{title}: {time.perf_counter() - began:.1f} s")
    index = gallery.write_index()
    log(f"gallery written to {index} in {time.perf_counter() - start:.1f} s")
    return index
