"""What does keeping decoded, resized images in memory buy? Loader epochs and a forward epoch, with and without.

In one run, on dogscats-mini (800 training, 200 validation photos) at `--sz` px, with the lesson's
augmentations (`transforms_side_on`, max_zoom 1.1) and the default DataLoader workers for this machine:
  - images/s of the augmented training loader and of the validation loader, without the cache and with it
    (the cache's first epoch decodes and fills it, so the second epoch is timed);
  - one validation epoch through EfficientNet-Lite0 (the forward passes of `learn.predict()`), both ways;
  - the cache's size in MB.
Loader runs alternate `--repeats` times; medians are reported, with the ratios cached/uncached.

    python benchmarks/image_cache.py [--sz 224] [--repeats 3]
"""
import argparse
import statistics
import time

import torch

from _results import save_result   # benchmarks/_results.py
from lessonlib import ImageClassifierData, datasets, setup, tfms_from_model, transforms_side_on
from lessonlib.engine import weights
from lessonlib.engine.policy import resolve_policy
from lessonlib.training import get_preds


def loader_speed(loader):
    start = time.perf_counter()
    n = sum(len(y) for _, y in loader)
    return n / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sz", type=int, default=224)
    parser.add_argument("--bs", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    setup(0)
    policy = resolve_policy()
    device = policy.device
    path = datasets.get("dogscats-mini", smoke=False)
    tfms = tfms_from_model("efficientnet_lite0", args.sz, aug_tfms=transforms_side_on, max_zoom=1.1)
    both = {flag: ImageClassifierData.from_paths(path, tfms=tfms, bs=args.bs,
                                                 device=policy.but(image_cache_mb=4096 if flag else 0))
            for flag in (False, True)}
    for data in both.values():          # fills the cache; warms up the other
        loader_speed(data.trn_dl), loader_speed(data.val_dl)
    result = {"device": str(device), "sz": args.sz, "bs": args.bs, "num_workers": both[True].num_workers}
    speeds = {(flag, split): [] for flag in both for split in ("train", "valid")}
    for _ in range(args.repeats):
        for flag, data in both.items():
            speeds[flag, "train"].append(loader_speed(data.trn_dl))
            speeds[flag, "valid"].append(loader_speed(data.val_dl))
    for (flag, split), values in speeds.items():
        result[f"{split}_loader_images_per_s_{'cached' if flag else 'uncached'}"] = round(statistics.median(values), 1)
    for split in ("train", "valid"):
        result[f"{split}_loader_cached_over_uncached"] = round(
            result[f"{split}_loader_images_per_s_cached"] / result[f"{split}_loader_images_per_s_uncached"], 2)

    body = policy.prepare(weights.create_body("efficientnet_lite0")).eval()
    get_preds(body, both[False].val_dl, policy)   # warm-up
    for flag, data in both.items():
        start = time.perf_counter()
        get_preds(body, data.val_dl, policy)
        result[f"valid_forward_epoch_s_{'cached' if flag else 'uncached'}"] = round(time.perf_counter() - start, 2)
    result["valid_forward_epoch_uncached_over_cached"] = round(
        result["valid_forward_epoch_s_uncached"] / result["valid_forward_epoch_s_cached"], 3)
    cache = both[True].image_cache
    result["cache_images"] = len(cache)
    result["cache_mb"] = round(sum(t.numel() for t in cache.values()) / 2**20, 1)
    save_result(f"image_cache_{device.type}_{args.sz}", result)


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
