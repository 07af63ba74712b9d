"""Feature-space speed: scan throughput against a plain forward pass, openTSNE against scikit-learn's t-SNE.

    python benchmarks/feature_space.py [--pictures 10000] [--tsne-points 2000] [--device cpu]

1. The scan records three layers (features, running top-9, channel statistics) of the
   Fashion-MNIST CNN over Fashion-MNIST test pictures; the baseline runs the same network over
   the same loader and does nothing with the output. Ratio = scan images/s ÷ forward images/s
   (aim: ≥ 0.9). The scan's time includes writing its folder.
2. t-SNE of the same fc7 features with openTSNE (what convscope uses) and scikit-learn's TSNE,
   both with perplexity 30 and PCA initialisation: seconds, and trustworthiness (10 neighbours).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from torch.utils.data import DataLoader

from convscope.data import FashionMNIST, FirstPictures, FittedPictures, has_fashion_mnist
from convscope.hooks import inspection_mode
from convscope.models import load_model
from convscope.scan import Scan

LAYERS = ["relu2", "relu3", "relu7"]


def plain_forward(model, pictures, batch_size: int) -> None:
    """One pass of the network over the loader a scan uses, doing nothing with the output."""
    loader = DataLoader(FittedPictures(pictures, model.preprocess), batch_size=batch_size)
    with inspection_mode(model.net), torch.inference_mode():
        for _, fitted, _ in loader:
            model.net(model.preprocess.normalize(fitted.to(model.device)))
    if model.device.type == "cuda":
        torch.cuda.synchronize()


def scan(model, pictures, batch_size: int, stop_early: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        Scan(model, LAYERS, k=9).run(pictures, folder, batch_size=batch_size, progress=False, stop_early=stop_early)


def timed(work) -> tuple[float, float]:
    """Wall-clock and CPU seconds (all threads) of ``work()``; CPU time is steadier on a shared machine."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def scan_benchmark(model, pictures, batch_size: int, repeats: int) -> None:
    plain_forward(model, FirstPictures(pictures, batch_size * 2), batch_size)  # warm-up
    runs = {"forward": [], "scan": [], "full": []}
    for _ in range(repeats):  # interleaved, so that a busy moment does not favour one side
        runs["forward"].append(timed(lambda: plain_forward(model, pictures, batch_size)))
        runs["scan"].append(timed(lambda: scan(model, pictures, batch_size, True)))
        runs["full"].append(timed(lambda: scan(model, pictures, batch_size, False)))
    best = {name: (min(w for w, _ in times), min(c for _, c in times)) for name, times in runs.items()}
    count = len(pictures)
    print(f"\nScan throughput: {model.name}, {count} pictures, batch {batch_size}, layers {', '.join(LAYERS)} "
          f"(best of {repeats}; ratio = scan throughput / forward throughput)")
    forward_wall, forward_cpu = best["forward"]
    print(f"  {'':34} {'img/s':>8} {'ratio':>6} {'CPU ratio':>10}")
    print(f"  {'plain forward':34} {count / forward_wall:8.0f}")
    for name, label in (("scan", "scan"), ("full", "scan, whole forward every batch")):
        wall, cpu = best[name]
        print(f"  {label:34} {count / wall:8.0f} {forward_wall / wall:6.2f} {forward_cpu / cpu:10.2f}")


def tsne_benchmark(features: torch.Tensor, jobs: int) -> None:
    from openTSNE import TSNE as OpenTSNE
    from sklearn.manifold import TSNE as SklearnTSNE
    from sklearn.manifold import trustworthiness

    data = features.double().numpy()
    began = time.perf_counter()
    ours = OpenTSNE(perplexity=30, initialization="pca", random_state=0, n_jobs=jobs, verbose=False).fit(data)
    open_seconds = time.perf_counter() - began
    began = time.perf_counter()
    theirs = SklearnTSNE(perplexity=30, init="pca", random_state=0, n_jobs=jobs).fit_transform(data)
    sklearn_seconds = time.perf_counter() - began
    print(f"\nt-SNE of {len(data)} fc7 features ({data.shape[1]}-d), {jobs} thread(s)")
    print(f"  openTSNE      {open_seconds:7.1f} s   trustworthiness {trustworthiness(data, ours, n_neighbors=10):.3f}")
    print(f"  scikit-learn  {sklearn_seconds:7.1f} s   trustworthiness "
          f"{trustworthiness(data, theirs, n_neighbors=10):.3f}")
    print(f"  time ratio scikit-learn / openTSNE: {sklearn_seconds / open_seconds:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pictures", type=int, default=10_000)
    parser.add_argument("--tsne-points", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch CPU threads (1 gives steadier numbers on a busy machine)")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not has_fashion_mnist():
        raise SystemExit("Fashion-MNIST is missing: apt-get install dataset-fashion-mnist (scripts/setup does it)")
    model = load_model("fashion_cnn", device=args.device)
    pictures = FirstPictures(FashionMNIST(split="test"), args.pictures)
    print(f"device {model.device}, {torch.get_num_threads()} threads")
    scan_benchmark(model, pictures, args.batch_size, args.repeats)
    with tempfile.TemporaryDirectory() as folder:
        result = Scan(model, ["relu7"]).run(FirstPictures(pictures, args.tsne_points), folder, progress=False)
        features = result.features("relu7").clone()
    tsne_benchmark(features, args.threads)


if __name__ == "__main__":
    main()
