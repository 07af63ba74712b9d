"""Testing with concept activation vectors (TCAV; Kim et al. 2018, https://arxiv.org/abs/1711.11279).

A *concept* is a set of pictures (striped textures, a colour…). Its concept activation
vector (CAV) at a layer is the normal of a linear classifier (scikit-learn's
``SGDClassifier``, as Captum's default) that separates the concept's activations from
those of a random set, pointing towards the concept. The *TCAV score* of a class is the
share of input pictures whose class logit grows when their activations move along the CAV
(a positive directional derivative). Repeated against ``R`` random sets, the scores are
compared by a two-sided t-test with the scores of random-versus-random CAVs: a concept
whose scores could come from random directions is not significant.

Activations and gradients are computed once per picture; each run only fits a classifier (the classifiers
are fitted in parallel threads).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor

from convscope.attribution.base import batch_size_for, forward, layer_gradient
from convscope.models.layers import layer_name
from convscope.models.model import Model
from convscope.render.picture import Picture
from convscope.reprs import short_repr
from convscope.targets import ClassScore

MIN_PICTURES = 8
MIN_RUNS = 10


@dataclass
class CAV:
    """A concept activation vector ``[D]`` (towards the concept) and its classifier's held-out accuracy."""

    __repr__ = short_repr

    vector: Tensor
    accuracy: float


def fit_cav(concept: Tensor, random: Tensor, *, seed: int = 0, test_share: float = 0.33) -> CAV:
    """The CAV separating ``concept`` ``[N,D]`` from ``random`` ``[M,D]`` activations (a linear SGD classifier with
    Captum's settings: ``alpha=0.01, max_iter=1000, tol=1e-3``), its accuracy on a held-out third."""
    with _separable_sets_allowed():
        return _fit_cav(concept, random, seed, test_share)


@contextmanager
def _separable_sets_allowed() -> Iterator[None]:
    """Separable sets stop at ``max_iter``; the direction is what TCAV reads, so scikit-learn's warning is not shown.
    (Warning filters are global to the process: threads that fit inside this block see it too.)"""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def _fit_cav(concept: Tensor, random: Tensor, seed: int, test_share: float = 0.33) -> CAV:
    from sklearn.linear_model import SGDClassifier

    features = torch.cat([concept, random]).double()
    labels = torch.cat([torch.ones(len(concept)), torch.zeros(len(random))]).long()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    test = max(1, int(round(len(labels) * test_share)))
    train, held = order[test:], order[:test]
    classifier = SGDClassifier(alpha=0.01, max_iter=1000, tol=1e-3, random_state=seed)
    classifier.fit(features[train].numpy(), labels[train].numpy())
    accuracy = float((torch.from_numpy(classifier.predict(features[held].numpy())) == labels[held]).float().mean())
    vector = torch.from_numpy(classifier.coef_[0]).float()
    return CAV(vector if classifier.classes_[1] == 1 else -vector, accuracy)


def tcav_score(gradients: Tensor, cav: Tensor) -> Tensor:
    """The share of pictures with a positive directional derivative ``∇h·v``: gradients ``[..., N, D]`` → ``[...]``."""
    return ((gradients.float() @ cav.float()) > 0).float().mean(-1)


