#!/usr/bin/env bash
# The prepared GPU check (benchmarks/gpu_check.py): images/s and peak memory of every variation backend with
# full-size random weights, and the teacher's training images/s, as one markdown table; under 10 minutes.
#
#   bash benchmarks/gpu_check.sh                 # on a machine with one CUDA GPU
#   bash benchmarks/gpu_check.sh --tiny          # tiny pipelines on the CPU: checks the script itself
#   bash benchmarks/gpu_check.sh --budget-minutes 5 --backends versatile_diffusion kandinsky22
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}"
export HF_HUB_OFFLINE=1  # random weights: nothing to download, and nothing is
exec timeout 600 "$PYTHON" -m benchmarks.gpu_check "$@"
