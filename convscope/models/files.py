"""Networks from files: a Python factory (``file.py:function``), a TorchScript file, a ``torch.export`` file.

- ``path/to/net.py:make`` imports ``net.py`` and calls ``make()``, which returns an ``nn.Module``
  (or a :class:`convscope.Model`, kept with its preprocessing and names);
- a ``.pt2`` file is read by ``torch.export.load`` and unflattened, so that its layers are modules
  again (hooks, and with them the layer methods, work on them);
- any other file is tried as TorchScript (``torch.jit.load``). Its layers cannot be hooked: the
  layer methods (CAM family, activations, scans) refuse it, the input-gradient methods work.

A state-dict file is not a network: give an architecture name with ``--weights FILE``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from convscope.validation import regular_file

if TYPE_CHECKING:
    from convscope.models.model import Model

USER_MODULE = "convscope_user_model_"  # the module name a model file is imported under (errors name its code)
MODEL_FILE_HINT = "give a TorchScript file, a torch.export .pt2 file or net.py:FUNCTION"


def is_model_file(name: str) -> bool:
    """Whether ``name`` points to a file rather than a model name."""
    path, _, function = name.rpartition(":")
    return (name.endswith((".pt", ".pt2", ".ts", ".jit", ".pth")) or (path.endswith(".py") and bool(function))
            or name.endswith(".py") or Path(name).is_file() or ("/" in name and os.path.lexists(name)))


def load_network(name: str) -> nn.Module | Model:
    """The network a file holds (an ``nn.Module``, or a ``Model`` made by a factory)."""
    path, _, function = name.rpartition(":")
    if path.endswith(".py") or name.endswith(".py"):
        if not function or name.endswith(".py"):
            raise ValueError(f"name the factory in {name!r}: write FILE.py:FUNCTION (a function that returns the "
                             "nn.Module)")
        return _from_factory(Path(path), function)
    file = regular_file(name, "model file", MODEL_FILE_HINT)
    if file.suffix == ".pt2":
        return _from_export(file)
    return _from_torchscript(file)


def _from_factory(path: Path, function: str) -> nn.Module | Model:
    regular_file(path, "model file", MODEL_FILE_HINT)
    spec = importlib.util.spec_from_file_location(f"{USER_MODULE}{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot import {str(path)!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look their module up
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        raise ValueError(f"importing {str(path)!r} failed: {type(error).__name__}: {error}") from error
    factory = getattr(module, function, None)
    if not callable(factory):
        found = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                 and getattr(v, "__module__", None) == spec.name]
        raise ValueError(f"{str(path)!r} has no function {function!r}; it defines: {', '.join(found) or 'none'}")
    try:
        net = factory()
    except Exception as error:
        raise ValueError(f"{path.name}:{function}() raised {type(error).__name__}: {error}") from error
    from convscope.models.model import Model

    if not isinstance(net, nn.Module | Model):
        raise TypeError(f"{path.name}:{function}() returned a {type(net).__name__}; it must return a "
                        "torch.nn.Module (or a convscope.Model)")
    return net


def _from_export(path: Path) -> nn.Module:
    try:
        program = torch.export.load(str(path))
    except Exception as error:
        raise ValueError(f"cannot read {str(path)!r} as a torch.export file: {type(error).__name__}: {error}") \
            from error
    return torch.export.unflatten(program)


def _from_torchscript(path: Path) -> nn.Module:
    try:
        with warnings.catch_warnings():  # its deprecation notice is for the writer of the file, not its user
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location="cpu")
    except Exception as error:
        hint = (" It may be a state dict: give the architecture's name with --weights FILE (weights=FILE)"
                if path.suffix in (".pt", ".pth") else "")
        raise ValueError(f"cannot read {str(path)!r} as a TorchScript model ({type(error).__name__}).{hint}") \
            from error
