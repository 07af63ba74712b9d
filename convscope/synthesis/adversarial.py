"""Fooling images: small changes that flip the model's decision.

- :func:`fgsm` — one signed-gradient step of size ε (Goodfellow et al., 2015,
  https://arxiv.org/abs/1412.6572);
- :func:`pgd` — projected gradient descent: many small steps, projected back into the ε
  ball (Madry et al., 2018, https://arxiv.org/abs/1706.06083), untargeted or targeted;
- :func:`fool` — targeted PGD that turns any picture into class X with an imperceptible
  change, stopping once the target probability reaches ``confidence``.

Every attack works on pictures in [0, 1] at the model's input size and reports
success, the L∞ and L2 norms of the change and the change itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from convscope.models.model import Model, as_model
from convscope.render.colormaps import normalize
from convscope.render.layout import grid, stack, text_picture, titled
from convscope.render.picture import Picture
from convscope.reprs import short_repr
from convscope.synthesis.loop import evaluate, optimise
from convscope.synthesis.objectives import class_log_probability
from convscope.synthesis.params import perturbed
from convscope.validation import positive_number


@dataclass
class AttackResult:
    """Originals and adversarial pictures ``[B,3,H,W]`` with the model's verdicts before and after.

    ``targets`` are the wanted classes (targeted) or ``None``; ``labels`` the classes the
    attack moves away from (untargeted). ``success`` is per image: the top class became
    the target (targeted) or left the label (untargeted).
    """

    __repr__ = short_repr

    method: str
    originals: Tensor
    adversarials: Tensor
    labels: Tensor
    targets: Tensor | None
    before: Tensor
    after: Tensor
    epsilon: float
    norm: str
    class_names: list[str]
    steps: int

    @property
    def perturbations(self) -> Tensor:
        """Adversarial minus original pictures ``[B,3,H,W]``."""
        return self.adversarials - self.originals

    @property
    def linf(self) -> Tensor:
        """Largest change per pixel (L∞) of each picture ``[B]``."""
        return self.perturbations.flatten(1).abs().amax(1)

    @property
    def l2(self) -> Tensor:
        """L2 norm of each picture's change ``[B]``."""
        return self.perturbations.flatten(1).norm(dim=1)

    @property
    def predictions(self) -> Tensor:
        """The class predicted for each adversarial picture ``[B]``."""
        return self.after.argmax(1)

    @property
    def success(self) -> Tensor:
        """Per picture: the target class reached (targeted) or the label changed (untargeted)."""
        if self.targets is not None:
            return self.predictions == self.targets
        return self.predictions != self.labels

    @property
    def success_rate(self) -> float:
        """Share of pictures where the attack succeeded."""
        return float(self.success.float().mean())

    def target_probability(self) -> Tensor:
        """Final probability of the target class (targeted) or of the label (untargeted)."""
        classes = self.targets if self.targets is not None else self.labels
        return self.after.softmax(1).gather(1, classes[:, None])[:, 0]

    def lines(self) -> list[str]:
        """A summary line, then one line per picture: class before → after, probabilities and norms."""
        names = self.class_names
        budget = f"{self.epsilon * 255:.3g}/255" if self.norm == "linf" else f"{self.epsilon:.3g}"
        out = [f"{self.method}: ε = {budget} ({self.norm}), success {int(self.success.sum())}/"
               f"{len(self.success)} = {self.success_rate:.0%}"]
        p_before, p_after = self.before.softmax(1), self.after.softmax(1)
        for b in range(len(self.originals)):
            was, now = int(self.before[b].argmax()), int(self.predictions[b])
            goal = f"; target {names[int(self.targets[b])]} p = {float(self.target_probability()[b]):.4f}" \
                if self.targets is not None else ""
            out.append(f"  {b}: {names[was]} ({float(p_before[b, was]):.3f}) → {names[now]} "
                       f"({float(p_after[b, now]):.3f}){goal}; L∞ = {float(self.linf[b]) * 255:.2f}/255, "
                       f"L2 = {float(self.l2[b]):.3f}")
        return out

    def picture(self, magnify: float | None = None, tile_size: int = 192) -> Picture:
        """Per image: original | change, magnified around mid-grey | adversarial, with the verdicts."""
        names = self.class_names
        change = self.perturbations
        if magnify is None:
            shown = normalize(change, "symmetric", dims=3)
            how = "scaled"
        else:
            shown = (0.5 + magnify * change).clamp(0, 1)
            how = f"×{magnify:g}"
        rows = []
        p_before, p_after = self.before.softmax(1), self.after.softmax(1)
        for b in range(len(self.originals)):
            was, now = int(self.before[b].argmax()), int(self.predictions[b])
            tiles = torch.stack([self.originals[b], shown[b], self.adversarials[b]])
            labels = [f"{names[was]} {float(p_before[b, was]):.2f}", f"change ({how})",
                      f"{names[now]} {float(p_after[b, now]):.2f}"]
            rows.append(grid(tiles, labels=labels, tile_size=tile_size, columns=3,
                             flagged=[False, False, bool(self.success[b])]))
        body = stack(rows, direction="vertical", gap=6)
        return titled(stack([body, text_picture(self.lines()[1:], size=11)], direction="vertical", gap=4),
                      f"Adversarial images: {self.method}", self.lines()[0])

    def _repr_png_(self) -> bytes:
        return self.picture()._repr_png_()


