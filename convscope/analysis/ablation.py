"""Architecture selection and ablation on the Fashion-MNIST CNN — the experiments of Zeiler & Fergus 2014, §5
(https://arxiv.org/abs/1311.2901, Tables 2 and 3, Fig. 6).

Variants of one specification (:class:`~convscope.models.fashion.FashionArchitecture`) — layers removed,
widths changed, the first layer's kernel and stride changed — are each trained with several seeds under the
same settings; the table gives training and test error (mean ± std over seeds), parameters and time, and the
first-layer filters are measured for the paper's two faults: dead filters and high-frequency (aliased) ones.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from convscope.analysis.filter_measures import high_frequency_energy, near_zero_filters
from convscope.analysis.spread import mean_std, plus_minus
from convscope.models.fashion import FashionArchitecture
from convscope.models.fashion_training import TrainingSettings, train_fashion_cnn
from convscope.models.layers import get_layer, module_weight
from convscope.render.colormaps import normalize
from convscope.render.layout import grid, stack, titled
from convscope.render.picture import Picture
from convscope.render.plots import figure_to_picture, new_figure
from convscope.render.scale import wrapped
from convscope.reprs import short_repr

# Zeiler & Fergus trained every variant to convergence. The shipped CNN saw 5 epochs × 60 000 pictures (test
# accuracy passes 90 % at epoch 4); below that budget the table ranks training speed as much as design.
CONVERGED_PICTURES = 5 * 60_000
NOISE_ERRORS = 2.0  # a difference under two standard errors of the seeds' spread is within noise

_BASE = FashionArchitecture()
# The shipped CNN and its variants, named as on the command line (`convscope ablate --variants …`).
ABLATION_VARIANTS: dict[str, FashionArchitecture] = {
    "baseline": _BASE,
    "conv1-7x7-stride2": replace(_BASE, stride1=2),
    "conv1-11x11-stride4": replace(_BASE, kernel1=11, stride1=4),
    "no-fc7": replace(_BASE, fc=0),
    "no-conv3": replace(_BASE, channels=(32, 64)),
    "narrow": replace(_BASE, channels=(16, 32, 64), fc=128),
    "wide": replace(_BASE, channels=(64, 128, 256), fc=512),
}


def parameter_count(architecture: FashionArchitecture) -> int:
    """Number of trainable parameters of the CNN built from ``architecture``."""
    from convscope.models.fashion import FashionCNN

    return sum(p.numel() for p in FashionCNN(architecture=architecture).parameters())


@dataclass
class VariantRun:
    """One trained variant: errors on the training and test pictures, seconds, its first-layer weights."""

    __repr__ = short_repr

    variant: str
    seed: int
    train_error: float
    test_error: float
    seconds: float
    first_layer: Tensor

    @property
    def dead_share(self) -> float:
        return float(near_zero_filters(self.first_layer).float().mean())

    @property
    def high_frequency(self) -> float:
        return float(high_frequency_energy(self.first_layer).mean())


@dataclass
class AblationResult:
    """Every run of every variant; :meth:`rows` aggregates them per variant (mean ± std over seeds)."""

    __repr__ = short_repr

    variants: dict[str, FashionArchitecture]
    settings: TrainingSettings
    runs: list[VariantRun] = field(default_factory=list)

    def runs_of(self, variant: str) -> list[VariantRun]:
        return [r for r in self.runs if r.variant == variant]

    def rows(self) -> list[dict[str, float | str | int]]:
        rows: list[dict[str, float | str | int]] = []
        for name, architecture in self.variants.items():
            runs = self.runs_of(name)
            train, test = mean_std([r.train_error for r in runs]), mean_std([r.test_error for r in runs])
            rows.append({"variant": name, "architecture": architecture.describe(),
                         "parameters": parameter_count(architecture), "seeds": len(runs),
                         "train_error_mean": train[0], "train_error_std": train[1],
                         "test_error_mean": test[0], "test_error_std": test[1],
                         "seconds_mean": mean_std([r.seconds for r in runs])[0],
                         "dead_filter_share": mean_std([r.dead_share for r in runs])[0],
                         "high_frequency_energy": mean_std([r.high_frequency for r in runs])[0]})
        return rows

    def run_rows(self) -> list[dict[str, float | str | int]]:
        """One row per trained network."""
        return [{"variant": r.variant, "seed": r.seed, "train_error": r.train_error, "test_error": r.test_error,
                 "seconds": r.seconds, "dead_filter_share": r.dead_share, "high_frequency_energy": r.high_frequency}
                for r in self.runs]

    def markdown(self) -> str:
        """The table in the paper's layout (errors in %), one row per variant."""
        lines = ["| variant | architecture | parameters | train error % | test error % | s per run "
                 "| dead conv1 filters | conv1 high-freq. energy |",
                 "|---|---|---:|---:|---:|---:|---:|---:|"]
        for row in self.rows():
            runs = self.runs_of(str(row["variant"]))
            lines.append(f"| {row['variant']} | {row['architecture']} | {row['parameters']:,} "
                         f"| {plus_minus([r.train_error for r in runs])} | {plus_minus([r.test_error for r in runs])} "
                         f"| {row['seconds_mean']:.0f} | {row['dead_filter_share']:.0%} "
                         f"| {row['high_frequency_energy']:.0%} |")
        return "\n".join(lines + [""] + [f"Note: {note}." for note in self.caveats()])

    def caveats(self) -> list[str]:
        """What keeps the table from meaning what the paper's does: a short training budget, differences from
        the baseline within the seeds' noise, or a single seed (no spread to judge differences by)."""
        notes = []
        s = self.settings
        pictures = s.train_pictures or 60_000
        if s.epochs * pictures < CONVERGED_PICTURES:
            notes.append(f"short training ({s.epochs} epochs × {pictures:,} pictures = {s.epochs * pictures:,} seen, "
                         f"under the shipped network's {CONVERGED_PICTURES:,}): the networks are far from "
                         "converged, so the errors rank how fast each variant learns as much as how good it is; "
                         "Zeiler & Fergus trained to convergence (--epochs 5 or more on all pictures)")
        base = "baseline" if "baseline" in self.variants else next(iter(self.variants))
        reference = [r.test_error for r in self.runs_of(base)]
        if len(reference) < 2:
            notes.append("one seed: no spread over seeds to tell a difference from noise (--seeds 3 or more)")
            return notes
        within = []
        for name in self.variants:
            runs = [r.test_error for r in self.runs_of(name)]
            if name == base or len(runs) < 2:
                continue
            (mean_a, std_a), (mean_b, std_b) = mean_std(runs), mean_std(reference)
            error = math.sqrt(std_a ** 2 / len(runs) + std_b ** 2 / len(reference))
            if abs(mean_a - mean_b) < NOISE_ERRORS * error:
                within.append(f"{name} ({100 * (mean_a - mean_b):+.1f} points)")
        if within:
            notes.append(f"within the seeds' noise (under {NOISE_ERRORS:g} standard errors from {base}'s test "
                         f"error): {', '.join(within)}; these differences say nothing either way")
        return notes

    def lines(self) -> list[str]:
        header = f"{'variant':22} {'params':>9} {'train err %':>13} {'test err %':>13} {'s':>5} {'dead':>5} {'hf':>5}"
        out = [header]
        for row in self.rows():
            runs = self.runs_of(str(row["variant"]))
            out.append(f"{row['variant']:22} {row['parameters']:>9,} {plus_minus([r.train_error for r in runs]):>13} "
                       f"{plus_minus([r.test_error for r in runs]):>13} {row['seconds_mean']:>5.0f} "
                       f"{row['dead_filter_share']:>5.0%} {row['high_frequency_energy']:>5.0%}")
        return out + [f"Note: {note}." for note in self.caveats()]

    def picture(self) -> Picture:
        """Training and test error per variant, mean with a bar of ± one standard deviation."""
        rows = self.rows()
        figure, axes = new_figure(1, size=(7, 3.8))
        axis = axes[0][0]
        x = torch.arange(len(rows)).float()
        for offset, kind in ((-0.18, "train"), (0.18, "test")):
            means = [100 * float(r[f"{kind}_error_mean"]) for r in rows]
            stds = [100 * float(r[f"{kind}_error_std"]) if len(self.runs_of(str(r["variant"]))) > 1 else 0.0
                    for r in rows]
            axis.bar((x + offset).tolist(), means, width=0.36, yerr=stds, capsize=3, label=f"{kind} error")
        axis.set_xticks(x.tolist(), [str(r["variant"]) for r in rows], rotation=25, ha="right")
        axis.set_ylabel("error %")
        s = self.settings
        seeds = max(int(r["seeds"]) for r in rows)
        axis.set_title(f"Fashion-MNIST CNN variants: {seeds} seeds, {s.train_pictures or 60000} training pictures, "
                       f"{s.epochs} epochs")
        axis.legend()
        figure.tight_layout()
        chart = figure_to_picture(figure)
        notes = self.caveats()
        if not notes:
            return chart
        return stack([chart, *(wrapped(f"Note: {note}.", chart.size[0], size=12) for note in notes)],
                     direction="vertical", gap=2)

    def filters_picture(self, seed: int | None = None, tile_size: int = 36) -> Picture:
        """First-layer filters of each variant (the run with ``seed``, default the first), near-zero ones framed
        red, with the share of dead filters and the mean high-frequency energy (Zeiler & Fergus Fig. 6)."""
        panels = []
        for name in self.variants:
            runs = [r for r in self.runs_of(name) if seed is None or r.seed == seed]
            if not runs:
                continue
            run = runs[0]
            weight = run.first_layer
            tiles = normalize(weight[:, :1], "symmetric", dims=3)
            body = grid(tiles, columns=8, tile_size=tile_size, padding=2,
                        flagged=near_zero_filters(weight).tolist())
            kernel = f"{weight.shape[-1]}×{weight.shape[-2]}/{self.variants[name].stride1}"
            panels.append(titled(body, f"{name} (conv1 {kernel})",
                                 f"dead {run.dead_share:.0%}, high-freq. {run.high_frequency:.0%}, seed {run.seed}",
                                 size=13))
        if not panels:
            raise ValueError("no runs to draw")
        rows = [stack(panels[i:i + 4], gap=14) for i in range(0, len(panels), 4)]
        return titled(stack(rows, direction="vertical", gap=10), "First-layer filters of each variant",
                      "red frame: norm below 10 % of the layer's largest (dead); high-freq.: mean share of "
                      "spectral energy above half the Nyquist frequency")


