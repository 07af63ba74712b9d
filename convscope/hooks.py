"""Capturing activations and gradients at named layers, leaving the model as it was found.

Every hook is registered inside the call and removed in ``finally``; the training
flags, ``requires_grad``, existing ``.grad`` tensors and in-place flags of the model
are restored on exit, also when the model or the target raises.

What a model is made of (its modules, parameters, in-place switches) is walked once
per model and kept in a :class:`ModelWalk`; the walk is renewed when a sub-module or
parameter is registered on any module of that model (PyTorch's global registration
hooks say so), so a call costs no walk over hundreds of modules.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import is_not
from typing import TypeVar

import torch
from torch import Tensor, nn
from torch.nn.modules import module as torch_module

from convscope.logs import get_logger
from convscope.models.layers import get_layer, layer_name

T = TypeVar("T")
log = get_logger(__name__)


class ModelWalk:
    """One walk over a model: its sub-modules (shared ones once), parameters and in-place switches.

    The model itself is not kept (the walk lives in a weak-key cache keyed on it);
    :meth:`modules` puts it in front. :meth:`memo` keeps ``function(net)`` (e.g. the
    activations without a backward rule) until the model's structure changes.
    """

    def __init__(self, net: nn.Module) -> None:
        named = [(name, module) for name, module in net.named_modules() if module is not net]
        self.descendants: tuple[nn.Module, ...] = tuple(module for _, module in named)
        self.names: dict[nn.Module, str] = {module: name for name, module in named}
        self.switchable: tuple[nn.Module, ...] = tuple(
            m for m in (net, *self.descendants) if isinstance(getattr(m, "inplace", None), bool))
        self.parameters: tuple[nn.Parameter, ...] = tuple(dict.fromkeys(
            p for m in (net, *self.descendants) for p in m._parameters.values() if p is not None))
        self.generation = _changes.count
        self._memo: dict[Callable, object] = {}

    def modules(self, net: nn.Module) -> tuple[nn.Module, ...]:
        """``net`` and every sub-module, as ``net.modules()`` lists them."""
        return (net, *self.descendants)

    def memo(self, function: Callable[[nn.Module], T], net: nn.Module) -> T:
        """``function(net)``, computed once per structure of the model."""
        if function not in self._memo:
            self._memo[function] = function(net)
        return self._memo[function]  # type: ignore[return-value]


class _Changes:
    """Counts registrations of sub-modules and parameters on modules of walked models."""

    def __init__(self) -> None:
        self.count = 0
        self.watched: weakref.WeakSet[nn.Module] = weakref.WeakSet()
        self.installed = False

    def __call__(self, module: nn.Module, name: str, value: object) -> None:
        if module in self.watched:
            self.count += 1


_changes = _Changes()
_walks: weakref.WeakKeyDictionary[nn.Module, ModelWalk] = weakref.WeakKeyDictionary()


def model_walk(net: nn.Module) -> ModelWalk:
    """The walk over ``net``, made once and renewed after a sub-module or parameter was registered in it."""
    found = _walks.get(net)
    if found is not None and found.generation == _changes.count:
        return found
    if not _changes.installed:
        torch_module.register_module_module_registration_hook(_changes)
        torch_module.register_module_parameter_registration_hook(_changes)
        _changes.installed = True
    renewed = found is not None
    found = _walks[net] = ModelWalk(net)
    _changes.watched.update(found.modules(net))
    log.debug("model walk of %s%s: %d sub-modules, %d parameter tensors, %d in-place switches",
              type(net).__name__, " renewed (its structure changed)" if renewed else "", len(found.descendants),
              len(found.parameters), len(found.switchable))
    return found


def forget_walk(net: nn.Module, unless: ModelWalk | None = None) -> None:
    """Drop the walk kept for ``net`` (e.g. one made while its modules were swapped for a while), unless it is
    ``unless``."""
    if _walks.get(net) is not unless:
        _walks.pop(net, None)


def resolve_layer(net: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module]:
    """``(dotted name, module)`` of a layer given by name or module, looked up without walking the model."""
    if isinstance(layer, str) and layer:
        module: nn.Module | None = net
        for part in layer.split("."):
            module = module._modules.get(part) if module is not None else None
        if module is not None:
            return layer, module
    elif isinstance(layer, nn.Module):
        name = model_walk(net).names.get(layer)
        if name and resolve_layer(net, name)[1] is layer:
            return name, layer
    return layer_name(net, layer), get_layer(net, layer)  # the slow path: renewed lookup, or its error


@contextmanager
def preserved(net: nn.Module) -> Iterator[nn.Module]:
    """Restore training flags, ``requires_grad``, ``.grad`` and ``inplace`` flags on exit."""
    walk = model_walk(net)
    modules, params = walk.modules(net), walk.parameters
    training = [m.training for m in modules]
    inplace = [m.inplace for m in walk.switchable]
    requires = [p.requires_grad for p in params]
    grads = [p.grad for p in params]
    try:
        yield net
    finally:
        # compared as whole lists first, then only what changed is written back: a call that changed
        # nothing costs four list reads, not hundreds of attribute writes
        if [m.training for m in modules] != training:
            for module, flag in zip(modules, training, strict=True):
                if module.training != flag:
                    module.training = flag
        for module, switch in zip(walk.switchable, inplace, strict=True):
            if module.inplace != switch:
                module.inplace = switch
        if [p.requires_grad for p in params] != requires:
            for param, flag in zip(params, requires, strict=True):
                if param.requires_grad != flag:
                    param.requires_grad_(flag)
        if any(map(is_not, [p.grad for p in params], grads)):
            for param, grad in zip(params, grads, strict=True):
                if param.grad is not grad:
                    param.grad = grad


@contextmanager
def inspection_mode(net: nn.Module, *, grad_params: bool | None = False) -> Iterator[nn.Module]:
    """Evaluation mode with out-of-place activations for the duration, then everything restored.

    ``grad_params`` makes every parameter require grad (for weight gradients);
    ``False`` freezes them so that no work is spent on them; ``None`` leaves them as
    they are (for ``torch.autograd.grad`` towards inputs or layers, which computes no
    weight gradient either way, so a call need not switch hundreds of flags).
    """
    with preserved(net):
        walk = model_walk(net)
        if any(module.training for module in walk.modules(net)):
            net.eval()
        for module in walk.switchable:
            if module.inplace is True:
                module.inplace = False
        if grad_params is not None:
            for param in walk.parameters:
                if param.requires_grad != grad_params:
                    param.requires_grad_(grad_params)
        yield net


class LayerOutputs(dict[str, Tensor]):
    """Layer outputs by name, with the ``input_size`` (height, width) of the pictures that made them, when known."""

    input_size: tuple[int, int] | None = None


@dataclass
class Captured:
    """What :func:`capture` recorded: outputs and output-gradients by layer name (last call wins)."""

    activations: LayerOutputs = field(default_factory=LayerOutputs)
    grads: dict[str, Tensor] = field(default_factory=dict)

    def activation(self, layer: str) -> Tensor:
        """The output recorded at ``layer``; a ValueError that says why when the layer produced none."""
        if layer not in self.activations:
            raise ValueError(f"layer {layer!r} produced no tensor output in this forward pass "
                             "(is it used by the model's forward?)")
        return self.activations[layer]

    def grad(self, layer: str) -> Tensor:
        """The gradient at ``layer``'s output; a ValueError when no gradient reached it."""
        if layer not in self.grads:
            raise ValueError(f"no gradient reached layer {layer!r}: call backward on a target that depends on it")
        return self.grads[layer]


