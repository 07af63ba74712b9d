"""Training the Fashion-MNIST CNN, with a checkpoint per epoch (for feature evolution).

Adam with a cosine learning-rate decay, random horizontal flips, cross-entropy; each
epoch ends with the training and test accuracy and ``epoch_NN.pt`` (``epoch_00.pt`` is the
initialisation). ``shuffle_labels`` trains on a random permutation of the training labels — the
model for the data randomisation test of Adebayo et al. 2018 (https://arxiv.org/abs/1810.03292),
which can only memorise its pictures (training accuracy rises, test accuracy stays at chance).
``architecture`` trains the variants of the Zeiler & Fergus ablation (``convscope ablate``);
``adversarial_epsilon`` trains on PGD examples instead of the pictures (Madry et al. 2018,
https://arxiv.org/abs/1706.06083); ``noise_std`` on noisy pictures and ``representation_layers`` with
feature matching of PGD pictures (:mod:`convscope.models.defence_training`).
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convscope.data.fashion_mnist import FashionMNIST
from convscope.devices import pick_device
from convscope.models.defence_training import noisy_pixels, representation_matching_loss
from convscope.models.fashion import (
    DEFAULT_ARCHITECTURE,
    FASHION_PREPROCESS,
    STRIDE_KEY,
    FashionArchitecture,
    untrained_fashion_model,
)
from convscope.models.model import Model
from convscope.progress import progress_bar
from convscope.reprs import short_repr
from convscope.scan.own_files import OwnFiles

# what a training run writes into its folder
TRAINING_FILES = OwnFiles("train", "history.csv", files=("epoch_*.pt",))


@dataclass(frozen=True)
class TrainingSettings:
    epochs: int = 5
    batch_size: int = 128
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    shuffle_labels: bool = False  # permute the training labels at random (data randomisation test)
    train_pictures: int | None = None  # use only the first N training pictures (default: all 60 000)
    augment: bool = True  # random horizontal flips
    architecture: FashionArchitecture = DEFAULT_ARCHITECTURE
    test_pictures: int | None = None  # measure test accuracy on the first N test pictures (default: all 10 000)
    adversarial_epsilon: float = 0.0  # > 0: train on L∞ PGD examples of this radius (pixels in [0, 1])
    adversarial_steps: int = 7  # PGD steps per batch, each 2.5·ε/steps, from a random start
    measure_every_epoch: bool = True  # False: accuracies only after the last epoch (NaN before; for many runs)
    noise_std: float = 0.0  # > 0: train on pictures with Gaussian pixel noise of this σ (defence "noise")
    representation_layers: tuple[str, ...] = ()  # with adversarial_epsilon: match PGD pictures' features here
    representation_weight: float = 1.0  # weight of the feature matching against the clean cross-entropy

    @property
    def on_pixels(self) -> bool:
        """Whether batches are changed in pixel space (attacks, noise) before being normalised."""
        return self.adversarial_epsilon > 0 or self.noise_std > 0

    @property
    def defence(self) -> str:
        """``none``, ``adversarial``, ``noise`` or ``representation``: what this training defends with."""
        if self.representation_layers:
            return "representation"
        if self.adversarial_epsilon > 0:
            return "adversarial"
        return "noise" if self.noise_std > 0 else "none"

    def __post_init__(self) -> None:
        if isinstance(self.architecture, dict):  # as saved in a checkpoint
            object.__setattr__(self, "architecture", FashionArchitecture(**self.architecture))
        if self.test_pictures is not None and self.test_pictures < 1:
            raise ValueError(f"test_pictures must be at least 1, got {self.test_pictures}")
        if not 0 <= self.adversarial_epsilon <= 1 or self.adversarial_steps < 1:
            raise ValueError(f"adversarial_epsilon is 0 (off) or up to 1 (pixels in [0, 1]), with at least one "
                             f"step; got ε = {self.adversarial_epsilon} and {self.adversarial_steps} steps")
        object.__setattr__(self, "representation_layers", tuple(self.representation_layers))
        if not 0 <= self.noise_std <= 1:
            raise ValueError(f"noise_std is 0 (off) or up to 1 (pixels in [0, 1]), got {self.noise_std}")
        if self.representation_layers and self.adversarial_epsilon == 0:
            raise ValueError("representation matching compares clean and PGD-perturbed pictures: give "
                             "adversarial_epsilon > 0 (--epsilon)")
        if not self.representation_weight >= 0:
            raise ValueError(f"representation_weight must be ≥ 0, got {self.representation_weight}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch size must be at least 1, got {self.epochs} and {self.batch_size}")
        if self.train_pictures is not None and self.train_pictures < 1:
            raise ValueError(f"train_pictures (--train-pictures) must be at least 1, got {self.train_pictures}; "
                             "leave it out to train on all 60 000 pictures")
        if not self.learning_rate > 0:
            raise ValueError(f"the learning rate must be positive, got {self.learning_rate}")


# How the shipped data randomisation pair was trained (with and without ``shuffle_labels``).
LABEL_PAIR_SETTINGS = TrainingSettings(epochs=60, batch_size=32, learning_rate=5e-4, weight_decay=0.0,
                                       train_pictures=1000, augment=False)


def train_command(settings: TrainingSettings, out: str) -> str:
    """The ``convscope train`` command line that trains with ``settings`` into ``out``."""
    words = ["convscope train"]
    if settings.shuffle_labels:
        words.append("--shuffle-labels")
    if settings.train_pictures is not None:
        words.append(f"--train-pictures {settings.train_pictures}")
    if not settings.augment:
        words.append("--no-augment")
    if settings.architecture != DEFAULT_ARCHITECTURE:
        words.append(architecture_options(settings.architecture))
    if settings.test_pictures is not None:
        words.append(f"--test-pictures {settings.test_pictures}")
    if settings.defence == "noise":
        words.append(f"--defence noise --noise {settings.noise_std:g}")
    elif settings.defence in ("adversarial", "representation"):
        words.append(f"--defence {settings.defence} --epsilon {settings.adversarial_epsilon:g} "
                     f"--attack-steps {settings.adversarial_steps}")
        if settings.defence == "representation":
            words.append(f"--defence-layers {' '.join(settings.representation_layers)} "
                         f"--defence-weight {settings.representation_weight:g}")
    words.append(f"--epochs {settings.epochs} --batch-size {settings.batch_size} --lr {settings.learning_rate:g} "
                 f"--weight-decay {settings.weight_decay:g} --seed {settings.seed} --out {out}")
    return " ".join(words)


def architecture_options(architecture: FashionArchitecture) -> str:
    """The ``convscope train`` options that build ``architecture``."""
    a = architecture
    return (f"--channels {' '.join(map(str, a.channels))} --kernel1 {a.kernel1} --stride1 {a.stride1} --fc {a.fc}")


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    train_accuracy: float
    test_accuracy: float
    seconds: float
    checkpoint: str = ""


@dataclass
class TrainingRun:
    """The trained model and one record per epoch (epoch 0 = before training)."""

    __repr__ = short_repr

    model: Model
    history: list[EpochRecord] = field(default_factory=list)

    @property
    def test_accuracy(self) -> float:
        return self.history[-1].test_accuracy


def train_fashion_cnn(out: str | Path | None = None, settings: TrainingSettings = TrainingSettings(), *,
                      root: str | Path | None = None, device: str | torch.device | None = None,
                      progress: bool = True, log: Callable[[str], None] = print,
                      overwrite: bool = False, resume: bool = False) -> TrainingRun:
    """Train :class:`~convscope.models.fashion.FashionCNN` on the 60 000 training pictures.

    With ``out``, writes ``epoch_00.pt`` … ``epoch_NN.pt`` (``{'state_dict', 'epoch',
    'test_accuracy', 'settings'}``, loadable with ``load_model('fashion_cnn', weights=…)``)
    and ``history.csv``. A folder that holds anything is refused unless ``overwrite``, which
    replaces an earlier run's checkpoints and history (other files stay). With ``resume``, a run
    of the same settings that was stopped (killed, interrupted) continues from its last
    checkpoint — weights, optimiser, schedule and random state — and ends with the same
    weights as a run that was never stopped. The global random state is left as it was.
    """
    if settings.representation_layers:  # unknown layers fail here, before any file is written
        from convscope.models.layers import get_layer

        probe = untrained_fashion_model(settings.seed, settings.architecture).net
        for layer in settings.representation_layers:
            get_layer(probe, layer)
    folder = Path(out) if out is not None else None
    resumed = _resumable(folder, settings) if resume and folder is not None else None
    if folder is not None and resumed is None:
        check_training_folder(folder, overwrite)
    device = pick_device(device)
    train_x, train_y = training_pictures(root, settings)
    test_x, test_y = FashionMNIST(root, split="test").tensors()
    if settings.test_pictures is not None:
        test_x, test_y = test_x[:settings.test_pictures], test_y[:settings.test_pictures]
    if not settings.on_pixels:  # attacks and noise change pixels, and each batch is normalised afterwards
        train_x = FASHION_PREPROCESS.normalize(train_x)
    test_x = FASHION_PREPROCESS.normalize(test_x)
    train_x, train_y, test_x, test_y = (t.to(device) for t in (train_x, train_y, test_x, test_y))
    if folder is not None and resumed is None:
        folder.mkdir(parents=True, exist_ok=True)
        TRAINING_FILES.clear(folder)  # an earlier run's checkpoints (overwrite): none may be mixed with this run's
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(settings.seed)
        model = untrained_fashion_model(settings.seed, settings.architecture).to(device)
        net = model.net
        generator = torch.Generator(device=device).manual_seed(settings.seed)
        optimizer = torch.optim.Adam(net.parameters(), lr=settings.learning_rate,
                                     weight_decay=settings.weight_decay)
        steps = settings.epochs * math.ceil(len(train_y) / settings.batch_size)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer,
                                                     lambda step: 0.5 * (1 + math.cos(math.pi * step / steps)))
        run = TrainingRun(model)
        state = Resumable(optimizer, schedule, generator, run)
        fitting = _fitting_accuracy(net, train_x, train_y, settings)
        measured = settings.measure_every_epoch
        if resumed is not None:
            net.load_state_dict({k: v for k, v in resumed["state_dict"].items() if k != STRIDE_KEY})
            state.load(resumed["resume"], device)
            log(f"resuming {folder} after epoch {int(resumed['epoch'])}")
        else:
            run.history.append(_record(run, 0, math.nan, fitting() if measured else math.nan,
                                       evaluate_accuracy(net, test_x, test_y) if measured else math.nan, 0.0, folder,
                                       settings, state))
            log(f"epoch 0: test accuracy {run.history[-1].test_accuracy:.2%} (initialisation)")
        first = 1 if resumed is None else int(resumed["epoch"]) + 1
        for epoch in range(first, settings.epochs + 1):
            began = time.perf_counter()
            loss = _train_epoch(model, optimizer, schedule, train_x, train_y, settings, generator,
                                progress, f"epoch {epoch}/{settings.epochs}")
            fitted, accuracy = math.nan, math.nan
            if settings.measure_every_epoch or epoch == settings.epochs:
                fitted, accuracy = fitting(), evaluate_accuracy(net, test_x, test_y)
            record = _record(run, epoch, loss, fitted, accuracy, time.perf_counter() - began, folder, settings,
                             state)
            run.history.append(record)
            if folder is not None:
                _write_history(folder / "history.csv", run.history)
            log(f"epoch {epoch}: train loss {loss:.4f}, train accuracy {fitted:.2%}, test accuracy {accuracy:.2%} "
                f"({record.seconds:.0f} s)"
                + (f" → {record.checkpoint}" if record.checkpoint else ""))
        net.eval()
    if folder is not None:
        _write_history(folder / "history.csv", run.history)
    return run


def check_training_folder(folder: Path, overwrite: bool) -> None:
    """A one-line ``ValueError`` when ``folder`` already holds files (an earlier run's checkpoints would be replaced
    or mixed with this one's), unless ``overwrite``."""
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--out {str(folder)!r} is a file, not a folder: give a folder for the checkpoints")
    if overwrite or not folder.is_dir():
        return
    found = sorted(entry.name for entry in folder.iterdir())
    if found:
        shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
        earlier = "an earlier training run's" if any(TRAINING_FILES.owns(name) for name in found) else "other"
        raise ValueError(f"{str(folder)!r} already holds {earlier} files ({shown}); give another --out folder, or "
                         "--overwrite to replace its epoch_NN.pt and history.csv (other files are kept)")


def free_folder(base: str | Path) -> Path:
    """``base`` when it is free (missing or empty), else the first free ``base_2``, ``base_3`` …"""
    base = Path(base)
    number = 1
    while True:
        folder = base if number == 1 else base.with_name(f"{base.name}_{number}")
        if not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):
            return folder
        number += 1


