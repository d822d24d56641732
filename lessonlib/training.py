"""The training loop: one epoch of mini-batches, evaluation, and the per-epoch table.

Plain PyTorch. How it uses the hardware (device, mixed precision, channels-last, pieces of a
mini-batch) comes from a `Policy` (`lessonlib.engine.policy`), decided once and passed in; each epoch turns it
into a `StepPlan` (`lessonlib.engine.steps`) that `train_step` composes around its four lines. Two promises:
Ctrl-C never leaves a half-applied optimizer step behind, and a step that makes the loss, the
gradients or the weights non-finite, or that fails part way, is not kept: training stops with a clear
message and the weights and optimizer state are those from before that step. When the memory runs out,
the message says to use a smaller `bs` or `sz` (`lessonlib.engine.policy.OutOfMemory`).
"""
import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from lessonlib.engine.distributed import ShardedSampler, all_mean, gather_ordered
from lessonlib.engine.language import problem, say
from lessonlib.engine.policy import memory_explained, resolve_policy
from lessonlib.engine.runtime import in_notebook
from lessonlib.engine.snapshot import Snapshot
from lessonlib.engine.steps import StepPlan, forward_in_pieces
from lessonlib.engine.tables import Table
from lessonlib.metrics import accuracy

__all__ = ["EpochTable", "Objective", "accuracy_after", "batch_speeds", "describe_fine_tuning", "describe_tta",
           "evaluate", "fit", "get_preds", "group_rates", "history_table", "log_probs", "recipe_took", "train_epoch",
           "train_step"]


def group_rates(groups, lrs):
    """One learning rate per layer group from `lrs` (one rate for all, or one per group), checked."""
    try:
        arr = np.atleast_1d(np.asarray(lrs, dtype=float))
    except (TypeError, ValueError):
        raise ValueError(problem("learning rate {lrs!r}: give a number such as 1e-2, or one per layer group",
                                 lrs=lrs)) from None
    if arr.ndim != 1 or not np.isfinite(arr).all() or (arr < 0).any():
        raise ValueError(problem("learning rate {lrs!r}: every rate must be a finite number, 0 or more", lrs=lrs))
    if arr.size == 1:
        return [float(arr[0])] * len(groups)
    if arr.size != len(groups):
        raise ValueError(problem("got {size} learning rates but this model has {n_groups} layer groups (early "
                                 "body, late body, head): give one rate, or one per group",
                                 size=arr.size, n_groups=len(groups)))
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


# ---------------------------------------------------------------- one step

def train_step(model, x, y, loss_fn, optimizer, plan):
    """One mini-batch: forward, loss, backward, optimizer step; returns the loss (a tensor).

    `plan` (a `StepPlan`, made once per epoch from the run's policy): the device, the precision, a GradScaler
    (on for float16 only), and the guard: a step that would make the loss, the gradients or the weights
    infinite or NaN is not kept (FloatingPointError, everything as before), and Ctrl-C waits for the step."""
    x, y = plan.to_device(x, y)
    scaler = plan.scaler
    with plan.guarded(optimizer) as finite_or_undone:
        optimizer.zero_grad()                  # no old gradients
        with plan.autocast():
            out = model(x)                     # forward
            loss = loss_fn(out, y)             # loss
        scaler.scale(loss).backward()          # backward: the gradients
        finite_or_undone(loss)                 # the guard: nothing that is not finite is stepped on
        scaler.step(optimizer)                 # step: the optimizer moves the weights against the gradient
        scaler.update()
    return loss.detach()


# ---------------------------------------------------------------- epochs

def train_epoch(model, batches, loss_fn, optimizer, policy, recorder=None, schedule=None, desc=None):
    """One pass over `batches`, one optimizer step each; returns the mean training loss.

    `recorder` (a `Recorder`) records each mini-batch's loss and rates; `schedule` (a torch learning-rate
    scheduler, such as SGDR's) is stepped after each mini-batch: it sets the next one's rates.
    """
    plan = StepPlan(policy, model, optimizer)
    total, n = 0.0, 0
    desc = desc or say("train")
    for i, (x, y) in enumerate(tqdm(batches, desc=desc, leave=False, disable=None if policy.rank == 0 else True)):
        with plan.undone_on_failure(desc, i + 1):   # a step that fails part way is not half kept
            loss = train_step(model, x, y, loss_fn, optimizer, plan).item()
        if recorder is not None:
            recorder.on_batch(loss)          # the loss, and the rates it was trained with
        if schedule is not None:
            schedule.step()                  # the learning-rate schedule: the next mini-batch's rates
        total, n = total + loss * len(y), n + len(y)
    return all_mean(total / max(n, 1), n)   # over every process's images (only this one's, alone)


@torch.no_grad()
def get_preds(model, batches, policy, desc=None):
    """(log-probabilities or raw outputs, targets) over `batches`, in order, on the CPU in fp32.

    A model in eval mode takes image batches `policy.body_piece` images at a time where the images are large
    enough for that to be faster (`policy.piece_for`; the same outputs).
    """
    outs, ys = [], []
    with memory_explained(policy.device, bs=getattr(batches, "batch_size", None)):   # advice, if it runs out
        for x, y in tqdm(batches, desc=desc or say("predict"), leave=False, disable=None if policy.rank == 0 else True):
            x = policy.to_device(x)
            piece = None if model.training else policy.piece_for(x)
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
        out, y = get_preds(model, batches, policy, desc=say("valid"))
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
        return history_table(pd.DataFrame(self.rows))