@dataclass
class TCAVResult:
    """TCAV scores ``scores`` ``[concepts, classes, runs]`` against random sets, the random-versus-random scores
    ``random_scores`` ``[classes, runs]``, CAV accuracies ``accuracy`` ``[concepts, runs]`` and the two-sided t-test's
    ``p_values`` ``[concepts, classes]``."""

    __repr__ = short_repr

    layer: str
    concepts: list[str]
    classes: list[str]
    scores: Tensor
    random_scores: Tensor
    accuracy: Tensor
    p_values: Tensor
    pictures: int

    def significant(self, alpha: float = 0.05) -> Tensor:
        """``[concepts, classes]``: whether the concept's scores differ from random directions' at level ``alpha``
        (Bonferroni-corrected over the tested pairs)."""
        return self.p_values < alpha / self.p_values.numel()

    def lines(self) -> list[str]:
        """One line per concept and class: mean ± std score, random mean, p-value, significant or not."""
        mark = self.significant()
        found = []
        for c, concept in enumerate(self.concepts):
            for k, name in enumerate(self.classes):
                scores = self.scores[c, k]
                found.append(f"{concept:>12} → {name}: TCAV {float(scores.mean()):.2f} ± {float(scores.std()):.2f} "
                             f"(random {float(self.random_scores[k].mean()):.2f}), p = {float(self.p_values[c, k]):.2g}"
                             f" {'significant' if mark[c, k] else 'not significant'}; CAV accuracy "
                             f"{float(self.accuracy[c].mean()):.0%}")
        return found

    def figure(self, note: str = "") -> Picture:
        """Bars of the mean TCAV score per class and concept (± std over runs), the random baseline in grey; a star
        marks a significant concept. ``note`` says what the concepts are."""
        from convscope.render.plots import figure_to_picture, new_figure

        figure, axes = new_figure(size=(max(4.5, 1.4 * len(self.classes) * (len(self.concepts) + 1)), 3.4))
        axis = axes[0, 0]
        width = 0.8 / (len(self.concepts) + 1)
        mark = self.significant()
        for c, concept in enumerate([*self.concepts, "random"]):
            values = self.random_scores if concept == "random" else self.scores[c]
            places = [k + c * width for k in range(len(self.classes))]
            bars = axis.bar(places, values.mean(-1).tolist(), width, yerr=values.std(-1).tolist(), capsize=2,
                            label=concept, color="0.7" if concept == "random" else None)
            if concept != "random":
                tops = (values.mean(-1) + values.std(-1)).tolist()
                for k, bar in enumerate(bars):
                    if mark[c, k]:
                        axis.text(bar.get_x() + width / 2, min(1.03, tops[k] + 0.02), "*", ha="center")
        axis.set_xticks([k + 0.4 - width / 2 for k in range(len(self.classes))], self.classes)
        axis.set_ylim(0, 1.1)
        axis.set_ylabel("TCAV score")
        axis.legend(fontsize=7, ncols=2)
        runs = self.scores.shape[-1]
        axis.set_title(f"TCAV at {self.layer}: {runs} runs, {self.pictures} pictures; * p < 0.05 (Bonferroni)"
                       + (f"\n{note}" if note else ""), fontsize=8)
        return figure_to_picture(figure)


def picture_activations(model: Model, pictures: Sequence[Tensor], layer: str, *, batch_size: int | None = None
                        ) -> Tensor:
    """``layer``'s activations ``[N,D]`` (flattened) for pictures ``[3,H,W]`` in [0, 1], prepared by the model."""
    size = batch_size_for(batch_size, model.device)
    rows = []
    for start in range(0, len(pictures), size):
        inputs = model.preprocess(list(pictures[start:start + size])).to(model.device)
        rows.append(forward(model, inputs, [layer])[1][layer].flatten(1).float().cpu())
    return torch.cat(rows)


def class_gradients(model: Model, pictures: Sequence[Tensor], layer: str, classes: Sequence[int], *,
                    batch_size: int | None = None) -> Tensor:
    """d logit_k / d activations of ``layer`` ``[K,N,D]`` for each class ``k`` and picture."""
    size = batch_size_for(batch_size, model.device)
    found = []
    for k in classes:
        rows = []
        for start in range(0, len(pictures), size):
            inputs = model.preprocess(list(pictures[start:start + size])).to(model.device)
            rows.append(layer_gradient(model, inputs, ClassScore(int(k)), layer).grads.flatten(1).float().cpu())
        found.append(torch.cat(rows))
    return torch.stack(found)


