"""defences: every trained and test-time defence under plain and adaptive attacks, in one table."""

from __future__ import annotations

import argparse
from pathlib import Path

from convscope.cli.common import written
from convscope.cli.output_names import identity, output_name
from convscope.data.opening import DATA_HELP


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("defences", help="accuracy of trained models and input defences under plain and "
                                             "adaptive attacks (EOT, BPDA), one table")
    p.add_argument("runs", nargs="+", help="training folders (`convscope train --out`; the last epoch is used), "
                                           "weights files, fashion_cnn / fashion_linear for the shipped ones, or "
                                           "fashion_defences for the shipped small models of every defence; "
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
    from convscope.analysis.defence_runs import group_runs
    from convscope.analysis.defences import defence_table, labelled_pixels

    if args.limit < 1 or args.steps < 1 or args.samples < 1:
        raise ValueError("--limit, --steps and --samples must be at least 1")
    groups = group_runs(args.runs, args.device)  # every run is read before anything is measured
    pixels, labels = labelled_pixels(args.data, args.limit, next(iter(groups.values()))[0])
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
