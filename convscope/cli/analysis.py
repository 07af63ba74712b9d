"""invariance (and the other studies of networks and of their explanations)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from convscope.analysis.ablation import ABLATION_VARIANTS
from convscope.analysis.checks import CHECK_PHOTOS, DEMO_CHECK
from convscope.analysis.invariance import invariance_curves
from convscope.analysis.metrics.registry import DEFAULT_METRICS, METRICS
from convscope.analysis.transforms import TRANSFORMS
from convscope.cli.common import add_model_options, model_from, written
from convscope.cli.output_names import identity, output_name, run_names, write_text
from convscope.images import load_images
from convscope.models import DEFAULT_MODEL
from convscope.targets import Target, parse_target


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("invariance", help="feature distance and class probability under translation, "
                                               "scaling and rotation (Zeiler & Fergus Fig. 5)")
    p.add_argument("images", nargs="+", help="image files, folders or sample:NAME")
    p.add_argument("--layers", nargs="+", help="layers whose features are compared (default: first conv and "
                                               "the classifier's input)")
    p.add_argument("--transform", choices=[*TRANSFORMS, "all"], default="all",
                   help="the change applied to the pictures: " + ", ".join(TRANSFORMS) + " or all (default: all)")
    p.add_argument("--targets", nargs="+", dest="target",
                   help="class to follow: one for all images, or one per image (their true labels, as Zeiler & "
                        "Fergus) (default: each image's top prediction)")
    add_model_options(p)
    p.set_defaults(run=run_invariance)

    p = commands.add_parser("probe", help="per-layer linear probes (softmax and linear SVM) on a labelled set")
    p.add_argument("data", help="'fashion-mnist' (its own train/test split) or a folder with class sub-folders "
                                "(split 75/25 at random)")
    p.add_argument("--layers", nargs="+", required=True, help="layers whose pooled features are probed")
    p.add_argument("--train-pictures", type=int, default=10000, dest="max_train",
                   help="first N training pictures used (default: %(default)s)")
    p.add_argument("--test-pictures", type=int, default=10000, dest="max_test",
                   help="first N test pictures used (default: %(default)s)")
    p.add_argument("--pooling", default="mean", choices=["mean", "max"],
                   help="one feature per channel: the mean or the max over positions (default: mean)")
    p.add_argument("--repeats", type=int, default=1, help="fit each probe this many times, each on a random half "
                                                          "of the training pictures, and report mean ± std "
                                                          "(default: %(default)s: once on all)")
    add_model_options(p, out="out/probe")
    p.set_defaults(run=run_probe)

    p = commands.add_parser("ablate", help="train variants of the Fashion-MNIST CNN with several seeds: error "
                                           "table and first-layer filters (Zeiler & Fergus §5)")
    p.add_argument("--variants", nargs="+", default=list(ABLATION_VARIANTS), choices=list(ABLATION_VARIANTS),
                   metavar="VARIANT",
                   help=f"variants of the network to train (default: all: {', '.join(ABLATION_VARIANTS)})")
    p.add_argument("--seeds", type=int, default=3, help="runs per variant, seeds 0 … N-1 (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=5, help="passes over the training pictures (default: %(default)s)")
    p.add_argument("--train-pictures", type=int, help="first N training pictures (default: all 60 000)")
    p.add_argument("--test-pictures", type=int, help="first N test pictures (default: all 10 000)")
    p.add_argument("--batch-size", type=int, default=128, help="pictures per training step (default: %(default)s)")
    p.add_argument("data", nargs="?", help="folder with the Fashion-MNIST IDX files (default: Debian's package)")
    p.add_argument("--workers", type=int, default=1, help="networks trained at once, one process each "
                                                          "(default: %(default)s)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA when available)")
    p.add_argument("--out", type=Path, default=Path("out/ablate"), help="output folder (default: %(default)s)")
    p.set_defaults(run=run_ablate)

    p = commands.add_parser("generalise", help="features on a new data set with N pictures per class: the model "
                                               "against itself with random weights (Zeiler & Fergus §5.2)")
    p.add_argument("data", help="'fashion-mnist' (its own train/test split) or a folder with class sub-folders "
                                "(split 75/25 at random)")
    p.add_argument("--layers", nargs="+", help="layers whose pooled features are used (default for "
                                               "EfficientNet-Lite: blocks.2 blocks.4 bn2)")
    p.add_argument("--per-class", type=int, nargs="+", default=[5, 15, 30, 60],
                   help="training pictures per class, N (default: %(default)s)")
    p.add_argument("--draws", type=int, default=5, help="random draws of the N pictures (default: %(default)s)")
    p.add_argument("--classifier", choices=("softmax", "svm"), default="softmax",
                   help="the linear classifier fit on the features: softmax or a linear SVM (default: %(default)s)")
    p.add_argument("--pool", type=int, default=1000, help="training pictures the draws come from (the first N; "
                                                          "default: %(default)s)")
    p.add_argument("--test-pictures", type=int, default=1000, dest="max_test",
                   help="first N test pictures used (default: %(default)s)")
    p.add_argument("--size", type=int, help="side of the square the pictures are resized to for the model "
                                            "(default: the model's own resize and crop)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draws and the random weights (default: 0)")
    add_model_options(p, out="out/generalise")
    p.set_defaults(run=run_generalise)

    p = commands.add_parser("evolution", help="features through training: each channel's strongest patch per "
                                              "checkpoint (Zeiler & Fergus Fig. 4)")
    p.add_argument("--checkpoints", required=True, help="folder of per-epoch checkpoints (from `convscope train`)")
    p.add_argument("data", nargs="?", default="fashion-mnist:test", help="pictures to scan (default: %(default)s)")
    p.add_argument("--limit", type=int, default=2000, help="pictures used (default: %(default)s)")
    p.add_argument("--layers", nargs="+", default=["relu1", "relu2", "relu3"], help="layers shown")
    p.add_argument("--channels", type=int, nargs="+", default=list(range(6)), help="channels shown per layer")
    p.add_argument("--view", choices=("patch", "projection"), default="patch",
                   help="each strongest activation as its patch, or projected to pixels as in the paper (the "
                        "deconvnet; guided backprop where the deconvnet would ignore the picture) (default: patch)")
    add_model_options(p, out="out/evolution")
    p.set_defaults(run=run_evolution)

    p = commands.add_parser("check", help="sanity checks and faithfulness of attribution methods: cascading "
                                          "randomisation, deletion/insertion, pointing game, occlusion study")
    p.add_argument("--methods", nargs="+", help="attribution methods (default: "
                   f"{' '.join(DEMO_CHECK['methods'])}, about three minutes on a 2-core CPU; with --full every "
                   "method but Score-CAM, which costs one forward pass per channel — name it to include it)")
    p.add_argument("--photos", nargs="+", default=list(CHECK_PHOTOS), help="bundled photos to use")
    p.add_argument("--steps", type=int, help=f"deletion/insertion steps (default: {DEMO_CHECK['steps']}; "
                                             "25 with --full)")
    p.add_argument("--full", action="store_true",
                   help="the whole study instead of the quick one: every method but Score-CAM, every stage of the "
                        "cascade, 25 steps, 18 pasted pictures, the occluder moved by 1/14 of the side (tens of "
                        "minutes on a CPU)")
    p.add_argument("pictures", nargs="*", help="with --metrics: image files, folders or sample:NAME to evaluate on, "
                                               "or one picture set (fashion-mnist:test, a folder with --limit) "
                                               "streamed in resumable chunks into --out, "
                                               "named before the options "
                                               "(default: the bundled photos pasted on textures, whose object "
                                               "boxes the localisation metrics need)")
    p.add_argument("--metrics", nargs="*", metavar="METRIC",
                   help="instead of the checks above, one report of these evaluation metrics for every method: "
                        "a table with each metric's direction, bootstrap intervals over the pictures and ranks, a "
                        "bar chart and a verdict (no names: " + " ".join(DEFAULT_METRICS) + "; all: "
                        + " ".join(METRICS) + ")")
    p.add_argument("--limit", type=int, help="with a picture set: evaluate only its first N pictures")
    p.add_argument("--overwrite", action="store_true",
                   help="with a picture set: discard the metrics of a different run in --out, or write into a folder "
                        "that holds other files (they are kept)")
    p.add_argument("--no-label-randomisation", dest="label_randomisation", action="store_false",
                   help="skip the data randomisation test (it uses the shipped Fashion-MNIST pair and the "
                        "Fashion-MNIST files, whatever --model is)")
    add_model_options(p, out="out/check")
    p.set_defaults(run=run_check)


def run_ablate(args: argparse.Namespace) -> None:
    from convscope.analysis.ablation import ablation_study
    from convscope.analysis.checks import write_csv
    from convscope.models.fashion_training import TrainingSettings

    if args.seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {args.seeds}")
    settings = TrainingSettings(epochs=args.epochs, batch_size=args.batch_size, train_pictures=args.train_pictures,
                                test_pictures=args.test_pictures)
    result = ablation_study(args.variants, seeds=range(args.seeds), settings=settings, root=args.data,
                            device=args.device, workers=args.workers)
    print("\n".join(result.lines()))
    name = run_names(args, "ablation")
    written(write_csv(args.out / name("csv"), result.rows()))
    written(write_csv(args.out / name("csv", "runs"), result.run_rows()))
    written(write_text(args.out / name("md"), result.markdown() + "\n"))
    written(result.picture().save(args.out / name("png")))
    written(result.filters_picture().save(args.out / name("png", "filters")))


def run_generalise(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from convscope.analysis.checks import write_csv
    from convscope.analysis.generalisation import generalisation_study, random_weights
    from convscope.models.lite import LITE_MODELS

    model = model_from(args)
    layers = args.layers or (["blocks.2", "blocks.4", "bn2"] if model.name in LITE_MODELS else None)
    if not layers:
        raise ValueError(f"name the layers of {model.name} to use with --layers (`convscope layers` lists them)")
    if args.size is not None:
        if args.size < 8:
            raise ValueError(f"--size must be at least 8 pixels, got {args.size}")
        model.preprocess = replace(model.preprocess, resize=args.size, crop=args.size)
    train, test = _train_test(args.data, args.pool, args.max_test)
    result = generalisation_study([model, random_weights(model, args.seed)], train, test, layers,
                                  per_class=args.per_class, draws=args.draws, classifier=args.classifier,
                                  seed=args.seed, work=args.out / "scans")
    print("\n".join(result.lines()))
    name = run_names(args, "generalisation")
    written(write_csv(args.out / name("csv"), result.rows()))
    written(write_text(args.out / name("md"), result.markdown() + "\n"))
    written(result.picture().save(args.out / name("png")))


def _train_test(data: str, max_train: int, max_test: int):
    """Training and test pictures of ``data``: Fashion-MNIST's own split, or a seeded 75/25 split of a folder."""
    from convscope.analysis.probes import split_pictures
    from convscope.data.opening import open_dataset
    from convscope.data.pictures import FirstPictures

    if data.startswith(("fashion-mnist", "fashion_mnist")):
        train, test = open_dataset("fashion-mnist:train"), open_dataset("fashion-mnist:test")
    else:
        train, test = split_pictures(open_dataset(data))
    return FirstPictures(train, max_train), FirstPictures(test, max_test)


