"""Per-layer linear probes: how linearly separable the classes are in each layer's features — the
feature-generalisation table of Zeiler & Fergus (https://arxiv.org/abs/1311.2901, Table 6) and
Alain & Bengio's probes (https://arxiv.org/abs/1610.01644).

Each layer's features (pooled over positions by a scan) train a softmax classifier and a
linear SVM on the training pictures; accuracy is measured on the test pictures. Raw pixels
are probed too, as the baseline every layer should beat. With ``repeats`` > 1 each repeat trains on
a different seeded random share of the training pictures, and the table gives mean ± standard deviation.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from convscope.analysis.spread import mean_std
from convscope.data.any_dataset import as_picture_set
from convscope.data.pictures import FittedPictures, PictureSet
from convscope.models.model import Model
from convscope.render.picture import Picture
from convscope.render.plots import figure_to_picture, new_figure
from convscope.reprs import short_repr

CLASSIFIERS = ("softmax", "svm")
PIXELS = "pixels"
Probe = Callable[[Tensor, Tensor, Tensor, Tensor], float]  # (train, its labels, test, its labels) → test accuracy


@dataclass
class ProbeResult:
    """``accuracy[classifier][layer]`` on the test set (the mean over ``repeats``; ``spread`` holds the standard
    deviations when there are several); ``dimensions[layer]`` of the features probed."""

    __repr__ = short_repr

    layers: list[str]
    accuracy: dict[str, dict[str, float]]
    dimensions: dict[str, int] = field(default_factory=dict)
    spread: dict[str, dict[str, float]] = field(default_factory=dict)
    repeats: int = 1

    def rows(self) -> list[dict[str, float | str | int]]:
        return [{"layer": layer, "dimensions": self.dimensions[layer],
                 **{f"{c}_accuracy": self.accuracy[c][layer] for c in self.accuracy},
                 **{f"{c}_std": self.spread[c][layer] for c in self.spread}} for layer in self.layers]

    def lines(self) -> list[str]:
        width = 16
        header = f"{'layer':16} {'dims':>6} " + " ".join(f"{c:>{width}}" for c in self.accuracy)
        if self.spread:
            header += f"   (mean ± std over {self.repeats} repeats)"

        def cell(row: dict, classifier: str) -> str:
            text = f"{100 * row[f'{classifier}_accuracy']:.1f}"
            if classifier in self.spread:
                text += f" ± {100 * row[f'{classifier}_std']:.1f}"
            return f"{text + ' %':>{width}}"

        return [header] + [f"{r['layer']:16} {r['dimensions']:>6} " + " ".join(cell(r, c) for c in self.accuracy)
                           for r in self.rows()]

    def picture(self) -> Picture:
        figure, axes = new_figure(1, size=(6, 3.6))
        axis = axes[0][0]
        x = list(range(len(self.layers)))
        for classifier, by_layer in self.accuracy.items():
            errors = [self.spread[classifier][layer] for layer in self.layers] if classifier in self.spread else None
            axis.errorbar(x, [by_layer[layer] for layer in self.layers], yerr=errors, marker="o", capsize=3,
                          label=classifier)
        axis.set_xticks(x, self.layers, rotation=30)
        axis.set_ylabel("test accuracy")
        axis.set_title("Linear probes per layer")
        axis.legend()
        figure.tight_layout()
        return figure_to_picture(figure)

    def _repr_png_(self) -> bytes:
        return self.picture()._repr_png_()


def _standardise(train: Tensor, test: Tensor) -> tuple[Tensor, Tensor]:
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
    return (train - mean) / std, (test - mean) / std


def softmax_probe(train: Tensor, train_labels: Tensor, test: Tensor, test_labels: Tensor, *,
                  weight_decay: float = 1e-4, iterations: int = 100) -> float:
    """Multinomial logistic regression (L-BFGS, on the features' device); test accuracy."""
    train, test = _standardise(train.float(), test.float())
    classes = int(max(train_labels.max(), test_labels.max())) + 1
    weight = torch.zeros(train.shape[1], classes, device=train.device, requires_grad=True)
    bias = torch.zeros(classes, device=train.device, requires_grad=True)
    optimiser = torch.optim.LBFGS([weight, bias], max_iter=iterations, line_search_fn="strong_wolfe")

    def loss() -> Tensor:
        optimiser.zero_grad()
        value = torch.nn.functional.cross_entropy(train @ weight + bias, train_labels)
        value = value + weight_decay * weight.pow(2).sum()
        value.backward()
        return value

    with torch.enable_grad():
        optimiser.step(loss)
    with torch.no_grad():
        return (test @ weight + bias).argmax(1).eq(test_labels).float().mean().item()


def svm_probe(train: Tensor, train_labels: Tensor, test: Tensor, test_labels: Tensor, *, c: float = 0.1) -> float:
    """A linear SVM (one-vs-rest, scikit-learn's LinearSVC) on standardised features; test accuracy."""
    from sklearn.svm import LinearSVC

    train, test = _standardise(train.float(), test.float())
    svm = LinearSVC(C=c, dual=train.shape[0] < train.shape[1], max_iter=5000)
    svm.fit(train.cpu().numpy(), train_labels.cpu().numpy())
    return float((svm.predict(test.cpu().numpy()) == test_labels.cpu().numpy()).mean())


def _pixels(pictures: PictureSet, model: Model) -> Tensor:
    fitted = FittedPictures(pictures, model.preprocess)
    return torch.stack([fitted[i][1].flatten() for i in range(len(fitted))])


def linear_probes(model: Model, train: PictureSet, test: PictureSet, layers: Sequence[str], *,
                  classifiers: Sequence[str] = CLASSIFIERS, pooling: str = "mean", pixels: bool = True,
                  work: str | Path | None = None, batch_size: int = 256, progress: bool = True,
                  repeats: int = 1, share: float = 0.5, seed: int = 0) -> ProbeResult:
    """Probe each layer's pooled features (one scan per set, kept in ``work`` so reruns are quick).

    ``repeats`` > 1: repeat ``r`` trains on a random ``share`` of the training pictures drawn with
    ``torch.Generator().manual_seed(seed + r)`` (the same pictures for every layer); the result holds the mean
    and the sample standard deviation of the test accuracy over the repeats.
    """
    from convscope.scan import Scan

    if repeats < 1 or not 0 < share <= 1:
        raise ValueError(f"repeats must be at least 1 and share in (0, 1], got {repeats} and {share}")
    unknown = [c for c in classifiers if c not in CLASSIFIERS]
    if unknown:
        raise ValueError(f"unknown classifiers {unknown}: use {', '.join(CLASSIFIERS)}")
    train, test = as_picture_set(train), as_picture_set(test)  # any torch Dataset of (image, label) items
    if (train.labels() < 0).any() or (test.labels() < 0).any():
        raise ValueError("linear probes need labelled pictures (class sub-folders or Fashion-MNIST)")
    folder = Path(work) if work is not None else Path(tempfile.mkdtemp(prefix="convscope-probe-"))
    scan = Scan(model, layers, k=1, pooling=pooling)
    scanned = {name: scan.run(pictures, folder / name, batch_size=batch_size, progress=progress)
               for name, pictures in (("train", train), ("test", test))}
    features = {layer: (scanned["train"].features(layer), scanned["test"].features(layer)) for layer in scan.layers}
    names = list(scan.layers)
    if pixels:
        features = {PIXELS: (_pixels(train, model), _pixels(test, model)), **features}
        names = [PIXELS, *names]
    train_labels, test_labels = scanned["train"].labels, scanned["test"].labels
    probes: dict[str, Probe] = {"softmax": softmax_probe, "svm": svm_probe}
    dimensions = {layer: int(features[layer][0].shape[1]) for layer in names}
    if repeats == 1:
        accuracy = {c: {layer: probes[c](features[layer][0], train_labels, features[layer][1], test_labels)
                        for layer in names} for c in classifiers}
        return ProbeResult(names, accuracy, dimensions)
    count = max(1, round(share * len(train_labels)))
    draws = [torch.randperm(len(train_labels), generator=torch.Generator().manual_seed(seed + r))[:count]
             for r in range(repeats)]
    stats = {c: {layer: mean_std([probes[c](features[layer][0][d], train_labels[d], features[layer][1], test_labels)
                                  for d in draws]) for layer in names} for c in classifiers}
    return ProbeResult(names, {c: {k: v[0] for k, v in by.items()} for c, by in stats.items()}, dimensions,
                       {c: {k: v[1] for k, v in by.items()} for c, by in stats.items()}, repeats)


class _Subset(PictureSet):
    """Some pictures of another set, by index."""

    def __init__(self, pictures: PictureSet, indices: Sequence[int]) -> None:
        self.source, self.indices = pictures, list(indices)
        self.class_names = pictures.class_names

    def __len__(self) -> int:
        return len(self.indices)

    def picture(self, index: int) -> Tensor:
        return self.source.picture(self.indices[self.check_index(index)])

    def label(self, index: int) -> int:
        return self.source.label(self.indices[self.check_index(index)])

    def name(self, index: int) -> str:
        return self.source.name(self.indices[self.check_index(index)])

    def spec(self) -> dict:
        return {**self.source.spec(), "indices": self.indices}


def split_pictures(pictures: PictureSet, test_fraction: float = 0.25, seed: int = 0) -> tuple[PictureSet, PictureSet]:
    """A seeded random split into training and test pictures (for sets without their own split)."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    order = torch.randperm(len(pictures), generator=torch.Generator().manual_seed(seed)).tolist()
    cut = max(1, round(len(order) * test_fraction))
    if cut >= len(order):
        raise ValueError(f"{len(order)} pictures are too few to split into training and test sets")
    return _Subset(pictures, sorted(order[cut:])), _Subset(pictures, sorted(order[:cut]))
