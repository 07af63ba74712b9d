"""explain: which pixels made the network say what it said."""

from __future__ import annotations

import argparse
import inspect
import math

from convscope.attribution import METHODS, compare, explain
from convscope.attribution.dataset import TARGET_HELP
from convscope.cli.common import add_model_options, model_from, written
from convscope.cli.output_names import output_name, picture_source, settings
from convscope.data.opening import DATA_HELP, names_a_picture_set
from convscope.images import expand_sources, load_images
from convscope.logs import get_logger
from convscope.models import DEFAULT_MODEL
from convscope.models.fashion import FASHION_MODEL
from convscope.targets import parse_target

log = get_logger(__name__)
SET_DEFAULTS = {"centre": 0.5, "batch_size": 32, "workers": None, "limit": None, "overwrite": False, "plain": False}


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("explain", help="attribution maps: which pixels made the decision",
                            description="Write the map and an overlay for one method, or with --method all a figure "
                                        "of every method side by side.")
    p.add_argument("images", nargs="+", help="image files, folders or sample:NAME (e.g. sample:chelsea); or one "
                                              "picture set (fashion-mnist[:split], samples, a folder with --set or "
                                              "--targets true), explained as a whole as explain-set does")
    p.add_argument("--set", action="store_true", help="explain the one folder given as a picture set: raw maps per "
                                                      "chunk in --out and where they fall (see explain-set)")
    p.add_argument("--method", default="grad_cam", choices=[*METHODS, "all"], metavar="METHOD",
                   help="one of " + ", ".join(METHODS) + ", or all (default: %(default)s)")
    p.add_argument("--targets", nargs="+", dest="target", help="class index or name, 'top' (default), "
                                               "channel:LAYER:C, "
                                               "neuron:LAYER:C[:Y:X], region:CLASS:X0,Y0,X1,Y1 (segmentation) or "
                                               "box:LABEL:X0,Y0,X1,Y1 (detection); one for all images, or one per "
                                               "image (e.g. "
                                               "their true labels, as in Zeiler & Fergus's occlusion figure)")
    p.add_argument("--layer", help="layer for CAM-type methods, and the feature map layer of occlusion "
                                   "(default: the last feature map, bn2 on EfficientNet-Lite)")
    add_method_settings(p)
    p.add_argument("--batch-size", type=int, help="inputs per forward pass for occlusion, SmoothGrad, "
                                                  "Integrated Gradients, NoiseTunnel, Score-CAM and Ablation-CAM")
    add_model_options(p, model_default=f"{FASHION_MODEL} for fashion-mnist, else {DEFAULT_MODEL}")
    p.set_defaults(model=None, run=run_explain)

    p = commands.add_parser("explain-set", help="attribution maps for a whole picture set, and where they fall",
                            description="Run one method over every picture of a set in batches, storing the raw maps "
                                        "(one file per chunk, with targets, scores and picture ids) in --out; a "
                                        "rerun resumes, torchrun splits the chunks over processes. Ends with "
                                        "summary.csv/png: per class, the share of map mass in the picture's centre "
                                        "vs its border.")
    p.add_argument("data", help=DATA_HELP)
    p.add_argument("--method", default="grad_cam", choices=list(METHODS), metavar="METHOD",
                   help="one of " + ", ".join(METHODS) + " (default: %(default)s)")
    p.add_argument("--target", default="top", help=f"{TARGET_HELP} (default: %(default)s)")
    p.add_argument("--layer", help="layer for CAM-type methods (default: the last feature map)")
    p.add_argument("--centre", type=float, default=SET_DEFAULTS["centre"],
                   help="share of each side that the centre box covers (default: %(default)s, a quarter of the area)")
    p.add_argument("--batch-size", type=int, default=SET_DEFAULTS["batch_size"],
                   help="pictures per batch and per chunk file (default: %(default)s)")
    p.add_argument("--workers", type=int, help="data-loading processes (default: 0 for in-memory sets, else ≤4)")
    p.add_argument("--limit", type=int, help="explain only the first N pictures")
    add_method_settings(p)
    p.add_argument("--overwrite", action="store_true",
                   help="discard the maps of a different run in --out, or write into a folder that holds other "
                        "files (they are kept)")
    p.add_argument("--bare-rate", action="store_true", dest="plain",
                   help="also time a bare forward+backward pass over the same batches and print both rates")
    add_model_options(p, out="maps/latest", model_default=f"{FASHION_MODEL} for fashion-mnist, else {DEFAULT_MODEL}")
    p.set_defaults(model=None, run=run_explain_set)


