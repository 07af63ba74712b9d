"""A finished scan read back from its folder, with the views built on it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from convscope.data.opening import dataset_from_spec
from convscope.data.pictures import PictureSet
from convscope.models.preprocessing import Preprocess
from convscope.scan import storage
from convscope.scan.freshness import DIGEST_SIZE, check_pictures
from convscope.scan.receptive_field import ReceptiveField
from convscope.scan.statistics import ChannelStatistics
from convscope.scan.top import TopActivations
from convscope.suggestions import unknown

if TYPE_CHECKING:
    from convscope.models.model import Model
    from convscope.scan.dead_filters import DeadFilters
    from convscope.scan.embedding import Embedding
    from convscope.scan.neighbors import Neighbors
    from convscope.scan.patches import TopPatches


LAYER_KEYS = ("layer", "shape", "features", "top", "statistics")


class ScanResult:
    """What a scan recorded: per layer features ``[N,D]``, top activations, channel statistics."""

    def __init__(self, folder: Path, config: dict[str, Any], labels: Tensor, pictures: PictureSet | None,
                 digests: Tensor | None = None) -> None:
        self.folder, self.config, self.labels, self.digests = folder, config, labels, digests
        self._pictures = pictures
        self._loaded: dict[str, dict[str, Any]] = {}

    @classmethod
    def load(cls, folder: str | Path, *, pictures: PictureSet | None = None) -> ScanResult:
        """Open a finished scan; ``pictures`` (a picture set or any torch Dataset) is needed only when the set
        cannot be reopened from disk."""
        if pictures is not None:
            from convscope.data.any_dataset import as_picture_set

            pictures = as_picture_set(pictures)
        folder = Path(folder)
        config = storage.read_config(folder)
        if not config.get("complete"):
            raise ValueError(f"the scan in {str(folder)!r} is not finished: run the same `convscope scan` command "
                             "again to resume it")
        if pictures is not None and len(pictures) != config["count"]:
            raise ValueError(f"the scan holds {config['count']} pictures but {len(pictures)} were given")
        index = storage.load(folder / storage.INDEX)
        if not isinstance(index, dict) or not isinstance(index.get("labels"), Tensor) \
                or len(index["labels"]) != config["count"]:
            raise ValueError(f"{folder / storage.INDEX} is damaged (it should hold {config['count']} labels); "
                             f"{storage.RECOVER}")
        digests = index.get("digests")  # absent in scans of older versions
        if not isinstance(digests, Tensor) or tuple(digests.shape) != (config["count"], DIGEST_SIZE):
            digests = None
        return cls(folder, config, index["labels"], pictures, digests)

    @property
    def layers(self) -> list[str]:
        """The scanned layers, in the order given."""
        return list(self.config["layers"])

    @property
    def count(self) -> int:
        """Number of pictures scanned."""
        return int(self.config["count"])

    @property
    def class_names(self) -> list[str] | None:
        """The model's class names when the scan recorded them."""
        return self.config.get("class_names")

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return (f"ScanResult({str(self.folder)!r}: {self.config['model']['name']} on {self.count} pictures, "
                f"layers {', '.join(self.layers)})")

    def check_layer(self, layer: str | None) -> str:
        """``layer`` if it was scanned; ``None`` means the last scanned layer."""
        if layer is None:
            return self.layers[-1]
        if layer not in self.layers:
            raise unknown("scanned layer", layer, self.layers, hint="this scan recorded " + ", ".join(self.layers))
        return layer

    def _layer(self, layer: str) -> dict[str, Any]:
        if layer not in self._loaded:  # memory-mapped: features are read from disk as they are used
            path = storage.layer_file(self.folder, layer)
            data = storage.load(path, mmap=True)
            if not isinstance(data, dict) or any(key not in data for key in LAYER_KEYS) \
                    or not isinstance(data["features"], Tensor) or data["features"].shape[0] != self.count:
                raise ValueError(f"{path} is damaged (it does not hold this scan's {self.count} feature rows, top "
                                 f"activations and statistics); {storage.RECOVER}")
            self._loaded[layer] = data
        return self._loaded[layer]

    def features(self, layer: str | None = None) -> Tensor:
        """One feature vector per picture ``[N,D]`` (pooled as the scan was told)."""
        return self._layer(self.check_layer(layer))["features"]

    def shape(self, layer: str | None = None) -> tuple[int, ...]:
        """The layer's output shape for one picture (``C,H,W`` or ``C``)."""
        return tuple(self._layer(self.check_layer(layer))["shape"])

    def top(self, layer: str | None = None) -> TopActivations:
        """The top-k values, pictures and positions of each channel of ``layer``."""
        return TopActivations.from_state(self._layer(self.check_layer(layer))["top"])

    def statistics(self, layer: str | None = None) -> ChannelStatistics:
        """Per-channel statistics of ``layer`` over the set (share of pictures where it fires, mean, std, max)."""
        return ChannelStatistics(**self._layer(self.check_layer(layer))["statistics"])

    def receptive_field(self, layer: str | None = None) -> ReceptiveField:
        """The exact receptive field of ``layer`` (default: the last scanned)."""
        layer = self.check_layer(layer)
        fields = self.config.get("receptive_fields", {})
        if layer not in fields:
            raise ValueError(fields.get("error", f"no receptive field was recorded for {layer!r}"))
        return ReceptiveField.from_dict(fields[layer])

    @property
    def preprocess(self) -> Preprocess:
        """How the scanned model resized, cropped and normalised the pictures."""
        settings: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v  # JSON: mean and std come as lists
                                    for k, v in self.config["preprocess"].items()}
        return Preprocess(**settings)

    @property
    def pictures(self) -> PictureSet:
        """The scanned pictures (reopened from the saved description when not given)."""
        if self._pictures is None:
            self._pictures = dataset_from_spec(self.config["dataset"])
            if len(self._pictures) != self.count:
                raise ValueError(f"the picture set changed since the scan ({len(self._pictures)} pictures now, "
                                 f"{self.count} then)")
        return self._pictures

    def check_pictures(self, indices: Sequence[int] | None = None) -> None:
        """Refuse (``ValueError``) when a scanned picture of ``indices`` (default: all) changed since the scan."""
        check_pictures(self, indices)

    def model(self, device: str | torch.device | None = None) -> Model:
        """The scanned model, reloaded from its name and weights file, checked against the scan's fingerprint."""
        from convscope.models.loading import load_model

        source = self.config.get("model_source") or {}
        try:
            model = load_model(source["name"], weights=source.get("weights"), device=device)
        except (KeyError, ValueError) as error:
            raise ValueError(f"cannot reload the scanned model ({error}); pass model= explicitly") from error
        if storage.fingerprint(model.net) != self.config["model"]["fingerprint"]:
            raise ValueError(f"the model {source['name']!r} loaded now differs from the scanned one; pass the "
                             "scanned model as model=")
        return model

    def top_patches(self, layer: str | None = None, channels: Sequence[int] | None = None,
                    k: int | None = None) -> TopPatches:
        """The ``k`` strongest pictures of each channel, cropped to the receptive field."""
        from convscope.scan.patches import top_patches

        return top_patches(self, layer, channels, k)

    def dead_filters(self, layer: str | None = None, *, max_active: float = 0.01) -> DeadFilters:
        """Channels positive in at most ``max_active`` of the pictures."""
        from convscope.scan.dead_filters import dead_filters

        return dead_filters(self, layer, max_active=max_active)

    def neighbors(self, queries: Sequence[int | Tensor] | Tensor, layer: str | None = None, *, k: int = 8,
                  metric: str = "euclidean", model: Model | None = None) -> Neighbors:
        """The ``k`` nearest scanned pictures in feature space and in pixel space, for each query."""
        from convscope.scan.neighbors import neighbors

        return neighbors(self, queries, layer, k=k, metric=metric, model=model)

    def embed(self, layer: str | None = None, *, method: str = "tsne", max_points: int | None = 5000,
              seed: int = 0, **options: Any) -> Embedding:
        """A 2-d map of the features (PCA, t-SNE or UMAP)."""
        from convscope.scan.embedding import embed

        return embed(self, layer, method=method, max_points=max_points, seed=seed, **options)