def run_probe(args: argparse.Namespace) -> None:
    from convscope.analysis.checks import write_csv
    from convscope.analysis.probes import linear_probes, split_pictures
    from convscope.data.opening import open_dataset
    from convscope.data.pictures import FirstPictures

    if args.data.startswith(("fashion-mnist", "fashion_mnist")):
        train, test = open_dataset("fashion-mnist:train"), open_dataset("fashion-mnist:test")
    else:
        train, test = split_pictures(open_dataset(args.data))
    train, test = FirstPictures(train, args.max_train), FirstPictures(test, args.max_test)
    result = linear_probes(model_from(args), train, test, args.layers, pooling=args.pooling, work=args.out / "scans",
                           repeats=args.repeats)
    print("\n".join(result.lines()))
    name = run_names(args, "probes")
    written(write_csv(args.out / name("csv"), result.rows()))
    written(result.picture().save(args.out / name("png")))


def run_evolution(args: argparse.Namespace) -> None:
    from convscope.analysis.evolution import checkpoint_files, feature_evolution
    from convscope.data.opening import open_dataset

    for option in ("weights", "classes"):
        if getattr(args, option) is not None:
            raise ValueError(f"evolution loads each file of --checkpoints as the model's weights and names no classes: "
                             f"leave out --{option}")
    model = "fashion_cnn" if args.model == DEFAULT_MODEL else args.model
    evolution = feature_evolution(checkpoint_files(args.checkpoints), open_dataset(args.data, limit=args.limit),
                                  args.layers, model=model, channels=args.channels, work=args.out / "scans",
                                  device=args.device, progress=True, view=args.view)
    for note in evolution.notes:
        print(note)
    name = run_names(args, "evolution")
    written(evolution.picture().save(args.out / name("png", None if args.view == "patch" else "projection")))


