"""Which rule for reading the learning-rate finder trains best, trained the way the lessons train?

On dogscats-mini (800 training photos, 200 validation photos), for each seed: build the learner with precompute
and run `learn.lr_find()` (100 mini-batches, smoothing 0.98). The rules are those of `lrf.suggestions`
(lessonlib.lr_finder.RULES): `valley`, `steepest`, the minimum / 10 (`order_below_min`) and the notes'
rule, the power of ten one order below the minimum (`power_of_ten_below_min`); beside them the notes' fixed 1e-2.
Then, for each distinct rate, start again from the same head (same seed) and train as lessons 04, 05 and 07 do
(rules that pick the same rate share one run: the notes' rule gives 1e-2 whenever the minimum lies in 0.1-0.99):

  1. head:      `learn.fit(lr, 3, cycle_len=1)` on precomputed activations (3 SGDR cycles of one epoch);
  2. fine-tune: `learn.unfreeze(); learn.bn_freeze(True); learn.fit([lr/100, lr/10, lr], 1, cycle_len=1)`
                (one cycle of one epoch; the lessons run 3 cycles with cycle_mult=2, 7 epochs, which would
                take this comparison from about half an hour to hours on a CPU).

Records validation loss and accuracy after each stage. Reports, per rule and stage, the mean over seeds with a
95% bootstrap interval (seeds resampled), the paired difference from the `--baseline` rule (the notes' rule unless
told) with its interval, and what one run of 200 photos can resolve (Wilson's 95% interval for a single accuracy).
Writes JSON to benchmarks/results/ after every seed, so an interrupted run keeps what it measured.

    python benchmarks/lr_rules.py [--seeds 0 1 2 3 4] [--arch efficientnet_lite0] [--sz 224] [--stages head finetune]
                                  [--baseline power_of_ten_below_min] [--rules power_of_ten_below_min valley]
"""
import argparse
import os
import tempfile
import time

import numpy as np
import pandas as pd
from scipy import stats

from _results import save_result   # benchmarks/_results.py
from lessonlib import ConvLearner, ImageClassifierData, datasets, setup, tfms_from_model, transforms_side_on
from lessonlib.lr_finder import RULES

FIXED = {"notes' 1e-2": 1e-2}
BASELINE = "power_of_ten_below_min"   # the paired differences are taken from this rule's runs


def rates_to_train(lrf, only=None):
    """{rule: rate} for every rule of `lrf.suggestions` and FIXED (or those named in `only`), and {rate: [rules]}:
    each rate is trained once."""
    rates = {rule: lr for rule, lr in {**lrf.suggestions, **FIXED}.items() if only is None or rule in only}
    runs = {}
    for rule, lr in rates.items():
        runs.setdefault(lr, []).append(rule)
    return rates, runs


def train(path, tfms, args, seed, lr, stages):
    """One run from the seed's starting head; returns one row per stage."""
    setup(seed)
    data = ImageClassifierData.from_paths(path, tfms=tfms, bs=args.bs)
    learn = ConvLearner.pretrained(args.arch, data, precompute=True)
    rows = []
    if "head" in stages:
        learn.fit(lr, 3, cycle_len=1)
        rows.append(("head", learn.history.iloc[-1]))
    if "finetune" in stages:
        learn.precompute = False
        learn.unfreeze()
        learn.bn_freeze(True)
        learn.fit(np.array([lr / 100, lr / 10, lr]), 1, cycle_len=1)
        rows.append(("finetune", learn.history.iloc[-1]))
    n = len(data.val_ds)
    return [{"stage": stage, "val_loss": float(last.val_loss), "accuracy": float(last.accuracy),
             "wrong": int(round((1 - last.accuracy) * n))} for stage, last in rows], n, learn.arch


