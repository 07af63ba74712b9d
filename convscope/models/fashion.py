"""A classic small CNN for Fashion-MNIST, in the mould of LeNet and AlexNet.

Three convolution → ReLU → max-pool stages (a large 7×7 first kernel, so its filters can
be read as pictures like AlexNet's 11×11 ones), a hidden fully-connected layer ``fc7``
(256 units, after ReLU the "fc7 code" used for nearest neighbours and t-SNE) and a linear
classifier. ``convscope train`` trains it; trained weights ship in ``models/weights/``.
"""

from __future__ import annotations

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
# Mean and standard deviation of the 60 000 Fashion-MNIST training pixels (in [0, 1]).
FASHION_MEAN, FASHION_STD = 0.2860, 0.3530
FASHION_PREPROCESS = Preprocess(resize=28, crop=28, mean=(FASHION_MEAN,), std=(FASHION_STD,), channels=1)


class FashionCNN(nn.Module):
    """``[B,1,28,28]`` → class scores ``[B,10]``.

    conv1 7×7 (32) → relu1 → pool1 (14×14) → conv2 3×3 (64) → relu2 → pool2 (7×7) →
    conv3 3×3 (128) → relu3 → pool3 (3×3) → flatten → fc7 (256) → relu7 → dropout7 → classifier.
    """

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=7, padding=3)
        self.relu1 = nn.ReLU(inplace=True)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
        self.relu2 = nn.ReLU(inplace=True)
        self.pool2 = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(64, 128, kernel_size=3, padding=1)
        self.relu3 = nn.ReLU(inplace=True)
        self.pool3 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc7 = nn.Linear(128 * 3 * 3, 256)
        self.relu7 = nn.ReLU(inplace=True)
        self.dropout7 = nn.Dropout(0.5)
        self.classifier = nn.Linear(256, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = self.pool3(self.relu3(self.conv3(x)))
        x = self.dropout7(self.relu7(self.fc7(self.flatten(x))))
        return self.classifier(x)


def fashion_model(state_dict: dict[str, Tensor] | None = None) -> Model:
    """The Fashion-MNIST CNN with ``state_dict``, or the shipped trained weights when none is given."""
    net = FashionCNN()
    if state_dict is None:
        if not SHIPPED_WEIGHTS.is_file():
            raise ValueError(f"the trained {FASHION_MODEL} weights are missing ({SHIPPED_WEIGHTS}); train them with "
                             "`convscope train --out runs/fashion_cnn` and pass --weights runs/fashion_cnn/epoch_NN.pt")
        from convscope.models.loading import read_state_dict

        state_dict = read_state_dict(SHIPPED_WEIGHTS)
    try:
        net.load_state_dict(state_dict)
    except RuntimeError as error:
        first = " ".join(str(error).splitlines()[:3])
        raise ValueError(f"these weights do not fit {FASHION_MODEL}: {first}") from error
    return Model(net.eval(), preprocess=FASHION_PREPROCESS, class_names=list(FASHION_CLASSES), name=FASHION_MODEL)


def untrained_fashion_model(seed: int = 0) -> Model:
    """A freshly initialised Fashion-MNIST CNN (``torch.manual_seed(seed)`` decides its weights)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = FashionCNN()
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
