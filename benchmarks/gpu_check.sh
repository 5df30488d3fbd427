#!/usr/bin/env bash
# GPU check (issue 16, goal 4): 1080p JPEG frames through decode -> image.sscd -> search, on CUDA,
# then the same code on this machine's CPUs; prints images/s end to end and model-only for both.
#
#   bash benchmarks/gpu_check.sh                 # FRAMES=2048 CPU_FRAMES=256 by default
#   FRAMES=4096 bash benchmarks/gpu_check.sh
#
# Prepared to run unattended on a lent GPU machine, in a few minutes: uses .venv when present
# (else makes .venv-gpu with the project installed), swaps onnxruntime for onnxruntime-gpu when
# ONNX Runtime has no CUDA provider, and never fails silently: each step says what it does.
set -euo pipefail
cd "$(dirname "$0")/.."
FRAMES=${FRAMES:-2048}
CPU_FRAMES=${CPU_FRAMES:-256}
PY=${PYTHON:-.venv/bin/python}
if [ ! -x "$PY" ]; then
  echo "== no .venv: creating .venv-gpu with the project"
  python3 -m venv .venv-gpu
  PY=.venv-gpu/bin/python
  "$PY" -m pip install --quiet --upgrade pip
  "$PY" -m pip install --quiet -e .
fi
has_cuda() {
  "$PY" -c "import onnxruntime as o, sys; sys.exit(0 if 'CUDAExecutionProvider' in o.get_available_providers() else 1)"
}
if ! has_cuda; then
  echo "== ONNX Runtime has no CUDA provider: installing onnxruntime-gpu (replaces onnxruntime)"
  "$PY" -m pip uninstall --quiet --yes onnxruntime || true
  "$PY" -m pip install --quiet "onnxruntime-gpu>=1.17"
  has_cuda || { echo "onnxruntime-gpu installed but still no CUDA provider (driver/CUDA libraries?)"; exit 1; }
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "(nvidia-smi not found)"
"$PY" -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.get_available_providers())"
echo "== GPU: $FRAMES frames"
"$PY" -m benchmarks.throughput --frames-1080p "$FRAMES" --device cuda
echo "== CPU ($(nproc) cores), same code: $CPU_FRAMES frames"
"$PY" -m benchmarks.throughput --frames-1080p "$CPU_FRAMES" --device cpu
