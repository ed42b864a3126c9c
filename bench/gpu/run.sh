#!/usr/bin/env bash
# One prepared GPU run (after bench/gpu/bundle.sh here): installs the carried wheels into /tmp/site, then runs the
# training benchmark at stage-1 shape with the options on and off, the inference backends, and the NTIRE-protocol
# runtime. Reports go to $OUT (the device tool brings them back). About 9 minutes on an H200, most of it
# torch.compile: run it with timeout_s=600 and read $OUT even if it is cut short.
# DEVICE=cpu rehearses the same steps here at small sizes (about 3 minutes on 2 cores; with PY3 naming a Python
# that has torch but no basicsr, as the GPU machine's has, and PYVER=3.11 given to bundle.sh for its lmdb wheel).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/gpu_out}
DEVICE=${DEVICE:-cuda}
PY3=${PY3:-python3}
mkdir -p "$OUT"
"$PY3" -m pip install -q --no-index --no-deps --target /tmp/site .gpu/wheels/*.whl
export PYTHONPATH=/tmp/site:$PWD
if [ "$DEVICE" = cuda ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/device.csv"
    E2E="--workers 8 --iters 200 --steps 30 --threads 16"
    INFER="--threads 16"
else
    E2E="--workers 2 --iters 60 --steps 3 --seconds 3 --threads 2"
    INFER="--threads 2 --rounds 1 --sizes 64x64"
fi
"$PY3" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' | tee -a "$OUT/device.csv"
# shellcheck disable=SC2086  # E2E and INFER are lists of arguments
"$PY3" bench/bench_train_e2e.py --device "$DEVICE" --matrix --photos .gpu/data/SunHays80/HR --work /tmp/train_e2e \
    $E2E 2>&1 | grep -v 'img/s' | tee "$OUT/train_e2e.md" | tail -60
"$PY3" -m pfdn_arch.cli profile --protocol ntire --device "$DEVICE" --weights .gpu/weights/team08_PFDN.pth \
    2>&1 | tee "$OUT/ntire_profile.md"
# shellcheck disable=SC2086
"$PY3" bench/bench_infer.py --device "$DEVICE" $INFER --weights .gpu/weights/team08_PFDN.pth \
    --set5 .gpu/data/Set5/HR 2>&1 | tee "$OUT/infer.md" | tail -30
