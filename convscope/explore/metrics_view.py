"""Evaluation metrics of one map in the explorer: the ones ``convscope check --metrics`` computes
(:mod:`convscope.analysis.metrics`), for the picture shown, on the background lane after the maps.

A badge under every map (deletion — pixel flipping's area — and the random-logit check) and a table of the
metrics that need no object masks, for every method shown. Each metric follows its paper as in the report; on one
picture there is no interval, only the value.
"""

from __future__ import annotations

import inspect
import math
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from convscope.analysis.explainers import QUICK_OPTIONS
from convscope.analysis.metrics.registry import DEFAULT_METRICS, METRICS
from convscope.analysis.metrics.report import SIMILAR, evaluate_methods, metric_names
from convscope.attribution.registry import METHODS
from convscope.explore.image_view import PictureId, class_index, explorer_of, picture_of
from convscope.explore.jobs import SLOW, cache_key
from convscope.explore.method_settings import MAX_PASSES, parse_settings, passes
from convscope.explore.pictures import Loaded
from convscope.models.model import Model

router = APIRouter(prefix="/api", tags=["metrics"])

BADGE = ("pixel_flipping", "random_logit")  # under every map: deletion and the class-randomisation check
TABLE = tuple(name for name in DEFAULT_METRICS if not METRICS[name].needs_masks)  # check's, without masks
WITHOUT_MASKS = tuple(name for name, spec in METRICS.items() if not spec.needs_masks)
AFTER_THE_MAPS = SLOW + 1  # metrics wait for every map of the view
# how many times a metric explains the picture again (perturbed, another class, a randomised model)
EXPLAINS = {"random_logit": 1, "model_randomisation": 1, "avg_sensitivity": 4, "relative_input_stability": 4,
            "relative_output_stability": 4, "local_lipschitz_estimate": 4}
VERDICTS = {"random_logit": "changes with the class", "model_randomisation": "changes with the classifier's weights"}


def chosen_metrics(text: str | None) -> list[str]:
    """The metrics asked for (comma-separated; default: ``convscope check``'s that need no masks), checked."""
    names = metric_names([t.strip() for t in text.split(",") if t.strip()] if text else list(TABLE))
    masked = [n for n in names if METRICS[n].needs_masks]
    if masked:
        raise ValueError(f"{', '.join(masked)} need object masks, which a picture in the explorer does not have; "
                         "use `convscope check` on pictures with boxes (the other metrics: "
                         + ", ".join(WITHOUT_MASKS) + ")")
    return names


def check_cost(model: Model, method: str, options: dict[str, Any], names: list[str]) -> None:
    """A ``ValueError`` when the metrics would explain the picture so often that it takes more than four maps'
    budget of passes."""
    explains = 1 + sum(EXPLAINS.get(n, 0) for n in names)
    needed = passes(model, method, options) * explains
    if needed > 4 * MAX_PASSES:
        raise ValueError(f"these metrics explain the picture {explains} times with {method} ({needed:,} passes, more "
                         f"than the {4 * MAX_PASSES:,} the explorer allows); choose fewer metrics or lighter settings, "
                         "or run `convscope check`")


def shown_options(method: str, options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The settings of the map shown, for :func:`evaluate_methods` (which would otherwise take ``check``'s lighter
    ones): the constructor's defaults where the page set nothing."""
    parameters = inspect.signature(METHODS[method].__init__).parameters
    defaults = {k: parameters[k].default for k in QUICK_OPTIONS.get(method, {}) if k in parameters}
    return {method: {**defaults, **options}}


def evaluation(model: Model, picture: Loaded, method: str, target: int | None, options: dict[str, Any],
               names: list[str]) -> dict[str, Any]:
    began = time.perf_counter()
    inputs = model.prepare([picture.pixels])
    report = evaluate_methods(model, inputs, [method], names, target=target, options=shown_options(method, options))
    rows = []
    for name in report.metrics:
        value = float(report.values[method][name][0])
        spec = METRICS[name]
        row = {"name": name, "family": spec.family, "direction": "higher" if spec.higher_is_better else "lower",
               "what": spec.what, "value": None if math.isnan(value) else value}
        if name in VERDICTS and row["value"] is not None:
            row["passes"] = value <= SIMILAR
            row["verdict"] = (f"{VERDICTS[name]} (similarity {value:.2f} ≤ {SIMILAR})" if row["passes"] else
                              f"hardly {VERDICTS[name]} (similarity {value:.2f} > {SIMILAR}): it does not explain "
                              "this decision")
        rows.append(row)
    return {"method": method, "title": METHODS[method].title, "metrics": rows,
            "seconds": round(time.perf_counter() - began, 3)}


@router.get("/metrics", summary="Evaluation metrics of one method's map for a class of a picture (as convscope "
                                "check --metrics), with the method's settings as in /api/explain")
async def metrics_route(request: Request, pic: PictureId, method: Annotated[str, Query(max_length=40)],
                        target: Annotated[str, Query(max_length=200)] = "top",
                        metrics: Annotated[str | None, Query(max_length=500, description="comma-separated; "
                                                             "default: check's without masks")] = None,
                        layer: Annotated[str | None, Query(max_length=300)] = None,
                        baseline: Annotated[str | None, Query(max_length=20)] = None,
                        samples: Annotated[int | None, Query()] = None, noise: Annotated[float | None, Query()] = None,
                        steps: Annotated[int | None, Query()] = None, size: Annotated[int | None, Query()] = None,
                        stride: Annotated[int | None, Query()] = None,
                        group: Annotated[str | None, Query(max_length=100)] = None) -> dict[str, Any]:
    explorer = explorer_of(request)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; the methods are " + ", ".join(METHODS))
    names = chosen_metrics(metrics)
    loaded = await picture_of(request, pic)
    index = class_index(explorer.model, target)
    given = {"layer": layer, "baseline": baseline, "samples": samples, "noise": noise, "steps": steps,
             "size": size, "stride": stride}
    options = parse_settings(explorer.model, method, {k: None if v is None else str(v) for k, v in given.items()})
    check_cost(explorer.model, method, options, names)
    result, cached = await explorer.background.run(
        cache_key("metrics", explorer.fingerprint, loaded.digest, method, index, options, names),
        lambda: evaluation(explorer.background_model, loaded, method, index, options, names),
        priority=AFTER_THE_MAPS, description=f"metrics of {METHODS[method].title} on {loaded.name}", group=group,
        request=request)
    return {**result, "cached": cached}
