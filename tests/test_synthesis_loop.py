"""The optimise loop on the tiny fixed-weight model: progress, seeds, batches, model state, errors."""

from __future__ import annotations

import pytest
import torch

from convscope.synthesis import objectives as O
from convscope.synthesis import params as P
from convscope.synthesis import transforms as T
from convscope.synthesis.loop import evaluate, optimise
from convscope.synthesis.optimizers import NormalisedStep, SignStep, make_optimizer
from convscope.synthesis.regularisers import Blur, l2


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_loss_drops_within_a_few_steps(tiny_model):
    result = optimise(tiny_model, O.class_score(0), P.pixels(8, generator=seeded()), steps=5, lr=0.1,
                      progress=False)
    assert result.losses.shape == (5, 1)
    assert result.losses[-1, 0] < result.losses[0, 0] - 0.1
    assert result.images.shape == (1, 3, 8, 8) and result.images.device.type == "cpu"


def test_the_same_seed_repeats_a_run_exactly(tiny_model):
    def run(seed):
        g = seeded(seed)
        return optimise(tiny_model, O.class_score(2), P.pixels(12, generator=g), steps=4,
                        transforms=T.standard(0.25), generator=g, progress=False).images

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


def test_batched_equals_unbatched(tiny_model):
    start = torch.rand(2, 3, 12, 12, generator=seeded())
    objective = O.class_score((0, 2)) - 1e-3 * l2()
    batched = optimise(tiny_model, objective, P.from_image(start), steps=4, transforms=[T.Jitter(2)],
                       generator=seeded(1), progress=False)
    singles = [optimise(tiny_model, O.class_score(c) - 1e-3 * l2(), P.from_image(start[i]), steps=4,
                        transforms=[T.Jitter(2)], generator=seeded(1), progress=False) for i, c in enumerate((0, 2))]
    assert torch.allclose(batched.images, torch.cat([s.images for s in singles]), atol=1e-6)
    assert torch.allclose(batched.losses, torch.cat([s.losses for s in singles], 1), atol=1e-5)


def test_the_model_is_left_as_found_even_when_the_objective_raises(tiny_model):
    net = tiny_model.net.train()
    net.fc.weight.requires_grad_(False)
    state = {k: v.clone() for k, v in net.state_dict().items()}

    def explode(e):
        raise RuntimeError("boom")

    for objective in (O.channel("relu", 0), O.Objective(explode, ("conv",))):
        try:
            optimise(tiny_model, objective, P.pixels(8), steps=2, progress=False)
        except RuntimeError:
            pass
        assert net.training and net.relu.inplace
        assert not net.fc.weight.requires_grad and net.conv.weight.requires_grad
        assert all(not m._forward_hooks for m in net.modules())
        assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())
        assert net.conv.weight.grad is None


def test_layer_objectives_stop_the_forward_pass_early_without_changing_the_result(tiny_model):
    calls = []
    handle = tiny_model.net.fc.register_forward_hook(lambda module, inputs, output: calls.append(1))
    try:
        start = torch.rand(1, 3, 8, 8, generator=seeded())
        early = optimise(tiny_model, O.channel("relu", 0), P.from_image(start), steps=3, progress=False)
        assert calls == []
        full = optimise(tiny_model, O.channel("relu", 0) + 0 * O.class_score(0), P.from_image(start), steps=3,
                        progress=False)
        assert len(calls) == 3
    finally:
        handle.remove()
    assert torch.equal(early.images, full.images)
    assert [len(m._forward_hooks) for m in tiny_model.net.modules()] == [0] * len(list(tiny_model.net.modules()))


def test_snapshots_and_early_stop(tiny_model):
    result = optimise(tiny_model, O.class_score(0), P.pixels(8), steps=6, snapshots=2, progress=False)
    assert sorted(result.snapshots) == [2, 4, 6]
    stopped = optimise(tiny_model, O.class_score(0), P.pixels(8), steps=50, progress=False,
                       stop=lambda step, values, output: step == 2)
    assert stopped.steps == 3
    assert result.snapshot_picture().size[0] > 0


def test_step_rules_and_lbfgs_run(tiny_model):
    blurred = optimise(tiny_model, O.class_score(0), P.pixels(8), steps=3, step_rules=[Blur(1.0, 1)],
                       progress=False)
    assert blurred.images.shape == (1, 3, 8, 8)
    lbfgs = optimise(tiny_model, O.class_score(0), P.pixels(8), steps=3, lr=0.5, optimizer="lbfgs",
                     progress=False)
    assert lbfgs.losses[-1, 0] < lbfgs.losses[0, 0]


def test_bad_arguments_say_how_to_fix_them(tiny_model):
    with pytest.raises(ValueError, match="steps"):
        optimise(tiny_model, O.class_score(0), P.pixels(8), steps=0)
    with pytest.raises(ValueError, match="unknown optimizer"):
        optimise(tiny_model, O.class_score(0), P.pixels(8), optimizer="rmsprop")
    with pytest.raises(TypeError, match="pixel parameterisation"):
        optimise(tiny_model, O.class_score(0), P.fourier(8), step_rules=[Blur()])
    with pytest.raises(ValueError, match="unknown layer"):
        optimise(tiny_model, O.channel("conv2", 0), P.pixels(8))
    with pytest.raises(TypeError, match="Optimizer"):
        make_optimizer(lambda params: None, [torch.zeros(1, requires_grad=True)], 0.1)


def test_sign_and_normalised_steps_are_literal():
    p = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    p.grad = torch.tensor([[0.5, -2.0], [0.0, 4.0]])
    SignStep([p], lr=0.1).step()
    assert torch.allclose(p.detach(), torch.tensor([[0.9, 2.1], [3.0, 3.9]]))
    q = torch.tensor([[0.0, 0.0], [0.0, 0.0]], requires_grad=True)
    q.grad = torch.tensor([[1.0, -3.0], [2.0, 2.0]])                  # per-row mean |g|: 2 and 2
    NormalisedStep([q], lr=1.0).step()
    assert torch.allclose(q.detach(), torch.tensor([[-0.5, 1.5], [-1.0, -1.0]]))


def test_evaluate_is_the_model_on_normalised_pictures(tiny_model):
    pictures = torch.rand(2, 3, 8, 8, generator=seeded())
    assert torch.allclose(evaluate(tiny_model, pictures), tiny_model.net(tiny_model.preprocess.normalize(pictures)))
