#!/usr/bin/env bash
# m6r6 inference and training speed on a CUDA GPU, against the card's bf16 matmul rate.
# Writes benchmarks/gpu-results.md. Needs the project installed (pip install -e .) with a CUDA
# build of torch. Check the script without a GPU: python benchmarks/gpu.py --device cpu --dry-run
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
"$python" - <<'PY'
import sys, torch
if not torch.cuda.is_available():
    sys.exit("gpu.sh: no CUDA device visible to torch " + torch.__version__)
print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CUDA", torch.version.cuda)
PY
exec "$python" benchmarks/gpu.py --device cuda "$@"
