"""Speed of the atlas's batched feature visualisation against Lucent's one-channel-at-a-time loop, and the time of
a whole layer.

    python benchmarks/atlas.py [--channels 16] [--steps 32] [--size 128] [--repeats 2] [--device cpu]
                               [--layer blocks.4] [--layer-steps 256] [--layer-channels 112]
                               [--precision float32|bfloat16] [--skip-layer]

1. The same work: ``--channels`` channels of ``--layer`` of the embedded EfficientNet-Lite0 (16: one batch, as the
   atlas makes a layer on the CPU), one picture each,
   ``--size`` px, ``--steps`` steps, Lucid's recipe (decorrelated Fourier image, Lucent's standard transforms, Adam
   at lr 0.05, mean of the channel) — in ``lucent.optvis.render.render_vis`` one channel after the other (pictures
   not upsampled to 224: ``fixed_image_size=size``, so both see the same pixels; and as shipped, upsampled to 224)
   and in
   ``convscope.atlas.visualise_channels`` all in one batch; then the atlas's full set per channel (the
   visualisation, the negative one and 4 facets) in one batch; then both again with ``precision="bfloat16"``.
   Runs are interleaved; the best of ``--repeats``
   is shown, per channel and per picture, with the ratios (> 1: convscope is faster).
2. A whole layer (``--layer-channels`` of its channels, all by default: blocks.4 has 112) at ``--size`` px and
   ``--layer-steps`` steps, as ``convscope atlas`` makes it (no scan); with fewer channels the time of the whole
   layer is extrapolated and marked so. The load average is printed with each figure: the machine may be shared.

Measured on an idle 2-core AMD EPYC with AVX-512-BF16 (16 channels of blocks.4, 128 px, 32 steps, best of 3; the
table, the profile and the work of each side are in docs/benchmarks.md): with torch's 2 threads, convscope 5.0× less
wall time a channel than Lucent's loop at 128 px, the atlas 5.6× less a picture, 6.5× and 7.0× with
``--precision bfloat16``; with one thread (``OMP_NUM_THREADS=1``, CPU time) 2.9× and 2.9× (3.6× and 3.8× in
bfloat16). Lucent's step computes 1.9× the operations (the whole model forward); its loop is slower with a second
thread than without.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import torch

import convscope
from convscope.atlas.build import make_atlas
from convscope.atlas.memory_budget import default_batch
from convscope.atlas.visualise import Recipe, visualise_channels
from convscope.atlas.working_copy import working_copy
from convscope.models import load_model
from convscope.synthesis.sizes import layer_shape


def lucent_channels(model, layer: str, channels: list[int], size: int, steps: int,
                    fixed: bool = True) -> tuple[float, float]:
    """Wall and CPU seconds for Lucent's render_vis to make one picture per channel, one channel at a time."""
    from lucent.optvis import objectives, param, render, transform

    device = model.device
    mean = torch.tensor(model.preprocess.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(model.preprocess.std, device=device).view(1, -1, 1, 1)
    net = model.net.eval()
    flags = [p.requires_grad for p in net.parameters()]
    for p in net.parameters():
        p.requires_grad_(False)
    started, cpu = time.perf_counter(), time.process_time()
    for channel in channels:
        render.render_vis(net, objectives.channel(layer.replace(".", "_"), channel),
                          lambda: param.image(size, fft=True, decorrelate=True),
                          transforms=transform.standard_transforms + [lambda x: (x - mean) / std],
                          thresholds=(steps,), preprocess=False, progress=False, show_image=False,
                          fixed_image_size=size if fixed else None)
    _sync(device)
    seconds = time.perf_counter() - started, time.process_time() - cpu
    for p, flag in zip(net.parameters(), flags, strict=True):
        p.requires_grad_(flag)
    return seconds


def convscope_channels(fast, layer: str, channels: list[int], recipe: Recipe) -> tuple[float, float]:
    """Wall and CPU seconds for the atlas to make ``recipe``'s pictures of all ``channels``, in batches of the size
    the atlas chooses by default."""
    batch = default_batch(fast.device, recipe.group)
    started, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(channels), batch):
        visualise_channels(fast, layer, channels[start:start + batch], recipe, progress=False)
    _sync(fast.device)
    return time.perf_counter() - started, time.process_time() - cpu


