"""The metrics ``convscope check --metrics`` can run: family, direction and how each is computed for one method."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from convscope.analysis.metrics import axiomatic, complexity, faithfulness, localisation, randomisation, robustness


@dataclass(frozen=True)
class Case:
    """What one method's evaluation sees: the network, pictures ``[B,C,H,W]``, classes ``[B]``, its maps ``[B,H,W]``,
    ``explain(x, y)``, masks ``[B,H,W]`` (or None), the maps of a randomised copy, the class count and a seed."""

    net: nn.Module
    x: Tensor
    y: Tensor
    maps: Tensor
    explain: Callable[[Tensor, Tensor], Tensor]
    masks: Tensor | None
    randomised_maps: Callable[[], Tensor]
    classes: int
    seed: int
    model: Any = None  # the convscope Model, for deletion / insertion
    random_labels_maps: Callable[[], Tensor] | None = None  # maps by the network trained on random labels

    def required_masks(self) -> Tensor:
        """``masks``, for a metric that needs them (the report runs those only when masks are given)."""
        if self.masks is None:
            raise ValueError("this metric needs object masks [B,H,W]: give masks=")
        return self.masks


@dataclass(frozen=True)
class MetricSpec:
    """A metric's family, its direction, how it is computed for one method, whether it needs masks, and a note."""

    family: str
    higher_is_better: bool
    compute: Callable[[Case], Tensor]
    needs_masks: bool = False
    what: str = ""
    needs_random_labels: bool = False


ROAD_SHARES = tuple(range(5, 100, 10))