def add_method_settings(p: argparse.ArgumentParser) -> None:
    """The settings of the methods that have them: occluder, Integrated Gradients steps, SmoothGrad samples."""
    p.add_argument("--occluder-size", type=int, dest="size", help="occluder size in pixels (default 32)")
    p.add_argument("--occluder-stride", type=int, dest="stride", help="occluder stride in pixels (default 16)")
    p.add_argument("--plain-occlusion", action="store_true",
                   help="occlusion: run every occluded copy through the whole model instead of recomputing only "
                        "what the occluder changes (the same maps, slower; for checking)")
    p.add_argument("--steps", type=int, help="Integrated Gradients, layer_conductance and internal_influence steps "
                                             "(default 50)")
    p.add_argument("--samples", type=int,
                   help="SmoothGrad samples (default 50), noise_tunnel and gradient_shap samples (default 16), "
                        "shapley_value_sampling orders (default 25), lime and kernel_shap masked copies (default 200)")
    p.add_argument("--around", metavar="METHOD", help="noise_tunnel: the method run on the noisy copies "
                                                      "(default saliency; e.g. integrated_gradients, grad_cam)")
    p.add_argument("--nt-type", choices=["smoothgrad", "smoothgrad_sq", "vargrad"],
                   help="noise_tunnel: the mean map, the mean squared map or their variance (default smoothgrad)")
    p.add_argument("--eigen-smooth", action="store_true",
                   help="CAMs that sum channels (and full_grad): the first principal component of the weighted maps "
                        "(full_grad: of its per-layer maps) instead")
    p.add_argument("--aug-smooth", action="store_true",
                   help="CAMs: the mean map over the picture and its mirror image, each ×0.9, ×1 and ×1.1 "
                        "(pytorch-grad-cam's test-time augmentation)")
    p.add_argument("--kernel", choices=["sigmoid", "rbf", "poly", "linear", "cosine"],
                   help="kpca_cam: the kernel of its kernel PCA (default sigmoid, as pytorch-grad-cam)")
    p.add_argument("--alpha", type=float, help="finer_cam: how much of the similar classes' scores is subtracted "
                                               "(default 1: the difference; 0: the target alone)")
    p.add_argument("--comparison", type=int, nargs="+", metavar="RANK",
                   help="finer_cam: which of the classes closest to the target to compare with, by rank "
                        "(default 1 2 3: the three closest)")
    p.add_argument("--composite", help="LRP's rules per layer: epsilon-plus-flat (default), epsilon-plus, "
                                       "epsilon-gamma-box, epsilon-alpha2-beta1 or epsilon-alpha2-beta1-flat")


