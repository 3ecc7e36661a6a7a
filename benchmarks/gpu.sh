#!/usr/bin/env bash
# GPU benchmarks (issue 15, item 5), one prepared script of under 8 minutes on one GPU:
#   1. model images/s and the loader/model ratio (ISBI, crop256, trainer=gpu's loader settings);
#   2. the overhead ratio of train.py's path against a plain loop, both with trainer=gpu settings
#      (bf16 autocast, channels-last, pinned memory), and seglab's images/s.
#   bash benchmarks/gpu.sh [python]         (from anywhere; output also in logs/benchmarks/gpu/)
# Written by reading, not run yet: no GPU was lent while it was written (see BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-${PYTHON:-python}}
export NO_ALBUMENTATIONS_UPDATE=1 WANDB_MODE=offline WANDB_SILENT=true PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
OUT=${OUT:-logs/benchmarks/gpu/$(date +%Y-%m-%d_%H-%M-%S)}
mkdir -p "$OUT"
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
    torch.cuda.get_device_name(0), 'bf16', torch.cuda.is_bf16_supported())"
  echo "## 1. loader vs model (ISBI 2012, 4 x 256x256 crops, U-Net width 16), ~2 min"
  timeout 240 "$PY" benchmarks/data.py data=isbi2012 data.pin_memory=true --workers 0 4 \
    --batches 200 --steps 20 --device cuda
  echo "## 1b. the same with batch 32 (a GPU-sized batch)"
  timeout 180 "$PY" benchmarks/data.py data=isbi2012 data.batch_size=32 data.pin_memory=true \
    --workers 4 8 --batches 60 --steps 10 --device cuda
  echo "## 2. overhead, trainer=gpu, default config (synthetic 64x64, batch 8), ~1-2 min"
  timeout 180 "$PY" benchmarks/overhead.py --gpu --epochs 6 --steps 100 --val-batches 16
  echo "## 2b. overhead, trainer=gpu, ISBI crops at batch 16"
  timeout 120 "$PY" benchmarks/overhead.py --gpu --epochs 4 --steps 50 --val-batches 5 \
    data=isbi2012 data.batch_size=16 data.samples_per_epoch=800
} 2>&1 | tee "$OUT/gpu.txt"
echo "written: $OUT/gpu.txt"
