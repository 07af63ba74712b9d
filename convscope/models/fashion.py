"""A classic small CNN for Fashion-MNIST, in the mould of LeNet and AlexNet.

Three convolution → ReLU → max-pool stages (a large 7×7 first kernel, so its filters can
be read as pictures like AlexNet's 11×11 ones), a hidden fully-connected layer ``fc7``
(256 units, after ReLU the "fc7 code" used for nearest neighbours and t-SNE) and a linear
classifier. ``convscope train`` trains it; trained weights ship in ``models/weights/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from convscope.data.fashion_mnist import FASHION_CLASSES
from convscope.models.model import Model
from convscope.models.preprocessing import Preprocess

FASHION_MODEL = "fashion_cnn"
SHIPPED_WEIGHTS = Path(__file__).parent / "weights" / "fashion_cnn.pt"
# The data randomisation pair: the same CNN trained on the first 1 000 training pictures with their true
# labels and with the labels permuted at random (the README's `convscope train` commands made them).
LABEL_PAIR_WEIGHTS = {"true labels": SHIPPED_WEIGHTS.with_name("fashion_cnn_1k_true_labels.pt"),
                      "random labels": SHIPPED_WEIGHTS.with_name("fashion_cnn_1k_random_labels.pt")}
# Trained on PGD examples (Madry et al. 2018): `convscope train --adversarial --epsilon 0.1 --attack-steps 5
# --train-pictures 5000 --test-pictures 1000 --epochs 3`, its epoch_03.pt (72.8 % on the first 1 000 test pictures).
ROBUST_WEIGHTS = SHIPPED_WEIGHTS.with_name("fashion_cnn_robust_5k.pt")
# Mean and standard deviation of the 60 000 Fashion-MNIST training pixels (in [0, 1]).
FASHION_MEAN, FASHION_STD = 0.2860, 0.3530
SIDE = 28  # Fashion-MNIST pictures are 28×28
FASHION_PREPROCESS = Preprocess(resize=28, crop=28, mean=(FASHION_MEAN,), std=(FASHION_STD,), channels=1)


@dataclass(frozen=True)
class FashionArchitecture:
    """What ``FashionCNN`` is built from: the convolution widths, the first layer's kernel and stride, ``fc``.

    Every convolution is followed by a ReLU and a 2×2 max-pool (skipped once the map is 1×1); the first
    has a ``kernel1``×``kernel1`` kernel with stride ``stride1``, the others 3×3 with stride 1 (padding
    keeps the size). ``fc`` is the width of the hidden fully connected layer ``fc7`` (0: none, the
    classifier reads the pooled maps directly). The default is the shipped network.
    """

    channels: tuple[int, ...] = (32, 64, 128)
    kernel1: int = 7
    stride1: int = 1
    fc: int = 256

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if not self.channels or any(c < 1 for c in self.channels):
            raise ValueError(f"channels need at least one convolution of width ≥ 1, got {list(self.channels)}")
        if self.kernel1 < 1 or self.stride1 < 1:
            raise ValueError(f"kernel1 and stride1 must be at least 1, got {self.kernel1} and {self.stride1}")
        if max(self.kernel1, self.stride1) > SIDE:
            raise ValueError(f"a first layer with a {self.kernel1}×{self.kernel1} kernel and stride {self.stride1} "
                             f"is larger than the {SIDE}×{SIDE} pictures: kernel1 and stride1 must be at most {SIDE}")
        if self.fc < 0:
            raise ValueError(f"fc is a width ≥ 0 (0: no hidden fully connected layer), got {self.fc}")
        if self.sizes()[-1] < 1:
            raise ValueError(f"a {self.kernel1}×{self.kernel1} first kernel with stride {self.stride1} leaves "
                             "no picture for the later layers; use a smaller stride")

    def sizes(self, side: int = 28) -> list[int]:
        """Side of the map after each convolution + pool stage, for ``side``×``side`` pictures."""
        out = []
        for index in range(len(self.channels)):
            kernel, stride = (self.kernel1, self.stride1) if index == 0 else (3, 1)
            side = (side + 2 * (kernel // 2) - kernel) // stride + 1
            side = side // 2 if side >= 2 else side
            out.append(side)
        return out

    def describe(self) -> str:
        """e.g. ``conv 7×7/1 32-64-128, fc 256``."""
        fc = f"fc {self.fc}" if self.fc else "no fc"
        return f"conv {self.kernel1}×{self.kernel1}/{self.stride1} {'-'.join(map(str, self.channels))}, {fc}"


DEFAULT_ARCHITECTURE = FashionArchitecture()


class FashionCNN(nn.Module):
    """``[B,1,28,28]`` → class scores ``[B,10]``.

    Default: conv1 7×7 (32) → relu1 → pool1 (14×14) → conv2 3×3 (64) → relu2 → pool2 (7×7) →
    conv3 3×3 (128) → relu3 → pool3 (3×3) → flatten → fc7 (256) → relu7 → dropout7 → classifier;
    ``architecture`` changes widths, depth, the first layer and ``fc7`` with the same layer names.
    """

    def __init__(self, classes: int = 10, architecture: FashionArchitecture = DEFAULT_ARCHITECTURE) -> None:
        super().__init__()
        self.architecture = architecture
        sizes = architecture.sizes()
        inputs, side = 1, 28
        for index, width in enumerate(architecture.channels, start=1):
            kernel, stride = (architecture.kernel1, architecture.stride1) if index == 1 else (3, 1)
            self.add_module(f"conv{index}", nn.Conv2d(inputs, width, kernel_size=kernel, stride=stride,
                                                      padding=kernel // 2))
            self.add_module(f"relu{index}", nn.ReLU(inplace=True))
            side = (side + 2 * (kernel // 2) - kernel) // stride + 1
            self.add_module(f"pool{index}", nn.MaxPool2d(2) if side >= 2 else nn.Identity())
            inputs, side = width, sizes[index - 1]
        self.flatten = nn.Flatten()
        features = inputs * side * side
        if architecture.fc:
            self.fc7 = nn.Linear(features, architecture.fc)
            self.relu7 = nn.ReLU(inplace=True)
            self.dropout7 = nn.Dropout(0.5)
            features = architecture.fc
        self.classifier = nn.Linear(features, classes)

    def forward(self, x: Tensor) -> Tensor:
        for index in range(1, len(self.architecture.channels) + 1):
            x = getattr(self, f"pool{index}")(getattr(self, f"relu{index}")(getattr(self, f"conv{index}")(x)))
        x = self.flatten(x)
        if self.architecture.fc:
            x = self.dropout7(self.relu7(self.fc7(x)))
        return self.classifier(x)


STRIDE_KEY = "architecture.stride1"  # saved beside the weights: the one thing their shapes cannot tell


def architecture_of(state_dict: dict[str, Tensor]) -> FashionArchitecture:
    """The architecture whose parameters ``state_dict`` holds.

    Widths, depth, ``fc`` and the first kernel come from the shapes; the first stride from the entry
    ``architecture.stride1`` that ``convscope train`` saves, or else from the classifier's input size —
    refused when several strides would fit it.
    """
    convs = sorted((int(k[4:-7]), v) for k, v in state_dict.items()
                   if k.startswith("conv") and k.endswith(".weight") and k[4:-7].isdigit())
    if not convs or "classifier.weight" not in state_dict:
        raise ValueError(f"these weights do not fit {FASHION_MODEL}: no conv1.weight / classifier.weight")
    channels = tuple(int(w.shape[0]) for _, w in convs)
    kernel1 = int(convs[0][1].shape[-1])
    fc = int(state_dict["fc7.weight"].shape[0]) if "fc7.weight" in state_dict else 0
    if STRIDE_KEY in state_dict:
        return FashionArchitecture(channels, kernel1, int(state_dict[STRIDE_KEY]), fc)
    flat = int((state_dict["fc7.weight"] if fc else state_dict["classifier.weight"]).shape[1])
    fitting = []
    for stride in range(1, 29):
        try:
            candidate = FashionArchitecture(channels, kernel1, stride, fc)
        except ValueError:
            break
        if channels[-1] * candidate.sizes()[-1] ** 2 == flat:
            fitting.append(candidate)
    if len(fitting) != 1:
        why = "no first-layer stride fits" if not fitting else \
            f"first-layer strides {[a.stride1 for a in fitting]} all fit"
        raise ValueError(f"these weights do not fit {FASHION_MODEL} unambiguously: {why} {flat} inputs to "
                         f"{'fc7' if fc else 'the classifier'}; save them with `convscope train`, which records "
                         f"the stride as {STRIDE_KEY!r}")
    return fitting[0]


def fashion_model(state_dict: dict[str, Tensor] | None = None) -> Model:
    """The Fashion-MNIST CNN with ``state_dict``, or the shipped trained weights when none is given."""
    if state_dict is None:
        if not SHIPPED_WEIGHTS.is_file():
            raise ValueError(f"the trained {FASHION_MODEL} weights are missing ({SHIPPED_WEIGHTS}); train them with "
                             "`convscope train --out runs/fashion_cnn` and pass --weights runs/fashion_cnn/epoch_NN.pt")
        from convscope.models.loading import read_state_dict

        state_dict = read_state_dict(SHIPPED_WEIGHTS)
    net = FashionCNN(architecture=architecture_of(state_dict))
    state_dict = {k: v for k, v in state_dict.items() if k != STRIDE_KEY}
    try:
        net.load_state_dict(state_dict)
    except RuntimeError as error:
        first = " ".join(str(error).splitlines()[:3])
        raise ValueError(f"these weights do not fit {FASHION_MODEL}: {first}") from error
    return Model(net.eval(), preprocess=FASHION_PREPROCESS, class_names=list(FASHION_CLASSES), name=FASHION_MODEL)


def untrained_fashion_model(seed: int = 0, architecture: FashionArchitecture = DEFAULT_ARCHITECTURE) -> Model:
    """A freshly initialised Fashion-MNIST CNN (``torch.manual_seed(seed)`` decides its weights)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = FashionCNN(architecture=architecture)
    return Model(net, preprocess=FASHION_PREPROCESS, class_names=list(FASHION_CLASSES), name=FASHION_MODEL)


def label_randomisation_pair() -> tuple[Model, Model]:
    """The shipped Fashion-MNIST CNNs trained on the same 1 000 pictures with true and with permuted labels.

    The second memorised its random labels (96.8 % training accuracy, chance on the test set) — the
    pair for the data randomisation test of Adebayo et al. 2018 (https://arxiv.org/abs/1810.03292).
    """
    from dataclasses import replace

    from convscope.models.fashion_training import LABEL_PAIR_SETTINGS, train_command
    from convscope.models.loading import read_state_dict

    models = []
    for kind, path in LABEL_PAIR_WEIGHTS.items():
        if not path.is_file():
            settings = replace(LABEL_PAIR_SETTINGS, shuffle_labels=kind == "random labels")
            raise ValueError(f"the {kind} weights are missing ({path}); make them with "
                             f"`{train_command(settings, 'runs/' + path.stem)}` and copy its "
                             f"epoch_{settings.epochs:02d}.pt there")
        model = fashion_model(read_state_dict(path))
        model.name = f"{FASHION_MODEL} ({kind}, 1k pictures)"
        models.append(model)
    return models[0], models[1]
