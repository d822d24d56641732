"""Is lessonlib's training loop what you wait for? lessonlib's `fit` against the same work by hand.

In one run, on whatever device is present, on dogscats-mini (800 training photos):
  (a) lessonlib: `learn.fit(lr, 1)` with precompute off and the whole body unfrozen, its BatchNorm fixed
      (`bn_freeze(True)`, as lessons 05 and 07 fine-tune);
  (b) a minimal hand-written PyTorch loop doing the same work (same model, data loader, optimizer);
  (c) the model-bound ceiling: the same training steps on synthetic tensors already on the device;
  (d) precompute feature extraction; (e) a head epoch on cached activations; (f) lr_find wall time;
  (g) when Keras 3 is installed: the same full fine-tune in Keras on the PyTorch backend (the same body,
      wrapped with TorchModuleWrapper, fed by a torch DataLoader; see lessonlib.keras_compare);
  (h) when fastai v2 is installed (not in requirements.txt: `pip install fastai==2.8.12`): `vision_learner`
      with the same pretrained backbone + `fit_one_cycle`, body unfrozen, fastai's own data pipeline.
(a) and (b) alternate `--repeats` times; medians are reported, and the ratio of the best epochs (the first
epoch after unfreezing pays one-time costs, and lessonlib runs it).
Prints images/s and the ratios lessonlib/minimal and lessonlib/ceiling; writes JSON to benchmarks/results/.

    python benchmarks/training_overhead.py [--sz 224] [--repeats 2]
    on a GPU, also: ... training_overhead.py --arch resnet34 --compile
"""
import argparse
import os
import statistics
import tempfile
import time

import torch

from _results import save_result   # benchmarks/_results.py
from lessonlib import ConvLearner, ImageClassifierData, datasets, setup, tfms_from_model, transforms_side_on
from lessonlib.models import batchnorm_layers