def bootstrap(values, seed=0):
    """Mean of `values` and its 95% bootstrap interval (percentile, 10,000 resamples)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2 or np.ptp(values) == 0:
        return float(values.mean()), float(values.mean()), float(values.mean())
    res = stats.bootstrap((values,), np.mean, n_resamples=10_000, method="percentile",
                          random_state=np.random.default_rng(seed))
    return float(values.mean()), float(res.confidence_interval.low), float(res.confidence_interval.high)


def summarize(table, valid_images, baseline=BASELINE):
    """Per stage and rule: means with intervals, and paired differences (same seed) from the `baseline` rule."""
    out = []
    for (stage, rule), group in table.groupby(["stage", "rule"], sort=False):
        base = table[(table.stage == stage) & (table.rule == baseline)].set_index("seed")
        mine = group.set_index("seed")
        paired = mine.join(base.add_suffix("_baseline"), how="inner")
        acc, acc_lo, acc_hi = bootstrap(group.accuracy)
        loss, loss_lo, loss_hi = bootstrap(group.val_loss)
        d_loss = bootstrap(paired.val_loss - paired.val_loss_baseline)
        d_wrong = bootstrap(paired.wrong - paired.wrong_baseline)
        out.append({"stage": stage, "rule": rule, "lr_median": float(group.lr.median()),
                    "accuracy_mean": acc, "accuracy_ci95": [acc_lo, acc_hi],
                    "val_loss_mean": loss, "val_loss_ci95": [loss_lo, loss_hi],
                    "wrong_min": int(group.wrong.min()), "wrong_max": int(group.wrong.max()),
                    "baseline": baseline,
                    "val_loss_minus_baseline": d_loss[0], "val_loss_minus_baseline_ci95": list(d_loss[1:]),
                    "wrong_minus_baseline": d_wrong[0], "wrong_minus_baseline_ci95": list(d_wrong[1:])})
    return out


def one_run_resolution(accuracy, n):
    """Wilson's 95% interval for one run's accuracy measured on n photos."""
    ci = stats.binomtest(int(round(accuracy * n)), n).proportion_ci(method="wilson")
    return [float(ci.low), float(ci.high)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--arch", default="efficientnet_lite0")
    parser.add_argument("--sz", type=int, default=224)
    parser.add_argument("--bs", type=int, default=64)
    parser.add_argument("--stages", nargs="+", default=["head", "finetune"], choices=["head", "finetune"])
    parser.add_argument("--baseline", default=BASELINE, help="the rule the paired differences are taken from")
    parser.add_argument("--rules", nargs="+", metavar="RULE",
                        help="train only these rules' rates (default: every rule and the notes' 1e-2); "
                             "e.g. --rules power_of_ten_below_min valley, half the time of all of them")
    args = parser.parse_args()
    known = {*FIXED, *RULES}
    if args.rules and (set(args.rules) - known or args.baseline not in args.rules):
        parser.error(f"--rules takes some of {sorted(known)}, the --baseline ({args.baseline}) among them")
    os.environ.setdefault("LESSONLIB_HOME", tempfile.mkdtemp(prefix="lessonlib-lr-rules-"))
    path = datasets.get("dogscats-mini", smoke=False)
    tfms = tfms_from_model(args.arch, args.sz, aug_tfms=transforms_side_on, max_zoom=1.1)
    rows, started = [], time.perf_counter()
    for seed in args.seeds:
        setup(seed)
        data = ImageClassifierData.from_paths(path, tfms=tfms, bs=args.bs)
        lrf = ConvLearner.pretrained(args.arch, data, precompute=True).lr_find()
        rates, by_rate = rates_to_train(lrf, args.rules)
        print(f"seed {seed}: " + ", ".join(f"{rule} {lr:.2e}" for rule, lr in rates.items()), flush=True)
        for lr, rules in by_rate.items():
            runs, valid_images, arch = train(path, tfms, args, seed, lr, args.stages)
            for rule in rules:
                for run in runs:
                    rows.append({"seed": seed, "rule": rule, "lr": lr, "min_loss_lr": lrf.min_loss_lr,
                                 "same_run_as": [r for r in rules if r != rule], **run})
                    print(f"  {rule:>22} lr {lr:.2e} {run['stage']:>8}: val_loss {run['val_loss']:.4f}, "
                          f"accuracy {run['accuracy']:.3f} ({run['wrong']} wrong)", flush=True)
        table = pd.DataFrame(rows)
        result = {"arch": arch, "sz": args.sz, "bs": args.bs, "seeds_done": sorted(set(table.seed)),
                  "stages": {"head": "fit(lr, 3, cycle_len=1) with precompute",
                             "finetune": "then unfreeze, bn_freeze(True), fit([lr/100, lr/10, lr], 1, cycle_len=1)"},
                  "valid_images": valid_images,
                  "one_photo_moves_accuracy_by": 1 / valid_images,
                  "one_run_at_0.99_resolves": one_run_resolution(0.99, valid_images),
                  "minutes": (time.perf_counter() - started) / 60,
                  "runs": rows, "summary": summarize(table, valid_images, args.baseline)}
        save_result(f"lr_rules_{arch}_{args.sz}", result)
    summary = pd.DataFrame(result["summary"])
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(summary.to_string(index=False))


if __name__ == "__main__":
    main()
