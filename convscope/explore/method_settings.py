"""The settings the image view offers per attribution method, their bounds, and the explorer's per-map budget.

Only the settings a method's constructor takes are offered for it (Grad-CAM: a layer; SmoothGrad: samples and
noise; integrated gradients: steps and a baseline; occlusion: the occluder's size and stride). Each value is
checked where it enters, and a map that would take more forward passes than :data:`MAX_PASSES` is refused with
the setting that would do.
"""

from __future__ import annotations

import inspect
from typing import Any

from convscope.attribution.explain import LAYER_METHODS
from convscope.attribution.occlusion import Occlusion
from convscope.attribution.registry import METHODS
from convscope.models.model import Model

MAX_PASSES = 1600  # forward (and backward) passes one map may take in the explorer (40 × 40 occluder positions)
BASELINES = ("black", "mean")  # or a grey level in [0, 1]

# name → what it is, its kind and bounds (the defaults come from the method's constructor)
SETTINGS: dict[str, dict[str, Any]] = {
    "layer": {"kind": "layer", "what": "the layer whose feature maps the method reads"},
    "baseline": {"kind": "baseline", "choices": list(BASELINES), "what": "the reference picture: black, the "
                 "data set's mean, or a grey level in [0, 1]"},
    "samples": {"kind": "int", "min": 1, "max": MAX_PASSES, "what": "noisy copies (or random orders) averaged"},
    "noise": {"kind": "float", "min": 0.0, "max": 1.0, "what": "the noise's standard deviation, as a fraction of "
              "the picture's range"},
    "steps": {"kind": "int", "min": 1, "max": MAX_PASSES, "what": "steps of the path from the baseline"},
    "size": {"kind": "int", "min": 2, "max": 512, "what": "the occluder's side, in pixels of the model's input"},
    "stride": {"kind": "int", "min": 1, "max": 512, "what": "pixels between two occluder positions"},
}


def settings_of(method: str) -> dict[str, dict[str, Any]]:
    """The settings ``method`` offers in the explorer, each with its default: ``{name: {kind, default, …}}``."""
    parameters = inspect.signature(METHODS[method].__init__).parameters
    offered = {}
    for name, spec in SETTINGS.items():
        if name not in parameters:
            continue
        default = parameters[name].default
        if name == "layer" and method not in LAYER_METHODS:
            continue  # a noise tunnel's layer belongs to the method inside it
        if name == "baseline" and not isinstance(default, str):
            continue  # a batch of reference pictures (the SHAP methods), not a setting of the page
        offered[name] = {**spec, "default": None if default is inspect.Parameter.empty else default}
    return offered


def parse_settings(model: Model, method: str, given: dict[str, str | None]) -> dict[str, Any]:
    """The constructor options from the page's text values (``None``: the method's default), each checked; a
    setting the method does not take, a value out of bounds or beyond :data:`MAX_PASSES` is a ``ValueError``."""
    offered = settings_of(method)
    options: dict[str, Any] = {}
    for name, text in given.items():
        if text is None or text == "":
            continue
        if name not in offered:
            takes = ", ".join(offered) or "none"
            others = [m for m in METHODS if name in settings_of(m)]
            raise ValueError(f"{method} has no setting {name!r} (a setting of {', '.join(others) or 'no method'}); its "
                             f"settings are {takes}")
        options[name] = parse_value(model, name, offered[name], text)
    check_budget(model, method, options)
    return options


def parse_value(model: Model, name: str, spec: dict[str, Any], text: str) -> Any:
    kind = spec["kind"]
    if kind == "layer":
        model.layer(text)  # an unknown layer is a ValueError with suggestions
        return text
    if kind == "baseline":
        if text in BASELINES:
            return text
        try:
            grey = float(text)
        except ValueError:
            grey = -1.0
        if not 0.0 <= grey <= 1.0:
            raise ValueError(f"baseline {text!r} is not black, mean or a grey level in [0, 1]")
        return grey
    try:
        value = int(text) if kind == "int" else float(text)
    except ValueError:
        raise ValueError(f"{name} must be {'a whole number' if kind == 'int' else 'a number'}, got {text!r}") from None
    if not spec["min"] <= value <= spec["max"]:
        raise ValueError(f"{name} must be between {spec['min']} and {spec['max']}, got {text}")
    return value


def passes(model: Model, method: str, options: dict[str, Any]) -> int:
    """About how many forward passes ``method`` takes for one map with ``options`` (its defaults otherwise)."""
    parameters = inspect.signature(METHODS[method].__init__).parameters

    def value(name: str) -> Any:
        return options.get(name, parameters[name].default)

    if method == "occlusion":
        rows, cols = Occlusion(model, size=value("size"), stride=value("stride")).positions(
            *model.preprocess.input_size)
        return len(rows) * len(cols)
    if method == "shapley_value_sampling":
        return value("samples") * (value("segments") + 1)
    count = 1
    for name in ("samples", "steps"):
        if name in parameters:
            count *= value(name)
    return count


def check_budget(model: Model, method: str, options: dict[str, Any]) -> None:
    """A ``ValueError`` saying which setting would do, when a map takes more than :data:`MAX_PASSES` passes."""
    needed = passes(model, method, options)
    if needed <= MAX_PASSES:
        return
    cli = f"(or `convscope explain --method {method}`, which has no such limit)"
    if method == "occlusion":
        defaults = inspect.signature(Occlusion.__init__).parameters
        size, stride = options.get("size", defaults["size"].default), options.get("stride", defaults["stride"].default)
        enough = next(s for s in range(stride + 1, max(model.preprocess.input_size) + 1)
                      if passes(model, method, {**options, "stride": s}) <= MAX_PASSES)
        raise ValueError(f"occlusion with size {size} and stride {stride} takes {needed:,} forward passes, more "
                         f"than the {MAX_PASSES:,} a map may take in the explorer; use a stride of at least {enough} "
                         + cli)
    settings = ", ".join(f"{k}={v}" for k, v in options.items() if k in ("samples", "steps"))
    raise ValueError(f"{method} with {settings or 'these settings'} takes {needed:,} passes, more than the "
                     f"{MAX_PASSES:,} a map may take in the explorer; use fewer samples or steps " + cli)
