"""Capturing activations and gradients at named layers, leaving the model as it was found.

Every hook is registered inside the call and removed in ``finally``; the training
flags, ``requires_grad``, existing ``.grad`` tensors and in-place flags of the model
are restored on exit, also when the model or the target raises.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from torch import Tensor, nn

from convscope.models.layers import get_layer, layer_name


@contextmanager
def preserved(net: nn.Module) -> Iterator[nn.Module]:
    """Restore training flags, ``requires_grad``, ``.grad`` and ``inplace`` flags on exit."""
    modules = list(net.modules())
    training = [m.training for m in modules]
    inplace = [(m, m.inplace) for m in modules if isinstance(getattr(m, "inplace", None), bool)]
    params = list(dict.fromkeys(p for m in modules for p in m._parameters.values() if p is not None))
    requires = [p.requires_grad for p in params]
    grads = [p.grad for p in params]
    try:
        yield net
    finally:
        # only what changed is written back: setting attributes on hundreds of modules is not free
        for module, flag in zip(modules, training, strict=True):
            if module.training != flag:
                module.training = flag
        for module, flag in inplace:
            if module.inplace != flag:
                module.inplace = flag
        for param, flag, grad in zip(params, requires, grads, strict=True):
            if param.requires_grad != flag:
                param.requires_grad_(flag)
            if param.grad is not grad:
                param.grad = grad


@contextmanager
def inspection_mode(net: nn.Module, *, grad_params: bool = False) -> Iterator[nn.Module]:
    """Evaluation mode with out-of-place activations for the duration, then everything restored.

    ``grad_params`` makes every parameter require grad (for weight gradients);
    otherwise parameters are frozen so that no work is spent on them.
    """
    with preserved(net):
        modules = list(net.modules())
        if any(module.training for module in modules):
            net.eval()
        for module in modules:
            if getattr(module, "inplace", None) is True:
                module.inplace = False
            for param in module._parameters.values():
                if param is not None and param.requires_grad != grad_params:
                    param.requires_grad_(grad_params)
        yield net


@dataclass
class Captured:
    """What :func:`capture` recorded: outputs and output-gradients by layer name (last call wins)."""

    activations: dict[str, Tensor] = field(default_factory=dict)
    grads: dict[str, Tensor] = field(default_factory=dict)

    def activation(self, layer: str) -> Tensor:
        if layer not in self.activations:
            raise ValueError(f"layer {layer!r} produced no tensor output in this forward pass "
                             "(is it used by the model's forward?)")
        return self.activations[layer]

    def grad(self, layer: str) -> Tensor:
        if layer not in self.grads:
            raise ValueError(f"no gradient reached layer {layer!r}: call backward on a target that depends on it")
        return self.grads[layer]


@contextmanager
def capture(net: nn.Module, layers: Sequence[str | nn.Module], *, grads: bool = False,
            detach: bool = False) -> Iterator[Captured]:
    """Record the outputs (and, with ``grads``, their gradients) of ``layers`` during forward passes.

    Each captured output is handed on as a copy, so in-place operations later in the
    model cannot alter what was recorded. With ``detach`` the records leave the graph.
    """
    store = Captured()
    resolved = [(layer_name(net, layer), get_layer(net, layer)) for layer in layers]
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

    try:
        for name, module in resolved:
            handles.append(module.register_forward_hook(recorder(name)))
        yield store
    finally:
        for handle in handles:
            handle.remove()
