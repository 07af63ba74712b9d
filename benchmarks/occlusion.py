"""Time occlusion: convscope's plain path, its incremental path and Captum's Occlusion, on the same image and device.

    python benchmarks/occlusion.py                          # Lite0 and ResNet-18, 224 px, 32 px occluder, strides 16, 8
    python benchmarks/occlusion.py --models lite0 --strides 16 --threads 1 --device cpu

All three slide the same occluder over the same normalised photo (chelsea), fill it with the
same grey (the normalisation mean, 0 after normalising) and explain the class probability of
the clean image's top class. ResNet-18 has random weights (only the time matters here). Every
run is timed after a warm-up; the three take turns and the best of ``--repeat`` counts. Captum is
run at each ``--captum-batches`` value of ``perturbations_per_eval`` in the warm-up round and at its
fastest one after that. Ratios above 1 mean convscope is faster. The maps' largest difference
from the plain path is printed too, and ``bound``: Captum's time over the plain path's time in
the layers that the occluder's cone covers whole (from the first module the incremental path
runs on whole maps) — the most any exact recomputation could reach.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable

import torch

from convscope.attribution import Occlusion
from convscope.attribution.batch_norm_folding import fold_batch_norms
from convscope.attribution.occlusion import occluder_fill
from convscope.attribution.occlusion_chain import model_chain
from convscope.attribution.occlusion_incremental import IncrementalOcclusion
from convscope.images import load_sample
from convscope.models import Model, Preprocess, load_model


def models(names: list[str], device: torch.device) -> dict[str, Model]:
    found = {}
    for name in names:
        if name == "lite0":
            found[name] = load_model("efficientnet_lite0", device=device)
        elif name == "resnet18":
            import torchvision

            torch.manual_seed(0)
            found[name] = Model(torchvision.models.resnet18().eval().to(device), name="resnet18 (random weights)")
        else:
            raise SystemExit(f"unknown model {name!r}: use lite0 or resnet18")
    return found


CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}
CLOCK = CLOCKS["wall"]  # set in main()


def now(device: torch.device) -> float:
    """The clock, once the device has finished what it was given."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    return CLOCK()


def clock(run: Callable[[], object], device: torch.device) -> float:
    start = now(device)
    run()
    return now(device) - start


def captum_run(model: Model, x: torch.Tensor, target: int, size: int, stride: int, per_eval: int
               ) -> Callable[[], torch.Tensor]:
    from captum.attr import Occlusion as CaptumOcclusion

    def probabilities(inputs: torch.Tensor) -> torch.Tensor:
        return model.net(inputs).softmax(1)

    occlusion = CaptumOcclusion(probabilities)

    def run() -> torch.Tensor:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            return occlusion.attribute(x, sliding_window_shapes=(x.shape[1], size, size),
                                       strides=(x.shape[1], stride, stride), baselines=0.0, target=target,
                                       perturbations_per_eval=per_eval)

    return run


def whole_map_share(model: Model, x: torch.Tensor, size: int, stride: int, device: torch.device) -> float:
    """The share of the plain path's model time spent from the first module that the incremental path has to run
    on whole maps (the occluder's cone covers them): no exact recomputation saves that part."""
    chain = model_chain(model.net, x)
    runner = IncrementalOcclusion(fold_batch_norms(chain, x), x)
    zero = torch.zeros(1, dtype=torch.long)
    with torch.no_grad():
        runner(zero, zero, zero, size, occluder_fill("mean", x, model))
    if runner.whole_from == len(chain.elements):
        return 0.0
    spent = {"all": 0.0, "tail": 0.0}

    def mark(name: str) -> Callable[..., None]:
        def hook(*_: object) -> None:
            spent[name + "_start"] = now(device)
        return hook

    def end(*_: object) -> None:
        stop = now(device)
        spent["all"] += stop - spent["all_start"]
        spent["tail"] += stop - spent["tail_start"]

    handles = [model.net.register_forward_pre_hook(mark("all")),
               chain.elements[runner.whole_from].module.register_forward_pre_hook(mark("tail")),
               model.net.register_forward_hook(end)]
    try:
        Occlusion(model, size=size, stride=stride, incremental=False, progress=False)(x, 0)
    finally:
        for handle in handles:
            handle.remove()
    return spent["tail"] / spent["all"]


