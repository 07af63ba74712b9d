"""Batch normalisation folded into the convolution that feeds it: the same function, one pass over memory fewer.

In evaluation mode a batch norm is a per-channel affine map, ``(x − μ)·γ/√(σ² + ε) + β``; when
its input is a convolution's output and nothing else reads that output, the map can be folded
into the convolution's weights and bias (Jacob et al. 2018, https://arxiv.org/abs/1712.05877,
§3.2). Incremental occlusion runs a model thousands of times on crops, and on the CPU a batch
norm costs a third of EfficientNet-Lite's time, so it runs a folded copy of the chain. The
user's modules are never changed; a copy that does not reproduce the original is not used.
"""

from __future__ import annotations

import copy
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from operator import is_
from typing import TypeGuard, TypeVar

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrize import is_parametrized

from convscope.attribution.forward_args import current_rows, rows
from convscope.attribution.occlusion_chain import Chain
from convscope.hooks import forget_walk, model_walk, resolve_layer

M = TypeVar("M", bound=nn.Module)


def fold_batch_norms(chain: Chain, example: Tensor, keep: int | None = None) -> Chain:
    """``chain`` with every conv → batch norm pair folded, in copies of its modules; ``chain`` itself when none
    can be folded or the folded copy's output on ``example`` ``[B,C,H,W]`` differs from the original's.

    ``keep``: an element whose output must stay as it is (a norm in the next element is not folded into it).
    """
    pairs = _conv_norm_pairs(chain, example)
    if keep is not None:
        inside = {id(m) for m in chain.elements[keep].module.modules()}
        pairs = [(c, n) for c, n in pairs if id(c) not in inside or id(n) in inside]
    if not pairs:
        return chain
    memo: dict[int, object] = {}
    copies = copy.deepcopy([element.module for element in chain.elements], memo)
    replacements: dict[int, nn.Module] = {}
    for conv, norm in pairs:
        folded_conv, folded_norm = _copy_of(conv, memo), _copy_of(norm, memo)
        _fold(folded_conv, folded_norm)
        replacements[id(folded_norm)] = _what_remains(folded_norm)
    folded = chain.with_modules([replacements.get(id(module)) or _swapped(module, replacements) for module in copies])
    with torch.no_grad():
        _, original = chain.run(example)
        _, found = folded.run(example)
    scale = max(1.0, float(original.abs().max()))
    return folded if float((found - original).abs().max()) <= 1e-5 * scale else chain


def _copy_of(module: M, memo: dict[int, object]) -> M:
    """The copy of ``module`` made by the ``copy.deepcopy`` that filled ``memo``."""
    found = memo[id(module)]
    assert isinstance(found, type(module)), "a deep copy has its original's type"
    return found


def _conv_norm_pairs(chain: Chain, example: Tensor) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """(convolution, batch norm) pairs in which the norm is called on exactly the convolution's output tensor."""
    modules = [m for element in chain.elements for m in element.module.modules()]
    convs = [m for m in modules if isinstance(m, nn.Conv2d) and not is_parametrized(m)]
    return conv_norm_pairs(convs, modules, lambda: chain.run(example))


def conv_norm_pairs(convs: Sequence[nn.Conv2d], modules: Sequence[nn.Module], run: Callable[[], object]
                    ) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """The pairs of ``convs`` and foldable norms among ``modules`` seen in one ``run()`` (no gradients; not run when
    there are no convolutions or no foldable norms): see :func:`conv_pairs`."""
    return conv_pairs(convs, [m for m in modules if _foldable_norm(m)], run)


