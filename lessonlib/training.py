"""The training loop: one epoch of mini-batches, evaluation, and the per-epoch table.

Plain PyTorch. How it uses the hardware (device, mixed precision, channels-last, pieces of a
mini-batch) comes from a `Policy` (`lessonlib.policy`), decided once and passed in. Two promises:
Ctrl-C never leaves a half-applied optimizer step behind, and a step that makes the loss, the
gradients or the weights non-finite is not kept: training stops with a clear message and the
weights and optimizer state are those from before that step.
"""
import contextlib
import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from lessonlib.distributed import ShardedSampler, all_mean, gather_ordered
from lessonlib.metrics import accuracy
from lessonlib.models import ConvNet, head_forward
from lessonlib.policy import resolve_policy
from lessonlib.runtime import in_notebook
from lessonlib.snapshot import Snapshot, deferred_interrupt

__all__ = ["EpochTable", "Objective", "backward_in_pieces", "deferred_interrupt", "evaluate", "fit",
           "forward_in_pieces", "get_preds", "group_rates", "log_probs", "train_epoch", "train_step"]


def group_rates(groups, lrs):
    """One learning rate per layer group from `lrs` (one rate for all, or one per group), checked."""
    try:
        arr = np.atleast_1d(np.asarray(lrs, dtype=float))
    except (TypeError, ValueError):
        raise ValueError(f"learning rate {lrs!r}: give a number such as 1e-2, or one per layer group") from None
    if arr.ndim != 1 or not np.isfinite(arr).all() or (arr < 0).any():
        raise ValueError(f"learning rate {lrs!r}: every rate must be a finite number, 0 or more")
    if arr.size == 1:
        return [float(arr[0])] * len(groups)
    if arr.size != len(groups):
        raise ValueError(f"got {arr.size} learning rates but this model has {len(groups)} layer groups "
                         f"(early body, late body, head): give one rate, or one per group")
    return [float(v) for v in arr]


def log_probs(out):
    """Log-probabilities from a single-label model's raw outputs."""
    return F.log_softmax(out, dim=1)


@dataclass(frozen=True)
class Objective:
    """What training minimises and what the table shows: the loss, the metrics, and how raw outputs
    become what the metrics take (log-probabilities by default; tag probabilities for multi-label data)."""
    loss_fn: object
    metrics: tuple = (accuracy,)
    to_preds: object = log_probs


# ---------------------------------------------------------------- one step, kept only when it stays finite

def _all_finite(tensors):
    tensors = [t for t in tensors if t is not None]
    return not tensors or bool(torch.stack([t.detach().abs().amax().float() for t in tensors]).isfinite().all())


def _diverged(what, value=None):
    shown = f" became {value}" if value is not None else " became infinite or NaN"
    return FloatingPointError(f"the {what}{shown}: the learning rate is probably too high; try one ten times "
                              f"smaller (learn.lr_find() helps choose). The weights are those from before this "
                              f"mini-batch.")


def train_step(model, x, y, loss_fn, optimizer, policy, scaler=None, guard=None):
    """One mini-batch: forward, backward, optimizer step (whole, even on Ctrl-C); returns the loss tensor.

    With `policy.body_piece` and a `models.ConvNet` (a learner's model), the body takes the mini-batch that many
    images at a time while the head sees it whole (`backward_in_pieces`); other models take it whole. Raises
    FloatingPointError, with the weights and optimizer state unchanged, when the loss or the gradients are
    not finite, or (with `guard`, a `Snapshot` of the weights that train) when the step would leave non-finite
    weights.
    """
    x, y = policy.to_device(x), y.to(policy.device, non_blocking=True)
    optimizer.zero_grad(set_to_none=True)
    if guard is not None:
        guard.take()   # before the forward pass, which updates BatchNorm statistics
    piece = policy.body_piece if isinstance(model, ConvNet) else None
    if piece and piece < len(x):
        loss = backward_in_pieces(model.body, model.head, x, y, loss_fn, policy, scaler)
    else:
        with policy.autocast():
            loss = loss_fn(model(x), y)                                  # forward
        (loss if scaler is None else scaler.scale(loss)).backward()      # backward
    if not torch.isfinite(loss.detach()):
        optimizer.zero_grad(set_to_none=True)
        if guard is not None:
            guard.restore()
        raise _diverged("training loss", float(loss.detach()))
    with deferred_interrupt():                           # the step itself is never cut in half
        if scaler is not None:       # fp16: the scaler itself skips steps whose gradients overflowed
            scaler.step(optimizer)
            scaler.update()
            return loss.detach()
        params = [p for g in optimizer.param_groups for p in g["params"]]
        if not _all_finite([p.grad for p in params]):
            optimizer.zero_grad(set_to_none=True)
            if guard is not None:
                guard.restore()
            raise _diverged("gradient")
        optimizer.step()
        if guard is not None and not _all_finite(params):
            guard.restore()
            raise _diverged("weights after the step")
    return loss.detach()


