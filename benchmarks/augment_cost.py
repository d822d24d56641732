"""What does data augmentation cost, per image on the CPU and per batch on the device?

In one run, on whatever device is present:
  - the per-image CPU path (PIL decode + torchvision v2 training transforms) on real photos: ms/image;
  - `BatchAugment` on a batch of 64 images at 224 px on the device: ms/batch;
  - one resnet34 training step (forward, backward, SGD step) on the same batch, for scale;
and prints the ratio batch-augmentation / training step (the GPU target is under 10%).

    python benchmarks/augment_cost.py [--repeats 5]
"""
import argparse
import statistics
import time

import torch
import torchvision

from _results import save_result   # benchmarks/_results.py
from lessonlib import datasets, tfms_from_model, transforms_side_on
from lessonlib.folders import image_files
from lessonlib.images import load_image
from lessonlib.engine.policy import resolve_policy


def timed(fn, repeats, sync):
    times = []
    for _ in range(repeats + 1):           # the first run warms up and is dropped
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--bs", type=int, default=64)
    parser.add_argument("--sz", type=int, default=224)
    args = parser.parse_args()
    policy = resolve_policy()
    device = policy.device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    tfms = tfms_from_model("resnet34", args.sz, aug_tfms=transforms_side_on, max_zoom=1.1)

    files = image_files(datasets.get("dogscats-mini", smoke=False) / "train" / "cats")[:args.bs]
    cpu_s = timed(lambda: [tfms.train(load_image(f, tfms.load_size)) for f in files], args.repeats, lambda: None)

    batch = torch.stack([tfms.base(load_image(f, tfms.load_size)) for f in files])
    batch = policy.to_device(batch)
    augment_s = timed(lambda: tfms.batch_augment(batch), args.repeats, sync)

    model = policy.prepare(torchvision.models.resnet34(weights=None))   # timing only: weights don't matter
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = policy.to_device(batch.float() / 255)
    y = torch.randint(0, 1000, (len(x),), device=device)

    def step():
        with policy.autocast():
            loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    step_s = timed(step, max(2, args.repeats // 2), sync)

    result = {"device": str(device), "bs": len(files), "sz": args.sz,
              "cpu_path_ms_per_image": round(1000 * cpu_s / len(files), 2),
              "batch_augment_ms_per_batch": round(1000 * augment_s, 2),
              "resnet34_train_step_ms": round(1000 * step_s, 1),
              "batch_augment_over_train_step": round(augment_s / step_s, 4)}
    save_result(f"augment_cost_{result['device']}", result)


if __name__ == "__main__":
    main()
