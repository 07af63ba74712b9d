"""The ablation's architecture specification, first-layer measures and study (Zeiler & Fergus §5)."""

from __future__ import annotations

import math
import re
import statistics

import pytest
import torch
from torch import nn

from convscope.analysis.ablation import ABLATION_VARIANTS, ablation_study, parameter_count
from convscope.analysis.filter_measures import high_frequency_energy, near_zero_filters
from convscope.analysis.spread import mean_std, plus_minus
from convscope.data.fashion_mnist import has_fashion_mnist
from convscope.models import load_model
from convscope.models.fashion import STRIDE_KEY, FashionArchitecture, FashionCNN, architecture_of, fashion_model
from convscope.models.fashion_training import TrainingSettings, train_command

needs_fashion_mnist = pytest.mark.skipif(not has_fashion_mnist(), reason="Fashion-MNIST is not installed "
                                                                         "(scripts/setup installs it)")


def test_parameter_counts_by_hand() -> None:
    conv1, conv2, conv3 = 1 * 32 * 49 + 32, 32 * 64 * 9 + 64, 64 * 128 * 9 + 128
    assert parameter_count(ABLATION_VARIANTS["baseline"]) == conv1 + conv2 + conv3 + (128 * 9 * 256 + 256) + 2570
    assert parameter_count(ABLATION_VARIANTS["no-fc7"]) == conv1 + conv2 + conv3 + (128 * 9 * 10 + 10)
    # 11×11 stride 4 (padding 5): 28 → 7 → pool 3 → conv2 3 → pool 1 → conv3 1 (no pool): fc7 reads 128 values
    assert parameter_count(ABLATION_VARIANTS["conv1-11x11-stride4"]) == (121 * 32 + 32) + conv2 + conv3 \
        + (128 * 256 + 256) + 2570
    # without conv3 fc7 reads 64 maps of 7×7
    assert parameter_count(ABLATION_VARIANTS["no-conv3"]) == conv1 + conv2 + (64 * 49 * 256 + 256) + 2570
    assert parameter_count(ABLATION_VARIANTS["narrow"]) == (49 * 16 + 16) + (16 * 32 * 9 + 32) + (32 * 64 * 9 + 64) \
        + (64 * 9 * 128 + 128) + (128 * 10 + 10)