def minimal_epoch(model, loader, policy, lr):
    """The floor of overhead: forward, loss, backward, step; nothing else. The body's BatchNorm stays fixed
    (bn_freeze) and, with `policy.body_piece`, the body takes each mini-batch in pieces while the head sees it
    whole: the same work as lessonlib's fit."""
    body, head = model.body, model.head
    micro_bs = policy.body_piece
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    torch.nn.Module.train(model)   # plain train mode, then the body's BatchNorm fixed by hand
    for m in batchnorm_layers(body):
        m.eval()
    for x, y in loader:
        x, y = policy.to_device(x), y.to(policy.device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with policy.autocast():
            if micro_bs:
                pieces = x.split(micro_bs)
                with torch.no_grad():
                    features = torch.cat([body(piece) for piece in pieces])
                features.requires_grad_()
                torch.nn.functional.cross_entropy(head(features), y).backward()
                for piece, grad in zip(pieces, features.grad.split(micro_bs)):
                    body(piece).backward(grad)
            else:
                torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    if policy.device.type == "cuda":
        torch.cuda.synchronize()


def keras_full_fine_tune(path, arch, sz, bs):
    """Images/s of one Keras 3 epoch with the whole body training (None when Keras is not installed)."""
    try:
        from lessonlib import keras_compare
        keras_compare.import_keras()
    except ImportError:
        print("Keras is not installed: no Keras row")
        return None
    data = keras_compare.keras_data(path, sz, bs, arch)
    model = keras_compare.keras_model(data, sz, arch)
    model.compile(optimizer="sgd", loss="binary_crossentropy")   # every layer trainable
    model.fit(data[0], epochs=1, steps_per_epoch=2, verbose=0)   # warm-up
    start = time.perf_counter()
    model.fit(data[0], epochs=1, verbose=0)
    return len(data[0].dataset) / (time.perf_counter() - start)


def fastai_fine_tune(path, arch, sz, bs, repeats):
    """Best images/s over `repeats` fastai v2 epochs (`vision_learner` + `fit_one_cycle`, body unfrozen) on the
    same photos with the same pretrained backbone; None when fastai is not installed."""
    try:
        from fastai.vision.all import ImageDataLoaders, Resize, aug_transforms, vision_learner
    except ImportError:
        print("fastai is not installed (pip install fastai==2.8.12): no fastai row")
        return None
    from lessonlib.engine.weights import load_pretrained

    def backbone(pretrained=True):   # the ImageNet weights lessonlib uses; fastai cuts off the classifier
        return load_pretrained(arch)[1]

    dls = ImageDataLoaders.from_folder(path, train="train", valid="valid", item_tfms=Resize(sz),
                                       batch_tfms=aug_transforms(), bs=bs)
    learn = vision_learner(dls, backbone, cut=-2, pretrained=True)
    learn.unfreeze()
    speeds = []
    for _ in range(repeats):
        start = time.perf_counter()
        with learn.no_bar(), learn.no_logging():
            learn.fit_one_cycle(1, 1e-3)
        epoch_s = time.perf_counter() - start
        start = time.perf_counter()
        with learn.no_bar():
            learn.validate()
        speeds.append(len(dls.train_ds) / (epoch_s - (time.perf_counter() - start)))
    print(f"fastai epochs: {[round(v, 1) for v in speeds]} images/s")
    return max(speeds)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="efficientnet_lite0")
    parser.add_argument("--sz", type=int, default=224)
    parser.add_argument("--bs", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2, help="epochs of (a) and of (b), alternating")
    parser.add_argument("--micro-bs", type=int, default=None,
                        help="images per piece of the body (learn.body_piece; 0: whole mini-batches); default: "
                             "lessonlib's choice (8 on a CPU, whole mini-batches on a GPU)")
    parser.add_argument("--weights", default="imagenet", choices=("imagenet", "random"),
                        help="random: time the network itself where its ImageNet weights are not at hand")
    parser.add_argument("--compile", action="store_true",
                        help="learn.compile() before the fine-tune epochs (in place: (a), (b) and (c) all run compiled)")
    args = parser.parse_args()
    os.environ["LESSONLIB_HOME"] = tempfile.mkdtemp(prefix="lessonlib-bench-")
    os.environ["LESSONLIB_WEIGHTS"] = args.weights   # the Keras and fastai rows build the same network
    setup(0)
    path = datasets.get("dogscats-mini", smoke=False)
    tfms = tfms_from_model(args.arch, args.sz, aug_tfms=transforms_side_on, max_zoom=1.1)
    data = ImageClassifierData.from_paths(path, tfms=tfms, bs=args.bs)
    device = data.policy.device
    n = len(data.trn_ds)
    result = {"device": str(device), "arch": args.arch, "weights": args.weights, "sz": args.sz, "bs": args.bs,
              "train_images": n}
    if device.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name(device)

    start = time.perf_counter()
    learn = ConvLearner.pretrained(args.arch, data, precompute=True)
    result["arch"] = learn.arch   # the network that actually ran (a download that failed falls back)
    result["d_precompute_images_per_s"] = round((n + len(data.val_ds)) / (time.perf_counter() - start), 1)
    learn.fit(1e-2, 1)
    result["e_head_epoch_s"] = float(learn.history.time.iloc[-1])
    start = time.perf_counter()
    learn.lr_find()
    result["f_lr_find_s"] = round(time.perf_counter() - start, 2)

    learn.unfreeze()
    learn.bn_freeze(True)   # as lessons 05 and 07 fine-tune
    if args.compile:
        learn.compile()
    result["compiled"] = args.compile
    model = learn.policy.prepare(learn.model)
    if args.micro_bs is not None:
        learn.body_piece = args.micro_bs or None
    run = learn._run_policy()
    policy = learn.policy.but(body_piece=run.body_piece, body_piece_from_px=run.body_piece_from_px)   # the same for all three
    result["micro_bs"] = policy.body_piece
    lessonlib_speeds, minimal_speeds = [], []
    for _ in range(args.repeats):
        learn.fit(1e-3, 1)
        train_s = float(learn.history.time.iloc[-1])   # includes the validation pass: time it apart
        start = time.perf_counter()
        learn.predict()
        valid_s = time.perf_counter() - start
        lessonlib_speeds.append(n / (train_s - valid_s))
        start = time.perf_counter()
        minimal_epoch(model, data.trn_dl, policy, 1e-3)
        minimal_speeds.append(n / (time.perf_counter() - start))
    result["a_lessonlib_images_per_s_each"] = [round(v, 1) for v in lessonlib_speeds]
    result["b_minimal_images_per_s_each"] = [round(v, 1) for v in minimal_speeds]
    result["a_lessonlib_images_per_s"] = round(statistics.median(lessonlib_speeds), 1)
    result["b_minimal_images_per_s"] = round(statistics.median(minimal_speeds), 1)
    # The first epoch after unfreezing also pays one-time costs (gradient buffers, allocator warm-up),
    # and lessonlib runs it: the best epoch of each is the fairer overhead figure.
    result["lessonlib_over_minimal_time_best"] = round(max(minimal_speeds) / max(lessonlib_speeds), 3)

    x = policy.to_device(torch.randint(0, 256, (args.bs, 3, args.sz, args.sz), dtype=torch.uint8))
    y = torch.randint(0, data.c, (args.bs,), device=policy.device)   # already on the device: no copies at all
    synthetic = [(x, y)] * (n // args.bs)
    start = time.perf_counter()
    minimal_epoch(model, synthetic, policy, 1e-3)
    result["c_ceiling_images_per_s"] = round(len(synthetic) * args.bs / (time.perf_counter() - start), 1)

    keras_speed = keras_full_fine_tune(path, args.arch, args.sz, args.bs)
    if keras_speed is not None:
        result["g_keras_images_per_s"] = round(keras_speed, 1)
        result["lessonlib_over_keras_speed"] = round(result["a_lessonlib_images_per_s"] / keras_speed, 3)

    fastai_speed = fastai_fine_tune(path, args.arch, args.sz, args.bs, args.repeats)
    if fastai_speed is not None:
        result["h_fastai_images_per_s_best"] = round(fastai_speed, 1)
        result["lessonlib_over_fastai_speed_best"] = round(max(lessonlib_speeds) / fastai_speed, 3)

    result["lessonlib_over_minimal_time"] = round(result["b_minimal_images_per_s"] / result["a_lessonlib_images_per_s"], 3)
    result["lessonlib_over_ceiling_speed"] = round(result["a_lessonlib_images_per_s"] / result["c_ceiling_images_per_s"], 3)
    save_result(f"training_overhead_{device.type}_{learn.arch}_{args.sz}" + ("_compiled" if args.compile else ""), result)


if __name__ == "__main__":
    main()
