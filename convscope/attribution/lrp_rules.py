"""The rules of layer-wise relevance propagation, each a few modified forward passes of one layer.

A rule redistributes the relevance ``R`` at a layer's output to its input::

    R_in = Σ_k a_k · m_k ⊙ J_kᵀ (R / stabilise(Σ_{j in group(k)} s_j z_j))

where term ``k`` runs the layer with modified parameters on a modified input ``m_k``
(``z_k``), ``J_k`` is that linear map's transpose (a convolution's ordinary backward) and
``a_k`` / ``s_k`` weigh the term in the sum and in the denominator. This is Zennit's
``BasicHook`` (Anders et al. 2021, https://arxiv.org/abs/2106.13200) spelt as data; the
papers are Bach et al. 2015 (ε, αβ, z⁺; https://doi.org/10.1371/journal.pone.0130140),
Montavon et al. 2017 (z^B, w², deep Taylor; https://arxiv.org/abs/1512.02479),
Montavon et al. 2019 (γ; https://doi.org/10.1007/978-3-030-28954-6_10) and
Lapuschkin et al. 2019 (flat; https://arxiv.org/abs/1902.10178).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

Modifier = Callable[[Tensor, str], Tensor]


def stabilise(z: Tensor, epsilon: float) -> Tensor:
    """``z`` moved ``epsilon`` away from zero (zeros move up), as Zennit's ``stabilize``."""
    return z + ((z == 0).to(z) + z.sign()) * epsilon


def _same(param: Tensor, name: str) -> Tensor:
    return param


def _positive(param: Tensor, name: str) -> Tensor:
    return param.clamp(min=0)


def _negative(param: Tensor, name: str) -> Tensor:
    return param.clamp(max=0)


def _negative_no_bias(param: Tensor, name: str) -> Tensor:
    return torch.zeros_like(param) if name == "bias" else param.clamp(max=0)


def _positive_no_bias(param: Tensor, name: str) -> Tensor:
    return torch.zeros_like(param) if name == "bias" else param.clamp(min=0)


def _ones_no_bias(param: Tensor, name: str) -> Tensor:
    return torch.zeros_like(param) if name == "bias" else torch.ones_like(param)


def _squared(param: Tensor, name: str) -> Tensor:
    return param**2


@dataclass(frozen=True)
class Term:
    """One modified pass: input ``x ↦ m``, parameters ``(p, name) ↦ p'``, weight ``a`` in the sum, sign ``s`` in its
    group's denominator, and whether the result is multiplied by ``m`` (not for flat and w², whose ``m`` is ones)."""

    inputs: Callable[[Tensor], Tensor]
    params: Modifier
    weight: float = 1.0
    sign: float = 1.0
    group: int = 0
    times_input: bool = True


@dataclass(frozen=True)
class Rule:
    """A named rule: its terms and the ε that keeps the denominators away from zero (1e-6 unless said, as Zennit).

    Every rule builder takes ``stabiliser`` (the ε-rule's own ε is its ``value``)."""

    name: str
    terms: tuple[Term, ...]
    epsilon: float = 1e-6


def _identity(x: Tensor) -> Tensor:
    return x


def _positive_part(x: Tensor) -> Tensor:
    return x.clamp(min=0)


def _negative_part(x: Tensor) -> Tensor:
    return x.clamp(max=0)


def epsilon(value: float = 1e-6) -> Rule:
    """LRP-ε: ``R_i = x_i w_ij R_j / (z_j + ε·sign z_j)`` (Bach et al. 2015); ε → 0 is LRP-0."""
    _check_non_negative("epsilon", value)
    return Rule(f"epsilon({value:g})", (Term(_identity, _same),), value)


def gamma(value: float = 0.25, stabiliser: float = 1e-6) -> Rule:
    """LRP-γ: positive weights (and bias) boosted, ``w + γ w⁺`` (Montavon et al. 2019)."""
    _check_non_negative("gamma", value)
    return Rule(f"gamma({value:g})", (Term(_identity, lambda p, n: p + value * p.clamp(min=0)),), stabiliser)


def alpha_beta(alpha: float = 2.0, beta: float = 1.0, stabiliser: float = 1e-6) -> Rule:
    """LRP-αβ: positive contributions weighed ``α``, negative ``β``, with ``α − β = 1`` (Bach et al. 2015)."""
    if alpha < 0 or beta < 0 or abs(alpha - beta - 1) > 1e-12:
        raise ValueError(f"alpha-beta needs alpha ≥ 0, beta ≥ 0 and alpha − beta = 1 (relevance is conserved), "
                         f"got alpha={alpha}, beta={beta}; e.g. alpha=2, beta=1 or alpha=1, beta=0")
    return Rule(f"alpha{alpha:g}-beta{beta:g}", (
        Term(_positive_part, _positive, alpha, group=0), Term(_negative_part, _negative_no_bias, alpha, group=0),
        Term(_positive_part, _negative, -beta, group=1), Term(_negative_part, _positive_no_bias, -beta, group=1)),
        stabiliser)


def z_plus(stabiliser: float = 1e-6) -> Rule:
    """z⁺: only positive contributions (α1β0, with negative inputs through negative weights as Zennit does)."""
    return Rule("z-plus", (Term(_positive_part, _positive), Term(_negative_part, _negative_no_bias)), stabiliser)


def z_box(low: Tensor | float, high: Tensor | float, stabiliser: float = 1e-6) -> Rule:
    """z^B for the input layer: the input bounded by ``low`` and ``high`` (per channel ``[1,C,1,1]`` or scalars)
    (Montavon et al. 2017)."""
    def bound(value: Tensor | float) -> Callable[[Tensor], Tensor]:
        def expand(x: Tensor) -> Tensor:
            return torch.as_tensor(value).to(x).expand_as(x).clone()
        return expand

    return Rule("z-box", (Term(_identity, _same), Term(bound(low), _positive, -1.0, -1.0),
                          Term(bound(high), _negative, -1.0, -1.0)), stabiliser)


def flat(stabiliser: float = 1e-6) -> Rule:
    """Flat: relevance spread uniformly over each output's receptive field (Lapuschkin et al. 2019)."""
    return Rule("flat", (Term(torch.ones_like, _ones_no_bias, times_input=False),), stabiliser)


def w_square(stabiliser: float = 1e-6) -> Rule:
    """w²: relevance spread in proportion to the squared weights (Montavon et al. 2017)."""
    return Rule("w-square", (Term(torch.ones_like, _squared, times_input=False),), stabiliser)


def norm(epsilon: float = 1e-6) -> Rule:
    """The proportional split of a parameter-free linear layer (average pooling): the ε-rule with a tiny ε."""
    return Rule("norm", (Term(_identity, _same),), epsilon)


def _check_non_negative(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"{name} must be a number ≥ 0, got {value!r}")
