#!/usr/bin/env bash
# The attribution numbers on a GPU, in one run (about 5 minutes on an H100):
#   1. every gradient method against Captum and pytorch-grad-cam at batch 1, 16 and 64, 224 and 256 px;
#   2. where one call's time goes (cProfile and torch.profiler) for saliency, guided backprop and Grad-CAM at batch 1;
#   3. explain-set's Grad-CAM rate against a plain forward+backward pass over the same loader.
# Usage: benchmarks/attribution_cuda.sh [OUT_FOLDER]   (default: bench-cuda; needs CUDA)
set -euo pipefail
out="${1:-bench-cuda}"
mkdir -p "$out"
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: run this on a GPU')"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/device.txt"
python benchmarks/attribution.py --device cuda --repeat 5 --batches 1 16 64 --size 224 256 \
    --methods saliency deconvnet guided_backprop grad_cam guided_grad_cam grad_cam_plus_plus layer_cam \
    | tee "$out/gradient_methods.md"
python benchmarks/attribution.py --device cuda --repeat 3 --batches 1 16 --methods smooth_grad integrated_gradients \
    | tee "$out/noise_and_path_methods.md"
python benchmarks/attribution.py --device cuda --profile --batches 1 --methods saliency guided_backprop grad_cam \
    > "$out/profile.txt" 2>&1
convscope explain-set samples --method grad_cam --batch-size 64 --plain --overwrite --device cuda \
    --out "$out/explain_set" | tee "$out/explain_set.txt"
echo "wrote $out/"