def backward_in_pieces(body, head, x, y, loss_fn, policy, scaler=None):
    """Gradients of `loss_fn(head(body(x)), y)` keeping the body's activations for `policy.body_piece` images only.

    1. The body runs on each piece without keeping its graph: features of the whole mini-batch.
    2. The head runs on them all at once (its BatchNorm sees the whole mini-batch) and back-propagates
    down to the features. 3. The body runs each piece again, keeping its graph this time, and
    back-propagates that piece's share of the features' gradient. The gradients are those of the whole
    mini-batch; the price is one more forward pass of the body. Random layers (dropout) draw the same
    numbers in steps 1 and 3, and BatchNorm running statistics count step 1 only. A BatchNorm layer of the
    body that is training normalises each piece with that piece's statistics (`learn.bn_freeze(True)` keeps
    them fixed, and then the result is exactly the whole mini-batch's). Returns the loss.
    """
    piece = policy.body_piece
    pieces = x.split(piece)
    devices = [x.device] if x.device.type == "cuda" else []
    rng_before = Snapshot(rng=True).take()               # replayed in step 3
    with torch.no_grad(), policy.autocast():
        features = forward_in_pieces(body, x, piece)                          # 1. forward, no graph
    features.requires_grad_()
    with policy.autocast():
        loss = loss_fn(head_forward(head, features), y)                       # 2. the head, whole
    (loss if scaler is None else scaler.scale(loss)).backward()
    if any(p.requires_grad for p in body.parameters()):
        with torch.random.fork_rng(devices=devices), Snapshot(body, weights="buffers").kept():   # both put back after
            rng_before.restore()
            for i, (part, grad) in enumerate(zip(pieces, features.grad.split(piece))):   # 3. forward again, backward
                # under several processes (DDP), gradients are exchanged once: with the last piece's backward
                last = i == len(pieces) - 1
                with body.no_sync() if hasattr(body, "no_sync") and not last else contextlib.nullcontext():
                    with policy.autocast():
                        out = body(part)
                    out.backward(grad)
    return loss


def forward_in_pieces(model, x, piece):
    """`model(x)`, computed `piece` images at a time (the same result for a model in eval mode)."""
    return torch.cat([model(p) for p in x.split(piece)]) if piece and piece < len(x) else model(x)


# ---------------------------------------------------------------- epochs

def train_epoch(model, batches, loss_fn, optimizer, policy, recorder=None, desc="train"):
    """One pass over `batches`, one optimizer step each; returns the mean training loss.

    `recorder` (a `Recorder`) sees each mini-batch's loss and steps the learning-rate schedule.
    """
    scaler, guard = policy.grad_scaler(), Snapshot(model, optimizer, weights="trainable")
    total, n = 0.0, 0
    for i, (x, y) in enumerate(tqdm(batches, desc=desc, leave=False, disable=None if policy.rank == 0 else True)):
        try:
            loss = train_step(model, x, y, loss_fn, optimizer, policy, scaler, guard).item()
        except FloatingPointError as e:
            raise FloatingPointError(f"{desc}, mini-batch {i + 1}: {e}") from None
        if recorder is not None:
            recorder.on_batch(loss)
        total, n = total + loss * len(y), n + len(y)
    return all_mean(total / max(n, 1), n)   # over every process's images (only this one's, alone)


@torch.no_grad()
def get_preds(model, batches, policy, desc="predict"):
    """(log-probabilities or raw outputs, targets) over `batches`, in order, on the CPU in fp32.

    A model in eval mode takes image batches `policy.body_piece` images at a time (the same outputs; faster
    on a CPU).
    """
    outs, ys = [], []
    for x, y in tqdm(batches, desc=desc, leave=False, disable=None if policy.rank == 0 else True):
        x = policy.to_device(x)
        piece = policy.body_piece if x.dim() == 4 and not model.training else None
        with policy.autocast():
            outs.append(forward_in_pieces(model, x, piece).float().cpu())
        ys.append(torch.as_tensor(y))
    out, y = torch.cat(outs), torch.cat(ys)
    sampler = getattr(batches, "sampler", None)
    if isinstance(sampler, ShardedSampler):   # every process gets every row, in order
        out, y = gather_ordered(out, sampler), gather_ordered(y, sampler)
    return out, y