def run_check(args: argparse.Namespace) -> None:
    from convscope.analysis.checks import run_checks

    picture_set = _picture_set(args)
    if args.metrics is not None or picture_set:
        return run_metrics(args)
    if args.limit is not None or args.overwrite:
        raise ValueError("--limit and --overwrite go with a picture set (e.g. `convscope check fashion-mnist:test "
                         "--limit 1000`); the checks use --photos")
    if args.pictures:
        raise ValueError("pictures are evaluated with --metrics; the checks use --photos (bundled photos)")
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    settings: dict[str, Any] = {"steps": 25} if args.full else dict(DEMO_CHECK)
    methods = args.methods or settings.pop("methods", None)
    settings.pop("methods", None)
    if args.steps is not None:
        settings["steps"] = args.steps
    run_checks(model_from(args), args.out, methods=methods, photos=args.photos,
               label_randomisation=args.label_randomisation, **settings)
    for name in ("sanity_cascading.csv", "sanity_cascading.png", "sanity_data_randomisation.csv",
                 "sanity_data_randomisation.png", "faithfulness.csv", "faithfulness.png", "pointing_game.csv",
                 "checks.json"):
        if (args.out / name).exists():
            written(args.out / name)


def _picture_set(args: argparse.Namespace) -> bool:
    """Whether check's pictures are one picture set to stream: a named set, or one folder with --limit."""
    from convscope.data.opening import names_a_picture_set

    if len(args.pictures) != 1:
        return False
    return names_a_picture_set(args.pictures[0]) or (args.limit is not None and Path(args.pictures[0]).is_dir())


