#!/usr/bin/env bash
# The GPU measurement of docs/benchmarks.md as one command: the multi-domain training step
# (both ways: loop and stacked) against plain timm training of the same backbone, for the
# paper's two backbones at 224 px, 5 tasks of 32 images each per step, budget 0.2 as in the
# FGC presets, each after a profiler table of its top kernels. Needs an NVIDIA GPU and torch,
# torchvision and timm; mtlsearch itself is taken from this checkout when it is not installed
# (nothing is built or fetched).
# About five minutes on an H200.
#
#     bash benchmarks/gpu_throughput.sh [cuda:N] | tee gpu-throughput.txt
set -euo pipefail
device=${1:-cuda}
python=${PYTHON:-python3}
cd "$(dirname "$0")/.."
if ! "$python" -c "import mtlsearch" 2>/dev/null; then  # the package as pyproject maps it, no build
    site=$(mktemp -d)
    mkdir "$site/mtlsearch"
    ln -s "$PWD"/search/* "$site/mtlsearch/"
    for sub in models datasets studies; do ln -s "$PWD/$sub" "$site/mtlsearch/$sub"; done
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
"$python" -c "import torch, timm; assert torch.cuda.is_available(), 'no CUDA device'; print('torch', torch.__version__, 'timm', timm.__version__, torch.cuda.get_device_name(0))"
for backbone in mobilenetv2_100 resnet50; do
    "$python" benchmarks/step_throughput.py --device "$device" --backbone "$backbone" --image-size 224 \
        --tasks 5 --batch 32 --classes 100 --budget 0.2 --steps 20 --rounds 5 --profile 5
done
# what train-time augmentation (--augment) costs a step on the device: ratio= with / without
"$python" benchmarks/augment_cost.py --device "$device" --batch 32 --steps 20