def fgsm(model: Model | nn.Module, pictures: Tensor | Sequence[Tensor], epsilon: float = 2 / 255, *,
         labels: int | str | Sequence[int | str] | None = None, target: int | str | Sequence | None = None,
         fit: bool = True) -> AttackResult:
    """Fast gradient sign method: x + ε·sign(∇ₓ loss), one step, clipped to [0, 1].

    Untargeted (default) it raises the cross-entropy of ``labels`` (default: the model's
    own predictions); with ``target`` it lowers the target's cross-entropy instead.
    """
    return pgd(model, pictures, epsilon, step=epsilon, steps=1, labels=labels, target=target, norm="linf",
               random_start=False, fit=fit, progress=False, method="FGSM")


def pgd(model: Model | nn.Module, pictures: Tensor | Sequence[Tensor], epsilon: float = 4 / 255, *,
        step: float | None = None, steps: int = 20, norm: str = "linf",
        labels: int | str | Sequence[int | str] | None = None, target: int | str | Sequence | None = None,
        random_start: bool = True, confidence: float | None = None, generator: torch.Generator | None = None,
        fit: bool = True, progress: bool = True, method: str = "PGD") -> AttackResult:
    """Projected gradient descent inside the ε ball (``linf`` or ``l2``) — the loop with signed
    (L∞) or plain (L2) steps and a perturbation parameterisation.

    ``step`` defaults to ε/4 (L∞) or ε/4 along the normalised gradient (L2). With
    ``confidence`` a targeted attack stops once every target probability reaches it.
    """
    model = as_model(model)
    if norm not in ("linf", "l2"):
        raise ValueError(f"norm is 'linf' or 'l2', got {norm!r}")
    epsilon = positive_number(epsilon, "epsilon")  # NaN and ∞ too: they would run and change nothing sensible
    if norm == "linf" and epsilon > 1:
        raise ValueError(f"an L∞ epsilon is a change of pixels in [0, 1]: it must lie in (0, 1], got {epsilon:g} "
                         "(e.g. 2/255)")
    originals = _batch(model, pictures, fit)
    before = evaluate(model, originals)
    count = originals.shape[0]
    names = model.classes(before.shape[1])
    label_ids = _classes(model, labels, count) if labels is not None else before.argmax(1).cpu()
    target_ids = _classes(model, target, count) if target is not None else None
    objective = (class_log_probability(tuple(target_ids.tolist())) if target_ids is not None
                 else -class_log_probability(tuple(label_ids.tolist())))
    step = step if step is not None else epsilon / 4
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    param = perturbed(originals, epsilon, norm=norm, random_start=random_start, generator=generator)
    stop = None
    if confidence is not None and target_ids is not None:
        wanted = target_ids.to(model.device)

        def stop(step_index: int, values: Tensor, output: Tensor | None) -> bool:
            assert output is not None, "the objective reads the output, so every pass runs to it"
            return bool((output.softmax(1).gather(1, wanted[:, None]) >= confidence).all())

    result = optimise(model, objective, param, steps=steps, lr=step, optimizer="sign" if norm == "linf" else
                      "normalised", generator=generator, progress=progress, stop=stop, description=method.lower())
    adversarials = result.images
    after = evaluate(model, adversarials)
    return AttackResult(method, originals.cpu(), adversarials, label_ids.cpu(),
                        None if target_ids is None else target_ids.cpu(), before.cpu(), after.cpu(), epsilon, norm,
                        names, result.steps)


def fool(model: Model | nn.Module, pictures: Tensor | Sequence[Tensor], target: int | str | Sequence, *,
         epsilon: float = 2 / 255, steps: int = 100, confidence: float = 0.99, fit: bool = True,
         generator: torch.Generator | None = None, progress: bool = True) -> AttackResult:
    """Turn ``pictures`` into class ``target`` with a change of at most ``epsilon`` per pixel (L∞).

    Targeted PGD with steps of ε/8 that stops once every target probability reaches
    ``confidence`` (default 0.99) or after ``steps``.
    """
    return pgd(model, pictures, epsilon, step=epsilon / 8, steps=steps, norm="linf", target=target,
               random_start=False, confidence=confidence, generator=generator, fit=fit, progress=progress,
               method="targeted PGD")


def _batch(model: Model, pictures: Tensor | Sequence[Tensor], fit: bool) -> Tensor:
    if isinstance(pictures, Tensor) and pictures.dim() == 3:
        pictures = pictures[None]
    if fit:
        pictures = model.preprocess.fit(pictures)
    elif not isinstance(pictures, Tensor) or pictures.dim() != 4 or pictures.shape[1] not in (1, 3):
        raise ValueError("with fit=False give one batch [B,3,H,W] (or [B,1,H,W]) in [0, 1] at the model's input size")
    # grey pictures (a one-channel model) are attacked as three equal channels; the model reads their luminance
    return pictures.float().expand(-1, 3, -1, -1).contiguous().to(model.device)


def _classes(model: Model, spec: int | str | Sequence[int | str] | Tensor, count: int) -> Tensor:
    if isinstance(spec, Tensor):
        spec = spec.reshape(-1).tolist()
    items = [spec] if isinstance(spec, int | str) else list(spec)
    indices = torch.tensor([model.class_index(item) for item in items])
    if len(indices) == 1:
        return indices.expand(count).clone()
    if len(indices) != count:
        raise ValueError(f"{len(indices)} classes were given for {count} pictures; give one for all or one each")
    return indices

