#!/usr/bin/env bash
# The GPU benchmark in one command of at most 8 minutes; installs nothing (torch, torchvision and
# timm must be importable). Usage: bash benchmarks/gpu.sh OUT_DIR [extra gpu.py options]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: benchmarks/gpu.sh OUT_DIR [options]}"
shift
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
# 450 s of phases, and a hard stop at 470 s in case one phase overruns its estimate.
PYTHONPATH=src timeout 470 python benchmarks/gpu.py --out "$out" --time-budget 450 "$@"