def conv_pairs(convs: Sequence[nn.Conv2d], followers: Sequence[M], run: Callable[[], object]
               ) -> list[tuple[nn.Conv2d, M]]:
    """The pairs of ``convs`` and ``followers`` seen in one ``run()`` (no gradients; not run when either is empty) in
    which the follower reads exactly the convolution's output tensor, each is called once, and no convolution feeds
    two followers. Convolutions with forward pre-hooks are left out (a hook may change what they compute)."""
    convs = [m for m in convs if not m._forward_pre_hooks]
    if not convs or not followers:  # nothing to pair: the model is not run
        return []
    outputs: dict[int, tuple[nn.Conv2d, Tensor]] = {}
    pairs: list[tuple[nn.Conv2d, M]] = []
    calls: dict[int, int] = {}

    def after_conv(module: nn.Conv2d, args: tuple, output: Tensor) -> None:
        outputs[id(output)] = (module, output)  # the tensor is kept alive so that its id stays its own
        calls[id(module)] = calls.get(id(module), 0) + 1

    def before_follower(module: M, args: tuple) -> None:
        calls[id(module)] = calls.get(id(module), 0) + 1
        source = outputs.get(id(args[0])) if args else None
        if source is not None and source[1] is args[0]:
            pairs.append((source[0], module))

    handles = [conv.register_forward_hook(after_conv) for conv in convs]
    handles += [follower.register_forward_pre_hook(before_follower) for follower in followers]
    try:
        with torch.no_grad():
            run()
    finally:
        for handle in handles:
            handle.remove()
    once = [(c, f) for c, f in pairs if calls.get(id(c)) == 1 and calls.get(id(f)) == 1]
    convs_used = [id(c) for c, _ in once]
    return [(c, f) for c, f in once if convs_used.count(id(c)) == 1]


def _foldable_norm(module: nn.Module) -> TypeGuard[nn.BatchNorm2d]:
    """An evaluation-mode 2-d batch norm with running statistics that is plain, or a norm + activation block."""
    if not isinstance(module, nn.BatchNorm2d) or module.training or module.running_mean is None:
        return False
    return type(module) is nn.BatchNorm2d or _norm_act_parts(module) is not None


def _norm_act_parts(norm: nn.Module) -> tuple[nn.Module, nn.Module] | None:
    """A norm + activation block's dropout and activation modules (timm's ``BatchNormAct2d``), else None."""
    drop, act = getattr(norm, "drop", None), getattr(norm, "act", None)
    return (drop, act) if isinstance(drop, nn.Module) and isinstance(act, nn.Module) else None


def _what_remains(norm: nn.BatchNorm2d) -> nn.Module:
    """What a folded norm leaves to do: nothing, or its dropout and activation (under their names, ``drop``/``act``)."""
    parts = _norm_act_parts(norm) if type(norm) is not nn.BatchNorm2d else None
    return nn.Identity() if parts is None else nn.Sequential(OrderedDict(zip(("drop", "act"), parts, strict=True)))


