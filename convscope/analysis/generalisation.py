"""Feature generalisation with few examples per class — Zeiler & Fergus 2014, §5.2 (https://arxiv.org/abs/1311.2901,
Tables 4–5): a network's features on a new data set, against the same network with random weights.

Each model's pooled features are extracted once per layer (one scan per set); then, for each random draw, N
training pictures per class are drawn (the same pictures for every model and layer) and a linear classifier
(softmax or linear SVM) is fitted on them and tested on the fixed test pictures. The table gives the mean ±
standard deviation of the test accuracy over the draws, in the paper's layout (rows: features; columns: N).
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from convscope.analysis.probes import Probe, softmax_probe, svm_probe
from convscope.analysis.spread import mean_std, plus_minus
from convscope.data.pictures import PictureSet
from convscope.models.model import Model
from convscope.render.picture import Picture
from convscope.render.plots import figure_to_picture, new_figure
from convscope.reprs import short_repr

PER_CLASS = (5, 15, 30, 60)
PROBES: dict[str, Probe] = {"softmax": softmax_probe, "svm": svm_probe}


def random_weights(model: Model, seed: int = 0) -> Model:
    """A copy of ``model`` with every layer re-initialised (its ``reset_parameters``, seeded; batch-norm
    statistics reset to mean 0, variance 1): the same network, trained on nothing."""
    net = copy.deepcopy(model.net)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in net.modules():
            for method in ("reset_parameters", "reset_running_stats"):
                reset = getattr(module, method, None)
                if callable(reset):
                    reset()
    return Model(net.eval(), model.preprocess, model.class_names, f"{model.name} (random weights)", model.synonyms)


def draw_per_class(labels: Tensor, count: int, generator: torch.Generator) -> Tensor:
    """Indices of ``count`` pictures of each class, drawn without replacement (sorted)."""
    chosen = []
    for label in labels.unique().tolist():
        members = (labels == label).nonzero().flatten()
        if len(members) < count:
            raise ValueError(f"class {label} has {len(members)} training pictures, fewer than the {count} per class "
                             "asked for: use a larger pool of training pictures or smaller N")
        chosen.append(members[torch.randperm(len(members), generator=generator)[:count]])
    return torch.cat(chosen).sort().values


@dataclass
class GeneralisationResult:
    """``accuracy[features][N]``: the test accuracy of each draw; ``features`` names are ``'model · layer'``."""

    __repr__ = short_repr

    accuracy: dict[str, dict[int, list[float]]]
    classifier: str = "softmax"
    test_pictures: int = 0
    dimensions: dict[str, int] = field(default_factory=dict)

    @property
    def per_class(self) -> list[int]:
        return sorted({n for by_n in self.accuracy.values() for n in by_n})

    def rows(self) -> list[dict[str, float | str | int]]:
        rows: list[dict[str, float | str | int]] = []
        for features, by_n in self.accuracy.items():
            for n in self.per_class:
                mean, std = mean_std(by_n[n])
                rows.append({"features": features, "per_class": n, "draws": len(by_n[n]), "mean_accuracy": mean,
                             "std_accuracy": std, "classifier": self.classifier})
        return rows

    def markdown(self) -> str:
        """The paper's layout: one row per model and layer, one column per N; test accuracy % mean ± std."""
        head = " | ".join(f"{n}/class" for n in self.per_class)
        lines = [f"| features ({self.classifier}) | {head} |", "|---|" + "---:|" * len(self.per_class)]
        for features, by_n in self.accuracy.items():
            lines.append(f"| {features} | " + " | ".join(plus_minus(by_n[n]) for n in self.per_class) + " |")
        return "\n".join(lines)

    def lines(self) -> list[str]:
        width = max(len(f) for f in self.accuracy) + 2
        out = [f"{'features':{width}}" + "".join(f"{f'{n}/class':>14}" for n in self.per_class)]
        for features, by_n in self.accuracy.items():
            out.append(f"{features:{width}}" + "".join(f"{plus_minus(by_n[n]):>14}" for n in self.per_class))
        return out

    def picture(self) -> Picture:
        """Test accuracy against N per class, mean with ± one standard deviation as error bars."""
        figure, axes = new_figure(1, size=(6.4, 4.2))
        axis = axes[0][0]
        parts = [f.rsplit(" · ", 1) if " · " in f else [f, ""] for f in self.accuracy]
        models, layers = list(dict.fromkeys(p[0] for p in parts)), list(dict.fromkeys(p[1] for p in parts))
        colours = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink"]
        styles = ["-", "--", ":", "-."]
        for (model, layer), (features, by_n) in zip(parts, self.accuracy.items(), strict=True):
            stats = [mean_std(by_n[n]) for n in self.per_class]
            axis.errorbar(self.per_class, [100 * m for m, _ in stats],
                          yerr=[0 if s != s else 100 * s for _, s in stats], marker="o", capsize=3, label=features,
                          color=colours[layers.index(layer) % len(colours)],
                          linestyle=styles[models.index(model) % len(styles)])
        axis.set_xscale("log")
        axis.minorticks_off()
        axis.set_xticks(self.per_class, [str(n) for n in self.per_class])
        axis.set_xlabel("training pictures per class (N)")
        axis.set_ylabel(f"test accuracy % ({self.test_pictures} pictures)")
        draws = max(len(v) for by_n in self.accuracy.values() for v in by_n.values())
        axis.set_title(f"Feature generalisation: {self.classifier} on pooled features, {draws} draws")
        axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))
        figure.tight_layout()
        return figure_to_picture(figure)

    def _repr_png_(self) -> bytes:
        return self.picture()._repr_png_()


