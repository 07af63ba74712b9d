"""Composites: which LRP rule each layer of a network gets, as Zennit's composites assign them.

Every composite passes relevance unchanged through rectifiers (ReLU, ReLU6, leaky ReLU),
splits it in proportion to the inputs at average pooling and residual sums, follows
max-pooling's switches (its gradient), gives fully connected layers the ε-rule and
convolutions the composite's rule; the ``-flat`` composites use the flat rule for the
first convolution or linear layer, ``epsilon-gamma-box`` the z^B rule for the first
convolution (Kohlbrenner et al. 2020, https://arxiv.org/abs/1910.09840; Montavon et al.
2019, https://doi.org/10.1007/978-3-030-28954-6_10). A layer type with no rule is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from convscope.attribution import lrp_rules
from convscope.attribution.lrp_rules import Rule
from convscope.suggestions import unknown

PASS = "pass"  # relevance goes through unchanged (rectifiers)
GRADIENT = "gradient"  # the ordinary backward is the right one (max-pooling switches, reshapes, identities)

RECTIFIERS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.Hardtanh)
AVERAGES = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
            nn.AdaptiveAvgPool3d)
CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
NEUTRAL = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.Identity,
           nn.Flatten, nn.Unflatten, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


@dataclass(frozen=True)
class Composite:
    """A rule for convolutions, one for linear layers, and optionally one for the first layer of ``first_types``;
    ``norm_epsilon`` stabilises the proportional splits (pooling, residual sums; 1e-6 as in Zennit)."""

    name: str
    convolution: Rule
    linear: Rule
    first: Rule | None = None
    first_types: tuple[type[nn.Module], ...] = ()
    norm_epsilon: float = 1e-6

    def rules(self, net: nn.Module) -> dict[str, Rule | str]:
        """Each sub-module's rule (a :class:`Rule`, ``PASS`` or ``GRADIENT``) by name; a ``ValueError`` naming the
        first module that has none."""
        found: dict[str, Rule | str] = {}
        first_seen = self.first is None
        for name, module in net.named_modules():
            if not first_seen and isinstance(module, self.first_types):
                found[name], first_seen = self.first, True  # type: ignore[assignment]
                continue
            found[name] = self._rule(name, module)
        return found

    def _rule(self, name: str, module: nn.Module) -> Rule | str:
        if isinstance(module, RECTIFIERS):
            return PASS
        if isinstance(module, AVERAGES):
            return lrp_rules.norm(self.norm_epsilon)
        if isinstance(module, CONVOLUTIONS):
            return self.convolution
        if isinstance(module, nn.Linear):
            return self.linear
        own = [p for p in module._parameters.values() if p is not None]
        if isinstance(module, NEUTRAL) or (next(module.children(), None) is not None and not own):
            return GRADIENT
        where = f" at {name!r}" if name else ""
        why = ("a batch norm that follows no convolution cannot be folded into one" if
               isinstance(module, nn.modules.batchnorm._BatchNorm) else "it is neither a convolution, a linear "
               "layer, a rectifier nor a pooling layer")
        raise ValueError(f"LRP has no rule for {type(module).__name__}{where}: {why}; explain this model with a "
                         "gradient method (e.g. --method integrated_gradients) or use a ReLU network such as "
                         "efficientnet_lite0, resnet18 or vgg11")


NAMES = ("epsilon-plus", "epsilon-plus-flat", "epsilon-gamma-box", "epsilon-alpha2-beta1", "epsilon-alpha2-beta1-flat")


def composite(name: str | Composite, *, low: Tensor | float = 0.0, high: Tensor | float = 1.0,
              epsilon: float = 1e-6, gamma: float = 0.25) -> Composite:
    """The composite called ``name`` (hyphens, underscores or CamelCase: ``epsilon-plus-flat``,
    ``EpsilonPlusFlat``); ``low``/``high`` bound the input for ``epsilon-gamma-box``."""
    if isinstance(name, Composite):
        return name
    if not isinstance(name, str):
        raise TypeError(f"composite must be a name ({', '.join(NAMES)}) or a Composite, got {type(name).__name__}")
    key = name.lower().replace("-", "").replace("_", "")
    plain = {n.replace("-", ""): n for n in NAMES}
    if key not in plain:
        raise unknown("LRP composite", name, NAMES)
    chosen = plain[key]
    dense = lrp_rules.epsilon(epsilon)
    if chosen == "epsilon-gamma-box":
        return Composite(chosen, lrp_rules.gamma(gamma), dense, lrp_rules.z_box(low, high), CONVOLUTIONS)
    convolution = lrp_rules.z_plus() if chosen.startswith("epsilon-plus") else lrp_rules.alpha_beta(2.0, 1.0)
    first = lrp_rules.flat() if chosen.endswith("-flat") else None
    return Composite(chosen, convolution, dense, first, (*CONVOLUTIONS, nn.Linear) if first else ())
