"""Time convscope's evaluation metrics against Quantus 0.6 on the same model, pictures, maps and settings.

    python benchmarks/metrics.py                    # a random small CNN, 8 grey 64 px pictures, best of 3
    python benchmarks/metrics.py --pictures 16 --side 32 --repeat 5 --metrics pixel_flipping auc
    python benchmarks/metrics.py --clock cpu        # CPU time: steadier on a machine shared with other jobs

Both libraries get one batch, the same attributions, masks, baseline (0) and amount of work (the same steps,
patches, subsets, samples; convscope's monotonicity stops a picture at its first fall, the same answer for fewer
passes, and Quantus' is timed with its reveal corrected). The pictures have one channel so that a "feature" is a
pixel for both (Quantus perturbs every channel value on its own). convscope and Quantus are run in turn,
``--repeat`` times each after a warm-up, and the best time of each is kept; ``ratio`` = Quantus / convscope (above
1: convscope is faster).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from convscope.analysis.metrics import (  # noqa: E402
    axiomatic,
    complexity,
    faithfulness,
    localisation,
    randomisation,
    robustness,
)
from tests.metrics_reference import reference_batch, revealing_monotonicity  # noqa: E402


def gradient(model):
    def explain(x, y):
        x = x.detach().clone().requires_grad_(True)
        model(x).gather(1, y.view(-1, 1)).sum().backward()
        return x.grad.sum(1, keepdim=True)
    return explain


def cases(quantus, model, x, y, a, s) -> dict[str, tuple[Callable[[], object], Callable[[], object]]]:
    xn, yn, an, sn = x.numpy(), y.numpy(), a.numpy(), s.numpy().astype(float)
    side = x.shape[-1]
    step = side  # one row's worth of pixels per step: `side` steps
    q = {"disable_warnings": True}
    noise = robustness.uniform_noise(x, 10, 0.1, seed=0)

    def explain_np(model, inputs, targets, **kwargs):
        return gradient(model)(torch.as_tensor(inputs), torch.as_tensor(targets).long()).numpy()

    def theirs(metric, **call):
        return lambda: metric(model=model, x_batch=xn, y_batch=yn, a_batch=an.copy(), device="cpu", **call)

    def masked(metric):
        return lambda: metric(model=None, x_batch=xn, y_batch=yn, a_batch=an.copy(), s_batch=sn)

    explain = gradient(model)
    return {
        "sparseness": (lambda: complexity.sparseness(a), masked(quantus.Sparseness(**q))),
        "complexity": (lambda: complexity.complexity(a), masked(quantus.Complexity(**q))),
        "effective_complexity": (lambda: complexity.effective_complexity(a), masked(quantus.EffectiveComplexity(**q))),
        "pointing_game": (lambda: localisation.pointing_game(a, s), masked(quantus.PointingGame(**q))),
        "attribution_localisation": (lambda: localisation.attribution_localisation(a, s),
                                     masked(quantus.AttributionLocalisation(**q))),
        "top_k_intersection": (lambda: localisation.top_k_intersection(a, s, k=100),
                               masked(quantus.TopKIntersection(k=100, **q))),
        "relevance_mass_accuracy": (lambda: localisation.relevance_mass_accuracy(a, s),
                                    masked(quantus.RelevanceMassAccuracy(**q))),
        "relevance_rank_accuracy": (lambda: localisation.relevance_rank_accuracy(a, s),
                                    masked(quantus.RelevanceRankAccuracy(**q))),
        "auc": (lambda: localisation.auc(a, s), masked(quantus.AUC(**q))),
        "pixel_flipping": (lambda: faithfulness.pixel_flipping(model, x, y, a, features_in_step=step),
                           theirs(quantus.PixelFlipping(features_in_step=step, perturb_baseline=0.0, **q))),
        "region_perturbation": (lambda: faithfulness.region_perturbation(model, x, y, a, patch_size=8, regions=32),
                                theirs(quantus.RegionPerturbation(patch_size=8, regions_evaluation=32,
                                                                  perturb_baseline=0.0, **q))),
        "selectivity": (lambda: faithfulness.selectivity(model, x, y, a, patch_size=8),
                        theirs(quantus.Selectivity(patch_size=8, perturb_baseline=0.0, **q))),
        "faithfulness_estimate": (lambda: faithfulness.faithfulness_estimate(model, x, y, a, features_in_step=step),
                                  theirs(quantus.FaithfulnessEstimate(features_in_step=step, perturb_baseline=0.0,
                                                                      **q))),
        "faithfulness_correlation": (lambda: faithfulness.faithfulness_correlation(model, x, y, a, runs=50,
                                                                                  subset_size=128),
                                     theirs(quantus.FaithfulnessCorrelation(nr_runs=50, subset_size=128,
                                                                            perturb_baseline=0.0, **q))),
        # Quantus 0.6 never reveals a pixel (it writes the baseline again): timed with the reveal corrected, the
        # same work, and as shipped, where every picture stays the baseline
        "monotonicity": (lambda: faithfulness.monotonicity(model, x, y, a, features_in_step=step),
                         theirs(revealing_monotonicity(quantus)(features_in_step=step, perturb_baseline=0.0, **q))),
        "monotonicity (Quantus as shipped)": (
            lambda: faithfulness.monotonicity(model, x, y, a, features_in_step=step),
            theirs(quantus.Monotonicity(features_in_step=step, perturb_baseline=0.0, **q))),
        "monotonicity_correlation": (lambda: faithfulness.monotonicity_correlation(model, x, y, a,
                                                                                  features_in_step=step),
                                     theirs(quantus.MonotonicityCorrelation(features_in_step=step, nr_samples=1,
                                                                            perturb_baseline=0.0, **q))),
        "avg_sensitivity": (lambda: robustness.avg_sensitivity(explain, x, y, a, noise=noise),
                            theirs(quantus.AvgSensitivity(nr_samples=10, lower_bound=0.1, normalise=False, **q),
                                   explain_func=explain_np)),
        "max_sensitivity": (lambda: robustness.max_sensitivity(explain, x, y, a, noise=noise),
                            theirs(quantus.MaxSensitivity(nr_samples=10, lower_bound=0.1, normalise=False, **q),
                                   explain_func=explain_np)),
        "relative_input_stability": (lambda: robustness.relative_input_stability(explain, x, y, a, noise=noise),
                                     theirs(quantus.RelativeInputStability(nr_samples=10, normalise=False,
                                                                           perturb_func_kwargs={"lower_bound": 0.1},
                                                                           **q),
                                            explain_func=explain_np)),
        "local_lipschitz_estimate": (lambda: robustness.local_lipschitz_estimate(explain, x, y, a, noise=noise),
                                     theirs(quantus.LocalLipschitzEstimate(nr_samples=10, normalise=False, **q),
                                            explain_func=explain_np)),
        "non_sensitivity": (lambda: axiomatic.non_sensitivity(model, x, y, a, features_in_step=1),
                            theirs(quantus.NonSensitivity(perturb_baseline=0.0, **q))),
        "random_logit": (lambda: randomisation.random_logit(explain, x, y, a, classes=5),
                         theirs(quantus.RandomLogit(num_classes=5, **q), explain_func=explain_np)),
        "relative_output_stability": (lambda: robustness.relative_output_stability(explain, x, y, a, noise=noise,
                                                                                  model=model),
                                      theirs(quantus.RelativeOutputStability(
                                          nr_samples=10, normalise=False, perturb_func_kwargs={"lower_bound": 0.1},
                                          **q), explain_func=explain_np, softmax=False)),
        "relative_representation_stability": (
            lambda: robustness.relative_representation_stability(explain, x, y, a, noise=noise,
                                                                 representation=model.features[:5]),
            theirs(quantus.RelativeRepresentationStability(nr_samples=10, normalise=False, layer_names=["features.4"],
                                                           perturb_func_kwargs={"lower_bound": 0.1}, **q),
                   explain_func=explain_np)),
        "continuity": (lambda: robustness.continuity(explain, x, y, a, steps=16, normalise=False),
                       theirs(quantus.Continuity(nr_steps=16, normalise=False, **q), explain_func=explain_np)),
        "road": (lambda: faithfulness.road(model, x, y, a, percentages=range(5, 100, 10)),
                 theirs(quantus.ROAD(percentages=list(range(5, 100, 10)), normalise=False, **q))),
        "completeness": (lambda: axiomatic.completeness(model, x, y, a),
                         theirs(quantus.Completeness(perturb_baseline=0.0, **q))),
    }


def timed(run: Callable[[], object], clock: Callable[[], float]) -> float:
    start = clock()
    run()
    return clock() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pictures", type=int, default=8)
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--metrics", nargs="+")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: this process's CPU time, steadier than the wall clock on a busy machine")
    args = parser.parse_args()
    import quantus

    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    model, x, y, a, s = reference_batch(count=args.pictures, side=args.side)
    a = a.abs()  # Quantus refuses maps whose values are all negative on some metrics; the same for both
    table = cases(quantus, model, x, y, a, s)
    names = args.metrics or list(table)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    print(f"{args.pictures} pictures of {args.side}×{args.side}, 1 channel; {args.threads} thread(s); best of "
          f"{args.repeat}, {args.clock} clock; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n"
          f"{'metric':34} {'convscope s':>12} {'Quantus s':>10} {'ratio':>7}")
    ratios = []
    for name in names:
        ours, theirs = table[name]
        ours(), theirs()  # warm-up
        times = {"ours": [], "theirs": []}
        for _ in range(args.repeat):  # interleaved, so a busy machine slows both alike
            times["ours"].append(timed(ours, clock))
            times["theirs"].append(timed(theirs, clock))
        mine, other = min(times["ours"]), min(times["theirs"])
        ratios.append(other / mine)
        print(f"{name:34} {mine:12.4f} {other:10.4f} {other / mine:7.1f}")
    print(f"geometric mean of the ratios: {float(np.exp(np.mean(np.log(ratios)))):.1f}; "
          f"smallest: {min(ratios):.1f}; load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