def generalisation_from_features(features: Mapping[str, tuple[Tensor, Tensor]], train_labels: Tensor,
                                 test_labels: Tensor, *, per_class: Sequence[int] = PER_CLASS, draws: int = 5,
                                 classifier: str = "softmax", seed: int = 0) -> GeneralisationResult:
    """``features[name] = (train [N,D], test [M,D])``: fit ``classifier`` on N pictures per class of each draw.

    Draw ``d`` uses ``torch.Generator().manual_seed(seed + d)`` for every N, and the same pictures for every
    entry of ``features`` (a paired comparison).
    """
    if classifier not in PROBES:
        raise ValueError(f"unknown classifier {classifier!r}: use {', '.join(PROBES)}")
    if draws < 1 or not per_class or any(n < 1 for n in per_class):
        raise ValueError(f"need at least one draw and N ≥ 1 per class, got {draws} draws and N = {list(per_class)}")
    if (train_labels < 0).any() or (test_labels < 0).any():
        raise ValueError("feature generalisation needs labelled pictures (class sub-folders or Fashion-MNIST)")
    accuracy: dict[str, dict[int, list[float]]] = {name: {n: [] for n in per_class} for name in features}
    for draw in range(draws):
        for n in per_class:
            chosen = draw_per_class(train_labels, n, torch.Generator().manual_seed(seed + draw))
            for name, (train, test) in features.items():
                accuracy[name][n].append(PROBES[classifier](train[chosen], train_labels[chosen], test, test_labels))
    return GeneralisationResult(accuracy, classifier, len(test_labels),
                                {name: int(f[0].shape[1]) for name, f in features.items()})


def generalisation_study(models: Sequence[Model], train: PictureSet, test: PictureSet, layers: Sequence[str], *,
                         per_class: Sequence[int] = PER_CLASS, draws: int = 5, classifier: str = "softmax",
                         seed: int = 0, pooling: str = "mean", work: str | Path | None = None, batch_size: int = 64,
                         progress: bool = True) -> GeneralisationResult:
    """Scan ``train`` (the pool draws come from) and ``test`` once per model, then
    :func:`generalisation_from_features` on every model × layer. Scans are kept in ``work`` (reruns are quick)."""
    from convscope.scan import Scan

    if not models:
        raise ValueError("give at least one model")
    folder = Path(work) if work is not None else Path(tempfile.mkdtemp(prefix="convscope-generalise-"))
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ValueError(f"give the models different names, got {names}")
    features: dict[str, tuple[Tensor, Tensor]] = {}
    labels = (torch.empty(0), torch.empty(0))
    for index, model in enumerate(models):
        scan = Scan(model, layers, k=1, pooling=pooling)
        scanned = {part: scan.run(pictures, folder / f"model{index}" / part, batch_size=batch_size,
                                  progress=progress) for part, pictures in (("train", train), ("test", test))}
        labels = scanned["train"].labels, scanned["test"].labels
        for layer in scan.layers:
            features[f"{model.name} · {layer}"] = (scanned["train"].features(layer), scanned["test"].features(layer))
    return generalisation_from_features(features, labels[0], labels[1], per_class=per_class, draws=draws,
                                        classifier=classifier, seed=seed)
