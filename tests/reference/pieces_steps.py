"""Weights after a few training steps with the body in pieces, for a test that a refactor changes none of them.

`python tests/reference/pieces_steps.py OUT.pt` writes {case: state_dict} of a small ConvNet (a body with
convolution, BatchNorm that trains, dropout; the lesson's head) after 3 steps of SGD with momentum, mini-batches of
10 images in pieces of 4 (4, 4, 2), on the CPU, in float32 and bfloat16, with the body trainable and frozen.
`pieces_steps.pt` beside it was written by the code before issue 40's step 3 (commit 3bfb5eb, the step as
StepPlan.forward/backward/step); tests/test_training.py compares today's code with it, bit for bit.
"""
import sys
from pathlib import Path

import torch
from torch import nn

from lessonlib import models, training
from lessonlib.engine.policy import resolve_policy
from lessonlib.engine.steps import StepPlan

REFERENCE = Path(__file__).with_suffix(".pt")
CASES = [(precision, frozen) for precision in ("fp32", "bf16") for frozen in (False, True)]


def run(precision, frozen):
    torch.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.3),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten())
    model = models.ConvNet(body, models.create_head(4, 2, hidden=8)).train()
    if frozen:
        body.requires_grad_(False)
        model.train()   # a frozen body's BatchNorm stays in eval mode
    policy = resolve_policy("cpu", precision=precision).but(body_piece=4, body_piece_from_px=0)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    plan = StepPlan(policy, model, optimizer)
    g = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(3):
        x, y = torch.randn(10, 3, 8, 8, generator=g), torch.randint(0, 2, (10,), generator=g)
        losses.append(training.train_step(model, x, y, nn.functional.cross_entropy, optimizer, plan))
    return {"state": {k: v.clone() for k, v in model.state_dict().items()}, "losses": torch.stack(losses)}


def environment():
    """What the bits depend on besides the code: torch's version and the CPU kernels it picks (its instruction set,
    and whether the processor has native bfloat16 or AMX, which oneDNN uses when it can)."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        flags = ""
    native = sorted(f for f in ("avx512_bf16", "amx_bf16", "amx_tile") if f" {f}" in flags)
    return {"torch": torch.__version__.split("+")[0], "cpu": torch.backends.cpu.get_cpu_capability(),
            "cpu_bf16": ",".join(native) or "none"}


def main(out):
    cases = {f"{precision}-{'frozen' if frozen else 'trainable'}": run(precision, frozen) for precision, frozen in CASES}
    torch.save({**cases, "environment": environment()}, out)


if __name__ == "__main__":
    main(sys.argv[1])
