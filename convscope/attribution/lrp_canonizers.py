"""A network made ready for LRP, in a copy: evaluation mode, out-of-place, batch norms folded into convolutions.

LRP's rules are written for convolutions and linear layers; a batch norm after a
convolution is folded into it (:mod:`convscope.attribution.batch_norm_folding`, the same
function, as Zennit's ``SequentialMergeBatchNorm`` does), residual sums are split by
:class:`~convscope.attribution.lrp_propagation.ResidualSums` while the copy runs. The
user's model is only read. The copy is kept (one per model) until a parameter or buffer of the
model changes (in place, replaced, moved), so repeated calls do not copy it again.
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from convscope.attribution.batch_norm_folding import fold_batch_norms
from convscope.attribution.occlusion_chain import Chain, Element

_copies: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, nn.Module]] = weakref.WeakKeyDictionary()


@contextmanager
def canonised_copy(net: nn.Module, example: Tensor) -> Iterator[nn.Module]:
    """The canonised copy of ``net`` (:func:`make_canonised_copy`), made once per state of its tensors.

    The copy is lent for the duration: a second caller at the same time (another thread)
    gets a copy of its own, so hooks on one copy never meet another call's.
    """
    state = fingerprint(net)
    found = _copies.pop(net, None)
    twin = found[1] if found is not None and found[0] == state else make_canonised_copy(net, example)
    try:
        yield twin
    finally:
        _copies[net] = (state, twin)


def fingerprint(net: nn.Module) -> tuple:
    """What the copy depends on: every parameter's and buffer's identity, storage, version, dtype and device."""
    tensors = [*net.parameters(), *net.buffers()]
    return tuple((id(t), t.data_ptr(), t._version, t.dtype, t.device, tuple(t.shape)) for t in tensors) + (
        tuple(type(m) for m in net.modules()),)


def make_canonised_copy(net: nn.Module, example: Tensor) -> nn.Module:
    """A deep copy of ``net`` in evaluation mode, frozen, out-of-place, with conv → batch norm pairs folded.

    ``example`` ``[1,C,H,W]`` is run to find the pairs and to check that the folded copy
    gives the same output.
    """
    twin = copy.deepcopy(net).eval()
    for param in twin.parameters():
        param.requires_grad_(False)
    for module in twin.modules():
        if isinstance(getattr(module, "inplace", None), bool):
            module.inplace = False  # type: ignore[assignment]  # torch's stub: setattr takes only Tensor | Module
    chain = Chain((Element(twin, tuple(example.shape[1:])),))
    with torch.no_grad():
        folded = fold_batch_norms(chain, example.detach())
    return folded.elements[0].module
