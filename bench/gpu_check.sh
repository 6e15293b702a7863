#!/usr/bin/env bash
# The one command for a lent GPU machine (issue 26): install the carried wheels, then
# `python -m bench.gpu_check`. Nothing can be fetched there, so prepare the wheels here first
# (the device runs Python 3.12, x86-64), in a folder .git/info/exclude ignores:
#   pip download --only-binary :all: --python-version 3.12 --platform manylinux_2_28_x86_64 \
#       --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d .wheels \
#       minari gymnasium mujoco onnxconverter-common cuda-python tensorrt-cu13 onnxruntime-gpu
# and name .wheels in the device run's `carry`. The carry limit (64 MiB) does not hold
# TensorRT's libraries or onnxruntime-gpu (244 MiB): until the device image has them, the
# check runs what it can and says what was missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
if compgen -G '.wheels/*.whl' > /dev/null; then
    "$PY" -m pip install --quiet --no-index --find-links .wheels .wheels/*.whl || \
        echo 'gpu_check.sh: some carried wheels did not install' >&2
fi
"$PY" -m pip install --quiet --no-deps --no-build-isolation -e . || true
export PYTHONUNBUFFERED=1
"$PY" -m bench.gpu_check --out "${OUT:-bench/results}" "$@"
