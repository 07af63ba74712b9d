"""One report over methods × metrics: means with bootstrap intervals over pictures, ranks, a figure and a verdict."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from convscope.analysis.metrics.common import run
from convscope.analysis.metrics.registry import DEFAULT_METRICS, METRICS, Case
from convscope.models.model import Model
from convscope.reprs import short_repr
from convscope.suggestions import chosen_names

SIMILAR = 0.5  # randomisation similarity above which (the whole interval) a method ignores the model / class


def metric_names(names: Sequence[str] | None) -> list[str]:
    return chosen_names(names, DEFAULT_METRICS, METRICS, "metric", "metrics")


def bootstrap(values: Tensor, *, resamples: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the mean of ``values`` ``[B]`` (NaN ignored) over pictures drawn with replacement
    (drawn in blocks, so that memory does not grow with the number of pictures)."""
    values = values[~values.isnan()].double().cpu()
    if values.numel() == 0:
        return float("nan"), float("nan")
    generator, block = torch.Generator().manual_seed(seed), max(1, 2**18 // values.numel())  # ≤ 4 MB at a time
    means = torch.cat([values[torch.randint(0, values.numel(), (min(block, resamples - start), values.numel()),
                                            generator=generator)].mean(1) for start in range(0, resamples, block)])
    tail = (1 - level) / 2
    if not bool(means.isfinite().all()):  # an overflowing mean: interpolating between infinities gives NaN
        return float(means.quantile(tail, interpolation="lower")), float(means.quantile(1 - tail,
                                                                                         interpolation="higher"))
    return float(means.quantile(tail)), float(means.quantile(1 - tail))


@dataclass
class EvaluationReport:
    """``values[method][metric]``: one value per picture ``[B]``; ``skipped``: metrics left out, with why."""

    __repr__ = short_repr

    model: str
    methods: list[str]
    metrics: list[str]
    values: dict[str, dict[str, Tensor]]
    pictures: int
    skipped: dict[str, str]

    def mean(self, method: str, metric: str) -> float:
        return float(self.values[method][metric].nanmean())

    def ranks(self) -> dict[str, dict[str, float]]:
        """Rank of each method per metric (1: best in the metric's direction; ties share their average)."""
        from convscope.analysis.similarity import average_ranks

        out: dict[str, dict[str, float]] = {m: {} for m in self.methods}
        for metric in self.metrics:
            sign = -1.0 if METRICS[metric].higher_is_better else 1.0
            means = torch.tensor([[sign * self.mean(m, metric) for m in self.methods]]).nan_to_num(float("inf"))
            for m, r in zip(self.methods, average_ranks(means)[0].tolist(), strict=True):
                out[m][metric] = r
        return out

    def overall(self) -> list[tuple[str, float]]:
        """Methods by their mean rank over the metrics, best first."""
        ranks = self.ranks()
        return sorted(((m, sum(ranks[m].values()) / len(self.metrics)) for m in self.methods), key=lambda t: t[1])

    def rows(self) -> list[dict[str, Any]]:
        ranks = self.ranks()
        rows = []
        for m in self.methods:
            for metric in self.metrics:
                low, high = bootstrap(self.values[m][metric])
                rows.append({"method": m, "metric": metric, "family": METRICS[metric].family,
                             "direction": "higher" if METRICS[metric].higher_is_better else "lower",
                             "mean": self.mean(m, metric), "ci_low": low, "ci_high": high,
                             "rank": ranks[m][metric], "pictures": int((~self.values[m][metric].isnan()).sum())})
        return rows

    def verdict(self) -> list[str]:
        """Plain sentences: which methods fail randomisation, which wins overall and per family."""
        lines = []
        for metric, what, depends in (("model_randomisation", "the classifier's weights are re-drawn",
                                       "the classifier's weights"),
                                      ("random_logit", "another class is explained", "the class"),
                                      ("data_randomisation", "the network is trained on random labels",
                                       "what the network learnt from its labels")):
            if metric not in self.metrics:
                continue
            intervals = {m: bootstrap(self.values[m][metric]) for m in self.methods}
            blind = [m for m in self.methods if intervals[m][0] > SIMILAR]
            passed = [m for m in self.methods if intervals[m][1] <= SIMILAR]
            unsure = [m for m in self.methods if m not in blind and m not in passed]
            if passed:
                lines.append(f"{_names(passed)} change{'s' if len(passed) == 1 else ''} when {what} "
                             f"({metric.replace('_', ' ')} similarity ≤ {SIMILAR} over the whole 95 % interval).")
            if blind:
                pronoun = "it" if len(blind) == 1 else "them"
                lines.append(f"{_names(blind)} hardly depend{'s' if len(blind) == 1 else ''} on {depends} "
                             f"(similarity > {SIMILAR} over the whole 95 % interval): do not use {pronoun} to "
                             "explain a decision.")
            if unsure:
                lines.append(f"{_names(unsure)}: undecided on {depends} (the 95 % interval of the "
                             f"{metric.replace('_', ' ')} similarity holds {SIMILAR}; use more pictures).")
        best = self.overall()
        lines.append(f"Best overall on this model: {best[0][0]} (mean rank {best[0][1]:.1f} of {len(self.methods)}); "
                     f"last: {best[-1][0]} ({best[-1][1]:.1f}).")
        families = dict.fromkeys(METRICS[m].family for m in self.metrics)
        for family in families:
            chosen = [m for m in self.metrics if METRICS[m].family == family]
            ranks = self.ranks()
            totals = {m: sum(ranks[m][x] for x in chosen) for m in self.methods}
            tops = [m for m in self.methods if totals[m] == min(totals.values())]
            if len(tops) == 1:
                lines.append(f"{family}: best {tops[0]}.")
            elif len(tops) < len(self.methods):
                lines.append(f"{family}: {_names(tops)} tie for best.")
            else:
                lines.append(f"{family}: no method is ahead (all tie).")
        for metric, why in self.skipped.items():
            lines.append(f"{metric} not measured: {why}.")
        return lines

    def markdown(self) -> str:
        ranks = self.ranks()
        head = " | ".join(f"{m.replace('_', ' ')} {'↑' if METRICS[m].higher_is_better else '↓'}"
                          for m in self.metrics)
        lines = [f"| method | {head} | overall rank |", "|---|" + "---:|" * (len(self.metrics) + 1)]
        overall = dict(self.overall())
        for method in sorted(self.methods, key=overall.__getitem__):
            cells = []
            for metric in self.metrics:
                low, high = bootstrap(self.values[method][metric])
                cells.append(f"{self.mean(method, metric):.3g} [{low:.3g}, {high:.3g}] ({ranks[method][metric]:g})")
            lines.append(f"| {method} | " + " | ".join(cells) + f" | {overall[method]:.1f} |")
        return "\n".join(lines)

    def text(self) -> str:
        return "\n".join([f"# Evaluation of explanations on {self.model}", "",
                          f"{self.pictures} pictures; each cell: mean [95 % bootstrap interval over pictures] "
                          "(rank among the methods, 1 = best); ↑ higher is better, ↓ lower is better.", "",
                          self.markdown(), "", "## Verdict", "", *[f"- {line}" for line in self.verdict()], ""])

    def picture(self):
        """One bar chart per metric: each method's mean with its bootstrap interval, the best bar outlined."""
        from convscope.render.plots import figure_to_picture, new_figure

        columns = min(4, len(self.metrics))
        rows = -(-len(self.metrics) // columns)
        figure, axes = new_figure(columns, rows, size=(3.2, 2.6))
        colours = [f"C{i % 10}" for i in range(len(self.methods))]
        ranks = self.ranks()
        for index, metric in enumerate(self.metrics):
            axis = axes[index // columns][index % columns]
            means = [self.mean(m, metric) for m in self.methods]
            intervals = [bootstrap(self.values[m][metric]) for m in self.methods]
            errors = [[max(0.0, mean - low) for mean, (low, _) in zip(means, intervals, strict=True)],
                      [max(0.0, high - mean) for mean, (_, high) in zip(means, intervals, strict=True)]]
            bars = axis.bar(range(len(self.methods)), means, yerr=errors, color=colours, capsize=3)
            first = min(ranks[x][metric] for x in self.methods)
            tied = len(self.methods) > 1 and all(ranks[m][metric] == first for m in self.methods)
            for bar, m in zip(bars, self.methods, strict=True):
                if ranks[m][metric] == first and not tied:
                    bar.set_edgecolor("black")
                    bar.set_linewidth(2)
            arrow = "↑" if METRICS[metric].higher_is_better else "↓"
            tie = f" (all tie at {means[0]:.3g})" if tied else ""  # equal bars, perhaps of no height: the value
            axis.set_title(f"{metric.replace('_', ' ')} {arrow}{tie}", fontsize=9)
            axis.set_xticks(range(len(self.methods)), self.methods, rotation=45, ha="right", fontsize=7)
            axis.tick_params(axis="y", labelsize=7)
        for index in range(len(self.metrics), rows * columns):
            axes[index // columns][index % columns].axis("off")
        figure.suptitle(f"{self.model}: methods × metrics (bars: mean over {self.pictures} pictures, "
                        "whiskers: 95 % bootstrap interval, outlined: best)", fontsize=10)
        figure.tight_layout()
        return figure_to_picture(figure)


def _random_labels_model(model: Model) -> Model | None:
    """The shipped Fashion-MNIST CNN trained on random labels, where ``model`` is that architecture, else None."""
    from convscope.models.fashion import FASHION_MODEL, label_randomisation_pair

    if model.name != FASHION_MODEL:
        return None
    try:
        random_labels = label_randomisation_pair()[1].to(model.device)
    except ValueError:
        return None
    return random_labels if type(random_labels.net) is type(model.net) else None


def _names(methods: Sequence[str]) -> str:
    return methods[0] if len(methods) == 1 else ", ".join(methods[:-1]) + " and " + methods[-1]


def evaluate_methods(model: Model, inputs: Tensor, methods: Sequence[str] | None = None,
                     metrics: Sequence[str] | None = None, *, masks: Tensor | None = None, target=None,
                     options: Mapping[str, Mapping[str, Any]] | None = None, seed: int = 0,
                     progress: bool | None = False) -> EvaluationReport:
    """Each metric of each method's maps on a normalised batch ``inputs``, for ``target`` (default: each picture's
    top class, fixed from the clean picture); ``masks`` ``[B,H,W]`` (object pixels) enable the localisation
    metrics. The model is left as found."""
    from convscope.analysis.explainers import build, fixed_target, heatmaps, method_names
    from convscope.analysis.randomisation import cascading_randomisation
    from convscope.progress import progress_bar
    from convscope.targets import ClassScore

    names, chosen = method_names(methods), metric_names(metrics)
    inputs = inputs.to(model.device)
    if masks is not None and (masks.shape[0] != inputs.shape[0] or masks.shape[-2:] != inputs.shape[-2:]):
        raise ValueError(f"give one mask per picture at its size: masks {tuple(masks.shape)}, pictures "
                         f"{tuple(inputs.shape)}")
    skipped = {m: "it needs object masks (give pictures with boxes, or use the pasted composites)"
               for m in chosen if METRICS[m].needs_masks and masks is None}
    pair = _random_labels_model(model) if any(METRICS[m].needs_random_labels for m in chosen) else None
    skipped.update({m: "it needs the same network trained on random labels (shipped for fashion_cnn only)"
                    for m in chosen if METRICS[m].needs_random_labels and pair is None})
    chosen = [m for m in chosen if m not in skipped]
    if not chosen:
        raise ValueError("none of the chosen metrics can run without object masks: add others with --metrics")
    fixed, classes = fixed_target(model, inputs, target)
    if classes is None:
        raise ValueError("the metrics follow a class's score: give a class target (or None)")
    randomised = None
    if "model_randomisation" in chosen:  # the first copy of the cascade: the top stage (the classifier) re-drawn
        randomised = next(iter(cascading_randomisation(model, seed=seed)))[1]
    values: dict[str, dict[str, Tensor]] = {}
    count = int(run(model.net, inputs[:1]).shape[1])
    for name in progress_bar(names, desc="metrics", unit="method", enabled=progress, leave=False):
        method = build(name, model, options)

        def explain(x: Tensor, y: Tensor, method=method) -> Tensor:
            return heatmaps(method, x, ClassScore(tuple(y.tolist())))

        maps = heatmaps(method, inputs, fixed)

        def again(name=name, maps=maps) -> Tensor:
            assert randomised is not None, "made above when model_randomisation is chosen, the one metric calling this"
            return heatmaps(build(name, randomised, options), inputs, fixed)

        def on_random_labels(name=name) -> Tensor:
            assert pair is not None, "given to the case only with the network trained on random labels"
            return heatmaps(build(name, pair, options), inputs, fixed)

        case = Case(model.net, inputs, classes, maps, explain, masks, again, count, seed, model,
                    on_random_labels if pair is not None else None)
        values[name] = {metric: METRICS[metric].compute(case).double().cpu() for metric in chosen}
    return EvaluationReport(model.name, names, chosen, values, inputs.shape[0], skipped)
