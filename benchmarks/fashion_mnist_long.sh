#!/usr/bin/env bash
# The longer Fashion-MNIST preset: xception_small at width 1.0, recipe fashion_mnist_long (60 epochs,
# cosine, warm-up, label smoothing, dropout 0.2, Polyak averaging), batch 256, random erasing on half
# the training images, evaluated on the official test set after every epoch. Prints the per-epoch
# test accuracy and the wall time.
#
#   benchmarks/fashion_mnist_long.sh [RUN_DIR] [extra `xception demo` options, e.g. --device cuda]
#
# Measured (docs/training.md): 95.29% top-1 after 60 epochs, 486 s on one H100 (bf16, channels_last),
# 5 loader workers, run by benchmarks/fashion_mnist_long_gpu.sh. On 2 CPU cores expect many hours.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN_DIR=${1:-runs/fashion_mnist_long}
shift || true
XCEPTION=${XCEPTION:-.venv/bin/xception}
start=$(date +%s)
"$XCEPTION" demo --long --out "$RUN_DIR" "$@"
end=$(date +%s)
python3 - "$RUN_DIR/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if '"eval"' in line]
for r in rows:
    print(f"epoch {r['epoch']:5.1f}  test top-1 {r['top1']:.4f}  wall {r['wall_s']:6.0f} s")
print(f"final test top-1 {rows[-1]['top1']:.4f}, best {max(r['top1'] for r in rows):.4f}")
PY
echo "wall time: $((end - start)) s"