def evaluate(model, batches, objective, policy):
    """(validation loss, [metric values]) of `model` in eval mode over `batches`."""
    was_training = model.training
    model.eval()
    try:
        out, y = get_preds(model, batches, policy, desc="valid")
    finally:
        model.train(was_training)
    loss = float(objective.loss_fn(out, y))
    preds = objective.to_preds(out)
    return loss, [m(preds, y) for m in objective.metrics]


class EpochTable:
    """The lesson's table, `epoch trn_loss val_loss accuracy time`, growing one row per epoch.

    In a notebook it is one DataFrame updated in place; elsewhere each row is printed.
    """

    def __init__(self, show=True):
        self.rows, self.handle, self.show = [], None, show
        self.in_notebook = in_notebook()

    def add(self, row):
        self.rows.append(row)
        if not self.show:
            return
        df = self.frame()
        if self.in_notebook:
            from IPython.display import display
            if self.handle is None:
                self.handle = display(df, display_id=True)
            else:
                self.handle.update(df)
        else:
            lines = df.to_string(index=False, float_format=lambda v: f"{v:.6f}").splitlines()
            print("\n".join(lines if len(self.rows) == 1 else lines[-1:]), flush=True)

    def frame(self):
        return pd.DataFrame(self.rows)


def fit(model, batches, objective, optimizer, epochs, device=None, recorder=None, table=None):
    """Train for `epochs` epochs; return the table `[epoch, trn_loss, val_loss, <metrics>, time]`.

    Args:
        model: any PyTorch model; put in training mode (`model.train()`) at the start of each epoch.
        batches: (training mini-batches, validation mini-batches): DataLoaders, or anything that can be
            iterated again each epoch.
        objective: a loss function such as `nn.CrossEntropyLoss()` (the table then shows accuracy), or an
            `Objective` (loss, metrics, how outputs become predictions).
        optimizer: any `torch.optim` optimizer over the model's parameters.
        device: "cpu", "cuda", ... (default: the best one present), or a `Policy` (`lessonlib.policy`), which
            also says the precision and how the body takes a mini-batch.
        recorder: a `Recorder` that sees every mini-batch's loss and steps the learning-rate schedule.
        table: an `EpochTable` to fill (its rows survive a Ctrl-C); a new one by default.

    A validation loss that is not finite stops training with the weights and optimizer state of the start
    of that epoch.

    Example:
        >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        >>> fit(model, (train_dl, valid_dl), nn.CrossEntropyLoss(), optimizer, 3, device="cpu")
    """
    policy = resolve_policy(device)
    objective = objective if isinstance(objective, Objective) else Objective(objective)
    policy.prepare(model)
    train_batches, valid_batches = batches
    train_policy = policy.for_training(model)   # the precision where the body back-propagates, if it does
    table = table if table is not None else EpochTable()
    names = [getattr(m, "__name__", f"metric{i}") for i, m in enumerate(objective.metrics)]
    epoch, before = 0, Snapshot(model, optimizer)   # each epoch's start, put back if its validation loss is not finite
    try:
        for epoch in range(epochs):
            start = time.perf_counter()
            before.take()
            model.train()
            trn_loss = train_epoch(model, train_batches, objective.loss_fn, optimizer, train_policy, recorder,
                                   desc=f"epoch {epoch + 1}/{epochs}")
            val_loss, values = evaluate(model, valid_batches, objective, policy)
            if not math.isfinite(val_loss):
                before.restore()
                raise FloatingPointError(f"epoch {epoch + 1}: the validation loss became {val_loss}; the weights are "
                                         f"those from the start of this epoch. Try a learning rate ten times smaller.")
            row = {"epoch": epoch, "trn_loss": trn_loss, "val_loss": val_loss, **dict(zip(names, values)),
                   "time": round(time.perf_counter() - start, 2)}
            table.add(row)
    except KeyboardInterrupt:
        model.eval()
        print(f"Interrupted during epoch {epoch}: the weights are those after the last whole mini-batch; "
              f"{len(table.rows)} finished epoch(s) are in the history.")
        raise
    finally:
        model.eval()
    return table.frame()
