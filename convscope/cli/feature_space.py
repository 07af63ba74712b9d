"""train, scan, top-patches, neighbors, embed, dead-filters."""

from __future__ import annotations

import argparse
from pathlib import Path

from torch import Tensor

from convscope.cli.architecture import add_architecture_options, architecture_from
from convscope.cli.common import add_model_options, written
from convscope.cli.output_names import identity, output_name, settings
from convscope.data.opening import DATA_HELP, open_dataset
from convscope.logs import get_logger
from convscope.models import DEFAULT_MODEL, load_model
from convscope.models.fashion import FASHION_MODEL

log = get_logger(__name__)
SCAN_HELP = "a scan folder written by `convscope scan`"
TRAIN_FOLDER = "runs/fashion_cnn"


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("train", help="train the Fashion-MNIST CNN, one checkpoint per epoch")
    p.add_argument("data", nargs="?", help="folder with the Fashion-MNIST IDX files (default: Debian's "
                                  "/usr/share/datasets/fashion-mnist)")
    p.add_argument("--epochs", type=int, default=5, help="passes over the training pictures (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=128, help="pictures per training step (default: %(default)s)")
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate, decayed to 0 (default: %(default)s)")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="Adam weight decay (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial weights and the order of the pictures "
                                                       "(default: %(default)s)")
    p.add_argument("--shuffle-labels", action="store_true",
                   help="train on randomly permuted labels (the data randomisation test of the sanity checks)")
    p.add_argument("--train-pictures", type=int, help="use only the first N training pictures (default: all)")
    p.add_argument("--no-augment", dest="augment", action="store_false", help="no random horizontal flips")
    add_architecture_options(p)
    p.add_argument("--test-pictures", type=int, help="measure test accuracy on the first N test pictures "
                                                     "(default: all 10 000)")
    p.add_argument("--defence", choices=("adversarial", "noise", "representation"),
                   help="adversarial: train on PGD examples (Madry et al. 2018); noise: on pictures with Gaussian "
                        "pixel noise (--noise); representation: clean cross-entropy plus matching the features of "
                        "PGD pictures to the clean ones at --defence-layers")
    p.add_argument("--adversarial", action="store_true", help="the same as --defence adversarial")
    p.add_argument("--epsilon", type=float, default=0.1, help="L∞ radius of the PGD examples, pixels in [0, 1] "
                                                              "(default: %(default)s)")
    p.add_argument("--attack-steps", type=int, default=7, help="PGD steps per batch (default: %(default)s)")
    p.add_argument("--noise", type=float, default=0.1, help="σ of the training noise for --defence noise, pixels "
                                                            "in [0, 1] (default: %(default)s)")
    p.add_argument("--defence-layers", nargs="+", default=["relu2", "relu3", "relu7"],
                   help="layers whose features --defence representation matches (default: %(default)s)")
    p.add_argument("--defence-weight", type=float, default=1.0,
                   help="weight of the feature matching against the cross-entropy (default: %(default)s)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA when available)")
    p.add_argument("--out", type=Path,
                   help=f"folder for epoch_NN.pt and history.csv (default: {TRAIN_FOLDER}, or {TRAIN_FOLDER}_2 … when "
                        "that holds an earlier run)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the checkpoints and history of an earlier run in --out (other files are kept)")
    p.add_argument("--resume", action="store_true",
                   help="continue a stopped run in --out from its last checkpoint (same options; the result is the "
                        "same as an uninterrupted run)")
    p.set_defaults(run=run_train)

    p = commands.add_parser("scan", help="one pass over a picture set: features, top activations, statistics")
    p.add_argument("data", help=DATA_HELP)
    p.add_argument("--layers", nargs="+", required=True, help="dotted layer names (see `convscope layers`)")
    p.add_argument("-k", type=int, default=9, help="top pictures kept per channel (default: %(default)s)")
    p.add_argument("--pooling", choices=("mean", "max", "flatten"), default="mean",
                   help="feature vector per picture: mean or max over positions, or all values (default: mean)")
    p.add_argument("--batch-size", type=int, default=64, help="pictures per forward pass (default: %(default)s)")
    p.add_argument("--workers", type=int, help="data-loading processes (default: 0 for in-memory sets, else ≤4)")
    p.add_argument("--limit", type=int, help="scan only the first N pictures")
    p.add_argument("--checkpoint-every", type=float, default=60.0,
                   help="seconds between saves of the progress (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true",
                   help="discard a different, finished or damaged scan in --out (only once the new scan can run), "
                        "or write into a folder that holds other files (only the scan's own files are replaced)")
    p.add_argument("--wait", action="store_true",
                   help="when another scan is writing --out, wait for it to finish instead of stopping")
    add_model_options(p, out="scans/latest", model_default=f"{FASHION_MODEL} for fashion-mnist, else {DEFAULT_MODEL}")
    p.set_defaults(model=None, run=run_scan)

    p = commands.add_parser("top-patches", help="the pictures that excite each channel most, cut to the "
                                                "receptive field")
    p.add_argument("scan", type=Path, help=SCAN_HELP)
    p.add_argument("--layer", help="a scanned layer (default: the last)")
    p.add_argument("--channels", nargs="+", help="channels: 3 7 12, 0-15 or all (default: 0-15)")
    p.add_argument("-k", type=int, help="pictures per channel (default: all the scan kept)")
    p.add_argument("--context", action="store_true", help="also show whole pictures with the box drawn")
    p.add_argument("--projections", nargs="?", const="auto", choices=("auto", "deconvnet", "guided_backprop"),
                   help="also Zeiler & Fergus's figure 2: each top activation projected to pixels beside its "
                        "patch (auto: the deconvnet where the model has max-pooling, else guided backprop, since "
                        "without max-pooling the deconvnet map is the same for every picture)")
    p.add_argument("--directions", choices=("random", "pca"),
                   help="instead: single units beside random directions (or principal components) of the layer's "
                        "stored features, with a coherence score for each (Szegedy et al. 2014: are units special?)")
    p.add_argument("--count", type=int, help="units and directions drawn with --directions (default: 8)")
    p.add_argument("--seed", type=int, help="seed of the random directions and of the units drawn with "
                                            "--directions (default: 0)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N for the projections (default: CUDA when "
                                                  "available)")
    p.add_argument("--out", type=Path, help="output folder (default: the scan folder)")
    p.set_defaults(run=run_top_patches)

    p = commands.add_parser("neighbors", help="nearest pictures in feature space next to pixel space")
    p.add_argument("scan", type=Path, help=SCAN_HELP)
    p.add_argument("images", nargs="+", help="#N (the scan's picture N), image files, folders or sample:NAME")
    p.add_argument("--layer", help="a scanned layer (default: the last)")
    p.add_argument("-k", type=int, default=8, help="neighbours per picture (default: %(default)s)")
    p.add_argument("--metric", choices=("euclidean", "cosine"), default="euclidean",
                   help="distance between feature vectors (default: %(default)s)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA when available)")
    p.add_argument("--out", type=Path, help="output folder (default: the scan folder)")
    p.set_defaults(run=run_neighbors)

    p = commands.add_parser("embed", help="2-d map of a layer's features: PCA, t-SNE or UMAP, and a t-SNE grid")
    p.add_argument("scan", type=Path, help=SCAN_HELP)
    p.add_argument("--method", choices=("tsne", "pca", "umap"), default="tsne",
                   help="t-SNE, PCA or UMAP (pip install 'convscope[umap]') (default: %(default)s)")
    p.add_argument("--layer", help="a scanned layer (default: the last)")
    p.add_argument("--limit", type=int, default=5000, dest="max_points",
                   help="embed a seeded sample of at most this many pictures; 0 for all (default: %(default)s)")
    p.add_argument("--perplexity", type=float, default=30.0, help="t-SNE perplexity (default: %(default)s)")
    p.add_argument("--grid", type=int, default=20, help="side of the picture grid; 0 for none (default: 20)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample and of t-SNE/UMAP (default: %(default)s)")
    p.add_argument("--out", type=Path, help="output folder (default: the scan folder)")
    p.set_defaults(run=run_embed)

    p = commands.add_parser("dead-filters", help="channels that stay at zero for (almost) every picture")
    p.add_argument("scan", type=Path, help=SCAN_HELP)
    p.add_argument("--layer", help="a scanned layer (default: all scanned layers)")
    p.add_argument("--max-active", type=float, default=0.01,
                   help="dead when positive in at most this share of pictures (default: %(default)s)")
    p.add_argument("--out", type=Path, help="output folder (default: the scan folder)")
    p.set_defaults(run=run_dead_filters)


def run_train(args: argparse.Namespace) -> None:
    from convscope.models.fashion_training import TrainingSettings, free_folder, train_fashion_cnn

    if not 0 <= args.noise <= 1:
        raise ValueError(f"--noise is a σ on the [0, 1] pixel scale, between 0 and 1; got {args.noise}")
    if not 0 <= args.defence_weight < float("inf"):
        raise ValueError(f"--defence-weight must be a finite number ≥ 0, got {args.defence_weight}")
    defence = args.defence or ("adversarial" if args.adversarial else None)
    if args.adversarial and defence != "adversarial":
        raise ValueError(f"--adversarial is --defence adversarial: it cannot go with --defence {defence}")
    attacked = defence in ("adversarial", "representation")
    settings = TrainingSettings(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                                weight_decay=args.weight_decay, seed=args.seed, shuffle_labels=args.shuffle_labels,
                                train_pictures=args.train_pictures, augment=args.augment,
                                architecture=architecture_from(args), test_pictures=args.test_pictures,
                                adversarial_epsilon=args.epsilon if attacked else 0.0,
                                adversarial_steps=args.attack_steps,
                                noise_std=args.noise if defence == "noise" else 0.0,
                                representation_layers=tuple(args.defence_layers) if defence == "representation"
                                else (), representation_weight=args.defence_weight)
    if args.resume and args.out is None:
        raise ValueError("--resume continues the run in --out: name its folder")
    args.out = args.out or free_folder(TRAIN_FOLDER)  # the default folder is never an earlier run's
    run = train_fashion_cnn(args.out, settings, root=args.data, device=args.device, overwrite=args.overwrite,
                            resume=args.resume)
    written(args.out / "history.csv")
    print(f"final training accuracy {run.history[-1].train_accuracy:.2%}, test accuracy {run.test_accuracy:.2%}; "
          f"use it with --model {FASHION_MODEL} "
          f"--weights {args.out / f'epoch_{args.epochs:02d}.pt'}")


def run_scan(args: argparse.Namespace) -> None:
    from convscope.scan import Scan
    from convscope.scan.distributed import launched_by_torchrun, local_device

    pictures = open_dataset(args.data, limit=args.limit)
    name = args.model or (FASHION_MODEL if pictures.spec().get("kind") == "fashion-mnist" else DEFAULT_MODEL)
    device = args.device or (local_device() if launched_by_torchrun() else None)
    model = load_model(name, weights=args.weights, device=device, classes=args.classes, output=args.output)
    weights = str(args.weights.resolve()) if args.weights is not None else None
    result = Scan(model, args.layers, k=args.k, pooling=args.pooling).run(
        pictures, args.out, batch_size=args.batch_size, workers=args.workers, overwrite=args.overwrite,
        wait=args.wait, checkpoint_every=args.checkpoint_every, model_source={"name": name, "weights": weights})
    if launched_by_torchrun():
        import torch.distributed as dist

        if dist.get_rank() != 0:
            return
    print(f"{model.name} on {pictures.describe()}")
    for layer in result.layers:
        dead = result.dead_filters(layer)
        shape = "×".join(str(s) for s in result.shape(layer))
        print(f"  {layer}: {shape}, features {tuple(result.features(layer).shape)}, "
              f"{dead.summary}")
    written(args.out)


def run_top_patches(args: argparse.Namespace) -> None:
    from convscope.scan import ScanResult

    result = ScanResult.load(args.scan)
    layer = result.check_layer(args.layer)
    if args.directions:
        return run_directions(args, result, layer)
    if args.count is not None or args.seed is not None:
        raise ValueError("--count and --seed belong to --directions: add --directions random (or pca)")
    channels = parse_channels(args.channels, result.top(layer).values.shape[0])
    out = args.out or args.scan
    model = result.model(args.device) if args.projections else None  # fails before anything is written
    made = {**identity(args, leave_out=("channels", "context", "projections")), "layer": layer}
    for start in range(0, len(channels), 16):
        page = channels[start:start + 16]
        view = result.top_patches(layer, page, args.k)
        if view.note:
            log.warning(view.note[0].upper() + view.note[1:])
        parts, shown = ("top_patches", layer, f"{page[0]}-{page[-1]}"), {**made, "channels": page}
        written(view.picture().save(out / output_name(*parts, identity=shown)))
        if args.context:
            written(view.picture(context=True).save(out / output_name(*parts, "context", identity=shown)))
    if args.projections:
        from convscope.scan.projections import top_projections

        for start in range(0, len(channels), 8):
            page = channels[start:start + 8]
            figure = top_projections(result, layer, page, args.k, method=args.projections, model=model)
            if start == 0:
                print(figure.note[0].upper() + figure.note[1:] + ".")
            for note in figure.notes[2 if figure.patches.note else 1:]:  # the ties were told with the patches
                log.warning(note[0].upper() + note[1:])
            name = output_name("top_projections", layer, f"{page[0]}-{page[-1]}",
                               identity={**made, "channels": page, "projections": args.projections})
            written(figure.picture().save(out / name))


def run_directions(args: argparse.Namespace, result, layer: str) -> None:
    """Units against random directions (``top-patches --directions``): the figure, the scores, the verdict."""
    from convscope.scan.directions import direction_study

    if args.channels or args.projections or args.context:
        raise ValueError("--directions draws units chosen at random beside as many directions: leave out "
                         "--channels, --projections and --context")
    study = direction_study(result, layer, kind=args.directions, count=8 if args.count is None else args.count,
                            k=args.k or 9, seed=args.seed or 0)
    print("\n".join([*study.lines(), study.verdict()]))
    name = output_name("directions", layer, args.directions, identity=settings(args))
    written(study.picture().save((args.out or args.scan) / name))


def parse_channels(texts: list[str] | None, total: int) -> list[int]:
    """``['3', '7']``, ``['0-15']``, ``['2,5']`` or ``['all']`` → channel numbers (default: the first 16)."""
    if not texts:
        return list(range(min(16, total)))
    channels: list[int] = []
    for text in ",".join(texts).split(","):
        text = text.strip()
        if not text:
            continue
        if text == "all":
            channels.extend(range(total))
            continue
        first, dash, last = text.partition("-")
        try:
            channels.extend(range(int(first), int(last) + 1) if dash else [int(first)])
        except ValueError as error:
            raise ValueError(f"cannot read channels {text!r}: use numbers, ranges such as 0-15, or all") from error
    return list(dict.fromkeys(channels))


def run_neighbors(args: argparse.Namespace) -> None:
    from convscope.images import load_images
    from convscope.scan import ScanResult

    result = ScanResult.load(args.scan)
    queries: list = []
    outside: list[Tensor] = []
    for text in args.images:
        if text.startswith("#") or text.startswith("index:"):
            number = text.removeprefix("#").removeprefix("index:")
            if not number.isdigit():
                raise ValueError(f"{text!r} is not a picture number: write #N with N in 0 … {result.count - 1}")
            queries.append(int(number))
        else:
            outside.extend(p.pixels for p in load_images([text]))
    queries.extend(outside)
    model = result.model(args.device) if outside else None
    view = result.neighbors(queries, args.layer, k=args.k, metric=args.metric, model=model)
    feature_share, pixel_share = view.agreement()
    if feature_share == feature_share:
        print(f"neighbours with the query's class: {feature_share:.0%} in feature space, "
              f"{pixel_share:.0%} in pixel space")
    out = args.out or args.scan
    shown = args.images[0] if len(args.images) == 1 else f"{len(args.images)}queries"
    name = output_name("neighbors", view.layer, Path(shown).stem, identity=identity(args, pictures=("images",)))
    written(view.picture().save(out / name))


def run_embed(args: argparse.Namespace) -> None:
    from convscope.scan import ScanResult

    result = ScanResult.load(args.scan)
    options = {"perplexity": args.perplexity} if args.method == "tsne" else {}
    embedding = result.embed(args.layer, method=args.method, max_points=args.max_points or None, seed=args.seed,
                             **options)
    out = args.out or args.scan
    parts, made = (args.method, embedding.layer), {**identity(args), "layer": embedding.layer}
    if embedding.note:
        print(embedding.note)
    scatter = embedding.scatter()  # every picture is made before the first file is written
    grid = embedding.grid_picture(args.grid, seed=args.seed) if args.grid else None
    written(embedding.to_csv(out / output_name(*parts, identity=made, ext="csv")))
    written(scatter.save(out / output_name(*parts, identity=made)))
    if grid is not None:
        written(grid.save(out / output_name(*parts, "grid", identity=made)))


def run_dead_filters(args: argparse.Namespace) -> None:
    from convscope.scan import ScanResult

    result = ScanResult.load(args.scan)
    layers = [result.check_layer(args.layer)] if args.layer else result.layers
    out = args.out or args.scan
    for layer in layers:
        view = result.dead_filters(layer, max_active=args.max_active)
        print("\n".join(view.lines()))
        name = output_name("dead_filters", layer, identity={**identity(args), "layer": layer})
        written(view.picture().save(out / name))
