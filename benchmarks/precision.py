"""float32 against bfloat16 on the CPU: what each costs, and whether the lesson's answers stay the same.

In one run, alternating the two precisions (`resolve_policy("cpu", precision=...)`), on dogscats-mini:
  - images/s of precompute (the frozen body's forward pass over the photos);
  - images/s of one frozen-body epoch with augmentation (precompute off, lesson 03);
  - images/s of fine-tuning steps (body unfrozen, BatchNorm fixed, lessons 05 and 07);
  - the answers: accuracy after training the head, the LR finder's suggestion, the SGDR table, the fine-tune
    table, for each precision;
  - with `--lessons 01 04 05`: the wall time of whole lessons in full mode, alternating (LESSONLIB_PRECISION).
Prints what this CPU reports (`policy.cpu_bf16`) too, and per stage: which precision is faster here and which
one lessonlib's default policy uses (`resolve_policy("cpu")`: `precision` for forward passes without gradients
through the body, `backprop_precision` where the body trains). Writes JSON to benchmarks/results/.

    python benchmarks/precision.py [--sz 224] [--repeats 2] [--lessons 01 04 05]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from _results import save_result   # benchmarks/_results.py
from lessonlib import ConvLearner, ImageClassifierData, datasets, setup, tfms_from_model, transforms_side_on
from lessonlib.engine.policy import cpu_bf16, resolve_policy
from lessonlib.engine.steps import StepPlan
from lessonlib.training import get_preds

PRECISIONS = ("fp32", "bf16")


def forward_speed(body, loader, policy):
    start = time.perf_counter()
    out, _ = get_preds(policy.prepare(body).eval(), loader, policy)
    return len(out) / (time.perf_counter() - start)


def step_speed(learn, steps):
    """Images/s of `steps` fine-tuning mini-batches (the body unfrozen, its BatchNorm fixed)."""
    from lessonlib import training
    model, optimizer, _, policy = learn._setup(training.group_rates(learn.layer_groups, [1e-5, 1e-4, 1e-3]))
    model.train()
    batches = iter(learn._batches("train", shuffle=True))
    x, y = next(batches)
    plan = StepPlan(policy, model, optimizer, keep_finite=False)   # as before: no copy kept per step
    training.train_step(model, x, y, learn.objective.loss_fn, optimizer, plan)   # warm-up
    start, n = time.perf_counter(), 0
    for _ in range(steps):
        x, y = next(batches)
        training.train_step(model, x, y, learn.objective.loss_fn, optimizer, plan)
        n += len(y)
    return n / (time.perf_counter() - start)


def answers(path, tfms, bs, precision):
    """The lesson's numbers in one precision: head accuracy, LR suggestions, SGDR and fine-tune tables."""
    setup(0)
    data = ImageClassifierData.from_paths(path, tfms=tfms, bs=bs, device=resolve_policy("cpu", precision))
    learn = ConvLearner.pretrained("efficientnet_lite0", data, precompute=True)
    learn.fit(1e-2, 2)
    lrf = learn.lr_find()
    learn.precompute = False
    learn.fit(1e-2, 1, cycle_len=1)
    learn.unfreeze()
    learn.bn_freeze(True)
    learn.fit([1e-5, 1e-4, 1e-3], 1, cycle_len=1)
    table = learn.history.round(4)
    return {"head_accuracy": float(learn.history.accuracy.iloc[1]), "lr_find": lrf.suggestions,
            "table": table[["fit", "epoch", "trn_loss", "val_loss", "accuracy"]].to_dict("list")}, learn


def lesson_times(lessons, repeats):
    """Wall time of each lesson in full mode, the two precisions alternating."""
    script = Path(__file__).resolve().parent / "lesson_times.py"
    times = {p: {nb: [] for nb in lessons} for p in PRECISIONS}
    for _ in range(repeats):
        for precision in PRECISIONS:
            env = {**os.environ, "LESSONLIB_PRECISION": precision, "LESSONLIB_SMOKE": "0",
                   "LESSONLIB_HOME": tempfile.mkdtemp(prefix=f"lessonlib-{precision}-")}
            subprocess.run([sys.executable, str(script), *lessons, "--tag", f"precision_{precision}"], env=env)
            out = json.loads((script.parent / "results" / f"lesson_times_cpu_precision_{precision}.json").read_text())
            for row in out["lessons"]:
                times[precision][row["notebook"][:2]].append(row.get("seconds"))
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sz", type=int, default=224)
    parser.add_argument("--bs", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="fine-tuning mini-batches to time")
    parser.add_argument("--lessons", nargs="*", default=[], help="also time these lessons, e.g. 01 04 05")
    args = parser.parse_args()
    os.environ["LESSONLIB_HOME"] = tempfile.mkdtemp(prefix="lessonlib-precision-")
    native, why = cpu_bf16()
    result = {"cpu_bf16_native": native, "why": why, "capability": torch.backends.cpu.get_cpu_capability(),
              "threads": torch.get_num_threads(), "sz": args.sz, "bs": args.bs}
    path = datasets.get("dogscats-mini", smoke=False)
    tfms = tfms_from_model("efficientnet_lite0", args.sz, aug_tfms=transforms_side_on, max_zoom=1.1)
    learners = {}
    for precision in PRECISIONS:
        result[precision], learners[precision] = answers(path, tfms, args.bs, precision)
    speeds = {(p, what): [] for p in PRECISIONS for what in ("precompute", "frozen_epoch", "fine_tune")}
    for _ in range(args.repeats):
        for precision, learn in learners.items():
            policy = learn.policy
            speeds[precision, "precompute"].append(forward_speed(learn.body, learn.data.val_dl, policy))
            learn.freeze()
            learn.precompute = False
            start = time.perf_counter()
            learn.fit(1e-3, 1)
            speeds[precision, "frozen_epoch"].append(len(learn.data.trn_ds) / (time.perf_counter() - start))
            learn.unfreeze()
            learn.bn_freeze(True)
            speeds[precision, "fine_tune"].append(step_speed(learn, args.steps))
    for (precision, what), values in speeds.items():
        result[f"{what}_images_per_s_{precision}"] = round(statistics.median(values), 2)
    for what in ("precompute", "frozen_epoch", "fine_tune"):
        result[f"{what}_bf16_over_fp32"] = round(result[f"{what}_images_per_s_bf16"] /
                                                 result[f"{what}_images_per_s_fp32"], 3)
    result["head_accuracy_difference_in_images"] = round(abs(result["bf16"]["head_accuracy"] -
                                                             result["fp32"]["head_accuracy"]) * len(learners["fp32"].data.val_ds))
    if args.lessons:
        result["lesson_seconds"] = lesson_times(args.lessons, 1)
    default = resolve_policy("cpu")
    result["default_policy"] = {"precompute": default.precision, "frozen_epoch": default.precision,
                                "fine_tune": default.backprop_precision}
    save_result(f"precision_cpu_{args.sz}", result)
    print(f"\n{'stage':<14}{'fp32 img/s':>11}{'bf16 img/s':>11}{'bf16/fp32':>10}  faster here  lessonlib's default")
    for what in ("precompute", "frozen_epoch", "fine_tune"):
        ratio = result[f"{what}_bf16_over_fp32"]
        print(f"{what:<14}{result[f'{what}_images_per_s_fp32']:>11}{result[f'{what}_images_per_s_bf16']:>11}"
              f"{ratio:>10}  {'bf16' if ratio > 1 else 'fp32':<11}  {result['default_policy'][what]}")


if __name__ == "__main__":
    main()
