"""A channel's numbers read from a scan: its statistics, whether it is dead, and the classes that excite it most
(the class-conditional mean of its pooled activation over the scanned pictures)."""

from __future__ import annotations

import torch
from torch import Tensor

from convscope.scan.dead_filters import dead_filters
from convscope.scan.result import ScanResult

TOP_CLASSES = 5


def channel_scores(result: ScanResult, layer: str) -> Tensor:
    """Per picture and channel ``[N,C]``: the scan's pooled feature (its mean or maximum over positions; the mean of
    a flattened one)."""
    features = result.features(layer)
    shape = result.shape(layer)
    if features.shape[1] == shape[0]:
        return features
    return features.reshape(features.shape[0], shape[0], -1).float().mean(2)


def layer_facts(result: ScanResult, layer: str, class_names: list[str] | None = None) -> dict[int, dict]:
    """Per channel: ``stats`` (active_fraction, mean, std, max, dead) and ``top_classes`` ([{class, mean, count}])."""
    found = dead_filters(result, layer)
    assert found.rarely_positive is not None, "dead_filters measures it for every channel"
    statistics = found.statistics
    scores = channel_scores(result, layer).float()
    labels = result.labels.long()
    labelled = labels >= 0
    names = result.class_names or class_names
    by_class: Tensor | None = None
    counts: Tensor | None = None
    if bool(labelled.any()):
        classes = int(labels.max()) + 1
        counts = torch.bincount(labels[labelled], minlength=classes)
        sums = torch.zeros(classes, scores.shape[1]).index_add_(0, labels[labelled], scores[labelled])
        by_class = sums / counts.clamp_min(1)[:, None]
    facts = {}
    for c in range(statistics.channels):
        stats = {"active_fraction": float(statistics.active_images[c]), "mean": float(statistics.mean[c]),
                 "std": float(statistics.std[c]), "max": float(statistics.max[c]), "dead": bool(found.dead[c]),
                 "rarely_positive": bool(found.rarely_positive[c]), "pictures": statistics.count_images}
        top = []
        if by_class is not None and counts is not None:  # set together
            present = counts > 0
            order = torch.argsort(torch.where(present, by_class[:, c], -torch.inf), descending=True, stable=True)
            for k in order[:min(TOP_CLASSES, int(present.sum()))].tolist():
                name = names[k] if names is not None and k < len(names) else str(k)
                top.append({"class": name, "index": k, "mean": float(by_class[k, c]), "count": int(counts[k])})
        facts[c] = {"stats": stats, "top_classes": top}
    return facts
