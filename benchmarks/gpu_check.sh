#!/bin/bash
# The GPU checks of issue 9 in one run (about 8 minutes on one H100), for a machine with a CUDA GPU:
# the gpu-marked tests, then the overhead benchmark (lessonlib's fit vs the minimal loop vs the model-bound
# ceiling, precompute, lr_find) eager and compiled, and the image-cache benchmark. JSON goes to
# benchmarks/results/ (and to $OUT when that is set, as on a lent device machine).
#   LESSONLIB_DATA_MIRROR=../shared/datasets bash benchmarks/gpu_check.sh
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export LESSONLIB_DATA_MIRROR=${LESSONLIB_DATA_MIRROR:-../shared/datasets}
$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU here'; print(torch.cuda.get_device_name())" || exit 1
$PY -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider
$PY benchmarks/training_overhead.py --arch resnet34 --repeats 3
$PY benchmarks/training_overhead.py --arch resnet34 --repeats 3 --compile
$PY benchmarks/image_cache.py
$PY benchmarks/precompute_speedup.py
if [ -n "${OUT:-}" ]; then cp benchmarks/results/*.json "$OUT"/; fi