def _steps(case: Case, steps: int = 20) -> int:
    return max(1, case.x.shape[-1] * case.x.shape[-2] // steps)


def _patch(case: Case) -> int:
    return max(1, min(case.x.shape[-2:]) // 8)


def _randomisation_similarity(case: Case) -> Tensor:
    from convscope.analysis.similarity import spearman

    return spearman(case.maps.cpu(), case.randomised_maps().cpu()).double()


def _data_randomisation_similarity(case: Case) -> Tensor:
    from convscope.analysis.similarity import spearman

    if case.random_labels_maps is None:
        raise ValueError("data randomisation needs the same network trained on random labels (random_labels_maps=)")
    return spearman(case.maps.cpu(), case.random_labels_maps().cpu()).double()


def classifier_input(net: nn.Module) -> Callable[[Tensor], Tensor]:
    """``representation(x)``: what the last linear layer of ``net`` reads (the features the classifier sees)."""
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("relative representation stability reads the input of the last linear layer; this "
                         "network has none (call robustness.relative_representation_stability with a layer)")

    def representation(x: Tensor) -> Tensor:
        seen = []
        handle = linears[-1].register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
        try:
            with torch.no_grad():
                net(x)
        finally:
            handle.remove()
        return seen[-1]

    return representation


def _deletion_insertion(case: Case, which: str) -> Tensor:
    from convscope.analysis.faithfulness import deletion_insertion

    curves = deletion_insertion(case.model, case.x, case.maps, case.y, steps=20)
    return (curves.deletion_auc if which == "deletion" else curves.insertion_auc).double()


def _input_invariance(case: Case) -> Tensor:
    return axiomatic.input_invariance(case.net, case.x, case.y, case.explain, norm_rtol=0.05)


def _top_k(case: Case) -> Tensor:
    k = max(1, case.x.shape[-1] * case.x.shape[-2] // 20)
    return localisation.top_k_intersection(case.maps, case.required_masks(), k=k)


def _sensitivity_n(case: Case) -> Tensor:
    pixels = case.x.shape[-1] * case.x.shape[-2]
    sizes = tuple(sorted({max(1, pixels // 100), max(1, pixels // 10), max(1, pixels // 3)}))
    return faithfulness.sensitivity_n(case.net, case.x, case.y, case.maps, sizes=sizes, runs=20,
                                      seed=case.seed).nanmean(1)


METRICS: dict[str, MetricSpec] = {
    "sparseness": MetricSpec("complexity", True, lambda c: complexity.sparseness(c.maps), what="Gini index"),
    "complexity": MetricSpec("complexity", False, lambda c: complexity.complexity(c.maps), what="entropy"),
    "pixel_flipping": MetricSpec("faithfulness", False, lambda c: faithfulness.area(faithfulness.pixel_flipping(
        c.net, c.x, c.y, c.maps, features_in_step=_steps(c))), what="area under the probability, 20 steps"),
    "region_perturbation": MetricSpec("faithfulness", True, lambda c: faithfulness.area(
        faithfulness.region_perturbation(c.net, c.x, c.y, c.maps, patch_size=_patch(c), regions=20)),
        what="area under the drop, 20 of 64 patches"),
    "faithfulness_correlation": MetricSpec("faithfulness", True, lambda c: faithfulness.faithfulness_correlation(
        c.net, c.x, c.y, c.maps, runs=20, subset_size=_steps(c, 10), seed=c.seed), what="20 subsets of 10 %"),
    "monotonicity_correlation": MetricSpec("faithfulness", True, lambda c: faithfulness.monotonicity_correlation(
        c.net, c.x, c.y, c.maps, features_in_step=_steps(c)), what="20 groups"),
    "irof": MetricSpec("faithfulness", True, lambda c: faithfulness.irof(c.net, c.x, c.y, c.maps, softmax=True),
                       what="SLIC superpixels, one pass each"),
    "infidelity": MetricSpec("faithfulness", False, lambda c: faithfulness.infidelity(
        c.net, c.x, c.y, c.maps, samples=10, seed=c.seed, normalize=True), what="10 draws, σ 0.003, β-normalised"),
    "faithfulness_estimate": MetricSpec("faithfulness", True, lambda c: faithfulness.faithfulness_estimate(
        c.net, c.x, c.y, c.maps, features_in_step=_steps(c)), what="20 groups"),
    "monotonicity": MetricSpec("faithfulness", True, lambda c: faithfulness.monotonicity(
        c.net, c.x, c.y, c.maps, features_in_step=_steps(c)), what="20 groups revealed, least important first"),
    "selectivity": MetricSpec("faithfulness", False, lambda c: faithfulness.area(faithfulness.selectivity(
        c.net, c.x, c.y, c.maps, patch_size=_patch(c))), what="area under the probability, 64 patches"),
    "sensitivity_n": MetricSpec("faithfulness", True, _sensitivity_n,
                                what="mean over n = 1 %, 10 %, 33 % of the pixels, 20 subsets each"),
    "sufficiency": MetricSpec("faithfulness", True, lambda c: faithfulness.sufficiency(c.net, c.x, c.maps),
                              what="over the other pictures of the report"),
    "deletion": MetricSpec("faithfulness", False, lambda c: _deletion_insertion(c, "deletion"),
                           what="area under the probability, 20 steps"),
    "insertion": MetricSpec("faithfulness", True, lambda c: _deletion_insertion(c, "insertion"),
                            what="area under the probability on a blurred copy, 20 steps"),
    "road_morf": MetricSpec("faithfulness", False, lambda c: faithfulness.road(
        c.net, c.x, c.y, c.maps, percentages=ROAD_SHARES, order="morf", seed=c.seed).mean(1),
        what="class kept as 5, 15 … 95 % of the most important pixels are imputed"),
    "road_lerf": MetricSpec("faithfulness", True, lambda c: faithfulness.road(
        c.net, c.x, c.y, c.maps, percentages=ROAD_SHARES, order="lerf", seed=c.seed).mean(1),
        what="class kept as 5, 15 … 95 % of the least important pixels are imputed"),
    "avg_sensitivity": MetricSpec("robustness", False, lambda c: robustness.avg_sensitivity(
        c.explain, c.x, c.y, c.maps, samples=4, radius=0.1, seed=c.seed), what="4 draws, radius 0.1"),
    "max_sensitivity": MetricSpec("robustness", False, lambda c: robustness.max_sensitivity(
        c.explain, c.x, c.y, c.maps, samples=4, radius=0.1, seed=c.seed), what="4 draws, radius 0.1"),
    "relative_representation_stability": MetricSpec("robustness", False, lambda c: (
        robustness.relative_representation_stability(c.explain, c.x, c.y, c.maps, samples=4, radius=0.1,
                                                      seed=c.seed, model=c.net,
                                                      representation=classifier_input(c.net))),
        what="4 draws, radius 0.1, the classifier's input"),
    "relative_input_stability": MetricSpec("robustness", False, lambda c: robustness.relative_input_stability(
        c.explain, c.x, c.y, c.maps, samples=4, radius=0.1, seed=c.seed, model=c.net), what="4 draws, radius 0.1"),
    "relative_output_stability": MetricSpec("robustness", False, lambda c: robustness.relative_output_stability(
        c.explain, c.x, c.y, c.maps, samples=4, radius=0.1, seed=c.seed, model=c.net), what="4 draws, radius 0.1"),
    "local_lipschitz_estimate": MetricSpec("robustness", False, lambda c: robustness.local_lipschitz_estimate(
        c.explain, c.x, c.y, c.maps, samples=4, std=0.1, seed=c.seed, model=c.net), what="4 draws, σ 0.1"),
    "continuity": MetricSpec("robustness", False, lambda c: robustness.continuity(
        c.explain, c.x, c.y, c.maps, steps=8), what="8 sideways translations"),
    "relevance_mass_accuracy": MetricSpec("localisation", True, lambda c: localisation.relevance_mass_accuracy(
        c.maps, c.required_masks()), needs_masks=True),
    "relevance_rank_accuracy": MetricSpec("localisation", True, lambda c: localisation.relevance_rank_accuracy(
        c.maps, c.required_masks()), needs_masks=True),
    "pointing_game": MetricSpec("localisation", True, lambda c: localisation.pointing_game(c.maps, c.required_masks()),
                                needs_masks=True),
    "attribution_localisation": MetricSpec("localisation", True, lambda c: localisation.attribution_localisation(
        c.maps, c.required_masks()), needs_masks=True),
    "top_k_intersection": MetricSpec("localisation", True, _top_k, needs_masks=True, what="k: 5 % of the pixels"),
    "energy_pointing_game": MetricSpec("localisation", True, lambda c: localisation.energy_pointing_game(
        c.maps, c.required_masks()), needs_masks=True),
    "auc": MetricSpec("localisation", True, lambda c: localisation.auc(c.maps, c.required_masks()), needs_masks=True),
    "random_logit": MetricSpec("randomisation", False, lambda c: randomisation.random_logit(
        c.explain, c.x, c.y, c.maps, classes=c.classes, seed=c.seed), what="SSIM to another class's map"),
    "model_randomisation": MetricSpec("randomisation", False, _randomisation_similarity,
                                      what="Spearman to the map once the top stage is re-drawn"),
    "data_randomisation": MetricSpec("randomisation", False, _data_randomisation_similarity,
                                     needs_random_labels=True,
                                     what="Spearman to the map of the network trained on random labels"),
    "effective_complexity": MetricSpec("complexity", False, lambda c: complexity.effective_complexity(c.maps),
                                       what="pixels above 1e-5"),
    "non_sensitivity": MetricSpec("axiomatic", False, lambda c: axiomatic.non_sensitivity(
        c.net, c.x, c.y, c.maps, features_in_step=_steps(c)), what="20 groups"),
    "input_invariance": MetricSpec("axiomatic", True, _input_invariance,
                                   what="same map (to 5 % of its norm) for x − 1 through a network adding 1"),
    "completeness_gap": MetricSpec("axiomatic", False, lambda c: axiomatic.completeness_gap(
        c.net, c.x, c.y, c.maps), what="|Σa − Δlogit| / |Δlogit|"),
}
DEFAULT_METRICS = ("sparseness", "complexity", "pixel_flipping", "region_perturbation", "faithfulness_correlation",
                   "avg_sensitivity", "relevance_mass_accuracy", "pointing_game", "random_logit",
                   "model_randomisation")
