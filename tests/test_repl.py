"""Results read well in a plain REPL: repr() names the shapes, the method, the target and the settings instead of
dumping tensors; and the README says which lines of its tour take long."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import re
import typing
from pathlib import Path

import pytest
import torch

import convscope
from convscope.attribution import Occlusion, explain
from convscope.inspection import activation_maps, filters
from convscope.reprs import short, short_repr

# dataclasses with tensors that stay inside convscope (never handed to a user as a result), and Composite, whose
# fields are module types, not modules
INTERNAL = {"Case", "MetricSpec", "LayerPass", "RowClasses", "Term", "Rectifier", "DemoContext", "Captured",
            "Gallery", "BatchRecord", "LayerRecorder", "ChannelStatistics", "TopActivations", "Evaluation", "Custom",
            "Region", "Element", "Loaded", "Composite"}


def public_dataclasses_with_tensors() -> list[type]:
    found = []
    for info in pkgutil.walk_packages(convscope.__path__, "convscope."):
        if info.name.endswith("__main__"):
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional extra (the explorer's server) is not installed
            continue
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__ or name.startswith("_") or not dataclasses.is_dataclass(cls):
                continue
            if any("Tensor" in str(field.type) or "Module" in str(field.type) for field in dataclasses.fields(cls)):
                found.append(cls)
    return found


def test_every_result_with_tensors_has_a_short_repr():
    dumping = [f"{cls.__module__}.{cls.__name__}" for cls in public_dataclasses_with_tensors()
               if cls.__name__ not in INTERNAL and hasattr(cls.__repr__, "__wrapped__")]  # dataclasses' own repr
    assert len(public_dataclasses_with_tensors()) > 30
    assert not dumping, f"these print whole tensors: give them `__repr__ = short_repr` (convscope.reprs): {dumping}"


def test_short_values():
    assert short(torch.zeros(2, 3, 224, 224)) == "Tensor[2×3×224×224] float32"
    assert short(torch.tensor(0.5)) == "tensor(0.5)" and short(torch.tensor(3)) == "tensor(3)"
    assert short(list(range(1000))) == "[0, 1, 2, … (1000 items)]" and short((7,)) == "(7,)"
    assert short({"a": torch.ones(3), "b": 1, "c": 2, "d": 3}) == "{'a': Tensor[3] float32, 'b': 1, 'c': 2, … (4 keys)}"
    assert short("x" * 100) == repr("x" * 60) + "…" and short(Path("a/b")) == "'a/b'" and short(0.123456) == "0.1235"
    assert short(torch.nn.Conv2d(3, 8, 3)) == "Conv2d(…)"


@pytest.mark.parametrize("make", ["filters", "activations", "explanation", "occlusion", "model"])
def test_results_print_shapes_and_settings_not_tensors(tiny_model, make):
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    result = {"filters": lambda: filters(tiny_model),
              "activations": lambda: activation_maps(tiny_model, x[0], tiny_model.layer_names()[1]),
              "explanation": lambda: explain(tiny_model, list(x), "grad_cam", [0, 1]),
              "occlusion": lambda: Occlusion(tiny_model, size=4, stride=4).maps(x, 1),
              "model": lambda: tiny_model}[make]()
    text = repr(result)
    assert len(text) < 600 and "\n" not in text and "tensor([" not in text, text
    assert text.startswith(type(result).__name__ + "(")
    if make != "model":
        assert re.search(r"Tensor\[\d+(×\d+)*\] float32", text), text
    if make == "explanation":
        assert "method=GradCAM(" in text and "labels=[" in text and "layer=" in text
    if make == "occlusion":
        assert "size=4, stride=4" in text


def test_a_class_keeps_short_repr_through_the_dataclass_decorator():
    @dataclasses.dataclass
    class Result:
        __repr__ = short_repr
        maps: torch.Tensor
        method: str = "saliency"

    assert repr(Result(torch.ones(1, 1, 4, 4))) == "Result(maps=Tensor[1×1×4×4] float32, method='saliency')"
    assert "__repr__" not in {f.name for f in dataclasses.fields(Result)}
    assert typing.get_type_hints(Result)["maps"] is torch.Tensor


def test_the_readme_says_which_tour_lines_are_slow():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    tour = readme[readme.index("## A short tour"):readme.index("## Speed")]
    slow = [line for line in tour.splitlines() if "cs.class_model(" in line or "convscope scan fashion-mnist" in line]
    assert slow and all(re.search(r"minutes?", line) for line in slow), slow
