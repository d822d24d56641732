"""Whole mini-batches or the body in pieces, per image size, on this machine: the table the CPU policy follows.

For each image size (`--sz`, default 32 64 128 224 px) and precision (fp32 and bf16 autocast), three stages
the lessons run, each timed with the body taking the mini-batch of `--bs` images whole and in pieces of
`--piece` images (EfficientNet-Lite0 with lessonlib's head, the packaged ImageNet weights):

- forward: the model in eval mode without gradients (precompute, validation, predictions, TTA);
- frozen: a training step with the body frozen and its BatchNorm fixed (augmentation epochs, lessons 03-04);
- fine-tune: a training step with the body unfrozen and its BatchNorm fixed (`bn_freeze`, lessons 05 and 07).

Whole and pieces alternate in one process, `--repeats` times, each timing long enough to be measured
(`--min-s`); the medians give images/s and `pieces / whole` (above 1: pieces are faster). The last column
says which the policy would choose from that: pieces only where they are faster in every stage that uses
them. Writes JSON (benchmarks/results/body_pieces_<device>.json, or `--out`).

    python benchmarks/body_pieces.py [--sz 32 64 128 224] [--bs 64] [--piece 8] [--repeats 5]
"""
import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

from _results import save_result   # benchmarks/_results.py


def build(policy):
    from lessonlib import models
    from lessonlib.engine import weights
    torch.manual_seed(0)
    body = weights.create_body("efficientnet_lite0")
    model = models.ConvNet(body, models.create_head(body.n_features, 2))
    return policy.prepare(model)


def stage_runner(stage, model, policy, x, y):
    """A function that runs `stage` once on (x, y) under `policy` (whose body_piece decides whole or pieces)."""
    from lessonlib import training
    from lessonlib.engine.steps import StepPlan, forward_in_pieces
    body = model.body
    if stage == "forward":
        model.eval()

        def run():
            with torch.no_grad(), policy.autocast():
                forward_in_pieces(model, policy.to_device(x), policy.body_piece)
        return run
    model.train()
    model.bn_frozen = True                       # BatchNorm fixed: pieces give the same update
    body.requires_grad_(stage == "fine-tune")
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    plan = StepPlan(policy, model, optimizer)

    def run():
        training.train_step(model, x, y, torch.nn.functional.cross_entropy, optimizer, plan)
    return run


def timed(run, n):
    start = time.perf_counter()
    for _ in range(n):
        run()
    return (time.perf_counter() - start) / n


def measure(stage, precision, sz, args, base):
    """Median seconds per mini-batch, whole and in pieces, alternating."""
    x = torch.randint(0, 256, (args.bs, 3, sz, sz), dtype=torch.uint8)
    y = torch.randint(0, 2, (args.bs,))
    runs = {}
    for name, piece in (("whole", None), ("pieces", args.piece)):
        policy = base.but(precision=precision, backprop_precision=precision, body_piece=piece,
                          body_piece_from_px=0)
        model = build(policy)
        runs[name] = stage_runner(stage, model, policy, x, y)
        runs[name]()                                   # warm-up (allocations, oneDNN kernels)
    n = max(1, math.ceil(args.min_s / timed(runs["whole"], 1)))
    times = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            times[name].append(timed(run, n))
    whole, pieces = (statistics.median(times[k]) for k in ("whole", "pieces"))
    return {"whole_images_per_s": round(args.bs / whole, 1), "pieces_images_per_s": round(args.bs / pieces, 1),
            "pieces_over_whole": round(whole / pieces, 3), "batches_per_timing": n}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sz", type=int, nargs="+", default=[32, 64, 128, 224])
    parser.add_argument("--bs", type=int, default=64)
    parser.add_argument("--piece", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--min-s", type=float, default=0.5, help="seconds per timing, at least")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--stages", nargs="+", default=["forward", "frozen", "fine-tune"])
    parser.add_argument("--out", type=Path, default=None, help="write the JSON here instead of benchmarks/results/")
    args = parser.parse_args()

    from lessonlib.engine.policy import cpu_bf16, resolve_policy
    base = resolve_policy()
    torch.set_num_threads(base.threads)
    result = {"device": base.device.type, "torch": torch.__version__, "cpu_bf16": list(cpu_bf16()),
              "network": "efficientnet_lite0", "bs": args.bs, "piece": args.piece,
              "repeats": args.repeats, "threads": base.threads, "rows": []}
    start = time.perf_counter()
    print(f"{'px':>4} {'precision':>9} {'stage':>9} {'whole img/s':>12} {'pieces img/s':>13} {'pieces/whole':>13}",
          file=sys.stderr)
    for sz in args.sz:
        for precision in args.precisions:
            for stage in args.stages:
                row = {"sz": sz, "precision": precision, "stage": stage, **measure(stage, precision, sz, args, base)}
                result["rows"].append(row)
                print(f"{sz:>4} {precision:>9} {stage:>9} {row['whole_images_per_s']:>12} "
                      f"{row['pieces_images_per_s']:>13} {row['pieces_over_whole']:>13}", file=sys.stderr, flush=True)
    result["pieces_win_from_px"] = smallest_size_where_pieces_win(result["rows"])
    result["seconds"] = round(time.perf_counter() - start, 1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
    else:
        save_result(f"body_pieces_{result['device']}", result)


def smallest_size_where_pieces_win(rows):
    """The smallest size from which on pieces are at least as fast as whole batches in every stage and precision
    measured (None if at no size)."""
    sizes = sorted({r["sz"] for r in rows})
    wins = {sz: all(r["pieces_over_whole"] >= 1 for r in rows if r["sz"] == sz) for sz in sizes}
    for i, sz in enumerate(sizes):
        if all(wins[s] for s in sizes[i:]):
            return sz
    return None


if __name__ == "__main__":
    main()
