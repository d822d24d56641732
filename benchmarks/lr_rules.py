"""Which rule for reading the learning-rate finder trains best? Each rule's rate, over several seeds.

On dogscats-mini with precompute (the setting of lesson 02), for each seed: run `learn.lr_find()` (100
mini-batches, smoothing 0.98), then from the same starting head train 3 epochs at each rule's suggestion
(`order_below_min`, the lesson's rule; `steepest`; `valley`) and record the validation loss and accuracy.
Also, on the same sweeps: where the smoothed minimum falls with lighter smoothing (beta 0.9), and with a
sweep three times longer (300 mini-batches). Prints a table and medians; writes JSON to benchmarks/results/.

    python benchmarks/lr_rules.py [--seeds 0 1 2 3 4] [--arch resnet34] [--sz 224]
"""
import argparse
import os
import statistics
import tempfile

import numpy as np
import pandas as pd
import torch

from _results import save_result   # benchmarks/_results.py
from lessonlib import ConvLearner, ImageClassifierData, datasets, setup, tfms_from_model, transforms_side_on
from lessonlib.lr_finder import LRFinder


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--arch", default="resnet34")
    parser.add_argument("--sz", type=int, default=224)
    parser.add_argument("--bs", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    os.environ["LESSONLIB_HOME"] = tempfile.mkdtemp(prefix="lessonlib-lr-rules-")
    path = datasets.get("dogscats-mini", smoke=False)
    tfms = tfms_from_model(args.arch, args.sz, aug_tfms=transforms_side_on, max_zoom=1.1)
    rows, minima = [], []
    for seed in args.seeds:
        setup(seed)
        data = ImageClassifierData.from_paths(path, tfms=tfms, bs=args.bs)
        learn = ConvLearner.pretrained(args.arch, data, precompute=True)
        learn.save(f"start{seed}")
        lrf = learn.lr_find()
        lighter = LRFinder(lrf.recorder, beta=0.9)
        longer = learn.lr_find(num_it=300)
        minima.append({"seed": seed, "min_lr_100_beta_0.98": lrf.min_loss_lr, "min_lr_100_beta_0.9": lighter.min_loss_lr,
                       "min_lr_300_beta_0.98": longer.min_loss_lr})
        for rule, lr in lrf.suggestions.items():
            learn.load(f"start{seed}")
            torch.manual_seed(seed)
            learn.fit(lr, args.epochs)
            last = learn.history.iloc[-1]
            rows.append({"seed": seed, "rule": rule, "lr": lr, "val_loss": float(last.val_loss),
                         "accuracy": float(last.accuracy), "wrong": int(round((1 - last.accuracy) * len(data.val_ds)))})
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    summary = table.groupby("rule").agg(lr_median=("lr", "median"), val_loss_median=("val_loss", "median"),
                                        accuracy_median=("accuracy", "median"), wrong_min=("wrong", "min"),
                                        wrong_max=("wrong", "max"))
    print(summary)
    minima = pd.DataFrame(minima)
    print(minima.to_string(index=False))
    result = {"arch": learn.arch, "sz": args.sz, "bs": args.bs, "epochs": args.epochs, "seeds": args.seeds,
              "valid_images": len(data.val_ds), "runs": rows, "summary": summary.reset_index().to_dict("records"),
              "minima": minima.to_dict("records"),
              "lighter_smoothing_moves_the_minimum_by": statistics.median(
                  np.log10(minima["min_lr_100_beta_0.98"] / minima["min_lr_100_beta_0.9"])),
              "longer_sweep_moves_the_minimum_by": statistics.median(
                  np.log10(minima["min_lr_100_beta_0.98"] / minima["min_lr_300_beta_0.98"]))}
    save_result(f"lr_rules_{learn.arch}_{args.sz}", result)


if __name__ == "__main__":
    main()
