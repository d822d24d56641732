"""Memory and speed of training the whole network on a CPU: a mini-batch at once, or the body in pieces.

Each setting runs in a fresh process (so that its peak resident memory is its own): EfficientNet-Lite0
body + lessonlib's head, body unfrozen with its BatchNorm fixed (`bn_freeze`; `--frozen`: the body frozen, only
the head trains, as in the augmentation epochs of lessons 03-04), `--bs` images of `--sz` px
per mini-batch, `--steps` timed optimizer steps after 2 warm-up steps, with
`lessonlib.training.train_step` with `policy.body_piece` (its `StepPlan`): the body takes the pieces, the head the whole batch.
Prints images/s and peak RSS per setting, and the ratios against the whole mini-batch; writes JSON.

    python benchmarks/micro_batches.py [--bs 64] [--pieces 8 16] [--steps 6] [--frozen]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch

from _results import save_result   # benchmarks/_results.py


def one_setting(bs, micro_bs, sz, steps, frozen=False):
    """Run in a child process: train `steps` steps; print one JSON line with images/s and peak RSS."""
    from lessonlib import models, training
    from lessonlib.engine import weights
    from lessonlib.engine.policy import resolve_policy
    from lessonlib.engine.steps import StepPlan

    torch.manual_seed(0)
    body = weights.create_body("efficientnet_lite0")
    model = models.ConvNet(body, models.create_head(body.n_features, 2))
    policy = resolve_policy().but(body_piece=micro_bs, body_piece_from_px=0)
    model.bn_frozen = True   # the body's BatchNorm fixed, as learn.bn_freeze(True) in lessons 05 and 07
    body.requires_grad_(not frozen)   # --frozen: only the head trains (augmentation epochs, lessons 03-04)
    policy.prepare(model).train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    plan = StepPlan(policy, model, optimizer, keep_finite=False)   # as before: no copy kept per step
    x = torch.randint(0, 256, (bs, 3, sz, sz), dtype=torch.uint8)
    y = torch.randint(0, 2, (bs,))

    def step():
        training.train_step(model, x, y, torch.nn.functional.cross_entropy, optimizer, plan)

    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if policy.device.type == "cuda":
        torch.cuda.synchronize()
    speed = steps * bs / (time.perf_counter() - start)
    print(json.dumps({"images_per_s": round(speed, 1),
                      "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2)}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bs", type=int, default=64)
    parser.add_argument("--pieces", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--sz", type=int, default=224)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--frozen", action="store_true", help="the body frozen: only the head trains")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        one_setting(args.bs, args.child or None, args.sz, args.steps, args.frozen)
        return
    result = {"bs": args.bs, "sz": args.sz, "steps": args.steps, "frozen_body": args.frozen,
              "device": "cuda" if torch.cuda.is_available() else "cpu"}
    env = {**os.environ, "LESSONLIB_OFFLINE": "1"}
    for micro_bs in [0, *args.pieces]:
        command = [sys.executable, __file__, "--bs", str(args.bs), "--sz", str(args.sz), "--steps", str(args.steps),
                   "--child", str(micro_bs)] + ["--frozen"] * args.frozen
        out = subprocess.run(command, capture_output=True, text=True, env=env, check=True,
                             cwd=os.path.dirname(os.path.abspath(__file__)))
        name = "whole" if micro_bs == 0 else f"pieces_of_{micro_bs}"
        result[name] = json.loads(out.stdout.strip().splitlines()[-1])
    for micro_bs in args.pieces:
        piece = result[f"pieces_of_{micro_bs}"]
        result[f"pieces_of_{micro_bs}_speed_over_whole"] = round(piece["images_per_s"] / result["whole"]["images_per_s"], 3)
        result[f"pieces_of_{micro_bs}_memory_over_whole"] = round(piece["peak_rss_gb"] / result["whole"]["peak_rss_gb"], 3)
    save_result(f"micro_batches_{result['device']}_{args.sz}" + ("_frozen" if args.frozen else ""), result)


if __name__ == "__main__":
    main()
