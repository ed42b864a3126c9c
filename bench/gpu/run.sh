#!/usr/bin/env bash
# One prepared GPU run (after bench/gpu/bundle.sh here): installs the carried wheels into /tmp/site, then runs the
# training benchmark at stage-1 shape with the options on and off, the inference backends, and the NTIRE-protocol
# runtime. Reports go to $OUT (the device tool brings them back). About 9 minutes on an H200, most of it
# torch.compile: run it with timeout_s=600 and read $OUT even if it is cut short.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/wheels/*.whl
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/device.csv"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' | tee -a "$OUT/device.csv"
python3 bench/bench_train_e2e.py --device cuda --matrix --photos .gpu/data/SunHays80/HR --work /tmp/train_e2e \
    --workers 8 --iters 200 --steps 30 --threads 16 2>&1 | grep -v 'img/s' | tee "$OUT/train_e2e.md" | tail -60
python3 -m pfdn_arch.cli profile --protocol ntire --device cuda --weights .gpu/weights/team08_PFDN.pth \
    2>&1 | tee "$OUT/ntire_profile.md"
python3 bench/bench_infer.py --device cuda --threads 16 --weights .gpu/weights/team08_PFDN.pth \
    --set5 .gpu/data/Set5/HR 2>&1 | tee "$OUT/infer.md" | tail -30
