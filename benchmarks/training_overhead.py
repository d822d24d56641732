"""Is lessonlib's training loop what you wait for? lessonlib's `fit` against the same work by hand.

In one run, on whatever device is present, on dogscats-mini (800 training photos):
  (a) lessonlib: `learn.fit(lr, 1)` with precompute off and the whole body unfrozen;
  (b) a minimal hand-written PyTorch loop doing the same work (same model, data loader, optimizer);
  (c) the model-bound ceiling: the same training steps on synthetic tensors already on the device;
  (d) precompute feature extraction; (e) a head epoch on cached activations; (f) lr_find wall time.
Prints images/s and the ratios lessonlib/minimal and lessonlib/ceiling; writes JSON to benchmarks/results/.

    LESSONLIB_DATA_MIRROR=../shared/datasets python benchmarks/training_overhead.py [--sz 224]
"""
import argparse
import os
import tempfile
import time

import torch

from _results import save_result   # benchmarks/_results.py
from lessonlib import ConvLearner, ImageClassifierData, datasets, setup, tfms_from_model, transforms_side_on
from lessonlib.runtime import default_device
from lessonlib.training import autocast_for, prepare_model, to_device


def minimal_epoch(model, loader, device, lr):
    """The floor of overhead: forward, loss, backward, step; nothing else."""
    autocast, _ = autocast_for(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    model.train()
    for x, y in loader:
        x, y = to_device(x, device), y.to(device, non_blocking=True)
        with autocast():
            loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="efficientnet_lite0")
    parser.add_argument("--sz", type=int, default=224)
    parser.add_argument("--bs", type=int, default=64)
    args = parser.parse_args()
    os.environ["LESSONLIB_HOME"] = tempfile.mkdtemp(prefix="lessonlib-bench-")
    setup(0)
    device = default_device()
    path = datasets.get("dogscats-mini", smoke=False)
    tfms = tfms_from_model(args.arch, args.sz, aug_tfms=transforms_side_on, max_zoom=1.1)
    data = ImageClassifierData.from_paths(path, tfms=tfms, bs=args.bs)
    n = len(data.trn_ds)
    result = {"device": str(device), "arch": args.arch, "sz": args.sz, "bs": args.bs, "train_images": n}

    start = time.perf_counter()
    learn = ConvLearner.pretrained(args.arch, data, precompute=True)
    result["d_precompute_images_per_s"] = round((n + len(data.val_ds)) / (time.perf_counter() - start), 1)
    learn.fit(1e-2, 1)
    result["e_head_epoch_s"] = float(learn.history.time.iloc[-1])
    start = time.perf_counter()
    learn.lr_find()
    result["f_lr_find_s"] = round(time.perf_counter() - start, 2)

    learn.unfreeze()
    start = time.perf_counter()
    learn.fit(1e-3, 1)
    train_s = float(learn.history.time.iloc[-1])   # includes the validation pass: time it apart
    start = time.perf_counter()
    learn.predict()
    valid_s = time.perf_counter() - start
    result["a_lessonlib_images_per_s"] = round(n / (train_s - valid_s), 1)

    model = prepare_model(learn.model, device)
    start = time.perf_counter()
    minimal_epoch(model, data.trn_dl, device, 1e-3)
    result["b_minimal_images_per_s"] = round(n / (time.perf_counter() - start), 1)

    x = torch.randint(0, 256, (args.bs, 3, args.sz, args.sz), dtype=torch.uint8)
    y = torch.randint(0, data.c, (args.bs,))
    synthetic = [(x, y)] * (n // args.bs)
    start = time.perf_counter()
    minimal_epoch(model, synthetic, device, 1e-3)
    result["c_ceiling_images_per_s"] = round(len(synthetic) * args.bs / (time.perf_counter() - start), 1)

    result["lessonlib_over_minimal_time"] = round(result["b_minimal_images_per_s"] / result["a_lessonlib_images_per_s"], 3)
    result["lessonlib_over_ceiling_speed"] = round(result["a_lessonlib_images_per_s"] / result["c_ceiling_images_per_s"], 3)
    save_result(f"training_overhead_{result['device']}_{args.sz}", result)


if __name__ == "__main__":
    main()