def _fold(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> None:
    """Fold ``norm`` into ``conv`` (both copies) in place."""
    conv.weight, conv.bias = _folded(conv, norm)


def _folded(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> tuple[nn.Parameter, nn.Parameter]:
    """The weight and bias of ``conv`` with ``norm`` folded in: weight·s, bias·s + β − μ·s with s = γ/√(σ² + ε)."""
    assert norm.running_var is not None and norm.running_mean is not None, "only norms with statistics are folded"
    variance, mean = norm.running_var.double(), norm.running_mean.double()
    scale = (variance + norm.eps).rsqrt()
    shift = -mean * scale
    if norm.affine:
        scale, shift = scale * norm.weight.double(), shift * norm.weight.double() + norm.bias.double()
    bias = torch.zeros_like(scale) if conv.bias is None else conv.bias.double()
    weight = conv.weight.double() * scale.view(-1, *[1] * (conv.weight.dim() - 1))
    return (nn.Parameter(weight.to(conv.weight.dtype), requires_grad=False),
            nn.Parameter((bias * scale + shift).to(conv.weight.dtype), requires_grad=False))


def _swapped(module: nn.Module, replacements: dict[int, nn.Module]) -> nn.Module:
    """``module`` with each descendant named in ``replacements`` (by id) replaced, in place."""
    for name, child in list(module.named_children()):
        if id(child) in replacements:
            setattr(module, name, replacements[id(child)])
        else:
            _swapped(child, replacements)
    return module


@contextmanager
def norms_folded(net: nn.Module, example: Tensor, keep: Sequence[str] = ()) -> Iterator[None]:
    """Inside, ``net`` (in evaluation mode) runs each conv → batch norm pair as one convolution: the folded weights
    are swapped in and the norm's module replaced by what remains of it; on exit the user's own parameters and
    modules are put back, also on errors. For methods that run the model many times, or whose pass is most of
    their cost.

    The outputs of the ``keep`` layers stay as they are (nothing inside them is folded); modules with hooks are
    left alone. Nothing is folded when the folded model's output on ``example`` (one picture) differs from the
    original's by more than 1e-5 of its largest value, or is not a tensor. That check and the search for the
    pairs (two passes of ``example``) are made once per model, layers kept and input shape: the plan and the
    folded weights are remembered (weakly, with the model) until a parameter, buffer or module of the model
    changes (another tensor, one written in place, a training-mode pass) or a module gets hooks. A write through
    ``.data`` in place (``p.data.add_(…)``), which PyTorch does not count, is seen in a sample of each tensor's
    values (16 spread over it, compared exactly).
    """
    if net in _folding:  # already folded by an enclosing call
        yield
        return
    kept = {id(m) for name in keep for m in resolve_layer(net, name)[1].modules()}
    walk = model_walk(net)  # walked before anything is swapped: a walk made inside would see the folded model
    modules = walk.modules(net)
    left_alone = frozenset(kept | {id(m) for m in modules if m._forward_hooks or m._forward_pre_hooks
                                   or m._backward_hooks or m._backward_pre_hooks})
    chosen = current_rows()  # the example is the first of these rows (for additional_forward_args)
    with rows(chosen[:1]) if chosen is not None else nullcontext():
        folds = _plan(net, modules, example, left_alone)
    if not folds:
        yield
        return
    try:
        _folding.add(net)
        _swap_in(folds)
        yield
    finally:
        _put_back(folds)
        _folding.discard(net)
        forget_walk(net, unless=walk)  # one made while the folds were in would list their modules


@dataclass
class _Fold:
    """One conv → norm pair folded: the folded weights, what replaces the norm, and where the norm sits."""

    conv: nn.Conv2d
    norm: nn.BatchNorm2d
    parent_ref: weakref.ref[nn.Module]  # weakly: the parent can be the model, the key of the cache
    name: str
    weight: nn.Parameter
    bias: nn.Parameter
    remains: nn.Module
    originals: tuple[nn.Parameter | None, nn.Parameter | None] = (None, None)

    @property
    def parent(self) -> nn.Module:
        found = self.parent_ref()
        assert found is not None, "a fold is used only while its model is"
        return found


@dataclass
class _Plan:
    """The folds found for a model given what is left alone and the input's shape, and the state they hold for
    (its sub-modules, not the model itself: the plan is kept in a cache keyed weakly on the model)."""

    modules: tuple[nn.Module, ...]
    tensors: tuple[Tensor, ...]
    stamps: tuple[tuple[int, int], ...]
    folds: list[_Fold] = field(default_factory=list)
    samples: tuple[Tensor, ...] = ()  # views of a few values of each tensor, to see writes through ``.data``
    sampled: Tensor | None = None

    def __post_init__(self) -> None:
        self.samples = tuple(_sample_view(t) for t in self.tensors)
        self.sampled = _read(self.samples)

    def holds_for(self, modules: tuple[nn.Module, ...], tensors: tuple[Tensor, ...]) -> bool:
        return (self.modules == modules[1:] and len(tensors) == len(self.tensors)
                and all(map(is_, tensors, self.tensors)) and self.stamps == _stamps(tensors)
                and self.sampled is not None and torch.equal(_read(self.samples), self.sampled))


def _sample_view(tensor: Tensor, count: int = 16) -> Tensor:
    """About ``count`` values spread over ``tensor``, as a view: a write in place that PyTorch does not count (through
    ``.data``) shows in it. The whole tensor where it cannot be viewed flat."""
    flat = tensor.detach()
    if not flat.is_contiguous():
        return flat
    flat = flat.view(-1)
    return flat[::max(1, flat.numel() // count)]


def _read(samples: Sequence[Tensor]) -> Tensor:
    return torch.cat([s.reshape(-1).float() for s in samples]) if samples else torch.zeros(0)


_folding: weakref.WeakSet[nn.Module] = weakref.WeakSet()
_plans: weakref.WeakKeyDictionary[nn.Module, dict[tuple, _Plan]] = weakref.WeakKeyDictionary()


def _state(modules: Sequence[nn.Module]) -> tuple[Tensor, ...]:
    """Every parameter and buffer of the model's modules."""
    return tuple(t for m in modules for group in (m._parameters, m._buffers) for t in group.values() if t is not None)


def _stamps(tensors: Sequence[Tensor]) -> tuple[tuple[int, int], ...]:
    """Each tensor's version counter (written in place) and memory (``.data`` given a new tensor)."""
    return tuple((t._version, t.data_ptr()) for t in tensors)


def _plan(net: nn.Module, modules: tuple[nn.Module, ...], example: Tensor, left_alone: frozenset[int]) -> list[_Fold]:
    """The folds for ``net`` (remembered; found and checked on ``example`` when the model changed)."""
    key = (left_alone, tuple(example.shape[1:]), example.dtype, example.device,
           tuple(m.training for m in modules if isinstance(m, nn.BatchNorm2d)))
    tensors = _state(modules)
    known = _plans.setdefault(net, {})
    found = known.get(key)
    if found is not None and found.holds_for(modules, tensors):
        return found.folds
    plan = _Plan(modules[1:], tensors, _stamps(tensors), _checked_folds(net, modules, example, left_alone))
    if len(known) >= 8:
        known.clear()
    known[key] = plan
    return plan.folds


def _checked_folds(net: nn.Module, modules: Sequence[nn.Module], example: Tensor, left_alone: frozenset[int]
                   ) -> list[_Fold]:
    """The folds of the pairs found in one pass of ``example``; none when the folded output is not the same."""
    convs = [m for m in modules[1:] if isinstance(m, nn.Conv2d) and not is_parametrized(m) and id(m) not in left_alone]
    outputs: list[object] = []
    pairs = [(c, n) for c, n in conv_norm_pairs(convs, modules, lambda: outputs.append(net(example)))
             if id(n) not in left_alone]
    parents = {id(child): (module, name) for module in modules for name, child in module.named_children()}
    if not pairs or not isinstance(outputs[0], Tensor) or any(id(n) not in parents for _, n in pairs):
        return []
    folds = []
    with torch.no_grad():
        for conv, norm in pairs:
            weight, bias = _folded(conv, norm)
            parent, name = parents[id(norm)]
            folds.append(_Fold(conv, norm, weakref.ref(parent), name, weight, bias, _what_remains(norm)))
        try:
            _swap_in(folds)
            found = net(example)
        finally:
            _put_back(folds)
    scale = max(1.0, float(outputs[0].abs().max()))
    if not isinstance(found, Tensor) or float((found - outputs[0]).abs().max()) > 1e-5 * scale:
        return []
    return folds


def _swap_in(folds: Sequence[_Fold]) -> None:
    """The folded weights and what remains of the norms in place of the user's (the dictionaries written directly:
    the swap is undone on exit, so the model's registration hooks are not told of it)."""
    for fold in folds:
        fold.originals = (fold.conv._parameters["weight"], fold.conv._parameters.get("bias"))
        fold.conv._parameters["weight"], fold.conv._parameters["bias"] = fold.weight, fold.bias
        fold.parent._modules[fold.name] = fold.remains


def _put_back(folds: Sequence[_Fold]) -> None:
    for fold in folds:
        weight, bias = fold.originals
        if weight is not None:
            fold.conv._parameters["weight"], fold.conv._parameters["bias"] = weight, bias
        fold.parent._modules[fold.name] = fold.norm
        fold.originals = (None, None)
