#!/usr/bin/env bash
# One prepared GPU run (after bench/gpu/bundle.sh here): installs the carried wheels into a venv over the machine's
# torch, then, by SECTIONS (default: all, in this order): tests (the suite on the GPU machine), nccl (torchrun with
# NCCL and DataLoader workers through python -m basicsr.train), train (the training benchmark at stage-1 shape with
# the options on and off), ntire (the NTIRE-protocol runtime), infer (the inference backends), video (films end
# to end, bench_video.py). Reports go to $OUT
# (the device tool brings them back). A failing section does not stop the others. The whole is more than one
# 600-second call on an H200 (torch.compile dominates train): split it, e.g. SECTIONS="tests nccl" first.
# DEVICE=cpu rehearses the same steps here at small sizes (about 3 minutes on 2 cores; with PY3 naming a Python
# that has torch but no basicsr, as the GPU machine's has, and PYVER=3.11 given to bundle.sh for its lmdb wheel).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/gpu_out}
DEVICE=${DEVICE:-cuda}
PY3=${PY3:-python3}
mkdir -p "$OUT"
# a venv over the machine's own torch, with the carried wheels (basicsr, lmdb, this package and its start-up hook)
"$PY3" -m venv --system-site-packages /tmp/pfdn-venv
/tmp/pfdn-venv/bin/pip install -q --no-index --no-deps .gpu/wheels/*.whl
PY3=/tmp/pfdn-venv/bin/python
export PYTHONPATH=$PWD
if [ "$DEVICE" = cuda ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/device.csv"
    E2E="--workers 8 --iters 200 --steps 30 --threads 16"
    INFER="--threads 16"
    VIDEO="--rounds 2"
else
    E2E="--workers 2 --iters 60 --steps 3 --seconds 3 --threads 2"
    INFER="--threads 2 --rounds 1 --sizes 64x64"
    VIDEO="--rounds 1 --frames 12 --size 128x96"
fi
"$PY3" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' | tee -a "$OUT/device.csv"
SECTIONS=${SECTIONS:-tests nccl train ntire infer video}
set +e
for section in $SECTIONS; do
    echo "=== $section" | tee -a "$OUT/sections.txt"
    start=$(date +%s)
    case $section in
    tests)
        # every module that imports runs (one that needs a package not carried must not stop the rest); then the
        # failures apart from those a DEVICE=cpu rehearsal with the same wheels has (bench/gpu/not_carried.txt: the
        # tests of OpenVINO, ONNX Runtime, ONNX, NNCF, ncnn, ... which are not carried), which are the news
        CI=true PFDN_SHARED=$PWD/.gpu/shared "$PY3" -m pytest -q -p no:cacheprovider --durations=15 \
            --continue-on-collection-errors tests > "$OUT/tests.txt" 2>&1
        tail -1 "$OUT/tests.txt"
        grep -E "^(FAILED|ERROR) " "$OUT/tests.txt" | sed -E 's/^(FAILED|ERROR) //; s/ - .*//' | sort -u \
            > "$OUT/tests_failed_ids.txt"
        echo "failed as without the packages not carried: $(comm -12 "$OUT/tests_failed_ids.txt" \
            <(sort -u bench/gpu/not_carried.txt) | wc -l); failed otherwise:"
        comm -23 "$OUT/tests_failed_ids.txt" <(sort -u bench/gpu/not_carried.txt) | tee "$OUT/tests_failed.txt" ;;
    nccl)
        # the stage-1 yml as shipped (decoded LMDBs, 4 workers, bf16, channels_last, CUDA prefetch), compile off
        "$PY3" -m pfdn_arch.cli prepare lr --hr .gpu/data/Set5/HR --out /tmp/nccl_lr >/dev/null
        "$PY3" -m pfdn_arch.cli prepare lmdb --gt .gpu/data/Set5/HR --lq /tmp/nccl_lr --gt-lmdb /tmp/nccl_gt.lmdb \
            --lq-lmdb /tmp/nccl_lq.lmdb >/dev/null
        (cd /tmp && "$PY3" -m torch.distributed.run --nproc_per_node=1 -m basicsr.train \
            -opt "$OLDPWD/options/train_pfdn_x4.yml" --launcher pytorch --force_yml name=nccl_check \
            datasets:train:dataroot_gt=/tmp/nccl_gt.lmdb datasets:train:dataroot_lq=/tmp/nccl_lq.lmdb \
            datasets:train:gt_size=128 datasets:train:batch_size_per_gpu=4 datasets:train:dataset_enlarge_ratio=20 \
            train:total_iter=20 train:compile=false logger:print_freq=10 logger:save_checkpoint_freq=20 \
            logger:use_tb_logger=false val:val_freq=1000 \
            datasets:val:dataroot_gt="$OLDPWD/.gpu/data/Set5/HR" datasets:val:dataroot_lq=/tmp/nccl_lr) \
            2>&1 | tail -25 | tee "$OUT/nccl.txt" ;;
    train)
        # shellcheck disable=SC2086  # E2E is a list of arguments
        "$PY3" bench/bench_train_e2e.py --device "$DEVICE" --matrix --photos .gpu/data/SunHays80/HR \
            --work /tmp/train_e2e $E2E 2>&1 | grep -v 'img/s' | tee "$OUT/train_e2e.md" | tail -60 ;;
    ntire)
        "$PY3" -m pfdn_arch.cli profile --protocol ntire --device "$DEVICE" --weights .gpu/weights/team08_PFDN.pth \
            2>&1 | tee "$OUT/ntire_profile.md" ;;
    infer)
        # shellcheck disable=SC2086
        "$PY3" bench/bench_infer.py --device "$DEVICE" $INFER --weights .gpu/weights/team08_PFDN.pth \
            --set5 .gpu/data/Set5/HR --urban100-lr .gpu/data/Urban100_LR_X4 --work /tmp/infer_workloads 2>&1 \
            | tee "$OUT/infer.md" | tail -40 ;;
    video)
        # films end to end against the backend alone; with the network on the GPU the pixels are made on the
        # thread that encodes (Upscaler.finish_beside_network), a path no CPU run takes
        # shellcheck disable=SC2086
        "$PY3" bench/bench_video.py --device "$DEVICE" $VIDEO --weights .gpu/weights/team08_PFDN.pth 2>&1 \
            | tee "$OUT/video.md" | tail -12 ;;
    esac
    echo "=== $section: $(( $(date +%s) - start )) s" | tee -a "$OUT/sections.txt"
done