def ablation_study(variants: Mapping[str, FashionArchitecture] | Sequence[str] = tuple(ABLATION_VARIANTS), *,
                   seeds: Sequence[int] = (0, 1, 2), settings: TrainingSettings | None = None,
                   root: str | None = None, device: str | torch.device | None = None, workers: int = 1,
                   log: Callable[[str], None] = print) -> AblationResult:
    """Train every variant once per seed with ``settings`` (its architecture and seed replaced) and collect
    the errors, times and first-layer weights. ``variants`` are names from :data:`ABLATION_VARIANTS` or a
    mapping of names to architectures. ``workers`` > 1 trains that many networks at once in separate
    processes (one thread each); the results do not depend on it."""
    if not isinstance(variants, Mapping):
        unknown = [v for v in variants if v not in ABLATION_VARIANTS]
        if unknown:
            raise ValueError(f"unknown variants {unknown}: choose from {', '.join(ABLATION_VARIANTS)}")
        variants = {v: ABLATION_VARIANTS[v] for v in variants}
    if not variants or not seeds:
        raise ValueError("an ablation needs at least one variant and one seed")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    settings = settings if settings is not None else TrainingSettings()
    result = AblationResult(dict(variants), settings)
    settings = replace(settings, measure_every_epoch=False)  # only the final errors are reported
    jobs = [(name, replace(settings, architecture=architecture, seed=seed), root, device)
            for name, architecture in variants.items() for seed in seeds]
    runs: Iterator[VariantRun]
    if workers == 1:
        runs = map(_train_variant, jobs)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=torch.set_num_threads, initargs=(1,))
        runs = pool.map(_train_variant, jobs)
    try:
        for run in runs:
            result.runs.append(run)
            log(f"{run.variant} seed {run.seed}: train error {run.train_error:.2%}, test error "
                f"{run.test_error:.2%} ({run.seconds:.0f} s)")
    finally:
        if workers > 1:
            pool.shutdown(cancel_futures=True)
    return result


def _train_variant(job: tuple[str, TrainingSettings, str | None, str | torch.device | None]) -> VariantRun:
    name, settings, root, device = job
    began = time.perf_counter()
    run = train_fashion_cnn(None, settings, root=root, device=device, progress=False, log=lambda _: None)
    last = run.history[-1]
    weight = module_weight(get_layer(run.model.net, "conv1")).detach().cpu().clone()
    return VariantRun(name, settings.seed, 1 - last.train_accuracy, 1 - last.test_accuracy,
                      time.perf_counter() - began, weight)
