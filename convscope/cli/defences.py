"""defences: every trained and test-time defence under plain and adaptive attacks, in one table."""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import torch

from convscope.cli.common import written
from convscope.cli.output_names import identity, output_name
from convscope.data.opening import DATA_HELP
from convscope.models.model import Model


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("defences", help="accuracy of trained models and input defences under plain and "
                                             "adaptive attacks (EOT, BPDA), one table")
    p.add_argument("runs", nargs="+", help="training folders (`convscope train --out`; the last epoch is used), "
                                           "weights files, or fashion_cnn / fashion_linear for the shipped ones; "
                                           "runs that differ only in --seed are pooled as mean ± std")
    p.add_argument("--data", default="fashion-mnist:test", help=f"{DATA_HELP} (default: %(default)s)")
    p.add_argument("--limit", type=int, default=500, help="labelled pictures measured (default: %(default)s)")
    p.add_argument("--epsilons", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.2],
                   help="L∞ budgets, pixels in [0, 1] (default: %(default)s)")
    p.add_argument("--steps", type=int, default=20, help="PGD steps (default: %(default)s)")
    p.add_argument("--smooth-input", type=float, default=0.0, metavar="SIGMA_PX",
                   help="also defend each model by a Gaussian blur of this σ in px, attacked by transfer and "
                        "by BPDA (default: off)")
    p.add_argument("--noise-input", type=float, default=0.0, metavar="SIGMA",
                   help="also defend each model by input noise of this σ, attacked with one draw a step and by "
                        "EOT (default: off)")
    p.add_argument("--samples", type=int, default=8, help="noise draws per EOT step (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise draws (default: %(default)s)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA when available)")
    p.add_argument("--out", type=Path, default=Path("out"), help="output folder (default: %(default)s)")
    p.set_defaults(run=run_defences)


def run_defences(args: argparse.Namespace) -> None:
    from convscope.analysis.checks import write_csv
    from convscope.analysis.defences import defence_table
    from convscope.data.opening import open_dataset
    from convscope.data.pictures import FittedPictures

    if args.limit < 1 or args.steps < 1 or args.samples < 1:
        raise ValueError("--limit, --steps and --samples must be at least 1")
    groups = group_runs(args.runs, args.device)  # every run is read before anything is measured
    data = open_dataset(args.data, limit=args.limit)
    labels = data.labels()
    if (labels < 0).any():
        raise ValueError(f"{args.data} has no labels: give Fashion-MNIST or a folder with class sub-folders")
    first = next(iter(groups.values()))[0]
    fitted = FittedPictures(data, first.preprocess)
    pixels = torch.stack([fitted[i][1] for i in range(len(fitted))])  # pixels in [0, 1]
    pixels, labels = pixels.to(first.device), labels.to(first.device)
    table = defence_table(groups, pixels, labels, args.epsilons, smooth_input=args.smooth_input,
                          noise_input=args.noise_input, steps=args.steps, samples=args.samples, seed=args.seed)
    print("\n".join(table.lines()))
    args.out.mkdir(parents=True, exist_ok=True)
    made = identity(args, pictures=("runs",))
    rows = [{"model": r.model, "defence": r.defence, "attack": r.attack, "adaptive": r.adaptive, "epsilon": e,
             "accuracy": m, "std": s, "seeds": len(r.accuracy)}
            for r in table.rows for e, m, s in zip(table.epsilons, r.mean(), r.std(), strict=True)]
    written(write_csv(args.out / output_name("defences", identity=made, ext="csv"), rows))
    summary = args.out / output_name("defences", identity=made, ext="md")
    summary.write_text(table.markdown() + "\n\n" + "\n".join(table.verdicts()) + "\n")
    written(summary)
    written(table.picture().save(args.out / output_name("defences", identity=made)))


def group_runs(runs: list[str], device: str | None) -> dict[str, list[Model]]:
    """Models by name, runs that differ only in their training seed under one name (the defence and settings)."""
    from convscope.models import load_model
    from convscope.models.fashion import FASHION_MODEL
    from convscope.models.fashion_linear import LINEAR_MODEL

    groups: dict[str, list[Model]] = defaultdict(list)
    names: dict[str, str] = {}  # settings without the seed → the group's name
    for run in runs:
        if run in (FASHION_MODEL, LINEAR_MODEL):
            groups[f"{run} (shipped)"].append(load_model(run, device=device))
            continue
        path = Path(run)
        weights = last_checkpoint(path) if path.is_dir() else path
        if not weights.is_file():  # missing, a pipe or a device
            raise ValueError(f"{run!r} is neither a training folder, a weights file nor fashion_cnn / fashion_linear")
        try:
            saved = torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as error:  # a damaged, empty or foreign file: say which, in one line
            raise ValueError(f"{str(weights)!r} is not a weights file torch can read ({type(error).__name__}); give "
                             "a `convscope train` folder or its epoch_NN.pt") from error
        settings = dict(saved.get("settings", {})) if isinstance(saved, dict) else {}
        settings.pop("seed", None)
        key = json.dumps(settings, sort_keys=True, default=str) if settings else str(weights)
        if key not in names:
            name = describe(settings) if settings else weights.stem
            taken = sum(1 for other in names.values() if other.split(" #")[0] == name)
            names[key] = name if not taken else f"{name} #{taken + 1}"
        groups[names[key]].append(load_model(FASHION_MODEL, weights=weights, device=device))
    return dict(groups)


def last_checkpoint(folder: Path) -> Path:
    """The highest ``epoch_NN.pt`` of a training folder."""
    epochs = sorted(folder.glob("epoch_*.pt"))
    if not epochs:
        raise ValueError(f"{str(folder)!r} holds no epoch_NN.pt: train into it with `convscope train --out`")
    return epochs[-1]


def describe(settings: dict) -> str:
    """A short name for a training run's settings: its defence, with what sets it apart."""
    if settings.get("representation_layers"):
        return (f"representation ε={settings['adversarial_epsilon']:g} "
                f"{'+'.join(settings['representation_layers'])}")
    if settings.get("adversarial_epsilon"):
        return f"adversarial ε={settings['adversarial_epsilon']:g}"
    if settings.get("noise_std"):
        return f"noise σ={settings['noise_std']:g}"
    pictures = settings.get("train_pictures")
    return "plain" + (f" ({pictures} pictures)" if pictures else "")
