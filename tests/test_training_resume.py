"""A training run stopped after an epoch continues from its checkpoint to the same weights as one never stopped."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from convscope.data import has_fashion_mnist
from convscope.models.fashion import FashionArchitecture
from convscope.models.fashion_training import TrainingSettings, train_fashion_cnn

pytestmark = pytest.mark.skipif(not has_fashion_mnist(), reason="needs Fashion-MNIST")
SETTINGS = TrainingSettings(epochs=2, batch_size=64, seed=3, train_pictures=256, test_pictures=64, noise_std=0.1,
                            architecture=FashionArchitecture(channels=(4, 8), fc=0))


class Killed(Exception):
    pass


def quiet(line: str) -> None:
    pass


def killed_after_epoch_one(line: str) -> None:
    if line.startswith("epoch 1:"):  # the checkpoint of epoch 1 is written, epoch 2 not begun
        raise Killed


def test_a_stopped_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path):
    whole = train_fashion_cnn(tmp_path / "whole", SETTINGS, progress=False, log=quiet)
    with pytest.raises(Killed):
        train_fashion_cnn(tmp_path / "stopped", SETTINGS, progress=False, log=killed_after_epoch_one)
    assert not (tmp_path / "stopped" / "epoch_02.pt").exists()
    with pytest.raises(ValueError, match="already holds an earlier training run"):  # no silent restart
        train_fashion_cnn(tmp_path / "stopped", SETTINGS, progress=False, log=quiet)
    resumed = train_fashion_cnn(tmp_path / "stopped", SETTINGS, progress=False, log=quiet, resume=True)
    for name, value in whole.model.net.state_dict().items():
        assert torch.equal(value, resumed.model.net.state_dict()[name]), name
    assert [r.epoch for r in resumed.history] == [0, 1, 2]
    assert resumed.test_accuracy == whole.test_accuracy
    assert (tmp_path / "stopped" / "history.csv").read_text().count("\n") == 4


def test_what_cannot_be_resumed_is_refused(tmp_path):
    train_fashion_cnn(tmp_path / "run", SETTINGS, progress=False, log=quiet)
    with pytest.raises(ValueError, match="finished"):
        train_fashion_cnn(tmp_path / "run", SETTINGS, progress=False, log=quiet, resume=True)
    with pytest.raises(ValueError, match="other settings"):
        train_fashion_cnn(tmp_path / "run", replace(SETTINGS, epochs=3, seed=4), progress=False, log=quiet,
                          resume=True)
    fresh = train_fashion_cnn(tmp_path / "new", SETTINGS, progress=False, log=quiet, resume=True)  # nothing there yet
    assert [r.epoch for r in fresh.history] == [0, 1, 2]
