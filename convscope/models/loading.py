"""One call to get a model: the embedded default, torchvision/timm by name, a weights file, or your module."""

from __future__ import annotations

import re
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from convscope.devices import pick_device
from convscope.logs import get_logger
from convscope.models.fashion import FASHION_MODEL, fashion_model
from convscope.models.fashion_linear import LINEAR_MODEL, fashion_linear_model
from convscope.models.files import is_model_file, load_network
from convscope.models.labels import imagenet_class_names, imagenet_descriptions
from convscope.models.lite import LITE_MODELS, build_lite
from convscope.models.model import Model
from convscope.models.preprocessing import Preprocess
from convscope.suggestions import unknown
from convscope.validation import regular_file

log = get_logger(__name__)
DEFAULT_MODEL = "efficientnet_lite0"
"""The embedded model that every command and function uses when none is named: EfficientNet-Lite0 (ImageNet)."""
ALIASES = {f"tf_{name}": name for name in LITE_MODELS}


def load_model(name: str | nn.Module = DEFAULT_MODEL, *, weights: str | Path | None = None,
               device: str | torch.device | None = None, classes: str | Path | list[str] | None = None,
               output: str | None = None) -> Model:
    """Load a model with its preprocessing and class names, on ``device`` (CUDA when available).

    ``name`` is ``efficientnet_lite0`` (the embedded default, offline), ``_lite1``,
    ``_lite2``, ``fashion_cnn`` and ``fashion_linear`` (Fashion-MNIST, shipped), any
    torchvision or timm model name (trained weights download when online), a file
    (``net.py:make`` — a factory returning an ``nn.Module`` —, a TorchScript file or a
    ``torch.export`` ``.pt2`` file: :mod:`convscope.models.files`), or your own
    ``nn.Module``. ``weights`` is a local state-dict file that replaces any download, or
    ``'random'`` for a torchvision/timm architecture with random weights (structure, not
    meaning). ``classes`` is a list of class names or a text file with one per line;
    ``output`` the output kind (:class:`Model`).
    """
    start = time.perf_counter()
    random = weights is not None and str(weights) == "random"
    if random and (not isinstance(name, str) or not (_is_torchvision(name) or _is_timm(name))):
        raise ValueError("weights='random' applies to torchvision and timm names only")
    if isinstance(name, nn.Module):
        model = Model(name, name=type(name).__name__)
        if weights is not None:
            _load_into(name, weights, type(name).__name__)
        broken = non_finite(name.state_dict())
        if broken:
            raise ValueError(f"the module's {', '.join(broken[:3])}{' …' if len(broken) > 3 else ''} hold NaN or "
                             "infinite values: its outputs would be NaN")
    elif not isinstance(name, str):
        raise TypeError(f"a model is a name or an nn.Module, got {type(name).__name__}")
    elif is_model_file(name):
        model = _file_model(name, weights)
    else:
        key = ALIASES.get(name, name)
        if random:
            model = _random_model(key)
        elif key in LITE_MODELS:
            model = _lite_model(key, weights)
        elif key == FASHION_MODEL:
            model = fashion_model(None if weights is None else read_state_dict(weights))
        elif key == LINEAR_MODEL:
            model = fashion_linear_model(None if weights is None else read_state_dict(weights))
        elif _is_torchvision(key):
            model = _torchvision_model(key, weights)
        elif _is_timm(key):
            model = _timm_model(key, weights)
        else:
            raise unknown("model", name, _known_names(), hint="give a torchvision or timm name, e.g. resnet18, "
                          "or a file: net.py:make, a TorchScript file or a torch.export .pt2 file")
    if classes is not None:
        model.class_names = read_class_names(classes, model)
    if output is not None:
        model = replace(model, output=output)
    model.net.eval()
    model = model.to(pick_device(device))
    log.debug("model %s on %s (%s): %d parameters, %s classes, input %s, loaded in %.2f s", model.name, model.device,
              str(model.dtype).removeprefix("torch."), sum(p.numel() for p in model.net.parameters()),
              len(model.class_names) if model.class_names else "unnamed",
              "x".join(map(str, model.preprocess.input_size)), time.perf_counter() - start)
    return model


def read_class_names(classes: str | Path | list[str], model: Model) -> list[str]:
    """Class names from a list or a text file (one per line, blank lines skipped), checked against the model."""
    if isinstance(classes, str | Path):
        path = regular_file(classes, "class names file", "give a text file with one class name per line")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(f"class names file {str(path)!r} is not UTF-8 text (byte {error.start} cannot be read): "
                             "give a text file with one class name per line") from error
        names = [line.strip() for line in text.splitlines() if line.strip()]
    else:
        names = [str(n) for n in classes]
    if not names:
        raise ValueError("the class names list is empty")
    try:
        count = len(replace(model, class_names=None).classes())
    except ValueError:
        return names
    if len(names) != count:
        raise ValueError(f"{len(names)} class names were given for a model with {count} classes")
    return names


def _file_model(name: str, weights: str | Path | None) -> Model:
    found = load_network(name)
    model = found if isinstance(found, Model) else Model(found, name=Path(name.rpartition(":")[0] or name).stem)
    if weights is not None:
        _load_into(model.net, weights, name)
    return model


