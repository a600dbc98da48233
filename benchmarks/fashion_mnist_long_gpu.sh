#!/usr/bin/env bash
# Two candidates for the >= 95% Fashion-MNIST preset, side by side on one GPU (each a separate
# process; a small network at 28 px leaves the GPU mostly idle, the step is bound by kernel launches):
#   w10: xception_small at width 1.0, random erasing 0.5, 60 epochs, batch 256 (lr 0.2, batch-scaled)
#   w05: the same at width 0.5
# Usage: bash benchmarks/fashion_mnist_long_gpu.sh OUT_DIR [seconds per run, default 540]
# Fashion-MNIST must be in data/fashion-mnist or /usr/share/datasets/fashion-mnist (nothing is fetched).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: benchmarks/fashion_mnist_long_gpu.sh OUT_DIR [SECONDS]}"
limit="${2:-540}"
mkdir -p "$out"
export PYTHONPATH=src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
common='"epochs": 60, "batch_size": 256, "data": {"erase_probability": 0.5}, "num_workers": 5'
for variant in w10:1.0 w05:0.5; do
  name=${variant%%:*}; width=${variant##*:}
  timeout "$limit" python benchmarks/fashion_mnist_variants.py long "/tmp/fm_$name" cuda \
    "{$common, \"model_overrides\": {\"width\": $width}}" > "$out/$name.log" 2>&1 &
done
wait
for name in w10 w05; do
  cp "/tmp/fm_$name/metrics.jsonl" "$out/$name.metrics.jsonl" 2>/dev/null
  python3 - "$out/$name.metrics.jsonl" "$name" <<'PY'
import json, sys
try:
    rows = [json.loads(line) for line in open(sys.argv[1]) if '"eval"' in line]
except FileNotFoundError:
    rows = []
if not rows:
    print(sys.argv[2], "no evaluation recorded"); sys.exit()
for r in rows:
    print(f"{sys.argv[2]} epoch {r['epoch']:5.1f}  test top-1 {r['top1']:.4f}  wall {r['wall_s']:6.0f} s")
print(f"{sys.argv[2]} final test top-1 {rows[-1]['top1']:.4f} after {rows[-1]['epoch']} epochs")
PY
  tail -3 "$out/$name.log"
done
