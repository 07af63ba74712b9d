"""A private copy of the model for the atlas's many optimisation steps: frozen, in evaluation mode, its batch
norms folded into the convolutions that feed them (on the CPU a batch norm costs a third of EfficientNet-Lite's
time; Jacob et al. 2018, https://arxiv.org/abs/1712.05877, §3.2), layers that copy maps needlessly replaced by
exact stand-ins (:mod:`~convscope.atlas.lean_layers`), each ReLU or ReLU6 that reads only a convolution's output
computed by that convolution (:mod:`~convscope.atlas.rectified_convs`), and in the channels-last memory format
(https://pytorch.org/tutorials/intermediate/memory_format_tutorial.html), which makes the convolutions of small
pictures faster on CPUs and tensor cores alike.

The user's model is never touched: no flag, hook, module or memory format of it changes. A norm is folded and a
rectifier merged only where the function stays the same at the chosen layers (checked on a picture), inside a
chosen block too; the chosen layers keep their names.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from convscope.atlas.lean_layers import make_lean
from convscope.atlas.rectified_convs import rectify_convs
from convscope.attribution.batch_norm_folding import _fold, _swapped, _what_remains, conv_norm_pairs
from convscope.hooks import copy_without_hooks
from convscope.models.model import Model
from convscope.synthesis.loop import forward_until_done, outputs_of, stop_after


def working_copy(model: Model, layers: Sequence[str] = ()) -> Model:
    """A frozen, evaluation-mode, lean, channels-last deep copy of ``model`` (same names, same values); with
    ``layers``, batch norms and rectifiers that can be merged into convolutions without changing those layers'
    outputs are."""
    net = copy_without_hooks(model.net, model.net).eval()
    for parameter in net.parameters():
        parameter.requires_grad_(False)
    fast = dataclasses.replace(model, net=net)
    chosen = list(layers)
    if chosen:
        picture = torch.rand(2, fast.preprocess.channels, *fast.preprocess.input_size,
                             generator=torch.Generator().manual_seed(0)).to(fast.device)
        reference = _outputs(model.net, picture, chosen)
        _fold_norms(fast, picture, chosen, reference)
    make_lean(fast.net)
    if chosen:
        _checked(fast, lambda net: rectify_convs(net, _runner(net, picture, chosen), _kept(net, chosen)),
                 picture, chosen, reference)
    fast.net = fast.net.to(memory_format=torch.channels_last)
    fast.net.register_forward_pre_hook(_channels_last_input)
    return fast


def _fold_norms(fast: Model, picture: Tensor, layers: list[str], reference: dict[str, Tensor]) -> None:
    """Fold conv → batch norm pairs of ``fast`` in place, unless a chosen layer's output would change."""
    kept = _kept(fast.net, layers)
    pairs = [(c, n) for c, n in _pairs(fast.net, picture, layers) if id(c) not in kept and id(n) not in kept]

    def fold(net: nn.Module) -> None:
        replacements = {}
        for conv, norm in pairs:
            _fold(conv, norm)
            replacements[id(norm)] = _what_remains(norm)
        _swapped(net, replacements)

    if pairs:
        _checked(fast, fold, picture, layers, reference)


def _checked(fast: Model, change: Callable[[nn.Module], object], picture: Tensor, layers: list[str],
             reference: dict[str, Tensor]) -> None:
    """Apply ``change`` to ``fast.net`` in place; undo it if a chosen layer's output on ``picture`` is no longer
    ``reference``'s."""
    backup = copy.deepcopy(fast.net)
    change(fast.net)
    found = _outputs(fast.net, picture, layers)
    for layer in layers:
        scale = max(1.0, float(reference[layer].abs().max()))
        if float((found[layer] - reference[layer]).abs().max()) > 1e-4 * scale:
            fast.net = backup  # not the same function: the unchanged copy is used
            return


def _kept(net: nn.Module, layers: list[str]) -> set[int]:
    """The ids of the modules that are a chosen layer or hold one: merging them would rename or remove it."""
    return {id(module) for name, module in net.named_modules() if any(_on_path(name, chosen) for chosen in layers)}


def _on_path(name: str, layer: str) -> bool:
    """Whether the module ``name`` is ``layer`` or holds it. Modules inside a chosen block are merged (its output
    stays the same)."""
    return name == layer or layer.startswith(f"{name}.") or not name


def _pairs(net: nn.Module, picture: Tensor, layers: list[str]) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """(convolution, batch norm) pairs where the norm reads exactly the convolution's output, each called once."""
    modules = list(net.modules())
    return conv_norm_pairs([m for m in modules if isinstance(m, nn.Conv2d)], modules, _runner(net, picture, layers))


def _runner(net: nn.Module, picture: Tensor, layers: list[str]) -> Callable[[], None]:
    """A function that runs ``net`` on ``picture`` up to the chosen layers."""
    def run() -> None:
        with stop_after(net, layers):
            forward_until_done(net, picture)

    return run


def _outputs(net: nn.Module, picture: Tensor, layers: list[str]) -> dict[str, Tensor]:
    return {layer: output.float() for layer, output in outputs_of(net, picture, layers).items()}


def _channels_last_input(module: nn.Module, inputs: tuple[object, ...]) -> tuple[object, ...] | None:
    if inputs and isinstance(inputs[0], Tensor) and inputs[0].dim() == 4:
        return (inputs[0].contiguous(memory_format=torch.channels_last), *inputs[1:])
    return None
