"""What does the first epoch after `unfreeze()` cost, with cuDNN's algorithm search on and off?

The lessons fine-tune like this: head on precomputed activations, then `unfreeze()`, `bn_freeze(True)` and a few
epochs of the whole network. On a GPU with `cudnn.benchmark` on, cuDNN times its algorithms for every new input
shape the first time it meets it (whole and last mini-batches, training and evaluation), which a lesson of a few
epochs may never earn back. Each setting runs in a process of its own (cuDNN remembers what it timed per process),
in turn, `--repeats` times: the wall time of each of `--epochs` fine-tuning epochs, and of the whole fit.

    python benchmarks/unfreeze_warmup.py [--arch efficientnet_lite0] [--epochs 3] [--sz 224] [--repeats 1]

Writes JSON to benchmarks/results/unfreeze_warmup_<device>_<arch>.json and prints, per setting, the first epoch
against the median of the later ones. On a CPU there is no cuDNN: both settings run the same code.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from _results import save_result   # benchmarks/_results.py


def one_run(arch, sz, epochs):
    """Fine-tune in this process; the seconds of each epoch after `unfreeze()`."""
    import torch

    from lessonlib import ConvLearner, ImageClassifierData, datasets, setup, tfms_from_model, transforms_side_on

    setup(0)
    tfms = tfms_from_model(arch, sz, aug_tfms=transforms_side_on, max_zoom=1.1)
    data = ImageClassifierData.from_paths(datasets.get("dogscats-mini", smoke=False), tfms=tfms, bs=64)
    learn = ConvLearner.pretrained(arch, data, precompute=True)
    learn.fit(1e-2, 1)                        # the head, on cached activations
    learn.precompute = False
    learn.unfreeze()
    learn.bn_freeze(True)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    learn.fit([1e-5, 1e-4, 1e-3], epochs)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    table = learn.history[learn.history.fit == learn.history.fit.max()]
    return {"epoch_seconds": [float(t) for t in table.time], "fit_seconds": round(time.perf_counter() - start, 2),
            "cudnn_benchmark": bool(torch.backends.cudnn.benchmark), "device": str(learn.policy.device)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="efficientnet_lite0")
    parser.add_argument("--weights", default="imagenet", help="'random' for a network whose weights are not here")
    parser.add_argument("--sz", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)   # internal: one run, this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(args.arch, args.sz, args.epochs)))
        return
    runs = {"on": [], "off": []}
    for _ in range(args.repeats):
        for setting in runs:
            env = {**os.environ, "LESSONLIB_CUDNN_BENCHMARK": "1" if setting == "on" else "0",
                   "LESSONLIB_HOME": tempfile.mkdtemp(prefix="lessonlib-warmup-"), "LESSONLIB_WEIGHTS": args.weights}
            out = subprocess.run([sys.executable, __file__, "--one", "--arch", args.arch, "--sz", str(args.sz),
                                  "--epochs", str(args.epochs)],
                                 env=env, capture_output=True, text=True)
            lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
            if out.returncode != 0 or not lines:
                raise SystemExit(f"cudnn benchmark {setting}: the run failed:\n{out.stderr[-2000:]}")
            runs[setting].append(json.loads(lines[-1]))
    result = {"arch": args.arch, "weights": args.weights, "sz": args.sz, "epochs": args.epochs, "runs": runs}
    for setting, rows in runs.items():
        first = statistics.median(r["epoch_seconds"][0] for r in rows)
        later = statistics.median(t for r in rows for t in r["epoch_seconds"][1:]) if args.epochs > 1 else None
        result[f"first_epoch_s_{setting}"] = round(first, 2)
        result[f"later_epoch_s_{setting}"] = None if later is None else round(later, 2)
        result[f"fit_s_{setting}"] = round(statistics.median(r["fit_seconds"] for r in rows), 2)
    device = "cuda" if "cuda" in runs["on"][0]["device"] else "cpu"
    save_result(f"unfreeze_warmup_{device}_{args.arch}", result)
    for setting in runs:
        later = result[f"later_epoch_s_{setting}"]
        print(f"cudnn.benchmark {setting:>3}: first epoch after unfreeze {result[f'first_epoch_s_{setting}']} s, "
              f"later epochs {later} s" + (f" ({result[f'first_epoch_s_{setting}'] / later:.1f}x)" if later else "")
              + f", whole fit {result[f'fit_s_{setting}']} s")


if __name__ == "__main__":
    main()