def training_pictures(root: str | Path | None, settings: TrainingSettings) -> tuple[Tensor, Tensor]:
    """The training pictures and labels ``settings`` asks for: the first ``train_pictures``, labels permuted
    (seeded by ``settings.seed``) when ``shuffle_labels``."""
    pictures, labels = FashionMNIST(root, split="train").tensors()
    if settings.train_pictures is not None:
        pictures, labels = pictures[:settings.train_pictures], labels[:settings.train_pictures]
    if settings.shuffle_labels:
        labels = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(settings.seed))]
    return pictures, labels


def _fitting_accuracy(net: nn.Module, train_x: Tensor, train_y: Tensor,
                      settings: TrainingSettings) -> Callable[[], float]:
    """Training accuracy on the clean training pictures (``train_x`` holds pixels under adversarial training)."""
    if not settings.on_pixels:
        return lambda: evaluate_accuracy(net, train_x, train_y)
    return lambda: evaluate_accuracy(net, FASHION_PREPROCESS.normalize(train_x), train_y)


def adversarial_batch(model: Model, pixels: Tensor, labels: Tensor, epsilon: float, steps: int,
                      generator: torch.Generator) -> Tensor:
    """Madry et al.'s training input: untargeted L∞ PGD from a random start (steps of 2.5·ε/steps) against
    ``labels``, by the library's :func:`~convscope.synthesis.pgd`; returns the normalised batch ``[B,1,H,W]``."""
    from convscope.synthesis.adversarial import pgd

    attack = pgd(model, pixels, epsilon, step=2.5 * epsilon / steps, steps=steps, labels=labels.tolist(),
                 random_start=True, generator=generator, fit=False, progress=False, method="PGD training")
    return model.preprocess(attack.adversarials.to(pixels.device))  # back to the model's channels, normalised


