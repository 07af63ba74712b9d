#!/usr/bin/env bash
# Everything convscope claims about a GPU, in one run (the first four steps took about 8 minutes on an H100), most
# important first:
#   1. every gradient method against Captum and pytorch-grad-cam at batch 1, 16 and 64, 224 and 256 px;
#   2. the gallery on CUDA, then on the same machine's CPU (each section's time is printed by the demo);
#   3. exact incremental occlusion against Captum on CUDA (Lite0 and ResNet-18, stride 16 and 8);
#   4. where one call's time goes (cProfile and torch.profiler) for saliency, guided backprop and Grad-CAM;
#   5. SmoothGrad and Integrated Gradients against Captum, then every other attribution method against its reference;
#   6. Grad-CAM over a picture set against a plain forward+backward pass over the same loader;
#   7. LRP against Zennit and TCAV against Captum; the atlas's batched visualisation against Lucent.
# Usage: benchmarks/cuda.sh [OUT_FOLDER]   (default: bench-cuda; needs CUDA; run from the repository root)
set -euo pipefail
out="${1:-bench-cuda}"
mkdir -p "$out"
python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: run this on a GPU')"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/device.txt"
nproc | sed 's/^/CPU cores: /' | tee -a "$out/device.txt"
step() { echo "== $1 ($(date +%T))"; }
step "gradient methods"
python3 benchmarks/attribution.py --device cuda --repeat 5 --batches 1 16 64 --size 224 256 \
    --methods saliency deconvnet guided_backprop grad_cam guided_grad_cam grad_cam_plus_plus layer_cam \
    | tee "$out/gradient_methods.md"
step "gallery on cuda"
python3 -m convscope demo --device cuda --out "$out/gallery-cuda" 2>&1 \
    | grep -v "it/s\]" | tee "$out/gallery_cuda.txt"
step "gallery on cpu"
python3 -m convscope demo --device cpu --out "$out/gallery-cpu" 2>&1 \
    | grep -v "it/s\]" | tee "$out/gallery_cpu.txt"
step "incremental occlusion"
python3 benchmarks/occlusion.py --device cuda --repeat 2 | tee "$out/occlusion.md"
step "profile"
python3 benchmarks/attribution.py --device cuda --profile --batches 1 --methods saliency guided_backprop grad_cam \
    > "$out/profile.txt" 2>&1
step "noise and path methods"
python3 benchmarks/attribution.py --device cuda --repeat 3 --batches 1 16 --methods smooth_grad integrated_gradients \
    | tee "$out/noise_and_path_methods.md"
step "the other attribution methods"
python3 benchmarks/attribution.py --device cuda --repeat 3 --batches 1 16 \
    --methods input_x_gradient noise_tunnel deep_lift deep_lift_shap gradient_shap feature_ablation \
    shapley_value_sampling lime kernel_shap layer_gradient_x_activation layer_deep_lift layer_conductance \
    internal_influence hires_cam grad_cam_element_wise xgrad_cam eigen_cam eigen_grad_cam ablation_cam kpca_cam \
    shapley_cam finer_cam factorisation | tee "$out/other_methods.md"
python3 benchmarks/attribution.py --device cuda --model resnet18 --repeat 3 --batches 1 16 --methods full_grad \
    | tee "$out/full_grad.md"
step "picture set"
python3 -m convscope explain-set samples --method grad_cam --batch-size 64 --bare-rate --overwrite --device cuda \
    --out "$out/explain_set" | tee "$out/explain_set.txt"
step "relevance and concepts"
python3 benchmarks/relevance.py --size 224 --device cuda | tee "$out/relevance.md"
step "atlas"
python3 benchmarks/atlas.py --channels 32 --steps 64 --size 128 --device cuda | tee "$out/atlas.md"
step "done: wrote $out/"
