"""Time convscope's attribution methods against Captum and pytorch-grad-cam on the same model, images and device.

    python benchmarks/attribution.py                       # EfficientNet-Lite0, 224 px, batches 1 and 16
    python benchmarks/attribution.py --size 128 --threads 1 --methods grad_cam score_cam
    python benchmarks/attribution.py --large               # also batch 64 and 256 px (long on a CPU)
    python benchmarks/attribution.py --profile --methods saliency --batches 1   # where convscope's time goes
    python benchmarks/attribution.py --threads 1 --clock cpu --repeat 7 --batches 1   # steady on a busy machine

Each library gets the same normalised batch (bundled photos), the same targets and,
where a method has settings, the same ones (50 SmoothGrad samples, 50 Integrated
Gradients steps with the right Riemann sum, a 32 px occluder every 16 px, and as many
inputs per forward pass as convscope's default: 16 on a CPU, 64 on a GPU). Times are
the best of ``--repeat`` runs after a warm-up; ``peak`` is the largest memory the call
added (CUDA: allocated tensors; CPU: resident set). Ratios above 1 mean convscope is
faster. Captum's occlusion is timed at several ``perturbations_per_eval`` and its
best is used; pytorch-grad-cam's Score-CAM and Ablation-CAM get the same batch size as
convscope's; the noise tunnel is VarGrad around Input × Gradient, 16 samples, σ = 10 % of
the batch's range, in both libraries. A method convscope refuses on the model (FullGrad on
EfficientNet-Lite's fused batch norms) gets a row with the reason. Captum's deconvolution,
guided backprop and guided Grad-CAM are given the model with its ReLU6 modules as a subclass of
``nn.ReLU`` (the same function): Captum hooks only ``nn.ReLU``, and would otherwise time the plain
gradient. ``--clock cpu`` (with ``--threads 1``) times the process's CPU time instead of the wall
clock: steadier on a machine shared with other jobs.
``plain`` is one bare forward and backward pass to the input (or to the layer, for the
CAMs) for the same batch and targets: the floor a single-pass method can reach, so
``convscope − plain`` is convscope's own cost per call.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable

import torch
from occlusion import models  # the occlusion benchmark's two models (benchmarks/ is this script's folder)

from convscope.attribution import make_method
from convscope.attribution.base import batch_size_for
from convscope.attribution.deep_lift_shap import reference_images
from convscope.attribution.factorisation import factorise
from convscope.images import load_sample
from convscope.models import Preprocess

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests.architectures import relu6_seen_by_captum  # noqa: E402  (Captum's rules at ReLU6, as its tests use)

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "china", "flower")
BATCH = 16  # set in main() from the device, as convscope's default
LAYER = "bn2"  # the CAMs' and layer methods' layer: set in main() for the model
CAM_LAYERS = {"lite0": "bn2", "resnet18": "layer4"}
MODELS = {"lite0": "the embedded EfficientNet-Lite0",
          "resnet18": "torchvision's ResNet-18 with random weights (only the time matters), for FullGrad, which "
                      "pytorch-grad-cam computes without the biases of EfficientNet-Lite's fused batch norms"}


class PeakMemory:
    """Largest memory added while the block runs: CUDA allocations, or the process's resident set on a CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.peak = device, 0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
        else:
            self.start = self.highest = _rss()
            self.running = True
            self.thread = threading.Thread(target=self._watch, daemon=True)
            self.thread.start()
        return self

    def _watch(self) -> None:
        while self.running:
            self.highest = max(self.highest, _rss())
            time.sleep(0.002)

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.start
        else:
            self.running = False
            self.thread.join()
            self.peak = max(self.highest, _rss()) - self.start


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
CLOCK = time.perf_counter  # set in main() by --clock


def timed(runs: dict[str, Callable[[], object]], device: torch.device, repeat: int,
          warm_up: bool = True) -> dict[str, tuple[float, int]]:
    """Best time and peak memory of each run; the runs take turns, so a busy machine slows them alike."""
    for run in runs.values() if warm_up else ():
        run()
    best = {label: (float("inf"), 0) for label in runs}
    for _ in range(repeat):
        for label, run in runs.items():
            with PeakMemory(device) as memory:
                start = CLOCK()
                run()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                elapsed = CLOCK() - start
            best[label] = (min(best[label][0], elapsed), max(best[label][1], memory.peak))
    return best