def test_layer_structure_of_variants() -> None:
    names = [n for n, _ in FashionCNN(architecture=ABLATION_VARIANTS["no-conv3"]).named_children()]
    assert names == ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten", "fc7", "relu7", "dropout7",
                     "classifier"]
    names = [n for n, _ in FashionCNN(architecture=ABLATION_VARIANTS["no-fc7"]).named_children()]
    assert names == ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "conv3", "relu3", "pool3", "flatten",
                     "classifier"]
    strided = FashionCNN(architecture=ABLATION_VARIANTS["conv1-11x11-stride4"])
    assert (strided.conv1.kernel_size, strided.conv1.stride, strided.conv1.padding) == ((11, 11), (4, 4), (5, 5))
    assert isinstance(strided.pool3, nn.Identity) and isinstance(strided.pool2, nn.MaxPool2d)
    assert ABLATION_VARIANTS["conv1-11x11-stride4"].sizes() == [3, 1, 1]
    assert strided(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    wide = FashionCNN(architecture=ABLATION_VARIANTS["wide"])
    assert [wide.conv1.out_channels, wide.conv2.out_channels, wide.conv3.out_channels, wide.fc7.out_features] == \
        [64, 128, 256, 512]


def test_architecture_validation() -> None:
    with pytest.raises(ValueError, match="kernel1 and stride1"):
        FashionArchitecture(kernel1=7, stride1=0)
    with pytest.raises(ValueError, match="at least one convolution"):
        FashionArchitecture(channels=())
    with pytest.raises(ValueError, match="fc"):
        FashionArchitecture(fc=-1)


def test_architecture_from_weights() -> None:
    for architecture in ABLATION_VARIANTS.values():
        state = FashionCNN(architecture=architecture).state_dict()
        state[STRIDE_KEY] = torch.tensor(architecture.stride1)
        assert architecture_of(state) == architecture
        assert fashion_model(state).net.architecture == architecture
    # without the saved stride a stride-2 network is ambiguous (stride 3 gives the same shapes): refused
    state = FashionCNN(architecture=ABLATION_VARIANTS["conv1-7x7-stride2"]).state_dict()
    with pytest.raises(ValueError, match="unambiguously"):
        architecture_of(state)
    assert load_model("fashion_cnn").net.architecture == FashionArchitecture()  # the shipped weights still load


def test_train_command_names_the_architecture() -> None:
    settings = TrainingSettings(architecture=ABLATION_VARIANTS["conv1-11x11-stride4"], adversarial_epsilon=0.1)
    command = train_command(settings, "runs/x")
    assert "--kernel1 11 --stride1 4" in command and "--defence adversarial --epsilon 0.1" in command


def test_high_frequency_energy_known_filters() -> None:
    y, x = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    filters = torch.stack([torch.ones(8, 8),                     # constant: all energy at 0
                           (-1.0) ** (x + y),                    # checkerboard: all at (0.5, 0.5)
                           (-1.0) ** x,                          # stripes at Nyquist along x: radius 1
                           torch.cos(2 * math.pi * x / 8),       # 1/8 cycle per pixel: radius 0.25
                           torch.zeros(8, 8)])[:, None]
    assert high_frequency_energy(filters).tolist() == pytest.approx([0, 1, 1, 0, 0], abs=1e-6)
    # a mix: equal energy in a constant and a checkerboard → one half above the cut-off
    assert float(high_frequency_energy((torch.ones(8, 8) + (-1.0) ** (x + y))[None, None])) == pytest.approx(0.5)
    # white noise: the share of frequencies outside radius 0.25 cycles/px, 1 − π/16 of the square
    noise = torch.randn(2000, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    assert float(high_frequency_energy(noise).mean()) == pytest.approx(1 - math.pi / 16, abs=0.02)


def test_near_zero_filters() -> None:
    weight = torch.zeros(4, 1, 2, 2)
    for index, norm in enumerate([1.0, 0.05, 0.5, 0.0]):
        weight[index, 0, 0, 0] = norm
    assert near_zero_filters(weight).tolist() == [False, True, False, True]
    assert near_zero_filters(weight, relative=0.6).tolist() == [False, True, True, True]
    with pytest.raises(ValueError, match="out, in, kh, kw"):
        near_zero_filters(torch.zeros(3, 3))


def test_mean_std_against_statistics() -> None:
    values = [0.12, 0.15, 0.11, 0.2]
    assert mean_std(values) == pytest.approx((statistics.mean(values), statistics.stdev(values)))
    assert math.isnan(mean_std([0.3])[1])
    assert plus_minus([0.1, 0.2]) == f"15.0 ± {statistics.stdev([10, 20]):.1f}"


@needs_fashion_mnist
def test_ablation_study_tiny(tmp_path) -> None:
    settings = TrainingSettings(epochs=1, batch_size=32, train_pictures=64, test_pictures=64)
    result = ablation_study(["narrow", "no-fc7"], seeds=[0, 1], settings=settings, log=lambda _: None)
    assert [(r.variant, r.seed) for r in result.runs] == [("narrow", 0), ("narrow", 1), ("no-fc7", 0), ("no-fc7", 1)]
    rows = {r["variant"]: r for r in result.rows()}
    runs = result.runs_of("narrow")
    assert rows["narrow"]["test_error_mean"] == pytest.approx(statistics.mean(r.test_error for r in runs))
    assert rows["narrow"]["test_error_std"] == pytest.approx(statistics.stdev(r.test_error for r in runs))
    assert rows["narrow"]["parameters"] == parameter_count(ABLATION_VARIANTS["narrow"])
    assert runs[0].first_layer.shape == (16, 1, 7, 7)
    assert runs[0].first_layer.ne(runs[1].first_layer).any()  # seeds give different networks
    assert "| narrow |" in result.markdown() and " ± " in result.markdown()
    assert result.filters_picture().size[0] > 200 and result.picture().size[1] > 100
    with pytest.raises(ValueError, match="unknown variants"):
        ablation_study(["deeper"], settings=settings)


@needs_fashion_mnist
def test_ablate_command(tmp_path) -> None:
    from convscope.cli import main

    assert main(["ablate", "--variants", "narrow", "--seeds", "1", "--epochs", "1", "--train-pictures", "32",
                 "--test-pictures", "32", "--batch-size", "16", "--out", str(tmp_path)]) == 0
    names = {re.sub(r"_[0-9a-f]{6}\.", ".", p.name) for p in tmp_path.iterdir()}
    assert names == {"ablation.csv", "ablation_runs.csv", "ablation.md", "ablation.png", "ablation_filters.png"}
    [table] = tmp_path.glob("ablation_*.md")
    assert "| narrow | conv 7×7/1 16-32-64, fc 128 | 99,082 |" in table.read_text()


def _result(errors: dict[str, list[float]], **settings) -> object:
    from convscope.analysis.ablation import AblationResult, VariantRun

    result = AblationResult({name: ABLATION_VARIANTS[name] for name in errors}, TrainingSettings(**settings))
    result.runs = [VariantRun(name, seed, error, error, 1.0, torch.zeros(2, 1, 7, 7))
                   for name, values in errors.items() for seed, error in enumerate(values)]
    return result


def test_a_short_budget_and_differences_within_noise_are_said() -> None:
    short = _result({"baseline": [0.25, 0.26, 0.24], "no-fc7": [0.245, 0.255, 0.235], "no-conv3": [0.20, 0.21, 0.20]},
                    epochs=2, train_pictures=3000)
    notes = short.caveats()
    assert any("far from converged" in note for note in notes)
    noise = [note for note in notes if "within the seeds' noise" in note]
    assert noise and "no-fc7" in noise[0] and "no-conv3" not in noise[0]  # 5 points with a 0.6-point spread: real
    assert any(line.startswith("Note: short training") for line in short.lines())
    assert "Note: " in short.markdown() and short.picture().size[1] > 0
    full = _result({"baseline": [0.10, 0.11, 0.10], "wide": [0.08, 0.08, 0.081]}, epochs=5)
    assert full.caveats() == []
    single = _result({"baseline": [0.10], "wide": [0.08]}, epochs=5)
    assert single.caveats() == ["one seed: no spread over seeds to tell a difference from noise (--seeds 3 or more)"]
