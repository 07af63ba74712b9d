"""The metrics ``convscope check --metrics`` can run: family, direction and how each is computed for one method."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from convscope.analysis.metrics import axiomatic, complexity, faithfulness, localisation, randomisation, robustness


@dataclass(frozen=True)
class Case:
    """What one method's evaluation sees: the network, pictures ``[B,C,H,W]``, classes ``[B]``, its maps ``[B,H,W]``,
    ``explain(x, y)``, masks ``[B,H,W]`` (or None), the maps of a randomised copy, the class count and a seed."""

    net: Callable[[Tensor], Tensor]
    x: Tensor
    y: Tensor
    maps: Tensor
    explain: Callable[[Tensor, Tensor], Tensor]
    masks: Tensor | None
    randomised_maps: Callable[[], Tensor]
    classes: int
    seed: int


@dataclass(frozen=True)
class MetricSpec:
    """A metric's family, its direction, how it is computed for one method, whether it needs masks, and a note."""

    family: str
    higher_is_better: bool
    compute: Callable[[Case], Tensor]
    needs_masks: bool = False
    what: str = ""


ROAD_SHARES = tuple(range(5, 100, 10))


def _steps(case: Case, steps: int = 20) -> int:
    return max(1, case.x.shape[-1] * case.x.shape[-2] // steps)


def _patch(case: Case) -> int:
    return max(1, min(case.x.shape[-2:]) // 8)


def _randomisation_similarity(case: Case) -> Tensor:
    from convscope.analysis.similarity import spearman

    return spearman(case.maps.cpu(), case.randomised_maps().cpu()).double()


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
    "road_morf": MetricSpec("faithfulness", False, lambda c: faithfulness.road(
        c.net, c.x, c.y, c.maps, percentages=ROAD_SHARES, order="morf", seed=c.seed).mean(1),
        what="class kept as 5, 15 … 95 % of the most important pixels are imputed"),
    "road_lerf": MetricSpec("faithfulness", True, lambda c: faithfulness.road(
        c.net, c.x, c.y, c.maps, percentages=ROAD_SHARES, order="lerf", seed=c.seed).mean(1),
        what="class kept as 5, 15 … 95 % of the least important pixels are imputed"),
    "avg_sensitivity": MetricSpec("robustness", False, lambda c: robustness.avg_sensitivity(
        c.explain, c.x, c.y, c.maps, samples=4, radius=0.1, seed=c.seed), what="4 draws, radius 0.1"),
    "relative_input_stability": MetricSpec("robustness", False, lambda c: robustness.relative_input_stability(
        c.explain, c.x, c.y, c.maps, samples=4, radius=0.1, seed=c.seed, model=c.net), what="4 draws, radius 0.1"),
    "relative_output_stability": MetricSpec("robustness", False, lambda c: robustness.relative_output_stability(
        c.explain, c.x, c.y, c.maps, samples=4, radius=0.1, seed=c.seed, model=c.net), what="4 draws, radius 0.1"),
    "local_lipschitz_estimate": MetricSpec("robustness", False, lambda c: robustness.local_lipschitz_estimate(
        c.explain, c.x, c.y, c.maps, samples=4, std=0.1, seed=c.seed, model=c.net), what="4 draws, σ 0.1"),
    "continuity": MetricSpec("robustness", False, lambda c: robustness.continuity(
        c.explain, c.x, c.y, c.maps, steps=8), what="8 sideways translations"),
    "relevance_mass_accuracy": MetricSpec("localisation", True, lambda c: localisation.relevance_mass_accuracy(
        c.maps, c.masks), needs_masks=True),
    "relevance_rank_accuracy": MetricSpec("localisation", True, lambda c: localisation.relevance_rank_accuracy(
        c.maps, c.masks), needs_masks=True),
    "pointing_game": MetricSpec("localisation", True, lambda c: localisation.pointing_game(c.maps, c.masks),
                                needs_masks=True),
    "auc": MetricSpec("localisation", True, lambda c: localisation.auc(c.maps, c.masks), needs_masks=True),
    "random_logit": MetricSpec("randomisation", False, lambda c: randomisation.random_logit(
        c.explain, c.x, c.y, c.maps, classes=c.classes, seed=c.seed), what="SSIM to another class's map"),
    "model_randomisation": MetricSpec("randomisation", False, _randomisation_similarity,
                                      what="Spearman to the map once the top stage is re-drawn"),
    "effective_complexity": MetricSpec("complexity", False, lambda c: complexity.effective_complexity(c.maps),
                                       what="pixels above 1e-5"),
    "non_sensitivity": MetricSpec("axiomatic", False, lambda c: axiomatic.non_sensitivity(
        c.net, c.x, c.y, c.maps, features_in_step=_steps(c)), what="20 groups"),
    "completeness_gap": MetricSpec("axiomatic", False, lambda c: axiomatic.completeness_gap(
        c.net, c.x, c.y, c.maps), what="|Σa − Δlogit| / |Δlogit|"),
}
DEFAULT_METRICS = ("sparseness", "complexity", "pixel_flipping", "region_perturbation", "faithfulness_correlation",
                   "avg_sensitivity", "relevance_mass_accuracy", "pointing_game", "random_logit",
                   "model_randomisation")
