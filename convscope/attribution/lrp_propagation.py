"""Relevance flowing backwards in place of the gradient: rule hooks on the layers of a canonised copy.

Each layer with a rule keeps its forward output but gets a backward that returns the
relevance at its input (:func:`rule_output`); rectifiers pass relevance through
unchanged; a residual sum of two activations splits it in proportion to its two inputs
(:class:`ResidualSums`, what Zennit's ResNet canonizers do with their ``Sum`` module), and
a product of two activations (a gate, attention) is refused. One backward pass of
``torch.autograd.grad`` then yields the relevance at the input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from convscope.attribution.lrp_composites import GRADIENT, PASS
from convscope.attribution.lrp_rules import Modifier, Rule, stabilise


class _Relevance(torch.autograd.Function):
    """Forward: the layer's own output. Backward: ``redistribute(R)``, the relevance at the layer's input."""

    @staticmethod
    def forward(ctx, inputs: Tensor, output: Tensor, holder: list[Callable[[Tensor], Tensor]]) -> Tensor:  # noqa: ANN001
        ctx.holder = holder  # emptied by rule_hooks on exit: the closure holds the layer, the graph holds ctx
        return output.clone()

    @staticmethod
    def backward(ctx, relevance: Tensor) -> tuple[Tensor, None, None]:  # noqa: ANN001
        return ctx.holder[0](relevance), None, None


def run_with(module: nn.Module, modify: Modifier, inputs: Tensor) -> Tensor:
    """``module``'s forward (no hooks) on ``inputs`` with each parameter replaced by ``modify(param, name)``."""
    saved = dict(module._parameters)
    try:
        for name, param in saved.items():
            if param is not None:
                module._parameters[name] = modify(param.detach(), name)  # type: ignore[assignment]
        return module.forward(inputs)
    finally:
        module._parameters.update(saved)


def rule_output(module: nn.Module, rule: Rule, inputs: Tensor, output: Tensor,
                holders: list[list[Callable[[Tensor], Tensor]]]) -> Tensor:
    """``output`` unchanged, with a backward that applies ``rule``.

    The backward's closure is kept in a one-element list added to ``holders``; clearing those
    lists after the backward pass frees the layer and its input even where autograd's graph and
    the closure hold each other (a cycle Python's collector cannot see through).

    The modified passes run in the backward, one layer at a time (as Zennit's hooks do):
    only the layer's input is kept, so memory stays that of a plain backward pass.
    """
    plain = inputs.detach()

    def redistribute(relevance: Tensor) -> Tensor:
        leaves, outputs = [], []
        with torch.enable_grad():
            for term in rule.terms:
                leaf = term.inputs(plain).detach().requires_grad_(True)
                leaves.append(leaf)
                outputs.append(run_with(module, term.params, leaf))
            denominators = {}
            for group in dict.fromkeys(term.group for term in rule.terms):
                members = [(term, z.detach()) for term, z in zip(rule.terms, outputs, strict=True)
                           if term.group == group]
                total: Tensor | int = sum(z for term, z in members if term.sign > 0)
                negative = [z for term, z in members if term.sign < 0]
                if negative:
                    total = total - sum(negative)
                assert isinstance(total, Tensor), "a group has one term at least"
                denominators[group] = stabilise(total, rule.epsilon)
            shares = [relevance / denominators[term.group] for term in rule.terms]
            grads = torch.autograd.grad(outputs, leaves, shares)
        found = None
        for term, leaf, grad in zip(rule.terms, leaves, grads, strict=True):
            part = leaf.detach() * grad if term.times_input else grad
            part = part * term.weight if term.weight != 1 else part
            found = part if found is None else found + part
        assert found is not None, "a rule has one term at least"
        return found

    holder: list[Callable[[Tensor], Tensor]] = [redistribute]
    holders.append(holder)
    return _Relevance.apply(inputs, output.detach(), holder)


def passed_through(inputs: Tensor, output: Tensor) -> Tensor:
    """``output``'s value with ``inputs``' backward identity: relevance passes through a rectifier unchanged."""
    return output.detach() + (inputs - inputs.detach())


@contextmanager
def rule_hooks(net: nn.Module, rules: dict[str, Rule | str]) -> Iterator[None]:
    """Forward hooks on ``net``'s modules that make the backward pass carry relevance; removed on exit."""
    def hook_for(rule: Rule | str):  # noqa: ANN202
        def hook(module: nn.Module, args: tuple, output: object) -> Tensor | None:
            if not args or not isinstance(args[0], Tensor) or not isinstance(output, Tensor):
                return None
            if rule == PASS:
                return passed_through(args[0], output)
            return rule_output(module, rule, args[0], output, holders)  # type: ignore[arg-type]
        return hook

    handles = []
    holders: list[list[Callable[[Tensor], Tensor]]] = []
    try:
        for name, module in net.named_modules():
            rule = rules.get(name, GRADIENT)
            if rule != GRADIENT:
                handles.append(module.register_forward_hook(hook_for(rule)))
        yield
    finally:
        for handle in handles:
            handle.remove()
        for holder in holders:
            holder.clear()


class _ProportionalSum(torch.autograd.Function):
    """``a + b``; backward: ``R`` split as ``a·R/(a+b)`` and ``b·R/(a+b)`` (stabilised as Zennit's Norm rule)."""

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, epsilon: float) -> Tensor:  # noqa: ANN001
        total = a + b
        ctx.save_for_backward(a, b, total)
        ctx.epsilon = epsilon
        return total

    @staticmethod
    def backward(ctx, relevance: Tensor) -> tuple[Tensor, Tensor, None]:  # noqa: ANN001
        a, b, total = ctx.saved_tensors
        share = relevance / stabilise(total, ctx.epsilon)
        return a * share, b * share, None


_ADDS = {torch.add, Tensor.add, Tensor.__add__, Tensor.__radd__, Tensor.__iadd__, Tensor.add_}
_PRODUCTS = {torch.mul, Tensor.mul, Tensor.__mul__, Tensor.__rmul__, Tensor.__imul__, Tensor.mul_, torch.matmul,
             Tensor.matmul, Tensor.__matmul__, torch.bmm, Tensor.bmm, torch.div, Tensor.div, Tensor.__truediv__}


class ResidualSums(TorchFunctionMode):
    """While active, ``a + b`` of two same-shaped activations (a residual connection) splits relevance in proportion;
    a product or quotient of two activations is refused (LRP has no rule for it). ``epsilon`` stabilises the split."""

    def __init__(self, epsilon: float = 1e-6) -> None:
        super().__init__()
        self.epsilon = epsilon

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        pair = len(args) == 2 and all(isinstance(a, Tensor) and a.requires_grad for a in args)
        if pair and func in _ADDS:
            if kwargs or args[0].shape != args[1].shape:
                raise ValueError(f"LRP has no rule for adding activations of shapes {tuple(args[0].shape)} and "
                                 f"{tuple(args[1].shape)} (only same-shaped residual sums are split); explain this "
                                 "model with a gradient method (e.g. --method integrated_gradients)")
            return _ProportionalSum.apply(args[0], args[1], self.epsilon)
        if pair and func in _PRODUCTS:
            raise ValueError("LRP has no rule for the product of two activations (a gate such as squeeze-and-"
                             "excitation, or attention); explain this model with a gradient method (e.g. --method "
                             "integrated_gradients) or use a ReLU network such as efficientnet_lite0 or resnet18")
        return func(*args, **kwargs)
