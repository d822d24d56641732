"""How much faster is a head epoch on precomputed activations than a full forward epoch?

Measures, in one run on whatever device is present, on dogscats-mini (or any folder):
  - feature extraction (precompute) of the frozen body: images/s;
  - one head epoch on the cached activations: seconds;
  - one epoch with precompute off and the body frozen (a full forward pass per image,
    with augmentation, the head trained): seconds;
and prints their ratio. Writes the numbers as JSON to benchmarks/results/.

    python benchmarks/precompute_speedup.py [--sz 224] [--repeats 3]
"""
import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from _results import save_result   # benchmarks/_results.py
from lessonlib import ConvLearner, ImageClassifierData, datasets, setup, tfms_from_model, transforms_side_on


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", default=None, help="image folder (default: dogscats-mini from the catalog)")
    parser.add_argument("--arch", default="efficientnet_lite0")
    parser.add_argument("--sz", type=int, default=224)
    parser.add_argument("--bs", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="head epochs to time (median is reported)")
    args = parser.parse_args()

    os.environ["LESSONLIB_HOME"] = tempfile.mkdtemp(prefix="lessonlib-bench-")   # a cold cache
    setup(0)
    path = Path(args.path) if args.path else datasets.get("dogscats-mini", smoke=False)
    tfms = tfms_from_model(args.arch, args.sz, aug_tfms=transforms_side_on, max_zoom=1.1)
    data = ImageClassifierData.from_paths(path, tfms=tfms, bs=args.bs)

    start = time.perf_counter()
    learn = ConvLearner.pretrained(args.arch, data, precompute=True)
    extract_s = time.perf_counter() - start
    n_images = len(data.trn_ds) + len(data.val_ds)

    head_epochs = []
    for _ in range(args.repeats):
        learn.fit(1e-2, 1)
        head_epochs.append(float(learn.history.time.iloc[-1]))
    learn.precompute = False
    learn.fit(1e-2, 1)
    full_epoch = float(learn.history.time.iloc[-1])

    result = {
        "device": str(learn.policy.device), "arch": learn.arch, "sz": args.sz, "bs": args.bs,
        "train_images": len(data.trn_ds), "valid_images": len(data.val_ds),
        "precompute_seconds": round(extract_s, 2), "precompute_images_per_s": round(n_images / extract_s, 1),
        "head_epoch_seconds_median": statistics.median(head_epochs), "head_epoch_seconds_all": head_epochs,
        "full_forward_epoch_seconds": full_epoch,
        "speedup_full_over_head": round(full_epoch / statistics.median(head_epochs), 1),
        "accuracy_after_head_epochs": float(learn.history.accuracy.iloc[args.repeats - 1]),
    }
    save_result(f"precompute_speedup_{learn.policy.device.type}_{args.sz}", result)


if __name__ == "__main__":
    main()
