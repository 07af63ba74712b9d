"""Time convscope's LRP against Zennit and its TCAV against Captum's, on the same model, pictures and device.

    python benchmarks/relevance.py                          # ResNet-18 (random weights), 64 px, batch 16; TCAV
    python benchmarks/relevance.py --size 224 --device cuda
    python benchmarks/relevance.py --skip-tcav --batches 1 16

LRP: both get the same batch, composite (EpsilonPlusFlat) and canonizers (Zennit's
ResNetCanonizer on a deep copy, registered per call as in its examples; convscope keeps
its canonised copy between calls). TCAV: both get the same built-in concepts, random
sets, layer, pictures and classes; convscope's CAVs are fitted with scikit-learn, Captum's
with its default classifier; Captum writes its activations and CAVs to a temporary folder.
Times are the best of ``--repeat`` runs after a warm-up. Ratios above 1 mean convscope is faster.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
import warnings
from collections.abc import Callable

import torch
import torchvision
from torch import nn

from convscope.attribution.lrp import LRP
from convscope.models import Model, Preprocess


def best(call: Callable[[], object], repeat: int, device: torch.device) -> float:
    call()
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        call()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def lrp_rows(args: argparse.Namespace, device: torch.device) -> None:
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonPlusFlat
    from zennit.torchvision import ResNetCanonizer

    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=1000).eval().to(device)
    model = Model(net, preprocess=Preprocess(resize=None, crop=args.size, mean=(0.485, 0.456, 0.406),
                                             std=(0.229, 0.224, 0.225)), class_names=[str(i) for i in range(1000)])
    reference = copy.deepcopy(net)
    for module in reference.modules():
        if hasattr(module, "inplace"):
            module.inplace = False
    for batch in args.batches:
        x = torch.randn(batch, 3, args.size, args.size, device=device)
        target = torch.arange(batch, device=device) % 1000
        ours = best(lambda x=x, target=target: LRP(model, "epsilon-plus-flat")(x, target), args.repeat, device)

        def zennit(x=x, target=target) -> object:
            with Gradient(reference, EpsilonPlusFlat(canonizers=[ResNetCanonizer()])) as attributor:
                return attributor(x, lambda out: out * nn.functional.one_hot(target, 1000))

        theirs = best(zennit, args.repeat, device)
        print(f"LRP epsilon-plus-flat, ResNet-18, {args.size} px, batch {batch:3d}: convscope {ours:.3f} s, "
              f"Zennit {theirs:.3f} s, {theirs / ours:.2f}×")


def tcav_row(args: argparse.Namespace, device: torch.device) -> None:
    from captum.concept import TCAV, Concept

    from convscope.analysis.tcav import tcav
    from convscope.data.concept_textures import concept_pictures, random_sets

    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10).eval().to(device)
    model = Model(net, preprocess=Preprocess(resize=args.size, crop=args.size, mean=(0.5,) * 3, std=(0.25,) * 3),
                  class_names=[str(i) for i in range(10)])
    concepts = {name: concept_pictures(name, 20, size=args.size) for name in ("stripes", "dots")}
    randoms = random_sets(11, 20)
    pictures = [p for pool in random_sets(1, 16, seed=1) for p in pool]
    ours = best(lambda: tcav(model, concepts, randoms, pictures, "layer3", [1]), args.repeat, device)

    def captum() -> object:
        def concept(i: int, name: str, members: list) -> Concept:
            return Concept(i, name, torch.utils.data.DataLoader(model.preprocess(members).to(device), batch_size=64))

        made = [concept(i, name, members) for i, (name, members) in enumerate(concepts.items())]
        pools = [concept(10 + i, f"random{i}", pool) for i, pool in enumerate(randoms)]
        sets = [[c, pools[r + 1]] for c in made for r in range(10)] + [[pools[0], pools[r + 1]] for r in range(10)]
        with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return TCAV(net, ["layer3"], save_path=folder).interpret(model.preprocess(pictures).to(device), sets,
                                                                     target=1, processes=1)

    theirs = best(captum, args.repeat, device)
    print(f"TCAV, 2 concepts × 10 runs + random baseline, ResNet-18 layer3, {len(pictures)} pictures at {args.size} "
          f"px: convscope {ours:.2f} s, Captum {theirs:.2f} s, {theirs / ours:.2f}×")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batches", type=int, nargs="+", default=[16])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--skip-tcav", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    lrp_rows(args, device)
    if not args.skip_tcav:
        tcav_row(args, device)


if __name__ == "__main__":
    main()