def _random_model(name: str) -> Model:
    """A torchvision or timm architecture with random weights, ImageNet preprocessing and numbered classes."""
    if _is_torchvision(name):
        import torchvision

        return Model(torchvision.models.get_model(name, weights=None), name=f"{name} (random weights)")
    import timm

    net = timm.create_model(name, pretrained=False)
    return Model(net, preprocess=_timm_preprocess(net), name=f"{name} (random weights)")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a ``.pth``/``.pt`` file (also ``{'state_dict': …}`` / ``{'model': …}`` wrappers).

    Refused with a one-line ``ValueError``: a missing path, a folder, an empty file, a file that is
    not a PyTorch save, pickled objects other than tensors, and NaN or infinite weights.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"weights file {str(path)!r} is a directory: give the state-dict file inside it")
    if not path.exists():
        raise ValueError(f"weights file {str(path)!r} does not exist")
    if not path.is_file():
        raise ValueError(f"weights file {str(path)!r} is not a regular file (a pipe, device or socket)")
    if path.stat().st_size == 0:
        raise ValueError(f"weights file {str(path)!r} is empty (0 bytes): was the save interrupted?")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds: UnpicklingError, RuntimeError, IndexError, EOFError …
        if "Unsupported global" in str(error):  # classes or functions were pickled, not only tensors
            raise ValueError(f"weights file {str(path)!r} holds pickled Python objects, not only tensors (a whole "
                             "model saved with torch.save(model)?); convscope loads state dicts only: save "
                             "model.state_dict() instead") from error
        if not zipfile.is_zipfile(path):
            raise ValueError(f"cannot read weights file {str(path)!r}: it is not a PyTorch file (one made by "
                             "torch.save(model.state_dict(), path))") from error
        raise ValueError(f"cannot read weights file {str(path)!r} as a PyTorch state dict (is it complete?): "
                         f"{_first_lines(error, 1)}") from error
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"weights file {str(path)!r} does not hold a state dict of tensors")
    broken = non_finite(state)
    if broken:
        raise ValueError(f"weights file {str(path)!r} holds NaN or infinite values in {len(broken)} tensor(s) "
                         f"({', '.join(broken[:3])}{' …' if len(broken) > 3 else ''}): these weights are broken")
    return {k.removeprefix("module."): v for k, v in state.items()}


def non_finite(state: dict[str, torch.Tensor]) -> list[str]:
    """The names of the floating-point tensors in ``state`` that hold NaN or infinity."""
    return [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def _first_lines(error: BaseException, count: int = 3) -> str:
    """The first lines of an error message, joined, without terminal escapes."""
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", str(error))
    return " ".join(line.strip() for line in text.splitlines()[:count] if line.strip()) or type(error).__name__


def _load_into(net: nn.Module, weights: str | Path, name: str) -> None:
    try:
        net.load_state_dict(read_state_dict(weights))
    except RuntimeError as error:
        raise ValueError(f"weights file {str(weights)!r} does not fit {name}: {_first_lines(error)}") from error


def _lite_model(name: str, weights: str | Path | None) -> Model:
    try:
        net = build_lite(name, None if weights is None else read_state_dict(weights))
    except RuntimeError as error:
        raise ValueError(f"weights file {str(weights)!r} does not fit {name}: {_first_lines(error)}") from error
    return Model(net, preprocess=_timm_preprocess(net), class_names=imagenet_class_names(),
                 name=name, synonyms=list(imagenet_descriptions()))


def _is_torchvision(name: str) -> bool:
    import torchvision

    return name in torchvision.models.list_models(module=torchvision.models)


def _torchvision_model(name: str, weights: str | Path | None) -> Model:
    import torchvision

    enum = torchvision.models.get_model_weights(name).DEFAULT
    if weights is not None:
        net = torchvision.models.get_model(name, weights=None)
        _load_into(net, weights, name)
    else:
        net = _download(lambda: torchvision.models.get_model(name, weights=enum), name)
    transform = enum.transforms()
    preprocess = Preprocess(resize=int(transform.resize_size[0]), crop=int(transform.crop_size[0]),
                            mean=tuple(transform.mean), std=tuple(transform.std),
                            interpolation=transform.interpolation.value)
    return Model(net, preprocess=preprocess, class_names=list(enum.meta["categories"]), name=name,
                 synonyms=list(imagenet_descriptions()) if len(enum.meta["categories"]) == 1000 else None)


def _is_timm(name: str) -> bool:
    import timm

    return bool(timm.is_model(name))


def _timm_model(name: str, weights: str | Path | None) -> Model:
    import timm

    if weights is not None:
        net = timm.create_model(name, pretrained=False)
        _load_into(net, weights, name)
    else:
        net = _download(lambda: timm.create_model(name, pretrained=True), name)
    classes = imagenet_class_names() if net.num_classes == 1000 else None
    return Model(net, preprocess=_timm_preprocess(net), class_names=classes, name=name,
                 synonyms=list(imagenet_descriptions()) if classes else None)


def _timm_preprocess(net: nn.Module) -> Preprocess:
    cfg = net.pretrained_cfg
    assert isinstance(cfg, dict), "timm sets pretrained_cfg, a dict, on every model it builds"
    side = int(cfg["input_size"][-1])
    interpolation = cfg.get("interpolation", "bilinear")
    return Preprocess(resize=int(side / cfg.get("crop_pct", 0.875)), crop=side, mean=tuple(cfg["mean"]),
                      std=tuple(cfg["std"]), interpolation="bicubic" if interpolation == "bicubic" else "bilinear")


def _download(make, name: str) -> nn.Module:
    try:
        return make()
    except Exception as error:
        raise ValueError(f"could not fetch the trained weights of {name} ({type(error).__name__}: {error}); "
                         f"offline, pass a local state dict with --weights PATH (weights=PATH), "
                         f"or use the embedded {DEFAULT_MODEL}") from error


def _known_names() -> list[str]:
    import timm
    import torchvision

    return (list(LITE_MODELS) + [FASHION_MODEL, LINEAR_MODEL]
            + torchvision.models.list_models(module=torchvision.models)
            + timm.list_models())