def tcav(model: Model, concepts: Mapping[str, Sequence[Tensor]], randoms: Sequence[Sequence[Tensor]],
         pictures: Sequence[Tensor], layer: str, classes: Sequence[int], *, seed: int = 0,
         batch_size: int | None = None) -> TCAVResult:
    """TCAV of each concept (pictures ``[3,H,W]`` in [0, 1]) for each class over ``pictures``, at ``layer``.

    ``randoms`` are at least 11 random picture sets: ``randoms[0]`` plays a concept for the
    random-versus-random baseline, ``randoms[1:]`` are the runs (at least 10).
    """
    from scipy.stats import ttest_ind

    layer = layer_name(model.net, layer)
    check_sets(concepts, randoms)
    if not pictures:
        raise ValueError("TCAV needs pictures to take directional derivatives at (e.g. pictures of the classes)")
    runs = len(randoms) - 1
    gradients = class_gradients(model, pictures, layer, classes, batch_size=batch_size)
    random_acts = [picture_activations(model, pool, layer, batch_size=batch_size) for pool in randoms]
    concept_acts = [picture_activations(model, members, layer, batch_size=batch_size) for members in concepts.values()]
    # every CAV of every run, the random-versus-random ones last; fitted side by side (scikit-learn's SGD runs
    # without the GIL), each with its own seed, so the result is the same as one after the other
    pairs = [(acts, random_acts[run + 1], seed + run)
             for acts in [*concept_acts, random_acts[0]] for run in range(runs)]
    with _separable_sets_allowed(), ThreadPoolExecutor(max(1, min(len(pairs), os.cpu_count() or 1))) as pool:
        cavs = list(pool.map(lambda pair: _fit_cav(*pair), pairs))
    scores = torch.zeros(len(concepts), len(classes), runs)
    accuracy = torch.zeros(len(concepts), runs)
    for c in range(len(concepts)):
        for run in range(runs):
            cav = cavs[c * runs + run]
            scores[c, :, run], accuracy[c, run] = tcav_score(gradients, cav.vector), cav.accuracy
    baseline = torch.stack([tcav_score(gradients, cav.vector) for cav in cavs[len(concepts) * runs:]], -1)
    p_values = torch.ones(len(concepts), len(classes))
    for c in range(len(concepts)):
        for k in range(len(classes)):
            if torch.equal(scores[c, k], baseline[k]) or (scores[c, k].std() == 0 and baseline[k].std() == 0):
                p_values[c, k] = 1.0 if float(scores[c, k].mean()) == float(baseline[k].mean()) else 0.0
            else:
                p_values[c, k] = float(ttest_ind(scores[c, k].numpy(), baseline[k].numpy()).pvalue)
    names = model.classes()
    return TCAVResult(layer, list(concepts), [names[int(k)] if int(k) < len(names) else str(k) for k in classes],
                      scores, baseline, accuracy, p_values, len(pictures))


def check_sets(concepts: Mapping[str, Sequence[Tensor]], randoms: Sequence[Sequence[Tensor]]) -> None:
    """A ``ValueError`` for too few concepts, pictures or random sets, or a random set made of a concept's pictures."""
    if not concepts:
        raise ValueError("name at least one concept (a folder of pictures showing it)")
    if len(randoms) < MIN_RUNS + 1:
        raise ValueError(f"TCAV's t-test needs at least {MIN_RUNS + 1} random sets ({MIN_RUNS} runs and one for the "
                         f"random baseline), got {len(randoms)}; give a folder of random pictures to draw them from")
    for name, members in [*concepts.items(), *((f"random set {i}", pool) for i, pool in enumerate(randoms))]:
        if len(members) < MIN_PICTURES:
            raise ValueError(f"{name} holds {len(members)} pictures; TCAV needs at least {MIN_PICTURES} per set "
                             "(Kim et al. used 50)")
    seen = {name: {_digest(p) for p in members} for name, members in concepts.items()}
    for i, pool in enumerate(randoms):
        digests = {_digest(p) for p in pool}
        for name, mine in seen.items():
            if len(digests & mine) > len(digests) // 2:
                raise ValueError(f"random set {i} is made of concept {name!r}'s pictures: random sets must be "
                                 "pictures without the concept (e.g. crops of unrelated photos)")


def _digest(picture: Tensor) -> str:
    return hashlib.sha1(picture.detach().cpu().contiguous().float().numpy().tobytes()).hexdigest()
