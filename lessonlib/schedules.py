"""Learning-rate schedules per mini-batch: constant, and SGDR (cosine annealing with restarts).

SGDR is torch's own `CosineAnnealingWarmRestarts`, stepped once per mini-batch: the rate
falls along a cosine from the chosen value toward zero over `cycle_len` epochs, then jumps
back up; each cycle lasts `cycle_mult` times longer than the one before.
"""
import numpy as np
from torch.optim.lr_scheduler import CosineAnnealingWarmRestarts


def smooth(losses, beta=0.98):
    """Bias-corrected exponential moving average of a sequence of losses."""
    out, avg = [], 0.0
    for i, loss in enumerate(losses, start=1):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta ** i))
    return np.array(out)


def sgdr_epochs(n_cycle, cycle_len=None, cycle_mult=1):
    """Total epochs of `fit(lr, n_cycle, cycle_len, cycle_mult)`: 3, 1, 2 gives 1 + 2 + 4 = 7."""
    if cycle_len is None:
        return n_cycle
    return sum(cycle_len * cycle_mult ** i for i in range(n_cycle))


def sgdr(optimizer, iters_per_epoch, cycle_len=None, cycle_mult=1):
    """The per-mini-batch scheduler for `fit`: None (constant rate) without `cycle_len`."""
    if cycle_len is None:
        return None
    if int(cycle_mult) != cycle_mult or cycle_mult < 1:
        raise ValueError(f"cycle_mult={cycle_mult!r}: it must be a whole number, 1 or more")
    return CosineAnnealingWarmRestarts(optimizer, T_0=int(cycle_len * iters_per_epoch), T_mult=int(cycle_mult))


class Recorder:
    """What one `fit` did per mini-batch: the learning rate of each layer group and the loss.

    `learn.sched` is the Recorder of the latest `fit`; `plot_lr()` and `plot_loss()` draw it.
    """

    def __init__(self, optimizer, group_names=None):
        self.optimizer = optimizer
        self.group_names = group_names or [f"group {i}" for i in range(len(optimizer.param_groups))]
        self.lrs, self.losses = [], []
        self._rates = self._read()

    def _read(self):
        return [g["lr"] for g in self.optimizer.param_groups]

    def record(self, rates, loss):
        """Record one mini-batch: the rate of each group it was trained with, and its loss."""
        self.lrs.append(list(rates))
        self.losses.append(loss)

    def on_batch(self, loss):
        """Record a mini-batch's loss and the rates it was trained with (the scheduler has since stepped)."""
        self.record(self._rates, loss)
        self._rates = self._read()

    def plot(self, n_skip=10, n_skip_end=5, ax=None):
        """Smoothed loss against the last group's learning rate, log x axis: the lesson's plot after `lr_find()`.

        The first `n_skip` and last `n_skip_end` mini-batches are left out, as the lesson's plot did.
        """
        import matplotlib.pyplot as plt
        ax = ax or plt.subplots(figsize=(6, 3.5))[1]
        n = len(self.losses)
        if n_skip + n_skip_end >= n:
            n_skip, n_skip_end = 0, 0
        sl = slice(n_skip, n - n_skip_end)
        ax.plot([row[-1] for row in self.lrs][sl], smooth(self.losses)[sl])
        ax.set_xscale("log")
        ax.set(xlabel="learning rate (log scale)", ylabel="loss")
        return ax

    def plot_lr(self, ax=None):
        """Learning rate of each layer group against iteration."""
        import matplotlib.pyplot as plt
        ax = ax or plt.subplots(figsize=(6, 3))[1]
        for i, name in enumerate(self.group_names):
            ax.plot([row[i] for row in self.lrs], label=name)
        ax.set(xlabel="iteration (mini-batch)", ylabel="learning rate")
        if len(self.group_names) > 1:
            ax.set_yscale("log")
            ax.legend()
        return ax

    def plot_loss(self, ax=None):
        """Training loss of each mini-batch against iteration."""
        import matplotlib.pyplot as plt
        ax = ax or plt.subplots(figsize=(6, 3))[1]
        ax.plot(self.losses)
        ax.set(xlabel="iteration (mini-batch)", ylabel="training loss")
        return ax


def schedule_rates(make_scheduler, n_iter, lr=1.0):
    """The rate a scheduler gives at each of `n_iter` mini-batches, on a throwaway optimizer.

    Example:
        >>> schedule_rates(lambda opt: CosineAnnealingWarmRestarts(opt, T_0=10), 30, lr=1e-2)
    """
    import torch

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = make_scheduler(optimizer)
    rates = []
    for _ in range(n_iter):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return np.array(rates)


def one_cycle(optimizer, total_steps, max_lr):
    """One-cycle: warm up to `max_lr`, then anneal far below it (torch's `OneCycleLR`), for comparison."""
    from torch.optim.lr_scheduler import OneCycleLR
    return OneCycleLR(optimizer, max_lr=max_lr, total_steps=total_steps)


def plot_schedules(schedules, ax=None):
    """Plot {name: per-iteration rates} on one axis."""
    import matplotlib.pyplot as plt
    ax = ax or plt.subplots(figsize=(7, 3))[1]
    for name, rates in schedules.items():
        ax.plot(rates, label=name)
    ax.set(xlabel="iteration (mini-batch)", ylabel="learning rate")
    ax.legend()
    return ax