def flops_per_picture_step(model, fast, layer: str, size: int) -> tuple[float, float]:
    """Floating-point operations of one picture's step (forward and the gradient towards the picture, counted by
    ``torch.utils.flop_counter``) at ``size`` px: convscope's copy stops at ``layer``; Lucent runs the whole model."""
    from torch.utils.flop_counter import FlopCounterMode

    from convscope.hooks import capture
    from convscope.synthesis.loop import forward_until_done, stop_after

    def count(net, stop: bool) -> float:
        picture = torch.rand(1, model.preprocess.channels, size, size, device=model.device, requires_grad=True)
        with FlopCounterMode(display=False) as counter:
            with capture(net, [layer]) as store, stop_after(net, [layer] if stop else []):
                forward_until_done(net, picture)
            store.activation(layer)[:, 0].mean().backward()
        return float(counter.get_total_flops())

    flags = [p.requires_grad for p in model.net.parameters()]
    model.net.eval().requires_grad_(False)
    try:
        return count(fast.net, True), count(model.net, False)
    finally:
        for p, flag in zip(model.net.parameters(), flags, strict=True):
            p.requires_grad_(flag)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load() -> str:
    return "load average " + " ".join(f"{v:.1f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--layer", default="blocks.4")
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--layer-steps", type=int, default=256)
    parser.add_argument("--layer-channels", type=int, help="channels of the whole-layer run (default: all)")
    parser.add_argument("--skip-layer", action="store_true", help="only the comparison with Lucent")
    parser.add_argument("--precision", default="float32", choices=("float32", "bfloat16"),
                        help="the whole-layer run's precision")
    args = parser.parse_args()
    model = load_model("efficientnet_lite0", device=args.device)
    fast = working_copy(model, [args.layer])
    total = layer_shape(model, args.layer, (args.size, args.size))[0]
    channels = list(range(min(args.channels, total)))
    print(f"convscope {convscope.__version__}, torch {torch.__version__}, {model.device}, "
          f"{torch.get_num_threads()} threads; {args.layer} ({total} channels), {len(channels)} channels, "
          f"{args.size} px, {args.steps} steps")
    single = Recipe(size=args.size, steps=args.steps, facets=0, negative=False)
    full = Recipe(size=args.size, steps=args.steps)
    single16, full16 = (dataclasses.replace(r, precision="bfloat16") for r in (single, full))
    for warm_up in (single, single16):
        convscope_channels(fast, args.layer, channels[:1], warm_up)
    best: dict[str, list[float]] = {}
    for repeat in range(args.repeats):
        for name, run in (("lucent", lambda: lucent_channels(model, args.layer, channels, args.size, args.steps)),
                          ("lucent224", lambda: lucent_channels(model, args.layer, channels, args.size, args.steps,
                                                                fixed=False)),
                          ("batched", lambda: convscope_channels(fast, args.layer, channels, single)),
                          ("atlas", lambda: convscope_channels(fast, args.layer, channels, full)),
                          ("batched16", lambda: convscope_channels(fast, args.layer, channels, single16)),
                          ("atlas16", lambda: convscope_channels(fast, args.layer, channels, full16))):
            wall, cpu = run()
            old = best.get(name, [float("inf")] * 2)
            best[name] = [min(old[0], wall), min(old[1], cpu)]
            print(f"  run {repeat + 1} {name:8s} {wall:7.1f} s wall, {cpu:7.1f} s CPU  ({load()})")
    n = len(channels)
    side = args.size + 12  # about the mean side of a picture after Lucent's transformations (pad 12, jitters, scale)
    ours, theirs = flops_per_picture_step(model, fast, args.layer, side)
    print(f"work of a picture's step at {side} px: convscope {ours / 1e9:.2f} GFLOP (up to {args.layer}), Lucent "
          f"{theirs / 1e9:.2f} GFLOP (the whole model forward) → {theirs / ours:.2f}× as much")
    for column, clock in enumerate(("wall", "CPU")):
        per = {name: seconds[column] / n for name, seconds in best.items()}
        print(f"{clock} time, best of {args.repeats}:")
        print(f"  Lucent, one channel at a time:        {per['lucent']:6.2f} s a channel (one picture)")
        print(f"  Lucent as shipped (upsampled to 224): {per['lucent224']:6.2f} s a channel  → convscope "
              f"{per['lucent224'] / per['batched']:.1f}× less per channel")
        print(f"  convscope, {n} channels in batches:   {per['batched']:6.2f} s a channel (one picture)  "
              f"→ {per['lucent'] / per['batched']:.1f}× less per channel")
        print(f"  computing speed: Lucent {theirs * args.steps / per['lucent'] / 1e9:.1f} GFLOP/s, convscope "
              f"{ours * args.steps / per['batched'] / 1e9:.1f} GFLOP/s")
        print(f"  convscope atlas, {full.group} pictures each:   {per['atlas']:6.2f} s a channel, "
              f"{per['atlas'] / full.group:.2f} s a picture  → {per['lucent'] * full.group / per['atlas']:.1f}× less "
              "per picture than Lucent")
        print(f"  the same in bfloat16 (--precision):   {per['batched16']:6.2f} s a channel (one picture)  "
              f"→ {per['lucent'] / per['batched16']:.1f}× less; atlas {per['atlas16'] / full.group:.2f} s a picture "
              f"→ {per['lucent'] * full.group / per['atlas16']:.1f}× less")
    if args.skip_layer:
        return
    count = min(args.layer_channels or total, total)
    recipe = Recipe(size=args.size, steps=args.layer_steps, precision=args.precision)
    before = load()
    with tempfile.TemporaryDirectory() as folder:
        started, cpu = time.perf_counter(), time.process_time()
        make_atlas(model, [args.layer], Path(folder) / "atlas", channels=list(range(count)), recipe=recipe,
                   progress=False)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    note = "" if count == total else f" (extrapolated from {count} channels: {seconds:.0f} s wall, {cpu:.0f} s CPU)"
    print(f"whole layer {args.layer}: {total} channels × {recipe.group} pictures at {args.size} px, {args.precision}, "
          f"{args.layer_steps} steps: {seconds * total / count / 60:.1f} min wall, {cpu * total / count / 60:.1f} min "
          f"CPU{note}; {before} before, {load()} after")


if __name__ == "__main__":
    main()