def ours(name: str, model, inputs, classes, **options):
    if name == "factorisation":  # deep feature factorisation into 4 concepts, as pytorch-grad-cam's below
        return lambda: factorise(model, inputs, LAYER, 4)
    if name == "noise_tunnel":
        options = {**options, "sigma": tunnel_sigma(inputs)}
    if name in ("feature_ablation", "shapley_value_sampling", "lime", "kernel_shap"):
        options = {**options, "feature_mask": make_method(name, model).mask_for(inputs)}
    method = make_method(name, model, **options)
    return lambda: method(inputs, classes)


def tunnel_sigma(inputs) -> float:
    """The noise tunnel's σ: 10 % of the batch's range, the same for both libraries."""
    return float(0.1 * (inputs.amax() - inputs.amin()))


def captum_runs(name: str, model, inputs, classes, evals=(1, 8, 16, 32, 64)) -> dict[str, Callable[[], object]]:
    import captum.attr as ca

    net, target = model.net, classes
    layer = model.layer(LAYER)
    if name in ("deconvnet", "guided_backprop", "guided_grad_cam"):  # rules applied at the ReLU6s, as convscope's
        net = relu6_seen_by_captum(net)
        layer = net.get_submodule(LAYER)
    if name == "saliency":
        return {"": lambda: ca.Saliency(net).attribute(inputs, target=target, abs=True).amax(1)}
    if name == "deconvnet":
        return {"": lambda: ca.Deconvolution(net).attribute(inputs, target=target)}
    if name == "guided_backprop":
        return {"": lambda: ca.GuidedBackprop(net).attribute(inputs, target=target)}
    if name == "grad_cam":
        return {"": lambda: ca.LayerGradCam(net, layer).attribute(inputs, target=target)}
    if name == "guided_grad_cam":
        return {"": lambda: ca.GuidedGradCam(net, layer).attribute(inputs, target=target,
                                                                   interpolate_mode="bilinear")}
    if name == "integrated_gradients":
        baseline = make_method("integrated_gradients", model).baseline_for(inputs)
        return {"": lambda: ca.IntegratedGradients(net).attribute(
            inputs, baselines=baseline, target=target, n_steps=50, method="riemann_right",
            internal_batch_size=BATCH)}
    if name == "smooth_grad":
        sigma = float(0.1 * (inputs.amax() - inputs.amin()))
        per_eval = max(1, BATCH // inputs.shape[0])
        return {"": lambda: ca.NoiseTunnel(ca.Saliency(net)).attribute(
            inputs, nt_type="smoothgrad", nt_samples=50, nt_samples_batch_size=per_eval, stdevs=sigma,
            target=target, abs=False)}
    if name == "input_x_gradient":
        return {"": lambda: ca.InputXGradient(net).attribute(inputs, target=target)}
    if name == "noise_tunnel":  # around Input × Gradient, 16 samples, the same σ for every image
        per_eval = max(1, BATCH // inputs.shape[0])
        return {"": lambda: ca.NoiseTunnel(ca.InputXGradient(net)).attribute(
            inputs, nt_type="vargrad", nt_samples=16, nt_samples_batch_size=per_eval, stdevs=tunnel_sigma(inputs),
            target=target)}
    if name == "deep_lift":  # from the black baseline; Captum has no rule for Lite0's ReLU6 (timed all the same)
        baseline = make_method("integrated_gradients", model).baseline_for(inputs)
        return {"": lambda: ca.DeepLift(net).attribute(inputs, baselines=baseline, target=target)}
    if name in ("deep_lift_shap", "gradient_shap"):  # convscope's 8 seeded noise references; 16 draws, no noise
        references = reference_images(model, None, 8, 0, inputs)
        if name == "deep_lift_shap":
            return {"": lambda: ca.DeepLiftShap(net).attribute(inputs, baselines=references, target=target)}
        if inputs.device.type == "cpu" and inputs.shape[0] * 16 > 64:  # Captum's GradientShap runs all draws of all
            return {}  # images in one pass (no batch size): 16 × 16 copies at 224 px would need ~38 GB of memory
        return {"": lambda: ca.GradientShap(net).attribute(inputs, baselines=references, n_samples=16, stdevs=0.0,
                                                           target=target)}
    if name == "shapley_value_sampling":  # the same superpixels, 25 orders of them
        mask = make_method(name, model).mask_for(inputs)
        return {"": lambda: ca.ShapleyValueSampling(net).attribute(
            inputs, target=target, baselines=0.0, feature_mask=mask.expand_as(inputs).contiguous(), n_samples=25,
            perturbations_per_eval=BATCH)}
    if name == "feature_ablation":  # the same SLIC superpixels for both, found once outside the timing
        mask = make_method("feature_ablation", model).mask_for(inputs)
        return {"": lambda: ca.FeatureAblation(net).attribute(
            inputs, target=target, baselines=0.0, feature_mask=mask.expand_as(inputs), perturbations_per_eval=BATCH)}
    if name == "layer_gradient_x_activation":
        return {"": lambda: ca.LayerGradientXActivation(net, layer).attribute(inputs, target=target)}
    if name == "layer_deep_lift":  # from the black baseline, as deep_lift
        baseline = make_method("integrated_gradients", model).baseline_for(inputs)
        return {"": lambda: ca.LayerDeepLift(net, layer).attribute(inputs, baselines=baseline, target=target)}
    if name in ("layer_conductance", "internal_influence"):  # 50 steps, the quadrature that is convscope's
        baseline = make_method("integrated_gradients", model).baseline_for(inputs)
        kind, rule = ((ca.LayerConductance, "riemann_trapezoid") if name == "layer_conductance"
                      else (ca.InternalInfluence, "riemann_right"))
        return {"": lambda: kind(net, layer).attribute(inputs, baselines=baseline, target=target, n_steps=50,
                                                       method=rule, internal_batch_size=BATCH)}
    if name in ("lime", "kernel_shap"):  # the same superpixels and number of masked copies (200), one image at a time
        mask = make_method(name, model).mask_for(inputs)
        kind = ca.Lime if name == "lime" else ca.KernelShap
        return {"": lambda: kind(net).attribute(inputs, target=target, baselines=0.0,
                                                feature_mask=mask.expand_as(inputs), n_samples=200,
                                                perturbations_per_eval=BATCH)}
    if name == "occlusion":
        def probabilities(x):
            return net(x).softmax(1)

        return {f" (perturbations_per_eval={p})": (lambda p=p: ca.Occlusion(probabilities).attribute(
            inputs, sliding_window_shapes=(3, 32, 32), strides=(3, 16, 16), baselines=0.0, target=target,
            perturbations_per_eval=p)) for p in evals}
    return {}


def grad_cam_runs(name: str, model, inputs, classes) -> dict[str, Callable[[], object]]:
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    kinds = {"grad_cam": pgc.GradCAM, "grad_cam_plus_plus": pgc.GradCAMPlusPlus, "layer_cam": pgc.LayerCAM,
             "score_cam": pgc.ScoreCAM, "hires_cam": pgc.HiResCAM, "grad_cam_element_wise": pgc.GradCAMElementWise,
             "xgrad_cam": pgc.XGradCAM, "eigen_cam": pgc.EigenCAM, "eigen_grad_cam": pgc.EigenGradCAM,
             "ablation_cam": pgc.AblationCAM, "full_grad": pgc.FullGrad, "kpca_cam": pgc.KPCA_CAM,
             "shapley_cam": pgc.ShapleyCAM, "finer_cam": pgc.FinerCAM}
    if name == "factorisation":
        head = getattr(model.net, "classifier", None) or model.net.fc

        def factorised():
            found = pgc.DeepFeatureFactorization(model=model.net, target_layer=model.layer(LAYER),
                                                 computation_on_concepts=head)
            try:
                return found(inputs.clone(), 4)
            finally:
                found.activations_and_grads.release()

        return {"": factorised}
    if name not in kinds:
        return {}
    targets = [ClassifierOutputTarget(int(c)) for c in classes]
    if name == "finer_cam":  # its default: each image's top class (the classes given) against its three closest
        def finer():
            with kinds[name](model=model.net, target_layers=[model.layer(LAYER)]) as cam:
                return cam(input_tensor=inputs, targets=None)

        return {"": finer}

    def run():
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                kinds[name](model=model.net, target_layers=[model.layer(LAYER)]) as cam:  # progress bars, warnings
            cam.batch_size = BATCH
            return cam(input_tensor=inputs, targets=targets)

    return {"": run}


def plain_runs(name: str, model, inputs, classes) -> dict[str, Callable[[], object]]:
    """A bare forward + backward to the input or the CAM layer, for the single-pass methods."""
    net = model.net
    if name in ("saliency", "deconvnet", "guided_backprop", "guided_grad_cam", "input_x_gradient", "deep_lift"):
        def to_input():
            x = inputs.detach().requires_grad_(True)
            return torch.autograd.grad(net(x).gather(1, classes[:, None]).sum(), x)

        return {"": to_input}
    if name in ("grad_cam", "grad_cam_plus_plus", "layer_cam", "hires_cam", "grad_cam_element_wise", "xgrad_cam",
                "eigen_grad_cam", "shapley_cam", "finer_cam"):
        layer, seen = model.layer(LAYER), []

        def to_layer():
            handle = layer.register_forward_hook(lambda module, args, output: seen.append(output))
            try:
                output = net(inputs.detach().requires_grad_(True))
            finally:
                handle.remove()
            return torch.autograd.grad(output.gather(1, classes[:, None]).sum(), seen.pop())

        return {"": to_layer}
    return {}


def profile(name: str, model, inputs, classes, options: dict, device: torch.device) -> None:
    """Where one convscope call spends its time: Python functions (own time) and the torch operators."""
    import cProfile
    import pstats

    run = ours(name, model, inputs, classes, **options)
    run()
    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    print(f"\n### {name}, batch {inputs.shape[0]}: Python functions by own time")
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(15)
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as found:
        run()
        if device.type == "cuda":
            torch.cuda.synchronize()
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(f"### {name}, batch {inputs.shape[0]}: torch operators")
    print(found.key_averages().table(sort_by=key, row_limit=15))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None)
    parser.add_argument("--model", choices=list(MODELS), default="lite0",
                        help="; ".join(f"{key}: {value}" for key, value in MODELS.items()))
    parser.add_argument("--size", type=int, nargs="+", default=[224],
                        help="input sides in pixels (default: %(default)s)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--large", action="store_true", help="add batch 64 and 256 px rows")
    parser.add_argument("--profile", action="store_true",
                        help="print where convscope's time goes (cProfile and torch.profiler) instead of timing")
    parser.add_argument("--methods", nargs="+", default=["saliency", "deconvnet", "guided_backprop", "grad_cam",
                                                          "guided_grad_cam", "grad_cam_plus_plus", "layer_cam",
                                                          "smooth_grad", "integrated_gradients", "occlusion",
                                                          "score_cam", "input_x_gradient", "hires_cam",
                                                          "grad_cam_element_wise", "xgrad_cam", "eigen_cam",
                                                          "eigen_grad_cam", "noise_tunnel", "ablation_cam",
                                                          "full_grad", "deep_lift", "feature_ablation", "kpca_cam",
                                                          "shapley_cam", "finer_cam", "lime", "kernel_shap",
                                                          "layer_gradient_x_activation", "layer_deep_lift",
                                                          "layer_conductance", "internal_influence",
                                                          "deep_lift_shap", "gradient_shap", "shapley_value_sampling",
                                                          "factorisation"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall",
                        help="cpu: the process's CPU time, steadier than the wall clock on a busy machine "
                             "(with --device cpu --threads 1)")
    parser.add_argument("--no-warm-up", action="store_true", help="skip the warm-up run (for the slow methods)")
    parser.add_argument("--occlusion-evals", type=int, nargs="+", default=[1, 8, 16, 32, 64],
                        help="Captum perturbations_per_eval values to try (default: %(default)s)")
    args = parser.parse_args()
    sizes, batches = list(dict.fromkeys(args.size)), list(dict.fromkeys(args.batches))
    if args.large:
        sizes, batches = list(dict.fromkeys([*sizes, 256])), list(dict.fromkeys([*batches, 64]))
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock == "cpu" and (args.device not in (None, "cpu") or torch.get_num_threads() != 1):
        raise SystemExit("--clock cpu measures one thread's work: use it with --device cpu --threads 1")
    global CLOCK
    CLOCK = CLOCKS[args.clock]
    warnings.filterwarnings("ignore")
    global LAYER
    model, LAYER = models([args.model], args.device)[args.model], CAM_LAYERS[args.model]
    device = model.device
    global BATCH
    BATCH = batch_size_for(None, device)
    pre = model.preprocess
    photos = [load_sample(name) for name in PHOTOS]
    settings = {"smooth_grad": {"samples": 50}, "integrated_gradients": {"steps": 50},
                "occlusion": {"size": 32, "stride": 16}, "score_cam": {"layer": LAYER},
                "noise_tunnel": {"around": "input_x_gradient", "kind": "vargrad", "samples": 16},
                **{name: {"layer": LAYER} for name in ("hires_cam", "grad_cam_element_wise", "xgrad_cam", "eigen_cam",
                                                        "eigen_grad_cam", "ablation_cam", "kpca_cam", "shapley_cam",
                                                        "finer_cam", "layer_gradient_x_activation",
                                                        "layer_deep_lift")},
                **{name: {"layer": LAYER, "steps": 50} for name in ("layer_conductance", "internal_influence")}}
    for size in sizes:
        small = Preprocess(resize=round(size * 256 / 224), crop=size, mean=pre.mean, std=pre.std)
        print(f"{model.name} on {device}, {size}×{size} px, torch threads {torch.get_num_threads()}, "
              f"best of {args.repeat}, {args.clock} clock, load average {os.getloadavg()[0]:.1f}")
        if not args.profile:
            print("| method | batch | convscope s (peak MB) | Captum s (peak MB) | ratio "
                  "| pytorch-grad-cam s (peak MB) | ratio | plain s |")
            print("|---|---|---|---|---|---|---|---|")
        for name in args.methods:
            for batch in batches:
                inputs = small([photos[i % len(photos)] for i in range(batch)]).to(device)
                with torch.no_grad():
                    classes = model.net(inputs).argmax(1)
                if args.profile:
                    profile(name, model, inputs, classes, settings.get(name, {}), device)
                    continue
                libraries = [captum_runs(name, model, inputs, classes, args.occlusion_evals),
                             grad_cam_runs(name, model, inputs, classes), plain_runs(name, model, inputs, classes)]
                runs = {"convscope": ours(name, model, inputs, classes, **settings.get(name, {}))}
                for index, library in enumerate(libraries):
                    runs.update({(index, label): run for label, run in library.items()})
                try:  # convscope's run comes first: a refusal stops before the others run
                    results = timed(runs, device, args.repeat, not args.no_warm_up)
                except ValueError as refused:  # e.g. FullGrad on timm's fused batch norms, which it cannot read
                    print(f"| {name} | {batch} | refused: {refused} |", flush=True)
                    continue
                mine, mine_peak = results["convscope"]
                cells = [f"{mine:.3f} ({mine_peak / 2**20:.0f})"]
                for index, library in enumerate(libraries):
                    if not library:
                        cells += ["–", "–"] if index < 2 else ["–"]
                        continue
                    label, (theirs, peak) = min(((label, results[(index, label)]) for label in library),
                                                key=lambda item: item[1][0])
                    cells += [f"{theirs:.3f} ({peak / 2**20:.0f}){label}", f"{theirs / mine:.2f}×"] if index < 2 \
                        else [f"{theirs:.3f}"]
                print(f"| {name} | {batch} | " + " | ".join(cells) + " |", flush=True)

if __name__ == "__main__":
    main()
