#!/usr/bin/env bash
# Make .gpu/ (git-ignored): what one run on a lent GPU machine needs, which that machine lacks
# (../shared/docs/GPU.md: torch, OpenCV, scikit-image and Python 3.12 are there; no package index, no basicsr,
# no lmdb, and no ../shared). Then, with the device tool: run(command="bash bench/gpu/run.sh", carry=[".gpu"]).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
PYVER=${PYVER:-3.12}
rm -rf .gpu
mkdir -p .gpu/wheels .gpu/weights .gpu/data
"$PY" -m pip wheel -q --no-deps --no-build-isolation basicsr==1.4.2 -w .gpu/wheels
# this checkout as a wheel: installing it there puts the start-up hook (pfdn-basicsr-hook.pth) into site-packages,
# which the tests of BasicSR's own entry points (python -m basicsr.train, ...) need
"$PY" -m pip wheel -q --no-deps --no-build-isolation . -w .gpu/wheels
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 lmdb -d .gpu/wheels
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" pytest pluggy iniconfig packaging \
    tqdm -d .gpu/wheels
# PyAV (35 MB: films, tests/test_video.py, the video section) and python-isal (the PNG writer); the other optional
# runtimes (OpenVINO 59 MB, ONNX Runtime 28, ONNX 9) would not fit the carry limit with the data: their tests fail
# there, and run.sh reports those failures apart from the rest. The versions tested here.
version() { "$PY" -c "from importlib.metadata import version; print(version('$1'))"; }
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --platform manylinux_2_28_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 "av==$(version av)" "isal==$(version isal)" \
    -d .gpu/wheels
cp ../shared/weights/team08_PFDN.pth .gpu/weights/
cp -r ../shared/data/benchmark/Set5 .gpu/data/Set5
cp -r ../shared/data/train/SunHays80 .gpu/data/SunHays80
# Urban100's LR images (8 MB; its HR set would not fit the carry limit): the infer-folder workload rows
(cd .gpu && "$OLDPWD/$PY" -m pfdn_arch.cli prepare benchmark --hr "$OLDPWD/../shared/data/benchmark/Urban100/HR" \
    --name Urban100 --root bench_sets >/dev/null && mv bench_sets/Urban100/LR_bicubic/X4 data/Urban100_LR_X4 &&
    rm -rf bench_sets)
# the layout of ../shared that the test suite reads (PFDN_SHARED=.gpu/shared there)
mkdir -p .gpu/shared/weights .gpu/shared/data/benchmark
ln -s ../../weights/team08_PFDN.pth .gpu/shared/weights/team08_PFDN.pth
ln -s ../../../data/Set5 .gpu/shared/data/benchmark/Set5
du -sh .gpu