def refuse_script_module(net: nn.Module) -> None:
    """A ``ValueError`` for TorchScript modules: their layers cannot be hooked."""
    if isinstance(net, torch.jit.ScriptModule):
        raise ValueError("this is a TorchScript model, whose layers cannot be hooked, so layer methods (CAM family, "
                         "activations, scans, channel targets) cannot read them; use an input-gradient method "
                         "(saliency, SmoothGrad, integrated gradients, occlusion) or save the model with "
                         "torch.export (.pt2) instead")


@contextmanager
def capture(net: nn.Module, layers: Sequence[str | nn.Module], *, grads: bool = False,
            detach: bool = False) -> Iterator[Captured]:
    """Record the outputs (and, with ``grads``, their gradients) of ``layers`` during forward passes.

    Each captured output is handed on as a copy, so in-place operations later in the
    model cannot alter what was recorded. With ``detach`` the records leave the graph.
    """
    store = Captured()
    if layers:
        refuse_script_module(net)
    resolved = [resolve_layer(net, layer) for layer in layers]
    handles = []

    def recorder(name: str):
        def hook(module: nn.Module, inputs: object, output: object) -> object:
            tensor = output[0] if isinstance(output, tuple) and output and isinstance(output[0], Tensor) else output
            if not isinstance(tensor, Tensor):
                return None
            store.activations[name] = tensor.detach() if detach else tensor
            if grads and tensor.requires_grad:
                tensor.register_hook(lambda g: store.grads.__setitem__(name, g))
            copy = tensor.clone()
            return (copy, *output[1:]) if isinstance(output, tuple) else copy

        return hook

    def picture_size(module: nn.Module, inputs: tuple[object, ...]) -> None:
        if inputs and isinstance(inputs[0], Tensor) and inputs[0].dim() == 4:
            store.activations.input_size = (int(inputs[0].shape[-2]), int(inputs[0].shape[-1]))

    try:
        if resolved:
            handles.append(net.register_forward_pre_hook(picture_size))
        for name, module in resolved:
            handles.append(module.register_forward_hook(recorder(name)))
        yield store
    finally:
        for handle in handles:
            handle.remove()


def copy_without_hooks(value: T, net: nn.Module) -> T:
    """``copy.deepcopy(value)`` (a module, or a model holding ``net``) whose modules have empty hook tables.

    Hooks that are on ``net`` while it is copied (another thread's capture, Lucent's, a user's) would be
    copied with closures that name the *original* modules; the copy is for convscope's own passes.
    """
    import copy

    memo: dict[int, object] = {}
    for module in net.modules():
        for name, table in vars(module).items():
            if "hooks" in name and isinstance(table, dict):
                memo[id(table)] = type(table)()
    return copy.deepcopy(value, memo)
