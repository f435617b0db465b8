#!/usr/bin/env bash
# MemNet M6R6 for SR, denoising and JPEG on one large GPU, all three within the time budget.
#
#   OUT=/path/to/out tools/gpu_train.sh [--minutes 11] [--data-root DIR] [...]   # on the GPU
#   OUT=/tmp/dry tools/gpu_train.sh --dry-run                                     # CPU check
#
# Installs memnet into a venv when it is not importable, then runs tools/gpu_train.py with its
# output also written to $OUT/gpu_train.log. Weights and training state: $OUT/TASK/checkpoints/.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the output folder}"
mkdir -p "$OUT"
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c "import memnet" 2>/dev/null; then
    "$PYTHON" -m pip install -q --no-deps -e . >/dev/null
fi
export PYTHONUNBUFFERED=1
"$PYTHON" tools/gpu_train.py --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu_train.log"