def batch_speeds(per_second):
    """{batch size: images per second} as people read it: {'batch of 8': '12 images/s', ...}."""
    return {say("batch of {size}", size=size): say("{speed:.0f} images/s", speed=speed)
            for size, speed in per_second.items()}


def accuracy_after(history):
    """One line for people: the validation accuracy after the epochs of `history` (what `fit` returned)."""
    return say("validation accuracy after {n} epochs: {accuracy:.1%}", n=len(history),
               accuracy=history.accuracy.iloc[-1])


def describe_fine_tuning(head_accuracy, accuracy, n_valid):
    """One line for people: the validation accuracy after training the head, then after fine-tuning, and what one
    of the `n_valid` validation photos is worth."""
    return say("after the head: {head:.3f}; after fine-tuning: {final:.3f} (one photo is {photo:.1%})",
               head=head_accuracy, final=accuracy, photo=1 / n_valid)


def describe_tta(plain, tta):
    """One line for people: the validation accuracy of the plain predictions and of their average with TTA."""
    return say("validation accuracy: plain {plain:.3f}, with TTA {tta:.3f}", plain=plain, tta=tta)


def recipe_took(minutes):
    """One line for people: how long a whole recipe took on this machine."""
    return say("the whole recipe took {minutes:.1f} minutes on this machine", minutes=minutes)


def history_table(df):
    """`df` (rows of the training table) as a `Table`: code reads `epoch`, `trn_loss`, `val_loss`, ...; people
    read `epoch`, `accuracy`, `recall` (lesson 09's metric) and `time` in their language (`trn_loss`, `val_loss`
    and `f2` are the lessons' own names)."""
    labels = {"fit": say("fit"), "epoch": say("epoch"), "accuracy": say("accuracy"), "recall": say("recall"),
              "time": say("time")}
    return Table(df, labels=labels)


def fit(model, batches, objective, optimizer, epochs, device=None, recorder=None, table=None, schedule=None):
    """Train for `epochs` epochs; return the table `[epoch, trn_loss, val_loss, <metrics>, time]`.

    Args:
        model: any PyTorch model; put in training mode (`model.train()`) at the start of each epoch.
        batches: (training mini-batches, validation mini-batches): DataLoaders, or anything that can be
            iterated again each epoch.
        objective: a loss function such as `nn.CrossEntropyLoss()` (the table then shows accuracy), or an
            `Objective` (loss, metrics, how outputs become predictions).
        optimizer: any `torch.optim` optimizer over the model's parameters.
        device: "cpu", "cuda", ... (default: the best one present), or a `Policy` (`lessonlib.engine.policy`), which
            also says the precision and how the body takes a mini-batch.
        recorder: a `Recorder` that records every mini-batch's loss and learning rates.
        table: an `EpochTable` to fill (its rows survive a Ctrl-C); a new one by default.
        schedule: a torch learning-rate scheduler stepped after every mini-batch (`schedules.sgdr(...)`), or None
            (the optimizer's rates throughout).

    A validation loss that is not finite stops training with the weights and optimizer state of the start
    of that epoch.

    Example:
        >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        >>> fit(model, (train_dl, valid_dl), nn.CrossEntropyLoss(), optimizer, 3, device="cpu")
    """
    policy = resolve_policy(device)
    objective = objective if isinstance(objective, Objective) else Objective(objective)
    model.to(policy.device)   # its layout stays the caller's (a learner's model is already prepared)
    train_batches, valid_batches = batches
    train_policy = policy.for_training(model)   # the precision where the body back-propagates, if it does
    table = table if table is not None else EpochTable()
    names = [getattr(m, "__name__", f"metric{i}") for i, m in enumerate(objective.metrics)]
    epoch, before = 0, Snapshot(model, optimizer)   # each epoch's start, put back if its validation loss is not finite
    with memory_explained(policy.device, bs=getattr(train_batches, "batch_size", None)):   # advice, if it runs out
        try:
            for epoch in range(epochs):
                start = time.perf_counter()
                before.take()
                model.train()
                trn_loss = train_epoch(model, train_batches, objective.loss_fn, optimizer, train_policy, recorder, schedule,
                                       desc=say("epoch {epoch}/{epochs}", epoch=epoch + 1, epochs=epochs))
                val_loss, values = evaluate(model, valid_batches, objective, policy)
                if not math.isfinite(val_loss):
                    before.restore()
                    raise FloatingPointError(problem("epoch {epoch}: the validation loss became {val_loss}; the "
                                                     "weights are those from the start of this epoch. Try a learning "
                                                     "rate ten times smaller.", epoch=epoch + 1, val_loss=val_loss))
                row = {"epoch": epoch, "trn_loss": trn_loss, "val_loss": val_loss, **dict(zip(names, values)),
                       "time": round(time.perf_counter() - start, 2)}
                table.add(row)
        except KeyboardInterrupt:
            model.eval()
            print(say("Interrupted during epoch {epoch}: the weights are those after the last whole mini-batch; "
                      "{n} finished epoch(s) are in the history.", epoch=epoch, n=len(table.rows)))
            raise
        finally:
            model.eval()
    return table.frame()
