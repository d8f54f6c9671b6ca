#!/usr/bin/env bash
# GPU check (see tools/gpu_check.py): the full-width baseline for ~5 minutes on real CIFAR-10,
# then a 0.5 structured prune with a 1-epoch fine-tune and its fp16/int8 evaluation.
#
#   bash tools/gpu-check.sh ARCHIVE OUTDIR [--paths] [--tiny] [--budget-seconds S] [--max-epochs N]
#
# Needs `python3` (or $PYTHON) with torch, torchvision, numpy and pyyaml (a stock CUDA PyTorch environment);
# squeeze itself runs from src/ (no install). torch-pruning is used from the environment if it is
# there, else from a wheel in wheels/ (or $SQUEEZE_WHEELS), put on the path as a zip, so nothing
# is installed. Make the wheel on a machine with network access:
#   pip download torch-pruning --no-deps -d wheels/
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
path="$root/src"
python="${PYTHON:-python3}"
if ! "$python" -c "import torch_pruning" 2>/dev/null; then
  wheel="$(ls "${SQUEEZE_WHEELS:-$root/wheels}"/torch_pruning-*.whl 2>/dev/null | sort -V | tail -n 1 || true)"
  if [ -z "$wheel" ]; then
    echo "error: torch_pruning is not installed and no wheels/torch_pruning-*.whl was found;" \
         "make one with: pip download torch-pruning --no-deps -d wheels/" >&2
    exit 1
  fi
  path="$path:$wheel"  # a pure-Python wheel imports straight from the zip
fi
PYTHONPATH="$path${PYTHONPATH:+:$PYTHONPATH}" exec "$python" "$root/tools/gpu_check.py" "$@"