def _train_epoch(model: Model, optimizer: torch.optim.Optimizer, schedule: torch.optim.lr_scheduler.LRScheduler,
                 inputs: Tensor, labels: Tensor, settings: TrainingSettings, generator: torch.Generator,
                 progress: bool, description: str) -> float:
    net = model.net
    net.train()
    order = torch.randperm(len(labels), generator=generator, device=inputs.device)
    total, seen = torch.zeros((), device=inputs.device), 0
    bar = progress_bar(total=len(labels), unit="img", desc=description, enabled=progress, leave=False)
    for start in range(0, len(labels), settings.batch_size):
        index = order[start:start + settings.batch_size]
        batch, target = inputs[index], labels[index]
        if settings.augment:
            flip = torch.rand(len(index), generator=generator, device=inputs.device) < 0.5
            batch = torch.where(flip.view(-1, 1, 1, 1), batch.flip(-1), batch)
        if settings.defence == "representation":
            perturbed = adversarial_batch(model, batch, target, settings.adversarial_epsilon,
                                          settings.adversarial_steps, generator)
            loss = representation_matching_loss(net, model.preprocess(batch), perturbed, target,
                                                settings.representation_layers, settings.representation_weight)
        else:
            if settings.adversarial_epsilon > 0:
                batch = adversarial_batch(model, batch, target, settings.adversarial_epsilon,
                                          settings.adversarial_steps, generator)
            elif settings.noise_std > 0:
                batch = model.preprocess(noisy_pixels(batch, settings.noise_std, generator))
            loss = F.cross_entropy(net(batch), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        total += loss.detach() * len(index)
        seen += len(index)
        bar.update(len(index))
    bar.close()
    return (total / seen).item()


@torch.no_grad()
def evaluate_accuracy(net: nn.Module, inputs: Tensor, labels: Tensor, batch_size: int = 1000) -> float:
    """Share of ``inputs`` (normalised) whose top class is the label; the training flag is restored."""
    was_training = net.training
    net.eval()
    try:
        correct = sum((net(inputs[i:i + batch_size]).argmax(1) == labels[i:i + batch_size]).sum()
                      for i in range(0, len(labels), batch_size))
    finally:
        net.train(was_training)
    return float(correct) / len(labels)


@dataclass
class Resumable:
    """What a checkpoint must hold besides the weights for the run to go on exactly as if never stopped."""

    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator
    run: TrainingRun

    def state(self, record: EpochRecord) -> dict[str, object]:
        return {"optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
                "generator": self.generator.get_state(), "torch": torch.get_rng_state(),
                "history": [asdict(r) for r in [*self.run.history, record]]}

    def load(self, saved: dict[str, object], device: torch.device) -> None:
        self.optimizer.load_state_dict(saved["optimizer"])  # type: ignore[arg-type]
        self.schedule.load_state_dict(saved["schedule"])  # type: ignore[arg-type]
        self.generator.set_state(saved["generator"])  # type: ignore[arg-type]
        torch.set_rng_state(saved["torch"])  # type: ignore[arg-type]
        self.run.history = [EpochRecord(**r) for r in saved["history"]]  # type: ignore[attr-defined]


def _resumable(folder: Path, settings: TrainingSettings) -> dict | None:
    """The last checkpoint of a stopped run of ``settings`` in ``folder`` (None when the folder holds no run);
    a one-line ``ValueError`` for a run that cannot be continued."""
    epochs = sorted(folder.glob("epoch_*.pt")) if folder.is_dir() else []
    if not epochs:
        return None
    try:
        saved = torch.load(epochs[-1], map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{str(epochs[-1])!r} cannot be read ({type(error).__name__}): delete it to resume from the "
                         "epoch before, or start again with --overwrite") from error
    if not isinstance(saved, dict) or "resume" not in saved:
        raise ValueError(f"{str(epochs[-1])!r} was saved without its optimiser and random state, so the run cannot "
                         "be continued exactly: start again with --overwrite")
    if saved.get("settings") != asdict(settings):
        raise ValueError(f"{str(folder)!r} holds a run with other settings; resume it with the same options, or "
                         "start again with --overwrite")
    if int(saved["epoch"]) >= settings.epochs:
        raise ValueError(f"the run in {str(folder)!r} is finished ({saved['epoch']} epochs): nothing to resume")
    return saved


def _record(run: TrainingRun, epoch: int, loss: float, fitted: float, accuracy: float, seconds: float,
            folder: Path | None, settings: TrainingSettings, state: Resumable) -> EpochRecord:
    record = EpochRecord(epoch, loss, fitted, accuracy, seconds)
    if folder is not None:
        path = folder / f"epoch_{epoch:02d}.pt"
        record.checkpoint = str(path)
        weights = {k: v.detach().cpu().clone() for k, v in run.model.net.state_dict().items()}
        weights[STRIDE_KEY] = torch.tensor(settings.architecture.stride1)
        partial = path.with_name(path.name + ".partial")  # written whole, then renamed: a kill leaves no half file
        torch.save({"state_dict": weights, "epoch": epoch, "train_accuracy": fitted, "test_accuracy": accuracy,
                    "settings": asdict(settings), "resume": state.state(record)}, partial)
        partial.replace(path)
    return record


def _write_history(path: Path, history: list[EpochRecord]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(asdict(history[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in history)
