"""What one explorer serves: the model, the readable pictures, an optional scan, the worker and the caches."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convscope.data.pictures import PictureSet
from convscope.explore.jobs import ResultCache, Worker
from convscope.explore.pictures import PictureStore
from convscope.hooks import copy_without_hooks
from convscope.models.model import Model
from convscope.scan.storage import fingerprint
from convscope.suggestions import chosen_names

if TYPE_CHECKING:
    from convscope.scan.result import ScanResult

DEFAULT_CACHE = Path.home() / ".cache" / "convscope" / "explore"


class Explorer:
    """The shared state behind the API: the model, its workers (see :mod:`convscope.explore.jobs`), caches.

    ``sources`` are folders and picture files the user named (nothing else on disk is readable);
    ``scan`` a finished scan folder for the data set view and top patches (``scan_pictures``: the picture set or
    torch Dataset it scanned, when the scan cannot reopen it, as for a Dataset of your own); ``checks`` a
    ``convscope check`` output folder for the sanity badges; ``cache`` where feature
    visualisations are kept between runs; ``methods`` the attribution methods the image view shows; ``atlas`` a
    ``convscope atlas`` output folder, served read-only under ``/atlas/``.
    """

    def __init__(self, model: Model, sources: Sequence[str | Path] | None = None, *, scan: str | Path | None = None,
                 checks: str | Path | None = None, cache: str | Path | None = None, weights: str | None = None,
                 token: str | None = None, methods: Sequence[str] | None = None,
                 scan_pictures: PictureSet | None = None, atlas: str | Path | None = None) -> None:
        paths = [Path(s) for s in sources or []]
        for path in paths:
            if not path.exists():
                raise ValueError(f"{str(path)!r} does not exist; name folders or picture files to explore")
        self.model = model
        self.weights = weights
        self.fingerprint = fingerprint(model.net)
        preprocess = model.preprocess
        working = preprocess.resize or preprocess.crop or max(preprocess.input_size)
        self.pictures = PictureStore([p for p in paths if p.is_dir()], [p for p in paths if p.is_file()],
                                     short_side=2 * working)
        self.scan: ScanResult | None = None
        if scan is not None:
            from convscope.scan.result import ScanResult

            self.scan = ScanResult.load(scan, pictures=scan_pictures)  # a Dataset the scan cannot reopen itself
            self.pictures.scanned = self.scanned_picture
        self.checks = read_checks(Path(checks)) if checks is not None else {}
        self.atlas = Path(atlas).resolve() if atlas is not None else None
        if self.atlas is not None:
            from convscope.atlas.site import read_atlas

            read_atlas(self.atlas)
        self.cache_dir = Path(cache) if cache is not None else DEFAULT_CACHE
        self.token = token
        from convscope.attribution.registry import METHODS

        # those the image view shows, spelt with hyphens or underscores; an unknown one gets "did you mean"
        self.methods = chosen_names(methods, list(METHODS), METHODS, "attribution method", "the methods are")
        results = ResultCache()
        self.worker = Worker(results, "interactive")  # predictions, live occlusion, one- and two-pass maps, channels
        # maps of many passes and feature visualisations, on a copy of the model (never under the other's hooks),
        # chunk by chunk, pausing while the interactive lane has work
        self.background_model = copy_without_hooks(model, model.net)
        self.background = Worker(results, "background", yields_to=self.worker)
        self.scan_worker = Worker(results, "scan")  # a scan's stored features: embeddings, neighbours

    def opened_scan(self) -> ScanResult:
        """The scan given with ``scan=``; ValueError when none was."""
        if self.scan is None:
            raise ValueError("no scan is open: start the explorer with --scan FOLDER (a `convscope scan` output)")
        return self.scan

    def scanned_picture(self, index: int) -> tuple[str, Any]:
        """The scan's picture ``index`` for the image view: its name (``#12 Ankle boot``) and pixels ``[C,H,W]``."""
        scan = self.opened_scan()
        if not 0 <= index < scan.count:
            raise ValueError(f"picture {index} is not in the scan (0 … {scan.count - 1})")
        label, names = int(scan.labels[index]), scan.class_names
        name = f"#{index}" + (f" {names[label]}" if names and 0 <= label < len(names) else "")
        return name, scan.pictures.picture(index)

    @property
    def scan_matches_model(self) -> bool:
        """Whether the scan was made with this very model (so its top patches belong to its channels)."""
        return self.scan is not None and self.scan.config["model"]["fingerprint"] == self.fingerprint

    def info(self) -> dict[str, Any]:
        return {"model": self.model.name, "weights": self.weights, "fingerprint": self.fingerprint[:12],
                "device": str(self.model.device), "input_size": list(self.model.preprocess.input_size),
                "classes": len(self.model.classes()),
                "scan": None if self.scan is None else {"folder": str(self.scan.folder), "count": self.scan.count,
                                                        "layers": self.scan.layers,
                                                        "model": self.scan.config["model"]["name"],
                                                        "same_model": self.scan_matches_model},
                "checks": sorted(self.checks), "atlas": self.atlas_layers()}

    def atlas_layers(self) -> dict[str, int] | None:
        """The atlas's layers and their channel counts (read again each time: the atlas may still grow)."""
        if self.atlas is None:
            return None
        from convscope.atlas.site import read_atlas

        try:
            return {str(layer["name"]): int(layer["channels"]) for layer in read_atlas(self.atlas)["layers"]}
        except (ValueError, KeyError, TypeError):
            return {}


def read_checks(folder: Path) -> dict[str, dict[str, Any]]:
    """Per method, what ``convscope check`` measured (pointing game, deletion / insertion) — for badges."""
    path = folder / "checks.json"
    if not path.is_file():
        raise ValueError(f"{str(folder)!r} holds no checks.json; give the --out folder of `convscope check`")
    summary = json.loads(path.read_text())
    badges: dict[str, dict[str, Any]] = {}
    for row in summary.get("pointing_game", []):
        badges.setdefault(row["method"], {})["pointing"] = row.get("pointing_accuracy")
    for row in summary.get("faithfulness", []):
        entry = badges.setdefault(row["method"], {})
        entry["deletion"], entry["insertion"] = row.get("deletion_auc"), row.get("insertion_auc")
    return badges
