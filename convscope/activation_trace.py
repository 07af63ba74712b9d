"""What a forward pass computes besides rectifiers: gates, hidden squashing activations, hand-written ones.

The deconvnet and guided backprop (see :mod:`convscope.backward_rules`) have a rule for
rectifiers and for torch's own SiLU, GELU, Hardswish and Mish. Other nonlinearities are
judged by what the network does with their output, followed call by call in the forward pass:

- a *gate* — ``sigmoid``/``tanh``/``hardsigmoid``… of one tensor multiplying another, as in
  squeeze-and-excitation — keeps its ordinary backward, which is right for it;
- a *hidden activation* — its output goes into a convolution, linear layer, norm, pooling or
  matrix product (``conv → tanh → conv``) — has no rule and is refused;
- a *hand-written activation* — a nonlinearity of ``x`` multiplying ``x`` itself
  (``x * sigmoid(x)``, ``x * relu6(x + 3) / 6``, ``x * 0.5 * (1 + erf(x / √2))``) — would get
  a plain backward through its ``x`` factor and is refused with the module or function that
  computes it instead.

Tensors are followed by identity: each one remembers the tensors it was computed from by
elementwise arithmetic and reshaping (its *roots*); any other operation starts new roots.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from torch import Tensor, nn

SQUASHING = {"sigmoid": "Sigmoid", "sigmoid_": "Sigmoid", "special_expit": "Sigmoid", "expit": "Sigmoid",
             "tanh": "Tanh", "tanh_": "Tanh", "hardsigmoid": "Hardsigmoid", "log_sigmoid": "LogSigmoid",
             "logsigmoid": "LogSigmoid", "softsign": "Softsign", "erf": "erf", "erf_": "erf", "special_erf": "erf",
             "tanhshrink": "Tanhshrink", "softshrink": "Softshrink", "hardshrink": "Hardshrink"}
RESHAPING = {"view", "view_as", "reshape", "reshape_as", "expand", "expand_as", "flatten", "unsqueeze", "squeeze",
             "permute", "transpose", "contiguous", "to", "float", "double", "half", "type_as", "clone", "detach",
             "__getitem__", "dropout", "repeat", "narrow"}
MULTIPLYING = {"mul", "mul_", "multiply", "__mul__", "__rmul__", "__imul__"}
ELEMENTWISE = MULTIPLYING | {"add", "add_", "sub", "sub_", "rsub", "div", "div_", "true_divide", "neg", "neg_", "pow",
                             "pow_", "abs", "exp", "sqrt", "rsqrt", "square", "reciprocal", "__add__", "__radd__",
                             "__iadd__", "__sub__", "__rsub__", "__isub__", "__truediv__", "__rtruediv__",
                             "__itruediv__", "__neg__", "__pow__", "__rpow__", "clamp", "clamp_", "clamp_min",
                             "clamp_min_", "clamp_max", "clamp_max_", "relu", "relu_", "relu6", "hardtanh",
                             "hardtanh_", *SQUASHING}
LAYERS = {"conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "linear",
          "matmul", "__matmul__", "mm", "bmm", "batch_norm", "layer_norm", "group_norm", "instance_norm",
          "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
          "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool1d",
          "adaptive_max_pool2d", "adaptive_max_pool3d", "lp_pool2d"}
SKIPPED = {"__get__", "__set__", "size", "dim", "numel", "requires_grad_", "is_floating_point", "__len__", "__bool__",
           "__format__", "__repr__", "item", "tolist", "register_hook", "retain_grad"}


class NoRule(ValueError):
    """A nonlinearity the deconvnet / guided backprop rules cannot handle; the message says where."""


def function_name(func: object) -> str:
    """A torch function's name without its wrapper's underscore (``F.threshold`` is ``_threshold``)."""
    name = getattr(func, "__name__", "")
    return name[1:] if name.startswith("_") and not name.startswith("__") else name


@dataclass(frozen=True)
class Nonlinear:
    """The output of a nonlinearity (``name``) of a tensor with ``roots``, followed through reshapes and scalings."""

    name: str
    roots: frozenset[int]
    rectifier: bool = False
    where: str = ""


class ActivationTrace:
    """Follows one forward pass (fed by a ``TorchFunctionMode``) and raises on what has no backward rule."""

    def __init__(self, net: nn.Module) -> None:
        self.net = net
        self.roots: dict[int, frozenset[int]] = {}
        self.nonlinear: dict[int, Nonlinear] = {}
        self.kept: list[Tensor] = []  # every followed tensor stays alive, so that no id is reused
        self._names: dict[int, str] | None = None

    def _roots(self, tensor: Tensor) -> frozenset[int]:
        found = self.roots.get(id(tensor))
        if found is None:
            found = self.roots[id(tensor)] = frozenset((id(tensor),))
            self.kept.append(tensor)
        return found

    def _set(self, tensor: Tensor, roots: frozenset[int], nonlinear: Nonlinear | None) -> None:
        self.kept.append(tensor)
        self.roots[id(tensor)] = roots
        if nonlinear is None:
            self.nonlinear.pop(id(tensor), None)
        else:
            self.nonlinear[id(tensor)] = nonlinear

    def rectified(self, x: Tensor, output: Tensor, name: str) -> None:
        """``output`` is a rectifier (or smooth rectifier-like activation) of ``x``."""
        roots = self._roots(x)
        self._set(output, roots, Nonlinear(name, roots, rectifier=True))

    def seen(self, func: object, args: tuple, kwargs: dict, result: object) -> None:
        """One call of the forward pass: raises :class:`NoRule` for a hidden or hand-written activation."""
        name = function_name(func)
        if name in SKIPPED:
            return
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, Tensor)]
        tensors += [t for a in args if isinstance(a, (list, tuple)) for t in a if isinstance(t, Tensor)]
        if not tensors:
            return
        marked = [(t, self.nonlinear[id(t)]) for t in tensors if id(t) in self.nonlinear]
        carried = None
        for tensor, nonlinear in marked:
            others = [t for t in tensors if t is not tensor]
            if name in MULTIPLYING and others:
                if any(self._roots(t) & nonlinear.roots for t in others):
                    raise NoRule(hand_written(nonlinear, self.where()))
            elif (name in RESHAPING and tensor is tensors[0]) or (name in ELEMENTWISE and not others):
                carried = nonlinear
            elif name in LAYERS and not nonlinear.rectifier:
                raise NoRule(f"{nonlinear.where or self.where()}: a hidden {nonlinear.name} (its output goes "
                                 f"into {name}); it has no rule (sigmoid, tanh and the like are handled only as "
                                 "gates that multiply another tensor, as in squeeze-and-excitation)")
        if not isinstance(result, Tensor):
            return
        if name in SQUASHING:
            roots = self._roots(tensors[0])
            self._set(result, roots, Nonlinear(SQUASHING[name], roots, where=self.where()))
        elif name in RESHAPING:  # expand_as(y), type_as(y): y gives only a shape or a type
            self._set(result, self._roots(tensors[0]), carried)
        elif name in ELEMENTWISE:
            roots = frozenset().union(*(self._roots(t) for t in tensors))
            self._set(result, roots, carried)
        else:
            self._set(result, frozenset((id(result),)), None)

    def where(self) -> str:
        """The innermost module of ``net`` running now, as ``'name (Type)'``, from the Python call stack."""
        if self._names is None:
            self._names = {id(module): name for name, module in self.net.named_modules()}
        names = self._names
        frame = inspect.currentframe()
        while frame is not None:
            owner = frame.f_locals.get("self")
            if isinstance(owner, nn.Module) and id(owner) in names:
                return f"{names[id(owner)] or '(model)'} ({type(owner).__name__})"
            frame = frame.f_back
        return "the forward pass"


def hand_written(nonlinear: Nonlinear, where: str) -> str:
    """The refusal of ``x * f(x)`` computed piece by piece."""
    return (f"{where}: x times {nonlinear.name}(x) computed by hand (a hand-written SiLU/Swish, GELU, Mish or "
            "Hardswish), whose x factor would get a plain backward; use torch's own nn.SiLU/F.silu, nn.GELU, "
            "nn.Mish or nn.Hardswish, which have a rule")