def _options(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    batch = {"batch_size": args.batch_size}
    plain = False if getattr(args, "plain_occlusion", False) else None  # None: Occlusion's default, incremental
    smooth = {"eigen_smooth": True} if getattr(args, "eigen_smooth", False) else {}
    around, kind = getattr(args, "around", None), getattr(args, "nt_type", None)
    options: dict[str, dict[str, object]] = {
        "occlusion": {"size": args.size, "stride": args.stride, "incremental": plain, **batch},
        "integrated_gradients": {"steps": args.steps, **batch}, "smooth_grad": {"samples": args.samples, **batch},
        "score_cam": {**batch, **smooth}, "ablation_cam": {**batch, **smooth}, "feature_ablation": batch,
        "shapley_value_sampling": {"samples": args.samples, **batch}, "lime": {"samples": args.samples, **batch},
        "kernel_shap": {"samples": args.samples, **batch}, "layer_conductance": {"steps": args.steps, **batch},
        "internal_influence": {"steps": args.steps, **batch},
        "deep_lift_shap": batch, "gradient_shap": {"samples": args.samples, **batch},
        "noise_tunnel": {"around": around, "kind": kind, "samples": args.samples, **batch},
        "lrp": {"composite": getattr(args, "composite", None)},
        "kpca_cam": {"kernel": getattr(args, "kernel", None)}}
    for name in ("grad_cam", "grad_cam_plus_plus", "layer_cam", "hires_cam", "grad_cam_element_wise", "xgrad_cam",
                 "shapley_cam", "finer_cam", "full_grad"):
        options[name] = dict(smooth)
    ranks = getattr(args, "comparison", None)
    options["finer_cam"].update(alpha=getattr(args, "alpha", None), comparison=tuple(ranks) if ranks else None)
    if getattr(args, "aug_smooth", False):
        for name, method in METHODS.items():
            if "aug_smooth" in inspect.signature(method.__init__).parameters:
                options[name] = {**options.get(name, {}), "aug_smooth": True}
    inner = {k: v for k, v in options.get(around or "saliency", {}).items() if v is not None and k != "samples"}
    options["noise_tunnel"]["around_options"] = inner or None  # e.g. --steps for the Integrated Gradients inside
    return options


def _check_method_settings(args: argparse.Namespace) -> None:
    """A ``ValueError`` when a setting is given that the chosen method would not use."""
    options = _options(args)
    for flag, key in (("--around", "around"), ("--nt-type", "kind"), ("--eigen-smooth", "eigen_smooth"),
                      ("--aug-smooth", "aug_smooth"), ("--kernel", "kernel"), ("--alpha", "alpha"),
                      ("--comparison", "comparison")):
        users = [name for name, values in options.items() if values.get(key) not in (None, False)]
        if users and args.method != "all" and args.method not in users:
            raise ValueError(f"{flag} applies to {', '.join(users)}, not to --method {args.method}")


def _clean(options: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in options.items() if v is not None}


def run_explain(args: argparse.Namespace) -> None:
    if _explains_a_set(args):
        run_explain_set(_as_set_arguments(args))
        return
    _check_method_settings(args)
    args.model = args.model or DEFAULT_MODEL
    model = model_from(args)
    sources = expand_sources(args.images)
    pictures = load_images(sources)
    texts = args.target or [None]
    if len(texts) not in (1, len(pictures)):
        raise ValueError(f"--targets names {len(texts)} targets for {len(pictures)} pictures: give one per picture "
                         "(in the order they are listed), or one for all")
    targets = [parse_target(text, model) for text in texts] * (len(pictures) if len(texts) == 1 else 1)
    texts = texts * (len(pictures) if len(texts) == 1 else 1)
    options = {name: _clean(values) for name, values in _options(args).items()}
    common = settings(args, leave_out=("images", "target"))
    for source, picture, target, text in zip(sources, pictures, targets, texts, strict=True):
        identity = {**common, "picture": picture_source(source), "target": text}
        parts = ("explain", picture.name, args.method, text, args.layer)  # readable; the digest tells runs apart
        if args.method == "all":
            figure = compare(model, [picture.pixels], target=target, layer=args.layer, names=[picture.name],
                             options=options)
            written(figure.save(args.out / output_name(*parts, identity=identity)))
            continue
        result = explain(model, picture.pixels, args.method, target, layer=args.layer,
                         **options.get(args.method, {}))
        if result.note:
            log.warning(result.note)
        written(result.map_figure().save(args.out / output_name(*parts, "map", identity=identity)))
        written(result.overlay_figure().save(args.out / output_name(*parts, "overlay", identity=identity)))
        if result.occlusion is not None:
            written(result.occlusion_picture().save(args.out / output_name(*parts, "maps", identity=identity)))
        print(f"  {picture.name}: {result.title} for {result.labels[0]}")


def _explains_a_set(args: argparse.Namespace) -> bool:
    """Whether ``explain`` was given one picture set (by name, ``--set`` or ``--targets true``) rather than pictures."""
    wants_set = args.set or args.target == ["true"] or (len(args.images) == 1 and names_a_picture_set(args.images[0]))
    if wants_set and len(args.images) != 1:
        raise ValueError(f"a picture set is explained one at a time: give one folder or set name, not "
                         f"{len(args.images)} (or leave out --set and --targets true to explain pictures one by one)")
    return wants_set


def _as_set_arguments(args: argparse.Namespace) -> argparse.Namespace:
    """``explain``'s arguments as ``explain-set`` takes them (its defaults for what ``explain`` does not ask)."""
    if args.method == "all":
        raise ValueError("--method all draws one figure per picture; a picture set is explained one method at a time "
                         "(e.g. --method grad_cam)")
    if args.target is not None and len(args.target) != 1:
        raise ValueError(f"a picture set takes one --targets value for all its pictures ({TARGET_HELP}), "
                         f"not {len(args.target)}")
    values = {**SET_DEFAULTS, **vars(args), "data": args.images[0], "target": (args.target or ["top"])[0]}
    values["batch_size"] = args.batch_size or SET_DEFAULTS["batch_size"]
    return argparse.Namespace(**values)


def run_explain_set(args: argparse.Namespace) -> None:
    from convscope.attribution.dataset import SetExplainer, plain_rate
    from convscope.attribution.dataset_summary import SUMMARY_CSV, SUMMARY_PNG, summarise
    from convscope.data.opening import open_dataset
    from convscope.models import load_model
    from convscope.scan.distributed import launched_by_torchrun, local_device

    _check_method_settings(args)
    pictures = open_dataset(args.data, limit=args.limit)
    name = args.model or (FASHION_MODEL if pictures.spec().get("kind") == "fashion-mnist" else DEFAULT_MODEL)
    device = args.device or (local_device() if launched_by_torchrun() else None)
    model = load_model(name, weights=args.weights, device=device, classes=args.classes, output=args.output)
    options = _clean(_options(args).get(args.method, {}))
    options.pop("batch_size", None)
    explainer = SetExplainer(model, args.method, target=args.target, layer=args.layer, centre=args.centre, **options)
    if getattr(explainer.method, "may_ignore_pictures", False) and len(pictures) > 0:
        from convscope.attribution.picture_independence import NOTE, ignores_pictures

        if ignores_pictures(explainer.method, model.prepare([pictures.picture(0)])):
            log.warning(f"{explainer.method.title}: {NOTE}")
    weights = str(args.weights.resolve()) if args.weights is not None else None
    result = explainer.run(pictures, args.out, batch_size=args.batch_size, workers=args.workers,
                           overwrite=args.overwrite, model_source={"name": name, "weights": weights})
    if launched_by_torchrun():
        import torch.distributed as dist

        if dist.get_rank() != 0:
            return
    print(f"{explainer.method.title} on {model.name}, {pictures.describe()}, target {args.target}")
    if result.explained:
        print(f"  explained {result.explained} pictures in {result.seconds:.1f} s: {result.rate:.1f} pictures/s")
    else:
        print(f"  all {result.count} pictures were already explained in {args.out}")
    if args.plain and result.explained:
        plain = plain_rate(model, pictures, batch_size=args.batch_size, workers=args.workers)
        print(f"  a plain forward+backward pass over the same loader: {plain:.1f} pictures/s "
              f"(explain-set runs at {result.rate / plain:.2f}× its rate)")
    rows = summarise(args.out)
    overall = rows[-1]
    measured = [row for row in rows[:-1] if not math.isnan(row.centre_share)]  # a class with no map has no share
    print(f"  share of map mass in the centre ({overall.centre_area:.0%} of the area): all {overall.centre_share:.0%}"
          + "".join(f", {row.name} {row.centre_share:.0%}" for row in sorted(
              measured, key=lambda r: r.centre_share)[:5]) + (" …" if len(measured) > 5 else "")
          + (f" ({len(rows) - 1 - len(measured)} classes without a map)" if len(measured) < len(rows) - 1 else ""))
    for file in (SUMMARY_CSV, SUMMARY_PNG):
        written(args.out / file)