def run_metrics(args: argparse.Namespace) -> None:
    from convscope.analysis.checks import write_csv
    from convscope.analysis.explainers import method_names
    from convscope.analysis.metrics.report import metric_names

    methods = method_names(args.methods or DEMO_CHECK["methods"])
    metrics = metric_names(args.metrics)
    if _picture_set(args):
        report = _metrics_of_set(args, methods, metrics)
    elif args.limit is not None or args.overwrite:
        raise ValueError("--limit and --overwrite go with one picture set (fashion-mnist:test, or a folder with "
                         "--limit), not with single pictures")
    else:
        report = _metrics_of_pictures(args, methods, metrics)
    print(report.text())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics.md").write_text(report.text())
    written(args.out / "metrics.md")
    written(write_csv(args.out / "metrics.csv", report.rows()))
    written(report.picture().save(args.out / "metrics.png"))
    (args.out / "metrics.json").write_text(json.dumps({"model": report.model, "pictures": report.pictures,
                                                       "rows": report.rows(), "verdict": report.verdict()},
                                                      indent=1))
    written(args.out / "metrics.json")


def _metrics_of_set(args: argparse.Namespace, methods: list[str], metrics: list[str]):
    from convscope.analysis.metrics.dataset import evaluate_set
    from convscope.data.opening import open_dataset

    pictures = open_dataset(args.pictures[0], limit=args.limit)
    if args.model == DEFAULT_MODEL and pictures.spec().get("kind") == "fashion-mnist":
        args = argparse.Namespace(**{**vars(args), "model": "fashion_cnn"})  # the model of these pictures
    model = model_from(args)
    return evaluate_set(model, pictures, args.out, methods, metrics, overwrite=args.overwrite, progress=True)


def _metrics_of_pictures(args: argparse.Namespace, methods: list[str], metrics: list[str]):
    from convscope.analysis.metrics.report import evaluate_methods
    from convscope.analysis.pasted import pasted_objects

    model = model_from(args)
    if args.pictures:
        inputs, masks = model.prepare([p.pixels for p in load_images(args.pictures)]), None
    else:
        pasted = pasted_objects(size=model.preprocess.input_size[0], per_pair=1)
        inputs, masks = model.preprocess.normalize(pasted.pictures), pasted.object_mask()
    return evaluate_methods(model, inputs, methods, metrics, masks=masks, progress=None)


def run_invariance(args: argparse.Namespace) -> None:
    model = model_from(args)
    pictures = load_images(args.images)
    target: Target | list[int] | None = None
    if args.target and len(args.target) == 1:
        target = parse_target(args.target[0], model)
    elif args.target:  # one class per picture
        if len(args.target) != len(pictures):
            raise ValueError(f"--targets names {len(args.target)} classes for {len(pictures)} pictures: give one "
                             "class per picture, or one for all")
        target = [model.class_index(int(t) if t.isdigit() else t) for t in args.target]
    kinds = TRANSFORMS if args.transform == "all" else (args.transform,)
    for kind in kinds:
        curves = invariance_curves(model, [p.pixels for p in pictures], kind, layers=args.layers, target=target,
                                   names=[p.name for p in pictures])
        made = {**identity(args, pictures=("images",)), "transform": kind}
        written(curves.picture().save(args.out / output_name("invariance", kind, identity=made)))
        table = {"transform": kind, "amounts": curves.amounts.tolist(),
                 "classes": dict(zip(curves.picture_names, curves.class_names, strict=True)),
                 "probabilities": dict(zip(curves.picture_names, curves.probabilities.tolist(), strict=True)),
                 "distances": {layer: dict(zip(curves.picture_names, d.tolist(), strict=True))
                               for layer, d in curves.distances.items()}}
        path = args.out / output_name("invariance", kind, identity=made, ext="json")
        path.write_text(json.dumps(table, indent=1))
        written(path)
