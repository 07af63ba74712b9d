"""classviz, featviz, facets, invert, dream, fool, texture, style, fast-style: pictures the network makes."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from convscope.cli.common import add_model_options, model_from, slug, written
from convscope.cli.output_names import identity, output_name, picture_source, run_names, write_text
from convscope.images import expand_sources, load_image, load_images


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("classviz", help="class model: the picture the model finds most typical of a class")
    p.add_argument("--targets", nargs="+", required=True, help="class indices or names, e.g. 281 or tabby flamingo")
    p.add_argument("--recipe", choices=("fourier", "simonyan"), default="fourier",
                   help="fourier: decorrelated Fourier image, the recognisable pictures (default); simonyan: free "
                        "pixels + blur + clipping, the paper's look (saturated high-frequency colours in which the "
                        "class shows only on a close look, though the model is sure of it)")
    p.add_argument("--objective", choices=("score+log-probability", "score", "log-probability"),
                   default="score+log-probability", metavar="OBJECTIVE",
                   help="what is maximised: score+log-probability (default), score or log-probability; 'score' is "
                        "Simonyan et al.'s S_c(I) (the lecture's arg max S_c(I) − λ‖I‖²); the default adds log p_c, "
                        "which also pushes the neighbouring classes down")
    p.add_argument("--l2", type=float, default=3e-5, metavar="LAMBDA",
                   help="λ, the weight of ‖I‖² (default: %(default)s; 0 for none)")
    p.add_argument("--size", type=int, help="picture side (default: the model's input size)")
    p.add_argument("--steps", type=int, default=256, help="optimisation steps (default: %(default)s)")
    _common(p, "classviz", run_classviz)

    p = commands.add_parser("featviz", help="feature visualisation of channels (or centre neurons) of a layer")
    p.add_argument("--layer", required=True, help="dotted layer name (see `convscope layers`)")
    p.add_argument("--channels", type=int, nargs="+", required=True, help="one or more channel indices")
    p.add_argument("--kind", choices=("channel", "neuron"), default="channel",
                   help="maximise a whole channel, or its centre neuron only (default: %(default)s)")
    p.add_argument("--size", type=int, default=128, help="picture side (default: %(default)s)")
    p.add_argument("--steps", type=int, default=256, help="optimisation steps (default: %(default)s)")
    _common(p, "featviz", run_featviz)

    p = commands.add_parser("facets", help="multifaceted visualisation of a channel from a pool of pictures")
    p.add_argument("data", nargs="*", help="pictures, folders or sample:NAME cut into crops for the pool "
                                           "(default: the bundled photos)")
    p.add_argument("--layer", required=True, help="dotted layer name (see `convscope layers`)")
    p.add_argument("--channel", type=int, required=True, help="the channel whose facets are drawn")
    p.add_argument("--facets", type=int, default=4, help="facets (clusters of the pool) drawn (default: %(default)s)")
    p.add_argument("--size", type=int, default=112, help="side of the pool crops and facet pictures")
    p.add_argument("--steps", type=int, default=200, help="optimisation steps per facet (default: %(default)s)")
    _common(p, "facets", run_facets)

    p = commands.add_parser("invert", help="feature inversion: reconstruct a picture from each layer's features")
    p.add_argument("image", help="image file or sample:NAME")
    p.add_argument("--layers", nargs="+", required=True, help="layers from shallow to deep")
    p.add_argument("--size", type=int, help="picture side (default: the model's input size)")
    p.add_argument("--steps", type=int, default=400, help="optimisation steps (default: %(default)s)")
    p.add_argument("--tv", type=float, default=0.05, help="weight of the TV^beta regulariser")
    p.add_argument("--beta", type=float, default=2.0, help="β of the TV^β regulariser (default: %(default)s)")
    _common(p, "invert", run_invert)

    p = commands.add_parser("dream", help="DeepDream: amplify what a layer sees in a photo")
    p.add_argument("image", help="image file or sample:NAME")
    p.add_argument("--layer", required=True, help="dotted layer name (see `convscope layers`)")
    p.add_argument("--channel", type=int, help="amplify one channel only")
    p.add_argument("--size", type=int, default=320, help="short side of the result")
    p.add_argument("--octaves", type=int, default=4, help="scales, coarse to fine (default: %(default)s)")
    p.add_argument("--steps", type=int, default=10, help="steps per octave")
    _common(p, "dream", run_dream)

    p = commands.add_parser("fool", help="adversarial images: targeted (default), FGSM or PGD")
    p.add_argument("images", nargs="+", help="image files, folders or sample:NAME")
    p.add_argument("--target", help="class to turn the pictures into (targeted PGD)")
    p.add_argument("--method", choices=("targeted", "fgsm", "pgd"), help="default: targeted with --target, "
                                                                          "else pgd (untargeted)")
    p.add_argument("--epsilon", type=_epsilon, help="largest change per pixel, e.g. 2/255 or 0.01 "
                                                     "(default: 2/255 targeted and FGSM, 4/255 PGD)")
    p.add_argument("--steps", type=int, help="attack steps (default: 100; 20 for PGD with --robustness)")
    p.add_argument("--magnify", type=float, help="show the change × this factor (default: scaled to fit)")
    p.add_argument("--robustness", action="store_true",
                   help="measure accuracy under FGSM and PGD over --epsilons instead: IMAGES is one labelled set "
                        "('fashion-mnist:test' or a folder with class sub-folders)")
    p.add_argument("--epsilons", type=_fraction, nargs="+", default=[0, 0.02, 0.05, 0.1, 0.15, 0.2],
                   help="attack budgets for --robustness (default: %(default)s)")
    p.add_argument("--limit", type=int, default=500, help="pictures measured by --robustness (default: %(default)s)")
    p.add_argument("--compare", type=Path, nargs="+",
                   help="more weights files of the same model to measure beside --weights (--robustness)")
    _common(p, "fool", run_fool)

    p = commands.add_parser("texture", help="texture synthesis from a sample (Gram matrices or Efros-Leung)")
    p.add_argument("image", help="texture image or sample:brick / sample:grass / sample:gravel")
    p.add_argument("--method", choices=("gram", "efros-leung"), default="gram",
                   help="Gram matrices of a network's features (Gatys et al.) or non-parametric sampling "
                        "(Efros & Leung) (default: %(default)s)")
    p.add_argument("--source-size", type=int, help="scale the source's short side to this first "
                                                   "(default: 192 gram, 64 efros-leung)")
    p.add_argument("--size", type=int, help="output side (default: the scaled source's size for gram, 96 efros-leung)")
    p.add_argument("--steps", type=int, default=500, help="optimisation steps (gram)")
    p.add_argument("--window", type=int, default=11, help="neighbourhood side (efros-leung)")
    p.add_argument("--layers", nargs="+", help="layers whose Gram matrices are matched (gram)")
    p.add_argument("--smoothing", choices=("softmax", "none"),
                   help="softmax smoothing of the activations before their Gram matrices (Wang et al. 2021) or "
                        "none (default: chosen with the layers — none for VGG and for EfficientNet-Lite's rectified "
                        "layers, softmax for other networks)")
    _common(p, "texture", run_texture)

    p = commands.add_parser("style", help="neural style transfer (Gatys et al.)")
    p.add_argument("content", help="content photo or sample:NAME")
    p.add_argument("style", help="style image or sample:NAME")
    p.add_argument("--size", type=int, default=256, help="short side of the result")
    p.add_argument("--steps", type=int, default=300, help="optimisation steps (default: %(default)s)")
    p.add_argument("--style-weight", type=float, default=10.0, help="weight of the style loss (default: %(default)s)")
    p.add_argument("--content-weight", type=float, default=1.0,
                   help="weight of the content loss (default: %(default)s)")
    p.add_argument("--smoothing", choices=("softmax", "none"),
                   help="softmax smoothing of the activations before their Gram matrices or none (default: "
                        "chosen with the model, as texture does)")
    _common(p, "style", run_style)

    p = commands.add_parser("fast-style", help="fast style transfer: train a transform network, then apply it")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    t = actions.add_parser("train", help="train a network for one style")
    t.add_argument("style", help="style image or sample:NAME")
    t.add_argument("--content", nargs="+", help="content pictures or folders (default: the bundled photos)")
    t.add_argument("--steps", type=int, default=2000, help="training steps (default: %(default)s)")
    t.add_argument("--batch-size", type=int, default=4, help="content crops per step")
    t.add_argument("--size", type=int, default=256, help="side of the content crops (default: %(default)s)")
    t.add_argument("--width", type=int, default=32, help="channels of the transform network's first layer")
    t.add_argument("--save", type=Path, help="where to write the network (default: OUT/fast_style_STYLE_DIGEST.pt)")
    _common(t, "fast-style train", run_fast_train)
    a = actions.add_parser("apply", help="stylise pictures with a trained network")
    a.add_argument("network", type=Path, help="file written by `convscope fast-style train`")
    a.add_argument("images", nargs="+", help="pictures, folders or sample:NAME")
    a.add_argument("--size", type=int, help="scale the short side to this first")
    a.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA when available)")
    a.add_argument("--out", type=Path, default=Path("out"), help="output folder (default: %(default)s)")
    a.set_defaults(run=run_fast_apply)


def _common(parser: argparse.ArgumentParser, name: str, run) -> None:
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    add_model_options(parser)
    parser.set_defaults(run=run)


def _read_fraction(text: str) -> float:
    try:
        if "/" in text:
            top, bottom = text.split("/")
            return float(top) / float(bottom)
        return float(text)
    except (ValueError, ZeroDivisionError) as error:
        raise argparse.ArgumentTypeError(f"not a number or fraction: {text!r} (write 2/255 or 0.008)") from error


def _fraction(text: str) -> float:
    """An --epsilons entry: a change of pixels in [0, 1] written as 0.008 or 2/255 (0: the clean accuracy)."""
    value = _read_fraction(text)
    if not 0 <= value <= 1:  # NaN fails this too
        raise argparse.ArgumentTypeError(f"must lie in [0, 1] (a change of pixels in [0, 1], e.g. 2/255), got {text}")
    return value


def _epsilon(text: str) -> float:
    """--epsilon: the largest change per pixel, in (0, 1] (0 would change nothing)."""
    value = _read_fraction(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must lie in (0, 1] (the largest change of a pixel in [0, 1], e.g. 2/255), "
                                         f"got {text}")
    return value


def _name(source: str) -> str:
    """A file-name part for an image argument: ``sample:brick`` → ``brick``, ``photos/cat.jpg`` → ``cat``."""
    return slug(source.removeprefix("sample:") if source.startswith("sample:") else Path(source).stem)


def _generator(args: argparse.Namespace) -> torch.Generator:
    return torch.Generator().manual_seed(args.seed)


def run_classviz(args: argparse.Namespace) -> None:
    from convscope.synthesis import class_model

    if not math.isfinite(args.l2) or args.l2 < 0:
        raise ValueError(f"--l2 is a weight ≥ 0, got {args.l2}")
    model = model_from(args)
    targets = [int(t) if t.isdigit() else t for t in args.targets]
    objective = args.objective.replace("-", "_")
    result = class_model(model, targets, size=args.size, recipe=args.recipe, steps=args.steps,
                         objective=objective, l2_weight=args.l2, generator=_generator(args))
    print("\n".join(result.lines()))
    variant = None if objective == "score+log_probability" else args.objective
    written(result.picture().save(args.out / output_name("classviz", "_".join(args.targets), args.recipe, variant,
                                                          identity=identity(args))))


def run_featviz(args: argparse.Namespace) -> None:
    from convscope.synthesis import visualise_features

    model = model_from(args)
    result = visualise_features(model, args.layer, args.channels, kind=args.kind, size=args.size, steps=args.steps,
                                generator=_generator(args))
    for c, value in zip(result.channels, result.activations, strict=True):
        print(f"{args.layer} #{c}: {args.kind} activation {float(value):.3f}")
    channels = "_".join(map(str, args.channels[:8]))
    written(result.picture().save(args.out / output_name("featviz", args.layer, args.kind, channels,
                                                          identity=identity(args))))


def run_facets(args: argparse.Namespace) -> None:
    from convscope.demo.gallery_run import DEMO_SAMPLES
    from convscope.synthesis import crop_pool, multifaceted

    model = model_from(args)
    sources = args.data or [f"sample:{name}" for name in DEMO_SAMPLES]
    pictures = [p.pixels for p in load_images(sources)]
    pool = crop_pool(pictures, args.size)
    print(f"pool: {len(pool)} crops of {len(pictures)} pictures")
    result = multifaceted(model, args.layer, args.channel, pool, facets=args.facets, steps=args.steps,
                          generator=_generator(args))
    for k in range(len(result.images)):
        print(f"facet {k + 1}: {int((result.assignments == k).sum())} top pictures, activation "
              f"{float(result.start_scores[k]):.3f} (cluster mean) → {float(result.final_scores[k]):.3f}")
    written(result.picture().save(args.out / output_name("facets", args.layer, args.channel,
                                                          identity=identity(args, pictures=("data",)))))


def run_invert(args: argparse.Namespace) -> None:
    from convscope.synthesis import invert

    model = model_from(args)
    result = invert(model, load_image(args.image), args.layers, size=args.size, steps=args.steps,
                    tv_weight=args.tv, beta=args.beta, generator=_generator(args))
    print("\n".join(result.lines()))
    written(result.picture().save(args.out / output_name("invert", _name(args.image), *args.layers[-1:],
                                                          identity=identity(args, pictures=("image",)))))


def run_dream(args: argparse.Namespace) -> None:
    from convscope.synthesis import dream

    model = model_from(args)
    result = dream(model, load_image(args.image), args.layer, channel_index=args.channel, size=args.size,
                   octaves=args.octaves, steps=args.steps, generator=_generator(args))
    print(f"objective rise per octave: {', '.join(f'×{g:.2f}' for g in result.gains)}")
    parts, made = ("dream", _name(args.image), args.layer, args.channel), identity(args, pictures=("image",))
    written(result.picture().save(args.out / output_name(*parts, identity=made)))
    from convscope.render.picture import Picture

    written(Picture(result.image).save(args.out / output_name(*parts, "image", identity=made)))


def run_fool(args: argparse.Namespace) -> None:
    from convscope.synthesis import fgsm, fool, pgd

    if args.robustness:
        return run_robustness(args)
    if args.compare:
        raise ValueError("--compare measures more weights files beside --weights in a --robustness study: add "
                         "--robustness, or leave out --compare")
    args.steps = args.steps or 100
    model = model_from(args)
    pictures = [p.pixels for p in load_images(args.images)]
    method = args.method or ("targeted" if args.target else "pgd")
    if method == "targeted":
        if not args.target:
            raise ValueError("a targeted attack needs --target CLASS (or use --method pgd / fgsm)")
        target = int(args.target) if args.target.isdigit() else args.target
        result = fool(model, pictures, target, epsilon=args.epsilon or 2 / 255, steps=args.steps,
                      generator=_generator(args))
    elif method == "fgsm":
        result = fgsm(model, pictures, args.epsilon or 2 / 255, target=args.target)
    else:
        result = pgd(model, pictures, args.epsilon or 4 / 255, steps=args.steps, target=args.target,
                     generator=_generator(args))
    print("\n".join(result.lines()))
    shown = _name(args.images[0]) if len(args.images) == 1 else f"{len(pictures)}pictures"
    name = output_name("fool", shown, method, args.target, identity=identity(args, pictures=("images",)))
    written(result.picture(magnify=args.magnify).save(args.out / name))


def run_robustness(args: argparse.Namespace) -> None:
    from convscope.analysis.checks import write_csv
    from convscope.analysis.robustness import ATTACKS, gradient_comparison, robustness_curves
    from convscope.data.opening import open_dataset
    from convscope.data.pictures import FittedPictures
    from convscope.models import load_model

    if len(args.images) != 1:
        raise ValueError("--robustness measures one labelled set: give one DATA ('fashion-mnist:test' or a folder "
                         "with class sub-folders)")
    if args.limit < 1:
        raise ValueError(f"--limit must be at least 1, got {args.limit}")
    data = open_dataset(args.images[0], limit=args.limit)
    labels = data.labels()
    if (labels < 0).any():
        raise ValueError(f"{args.images[0]} has no labels: robustness needs class sub-folders or Fashion-MNIST")
    compare = args.compare or []
    models = [model_from(args)] + [load_model(args.model, weights=w, device=args.device) for w in compare]
    files = [args.weights, *compare]
    stems = [w.stem for w in files if w is not None]
    for model, weights in zip(models, files, strict=True):  # name each model by its weights file
        if weights is not None:
            model.name = weights.stem if len(set(stems)) == len(stems) else f"{weights.parent.name}/{weights.stem}"
    fitted = FittedPictures(data, models[0].preprocess)
    pictures = torch.stack([fitted[i][1] for i in range(len(fitted))])
    attacks = [args.method] if args.method in ATTACKS else list(ATTACKS)
    result = robustness_curves(models, pictures, labels, args.epsilons, attacks=attacks,
                               steps=args.steps or 20, seed=args.seed)
    comparison = gradient_comparison(models, pictures[:8], labels[:8])
    print("\n".join(result.lines()))
    name = run_names(args, "robustness", pictures=("images", "compare", "weights"))
    written(write_csv(args.out / name("csv"), result.rows()))
    written(write_text(args.out / name("md"), result.markdown() + "\n"))
    written(result.picture().save(args.out / name("png")))
    written(comparison.save(args.out / name("png", "gradients")))


def run_texture(args: argparse.Namespace) -> None:
    from convscope.synthesis import synthesise_texture
    from convscope.synthesis.texture import resize_short_side

    source = load_image(args.image)
    if args.method == "gram":
        model = model_from(args)
        source = resize_short_side(source, args.source_size or 192)
        result = synthesise_texture(model, source, "gram", size=args.size, steps=args.steps, layers=args.layers,
                                    smoothing=args.smoothing, generator=_generator(args))
    else:
        source = resize_short_side(source, args.source_size or 64)
        result = synthesise_texture(None, source, "efros-leung", size=args.size or 96, window=args.window,
                                    generator=_generator(args), device=args.device)
    print(result.summary())
    comparison = result.glcm()
    print("\n".join(comparison.lines()))
    made = identity(args, pictures=("image",))
    written(result.picture().save(args.out / output_name("texture", _name(args.image), args.method, identity=made)))
    written(comparison.picture().save(args.out / output_name("texture", _name(args.image), args.method, "glcm",
                                                              identity=made)))


def run_style(args: argparse.Namespace) -> None:
    from convscope.synthesis import style_transfer

    model = model_from(args)
    result = style_transfer(model, load_image(args.content), load_image(args.style), size=args.size,
                            steps=args.steps, style_weight=args.style_weight, content_weight=args.content_weight,
                            smoothing=args.smoothing, generator=_generator(args))
    print(result.summary())
    parts, made = ("style", _name(args.content), _name(args.style)), identity(args, pictures=("content", "style"))
    written(result.picture().save(args.out / output_name(*parts, identity=made)))
    from convscope.render.picture import Picture

    written(Picture(result.image).save(args.out / output_name(*parts, "image", identity=made)))


def run_fast_train(args: argparse.Namespace) -> None:
    from convscope.demo.gallery_run import DEMO_SAMPLES
    from convscope.synthesis import train_fast_style
    from convscope.synthesis.fast_style import save_target

    path = save_target(args.save or args.out / output_name(  # a path that cannot be written: refused before training
        "fast_style", _name(args.style), identity=identity(args, pictures=("style", "content")), ext="pt"))
    model = model_from(args)
    style = load_image(args.style)
    contents = [p.pixels for p in load_images(args.content or [f"sample:{n}" for n in DEMO_SAMPLES])]
    trained = train_fast_style(model, style, contents, steps=args.steps, batch=args.batch_size, size=args.size,
                               width=args.width, generator=_generator(args))
    print(f"trained {args.steps} steps: loss {float(trained.losses[0]):.4g} → {float(trained.losses[-1]):.4g} "
          f"(first tenth ÷ last tenth: {trained.loss_reduction:.2f})")
    written(trained.save(path))


def run_fast_apply(args: argparse.Namespace) -> None:
    from convscope.render.picture import Picture
    from convscope.synthesis import FastStyle

    trained = FastStyle.load(args.network, device=args.device)
    sources = expand_sources(args.images)
    common = identity(args, leave_out=("images",))
    for source, picture in zip(sources, load_images(sources), strict=True):
        made = trained.apply(picture.pixels, size=args.size)
        name = output_name("fast_style", picture.name, identity={**common, "picture": picture_source(source)})
        written(Picture(made).save(args.out / name))
