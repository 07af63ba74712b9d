"""Speed of the synthesis loop against Lucent's render_vis, and of Gatys style transfer against a plain loop.

    python benchmarks/synthesis.py [--device cpu|cuda] [--steps 40] [--size 128]

1. Feature visualisation: the same model (embedded EfficientNet-Lite0), picture size,
   objective (mean of one channel), decorrelated Fourier parameterisation, Lucent's
   standard transforms and Adam (lr 0.05), timed in convscope.synthesis.optimise and in
   lucent.optvis.render.render_vis (pip install torch-lucent).
2. Gatys style transfer: convscope.synthesis.style_transfer against a minimal hand-written
   PyTorch loop with the same layers, losses and optimiser (hooks + Gram + Adam).
Prints the best of ``--repeats`` interleaved runs in iterations per second, and the ratios
(> 1: convscope is faster).
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

import convscope
from convscope.images import load_sample
from convscope.synthesis import objectives, optimise, params, style_layers, style_transfer, transforms
from convscope.synthesis.matching import gram_matrix


def convscope_featvis(model, layer, channel, size, steps, device):
    generator = torch.Generator().manual_seed(0)
    param = params.fourier(size, generator=generator)
    start = time.perf_counter()
    optimise(model, objectives.channel(layer, channel), param, steps=steps, lr=0.05, transforms=transforms.STANDARD,
             model_size=size, generator=generator, progress=False)
    _sync(device)
    return steps / (time.perf_counter() - start)


def lucent_featvis(model, layer, channel, size, steps, device):
    from lucent.optvis import objectives as lucent_objectives
    from lucent.optvis import param as lucent_param
    from lucent.optvis import render, transform

    mean = torch.tensor(model.preprocess.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(model.preprocess.std, device=device).view(1, -1, 1, 1)
    net = model.net.eval()
    for p in net.parameters():
        p.requires_grad_(False)

    def param_f():
        return lucent_param.image(size, fft=True, decorrelate=True)

    steps_list = transform.standard_transforms + [lambda x: (x - mean) / std]
    start = time.perf_counter()
    render.render_vis(net, lucent_objectives.channel(layer.replace(".", "_"), channel), param_f,
                      transforms=steps_list, thresholds=(steps,), preprocess=False, progress=False,
                      show_image=False, fixed_image_size=size)
    _sync(device)
    for p in net.parameters():
        p.requires_grad_(True)
    return steps / (time.perf_counter() - start)


def convscope_style(model, content, style, size, steps, device):
    start = time.perf_counter()
    style_transfer(model, content, style, size=size, steps=steps, progress=False)
    _sync(device)
    return steps / (time.perf_counter() - start)


def plain_style(model, content, style, size, steps, device):
    """The textbook loop: hooks on the layers, MSE of features and Gram matrices, Adam on the pixels."""
    chosen = style_layers(model)
    names = [chosen.content, *chosen.style]
    net = model.net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    store = {}
    modules = dict(net.named_modules())
    handles = [modules[n].register_forward_hook(lambda m, i, o, n=n: store.__setitem__(n, o)) for n in names]
    mean = torch.tensor(model.preprocess.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(model.preprocess.std, device=device).view(1, -1, 1, 1)

    def resize(picture):
        h, w = picture.shape[-2:]
        scale = size / min(h, w)
        return F.interpolate(picture[None], size=(round(h * scale), round(w * scale)), mode="area").to(device)

    content, style = resize(content), resize(style)
    with torch.no_grad():
        net((content - mean) / std)
        content_target = store[chosen.content].clone()
        net((style - mean) / std)
        style_targets = {n: gram_matrix(store[n]) for n in chosen.style}
    image = content.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([image], lr=0.02)
    start = time.perf_counter()
    for _ in range(steps):
        optimiser.zero_grad()
        net((image - mean) / std)
        loss = F.mse_loss(store[chosen.content], content_target)
        loss = loss + sum(F.mse_loss(gram_matrix(store[n]), style_targets[n]) for n in chosen.style)
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            image.clamp_(0, 1)
    _sync(device)
    rate = steps / (time.perf_counter() - start)
    for handle in handles:
        handle.remove()
    for p in net.parameters():
        p.requires_grad_(True)
    return rate


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--style-size", type=int, default=192)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model = convscope.load_model(device=args.device)
    device = model.device
    print(f"device {device}, torch threads {torch.get_num_threads()}, {args.steps} steps")
    layer, channel = "blocks.4", 10
    convscope_featvis(model, layer, channel, args.size, 3, device)       # warm up (imports, allocations)
    try:
        lucent_featvis(model, layer, channel, args.size, 3, device)
        have_lucent = True
    except ImportError:
        have_lucent = False
    ours, theirs = 0.0, 0.0
    for _ in range(args.repeats):                                         # interleaved, best of each
        ours = max(ours, convscope_featvis(model, layer, channel, args.size, args.steps, device))
        if have_lucent:
            theirs = max(theirs, lucent_featvis(model, layer, channel, args.size, args.steps, device))
    if have_lucent:
        print(f"feature visualisation {args.size}px: convscope {ours:.2f} it/s, Lucent render_vis {theirs:.2f} it/s, "
              f"ratio {ours / theirs:.2f}")
    else:
        print(f"feature visualisation {args.size}px: convscope {ours:.2f} it/s; Lucent is not installed "
              "(pip install torch-lucent)")
    content, style = load_sample("chelsea"), load_sample("brick")
    convscope_style(model, content, style, args.style_size, 3, device)
    plain_style(model, content, style, args.style_size, 3, device)
    ours, plain = 0.0, 0.0
    for _ in range(args.repeats):
        ours = max(ours, convscope_style(model, content, style, args.style_size, args.steps, device))
        plain = max(plain, plain_style(model, content, style, args.style_size, args.steps, device))
    print(f"Gatys style transfer {args.style_size}px: convscope {ours:.2f} it/s, plain PyTorch loop {plain:.2f} it/s, "
          f"ratio {ours / plain:.2f}")

if __name__ == "__main__":
    main()