def bench(model: Model, x: torch.Tensor, size: int, stride: int, repeat: int, captum_batches: list[int],
          device: torch.device) -> dict[str, float]:
    with torch.no_grad():
        target = int(model.net(x).argmax(1)[0])
    plain = Occlusion(model, size=size, stride=stride, incremental=False, progress=False)
    fast = Occlusion(model, size=size, stride=stride, incremental=True, progress=False)
    maps_plain, maps_fast = plain(x, target), fast(x, target)
    if fast.path != "incremental":
        raise SystemExit(f"{model.name}: the incremental path did not run: {fast.plain_reason}")
    difference = float((maps_plain - maps_fast).abs().max())
    runs: dict[str, Callable[[], object]] = {"plain": lambda: plain(x, target), "incremental": lambda: fast(x, target)}
    captum = {per_eval: captum_run(model, x, target, size, stride, per_eval) for per_eval in captum_batches}
    times: dict[str, float] = {}
    for run in runs.values():  # warm-up
        clock(run, device)
    captum_times = {per_eval: clock(run, device) for per_eval, run in captum.items()}
    best_per_eval = min(captum_times, key=captum_times.get)
    runs["captum"] = captum[best_per_eval]
    times["captum"] = captum_times[best_per_eval]
    for _ in range(repeat):
        for name, run in runs.items():
            times[name] = min(times.get(name, float("inf")), clock(run, device))
    times["difference"], times["captum_per_eval"] = difference, best_per_eval
    times["bound"] = times["captum"] / (times["plain"] * whole_map_share(model, x, size, stride, device))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["lite0", "resnet18"])
    parser.add_argument("--strides", nargs="+", type=int, default=[16, 8])
    parser.add_argument("--size", type=int, default=224, help="image size in pixels")
    parser.add_argument("--occluder", type=int, default=32, help="occluder size in pixels")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch threads on the CPU (default: torch's choice)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--clock", default="wall", choices=list(CLOCKS),
                        help="wall time, or this thread's CPU time (one torch thread on a CPU shared with other work)")
    parser.add_argument("--captum-batches", nargs="+", type=int, default=[16, 32, 64],
                        help="perturbations_per_eval values tried for Captum; its fastest counts")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock == "cpu" and (device.type != "cpu" or torch.get_num_threads() != 1):
        raise SystemExit("--clock cpu measures one thread: use it with --device cpu --threads 1")
    global CLOCK
    CLOCK = CLOCKS[args.clock]
    print(f"device {device}, {torch.get_num_threads()} torch threads, {args.size} px, {args.occluder} px occluder, "
          f"best of {args.repeat} after a warm-up, {args.clock} time; ratio = Captum's time / convscope's")
    print(f"{'model':<28}{'stride':>7}{'plain':>9}{'increm.':>9}{'Captum':>9}{'(ppe)':>6}"
          f"{'incr/plain':>11}{'vs Captum: plain':>18}{'increm.':>9}{'bound':>8}{'max diff':>10}")
    for model in models(args.models, device).values():
        pre = model.preprocess
        x = Preprocess(resize=args.size, crop=args.size, mean=pre.mean, std=pre.std)([load_sample("chelsea")])
        x = x.to(device)
        for stride in args.strides:
            t = bench(model, x, args.occluder, stride, args.repeat, args.captum_batches, device)
            print(f"{model.name:<28}{stride:>7}{t['plain']:>8.2f}s{t['incremental']:>8.2f}s{t['captum']:>8.2f}s"
                  f"{t['captum_per_eval']:>6}{t['plain'] / t['incremental']:>10.2f}×"
                  f"{t['captum'] / t['plain']:>17.2f}×{t['captum'] / t['incremental']:>8.2f}×{t['bound']:>7.2f}×"
                  f"{t['difference']:>10.1e}", flush=True)


if __name__ == "__main__":
    main()
